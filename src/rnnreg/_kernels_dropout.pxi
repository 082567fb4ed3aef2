# Part of rnnreg/_kernels.pyx (included there, in order): dropout.
# ----------------------------------------------------------------------------- dropout
cdef enum:
    DROPOUT_BLOCK = 4096   # elements per block of draws (a multiple of 4)


cdef inline void _draw_uniforms(bitgen_t* bitgen, uint16_t* uniforms, Py_ssize_t n) noexcept nogil:
    """The next n 16-bit uniforms of the dropout rule (_conventions.dropout_threshold): four per
    64-bit draw, lowest bits first; a last partial draw fills uniforms up to a multiple of 4."""
    cdef uint64_t raw
    cdef Py_ssize_t k, j
    for k in range(0, n, 4):
        raw = bitgen.next_uint64(bitgen.state)
        for j in range(4):
            uniforms[k + j] = <uint16_t>((raw >> (16 * j)) & 0xFFFF)


cdef int _check_mask_arguments(double keep_prob, rng) except -1:
    if not (keep_prob > 0 and keep_prob <= 1):
        raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return 0


cdef inline void _dropout_block(const floating* x, floating* out, floating* mask, Py_ssize_t n,
                                const uint16_t* uniforms, uint32_t threshold,
                                floating scale) noexcept nogil:
    """mask[k] = scale where uniforms[k] < threshold, else 0; out[k] = x[k] * mask[k]."""
    cdef Py_ssize_t k
    for k in range(n):
        mask[k] = scale if <uint32_t>uniforms[k] < threshold else 0
        out[k] = x[k] * mask[k]


cdef object _dropout_forward_typed(floating probe, x, double keep_prob, rng, bint report_finite,
                                   out, mask):
    # One 64-bit draw serves four elements (the rule of _conventions.dropout_threshold): element
    # k is kept when 16-bit slice k % 4 (lowest bits first) of draw k // 4 is below `threshold`.
    # The NumPy twin reads the same draws (Generator.integers over the full uint64 range returns
    # next_uint64 unchanged), so both give the same mask for one seed.
    cdef int tn = _typenum(probe)
    cdef const floating* xp = <const floating*>_array(x, "x", tn, 1)
    cdef Py_ssize_t n = _dim(x, 0)
    _check_mask_arguments(keep_prob, rng)
    cdef uint64_t threshold = dropout_threshold(keep_prob)
    cdef floating scale = <floating>(1.0 / keep_prob)
    if out is None:
        out = _empty(tn, n)
    else:   # the caller's buffer (x itself for in-place dropout): no fresh pages to fault in
        _same_shape(out, "out", tn, x, "x", True)
        _disjoint(out, "out", x, "x", True)
    if mask is None:
        mask = _empty(tn, n)
    else:
        _same_shape(mask, "mask", tn, x, "x", True)
        _disjoint(mask, "mask", x, "x", False)
        _disjoint(mask, "mask", out, "out", False)
    cdef floating* op = <floating*>_ptr(out)
    cdef floating* mp = <floating*>_ptr(mask)
    bit_generator = rng.bit_generator
    cdef bitgen_t* bitgen = <bitgen_t*>PyCapsule_GetPointer(bit_generator.capsule, "BitGenerator")
    cdef Py_ssize_t k0, k1
    cdef bint finite = True
    cdef uint16_t uniforms[DROPOUT_BLOCK]
    with bit_generator.lock, nogil:
        # Blocks of DROPOUT_BLOCK elements (a multiple of 4: the draws run as without blocks):
        # first the block's draws, cut into their 16-bit uniforms, then one branch-free loop
        # over the elements that the compiler vectorizes; the finiteness look at each block's
        # results finds them in cache. A dropped NaN or inf still shows: it is multiplied by 0.
        for k0 in range(0, n, 4096):   # DROPOUT_BLOCK (range needs a literal step)
            k1 = min(n, k0 + DROPOUT_BLOCK)
            _draw_uniforms(bitgen, uniforms, k1 - k0)
            _dropout_block(xp + k0, op + k0, mp + k0, k1 - k0, uniforms, <uint32_t>threshold,
                           scale)
            if report_finite and finite:
                finite = _finite_run(op + k0, k1 - k0)
    if report_finite:
        return out, mask, finite
    return out, mask


def dropout_forward(x, double keep_prob, rng, bint report_finite=False, out=None, mask=None):
    """x (M,), keep_prob in (0, 1], rng a np.random.Generator -> (out, mask); draws from
    ``rng`` under its lock. report_finite: a third element tells whether out is all finite.
    out, mask: (M,) writeable arrays to write into (out may be x; mask overlaps neither)."""
    if _is_float32(x):
        return _dropout_forward_typed[float](0, x, keep_prob, rng, report_finite, out, mask)
    return _dropout_forward_typed[double](0, x, keep_prob, rng, report_finite, out, mask)


cdef object _draw_mask_typed(floating probe, Py_ssize_t n, double keep_prob, rng, bint scaled):
    # The mask dropout_forward would draw for n elements from the same generator state, without
    # an input to multiply: 1/keep_prob (scaled) or 1 where an element is kept, else 0.
    cdef int tn = _typenum(probe)
    _check_mask_arguments(keep_prob, rng)
    cdef uint32_t threshold = <uint32_t>dropout_threshold(keep_prob)
    cdef floating kept = <floating>(1.0 / keep_prob) if scaled else 1
    mask = _empty(tn, n)
    cdef floating* mp = <floating*>_ptr(mask)
    bit_generator = rng.bit_generator
    cdef bitgen_t* bitgen = <bitgen_t*>PyCapsule_GetPointer(bit_generator.capsule, "BitGenerator")
    cdef Py_ssize_t k0, k1, k
    cdef uint16_t uniforms[DROPOUT_BLOCK]
    with bit_generator.lock, nogil:
        for k0 in range(0, n, 4096):   # DROPOUT_BLOCK, as in dropout_forward
            k1 = min(n, k0 + DROPOUT_BLOCK)
            _draw_uniforms(bitgen, uniforms, k1 - k0)
            for k in range(k1 - k0):
                mp[k0 + k] = kept if <uint32_t>uniforms[k] < threshold else 0
    return mask


def draw_mask(n, double keep_prob, rng, dtype=np.float64, bint scaled=True):
    """n mask values (1-D, float32 or float64 ``dtype``) by the dropout rule, drawn from ``rng``
    under its lock: the mask dropout_forward draws from the same state, 1/keep_prob where an
    element is kept (or 1 when not ``scaled``: zoneout's weights, z = keep_prob), else 0."""
    n = operator.index(n)   # an integer (a float raises TypeError), range-checked as such
    if not 0 <= n <= PY_SSIZE_T_MAX:
        raise ValueError(f"n must be in [0, {PY_SSIZE_T_MAX}], got {n}")
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return _draw_mask_typed[float](0, n, keep_prob, rng, scaled)
    if dtype == np.float64:
        return _draw_mask_typed[double](0, n, keep_prob, rng, scaled)
    raise TypeError(f"dtype must be float32 or float64, got {dtype}")


cdef object _dropout_backward_typed(floating probe, dout, mask):
    cdef int tn = _typenum(probe)
    cdef const floating* dp = <const floating*>_array(dout, "dout", tn, 1)
    cdef Py_ssize_t k, n = _dim(dout, 0)
    cdef const floating* mp = <const floating*>_array(mask, "mask", tn, 1, n)
    dx = _empty(tn, n)
    cdef floating* dxp = <floating*>_ptr(dx)
    with nogil:
        for k in range(n):
            dxp[k] = dp[k] * mp[k]
    return dx


def dropout_backward(dout, mask):
    """dout (M,), mask (M,) -> dx = dout * mask."""
    if _is_float32(dout):
        return _dropout_backward_typed[float](0, dout, mask)
    return _dropout_backward_typed[double](0, dout, mask)
