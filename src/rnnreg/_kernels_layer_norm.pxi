# Part of rnnreg/_kernels.pyx (included there, in order): layer norm.
# ----------------------------------------------------------------------------- layer norm
cdef object _layer_norm_forward_typed(floating probe, x, gamma, beta, double eps,
                                      bint report_finite):
    cdef int tn = _typenum(probe)
    cdef const floating* xp = <const floating*>_array(x, "x", tn, 2)
    cdef Py_ssize_t r, m = _dim(x, 0), n = _dim(x, 1)
    _nonempty("x", m * n)
    cdef const floating* gp = <const floating*>_array(gamma, "gamma", tn, 1, n)
    cdef const floating* bp = <const floating*>_array(beta, "beta", tn, 1, n)
    _positive_eps(eps)
    out, xhat, rstd = _empty(tn, m, n), _empty(tn, m, n), _empty(tn, m)
    cdef floating* op = <floating*>_ptr(out)
    cdef floating* hp = <floating*>_ptr(xhat)
    cdef floating* rp = <floating*>_ptr(rstd)
    cdef Py_ssize_t nonfinite_rows = 0
    cdef int n_threads = _threads_for(m * n)
    with nogil:
        for r in prange(m, num_threads=n_threads, schedule="static"):
            _ln_row_forward(xp + r * n, n, gp, bp, eps, op + r * n, hp + r * n, rp + r)
            if report_finite:   # the row is still in cache: a cheap second look
                nonfinite_rows += 0 if _finite_run(op + r * n, n) else 1
    if report_finite:
        return out, _frozen(xhat), _frozen(rstd), nonfinite_rows == 0
    return out, _frozen(xhat), _frozen(rstd)


def layer_norm_forward(x, gamma, beta, double eps, bint report_finite=False):
    """x (M, F), gamma (F,), beta (F,), eps > 0 -> (out (M, F), xhat (M, F), rstd (M,)); xhat
    and rstd, saved for the backward pass, are read-only. report_finite: a fourth element tells
    whether out is all finite (checked row by row as it is written)."""
    if _is_float32(x):
        return _layer_norm_forward_typed[float](0, x, gamma, beta, eps, report_finite)
    return _layer_norm_forward_typed[double](0, x, gamma, beta, eps, report_finite)


cdef object _layer_norm_backward_typed(floating probe, dout, xhat, rstd, gamma,
                                       bint report_finite):
    cdef int tn = _typenum(probe)
    cdef const floating* dp = <const floating*>_array(dout, "dout", tn, 2)
    cdef Py_ssize_t r, m = _dim(dout, 0), n = _dim(dout, 1)
    _nonempty("dout", m * n)
    cdef const floating* hp = <const floating*>_array(xhat, "xhat", tn, 2, m, n)
    cdef const floating* rp = <const floating*>_array(rstd, "rstd", tn, 1, m)
    cdef const floating* gp = <const floating*>_array(gamma, "gamma", tn, 1, n)
    dx = _empty(tn, m, n)
    dgamma, dbeta = _zeros(cnp.NPY_DOUBLE, n), _zeros(cnp.NPY_DOUBLE, n)
    cdef floating* dxp = <floating*>_ptr(dx)
    cdef double* dgp = <double*>_ptr(dgamma)
    cdef double* dbp = <double*>_ptr(dbeta)
    # The gain and bias gradients are sums over rows: each block of LN_BLOCK_ROWS rows sums
    # into its own pair of rows, added in block order after — the same sums on any number of
    # threads. (One block, the rows in order, up to LN_BLOCK_ROWS rows.)
    cdef Py_ssize_t blocks = (m + LN_BLOCK_ROWS - 1) // LN_BLOCK_ROWS, block, r0, r1
    cdef Py_ssize_t nonfinite_rows = 0
    cdef int n_threads = _threads_for(m * n) if blocks > 1 else 1
    parts = _zeros(cnp.NPY_DOUBLE, blocks, 2 * n) if blocks > 1 else None
    cdef double* pp = <double*>_ptr(parts) if blocks > 1 else NULL
    with nogil:
        if blocks == 1:
            nonfinite_rows = _ln_rows_backward(dp, hp, rp, gp, n, dxp, 0, m, dgp, dbp,
                                               report_finite)
        else:
            for block in prange(blocks, num_threads=n_threads, schedule="static"):
                r0 = block * LN_BLOCK_ROWS
                r1 = m if m - r0 < LN_BLOCK_ROWS else r0 + LN_BLOCK_ROWS
                nonfinite_rows += _ln_rows_backward(dp, hp, rp, gp, n, dxp, r0, r1,
                                                    pp + block * 2 * n, pp + block * 2 * n + n,
                                                    report_finite)
            _add_parts(pp, blocks, 2 * n, n, dgp)
            _add_parts(pp + n, blocks, 2 * n, n, dbp)
    dgamma, dbeta = _as_dtype(dgamma, tn), _as_dtype(dbeta, tn)
    if report_finite:
        return dx, dgamma, dbeta, nonfinite_rows == 0 and _finite(dgamma) and _finite(dbeta)
    return dx, dgamma, dbeta


cdef Py_ssize_t _ln_rows_backward(const floating* dp, const floating* hp, const floating* rp,
                                  const floating* gp, Py_ssize_t n, floating* dxp, Py_ssize_t r0,
                                  Py_ssize_t r1, double* dgamma, double* dbeta,
                                  bint report_finite) noexcept nogil:
    """Rows r0 <= r < r1 of the layer-norm backward, their gain and bias gradients summed into
    dgamma, dbeta; returns how many of the rows' dx are not all finite (0 unless asked)."""
    cdef Py_ssize_t r, bad = 0
    for r in range(r0, r1):
        _ln_row_backward(dp + r * n, hp + r * n, rp[r], gp, n, dxp + r * n, dgamma, dbeta)
        if report_finite and not _finite_run(dxp + r * n, n):
            bad += 1
    return bad


def layer_norm_backward(dout, xhat, rstd, gamma, bint report_finite=False):
    """dout (M, F), xhat (M, F), rstd (M,), gamma (F,) -> (dx (M, F), dgamma (F,), dbeta (F,));
    report_finite: a fourth element tells whether all three are finite."""
    if _is_float32(dout):
        return _layer_norm_backward_typed[float](0, dout, xhat, rstd, gamma, report_finite)
    return _layer_norm_backward_typed[double](0, dout, xhat, rstd, gamma, report_finite)
