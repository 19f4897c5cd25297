"""Input-size pilot: does a larger colour face help age, gender and
ethnicity, at equal training time?

Each arm trains one network (the ``vgg2`` variant of the shipped network: widths 32-256, GAP
heads, one more 3x3 conv at full resolution than the shipped ``vgg``; the same for every arm)
on the de-duplicated UTKFace training split only, at one input size, for the same budget of
**CPU time** (the process's own CPU seconds, so a shared machine does not favour the arm that
ran while it was quiet), with a cosine learning rate that reaches 0 when the budget is spent.
Each arm is then measured on the UTKFace validation splits (combined and crop_part1's, both
de-duplicated), never on a test split. Speed is not timed here (a pilot shares the machine):
``python experiments/tradeoff.py --only vgg2-32-256-gap --size N`` times each input.

    python experiments/pilot.py --size 48 --size 64 --cpu-minutes 20 --json runs/pilot.json

A pilot, not a model: one seed, no teachers, no FER-2013; it says which input to spend the
next full training run on. Figures go to experiments/architecture.md.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

log = logging.getLogger(__name__)

UTK_DIRS = ("../shared/datasets/utkface/crop_part1", "../shared/datasets/utkface/more")


def _sets(size: int, dirs: tuple[str, ...]) -> dict[str, tuple[np.ndarray, dict, np.ndarray]]:
    from audience.models.data import ETHNICITIES, utk_split
    from audience.models.train import class_weights
    from audience.models.utk import aligned_crops, load_utk_dirs, standardize_batch

    utk = load_utk_dirs(dirs)
    crops, ok = aligned_crops(utk, size)
    x_all = standardize_batch(crops)
    splits = np.array([utk_split(p.name) for p in utk.paths])
    first = np.array([Path(dirs[0]).resolve() in p.resolve().parents for p in utk.paths])
    race_w = class_weights(utk.race[ok], len(ETHNICITIES))
    out = {}
    for name in ("train", "val"):
        u = np.flatnonzero((splits == name) & ok)
        n, one = len(u), np.ones(len(u))
        w_race = race_w[utk.race[u]] if name == "train" else one
        y = {
            "emotion": np.zeros((n, 8), np.float32),  # no emotion labels: mask 0
            "age": np.stack([utk.age[u], one], 1).astype(np.float32),
            "gender": np.stack([utk.gender[u], one], 1).astype(np.float32),
            "ethnicity": np.concatenate([np.eye(5)[utk.race[u]], w_race[:, None]], 1)
            .astype(np.float32),
        }
        out[name] = (x_all[u].astype(np.float32), y, first[u])
    return out


def run_arm(size: int, cpu_seconds: float, dirs: tuple[str, ...], seed: int = 1234,
            batch: int = 128, lr: float = 0.05) -> dict:
    import keras
    import tensorflow as tf

    from audience.inference.analyzer import expected_age
    from audience.models.net import build_model, compile_model
    from audience.models.schedule import CosineByProgress

    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    sets = _sets(size, dirs)
    x_train, y_train, _ = sets["train"]
    x_val, y_val, first = sets["val"]
    model = build_model(size, (32, 64, 128, 256), 0.4, backbone="vgg2", channels=3,
                        head_type="gap")
    compile_model(model, lr / 20, 5e-3, "sgd")

    class ByCpu(CosineByProgress):
        """Progress by this process's CPU seconds since training began."""

        def on_train_begin(self, logs=None):
            self.cpu0 = time.process_time()

        def elapsed(self) -> float:
            return time.process_time() - self.cpu0

        def on_epoch_end(self, epoch, logs=None):
            pass  # nothing to persist: an arm runs in one sitting

    steps = len(x_train) // batch
    anneal = ByCpu(lr, steps * 1000, steps, cpu_seconds, Path("/dev/null"))
    augment = keras.Sequential([
        keras.layers.RandomFlip("horizontal"),
        keras.layers.RandomRotation(0.03, fill_mode="nearest"),
        keras.layers.RandomTranslation(0.08, 0.08, fill_mode="nearest"),
        keras.layers.RandomZoom(0.1, fill_mode="nearest")])
    ds = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
          .shuffle(len(x_train), seed=seed).batch(batch, drop_remainder=True)
          .map(lambda x, y: (tf.cast(augment(x, training=True), tf.float32), y),
               num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
    wall = time.monotonic()
    history = model.fit(ds, epochs=1000, verbose=2, callbacks=[anneal])
    epochs = len(history.history["loss"])
    cpu_used = anneal.elapsed()

    pred = model.predict(x_val, batch_size=256, verbose=0)
    age = expected_age(pred["age"])
    hit_g = (pred["gender"][:, 0] > 0.5) == (y_val["gender"][:, 0] > 0.5)
    hit_e = pred["ethnicity"].argmax(1) == y_val["ethnicity"][:, :5].argmax(1)
    err = np.abs(age - y_val["age"][:, 0])

    def figures(rows: np.ndarray) -> dict:
        return {"n": int(rows.sum()), "gender": float(hit_g[rows].mean()),
                "ethnicity": float(hit_e[rows].mean()), "age_mae": float(err[rows].mean())}

    return {
        "size": size, "parameters": int(model.count_params()), "epochs": epochs,
        "cpu_seconds": round(cpu_used, 1), "wall_seconds": round(time.monotonic() - wall, 1),
        "val_combined": figures(np.ones(len(first), bool)),
        "val_crop_part1": figures(first),
    }


def main(
    size: Annotated[list[int], typer.Option(help="Input size of one arm (repeat).")],
    cpu_minutes: Annotated[float, typer.Option(help="CPU minutes of training per arm.")] = 20,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the table here.")]
    = None,
) -> None:
    """Train one UTKFace-only network per input size for equal CPU time; print the table."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    rows = []
    for s in size:
        rows.append(run_arm(s, cpu_minutes * 60, UTK_DIRS))
        log.info("arm %d: %s", s, json.dumps(rows[-1]))
        if json_out:
            json_out.write_text(json.dumps(rows, indent=2))
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    typer.run(main)
