/* unary.c - float32 activations: Relu, LeakyRelu, Sigmoid, HardSigmoid, HardSwish; and
 * Sqrt and Erf (LayerNorm and exact GELU as PyTorch exports them). */
#include <math.h>

#include "ops_internal.h"

dfq_status op_unary_parse(OP_PARSE_ARGS)
{
	dfq_status st = DFQ_OK;

	switch (n->op) {
	case DFQ_OP_LEAKYRELU:
		st = ops_attr_float(n, "alpha", 0.01f, &n->p.alpha, err);
		break;
	case DFQ_OP_HARDSIGMOID:
		st = ops_attr_float(n, "alpha", 0.2f, &n->p.alpha, err);
		if (st == DFQ_OK)
			st = ops_attr_float(n, "beta", 0.5f, &n->p.beta, err);
		break;
	default:
		break;
	}
	return st;
}

dfq_status op_unary_shape(OP_SHAPE_ARGS)
{
	if (in[0]->dtype != DFQ_DTYPE_F32)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
		                     "%s node '%s': only float32 input is supported, not %s",
		                     n->op_type, n->name, dfq_dtype_name(in[0]->dtype));
	out[0] = *in[0];
	return DFQ_OK;
}

/* The comparisons are written so that NaN propagates as in numpy. */
static float unary_one(const struct dfq_node *n, float x)
{
	switch (n->op) {
	case DFQ_OP_RELU:
		return x < 0.0f ? 0.0f : x;
	case DFQ_OP_LEAKYRELU:
		return x < 0.0f ? n->p.alpha * x : x;
	case DFQ_OP_SIGMOID:
		/* exp() of a large positive argument is +inf and 1/inf is 0: no NaN */
		return (float)(1.0 / (1.0 + exp(-(double)x)));
	case DFQ_OP_HARDSIGMOID:
		return fmaxf(0.0f, fminf(1.0f, n->p.alpha * x + n->p.beta));
	case DFQ_OP_HARDSWISH:
		return x * fmaxf(0.0f, fminf(1.0f, x / 6.0f + 0.5f));
	case DFQ_OP_SQRT:
		return sqrtf(x);
	case DFQ_OP_ERF:
		return erff(x);
	default:
		return x;
	}
}

dfq_status op_unary_forward(OP_FORWARD_ARGS)
{
	const float *x = dfq_tensor_f32(in[0]);
	float *y = dfq_tensor_f32(out[0]);

	switch (n->op) {
	case DFQ_OP_RELU:
	case DFQ_OP_LEAKYRELU:
	case DFQ_OP_SIGMOID:
	case DFQ_OP_HARDSIGMOID:
	case DFQ_OP_HARDSWISH:
	case DFQ_OP_SQRT:
	case DFQ_OP_ERF:
		break;
	default:
		return dfq_error_set(err, DFQ_ERR_INTERNAL, "node '%s': %s is not a unary op",
		                     n->name, dfq_op_name(n->op));
	}
	for (int64_t i = 0; i < in[0]->numel; i++)
		y[i] = unary_one(n, x[i]);
	return DFQ_OK;
}
