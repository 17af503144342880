/* gemm_fast.c - fast Gemm and MatMul: SGEMM through the BLAS, split over our thread pool.
 *
 * Same contracts as op_gemm_forward and op_matmul_forward (gemm.c), the
 * oracles: any input those would reject, or that would not fit the BLAS's int
 * sizes, is handed to them.  As in conv_fast.c the BLAS runs single-threaded
 * and our pool provides the parallelism, by batch element and, when there are
 * too few of those, by blocks of rows or columns of the output. */
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "dfq/dfq_blas.h"
#include "ops_internal.h"

/* Below this many flops a product runs on the calling thread: waking the
 * pool (tens of microseconds) would cost more than it saves. */
#define PAR_MIN_FLOPS 2000000.0
#define SPLIT_TASKS   2  /* tasks per thread when splitting one product */
#define MIN_ROWS      16 /* smallest row block (the SGEMM micro-kernels' height) */
#define MIN_COLS      64 /* smallest column block */

/* nbatch products y[i] = alpha * op(a[i]) * op(b[i]) + beta * y[i], each m x n. */
struct mm_job {
	bool ta, tb;
	int m, n, k;
	float alpha, beta;
	const float *a, *b;
	float *y;
	int lda, ldb;
	int64_t nbatch;
	const int64_t *a_off, *b_off; /* per product, in floats; NULL = all 0 */
	bool split_rows;              /* blocks cut rows (else columns) of each product */
	int64_t block, nblocks;
};

/* One product's rows or columns [lo, hi). */
static void mm_block(const struct mm_job *jb, int64_t bi, int64_t lo, int64_t hi)
{
	const float *a = jb->a + (jb->a_off ? jb->a_off[bi] : 0);
	const float *b = jb->b + (jb->b_off ? jb->b_off[bi] : 0);
	float *y = jb->y + bi * (int64_t)jb->m * jb->n;
	int m = jb->m, n = jb->n;
	if (jb->split_rows) {
		/* rows lo.. of op(A): row lo of A, or column lo of A when transposed */
		a += jb->ta ? lo : lo * (int64_t)jb->lda;
		y += lo * (int64_t)n;
		m = (int)(hi - lo);
	} else {
		/* columns lo.. of op(B): column lo of B, or row lo of B when transposed */
		b += jb->tb ? lo * (int64_t)jb->ldb : lo;
		y += lo;
		n = (int)(hi - lo);
	}
	dfq_sgemm(jb->ta, jb->tb, m, n, jb->k, jb->alpha, a, jb->lda, b, jb->ldb, jb->beta, y,
	          jb->n);
}

static void mm_task(void *arg, int64_t begin, int64_t end, int tid)
{
	const struct mm_job *jb = arg;
	int64_t dim = jb->split_rows ? jb->m : jb->n;
	for (int64_t t = begin; t < end; t++) {
		int64_t bi = t / jb->nblocks, lo = t % jb->nblocks * jb->block;
		mm_block(jb, bi, lo, lo + jb->block < dim ? lo + jb->block : dim);
	}
}

/* Choose the blocking and run the job (dfq_blas_init must have succeeded). */
static void mm_run(struct mm_job *jb, struct dfq_pool *pool)
{
	int nthreads = dfq_pool_size(pool);
	double flops = 2.0 * jb->m * jb->n * jb->k * (double)jb->nbatch;
	int64_t want = (int64_t)SPLIT_TASKS * nthreads;

	jb->split_rows = jb->m > jb->n;
	jb->block = jb->split_rows ? jb->m : jb->n;
	jb->nblocks = 1;
	if (flops < PAR_MIN_FLOPS || nthreads == 1)
		pool = NULL;
	else if (jb->nbatch < want) {
		int64_t dim = jb->split_rows ? jb->m : jb->n;
		int64_t least = jb->split_rows ? MIN_ROWS : MIN_COLS;
		int64_t nb = (want + jb->nbatch - 1) / jb->nbatch;
		if (nb > dim / least)
			nb = dim / least;
		if (nb > 1) {
			jb->block = (dim + nb - 1) / nb;
			jb->nblocks = (dim + jb->block - 1) / jb->block;
		}
	}
	dfq_blas_set_threads(1);
	dfq_pool_run(pool, jb->nbatch * jb->nblocks, 1, mm_task, jb);
}

/* --- Gemm --------------------------------------------------------------------------------- */

/* y = beta * C broadcast to m x n (C has rank 0, 1 or 2 with dims 1 or full). */
static void fill_c(float *y, int64_t m, int64_t n, const struct dfq_tensor *c, float beta)
{
	const float *cd = dfq_tensor_f32(c);
	int64_t si = 0, sj = 0;
	if (c->ndim == 2) {
		si = c->dims[0] == 1 ? 0 : c->dims[1];
		sj = c->dims[1] == 1 ? 0 : 1;
	} else if (c->ndim == 1) {
		sj = c->dims[0] == 1 ? 0 : 1;
	}
	for (int64_t i = 0; i < m; i++)
		for (int64_t j = 0; j < n; j++)
			y[i * n + j] = beta * cd[i * si + j * sj];
}

/* C broadcasts unidirectionally to (m, n). */
static bool c_fits(const struct dfq_tensor *c, int64_t m, int64_t n)
{
	if (c->dtype != DFQ_DTYPE_F32 || c->ndim > 2)
		return false;
	int64_t want[2] = {m, n};
	for (int i = 0; i < c->ndim; i++) {
		int64_t d = c->dims[i], w = want[2 - c->ndim + i];
		if (d != 1 && d != w)
			return false;
	}
	return true;
}

static bool int_sized(int64_t v)
{
	return v >= 0 && v <= INT_MAX;
}

dfq_status op_gemm_forward_fast(OP_FORWARD_ARGS)
{
	const struct dfq_tensor *a = in[0], *b = in[1];
	const struct dfq_tensor *c = n->ninputs >= 3 ? in[2] : NULL;
	struct dfq_tensor *y = out[0];
	bool ta = n->p.trans_a, tb = n->p.trans_b;

	if (a->ndim != 2 || b->ndim != 2 || a->dtype != DFQ_DTYPE_F32 || b->dtype != DFQ_DTYPE_F32)
		return op_gemm_forward(n, in, out, ctx, err);
	int64_t m = a->dims[ta ? 1 : 0], k = a->dims[ta ? 0 : 1];
	int64_t nn = b->dims[tb ? 0 : 1];
	if (b->dims[tb ? 1 : 0] != k || y->ndim != 2 || y->dims[0] != m || y->dims[1] != nn ||
	    (c && !c_fits(c, m, nn)) || !int_sized(m) || !int_sized(nn) || !int_sized(k) ||
	    !int_sized(a->dims[1]) || !int_sized(b->dims[1]))
		return op_gemm_forward(n, in, out, ctx, err);
	if (m == 0 || nn == 0)
		return DFQ_OK;
	dfq_status st = dfq_blas_init(err);
	if (st != DFQ_OK)
		return dfq_error_prefix(err, "Gemm node '%s'", n->name);

	float *yd = dfq_tensor_f32(y);
	if (c)
		fill_c(yd, m, nn, c, n->p.beta);
	struct mm_job jb = {
	    .ta = ta,
	    .tb = tb,
	    .m = (int)m,
	    .n = (int)nn,
	    .k = (int)k,
	    .alpha = n->p.alpha,
	    .beta = c ? 1.0f : 0.0f,
	    .a = dfq_tensor_f32(a),
	    .b = dfq_tensor_f32(b),
	    .y = yd,
	    .lda = (int)a->dims[1],
	    .ldb = (int)b->dims[1],
	    .nbatch = 1,
	};
	mm_run(&jb, ctx ? ctx->pool : NULL);
	return DFQ_OK;
}

/* --- MatMul ------------------------------------------------------------------------------- */

/* Batch offsets (in floats) of each product in an operand with right-aligned
 * batch dims odims (rank nb, 1 = broadcast), for the output batch dims bdims. */
static void batch_offsets(int nb, const int64_t *bdims, const int64_t *odims, int64_t mat,
                          int64_t count, int64_t *off)
{
	int64_t idx[DFQ_MAX_DIMS] = {0};
	for (int64_t i = 0; i < count; i++) {
		int64_t o = 0;
		for (int ax = 0; ax < nb; ax++)
			o = o * odims[ax] + (odims[ax] == 1 ? 0 : idx[ax]);
		off[i] = o * mat;
		for (int ax = nb - 1; ax >= 0; ax--) {
			if (++idx[ax] < bdims[ax])
				break;
			idx[ax] = 0;
		}
	}
}

dfq_status op_matmul_forward_fast(OP_FORWARD_ARGS)
{
	const struct dfq_tensor *a = in[0], *b = in[1];
	struct dfq_tensor *y = out[0];
	/* 1-D operands (numpy's promotion) are left to the oracle: they are
	 * vector products, rare in CNNs and not worth a BLAS call. */
	if (a->ndim < 2 || b->ndim < 2 || a->dtype != DFQ_DTYPE_F32 || b->dtype != DFQ_DTYPE_F32)
		return op_matmul_forward(n, in, out, ctx, err);

	int64_t m = a->dims[a->ndim - 2], k = a->dims[a->ndim - 1], nn = b->dims[b->ndim - 1];
	int na = a->ndim - 2, nbb = b->ndim - 2, nb = na > nbb ? na : nbb;
	int64_t ab[DFQ_MAX_DIMS], bb[DFQ_MAX_DIMS], yb[DFQ_MAX_DIMS];
	bool ok = b->dims[b->ndim - 2] == k && y->ndim == nb + 2 && y->dims[nb] == m &&
	          y->dims[nb + 1] == nn && int_sized(m) && int_sized(k) && int_sized(nn);
	for (int i = 0; ok && i < nb; i++) {
		ab[i] = i - (nb - na) >= 0 ? a->dims[i - (nb - na)] : 1;
		bb[i] = i - (nb - nbb) >= 0 ? b->dims[i - (nb - nbb)] : 1;
		yb[i] = ab[i] == 1 ? bb[i] : ab[i];
		ok = (ab[i] == 1 || bb[i] == 1 || ab[i] == bb[i]) && y->dims[i] == yb[i];
	}
	if (!ok)
		return op_matmul_forward(n, in, out, ctx, err);
	int64_t nbatch = dfq_dims_numel(nb, yb, NULL);
	if (y->numel == 0)
		return DFQ_OK;
	dfq_status st = dfq_blas_init(err);
	if (st != DFQ_OK)
		return dfq_error_prefix(err, "MatMul node '%s'", n->name);

	int64_t *offs = malloc(2 * (size_t)nbatch * sizeof *offs);
	if (!offs)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "MatMul node '%s': out of memory",
		                     n->name);
	batch_offsets(nb, yb, ab, m * k, nbatch, offs);
	batch_offsets(nb, yb, bb, k * nn, nbatch, offs + nbatch);
	struct mm_job jb = {
	    .m = (int)m,
	    .n = (int)nn,
	    .k = (int)k,
	    .alpha = 1.0f,
	    .beta = 0.0f,
	    .a = dfq_tensor_f32(a),
	    .b = dfq_tensor_f32(b),
	    .y = dfq_tensor_f32(y),
	    .lda = (int)k,
	    .ldb = (int)nn,
	    .nbatch = nbatch,
	    .a_off = offs,
	    .b_off = offs + nbatch,
	};
	mm_run(&jb, ctx ? ctx->pool : NULL);
	free(offs);
	return DFQ_OK;
}
