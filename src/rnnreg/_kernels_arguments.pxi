# Part of rnnreg/_kernels.pyx (included there, in order): argument checks.
# ----------------------------------------------------------------------------- arguments
# Entry points reach array data through the NumPy C API rather than typed memoryviews: acquiring a
# memoryview costs ~0.17 µs per argument and np.empty ~0.45 µs per array (measured here), and at
# batch 1 a sequence call passes ~20 arrays — more time than its arithmetic. _array is the one
# gate every argument passes: it reads the array's real flags and dimensions from its C struct.
cnp.import_array()

cdef extern from "numpy/arrayobject.h":
    bint PyArray_ISNOTSWAPPED(cnp.ndarray arr)
    bint PyArray_ISALIGNED(cnp.ndarray arr)

# Shorthand for "this dimension is whatever the array has" in _array's expected dimensions.
cdef enum:
    ANY = -1


cdef inline int _typenum(floating probe) noexcept nogil:
    if floating is float:
        return cnp.NPY_FLOAT
    else:
        return cnp.NPY_DOUBLE


cdef str _shape_text(cnp.ndarray arr):
    return str(tuple(cnp.PyArray_DIMS(arr)[k] for k in range(cnp.PyArray_NDIM(arr))))


cdef str _expected_text(int ndim, Py_ssize_t d0, Py_ssize_t d1, Py_ssize_t d2):
    dims = [d0, d1, d2][:ndim]
    return "(" + ", ".join("any" if d == ANY else str(d) for d in dims) + ("," if ndim == 1 else "") + ")"


cdef void* _array(object obj, str name, int typenum, int ndim, Py_ssize_t d0=ANY,
                  Py_ssize_t d1=ANY, Py_ssize_t d2=ANY, bint writeable=False) except NULL:
    """The data pointer of argument ``name``, after checking that it is an ndarray of the given
    type, native byte order, aligned, C-contiguous (and writeable when asked), with ``ndim`` axes
    (any number when ndim is ANY) whose real lengths equal d0, d1, d2 where those are not ANY.
    TypeError for the wrong kind of array, ValueError for the wrong size."""
    if not cnp.PyArray_Check(obj):
        raise TypeError(f"{name} must be a numpy array, got {type(obj).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>obj
    if (cnp.PyArray_TYPE(arr) != typenum or not PyArray_ISNOTSWAPPED(arr)
            or not PyArray_ISALIGNED(arr) or not cnp.PyArray_IS_C_CONTIGUOUS(arr)
            or (writeable and not cnp.PyArray_ISWRITEABLE(arr))):
        dtype = np.dtype(cnp.PyArray_TypeObjectFromType(typenum)).name
        raise TypeError(f"{name} must be a C-contiguous, aligned{', writeable' if writeable else ''} "
                        f"{dtype} array in native byte order, got {arr.dtype.str} "
                        f"(C-contiguous {bool(cnp.PyArray_IS_C_CONTIGUOUS(arr))}, aligned "
                        f"{bool(PyArray_ISALIGNED(arr))}, writeable {bool(cnp.PyArray_ISWRITEABLE(arr))})")
    cdef int nd = cnp.PyArray_NDIM(arr)
    cdef cnp.npy_intp* dims = cnp.PyArray_DIMS(arr)
    if ndim == ANY:
        return cnp.PyArray_DATA(arr)
    if nd != ndim:
        raise ValueError(f"{name} must have {ndim} axes, got shape {_shape_text(arr)}")
    if ((d0 != ANY and dims[0] != d0) or (d1 != ANY and dims[1] != d1)
            or (d2 != ANY and dims[2] != d2)):
        raise ValueError(f"{name} has shape {_shape_text(arr)}, expected "
                         f"{_expected_text(ndim, d0, d1, d2)}")
    return cnp.PyArray_DATA(arr)


cdef inline Py_ssize_t _dim(object arr, int axis) noexcept:
    """Length of an axis of an array that _array has accepted."""
    return cnp.PyArray_DIMS(<cnp.ndarray>arr)[axis]


cdef int _nonempty(str name, Py_ssize_t size) except -1:
    if size < 1:
        raise ValueError(f"{name} must not be empty")
    return 0


cdef void* _same_shape(object obj, str name, int typenum, object ref, str ref_name,
                       bint writeable=False) except NULL:
    """_array for an argument whose shape must equal that of an accepted array ``ref``."""
    cdef void* data = _array(obj, name, typenum, ANY, ANY, ANY, ANY, writeable)
    cdef cnp.ndarray arr = <cnp.ndarray>obj, other = <cnp.ndarray>ref
    cdef int k, nd = cnp.PyArray_NDIM(other)
    cdef bint same = cnp.PyArray_NDIM(arr) == nd
    if same:
        for k in range(nd):
            if cnp.PyArray_DIMS(arr)[k] != cnp.PyArray_DIMS(other)[k]:
                same = False
    if not same:
        raise ValueError(f"{name} has shape {_shape_text(arr)}, expected {_shape_text(other)} "
                         f"(the shape of {ref_name})")
    return data


cdef int _positive_eps(double eps) except -1:
    if not (eps > 0 and eps < INFINITY):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    return 0


cdef object _item(object mapping, str key, str label):
    """mapping[key] for an argument that should be a mapping holding key; TypeError otherwise."""
    try:
        return mapping[key]
    except (KeyError, TypeError, IndexError):
        raise TypeError(f"{label} must be a mapping holding {key!r}") from None


cdef inline void* _ptr(object arr) noexcept:
    """The data pointer of an array this module made itself."""
    return cnp.PyArray_DATA(<cnp.ndarray>arr)


cdef int _disjoint(object a, str a_name, object b, str b_name, bint same_ok) except -1:
    """Raise unless the memory of accepted arrays a and b does not overlap (or, when same_ok,
    is exactly the same: an elementwise loop may write where it reads)."""
    cdef char* pa = <char*>cnp.PyArray_DATA(<cnp.ndarray>a)
    cdef char* pb = <char*>cnp.PyArray_DATA(<cnp.ndarray>b)
    cdef Py_ssize_t na = cnp.PyArray_NBYTES(<cnp.ndarray>a), nb = cnp.PyArray_NBYTES(<cnp.ndarray>b)
    if same_ok and pa == pb and na == nb:
        return 0
    if pa < pb + nb and pb < pa + na:
        raise ValueError(f"{a_name} overlaps {b_name}" + ("" if not same_ok else
                         f" (it may be {b_name} itself, or apart from it)"))
    return 0


cdef int _disjoint_from(object out, str name, list reads) except -1:
    """Refuse an output array ``out`` (accepted by _array, so C-contiguous) whose bytes overlap
    those of an array the kernel reads (``reads``: accepted arrays, or anything else, skipped):
    the kernel would overwrite what it has yet to read."""
    for arr in reads:
        if cnp.PyArray_Check(arr):
            _disjoint(out, name, arr, "an array the kernel reads", False)
    return 0


cdef const int64_t* _ranges(object ranges, str name, Py_ssize_t n, bint sorted_) except NULL:
    """The data of ``ranges``, a C-contiguous int64 array (k, 2) of [start, stop) element ranges
    within [0, n], each with start <= stop, and with ``sorted_`` each starting at or after the
    previous one's stop: integer compares on every pair, so no range reads past the array."""
    cdef const int64_t* r = <const int64_t*>_array(ranges, name, cnp.NPY_INT64, 2, ANY, 2)
    cdef Py_ssize_t k, count = _dim(ranges, 0)
    cdef int64_t previous = 0
    for k in range(count):
        if not (0 <= r[2 * k] <= r[2 * k + 1] <= n):
            raise ValueError(f"{name}[{k}] = [{r[2 * k]}, {r[2 * k + 1]}) is not a range within "
                             f"[0, {n}]")
        if sorted_ and r[2 * k] < previous:
            raise ValueError(f"{name} must be sorted and disjoint: {name}[{k}] starts at "
                             f"{r[2 * k]}, before {previous}")
        previous = r[2 * k + 1]
    return r


cdef list _cache_arrays(object cache):
    """Every array a cache (a named tuple of arrays, sizes, mappings of arrays and None) holds,
    for _disjoint_from."""
    arrays = []
    for value in cache:
        if isinstance(value, (dict, MappingProxyType)):
            arrays.extend(value.values())
        elif cnp.PyArray_Check(value):
            arrays.append(value)
    return arrays
