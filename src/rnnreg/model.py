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

import inspect
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _validation as v
from ._conventions import decay_parameter_names
from .cells import LayerRun, Segments, cell_of, stack_input_sizes
from .heads import head_of
from .init import initial_parameters
from .inputs import input_of
from .model_config import POSITIONAL, ModelConfig, setting_spec, settings
from .model_config import names as setting_names
from .parameters import Layout, Packed
from .regularizers import Place, active_parts
from .sequences import valid_steps

__all__ = [
    "RegularizedLSTM",
    "RegularizedGRU",
    "build_model",
    "ModelConfig",
    "parameter_shapes",
    "config_parameter_shapes",
    "BatchTrace",
    "LayerTrace",
]


#: The most tokens one generate() call makes (its output is allocated up front).
MAX_GENERATED = 10**8


class Sampling(NamedTuple):
    """How generate draws each token (its arguments, checked)."""

    temperature: float
    top_k: int | None
    top_p: float | None
    greedy: bool


def _next_token(logits, sampling, rng):
    """One token from a row of logits: the most likely (greedy), or a draw from softmax(logits /
    temperature) restricted to the top_k most likely, then to the smallest most-likely set whose
    probability reaches top_p."""
    temperature, top_k, top_p, greedy = sampling
    scores = logits.astype(np.float64)
    if greedy:
        return int(np.argmax(scores))
    finite = np.isfinite(scores)
    with np.errstate(over="ignore", invalid="ignore"):
        scores = scores / temperature
    if not np.isfinite(scores[finite]).all():  # a temperature so low the scores overflow: its
        return int(np.argmax(np.where(finite, logits, -np.inf)))  # limit, the most likely token
    if top_k is not None and top_k < scores.size:
        cut = np.partition(scores, -top_k)[-top_k]
        scores = np.where(scores >= cut, scores, -np.inf)
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        keep = order[: int(np.searchsorted(cumulative, top_p)) + 1]  # reaches top_p
        kept = np.zeros_like(probs)
        kept[keep] = probs[keep]
        probs = kept / kept.sum()
    return int(rng.choice(probs.size, p=probs))


def _check_penalty(part, config, result):
    """Raise NonFiniteResult naming a loss penalty (AR, TAR) whose value or gradient overflowed:
    its rate is what to lower, not the learning rate."""
    finite = math.isfinite(result) if isinstance(result, float) else v.all_finite(result)
    if finite:
        return
    rates = ", ".join(f"{name} = {getattr(config, name):g}" for name in part.settings)
    flags = ", ".join(f"--{setting_spec(name).flag}" for name in part.settings)
    raise v.NonFiniteResult(
        f"the {type(part).__name__} penalty overflowed ({rates})",
        advice=f"lower {' and '.join(part.settings)} ({flags})",
    )


def parameter_shapes(config):
    """name -> shape of every parameter of a model of this :class:`~rnnreg.model_config.
    ModelConfig`, in the model's order — the input's, each layer's (the cell's), the head's —
    computed without allocating any (a file's declared model is checked against it before it is
    built)."""
    cell, first = cell_of(config), input_of(config)
    shapes = dict(first.parameter_shapes(config))
    sizes = stack_input_sizes(first.features(config), config.hidden_size, config.num_layers)
    for layer, D in enumerate(sizes):
        shapes.update(cell.parameter_shapes(layer, D, config.hidden_size, config.use_layer_norm))
    shapes.update(head_of(config).parameter_shapes(config))
    return shapes


def config_parameter_shapes(config):
    """The parameter shapes of ``RegularizedLSTM(**config)`` from its settings alone (a dict, as
    files store it; missing settings take their defaults), without building the model — what
    load_model checks a file's declared weights against first. Raises ValueError or TypeError
    for settings that do not describe a model."""
    return parameter_shapes(ModelConfig.from_dict(config))


# The model calls the kernels through its parts (rnnreg.cells, .inputs, .heads, .regularizers)
# and rnnreg._ops, not the public functions: its inputs (token ids, states) are validated on the
# way in, and its parameters are compared with the shapes and dtype they were created with at
# every forward pass (a few integer compares: `params` is a plain dict anyone can assign into),
# so the public wrappers' checks would only repeat themselves on every step. The kernels check
# sizes once more themselves; results are still checked for overflow.


def _valid_steps(lengths, N, T):
    """(N, T) bool — which steps lie within each row's length — or None when every row runs
    the whole T steps (no lengths given, or all equal to T)."""
    if lengths is None:
        return None
    arr = np.asarray(lengths)
    if arr.dtype.kind not in "iu" or arr.shape != (N,):
        raise ValueError(f"lengths must be {N} integers (one per sequence), got {arr.dtype} {arr.shape}")
    if arr.size and (int(arr.min()) < 1 or int(arr.max()) > T):
        raise ValueError(
            f"lengths must lie in [1, {T}] (the inputs' steps), got {int(arr.min())} to {int(arr.max())}"
        )
    if (arr == T).all():
        return None
    return valid_steps(arr, T)


# Looked up on every attribute read and write of a model that is not an attribute of its own.
_SETTING_NAMES = frozenset(setting_names())


class LayerTrace(NamedTuple):
    """What one layer's forward pass leaves for its backward: the cell's run, and what each of
    the layer's weight and output parts saved, in draw order."""

    run: LayerRun
    weight_parts: tuple[tuple[Any, Any], ...]
    output_parts: tuple[tuple[Any, Any], ...]


class BatchTrace(NamedTuple):
    """What :meth:`RegularizedLSTM.forward_batch` leaves for :meth:`~RegularizedLSTM.backward`:
    the batch, what the input, layer and loss parts saved, the last layer's dropped output
    ``top`` (N*T, H) and the gradient of the loss with respect to the head's outputs (None
    without targets)."""

    inputs: np.ndarray
    shape: tuple[int, int]
    training: bool
    input_parts: tuple[tuple[Any, Any], ...]
    layers: tuple[LayerTrace, ...]
    top: np.ndarray
    loss_parts: tuple[tuple[Any, Any], ...]
    dlogits: np.ndarray | None


def _settings_doc(cell="lstm"):
    """The numpydoc lines of every setting, from the declaration."""
    lines = []
    for name, default, spec in settings():
        if name not in _constructor_names(cell):
            continue
        kind = ModelConfig.__annotations__[name]
        kind = getattr(kind, "__name__", None) or str(kind).replace("typing.", "")
        shown = "" if name == "hidden_size" else f", default {default!r}"
        lines.append(f"    {name} : {kind}{shown}")
        lines.append(f"        {spec.doc[0].upper()}{spec.doc[1:]}.")
    return "\n".join(lines)


class RegularizedLSTM:
    """An LSTM language model with every regularizer built in, composed of declared parts.

    The settings below are those of :class:`~rnnreg.model_config.ModelConfig` (each declared
    there once: its type, default, valid values and command-line form). The first five may be
    given by position, as in the notebook: ``RegularizedLSTM(vocab_size, hidden_size,
    output_size, dropout_keep_prob, use_layer_norm)``; the rest by keyword.

    Parameters
    ----------
    <settings>
    seed : int, np.random.Generator or None
        Source of the initial weights and of every dropout mask.

    Attributes
    ----------
    params : dict name -> ndarray
        ``W{l}`` (D_l + H, 4H) holds layer l's ``Wx`` (first D_l rows) and ``Wh`` (last H rows);
        ``b{l}`` (4H,); ``ln{l}.<name>`` for layer norm; ``embedding`` (V, E); ``Why`` (H, O); ``by``.
    grads : dict name -> ndarray
        Filled by :meth:`backward`.
    model_config : ModelConfig
        The settings; each is also an attribute (``model.hidden_size``), read-only.
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

    #: The cell this class stacks (the ``cell`` setting; build_model picks the class by it).
    cell_name = "lstm"

    def __init__(self, *args, seed=None, **settings):
        kind = type(self).__name__
        if len(args) > len(POSITIONAL):
            raise TypeError(
                f"{kind} takes at most {len(POSITIONAL)} settings by "
                f"position ({', '.join(POSITIONAL)}), got {len(args)}"
            )
        for name, value in zip(POSITIONAL, args):
            if name in settings:
                raise TypeError(f"{kind} got multiple values for {name!r}")
            settings[name] = value
        unknown = sorted(set(settings) - set(setting_names()))
        if unknown:
            raise TypeError(
                f"{kind} got unexpected keyword arguments {unknown}; its "
                f"settings are {', '.join(_constructor_names())} and seed"
            )
        # The class is the cell: a config's ``cell`` (from a file, a sweep) must agree with it.
        if settings.setdefault("cell", self.cell_name) != self.cell_name:
            raise ValueError(
                f"{kind} stacks {self.cell_name.upper()} cells, got cell={settings['cell']!r}: "
                f"build_model(**settings) picks the class of a config's cell"
            )
        config = ModelConfig(**settings)
        object.__setattr__(self, "model_config", config)
        self.rng = v.as_generator(seed, "seed")
        self._cell = cell_of(config)
        self._input = input_of(config)
        self._head = head_of(config)
        # The parts this model's settings switch on, by place (each place's hooks: Regularizer).
        self._parts: dict[Place, list[Any]] = {place: active_parts(config, place) for place in Place}
        # name -> shape of every parameter, fixed at creation: the contract _check_params enforces
        # (and load_model checks a file against before building anything).
        self._param_shapes = parameter_shapes(config)
        self.params = self._init_params()
        assert {name: p.shape for name, p in self.params.items()} == self._param_shapes
        self._layer_names = [
            self._cell.layer_names(layer, config.use_layer_norm) for layer in range(config.num_layers)
        ]
        # The characters behind the token ids, when the model reads text (a data.Vocabulary):
        # saved with the model, needed to generate text.
        self.vocabulary = None
        #: The names of a classifier's classes (class id k is class_names[k]), saved with it.
        self.class_names: tuple[str, ...] | None = None
        self.grads = {}
        self._trace: BatchTrace | None = None
        #: The AR + TAR terms of the last training forward pass (already in its loss).
        self.last_penalty = 0.0

    # Every setting reads as an attribute (model.hidden_size), from the one declaration; the
    # settings are fixed at creation (a new model is built for others).
    def __getattr__(self, name: str) -> Any:
        config = self.__dict__.get("model_config")
        if config is not None and name in _SETTING_NAMES:
            return getattr(config, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        if name in _SETTING_NAMES:
            raise AttributeError(
                f"{name} is a setting, fixed when the model is made; build a "
                f"new model: {type(self).__name__}(**dict(model.config(), {name}=...))"
            )
        object.__setattr__(self, name, value)

    @property
    def standardizer(self):
        """The per-feature standardization of real-valued inputs (a
        :class:`rnnreg.sequences.Standardizer`, fitted by ``fit`` with
        ``TrainConfig(standardize=True)`` on the training split only), or None. It is applied
        to every input the model reads — in training, evaluation and :meth:`predict` — and
        saved with the model."""
        return getattr(self._input, "standardizer", None)

    @standardizer.setter
    def standardizer(self, value):
        from .sequences import Standardizer

        if value is None:
            if not self.model_config.tokens:
                self._input.standardizer = None
            return
        if self.model_config.tokens:
            raise ValueError("a standardizer is for real-valued inputs; this model reads token ids")
        self._input.standardizer = Standardizer.checked(value.mean, value.scale, self.model_config.input_size)

    @property
    def dtype(self):
        """The float dtype of the parameters and activations (a np.dtype)."""
        return self.model_config.float_dtype

    # ------------------------------------------------------------------ parameters
    def _init_params(self):
        config = self.model_config
        params = initial_parameters(
            config.init,
            self.rng,
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            output_size=config.output_size,
            embedding_size=config.embedding_size,
            layer_input_sizes=stack_input_sizes(
                self._input.features(config), config.hidden_size, config.num_layers
            ),
            use_layer_norm=config.use_layer_norm,
            forget_bias=config.forget_bias,
            recurrent_init=config.recurrent_init,
            cell=self._cell,
        )
        if config.tie_weights:  # drawn all the same, so the other parameters match an untied model
            del params["Why"]
        # One buffer for all of them (rnnreg.parameters): optimizers step it in one call.
        layout = Layout.of({name: np.shape(p) for name, p in params.items()}, self.dtype)
        return layout.pack(params)

    def _gate_block(self, gate):
        H = self.hidden_size
        if gate not in self._cell.gates:
            raise AttributeError(
                f"a {self._cell.name.upper()} has no gate {gate!r}; its gates are {self._cell.gates}"
            )
        k = self._cell.gates.index(gate)
        return self.params["W0"][:, k * H : (k + 1) * H]

    Wi = property(lambda self: self._gate_block("i"), doc="Layer 0 input-gate weights (D+H, H).")
    Wf = property(lambda self: self._gate_block("f"), doc="Layer 0 forget-gate weights (D+H, H).")
    Wo = property(lambda self: self._gate_block("o"), doc="Layer 0 output-gate weights (D+H, H).")
    Wc = property(lambda self: self._gate_block("g"), doc="Layer 0 candidate weights (D+H, H).")
    Why = property(
        lambda self: self._head.projection(self.params),
        doc="Output projection (H, output_size); the embedding's transpose when tied.",
    )

    def config(self) -> dict[str, Any]:
        """The settings (without the seed), as files store them: ``RegularizedLSTM(
        **model.config())`` builds a model of the same architecture."""
        return self.model_config.to_dict()

    def parameters(self):
        """The parameters by name (the arrays themselves, updated in place by optimizers)."""
        return self.params

    def __repr__(self) -> str:
        """The class, the sizes, and every setting that differs from what those sizes alone
        give — a call that builds a model of the same architecture."""
        config = self.model_config
        sizes = {
            n: getattr(config, n) for n in ("vocab_size", "input_size", "hidden_size") if getattr(config, n)
        }
        plain = ModelConfig(**sizes, cell=config.cell, task=config.task, output_size=config.output_size)
        shown = [f"{name}={value!r}" for name, value in sizes.items()]
        for name, _, _ in settings():
            value = getattr(config, name)
            if name in sizes or name == "cell":
                continue
            if name in ("task", "output_size"):
                bare = ModelConfig(**sizes, cell=config.cell) if config.task == "next-token" else None
                if bare is not None and getattr(bare, name) == value:
                    continue
            elif value == getattr(plain, name):
                continue
            shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def summary(self, print_fn=print) -> None:
        """Print the model's parts (Keras's ``summary``): the input, each recurrent layer and
        the head, with the shape each gives and its parameters; the total; and the
        regularizers that act, where, with their settings. ``print_fn`` takes each line."""
        from .regularizers import Place

        # The rows are the parts' own declarations of their parameters (as parameter_shapes
        # builds the model from them), each part with the shape of what it gives.
        config = self.model_config
        H, cell = config.hidden_size, type(self).__name__.replace("Regularized", "")
        count = lambda shapes: sum(math.prod(shape) for shape in shapes.values())  # noqa: E731
        features = self._input.features(config)
        rows = [
            (
                f"input ({self._input.name})",
                f"(batch, steps, {features})",
                count(self._input.parameter_shapes(config)),
            )
        ]
        for layer, D in enumerate(stack_input_sizes(features, H, config.num_layers)):
            shapes = self._cell.parameter_shapes(layer, D, H, config.use_layer_norm)
            rows.append((f"{cell} layer {layer}", f"(batch, steps, {H})", count(shapes)))
        steps = "" if config.per_sequence else "steps, "
        head = f"head ({config.task}{', ' + config.pooling + ' pooling' if config.per_sequence else ''})"
        rows.append(
            (head, f"(batch, {steps}{config.output_size})", count(self._head.parameter_shapes(config)))
        )
        width = max(len(r[0]) for r in rows) + 2
        line = "-" * (width + 40)
        print_fn(f"{repr(self)}")
        print_fn(line)
        print_fn(f"{'part':<{width}}{'output shape':<26}{'parameters':>14}")
        print_fn(line)
        for part, shape, count in rows:
            print_fn(f"{part:<{width}}{shape:<26}{count:>14,}")
        print_fn(line)
        print_fn(f"{'total':<{width}}{'':<26}{self.parameter_count():>14,}  ({self.dtype.name})")
        acting = [
            (
                place.value,
                type(part).__name__,
                ", ".join(
                    f"{n}={getattr(config, n)!r}" for n in part.settings if getattr(config, n) is not None
                ),
            )
            for place in Place
            for part in active_parts(config, place)
        ]
        print_fn("regularizers:" + (" none" if not acting else ""))
        for place, name, values in acting:
            print_fn(f"  {name} ({place}): {values}")

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
            raise ValueError(f"model.params must hold exactly {sorted(shapes)}, got {sorted(params)}")
        for name, shape in shapes.items():
            p = params.get(name)
            if type(p) is not np.ndarray or p.shape != shape or p.dtype != dtype or not p.flags.c_contiguous:
                got = f"shape {p.shape}, dtype {p.dtype}" if isinstance(p, np.ndarray) else type(p).__name__
                raise ValueError(
                    f"model.params[{name!r}] must be a C-contiguous {dtype} array of shape "
                    f"{shape}, got {got}; change values in place (model.params[{name!r}][...] = "
                    "new) or with load_state_dict"
                )

    def weights(self):
        """The weight matrices weight decay applies to, as a list."""
        return [self.params[name] for name in self.decay_parameter_names()]

    def state_dict(self):
        """A copy of every parameter, by name."""
        return {name: p.copy() for name, p in self.params.items()}

    def load_state_dict(self, state):
        """Copy parameters in place (views such as ``Wf`` stay valid); shapes must match."""
        self.check_state_dict(state)
        for name, p in self.params.items():
            p[...] = np.asarray(state[name])

    def check_state_dict(self, state):
        """Raise ValueError naming what in ``state`` does not fit this model (names, shapes,
        non-finite values), changing nothing: the state protocol's check."""
        if not isinstance(state, dict):
            raise ValueError(f"state must be a dict name -> array, got {type(state).__name__}")
        missing = sorted(set(self.params) - set(state))
        extra = sorted(set(state) - set(self.params))
        if missing or extra:
            raise ValueError(f"state does not match this model: missing {missing}, unexpected {extra}")
        for name, p in self.params.items():
            value = np.asarray(state[name])
            if value.shape != p.shape:
                raise ValueError(f"state[{name!r}] has shape {value.shape}, expected {p.shape}")
            if value.dtype.kind not in "fiu" or not np.isfinite(value).all():
                raise ValueError(f"state[{name!r}] contains NaN or inf")

    def initial_state(self, batch_size):
        """The zero state: one array per name of the cell's state (h, c for the LSTM), each of
        shape (num_layers, batch, hidden)."""
        config = self.model_config
        shape = (config.num_layers, batch_size, config.hidden_size)
        return tuple([np.zeros(shape, config.float_dtype) for _ in self._cell.state_names])

    # ------------------------------------------------------------------ forward / backward
    def forward_batch(self, inputs, targets=None, state=None, training=False, resets=None, lengths=None):
        """Run a batch of sequences.

        Parameters
        ----------
        inputs : int array of shape (N, T), or float array of shape (N, T, input_size)
            Token ids, or real-valued vectors (``input_size``), padded to T steps.
        targets : optional
            Needed for the loss and for :meth:`backward`. By task: next tokens (N, T) of ints;
            ``forecast``: (N, T, output_size) floats; ``classify``: (N,) class ids;
            ``regress``: (N, output_size) floats.
        state : (h, c), optional
            Each (num_layers, N, H); zeros when None.
        training : bool
            Draw dropout masks (otherwise every regularizer that adds noise is off).
        resets : bool array of shape (N, T), optional
            True where a new document starts: the state of that row is zeroed before that step
            (and no gradient flows back across it).
        lengths : int array of shape (N,), optional
            Each sequence's length (1 to T; default T): past it a row stops updating, inside the
            compiled time loop, so its final state is its last valid step's, and the steps past
            it add nothing to the loss or the gradients — a padded batch gives what each
            sequence gives alone.

        Returns
        -------
        loss : float or None
            The task's loss (None without targets) — mean cross-entropy over the tokens or the
            sequences, or mean squared error — plus, in training, the AR and TAR penalties
            (also in :attr:`last_penalty`).
        outputs : ndarray
            (N, T, output_size) for next-token and forecast (logits, or values), (N,
            output_size) for classify (logits) and regress.
        state : (h, c), the final states, each (num_layers, N, H)
        """
        self._check_params()
        config, params, rng, cell = self.model_config, self.params, self.rng, self._cell
        inputs = self._input.check(inputs, config)
        N, T = inputs.shape[:2]
        valid = _valid_steps(lengths, N, T)
        if targets is not None:
            targets = self._head.check_targets(targets, (N, T), config)
        state = self._check_state(state, N)
        H = config.hidden_size
        # The parts act in the documented draw order (rnnreg.regularizers).
        x = self._input.forward(inputs, params)
        input_parts = []
        if training:
            for part in self._parts[Place.INPUT]:
                x, saved = part.forward(x, inputs, config, rng)
                input_parts.append((part, saved))
        segments = Segments.of(resets, N, T)
        finals = tuple([np.empty_like(s) for s in state])
        layers = []
        h = x
        for layer in range(config.num_layers):
            Wx, Wh = cell.weights(params, layer, H)
            weight_parts = []
            if training:
                for part in self._parts[Place.WEIGHTS]:
                    Wx, Wh, saved = part.forward(Wx, Wh, config, rng)
                    weight_parts.append((part, saved))
            recurrence: dict[str, np.ndarray] = {}
            for part in self._parts[Place.RECURRENCE]:
                recurrence.update(part.draw((N, T, H), config, rng, training))
            if valid is not None:  # a row past its length stops updating: its state carries on
                recurrence = cell.freeze(recurrence, valid, H, config.float_dtype)
            h, final, run = cell.forward(
                layer,
                np.ascontiguousarray(x),
                tuple([s[layer] for s in state]),
                Wx,
                Wh,
                params,
                recurrence,
                segments,
                config.use_layer_norm,
            )
            for whole, part_state in zip(finals, final):
                whole[layer] = part_state
            x, output_parts = h, []
            if training:
                for part in self._parts[Place.OUTPUT]:
                    x, saved = part.forward(x, layer, config, rng)
                    output_parts.append((part, saved))
            layers.append(LayerTrace(run, tuple(weight_parts), tuple(output_parts)))
        top = np.ascontiguousarray(x).reshape(N * T, H)
        loss, logits, dlogits = self._head.forward(top, params, targets, valid, (N, T))
        penalty, loss_parts = 0.0, []
        if targets is not None:
            if training:
                for part in self._parts[Place.LOSS]:
                    with np.errstate(over="ignore", invalid="ignore"):
                        value, saved = part.penalty(top, h, config, valid)
                    _check_penalty(part, config, value)
                    penalty += value
                    loss_parts.append((part, saved))
            loss += penalty
        self.last_penalty = penalty
        self._trace = BatchTrace(
            inputs, (N, T), training, tuple(input_parts), tuple(layers), top, tuple(loss_parts), dlogits
        )
        return loss, (logits if self.model_config.per_sequence else logits.reshape(N, T, -1)), finals

    def largest_cell_state(self, valid=None) -> float:
        """The largest absolute cell state ``|c|`` of the last :meth:`forward_batch`, over every
        layer, sequence and step — or over the steps where ``valid`` (N, T) is True (the trainer
        logs it: how far the cells have grown)."""
        if self._trace is None:
            raise RuntimeError("largest_cell_state() needs a preceding forward_batch(...)")
        largest = 0.0
        for layer in self._trace.layers:
            cells = self._cell.cell_states(layer.run)
            if valid is not None:
                cells = cells[valid]
            if cells.size:
                largest = max(largest, float(np.abs(cells).max()))
        return largest

    def backward(self, dh_final=None, dc_final=None):
        """Gradients of the last :meth:`forward_batch` loss for every parameter.

        ``dh_final`` / ``dc_final`` (num_layers, N, H) are optional upstream gradients of the
        final states. Returns (and stores in ``self.grads``) a dict name -> gradient.
        """
        trace = self._trace
        if trace is None or trace.dlogits is None:
            raise RuntimeError("backward() needs a preceding forward_batch(...) with targets")
        self._check_params()
        config, params, cell = self.model_config, self.params, self._cell
        N, T = trace.shape
        H = config.hidden_size
        if dc_final is not None and "c" not in self._cell.state_names:
            raise ValueError(
                f"dc_final is the gradient of a final cell state; a {self.cell_name.upper()} keeps "
                f"only {', '.join(self._cell.state_names)}: pass dh_final alone"
            )
        upstream = []
        for name, given in zip(self._cell.state_names, (dh_final, dc_final)):
            if given is not None:
                given = v.float_array(given, f"d{name}_final", ndim=3, dtype=self.dtype)
                v.check_shape(
                    given, f"d{name}_final", (config.num_layers, N, H), "(num_layers, batch, hidden_size)"
                )
            upstream.append(given)
        # Every gradient goes to its place in one packed buffer (rnnreg.parameters), laid out
        # as the parameters are; the kernels write the largest ones there themselves.
        layout = (
            params.layout
            if isinstance(params, Packed)
            else Layout.of({name: p.shape for name, p in params.items()}, self.dtype)
        )
        places = layout.empty()
        grads, dx = self._head.backward(trace.dlogits, trace.top, params, out=places)
        shared = grads.pop("embedding", None)  # tied weights: the head's share, added below
        for part, saved in trace.loss_parts:
            with np.errstate(over="ignore", invalid="ignore"):
                dx = part.backward_top(dx, trace.top, saved, config)
            _check_penalty(part, config, dx)
        dx = dx.reshape(N, T, H)
        for layer in reversed(range(config.num_layers)):
            w_name, b_name, _ = self._layer_names[layer]
            layer_trace = trace.layers[layer]
            dh = dx
            for part, saved in reversed(layer_trace.output_parts):
                dh = part.backward(dh, saved)
            if layer == config.num_layers - 1:
                for part, saved in trace.loss_parts:
                    with np.errstate(over="ignore", invalid="ignore"):
                        dh = part.backward_h(dh, saved, config)
                    _check_penalty(part, config, dh)
            # The first layer needs no input gradient when the input takes none (one-hot ids):
            # the kernel skips that product.
            need_dx = layer > 0 or self._input.takes_gradient
            dx, g = cell.backward(
                layer,
                np.ascontiguousarray(dh, dtype=self.dtype),
                tuple([None if u is None else u[layer] for u in upstream]),
                layer_trace.run,
                need_dx,
                config.use_layer_norm,
                dW=places[w_name],
            )
            place = places[w_name]
            D = place.shape[0] - H
            dWx, dWh = g.pop("dWx"), g.pop("dWh")  # views of place
            for part, saved in reversed(layer_trace.weight_parts):
                new_x, new_h = part.backward(dWx, dWh, saved)
                if new_x is not dWx:  # a part that gave a new array instead of scaling in place
                    place[:D] = new_x
                if new_h is not dWh:
                    place[D:] = new_h
                dWx, dWh = place[:D], place[D:]
            grads[w_name] = place
            grads[b_name] = g.pop("db")
            grads.update(g)  # the layer-norm parameters', by their full names
        if self._input.takes_gradient:  # (real-valued inputs have no parameters to reach)
            for part, saved in reversed(trace.input_parts):
                dx = part.backward(dx, trace.inputs, saved)
        grads.update(self._input.backward(dx, trace.inputs, params))
        if shared is not None:
            grads["embedding"] += shared
        for name, place in places.items():  # what the parts did not write in place
            if grads[name] is not place:
                place[...] = grads[name]
        # One pass over every gradient (the kernels check their activations' gradients).
        v.finite_result(places.buffer(), "the backward pass", "the weights or activations")
        self.grads = places
        return self.grads

    def _check_state(self, state, batch):
        if state is None:
            return self.initial_state(batch)
        names = self._cell.state_names
        if not isinstance(state, (tuple, list)) or len(state) != len(names):
            raise TypeError(
                f"state must be a {'pair' if len(names) == 2 else 'tuple'} "
                f"({', '.join(names)}), each (num_layers, batch, hidden_size)"
            )
        expected = (self.num_layers, batch, self.hidden_size)
        checked = []
        for name, part in zip(names, state):
            part = v.float_array(part, f"state {name}", ndim=3, dtype=self.dtype)
            v.check_shape(part, f"state {name}", expected, "(num_layers, batch, hidden_size)")
            checked.append(part)
        return tuple(checked)

    # ------------------------------------------------------------------ using a trained model
    def _needs_a_language_model(self, what):
        task = self.model_config.task
        if task != "next-token":
            raise ValueError(
                f"{what} samples next tokens: it needs a language model (a vocabulary and task "
                f"'next-token'); this model's task is {task!r} — use predict"
            )

    def logits(
        self, tokens: ArrayLike, state: tuple[ArrayLike, ArrayLike] | None = None
    ) -> tuple[NDArray[np.floating], tuple[NDArray[np.floating], NDArray[np.floating]]]:
        """Next-token logits for token ids ``tokens`` (N, T) — or (T,) for one sequence — from
        ``state`` (zeros when None), without dropout. Returns ``(logits (N, T, output_size),
        state)``; pass the state back to continue the same sequences."""
        self._needs_a_language_model("logits")
        ids = np.asarray(tokens)
        one = ids.ndim == 1
        _, logits, new_state = self.forward_batch(ids[None, :] if one else ids, None, state, training=False)
        return (logits[0] if one else logits), new_state

    def generate(
        self,
        prime: str | Sequence[int],
        length: int,
        temperature: float | None = None,
        top_k: int | None = None,
        rng: None | int | np.random.Generator = None,
        *,
        top_p: float | None = None,
        greedy: bool = False,
        repetition_penalty: float | None = None,
        stop: str | Sequence[str] | None = None,
        num_sequences: int | None = None,
    ) -> Any:
        """Sample ``length`` tokens after ``prime``.

        Parameters
        ----------
        prime : str or sequence of int
            Text (needs ``model.vocabulary``) or token ids to start from. A character the
            vocabulary does not hold is an error naming it (it would be read as the unknown
            symbol, which is not what was typed).
        length : int
            Tokens to generate.
        temperature : float > 0, optional
            Each next token is drawn from softmax(logits / temperature) (default 1).
        top_k : int, optional
            Draw among the ``top_k`` most likely tokens only.
        rng : np.random.Generator, int seed or None
            The same seed gives the same text.
        top_p : float in (0, 1], optional
            Nucleus sampling: draw among the smallest set of most likely tokens whose
            probability reaches ``top_p`` (after ``top_k``, as Hugging Face's ``generate``).
        greedy : bool
            Take the most likely token at every step (no draw): temperature, top_k, top_p and
            num_sequences > 1 are refused with it.
        repetition_penalty : float >= 1, optional
            Keskar et al.'s (2019, CTRL) penalty, as Hugging Face's ``generate`` applies it: the
            logit of every token already in the prime or the text so far is divided by it when
            positive, multiplied by it when negative — a greedy or cold draw loops less.
        stop : str or sequence of str, optional
            Text that ends the generation once the text generated (after the prime) ends with
            it; the stop text is kept. Fewer than ``length`` characters may then come back.
        num_sequences : int, optional
            Generate this many sequences from the same prime, one after another from ``rng``
            (the first is the one a call without it gives); a list comes back.

        Returns
        -------
        str or ndarray of int64, or a list of them
            The generated text when prime is text, else the generated ids; a list of
            ``num_sequences`` of them when it is given.

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
        >>> len(model.generate("ab", 10, rng=0, num_sequences=3))
        3
        """
        self._needs_a_language_model("generate")
        config = self.model_config
        if config.output_size != config.vocab_size:
            raise ValueError(
                "generate feeds each drawn token back in as the next input: it needs a model "
                f"that reads the tokens it predicts (output_size == vocab_size); this one "
                f"predicts {config.output_size} tokens and reads {config.vocab_size}"
            )
        length = v.positive_int(length, "length", minimum=0)
        if length > MAX_GENERATED:
            raise ValueError(f"length must be at most {MAX_GENERATED:,} tokens a call, got {length:,}")
        if greedy:
            settings = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
            given = [name for name, value in settings.items() if value is not None]
            if given:
                raise ValueError(
                    f"greedy takes the most likely token: {' and '.join(given)} would play no part; "
                    "give either greedy or a sampling setting"
                )
            if num_sequences is not None and num_sequences != 1:
                raise ValueError(
                    "greedy gives one sequence (every one would be the same): num_sequences must be 1"
                )
        temperature = 1.0 if temperature is None else v.positive_float(temperature, "temperature")
        if top_k is not None:
            top_k = min(v.positive_int(top_k, "top_k"), self.output_size)
        if top_p is not None:
            top_p = v.probability(top_p, "top_p")
        if repetition_penalty is not None:
            repetition_penalty = v.positive_float(repetition_penalty, "repetition_penalty")
            if repetition_penalty < 1:
                raise ValueError(f"repetition_penalty must be >= 1 (1: none), got {repetition_penalty!r}")
        count = 1 if num_sequences is None else v.positive_int(num_sequences, "num_sequences")
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        if any(not isinstance(text, str) or not text for text in stops):
            raise ValueError(f"stop must be a non-empty text or a list of them, got {stop!r}")
        rng = v.as_generator(rng)
        as_text = isinstance(prime, str)
        if stops and not as_text:
            raise ValueError("stop texts need a text prime (token ids have no text to match)")
        if as_text:
            if self.vocabulary is None:
                raise ValueError(
                    "prime is text but this model has no vocabulary: pass token ids, or set model.vocabulary"
                )
            unknown = sorted(set(str(ch) for ch in prime if ch not in self.vocabulary.index))
            if unknown:
                raise ValueError(
                    f"prime holds characters the model's vocabulary does not: "
                    f"{''.join(unknown)!r}; the model would read each as its unknown "
                    "symbol"
                )
            ids = self.vocabulary.encode(prime)
        else:
            ids = v.token_array(prime, "prime", self.vocab_size, ndim=1)
        seen = ids
        if ids.size == 0:
            ids = np.zeros(1, np.int64)  # no prime: start from the unknown symbol
        primed = self.logits(ids)  # the prime read once: every sequence starts from its state
        sampling = Sampling(temperature, top_k, top_p, greedy)
        results = []
        for _ in range(count):
            out = self._draw(primed, seen, length, sampling, repetition_penalty, stops, rng, as_text)
            if as_text:
                assert self.vocabulary is not None  # checked above: text needs one
                results.append(self.vocabulary.decode(out, unknown=""))
            else:
                results.append(out)
        return results[0] if num_sequences is None else results

    def _draw(self, primed, seen, length, sampling, repetition_penalty, stops, rng, as_text):
        """One generated sequence of ids after a prime (``primed``: its logits and state, as
        :meth:`logits` gives them; ``seen``: its tokens, for the repetition penalty), ending
        early after a stop text."""
        logits, state = primed
        last = logits[-1]
        out = np.empty(length, np.int64)
        counted = np.zeros(last.size, bool)
        counted[seen[seen < last.size]] = True
        text = ""
        longest_stop = max((len(s) for s in stops), default=0)
        for k in range(length):
            if as_text:  # text never holds the unknown symbol (id 0): a draw of length characters
                last = np.where(np.arange(last.size) == 0, -np.inf, last)
            if repetition_penalty is not None and repetition_penalty != 1:
                last = np.where(
                    counted, np.where(last > 0, last / repetition_penalty, last * repetition_penalty), last
                )
            out[k] = _next_token(last, sampling, rng)
            counted[out[k]] = True
            if stops:
                assert self.vocabulary is not None
                text = (text + self.vocabulary.chars[out[k]])[-longest_stop:]
                if any(text.endswith(s) for s in stops):
                    return out[: k + 1]
            if k + 1 < length:
                logits, state = self.logits(out[k : k + 1], state)
                last = logits[-1]
        return out

    # ------------------------------------------------------------------ sequence tasks
    def _outputs(self, X, batch_size):
        """The head's outputs for inputs ``X`` (an array, or a list of sequences of different
        lengths), without dropout, in batches; and the lengths."""
        from .sequences import sequence_inputs

        config = self.model_config
        if config.task == "next-token":
            raise ValueError(
                "predict is for a classify, regress or forecast model; a language model has "
                "logits() and generate()"
            )
        batch_size = v.positive_int(batch_size, "batch_size")
        inputs, lengths = sequence_inputs(X, "X", config)
        parts = []
        for start in range(0, len(lengths), batch_size):
            rows = slice(start, start + batch_size)
            T = int(lengths[rows].max())
            _, out, _ = self.forward_batch(np.ascontiguousarray(inputs[rows, :T]), lengths=lengths[rows])
            if config.task == "forecast" and T < inputs.shape[1]:  # pad back to the longest
                out = np.concatenate(
                    [out, np.zeros((out.shape[0], inputs.shape[1] - T, out.shape[2]), out.dtype)], 1
                )
            parts.append(out)
        return np.concatenate(parts), lengths

    def predict(self, X, batch_size=64):
        """Predictions for sequences ``X`` — an array (N, T, input_size) or a list of (T_i,
        input_size) arrays (token ids for a token model) — without dropout.

        Returns
        -------
        ndarray or list of ndarray
            ``classify``: the most likely class of each sequence (N,); ``regress``: (N,
            output_size); ``forecast``: (N, T, output_size) for an array, or a list of
            (T_i, output_size) arrays for a list.

        Examples
        --------
        >>> import numpy as np
        >>> from rnnreg import RegularizedLSTM
        >>> model = RegularizedLSTM(input_size=3, hidden_size=8, output_size=4, task="classify", seed=0)
        >>> X = [np.ones((5, 3)), np.zeros((2, 3))]          # two sequences, 5 and 2 steps
        >>> model.predict(X).shape, model.predict_proba(X).shape
        ((2,), (2, 4))
        """
        out, lengths = self._outputs(X, batch_size)
        task = self.model_config.task
        if task == "classify":
            return np.argmax(out, axis=1)
        if task == "forecast" and not isinstance(X, np.ndarray):
            return [out[k, :L] for k, L in enumerate(lengths)]
        return out

    def predict_proba(self, X, batch_size=64):
        """Class probabilities (N, output_size) of a classify model: softmax of its logits."""
        if self.model_config.task != "classify":
            raise ValueError(
                f"predict_proba is for a classify model; this one's task is {self.model_config.task!r}"
            )
        logits, _ = self._outputs(X, batch_size)
        z = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(z)
        return probs / probs.sum(axis=1, keepdims=True)

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
        shapes: list[tuple[int, ...]] = [(H, 1)] if L == 1 else []
        shapes.append((L, H, 1))
        state = []
        for name, s in (("h", h), ("c", c)):
            s = v.float_array(s, name, dtype=self.dtype)
            if s.shape not in shapes:
                raise ValueError(f"{name} must have shape {' or '.join(map(str, shapes))}, got {s.shape}")
            state.append(s.reshape(L, 1, H))
        in_shape = np.shape(h)
        loss, _, (h_out, c_out) = self.forward_batch(x[None, :], y[None, :], tuple(state), training=training)
        return loss, h_out.reshape(in_shape), c_out.reshape(in_shape)


def _constructor_names(cell="lstm"):
    """The settings a model class takes: every one but ``cell`` (the class is the cell), and for
    the GRU not the LSTM's own (zoneout of the cell state)."""
    return tuple(
        name for name in setting_names() if name != "cell" and not (cell == "gru" and name == "zoneout_cell")
    )


def _signature(cell="lstm"):
    """The constructor's signature, from the declaration: the notebook's five settings by
    position or keyword, every other by keyword, then ``seed``."""
    P = inspect.Parameter
    params = [P("self", P.POSITIONAL_OR_KEYWORD)]
    for name, default, _ in settings():
        if name not in _constructor_names(cell):
            continue
        kind = P.POSITIONAL_OR_KEYWORD if name in POSITIONAL else P.KEYWORD_ONLY
        params.append(P(name, kind, default=default))
    params.sort(key=lambda p: (p.kind, POSITIONAL.index(p.name) if p.name in POSITIONAL else 0))
    params.append(P("seed", P.KEYWORD_ONLY, default=None))
    return inspect.Signature(params)


# help(RegularizedLSTM), inspect.signature and the docs show the declared settings.
RegularizedLSTM.__init__.__signature__ = _signature()  # type: ignore[attr-defined]
RegularizedLSTM.__doc__ = (RegularizedLSTM.__doc__ or "").replace("    <settings>", _settings_doc())


class RegularizedGRU(RegularizedLSTM):
    """A GRU model with every regularizer that applies to it, built on the same parts as
    :class:`RegularizedLSTM` (inputs, heads, regularizers, trainer, files, export) and taking its
    settings — all but ``zoneout_cell``: a GRU has no cell state (its one state is h, which
    ``zoneout_hidden`` zones out). The cell (``rnnreg.cells.GRUCell``) is PyTorch's and
    Keras's GRU, the reset gate applied after the recurrent product; ``use_layer_norm`` makes it
    the LN-GRU. Its weights per layer: ``W{l}`` (D + H, 3H), ``b{l}`` (3H,), ``bn{l}`` (H,), in
    gate order :data:`~rnnreg.GRU_GATE_ORDER` (r, z, n). The state is ``(h,)``.

    Parameters
    ----------
    <settings>
    seed : int, np.random.Generator or None
        Source of the initial weights and of every dropout mask.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnreg import RegularizedGRU
    >>> model = RegularizedGRU(vocab_size=10, hidden_size=16, recurrent_keep_prob=0.8, seed=0)
    >>> tokens = np.random.default_rng(0).integers(0, 10, size=(4, 7))
    >>> loss, logits, (h,) = model.forward_batch(tokens[:, :-1], tokens[:, 1:], training=True)
    >>> logits.shape, h.shape, model.params["W0"].shape
    ((4, 6, 10), (1, 4, 16), (26, 48))
    """

    cell_name = "gru"
    Wr = property(lambda self: self._gate_block("r"), doc="Layer 0 reset-gate weights (D+H, H).")
    Wz = property(lambda self: self._gate_block("z"), doc="Layer 0 update-gate weights (D+H, H).")
    Wn = property(lambda self: self._gate_block("n"), doc="Layer 0 candidate weights (D+H, H).")

    def __init__(self, *args, seed=None, **settings):
        super().__init__(*args, seed=seed, **settings)

    def forward(self, x, y, h, training=True):  # type: ignore[override]
        """One token sequence, the notebook's interface with the GRU's one state: ``h`` of shape
        (hidden_size, 1) or (num_layers, hidden_size, 1). Returns (loss, h)."""
        x = v.token_array(x, "x", self.vocab_size, ndim=1)
        y = v.token_array(y, "y", self.output_size, ndim=1)
        v.check_shape(y, "y", x.shape, "(matching x)")
        H, L = self.hidden_size, self.num_layers
        h_arr = v.float_array(h, "h", dtype=self.dtype)
        if h_arr.shape not in ([(H, 1)] if L == 1 else []) + [(L, H, 1)]:
            raise ValueError(
                f"h must have shape ({L}, {H}, 1){' or (H, 1)' if L == 1 else ''}, got {h_arr.shape}"
            )
        loss, _, (h_out,) = self.forward_batch(
            x[None, :], y[None, :], (h_arr.reshape(L, 1, H),), training=training
        )
        return loss, h_out.reshape(h_arr.shape)


#: The model class of each cell.
MODEL_CLASSES = {cls.cell_name: cls for cls in (RegularizedLSTM, RegularizedGRU)}


def build_model(*, seed=None, **settings):
    """The model a config describes (a file's, a sweep's, ``model.config()``): a
    :class:`RegularizedGRU` when ``cell="gru"``, else a :class:`RegularizedLSTM`."""
    cell = settings.get("cell", "lstm")
    if cell not in MODEL_CLASSES:
        raise ValueError(f"cell must be one of {', '.join(map(repr, MODEL_CLASSES))}, got {cell!r}")
    return MODEL_CLASSES[cell](seed=seed, **settings)


RegularizedGRU.__init__.__signature__ = _signature("gru")  # type: ignore[attr-defined]
RegularizedGRU.__doc__ = (RegularizedGRU.__doc__ or "").replace("    <settings>", _settings_doc("gru"))
