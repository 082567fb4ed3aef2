"""Per-call time of the kernels at the notebook's size: each compiled entry point called
directly, and the public function that wraps it (median of many calls, microseconds).

    python -m benchmarks.diagnostics.call_overhead [--repeats 2000]

Run it from outside the checkout's root (or after `pip install -e .`) so that the compiled
package is the one imported. What it shows is the fixed cost of a call — argument checks,
allocations, wrappers — at sizes where the arithmetic is small; a diagnostic, not a headline.
"""

import argparse

import numpy as np

import rnnreg
from benchmarks.common import median_seconds
from rnnreg import _backend


def median_us(fn, repeats):
    for _ in range(min(200, repeats)):  # warm up
        fn()
    return 1e6 * median_seconds(fn, repeats)


def cases(dtype):
    K = _backend._kernels
    rng = np.random.default_rng(0)
    N, T, D, H = 1, 15, 50, 32  # the notebook: one sequence of 15 tokens, vocab 50, H 32
    f = lambda *s: rng.standard_normal(s).astype(dtype)
    x, h0, c0 = f(N, T, D), f(N, H), f(N, H)
    Wx, Wh, b = f(D, 4 * H) * 0.3, f(H, 4 * H) * 0.3, f(4 * H)
    dh, dc = f(N, T, H), f(N, H)
    raw_cache = K.lstm_forward(x, h0, c0, Wx, Wh, b, None, None, 1e-5)
    _, cache = rnnreg.lstm_forward(x, h0, Wx, Wh, b, c0)
    lx, gamma, beta = f(1, 32), f(32), f(32)
    ln_raw = K.layer_norm_forward(lx, gamma, beta, 1e-5)
    _, ln_cache = rnnreg.layer_norm_forward(lx, gamma, beta)
    dx = f(1000)
    p, g, m, v = f(D + H, 4 * H), f(D + H, 4 * H), f(D + H, 4 * H), np.abs(f(D + H, 4 * H))
    gen = np.random.default_rng(1)
    return [
        (
            "lstm_forward",
            lambda: K.lstm_forward(x, h0, c0, Wx, Wh, b, None, None, 1e-5),
            lambda: rnnreg.lstm_forward(x, h0, Wx, Wh, b, c0),
        ),
        (
            "lstm_backward",
            lambda: K.lstm_backward(dh, dc, raw_cache),
            lambda: rnnreg.lstm_backward(dh, cache, dc),
        ),
        (
            "layer_norm_forward (1, 32)",
            lambda: K.layer_norm_forward(lx, gamma, beta, 1e-5),
            lambda: rnnreg.layer_norm_forward(lx, gamma, beta),
        ),
        (
            "layer_norm_backward (1, 32)",
            lambda: K.layer_norm_backward(lx, ln_raw[1], ln_raw[2], gamma),
            lambda: rnnreg.layer_norm_backward(lx, ln_cache),
        ),
        (
            "dropout_forward 1e3",
            lambda: K.dropout_forward(dx, 0.8, gen),
            lambda: rnnreg.dropout_forward(dx, 0.8, True, gen),
        ),
        ("adam_update (82, 128)", lambda: K.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 1.0, 0.0), None),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    print(f"rnnreg {rnnreg.__version__}, compiled variant {_backend.COMPILED_VARIANT}")
    print("| call | dtype | kernel µs | public µs | public − kernel µs |")
    print("|---|---|---|---|---|")
    for dtype in (np.float64, np.float32):
        for name, raw, public in cases(dtype):
            k = median_us(raw, args.repeats)
            p = median_us(public, args.repeats) if public else None
            shown = f"{p:.2f} | {p - k:+.2f}" if p is not None else "— | —"
            print(f"| {name} | {np.dtype(dtype).name} | {k:.2f} | {shown} |")


if __name__ == "__main__":
    main()
