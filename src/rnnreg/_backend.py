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
import warnings
from collections.abc import Iterator

from . import _reference


def _cpu_has_avx2_fma():
    """Asked of the CPU by the portable build itself (CPUID through the compiler's builtin)."""
    try:
        from . import _kernels as portable
    except ImportError:
        return False
    return portable.cpu_has_avx2_fma()


def _cpu_has_avx512():
    """Whether the CPU runs the AVX-512 build (AVX2, FMA and AVX-512 F, VL, BW, DQ), asked the
    same way."""
    try:
        from . import _kernels as portable
    except ImportError:
        return False
    return portable.cpu_has_avx512()


#: The compiled builds, widest first: (variant name, module, whether this CPU runs it).
#: ``RNNREG_SIMD`` names the widest one to consider ("baseline": the portable build alone).
SIMD_VARIANTS = (
    ("avx512", "_kernels_avx512", _cpu_has_avx512),
    ("avx2", "_kernels_avx2", _cpu_has_avx2_fma),
)


def _import_compiled():
    """The compiled kernels: the widest build the CPU runs (AVX-512, AVX2/FMA), at most the one
    ``RNNREG_SIMD`` names, else the portable build. Returns (module, variant name)."""
    import importlib

    cap = os.environ.get("RNNREG_SIMD", "").strip().lower()
    names = [name for name, _, _ in SIMD_VARIANTS]
    allowed = (
        SIMD_VARIANTS[names.index(cap) :] if cap in names else () if cap == "baseline" else SIMD_VARIANTS
    )
    for name, module, cpu_runs_it in allowed:
        if cpu_runs_it():
            try:
                return importlib.import_module(f".{module}", __package__), name
            except ImportError:
                pass  # not built (a non-x86 machine or an old compiler): a narrower build serves
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


def _count_from_environment(name, default, maximum):
    """A non-negative integer setting from the environment variable ``name`` (``default`` when
    it is unset or blank), at most ``maximum``; anything else is ignored with a warning naming
    the variable and what it takes (an import should not fail on a typo in the environment, as
    OpenMP ignores a bad OMP_NUM_THREADS)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= maximum:
        import warnings

        warnings.warn(
            f"{name}={text!r} is not an integer from 0 to {maximum}: ignored ({default} used)",
            RuntimeWarning,
            stacklevel=2,
        )
        return default
    return value


if _kernels is not None:
    # RNNREG_NUM_THREADS: at most this many threads per kernel call (0: no limit of rnnreg's).
    _kernels._set_thread_limit(_count_from_environment("RNNREG_NUM_THREADS", 0, 2**16))
    # RNNREG_ARRAY_CACHE_MB: freed result memory kept for reuse (see "result memory" in
    # rnnreg/_kernels_memory.pxi; 0 keeps none).
    _kernels._set_array_cache_limit(_count_from_environment("RNNREG_ARRAY_CACHE_MB", 256, 2**40) << 20)
    # A process made by fork runs the kernels on one thread: GNU OpenMP's thread pool does not
    # survive fork (a child using it would hang). Spawned processes start afresh.
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_kernels._after_fork_in_child)


def set_num_threads(n: "int | None") -> None:
    """Limit the threads one call of the compiled kernels shares its work among.

    A call uses the smallest of ``n``, OpenMP's limit (``OMP_NUM_THREADS``, threadpoolctl's
    ``"openmp"`` limit) and the threads the BLAS is allowed (``OPENBLAS_NUM_THREADS``,
    threadpoolctl's ``"blas"`` limit), so ``threadpoolctl.threadpool_limits(1)`` makes rnnreg
    single-threaded. The number of threads never changes a result: the work is split so that
    every value is computed the same way on one thread or several (the BLAS, which would not
    guarantee that, is held to one thread during a kernel call and rnnreg shares the products
    among its own threads instead). Process-wide, like OpenMP's and BLAS's own settings; the
    environment variable ``RNNREG_NUM_THREADS`` sets it at import.

    Parameters
    ----------
    n : int or None
        At most this many threads (>= 1; more than 65536 is no limit either), or None for no
        limit of rnnreg's own.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import get_num_threads, lstm_forward, set_num_threads
    >>> rng = np.random.default_rng(0)
    >>> x, h0 = rng.standard_normal((8, 5, 3)), np.zeros((8, 4))
    >>> Wx, Wh, b = rng.standard_normal((3, 16)), rng.standard_normal((4, 16)), np.zeros(16)
    >>> set_num_threads(1)
    >>> get_num_threads()
    1
    >>> one, _ = lstm_forward(x, h0, Wx, Wh, b)
    >>> set_num_threads(None)
    >>> every, _ = lstm_forward(x, h0, Wx, Wh, b)
    >>> bool(np.array_equal(one, every))
    True
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be an integer >= 1 or None, got {n!r}")
    if _kernels is None:
        return
    _kernels._set_thread_limit(0 if n is None or n > 2**16 else n)  # (an int of C's)


def get_num_threads() -> int:
    """The number of threads the next compiled kernel call of this thread will use.

    1 when the build has no OpenMP or the NumPy backend is in use.

    Returns
    -------
    int

    Examples
    --------
    >>> from rnnreg import get_num_threads
    >>> get_num_threads() >= 1
    True
    """
    if _kernels is None or _choice.name != "compiled":
        return 1
    return int(_kernels._thread_info()["threads"])
