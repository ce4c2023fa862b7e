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
    """{"cpu": model, "cores": usable cores, "vector_flags": [...], "machine": architecture, "isa": the instruction
    sets this process was held to (:func:`isa_profile`)}."""
    return {"cpu": cpu_model(), "cores": cores(), "vector_flags": vector_flags(), "machine": platform.machine(),
            "isa": isa_profile()}


def describe_text() -> str:
    d = describe()
    held = "" if d["isa"] == "native" else f"; held to {ISA_TEXT.get(d['isa'], d['isa'])}"
    return (f"{d['cpu']}, {d['cores']} cores, {d['machine']} ({' '.join(d['vector_flags']) or 'no vector flags found'}"
            f"{held})")


# ---- instruction sets a run may use ------------------------------------------------------------
#: Environment that holds numpy, OpenBLAS, numba and oneDNN (TensorFlow's CPU kernels) to a smaller instruction set
#: than the CPU has, so that one machine also tells what another would take. "avx2": AVX2 + FMA, as on most laptops;
#: "avx512_bf16": AVX-512 with bfloat16 dot products but no AMX tiles (an AMD Zen 4, an Intel Cooper Lake).
ISA_PROFILES = {
    "native": {},
    "avx512_bf16": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
             "OPENBLAS_CORETYPE": "Haswell", "NUMBA_CPU_NAME": "haswell",
             "NUMBA_CPU_FEATURES": "+avx,+avx2,+fma,+sse4.2,+popcnt,+f16c,+bmi,+bmi2"},
}

ISA_TEXT = {"native": "every instruction set it has", "avx512_bf16": "AVX-512 with bfloat16, no AMX",
            "avx2": "AVX2 + FMA"}
# oneDNN's ISA names (``ONEDNN_MAX_CPU_ISA``) that include native bfloat16 arithmetic (AVX512_BF16 dot products or
# AMX tiles); below these oneDNN emulates bfloat16 or refuses it.
_ONEDNN_BF16 = {"AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512", "AVX512_CORE_AMX", "AVX10_1_512_AMX",
                "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX_FP16", "ALL", "DEFAULT", ""}


def isa_profile() -> str:
    """Which of ``ISA_PROFILES`` this process runs under (from its environment): "native" when none is set."""
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if limit == "AVX2" or os.environ.get("NUMBA_CPU_NAME") == "haswell":
        return "avx2"
    if limit == "AVX512_CORE_BF16":
        return "avx512_bf16"
    return "native" if not limit else f"ONEDNN_MAX_CPU_ISA={limit}"


def rerun_under(isa: str, script: str, argv: list) -> int | None:
    """Run ``script`` with ``argv`` again in a new process held to ``ISA_PROFILES[isa]`` and return its exit code,
    when this process does not already run under ``isa``; None when it does ("native" included), so the caller
    measures here. The limits are environment variables, read once when numba, numpy and oneDNN start, so a
    process cannot lower its own."""
    if isa == "native" or isa_profile() == isa:
        return None
    import subprocess
    import sys

    return subprocess.run([sys.executable, str(script), *map(str, argv)],
                          env={**os.environ, **ISA_PROFILES[isa]}).returncode


def native_bfloat16() -> bool:
    """True where the CPU multiplies bfloat16 natively (``avx512_bf16`` or ``amx_bf16``) and oneDNN is allowed to use
    it (``ONEDNN_MAX_CPU_ISA`` unset or at least AVX512_CORE_BF16)."""
    flags = vector_flags()
    if "avx512_bf16" not in flags and "amx_bf16" not in flags:
        return False
    return os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in _ONEDNN_BF16
