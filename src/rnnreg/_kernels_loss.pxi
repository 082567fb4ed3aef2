# Part of rnnreg/_kernels.pyx (included there, in order): loss.
# ----------------------------------------------------------------------------- loss
cdef double _softmax_cross_entropy(Py_ssize_t M, Py_ssize_t C, const floating* logits,
                                   const int64_t* targets, floating* dlogits) noexcept nogil:
    """Mean over rows of -log softmax(logits)[target]; dlogits = (softmax - onehot) / M."""
    cdef Py_ssize_t r, j
    cdef const floating* row
    cdef floating* out
    cdef floating top, scale
    cdef floating inv_m = <floating>(1.0 / M)
    cdef double total_exp, log_z, loss = 0
    for r in range(M):
        row = logits + r * C
        out = dlogits + r * C
        top = row[0]
        for j in range(1, C):
            if row[j] > top:
                top = row[j]
        if floating is float:
            total_exp = rn_exp_shifted_f(row, top, out, C)
        else:
            total_exp = rn_exp_shifted_d(row, top, out, C)
        log_z = log(total_exp)
        loss += log_z - (row[targets[r]] - top)
        scale = <floating>(1.0 / total_exp)
        for j in range(C):
            out[j] = out[j] * scale * inv_m
        out[targets[r]] -= inv_m
    return loss / M


cdef object _softmax_cross_entropy_typed(floating probe, logits, targets):
    cdef int tn = _typenum(probe)
    cdef const floating* lp = <const floating*>_array(logits, "logits", tn, 2)
    cdef Py_ssize_t r, M = _dim(logits, 0), C = _dim(logits, 1)
    _nonempty("logits", M * C)
    cdef const int64_t* tp = <const int64_t*>_array(targets, "targets", cnp.NPY_INT64, 1, M)
    for r in range(M):   # an id outside [0, C) would index outside the row
        if tp[r] < 0 or tp[r] >= C:
            raise ValueError(f"targets[{r}] = {tp[r]} is outside [0, {C})")
    dlogits = _empty(tn, M, C)
    cdef floating* dp = <floating*>_ptr(dlogits)
    cdef double loss
    with nogil:
        loss = _softmax_cross_entropy(M, C, lp, tp, dp)
    return loss, dlogits


def softmax_cross_entropy(logits, targets):
    """logits (M, C), targets (M,) int64 in [0, C) -> (mean cross-entropy as a float,
    dlogits (M, C) = (softmax - onehot) / M)."""
    if _is_float32(logits):
        return _softmax_cross_entropy_typed[float](0, logits, targets)
    return _softmax_cross_entropy_typed[double](0, logits, targets)
