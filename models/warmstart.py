"""Start training from a shipped model: its ONNX weights back into a trainable Keras model.

Only the ONNX file ships (the Keras checkpoint is too large for the weights budget), and the
exporter folds each BatchNormalization into the convolution before it. Unfolding is exact:
the convolution keeps the folded kernel, and its BatchNormalization is set so that it adds
the folded bias and otherwise passes its input through, scaled back by the spread it will
see in training (measured on ``calibration`` inputs), so the first training steps start
from the shipped model's function rather than from a rescaled one.

A gray model's first kernel is spread over the colour channels by their luma weights, so a
colour model starts out computing exactly what the gray model computes on the luma.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from audience.core.errors import InputError
from audience.core.preprocess import LUMA_BGR
from audience.models.backbone import EMOTION_BLOCK

log = logging.getLogger(__name__)


def _onnx_weights(onnx_path: Path) -> dict[str, np.ndarray]:
    """Initializers by Keras layer name: ``{"b0c0": kernel, "b0bn0": bias, "age_fc": ...}``."""
    import onnx
    from onnx import numpy_helper

    out: dict[str, np.ndarray] = {}
    for init in onnx.load(str(onnx_path)).graph.initializer:
        parts = init.name.split("/")
        if len(parts) < 3:
            continue
        layer = parts[1].removesuffix("_1")  # the exporter's copy of the Keras layer name
        kind = "kernel" if parts[2] in ("Cast", "convolution") else "bias"
        out[f"{layer}/{kind}"] = numpy_helper.to_array(init)
    return out


def keras_from_manifest(manifest_path: str | Path, channels: int,
                        calibration: np.ndarray | None, dropout: float = 0.3,
                        size: int | None = None):
    """A Keras model (same architecture as ``models.net.build_model``) holding a shipped
    model's weights; ``calibration`` is a few thousand prepared training inputs, or None for
    a model only run in inference mode (`audience explain`): it then computes the ONNX
    function exactly, without the spreads training needs. ``size``: the input side to build
    (default the manifest's); a gap head takes any size, since its weights do not depend on
    it."""
    import keras

    from audience.inference.analyzer import load_manifest
    from audience.models.net import build_model

    manifest, onnx_path = load_manifest(Path(manifest_path), float32=True)
    if "ensemble" in manifest:
        raise ValueError(f"{manifest_path} is an ensemble of {len(manifest['ensemble'])} "
                         "networks (models.ensemble): warm-start from one member's manifest")
    weights = _onnx_weights(onnx_path)
    if "b0c0/kernel" not in weights:
        raise ValueError(f"{manifest_path}: only the vgg and vgg2 backbones can be warm-started")
    blocks = sum(f"b{i}c0/kernel" in weights for i in range(16))
    widths = tuple(int(weights[f"b{i}c0/kernel"].shape[0]) for i in range(blocks))
    shipped = int(manifest["input"]["size"])
    # The structure is read off the weights: two convolutions in the first block is the
    # vgg2 backbone; no hidden emotion layer is the global-average-pooling head.
    backbone = "vgg2" if "b0c1/kernel" in weights else "vgg"
    head = "flatten" if "emotion_fc/kernel" in weights else "gap"
    own = weights.get(f"{EMOTION_BLOCK}b{blocks - 1}c0/kernel")  # emotion's own last block
    emotion_block = 0 if own is None else int(own.shape[0])
    size = size or shipped
    if size != shipped and head == "flatten":
        raise InputError(f"{manifest_path} has a flatten head, which fixes its input at "
                         f"{shipped}x{shipped}: start a {size}x{size} model from a gap-head model")
    model = build_model(size, widths, dropout, backbone=backbone, channels=channels,
                        head_type=head, emotion_block=emotion_block)
    for layer in model.layers:
        name = layer.name
        if isinstance(layer, keras.layers.Conv2D):
            k = weights[f"{name}/kernel"].transpose(2, 3, 1, 0)  # OIHW -> HWIO
            if k.shape[2] == 1 and channels == 3:
                k = k * LUMA_BGR[None, None, :, None]
            elif k.shape[2] != layer.kernel.shape[2]:
                raise ValueError(f"{manifest_path} takes {k.shape[2]}-channel faces: a "
                                 f"{channels}-channel model cannot start from it")
            layer.set_weights([k])
        elif isinstance(layer, keras.layers.Dense):
            layer.set_weights([weights[f"{name}/kernel"], weights[f"{name}/bias"]])
        elif isinstance(layer, keras.layers.BatchNormalization):
            bias = weights[f"{name}/bias"]
            one = np.ones_like(bias)
            layer.set_weights([one, bias, np.zeros_like(bias), one - layer.epsilon])
    # Now the model computes the ONNX function; measure each convolution's output spread and
    # move it into gamma, so training-mode batch statistics give back the same function.
    if calibration is None:
        return model
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    probe = keras.Model(model.input, [c.output for c in convs])
    outs = probe.predict(calibration, batch_size=256, verbose=0)
    for conv, y in zip(convs, outs, strict=True):
        bn = model.get_layer(conv.name.replace("c", "bn", 1))  # b1c0 -> b1bn0
        # In float64: under --bf16 the probe returns bfloat16, and numpy's bfloat16 sums over
        # millions of values are garbage. Inference mode hides it (the statistics cancel); in
        # training mode (batch statistics) it once wrecked every warm start under --bf16:
        # gender at chance on the first training batches.
        y = np.asarray(y, np.float64).reshape(-1, y.shape[-1])
        mu, sigma = (y.mean(0).astype(np.float32),
                     (y.std(0) + 1e-6).astype(np.float32))
        bias = weights[f"{bn.name}/bias"]
        bn.set_weights([sigma, mu + bias, mu, np.maximum(sigma**2 - bn.epsilon, 1e-9)])
    log.info("warm start from %s (%s): %s backbone, %s head, widths %s, %d channels",
             manifest_path, manifest["version"], backbone, head, widths, channels)
    return model


def emotion_block_width(model) -> int:
    """Width of emotion's own last block (``build_model(emotion_block=W)``), 0 if none."""
    own = [layer for layer in model.layers
           if layer.name.startswith(EMOTION_BLOCK) and layer.name.endswith("c0")]
    return own[0].filters if own else 0


def add_emotion_block(model, width: int, dropout: float = 0.3):
    """``model`` (a vgg/vgg2 gap network) with emotion's own last block of ``width``. At the
    last block's own width the new block starts as a copy of it, so the network starts out
    computing ``model``'s function; at another width it and the emotion head start fresh."""
    from audience.models.net import build_model

    widths, backbone, head = structure(model)
    if emotion_block_width(model):
        raise ValueError("the network already has an emotion block")
    branched = build_model(int(model.input.shape[1]), widths, dropout, backbone=backbone,
                           channels=int(model.input.shape[-1]), head_type=head,
                           emotion_block=width)
    names = {layer.name for layer in model.layers}
    copy = width == widths[-1]
    for layer in branched.layers:
        if not layer.weights:
            continue
        if layer.name in names and (copy or layer.name != "emotion"):
            layer.set_weights(model.get_layer(layer.name).get_weights())
        elif copy and layer.name.startswith(EMOTION_BLOCK):
            twin = model.get_layer(layer.name.removeprefix(EMOTION_BLOCK))
            layer.set_weights(twin.get_weights())
    log.info("emotion block of width %d added (%s)", width,
             "a copy of the last block" if copy else "fresh, with a fresh emotion head")
    return branched


def structure(model) -> tuple[tuple[int, ...], str, str]:
    """(widths, backbone, head) of a ``models.net.build_model`` vgg network, read off its
    layer names: what a warm-started run really trains, whatever its command line said."""
    names = {layer.name for layer in model.layers}
    widths = tuple(layer.filters for layer in model.layers
                   if layer.name.startswith("b") and layer.name.endswith("c0"))
    return (widths, "vgg2" if "b0c1" in names else "vgg",
            "gap" if "gap" in names else "flatten")


def grows(have: tuple[int, ...], want: tuple[int, ...]) -> bool:
    """Whether ``widen`` can take block widths ``have`` to ``want``: as many blocks, none
    narrower."""
    return len(want) == len(have) and all(w >= h for w, h in zip(want, have, strict=True))


def _split(rng: np.random.Generator, copy_of: np.ndarray, outputs: int) -> np.ndarray:
    """For each new input unit and each output, the share of its old unit's weight it carries:
    random, summing to 1 over the copies of an old unit, so the function is kept exactly while
    the copies receive different gradients from the first step (equal shares would keep them
    twins forever: BatchNorm cancels a copy's scale)."""
    share = rng.uniform(0.5, 1.5, size=(len(copy_of), outputs))
    total = np.zeros((int(copy_of.max()) + 1, outputs))
    np.add.at(total, copy_of, share)
    return (share / total[copy_of]).astype(np.float32)


def widen(model, widths: tuple[int, ...], dropout: float = 0.3, seed: int = 0):
    """A wider copy of a ``models.net.build_model`` vgg/vgg2 network computing the same function
    (Net2WiderNet, Chen, Goodfellow and Shlens, 2016): each new channel copies a random old
    channel (its kernel and BatchNorm), and the next layer splits the old channel's outgoing
    weights among its copies. A narrow shipped model thus starts a wider network's training."""
    import keras

    from audience.models.net import build_model

    old, backbone, head = structure(model)
    if emotion_block_width(model):
        raise ValueError("widen a network before it has an emotion block, not after")
    if not grows(old, tuple(widths)):
        raise ValueError(f"cannot widen {old} to {widths}: give as many blocks, none narrower")
    wide = build_model(int(model.input.shape[1]), tuple(widths), dropout, backbone=backbone,
                       channels=int(model.input.shape[-1]), head_type=head)
    rng = np.random.default_rng(seed)
    copy_of = np.arange(int(model.input.shape[-1]))  # input channels stay as they are
    for layer in wide.layers:
        src = model.get_layer(layer.name)
        if isinstance(layer, keras.layers.Conv2D):
            (k,) = src.get_weights()
            n = layer.filters
            out = np.concatenate([np.arange(k.shape[3]),
                                  rng.integers(0, k.shape[3], n - k.shape[3])])
            share = _split(rng, copy_of, n)
            layer.set_weights([k[:, :, copy_of][..., out] * share[None, None]])
            copy_of = out
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([w[copy_of] for w in src.get_weights()])
        elif isinstance(layer, keras.layers.Dense):
            kernel, bias = src.get_weights()
            rows = layer.kernel.shape[0]
            if rows != kernel.shape[0]:  # reads the backbone: (positions x) old channels
                channels = len(copy_of)
                old_channels = kernel.shape[0] * channels // rows
                kernel = kernel.reshape(-1, old_channels, kernel.shape[1])[:, copy_of]
                kernel = (kernel * _split(rng, copy_of, kernel.shape[2])).reshape(rows, -1)
            layer.set_weights([kernel, bias])
    log.info("widened %s to %s (function kept; Net2WiderNet)", old, tuple(widths))
    return wide
