"""Configuration: example files validate, unknown keys and bad values give clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from audience.settings import ConfigError, apply_overrides, load_config

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "deploy" / "config").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_configs_validate(path):
    cfg = load_config(path)
    assert cfg.camera.source


def test_ethnicity_off_unless_enabled():
    assert load_config().analyzer.attributes.ethnicity is False
    enabled = [p for p in EXAMPLES if load_config(p).analyzer.attributes.ethnicity]
    assert [p.name for p in enabled] == ["ethnicity-enabled.yaml"]


@pytest.mark.parametrize("text, message", [
    ("camera:\n  fsp: 3\n", "camera.fsp: unknown key"),
    ("cameras: {}\n", "cameras: unknown key"),
    ("camera:\n  fps: -1\n", "camera.fps"),
    ("camera:\n  tracker:\n    best_k: 0\n", "camera.tracker.best_k"),
    ("camera: [1, 2\n", "not valid YAML"),
    ("- a\n- b\n", "must hold a mapping"),
])
def test_bad_config_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_env_overrides_file_and_flags_override_env(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("camera:\n  fps: 3\n  store: s1\n")
    monkeypatch.setenv("AUDIENCE_CAMERA__FPS", "7")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///from-env.db")
    cfg = load_config(path)
    assert cfg.camera.fps == 7 and cfg.camera.store == "s1"
    assert cfg.database.url == "sqlite:///from-env.db"
    cfg = apply_overrides(cfg, {"camera": {"fps": 2.0, "id": None}})
    assert cfg.camera.fps == 2.0
    with pytest.raises(ConfigError, match="camera.fps"):
        apply_overrides(cfg, {"camera": {"fps": -5}})
