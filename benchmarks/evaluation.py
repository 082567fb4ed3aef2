"""What validation adds to a training epoch: evaluating a corpus of documents (each read from a
zero state, side by side in batches), the whole validation text read exactly as one document (one
row: sequential by nature), and PyTorch users' approximation of reading it as ``batch_size``
parallel streams (``evaluate(as_streams=True)``).

    python -m benchmarks.evaluation [--rounds 7] [--threads 1 2] [--hidden 256]

The built-in text (20,000 training characters; validation of 1,000 characters, as in the epoch
benchmark, and of 10,000, rnnreg compare's default), float32, hidden 256, batch 8, BPTT 35, at
each thread count; training epoch and evaluations alternate, medians over the rounds. Evaluation
is forward only, about a third of a training step's work per character: a validation set half
the size of the training set cannot cost less than about a sixth of the epoch, however it is
read. A batch of four rows or fewer (one document; the last documents of a corpus) shares each
step among threads by hidden units, the rest by rows.
"""

import argparse
import statistics
import time

from threadpoolctl import threadpool_limits

from benchmarks.common import epoch_config, epoch_corpus, epoch_model, epoch_run
from rnnreg.training import evaluate


def _seconds(fn):
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _added(seconds, epoch):
    return f"{seconds:.3f} s | +{seconds / epoch:.0%}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--hidden", type=int, default=256)
    args = parser.parse_args()
    print(
        "| validation | documents | threads | training epoch | evaluation by document | added | "
        "as one document (exact) | added | as 8 streams (approximation) | added |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for eval_chars in (1000, 10000):
        corpus = epoch_corpus(eval_chars=eval_chars)
        model = epoch_model(corpus.vocab_size, hidden=args.hidden)
        starts = corpus.starts["val"]
        runs = {
            # (defaults bind this round's model and text to each timed call)
            "epoch": epoch_run(model, corpus.train, epoch_config()),
            "documents": lambda model=model, corpus=corpus, starts=starts: evaluate(
                model, corpus.val, 8, 35, starts=starts
            ),
            "one": lambda model=model, corpus=corpus: evaluate(model, corpus.val, 8, 35),
            "streams": lambda model=model, corpus=corpus: evaluate(model, corpus.val, 8, 35, as_streams=True),
        }
        for threads in args.threads:
            times = {key: [] for key in runs}
            with threadpool_limits(threads):
                runs["epoch"]()  # warm-up
                for _ in range(args.rounds):
                    for key, run in runs.items():
                        times[key].append(_seconds(run))
            median = {key: statistics.median(values) for key, values in times.items()}
            epoch = median["epoch"]
            print(
                f"| {corpus.val.size} characters | {len(starts)} | {threads} | {epoch:.3f} s | "
                f"{_added(median['documents'], epoch)} | {_added(median['one'], epoch)} | "
                f"{_added(median['streams'], epoch)} |"
            )


if __name__ == "__main__":
    main()
