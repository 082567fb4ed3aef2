"""rnnreg's command line (also ``python -m rnnreg``).

    rnnreg compare                 # the ablation on the built-in text: none, dropout, layer norm,
                                   # weight decay, early stopping, all — table + PNG
    rnnreg train --dropout 0.3     # one run (drop 30% of units); history, checkpoint, PNG
    rnnreg sample runs/train/train.checkpoint.npz --prime "The " --length 200
    rnnreg sweep --grid dropout=0,0.3 --grid weight-decay=0,3e-4 --jobs 2
"""
import argparse
import json
import logging
import os
import shlex
import sys
import tempfile
import time

# NT-ASGD's SGD learning rate in the "awd" setting (AWD-LSTM clips the gradient norm at 0.25
# and takes large SGD steps; on the built-in text with one-hot inputs this rate learned fastest
# of 1, 3, 10 and 30 — README, "AWD-LSTM").
AWD_LR = 10.0

# The ablation of `rnnreg compare`: what each setting switches on, on top of the baseline.
SETTINGS = {
    "none": {},
    "dropout": {"dropout_keep_prob": 0.6},
    "layer_norm": {"use_layer_norm": True},
    "weight_decay": {"weight_decay": 3e-4},
    "early_stopping": {"patience": 3},
    "all": {"dropout_keep_prob": 0.6, "use_layer_norm": True, "weight_decay": 3e-4, "patience": 3},
    # Krueger et al.'s character-level setting: zone out half the cell units, 5% of the hidden.
    "zoneout": {"zoneout_hidden": 0.05, "zoneout_cell": 0.5},
    # AWD-LSTM's whole set (Merity et al. 2017): weight-drop on Wh, variational dropout,
    # embedding dropout, AR and TAR, tied weights, NT-ASGD and variable-length BPTT.
    "awd": {"weight_keep_prob": 0.75, "dropout_keep_prob": 0.6, "variational": True,
            "embedding_keep_prob": 0.9, "activation_reg": 2.0, "temporal_activation_reg": 1.0,
            "tie_weights": True, "optimizer": "nt-asgd", "lr": AWD_LR, "lr_schedule": None,
            "variable_bptt": True, "clip_norm": 0.25},
}
# What `rnnreg compare` runs unless told: the ablation of the notebook's four regularizers.
CLASSIC_SETTINGS = ("none", "dropout", "layer_norm", "weight_decay", "early_stopping", "all")
MODEL_KEYS = ("dropout_keep_prob", "use_layer_norm", "recurrent_keep_prob", "weight_keep_prob",
              "variational", "zoneout_hidden", "zoneout_cell", "embedding_keep_prob",
              "activation_reg", "temporal_activation_reg", "tie_weights")


def _load_data(args):
    from .data import CharCorpus, generate_simple_dataset, load_stdlib_docstrings
    """-> (description, vocabulary size, data): data is a CharCorpus (its splits, documents and
    vocabulary) or, for the synthetic task, a (train, val, test) triple of sequence pairs."""
    if args.data not in (["stdlib"], ["synthetic"]):
        corpus = CharCorpus.from_files(args.data, seed=args.seed).limited(args.train_size,
                                                                          args.eval_size)
        return f"{corpus!r}; split {corpus.split}", corpus.vocab_size, corpus
    args.data = args.data[0]
    train_size, eval_size = (given or default for given, default in
                             zip((args.train_size, args.eval_size), BUILTIN_SIZES[args.data]))
    if args.data == "synthetic":
        vocab = 50
        make = lambda n, seed: generate_simple_dataset(15, vocab, n, seed=seed)
        return "synthetic", vocab, (make(train_size, 1), make(eval_size, 2), make(eval_size, 3))
    corpus = load_stdlib_docstrings(train_chars=train_size, eval_chars=eval_size)
    return f"{corpus!r}; split by document (fixed)", corpus.vocab_size, corpus


def _model_and_config(args, vocab_size, overrides):
    from .model import RegularizedLSTM
    from .training import TrainConfig
    # The command line speaks PyTorch's and Keras's convention (the probability of dropping a
    # unit); the Python API keeps the notebook's keep probabilities.
    model_kwargs = dict(dropout_keep_prob=1.0 - args.dropout, use_layer_norm=args.layer_norm,
                        recurrent_keep_prob=1.0 - args.recurrent_dropout,
                        weight_keep_prob=1.0 - args.weight_drop, variational=args.variational,
                        zoneout_hidden=args.zoneout, zoneout_cell=args.zoneout_cell,
                        embedding_keep_prob=1.0 - args.embedding_dropout,
                        activation_reg=args.ar, temporal_activation_reg=args.tar,
                        tie_weights=args.tie_weights)
    train_kwargs = dict(epochs=args.epochs, batch_size=args.batch_size, bptt=args.bptt,
                        optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay,
                        clip_norm=args.clip if args.clip > 0 else None,
                        lr_schedule=None if args.lr_schedule in (None, "constant")
                        else args.lr_schedule, patience=args.patience, seed=args.seed,
                        progress=not args.no_progress, nonmono=args.nonmono,
                        variable_bptt=args.variable_bptt)
    for key, value in overrides.items():
        (model_kwargs if key in MODEL_KEYS else train_kwargs)[key] = value
    model = RegularizedLSTM(vocab_size, args.hidden, vocab_size, num_layers=args.layers,
                            embedding_size=args.embedding, seed=args.seed,
                            dtype=args.dtype, **model_kwargs)
    return model, TrainConfig(**train_kwargs)


def _run(args, name, vocab_size, data, overrides, out_dir, checkpoint=True):
    from .data import CharCorpus
    from .training import fit
    model, config = _model_and_config(args, vocab_size, overrides)
    if checkpoint:
        config.checkpoint_path = os.path.join(out_dir, f"{name}.checkpoint.npz")
    started = time.perf_counter()
    # Epoch lines go through the `rnnreg` logger (main() sends it to stdout); --quiet drops them.
    log = (lambda line: logging.getLogger("rnnreg").info(f"[{name}] {line}")) \
        if not args.quiet else (lambda line: None)
    resume = None
    if getattr(args, "resume", False):
        if not os.path.exists(config.checkpoint_path):
            raise FileNotFoundError(f"--resume: there is no checkpoint at {config.checkpoint_path} "
                                    "to continue from (run without --resume to start afresh)")
        resume = config.checkpoint_path
    if isinstance(data, CharCorpus):   # fit takes its splits, documents and vocabulary
        history = fit(model, data, None, config, log=log, resume_from=resume, name=name)
    else:
        train, val, test = data
        history = fit(model, train, val, config, test=test, log=log, resume_from=resume,
                      name=name)
    history["wall_seconds"] = time.perf_counter() - started
    history["model"] = model.config()
    history["train_config"] = config.to_dict()
    return model, history


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


def _train(args):
    from .plotting import plot_learning_curves
    _check_writable(args.out)
    description, vocab_size, data = _load_data(args)
    print(f"data: {description}")
    model, history = _run(args, "train", vocab_size, data, {}, args.out)
    _write_json(os.path.join(args.out, "history.json"), history)
    fig = plot_learning_curves(history["train_loss"], history["val_loss"],
                               title=f"rnnreg train ({model.parameter_count():,} parameters)",
                               best_epoch=history["best_epoch"],
                               unit="nats/char" if model.vocabulary is not None else "nats per token")
    fig.savefig(os.path.join(args.out, "learning_curves.png"), dpi=100)
    print(f"best val loss {history['best_val_loss']:.4f} at epoch {history['best_epoch']}; "
          f"test loss {history['test_loss']:.4f}; {history['wall_seconds']:.1f}s")
    print(f"wrote {args.out}/history.json, {args.out}/train.checkpoint.npz, "
          f"{args.out}/learning_curves.png")
    return 0


def comparison_table(results):
    """A markdown table of the ablation: held-out losses, epochs and wall time per setting."""
    lines = ["| setting | best val loss | test loss | train CE, last epoch (no L2 term) | epochs run | best epoch | wall time |",
             "|---|---|---|---|---|---|---|"]
    for name, h in results.items():
        lines.append(f"| {name} | {h['best_val_loss']:.4f} | {h['test_loss']:.4f} | "
                     f"{h['train_ce'][-1]:.4f} | {len(h['epoch'])} | {h['best_epoch']} | "
                     f"{h['wall_seconds']:.1f}s |")
    return "\n".join(lines)


def _compare(args):
    import matplotlib
    matplotlib.use("Agg")
    from .data import CharCorpus
    from .plotting import plot_regularization_comparison, plot_weight_distributions
    from .sweeps import settings_of, sweep
    from .training import TrainingError
    _check_writable(args.out)
    description, vocab_size, data = _load_data(args)
    print(f"data: {description}")
    # A sweep over the named settings: --jobs N trains N of them at once.
    records, trial_weights = sweep(
        {"setting": list(args.settings)}, settings=settings_of(args), jobs=args.jobs,
        progress=args.jobs > 1 and not args.quiet,   # one process: its epoch lines show instead
        return_weights=True,
        data=data if isinstance(data, CharCorpus) else None)
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
    data_name = args.data if isinstance(args.data, str) else "your text"
    fig = plot_regularization_comparison(
        results, title=f"Regularizers on {data_name} (held-out loss = test cross-entropy)",
        unit="nats per token" if args.data == "synthetic" else "nats/char")
    fig.savefig(os.path.join(args.out, "comparison.png"), dpi=100)
    fig = plot_weight_distributions(weights, title="Weight matrices after training")
    fig.savefig(os.path.join(args.out, "weights.png"), dpi=100)
    print(f"\nwrote {args.out}/comparison.md, comparison.png, weights.png, results.json")
    return 0


def _sweep(args):
    import matplotlib
    matplotlib.use("Agg")
    from .sweeps import parse_grid, parse_space, settings_of, sweep, sweep_table
    grid, space = parse_grid(args.grid), parse_space(args.space)
    _check_writable(args.out)
    records = sweep(grid, random=args.random, space=space, settings=settings_of(args),
                    jobs=args.jobs, scheduler=args.scheduler, out=args.out,
                    progress=not args.no_progress)
    print()
    print(sweep_table(records))
    failed = sum(r["status"] != "done" for r in records)
    print(f"\n{len(records)} trials, {failed} failed; wrote {args.out}/sweep.json, sweep.md, "
          "sweep.png")
    return 0


def _sample(args):
    from .training import load_model
    model = load_model(args.checkpoint)
    if model.vocabulary is None:
        raise ValueError(f"{args.checkpoint} holds no vocabulary (a model trained on token ids, "
                         "such as --data synthetic): there is no text to sample")
    text = model.generate(args.prime, args.length, temperature=args.temperature,
                          top_k=args.top_k, rng=args.seed)
    print(args.prime + text)
    return 0


def _drop_probability(text):
    """A command-line dropout rate: the probability of dropping, in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(
            f"{text} is not in [0, 1): it is the probability of dropping a unit (0 = off)")
    return value


def _penalty_rate(text):
    """A command-line penalty rate (AR's α, TAR's β): a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value >= 0.0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number >= 0 (0 = off)")
    return value


# How much of the built-in texts a run reads unless told (a user's own text is read whole).
BUILTIN_SIZES = {"stdlib": (20000, 10000), "synthetic": (200, 100)}


def _add_training_options(p, epochs, hidden):
    # the training defaults are the library's, defined once
    from .training import OPTIMIZERS, TrainConfig
    defaults = TrainConfig()
    p.add_argument("--data", nargs="+", default=["stdlib"], metavar="PATH",
                   help="text to train on: files, folders (every *.txt inside) or glob patterns, "
                        "UTF-8; or 'stdlib' — the standard library's docstrings (built in, no "
                        "download) — or 'synthetic', the notebook's counting task. Three files "
                        "or more are split by document (seeded), fewer by line")
    p.add_argument("--train-size", type=int, default=None, metavar="N",
                   help="characters (sequences for synthetic) of training data to use "
                        "(default: all of your text; 20000 of stdlib, 200 of synthetic)")
    p.add_argument("--eval-size", type=int, default=None, metavar="N",
                   help="characters of validation and of test data to use (default: all of "
                        "your text's; 10000 of stdlib)")
    p.add_argument("--hidden", type=int, default=hidden)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--embedding", type=int, default=None, help="embedding size (default one-hot)")
    p.add_argument("--dropout", type=_drop_probability, default=0.0, metavar="P",
                   help="probability of dropping a unit in non-recurrent dropout, as in PyTorch "
                        "and Keras (0 = off); the Python API takes dropout_keep_prob = 1 - P")
    p.add_argument("--recurrent-dropout", type=_drop_probability, default=0.0, metavar="P",
                   help="probability of dropping a unit of h(t-1) (one mask per sequence)")
    p.add_argument("--weight-drop", type=_drop_probability, default=0.0, metavar="P",
                   help="probability of dropping a weight of Wh (DropConnect)")
    p.add_argument("--variational", action="store_true", help="one dropout mask per sequence")
    p.add_argument("--layer-norm", action="store_true", help="LN-LSTM cells")
    p.add_argument("--zoneout", type=_drop_probability, default=0.0, metavar="Z",
                   help="zoneout of the hidden state: probability that a unit keeps its previous "
                        "value at a step (Krueger et al. 2016; 0 = off)")
    p.add_argument("--zoneout-cell", type=_drop_probability, default=0.0, metavar="Z",
                   help="zoneout of the cell state (0 = off)")
    p.add_argument("--embedding-dropout", type=_drop_probability, default=0.0, metavar="P",
                   help="probability of dropping a whole row of the embedding matrix per batch "
                        "(AWD-LSTM; needs --embedding or --tie-weights)")
    p.add_argument("--ar", type=_penalty_rate, default=0.0, metavar="ALPHA",
                   help="activation regularization: ALPHA * mean(dropped output^2) of the last "
                        "layer, added to the training loss (AWD-LSTM uses 2)")
    p.add_argument("--tar", type=_penalty_rate, default=0.0, metavar="BETA",
                   help="temporal activation regularization: BETA * mean((h_t - h_t-1)^2) of the "
                        "last layer (AWD-LSTM uses 1)")
    p.add_argument("--tie-weights", action="store_true",
                   help="the output projection is the embedding matrix transposed (the embedding "
                        "size is then the hidden size)")
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay, metavar="LAMBDA")
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), default=defaults.optimizer,
                   help="adamw makes weight decay decoupled; nt-asgd is SGD that averages its "
                        "iterates once validation stops improving for --nonmono epochs (AWD-LSTM)")
    p.add_argument("--nonmono", type=int, default=defaults.nonmono, metavar="N",
                   help="NT-ASGD's non-monotone interval, in epochs")
    p.add_argument("--variable-bptt", action="store_true",
                   help="draw each chunk's length around --bptt, the learning rate scaled by "
                        "length / bptt (AWD-LSTM)")
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--lr-schedule", choices=["constant", "cosine", "step"], default="constant",
                   help="cosine: 2 warm-up epochs, then down to 0 at the last epoch; step: "
                        "halved every third of the run")
    p.add_argument("--clip", type=float, default=defaults.clip_norm,
                   help="gradient-norm clip (0 = off)")
    p.add_argument("--patience", type=int, default=None, help="early-stopping patience")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--bptt", type=int, default=defaults.bptt, help="truncated-BPTT length")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float32")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.add_argument("--debug", action="store_true",
                   help="show the full traceback of an error (for developers)")


def build_parser():
    from .training import TrainConfig
    from . import __version__
    parser = argparse.ArgumentParser(prog="rnnreg", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"rnnreg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compare", help="train once per regularizer setting and compare them",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    # Defaults sized so that the unregularized model overfits within the run (its validation
    # loss turns up after ~6 epochs) and all six settings finish in a few minutes on 2 cores.
    _add_training_options(p, epochs=14, hidden=256)
    # A cosine schedule (2 warm-up epochs, then decay to 0 at the last epoch): with a constant
    # rate, 1 of 6 validation curves (seeds 0-2 x none/dropout) rose above its first epoch late
    # in the run; with cosine none did, at the same best validation loss (README, "compare").
    p.set_defaults(lr_schedule="cosine")
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(CLASSIC_SETTINGS),
                   help="the settings to train: by default the notebook's ablation; 'zoneout' "
                        "and 'awd' (AWD-LSTM's whole set) on request")
    p.add_argument("--out", default="runs/compare")

    p.add_argument("--jobs", type=int, default=1,
                   help="settings trained at once, in worker processes (needs joblib: "
                        "pip install 'rnnreg[sweep]')")
    p.set_defaults(func=_compare)

    p = sub.add_parser("sweep", help="train once per trial of a grid or random search, on local "
                                     "processes or a Dask cluster",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_training_options(p, epochs=TrainConfig.epochs, hidden=256)
    p.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="sweep a training flag over these values (repeatable: the Cartesian "
                        "product), e.g. --grid dropout=0,0.3 --grid layer-norm=false,true")
    p.add_argument("--random", type=int, default=0, metavar="N",
                   help="random search: N draws from the --space ranges (seeded by --seed)")
    p.add_argument("--space", action="append", default=[], metavar="NAME=LOW:HIGH[:log]",
                   help="a range for random search (repeatable), e.g. --space lr=1e-3:1e-2:log")
    p.add_argument("--jobs", type=int, default=None,
                   help="local worker processes (default: the number of cores)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the trials on this Dask cluster (e.g. tcp://10.0.0.5:8786) "
                        "instead; needs pip install 'rnnreg[dask]'")
    p.add_argument("--out", default="runs/sweep",
                   help="sweep.json, sweep.md, sweep.png; rerunning with the same --out skips "
                        "the trials already done")
    p.set_defaults(func=_sweep)

    p = sub.add_parser("train", help="train one model",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_training_options(p, epochs=TrainConfig.epochs, hidden=256)
    p.add_argument("--out", default="runs/train")
    p.add_argument("--resume", action="store_true", help="continue from OUT/train.checkpoint.npz")
    p.set_defaults(func=_train)

    p = sub.add_parser("sample", help="generate text from a trained model",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint of `rnnreg train` or a file of save_model")
    p.add_argument("--length", type=int, default=200, help="characters to generate")
    p.add_argument("--prime", default="", help="text to start from")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="below 1: more likely characters; above 1: more varied")
    p.add_argument("--top-k", type=int, default=None, help="sample among the K likeliest only")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same text")
    p.set_defaults(func=_sample)

    return parser


def _interrupted(args, argv):
    """What to tell a user who pressed Ctrl-C: where the last checkpoint is and how to go on."""
    checkpoint = os.path.join(getattr(args, "out", ""), "train.checkpoint.npz")
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
    return (f"rnnreg train: interrupted; the last completed epoch{epoch} is saved in "
            f"{checkpoint}. Continue with: rnnreg {shlex.join(words)}")


def _log_to_stdout():
    """Send the `rnnreg` logger's lines (one per epoch) to stdout, as plain lines."""
    logger = logging.getLogger("rnnreg")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)   # looked up now: capture and redirection see it
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)


def main(argv=None):
    """Run the command line; returns the exit status. A user's error (a bad value, a missing or
    unusable file, a checkpoint that does not fit, a run that diverged, a full or read-only
    disk) prints one line to stderr — no traceback unless --debug; Ctrl-C exits with 130."""
    from .checkpoint import CheckpointError
    from .training import TrainingError
    args = build_parser().parse_args(argv)
    _log_to_stdout()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if getattr(args, "debug", False):
            raise
        print("\n" + _interrupted(args, argv), file=sys.stderr)
        return 130
    except (ValueError, TypeError, IndexError, CheckpointError, FileNotFoundError,
            ImportError) as exc:   # ImportError: an optional extra the command needs is missing
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
