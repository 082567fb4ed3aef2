"""What rnnreg writes goes back in (issue 36): histories and logs into plot_learning_curves, run
folders into load_model, a sweep's best trial into rnnreg train, exported modules with their
dropout, models into a readable repr and summary."""

import json
import shlex

import matplotlib
import numpy as np
import pytest

from rnnreg import (
    RegularizedGRU,
    RegularizedLSTM,
    TrainConfig,
    fit,
    generate_simple_dataset,
    load_model,
    plot_learning_curves,
)
from rnnreg.cli import main

matplotlib.use("Agg")


def _train_argv(out, *more):
    return ["train", "--data", "synthetic", "--train-size", "60", "--eval-size", "30", "--epochs", "3",
            "--hidden", "8", "--quiet", "--no-progress", "--out", str(out), *more]  # fmt: skip


def test_plot_learning_curves_takes_a_history_its_file_its_folder_and_the_csv_log(tmp_path):
    out = tmp_path / "run"
    assert main(_train_argv(out, "--csv", str(tmp_path / "log.csv"))) == 0
    history = json.loads((out / "history.json").read_text())
    for source in (history, str(out / "history.json"), str(out), str(tmp_path / "log.csv")):
        fig = plot_learning_curves(source)
        lines = fig.axes[0].get_lines()
        assert list(lines[0].get_ydata()) == pytest.approx(history["train_loss"])
        assert list(lines[1].get_ydata()) == pytest.approx(history["val_loss"])
    train = generate_simple_dataset(6, 12, 32, seed=1)
    no_val = fit(RegularizedLSTM(12, 8, seed=0), train, None, TrainConfig(epochs=2), verbose=0)
    assert len(plot_learning_curves(no_val).axes[0].get_lines()) == 1  # no validation curve
    with pytest.raises(ValueError, match="not a history"):
        (tmp_path / "other.json").write_text("[1, 2]")
        plot_learning_curves(str(tmp_path / "other.json"))


def test_load_model_takes_a_run_folder_and_gives_its_best_model(tmp_path):
    out = tmp_path / "run"
    assert main(_train_argv(out)) == 0
    from_folder, best = load_model(str(out)), load_model(str(out / "best.npz"))
    for name, value in best.params.items():
        np.testing.assert_array_equal(from_folder.params[name], value)
    from rnnreg.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="folder without a model file"):
        load_model(str(tmp_path))


def test_a_sweep_keeps_each_trials_model_and_prints_the_command_of_its_best(tmp_path, capsys, monkeypatch):
    base = [
        "--data",
        "synthetic",
        "--train-size",
        "60",
        "--eval-size",
        "30",
        "--epochs",
        "2",
        "--hidden",
        "8",
    ]
    argv = ["sweep", *base, "--grid", "dropout=0,0.3", "--jobs", "1", "--no-progress", "--quiet",
            "--out", str(tmp_path / "s"), "--model-dir", str(tmp_path / "models")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["dropout=0.0.npz", "dropout=0.3.npz"]
    records = json.loads((tmp_path / "s" / "sweep.json").read_text())["trials"]
    best = min(records, key=lambda r: r["best_val_loss"])
    command = shlex.split(out.split("trained again: ")[1].splitlines()[0])
    assert command[:2] == ["rnnreg", "train"]
    monkeypatch.chdir(tmp_path)
    assert main(command[1:]) == 0
    again = json.loads((tmp_path / "runs" / "best" / "history.json").read_text())
    assert again["best_val_loss"] == pytest.approx(best["best_val_loss"], abs=1e-12)


@pytest.mark.extras
@pytest.mark.parametrize(
    "settings",
    [
        {"dropout_keep_prob": 0.7, "num_layers": 2},
        {"dropout_keep_prob": 0.7, "num_layers": 2, "embedding_size": 6},
        {"between_keep_prob": 0.8, "output_keep_prob": 0.5, "num_layers": 2},
    ],
)
def test_from_torch_keeps_the_dropout_rates_the_module_declares(settings):
    pytest.importorskip("torch")
    from rnnreg import from_torch, to_torch

    model = RegularizedLSTM(12, 8, seed=0, **settings)
    back = from_torch(to_torch(model)).model_config
    original = model.model_config
    for name in ("dropout_keep_prob", "between_keep_prob", "output_keep_prob"):
        assert getattr(back, name) == pytest.approx(getattr(original, name)) or (
            getattr(original, name) is None and getattr(back, name) is None
        ), name


def test_a_models_repr_builds_the_same_architecture_and_summary_counts_its_parameters():
    models = [
        RegularizedLSTM(20, 8, num_layers=2, use_layer_norm=True, embedding_size=6, dropout_keep_prob=0.8),
        RegularizedGRU(20, 8, zoneout_hidden=0.1),
        RegularizedLSTM(input_size=3, hidden_size=8, output_size=4, task="classify"),
    ]
    for model in models:
        text = repr(model)
        rebuilt = eval(text, {"RegularizedLSTM": RegularizedLSTM, "RegularizedGRU": RegularizedGRU})
        assert rebuilt.config() == model.config(), text
        lines = []
        model.summary(print_fn=lines.append)
        total = next(line for line in lines if line.startswith("total"))
        assert f"{model.parameter_count():,}" in total
        parts = [line for line in lines if line.split()[1:2] == ["layer"]]
        assert len(parts) == model.num_layers
        rows = lines[4 : lines.index(next(line for line in lines if line.startswith("total"))) - 1]
        assert sum(int(row.split()[-1].replace(",", "")) for row in rows) == model.parameter_count()
    assert repr(models[1]) == "RegularizedGRU(vocab_size=20, hidden_size=8, zoneout_hidden=0.1)"
    lines = []
    models[0].summary(print_fn=lines.append)
    assert any(line.strip().startswith("InputDropout (input): dropout_keep_prob=0.8") for line in lines)
