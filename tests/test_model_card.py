"""The model card's figures are the evaluation JSON's figures, never edited by hand."""

from __future__ import annotations

import json

from audience.models import card
from audience.models.export import MANIFEST


def test_the_card_is_what_its_json_renders():
    assert card.CARD.read_text() == card.rendered_card(), (
        "MODEL_CARD.md is out of date with models/eval/: run `python -m audience.models.card`")


def test_the_manifest_carries_the_evaluated_model_and_its_figures():
    manifest = json.loads(MANIFEST.read_text())
    fer = json.loads((card.EVAL / "fer2013-privatetest.json").read_text())
    assert fer["model"] == f"{manifest['name']}-{manifest['version']}"
    assert manifest["metrics"] == card.manifest_metrics()


def test_every_trade_off_backbone_has_a_row():
    table = card.render_tradeoff()
    for line in (card.EVAL / "tradeoff.jsonl").read_text().splitlines():
        assert f"| {json.loads(line)['backbone']} |" in table
