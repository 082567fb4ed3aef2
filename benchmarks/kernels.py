"""Benchmarks of what users get: rnnreg's public functions against what they would otherwise
write — textbook NumPy (benchmarks/textbook.py) and PyTorch CPU when installed (nn.LSTM,
F.layer_norm, F.dropout; TorchScript cell loops for LN-LSTM and dropout on h(t-1), which nn.LSTM
cannot do) — plus a training epoch of ``fit`` against the same model trained in PyTorch.

    python -m benchmarks.run            # everything (many minutes), at 1 and 2 threads
    python -m benchmarks.run --quick    # a smoke run: tiny sizes, few repeats
    python -m benchmarks.run --cases lstm epoch --sizes tiny small --threads 1 --json out.json

A development harness, kept out of the installed package: its extra columns reach into
rnnreg's private modules (the raw kernel without the public wrapper, and the bit-exact NumPy
twin — the correctness oracle, a diagnostic rather than a baseline).

Each ratio is measured in one run: the functions being compared are sampled in turn and each
figure is the median of repeated samples, so a noisy shared machine moves all sides alike.
BLAS (threadpoolctl) and PyTorch are pinned to the thread count of the row. Nothing here
asserts a time.
"""

import json
import os
import sys

import numpy as np

from benchmarks import textbook
from benchmarks.common import (
    EPOCH,
    EPOCH_MODELS,
    compare,
    epoch_config,
    epoch_corpus,
    epoch_model,
    epoch_run,
    machine_info,
)
from benchmarks.common import (
    torch_or_none as _torch,
)
from rnnreg import _backend, _reference

# name -> (N, D, H, T); tiny is the notebook's setting (one-hot vocab of 50)
LSTM_SIZES = {
    "tiny": (1, 50, 32, 15),
    "small": (16, 64, 128, 35),
    "medium": (32, 256, 256, 35),
    "large": (64, 512, 512, 35),
}
LAYER_NORM_SIZES = {"tiny": (1, 32), "small": (32, 256), "medium": (64, 512), "large": (4096, 1024)}
DROPOUT_SIZES = {"small": 10**5, "large": 10**7}
CASES = ("lstm", "ln_lstm", "h_dropout_lstm", "layer_norm", "dropout", "epoch")


class _Threads:
    """Pin BLAS (every loaded library, via threadpoolctl) and PyTorch to n threads."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        try:
            from threadpoolctl import threadpool_limits

            self.limits = threadpool_limits(limits=self.n)
        except ImportError:
            self.limits = None
        torch = _torch()
        if torch:
            self.torch_threads = torch.get_num_threads()
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if self.limits is not None:
            self.limits.restore_original_limits()
        torch = _torch()
        if torch:
            torch.set_num_threads(self.torch_threads)


# ----------------------------------------------------------------------------- cases
# Every case times what a user calls — rnnreg's public functions — against what they would
# otherwise write (textbook NumPy, benchmarks/textbook.py; PyTorch), with rnnreg's raw kernel
# (no wrapper) and its NumPy twin (the bit-exact oracle) as extra columns. "speedup" is the
# headline: textbook NumPy time / public time.
def _row(t, **fields):
    p = t["public"]
    return dict(
        fields,
        public_s=p,
        kernel_s=t.get("kernel"),
        textbook_s=t.get("textbook"),
        twin_s=t.get("twin"),
        torch_s=t.get("torch"),
        speedup=t["textbook"] / p if "textbook" in t else None,
        vs_twin=t["twin"] / p if "twin" in t else None,
        vs_torch=t["torch"] / p if "torch" in t else None,
    )


def _lstm_inputs(N, D, H, T, dtype, rng):
    x = rng.standard_normal((N, T, D)).astype(dtype)
    h0 = np.zeros((N, H), dtype)
    c0 = np.zeros((N, H), dtype)
    Wx = (rng.standard_normal((D, 4 * H)) / np.sqrt(D)).astype(dtype)
    Wh = (rng.standard_normal((H, 4 * H)) / np.sqrt(H)).astype(dtype)
    b = np.zeros(4 * H, dtype)
    dh = rng.standard_normal((N, T, H)).astype(dtype)
    return x, h0, c0, Wx, Wh, b, dh


def _torch_dtype(dtype):
    torch = _torch()
    return torch.float32 if dtype == np.float32 else torch.float64


def bench_lstm(size, dtype, rng, repeats, quick, variant="plain"):
    """LSTM forward + backward over a sequence. ``variant``: "plain" (vs nn.LSTM), "layer_norm"
    (LN-LSTM, vs a TorchScript cell loop) or "recurrent_dropout" (a mask on h(t-1), vs a
    TorchScript loop) — the two nn.LSTM cannot do."""
    import rnnreg

    K = _backend._kernels
    N, D, H, T = LSTM_SIZES[size]
    if quick:
        T = min(T, 5)
    x, h0, c0, Wx, Wh, b, dh = _lstm_inputs(N, D, H, T, dtype, rng)
    dc = np.zeros((N, H), dtype)
    eps = 1e-5
    ln = rnnreg.lstm_layer_norm_params(H, dtype) if variant == "layer_norm" else None
    mask = rnnreg.dropout_mask((N, H), 0.75, rng=1, dtype=dtype) if variant == "recurrent_dropout" else None
    _, cache_p = rnnreg.lstm_forward(x, h0, Wx, Wh, b, c0, layer_norm=ln, recurrent_mask=mask)
    fns = {
        "public": lambda: rnnreg.lstm_backward(
            dh, rnnreg.lstm_forward(x, h0, Wx, Wh, b, c0, layer_norm=ln, recurrent_mask=mask)[1]
        ),
        "kernel": lambda: K.lstm_backward(dh, dc, K.lstm_forward(x, h0, c0, Wx, Wh, b, ln, mask, eps)),
        "twin": lambda: _reference.lstm_backward(
            dh, dc, _reference.lstm_forward(x, h0, c0, Wx, Wh, b, ln, mask, eps)
        ),
    }
    if variant == "plain":
        fns["textbook"] = lambda: textbook.lstm_backward(dh, textbook.lstm_forward(x, h0, Wx, Wh, b)[1])
    torch = _torch()
    if torch:
        fns["torch"] = _torch_lstm(variant, N, D, H, T, dtype, x, dh)
    t = compare(fns, repeats)
    case = {
        "plain": "lstm_forward+backward",
        "layer_norm": "ln_lstm_forward+backward",
        "recurrent_dropout": "lstm_h_dropout_forward+backward",
    }[variant]
    return [_row(t, size=size, shape=f"N={N} D={D} H={H} T={T}", dtype=np.dtype(dtype).name, case=case)]


def _torch_lstm(variant, N, D, H, T, dtype, x, dh):
    torch = _torch()
    td = _torch_dtype(dtype)
    tx = torch.from_numpy(x).requires_grad_(True)
    tdh = torch.from_numpy(dh)
    if variant == "plain":
        lstm = torch.nn.LSTM(D, H, batch_first=True).to(td)

        def plain():
            out, _ = lstm(tx)
            out.backward(tdh)

        return plain
    ln_lstm, masked_lstm = textbook.torch_cells()
    Wx = torch.randn(D, 4 * H, dtype=td, requires_grad=True)
    Wh = torch.randn(H, 4 * H, dtype=td, requires_grad=True)
    b = torch.zeros(4 * H, dtype=td, requires_grad=True)
    h0, c0 = torch.zeros(N, H, dtype=td), torch.zeros(N, H, dtype=td)
    tdh_t = tdh.transpose(0, 1)
    if variant == "layer_norm":
        params = [
            torch.ones(4 * H, dtype=td, requires_grad=True),
            torch.zeros(4 * H, dtype=td, requires_grad=True),
            torch.ones(4 * H, dtype=td, requires_grad=True),
            torch.zeros(4 * H, dtype=td, requires_grad=True),
            torch.ones(H, dtype=td, requires_grad=True),
            torch.zeros(H, dtype=td, requires_grad=True),
        ]

        def ln():
            xw = (tx.reshape(N * T, D) @ Wx).reshape(N, T, 4 * H).transpose(0, 1)
            ln_lstm(xw, h0, c0, Wh, *params, b).backward(tdh_t)

        return ln
    mask = (torch.rand(N, H, dtype=td) < 0.75).to(td) / 0.75

    def masked():
        xw = (tx.reshape(N * T, D) @ Wx + b).reshape(N, T, 4 * H).transpose(0, 1)
        masked_lstm(xw, h0, c0, Wh, mask).backward(tdh_t)

    return masked


def bench_layer_norm(size, dtype, rng, repeats, quick):
    import rnnreg

    K = _backend._kernels
    M, F = LAYER_NORM_SIZES[size]
    x = (rng.standard_normal((M, F)) * 3 + 1).astype(dtype)
    gamma = rng.standard_normal(F).astype(dtype)
    beta = rng.standard_normal(F).astype(dtype)
    dout = rng.standard_normal((M, F)).astype(dtype)

    def public():
        rnnreg.layer_norm_backward(dout, rnnreg.layer_norm_forward(x, gamma, beta)[1])

    def kernel():
        _, xhat, rstd = K.layer_norm_forward(x, gamma, beta, 1e-5)
        K.layer_norm_backward(dout, xhat, rstd, gamma)

    def twin():
        _, xhat, rstd = _reference.layer_norm_forward(x, gamma, beta, 1e-5)
        _reference.layer_norm_backward(dout, xhat, rstd, gamma)

    fns = {
        "public": public,
        "kernel": kernel,
        "twin": twin,
        "textbook": lambda: textbook.layer_norm_backward(
            dout, textbook.layer_norm_forward(x, gamma, beta)[1]
        ),
    }
    torch = _torch()
    if torch:
        tx = torch.from_numpy(x).requires_grad_(True)
        tg = torch.from_numpy(gamma).requires_grad_(True)
        tb = torch.from_numpy(beta).requires_grad_(True)
        td = torch.from_numpy(dout)
        fns["torch"] = lambda: torch.nn.functional.layer_norm(tx, (F,), tg, tb, 1e-5).backward(td)
    return [
        _row(
            compare(fns, repeats),
            size=size,
            shape=f"({M}, {F})",
            dtype=np.dtype(dtype).name,
            case="layer_norm_forward+backward",
        )
    ]


def bench_dropout(size, dtype, rng, repeats, quick):
    import rnnreg

    K = _backend._kernels
    n = DROPOUT_SIZES[size]
    x = rng.standard_normal(n).astype(dtype)
    gens = {k: np.random.default_rng(1) for k in ("public", "kernel", "twin", "textbook")}
    fns = {
        "public": lambda: rnnreg.dropout_forward(x, 0.8, True, gens["public"]),
        "kernel": lambda: K.dropout_forward(x, 0.8, gens["kernel"]),
        "twin": lambda: _reference.dropout_forward(x, 0.8, gens["twin"]),
        "textbook": lambda: textbook.dropout_forward(x, 0.8, gens["textbook"]),
    }
    torch = _torch()
    if torch:
        tx = torch.from_numpy(x)
        fns["torch"] = lambda: torch.nn.functional.dropout(tx, 0.2, training=True)
    rows = [
        _row(
            compare(fns, repeats),
            size=size,
            shape=f"{n:.0e} elements",
            dtype=np.dtype(dtype).name,
            case="dropout_forward",
        )
    ]
    # With the result and mask written into buffers reused across calls, on both sides.
    out, mask, uniform = np.empty_like(x), np.empty_like(x), np.empty(n)
    fns = {
        "public": lambda: rnnreg.dropout_forward(x, 0.8, True, gens["public"], out=out, mask_out=mask),
        "kernel": lambda: K.dropout_forward(x, 0.8, gens["kernel"], False, out, mask),
        "textbook": lambda: textbook.dropout_forward_into(x, 0.8, gens["textbook"], uniform, out, mask),
    }
    rows.append(
        _row(
            compare(fns, repeats),
            size=size,
            shape=f"{n:.0e} elements",
            dtype=np.dtype(dtype).name,
            case="dropout_forward, out= buffers",
        )
    )
    # Zoneout's 0/1 weights alone (no input to multiply), z = 0.5: what the model draws twice
    # per batch and layer.
    gens = {k: np.random.default_rng(1) for k in ("public", "kernel", "twin", "textbook")}
    fns = {
        "public": lambda: rnnreg.zoneout_mask(n, 0.5, gens["public"], dtype),
        "kernel": lambda: K.draw_mask(n, 0.5, gens["kernel"], dtype, False),
        "twin": lambda: _reference.draw_mask(n, 0.5, gens["twin"], dtype, False),
        "textbook": lambda: textbook.zoneout_mask(n, 0.5, gens["textbook"], dtype),
    }
    if torch:
        half = torch.full((n,), 0.5, dtype=torch.from_numpy(x).dtype)
        fns["torch"] = lambda: torch.bernoulli(half)
    rows.append(
        _row(
            compare(fns, repeats),
            size=size,
            shape=f"{n:.0e} elements",
            dtype=np.dtype(dtype).name,
            case="zoneout_mask",
        )
    )
    return rows


# ----------------------------------------------------------------------------- training epoch
def _epoch_data(quick):
    corpus = epoch_corpus(train_chars=4000 if quick else EPOCH.train_chars)
    return corpus.train, corpus.vocab_size


# Bigger models too, where oneDNN's multi-threaded LSTM is strongest: (hidden, batch), for the
# models nn.LSTM runs (the TorchScript loops would take minutes an epoch there).
BIG_EPOCH_SHAPES = ((512, 32), (1024, 64))
BIG_EPOCH_MODELS = ("plain", "output dropout")
# And small batches, where threads cannot share a step by rows (the kernels share its hidden
# units there): (hidden, batch), the plain model.
SMALL_EPOCH_SHAPES = ((256, 1), (256, 2), (256, 4))


def _rnnreg_epoch(model_name, stream, V, H, batch=EPOCH.batch):
    model = epoch_model(V, EPOCH_MODELS[model_name], hidden=H)
    return epoch_run(model, stream, epoch_config(batch))  # BPTT 35, Adam, clip 5


def _torch_epoch(model_name, stream, V, H, batch=8, bptt=35):
    """The same epoch in PyTorch: one-hot inputs (an embedding lookup of the input weights),
    nn.LSTM where it can, the TorchScript loops of benchmarks/textbook.py where it cannot;
    Adam 5e-3, global-norm clipping at 5, the state carried across chunks and detached."""
    torch = _torch()
    F_ = torch.nn.functional
    torch.manual_seed(0)
    n = (stream.size - 1) // batch
    inputs = torch.from_numpy(stream[: n * batch].reshape(batch, n).astype(np.int64))
    targets = torch.from_numpy(stream[1 : n * batch + 1].reshape(batch, n).astype(np.int64))
    head = torch.nn.Linear(H, V)
    if model_name in ("plain", "output dropout"):
        lstm = torch.nn.LSTM(V, H, batch_first=True)
        params = list(lstm.parameters()) + list(head.parameters())
    else:
        ln_lstm, masked_lstm = textbook.torch_cells()
        Wx = torch.nn.Parameter(torch.randn(V, 4 * H) * 0.05)
        Wh = torch.nn.Parameter(torch.randn(H, 4 * H) * 0.05)
        b = torch.nn.Parameter(torch.zeros(4 * H))
        ln = [
            torch.nn.Parameter(torch.ones(4 * H) if k % 2 == 0 else torch.zeros(4 * H)) for k in range(4)
        ] + [torch.nn.Parameter(torch.ones(H)), torch.nn.Parameter(torch.zeros(H))]
        params = [Wx, Wh, b] + (ln if model_name == "LN-LSTM" else []) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=5e-3)

    def epoch():
        h = c = torch.zeros(batch, H)
        state = None
        for start in range(0, n, bptt):
            x, y = inputs[:, start : start + bptt], targets[:, start : start + bptt]
            if model_name in ("plain", "output dropout"):
                out, state = lstm(F_.one_hot(x, V).float(), state)
                state = tuple(s.detach() for s in state)
                if model_name == "output dropout":
                    out = F_.dropout(out, 0.4, training=True)
            else:
                xw = F_.embedding(x, Wx).transpose(0, 1)  # (T, N, 4H): the hoisted input product
                if model_name == "LN-LSTM":
                    hs = ln_lstm(xw, h, c, Wh, *ln, b)
                else:
                    mask = (torch.rand(batch, H) < 0.75).float() / 0.75
                    hs = masked_lstm(xw + b, h, c, Wh, mask)
                out = hs.transpose(0, 1)
                h = out[:, -1].detach()  # (the scripted loops return h only: c restarts)
            loss = F_.cross_entropy(head(out).reshape(-1, V), y.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()

    return epoch


def bench_epoch(dtype, repeats, quick):
    """One training epoch of a char-level LM (float32, hidden 256, batch 8, BPTT 35, one-hot
    vocabulary of the built-in text, Adam, clip 5): rnnreg's ``fit`` against PyTorch."""
    if dtype != np.float32:
        return []  # the epoch is a float32 case
    stream, V = _epoch_data(quick)
    H = 64 if quick else 256
    cases = [(name, H, 8) for name in EPOCH_MODELS]
    if not quick:
        cases += [
            (name, big_h, big_batch) for big_h, big_batch in BIG_EPOCH_SHAPES for name in BIG_EPOCH_MODELS
        ]
        cases += [("plain", hidden, batch) for hidden, batch in SMALL_EPOCH_SHAPES]
    rows = []
    for name, hidden, batch in cases:
        fns = {"public": _rnnreg_epoch(name, stream, V, hidden, batch)}
        if _torch():
            fns["torch"] = _torch_epoch(name, stream, V, hidden, batch=batch)
        t = compare(fns, repeats=max(3, repeats // 2), min_time=0.0)
        rows.append(
            _row(
                t,
                size=name if (hidden, batch) == (H, 8) else f"{name}, H{hidden} B{batch}",
                shape=f"{stream.size} chars, V={V}, H={hidden}, batch {batch}, BPTT 35",
                dtype="float32",
                case="training epoch",
            )
        )
    return rows


# ----------------------------------------------------------------------------- driver
def _fmt_time(s):
    return (
        ""
        if s is None
        else (f"{s * 1e6:.1f} µs" if s < 1e-3 else (f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"))
    )


def _ratio(r):
    return f"**{r:.2f}×**" if r is not None else ""


def markdown_table(rows):
    lines = [
        "| case | size | shape | dtype | threads | rnnreg | raw kernel | textbook NumPy | "
        "vs NumPy | NumPy twin | vs twin | PyTorch | vs PyTorch |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['size']} | {r['shape']} | {r['dtype']} | {r['threads']} | "
            f"{_fmt_time(r['public_s'])} | {_fmt_time(r.get('kernel_s'))} | "
            f"{_fmt_time(r.get('textbook_s'))} | {_ratio(r.get('speedup'))} | "
            f"{_fmt_time(r.get('twin_s'))} | {_ratio(r.get('vs_twin'))} | "
            f"{_fmt_time(r.get('torch_s'))} | {_ratio(r.get('vs_torch'))} |"
        )
    return "\n".join(lines)


def run(
    quick=False, cases=None, sizes=None, dtypes=("float64", "float32"), threads=(1, 2), repeats=None, out=None
):
    """Run the benchmark; print a markdown table; write JSON to ``out``; return the rows."""
    if _backend._kernels is None:
        raise RuntimeError("the compiled kernels are not available: nothing to benchmark")
    repeats = repeats or (3 if quick else 7)
    cases = cases or CASES
    if quick:
        sizes = sizes or ["tiny"]
        threads = threads if threads != (1, 2) else (1,)
    rng = np.random.default_rng(0)
    rows = []
    for n_threads in threads:
        with _Threads(n_threads):
            for dtype in dtypes:
                dtype = np.dtype(dtype).type
                for case in cases:
                    if case == "epoch":
                        new = bench_epoch(dtype, repeats, quick)
                    else:
                        table = {
                            "lstm": LSTM_SIZES,
                            "ln_lstm": LSTM_SIZES,
                            "h_dropout_lstm": LSTM_SIZES,
                            "layer_norm": LAYER_NORM_SIZES,
                            "dropout": DROPOUT_SIZES,
                        }[case]
                        bench = {
                            "lstm": bench_lstm,
                            "layer_norm": bench_layer_norm,
                            "dropout": bench_dropout,
                            "ln_lstm": lambda *a: bench_lstm(*a, variant="layer_norm"),
                            "h_dropout_lstm": lambda *a: bench_lstm(*a, variant="recurrent_dropout"),
                        }[case]
                        new = []
                        for size in (s for s in table if sizes is None or s in sizes):
                            new += bench(size, dtype, rng, repeats, quick)
                    for r in new:
                        r["threads"] = n_threads
                    rows += new
                    for r in new:
                        print(
                            f"  {r['case']:<34} {r['size']:<15} {r['dtype']:<8} "
                            f"{n_threads} thr"
                            + (f"  {r['speedup']:6.2f}x NumPy" if r.get("speedup") else "")
                            + (f"  {r['vs_torch']:5.2f}x torch" if r.get("vs_torch") else ""),
                            file=sys.stderr,
                            flush=True,
                        )
    info = machine_info()
    print(
        f"machine: {info.get('cpu')}, {info['cpu_count']} cores; rnnreg build "
        f"{info['rnnreg_build']}; numpy {info['numpy']}; torch {info['torch']}; "
        f"OPENBLAS_CORETYPE={info['OPENBLAS_CORETYPE']} OPENBLAS_L2_SIZE={info['OPENBLAS_L2_SIZE']}"
    )
    if isinstance(info["blas"], list):
        for lib in info["blas"]:
            print(
                f"BLAS: {lib['internal_api']} {lib['version']} ({lib['architecture']}), "
                f"{os.path.basename(lib['filepath'])}"
            )
    else:
        print(f"BLAS: {info['blas']}")
    print()
    print(markdown_table(rows))
    if out:
        with open(out, "w") as f:
            json.dump({"machine": info, "results": rows}, f, indent=2)
        print(f"\nwrote {out}")
    return rows
