"""Training epochs of two builds of rnnreg and of PyTorch, alternating in one run, each with its
share of the machine's BLAS peak: the epoch-bound table before and after a change.

    git worktree add ../before <commit> && (cd ../before && python setup.py build_ext --inplace)
    python -m benchmarks.before_after --before ../before/src [--rounds 6] [--processes 3]
        [--threads 1 2] [--cases ...] [--json out.json]

Each build runs in processes of its own (``PYTHONPATH`` put in front: ``--before``'s ``src``,
and this checkout's ``src`` for "after"), and so does PyTorch (``nn.LSTM`` and ``nn.GRU``
where they exist, the TorchScript loops users write where they do not, as
``benchmarks/kernels.py``, ``benchmarks/gru_epoch.py`` and ``benchmarks/sequence_epoch.py``
time them). Every round times one epoch of every case in one process of each in turn, so a
noisy moment of the shared machine falls on all of them alike; round r uses each one's process
r mod ``--processes``, because a process's timings can settle at one of two speeds for its
whole life (``benchmarks/diagnostics/kernel_processes.py``), and one process per build would
measure which speed each drew. A figure is the median over rounds (after one warm-up epoch of
each case in each process).

The cases: the epoch benchmark's (``benchmarks/kernels.py``: the LSTM models at hidden 256 /
batch 8, the bigger models, the small batches), the GRU epochs of ``benchmarks/gru_epoch.py``
and the sequence-classification epochs of ``benchmarks/sequence_epoch.py``. The share of the
peak is ``benchmarks/epoch_bound.py``'s: the multiply-adds no implementation can skip, at one
float32 sgemm's best rate on one thread (twice that on two), over the epoch's time. For the GRU,
G = 3H instead of 4H; for sequence classification, the valid steps' recurrent products and the
input products of their 12 features (forward and weight gradient), padding not counted.
Nothing here asserts a time.
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import sys

import numpy as np

from benchmarks.common import ROOT, build_environment

LSTM_MODELS = ("plain", "output dropout", "LN-LSTM", "h(t-1) dropout")
BIG = ((512, 32), (1024, 64))
BIG_MODELS = ("plain", "output dropout")
SMALL = ((256, 1), (256, 2), (256, 4))
GRU_MODELS = ("GRU", "LN-GRU", "GRU h(t-1) dropout", "GRU zoneout")
SEQUENCE_MODELS = ("plain", "h(t-1) dropout", "zoneout")


def cases():
    """name -> (kind, model, hidden, batch): every row of the table, in its order."""
    rows = {name: ("lstm", name, 256, 8) for name in LSTM_MODELS}
    rows.update({f"{m}, H{h} B{b}": ("lstm", m, h, b) for h, b in BIG for m in BIG_MODELS})
    rows.update({f"plain, H{h} B{b}": ("lstm", "plain", h, b) for h, b in SMALL})
    rows.update({name: ("gru", name, 256, 8) for name in GRU_MODELS})
    rows.update({f"classify, {m}": ("sequence", m, 128, 32) for m in SEQUENCE_MODELS})
    return rows


# ----------------------------------------------------------------------------- in a worker
def _epoch(case, torch):
    """A function that runs one training epoch of ``case``: rnnreg's, or PyTorch's."""
    from benchmarks import gru_epoch, kernels, sequence_epoch
    from benchmarks.common import epoch_corpus

    kind, model, hidden, batch = cases()[case]
    if kind == "sequence":
        X, y = sequence_epoch.data()
        return (sequence_epoch.torch_epoch if torch else sequence_epoch.rnnreg_epoch)(model, X, y)
    corpus = epoch_corpus()
    stream, V = corpus.train, corpus.vocab_size
    if kind == "gru":
        if torch:
            return gru_epoch.torch_epoch(model, stream, V, hidden)
        return gru_epoch.rnnreg_epoch(model, stream, V, hidden)
    if torch:
        return kernels._torch_epoch(model, stream, V, hidden, batch=batch)
    return kernels._rnnreg_epoch(model, stream, V, hidden, batch)


def serve(torch):
    """Answer lines ``{"case", "threads"}`` on stdin with ``{"seconds"}`` of one epoch each
    (the first epoch of a case is a warm-up, not timed)."""
    from threadpoolctl import threadpool_limits

    from benchmarks.common import seconds

    if torch:
        import torch as torch_module

        where = f"torch {torch_module.__version__}"
    else:
        import rnnreg

        where = rnnreg.__file__
    print(json.dumps({"ready": where}), flush=True)
    epochs = {}
    for line in sys.stdin:
        request = json.loads(line)
        key = (request["case"], request["threads"])
        with threadpool_limits(request["threads"]):
            if torch:
                torch_module.set_num_threads(request["threads"])
            if key not in epochs:
                epochs[key] = _epoch(request["case"], torch)
                epochs[key]()
            took = seconds(epochs[key])
        print(json.dumps({"seconds": took}), flush=True)


# ----------------------------------------------------------------------------- the driver
class Worker:
    def __init__(self, label, src, torch=False):
        env = build_environment(src)
        command = [sys.executable, "-m", "benchmarks.before_after", "--serve"] + (
            ["--torch"] if torch else []
        )
        self.label = label
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.where = json.loads(self.process.stdout.readline())["ready"]

    def time(self, case, threads):
        self.process.stdin.write(json.dumps({"case": case, "threads": threads}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.label} worker ended (case {case!r}, {threads} threads)")
        return json.loads(line)["seconds"]

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def work(case):
    """Multiply-adds of one epoch of ``case`` no implementation can skip."""
    kind, _, H, batch = cases()[case]
    if kind == "sequence":
        from benchmarks import sequence_epoch

        X, _ = sequence_epoch.data()
        steps = sum(len(x) for x in X)
        G = 4 * H
        return steps * (3 * H * G + 2 * sequence_epoch.FEATURES * G)
    from benchmarks.common import epoch_corpus, epoch_multiply_adds

    corpus = epoch_corpus()
    tokens = (corpus.train.size - 1) // batch * batch
    return epoch_multiply_adds(kind, tokens, corpus.vocab_size, H)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="the src folder of the earlier build (built in place)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--processes", type=int, default=3, help="worker processes per build")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cases", nargs="+", choices=list(cases()), help="a subset of the rows")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--torch", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.torch)
        return 0
    if not args.before:
        parser.error("--before is required")
    from threadpoolctl import threadpool_limits

    from benchmarks.common import blas_rate, machine_info

    kinds = [("before", pathlib.Path(args.before).resolve(), False), ("after", ROOT / "src", False)]
    if not args.no_torch:
        kinds.append(("PyTorch", ROOT / "src", True))
    pools = [[Worker(label, src, torch) for _ in range(args.processes)] for label, src, torch in kinds]
    workers = [pool[0] for pool in pools]  # one of each, for the labels and where they import from
    names = args.cases or list(cases())
    samples = {(w.label, c, n): [] for w in workers for c in names for n in args.threads}
    peaks = []
    try:
        for round_ in range(args.rounds):
            with threadpool_limits(1):
                peaks.append(blas_rate(np.random.default_rng(0), 5))
            for threads in args.threads:
                for case in names:
                    for pool in pools:
                        worker = pool[round_ % len(pool)]
                        samples[(worker.label, case, threads)].append(worker.time(case, threads))
    finally:
        for pool in pools:
            for worker in pool:
                worker.close()
    peak = max(peaks)
    command = "python -m benchmarks.before_after " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"Made by: {command}\n")
    print(f"{', '.join(f'{w.label}: {w.where}' for w in workers)}\n")
    print(
        f"BLAS peak, one float32 sgemm on one thread: {peak / 1e9:.1f} G multiply-adds/s (best of "
        f"{len(peaks)} rounds; two threads: twice that); {args.rounds} alternating rounds over "
        f"{args.processes} processes per build, medians\n"
    )
    torch_columns = " PyTorch | PyTorch / after |" if not args.no_torch else ""
    print(
        "| model | threads | multiply-adds | at the peak | before | share | after | share | "
        f"after / before |{torch_columns}"
    )
    print("|---|---|---|---|---|---|---|---|---|" + ("---|---|" if not args.no_torch else ""))
    rows = []
    for threads in args.threads:
        for case in names:
            median = {w.label: statistics.median(samples[(w.label, case, threads)]) for w in workers}
            madds = work(case)
            bound = madds / (peak * threads)
            row = dict(case=case, threads=threads, work=madds, bound_s=bound, **median)
            rows.append(row)
            torch_cells = (
                f" {median['PyTorch']:.3f} s | {median['PyTorch'] / median['after']:.2f}× |"
                if not args.no_torch
                else ""
            )
            print(
                f"| {case} | {threads} | {madds / 1e9:.2f} G | {bound:.3f} s | {median['before']:.3f} s | "
                f"{bound / median['before']:.0%} | {median['after']:.3f} s | {bound / median['after']:.0%} | "
                f"{median['before'] / median['after']:.2f}× |{torch_cells}"
            )
    if args.json:
        record = dict(
            command=command,
            machine=machine_info(),
            peak=peak,
            rounds=args.rounds,
            processes=args.processes,
            rows=rows,
            samples={"|".join(map(str, k)): v for k, v in samples.items()},
        )
        pathlib.Path(args.json).write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
