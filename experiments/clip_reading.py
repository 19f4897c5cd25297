"""How models read the bundled clip's three visitors: p(female) per visitor, averaged over the
crops the pipeline labels, for shipped manifests or for a run's kept epochs.

The clip is the strict test's (two women and one man, counted by eye); a candidate that reads
its short-haired woman as a man fails ``tests/test_pipeline.py``. ``--mask-hair`` also reads
each crop with the band where hair shows in the aligned face (the top rows and the side
columns) set to the face's mean, and scores gender on AAF val and LFW val the same way: how
much a model's gender rests on the hair.

    python experiments/clip_reading.py models/weights/audience-mt.json
    python experiments/clip_reading.py --run runs/mt-3.0c --epoch 5 --epoch 10 --mask-hair
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

CLIP = Path("ingest/assets/face-demographics-walking-and-pause.gif")
#: Rows above the eyebrows and columns beside the cheeks of a 48 px aligned face
#: (``audience.core.preprocess.TEMPLATE``: eyes at 38% of the side).
HAIR_TOP, HAIR_SIDE = 10, 5


def clip_crops() -> list[list[np.ndarray]]:
    """The crops the pipeline hands the analyzer, per visitor, from the bundled clip."""
    import audience.pipeline as runner
    from audience.settings import apply_overrides, load_config

    tracks: list[tuple] = []
    label = runner.label_tracks

    def keep(analyzer, found, n):
        tracks.extend((t, n) for t in found)
        return label(analyzer, found, n)

    runner.label_tracks = keep
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = apply_overrides(load_config(), {
                "camera": {"source": str(CLIP), "store": "lab", "id": "clip"},
                "database": {"url": f"sqlite:///{Path(tmp) / 'clip.db'}"}})
            runner.run_pipeline(cfg, progress=False)
    finally:
        runner.label_tracks = label
    return [[f.crop for f in t.faces[:n] if f.crop is not None] for t, n in tracks]


def mask_hair(x: np.ndarray, size: int = 48) -> np.ndarray:
    """Prepared faces (N, size, size, C) with the hair band at 0 (the standardised mean)."""
    top, side = HAIR_TOP * size // 48, HAIR_SIDE * size // 48
    x = x.copy()
    x[:, :top] = 0
    x[:, :, :side] = 0
    x[:, :, size - side:] = 0
    return x


def epoch_manifest(run: Path, epoch: int, out: Path) -> Path:
    """One kept epoch of ``run`` exported to float32 ONNX (a manifest in ``out``)."""
    # a run still training keeps its files open; reading them needs no lock
    os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
    import keras

    from audience.models.export import export
    from audience.models.net import CUSTOM_OBJECTS

    model = keras.models.load_model(run / "best.keras", custom_objects=CUSTOM_OBJECTS)
    model.load_weights(run / "epochs" / f"epoch-{epoch:03d}.weights.h5")
    checkpoint = out / f"epoch-{epoch:03d}.keras"
    model.save(checkpoint)
    return export(checkpoint, f"0.0.{epoch}", out / f"epoch-{epoch:03d}")


def read(manifest: Path, crops: list[list[np.ndarray]], hair: bool) -> str:
    from audience.core.preprocess import prepare_batch, to_channels
    from audience.models.evaluate import load_analyzer

    analyzer = load_analyzer("gender", weights=manifest)

    def p_female(x: np.ndarray) -> np.ndarray:
        return analyzer.predict(x)["gender"].ravel()

    parts = []
    for i, faces in enumerate(crops):
        x = prepare_batch(faces, None, analyzer.size, analyzer.channels)
        text = f"visitor {i}: {p_female(x).mean():.2f}"
        if hair:
            text += f" (hair masked {p_female(mask_hair(x, analyzer.size)).mean():.2f})"
        parts.append(text)
    if hair:
        from audience.models.utk import standardize_batch
        from audience.models.wild import WILD_DIRS, load_wild, wild_crops

        for name, folder in WILD_DIRS.items():
            data = load_wild(folder, "val")
            chips, found = wild_crops(data, analyzer.size)
            x = to_channels(standardize_batch(chips[found]).astype(np.float32),
                            analyzer.channels)
            truth = data.gender[found] == 1
            right = [float(((p_female(v) >= 0.5) == truth).mean())
                     for v in (x, mask_hair(x, analyzer.size))]
            parts.append(f"{name} val gender {right[0]:.1%} (hair masked {right[1]:.1%})")
    return " | ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifests", nargs="*", type=Path, help="model manifests (.json)")
    parser.add_argument("--run", type=Path, help="a run folder with kept epochs")
    parser.add_argument("--epoch", type=int, action="append", default=[],
                        help="an epoch of --run to read (repeatable)")
    parser.add_argument("--mask-hair", action="store_true",
                        help="also read with the hair band masked (and score AAF/LFW val)")
    args = parser.parse_args()
    crops = clip_crops()
    with tempfile.TemporaryDirectory() as tmp:
        models = [(str(m), m) for m in args.manifests]
        models += [(f"{args.run} epoch {e}", epoch_manifest(args.run, e, Path(tmp)))
                   for e in args.epoch]
        for name, manifest in models:
            print(f"{name}: p(female) {read(manifest, crops, args.mask_hair)}", flush=True)


if __name__ == "__main__":
    main()
