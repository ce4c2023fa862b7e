"""Label-free classification: the assignment problem, the scores, PCA on the ring, the azimuthal profile and
the autoencoders (notebook 05), and notebook 06's input check."""
import itertools

import numpy as np
import pytest

from helpers import clustering, report
from helpers.fingerprint import ring_mask


def brute_force_accuracy(clusters, labels, k):
    """The report's way: try every permutation."""
    return max(np.mean(np.asarray(perm)[clusters] == labels) for perm in itertools.permutations(range(k)))


@pytest.mark.parametrize("seed", range(5))
def test_assignment_equals_trying_every_permutation(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, 200)
    clusters = np.where(rng.random(200) < 0.6, (labels + 2) % 5, rng.integers(0, 5, 200))
    mapping = clustering.match_clusters(clusters, labels, 5, 5)
    assert sorted(mapping.tolist()) == list(range(5))
    assert clustering.scores(labels, clusters, mapping)["accuracy"] == pytest.approx(
        brute_force_accuracy(clusters, labels, 5))


def test_renamed_true_partition_scores_one_and_random_scores_low():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(7), 50)
    renamed = rng.permutation(7)[labels]
    s = clustering.scores(labels, renamed, clustering.match_clusters(renamed, labels))
    assert s == {"accuracy": 1.0, "ari": 1.0, "nmi": pytest.approx(1.0)}
    noise = rng.integers(0, 7, len(labels))
    s = clustering.scores(labels, noise, clustering.match_clusters(noise, labels))
    assert abs(s["ari"]) < 0.05 and s["nmi"] < 0.1 and s["accuracy"] < 0.3


def test_contingency_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="cluster labels"):
        clustering.contingency(np.zeros(3, int), np.zeros(4, int))


def test_components_for_variance_on_data_of_known_spectrum():
    # four independent directions with variances 50, 30, 17 and 3: 95 % needs three, 45 % one
    rng = np.random.default_rng(0)
    F = rng.standard_normal((4000, 4)) * np.sqrt([50.0, 30.0, 17.0, 3.0])
    assert clustering.components_for_variance(F, 0.95) == 3
    assert clustering.components_for_variance(F, 0.45) == 1
    ratio = clustering.pca_spectrum(F)
    assert np.allclose(ratio, [0.5, 0.3, 0.17, 0.03], atol=0.02)
    with pytest.raises(ValueError, match="fraction"):
        clustering.components_for_variance(F, 1.5)
    assert clustering.components_for_variance(fraction=0.95, ratio=ratio) == 3


@pytest.mark.parametrize("shape", [(300, 40), (30, 80)])  # more samples than features, and fewer
def test_pca_spectrum_equals_scikit_learn_and_counts_components_as_it_does(shape):
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(1)
    F = rng.standard_normal(shape) @ rng.standard_normal((shape[1], shape[1])) ** 3  # a steep, uneven spectrum
    ours = clustering.pca_spectrum(F)
    theirs = PCA(svd_solver="full").fit(F).explained_variance_ratio_
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=1e-12)
    for fraction in (0.5, 0.9, 0.95, 0.99):
        assert (clustering.components_for_variance(fraction=fraction, ratio=ours)
                == PCA(n_components=fraction, svd_solver="full").fit(F).n_components_)


def test_contingency_counts_and_keeps_empty_clusters():
    table = clustering.contingency(np.array([0, 0, 2, 2, 2]), np.array([1, 1, 0, 3, 3]), n_clusters=4, n_classes=5)
    expected = np.zeros((4, 5), int)
    expected[0, 1], expected[2, 0], expected[2, 3] = 2, 1, 2
    assert np.array_equal(table, expected)
    with pytest.raises(ValueError, match="class labels must lie"):
        clustering.contingency(np.array([0]), np.array([7]))


def fake_fingerprints(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 64, 64, 3)).astype(np.float32) ** 8
    X[:, ~ring_mask(), :] = 0
    return X


def test_full_spectrum_matches_sklearn_and_ring_pixels_lose_nothing():
    from sklearn.decomposition import PCA

    X = fake_fingerprints(40)
    ratio = clustering.pca_spectrum(clustering.ring_features(X))
    ref = PCA().fit(clustering.flatten(X).astype(np.float64)).explained_variance_ratio_
    assert np.allclose(ratio[: len(ref)], ref, atol=1e-9) and ratio.sum() == pytest.approx(1.0)
    assert clustering.ring_features(X).shape == (40, 3 * int(ring_mask().sum()))


def test_azimuthal_profile_ignores_rotation_about_the_beam_and_channel_order():
    X = fake_fingerprints(3)
    p = clustering.normalised_profile(X)
    assert p.shape == (3, 20) and np.allclose(p.sum(axis=1), 1.0)
    turned = np.rot90(X, 1, axes=(1, 2))[..., [1, 0, 2]]  # the fingerprint of the crystal turned 90° about z
    assert np.allclose(clustering.normalised_profile(turned), p, atol=1e-6)
    assert not np.allclose(clustering.normalised_profile(X[::-1]), p)


def test_new_samples_go_to_the_nearest_centre_as_the_report_does():
    rng = np.random.default_rng(1)
    E = rng.normal(size=(300, 4)) + np.repeat(rng.normal(scale=5, size=(7, 4)), [43] * 6 + [42], axis=0)
    fitted = clustering.cluster_and_score(E, np.repeat(np.arange(7), [43] * 6 + [42]), seed=0)["K-Means"]
    new = rng.normal(scale=4, size=(50, 4))
    d = np.linalg.norm(new[:, None, :] - fitted["model"].cluster_centers_[None], axis=-1)
    assert np.array_equal(clustering.assign_new(fitted, "K-Means", new), fitted["mapping"][d.argmin(axis=1)])
    with pytest.raises(ValueError, match="clusterer must be one of"):
        clustering.assign_new(fitted, "DBSCAN", new)


def test_well_separated_blobs_are_found_by_both_clusterers():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(7), 40)
    E = rng.normal(scale=10, size=(7, 3))[labels] + rng.normal(scale=0.1, size=(len(labels), 3))
    for name, f in clustering.cluster_and_score(E, labels, seed=0).items():
        assert f["accuracy"] == 1.0 and f["ari"] == pytest.approx(1.0), name
        assert np.array_equal(clustering.assign_new(f, name, E), labels)


def test_dense_autoencoder_is_report_table_2():
    ae, encoder = clustering.dense_autoencoder(seed=0)
    assert ae.input_shape == (None, 12288) and ae.output_shape == (None, 12288)
    assert encoder.output_shape == (None, 2)
    widths = [layer.units for layer in ae.layers if hasattr(layer, "units")]
    assert widths == [128, 64, 2, 64, 128, 12288]
    acts = [layer.activation.__name__ for layer in ae.layers if hasattr(layer, "units")]
    assert acts == ["relu"] * 5 + ["tanh"]


def test_autoencoder_keeps_the_epoch_with_the_lowest_validation_loss():
    """Training an autoencoder puts back the weights of its best validation-loss epoch, not its last (a callback that
    watched validation accuracy, which an autoencoder does not have, restored nothing)."""
    X = fake_fingerprints(24)
    ae, _ = clustering.conv_autoencoder(seed=0, latent=5)
    # a learning rate this large makes the validation loss rise after the first epoch: the last epoch is not the best
    fit = clustering.train_autoencoder(ae, X, epochs=6, batch_size=8, learning_rate=0.2, seed=0, progress=False)
    losses = fit["history"]["val_loss"]
    assert int(np.argmin(losses)) < len(losses) - 1, losses
    assert fit["best_epoch"] == int(np.argmin(losses)) + 1
    val = X[np.sort(np.random.default_rng([0, 7]).permutation(len(X))[:fit["n_validation"]])]
    kept = float(np.mean((ae.predict(val, verbose=0) - val) ** 2))
    assert kept == pytest.approx(min(losses), rel=1e-3)


def test_conv_autoencoder_trains_and_encodes():
    X = fake_fingerprints(24)
    ae, encoder = clustering.conv_autoencoder(seed=0, latent=5)
    assert ae.output_shape == (None, 64, 64, 3)
    fit = clustering.train_autoencoder(ae, X, epochs=3, batch_size=8, seed=0, progress=False)
    h = fit["history"]
    assert len(h["loss"]) == 3 and h["loss"][-1] < h["loss"][0]
    assert fit["n_train"] + fit["n_validation"] == 24 and fit["n_validation"] == 1
    E = clustering.encode(encoder, X)
    assert E.shape == (24, 5) and np.isfinite(E).all()
    assert np.allclose(clustering.encode(encoder, X[:7], batch_size=3), E[:7], atol=1e-5)


def test_missing_results_name_the_notebook(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CRYSTAL_FIGURES_DIR", str(tmp_path / "figures"))
    with pytest.raises(FileNotFoundError, match="05_dimensionality_reduction_clustering"):
        clustering.load_results()
    with pytest.raises(FileNotFoundError, match="01_data_generation.ipynb") as err:
        report.check_inputs({"data_seed": 0})
    assert "03_cnn_training" in str(err.value) and "05_dimensionality" in str(err.value)
