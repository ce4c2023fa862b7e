"""CPU training speed of the Table-1 network under several sound configurations (``make bench-train``).

Each configuration runs in a fresh Python process (backends and thread settings are fixed at import),
builds the network of ``helpers.models``, and trains it with Adam on random fingerprints at batch 32:
a warm-up epoch (graph tracing / compilation), then a timed epoch of ``--steps`` batches. Reported per
configuration: seconds per step, the projected seconds per epoch at the default size (9,975 training
images = 95 % of 7 x 1,500) and the achieved FLOP/s against the network's cost (3 x the forward pass per
training image). The reference is TensorFlow with its defaults, measured in the same run; the ratio is
reference time / configuration time (> 1: faster). Configurations whose backend is not installed are
listed as skipped.

    python benchmarks/bench_training.py [--steps 60] [--repeats 2] [--only tf-default torch]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

from helpers import machine
from helpers.models import TRAINING_FLOP_FACTOR  # importing helpers.models loads no Keras backend

EPOCH_IMAGES = 9975  # 95 % of 10,500: the training part of the default-size split

CONFIGS = {
    "tf-default": {"backend": "tensorflow", "env": {}, "note": "TensorFlow, oneDNN on, default threads"},
    "tf-xla": {"backend": "tensorflow", "env": {}, "jit": True, "note": "TensorFlow with XLA (jit_compile=True)"},
    "tf-no-onednn": {"backend": "tensorflow", "env": {"TF_ENABLE_ONEDNN_OPTS": "0"}, "note": "TensorFlow, oneDNN off"},
    "tf-threads-2-1": {"backend": "tensorflow", "env": {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "1"},
                       "note": "TensorFlow, 2 intra-op threads, 1 inter-op thread"},
    "tf-bf16": {"backend": "tensorflow", "env": {}, "policy": "mixed_bfloat16",
                "note": "TensorFlow, mixed precision bfloat16 (numerics change: not sound without an accuracy check)"},
    "tf-bf16-threads-2-1": {"backend": "tensorflow", "policy": "mixed_bfloat16",
                            "env": {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "1"},
                            "note": "TensorFlow, mixed precision bfloat16, 2 intra-op threads, 1 inter-op thread"},
    "torch": {"backend": "torch", "env": {}, "note": "Keras on PyTorch (CPU build)"},
    "jax": {"backend": "jax", "env": {}, "note": "Keras on JAX (XLA)"},
}
_MODULE = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}

_CHILD = r"""
import json, os, sys, time
import numpy as np
cfg = json.loads(sys.argv[1])
import keras
from helpers import models
keras.utils.set_random_seed(0)
if cfg.get("policy"):
    keras.mixed_precision.set_global_policy(cfg["policy"])
rng = np.random.default_rng(0)
steps, bs = cfg["steps"], 32
X = (rng.random((steps * bs, 64, 64, 3), dtype=np.float32) ** 8)  # sparse bright pixels, like fingerprints
y = np.eye(7, dtype=np.float32)[rng.integers(0, 7, steps * bs)]
model = models.build_model(seed=0)
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"],
              jit_compile=cfg.get("jit", "auto"))
times = []
class T(keras.callbacks.Callback):
    def on_epoch_begin(self, e, logs=None): self.t = time.perf_counter()
    def on_epoch_end(self, e, logs=None): times.append(time.perf_counter() - self.t)
model.fit(X, y, batch_size=bs, epochs=1 + cfg["repeats"], shuffle=True, verbose=0, callbacks=[T()])
print("RESULT " + json.dumps({"epoch_seconds": times[1:], "warmup_seconds": times[0],
                              "forward_flop": models.forward_flop(model), "keras": keras.__version__,
                              "backend": keras.backend.backend(), "device": models.describe_device()}))
"""


def run_config(name: str, steps: int, repeats: int) -> dict:
    cfg = CONFIGS[name]
    if importlib.util.find_spec(_MODULE[cfg["backend"]]) is None:
        return {"config": name, "skipped": f"{_MODULE[cfg['backend']]} is not installed", "note": cfg["note"]}
    env = {**os.environ, **cfg["env"], "KERAS_BACKEND": cfg["backend"], "TF_CPP_MIN_LOG_LEVEL": "2"}
    payload = json.dumps({"steps": steps, "repeats": repeats, "jit": cfg.get("jit", "auto"), "policy": cfg.get("policy")})
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, payload], env=env, capture_output=True, text=True,
                              timeout=60 * 60)
    except subprocess.TimeoutExpired:
        return {"config": name, "failed": "did not finish within an hour", "note": cfg["note"]}
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"config": name, "failed": (proc.stderr or proc.stdout)[-800:], "note": cfg["note"]}
    out = json.loads(lines[-1][7:])
    step = min(out["epoch_seconds"]) / steps
    return {"config": name, "note": cfg["note"], "backend": out["backend"], "device": out["device"],
            "seconds_per_step": step, "epoch_seconds_default_size": step * EPOCH_IMAGES / 32,
            "gflops": TRAINING_FLOP_FACTOR * out["forward_flop"] * 32 / step / 1e9, "warmup_seconds": out["warmup_seconds"],
            "wall_seconds": time.perf_counter() - start}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="batches in each timed epoch (default 60)")
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs per configuration; the fastest counts")
    parser.add_argument("--only", nargs="*", choices=list(CONFIGS), help="configurations to run (default: all)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    names = args.only or list(CONFIGS)
    if "tf-default" not in names:
        names = ["tf-default", *names]  # the reference is always measured in the same run
    print(f"CPU: {machine.describe_text()}")
    print(f"{args.steps} batches of 32 per timed epoch, best of {args.repeats}")
    results = []
    for name in names:
        r = run_config(name, args.steps, args.repeats)
        results.append(r)
        if "seconds_per_step" in r:
            print(f"  {name:15s} {r['seconds_per_step'] * 1e3:7.1f} ms/step  {r['epoch_seconds_default_size']:6.1f} s/epoch"
                  f"  {r['gflops']:6.1f} GFLOP/s   ({r['note']})", flush=True)
        else:
            print(f"  {name:15s} {'skipped: ' + r['skipped'] if 'skipped' in r else 'FAILED: ' + r['failed']}",
                  flush=True)
    ref = next(r for r in results if r["config"] == "tf-default")
    if "seconds_per_step" not in ref:
        print("the reference (tf-default) did not run; no ratios")
        return 1
    print("\nratio to the reference (TensorFlow defaults), > 1 is faster:")
    timed = [r for r in results if "seconds_per_step" in r]
    for r in sorted(timed, key=lambda r: r["seconds_per_step"]):
        r["ratio_to_tf_default"] = ref["seconds_per_step"] / r["seconds_per_step"]
        print(f"  {r['config']:15s} {r['ratio_to_tf_default']:5.2f}x   {r['epoch_seconds_default_size']:6.1f} s/epoch")
    best = min(timed, key=lambda r: r["seconds_per_step"])
    print(f"\nfastest: {best['config']} ({best['note']}): {best['epoch_seconds_default_size']:.1f} s per epoch, "
          f"{best['gflops']:.1f} GFLOP/s")
    if args.json:
        tmp = f"{args.json}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            json.dump({"machine": machine.describe(), "results": results}, fh, indent=1)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
