"""Looking into the trained network (notebook 04): layer activations and attentive response maps.

An attentive response map shows which input pixels, i.e. which diffraction peaks, drive a filter: the strongest
activations of a convolutional layer are taken back, layer by layer, to the input. Three sets of rules are here
(``METHODS``), all with biases left out, the input standardisation of a model trained with it undone by its adjoint
(division by each pixel's spread), and the result kept on the detector's ring (the only pixels a fingerprint has):

* ``"paper"``: the rules the paper states, in the spirit of a deconvnet (Zeiler & Fergus 2014): each convolution
  undone by the transposed convolution with its trained kernel, its ReLU by the switches of the forward pass (only
  where the forward activation was positive does the signal pass), each max-pool by nearest-neighbour up-sampling.
* ``"gradient"``: the exact gradient of half the squared activation map with respect to the input: as ``"paper"``,
  but each max-pool undone by its max locations (the signal goes back to the pixel that won the pool).
* ``"guided"`` (guided back-propagation, Springenberg et al. 2015): as ``"gradient"``, and at every ReLU only the
  positive part of the backward signal passes too (the deconvnet's rule and the gradient's together), so that only
  what raises the activation is kept.

Summed over the top filters of the last convolution and averaged over the samples of a class, a map gives the class
template. Notebook 04 measures for each set of rules how much of the maps' weight lies on the input's peaks.

Plain Keras 3 operations (``keras.ops``): any backend.
"""
from __future__ import annotations

import numpy as np

from .fingerprint import SHAPE, ring_mask
from .models import check_fingerprints, keras_module

METHODS = ("guided", "gradient", "paper")


def conv_layer_names(model) -> list:
    return [layer.name for layer in model.layers if type(layer).__name__ == "Conv2D"]


def activations(model, X: np.ndarray, layer_names=None, batch_size: int = 64) -> dict:
    """{layer name: output of that layer} for inputs X (n, 64, 64, 3), from one Keras sub-model.

    (keract 4.5.2's ``get_activations`` fails on Keras 3 models; its display functions take this dict.)
    """
    names = list(layer_names) if layer_names is not None else conv_layer_names(model)
    return _run(_submodel(model, names), names, _check_inputs(X), batch_size)


def _submodel(model, names: list):
    return keras_module().Model(model.inputs[0], [model.get_layer(n).output for n in names])


def _run(sub, names: list, X: np.ndarray, batch_size: int) -> dict:
    keras = keras_module()
    outs = [[] for _ in names]
    for s in range(0, len(X), batch_size):
        result = sub(X[s: s + batch_size], training=False)
        result = result if isinstance(result, (list, tuple)) else [result]
        for k, r in enumerate(result):
            outs[k].append(keras.ops.convert_to_numpy(r))
    return {n: np.concatenate(o) for n, o in zip(names, outs)}


def _check_inputs(X) -> np.ndarray:
    """Fingerprints (n, 64, 64, 3), or one fingerprint (64, 64, 3) as a batch of one."""
    X = np.asarray(X, dtype=np.float32)
    return check_fingerprints(X[None] if X.shape == SHAPE else X)


def _chain(model, layer_name: str) -> list:
    """The layers from the input up to and including ``layer_name``: the input standardisation (if
    any), convolutions and poolings only."""
    chain = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in ("Conv2D", "MaxPooling2D", "Normalization"):
            raise ValueError(f"cannot back-project through {layer.name} ({kind}): choose a convolution "
                             f"before the flatten layer, one of {conv_layer_names(model)}")
        chain.append(layer)
        if layer.name == layer_name:
            if kind != "Conv2D":
                raise ValueError(f"{layer_name} is a pooling layer; choose one of {conv_layer_names(model)}")
            return chain
    raise ValueError(f"no layer {layer_name!r} in the model; choose one of {conv_layer_names(model)}")


def _standardisation_adjoint(layer) -> np.ndarray:
    """The adjoint of a Normalization layer's linear part, (x - mean) / max(sqrt(variance), epsilon):
    1 / that divisor where the variance is positive, 0 where it is 0 (pixels that are 0 in every
    fingerprint, outside the kept ring)."""
    keras = keras_module()
    var = np.asarray(keras.ops.convert_to_numpy(layer.variance), np.float64)[0]
    divisor = np.maximum(np.sqrt(var), keras.backend.epsilon())
    return np.where(var > 0, 1.0 / divisor, 0.0).astype(np.float32)


def transposed_conv(signal: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Transposed convolution ('same' padding, stride 1) with a Conv2D kernel (kh, kw, c_in, c_out):
    maps (n, h, w, c_out) back to (n, h, w, c_in). It is the adjoint of the layer's convolution."""
    keras = keras_module()
    out = keras.ops.conv_transpose(np.asarray(signal, np.float32), np.asarray(kernel, np.float32), strides=1,
                                   padding="same")
    return keras.ops.convert_to_numpy(out)


def unpool_at_max(signal: np.ndarray, before: np.ndarray, size: tuple = (2, 2)) -> np.ndarray:
    """Undo a max-pool by its max locations: each value of ``signal`` (n, h, w, c) goes back to the pixel of its
    pool window that held the maximum of ``before`` (n, h * size[0], w * size[1], c), the pool's input (the first such
    pixel on a tie); the rest of the window gets 0. The adjoint of the pool at ``before``."""
    n, h, w, c = signal.shape
    ph, pw = size
    windows = before[:, :h * ph, :w * pw].reshape(n, h, ph, w, pw, c).transpose(0, 1, 3, 5, 2, 4).reshape(n, h, w, c, -1)
    winner = windows.argmax(axis=-1)
    out = np.zeros((n, h, w, c, ph * pw), signal.dtype)
    np.put_along_axis(out, winner[..., None], signal[..., None], axis=-1)
    return out.reshape(n, h, w, c, ph, pw).transpose(0, 1, 4, 2, 5, 3).reshape(n, h * ph, w * pw, c)


def back_project(model, X: np.ndarray, layer_name: str = "conv6", top_k: int = 4,
                 batch_size: int = 64, method: str = "guided") -> dict:
    """Attentive response maps: for every input, the ``top_k`` filters of ``layer_name`` with the
    strongest activation, each filter's activation map (all other filters zeroed) taken back to
    the input by the rules ``method`` (module docstring: "guided", "gradient" or "paper"), on the detector's ring.

    Returns ``maps`` (n, top_k, 64, 64, 3), ``filters`` (n, top_k) and ``strength`` (n, top_k), the
    maximum activation of each chosen filter.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    X = _check_inputs(X)
    chain = _chain(model, layer_name)
    convs = [layer.name for layer in chain if type(layer).__name__ == "Conv2D"]
    n_filters = chain[-1].filters
    if not 1 <= top_k <= n_filters:
        raise ValueError(f"top_k must be between 1 and {n_filters} (the filters of {layer_name}), got {top_k}")
    kernels = {layer.name: np.asarray(layer.get_weights()[0]) for layer in chain if type(layer).__name__ == "Conv2D"}
    adjoints = {layer.name: _standardisation_adjoint(layer) for layer in chain
                if type(layer).__name__ == "Normalization"}
    ring = ring_mask()[None, None, :, :, None].astype(np.float32)
    maps = np.empty((len(X), top_k, *SHAPE), np.float32)
    filters = np.empty((len(X), top_k), np.int64)
    strength = np.empty((len(X), top_k), np.float32)
    per_batch = max(1, batch_size // top_k)
    sub = _submodel(model, convs)  # built once, run chunk by chunk
    for s in range(0, len(X), per_batch):
        acts = _run(sub, convs, X[s: s + per_batch], per_batch)
        top = acts[layer_name]  # (b, h, w, c)
        b = len(top)
        peak = top.max(axis=(1, 2))
        chosen = np.argsort(-peak, axis=1, kind="stable")[:, :top_k]
        filters[s: s + b] = chosen
        strength[s: s + b] = np.take_along_axis(peak, chosen, axis=1)
        # One back-projection per (input, filter): the filter's map alone in its channel.
        signal = np.zeros((b, top_k, *top.shape[1:]), np.float32)
        for j in range(top_k):
            signal[np.arange(b), j, :, :, chosen[:, j]] = top[np.arange(b), :, :, chosen[:, j]]
        signal = signal.reshape(b * top_k, *top.shape[1:])
        for i in reversed(range(len(chain))):
            layer = chain[i]
            kind = type(layer).__name__
            if kind == "Conv2D":
                switches = np.repeat(acts[layer.name] > 0, top_k, axis=0)
                if method == "guided":
                    signal = np.maximum(signal, 0.0)
                signal = transposed_conv(signal * switches, kernels[layer.name])
            elif kind == "Normalization":  # the input standardisation: its adjoint
                signal = signal * adjoints[layer.name]
            elif method == "paper":  # un-pooling by nearest-neighbour up-sampling
                p = layer.pool_size
                signal = np.repeat(np.repeat(signal, p[0], axis=1), p[1], axis=2)
            else:  # un-pooling at the max locations of the pool's input, the convolution before it
                before = np.repeat(acts[chain[i - 1].name], top_k, axis=0)
                signal = unpool_at_max(signal, before, tuple(layer.pool_size))
        maps[s: s + b] = signal.reshape(b, top_k, *SHAPE) * ring
    return {"maps": maps, "filters": filters, "strength": strength}


def class_templates(model, X: np.ndarray, y: np.ndarray, n_classes: int, layer_name: str = "conv6",
                    top_k: int = 4, method: str = "guided") -> np.ndarray:
    """Per class, the back-projections of the top ``top_k`` filters of ``layer_name`` summed over
    the filters and averaged over the class's samples: (n_classes, 64, 64, 3), NaN for a class
    without samples."""
    return templates_from(back_project(model, X, layer_name, top_k, method=method)["maps"], y, n_classes)


def templates_from(maps: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Class templates from :func:`back_project`'s ``maps`` (n, top_k, 64, 64, 3) of inputs of classes ``y``: summed
    over the filters, averaged over each class's inputs; NaN for a class without inputs."""
    y = np.asarray(y)
    summed = np.asarray(maps).sum(axis=1)
    out = np.full((n_classes, *SHAPE), np.nan, np.float32)
    for c in range(n_classes):
        if np.any(y == c):
            out[c] = summed[y == c].mean(axis=0)
    return out


def to_image(m: np.ndarray) -> np.ndarray:
    """A back-projected map for display: its positive part (what raises the activation), scaled to
    [0, 1] by its own maximum; all zeros when nothing is positive."""
    m = np.clip(np.asarray(m, np.float64), 0.0, None)
    top = m.max()
    return (m / top if top > 0 else m).astype(np.float32)


def peak_pixels(x: np.ndarray, quantile: float = 0.98) -> np.ndarray:
    """(64, 64) mask of a fingerprint's diffraction peaks: its brightest ``1 - quantile`` share of the ring's
    pixels (brightest channel)."""
    bright = np.asarray(x).max(axis=-1)
    ring = bright > 0
    if not ring.any():
        raise ValueError("the fingerprint is zero everywhere: it has no peaks")
    return ring & (bright >= np.quantile(bright[ring], quantile))


def peak_fraction(x: np.ndarray, quantile: float = 0.98) -> float:
    """The share of the ring's pixels that are peaks: what a map spread evenly over the ring puts on them."""
    bright = np.asarray(x).max(axis=-1)
    return float(peak_pixels(x, quantile).sum() / (bright > 0).sum())


def share_on_peaks(maps_of_x, x: np.ndarray, quantile: float = 0.98) -> list:
    """For every back-projected map of fingerprint ``x`` (each (64, 64, 3)), the share of its positive weight that
    lies on ``x``'s peaks (:func:`peak_pixels`)."""
    peaks = peak_pixels(x, quantile)
    out = []
    for m in maps_of_x:
        positive = np.clip(np.asarray(m, np.float64), 0, None).sum(axis=-1)
        out.append(float(positive[peaks].sum() / max(positive.sum(), 1e-30)))
    return out


def template_similarity(templates, mean_fingerprints) -> np.ndarray:
    """Cosine similarity of every class template's positive part (rows) with every class's mean fingerprint
    (columns)."""
    t = np.stack([np.clip(np.asarray(a, np.float64), 0, None).ravel() for a in templates])
    f = np.asarray(mean_fingerprints, np.float64).reshape(len(mean_fingerprints), -1)
    return (t @ f.T) / np.outer(np.linalg.norm(t, axis=1) + 1e-30, np.linalg.norm(f, axis=1) + 1e-30)
