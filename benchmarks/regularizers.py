"""What the AWD-LSTM regularizers and zoneout cost in a training epoch, and zoneout's epoch
against the TorchScript loop a PyTorch user would write for it (no fused module has zoneout).

    python -m benchmarks.regularizers                 # 1 thread, 5 alternating rounds
    python -m benchmarks.regularizers --threads 2 --rounds 7 --json out.json
    python -m benchmarks.regularizers --quick         # a smoke run (small text and model)

One epoch of ``fit`` on the built-in text (20,000 characters, float32, hidden 256, batch 8,
BPTT 35, Adam 5e-3, clip 5, no validation), one-hot inputs unless the regularizer needs an
embedding — then its baseline is the same model with an embedding of 256 and nothing else. The
epochs run in alternating rounds (every variant once per round) and the table gives the median
and each variant's ratio to its baseline in the same round (median over rounds): what switching
the regularizer on costs. The PyTorch row is the same zoneout model (one-hot inputs as an
embedding lookup of the input weights, the scripted loop, a linear head, Adam 5e-3, clipping at
5, (h, c) carried across chunks and detached), and its ratio is PyTorch's epoch over rnnreg's.
"""

import argparse
import json
import os
import platform
import statistics
import sys

import numpy as np

from benchmarks import textbook
from benchmarks.common import epoch_config, epoch_corpus, epoch_model, epoch_run, seconds, zoneout_settings

ZONEOUT = zoneout_settings()  # `rnnreg compare`'s zoneout setting
EMBEDDING = {"embedding_size": 256}
# name -> (model settings, training settings, baseline)
VARIANTS = {
    "plain": ({}, {}, None),
    "zoneout (h 0.05, c 0.5)": (ZONEOUT, {}, "plain"),
    "AR + TAR (α 2, β 1)": ({"activation_reg": 2.0, "temporal_activation_reg": 1.0}, {}, "plain"),
    "variable-length BPTT": ({}, {"variable_bptt": True}, "plain"),
    "embedding 256": (EMBEDDING, {}, None),
    "embedding dropout (p 0.1)": (dict(EMBEDDING, embedding_keep_prob=0.9), {}, "embedding 256"),
    "tied weights": ({"tie_weights": True}, {}, "embedding 256"),
}


def _rnnreg_epoch(stream, V, H, model_kwargs, train_kwargs):
    return epoch_run(epoch_model(V, model_kwargs, hidden=H), stream, epoch_config(**train_kwargs))


def _torch_zoneout_epoch(stream, V, H, batch=8, bptt=35):
    import torch

    F_ = torch.nn.functional
    torch.manual_seed(0)
    cell = textbook.torch_zoneout_cell()
    n = (stream.size - 1) // batch
    inputs = torch.from_numpy(stream[: n * batch].reshape(batch, n).astype(np.int64))
    targets = torch.from_numpy(stream[1 : n * batch + 1].reshape(batch, n).astype(np.int64))
    Wx = torch.nn.Parameter(torch.randn(V, 4 * H) * 0.05)
    Wh = torch.nn.Parameter(torch.randn(H, 4 * H) * 0.05)
    b = torch.nn.Parameter(torch.zeros(4 * H))
    head = torch.nn.Linear(H, V)
    params = [Wx, Wh, b] + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=5e-3)

    def epoch():
        h = c = torch.zeros(batch, H)
        for start in range(0, n, bptt):
            x, y = inputs[:, start : start + bptt], targets[:, start : start + bptt]
            xw = F_.embedding(x, Wx).transpose(0, 1) + b  # (T, N, 4H): the hoisted product
            hs, h, c = cell(xw, h, c, Wh, ZONEOUT["zoneout_hidden"], ZONEOUT["zoneout_cell"], True)
            h, c = h.detach(), c.detach()
            loss = F_.cross_entropy(head(hs.transpose(0, 1)).reshape(-1, V), y.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()

    return epoch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=1, help="BLAS, rnnreg and PyTorch threads (threadpoolctl)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    import rnnreg

    corpus = epoch_corpus(train_chars=3000) if args.quick else epoch_corpus()
    stream, V, H = corpus.train, corpus.vocab_size, 32 if args.quick else 256
    rounds = 1 if args.quick else args.rounds
    fns = {name: _rnnreg_epoch(stream, V, H, m, t) for name, (m, t, _) in VARIANTS.items()}
    try:
        import torch

        torch.set_num_threads(args.threads)
        fns["PyTorch: zoneout, TorchScript loop"] = _torch_zoneout_epoch(stream, V, H)
    except ImportError:
        print("torch is not installed: the PyTorch row is skipped", file=sys.stderr)
    samples = {name: [] for name in fns}
    rnnreg.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        for fn in fns.values():
            fn()  # warm up
        for k in range(rounds):
            for name, fn in fns.items():
                samples[name].append(seconds(fn))
            print(f"round {k + 1}/{rounds} done", file=sys.stderr, flush=True)
    baseline = {name: spec[2] for name, spec in VARIANTS.items()}
    baseline["PyTorch: zoneout, TorchScript loop"] = "zoneout (h 0.05, c 0.5)"
    rows = []
    lines = [
        "| variant | epoch, median | ratio to | ratio, median [range] over rounds |",
        "|---|---|---|---|",
    ]
    for name, times in samples.items():
        base = baseline[name]
        # this / its baseline; for the PyTorch row that is PyTorch's epoch / rnnreg's
        ratios = [t / b for t, b in zip(times, samples[base])] if base else None
        row = {
            "variant": name,
            "seconds": times,
            "median": statistics.median(times),
            "baseline": base,
            "ratios": ratios,
            "ratio": statistics.median(ratios) if ratios else None,
        }
        rows.append(row)
        label = (
            ""
            if not base
            else (
                f"rnnreg {base}: PyTorch / rnnreg"
                if name.startswith("PyTorch")
                else f"{base}: this / baseline"
            )
        )
        ratio = "" if not ratios else f"{row['ratio']:.2f}× [{min(ratios):.2f}–{max(ratios):.2f}]"
        lines.append(f"| {name} | {row['median']:.3f} s | {label} | {ratio} |")
    head = (
        f"{stream.size} chars, V={V}, H={H}, float32, batch 8, BPTT 35, {args.threads} "
        f"thread(s), {rounds} alternating rounds; rnnreg {rnnreg.__version__} "
        f"({rnnreg._backend.COMPILED_VARIANT} build); {platform.processor() or platform.machine()}"
    )
    print(head + "\n\n" + "\n".join(lines))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"head": head, "threads": args.threads, "rows": rows}, f, indent=2)
        table = os.path.splitext(args.json)[0] + ".md"
        with open(table, "w") as f:
            f.write(head + "\n\n" + "\n".join(lines) + "\n")
        print(f"\nwrote {args.json} and {table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
