"""Finite-difference gradient checks, for the tests and for anyone learning backprop.

Central differences: df/dx_i ≈ (f(x + h e_i) - f(x - h e_i)) / 2h, with error O(h²).
"""
import numpy as np

__all__ = ["numerical_gradient", "relative_error"]


def numerical_gradient(f, x, h=1e-6):
    """Gradient of the scalar function ``f()`` with respect to the array ``x``, which ``f``
    reads and which is perturbed in place (and restored) one element at a time."""
    grad = np.zeros_like(x, dtype=np.float64)
    flat = x.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("x must be contiguous so that it can be perturbed in place")
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        f_plus = f()
        flat[i] = old - h
        f_minus = f()
        flat[i] = old
        grad.reshape(-1)[i] = (f_plus - f_minus) / (2 * h)
    return grad


def relative_error(a, b):
    """max |a - b| / max(|a| + |b|), 0 when both are zero: insensitive to a few tiny entries."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = np.max(np.abs(a) + np.abs(b))
    return 0.0 if scale == 0 else float(np.max(np.abs(a - b)) / scale)
