"""What a training run *is*, defined once: its options, the named settings of ``rnnreg compare``,
the data by name or path, and one function that builds a model and trains it from a dict of
settings.

``rnnreg train``, ``rnnreg compare``, ``rnnreg sweep`` and Python users all call
:func:`train_run`; the command line (:mod:`rnnreg.cli`) is argparse over :data:`TRAINING_OPTIONS`,
and the sweep (:mod:`rnnreg.sweeps`) reads the same table to convert and check the values it
sweeps. Settings are keyed by destination name (``weight_decay``); the table's ``flag`` is the
command line's (``weight-decay``). Dropout rates here are the command line's convention — the
probability of *dropping* — and become the model's keep probabilities in :func:`build_run`.
"""

import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

# The command line's value types of the model's rates (declared with the settings).
from .model_config import SWITCH, cli_settings, drop_probability, penalty_rate, setting_spec  # noqa: F401
from .model_config import names as model_setting_names
from .training import OPTIMIZERS, TrainConfig

__all__ = [
    "Option",
    "TRAINING_OPTIONS",
    "SETTINGS",
    "CLASSIC_SETTINGS",
    "default_settings",
    "load_data",
    "build_run",
    "train_run",
    "add_options",
]

# NT-ASGD's SGD learning rate in the "awd_nt_asgd" setting (AWD-LSTM clips the gradient norm at 0.25
# and takes large SGD steps). On the built-in text with the compare defaults this rate reached
# the lowest validation loss of 1, 3, 10 and 30 (benchmarks/results/awd-lr/sweep.md).
AWD_LR = 10.0
#: AWD-LSTM's regularizers (and its clipping and variable-length BPTT), without the optimizer.
AWD_REGULARIZERS: dict[str, Any] = {
    "weight_keep_prob": 0.75,
    "dropout_keep_prob": 0.6,
    "variational": True,
    "embedding_keep_prob": 0.9,
    "activation_reg": 2.0,
    "temporal_activation_reg": 1.0,
    "tie_weights": True,
    "variable_bptt": True,
    "clip_norm": 0.25,
}

# The ablation of `rnnreg compare`: what each setting switches on, on top of the baseline, as
# model keyword arguments and training settings.
SETTINGS: dict[str, dict[str, Any]] = {
    "none": {},
    "dropout": {"dropout_keep_prob": 0.6},
    "layer_norm": {"use_layer_norm": True},
    "weight_decay": {"weight_decay": 3e-4},
    "early_stopping": {"patience": 3},
    "all": {"dropout_keep_prob": 0.6, "use_layer_norm": True, "weight_decay": 3e-4, "patience": 3},
    # The GRU beside the LSTM (`rnnreg compare --settings none gru dropout gru_dropout`).
    "gru": {"cell": "gru"},
    "gru_dropout": {"cell": "gru", "dropout_keep_prob": 0.6},
    # Krueger et al.'s character-level setting: zone out half the cell units, 5% of the hidden.
    "zoneout": {"zoneout_hidden": 0.05, "zoneout_cell": 0.5},
    # AWD-LSTM's whole set (Merity et al. 2017): weight-drop on Wh, variational dropout,
    # embedding dropout, AR and TAR, tied weights, variable-length BPTT and clipping at 0.25 —
    # trained with AdamW (Merity et al. 2018 train their character models with Adam): on the
    # built-in text with compare's budget it reached the lowest validation loss of the optimizers,
    # rates and clipping norms measured (benchmarks/awd_optimizer.py, results in
    # benchmarks/results/awd-optimizer/choice.md; Adam without decay within 0.001), where NT-ASGD
    # never started averaging in 14 epochs. "awd_nt_asgd" keeps AWD-LSTM's own optimizer.
    "awd": {**AWD_REGULARIZERS, "optimizer": "adamw", "lr": 5e-3, "weight_decay": 1e-2, "lr_schedule": None},
    "awd_nt_asgd": {**AWD_REGULARIZERS, "optimizer": "nt-asgd", "lr": AWD_LR, "lr_schedule": None},
}
#: What `rnnreg compare` runs unless told: the ablation of the notebook's four regularizers.
CLASSIC_SETTINGS = ("none", "dropout", "layer_norm", "weight_decay", "early_stopping", "all")
#: Keys of a named setting that are model keyword arguments (the rest are TrainConfig fields):
#: every setting of rnnreg.model_config.ModelConfig.
MODEL_KEYS = model_setting_names()
#: How much of the built-in texts a run reads unless told (a user's own text is read whole).
BUILTIN_SIZES = {"stdlib": (20000, 10000), "synthetic": (200, 100)}


# ----------------------------------------------------------------------------- the options
@dataclasses.dataclass(frozen=True)
class Option:
    """One training option: its command-line ``flag`` (``weight-decay``), value ``type`` (a
    function from text), ``default``, ``help``, and ``choices``; ``switch`` options are on/off
    (``--layer-norm``); ``sweepable`` is False for options that say how, not what, to train."""

    flag: str
    help: str
    default: Any = None
    type: Callable[[str], Any] | None = None
    choices: tuple[Any, ...] | None = None
    switch: bool = False
    metavar: str | None = None
    many: bool = False  # takes one or more values (nargs="+")
    sweepable: bool = True
    setting: str | None = None  # the model setting it is (ModelConfig's field), if any

    @property
    def dest(self) -> str:
        return self.flag.replace("-", "_")


_DEFAULTS = TrainConfig()


def _model_options():
    """The model's settings as options, derived from their declaration
    (:class:`~rnnreg.model_config.ModelConfig`): flag, command-line default and convention."""
    for name, default, spec in cli_settings():
        assert spec.flag is not None  # cli_settings yields the settings that have one
        yield Option(
            spec.flag,
            spec.help,
            default=default,
            type=spec.parse,
            choices=spec.choices,
            switch=spec.cli == SWITCH,
            metavar=spec.metavar,
            setting=name,
        )


_DATA_OPTIONS: tuple[Option, ...] = (
    Option(
        "data",
        "text to train on: files, folders (every *.txt inside) or glob patterns, "
        "UTF-8; or 'stdlib' — the standard library's docstrings (built in, no download) — or "
        "'synthetic', the notebook's counting task. Three files or more are split by "
        "document (seeded), fewer by line. Sequences: a .ts file (UCR/UEA; its _TEST.ts "
        "sibling is the test set), an .npz of X (sequences, steps, features) and y, a .csv "
        "series (forecast in windows: --lookback, --horizon, --target), or 'japanese-vowels' "
        "or 'airline' (the data extra)",
        default=["stdlib"],
        metavar="PATH",
        many=True,
        sweepable=False,
    ),
    Option(
        "train-size",
        "characters (sequences for synthetic) of training data to use "
        "(default: all of your text; 20000 of stdlib, 200 of synthetic)",
        type=int,
        metavar="N",
    ),
    Option(
        "eval-size",
        "characters of validation and of test data to use (default: all of your text's; 10000 of stdlib)",
        type=int,
        metavar="N",
    ),
)
TRAINING_OPTIONS: tuple[Option, ...] = (
    _DATA_OPTIONS
    + tuple(_model_options())
    + (
        Option(
            "weight-decay",
            "λ: coupled L2 for sgd, adam and nt-asgd, decoupled for adamw",
            default=_DEFAULTS.weight_decay,
            type=float,
            metavar="LAMBDA",
        ),
        Option(
            "optimizer",
            "adamw makes weight decay decoupled; nt-asgd is SGD that averages its "
            "iterates once validation stops improving for --nonmono epochs (AWD-LSTM)",
            default=_DEFAULTS.optimizer,
            choices=OPTIMIZERS,
        ),
        Option(
            "nonmono",
            "NT-ASGD's non-monotone interval, in epochs",
            default=_DEFAULTS.nonmono,
            type=int,
            metavar="N",
        ),
        Option(
            "variable-bptt",
            "draw each chunk's length around --bptt, the learning rate scaled by length / bptt (AWD-LSTM)",
            default=False,
            switch=True,
        ),
        Option("lr", "learning rate", default=_DEFAULTS.lr, type=float),
        Option(
            "lr-schedule",
            "cosine: 2 warm-up epochs, then down to 0 at the last epoch; step: "
            "halved every third of the run; plateau: halved when validation has not improved "
            "for 2 epochs",
            default="constant",
            choices=("constant", "cosine", "step", "plateau"),
        ),
        Option("clip", "gradient-norm clip (0 = off)", default=_DEFAULTS.clip_norm, type=float),
        Option("patience", "early-stopping patience (epochs without improvement)", type=int),
        Option(
            "monitor",
            "what early stopping watches: val_loss, or a sequence task's val_accuracy, val_mse, "
            "val_mae, val_rmse",
            default=_DEFAULTS.monitor,
        ),
        Option(
            "standardize",
            "real-valued inputs: standardize each feature by the training split's mean and "
            "standard deviation (kept with the model)",
            default=False,
            switch=True,
        ),
        Option(
            "lookback", "a series (CSV, airline): steps each window reads", default=24, type=int, metavar="N"
        ),
        Option("horizon", "a series: steps each window forecasts", default=12, type=int, metavar="N"),
        Option(
            "target",
            "a CSV series: the columns to forecast (default: every numeric column)",
            many=True,
            metavar="COLUMN",
            sweepable=False,
        ),
        Option("epochs", "epochs to train", default=_DEFAULTS.epochs, type=int),
        Option(
            "batch-size",
            "sequences (or parallel streams of the text) per step",
            default=_DEFAULTS.batch_size,
            type=int,
        ),
        Option("bptt", "truncated-BPTT length", default=_DEFAULTS.bptt, type=int),
        Option(
            "seed",
            "seed of the weights, the masks, the data split and the batch order",
            default=_DEFAULTS.seed,
            type=int,
        ),
        Option("no-progress", "no progress bars", default=False, switch=True, sweepable=False),
        Option("quiet", "no per-epoch lines", default=False, switch=True, sweepable=False),
        Option(
            "debug",
            "show the full traceback of an error (for developers)",
            default=False,
            switch=True,
            sweepable=False,
        ),
    )
)


def add_options(parser, options=TRAINING_OPTIONS, **defaults):
    """Declare ``options`` on an argparse parser (``defaults``: dest -> a command's own default,
    e.g. ``epochs=14``)."""
    for option in options:
        default = defaults.get(option.dest, option.default)
        if option.switch:
            parser.add_argument(f"--{option.flag}", action="store_true", help=option.help)
        else:
            parser.add_argument(
                f"--{option.flag}",
                type=option.type,
                default=default,
                choices=option.choices,
                metavar=option.metavar,
                nargs="+" if option.many else None,
                help=option.help,
            )


def default_settings() -> dict[str, Any]:
    """Every training setting at its default, by destination name (``weight_decay``)."""
    return {option.dest: option.default for option in TRAINING_OPTIONS}


# ----------------------------------------------------------------------------- data
@dataclasses.dataclass
class SequenceData:
    """Real-valued sequence data of a run, split: ``train``, ``val``, ``test`` ``(X, y)`` pairs,
    the features per step, the outputs, the task the targets call for and the class names."""

    train: Any
    val: Any
    test: Any
    input_size: int
    output_size: int
    task: str
    class_names: tuple = ()


#: Sequence data sets by name (they ship in the data extra's package).
SEQUENCE_DATA = ("japanese-vowels", "airline")
#: File kinds read as sequences rather than text.
SEQUENCE_FILES = (".ts", ".npz", ".csv")


def _split(X, y, seed, fractions=(0.2, 0.2)):
    """A seeded shuffle of (X, y) into train, val (and test when its fraction is not 0)."""
    order = np.random.default_rng(seed).permutation(len(X))
    n_val = int(round(len(X) * fractions[0]))
    n_test = int(round(len(X) * fractions[1]))
    if len(X) - n_val - n_test < 1 or n_val < 1 or (fractions[1] and n_test < 1):
        raise ValueError(f"{len(X)} sequences are too few to split into training, validation and test")
    pick = lambda rows: ([X[k] for k in rows], y[rows])  # noqa: E731
    test = pick(order[n_val : n_val + n_test]) if n_test else None
    return pick(order[n_val + n_test :]), pick(order[:n_val]), test


def _targets_task(y, name):
    """The task a file's targets call for, and the outputs: class ids, vectors, or steps."""
    y = np.asarray(y) if not isinstance(y, list) else y
    if isinstance(y, np.ndarray) and y.ndim == 1 and y.dtype.kind in "iu":
        if y.size and y.min() < 0:
            raise ValueError(f"{name}: class ids must be >= 0, got {y.min()}")
        return "classify", int(y.max()) + 1
    if isinstance(y, np.ndarray) and y.ndim == 2:
        return "regress", y.shape[1]
    if isinstance(y, np.ndarray) and y.ndim == 1:
        return "regress", 1
    if isinstance(y, np.ndarray) and y.ndim == 3:
        return "forecast", y.shape[2]
    raise ValueError(f"{name}: targets must be class ids (N,), vectors (N, K) or steps (N, T, K)")


def load_sequence_data(settings: Mapping[str, Any]):
    """``(description, SequenceData)`` for a sequence data set by name (``japanese-vowels``,
    ``airline``) or a file (``.ts``, ``.npz``, a ``.csv`` series), split by ``seed``: a .ts
    file's ``_TEST.ts`` sibling is its test set; otherwise 20% validation and 20% test."""
    from . import datasets

    paths = settings["data"]
    source = paths if isinstance(paths, str) else list(paths)[0]
    seed = settings.get("seed", 0)
    lookback, horizon = settings.get("lookback", 24), settings.get("horizon", 12)
    if source == "japanese-vowels":
        (X, y), test, names = datasets.japanese_vowels()
        train, val, _ = _split(X, y, seed, (0.2, 0.0))
        data = SequenceData(train, val, test, 12, len(names), "classify", names)
        return "JapaneseVowels (UEA archive's split; 20% of its training set held out)", data
    if source == "airline" or source.endswith(".csv"):
        if source == "airline":
            series, names = np.log(datasets.airline())[:, None], ("log passengers",)
            description = "the airline series (log passengers, monthly)"
        else:
            series, names = datasets.load_csv(source)
            description = f"{source} ({', '.join(names)})"
        targets = list(settings.get("target") or names)
        unknown = [t for t in targets if t not in names]
        if unknown:
            raise ValueError(f"--target {unknown}: not a numeric column of {source} ({', '.join(names)})")
        columns = [names.index(t) for t in targets]
        parts = datasets.windows(series, lookback, horizon, target=columns, relative=True)
        data = SequenceData(
            parts["train"],
            parts["val"],
            parts["test"],
            series.shape[1],
            horizon * len(columns),
            "regress",
            (),
        )
        return (
            f"{description}: windows of {lookback} steps forecasting {horizon} (changes from the last)",
            data,
        )
    if source.endswith(".ts"):
        X, y, names = datasets.load_ts(source)
        if y is None:
            raise ValueError(f"{source} has no targets (@classLabel or @targetLabel)")
        sibling = source[: -len("_TRAIN.ts")] + "_TEST.ts" if source.endswith("_TRAIN.ts") else None
        if sibling and os.path.exists(sibling):
            X_test, y_test, test_names = datasets.load_ts(sibling)
            if test_names != names:
                raise ValueError(f"{sibling}: its classes differ from {source}'s")
            train, val, _ = _split(X, y, seed, (0.2, 0.0))
            test = (X_test, y_test)
        else:
            train, val, test = _split(X, y, seed)
        task = "classify" if names else "regress"
        outputs = len(names) if names else 1
        if task == "regress":
            train, val, test = ((x, np.asarray(t)[:, None]) for x, t in (train, val, test))
        return f"{source} ({len(X)} sequences)", SequenceData(
            train, val, test, X[0].shape[1], outputs, task, names
        )
    X, y = datasets.load_npz(source)
    if y is None:
        raise ValueError(f"{source} holds no targets (an array 'y')")
    if X.ndim != 3:
        raise ValueError(f"{source}: X must have shape (sequences, steps, features), got {X.shape}")
    task, outputs = _targets_task(y, source)
    if task == "regress" and y.ndim == 1:
        y = y[:, None]
    train, val, test = _split(list(X), y, seed)
    return f"{source} ({len(X)} sequences)", SequenceData(train, val, test, X.shape[2], outputs, task)


def is_sequence_data(settings: Mapping[str, Any]) -> bool:
    paths = settings["data"]
    paths = [paths] if isinstance(paths, str) else list(paths)
    return len(paths) == 1 and (paths[0] in SEQUENCE_DATA or paths[0].endswith(SEQUENCE_FILES))


def load_data(settings: Mapping[str, Any]) -> tuple[str, int, Any]:
    """The data a run's settings name (``data``, ``train_size``, ``eval_size``, ``seed``):
    returns ``(description, vocabulary size, data)``, where data is a
    :class:`~rnnreg.CharCorpus` (its splits, documents and vocabulary) or, for ``"synthetic"``,
    a (train, val, test) triple of sequence pairs.

    Examples
    --------
    >>> from rnnreg.runs import load_data
    >>> description, vocab_size, (train, val, test) = load_data(
    ...     {"data": ["synthetic"], "train_size": 30, "eval_size": 10, "seed": 0})
    >>> description, vocab_size, train[0].shape
    ('synthetic', 50, (30, 15))
    """
    from .data import CharCorpus, generate_simple_dataset, load_stdlib_docstrings

    if is_sequence_data(settings):  # real-valued sequences: their SequenceData in vocab's place
        description, data = load_sequence_data(settings)
        return description, data, data
    paths = settings["data"]
    paths = [paths] if isinstance(paths, str) else list(paths)
    if paths not in (["stdlib"], ["synthetic"]):
        corpus = CharCorpus.from_files(paths, seed=settings["seed"]).limited(
            settings.get("train_size"), settings.get("eval_size")
        )
        return f"{corpus!r}; split {corpus.split}", corpus.vocab_size, corpus
    name = paths[0]
    train_size, eval_size = (
        given or default
        for given, default in zip(
            (settings.get("train_size"), settings.get("eval_size")), BUILTIN_SIZES[name]
        )
    )
    if name == "synthetic":
        vocab = 50
        make = lambda n, seed: generate_simple_dataset(15, vocab, n, seed=seed)
        return "synthetic", vocab, (make(train_size, 1), make(eval_size, 2), make(eval_size, 3))
    corpus = load_stdlib_docstrings(train_chars=train_size, eval_chars=eval_size)
    return f"{corpus!r}; split by document (fixed)", corpus.vocab_size, corpus


# ----------------------------------------------------------------------------- one run
def build_run(settings: Mapping[str, Any], vocab_size: Any, overrides: Mapping[str, Any] | None = None):
    """The model and TrainConfig a run's settings describe (command-line conventions: dropout
    rates are drop probabilities), with ``overrides`` (model keyword arguments or TrainConfig
    fields, as in :data:`SETTINGS`) applied on top. Returns ``(model, config)``."""
    from .model import build_model

    s = settings
    model_kwargs = {
        option.setting: setting_spec(option.setting).from_cli(s[option.dest])
        for option in TRAINING_OPTIONS
        if option.setting is not None
    }
    train_kwargs = dict(
        epochs=s["epochs"],
        batch_size=s["batch_size"],
        bptt=s["bptt"],
        optimizer=s["optimizer"],
        lr=s["lr"],
        weight_decay=s["weight_decay"],
        clip_norm=s["clip"] if s["clip"] > 0 else None,
        lr_schedule=None if s["lr_schedule"] in (None, "constant") else s["lr_schedule"],
        patience=s["patience"],
        seed=s["seed"],
        progress=not s["no_progress"],
        nonmono=s["nonmono"],
        variable_bptt=s["variable_bptt"],
        monitor=s["monitor"],
        standardize=s["standardize"],
    )
    for key, value in (overrides or {}).items():
        (model_kwargs if key in MODEL_KEYS else train_kwargs)[key] = value
    if isinstance(vocab_size, SequenceData):  # real-valued sequences: the data decides the sizes
        data = vocab_size
        model_kwargs["task"] = model_kwargs.get("task") or data.task
        model = build_model(
            input_size=data.input_size, output_size=data.output_size, seed=s["seed"], **model_kwargs
        )
        return model, TrainConfig(**train_kwargs)
    model = build_model(vocab_size=vocab_size, output_size=vocab_size, seed=s["seed"], **model_kwargs)
    return model, TrainConfig(**train_kwargs)


def train_run(
    settings: Mapping[str, Any],
    data: Any = None,
    vocab_size: int | None = None,
    *,
    name: str = "train",
    overrides: Mapping[str, Any] | None = None,
    checkpoint_path: str | None = None,
    resume: bool = False,
    log: Callable[[str], Any] | None = None,
    best_model_path: str | None = None,
    model_path: str | None = None,
    callbacks=(),
):
    """Build a model from ``settings`` and train it: what ``rnnreg train`` does, and each trial
    of ``rnnreg compare`` and ``rnnreg sweep``.

    Parameters
    ----------
    settings : dict
        Training settings by destination name; missing ones take :func:`default_settings`.
    data, vocab_size : optional
        Data already loaded (as :func:`load_data` returns it); by default the settings' ``data``
        is loaded.
    name : str
        The run's label (log lines, progress bar).
    overrides : dict, optional
        A named setting's changes (see :data:`SETTINGS`), applied on top of ``settings``.
    checkpoint_path : str, optional
        Checkpoint every epoch there; with ``resume``, continue from it.
    best_model_path, model_path : str, optional
        Model files: the best weights whenever validation improves, and the weights the run
        reports at its end (see :class:`~rnnreg.TrainConfig`).
    log : callable, optional
        Receives one line per epoch (default: none).
    callbacks : sequence of rnnreg.callbacks.Callback
        Passed to :func:`~rnnreg.fit`.

    Returns
    -------
    (RegularizedLSTM, dict)
        The trained model and its history (with ``wall_seconds``, ``model`` and
        ``train_config`` added).

    Examples
    --------
    >>> from rnnreg.runs import train_run
    >>> model, history = train_run({"data": ["synthetic"], "train_size": 40, "epochs": 2,
    ...                             "hidden": 8, "no_progress": True})
    >>> len(history["epoch"]), history["model"]["hidden_size"]
    (2, 8)
    """
    from .data import CharCorpus
    from .training import fit

    settings = dict(default_settings(), **settings)
    if data is None:
        _, vocab_size, data = load_data(settings)
    if vocab_size is None and not isinstance(data, SequenceData):
        raise ValueError("vocab_size is needed with data")
    model, config = build_run(settings, data if isinstance(data, SequenceData) else vocab_size, overrides)
    if isinstance(data, SequenceData) and data.class_names:
        model.class_names = tuple(data.class_names)
    config.checkpoint_path = checkpoint_path
    config.best_model_path, config.model_path = best_model_path, model_path
    started = time.perf_counter()
    log = log or (lambda line: None)
    resume_from = None
    if resume:
        if checkpoint_path is None or not os.path.exists(checkpoint_path):
            raise FileNotFoundError(
                f"--resume: there is no checkpoint at {checkpoint_path} "
                "to continue from (run without --resume to start afresh)"
            )
        resume_from = checkpoint_path
    if isinstance(data, SequenceData):
        history = fit(
            model,
            data.train,
            data.val,
            config,
            test=data.test,
            log=log,
            resume_from=resume_from,
            name=name,
            callbacks=callbacks,
        )
    elif isinstance(data, CharCorpus):  # fit takes its splits, documents and vocabulary
        history = fit(
            model, data, None, config, log=log, resume_from=resume_from, name=name, callbacks=callbacks
        )
    else:
        train, val, test = data
        history = fit(
            model,
            train,
            val,
            config,
            test=test,
            log=log,
            resume_from=resume_from,
            name=name,
            callbacks=callbacks,
        )
    history["wall_seconds"] = time.perf_counter() - started
    history["model"] = model.config()
    history["train_config"] = config.to_dict()
    return model, history
