"""The command line end to end, on small settings."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnreg import load_model
from rnnreg.cli import main


def test_train_writes_history_checkpoint_and_png(tmp_path, capsys):
    out = tmp_path / "train"
    rc = main(
        [
            "train",
            "--data",
            "synthetic",
            "--train-size",
            "60",
            "--hidden",
            "12",
            "--epochs",
            "3",
            "--dropout",
            "0.2",
            "--layer-norm",
            "--weight-decay",
            "1e-4",
            "--patience",
            "2",
            "--no-progress",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    history = json.loads((out / "history.json").read_text())
    assert len(history["val_loss"]) >= 2 and history["test_loss"] > 0
    assert (out / "train.checkpoint.npz").stat().st_size > 0
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # resume continues from the checkpoint instead of starting over
    rc = main(
        [
            "train",
            "--data",
            "synthetic",
            "--train-size",
            "60",
            "--hidden",
            "12",
            "--epochs",
            "4",
            "--dropout",
            "0.2",
            "--layer-norm",
            "--weight-decay",
            "1e-4",
            "--patience",
            "2",
            "--no-progress",
            "--quiet",
            "--out",
            str(out),
            "--resume",
        ]
    )
    assert rc == 0


@pytest.mark.slow
def test_compare_on_the_real_corpus_writes_table_and_figures(tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = main(
        [
            "compare",
            "--train-size",
            "3000",
            "--eval-size",
            "600",
            "--hidden",
            "16",
            "--epochs",
            "2",
            "--no-progress",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    for setting in ("none", "dropout", "layer_norm", "weight_decay", "early_stopping", "all"):
        assert f"| {setting} |" in printed
    for name in ("comparison.png", "weights.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"none", "dropout", "layer_norm", "weight_decay", "early_stopping", "all"}


def test_bad_arguments_give_a_clear_error(tmp_path, capsys):
    for bad in ("1.5", "1", "-0.1", "x"):
        with pytest.raises(SystemExit) as info:
            main(["train", "--data", "synthetic", "--dropout", bad, "--out", str(tmp_path)])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "--dropout" in err and "Traceback" not in err
    assert "probability of dropping" in err or "not a number" in err


def test_dropout_flags_are_drop_probabilities(tmp_path, capsys):
    """--dropout 0.25 drops a quarter of the units (PyTorch's and Keras's convention): the model
    keeps 0.75; the help says so and shows the defaults."""
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            "--data",
            "synthetic",
            "--train-size",
            "40",
            "--hidden",
            "8",
            "--epochs",
            "1",
            "--dropout",
            "0.25",
            "--recurrent-dropout",
            "0.5",
            "--weight-drop",
            "0.1",
            "--no-progress",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    model = json.loads((out / "history.json").read_text())["model"]
    assert (model["dropout_keep_prob"], model["recurrent_keep_prob"], model["weight_keep_prob"]) == (
        0.75,
        0.5,
        0.9,
    )
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    assert "probability of dropping" in help_text and "(default: 0.0)" in help_text
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("rnnreg ")


@pytest.mark.slow
def test_python_dash_m_and_bench_smoke(tmp_path, run_benchmark):
    version = subprocess.run(
        [sys.executable, "-m", "rnnreg", "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert version.stdout.startswith("rnnreg ")
    # the benchmark harness lives in benchmarks/, outside the installed package
    out = tmp_path / "bench.json"
    proc = run_benchmark("run", "--quick", "--json", str(out), check=True, cwd=tmp_path)
    assert "| lstm_forward+backward | tiny |" in proc.stdout
    data = json.loads(out.read_text())
    # public functions against textbook NumPy (where there is one), the twin and the raw kernel
    assert data["results"] and all(r["public_s"] > 0 for r in data["results"])
    assert all(r["speedup"] > 0 for r in data["results"] if r["case"] == "lstm_forward+backward")
    assert {"ln_lstm_forward+backward", "training epoch"} <= {r["case"] for r in data["results"]}
    # benchmarks/summarize.py reads such files: two runs of the same rows give a median and range
    table = run_benchmark("summarize", str(out), str(out), check=True, cwd=tmp_path).stdout
    assert "2 runs" in table and "| lstm_forward+backward | tiny |" in table


def test_cli_flags_reach_the_model_and_trainer(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            "synthetic",
            "--train-size",
            "40",
            "--eval-size",
            "20",
            "--epochs",
            "2",
            "--hidden",
            "8",
            "--zoneout",
            "0.1",
            "--zoneout-cell",
            "0.5",
            "--embedding-dropout",
            "0.1",
            "--ar",
            "2",
            "--tar",
            "1",
            "--tie-weights",
            "--optimizer",
            "nt-asgd",
            "--lr",
            "1",
            "--nonmono",
            "1",
            "--quiet",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    history = json.loads((out / "history.json").read_text())
    assert history["model"]["zoneout_hidden"] == 0.1 and history["model"]["zoneout_cell"] == 0.5
    assert history["model"]["embedding_keep_prob"] == pytest.approx(0.9)
    assert history["model"]["tie_weights"] and history["model"]["activation_reg"] == 2.0
    assert history["train_config"]["optimizer"] == "nt-asgd"
    assert load_model(str(out / "train.checkpoint.npz")).tie_weights


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--zoneout", "1"], "--zoneout"),
        (["--zoneout-cell", "-0.1"], "--zoneout-cell"),
        (["--embedding-dropout", "1.5"], "--embedding-dropout"),
        (["--ar", "-1"], "--ar"),
        (["--tar", "inf"], "--tar"),
        (["--tar", "nan"], "--tar"),
        (["--optimizer", "asgd"], "--optimizer"),
    ],
)
def test_cli_refuses_bad_rates_naming_the_flag(argv, words, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", "synthetic", "--out", str(tmp_path)] + argv)
    assert exc.value.code == 2
    assert words in capsys.readouterr().err


def test_cli_tying_unequal_sizes_is_one_line(capsys, tmp_path):
    code = main(
        [
            "train",
            "--data",
            "synthetic",
            "--train-size",
            "20",
            "--eval-size",
            "10",
            "--epochs",
            "1",
            "--hidden",
            "8",
            "--embedding",
            "4",
            "--tie-weights",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "embedding_size == hidden_size" in err and "Traceback" not in err


@pytest.mark.slow
def test_compare_runs_the_zoneout_and_awd_settings(tmp_path, capsys):
    code = main(
        [
            "compare",
            "--settings",
            "zoneout",
            "awd",
            "--epochs",
            "2",
            "--hidden",
            "16",
            "--train-size",
            "1500",
            "--eval-size",
            "600",
            "--quiet",
            "--no-progress",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {"zoneout", "awd"}
    assert results["awd"]["model"]["tie_weights"] is True
    assert results["awd"]["train_config"]["optimizer"] == "adamw"
    assert results["zoneout"]["model"]["zoneout_cell"] == 0.5
    assert all(math.isfinite(h["test_loss"]) for h in results.values())


def test_the_model_file_holds_the_weights_the_run_reports(tmp_path, capsys):
    """After early stopping restores the best epoch, the model file on disk is that epoch's: its
    test loss is the one the run reports (the checkpoint, for resuming, holds the last epoch)."""
    import rnnreg
    from rnnreg.runs import load_data

    out = tmp_path / "es"
    argv = [
        "train",
        "--layer-norm",
        "--patience",
        "1",
        "--epochs",
        "8",
        "--hidden",
        "32",
        "--eval-size",
        "2000",
        "--train-size",
        "6000",
        "--lr",
        "0.02",
        "--quiet",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    history = json.loads((out / "history.json").read_text())
    assert history["restored_best"] and str(out / "model.npz") in printed
    _, _, corpus = load_data({"data": ["stdlib"], "train_size": 6000, "eval_size": 2000, "seed": 0})
    for name in ("model.npz", "best.npz"):
        model = rnnreg.load_model(str(out / name))
        loss = rnnreg.evaluate(model, corpus.test, starts=corpus.starts["test"])
        assert loss == pytest.approx(history["test_loss"], rel=1e-6), name
        assert oct((out / name).stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert main(["sample", str(out), "--length", "10", "--prime", "The "]) == 0


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_sample_refuses_a_folder_without_a_model_in_one_line(tmp_path, capsys):
    assert main(["sample", str(tmp_path)]) == 2  # a user error
    err = capsys.readouterr().err
    assert "folder without a model file" in err and "Traceback" not in err


def test_every_option_of_every_command_shows_its_default_in_help():
    """`rnnreg COMMAND --help` gives each option's default (a value, "none" for an option that
    is off unless given, or the help's own words where the default depends on the data)."""
    import argparse

    from rnnreg.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(commands) >= {"compare", "train", "sweep", "sample"}
    for name, command in commands.items():
        formatter = command._get_formatter()
        for action in command._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            shown = formatter._expand_help(action) if action.help else ""
            assert "default" in shown, (name, action.option_strings, shown)


ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


@pytest.mark.parametrize(
    "model",
    [[], ["--zoneout"], ["--model", "LN-LSTM", "--threads", "2"]],
    ids=["plain", "zoneout", "LN-LSTM, 2 threads"],
)
def test_epoch_kernels_diagnostic_smoke(model, run_benchmark):
    """benchmarks/diagnostics/epoch_kernels.py (the LSTM kernels' share of the BLAS peak in a real epoch,
    and where the epoch's time goes) runs end to end: it reports a fraction, and its kernel
    rows, with the time between them, add up to the epoch."""
    run = run_benchmark("diagnostics.epoch_kernels", "--rounds", "1", "--hidden", "32", *model)
    assert run.returncode == 0, run.stderr
    tables = [
        [line.split("|")[1:-1] for line in block.splitlines()[2:]]
        for block in run.stdout.split("\n\n")
        if block.startswith("| ")
    ]
    summary, where = tables
    # The LSTM kernels' rate over the peak, from the table's own columns: the printed share is
    # rounded to whole percent, and a tiny model on two loaded cores can print 0% for a share
    # that is not zero.
    rate, peak = (float(summary[0][k].split()[0]) for k in (4, 5))
    assert summary[0][-1].strip().endswith("]") and 0 < rate / peak < 2, summary
    times = {row[0].strip(): float(row[2].split()[0]) for row in where}
    epoch = times.pop("the epoch")
    assert {"`lstm_forward`", "`lstm_backward`", "`matmul`"} <= set(times)
    assert ("`draw_mask`" in times) == ("--zoneout" in model)  # the zoneout masks
    assert sum(times.values()) == pytest.approx(epoch, rel=0.01, abs=0.3)
    # The LSTM kernels' multiply-adds: N·T·H·4H forward over the 8 rows of (20,000 − 1) // 8
    # steps of the epoch, twice that backward.
    work = {row[0].strip(): row[3].strip() for row in where}
    assert work["`lstm_forward`"] == f"{8 * 2499 * 32 * 128 / 1e9:.2f} G"
    assert work["`lstm_backward`"] == f"{2 * 8 * 2499 * 32 * 128 / 1e9:.2f} G"


def test_evaluation_benchmark_smoke(run_benchmark):
    """benchmarks/evaluation.py (what validation adds to an epoch, read three ways) runs end to
    end and prints a row per validation size and thread count."""
    run = run_benchmark("evaluation", "--rounds", "1", "--threads", "1", "--hidden", "32")
    assert run.returncode == 0, run.stderr
    rows = run.stdout.strip().splitlines()[2:]
    assert [row.split("|")[1:4] for row in rows] == [
        [" 1000 characters ", " 2 ", " 1 "],
        [" 10000 characters ", " 23 ", " 1 "],
    ], rows


def test_epoch_bound_diagnostic_smoke(run_benchmark):
    """benchmarks/epoch_bound.py reads an epoch record and counts each row's multiply-adds: the
    plain model of 20,000 characters (19,992 tokens in rows of 8), hidden 256, 81 symbols, does
    3 * (256 * 1024 + 256 * 81) of them per token."""
    record = BENCHMARKS / "results" / "2026-12-05-epoch.json"
    run = run_benchmark("epoch_bound", str(record), "--repeats", "1")
    assert run.returncode == 0, run.stderr
    assert f"| plain | 1 | {19992 * 3 * (256 * 1024 + 256 * 81) / 1e9:.2f} G |" in run.stdout
    assert "| plain, H1024 B64 | 2 |" in run.stdout


def test_epoch_bound_reads_the_zoneout_epoch_of_a_regularizers_record(run_benchmark):
    """The zoneout epoch of benchmarks/regularizers.py has the plain model's multiply-adds, and
    --target adds the share of the peak an epoch that many times PyTorch's needs."""
    record = BENCHMARKS / "results" / "regularizers" / "epoch-1thread.json"
    run = run_benchmark("epoch_bound", str(record), "--repeats", "1", "--target", "4")
    assert run.returncode == 0, run.stderr
    row = next(line for line in run.stdout.splitlines() if line.startswith("| zoneout"))
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert cells[1:3] == ["1", f"{19992 * 3 * (256 * 1024 + 256 * 81) / 1e9:.2f} G"]
    assert "share of the peak at 4×" in run.stdout
    at_peak, torch_s = float(cells[3].rstrip(" s")), float(cells[6].rstrip(" s"))
    # (the table's times are rounded to the millisecond: the share within a point)
    assert abs(float(cells[9].rstrip("%")) - 100 * at_peak * 4 / torch_s) <= 1


def _builds_avx2_c():
    from rnnreg._backend import _cpu_has_avx2_fma

    return shutil.which("gcc") is not None and _cpu_has_avx2_fma()


def test_kernel_processes_diagnostic_smoke(run_benchmark):
    """benchmarks/diagnostics/kernel_processes.py times two builds (here the installed one twice)
    in fresh processes: a row per build, pass and model, each with its share of the peak."""
    import rnnreg

    src = Path(rnnreg.__file__).resolve().parents[1]
    run = run_benchmark(
        "diagnostics.kernel_processes",
        "--before",
        str(src),
        "--processes",
        "2",
        "--shapes",
        "2x32",
        "--models",
        "plain",
        "LN-LSTM",
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("| 2 × 32 |")]
    assert len(rows) == 2 * 2 * 2, run.stdout  # models x passes x builds
    assert all(row.rstrip().endswith("% |") for row in rows), rows


@pytest.mark.skipif(not _builds_avx2_c(), reason="needs GCC and an AVX2/FMA CPU")
def test_step_split_diagnostic_smoke(run_benchmark):
    """benchmarks/diagnostics/step_split.py (rows against hidden units as the thread split) compiles against
    the kernels' _fastmath.h and runs."""
    run = run_benchmark("diagnostics.step_split", "--shapes", "4x32")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1].startswith("| 4 | 32 |"), run.stdout


@pytest.mark.slow
@pytest.mark.extras
def test_sequences_benchmark_smoke(tmp_path, run_benchmark):
    """benchmarks/sequences.py (JapaneseVowels and airline: each regularizer and the baselines)
    runs end to end on tiny settings and writes its tables, record and figure."""
    import importlib.util

    if importlib.util.find_spec("aeon") is None:
        pytest.skip("the data extra: pip install 'rnnreg[data]'")
    run = run_benchmark("sequences", "--seeds", "1", "--epochs", "2", "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert "1-NN DTW (dependent) | 0.949" in run.stdout  # the archive's published DTW_D accuracy
    assert "seasonal naive" in run.stdout
    for name in ("classification.md", "forecasting.md", "sequences.json", "sequences.png"):
        assert (tmp_path / name).exists(), name


# ----------------------------------------------------------------------------- sequence data
def _train_cli(tmp_path, *argv):
    out = tmp_path / "run"
    code = main(
        ["train", *argv, "--hidden", "8", "--epochs", "2", "--no-progress", "--quiet", "--out", str(out)]
    )
    assert code == 0
    return out, json.loads((out / "history.json").read_text())


def test_train_on_an_npz_of_sequences_classifies(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    path = tmp_path / "seq.npz"
    np.savez(path, X=rng.standard_normal((60, 9, 4)) + y[:, None, None], y=y)
    out, history = _train_cli(tmp_path, "--data", str(path), "--standardize", "--dropout", "0.2")
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "rnnreg sample" not in printed
    model = load_model(str(out / "model.npz"))
    assert (model.input_size, model.output_size, model.task) == (4, 3, "classify")
    assert model.dropout_keep_prob == pytest.approx(0.8) and model.standardizer is not None
    assert set(history["test_metrics"]) == {"accuracy"} and len(history["val_accuracy"]) == 2


def test_train_on_a_ts_file_uses_its_test_sibling_and_resumes(tmp_path, capsys):
    rng = np.random.default_rng(1)

    def write(name, n):
        lines = [
            "@problemName toy",
            "@univariate false",
            "@dimensions 2",
            "@equalLength false",
            "@classLabel true a b",
            "@data",
        ]
        for _ in range(n):
            label = int(rng.integers(0, 2))
            steps = int(rng.integers(3, 9))
            dims = [",".join(f"{v:.3f}" for v in rng.standard_normal(steps) + label) for _ in range(2)]
            lines.append(":".join(dims) + ":" + "ab"[label])
        (tmp_path / name).write_text("\n".join(lines) + "\n")

    write("Toy_TRAIN.ts", 40)
    write("Toy_TEST.ts", 15)
    out, history = _train_cli(tmp_path, "--data", str(tmp_path / "Toy_TRAIN.ts"))
    assert "Toy_TRAIN.ts (40 sequences)" in capsys.readouterr().out
    assert history["test_loss"] is not None
    assert load_model(str(out / "model.npz")).class_names == ("a", "b")  # the file's class labels
    code = main(
        [
            "train",
            "--data",
            str(tmp_path / "Toy_TRAIN.ts"),
            "--hidden",
            "8",
            "--epochs",
            "3",
            "--no-progress",
            "--quiet",
            "--out",
            str(out),
            "--resume",
        ]
    )
    assert code == 0
    assert json.loads((out / "history.json").read_text())["epoch"] == [0, 1, 2]


def test_train_on_a_csv_series_forecasts_in_windows(tmp_path):
    rng = np.random.default_rng(2)
    series = np.cumsum(rng.standard_normal((120, 2)), axis=0)
    text = "day,a,b\n" + "\n".join(f"{i},{a:.4f},{b:.4f}" for i, (a, b) in enumerate(series))
    (tmp_path / "s.csv").write_text(text)
    out, history = _train_cli(
        tmp_path, "--data", str(tmp_path / "s.csv"), "--target", "b", "--lookback", "8", "--horizon", "3"
    )
    model = load_model(str(out / "model.npz"))
    assert (model.input_size, model.output_size, model.task) == (3, 3, "regress")  # day, a, b -> 3 of b
    assert set(history["test_metrics"]) == {"mse", "mae", "rmse"}


@pytest.mark.safety
def test_a_broken_sequence_file_is_one_line_naming_it(tmp_path, capsys):
    (tmp_path / "bad.ts").write_text("@problemName x\n@classLabel true a b\n@data\n1,2,x:a\n")
    code = main(["train", "--data", str(tmp_path / "bad.ts"), "--epochs", "1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code != 0 and "bad.ts, line 4" in err and "Traceback" not in err


def test_sequence_epoch_benchmark_smoke(tmp_path, run_benchmark):
    """benchmarks/sequence_epoch.py (a classification epoch against PyTorch) runs end to end."""
    out = tmp_path / "epoch.json"
    run = run_benchmark("sequence_epoch", "--quick", "--json", str(out))
    assert run.returncode == 0, run.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [row["model"] for row in rows] == ["plain", "h(t-1) dropout", "zoneout"]
    assert all(row["rnnreg_s"] > 0 for row in rows)


def test_compare_on_sequences_reports_the_tasks_metric(tmp_path, capsys):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 50)
    path = tmp_path / "seq.npz"
    np.savez(path, X=rng.standard_normal((50, 6, 3)) * 50 + y[:, None, None], y=y)
    out = tmp_path / "cmp"
    code = main(
        [
            "compare",
            "--data",
            str(path),
            "--settings",
            "none",
            "dropout",
            "--epochs",
            "2",
            "--hidden",
            "8",
            "--quiet",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "inputs standardized on the training split" in printed
    columns = [
        "setting",
        "best val loss",
        "test loss, best model",
        "test loss, last epoch",
        "test accuracy, best model",
    ]
    assert "| " + " | ".join(columns) + " |" in printed
    assert (out / "comparison.png").exists() and (out / "models" / "dropout.npz").exists()
    assert load_model(str(out / "models" / "none.npz")).standardizer is not None


@pytest.mark.parametrize("flag", ["--tar", "--ar"])
def test_an_overflowing_penalty_is_named_with_its_rate_and_no_numpy_warning(tmp_path, capsys, flag):
    import warnings

    argv = ["train", "--data", "synthetic", "--train-size", "40", "--eval-size", "20", "--epochs", "2",
            "--hidden", "8", "--quiet", "--no-progress", "--out", str(tmp_path / "run")]  # fmt: skip
    argv += [flag, "1e308"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NumPy RuntimeWarning would raise here
        assert main(argv) == 1
    err = capsys.readouterr().err
    assert "penalty overflowed" in err and f"({flag})" in err and "clip_norm" not in err


def _tiny_train_argv(out, *more):
    return ["train", "--data", "synthetic", "--train-size", "40", "--eval-size", "20", "--epochs", "1",
            "--hidden", "8", "--quiet", "--no-progress", "--out", str(out), *more]  # fmt: skip


def test_train_refuses_to_overwrite_an_earlier_run_unless_asked(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_tiny_train_argv(out)) == 0
    first = (out / "history.json").read_text()
    capsys.readouterr()
    assert main(_tiny_train_argv(out, "--hidden", "9")) == 2
    err = capsys.readouterr().err
    assert "holds an earlier run" in err and "--overwrite" in err and "--resume" in err
    assert (out / "history.json").read_text() == first  # untouched
    assert main(_tiny_train_argv(out, "--hidden", "9", "--overwrite")) == 0
    assert json.loads((out / "history.json").read_text())["model"]["hidden_size"] == 9


def test_warnings_on_the_command_line_are_one_line(tmp_path, capsys):
    folder = tmp_path / "docs"
    folder.mkdir()
    for k in range(4):
        (folder / f"d{k}.txt").write_text(f"document {k}. " * 30)
    argv = ["train", "--data", str(folder), "--epochs", "1", "--hidden", "8", "--quiet", "--no-progress",
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "warning" in line]
    assert lines and all(line.startswith("rnnreg train: warning: the ") for line in lines)
    assert "UserWarning" not in err and ".py:" not in err


def test_the_benchmarks_one_thread_blas_peak_runs_on_one_thread(tmp_path):
    """threadpoolctl limits only the libraries loaded when a limit is entered: importing
    benchmarks.common loads SciPy's BLAS first, so that blas_rate under threadpool_limits(1)
    measures one thread (a BLAS first loaded inside the limit ran on every core: a "one-thread
    peak" twice too high)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "__init__.py").exists():
        pytest.skip("benchmarks/ is not beside the tests")
    code = (
        "import benchmarks.common\n"
        "from threadpoolctl import threadpool_info, threadpool_limits\n"
        "with threadpool_limits(1):\n"
        "    import scipy.linalg.blas\n"
        "    print(max(i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'))\n"
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


@pytest.mark.slow
def test_before_after_times_two_builds_in_one_run(run_benchmark, tmp_path):
    """benchmarks/before_after.py runs end to end: "before" here is the installed build itself,
    in processes of its own, used in turn; the table has each build's share of the peak, and the
    JSON the samples of every round."""
    import rnnreg

    src = Path(rnnreg.__file__).resolve().parents[1]
    out = tmp_path / "record.json"
    run = run_benchmark(
        "before_after",
        "--before",
        str(src),
        "--rounds",
        "2",
        "--processes",
        "2",
        "--threads",
        "1",
        "--cases",
        "plain",
        "classify, plain",
        "--no-torch",
        "--json",
        str(out),
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("| plain |")]
    assert len(rows) == 1 and rows[0].count("%") == 2, run.stdout
    record = json.loads(out.read_text())
    assert [r["case"] for r in record["rows"]] == ["plain", "classify, plain"]
    assert all(len(v) == 2 for v in record["samples"].values())
    assert record["processes"] == 2
    assert 0 < record["rows"][0]["bound_s"] < record["rows"][0]["after"]
