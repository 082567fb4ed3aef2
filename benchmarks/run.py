"""Time rnnreg's compiled kernels against their NumPy twins (and PyTorch CPU when installed).

    python -m benchmarks.run [--quick] [--cases ...] [--sizes ...] [--threads 1 2] [--json out.json]

The harness itself is ``benchmarks/kernels.py`` (see its docstring for what is measured).
"""

import argparse
import sys

from benchmarks import kernels


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, few repeats")
    p.add_argument("--cases", nargs="+", choices=list(kernels.CASES))
    p.add_argument("--sizes", nargs="+", choices=["tiny", "small", "medium", "large"])
    p.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    p.add_argument(
        "--threads",
        nargs="+",
        type=int,
        default=[1, 2],
        help="BLAS (and PyTorch) thread counts to run with (pinned by threadpoolctl)",
    )
    p.add_argument("--repeats", type=int, default=None, help="samples per figure (median)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    kernels.run(
        quick=args.quick,
        cases=args.cases,
        sizes=args.sizes,
        dtypes=args.dtypes,
        threads=tuple(args.threads),
        repeats=args.repeats,
        out=args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
