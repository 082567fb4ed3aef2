"""How much faster does a sweep run on two local workers than on one, what does each trial cost
the engine (joblib's processes, a local Dask cluster), and are the records the same on both?

    python -m benchmarks.sweep                  # 8 trials of the compare-size model (~2 min)
    python -m benchmarks.sweep --epochs 1 --overhead-trials 8    # a quicker look

The 8 trials: ``rnnreg compare``'s model (character LSTM, hidden 256, float32, 20,000 training
characters of the standard library's docstrings) over dropout 0/0.2/0.4/0.6 × layer norm off/on,
``--epochs`` epochs each. Timed: ``rnnreg.sweep`` with ``jobs=1`` (the trials one after another
in this process), ``jobs=2`` (two joblib/loky processes), and on a ``distributed.LocalCluster``
of two single-threaded worker processes. The per-trial overhead is measured on many trivial
trials (one epoch of a hidden-8 model on the synthetic task): wall time × workers minus the time
spent inside the trials, per trial. Writes JSON and a markdown table to ``--out``.
"""

import argparse
import json
import os
import platform
import statistics
import time

from rnnreg.sweeps import TIMING_FIELDS, sweep

GRID = {"dropout": [0.0, 0.2, 0.4, 0.6], "layer-norm": [False, True]}
TRIVIAL = {"data": ["synthetic"], "train_size": 40, "epochs": 1, "hidden": 8}


def comparable(record):
    out = {k: v for k, v in record.items() if k not in TIMING_FIELDS}
    out["history"] = {k: v for k, v in (out["history"] or {}).items() if k not in ("seconds", "wall_seconds")}
    return out


def timed(**kwargs):
    started = time.perf_counter()
    records = sweep(progress=False, **kwargs)
    return time.perf_counter() - started, records


def overhead_per_trial(wall, records, workers):
    inside = sum(r["seconds"] for r in records)
    return (wall * workers - inside) / len(records)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--overhead-trials", type=int, default=32)
    parser.add_argument("--out", default="benchmarks/results/sweep")
    args = parser.parse_args()
    import dask
    from distributed import Client, LocalCluster

    # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which makes glibc hand
    # every large array back to the OS and page it in afresh: numpy-heavy trials ran 1.4x
    # slower (4 trials: 13.7 s vs 9.4 s). Off, as the sweeps guide tells cluster users.
    dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})

    settings = {"epochs": args.epochs}
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "epochs": args.epochs,
    }
    one, serial = timed(grid=GRID, settings=settings, jobs=1)
    two, local = timed(grid=GRID, settings=settings, jobs=2)
    trivial_grid = {"seed": list(range(args.overhead_trials))}
    joblib_wall, joblib_records = timed(grid=trivial_grid, settings=TRIVIAL, jobs=2)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        dask_wall, on_dask = timed(grid=GRID, settings=settings, scheduler=client)
        trivial_dask_wall, trivial_dask = timed(grid=trivial_grid, settings=TRIVIAL, scheduler=client)
    identical = (
        [comparable(a) for a in on_dask] == [comparable(b) for b in local] == [comparable(c) for c in serial]
    )
    results.update(
        {
            "trials": len(serial),
            "jobs1_seconds": one,
            "jobs2_seconds": two,
            "dask2_seconds": dask_wall,
            "speedup_2_vs_1": one / two,
            "median_trial_seconds_jobs1": statistics.median(r["seconds"] for r in serial),
            "median_trial_seconds_jobs2": statistics.median(r["seconds"] for r in local),
            "overhead_trials": args.overhead_trials,
            "joblib_overhead_per_trial": overhead_per_trial(joblib_wall, joblib_records, 2),
            "dask_overhead_per_trial": overhead_per_trial(trivial_dask_wall, trivial_dask, 2),
            "records_identical_serial_joblib_dask": identical,
            "best": min(serial, key=lambda r: r["best_val_loss"])["params"],
        }
    )
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "sweep-bench.json"), "w") as f:
        json.dump(results, f, indent=1)
    table = "\n".join(
        [
            f"{len(serial)} trials, {args.epochs} epochs each, on {results['machine']}:",
            "",
            "| engine | wall time | speed-up over 1 worker | per-trial overhead (trivial trials) |",
            "|---|---|---|---|",
            f"| 1 worker (in process) | {one:.1f} s | 1.00× | — |",
            f"| joblib, 2 processes | {two:.1f} s | {one / two:.2f}× | "
            f"{results['joblib_overhead_per_trial'] * 1e3:.0f} ms |",
            f"| Dask LocalCluster, 2 workers | {dask_wall:.1f} s | {one / dask_wall:.2f}× | "
            f"{results['dask_overhead_per_trial'] * 1e3:.0f} ms |",
            "",
            f"Records identical (all but seconds/worker) in process, on joblib and on Dask: {identical}",
        ]
    )
    with open(os.path.join(args.out, "sweep-bench.md"), "w") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
