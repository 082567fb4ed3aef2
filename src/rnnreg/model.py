"""RegularizedLSTM: a token-level LSTM language model on the sequence kernels.

Architecture::

    tokens (N, T) -> one-hot (V) or embedding (E) -> [input dropout]
                  -> LSTM layer 1 -> [dropout] -> ... -> LSTM layer L -> [output dropout]
                  -> logits = h @ Why + by -> softmax cross-entropy, mean over N*T tokens

Regularizers, each switchable (a keep probability of 1 turns one off):

* ``dropout_keep_prob``: non-recurrent dropout on the input embeddings, between layers and on the
  output (Zaremba et al., 2014) — it works with one layer too. One-hot inputs are not dropped
  (that would drop whole tokens). ``variational=True`` draws one mask per
  sequence and reuses it at every step (locked / variational dropout, Gal & Ghahramani 2016).
* ``recurrent_keep_prob``: a mask on h(t-1) inside the recurrence, the same at every step.
* ``weight_keep_prob``: weight-drop (DropConnect) on every hidden-to-hidden matrix Wh, one mask
  per forward pass (Merity et al., 2017).
* ``use_layer_norm``: the LN-LSTM cell (Ba et al., 2016).
* ``zoneout_hidden``, ``zoneout_cell``: zoneout (Krueger et al., 2016) of h and c, inside the
  compiled time loop: in training each unit keeps its previous value with probability z,
  ``h_t = d * h_{t-1} + (1 - d) * h~_t``, ``d ~ Bernoulli(z)`` per unit and step (likewise c); in
  evaluation the expectation ``z * h_{t-1} + (1 - z) * h~_t``.
* AWD-LSTM's (Merity, Keskar & Socher, 2017), besides weight-drop and variational dropout:
  ``embedding_keep_prob`` (embedding dropout: whole rows of the embedding matrix dropped per
  batch, kept rows scaled by 1/keep), ``activation_reg`` α (AR, ``α · mean((m * h_t)²)`` on the
  last layer's dropped output), ``temporal_activation_reg`` β (TAR, ``β · mean((h_t − h_{t−1})²)``
  on its output before dropout), ``tie_weights`` (the output projection is the embedding
  matrix transposed: one parameter). NT-ASGD and variable-length BPTT live in the trainer.
* weight decay and early stopping live in the optimizer and the trainer.

Every random draw comes from the model's own ``np.random.Generator`` (``seed``).
"""
import numpy as np
from numpy.typing import ArrayLike, NDArray
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from . import _ops
from . import _validation as v
from ._conventions import (DEFAULT_EPS, GATE_ORDER, LSTM_LAYER_NORM_PARAMS, TOKEN_DTYPE,
                           decay_parameter_names, layer_norm_param_size)
from .init import DEFAULT_FORGET_BIAS, DEFAULT_INIT, INIT_SCHEMES, initial_parameters

__all__ = ["RegularizedLSTM", "parameter_shapes", "config_parameter_shapes"]


def _next_token(logits, temperature, top_k, top_p, greedy, rng):
    """One token from a row of logits: the most likely (greedy), or a draw from softmax(logits /
    temperature) restricted to the top_k most likely, then to the smallest most-likely set whose
    probability reaches top_p."""
    scores = logits.astype(np.float64)
    if greedy:
        return int(np.argmax(scores))
    scores = scores / temperature
    if top_k is not None and top_k < scores.size:
        cut = np.partition(scores, -top_k)[-top_k]
        scores = np.where(scores >= cut, scores, -np.inf)
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        keep = order[:int(np.searchsorted(cumulative, top_p)) + 1]   # reaches top_p
        kept = np.zeros_like(probs)
        kept[keep] = probs[keep]
        probs = kept / kept.sum()
    return int(rng.choice(probs.size, p=probs))


def config_parameter_shapes(config):
    """The parameter shapes of ``RegularizedLSTM(**config)`` from its sizes alone, with the
    constructor's defaults (``output_size`` = ``vocab_size``; with ``tie_weights``,
    ``embedding_size`` = ``hidden_size``), without building the model — what load_model checks a
    file's declared weights against first. Raises ValueError or TypeError for sizes that are
    not positive ints."""
    sizes = {"vocab_size": config.get("vocab_size"), "hidden_size": config.get("hidden_size"),
             "num_layers": config.get("num_layers", 1)}
    sizes["output_size"] = config.get("output_size") or sizes["vocab_size"]
    sizes["embedding_size"] = config.get("embedding_size")
    if config.get("tie_weights") and sizes["embedding_size"] is None:
        sizes["embedding_size"] = sizes["hidden_size"]
    for key, value in sizes.items():
        if value is None and key == "embedding_size":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
            raise ValueError(f"{key} must be a positive int, got {value!r}")
    if sizes["num_layers"] > 1024:
        raise ValueError(f"num_layers {sizes['num_layers']} is not a model rnnreg builds")
    return parameter_shapes(sizes["vocab_size"], sizes["hidden_size"], sizes["output_size"],
                            sizes["num_layers"], sizes["embedding_size"],
                            bool(config.get("use_layer_norm")), bool(config.get("tie_weights")))


def parameter_shapes(vocab_size, hidden_size, output_size, num_layers, embedding_size,
                     use_layer_norm, tie_weights):
    """name -> shape of every parameter of a model of these sizes, in the model's order, computed
    without allocating any (a file's declared model is checked against it before it is built)."""
    H = hidden_size
    shapes = {}
    if embedding_size is not None:
        shapes["embedding"] = (vocab_size, embedding_size)
    for layer in range(num_layers):
        D = H if layer > 0 else (vocab_size if embedding_size is None else embedding_size)
        shapes[f"W{layer}"], shapes[f"b{layer}"] = (D + H, 4 * H), (4 * H,)
        if use_layer_norm:
            for name in LSTM_LAYER_NORM_PARAMS:
                shapes[f"ln{layer}.{name}"] = (layer_norm_param_size(name, H),)
    if not tie_weights:
        shapes["Why"] = (H, output_size)
    shapes["by"] = (output_size,)
    return shapes


# The model calls the kernels through rnnreg._ops (not the public functions): its inputs (token
# ids, states) are validated on the way in, and its parameters are compared with the shapes and
# dtype they were created with at every forward pass (a few integer compares: `params` is a plain
# dict anyone can assign into), so the public wrappers' checks would only repeat themselves on
# every step. The kernels check sizes once more themselves; results are still checked for
# overflow.


def _matmul(a, b, trans_a=False, trans_b=False):
    out = _ops.kernels().matmul(a, b, trans_a, trans_b)
    return v.finite_result(out, "the model's output projection", "the weights or activations")


class RegularizedLSTM:
    """An LSTM language model with dropout, layer norm and weight-drop built in.

    Parameters
    ----------
    vocab_size : int
        Number of input tokens.
    hidden_size : int
    output_size : int, optional
        Number of output classes (default: vocab_size).
    dropout_keep_prob : float in (0, 1]
        Keep probability of non-recurrent dropout (embeddings, between layers, output).
    use_layer_norm : bool
        Use LN-LSTM cells.
    num_layers : int
    embedding_size : int, optional
        Learn an embedding of this size; None feeds one-hot vectors.
    recurrent_keep_prob : float in (0, 1]
        Keep probability of the mask on h(t-1) (variational recurrent dropout).
    weight_keep_prob : float in (0, 1]
        Keep probability of weight-drop on the hidden-to-hidden matrices.
    variational : bool
        Reuse one non-recurrent dropout mask at every time step of a sequence.
    seed : int, np.random.Generator or None
        Source of the initial weights and of every dropout mask.
    dtype : float32 or float64
    init : {"uniform", "pytorch", "keras"}
        How the initial weights are drawn (see :func:`rnnreg.init.initial_parameters`):
        rnnreg's uniform(±1/√H) scheme, PyTorch's ``nn.LSTM``/``nn.Linear`` defaults, or
        Keras's (Glorot input weights, orthogonal recurrent weights, zero biases).
    forget_bias : float, optional
        Added to the forget-gate bias of every layer; default: the scheme's (0 for "uniform" and
        "pytorch", 1 for "keras", i.e. ``unit_forget_bias``).
    recurrent_init : None or "orthogonal"
        "orthogonal" draws every Wh orthogonal, whatever the scheme.
    zoneout_hidden, zoneout_cell : float in [0, 1)
        Zoneout probabilities z of the hidden and of the cell state (0: off).
    embedding_keep_prob : float in (0, 1]
        Keep probability of each embedding row (embedding dropout; needs an embedding).
    activation_reg : float >= 0
        α of activation regularization (AR), added to the training loss.
    temporal_activation_reg : float >= 0
        β of temporal activation regularization (TAR), added to the training loss.
    tie_weights : bool
        Use the embedding matrix, transposed, as the output projection (no ``Why``). Needs
        ``embedding_size == hidden_size`` (default: hidden_size) and
        ``output_size == vocab_size``.

    Attributes
    ----------
    params : dict name -> ndarray
        ``W{l}`` (D_l + H, 4H) holds layer l's ``Wx`` (first D_l rows) and ``Wh`` (last H rows);
        ``b{l}`` (4H,); ``ln{l}.<name>`` for layer norm; ``embedding`` (V, E); ``Why`` (H, O); ``by``.
    grads : dict name -> ndarray
        Filled by :meth:`backward`.
    Wi, Wf, Wo, Wc : ndarray views (D + H, H) of layer 0's gate blocks ([Wx; Wh] columns);
        ``Wc`` is the candidate (g) block.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import RegularizedLSTM
    >>> model = RegularizedLSTM(vocab_size=10, hidden_size=16, dropout_keep_prob=0.8,
    ...                         use_layer_norm=True, seed=0, dtype="float32")
    >>> tokens = np.random.default_rng(0).integers(0, 10, size=(4, 7))   # (batch, time)
    >>> loss, logits, state = model.forward_batch(tokens[:, :-1], tokens[:, 1:], training=True)
    >>> logits.shape, [s.shape for s in state]
    ((4, 6, 10), [(1, 4, 16), (1, 4, 16)])
    >>> grads = model.backward()          # model.grads, one per model.params entry
    >>> sorted(grads) == sorted(model.params)
    True
    """

    def __init__(self, vocab_size, hidden_size, output_size=None, dropout_keep_prob=1.0,
                 use_layer_norm=False, *, num_layers=1, embedding_size=None,
                 recurrent_keep_prob=1.0, weight_keep_prob=1.0, variational=False, seed=None,
                 dtype=np.float64, init=DEFAULT_INIT, forget_bias=None, recurrent_init=None,
                 zoneout_hidden=0.0, zoneout_cell=0.0, embedding_keep_prob=1.0,
                 activation_reg=0.0, temporal_activation_reg=0.0, tie_weights=False):
        self.vocab_size = v.positive_int(vocab_size, "vocab_size")
        self.hidden_size = v.positive_int(hidden_size, "hidden_size")
        self.output_size = (self.vocab_size if output_size is None
                            else v.positive_int(output_size, "output_size"))
        self.num_layers = v.positive_int(num_layers, "num_layers")
        self.embedding_size = (None if embedding_size is None
                               else v.positive_int(embedding_size, "embedding_size"))
        self.dropout_keep_prob = v.probability(dropout_keep_prob, "dropout_keep_prob")
        self.recurrent_keep_prob = v.probability(recurrent_keep_prob, "recurrent_keep_prob")
        self.weight_keep_prob = v.probability(weight_keep_prob, "weight_keep_prob")
        self.zoneout_hidden = v.rate(zoneout_hidden, "zoneout_hidden")
        self.zoneout_cell = v.rate(zoneout_cell, "zoneout_cell")
        self.embedding_keep_prob = v.probability(embedding_keep_prob, "embedding_keep_prob")
        self.activation_reg = v.non_negative_float(activation_reg, "activation_reg")
        self.temporal_activation_reg = v.non_negative_float(temporal_activation_reg,
                                                            "temporal_activation_reg")
        self.tie_weights = bool(tie_weights)
        if self.tie_weights:
            if self.embedding_size is None:
                self.embedding_size = self.hidden_size
            if self.embedding_size != self.hidden_size:
                raise ValueError(
                    f"tie_weights needs embedding_size == hidden_size (the output projection is "
                    f"the embedding matrix transposed), got embedding_size={self.embedding_size}, "
                    f"hidden_size={self.hidden_size}")
            if self.output_size != self.vocab_size:
                raise ValueError(f"tie_weights needs output_size == vocab_size, got output_size="
                                 f"{self.output_size}, vocab_size={self.vocab_size}")
        if self.embedding_keep_prob < 1.0 and self.embedding_size is None:
            raise ValueError("embedding_keep_prob < 1 (embedding dropout) needs an embedding "
                             "layer: give embedding_size (one-hot inputs have no rows to drop)")
        self.use_layer_norm = bool(use_layer_norm)
        self.variational = bool(variational)
        self.dtype = np.dtype(dtype)
        if self.dtype not in v.FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        if init not in INIT_SCHEMES:
            raise ValueError(f"init must be one of {INIT_SCHEMES}, got {init!r}")
        self.init = init
        self.forget_bias = (DEFAULT_FORGET_BIAS[init] if forget_bias is None
                            else v.finite_float(forget_bias, "forget_bias"))
        if recurrent_init not in (None, "orthogonal"):
            raise ValueError(f"recurrent_init must be None or 'orthogonal', got {recurrent_init!r}")
        self.recurrent_init = recurrent_init
        self.rng = v.as_generator(seed, "seed")
        # name -> shape of every parameter, fixed at creation: the contract _check_params enforces
        # (and load_model checks a file against before building anything).
        self._param_shapes = parameter_shapes(
            self.vocab_size, self.hidden_size, self.output_size, self.num_layers,
            self.embedding_size, self.use_layer_norm, self.tie_weights)
        self.params = self._init_params()
        assert {name: p.shape for name, p in self.params.items()} == self._param_shapes
        # Parameter names per layer, built once (the forward pass runs at every step).
        self._layer_names = [(f"W{layer}", f"b{layer}",
                              tuple(f"ln{layer}.{name}" for name in LSTM_LAYER_NORM_PARAMS))
                             for layer in range(self.num_layers)]
        # The characters behind the token ids, when the model reads text (a data.Vocabulary):
        # saved with the model, needed to generate text.
        self.vocabulary = None
        self.grads = {}
        self._cache = None
        #: The AR + TAR terms of the last training forward pass (already in its loss).
        self.last_penalty = 0.0

    # ------------------------------------------------------------------ parameters
    def _init_params(self):
        params = initial_parameters(
            self.init, self.rng, vocab_size=self.vocab_size, hidden_size=self.hidden_size,
            output_size=self.output_size, embedding_size=self.embedding_size,
            layer_input_sizes=[self._param_shapes[f"W{k}"][0] - self.hidden_size
                               for k in range(self.num_layers)],
            use_layer_norm=self.use_layer_norm, forget_bias=self.forget_bias,
            recurrent_init=self.recurrent_init)
        if self.tie_weights:   # drawn all the same, so the other parameters match an untied model
            del params["Why"]
        return {name: np.ascontiguousarray(p, dtype=self.dtype) for name, p in params.items()}

    def _gate_block(self, gate):
        H = self.hidden_size
        k = GATE_ORDER.index(gate)
        return self.params["W0"][:, k * H:(k + 1) * H]

    Wi = property(lambda self: self._gate_block("i"), doc="Layer 0 input-gate weights (D+H, H).")
    Wf = property(lambda self: self._gate_block("f"), doc="Layer 0 forget-gate weights (D+H, H).")
    Wo = property(lambda self: self._gate_block("o"), doc="Layer 0 output-gate weights (D+H, H).")
    Wc = property(lambda self: self._gate_block("g"), doc="Layer 0 candidate weights (D+H, H).")
    Why = property(lambda self: self.params["embedding"].T if self.tie_weights
                   else self.params["Why"],
                   doc="Output projection (H, output_size); the embedding's transpose when tied.")

    def config(self) -> Dict[str, Any]:
        """The constructor arguments (without the seed): ``RegularizedLSTM(**model.config())``
        builds a model of the same architecture."""
        return dict(vocab_size=self.vocab_size, hidden_size=self.hidden_size,
                    output_size=self.output_size, dropout_keep_prob=self.dropout_keep_prob,
                    use_layer_norm=self.use_layer_norm, num_layers=self.num_layers,
                    embedding_size=self.embedding_size, recurrent_keep_prob=self.recurrent_keep_prob,
                    weight_keep_prob=self.weight_keep_prob, variational=self.variational,
                    dtype=self.dtype.name, init=self.init, forget_bias=self.forget_bias,
                    recurrent_init=self.recurrent_init, zoneout_hidden=self.zoneout_hidden,
                    zoneout_cell=self.zoneout_cell, embedding_keep_prob=self.embedding_keep_prob,
                    activation_reg=self.activation_reg,
                    temporal_activation_reg=self.temporal_activation_reg,
                    tie_weights=self.tie_weights)

    def parameters(self):
        """The parameters by name (the arrays themselves, updated in place by optimizers)."""
        return self.params

    def parameter_count(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def decay_parameter_names(self):
        """Names weight decay applies to: weight matrices only — never biases or LN gains."""
        return decay_parameter_names(self.params)

    def _check_params(self):
        """Raise unless every parameter is still a C-contiguous array of the model's dtype and of
        the shape it was created with (``params`` is a plain dict: anything can be assigned)."""
        params, shapes, dtype = self.params, self._param_shapes, self.dtype
        if len(params) != len(shapes):
            raise ValueError(f"model.params must hold exactly {sorted(shapes)}, got "
                             f"{sorted(params)}")
        for name, shape in shapes.items():
            p = params.get(name)
            if (type(p) is not np.ndarray or p.shape != shape or p.dtype != dtype
                    or not p.flags.c_contiguous):
                got = (f"shape {p.shape}, dtype {p.dtype}" if isinstance(p, np.ndarray)
                       else type(p).__name__)
                raise ValueError(
                    f"model.params[{name!r}] must be a C-contiguous {dtype} array of shape "
                    f"{shape}, got {got}; change values in place (model.params[{name!r}][...] = "
                    "new) or with load_state_dict")

    def weights(self):
        """The weight matrices weight decay applies to, as a list."""
        return [self.params[name] for name in self.decay_parameter_names()]

    def state_dict(self):
        """A copy of every parameter, by name."""
        return {name: p.copy() for name, p in self.params.items()}

    def load_state_dict(self, state):
        """Copy parameters in place (views such as ``Wf`` stay valid); shapes must match."""
        missing = sorted(set(self.params) - set(state))
        extra = sorted(set(state) - set(self.params))
        if missing or extra:
            raise ValueError(f"state does not match this model: missing {missing}, unexpected {extra}")
        for name, p in self.params.items():
            value = np.asarray(state[name])
            if value.shape != p.shape:
                raise ValueError(f"state[{name!r}] has shape {value.shape}, expected {p.shape}")
            if not np.isfinite(value).all():
                raise ValueError(f"state[{name!r}] contains NaN or inf")
            p[...] = value

    def initial_state(self, batch_size):
        """Zero (h, c), each of shape (num_layers, batch, hidden)."""
        shape = (self.num_layers, batch_size, self.hidden_size)
        return np.zeros(shape, self.dtype), np.zeros(shape, self.dtype)

    # ------------------------------------------------------------------ forward / backward
    def _dropout(self, x, training):
        """Non-recurrent dropout of x (N, T, F); returns (out, mask or None)."""
        if not training or self.dropout_keep_prob == 1.0:
            return x, None
        N, T, F = x.shape
        if not self.variational:   # mask and product in one kernel call
            out, mask = _ops.kernels().dropout_forward(
                np.ascontiguousarray(x).reshape(-1), self.dropout_keep_prob, self.rng)
            return out.reshape(x.shape), mask.reshape(x.shape)
        mask = _ops.dropout_mask((N, 1, F), self.dropout_keep_prob, self.rng, self.dtype)
        return x * mask, mask

    def forward_batch(self, inputs, targets=None, state=None, training=False, resets=None):
        """Run a batch of token sequences.

        Parameters
        ----------
        inputs : int array of shape (N, T)
        targets : int array of shape (N, T), optional
            Next tokens; needed for the loss and for :meth:`backward`.
        state : (h, c), optional
            Each (num_layers, N, H); zeros when None.
        training : bool
            Draw dropout masks (otherwise every regularizer that adds noise is off).
        resets : bool array of shape (N, T), optional
            True where a new document starts: the state of that row is zeroed before that step
            (and no gradient flows back across it).

        Returns
        -------
        loss : float or None
            Mean cross-entropy over the N*T tokens (None without targets), plus, in training,
            the AR and TAR penalties (also in :attr:`last_penalty`).
        logits : ndarray of shape (N, T, output_size)
        state : (h, c), the final states, each (num_layers, N, H)
        """
        self._check_params()
        inputs = v.token_array(inputs, "inputs", self.vocab_size, ndim=2)
        N, T = inputs.shape
        if targets is not None:
            targets = v.token_array(targets, "targets", self.output_size, ndim=2)
            v.check_shape(targets, "targets", (N, T), "(matching inputs)")
        h_init, c_init = self._check_state(state, N)
        H, dt = self.hidden_size, self.dtype
        row_mask = None
        if self.embedding_size is None:
            # One-hot inputs go to the first layer as their ids: its input product becomes a
            # gather of rows of Wx (the same numbers), its weight gradient a scatter-add.
            x = np.ascontiguousarray(inputs, dtype=TOKEN_DTYPE)
        else:
            x = self.params["embedding"][inputs]
            if training and self.embedding_keep_prob < 1.0:
                # Embedding dropout: a word's whole row is dropped (or scaled by 1/keep) for
                # the batch, wherever the word occurs (Merity et al. 2017, after Gal 2016).
                row_mask = _ops.dropout_mask((self.vocab_size,), self.embedding_keep_prob, self.rng,
                                        dt)
                x *= row_mask[inputs][..., None]
        input_mask = None
        if self.embedding_size is not None:
            # On one-hot inputs dropout would drop whole tokens, and with layer norm a dropped
            # token over a zero state leaves the cell identical across units, where layer norm's
            # gradient is amplified by 1/sqrt(eps) per step. Zaremba et al. drop embeddings.
            x, input_mask = self._dropout(x, training)
        layer_caches, dropout_masks, weight_masks = [], [input_mask], []
        segments, reset_rows = self._segments(resets, N, T)
        h_final, c_final = np.empty_like(h_init), np.empty_like(c_init)
        params = self.params
        for layer, (w_name, b_name, ln_names) in enumerate(self._layer_names):
            W = params[w_name]
            D = W.shape[0] - H
            Wh = W[D:]
            weight_mask = None
            if training and self.weight_keep_prob < 1.0:
                weight_mask = _ops.dropout_mask(Wh.shape, self.weight_keep_prob, self.rng, dt)
                Wh = Wh * weight_mask
            recurrent_mask = None
            if training and self.recurrent_keep_prob < 1.0:
                recurrent_mask = _ops.dropout_mask((N, H), self.recurrent_keep_prob, self.rng, dt)
            zone_h = self._zoneout((N, T, H), self.zoneout_hidden, training)
            zone_c = self._zoneout((N, T, H), self.zoneout_cell, training)
            ln = None
            if self.use_layer_norm:
                ln = dict(zip(LSTM_LAYER_NORM_PARAMS, map(params.__getitem__, ln_names)))
            caches, outputs = [], []
            h_state, c_state = h_init[layer], c_init[layer]
            x_layer = np.ascontiguousarray(x)
            for t0, t1 in segments:   # one kernel call per stretch without a document start
                if t0 in reset_rows:
                    keep = ~reset_rows[t0][:, None]
                    h_state, c_state = h_state * keep, c_state * keep
                whole = len(segments) == 1
                cache = _ops.kernels().lstm_forward(
                    x_layer if whole else np.ascontiguousarray(x_layer[:, t0:t1]),
                    np.ascontiguousarray(h_state), np.ascontiguousarray(c_state), W[:D], Wh,
                    params[b_name], ln, recurrent_mask, DEFAULT_EPS,
                    zone_h if whole or zone_h is None else np.ascontiguousarray(zone_h[:, t0:t1]),
                    zone_c if whole or zone_c is None else np.ascontiguousarray(zone_c[:, t0:t1]))
                v.finite_result(cache.c, f"LSTM layer {layer}", "the weights or inputs")
                caches.append(cache)
                outputs.append(cache.h)
                h_state, c_state = cache.h[:, -1], cache.c_final
            cache = caches
            h = outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=1)
            h_final[layer], c_final[layer] = h_state, c_state
            x, mask = self._dropout(h, training)
            layer_caches.append(cache)
            dropout_masks.append(mask)
            weight_masks.append(weight_mask)
        top = np.ascontiguousarray(x).reshape(N * T, H)
        if self.tie_weights:
            logits = _matmul(top, self.params["embedding"], trans_b=True) + self.params["by"]
        else:
            logits = _matmul(top, self.params["Why"]) + self.params["by"]
        loss, dlogits = None, None
        penalty, steps = 0.0, None
        if targets is not None:
            loss, dlogits = _ops.kernels().softmax_cross_entropy(
                logits, np.ascontiguousarray(targets.reshape(-1), dtype=np.int64))
            if training:
                penalty, steps = self._activation_penalty(top, h)
                loss += penalty
        self.last_penalty = penalty
        self._cache = dict(inputs=inputs, top=x, tar_steps=steps, dlogits=dlogits,
                           layers=layer_caches,
                           segments=segments, reset_rows=reset_rows, row_mask=row_mask,
                           dropout_masks=dropout_masks, weight_masks=weight_masks, shape=(N, T),
                           training=training)
        return loss, logits.reshape(N, T, -1), (h_final, c_final)

    def largest_cell_state(self, valid=None) -> float:
        """The largest absolute cell state ``|c|`` of the last :meth:`forward_batch`, over every
        layer, sequence and step — or over the steps where ``valid`` (N, T) is True (the trainer
        logs it: how far the cells have grown)."""
        if self._cache is None:
            raise RuntimeError("largest_cell_state() needs a preceding forward_batch(...)")
        largest = 0.0
        for layer in self._cache["layers"]:
            cells = layer[0].c if len(layer) == 1 else np.concatenate([c.c for c in layer], axis=1)
            if valid is not None:
                cells = cells[valid]
            if cells.size:
                largest = max(largest, float(np.abs(cells).max()))
        return largest

    def _zoneout(self, shape, z, training):
        """Zoneout weights u (N, T, H) of one layer, or None when z is 0: Bernoulli(z) draws in
        training, the expectation z in evaluation."""
        if z == 0.0:
            return None
        if training:
            return _ops.zoneout_mask(shape, z, self.rng, self.dtype)
        return np.full(shape, z, self.dtype)

    def _activation_penalty(self, top, h):
        """AR + TAR of a training pass (Merity et al. 2017, section 4.6): ``α · mean(top²)`` over
        the last layer's dropped output ``top`` (N*T, H) and ``β · mean((h_t − h_{t−1})²)`` over
        its output ``h`` (N, T, H) before dropout, t within the batch. Returns the penalty and
        the steps ``h_t − h_{t−1}`` (None without TAR), which the backward pass reuses."""
        penalty, steps = 0.0, None
        if self.activation_reg:
            penalty += self.activation_reg * float(np.mean(np.square(top, dtype=np.float64)))
        if self.temporal_activation_reg and h.shape[1] > 1:
            steps = h[:, 1:] - h[:, :-1]
            penalty += self.temporal_activation_reg * float(
                np.mean(np.square(steps, dtype=np.float64)))
        return penalty, steps

    def backward(self, dh_final=None, dc_final=None):
        """Gradients of the last :meth:`forward_batch` loss for every parameter.

        ``dh_final`` / ``dc_final`` (num_layers, N, H) are optional upstream gradients of the
        final states. Returns (and stores in ``self.grads``) a dict name -> gradient.
        """
        if self._cache is None or self._cache["dlogits"] is None:
            raise RuntimeError("backward() needs a preceding forward_batch(...) with targets")
        self._check_params()
        cache = self._cache
        N, T = cache["shape"]
        H = self.hidden_size
        expected = (self.num_layers, N, H)
        if dh_final is not None:
            dh_final = v.float_array(dh_final, "dh_final", ndim=3, dtype=self.dtype)
            v.check_shape(dh_final, "dh_final", expected, "(num_layers, batch, hidden_size)")
        if dc_final is not None:
            dc_final = v.float_array(dc_final, "dc_final", ndim=3, dtype=self.dtype)
            v.check_shape(dc_final, "dc_final", expected, "(num_layers, batch, hidden_size)")
        grads = {}
        dlogits = cache["dlogits"]
        top = np.ascontiguousarray(cache["top"]).reshape(N * T, H)
        if self.tie_weights:
            output_grad = _matmul(dlogits, top, trans_a=True)   # (V, H): added to the embedding's
            dx = _matmul(dlogits, self.params["embedding"])
        else:
            grads["Why"] = _matmul(top, dlogits, trans_a=True)
            dx = _matmul(dlogits, self.params["Why"], trans_b=True)
        grads["by"] = dlogits.sum(axis=0)
        training = cache["training"]
        if training and self.activation_reg:   # d/dtop of α · mean(top²)
            dx += (2.0 * self.activation_reg / top.size) * top
        dx = dx.reshape(N, T, H)
        for layer in reversed(range(self.num_layers)):
            w_name, b_name, ln_names = self._layer_names[layer]
            mask = cache["dropout_masks"][layer + 1]
            dh = dx if mask is None else dx * mask
            if cache["tar_steps"] is not None and layer == self.num_layers - 1:
                # d/dh of β · mean((h_t − h_{t−1})²)
                step = (2.0 * self.temporal_activation_reg / (N * (T - 1) * H)) * \
                    cache["tar_steps"]
                dh = np.array(dh)
                dh[:, 1:] += step
                dh[:, :-1] -= step
            dcf = np.zeros((N, H), self.dtype) if dc_final is None else \
                np.ascontiguousarray(dc_final[layer], dtype=self.dtype)
            dh = np.ascontiguousarray(dh, dtype=self.dtype)
            if dh_final is not None:
                dh = dh.copy()
                dh[:, -1] += dh_final[layer]
            # A one-hot input layer needs no input gradient: the kernel skips that product.
            need_dx = layer > 0 or self.embedding_size is not None
            g = self._layer_backward(dh, dcf, cache["layers"][layer], cache["segments"],
                                     cache["reset_rows"], need_dx)
            for name in ("dx", "dWx", "dWh") if need_dx else ("dWx", "dWh"):
                v.finite_result(g[name], f"LSTM layer {layer} backward", "the gradients")
            dWh = g["dWh"] if cache["weight_masks"][layer] is None else \
                g["dWh"] * cache["weight_masks"][layer]
            grads[w_name] = np.concatenate((g["dWx"], dWh))
            grads[b_name] = g["db"]
            if self.use_layer_norm:
                for name, full_name in zip(LSTM_LAYER_NORM_PARAMS, ln_names):
                    grads[full_name] = g["d" + name]
            dx = g["dx"]
        if self.embedding_size is not None:
            mask = cache["dropout_masks"][0]
            demb = dx if mask is None else dx * mask
            if cache["row_mask"] is not None:
                demb = demb * cache["row_mask"][cache["inputs"]][..., None]
            grads["embedding"] = np.zeros_like(self.params["embedding"])
            np.add.at(grads["embedding"], cache["inputs"].reshape(-1),
                      demb.reshape(N * T, -1))
            if self.tie_weights:
                grads["embedding"] += output_grad
        # Every gradient is already a C-contiguous array of the model's dtype (kernel outputs and
        # products of them); the dict lists them in the parameters' order.
        self.grads = {name: grads[name] for name in self.params}
        return self.grads

    @staticmethod
    def _segments(resets, N, T):
        """The stretches [t0, t1) of the time axis between document starts, and for each start
        t0 the rows (N,) that start a document there (their state is zeroed)."""
        if resets is None:
            return [(0, T)], {}
        resets = np.asarray(resets, dtype=bool)
        if resets.shape != (N, T):
            raise ValueError(f"resets must have shape {(N, T)} (matching inputs), got "
                             f"{resets.shape}")
        cuts = [0] + [t for t in range(1, T) if resets[:, t].any()] + [T]
        reset_rows = {t: resets[:, t].copy() for t in cuts[:-1] if resets[:, t].any()}
        return list(zip(cuts[:-1], cuts[1:])), reset_rows

    @staticmethod
    def _layer_backward(dh, dc_final, caches, segments, reset_rows, need_dx=True):
        """lstm_backward over the segments of one layer, last first: the gradient reaching a
        segment's initial state flows into the previous segment's final state, except for rows
        whose state was zeroed there."""
        kernels = _ops.kernels()
        if len(caches) == 1:
            return kernels.lstm_backward(dh, dc_final, caches[0], need_dx)
        dx_parts, total = [], None
        dh_carry, dc_carry = None, dc_final
        for (t0, t1), cache in zip(reversed(segments), reversed(caches)):
            dh_seg = np.array(dh[:, t0:t1])
            if dh_carry is not None:
                dh_seg[:, -1] += dh_carry
            g = kernels.lstm_backward(dh_seg, np.ascontiguousarray(dc_carry), cache, need_dx)
            dx_parts.append(g["dx"])
            dh_carry, dc_carry = g["dh0"], g["dc0"]
            if t0 in reset_rows:
                keep = ~reset_rows[t0][:, None]
                dh_carry, dc_carry = dh_carry * keep, dc_carry * keep
            if total is None:   # the kernel's fresh arrays: summed into in place
                total = {k: val for k, val in g.items() if k not in ("dx", "dh0", "dc0")}
            else:
                for k in total:
                    total[k] += g[k]
        total.update(dx=np.ascontiguousarray(np.concatenate(dx_parts[::-1], axis=1))
                     if need_dx else None, dh0=dh_carry, dc0=dc_carry)
        return total

    def _check_state(self, state, batch):
        if state is None:
            return self.initial_state(batch)
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise TypeError("state must be a pair (h, c), each (num_layers, batch, hidden_size)")
        expected = (self.num_layers, batch, self.hidden_size)
        h = v.float_array(state[0], "state h", ndim=3, dtype=self.dtype)
        v.check_shape(h, "state h", expected, "(num_layers, batch, hidden_size)")
        c = v.float_array(state[1], "state c", ndim=3, dtype=self.dtype)
        v.check_shape(c, "state c", expected, "(num_layers, batch, hidden_size)")
        return h, c

    # ------------------------------------------------------------------ using a trained model
    def logits(self, tokens: ArrayLike, state: Optional[Tuple[ArrayLike, ArrayLike]] = None
               ) -> Tuple[NDArray[np.floating], Tuple[NDArray[np.floating], NDArray[np.floating]]]:
        """Next-token logits for token ids ``tokens`` (N, T) — or (T,) for one sequence — from
        ``state`` (zeros when None), without dropout. Returns ``(logits (N, T, output_size),
        state)``; pass the state back to continue the same sequences."""
        ids = np.asarray(tokens)
        one = ids.ndim == 1
        _, logits, new_state = self.forward_batch(ids[None, :] if one else ids, None, state,
                                                  training=False)
        return (logits[0] if one else logits), new_state

    def generate(self, prime: Union[str, Sequence[int]], length: int, temperature: float = 1.0,
                 top_k: Optional[int] = None,
                 rng: Union[None, int, np.random.Generator] = None, *,
                 top_p: Optional[float] = None,
                 greedy: bool = False) -> Union[str, NDArray[np.int64]]:
        """Sample ``length`` tokens after ``prime``.

        Parameters
        ----------
        prime : str or sequence of int
            Text (needs ``model.vocabulary``) or token ids to start from. A character the
            vocabulary does not hold is an error naming it (it would be read as the unknown
            symbol, which is not what was typed).
        length : int
            Tokens to generate.
        temperature : float > 0
            Each next token is drawn from softmax(logits / temperature).
        top_k : int, optional
            Draw among the ``top_k`` most likely tokens only.
        rng : np.random.Generator, int seed or None
            The same seed gives the same text.
        top_p : float in (0, 1], optional
            Nucleus sampling: draw among the smallest set of most likely tokens whose
            probability reaches ``top_p`` (after ``top_k``, as Hugging Face's ``generate``).
        greedy : bool
            Take the most likely token at every step (no draw; temperature, top_k, top_p and rng
            play no part).

        Returns
        -------
        str or ndarray of int64
            The generated text when prime is text, else the generated ids.

        Examples
        --------
        >>> from rnnreg import CharCorpus, RegularizedLSTM
        >>> corpus = CharCorpus.from_text("abcabcabc.\\n" * 20)
        >>> model = RegularizedLSTM(corpus.vocab_size, 8, seed=0)
        >>> model.vocabulary = corpus.vocabulary
        >>> model.generate("ab", 20, top_p=0.9, rng=0) == model.generate("ab", 20, top_p=0.9, rng=0)
        True
        >>> model.generate("ab", 3, greedy=True) == model.generate("ab", 3, greedy=True)
        True
        """
        length = v.positive_int(length, "length", minimum=0)
        temperature = v.positive_float(temperature, "temperature")
        if top_k is not None:
            top_k = min(v.positive_int(top_k, "top_k"), self.output_size)
        if top_p is not None:
            top_p = v.probability(top_p, "top_p")
        rng = v.as_generator(rng)
        as_text = isinstance(prime, str)
        if as_text:
            if self.vocabulary is None:
                raise ValueError("prime is text but this model has no vocabulary: pass token ids, "
                                 "or set model.vocabulary")
            unknown = sorted(set(str(ch) for ch in prime if ch not in self.vocabulary.index))
            if unknown:
                raise ValueError(f"prime holds characters the model's vocabulary does not: "
                                 f"{''.join(unknown)!r}; the model would read each as its unknown "
                                 "symbol")
            ids = self.vocabulary.encode(prime)
        else:
            ids = v.token_array(prime, "prime", self.vocab_size, ndim=1)
        if ids.size == 0:
            ids = np.zeros(1, np.int64)   # no prime: start from the unknown symbol
        logits, state = self.logits(ids)
        last = logits[-1]
        out = np.empty(length, np.int64)
        for k in range(length):
            out[k] = _next_token(last, temperature, top_k, top_p, greedy, rng)
            logits, state = self.logits(out[k:k + 1], state)
            last = logits[-1]
        return self.vocabulary.decode(out, unknown="") if as_text else out

    # ------------------------------------------------------------------ the notebook's form
    def forward(self, x, y, h, c, training=True):
        """One token sequence, the notebook's interface.

        Parameters
        ----------
        x, y : int arrays of shape (T,) — inputs and next-token targets
        h, c : ndarrays of shape (hidden_size, 1) — or (num_layers, hidden_size, 1)
        training : bool

        Returns
        -------
        loss : float, mean cross-entropy over the T steps
        h, c : the final states, in the shape they came in
        """
        x = v.token_array(x, "x", self.vocab_size, ndim=1)
        y = v.token_array(y, "y", self.output_size, ndim=1)
        v.check_shape(y, "y", x.shape, "(matching x)")
        H, L = self.hidden_size, self.num_layers
        shapes = [(H, 1)] if L == 1 else []
        shapes.append((L, H, 1))
        state = []
        for name, s in (("h", h), ("c", c)):
            s = v.float_array(s, name, dtype=self.dtype)
            if s.shape not in shapes:
                raise ValueError(f"{name} must have shape {' or '.join(map(str, shapes))}, "
                                 f"got {s.shape}")
            state.append(s.reshape(L, 1, H))
        in_shape = np.shape(h)
        loss, _, (h_out, c_out) = self.forward_batch(x[None, :], y[None, :], tuple(state),
                                                     training=training)
        return loss, h_out.reshape(in_shape), c_out.reshape(in_shape)
