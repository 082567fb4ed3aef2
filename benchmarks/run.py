"""Run rnnreg's benchmarks: `python benchmarks/run.py [--quick] [--json out.json]`."""
import sys

from rnnreg.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
