"""Where a head looks: guided back-propagation and Grad-CAM on the shipped model's float network.

The shipped model is an int8 ONNX graph (an ensemble of networks, one per head or group of
heads); gradients need the float network, rebuilt in Keras from its ONNX weights
(:func:`models.warmstart.keras_from_manifest`, inference mode: the ONNX function exactly).
For each head the network the manifest serves it from is used where its float weights are
in the tree; otherwise the member it was trained from, and every output says which network
the map was computed on.

- ``guided``: guided back-propagation (Springenberg et al. 2015): the gradient of the head's
  answer with respect to the input face, back through each ReLU only where both its input and
  the gradient are positive; the map is the largest magnitude over the colour channels.
- ``gradcam``: Grad-CAM (Selvaraju et al. 2017) on the last convolution block: its feature
  maps weighted by the mean gradient of the answer, rectified, upsampled to the face.

The answer explained is the head's decision: the logit of the predicted class (emotion,
ethnicity), the logit of the predicted gender (female's, negated for male), and the expected
age. Maps are scaled to [0, 1].

Needs the training environment (TensorFlow); the runtime package never imports this module.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from audience.core.errors import InputError, WeightsError
from audience.core.preprocess import align_face, prepare_face
from audience.core.weights import WEIGHTS_DIR, sha256

log = logging.getLogger(__name__)

HEADS = ("emotion", "age", "gender", "ethnicity")
METHODS = ("guided", "gradcam")
SHIPPED = WEIGHTS_DIR / "audience-mt.json"


def require_training_stack() -> Any:
    """Keras, or a one-line InputError (exit 2) where TensorFlow is not installed."""
    try:
        import keras
        import tensorflow  # noqa: F401 - keras' backend
    except ImportError:
        raise InputError("`audience explain` needs the training environment (TensorFlow): "
                         "pip install 'audience[train]' (or `make setup`)") from None
    return keras


# -- which network ------------------------------------------------------------------------
@dataclass(frozen=True)
class Network:
    """The float network a head's maps are computed on."""

    manifest: Path  #: its own manifest (single network, float weights beside it)
    version: str  #: e.g. 2.1.0
    served_by: str  #: what the shipped model serves the head from, e.g. "2.4.0-e (int8)"
    note: str  #: one line for --help output and figures: which network and why

    @property
    def name(self) -> str:
        return f"audience-mt {self.version}"


def _read(path: Path) -> dict:
    try:
        return dict(json.loads(path.read_text()))
    except OSError:
        raise WeightsError(f"model manifest {path} not found: pass a manifest with --weights "
                           "(default: the shipped models/weights/audience-mt.json)") from None
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise WeightsError(f"model manifest {path} is malformed ({exc}): re-export it") from None


def _float_weights_here(manifest: Path, entry: dict) -> bool:
    weights = manifest.parent / str(entry.get("file", ""))
    return weights.is_file() and sha256(weights) == entry.get("sha256")


def check_head(manifest_path: Path, head: str) -> dict:
    """The manifest, after checking it has ``head`` (InputError, exit 2, where it lacks it)."""
    manifest = _read(manifest_path)
    outputs = list(manifest.get("outputs", {}))
    if head not in outputs:
        raise InputError(f"the model {manifest.get('name', '?')} {manifest.get('version', '?')} "
                         f"({manifest_path.name}) has no {head!r} head: choose one of "
                         f"{', '.join(outputs) or 'none'}")
    return manifest


def network_for(head: str, manifest_path: Path | None = None) -> Network:
    """The float network to explain ``head`` on, for a (possibly ensemble) manifest."""
    path = Path(manifest_path) if manifest_path else SHIPPED
    manifest = check_head(path, head)
    version = str(manifest.get("version"))
    if "ensemble" not in manifest:
        entry = manifest.get("float32", manifest)
        if not _float_weights_here(path, entry):
            raise WeightsError(f"the float weights of {path.name} ({entry.get('file')}) are "
                               "missing or do not match their sha256: restore or re-export")
        kind = "int8, from this float network" if "float32" in manifest else "float"
        return Network(path, version, f"{version} ({kind})",
                       f"maps computed on audience-mt {version}'s float network")
    members = manifest["ensemble"]
    serving = next((m for m in members if head in m.get("used_for", [])), None)
    if serving is None:
        raise InputError(f"{path.name}: no member of the ensemble serves {head!r}")
    served = f"{serving['version']} (int8, in the {version} ensemble)"
    own = path.parent / f"{serving['name']}-{serving['version']}.json"
    if own.is_file() and _float_weights_here(own, serving):
        return Network(own, str(serving["version"]), served,
                       f"maps computed on audience-mt {serving['version']}, the float network "
                       f"{version} serves {head} from (int8 there)")
    # The serving member's float weights are not in the tree: use the member it was trained
    # from, where that one's are (2.4.0's emotion network started from 2.1.0).
    start = str(serving.get("training", {}).get("init_from") or "")
    for m in members:
        cand = path.parent / f"{m['name']}-{m['version']}.json"
        if (Path(start).name == cand.name and cand.is_file()
                and _float_weights_here(cand, m)):
            return Network(cand, str(m["version"]), served,
                           f"maps computed on audience-mt {m['version']}: {version} serves "
                           f"{head} from {serving['version']}, trained from {m['version']}, "
                           "whose float weights are not in the tree")
    raise WeightsError(f"the float weights of {serving['file']} (which serves {head} in "
                       f"{version}) are not in {path.parent}: export them to explain {head}")


# -- the Keras model and the gradients ------------------------------------------------------
class Explainer:
    """One head's maps on one float network."""

    def __init__(self, head: str, network: Network) -> None:
        keras = require_training_stack()
        from audience.models.warmstart import emotion_block_width, keras_from_manifest

        self.head, self.network = head, network
        manifest = _read(network.manifest)
        self.size = int(manifest["input"]["size"])
        self.channels = int(manifest["input"].get("channels", 1))
        self.outputs = manifest["outputs"]
        self.model = keras_from_manifest(network.manifest, self.channels, calibration=None)
        if emotion_block_width(self.model):  # _forward walks the blocks as one chain
            raise InputError(f"{Path(network.manifest).name}: explain reads networks whose "
                             "heads share every block; this one gives emotion its own last "
                             "block (audience train --emotion-block)")
        names = [layer.name for layer in self.model.layers]
        # The last convolution block's output: its last ReLU before the pooling.
        self.last_conv = [n for n in names if re.fullmatch(r"b\d+r\d+", n)][-1]
        self._keras = keras
        log.info("explaining %s on %s", head, network.note)

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        out = self.model(x, training=False)
        return {k: np.asarray(v) for k, v in out.items()}

    def label(self, raw: dict[str, np.ndarray], i: int) -> tuple[str, float | None]:
        """The head's answer for face ``i``: its text and, for a class, its probability."""
        p = raw[self.head][i]
        if self.head == "age":
            return f"{float(p @ np.arange(len(p))):.0f} years", None
        if self.head == "gender":
            classes = self.outputs["gender"]["classes"]
            female = float(p[0]) >= 0.5
            return classes[1 if female else 0], float(p[0] if female else 1 - p[0])
        classes = list(self.outputs[self.head])
        k = int(p.argmax())
        return classes[k], float(p[k])

    def _forward(self, x: Any, guided: bool) -> tuple[Any, Any]:
        """(the last conv block's output, the answer explained) for a batch, with guided
        ReLUs where asked. Walks the layers in order: the backbone is a chain, the heads
        read its pooled features."""
        import tensorflow as tf

        keras = self._keras

        @tf.custom_gradient
        def guided_relu(t: Any) -> Any:
            y = tf.nn.relu(t)

            def grad(dy: Any) -> Any:
                return dy * tf.cast(t > 0, dy.dtype) * tf.cast(dy > 0, dy.dtype)

            return y, grad

        relu = guided_relu if guided else tf.nn.relu
        h, conv = x, None
        layers = {layer.name: layer for layer in self.model.layers}
        for layer in self.model.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            if layer.name in ("gap", "flat"):
                h = layer(h)
                break
            h = relu(h) if isinstance(layer, keras.layers.ReLU) else layer(h, training=False)
            if layer.name == self.last_conv:
                conv = h
        fc = layers.get(f"{self.head}_fc")
        if fc is not None:
            h = relu(tf.matmul(h, fc.kernel) + fc.bias)
        out = layers[self.head]
        logits = tf.matmul(h, out.kernel) + out.bias
        if self.head == "age":
            probs = tf.nn.softmax(logits)
            answer = tf.reduce_sum(probs * tf.range(probs.shape[-1], dtype=probs.dtype), -1)
        elif self.head == "gender":
            z = logits[:, 0]
            answer = tf.where(z >= 0, z, -z)  # the predicted gender's logit
        else:
            answer = tf.reduce_max(logits, axis=-1)  # the predicted class's logit
        return conv, answer

    def maps(self, x: np.ndarray, method: str) -> np.ndarray:
        """(N, size, size) float32 maps in [0, 1] for prepared faces ``x`` (N, size, size, C)."""
        import tensorflow as tf

        if method not in METHODS:
            raise InputError(f"unknown method {method!r}: choose {' or '.join(METHODS)}")
        t = tf.convert_to_tensor(x.astype(np.float32))
        with tf.GradientTape() as tape:
            tape.watch(t)
            conv, answer = self._forward(t, guided=method == "guided")
        if method == "guided":
            grad = tape.gradient(answer, t).numpy()
            heat = np.abs(grad).max(axis=-1)
        else:
            grad = tape.gradient(answer, conv).numpy()
            weights = grad.mean(axis=(1, 2), keepdims=True)
            cam = np.maximum((weights * conv.numpy()).sum(-1), 0.0)
            heat = np.stack([cv2.resize(c, (self.size, self.size),
                                        interpolation=cv2.INTER_LINEAR) for c in cam])
        lo = heat.min(axis=(1, 2), keepdims=True)
        hi = heat.max(axis=(1, 2), keepdims=True)
        return ((heat - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float32)


# -- faces in, pictures out -------------------------------------------------------------------
@dataclass
class Explained:
    """One face: what the model saw (display size), its label, the map (model size)."""

    face: np.ndarray  #: BGR uint8, the model's framing at display size
    label: str
    score: float | None
    heat: np.ndarray  #: (size, size) float32 in [0, 1]


def display_face(image: np.ndarray, landmarks: np.ndarray | None, side: int) -> np.ndarray:
    """The face as the model frames it, at ``side`` pixels (BGR uint8): aligned on the
    template where there are landmarks, else the image itself (a framed chip) resized."""
    if landmarks is not None:
        return align_face(image, landmarks, side, channels=3)
    img = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.resize(img[:, :, :3], (side, side), interpolation=cv2.INTER_CUBIC)


def explain_faces(explainer: Explainer, faces: list[tuple[np.ndarray, np.ndarray | None]],
                  method: str, side: int = 144) -> list[Explained]:
    """Maps for (image, landmarks or None) pairs, framed as the analyzer frames them."""
    if not faces:
        return []
    x = np.stack([prepare_face(img, lm, explainer.size, explainer.channels)
                  for img, lm in faces])
    raw = explainer.predict(x)
    heat = explainer.maps(x, method)
    out = []
    for i, (img, lm) in enumerate(faces):
        text, score = explainer.label(raw, i)
        out.append(Explained(display_face(img, lm, side), text, score, heat[i]))
    return out


def overlay(face: np.ndarray, heat: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """The map in colour (JET: red where the head looked most) over the face."""
    h = cv2.resize(heat, face.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap((255 * h).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(face, 1 - alpha, colour, alpha, 0)


def side_by_side(e: Explained, head: str, method: str, network: str) -> np.ndarray:
    """The face and its map side by side under a caption: head, label, method, network."""
    face = e.face
    pair = np.hstack([face, overlay(face, e.heat)])
    caption = np.full((40, pair.shape[1], 3), 255, np.uint8)
    score = f" ({e.score:.2f})" if e.score is not None else ""
    cv2.putText(caption, f"{head}: {e.label}{score}", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(caption, f"{method} on {network}", (4, 34), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                (80, 80, 80), 1, cv2.LINE_AA)
    return np.vstack([caption, pair])


# -- `audience explain` ---------------------------------------------------------------------
def find_faces(paths: list[Path], aligned: bool = False,
               ) -> list[tuple[Path, np.ndarray, list[np.ndarray | None]]]:
    """Each image and its faces' landmarks, found as `audience analyze` finds them: YuNet on
    the image, largest face first (``aligned``: the image is one face chip, aligned on its own
    landmarks where YuNet finds them). An unreadable image or one without a face is an
    InputError, before anything is written."""
    from audience.core.images import read_image
    from audience.ingest.detect import YuNetDetector, chip_detector, chip_landmarks

    detector = chip_detector() if aligned else YuNetDetector(work_width=1280)
    found = []
    for path in paths:
        if not Path(path).is_file():
            raise InputError(f"image {path} not found: check the path")
        img = read_image(path, cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"cannot decode {path}: not an image format OpenCV reads")
        if aligned:
            marks, ok = chip_landmarks(img, detector)
            landmarks: list[np.ndarray | None] = [marks if ok else None]
        else:
            faces = sorted(detector.detect(img), key=lambda f: -f.size)
            landmarks = [f.landmarks for f in faces]
        if not landmarks:
            raise InputError(f"no face found in {path}: pass an image with a face, or "
                             "--aligned for a face chip")
        found.append((Path(path), img, landmarks))
    return found


def _names(paths: list[Path]) -> list[str]:
    stems = [p.stem for p in paths]
    unique = len(set(stems)) == len(stems)
    return stems if unique else [f"{i:02d}-{s}" for i, s in enumerate(stems)]


def explain_images(paths: list[Path], head: str, out: Path, method: str = "guided",
                   aligned: bool = False, weights: Path | None = None,
                   ) -> tuple[Network, list[dict]]:
    """`audience explain`: one PNG per face in ``out`` (the face, its label and the map,
    side by side); returns the network used and one row per face."""
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}: choose {' or '.join(METHODS)}")
    network = network_for(head, weights)
    images = find_faces(paths, aligned)
    explainer = Explainer(head, network)
    rows, pictures = [], []
    for (path, img, marks), name in zip(images, _names([p for p, _, _ in images]),
                                        strict=True):
        for i, e in enumerate(explain_faces(explainer, [(img, m) for m in marks], method)):
            png = Path(out) / f"{name}-face{i}-{head}-{method}.png"
            pictures.append((png, side_by_side(e, head, method, network.name)))
            rows.append({"image": str(path), "face": i, "head": head, head: e.label,
                         "score": None if e.score is None else round(e.score, 4),
                         "method": method, "network": network.name, "png": str(png)})
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {out} ({exc.strerror}): pick a writable --out") from None
    for png, picture in pictures:
        if not cv2.imwrite(str(png), picture):
            raise InputError(f"cannot write {png}: pick a writable --out")
    return network, rows
