# Part of rnnreg/_kernels.pyx (included there, in order): result memory.
# ----------------------------------------------------------------------------- result memory
# Every call returns new arrays (its results and its cache), and a large new array costs more than
# its arithmetic on this kind of machine: malloc hands memory of that size back to the system on
# free and gets fresh pages on the next request, and each fresh 4 KiB page is a page fault and a
# zeroing (an LSTM forward with layer norm at batch 8, hidden 256 spent 3.5 of its 5.9 ms so,
# measured with perf). So the kernels make arrays of CACHE_MIN_BYTES or more through a NumPy
# memory handler (NEP 49) that keeps freed blocks, up to a byte limit, and gives one back when
# an array of the same size is asked for again — as the next batch of a training loop does.
# Each block carries its true size in a header, so a block is only ever reused for an array it
# holds; the arrays are ordinary NumPy arrays that own their data.
cdef extern from "_kernels_memory.h":
    int rn_cache_init()
    size_t rn_cache_reset(size_t limit)
    size_t rn_cached_bytes
    size_t rn_cache_limit
    void* rn_block_handler_address()
    object PyDataMem_SetHandler(object handler)

cdef enum:
    CACHE_MIN_BYTES = 1 << 16   # smaller arrays come from malloc's heap without fresh pages

if not rn_cache_init():
    raise MemoryError("rnnreg._kernels: could not allocate the result-memory lock")
cdef object _block_handler = PyCapsule_New(rn_block_handler_address(), "mem_handler", NULL)


def _set_array_cache_limit(Py_ssize_t limit):
    """Keep at most ``limit`` bytes of freed result memory for reuse (0: keep none); frees what
    is kept now. Returns the number of bytes that were kept."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return rn_cache_reset(<size_t>limit)


def _array_cache_info():
    """(bytes kept for reuse now, the limit)."""
    return int(rn_cached_bytes), int(rn_cache_limit)


cdef inline cnp.ndarray _new_array(int nd, cnp.npy_intp* dims, int typenum, bint zeroed):
    cdef Py_ssize_t k, nbytes = 4 if typenum == cnp.NPY_FLOAT else 8
    for k in range(nd):
        nbytes *= dims[k]
    if nbytes < CACHE_MIN_BYTES:
        return cnp.PyArray_ZEROS(nd, dims, typenum, 0) if zeroed else \
            cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    previous = PyDataMem_SetHandler(_block_handler)
    try:
        return cnp.PyArray_ZEROS(nd, dims, typenum, 0) if zeroed else \
            cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    finally:
        PyDataMem_SetHandler(previous)


cdef inline cnp.ndarray _empty(int typenum, Py_ssize_t d0, Py_ssize_t d1=-1, Py_ssize_t d2=-1):
    """A new C-ordered array of shape (d0[, d1[, d2]]) (typenum: float32, float64 or int64)."""
    cdef cnp.npy_intp dims[3]
    dims[0], dims[1], dims[2] = d0, d1, d2
    return _new_array(1 if d1 < 0 else (2 if d2 < 0 else 3), dims, typenum, False)


cdef inline cnp.ndarray _zeros(int typenum, Py_ssize_t d0, Py_ssize_t d1=-1):
    cdef cnp.npy_intp dims[2]
    dims[0], dims[1] = d0, d1
    return _new_array(1 if d1 < 0 else 2, dims, typenum, True)


cdef inline object _frozen(cnp.ndarray arr):
    """arr (made here) marked read-only: it is saved in a cache for a backward pass."""
    cnp.PyArray_CLEARFLAGS(arr, cnp.NPY_ARRAY_WRITEABLE)
    return arr


cdef inline bint _finite_run(const floating* p, Py_ssize_t n) noexcept nogil:
    """Whether n values just written (still in cache) are all finite."""
    if floating is float:
        return rn_all_finite_f(p, n) != 0
    else:
        return rn_all_finite_d(p, n) != 0


cdef inline bint _is_tokens(object x) except -1:
    """Whether x is meant as token ids (a 2-axis integer ndarray; _array then checks that it is
    int64, aligned, C-contiguous): see TOKEN_DTYPE in rnnreg._conventions."""
    return (cnp.PyArray_Check(x) and cnp.PyArray_NDIM(<cnp.ndarray>x) == 2
            and cnp.PyArray_ISINTEGER(<cnp.ndarray>x))


cdef int _check_ids(const int64_t* ids, Py_ssize_t n, Py_ssize_t D, str name) except -1:
    """Raise ValueError unless every one of the n ids lies in [0, D) (they index rows of Wx)."""
    cdef Py_ssize_t i, bad = -1
    with nogil:
        for i in range(n):
            if ids[i] < 0 or ids[i] >= D:
                bad = i
                break
    if bad >= 0:
        raise ValueError(f"{name}: token ids must lie in [0, {D}) (the rows of Wx), got "
                         f"{ids[bad]} at position {bad}")
    return 0


cdef inline bint _is_float32(object arr) except -1:
    """Whether the kernels run arr in float32 (else float64; _array checks which it really is)."""
    return cnp.PyArray_Check(arr) and cnp.PyArray_TYPE(<cnp.ndarray>arr) == cnp.NPY_FLOAT


cdef object _as_dtype(cnp.ndarray total, int typenum):
    """A float64 running sum returned in the kernel's dtype (itself when that is float64). A sum
    beyond float32's range becomes inf here without a NumPy warning: the public wrappers report
    non-finite results themselves."""
    if typenum == cnp.NPY_DOUBLE:
        return total
    cdef Py_ssize_t k, n = cnp.PyArray_SIZE(total)
    out = _empty(cnp.NPY_FLOAT, n)
    cdef const double* src = <const double*>_ptr(total)
    cdef float* dst = <float*>_ptr(out)
    for k in range(n):
        dst[k] = <float>src[k]
    return out


def new_buffer(Py_ssize_t n, dtype):
    """A new 1-D array of ``n`` elements of ``dtype`` (float32 or float64), uninitialized, from
    the kernels' result memory: a block freed by an earlier array of the same size is reused,
    without fresh pages (a model's gradient buffer, made at every batch)."""
    if n < 0 or n > PY_SSIZE_T_MAX // 8:
        raise ValueError(f"n must be in [0, {PY_SSIZE_T_MAX // 8}], got {n}")
    kind = np.dtype(dtype)
    if kind != np.float32 and kind != np.float64:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
    return _empty(cnp.NPY_FLOAT if kind == np.float32 else cnp.NPY_DOUBLE, n)
