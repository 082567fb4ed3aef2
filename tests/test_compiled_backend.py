"""CI must exercise the compiled extension, not a silent NumPy fallback."""

import importlib.machinery
import os
import subprocess
import sys

import numpy as np
import pytest

import rnnreg
from rnnreg import _backend

pytestmark = pytest.mark.kernels


def test_compiled_extension_is_in_use():
    assert _backend._kernels is not None, f"rnnreg._kernels failed to import: {_backend._IMPORT_ERROR}"
    assert rnnreg.get_backend() == "compiled"
    suffix = os.path.splitext(_backend._kernels.__file__)[1]
    assert suffix in importlib.machinery.EXTENSION_SUFFIXES[-1] or suffix in (".so", ".pyd"), (
        _backend._kernels.__file__
    )


def test_debug_build_is_the_one_asked_for():
    # CI installs a second, debug build and sets RNNREG_EXPECT_DEBUG_BUILD=1 when testing it.
    expected = os.environ.get("RNNREG_EXPECT_DEBUG_BUILD", "0") == "1"
    assert _backend._kernels.DEBUG_BUILD == expected


def test_simd_variant_matches_the_cpu(tmp_path):
    """The widest build the CPU runs, capped by RNNREG_SIMD ("avx2", "baseline")."""
    if _backend._kernels.DEBUG_BUILD:
        assert _backend.COMPILED_VARIANT == "baseline"  # the debug build has no SIMD variants
        return
    cap = os.environ.get("RNNREG_SIMD", "").lower()
    runs = {"avx512": _backend._cpu_has_avx512(), "avx2": _backend._cpu_has_avx2_fma()}
    allowed = {"baseline": [], "avx2": ["avx2"]}.get(cap, ["avx512", "avx2"])
    expected = next((name for name in allowed if runs[name]), "baseline")
    assert _backend.COMPILED_VARIANT == expected
    code = "from rnnreg import _backend; print(_backend.COMPILED_VARIANT)"
    for cap, widest in (("baseline", "baseline"), ("avx2", "avx2" if runs["avx2"] else "baseline")):
        out = _python(code, dict(os.environ, RNNREG_SIMD=cap), tmp_path)
        assert out.stdout.strip() == widest


@pytest.mark.skipif(not _backend._cpu_has_avx512(), reason="needs an AVX-512 CPU")
@pytest.mark.skipif(
    _backend._kernels is not None and _backend._kernels.DEBUG_BUILD,
    reason="the debug build has no SIMD builds",
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_avx512_build_gives_the_avx2_builds_bits(dtype):
    """Every element is made by the same operations at either vector width (the plain-loop
    products keep the AVX2 width): forward and backward of both cells, with layer norm,
    recurrent masks and zoneout, on sizes that leave vector tails and row blocks, and the
    products."""
    from rnnreg import _kernels_avx2 as narrow
    from rnnreg import _kernels_avx512 as wide

    rng = np.random.default_rng(0)
    f = lambda *shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731

    def same(a, b):
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            return np.array_equal(a, b)
        if hasattr(a, "keys"):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a.keys())
        if isinstance(a, tuple):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return a == b

    # Batches 13 and 16: the AVX-512 build's step product makes rows eight at a time, the AVX2
    # build's four at a time (13 = 8 + 4 + 1 there).
    shapes = ((5, 7, 13, 40), (1, 9, 3, 33), (8, 12, 20, 64), (6, 3, 4, 128), (13, 6, 5, 48), (16, 4, 7, 96))
    for N, T, D, H in shapes:
        for layer_norm in (False, True):
            for G, cell in ((4 * H, "lstm"), (3 * H, "gru")):
                mask = f(N, H) if layer_norm else None
                zone = (rng.random((N, T, H)) < 0.3).astype(dtype)
                if cell == "lstm":
                    ln = {k: f(G) for k in ("gamma_x", "beta_x", "gamma_h", "beta_h")}
                    ln |= {"gamma_c": f(H), "beta_c": f(H)}
                    args = (
                        f(N, T, D),
                        f(N, H),
                        f(N, H),
                        f(D, G),
                        f(H, G),
                        f(G),
                        ln if layer_norm else None,
                        mask,
                        1e-5,
                        zone,
                        None,
                    )
                    caches = [m.lstm_forward(*args) for m in (narrow, wide)]
                    dh = f(N, T, H)
                    grads = [m.lstm_backward(dh, None, caches[0]) for m in (narrow, wide)]
                else:
                    ln = {k: f(G) for k in ("gamma_x", "beta_x", "gamma_h", "beta_h")}
                    args = (
                        f(N, T, D),
                        f(N, H),
                        f(D, G),
                        f(H, G),
                        f(G),
                        f(H),
                        ln if layer_norm else None,
                        mask,
                        1e-5,
                        zone,
                    )
                    caches = [m.gru_forward(*args) for m in (narrow, wide)]
                    dh = f(N, T, H)
                    grads = [m.gru_backward(dh, caches[0]) for m in (narrow, wide)]
                assert same(caches[0], caches[1]), (cell, N, T, D, H, layer_norm)
                assert same(grads[0], grads[1]), (cell, N, T, D, H, layer_norm)
    for m, k, n in ((3, 5, 7), (37, 50, 61), (4, 256, 1024), (100, 300, 200)):
        a, b = f(m, k), f(k, n)
        for trans_b in (False, True):
            bb = np.ascontiguousarray(b.T) if trans_b else b
            assert np.array_equal(narrow.matmul(a, bb, False, trans_b), wide.matmul(a, bb, False, trans_b))


def test_backend_can_be_switched_and_restored():
    with rnnreg.use_backend("numpy"):
        assert rnnreg.get_backend() == "numpy"
    assert rnnreg.get_backend() == "compiled"
    with pytest.raises(ValueError, match="backend must be one of"):
        rnnreg.set_backend("fortran")


def _python(code, env, cwd):
    """Run code in a fresh interpreter. Its working directory must not be the checkout: there,
    `python -c` would import the uncompiled rnnreg/ source folder instead of the installed one."""
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, check=True
    )


def test_environment_variable_selects_numpy(tmp_path):
    code = "import rnnreg; print(rnnreg.get_backend())"
    out = _python(code, dict(os.environ, RNNREG_BACKEND="numpy"), tmp_path)
    assert out.stdout.strip() == "numpy"


def test_missing_extension_warns_and_falls_back(tmp_path):
    # A copy of the package without the compiled module: importing it must warn, not stay silent.
    import shutil

    src = os.path.dirname(rnnreg.__file__)
    dst = tmp_path / "rnnreg"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("_kernels*", "__pycache__"))
    # An editable install (pip install -e) maps `rnnreg` to the checkout through a finder on
    # sys.meta_path that would win over the copy: drop such finders first.
    code = (
        "import sys, warnings; warnings.simplefilter('always');\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()];\n"
        "import rnnreg; print(rnnreg.get_backend(), rnnreg.__file__)"
    )
    env = {k: val for k, val in os.environ.items() if k != "RNNREG_BACKEND"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    backend, location = out.stdout.split()
    assert backend == "numpy" and location.startswith(str(dst)), out.stdout
    assert "compiled kernels could not be imported" in out.stderr
    assert out.stderr.count("RuntimeWarning") == 1


def test_cpu_detection_asks_the_cpu_and_agrees_with_numpy():
    detected = _backend._cpu_has_avx2_fma()
    assert isinstance(detected, bool)
    assert _backend._kernels.cpu_has_avx2_fma() == detected
    try:  # NumPy's own (private) table, as a cross-check only: rnnreg does not depend on it
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        return
    assert detected == bool(features.get("AVX2") and features.get("FMA3"))


def test_the_type_stub_matches_the_compiled_module():
    """rnnreg/_kernels.pyi declares exactly the compiled module's functions, and ships."""
    import ast
    import pathlib

    stub = pathlib.Path(rnnreg.__file__).with_name("_kernels.pyi")
    assert stub.exists() and stub.with_name("py.typed").exists()
    declared = {node.name for node in ast.parse(stub.read_text()).body if isinstance(node, ast.FunctionDef)}
    compiled = {
        name
        for name in dir(_backend._kernels)
        if callable(getattr(_backend._kernels, name))
        and type(getattr(_backend._kernels, name)).__name__
        in ("cython_function_or_method", "builtin_function_or_method", "function")
        and getattr(getattr(_backend._kernels, name), "__module__", "").startswith("rnnreg._kernels")
    }
    compiled |= {"lstm_step_forward", "lstm_step_backward"}  # made by step_functions
    assert declared == compiled
