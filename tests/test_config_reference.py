"""docs/configuration.md is generated from the config models: it must be current, and it must
go stale the moment a field is added."""

from __future__ import annotations

from pydantic import Field

from audience import config_reference
from audience.ingest.config import CameraConfig, DetectorConfig
from audience.settings import AppConfig


def test_the_page_is_current():
    assert config_reference.PAGE.read_text() == config_reference.render(), (
        "docs/configuration.md is out of date: run "
        "`python -m audience.config_reference > docs/configuration.md`")


def test_every_field_is_described():
    assert config_reference.undescribed() == []


def test_a_new_field_makes_the_page_stale():
    class Detector(DetectorConfig):
        brand_new_knob: int = Field(3, description="A knob nobody documented yet.")

    class Camera(CameraConfig):
        detector: Detector = Field(default_factory=Detector, description="Face detection.")

    class App(AppConfig):
        camera: Camera = Field(default_factory=Camera, description="The camera stage.")

    page = config_reference.render(App)
    assert page != config_reference.PAGE.read_text()
    row = next(ln for ln in page.splitlines() if "`brand_new_knob`" in ln)
    assert "`AUDIENCE_CAMERA__DETECTOR__BRAND_NEW_KNOB`" in row and "`3`" in row
    assert "A knob nobody documented yet." in row


def test_every_section_and_key_is_on_the_page():
    page = config_reference.PAGE.read_text()
    for section, info in AppConfig.model_fields.items():
        assert f"## `{section}`" in page
        model = info.annotation
        assert isinstance(model, type)
        for key in model.model_fields:  # type: ignore[attr-defined]
            assert f"| `{key}` |" in page, f"{section}.{key}"
