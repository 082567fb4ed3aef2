/* A NumPy memory handler that keeps freed result blocks for reuse (NEP 49) (C for rnnreg/_kernels.pyx). */
#ifndef RNNREG_KERNELS_MEMORY_H
#define RNNREG_KERNELS_MEMORY_H

#include "pythread.h"
#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(_WIN32)
#include <malloc.h>
#endif
#define RN_CACHE_SLOTS 64
/* Blocks start on a cache line (RN_ALIGN bytes), and the header keeps that alignment for the
 * array behind it: an AVX-512 load from a line-aligned row reads one line, not two. The packed
 * step weights come from here too (rn_block_malloc/rn_block_free with a NULL ctx): from malloc,
 * their address modulo 64 depended on the heap's state, and a process whose panels straddled
 * lines ran the LSTM's step up to 1.3x slower for its whole life. */
#define RN_ALIGN 64
#define RN_HEADER RN_ALIGN   /* holds the block's size; a whole line, so the array stays aligned */
static char *rn_aligned_alloc(size_t size) {
#if defined(_WIN32)
    return (char *)_aligned_malloc(size, RN_ALIGN);
#else
    void *p = NULL;
    return posix_memalign(&p, RN_ALIGN, size) == 0 ? (char *)p : NULL;
#endif
}
static void rn_aligned_free(void *p) {
#if defined(_WIN32)
    _aligned_free(p);
#else
    free(p);
#endif
}
typedef struct { char *base; size_t size; unsigned long long used; } rn_block;
static rn_block rn_cached[RN_CACHE_SLOTS];
static size_t rn_cached_bytes = 0;
static size_t rn_cache_limit = (size_t)256 << 20;
static unsigned long long rn_clock = 0;   /* when each block was kept: oldest leaves first */
static PyThread_type_lock rn_cache_lock = NULL;

static char *rn_cache_take(size_t size) {
    char *base = NULL;
    int i;
    PyThread_acquire_lock(rn_cache_lock, WAIT_LOCK);
    for (i = 0; i < RN_CACHE_SLOTS; i++)
        if (rn_cached[i].base != NULL && rn_cached[i].size == size) {
            base = rn_cached[i].base;
            rn_cached[i].base = NULL;
            rn_cached_bytes -= size;
            break;
        }
    PyThread_release_lock(rn_cache_lock);
    return base;
}
static void *rn_block_malloc(void *ctx, size_t size) {
    char *base;
    (void)ctx;
    if (size > (size_t)-1 - RN_HEADER) return NULL;
    base = rn_cache_take(size);
    if (base == NULL) {
        base = rn_aligned_alloc(size + RN_HEADER);
        if (base == NULL) return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        /* As NumPy's own allocator does for 4 MiB and more: ask for huge pages, one fault
           per 2 MiB instead of per 4 KiB the first time the block is written. */
        if (size >= ((size_t)4 << 20)) {
            size_t offset = 4096 - (size_t)((Py_uintptr_t)base % 4096);
            madvise(base + offset, size + RN_HEADER - offset, MADV_HUGEPAGE);
        }
#endif
    }
    *(size_t *)base = size;
    return base + RN_HEADER;
}
static void *rn_block_calloc(void *ctx, size_t n, size_t elsize) {
    void *p;
    if (elsize != 0 && n > ((size_t)-1 - RN_HEADER) / elsize) return NULL;
    p = rn_block_malloc(ctx, n * elsize);
    if (p != NULL) memset(p, 0, n * elsize);
    return p;
}
static void rn_block_free(void *ctx, void *ptr, size_t size_hint);
/* A new block, the contents copied, the old block freed (kept): realloc would not keep the
 * alignment. NumPy reallocates only when an array is resized in place, which is rare. */
static void *rn_block_realloc(void *ctx, void *ptr, size_t size) {
    char *fresh;
    size_t old;
    if (ptr == NULL) return rn_block_malloc(ctx, size);
    fresh = (char *)rn_block_malloc(ctx, size);
    if (fresh == NULL) return NULL;
    old = *(size_t *)((char *)ptr - RN_HEADER);
    memcpy(fresh, ptr, old < size ? old : size);
    rn_block_free(ctx, ptr, old);
    return fresh;
}
static void rn_block_free(void *ctx, void *ptr, size_t size_hint) {
    char *base;
    size_t size;
    int i, kept = 0;
    (void)ctx; (void)size_hint;   /* the header's size is the one to trust */
    if (ptr == NULL) return;
    base = (char *)ptr - RN_HEADER;
    size = *(size_t *)base;
    if (size > rn_cache_limit) {
        rn_aligned_free(base);
        return;
    }
    PyThread_acquire_lock(rn_cache_lock, WAIT_LOCK);
    for (;;) {   /* room for it: the longest-kept blocks make way (sizes no longer asked for) */
        int empty = -1, oldest = -1;
        for (i = 0; i < RN_CACHE_SLOTS; i++) {
            if (rn_cached[i].base == NULL) { if (empty < 0) empty = i; }
            else if (oldest < 0 || rn_cached[i].used < rn_cached[oldest].used) oldest = i;
        }
        if (empty >= 0 && size <= rn_cache_limit - rn_cached_bytes) {
            rn_cached[empty].base = base;
            rn_cached[empty].size = size;
            rn_cached[empty].used = ++rn_clock;
            rn_cached_bytes += size;
            kept = 1;
            break;
        }
        if (oldest < 0) break;
        rn_aligned_free(rn_cached[oldest].base);
        rn_cached_bytes -= rn_cached[oldest].size;
        rn_cached[oldest].base = NULL;
    }
    PyThread_release_lock(rn_cache_lock);
    if (!kept) rn_aligned_free(base);
}
/* Frees every kept block and sets the limit; returns the bytes that were kept. */
static size_t rn_cache_reset(size_t limit) {
    size_t was;
    int i;
    PyThread_acquire_lock(rn_cache_lock, WAIT_LOCK);
    was = rn_cached_bytes;
    for (i = 0; i < RN_CACHE_SLOTS; i++) {
        rn_aligned_free(rn_cached[i].base);
        rn_cached[i].base = NULL;
    }
    rn_cached_bytes = 0;
    rn_cache_limit = limit;
    PyThread_release_lock(rn_cache_lock);
    return was;
}
static int rn_cache_init(void) {
    if (rn_cache_lock == NULL) rn_cache_lock = PyThread_allocate_lock();
    return rn_cache_lock != NULL;
}
static PyDataMem_Handler rn_block_handler = {
    "rnnreg_kept_blocks", 1,
    {NULL, rn_block_malloc, rn_block_calloc, rn_block_realloc, rn_block_free}
};
static void *rn_block_handler_address(void) { return &rn_block_handler; }

#endif /* RNNREG_KERNELS_MEMORY_H */
