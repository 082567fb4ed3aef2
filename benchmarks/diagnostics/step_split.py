"""Two threads on one LSTM time loop, split two ways: by rows of the batch, as rnnreg's kernels
do (each thread runs its rows' whole time loop, no synchronization), or by hidden units (each
thread makes its units' columns of all four gates for every row and waits at a barrier at every
step, since the next step needs all of h). Issue 20 asked which wins at small batches.

    python -m benchmarks.diagnostics.step_split [--shapes 8x256 64x1024 ...]

Compiles ``benchmarks/diagnostics/step_split.c`` (needs a C compiler with OpenMP; x86-64 with AVX2 and FMA,
like the kernels' AVX2 build) against the kernels' own ``_fastmath.h`` — the packed step product
and the gate functions — and runs the forward step (float32, T = 35) at each shape; times are
the best of 200 sequences. A diagnostic for the kernels' design, recorded in
``benchmarks/results/2026-12-04-step-split.md``.
"""

import argparse
import pathlib
import subprocess
import sysconfig
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE / "step_split.c"
INCLUDE = HERE.parents[1] / "src" / "rnnreg"
SHAPES = [(1, 256), (2, 256), (4, 256), (8, 256), (16, 256), (32, 256), (8, 512), (32, 512), (64, 1024)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shapes", nargs="+", metavar="BATCHxHIDDEN", default=[f"{n}x{h}" for n, h in SHAPES]
    )
    args = parser.parse_args()
    shapes = [tuple(int(part) for part in shape.split("x")) for shape in args.shapes]
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    with tempfile.TemporaryDirectory() as tmp:
        program = pathlib.Path(tmp) / "step_split"
        subprocess.run(
            [
                compiler,
                "-O3",
                "-mavx2",
                "-mfma",
                "-fopenmp",
                "-ffp-contract=off",
                "-fno-math-errno",
                "-fno-trapping-math",
                f"-I{INCLUDE}",
                str(SOURCE),
                "-o",
                str(program),
            ],
            check=True,
        )
        print(
            "| batch | hidden | 1 thread | 2 threads, by rows | speed-up | "
            "2 threads, by units + barrier | speed-up |"
        )
        print("|---|---|---|---|---|---|---|")
        for batch, hidden in shapes:
            line = subprocess.run(
                [str(program), str(batch), str(hidden)], check=True, capture_output=True, text=True
            ).stdout.split()
            one, rows, units = map(float, line[2:])
            print(
                f"| {batch} | {hidden} | {one:.0f} µs | {rows:.0f} µs | {one / rows:.2f}× | "
                f"{units:.0f} µs | {one / units:.2f}× |"
            )


if __name__ == "__main__":
    main()
