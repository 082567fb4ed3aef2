"""Every setting of a model, declared once.

:class:`ModelConfig` is a frozen dataclass, in the spirit of nanoGPT's ``GPTConfig``: each field is
one setting with its type, default, valid values (a checker, as scikit-learn declares its
parameter constraints), a one-line doc and its command-line form. Everything that names the
model's settings derives them from here:

* ``RegularizedLSTM(...)``'s keywords, its signature and its ``config()``;
* the model file's and checkpoint's ``model_config`` (``ModelConfig.from_dict`` reads it back,
  settings added after the file was written taking their defaults);
* the command line's model options (``rnnreg train --help``), their conversion to the Python
  convention (``--dropout P`` is ``dropout_keep_prob = 1 - P``), and so the sweeps' names;
* the docs' option list and the test that every setting survives save, load and resume.

A new setting is one field here (``setting(...)``) and the part that acts on it.
"""

import dataclasses
import functools
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from . import _validation as v
from .cells import CELLS
from .heads import REGRESSION_LOSSES as _HEAD_LOSSES
from .init import DEFAULT_FORGET_BIAS, DEFAULT_INIT, INIT_SCHEMES

__all__ = [
    "ModelConfig",
    "Setting",
    "settings",
    "setting_spec",
    "names",
    "cli_settings",
    "POSITIONAL",
    "drop_probability",
    "penalty_rate",
]

#: What a model can predict: the next token of a text, a class or a vector per sequence, a vector
#: per step.
TASKS = ("next-token", "classify", "regress", "forecast")
#: The recurrent cells (rnnreg.cells).
CELL_NAMES = tuple(CELLS)
#: How a per-sequence head reads a sequence's outputs.
POOLINGS = ("last", "mean")
#: The losses of the real-valued heads (defined, formula and gradient, in rnnreg.heads).
REGRESSION_LOSSES = tuple(_HEAD_LOSSES)
#: The command line's conventions for a setting's value.
PLAIN, DROP, SWITCH = "plain", "drop", "switch"
#: A Setting's cli_default when the command line's default is Python's.
_SAME = "<same as Python's>"


# ----------------------------------------------------------------------------- checkers
# Each takes (value, name) and returns the value in its canonical type, or raises TypeError or
# ValueError naming the setting.
def boolean(value, name):
    """True or False (a NumPy bool too) — never a string or a number, which ``bool()`` would
    silently read as True (``tie_weights="no"``)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}")


def optional(check):
    def checked(value, name):
        return None if value is None else check(value, name)

    checked.__doc__ = f"None, or {check.__doc__ or check.__name__}"
    return checked


def one_of(choices):
    def checked(value, name):
        if isinstance(value, str) or value is None:
            if value in choices:
                return value
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")

    return checked


def float_dtype(value, name):
    """float32 or float64 (a dtype, a type or its name); kept as its name."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64, got {value!r}") from None
    if dtype not in v.FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {dtype}")
    return dtype.name


def size(value, name):
    """A positive int below 2**31 (the kernels' BLAS integer)."""
    value = v.positive_int(value, name)
    if value >= 2**31:
        raise ValueError(f"{name} must be below 2**31, got {value}")
    return value


def layers(value, name):
    value = v.positive_int(value, name)
    if value > 1024:
        raise ValueError(f"{name} {value} is not a model rnnreg builds (at most 1024)")
    return value


# ----------------------------------------------------------------------------- text -> value
# The command line's value types (argparse calls them with the text typed).
def _number(text):
    try:
        return float(text)
    except ValueError:
        import argparse

        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def drop_probability(text):
    """A dropout or zoneout rate: the probability of dropping (or keeping), in [0, 1)."""
    value = _number(text)
    if not 0.0 <= value < 1.0:
        import argparse

        raise argparse.ArgumentTypeError(
            f"{text} is not in [0, 1): it is the probability of dropping a unit (0 = off)"
        )
    return value


def penalty_rate(text):
    """A penalty rate (AR's α, TAR's β): a finite number >= 0."""
    value = _number(text)
    if not (value >= 0.0 and math.isfinite(value)):
        import argparse

        raise argparse.ArgumentTypeError(f"{text} is not a finite number >= 0 (0 = off)")
    return value


# ----------------------------------------------------------------------------- the declaration
@dataclasses.dataclass(frozen=True)
class Setting:
    """How one model setting is checked, documented and spelled on the command line.

    ``flag`` is its command-line name (None: not an option, e.g. ``vocab_size``, which the data
    decides). ``cli`` is its command-line convention: ``"plain"`` (the same value),
    ``"drop"`` (the option is the probability of dropping, the setting the probability of
    keeping: ``--dropout 0.3`` is ``dropout_keep_prob=0.7``) or ``"switch"`` (``--layer-norm``).
    ``parse`` turns the option's text into its value; ``cli_default`` is the command line's own
    default where it differs from Python's (float32 for ``dtype``)."""

    check: Callable[[Any, str], Any]
    doc: str
    flag: str | None = None
    cli: str = PLAIN
    parse: Callable[[str], Any] | None = None
    cli_default: Any = _SAME
    choices: tuple[Any, ...] | None = None
    metavar: str | None = None
    cli_doc: str | None = None  # the option's help, where it is not ``doc`` (a drop rate)

    @property
    def help(self) -> str:
        return self.cli_doc or self.doc

    def to_cli(self, value):
        """The command line's form of a setting's value (a keep probability as a drop rate)."""
        if self.cli == DROP and value is not None:
            return 1.0 - value
        return value

    def from_cli(self, value):
        """The setting's value from its command-line form (the conversion is its own inverse)."""
        return self.to_cli(value)


def setting(default, check, doc, **cli):
    """A ModelConfig field: its default, and its :class:`Setting` (checker, doc, command line)."""
    return dataclasses.field(default=default, metadata={"setting": Setting(check, doc, **cli)})


#: The constructor arguments that may be given by position, in this order (the notebook's
#: ``RegularizedLSTM(vocab_size, hidden_size, output_size, dropout_keep_prob, use_layer_norm)``).
POSITIONAL = ("vocab_size", "hidden_size", "output_size", "dropout_keep_prob", "use_layer_norm")


def _keep(doc, flag, drop_doc, optional_=False):
    """A keep probability in (0, 1] (1: off; None too with ``optional_``: the general rate's)
    whose command-line form is a drop rate."""
    return dict(
        check=optional(v.probability) if optional_ else v.probability,
        doc=doc,
        flag=flag,
        cli=DROP,
        parse=drop_probability,
        metavar="P",
        cli_doc=drop_doc,
    )


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The settings of a :class:`~rnnreg.RegularizedLSTM` or :class:`~rnnreg.RegularizedGRU`,
    checked when made.

    ``ModelConfig(**model.config())`` rebuilds the declaration of a model; ``to_dict`` is what
    files store. Resolved at creation: ``output_size`` (None: ``vocab_size``), ``embedding_size``
    (None with ``tie_weights``: ``hidden_size``), ``forget_bias`` (None: the scheme's),
    ``dtype`` (its name). Cross-setting rules (tying needs an embedding of the hidden size, ...)
    are checked here too; a regularizer's own rule lives with the regularizer
    (``rnnreg.regularizers``) and is called from here.

    Examples
    --------
    >>> from rnnreg.model_config import ModelConfig
    >>> config = ModelConfig(vocab_size=50, hidden_size=32, dropout_keep_prob=0.8)
    >>> config.output_size, config.dtype
    (50, 'float64')
    >>> ModelConfig.from_dict(config.to_dict()) == config
    True
    >>> ModelConfig(vocab_size=50, hidden_size=32, tie_weights="no")
    Traceback (most recent call last):
        ...
    TypeError: tie_weights must be True or False, got 'no'
    """

    # -- sizes
    vocab_size: int | None = setting(
        None, optional(size), "number of input tokens (the data's vocabulary), for token inputs"
    )
    input_size: int | None = setting(
        None, optional(size), "features of each step, for real-valued inputs (instead of vocab_size)"
    )
    task: str | None = setting(
        None,
        optional(one_of(TASKS)),
        "what the model predicts: 'next-token' (the default with vocab_size), 'classify' or "
        "'regress' (one output per sequence) or 'forecast' (one output per step)",
        flag="task",
        choices=TASKS,
        cli_doc="what the model predicts (default: next-token for text; the data's own for sequence "
        "data: classify for class labels, regress for target vectors, forecast for per-step targets)",
    )
    regression_loss: str = setting(
        "mse",
        one_of(REGRESSION_LOSSES),
        "the loss of regress and forecast: mean squared error, mean absolute error, or Huber's (delta 1)",
        flag="regression-loss",
        choices=REGRESSION_LOSSES,
    )
    pooling: str = setting(
        "last",
        one_of(POOLINGS),
        "what a per-sequence head reads: the last valid step's output, or the mean over the valid steps",
        flag="pooling",
        choices=POOLINGS,
    )
    hidden_size: int = setting(
        None, size, "units of every recurrent layer", flag="hidden", cli_default=256, parse=int
    )
    output_size: int | None = setting(None, optional(size), "number of output classes (default: vocab_size)")
    num_layers: int = setting(1, layers, "stacked recurrent layers", flag="layers", parse=int)
    embedding_size: int | None = setting(
        None,
        optional(size),
        "learn an embedding of this size (default: none, one-hot inputs)",
        flag="embedding",
        parse=int,
    )
    dtype: str = setting(
        "float64",
        float_dtype,
        "floating-point type of the weights and activations",
        flag="dtype",
        cli_default="float32",
        choices=("float64", "float32"),
    )
    # -- initialization
    init: str = setting(
        DEFAULT_INIT,
        one_of(INIT_SCHEMES),
        "how the initial weights are drawn: rnnreg's uniform(±1/√H), PyTorch's defaults or Keras's",
        flag="init",
        choices=INIT_SCHEMES,
    )
    forget_bias: float | None = setting(
        None,
        optional(v.finite_float),
        "added to every forget-gate bias (default: the scheme's: 0, or 1 for keras)",
        flag="forget-bias",
        parse=float,
    )
    recurrent_init: str | None = setting(
        None,
        optional(one_of(("orthogonal",))),
        "'orthogonal' draws every Wh orthogonal, whatever the scheme",
        flag="recurrent-init",
        choices=("orthogonal",),
    )
    # -- the cell
    cell: str = setting(
        "lstm",
        one_of(CELL_NAMES),
        "the recurrent cell: 'lstm' (RegularizedLSTM) or 'gru' (RegularizedGRU, PyTorch's convention)",
        flag="cell",
        choices=CELL_NAMES,
    )
    use_layer_norm: bool = setting(
        False,
        boolean,
        "layer-normalized cells: the LN-LSTM or the LN-GRU (Ba et al. 2016)",
        flag="layer-norm",
        cli=SWITCH,
    )
    # -- dropout (Zaremba et al. 2014; Gal & Ghahramani 2016; AWD-LSTM's separate rates)
    dropout_keep_prob: float = setting(
        1.0,
        **_keep(
            "keep probability of non-recurrent dropout: on embedded inputs, between "
            "layers and on the output (each can be set apart below)",
            "dropout",
            "probability of dropping a unit in non-recurrent dropout, as in PyTorch "
            "and Keras (0 = off); the Python API takes dropout_keep_prob = 1 - P",
        ),
    )
    input_keep_prob: float | None = setting(
        None,
        **_keep(
            "keep probability of dropout on the embedded inputs (AWD-LSTM's dropouti; "
            "default: dropout_keep_prob)",
            "input-dropout",
            "probability of dropping an embedded input unit (AWD-LSTM's dropouti; default: --dropout)",
            optional_=True,
        ),
    )
    between_keep_prob: float | None = setting(
        None,
        **_keep(
            "keep probability of dropout between stacked layers (AWD-LSTM's dropouth; "
            "default: dropout_keep_prob)",
            "between-dropout",
            "probability of dropping a unit between layers (AWD-LSTM's dropouth; default: --dropout)",
            optional_=True,
        ),
    )
    output_keep_prob: float | None = setting(
        None,
        **_keep(
            "keep probability of dropout on the last layer's output (AWD-LSTM's "
            "dropout; default: dropout_keep_prob)",
            "output-dropout",
            "probability of dropping a unit of the last layer's output (AWD-LSTM's "
            "dropout; default: --dropout)",
            optional_=True,
        ),
    )
    variational: bool = setting(
        False,
        boolean,
        "one non-recurrent dropout mask per sequence, reused at every step",
        flag="variational",
        cli=SWITCH,
    )
    recurrent_keep_prob: float = setting(
        1.0,
        **_keep(
            "keep probability of the mask on h(t-1), one per sequence",
            "recurrent-dropout",
            "probability of dropping a unit of h(t-1) (one mask per sequence)",
        ),
    )
    weight_keep_prob: float = setting(
        1.0,
        **_keep(
            "keep probability of each recurrent weight Wh (weight-drop, one mask per batch)",
            "weight-drop",
            "probability of dropping a weight of Wh (DropConnect)",
        ),
    )
    input_weight_keep_prob: float = setting(
        1.0,
        **_keep(
            "keep probability of each input weight Wx (DropConnect on Wx, one mask per batch)",
            "input-weight-drop",
            "probability of dropping a weight of Wx (DropConnect)",
        ),
    )
    embedding_keep_prob: float = setting(
        1.0,
        **_keep(
            "keep probability of each embedding row, per batch (embedding dropout; needs an embedding)",
            "embedding-dropout",
            "probability of dropping a whole row of the embedding matrix per batch "
            "(AWD-LSTM; needs --embedding or --tie-weights)",
        ),
    )
    # -- zoneout (Krueger et al. 2016)
    zoneout_hidden: float = setting(
        0.0,
        v.rate,
        "zoneout probability of h: a unit keeps its previous value (0: off)",
        flag="zoneout",
        parse=drop_probability,
        metavar="Z",
    )
    zoneout_cell: float = setting(
        0.0,
        v.rate,
        "zoneout probability of c (0: off)",
        flag="zoneout-cell",
        parse=drop_probability,
        metavar="Z",
    )
    # -- penalties and tying (AWD-LSTM)
    activation_reg: float = setting(
        0.0,
        v.non_negative_float,
        "AR's α: α · mean(dropped output²) of the last layer, added to the training loss (AWD-LSTM uses 2)",
        flag="ar",
        parse=penalty_rate,
        metavar="ALPHA",
    )
    temporal_activation_reg: float = setting(
        0.0,
        v.non_negative_float,
        "TAR's β: β · mean((h_t − h_{t−1})²) of the last layer (AWD-LSTM uses 1)",
        flag="tar",
        parse=penalty_rate,
        metavar="BETA",
    )
    tie_weights: bool = setting(
        False,
        boolean,
        "the output projection is the embedding matrix transposed (the "
        "embedding size is then the hidden size)",
        flag="tie-weights",
        cli=SWITCH,
    )

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if field.name == "hidden_size" and self.hidden_size is None:
                raise TypeError("ModelConfig needs hidden_size")
            value = field.metadata["setting"].check(getattr(self, field.name), field.name)
            object.__setattr__(self, field.name, value)
        if (self.vocab_size is None) == (self.input_size is None):
            raise TypeError(
                "give vocab_size (token ids) or input_size (real-valued vectors of that many "
                f"features), exactly one; got vocab_size={self.vocab_size}, input_size={self.input_size}"
            )
        if self.task is None:
            if self.vocab_size is None:
                raise TypeError(
                    "real-valued inputs need a task: 'classify' or 'regress' (one output per "
                    "sequence) or 'forecast' (one per step)"
                )
            object.__setattr__(self, "task", "next-token")
        if self.task == "next-token" and self.vocab_size is None:
            raise ValueError("task 'next-token' predicts tokens: it needs token inputs (vocab_size)")
        if self.regression_loss != "mse" and self.task not in ("regress", "forecast"):
            raise ValueError(
                f"regression_loss is the loss of regress and forecast; task {self.task!r} has its own"
            )
        if self.embedding_size is not None and self.vocab_size is None:
            raise ValueError("embedding_size embeds token ids: real-valued inputs (input_size) have none")
        if self.output_size is None:
            if self.task != "next-token":
                what = (
                    "classes"
                    if self.task == "classify"
                    else "outputs per " + ("step" if self.task == "forecast" else "sequence")
                )
                raise TypeError(f"task {self.task!r} needs output_size (the number of {what})")
            object.__setattr__(self, "output_size", self.vocab_size)
        if self.forget_bias is None:
            object.__setattr__(self, "forget_bias", DEFAULT_FORGET_BIAS[self.init])
        if self.tie_weights and self.embedding_size is None:
            object.__setattr__(self, "embedding_size", self.hidden_size)
        from .regularizers import check_config

        check_config(self)  # each regularizer's own rules

    # -------------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        """name -> value of every setting (JSON-able): ``RegularizedLSTM(**d)`` rebuilds it."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ModelConfig":
        """The config a file or a caller gives: unknown names are refused (TypeError naming
        them), missing ones take their defaults (settings added after the file was written)."""
        if not isinstance(values, Mapping):
            raise TypeError(f"a model config is a dict of settings, got {type(values).__name__}")
        unknown = sorted(set(values) - set(names()))
        if unknown:
            raise TypeError(f"unknown model settings {unknown}; the settings are {names()}")
        return cls(**values)

    @functools.cached_property  # read at every forward pass; the config is frozen
    def float_dtype(self):
        return np.dtype(self.dtype)

    # -------------------------------------------------------------- resolved rates
    @functools.cached_property
    def input_keep(self) -> float:
        """The effective keep probability of input dropout."""
        return self.dropout_keep_prob if self.input_keep_prob is None else self.input_keep_prob

    @functools.cached_property
    def tokens(self) -> bool:
        """Whether the inputs are token ids (else real-valued vectors)."""
        return self.vocab_size is not None

    @functools.cached_property
    def per_sequence(self) -> bool:
        """Whether the head gives one output per sequence (classify, regress)."""
        return self.task in ("classify", "regress")

    @functools.cached_property
    def between_keep(self) -> float:
        return self.dropout_keep_prob if self.between_keep_prob is None else self.between_keep_prob

    @functools.cached_property
    def output_keep(self) -> float:
        return self.dropout_keep_prob if self.output_keep_prob is None else self.output_keep_prob


def settings() -> Iterator[tuple[str, Any, Setting]]:
    """(name, default, Setting) of every model setting, in the declaration's order."""
    for field in dataclasses.fields(ModelConfig):
        yield field.name, field.default, field.metadata["setting"]


def markdown_table() -> str:
    """Every setting as a Markdown table (Python name, default, command line, what it does), for
    the docs: the regularizers guide holds it between ``<!-- settings -->`` markers and a test
    compares the two."""
    from .regularizers import parts_of

    rows = ["| setting | default | command line | regularizer part | what it is |", "|---|---|---|---|---|"]
    for name, default, spec in settings():
        flag = (
            ""
            if spec.flag is None
            else f"`--{spec.flag}`" + (" P (P = 1 − keep)" if spec.cli == DROP else "")
        )
        parts = ", ".join(f"`{type(part).__name__}`" for part in parts_of(name))
        rows.append(f"| `{name}` | `{default!r}` | {flag} | {parts} | {spec.doc} |")
    return "\n".join(rows)


def setting_spec(name: str) -> Setting:
    """The :class:`Setting` of one model setting."""
    return ModelConfig.__dataclass_fields__[name].metadata["setting"]


def names() -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(ModelConfig))


def cli_settings() -> Iterator[tuple[str, Any, Setting]]:
    """(name, command-line default, Setting) of the settings the command line offers."""
    for name, default, spec in settings():
        if spec.flag is not None:
            cli_default = default if spec.cli_default == _SAME else spec.cli_default
            yield name, spec.to_cli(cli_default), spec
