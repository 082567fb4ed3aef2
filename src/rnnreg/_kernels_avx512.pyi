from ._kernels import *  # noqa: F401,F403  (the same source, built for AVX-512)
from ._kernels import _set_blas_int_max as _set_blas_int_max
