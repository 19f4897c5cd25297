"""What face-api.js's nets share (MIT, npm ``@vladmandic/face-api@1.7.15``): the input and the
layers of ``src/common/``, over tensors loaded by name from a ``*-weights_manifest.json``.

Input (``NetInput.toBatchTensor(112)`` then ``ops/normalize.ts``, as both
``xception/TinyXception.ts`` and ``faceFeatureExtractor/FaceFeatureExtractor.ts`` call them):
112x112 RGB, ``(x - mean_rgb) / 255``. Layers: a conv plus bias (``convLayer``), a separable
conv plus bias (``depthwiseSeparableConv``), both 'same' padded.
"""

from __future__ import annotations

import numpy as np

from audience.models.teachers import TeacherError, teacher_file
from audience.models.teachers.tfjs import read_manifest_file

SIZE = 112
MEAN_RGB = np.array([122.782, 117.001, 104.298], np.float32)


class FaceApiNet:
    """A face-api.js net's weights (``model/<manifest>`` of the face-api package) and the
    shared layers; subclasses write the forward pass from the net's own source."""

    def __init__(self, manifest: str, name: str) -> None:
        import tensorflow as tf

        self.name = name
        path = teacher_file("face-api", f"model/{manifest}")
        self.w = {k: tf.constant(v) for k, v in read_manifest_file(path).items()}
        # No autograph (the forward pass has no tensor-dependent control flow): with it, a
        # TeacherError raised while tracing would come out as a many-line StagingError.
        self._fn = tf.function(self._forward, reduce_retracing=True, autograph=False)

    def _forward(self, x):
        raise NotImplementedError

    def _get(self, name: str):
        if name not in self.w:
            raise TeacherError(f"{self.name}: tensor {name} is missing from the weights")
        return self.w[name]

    def _conv(self, x, prefix: str, stride: int):
        import tensorflow as tf

        return tf.nn.conv2d(x, self._get(f"{prefix}/filters"), stride, "SAME") \
            + self._get(f"{prefix}/bias")

    def _sep(self, x, prefix: str, stride: int = 1):
        import tensorflow as tf

        # tfjs separableConv2d: the stride applies to the depthwise step, as in TF.
        return tf.nn.separable_conv2d(x, self._get(f"{prefix}/depthwise_filter"),
                                      self._get(f"{prefix}/pointwise_filter"),
                                      [1, stride, stride, 1], "SAME") \
            + self._get(f"{prefix}/bias")

    @staticmethod
    def preprocess(faces: np.ndarray) -> np.ndarray:
        """uint8 gray (N, H, W) or BGR (N, H, W, 3) square crops -> (N, 112, 112, 3) float32,
        RGB, bilinear resize (face-api's ``toBatchTensor``), ``(x - mean_rgb) / 255``."""
        import tensorflow as tf

        rgb = np.repeat(faces[..., None], 3, -1) if faces.ndim == 3 else faces[..., ::-1]
        x = tf.image.resize(rgb.astype(np.float32), (SIZE, SIZE), "bilinear").numpy()
        return (x - MEAN_RGB) / 255.0
