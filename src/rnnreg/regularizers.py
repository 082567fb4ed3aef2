"""The stochastic and penalty regularizers of a model, each one part, defined once.

A part says which settings switch it on (fields of :class:`~rnnreg.model_config.ModelConfig`),
where it acts (its :class:`Place`), what it draws, and its forward and backward contribution;
the model (``rnnreg.model``) only walks the parts of each place. Weight decay and early
stopping act on the optimizer and the trainer (``rnnreg.weight_decay``, ``rnnreg.early_stopping``,
``rnnreg.optim``, ``rnnreg.training``); layer normalization is a kind of cell
(``rnnreg.cells``).

Draw order
----------
Every mask comes from the model's own generator, in this order (a seeded result depends on it,
and ``tests/test_seeded_regression.py`` holds it): per batch, in :data:`PARTS` order within each
place — the input's parts (embedding rows, then input dropout), then layer by layer its weight
parts (``Wh``, then ``Wx``), its recurrence parts (the ``h(t−1)`` mask, then zoneout of ``h``
then ``c``), the layer's run, and its output part (between-layer or output dropout). The loss
parts draw nothing. A part that is off draws nothing, so switching on a new part never changes
the draws of the others before it.

A new regularizer is a class here, its entry in :data:`PARTS` and its setting in
:class:`~rnnreg.model_config.ModelConfig`.
"""

import enum

import numpy as np

from . import _ops

__all__ = [
    "Place",
    "Regularizer",
    "EmbeddingDropout",
    "InputDropout",
    "WeightDrop",
    "InputWeightDrop",
    "RecurrentDropout",
    "Zoneout",
    "LayerOutputDropout",
    "ActivationRegularization",
    "TemporalActivationRegularization",
    "WeightTying",
    "PARTS",
    "active_parts",
    "check_config",
]


class Place(enum.Enum):
    """Where a regularizer acts."""

    INPUT = "input"  # on the vectors the first layer reads (and the embedding's rows)
    WEIGHTS = "weights"  # on a layer's weight matrices, one mask per batch
    RECURRENCE = "recurrence"  # inside the compiled time loop (the kernels take its masks)
    OUTPUT = "output"  # on a layer's output: between layers, or the last one's
    LOSS = "loss"  # a penalty added to the training loss
    HEAD = "head"  # the head's parameters


class Regularizer:
    """One regularizer. Subclasses set ``settings`` (the ModelConfig fields that switch it on),
    ``place`` and a docstring with the paper's formula, and implement the hooks of their place:

    * INPUT: ``forward(x, inputs, config, rng) -> (x, saved)``, ``backward(dx, inputs, saved)``;
    * WEIGHTS: ``forward(Wx, Wh, config, rng) -> (Wx, Wh, saved)``,
      ``backward(dWx, dWh, saved) -> (dWx, dWh)`` (it may scale the two in place: they are
      views of the layer's place in the model's packed gradients; new arrays are copied there);
    * RECURRENCE: ``draw(shape, config, rng, training) -> {kernel argument: array}``;
    * OUTPUT: ``forward(h, layer, config, rng) -> (h, saved)``, ``backward(dh, saved)``;
    * LOSS: ``penalty(top, h, config) -> (value, saved)``; ``backward_top(dtop, top, saved,
      config)`` (the last layer's dropped output, (N*T, H)) and ``backward_h(dh, saved,
      config)`` (its output before dropout, (N, T, H)).

    ``saved`` is what forward leaves for backward (a mask, or None when nothing was drawn).
    Stochastic parts act in training only; ``active`` says whether a config switches the part
    on at all."""

    settings: tuple[str, ...] = ()
    place: Place

    def active(self, config) -> bool:
        raise NotImplementedError

    def check(self, config) -> None:
        """Raise ValueError when the config asks for this part where it cannot act."""

    def __repr__(self):
        return f"{type(self).__name__}()"


def _dropout(x, keep_prob, variational, rng, dtype):
    """Inverted dropout of x (N, T, F): ``x ⊙ m / keep``; ``m`` per element, or one (N, 1, F)
    per sequence when variational. Returns (out, mask)."""
    N, T, F = x.shape
    if not variational:  # mask and product in one kernel call
        out, mask = _ops.kernels().dropout_forward(np.ascontiguousarray(x).reshape(-1), keep_prob, rng)
        return out.reshape(x.shape), mask.reshape(x.shape)
    mask = _ops.dropout_mask((N, 1, F), keep_prob, rng, dtype)
    return x * mask, mask


# ----------------------------------------------------------------------------- input
class EmbeddingDropout(Regularizer):
    """Embedding dropout (Gal & Ghahramani 2016; Merity et al. 2017): whole rows of the embedding
    matrix are dropped for a batch, wherever their token occurs, and kept rows scaled:
    ``E' = diag(m / keep) E``, ``m_v ~ Bernoulli(keep)`` per token ``v``."""

    settings = ("embedding_keep_prob",)
    place = Place.INPUT

    def active(self, config):
        return config.embedding_keep_prob < 1.0

    def check(self, config):
        if self.active(config) and not config.tokens:
            raise ValueError(
                "embedding_keep_prob < 1 (embedding dropout) drops rows of a token embedding: "
                "real-valued inputs have none"
            )
        if self.active(config) and config.embedding_size is None:
            raise ValueError(
                "embedding_keep_prob < 1 (embedding dropout) needs an embedding "
                "layer: give embedding_size (one-hot inputs have no rows to drop)"
            )

    def forward(self, x, inputs, config, rng):
        row_mask = _ops.dropout_mask(
            (config.vocab_size,), config.embedding_keep_prob, rng, config.float_dtype
        )
        x *= row_mask[inputs][..., None]  # x is the batch's own gathered copy
        return x, row_mask

    def backward(self, dx, inputs, row_mask):
        return dx * row_mask[inputs][..., None]


class InputDropout(Regularizer):
    """Dropout of the inputs, embedded tokens or real-valued vectors (Zaremba et al. 2014;
    Keras's ``dropout``; AWD-LSTM's ``dropouti``): ``x' = x ⊙ m / keep``. One-hot inputs are not
    dropped: that would drop whole tokens (and with layer norm a dropped token over a zero state
    leaves the cell identical across units, where layer norm's gradient is amplified by
    1/sqrt(eps) per step)."""

    settings = ("input_keep_prob", "dropout_keep_prob", "variational")
    place = Place.INPUT

    def active(self, config):
        one_hot = config.tokens and config.embedding_size is None
        return not one_hot and config.input_keep < 1.0

    def check(self, config):
        if (
            config.input_keep_prob is not None
            and config.input_keep_prob < 1.0
            and config.tokens
            and config.embedding_size is None
        ):
            raise ValueError(
                "input_keep_prob < 1 drops embedded inputs: give embedding_size "
                "(one-hot inputs are not dropped: that would drop whole tokens)"
            )

    def forward(self, x, inputs, config, rng):
        return _dropout(x, config.input_keep, config.variational, rng, config.float_dtype)

    def backward(self, dx, inputs, mask):
        return dx * mask


# ----------------------------------------------------------------------------- weights
class WeightDrop(Regularizer):
    """Weight-drop (DropConnect on the recurrent matrix; Merity et al. 2017):
    ``Wh' = Wh ⊙ M``, ``M`` = Bernoulli(keep) / keep per weight, one mask per batch and layer;
    ``∂L/∂Wh = M ⊙ ∂L/∂Wh'``."""

    settings = ("weight_keep_prob",)
    place = Place.WEIGHTS

    def active(self, config):
        return config.weight_keep_prob < 1.0

    def forward(self, Wx, Wh, config, rng):
        mask = _ops.dropout_mask(Wh.shape, config.weight_keep_prob, rng, config.float_dtype)
        return Wx, Wh * mask, mask

    def backward(self, dWx, dWh, mask):
        dWh *= mask  # in place: dWh is its place in the model's packed gradients
        return dWx, dWh


class InputWeightDrop(Regularizer):
    """DropConnect on the input matrix (Wan et al. 2013), the mirror of weight-drop:
    ``Wx' = Wx ⊙ M``, ``M`` = Bernoulli(keep) / keep per weight, one mask per batch and layer;
    ``∂L/∂Wx = M ⊙ ∂L/∂Wx'``. On one-hot inputs it drops, for the batch, single weights of a
    token's row."""

    settings = ("input_weight_keep_prob",)
    place = Place.WEIGHTS

    def active(self, config):
        return config.input_weight_keep_prob < 1.0

    def forward(self, Wx, Wh, config, rng):
        mask = _ops.dropout_mask(Wx.shape, config.input_weight_keep_prob, rng, config.float_dtype)
        return Wx * mask, Wh, mask

    def backward(self, dWx, dWh, mask):
        dWx *= mask  # in place: dWx is its place in the model's packed gradients
        return dWx, dWh


# ----------------------------------------------------------------------------- recurrence
class RecurrentDropout(Regularizer):
    """A mask on ``h(t−1)`` inside the recurrence, the same at every step of a sequence (Gal &
    Ghahramani 2016): the cell's recurrent input is ``H_t = (h_{t−1} ⊙ m / keep) Wh``. Applied
    in the compiled time loop (the kernels' ``recurrent_mask``)."""

    settings = ("recurrent_keep_prob",)
    place = Place.RECURRENCE

    def active(self, config):
        return config.recurrent_keep_prob < 1.0

    def draw(self, shape, config, rng, training):
        if not training:
            return {}
        N, _, H = shape
        return {
            "recurrent_mask": _ops.dropout_mask((N, H), config.recurrent_keep_prob, rng, config.float_dtype)
        }


class Zoneout(Regularizer):
    """Zoneout (Krueger et al. 2016): each unit keeps its previous value at random instead of
    updating, ``h_t = u ⊙ h_{t−1} + (1 − u) ⊙ h~_t`` with ``u ~ Bernoulli(z)`` per unit and step in
    training and ``u = z`` (the expectation) in evaluation; likewise ``c`` with its own z.
    Applied in the compiled time loop (the kernels' ``zoneout_h``, ``zoneout_c``); the draws are
    h's, then c's."""

    settings = ("zoneout_hidden", "zoneout_cell")
    place = Place.RECURRENCE

    def active(self, config):
        return config.zoneout_hidden > 0.0 or config.zoneout_cell > 0.0

    def check(self, config):
        if config.zoneout_cell > 0.0 and config.cell != "lstm":
            raise ValueError(
                f"zoneout_cell zones out the LSTM's cell state c; a {config.cell.upper()} has no "
                "cell state (its state is h: use zoneout_hidden)"
            )

    def draw(self, shape, config, rng, training):
        weights = {}
        for name, z in (
            ("zoneout_h", config.zoneout_hidden),
            ("zoneout_c", config.zoneout_cell),
        ):  # c: LSTM only
            if z == 0.0:
                continue
            weights[name] = (
                _ops.zoneout_mask(shape, z, rng, config.float_dtype)
                if training
                else np.full(shape, z, config.float_dtype)
            )
        return weights


# ----------------------------------------------------------------------------- output
class LayerOutputDropout(Regularizer):
    """Dropout of each layer's output (Zaremba et al. 2014): between stacked layers
    (``between_keep_prob``, AWD-LSTM's ``dropouth``) and on the last layer's output
    (``output_keep_prob``, AWD-LSTM's ``dropout``): ``h' = h ⊙ m / keep``, one mask per element, or
    per sequence with ``variational`` (locked dropout)."""

    settings = ("between_keep_prob", "output_keep_prob", "dropout_keep_prob", "variational")
    place = Place.OUTPUT

    def active(self, config):
        return config.between_keep < 1.0 or config.output_keep < 1.0

    def forward(self, h, layer, config, rng):
        keep = config.output_keep if layer == config.num_layers - 1 else config.between_keep
        if keep == 1.0:
            return h, None
        return _dropout(h, keep, config.variational, rng, config.float_dtype)

    def backward(self, dh, mask):
        return dh if mask is None else dh * mask


# ----------------------------------------------------------------------------- loss
class ActivationRegularization(Regularizer):
    """AR (Merity et al. 2017, section 4.6): ``α · mean((m ⊙ h_t)²)`` over the last layer's
    dropped output (over the steps within each sequence's length), added to the training loss;
    its gradient ``2α / size · (m ⊙ h_t)``."""

    settings = ("activation_reg",)
    place = Place.LOSS

    def active(self, config):
        return config.activation_reg > 0.0

    def penalty(self, top, h, config, valid=None):
        if valid is None:
            return config.activation_reg * float(np.mean(np.square(top, dtype=np.float64))), None
        rows = valid.reshape(-1)
        kept = top[rows]
        return config.activation_reg * float(np.mean(np.square(kept, dtype=np.float64))), rows

    def backward_top(self, dtop, top, rows, config):
        if rows is None:
            dtop += (2.0 * config.activation_reg / top.size) * top
            return dtop
        kept = top[rows]
        dtop[rows] += (2.0 * config.activation_reg / kept.size) * kept
        return dtop

    def backward_h(self, dh, saved, config):
        return dh


class TemporalActivationRegularization(Regularizer):
    """TAR (Merity et al. 2017, section 4.6): ``β · mean((h_t − h_{t−1})²)`` over the last
    layer's output before dropout, t within the batch (and within each sequence's length); its
    gradient ``2β / size · (h_t − h_{t−1})`` at ``t`` and the negative at ``t − 1``."""

    settings = ("temporal_activation_reg",)
    place = Place.LOSS

    def active(self, config):
        return config.temporal_activation_reg > 0.0

    def penalty(self, top, h, config, valid=None):
        if h.shape[1] < 2:
            return 0.0, None
        steps = h[:, 1:] - h[:, :-1]
        if valid is None:
            return config.temporal_activation_reg * float(np.mean(np.square(steps, dtype=np.float64))), (
                steps,
                steps.size,
            )
        pairs = valid[:, 1:]  # both ends valid: lengths are prefixes
        count = int(pairs.sum()) * h.shape[2]
        if count == 0:
            return 0.0, None
        steps = steps * pairs[:, :, None]
        total = float(np.sum(np.square(steps, dtype=np.float64)))
        return config.temporal_activation_reg * total / count, (steps, count)

    def backward_top(self, dtop, top, saved, config):
        return dtop

    def backward_h(self, dh, saved, config):
        if saved is None:
            return dh
        steps, count = saved
        step = (2.0 * config.temporal_activation_reg / count) * steps
        dh = np.array(dh)
        dh[:, 1:] += step
        dh[:, :-1] -= step
        return dh


# ----------------------------------------------------------------------------- head
class WeightTying(Regularizer):
    """Weight tying (Inan et al. 2017; Press & Wolf 2017): the output projection is the
    embedding matrix transposed, ``logits = h Eᵀ + b`` — one parameter, whose gradient sums the
    input's and the output's. Done by the head (``rnnreg.heads``); its rules are here."""

    settings = ("tie_weights",)
    place = Place.HEAD

    def active(self, config):
        return config.tie_weights

    def check(self, config):
        if not config.tie_weights:
            return
        if config.task != "next-token":
            raise ValueError(
                "tie_weights shares the embedding with the next-token output: task "
                f"{config.task!r} has no embedding to share (its outputs are not tokens)"
            )
        if config.embedding_size != config.hidden_size:
            raise ValueError(
                f"tie_weights needs embedding_size == hidden_size (the output projection is "
                f"the embedding matrix transposed), got embedding_size={config.embedding_size}, "
                f"hidden_size={config.hidden_size}"
            )
        if config.output_size != config.vocab_size:
            raise ValueError(
                f"tie_weights needs output_size == vocab_size, got output_size="
                f"{config.output_size}, vocab_size={config.vocab_size}"
            )


#: Every regularizer part, in the order their masks are drawn within a place.
PARTS: tuple[Regularizer, ...] = (
    EmbeddingDropout(),
    InputDropout(),
    WeightDrop(),
    InputWeightDrop(),
    RecurrentDropout(),
    Zoneout(),
    LayerOutputDropout(),
    ActivationRegularization(),
    TemporalActivationRegularization(),
    WeightTying(),
)


def active_parts(config, place) -> list[Regularizer]:
    """The parts of ``place`` a config switches on, in draw order."""
    return [part for part in PARTS if part.place is place and part.active(config)]


def check_config(config) -> None:
    """Every part's rules (called when a ModelConfig is made)."""
    for part in PARTS:
        part.check(config)


def parts_of(setting: str) -> list[Regularizer]:
    """The parts a setting takes part in (for docs and tests)."""
    return [part for part in PARTS if setting in part.settings]
