"""The model card's figures are the evaluation JSON's figures, never edited by hand, and the
card keeps the standard order (Mitchell et al. 2019): uses before figures, limits at the end."""

from __future__ import annotations

import json
import re

import pytest

from audience.models import card
from audience.models.export import MANIFEST

SECTIONS = ["Model details", "Intended uses", "Prohibited uses", "Factors", "Metrics",
            "Evaluation results", "Training data", "The shipped recipe", "Ethical considerations",
            "Caveats and limitations"]


def test_the_card_is_what_its_json_renders():
    assert card.CARD.read_text() == card.rendered_card(), (
        "MODEL_CARD.md is out of date with models/eval/: run `python -m audience.models.card`")


def test_the_manifest_carries_the_evaluated_model_and_its_figures():
    manifest = json.loads(MANIFEST.read_text())
    fer = json.loads((card.EVAL / "fer2013-privatetest.json").read_text())
    assert fer["model"] == f"{manifest['name']}-{manifest['version']}"
    assert manifest["metrics"] == card.manifest_metrics()


def test_the_card_is_in_the_standard_order_and_short():
    text = card.CARD.read_text()
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings == SECTIONS
    assert len(text.splitlines()) <= 350
    manifest = json.loads(MANIFEST.read_text())
    assert text.splitlines()[0] == f"# Model card: {manifest['name']} {manifest['version']}"


def _json(name: str) -> dict:
    return json.loads((card.EVAL / name).read_text())


@pytest.mark.parametrize("row, figures", [
    ("FER-2013 PrivateTest ≥ 68%",
     lambda: [_json("fer2013-privatetest.json")["accuracy"],
              _json("fer2013-publictest.json")["accuracy"],
              _json("fer2013-privatetest-tta.json")["accuracy"]]),
    ("crop_part1 test: gender ≥ 90%",
     lambda: [_json("utkface-test.json")["gender_accuracy"],
              _json("utkface-test.json")["gender_accuracy_15plus"],
              _json("utkface-test-tta.json")["gender_accuracy"]]),
    ("crop_part1 test: ethnicity ≥ 84%",
     lambda: [_json("utkface-test.json")["ethnicity_accuracy"],
              _json("utkface-test-tta.json")["ethnicity_accuracy"]]),
])
def test_the_hand_written_targets_table_quotes_the_json(row, figures):
    """The targets table is prose, not rendered: each percentage it quotes is a measured one."""
    line = next(ln for ln in card.CARD.read_text().splitlines() if ln.startswith(f"| {row}"))
    for value in figures():
        assert f"{100 * value:.1f}%" in line, (row, value)


def test_the_hand_written_age_and_speed_rows_quote_the_json():
    text = card.CARD.read_text()
    age = next(ln for ln in text.splitlines() if ln.startswith("| crop_part1 test: age MAE"))
    assert f"{_json('utkface-test.json')['age_mae']:.2f}" in age
    assert f"{_json('utkface-test-tta.json')['age_mae']:.2f}" in age
    speed = next(ln for ln in text.splitlines() if ln.startswith("| ≥ 1,000 faces/s"))
    bench = _json("bench-analyzer.json")
    assert f"{bench['faces_per_s']['64']:,.0f}" in speed
    assert f"{bench['speedup_at_batch_1']}x and {bench['speedup_at_batch_64']}x" in speed
