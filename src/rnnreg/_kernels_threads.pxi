# Part of rnnreg/_kernels.pyx (included there, in order): threads.
# ----------------------------------------------------------------------------- threads
# The kernels share their work among threads with OpenMP (when the build has it, see setup.py),
# and split it so that the number of threads never changes a result:
# - the time loop of a sequence is split by sequences of the batch: every product and every
#   elementwise step computes a row from that row alone (rn_gemm_packed makes each row with the
#   same operations whatever rows share its call), and sums over the batch (the layer-norm
#   parameters' gradients) are made per sequence, then added in sequence order;
# - a large product is split into blocks of columns (or rows) of its result (PRODUCT_PARTS), a
#   split that depends on the product's shape only, each block one single-threaded BLAS call.
# So BLAS must not thread a block on its own (OpenBLAS's threaded products do not round like its
# single-threaded ones): for the length of a kernel call, BLAS is set to one thread (through its
# own setting, found next to the sgemm these kernels call) and rnnreg's threads do the sharing.
# A call uses min(OpenMP's limit, the threads BLAS was allowed, rnnreg.set_num_threads) threads,
# so threadpoolctl limits on either library, OMP_NUM_THREADS and OPENBLAS_NUM_THREADS all hold.
cdef extern from "_kernels_threads.h":
    int RN_HAVE_OPENMP
    int rn_openmp_max_threads() nogil
    int rn_team_index() nogil
    int rn_team_size() nogil
    void rn_team_barrier() nogil
    int rn_find_blas_threads(void* blas_function) nogil
    int rn_get_blas_threads() nogil
    void rn_set_blas_threads(int n) nogil

cdef bint _blas_threads_known = rn_find_blas_threads(<void*>sgemm)
cdef int _thread_limit = 0          # rnnreg.set_num_threads; 0: none of rnnreg's own
cdef bint _forked = False           # this process is a fork of one that may have used OpenMP
cdef int _calls_in_flight = 0       # kernel calls between _acquire_threads and _release_threads
cdef int _blas_threads_outside = -1  # BLAS's setting before the first of them pinned it to 1


def _set_thread_limit(int limit):
    """rnnreg.set_num_threads's compiled half: kernel calls use at most ``limit`` threads (0: no
    limit of rnnreg's own). Returns the previous limit."""
    global _thread_limit
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    previous = _thread_limit
    _thread_limit = limit
    return previous


def _after_fork_in_child():
    """Called in a child process made by fork (os.register_at_fork, rnnreg._backend): GNU
    OpenMP's thread pool does not survive fork, and a child that opened a parallel region on the
    parent's pool would wait for threads that no longer exist. Every later call here runs on
    one thread, whatever the limits say. A fork made while another thread's kernel call was in
    flight copies that call's pin of BLAS to one thread, but not the call: the child has no
    call in flight, and BLAS gets its setting back (unless someone has changed it since)."""
    global _forked, _calls_in_flight
    _forked = True
    if _calls_in_flight > 0:
        _calls_in_flight = 0
        if _blas_threads_outside > 1 and rn_get_blas_threads() == 1:
            rn_set_blas_threads(_blas_threads_outside)


def _thread_info():
    """What a kernel call would use now: a dict with ``openmp`` (the build has it),
    ``blas_threads_known`` (rnnreg found the BLAS's thread setting), ``limit`` (set_num_threads;
    0 none), ``threads`` (the threads the next call gets) and ``forked``."""
    return dict(openmp=bool(RN_HAVE_OPENMP), blas_threads_known=bool(_blas_threads_known),
                limit=_thread_limit, threads=_allowed_threads(), forked=bool(_forked))


cdef int _allowed_threads() noexcept:
    """The threads a call may use now: min(OpenMP's limit, BLAS's own setting — as it was before
    a call in flight pinned it —, set_num_threads), and one in a forked child. GIL held."""
    cdef int n = rn_openmp_max_threads()
    cdef int blas = _blas_threads_outside if _calls_in_flight > 0 else rn_get_blas_threads()
    if 1 <= blas < n:
        n = blas
    if 0 < _thread_limit < n:
        n = _thread_limit
    if _forked:
        n = 1
    return n if n > 1 else 1


cdef int _acquire_threads() noexcept:
    """Called with the GIL held, just before a kernel's nogil work (and _release_threads just
    after, the GIL held again): pins BLAS to one thread while any kernel call runs and returns
    the number of threads this call may use. The GIL orders the calls of Python threads, so the
    count of calls in flight needs no lock of its own."""
    global _calls_in_flight, _blas_threads_outside
    if _calls_in_flight == 0:
        _blas_threads_outside = rn_get_blas_threads()
        if _blas_threads_outside > 1:
            rn_set_blas_threads(1)
    _calls_in_flight += 1
    return _allowed_threads()


cdef void _release_threads() noexcept:
    """After the last call in flight: BLAS's own setting back — unless someone changed it while
    the calls ran (a threadpoolctl limit set in another thread): theirs is kept, not undone."""
    global _calls_in_flight
    _calls_in_flight -= 1
    if _calls_in_flight == 0 and _blas_threads_outside > 1 and rn_get_blas_threads() == 1:
        rn_set_blas_threads(_blas_threads_outside)


# A large product is split into PRODUCT_PARTS blocks along its longer side (so that what each
# block packs again, the other operand, is the smaller one), blocks at least PRODUCT_MIN_PART
# wide and a multiple of 16: four parts feed two or four cores, and cost one thread 1-12%
# against one whole BLAS call where blocks of 256 columns cost 10-20% (benchmarks/diagnostics/products.py).
cdef enum:
    PRODUCT_PARTS = 4
    PRODUCT_MIN_PART = 64
    PARALLEL_MIN = 1 << 18   # elements below which a memory-bound loop stays on one thread
    LN_BLOCK_ROWS = 256      # rows per block of the layer-norm backward's parameter sums


cdef int _threads_for(Py_ssize_t elements) noexcept:
    """Threads for a loop over this many elements that calls no BLAS (so BLAS needs no pin):
    one below PARALLEL_MIN (where starting threads costs more than it saves), else what a
    kernel call may use."""
    return 1 if elements < PARALLEL_MIN else _allowed_threads()


cdef void _product_split(int n_threads, bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n,
                         Py_ssize_t k, const floating* a, Py_ssize_t lda, const floating* b,
                         Py_ssize_t ldb, floating* c, Py_ssize_t ldc) noexcept nogil:
    """_product (no accumulate) in blocks of columns of C, or of rows when C is taller than
    wide, shared among n_threads threads. The blocks depend on the shape alone and each is
    computed by one thread, so the result is the same bit for bit with any number of threads."""
    cdef bint by_columns = n >= m
    cdef Py_ssize_t size = n if by_columns else m
    cdef Py_ssize_t parts = size // PRODUCT_MIN_PART, width, blocks, i, lo, w
    if parts > PRODUCT_PARTS:
        parts = PRODUCT_PARTS
    if parts <= 1 or m * n * k <= SMALL_PRODUCT:
        _product(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc)
        return
    width = ((size + parts - 1) // parts + 15) // 16 * 16
    blocks = (size + width - 1) // width
    for i in prange(blocks, num_threads=n_threads, schedule="static"):
        lo = i * width
        w = size - lo if size - lo < width else width
        if by_columns:
            _product(trans_a, trans_b, m, w, k, a, lda, b + (lo * ldb if trans_b else lo), ldb,
                     c + lo, ldc)
        else:
            _product(trans_a, trans_b, w, n, k, a + (lo if trans_a else lo * lda), lda, b, ldb,
                     c + lo * ldc, ldc)


cdef inline void _ln_row_forward(const floating* x, Py_ssize_t n, const floating* gamma,
                                 const floating* beta, double eps, floating* out,
                                 floating* xhat, floating* rstd) noexcept nogil:
    """Normalize one row of n values (out may be x); see rn_ln_fwd in _fastmath.h."""
    if floating is float:
        rn_ln_fwd_f(x, n, gamma, beta, eps, out, xhat, rstd)
    else:
        rn_ln_fwd_d(x, n, gamma, beta, eps, out, xhat, rstd)


cdef inline void _ln_row_backward(const floating* dout, const floating* xhat, floating rstd,
                                  const floating* gamma, Py_ssize_t n, floating* dx,
                                  double* dgamma, double* dbeta) noexcept nogil:
    """One row's layer-norm input gradient into dx (which may be dout), and its share of the
    gain and bias gradients added to dgamma and dbeta; see rn_ln_bwd_acc in _fastmath.h."""
    if floating is float:
        rn_ln_bwd_acc_f(dout, xhat, rstd, gamma, n, dx, dgamma, dbeta)
    else:
        rn_ln_bwd_acc_d(dout, xhat, rstd, gamma, n, dx, dgamma, dbeta)


cdef inline void _sum_rows(const floating* rows, Py_ssize_t m, Py_ssize_t n,
                           double* total) noexcept nogil:
    """total[j] += sum over r of rows[r, j], in double."""
    cdef Py_ssize_t r, j
    for r in range(m):
        for j in range(n):
            total[j] += rows[r * n + j]
