/* batchnorm.c - BatchNormalization in inference mode: y = (x - mean) / sqrt(var + eps) * scale
 * + B per channel (axis 1).  Training mode and its extra outputs are refused. */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "ops_internal.h"

static dfq_status refuse_training(const struct dfq_node *n, struct dfq_error *err)
{
	return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
	                     "BatchNormalization node '%s': training mode is not supported",
	                     n->name);
}

dfq_status op_batchnorm_parse(OP_PARSE_ARGS)
{
	struct dfq_op_params *p = &n->p;
	memset(p, 0, sizeof *p);
	dfq_status st = ops_attr_float(n, "epsilon", 1e-5f, &p->epsilon, err);
	if (st != DFQ_OK)
		return st;
	if (!(p->epsilon >= 0.0f))
		return dfq_error_set(
		    err, DFQ_ERR_PARSE,
		    "BatchNormalization node '%s': epsilon %g must not be negative", n->name,
		    (double)p->epsilon);
	/* opsets before 9 have 'spatial': 0 means per-activation statistics, which we lack */
	if (n->opset < 9) {
		int64_t spatial;
		if ((st = ops_attr_int(n, "spatial", 1, &spatial, err)) != DFQ_OK)
			return st;
		if (spatial != 1)
			return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
			                     "BatchNormalization node '%s': spatial=%" PRId64
			                     " is not supported (only 1 is)",
			                     n->name, spatial);
	}
	/* is_test (opset < 7) and momentum only matter for training: ignored */
	if (n->opset >= 14) {
		int64_t training;
		if ((st = ops_attr_int(n, "training_mode", 0, &training, err)) != DFQ_OK)
			return st;
		if (training != 0)
			return refuse_training(n, err);
	}
	for (int i = 1; i < n->noutputs; i++)
		if (n->outputs && n->outputs[i] != -1)
			return refuse_training(n, err);
	return DFQ_OK;
}

dfq_status op_batchnorm_shape(OP_SHAPE_ARGS)
{
	static const char *const names[5] = {"X", "scale", "B", "mean", "var"};
	const struct dfq_shape *x = in[0];
	for (int i = 0; i < 5; i++)
		if (in[i] && in[i]->dtype != DFQ_DTYPE_F32)
			return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
			                     "BatchNormalization node '%s': %s is %s, only float32 "
			                     "is supported",
			                     n->name, names[i], dfq_dtype_name(in[i]->dtype));
	if (x->ndim >= 0 && x->ndim < 2)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
		                     "BatchNormalization node '%s': the input must have rank 2 or "
		                     "more, it has %d",
		                     n->name, x->ndim);
	int64_t c = x->ndim >= 2 ? x->dims[1] : -1;
	for (int i = 1; i < 5; i++) {
		const struct dfq_shape *s = in[i];
		if (!s)
			return dfq_error_set(err, DFQ_ERR_SHAPE,
			                     "BatchNormalization node '%s': input %s is missing",
			                     n->name, names[i]);
		if (s->ndim >= 0 && s->ndim != 1)
			return dfq_error_set(err, DFQ_ERR_SHAPE,
			                     "BatchNormalization node '%s': %s must be 1-D, it has "
			                     "rank %d",
			                     n->name, names[i], s->ndim);
		if (s->ndim == 1 && s->dims[0] >= 0 && c >= 0 && s->dims[0] != c)
			return dfq_error_set(err, DFQ_ERR_SHAPE,
			                     "BatchNormalization node '%s': %s has %" PRId64
			                     " values but the input has %" PRId64 " channels",
			                     n->name, names[i], s->dims[0], c);
	}
	*out = *x;
	return DFQ_OK;
}

dfq_status op_batchnorm_forward(OP_FORWARD_ARGS)
{
	const struct dfq_tensor *x = in[0];
	struct dfq_tensor *y = out[0];
	if (x->ndim < 2 || !dfq_tensor_same_shape(x, y))
		return dfq_error_set(err, DFQ_ERR_SHAPE,
		                     "BatchNormalization node '%s': bad input or output shape",
		                     n->name);
	int64_t nb = x->dims[0], c = x->dims[1];
	int64_t plane = dfq_dims_numel(x->ndim - 2, x->dims + 2, NULL);
	for (int i = 1; i < 5; i++)
		if (!in[i] || in[i]->ndim != 1 || in[i]->dims[0] != c)
			return dfq_error_set(err, DFQ_ERR_SHAPE,
			                     "BatchNormalization node '%s': parameter %d does not "
			                     "have %" PRId64 " values",
			                     n->name, i, c);
	const float *scale = dfq_tensor_f32(in[1]), *bias = dfq_tensor_f32(in[2]);
	const float *mean = dfq_tensor_f32(in[3]), *var = dfq_tensor_f32(in[4]);
	const float *xd = dfq_tensor_f32(x);
	float *yd = dfq_tensor_f32(y);
	double eps = n->p.epsilon;
	for (int64_t ch = 0; ch < c; ch++) {
		/* the folded per-channel affine map, computed once in double */
		double a = (double)scale[ch] / sqrt((double)var[ch] + eps);
		double m = mean[ch], b = bias[ch];
		for (int64_t bi = 0; bi < nb; bi++) {
			int64_t off = (bi * c + ch) * plane;
			for (int64_t i = 0; i < plane; i++)
				yd[off + i] = (float)(((double)xd[off + i] - m) * a + b);
		}
	}
	return DFQ_OK;
}
