"""Every model setting is declared once (rnnreg.model_config.ModelConfig) and everything else is
derived from the declaration: these tests walk the declaration, so a setting added there is
tested here without a line of its own — set to a value other than its default, it must reach
the model, survive save_model/load_model and a resume, and come through the command line."""

import dataclasses
import inspect

import numpy as np
import pytest

from rnnreg import (
    RegularizedGRU,
    RegularizedLSTM,
    TrainConfig,
    fit,
    generate_simple_dataset,
    load_model,
    save_model,
)
from rnnreg.checkpoint import CheckpointError
from rnnreg.model import build_model
from rnnreg.model_config import DROP, SWITCH, ModelConfig, cli_settings, setting_spec, settings
from rnnreg.runs import MODEL_KEYS, TRAINING_OPTIONS, build_run, default_settings

BASE = dict(vocab_size=7, hidden_size=5)
# What a setting needs beside it to act (its part's rule says why).
NEEDS = {
    "embedding_keep_prob": {"embedding_size": 5},
    "input_keep_prob": {"embedding_size": 5},
    "between_keep_prob": {"num_layers": 2},
    "tie_weights": {},
    "input_size": {"vocab_size": None, "task": "forecast", "output_size": 2},
    "task": {"output_size": 3},
    "pooling": {"task": "classify", "output_size": 3},
    "regression_loss": {"task": "regress", "output_size": 2},
}


def _non_default(name, default, spec):
    """A valid value other than the default, from the setting's declared form."""
    chosen = {"task": "classify"}  # (not next-token: the default a token model resolves to)
    if name in chosen:
        return chosen[name]
    if spec.cli == SWITCH:
        return not default
    if spec.cli == DROP:
        return 0.7
    if spec.choices is not None:
        return next(choice for choice in spec.choices if choice != default)
    special = {
        "vocab_size": 9,
        "hidden_size": 6,
        "output_size": 8,
        "num_layers": 2,
        "embedding_size": 4,
        "forget_bias": 0.5,
        "zoneout_hidden": 0.3,
        "zoneout_cell": 0.4,
        "activation_reg": 0.5,
        "temporal_activation_reg": 0.25,
        "input_size": 3,
    }
    if name not in special:
        pytest.fail(
            f"the new setting {name!r} needs a non-default value here (its declaration "
            "says nothing this test can use)"
        )
    return special[name]


def _case(name):
    default = ModelConfig.__dataclass_fields__[name].default
    spec = setting_spec(name)
    value = _non_default(name, default, spec)
    kwargs = dict(BASE, **NEEDS.get(name, {}))
    kwargs[name] = value
    return kwargs, value


ALL = [name for name, _, _ in settings()]


def _data(kwargs, n, seed, ragged=False):
    """``(inputs, targets)`` a model of these settings reads: token or real-valued sequences of 6
    steps (or 2 to 6 with ``ragged``), targets by task."""
    config = ModelConfig(**kwargs)
    rng = np.random.default_rng(seed)
    if config.task == "next-token":
        return generate_simple_dataset(6, 7, n, seed=seed)  # ids any of the models reads
    lengths = rng.integers(2, 7, n) if ragged else np.full(n, 6)
    if config.tokens:
        X = [rng.integers(0, 7, L) for L in lengths]
    else:
        X = [rng.standard_normal((L, config.input_size)) for L in lengths]
    width = config.output_size
    y = {
        "classify": lambda: rng.integers(0, width, n),
        "regress": lambda: rng.standard_normal((n, width)),
        "forecast": lambda: [rng.standard_normal((L, width)) for L in lengths],
    }[config.task]()
    if not ragged:
        X = np.stack(X)
        y = np.stack(y) if config.task == "forecast" else y
    return X, y


@pytest.mark.parametrize("name", ALL)
def test_a_setting_survives_save_and_load(name, tmp_path):
    kwargs, value = _case(name)
    model = build_model(**kwargs, seed=0)
    assert model.config()[name] == value and getattr(model, name) is not None
    loaded = load_model(save_model(model, str(tmp_path / "model.npz")))
    assert loaded.config() == model.config()
    assert loaded.model_config == model.model_config
    # ... and acts alike: the same training pass from the same generator state.
    inputs, targets = _data(kwargs, 3, seed=1)
    loaded.rng.bit_generator.state = model.rng.bit_generator.state
    a = model.forward_batch(inputs, targets, training=True)[0]
    b = loaded.forward_batch(inputs, targets, training=True)[0]
    assert a == b


@pytest.mark.parametrize("name", ALL)
def test_a_setting_survives_a_resume(name, tmp_path):
    kwargs, _ = _case(name)
    train, val = _data(kwargs, 12, seed=1, ragged=True), _data(kwargs, 6, seed=2, ragged=True)
    path = str(tmp_path / "checkpoint.npz")

    def run(epochs, resume):
        model = build_model(**kwargs, seed=0)
        config = TrainConfig(epochs=epochs, batch_size=4, progress=False, checkpoint_path=path)
        return fit(model, train, val, config, resume_from=path if resume else None, log=lambda line: None)

    whole = run(2, False)["val_loss"]
    run(1, False)
    assert run(2, True)["val_loss"] == whole
    # A checkpoint of another value of the setting is refused, naming the setting (a model of
    # another input_size or task cannot even read the same data).
    if name in ("input_size", "task"):
        return
    other = dict(kwargs)
    other[name] = BASE.get(name, ModelConfig.__dataclass_fields__[name].default)
    with pytest.raises(CheckpointError, match=name):
        fit(
            build_model(**other, seed=0),
            train,
            val,
            TrainConfig(epochs=3, batch_size=4, progress=False),
            resume_from=path,
            log=lambda line: None,
        )


@pytest.mark.parametrize("name", [name for name, _, spec in cli_settings()])
def test_a_setting_comes_through_the_command_line(name):
    """The option of a setting, typed as a user types it, reaches the model (a drop rate P is
    the keep probability 1 - P)."""
    import argparse

    from rnnreg.runs import add_options

    kwargs, value = _case(name)
    spec = setting_spec(name)
    parser = argparse.ArgumentParser()
    add_options(parser)
    argv = ["--" + spec.flag] if spec.cli == SWITCH else ["--" + spec.flag, str(spec.to_cli(value))]
    for need, need_value in NEEDS.get(name, {}).items():  # the needs' own flags (the data decides
        if setting_spec(need).flag is not None:  # the output size on the command line)
            argv += ["--" + setting_spec(need).flag, str(need_value)]
    args = vars(parser.parse_args(argv))
    model, _ = build_run(dict(default_settings(), **args), vocab_size=7)
    got = model.config()[name]
    assert got == pytest.approx(value) if isinstance(value, float) else got == value


def test_the_derived_lists_hold_every_setting():
    names = {field.name for field in dataclasses.fields(ModelConfig)}
    assert set(MODEL_KEYS) == names
    assert set(RegularizedLSTM(**BASE).config()) == names
    # The class is the cell: every other setting is a keyword of each class (the GRU's without
    # the LSTM's own zoneout of c), in its signature and docstring.
    for cls, own in ((RegularizedLSTM, names - {"cell"}), (RegularizedGRU, names - {"cell", "zoneout_cell"})):
        assert set(inspect.signature(cls).parameters) - {"seed"} == own
        assert all(f"    {name} :" in cls.__doc__ for name in own)
    flagged = {name for name, _, spec in settings() if spec.flag is not None}
    assert flagged == {option.setting for option in TRAINING_OPTIONS if option.setting}
    # Only what the data decides has no option.
    assert names - flagged == {"vocab_size", "output_size", "input_size"}


def test_positional_settings_keep_the_notebooks_order():
    model = RegularizedLSTM(50, 32, 50, 0.8, True)
    assert (
        model.vocab_size,
        model.hidden_size,
        model.output_size,
        model.dropout_keep_prob,
        model.use_layer_norm,
    ) == (50, 32, 50, 0.8, True)
    with pytest.raises(TypeError, match="at most 5"):
        RegularizedLSTM(50, 32, 50, 0.8, True, 2)
    with pytest.raises(TypeError, match="multiple values"):
        RegularizedLSTM(50, 32, hidden_size=3)
    with pytest.raises(TypeError, match="unexpected keyword"):
        RegularizedLSTM(50, 32, dropout=0.2)


@pytest.mark.parametrize("name", ["tie_weights", "use_layer_norm", "variational"])
@pytest.mark.parametrize("bad", ["no", "false", 1, None])
def test_a_switch_is_true_or_false_not_anything_truthy(name, bad):
    with pytest.raises(TypeError, match=name):
        RegularizedLSTM(7, 5, **{name: bad})


def test_settings_are_read_only_on_a_model():
    model = RegularizedLSTM(**BASE)
    with pytest.raises(AttributeError, match="fixed when the model is made"):
        model.dropout_keep_prob = 0.5


def test_a_file_with_an_unknown_setting_is_refused_naming_it():
    with pytest.raises(TypeError, match="dropout_rate"):
        ModelConfig.from_dict(dict(BASE, dropout_rate=0.3))
    # Settings added after a file was written take their defaults.
    assert ModelConfig.from_dict(BASE).input_weight_keep_prob == 1.0


def test_the_docs_settings_table_is_the_declaration():
    import pathlib

    from rnnreg.model_config import markdown_table

    guide = pathlib.Path(__file__).parents[1] / "docs" / "guide" / "regularizers.md"
    text = guide.read_text(encoding="utf-8")
    block = text.split("<!-- settings -->\n", 1)[1].split("\n<!-- /settings -->", 1)[0]
    assert block == markdown_table(), (
        "docs/guide/regularizers.md's settings table is stale: run python docs/settings_table.py"
    )
