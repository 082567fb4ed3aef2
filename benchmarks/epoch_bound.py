"""How far the training epochs of a ``benchmarks/run.py --cases epoch`` record (or the zoneout
epoch of a ``benchmarks/regularizers.py --json`` record) are from the machine's arithmetic limit:
for each row, the multiply-adds no implementation of that model can skip, their time at the BLAS
peak measured now (one float32 sgemm, ``benchmarks/diagnostics/products.py``'s shape, best of several calls),
and so the largest "PyTorch / rnnreg" ratio any implementation could reach against that row's
PyTorch time. ``--target R``: the share of the peak an rnnreg epoch must reach to run R times
PyTorch's.

    python -m benchmarks.epoch_bound benchmarks/results/2026-12-05-epoch-vector-pack-2.json
    python -m benchmarks.epoch_bound benchmarks/results/regularizers/epoch-1thread.json --target 4

The work counted per token of an epoch (one-hot inputs: their input product is a row pick, no
arithmetic): the recurrent product forward (H·4H), its two gradients backward (dh(t−1) and dWh,
H·4H each), and the output layer's three products (logits, dWhy, dtop: H·V each). Element-wise
work, the optimizer and everything else count as free, so the bound is generous (zoneout adds
element-wise work only: its epoch has the plain model's multiply-adds). On two threads
the peak is taken as twice one thread's (perfect scaling, again generous). A diagnostic for the
performance guide: it says which targets no code could meet on this machine.
"""

import argparse
import json
import pathlib
import re

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.common import blas_rate, epoch_multiply_adds

SHAPE = re.compile(r"(\d+) chars, V=(\d+), H=(\d+),(?: float\d+,)? batch (\d+), BPTT (\d+)")
TORCH_ZONEOUT = "PyTorch: zoneout, TorchScript loop"  # benchmarks/regularizers.py's row


def epoch_work(shape):
    """Multiply-adds of one training epoch of the record's shape string."""
    chars, V, H, batch, _ = (int(x) for x in SHAPE.match(shape).groups())
    tokens = (chars - 1) // batch * batch  # the stream cut into `batch` rows, as both sides do
    return epoch_multiply_adds("lstm", tokens, V, H)


def epoch_rows(record):
    """(model, threads, shape, rnnreg seconds, PyTorch seconds) of each epoch of a record that
    has a PyTorch time: the rows of run.py's epoch case, or regularizers.py's zoneout epoch."""
    if "results" in record:  # benchmarks/run.py
        return [
            (r["size"], r["threads"], r["shape"], r["public_s"], r["torch_s"])
            for r in record["results"]
            if r["case"] == "training epoch" and r.get("torch_s")
        ]
    rows = {r["variant"]: r for r in record["rows"]}  # benchmarks/regularizers.py
    if TORCH_ZONEOUT not in rows:
        return []
    torch_row = rows[TORCH_ZONEOUT]
    ours = rows[torch_row["baseline"]]
    return [(ours["variant"], record["threads"], record["head"], ours["median"], torch_row["median"])]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "record", help="a JSON record of benchmarks/run.py --cases epoch or of benchmarks/regularizers.py"
    )
    parser.add_argument("--repeats", type=int, default=9, help="sgemm calls; the best is the peak")
    parser.add_argument(
        "--target", type=float, metavar="R", help="add the share of the peak an epoch R times PyTorch's needs"
    )
    args = parser.parse_args()
    rows = epoch_rows(json.loads(pathlib.Path(args.record).read_text()))
    with threadpool_limits(1):
        peak = blas_rate(np.random.default_rng(0), args.repeats)
    print(
        f"{args.record}; BLAS peak, one float32 sgemm on one thread: {peak / 1e9:.1f} G "
        "multiply-adds/s (two threads: twice that)\n"
    )
    extra = f" share of the peak at {args.target:g}× |" if args.target else ""
    print(
        "| model | threads | multiply-adds | at the peak | rnnreg | share of the peak | PyTorch | "
        "PyTorch / rnnreg | PyTorch / the bound |" + extra
    )
    print("|---|---|---|---|---|---|---|---|---|" + ("---|" if args.target else ""))
    for model, threads, shape, ours, torch_s in rows:
        work = epoch_work(shape)
        bound = work / (peak * threads)
        # rnnreg at R times PyTorch takes torch_s / R seconds: bound / that of the peak
        needed = f" {bound * args.target / torch_s:.0%} |" if args.target else ""
        print(
            f"| {model} | {threads} | {work / 1e9:.2f} G | {bound:.3f} s | {ours:.3f} s | "
            f"{bound / ours:.0%} | {torch_s:.3f} s | {torch_s / ours:.2f}× | "
            f"{torch_s / bound:.2f}× |" + needed
        )


if __name__ == "__main__":
    main()
