/* eltwise.c - Add, Sub, Mul, Div with numpy multidirectional broadcasting (float32, int64);
 * Pow (float32). */
#include <math.h>
#include <string.h>

#include "ops_internal.h"

dfq_status op_binary_parse(OP_PARSE_ARGS)
{
	/* Opsets < 7 broadcast only on request, along 'axis'; we implement the
	 * numpy rules of opset 7+ and would silently compute something else. */
	if (dfq_node_attr(n, "broadcast") || dfq_node_attr(n, "axis"))
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s node '%s': legacy 'broadcast'/'axis' attributes "
				     "(opset %lld) are not supported",
				     n->op_type, n->name, (long long)n->opset);
	return DFQ_OK;
}

dfq_status op_binary_shape(OP_SHAPE_ARGS)
{
	/* Pow: a float32 base; an int64 exponent is read as float */
	if (n->op == DFQ_OP_POW && in[0]->dtype != DFQ_DTYPE_F32)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s node '%s': a base of element type %s is not supported (float32 only)",
				     n->op_type, n->name, dfq_dtype_name(in[0]->dtype));
	if (in[0]->dtype != in[1]->dtype && n->op != DFQ_OP_POW)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
				     "%s node '%s': inputs have different element types %s and %s",
				     n->op_type, n->name, dfq_dtype_name(in[0]->dtype),
				     dfq_dtype_name(in[1]->dtype));
	if (ops_broadcast_shape(in[0], in[1], &out[0], err) != DFQ_OK)
		return dfq_error_prefix(err, "%s node '%s'", n->op_type, n->name);
	out[0].dtype = in[0]->dtype;
	return DFQ_OK;
}

/* Walks the output in row-major order keeping the flat offsets of both inputs. */
struct bcast_iter {
	int ndim;
	int64_t dims[DFQ_MAX_DIMS];
	int64_t sa[DFQ_MAX_DIMS], sb[DFQ_MAX_DIMS];
	int64_t idx[DFQ_MAX_DIMS];
	int64_t oa, ob;
};

static void bcast_iter_init(struct bcast_iter *it, const struct dfq_tensor *a,
			    const struct dfq_tensor *b, const struct dfq_tensor *out)
{
	memset(it, 0, sizeof *it);
	it->ndim = out->ndim;
	for (int i = 0; i < out->ndim; i++)
		it->dims[i] = out->dims[i];
	ops_broadcast_strides(a, out->ndim, it->sa);
	ops_broadcast_strides(b, out->ndim, it->sb);
}

/* Advance to the next output element (odometer over all but nothing skipped). */
static void bcast_iter_next(struct bcast_iter *it)
{
	for (int d = it->ndim - 1; d >= 0; d--) {
		it->idx[d]++;
		it->oa += it->sa[d];
		it->ob += it->sb[d];
		if (it->idx[d] < it->dims[d])
			return;
		it->oa -= it->sa[d] * it->dims[d];
		it->ob -= it->sb[d] * it->dims[d];
		it->idx[d] = 0;
	}
}

static float f32_op(dfq_op op, float x, float y)
{
	switch (op) {
	case DFQ_OP_ADD: return x + y;
	case DFQ_OP_SUB: return x - y;
	case DFQ_OP_MUL: return x * y;
	/* x^2 (LayerNorm's variance) exactly as x * x, like numpy */
	case DFQ_OP_POW: return y == 2.0f ? x * x : powf(x, y);
	default: return x / y;
	}
}

/* int64 arithmetic wraps like the hardware (via uint64) instead of being
 * undefined on overflow; Div truncates toward zero as C and onnxruntime do. */
static dfq_status i64_op(const struct dfq_node *n, int64_t x, int64_t y, int64_t *r,
			 struct dfq_error *err)
{
	switch (n->op) {
	case DFQ_OP_ADD: *r = (int64_t)((uint64_t)x + (uint64_t)y); break;
	case DFQ_OP_SUB: *r = (int64_t)((uint64_t)x - (uint64_t)y); break;
	case DFQ_OP_MUL: *r = (int64_t)((uint64_t)x * (uint64_t)y); break;
	default:
		if (y == 0)
			return dfq_error_set(err, DFQ_ERR_ARG,
					     "%s node '%s': integer division by zero", n->op_type,
					     n->name);
		*r = y == -1 ? (int64_t)(0 - (uint64_t)x) : x / y;
		break;
	}
	return DFQ_OK;
}

dfq_status op_binary_forward(OP_FORWARD_ARGS)
{
	const struct dfq_tensor *a = in[0], *b = in[1];
	struct dfq_tensor *y = out[0];
	struct bcast_iter it;

	bool pow_i64 = n->op == DFQ_OP_POW && a->dtype == DFQ_DTYPE_F32 && b->dtype == DFQ_DTYPE_I64;
	if ((a->dtype != b->dtype && !pow_i64) || y->dtype != a->dtype)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
				     "%s node '%s': inputs have different element types %s and %s",
				     n->op_type, n->name, dfq_dtype_name(a->dtype),
				     dfq_dtype_name(b->dtype));
	bcast_iter_init(&it, a, b, y);
	if (pow_i64) {
		const float *pa = dfq_tensor_f32(a);
		const int64_t *pb = dfq_tensor_i64(b);
		float *py = dfq_tensor_f32(y);
		for (int64_t i = 0; i < y->numel; i++, bcast_iter_next(&it))
			py[i] = f32_op(n->op, pa[it.oa], (float)pb[it.ob]);
		return DFQ_OK;
	}
	if (y->dtype == DFQ_DTYPE_F32) {
		const float *pa = dfq_tensor_f32(a), *pb = dfq_tensor_f32(b);
		float *py = dfq_tensor_f32(y);
		for (int64_t i = 0; i < y->numel; i++, bcast_iter_next(&it))
			py[i] = f32_op(n->op, pa[it.oa], pb[it.ob]);
		return DFQ_OK;
	}
	const int64_t *pa = dfq_tensor_i64(a), *pb = dfq_tensor_i64(b);
	int64_t *py = dfq_tensor_i64(y);
	for (int64_t i = 0; i < y->numel; i++, bcast_iter_next(&it)) {
		dfq_status st = i64_op(n, pa[it.oa], pb[it.ob], &py[i], err);
		if (st != DFQ_OK)
			return st;
	}
	return DFQ_OK;
}
