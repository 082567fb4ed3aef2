"""The contracts every part of rnnreg agrees on, defined once.

The compiled kernels (``rnnreg._kernels``), their NumPy twins (``rnnreg._reference``), the public
wrappers (``rnnreg.functional``), the model, the optimizers and the trainer all import these
names from here; none of them spells a gate order, a layer-norm name, a saved-array shape, a
default or a dropout rule of its own.

LSTM
----
Weights follow CS231n: ``Wx (D, 4H)``, ``Wh (H, 4H)``, ``b (4H,)``; the four blocks of the 4H
axis are, in order, :data:`GATE_ORDER` = input ``i``, forget ``f``, output ``o``, candidate ``g``::

    a_t = X_t + H_t + b             X_t = x_t Wx,  H_t = (h_{t-1} * m) Wh
    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);   g = tanh(a_g)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(C_t)             C_t = c_t

``m`` is an optional recurrent-dropout mask of shape (N, H), the same at every step (Gal &
Ghahramani, 2016). With layer normalization (Ba et al., 2016) the input and recurrent projections
and the cell state are each normalized over their last axis::

    X_t = LN(x_t Wx; gamma_x, beta_x),  H_t = LN((h_{t-1} * m) Wh; gamma_h, beta_h),
    C_t = LN(c_t; gamma_c, beta_c)

while the recurrence itself carries the un-normalized ``c_t``.

Zoneout (Krueger et al., 2016) makes each unit keep its previous value at random instead of
updating it. With per-unit, per-step weights ``u_h, u_c (N, T, H)`` the step above computes the
candidates ``c~_t = f * c_{t-1} + i * g`` and ``h~_t = o * tanh(C~_t)`` (``C~_t`` = ``c~_t`` or its
layer norm), and the state it carries on is::

    c_t = u_c * c_{t-1} + (1 - u_c) * c~_t
    h_t = u_h * h_{t-1} + (1 - u_h) * h~_t

In training ``u ~ Bernoulli(z)``, 0 or 1 per unit and step, drawn by the dropout rule with
keep_prob = z (:func:`dropout_threshold`; the kernels' ``draw_mask`` with ``scaled=False``); in
evaluation ``u = z``, the expectation. ``u = 0`` everywhere is the plain LSTM exactly.

What a forward pass saves for its backward pass is an :class:`LSTMCache` (or a
:class:`LayerNormCache`): a typed, read-only object whose shapes are fixed when it is made. The
compiled backward re-checks every array it reads against those shapes with integer compares, so a
cache that was tampered with raises instead of being read out of bounds.
"""

import math
import types
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

__all__ = [
    "GATE_ORDER",
    "GRU_GATE_ORDER",
    "GRU_LAYER_NORM_PARAMS",
    "GRU_LN_SAVED",
    "GRUCache",
    "gru_cache",
    "gru_layer_norm_param_size",
    "LSTM_LAYER_NORM_PARAMS",
    "LN_SAVED",
    "DEFAULT_EPS",
    "DROPOUT_RESOLUTION",
    "dropout_threshold",
    "layer_norm_param_size",
    "ln_saved_shape",
    "initial_layer_norm",
    "is_decayed",
    "decay_parameter_names",
    "stream_geometry",
    "LSTMCache",
    "lstm_cache",
    "LayerNormCache",
    "freeze",
    "step_functions",
]

#: The order of the four gate blocks along the 4H axis of Wx, Wh and b.
GATE_ORDER = ("i", "f", "o", "g")

#: LN-LSTM parameters: gain and bias of the input projection (4H), the recurrent projection (4H)
#: and the cell state (H), in this order everywhere (kernels, caches, gradients, checkpoints).
LSTM_LAYER_NORM_PARAMS = ("gamma_x", "beta_x", "gamma_h", "beta_h", "gamma_c", "beta_c")

#: What an LN-LSTM forward saves besides the plain arrays: for each normalized quantity its
#: normalized value ``xhat`` (N, T, width) and reciprocal standard deviation ``rstd`` (N, T).
LN_SAVED = ("xhat_x", "rstd_x", "xhat_h", "rstd_h", "xhat_c", "rstd_c")

#: Layer norm's variance floor, the default of every function that takes ``eps``.
DEFAULT_EPS = 1e-5


def layer_norm_param_size(name, hidden_size):
    """The length of LN-LSTM parameter ``name``: H for the cell's, 4H for the projections'."""
    if name not in LSTM_LAYER_NORM_PARAMS:
        raise KeyError(name)
    return hidden_size if name.endswith("_c") else 4 * hidden_size


def initial_layer_norm(names, size_of, hidden_size, dtype=np.float64):
    """Layer-norm parameters at their start (Ba et al., 2016): every ``gamma*`` ones, every
    ``beta*`` zeros, ``size_of(name, hidden_size)`` long — a cell's, by its names and sizes."""
    return {
        name: (np.ones if name.startswith("gamma") else np.zeros)(size_of(name, hidden_size), dtype)
        for name in names
    }


def ln_saved_shape(name, N, T, H):
    """The shape of saved LN array ``name`` for a batch of N sequences of T steps, hidden H."""
    if name.startswith("rstd"):
        return (N, T)
    return (N, T, H if name.endswith("_c") else 4 * H)


# ----------------------------------------------------------------------------- dropout
#: Dropout compares 16-bit uniforms with a threshold: keep_prob is resolved to 1/65536.
DROPOUT_RESOLUTION = 1 << 16


def dropout_threshold(keep_prob):
    """keep_prob as a count of 16-bit values: an element is kept when its 16-bit uniform is
    below it. Rounded to the nearest 1/65536, and at least 1 so that something is kept.

    The mask rule both backends follow: each 64-bit draw of the generator serves four elements;
    element k is kept when bits 16*(k % 4) .. 16*(k % 4) + 15 of draw k // 4 are below this
    threshold, and a kept element is scaled by 1 / keep_prob."""
    return max(1, min(DROPOUT_RESOLUTION, int(round(keep_prob * DROPOUT_RESOLUTION))))


# ----------------------------------------------------------------------------- weight decay
def is_decayed(array):
    """The weight-decay rule: weight matrices (2 or more axes) are decayed; biases and layer-norm
    gains and biases (1 axis) never are."""
    return np.ndim(array) >= 2


def decay_parameter_names(params):
    """The names in a dict name -> array that weight decay applies to, in the dict's order."""
    return [name for name, p in params.items() if is_decayed(p)]


# ----------------------------------------------------------------------------- batches
def stream_geometry(num_tokens, batch_size):
    """How a 1-D token stream of ``num_tokens`` is cut into parallel streams for truncated BPTT:
    returns ``(streams, length)`` — ``streams`` rows of ``length`` inputs each (the targets are the
    same rows shifted by one token). At most half the usable tokens become streams, so every
    stream has at least two steps."""
    streams = max(1, min(batch_size, (num_tokens - 1) // 2))
    return streams, (num_tokens - 1) // streams


# ----------------------------------------------------------------------------- caches
def freeze(*arrays):
    """Mark arrays a forward pass has just made read-only (in place: they are its own)."""
    for arr in arrays:
        arr.flags.writeable = False


def _shape_error(label, arr, shape, dtype, made_by):
    got = (
        f"shape {arr.shape} and dtype {arr.dtype}"
        if isinstance(arr, np.ndarray)
        else f"a {type(arr).__name__}"
    )
    return ValueError(
        f"cache.{label} has {got}, expected shape {shape} and dtype {dtype}: the "
        f"cache was changed after {made_by} made it"
    )


def _field(cache, key, extra=()):
    """``cache["name"]`` reads field (or property in ``extra``) ``name``, the form of earlier
    releases' dict caches; an integer indexes the tuple as usual."""
    if isinstance(key, str):
        if key not in cache._fields and key not in extra:
            raise KeyError(f"{type(cache).__name__} has no field {key!r}")
        return getattr(cache, key)
    return tuple.__getitem__(cache, key)


# One-hot inputs reach the LSTM functions as token ids: x (N, T) of TOKEN_DTYPE, each in [0, D)
# where D is the number of rows of Wx. The input projection is then a gather of rows of Wx (the
# same numbers as the one-hot product, exactly: every other term is an exact zero) and its
# gradient a scatter-add of rows in row order; there is no input gradient.
TOKEN_DTYPE = np.dtype(np.int64)


def is_token_input(x):
    """Whether x is meant as token ids: a 2-axis ndarray of integers (checked further by
    check_token_input; anything else is the float input (N, T, D))."""
    return isinstance(x, np.ndarray) and x.ndim == 2 and x.dtype.kind in "iu"


def check_token_input(x, D, name="x"):
    """Raise unless x is a TOKEN_DTYPE array of ids in [0, D)."""
    if x.dtype != TOKEN_DTYPE:
        raise TypeError(f"{name}: token ids must be {TOKEN_DTYPE}, got {x.dtype}")
    if x.size and (int(x.min()) < 0 or int(x.max()) >= D):
        raise ValueError(
            f"{name}: token ids must lie in [0, {D}) (the rows of Wx), got ids "
            f"from {int(x.min())} to {int(x.max())}"
        )


def _check_fields(cache, made_by):
    """A sequence cache's check (LSTMCache, GRUCache): every array of ``expected_shapes()`` is
    there, of that shape and of the pass's dtype (token ids: TOKEN_DTYPE, each in range), the
    layer-norm mappings both present or both absent, eps a finite float > 0. Returns the cache."""
    if (cache.layer_norm is None) != (cache.ln_saved is None):
        raise ValueError("cache.layer_norm and cache.ln_saved must both be None or both set")
    dtype = cache.h0.dtype if isinstance(cache.h0, np.ndarray) else None
    if cache.tokens:
        check_token_input(cache.x, cache.D, "cache.x")
    layer_norm, ln_saved = cache.layer_norm or {}, cache.ln_saved or {}
    for label, shape in cache.expected_shapes().items():
        if label.startswith("layer_norm["):
            arr = layer_norm.get(label[12:-2])
        elif label.startswith("ln_saved["):
            arr = ln_saved.get(label[10:-2])
        else:
            arr = getattr(cache, label)
        wanted = TOKEN_DTYPE if label == "x" and cache.tokens else dtype
        if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != wanted:
            raise _shape_error(label, arr, shape, wanted, made_by)
    if not (isinstance(cache.eps, float) and math.isfinite(cache.eps) and cache.eps > 0):
        raise ValueError(f"cache.eps must be a finite float > 0, got {cache.eps!r}")
    return cache


class LSTMCache(NamedTuple):
    """What an LSTM forward pass saves for its backward pass.

    Made by ``lstm_forward`` (either backend) and read by ``lstm_backward``. A tuple, so its fields
    cannot be reassigned; the arrays the forward pass computed are read-only; the dimensions
    ``N, T, D, H`` are recorded when it is made. :meth:`check` compares every array with them,
    and the compiled backward compares them again, on the arrays' real dimensions, before it
    reads anything — a cache that was tampered with raises instead of being read out of bounds.

    Fields: the inputs ``x (N, T, D), h0, c0 (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,)``,
    ``layer_norm`` (None or a read-only mapping of the :data:`LSTM_LAYER_NORM_PARAMS`),
    ``recurrent_mask`` (None or (N, H)), ``eps``; computed: ``hprev, c, tc, h (N, T, H)`` (the
    masked recurrent input, the cell state, tanh of the (normalized) cell state, the output) and
    ``gates (N, T, 4H)`` (activated, in :data:`GATE_ORDER`); ``ln_saved``: None or a read-only
    mapping of the saved layer-norm arrays (``_conventions.LN_SAVED``); ``zoneout_h``,
    ``zoneout_c``: None or the zoneout weights (N, T, H) of the pass (with zoneout, ``c`` and
    ``h`` are the zoned states).
    ``cache["h"]`` reads a field by name too.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import lstm_forward
    >>> rng = np.random.default_rng(0)
    >>> h, cache = lstm_forward(rng.standard_normal((2, 5, 3)), np.zeros((2, 4)),
    ...                         rng.standard_normal((3, 16)), rng.standard_normal((4, 16)),
    ...                         np.zeros(16))
    >>> (cache.N, cache.T, cache.D, cache.H), cache.gates.shape, cache["h"] is cache.h
    ((2, 5, 3, 4), (2, 5, 16), True)
    >>> cache.h.flags.writeable
    False
    """

    x: np.ndarray
    h0: np.ndarray
    c0: np.ndarray
    Wx: np.ndarray
    Wh: np.ndarray
    b: np.ndarray
    layer_norm: Mapping[str, np.ndarray] | None
    recurrent_mask: np.ndarray | None
    eps: float
    hprev: np.ndarray
    gates: np.ndarray
    c: np.ndarray
    tc: np.ndarray
    h: np.ndarray
    ln_saved: Mapping[str, np.ndarray] | None
    N: int
    T: int
    D: int
    H: int
    zoneout_h: np.ndarray | None = None
    zoneout_c: np.ndarray | None = None

    def __getitem__(self, key):
        return _field(self, key, extra=("c_final",))

    @property
    def c_final(self):
        """The final cell state, ``c[:, -1]`` (N, H)."""
        return self.c[:, -1]

    @property
    def dtype(self):
        """The float dtype of the pass (h0's: x may hold token ids)."""
        return self.h0.dtype

    @property
    def tokens(self):
        """Whether x holds token ids (N, T) in [0, D): one-hot inputs, never built as vectors."""
        return is_token_input(self.x)

    def expected_shapes(self):
        """label -> shape of every array field (layer-norm ones labelled ``layer_norm['name']``
        and ``ln_saved['name']``), from the dimensions recorded at creation."""
        N, T, D, H = self.N, self.T, self.D, self.H
        shapes = {
            "x": (N, T) if self.tokens else (N, T, D),
            "h0": (N, H),
            "c0": (N, H),
            "Wx": (D, 4 * H),
            "Wh": (H, 4 * H),
            "b": (4 * H,),
            "hprev": (N, T, H),
            "gates": (N, T, 4 * H),
            "c": (N, T, H),
            "tc": (N, T, H),
            "h": (N, T, H),
        }
        if self.recurrent_mask is not None:
            shapes["recurrent_mask"] = (N, H)
        for name in ("zoneout_h", "zoneout_c"):
            if getattr(self, name) is not None:
                shapes[name] = (N, T, H)
        if self.layer_norm is not None:
            for name in LSTM_LAYER_NORM_PARAMS:
                shapes[f"layer_norm[{name!r}]"] = (layer_norm_param_size(name, H),)
        if self.ln_saved is not None:
            for name in LN_SAVED:
                shapes[f"ln_saved[{name!r}]"] = ln_saved_shape(name, N, T, H)
        return shapes

    def check(self):
        """Raise ValueError naming the first field that no longer agrees with the dimensions
        recorded at creation (shape, dtype, or not an array at all); returns the cache."""
        return _check_fields(self, "lstm_forward")

    def __repr__(self):
        extras = "".join(
            f", {name}"
            for name in ("layer_norm", "recurrent_mask", "zoneout_h", "zoneout_c")
            if getattr(self, name) is not None
        )
        return f"LSTMCache(N={self.N}, T={self.T}, D={self.D}, H={self.H}{extras})"


def lstm_cache(
    x,
    h0,
    c0,
    Wx,
    Wh,
    b,
    layer_norm,
    recurrent_mask,
    eps,
    hprev,
    gates,
    c,
    tc,
    h,
    ln_saved=None,
    zoneout_h=None,
    zoneout_c=None,
):
    """An :class:`LSTMCache` from a forward pass's arguments and the arrays it made (which
    become read-only); the dimensions are read from x and Wh."""
    freeze(hprev, gates, c, tc, h)
    if ln_saved is not None:
        freeze(*ln_saved.values())
        ln_saved = types.MappingProxyType(dict(ln_saved))
    if layer_norm is not None:
        layer_norm = types.MappingProxyType({k: layer_norm[k] for k in LSTM_LAYER_NORM_PARAMS})
    N, T = x.shape[:2]
    D = Wx.shape[0]
    return LSTMCache(
        x,
        h0,
        c0,
        Wx,
        Wh,
        b,
        layer_norm,
        recurrent_mask,
        float(eps),
        hprev,
        gates,
        c,
        tc,
        h,
        ln_saved,
        N,
        T,
        D,
        Wh.shape[0],
        zoneout_h,
        zoneout_c,
    )


class LayerNormCache(NamedTuple):
    """What :func:`rnnreg.layer_norm_forward` saves for its backward pass: ``xhat (M, F)`` and
    ``rstd (M,)`` (read-only), the ``gamma (F,)`` used, and the ``shape`` of the forward input
    (any leading axes, flattened to M rows of F features). ``cache["xhat"]`` works too.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import layer_norm_forward
    >>> out, cache = layer_norm_forward(np.ones((2, 3, 4)), np.ones(4), np.zeros(4))
    >>> cache.xhat.shape, cache.rstd.shape, cache.shape
    ((6, 4), (6,), (2, 3, 4))
    """

    xhat: np.ndarray
    rstd: np.ndarray
    gamma: np.ndarray
    shape: tuple[int, ...]

    def __getitem__(self, key):
        return _field(self, key)

    def check(self):
        """Raise ValueError unless the arrays still agree with ``shape``; returns the cache."""
        if not (
            isinstance(self.shape, tuple)
            and self.shape
            and all(isinstance(s, int) and s > 0 for s in self.shape)
        ):
            raise ValueError(f"cache.shape must be the forward input's shape, got {self.shape!r}")
        F, M = self.shape[-1], math.prod(self.shape[:-1])
        dtype = self.xhat.dtype if isinstance(self.xhat, np.ndarray) else None
        for label, shape in (("xhat", (M, F)), ("rstd", (M,)), ("gamma", (F,))):
            arr = getattr(self, label)
            if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != dtype:
                raise _shape_error(label, arr, shape, dtype, "layer_norm_forward")
        return self


# ----------------------------------------------------------------------------- step functions
def step_functions(sequence_forward, sequence_backward):
    """A backend's ``lstm_step_forward`` and ``lstm_step_backward``: its sequence functions with
    T = 1 (CS231n's one-step interface)."""

    def as_sequence(arr, name):
        """arr (N, F) as (N, 1, F) for the sequence functions (which check everything else)."""
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(arr).__name__}")
        if arr.ndim != 2:
            raise ValueError(f"{name} must have 2 axes, got {arr.ndim}")
        return arr[:, None, :]

    def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
        """One time step: x (N, D) -> (next_h, next_c, cache); the sequence function, T = 1."""
        cache = sequence_forward(as_sequence(x, "x"), prev_h, prev_c, Wx, Wh, b, None, None, DEFAULT_EPS)
        return cache.h[:, 0], cache.c[:, 0], cache

    def lstm_step_backward(dnext_h, dnext_c, cache):
        """-> (dx, dprev_h, dprev_c, dWx, dWh, db) for one step."""
        if not isinstance(cache, LSTMCache) or cache.T != 1:
            raise TypeError(f"cache must be the cache returned by lstm_step_forward, got {cache!r}")
        grads = sequence_backward(as_sequence(dnext_h, "dnext_h"), dnext_c, cache)
        return (grads["dx"][:, 0], grads["dh0"], grads["dc0"], grads["dWx"], grads["dWh"], grads["db"])

    return lstm_step_forward, lstm_step_backward


# ----------------------------------------------------------------------------- GRU
#: The order of the three gate blocks along the 3H axis of a GRU's Wx, Wh and b: reset ``r``,
#: update ``z``, candidate ``n`` — PyTorch's ``nn.GRU`` order.
GRU_GATE_ORDER = ("r", "z", "n")
#: LN-GRU parameters: gain and bias of the input projection and of the recurrent projection (3H
#: each), in this order everywhere (kernels, caches, gradients, checkpoints).
GRU_LAYER_NORM_PARAMS = ("gamma_x", "beta_x", "gamma_h", "beta_h")
#: What an LN-GRU forward saves besides the plain arrays: each projection's normalized value
#: ``xhat`` (N, T, 3H) and reciprocal standard deviation ``rstd`` (N, T).
GRU_LN_SAVED = ("xhat_x", "rstd_x", "xhat_h", "rstd_h")
# The GRU (Cho et al. 2014), in PyTorch's and Keras's default convention (the reset gate applied
# after the recurrent product; Cho et al.'s original applies it before — not offered):
#
#     X_t = x_t Wx,   R_t = h' Wh                       (h' = h_{t-1} * m)
#     r = sigmoid(X_r + R_r + b_r),   z = sigmoid(X_z + R_z + b_z)
#     n = tanh(X_n + b_n + r * (R_n + bn))
#     h~ = (1 - z) * n + z * h_{t-1}
#     h_t = u * h_{t-1} + (1 - u) * h~          (zoneout weights u; u = 0: the plain GRU)
#
# m is the recurrent mask (one per sequence; m = 1 without it). ``b`` (3H,) is the sum of
# PyTorch's two biases for r and z and its input bias for n; ``bn`` (H,) its recurrent bias of n,
# which the reset gate multiplies and so cannot be folded into ``b``. The LN-GRU (layer
# normalization, Ba et al. 2016, applied as they apply it to the LSTM: each projection normalized
# over its 3H units, before the gates) replaces the two projections with
#
#     X_t = LN(x_t Wx; gamma_x, beta_x),   R_t = LN(h' Wh; gamma_h, beta_h)
#
# and keeps everything else (the reset gate scales the normalized R_n + bn).


def gru_layer_norm_param_size(name, hidden_size):
    """The length of LN-GRU parameter ``name``: 3H, every one."""
    if name not in GRU_LAYER_NORM_PARAMS:
        raise KeyError(name)
    return 3 * hidden_size


class GRUCache(NamedTuple):
    """What a GRU forward pass saves for its backward pass (made by ``gru_forward``, either
    backend; read and checked again by ``gru_backward``), like :class:`LSTMCache`.

    Fields: the inputs ``x (N, T, D)`` (or token ids (N, T)), ``h0 (N, H)``, ``Wx (D, 3H)``,
    ``Wh (H, 3H)``, ``b (3H,)``, ``bn (H,)``, ``layer_norm`` (None or a read-only mapping of the
    :data:`GRU_LAYER_NORM_PARAMS`), ``recurrent_mask`` (None or (N, H)), ``eps``, ``zoneout_h``
    (None or (N, T, H)); computed: ``hprev (N, T, H)`` (the masked recurrent input), ``gates (N,
    T, 3H)`` (r, z, n activated), ``hn (N, T, H)`` (``R_n + bn``, which the reset gate scales),
    ``h (N, T, H)`` (the output) and ``ln_saved`` (None or the ``GRU_LN_SAVED`` arrays).

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import gru_forward
    >>> rng = np.random.default_rng(0)
    >>> h, cache = gru_forward(rng.standard_normal((2, 5, 3)), np.zeros((2, 4)),
    ...                        rng.standard_normal((3, 12)), rng.standard_normal((4, 12)),
    ...                        np.zeros(12), np.zeros(4))
    >>> cache, cache.gates.shape, cache.h.flags.writeable
    (GRUCache(N=2, T=5, D=3, H=4), (2, 5, 12), False)
    """

    x: np.ndarray
    h0: np.ndarray
    Wx: np.ndarray
    Wh: np.ndarray
    b: np.ndarray
    bn: np.ndarray
    layer_norm: Mapping[str, np.ndarray] | None
    recurrent_mask: np.ndarray | None
    eps: float
    zoneout_h: np.ndarray | None
    hprev: np.ndarray
    gates: np.ndarray
    hn: np.ndarray
    h: np.ndarray
    ln_saved: Mapping[str, np.ndarray] | None
    N: int
    T: int
    D: int
    H: int

    def __getitem__(self, key):
        return _field(self, key)

    @property
    def dtype(self):
        return self.h0.dtype

    @property
    def tokens(self):
        return is_token_input(self.x)

    def expected_shapes(self):
        """label -> shape of every array field, from the dimensions recorded at creation."""
        N, T, D, H = self.N, self.T, self.D, self.H
        shapes = {
            "x": (N, T) if self.tokens else (N, T, D),
            "h0": (N, H),
            "Wx": (D, 3 * H),
            "Wh": (H, 3 * H),
            "b": (3 * H,),
            "bn": (H,),
            "hprev": (N, T, H),
            "gates": (N, T, 3 * H),
            "hn": (N, T, H),
            "h": (N, T, H),
        }
        if self.recurrent_mask is not None:
            shapes["recurrent_mask"] = (N, H)
        if self.zoneout_h is not None:
            shapes["zoneout_h"] = (N, T, H)
        if self.layer_norm is not None:
            for name in GRU_LAYER_NORM_PARAMS:
                shapes[f"layer_norm[{name!r}]"] = (3 * H,)
        if self.ln_saved is not None:
            for name in GRU_LN_SAVED:
                shapes[f"ln_saved[{name!r}]"] = (N, T) if name.startswith("rstd") else (N, T, 3 * H)
        return shapes

    def check(self):
        """Raise ValueError naming the first array that no longer agrees with the dimensions
        recorded at creation; returns the cache."""
        return _check_fields(self, "gru_forward")

    def __repr__(self):
        extras = "".join(
            f", {name}"
            for name in ("layer_norm", "recurrent_mask", "zoneout_h")
            if getattr(self, name) is not None
        )
        return f"GRUCache(N={self.N}, T={self.T}, D={self.D}, H={self.H}{extras})"


def gru_cache(
    x, h0, Wx, Wh, b, bn, layer_norm, recurrent_mask, eps, zoneout_h, hprev, gates, hn, h, ln_saved
):
    """A :class:`GRUCache` from a forward pass's arguments and the arrays it made (which become
    read-only); the dimensions are read from x and Wh."""
    freeze(hprev, gates, hn, h)
    if ln_saved is not None:
        freeze(*ln_saved.values())
        ln_saved = types.MappingProxyType(dict(ln_saved))
    if layer_norm is not None:
        layer_norm = types.MappingProxyType({k: layer_norm[k] for k in GRU_LAYER_NORM_PARAMS})
    N, T = x.shape[:2]
    return GRUCache(
        x,
        h0,
        Wx,
        Wh,
        b,
        bn,
        layer_norm,
        recurrent_mask,
        float(eps),
        zoneout_h,
        hprev,
        gates,
        hn,
        h,
        ln_saved,
        N,
        T,
        Wx.shape[0],
        Wh.shape[0],
    )
