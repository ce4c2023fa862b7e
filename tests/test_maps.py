"""Layer activations and the back-projections (attentive response maps) of notebook 04."""
import keras
import numpy as np
import pytest

from helpers import maps, models


@pytest.fixture(scope="module")
def model():
    return models.build_model(seed=1)


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    return rng.random((3, 64, 64, 3), dtype=np.float32)


def test_transposed_convolution_is_the_adjoint_of_the_convolution():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(7, 7, 3, 5)).astype(np.float32)
    x = rng.normal(size=(2, 16, 16, 3)).astype(np.float32)
    y = rng.normal(size=(2, 16, 16, 5)).astype(np.float32)
    conv = keras.ops.convert_to_numpy(keras.ops.conv(x, W, padding="same"))
    back = maps.transposed_conv(y, W)
    assert back.shape == x.shape
    assert np.sum(conv * y) == pytest.approx(np.sum(x * back), rel=1e-4)


def test_activations_have_the_layer_shapes(model, X):
    acts = maps.activations(model, X, ["conv1", "conv3", "conv6"])
    assert {k: v.shape for k, v in acts.items()} == {"conv1": (3, 64, 64, 32), "conv3": (3, 32, 32, 16),
                                                     "conv6": (3, 16, 16, 8)}
    assert all(v.min() >= 0 for v in acts.values())  # after ReLU
    one = maps.activations(model, X[1], ["conv3"])["conv3"]  # a single fingerprint works too
    assert np.allclose(one[0], acts["conv3"][1], atol=1e-5)


@pytest.mark.parametrize("layer, k", [("conv1", 3), ("conv3", 2), ("conv6", 4)])
def test_back_projection_shapes_and_order(model, X, layer, k):
    out = maps.back_project(model, X, layer, top_k=k)
    assert out["maps"].shape == (3, k, 64, 64, 3)
    assert out["filters"].shape == (3, k) and out["strength"].shape == (3, k)
    assert np.all(np.diff(out["strength"], axis=1) <= 0)  # strongest filter first
    acts = maps.activations(model, X, [layer])[layer]
    assert np.allclose(out["strength"], np.take_along_axis(acts.max(axis=(1, 2)), out["filters"], axis=1))
    assert np.isfinite(out["maps"]).all()


def test_back_projection_of_a_batch_is_that_of_each_input(model, X):
    batch = maps.back_project(model, X, "conv6", top_k=3, batch_size=6)  # two inputs per chunk, chunks of 2 + 1
    for i in range(len(X)):
        one = maps.back_project(model, X[i:i + 1], "conv6", top_k=3)
        assert np.array_equal(one["filters"][0], batch["filters"][i])
        assert np.allclose(one["maps"][0], batch["maps"][i], atol=1e-6)


def test_first_layer_back_projection_is_the_kernel_adjoint(model, X):
    """For conv1 the map is W1^T applied to the chosen filter's activation alone (its ReLU switch
    is already in it); check it against the adjoint identity with an independent convolution."""
    out = maps.back_project(model, X[:1], "conv1", top_k=1)
    f = int(out["filters"][0, 0])
    a = maps.activations(model, X[:1], ["conv1"])["conv1"]
    signal = np.zeros_like(a)
    signal[..., f] = a[..., f]
    W = model.get_layer("conv1").get_weights()[0]
    from helpers.fingerprint import ring_mask

    probe = np.random.default_rng(2).normal(size=X[:1].shape).astype(np.float32)
    probe *= ring_mask()[None, :, :, None]  # the map is kept on the ring: the adjoint there
    lhs = np.sum(out["maps"][0, 0] * probe[0])
    rhs = np.sum(keras.ops.convert_to_numpy(keras.ops.conv(probe, W, padding="same")) * signal)
    assert lhs == pytest.approx(rhs, rel=1e-3)


def test_back_projection_through_the_standardisation_is_its_adjoint(X):
    """A model trained with the input standardisation: conv1's map is (1 / sd) W1^T (signal) on the
    ring and 0 off it, the adjoint of x -> W1 * ((x - mean) / sd) without its constant part."""
    from helpers.fingerprint import ring_mask

    ring = ring_mask()[None, :, :, None]
    mean, var = models.symmetric_standardisation(X * ring)
    model = models.build_model(seed=3, standardisation=(mean, var))
    x = X[:1] * ring
    out = maps.back_project(model, x, "conv1", top_k=1)
    f = int(out["filters"][0, 0])
    a = maps.activations(model, x, ["conv1"])["conv1"]
    signal = np.zeros_like(a)
    signal[..., f] = a[..., f]
    W = model.get_layer("conv1").get_weights()[0]
    inv_sd = np.where(var > 0, 1 / np.sqrt(np.where(var > 0, var, 1)), 0).astype(np.float32)
    probe = np.random.default_rng(4).normal(size=x.shape).astype(np.float32)
    lhs = np.sum(out["maps"][0, 0] * probe[0])
    rhs = np.sum(keras.ops.convert_to_numpy(keras.ops.conv(probe * inv_sd, W, padding="same")) * signal)
    assert lhs == pytest.approx(rhs, rel=1e-3)
    assert not out["maps"][0, 0][~ring_mask()].any()  # nothing off the ring, where every input is 0
    deep = maps.back_project(model, x, "conv6", top_k=2)["maps"]
    assert deep.shape == (1, 2, 64, 64, 3) and np.isfinite(deep).all()


def test_class_templates(model, X):
    t = maps.class_templates(model, X, np.array([0, 0, 2]), n_classes=3, layer_name="conv6", top_k=2)
    assert t.shape == (3, 64, 64, 3)
    assert np.isfinite(t[[0, 2]]).all() and np.isnan(t[1]).all()


def test_bad_requests_name_the_fix(model, X):
    with pytest.raises(ValueError, match="conv1"):
        maps.back_project(model, X, "dense")
    with pytest.raises(ValueError, match="pooling"):
        maps.back_project(model, X, "pool1")
    with pytest.raises(ValueError, match="top_k"):
        maps.back_project(model, X, "conv6", top_k=9)
    with pytest.raises(ValueError, match="shape"):
        maps.back_project(model, X[:, :32], "conv6")


def test_to_image():
    m = np.array([[-2.0, 1.0], [4.0, 0.0]])
    assert np.allclose(maps.to_image(m), [[0, 0.25], [1, 0]])
    assert np.all(maps.to_image(-np.ones((2, 2))) == 0)


def test_gradient_rules_give_the_true_gradient(model, X):
    """method="gradient" is the gradient of half the chosen filter's squared activation map with respect to the
    input (computed here by TensorFlow's automatic differentiation), on the ring: the max-pool switches are right."""
    import tensorflow as tf

    from helpers.fingerprint import ring_mask

    for layer in ("conv3", "conv6"):
        out = maps.back_project(model, X[:1], layer, top_k=1, method="gradient")
        f = int(out["filters"][0, 0])
        sub = keras.Model(model.inputs[0], model.get_layer(layer).output)
        x = tf.constant(X[:1])
        with tf.GradientTape() as tape:
            tape.watch(x)
            a = sub(x, training=False)[..., f]
            half_square = 0.5 * tf.reduce_sum(a * a)
        grad = tape.gradient(half_square, x).numpy()[0] * ring_mask()[:, :, None]
        scale = np.abs(grad).max()
        assert scale > 0 and np.abs(out["maps"][0, 0] - grad).max() < 1e-3 * scale, layer


def test_unpooling_at_the_max_puts_each_value_where_the_pool_took_it():
    before = np.zeros((1, 4, 4, 1), np.float32)
    before[0, 1, 0, 0], before[0, 2, 3, 0] = 5.0, 7.0  # the maxima of two of the four windows
    signal = np.arange(1, 5, dtype=np.float32).reshape(1, 2, 2, 1)
    out = maps.unpool_at_max(signal, before)[0, :, :, 0]
    assert out[1, 0] == 1.0 and out[2, 3] == 4.0 and out[0, 2] == 2.0 and out[2, 0] == 3.0  # ties: first pixel
    assert out.sum() == signal.sum() and np.count_nonzero(out) == 4


def test_maps_stay_on_the_ring_and_unknown_rules_are_refused(model, X):
    from helpers.fingerprint import ring_mask

    for method in maps.METHODS:
        m = maps.back_project(model, X[:1], "conv6", top_k=2, method=method)["maps"]
        assert np.all(m[0][:, ~ring_mask()] == 0) and np.abs(m).max() > 0
    with pytest.raises(ValueError, match="guided"):
        maps.back_project(model, X, "conv6", method="deconv")
