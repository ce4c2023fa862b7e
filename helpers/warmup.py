"""Imported by the server process that forks the fingerprint workers (:func:`helpers.parallel.map_chunks`): the
X-ray form factors of every element and the detector's orbit tables are computed here, once, so that no worker
opens xraydb's database or rebuilds a table (0.3 s for each worker otherwise, every time a pool starts)."""
from .fingerprint import warm_caches

warm_caches()
