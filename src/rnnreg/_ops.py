"""The one internal door to the kernels.

Only :mod:`rnnreg._backend` imports the compiled module and its NumPy twin; only this module
asks it which of the two runs in the calling thread. Everything that computes — the public
functions (:mod:`rnnreg.functional`), the model, the optimizers, the trainer — goes through
here, so ``use_backend("numpy")`` switches every kernel at once (``tests/test_layering.py``).

Two ways through:

* :func:`kernels`: the active backend, for callers whose arguments are theirs and already in
  the kernels' form (the model, the optimizers, the trainer). The compiled kernels check sizes,
  dtypes and layout again themselves, so nothing can be read out of bounds either way.
* :func:`fast`: the public functions' fast path, written once. With the compiled backend it
  hands the caller's arguments to the kernel as they are and returns the result when ``accept``
  finds it usable (finite); it returns None when the kernel refuses an argument, when the result
  is not finite, or when the NumPy backend runs — the public function then takes its checked
  path, which converts what can be converted and explains the rest.
"""

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _backend

#: What a kernel raises for an argument it refuses (the checked path then explains or converts).
REFUSED = (TypeError, ValueError, AttributeError, IndexError)


def kernels():
    """The kernels that run now in this thread: the compiled module or its NumPy twin."""
    return _backend._choice.module


def compiled():
    """The compiled kernels when they run in this thread, else None."""
    module = _backend._choice.module
    return module if module is _backend._kernels else None


def fast(call: Callable[[Any], Any], accept: Callable[[Any, Any], bool] | None = None) -> Any:
    """``call(kernels)`` on the compiled kernels, if they run and take the arguments as they are;
    its result when ``accept(kernels, result)`` holds (or no ``accept`` is given); else None."""
    module = compiled()
    if module is None:
        return None
    try:
        result = call(module)
    except REFUSED:
        return None
    if accept is not None and not accept(module, result):
        return None
    return result


def all_finite(arr) -> bool:
    """Whether every entry of an array is finite (one compiled pass, or NumPy's)."""
    module = compiled()
    if module is not None and isinstance(arr, np.ndarray) and arr.dtype.kind == "f":
        try:
            return bool(module.all_finite(arr))
        except REFUSED:  # a layout the kernel does not read (strided, big-endian)
            pass
    return bool(np.isfinite(arr).all())


# ----------------------------------------------------------------------------- internal helpers
# For the model and the trainer: the same rules as the public functions, without re-checking
# arguments they made themselves at every step.
def dropout_mask(shape, keep_prob, rng, dtype):
    """A dropout mask (0 or 1/keep_prob) of ``shape``, drawn by the dropout rule."""
    return kernels().draw_mask(math.prod(shape), keep_prob, rng, dtype).reshape(shape)


def zoneout_mask(shape, zoneout, rng, dtype):
    """Zoneout's training weights of ``shape``: 1 (keep the previous state) where the dropout
    rule with keep_prob = ``zoneout`` keeps an element, else 0 — the same draws as
    ``dropout_mask(shape, zoneout, ...)``, whose non-zero entries they mark."""
    return kernels().draw_mask(math.prod(shape), zoneout, rng, dtype, False).reshape(shape)


def sum_of_squares(arr) -> float:
    """Σ x² of one array, summed in float64."""
    return kernels().sum_of_squares(np.ascontiguousarray(arr))
