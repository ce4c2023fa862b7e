"""Chunks of work spread over worker processes, results in order, with a progress bar.

Workers run functions of this package only, so they never need the caller's main module. Python's worker
processes would otherwise re-run it (``forkserver`` and ``spawn`` import ``__main__`` from its file): a script
read from standard input (``python - <<EOF``) has no file to re-run, and a script file without an
``if __name__ == "__main__":`` guard would start the same work again in every worker. While workers start, the
main module's file and spec are hidden from them, so ``map_chunks`` works the same from a notebook, a script
file, standard input and ``python -c``.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
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
    warns is unsafe. The server imports the helpers (and fills their caches: :mod:`helpers.warmup`) once, so
    workers still start fast."""
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["helpers.fingerprint", "helpers.structures", "helpers.datasets",
                                        "helpers.warmup"])
        return context
    return multiprocessing.get_context("spawn")


@contextmanager
def without_main_module():
    """Hide ``__main__.__file__`` and ``__main__.__spec__`` (restored afterwards): worker processes then start
    without re-running the caller's script (module docstring)."""
    main = sys.modules.get("__main__")
    saved = {name: getattr(main, name) for name in ("__file__", "__spec__") if hasattr(main, name)}
    try:
        if "__file__" in saved:
            del main.__file__
        if "__spec__" in saved:
            main.__spec__ = None
        yield
    finally:
        for name, value in saved.items():
            setattr(main, name, value)


def map_chunks(func: Callable, items: Sequence, n_jobs: int | None = None, chunk_size: int = 16,
               progress: bool = True, desc: str | None = None, unit: str = "item") -> Iterator:
    """Yield ``(start, chunk, func(start, chunk))`` for consecutive chunks of ``items``, in order.

    ``func`` must be importable from a module other than ``__main__`` (a module-level function of this package
    or a functools.partial of one). With
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
        pool = ProcessPoolExecutor(max_workers=min(n_jobs, len(chunks)), mp_context=_context())
        try:
            with without_main_module():
                results = pool.map(func, starts, chunks)  # submitting starts the workers
            for start, chunk, result in zip(starts, chunks, results):
                bar.update(len(chunk))
                yield start, chunk, result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
