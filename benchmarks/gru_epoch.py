"""One training epoch of the character GRU, rnnreg's fit against the same model trained in PyTorch
as its users write it, and each epoch's share of the machine's BLAS peak.

    python -m benchmarks.gru_epoch [--threads 1 2] [--rounds 5] [--json out.json] [--quick]

The epoch is the benchmarks' (benchmarks/common.py: 20,000 characters of the built-in text,
float32, hidden 256, batch 8, BPTT 35, Adam 5e-3, clipping at 5, one-hot inputs), with a GRU:

* plain — against ``nn.GRU`` (oneDNN's fused GRU) and ``nn.Linear``;
* LN-GRU, recurrent dropout on h(t−1) (one mask per sequence) and zoneout of h (z 0.1) — no
  fused module has them: against the TorchScript loop a PyTorch user writes (the input product
  hoisted, the recurrence scripted);
* and the plain LSTM of the same size against ``nn.LSTM``, for the GRU-vs-LSTM comparison.

The share of the peak: the multiply-adds no implementation can skip (per token, the recurrent
product forward and its two gradients backward, H·G each with G = 3H for the GRU and 4H for the
LSTM, and the output layer's three, H·V each; one-hot inputs are a row pick) at one float32
sgemm's best rate on one thread (twice that on two), over the epoch's time — as
``benchmarks/epoch_bound.py`` counts it. Rounds alternate the implementations so that a noisy
machine moves all alike; each figure is the median epoch. Nothing here asserts a time.
"""

import argparse
import json
import statistics

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.common import (
    EPOCH,
    blas_rate,
    epoch_config,
    epoch_corpus,
    epoch_multiply_adds,
    epoch_run,
    machine_info,
    seconds,
)

MODELS = {  # name -> (cell, rnnreg settings, what PyTorch runs)
    "GRU": ("gru", {}, "nn.GRU"),
    "LN-GRU": ("gru", {"use_layer_norm": True}, "TorchScript loop"),
    "GRU h(t-1) dropout": ("gru", {"recurrent_keep_prob": 0.75}, "TorchScript loop"),
    "GRU zoneout": ("gru", {"zoneout_hidden": 0.1}, "TorchScript loop"),
    "LSTM": ("lstm", {}, "nn.LSTM"),
}


def rnnreg_epoch(name, stream, V, H):
    from rnnreg.model import build_model

    cell, settings, _ = MODELS[name]
    model = build_model(
        cell=cell, vocab_size=V, hidden_size=H, seed=EPOCH.seed, dtype=EPOCH.dtype, **settings
    )
    return epoch_run(model, stream, epoch_config())


def torch_gru_loops():
    """TorchScript GRU loops (PyTorch's convention, gate blocks r, z, n) for what nn.GRU cannot
    do: ``f(xw (T, N, 3H), h, Wh (H, 3H), bn, ...) -> hs (T, N, H)``; ``xw`` holds the input
    product and ``b``."""
    import torch

    @torch.jit.script
    def ln_gru(
        xw: torch.Tensor,
        h: torch.Tensor,
        Wh: torch.Tensor,
        bn: torch.Tensor,
        gx: torch.Tensor,
        bx: torch.Tensor,
        gh: torch.Tensor,
        bh: torch.Tensor,
        b: torch.Tensor,
    ) -> torch.Tensor:
        outputs = []
        H = h.shape[1]
        for t in range(xw.shape[0]):
            x = torch.layer_norm(xw[t], [3 * H], gx, bx) + b
            r_ = torch.layer_norm(h @ Wh, [3 * H], gh, bh)
            xr, xz, xn = x.chunk(3, 1)
            hr, hz, hn = r_.chunk(3, 1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * (hn + bn))
            h = (1 - z) * n + z * h
            outputs.append(h)
        return torch.stack(outputs)

    @torch.jit.script
    def masked_gru(
        xw: torch.Tensor, h: torch.Tensor, Wh: torch.Tensor, bn: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        outputs = []
        for t in range(xw.shape[0]):
            xr, xz, xn = xw[t].chunk(3, 1)
            hr, hz, hn = ((h * mask) @ Wh).chunk(3, 1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * (hn + bn))
            h = (1 - z) * n + z * h
            outputs.append(h)
        return torch.stack(outputs)

    @torch.jit.script
    def zoneout_gru(
        xw: torch.Tensor, h: torch.Tensor, Wh: torch.Tensor, bn: torch.Tensor, zh: float
    ) -> torch.Tensor:
        outputs = []
        for t in range(xw.shape[0]):
            xr, xz, xn = xw[t].chunk(3, 1)
            hr, hz, hn = (h @ Wh).chunk(3, 1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * (hn + bn))
            new = (1 - z) * n + z * h
            u = (torch.rand_like(h) < zh).to(h.dtype)
            h = u * h + (1 - u) * new
            outputs.append(h)
        return torch.stack(outputs)

    return ln_gru, masked_gru, zoneout_gru


def torch_epoch(name, stream, V, H, batch=EPOCH.batch, bptt=EPOCH.bptt):
    """The same epoch in PyTorch: one-hot inputs (an embedding lookup of the input weights for the
    loops), Adam 5e-3, global-norm clipping at 5, the state carried across chunks and detached."""
    import torch

    F_ = torch.nn.functional
    torch.manual_seed(0)
    n = (stream.size - 1) // batch
    inputs = torch.from_numpy(stream[: n * batch].reshape(batch, n).astype(np.int64))
    targets = torch.from_numpy(stream[1 : n * batch + 1].reshape(batch, n).astype(np.int64))
    head = torch.nn.Linear(H, V)
    fused = MODELS[name][2].startswith("nn.")
    if fused:
        rnn = (torch.nn.GRU if name == "GRU" else torch.nn.LSTM)(V, H, batch_first=True)
        params = list(rnn.parameters()) + list(head.parameters())
    else:
        ln_gru, masked_gru, zoneout_gru = torch_gru_loops()
        Wx = torch.nn.Parameter(torch.randn(V, 3 * H) * 0.05)
        Wh = torch.nn.Parameter(torch.randn(H, 3 * H) * 0.05)
        b, bn = torch.nn.Parameter(torch.zeros(3 * H)), torch.nn.Parameter(torch.zeros(H))
        ln = [torch.nn.Parameter(torch.ones(3 * H) if k % 2 == 0 else torch.zeros(3 * H)) for k in range(4)]
        params = [Wx, Wh, b, bn] + (ln if name == "LN-GRU" else []) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=5e-3)

    def epoch():
        h = torch.zeros(batch, H)
        state = None
        for start in range(0, n, bptt):
            x, y = inputs[:, start : start + bptt], targets[:, start : start + bptt]
            if fused:
                out, state = rnn(F_.one_hot(x, V).float(), state)
                state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
            else:
                xw = F_.embedding(x, Wx).transpose(0, 1)  # (T, N, 3H): the hoisted input product
                if name == "LN-GRU":
                    hs = ln_gru(xw, h, Wh, bn, *ln, b)
                elif name == "GRU h(t-1) dropout":
                    mask = (torch.rand(batch, H) < 0.75).float() / 0.75
                    hs = masked_gru(xw + b, h, Wh, bn, mask)
                else:
                    hs = zoneout_gru(xw + b, h, Wh, bn, 0.1)
                out = hs.transpose(0, 1)
                h = out[:, -1].detach()
            loss = F_.cross_entropy(head(out).reshape(-1, V), y.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()

    return epoch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--quick", action="store_true", help="a smoke run: 4,000 characters, 1 round")
    p.add_argument("--json", metavar="PATH", help="also write the results (and a .md table beside it)")
    args = p.parse_args(argv)
    import torch

    from rnnreg import set_num_threads

    corpus = epoch_corpus(train_chars=4000 if args.quick else EPOCH.train_chars)
    stream, V, H = corpus.train, corpus.vocab_size, EPOCH.hidden
    tokens = (stream.size - 1) // EPOCH.batch * EPOCH.batch
    rounds = 1 if args.quick else args.rounds
    with threadpool_limits(1):
        peak = blas_rate(np.random.default_rng(0), 9)
    rows = []
    for threads in args.threads:
        set_num_threads(threads)
        torch.set_num_threads(threads)
        fns = {}
        for name in args.models:
            fns[(name, "rnnreg")] = rnnreg_epoch(name, stream, V, H)
            fns[(name, "torch")] = torch_epoch(name, stream, V, H)
        with threadpool_limits(threads):
            for fn in fns.values():
                fn()  # warm up (and TorchScript's profiling runs)
                fn()
            samples = {key: [] for key in fns}
            for _ in range(rounds):
                for key, fn in fns.items():
                    samples[key].append(seconds(fn))
        for name in args.models:
            ours, theirs = (
                statistics.median(samples[(name, "rnnreg")]),
                statistics.median(samples[(name, "torch")]),
            )
            bound = epoch_multiply_adds(MODELS[name][0], tokens, V, H) / (peak * threads)
            rows.append(
                dict(
                    model=name,
                    threads=threads,
                    rnnreg_s=ours,
                    torch_s=theirs,
                    torch_runs=MODELS[name][2],
                    ratio=theirs / ours,
                    share_of_peak=bound / ours,
                    bound_s=bound,
                )
            )
            print(
                f"{threads} thread(s) {name:20s} rnnreg {ours:.3f} s  "
                f"PyTorch ({MODELS[name][2]}) {theirs:.3f} s  {theirs / ours:.2f}x  "
                f"{bound / ours:.0%} of the peak",
                flush=True,
            )
    set_num_threads(None)
    head = (
        f"{tokens} tokens, V={V}, H={H}, float32, batch {EPOCH.batch}, BPTT {EPOCH.bptt}; median of "
        f"{rounds} alternating rounds; BLAS peak {peak / 1e9:.1f} G multiply-adds/s per thread"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"head": head, "machine": machine_info(), "peak": peak, "rows": rows}, f, indent=2)
        lines = [
            f"# GRU training epoch\n\n{head}\n",
            "| model | threads | rnnreg | PyTorch | PyTorch runs | PyTorch / rnnreg | share of the peak |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r['model']} | {r['threads']} | {r['rnnreg_s']:.3f} s | {r['torch_s']:.3f} s | "
                f"{r['torch_runs']} | {r['ratio']:.2f}× | {r['share_of_peak']:.0%} |"
            )
        with open(args.json[: -len(".json")] + ".md", "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
