"""The convolutional network of the paper (report Table 1), its training, storage and Monte-Carlo
dropout uncertainty (notebook 03).

Everything here is plain Keras 3 (``import keras``): TensorFlow is the default backend, and
``KERAS_BACKEND=jax`` or ``KERAS_BACKEND=torch`` run the same code. The only backend-specific lines
are in :func:`describe_device`, which says what the training runs on.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np

from . import config
from .datasets import StaleDataError, check_fingerprint_params, check_params, file_sha256, package_versions
from .fingerprint import FINGERPRINT_PARAMS, SHAPE, ring_mask
from .structures import CLASSES

NOTEBOOK_03 = "notebooks/03_cnn_training.ipynb"
NOTEBOOK_07 = "notebooks/07_any_orientation.ipynb"
#: The two saved models: that of the paper's protocol (notebook 03, crystals in their standard orientation) and the
#: orientation-free one (notebook 07, crystals in any orientation, answered from several views): file stem and the
#: notebook that writes it.
MODEL_KINDS = {"paper": ("cnn_model", NOTEBOOK_03), "any_orientation": ("cnn_any_orientation", NOTEBOOK_07)}
TRAINING_FLOP_FACTOR = 3.0  # a training step ~ forward + gradients w.r.t. inputs and weights = 3 x forward


def keras_module():
    import keras

    return keras


def build_model(n_classes: int = len(CLASSES), input_shape: tuple = SHAPE, seed: int | None = None,
                dropout: float = 0.25, standardisation: tuple | None = None):
    """Report Table 1: conv 7x7 x32, x32 -> max-pool 2 -> conv 7x7 x16, x16 -> max-pool 2 ->
    conv 7x7 x8, x8 -> flatten -> dense 128 (ReLU) + dropout 0.25 -> batch norm -> dense softmax.
    ReLU after every convolution ('same' padding), which the course report forgot.

    ``standardisation``: ``(mean, variance)``, two arrays of the input's shape (see
    :func:`symmetric_standardisation`); a fixed ``Normalization`` layer named ``standardise`` then maps each
    fingerprint pixel to (x - mean) / sqrt(variance) before conv1, and is saved with the model."""
    keras = keras_module()
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    L = keras.layers
    conv = lambda n, name: L.Conv2D(n, 7, padding="same", activation="relu", name=name)  # noqa: E731
    first = []
    if standardisation is not None:
        mean, variance = (np.asarray(a, np.float32) for a in standardisation)
        if mean.shape != tuple(input_shape) or variance.shape != tuple(input_shape):
            raise ValueError(f"standardisation needs mean and variance of shape {tuple(input_shape)}, "
                             f"got {mean.shape} and {variance.shape}")
        first = [L.Normalization(axis=(1, 2, 3), mean=mean, variance=variance, name="standardise")]
    model = keras.Sequential([
        keras.Input(shape=tuple(input_shape), name="fingerprint"),
        *first,
        conv(32, "conv1"), conv(32, "conv2"), L.MaxPooling2D(2, name="pool1"),
        conv(16, "conv3"), conv(16, "conv4"), L.MaxPooling2D(2, name="pool2"),
        conv(8, "conv5"), conv(8, "conv6"),
        L.Flatten(name="flatten"),
        L.Dense(128, activation="relu", name="dense"),
        L.Dropout(dropout, seed=seed, name="dropout"),
        L.BatchNormalization(name="batch_norm"),
        L.Dense(n_classes, activation="softmax", name="softmax", dtype="float32"),  # float32 under mixed precision
    ], name="ziletti_cnn")
    return model


def forward_flop(model) -> float:
    """Floating-point operations of one forward pass of one input (2 per multiply-add; convolution
    and dense layers, which are all but a fraction of a percent of the cost)."""
    total = 0.0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            kh, kw, cin, cout = layer.kernel.shape
            _, h, w, _ = layer.output.shape
            total += 2.0 * h * w * cout * kh * kw * cin
        elif kind == "Dense":
            cin, cout = layer.kernel.shape
            total += 2.0 * cin * cout
    return total


def describe_device() -> str:
    """Which backend and device Keras trains on, in words (GPU when one is visible, CPU otherwise)."""
    keras = keras_module()
    backend = keras.backend.backend()
    gpus = []
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        elif backend == "jax":
            import jax

            gpus = [str(d) for d in jax.devices() if d.platform == "gpu"]
    except Exception as exc:  # the device query itself must never stop training
        return f"Keras {keras.__version__}, backend {backend} (device query failed: {exc})"
    where = f"GPU: {', '.join(gpus)}" if gpus else f"CPU ({os.cpu_count()} cores visible)"
    return f"Keras {keras.__version__}, backend {backend}, training on {where}"


def check_fingerprints(X) -> np.ndarray:
    """X as float32 of shape (n, 64, 64, 3); a ValueError naming the expected shape otherwise."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 4 or X.shape[1:] != SHAPE:
        raise ValueError(f"fingerprints must have shape (n, {', '.join(map(str, SHAPE))}), got {X.shape}")
    return X


# ---- training ---------------------------------------------------------------------------------
def symmetric_standardisation(X: np.ndarray, batch: int = 512) -> tuple:
    """Mean and variance of every fingerprint pixel over X, averaged over the 8 detector symmetries
    (:func:`helpers.augment.d4`: each pixel with the pixels it is turned or mirrored into, R with G on
    the odd turns): two (64, 64, 3) float32 arrays, 0 and 0 outside the kept ring.

    A fingerprint's kept pixels span four decades of intensity, most of them far below the brightest
    spot that fixes the [0, 1] scale; dividing each pixel by its spread lets the outer shells (the radii
    that tell the classes apart under random orientation) count as much as the brightest one. Averaged
    over the symmetries, the statistics use 8 times the data and are unchanged by them, so
    standardising commutes with every one of them (augmentation and symmetrised prediction stay exact).
    """
    from .augment import D4_VIEWS, d4

    X = check_fingerprints(X)
    if len(X) == 0:
        raise ValueError("symmetric_standardisation needs at least one fingerprint")
    s1 = np.zeros(SHAPE, np.float64)
    s2 = np.zeros(SHAPE, np.float64)
    for start in range(0, len(X), batch):
        xb = X[start:start + batch].astype(np.float64)
        s1 += xb.sum(axis=0)
        s2 += (xb * xb).sum(axis=0)
    m1 = sum(d4(s1, k, m) for k, m in D4_VIEWS) / (len(D4_VIEWS) * len(X))
    m2 = sum(d4(s2, k, m) for k, m in D4_VIEWS) / (len(D4_VIEWS) * len(X))
    var = np.maximum(m2 - m1 * m1, 0.0)
    off = ~ring_mask()
    m1[off], var[off] = 0.0, 0.0
    return m1.astype(np.float32), var.astype(np.float32)


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple:
    """Indices (train, validation) with ``fraction`` of every class in validation (at least one
    sample of a class that has two or more)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng([seed, 5])
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val = int(round(fraction * len(idx)))
        n_val = min(max(n_val, 1 if len(idx) > 1 else 0), len(idx) - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _callbacks(n_batches: int, epochs: int, progress: bool, monitor: str = "val_accuracy"):
    keras = keras_module()

    class KeepBest(keras.callbacks.Callback):
        """Remember the weights of the epoch with the best validation accuracy (the first one on a
        tie) and put them back when training ends; also time every epoch."""

        def __init__(self):
            super().__init__()
            self.best, self.best_epoch, self.weights, self.seconds = -np.inf, -1, None, []

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._t0)
            acc = float((logs or {}).get("val_accuracy", -np.inf))
            if acc > self.best:
                self.best, self.best_epoch, self.weights = acc, epoch, self.model.get_weights()

        def on_train_end(self, logs=None):
            if self.weights is not None:
                self.model.set_weights(self.weights)

    class Bar(keras.callbacks.Callback):
        """One tqdm bar over all batches of all epochs, with the latest loss and accuracy."""

        def on_train_begin(self, logs=None):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=n_batches * epochs, desc="training", unit="batch", disable=not progress)

        def on_train_batch_end(self, batch, logs=None):
            self.bar.update(1)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.bar.set_postfix({"epoch": epoch + 1, "loss": f"{logs.get('loss', np.nan):.4f}",
                                  monitor: f"{logs.get(monitor, np.nan):.4f}"})

        def on_train_end(self, logs=None):
            self.bar.close()

    return KeepBest(), Bar()


def ema_momentum_for(steps_per_epoch: int) -> float:
    """Momentum of the weight average that spans about the last third of an epoch:
    1 - 1 / max(2, steps_per_epoch // 3) (0.9904 for the 312 steps of the default size). A fixed 0.99 would
    average over 100 steps, longer than a whole epoch of a small run, and hold the weights back."""
    return 1.0 - 1.0 / max(2, steps_per_epoch // 3)


PRECISIONS = ("auto", "float32", "mixed_bfloat16")


def resolve_precision(precision: str = "auto") -> str:
    """The arithmetic of training: "float32", or "mixed_bfloat16" (bfloat16 arithmetic, float32 weights and
    output). "auto" chooses mixed_bfloat16 where it is native and measured fastest: TensorFlow on a CPU with AMX
    bfloat16 units (``make bench-train``: about 4-5 times float32's speed on such a machine) and no GPU; float32
    everywhere else (a CPU without bfloat16 units would emulate it, slowly)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    from .machine import vector_flags

    keras = keras_module()
    if keras.backend.backend() != "tensorflow" or "amx_bf16" not in vector_flags():
        return "float32"
    import tensorflow as tf

    return "float32" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"


def train(X: np.ndarray, y: np.ndarray, epochs: int = 5, batch_size: int = 32, learning_rate: float = 1e-3,
          validation_fraction: float = 0.05, seed: int = 0, progress: bool = True, verbose: int = 0,
          elements=None, standardise: bool = False, average_weights: bool = False, ema_momentum: float | None = None,
          callbacks=(), precision: str = "float32"):
    """Train the Table-1 network as the paper does: Adam, categorical cross-entropy, a stratified
    validation split, the epoch with the best validation accuracy kept.

    ``precision`` (:func:`resolve_precision`): with "mixed_bfloat16" the network computes in bfloat16 during
    training; the model returned is the same network in float32 with the trained weights, so it runs and saves
    the same everywhere.

    With ``elements`` (the element of every fingerprint), the training batches are augmented as
    :mod:`helpers.augment` describes (exact detector symmetries, diffuse background); the validation
    fingerprints never are. With ``standardise`` (off in the paper's recipe) the network starts with a fixed
    per-pixel standardisation computed from the training split (:func:`symmetric_standardisation`).

    ``average_weights`` (off in the paper's recipe) turns on Keras's own exponential moving average of the weights
    (``Adam(use_ema=True)``): after every step the average moves by ``1 - ema_momentum`` towards the new
    weights, and at the last step of every epoch the weights are replaced by it. Each epoch's validation,
    and the epoch that is kept, are then the averaged weights, which no longer carry the noise of the last
    steps. ``ema_momentum=None`` chooses :func:`ema_momentum_for` (an average over about the last third of
    an epoch; 0.9904 at the default size). ``callbacks``: more Keras callbacks for ``fit``.
    Returns ``(model, info)``; ``info`` has the history, the best epoch, seconds per epoch and the
    validation indices.
    """
    keras = keras_module()
    X = check_fingerprints(X)
    y = np.asarray(y)
    if len(y) != len(X):
        raise ValueError(f"{len(X)} fingerprints but {len(y)} labels")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if ema_momentum is not None and not 0.0 < ema_momentum < 1.0:
        raise ValueError(f"ema_momentum must be between 0 and 1 (e.g. 0.99), or None to derive it; got {ema_momentum}")
    n_classes = len(CLASSES)
    train_idx, val_idx = stratified_split(y, validation_fraction, seed)
    steps = math.ceil(len(train_idx) / batch_size)  # batches per epoch, here and in augment.batches
    ema_momentum = (ema_momentum or ema_momentum_for(steps)) if average_weights else None
    stats = symmetric_standardisation(X[train_idx]) if standardise else None
    precision = resolve_precision(precision)
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        model = build_model(n_classes, seed=seed, standardisation=stats)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    average = {} if ema_momentum is None else {"use_ema": True, "ema_momentum": float(ema_momentum),
                                               "ema_overwrite_frequency": steps}
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, **average), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    onehot = np.eye(n_classes, dtype=np.float32)
    keep, bar = _callbacks(steps, epochs, progress)
    if elements is None:
        data = {"x": X[train_idx], "y": onehot[y[train_idx]], "batch_size": batch_size, "shuffle": True}
    else:
        from . import augment

        elements = np.asarray(elements).astype(str)
        if elements.shape != (len(X),):
            raise ValueError(f"elements must name the element of each of the {len(X)} fingerprints, "
                             f"got shape {elements.shape}")
        data = {"x": augment.batches(X[train_idx], onehot[y[train_idx]], elements[train_idx], batch_size, seed)}
    history = model.fit(**data, epochs=epochs, validation_data=(X[val_idx], onehot[y[val_idx]]),
                        callbacks=[keep, bar, *callbacks], verbose=verbose)
    info = {"history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
            "best_epoch": int(keep.best_epoch) + 1, "best_val_accuracy": float(keep.best),
            "seconds_per_epoch": [float(s) for s in keep.seconds], "n_train": int(len(train_idx)),
            "n_validation": int(len(val_idx)), "validation_index": val_idx.tolist(), "epochs": int(epochs),
            "batch_size": int(batch_size), "learning_rate": float(learning_rate),
            "validation_fraction": float(validation_fraction), "seed": int(seed),
            "augmented": elements is not None, "ema_momentum": None if ema_momentum is None else float(ema_momentum),
            "standardisation": "per pixel, averaged over the 8 detector symmetries; training split" if standardise else None,
            "precision": precision}
    if precision != "float32":  # the same network in float32 with the trained weights: it runs the same everywhere
        trained = model
        model = build_model(n_classes, standardisation=stats)
        model.set_weights(trained.get_weights())
    return model, info


def predict_proba(model, X: np.ndarray, batch_size: int = 256, symmetrise: bool = False) -> np.ndarray:
    """Class probabilities (n, n_classes). With ``symmetrise``, the mean over the 8 detector symmetries
    of each fingerprint (:func:`helpers.augment.d4`): each is the fingerprint of the same crystal in
    another orientation, so the averaged answer no longer depends on which of the 8 the crystal had
    (8 times the cost)."""
    X = check_fingerprints(X)
    if len(X) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    if not symmetrise:
        return np.asarray(model.predict(X, batch_size=batch_size, verbose=0))
    from .augment import D4_VIEWS, d4

    return sum(np.asarray(model.predict(d4(X, k, m), batch_size=batch_size, verbose=0), np.float64)
               for k, m in D4_VIEWS).astype(np.float32) / len(D4_VIEWS)


# ---- storage ----------------------------------------------------------------------------------
def check_kind(kind) -> str:
    """``kind`` if it names one of ``MODEL_KINDS``; otherwise a ValueError that lists them."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"model kind must be one of {tuple(MODEL_KINDS)}, got {kind!r}")
    return kind


def model_paths(directory: Path | None = None, kind: str = "paper") -> tuple:
    """(model file, metadata file) of the saved model of ``kind`` (``MODEL_KINDS``) in ``directory`` (data/)."""
    directory = Path(directory) if directory is not None else config.data_dir()
    stem = MODEL_KINDS[check_kind(kind)][0]
    return directory / f"{stem}.keras", directory / f"{stem}.json"


def save_model(model, info: dict, directory: Path | None = None, extra: dict | None = None,
               kind: str = "paper") -> Path:
    """Write the model (.keras) and, beside it, a JSON file with what is needed to use it again:
    class names, fingerprint parameters, package versions, training parameters and results, and
    the model file's SHA-256. Both are written to temporary files and renamed. ``kind``: "paper" (notebook 03's
    model) or "any_orientation" (notebook 07's)."""
    keras = keras_module()
    path, meta_path = model_paths(directory, kind)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # Keras wants the .keras suffix
    tmp_meta = meta_path.with_name(f".{meta_path.name}.{os.getpid()}.tmp")
    try:
        _write_model(model, info, {"model_kind": kind, **(extra or {})}, tmp, tmp_meta, keras)
        os.replace(tmp, path)
        os.replace(tmp_meta, meta_path)
    finally:
        for t in (tmp, tmp_meta):
            t.unlink(missing_ok=True)
    return path


def _write_model(model, info: dict, extra: dict | None, tmp: Path, tmp_meta: Path, keras) -> None:
    model.save(tmp)
    meta = {"kind": "cnn_model", "class_names": list(CLASSES), "fingerprint": FINGERPRINT_PARAMS,
            "input_shape": list(SHAPE), "keras_backend": keras.backend.backend(),
            "versions": {**package_versions(), "keras": keras.__version__},
            "training": {k: v for k, v in info.items() if k != "validation_index"},
            "model_sha256": file_sha256(tmp), **(extra or {})}
    tmp_meta.write_text(json.dumps(meta, indent=1, sort_keys=True))


def load_model(directory: Path | None = None, kind: str = "paper"):
    """The model of ``kind`` that its notebook saved (03 for "paper", 07 for "any_orientation") and its metadata;
    stops with a message naming that notebook when there is none, or when it was made for other fingerprint
    parameters or classes."""
    keras = keras_module()
    path, meta_path = model_paths(directory, kind)
    notebook = MODEL_KINDS[kind][1]
    if not path.exists() or not meta_path.exists():
        raise FileNotFoundError(f"no trained model at {path}: run {notebook} first (or pass a model).")
    meta = json.loads(meta_path.read_text())
    if meta.get("model_sha256") != file_sha256(path):
        raise StaleDataError(f"{path} does not match {meta_path.name} (one was rewritten without the "
                             f"other); rerun {notebook}.")
    check_fingerprint_params(meta.get("fingerprint"), path, f"notebooks 02 and {notebook}")
    if meta.get("class_names") != list(CLASSES):
        raise StaleDataError(f"{path} predicts classes {meta.get('class_names')}, not {list(CLASSES)}; "
                             f"rerun {notebook}.")
    return keras.saving.load_model(path), meta


def check_trained_on(meta: dict, expect: dict) -> None:
    """Stop when the saved model was trained on data made with other parameters than ``expect``."""
    made = meta.get("data", {}).get("params", {})
    check_params({"params": made}, {k: v for k, v in expect.items() if k in made}, model_paths()[0],
                 f"notebooks 01-03 (the model: {NOTEBOOK_03})")


# ---- Monte-Carlo dropout ----------------------------------------------------------------------
def _head(model) -> dict:
    """Weights of the layers after the dense-128 features: dropout rate, batch norm, softmax."""
    gamma, beta, mean, var = model.get_layer("batch_norm").get_weights()
    eps = model.get_layer("batch_norm").epsilon
    W, b = model.get_layer("softmax").get_weights()
    return {"rate": float(model.get_layer("dropout").rate), "scale": gamma / np.sqrt(var + eps),
            "shift": beta - mean * gamma / np.sqrt(var + eps), "W": W, "b": b}


def dense_features(model, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Output of the dense-128 layer (after its ReLU), the input of dropout."""
    keras = keras_module()
    sub = keras.Model(model.inputs[0], model.get_layer("dense").output)
    return np.asarray(sub.predict(np.asarray(X, np.float32), batch_size=batch_size, verbose=0), np.float64)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def mc_dropout_samples(model, X: np.ndarray, n_samples: int = 50, seed: int = 0, rate: float | None = None,
                       features: np.ndarray | None = None) -> np.ndarray:
    """Class probabilities of ``n_samples`` stochastic forward passes, shape (n_samples, n, classes).

    Dropout is the only random layer and sits after every convolution, so the convolutions run once
    and each pass redraws only the dropout mask (inverted dropout, as Keras trains it) before the
    batch norm (inference statistics) and the softmax layer. ``rate=0`` gives the deterministic
    prediction of ``model.predict``.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    H = dense_features(model, X) if features is None else np.asarray(features, np.float64)
    head = _head(model)
    rate = head["rate"] if rate is None else float(rate)
    rng = np.random.default_rng([seed, 7])
    out = np.empty((n_samples, len(H), head["W"].shape[1]))
    for t in range(n_samples):
        # One mask per pass, shared by all inputs: an input's result then does not depend on what else
        # is in the batch or where it stands in it (per input, the passes are still independent draws).
        keep = rng.random(H.shape[1]) >= rate
        Z = (H * keep / (1.0 - rate)) * head["scale"] + head["shift"]
        out[t] = _softmax(Z @ head["W"] + head["b"])
    return out


def _entropy(p: np.ndarray) -> np.ndarray:
    return -np.sum(p * np.log(np.clip(p, 1e-12, 1.0)), axis=-1)


def uncertainty(samples: np.ndarray) -> dict:
    """Mean probability, predictive entropy H[E p] and mutual information H[E p] - E H[p] (the part
    of the entropy that comes from the model's uncertainty) over the MC-dropout samples, in nats.
    Both lie in [0, ln(number of classes)]."""
    mean = samples.mean(axis=0)
    entropy = _entropy(mean)
    mutual_information = np.maximum(entropy - _entropy(samples).mean(axis=0), 0.0)
    return {"mean_probability": mean, "predictive_entropy": entropy, "mutual_information": mutual_information}


def mc_dropout(model, X: np.ndarray, n_samples: int = 50, seed: int = 0) -> dict:
    """:func:`uncertainty` of :func:`mc_dropout_samples`, the class predicted by the mean
    (``predicted``), and the deterministic probabilities of ``model.predict`` (``probability``),
    all from one pass through the convolutions."""
    features = dense_features(model, X)
    out = uncertainty(mc_dropout_samples(model, X, n_samples=n_samples, seed=seed, features=features))
    out["predicted"] = out["mean_probability"].argmax(axis=1)
    out["probability"] = mc_dropout_samples(model, X, n_samples=1, rate=0.0, features=features)[0]
    return out


# ---- evaluation -------------------------------------------------------------------------------
def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = len(CLASSES)) -> np.ndarray:
    m = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(m, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return m


def precision_recall(matrix: np.ndarray):
    """Per-class precision and recall from a confusion matrix (rows true, columns predicted); NaN
    where a class was never predicted / never present."""
    tp = np.diag(matrix).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / matrix.sum(axis=0)
        recall = tp / matrix.sum(axis=1)
    return precision, recall

