"""rnnreg's command line (also ``python -m rnnreg``).

rnnreg compare                 # the ablation on the built-in text: none, dropout, layer norm,
                               # weight decay, early stopping, all — table + PNG
rnnreg compare --settings zoneout awd    # zoneout; AWD-LSTM's whole set
rnnreg train --dropout 0.3     # one run (drop 30% of units); model files, history, PNG
rnnreg sample runs/train --prime "The " --length 200
rnnreg sweep --grid dropout=0,0.3 --grid weight-decay=0,3e-4 --jobs 2 --prune median
"""

# argparse over the library: the training options, the named settings and the run itself are
# rnnreg.runs's; no library module imports this one (tests/test_layering.py).
import argparse
import json
import logging
import os
import shlex
import sys
import tempfile
import warnings


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=float)
    os.replace(tmp, path)


def _check_writable(folder):
    """Create the output folder and write a file in it now, so that a read-only or full disk
    shows before the first epoch rather than after it."""
    os.makedirs(folder, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".rnnreg-write-test-") as probe:
        probe.write(b"0" * 4096)
        probe.flush()
        os.fsync(probe.fileno())


def _epoch_log(args, name):
    """Epoch lines go through the `rnnreg` logger (main() sends it to stdout); --quiet drops them."""
    if args.quiet:
        return lambda line: None
    return lambda line: logging.getLogger("rnnreg").info(f"[{name}] {line}")


def _train(args):
    from .checkpoint import TRAIN_FILES
    from .plotting import plot_learning_curves
    from .runs import load_data, train_run

    _check_writable(args.out)
    files = TRAIN_FILES.paths(args.out)
    earlier = [os.path.basename(f) for f in files if os.path.exists(f)]
    if earlier and not (args.resume or args.overwrite):
        raise ValueError(
            f"{args.out} holds an earlier run ({', '.join(earlier)}): --resume continues it, "
            "--overwrite replaces it, or give another --out"
        )
    if args.overwrite and not args.resume:  # nothing of the earlier run may pass for this one's
        for path in files:
            if os.path.exists(path):
                os.remove(path)
    settings = vars(args)
    description, vocab_size, data = load_data(settings)
    print(f"data: {description}")
    from . import __version__
    from .callbacks import CSVLogger

    if args.csv:
        _check_log_path(args.csv, args.out)
    callbacks = [CSVLogger(args.csv, append=args.resume)] if args.csv else []
    model, history = train_run(
        settings,
        data,
        vocab_size,
        name="train",
        checkpoint_path=files.checkpoint,
        resume=args.resume,
        log=_epoch_log(args, "train"),
        best_model_path=files.best,
        model_path=files.model,
        callbacks=callbacks,
    )
    # What made this run, so that a history.json can be traced back to it.
    history.update(
        data=description,
        rnnreg_version=__version__,
        seed=args.seed,
        command="rnnreg " + shlex.join(sys.argv[1:] if args.argv is None else args.argv),
    )
    _write_json(files.history, history)
    fig = plot_learning_curves(
        history["train_loss"],
        history["val_loss"],
        title=f"rnnreg train ({model.parameter_count():,} parameters)",
        best_epoch=history["best_epoch"],
        unit=(
            "nats/char"
            if model.vocabulary is not None
            else "nats per token"
            if model.model_config.task == "next-token"
            else "loss"
        ),
    )
    fig.savefig(files.curves, dpi=100)
    metrics = history.get("test_metrics") or {}
    print(
        f"best val loss {history['best_val_loss']:.4f} at epoch {history['best_epoch']}; "
        f"test loss {history['test_loss']:.4f}"
        + "".join(f"; test {name} {value:.4f}" for name, value in metrics.items())
        + f"; {history['wall_seconds']:.1f}s"
    )
    print(f"wrote {files.history}, {files.checkpoint} (to resume), {files.curves}")
    text = model.vocabulary is not None
    print(
        f"model: {files.model} (the weights reported above); best validation: {files.best}"
        + (f"; sample with: rnnreg sample {args.out}" if text else "; load with rnnreg.load_model")
    )
    return 0


def _check_log_path(csv_path, out):
    """Refuse a --csv that is one of the run's own files (the log and the file would overwrite
    each other) or the run folder itself."""
    from .checkpoint import TRAIN_FILES
    from .folder_lock import LOCK_NAME

    own = [*TRAIN_FILES.paths(out), os.path.join(out, LOCK_NAME), out]
    target = os.path.realpath(csv_path)
    if any(target == os.path.realpath(path) for path in own):
        what = "the run folder" if target == os.path.realpath(out) else "one of the files the run writes"
        raise ValueError(
            f"--csv {csv_path} is {what} in {out} ({', '.join(TRAIN_FILES)}); give the log another name"
        )


def comparison_table(results):
    """A markdown table of the ablation: per setting, the best validation loss, the test loss of
    the model it would ship (its best validation epoch's, as models/NAME.npz holds) beside the
    last epoch's (and a sequence task's test metrics of the shipped model), the training loss,
    epochs, the best epoch and wall time."""
    first = next(iter(results.values())) if results else {}
    metrics = list(first.get("best_model_test_metrics") or first.get("test_metrics") or {})
    lines = [
        "| setting | best val loss | test loss, best model | test loss, last epoch | "
        + "".join(f"test {name}, best model | " for name in metrics)
        + "train loss, last epoch (no L2 term) | epochs run | best epoch | wall time |",
        "|---|---|---|---|" + "---|" * len(metrics) + "---|---|---|---|",
    ]
    for name, h in results.items():
        shipped = h.get("best_model_test_loss")
        shipped = h["test_loss"] if shipped is None else shipped
        shipped_metrics = h.get("best_model_test_metrics") or h.get("test_metrics") or {}
        lines.append(
            f"| {name} | {h['best_val_loss']:.4f} | {shipped:.4f} | {h['test_loss']:.4f} | "
            + "".join(f"{shipped_metrics[m]:.4f} | " for m in metrics)
            + f"{h['train_ce'][-1]:.4f} | {len(h['epoch'])} | {h['best_epoch']} | "
            f"{h['wall_seconds']:.1f}s |"
        )
    return "\n".join(lines)


def _compare(args):
    import matplotlib

    matplotlib.use("Agg")
    from .data import CharCorpus
    from .plotting import plot_regularization_comparison, plot_weight_distributions
    from .runs import load_data
    from .sweeps import settings_of, sweep
    from .training import TrainingError

    _check_writable(args.out)
    from .runs import SequenceData

    description, vocab_size, data = load_data(vars(args))
    sequences = isinstance(data, SequenceData)
    if sequences and not args.standardize:  # real-valued features on their own scales
        args.standardize = True
        description += "; inputs standardized on the training split"
    print(f"data: {description}")
    # A sweep over the named settings: --jobs N trains N of them at once.
    records, trial_weights = sweep(
        {"setting": list(args.settings)},
        settings=settings_of(args),
        jobs=args.jobs,
        progress=args.jobs > 1 and not args.quiet,  # one process: its epoch lines show instead
        return_weights=True,
        model_dir=os.path.join(args.out, "models"),
        data=data if isinstance(data, CharCorpus) else None,
    )
    failed = [f"{r['params']['setting']}: {r['error']}" for r in records if r["status"] != "done"]
    if failed:
        raise TrainingError("; ".join(failed))
    results = {r["params"]["setting"]: r["history"] for r in records}
    weights = {r["params"]["setting"]: w for r, w in zip(records, trial_weights)}
    table = comparison_table(results)
    print()
    print(table)
    with open(os.path.join(args.out, "comparison.md"), "w") as f:
        f.write(f"data: {description}\n\n{table}\n")
    _write_json(os.path.join(args.out, "results.json"), results)
    # --data is a list of paths, or one built-in name
    data_name = {
        ("stdlib",): "the standard library's docstrings",
        ("synthetic",): "the synthetic counting task",
        ("japanese-vowels",): "JapaneseVowels",
        ("airline",): "the airline series",
    }.get(tuple(args.data), "your sequences" if sequences else "your text")
    if sequences:
        loss = "cross-entropy per sequence" if data.task == "classify" else "mean squared error"
        title, unit = f"Regularizers on {data_name} (test {loss} of each setting's best model)", loss
    else:
        title = f"Regularizers on {data_name} (test cross-entropy of each setting's best model)"
        unit = "nats per token" if list(args.data) == ["synthetic"] else "nats/char"
    fig = plot_regularization_comparison(results, title=title, unit=unit)
    fig.savefig(os.path.join(args.out, "comparison.png"), dpi=100)
    fig = plot_weight_distributions(weights, title="Weight matrices after training")
    fig.savefig(os.path.join(args.out, "weights.png"), dpi=100)
    use = "rnnreg.load_model" if sequences else f"rnnreg sample {args.out}/models/{args.settings[0]}.npz"
    print(
        f"\nwrote {args.out}/comparison.md, comparison.png, weights.png, results.json; each "
        f"setting's best model in {args.out}/models/ ({use})"
    )
    return 0


def _sweep(args):
    import matplotlib

    matplotlib.use("Agg")
    from .sweeps import parse_grid, parse_space, settings_of, sweep, sweep_table, train_command

    grid, space = parse_grid(args.grid), parse_space(args.space)
    _check_writable(args.out)
    records = sweep(
        grid,
        random=args.random,
        space=space,
        settings=settings_of(args),
        jobs=args.jobs,
        scheduler=args.scheduler,
        out=args.out,
        progress=not args.no_progress,
        prune=args.prune,
        model_dir=args.model_dir,
    )
    print()
    print(sweep_table(records))
    failed = sum(r["status"] == "failed" for r in records)
    pruned = [r for r in records if r["status"] == "pruned"]
    stopped = (
        f", {len(pruned)} pruned (stopped after {sum(r['epochs'] for r in pruned)} epochs in all)"
        if pruned or args.prune
        else ""
    )
    print(
        f"\n{len(records)} trials, {failed} failed{stopped}; wrote {args.out}/sweep.json, sweep.md, sweep.png"
        + (f"; each trial's best model in {args.model_dir}" if args.model_dir else "")
    )
    done = [r for r in records if r["status"] == "done"]
    if done:
        best = min(done, key=lambda r: r["best_val_loss"])
        command = train_command(settings_of(args), best["params"])
        if command:
            print(f"the best trial ({best['best_val_loss']:.4f}), trained again: {command}")
    return 0


def _sample(args):
    from .checkpoint import load_model, model_file

    args.checkpoint = model_file(args.checkpoint)
    model = load_model(args.checkpoint)
    if model.vocabulary is None:
        raise ValueError(
            f"{args.checkpoint} holds no vocabulary (a model trained on token ids, "
            "such as --data synthetic): there is no text to sample"
        )
    texts = model.generate(
        args.prime,
        args.length,
        temperature=args.temperature,
        top_k=args.top_k,
        rng=args.seed,
        top_p=args.top_p,
        greedy=args.greedy,
        repetition_penalty=args.repetition_penalty,
        stop=args.stop,
        num_sequences=args.sequences,
    )
    for number, text in enumerate(texts):
        if args.sequences > 1:
            print(f"{'' if number == 0 else chr(10)}--- sample {number + 1} of {args.sequences}")
        print(_for_terminal(args.prime + text) if sys.stdout.isatty() else args.prime + text)
    return 0


def _for_terminal(text):
    """Text with its control characters other than newline and tab written as escapes
    (``\\x1b``, ``\\x07``, ``\\r``): a vocabulary learned from any file may hold them, and raw
    they would ring, move the cursor or reprogram the terminal. Piped output stays the text."""
    import unicodedata

    return "".join(ch if ch in "\n\t" or unicodedata.category(ch) != "Cc" else repr(ch)[1:-1] for ch in text)


class _HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default: "(default: X)", "(default: none)" for an
    option that is off unless given, or the help's own words when it says the default itself
    (a default that depends on the data)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default is argparse.SUPPRESS or not action.option_strings:
            return text
        if action.default is None:
            return text + " (default: none)"
        if action.default == "":
            return text + ' (default: "")'
        return super()._get_help_string(action)


def build_parser():
    from . import __version__
    from .runs import CLASSIC_SETTINGS, SETTINGS, add_options

    parser = argparse.ArgumentParser(
        prog="rnnreg", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"rnnreg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "compare",
        help="train once per regularizer setting and compare them",
        formatter_class=_HelpWithDefaults,
    )
    # Defaults sized so that the unregularized model overfits within the run (its validation
    # loss turns up after ~6 epochs) and all six settings finish in a few minutes on 2 cores.
    add_options(p, epochs=14)
    # A cosine schedule (2 warm-up epochs, then decay to 0 at the last epoch): with a constant
    # rate, 1 of 6 validation curves (seeds 0-2 x none/dropout) rose above its first epoch late
    # in the run; with cosine none did, at the same best validation loss (the getting-started
    # guide, docs/guide/getting-started.md, on the main job).
    p.set_defaults(lr_schedule="cosine")
    p.add_argument(
        "--settings",
        nargs="+",
        choices=list(SETTINGS),
        default=list(CLASSIC_SETTINGS),
        help="the settings to train: by default the notebook's ablation; 'zoneout' "
        "and 'awd' (AWD-LSTM's whole set) on request",
    )
    p.add_argument(
        "--out", default="runs/compare", help="folder for comparison.md, results.json and the plots"
    )
    _add_wait(p)

    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="settings trained at once, in worker processes (needs joblib: pip install 'rnnreg[sweep]')",
    )
    p.set_defaults(func=_compare)

    p = sub.add_parser(
        "sweep",
        help="train once per trial of a grid or random search, on local processes or a Dask cluster",
        formatter_class=_HelpWithDefaults,
    )
    add_options(p)
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="sweep a training flag over these values (repeatable: the Cartesian "
        "product), e.g. --grid dropout=0,0.3 --grid layer-norm=false,true",
    )
    p.add_argument(
        "--random",
        type=int,
        default=0,
        metavar="N",
        help="random search: N draws from the --space ranges (seeded by --seed)",
    )
    p.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH[:log]|A|B",
        help="a range for random search (repeatable), e.g. --space lr=1e-3:1e-2:log, "
        "or choices, e.g. --space optimizer=adam|adamw",
    )
    p.add_argument(
        "--prune",
        choices=["median", "asha"],
        default=None,
        help="stop trials whose validation loss falls behind: median (behind the "
        "median of the others at the same epoch) or asha (successive halving "
        "at 1, 3, 9, ... epochs); pruned trials are recorded with their curves",
    )
    p.add_argument(
        "--jobs", type=int, default=None, help="local worker processes (default: the number of cores)"
    )
    p.add_argument(
        "--model-dir",
        default=None,
        metavar="DIR",
        help="write each trial's best model file there (local sweeps), named after its settings",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the trials on this Dask cluster (e.g. tcp://10.0.0.5:8786) "
        "instead; needs pip install 'rnnreg[dask]'",
    )
    p.add_argument(
        "--out",
        default="runs/sweep",
        help="sweep.json, sweep.md, sweep.png; rerunning with the same --out skips the trials already done",
    )
    _add_wait(p)
    p.set_defaults(func=_sweep)

    p = sub.add_parser("train", help="train one model", formatter_class=_HelpWithDefaults)
    add_options(p)
    p.add_argument(
        "--out",
        default="runs/train",
        help="folder for best.npz, model.npz, the checkpoint, history.json and the plot",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/train.checkpoint.npz")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier run in --out (without it, or --resume, an earlier run is kept and "
        "the command stops)",
    )
    _add_wait(p)
    p.add_argument(
        "--csv",
        default=None,
        metavar="PATH",
        help="also write one row per epoch to this CSV file, flushed as it goes",
    )
    p.set_defaults(func=_train)

    p = sub.add_parser("sample", help="generate text from a trained model", formatter_class=_HelpWithDefaults)
    p.add_argument(
        "checkpoint",
        metavar="MODEL",
        help="a run folder of `rnnreg train` (its best.npz), a model file of save_model, or a checkpoint",
    )
    p.add_argument("--length", type=int, default=200, help="characters to generate")
    p.add_argument("--prime", default="", help="text to start from")
    p.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="below 1: more likely characters; above 1: more varied (default: 1)",
    )
    p.add_argument("--top-k", type=int, default=None, help="sample among the K likeliest only")
    p.add_argument(
        "--top-p",
        type=float,
        default=None,
        metavar="P",
        help="sample among the smallest set of likeliest characters whose probability "
        "reaches P (nucleus sampling; after --top-k)",
    )
    p.add_argument(
        "--greedy", action="store_true", help="take the likeliest character every time (no sampling)"
    )
    p.add_argument(
        "--repetition-penalty",
        type=float,
        default=None,
        metavar="R",
        help="divide the score of every character already in the text by R >= 1 (CTRL's penalty): "
        "fewer loops",
    )
    p.add_argument(
        "--stop",
        action="append",
        default=None,
        metavar="TEXT",
        help="end a sample once it ends with TEXT (kept); may be given several times",
    )
    p.add_argument("--sequences", type=int, default=1, metavar="N", help="how many samples to write")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same text")
    p.set_defaults(func=_sample)

    return parser


def _add_wait(parser):
    """--wait, of every command that writes into an --out folder (which main locks for the run)."""
    parser.add_argument(
        "--wait",
        action="store_true",
        help="when another run is writing into --out, wait for it to finish instead of stopping",
    )


def _interrupted(args, argv):
    """What to tell a user who pressed Ctrl-C: where the last checkpoint is and how to go on."""
    from .checkpoint import TRAIN_FILES

    checkpoint = TRAIN_FILES.paths(getattr(args, "out", "")).checkpoint
    if args.command != "train" or not os.path.exists(checkpoint):
        return f"rnnreg {args.command}: interrupted; nothing was checkpointed to resume from"
    from .checkpoint import CheckpointError, read_meta

    try:
        epoch = f" ({read_meta(checkpoint)['payload']['epoch']})"
    except (CheckpointError, OSError, KeyError, TypeError):
        epoch = ""
    words = list(sys.argv[1:] if argv is None else argv)
    if "--resume" not in words:
        words.append("--resume")
    return (
        f"rnnreg train: interrupted; the last completed epoch{epoch} is saved in "
        f"{checkpoint}. Continue with: rnnreg {shlex.join(words)}"
    )


def _log_to_stdout():
    """Send the `rnnreg` logger's lines (one per epoch) to stdout, as plain lines."""
    logger = logging.getLogger("rnnreg")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)  # looked up now: capture and redirection see it
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)


def main(argv=None):
    """Run the command line; returns the exit status. A user's error (a bad value, a missing or
    unusable file, a checkpoint that does not fit, a run that diverged, a full or read-only
    disk) prints one line to stderr — no traceback unless --debug; Ctrl-C exits with 130."""
    args = build_parser().parse_args(argv)
    args.argv = None if argv is None else list(argv)
    _log_to_stdout()
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning(args.command)
        return _run(args, argv)


def _one_line_warning(command):
    """Warnings on the command line as one line each, ``rnnreg CMD: warning: ...`` (not
    Python's file-and-line form)."""

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"rnnreg {command}: warning: {message}", file=sys.stderr)

    return show


def _run(args, argv):
    from .checkpoint import CheckpointError
    from .folder_lock import FolderBusy, FolderLock
    from .training import TrainingError

    try:
        if getattr(args, "out", None) and args.command in ("train", "compare", "sweep"):
            # one run writes into a folder at a time (an OS lock, released when the run ends)
            with FolderLock(args.out, f"rnnreg {args.command}", wait=args.wait):
                return args.func(args)
        return args.func(args)
    except FolderBusy as exc:
        print(f"rnnreg {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if getattr(args, "debug", False):
            raise
        print("\n" + _interrupted(args, argv), file=sys.stderr)
        return 130
    except (
        ValueError,
        TypeError,
        IndexError,
        CheckpointError,
        FileNotFoundError,
        ImportError,
    ) as exc:  # ImportError: an optional extra the command needs is missing
        if getattr(args, "debug", False):
            raise
        print(f"rnnreg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (TrainingError, OSError) as exc:
        if getattr(args, "debug", False):
            raise
        message = exc.args[0] if isinstance(exc, TrainingError) and exc.args else exc
        print(f"rnnreg {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
