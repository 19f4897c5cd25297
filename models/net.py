"""The multi-task network: one VGG-style backbone, four heads, per-head masked losses.

Each training sample carries labels for some heads only (FER-2013 rows: emotion; UTKFace
chips: age, gender, ethnicity). Every head's target has one extra last column, the mask;
a head's loss is averaged over the samples that carry its label.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from audience.models.backbone import EMOTION_BLOCK, Backbone
from audience.models.data import EMOTIONS, ETHNICITIES
from audience.models.train import TASKS

AGE_BINS = 101  # 0..100 years, DEX-style expectation over a softmax


#: Backbone families ``build_model`` knows (``audience train --backbone``).
BACKBONES = tuple(b.value for b in Backbone)

#: How the heads read the backbone (``audience train --head``): ``flatten`` keeps where a
#: feature sits; ``gap`` (global average pooling) is the measured teachers recipe's head.
HEADS = ("flatten", "gap")


def check_backbone(name: str) -> None:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")


def _vgg(x: keras.KerasTensor, widths: tuple[int, ...], first_convs: int = 1,
         first: int = 0, prefix: str = "") -> keras.KerasTensor:
    """Blocks ``first``, ``first + 1``... named ``{prefix}b{i}c{j}`` (conv), ``bn``, ``r``."""
    for i, w in enumerate(widths, start=first):
        # One conv at full resolution by default: the costliest layer per parameter on a CPU.
        for j in range(first_convs if i == 0 else 2):
            x = layers.Conv2D(w, 3, padding="same", use_bias=False,
                              name=f"{prefix}b{i}c{j}")(x)
            x = layers.BatchNormalization(name=f"{prefix}b{i}bn{j}")(x)
            x = layers.ReLU(name=f"{prefix}b{i}r{j}")(x)
        x = layers.MaxPooling2D(name=f"{prefix}b{i}pool")(x)
    return x


def _sep(x: keras.KerasTensor, widths: tuple[int, ...]) -> keras.KerasTensor:
    """Residual depthwise-separable blocks (mini-Xception style): far fewer multiply-adds
    than ``_vgg`` at the same widths (sep-32-256 runs at about the speed of vgg-16-128; the
    model card's trade-off table has the measured figures)."""
    x = layers.Conv2D(max(widths[0] // 2, 8), 3, padding="same", use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_r")(x)
    for i, w in enumerate(widths):
        skip = layers.Conv2D(w, 1, strides=2, padding="same", use_bias=False, name=f"s{i}skip")(x)
        skip = layers.BatchNormalization(name=f"s{i}skip_bn")(skip)
        for j in range(2):
            if j:
                x = layers.ReLU(name=f"s{i}r{j}")(x)
            x = layers.SeparableConv2D(w, 3, padding="same", use_bias=False, name=f"s{i}c{j}")(x)
            x = layers.BatchNormalization(name=f"s{i}bn{j}")(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"s{i}pool")(x)
        x = layers.Add(name=f"s{i}add")([x, skip])
    return layers.ReLU(name="top_r")(x)


def build_model(size: int = 48, widths: tuple[int, ...] = (32, 64, 128, 256),
                dropout: float = 0.3, backbone: str = "vgg", channels: int = 1,
                head_type: str = "flatten", emotion_block: int = 0) -> keras.Model:
    """``emotion_block``: if > 0, emotion gets its own last block of this width (vgg
    backbones, gap head): the demographics and emotion share every block but the last, where
    the features of one task would crowd out the other's."""
    check_backbone(backbone)
    if head_type not in HEADS:
        raise ValueError(f"unknown head {head_type!r}: choose one of {', '.join(HEADS)}")
    if emotion_block and (backbone == "sep" or head_type != "gap"):
        raise ValueError("an emotion block needs a vgg or vgg2 backbone and the gap head")
    inp = keras.Input((size, size, channels), name="face")
    first_convs = 2 if backbone == "vgg2" else 1
    if backbone == "sep":
        x = _sep(inp, widths)
    else:  # the stem, then the last block, from which an emotion block may branch off
        stem = _vgg(inp, widths[:-1], first_convs)
        x = _vgg(stem, widths[-1:], first_convs, first=len(widths) - 1)
        if emotion_block:
            e = _vgg(stem, (emotion_block,), first_convs, first=len(widths) - 1,
                     prefix=EMOTION_BLOCK)
            e = layers.GlobalAveragePooling2D(name=f"{EMOTION_BLOCK}gap")(e)
    if head_type == "gap":
        x = layers.GlobalAveragePooling2D(name="gap")(x)
    else:
        # Flatten: where a feature sits (mouth vs eyes) matters for expression.
        x = layers.Flatten(name="flat")(x)

    def head(name: str, hidden: int, units: int, activation: str,
             features: keras.KerasTensor = x) -> keras.KerasTensor:
        # Outputs stay float32 under mixed bfloat16 training: softmax and losses need it.
        if hidden == 0:  # the recipe's emotion head: dropout, then straight to the classes
            h = layers.Dropout(dropout, name=f"{name}_drop")(features)
        else:
            h = layers.Dense(hidden, activation="relu", name=f"{name}_fc")(features)
            h = layers.Dropout(dropout, name=f"{name}_drop")(h)
        return layers.Dense(units, activation=activation, name=name, dtype="float32")(h)

    outputs = {
        "emotion": head("emotion", 0 if head_type == "gap" else 256, len(EMOTIONS), "softmax",
                        e if emotion_block else x),
        "age": head("age", 128, AGE_BINS, "softmax"),
        "gender": head("gender", 64, 1, "sigmoid"),
        "ethnicity": head("ethnicity", 128, len(ETHNICITIES), "softmax"),
    }
    return keras.Model(inp, outputs, name="audience_mt")


def _split(y_true: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    target, mask = y_true[:, :-1], y_true[:, -1]
    scale = tf.cast(tf.shape(mask)[0], mask.dtype) / tf.maximum(tf.reduce_sum(mask), 1.0)
    return target, mask, scale


def masked_categorical(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Cross-entropy against a (soft) target distribution; last target column is the mask."""
    target, mask, scale = _split(y_true)
    ce = keras.losses.categorical_crossentropy(target, y_pred)
    return ce * mask * scale


def masked_binary(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    target, mask, scale = _split(y_true)
    bce = keras.losses.binary_crossentropy(target, y_pred)
    return bce * mask * scale


def age_expectation(probs: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(probs * tf.range(AGE_BINS, dtype=probs.dtype), axis=-1)


def masked_age(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Label-distribution loss (a Gaussian around the true age, wider for older people, whose
    apparent age varies more) plus L1 on the expected age, in decades."""
    target, mask, scale = _split(y_true)
    age = target[:, 0]
    bins = tf.range(AGE_BINS, dtype=age.dtype)[None, :]
    sigma = 1.0 + 0.08 * age[:, None]
    # A softmax of the log-weights, not exp then normalise: the same distribution, but an age
    # far outside 0..100 with a narrow sigma (a teacher's pseudo-label of -9 years, say)
    # would underflow every bin to 0 and make 0/0.
    dist = tf.nn.softmax(-0.5 * tf.square((bins - age[:, None]) / sigma), axis=-1)
    ce = keras.losses.categorical_crossentropy(dist, y_pred)
    l1 = tf.abs(age_expectation(y_pred) - age) / 10.0
    return (ce + l1) * mask * scale


def masked_kd(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Knowledge distillation with a hard target (Hinton et al.): the target columns are
    ``[hard (C) | teacher softened at T (C) | T | alpha | mask]``; the loss is
    ``(1 - alpha) * CE(hard, p) + alpha * T^2 * KL(teacher_T || p_T)``. The network outputs
    probabilities, so ``p_T = softmax(log p / T)`` (the softmax's shift cancels)."""
    n = tf.shape(y_pred)[-1]
    hard, soft = y_true[:, :n], y_true[:, n:2 * n]
    temp, alpha, mask = y_true[:, 2 * n], y_true[:, 2 * n + 1], y_true[:, -1]
    scale = tf.cast(tf.shape(mask)[0], mask.dtype) / tf.maximum(tf.reduce_sum(mask), 1.0)
    p = tf.cast(y_pred, tf.float32)
    ce = keras.losses.categorical_crossentropy(hard, p)
    log_pt = tf.nn.log_softmax(tf.math.log(tf.clip_by_value(p, 1e-7, 1.0)) / temp[:, None])
    kl = tf.reduce_sum(soft * (tf.math.log(tf.clip_by_value(soft, 1e-7, 1.0)) - log_pt), -1)
    return ((1 - alpha) * ce + alpha * tf.square(temp) * kl) * mask * scale


class MaskedAccuracy(keras.metrics.Metric):
    """Accuracy over the samples that carry this head's label."""

    def __init__(self, binary: bool = False, name: str = "acc", **kw) -> None:
        super().__init__(name=name, **kw)
        self.binary = binary
        self.hits = self.add_weight(name="hits", initializer="zeros")
        self.count = self.add_weight(name="count", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        # The first columns are the (hard) target: masked_kd's targets carry more after them.
        target, mask = y_true[:, :tf.shape(y_pred)[-1]], y_true[:, -1]
        if self.binary:
            hit = tf.cast(tf.equal(target[:, 0] > 0.5, y_pred[:, 0] > 0.5), mask.dtype)
        else:
            hit = tf.cast(tf.equal(tf.argmax(target, -1), tf.argmax(y_pred, -1)), mask.dtype)
        self.hits.assign_add(tf.reduce_sum(hit * mask))
        self.count.assign_add(tf.reduce_sum(mask))

    def result(self):
        return self.hits / tf.maximum(self.count, 1.0)

    def get_config(self):
        return {**super().get_config(), "binary": self.binary}


class MaskedAgeMAE(keras.metrics.Metric):
    def __init__(self, name: str = "mae", **kw) -> None:
        super().__init__(name=name, **kw)
        self.err = self.add_weight(name="err", initializer="zeros")
        self.count = self.add_weight(name="count", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        age, mask = y_true[:, 0], y_true[:, -1]
        self.err.assign_add(tf.reduce_sum(tf.abs(age_expectation(y_pred) - age) * mask))
        self.count.assign_add(tf.reduce_sum(mask))

    def result(self):
        return self.err / tf.maximum(self.count, 1.0)


CUSTOM_OBJECTS = {
    "masked_categorical": masked_categorical,
    "masked_binary": masked_binary,
    "masked_age": masked_age,
    "masked_kd": masked_kd,
    "MaskedAccuracy": MaskedAccuracy,
    "MaskedAgeMAE": MaskedAgeMAE,
}


def compile_model(model: keras.Model, schedule: keras.optimizers.schedules.LearningRateSchedule
                  | float, weight_decay: float = 1e-4, optimizer: str = "adamw",
                  kd: bool = False, tasks: tuple[str, ...] = TASKS) -> None:
    """``optimizer``: ``adamw`` or ``sgd`` (Nesterov momentum 0.9, decoupled weight decay:
    the teachers recipe). ``kd``: the emotion target is ``masked_kd``'s. Heads not in ``tasks``
    get loss weight 0 (they keep their outputs, so the exported layout is the same)."""
    weights = {"emotion": 1.0, "age": 0.5, "gender": 1.0, "ethnicity": 1.0}
    if optimizer == "sgd":
        opt = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9, nesterov=True,
                                   weight_decay=weight_decay)
    else:
        opt = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=weight_decay)
    model.compile(
        optimizer=opt,
        loss={"emotion": masked_kd if kd else masked_categorical, "age": masked_age,
              "gender": masked_binary,
              "ethnicity": masked_categorical},
        loss_weights={k: w if k in tasks else 0.0 for k, w in weights.items()},
        metrics={"emotion": [MaskedAccuracy(name="acc")], "age": [MaskedAgeMAE(name="mae")],
                 "gender": [MaskedAccuracy(binary=True, name="acc")],
                 "ethnicity": [MaskedAccuracy(name="acc")]},
    )
