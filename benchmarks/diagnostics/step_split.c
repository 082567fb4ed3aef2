/* Two threads on one LSTM time loop (float32, T = 35, the forward step: the packed step product
 * of rnnreg's kernels, then the gates, cell and output): split by rows of the batch, as the
 * kernels do (each thread runs its rows' whole time loop, no barrier), or by hidden units (each
 * thread makes its units' columns of all four gates for every row, then waits for the other at a
 * barrier at every step, because the next step needs all of h). Built and run by
 * benchmarks/step_split.py; prints one line per shape: best-of-200 times in microseconds. */
#include <stddef.h>
typedef ptrdiff_t Py_ssize_t;
#include "_fastmath.h"   /* -I src/rnnreg */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
static int N, H, T;
static float *Wh, *packed_full, *packed_half[2], *h, *c;
/* gates row layout [i f o g] of H each; a unit-slice [u0,u1) of a thread: columns q*H+u0..q*H+u1 */
static void elementwise(int n, int u0, int u1, const float *a, int lda, float *hrow, float *crow) {
    int w = u1 - u0;
    for (int r = 0; r < n; r++) {
        const float *ar = a + (size_t)r * lda;
        for (int j = 0; j < w; j++) {
            float i = rn_sigmoidf(ar[j]), f = rn_sigmoidf(ar[w + j]), o = rn_sigmoidf(ar[2 * w + j]),
                  g = rn_tanhf(ar[3 * w + j]);
            float cc = f * crow[r * H + u0 + j] + i * g;
            crow[r * H + u0 + j] = cc;
            hrow[r * H + u0 + j] = o * rn_tanhf(cc);
        }
    }
}
static double run_rows(int threads) {
    double t0 = omp_get_wtime();
    #pragma omp parallel num_threads(threads)
    {
        int p = omp_get_thread_num(), P = omp_get_num_threads();
        int r0 = p * N / P, r1 = (p + 1) * N / P, m = r1 - r0;
        float *buf = malloc(sizeof(float) * m * 4 * H), *hn = malloc(sizeof(float) * N * H);
        for (int t = 0; t < T; t++) {
            rn_gemm_packed_f(m, 4 * H, 0, 4 * H, H, h + r0 * H, H, packed_full, buf, 4 * H, 0);
            /* all units: the slice is the whole row, gate blocks H apart */
            elementwise(m, 0, H, buf, 4 * H, hn + r0 * H, c + r0 * H);
            for (int k = r0 * H; k < r1 * H; k++) h[k] = hn[k];
        }
        free(buf); free(hn);
    }
    return omp_get_wtime() - t0;
}
static double run_units(int threads) {
    double t0 = omp_get_wtime();
    float *hn = malloc(sizeof(float) * N * H);
    #pragma omp parallel num_threads(threads)
    {
        int p = omp_get_thread_num(), P = omp_get_num_threads();
        int u0 = p * H / P, u1 = (p + 1) * H / P, w = u1 - u0;
        float *buf = malloc(sizeof(float) * N * 4 * w);
        for (int t = 0; t < T; t++) {
            rn_gemm_packed_f(N, 4 * w, 0, 4 * w, H, h, H, packed_half[p], buf, 4 * w, 0);
            elementwise(N, u0, u1, buf, 4 * w, hn, c);
            #pragma omp barrier
            #pragma omp single
            { float *tmp = h; h = hn; hn = tmp; }   /* implicit barrier */
        }
        free(buf);
    }
    free(hn);
    return omp_get_wtime() - t0;
}
int main(int argc, char **argv) {
    N = atoi(argv[1]); H = atoi(argv[2]); T = 35;
    int G = 4 * H;
    Wh = malloc(sizeof(float) * H * G);
    for (long k = 0; k < (long)H * G; k++) Wh[k] = ((k * 7919) % 1000 - 500) * 1e-4f;
    packed_full = malloc(sizeof(float) * rn_pack_f_size(H, G));
    rn_pack_f(H, G, 0, G, Wh, G, 1, packed_full);
    for (int p = 0; p < 2; p++) {   /* thread p's columns: its units' slice of each gate */
        int u0 = p * H / 2, u1 = (p + 1) * H / 2, w = u1 - u0;
        float *cols = malloc(sizeof(float) * H * 4 * w);
        for (int k = 0; k < H; k++)
            for (int q = 0; q < 4; q++)
                for (int j = 0; j < w; j++) cols[k * 4 * w + q * w + j] = Wh[k * G + q * H + u0 + j];
        packed_half[p] = malloc(sizeof(float) * rn_pack_f_size(H, 4 * w));
        rn_pack_f(H, 4 * w, 0, 4 * w, cols, 4 * w, 1, packed_half[p]);
        free(cols);
    }
    h = calloc(N * H, sizeof(float)); c = calloc(N * H, sizeof(float));
    double best[3] = {1e9, 1e9, 1e9};
    for (int rep = 0; rep < 200; rep++) {
        double a = run_rows(1), b = run_rows(2), d = run_units(2);
        if (a < best[0]) best[0] = a;
        if (b < best[1]) best[1] = b;
        if (d < best[2]) best[2] = d;
    }
    printf("%d %d %.1f %.1f %.1f\n", N, H, best[0] * 1e6, best[1] * 1e6, best[2] * 1e6);
}
