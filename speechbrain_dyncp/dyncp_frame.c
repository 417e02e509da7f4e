/* One STFT frame of the DynCP enhancer (front-end -> gated TCN -> mask), skipping pruned channels.
 *
 * Compiled on demand by speechbrain_dyncp/fastpath.py (gcc -O3 -march=native -ffast-math),
 * with REAL = float or double. Why C: per frame, PyTorch / NumPy spend more time dispatching
 * their ~25 small ops per block than multiplying, which hides the MACs that pruning saves.
 * Here a pruned channel costs one score comparison: its W1 row, depthwise taps and W2
 * column are never touched.
 *
 * Layouts (row-major): Wf [C][F], W1 [H][C], dw [H][P], W2T [H][C] (W2 transposed),
 * G1 [R][C], G2 [H][R], Wb [F][C]. State: hist [ring][H] (ring = (P-1)*dil + 1 frames of
 * gated, normalised hidden activations), gbuf [K][C] (last K gate inputs). Zero at start.
 */
#include <math.h>
#include <string.h>

#ifndef REAL
#define REAL float
#endif

typedef struct {
    int C, H, P, dil, K, R, ring, gate_src; /* gate_src: 0 block input, 1 TCN input; R = 0: no gate */
    REAL thr, a1, a2;
    const REAL *W1, *b1, *s1, *t1, *dw, *s2, *t2, *W2T;
    const REAL *G1, *gb1, *G2, *gb2;
    REAL *hist, *gbuf, *pooled, *gh;
    int *active;
    int pos, gpos;
    long long computed; /* channel-frames computed so far */
} Block;

typedef struct {
    int F, C, L;
    const REAL *Wf, *bf, *Wb, *bb;
    REAL *x, *y, *x0;
    Block *blocks;
} Net;

static inline REAL dot(const REAL *restrict a, const REAL *restrict b, int n) {
    REAL s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static int gate(Block *b, const REAL *src) {
    int C = b->C, n = 0;
    memcpy(b->gbuf + (long)b->gpos * C, src, sizeof(REAL) * C);
    b->gpos = (b->gpos + 1) % b->K;
    for (int i = 0; i < C; i++) {
        REAL s = 0;
        for (int k = 0; k < b->K; k++) s += b->gbuf[(long)k * C + i];
        b->pooled[i] = s / b->K;
    }
    for (int j = 0; j < b->R; j++) {
        REAL h = b->gb1[j] + dot(b->G1 + (long)j * C, b->pooled, C);
        b->gh[j] = h > 0 ? h : 0;
    }
    for (int c = 0; c < b->H; c++)
        if (b->gb2[c] + dot(b->G2 + (long)c * b->R, b->gh, b->R) - b->thr > 0) b->active[n++] = c;
    return n;
}

static void block(Block *b, const REAL *x, const REAL *x0, REAL *y) {
    int C = b->C, H = b->H, P = b->P, n;
    if (b->R > 0) {
        n = gate(b, b->gate_src ? x0 : x);
    } else {
        n = H;
        for (int c = 0; c < H; c++) b->active[c] = c;
    }
    REAL *row = b->hist + (long)b->pos * H;
    memset(row, 0, sizeof(REAL) * H); /* skipped channels leave zeros in the history */
    memcpy(y, x, sizeof(REAL) * C);
    for (int i = 0; i < n; i++) {
        int c = b->active[i];
        REAL u = b->b1[c] + dot(b->W1 + (long)c * C, x, C);
        u = (u > 0 ? u : b->a1 * u) * b->s1[c] + b->t1[c];
        row[c] = u;
        REAL v = 0;
        for (int j = 0; j < P; j++) {
            int slot = ((b->pos - (P - 1 - j) * b->dil) % b->ring + b->ring) % b->ring;
            v += b->dw[(long)c * P + j] * b->hist[(long)slot * H + c];
        }
        v = (v > 0 ? v : b->a2 * v) * b->s2[c] + b->t2[c];
        const REAL *restrict w = b->W2T + (long)c * C;
        for (int k = 0; k < C; k++) y[k] += v * w[k];
    }
    b->computed += n;
    b->pos = (b->pos + 1) % b->ring;
}

void dyncp_frame(Net *net, const REAL *feats, REAL *mask) {
    int C = net->C, F = net->F;
    for (int c = 0; c < C; c++) {
        REAL h = net->bf[c] + dot(net->Wf + (long)c * F, feats, F);
        net->x[c] = h > 0 ? h : 0;
    }
    memcpy(net->x0, net->x, sizeof(REAL) * C);
    for (int l = 0; l < net->L; l++) {
        block(net->blocks + l, net->x, net->x0, net->y);
        memcpy(net->x, net->y, sizeof(REAL) * C);
    }
    for (int f = 0; f < F; f++)
        mask[f] = 1 / (1 + exp(-(net->bb[f] + dot(net->Wb + (long)f * C, net->x, C))));
}
