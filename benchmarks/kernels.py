"""Benchmarks: each compiled kernel against its NumPy twin — and PyTorch CPU when installed.

    python benchmarks/run.py            # everything (several minutes)
    python benchmarks/run.py --quick    # a smoke run: tiny sizes, few repeats
    python benchmarks/run.py --cases lstm --sizes tiny small --threads 1 --json out.json

A development harness, kept out of the installed package: it reaches into rnnreg's private
modules (the raw kernels and their twins).

The headline is a ratio measured in one run: NumPy-twin time / compiled time (and PyTorch time /
compiled time). Calls of the backends being compared alternate, and each figure is the median of
repeated samples, so a noisy shared machine moves both sides alike. The kernels are called
directly (``rnnreg._kernels`` vs ``rnnreg._reference``), without the public wrappers' checks,
which cost the same whichever backend runs. "Limits" columns put achieved throughput next to what
the machine does on plain work of the same size: GFLOP/s of a BLAS matrix product with the LSTM's
total multiply-adds, GB/s of a memory copy moving the same bytes. For the LSTM, "ceiling" is the
speed-up over the NumPy twin that a kernel running at that matrix-product rate would reach: the
bound the products alone put on the ratio. Nothing here asserts a time.
"""
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

from rnnreg import _backend, _reference

# name -> (N, D, H, T); tiny is the notebook's setting (one-hot vocab of 50)
LSTM_SIZES = {"tiny": (1, 50, 32, 15), "small": (16, 64, 128, 35),
              "medium": (32, 256, 256, 35), "large": (64, 512, 512, 35)}
LAYER_NORM_SIZES = {"tiny": (1, 32), "small": (32, 256), "medium": (64, 512), "large": (4096, 1024)}
DROPOUT_SIZES = {"tiny": 10**3, "small": 10**5, "large": 10**7}
CASES = ("lstm", "lstm_step", "layer_norm", "dropout", "epoch")


# ----------------------------------------------------------------------------- timing
def _sample(fn, min_time):
    """Seconds per call of fn, from a loop long enough to last min_time."""
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    loops = max(1, int(min_time / once))
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - start) / loops


def compare(fns, repeats=5, min_time=0.02):
    """Median seconds per call of each function in ``fns`` (a dict), sampling them in turn."""
    for fn in fns.values():
        fn()  # warm up
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(_sample(fn, min_time))
    return {name: statistics.median(s) for name, s in samples.items()}


# ----------------------------------------------------------------------------- environment
def machine_info():
    info = {"python": sys.version.split()[0], "numpy": np.__version__,
            "platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "rnnreg_build": _backend.COMPILED_VARIANT,
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE")}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f
                               if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    try:
        import scipy
        info["scipy"] = scipy.__version__
    except ImportError:
        pass
    torch = _torch()
    info["torch"] = torch.__version__ if torch else None
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = [{k: p.get(k) for k in ("internal_api", "version", "architecture",
                                                "num_threads", "filepath")}
                        for p in threadpool_info() if p.get("user_api") == "blas"]
    except ImportError:
        info["blas"] = "threadpoolctl not installed: BLAS library and threads unknown"
    return info


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


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
def _lstm_inputs(N, D, H, T, dtype, rng):
    x = rng.standard_normal((N, T, D)).astype(dtype)
    h0 = np.zeros((N, H), dtype)
    c0 = np.zeros((N, H), dtype)
    Wx = (rng.standard_normal((D, 4 * H)) / np.sqrt(D)).astype(dtype)
    Wh = (rng.standard_normal((H, 4 * H)) / np.sqrt(H)).astype(dtype)
    b = np.zeros(4 * H, dtype)
    dh = rng.standard_normal((N, T, H)).astype(dtype)
    return x, h0, c0, Wx, Wh, b, dh


def _torch_lstm(N, D, H, T, dtype, x, dh):
    torch = _torch()
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    lstm = torch.nn.LSTM(D, H, batch_first=True).to(tdtype)
    tx = torch.from_numpy(x).requires_grad_(True)
    tdh = torch.from_numpy(dh)

    def forward():
        with torch.no_grad():
            lstm(tx)

    def forward_backward():
        out, _ = lstm(tx)
        out.backward(tdh)
    return forward, forward_backward


def bench_lstm(size, dtype, rng, repeats, quick):
    K = _backend._kernels
    N, D, H, T = LSTM_SIZES[size]
    if quick:
        T = min(T, 5)
    x, h0, c0, Wx, Wh, b, dh = _lstm_inputs(N, D, H, T, dtype, rng)
    dc = np.zeros((N, H), dtype)
    eps = 1e-5
    cache_k = K.lstm_forward(x, h0, c0, Wx, Wh, b, None, None, eps)
    cache_r = _reference.lstm_forward(x, h0, c0, Wx, Wh, b, None, None, eps)
    fns = {
        "compiled_fwd": lambda: K.lstm_forward(x, h0, c0, Wx, Wh, b, None, None, eps),
        "numpy_fwd": lambda: _reference.lstm_forward(x, h0, c0, Wx, Wh, b, None, None, eps),
        "compiled_bwd": lambda: K.lstm_backward(dh, dc, cache_k),
        "numpy_bwd": lambda: _reference.lstm_backward(dh, dc, cache_r),
    }
    # The limit: one BLAS product with the forward pass's multiply-adds, on the kernels' BLAS.
    xh = rng.standard_normal((N * T, D + H)).astype(dtype)
    W = rng.standard_normal((D + H, 4 * H)).astype(dtype)
    fns["matmul_same_work"] = lambda: K.matmul(xh, W)
    if _torch():
        fns["torch_fwd"], fns["torch_fwdbwd"] = _torch_lstm(N, D, H, T, dtype, x, dh)
    t = compare(fns, repeats)
    fwd_flops = 2.0 * N * T * (D + H) * 4 * H          # matrix products only
    rows = []
    base = dict(size=size, shape=f"N={N} D={D} H={H} T={T}", dtype=np.dtype(dtype).name)
    compiled = t["compiled_fwd"] + t["compiled_bwd"]
    numpy_ = t["numpy_fwd"] + t["numpy_bwd"]
    mm_rate = fwd_flops / t["matmul_same_work"]
    for case, c, n, flops, torch_t in (
            ("lstm_forward", t["compiled_fwd"], t["numpy_fwd"], fwd_flops, t.get("torch_fwd")),
            ("lstm_backward", t["compiled_bwd"], t["numpy_bwd"], 2 * fwd_flops, None),
            ("lstm_forward+backward", compiled, numpy_, 3 * fwd_flops, t.get("torch_fwdbwd"))):
        # ceiling: the speed-up a kernel running at the matmul limit would show against this
        # NumPy time — where it is near the target, the products alone bound the ratio.
        rows.append(dict(base, case=case, compiled_s=c, numpy_s=n, speedup=n / c,
                         torch_s=torch_t, vs_torch=(torch_t / c) if torch_t else None,
                         gflops=flops / c / 1e9, limit_gflops=mm_rate / 1e9,
                         fraction_of_limit=(flops / c) / mm_rate,
                         speedup_ceiling=n / (flops / mm_rate)))
    return rows


def bench_lstm_step(size, dtype, rng, repeats, quick):
    K = _backend._kernels
    N, D, H, _ = LSTM_SIZES[size]
    x, h0, c0, Wx, Wh, b, _ = _lstm_inputs(N, D, H, 1, dtype, rng)
    x = np.ascontiguousarray(x[:, 0])
    dnh = rng.standard_normal((N, H)).astype(dtype)
    dnc = np.zeros((N, H), dtype)
    _, _, cache_k = K.lstm_step_forward(x, h0, c0, Wx, Wh, b)
    _, _, cache_r = _reference.lstm_step_forward(x, h0, c0, Wx, Wh, b)
    fns = {
        "compiled_fwd": lambda: K.lstm_step_forward(x, h0, c0, Wx, Wh, b),
        "numpy_fwd": lambda: _reference.lstm_step_forward(x, h0, c0, Wx, Wh, b),
        "compiled_bwd": lambda: K.lstm_step_backward(dnh, dnc, cache_k),
        "numpy_bwd": lambda: _reference.lstm_step_backward(dnh, dnc, cache_r),
    }
    t = compare(fns, repeats)
    base = dict(size=size, shape=f"N={N} D={D} H={H}", dtype=np.dtype(dtype).name)
    return [dict(base, case="lstm_step_forward", compiled_s=t["compiled_fwd"],
                 numpy_s=t["numpy_fwd"], speedup=t["numpy_fwd"] / t["compiled_fwd"]),
            dict(base, case="lstm_step_backward", compiled_s=t["compiled_bwd"],
                 numpy_s=t["numpy_bwd"], speedup=t["numpy_bwd"] / t["compiled_bwd"])]


def _memory_bound_row(t, moved_bytes, **fields):
    """A result row for a memory-bound kernel: the ratios, and GB/s next to a memory copy of
    the same bytes (t holds median seconds for "compiled", "numpy", "copy", maybe "torch")."""
    c = t["compiled"]
    return dict(fields, compiled_s=c, numpy_s=t["numpy"], speedup=t["numpy"] / c,
                torch_s=t.get("torch"), vs_torch=(t["torch"] / c) if "torch" in t else None,
                gbps=moved_bytes / c / 1e9, limit_gbps=moved_bytes / t["copy"] / 1e9,
                fraction_of_limit=t["copy"] / c)


def bench_layer_norm(size, dtype, rng, repeats, quick):
    K = _backend._kernels
    M, F = LAYER_NORM_SIZES[size]
    x = (rng.standard_normal((M, F)) * 3 + 1).astype(dtype)
    gamma = rng.standard_normal(F).astype(dtype)
    beta = rng.standard_normal(F).astype(dtype)
    dout = rng.standard_normal((M, F)).astype(dtype)
    _, xhat, rstd = K.layer_norm_forward(x, gamma, beta, 1e-5)
    src = rng.standard_normal((3, M, F)).astype(dtype)   # a copy of 3 arrays' bytes: the limit
    dst = np.empty_like(src)
    fns = {
        "compiled": lambda: (K.layer_norm_forward(x, gamma, beta, 1e-5),
                             K.layer_norm_backward(dout, xhat, rstd, gamma)),
        "numpy": lambda: (_reference.layer_norm_forward(x, gamma, beta, 1e-5),
                          _reference.layer_norm_backward(dout, xhat, rstd, gamma)),
        "copy": lambda: (np.copyto(dst, src), np.copyto(dst, src)),
    }
    torch = _torch()
    if torch:
        tx = torch.from_numpy(x).requires_grad_(True)
        tg = torch.from_numpy(gamma).requires_grad_(True)
        tb = torch.from_numpy(beta).requires_grad_(True)
        td = torch.from_numpy(dout)

        def torch_ln():
            torch.nn.functional.layer_norm(tx, (F,), tg, tb, 1e-5).backward(td)
        fns["torch"] = torch_ln
    moved = 6 * M * F * np.dtype(dtype).itemsize   # forward: x in, out + xhat out; backward alike
    return [_memory_bound_row(compare(fns, repeats), moved, size=size, shape=f"({M}, {F})",
                              dtype=np.dtype(dtype).name, case="layer_norm_forward+backward")]


def bench_dropout(size, dtype, rng, repeats, quick):
    K = _backend._kernels
    n = DROPOUT_SIZES[size]
    x = rng.standard_normal(n).astype(dtype)
    gen_c, gen_n = np.random.default_rng(1), np.random.default_rng(1)
    src = rng.standard_normal(3 * n).astype(dtype)      # x in, out and mask out: 3 arrays' bytes
    dst = np.empty_like(src)
    fns = {
        "compiled": lambda: K.dropout_forward(x, 0.8, gen_c),
        "numpy": lambda: _reference.dropout_forward(x, 0.8, gen_n),
        "copy": lambda: np.copyto(dst, src),
    }
    torch = _torch()
    if torch:
        tx = torch.from_numpy(x)
        fns["torch"] = lambda: torch.nn.functional.dropout(tx, 0.2, training=True)
    moved = 3 * n * np.dtype(dtype).itemsize
    return [_memory_bound_row(compare(fns, repeats), moved, size=size, shape=f"{n:.0e} elements",
                              dtype=np.dtype(dtype).name, case="dropout_forward")]


def bench_epoch(dtype, repeats, quick):
    """One training epoch of the notebook's setting: 200 sequences of 15 tokens, vocab 50,
    hidden 32, one sequence per update (as the notebook loops): forward, backward, Adam step."""
    from rnnreg.data import generate_simple_dataset
    from rnnreg.model import RegularizedLSTM
    from rnnreg.optim import Adam
    num = 20 if quick else 200
    inputs, targets = generate_simple_dataset(15, 50, num, seed=0)

    def epoch_with(backend):
        model = RegularizedLSTM(50, 32, dropout_keep_prob=0.8, use_layer_norm=True, seed=0,
                                dtype=dtype)
        optimizer = Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)

        def run():
            with _backend.use_backend(backend):
                for k in range(num):
                    model.forward_batch(inputs[k:k + 1], targets[k:k + 1], training=True)
                    optimizer.step(model.backward())
        return run
    t = compare({"compiled": epoch_with("compiled"), "numpy": epoch_with("numpy")},
                repeats=max(3, repeats // 2), min_time=0.0)
    return [dict(size="notebook", shape=f"{num} seqs x 15, V=50, H=32, LN, dropout",
                 dtype=np.dtype(dtype).name, case="training epoch (model + Adam)",
                 compiled_s=t["compiled"], numpy_s=t["numpy"],
                 speedup=t["numpy"] / t["compiled"])]


# ----------------------------------------------------------------------------- driver
def _fmt_time(s):
    return "" if s is None else (f"{s * 1e6:.1f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms")


def markdown_table(rows):
    lines = ["| case | size | shape | dtype | threads | compiled | NumPy twin | speed-up | "
             "PyTorch | vs PyTorch | achieved | limit | of limit | ceiling |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "gflops" in r:
            achieved, limit = f"{r['gflops']:.1f} GFLOP/s", f"{r['limit_gflops']:.1f} GFLOP/s"
        elif "gbps" in r:
            achieved, limit = f"{r['gbps']:.1f} GB/s", f"{r['limit_gbps']:.1f} GB/s"
        else:
            achieved = limit = ""
        frac = f"{100 * r['fraction_of_limit']:.0f}%" if r.get("fraction_of_limit") else ""
        vs_torch = f"{r['vs_torch']:.2f}×" if r.get("vs_torch") else ""
        ceiling = f"{r['speedup_ceiling']:.1f}×" if r.get("speedup_ceiling") else ""
        lines.append(f"| {r['case']} | {r['size']} | {r['shape']} | {r['dtype']} | "
                     f"{r['threads']} | {_fmt_time(r['compiled_s'])} | {_fmt_time(r['numpy_s'])} | "
                     f"**{r['speedup']:.1f}×** | {_fmt_time(r.get('torch_s'))} | {vs_torch} | "
                     f"{achieved} | {limit} | {frac} | {ceiling} |")
    return "\n".join(lines)


def run(quick=False, cases=None, sizes=None, dtypes=("float64", "float32"), threads=(1, 2),
        repeats=None, out=None):
    """Run the benchmark; print a markdown table; write JSON to ``out``; return the rows."""
    if _backend._kernels is None:
        raise RuntimeError("the compiled kernels are not available: nothing to benchmark")
    repeats = repeats or (3 if quick else 7)
    cases = cases or (("lstm", "layer_norm", "dropout", "epoch") if quick else CASES)
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
                        table = {"lstm": LSTM_SIZES, "lstm_step": LSTM_SIZES,
                                 "layer_norm": LAYER_NORM_SIZES, "dropout": DROPOUT_SIZES}[case]
                        bench = {"lstm": bench_lstm, "lstm_step": bench_lstm_step,
                                 "layer_norm": bench_layer_norm, "dropout": bench_dropout}[case]
                        new = []
                        for size in (s for s in table if sizes is None or s in sizes):
                            new += bench(size, dtype, rng, repeats, quick)
                    for r in new:
                        r["threads"] = n_threads
                    rows += new
                    for r in new:
                        print(f"  {r['case']:<32} {r['size']:<8} {r['dtype']:<8} "
                              f"{n_threads} thr  {r['speedup']:6.1f}x NumPy"
                              + (f"  {r['vs_torch']:5.2f}x torch" if r.get("vs_torch") else ""),
                              file=sys.stderr, flush=True)
    info = machine_info()
    print(f"machine: {info.get('cpu')}, {info['cpu_count']} cores; rnnreg build "
          f"{info['rnnreg_build']}; numpy {info['numpy']}; torch {info['torch']}; "
          f"OPENBLAS_CORETYPE={info['OPENBLAS_CORETYPE']} OPENBLAS_L2_SIZE={info['OPENBLAS_L2_SIZE']}")
    if isinstance(info["blas"], list):
        for lib in info["blas"]:
            print(f"BLAS: {lib['internal_api']} {lib['version']} ({lib['architecture']}), "
                  f"{os.path.basename(lib['filepath'])}")
    else:
        print(f"BLAS: {info['blas']}")
    print()
    print(markdown_table(rows))
    if out:
        with open(out, "w") as f:
            json.dump({"machine": info, "results": rows}, f, indent=2)
        print(f"\nwrote {out}")
    return rows
