"""FaceAnalyzer: a batch of face crops in, emotion / age / gender (/ ethnicity) out.

Serves the exported ONNX model with ONNX Runtime; TensorFlow is never imported here. The
weights file is checked against the sha256 in its manifest before it is loaded.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from audience.core.errors import WeightsError
from audience.core.preprocess import prepare_batch, to_channels
from audience.core.shares import gender_min_age
from audience.core.visit import FaceAttributes, age_bracket
from audience.core.weights import WEIGHTS_DIR, sha256
from audience.inference.config import AnalyzerConfig, AttributePolicy
from audience.inference.cpu import int8_saturates

log = logging.getLogger(__name__)

DEFAULT_MANIFEST = WEIGHTS_DIR / "audience-mt.json"



def expected_age(probs: np.ndarray) -> np.ndarray:
    """Age in years from the age head's softmax over 0..100 (DEX-style expectation)."""
    return probs @ np.arange(probs.shape[1], dtype=probs.dtype)


def load_manifest(path: Path | None = None, float32: bool = False) -> tuple[dict, Path]:
    """Read a manifest and verify its weights file; returns (manifest, onnx path).

    ``float32``: the float32 network an int8 model was quantized from (``models.quantize``;
    warm starts read their weights from it), or the served file where there is no other."""
    path = Path(path) if path else DEFAULT_MANIFEST
    if not path.is_file():
        raise WeightsError(f"model manifest {path} not found: reinstall the package or train and "
                           "export a model (`audience train`)")
    try:
        manifest = json.loads(path.read_text())
        entry = manifest["float32"] if float32 and "float32" in manifest else manifest
        weights = path.parent / entry["file"]
        expected = entry["sha256"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise WeightsError(f"model manifest {path} is malformed ({exc}): "
                           "re-export the model") from exc
    if not weights.is_file():
        raise WeightsError(f"weights {weights} named by {path.name} not found: "
                           "reinstall or re-export")
    actual = sha256(weights)
    if actual != expected:
        raise WeightsError(f"weights {weights.name} do not match their manifest (sha256 "
                           f"{actual[:12]}... != {expected[:12]}...): refusing to load a "
                           "modified or corrupt model; restore the file or re-export it")
    return manifest, weights


class FaceAnalyzer:
    """Label face crops. ``analyze`` takes crops as images (uint8 gray/BGR/BGRA), optionally
    with landmarks; everything goes through ``audience.core.preprocess.prepare_face``."""

    def __init__(self, config: AnalyzerConfig | None = None,
                 policy: AttributePolicy | None = None) -> None:
        import onnxruntime as ort

        self.config = config or AnalyzerConfig()
        self.policy = policy or self.config.attributes
        path = Path(self.config.weights) if self.config.weights else None
        self.manifest, weights = load_manifest(path)
        self.version = f"{self.manifest['name']}-{self.manifest['version']}"
        self.size = int(self.manifest["input"]["size"])
        self.channels = int(self.manifest["input"].get("channels", 1))
        outputs = self.manifest["outputs"]
        self.emotions = list(outputs["emotion"])
        self.ethnicities = list(outputs["ethnicity"])
        self.genders = list(outputs["gender"]["classes"])
        opts = ort.SessionOptions()
        if self.config.threads:
            opts.intra_op_num_threads = self.config.threads
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(weights), opts, providers=["CPUExecutionProvider"])
        flip = self.config.flip_average
        self.flip_average = bool(self.manifest.get("flip_average", False) if flip is None
                                 else flip)
        self._input = self._session.get_inputs()[0].name
        # Run only the heads the policy enables: a disabled head is never returned, and never
        # computed except age where the gender rule needs it.
        self._outputs = self.policy.enabled()
        if not self._outputs:
            raise ValueError("the attribute policy enables no attribute: enable at least one")
        # configured, else the manifest's, else 13 (core.shares.GENDER_MIN_AGE)
        self.gender_min_age = gender_min_age(self.manifest, self.config.gender_min_age)
        self._run = list(self._outputs)
        if self.policy.gender and self.gender_min_age > 0 and "age" not in self._run:
            self._run.append("age")
        trained = self.manifest.get("training", {}).get("tasks")
        untrained = [h for h in self._outputs if trained and "ensemble" not in self.manifest
                     and h not in trained]
        if untrained:  # a specialist (audience train --tasks) belongs in an ensemble
            log.warning("%s was trained for %s only: its %s output is not a trained answer "
                        "(serve it in an ensemble: python -m audience.models.ensemble)",
                        self.version, ", ".join(trained), ", ".join(untrained))
        if int8_saturates(self.manifest):
            log.warning("%s: this CPU has no VNNI, and the model's int8 weights use all 8 bits, "
                        "so its labels here differ from the model card's and from the "
                        "confusion matrices its shares are corrected with (2.4.0: FER-2013 61%% "
                        "right here against 68%%): run it on a CPU with AVX-512 VNNI or "
                        "AVX-VNNI for the measured figures", self.version)
        log.info("loaded %s (%s) with heads: %s%s", self.version, weights.name,
                 ", ".join(self._outputs), "; averaged with the mirrored face"
                 if self.flip_average else "")

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Raw head outputs for a prepared batch (N, size, size, C) float32; gray batches feed a
        colour model (replicated) and colour batches a gray one (their luma)."""
        x = to_channels(x, self.channels)
        out: dict[str, list[np.ndarray]] = {name: [] for name in self._run}
        step = self.config.batch_size
        for i in range(0, len(x), step):
            chunk = x[i:i + step]
            if self.flip_average:  # one run over the faces and their mirrors, then average
                n = len(chunk)
                both = np.concatenate([chunk, chunk[:, :, ::-1]])
                res = [(r[:n] + r[n:]) / 2 for r in self._session.run(self._run,
                                                                      {self._input: both})]
            else:
                res = self._session.run(self._run, {self._input: chunk})
            for name, arr in zip(self._run, res, strict=True):
                out[name].append(arr)
        return {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in out.items()}

    def decode(self, raw: dict[str, np.ndarray]) -> list[FaceAttributes]:
        n = len(next(iter(raw.values())))
        faces = [FaceAttributes() for _ in range(n)]
        if "emotion" in raw:
            for f, p in zip(faces, raw["emotion"], strict=True):
                f.emotion = self.emotions[int(p.argmax())]
                f.emotion_scores = {c: round(float(s), 4)
                                    for c, s in zip(self.emotions, p, strict=True)}
        ages = expected_age(raw["age"]) if "age" in raw else None
        if ages is not None and self.policy.age:
            for f, a in zip(faces, ages, strict=True):
                f.age = round(float(a), 1)
                f.age_bracket = age_bracket(f.age)
        if "gender" in raw:
            for i, (f, p) in enumerate(zip(faces, raw["gender"][:, 0], strict=True)):
                if ages is not None and self.withholds_gender(float(ages[i])):
                    continue  # a child's apparent gender: unknown (the model card's rule)
                female = float(p) >= 0.5
                f.gender = self.genders[1] if female else self.genders[0]
                f.gender_score = round(float(p if female else 1 - p), 4)
        if "ethnicity" in raw:
            for f, p in zip(faces, raw["ethnicity"], strict=True):
                f.ethnicity = self.ethnicities[int(p.argmax())]
                f.ethnicity_scores = {c: round(float(s), 4)
                                      for c, s in zip(self.ethnicities, p, strict=True)}
        return faces

    def withholds_gender(self, age: float | None) -> bool:
        """Whether the gender of a face or visitor estimated at ``age`` years is withheld."""
        return age is not None and age < self.gender_min_age

    def analyze(self, crops: list[np.ndarray],
                landmarks: list[np.ndarray | None] | None = None) -> list[FaceAttributes]:
        if not crops:
            return []
        return self.decode(self.predict(prepare_batch(crops, landmarks, self.size,
                                                             self.channels)))
