"""What machine a timing was measured on: CPU model, cores and vector instruction sets (machines differ by
several times in CNN training speed, so every timing this project reports names them)."""
from __future__ import annotations

import os
import platform
import re
from pathlib import Path

VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16",
                "amx_tile", "neon", "asimd", "sve")


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    match = re.search(r"^model name\s*:\s*(.+)$", _cpuinfo(), re.MULTILINE)
    return match.group(1).strip() if match else (platform.processor() or platform.machine())


def vector_flags() -> list:
    """The vector instruction sets the CPU reports, of those that matter for numerical code."""
    match = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", _cpuinfo(), re.MULTILINE)
    have = set(match.group(1).split()) if match else set()
    return [f for f in VECTOR_FLAGS if f in have]


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def describe() -> dict:
    """{"cpu": model, "cores": usable cores, "vector_flags": [...], "machine": architecture}."""
    return {"cpu": cpu_model(), "cores": cores(), "vector_flags": vector_flags(), "machine": platform.machine()}


def describe_text() -> str:
    d = describe()
    return f"{d['cpu']}, {d['cores']} cores, {d['machine']} ({' '.join(d['vector_flags']) or 'no vector flags found'})"
