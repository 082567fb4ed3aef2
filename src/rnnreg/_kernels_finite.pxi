# Part of rnnreg/_kernels.pyx (included there, in order): finiteness and sums of squares.
# ----------------------------------------------------------------------------- validation helper
cdef bint _finite_typed(floating probe, object arr) except -1:
    cdef const floating* p = <const floating*>_array(arr, "arr", _typenum(probe), ANY)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>arr)
    cdef bint ok
    if n < 16384:   # releasing the GIL costs more than so short a pass
        return _finite_run(p, n)
    with nogil:
        ok = _finite_run(p, n)
    return ok


cdef bint _finite(object arr) except -1:
    """Whether every entry of an accepted float32/float64 array is finite: one vectorized pass."""
    if _is_float32(arr):
        return _finite_typed[float](0, arr)
    return _finite_typed[double](0, arr)


def all_finite(arr):
    """Whether every entry of a C-contiguous float32/float64 array is finite (for the wrappers'
    input checks: one vectorized pass, no temporary array)."""
    return _finite(arr)


cdef double _sum_of_squares_typed(floating probe, object arr) except? -1:
    cdef const floating* p = <const floating*>_array(arr, "arr", _typenum(probe), ANY)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>arr)
    cdef double total
    with nogil:
        if floating is float:
            total = rn_sum_squares_f(p, n)
        else:
            total = rn_sum_squares_d(p, n)
    return total


def sum_of_squares(arr):
    """Σ x² over a C-contiguous float32/float64 array, summed in float64 (inf when a value or
    the sum is infinite, NaN when one is NaN): the gradient norm of clipping, in one pass."""
    if _is_float32(arr):
        return _sum_of_squares_typed[float](0, arr)
    return _sum_of_squares_typed[double](0, arr)


cdef object _sums_of_squares_typed(floating probe, object arr, object ranges):
    cdef const floating* p = <const floating*>_array(arr, "arr", _typenum(probe), ANY)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>arr)
    cdef const int64_t* r = _ranges(ranges, "ranges", n, False)
    cdef Py_ssize_t k, count = _dim(ranges, 0)
    out = _empty(cnp.NPY_DOUBLE, count)
    cdef double* totals = <double*>_ptr(out)
    with nogil:
        for k in range(count):
            if floating is float:
                totals[k] = rn_sum_squares_f(p + r[2 * k], r[2 * k + 1] - r[2 * k])
            else:
                totals[k] = rn_sum_squares_d(p + r[2 * k], r[2 * k + 1] - r[2 * k])
    return out


def sums_of_squares(arr, ranges):
    """Σ x² over each [start, stop) range of the flattened C-contiguous float32/float64 ``arr``
    (``ranges``: int64 (k, 2), any order, overlaps allowed), each summed in float64 exactly as
    ``sum_of_squares`` sums that range as an array of its own: a float64 array (k,). One call
    for the squared norms of every parameter of a packed buffer (gradient clipping, the L2
    penalty), the same values as one call per parameter."""
    if _is_float32(arr):
        return _sums_of_squares_typed[float](0, arr, ranges)
    return _sums_of_squares_typed[double](0, arr, ranges)


def first_nonfinite(arrays):
    """The index in ``arrays`` (a tuple or list; None entries are skipped) of the first array
    holding NaN or inf, or -1 when all are finite: one call for all the finiteness checks of a
    public function's inputs and results. Each array must be C-contiguous, aligned, native
    float32/float64 (TypeError otherwise)."""
    cdef Py_ssize_t i = 0
    for arr in arrays:
        if arr is not None and not _finite(arr):
            return i
        i += 1
    return -1
