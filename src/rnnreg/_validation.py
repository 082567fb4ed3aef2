"""Input checks shared by the public functions: each error names the argument, what was
expected and what came, so that nothing malformed ever reaches a compiled kernel."""

import math
import numbers
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _ops

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_array(value, name, ndim=None, dtype=None, finite=True) -> NDArray[Any]:
    """Return ``value`` as a C-contiguous float32/float64 array, or raise naming ``name``.

    ndim: required number of dimensions (an int), or a minimum as ``(k, None)``.
    dtype: when given, the dtype every companion array must share (that of the main input).
    """
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be an array of floats, got {type(value).__name__}") from exc
    if arr.dtype.kind == "f" and not arr.dtype.isnative:  # e.g. '>f8' read from a file
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {arr.dtype} but the input has dtype {np.dtype(dtype)}; "
            "pass arrays of one floating dtype"
        )
    if isinstance(ndim, int) and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if isinstance(ndim, tuple) and arr.ndim < ndim[0]:
        raise ValueError(f"{name} must have at least {ndim[0]} dimension(s), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr)
    if not arr.flags.aligned:  # the kernels read aligned memory only
        arr = arr.copy()
    if finite and not all_finite(arr):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def all_finite(arr):
    """Whether every entry of a float32/float64 array is finite: one vectorized pass in the
    compiled module when it runs (a NumPy test allocates a temporary as large as the input)."""
    return _ops.all_finite(arr)


class NonFiniteResult(ValueError):
    """Finite inputs overflowed into inf or NaN (training catches it as divergence). ``advice``
    is what a user can change (by default: the learning rate, or clipping)."""

    def __init__(self, message, advice="lower the learning rate or enable clip_norm"):
        super().__init__(message)
        self.advice = advice


def finite_result(arr, what, inputs) -> NDArray[Any]:
    """Return arr, or raise NonFiniteResult (a ValueError) when finite inputs overflowed into inf
    or NaN — a result is never silently non-finite."""
    if not all_finite(arr):
        raise NonFiniteResult(
            f"{what} overflowed: its result holds inf or NaN although every input "
            f"was finite; {inputs} are too large in magnitude"
        )
    return arr


def check_shape(arr, name, expected, meaning=""):
    """Raise unless arr.shape == expected; ``meaning`` spells the axes, e.g. '(batch, hidden)'."""
    if arr.shape != tuple(expected):
        what = f" {meaning}" if meaning else ""
        raise ValueError(f"{name} must have shape {tuple(expected)}{what}, got {arr.shape}")


def probability(value, name, low_inclusive=False) -> float:
    """A real number in (0, 1] (or [0, 1] with low_inclusive)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in (0, 1], got {value!r}")
    value = float(value)
    ok = (0.0 <= value <= 1.0) if low_inclusive else (0.0 < value <= 1.0)
    if not ok:
        interval = "[0, 1]" if low_inclusive else "(0, 1]"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return value


def rate(value, name) -> float:
    """A probability of dropping or zoning out, in [0, 1) (0: off)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in [0, 1), got {value!r}")
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1) (0 turns it off), got {value!r}")
    return value


def positive_int(value, name, minimum=1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def non_negative_float(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a non-negative real number, got {value!r}")
    value = float(value)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def is_positive_finite(value):
    """Whether value is a real number (not a bool), finite and > 0 — a usable learning rate."""
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.floating))
        and math.isfinite(value)
        and value > 0
    )


def finite_float(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def positive_float(value, name) -> float:
    """A finite real number > 0 (0 is refused: a learning rate, a temperature, a clip norm)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite number > 0, got {value!r}")
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def as_generator(rng, name="rng") -> np.random.Generator:
    """A np.random.Generator from a Generator, an int seed or None (fresh OS entropy).
    The global ``np.random`` state is never used."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        if rng is not None and rng < 0:
            raise ValueError(f"{name} must be a non-negative seed, got {rng!r}")
        return np.random.default_rng(None if rng is None else int(rng))
    raise TypeError(f"{name} must be a numpy.random.Generator, an int seed or None, got {type(rng).__name__}")


def token_array(value, name, vocab_size, ndim=None) -> NDArray[Any]:
    """Integer token ids, every one in [0, vocab_size): checked here, before any kernel."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer token ids, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    arr = arr.astype(np.intp, copy=False)
    # One reduction checks both ends: read as unsigned, a negative id is larger than any vocabulary.
    if arr.view(np.uintp).max() >= vocab_size:
        low, high = arr.min(), arr.max()
        bad = low if low < 0 else high
        raise IndexError(f"{name} holds token id {bad}, outside the vocabulary [0, {vocab_size})")
    return arr
