/* softmax.c - Softmax: coerced to 2-D at axis (opset < 13) or along one axis (opset >= 13). */
#include <math.h>

#include "ops_internal.h"

dfq_status op_softmax_parse(OP_PARSE_ARGS)
{
	n->p.softmax_coerce_2d = n->opset < 13;
	return ops_attr_int(n, "axis", n->opset < 13 ? 1 : -1, &n->p.axis, err);
}

dfq_status op_softmax_shape(OP_SHAPE_ARGS)
{
	int64_t a;

	if (in[0]->dtype != DFQ_DTYPE_F32)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s node '%s': only float32 input is supported, not %s",
				     n->op_type, n->name, dfq_dtype_name(in[0]->dtype));
	if (in[0]->ndim >= 0) {
		dfq_status st = ops_norm_axis(n, n->p.axis, in[0]->ndim, &a, err);
		if (st != DFQ_OK)
			return st;
	}
	out[0] = *in[0];
	return DFQ_OK;
}

/* Softmax of len elements spaced stride apart; the max is subtracted so exp()
 * cannot overflow, and the sum is accumulated in double. */
static void softmax_row(const float *x, float *y, int64_t len, int64_t stride)
{
	float mx = -INFINITY;
	double sum = 0.0;

	for (int64_t i = 0; i < len; i++)
		if (x[i * stride] > mx)
			mx = x[i * stride];
	for (int64_t i = 0; i < len; i++) {
		double e = exp((double)x[i * stride] - (double)mx);
		y[i * stride] = (float)e;
		sum += e;
	}
	for (int64_t i = 0; i < len; i++)
		y[i * stride] = (float)((double)y[i * stride] / sum);
}

dfq_status op_softmax_forward(OP_FORWARD_ARGS)
{
	const struct dfq_tensor *x = in[0];
	int64_t a, outer = 1, len = 1, inner = 1;

	dfq_status st = ops_norm_axis(n, n->p.axis, x->ndim, &a, err);
	if (st != DFQ_OK)
		return st;
	for (int d = 0; d < a; d++)
		outer *= x->dims[d];
	if (n->p.softmax_coerce_2d) {
		/* old semantics: one softmax over all of dims[a..] */
		for (int d = (int)a; d < x->ndim; d++)
			len *= x->dims[d];
	} else {
		len = x->dims[a];
		for (int d = (int)a + 1; d < x->ndim; d++)
			inner *= x->dims[d];
	}
	const float *px = dfq_tensor_f32(x);
	float *py = dfq_tensor_f32(out[0]);
	for (int64_t o = 0; o < outer; o++)
		for (int64_t i = 0; i < inner; i++)
			softmax_row(px + o * len * inner + i, py + o * len * inner + i, len, inner);
	return DFQ_OK;
}
