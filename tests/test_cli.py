"""The command line end to end, on small settings."""
import json
import subprocess
import sys
from pathlib import Path

from rnnreg.cli import main


def test_train_writes_history_checkpoint_and_png(tmp_path, capsys):
    out = tmp_path / "train"
    rc = main(["train", "--data", "synthetic", "--train-size", "60", "--hidden", "12", "--epochs", "3",
               "--dropout", "0.8", "--layer-norm", "--weight-decay", "1e-4", "--patience", "2",
               "--no-progress", "--quiet", "--out", str(out)])
    assert rc == 0
    history = json.loads((out / "history.json").read_text())
    assert len(history["val_loss"]) >= 2 and history["test_loss"] > 0
    assert (out / "train.checkpoint.npz").stat().st_size > 0
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # resume continues from the checkpoint instead of starting over
    rc = main(["train", "--data", "synthetic", "--train-size", "60", "--hidden", "12", "--epochs", "4",
               "--dropout", "0.8", "--layer-norm", "--weight-decay", "1e-4", "--patience", "2",
               "--no-progress", "--quiet", "--out", str(out), "--resume"])
    assert rc == 0


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
    rc = main(["train", "--data", "synthetic", "--dropout", "1.5", "--out", str(tmp_path)])
    assert rc == 2
    assert "dropout_keep_prob must be in (0, 1]" in capsys.readouterr().err


def test_python_dash_m_and_bench_smoke(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "rnnreg", "bench", "--quick", "--json", str(out)],
                          capture_output=True, text=True, check=True, cwd=tmp_path)
    assert "| lstm_forward+backward | tiny |" in proc.stdout
    data = json.loads(out.read_text())
    assert data["results"] and all(r["speedup"] > 0 for r in data["results"])
    # benchmarks/summarize.py reads such files: two runs of the same rows give a median and range
    summarize = Path(__file__).resolve().parents[1] / "benchmarks" / "summarize.py"
    table = subprocess.run([sys.executable, str(summarize), str(out), str(out)],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert "2 runs" in table and "| lstm_forward+backward | tiny |" in table
