"""The command line end to end, on small settings."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rnnreg.cli import main


def test_train_writes_history_checkpoint_and_png(tmp_path, capsys):
    out = tmp_path / "train"
    rc = main(["train", "--data", "synthetic", "--train-size", "60", "--hidden", "12", "--epochs", "3",
               "--dropout", "0.2", "--layer-norm", "--weight-decay", "1e-4", "--patience", "2",
               "--no-progress", "--quiet", "--out", str(out)])
    assert rc == 0
    history = json.loads((out / "history.json").read_text())
    assert len(history["val_loss"]) >= 2 and history["test_loss"] > 0
    assert (out / "train.checkpoint.npz").stat().st_size > 0
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # resume continues from the checkpoint instead of starting over
    rc = main(["train", "--data", "synthetic", "--train-size", "60", "--hidden", "12", "--epochs", "4",
               "--dropout", "0.2", "--layer-norm", "--weight-decay", "1e-4", "--patience", "2",
               "--no-progress", "--quiet", "--out", str(out), "--resume"])
    assert rc == 0


@pytest.mark.slow
def test_compare_on_the_real_corpus_writes_table_and_figures(tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = main(["compare", "--train-size", "3000", "--eval-size", "600", "--hidden", "16",
               "--epochs", "2", "--no-progress", "--quiet", "--out", str(out)])
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
    rc = main(["train", "--data", "synthetic", "--train-size", "40", "--hidden", "8",
               "--epochs", "1", "--dropout", "0.25", "--recurrent-dropout", "0.5",
               "--weight-drop", "0.1", "--no-progress", "--quiet", "--out", str(out)])
    assert rc == 0
    model = json.loads((out / "history.json").read_text())["model"]
    assert (model["dropout_keep_prob"], model["recurrent_keep_prob"],
            model["weight_keep_prob"]) == (0.75, 0.5, 0.9)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    assert "probability of dropping" in help_text and "(default: 0.0)" in help_text
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("rnnreg ")


@pytest.mark.slow
def test_python_dash_m_and_bench_smoke(tmp_path):
    version = subprocess.run([sys.executable, "-m", "rnnreg", "--version"], capture_output=True,
                             text=True, check=True, cwd=tmp_path)
    assert version.stdout.startswith("rnnreg ")
    # the benchmark harness lives in benchmarks/, outside the installed package
    out = tmp_path / "bench.json"
    run = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
    proc = subprocess.run([sys.executable, str(run), "--quick", "--json", str(out)],
                          capture_output=True, text=True, check=True, cwd=tmp_path)
    assert "| lstm_forward+backward | tiny |" in proc.stdout
    data = json.loads(out.read_text())
    # public functions against textbook NumPy (where there is one), the twin and the raw kernel
    assert data["results"] and all(r["public_s"] > 0 for r in data["results"])
    assert all(r["speedup"] > 0 for r in data["results"] if r["case"] == "lstm_forward+backward")
    assert {"ln_lstm_forward+backward", "training epoch"} <= {r["case"] for r in data["results"]}
    # benchmarks/summarize.py reads such files: two runs of the same rows give a median and range
    summarize = Path(__file__).resolve().parents[1] / "benchmarks" / "summarize.py"
    table = subprocess.run([sys.executable, str(summarize), str(out), str(out)],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert "2 runs" in table and "| lstm_forward+backward | tiny |" in table
