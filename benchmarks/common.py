"""What the benchmarks share: the epoch model they time, declared once, and the timing helpers.

The epoch model is the README's: a character-level LSTM on 20,000 characters of the built-in text
(the standard library's docstrings), float32, hidden 256, batch 8, BPTT 35, Adam at the
trainer's defaults, one epoch of :func:`rnnreg.fit` without validation.
"""

import dataclasses
import functools
import os
import pathlib
import platform
import statistics
import sys
import time

import numpy as np

# SciPy's BLAS (the one rnnreg's kernels and blas_rate call) loaded now: threadpoolctl limits only
# the libraries loaded when a limit is entered, so one loaded inside `threadpool_limits(1)` would
# run its first product on every core — a "one-thread peak" measured on two.
import scipy.linalg.blas  # noqa: F401


@dataclasses.dataclass(frozen=True)
class EpochSpec:
    """The shape of the benchmarks' training epoch."""

    hidden: int = 256
    batch: int = 8
    bptt: int = 35
    train_chars: int = 20000
    eval_chars: int = 1000
    dtype: str = "float32"
    seed: int = 0


EPOCH = EpochSpec()

#: The epoch benchmark's models: name -> RegularizedLSTM settings.
EPOCH_MODELS = {
    "plain": {},
    "output dropout": {"dropout_keep_prob": 0.6},
    "LN-LSTM": {"use_layer_norm": True},
    "h(t-1) dropout": {"recurrent_keep_prob": 0.75, "variational": True},
}


def zoneout_settings():
    """`rnnreg compare`'s zoneout setting (declared in rnnreg.runs.SETTINGS)."""
    from rnnreg.runs import SETTINGS

    return dict(SETTINGS["zoneout"])


@functools.lru_cache(maxsize=4)
def epoch_corpus(train_chars=EPOCH.train_chars, eval_chars=EPOCH.eval_chars):
    """The built-in text of the epoch (a CharCorpus), loaded once per size."""
    from rnnreg.data import load_stdlib_docstrings

    return load_stdlib_docstrings(train_chars=train_chars, eval_chars=eval_chars)


def epoch_model(vocab_size, settings=None, hidden=EPOCH.hidden):
    """A RegularizedLSTM of the epoch: the spec's dtype and seed, with ``settings``."""
    from rnnreg import RegularizedLSTM

    return RegularizedLSTM(vocab_size, hidden, seed=EPOCH.seed, dtype=EPOCH.dtype, **(settings or {}))


def epoch_config(batch=EPOCH.batch, bptt=EPOCH.bptt, **train):
    """The TrainConfig of one epoch (no progress bar), with training settings ``train``."""
    from rnnreg import TrainConfig

    return TrainConfig(epochs=1, batch_size=batch, bptt=bptt, progress=False, **train)


def epoch_run(model, stream, config):
    """A function that trains ``model`` one epoch on ``stream``: what the benchmarks time."""
    from rnnreg import fit

    return lambda: fit(model, stream, None, config, log=lambda line: None)


def epoch_multiply_adds(cell, tokens, V, H):
    """Multiply-adds of one character-model epoch of ``tokens`` tokens that no implementation can
    skip: per token, the recurrent product forward and its two gradients backward (H·G each,
    G = 3H for the GRU, 4H for the LSTM) and the output layer's three (H·V each); one-hot inputs
    are a row pick. The bound of benchmarks/epoch_bound.py, gru_epoch.py and before_after.py."""
    G = (3 if cell == "gru" else 4) * H
    return tokens * 3 * (H * G + H * V)


# ----------------------------------------------------------------------------- timing
def seconds(fn):
    """The wall time of one call."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median_seconds(fn, repeats):
    """The median wall time of ``repeats`` calls."""
    return float(np.median([seconds(fn) for _ in range(repeats)]))


def _sample(fn, min_time):
    """Seconds per call of fn, from a loop long enough to last min_time."""
    once = max(seconds(fn), 1e-7)
    loops = max(1, int(min_time / once))
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - start) / loops


def compare(fns, repeats=5, min_time=0.02):
    """Median seconds per call of each function in ``fns`` (a dict), sampling them in turn so
    that a noisy moment of the machine falls on all of them alike."""
    for fn in fns.values():
        fn()  # warm up
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(_sample(fn, min_time))
    return {name: statistics.median(s) for name, s in samples.items()}


# The shape of the sgemm whose rate is "the BLAS peak" (large enough for the peak, the shape of
# an epoch's weight-gradient products).
PEAK_SHAPE = (2240, 512, 2048)


def blas_rate(rng, repeats=5):
    """Multiply-adds per second of one float32 SciPy sgemm call of PEAK_SHAPE (best of repeats:
    the peak, not a typical call)."""
    import scipy.linalg.blas as blas

    m, k, n = PEAK_SHAPE
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    best = min(seconds(lambda: blas.sgemm(1.0, b.T, a.T)) for _ in range(repeats))  # C^T = B^T A^T
    return m * k * n / best


# ----------------------------------------------------------------------------- environment
#: The checkout's root: the folder that holds the ``benchmarks`` package.
ROOT = pathlib.Path(__file__).resolve().parent.parent


def build_environment(src):
    """The environment of a process that imports rnnreg from the build in ``src`` (its ``src``
    folder, built in place) and the benchmarks from this checkout: the two are PYTHONPATH."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(ROOT)]))


def torch_or_none():
    try:
        import torch

        return torch
    except ImportError:
        return None


def machine_info():
    """What a record needs to say about the machine it was made on."""
    from rnnreg import _backend

    info = {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "rnnreg_build": _backend.COMPILED_VARIANT,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    try:
        import scipy

        info["scipy"] = scipy.__version__
    except ImportError:
        pass
    torch = torch_or_none()
    info["torch"] = torch.__version__ if torch else None
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: p.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "filepath")}
            for p in threadpool_info()
            if p.get("user_api") == "blas"
        ]
    except ImportError:
        info["blas"] = "threadpoolctl not installed: BLAS library and threads unknown"
    return info
