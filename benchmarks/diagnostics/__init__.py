"""Diagnostics: measurements made to choose how a kernel works, not headline figures
(``python -m benchmarks.diagnostics.NAME``): where an epoch's time goes (``epoch_kernels``,
``profile_epoch``), what a call costs (``call_overhead``), how products split (``products``,
``small_products``) and how two threads share a time loop (``step_split``)."""
