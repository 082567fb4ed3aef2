"""Where one training epoch's time goes: the plain character LM of the epoch benchmark (float32,
hidden 256, batch 8, BPTT 35, 20,000 characters of the built-in text), one BLAS thread.

    python -m benchmarks.diagnostics.profile_epoch [--hidden 256] [--top 15]

Prints the wall time of one epoch of ``fit`` (after a warm-up epoch) and a cProfile table of two
more; the compiled kernels show up under the Python functions that call them
(``model.forward_batch``, ``model.backward``, ``cells.LSTMCell.backward``, ...). A diagnostic:
the README's speed table comes from ``benchmarks/run.py --cases epoch``.
"""

import argparse
import cProfile
import pstats
import time

from threadpoolctl import threadpool_limits

from benchmarks.common import epoch_config, epoch_corpus, epoch_model
from rnnreg import fit


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    corpus = epoch_corpus()
    model = epoch_model(corpus.vocab_size, hidden=args.hidden)
    config = epoch_config()
    quiet = lambda line: None  # noqa: E731
    with threadpool_limits(1):
        fit(model, corpus.train, None, config, log=quiet)  # warm-up
        started = time.perf_counter()
        fit(model, corpus.train, None, config, log=quiet)
        print(f"one epoch: {time.perf_counter() - started:.3f} s")
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(2):
            fit(model, corpus.train, None, config, log=quiet)
        profile.disable()
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
