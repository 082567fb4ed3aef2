"""Several runs of `python -m benchmarks.run --json` in one table.

    python -m benchmarks.summarize a.json b.json ...

On a shared machine one run's ratios move by tens of percent (Python-heavy loops suffer most
from a busy neighbour). This prints, for every case, the median over the runs and the range
[lowest, highest] of the public functions' speed-up over textbook NumPy, over the NumPy twin and
over PyTorch; the runs themselves stay in their JSON files.
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
    times = lambda v: f"{v:.2f}×"  # noqa: E731
    lines = [
        f"{len(paths)} runs; median [lowest–highest]",
        "",
        "| case | size | shape | dtype | threads | vs textbook NumPy | vs NumPy twin | vs PyTorch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in keys:
        if threads is not None and key[4] != threads:
            continue
        found = rows[key]
        lines.append(
            "| "
            + " | ".join(map(str, key))
            + " | "
            + " | ".join(
                [
                    _cell([r.get("speedup") for r in found], times),
                    _cell([r.get("vs_twin") for r in found], times),
                    _cell([r.get("vs_torch") for r in found], lambda v: f"{v:.2f}×"),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(summarize(sys.argv[1:]))
