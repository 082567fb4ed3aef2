"""The LSTM kernels of two builds, each timed in many fresh processes: a process's timings can
settle at one of two speeds for its whole life (on the shared Intel Xeon, commit 3efbb9d's
forward pass of hidden 256, batch 8 with recurrent dropout: 1.58 ms in one process of four, 1.94-1.97
ms in the others, ``benchmarks/results/step-blocks/kernels-1-thread-256.md``; its packed weights
straddled cache lines or not, by the heap's state), so a comparison made in one process per build
measures which speed each process drew.

    python -m benchmarks.diagnostics.kernel_processes --before ../before/src [--processes 8]
        [--shapes 8x256 32x512 64x1024] [--threads 1] [--models plain LN-LSTM]

For every shape and model, processes of the two builds alternate (``PYTHONPATH``: ``--before``'s
``src``, then this checkout's); each process times ``lstm_forward`` and ``lstm_backward`` on
random float32 data with one-hot inputs (81 symbols, T = 35, as in the epoch benchmark): the
median of about 3 G multiply-adds' worth of calls, after three warm-up calls. The table gives,
per build, the smallest, median and largest of the processes' medians, and the median's share
of the one-thread sgemm peak (``benchmarks.common.blas_rate``, times the threads), counting the
recurrent products only (forward N·T·H·4H, backward twice that). A diagnostic, not a headline.
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import sys

import numpy as np

from benchmarks.common import ROOT, build_environment

MODELS = {"plain": {}, "LN-LSTM": {"layer_norm": True}, "h(t-1) dropout": {"mask": True}}
SYMBOLS, STEPS = 81, 35


def measure(threads, hidden, batch, model):
    """Median seconds of lstm_forward and lstm_backward in this process."""
    import time

    import scipy.linalg.blas  # noqa: F401  (loaded before the limit, as benchmarks.common does)
    from threadpoolctl import threadpool_limits

    from rnnreg import _ops
    from rnnreg._conventions import LSTM_LAYER_NORM_PARAMS

    kernels = _ops.kernels()
    H, N, G = hidden, batch, 4 * hidden
    rng = np.random.default_rng(0)
    f = lambda *shape, scale=1.0: (scale * rng.standard_normal(shape)).astype(np.float32)  # noqa: E731
    x = rng.integers(0, SYMBOLS, (N, STEPS))
    h0, Wx, Wh, b, dh = f(N, H), f(SYMBOLS, G, scale=0.1), f(H, G, scale=0.05), f(G), f(N, STEPS, H)
    layer_norm = mask = None
    if MODELS[model].get("layer_norm"):
        layer_norm = {name: f(H if name.endswith("_c") else G) for name in LSTM_LAYER_NORM_PARAMS}
    if MODELS[model].get("mask"):
        mask = (rng.random((N, H)) < 0.75).astype(np.float32) / np.float32(0.75)

    def step():
        started = time.perf_counter()
        cache = kernels.lstm_forward(x, h0, None, Wx, Wh, b, layer_norm, mask, 1e-5)
        middle = time.perf_counter()
        kernels.lstm_backward(dh, None, cache)
        return middle - started, time.perf_counter() - middle

    calls = max(10, int(3e9 / (N * STEPS * H * G)))
    with threadpool_limits(threads):
        for _ in range(3):
            step()
        forward, backward = zip(*(step() for _ in range(calls)))
    return statistics.median(forward), statistics.median(backward)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="the src folder of the earlier build (built in place)")
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--shapes", nargs="+", default=["8x256", "32x512", "64x1024"], metavar="BxH")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=["plain"])
    parser.add_argument("--measure", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        threads, hidden, batch, model = args.measure
        print(json.dumps(measure(int(threads), int(hidden), int(batch), model)))
        return 0
    if not args.before:
        parser.error("--before is required")
    from threadpoolctl import threadpool_limits

    from benchmarks.common import blas_rate

    with threadpool_limits(1):
        peak = blas_rate(np.random.default_rng(0)) * args.threads
    builds = {"before": pathlib.Path(args.before).resolve(), "after": ROOT / "src"}
    command = "python -m benchmarks.diagnostics.kernel_processes " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    print(f"Made by: {command}\n")
    print(
        f"before: {builds['before']}, after: {builds['after']}; {args.threads} thread(s); "
        f"peak {peak / 1e9:.1f} G multiply-adds/s; {args.processes} processes per build\n"
    )
    print(
        "| batch × hidden | model | pass | build | fastest process | median | slowest | "
        "median's share of the peak |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for shape in args.shapes:
        batch, hidden = (int(part) for part in shape.split("x"))
        for model in args.models:
            samples = {label: [] for label in builds}
            for _ in range(args.processes):
                for label, src in builds.items():
                    out = subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "benchmarks.diagnostics.kernel_processes",
                            "--measure",
                            str(args.threads),
                            str(hidden),
                            str(batch),
                            model,
                        ],
                        cwd=ROOT,
                        env=build_environment(src),
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    samples[label].append(json.loads(out.stdout))
            work = batch * STEPS * hidden * 4 * hidden
            for index, (name, madds) in enumerate((("forward", work), ("backward", 2 * work))):
                for label in builds:
                    times = sorted(sample[index] for sample in samples[label])
                    median = statistics.median(times)
                    print(
                        f"| {batch} × {hidden} | {model} | {name} | {label} | "
                        f"{times[0] * 1e3:.2f} ms | {median * 1e3:.2f} ms | {times[-1] * 1e3:.2f} ms | "
                        f"{madds / peak / median:.0%} |"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
