"""How far the training epochs of a ``benchmarks/run.py --cases epoch`` record are from the
machine's arithmetic limit: for each row, the multiply-adds no implementation of that model can
skip, their time at the BLAS peak measured now (one float32 sgemm, ``benchmarks/products.py``'s
shape, best of several calls), and so the largest "PyTorch / rnnreg" ratio any implementation
could reach against that row's PyTorch time.

    python benchmarks/epoch_bound.py benchmarks/results/2026-12-05-epoch-small-packed.json

The work counted per token of an epoch (one-hot inputs: their input product is a row pick, no
arithmetic): the recurrent product forward (H·4H), its two gradients backward (dh(t−1) and dWh,
H·4H each), and the output layer's three products (logits, dWhy, dtop: H·V each). Element-wise
work, the optimizer and everything else count as free, so the bound is generous. On two threads
the peak is taken as twice one thread's (perfect scaling, again generous). A diagnostic for the
performance guide: it says which targets no code could meet on this machine.
"""
import argparse
import json
import pathlib
import re

import numpy as np
from threadpoolctl import threadpool_limits

from epoch_kernels import blas_rate

SHAPE = re.compile(r"(\d+) chars, V=(\d+), H=(\d+), batch (\d+), BPTT (\d+)")


def epoch_work(shape):
    """Multiply-adds of one training epoch of the record's shape string."""
    chars, V, H, batch, _ = (int(x) for x in SHAPE.match(shape).groups())
    tokens = (chars - 1) // batch * batch   # the stream cut into `batch` rows, as both sides do
    return tokens * 3 * (H * 4 * H + H * V)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", help="a JSON record of benchmarks/run.py --cases epoch")
    parser.add_argument("--repeats", type=int, default=9, help="sgemm calls; the best is the peak")
    args = parser.parse_args()
    rows = [r for r in json.loads(pathlib.Path(args.record).read_text())["results"]
            if r["case"] == "training epoch" and r.get("torch_s")]
    with threadpool_limits(1):
        peak = blas_rate(np.random.default_rng(0), args.repeats)
    print(f"{args.record}; BLAS peak, one float32 sgemm on one thread: {peak / 1e9:.1f} G "
          "multiply-adds/s (two threads: twice that)\n")
    print("| model | threads | multiply-adds | at the peak | rnnreg | share of the peak | PyTorch | "
          "PyTorch / rnnreg | PyTorch / the bound |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        work = epoch_work(r["shape"])
        bound = work / (peak * r["threads"])
        print(f"| {r['size']} | {r['threads']} | {work / 1e9:.2f} G | {bound:.3f} s | "
              f"{r['public_s']:.3f} s | {bound / r['public_s']:.0%} | {r['torch_s']:.3f} s | "
              f"{r['torch_s'] / r['public_s']:.2f}× | {r['torch_s'] / bound:.2f}× |")


if __name__ == "__main__":
    main()
