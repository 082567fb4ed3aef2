"""What share of the machine's BLAS peak the plain epoch's LSTM kernels reach: the time ``fit``
spends inside ``lstm_forward`` and ``lstm_backward`` in one epoch of the epoch benchmark's plain
model (float32, hidden 256, batch 8, BPTT 35, 20,000 characters of the built-in text, one thread),
against one large SciPy BLAS call's rate measured in the same run (``benchmarks.common.blas_rate``),
rounds alternating.

    python -m benchmarks.diagnostics.epoch_kernels [--rounds 7] [--hidden 256] [--zoneout]
        [--model NAME] [--threads 1]

Each kernel call of the epoch is timed where the model makes it (the kernels the model reaches
through ``rnnreg._ops`` are wrapped for the epoch, then restored). The LSTM kernels' work is
counted in multiply-adds, from each call's shapes (an epoch's last batch is shorter): the
recurrent product forward (N·T·H·4H per batch) and its two gradients backward (dh(t−1) and dWh:
twice that); their rate over that work, divided by the BLAS
rate, is the fraction of the peak they reach, element-wise work included.

A second table gives every kernel's time in the epoch, its multiply-adds (the LSTM kernels' as
above, ``matmul``'s m·k·n; none for the element-wise kernels), their time at the peak and what
the kernel takes beyond it; its last rows are the time between the kernel calls (Python and
NumPy) and the whole epoch. ``--zoneout`` runs the zoneout model (``rnnreg compare``'s zoneout
setting, as ``benchmarks.regularizers`` does) in place of the plain one; ``--model`` another of
the epoch benchmark's models (``benchmarks.common.EPOCH_MODELS``); ``--threads`` more threads (the
peak is then that many times the one-thread sgemm's). A diagnostic: the speed
tables are ``python -m benchmarks.run --cases epoch`` and ``python -m benchmarks.regularizers``.
"""

import argparse
import collections
import contextlib
import time

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks import common
from benchmarks.common import blas_rate, epoch_config, epoch_corpus, epoch_model, zoneout_settings
from rnnreg import _ops, fit

LSTM_KERNELS = ("lstm_forward", "lstm_backward")
BETWEEN, EPOCH = "between the kernels (Python, NumPy)", "the epoch"  # the breakdown's last rows


def _lstm_forward_work(x, h0, c0, Wx, Wh, *rest, **kwargs):
    """The recurrent product of a forward pass: N·T·H·4H multiply-adds."""
    return x.shape[0] * x.shape[1] * Wh.size


def _lstm_backward_work(dh, dc_final, cache, *rest, **kwargs):
    """Its two gradients: dh(t−1) and dWh."""
    return 2 * cache.N * cache.T * cache.Wh.size


def _matmul_work(a, b, trans_a=False, trans_b=False, out=None):
    """m·k·n of op(a) @ op(b)."""
    return a.size * (b.shape[0] if trans_b else b.shape[1])


#: The multiply-adds of one call, for the kernels whose work is a matrix product.
WORK = {"lstm_forward": _lstm_forward_work, "lstm_backward": _lstm_backward_work, "matmul": _matmul_work}


class _TimedKernels:
    """The kernel module, each call timed into ``seconds[name]`` and counted."""

    def __init__(self, module):
        self._module = module
        self.seconds = collections.defaultdict(float)
        self.calls = collections.Counter()
        self.work = collections.Counter()  # multiply-adds, for the kernels in WORK

    def __getattr__(self, name):
        attribute = getattr(self._module, name)
        if not callable(attribute):
            return attribute

        def timed(*args, **kwargs):
            if name in WORK:
                self.work[name] += WORK[name](*args, **kwargs)
            started = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1

        return timed


@contextlib.contextmanager
def timed_kernels():
    """Within the block, the model's kernel calls go through a _TimedKernels (yielded)."""
    module = _ops.kernels()
    timed = _TimedKernels(module)
    original = _ops.kernels
    _ops.kernels = lambda: timed
    try:
        yield timed
    finally:
        _ops.kernels = original


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument(
        "--zoneout",
        action="store_true",
        help="the zoneout model of benchmarks/regularizers.py, not the plain one",
    )
    parser.add_argument("--model", choices=sorted(common.EPOCH_MODELS), default="plain")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    H, N, T = args.hidden, common.EPOCH.batch, common.EPOCH.bptt
    corpus = epoch_corpus()
    zoneout = zoneout_settings()
    settings = zoneout if args.zoneout else common.EPOCH_MODELS[args.model]
    model = epoch_model(corpus.vocab_size, settings, hidden=H)
    config = epoch_config()
    quiet = lambda line: None  # noqa: E731
    rng = np.random.default_rng(0)
    rows, per_kernel = [], collections.defaultdict(list)
    with threadpool_limits(args.threads):
        fit(model, corpus.train, None, config, log=quiet)  # warm-up
        for _ in range(args.rounds):
            with threadpool_limits(1):
                peak = blas_rate(rng) * args.threads
            with timed_kernels() as timed:
                started = time.perf_counter()
                fit(model, corpus.train, None, config, log=quiet)
                epoch = time.perf_counter() - started
            batches = timed.calls["lstm_forward"]
            lstm = sum(timed.seconds[name] for name in LSTM_KERNELS)
            work = sum(timed.work[name] for name in LSTM_KERNELS)
            rows.append((epoch, lstm, sum(timed.seconds.values()), work / lstm, peak))
            for name, seconds in timed.seconds.items():
                per_kernel[name].append((seconds, timed.calls[name], timed.work[name], peak))
            per_kernel[BETWEEN].append((epoch - sum(timed.seconds.values()), 0, 0, peak))
            per_kernel[EPOCH].append((epoch, sum(timed.calls.values()), sum(timed.work.values()), peak))
    epoch, lstm, kernels, rate, peak = (float(np.median(column)) for column in zip(*rows))
    fractions = [r[3] / r[4] for r in rows]
    print(
        f"{corpus.vocab_size} symbols, hidden {H}, batch {N}, BPTT {T}, float32, "
        f"{args.threads} thread{'s' if args.threads > 1 else ''}, "
        f"{batches} batches per epoch, {args.rounds} alternating rounds (medians)"
        + (f"; zoneout model {zoneout}" if args.zoneout else f"; model {args.model!r} {settings}")
        + "\n"
    )
    print(
        "| epoch | in all kernels | in the LSTM kernels | their multiply-adds | their rate | "
        f"BLAS peak ({args.threads} × one sgemm) | fraction of peak, median [range] |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {epoch:.3f} s | {kernels:.3f} s | {lstm:.3f} s | {work / 1e9:.2f} G | "
        f"{rate / 1e9:.1f} G/s | {peak / 1e9:.1f} G/s | {np.median(fractions):.0%} "
        f"[{min(fractions):.0%}–{max(fractions):.0%}] |"
    )
    print(
        "\nWhere the epoch's time goes: each kernel's time in it, and the time its multiply-adds "
        "take at the peak of the same round (medians over rounds)\n"
    )
    print("| where | calls | time | multiply-adds | at the peak | beyond the peak |")
    print("|---|---|---|---|---|---|")
    order = sorted(
        per_kernel,
        key=lambda name: (name == EPOCH, name == BETWEEN, -np.median([r[0] for r in per_kernel[name]])),
    )
    for name in order:
        samples = per_kernel[name]
        _, calls, macs, _ = samples[-1]  # the same in every round
        spent = np.median([r[0] for r in samples])
        at_peak = np.median([r[2] / r[3] for r in samples])
        beyond = np.median([r[0] - r[2] / r[3] for r in samples])
        label = name if name in (BETWEEN, EPOCH) else f"`{name}`"
        print(
            f"| {label} | {calls or ''} | {spent * 1e3:.1f} ms | "
            + (
                f"{macs / 1e9:.2f} G | {at_peak * 1e3:.1f} ms | {beyond * 1e3:.1f} ms |"
                if macs
                else f" |  | {beyond * 1e3:.1f} ms |"
            )
        )


if __name__ == "__main__":
    main()
