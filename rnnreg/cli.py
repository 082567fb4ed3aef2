"""Command line: ``rnnreg bench``, ``rnnreg train``, ``rnnreg compare`` (also ``python -m rnnreg``)."""
import argparse
import sys


def _bench(args):
    from . import bench
    bench.run(quick=args.quick, sizes=args.sizes, dtypes=args.dtypes, out=args.json)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="rnnreg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("bench", help="time the compiled kernels against their NumPy twins")
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, few repeats")
    p.add_argument("--sizes", nargs="+", choices=["tiny", "small", "medium", "large"])
    p.add_argument("--dtypes", nargs="+", default=["float64", "float32"],
                   choices=["float64", "float32"])
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.set_defaults(func=_bench)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
