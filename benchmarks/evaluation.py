"""What validation adds to a training epoch: evaluating a corpus of documents (each read from a
zero state, side by side in batches) and, for comparison, PyTorch users' approximation of reading
the validation stream as ``batch_size`` parallel streams (``evaluate(as_streams=True)``).

    python benchmarks/evaluation.py [--rounds 7]

The built-in text (20,000 training characters; validation of 1,000 characters, as in the epoch
benchmark, and of 10,000, rnnreg compare's default), float32, hidden 256, batch 8, BPTT 35, one
thread; training epoch and evaluations alternate, medians over the rounds. Evaluation is forward
only, about a third of a training step's work per character: a validation set half the size of
the training set cannot cost less than about a sixth of the epoch, however it is read.
"""
import argparse
import statistics
import time

from threadpoolctl import threadpool_limits

from rnnreg import RegularizedLSTM, TrainConfig, fit
from rnnreg.data import load_stdlib_docstrings
from rnnreg.training import evaluate


def _seconds(fn):
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print("| validation | documents | training epoch | evaluation by document | added | "
          "as 8 streams (approximation) | added |")
    print("|---|---|---|---|---|---|---|")
    for eval_chars in (1000, 10000):
        corpus = load_stdlib_docstrings(train_chars=20000, eval_chars=eval_chars)
        model = RegularizedLSTM(corpus.vocab_size, 256, seed=0, dtype="float32")
        config = TrainConfig(epochs=1, progress=False)
        starts = corpus.starts["val"]
        epoch = lambda: fit(model, corpus.train, None, config, log=lambda line: None)  # noqa: E731
        by_document = lambda: evaluate(model, corpus.val, 8, 35, starts=starts)  # noqa: E731
        streams = lambda: evaluate(model, corpus.val, 8, 35, as_streams=True)  # noqa: E731
        times = {"epoch": [], "documents": [], "streams": []}
        with threadpool_limits(1):
            epoch()   # warm-up
            for _ in range(args.rounds):
                times["epoch"].append(_seconds(epoch))
                times["documents"].append(_seconds(by_document))
                times["streams"].append(_seconds(streams))
        median = {key: statistics.median(values) for key, values in times.items()}
        print(f"| {corpus.val.size} characters | {len(starts)} | {median['epoch']:.3f} s | "
              f"{median['documents']:.3f} s | +{median['documents'] / median['epoch']:.0%} | "
              f"{median['streams']:.3f} s | +{median['streams'] / median['epoch']:.0%} |")


if __name__ == "__main__":
    main()
