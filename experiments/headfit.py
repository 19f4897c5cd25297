"""Refit only the gender head of a shipped network on frozen features, with faces in the wild.

    python experiments/headfit.py [--manifest models/weights/audience-mt-2.1.0.json]

The cheapest in-the-wild lever: the backbone stays as it is, and the gender head (dense 64,
dense 1) is trained again, from its shipped weights, on the backbone's pooled features of
UTKFace train, AAF train and LFW train (each in-the-wild face three times, as `audience train
--wild-repeat 3` shows them) plus one 12-24 px copy of every face. The epoch is chosen on the
mean gender accuracy of UTKFace val, AAF val and LFW val (faces found by the camera's detector:
``models.wild``). Prints the three accuracies and predicted female shares before and per epoch;
``--out`` saves the network with the new head (``audience export`` takes it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

UTK = ["../shared/datasets/utkface/crop_part1", "../shared/datasets/utkface/more"]
WILD = {"aaf": "../shared/datasets/aaf", "lfw": "../shared/datasets/lfw"}


def small(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each crop shrunk to 12-24 px and scaled back up, as a distant camera sees the face."""
    import cv2

    out = []
    for im in crops:
        s = int(rng.integers(12, 25))
        tiny = cv2.resize(im, (s, s), interpolation=cv2.INTER_AREA)
        out.append(cv2.resize(tiny, im.shape[:2][::-1], interpolation=cv2.INTER_LINEAR))
    return np.stack(out)


def main(argv: list[str] | None = None) -> None:
    import keras

    from audience.core.preprocess import to_channels
    from audience.models.data import utk_split
    from audience.models.utk import aligned_crops, load_utk_dirs, standardize_batch
    from audience.models.warmstart import keras_from_manifest
    from audience.models.wild import load_wild, wild_crops

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", default="models/weights/audience-mt-2.1.0.json")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--out", type=Path, default=None, help="save the network (.keras)")
    args = p.parse_args(argv)

    model = keras_from_manifest(args.manifest, 3, None, 0.4, size=48)
    features = keras.Model(model.input, model.get_layer("gap").output)

    def feat(crops: np.ndarray) -> np.ndarray:
        return features.predict(to_channels(standardize_batch(crops), 3), batch_size=512,
                                verbose=0)

    rng = np.random.default_rng(0)
    utk = load_utk_dirs(UTK)
    crops, ok = aligned_crops(utk, 48)
    split = np.array([utk_split(path.name) for path in utk.paths])
    train_c, train_y = [crops[(split == "train") & ok]], [utk.gender[(split == "train") & ok]]
    once_c, once_y = list(train_c), list(train_y)  # the small copy: every face once
    val = {"utk": (feat(crops[(split == "val") & ok]), utk.gender[(split == "val") & ok])}
    for name, folder in WILD.items():
        for part in ("train", "val"):
            data = load_wild(folder, part)
            c, found = wild_crops(data, 48)
            if part == "train":
                train_c += [c[found]] * 3
                train_y += [data.gender[found]] * 3
                once_c.append(c[found])
                once_y.append(data.gender[found])
            else:
                val[name] = (feat(c[found]), data.gender[found])
    x = np.concatenate([feat(np.concatenate(train_c)),
                        feat(small(np.concatenate(once_c), rng))])
    y = np.concatenate(train_y + once_y).astype(np.float32)

    inp = keras.Input((x.shape[1],))
    fc = keras.layers.Dense(64, activation="relu", name="gender_fc")
    out = keras.layers.Dense(1, activation="sigmoid", name="gender")
    head = keras.Model(inp, out(keras.layers.Dropout(0.4)(fc(inp))))
    fc.set_weights(model.get_layer("gender_fc").get_weights())
    out.set_weights(model.get_layer("gender").get_weights())

    def scores(tag: str) -> float:
        row = {}
        for name, (xv, yv) in val.items():
            pred = head.predict(xv, verbose=0)[:, 0] >= 0.5
            row[name] = (round(float((pred == yv).mean()), 4), round(float(pred.mean()), 4))
        print(tag, row, flush=True)
        return float(np.mean([acc for acc, _ in row.values()]))

    scores("before")
    head.compile(keras.optimizers.AdamW(1e-3, weight_decay=1e-4), "binary_crossentropy")
    best, best_weights = -1.0, head.get_weights()
    for epoch in range(args.epochs):
        head.fit(x, y, batch_size=256, epochs=1, verbose=0, shuffle=True)
        score = scores(f"epoch {epoch + 1}")
        if score > best:
            best, best_weights = score, head.get_weights()
    head.set_weights(best_weights)
    scores("chosen")
    if args.out:
        model.get_layer("gender_fc").set_weights(fc.get_weights())
        model.get_layer("gender").set_weights(out.get_weights())
        model.save(args.out)


if __name__ == "__main__":
    main()
