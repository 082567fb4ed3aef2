"""The kernel boundary is the safety boundary: no call into rnnreg._kernels — whatever its
arguments, a tampered cache, an ndarray that lies about its shape — reads or writes memory it
should not. Cases that used to crash the interpreter run in a child process, so that a
regression shows as a signal in a failing test rather than killing the test run."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import rnnreg
from rnnreg import LayerNormCache, LSTMCache, _backend, _reference

pytestmark = pytest.mark.kernels

K = _backend._kernels
HERE = os.path.dirname(os.path.abspath(__file__))


def _child(code, tmp_path):
    """Run code in a fresh interpreter (outside the checkout, so that the installed package is
    imported); fail with its output if it dies of a signal or exits non-zero."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (
        f"child exited with {proc.returncode} "
        f"({'signal ' + str(-proc.returncode) if proc.returncode < 0 else 'error'})"
        f"\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    )
    return proc.stdout


# ----------------------------------------------------------------------------- the property test
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_inconsistent_arguments_raise_for_every_kernel(seed, tmp_path):
    """~3,800 random inconsistent argument sets per seed across every compiled entry point: each
    ends in ValueError or TypeError (never a signal, never a result); an ndarray subclass with a
    false .shape gives the honest result."""
    script = os.path.join(HERE, "kernel_fuzz.py")
    proc = subprocess.run(
        [sys.executable, script, str(seed), "4600"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"fuzzer died ({proc.returncode}): {proc.stderr[-3000:]}"
    summary = json.loads(proc.stdout)
    assert summary["accepted"] == [] and summary["other_errors"] == [], summary
    assert summary["raised"] > 3000 and summary["lying_shape_ok"] > 100, summary
    public = {
        n
        for n in dir(K)
        if not n.startswith("_")
        and callable(getattr(K, n))
        and getattr(getattr(K, n), "__module__", "").startswith("rnnreg._kernels")
        or n in ("lstm_step_forward", "lstm_step_backward")
    }
    public -= {
        "LSTMCache",
        "dropout_threshold",
        "step_functions",
        "MappingProxyType",
        "cpu_has_avx2_fma",
        "cpu_has_avx512",
    }  # no arguments to corrupt
    assert public <= set(summary["kernels"]), public - set(summary["kernels"])
    assert min(summary["kernels"].values()) > 100, summary["kernels"]


# ----------------------------------------------------------------------------- the reported crashes
def test_tampered_lstm_caches_raise_in_both_backends(tmp_path):
    out = _child(
        """
        import numpy as np, rnnreg
        from rnnreg import _backend, _reference
        K = _backend._kernels
        rng = np.random.default_rng(0)
        f = lambda *s: rng.standard_normal(s)
        N, T, D, H = 2, 5, 3, 4
        x, h0, Wx, Wh, b = f(N, T, D), f(N, H), f(D, 4 * H), f(H, 4 * H), f(4 * H)
        ln = rnnreg.lstm_layer_norm_params(H)
        cases = 0
        for backend in ("compiled", "numpy"):
            with rnnreg.use_backend(backend):
                h, cache = rnnreg.lstm_forward(x, h0, Wx, Wh, b, layer_norm=ln)
                dh = f(N, T, H)
                bad = [
                    cache._replace(gates=np.zeros((1, 1, 16))),        # an array replaced
                    cache._replace(T=50),                               # the recorded length
                    cache._replace(H=40),
                    cache._replace(c=f(N, T + 3, H)),                   # resized
                    cache._replace(ln_saved={**cache.ln_saved, "xhat_h": f(N, T, 2)}),
                    cache._replace(ln_saved=None),
                    cache._replace(hprev=cache.hprev.astype(">f8")),    # byte order
                    cache._replace(x=[[0.0]]),
                ]
                for broken in bad:
                    for call in (lambda: rnnreg.lstm_backward(dh, broken),
                                 lambda: (K if backend == "compiled" else _reference)
                                 .lstm_backward(dh, np.zeros((N, H)), broken)):
                        try:
                            call()
                        except (ValueError, TypeError) as exc:
                            cases += 1
                            assert "cache" in str(exc), exc
                        else:
                            raise AssertionError(f"{backend}: accepted {broken!r}")
                # the cache reused for a longer batch
                for call in (lambda: rnnreg.lstm_backward(f(N + 3, T, H), cache),
                             lambda: K.lstm_backward(f(N + 3, T, H), np.zeros((N + 3, H)), cache)):
                    try:
                        call()
                    except ValueError as exc:
                        cases += 1
                        assert "dh" in str(exc), exc
                    else:
                        raise AssertionError("a longer batch was accepted")
        print("raised", cases)
    """,
        tmp_path,
    )
    assert "raised 36" in out


def test_caches_are_read_only_and_typed():
    x = np.ones((2, 3, 4))
    h, cache = rnnreg.lstm_forward(x, np.zeros((2, 5)), np.ones((4, 20)), np.ones((5, 20)), np.zeros(20))
    assert isinstance(cache, LSTMCache) and (cache.N, cache.T, cache.D, cache.H) == (2, 3, 4, 5)
    with pytest.raises(AttributeError):
        cache.gates = np.zeros((2, 3, 20))
    with pytest.raises(TypeError):
        cache["gates"] = np.zeros((2, 3, 20))
    for arr in (h, cache.gates, cache.c, cache.hprev, cache.tc):
        assert not arr.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            arr[...] = 0
    assert cache["c_final"] is not None and cache.c_final.shape == (2, 5)
    out, ln_cache = rnnreg.layer_norm_forward(np.ones((3, 6)), np.ones(6), np.zeros(6))
    assert isinstance(ln_cache, LayerNormCache) and not ln_cache.xhat.flags.writeable
    with pytest.raises(TypeError):
        ln_cache["shape"] = (100, 6)
    for broken in (
        ln_cache._replace(shape=(100, 6)),
        ln_cache._replace(xhat=np.ones((2, 6))),
        ln_cache._replace(rstd=np.ones(30)),
        ln_cache._replace(shape=(3, -6)),
    ):
        with pytest.raises(ValueError, match="cache"):
            rnnreg.layer_norm_backward(np.ones((3, 6)), broken)
    with pytest.raises(TypeError, match="LayerNormCache"):
        rnnreg.layer_norm_backward(np.ones((3, 6)), dict(ln_cache._asdict()))


def test_direct_kernel_calls_with_disagreeing_sizes_raise(tmp_path):
    out = _child(
        """
        import numpy as np
        from rnnreg import _backend
        K = _backend._kernels
        f = lambda *s: np.ones(s)
        calls = {
            "adam_update": lambda: K.adam_update(f(3, 4), f(1), f(3, 4), f(3, 4),
                                                 1e-3, 0.9, 0.999, 1e-8, 1.0, 0.0),
            "adam_update m": lambda: K.adam_update(f(3, 4), f(3, 4), f(2), f(3, 4),
                                                   1e-3, 0.9, 0.999, 1e-8, 1.0, 0.0),
            "matmul": lambda: K.matmul(f(3, 4), f(5, 2)),
            "matmul trans": lambda: K.matmul(f(3, 4), f(5, 2), True, True),
            "dropout_backward": lambda: K.dropout_backward(f(10), f(3)),
            "layer_norm_forward": lambda: K.layer_norm_forward(f(2, 8), f(3), f(8), 1e-5),
            "layer_norm_backward": lambda: K.layer_norm_backward(f(2, 8), f(2, 8), f(1), f(8)),
            "lstm_forward h0": lambda: K.lstm_forward(f(2, 3, 4), f(9, 5), f(2, 5), f(4, 20),
                                                      f(5, 20), f(20), None, None, 1e-5),
            "lstm_forward Wh": lambda: K.lstm_forward(f(2, 3, 4), f(2, 5), f(2, 5), f(4, 20),
                                                      f(5, 21), f(20), None, None, 1e-5),
            "lstm_forward ln": lambda: K.lstm_forward(f(2, 3, 4), f(2, 5), f(2, 5), f(4, 20),
                                                      f(5, 20), f(20), {"gamma_x": f(1)}, None, 1e-5),
            "softmax targets": lambda: K.softmax_cross_entropy(f(4, 3), np.zeros(2, np.int64)),
            "eps": lambda: K.layer_norm_forward(f(2, 8), f(8), f(8), 0.0),
            "keep_prob": lambda: K.dropout_forward(f(8), 0.0, np.random.default_rng(0)),
            "rng": lambda: K.dropout_forward(f(8), 0.5, object()),
            "draw_mask n": lambda: K.draw_mask(-1, 0.5, np.random.default_rng(0)),
            "draw_mask huge n": lambda: K.draw_mask(2**63, 0.5, np.random.default_rng(0)),
            "draw_mask float n": lambda: K.draw_mask(8.0, 0.5, np.random.default_rng(0)),
            "draw_mask keep_prob": lambda: K.draw_mask(8, 1.5, np.random.default_rng(0)),
            "draw_mask rng": lambda: K.draw_mask(8, 0.5, 0),
            "draw_mask dtype": lambda: K.draw_mask(8, 0.5, np.random.default_rng(0), np.int32),
            "adam nan": lambda: K.adam_update(f(3), f(3), f(3), f(3), float("nan"), 0.9, 0.999,
                                              1e-8, 1.0, 0.0),
        }
        for name, call in calls.items():
            try:
                call()
            except (ValueError, TypeError) as exc:
                print(name, "->", type(exc).__name__, exc)
            else:
                raise AssertionError(name + " accepted")
        print("all raised")
    """,
        tmp_path,
    )
    assert "all raised" in out
    assert "adam_update -> ValueError g has shape (1,), expected (3, 4)" in out


def test_non_native_byte_order_and_misaligned_arrays_are_refused():
    x = np.arange(12.0).reshape(3, 4)
    with pytest.raises(TypeError, match="native byte order"):
        K.layer_norm_forward(x.astype(">f8"), np.ones(4), np.zeros(4), 1e-5)
    raw = np.zeros(x.nbytes + 1, np.uint8)
    misaligned = raw[1:].view(np.float64).reshape(3, 4)
    misaligned[...] = x
    with pytest.raises(TypeError, match="aligned"):
        K.matmul(misaligned, np.ones((4, 2)))
    # the public functions convert both to what the kernels read, and give the same result
    expected, _ = rnnreg.layer_norm_forward(x, np.ones(4), np.zeros(4))
    for variant in (x.astype(">f8"), misaligned):
        got, _ = rnnreg.layer_norm_forward(variant, np.ones(4), np.zeros(4))
        np.testing.assert_array_equal(got, expected)


class _LyingShape(np.ndarray):
    @property
    def shape(self):
        return (1000, 1000)


def test_an_array_that_lies_about_its_shape_is_read_by_its_real_one():
    a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(K.matmul(a.view(_LyingShape), b.view(_LyingShape)), a @ b)
    p, g = np.ones(5), np.full(5, 0.5)
    m, v = np.zeros(5), np.zeros(5)
    K.adam_update(
        p.view(_LyingShape),
        g.view(_LyingShape),
        m.view(_LyingShape),
        v.view(_LyingShape),
        0.1,
        0.9,
        0.999,
        1e-8,
        1.0,
        0.0,
    )
    assert np.all(p < 1) and np.all(m > 0)
    with pytest.raises(ValueError, match="shape"):  # real sizes disagree: refused
        K.dropout_backward(np.ones(10).view(_LyingShape), np.ones(3).view(_LyingShape))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ln", [False, True])
def test_products_too_large_for_blas_ints_run_on_the_loops(dtype, ln):
    """Dimensions above BLAS's 32-bit int are never cast down: such products take the plain loops.
    Lowering the limit to 16 sends every product of a (9, 3, 20, 64) LSTM there; the results still
    equal the NumPy twin's."""
    rng = np.random.default_rng(4)
    N, T, D, H = 9, 3, 20, 64
    f = lambda *s: rng.standard_normal(s).astype(dtype)
    args = (
        f(N, T, D),
        f(N, H),
        f(N, H),
        f(D, 4 * H) * 0.3,
        f(H, 4 * H) * 0.3,
        f(4 * H),
        rnnreg.lstm_layer_norm_params(H, dtype) if ln else None,
        None,
        1e-5,
    )
    dh, dc = f(N, T, H), f(N, H)
    tol = 1e-10 if dtype == np.float64 else 2e-4
    previous = K._set_blas_int_max(16)
    try:
        cache = K.lstm_forward(*args)
        grads = K.lstm_backward(dh, dc, cache)
        prod = K.matmul(f(40, 30), f(30, 50))
        with pytest.raises(ValueError, match="both operands transposed"):
            K.matmul(f(30, 40), f(50, 30), True, True)
    finally:
        K._set_blas_int_max(previous)
    ref = _reference.lstm_forward(*args)
    ref_grads = _reference.lstm_backward(dh, dc, ref)
    np.testing.assert_allclose(cache.h, ref.h, rtol=tol, atol=tol)
    for name in ("dx", "dWx", "dWh", "db", "dh0"):
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=tol * 10, atol=tol * 10)
    assert prod.shape == (40, 50)
    with pytest.raises(ValueError):
        K._set_blas_int_max(0)
