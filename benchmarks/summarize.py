"""Several runs of `python benchmarks/run.py --json` in one table: `python benchmarks/summarize.py a.json b.json ...`

On a shared machine one run's ratios move by tens of percent (the NumPy twin's Python-heavy loop
suffers most from a busy neighbour). This prints, for every case, the median over the runs and
the range [lowest, highest] of the speed-up over the NumPy twin, of the ratio to PyTorch, and of
the fraction of the machine's limit; the runs themselves stay in their JSON files.
"""
import json
import statistics
import sys


def _cell(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return ""
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.median(values))} [{fmt(min(values))}–{fmt(max(values))}]"


def summarize(paths, threads=None):
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append(json.load(f)["results"])
    keys, rows = [], {}
    for results in runs:
        for r in results:
            key = (r["case"], r["size"], r["shape"], r["dtype"], r["threads"])
            if key not in rows:
                keys.append(key)
                rows[key] = []
            rows[key].append(r)
    times = lambda v: f"{v:.1f}×"  # noqa: E731
    percent = lambda v: f"{100 * v:.0f}%"  # noqa: E731
    lines = [f"{len(paths)} runs; median [lowest–highest]", "",
             "| case | size | shape | dtype | threads | speed-up vs NumPy twin | vs PyTorch | "
             "of limit | ceiling |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key in keys:
        if threads is not None and key[4] != threads:
            continue
        found = rows[key]
        lines.append("| " + " | ".join(map(str, key)) + " | "
                     + " | ".join([_cell([r["speedup"] for r in found], times),
                                   _cell([r.get("vs_torch") for r in found], lambda v: f"{v:.2f}×"),
                                   _cell([r.get("fraction_of_limit") for r in found], percent),
                                   _cell([r.get("speedup_ceiling") for r in found], times)])
                     + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(summarize(sys.argv[1:]))
