# Part of rnnreg/_kernels.pyx (included there, in order): optimizer.
# ----------------------------------------------------------------------------- optimizer
cdef void _adam_update(Py_ssize_t n, floating* p, const floating* g, floating* m, floating* v,
                       floating step_size, floating beta1, floating beta2,
                       floating one_minus_b1, floating one_minus_b2, floating eps,
                       floating decay, floating l2) noexcept nogil:
    # The NumPy twin's operations in the same order (and no contraction into FMA, see setup.py),
    # with every scalar rounded once from double as NumPy does, so the two agree bit for bit.
    cdef Py_ssize_t k
    cdef floating grad
    for k in range(n):
        grad = g[k] + l2 * p[k]
        m[k] = beta1 * m[k] + one_minus_b1 * grad
        v[k] = beta2 * v[k] + one_minus_b2 * (grad * grad)
        p[k] = p[k] * decay - (step_size * m[k]) / (_sqrt(v[k]) + eps)


cdef int _finite_scalar(str name, double value, double low, bint low_open, double high,
                        bint high_open) except -1:
    if not ((value > low if low_open else value >= low)
            and (value < high if high_open else value <= high)):
        raise ValueError(f"{name} must be in {'(' if low_open else '['}{low}, {high}"
                         f"{')' if high_open else ']'}, got {value!r}")
    return 0


cdef void _adam_update_span(Py_ssize_t lo, Py_ssize_t hi, const int64_t* decayed,
                            Py_ssize_t n_decayed, floating* p, const floating* g, floating* m,
                            floating* v, floating step_size, floating beta1, floating beta2,
                            floating b1c, floating b2c, floating eps, floating decay,
                            floating l2) noexcept nogil:
    # Elements [lo, hi): those inside a range of ``decayed`` (sorted, disjoint) take the weight
    # decay, the others none (decay 1, l2 0, as the optimizer passes for a parameter it does not
    # decay). decayed NULL: every element takes it.
    # (b1c, b2c: 1 - beta1 and 1 - beta2, each rounded once from double as NumPy rounds them.)
    cdef Py_ssize_t k, a, b, at = lo
    if decayed == NULL:
        _adam_update(hi - lo, p + lo, g + lo, m + lo, v + lo, step_size, beta1, beta2, b1c, b2c,
                     eps, decay, l2)
        return
    for k in range(n_decayed):
        a = decayed[2 * k] if decayed[2 * k] > lo else lo
        b = decayed[2 * k + 1] if decayed[2 * k + 1] < hi else hi
        if b <= a:
            continue
        if a > at:
            _adam_update(a - at, p + at, g + at, m + at, v + at, step_size, beta1, beta2, b1c,
                         b2c, eps, 1, 0)
        _adam_update(b - a, p + a, g + a, m + a, v + a, step_size, beta1, beta2, b1c, b2c, eps,
                     decay, l2)
        at = b
    if hi > at:
        _adam_update(hi - at, p + at, g + at, m + at, v + at, step_size, beta1, beta2, b1c, b2c,
                     eps, 1, 0)


cdef object _adam_update_typed(floating probe, p, g, m, v, double step_size, double beta1,
                               double beta2, double eps, double decay, double l2, decayed):
    cdef int tn = _typenum(probe)
    cdef floating* pp = <floating*>_array(p, "p", tn, ANY, ANY, ANY, ANY, True)
    cdef const floating* gp = <const floating*>_same_shape(g, "g", tn, p, "p")
    cdef floating* mp = <floating*>_same_shape(m, "m", tn, p, "p", True)
    cdef floating* vp = <floating*>_same_shape(v, "v", tn, p, "p", True)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>p)
    cdef const int64_t* ranges = NULL
    cdef Py_ssize_t n_ranges = 0
    if decayed is not None:
        ranges = _ranges(decayed, "decayed", n, True)
        n_ranges = _dim(decayed, 0)
    # A NaN or infinite scalar would turn every weight into NaN without a word.
    _finite_scalar("step_size", step_size, 0, False, INFINITY, True)
    _finite_scalar("beta1", beta1, 0, False, 1, True)
    _finite_scalar("beta2", beta2, 0, False, 1, True)
    _finite_scalar("eps", eps, 0, True, INFINITY, True)
    _finite_scalar("decay", decay, -INFINITY, True, INFINITY, True)
    _finite_scalar("l2", l2, 0, False, INFINITY, True)
    # Each element's update reads that element alone, so threads share blocks of them and the
    # result is the same on any number of threads.
    cdef int n_threads = _threads_for(n)
    cdef Py_ssize_t part, lo, hi
    with nogil:
        for part in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
            lo = part * n // n_threads
            hi = (part + 1) * n // n_threads
            _adam_update_span(lo, hi, ranges, n_ranges, pp, gp, mp, vp, <floating>step_size,
                              <floating>beta1, <floating>beta2, <floating>(1 - beta1),
                              <floating>(1 - beta2), <floating>eps, <floating>decay, <floating>l2)


def adam_update(p, g, m, v, double step_size, double beta1, double beta2, double eps,
                double decay, double l2, decayed=None):
    """One Adam step in place on arrays of one shape (any number of axes): m, v are the moment
    estimates; with grad = g + l2 * p (coupled L2 weight decay, l2 = 0 for none),
    m = beta1 m + (1 - beta1) grad, v = beta2 v + (1 - beta2) grad², and
    p = p * decay - step_size * m / (sqrt(v) + eps). ``decay`` is 1 - lr * weight_decay for
    decoupled weight decay (AdamW), else 1. Scalars must be finite (step_size, l2 >= 0,
    betas in [0, 1), eps > 0). ``decayed``: None (decay and l2 act on every element), or an
    int64 array (k, 2) of sorted, disjoint [start, stop) ranges of the flattened arrays where
    they act — elsewhere the step is the same with decay 1 and l2 0 (every parameter of a
    packed buffer in one call, weight decay on the weights alone)."""
    if _is_float32(p):
        _adam_update_typed[float](0, p, g, m, v, step_size, beta1, beta2, eps, decay, l2, decayed)
    else:
        _adam_update_typed[double](0, p, g, m, v, step_size, beta1, beta2, eps, decay, l2, decayed)
