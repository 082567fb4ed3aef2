"""Benchmarks: every compiled kernel against its NumPy twin, in the same run, interleaved.

    python -m rnnreg bench            # or: rnnreg bench, python benchmarks/run.py
    rnnreg bench --quick              # a smoke run (tiny sizes, few repeats)

Prints a markdown table of median times and the headline ratio (NumPy time / compiled time), and
writes JSON with the machine, BLAS and every figure. Speed is reported, never asserted.
"""
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

from . import _backend
from . import functional as F

# name -> (N, D, H, T); tiny is the notebook's setting (one-hot vocab of 50)
LSTM_SIZES = {"tiny": (1, 50, 32, 15), "small": (16, 64, 128, 35),
              "medium": (32, 256, 256, 35), "large": (64, 512, 512, 35)}
LAYER_NORM_SIZES = [(1, 32), (32, 256), (64, 512), (4096, 1024)]
DROPOUT_SIZES = [10**3, 10**5, 10**7]


def _median_time(fn, repeats, min_time=0.02):
    """Median seconds of one call of fn; each sample loops enough calls to last min_time."""
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    loops = max(1, int(min_time / once))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter() - start) / loops)
    return statistics.median(samples)


def _compare(make_call, repeats):
    """Time the same call under both backends, alternating between them, and take medians."""
    times = {"compiled": [], "numpy": []}
    for _ in range(3):
        for backend in ("compiled", "numpy"):
            with _backend.use_backend(backend):
                times[backend].append(_median_time(make_call(), repeats))
    return {k: statistics.median(v) for k, v in times.items()}


def _lstm_case(N, D, H, T, dtype, rng):
    x = rng.standard_normal((N, T, D)).astype(dtype)
    h0 = np.zeros((N, H), dtype)
    Wx = (rng.standard_normal((D, 4 * H)) / np.sqrt(D)).astype(dtype)
    Wh = (rng.standard_normal((H, 4 * H)) / np.sqrt(H)).astype(dtype)
    b = np.zeros(4 * H, dtype)
    dh = rng.standard_normal((N, T, H)).astype(dtype)

    def make_call():
        def call():
            _, cache = F.lstm_forward(x, h0, Wx, Wh, b)
            F.lstm_backward(dh, cache)
        return call
    return make_call


def machine_info():
    info = {"python": sys.version.split()[0], "numpy": np.__version__,
            "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE")}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = [{k: p.get(k) for k in ("internal_api", "version", "architecture",
                                                "num_threads", "filepath")}
                        for p in threadpool_info() if p.get("user_api") == "blas"]
    except ImportError:
        info["blas"] = "threadpoolctl not installed"
    return info


def run(quick=False, sizes=None, dtypes=("float64", "float32"), repeats=None, out=None):
    """Run the LSTM forward+backward cases; returns the list of result rows."""
    repeats = repeats or (3 if quick else 7)
    sizes = sizes or (["tiny"] if quick else list(LSTM_SIZES))
    rng = np.random.default_rng(0)
    rows = []
    for size in sizes:
        N, D, H, T = LSTM_SIZES[size]
        if quick:
            T = min(T, 5)
        for dtype in dtypes:
            t = _compare(_lstm_case(N, D, H, T, np.dtype(dtype), rng), repeats)
            rows.append(dict(case="lstm_forward+backward", size=size, shape=f"N={N} D={D} H={H} T={T}",
                             dtype=dtype, compiled_s=t["compiled"], numpy_s=t["numpy"],
                             speedup=t["numpy"] / t["compiled"]))
    print("| case | size | shape | dtype | compiled | NumPy | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['size']} | {r['shape']} | {r['dtype']} | "
              f"{r['compiled_s'] * 1e3:.3f} ms | {r['numpy_s'] * 1e3:.3f} ms | {r['speedup']:.1f}× |")
    if out:
        with open(out, "w") as f:
            json.dump({"machine": machine_info(), "results": rows}, f, indent=2)
        print(f"wrote {out}")
    return rows
