"""Finite-difference gradient checks, for the tests and for anyone learning backprop.

Central differences: df/dx_i ≈ (f(x + h e_i) - f(x - h e_i)) / 2h, with error O(h²). Every
backward pass of rnnreg is checked with these in ``tests/`` (in float64, on both backends).
"""

import numpy as np

__all__ = ["numerical_gradient", "relative_error"]


def numerical_gradient(f, x, h=1e-6):
    """Gradient of the scalar function ``f()`` with respect to the array ``x``, by central
    differences.

    Parameters
    ----------
    f : callable
        Takes no arguments and returns a float; it reads ``x``, which is perturbed in place (and
        restored) one element at a time.
    x : ndarray, contiguous
        The variable (float64 for a check to 1e-7).
    h : float
        The step.

    Returns
    -------
    ndarray of x's shape, float64

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import numerical_gradient
    >>> x = np.array([1.0, -2.0, 3.0])
    >>> np.round(numerical_gradient(lambda: float(np.sum(x ** 2)), x), 6)   # 2x
    array([ 2., -4.,  6.])
    """
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
    """``max |a - b| / max(|a| + |b|)``, 0 when both are zero: one number for how far an
    analytic gradient is from a numerical one, insensitive to a few tiny entries.

    Parameters
    ----------
    a, b : array_like of one shape

    Returns
    -------
    float

    Examples
    --------
    >>> from rnnreg import relative_error
    >>> relative_error([1.0, 2.0], [1.0, 2.000002]) < 1e-6
    True
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = np.max(np.abs(a) + np.abs(b))
    return 0.0 if scale == 0 else float(np.max(np.abs(a - b)) / scale)
