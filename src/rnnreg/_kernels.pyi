"""Type stubs of the compiled kernels (rnnreg/_kernels.pyx; rnnreg/_kernels_avx2 is the same
source built for AVX2). Arrays are C-contiguous, aligned, native-order float32 or float64 (one
dtype per call) unless said otherwise; every function checks that and the sizes itself."""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ._conventions import GRUCache, LSTMCache

FloatArray = npt.NDArray[np.floating]

DEBUG_BUILD: bool
GATE_ORDER: tuple[str, str, str, str]
LSTM_LAYER_NORM_PARAMS: tuple[str, ...]
LN_SAVED: tuple[str, ...]
GRU_GATE_ORDER: tuple[str, str, str]
GRU_LAYER_NORM_PARAMS: tuple[str, ...]
GRU_LN_SAVED: tuple[str, ...]

def cpu_has_avx2_fma() -> bool: ...
def cpu_has_avx512() -> bool: ...
def _set_blas_int_max(limit: int) -> int: ...
def _set_thread_limit(limit: int) -> int: ...
def _thread_info() -> dict[str, Any]: ...
def _threads_by_units(N: int, H: int, layer_norm: bool, n_threads: int) -> int: ...
def _after_fork_in_child() -> None: ...
def _set_array_cache_limit(limit: int) -> int: ...
def _array_cache_info() -> tuple[int, int]: ...

# report_finite=True adds a last element: whether the results are all finite (checked as they
# are written).
def layer_norm_forward(
    x: FloatArray, gamma: FloatArray, beta: FloatArray, eps: float, report_finite: bool = False
) -> tuple[Any, ...]: ...
def layer_norm_backward(
    dout: FloatArray, xhat: FloatArray, rstd: FloatArray, gamma: FloatArray, report_finite: bool = False
) -> tuple[Any, ...]: ...
def dropout_forward(
    x: FloatArray,
    keep_prob: float,
    rng: np.random.Generator,
    report_finite: bool = False,
    out: FloatArray | None = None,
    mask: FloatArray | None = None,
) -> tuple[Any, ...]: ...
def draw_mask(
    n: int, keep_prob: float, rng: np.random.Generator, dtype: Any = ..., scaled: bool = True
) -> FloatArray: ...
def dropout_backward(dout: FloatArray, mask: FloatArray) -> FloatArray: ...
def lstm_forward(
    x: FloatArray,
    h0: FloatArray,
    c0: FloatArray | None,
    Wx: FloatArray,
    Wh: FloatArray,
    b: FloatArray,
    layer_norm: Mapping[str, FloatArray] | None,
    recurrent_mask: FloatArray | None,
    eps: float,
    zoneout_h: FloatArray | None = None,
    zoneout_c: FloatArray | None = None,
) -> LSTMCache: ...
def lstm_backward(
    dh: FloatArray,
    dc_final: FloatArray | None,
    cache: LSTMCache,
    need_dx: bool = True,
    dW: FloatArray | None = None,
) -> dict[str, FloatArray | None]: ...
def lstm_step_forward(
    x: FloatArray, prev_h: FloatArray, prev_c: FloatArray, Wx: FloatArray, Wh: FloatArray, b: FloatArray
) -> tuple[FloatArray, FloatArray, LSTMCache]: ...
def lstm_step_backward(
    dnext_h: FloatArray, dnext_c: FloatArray, cache: LSTMCache
) -> tuple[FloatArray, ...]: ...
def gru_forward(
    x: FloatArray,
    h0: FloatArray,
    Wx: FloatArray,
    Wh: FloatArray,
    b: FloatArray,
    bn: FloatArray,
    layer_norm: Mapping[str, FloatArray] | None = None,
    recurrent_mask: FloatArray | None = None,
    eps: float = 1e-5,
    zoneout_h: FloatArray | None = None,
) -> GRUCache: ...
def gru_backward(
    dh: FloatArray, cache: GRUCache, need_dx: bool = True, dW: FloatArray | None = None
) -> dict[str, FloatArray | None]: ...
def matmul(
    a: FloatArray, b: FloatArray, trans_a: bool = ..., trans_b: bool = ..., out: FloatArray | None = None
) -> FloatArray: ...
def softmax_cross_entropy(logits: FloatArray, targets: npt.NDArray[np.int64]) -> tuple[float, FloatArray]: ...
def all_finite(arr: FloatArray) -> bool: ...
def sum_of_squares(arr: FloatArray) -> float: ...
def sums_of_squares(arr: FloatArray, ranges: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]: ...
def new_buffer(n: int, dtype: npt.DTypeLike) -> FloatArray: ...
def first_nonfinite(arrays: Sequence[FloatArray | None]) -> int: ...
def adam_update(
    p: FloatArray,
    g: FloatArray,
    m: FloatArray,
    v: FloatArray,
    step_size: float,
    beta1: float,
    beta2: float,
    eps: float,
    decay: float,
    l2: float,
    decayed: npt.NDArray[np.int64] | None = None,
) -> None: ...
