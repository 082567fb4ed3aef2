/* OpenMP's and BLAS's thread settings (C for rnnreg/_kernels.pyx). */
#ifndef RNNREG_KERNELS_THREADS_H
#define RNNREG_KERNELS_THREADS_H

#ifdef _OPENMP
#include <omp.h>
#define RN_HAVE_OPENMP 1
static int rn_openmp_max_threads(void) { return omp_get_max_threads(); }
/* Inside a parallel region: this thread's index, the team's size, and a barrier (an orphaned
   one: it binds to the region the calling thread runs in, here a Cython parallel() block). */
static int rn_team_index(void) { return omp_get_thread_num(); }
static int rn_team_size(void) { return omp_get_num_threads(); }
static void rn_team_barrier(void) {
#pragma omp barrier
}
#else
#define RN_HAVE_OPENMP 0
static int rn_openmp_max_threads(void) { return 1; }
static int rn_team_index(void) { return 0; }
static int rn_team_size(void) { return 1; }
static void rn_team_barrier(void) { }
#endif

typedef void (*rn_set_threads_t)(int);
typedef int (*rn_get_threads_t)(void);
static rn_set_threads_t rn_blas_set_threads = NULL;
static rn_get_threads_t rn_blas_get_threads = NULL;

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
/* Find the thread setting of the BLAS library that serves blas_function: the library that
   holds it, reopened without loading anything new (RTLD_NOLOAD), searched with its
   dependencies for OpenBLAS's setter under the names scipy's and NumPy's builds give it. */
static int rn_find_blas_threads(void *blas_function) {
    static const char *const names[][2] = {
        {"scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"},
        {"openblas_set_num_threads", "openblas_get_num_threads"},
        {"scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"},
        {"openblas_set_num_threads64_", "openblas_get_num_threads64_"},
    };
    Dl_info info;
    void *library, *set, *get;
    size_t i;
    if (!dladdr(blas_function, &info) || info.dli_fname == NULL) return 0;
    library = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (library == NULL) return 0;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        set = dlsym(library, names[i][0]);
        get = dlsym(library, names[i][1]);
        if (set != NULL && get != NULL) {
            rn_blas_set_threads = (rn_set_threads_t)set;
            rn_blas_get_threads = (rn_get_threads_t)get;
            return 1;
        }
    }
    return 0;
}
#else
static int rn_find_blas_threads(void *blas_function) { (void)blas_function; return 0; }
#endif
/* -1: this BLAS's setting is unknown to rnnreg (not OpenBLAS) */
static int rn_get_blas_threads(void) {
    return rn_blas_get_threads != NULL ? rn_blas_get_threads() : -1;
}
static void rn_set_blas_threads(int n) { if (rn_blas_set_threads != NULL) rn_blas_set_threads(n); }

#endif /* RNNREG_KERNELS_THREADS_H */
