# Part of rnnreg/_kernels.pyx (included there, in order): LSTM.
# ----------------------------------------------------------------------------- LSTM
# The arrays of one LSTM sequence, passed to the loops by name (so that no two can be swapped
# silently in a long argument list). Pointers are void* because a struct cannot be generic over
# `floating`: every loop casts them to its own type. Row r = n*T + t of an (N, T, ...) array is
# sequence n at step t.
cdef struct LSTMArrays:
    Py_ssize_t N, T, D, H
    double eps
    int n_threads          # threads the loops may share the work among (_acquire_threads)
    const void* x          # (N, T, D), or NULL when tokens is set
    const int64_t* tokens  # (N, T) ids in [0, D) standing for one-hot rows of x, or NULL
    const void* h0         # (N, H)
    const void* c0         # (N, H)
    const void* Wx         # (D, 4H)
    const void* Wh         # (H, 4H)
    const void* b          # (4H,)
    const void* mask       # (N, H) recurrent-dropout mask, or NULL
    const void* zone_h     # (N, T, H) zoneout weights of h (see _conventions), or NULL
    const void* zone_c     # (N, T, H) zoneout weights of c, or NULL
    bint layer_norm        # whether ln and ln_saved are set
    const void* ln[6]      # LSTM_LAYER_NORM_PARAMS: (4H,) x4, (H,) x2
    # Saved by the forward pass for the backward pass:
    void* hprev            # (N, T, H) h(t-1) * mask, the recurrent input of step t
    void* gates            # (N, T, 4H) activated gates, in GATE_ORDER
    void* c                # (N, T, H) cell state
    void* tc               # (N, T, H) tanh of the (normalized) cell state
    void* h                # (N, T, H) output
    void* ln_saved[6]      # LN_SAVED: xhat (N, T, 4H | H) and rstd (N, T), in turn


cdef struct LSTMGradArrays:
    const void* dh         # (N, T, H) upstream gradient of every output
    void* dh_next          # (N, H): zeros in, dh0 out
    void* dc_next          # (N, H): the final cell state's gradient in, dc0 out
    void* row_buf          # (n_threads, 2H) scratch
    const void* zero_row   # (H,) zeros, with zoneout on h
    void* zone_carry       # (N, H): with zoneout on h, u_h * dh(t), the part that skips step t
    void* da               # (N, T, 4H) gradient of the gate pre-activations
    void* dhw              # (N, T, 4H) of the recurrent projection (da without layer norm)
    void* dxw              # (N, T, 4H) of the input projection (da without layer norm)
    void* dx               # (N, T, D), or NULL when the caller does not need it
    void* dWx              # (D, 4H)
    void* dWh              # (H, 4H)
    double* db             # (4H,) float64 sum, zeros in
    double* ln[6]          # float64 sums per LSTM_LAYER_NORM_PARAMS, zeros in
    double* ln_parts       # with layer norm: (N, 2*4H + 2*H) zeros, each sequence's own sums


cdef void _gather_rows(int n_threads, const int64_t* ids, Py_ssize_t rows, Py_ssize_t G,
                       const floating* table, floating* out) noexcept nogil:
    """out[r] = table[ids[r]] for each of the rows (G values each); ids already checked."""
    cdef Py_ssize_t r
    for r in prange(rows, num_threads=n_threads if rows * G >= PARALLEL_MIN else 1,
                    schedule="static"):
        memcpy(out + r * G, table + ids[r] * G, G * sizeof(floating))


cdef void _add_rows_at(int n_threads, const int64_t* ids, Py_ssize_t rows, Py_ssize_t G,
                       const floating* src, Py_ssize_t D, floating* total) noexcept nogil:
    """total (D, G) = 0, then total[ids[r]] += src[r] for r = 0, 1, ... in turn: the gradient of
    _gather_rows. Threads share the columns, so every sum runs in row order on any number."""
    cdef Py_ssize_t part, parts = n_threads, lo, hi, r, j
    cdef floating* dst
    cdef const floating* row
    if rows * G < PARALLEL_MIN or G < 64 * parts:
        parts = 1
    memset(total, 0, D * G * sizeof(floating))
    for part in prange(parts, num_threads=parts, schedule="static", chunksize=1):
        lo = part * G // parts
        hi = (part + 1) * G // parts
        for r in range(rows):
            dst = total + ids[r] * G
            row = src + r * G
            for j in range(lo, hi):
                dst[j] = dst[j] + row[j]


cdef inline void _recurrent_input(const floating* h_prev, const floating* mask, floating* dst,
                                  Py_ssize_t n) noexcept nogil:
    """dst = h(t-1) * mask (n values; mask NULL: a copy), the recurrent input of a step."""
    cdef Py_ssize_t j
    if mask != NULL:
        for j in range(n):
            dst[j] = h_prev[j] * mask[j]
    else:
        memcpy(dst, h_prev, n * sizeof(floating))


# The time loops, forward and backward, run on a block of the batch: rows n0 <= n < n1 and hidden
# units u0 <= j < u1 of them. One thread runs the whole batch; threads share it by rows (each a
# block of rows and every unit) or, for a batch of a few rows, by hidden units (each every row
# and a block of units, a barrier per step: `team`).
#
# A batch of a few rows (N <= UNIT_SPLIT_MAX_BATCH) gives too few rows to share a time loop by
# rows: a step's product for one row reads all of Wh for little arithmetic, so a thread with one
# row takes as long as a thread with four. There the threads share the hidden units instead:
# each makes its units' columns of the four gates for every row, then its units of c and h, and
# waits for the others before the next step's product, which needs all of h. benchmarks/
# step_split.py measured both (benchmarks/results/2026-12-04-step-split.md): on two threads,
# units 1.9x at batch 1 to 4 where rows give 1.0-1.1x, the two equal at batch 8. Units go to
# threads in blocks of UNIT_BLOCK, a multiple of every vector width and packed panel, so each
# unit is made by the same instructions as on one thread: the result is the same bit for bit.
# Layer norm keeps the rows' split (its statistics run over a whole row), and hidden sizes below
# UNIT_SPLIT_MIN_HIDDEN stay on one thread (a step's product there is shorter than a barrier).
cdef enum:
    UNIT_SPLIT_MAX_BATCH = 4
    UNIT_SPLIT_MIN_HIDDEN = 128
    UNIT_BLOCK = 32


cdef int _unit_parts_for(Py_ssize_t N, Py_ssize_t H, bint layer_norm,
                         int n_threads) noexcept nogil:
    """Threads to share a time loop by hidden units, or 1: keep the split by rows."""
    cdef Py_ssize_t blocks = H // UNIT_BLOCK
    if (not RN_HAVE_OPENMP or n_threads <= 1 or N > UNIT_SPLIT_MAX_BATCH or layer_norm
            or H < UNIT_SPLIT_MIN_HIDDEN or H % UNIT_BLOCK != 0):
        return 1
    return <int>(n_threads if n_threads < blocks else blocks)


cdef inline int _unit_parts(const LSTMArrays* s) noexcept nogil:
    return _unit_parts_for(s.N, s.H, s.layer_norm, s.n_threads)


cdef inline Py_ssize_t _unit_start(Py_ssize_t H, int index, int size) noexcept nogil:
    """The first hidden unit of thread ``index`` of ``size`` sharing H units in blocks of
    UNIT_BLOCK (index = size: H, the end of the last thread's units)."""
    return index * (H // UNIT_BLOCK) // size * UNIT_BLOCK


def _threads_by_units(Py_ssize_t N, Py_ssize_t H, bint layer_norm, int n_threads):
    """Testing hook: how many of n_threads threads the LSTM loops of a batch of N rows, hidden
    size H, share by hidden units (1: the loops split by rows, or run on one thread)."""
    return _unit_parts_for(N, H, layer_norm, n_threads)


cdef inline Py_ssize_t _row_parts(const StepWeights* w, Py_ssize_t N, int n_threads) noexcept nogil:
    """Into how many parts the batch's time loop is split by rows: one per thread, on the packed
    step product only (its rows do not depend on the rows beside them; BLAS's might), at most N."""
    if w.packed == NULL or n_threads <= 1:
        return 1
    return N if N < n_threads else n_threads


cdef void _pack_units(floating probe, const StepWeights* w, Py_ssize_t H, Py_ssize_t u0,
                      Py_ssize_t u1) noexcept nogil:
    """Pack the columns of units u0..u1 of each of the w.n // H blocks of B (the four gates of
    Wh, or the one block of Wh^T): all of B when the units are all H."""
    cdef Py_ssize_t q
    if u0 == 0 and u1 == H:
        _step_weights_pack(probe, w, 0, w.n)
    else:
        for q in range(w.n // H):
            _step_weights_pack(probe, w, q * H + u0, q * H + u1)


cdef inline void _product_units(const StepWeights* w, Py_ssize_t m, const floating* a,
                                Py_ssize_t lda, floating* c, Py_ssize_t ldc, bint accumulate,
                                Py_ssize_t H, Py_ssize_t u0, Py_ssize_t u1) noexcept nogil:
    """_step_product on the columns of units u0..u1 of each block of B (see _pack_units)."""
    cdef Py_ssize_t q
    if u0 == 0 and u1 == H:
        _step_product(w, m, a, lda, c, ldc, accumulate, 0, w.n)
    else:
        for q in range(w.n // H):
            _step_product(w, m, a, lda, c, ldc, accumulate, q * H + u0, q * H + u1)


cdef void _lstm_forward_block(floating probe, const LSTMArrays* s, const StepWeights* recurrent,
                              const floating* xw, floating* scratch, Py_ssize_t n0, Py_ssize_t n1,
                              Py_ssize_t u0, Py_ssize_t u1, bint team) noexcept nogil:
    """The time loop for rows n0 <= n < n1 and units u0 <= j < u1 (all units with layer norm),
    the input projection already in the gate slots, normalized in xw, or picked from Wx. team:
    the threads of the enclosing parallel region share the units, and meet before each step's
    product. scratch: H values (layer norm)."""
    cdef Py_ssize_t T = s.T, H = s.H, G = 4 * H, w = u1 - u0, n, t, row
    cdef bint summed = not s.layer_norm
    # One-hot inputs without layer norm: the input projection of a row is the row of Wx its
    # token picks, added where the gates are activated (a + xw there is the xw + a the product
    # would have accumulated, the same sum bit for bit) instead of gathered beforehand: no copy
    # of N*T rows of Wx, and the row is read when it is needed.
    cdef bint picked = summed and s.tokens != NULL
    cdef const floating* Wx = <const floating*>s.Wx
    cdef const floating* h0 = <const floating*>s.h0
    cdef const floating* c0 = <const floating*>s.c0
    cdef const floating* b = <const floating*>s.b
    cdef const floating* mask = <const floating*>s.mask
    cdef const floating* zone_h = <const floating*>s.zone_h
    cdef const floating* zone_c = <const floating*>s.zone_c
    cdef floating* hprev = <floating*>s.hprev
    cdef floating* gates = <floating*>s.gates
    cdef floating* c = <floating*>s.c
    cdef floating* tc = <floating*>s.tc
    cdef floating* h = <floating*>s.h
    cdef const floating** ln = <const floating**>s.ln
    cdef floating** saved = <floating**>s.ln_saved
    cdef const floating* c_prev
    cdef const floating* h_prev
    cdef floating* a
    for t in range(T):
        # hprev[:, t] = h(t-1) * mask: the recurrent input, kept for dWh in backward.
        for n in range(n0, n1):
            row = n * T + t
            h_prev = h0 + n * H if t == 0 else h + (row - 1) * H
            _recurrent_input(h_prev + u0, mask + n * H + u0 if mask != NULL else NULL,
                             hprev + row * H + u0, w)
        if team:   # the product needs every unit of hprev[:, t]
            rn_team_barrier()
        # Recurrent projection, written straight into this step's gate slots (row stride T*G).
        _product_units(recurrent, n1 - n0, hprev + (n0 * T + t) * H, T * H,
                       gates + (n0 * T + t) * G, T * G, summed and not picked, H, u0, u1)
        for n in range(n0, n1):
            row = n * T + t
            a = gates + row * G + u0
            if not summed:   # u0 = 0, w = H
                _ln_row_forward(a, G, ln[2], ln[3], s.eps, a, saved[2] + row * G, saved[3] + row)
                _gates(a, xw + row * G, b, H, H)
            else:
                _gates(a, Wx + s.tokens[row] * G + u0 if picked else NULL, b + u0, H, w)
            c_prev = (c0 + n * H if t == 0 else c + (row - 1) * H) + u0
            _cell(a, c_prev, c + row * H + u0, H, w)
            if not summed:
                _ln_row_forward(c + row * H, H, ln[4], ln[5], s.eps, scratch, saved[4] + row * H,
                                saved[5] + row)
                _out(scratch, a + 2 * H, tc + row * H, h + row * H, H)
            else:
                _out(c + row * H + u0, a + 2 * H, tc + row * H + u0, h + row * H + u0, w)
            # Zoneout: the candidates just written become u * previous + (1 - u) * candidate.
            if zone_c != NULL:
                _zone_mix(zone_c + row * H + u0, c_prev, c + row * H + u0, w)
            if zone_h != NULL:
                h_prev = (h0 + n * H if t == 0 else h + (row - 1) * H) + u0
                _zone_mix(zone_h + row * H + u0, h_prev, h + row * H + u0, w)


cdef void _lstm_forward_units(floating probe, const LSTMArrays* s, const StepWeights* recurrent,
                              int index, int size) noexcept nogil:
    """Thread ``index`` of a team of ``size`` (inside a parallel region) packs and runs its
    units of every row of a small batch without layer norm."""
    cdef Py_ssize_t u0 = _unit_start(s.H, index, size), u1 = _unit_start(s.H, index + 1, size)
    _pack_units(probe, recurrent, s.H, u0, u1)   # its own panels: read by no other thread
    _lstm_forward_block(probe, s, recurrent, NULL, NULL, 0, s.N, u0, u1, True)


cdef void _lstm_forward(floating probe, const LSTMArrays* s, floating* xw,
                        floating* scratch) noexcept nogil:
    """Fill the saved arrays of s. With layer norm xw (N, T, 4H) receives the normalized input
    projection; without it xw is NULL and both projections are summed in the gate slots.
    scratch: H values per thread (s.n_threads)."""
    cdef Py_ssize_t N = s.N, T = s.T, D = s.D, H = s.H, G = 4 * H, row, part, parts
    cdef bint summed = not s.layer_norm
    cdef const floating** ln = <const floating**>s.ln
    cdef floating** saved = <floating**>s.ln_saved
    cdef floating* gates = <floating*>s.gates
    cdef StepWeights recurrent

    # The input projection of every time step in one matrix product — straight into the gate
    # slots when nothing has to be done to it before the recurrent projection is added.
    if s.tokens != NULL:   # one-hot rows: the product picks rows of Wx (exactly)
        if not summed:     # (summed, the time loop reads them from Wx itself)
            _gather_rows(s.n_threads, s.tokens, N * T, G, <const floating*>s.Wx, xw)
    else:
        _product_split(s.n_threads, False, False, N * T, G, D, <const floating*>s.x, D,
                       <const floating*>s.Wx, G, gates if summed else xw, G)
    if not summed:
        for row in prange(N * T, num_threads=s.n_threads, schedule="static"):
            _ln_row_forward(xw + row * G, G, ln[0], ln[1], s.eps, xw + row * G,
                            saved[0] + row * G, saved[1] + row)
    _step_weights_init(&recurrent, _packing_pays(N, T, False), H, G, <const floating*>s.Wh, False)
    parts = _unit_parts(s)
    if parts > 1:
        with parallel(num_threads=parts):
            _lstm_forward_units(probe, s, &recurrent, rn_team_index(), rn_team_size())
    else:
        _pack_units(probe, &recurrent, H, 0, H)
        parts = _row_parts(&recurrent, N, s.n_threads)
        if parts == 1:
            _lstm_forward_block(probe, s, &recurrent, xw, scratch, 0, N, 0, H, False)
        else:
            for part in prange(parts, num_threads=parts, schedule="static", chunksize=1):
                _lstm_forward_block(probe, s, &recurrent, xw, scratch + part * H,
                                    part * N // parts, (part + 1) * N // parts, 0, H, False)
    _step_weights_free(&recurrent)


cdef object _lstm_forward_typed(floating probe, x, h0, c0, Wx, Wh, b, layer_norm,
                                recurrent_mask, double eps, zoneout_h, zoneout_c):
    cdef int tn = _typenum(probe), k
    cdef LSTMArrays s
    memset(&s, 0, sizeof(s))
    if _is_tokens(x):   # one-hot inputs given as ids: D is the number of rows of Wx
        s.tokens = <const int64_t*>_array(x, "x", cnp.NPY_INT64, 2)
        s.N, s.T = _dim(x, 0), _dim(x, 1)
        _array(Wx, "Wx", tn, 2)
        s.D = _dim(Wx, 0)
    else:
        s.x = _array(x, "x", tn, 3)
        s.N, s.T, s.D = _dim(x, 0), _dim(x, 1), _dim(x, 2)
    s.Wh = _array(Wh, "Wh", tn, 2)
    s.H = _dim(Wh, 0)
    cdef Py_ssize_t N = s.N, T = s.T, D = s.D, H = s.H, G = 4 * H
    _nonempty("x", N * T * D)
    _nonempty("Wh", H)
    _array(Wh, "Wh", tn, 2, H, G)
    s.Wx = _array(Wx, "Wx", tn, 2, D, G)
    if s.tokens != NULL:
        _check_ids(s.tokens, N * T, D, "x")
    s.b = _array(b, "b", tn, 1, G)
    s.h0 = _array(h0, "h0", tn, 2, N, H)
    if c0 is None:   # a zero initial cell state
        c0 = _zeros(tn, N, H)
    s.c0 = _array(c0, "c0", tn, 2, N, H)
    _positive_eps(eps)
    s.eps = eps
    ln_params = saved = None
    if layer_norm is not None:
        s.layer_norm = True
        ln_params = {}
        for k, name in enumerate(LSTM_LAYER_NORM_PARAMS):
            arr = _item(layer_norm, name, "layer_norm")
            s.ln[k] = _array(arr, f"layer_norm[{name!r}]", tn, 1, H if k >= 4 else G)
            ln_params[name] = arr
        saved = {}
        for k, name in enumerate(LN_SAVED):   # xhat (N, T, G | H), then its rstd (N, T)
            arr = _empty(tn, N, T, (H if k == 4 else G)) if k % 2 == 0 else _empty(tn, N, T)
            saved[name] = arr
            s.ln_saved[k] = _ptr(arr)
    if recurrent_mask is not None:
        s.mask = _array(recurrent_mask, "recurrent_mask", tn, 2, N, H)
    if zoneout_h is not None:
        s.zone_h = _array(zoneout_h, "zoneout_h", tn, 3, N, T, H)
    if zoneout_c is not None:
        s.zone_c = _array(zoneout_c, "zoneout_c", tn, 3, N, T, H)
    gates, hprev = _empty(tn, N, T, G), _empty(tn, N, T, H)
    c, tc, h = _empty(tn, N, T, H), _empty(tn, N, T, H), _empty(tn, N, T, H)
    s.gates, s.hprev, s.c, s.tc, s.h = _ptr(gates), _ptr(hprev), _ptr(c), _ptr(tc), _ptr(h)
    xw = _empty(tn, N, T, G) if s.layer_norm else None
    cdef floating* xw_p = <floating*>_ptr(xw) if s.layer_norm else NULL
    cdef floating* scratch_p
    s.n_threads = _acquire_threads()
    try:
        scratch = _empty(tn, s.n_threads, H)
        scratch_p = <floating*>_ptr(scratch)
        with nogil:
            _lstm_forward(probe, &s, xw_p, scratch_p)
    finally:
        _release_threads()
    if saved is not None:
        for arr in saved.values():
            _frozen(arr)
        saved = MappingProxyType(saved)
        ln_params = MappingProxyType(ln_params)
    return LSTMCache(x, h0, c0, Wx, Wh, b, ln_params, recurrent_mask, eps, _frozen(hprev),
                     _frozen(gates), _frozen(c), _frozen(tc), _frozen(h), saved, N, T, D, H,
                     zoneout_h, zoneout_c)


def lstm_forward(x, h0, c0, Wx, Wh, b, layer_norm, recurrent_mask, double eps, zoneout_h=None,
                 zoneout_c=None):
    """Run an LSTM over x (N, T, D) — or over one-hot inputs given as int64 token ids x (N, T)
    in [0, D) — from (h0, c0) (N, H; c0 None: zeros) with Wx (D, 4H), Wh (H, 4H), b (4H,);
    ``layer_norm``: None or a mapping of the LSTM_LAYER_NORM_PARAMS; ``recurrent_mask``: None or
    (N, H); eps > 0; ``zoneout_h``, ``zoneout_c``: None or zoneout weights (N, T, H) (see
    _conventions). Returns an LSTMCache whose ``h`` (N, T, H) is the output."""
    if _is_float32(Wx if _is_tokens(x) else x):
        return _lstm_forward_typed[float](0, x, h0, c0, Wx, Wh, b, layer_norm, recurrent_mask,
                                          eps, zoneout_h, zoneout_c)
    return _lstm_forward_typed[double](0, x, h0, c0, Wx, Wh, b, layer_norm, recurrent_mask, eps,
                                       zoneout_h, zoneout_c)


cdef void _lstm_backward_block(floating probe, const LSTMArrays* s, const LSTMGradArrays* g,
                               const StepWeights* recurrent_t, floating* row_buf, Py_ssize_t n0,
                               Py_ssize_t n1, Py_ssize_t u0, Py_ssize_t u1,
                               bint team) noexcept nogil:
    """Backpropagation through time for rows n0 <= n < n1 and units u0 <= j < u1 (all units
    with layer norm; team as in _lstm_forward_block: the threads meet before each step's
    product, which needs the gate gradients of every unit). The layer-norm parameters'
    gradients of the recurrent and cell normalizations go to each sequence's g.ln_parts row.
    row_buf: 2H values, of which the block's units are used."""
    cdef Py_ssize_t T = s.T, H = s.H, G = 4 * H, w = u1 - u0, n, t, row, k, j
    cdef const floating* dh = <const floating*>g.dh
    cdef floating* dh_next = <floating*>g.dh_next
    cdef floating* dc_next = <floating*>g.dc_next
    cdef floating* da = <floating*>g.da
    cdef floating* dhw = <floating*>g.dhw
    cdef const floating* c0 = <const floating*>s.c0
    cdef const floating* mask = <const floating*>s.mask
    cdef const floating* zone_h = <const floating*>s.zone_h
    cdef const floating* zone_c = <const floating*>s.zone_c
    cdef const floating* zero_row = <const floating*>g.zero_row
    cdef floating* carry = <floating*>g.zone_carry
    cdef floating* dt = row_buf + u0             # the gradient reaching the cell's output
    cdef floating* zone_buf = row_buf + H + u0   # dh~ of the step, then u_c * dc(t)
    cdef const floating* gates = <const floating*>s.gates
    cdef const floating* c = <const floating*>s.c
    cdef const floating* tc = <const floating*>s.tc
    cdef const floating** ln = <const floating**>s.ln
    cdef const floating** saved = <const floating**>s.ln_saved
    cdef const floating* a
    cdef const floating* c_prev
    cdef floating* da_row
    cdef double* sums
    for t in range(T - 1, -1, -1):
        for n in range(n0, n1):
            row = n * T + t
            a = gates + row * G + u0
            da_row = da + row * G + u0
            k = n * H + u0
            sums = g.ln_parts + n * (2 * G + 2 * H) if s.layer_norm else NULL
            if zone_h != NULL:
                # h_t = u h(t-1) + (1 - u) h~_t: u of h_t's gradient skips the step (carry),
                # 1 - u of it reaches the cell's output h~_t.
                _zone_split(zone_h + row * H + u0, dh + row * H + u0, dh_next + k, carry + k,
                            zone_buf, w)
                _bwd_out(zone_buf, zero_row, a, tc + row * H + u0, da_row, dt, H, w)
            else:
                _bwd_out(dh + row * H + u0, dh_next + k, a, tc + row * H + u0, da_row, dt, H, w)
            if s.layer_norm:   # u0 = 0, w = H
                _ln_row_backward(dt, saved[4] + row * H, saved[5][row], ln[4], H, dt,
                                 sums + 2 * G, sums + 2 * G + H)
            c_prev = (c0 + n * H if t == 0 else c + (row - 1) * H) + u0
            if zone_c != NULL:   # c_t = u c(t-1) + (1 - u) c~_t, likewise
                _zone_split(zone_c + row * H + u0, dc_next + k, NULL, zone_buf, dc_next + k, w)
            _bwd_cell(dt, dc_next + k, a, c_prev, da_row, H, w)
            if zone_c != NULL:
                _add(dc_next + k, zone_buf, w)
            if s.layer_norm:
                _ln_row_backward(da_row, saved[2] + row * G, saved[3][row], ln[2], G,
                                 dhw + row * G, sums, sums + G)
        if team:
            rn_team_barrier()
        # dh(t-1) = (dhw(t) @ Wh^T) * mask, this block's units of it
        _product_units(recurrent_t, n1 - n0, dhw + (n0 * T + t) * G, T * G, dh_next + n0 * H, H,
                       False, H, u0, u1)
        for n in range(n0, n1):
            k = n * H + u0
            if mask != NULL:
                for j in range(k, k + w):
                    dh_next[j] = dh_next[j] * mask[j]
            if zone_h != NULL:
                _add(dh_next + k, carry + k, w)


cdef void _lstm_backward_units(floating probe, const LSTMArrays* s, const LSTMGradArrays* g,
                               const StepWeights* recurrent_t, int index, int size) noexcept nogil:
    """Thread ``index`` of a team of ``size`` packs its units' columns of Wh^T and runs its units
    of every row of a small batch without layer norm (in its units of row_buf's first 2H)."""
    cdef Py_ssize_t u0 = _unit_start(s.H, index, size), u1 = _unit_start(s.H, index + 1, size)
    _pack_units(probe, recurrent_t, s.H, u0, u1)
    _lstm_backward_block(probe, s, g, recurrent_t, <floating*>g.row_buf, 0, s.N, u0, u1, True)


cdef void _add_parts(const double* parts, Py_ssize_t count, Py_ssize_t stride, Py_ssize_t n,
                     double* total) noexcept nogil:
    """total[j] += parts[i * stride + j] for i = 0, 1, ..., count - 1 in turn (a fixed order)."""
    cdef Py_ssize_t i, j
    for i in range(count):
        for j in range(n):
            total[j] += parts[i * stride + j]


cdef void _lstm_backward_time_loop(floating probe, const LSTMArrays* s,
                                   const LSTMGradArrays* g) noexcept nogil:
    """The time loop of the backward pass, on one thread or shared by hidden units or rows."""
    cdef Py_ssize_t N = s.N, H = s.H, G = 4 * H, part, parts
    cdef floating* row_buf = <floating*>g.row_buf
    cdef StepWeights recurrent_t   # Wh^T, for dh(t-1)
    _step_weights_init(&recurrent_t, _packing_pays(N, s.T, True), G, H, <const floating*>s.Wh, True)
    parts = _unit_parts(s)
    if parts > 1:
        with parallel(num_threads=parts):
            _lstm_backward_units(probe, s, g, &recurrent_t, rn_team_index(), rn_team_size())
    else:
        _pack_units(probe, &recurrent_t, H, 0, H)
        parts = _row_parts(&recurrent_t, N, s.n_threads)
        if parts == 1:
            _lstm_backward_block(probe, s, g, &recurrent_t, row_buf, 0, N, 0, H, False)
        else:
            for part in prange(parts, num_threads=parts, schedule="static", chunksize=1):
                _lstm_backward_block(probe, s, g, &recurrent_t, row_buf + part * 2 * H,
                                     part * N // parts, (part + 1) * N // parts, 0, H, False)
    _step_weights_free(&recurrent_t)


cdef void _lstm_backward(floating probe, const LSTMArrays* s,
                         const LSTMGradArrays* g) noexcept nogil:
    """Backpropagation through time over the arrays s saved; see LSTMGradArrays."""
    cdef Py_ssize_t N = s.N, T = s.T, D = s.D, H = s.H, G = 4 * H, n, t, row
    cdef Py_ssize_t stride = 2 * G + 2 * H
    cdef floating* da = <floating*>g.da
    cdef floating* dxw = <floating*>g.dxw
    cdef const floating** ln = <const floating**>s.ln
    cdef const floating** saved = <const floating**>s.ln_saved
    _lstm_backward_time_loop(probe, s, g)

    _sum_rows(da, N * T, G, g.db)
    if s.layer_norm:
        # The sequences' sums added in sequence order, whichever thread made them.
        _add_parts(g.ln_parts, N, stride, G, g.ln[2])
        _add_parts(g.ln_parts + G, N, stride, G, g.ln[3])
        _add_parts(g.ln_parts + 2 * G, N, stride, H, g.ln[4])
        _add_parts(g.ln_parts + 2 * G + H, N, stride, H, g.ln[5])
        memset(g.ln_parts, 0, N * stride * sizeof(double))
        for n in prange(N, num_threads=s.n_threads, schedule="static"):
            for t in range(T):
                row = n * T + t
                _ln_row_backward(da + row * G, saved[0] + row * G, saved[1][row], ln[0], G,
                                 dxw + row * G, g.ln_parts + n * stride,
                                 g.ln_parts + n * stride + G)
        _add_parts(g.ln_parts, N, stride, G, g.ln[0])
        _add_parts(g.ln_parts + G, N, stride, G, g.ln[1])
    # One matrix product for each weight gradient and for dx, over all time steps at once.
    if s.tokens != NULL:
        _add_rows_at(s.n_threads, s.tokens, N * T, G, dxw, D, <floating*>g.dWx)
    else:
        _product_split(s.n_threads, True, False, D, G, N * T, <const floating*>s.x, D, dxw, G,
                       <floating*>g.dWx, G)
    _product_split(s.n_threads, True, False, H, G, N * T, <const floating*>s.hprev, H,
                   <const floating*>g.dhw, G, <floating*>g.dWh, G)
    if g.dx != NULL:   # a one-hot input layer has no use for it (token ids have none)
        _product_split(s.n_threads, False, True, N * T, D, G, dxw, G, <const floating*>s.Wx, G,
                       <floating*>g.dx, D)


cdef object _lstm_backward_typed(floating probe, dh, dc_final, cache, bint need_dx, dW):
    cdef int tn = _typenum(probe), k
    cdef LSTMArrays s
    cdef LSTMGradArrays g
    memset(&s, 0, sizeof(s))
    memset(&g, 0, sizeof(g))
    if not isinstance(cache, LSTMCache):
        raise TypeError(f"cache must be the LSTMCache lstm_forward returned, got "
                        f"{type(cache).__name__}")
    # The dimensions recorded in the cache; every array is checked against them.
    s.N, s.T, s.D, s.H = cache.N, cache.T, cache.D, cache.H
    cdef Py_ssize_t N = s.N, T = s.T, D = s.D, H = s.H, G = 4 * H
    if N < 1 or T < 1 or D < 1 or H < 1:
        raise ValueError(f"cache dimensions must be >= 1, got N={N}, T={T}, D={D}, H={H}")
    if _is_tokens(cache.x):
        s.tokens = <const int64_t*>_array(cache.x, "cache.x", cnp.NPY_INT64, 2, N, T)
        _check_ids(s.tokens, N * T, D, "cache.x")
        need_dx = False   # ids have no gradient
    else:
        s.x = _array(cache.x, "cache.x", tn, 3, N, T, D)
    s.c0 = _array(cache.c0, "cache.c0", tn, 2, N, H)
    # Not read here, but part of the same forward pass: a cache is consistent as a whole or not.
    _array(cache.h0, "cache.h0", tn, 2, N, H)
    _array(cache.b, "cache.b", tn, 1, G)
    _array(cache.h, "cache.h", tn, 3, N, T, H)
    s.Wx = _array(cache.Wx, "cache.Wx", tn, 2, D, G)
    s.Wh = _array(cache.Wh, "cache.Wh", tn, 2, H, G)
    s.hprev = _array(cache.hprev, "cache.hprev", tn, 3, N, T, H)
    s.gates = _array(cache.gates, "cache.gates", tn, 3, N, T, G)
    s.c = _array(cache.c, "cache.c", tn, 3, N, T, H)
    s.tc = _array(cache.tc, "cache.tc", tn, 3, N, T, H)
    g.dh = _array(dh, "dh", tn, 3, N, T, H)
    if dc_final is not None:
        _array(dc_final, "dc_final", tn, 2, N, H)
    layer_norm, ln_saved = cache.layer_norm, cache.ln_saved
    if (layer_norm is None) != (ln_saved is None):
        raise TypeError("cache.layer_norm and cache.ln_saved must both be None or both set")
    ln_acc = {}
    if layer_norm is not None:
        s.layer_norm = True
        for k, name in enumerate(LSTM_LAYER_NORM_PARAMS):
            s.ln[k] = _array(_item(layer_norm, name, "cache.layer_norm"),
                             f"cache.layer_norm[{name!r}]", tn, 1, H if k >= 4 else G)
            ln_acc[name] = _zeros(cnp.NPY_DOUBLE, H if k >= 4 else G)
            g.ln[k] = <double*>_ptr(ln_acc[name])
        for k, name in enumerate(LN_SAVED):
            arr = _item(ln_saved, name, "cache.ln_saved")
            if k % 2 == 0:
                s.ln_saved[k] = _array(arr, f"cache.ln_saved[{name!r}]", tn, 3, N, T,
                                       H if k == 4 else G)
            else:
                s.ln_saved[k] = _array(arr, f"cache.ln_saved[{name!r}]", tn, 2, N, T)
    if cache.recurrent_mask is not None:
        s.mask = _array(cache.recurrent_mask, "cache.recurrent_mask", tn, 2, N, H)
    zone_carry = zero_row = None
    if cache.zoneout_h is not None:
        s.zone_h = _array(cache.zoneout_h, "cache.zoneout_h", tn, 3, N, T, H)
        zone_carry, zero_row = _empty(tn, N, H), _zeros(tn, H)
        g.zone_carry, g.zero_row = _ptr(zone_carry), _ptr(zero_row)
    if cache.zoneout_c is not None:
        s.zone_c = _array(cache.zoneout_c, "cache.zoneout_c", tn, 3, N, T, H)
    da = _empty(tn, N, T, G)
    dhw = dxw = da
    if s.layer_norm:
        dhw, dxw = _empty(tn, N, T, G), _empty(tn, N, T, G)
    dc_next = _zeros(tn, N, H) if dc_final is None else \
        cnp.PyArray_NewCopy(<cnp.ndarray>dc_final, cnp.NPY_CORDER)
    dh_next = _zeros(tn, N, H)
    dx = _empty(tn, N, T, D) if need_dx else None
    if dW is None:
        dWx, dWh = _empty(tn, D, G), _empty(tn, H, G)
    else:   # [dWx; dWh] written into the rows of the caller's array
        _array(dW, "dW", tn, 2, D + H, G, ANY, True)
        _disjoint_from(dW, "dW", [dh, dc_final, *_cache_arrays(cache)])
        dWx, dWh = dW[:D], dW[D:]
    db = _zeros(cnp.NPY_DOUBLE, G)
    if s.layer_norm:
        ln_parts = _zeros(cnp.NPY_DOUBLE, N, 2 * G + 2 * H)
        g.ln_parts = <double*>_ptr(ln_parts)
    g.dh_next, g.dc_next = _ptr(dh_next), _ptr(dc_next)
    g.da, g.dhw, g.dxw = _ptr(da), _ptr(dhw), _ptr(dxw)
    g.dx = _ptr(dx) if need_dx else NULL
    g.dWx, g.dWh, g.db = _ptr(dWx), _ptr(dWh), <double*>_ptr(db)
    s.n_threads = _acquire_threads()
    try:
        row_buf = _empty(tn, s.n_threads, 2 * H)
        g.row_buf = _ptr(row_buf)
        with nogil:
            _lstm_backward(probe, &s, &g)
    finally:
        _release_threads()
    grads = dict(dx=dx, dh0=dh_next, dc0=dc_next, dWx=dWx, dWh=dWh, db=_as_dtype(db, tn))
    for name, total in ln_acc.items():
        grads["d" + name] = _as_dtype(total, tn)
    return grads


def lstm_backward(dh, dc_final, cache, bint need_dx=True, dW=None):
    """dh (N, T, H): upstream gradient of every output; dc_final (N, H): of the final cell state
    (None: zero);
    cache: the LSTMCache of lstm_forward; need_dx False skips the input gradient (dx is None;
    always None for token-id inputs). dW: None, or a C-contiguous (D + H, 4H) array of dh's
    dtype, sharing no memory with the arguments, that receives [dWx; dWh] (then those two are
    views of it: a layer's weight gradient written into its place in a packed buffer).
    Returns a dict with dx, dh0, dc0, dWx, dWh, db and, with layer norm, ``d`` + the name of
    each LSTM_LAYER_NORM_PARAMS entry."""
    if _is_float32(dh):
        return _lstm_backward_typed[float](0, dh, dc_final, cache, need_dx, dW)
    return _lstm_backward_typed[double](0, dh, dc_final, cache, need_dx, dW)


# One time step is the sequence kernel with T = 1, wrapped the same way as in the NumPy twin.
lstm_step_forward, lstm_step_backward = step_functions(lstm_forward, lstm_backward)
