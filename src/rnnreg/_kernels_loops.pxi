# Part of rnnreg/_kernels.pyx (included there, in order): vectorized loops and matrix products.
# ----------------------------------------------------------------------------- vectorized loops
cdef extern from "_fastmath.h" nogil:
    void rn_gates_d(double* a, const double* xw, const double* b, Py_ssize_t H, Py_ssize_t n)
    void rn_gates_f(float* a, const float* xw, const float* b, Py_ssize_t H, Py_ssize_t n)
    void rn_cell_d(const double* a, const double* c_prev, double* c, Py_ssize_t H,
                   Py_ssize_t n)
    void rn_cell_f(const float* a, const float* c_prev, float* c, Py_ssize_t H,
                   Py_ssize_t n)
    void rn_out_d(const double* u, const double* o, double* tc, double* h, Py_ssize_t H)
    void rn_out_f(const float* u, const float* o, float* tc, float* h, Py_ssize_t H)
    void rn_bwd_out_d(const double* dh, const double* dh_next, const double* a, const double* tc,
                      double* da, double* dt, Py_ssize_t H, Py_ssize_t n)
    void rn_bwd_out_f(const float* dh, const float* dh_next, const float* a, const float* tc,
                      float* da, float* dt, Py_ssize_t H, Py_ssize_t n)
    void rn_bwd_cell_d(const double* dcell, double* dc_next, const double* a, const double* c_prev,
                       double* da, Py_ssize_t H, Py_ssize_t n)
    void rn_bwd_cell_f(const float* dcell, float* dc_next, const float* a, const float* c_prev,
                       float* da, Py_ssize_t H, Py_ssize_t n)
    void rn_zone_mix_d(const double* u, const double* prev, double* x, Py_ssize_t H)
    void rn_zone_mix_f(const float* u, const float* prev, float* x, Py_ssize_t H)
    void rn_zone_split_d(const double* u, const double* d, const double* d_extra, double* skip,
                         double* through, Py_ssize_t H)
    void rn_zone_split_f(const float* u, const float* d, const float* d_extra, float* skip,
                         float* through, Py_ssize_t H)
    void rn_add_d(double* x, const double* y, Py_ssize_t n)
    void rn_add_f(float* x, const float* y, Py_ssize_t n)
    void rn_ln_fwd_d(const double* x, Py_ssize_t n, const double* gamma, const double* beta,
                     double eps, double* out, double* xhat, double* rstd)
    void rn_ln_fwd_f(const float* x, Py_ssize_t n, const float* gamma, const float* beta,
                     double eps, float* out, float* xhat, float* rstd)
    void rn_ln_bwd_acc_d(const double* dout, const double* xhat, double rstd, const double* gamma,
                         Py_ssize_t n, double* dx, double* dgamma, double* dbeta)
    void rn_ln_bwd_acc_f(const float* dout, const float* xhat, float rstd, const float* gamma,
                         Py_ssize_t n, float* dx, double* dgamma, double* dbeta)
    double rn_exp_shifted_d(const double* x, double shift, double* out, Py_ssize_t n)
    double rn_exp_shifted_f(const float* x, float shift, float* out, Py_ssize_t n)
    int rn_all_finite_d(const double* x, Py_ssize_t n)
    int rn_all_finite_f(const float* x, Py_ssize_t n)
    double rn_sum_squares_d(const double* x, Py_ssize_t n)
    double rn_sum_squares_f(const float* x, Py_ssize_t n)
    void rn_gemm_nn_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double* A,
                      Py_ssize_t sa_row, Py_ssize_t sa_col, const double* B, Py_ssize_t ldb,
                      double* C, Py_ssize_t ldc, int accumulate)
    void rn_gemm_nn_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* A,
                      Py_ssize_t sa_row, Py_ssize_t sa_col, const float* B, Py_ssize_t ldb,
                      float* C, Py_ssize_t ldc, int accumulate)
    Py_ssize_t rn_pack_d_size(Py_ssize_t k, Py_ssize_t n)
    Py_ssize_t rn_pack_f_size(Py_ssize_t k, Py_ssize_t n)
    void rn_pack_d(Py_ssize_t k, Py_ssize_t n, Py_ssize_t j0, Py_ssize_t j1, const double* B,
                   Py_ssize_t sb_row, Py_ssize_t sb_col, double* packed)
    void rn_pack_f(Py_ssize_t k, Py_ssize_t n, Py_ssize_t j0, Py_ssize_t j1, const float* B,
                   Py_ssize_t sb_row, Py_ssize_t sb_col, float* packed)
    void rn_gemm_packed_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t k,
                          const double* A, Py_ssize_t lda, const double* packed, double* C,
                          Py_ssize_t ldc, int accumulate)
    void rn_gemm_packed_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t k,
                          const float* A, Py_ssize_t lda, const float* packed, float* C,
                          Py_ssize_t ldc, int accumulate)
    void rn_gemm_nt_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double* A, Py_ssize_t lda,
                      const double* B, Py_ssize_t ldb, double* C, Py_ssize_t ldc)
    void rn_gemm_nt_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* A, Py_ssize_t lda,
                      const float* B, Py_ssize_t ldb, float* C, Py_ssize_t ldc)

# Products run as plain loops (rn_gemm_* in _fastmath.h) instead of BLAS when they have at most
# SMALL_BATCH rows (a time step of a tiny batch) or at most SMALL_PRODUCT multiply-adds (the whole
# sequence of the notebook's setting): below these sizes a BLAS call's fixed cost — checks and
# packing the operands — is larger than the arithmetic (measure: benchmarks/diagnostics/small_products.py).
# The time steps of a sequence multiply the same Wh at every step: they run on a copy of Wh
# packed once per sequence (StepWeights below), where BLAS would pack Wh again at every step.
cdef enum:
    SMALL_BATCH = 4
    SMALL_PRODUCT = 1 << 17


cdef inline void _gates(floating* a, const floating* xw, const floating* b, Py_ssize_t H,
                        Py_ssize_t n) noexcept nogil:
    """Units 0 <= j < n of the four gate blocks, H apart (see rn_gates in _fastmath.h)."""
    if floating is float:
        rn_gates_f(a, xw, b, H, n)
    else:
        rn_gates_d(a, xw, b, H, n)


cdef inline void _cell(const floating* a, const floating* c_prev, floating* c, Py_ssize_t H,
                       Py_ssize_t n) noexcept nogil:
    if floating is float:
        rn_cell_f(a, c_prev, c, H, n)
    else:
        rn_cell_d(a, c_prev, c, H, n)


cdef inline void _out(const floating* u, const floating* o, floating* tc, floating* h,
                      Py_ssize_t H) noexcept nogil:
    if floating is float:
        rn_out_f(u, o, tc, h, H)
    else:
        rn_out_d(u, o, tc, h, H)


cdef inline void _bwd_out(const floating* dh, const floating* dh_next, const floating* a,
                          const floating* tc, floating* da, floating* dt, Py_ssize_t H,
                          Py_ssize_t n) noexcept nogil:
    if floating is float:
        rn_bwd_out_f(dh, dh_next, a, tc, da, dt, H, n)
    else:
        rn_bwd_out_d(dh, dh_next, a, tc, da, dt, H, n)


cdef inline void _bwd_cell(const floating* dcell, floating* dc_next, const floating* a,
                           const floating* c_prev, floating* da, Py_ssize_t H,
                           Py_ssize_t n) noexcept nogil:
    if floating is float:
        rn_bwd_cell_f(dcell, dc_next, a, c_prev, da, H, n)
    else:
        rn_bwd_cell_d(dcell, dc_next, a, c_prev, da, H, n)


cdef inline void _zone_mix(const floating* u, const floating* prev, floating* x,
                           Py_ssize_t H) noexcept nogil:
    if floating is float:
        rn_zone_mix_f(u, prev, x, H)
    else:
        rn_zone_mix_d(u, prev, x, H)


cdef inline void _zone_split(const floating* u, const floating* d, const floating* d_extra,
                             floating* skip, floating* through, Py_ssize_t H) noexcept nogil:
    if floating is float:
        rn_zone_split_f(u, d, d_extra, skip, through, H)
    else:
        rn_zone_split_d(u, d, d_extra, skip, through, H)


cdef inline void _add(floating* x, const floating* y, Py_ssize_t n) noexcept nogil:
    if floating is float:
        rn_add_f(x, y, n)
    else:
        rn_add_d(x, y, n)


# BLAS takes its dimensions as 32-bit ints. A product with any dimension or row stride above
# _blas_int_max runs on the plain loops (which index with Py_ssize_t) instead of being cast down.
# The limit is a variable only so that tests can lower it and reach that path with small arrays.
cdef Py_ssize_t _blas_int_max = INT_MAX


def _set_blas_int_max(Py_ssize_t limit):
    """Testing hook: products with a dimension above ``limit`` skip BLAS (default INT_MAX).
    Returns the previous limit."""
    global _blas_int_max
    if limit < 1 or limit > INT_MAX:
        raise ValueError(f"limit must be in [1, {INT_MAX}], got {limit}")
    previous = _blas_int_max
    _blas_int_max = limit
    return previous


cdef inline bint _fits_blas(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, Py_ssize_t lda,
                            Py_ssize_t ldb, Py_ssize_t ldc) noexcept nogil:
    cdef Py_ssize_t top = _blas_int_max
    return m <= top and n <= top and k <= top and lda <= top and ldb <= top and ldc <= top


cdef inline void _product(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                          const floating* a, Py_ssize_t lda, const floating* b, Py_ssize_t ldb,
                          floating* c, Py_ssize_t ldc, bint accumulate=False) noexcept nogil:
    """Row-major C (m, n) = op(A) @ op(B), or C += op(A) @ op(B) when accumulate is set (not
    with trans_b): plain loops for small products (see SMALL_PRODUCT) and for dimensions BLAS's
    ints cannot hold, BLAS otherwise. lda, ldb, ldc are the row strides of A, B, C as stored.
    Not both trans_a and trans_b (no caller needs it; matmul refuses it above the BLAS limit)."""
    if ((m <= SMALL_BATCH or m * n * k <= SMALL_PRODUCT or not _fits_blas(m, n, k, lda, ldb, ldc))
            and not (trans_a and trans_b)):
        if trans_b:       # entries are dot products of rows of A and rows of B
            if floating is float:
                rn_gemm_nt_f(m, n, k, a, lda, b, ldb, c, ldc)
            else:
                rn_gemm_nt_d(m, n, k, a, lda, b, ldb, c, ldc)
        elif trans_a:     # A^T: the stored matrix read with its strides swapped
            if floating is float:
                rn_gemm_nn_f(m, n, k, a, 1, lda, b, ldb, c, ldc, accumulate)
            else:
                rn_gemm_nn_d(m, n, k, a, 1, lda, b, ldb, c, ldc, accumulate)
        else:
            if floating is float:
                rn_gemm_nn_f(m, n, k, a, lda, 1, b, ldb, c, ldc, accumulate)
            else:
                rn_gemm_nn_d(m, n, k, a, lda, 1, b, ldb, c, ldc, accumulate)
    else:
        _gemm(trans_a, trans_b, <int>m, <int>n, <int>k, 1, a, <int>lda, b, <int>ldb,
              1 if accumulate else 0, c, <int>ldc)


cdef struct StepWeights:
    # The recurrent weights one sequence multiplies at every step: B (k, n), packed once for
    # rn_gemm_packed (see _fastmath.h) when the sequence is long enough for the copy to pay
    # (_packing_pays), else read as is.
    void* packed        # NULL: use b_rows with _product
    const void* b_rows  # B row-major, or B^T row-major when transposed
    bint transposed
    Py_ssize_t k, n
    size_t packed_bytes  # the size of packed

# The packed copy comes from the result memory's kept blocks (_kernels_memory.h): line-aligned,
# and the same block again at the next call of the same size, with no fresh pages to fault in.
cdef extern from "_kernels_memory.h":
    void* rn_block_malloc(void* ctx, size_t size) nogil
    void rn_block_free(void* ctx, void* ptr, size_t size_hint) nogil


# A step of a batch of a few rows reads the weights as stored: B = Wh with a stride of 4H between
# its rows, for 1-4 rows of arithmetic per read. The packed panels run the forward product 1.5x
# (batch 1) to 3x (batch 3) faster, and the backward one (B = Wh^T) 1.4x faster at batches 2-4;
# at batch 1 rn_gemm_nt's dot products along Wh's rows are faster than the panels (0.84x). The
# copy costs about one step of batch 8 (a pass over Wh), so a sequence of a few rows is packed
# from PACK_MIN_STEPS steps on; shorter ones (sampling: one step per call) read B as stored.
# (Kernel forward and backward at hidden 256, T = 35, one thread, alternating builds: /tmp
# scripts, not kept; what the epoch gains is in benchmarks/results/2026-12-05-epoch-small-
# packed.json against 2026-12-05-epoch.json.)
cdef enum:
    PACK_MIN_STEPS = 8


cdef inline bint _packing_pays(Py_ssize_t N, Py_ssize_t T, bint transposed) noexcept nogil:
    if N > SMALL_BATCH:
        return True
    return T >= PACK_MIN_STEPS and not (transposed and N == 1)


cdef inline void _step_weights_init(StepWeights* w, bint pack, Py_ssize_t k, Py_ssize_t n,
                                    const floating* b, bint transposed) noexcept nogil:
    """B (k, n) = b (row-major (k, n)), or b^T when transposed (b row-major (n, k)); with pack,
    room for its packed copy, filled by _step_weights_pack (without memory for it, every step
    reads b as stored)."""
    w.packed = NULL
    w.b_rows = b
    w.transposed = transposed
    w.k = k
    w.n = n
    if not pack:
        return
    if floating is float:
        w.packed_bytes = rn_pack_f_size(k, n) * sizeof(float)
    else:
        w.packed_bytes = rn_pack_d_size(k, n) * sizeof(double)
    w.packed = rn_block_malloc(NULL, w.packed_bytes)   # NULL: B is read as stored


cdef inline void _step_weights_free(StepWeights* w) noexcept nogil:
    """Give the packed copy back (kept for the next sequence of the same shape)."""
    rn_block_free(NULL, w.packed, w.packed_bytes)
    w.packed = NULL


cdef inline void _step_weights_pack(floating probe, const StepWeights* w, Py_ssize_t j0,
                                    Py_ssize_t j1) noexcept nogil:
    """Pack columns j0 <= j < j1 of B (j0 a multiple of the panel width, see _fastmath.h)."""
    cdef const floating* b = <const floating*>w.b_rows
    cdef Py_ssize_t sb_row = 1 if w.transposed else w.n, sb_col = w.k if w.transposed else 1
    if w.packed == NULL:
        return
    if floating is float:
        rn_pack_f(w.k, w.n, j0, j1, b, sb_row, sb_col, <float*>w.packed)
    else:
        rn_pack_d(w.k, w.n, j0, j1, b, sb_row, sb_col, <double*>w.packed)


cdef inline void _step_product(const StepWeights* w, Py_ssize_t m, const floating* a,
                               Py_ssize_t lda, floating* c, Py_ssize_t ldc, bint accumulate,
                               Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """Columns j0 <= j < j1 of C (m, n) = A (m, k) @ B, or of C += A @ B, for one time step
    (accumulate not with a transposed B on the unpacked path). Each entry is made alike
    whatever the columns and rows of the call (on the unpacked path, for at most SMALL_BATCH
    rows and columns in multiples of UNIT_BLOCK)."""
    cdef const floating* b = <const floating*>w.b_rows
    if w.packed != NULL:
        if floating is float:
            rn_gemm_packed_f(m, w.n, j0, j1, w.k, a, lda, <const float*>w.packed, c, ldc,
                             accumulate)
        else:
            rn_gemm_packed_d(m, w.n, j0, j1, w.k, a, lda, <const double*>w.packed, c, ldc,
                             accumulate)
    elif w.transposed:
        _product(False, True, m, j1 - j0, w.k, a, lda, b + j0 * w.k, w.k, c + j0, ldc)
    else:
        _product(False, False, m, j1 - j0, w.k, a, lda, b + j0, w.n, c + j0, ldc, accumulate)


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)   # libm's sqrt would compute in double and round differently
    else:
        return sqrt(x)


cdef void _gemm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                const floating* a, int lda, const floating* b, int ldb,
                floating beta, floating* c, int ldc) noexcept nogil:
    """Row-major C (m, n) = alpha * op(A) @ op(B) + beta * C, with lda/ldb/ldc the row strides.

    Fortran BLAS is column-major, and a row-major matrix read column-major is its transpose, so
    we ask BLAS for C^T = op(B)^T @ op(A)^T: swap the operands, keep the transpose flags.
    """
    cdef char ta = b'N'
    cdef char tb = b'N'
    if trans_a:
        ta = b'T'
    if trans_b:
        tb = b'T'
    if m == 0 or n == 0:
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda, &beta, c, &ldc)
