/* gemm.c - Gemm (alpha * A' * B' + beta * C) and MatMul (numpy semantics, batched with
 * broadcasting): shape inference and scalar reference kernels accumulating in double. */
#include <inttypes.h>
#include <string.h>

#include "ops_internal.h"

/* --- Gemm --------------------------------------------------------------------------------- */

dfq_status op_gemm_parse(OP_PARSE_ARGS)
{
	struct dfq_op_params *p = &n->p;
	memset(p, 0, sizeof *p);
	int64_t ta, tb;
	dfq_status st;
	/* the opset < 7 'broadcast' attribute is implied by the unidirectional broadcast of C */
	if ((st = ops_attr_int(n, "transA", 0, &ta, err)) ||
	    (st = ops_attr_int(n, "transB", 0, &tb, err)) ||
	    (st = ops_attr_float(n, "alpha", 1.0f, &p->alpha, err)) ||
	    (st = ops_attr_float(n, "beta", 1.0f, &p->beta, err)))
		return st;
	p->trans_a = ta != 0;
	p->trans_b = tb != 0;
	return DFQ_OK;
}

/* C must broadcast unidirectionally to (m, nn): rank <= 2, each dim 1 or equal. */
static dfq_status gemm_check_c(const struct dfq_node *n, const struct dfq_shape *c, int64_t m,
                               int64_t nn, struct dfq_error *err)
{
	if (c->ndim < 0)
		return DFQ_OK;
	if (c->ndim > 2)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
		                     "Gemm node '%s': C must have rank 2 or less, it has %d",
		                     n->name, c->ndim);
	int64_t want[2] = {m, nn};
	for (int i = 0; i < c->ndim; i++) {
		int64_t d = c->dims[i], w = want[2 - c->ndim + i];
		if (d >= 0 && w >= 0 && d != 1 && d != w) {
			struct dfq_shape target = {
			    .dtype = DFQ_DTYPE_F32, .ndim = 2, .dims = {m, nn}};
			char bc[128], bt[128];
			return dfq_error_set(
			    err, DFQ_ERR_SHAPE,
			    "Gemm node '%s': C of shape %s does not broadcast to %s", n->name,
			    dfq_shape_str(c, bc, sizeof bc), dfq_shape_str(&target, bt, sizeof bt));
		}
	}
	return DFQ_OK;
}

/* Output dims of a Gemm and its inner size k (-1 where unknown). */
static dfq_status gemm_dims(const struct dfq_node *n, const struct dfq_shape *a,
                            const struct dfq_shape *b, int64_t *m, int64_t *k, int64_t *nn,
                            struct dfq_error *err)
{
	if ((a->ndim >= 0 && a->ndim != 2) || (b->ndim >= 0 && b->ndim != 2))
		return dfq_error_set(
		    err, DFQ_ERR_SHAPE,
		    "Gemm node '%s': A and B must be 2-D, they have ranks %d and %d", n->name,
		    a->ndim, b->ndim);
	bool ta = n->p.trans_a, tb = n->p.trans_b;
	int64_t ka = -1, kb = -1;
	*m = *nn = -1;
	if (a->ndim == 2) {
		*m = a->dims[ta ? 1 : 0];
		ka = a->dims[ta ? 0 : 1];
	}
	if (b->ndim == 2) {
		kb = b->dims[tb ? 1 : 0];
		*nn = b->dims[tb ? 0 : 1];
	}
	if (ka >= 0 && kb >= 0 && ka != kb)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
		                     "Gemm node '%s': A' has %" PRId64
		                     " columns but B' has %" PRId64 " rows",
		                     n->name, ka, kb);
	*k = ka >= 0 ? ka : kb;
	return DFQ_OK;
}

static dfq_status check_f32(const struct dfq_node *n, const struct dfq_shape *const *in, int count,
                            struct dfq_error *err)
{
	for (int i = 0; i < count; i++)
		if (in[i] && in[i]->dtype != DFQ_DTYPE_F32)
			return dfq_error_set(
			    err, DFQ_ERR_UNSUPPORTED,
			    "%s node '%s': input %d is %s, only float32 is supported", n->op_type,
			    n->name, i, dfq_dtype_name(in[i]->dtype));
	return DFQ_OK;
}

dfq_status op_gemm_shape(OP_SHAPE_ARGS)
{
	int64_t m, k, nn;
	dfq_status st = check_f32(n, in, n->ninputs < 3 ? n->ninputs : 3, err);
	if (st != DFQ_OK || (st = gemm_dims(n, in[0], in[1], &m, &k, &nn, err)) != DFQ_OK)
		return st;
	if (n->ninputs >= 3 && in[2] && (st = gemm_check_c(n, in[2], m, nn, err)) != DFQ_OK)
		return st;
	out->dtype = DFQ_DTYPE_F32;
	out->ndim = 2;
	out->dims[0] = m;
	out->dims[1] = nn;
	return DFQ_OK;
}

dfq_status op_gemm_forward(OP_FORWARD_ARGS)
{
	const struct dfq_tensor *a = in[0], *b = in[1];
	const struct dfq_tensor *c = n->ninputs >= 3 ? in[2] : NULL;
	struct dfq_shape as, bs, cs;
	dfq_tensor_shape(a, &as);
	dfq_tensor_shape(b, &bs);
	int64_t m, k, nn;
	dfq_status st = gemm_dims(n, &as, &bs, &m, &k, &nn, err);
	if (st != DFQ_OK)
		return st;
	if (c) {
		dfq_tensor_shape(c, &cs);
		if ((st = gemm_check_c(n, &cs, m, nn, err)) != DFQ_OK)
			return st;
	}
	struct dfq_tensor *y = out[0];
	if (y->ndim != 2 || y->dims[0] != m || y->dims[1] != nn)
		return dfq_error_set(err, DFQ_ERR_INTERNAL,
		                     "Gemm node '%s': output tensor has the wrong shape", n->name);
	/* element (i, kk) of A' is at i * sa_i + kk * sa_k; likewise for B' and C */
	int64_t sa_i = n->p.trans_a ? 1 : k, sa_k = n->p.trans_a ? m : 1;
	int64_t sb_k = n->p.trans_b ? 1 : nn, sb_j = n->p.trans_b ? k : 1;
	int64_t sc_i = 0, sc_j = 0;
	if (c && c->ndim == 2) {
		sc_i = c->dims[0] == 1 ? 0 : c->dims[1];
		sc_j = c->dims[1] == 1 ? 0 : 1;
	} else if (c && c->ndim == 1) {
		sc_j = c->dims[0] == 1 ? 0 : 1;
	}
	const float *ad = dfq_tensor_f32(a), *bd = dfq_tensor_f32(b);
	const float *cd = c ? dfq_tensor_f32(c) : NULL;
	float *yd = dfq_tensor_f32(y);
	double alpha = n->p.alpha, beta = n->p.beta;
	for (int64_t i = 0; i < m; i++) {
		for (int64_t j = 0; j < nn; j++) {
			double acc = 0.0;
			for (int64_t kk = 0; kk < k; kk++)
				acc += (double)ad[i * sa_i + kk * sa_k] * bd[kk * sb_k + j * sb_j];
			acc *= alpha;
			if (cd)
				acc += beta * cd[i * sc_i + j * sc_j];
			yd[i * nn + j] = (float)acc;
		}
	}
	return DFQ_OK;
}

/* --- MatMul ------------------------------------------------------------------------------- */

dfq_status op_matmul_parse(OP_PARSE_ARGS)
{
	memset(&n->p, 0, sizeof n->p);
	return DFQ_OK;
}

/* MatMul operands after numpy's promotion of 1-D operands: a is [..., m, k], b [..., k, n]. */
struct mm_view {
	int nbatch;                                           /* output batch rank */
	int64_t batch[DFQ_MAX_DIMS];                          /* output batch dims */
	int64_t a_batch[DFQ_MAX_DIMS], b_batch[DFQ_MAX_DIMS]; /* right-aligned, 1 when absent */
	int64_t m, k, nn;
	bool a_vec, b_vec; /* 1-D operands: their promoted axis is dropped again */
};

/* Broadcast of one batch dim pair; -1 (unknown) meets 1 as unknown, a known d > 1 wins. */
static bool bcast_dim(int64_t x, int64_t y, int64_t *out)
{
	if (x == 1)
		*out = y;
	else if (y == 1)
		*out = x;
	else if (x < 0)
		*out = y;
	else if (y < 0 || x == y)
		*out = x;
	else
		return false;
	return true;
}

static dfq_status mm_view_make(const struct dfq_node *n, const struct dfq_shape *a,
                               const struct dfq_shape *b, struct mm_view *v, struct dfq_error *err)
{
	char bufa[128], bufb[128];
	if (a->ndim == 0 || b->ndim == 0)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
		                     "MatMul node '%s': operands must not be "
		                     "scalars",
		                     n->name);
	memset(v, 0, sizeof *v);
	v->a_vec = a->ndim == 1;
	v->b_vec = b->ndim == 1;
	int ab = v->a_vec ? 0 : a->ndim - 2, bb = v->b_vec ? 0 : b->ndim - 2;
	v->m = v->a_vec ? 1 : a->dims[a->ndim - 2];
	int64_t ka = a->dims[a->ndim - 1];
	int64_t kb = v->b_vec ? b->dims[0] : b->dims[b->ndim - 2];
	v->nn = v->b_vec ? 1 : b->dims[b->ndim - 1];
	if (ka >= 0 && kb >= 0 && ka != kb)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
		                     "MatMul node '%s': shapes %s and %s do not agree on the inner "
		                     "dimension",
		                     n->name, dfq_shape_str(a, bufa, sizeof bufa),
		                     dfq_shape_str(b, bufb, sizeof bufb));
	v->k = ka >= 0 ? ka : kb;
	v->nbatch = ab > bb ? ab : bb;
	for (int i = 0; i < v->nbatch; i++) {
		int ia = i - (v->nbatch - ab), ib = i - (v->nbatch - bb);
		v->a_batch[i] = ia >= 0 ? a->dims[ia] : 1;
		v->b_batch[i] = ib >= 0 ? b->dims[ib] : 1;
		if (!bcast_dim(v->a_batch[i], v->b_batch[i], &v->batch[i]))
			return dfq_error_set(
			    err, DFQ_ERR_SHAPE,
			    "MatMul node '%s': batch dimensions of %s and %s do not "
			    "broadcast",
			    n->name, dfq_shape_str(a, bufa, sizeof bufa),
			    dfq_shape_str(b, bufb, sizeof bufb));
	}
	return DFQ_OK;
}

static void mm_out_shape(const struct mm_view *v, struct dfq_shape *out)
{
	out->dtype = DFQ_DTYPE_F32;
	out->ndim = 0;
	for (int i = 0; i < v->nbatch; i++)
		out->dims[out->ndim++] = v->batch[i];
	if (!v->a_vec)
		out->dims[out->ndim++] = v->m;
	if (!v->b_vec)
		out->dims[out->ndim++] = v->nn;
}

dfq_status op_matmul_shape(OP_SHAPE_ARGS)
{
	dfq_status st = check_f32(n, in, 2, err);
	if (st != DFQ_OK)
		return st;
	if (in[0]->ndim < 0 || in[1]->ndim < 0) {
		out->dtype = DFQ_DTYPE_F32;
		out->ndim = -1;
		return DFQ_OK;
	}
	struct mm_view v;
	if ((st = mm_view_make(n, in[0], in[1], &v, err)) != DFQ_OK)
		return st;
	mm_out_shape(&v, out);
	return DFQ_OK;
}

/* Offset of batch element idx (a multi-index over v->batch) in an operand with batch dims
 * dims; broadcast axes (dim 1) do not move. */
static int64_t mm_batch_offset(const struct mm_view *v, const int64_t *dims, const int64_t *idx,
                               int64_t mat)
{
	int64_t off = 0;
	for (int i = 0; i < v->nbatch; i++)
		off = off * dims[i] + (dims[i] == 1 ? 0 : idx[i]);
	return off * mat;
}

dfq_status op_matmul_forward(OP_FORWARD_ARGS)
{
	struct dfq_shape as, bs, ys;
	dfq_tensor_shape(in[0], &as);
	dfq_tensor_shape(in[1], &bs);
	struct mm_view v;
	dfq_status st = mm_view_make(n, &as, &bs, &v, err);
	if (st != DFQ_OK)
		return st;
	mm_out_shape(&v, &ys);
	struct dfq_tensor *y = out[0];
	if (y->ndim != ys.ndim || memcmp(y->dims, ys.dims, (size_t)ys.ndim * sizeof ys.dims[0]))
		return dfq_error_set(err, DFQ_ERR_INTERNAL,
		                     "MatMul node '%s': output tensor has the wrong shape",
		                     n->name);
	const float *ad = dfq_tensor_f32(in[0]), *bd = dfq_tensor_f32(in[1]);
	float *yd = dfq_tensor_f32(y);
	int64_t nbatches = dfq_dims_numel(v.nbatch, v.batch, NULL);
	int64_t idx[DFQ_MAX_DIMS] = {0};
	for (int64_t bi = 0; bi < nbatches; bi++) {
		const float *a = ad + mm_batch_offset(&v, v.a_batch, idx, v.m * v.k);
		const float *b = bd + mm_batch_offset(&v, v.b_batch, idx, v.k * v.nn);
		float *yb = yd + bi * v.m * v.nn;
		for (int64_t i = 0; i < v.m; i++)
			for (int64_t j = 0; j < v.nn; j++) {
				double acc = 0.0;
				for (int64_t kk = 0; kk < v.k; kk++)
					acc += (double)a[i * v.k + kk] * b[kk * v.nn + j];
				yb[i * v.nn + j] = (float)acc;
			}
		/* next batch multi-index, last axis fastest */
		for (int ax = v.nbatch - 1; ax >= 0; ax--) {
			if (++idx[ax] < v.batch[ax])
				break;
			idx[ax] = 0;
		}
	}
	return DFQ_OK;
}
