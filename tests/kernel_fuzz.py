"""Random inconsistent arguments for every compiled entry point (run by test_kernel_boundary.py
in a child process, so that a crash shows as a signal instead of killing the test run).

    python tests/kernel_fuzz.py SEED CASES   -> prints one JSON summary line, exits 0

For each case: a kernel, a dtype and a valid set of arguments of random small sizes; then one
corruption that makes the set inconsistent (a dimension off by one, an axis added or dropped, an
empty axis, another dtype, swapped bytes, a misaligned or strided or read-only array, a non-array,
two arguments swapped, a cache field replaced). The kernel must raise ValueError or TypeError.
A corruption that keeps the set consistent — an ndarray subclass whose ``.shape`` lies — must
give the same result as the honest call. Anything else is counted and reported.
"""

import json
import sys

import numpy as np

from rnnreg import _backend, _reference

K = _backend._kernels


class LyingShape(np.ndarray):
    """An ndarray that reports a false shape to Python code (the kernels must not ask it)."""

    @property
    def shape(self):
        return (10**6,) * self.ndim

    @property
    def size(self):
        return 10**12


def _valid(kernel, rng, dtype):
    """(positional arguments, names, which of them are arrays the kernel reads) for kernel."""
    f = lambda *s: rng.standard_normal(s).astype(dtype)
    N, T, D, H = (int(n) for n in rng.integers(1, 6, 4))
    G = 4 * H
    if kernel in ("lstm_forward", "lstm_backward"):
        ln = None
        if rng.random() < 0.5:
            ln = {
                "gamma_x": f(G),
                "beta_x": f(G),
                "gamma_h": f(G),
                "beta_h": f(G),
                "gamma_c": f(H),
                "beta_c": f(H),
            }
        mask = f(N, H) if rng.random() < 0.5 else None
        # x as floats (N, T, D), or as one-hot inputs given by their token ids (N, T) in [0, D)
        x = rng.integers(0, D, (N, T)).astype(np.int64) if rng.random() < 0.3 else f(N, T, D)
        # zoneout weights (N, T, H) of h and of c, each present or not
        zone = [(rng.random((N, T, H)) < 0.3).astype(dtype) if rng.random() < 0.4 else None for _ in range(2)]
        fwd = [x, f(N, H), f(N, H), f(D, G), f(H, G), f(G), ln, mask, 1e-5] + zone
        if kernel == "lstm_forward":
            return fwd, [
                "x",
                "h0",
                "c0",
                "Wx",
                "Wh",
                "b",
                "layer_norm",
                "recurrent_mask",
                "eps",
                "zoneout_h",
                "zoneout_c",
            ]
        cache = K.lstm_forward(*fwd)
        dW = f(D + H, G) if rng.random() < 0.5 else None  # [dWx; dWh] into the caller's array
        return [f(N, T, H), f(N, H), cache, True, dW], ["dh", "dc_final", "cache", "need_dx", "dW"]
    if kernel in ("gru_forward", "gru_backward"):
        G3 = 3 * H
        ln = {k: f(G3) for k in ("gamma_x", "beta_x", "gamma_h", "beta_h")} if rng.random() < 0.5 else None
        mask = f(N, H) if rng.random() < 0.5 else None
        x = rng.integers(0, D, (N, T)).astype(np.int64) if rng.random() < 0.3 else f(N, T, D)
        zone = (rng.random((N, T, H)) < 0.3).astype(dtype) if rng.random() < 0.4 else None
        fwd = [x, f(N, H), f(D, G3), f(H, G3), f(G3), f(H), ln, mask, 1e-5, zone]
        if kernel == "gru_forward":
            return fwd, ["x", "h0", "Wx", "Wh", "b", "bn", "layer_norm", "recurrent_mask", "eps", "zoneout_h"]
        dW = f(D + H, G3) if rng.random() < 0.5 else None
        return [f(N, T, H), K.gru_forward(*fwd), True, dW], ["dh", "cache", "need_dx", "dW"]
    if kernel == "lstm_step_forward":
        return [f(N, D), f(N, H), f(N, H), f(D, G), f(H, G), f(G)], ["x", "prev_h", "prev_c", "Wx", "Wh", "b"]
    if kernel == "lstm_step_backward":
        _, _, cache = K.lstm_step_forward(f(N, D), f(N, H), f(N, H), f(D, G), f(H, G), f(G))
        return [f(N, H), f(N, H), cache], ["dnext_h", "dnext_c", "cache"]
    if kernel == "layer_norm_forward":
        return [f(N, D), f(D), f(D), 1e-5], ["x", "gamma", "beta", "eps"]
    if kernel == "layer_norm_backward":
        _, xhat, rstd = K.layer_norm_forward(f(N, D), f(D), f(D), 1e-5)
        return [f(N, D), xhat, rstd, f(D)], ["dout", "xhat", "rstd", "gamma"]
    if kernel == "dropout_forward":
        return [f(N * D), 0.5, np.random.default_rng(0)], ["x", "keep_prob", "rng"]
    if kernel == "draw_mask":
        return [N * D, 0.5, np.random.default_rng(0), dtype, bool(rng.random() < 0.5)], [
            "n",
            "keep_prob",
            "rng",
            "dtype",
            "scaled",
        ]
    if kernel == "new_buffer":
        return [N * D, dtype], ["n", "dtype"]
    if kernel == "dropout_backward":
        return [f(N * D), f(N * D)], ["dout", "mask"]
    if kernel == "matmul":
        out = f(N, H) if rng.random() < 0.8 else None
        return [f(N, D), f(D, H), False, False, out], ["a", "b", "trans_a", "trans_b", "out"]
    if kernel == "softmax_cross_entropy":
        return [f(N, D), rng.integers(0, D, N).astype(np.int64)], ["logits", "targets"]
    if kernel == "all_finite":
        return [f(N, D)], ["arr"]
    if kernel == "sum_of_squares":
        return [f(N, D)], ["arr"]
    if kernel == "sums_of_squares":
        split = int(rng.integers(0, N * D + 1))
        return [f(N, D), np.array([[0, split], [split, N * D]], np.int64)], ["arr", "ranges"]
    if kernel == "first_nonfinite":
        return [[f(N, D), None, f(D)]], ["arrays"]
    if kernel == "adam_update":
        split = int(rng.integers(0, N * D + 1))
        decayed = np.array([[0, split], [split, N * D]], np.int64) if rng.random() < 0.5 else None
        return [f(N, D), f(N, D), f(N, D), np.abs(f(N, D)), 1e-3, 0.9, 0.999, 1e-8, 1.0, 0.0, decayed], [
            "p",
            "g",
            "m",
            "v",
            "step_size",
            "beta1",
            "beta2",
            "eps",
            "decay",
            "l2",
            "decayed",
        ]
    raise AssertionError(kernel)


KERNELS = [
    "lstm_forward",
    "lstm_backward",
    "lstm_step_forward",
    "lstm_step_backward",
    "gru_forward",
    "gru_backward",
    "layer_norm_forward",
    "layer_norm_backward",
    "dropout_forward",
    "draw_mask",
    "new_buffer",
    "dropout_backward",
    "matmul",
    "softmax_cross_entropy",
    "all_finite",
    "sum_of_squares",
    "sums_of_squares",
    "first_nonfinite",
    "adam_update",
]
ARRAY_CORRUPTIONS = [
    "grow",
    "shrink",
    "add_axis",
    "drop_axis",
    "empty",
    "other_float",
    "int64",
    "float16",
    "byteswap",
    "misaligned",
    "strided",
    "not_array",
    "lying_shape",
]
SCALAR_CORRUPTIONS = ["nan", "negative", "huge"]
# In-place arguments that must also be writeable.
WRITTEN = {
    ("adam_update", "p"),
    ("adam_update", "m"),
    ("adam_update", "v"),
    ("matmul", "out"),
    ("lstm_backward", "dW"),
    ("gru_backward", "dW"),
}
# Output arguments that may be None (the kernel then makes its own array).
OUTPUTS = {("matmul", "out"), ("lstm_backward", "dW"), ("gru_backward", "dW")}
# Arguments whose size nothing else constrains: growing them keeps the set consistent.
FREE = {
    ("all_finite", "arr"),
    ("sum_of_squares", "arr"),
    ("sums_of_squares", "arr"),
    ("dropout_forward", "x"),
}
# Element ranges (k, 2) int64 of the array an argument names, and whether they must be sorted.
RANGES = {("sums_of_squares", "ranges"): ("arr", False), ("adam_update", "decayed"): ("p", True)}
RANGE_CORRUPTIONS = [
    "negative",
    "past_end",
    "reversed",
    "unsorted",
    "int32",
    "float64",
    "byteswap",
    "strided",
    "add_axis",
    "drop_axis",
    "three_columns",
    "not_array",
]
# Scalars each kernel must refuse when corrupted (others, like decay, take any finite value).
CHECKED_SCALARS = {
    ("lstm_forward", "eps"),
    ("gru_forward", "eps"),
    ("layer_norm_forward", "eps"),
    ("dropout_forward", "keep_prob"),
    ("draw_mask", "keep_prob"),
    ("draw_mask", "n"),
    ("new_buffer", "n"),
    ("adam_update", "step_size"),
    ("adam_update", "beta1"),
    ("adam_update", "beta2"),
    ("adam_update", "eps"),
    ("adam_update", "l2"),
}


def _corrupt_ranges(ranges, kind, size, must_sort):
    """A corrupted stand-in for valid ranges [[0, a], [a, size]] over an array of ``size``
    elements, or None when the corruption keeps them valid."""
    bad = ranges.copy()
    if kind == "negative":
        bad[0, 0] = -1
    elif kind == "past_end":
        bad[1, 1] = size + 1
    elif kind == "reversed":
        if bad[1, 0] == bad[1, 1]:
            bad[1, 0] += 1
            if bad[1, 0] > size:
                return None
        bad[1] = bad[1, ::-1]
    elif kind == "unsorted":
        if not must_sort or bad[0, 1] == bad[0, 0] or bad[1, 0] == bad[1, 1]:
            return None  # (empty ranges in either order are still sorted and disjoint)
        bad = bad[::-1].copy()
    elif kind in ("int32", "float64"):
        bad = bad.astype(kind)
    elif kind == "byteswap":
        bad = bad.astype(bad.dtype.newbyteorder())
    elif kind == "strided":
        bad = np.repeat(bad, 2, axis=1)[:, ::2]
    elif kind == "add_axis":
        bad = bad[..., None].copy()
    elif kind == "drop_axis":
        bad = bad.reshape(-1).copy()
    elif kind == "three_columns":
        bad = np.concatenate([bad, bad[:, :1]], axis=1)
    elif kind == "not_array":
        bad = ranges.tolist()
    return bad


def _misaligned(arr):
    raw = np.zeros(arr.nbytes + 1, np.uint8)
    out = raw[1:].view(arr.dtype).reshape(arr.shape)
    out[...] = arr
    return out


def _corrupt_array(arr, kind, rng):
    """A corrupted stand-in for arr, or None when the corruption does not apply."""
    if kind == "grow" or kind == "shrink":
        axis = int(rng.integers(0, arr.ndim))
        if kind == "shrink" and arr.shape[axis] < 2:
            return None
        new = list(arr.shape)
        new[axis] += 1 if kind == "grow" else -1
        return np.resize(arr, new).astype(arr.dtype)
    if kind == "add_axis":
        return arr[..., None].copy()
    if kind == "drop_axis":
        return arr.reshape(arr.shape[:-2] + (-1,)).copy() if arr.ndim > 1 else arr[0:1].reshape(())
    if kind == "empty":
        return np.take(arr, [], axis=int(rng.integers(0, arr.ndim)))
    if kind == "other_float":
        return arr.astype(np.float32 if arr.dtype == np.float64 else np.float64)
    if kind in ("int64", "float16"):
        return arr.astype(kind)
    if kind == "byteswap":
        return arr.astype(arr.dtype.newbyteorder())
    if kind == "misaligned":
        return _misaligned(arr)
    if kind == "strided":
        big = np.repeat(arr[..., None], 2, axis=-1)
        return big[..., 0] if arr.size > 1 else None
    if kind == "not_array":
        return [arr.tolist(), None, "x", 3.0][int(rng.integers(0, 4))]
    if kind == "lying_shape":
        return arr.view(LyingShape)
    raise AssertionError(kind)


def _corrupt_cache(cache, rng):
    """A copy of an LSTMCache or GRUCache with one field swapped for an inconsistent value."""
    if hasattr(cache, "hn"):  # a GRU's
        field = [
            "x",
            "h0",
            "Wx",
            "Wh",
            "b",
            "bn",
            "hprev",
            "gates",
            "hn",
            "h",
            "N",
            "T",
            "D",
            "H",
            "recurrent_mask",
            "layer_norm",
            "ln_saved",
            "zoneout_h",
        ][int(rng.integers(0, 18))]
        return _corrupt_field(cache, field, rng)
    field = [
        "x",
        "h0",
        "c0",
        "Wx",
        "Wh",
        "hprev",
        "gates",
        "c",
        "tc",
        "N",
        "T",
        "D",
        "H",
        "recurrent_mask",
        "layer_norm",
        "ln_saved",
        "zoneout_h",
        "zoneout_c",
    ][int(rng.integers(0, 18))]
    return _corrupt_field(cache, field, rng)


def _corrupt_field(cache, field, rng):
    value = getattr(cache, field)
    if field.startswith("zoneout") and value is None:  # none: give weights a step too many
        return cache._replace(**{field: np.ones((cache.N, cache.T + 1, cache.H), cache.dtype)})
    if field in ("N", "T", "D", "H"):
        return cache._replace(**{field: value + int(rng.choice([-1, 1, 7]))})
    if field in ("layer_norm", "ln_saved"):
        if value is None:
            other = cache.ln_saved if field == "layer_norm" else cache.layer_norm
            return cache._replace(**{field: {} if other is None else None})
        name = list(value)[int(rng.integers(0, len(value)))]
        broken = dict(value)
        broken[name] = np.resize(value[name], value[name].size + 1).astype(value[name].dtype)
        return cache._replace(**{field: broken})
    if value is None:  # no mask: give one of a wrong size
        return cache._replace(recurrent_mask=np.ones((cache.N + 1, cache.H), cache.dtype))
    if field == "x" and value.dtype == np.int64 and rng.random() < 0.5:
        bad = value.copy()  # token ids: one outside [0, D)
        bad.flat[int(rng.integers(0, bad.size))] = [-1, cache.D, 2**62][int(rng.integers(0, 3))]
        return cache._replace(x=bad)
    bad = _corrupt_array(
        value, ["grow", "shrink", "other_float", "byteswap", "strided"][int(rng.integers(0, 5))], rng
    )
    return None if bad is None else cache._replace(**{field: bad})


def _same(a, b):
    if hasattr(a, "keys"):  # dicts of gradients, the caches' read-only mappings
        return set(a.keys()) == set(b.keys()) and all(_same(a[k], b[k]) for k in a.keys())
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
    return a == b


def _close(a, b):
    if hasattr(a, "h") and hasattr(a, "gates"):  # caches: compare the outputs
        return _close(a.h, b.h) and (not hasattr(a, "c") or _close(a.c, b.c))
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return np.allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=1e-4, atol=1e-6)


def run(seed, cases):
    rng = np.random.default_rng(seed)
    summary = {
        "cases": 0,
        "raised": 0,
        "accepted": [],
        "other_errors": [],
        "lying_shape_ok": 0,
        "consistent": 0,
        "kernels": {},
    }
    for _ in range(cases):
        kernel = KERNELS[int(rng.integers(0, len(KERNELS)))]
        dtype = [np.float64, np.float32][int(rng.integers(0, 2))]
        args, names = _valid(kernel, rng, dtype)
        position = int(rng.integers(0, len(args)))
        name, value = names[position], args[position]
        label = f"{kernel}({name}"
        bad = None
        if name == "arrays":  # a list of arrays: one of them malformed
            kind = ["int64", "float16", "byteswap", "misaligned", "strided", "not_array"][
                int(rng.integers(0, 6))
            ]
            bad = list(value)
            bad[2] = _corrupt_array(value[2], kind, rng)
            if bad[2] is None:
                continue
        elif (kernel, name) in RANGES and value is not None:
            kind = RANGE_CORRUPTIONS[int(rng.integers(0, len(RANGE_CORRUPTIONS)))]
            of, must_sort = RANGES[(kernel, name)]
            bad = _corrupt_ranges(value, kind, args[names.index(of)].size, must_sort)
        elif (kernel, name) in OUTPUTS and value is not None and rng.random() < 0.3:
            # an output overlapping the first array the kernel reads (a, dh): same values there
            kind = "aliased_output"
            read = args[0]
            raw = np.zeros(read.size // 2 + max(value.size, read.size), value.dtype)
            args = list(args)
            args[0] = raw[: read.size].reshape(read.shape)
            args[0][...] = read
            bad = raw[read.size // 2 : read.size // 2 + value.size].reshape(value.shape)
        elif isinstance(value, np.ndarray):
            kind = ARRAY_CORRUPTIONS[int(rng.integers(0, len(ARRAY_CORRUPTIONS)))]
            if (kernel, name) in WRITTEN and rng.random() < 0.2:
                kind = "read_only"
                bad = value.copy()
                bad.flags.writeable = False
            elif kind in ("grow", "shrink") and (kernel, name) in FREE:
                continue  # any length is valid there
            elif name == "targets" and kind in ("other_float", "float16", "int64"):
                bad = value.astype(np.float64)
            elif name == "x" and value.dtype == np.int64 and (kind == "int64" or rng.random() < 0.3):
                # token ids: another integer type, or one id outside [0, D)
                if kind == "int64":
                    bad = value.astype(np.int32)
                else:
                    kind = "token_out_of_range"
                    bad = value.copy()
                    bad.flat[int(rng.integers(0, bad.size))] = [
                        -1,
                        args[2 if kernel == "gru_forward" else 3].shape[0],
                        2**62,
                    ][int(rng.integers(0, 3))]
            elif kind == "drop_axis" and (kernel, name) in (
                ("all_finite", "arr"),
                ("sum_of_squares", "arr"),
                ("sums_of_squares", "arr"),
                ("adam_update", "p"),
            ):
                continue  # any number of axes is valid there
            elif kind == "add_axis" and (kernel, name) in (
                ("all_finite", "arr"),
                ("sum_of_squares", "arr"),
                ("sums_of_squares", "arr"),
            ):
                continue
            elif kind == "empty" and kernel in ("all_finite", "sum_of_squares"):
                continue  # an empty array is all finite, its sum of squares 0
            elif kind == "other_float" and (kernel, name) in (
                ("all_finite", "arr"),
                ("sum_of_squares", "arr"),
                ("sums_of_squares", "arr"),
                ("dropout_forward", "x"),
            ):
                continue  # the only float array: either dtype is valid
            elif kind == "empty" and kernel == "dropout_forward":
                continue  # nothing to drop: an empty result is right
            else:
                bad = _corrupt_array(value, kind, rng)  # (None, for an output: skipped)
        elif name == "cache":
            kind = "cache_field"
            bad = _corrupt_cache(value, rng)
        elif name in ("zoneout_h", "zoneout_c") and value is None:
            kind, bad = (
                "grow",
                np.ones((1, 1, 1), args[0].dtype if args[0].dtype.kind == "f" else args[3].dtype),
            )
        elif name in ("layer_norm", "recurrent_mask") and value is not None:
            kind = "mapping" if name == "layer_norm" else "grow"
            if name == "layer_norm":
                bad = dict(value)
                key = list(bad)[int(rng.integers(0, len(bad)))]
                if rng.random() < 0.5:
                    del bad[key]
                else:
                    bad[key] = np.resize(bad[key], bad[key].size + 1).astype(bad[key].dtype)
            else:
                bad = _corrupt_array(value, "grow", rng)
        elif (kernel, name) in CHECKED_SCALARS:
            kind = SCALAR_CORRUPTIONS[int(rng.integers(0, len(SCALAR_CORRUPTIONS)))]
            bad = {"nan": float("nan"), "negative": -1.0, "huge": float("inf")}[kind]
        elif name == "rng":
            kind, bad = "not_generator", np.random.PCG64(0)
        elif name == "dtype":
            kind, bad = "not_float_dtype", [np.int64, np.float16, "complex128"][int(rng.integers(0, 3))]
        else:
            continue
        if bad is None:
            continue
        label += f"={kind}, {np.dtype(dtype).name})"
        broken = list(args)
        broken[position] = bad
        summary["cases"] += 1
        summary["kernels"][kernel] = summary["kernels"].get(kernel, 0) + 1
        try:
            result = getattr(K, kernel)(*broken)
        except (ValueError, TypeError):
            summary["raised"] += 1
            continue
        except Exception as exc:  # noqa: BLE001 — reported, not hidden
            summary["other_errors"].append(f"{label}: {type(exc).__name__}: {exc}")
            continue
        if kind == "lying_shape":
            honest = getattr(K, kernel)(*[np.asarray(a) if isinstance(a, LyingShape) else a for a in broken])
            if kernel == "dropout_forward" or kernel == "adam_update" or _same(result, honest):
                summary["lying_shape_ok"] += 1  # (random or in-place: no second result to match)
                continue
        elif kernel in (
            "matmul",
            "softmax_cross_entropy",
            "layer_norm_forward",
            "lstm_forward",
            "gru_forward",
        ) and kind in (
            "grow",
            "shrink",
            "other_float",
        ):
            # Some of these stay consistent (b one column narrower, logits of another dtype or
            # with more classes, a longer sequence): then the result must be the NumPy twin's.
            try:
                twin = getattr(_reference, kernel)(*broken)
            except (ValueError, TypeError, IndexError):
                twin = None
            if twin is not None and _close(result, twin):
                summary["consistent"] += 1
                continue
        summary["accepted"].append(label)
    return summary


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]), int(sys.argv[2]))))
