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

/* Whether it also runs the AVX-512 code of the AVX-512 build: the foundation and the 128/256-bit
   forms (VL), byte/word (BW) and doubleword/quadword (DQ) instructions GCC may emit for
   -mavx512f -mavx512vl -mavx512bw -mavx512dq (Skylake-SP and later, Zen 4 and later). */
static int rn_cpu_has_avx512(void) {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    return rn_cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512dq");
#else
    return 0;
#endif
}

#endif /* RNNREG_KERNELS_BUILD_H */
