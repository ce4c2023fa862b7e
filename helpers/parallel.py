"""Chunks of work spread over worker processes, results in order, with a progress bar."""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterator, Sequence


def default_n_jobs() -> int:
    """Cores available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _context():
    """Workers start from a clean forkserver process where the platform has one: forking a Jupyter
    kernel directly would copy a process that runs several threads (its messaging), which Python
    warns is unsafe. The server imports the helpers once, so workers still start fast."""
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["helpers.fingerprint", "helpers.structures", "helpers.datasets"])
        return context
    return multiprocessing.get_context("spawn")


def map_chunks(func: Callable, items: Sequence, n_jobs: int | None = None, chunk_size: int = 16,
               progress: bool = True, desc: str | None = None, unit: str = "item") -> Iterator:
    """Yield ``(start, chunk, func(start, chunk))`` for consecutive chunks of ``items``, in order.

    ``func`` must be importable (a module-level function or a functools.partial of one). With
    ``n_jobs > 1`` and more than one chunk it runs in worker processes; otherwise in this process.
    """
    from tqdm.auto import tqdm

    items = list(items)
    n_jobs = default_n_jobs() if n_jobs is None else max(1, int(n_jobs))
    starts = list(range(0, len(items), chunk_size))
    chunks = [items[s: s + chunk_size] for s in starts]
    with tqdm(total=len(items), desc=desc, disable=not progress, unit=unit) as bar:
        if n_jobs == 1 or len(chunks) < 2:
            results = (func(s, c) for s, c in zip(starts, chunks))
            for start, chunk, result in zip(starts, chunks, results):
                bar.update(len(chunk))
                yield start, chunk, result
            return
        context = _context()
        with ProcessPoolExecutor(max_workers=min(n_jobs, len(chunks)), mp_context=context) as pool:
            for start, chunk, result in zip(starts, chunks, pool.map(func, starts, chunks)):
                bar.update(len(chunk))
                yield start, chunk, result
