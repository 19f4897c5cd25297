"""Render the measured tables of experiments/architecture.md from the JSON in experiments/eval/.

    python experiments/tradeoff.py --json > experiments/eval/tradeoff.jsonl   (speed)
    python experiments/pilot.py ... --json experiments/eval/pilot-input-size.json
    python experiments/tables.py

Each earlier model's evaluation JSON sits in experiments/eval/audience-mt-<version>/ (the
shipped model's in models/eval/), so every figure in the tables comes from a command's output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EVAL = HERE / "eval"
PAGE = HERE / "architecture.md"
TRADE_START, TRADE_END = "<!-- tradeoff:start -->", "<!-- tradeoff:end -->"
PILOT_START, PILOT_END = "<!-- pilot:start -->", "<!-- pilot:end -->"
#: trade-off backbone (tradeoff.py) -> folders of its trained models' evaluation JSON (the
#: shipped 2.4.0, like 2.3.0, is two vgg-32-256-gap networks in one graph: no single backbone)
TRAINED = {"vgg-32-256": [EVAL / "audience-mt-1.0.0"],
           "vgg-16-128": [EVAL / "audience-mt-1.1.0", EVAL / "audience-mt-1.2.0"],
           "vgg-32-256-gap": [EVAL / "audience-mt-2.0.0", EVAL / "audience-mt-2.1.0",
                              EVAL / "audience-mt-2.2.0", EVAL / "audience-mt-2.3.0"]}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _load(name: str, folder: Path = EVAL) -> Any:  # a JSON object, None when absent
    path = folder / name
    return json.loads(path.read_text()) if path.is_file() else None


def render_tradeoff() -> str:
    """Speed (tradeoff.py) next to accuracy and analyzer speed of the trained points."""
    lines = ["| backbone | parameters | faces/s, ONNX only (b64) | faces/s, full analyzer (b64) | "
             "FER-2013 PrivateTest | UTK gender | UTK ethnicity | UTK age MAE |",
             "|---|---|---|---|---|---|---|---|"]
    for row in map(json.loads, (EVAL / "tradeoff.jsonl").read_text().splitlines()):
        folders = [f for f in TRAINED.get(row["backbone"], [])
                   if (f / "fer2013-privatetest.json").is_file()]
        speed = [f"{row['params'] / 1e6:.2f}M", f"{row['faces_per_s_b64']:,.0f}"]
        if not folders:
            cells = [*speed, "-", "not trained", "-", "-", "-"]
            lines.append(f"| {row['backbone']} | " + " | ".join(cells) + " |")
        for folder in folders:
            fer, utk = _load("fer2013-privatetest.json", folder), _load("utkface-test.json", folder)
            bench = _load("bench-analyzer.json", folder)
            cells = [*speed, f"{bench['faces_per_s']['64']:,.0f}" if bench else "-",
                     f"{fer['model']}: {_pct(fer['accuracy'])}", _pct(utk["gender_accuracy"]),
                     _pct(utk["ethnicity_accuracy"]), f"{utk['age_mae']:.2f}"]
            lines.append(f"| {row['backbone']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_pilot() -> str:
    """The input-size pilot (pilot.py) beside each input's ONNX speed
    (tradeoff.py --size, ``tradeoff-input-size.jsonl``)."""
    speed_path = EVAL / "tradeoff-input-size.jsonl"
    speeds = {row["input"]: row["faces_per_s_b64"] for row in
              map(json.loads, speed_path.read_text().splitlines())} if speed_path.is_file() \
        else {}
    lines = ["| input | parameters | epochs in the budget | CPU s | UTK val combined: gender / "
             "ethnicity / age MAE | crop_part1 val: gender / ethnicity / age MAE | "
             "faces/s, ONNX only (b64) |", "|---|---|---|---|---|---|---|"]

    def trio(v: dict) -> str:
        return f"{_pct(v['gender'])} / {_pct(v['ethnicity'])} / {v['age_mae']:.2f}"

    for arm in json.loads((EVAL / "pilot-input-size.json").read_text()):
        size = arm["size"]
        speed = f"{speeds[size]:,.0f}" if size in speeds else "-"
        lines.append(f"| {size}x{size} colour | {arm['parameters'] / 1e6:.2f}M | {arm['epochs']} | "
                     f"{arm['cpu_seconds']:.0f} | {trio(arm['val_combined'])} (n "
                     f"{arm['val_combined']['n']}) | {trio(arm['val_crop_part1'])} (n "
                     f"{arm['val_crop_part1']['n']}) | {speed} |")
    return "\n".join(lines)


def _replace(text: str, start: str, end: str, body: str) -> str:
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def rendered_page() -> str:
    """architecture.md with its two tables rendered from experiments/eval/."""
    text = _replace(PAGE.read_text(), TRADE_START, TRADE_END, render_tradeoff())
    return _replace(text, PILOT_START, PILOT_END, render_pilot())


if __name__ == "__main__":
    PAGE.write_text(rendered_page())
    print(f"updated {PAGE}")
