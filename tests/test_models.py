"""The CNN of report Table 1, its training loop, storage and Monte-Carlo dropout."""
import json
import math

import numpy as np
import pytest

from helpers import models
from helpers.datasets import StaleDataError
from helpers.structures import CLASSES


@pytest.fixture(scope="module")
def model():
    return models.build_model(seed=0)


def test_architecture_is_report_table_1(model):
    convs = [l for l in model.layers if type(l).__name__ == "Conv2D"]
    assert [l.filters for l in convs] == [32, 32, 16, 16, 8, 8]
    assert all(l.kernel_size == (7, 7) and l.padding == "same" for l in convs)
    # the course report's convolutions had no activation; ours all have ReLU
    assert all(l.activation.__name__ == "relu" for l in convs)
    kinds = [type(l).__name__ for l in model.layers]
    assert kinds == ["Conv2D", "Conv2D", "MaxPooling2D", "Conv2D", "Conv2D", "MaxPooling2D", "Conv2D", "Conv2D",
                     "Flatten", "Dense", "Dropout", "BatchNormalization", "Dense"]
    assert model.get_layer("dense").units == 128 and model.get_layer("dense").activation.__name__ == "relu"
    assert model.get_layer("dropout").rate == 0.25
    assert model.output_shape == (None, len(CLASSES))
    # Table 1's weights, counted from the layer sizes: 7x7 kernels between 3-32-32-16-16-8-8 channels, a dense layer
    # from the 16x16x8 map after two 2x2 pools, batch norm (4 per unit) and the softmax layer
    convs = [(3, 32), (32, 32), (32, 16), (16, 16), (16, 8), (8, 8)]
    expected = (sum(7 * 7 * cin * cout + cout for cin, cout in convs) + (16 * 16 * 8 * 128 + 128) + 4 * 128
                + (128 * len(CLASSES) + len(CLASSES)))
    assert model.count_params() == expected


def test_forward_cost_matches_the_layer_shapes(model):
    # conv: 2 * H * W * C_out * 7 * 7 * C_in; dense: 2 * in * out
    expected = 2 * (64 * 64 * 32 * 49 * 3 + 64 * 64 * 32 * 49 * 32 + 32 * 32 * 16 * 49 * 32
                    + 32 * 32 * 16 * 49 * 16 + 16 * 16 * 8 * 49 * 16 + 16 * 16 * 8 * 49 * 8
                    + 2048 * 128 + 128 * 7)
    assert models.forward_flop(model) == expected
    assert 0.52e9 < expected < 0.54e9


def test_stratified_split_keeps_every_class():
    y = np.repeat(np.arange(7), [40, 40, 40, 40, 40, 40, 20])
    train, val = models.stratified_split(y, 0.05, seed=3)
    assert not set(train) & set(val) and len(train) + len(val) == len(y)
    assert np.array_equal(np.bincount(y[val], minlength=7), [2, 2, 2, 2, 2, 2, 1])
    again = models.stratified_split(y, 0.05, seed=3)
    assert np.array_equal(val, again[1])
    assert not np.array_equal(val, models.stratified_split(y, 0.05, seed=4)[1])
    with pytest.raises(ValueError, match="fraction"):
        models.stratified_split(y, 1.5, seed=0)


def test_mc_dropout_without_dropout_is_model_predict(model):
    X = np.random.default_rng(0).random((9, 64, 64, 3), dtype=np.float32)
    p = models.predict_proba(model, X)
    samples = models.mc_dropout_samples(model, X, n_samples=2, rate=0.0)
    assert np.allclose(samples[0], p, atol=1e-5) and np.allclose(samples[1], p, atol=1e-5)
    out = models.mc_dropout(model, X, n_samples=20, seed=1)
    assert np.allclose(out["probability"], p, atol=1e-5)
    assert np.allclose(out["mean_probability"].sum(axis=1), 1.0)
    # with dropout on, the passes differ, and the same seed repeats them
    noisy = models.mc_dropout_samples(model, X, n_samples=5, seed=1)
    assert np.abs(noisy - p).max() > 1e-4
    assert np.array_equal(noisy, models.mc_dropout_samples(model, X, n_samples=5, seed=1))


def test_uncertainty_bounds():
    rng = np.random.default_rng(0)
    samples = rng.dirichlet(np.ones(7) * 0.3, size=(30, 50))
    u = models.uncertainty(samples)
    assert np.all(u["predictive_entropy"] <= math.log(7) + 1e-9) and np.all(u["predictive_entropy"] >= 0)
    # mutual information = entropy of the mean - mean entropy: below the entropy, and positive where passes disagree
    assert np.all(u["mutual_information"] <= u["predictive_entropy"] + 1e-12) and np.all(u["mutual_information"] > 0)
    same = np.repeat(samples[:1], 30, axis=0)  # passes that agree: no model uncertainty
    assert np.allclose(models.uncertainty(same)["mutual_information"], 0.0, atol=1e-12)
    certain = np.zeros((5, 3, 7))
    certain[..., 2] = 1.0
    assert np.allclose(models.uncertainty(certain)["predictive_entropy"], 0.0, atol=1e-9)


def _one_bright_pixel_per_class(seed):
    """12 noisy images per class, each with one class-specific bright pixel: (X, y)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(7), 12)
    X = rng.random((len(y), 64, 64, 3), dtype=np.float32) * 0.1
    X[np.arange(len(y)), 20, 5 + 7 * y, y % 3] = 1.0
    return X, y


def test_training_keeps_the_best_epoch_and_round_trips(tmp_path):
    X, y = _one_bright_pixel_per_class(0)
    trained, info = models.train(X, y, epochs=3, batch_size=8, seed=0, progress=False)
    val = np.asarray(info["validation_index"])
    assert len(val) == 7 and info["n_train"] == len(y) - 7
    acc, loss = np.array(info["history"]["val_accuracy"]), np.array(info["history"]["val_loss"])
    # the best validation accuracy; of equal ones, the lowest validation loss
    best = max(range(len(acc)), key=lambda e: (acc[e], -loss[e]))
    assert info["best_epoch"] == best + 1
    kept = (models.predict_proba(trained, X[val]).argmax(axis=1) == y[val]).mean()
    assert kept == pytest.approx(info["best_val_accuracy"], abs=1e-6)
    assert len(info["seconds_per_epoch"]) == 3

    models.save_model(trained, info, directory=tmp_path)
    loaded, meta = models.load_model(tmp_path)
    assert meta["class_names"] == list(CLASSES) and meta["training"]["best_epoch"] == info["best_epoch"]
    assert meta["keras"] and meta["fingerprint"]["n_pixels"] == 64
    assert np.allclose(models.predict_proba(loaded, X[:5]), models.predict_proba(trained, X[:5]), atol=1e-6)
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"

    # a model file rewritten without its metadata is refused
    meta_path = models.model_paths(tmp_path)[1]
    stale = json.loads(meta_path.read_text())
    stale["model_sha256"] = "0" * 64
    meta_path.write_text(json.dumps(stale))
    with pytest.raises(StaleDataError, match="03_cnn_training"):
        models.load_model(tmp_path)


def test_weight_average_is_written_into_the_model_at_every_epoch_end():
    keras = models.keras_module()
    X, y = _one_bright_pixel_per_class(1)
    gaps = []

    class Gap(keras.callbacks.Callback):
        """Largest difference between the model's weights and the optimizer's moving average."""

        def on_epoch_end(self, epoch, logs=None):
            averages = self.model.optimizer._model_variables_moving_average  # Keras 3's EMA slots
            gaps.append(max(float(np.max(np.abs(keras.ops.convert_to_numpy(v) - keras.ops.convert_to_numpy(a))))
                            for v, a in zip(self.model.trainable_variables, averages)))

    averaged, info = models.train(X, y, epochs=2, batch_size=8, seed=0, progress=False, callbacks=[Gap()],
                                  average_weights=True)
    assert info["ema_momentum"] == models.ema_momentum_for(10) == pytest.approx(2 / 3)  # 77 images, batches of 8
    assert gaps == [0.0, 0.0]  # validated and kept: the average itself
    plain, info_plain = models.train(X, y, epochs=2, batch_size=8, seed=0, progress=False)  # the paper's plain Adam
    assert info_plain["ema_momentum"] is None
    assert not np.allclose(averaged.get_layer("conv1").get_weights()[0], plain.get_layer("conv1").get_weights()[0])
    with pytest.raises(ValueError, match="ema_momentum"):
        models.train(X, y, epochs=1, progress=False, average_weights=True, ema_momentum=1.5)


def test_missing_model_names_notebook_03(tmp_path):
    with pytest.raises(FileNotFoundError, match="03_cnn_training"):
        models.load_model(tmp_path)


def test_bad_training_input():
    with pytest.raises(ValueError, match="shape"):
        models.train(np.zeros((4, 32, 32, 3)), np.zeros(4, int), progress=False)
    with pytest.raises(ValueError, match="labels"):
        models.train(np.zeros((4, 64, 64, 3)), np.zeros(3, int), progress=False)


def test_confusion_and_precision_recall():
    y_true, y_pred = [0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0]
    m = models.confusion(y_true, y_pred, n_classes=3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    precision, recall = models.precision_recall(y_true, y_pred, n_classes=3)
    assert np.allclose(precision, [0.5, 0.5, 1.0]) and np.allclose(recall, [0.5, 1.0, 2 / 3])
    # a class never predicted has no precision, a class never present no recall; neither is a number
    precision, recall = models.precision_recall([0, 0, 1], [0, 0, 0], n_classes=3)
    assert precision[0] == pytest.approx(2 / 3) and np.isnan(precision[1]) and np.isnan(recall[2])


def test_labels_outside_the_classes_are_refused_by_name():
    with pytest.raises(ValueError, match="class indices 0..6"):
        models.confusion([0, 7], [0, 1])
    with pytest.raises(ValueError, match="1-D array of class indices"):
        models.confusion([0.5, 1.0], [0, 1])


def test_check_trained_on(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(tmp_path))
    meta = {"params": {"data_seed": 1, "n_per_class": 10}}
    models.check_trained_on(meta, {"data_seed": 1, "n_per_class": 10})
    with pytest.raises(StaleDataError, match="-p data_seed 2"):
        models.check_trained_on(meta, {"data_seed": 2})
    # a model trained from a fingerprint file that has been rewritten since is stale
    source = tmp_path / "fingerprints_train.npz"
    source.write_bytes(b"first")
    from helpers import provenance

    meta = provenance.record("notebooks/03_cnn_training.ipynb", {"data_seed": 1}, inputs=[source])
    models.check_trained_on(meta, {"data_seed": 1})
    source.write_bytes(b"second")
    with pytest.raises(StaleDataError, match="earlier fingerprints_train.npz.*rerun notebooks/03"):
        models.check_trained_on(meta, {"data_seed": 1})


def test_a_shipped_model_stands_in_only_for_the_data_it_was_trained_on(tmp_path, monkeypatch):
    from helpers import datasets

    X, y = _one_bright_pixel_per_class(0)
    elements = np.array(["Cu", "W", "Si", "Mg", "Po", "In", "Sn"])[y]
    fps = datasets.FingerprintSet("train", {"X": X, "label": y, "element": elements}, {})
    trained, info = models.train(X, y, epochs=1, batch_size=8, seed=0, progress=False)
    shipped_dir, data_dir = tmp_path / "pretrained", tmp_path / "data"
    params = {"data_seed": 1, "n_per_class": 12}
    models.save_model(trained, info, directory=shipped_dir, params=params,
                      extra={"data_signature": models.data_signature(fps)})
    monkeypatch.setattr(models, "PRETRAINED_DIR", shipped_dir)
    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(data_dir))

    # the same data, made on a CPU that rounds the last bits differently: accepted
    again = datasets.FingerprintSet("train", {"X": np.nextafter(X, 2), "label": y, "element": elements}, {})
    model, meta, reason = models.shipped_model("paper", params, again)
    assert reason is None and meta["params"] == params
    assert np.allclose(models.predict_proba(model, X[:5]), models.predict_proba(trained, X[:5]), atol=1e-6)
    notes = []
    loaded, _, source = models.load_trained(params, fingerprints=again, log=notes.append)
    assert source == "shipped with helpers" and "helpers/pretrained/cnn_model.keras" in notes[0]

    # other parameters, other labels, other elements, other fingerprint values: refused, with the reason
    assert "n_per_class=12 there, 13 here" in models.shipped_model("paper", {**params, "n_per_class": 13}, again)[2]
    for arrays, why in (({"label": np.roll(y, 1), "element": elements}, "other label"),
                        ({"label": y, "element": np.roll(elements, 1)}, "other element")):
        other = datasets.FingerprintSet("train", {"X": X, **arrays}, {})
        assert why in models.shipped_model("paper", params, other)[2]
    shifted = datasets.FingerprintSet("train", {"X": np.roll(X, 1, axis=1), "label": y, "element": elements}, {})
    assert "other fingerprint values" in models.shipped_model("paper", params, shifted)[2]
    with pytest.raises(FileNotFoundError, match="03_cnn_training.*cannot stand in.*other fingerprint values"):
        models.load_trained(params, fingerprints=shifted, log=notes.append)

    # a model trained here comes first, checked against its training file as always
    models.save_model(trained, info, directory=data_dir, params=params)
    assert models.load_trained(params, fingerprints=shifted, log=notes.append)[2] == "data/cnn_model.keras"


def _ring_fingerprints(n, seed):
    from helpers.fingerprint import ring_mask

    rng = np.random.default_rng(seed)
    X = rng.random((n, 64, 64, 3), dtype=np.float32) ** 4  # skewed, like diffraction intensities
    return X * ring_mask()[None, :, :, None]


def test_symmetric_standardisation_is_the_mean_and_variance_over_the_symmetric_views():
    from helpers.augment import d4
    from helpers.fingerprint import ring_mask

    X = _ring_fingerprints(20, 0)
    mean, var = models.symmetric_standardisation(X, batch=7)  # chunks of 7, 7, 6
    assert mean.shape == var.shape == (64, 64, 3) and mean.dtype == np.float32
    assert not mean[~ring_mask()].any() and not var[~ring_mask()].any()
    views = np.concatenate([d4(X, k, m) for k in range(4) for m in (False, True)])  # 160 fingerprints
    on = ring_mask()
    assert np.allclose(mean[on], views.mean(axis=0)[on], atol=1e-6)
    assert np.allclose(var[on], views.var(axis=0)[on], rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="at least one"):
        models.symmetric_standardisation(X[:0])


def test_standardisation_commutes_with_the_detector_symmetries():
    from helpers.augment import d4

    X = _ring_fingerprints(10, 1)
    mean, var = models.symmetric_standardisation(X)
    sd = np.sqrt(var) + (var == 0)
    standardise = lambda Z: (Z - mean) / sd  # noqa: E731
    for k in range(4):
        for mirror in (False, True):
            m2, v2 = models.symmetric_standardisation(d4(X, k, mirror))
            assert np.allclose(m2, mean, atol=1e-7) and np.allclose(v2, var, atol=1e-7)
            assert np.allclose(standardise(d4(X, k, mirror)), d4(standardise(X), k, mirror), atol=1e-5)


def test_standardised_model_is_table_1_after_the_standardisation(tmp_path):
    X = _ring_fingerprints(4, 2)
    mean, var = models.symmetric_standardisation(_ring_fingerprints(30, 3))
    plain = models.build_model(seed=0)
    std = models.build_model(seed=0, standardisation=(mean, var))
    assert [type(l).__name__ for l in std.layers][:2] == ["Normalization", "Conv2D"]
    assert std.count_params() == plain.count_params()  # mean and variance are constants of the layer
    assert std.get_layer("standardise").get_config()["mean"] is not None  # ... saved in its configuration
    for layer in plain.layers:
        std.get_layer(layer.name).set_weights(layer.get_weights())
    z = np.where(var > 0, (X - mean) / np.sqrt(np.maximum(var, 1e-30)), 0).astype(np.float32)
    assert np.allclose(models.predict_proba(std, X), models.predict_proba(plain, z), atol=1e-5)
    assert models.forward_flop(std) == models.forward_flop(plain)
    models.save_model(std, {"best_epoch": 1}, directory=tmp_path)
    loaded, _ = models.load_model(tmp_path)
    assert np.allclose(models.predict_proba(loaded, X), models.predict_proba(std, X), atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        models.build_model(standardisation=(mean[..., :2], var[..., :2]))


def test_symmetrised_prediction_does_not_depend_on_the_view(model):
    from helpers.augment import d4

    X = _ring_fingerprints(3, 5)
    p = models.predict_proba(model, X, symmetrise=True)
    assert p.shape == (3, len(CLASSES)) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
    for k, m in ((1, False), (2, True), (3, True)):
        assert np.allclose(models.predict_proba(model, d4(X, k, m), symmetrise=True), p, atol=1e-5)
    single = models.predict_proba(model, X)
    assert not np.allclose(single, models.predict_proba(model, d4(X, 1, False)), atol=1e-5)  # the plain model is not


def test_patience_stops_once_validation_accuracy_stops_rising_and_keeps_the_best_epoch():
    X, y = _one_bright_pixel_per_class(0)
    trained, info = models.train(X, y, epochs=12, batch_size=8, seed=0, progress=False, patience=1)
    acc = np.array(info["history"]["val_accuracy"])
    run = info["epochs_run"]
    assert run == len(acc) == len(info["seconds_per_epoch"]) and info["patience"] == 1 and info["epochs"] == 12
    # it stopped at the first epoch whose validation accuracy did not beat every earlier one, not before, not after
    first_flat = next(e for e in range(1, len(acc)) if acc[e] <= acc[:e].max())
    assert run == first_flat + 1 < 12, acc
    assert info["best_val_accuracy"] == acc.max()
    val = np.asarray(info["validation_index"])
    kept = (models.predict_proba(trained, X[val]).argmax(axis=1) == y[val]).mean()
    assert kept == pytest.approx(info["best_val_accuracy"], abs=1e-6)
    with pytest.raises(ValueError, match="patience"):
        models.train(X, y, epochs=2, batch_size=8, seed=0, progress=False, patience=0)


def test_auto_precision_is_float32_without_native_bfloat16_and_the_faster_measured_one_with_it(monkeypatch):
    from helpers import machine

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    measured = []

    def fake_fastest(choice):
        def fastest(steps=6):
            measured.append(choice)
            return {"choice": choice, "seconds_per_step": {}}
        return fastest

    monkeypatch.setattr(models, "fastest_precision", fake_fastest("mixed_bfloat16"))
    monkeypatch.setattr(machine, "vector_flags", lambda: ["avx", "avx2", "fma"])  # a laptop: never measured
    assert models.resolve_precision("auto") == "float32" and measured == []
    for flags in (["avx2", "avx512f", "avx512_bf16"], ["avx2", "avx512f", "amx_bf16", "amx_tile"]):
        monkeypatch.setattr(machine, "vector_flags", lambda flags=flags: flags)
        for choice in ("mixed_bfloat16", "float32"):  # "auto" follows the measurement, either way
            monkeypatch.setattr(models, "fastest_precision", fake_fastest(choice))
            assert models.resolve_precision("auto") == choice
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # oneDNN held below bfloat16: float32, unmeasured
        n = len(measured)
        assert models.resolve_precision("auto") == "float32" and len(measured) == n
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
        assert models.resolve_precision("auto") == "float32"  # the last fake measured float32 faster
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert models.resolve_precision("float32") == "float32"
    with pytest.raises(ValueError, match="precision must be one of"):
        models.resolve_precision("float16")


@pytest.mark.skipif(not __import__("helpers.machine", fromlist=["x"]).native_bfloat16(),
                    reason="this CPU has no native bfloat16: auto never measures it")
def test_fastest_precision_times_both_and_picks_the_faster(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(models, "_PRECISION_TIMES", {})
    found = models.fastest_precision(steps=2)
    times = found["seconds_per_step"]
    assert set(times) == {"float32", "mixed_bfloat16"} and all(t > 0 for t in times.values())
    assert found["choice"] == min(times, key=times.get)
    # remembered in the data folder: the next notebook's kernel (a new process) reads it and times nothing
    assert (tmp_path / models.PRECISION_FILE).exists()
    monkeypatch.setattr(models, "_PRECISION_TIMES", {})
    monkeypatch.setattr(models, "time_precision", lambda *a, **k: pytest.fail("timed again"))
    assert models.fastest_precision(steps=2) == found
    # another data folder (or another CPU, ISA limit or TensorFlow) times again
    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(tmp_path / "other"))
    monkeypatch.setattr(models, "_PRECISION_TIMES", {})
    monkeypatch.setattr(models, "time_precision", lambda precision, steps: {"float32": 2.0}.get(precision, 1.0))
    assert models.fastest_precision(steps=2)["choice"] == "mixed_bfloat16"


def test_bfloat16_training_returns_a_float32_model_that_predicts_like_the_trained_one():
    X, y = _one_bright_pixel_per_class(2)
    model, info = models.train(X, y, epochs=3, batch_size=8, seed=0, progress=False, precision="mixed_bfloat16")
    assert info["precision"] == "mixed_bfloat16"
    keras = models.keras_module()
    assert keras.mixed_precision.global_policy().name == "float32"  # restored for whatever runs next
    assert all(layer.dtype_policy.name == "float32" for layer in model.layers)
    assert (models.predict_proba(model, X).argmax(axis=1) == y).mean() > 0.5  # it learnt the bright pixels


def test_the_kept_epoch_is_the_best_accuracy_then_the_lowest_loss_as_keras_compares_them():
    """Drive the callbacks with the logs of the default run's first epochs: every validation accuracy 1.0 and the loss
    falling from 1e-2 to 1e-5. Keras compares monitored values in float32, where a tie-break too small to see left
    the first epoch kept; a better accuracy must still win over any loss."""
    keras = models.keras_module()
    tiny = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    for logs, best in (([(1.0, 1.3e-2), (1.0, 7.7e-5), (1.0, 2.7e-5), (1.0, 2.9e-5)], 2),
                       ([(0.998, 1e-6), (1.0, 0.5), (0.999, 1e-9)], 1),
                       ([(0.5, 2.0), (0.5, 2.0)], 0)):
        callbacks = models.training_callbacks(len(logs), progress=False)
        keep = callbacks[1]
        for c in callbacks:
            c.set_model(tiny)
            c.on_train_begin()
        for epoch, (accuracy, loss) in enumerate(logs):
            entry = {"val_accuracy": accuracy, "val_loss": loss}
            for c in callbacks:
                c.on_epoch_begin(epoch)
                c.on_epoch_end(epoch, entry)
        assert keep.best_epoch == best, (logs, keep.best_epoch)


def test_the_structure_record_changes_with_what_the_code_makes_not_with_how(monkeypatch):
    """save_model records what the code that makes structures produces on a probe: a change to any structure (here
    displacements twice as large, or another rotation) changes the record; the same structures made by other code
    (the lattice search without its grid of seen vectors) keep it."""
    from helpers import defects, lattice, structures

    models.structure_output_sha256.cache_clear()
    today = models.structure_output_sha256()
    original = defects.displacements
    for module, name, changed in (
            (defects, "displacements", lambda atoms, sigma, rng, **kw: original(atoms, 2 * sigma, rng, **kw)),
            (structures, "random_rotation", lambda rng: np.eye(3))):
        with monkeypatch.context() as m:
            m.setattr(module, name, changed)
            models.structure_output_sha256.cache_clear()
            assert models.structure_output_sha256() != today, name

    class EverySeenVector(lattice._SeenVectors):  # the plain scan over every vector seen, as the search once did
        def __init__(self, radius):
            super().__init__(radius)
            self.all = []

        def near(self, t):
            return any(np.linalg.norm(v - t) < self.radius for v in self.all)

        def add(self, t):
            self.all.append(np.array(t, dtype=float))

    with monkeypatch.context() as m:
        m.setattr(lattice, "_SeenVectors", EverySeenVector)
        models.structure_output_sha256.cache_clear()
        assert models.structure_output_sha256() == today
    models.structure_output_sha256.cache_clear()
