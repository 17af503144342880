/* fused.c - fused Conv(+BN)(+Relu/Clip)(+Add)(+Relu/Clip) kernels on CNHW activations.
 *
 * The plan in optimize.c hands everything after the convolution's sum over
 * as an epilogue (struct fused_epi: BatchNormalization as a per-channel scale
 * and bias, activations, a residual), which these kernels apply while the
 * output is still in registers or cache.
 *
 * Group-1 convolutions are matrix products: W (m x c*kh*kw) times the im2col
 * matrix, whose columns are the output pixels of all images (CNHW makes them
 * one row of n*oh*ow per input channel, so a 1x1 stride-1 convolution needs no
 * im2col at all).  Work is cut into (column block, row block) tasks run on our
 * pool with a single-threaded SGEMM each; a block is sized to stay in L2.
 *
 * Both im2col and depthwise convolutions see the input through a "shift map":
 * with the input split into its stride phases (for stride 1 and "same"
 * padding, the input itself), every kernel tap reads one phase at one constant
 * offset from the output pixel, except where the window hangs over the
 * border, which a per-tap mask (periodic in the output plane) zeroes.  So an
 * im2col row, or a depthwise output channel over all images, is one flat run
 * of 16-wide vector loads, ANDs and FMAs, with no per-row work; loads that
 * run past a tensor's ends land in the FUSED_GUARD floats around it and are
 * masked.  Geometries the shift map cannot express (e.g. "valid" padding)
 * take slower per-row paths: im2col by row segments, and depthwise through
 * zero-padded phase planes per image.
 *
 * Vector code uses GCC's vector extensions, compiled three times (AVX-512,
 * AVX2+FMA, and the baseline) and chosen at run time from the CPU's features,
 * because the build targets the x86-64 baseline.  The hottest AVX-512 loops
 * use intrinsics instead, for masked loads (a 16-bit mask per vector instead
 * of a 64-byte mask vector). */
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "dfq/dfq_blas.h"
#include "fused.h"

#define VL 16 /* floats per vector */

typedef float v16f __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));

/* Floats of im2col block plus output block a GEMM task should keep in L2. */
#define GEMM_BLOCK_FLOATS (96 * 1024)
/* Micro-kernel tile: GEMM_MR rows by up to GEMM_NV vectors of columns. */
#define GEMM_MR          8
#define GEMM_NV          3
#define GEMM_MIN_COLS    64
#define GEMM_MIN_ROWS    16
#define TASKS_PER_THREAD 2
/* Input channels from which a group-1 convolution with a shift map skips the
 * im2col block (see tile_body). */
#define IMPLICIT_MIN_C 8

/* Taps of a depthwise kernel the direct paths handle (the plan checks), and of
 * any kernel the shift map handles. */
#define DW_MAX_TAPS FUSED_MAX_TAPS
/* Largest mask table of a shift map, in entries (taps times output plane). */
#define SHIFT_MAX_MASK (256 * 1024)
/* Flat outputs per depthwise work item. */
#define DW_CHUNK 2048
/* Vectors per step of the depthwise loop (independent sums hide the FMA
 * latency); the last step reads up to this many vectors past its end. */
#define DWM_NV 4
/* Channels per step of the AVX-512 depthwise loop: they share the lane masks. */
#define DWM_CG 4

/* --- ISA selection --------------------------------------------------------------------- */

enum isa { ISA_GENERIC, ISA_AVX2, ISA_AVX512 };

static pthread_once_t isa_once = PTHREAD_ONCE_INIT;
static enum isa isa_detected;
static atomic_bool isa_force_generic; /* set by tests between runs */

static void isa_detect(void)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		isa_detected = ISA_AVX512;
	else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		isa_detected = ISA_AVX2;
	else
		isa_detected = ISA_GENERIC;
}

static enum isa isa_now(void)
{
	pthread_once(&isa_once, isa_detect);
	return atomic_load(&isa_force_generic) ? ISA_GENERIC : isa_detected;
}

void fused_force_generic(bool on)
{
	atomic_store(&isa_force_generic, on);
}

const char *fused_isa(void)
{
	static const char *const names[] = {"generic", "avx2", "avx512"};
	return names[isa_now()];
}

#define TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
#define TARGET_AVX2   __attribute__((target("avx2,fma")))
#define INLINE        static inline __attribute__((always_inline))

/* v = clip(v, lo, hi) with Clip's NaN behaviour: a NaN compares false and stays. */
#define VCLIP(v, lo, hi)                                                                           \
	do {                                                                                       \
		v16i m_ = (v) < (lo);                                                              \
		(v) = (v16f)((m_ & (v16i)(lo)) | (~m_ & (v16i)(v)));                               \
		m_ = (v) > (hi);                                                                   \
		(v) = (v16f)((m_ & (v16i)(hi)) | (~m_ & (v16i)(v)));                               \
	} while (0)

static inline float clipf(float v, float lo, float hi)
{
	if (v < lo)
		v = lo;
	if (v > hi)
		v = hi;
	return v;
}

/* Round half to even by adding and subtracting 1.5 * 2^23 (exact for |v| <= 2^22; the
 * callers clamp to the code range first), the vectorisable rounding of quant.c. */
#define QMAGIC 12582912.0f

/* v = fake-quantized v on grid q (a struct fused_fq), as dfq_fake_quant does it. */
#define VFQ(v, q)                                                                                  \
	do {                                                                                       \
		v16f t_ = (v) * (q).inv;                                                           \
		v16f lo_ = {0}, hi_ = {0};                                                         \
		lo_ += (q).lo;                                                                     \
		hi_ += (q).hi;                                                                     \
		VCLIP(t_, lo_, hi_);                                                               \
		t_ = (t_ + QMAGIC) - QMAGIC;                                                       \
		(v) = t_ * (q).scale;                                                              \
	} while (0)

static inline float fqf(float v, const struct fused_fq *q)
{
	float t = clipf(v * q->inv, q->lo, q->hi);
	t = (t + QMAGIC) - QMAGIC;
	return t * q->scale;
}

struct fused_fq fused_fq_of(float scale, int32_t zero_point, int32_t qmin, int32_t qmax)
{
	return (struct fused_fq){.inv = 1.0f / scale,
	                         .lo = (float)(qmin - zero_point),
	                         .hi = (float)(qmax - zero_point),
	                         .scale = scale};
}

/* --- epilogue ---------------------------------------------------------------------------- */

/* y[0..len) = fq2(act2(fq1(act1(y * sc + b)) + r)) per struct fused_epi; r may be NULL. */
INLINE void epi_body(float *restrict y, const float *restrict r, int64_t len, float sc, float b,
                     const struct fused_epi *e)
{
	v16f sv = {0}, bv = {0}, lo1 = {0}, hi1 = {0}, lo2 = {0}, hi2 = {0};
	sv += sc;
	bv += b;
	lo1 += e->lo1;
	hi1 += e->hi1;
	lo2 += e->lo2;
	hi2 += e->hi2;
	int64_t i = 0;
	for (; i + VL <= len; i += VL) {
		v16f v;
		memcpy(&v, y + i, sizeof v);
		v = v * sv + bv;
		if (e->act1)
			VCLIP(v, lo1, hi1);
		if (e->fq1)
			VFQ(v, e->q1);
		if (r) {
			v16f rv;
			memcpy(&rv, r + i, sizeof rv);
			v += rv;
		}
		if (e->act2)
			VCLIP(v, lo2, hi2);
		if (e->fq2)
			VFQ(v, e->q2);
		memcpy(y + i, &v, sizeof v);
	}
	for (; i < len; i++) {
		float v = y[i] * sc + b;
		if (e->act1)
			v = clipf(v, e->lo1, e->hi1);
		if (e->fq1)
			v = fqf(v, &e->q1);
		if (r)
			v += r[i];
		if (e->act2)
			v = clipf(v, e->lo2, e->hi2);
		if (e->fq2)
			v = fqf(v, &e->q2);
		y[i] = v;
	}
}

TARGET_AVX512 static void epi_avx512(float *y, const float *r, int64_t len, float sc, float b,
                                     const struct fused_epi *e)
{
	epi_body(y, r, len, sc, b, e);
}

TARGET_AVX2 static void epi_avx2(float *y, const float *r, int64_t len, float sc, float b,
                                 const struct fused_epi *e)
{
	epi_body(y, r, len, sc, b, e);
}

static void epi_generic(float *y, const float *r, int64_t len, float sc, float b,
                        const struct fused_epi *e)
{
	epi_body(y, r, len, sc, b, e);
}

static void epi_row(enum isa isa, float *y, const float *r, int64_t len, float sc, float b,
                    const struct fused_epi *e)
{
	switch (isa) {
	case ISA_AVX512:
		epi_avx512(y, r, len, sc, b, e);
		break;
	case ISA_AVX2:
		epi_avx2(y, r, len, sc, b, e);
		break;
	default:
		epi_generic(y, r, len, sc, b, e);
		break;
	}
}

/* Channel m's scale and bias. */
static float epi_scale(const struct fused_epi *e, int64_t m)
{
	return e->scale ? e->scale[m] : 1.0f;
}

static float epi_bias(const struct fused_epi *e, int64_t m)
{
	return e->bias ? e->bias[m] : 0.0f;
}

/* --- shared geometry helpers ------------------------------------------------------------- */

static int64_t ceil_div(int64_t a, int64_t b)
{
	return (a + b - 1) / b;
}

static int64_t round_up(int64_t a, int64_t b)
{
	return ceil_div(a, b) * b;
}

/* Output positions o in [0, out) whose input index o * s + off lies in [0, in). */
static void valid_range(int64_t off, int64_t s, int64_t in, int64_t out, int64_t *lo, int64_t *hi)
{
	int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
	int64_t h = in - 1 - off < 0 ? 0 : (in - 1 - off) / s + 1;
	*lo = l < out ? l : out;
	*hi = h < out ? h : out;
	if (*hi < *lo)
		*hi = *lo;
}

/* d[0..n) = xr[j * s + off] for j in [0, n), zero where that is outside [0, in)
 * or xr is NULL (a padding row). */
static void gather_row(float *d, const float *xr, int64_t n, int64_t s, int64_t off, int64_t in)
{
	int64_t lo = n, hi = n;
	if (xr)
		valid_range(off, s, in, n, &lo, &hi);
	if (lo >= hi)
		lo = hi = n;
	memset(d, 0, (size_t)lo * sizeof *d);
	if (s == 1) {
		if (hi > lo) /* xr may be NULL otherwise: no pointer arithmetic on it */
			memcpy(d + lo, xr + lo + off, (size_t)(hi - lo) * sizeof *d);
	} else {
		for (int64_t j = lo; j < hi; j++)
			d[j] = xr[j * s + off];
	}
	memset(d + hi, 0, (size_t)(n - hi) * sizeof *d);
}

/* --- shift maps ------------------------------------------------------------------------ */

/* How each kernel tap reads the input, for the output grid oh x ow (see the
 * top of the file).  Phase ph of a stride (sh, sw) input holds the rows
 * i * sh + ph / sw and columns j * sw + ph % sw on an oh x ow grid; the source
 * block of channel c and phase ph is src + (c * nph + ph) * n * ohw. */
struct shiftmap {
	bool ok;
	bool deint; /* src is the input split into phases (else the input itself) */
	int ntaps, nph;
	int64_t ohw, mlen; /* mask rows have ohw + VL entries (a period and a vector) */
	int ph[DW_MAX_TAPS];
	int64_t off[DW_MAX_TAPS];
	bool full[DW_MAX_TAPS];                   /* the tap never hangs over the border: no mask */
	bool used[DW_MAX_TAPS];                   /* phases some tap reads */
	int64_t ra[DW_MAX_TAPS], ca[DW_MAX_TAPS]; /* input row/column offset of the tap */
	const int32_t *mask;                      /* ntaps * mlen, -1 where valid */
	const uint16_t
	    *kmask; /* ntaps * ohw: the same as lane bits, for a vector at each position */
	const float *src;
};

static int64_t floor_div(int64_t a, int64_t b)
{
	return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* Along one axis: tap offset a = k * d - pad reads input o * s + a for output o.
 * Sets *q (grid offset) and *r (phase); false when a valid input index falls
 * outside the out-long grid; *full when no output's input is out of range. */
static bool axis_map(int64_t a, int64_t s, int64_t in, int64_t out, int64_t *q, int64_t *r,
                     bool *full)
{
	*q = floor_div(a, s);
	*r = a - *q * s;
	*full = true;
	for (int64_t o = 0; o < out; o++) {
		int64_t i = o * s + a;
		if (i < 0 || i >= in)
			*full = false;
		else if (o + *q >= out)
			return false;
	}
	return true;
}

static void shiftmap_plan(const struct fused_conv *cv, struct shiftmap *sm)
{
	memset(sm, 0, sizeof *sm);
	sm->ntaps = (int)(cv->kh * cv->kw);
	sm->ohw = cv->oh * cv->ow;
	sm->mlen = sm->ohw + VL;
	if (sm->ntaps > DW_MAX_TAPS || cv->sh * cv->sw > DW_MAX_TAPS ||
	    (sm->ntaps + 1) * sm->mlen > SHIFT_MAX_MASK || sm->ohw == 0)
		return;
	sm->deint = !(cv->sh == 1 && cv->sw == 1 && cv->oh == cv->h && cv->ow == cv->w);
	sm->nph = sm->deint ? (int)(cv->sh * cv->sw) : 1;
	for (int64_t kh = 0; kh < cv->kh; kh++) {
		for (int64_t kw = 0; kw < cv->kw; kw++) {
			int t = (int)(kh * cv->kw + kw);
			int64_t qh, rh, qw, rw;
			bool fh, fw;
			sm->ra[t] = kh * cv->dh - cv->ph;
			sm->ca[t] = kw * cv->dw - cv->pw;
			if (!axis_map(sm->ra[t], cv->sh, cv->h, cv->oh, &qh, &rh, &fh) ||
			    !axis_map(sm->ca[t], cv->sw, cv->w, cv->ow, &qw, &rw, &fw))
				return;
			sm->ph[t] = (int)(rh * cv->sw + rw);
			sm->used[sm->ph[t]] = true;
			sm->off[t] = qh * cv->ow + qw;
			sm->full[t] = fh && fw;
			int64_t reach = sm->off[t] < 0 ? -sm->off[t] : sm->off[t];
			if (reach + DWM_NV * VL > FUSED_GUARD)
				return;
		}
	}
	sm->ok = true;
}

/* The mask tables: a row per tap, then a row of all ones for taps without a
 * mask; then the same as 16-bit lane masks. */
static int64_t shiftmap_mask_floats(const struct shiftmap *sm)
{
	return round_up((int64_t)(sm->ntaps + 1) * sm->mlen, VL) +
	       round_up(ceil_div((int64_t)(sm->ntaps + 1) * sm->ohw, 2), VL);
}

/* Point sm's mask tables into the scratch at mask. */
static void shiftmap_set_masks(struct shiftmap *sm, int32_t *mask)
{
	sm->mask = mask;
	sm->kmask = (const uint16_t *)(mask + round_up((int64_t)(sm->ntaps + 1) * sm->mlen, VL));
}

/* The lane-mask row of tap t (all ones when it has none). */
static const uint16_t *tap_kmask(const struct shiftmap *sm, int t)
{
	return sm->kmask + (sm->full[t] ? sm->ntaps : t) * sm->ohw;
}

/* The mask row tap t uses (all ones when it has none). */
static const int32_t *tap_mask(const struct shiftmap *sm, int t)
{
	return sm->mask + (sm->full[t] ? sm->ntaps : t) * sm->mlen;
}

/* Source floats of a deinterleaved input, guards included. */
static int64_t shiftmap_src_floats(const struct fused_conv *cv, const struct shiftmap *sm)
{
	if (!sm->deint)
		return 0;
	return round_up(cv->c * sm->nph * cv->n * sm->ohw, VL) + 2 * FUSED_GUARD;
}

static void shiftmap_masks(const struct fused_conv *cv, const struct shiftmap *sm, int32_t *mask)
{
	for (int t = 0; t < sm->ntaps; t++) {
		int32_t *mt = mask + t * sm->mlen;
		for (int64_t oh = 0, p = 0; oh < cv->oh; oh++) {
			int64_t ih = oh * cv->sh + sm->ra[t];
			bool rv = ih >= 0 && ih < cv->h;
			for (int64_t ow = 0; ow < cv->ow; ow++, p++) {
				int64_t iw = ow * cv->sw + sm->ca[t];
				mt[p] = rv && iw >= 0 && iw < cv->w ? -1 : 0;
			}
		}
		/* one more vector of the next period, so a vector load never wraps */
		for (int64_t p = sm->ohw; p < sm->mlen; p++)
			mt[p] = mt[p % sm->ohw];
	}
	for (int64_t p = 0; p < sm->mlen; p++)
		mask[sm->ntaps * sm->mlen + p] = -1;
	uint16_t *k = (uint16_t *)(mask + round_up((int64_t)(sm->ntaps + 1) * sm->mlen, VL));
	for (int t = 0; t <= sm->ntaps; t++) {
		const int32_t *mt = mask + t * sm->mlen;
		for (int64_t p = 0; p < sm->ohw; p++) {
			unsigned bits = 0;
			for (int l = 0; l < VL; l++)
				bits |= (mt[p + l] ? 1u : 0u) << l;
			k[t * sm->ohw + p] = (uint16_t)bits;
		}
	}
}

struct deint_job {
	const struct fused_conv *cv;
	const struct shiftmap *sm;
	float *dst;
};

/* Work item = one input plane (channel c, image i), item = c * n + i. */
static void deint_task(void *arg, int64_t begin, int64_t end, int tid)
{
	const struct deint_job *j = arg;
	const struct fused_conv *cv = j->cv;
	const struct shiftmap *sm = j->sm;
	for (int64_t it = begin; it < end; it++) {
		int64_t c = it / cv->n, i = it % cv->n;
		const float *xp = cv->x + it * cv->h * cv->w;
		for (int ph = 0; ph < sm->nph; ph++) {
			if (!sm->used[ph])
				continue;
			int64_t rh = ph / cv->sw, rw = ph % cv->sw;
			float *d = j->dst + ((c * sm->nph + ph) * cv->n + i) * sm->ohw;
			for (int64_t oh = 0; oh < cv->oh; oh++) {
				int64_t ih = oh * cv->sh + rh;
				gather_row(d + oh * cv->ow, ih < cv->h ? xp + ih * cv->w : NULL,
				           cv->ow, cv->sw, rw, cv->w);
			}
		}
	}
}

/* Stride 2 with h == 2 oh, w == 2 ow and ow <= VL: one input channel (all
 * images) split into its four phases with vector shuffles, row by row.  A
 * row is stored as a whole vector, the lanes past ow spilling into the next
 * rows of the same phase block, which are written afterwards; only the rows
 * at the end of a block are stored exactly. */
INLINE void deint2_body(const struct fused_conv *cv, const struct shiftmap *sm, int64_t c,
                        float *dst)
{
	static const v16i even = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
	static const v16i odd = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
	int64_t rows = cv->n * cv->oh, blk = rows * cv->ow;
	const float *x = cv->x + c * cv->n * cv->h * cv->w;
	float *d[4];
	for (int ph = 0; ph < 4; ph++)
		d[ph] = dst + (c * 4 + ph) * blk;
	for (int64_t r = 0; r < rows; r++) {
		bool whole = (r + 1) * cv->ow + VL <= blk + cv->ow;
		for (int64_t rh = 0; rh < 2; rh++) {
			if (!sm->used[2 * rh] && !sm->used[2 * rh + 1])
				continue;
			/* input row 2 * (r % oh) + rh of image r / oh: rows run on */
			const float *xr = x + (2 * r + rh) * cv->w;
			v16f a, b;
			memcpy(&a, xr, sizeof a);
			memcpy(&b, xr + VL, sizeof b);
			v16f e = __builtin_shuffle(a, b, even), o = __builtin_shuffle(a, b, odd);
			float *de = d[2 * rh] + r * cv->ow, *dd = d[2 * rh + 1] + r * cv->ow;
			if (whole) {
				memcpy(de, &e, sizeof e);
				memcpy(dd, &o, sizeof o);
			} else {
				float te[VL], to[VL];
				memcpy(te, &e, sizeof e);
				memcpy(to, &o, sizeof o);
				for (int64_t j = 0; j < cv->ow; j++) {
					de[j] = te[j];
					dd[j] = to[j];
				}
			}
		}
	}
}

TARGET_AVX512 static void deint2_avx512(const struct fused_conv *cv, const struct shiftmap *sm,
                                        int64_t c, float *dst)
{
	deint2_body(cv, sm, c, dst);
}

TARGET_AVX2 static void deint2_avx2(const struct fused_conv *cv, const struct shiftmap *sm,
                                    int64_t c, float *dst)
{
	deint2_body(cv, sm, c, dst);
}

static void deint2_generic(const struct fused_conv *cv, const struct shiftmap *sm, int64_t c,
                           float *dst)
{
	deint2_body(cv, sm, c, dst);
}

/* Work item = one input channel (all images), through deint2_body. */
static void deint2_task(void *arg, int64_t begin, int64_t end, int tid)
{
	const struct deint_job *j = arg;
	enum isa isa = isa_now();
	for (int64_t c = begin; c < end; c++) {
		switch (isa) {
		case ISA_AVX512:
			deint2_avx512(j->cv, j->sm, c, j->dst);
			break;
		case ISA_AVX2:
			deint2_avx2(j->cv, j->sm, c, j->dst);
			break;
		default:
			deint2_generic(j->cv, j->sm, c, j->dst);
			break;
		}
	}
}

/* Point sm->src at the input, or split the input into phases in dst (which
 * has shiftmap_src_floats() floats). */
static void shiftmap_source(const struct fused_conv *cv, struct shiftmap *sm, float *dst,
                            struct dfq_pool *pool)
{
	if (!sm->deint) {
		sm->src = cv->x;
		return;
	}
	int64_t body = shiftmap_src_floats(cv, sm) - 2 * FUSED_GUARD;
	/* the guards are read (and masked): keep them free of stale NaN patterns
	 * only for tidiness, the AND with 0 clears whatever is there */
	memset(dst, 0, FUSED_GUARD * sizeof *dst);
	memset(dst + FUSED_GUARD + body, 0, FUSED_GUARD * sizeof *dst);
	struct deint_job j = {.cv = cv, .sm = sm, .dst = dst + FUSED_GUARD};
	int64_t per = cv->h * cv->w;
	if (cv->sh == 2 && cv->sw == 2 && cv->h == 2 * cv->oh && cv->w == 2 * cv->ow &&
	    cv->ow <= VL) {
		/* reads up to 2 * VL floats from a row start: the guard covers the end */
		int64_t chunk = 8192 / (per * cv->n > 0 ? per * cv->n : 1);
		dfq_pool_run(pool, cv->c, chunk > 1 ? chunk : 1, deint2_task, &j);
	} else {
		int64_t chunk = 8192 / (per > 0 ? per : 1);
		dfq_pool_run(pool, cv->c * cv->n, chunk > 1 ? chunk : 1, deint_task, &j);
	}
	sm->src = dst + FUSED_GUARD;
}

/* d[0..len) = s[i] where the tap's mask (row m, starting at period position r)
 * says valid, else 0. */
INLINE void mshift_body(float *restrict d, const float *s, const int32_t *m, int64_t r, int64_t ohw,
                        int64_t len)
{
	int64_t i = 0;
	for (; i + VL <= len; i += VL) {
		v16f x;
		v16i mm;
		memcpy(&x, s + i, sizeof x);
		memcpy(&mm, m + r, sizeof mm);
		x = (v16f)((v16i)x & mm);
		memcpy(d + i, &x, sizeof x);
		r += VL;
		while (r >= ohw)
			r -= ohw;
	}
	for (; i < len; i++) {
		d[i] = m[r] ? s[i] : 0.0f;
		if (++r == ohw)
			r = 0;
	}
}

/* mshift_body with lane masks (km: the tap's lane-mask row): masked lanes are
 * not even loaded. */
TARGET_AVX512 static void mshift_avx512(float *d, const float *s, const uint16_t *km, int64_t r,
                                        int64_t ohw, int64_t len)
{
	int64_t i = 0;
	for (; i + VL <= len; i += VL) {
		_mm512_storeu_ps(d + i, _mm512_maskz_loadu_ps(km[r], s + i));
		r += VL;
		while (r >= ohw)
			r -= ohw;
	}
	if (i < len) {
		__mmask16 tail = (__mmask16)((1u << (len - i)) - 1);
		_mm512_mask_storeu_ps(d + i, tail, _mm512_maskz_loadu_ps(km[r] & tail, s + i));
	}
}

TARGET_AVX2 static void mshift_avx2(float *d, const float *s, const int32_t *m, int64_t r,
                                    int64_t ohw, int64_t len)
{
	mshift_body(d, s, m, r, ohw, len);
}

static void mshift_generic(float *d, const float *s, const int32_t *m, int64_t r, int64_t ohw,
                           int64_t len)
{
	mshift_body(d, s, m, r, ohw, len);
}

/* --- group-1 convolution: im2col + SGEMM -------------------------------------------------- */

struct gemm_plan {
	const struct fused_conv *cv;
	enum isa isa;
	bool direct; /* 1x1, stride 1, no pads: the input is the column matrix */
	struct shiftmap sm;
	int64_t k;       /* c * kh * kw */
	int64_t cols;    /* n * oh * ow */
	int64_t cb, ncb; /* column block size and count */
	int64_t rb, nrb; /* row block size and count */
	float *cols_buf; /* per thread k * ldcol floats */
	int64_t ldcol;   /* row stride of an im2col block: cb rounded up to whole vectors */
	int64_t per_thread;
	bool own;      /* our micro-kernel (AVX-512) rather than the BLAS */
	bool implicit; /* own, reading the input through the shift map: no im2col block */
};

/* Columns [j0, j1) of the im2col matrix into col (k rows, nb floats apart), row
 * segment by row segment: for geometries without a shift map. */
static void im2col_rows(const struct fused_conv *cv, int64_t j0, int64_t j1, float *col, int64_t nb)
{
	int64_t ohw = cv->oh * cv->ow;
	for (int64_t r = 0; r < cv->c * cv->kh * cv->kw; r++) {
		int64_t c = r / (cv->kh * cv->kw), kh = r / cv->kw % cv->kh, kw = r % cv->kw;
		int64_t off = kw * cv->dw - cv->pw;
		for (int64_t j = j0; j < j1;) {
			int64_t img = j / ohw, p = j % ohw, oh = p / cv->ow, ow0 = p % cv->ow;
			int64_t len = cv->ow - ow0 < j1 - j ? cv->ow - ow0 : j1 - j;
			int64_t ih = oh * cv->sh - cv->ph + kh * cv->dh;
			const float *xr = ih >= 0 && ih < cv->h
			                      ? cv->x + ((c * cv->n + img) * cv->h + ih) * cv->w
			                      : NULL;
			/* output columns ow0.. read input columns ow * sw + off */
			gather_row(col + r * nb + (j - j0), xr, len, cv->sw, ow0 * cv->sw + off,
			           cv->w);
			j += len;
		}
	}
}

/* The same block through the shift map: one masked run per im2col row. */
static void im2col_shift(const struct gemm_plan *gp, int64_t j0, int64_t j1, float *col, int64_t ld)
{
	const struct fused_conv *cv = gp->cv;
	const struct shiftmap *sm = &gp->sm;
	int64_t nb = j1 - j0, r0 = j0 % sm->ohw, blk = cv->n * sm->ohw;
	for (int64_t r = 0; r < gp->k; r++) {
		int64_t c = r / sm->ntaps;
		int t = (int)(r % sm->ntaps);
		const float *s = sm->src + (c * sm->nph + sm->ph[t]) * blk + sm->off[t] + j0;
		float *d = col + r * ld;
		if (sm->full[t]) {
			memcpy(d, s, (size_t)nb * sizeof *d);
			continue;
		}
		const int32_t *m = tap_mask(sm, t);
		switch (gp->isa) {
		case ISA_AVX512:
			mshift_avx512(d, s, tap_kmask(sm, t), r0, sm->ohw, nb);
			break;
		case ISA_AVX2:
			mshift_avx2(d, s, m, r0, sm->ohw, nb);
			break;
		default:
			mshift_generic(d, s, m, r0, sm->ohw, nb);
			break;
		}
	}
}

/* The im2col block of columns [j0, j1) (or the input itself for a direct 1x1
 * convolution): *ldb gets its row stride. */
static const float *gemm_cols(const struct gemm_plan *gp, int64_t j0, int64_t j1, int tid,
                              int64_t *ldb)
{
	if (gp->direct) {
		*ldb = gp->cols;
		return gp->cv->x + j0;
	}
	float *s = gp->cols_buf + (int64_t)tid * gp->per_thread;
	if (gp->sm.ok)
		im2col_shift(gp, j0, j1, s, gp->ldcol);
	else
		im2col_rows(gp->cv, j0, j1, s, gp->ldcol);
	*ldb = gp->ldcol;
	return s;
}

/* One task through the BLAS: SGEMM, then the epilogue row by row. */
static void gemm_blas(const struct gemm_plan *gp, int64_t j0, int64_t j1, int64_t m0, int64_t m1,
                      int tid)
{
	const struct fused_conv *cv = gp->cv;
	int64_t ldb;
	const float *b = gemm_cols(gp, j0, j1, tid, &ldb);
	float *y = cv->y + m0 * gp->cols + j0;
	dfq_sgemm(false, false, (int)(m1 - m0), (int)(j1 - j0), (int)gp->k, 1.0f,
	          cv->wt + m0 * gp->k, (int)gp->k, b, (int)ldb, 0.0f, y, (int)gp->cols);
	const struct fused_epi *e = &cv->epi;
	for (int64_t m = m0; m < m1; m++) {
		int64_t o = m * gp->cols + j0;
		epi_row(gp->isa, cv->y + o, e->res ? e->res + o : NULL, j1 - j0, epi_scale(e, m),
		        epi_bias(e, m), e);
	}
}

/* --- our SGEMM micro-kernel (AVX-512) ----------------------------------------------------- */

/* A tile is GEMM_MR output rows by nv vectors of columns, summed in registers
 * over all of k and stored once through the epilogue: no packing (rows of B
 * are read in place, and the GEMM_MR weight rows are broadcast from where they
 * are: each row's cache line serves 16 steps of k), no zeroing pass, no second
 * pass for the epilogue.
 *
 * k is walked as one or more segments (struct kseg), each a run of B rows a
 * constant stride apart read through constant lane masks.  A direct 1x1
 * convolution or an im2col block is one segment without masks.  A convolution
 * with a shift map is an implicit GEMM: one segment per kernel tap t, whose
 * rows are the input channels' planes (all images) shifted by the tap's offset
 * and masked by the tap's border mask at the tile's columns: exactly the
 * im2col rows (c, t), read where they are instead of being copied first. */
struct kseg {
	const float *b;        /* B row of the first step, at the tile's first column */
	int64_t ldb;           /* floats between the B rows of consecutive steps */
	const float *w;        /* weight of the tile's first row for the first step */
	int64_t ws;            /* floats between the weights of consecutive steps */
	int64_t len;           /* steps */
	__mmask16 km[GEMM_NV]; /* lanes of each vector to load (the others are 0) */
};

/* C tile at c (row stride ldc) = epilogue(sum over the segments of W times B);
 * weight rows are ldw floats apart.  rows: output rows that exist (the tile's
 * others repeat the last one and are not stored); lanes: columns that exist in
 * the last vector. */
TARGET_AVX512 INLINE void tile_body(const int nv, const bool masked, const struct kseg *seg,
                                    int nseg, int64_t ldw, float *restrict c,
                                    const float *restrict res, int64_t ldc, int rows, int lanes,
                                    int64_t m0, const struct fused_epi *e)
{
	v16f acc[GEMM_MR][GEMM_NV];
#pragma GCC unroll 8
	for (int i = 0; i < GEMM_MR; i++)
#pragma GCC unroll 8
		for (int v = 0; v < GEMM_NV; v++)
			acc[i][v] = (v16f){0};
	for (int s = 0; s < nseg; s++) {
		const struct kseg *sg = &seg[s];
		const float *wr[GEMM_MR];
#pragma GCC unroll 8
		for (int i = 0; i < GEMM_MR; i++)
			wr[i] = sg->w + (i < rows ? i : rows - 1) * ldw;
		const float *b = sg->b;
		int64_t ldb = sg->ldb, ws = sg->ws;
		for (int64_t kk = 0; kk < sg->len; kk++) {
			v16f bv[GEMM_NV];
#pragma GCC unroll 8
			for (int v = 0; v < nv; v++)
				bv[v] = masked ? (v16f)_mm512_maskz_loadu_ps(sg->km[v],
				                                             b + kk * ldb + v * VL)
				               : (v16f)_mm512_loadu_ps(b + kk * ldb + v * VL);
#pragma GCC unroll 8
			for (int i = 0; i < GEMM_MR; i++) {
				float wv = wr[i][masked ? kk * ws : kk];
#pragma GCC unroll 8
				for (int v = 0; v < nv; v++)
					acc[i][v] += wv * bv[v];
			}
		}
	}
	v16f lo1 = {0}, hi1 = {0}, lo2 = {0}, hi2 = {0};
	lo1 += e->lo1;
	hi1 += e->hi1;
	lo2 += e->lo2;
	hi2 += e->hi2;
#pragma GCC unroll 8
	for (int i = 0; i < GEMM_MR; i++) {
		if (i >= rows)
			break;
		float si = epi_scale(e, m0 + i), bi = epi_bias(e, m0 + i);
#pragma GCC unroll 8
		for (int v = 0; v < nv; v++) {
			v16f x = acc[i][v] * si + bi;
			if (e->act1)
				VCLIP(x, lo1, hi1);
			if (e->fq1)
				VFQ(x, e->q1);
			float *cp = c + i * ldc + v * VL;
			const float *rp = res ? res + i * ldc + v * VL : NULL;
			size_t len = (v == nv - 1 ? (size_t)lanes : VL) * sizeof(float);
			if (len == sizeof x) {
				if (rp) {
					v16f rv;
					memcpy(&rv, rp, sizeof rv);
					x += rv;
				}
				if (e->act2)
					VCLIP(x, lo2, hi2);
				if (e->fq2)
					VFQ(x, e->q2);
				memcpy(cp, &x, sizeof x);
			} else {
				if (rp) {
					v16f rv = {0};
					memcpy(&rv, rp, len);
					x += rv;
				}
				if (e->act2)
					VCLIP(x, lo2, hi2);
				if (e->fq2)
					VFQ(x, e->q2);
				memcpy(cp, &x, len);
			}
		}
	}
}

/* One function per variant: GCC allocates the 24 accumulators to registers
 * only when each variant is compiled on its own. */
#define TILE_VARIANT(name, nv, masked)                                                             \
	TARGET_AVX512 __attribute__((noinline)) static void name(                                  \
	    const struct kseg *seg, int nseg, int64_t ldw, float *c, const float *res,             \
	    int64_t ldc, int rows, int lanes, int64_t m0, const struct fused_epi *e)               \
	{                                                                                          \
		tile_body(nv, masked, seg, masked ? nseg : 1, ldw, c, res, ldc, rows, lanes, m0,   \
		          e);                                                                      \
	}
TILE_VARIANT(tile3m, 3, true)
TILE_VARIANT(tile3, 3, false)
TILE_VARIANT(tile2m, 2, true)
TILE_VARIANT(tile2, 2, false)
TILE_VARIANT(tile1m, 1, true)
TILE_VARIANT(tile1, 1, false)

/* The tile through the variant for nv vectors; a plain GEMM (one segment, no
 * masks) takes the simpler loop. */
INLINE void tile_avx512(int nv, bool masked, const struct kseg *seg, int nseg, int64_t ldw,
                        float *c, const float *res, int64_t ldc, int rows, int lanes, int64_t m0,
                        const struct fused_epi *e)
{
	switch (nv * 2 + masked) {
	case 7:
		tile3m(seg, nseg, ldw, c, res, ldc, rows, lanes, m0, e);
		break;
	case 6:
		tile3(seg, nseg, ldw, c, res, ldc, rows, lanes, m0, e);
		break;
	case 5:
		tile2m(seg, nseg, ldw, c, res, ldc, rows, lanes, m0, e);
		break;
	case 4:
		tile2(seg, nseg, ldw, c, res, ldc, rows, lanes, m0, e);
		break;
	case 3:
		tile1m(seg, nseg, ldw, c, res, ldc, rows, lanes, m0, e);
		break;
	default:
		tile1(seg, nseg, ldw, c, res, ldc, rows, lanes, m0, e);
		break;
	}
}

/* The segments of k for the column tile at jt (nv vectors, the last with
 * `lanes` columns) and weight rows from w; *nseg gets their count.  b, ldb: the
 * B block (gemm_cols) when there is no shift map to read the input through. */
static void gemm_segs(const struct gemm_plan *gp, int64_t jt, int nv, int lanes, const float *w,
                      const float *b, int64_t ldb, struct kseg *seg, int *nseg)
{
	__mmask16 tail = (__mmask16)(lanes >= VL ? 0xffff : (1u << lanes) - 1);
	if (!gp->implicit) {
		seg[0] = (struct kseg){.b = b, .ldb = ldb, .w = w, .ws = 1, .len = gp->k};
		for (int v = 0; v < GEMM_NV; v++)
			seg[0].km[v] = v == nv - 1 ? tail : 0xffff;
		*nseg = 1;
		return;
	}
	const struct fused_conv *cv = gp->cv;
	const struct shiftmap *sm = &gp->sm;
	int64_t blk = cv->n * sm->ohw;
	int64_t r[GEMM_NV]; /* the vectors' positions in the mask period */
	r[0] = jt % sm->ohw;
	for (int v = 1; v < GEMM_NV; v++)
		for (r[v] = r[v - 1] + VL; r[v] >= sm->ohw;) /* no division per tile */
			r[v] -= sm->ohw;
	for (int t = 0; t < sm->ntaps; t++) {
		const uint16_t *km = tap_kmask(sm, t);
		struct kseg *sg = &seg[t];
		sg->b = sm->src + sm->ph[t] * blk + sm->off[t] + jt;
		sg->ldb = sm->nph * blk; /* the next input channel, same phase */
		sg->w = w + t;           /* weights are [m][c][taps] */
		sg->ws = sm->ntaps;
		sg->len = cv->c;
		for (int v = 0; v < GEMM_NV; v++)
			sg->km[v] =
			    (__mmask16)(v < nv ? km[r[v]] & (v == nv - 1 ? tail : 0xffff) : 0);
	}
	*nseg = sm->ntaps;
}

/* Columns [j0, j1) and rows [m0, m1) through the micro-kernel, B read from b
 * (row stride ldb, b at column j0; NULL for an implicit GEMM).  Lanes past
 * the last column are computed and never stored: a plain GEMM's loads there
 * read the B block's padding or the input's next row or guard, the masked
 * loads of an implicit GEMM read nothing. */
TARGET_AVX512 static void gemm_own_b(const struct gemm_plan *gp, const float *b, int64_t ldb,
                                     int64_t j0, int64_t j1, int64_t m0, int64_t m1)
{
	const struct fused_conv *cv = gp->cv;
	const struct fused_epi *e = &cv->epi;
	struct kseg seg[DW_MAX_TAPS];
	for (int64_t jt = j0; jt < j1; jt += GEMM_NV * VL) {
		int64_t ncol = j1 - jt < GEMM_NV * VL ? j1 - jt : GEMM_NV * VL;
		int nv = (int)ceil_div(ncol, VL);
		int lanes = (int)(ncol - (nv - 1) * VL);
		int nseg;
		gemm_segs(gp, jt, nv, lanes, cv->wt + m0 * gp->k, b ? b + (jt - j0) : NULL, ldb,
		          seg, &nseg);
		for (int64_t mp = m0; mp < m1; mp += GEMM_MR) {
			int rows = (int)(cv->m - mp < GEMM_MR ? cv->m - mp : GEMM_MR);
			int64_t o = mp * gp->cols + jt;
			tile_avx512(nv, gp->implicit, seg, nseg, gp->k, cv->y + o,
			            e->res ? e->res + o : NULL, gp->cols, rows, lanes, mp, e);
			/* the next row tile's weights */
			for (int s = 0; s < nseg; s++)
				seg[s].w += GEMM_MR * gp->k;
		}
	}
}

/* One task through the micro-kernel. */
static void gemm_own(const struct gemm_plan *gp, int64_t j0, int64_t j1, int64_t m0, int64_t m1,
                     int tid)
{
	int64_t ldb = 0;
	const float *b = gp->implicit ? NULL : gemm_cols(gp, j0, j1, tid, &ldb);
	gemm_own_b(gp, b, ldb, j0, j1, m0, m1);
}

static void gemm_task(void *arg, int64_t begin, int64_t end, int tid)
{
	const struct gemm_plan *gp = arg;
	const struct fused_conv *cv = gp->cv;
	for (int64_t t = begin; t < end; t++) {
		int64_t cbi = t / gp->nrb, rbi = t % gp->nrb;
		int64_t j0 = cbi * gp->cb, j1 = j0 + gp->cb < gp->cols ? j0 + gp->cb : gp->cols;
		int64_t m0 = rbi * gp->rb, m1 = m0 + gp->rb < cv->m ? m0 + gp->rb : cv->m;
		if (gp->own)
			gemm_own(gp, j0, j1, m0, m1, tid);
		else
			gemm_blas(gp, j0, j1, m0, m1, tid);
	}
}

/* Blocks: columns sized so an im2col block and its output stay in L2; when
 * that leaves fewer than TASKS_PER_THREAD tasks per thread (one small image),
 * columns and then rows are split further.  Our micro-kernel's blocks are
 * whole tiles wide: a block ending in a partial tile (one or two vectors, with
 * fewer sums to hide the loads) cost up to a quarter of a 7x7 layer's tiles. */
static void gemm_blocks(struct gemm_plan *gp, int nthreads)
{
	const struct fused_conv *cv = gp->cv;
	int64_t unit = gp->own ? GEMM_NV * VL : VL;
	int64_t per_col = gp->k + cv->m;
	int64_t cap = GEMM_BLOCK_FLOATS / (per_col > 0 ? per_col : 1);
	cap = cap < GEMM_MIN_COLS ? GEMM_MIN_COLS : round_up(cap, unit);
	int64_t want = (int64_t)TASKS_PER_THREAD * nthreads;
	gp->ncb = ceil_div(gp->cols, cap);
	if (gp->ncb < want && nthreads > 1) {
		int64_t most = gp->cols / GEMM_MIN_COLS;
		gp->ncb = want < most ? want : (most > gp->ncb ? most : gp->ncb);
	}
	if (gp->ncb < 1)
		gp->ncb = 1;
	gp->cb = round_up(ceil_div(gp->cols, gp->ncb), unit);
	gp->ncb = ceil_div(gp->cols, gp->cb);
	gp->nrb = 1;
	if (gp->ncb < want && nthreads > 1) {
		int64_t nrb = ceil_div(want, gp->ncb), most = cv->m / GEMM_MIN_ROWS;
		gp->nrb = nrb < most ? nrb : (most > 1 ? most : 1);
	}
	gp->rb = round_up(ceil_div(cv->m, gp->nrb), GEMM_MR);
	gp->nrb = ceil_div(cv->m, gp->rb);
}

static void gemm_setup(struct gemm_plan *gp, const struct fused_conv *cv, int nthreads)
{
	memset(gp, 0, sizeof *gp);
	gp->cv = cv;
	gp->direct = cv->kh == 1 && cv->kw == 1 && cv->sh == 1 && cv->sw == 1 && cv->ph == 0 &&
	             cv->pw == 0 && cv->oh == cv->h && cv->ow == cv->w;
	gp->k = cv->c * cv->kh * cv->kw;
	gp->cols = cv->n * cv->oh * cv->ow;
	if (!gp->direct)
		shiftmap_plan(cv, &gp->sm);
	gp->isa = isa_now();
	gp->own = gp->isa == ISA_AVX512;
	gemm_blocks(gp, nthreads);
	gp->ldcol = round_up(gp->cb, VL);
	/* implicit GEMM: a segment per tap costs a few instructions of set-up per
	 * tile, which a handful of input channels (a network's first layer) does
	 * not pay back; there, copying the few im2col rows is cheaper */
	gp->implicit = gp->own && !gp->direct && gp->sm.ok && cv->c >= IMPLICIT_MIN_C;
	gp->per_thread = gp->direct || gp->implicit ? 0 : round_up(gp->k * gp->ldcol, VL);
}

/* --- depthwise through the shift map ------------------------------------------------------ */

struct dwm_job {
	const struct fused_conv *cv;
	enum isa isa;
	struct shiftmap sm;
	int64_t chunk, nchunks; /* flat outputs per item, items per channel */
	/* where output q of channel m goes: y + m * yld + q - yoff (cv->y, n * oh * ow
	 * and 0, except in a block buffer of fused_dw_pw_run, which has no residual) */
	float *y;
	int64_t yld, yoff;
	bool dwm3; /* dwm3_fits: the AVX-512 kernels take dwm3_avx512_body */
};

/* The epilogue after act1 and q1 for one vector of outputs q (len lanes exist),
 * stored at y + yq. */
#define DWM_STORE(acc, q, yq, len)                                                                 \
	do {                                                                                       \
		if ((len) == VL) {                                                                 \
			if (res) {                                                                 \
				v16f rv_;                                                          \
				memcpy(&rv_, res + (q), sizeof rv_);                               \
				(acc) += rv_;                                                      \
			}                                                                          \
			if (e->act2)                                                               \
				VCLIP(acc, lo2, hi2);                                              \
			if (e->fq2)                                                                \
				VFQ(acc, e->q2);                                                   \
			memcpy(y + (yq), &(acc), sizeof(acc));                                     \
		} else {                                                                           \
			if (res) {                                                                 \
				v16f rv_ = {0};                                                    \
				memcpy(&rv_, res + (q), (size_t)(len) * sizeof(float));            \
				(acc) += rv_;                                                      \
			}                                                                          \
			if (e->act2)                                                               \
				VCLIP(acc, lo2, hi2);                                              \
			if (e->fq2)                                                                \
				VFQ(acc, e->q2);                                                   \
			memcpy(y + (yq), &(acc), (size_t)(len) * sizeof(float));                   \
		}                                                                                  \
	} while (0)

/* The mask positions (places in the output plane of ohw pixels) of a step's DWM_NV
 * vectors, the first at *r; *r moves on to the next step's. */
INLINE void dwm_positions(int64_t *rv, int64_t *r, int64_t ohw)
{
#pragma GCC unroll 8
	for (int v = 0; v < DWM_NV; v++) {
		rv[v] = *r;
		*r += VL;
		while (*r >= ohw)
			*r -= ohw;
	}
}

/* y[q] for q in [q0, q1) of output channel m (flat over images and pixels). */
INLINE void dwm_body(const struct dwm_job *jb, int64_t m, int64_t q0, int64_t q1)
{
	const struct fused_conv *cv = jb->cv;
	const struct shiftmap *sm = &jb->sm;
	const struct fused_epi *e = &cv->epi;
	int64_t blk = cv->n * sm->ohw, c = m / (cv->m / cv->c), ohw = sm->ohw;
	int nt = sm->ntaps;
	const float *src[DW_MAX_TAPS];
	const int32_t *msk[DW_MAX_TAPS];
	for (int t = 0; t < nt; t++) {
		src[t] = sm->src + (c * sm->nph + sm->ph[t]) * blk + sm->off[t];
		msk[t] = tap_mask(sm, t);
	}
	const float *wk = cv->wt + m * nt;
	float *y = cv->y + m * blk;
	const float *res = e->res ? e->res + m * blk : NULL;
	v16f scale = {0}, bias = {0}, lo1 = {0}, hi1 = {0}, lo2 = {0}, hi2 = {0};
	scale += epi_scale(e, m);
	bias += epi_bias(e, m);
	lo1 += e->lo1;
	hi1 += e->hi1;
	lo2 += e->lo2;
	hi2 += e->hi2;
	int64_t r = q0 % ohw;
	for (int64_t q = q0; q < q1; q += DWM_NV * VL) {
		int64_t rv[DWM_NV];
		dwm_positions(rv, &r, ohw);
		v16f a[DWM_NV];
#pragma GCC unroll 8
		for (int v = 0; v < DWM_NV; v++)
			a[v] = (v16f){0};
		for (int t = 0; t < nt; t++) {
			const float *sp = src[t] + q;
			const int32_t *mp = msk[t];
			float w = wk[t];
#pragma GCC unroll 8
			for (int v = 0; v < DWM_NV; v++) {
				v16f x;
				v16i mm;
				memcpy(&x, sp + v * VL, sizeof x);
				memcpy(&mm, mp + rv[v], sizeof mm);
				a[v] += w * (v16f)((v16i)x & mm);
			}
		}
		int64_t left = q1 - q;
#pragma GCC unroll 8
		for (int v = 0; v < DWM_NV; v++) {
			if (left <= v * VL)
				break;
			v16f acc = a[v] * scale + bias;
			if (e->act1)
				VCLIP(acc, lo1, hi1);
			if (e->fq1)
				VFQ(acc, e->q1);
			int64_t len = left - v * VL < VL ? left - v * VL : VL;
			DWM_STORE(acc, q + v * VL, q + v * VL, len);
		}
	}
}

/* The activations' bounds as vectors: lo1, hi1, lo2, hi2. */
struct dwm_bounds {
	v16f lo1, hi1, lo2, hi2;
};

static struct dwm_bounds dwm_bounds_of(const struct fused_epi *e)
{
	struct dwm_bounds b = {{0}, {0}, {0}, {0}};
	b.lo1 += e->lo1;
	b.hi1 += e->hi1;
	b.lo2 += e->lo2;
	b.hi2 += e->hi2;
	return b;
}

/* The epilogue of the AVX-512 depthwise kernels: the sums a of cg channels
 * from m0 and DWM_NV vectors of outputs from q (those before q1 exist),
 * stored through the whole epilogue (bd: dwm_bounds_of the epilogue). */
TARGET_AVX512 INLINE void dwm_store_group(const int cg, const struct dwm_job *jb, int64_t m0,
                                          int64_t q, int64_t q1, __m512 a[DWM_CG][DWM_NV],
                                          const struct dwm_bounds *bd)
{
	const struct fused_conv *cv = jb->cv;
	const struct fused_epi *e = &cv->epi;
	int64_t blk = cv->n * jb->sm.ohw, left = q1 - q;
	const v16f lo1 = bd->lo1, hi1 = bd->hi1, lo2 = bd->lo2, hi2 = bd->hi2;
#pragma GCC unroll 8
	for (int g = 0; g < cg; g++) {
		int64_t m = m0 + g;
		float *y = jb->y + m * jb->yld;
		const float *res = e->res ? e->res + m * blk : NULL;
		v16f scale = {0}, bias = {0};
		scale += epi_scale(e, m);
		bias += epi_bias(e, m);
#pragma GCC unroll 8
		for (int v = 0; v < DWM_NV; v++) {
			if (left <= v * VL)
				break;
			v16f acc = (v16f)a[g][v] * scale + bias;
			if (e->act1)
				VCLIP(acc, lo1, hi1);
			if (e->fq1)
				VFQ(acc, e->q1);
			int64_t len = left - v * VL < VL ? left - v * VL : VL;
			DWM_STORE(acc, q + v * VL, q + v * VL - jb->yoff, len);
		}
	}
}

/* dwm_body with lane masks, for cg channels side by side: one (masked) load
 * per tap, vector and channel.  A tap's lane masks depend on the position in
 * the output plane only, so the channels of a group share them: one mask
 * load per tap and vector serves cg channels, and the cg * DWM_NV sums are
 * independent chains that hide the FMA latency.  Channels m0.. m0 + cg - 1. */
TARGET_AVX512 INLINE void dwm_avx512_body(const int cg, const struct dwm_job *jb, int64_t m0,
                                          int64_t q0, int64_t q1)
{
	const struct fused_conv *cv = jb->cv;
	const struct shiftmap *sm = &jb->sm;
	int64_t blk = cv->n * sm->ohw, mult = cv->m / cv->c, ohw = sm->ohw;
	int nt = sm->ntaps;
	int64_t toff[DW_MAX_TAPS]; /* a tap's source offset from its channel's first phase */
	const uint16_t *km[DW_MAX_TAPS];
	for (int t = 0; t < nt; t++) {
		toff[t] = sm->ph[t] * blk + sm->off[t];
		km[t] = tap_kmask(sm, t);
	}
	const float *base[DWM_CG];
	const float *wk[DWM_CG];
#pragma GCC unroll 8
	for (int g = 0; g < cg; g++) {
		base[g] = sm->src + (m0 + g) / mult * sm->nph * blk;
		wk[g] = cv->wt + (m0 + g) * nt;
	}
	const struct dwm_bounds bd = dwm_bounds_of(&cv->epi);
	int64_t r = q0 % ohw;
	for (int64_t q = q0; q < q1; q += DWM_NV * VL) {
		int64_t rv[DWM_NV];
		dwm_positions(rv, &r, ohw);
		__m512 a[DWM_CG][DWM_NV];
#pragma GCC unroll 8
		for (int g = 0; g < cg; g++)
#pragma GCC unroll 8
			for (int v = 0; v < DWM_NV; v++)
				a[g][v] = _mm512_setzero_ps();
		for (int t = 0; t < nt; t++) {
			const uint16_t *kt = km[t];
			__mmask16 k[DWM_NV];
#pragma GCC unroll 8
			for (int v = 0; v < DWM_NV; v++)
				k[v] = kt[rv[v]];
			int64_t o = toff[t] + q;
#pragma GCC unroll 8
			for (int g = 0; g < cg; g++) {
				__m512 w = _mm512_set1_ps(wk[g][t]);
#pragma GCC unroll 8
				for (int v = 0; v < DWM_NV; v++)
					a[g][v] = _mm512_fmadd_ps(
					    w, _mm512_maskz_loadu_ps(k[v], base[g] + o + v * VL),
					    a[g][v]);
			}
		}
		dwm_store_group(cg, jb, m0, q, q1, a, &bd);
	}
}

/* dwm_avx512_body for a 3x3 kernel at stride 1, dilation 1 and "same" pads
 * (dwm3_fits): a kernel row's three taps read the input at three consecutive
 * offsets, so instead of three loads per output vector (unaligned: almost all
 * split across two cache lines) each row loads its centre tap's vectors and
 * one more on either side, and makes the left and right taps' vectors from
 * neighbours with a lane shift (valignd).  The taps' border masks go on the
 * multiply-adds instead of the loads.  Same sums, in the same order (taps
 * t = 0..8), as dwm_avx512_body; only a masked lane differs: there it adds
 * w * 0, here it is left alone (a -0 sum stays -0). */
static bool dwm3_fits(const struct fused_conv *cv, const struct shiftmap *sm)
{
	/* its loads reach a vector further than the shift map's: up to ow + 1 +
	 * (DWM_NV + 1) * VL floats past an end, into the guard */
	return sm->ok && !sm->deint && cv->kh == 3 && cv->kw == 3 && cv->dh == 1 && cv->dw == 1 &&
	       cv->ph == 1 && cv->pw == 1 && cv->ow + 1 + (DWM_NV + 2) * VL <= FUSED_GUARD;
}

TARGET_AVX512 INLINE void dwm3_avx512_body(const int cg, const struct dwm_job *jb, int64_t m0,
                                           int64_t q0, int64_t q1)
{
	const struct fused_conv *cv = jb->cv;
	const struct shiftmap *sm = &jb->sm;
	int64_t blk = cv->n * sm->ohw, mult = cv->m / cv->c, ohw = sm->ohw, ow = cv->ow;
	const uint16_t *km[9];
	for (int t = 0; t < 9; t++)
		km[t] = tap_kmask(sm, t);
	const float *base[DWM_CG];
	const float *wk[DWM_CG];
#pragma GCC unroll 8
	for (int g = 0; g < cg; g++) {
		base[g] = sm->src + (m0 + g) / mult * blk;
		wk[g] = cv->wt + (m0 + g) * 9;
	}
	const struct dwm_bounds bd = dwm_bounds_of(&cv->epi);
	int64_t r = q0 % ohw;
	for (int64_t q = q0; q < q1; q += DWM_NV * VL) {
		int64_t rv[DWM_NV];
		dwm_positions(rv, &r, ohw);
		__m512 a[DWM_CG][DWM_NV];
#pragma GCC unroll 8
		for (int g = 0; g < cg; g++)
#pragma GCC unroll 8
			for (int v = 0; v < DWM_NV; v++)
				a[g][v] = _mm512_setzero_ps();
		for (int kh = 0; kh < 3; kh++) {
			__mmask16 k[3][DWM_NV];
#pragma GCC unroll 3
			for (int kw = 0; kw < 3; kw++)
#pragma GCC unroll 8
				for (int v = 0; v < DWM_NV; v++)
					k[kw][v] = km[kh * 3 + kw][rv[v]];
			int64_t o = (kh - 1) * ow + q; /* the centre tap's offset */
#pragma GCC unroll 8
			for (int g = 0; g < cg; g++) {
				const float *sp = base[g] + o;
				__m512i x[DWM_NV + 2]; /* vectors -1 .. DWM_NV of the row */
#pragma GCC unroll 8
				for (int v = 0; v < DWM_NV + 2; v++)
					x[v] =
					    _mm512_castps_si512(_mm512_loadu_ps(sp + (v - 1) * VL));
				__m512 w0 = _mm512_set1_ps(wk[g][kh * 3]);
				__m512 w1 = _mm512_set1_ps(wk[g][kh * 3 + 1]);
				__m512 w2 = _mm512_set1_ps(wk[g][kh * 3 + 2]);
#pragma GCC unroll 8
				for (int v = 0; v < DWM_NV; v++) {
					__m512 left = _mm512_castsi512_ps(
					    _mm512_alignr_epi32(x[v + 1], x[v], 15));
					__m512 mid = _mm512_castsi512_ps(x[v + 1]);
					__m512 right = _mm512_castsi512_ps(
					    _mm512_alignr_epi32(x[v + 2], x[v + 1], 1));
					a[g][v] = _mm512_mask3_fmadd_ps(w0, left, a[g][v], k[0][v]);
					a[g][v] = _mm512_mask3_fmadd_ps(w1, mid, a[g][v], k[1][v]);
					a[g][v] =
					    _mm512_mask3_fmadd_ps(w2, right, a[g][v], k[2][v]);
				}
			}
		}
		dwm_store_group(cg, jb, m0, q, q1, a, &bd);
	}
}

TARGET_AVX512 static void dwm3_avx512_cg(const struct dwm_job *jb, int64_t m0, int64_t q0,
                                         int64_t q1)
{
	dwm3_avx512_body(DWM_CG, jb, m0, q0, q1);
}

TARGET_AVX512 static void dwm3_avx512(const struct dwm_job *jb, int64_t m, int64_t q0, int64_t q1)
{
	dwm3_avx512_body(1, jb, m, q0, q1);
}

/* A whole group of channels, and a single channel (the rest of a group). */
TARGET_AVX512 static void dwm_avx512_cg(const struct dwm_job *jb, int64_t m0, int64_t q0,
                                        int64_t q1)
{
	if (jb->dwm3)
		dwm3_avx512_cg(jb, m0, q0, q1);
	else
		dwm_avx512_body(DWM_CG, jb, m0, q0, q1);
}

TARGET_AVX512 static void dwm_avx512(const struct dwm_job *jb, int64_t m, int64_t q0, int64_t q1)
{
	if (jb->dwm3)
		dwm3_avx512(jb, m, q0, q1);
	else
		dwm_avx512_body(1, jb, m, q0, q1);
}

TARGET_AVX2 static void dwm_avx2(const struct dwm_job *jb, int64_t m, int64_t q0, int64_t q1)
{
	dwm_body(jb, m, q0, q1);
}

static void dwm_generic(const struct dwm_job *jb, int64_t m, int64_t q0, int64_t q1)
{
	dwm_body(jb, m, q0, q1);
}

/* Work item = (group of DWM_CG output channels, chunk of their flat outputs). */
static void dwm_task(void *arg, int64_t begin, int64_t end, int tid)
{
	const struct dwm_job *jb = arg;
	int64_t blk = jb->cv->n * jb->sm.ohw;
	for (int64_t it = begin; it < end; it++) {
		int64_t g = it / jb->nchunks, q0 = it % jb->nchunks * jb->chunk;
		int64_t q1 = q0 + jb->chunk < blk ? q0 + jb->chunk : blk;
		int64_t m = g * DWM_CG, m1 = m + DWM_CG < jb->cv->m ? m + DWM_CG : jb->cv->m;
		if (jb->isa == ISA_AVX512 && m1 - m == DWM_CG) {
			dwm_avx512_cg(jb, m, q0, q1);
			continue;
		}
		for (; m < m1; m++) {
			switch (jb->isa) {
			case ISA_AVX512:
				dwm_avx512(jb, m, q0, q1);
				break;
			case ISA_AVX2:
				dwm_avx2(jb, m, q0, q1);
				break;
			default:
				dwm_generic(jb, m, q0, q1);
				break;
			}
		}
	}
}

/* --- depthwise 3x3 stride 2 by output rows (AVX-512) --------------------------------------- */

/* The shift map would first split the input into its four stride phases: a
 * copy of the whole input, written where the caches do not keep it, which
 * cost more than the convolution itself (MobileNetV2's two stride-2 layers ran
 * at 7 GFLOP/s against 30 for stride 1).  With h == 2 oh and w == 2 ow <= 2 VL,
 * an input row is two vectors, and its even columns, odd columns and odd
 * columns moved one lane right (input columns 2 ox, 2 ox + 1 and 2 ox - 1, the
 * three taps of output column ox) are three lane permutations of them.  An
 * output row is then three input rows: rows 2 oy - 1 (zero for oy == 0), 2 oy
 * and 2 oy + 1, the last of which is the first of the next output row.
 *
 * (The same by rows for stride 1, several short rows a vector with their
 * neighbours' columns moved in by lane shifts, was measured no faster than
 * the shift map's kernel: its per-row work outweighs the loads it saves.)
 *
 * Every output is summed in the same order whichever rows it was computed
 * with: the depthwise convolution paired with its 1x1 convolution (blocks of
 * columns) gives exactly what it gives alone. */

static bool dws2_fits(const struct fused_conv *cv)
{
	return cv->depthwise && cv->kh == 3 && cv->kw == 3 && cv->sh == 2 && cv->sw == 2 &&
	       cv->dh == 1 && cv->dw == 1 && cv->ph == 1 && cv->pw == 1 && cv->oh >= 1 &&
	       cv->ow >= 1 && cv->ow <= VL && cv->h == 2 * cv->oh && cv->w == 2 * cv->ow;
}

/* Whether this run takes the stride-2 row kernel: the geometry, on AVX-512. */
static bool dws2_use(const struct fused_conv *cv)
{
	return isa_now() == ISA_AVX512 && dws2_fits(cv);
}

/* The epilogue of one output channel, read out of struct fused_epi once: in
 * the row loops, the compiler would reload every field after every store. */
struct dwr_epi {
	v16f scale, bias, lo1, hi1, lo2, hi2;
	bool act1, act2, fq1, fq2;
	struct fused_fq q1, q2;
	const float *res; /* the channel's residual plane, or NULL */
};

static struct dwr_epi dwr_epi_of(const struct fused_conv *cv, int64_t m)
{
	const struct fused_epi *e = &cv->epi;
	struct dwr_epi d = {.act1 = e->act1,
	                    .act2 = e->act2,
	                    .fq1 = e->fq1,
	                    .fq2 = e->fq2,
	                    .q1 = e->q1,
	                    .q2 = e->q2,
	                    .res = e->res ? e->res + m * cv->n * cv->oh * cv->ow : NULL};
	d.scale += epi_scale(e, m);
	d.bias += epi_bias(e, m);
	d.lo1 += e->lo1;
	d.hi1 += e->hi1;
	d.lo2 += e->lo2;
	d.hi2 += e->hi2;
	return d;
}

/* The epilogue (as DWM_STORE) of the outputs acc at flat positions q + l for
 * the lanes l in k, stored at y + q - yoff. */
TARGET_AVX512 INLINE void dwr_store(const struct dwr_epi *d, v16f acc, int64_t q, __mmask16 k,
                                    float *y, int64_t yoff)
{
	acc = acc * d->scale + d->bias;
	if (d->act1)
		VCLIP(acc, d->lo1, d->hi1);
	if (d->fq1)
		VFQ(acc, d->q1);
	if (d->res)
		acc += (v16f)_mm512_maskz_loadu_ps(k, d->res + q);
	if (d->act2)
		VCLIP(acc, d->lo2, d->hi2);
	if (d->fq2)
		VFQ(acc, d->q2);
	_mm512_mask_storeu_ps(y + q - yoff, k, (__m512)acc);
}

/* The sum of the nine taps (up, mid, dn: the kernel rows' inputs, each as its
 * left, centre and right columns): a sum per kernel row, then the three, in
 * this order everywhere. */
TARGET_AVX512 INLINE __m512 dwr_sum(const __m512 *wt, const __m512 *up, const __m512 *mid,
                                    const __m512 *dn)
{
	__m512 s0 = _mm512_mul_ps(wt[0], up[0]);
	__m512 s1 = _mm512_mul_ps(wt[3], mid[0]);
	__m512 s2 = _mm512_mul_ps(wt[6], dn[0]);
	s0 = _mm512_fmadd_ps(wt[1], up[1], s0);
	s1 = _mm512_fmadd_ps(wt[4], mid[1], s1);
	s2 = _mm512_fmadd_ps(wt[7], dn[1], s2);
	s0 = _mm512_fmadd_ps(wt[2], up[2], s0);
	s1 = _mm512_fmadd_ps(wt[5], mid[2], s1);
	s2 = _mm512_fmadd_ps(wt[8], dn[2], s2);
	return _mm512_add_ps(_mm512_add_ps(s0, s1), s2);
}

/* The three taps' columns of input row xr: t[0] = columns 2 ox - 1 (0 for
 * ox == 0), t[1] = 2 ox, t[2] = 2 ox + 1, for lanes ox (those past ow are not
 * stored by the caller).  ka, kb: the lanes of the row's two vectors. */
TARGET_AVX512 INLINE void dws2_cols(const float *xr, __mmask16 ka, __mmask16 kb, __m512 t[3])
{
	const __m512i even =
	    _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
	const __m512i odd =
	    _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
	/* lane 0 is the left padding (masked to 0); lane l is column 2 l - 1 */
	const __m512i left =
	    _mm512_set_epi32(29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1, 0);
	__m512 a = _mm512_maskz_loadu_ps(ka, xr), b = _mm512_maskz_loadu_ps(kb, xr + VL);
	t[0] = _mm512_maskz_permutex2var_ps((__mmask16)0xfffe, a, left, b);
	t[1] = _mm512_permutex2var_ps(a, even, b);
	t[2] = _mm512_permutex2var_ps(a, odd, b);
}

/* Output rows [r0, r1) (numbered over all images: row r is row r % oh of image
 * r / oh) of output channel m, stride 2; only the outputs at flat positions q
 * in [q0, q1) are stored, at y + q - yoff. */
TARGET_AVX512 static void dws2_body(const struct fused_conv *cv, int64_t m, int64_t r0, int64_t r1,
                                    int64_t q0, int64_t q1, float *y, int64_t yoff)
{
	const int64_t oh = cv->oh, ow = cv->ow, w = cv->w;
	const float *xc = cv->x + m / (cv->m / cv->c) * cv->n * cv->h * w;
	const struct dwr_epi d = dwr_epi_of(cv, m);
	__m512 wt[9];
	for (int t = 0; t < 9; t++)
		wt[t] = _mm512_set1_ps(cv->wt[m * 9 + t]);
	__mmask16 ka = (__mmask16)(w >= VL ? 0xffff : (1u << w) - 1);
	__mmask16 kb = (__mmask16)(w > VL ? (1u << (w - VL)) - 1 : 0);
	/* the taps of input row 2 oy - 1, kept from the row before */
	__m512 up[3] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
	int64_t oy = r0 % oh;
	const float *img = xc + r0 / oh * cv->h * w; /* the row's image */
	for (int64_t r = r0; r < r1; r++) {
		const float *xr = img + 2 * oy * w;
		if (oy == 0)
			up[0] = up[1] = up[2] = _mm512_setzero_ps();
		else if (r == r0)
			dws2_cols(xr - w, ka, kb, up);
		__m512 mid[3], dn[3];
		dws2_cols(xr, ka, kb, mid);
		dws2_cols(xr + w, ka, kb, dn);
		v16f acc = (v16f)dwr_sum(wt, up, mid, dn);
		for (int t = 0; t < 3; t++)
			up[t] = dn[t];
		/* the row's outputs in [q0, q1): lanes [lo, hi) */
		int64_t q = r * ow, lo = q0 > q ? q0 - q : 0, hi = q1 - q < ow ? q1 - q : ow;
		if (hi > lo)
			dwr_store(&d, acc, q, (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1)), y,
			          yoff);
		if (++oy == oh) {
			oy = 0;
			img += cv->h * w;
		}
	}
}

struct dws2_job {
	const struct fused_conv *cv;
	int64_t rows_per; /* output rows per work item */
	int64_t nitems;   /* items per channel */
};

/* Work item = (output channel, run of rows_per output rows). */
static void dws2_task(void *arg, int64_t begin, int64_t end, int tid)
{
	const struct dws2_job *j = arg;
	const struct fused_conv *cv = j->cv;
	int64_t rows = cv->n * cv->oh;
	for (int64_t it = begin; it < end; it++) {
		int64_t m = it / j->nitems, r0 = it % j->nitems * j->rows_per;
		int64_t r1 = r0 + j->rows_per < rows ? r0 + j->rows_per : rows;
		/* the item's outputs only: the next item's rows are another's */
		dws2_body(cv, m, r0, r1, r0 * cv->ow, r1 * cv->ow, cv->y + m * rows * cv->ow, 0);
	}
}

static void run_dws2(const struct fused_conv *cv, struct dfq_pool *pool)
{
	int64_t rows = cv->n * cv->oh;
	struct dws2_job j = {.cv = cv, .rows_per = DW_CHUNK / cv->ow};
	if (j.rows_per < 1)
		j.rows_per = 1;
	j.nitems = ceil_div(rows, j.rows_per);
	dfq_pool_run(pool, cv->m * j.nitems, 1, dws2_task, &j);
}

/* --- depthwise through padded phase planes (any geometry) ----------------------------------- */

struct dw_plan {
	const struct fused_conv *cv;
	enum isa isa;
	int64_t hq, wq; /* phase plane rows and columns */
	int64_t plane;  /* floats per phase plane, over-read slack included */
	int64_t nflat;  /* oh * wq rounded up to whole vectors */
	int nph;        /* sh * sw phase planes */
	int ntaps;
	int tap_ph[DW_MAX_TAPS];      /* phase plane of each tap */
	int64_t tap_off[DW_MAX_TAPS]; /* offset of each tap in its phase plane */
	float *scratch;
	int64_t per_thread;
};

static void dw_setup(struct dw_plan *dp, const struct fused_conv *cv)
{
	memset(dp, 0, sizeof *dp);
	dp->cv = cv;
	/* padded extent actually read: the last output's window */
	int64_t hp = (cv->oh - 1) * cv->sh + (cv->kh - 1) * cv->dh + 1;
	int64_t wp = (cv->ow - 1) * cv->sw + (cv->kw - 1) * cv->dw + 1;
	dp->hq = ceil_div(hp, cv->sh);
	dp->wq = ceil_div(wp, cv->sw);
	dp->nph = (int)(cv->sh * cv->sw);
	dp->nflat = round_up(cv->oh * dp->wq, VL);
	dp->ntaps = (int)(cv->kh * cv->kw);
	int64_t maxoff = 0;
	for (int64_t kh = 0; kh < cv->kh; kh++) {
		for (int64_t kw = 0; kw < cv->kw; kw++) {
			int t = (int)(kh * cv->kw + kw);
			int64_t rr = kh * cv->dh, cc = kw * cv->dw;
			dp->tap_ph[t] = (int)(rr % cv->sh * cv->sw + cc % cv->sw);
			dp->tap_off[t] = rr / cv->sh * dp->wq + cc / cv->sw;
			if (dp->tap_off[t] > maxoff)
				maxoff = dp->tap_off[t];
		}
	}
	/* the last flat vector may read up to maxoff + nflat */
	int64_t need = dp->nflat + maxoff;
	dp->plane = round_up(need > dp->hq * dp->wq ? need : dp->hq * dp->wq, VL);
	dp->per_thread = round_up((int64_t)dp->nph * dp->plane + dp->nflat, VL);
}

/* Fill the phase planes of one input plane xp (h x w). */
static void dw_fill(const struct dw_plan *dp, const float *xp, float *ph)
{
	const struct fused_conv *cv = dp->cv;
	for (int64_t a = 0; a < cv->sh; a++) {
		for (int64_t b = 0; b < cv->sw; b++) {
			float *q = ph + (a * cv->sw + b) * dp->plane;
			for (int64_t i = 0; i < dp->hq; i++) {
				int64_t r = a + cv->sh * i - cv->ph;
				const float *xr = r >= 0 && r < cv->h ? xp + r * cv->w : NULL;
				gather_row(q + i * dp->wq, xr, dp->wq, cv->sw, b - cv->pw, cv->w);
			}
			memset(q + dp->hq * dp->wq, 0,
			       (size_t)(dp->plane - dp->hq * dp->wq) * sizeof *q);
		}
	}
}

/* out[0..nflat) = act1(sum of taps * scale + bias) on the flat (oh x wq) grid. */
INLINE void dw_stencil_body(const struct dw_plan *dp, const float *ph, const float *wk, float scale,
                            float bias, float *out)
{
	const struct fused_epi *e = &dp->cv->epi;
	v16f lo = {0}, hi = {0};
	lo += e->lo1;
	hi += e->hi1;
	for (int64_t q = 0; q < dp->nflat; q += VL) {
		v16f acc = {0};
		for (int t = 0; t < dp->ntaps; t++) {
			v16f x;
			memcpy(&x, ph + dp->tap_ph[t] * dp->plane + dp->tap_off[t] + q, sizeof x);
			acc += wk[t] * x;
		}
		acc = acc * scale + bias;
		if (e->act1)
			VCLIP(acc, lo, hi);
		if (e->fq1)
			VFQ(acc, e->q1);
		memcpy(out + q, &acc, sizeof acc);
	}
}

TARGET_AVX512 static void dw_stencil_avx512(const struct dw_plan *dp, const float *ph,
                                            const float *wk, float scale, float bias, float *out)
{
	dw_stencil_body(dp, ph, wk, scale, bias, out);
}

TARGET_AVX2 static void dw_stencil_avx2(const struct dw_plan *dp, const float *ph, const float *wk,
                                        float scale, float bias, float *out)
{
	dw_stencil_body(dp, ph, wk, scale, bias, out);
}

static void dw_stencil_generic(const struct dw_plan *dp, const float *ph, const float *wk,
                               float scale, float bias, float *out)
{
	dw_stencil_body(dp, ph, wk, scale, bias, out);
}

/* Work item = output plane (channel m, image i), item = m * n + i. */
static void dw_task(void *arg, int64_t begin, int64_t end, int tid)
{
	const struct dw_plan *dp = arg;
	const struct fused_conv *cv = dp->cv;
	const struct fused_epi *e = &cv->epi;
	float *ph = dp->scratch + (int64_t)tid * dp->per_thread;
	float *flat = ph + (int64_t)dp->nph * dp->plane;
	int64_t mult = cv->m / cv->c, ohw = cv->oh * cv->ow;
	for (int64_t it = begin; it < end; it++) {
		int64_t m = it / cv->n, i = it % cv->n;
		dw_fill(dp, cv->x + (m / mult * cv->n + i) * cv->h * cv->w, ph);
		const float *wk = cv->wt + m * dp->ntaps;
		float sc = epi_scale(e, m), bias = epi_bias(e, m);
		switch (dp->isa) {
		case ISA_AVX512:
			dw_stencil_avx512(dp, ph, wk, sc, bias, flat);
			break;
		case ISA_AVX2:
			dw_stencil_avx2(dp, ph, wk, sc, bias, flat);
			break;
		default:
			dw_stencil_generic(dp, ph, wk, sc, bias, flat);
			break;
		}
		float *y = cv->y + it * ohw;
		for (int64_t oh = 0; oh < cv->oh; oh++)
			memcpy(y + oh * cv->ow, flat + oh * dp->wq, (size_t)cv->ow * sizeof *y);
		if (e->res || e->act2 || e->fq2) {
			/* the rest of the epilogue: scale, bias, act1 and q1 were applied above */
			struct fused_epi rest = {.act2 = e->act2,
			                         .lo2 = e->lo2,
			                         .hi2 = e->hi2,
			                         .fq2 = e->fq2,
			                         .q2 = e->q2};
			epi_row(dp->isa, y, e->res ? e->res + it * ohw : NULL, ohw, 1.0f, 0.0f,
			        &rest);
		}
	}
}

/* --- entry points ------------------------------------------------------------------------ */

size_t fused_conv_masks_size(const struct fused_conv *cv)
{
	struct shiftmap sm;
	shiftmap_plan(cv, &sm);
	if (!sm.ok || (!cv->depthwise && cv->kh == 1 && cv->kw == 1 && cv->sh == 1 && cv->sw == 1 &&
	               cv->ph == 0 && cv->pw == 0 && cv->oh == cv->h && cv->ow == cv->w))
		return 0; /* no shift map, or a direct 1x1 convolution that needs none */
	return (size_t)shiftmap_mask_floats(&sm) * sizeof(float);
}

void fused_conv_masks_fill(const struct fused_conv *cv, void *buf)
{
	struct shiftmap sm;
	shiftmap_plan(cv, &sm);
	if (sm.ok)
		shiftmap_masks(cv, &sm, buf);
}

/* Multiply-adds of a convolution below which it runs on the calling thread
 * alone: waking the pool's sleeping workers takes tens of microseconds on a
 * busy machine, more than half of such a convolution saves (measured: a
 * 1-image eval of the ResNet sample, whose largest convolution has 1.8M, ran
 * slower on 2 threads than on 1).  Batches of several images per thread do
 * not meet this: their parts run side by side instead (optimize.c). */
#define PAR_MIN_MACS (4 << 20)
static atomic_llong par_min_macs = PAR_MIN_MACS; /* set by tests between runs */

void fused_set_par_min_macs(long long macs)
{
	atomic_store(&par_min_macs, macs);
}

/* Multiply-adds of cv. */
static double conv_macs(const struct fused_conv *cv)
{
	return (double)cv->n * (double)cv->m * (double)(cv->oh * cv->ow) *
	       (double)((cv->depthwise ? 1 : cv->c) * cv->kh * cv->kw);
}

/* Whether a job of macs multiply-adds is too small to share out (see PAR_MIN_MACS). */
static bool too_small(double macs)
{
	return macs < (double)atomic_load(&par_min_macs);
}

int64_t fused_conv_scratch(const struct fused_conv *cv, int nthreads)
{
	if (too_small(conv_macs(cv)))
		nthreads = 1; /* as fused_conv_run will run it */
	if (cv->depthwise) {
		struct shiftmap sm;
		shiftmap_plan(cv, &sm);
		if (sm.ok)
			return (cv->masks ? 0 : shiftmap_mask_floats(&sm)) +
			       shiftmap_src_floats(cv, &sm);
		struct dw_plan dp;
		dw_setup(&dp, cv);
		return dp.per_thread * nthreads;
	}
	struct gemm_plan gp;
	gemm_setup(&gp, cv, nthreads);
	int64_t need = gp.per_thread * nthreads;
	if (gp.sm.ok)
		need += (cv->masks ? 0 : shiftmap_mask_floats(&gp.sm)) +
		        shiftmap_src_floats(cv, &gp.sm);
	return need;
}

static void run_depthwise(const struct fused_conv *cv, struct dfq_pool *pool, float *scratch)
{
	int nthreads = dfq_pool_size(pool);
	if (dws2_use(cv)) {
		run_dws2(cv, pool);
		return;
	}
	struct dwm_job jb = {.cv = cv, .isa = isa_now()};
	shiftmap_plan(cv, &jb.sm);
	jb.dwm3 = dwm3_fits(cv, &jb.sm);
	if (jb.sm.ok) {
		float *s = scratch;
		if (cv->masks) {
			shiftmap_set_masks(&jb.sm, (int32_t *)cv->masks);
		} else {
			shiftmap_masks(cv, &jb.sm, (int32_t *)s);
			shiftmap_set_masks(&jb.sm, (int32_t *)s);
			s += shiftmap_mask_floats(&jb.sm);
		}
		shiftmap_source(cv, &jb.sm, s, pool);
		int64_t blk = cv->n * jb.sm.ohw;
		jb.y = cv->y;
		jb.yld = blk;
		jb.chunk = blk < DW_CHUNK ? round_up(blk, VL) : DW_CHUNK;
		jb.nchunks = ceil_div(blk, jb.chunk);
		/* a few chunks per claim: one channel of one small image is tiny */
		int64_t per = (4 * DW_CHUNK) / (jb.chunk * DWM_CG);
		dfq_pool_run(pool, ceil_div(cv->m, DWM_CG) * jb.nchunks, per > 1 ? per : 1,
		             dwm_task, &jb);
		return;
	}
	struct dw_plan dp;
	dw_setup(&dp, cv);
	dp.isa = jb.isa;
	dp.scratch = scratch;
	(void)nthreads;
	int64_t per = cv->oh * cv->ow, chunk = 4096 / (per > 0 ? per : 1);
	dfq_pool_run(pool, cv->m * cv->n, chunk > 1 ? chunk : 1, dw_task, &dp);
}

void fused_conv_run(const struct fused_conv *cv, struct dfq_pool *pool, float *scratch)
{
	if (too_small(conv_macs(cv)))
		pool = NULL;
	int nthreads = dfq_pool_size(pool);
	if (cv->n * cv->m * cv->oh * cv->ow == 0)
		return;
	if (cv->depthwise) {
		run_depthwise(cv, pool, scratch);
		return;
	}
	struct gemm_plan gp;
	gemm_setup(&gp, cv, nthreads);
	if (gp.k == 0) {
		/* no input channels: the sum is empty, only the epilogue remains */
		memset(cv->y, 0, (size_t)(cv->m * gp.cols) * sizeof *cv->y);
		for (int64_t m = 0; m < cv->m; m++)
			epi_row(gp.isa, cv->y + m * gp.cols,
			        cv->epi.res ? cv->epi.res + m * gp.cols : NULL, gp.cols,
			        epi_scale(&cv->epi, m), epi_bias(&cv->epi, m), &cv->epi);
		return;
	}
	float *s = scratch;
	if (gp.sm.ok) {
		if (cv->masks) {
			shiftmap_set_masks(&gp.sm, (int32_t *)cv->masks);
		} else {
			shiftmap_masks(cv, &gp.sm, (int32_t *)s);
			shiftmap_set_masks(&gp.sm, (int32_t *)s);
			s += shiftmap_mask_floats(&gp.sm);
		}
		shiftmap_source(cv, &gp.sm, s, pool);
		s += shiftmap_src_floats(cv, &gp.sm);
	}
	if (!gp.own)
		dfq_blas_set_threads(1);
	gp.cols_buf = s;
	dfq_pool_run(pool, gp.ncb * gp.nrb, 1, gemm_task, &gp);
}

/* --- global average pool and layout changes ------------------------------------------------ */

struct gap_job {
	const float *x;
	float *y;
	int64_t n, c, hw;
};

static void gap_task(void *arg, int64_t begin, int64_t end, int tid)
{
	const struct gap_job *j = arg;
	for (int64_t it = begin; it < end; it++) {
		int64_t c = it / j->n, i = it % j->n;
		const float *p = j->x + it * j->hw;
		/* four double sums: the oracle sums in double, and independent
		 * chains keep the adds from waiting on each other */
		double s[4] = {0, 0, 0, 0};
		int64_t k = 0;
		for (; k + 4 <= j->hw; k += 4)
			for (int u = 0; u < 4; u++)
				s[u] += p[k + u];
		for (; k < j->hw; k++)
			s[0] += p[k];
		double sum = (s[0] + s[1]) + (s[2] + s[3]);
		j->y[i * j->c + c] = (float)(sum / (double)j->hw);
	}
}

void fused_gap_cnhw(const float *x, int64_t n, int64_t c, int64_t hw, float *y,
                    struct dfq_pool *pool)
{
	struct gap_job j = {.x = x, .y = y, .n = n, .c = c, .hw = hw};
	int64_t chunk = 8192 / (hw > 0 ? hw : 1);
	dfq_pool_run(pool, n * c, chunk > 1 ? chunk : 1, gap_task, &j);
}

struct xpose_job {
	const float *src;
	float *dst;
	int64_t n, c, hw;
	bool to_cnhw;
};

/* Work item = one plane, numbered in the destination's order. */
static void xpose_task(void *arg, int64_t begin, int64_t end, int tid)
{
	const struct xpose_job *j = arg;
	for (int64_t it = begin; it < end; it++) {
		int64_t a = it / (j->to_cnhw ? j->n : j->c), b = it % (j->to_cnhw ? j->n : j->c);
		/* to CNHW: it = c * n + i, source plane i * c + c_; back: it = i * c + c_ */
		int64_t src = j->to_cnhw ? b * j->c + a : b * j->n + a;
		memcpy(j->dst + it * j->hw, j->src + src * j->hw, (size_t)j->hw * sizeof(float));
	}
}

static void xpose(const float *src, float *dst, int64_t n, int64_t c, int64_t hw, bool to_cnhw,
                  struct dfq_pool *pool)
{
	struct xpose_job j = {.src = src, .dst = dst, .n = n, .c = c, .hw = hw, .to_cnhw = to_cnhw};
	int64_t chunk = 16384 / (hw > 0 ? hw : 1);
	dfq_pool_run(pool, n * c, chunk > 1 ? chunk : 1, xpose_task, &j);
}

void fused_nchw_to_cnhw(const float *src, float *dst, int64_t n, int64_t c, int64_t hw,
                        struct dfq_pool *pool)
{
	xpose(src, dst, n, c, hw, true, pool);
}

void fused_cnhw_to_nchw(const float *src, float *dst, int64_t n, int64_t c, int64_t hw,
                        struct dfq_pool *pool)
{
	xpose(src, dst, n, c, hw, false, pool);
}

/* --- a depthwise convolution and the 1x1 convolution that reads it ------------------------ */

/* In a MobileNetV2 block the depthwise output is read once, by the 1x1
 * projection.  Written whole and read back, it is over a megabyte for a part
 * of 16 images at 14x14x144, which does not stay in L2 next to the block's
 * input; computed for a block of columns (output pixels of all images) at a
 * time into a small buffer and multiplied by the projection's weights right
 * away, it does.  The buffer also gives the micro-kernel B rows that are
 * 64-byte aligned and a short stride apart. */

/* Floats of a block buffer (all depthwise channels of its columns) at most,
 * unless that is less than one block of DWPW_UNIT columns. */
#define DWPW_BLOCK_FLOATS (32 * 1024)
/* Columns per block are a multiple of this: whole steps of the depthwise loop
 * (DWM_NV vectors) and whole column tiles of the micro-kernel (GEMM_NV). */
#define DWPW_UNIT (12 * VL)

struct dwpw_job {
	struct dwm_job dj;
	struct gemm_plan gp; /* the 1x1 convolution */
	int64_t cb;          /* columns per block */
	int64_t ldt;         /* row stride of a block buffer */
	int64_t per_thread;  /* floats of a thread's block buffer */
	float *tbuf;
	bool s2; /* the depthwise by output rows (dws2_use) */
};

/* Columns per block. */
static int64_t dwpw_block(const struct fused_conv *dw, const struct fused_conv *pw)
{
	int64_t cols = pw->n * pw->h * pw->w;
	int64_t cb = DWPW_BLOCK_FLOATS / (dw->m > 0 ? dw->m : 1) / DWPW_UNIT * DWPW_UNIT;
	if (cb < DWPW_UNIT)
		cb = DWPW_UNIT;
	return cb < cols ? cb : cols;
}

bool fused_dw_pw_ok(const struct fused_conv *dw, const struct fused_conv *pw, int nthreads)
{
	if (isa_now() != ISA_AVX512 || !dw->depthwise || dw->epi.res || pw->depthwise)
		return false;
	if (pw->kh != 1 || pw->kw != 1 || pw->sh != 1 || pw->sw != 1 || pw->ph != 0 ||
	    pw->pw != 0 || pw->oh != pw->h || pw->ow != pw->w)
		return false;
	if (pw->c != dw->m || pw->n != dw->n || pw->h != dw->oh || pw->w != dw->ow || pw->c == 0 ||
	    pw->m == 0)
		return false;
	int64_t cols = pw->n * pw->h * pw->w;
	if (cols == 0)
		return false;
	struct shiftmap sm;
	shiftmap_plan(dw, &sm);
	if (!sm.ok)
		return false;
	/* a few blocks for every thread, else the separate kernels share the work
	 * out better (one small image has a block or two) */
	return nthreads <= 1 || ceil_div(cols, dwpw_block(dw, pw)) >= 2 * nthreads;
}

int64_t fused_dw_pw_scratch(const struct fused_conv *dw, const struct fused_conv *pw, int nthreads)
{
	struct shiftmap sm;
	shiftmap_plan(dw, &sm);
	int64_t per = round_up(dw->m * round_up(dwpw_block(dw, pw), VL), VL);
	return (dw->masks ? 0 : shiftmap_mask_floats(&sm)) + shiftmap_src_floats(dw, &sm) +
	       (nthreads > 1 ? nthreads : 1) * per;
}

/* Work item = a block of columns: its depthwise outputs into this thread's
 * buffer, then the 1x1 convolution over them. */
static void dwpw_task(void *arg, int64_t begin, int64_t end, int tid)
{
	const struct dwpw_job *j = arg;
	struct dwm_job dj = j->dj;
	float *t = j->tbuf + (int64_t)tid * j->per_thread;
	int64_t cols = j->gp.cols, mdw = dj.cv->m;
	dj.y = t;
	dj.yld = j->ldt;
	for (int64_t b = begin; b < end; b++) {
		int64_t j0 = b * j->cb, j1 = j0 + j->cb < cols ? j0 + j->cb : cols;
		dj.yoff = j0;
		if (j->s2) {
			/* the output rows the block's columns fall in */
			int64_t ow = dj.cv->ow, r0 = j0 / ow, r1 = ceil_div(j1, ow);
			for (int64_t m = 0; m < mdw; m++)
				dws2_body(dj.cv, m, r0, r1, j0, j1, t + m * j->ldt, j0);
		} else {
			int64_t m = 0;
			for (; m + DWM_CG <= mdw; m += DWM_CG)
				dwm_avx512_cg(&dj, m, j0, j1);
			for (; m < mdw; m++)
				dwm_avx512(&dj, m, j0, j1);
		}
		/* the micro-kernel reads the last vector of a short block whole (and
		 * never stores the sums of its lanes past the end): keep those lanes
		 * finite numbers, not whatever the scratch held */
		int64_t len = j1 - j0;
		if (len % VL)
			for (int64_t c = 0; c < mdw; c++)
				memset(t + c * j->ldt + len, 0,
				       (size_t)(round_up(len, VL) - len) * sizeof *t);
		gemm_own_b(&j->gp, t, j->ldt, j0, j1, 0, j->gp.cv->m);
	}
}

void fused_dw_pw_run(const struct fused_conv *dw, const struct fused_conv *pw,
                     struct dfq_pool *pool, float *scratch)
{
	struct dwpw_job j;
	memset(&j, 0, sizeof j);
	if (too_small(conv_macs(dw) + conv_macs(pw))) /* one job for the pair */
		pool = NULL;
	j.dj.cv = dw;
	j.dj.isa = ISA_AVX512;
	j.s2 = dws2_use(dw);
	shiftmap_plan(dw, &j.dj.sm);
	j.dj.dwm3 = dwm3_fits(dw, &j.dj.sm);
	/* the scratch is laid out as fused_dw_pw_scratch sized it; the row kernel
	 * needs neither the masks nor the split input */
	float *s = scratch;
	if (dw->masks) {
		shiftmap_set_masks(&j.dj.sm, (int32_t *)dw->masks);
	} else {
		if (!j.s2) {
			shiftmap_masks(dw, &j.dj.sm, (int32_t *)s);
			shiftmap_set_masks(&j.dj.sm, (int32_t *)s);
		}
		s += shiftmap_mask_floats(&j.dj.sm);
	}
	if (!j.s2)
		shiftmap_source(dw, &j.dj.sm, s, pool);
	s += shiftmap_src_floats(dw, &j.dj.sm);
	gemm_setup(&j.gp, pw, 1);
	j.cb = dwpw_block(dw, pw);
	j.ldt = round_up(j.cb, VL);
	j.per_thread = round_up(dw->m * j.ldt, VL);
	j.tbuf = s;
	dfq_pool_run(pool, ceil_div(j.gp.cols, j.cb), 1, dwpw_task, &j);
}
