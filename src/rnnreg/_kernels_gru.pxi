# Part of rnnreg/_kernels.pyx (included there, in order, after the LSTM): GRU.
# ----------------------------------------------------------------------------- GRU
# The GRU's time loops reuse the LSTM's machinery (_kernels_lstm.pxi, _kernels_loops.pxi): the
# step weights packed once per sequence, the split of a loop among threads by rows or, for a
# batch of a few rows, by hidden units (a barrier per step), the token-id gather, the layer-norm
# rows, the zoneout mix and split, and the weight-gradient products batched over the sequence.
# What differs is the step (rn_gru_step / rn_gru_bwd in _fastmath.h): the candidate's block of
# the recurrent projection is scaled by the reset gate, so the input projection cannot be summed
# into the gate slots first — it stays in its own array (or is read from Wx for token ids).
cdef extern from "_fastmath.h" nogil:
    void rn_gru_step_d(double* a, const double* xw, const double* b, const double* bn,
                       const double* h_prev, double* hn, double* h, Py_ssize_t H, Py_ssize_t n)
    void rn_gru_step_f(float* a, const float* xw, const float* b, const float* bn,
                       const float* h_prev, float* hn, float* h, Py_ssize_t H, Py_ssize_t n)
    void rn_gru_bwd_d(const double* dh, const double* dh_next, const double* a, const double* hn,
                      const double* h_prev, double* dxa, double* dha, double* skip, Py_ssize_t H,
                      Py_ssize_t n)
    void rn_gru_bwd_f(const float* dh, const float* dh_next, const float* a, const float* hn,
                      const float* h_prev, float* dxa, float* dha, float* skip, Py_ssize_t H,
                      Py_ssize_t n)


# The arrays of one GRU sequence (see LSTMArrays for the conventions).
cdef struct GRUArrays:
    Py_ssize_t N, T, D, H
    double eps
    int n_threads
    const void* x          # (N, T, D), or NULL when tokens is set
    const int64_t* tokens  # (N, T) ids in [0, D), or NULL
    const void* h0         # (N, H)
    const void* Wx         # (D, 3H)
    const void* Wh         # (H, 3H)
    const void* b          # (3H,)
    const void* bn         # (H,)
    const void* mask       # (N, H) recurrent-dropout mask, or NULL
    const void* zone_h     # (N, T, H) zoneout weights of h, or NULL
    bint layer_norm        # whether ln and ln_saved are set
    const void* ln[4]      # GRU_LAYER_NORM_PARAMS, (3H,) each
    const void* xw         # (N, T, 3H) input projection (normalized with layer norm), or NULL:
                           # token ids without layer norm read their row of Wx
    # Saved by the forward pass for the backward pass:
    void* hprev            # (N, T, H) h(t-1) * mask
    void* gates            # (N, T, 3H) activated gates, in GRU_GATE_ORDER
    void* hn               # (N, T, H) the reset gate's operand R_n + bn
    void* h                # (N, T, H) output
    void* ln_saved[4]      # GRU_LN_SAVED: xhat (N, T, 3H) and rstd (N, T), in turn


cdef struct GRUGradArrays:
    const void* dh         # (N, T, H) upstream gradient of every output
    void* dh_next          # (N, H): zeros in, dh0 out
    void* skip             # (N, H) scratch: the part of a step's gradient that reaches h(t-1) directly
    void* row_buf          # (n_threads, H) scratch (zoneout)
    const void* zero_row   # (H,) zeros, with zoneout
    void* zone_carry       # (N, H): with zoneout, u * dh(t), the part that skips step t
    void* da               # (N, T, 3H) gradient of the input side's pre-activations
    void* dhw              # (N, T, 3H) of the recurrent projection
    void* dxw              # (N, T, 3H) of the input projection (da without layer norm)
    void* dx               # (N, T, D), or NULL
    void* dWx              # (D, 3H)
    void* dWh              # (H, 3H)
    double* db             # (3H,) float64 sum, zeros in
    double* dbn            # (H,) float64 sum, zeros in (without layer norm)
    double* ln[4]          # float64 sums per GRU_LAYER_NORM_PARAMS, zeros in
    double* ln_parts       # with layer norm: (N, 4 * 3H) zeros, each sequence's own sums


cdef inline void _gru_step(floating* a, const floating* xw, const floating* b, const floating* bn,
                           const floating* h_prev, floating* hn, floating* h, Py_ssize_t H,
                           Py_ssize_t n) noexcept nogil:
    if floating is float:
        rn_gru_step_f(a, xw, b, bn, h_prev, hn, h, H, n)
    else:
        rn_gru_step_d(a, xw, b, bn, h_prev, hn, h, H, n)


cdef inline void _gru_bwd(const floating* dh, const floating* dh_next, const floating* a,
                          const floating* hn, const floating* h_prev, floating* dxa, floating* dha,
                          floating* skip, Py_ssize_t H, Py_ssize_t n) noexcept nogil:
    if floating is float:
        rn_gru_bwd_f(dh, dh_next, a, hn, h_prev, dxa, dha, skip, H, n)
    else:
        rn_gru_bwd_d(dh, dh_next, a, hn, h_prev, dxa, dha, skip, H, n)


cdef void _gru_forward_block(floating probe, const GRUArrays* s, const StepWeights* recurrent,
                             Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t u0, Py_ssize_t u1,
                             bint team) noexcept nogil:
    """The time loop for rows n0 <= n < n1 and units u0 <= j < u1 (all units with layer norm);
    team as in _lstm_forward_block."""
    cdef Py_ssize_t T = s.T, H = s.H, G = 3 * H, w = u1 - u0, n, t, row
    cdef const floating* Wx = <const floating*>s.Wx
    cdef const floating* xw = <const floating*>s.xw
    cdef const floating* h0 = <const floating*>s.h0
    cdef const floating* b = <const floating*>s.b
    cdef const floating* bn = <const floating*>s.bn
    cdef const floating* mask = <const floating*>s.mask
    cdef const floating* zone_h = <const floating*>s.zone_h
    cdef floating* hprev = <floating*>s.hprev
    cdef floating* gates = <floating*>s.gates
    cdef floating* hn = <floating*>s.hn
    cdef floating* h = <floating*>s.h
    cdef const floating** ln = <const floating**>s.ln
    cdef floating** saved = <floating**>s.ln_saved
    cdef const floating* h_prev
    cdef const floating* x_row
    cdef floating* a
    for t in range(T):
        for n in range(n0, n1):
            row = n * T + t
            h_prev = h0 + n * H if t == 0 else h + (row - 1) * H
            _recurrent_input(h_prev + u0, mask + n * H + u0 if mask != NULL else NULL,
                             hprev + row * H + u0, w)
        if team:
            rn_team_barrier()
        _product_units(recurrent, n1 - n0, hprev + (n0 * T + t) * H, T * H,
                       gates + (n0 * T + t) * G, T * G, False, H, u0, u1)
        for n in range(n0, n1):
            row = n * T + t
            a = gates + row * G
            if s.layer_norm:   # u0 = 0, w = H
                _ln_row_forward(a, G, ln[2], ln[3], s.eps, a, saved[2] + row * G, saved[3] + row)
            x_row = xw + row * G if xw != NULL else Wx + s.tokens[row] * G
            h_prev = h0 + n * H if t == 0 else h + (row - 1) * H
            _gru_step(a + u0, x_row + u0, b + u0, bn + u0, h_prev + u0, hn + row * H + u0,
                      h + row * H + u0, H, w)
            if zone_h != NULL:
                _zone_mix(zone_h + row * H + u0, h_prev + u0, h + row * H + u0, w)


cdef void _gru_forward_units(floating probe, const GRUArrays* s, const StepWeights* recurrent,
                             int index, int size) noexcept nogil:
    cdef Py_ssize_t u0 = _unit_start(s.H, index, size), u1 = _unit_start(s.H, index + 1, size)
    _pack_units(probe, recurrent, s.H, u0, u1)
    _gru_forward_block(probe, s, recurrent, 0, s.N, u0, u1, True)


cdef void _gru_forward(floating probe, const GRUArrays* s) noexcept nogil:
    """Fill the saved arrays of s; s.xw (N, T, 3H) receives the input projection (normalized
    with layer norm), or is NULL for token ids without layer norm."""
    cdef Py_ssize_t N = s.N, T = s.T, D = s.D, H = s.H, G = 3 * H, row, part, parts
    cdef floating* xw = <floating*>s.xw   # this call's own buffer (const for the time loop)
    cdef const floating** ln = <const floating**>s.ln
    cdef floating** saved = <floating**>s.ln_saved
    cdef StepWeights recurrent
    if s.tokens != NULL:
        if xw != NULL:
            _gather_rows(s.n_threads, s.tokens, N * T, G, <const floating*>s.Wx, xw)
    else:
        _product_split(s.n_threads, False, False, N * T, G, D, <const floating*>s.x, D,
                       <const floating*>s.Wx, G, xw, G)
    if s.layer_norm:
        for row in prange(N * T, num_threads=s.n_threads, schedule="static"):
            _ln_row_forward(xw + row * G, G, ln[0], ln[1], s.eps, xw + row * G,
                            saved[0] + row * G, saved[1] + row)
    _step_weights_init(&recurrent, _packing_pays(N, T, False), H, G, <const floating*>s.Wh, False)
    parts = _unit_parts_for(N, H, s.layer_norm, s.n_threads)
    if parts > 1:
        with parallel(num_threads=parts):
            _gru_forward_units(probe, s, &recurrent, rn_team_index(), rn_team_size())
    else:
        _pack_units(probe, &recurrent, H, 0, H)
        parts = _row_parts(&recurrent, N, s.n_threads)
        if parts == 1:
            _gru_forward_block(probe, s, &recurrent, 0, N, 0, H, False)
        else:
            for part in prange(parts, num_threads=parts, schedule="static", chunksize=1):
                _gru_forward_block(probe, s, &recurrent, part * N // parts,
                                   (part + 1) * N // parts, 0, H, False)
    _step_weights_free(&recurrent)


cdef object _gru_forward_typed(floating probe, x, h0, Wx, Wh, b, bn, layer_norm, recurrent_mask,
                               double eps, zoneout_h):
    cdef int tn = _typenum(probe), k
    cdef GRUArrays s
    memset(&s, 0, sizeof(s))
    if _is_tokens(x):
        s.tokens = <const int64_t*>_array(x, "x", cnp.NPY_INT64, 2)
        s.N, s.T = _dim(x, 0), _dim(x, 1)
        _array(Wx, "Wx", tn, 2)
        s.D = _dim(Wx, 0)
    else:
        s.x = _array(x, "x", tn, 3)
        s.N, s.T, s.D = _dim(x, 0), _dim(x, 1), _dim(x, 2)
    s.Wh = _array(Wh, "Wh", tn, 2)
    s.H = _dim(Wh, 0)
    cdef Py_ssize_t N = s.N, T = s.T, D = s.D, H = s.H, G = 3 * H
    _nonempty("x", N * T * D)
    _nonempty("Wh", H)
    _array(Wh, "Wh", tn, 2, H, G)
    s.Wx = _array(Wx, "Wx", tn, 2, D, G)
    if s.tokens != NULL:
        _check_ids(s.tokens, N * T, D, "x")
    s.b = _array(b, "b", tn, 1, G)
    s.bn = _array(bn, "bn", tn, 1, H)
    s.h0 = _array(h0, "h0", tn, 2, N, H)
    _positive_eps(eps)
    s.eps = eps
    ln_params = saved = None
    if layer_norm is not None:
        s.layer_norm = True
        ln_params = {}
        for k, name in enumerate(GRU_LAYER_NORM_PARAMS):
            arr = _item(layer_norm, name, "layer_norm")
            s.ln[k] = _array(arr, f"layer_norm[{name!r}]", tn, 1, G)
            ln_params[name] = arr
        saved = {}
        for k, name in enumerate(GRU_LN_SAVED):   # xhat (N, T, 3H), then its rstd (N, T)
            arr = _empty(tn, N, T, G) if k % 2 == 0 else _empty(tn, N, T)
            saved[name] = arr
            s.ln_saved[k] = _ptr(arr)
    if recurrent_mask is not None:
        s.mask = _array(recurrent_mask, "recurrent_mask", tn, 2, N, H)
    if zoneout_h is not None:
        s.zone_h = _array(zoneout_h, "zoneout_h", tn, 3, N, T, H)
    gates, hprev, hn, h = _empty(tn, N, T, G), _empty(tn, N, T, H), _empty(tn, N, T, H), \
        _empty(tn, N, T, H)
    s.gates, s.hprev, s.hn, s.h = _ptr(gates), _ptr(hprev), _ptr(hn), _ptr(h)
    cdef bint own_xw = s.tokens == NULL or s.layer_norm
    xw = _empty(tn, N, T, G) if own_xw else None
    s.xw = _ptr(xw) if own_xw else NULL
    s.n_threads = _acquire_threads()
    try:
        with nogil:
            _gru_forward(probe, &s)
    finally:
        _release_threads()
    if saved is not None:
        for arr in saved.values():
            _frozen(arr)
        saved = MappingProxyType(saved)
        ln_params = MappingProxyType(ln_params)
    return GRUCache(x, h0, Wx, Wh, b, bn, ln_params, recurrent_mask, eps, zoneout_h,
                    _frozen(hprev), _frozen(gates), _frozen(hn), _frozen(h), saved, N, T, D, H)


def gru_forward(x, h0, Wx, Wh, b, bn, layer_norm=None, recurrent_mask=None, double eps=1e-5,
                zoneout_h=None):
    """Run a GRU over x (N, T, D) — or over one-hot inputs given as int64 token ids x (N, T) in
    [0, D) — from h0 (N, H) with Wx (D, 3H), Wh (H, 3H), b (3H,), bn (H,); ``layer_norm``: None or
    a mapping of the GRU_LAYER_NORM_PARAMS (the LN-GRU); ``recurrent_mask``: None or (N, H);
    eps > 0; ``zoneout_h``: None or zoneout weights (N, T, H) (see _conventions). Returns a
    GRUCache whose ``h`` (N, T, H) is the output."""
    if _is_float32(Wx if _is_tokens(x) else x):
        return _gru_forward_typed[float](0, x, h0, Wx, Wh, b, bn, layer_norm, recurrent_mask, eps,
                                         zoneout_h)
    return _gru_forward_typed[double](0, x, h0, Wx, Wh, b, bn, layer_norm, recurrent_mask, eps,
                                      zoneout_h)


cdef void _gru_backward_block(floating probe, const GRUArrays* s, const GRUGradArrays* g,
                              const StepWeights* recurrent_t, floating* row_buf, Py_ssize_t n0,
                              Py_ssize_t n1, Py_ssize_t u0, Py_ssize_t u1,
                              bint team) noexcept nogil:
    """Backpropagation through time for rows n0 <= n < n1 and units u0 <= j < u1 (all units with
    layer norm; team as in _gru_forward_block). The recurrent normalization's parameter
    gradients go to each sequence's g.ln_parts row. row_buf: H values, of which the block's
    units are used (zoneout)."""
    cdef Py_ssize_t T = s.T, H = s.H, G = 3 * H, w = u1 - u0, n, t, row, k, j
    cdef const floating* dh = <const floating*>g.dh
    cdef floating* dh_next = <floating*>g.dh_next
    cdef floating* skip = <floating*>g.skip
    cdef floating* da = <floating*>g.da
    cdef floating* dhw = <floating*>g.dhw
    cdef const floating* h0 = <const floating*>s.h0
    cdef const floating* h = <const floating*>s.h
    cdef const floating* hn = <const floating*>s.hn
    cdef const floating* mask = <const floating*>s.mask
    cdef const floating* zone_h = <const floating*>s.zone_h
    cdef const floating* zero_row = <const floating*>g.zero_row
    cdef floating* carry = <floating*>g.zone_carry
    cdef floating* zone_buf = row_buf + u0
    cdef const floating* gates = <const floating*>s.gates
    cdef const floating** ln = <const floating**>s.ln
    cdef const floating** saved = <const floating**>s.ln_saved
    cdef const floating* h_prev
    cdef double* sums
    for t in range(T - 1, -1, -1):
        for n in range(n0, n1):
            row = n * T + t
            k = n * H + u0
            h_prev = (h0 + n * H if t == 0 else h + (row - 1) * H) + u0
            if zone_h != NULL:
                # h_t = u h(t-1) + (1 - u) h~_t: u of h_t's gradient skips the step (carry),
                # 1 - u of it reaches h~_t.
                _zone_split(zone_h + row * H + u0, dh + row * H + u0, dh_next + k, carry + k,
                            zone_buf, w)
                _gru_bwd(zone_buf, zero_row, gates + row * G + u0, hn + row * H + u0, h_prev,
                         da + row * G + u0, dhw + row * G + u0, skip + k, H, w)
            else:
                _gru_bwd(dh + row * H + u0, dh_next + k, gates + row * G + u0, hn + row * H + u0,
                         h_prev, da + row * G + u0, dhw + row * G + u0, skip + k, H, w)
            if s.layer_norm:   # u0 = 0, w = H
                sums = g.ln_parts + n * (4 * G)
                _ln_row_backward(dhw + row * G, saved[2] + row * G, saved[3][row], ln[2], G,
                                 dhw + row * G, sums + 2 * G, sums + 3 * G)
        if team:
            rn_team_barrier()
        # dh(t-1) = (dhw(t) @ Wh^T) * mask + skip (+ the zoneout carry), this block's units
        _product_units(recurrent_t, n1 - n0, dhw + (n0 * T + t) * G, T * G, dh_next + n0 * H, H,
                       False, H, u0, u1)
        for n in range(n0, n1):
            k = n * H + u0
            if mask != NULL:
                for j in range(k, k + w):
                    dh_next[j] = dh_next[j] * mask[j]
            _add(dh_next + k, skip + k, w)
            if zone_h != NULL:
                _add(dh_next + k, carry + k, w)


cdef void _gru_backward_units(floating probe, const GRUArrays* s, const GRUGradArrays* g,
                              const StepWeights* recurrent_t, int index, int size) noexcept nogil:
    cdef Py_ssize_t u0 = _unit_start(s.H, index, size), u1 = _unit_start(s.H, index + 1, size)
    _pack_units(probe, recurrent_t, s.H, u0, u1)
    _gru_backward_block(probe, s, g, recurrent_t, <floating*>g.row_buf, 0, s.N, u0, u1, True)


cdef void _sum_columns(const floating* rows, Py_ssize_t m, Py_ssize_t stride, Py_ssize_t n,
                       double* total) noexcept nogil:
    """total[j] += sum over r of rows[r * stride + j] for j < n, in double, rows in order."""
    cdef Py_ssize_t r, j
    for r in range(m):
        for j in range(n):
            total[j] += rows[r * stride + j]


cdef void _gru_backward(floating probe, const GRUArrays* s, const GRUGradArrays* g) noexcept nogil:
    """Backpropagation through time over the arrays s saved; see GRUGradArrays."""
    cdef Py_ssize_t N = s.N, T = s.T, D = s.D, H = s.H, G = 3 * H, n, t, row, part, parts
    cdef Py_ssize_t stride = 4 * G
    cdef floating* da = <floating*>g.da
    cdef floating* dxw = <floating*>g.dxw
    cdef floating* row_buf = <floating*>g.row_buf
    cdef const floating** ln = <const floating**>s.ln
    cdef const floating** saved = <const floating**>s.ln_saved
    cdef StepWeights recurrent_t   # Wh^T, for dh(t-1)
    _step_weights_init(&recurrent_t, _packing_pays(N, T, True), G, H, <const floating*>s.Wh, True)
    parts = _unit_parts_for(N, H, s.layer_norm, s.n_threads)
    if parts > 1:
        with parallel(num_threads=parts):
            _gru_backward_units(probe, s, g, &recurrent_t, rn_team_index(), rn_team_size())
    else:
        _pack_units(probe, &recurrent_t, H, 0, H)
        parts = _row_parts(&recurrent_t, N, s.n_threads)
        if parts == 1:
            _gru_backward_block(probe, s, g, &recurrent_t, row_buf, 0, N, 0, H, False)
        else:
            for part in prange(parts, num_threads=parts, schedule="static", chunksize=1):
                _gru_backward_block(probe, s, g, &recurrent_t, row_buf + part * H,
                                    part * N // parts, (part + 1) * N // parts, 0, H, False)
    _step_weights_free(&recurrent_t)

    _sum_rows(da, N * T, G, g.db)
    if s.layer_norm:
        # The sequences' sums added in sequence order, whichever thread made them.
        _add_parts(g.ln_parts + 2 * G, N, stride, G, g.ln[2])
        _add_parts(g.ln_parts + 3 * G, N, stride, G, g.ln[3])
        for n in prange(N, num_threads=s.n_threads, schedule="static"):
            for t in range(T):
                row = n * T + t
                _ln_row_backward(da + row * G, saved[0] + row * G, saved[1][row], ln[0], G,
                                 dxw + row * G, g.ln_parts + n * stride,
                                 g.ln_parts + n * stride + G)
        _add_parts(g.ln_parts, N, stride, G, g.ln[0])
        _add_parts(g.ln_parts + G, N, stride, G, g.ln[1])
    else:   # d bn: the candidate's block of the recurrent side (with layer norm: dbeta_h's)
        _sum_columns(<const floating*>g.dhw + 2 * H, N * T, G, H, g.dbn)
    if s.tokens != NULL:
        _add_rows_at(s.n_threads, s.tokens, N * T, G, dxw, D, <floating*>g.dWx)
    else:
        _product_split(s.n_threads, True, False, D, G, N * T, <const floating*>s.x, D, dxw, G,
                       <floating*>g.dWx, G)
    _product_split(s.n_threads, True, False, H, G, N * T, <const floating*>s.hprev, H,
                   <const floating*>g.dhw, G, <floating*>g.dWh, G)
    if g.dx != NULL:
        _product_split(s.n_threads, False, True, N * T, D, G, dxw, G, <const floating*>s.Wx, G,
                       <floating*>g.dx, D)


cdef object _gru_backward_typed(floating probe, dh, cache, bint need_dx, dW):
    cdef int tn = _typenum(probe), k
    cdef GRUArrays s
    cdef GRUGradArrays g
    memset(&s, 0, sizeof(s))
    memset(&g, 0, sizeof(g))
    if not isinstance(cache, GRUCache):
        raise TypeError(f"cache must be the GRUCache gru_forward returned, got "
                        f"{type(cache).__name__}")
    s.N, s.T, s.D, s.H = cache.N, cache.T, cache.D, cache.H
    cdef Py_ssize_t N = s.N, T = s.T, D = s.D, H = s.H, G = 3 * H
    if N < 1 or T < 1 or D < 1 or H < 1:
        raise ValueError(f"cache dimensions must be >= 1, got N={N}, T={T}, D={D}, H={H}")
    if _is_tokens(cache.x):
        s.tokens = <const int64_t*>_array(cache.x, "cache.x", cnp.NPY_INT64, 2, N, T)
        _check_ids(s.tokens, N * T, D, "cache.x")
        need_dx = False
    else:
        s.x = _array(cache.x, "cache.x", tn, 3, N, T, D)
    s.h0 = _array(cache.h0, "cache.h0", tn, 2, N, H)
    _array(cache.b, "cache.b", tn, 1, G)
    _array(cache.bn, "cache.bn", tn, 1, H)
    s.h = _array(cache.h, "cache.h", tn, 3, N, T, H)
    s.Wx = _array(cache.Wx, "cache.Wx", tn, 2, D, G)
    s.Wh = _array(cache.Wh, "cache.Wh", tn, 2, H, G)
    s.hprev = _array(cache.hprev, "cache.hprev", tn, 3, N, T, H)
    s.gates = _array(cache.gates, "cache.gates", tn, 3, N, T, G)
    s.hn = _array(cache.hn, "cache.hn", tn, 3, N, T, H)
    g.dh = _array(dh, "dh", tn, 3, N, T, H)
    layer_norm, ln_saved = cache.layer_norm, cache.ln_saved
    if (layer_norm is None) != (ln_saved is None):
        raise TypeError("cache.layer_norm and cache.ln_saved must both be None or both set")
    ln_acc = {}
    if layer_norm is not None:
        s.layer_norm = True
        for k, name in enumerate(GRU_LAYER_NORM_PARAMS):
            s.ln[k] = _array(_item(layer_norm, name, "cache.layer_norm"),
                             f"cache.layer_norm[{name!r}]", tn, 1, G)
            ln_acc[name] = _zeros(cnp.NPY_DOUBLE, G)
            g.ln[k] = <double*>_ptr(ln_acc[name])
        for k, name in enumerate(GRU_LN_SAVED):
            arr = _item(ln_saved, name, "cache.ln_saved")
            if k % 2 == 0:
                s.ln_saved[k] = _array(arr, f"cache.ln_saved[{name!r}]", tn, 3, N, T, G)
            else:
                s.ln_saved[k] = _array(arr, f"cache.ln_saved[{name!r}]", tn, 2, N, T)
    if cache.recurrent_mask is not None:
        s.mask = _array(cache.recurrent_mask, "cache.recurrent_mask", tn, 2, N, H)
    zone_carry = zero_row = None
    if cache.zoneout_h is not None:
        s.zone_h = _array(cache.zoneout_h, "cache.zoneout_h", tn, 3, N, T, H)
        zone_carry, zero_row = _empty(tn, N, H), _zeros(tn, H)
        g.zone_carry, g.zero_row = _ptr(zone_carry), _ptr(zero_row)
    da, dhw = _empty(tn, N, T, G), _empty(tn, N, T, G)
    dxw = _empty(tn, N, T, G) if s.layer_norm else da
    dh_next, skip = _zeros(tn, N, H), _empty(tn, N, H)
    dx = _empty(tn, N, T, D) if need_dx else None
    if dW is None:
        dWx, dWh = _empty(tn, D, G), _empty(tn, H, G)
    else:   # [dWx; dWh] written into the rows of the caller's array
        _array(dW, "dW", tn, 2, D + H, G, ANY, True)
        _disjoint_from(dW, "dW", [dh, *_cache_arrays(cache)])
        dWx, dWh = dW[:D], dW[D:]
    db, dbn = _zeros(cnp.NPY_DOUBLE, G), _zeros(cnp.NPY_DOUBLE, H)
    if s.layer_norm:
        ln_parts = _zeros(cnp.NPY_DOUBLE, N, 4 * G)
        g.ln_parts = <double*>_ptr(ln_parts)
    g.dh_next, g.skip = _ptr(dh_next), _ptr(skip)
    g.da, g.dhw, g.dxw = _ptr(da), _ptr(dhw), _ptr(dxw)
    g.dx = _ptr(dx) if need_dx else NULL
    g.dWx, g.dWh = _ptr(dWx), _ptr(dWh)
    g.db, g.dbn = <double*>_ptr(db), <double*>_ptr(dbn)
    s.n_threads = _acquire_threads()
    try:
        row_buf = _empty(tn, s.n_threads, H)
        g.row_buf = _ptr(row_buf)
        with nogil:
            _gru_backward(probe, &s, &g)
    finally:
        _release_threads()
    if s.layer_norm:   # bn and beta_h's candidate block are added to the same R_n
        dbn = ln_acc["beta_h"][2 * H:].copy()
    grads = dict(dx=dx, dh0=dh_next, dWx=dWx, dWh=dWh, db=_as_dtype(db, tn),
                 dbn=_as_dtype(dbn, tn))
    for name, total in ln_acc.items():
        grads["d" + name] = _as_dtype(total, tn)
    return grads


def gru_backward(dh, cache, bint need_dx=True, dW=None):
    """dh (N, T, H): upstream gradient of every output; cache: the GRUCache of gru_forward;
    need_dx False skips the input gradient (dx is None; always None for token ids). dW: None,
    or a C-contiguous (D + H, 3H) array of dh's dtype, sharing no memory with the arguments,
    that receives [dWx; dWh] (then those two are views of it). Returns a dict with dx, dh0,
    dWx, dWh, db, dbn and, with layer norm, ``d`` + the name of each GRU_LAYER_NORM_PARAMS
    entry."""
    if _is_float32(dh):
        return _gru_backward_typed[float](0, dh, cache, need_dx, dW)
    return _gru_backward_typed[double](0, dh, cache, need_dx, dW)
