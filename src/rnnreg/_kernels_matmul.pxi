# Part of rnnreg/_kernels.pyx (included there, in order): matrix product.
# ----------------------------------------------------------------------------- matrix product
cdef object _matmul_typed(floating probe, a, b, bint trans_a, bint trans_b, out):
    cdef int tn = _typenum(probe)
    cdef const floating* ap = <const floating*>_array(a, "a", tn, 2)
    cdef const floating* bp = <const floating*>_array(b, "b", tn, 2)
    cdef Py_ssize_t m = _dim(a, 1) if trans_a else _dim(a, 0)
    cdef Py_ssize_t k = _dim(a, 0) if trans_a else _dim(a, 1)
    cdef Py_ssize_t k_b = _dim(b, 1) if trans_b else _dim(b, 0)
    cdef Py_ssize_t n = _dim(b, 0) if trans_b else _dim(b, 1)
    cdef Py_ssize_t lda = _dim(a, 1), ldb = _dim(b, 1)
    if k != k_b:
        raise ValueError(f"a and b do not chain: op(a) has {k} columns, op(b) has {k_b} rows")
    _nonempty("a", m * k)
    _nonempty("b", k * n)
    if trans_a and trans_b and not _fits_blas(m, n, k, lda, ldb, n):
        raise ValueError("matmul with both operands transposed needs every dimension below "
                         f"{_blas_int_max}; transpose the product instead (b @ a)^T")
    if out is None:
        out = _empty(tn, m, n)
    else:
        _array(out, "out", tn, 2, m, n, ANY, True)
        _disjoint_from(out, "out", [a, b])
    cdef floating* op = <floating*>_ptr(out)
    cdef int n_threads = _acquire_threads()
    with nogil:
        _product_split(n_threads, trans_a, trans_b, m, n, k, ap, lda, bp, ldb, op, n)
    _release_threads()
    return out


def matmul(a, b, bint trans_a=False, bint trans_b=False, out=None):
    """op(a) @ op(b) with op = transpose when asked, on the BLAS the LSTM kernels use — so that a
    whole training step runs on one BLAS thread pool (NumPy and SciPy each bring their own
    OpenBLAS, and two pools spinning on the same cores slow each other down). ``out``: a
    C-contiguous array of the product's shape and dtype, sharing no memory with a or b, to
    write it into (a gradient's place in a packed buffer); returned."""
    if _is_float32(a):
        return _matmul_typed[float](0, a, b, trans_a, trans_b, out)
    return _matmul_typed[double](0, a, b, trans_a, trans_b, out)
