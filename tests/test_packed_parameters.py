"""One buffer for every parameter and one for every gradient (rnnreg.parameters): a model's
params and backward's gradients are views of them; the optimizers, clipping, the L2 penalty and
the finiteness check make one compiled call over each per batch — with the bits the per-array
path gives any other dict of arrays."""

import copy
import pickle
from contextlib import contextmanager

import numpy as np
import pytest

import rnnreg
from rnnreg import _backend, _ops, _reference
from rnnreg.optim import NTASGD, SGD, Adam, AdamW, clip_grad_norm, global_norm
from rnnreg.parameters import ALIGNMENT, Packed, squared_norms

K = _backend._kernels


def _model(cell="lstm", dtype=np.float32, **settings):
    return rnnreg.model.build_model(
        vocab_size=11, hidden_size=6, num_layers=2, cell=cell, seed=3, dtype=dtype, **settings
    )


def _batch(seed=0, N=3, T=5, V=11):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))


@contextmanager
def _counted_kernels():
    """Counts of each kernel's calls within the block."""
    module, counts = _ops.kernels(), {}

    class Counting:
        def __getattr__(self, name):
            attribute = getattr(module, name)

            def call(*args, **kwargs):
                counts[name] = counts.get(name, 0) + 1
                return attribute(*args, **kwargs)

            return call if callable(attribute) else attribute

    original = _ops.kernels
    _ops.kernels = lambda: Counting()
    try:
        yield counts
    finally:
        _ops.kernels = original


# ----------------------------------------------------------------------------- the layout
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_parameter_is_an_aligned_view_of_one_buffer(cell, dtype):
    model = _model(cell, dtype, use_layer_norm=True, embedding_size=5)
    params = model.params
    buffer = params.buffer()
    assert isinstance(params, Packed) and buffer is not None and buffer.ndim == 1
    assert params.layout.names == tuple(model.params) and params.layout.dtype == dtype
    covered = np.zeros(buffer.size, bool)
    for name, p in params.items():
        assert p.base is buffer and p.flags.c_contiguous and p.dtype == dtype
        offset = p.__array_interface__["data"][0] - buffer.__array_interface__["data"][0]
        assert offset % ALIGNMENT == 0, name
        start = offset // buffer.itemsize
        assert not covered[start : start + p.size].any(), f"{name} overlaps another parameter"
        covered[start : start + p.size] = True
    assert (buffer[~covered] == 0).all()  # the padding
    grads = (model.forward_batch(*_batch(), training=True), model.backward())[1]
    assert isinstance(grads, Packed) and grads.layout == params.layout and grads.buffer() is not None
    assert (grads.buffer()[~covered] == 0).all()


def test_the_layout_is_derived_from_the_parameters_declared():
    """A parameter the model declares is in the layout, in the same order, with its shape."""
    model = _model(use_layer_norm=True, tie_weights=False)
    layout = model.params.layout
    assert dict(zip(layout.names, layout.shapes)) == {n: p.shape for n, p in model.params.items()}
    assert set(layout.names) == set(rnnreg.model.parameter_shapes(model.model_config))


# ----------------------------------------------------------------------------- the kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("module", [K, _reference], ids=["compiled", "numpy"])
def test_adam_with_decayed_ranges_is_the_per_range_calls(dtype, threads, module):
    rng = np.random.default_rng(1)
    n = 70_001  # large enough to be shared among threads
    p, g, m = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    v = np.abs(rng.standard_normal(n)).astype(dtype)
    decayed = np.array([[0, 10], [10, 10], [500, 33_333], [69_999, 70_001]], np.int64)
    a = [x.copy() for x in (p, g, m, v)]
    b = [x.copy() for x in (p, g, m, v)]
    rnnreg.set_num_threads(threads)
    try:
        module.adam_update(*a, 1e-3, 0.9, 0.999, 1e-8, 0.99, 0.01, decayed)
    finally:
        rnnreg.set_num_threads(None)
    at = 0
    for start, stop in [(0, 10), (500, 33_333), (69_999, 70_001), (n, n)]:
        for lo, hi, decay, l2 in ((at, start, 1.0, 0.0), (start, stop, 0.99, 0.01)):
            if hi > lo:
                K.adam_update(*(x[lo:hi] for x in b), 1e-3, 0.9, 0.999, 1e-8, decay, l2)
        at = stop
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("bad", [[[0, 5], [4, 8]], [[3, 2]], [[-1, 2]], [[0, 9]]])
def test_adam_refuses_ranges_that_overlap_reverse_or_leave_the_array(bad):
    p = np.zeros(8)
    for module in (K, _reference):
        with pytest.raises(ValueError):
            module.adam_update(p, p.copy(), p.copy(), p.copy(), 1e-3, 0.9, 0.999, 1e-8, 1, 0, np.array(bad))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sums_of_squares_are_those_of_the_ranges_as_arrays(dtype):
    x = np.random.default_rng(2).standard_normal(1000).astype(dtype) * 1e3
    ranges = np.array([[0, 17], [17, 1000], [3, 990], [5, 5]], np.int64)
    expected = [K.sum_of_squares(np.ascontiguousarray(x[a:b])) for a, b in ranges]
    assert K.sums_of_squares(x, ranges).tolist() == expected
    twin = [_reference.sum_of_squares(x[a:b]) for a, b in ranges]
    assert _reference.sums_of_squares(x, ranges).tolist() == twin
    np.testing.assert_allclose(expected, twin, rtol=1e-12)


@pytest.mark.parametrize("module", [K, _reference], ids=["compiled", "numpy"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_backward_kernel_writes_the_weight_gradient_into_the_given_array(module, cell):
    rng = np.random.default_rng(4)
    N, T, D, H = 3, 4, 5, 6
    G = (4 if cell == "lstm" else 3) * H
    f = lambda *s: rng.standard_normal(s)  # noqa: E731
    W = f(D + H, G)  # [Wx; Wh], as a model keeps them
    if cell == "lstm":
        cache = module.lstm_forward(f(N, T, D), f(N, H), f(N, H), W[:D], W[D:], f(G), None, None, 1e-5)
        backward = lambda dh, **kw: module.lstm_backward(dh, None, cache, **kw)  # noqa: E731
    else:
        cache = module.gru_forward(f(N, T, D), f(N, H), W[:D], W[D:], f(G), f(H))
        backward = lambda dh, **kw: module.gru_backward(dh, cache, **kw)  # noqa: E731
    dh = f(N, T, H)
    fresh = backward(dh)
    dW = np.full((D + H, G), np.nan)
    into = backward(dh, dW=dW)
    np.testing.assert_array_equal(dW, np.concatenate([fresh["dWx"], fresh["dWh"]]))
    assert np.shares_memory(into["dWx"], dW) and np.shares_memory(into["dWh"], dW)
    for name in fresh:
        if fresh[name] is not None:
            np.testing.assert_array_equal(into[name], fresh[name])
    # dh moved into a buffer whose second half dW takes: the kernel would overwrite what it reads
    raw = np.zeros(dh.size + (D + H) * G)
    moved = raw[: dh.size].reshape(dh.shape)
    moved[...] = dh
    with pytest.raises(ValueError, match="overlaps"):
        backward(moved, dW=raw[dh.size // 2 : dh.size // 2 + (D + H) * G].reshape(D + H, G))
    with pytest.raises(ValueError, match="overlaps"):  # the weights themselves
        backward(dh, dW=W)
    with pytest.raises(ValueError):
        backward(dh, dW=np.zeros((D + H + 1, G)))
    with pytest.raises(TypeError):
        backward(dh, dW=np.zeros((D + H, G), np.float32))


def test_matmul_into_out_refuses_an_out_that_overlaps_its_operands():
    a, b = np.ones((3, 4)), np.ones((4, 3))
    out = np.empty((3, 3))
    assert K.matmul(a, b, out=out) is out and (out == 4).all()
    raw = np.ones(12 + 9)
    a2 = raw[:12].reshape(3, 4)
    for module in (K, _reference):
        with pytest.raises(ValueError, match="overlaps"):
            module.matmul(a2, b, out=raw[6:15].reshape(3, 3))


# ----------------------------------------------------------------------------- the optimizers
OPTIMIZERS = {
    "sgd": lambda params, decay: SGD(params, lr=0.5, momentum=0.9, weight_decay=1e-2, decay=decay),
    "adam": lambda params, decay: Adam(params, lr=1e-2, weight_decay=1e-3, decay=decay),
    "adamw": lambda params, decay: AdamW(params, lr=1e-2, weight_decay=1e-1, decay=decay),
    "nt-asgd": lambda params, decay: NTASGD(params, lr=0.5, weight_decay=1e-3, decay=decay, nonmono=1),
}


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_packed_step_gives_the_bits_of_the_per_array_step(optimizer, cell):
    """The same model stepped twice over: through its packed buffers (one call each), and as
    a plain dict of copies with plain gradient dicts (one call per array). Every parameter and
    every norm agree bit for bit, with clipping, weight decay and NT-ASGD's average."""
    model = _model(cell, use_layer_norm=True, weight_keep_prob=0.7, input_weight_keep_prob=0.8)
    plain = {name: p.copy() for name, p in model.params.items()}
    decay = model.decay_parameter_names()
    packed_opt, plain_opt = OPTIMIZERS[optimizer](model.params, decay), OPTIMIZERS[optimizer](plain, decay)
    for step in range(6):
        if optimizer == "nt-asgd" and step == 2:  # averaging from the third step on
            for opt in (packed_opt, plain_opt):
                opt.record(1.0), opt.record(2.0), opt.record(3.0)
            assert packed_opt.averaging and plain_opt.averaging
        model.forward_batch(*_batch(step), training=True)
        grads = model.backward()
        copies = {name: g.copy() for name, g in grads.items()}
        with _counted_kernels() as counts:
            norm = clip_grad_norm(grads, 0.05)
            packed_opt.step(grads)
        assert counts.get("sums_of_squares") == 1 and "sum_of_squares" not in counts
        if optimizer in ("adam", "adamw"):
            assert counts["adam_update"] == 1
        assert norm == clip_grad_norm(copies, 0.05)
        plain_opt.step(copies)
        for name, p in model.params.items():
            np.testing.assert_array_equal(p, plain[name], err_msg=f"{name} after step {step}")
    for slot, arrays in packed_opt.state.items():
        for name, a in arrays.items():
            np.testing.assert_array_equal(a, plain_opt.state[slot][name], err_msg=f"{slot}[{name}]")
    covered = np.zeros(model.params.layout.size, bool)
    for index in range(len(model.params.layout.names)):
        covered[model.params.layout.starts[index] : model.params.layout.stop(index)] = True
    assert (model.params.buffer()[~covered] == 0).all()  # the padding stays zero


def test_a_resumed_optimizer_repacks_its_state_and_goes_on_with_the_same_bits():
    a, b = _model(), _model()
    opt_a = Adam(a.params, lr=1e-2)
    for step in range(3):
        a.forward_batch(*_batch(step), training=True)
        opt_a.step(a.backward())
    b.load_state_dict(a.state_dict())
    opt_b = Adam(b.params, lr=1e-2)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # plain dicts, as files give
    for model, opt in ((a, opt_a), (b, opt_b)):
        model.forward_batch(*_batch(9), training=True)
        opt.step(model.backward())
    assert opt_b.state["m"].buffer() is not None  # packed again after the step
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])


def test_a_parameter_replaced_by_another_array_is_still_stepped():
    """A dict that is no longer packed takes the per-array path: the new array is updated."""
    model = _model()
    opt = SGD(model.params, lr=0.1)
    model.params["b0"] = replaced = model.params["b0"].copy()
    assert model.params.buffer() is None
    model.forward_batch(*_batch(), training=True)
    grads = model.backward()
    before = replaced.copy()
    opt.step(grads)
    np.testing.assert_array_equal(replaced, before - np.float32(0.1) * grads["b0"])


@pytest.mark.parametrize("copier", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_a_copied_model_has_a_packed_buffer_of_its_own(copier):
    model = _model()
    twin = copier(model)
    assert twin.params.buffer() is not None and not np.shares_memory(
        twin.params.buffer(), model.params.buffer()
    )
    for name, p in twin.params.items():
        assert p.base is twin.params.buffer()
        np.testing.assert_array_equal(p, model.params[name])
    SGD(twin.params, lr=1.0).step(
        twin.params.layout.pack({n: np.ones_like(p) for n, p in twin.params.items()})
    )
    assert not np.array_equal(twin.params["W0"], model.params["W0"])  # stepped in the copy alone


def test_norms_and_the_penalty_are_one_call_with_the_per_array_values():
    model = _model(use_layer_norm=True)
    names = model.decay_parameter_names()
    with _counted_kernels() as counts:
        packed = squared_norms(model.params, names)
        norm = global_norm(model.params)
    assert counts == {"sums_of_squares": 2}
    assert packed == [K.sum_of_squares(model.params[n]) for n in names]
    assert norm == global_norm(dict(model.params))


def test_one_finiteness_check_covers_every_gradient(monkeypatch):
    """A non-finite value in any gradient's place — here the output bias's, which no kernel
    checks on its own — is caught by the one pass over the gradient buffer."""
    model = _model()
    head = model._head
    original = type(head).backward

    def poisoned(self, *args, **kwargs):
        grads, dtop = original(self, *args, **kwargs)
        grads["by"][3] = np.inf
        return grads, dtop

    monkeypatch.setattr(type(head), "backward", poisoned)
    model.forward_batch(*_batch(), training=True)
    with pytest.raises(rnnreg._validation.NonFiniteResult, match="backward pass"):
        model.backward()


def test_a_weight_part_that_returns_new_arrays_still_lands_in_the_gradients_place(monkeypatch):
    """The built-in weight parts scale the gradient in place; one written otherwise — returning
    new arrays for both matrices — is copied into the place, and the part after it scales the
    place, not the copy it was given."""
    from rnnreg.regularizers import InputWeightDrop, Place, WeightDrop, active_parts

    settings = dict(weight_keep_prob=0.7, input_weight_keep_prob=0.8)
    expected = _model(**settings)
    expected.forward_batch(*_batch(), training=True)
    reference = {name: g.copy() for name, g in expected.backward().items()}

    model = _model(**settings)
    order = [type(part) for part in reversed(active_parts(model.model_config, Place.WEIGHTS))]
    assert order == [InputWeightDrop, WeightDrop]  # backward: the copying part first
    monkeypatch.setattr(InputWeightDrop, "backward", lambda self, dWx, dWh, mask: (dWx * mask, dWh.copy()))
    model.forward_batch(*_batch(), training=True)
    grads = model.backward()
    assert grads.buffer() is not None
    for name in reference:
        np.testing.assert_array_equal(grads[name], reference[name], err_msg=name)
