/* The build's flags and the CPU's features (C for rnnreg/_kernels.pyx). */
#ifndef RNNREG_KERNELS_BUILD_H
#define RNNREG_KERNELS_BUILD_H

#ifndef RNNREG_DEBUG_BUILD
#define RNNREG_DEBUG_BUILD 0
#endif

/* Whether this CPU runs AVX2 and FMA code, asked of the CPU itself (CPUID, through the
   compiler's builtin) rather than of another library's private tables. */
static int rn_cpu_has_avx2_fma(void) {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

#endif /* RNNREG_KERNELS_BUILD_H */
