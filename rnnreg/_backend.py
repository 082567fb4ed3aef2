"""Which implementation of the kernels runs: the compiled extension or the NumPy reference.

The compiled module ``rnnreg._kernels`` is the default. ``RNNREG_BACKEND=numpy`` in the
environment, or :func:`set_backend` at run time, selects the pure-NumPy twins explicitly. If the
extension cannot be imported, importing rnnreg warns once and falls back to NumPy — never silently.

The choice is per thread, like scikit-learn's configuration: :func:`use_backend` and
:func:`set_backend` change the calling thread's backend only, so one thread's ``with
use_backend("numpy")`` cannot switch another thread's kernels mid-computation. A thread that has
made no choice uses the process default: ``RNNREG_BACKEND``, or the compiled kernels.
"""
import contextlib
import os
import threading
from typing import Iterator
import warnings

from . import _reference

def _cpu_has_avx2_fma():
    """Asked of the CPU by the portable build itself (CPUID through the compiler's builtin)."""
    try:
        from . import _kernels as portable
    except ImportError:
        return False
    return portable.cpu_has_avx2_fma()


def _import_compiled():
    """The compiled kernels: the AVX2/FMA build when the CPU has both (and RNNREG_SIMD is not
    "baseline"), else the portable build. Returns (module, variant name)."""
    if os.environ.get("RNNREG_SIMD", "").strip().lower() != "baseline" and _cpu_has_avx2_fma():
        try:
            from . import _kernels_avx2
            return _kernels_avx2, "avx2"
        except ImportError:
            pass  # not built (a non-x86 machine or an old compiler): the portable build serves
    from . import _kernels as portable
    return portable, "baseline"


try:
    _kernels, COMPILED_VARIANT = _import_compiled()
    _IMPORT_ERROR = None
except ImportError as exc:  # an uncompiled source checkout, or a broken build
    _kernels, COMPILED_VARIANT = None, None
    _IMPORT_ERROR = exc

BACKENDS = ("compiled", "numpy")


def _module_for(name):
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "numpy":
        return _reference
    if _kernels is None:
        raise ImportError(
            "the compiled backend is not available: rnnreg._kernels failed to import "
            f"({_IMPORT_ERROR}). Install rnnreg with `pip install .` to compile it."
        ) from _IMPORT_ERROR
    return _kernels


def _initial_backend():
    requested = os.environ.get("RNNREG_BACKEND", "").strip().lower()
    if requested:
        _module_for(requested)  # raises with a clear message for a bad or unavailable name
        return requested
    if _kernels is None:
        warnings.warn(
            f"rnnreg's compiled kernels could not be imported ({_IMPORT_ERROR}); using the "
            "pure-NumPy reference backend, which is much slower. Install with `pip install .` "
            "to compile them, or set RNNREG_BACKEND=numpy to choose NumPy on purpose.",
            RuntimeWarning,
            stacklevel=3,
        )
        return "numpy"
    return "compiled"


class _ThreadChoice(threading.local):
    """The backend of the current thread; each new thread starts from the process default."""

    def __init__(self):
        self.name = _DEFAULT_NAME
        self.module = _DEFAULT_MODULE


_DEFAULT_NAME = _initial_backend()
_DEFAULT_MODULE = _module_for(_DEFAULT_NAME)
_choice = _ThreadChoice()


def get_backend() -> str:
    """Name of the backend the calling thread uses: ``"compiled"`` or ``"numpy"``.

    Returns
    -------
    str

    Examples
    --------
    >>> from rnnreg import get_backend
    >>> get_backend() in ("compiled", "numpy")
    True
    """
    return _choice.name


def set_backend(name: str) -> None:
    """Select the kernels' implementation for the calling thread.

    Other threads keep theirs (set ``RNNREG_BACKEND`` to choose for every thread).

    Parameters
    ----------
    name : {"compiled", "numpy"}
        The compiled kernels (default) or their NumPy twins.

    Examples
    --------
    >>> from rnnreg import get_backend, set_backend
    >>> previous = get_backend()
    >>> set_backend("numpy")
    >>> get_backend()
    'numpy'
    >>> set_backend(previous)
    """
    module = _module_for(name)
    _choice.name, _choice.module = name, module


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run a block with another backend in this thread, then restore the previous one.

    Parameters
    ----------
    name : {"compiled", "numpy"}

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import get_backend, layer_norm_forward, use_backend
    >>> with use_backend("numpy"):
    ...     out, _ = layer_norm_forward(np.arange(4.0), np.ones(4), np.zeros(4))
    ...     inside = get_backend()
    >>> inside
    'numpy'
    """
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def kernels():
    """The module whose functions run now in this thread: ``rnnreg._kernels`` or
    ``rnnreg._reference``."""
    return _choice.module
