"""face-api.js FaceExpressionNet (MIT) from npm ``@vladmandic/face-api@1.7.15``.

The weights file holds named tensors only; the layers below follow face-api.js's source
(``src/faceFeatureExtractor/FaceFeatureExtractor.ts`` and ``denseBlock.ts``,
``src/faceProcessor/FaceProcessor.ts``, ``src/faceExpressionNet/FaceExpressionNet.ts``):
112x112 RGB input, ``(x - mean_rgb) / 255``; four ``denseBlock4`` (the first opens with a
stride-2 conv, the others with a stride-2 separable conv; each later separable conv reads the
ReLU of the sum of the block's earlier outputs), 112 -> 7 pixels at 256 channels; 7x7 average
pool; ``fc`` (256 -> 7) and a softmax.

face-api.js orders its scores neutral, happy, sad, angry, fearful, disgusted, surprised
(``FaceExpressions.ts``); they come back here in FER-2013 order (angry, disgust, fear, happy,
sad, surprise, neutral), the order of ``models.data.EMOTIONS`` and of mini-Xception.
"""

from __future__ import annotations

import numpy as np

from audience.models.teachers import check_shape
from audience.models.teachers.faceapi import FaceApiNet

NAME = "FaceExpressionNet (face-api 1.7.15 face_expression_model)"
#: face-api.js's class order (``FACE_EXPRESSION_LABELS``).
FACE_API_LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
#: For each FER-2013 class in order, its column in face-api.js's output.
TO_FER = [FACE_API_LABELS.index(n)
          for n in ("angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral")]
DENSE_BLOCKS = 4


class FaceExpressionNet(FaceApiNet):
    """Callable: uint8 faces (N, H, W) gray or (N, H, W, 3) BGR -> (N, 7) probabilities in
    FER-2013 order."""

    def __init__(self) -> None:
        super().__init__("face_expression_model-weights_manifest.json", NAME)

    def _dense_block(self, x, prefix: str, first: bool = False):
        import tensorflow as tf

        # denseBlock4 (isScaleDown): conv0 halves the size; each later conv reads the ReLU of
        # the sum of the block's outputs so far (relu(out1) is out1: out1 is already a ReLU).
        conv0 = self._conv(x, f"{prefix}/conv0", 2) if first \
            else self._sep(x, f"{prefix}/conv0", 2)
        total = tf.nn.relu(conv0)
        for j in range(1, 4):
            total = total + self._sep(tf.nn.relu(total), f"{prefix}/conv{j}")
        return tf.nn.relu(total)

    def _forward(self, x):
        import tensorflow as tf

        out = self._dense_block(x, "dense0", first=True)
        for i in range(1, DENSE_BLOCKS):
            out = self._dense_block(out, f"dense{i}")
        pooled = tf.reshape(tf.nn.avg_pool2d(out, 7, 2, "VALID"), (tf.shape(out)[0], -1))
        logits = pooled @ self._get("fc/weights") + self._get("fc/bias")
        return tf.gather(tf.nn.softmax(logits), TO_FER, axis=1)

    def __call__(self, faces: np.ndarray, batch: int = 128) -> np.ndarray:
        outs = [self._fn(self.preprocess(faces[i:i + batch])).numpy()
                for i in range(0, len(faces), batch)]
        out = np.concatenate(outs) if outs else np.zeros((0, 7), np.float32)
        return check_shape(NAME, out, (len(faces), 7))
