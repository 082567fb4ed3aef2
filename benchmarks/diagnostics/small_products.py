"""Where the kernels' plain-loop matrix products stop paying:
`python -m benchmarks.diagnostics.small_products`.

rnnreg.matmul runs a product as register-blocked loops when it has at most SMALL_BATCH rows or
SMALL_PRODUCT multiply-adds (see src/rnnreg/_kernels_loops.pxi), else calls BLAS. This prints, for the
products of an LSTM step and sequence around that limit, its time next to NumPy's BLAS product
of the same matrices (1 thread, median of interleaved samples).
"""

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.common import compare
from rnnreg import _backend

# (m, k, n, transpose A, transpose B): tiny-LSTM products first, then growing past the limit
SHAPES = [
    (1, 32, 128, 0, 0),
    (1, 128, 32, 0, 1),
    (15, 50, 128, 0, 0),
    (15, 128, 50, 0, 1),
    (50, 15, 128, 1, 0),
    (32, 64, 64, 0, 0),
    (32, 64, 128, 0, 0),
    (64, 64, 128, 0, 0),
    (64, 128, 128, 0, 0),
    (16, 128, 512, 0, 0),
]


def main():
    kernels = _backend._kernels
    rng = np.random.default_rng(0)
    print("| dtype | m, k, n | op | multiply-adds | rnnreg.matmul | NumPy (BLAS) |")
    print("|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for dtype in (np.float64, np.float32):
            for m, k, n, ta, tb in SHAPES:
                a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
                b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
                op_a, op_b = (a.T if ta else a), (b.T if tb else b)
                t = compare(
                    {
                        "ours": lambda a=a, b=b, ta=ta, tb=tb: kernels.matmul(a, b, bool(ta), bool(tb)),
                        "numpy": lambda op_a=op_a, op_b=op_b: op_a @ op_b,
                    },
                    7,
                )
                op = ("A^T" if ta else "A") + " @ " + ("B^T" if tb else "B")
                print(
                    f"| {np.dtype(dtype).name} | {m}, {k}, {n} | {op} | {m * n * k} | "
                    f"{t['ours'] * 1e6:.2f} µs | {t['numpy'] * 1e6:.2f} µs |"
                )


if __name__ == "__main__":
    main()
