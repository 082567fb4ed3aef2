"""How fast do models learn under each initialization scheme — and under PyTorch's defaults?
And what does each regularizer do to the held-out loss?

    python -m benchmarks.learning                       # the full table (~10 min on 2 cores)
    python -m benchmarks.learning --regularizers        # each regularizer vs none and vs dropout
    python -m benchmarks.learning --quick               # a smoke run (one text, one seed, 2 epochs)
    python -m benchmarks.learning --variants uniform-fb0 torch --seeds 0 1 2 --epochs 20

Character-level language models (float32, one-hot input, one LSTM layer of hidden 128, Adam with
global-norm clipping at 5, truncated BPTT) on texts that ship with Python — nothing is
downloaded: the standard library's docstrings at two sizes, the Python reference manual's help
topics (``pydoc_data``), and IDLE's change log. Each variant trains on every text with every seed;
the table gives the best held-out (validation) loss in nats per character reached within 5, 10
and 20 epochs and within a fixed wall-time budget, as mean ± standard error over texts and seeds,
and the mean difference to PyTorch's defaults (paired by text and seed). The PyTorch column is a
plain ``nn.LSTM`` + ``nn.Linear`` trained with the same data, batches, optimizer and clipping
(needs torch; skipped without it). Variants run in parallel worker processes, each pinned to one
BLAS/PyTorch thread. Writes ``learning.json``, ``learning.md`` and ``learning.png`` to ``--out``.
"""

import argparse
import functools
import json
import math
import os
import sys
import time

# One thread per worker, set before NumPy or PyTorch start their thread pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from rnnreg.runs import AWD_LR, AWD_REGULARIZERS  # noqa: E402

# Variant name -> what it changes: model keyword arguments, or training settings ("train").
VARIANTS = {
    "uniform-fb1": {"init": "uniform", "forget_bias": 1.0},  # rnnreg's scheme before this table
    "uniform-fb0": {"init": "uniform", "forget_bias": 0.0},
    "pytorch": {"init": "pytorch"},
    "keras-fb1": {"init": "keras", "forget_bias": 1.0},
    "keras-fb0": {"init": "keras", "forget_bias": 0.0},
    "torch": {"torch": True},  # PyTorch's own defaults
    # the training settings, with the default initialization
    "lr5e-3": {"train": {"lr": 5e-3}},
    "batch32-bptt50": {"train": {"batch_size": 32, "bptt": 50}},
    "batch32-bptt50-lr5e-3": {"train": {"batch_size": 32, "bptt": 50, "lr": 5e-3}},
}
INIT_VARIANTS = ["uniform-fb1", "uniform-fb0", "pytorch", "keras-fb1", "keras-fb0", "torch"]
# Each regularizer alone on the default model (one-hot input, hidden 128, Adam), and AWD-LSTM's
# whole set; the settings are those of `rnnreg compare` (rnnreg.runs.SETTINGS). Embedding
# dropout and tying need an embedding layer: "embedding" is their baseline.
VARIANTS.update(
    {
        "none": {},
        "dropout": {"dropout_keep_prob": 0.6},
        "zoneout": {"zoneout_hidden": 0.05, "zoneout_cell": 0.5},
        "dropout+zoneout": {"dropout_keep_prob": 0.6, "zoneout_hidden": 0.05, "zoneout_cell": 0.5},
        "ar-tar": {"activation_reg": 2.0, "temporal_activation_reg": 1.0},
        "dropout+ar-tar": {"dropout_keep_prob": 0.6, "activation_reg": 2.0, "temporal_activation_reg": 1.0},
        "embedding": {"embedding_size": 128},
        "embedding-dropout": {"embedding_size": 128, "embedding_keep_prob": 0.9},
        "tied": {"tie_weights": True},
        "variable-bptt": {"train": {"variable_bptt": True}},
        "nt-asgd": {"train": {"optimizer": "nt-asgd", "lr": AWD_LR, "clip": AWD_REGULARIZERS["clip_norm"]}},
        # AWD-LSTM's regularizers as `rnnreg compare` declares them, trained as AWD-LSTM is (NT-ASGD:
        # the awd_nt_asgd setting; this record predates the awd setting's AdamW)
        "awd": {
            **{k: v for k, v in AWD_REGULARIZERS.items() if k not in ("variable_bptt", "clip_norm")},
            "train": {
                "optimizer": "nt-asgd",
                "lr": AWD_LR,
                "clip": AWD_REGULARIZERS["clip_norm"],
                "variable_bptt": AWD_REGULARIZERS["variable_bptt"],
            },
        },
    }
)
REGULARIZER_VARIANTS = [
    "none",
    "dropout",
    "zoneout",
    "dropout+zoneout",
    "ar-tar",
    "dropout+ar-tar",
    "embedding",
    "embedding-dropout",
    "tied",
    "variable-bptt",
    "nt-asgd",
    "awd",
]
BASE = {"hidden": 128, "batch_size": 8, "bptt": 35, "lr": 3e-3, "clip": 5.0}
EPOCH_MARKS = (5, 10, 20)


# ----------------------------------------------------------------------------- texts
def _split_lines(text, name):
    """Train / validation / test by fraction (80/10/10) of one text, on line boundaries."""
    from rnnreg.data import CharCorpus

    lines = text.splitlines(keepends=True)
    a, b = int(len(lines) * 0.8), int(len(lines) * 0.9)
    return CharCorpus("".join(lines[:a]), "".join(lines[a:b]), "".join(lines[b:]), name=name)


@functools.lru_cache(maxsize=2)
def load_texts(train_chars, eval_chars):
    """name -> CharCorpus, each cut to train_chars / eval_chars characters."""
    import sysconfig

    from rnnreg.data import CharCorpus, load_stdlib_docstrings

    texts = {
        "docstrings-small": load_stdlib_docstrings(train_chars // 2, eval_chars // 2),
        "docstrings": load_stdlib_docstrings(train_chars, eval_chars),
    }
    import pydoc_data.topics

    topics = [pydoc_data.topics.topics[k] for k in sorted(pydoc_data.topics.topics)]
    splits = {0: [], 18: [], 19: []}  # of every 20 topics, the 19th to validation, 20th to test
    for k, doc in enumerate(topics):
        splits[k % 20 if k % 20 in (18, 19) else 0].append(doc)
    texts["python-reference"] = CharCorpus(
        *("\n\n".join(splits[k]) for k in (0, 18, 19)), name="python-reference"
    )
    library = sysconfig.get_paths()["stdlib"]
    news = ""
    for name in ("NEWS.txt", "NEWS2x.txt"):
        path = os.path.join(library, "idlelib", name)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                news += f.read()
    if len(news) > 20000:
        texts["idle-changelog"] = _split_lines(news, "idle-changelog")
    out = {}
    for name, corpus in texts.items():  # cut every text to the same sizes, one vocabulary each
        tr = corpus.decode(corpus.train)[: train_chars if name != "docstrings-small" else train_chars // 2]
        va, te = (corpus.decode(s)[:eval_chars] for s in (corpus.val, corpus.test))
        out[name] = CharCorpus(tr, va, te, name=name)
    return out


# ----------------------------------------------------------------------------- one run
def run_rnnreg(corpus, variant, seed, epochs, base):
    from rnnreg import RegularizedLSTM
    from rnnreg.training import TrainConfig, fit

    spec = VARIANTS[variant]
    settings = {**base, **spec.get("train", {})}
    model_kwargs = {k: val for k, val in spec.items() if k != "train"}
    model = RegularizedLSTM(
        corpus.vocab_size, settings["hidden"], seed=seed, dtype=np.float32, **model_kwargs
    )
    config = TrainConfig(
        epochs=epochs,
        batch_size=settings["batch_size"],
        bptt=settings["bptt"],
        lr=settings["lr"],
        clip_norm=settings["clip"],
        seed=seed,
        progress=False,
        optimizer=settings.get("optimizer", "adam"),
        variable_bptt=settings.get("variable_bptt", False),
    )
    history = fit(model, corpus.train, corpus.val, config, log=None)
    return history["val_loss"], list(np.cumsum(history["seconds"]))


def run_torch(corpus, seed, epochs, base):
    import torch

    from rnnreg.training import iterate_batches

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    V, H = corpus.vocab_size, base["hidden"]
    lstm, head = torch.nn.LSTM(V, H, batch_first=True), torch.nn.Linear(H, V)
    params = list(lstm.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=base["lr"])
    eye = torch.eye(V)
    rng = np.random.default_rng(seed)

    def loss_of(inputs, targets, state):
        out, state = lstm(eye[torch.from_numpy(np.ascontiguousarray(inputs))], state)
        logits = head(out)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, V), torch.from_numpy(np.ascontiguousarray(targets)).reshape(-1)
        )
        return loss, state

    val_losses, seconds, elapsed = [], [], 0.0
    for _ in range(epochs):
        started = time.perf_counter()
        state = None
        for inputs, targets, new in iterate_batches(corpus.train, base["batch_size"], base["bptt"], rng):
            if new:
                state = None
            loss, state = loss_of(inputs, targets, state)
            state = tuple(s.detach() for s in state)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, base["clip"])
            optimizer.step()
        total, count, state = 0.0, 0, None
        with torch.no_grad():
            for inputs, targets, new in iterate_batches(corpus.val, base["batch_size"], base["bptt"]):
                if new:
                    state = None
                loss, state = loss_of(inputs, targets, state)
                total += float(loss) * targets.size
                count += targets.size
        elapsed += time.perf_counter() - started
        val_losses.append(total / count)
        seconds.append(elapsed)
    return val_losses, seconds


def _job(args):
    text, variant, seed, epochs, train_chars, eval_chars, base = args
    corpus = load_texts(train_chars, eval_chars)[text]
    started = time.perf_counter()
    if VARIANTS[variant].get("torch"):
        val, seconds = run_torch(corpus, seed, epochs, base)
    else:
        val, seconds = run_rnnreg(corpus, variant, seed, epochs, base)
    return dict(
        text=text,
        variant=variant,
        seed=seed,
        val_loss=[float(x) for x in val],
        seconds=[float(s) for s in seconds],
        wall=time.perf_counter() - started,
    )


# ----------------------------------------------------------------------------- summary
def best_within(run, epochs=None, seconds=None):
    """Best validation loss among the epochs done within a number of epochs or of seconds."""
    vals = [
        v
        for k, (v, s) in enumerate(zip(run["val_loss"], run["seconds"]))
        if (epochs is None or k < epochs) and (seconds is None or s <= seconds)
    ]
    return min(vals) if vals else float("nan")


def summarize(runs, budget, reference="torch"):
    variants = list(dict.fromkeys(r["variant"] for r in runs))
    columns = [(f"{e} epochs", dict(epochs=e)) for e in EPOCH_MARKS] + [
        (f"{budget:g} s", dict(seconds=budget))
    ]
    by_key = {(r["variant"], r["text"], r["seed"]): r for r in runs}
    rows, table = {}, []
    for variant in variants:
        rows[variant] = {}
        for label, limit in columns:
            vals = [best_within(r, **limit) for r in runs if r["variant"] == variant]
            diffs = []
            if reference in variants:
                for r in runs:
                    if r["variant"] == variant and (reference, r["text"], r["seed"]) in by_key:
                        diffs.append(
                            best_within(r, **limit)
                            - best_within(by_key[(reference, r["text"], r["seed"])], **limit)
                        )
            rows[variant][label] = dict(
                mean=_mean(vals),
                se=_se(vals),
                vs_torch=_mean(diffs) if diffs else None,
                vs_torch_se=_se(diffs) if diffs else None,
            )
    header = "| variant | " + " | ".join(label for label, _ in columns) + " |"
    table.append(header)
    table.append("|---" * (len(columns) + 1) + "|")
    for variant, cells in rows.items():
        parts = []
        for label, _ in columns:
            c = cells[label]
            cell = f"{c['mean']:.3f} ± {c['se']:.3f}"
            if c["vs_torch"] is not None and variant != reference:
                cell += f" ({c['vs_torch']:+.3f} ± {c['vs_torch_se']:.3f})"
            parts.append(cell)
        table.append(f"| {variant} | " + " | ".join(parts) + " |")
    return rows, "\n".join(table)


def _mean(xs):
    xs = [x for x in xs if math.isfinite(x)]
    return sum(xs) / len(xs) if xs else float("nan")


def _se(xs):
    xs = [x for x in xs if math.isfinite(x)]
    if len(xs) < 2:
        return 0.0
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs))


def plot(runs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rnnreg.plotting import line_style

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    variants = list(dict.fromkeys(r["variant"] for r in runs))
    for k, variant in enumerate(variants):
        mine = [r for r in runs if r["variant"] == variant]
        n = min(len(r["val_loss"]) for r in mine)
        curve = np.mean([r["val_loss"][:n] for r in mine], axis=0)
        secs = np.mean([r["seconds"][:n] for r in mine], axis=0)
        color, marker = line_style(k)  # distinct beyond ten lines
        style = dict(lw=2.5, color="black") if variant == "torch" else dict(lw=1.5, color=color)
        style.update(marker=marker, markersize=4, markevery=max(1, n // 8))
        axes[0].plot(np.arange(1, n + 1), curve, label=variant, **style)
        axes[1].plot(secs, curve, label=variant, **style)
    axes[0].set_xlabel("epoch")
    axes[1].set_xlabel("seconds (mean over runs, 1 thread)")
    axes[0].set_ylabel("held-out loss (nats/char), mean over texts and seeds")
    axes[0].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("Held-out loss against epochs and seconds (char LM, hidden 128)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=INIT_VARIANTS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--texts", nargs="+", default=None, help="default: all")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--train-chars", type=int, default=30000)
    parser.add_argument("--eval-chars", type=int, default=6000)
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="wall-time budget in seconds (default: half the mean time of the slowest variant's full run)",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--lr", type=float, default=BASE["lr"], help="Adam's learning rate")
    parser.add_argument(
        "--reference", default="torch", help="the variant the paired differences are taken against"
    )
    parser.add_argument(
        "--from-json",
        metavar="PATH",
        help="summarize the runs of an earlier learning.json instead of running",
    )
    parser.add_argument(
        "--replot",
        metavar="PATH",
        help="draw learning.png again (beside it) from the runs of an earlier learning.json",
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--regularizers",
        action="store_true",
        help="the regularizer variants, compared with 'none' and with 'dropout'",
    )
    parser.add_argument("--out", default="benchmarks/results/learning")
    args = parser.parse_args(argv)
    if args.replot:
        with open(args.replot) as f:
            plot(json.load(f)["runs"], os.path.join(os.path.dirname(args.replot), "learning.png"))
        return 0
    if args.regularizers:
        args.variants, args.reference = REGULARIZER_VARIANTS, "none"
        args.out = args.out if args.out != parser.get_default("out") else "benchmarks/results/regularizers"
    if args.quick:
        args.seeds, args.epochs, args.train_chars, args.eval_chars = [0], 2, 3000, 1000
        args.texts = args.texts or ["docstrings-small"]
    try:
        import torch  # noqa: F401
    except ImportError:
        if "torch" in args.variants:
            print("torch is not installed: the PyTorch column is skipped", file=sys.stderr)
            args.variants = [v for v in args.variants if v != "torch"]
    base = {**BASE, "lr": args.lr}
    started = time.perf_counter()
    if args.from_json:
        with open(args.from_json) as f:
            runs = json.load(f)["runs"]
        texts = list(dict.fromkeys(r["text"] for r in runs))
        args.variants = list(dict.fromkeys(r["variant"] for r in runs))
        args.seeds = sorted({r["seed"] for r in runs})
        args.epochs = max(len(r["val_loss"]) for r in runs)
    texts = texts if args.from_json else (args.texts or list(load_texts(args.train_chars, args.eval_chars)))
    jobs = [
        (t, v, s, args.epochs, args.train_chars, args.eval_chars, base)
        for t in texts
        for s in args.seeds
        for v in args.variants
    ]
    if args.from_json:
        pass
    elif args.jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            runs = pool.map(_job, jobs, chunksize=1)
    else:
        runs = [_job(j) for j in jobs]
    budget = args.budget or round(
        0.5 * max(_mean([r["seconds"][-1] for r in runs if r["variant"] == v]) for v in args.variants), 1
    )
    rows, table = summarize(runs, budget, args.reference)
    if args.regularizers and "dropout" in args.variants:
        _, vs_dropout = summarize(runs, budget, "dropout")
        table += "\n\nThe same runs, paired differences to dropout alone:\n\n" + vs_dropout
    if args.regularizers and "embedding" in args.variants:
        embedded = [r for r in runs if r["variant"] in ("embedding", "embedding-dropout", "tied")]
        _, vs_embedding = summarize(embedded, budget, "embedding")
        table += (
            "\n\nEmbedding dropout and tying against their own baseline, the same model "
            "with an embedding of 128 and nothing else:\n\n" + vs_embedding
        )
    os.makedirs(args.out, exist_ok=True)
    import platform

    head = (
        f"{len(texts)} texts ({', '.join(texts)}), seeds {args.seeds}, {args.epochs} epochs, "
        f"train {args.train_chars} / eval {args.eval_chars} chars, Adam lr {args.lr:g}, "
        f"hidden {BASE['hidden']}, batch {BASE['batch_size']}, BPTT {BASE['bptt']} (unless the "
        f"variant changes them), {args.jobs} workers; "
        f"{platform.processor() or platform.machine()}; "
        + (
            f"summarized from {args.from_json}"
            if args.from_json
            else f"{time.perf_counter() - started:.0f} s"
        )
    )
    text = (
        f"{head}\n\nBest validation loss (nats/char), mean ± standard error over texts and "
        f"seeds; in parentheses the mean paired difference (± its standard error) to "
        f"{args.reference} on the same text and seed (negative = better).\n\n{table}\n"
    )
    print(text)
    with open(os.path.join(args.out, "learning.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "learning.json"), "w") as f:
        json.dump({"args": vars(args), "budget": budget, "runs": runs, "summary": rows}, f)
    plot(runs, os.path.join(args.out, "learning.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
