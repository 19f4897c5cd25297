"""Training utilities that need TensorFlow (installed by `make setup` with the train extra)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")


def test_batchnorm_recalibration_matches_the_data():
    from models.train import recalibrate_batchnorm

    inp = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(4, 3, padding="same")(inp)
    out = keras.layers.BatchNormalization(momentum=0.99)(conv)
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).normal(3.0, 2.0, (1024, 8, 8, 1)).astype(np.float32)
    features = keras.Model(inp, conv)(x).numpy()
    bn = model.layers[-1]
    recalibrate_batchnorm(model, x, batch_size=128)
    np.testing.assert_allclose(bn.moving_mean.numpy(), features.mean(axis=(0, 1, 2)), rtol=1e-3,
                               atol=1e-3)
    # the mean of per-batch variances, within a few percent of the overall variance
    np.testing.assert_allclose(bn.moving_variance.numpy(), features.var(axis=(0, 1, 2)),
                               rtol=0.05)
    assert bn.momentum == 0.99
