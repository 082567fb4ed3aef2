/*
 * Inner loops of rnnreg's kernels that must vectorize: the LSTM's and the GRU's gate
 * nonlinearities and state updates, layer-norm rows, a softmax row, the finiteness check, and the matrix products that
 * BLAS does badly here — small ones, and a time step's product with the recurrent weights.
 *
 * Why C and not Cython: libm's exp/tanh are scalar calls, so a loop over them cannot vectorize
 * and ends up slower than NumPy's SIMD ufuncs from batch 16 up. rn_exp below is branch-free
 * (magic-number rounding, integer exponent arithmetic, a polynomial), so GCC turns the loops that
 * call it into SIMD code. `restrict` tells the compiler that outputs do not alias inputs.
 * Built without -ffast-math: IEEE rounding is kept; sums that must vectorize are written in
 * explicit lanes instead of asking the compiler to reassociate them.
 */
#ifndef RNNREG_FASTMATH_H
#define RNNREG_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define RN_INLINE static inline __attribute__((always_inline))
#else
#define RN_INLINE static inline
#endif

/* Fused multiply-add where the build has it (the AVX2 variant), written out explicitly: the
 * compiler is told not to contract a*b + c on its own (-ffp-contract=off, see setup.py). */
#if defined(__FMA__)
#define RN_FMA(a, b, c) __builtin_fma((a), (b), (c))
#define RN_FMAF(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define RN_FMA(a, b, c) ((a) * (b) + (c))
#define RN_FMAF(a, b, c) ((a) * (b) + (c))
#endif

/* ------------------------------------------------------------------ vector types
 * GCC/Clang vector extensions: RN_VBYTES-wide vectors of double (rn_vd) and float (rn_vf), and
 * 4-double vectors (rn_d4) that hold four float or double values widened for double sums. Where
 * a loop's register use matters (accumulators that must stay in registers), it is written with
 * these; GCC lowers them to whatever the build has (SSE2 pairs in the portable build). */
#if defined(__GNUC__)
/* 32-byte vectors in the portable (SSE2) build: GCC warns that passing them by value would change
 * the ABI, which cannot matter here: every function taking them is inlined into this module. */
#pragma GCC diagnostic ignored "-Wpsabi"
#if defined(__AVX512F__)
#define RN_VBYTES 64
#include <immintrin.h>
#elif defined(__AVX__)
#define RN_VBYTES 32
#include <immintrin.h>
#else
#define RN_VBYTES 16
#endif

/* Each vector type with its loads, stores and multiply-add. Loads go through memcpy: the rows
 * the kernels pass are not aligned to the vector size, and memcpy is how C says "unaligned". */
#define RN_DEFINE_VECTOR(V, T, FMA_INTRINSIC, M_TYPE, SPLAT_INTRINSIC)                        \
    RN_DEFINE_VECTOR_OF(V, T, RN_VBYTES, FMA_INTRINSIC, M_TYPE, SPLAT_INTRINSIC)
#define RN_DEFINE_VECTOR_OF(V, T, BYTES, FMA_INTRINSIC, M_TYPE, SPLAT_INTRINSIC)              \
typedef T V __attribute__((vector_size(BYTES)));                                             \
RN_INLINE V V##_load(const T *p) { V v; memcpy(&v, p, sizeof v); return v; }                 \
RN_INLINE void V##_store(T *p, V v) { memcpy(p, &v, sizeof v); }                             \
RN_INLINE V V##_fma(V a, V b, V c) { return RN_VFMA(a, b, c, FMA_INTRINSIC, M_TYPE); }       \
RN_INLINE V V##_splat(T x) { return RN_SPLAT(V, T, x, SPLAT_INTRINSIC); }                  \
RN_INLINE T V##_sum(V v) {                                                                   \
    T s = 0; for (size_t q = 0; q < sizeof(V) / sizeof(T); q++) s += v[q]; return s;       \
}
#if defined(__FMA__) && defined(__AVX__)
#define RN_VFMA(a, b, c, INTR, M) ((__typeof__(a))INTR((M)(a), (M)(b), (M)(c)))
#else
#define RN_VFMA(a, b, c, INTR, M) ((a) * (b) + (c))
#endif
/* A vector of copies of x: one broadcast instruction under AVX (GCC fills a float vector written
 * as a loop with a chain of inserts). Not (V){0} + x, which must really add: 0 + -0 is +0. */
#if defined(__AVX__)
#define RN_SPLAT(V, T, x, INTR) ((V)INTR(x))
#else
#define RN_SPLAT(V, T, x, INTR) \
    __extension__({ V v_; for (size_t q_ = 0; q_ < sizeof(V) / sizeof(T); q_++) v_[q_] = (x); v_; })
#endif
#if defined(__AVX512F__)   /* the AVX-512 build: 16 floats or 8 doubles a vector */
RN_DEFINE_VECTOR(rn_vd, double, _mm512_fmadd_pd, __m512d, _mm512_set1_pd)
RN_DEFINE_VECTOR(rn_vf, float, _mm512_fmadd_ps, __m512, _mm512_set1_ps)
#else
RN_DEFINE_VECTOR(rn_vd, double, _mm256_fmadd_pd, __m256d, _mm256_set1_pd)
RN_DEFINE_VECTOR(rn_vf, float, _mm256_fmadd_ps, __m256, _mm256_set1_ps)
#endif
/* The plain-loop products (rn_gemm_nn, rn_gemm_nt) give results that depend on their vector
 * width: which columns fall to the scalar tail (a multiply and an add, no FMA), and the lanes a
 * dot product is split into. They keep at most 32-byte vectors (rn_sd, rn_sf), so that the
 * AVX-512 build gives the AVX2 build's bits; the packed step product and the element-wise loops
 * make every element alike at any width and take the full one. */
#if RN_VBYTES > 32
#define RN_SMALL_VBYTES 32
#else
#define RN_SMALL_VBYTES RN_VBYTES
#endif
RN_DEFINE_VECTOR_OF(rn_sd, double, RN_SMALL_VBYTES, _mm256_fmadd_pd, __m256d, _mm256_set1_pd)
RN_DEFINE_VECTOR_OF(rn_sf, float, RN_SMALL_VBYTES, _mm256_fmadd_ps, __m256, _mm256_set1_ps)

typedef double rn_d4 __attribute__((vector_size(32)));
typedef float rn_f4 __attribute__((vector_size(16)));
RN_INLINE rn_d4 rn_d4_load_d(const double *p) { rn_d4 v; memcpy(&v, p, sizeof v); return v; }
RN_INLINE void rn_d4_store_d(double *p, rn_d4 v) { memcpy(p, &v, sizeof v); }
#if defined(__AVX__)   /* one instruction each way (GCC's generic conversion takes two halves) */
RN_INLINE rn_d4 rn_d4_load_f(const float *p) { return (rn_d4)_mm256_cvtps_pd(_mm_loadu_ps(p)); }
RN_INLINE void rn_d4_store_f(float *p, rn_d4 v) { _mm_storeu_ps(p, _mm256_cvtpd_ps((__m256d)v)); }
#else
RN_INLINE rn_d4 rn_d4_load_f(const float *p) {
    rn_f4 v; memcpy(&v, p, sizeof v); return __builtin_convertvector(v, rn_d4);
}
RN_INLINE void rn_d4_store_f(float *p, rn_d4 v) {
    rn_f4 f = __builtin_convertvector(v, rn_f4); memcpy(p, &f, sizeof f);
}
#endif
RN_INLINE double rn_d4_sum(rn_d4 v) { return (v[0] + v[1]) + (v[2] + v[3]); }
#endif

/* ------------------------------------------------------------------ exp, double precision
 * exp(x) = 2^k * exp(r), x = k ln2 + r, |r| <= ln2/2 (Cody-Waite: ln2 split in two parts so that
 * k*ln2_hi is exact). exp(r) by its Taylor series to r^13/13!, whose truncation error
 * (0.347^14/14! ~ 4e-18) is below half an ulp; measured error ~1 ulp. k is rounded with the
 * 1.5*2^52 trick, which leaves k in the low mantissa bits. Inputs are clamped to [-708, 709], so
 * the result never overflows to inf or underflows to a subnormal. */
RN_INLINE double rn_exp(double x) {
    const double magic = 6755399441055744.0;           /* 1.5 * 2^52 */
    x = x < -708.0 ? -708.0 : x;
    x = x > 709.0 ? 709.0 : x;
    double shifted = x * 1.4426950408889634 + magic;   /* k + magic, k = round(x / ln2) */
    double k = shifted - magic;
    double r = (x - k * 0.693147180369123816490) - k * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;
    p = RN_FMA(p, r, 1.0 / 479001600.0);
    p = RN_FMA(p, r, 1.0 / 39916800.0);
    p = RN_FMA(p, r, 1.0 / 3628800.0);
    p = RN_FMA(p, r, 1.0 / 362880.0);
    p = RN_FMA(p, r, 1.0 / 40320.0);
    p = RN_FMA(p, r, 1.0 / 5040.0);
    p = RN_FMA(p, r, 1.0 / 720.0);
    p = RN_FMA(p, r, 1.0 / 120.0);
    p = RN_FMA(p, r, 1.0 / 24.0);
    p = RN_FMA(p, r, 1.0 / 6.0);
    p = RN_FMA(p, r, 0.5);
    p = RN_FMA(p, r, 1.0);
    p = RN_FMA(p, r, 1.0);
    int64_t bits_shifted, bits_magic, scale_bits;
    memcpy(&bits_shifted, &shifted, 8);
    memcpy(&bits_magic, &magic, 8);
    scale_bits = (bits_shifted - bits_magic + 1023) << 52;   /* the double 2^k */
    double scale;
    memcpy(&scale, &scale_bits, 8);
    return p * scale;
}

/* ------------------------------------------------------------------ exp, single precision
 * The same in float: clamp to [-87, 88], round with 1.5*2^23, series to r^7/7! (truncation
 * 0.347^8/8! ~ 5e-9, under half an ulp of float). */
RN_INLINE float rn_expf(float x) {
    const float magic = 12582912.0f;                    /* 1.5 * 2^23 */
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float shifted = x * 1.44269504f + magic;
    float k = shifted - magic;
    float r = (x - k * 0.693145752f) - k * 1.42860677e-6f;
    float p = 1.0f / 5040.0f;
    p = RN_FMAF(p, r, 1.0f / 720.0f);
    p = RN_FMAF(p, r, 1.0f / 120.0f);
    p = RN_FMAF(p, r, 1.0f / 24.0f);
    p = RN_FMAF(p, r, 1.0f / 6.0f);
    p = RN_FMAF(p, r, 0.5f);
    p = RN_FMAF(p, r, 1.0f);
    p = RN_FMAF(p, r, 1.0f);
    int32_t bits_shifted, bits_magic, scale_bits;
    memcpy(&bits_shifted, &shifted, 4);
    memcpy(&bits_magic, &magic, 4);
    scale_bits = (bits_shifted - bits_magic + 127) << 23;
    float scale;
    memcpy(&scale, &scale_bits, 4);
    return p * scale;
}

/* sigmoid(x) = 1 / (1 + exp(-x)): with the clamped exp, never inf, never NaN, and relatively
 * accurate at both tails. tanh(x) = 1 - 2 / (exp(2x) + 1): accurate to an ulp of 1 near 0
 * (absolute, not relative, error there) and exactly +-1 at the tails. */
RN_INLINE double rn_sigmoid(double x) { return 1.0 / (1.0 + rn_exp(-x)); }
RN_INLINE float rn_sigmoidf(float x) { return 1.0f / (1.0f + rn_expf(-x)); }
RN_INLINE double rn_tanh(double x) { return 1.0 - 2.0 / (rn_exp(2.0 * x) + 1.0); }
RN_INLINE float rn_tanhf(float x) { return 1.0f - 2.0f / (rn_expf(2.0f * x) + 1.0f); }

/* ------------------------------------------------------------------ validation
 * Whether all n values are finite: x - x is 0 for a finite x and NaN for inf or NaN, and a NaN
 * survives any sum. The sum runs in RN_LANES explicit lanes, so it vectorizes without asking
 * the compiler to reassociate anything. */
#define RN_LANES 8
#define RN_DEFINE_ALL_FINITE(NAME, T)                                                         \
RN_INLINE int NAME(const T *restrict x, Py_ssize_t n) {                                       \
    T acc[RN_LANES], total = 0;                                                               \
    Py_ssize_t i, j;                                                                          \
    for (j = 0; j < RN_LANES; j++) acc[j] = 0;                                                \
    for (i = 0; i + RN_LANES <= n; i += RN_LANES)                                             \
        for (j = 0; j < RN_LANES; j++) acc[j] += x[i + j] - x[i + j];                         \
    for (; i < n; i++) acc[0] += x[i] - x[i];                                                 \
    for (j = 0; j < RN_LANES; j++) total += acc[j];                                           \
    return total == 0;                                                                        \
}
#if defined(__GNUC__)
/* The same test on the build's vectors, two at a time: GCC turns the eight scalar lanes into
 * slow shuffles when it may use AVX-512 (9x slower than the AVX2 build's, measured), and a
 * yes/no answer does not depend on the order of the sums. */
#define RN_DEFINE_ALL_FINITE_V(NAME, T, V)                                                    \
RN_INLINE int NAME(const T *restrict x, Py_ssize_t n) {                                       \
    const Py_ssize_t L = sizeof(V) / sizeof(T);                                               \
    V a0 = (V){0}, a1 = (V){0};                                                               \
    T total = 0;                                                                              \
    Py_ssize_t i, q;                                                                          \
    for (i = 0; i + 2 * L <= n; i += 2 * L) {                                                 \
        const V u = V##_load(x + i), w = V##_load(x + i + L);                                 \
        a0 += u - u;                                                                          \
        a1 += w - w;                                                                          \
    }                                                                                         \
    for (; i < n; i++) total += x[i] - x[i];                                                  \
    a0 += a1;                                                                                 \
    for (q = 0; q < L; q++) total += a0[q];                                                   \
    return total == 0;                                                                        \
}
RN_DEFINE_ALL_FINITE_V(rn_all_finite_d, double, rn_vd)
RN_DEFINE_ALL_FINITE_V(rn_all_finite_f, float, rn_vf)
#else
RN_DEFINE_ALL_FINITE(rn_all_finite_d, double)
RN_DEFINE_ALL_FINITE(rn_all_finite_f, float)
#endif

/* Sum of squares in double (a float32 gradient norm cannot overflow on the way), in RN_LANES
 * explicit lanes so that it vectorizes without reassociation; inf or NaN propagate. */
#define RN_DEFINE_SUM_SQUARES(NAME, T)                                                        \
RN_INLINE double NAME(const T *restrict x, Py_ssize_t n) {                                    \
    double acc[RN_LANES], total = 0, v;                                                       \
    Py_ssize_t i, j;                                                                          \
    for (j = 0; j < RN_LANES; j++) acc[j] = 0;                                                \
    for (i = 0; i + RN_LANES <= n; i += RN_LANES)                                             \
        for (j = 0; j < RN_LANES; j++) { v = (double)x[i + j]; acc[j] += v * v; }             \
    for (; i < n; i++) { v = (double)x[i]; acc[0] += v * v; }                                 \
    for (j = 0; j < RN_LANES; j++) total += acc[j];                                           \
    return total;                                                                             \
}
RN_DEFINE_SUM_SQUARES(rn_sum_squares_d, double)
RN_DEFINE_SUM_SQUARES(rn_sum_squares_f, float)

/* ------------------------------------------------------------------ layer norm, one row
 * Sums run in double: the mean, then the variance of the centred values (two passes: a large
 * mean cannot cancel). With vector types the sums run in two 4-double vectors (8 lanes, so
 * the adds pipeline) and the values are widened four at a time; the plain-C fallback keeps the
 * same 8 lanes as arrays. out may be x (in-place normalization of the LSTM's gate
 * pre-activations), so neither is declared restrict; xhat and rstd never alias anything. */
#define RN_LN_NORMALIZE(T)                                                                    \
    const T r = (T)1 / (T)sqrt((T)var + (T)eps);                                              \
    const T m = (T)mean;                                                                      \
    rstd[0] = r;                                                                              \
    for (i = 0; i < n; i++) {                                                                 \
        T c = (x[i] - m) * r;                                                                 \
        xhat[i] = c;                                                                          \
        out[i] = c * gamma[i] + beta[i];                                                      \
    }

/* Layer-norm backward of one row: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with
 * g = dout * gamma, in double; and the gain and bias gradients, dgamma += dout * xhat and
 * dbeta += dout (running sums in double), added in the same pass that reads dout and xhat.
 * dx may be dout (the LSTM normalizes its cell-state gradient in place), so neither is
 * restrict: every dx[i] is written after the last read of dout[i]. */
#if defined(__GNUC__)
/* The normalization on the build's vectors: the same multiply, then add, per element (GCC's own
 * vectorization of the scalar loop, whose out may be x, ran at half the AVX2 build's speed in the
 * AVX-512 build, measured). */
#define RN_LN_NORMALIZE_V(T, V)                                                               \
    const T r = (T)1 / (T)sqrt((T)var + (T)eps);                                              \
    const T m = (T)mean;                                                                      \
    const Py_ssize_t L = sizeof(V) / sizeof(T);                                               \
    const V mv_ = V##_splat(m), rv_ = V##_splat(r);                                           \
    rstd[0] = r;                                                                              \
    for (i = 0; i + L <= n; i += L) {                                                         \
        const V c = (V##_load(x + i) - mv_) * rv_;                                            \
        V##_store(xhat + i, c);                                                               \
        V##_store(out + i, c * V##_load(gamma + i) + V##_load(beta + i));                     \
    }                                                                                         \
    for (; i < n; i++) {                                                                      \
        T c = (x[i] - m) * r;                                                                 \
        xhat[i] = c;                                                                          \
        out[i] = c * gamma[i] + beta[i];                                                      \
    }
#define RN_DEFINE_LN_FWD(NAME, T, LOAD4, V)                                                   \
RN_INLINE void NAME(const T *x, Py_ssize_t n, const T *restrict gamma,                        \
                    const T *restrict beta, double eps, T *out, T *restrict xhat,             \
                    T *restrict rstd) {                                                       \
    rn_d4 a0 = {0, 0, 0, 0}, a1 = a0;                                                         \
    double mean, var, tail = 0, d;                                                            \
    Py_ssize_t i;                                                                             \
    for (i = 0; i + 8 <= n; i += 8) { a0 += LOAD4(x + i); a1 += LOAD4(x + i + 4); }           \
    for (; i < n; i++) tail += x[i];                                                          \
    mean = (rn_d4_sum(a0 + a1) + tail) / n;                                                   \
    const rn_d4 mv = {mean, mean, mean, mean};                                                \
    a0 = a1 = (rn_d4){0, 0, 0, 0};                                                            \
    tail = 0;                                                                                 \
    for (i = 0; i + 8 <= n; i += 8) {                                                         \
        const rn_d4 d0 = LOAD4(x + i) - mv, d1 = LOAD4(x + i + 4) - mv;                       \
        a0 += d0 * d0;                                                                        \
        a1 += d1 * d1;                                                                        \
    }                                                                                         \
    for (; i < n; i++) { d = x[i] - mean; tail += d * d; }                                    \
    var = (rn_d4_sum(a0 + a1) + tail) / n;                                                    \
    RN_LN_NORMALIZE_V(T, V)                                                                   \
}

#define RN_LN_BWD_QUAD(LOAD4, OFF, G_ACC, GX_ACC)                                                    \
    {                                                                                         \
        const rn_d4 d = LOAD4(dout + i + OFF), xh = LOAD4(xhat + i + OFF);                    \
        const rn_d4 g = d * LOAD4(gamma + i + OFF);                                           \
        G_ACC += g;                                                                           \
        GX_ACC += g * xh;                                                                     \
        rn_d4_store_d(dgamma + i + OFF, rn_d4_load_d(dgamma + i + OFF) + d * xh);             \
        rn_d4_store_d(dbeta + i + OFF, rn_d4_load_d(dbeta + i + OFF) + d);                    \
    }
#define RN_DEFINE_LN_BWD_ACC(NAME, T, LOAD4, STORE4)                                          \
RN_INLINE void NAME(const T *dout, const T *restrict xhat, T rstd,                           \
                    const T *restrict gamma, Py_ssize_t n, T *dx,                             \
                    double *restrict dgamma, double *restrict dbeta) {                        \
    rn_d4 g0 = {0, 0, 0, 0}, g1 = g0, gx0 = g0, gx1 = g0;                                     \
    double tail_g = 0, tail_gx = 0, mean_g, mean_gx, r = rstd;                                \
    Py_ssize_t i;                                                                             \
    for (i = 0; i + 8 <= n; i += 8) {                                                         \
        RN_LN_BWD_QUAD(LOAD4, 0, g0, gx0)                                                     \
        RN_LN_BWD_QUAD(LOAD4, 4, g1, gx1)                                                     \
    }                                                                                         \
    for (; i < n; i++) {                                                                      \
        double d = dout[i], xh = xhat[i], g = d * gamma[i];                                   \
        tail_g += g; tail_gx += g * xh;                                                       \
        dgamma[i] += d * xh; dbeta[i] += d;                                                   \
    }                                                                                         \
    mean_g = (rn_d4_sum(g0 + g1) + tail_g) / n;                                               \
    mean_gx = (rn_d4_sum(gx0 + gx1) + tail_gx) / n;                                           \
    for (i = 0; i + 4 <= n; i += 4)                                                           \
        STORE4(dx + i, r * (LOAD4(dout + i) * LOAD4(gamma + i) - mean_g                       \
                            - LOAD4(xhat + i) * mean_gx));                                    \
    for (; i < n; i++)                                                                        \
        dx[i] = (T)(r * ((double)dout[i] * gamma[i] - mean_g - xhat[i] * mean_gx));           \
}
RN_DEFINE_LN_FWD(rn_ln_fwd_d, double, rn_d4_load_d, rn_vd)
RN_DEFINE_LN_FWD(rn_ln_fwd_f, float, rn_d4_load_f, rn_vf)
RN_DEFINE_LN_BWD_ACC(rn_ln_bwd_acc_d, double, rn_d4_load_d, rn_d4_store_d)
RN_DEFINE_LN_BWD_ACC(rn_ln_bwd_acc_f, float, rn_d4_load_f, rn_d4_store_f)

#else   /* not GCC or Clang: the same sums in arrays of RN_LANES lanes */
#define RN_DEFINE_LN_FWD(NAME, T)                                                             \
RN_INLINE void NAME(const T *x, Py_ssize_t n, const T *restrict gamma,                        \
                    const T *restrict beta, double eps, T *out, T *restrict xhat,             \
                    T *restrict rstd) {                                                       \
    double acc[RN_LANES], mean = 0, var = 0, d;                                               \
    Py_ssize_t i, j;                                                                          \
    for (j = 0; j < RN_LANES; j++) acc[j] = 0;                                                \
    for (i = 0; i + RN_LANES <= n; i += RN_LANES)                                             \
        for (j = 0; j < RN_LANES; j++) acc[j] += x[i + j];                                    \
    for (; i < n; i++) acc[0] += x[i];                                                        \
    for (j = 0; j < RN_LANES; j++) mean += acc[j];                                            \
    mean /= n;                                                                                \
    for (j = 0; j < RN_LANES; j++) acc[j] = 0;                                                \
    for (i = 0; i + RN_LANES <= n; i += RN_LANES)                                             \
        for (j = 0; j < RN_LANES; j++) { d = x[i + j] - mean; acc[j] += d * d; }              \
    for (; i < n; i++) { d = x[i] - mean; acc[0] += d * d; }                                  \
    for (j = 0; j < RN_LANES; j++) var += acc[j];                                             \
    var /= n;                                                                                 \
    RN_LN_NORMALIZE(T)                                                                        \
}
#define RN_DEFINE_LN_BWD_ACC(NAME, T)                                                         \
RN_INLINE void NAME(const T *dout, const T *restrict xhat, T rstd,                           \
                    const T *restrict gamma, Py_ssize_t n, T *dx,                             \
                    double *restrict dgamma, double *restrict dbeta) {                        \
    double acc_g[RN_LANES], acc_gx[RN_LANES], mean_g = 0, mean_gx = 0, g;                     \
    Py_ssize_t i, j;                                                                          \
    for (j = 0; j < RN_LANES; j++) { acc_g[j] = 0; acc_gx[j] = 0; }                           \
    for (i = 0; i + RN_LANES <= n; i += RN_LANES)                                             \
        for (j = 0; j < RN_LANES; j++) {                                                      \
            double d = dout[i + j], xh = xhat[i + j];                                         \
            g = d * gamma[i + j];                                                             \
            acc_g[j] += g;                                                                    \
            acc_gx[j] += g * xh;                                                              \
            dgamma[i + j] += d * xh;                                                          \
            dbeta[i + j] += d;                                                                \
        }                                                                                     \
    for (; i < n; i++) {                                                                      \
        double d = dout[i], xh = xhat[i];                                                     \
        g = d * gamma[i]; acc_g[0] += g; acc_gx[0] += g * xh;                                 \
        dgamma[i] += d * xh; dbeta[i] += d;                                                   \
    }                                                                                         \
    for (j = 0; j < RN_LANES; j++) { mean_g += acc_g[j]; mean_gx += acc_gx[j]; }              \
    mean_g /= n;                                                                              \
    mean_gx /= n;                                                                             \
    for (i = 0; i < n; i++)                                                                   \
        dx[i] = (T)(rstd * ((double)dout[i] * gamma[i] - mean_g - xhat[i] * mean_gx));        \
}
RN_DEFINE_LN_FWD(rn_ln_fwd_d, double)
RN_DEFINE_LN_FWD(rn_ln_fwd_f, float)
RN_DEFINE_LN_BWD_ACC(rn_ln_bwd_acc_d, double)
RN_DEFINE_LN_BWD_ACC(rn_ln_bwd_acc_f, float)
#endif

/* ------------------------------------------------------------------ softmax, one row
 * out[j] = exp(x[j] - shift) for j < n (a loop that vectorizes), and their sum in double. */
#define RN_DEFINE_EXP_SHIFTED(NAME, T, EXP)                                                   \
RN_INLINE double NAME(const T *restrict x, T shift, T *restrict out, Py_ssize_t n) {          \
    Py_ssize_t j;                                                                             \
    double total = 0;                                                                         \
    for (j = 0; j < n; j++) out[j] = EXP(x[j] - shift);                                       \
    for (j = 0; j < n; j++) total += out[j];                                                  \
    return total;                                                                             \
}
RN_DEFINE_EXP_SHIFTED(rn_exp_shifted_d, double, rn_exp)
RN_DEFINE_EXP_SHIFTED(rn_exp_shifted_f, float, rn_expf)

/* ------------------------------------------------------------------ LSTM step, one row
 * a holds the recurrent projection of one batch row: four gate blocks [i f o g], H apart. Add
 * the input projection xw (NULL when a holds it already) and the bias b, then apply the gate
 * nonlinearities in place — sigmoid on [i f o], tanh on g — to units 0 <= j < n of each block:
 * n = H for the whole row, or a thread's units when a step is split by hidden units (a, xw and
 * b then point at its first unit; every unit's value is the same either way). */
#define RN_DEFINE_GATES(NAME, T, SIG, TANH)                                                   \
RN_INLINE void NAME(T *restrict a, const T *restrict xw, const T *restrict b, Py_ssize_t H,   \
                    Py_ssize_t n) {                                                           \
    Py_ssize_t j, q;                                                                          \
    for (q = 0; q < 4; q++) {                                                                 \
        T *restrict aq = a + q * H;                                                           \
        const T *restrict bq = b + q * H;                                                     \
        const T *restrict xq = xw == NULL ? NULL : xw + q * H;                                \
        if (xq == NULL && q < 3)  /* a holds both projections already */                      \
            for (j = 0; j < n; j++) aq[j] = SIG(aq[j] + bq[j]);                               \
        else if (xq == NULL)                                                                  \
            for (j = 0; j < n; j++) aq[j] = TANH(aq[j] + bq[j]);                              \
        else if (q < 3)                                                                       \
            for (j = 0; j < n; j++) aq[j] = SIG(aq[j] + xq[j] + bq[j]);                       \
        else                                                                                  \
            for (j = 0; j < n; j++) aq[j] = TANH(aq[j] + xq[j] + bq[j]);                      \
    }                                                                                         \
}
RN_DEFINE_GATES(rn_gates_d, double, rn_sigmoid, rn_tanh)
RN_DEFINE_GATES(rn_gates_f, float, rn_sigmoidf, rn_tanhf)

/* c = f * c_prev + i * g for units 0 <= j < n, the activated gates a = [i f o g] H apart. */
#define RN_DEFINE_CELL(NAME, T)                                                               \
RN_INLINE void NAME(const T *restrict a, const T *restrict c_prev, T *restrict c,            \
                    Py_ssize_t H, Py_ssize_t n) {                                             \
    Py_ssize_t j;                                                                             \
    for (j = 0; j < n; j++) c[j] = a[H + j] * c_prev[j] + a[j] * a[3 * H + j];                \
}
RN_DEFINE_CELL(rn_cell_d, double)
RN_DEFINE_CELL(rn_cell_f, float)

/* tc = tanh(u); h = o * tc, for u the cell state (or its layer norm). */
#define RN_DEFINE_OUT(NAME, T, TANH)                                                          \
RN_INLINE void NAME(const T *restrict u, const T *restrict o, T *restrict tc, T *restrict h,  \
                    Py_ssize_t H) {                                                           \
    Py_ssize_t j;                                                                             \
    for (j = 0; j < H; j++) { T t = TANH(u[j]); tc[j] = t; h[j] = o[j] * t; }                 \
}
RN_DEFINE_OUT(rn_out_d, double, rn_tanh)
RN_DEFINE_OUT(rn_out_f, float, rn_tanhf)

/* ------------------------------------------------------------------ LSTM step backward, one row
 * For units 0 <= j < n of a row whose gate blocks lie H apart (n = H: the whole row; see
 * rn_gates). First half: from the upstream gradient dh + dh_next of h = o * tc, the output
 * gate's pre-activation gradient (into da[2H:3H]) and the gradient of tanh's argument (into dt). */
#define RN_DEFINE_BWD_OUT(NAME, T)                                                            \
RN_INLINE void NAME(const T *restrict dh, const T *restrict dh_next, const T *restrict a,     \
                    const T *restrict tc, T *restrict da, T *restrict dt, Py_ssize_t H,       \
                    Py_ssize_t n) {                                                           \
    Py_ssize_t j;                                                                             \
    for (j = 0; j < n; j++) {                                                                 \
        T g = dh[j] + dh_next[j], o = a[2 * H + j], t = tc[j];                                \
        da[2 * H + j] = g * t * o * (1 - o);                                                  \
        dt[j] = g * o * (1 - t * t);                                                          \
    }                                                                                         \
}
RN_DEFINE_BWD_OUT(rn_bwd_out_d, double)
RN_DEFINE_BWD_OUT(rn_bwd_out_f, float)

/* Second half: dc = dcell + dc_next is the cell state's total gradient; it gives the i, f and g
 * pre-activation gradients and, through the forget gate, the next dc_next (updated in place). */
#define RN_DEFINE_BWD_CELL(NAME, T)                                                           \
RN_INLINE void NAME(const T *restrict dcell, T *restrict dc_next, const T *restrict a,        \
                    const T *restrict c_prev, T *restrict da, Py_ssize_t H, Py_ssize_t n) {   \
    Py_ssize_t j;                                                                             \
    for (j = 0; j < n; j++) {                                                                 \
        T i = a[j], f = a[H + j], g = a[3 * H + j];                                           \
        T dc = dcell[j] + dc_next[j];                                                         \
        da[j] = dc * g * i * (1 - i);                                                         \
        da[H + j] = dc * c_prev[j] * f * (1 - f);                                             \
        da[3 * H + j] = dc * i * (1 - g * g);                                                 \
        dc_next[j] = dc * f;                                                                  \
    }                                                                                         \
}
RN_DEFINE_BWD_CELL(rn_bwd_cell_d, double)
RN_DEFINE_BWD_CELL(rn_bwd_cell_f, float)

/* ------------------------------------------------------------------ GRU step, one row
 * (The equations are in _conventions.py.) a holds the recurrent projection of one batch row (or
 * its layer norm): three gate blocks [r z n], H apart; xw the row's input projection (the same
 * layout); b (3H), bn (H). For units 0 <= j < n (see rn_gates): r and z activated in place, the
 * reset gate's operand hn = a_n + bn saved, the candidate tanh(xw_n + b_n + r * hn) in place of
 * a_n, and the new state h = (1 - z) * candidate + z * h_prev. */
#define RN_DEFINE_GRU_STEP(NAME, T, SIG, TANH)                                                \
RN_INLINE void NAME(T *restrict a, const T *restrict xw, const T *restrict b,                 \
                    const T *restrict bn, const T *restrict h_prev, T *restrict hn,           \
                    T *restrict h, Py_ssize_t H, Py_ssize_t n) {                              \
    Py_ssize_t j;                                                                             \
    for (j = 0; j < n; j++) {                                                                 \
        T r = SIG(a[j] + xw[j] + b[j]);                                                       \
        T z = SIG(a[H + j] + xw[H + j] + b[H + j]);                                           \
        T hh = a[2 * H + j] + bn[j];                                                          \
        T c = TANH(xw[2 * H + j] + b[2 * H + j] + r * hh);                                    \
        a[j] = r;                                                                             \
        a[H + j] = z;                                                                         \
        a[2 * H + j] = c;                                                                     \
        hn[j] = hh;                                                                           \
        h[j] = (1 - z) * c + z * h_prev[j];                                                   \
    }                                                                                         \
}
RN_DEFINE_GRU_STEP(rn_gru_step_d, double, rn_sigmoid, rn_tanh)
RN_DEFINE_GRU_STEP(rn_gru_step_f, float, rn_sigmoidf, rn_tanhf)

/* Backward, units 0 <= j < n of one row: g = dh + dh_next is the gradient reaching the new
 * state h~. From the saved gates [r z n] (H apart), hn and h_prev: the pre-activation gradients
 * of the input side dxa = [dr dz dn] (of X + b per gate) and of the recurrent side
 * dha = [dr dz r * dn] (of the product's three blocks), and skip = g * z, the part of g that
 * reaches h_prev past the gates. */
#define RN_DEFINE_GRU_BWD(NAME, T)                                                            \
RN_INLINE void NAME(const T *restrict dh, const T *restrict dh_next, const T *restrict a,     \
                    const T *restrict hn, const T *restrict h_prev, T *restrict dxa,          \
                    T *restrict dha, T *restrict skip, Py_ssize_t H, Py_ssize_t n) {          \
    Py_ssize_t j;                                                                             \
    for (j = 0; j < n; j++) {                                                                 \
        T g = dh[j] + dh_next[j], r = a[j], z = a[H + j], c = a[2 * H + j];                   \
        T dc = g * (1 - z) * (1 - c * c);                                                     \
        T dr = dc * hn[j] * r * (1 - r);                                                      \
        T dz = g * (h_prev[j] - c) * z * (1 - z);                                             \
        dxa[j] = dr;                                                                          \
        dxa[H + j] = dz;                                                                      \
        dxa[2 * H + j] = dc;                                                                  \
        dha[j] = dr;                                                                          \
        dha[H + j] = dz;                                                                      \
        dha[2 * H + j] = dc * r;                                                              \
        skip[j] = g * z;                                                                      \
    }                                                                                         \
}
RN_DEFINE_GRU_BWD(rn_gru_bwd_d, double)
RN_DEFINE_GRU_BWD(rn_gru_bwd_f, float)

/* ------------------------------------------------------------------ zoneout, one row
 * (Krueger et al. 2016; the contract is in _conventions.py.) Forward: the candidate state x just
 * computed becomes u * prev + (1 - u) * x, in place; prev is the previous step's row (or the
 * initial state), never x itself. */
#define RN_DEFINE_ZONE_MIX(NAME, T)                                                           \
RN_INLINE void NAME(const T *restrict u, const T *restrict prev, T *restrict x,              \
                    Py_ssize_t H) {                                                           \
    Py_ssize_t j;                                                                             \
    for (j = 0; j < H; j++) x[j] = u[j] * prev[j] + (1 - u[j]) * x[j];                       \
}
RN_DEFINE_ZONE_MIX(rn_zone_mix_d, double)
RN_DEFINE_ZONE_MIX(rn_zone_mix_f, float)

/* Backward: a state's total gradient g = d (+ d_extra when given) splits into the part that
 * skips the step, skip = u * g, and the part that reaches the candidate, through = (1 - u) * g
 * (through may be d itself: each d[j] is read before it is written). */
#define RN_DEFINE_ZONE_SPLIT(NAME, T)                                                         \
RN_INLINE void NAME(const T *restrict u, const T *d, const T *restrict d_extra,              \
                    T *restrict skip, T *through, Py_ssize_t H) {                             \
    Py_ssize_t j;                                                                             \
    if (d_extra != NULL) {                                                                    \
        for (j = 0; j < H; j++) {                                                             \
            T g = d[j] + d_extra[j];                                                          \
            skip[j] = u[j] * g;                                                               \
            through[j] = (1 - u[j]) * g;                                                      \
        }                                                                                     \
    } else {                                                                                  \
        for (j = 0; j < H; j++) {                                                             \
            T g = d[j];                                                                       \
            skip[j] = u[j] * g;                                                               \
            through[j] = (1 - u[j]) * g;                                                      \
        }                                                                                     \
    }                                                                                         \
}
RN_DEFINE_ZONE_SPLIT(rn_zone_split_d, double)
RN_DEFINE_ZONE_SPLIT(rn_zone_split_f, float)

/* x += y over n values (x and y never overlap). */
#define RN_DEFINE_ADD(NAME, T)                                                                \
RN_INLINE void NAME(T *restrict x, const T *restrict y, Py_ssize_t n) {                      \
    Py_ssize_t j;                                                                             \
    for (j = 0; j < n; j++) x[j] = x[j] + y[j];                                               \
}
RN_DEFINE_ADD(rn_add_d, double)
RN_DEFINE_ADD(rn_add_f, float)

/* ------------------------------------------------------------------ small matrix products
 * For the few rows of a tiny batch (and the short sequences of the notebook), a BLAS call's
 * fixed cost — argument checks, packing the operands into its own layout — is larger than the
 * arithmetic. These two loops replace it there (the kernels choose by size, see SMALL_PRODUCT in _kernels_loops.pxi).
 * They are written with the vector types above, so the register blocking is explicit rather than
 * left to the auto-vectorizer (which spilled the accumulators of a plain-C version to the stack).
 * A build with FMA uses it for the multiply-adds. */
#if defined(__GNUC__)

/* C (m, n) = A (m, k) @ B (k, n), or C += A @ B (as C + (A @ B)) when accumulate is set. A is
 * read one scalar at a time, so it may have any strides
 * (sa_row, sa_col): A^T is the same matrix with the strides swapped, which gives the weight
 * gradients x^T @ dgates without a transpose. B and C are row-major with row strides ldb, ldc.
 * Accumulators stay in registers while p runs over k, with enough independent chains (8) to
 * hide the multiply-add latency: four rows of C at a time, two vectors wide, so that each load
 * of B serves four rows; then single rows, eight vectors wide (a time step of batch 1); then one
 * vector, then scalars. */
#define RN_DEFINE_GEMM_NN(NAME, T, V)                                                         \
RN_INLINE void NAME##_row(Py_ssize_t j, Py_ssize_t n, Py_ssize_t k, const T *restrict a,      \
                          Py_ssize_t sa_col, const T *restrict B, Py_ssize_t ldb,             \
                          T *restrict c, int accumulate) {                                    \
    const Py_ssize_t L = sizeof(V) / sizeof(T);                                               \
    Py_ssize_t p, q;                                                                          \
    for (; j + 8 * L <= n; j += 8 * L) {                                                      \
        V acc[8];                                                                             \
        for (q = 0; q < 8; q++) acc[q] = (V){0};                                              \
        for (p = 0; p < k; p++) {                                                             \
            const V ap = V##_splat(a[p * sa_col]);                                                \
            const T *restrict b = B + p * ldb + j;                                            \
            for (q = 0; q < 8; q++) acc[q] = V##_fma(ap, V##_load(b + q * L), acc[q]);        \
        }                                                                                     \
        for (q = 0; q < 8; q++)                                                               \
            V##_store(c + j + q * L, accumulate ? V##_load(c + j + q * L) + acc[q] : acc[q]); \
    }                                                                                         \
    for (; j + L <= n; j += L) {                                                              \
        V acc = (V){0};                                                                       \
        for (p = 0; p < k; p++)                                                               \
            acc = V##_fma(V##_splat(a[p * sa_col]), V##_load(B + p * ldb + j), acc);         \
        V##_store(c + j, accumulate ? V##_load(c + j) + acc : acc);                           \
    }                                                                                         \
    for (; j < n; j++) {                                                                      \
        T acc = 0;                                                                            \
        for (p = 0; p < k; p++) acc += a[p * sa_col] * B[p * ldb + j];                        \
        c[j] = accumulate ? c[j] + acc : acc;                                                 \
    }                                                                                         \
}                                                                                             \
RN_INLINE void NAME(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const T *restrict A,            \
                    Py_ssize_t sa_row, Py_ssize_t sa_col, const T *restrict B,               \
                    Py_ssize_t ldb, T *restrict C, Py_ssize_t ldc, int accumulate) {          \
    const Py_ssize_t L = sizeof(V) / sizeof(T);                                               \
    Py_ssize_t i = 0, p, j, r;                                                                \
    for (; i + 4 <= m; i += 4) {                                                              \
        const T *restrict a = A + i * sa_row;                                                 \
        T *restrict c = C + i * ldc;                                                          \
        for (j = 0; j + 2 * L <= n; j += 2 * L) {                                             \
            V acc[4][2];                                                                      \
            for (r = 0; r < 4; r++) { acc[r][0] = (V){0}; acc[r][1] = (V){0}; }               \
            for (p = 0; p < k; p++) {                                                         \
                const V b0 = V##_load(B + p * ldb + j), b1 = V##_load(B + p * ldb + j + L);   \
                for (r = 0; r < 4; r++) {                                                     \
                    const V ap = V##_splat(a[r * sa_row + p * sa_col]);                       \
                    acc[r][0] = V##_fma(ap, b0, acc[r][0]);                                   \
                    acc[r][1] = V##_fma(ap, b1, acc[r][1]);                                   \
                }                                                                             \
            }                                                                                 \
            for (r = 0; r < 4; r++) {                                                         \
                T *restrict cr = c + r * ldc + j;                                             \
                V##_store(cr, accumulate ? V##_load(cr) + acc[r][0] : acc[r][0]);             \
                V##_store(cr + L, accumulate ? V##_load(cr + L) + acc[r][1] : acc[r][1]);     \
            }                                                                                 \
        }                                                                                     \
        for (r = 0; r < 4; r++)                                                               \
            NAME##_row(j, n, k, a + r * sa_row, sa_col, B, ldb, c + r * ldc, accumulate);     \
    }                                                                                         \
    for (; i < m; i++)                                                                        \
        NAME##_row(0, n, k, A + i * sa_row, sa_col, B, ldb, C + i * ldc, accumulate);         \
}

/* C (m, n) = A (m, k) @ B (n, k)^T: every entry a dot product of a row of A and a row of B, both
 * contiguous along k. Four columns of C at a time share each load of A's row; each of their dot
 * products runs in two vectors of lanes (8 chains in all), summed at the end. This gives
 * dh(t-1) = dgates @ Wh^T and dx = dgates @ Wx^T straight from the weights as stored. */
#define RN_DEFINE_GEMM_NT(NAME, T, V)                                                         \
RN_INLINE void NAME(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const T *restrict A,            \
                    Py_ssize_t lda, const T *restrict B, Py_ssize_t ldb, T *restrict C,       \
                    Py_ssize_t ldc) {                                                         \
    const Py_ssize_t L = sizeof(V) / sizeof(T);                                               \
    Py_ssize_t i, p, j, q;                                                                    \
    for (i = 0; i < m; i++) {                                                                 \
        const T *restrict a = A + i * lda;                                                    \
        T *restrict c = C + i * ldc;                                                          \
        for (j = 0; j < n; j += 4) {                                                          \
            const Py_ssize_t cols = n - j < 4 ? n - j : 4;                                    \
            const T *restrict b[4];                                                           \
            V acc0[4], acc1[4];                                                               \
            T tail[4];                                                                        \
            for (q = 0; q < 4; q++) {                                                         \
                b[q] = B + (j + (q < cols ? q : 0)) * ldb;   /* unused columns: a valid row */\
                acc0[q] = (V){0}; acc1[q] = (V){0}; tail[q] = 0;                              \
            }                                                                                 \
            for (p = 0; p + 2 * L <= k; p += 2 * L) {                                         \
                const V a0 = V##_load(a + p), a1 = V##_load(a + p + L);                       \
                for (q = 0; q < 4; q++) {                                                     \
                    acc0[q] = V##_fma(a0, V##_load(b[q] + p), acc0[q]);                       \
                    acc1[q] = V##_fma(a1, V##_load(b[q] + p + L), acc1[q]);                   \
                }                                                                             \
            }                                                                                 \
            for (; p + L <= k; p += L) {                                                      \
                const V a0 = V##_load(a + p);                                                 \
                for (q = 0; q < 4; q++) acc0[q] = V##_fma(a0, V##_load(b[q] + p), acc0[q]);   \
            }                                                                                 \
            for (; p < k; p++)                                                                \
                for (q = 0; q < 4; q++) tail[q] += a[p] * b[q][p];                            \
            for (q = 0; q < cols; q++) c[j + q] = V##_sum(acc0[q] + acc1[q]) + tail[q];       \
        }                                                                                     \
    }                                                                                         \
}
/* dst[i * ld_dst + r] = src[r * ld_src + i] for an 8 x 8 block of floats: a transposed B's panel
 * is packed eight rows by eight columns at a time in registers (AVX), one load and one store per
 * eight values where the scalar copy makes one of each per value. */
#if defined(__AVX__)
#define RN_HAVE_TRANSPOSE8 1
RN_INLINE void rn_transpose8_f(const float *restrict src, Py_ssize_t ld_src, float *restrict dst,
                               Py_ssize_t ld_dst) {
    __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ld_src);
    __m256 r2 = _mm256_loadu_ps(src + 2 * ld_src), r3 = _mm256_loadu_ps(src + 3 * ld_src);
    __m256 r4 = _mm256_loadu_ps(src + 4 * ld_src), r5 = _mm256_loadu_ps(src + 5 * ld_src);
    __m256 r6 = _mm256_loadu_ps(src + 6 * ld_src), r7 = _mm256_loadu_ps(src + 7 * ld_src);
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + ld_dst, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ld_dst, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ld_dst, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ld_dst, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ld_dst, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ld_dst, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ld_dst, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#else
#define RN_HAVE_TRANSPOSE8 0
RN_INLINE void rn_transpose8_f(const float *src, Py_ssize_t ld_src, float *dst,
                               Py_ssize_t ld_dst) {
    (void)src; (void)ld_src; (void)dst; (void)ld_dst;   /* never called: see RN_DEFINE_PACKED */
}
#endif
/* The per-step product of an LSTM: C (m, n) = A (m, k) @ B, or C += A @ B, where B (k, n) is the
 * same matrix at every step (Wh, or Wh^T in the backward pass). BLAS repacks B into its own
 * layout at every call — for these shapes as much work as the product — so B is packed once per
 * sequence here (panels of P = two vectors of columns, rows of a panel contiguous, the last panel
 * zero-padded) and every step streams the panels.
 * Both functions work on the columns j0 <= j < j1 only (j0 a multiple of P, j1 one too or n), so
 * threads that share a step by hidden units pack and multiply their own panels. Every entry of C
 * is made the same way wherever it lies — a sum over p = 0, 1, ..., k-1 in turn, one multiply-add
 * at a time from zero — so any split of the rows or columns gives the same bits: rows
 * RN_BLOCK_ROWS at a time, then four at a time, then the one to three left across two or four
 * panels. */
#define RN_PACK_BLOCK 64
/* Rows of C per block: eight where the build has 32 vector registers (AVX-512: 16 accumulators,
 * each load of a panel serving eight rows), else four (8 accumulators in AVX2's 16 registers).
 * Four rows' 8 accumulators are just enough to cover the multiply-add's latency on two ports.
 * With 16, and the panels on cache lines (_kernels_memory.h), the AVX-512 build's forward pass of
 * hidden 256, batch 8 went from 2.00 to 1.29 ms, one thread, the backward from 3.36 to 2.67 ms
 * (benchmarks/results/step-blocks/kernels-1-thread-256.md). */
#if RN_VBYTES >= 64
#define RN_BLOCK_ROWS 8
#else
#define RN_BLOCK_ROWS 4
#endif
#define RN_GROUP_BYTES (256 * 1024)   /* a group of panels: a quarter of the smallest L2 (Zen 4's 1 MB) */
#define RN_DEFINE_PACKED(PACK, GEMM, T, V)                                                    \
RN_INLINE Py_ssize_t PACK##_size(Py_ssize_t k, Py_ssize_t n) {                                \
    const Py_ssize_t P = 2 * (Py_ssize_t)(sizeof(V) / sizeof(T));                             \
    return ((n + P - 1) / P) * P * k;                                                         \
}                                                                                             \
/* packed's panels of columns [j0, j1) = B (k, n) with element (p, j) at B[p * sb_row +         \
 * j * sb_col] (B^T: swap the strides). A B with contiguous rows (Wh) is copied a row at a time,  \
 * two vectors per whole panel: rows read in order, where a panel at a time reads a line every    \
 * row stride, a new 4 KiB page at every load for hidden 256, which no prefetcher follows.        \
 * A transposed B (sb_col > sb_row: Wh^T) goes in 8 x 8 blocks through registers where the build  \
 * has AVX (floats), the rest value by value in blocks of RN_PACK_BLOCK rows of the panel, each    \
 * of its columns along its contiguous run: reading all P columns at every p instead touches P    \
 * lines a row stride apart, which share one L1 set when that stride is a multiple of 4 KiB       \
 * (Wh^T of hidden 256) and miss at every load. */                                               \
RN_INLINE void PACK(Py_ssize_t k, Py_ssize_t n, Py_ssize_t j0, Py_ssize_t j1,                 \
                    const T *restrict B, Py_ssize_t sb_row, Py_ssize_t sb_col,               \
                    T *restrict packed) {                                                     \
    const Py_ssize_t P = 2 * (Py_ssize_t)(sizeof(V) / sizeof(T));                             \
    Py_ssize_t jp, p, p0, p1, q;                                                              \
    if (sb_col == 1) {   /* whole panels row by row: each row of B read once, in order */       \
        const Py_ssize_t L = P / 2, whole = j1 < n ? j1 : n - n % P;                          \
        for (p = 0; p < k; p++) {                                                             \
            const T *restrict b = B + p * sb_row;                                             \
            for (jp = j0; jp < whole; jp += P) {                                              \
                V##_store(packed + jp * k + p * P, V##_load(b + jp));                         \
                V##_store(packed + jp * k + p * P + L, V##_load(b + jp + L));                 \
            }                                                                                 \
        }                                                                                     \
        if (whole >= j1) return;                                                              \
        j0 = whole;                                                                           \
    }                                                                                         \
    for (jp = j0, packed += j0 * k; jp < j1; jp += P, packed += P * k) {                      \
        const Py_ssize_t cols = n - jp < P ? n - jp : P;                                      \
        p = 0;                                                                                \
        if (RN_HAVE_TRANSPOSE8 && sizeof(T) == 4 && P % 8 == 0 && sb_row == 1 && cols == P) {    \
            /* 8 x 8 blocks, both of a 16-wide run of the panel's first eight rows of B^T, then \
             * of its last eight: at most eight lines a row stride apart in use at a time. */   \
            for (; p + 16 <= k; p += 16)                                                      \
                for (q = 0; q < P; q += 8) {                                                  \
                    const float *src = (const float *)B + (jp + q) * sb_col + p;              \
                    rn_transpose8_f(src, sb_col, (float *)packed + p * P + q, P);             \
                    rn_transpose8_f(src + 8, sb_col, (float *)packed + (p + 8) * P + q, P);   \
                }                                                                             \
        }                                                                                     \
        if (sb_col <= sb_row) {                                                               \
            for (p = 0; p < k; p++) {                                                         \
                const T *restrict b = B + p * sb_row + jp * sb_col;                           \
                for (q = 0; q < cols; q++) packed[p * P + q] = b[q * sb_col];                 \
                for (; q < P; q++) packed[p * P + q] = 0;                                     \
            }                                                                                 \
            continue;                                                                         \
        }                                                                                     \
        for (p0 = p; p0 < k; p0 += RN_PACK_BLOCK) {   /* the rest: value by value */          \
            p1 = k - p0 < RN_PACK_BLOCK ? k : p0 + RN_PACK_BLOCK;                             \
            for (q = 0; q < cols; q++) {                                                      \
                const T *restrict b = B + (jp + q) * sb_col;                                  \
                for (p = p0; p < p1; p++) packed[p * P + q] = b[p * sb_row];                  \
            }                                                                                 \
            for (; q < P; q++)                                                                \
                for (p = p0; p < p1; p++) packed[p * P + q] = 0;                              \
        }                                                                                     \
    }                                                                                         \
}                                                                                             \
/* Row r of acc[r][0..1] (a panel's P columns) into C's row at column jp: `cols` of them. */    \
RN_INLINE void GEMM##_store(T *restrict c, const V *acc, Py_ssize_t cols, int accumulate) {   \
    const Py_ssize_t L = sizeof(V) / sizeof(T);                                               \
    Py_ssize_t q;                                                                             \
    if (cols == 2 * L) {                                                                      \
        V##_store(c, accumulate ? V##_load(c) + acc[0] : acc[0]);                             \
        V##_store(c + L, accumulate ? V##_load(c + L) + acc[1] : acc[1]);                     \
    } else {                                                                                  \
        T tmp[2 * sizeof(V) / sizeof(T)];                                                     \
        V##_store(tmp, acc[0]);                                                               \
        V##_store(tmp + L, acc[1]);                                                           \
        for (q = 0; q < cols; q++) c[q] = accumulate ? c[q] + tmp[q] : tmp[q];                \
    }                                                                                         \
}                                                                                             \
/* Rows i..i+R-1 of C times the NP panels from column jp (R, NP constants once inlined: the      \
 * R * NP * 2 accumulators live in registers; each load of a panel serves R rows). */           \
RN_INLINE void GEMM##_block(const int R, const int NP, Py_ssize_t n, Py_ssize_t jp,           \
                            Py_ssize_t k, const T *restrict A, Py_ssize_t lda,                \
                            const T *restrict packed, T *restrict C, Py_ssize_t ldc,          \
                            int accumulate) {                                                 \
    const Py_ssize_t L = sizeof(V) / sizeof(T), P = 2 * L;                                    \
    const T *restrict panel = packed + jp * k;                                                \
    Py_ssize_t p;                                                                             \
    int r, q;                                                                                 \
    V acc[RN_BLOCK_ROWS][4][2];                                                               \
    for (r = 0; r < R; r++)                                                                   \
        for (q = 0; q < NP; q++) { acc[r][q][0] = (V){0}; acc[r][q][1] = (V){0}; }            \
    for (p = 0; p < k; p++) {                                                                 \
        V b[4][2];                                                                            \
        for (q = 0; q < NP; q++) {                                                            \
            b[q][0] = V##_load(panel + q * P * k + p * P);                                    \
            b[q][1] = V##_load(panel + q * P * k + p * P + L);                                \
        }                                                                                     \
        for (r = 0; r < R; r++) {                                                             \
            const V ap = V##_splat(A[r * lda + p]);                                           \
            for (q = 0; q < NP; q++) {                                                        \
                acc[r][q][0] = V##_fma(ap, b[q][0], acc[r][q][0]);                            \
                acc[r][q][1] = V##_fma(ap, b[q][1], acc[r][q][1]);                            \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
    for (r = 0; r < R; r++)                                                                   \
        for (q = 0; q < NP; q++) {                                                            \
            const Py_ssize_t j = jp + q * P;                                                  \
            GEMM##_store(C + r * ldc + j, acc[r][q], n - j < P ? n - j : P, accumulate);      \
        }                                                                                     \
}                                                                                             \
/* Rows in blocks of eight, one panel at a time (16 accumulators, AVX-512 only), or of four:    \
 * one panel at a time in AVX2 (8 accumulators), two in AVX-512 (16 again: batch 4, and each of  \
 * two threads' four rows of batch 8, ran 1.1-1.4x faster than with one); the one to three rows  \
 * left together across two panels (one row: four panels), then one panel, so that each load of  \
 * the panels still serves every row left. */                                                 \
RN_INLINE void GEMM##_rows(const int R, Py_ssize_t n, Py_ssize_t j0, Py_ssize_t j1,           \
                           Py_ssize_t k, const T *restrict A, Py_ssize_t lda,                 \
                           const T *restrict packed, T *restrict C, Py_ssize_t ldc,           \
                           int accumulate) {                                                  \
    const Py_ssize_t P = 2 * (Py_ssize_t)(sizeof(V) / sizeof(T));                             \
    const int NP = R == 1 ? 4 : R < 4 || (R == 4 && RN_BLOCK_ROWS == 8) ? 2 : 1;             \
    const Py_ssize_t full = j1 < n ? j1 : n - n % P;   /* end of the whole panels */          \
    Py_ssize_t jp = j0;                                                                       \
    for (; jp + NP * P <= full; jp += NP * P)                                                 \
        GEMM##_block(R, NP, n, jp, k, A, lda, packed, C, ldc, accumulate);                    \
    for (; jp < j1; jp += P)                                                                  \
        GEMM##_block(R, 1, n, jp, k, A, lda, packed, C, ldc, accumulate);                     \
}                                                                                             \
/* The panels go in groups of about RN_GROUP_BYTES, each group through every row before the     \
 * next: a group is read from memory once and then from the cache for each block of rows, where   \
 * all the panels for each block of rows in turn would stream the whole of B (16 MB for hidden    \
 * 1024) from memory once per four rows. The order of the blocks changes no entry's sum. */       \
RN_INLINE void GEMM(Py_ssize_t m, Py_ssize_t n, Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t k,   \
                    const T *restrict A, Py_ssize_t lda, const T *restrict packed,           \
                    T *restrict C, Py_ssize_t ldc, int accumulate) {                          \
    const Py_ssize_t P = 2 * (Py_ssize_t)(sizeof(V) / sizeof(T));                             \
    const Py_ssize_t panels = RN_GROUP_BYTES / ((k > 0 ? k : 1) * P * (Py_ssize_t)sizeof(T)); \
    const Py_ssize_t group = (panels > 4 ? panels - panels % 4 : panels > 0 ? panels : 1) * P;\
    Py_ssize_t g0, g1, i;                                                                     \
    for (g0 = j0; g0 < j1; g0 = g1) {                                                         \
        g1 = j1 - g0 > group ? g0 + group : j1;                                               \
        for (i = 0; i + RN_BLOCK_ROWS <= m; i += RN_BLOCK_ROWS)                               \
            GEMM##_rows(RN_BLOCK_ROWS, n, g0, g1, k, A + i * lda, lda, packed, C + i * ldc,   \
                        ldc, accumulate);                                                     \
        for (; i + 4 <= m; i += 4)                                                            \
            GEMM##_rows(4, n, g0, g1, k, A + i * lda, lda, packed, C + i * ldc, ldc,          \
                        accumulate);                                                          \
        switch (m - i) {                                                                      \
        case 3: GEMM##_rows(3, n, g0, g1, k, A + i * lda, lda, packed, C + i * ldc, ldc,      \
                            accumulate); break;                                               \
        case 2: GEMM##_rows(2, n, g0, g1, k, A + i * lda, lda, packed, C + i * ldc, ldc,      \
                            accumulate); break;                                               \
        case 1: GEMM##_rows(1, n, g0, g1, k, A + i * lda, lda, packed, C + i * ldc, ldc,      \
                            accumulate); break;                                               \
        }                                                                                     \
    }                                                                                         \
}
RN_DEFINE_PACKED(rn_pack_d, rn_gemm_packed_d, double, rn_vd)
RN_DEFINE_PACKED(rn_pack_f, rn_gemm_packed_f, float, rn_vf)

RN_DEFINE_GEMM_NN(rn_gemm_nn_d, double, rn_sd)
RN_DEFINE_GEMM_NN(rn_gemm_nn_f, float, rn_sf)
RN_DEFINE_GEMM_NT(rn_gemm_nt_d, double, rn_sd)
RN_DEFINE_GEMM_NT(rn_gemm_nt_f, float, rn_sf)

#else   /* not GCC or Clang: the same products (and the packed step product) as plain loops */
#define RN_DEFINE_GEMM_PLAIN(NN, NT, PACK, GEMM, T)                                           \
RN_INLINE void NN(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const T *A, Py_ssize_t sa_row,    \
                  Py_ssize_t sa_col, const T *B, Py_ssize_t ldb, T *C, Py_ssize_t ldc,        \
                  int accumulate) {                                                           \
    for (Py_ssize_t i = 0; i < m; i++)                                                        \
        for (Py_ssize_t j = 0; j < n; j++) {                                                  \
            T acc = 0;                                                                        \
            for (Py_ssize_t p = 0; p < k; p++) acc += A[i * sa_row + p * sa_col] * B[p * ldb + j]; \
            C[i * ldc + j] = accumulate ? C[i * ldc + j] + acc : acc;                         \
        }                                                                                     \
}                                                                                             \
RN_INLINE void NT(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const T *A, Py_ssize_t lda,       \
                  const T *B, Py_ssize_t ldb, T *C, Py_ssize_t ldc) {                         \
    for (Py_ssize_t i = 0; i < m; i++)                                                        \
        for (Py_ssize_t j = 0; j < n; j++) {                                                  \
            T acc = 0;                                                                        \
            for (Py_ssize_t p = 0; p < k; p++) acc += A[i * lda + p] * B[j * ldb + p];        \
            C[i * ldc + j] = acc;                                                             \
        }                                                                                     \
}                                                                                             \
/* "packed" B is B copied row-major: the plain loops gain nothing from panels */              \
RN_INLINE Py_ssize_t PACK##_size(Py_ssize_t k, Py_ssize_t n) { return k * n; }                \
RN_INLINE void PACK(Py_ssize_t k, Py_ssize_t n, Py_ssize_t j0, Py_ssize_t j1, const T *B,     \
                    Py_ssize_t sb_row, Py_ssize_t sb_col, T *packed) {                        \
    for (Py_ssize_t p = 0; p < k; p++)                                                        \
        for (Py_ssize_t j = j0; j < j1; j++) packed[p * n + j] = B[p * sb_row + j * sb_col];  \
}                                                                                             \
RN_INLINE void GEMM(Py_ssize_t m, Py_ssize_t n, Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t k,   \
                    const T *A, Py_ssize_t lda, const T *packed, T *C, Py_ssize_t ldc,        \
                    int accumulate) {                                                         \
    NN(m, j1 - j0, k, A, lda, 1, packed + j0, n, C + j0, ldc, accumulate);                    \
}
RN_DEFINE_GEMM_PLAIN(rn_gemm_nn_d, rn_gemm_nt_d, rn_pack_d, rn_gemm_packed_d, double)
RN_DEFINE_GEMM_PLAIN(rn_gemm_nn_f, rn_gemm_nt_f, rn_pack_f, rn_gemm_packed_f, float)
#endif

#endif
