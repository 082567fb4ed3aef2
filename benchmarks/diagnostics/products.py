"""What splitting a large product into blocks costs and gains: ``rnnreg.matmul`` (the kernels'
split, see PRODUCT_PARTS in src/rnnreg/_kernels_threads.pxi) against one whole SciPy BLAS call, on one
thread and on two. A diagnostic for choosing the split, not a headline.

    python -m benchmarks.diagnostics.products [--repeats 7]

The last column, one BLAS call's multiply-adds per second, is the machine's BLAS peak that the
performance guide measures an epoch against (benchmarks/results/2026-12-04-products.md).

Shapes: the weight gradients and input product of the large LSTM of the speed table (N 64,
T 35, D = H = 512: N*T = 2240 rows, 4H = 2048 gate columns).
"""

import argparse

import numpy as np
import scipy.linalg.blas as blas
from threadpoolctl import threadpool_limits

import rnnreg
from benchmarks.common import median_seconds

SHAPES = [  # (m, k, n, trans_a): dWh = hprev^T @ dgates, the input product, dx
    (512, 2240, 2048, True),
    (2240, 512, 2048, False),
    (2240, 2048, 512, False),
]


def median_ms(fn, repeats):
    return 1e3 * median_seconds(fn, repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(
        "| dtype | m, k, n | threads | rnnreg.matmul (split) | one SciPy BLAS call | ratio | "
        "BLAS rate, multiply-adds/s |"
    )
    print("|---|---|---|---|---|---|---|")
    for dtype in (np.float64, np.float32):
        gemm = blas.dgemm if dtype == np.float64 else blas.sgemm
        for m, k, n, trans_a in SHAPES:
            a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
            b = rng.standard_normal((k, n)).astype(dtype)
            # Fortran BLAS on C arrays: C^T = B^T @ op(A)^T, no copies.
            op_a = a if trans_a else a.T
            whole = lambda gemm=gemm, b=b, op_a=op_a: gemm(1.0, b.T, op_a)
            assert np.allclose(whole().T, rnnreg.matmul(a, b, trans_a), rtol=1e-3, atol=1e-2)
            for threads in (1, 2):
                with threadpool_limits(threads):
                    split_ms = median_ms(lambda a=a, b=b, t=trans_a: rnnreg.matmul(a, b, t), args.repeats)
                    whole_ms = median_ms(whole, args.repeats)
                rate = m * k * n / (whole_ms * 1e-3)  # the machine's BLAS peak, near enough
                print(
                    f"| {np.dtype(dtype).name} | {m}, {k}, {n} | {threads} | {split_ms:.1f} ms "
                    f"| {whole_ms:.1f} ms | {whole_ms / split_ms:.2f}× | {rate / 1e9:.1f} G |"
                )


if __name__ == "__main__":
    main()
