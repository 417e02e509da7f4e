/* One STFT frame of the DynCP enhancer (front-end -> gated TCN -> mask), skipping pruned channels.
 *
 * Compiled on demand by speechbrain_dyncp/fastpath.py (gcc -O3 -march=native -ffast-math),
 * with REAL = float or double. Why C: per frame, PyTorch / NumPy spend more time dispatching
 * their ~25 small ops per block than multiplying, which hides the MACs that pruning saves.
 * Here a pruned channel costs one score comparison: its W1 row, depthwise taps and W2
 * column are never touched.
 *
 * Layouts (row-major): Wf [C][F], W1 [H][C] and W1T [C][H], dw [H][P], W2T [H][C] (W2
 * transposed), G1T [C][R], G2T [R][H], Wb [F][C]. Matrix-vector products whose rows are all
 * used run as axpy sweeps over the transposed matrix (long contiguous vectorised rows, no
 * horizontal reductions); gathered active rows of W1 run as dot products. State: hist [ring][H] (ring = (P-1)*dil + 1 frames of
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
    const REAL *W1, *W1T, *b1, *s1, *t1, *dw, *s2, *t2, *W2T;
    const REAL *G1T, *gb1, *G2T, *gb2;
    REAL *hist, *gbuf, *pooled, *gh, *work; /* work: H values */
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

static inline void axpy(REAL a, const REAL *restrict w, REAL *restrict y, int n) {
    for (int i = 0; i < n; i++) y[i] += a * w[i];
}

static int gate(Block *b, const REAL *src) {
    int C = b->C, R = b->R, H = b->H, n = 0;
    memcpy(b->gbuf + (long)b->gpos * C, src, sizeof(REAL) * C);
    b->gpos = (b->gpos + 1) % b->K;
    for (int i = 0; i < C; i++) {
        REAL s = 0;
        for (int k = 0; k < b->K; k++) s += b->gbuf[(long)k * C + i];
        b->pooled[i] = s / b->K;
    }
    memcpy(b->gh, b->gb1, sizeof(REAL) * R);
    for (int i = 0; i < C; i++) axpy(b->pooled[i], b->G1T + (long)i * R, b->gh, R);
    REAL *s = b->work;
    memcpy(s, b->gb2, sizeof(REAL) * H);
    for (int j = 0; j < R; j++) axpy(b->gh[j] > 0 ? b->gh[j] : 0, b->G2T + (long)j * H, s, H);
    for (int c = 0; c < H; c++)
        if (s[c] - b->thr > 0) b->active[n++] = c;
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
    REAL *row = b->hist + (long)b->pos * H, *u = b->work;
    memset(row, 0, sizeof(REAL) * H); /* skipped channels leave zeros in the history */
    memcpy(y, x, sizeof(REAL) * C);
    if (n == H) { /* every channel: one sweep over W1T */
        memcpy(u, b->b1, sizeof(REAL) * H);
        for (int i = 0; i < C; i++) axpy(x[i], b->W1T + (long)i * H, u, H);
    } else {
        for (int i = 0; i < n; i++) {
            int c = b->active[i];
            u[i] = b->b1[c] + dot(b->W1 + (long)c * C, x, C);
        }
    }
    for (int i = 0; i < n; i++) {
        int c = b->active[i];
        REAL h = u[n == H ? c : i];
        h = (h > 0 ? h : b->a1 * h) * b->s1[c] + b->t1[c];
        row[c] = h;
        REAL v = 0;
        for (int j = 0; j < P; j++) {
            int slot = ((b->pos - (P - 1 - j) * b->dil) % b->ring + b->ring) % b->ring;
            v += b->dw[(long)c * P + j] * b->hist[(long)slot * H + c];
        }
        v = (v > 0 ? v : b->a2 * v) * b->s2[c] + b->t2[c];
        axpy(v, b->W2T + (long)c * C, y, C);
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

/* Whole frame from its spectrum: spec is [F][2] (re, im), masked in place; feats is F scratch
 * values; compression <= 0 means plain magnitude, else (|X| + 1e-9) ** compression. */
void dyncp_frame_spec(Net *net, REAL *spec, REAL *feats, REAL *mask, REAL compression) {
    int F = net->F;
    for (int f = 0; f < F; f++) {
        REAL m = sqrt(spec[2 * f] * spec[2 * f] + spec[2 * f + 1] * spec[2 * f + 1]);
        feats[f] = compression > 0 ? pow(m + (REAL)1e-9, compression) : m;
    }
    dyncp_frame(net, feats, mask);
    for (int f = 0; f < F; f++) {
        spec[2 * f] *= mask[f];
        spec[2 * f + 1] *= mask[f];
    }
}
