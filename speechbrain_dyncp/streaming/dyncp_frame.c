/* One STFT frame of the DynCP enhancer (front-end -> gated TCN -> mask), skipping pruned channels.
 *
 * Compiled at install time by setup.py into speechbrain_dyncp/streaming/_dyncp_frame_{float,double}
 * (-O3 -march=native, reassociation flags, REAL = float or double) and loaded with ctypes by
 * speechbrain_dyncp/streaming/kernel.py. Why C: per frame, PyTorch / NumPy spend more time dispatching
 * their ~25 small ops per block than multiplying, which hides the MACs that pruning saves.
 * Here a pruned channel costs one score comparison: its W1 row, depthwise taps and W2
 * column are never touched.
 *
 * Layouts (row-major): Wf [C][F], W1 [H][C] and W1T [C][H], dw [H][P], W2T [H][C] (W2
 * transposed), G1T [C][R], G2T [R][H], Wb [F][C], WfT [F][C], WbT [C][F]. Matrix-vector products whose rows are all
 * used run as axpy sweeps over the transposed matrix (long contiguous vectorised rows, no
 * horizontal reductions); gathered active rows of W1 run as dot products. State: hist [ring][H] (ring = (P-1)*dil + 1 frames of
 * gated, normalised hidden activations), gbuf [K][C] (last K gate inputs). Zero at start.
 */
#include <math.h>
#include <string.h>

#ifndef REAL
#define REAL float
#endif
#ifndef DYNCP_SOURCE_SHA1
#define DYNCP_SOURCE_SHA1 "unknown"
#endif

/* SHA-1 of this file when it was built (setup.py): kernel.py refuses a kernel of another version */
const char *dyncp_source_sha1(void) { return DYNCP_SOURCE_SHA1; }

/* float kernels call the float libm functions: exp() on a float promotes to double, and the
 * back-end's 257 sigmoids are a visible share of a pruned frame */
#define IS_FLOAT (sizeof(REAL) == sizeof(float))
#define EXP(v) (IS_FLOAT ? (REAL)expf((float)(v)) : (REAL)exp(v))
#define SQRT(v) (IS_FLOAT ? (REAL)sqrtf((float)(v)) : (REAL)sqrt(v))
#define POW(a, b) (IS_FLOAT ? (REAL)powf((float)(a), (float)(b)) : (REAL)pow(a, b))

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
    const REAL *WfT, *WbT; /* Wf transposed [F][C], Wb transposed [C][F]: axpy sweeps */
    REAL floor;            /* mask floor of the attenuation limit (DynCPEnhancer.mask_from_logits) */
    /* pause floor (lobes/pause_floor.py; vad_w NULL: none): the VAD head's weights [L][H] summed over the
     * active channels in double (the same decision as PyTorch's float64 sum), its bias and logit
     * threshold, the pause frames' floor, the hangover and the state (frames of speech credit left) */
    const double *vad_w;
    double vad_b, vad_thr;
    REAL pause_floor;
    int hang, credit;
    /* its low-SNR part (low_win 0: none; PauseFloor.stream_floors): the last low_win frames' speech-only
     * kept / removed energies and speech flags (ring [3][low_win], double), the write position, the
     * speech frames needed, the ratio threshold as a power factor, and the frame's input power
     * (F values, (|X| + 1e-9)^2 for compressed features as DynCPEnhancer.feature_power, filled by
     * dyncp_frame_spec) */
    double *low_ring;
    int low_win, low_pos, low_min;
    double low_factor;
    REAL *power;
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
    /* branchless compaction: which channels are on is input-dependent, so a branch here
     * mispredicts often (it cost ~15% of a pruned small-model frame) */
    for (int c = 0; c < H; c++) {
        b->active[n] = c;
        n += s[c] - b->thr > 0;
    }
    return n;
}

/* returns the number of channels computed; their indices are b->active[0 .. n-1] */
static int block(Block *b, const REAL *x, const REAL *x0, REAL *y) {
    int C = b->C, H = b->H, P = b->P, n;
    if (b->R > 0) {
        n = gate(b, b->gate_src ? x0 : x);
    } else {
        n = H;
        for (int c = 0; c < H; c++) b->active[c] = c;
    }
    REAL *row = b->hist + (long)b->pos * H, *u = b->work;
    const REAL *tap[P]; /* history row of each depthwise tap, once per frame (not per channel) */
    for (int j = 0; j < P; j++)
        tap[j] = b->hist + (long)(((b->pos - (P - 1 - j) * b->dil) % b->ring + b->ring) % b->ring) * H;
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
        const REAL *w = b->dw + (long)c * P;
        for (int j = 0; j < P; j++) v += w[j] * tap[j][c];
        v = (v > 0 ? v : b->a2 * v) * b->s2[c] + b->t2[c];
        axpy(v, b->W2T + (long)c * C, y, C);
    }
    b->computed += n;
    b->pos = (b->pos + 1) % b->ring;
    return n;
}

void dyncp_frame(Net *net, const REAL *feats, REAL *mask) {
    int C = net->C, F = net->F;
    memcpy(net->x, net->bf, sizeof(REAL) * C);
    for (int f = 0; f < F; f++) axpy(feats[f], net->WfT + (long)f * C, net->x, C);
    for (int c = 0; c < C; c++) net->x[c] = net->x[c] > 0 ? net->x[c] : 0;
    memcpy(net->x0, net->x, sizeof(REAL) * C);
    double speech = 0;
    for (int l = 0; l < net->L; l++) {
        Block *b = net->blocks + l;
        int n = block(b, net->x, net->x0, net->y);
        if (net->vad_w) {
            const double *w = net->vad_w + (long)l * b->H;
            for (int i = 0; i < n; i++) speech += w[b->active[i]];
        }
        memcpy(net->x, net->y, sizeof(REAL) * C);
    }
    memcpy(mask, net->bb, sizeof(REAL) * F);
    for (int c = 0; c < C; c++) axpy(net->x[c], net->WbT + (long)c * F, mask, F);
    for (int f = 0; f < F; f++) mask[f] = 1 / (1 + EXP(-mask[f])); /* the sigmoid, floored below */
    REAL lo = net->floor;
    if (net->vad_w) { /* PauseFloor.stream_floors */
        net->credit = speech + net->vad_b > net->vad_thr ? net->hang + 1 : (net->credit > 0 ? net->credit - 1 : 0);
        int keep = net->credit > 0;
        if (net->low_win) { /* PauseFloor.frame_energies of this frame into the window, then the decision */
            double kept = 0, removed = 0, sums[3] = {0, 0, 0};
            if (keep)
                for (int f = 0; f < F; f++) {
                    double m = mask[f], p = net->power[f];
                    kept += m * m * p;
                    removed += (1 - m) * (1 - m) * p;
                }
            double *r = net->low_ring;
            int w = net->low_win, pos = net->low_pos;
            r[pos] = kept, r[w + pos] = removed, r[2 * w + pos] = keep;
            net->low_pos = (pos + 1) % w;
            for (int k = 0; k < 3; k++)
                for (int i = 0; i < w; i++) sums[k] += r[k * w + i];
            if (sums[2] >= net->low_min && sums[0] < sums[1] * net->low_factor) keep = 0;
        }
        if (!keep) lo = net->pause_floor;
    }
    REAL span = 1 - lo;
    for (int f = 0; f < F; f++) mask[f] = lo + span * mask[f];
}

/* Whole frame from its spectrum: spec is [F][2] (re, im), masked in place; feats is F scratch
 * values; compression <= 0 means plain magnitude, else (|X| + 1e-9) ** compression. */
void dyncp_frame_spec(Net *net, REAL *spec, REAL *feats, REAL *mask, REAL compression) {
    int F = net->F;
    for (int f = 0; f < F; f++) {
        REAL m = SQRT(spec[2 * f] * spec[2 * f] + spec[2 * f + 1] * spec[2 * f + 1]);
        feats[f] = compression > 0 ? POW(m + (REAL)1e-9, compression) : m;
        if (net->low_win) net->power[f] = compression > 0 ? (m + (REAL)1e-9) * (m + (REAL)1e-9) : m * m;
    }
    dyncp_frame(net, feats, mask);
    for (int f = 0; f < F; f++) {
        spec[2 * f] *= mask[f];
        spec[2 * f + 1] *= mask[f];
    }
}

/* ------------------------------------------------------------------------------------------
 * The whole per-frame stream step in C: window -> real FFT -> network -> mask -> inverse real
 * FFT -> window -> overlap-add. Why: with the network in C, a small model's frame costs less
 * in the kernel than in the ~10 NumPy calls around it (rfft, irfft, windowing, buffers), which
 * then hide the saving of pruning. n = n_fft must be a power of two (else streaming/fast.py keeps
 * NumPy's FFT). The real FFT of n points runs as a complex FFT of m = n/2 points on
 * (even + i odd) samples, split into the even/odd spectra afterwards.
 */
typedef struct {
    int n, hop;
    const int *rev;      /* bit reversal of 0..m-1 */
    const REAL *twr, *twi; /* [m - 1] per stage (half = 1, 2, 4, ...: entries half-1 .. 2 half-2): exp(-i pi k / half) */
    const REAL *rtw;     /* [m][2] exp(-2 pi i k / n) */
    const REAL *window;  /* [n] analysis = synthesis window */
    const REAL *inv_env; /* [hop] 1 / interior window energy */
    REAL *zr, *zi;       /* [m] scratch, split real / imaginary parts (contiguous: vectorised butterflies) */
    REAL *spec;          /* [m + 1][2] half spectrum, masked in place */
    REAL *y;             /* [n] scratch: windowed frame, then its inverse */
} Fft;

static void cfft(const Fft *t, REAL *restrict re, REAL *restrict im, int inverse) {
    int m = t->n / 2;
    REAL sgn = inverse ? -1 : 1;
    for (int i = 0; i < m; i++) {
        int j = t->rev[i];
        if (j > i) {
            REAL a = re[i], b = im[i];
            re[i] = re[j], im[i] = im[j];
            re[j] = a, im[j] = b;
        }
    }
    for (int half = 1; half < m; half <<= 1) {
        const REAL *restrict cr = t->twr + half - 1, *restrict ci = t->twi + half - 1;
        for (int s = 0; s < m; s += 2 * half) {
            REAL *restrict ar = re + s, *restrict ai = im + s, *restrict br = re + s + half, *restrict bi = im + s + half;
            for (int k = 0; k < half; k++) {
                REAL wr = cr[k], wi = sgn * ci[k];
                REAL xr = br[k] * wr - bi[k] * wi, xi = br[k] * wi + bi[k] * wr;
                br[k] = ar[k] - xr, bi[k] = ai[k] - xi;
                ar[k] += xr, ai[k] += xi;
            }
        }
    }
}

static void rfft(const Fft *t, const REAL *x, REAL *X) { /* x [n] -> X [m + 1][2] */
    int m = t->n / 2;
    REAL *re = t->zr, *im = t->zi;
    for (int k = 0; k < m; k++) re[k] = x[2 * k], im[k] = x[2 * k + 1]; /* even + i odd */
    cfft(t, re, im, 0);
    for (int k = 0; k <= m; k++) {
        int a = k % m, b = (m - k) % m;
        REAL zr = re[a], zi = im[a], cr = re[b], ci = -im[b]; /* Z[k], conj Z[m-k] */
        REAL er = (zr + cr) / 2, ei = (zi + ci) / 2;       /* even-sample spectrum */
        REAL orr = (zi - ci) / 2, oi = -(zr - cr) / 2;     /* odd-sample spectrum: (Z - conj) / 2i */
        REAL wr = k < m ? t->rtw[2 * k] : -1, wi = k < m ? t->rtw[2 * k + 1] : 0;
        X[2 * k] = er + wr * orr - wi * oi;
        X[2 * k + 1] = ei + wr * oi + wi * orr;
    }
}

static void irfft(const Fft *t, const REAL *X, REAL *x) { /* X [m + 1][2] -> x [n]; 1/n scaling */
    int m = t->n / 2;
    REAL *re = t->zr, *im = t->zi;
    for (int k = 0; k < m; k++) {
        /* imaginary parts of the DC and Nyquist bins are ignored, as by numpy.fft.irfft */
        REAL xr = X[2 * k], xi = k ? X[2 * k + 1] : 0;
        REAL cr = X[2 * (m - k)], ci = k ? -X[2 * (m - k) + 1] : 0; /* conj X[m-k] */
        REAL er = (xr + cr) / 2, ei = (xi + ci) / 2;
        REAL dr = (xr - cr) / 2, di = (xi - ci) / 2;       /* = W^k O[k] */
        REAL wr = t->rtw[2 * k], wi = -t->rtw[2 * k + 1];  /* W^-k */
        REAL orr = dr * wr - di * wi, oi = dr * wi + di * wr;
        re[k] = er - oi, im[k] = ei + orr;                 /* E + i O */
    }
    cfft(t, re, im, 1);
    for (int k = 0; k < m; k++) x[2 * k] = re[k] / m, x[2 * k + 1] = im[k] / m;
}

/* One stream step: frame [n] samples in; its masked, windowed inverse added into num [n];
 * with out != NULL, the hop samples now complete leave as out = num[:hop] * inv_env and num
 * shifts by one hop (else the caller normalises and shifts: start of stream). */
void dyncp_frame_full(Net *net, const Fft *t, const REAL *frame, REAL *num, REAL *out, REAL *feats, REAL *mask,
                      REAL compression) {
    int n = t->n, hop = t->hop;
    REAL *y = t->y;
    for (int i = 0; i < n; i++) y[i] = frame[i] * t->window[i];
    rfft(t, y, t->spec);
    dyncp_frame_spec(net, t->spec, feats, mask, compression);
    irfft(t, t->spec, y);
    for (int i = 0; i < n; i++) num[i] += y[i] * t->window[i];
    if (out) {
        for (int i = 0; i < hop; i++) out[i] = num[i] * t->inv_env[i];
        memmove(num, num + hop, sizeof(REAL) * (n - hop));
        memset(num + n - hop, 0, sizeof(REAL) * hop);
    }
}
