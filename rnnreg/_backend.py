"""Which implementation of the kernels runs: the compiled extension or the NumPy reference.

The compiled module ``rnnreg._kernels`` is the default. ``RNNREG_BACKEND=numpy`` in the
environment, or :func:`set_backend` at run time, selects the pure-NumPy twins explicitly. If the
extension cannot be imported, importing rnnreg warns once and falls back to NumPy — never silently.
"""
import contextlib
import os
import warnings

from . import _reference

def _cpu_has_avx2_fma():
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        return False
    return bool(features.get("AVX2") and features.get("FMA3"))


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


_active_name = _initial_backend()
_active_module = _module_for(_active_name)


def get_backend():
    """Name of the backend in use: ``"compiled"`` or ``"numpy"``."""
    return _active_name


def set_backend(name):
    """Select the kernels' implementation: ``"compiled"`` (default) or ``"numpy"``."""
    global _active_name, _active_module
    _active_module = _module_for(name)
    _active_name = name


@contextlib.contextmanager
def use_backend(name):
    """Run a block with another backend, then restore the previous one."""
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def kernels():
    """The module whose functions run now: ``rnnreg._kernels`` or ``rnnreg._reference``."""
    return _active_module
