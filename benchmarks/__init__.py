"""rnnreg's benchmarks: what users get, timed against what they would otherwise write.

Run each from the repository root as a module (``python -m benchmarks.run --cases epoch``); the
records they write are indexed in ``benchmarks/results/README.md``.

The suite — the figures the README and the guides quote:

* ``run`` (+ ``kernels``, ``textbook``): the kernels and a training epoch against textbook NumPy
  and PyTorch (``nn.LSTM``, and the TorchScript loops its users write where none exists);
* ``epoch_bound``: each epoch's share of the machine's BLAS peak, and the largest ratio to
  PyTorch any code could reach;
* ``regularizers``: what zoneout and AWD-LSTM's regularizers cost in an epoch;
* ``learning``: how fast models learn under each initialization and regularizer;
* ``evaluation``, ``sweep``, ``pruning``: validation, sweeps on joblib and Dask, pruning;
* ``readme_tables`` and ``summarize``: the tables in the docs, copied from the records.

The diagnostics (``benchmarks.diagnostics``): measurements made to choose how a kernel works —
where an epoch's time goes, per-call overhead, product splits, the thread split of a time loop.

``benchmarks.common`` holds what they share: the epoch model every epoch benchmark times, and
the timing helpers.
"""
