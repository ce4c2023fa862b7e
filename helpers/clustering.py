"""Classes without labels (notebook 05): reduce the fingerprints to a few dimensions, cluster them with
K-Means into 7 groups, and name each cluster after a class by solving the assignment problem.

The course report (its section 2.4 and Table 5) matched clusters to classes "by trying permutations";
that is the linear assignment problem, solved exactly here by the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``) on the cluster x class contingency table.
"""
from __future__ import annotations

import time

import numpy as np

from .fingerprint import RING_INNER_PX, RING_OUTER_PX, SHAPE, pixel_distance, ring_mask
from .models import check_fingerprints, keras_module
from .provenance import NOTEBOOK_05

N_CLUSTERS = 7
N_INPUTS = int(np.prod(SHAPE))  # 64 * 64 * 3 = 12288 (the report's Table 2 says 12280)

# Course report, Table 5 (imbalanced data: 10,517 structures, sc had 4 members)
REPORT_TABLE5 = {"Linear PCA + K-Means": 0.8409, "Kernel PCA + K-Means": 0.8407,
                 "Autoencoder + K-Means": 0.8681, "CNN": 1.0}
# The report's class sizes (its Tables 3-4, labels 1-7), named by class: its labels were alphabetical
# (docs/science.md), so label 1 is bcc and label 7, with 4 members, sc.
REPORT_CLASS_SIZES = {"bcc": 2601, "bct_139": 221, "bct_141": 842, "diam": 910, "fcc": 2761, "hex_rh": 3178, "sc": 4}


def report_proportions(labels: np.ndarray, class_names: list, seed: int) -> np.ndarray:
    """Indices of a subset of ``labels`` with the report's class proportions (REPORT_CLASS_SIZES), as large as the
    classes allow: each class scaled by the same factor (the largest class keeps all its members), at least one
    member each, chosen at random from ``seed``."""
    labels = np.asarray(labels)
    have = np.array([np.sum(labels == c) for c in range(len(class_names))])
    want = np.array([REPORT_CLASS_SIZES[name] for name in class_names], np.float64)
    factor = float(np.min(have / want))
    counts = np.maximum(np.round(want * factor).astype(int), 1)
    rng = np.random.default_rng([seed, 17])
    picked = [rng.choice(np.flatnonzero(labels == c), size=min(n, h), replace=False)
              for c, (n, h) in enumerate(zip(counts, have))]
    return np.sort(np.concatenate(picked))


# ---- features ---------------------------------------------------------------------------------
def flatten(X) -> np.ndarray:
    """(n, 64, 64, 3) fingerprints -> (n, 12288) float32 rows, pixel-major as Keras' Flatten."""
    X = check_fingerprints(X)
    return X.reshape(len(X), -1)


def ring_features(X) -> np.ndarray:
    """Only the pixels inside the 10-30 px ring (7,536 of 12,288 values): the others are zero in every
    fingerprint, so PCA, kernel PCA and distances are the same with or without them, only cheaper."""
    X = check_fingerprints(X)
    return np.ascontiguousarray(X[:, ring_mask(), :].reshape(len(X), -1))


def radial_profiles(X) -> np.ndarray:
    """Azimuthal integration, as a powder pattern is made from a 2D detector: the mean intensity of each
    channel in rings 1 px wide across the kept ring (10 < d < 11, 11 <= d < 12, ... 29 <= d < 30 px)
    -> (n, 20, 3). A rotation of the crystal about the beam moves spots along their ring and leaves this
    profile unchanged."""
    X = check_fingerprints(X)
    d = pixel_distance()
    edges = np.arange(int(RING_INNER_PX), int(RING_OUTER_PX) + 1)
    out = np.empty((len(X), len(edges) - 1, X.shape[-1]), np.float32)
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        m = ring_mask() & (d >= lo) & (d < hi)
        out[:, i] = X[:, m, :].mean(axis=1)
    return out


# ---- matching and scores ----------------------------------------------------------------------
def contingency(clusters: np.ndarray, labels: np.ndarray, n_clusters: int = N_CLUSTERS,
                n_classes: int = N_CLUSTERS) -> np.ndarray:
    """counts[k, c] = members of cluster k with true class c, an (n_clusters, n_classes) table with empty clusters
    and absent classes as zero rows and columns (``sklearn.metrics.cluster.contingency_matrix``)."""
    from sklearn.metrics.cluster import contingency_matrix

    clusters, labels = np.asarray(clusters, int), np.asarray(labels, int)
    if clusters.shape != labels.shape:
        raise ValueError(f"{clusters.shape[0]} cluster labels but {labels.shape[0]} class labels")
    for name, v, n in (("cluster", clusters, n_clusters), ("class", labels, n_classes)):
        if v.size and (v.min() < 0 or v.max() >= n):
            raise ValueError(f"{name} labels must lie in 0..{n - 1}, found {v.min()}..{v.max()}")
    counts = np.zeros((n_clusters, n_classes), np.int64)
    if clusters.size:
        counts[np.ix_(np.unique(clusters), np.unique(labels))] = contingency_matrix(clusters, labels)
    return counts


def match_clusters(clusters: np.ndarray, labels: np.ndarray, n_clusters: int = N_CLUSTERS,
                   n_classes: int = N_CLUSTERS) -> np.ndarray:
    """The one-to-one cluster -> class map with the most members on their own class: the linear
    assignment problem on the contingency table (Hungarian algorithm). ``mapping[k]`` is the class of
    cluster k."""
    from scipy.optimize import linear_sum_assignment

    counts = contingency(clusters, labels, n_clusters, n_classes)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    mapping = np.full(n_clusters, -1, int)
    mapping[rows] = cols
    return mapping


def scores(labels: np.ndarray, clusters: np.ndarray, mapping: np.ndarray) -> dict:
    """Accuracy after the cluster -> class map, adjusted Rand index and normalised mutual information
    (the last two need no map)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels, clusters = np.asarray(labels, int), np.asarray(clusters, int)
    return {"accuracy": float(np.mean(mapping[clusters] == labels)),
            "ari": float(adjusted_rand_score(labels, clusters)),
            "nmi": float(normalized_mutual_info_score(labels, clusters))}


def pca_spectrum(F: np.ndarray) -> np.ndarray:
    """Explained-variance ratio of every principal component of the rows of F, largest first (float64): the scree
    plot. The same numbers as ``sklearn.decomposition.PCA().fit(F).explained_variance_ratio_``, from the eigenvalues
    alone of the covariance matrix (``numpy.linalg.eigvalsh``; no eigenvectors, which the scree plot does not need)
    when there are more samples than features, from the singular values of the centred rows otherwise."""
    F = np.asarray(F, np.float64)
    if F.ndim != 2 or len(F) < 2:
        raise ValueError(f"the PCA spectrum needs a 2-D array of at least 2 rows, got shape {F.shape}")
    centred = F - F.mean(axis=0)
    if F.shape[0] > F.shape[1]:
        variance = np.linalg.eigvalsh(centred.T @ centred)[::-1]
    else:
        variance = np.linalg.svd(centred, compute_uv=False) ** 2
    variance = np.clip(variance[: min(F.shape)], 0.0, None)  # rounding leaves the null space at about -1e-12
    return variance / variance.sum()


def components_for_variance(F: np.ndarray | None = None, fraction: float = 0.95, ratio: np.ndarray | None = None) -> int:
    """How many leading principal components of the rows of F explain ``fraction`` of the variance, as
    ``PCA(n_components=fraction).n_components_`` counts them; pass ``ratio`` (:func:`pca_spectrum`) instead of F to
    reuse a spectrum already computed."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    ratio = pca_spectrum(F) if ratio is None else np.asarray(ratio, np.float64)
    return int(min(np.searchsorted(np.cumsum(ratio), fraction, side="right") + 1, len(ratio)))


def kmeans(E: np.ndarray, seed: int, n_clusters: int = N_CLUSTERS):
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit(np.asarray(E, np.float64))


def gaussian_mixture(E: np.ndarray, seed: int, n_clusters: int = N_CLUSTERS):
    """Full-covariance Gaussian mixture (best of 3 initialisations, each from K-Means)."""
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(n_components=n_clusters, covariance_type="full", n_init=3, reg_covar=1e-5,
                           random_state=seed).fit(np.asarray(E, np.float64))


def normalised_profile(X) -> np.ndarray:
    """The channel-summed azimuthal profile (20 radii) divided by its sum: the relative weight of each
    ring radius, what a powder pattern records."""
    p = radial_profiles(X).sum(axis=-1).astype(np.float64)
    return p / np.clip(p.sum(axis=1, keepdims=True), 1e-30, None)


# ---- autoencoders -----------------------------------------------------------------------------
def dense_autoencoder(seed: int | None = None, bottleneck: int = 2, code_activation: str = "relu"):
    """Report Table 2: 12288 -> 128 -> 64 -> 2 -> 64 -> 128 -> 12288, ReLU, tanh output (the flattened
    fingerprint in, the same out). ``code_activation="linear"`` drops the ReLU on the code units only (a unit then
    cannot switch off for every input). Returns (autoencoder, encoder)."""
    keras = keras_module()
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    L = keras.layers
    inp = keras.Input(shape=(N_INPUTS,), name="fingerprint")
    h = L.Dense(128, activation="relu", name="enc1")(inp)
    h = L.Dense(64, activation="relu", name="enc2")(h)
    code = L.Dense(bottleneck, activation=code_activation, name="bottleneck")(h)
    h = L.Dense(64, activation="relu", name="dec1")(code)
    h = L.Dense(128, activation="relu", name="dec2")(h)
    out = L.Dense(N_INPUTS, activation="tanh", name="reconstruction")(h)
    return keras.Model(inp, out, name="dense_autoencoder"), keras.Model(inp, code, name="dense_encoder")


def conv_autoencoder(seed: int | None = None, latent: int = 32):
    """The report's suggested next step: a convolutional autoencoder. Three stride-2 3x3 convolutions
    (16, 32, 64 filters; 64 -> 8 px) and a dense code of ``latent`` values; the decoder mirrors it with
    transposed convolutions and a sigmoid output (fingerprints lie in [0, 1]). Returns (autoencoder,
    encoder)."""
    keras = keras_module()
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    L = keras.layers
    inp = keras.Input(shape=SHAPE, name="fingerprint")
    h = inp
    for i, n in enumerate((16, 32, 64), 1):
        h = L.Conv2D(n, 3, strides=2, padding="same", activation="relu", name=f"enc_conv{i}")(h)
    h = L.Flatten(name="flatten")(h)
    code = L.Dense(latent, name="code")(h)  # linear code: K-Means works on it as it is
    h = L.Dense(8 * 8 * 64, activation="relu", name="dec_dense")(code)
    h = L.Reshape((8, 8, 64), name="reshape")(h)
    for i, n in enumerate((32, 16), 1):
        h = L.Conv2DTranspose(n, 3, strides=2, padding="same", activation="relu", name=f"dec_conv{i}")(h)
    out = L.Conv2DTranspose(SHAPE[-1], 3, strides=2, padding="same", activation="sigmoid", name="reconstruction")(h)
    return keras.Model(inp, out, name="conv_autoencoder"), keras.Model(inp, code, name="conv_encoder")


def train_autoencoder(autoencoder, X: np.ndarray, epochs: int = 10, batch_size: int = 32,
                      learning_rate: float = 1e-3, validation_fraction: float = 0.05, seed: int = 0,
                      progress: bool = True) -> dict:
    """Adam + mean squared error, reconstructing X, with a random ``validation_fraction`` held out
    (no labels are used anywhere); the weights of the epoch with the lowest validation loss are kept. Returns the
    history, the kept epoch and seconds per epoch."""
    from .models import training_callbacks

    keras = keras_module()
    X = np.asarray(X, np.float32)
    if len(X) < 2:
        raise ValueError(f"an autoencoder needs at least 2 samples, got {len(X)}")
    order = np.random.default_rng([seed, 7]).permutation(len(X))
    n_val = min(max(int(round(validation_fraction * len(X))), 1), len(X) - 1)
    val, tr = np.sort(order[:n_val]), np.sort(order[n_val:])
    autoencoder.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    keep, timer, *bar = training_callbacks(epochs, progress, monitor="val_loss")
    start = time.perf_counter()
    h = autoencoder.fit(X[tr], X[tr], batch_size=batch_size, epochs=epochs, validation_data=(X[val], X[val]),
                        shuffle=True, callbacks=[keep, timer, *bar], verbose=0)
    return {"history": {k: [float(v) for v in vals] for k, vals in h.history.items()},
            "seconds": time.perf_counter() - start, "seconds_per_epoch": [float(s) for s in timer.seconds],
            "best_epoch": int(keep.best_epoch) + 1,
            "n_train": int(len(tr)), "n_validation": int(len(val)), "epochs": int(epochs),
            "batch_size": int(batch_size)}


def encode(encoder, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The encoder's code for every row of X, in batches (a direct call: no retracing per input size)."""
    keras = keras_module()
    X = np.asarray(X, np.float32)
    parts = [keras.ops.convert_to_numpy(encoder(X[s: s + batch_size], training=False))
             for s in range(0, len(X), batch_size)]
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros((0, encoder.output_shape[-1]))


# ---- the whole comparison ---------------------------------------------------------------------
CLUSTERERS = ("K-Means", "Gaussian mixture")


def cluster_and_score(E: np.ndarray, labels: np.ndarray, seed: int) -> dict:
    """K-Means and a Gaussian mixture with 7 clusters on the embedding E; each cluster named by the
    assignment problem; accuracy, ARI and NMI. {clusterer: {"model", "clusters", "mapping", scores...}}"""
    out = {}
    for name, fit in zip(CLUSTERERS, (kmeans, gaussian_mixture)):
        start = time.perf_counter()
        model = fit(E, seed)
        clusters = model.predict(np.asarray(E, np.float64))
        mapping = match_clusters(clusters, labels)
        out[name] = {"model": model, "clusters": clusters, "mapping": mapping,
                     **scores(labels, clusters, mapping), "seconds": time.perf_counter() - start}
    return out


def assign_new(fitted: dict, clusterer: str, E_new: np.ndarray) -> np.ndarray:
    """Class of new samples: the cluster the fitted model puts them in (``predict``: K-Means takes the nearest
    centre, as the report does; the Gaussian mixture the most probable component), then the cluster -> class
    map of the training set."""
    if clusterer not in CLUSTERERS:
        raise ValueError(f"clusterer must be one of {CLUSTERERS}, got {clusterer!r}")
    return fitted["mapping"][fitted["model"].predict(np.asarray(E_new, np.float64))]


RESULTS_FILE = "clustering_results.json"
EMBEDDINGS_FILE = "clustering_embeddings.npz"


def results_paths():
    from . import config

    return config.data_dir() / RESULTS_FILE, config.data_dir() / EMBEDDINGS_FILE


def save_results(results: dict, arrays: dict, params: dict, inputs=()) -> tuple:
    """data/clustering_results.json (tables, scores, histories) and data/clustering_embeddings.npz
    (2-D views, cluster labels, PCA spectrum), each written atomically with the same provenance record
    (:mod:`helpers.provenance`: the data parameters and the fingerprint files they come from)."""
    from . import provenance

    json_path, npz_path = results_paths()
    meta = provenance.record(NOTEBOOK_05, params, inputs=inputs, fingerprint=True, kind="clustering")
    provenance.save_npz(npz_path, arrays, meta)
    provenance.save_json(json_path, results, meta)
    return json_path, npz_path


def load_results(expect: dict | None = None) -> tuple:
    """What notebook 05 saved, checked (:mod:`helpers.provenance`) against the data parameters ``expect``, the
    fingerprint settings and the fingerprint files it was computed from."""
    from . import provenance

    json_path, npz_path = results_paths()
    notebook = "notebooks 01, 02 and then " + NOTEBOOK_05
    results = provenance.load_json(json_path, notebook, expect)
    arrays, meta = provenance.load_npz(npz_path, notebook, expect)
    if meta["inputs"] != results["provenance"]["inputs"] or meta["params"] != results["provenance"]["params"]:
        raise provenance.StaleDataError(f"{json_path.name} and {npz_path.name} come from different runs; "
                                        f"rerun {NOTEBOOK_05}.")
    return results, arrays


def table5_markdown(table, cnn_accuracy: float = float("nan")) -> str:
    """Report Table 5 with ARI and NMI, the report's accuracy beside ours, and the CNN for reference
    (``DataFrame.to_markdown``)."""
    import pandas as pd

    from .config import percent as pct

    out = pd.DataFrame({"embedding": table["embedding"], "dims": table["dimensions"].astype(str),
                        "clustering": table["clustering"], "accuracy": table["accuracy"].map(pct),
                        "ARI": table["ari"].map(lambda v: f"{v:.4f}"), "NMI": table["nmi"].map(lambda v: f"{v:.4f}"),
                        "report (accuracy)": table["report_accuracy"].map(pct)})
    out.loc[len(out)] = ["CNN (supervised, notebook 03, held-out pristine)", "—", "—", pct(cnn_accuracy), "—", "—",
                         pct(REPORT_TABLE5["CNN"])]
    return out.to_markdown(index=False, disable_numparse=True) + "\n"


# ---- notebook 05's steps --------------------------------------------------------------------------
REPORT_ROWS = {"Linear PCA": "Linear PCA + K-Means", "Kernel PCA": "Kernel PCA + K-Means",
               "Dense autoencoder": "Autoencoder + K-Means"}  # embedding -> its K-Means row in the report's Table 5


def embed(method: str, X, reducers: dict) -> np.ndarray:
    """New fingerprints X through the fitted reduction of ``method``: ``reducers`` maps "Linear PCA" and
    "Kernel PCA" to fitted scikit-learn models (on :func:`ring_features`), "Dense autoencoder" and
    "Convolutional autoencoder" to encoders (on :func:`flatten` and the image); "Azimuthal profile" needs none."""
    if method in ("Linear PCA", "Kernel PCA"):
        return reducers[method].transform(ring_features(X))
    if method == "Dense autoencoder":
        return encode(reducers[method], flatten(X))
    if method == "Convolutional autoencoder":
        return encode(reducers[method], check_fingerprints(X))
    if method == "Azimuthal profile":
        return normalised_profile(X)
    raise ValueError(f"unknown embedding {method!r}")


def table5_rows(fitted: dict, dimensions: dict, clusterers=CLUSTERERS) -> list:
    """Rows of Table 5 from ``fitted`` ({embedding: :func:`cluster_and_score`}): accuracy, ARI, NMI and, for the
    report's three K-Means rows, the report's accuracy."""
    rows = []
    for method, per in fitted.items():
        for clusterer in clusterers:
            f = per[clusterer]
            key = REPORT_ROWS.get(method) if clusterer == "K-Means" else None
            rows.append({"embedding": method, "dimensions": int(dimensions[method]), "clustering": clusterer,
                         "accuracy": f["accuracy"], "ari": f["ari"], "nmi": f["nmi"],
                         "report_accuracy": REPORT_TABLE5.get(key, np.nan)})
    return rows


def shortfall_lines(table, fits: dict, labels, class_names: list, label: str, embeddings: dict | None = None) -> list:
    """For every row of ``table`` that has a report number: reached, or short by how many points, and where the
    clusters of ``fits`` ({embedding: fitted K-Means}) misplace structures (the largest off-diagonal count and the
    class spread over the most clusters), computed from the clusters themselves."""
    lines = []
    for r in table[table.report_accuracy.notna()].itertuples():
        f = fits[r.embedding]
        confusion = contingency(f["mapping"][f["clusters"]], labels)  # rows: named class, columns: true class
        off = confusion - np.diag(np.diag(confusion))
        named, true = np.unravel_index(off.argmax(), off.shape)
        gap = 100 * (r.report_accuracy - r.accuracy)
        verdict = (f"reaches the report's {100 * r.report_accuracy:.2f} % ({100 * r.accuracy:.2f} %)" if gap <= 0 else
                   f"**{100 * r.accuracy:.2f} %, short of the report's {100 * r.report_accuracy:.2f} % by {gap:.2f} "
                   "points**")
        why = (f"; the largest share of its errors: {off[named, true]} of {off.sum()} misplaced structures are "
               f"{class_names[true]} in the cluster named {class_names[named]}" if off.sum() else "")
        members = contingency(f["clusters"], labels)  # rows: cluster, columns: true class
        split = (members >= 0.1 * members.sum(axis=0)).sum(axis=0)  # clusters holding a tenth of a class or more
        if split.max() > 1:
            why += (f"; {class_names[split.argmax()]} is spread over {split.max()} clusters, which leaves fewer for "
                    "the other classes")
        if embeddings is not None and r.embedding == "Dense autoencoder":
            E = embeddings[r.embedding]
            dead = int(np.sum(E.std(axis=0) < 1e-6))
            why += f"; {dead} of its {E.shape[1]} bottleneck units constant (ReLU switched off for every input)"
        lines.append(f"* {r.embedding} + K-Means, {label}: {verdict}{why}.")
    return lines


def summary_lines(table5, n_train: int, n95: int) -> list:
    """Notebook 05's summary, each number from this run's Table 5 or from the report's."""
    top = table5.sort_values("accuracy", ascending=False).iloc[0]
    k = table5[table5.clustering == "K-Means"].set_index("embedding")
    best_key = max((key for key in REPORT_TABLE5 if key != "CNN"), key=REPORT_TABLE5.get)
    ours = ", ".join(f"{m} + K-Means {100 * k.loc[m, 'accuracy']:.2f} %" for m in k.index)
    return [f"* Best without labels: **{top.embedding} + {top.clustering}, {100 * top.accuracy:.2f} %** (ARI "
            f"{top.ari:.3f}, NMI {top.nmi:.3f}) on {n_train} balanced training fingerprints; the report's best was "
            f"{100 * REPORT_TABLE5[best_key]:.2f} % ({best_key}, imbalanced data).",
            f"* K-Means on every embedding: {ours} (guessing: {100 / N_CLUSTERS:.2f} %).",
            f"* PCA: {n95} components for 95 % of the variance (report: about 50)."]
