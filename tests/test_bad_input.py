"""Bad input, property-based: every public function and class, fed corrupted arguments, ends in a
ValueError, TypeError or IndexError whose message names the argument — never a crash, a hang, a
silent NaN or an out-of-bounds read. Valid but unusual layouts (strided, Fortran-ordered,
read-only) must work and give the same result as C-contiguous input.

The number of cases tried is printed at the end of the test session (see conftest.py)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnreg
from rnnreg.training import TrainConfig

pytestmark = pytest.mark.kernels

# Read by conftest.py's terminal summary: how many bad-input cases ran and how they ended.
BAD_INPUT_STATS = {"tried": 0, "accepted": 0, "silent_nan": 0}

ERRORS = (ValueError, TypeError, IndexError)
SETTINGS = settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


# ----------------------------------------------------------------------------- valid calls
def _lstm_args(rng, dtype, N=2, T=3, D=4, H=5):
    f = lambda *s: rng.standard_normal(s).astype(dtype)
    return {
        "x": f(N, T, D),
        "h0": f(N, H),
        "Wx": f(D, 4 * H),
        "Wh": f(H, 4 * H),
        "b": f(4 * H),
        "c0": f(N, H),
    }


def _calls(rng, dtype):
    """name -> (function, keyword arguments, names of the array arguments that may be corrupted,
    names whose shape is tied to another argument's)."""
    lstm = _lstm_args(rng, dtype)
    _, cache = rnnreg.lstm_forward(**lstm)
    step = dict(
        x=lstm["x"][:, 0], prev_h=lstm["h0"], prev_c=lstm["c0"], Wx=lstm["Wx"], Wh=lstm["Wh"], b=lstm["b"]
    )
    _, _, step_cache = rnnreg.lstm_step_forward(**step)
    ln_x = rng.standard_normal((3, 6)).astype(dtype)
    gamma, beta = np.ones(6, dtype), np.zeros(6, dtype)
    _, ln_cache = rnnreg.layer_norm_forward(ln_x, gamma, beta)
    drop_x = rng.standard_normal((4, 5)).astype(dtype)
    _, mask = rnnreg.dropout_forward(drop_x, 0.7, True, rng=0)
    return {
        "lstm_forward": (
            rnnreg.lstm_forward,
            lstm,
            ["x", "h0", "Wx", "Wh", "b", "c0"],
            ["h0", "Wx", "Wh", "b", "c0"],
        ),
        "lstm_backward": (
            rnnreg.lstm_backward,
            {
                "dh": rng.standard_normal((2, 3, 5)).astype(dtype),
                "cache": cache,
                "dc_final": rng.standard_normal((2, 5)).astype(dtype),
            },
            ["dh", "dc_final"],
            ["dh", "dc_final"],
        ),
        "lstm_step_forward": (
            rnnreg.lstm_step_forward,
            step,
            list(step),
            ["prev_h", "prev_c", "Wx", "Wh", "b"],
        ),
        "lstm_step_backward": (
            rnnreg.lstm_step_backward,
            {
                "dnext_h": rng.standard_normal((2, 5)).astype(dtype),
                "dnext_c": rng.standard_normal((2, 5)).astype(dtype),
                "cache": step_cache,
            },
            ["dnext_h", "dnext_c"],
            ["dnext_h", "dnext_c"],
        ),
        "layer_norm_forward": (
            rnnreg.layer_norm_forward,
            {"x": ln_x, "gamma": gamma, "beta": beta},
            ["x", "gamma", "beta"],
            ["gamma", "beta"],
        ),
        "layer_norm_backward": (
            rnnreg.layer_norm_backward,
            {"dout": rng.standard_normal((3, 6)).astype(dtype), "cache": ln_cache},
            ["dout"],
            ["dout"],
        ),
        "dropout_forward": (rnnreg.dropout_forward, {"x": drop_x, "keep_prob": 0.7, "rng": 1}, ["x"], []),
        "dropout_backward": (
            rnnreg.dropout_backward,
            {"dout": rng.standard_normal((4, 5)).astype(dtype), "mask": mask},
            ["dout", "mask"],
            ["mask"],
        ),
        "matmul": (
            rnnreg.matmul,
            {"a": rng.standard_normal((3, 4)).astype(dtype), "b": rng.standard_normal((4, 2)).astype(dtype)},
            ["a", "b"],
            ["b"],
        ),
        "compute_l2_penalty": (
            rnnreg.compute_l2_penalty,
            {"weights": [rng.standard_normal((3, 2)).astype(dtype)], "weight_decay": 0.1},
            [],
            [],
        ),
    }


CALL_NAMES = list(_calls(np.random.default_rng(0), np.float64))
# Arguments of any rank (the functions work elementwise or over the last axis): adding or
# dropping an axis is not an error there.
FREE_RANK = {("dropout_forward", "x"), ("dropout_backward", "dout"), ("layer_norm_forward", "x")}
CORRUPTIONS = [
    "int64",
    "bool",
    "float16",
    "complex128",
    "object",
    "string",
    "other_float",
    "add_axis",
    "drop_axis",
    "grow_axis",
    "nan",
    "inf",
    "-inf",
    "empty",
]


def _corrupt(arr, kind, tied, data):
    """A corrupted copy of arr, or None when this corruption does not apply."""
    other = np.float32 if arr.dtype == np.float64 else np.float64
    if kind in ("int64", "bool", "float16", "complex128"):
        return arr.astype(kind)
    if kind == "object":
        return arr.astype(object)
    if kind == "string":
        return "not an array"
    if kind == "other_float":  # a dtype that differs from the main input's
        return arr.astype(other) if tied else None
    if kind == "add_axis":
        return arr[..., None]
    if kind == "drop_axis":
        return arr[..., 0] if arr.ndim > 1 else None
    if kind == "grow_axis":
        if not tied:
            return None
        axis = data.draw(st.integers(0, arr.ndim - 1), label="axis")
        pad = [(0, 0)] * arr.ndim
        pad[axis] = (0, 1)
        return np.pad(arr, pad)
    if kind in ("nan", "inf", "-inf"):
        out = arr.copy()
        index = data.draw(st.integers(0, arr.size - 1), label="index")
        out.reshape(-1)[index] = float(kind)
        return out
    if kind == "empty":
        axis = data.draw(st.integers(0, arr.ndim - 1), label="axis")
        return np.take(arr, [], axis=axis)
    raise AssertionError(kind)


def _expect_clear_error(call, name, label):
    BAD_INPUT_STATS["tried"] += 1
    try:
        result = call()
    except ERRORS as exc:
        message = str(exc)
        assert name.split("[")[0] in message, f"{label}: message does not name {name!r}: {message}"
        return
    BAD_INPUT_STATS["accepted"] += 1
    raise AssertionError(f"{label}: accepted bad input, returned {type(result).__name__}")


@SETTINGS
@given(
    data=st.data(),
    call_name=st.sampled_from(CALL_NAMES),
    dtype=st.sampled_from([np.float64, np.float32]),
    kind=st.sampled_from(CORRUPTIONS),
)
def test_corrupted_arrays_give_clear_errors(data, call_name, dtype, kind):
    fn, kwargs, arrays, tied = _calls(np.random.default_rng(1), dtype)[call_name]
    if not arrays:
        return
    name = data.draw(st.sampled_from(arrays), label="argument")
    if kind in ("add_axis", "drop_axis") and (call_name, name) in FREE_RANK:
        return
    bad = _corrupt(kwargs[name], kind, name in tied, data)
    if bad is None:
        return
    _expect_clear_error(lambda: fn(**{**kwargs, name: bad}), name, f"{call_name}({name}={kind})")


@pytest.mark.parametrize("layout", ["strided", "fortran", "readonly"])
@pytest.mark.parametrize("call_name", CALL_NAMES)
def test_unusual_layouts_work_and_agree(call_name, layout):
    fn, kwargs, arrays, _ = _calls(np.random.default_rng(2), np.float64)[call_name]
    expected = fn(**kwargs)
    changed = {}
    for name in arrays:
        a = kwargs[name]
        if layout == "strided":
            big = np.zeros(a.shape + (3,), a.dtype)
            big[..., 1] = a
            b = big[..., 1]
        elif layout == "fortran":
            b = np.asfortranarray(a)
        else:
            b = a.copy()
            b.setflags(write=False)
        changed[name] = b
    kw = {**kwargs, **changed}
    if "rng" in kw:
        kw["rng"] = kwargs["rng"]
    got = fn(**kw)
    BAD_INPUT_STATS["tried"] += 1
    for e, g in zip(_flatten(expected), _flatten(got)):
        np.testing.assert_array_equal(g, e)


def _flatten(result):
    if isinstance(result, (tuple, list)):
        out = []
        for r in result:
            if isinstance(r, np.ndarray):
                out.append(r)
            elif isinstance(r, (float, int)):
                out.append(np.array(r))
        return out
    return [np.asarray(result)]


@SETTINGS
@given(
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).filter(lambda p: not (0 < p <= 1)),
        st.just("0.5"),
        st.just(True),
        st.just(None),
    )
)
def test_keep_prob_outside_range(value):
    x = np.ones(4)
    _expect_clear_error(lambda: rnnreg.dropout_forward(x, value), "keep_prob", f"keep_prob={value!r}")
    _expect_clear_error(
        lambda: rnnreg.RegularizedLSTM(5, 4, dropout_keep_prob=value),
        "dropout_keep_prob",
        f"dropout_keep_prob={value!r}",
    )
    _expect_clear_error(
        lambda: rnnreg.RegularizedLSTM(5, 4, recurrent_keep_prob=value),
        "recurrent_keep_prob",
        f"recurrent_keep_prob={value!r}",
    )


@SETTINGS
@given(
    value=st.one_of(st.integers(max_value=0), st.floats(), st.just("3"), st.just(None), st.just(True)),
    argument=st.sampled_from(["vocab_size", "hidden_size", "output_size", "num_layers", "embedding_size"]),
)
def test_non_positive_sizes(value, argument):
    if value is None and argument in ("output_size", "embedding_size"):
        return  # None means "default" there
    kwargs = {"vocab_size": 5, "hidden_size": 4, argument: value}
    _expect_clear_error(lambda: rnnreg.RegularizedLSTM(**kwargs), argument, f"{argument}={value!r}")


@SETTINGS
@given(seq_length=st.integers(-3, 3), vocab_size=st.integers(-3, 3), num_samples=st.integers(-3, 3))
def test_dataset_sizes(seq_length, vocab_size, num_samples):
    if seq_length >= 1 and vocab_size >= 2 and num_samples >= 1:
        x, y = rnnreg.generate_simple_dataset(seq_length, vocab_size, num_samples, seed=0)
        assert x.shape == y.shape == (num_samples, seq_length) and x.max() < vocab_size
        return
    bad = "seq_length" if seq_length < 1 else "vocab_size" if vocab_size < 2 else "num_samples"
    _expect_clear_error(
        lambda: rnnreg.generate_simple_dataset(seq_length, vocab_size, num_samples),
        bad,
        f"dataset({seq_length}, {vocab_size}, {num_samples})",
    )


@SETTINGS
@given(
    data=st.data(),
    token=st.one_of(st.integers(-(10**12), -1), st.integers(7, 10**12)),
    where=st.sampled_from(["x", "y", "inputs", "targets"]),
)
def test_token_ids_outside_the_vocabulary(data, token, where):
    model = rnnreg.RegularizedLSTM(7, 4, seed=0)
    x, y = rnnreg.generate_simple_dataset(5, 7, 2, seed=0)
    pos = data.draw(st.integers(0, 4), label="position")
    if where in ("x", "y"):
        seq = {"x": x[0].copy(), "y": y[0].copy()}
        seq[where][pos] = token
        call = lambda: model.forward(seq["x"], seq["y"], np.zeros((4, 1)), np.zeros((4, 1)))
    else:
        batch = {"inputs": x.copy(), "targets": y.copy()}
        batch[where][1, pos] = token
        call = lambda: model.forward_batch(batch["inputs"], batch["targets"])
    _expect_clear_error(call, where, f"{where} token {token}")


@SETTINGS
@given(patience=st.one_of(st.integers(max_value=-1), st.floats(), st.just("5")))
def test_negative_or_non_integer_patience(patience):
    _expect_clear_error(
        lambda: rnnreg.EarlyStoppingMonitor(patience=patience), "patience", f"patience={patience!r}"
    )
    _expect_clear_error(
        lambda: TrainConfig(patience=patience).validate(), "patience", f"TrainConfig(patience={patience!r})"
    )


@SETTINGS
@given(
    state_shape=st.sampled_from([(4,), (3, 1), (4, 2), (1, 3, 1), (2, 4, 1)]),
    which=st.sampled_from(["h", "c"]),
)
def test_notebook_forward_state_shapes(state_shape, which):
    model = rnnreg.RegularizedLSTM(7, 4, seed=0)
    x, y = rnnreg.generate_simple_dataset(5, 7, 1, seed=0)
    states = {"h": np.zeros((4, 1)), "c": np.zeros((4, 1))}
    states[which] = np.zeros(state_shape)
    _expect_clear_error(
        lambda: model.forward(x[0], y[0], states["h"], states["c"]),
        which,
        f"forward({which} shape {state_shape})",
    )


@SETTINGS
@given(
    weights=st.one_of(
        st.just(None),
        st.just(3.0),
        st.just([np.array([np.nan])]),
        st.just([np.array([1, 2])]),
        st.just([np.array([])]),
    ),
    weight_decay=st.one_of(st.just(0.1), st.floats(max_value=-1e-9), st.just(float("nan")), st.just("0.1")),
)
def test_l2_penalty_arguments(weights, weight_decay):
    def call():
        return rnnreg.regularized_loss(0.5, weights, weight_decay)

    if isinstance(weight_decay, float) and weight_decay == 0.1 and weights is None:
        _expect_clear_error(call, "weights", "weights=None")
    elif not (isinstance(weight_decay, float) and weight_decay == 0.1):
        _expect_clear_error(call, "weight_decay", f"weight_decay={weight_decay!r}")
    elif weights is not None:
        _expect_clear_error(call, "weights", f"weights={weights!r}")


def _more_bad_calls():
    from rnnreg.optim import SGD, Adam, AdamW, clip_grad_norm
    from rnnreg.training import fit

    ok = {"w": np.ones((2, 2))}
    model = rnnreg.RegularizedLSTM(7, 4, seed=0)
    x, y = rnnreg.generate_simple_dataset(5, 7, 4, seed=0)
    return [
        ("plot_learning_curves([])", lambda: rnnreg.plot_learning_curves([]), "train_losses"),
        (
            "plot_learning_curves(val 2-D)",
            lambda: rnnreg.plot_learning_curves([1, 2], [[1, 2]]),
            "val_losses",
        ),
        ("plot_regularization_comparison({})", lambda: rnnreg.plot_regularization_comparison({}), "results"),
        ("plot_weight_distributions({})", lambda: rnnreg.plot_weight_distributions({}), "weights"),
        ("SGD({})", lambda: SGD({}), "params"),
        ("SGD(int params)", lambda: SGD({"w": np.ones(3, int)}), "params"),
        ("SGD(lr=0)", lambda: SGD(ok, lr=0), "lr"),
        ("SGD(momentum=1)", lambda: SGD(ok, momentum=1.0), "momentum"),
        ("Adam(betas)", lambda: Adam(ok, betas=(1.0, 0.9)), "betas"),
        ("AdamW(weight_decay=-1)", lambda: AdamW(ok, weight_decay=-1), "weight_decay"),
        ("Adam(decay unknown)", lambda: Adam(ok, decay=["nope"]), "decay"),
        ("step(missing grads)", lambda: SGD(ok).step({}), "grads"),
        ("clip_grad_norm(max_norm=0)", lambda: clip_grad_norm({"w": np.ones(2)}, 0), "max_norm"),
        (
            "fit(token out of range)",
            lambda: fit(model, (x + 7, y), None, TrainConfig(progress=False), log=None),
            "train",
        ),
        (
            "fit(shape mismatch)",
            lambda: fit(model, (x, y[:, :3]), None, TrainConfig(progress=False), log=None),
            "train",
        ),
        (
            "fit(patience without val)",
            lambda: fit(model, (x, y), None, TrainConfig(patience=2, progress=False), log=None),
            "val",
        ),
        ("TrainConfig(optimizer)", lambda: TrainConfig(optimizer="rmsprop").validate(), "optimizer"),
        ("TrainConfig(bptt=0)", lambda: TrainConfig(bptt=0).validate(), "bptt"),
        ("dropout_mask(shape 0)", lambda: rnnreg.dropout_mask((3, 0), 0.5), "shape"),
        ("dropout_mask(dtype)", lambda: rnnreg.dropout_mask((3,), 0.5, dtype=int), "dtype"),
        ("dropout_forward(rng)", lambda: rnnreg.dropout_forward(np.ones(3), 0.5, rng="x"), "rng"),
        (
            "layer_norm_forward(eps=0)",
            lambda: rnnreg.layer_norm_forward(np.ones((2, 3)), np.ones(3), np.zeros(3), eps=0),
            "eps",
        ),
        ("lstm_backward(cache)", lambda: rnnreg.lstm_backward(np.ones((1, 1, 1)), {}), "cache"),
        (
            "load_state_dict(shape)",
            lambda: model.load_state_dict({**model.state_dict(), "by": np.ones(3)}),
            "state",
        ),
        ("forward_batch(state)", lambda: model.forward_batch(x, y, state=(1, 2)), "state"),
        (
            "backward(dc_final shape)",
            lambda: (model.forward_batch(x, y), model.backward(dc_final=np.zeros((1, 3, 4))))[1],
            "dc_final",
        ),
        ("regularized_loss(nan)", lambda: rnnreg.regularized_loss(float("nan"), [], 0.1), "model_loss"),
        ("EarlyStoppingMonitor.check(str)", lambda: rnnreg.EarlyStoppingMonitor().check("1", 0), "val_loss"),
        ("EarlyStoppingMonitor.check(epoch)", lambda: rnnreg.EarlyStoppingMonitor().check(1.0, -1), "epoch"),
        (
            "generate_simple_dataset(noise)",
            lambda: rnnreg.generate_simple_dataset(3, 5, 2, noise=2.0),
            "noise",
        ),
    ]


@pytest.mark.parametrize("label, call, name", _more_bad_calls(), ids=[c[0] for c in _more_bad_calls()])
def test_the_rest_of_the_api(label, call, name):
    _expect_clear_error(call, name, label)


# ----------------------------------------------------------------------------- no silent NaN
finite_big = st.floats(min_value=-1e300, max_value=1e300, allow_nan=False, allow_infinity=False)


@SETTINGS
@given(
    data=st.data(),
    scale=st.sampled_from([1.0, 1e10, 1e100, 1e200, 1e300]),
    call_name=st.sampled_from(
        [
            "lstm_forward",
            "layer_norm_forward",
            "dropout_forward",
            "matmul",
            "lstm_backward",
            "layer_norm_backward",
        ]
    ),
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_extreme_finite_values_never_give_silent_nan(data, scale, call_name, dtype):
    """Finite inputs of any magnitude: the result is finite, or a ValueError says what overflowed."""
    fn, kwargs, arrays, _ = _calls(np.random.default_rng(3), dtype)[call_name]
    name = data.draw(st.sampled_from(arrays), label="argument")
    big = kwargs[name].astype(np.float64) * scale
    limit = np.finfo(dtype).max
    kwargs = {**kwargs, name: np.clip(big, -limit, limit).astype(dtype)}
    BAD_INPUT_STATS["tried"] += 1
    try:
        result = fn(**kwargs)
    except ValueError as exc:
        assert "overflowed" in str(exc) or "NaN or inf" in str(exc), str(exc)
        return
    for arr in _flatten(result):
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            BAD_INPUT_STATS["silent_nan"] += 1
            raise AssertionError(f"{call_name}({name} x {scale}) returned non-finite values")


# Corruptions that need no drawn index or axis: every one is tried on every argument below.
FIXED_CORRUPTIONS = [
    "int64",
    "bool",
    "float16",
    "complex128",
    "object",
    "string",
    "other_float",
    "add_axis",
    "drop_axis",
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_argument_of_every_call_refuses_every_fixed_corruption(dtype):
    """A sweep of its own (not a count of the tests above): each call, each array argument,
    each corruption that needs no drawn index; all refused with a message naming the argument."""
    tried = 0
    for call_name, (fn, kwargs, arrays, tied) in _calls(np.random.default_rng(3), dtype).items():
        for name in arrays:
            for kind in FIXED_CORRUPTIONS:
                if kind in ("add_axis", "drop_axis") and (call_name, name) in FREE_RANK:
                    continue
                bad = _corrupt(kwargs[name], kind, name in tied, None)
                if bad is None:
                    continue
                call = dict(kwargs, **{name: bad})
                _expect_clear_error(lambda fn=fn, call=call: fn(**call), name, f"{call_name}({name}={kind})")
                tried += 1
    assert tried > 150, tried
