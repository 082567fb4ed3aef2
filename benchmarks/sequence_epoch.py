"""One training epoch of sequence classification, rnnreg's fit against the same model trained
in PyTorch as its users write it.

    python -m benchmarks.sequence_epoch [--threads 1] [--rounds 5] [--json out.json] [--quick]

The data: 512 sequences of 12 features, lengths drawn from 50 to 100 steps, 5 classes; float32,
hidden 128, batch 32 (each batch padded to its longest sequence), Adam at 5e-3, gradient-norm
clipping at 5, one output per sequence from its last valid step. The models and what PyTorch
runs for each:

* plain — ``nn.LSTM`` over ``pack_padded_sequence`` (oneDNN's fused kernels) and ``nn.Linear``;
* recurrent dropout on h(t−1) (one mask per sequence) and zoneout (z 0.1 of h, 0.3 of c) —
  no fused module has them: the TorchScript loop a PyTorch user writes (the input product
  hoisted, the recurrence scripted, each row frozen past its length with ``torch.where``).

Rounds alternate the implementations so that a noisy machine moves all alike; each figure is the
median epoch. Nothing here asserts a time.
"""

import argparse
import json
import statistics

import numpy as np

from benchmarks.common import machine_info, seconds, torch_or_none

N_SEQUENCES, FEATURES, CLASSES, HIDDEN, BATCH = 512, 12, 5, 128, 32
LENGTHS = (50, 100)
MODELS = {
    "plain": {},
    "h(t-1) dropout": {"recurrent_keep_prob": 0.75, "variational": True},
    "zoneout": {"zoneout_hidden": 0.1, "zoneout_cell": 0.3},
}


def data(seed=0, sequences=N_SEQUENCES):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(LENGTHS[0], LENGTHS[1] + 1, sequences)
    y = rng.integers(0, CLASSES, sequences)
    X = [(rng.standard_normal((L, FEATURES)) + 0.1 * y[k]).astype(np.float32) for k, L in enumerate(lengths)]
    return X, y


def rnnreg_epoch(name, X, y):
    from rnnreg import RegularizedLSTM
    from rnnreg.training import TrainConfig, fit

    model = RegularizedLSTM(
        input_size=FEATURES,
        hidden_size=HIDDEN,
        output_size=CLASSES,
        task="classify",
        seed=0,
        dtype="float32",
        **MODELS[name],
    )
    config = TrainConfig(epochs=1, batch_size=BATCH, progress=False)  # Adam 5e-3, clip 5
    return lambda: fit(model, (X, y), None, config, log=lambda line: None)


def _torch_batches(torch, X, y, rng):
    order = rng.permutation(len(X))
    for start in range(0, len(order), BATCH):
        rows = order[start : start + BATCH]
        lengths = np.array([len(X[k]) for k in rows])
        padded = np.zeros((len(rows), lengths.max(), FEATURES), np.float32)
        for j, k in enumerate(rows):
            padded[j, : lengths[j]] = X[k]
        yield torch.from_numpy(padded), torch.from_numpy(lengths), torch.from_numpy(y[rows])


def torch_epoch(name, X, y):
    torch = torch_or_none()
    nn, F_ = torch.nn, torch.nn.functional
    from torch.nn.utils.rnn import pack_padded_sequence

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    head = nn.Linear(HIDDEN, CLASSES)
    if name == "plain":
        lstm = nn.LSTM(FEATURES, HIDDEN, batch_first=True)
        params = list(lstm.parameters()) + list(head.parameters())

        def forward(x, lengths):
            _, (h_n, _) = lstm(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
            return head(h_n[-1])

    else:
        Wx = nn.Parameter(torch.randn(FEATURES, 4 * HIDDEN) * 0.05)
        Wh = nn.Parameter(torch.randn(HIDDEN, 4 * HIDDEN) * 0.05)
        b = nn.Parameter(torch.zeros(4 * HIDDEN))
        params = [Wx, Wh, b] + list(head.parameters())
        loop = _masked_loop() if name == "h(t-1) dropout" else _zoneout_loop()
        settings = MODELS[name]

        def forward(x, lengths):
            n = x.shape[0]
            xw = (x @ Wx + b).transpose(0, 1)  # (T, N, 4H): the hoisted input product
            steps = (torch.arange(x.shape[1])[:, None] < lengths[None, :]).unsqueeze(-1)  # (T, N, 1)
            h = c = torch.zeros(n, HIDDEN)
            if name == "h(t-1) dropout":
                keep = settings["recurrent_keep_prob"]
                mask = (torch.rand(n, HIDDEN) < keep).float() / keep
                h = loop(xw, steps, h, c, Wh, mask)
            else:
                h = loop(xw, steps, h, c, Wh, settings["zoneout_hidden"], settings["zoneout_cell"])
            return head(h)

    optimizer = torch.optim.Adam(params, lr=5e-3)

    def epoch():
        for x, lengths, labels in _torch_batches(torch, X, y, rng):
            loss = F_.cross_entropy(forward(x, lengths), labels)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()

    return epoch


def _masked_loop():
    import torch

    @torch.jit.script
    def masked_lstm(
        xw: torch.Tensor,
        steps: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
        Wh: torch.Tensor,
        mask: torch.Tensor,
    ):
        for t in range(xw.shape[0]):
            a = xw[t] + (h * mask) @ Wh
            i, f, o, g = a.chunk(4, 1)
            c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h_new = torch.sigmoid(o) * torch.tanh(c_new)
            c = torch.where(steps[t], c_new, c)  # a row past its length keeps its state
            h = torch.where(steps[t], h_new, h)
        return h

    return masked_lstm


def _zoneout_loop():
    import torch

    @torch.jit.script
    def zoneout_lstm(
        xw: torch.Tensor,
        steps: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
        Wh: torch.Tensor,
        zh: float,
        zc: float,
    ):
        for t in range(xw.shape[0]):
            a = xw[t] + h @ Wh
            i, f, o, g = a.chunk(4, 1)
            c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h_new = torch.sigmoid(o) * torch.tanh(c_new)
            dc = (torch.rand_like(c) < zc).to(c.dtype)
            dh = (torch.rand_like(h) < zh).to(h.dtype)
            c = torch.where(steps[t], dc * c + (1 - dc) * c_new, c)
            h = torch.where(steps[t], dh * h + (1 - dh) * h_new, h)
        return h

    return zoneout_lstm


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 64 sequences, one round")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    import rnnreg

    torch = torch_or_none()
    X, y = data(sequences=64 if args.quick else N_SEQUENCES)
    if args.quick:
        args.rounds = 1
    rows = []
    with threadpool_limits(args.threads):
        rnnreg.set_num_threads(args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)
        for name in MODELS:
            fns = {"rnnreg": rnnreg_epoch(name, X, y)}
            if torch is not None:
                fns["PyTorch"] = torch_epoch(name, X, y)
            for fn in fns.values():
                fn()  # warm up (TorchScript compiles)
            times = {k: [] for k in fns}
            for _ in range(args.rounds):
                for k, fn in fns.items():
                    times[k].append(seconds(fn))
            row = {"model": name, "threads": args.threads}
            row.update({f"{k}_s": statistics.median(v) for k, v in times.items()})
            if "PyTorch" in times:
                ratios = [p / r for p, r in zip(times["PyTorch"], times["rnnreg"])]
                row["ratio"] = statistics.median(ratios)
                row["ratio_range"] = [min(ratios), max(ratios)]
            rows.append(row)
    pytorch = {
        "plain": "nn.LSTM, packed",
        "h(t-1) dropout": "TorchScript loop",
        "zoneout": "TorchScript loop",
    }
    lines = [
        "| model | rnnreg epoch | PyTorch | PyTorch epoch | PyTorch / rnnreg [range] |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        torch_cell = f"{row['PyTorch_s']:.3f} s" if "PyTorch_s" in row else "—"
        ratio = (
            f"{row['ratio']:.2f}× [{row['ratio_range'][0]:.2f}–{row['ratio_range'][1]:.2f}]"
            if "ratio" in row
            else "—"
        )
        lines.append(
            f"| {row['model']} | {row['rnnreg_s']:.3f} s | {pytorch[row['model']]} | {torch_cell} | {ratio} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.json:
        record = {
            "command": "python -m benchmarks.sequence_epoch " + " ".join(argv or []),
            "machine": machine_info(),
            "rows": rows,
        }
        with open(args.json, "w") as out:
            json.dump(record, out, indent=1)
        with open(
            args.json[: -len(".json")] + ".md" if args.json.endswith(".json") else args.json + ".md", "w"
        ) as out:
            out.write(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
