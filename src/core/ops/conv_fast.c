/* conv_fast.c - the fast Conv kernel: direct depthwise, 1x1 as one SGEMM, im2col + SGEMM.
 *
 * Same contract as op_conv_forward (conv.c), which stays the oracle: anything
 * this file does not accelerate (3-D convolutions, shapes that would not fit
 * the BLAS's int sizes, inconsistent inputs) is handed to it, so error
 * messages come from one place.
 *
 * GEMM convolutions are cut into tasks of (image, group, block of output
 * columns); each task builds its slice of the im2col matrix in a per-thread
 * scratch buffer (1x1 stride-1 convs need none: the input is the matrix) and
 * calls SGEMM on it.  Threading was chosen by measurement on this 2-core
 * machine: when there are enough tasks for every thread, our pool runs them
 * with a single-threaded BLAS (at batch 8 that was 5-45% faster than images
 * in turn with a 2-thread BLAS; at batch 1 our column split won by up to 25%
 * on 56x56 and larger maps and tied at 14x14).  Only when one small feature
 * map cannot be split (e.g. 7x7x512, where the 2-thread BLAS was 30% faster)
 * does the BLAS get the threads (see plan_tasks). */
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "dfq/dfq_blas.h"
#include "ops_internal.h"

/* Task sizes (see plan_tasks); chosen by measurement with scripts/bench. */
#define SLICE_FLOATS (256 * 1024) /* 1 MiB of im2col data per task */
#define MIN_COLS     128
#define SPLIT_TASKS  2

/* A 2-D convolution problem (1-D ones are 2-D with a unit height). */
struct cgeom {
	int64_t n, c, h, w;                     /* input */
	int64_t m, oh, ow;                      /* output channels and size */
	int64_t kh, kw, sh, sw, dh, dw, ph, pw; /* kernel, strides, dilations, begin pads */
	int64_t group, cg, mg;                  /* groups, input and output channels per group */
	const float *x, *wt, *bias;             /* bias may be NULL */
	float *y;
};

/* Output positions o in [0, out) whose input index o * s + off lies in [0, in):
 * returns them as [*lo, *hi) (empty when *lo >= *hi). */
static void valid_range(int64_t off, int64_t s, int64_t in, int64_t out, int64_t *lo, int64_t *hi)
{
	/* o * s + off >= 0  <=>  o >= ceil(-off / s) */
	int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
	/* o * s + off <= in - 1  <=>  o <= floor((in - 1 - off) / s) */
	int64_t h = in - 1 - off < 0 ? 0 : (in - 1 - off) / s + 1;
	*lo = l < out ? l : out;
	*hi = h < out ? h : out;
	if (*hi < *lo)
		*hi = *lo;
}

/* y[i] += a * x[i]: written with 8-wide vectors because -O2 does not
 * vectorise loops of unknown length (memcpy gives unaligned loads). */
typedef float v8f __attribute__((vector_size(32)));

static void axpy(float *restrict y, const float *restrict x, float a, int64_t n)
{
	int64_t i = 0;
	v8f av = {a, a, a, a, a, a, a, a};
	for (; i + 8 <= n; i += 8) {
		v8f xv, yv;
		memcpy(&xv, x + i, sizeof xv);
		memcpy(&yv, y + i, sizeof yv);
		yv += av * xv;
		memcpy(y + i, &yv, sizeof yv);
	}
	for (; i < n; i++)
		y[i] += a * x[i];
}

/* --- depthwise --------------------------------------------------------------- */

/* One output plane (image b, output channel m) of a depthwise conv: input
 * channel m / multiplier, accumulated row by row with vector axpys. */
static void dw_plane(const struct cgeom *g, int64_t b, int64_t m)
{
	int64_t mult = g->m / g->c;
	const float *xc = g->x + (b * g->c + m / mult) * g->h * g->w;
	const float *wk = g->wt + m * g->kh * g->kw;
	float *yc = g->y + (b * g->m + m) * g->oh * g->ow;
	float bias = g->bias ? g->bias[m] : 0.0f;

	for (int64_t oh = 0; oh < g->oh; oh++) {
		float *yr = yc + oh * g->ow;
		for (int64_t ow = 0; ow < g->ow; ow++)
			yr[ow] = bias;
		for (int64_t kh = 0; kh < g->kh; kh++) {
			int64_t ih = oh * g->sh - g->ph + kh * g->dh;
			if (ih < 0 || ih >= g->h)
				continue; /* zero padding */
			const float *xr = xc + ih * g->w;
			for (int64_t kw = 0; kw < g->kw; kw++) {
				float wv = wk[kh * g->kw + kw];
				int64_t off = kw * g->dw - g->pw, lo, hi;
				valid_range(off, g->sw, g->w, g->ow, &lo, &hi);
				if (g->sw == 1) {
					axpy(yr + lo, xr + lo + off, wv, hi - lo);
				} else {
					for (int64_t ow = lo; ow < hi; ow++)
						yr[ow] += wv * xr[ow * g->sw + off];
				}
			}
		}
	}
}

/* Work item = one (image, output channel) plane. */
static void dw_task(void *arg, int64_t begin, int64_t end, int tid)
{
	const struct cgeom *g = arg;
	for (int64_t bm = begin; bm < end; bm++)
		dw_plane(g, bm / g->m, bm % g->m);
}

/* --- im2col + SGEMM ------------------------------------------------------------ */

struct gemm_job {
	const struct cgeom *g;
	bool direct;     /* 1x1, stride 1, no pads: the input is the column matrix */
	int64_t k;       /* rows of the column matrix: cg * kh * kw */
	int64_t ohw;     /* columns per image: oh * ow */
	int64_t block;   /* columns per task */
	int64_t nblocks; /* column blocks per (image, group) */
	float *scratch;  /* k * block floats per thread, owned by the caller */
};

/* Output columns [ow0, ow1) of one output row for one (channel, kh, kw) row of
 * the im2col matrix: xr is the input row (NULL when it lies in the padding),
 * [lo, hi) the columns whose input index ow * sw + off is inside it. */
static void im2col_segment(float *d, const float *xr, int64_t ow0, int64_t ow1, int64_t lo,
                           int64_t hi, int64_t sw, int64_t off)
{
	int64_t a = lo > ow0 ? lo : ow0;
	int64_t z = hi < ow1 ? hi : ow1;
	if (!xr || z < a)
		a = z = ow1; /* the whole segment is padding */
	memset(d, 0, (size_t)(a - ow0) * sizeof *d);
	if (z > a && sw == 1) {
		memcpy(d + (a - ow0), xr + a + off, (size_t)(z - a) * sizeof *d);
	} else {
		for (int64_t ow = a; ow < z; ow++)
			d[ow - ow0] = xr[ow * sw + off];
	}
	memset(d + (z - ow0), 0, (size_t)(ow1 - z) * sizeof *d);
}

/* Columns [j0, j1) of the im2col matrix of one image's group (xg points at its
 * first input channel) into col, row-major k x (j1 - j0). */
static void im2col_block(const struct cgeom *g, const float *xg, int64_t j0, int64_t j1, float *col)
{
	int64_t nb = j1 - j0;
	for (int64_t r = 0; r < g->cg * g->kh * g->kw; r++) {
		int64_t c = r / (g->kh * g->kw), kh = r / g->kw % g->kh, kw = r % g->kw;
		int64_t off = kw * g->dw - g->pw, lo, hi;
		valid_range(off, g->sw, g->w, g->ow, &lo, &hi);
		/* walk the block one output row segment at a time */
		for (int64_t j = j0; j < j1;) {
			int64_t oh = j / g->ow, ow0 = j % g->ow;
			int64_t ow1 = g->ow - ow0 < j1 - j ? g->ow : ow0 + (j1 - j);
			int64_t ih = oh * g->sh - g->ph + kh * g->dh;
			const float *xr = ih >= 0 && ih < g->h ? xg + (c * g->h + ih) * g->w : NULL;
			im2col_segment(col + r * nb + (j - j0), xr, ow0, ow1, lo, hi, g->sw, off);
			j += ow1 - ow0;
		}
	}
}

/* One task: the output channels of group grp of image b, columns [j0, j1). */
static void gemm_one(const struct gemm_job *jb, int64_t b, int64_t grp, int64_t j0, int64_t j1,
                     int tid)
{
	const struct cgeom *g = jb->g;
	const float *xg = g->x + (b * g->c + grp * g->cg) * g->h * g->w;
	const float *wg = g->wt + grp * g->mg * jb->k;
	float *yg = g->y + (b * g->m + grp * g->mg) * jb->ohw;
	const float *cols;
	int64_t ldb;

	if (jb->direct) {
		cols = xg + j0;
		ldb = jb->ohw;
	} else {
		float *s = jb->scratch + (int64_t)tid * jb->k * jb->block;
		im2col_block(g, xg, j0, j1, s);
		cols = s;
		ldb = j1 - j0;
	}
	float beta = 0.0f;
	if (g->bias) {
		/* Bias first, then accumulate with beta = 1: one pass over the output. */
		for (int64_t m = 0; m < g->mg; m++) {
			float bv = g->bias[grp * g->mg + m];
			float *yr = yg + m * jb->ohw;
			for (int64_t j = j0; j < j1; j++)
				yr[j] = bv;
		}
		beta = 1.0f;
	}
	dfq_sgemm(false, false, (int)g->mg, (int)(j1 - j0), (int)jb->k, 1.0f, wg, (int)jb->k, cols,
	          (int)ldb, beta, yg + j0, (int)jb->ohw);
}

/* Work item = (image and group, column block). */
static void gemm_task(void *arg, int64_t begin, int64_t end, int tid)
{
	const struct gemm_job *jb = arg;
	const struct cgeom *g = jb->g;
	for (int64_t t = begin; t < end; t++) {
		int64_t cb = t % jb->nblocks, bg = t / jb->nblocks;
		int64_t j0 = cb * jb->block;
		int64_t j1 = j0 + jb->block < jb->ohw ? j0 + jb->block : jb->ohw;
		gemm_one(jb, bg / g->group, bg % g->group, j0, j1, tid);
	}
}

static int64_t ceil_div(int64_t a, int64_t b)
{
	return (a + b - 1) / b;
}

/* Cut the work into tasks of (image and group, column block).  Blocks hold
 * at most SLICE_FLOATS of im2col data, to stay in cache.  With few images
 * (batch 1) the columns are split further, down to MIN_COLS, so every thread
 * gets SPLIT_TASKS tasks.  Returns false when even that leaves too few tasks
 * (small feature maps with many channels, e.g. 7x7x512): there the BLAS's own
 * threading, which splits the output channels and shares the packed input,
 * measured faster than our column split. */
static bool plan_tasks(struct gemm_job *jb, int64_t images, int nthreads)
{
	int64_t want = (int64_t)SPLIT_TASKS * nthreads;
	int64_t cap = SLICE_FLOATS / (jb->k > 0 ? jb->k : 1);
	if (cap < MIN_COLS)
		cap = MIN_COLS;
	jb->nblocks = ceil_div(jb->ohw, cap);
	if (images * jb->nblocks < want) {
		int64_t nb = ceil_div(want, images), most = jb->ohw / MIN_COLS;
		if (nb > most)
			nb = most;
		if (nb > jb->nblocks)
			jb->nblocks = nb;
	}
	jb->block = ceil_div(jb->ohw, jb->nblocks); /* even blocks */
	jb->nblocks = ceil_div(jb->ohw, jb->block);
	return nthreads == 1 || images * jb->nblocks >= want;
}

/* Everything the BLAS sees must fit its int arguments. */
static bool fits_int(const struct cgeom *g, int64_t k, int64_t ohw)
{
	return k <= INT_MAX && ohw <= INT_MAX && g->mg <= INT_MAX && g->h * g->w <= INT_MAX;
}

static dfq_status conv_gemm(const struct dfq_node *n, const struct cgeom *g, struct dfq_pool *pool,
                            struct dfq_error *err)
{
	dfq_status st = dfq_blas_init(err);
	if (st != DFQ_OK)
		return dfq_error_prefix(err, "Conv node '%s'", n->name);

	struct gemm_job jb = {
	    .g = g,
	    .direct = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 &&
	              g->pw == 0 && g->oh == g->h && g->ow == g->w,
	    .k = g->cg * g->kh * g->kw,
	    .ohw = g->oh * g->ow,
	};
	int nthreads = dfq_pool_size(pool);
	int64_t images = g->n * g->group;
	bool ours = plan_tasks(&jb, images, nthreads);

	if (!jb.direct) {
		size_t per = (size_t)jb.k * (size_t)jb.block;
		jb.scratch = malloc(per * (size_t)nthreads * sizeof(float));
		if (!jb.scratch)
			return dfq_error_set(err, DFQ_ERR_NOMEM,
			                     "Conv node '%s': out of memory for the im2col buffer "
			                     "(%zu bytes)",
			                     n->name, per * (size_t)nthreads * sizeof(float));
	}
	if (ours) {
		/* Our threads are the parallelism: a multi-threaded BLAS inside
		 * them would oversubscribe the cores. */
		dfq_blas_set_threads(1);
		dfq_pool_run(pool, images * jb.nblocks, 1, gemm_task, &jb);
	} else {
		dfq_blas_set_threads(nthreads);
		dfq_pool_run(NULL, images * jb.nblocks, 1, gemm_task, &jb);
	}
	free(jb.scratch);
	return DFQ_OK;
}

/* --- dispatch ------------------------------------------------------------------ */

/* Fill g for a 1-D or 2-D conv whose inputs are consistent; false when the
 * fast path does not apply (the oracle then handles it, errors included). */
static bool conv_geom_fill(const struct dfq_node *n, const struct dfq_tensor *const *in,
                           const struct dfq_tensor *y, struct cgeom *g)
{
	const struct dfq_tensor *x = in[0], *w = in[1], *b = in[2];
	const struct dfq_op_params *p = &n->p;
	int nsp = x->ndim - 2;

	if (nsp < 1 || nsp > 2 || w->ndim != x->ndim || x->dtype != DFQ_DTYPE_F32 ||
	    w->dtype != DFQ_DTYPE_F32 || (b && b->dtype != DFQ_DTYPE_F32))
		return false;
	if (p->nspatial != 0 && p->nspatial != nsp)
		return false;
	int64_t grp = p->group;
	if (grp < 1 || w->dims[0] % grp != 0 || x->dims[1] != w->dims[1] * grp)
		return false;
	if (b && (b->ndim != 1 || b->dims[0] != w->dims[0]))
		return false;
	int64_t kernel[2], pads[4], out_sp[2], in_sp[2];
	for (int i = 0; i < nsp; i++) {
		kernel[i] = w->dims[2 + i];
		in_sp[i] = x->dims[2 + i];
		if (kernel[i] < 1 || (p->nspatial && p->kernel[i] > 0 && p->kernel[i] != kernel[i]))
			return false;
	}
	struct dfq_error scratch_err;
	if (ops_spatial_resolve(p, nsp, in_sp, kernel, false, pads, out_sp, &scratch_err) != DFQ_OK)
		return false;
	if (y->ndim != x->ndim || y->dims[0] != x->dims[0] || y->dims[1] != w->dims[0])
		return false;
	for (int i = 0; i < nsp; i++)
		if (y->dims[2 + i] != out_sp[i])
			return false;

	*g = (struct cgeom){
	    .n = x->dims[0],
	    .c = x->dims[1],
	    .m = w->dims[0],
	    .group = grp,
	    .cg = w->dims[1],
	    .mg = w->dims[0] / grp,
	    .x = dfq_tensor_f32(x),
	    .wt = dfq_tensor_f32(w),
	    .bias = b ? dfq_tensor_f32(b) : NULL,
	    .y = dfq_tensor_f32(y),
	};
	if (nsp == 1) {
		g->h = g->oh = g->kh = g->sh = g->dh = 1;
		g->ph = 0;
		g->w = x->dims[2], g->ow = out_sp[0], g->kw = kernel[0];
		g->sw = p->strides[0], g->dw = p->dilations[0], g->pw = pads[0];
	} else {
		g->h = x->dims[2], g->oh = out_sp[0], g->kh = kernel[0];
		g->sh = p->strides[0], g->dh = p->dilations[0], g->ph = pads[0];
		g->w = x->dims[3], g->ow = out_sp[1], g->kw = kernel[1];
		g->sw = p->strides[1], g->dw = p->dilations[1], g->pw = pads[1];
	}
	return true;
}

dfq_status op_conv_forward_fast(OP_FORWARD_ARGS)
{
	struct cgeom g;
	if (!conv_geom_fill(n, in, out[0], &g))
		return op_conv_forward(n, in, out, ctx, err);
	struct dfq_pool *pool = ctx ? ctx->pool : NULL;
	if (out[0]->numel == 0)
		return DFQ_OK;
	/* Depthwise (with or without a channel multiplier): one input channel per
	 * group, so a GEMM would have K = kh * kw, far too small to pay off. */
	if (g.cg == 1 && g.group == g.c) {
		dfq_pool_run(pool, g.n * g.m, 1, dw_task, &g);
		return DFQ_OK;
	}
	int64_t k = g.cg * g.kh * g.kw;
	if (g.c == 0 || !fits_int(&g, k, g.oh * g.ow))
		return op_conv_forward(n, in, out, ctx, err);
	return conv_gemm(n, &g, pool, err);
}
