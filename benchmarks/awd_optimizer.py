"""Which optimizer the "awd" setting of ``rnnreg compare`` trains with: AWD-LSTM's regularizers
(``rnnreg.runs.AWD_REGULARIZERS``) under NT-ASGD (AWD-LSTM's own, at its measured rate,
``awd_nt_asgd``) and under Adam and AdamW at three rates and two clipping norms, on the built-in
text with compare's defaults (float32, hidden 256, 14 epochs), dropout alone beside them.

    python -m benchmarks.awd_optimizer [--out benchmarks/results/awd-optimizer]

The setting is chosen on the validation loss (the test loss is reported, never chosen on); each
run says whether NT-ASGD started averaging. Writes ``comparison.md``, ``comparison.png`` and
``results.json`` to ``--out`` (``rnnreg compare``'s files), and ``choice.md``: the candidates
ranked by validation loss.
"""

import argparse
import json
import os
import sys

CANDIDATES = {  # name -> (optimizer settings on top of AWD's regularizers)
    "awd_nt_asgd": None,  # rnnreg.runs.SETTINGS["awd_nt_asgd"]: NT-ASGD at AWD_LR
    "adam lr 2e-3": {"optimizer": "adam", "lr": 2e-3},
    "adam lr 5e-3": {"optimizer": "adam", "lr": 5e-3},
    "adam lr 1e-2": {"optimizer": "adam", "lr": 1e-2},
    "adam lr 5e-3, clip 5": {"optimizer": "adam", "lr": 5e-3, "clip_norm": 5.0},
    "adamw lr 5e-3, decay 1e-2": {"optimizer": "adamw", "lr": 5e-3, "weight_decay": 1e-2},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/awd-optimizer")
    args = parser.parse_args(argv)
    from rnnreg import runs
    from rnnreg.cli import main as rnnreg

    names = {}
    for name, optimizer in CANDIDATES.items():
        key = name.replace(" ", "_").replace(",", "")
        if optimizer is not None:  # added for this run only: one process runs them all
            runs.SETTINGS[key] = {**runs.AWD_REGULARIZERS, "lr_schedule": None, **optimizer}
        names[key] = name
    code = rnnreg(["compare", "--settings", "dropout", *names, "--jobs", "1", "--quiet", "--out", args.out])
    if code:
        return code
    with open(os.path.join(args.out, "results.json")) as f:
        results = json.load(f)
    ranked = sorted(names, key=lambda key: results[key]["best_val_loss"])
    lines = [
        "Made by: python -m benchmarks.awd_optimizer",
        "",
        "| AWD-LSTM's regularizers with | best val loss | test loss, best model | NT-ASGD averaged from |",
        "|---|---|---|---|",
    ]
    for key in ranked:
        h = results[key]
        averaged = (
            ""
            if h["train_config"]["optimizer"] != "nt-asgd"
            else (f"epoch {h['averaging_from']}" if h["averaging_from"] is not None else "never (plain SGD)")
        )
        lines.append(
            f"| {names[key]} | {h['best_val_loss']:.4f} | {h['best_model_test_loss']:.4f} | {averaged} |"
        )
    lines += ["", f"dropout alone: best val loss {results['dropout']['best_val_loss']:.4f}"]
    with open(os.path.join(args.out, "choice.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
