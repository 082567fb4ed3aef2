"""An honest headline (issue 36): the test loss of the model each run would ship (its best
validation epoch's, as best.npz holds) beside the last epoch's; NT-ASGD says whether it averaged."""

import json

import matplotlib
import pytest

from rnnreg import RegularizedLSTM, TrainConfig, fit, generate_simple_dataset, load_model
from rnnreg.cli import main
from rnnreg.plotting import line_style
from rnnreg.training import evaluate

matplotlib.use("Agg")


def _data():
    return (
        generate_simple_dataset(8, 12, 64, seed=1),
        generate_simple_dataset(8, 12, 32, seed=2),
        generate_simple_dataset(8, 12, 32, seed=3),
    )


def test_the_history_tests_the_best_model_beside_the_last_epoch(tmp_path):
    train, val, test = _data()
    best_path = str(tmp_path / "best.npz")
    config = TrainConfig(epochs=12, lr=0.05, best_model_path=best_path)  # it overfits after a few
    history = fit(RegularizedLSTM(12, 16, seed=0), train, val, config, test=test, verbose=0)
    assert history["best_epoch"] < 11
    shipped = evaluate(load_model(best_path), test, config.batch_size, config.bptt)
    assert history["best_model_test_loss"] == pytest.approx(shipped, abs=1e-12)
    assert history["best_model_test_loss"] != history["test_loss"]


def test_a_run_that_restores_its_best_weights_reports_one_test_loss():
    train, val, test = _data()
    config = TrainConfig(epochs=12, lr=0.05, patience=2, restore_best_weights=True)
    history = fit(RegularizedLSTM(12, 16, seed=0), train, val, config, test=test, verbose=0)
    assert history["restored_best"] and history["best_model_test_loss"] == history["test_loss"]


def test_nt_asgd_says_whether_it_averaged():
    train, val, _ = _data()
    lines = []
    quiet = TrainConfig(epochs=3, optimizer="nt-asgd", lr=0.5, nonmono=5)
    history = fit(RegularizedLSTM(12, 8, seed=0), train, val, quiet, log=lines.append, verbose=0)
    assert history["averaging_from"] is None
    assert any("NT-ASGD never started averaging" in line and "plain SGD" in line for line in lines)
    lines.clear()
    busy = TrainConfig(epochs=12, optimizer="nt-asgd", lr=20.0, nonmono=1)
    history = fit(RegularizedLSTM(12, 8, seed=0), train, val, busy, log=lines.append, verbose=0)
    assert history["averaging_from"] is not None
    assert not any("never started" in line for line in lines)


def test_compare_records_both_test_losses_and_stars_each_best_epoch(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--data", "synthetic", "--train-size", "60", "--eval-size", "30", "--epochs", "6",
            "--hidden", "8", "--lr", "0.05", "--settings", "none", "early_stopping", "--jobs", "1",
            "--quiet", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    table = (out / "comparison.md").read_text()
    assert "| test loss, best model | test loss, last epoch |" in table
    results = json.loads((out / "results.json").read_text())
    for name, history in results.items():
        shipped = load_model(str(out / "models" / f"{name}.npz"))
        assert shipped is not None and history["best_model_test_loss"] is not None
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        assert f"| {history['best_model_test_loss']:.4f} | {history['test_loss']:.4f} |" in row


def test_the_comparison_figure_marks_the_best_epochs_and_shows_both_bars():
    from rnnreg import plot_regularization_comparison

    results = {
        "a": {
            "val_loss": [2.0, 1.5, 1.7],
            "train_loss": [2, 1, 1],
            "best_epoch": 1,
            "test_loss": 1.8,
            "best_model_test_loss": 1.6,
        },  # fmt: skip
        "b": {
            "val_loss": [2.0, 1.9, 1.8],
            "train_loss": [2, 1, 1],
            "best_epoch": 2,
            "test_loss": 1.7,
            "best_model_test_loss": 1.7,
        },  # fmt: skip
    }
    fig = plot_regularization_comparison(results)
    bars, curves = fig.axes
    heights = [p.get_height() for p in bars.patches]
    assert heights == pytest.approx([1.6, 1.7, 1.8, 1.7])  # best model first, the last epoch's beside
    stars = [c for c in curves.collections if len(c.get_offsets())]
    assert [tuple(s.get_offsets()[0]) for s in stars] == [(1.0, 1.5), (2.0, 1.8)]
    assert [t.get_text() for t in bars.get_xticklabels()] == ["a", "b"]


def test_lines_beyond_ten_keep_apart():
    styles = [(tuple(line_style(k)[0]), line_style(k)[1]) for k in range(30)]
    assert len(set(styles)) == 30


def test_the_sweep_figure_draws_categories_as_categories_and_labels_only_decades():
    from matplotlib.ticker import NullFormatter

    from rnnreg import plot_sweep

    records = [
        {"params": {"optimizer": o, "lr": lr, "seed": s}, "best_val_loss": 2 + lr + (o == "sgd") + s / 10}
        for o in ("adam", "sgd")
        for lr in (1e-3, 3e-3, 1e-2)
        for s in (0, 1)
    ]
    fig = plot_sweep(records, log_scale={"lr"})
    by_name = {ax.get_xlabel(): ax for ax in fig.axes}
    means = [line for line in by_name["optimizer"].get_lines() if line.get_label().startswith("mean")]
    assert means and means[0].get_linestyle() == "None"  # nothing joins adam and sgd
    assert [t.get_text() for t in by_name["optimizer"].get_xticklabels()] == ["adam", "sgd"]
    lr_axis = by_name["lr"].xaxis
    assert by_name["lr"].get_xscale() == "log" and isinstance(lr_axis.get_minor_formatter(), NullFormatter)
    numeric = [line for line in by_name["seed"].get_lines() if line.get_label().startswith("mean")]
    assert numeric[0].get_linestyle() == "-"  # numbers are joined


def test_when_nt_asgd_started_averaging_survives_a_resume(tmp_path):
    train, val, _ = _data()
    path = str(tmp_path / "ck.npz")
    nt_asgd = dict(optimizer="nt-asgd", lr=20.0, nonmono=1)
    whole = fit(RegularizedLSTM(12, 8, seed=0), train, val, TrainConfig(epochs=12, **nt_asgd), verbose=0)
    assert whole["averaging_from"] is not None
    first = TrainConfig(epochs=8, checkpoint_path=path, **nt_asgd)
    fit(RegularizedLSTM(12, 8, seed=0), train, val, first, verbose=0)
    rest = TrainConfig(epochs=12, checkpoint_path=path, **nt_asgd)
    resumed = fit(RegularizedLSTM(12, 8, seed=0), train, val, rest, resume_from=path, verbose=0)
    assert resumed["averaging_from"] == whole["averaging_from"]
    assert resumed["val_loss"] == whole["val_loss"]
