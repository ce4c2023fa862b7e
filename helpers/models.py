"""The convolutional network of the paper (report Table 1), its training, storage and Monte-Carlo
dropout uncertainty (notebook 03).

Everything here is plain Keras 3 (``import keras``): TensorFlow is the default backend, and
``KERAS_BACKEND=jax`` or ``KERAS_BACKEND=torch`` run the same code. The only backend-specific lines
are in :func:`describe_device`, which says what the training runs on.
"""
from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import time
import weakref
from pathlib import Path

import numpy as np

from . import config, provenance
from .fingerprint import SHAPE, ring_mask
from .provenance import NOTEBOOK_03, NOTEBOOK_07, StaleDataError, file_sha256
from .structures import CLASSES
#: The two saved models: that of the paper's protocol (notebook 03, crystals in their standard orientation) and the
#: orientation-free one (notebook 07, crystals in any orientation, answered from several views): file stem and the
#: notebook that writes it.
MODEL_KINDS = {"paper": ("cnn_model", NOTEBOOK_03), "any_orientation": ("cnn_any_orientation", NOTEBOOK_07)}
#: The default-size models (notebooks 03 and 07 at their defaults) shipped with the package: a notebook that needs a
#: model before its own notebook has run (``load_trained``) or 07 without an hour of training (``shipped_model``)
#: uses them when they were trained on exactly the data at hand. ``make pretrained`` refreshes them from data/.
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
TRAINING_FLOP_FACTOR = 3.0  # a training step ~ forward + gradients w.r.t. inputs and weights = 3 x forward


def keras_module():
    """``keras``, imported once with TensorFlow's native start-up messages filtered (:func:`helpers.quiet.import_keras`)."""
    from .quiet import import_keras

    return import_keras()


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


def same_network(a, b) -> bool:
    """True when two networks have the same layers (kind, name and configuration, in order) and equal weights: a
    network written out in a notebook against :func:`build_model`."""
    if [type(layer).__name__ for layer in a.layers] != [type(layer).__name__ for layer in b.layers]:
        return False
    if any(la.name != lb.name or la.get_config() != lb.get_config() for la, lb in zip(a.layers, b.layers)):
        return False
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(wa, wb))


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
    """Indices (train, validation), sorted, with ``fraction`` of every class in validation
    (``sklearn.model_selection.train_test_split`` with ``stratify=y``)."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    y = np.asarray(y)
    counts = np.bincount(np.unique(y, return_inverse=True)[1])
    if counts.min() < 2:
        raise ValueError(f"every class needs at least 2 samples for a stratified validation split; the smallest "
                         f"has {counts.min()}")
    n_val = max(int(round(fraction * len(y))), len(counts))  # at least one sample of every class
    if n_val > len(y) - len(counts):
        raise ValueError(f"{len(y)} samples of {len(counts)} classes are too few for a validation fraction of {fraction}")
    train, val = train_test_split(np.arange(len(y)), test_size=n_val, stratify=y, random_state=int(seed))
    return np.sort(train), np.sort(val)


TIE_BREAK = "val_accuracy_then_loss"  # the key the kept epoch is chosen by when monitoring validation accuracy


def tie_break_score(val_accuracy: float, val_loss: float) -> float:
    """One number that orders epochs by validation accuracy, and epochs of equal accuracy by validation loss:
    ``1000 * accuracy - 0.002 * (log10(loss) + 12)``, the loss clipped to [1e-12, 1e3].

    Keras compares monitored values in float32 (``keras.ops.greater``), whose spacing near 1000 is 6e-5: the loss
    term spans 0 to 0.03 and separates losses a tenth of a decade apart by 2e-4, while one validation sample more
    or less moves the accuracy term by at least 0.1 for up to 10,000 validation samples. (A term like
    ``1e-6 * loss`` added to the accuracy is lost in float32 rounding.)"""
    loss = min(max(float(val_loss), 1e-12), 1e3)
    return 1000.0 * float(val_accuracy) - 0.002 * (math.log10(loss) + 12.0)


def training_callbacks(epochs: int, progress: bool = True, monitor: str = "val_accuracy",
                       patience: int | None = None) -> tuple:
    """Keras callbacks of every training here: ``([score,] keep, timer, [stop,] [bar])``.

    * ``keep``: ``keras.callbacks.EarlyStopping(restore_best_weights=True)`` with a patience of all the epochs, so it
      never stops training early but puts back the weights of the best epoch when training ends (``keep.best_epoch``,
      0-based). For a loss ("min") that is the lowest ``monitor``. For ``monitor="val_accuracy"`` it is the highest
      validation accuracy, and among epochs of equal accuracy the one with the lowest validation loss: ``score``
      writes :func:`tie_break_score` into the logs under ``TIE_BREAK`` before ``keep`` reads them. Otherwise a run
      whose validation accuracy reaches 1 in its first epoch would keep that least trained network.
    * ``timer``: the wall time of every epoch, in ``timer.seconds``.
    * ``stop`` (only with ``patience``): ``keras.callbacks.EarlyStopping`` on ``monitor`` itself (validation accuracy
      by default, without the tie-break), which ends training once it has not risen for ``patience`` epochs;
      ``epochs`` stays the upper bound, and ``keep`` still puts back the best epoch's weights.
    * ``bar``: ``tqdm.keras.TqdmCallback``, one bar over the epochs (none when ``progress`` is false).
    """
    keras = keras_module()
    from tqdm.keras import TqdmCallback

    class EpochTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._t0)

    class AccuracyThenLoss(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None and "val_accuracy" in logs and "val_loss" in logs:
                logs[TIE_BREAK] = tie_break_score(logs["val_accuracy"], logs["val_loss"])

    tie_break = monitor == "val_accuracy"
    keep = keras.callbacks.EarlyStopping(monitor=TIE_BREAK if tie_break else monitor,
                                         mode="min" if monitor.endswith("loss") else "max",
                                         patience=epochs + 1, restore_best_weights=True)
    callbacks = [keep, EpochTimer()]
    if tie_break:
        callbacks.insert(0, AccuracyThenLoss())  # before keep: it reads what this one writes
    if patience is not None:
        if patience < 1:
            raise ValueError(f"patience must be at least 1 epoch (or None: always train every epoch), got {patience}")
        # on the monitored value itself: a lower validation loss at equal accuracy is not "improving" here
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, mode="min" if monitor.endswith("loss") else "max",
                                                       patience=int(patience), restore_best_weights=False))
    if progress:
        callbacks.append(TqdmCallback(epochs=epochs, verbose=0, desc="training"))
    return tuple(callbacks)


def ema_momentum_for(steps_per_epoch: int) -> float:
    """Momentum of the weight average that spans about the last third of an epoch:
    1 - 1 / max(2, steps_per_epoch // 3) (0.9904 for the 312 steps of the default size). A fixed 0.99 would
    average over 100 steps, longer than a whole epoch of a small run, and hold the weights back."""
    return 1.0 - 1.0 / max(2, steps_per_epoch // 3)


PRECISIONS = ("auto", "float32", "mixed_bfloat16")


def resolve_precision(precision: str = "auto") -> str:
    """The arithmetic of training: "float32", or "mixed_bfloat16" (bfloat16 arithmetic, float32 weights and
    output). "auto" chooses the faster of the two on the CPU at hand where both are sound: on TensorFlow without a
    GPU, on a CPU that multiplies bfloat16 natively (AVX512_BF16 or AMX, and ``ONEDNN_MAX_CPU_ISA`` allows it:
    :func:`helpers.machine.native_bfloat16`), a few training steps of each are timed
    (:func:`fastest_precision`) and the faster is used; everywhere else float32 (without bfloat16 units oneDNN
    emulates it or refuses it). Both give the same accuracy on the paper's data (``make recipe``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    from .machine import native_bfloat16

    keras = keras_module()
    if keras.backend.backend() != "tensorflow" or not native_bfloat16():
        return "float32"
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "float32"
    return fastest_precision()["choice"]


_PRECISION_TIMES: dict = {}


def time_precision(precision: str, steps: int = 6, batch_size: int = 32) -> float:
    """Median seconds of one training step (Adam, a batch of ``batch_size`` random fingerprints) of the paper's
    network under ``precision``, after two untimed steps that trace the graph. Restores the global policy."""
    keras = keras_module()
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        model = build_model(seed=0)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((batch_size, *SHAPE), dtype=np.float32) ** 8
    y = np.eye(len(CLASSES), dtype=np.float32)[rng.integers(0, len(CLASSES), batch_size)]
    seconds = []
    for step in range(steps + 2):
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        if step >= 2:
            seconds.append(time.perf_counter() - t0)
    return float(np.median(seconds))


PRECISION_FILE = "precision.json"  # in the data folder: the timing of fastest_precision, per CPU and software


def fastest_precision(steps: int = 6) -> dict:
    """{"choice": the faster precision, "seconds_per_step": {precision: seconds}} on this CPU and instruction-set
    limit, from :func:`time_precision` (about 10 s). Measured once per data folder, CPU, instruction-set limit and
    TensorFlow / Keras version, and remembered in ``precision.json`` there: the notebooks of one run (03, 07, 08)
    train in the same precision and pay the timing once."""
    import tensorflow as tf

    from . import machine

    keras = keras_module()
    key = json.dumps({**machine.describe(), "tensorflow": tf.__version__, "keras": keras.__version__,
                      "steps": steps}, sort_keys=True)
    if key not in _PRECISION_TIMES:
        path = config.data_dir() / PRECISION_FILE
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):  # none yet, or unreadable: measured again
            stored = {}
        stored = stored if isinstance(stored, dict) else {}
        if key not in stored:
            times = {p: time_precision(p, steps) for p in ("float32", "mixed_bfloat16")}
            stored[key] = {"choice": min(times, key=times.get), "seconds_per_step": times}
            config.write_text(path, json.dumps(stored, indent=1))
        _PRECISION_TIMES[key] = stored[key]
    return _PRECISION_TIMES[key]


def train(X: np.ndarray, y: np.ndarray, epochs: int = 5, batch_size: int = 32, learning_rate: float = 1e-3,
          validation_fraction: float = 0.05, seed: int = 0, progress: bool = True, verbose: int = 0,
          elements=None, standardise: bool = False, average_weights: bool = False, ema_momentum: float | None = None,
          callbacks=(), precision: str = "float32", patience: int | None = None, start_from=None):
    """Train the Table-1 network as the paper does.

    Adam, categorical cross-entropy, a stratified validation split; the epoch with the best validation accuracy is
    kept (of equal ones, that of the lowest validation loss: :func:`training_callbacks`).

    Parameters
    ----------
    X : array (n, 64, 64, 3)
        Fingerprints.
    y : array (n,)
        Class indices (``CLASSES``).
    epochs, batch_size, learning_rate, validation_fraction
        The paper's recipe: 5, 32, 1e-3 and 0.05.
    seed : int
        The training seed: validation split, initial weights, batch order, augmentation.
    progress : bool
        One tqdm bar over the epochs.
    verbose : int
        Keras's own output (0: none).
    elements : array (n,) of str, optional
        The element of every fingerprint; given, the training batches are augmented (:mod:`helpers.augment`:
        exact detector symmetries, speckled diffuse background). Validation fingerprints never are.
    standardise : bool
        Start the network with a fixed per-pixel standardisation from the training split
        (:func:`symmetric_standardisation`). Off in the paper's recipe.
    average_weights : bool
        Keras's exponential moving average of the weights (``Adam(use_ema=True)``), written into the weights at the
        end of every epoch, so validation and the kept epoch see the averaged weights. Off in the paper's recipe.
    ema_momentum : float, optional
        Its momentum; None chooses :func:`ema_momentum_for` (an average over about the last third of an epoch).
    callbacks : sequence
        More Keras callbacks for ``fit``.
    precision : {"float32", "mixed_bfloat16", "auto"}
        The arithmetic of training (:func:`resolve_precision`); the model returned is float32 either way.
    patience : int, optional
        Stop early once the validation accuracy has not risen for this many epochs (:func:`training_callbacks`);
        ``epochs`` is then the upper bound. None (default): every epoch is trained.

    Returns
    -------
    model : keras.Model
        The trained network (float32).
    info : dict
        History, best epoch and its validation accuracy, seconds per epoch, the validation indices and the
        training parameters.
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
    if start_from is not None and any(layer.name == "standardise" for layer in start_from.layers):
        layer = start_from.get_layer("standardise")  # its fixed statistics are constants, not weights: copied here
        stats = tuple(np.asarray(keras.ops.convert_to_numpy(v), np.float32).reshape(SHAPE)
                      for v in (layer.mean, layer.variance))
    with precision_policy(precision) as precision:
        model = build_model(n_classes, seed=seed, standardisation=stats)
    if start_from is not None:
        model.set_weights(start_from.get_weights())
    average = {} if ema_momentum is None else {"use_ema": True, "ema_momentum": float(ema_momentum),
                                               "ema_overwrite_frequency": steps}
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, **average), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    onehot = np.eye(n_classes, dtype=np.float32)
    callbacks = [*training_callbacks(epochs, progress, patience=patience), *callbacks]
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
                        callbacks=callbacks, verbose=verbose)
    info = training_info(history, callbacks, train_idx, val_idx, epochs=epochs, batch_size=batch_size,
                         learning_rate=learning_rate, validation_fraction=validation_fraction, seed=seed,
                         patience=patience, precision=precision)
    info.update({"augmented": elements is not None,
                 "ema_momentum": None if ema_momentum is None else float(ema_momentum),
                 "standardisation": "per pixel, averaged over the 8 detector symmetries; training split" if standardise else None,
                 "fine_tuned": start_from is not None})
    return float32_copy(model, lambda: build_model(n_classes, standardisation=stats)), info


@contextlib.contextmanager
def precision_policy(precision: str = "float32"):
    """Build networks in ``precision`` inside the block (Keras's global dtype policy, put back afterwards); yields
    the precision :func:`resolve_precision` chose ("auto": the faster of float32 and mixed bfloat16 on this CPU)."""
    keras = keras_module()
    precision = resolve_precision(precision)
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield precision
    finally:
        keras.mixed_precision.set_global_policy(policy)


def float32_copy(model, build):
    """``model`` itself when it computes in float32; otherwise a float32 network from ``build()`` (no arguments)
    holding its trained weights, which then runs the same on every CPU."""
    if model.dtype_policy.name == "float32":
        return model
    with precision_policy("float32"):
        copy = build()
    copy.set_weights(model.get_weights())
    return copy


def training_info(history, callbacks, train_idx, val_idx, **recipe) -> dict:
    """What a training run records (saved with the model): the history per epoch, the best epoch (1-based) and its
    validation accuracy, the seconds of every epoch, the split's sizes and validation indices, and ``recipe`` (the
    training parameters). ``callbacks`` must hold those of :func:`training_callbacks`."""
    keep = next(c for c in callbacks if getattr(c, "restore_best_weights", False))
    timer = next(c for c in callbacks if hasattr(c, "seconds"))
    info = {"history": {k: [float(v) for v in vals] for k, vals in history.history.items() if k != TIE_BREAK},
            "best_epoch": int(keep.best_epoch) + 1,
            "best_val_accuracy": float(history.history["val_accuracy"][keep.best_epoch]),
            "seconds_per_epoch": [float(s) for s in timer.seconds], "n_train": int(len(train_idx)),
            "epochs_run": len(timer.seconds), "n_validation": int(len(val_idx)),
            "validation_index": np.asarray(val_idx).tolist(), "augmented": False, "ema_momentum": None,
            "standardisation": None, "fine_tuned": False}
    for key, value in recipe.items():
        info[key] = value.item() if isinstance(value, np.generic) else value
    return info


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


#: the modules whose code makes the structures a model is trained on and re-cuts a user's structure into its block
STRUCTURE_CODE = ("structures.py", "lattice.py", "defects.py")


@functools.lru_cache(maxsize=1)
def structure_output_sha256() -> str:
    """SHA-256 of what :data:`STRUCTURE_CODE` makes on a fixed probe, recorded by :func:`save_model`: the sets of
    notebook 01 (standard orientation) and of notebook 07 (turned at random, with clusters) at two structures per
    class from seed 0, with their labels, and the blocks :func:`helpers.lattice.standard_block` cuts from turned fcc,
    hcp and bcc supercells, pristine, with 25 % vacancies and with sigma = 2 % displacements. A shipped model whose
    record differs was trained on structures the installed code no longer makes; a change that leaves every
    structure the same (a refactor, a faster search) keeps the record. Coordinates count to 1e-4 Angstrom, so that
    the last bits of another CPU's arithmetic do not. About 3 s, once per process."""
    import hashlib

    from ase.build import bulk

    from . import defects, lattice
    from .datasets import generate_structure_sets
    from .structures import random_rotation, rotate

    digest = hashlib.sha256()

    def add(atoms, label) -> None:
        digest.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
        digest.update(np.round(np.asarray(atoms.positions, dtype=np.float64), 4).tobytes())
        digest.update(np.round(np.asarray(atoms.cell[:], dtype=np.float64), 4).tobytes())
        digest.update(np.asarray(atoms.pbc, dtype=bool).tobytes())
        digest.update(repr(label).encode())

    for orientation, clusters in (("standard", 0.0), ("random", 0.5)):
        sets = generate_structure_sets(n_per_class=2, n_test_per_class=1, seed=0, n_jobs=1, progress=False,
                                       orientation=orientation, cluster_fraction=clusters)
        for name in sorted(sets):
            for i, atoms in enumerate(sets[name].all_atoms()):
                add(atoms, int(sets[name]["label"][i]))
    rng = np.random.default_rng(0)
    for small, reps in ((bulk("Cu", "fcc", a=3.615), (6, 6, 6)), (bulk("Mg", "hcp", a=3.209, c=5.211), (5, 5, 4)),
                        (bulk("W", "bcc", a=3.165, cubic=True), (4, 5, 6))):
        big = small.repeat(reps)
        for atoms in (big, defects.vacancies(big, 0.25, rng), defects.displacements(big, 0.02, rng)):
            block = lattice.standard_block(rotate(atoms, random_rotation(rng)))
            add(block.atoms, (block.space_group, block.repeats, block.n_basis))
    return digest.hexdigest()


def save_model(model, info: dict, directory: Path | None = None, extra: dict | None = None,
               kind: str = "paper", params: dict | None = None, inputs=()) -> Path:
    """Save a trained model and its provenance.

    Parameters
    ----------
    model : keras.Model
        The trained network.
    info : dict
        What :func:`train` returned beside the model (history, best epoch, ...).
    directory : path, optional
        Where to write (default ``data/``).
    extra : dict, optional
        More entries for the metadata file.
    kind : str
        "paper" (notebook 03's model) or "any_orientation" (notebook 07's); see ``MODEL_KINDS``.
    params : dict, optional
        The data parameters of the fingerprints it was trained on (checked by :func:`check_trained_on`).
    inputs : iterable of path
        The files it was trained from; a later change to one of them makes the model stale.

    Returns
    -------
    Path
        The model file. Beside it, a JSON file holds the class names, fingerprint settings, package versions,
        training parameters and results, the provenance record (:mod:`helpers.provenance`) and the model file's
        SHA-256. Both are written to temporary files and renamed.
    """
    keras = keras_module()
    path, meta_path = model_paths(directory, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = provenance.temporary_path(path)  # Keras wants the .keras suffix: the temporary name keeps it
    try:
        model.save(tmp)
        meta = {**provenance.record(MODEL_KINDS[check_kind(kind)][1], params, inputs=inputs, fingerprint=True),
                "kind": "cnn_model", "model_kind": kind, "class_names": list(CLASSES), "input_shape": list(SHAPE),
                "keras_backend": keras.backend.backend(), "keras": keras.__version__,
                "training": {k: v for k, v in info.items() if k != "validation_index"},
                "model_sha256": file_sha256(tmp), "structure_output_sha256": structure_output_sha256(), **(extra or {})}
        os.replace(tmp, path)
        provenance.write_text(meta_path, json.dumps(meta, indent=1, sort_keys=True, default=provenance.jsonable))
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_model(directory: Path | None = None, kind: str = "paper"):
    """The model of ``kind`` that its notebook saved (03 for "paper", 07 for "any_orientation") and its metadata.

    Stops with a message naming that notebook when there is none, when the model file and its metadata do not
    belong together, or when it was made in another file format, for other fingerprint settings or other classes.
    The files it was trained from are not checked here (a model copied elsewhere stays usable): a notebook that
    needs the model to match its data calls :func:`check_trained_on`."""
    path, meta = check_saved_model(directory, kind)
    return keras_module().saving.load_model(path), meta


def check_saved_model(directory: Path | None = None, kind: str = "paper") -> tuple:
    """(model path, metadata) after every check of :func:`load_model` that does not need Keras: whether the model
    exists, belongs to its metadata, and was made in this file format, for these fingerprint settings and
    classes. Raises FileNotFoundError or StaleDataError naming the notebook to rerun."""
    path, meta_path = model_paths(directory, kind)
    notebook = MODEL_KINDS[kind][1]
    if not path.exists() or not meta_path.exists():
        raise FileNotFoundError(f"no trained model at {path}: run {notebook} first (or pass a model).")
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError as exc:
        raise StaleDataError(f"{meta_path} cannot be read ({exc}); rerun {notebook}.") from exc
    if meta.get("model_sha256") != file_sha256(path):
        raise StaleDataError(f"{path} does not match {meta_path.name} (one was rewritten without the "
                             f"other); rerun {notebook}.")
    provenance.check_format(meta, meta_path, notebook)
    provenance.check_fingerprint_params(meta.get("fingerprint"), path, f"notebooks 02 and {notebook}")
    if meta.get("class_names") != list(CLASSES):
        raise StaleDataError(f"{path} predicts classes {meta.get('class_names')}, not {list(CLASSES)}; "
                             f"rerun {notebook}.")
    return path, meta


def check_trained_on(meta: dict, expect: dict, kind: str = "paper") -> None:
    """Stop when the saved model of ``kind`` was trained on data made with other parameters than ``expect``, or
    from fingerprint files that have been rewritten since."""
    path = model_paths(kind=kind)[0]
    notebook = MODEL_KINDS[check_kind(kind)][1]
    made = meta.get("params", {})
    provenance.check_params({"params": made}, {k: v for k, v in expect.items() if k in made}, path,
                            f"notebooks 01-03 (the model: {notebook})")
    provenance.check_inputs(meta, path, notebook)


def data_signature(fingerprints) -> dict:
    """:func:`helpers.provenance.content_signature` of a training set (a ``FingerprintSet``): its labels, elements and
    prototypes exactly, its fingerprints to rounding. Saved with a model (``save_model(..., data=...)``) so that the
    model can be matched to data another machine made."""
    exact = {k: fingerprints.arrays[k] for k in ("label", "element", "prototype") if k in fingerprints.arrays}
    return provenance.content_signature(fingerprints.X, exact)


def shipped_model(kind: str, params: dict, fingerprints) -> tuple:
    """The default-size model of ``kind`` shipped in :data:`PRETRAINED_DIR`, if it was trained on exactly these data
    (``fingerprints``, the training ``FingerprintSet`` at hand): ``(model, meta, None)``; otherwise
    ``(None, None, reason)``.

    "Exactly these data": the same data parameters (``params``, those the model records), fingerprint settings and
    classes (:func:`check_saved_model`), and the same content (:func:`data_signature`: labels, elements and
    prototypes equal, fingerprints equal to rounding). Content, not a file hash: the same data made on another CPU
    differ in the last bits of their floats, so their files' SHA-256 differ."""
    try:
        path, meta = check_saved_model(PRETRAINED_DIR, kind)
    except (FileNotFoundError, StaleDataError) as exc:
        return None, None, f"no usable shipped model ({exc})"
    made = meta.get("params", {})
    differ = {k: (made.get(k), v) for k, v in (params or {}).items()
              if k in made and not (np.isclose(made[k], v) if isinstance(v, float) else made[k] == v)}
    if differ:
        return None, None, ("the shipped model was trained on data made with other parameters ("
                            + ", ".join(f"{k}={a!r} there, {b!r} here" for k, (a, b) in differ.items()) + ")")
    reason = provenance.same_content(meta.get("data_signature"), data_signature(fingerprints))
    if reason:
        return None, None, f"the shipped model was trained on other data than these ({reason})"
    return keras_module().saving.load_model(path), meta, None


def load_trained(expect: dict, kind: str = "paper", fingerprints=None, log=print) -> tuple:
    """The model of ``kind`` for the data of this run, and where it came from: ``(model, meta, source)``.

    The model its notebook saved in data/ (checked by :func:`check_trained_on`); when that notebook has not run, the
    shipped default-size model (:func:`shipped_model`) if it was trained on exactly these data (``fingerprints``:
    its training set; default, the training fingerprints of ``kind``'s notebook in data/). Otherwise a
    FileNotFoundError or StaleDataError naming the notebook to run. ``log`` says which model is used."""
    try:
        path, meta = check_saved_model(None, kind)
    except FileNotFoundError as missing:
        if fingerprints is None:
            from .datasets import ANY_PREFIX, load_fingerprints

            fingerprints = load_fingerprints("train" if kind == "paper" else f"{ANY_PREFIX}train", expect)
        model, meta, reason = shipped_model(kind, expect, fingerprints)
        if model is None:
            raise FileNotFoundError(f"{missing} The model shipped with helpers cannot stand in: {reason}.") from None
        log(f"{MODEL_KINDS[kind][1]} has not run here: using the default-size model shipped with helpers "
            f"(helpers/pretrained/{MODEL_KINDS[kind][0]}.keras), trained on exactly these data (same parameters, "
            "same labels and elements, the same training fingerprints to rounding).")
        return model, meta, "shipped with helpers"
    check_trained_on(meta, expect, kind)
    log(f"using {path.name}, trained by {MODEL_KINDS[kind][1]} in this data folder")
    return keras_module().saving.load_model(path), meta, f"data/{path.name}"


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
    return np.asarray(feature_model(model).predict(np.asarray(X, np.float32), batch_size=batch_size, verbose=0),
                      np.float64)


_feature_models = weakref.WeakKeyDictionary()


def feature_model(model):
    """The network up to its dense-128 features (after the ReLU), the input of dropout. Made once per model and
    kept: a new one per call would have its prediction function traced anew every time (slow, and TensorFlow
    warns about it)."""
    sub = _feature_models.get(model)
    if sub is None:
        sub = _feature_models[model] = keras_module().Model(model.inputs[0], model.get_layer("dense").output)
    return sub


def mc_dropout_samples(model, X: np.ndarray, n_samples: int = 50, seed: int = 0, rate: float | None = None,
                       features: np.ndarray | None = None) -> np.ndarray:
    """Class probabilities of ``n_samples`` stochastic forward passes, shape (n_samples, n, classes).

    Dropout is the only random layer and sits after every convolution, so the convolutions run once
    and each pass redraws only the dropout mask (inverted dropout, as Keras trains it) before the
    batch norm (inference statistics) and the softmax layer. ``rate=0`` gives the deterministic
    prediction of ``model.predict``.
    """
    from scipy.special import softmax

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
        out[t] = softmax(Z @ head["W"] + head["b"], axis=-1)
    return out


def uncertainty(samples: np.ndarray) -> dict:
    """Mean probability, predictive entropy H[E p] and mutual information H[E p] - E H[p] (the part
    of the entropy that comes from the model's uncertainty) over the MC-dropout samples, in nats.
    Both lie in [0, ln(number of classes)]."""
    from scipy.stats import entropy as shannon

    mean = samples.mean(axis=0)
    entropy = shannon(mean, axis=-1)
    mutual_information = np.maximum(entropy - shannon(samples, axis=-1).mean(axis=0), 0.0)
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
def check_labels(y, name: str = "labels", n_classes: int = len(CLASSES)) -> np.ndarray:
    """``y`` as an integer array of class indices in [0, n_classes); a ValueError naming the classes otherwise."""
    y = np.asarray(y)
    if y.ndim != 1 or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {y.shape} and dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name} must be class indices 0..{n_classes - 1} ({', '.join(CLASSES)}); "
                         f"found {int(y.min())}..{int(y.max())}")
    return y


def confusion(y_true, y_pred, n_classes: int = len(CLASSES)) -> np.ndarray:
    """Confusion matrix, rows true and columns predicted class (``sklearn.metrics.confusion_matrix`` over all
    ``n_classes`` classes, present or not)."""
    from sklearn.metrics import confusion_matrix

    y_true, y_pred = check_labels(y_true, "y_true", n_classes), check_labels(y_pred, "y_pred", n_classes)
    return confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))


def precision_recall(y_true, y_pred, n_classes: int = len(CLASSES)) -> tuple:
    """Per-class precision and recall (``sklearn.metrics.precision_recall_fscore_support``); NaN where a class
    was never predicted (precision) or never present (recall)."""
    from sklearn.metrics import precision_recall_fscore_support

    y_true, y_pred = check_labels(y_true, "y_true", n_classes), check_labels(y_pred, "y_pred", n_classes)
    precision, recall, _, _ = precision_recall_fscore_support(y_true, y_pred, labels=np.arange(n_classes),
                                                              zero_division=np.nan)
    return precision, recall
