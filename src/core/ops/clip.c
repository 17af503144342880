/* clip.c - Clip: min/max attributes (opset < 11) or optional scalar inputs (opset >= 11). */
#include <float.h>
#include <math.h>

#include "ops_internal.h"

dfq_status op_clip_parse(OP_PARSE_ARGS)
{
	if (n->opset < 11) {
		dfq_status st = ops_attr_float(n, "min", -FLT_MAX, &n->p.clip_min, err);
		if (st == DFQ_OK)
			st = ops_attr_float(n, "max", FLT_MAX, &n->p.clip_max, err);
		return st;
	}
	/* the bounds come from inputs 1 and 2 at run time; absent means unbounded */
	n->p.clip_min = -INFINITY;
	n->p.clip_max = INFINITY;
	return DFQ_OK;
}

/* A bound input must hold one element (a scalar; we accept [1] too). */
static dfq_status check_bound(const struct dfq_node *n, const struct dfq_shape *s,
			      dfq_dtype dtype, const char *what, struct dfq_error *err)
{
	if (!s)
		return DFQ_OK;
	if (s->dtype != dtype)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
				     "%s node '%s': %s bound is %s but the input is %s",
				     n->op_type, n->name, what, dfq_dtype_name(s->dtype),
				     dfq_dtype_name(dtype));
	if (s->ndim < 0)
		return DFQ_OK;
	int64_t cnt = dfq_dims_numel(s->ndim, s->dims, NULL);
	if (cnt > 1) {
		char buf[128];
		return dfq_error_set(err, DFQ_ERR_SHAPE,
				     "%s node '%s': %s bound must be a scalar, not %s", n->op_type,
				     n->name, what, dfq_shape_str(s, buf, sizeof buf));
	}
	return DFQ_OK;
}

dfq_status op_clip_shape(OP_SHAPE_ARGS)
{
	int nin = n->ninputs;

	if (in[0]->dtype != DFQ_DTYPE_F32 && in[0]->dtype != DFQ_DTYPE_I64)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED, "%s node '%s': %s input",
				     n->op_type, n->name, dfq_dtype_name(in[0]->dtype));
	dfq_status st = DFQ_OK;
	if (nin > 1)
		st = check_bound(n, in[1], in[0]->dtype, "min", err);
	if (st == DFQ_OK && nin > 2)
		st = check_bound(n, in[2], in[0]->dtype, "max", err);
	if (st != DFQ_OK)
		return st;
	out[0] = *in[0];
	return DFQ_OK;
}

/* true and *v set when input i is present and holds its one element; an
 * empty tensor counts as absent. */
static bool bound_f32(const struct dfq_node *n, const struct dfq_tensor *const *in, int i,
		      float *v)
{
	if (n->ninputs <= i || !in[i] || in[i]->numel < 1)
		return false;
	*v = dfq_tensor_f32(in[i])[0];
	return true;
}

static bool bound_i64(const struct dfq_node *n, const struct dfq_tensor *const *in, int i,
		      int64_t *v)
{
	if (n->ninputs <= i || !in[i] || in[i]->numel < 1)
		return false;
	*v = dfq_tensor_i64(in[i])[0];
	return true;
}

/* y = min(max(x, lo), hi) as numpy.clip: when lo > hi every element becomes
 * hi, and NaN passes through (both comparisons are false). */
static void clip_f32(const float *x, float *y, int64_t cnt, float lo, float hi)
{
	for (int64_t i = 0; i < cnt; i++) {
		float v = x[i];
		if (v < lo)
			v = lo;
		if (v > hi)
			v = hi;
		y[i] = v;
	}
}

static void clip_i64(const int64_t *x, int64_t *y, int64_t cnt, int64_t lo, int64_t hi)
{
	for (int64_t i = 0; i < cnt; i++) {
		int64_t v = x[i];
		if (v < lo)
			v = lo;
		if (v > hi)
			v = hi;
		y[i] = v;
	}
}

dfq_status op_clip_forward(OP_FORWARD_ARGS)
{
	for (int i = 1; i < n->ninputs && i < 3; i++)
		if (in[i] && (in[i]->numel > 1 || in[i]->dtype != in[0]->dtype))
			return dfq_error_set(err, DFQ_ERR_SHAPE,
					     "%s node '%s': bound input %d must be a scalar %s",
					     n->op_type, n->name, i, dfq_dtype_name(in[0]->dtype));
	if (in[0]->dtype == DFQ_DTYPE_F32) {
		float lo = n->p.clip_min, hi = n->p.clip_max;
		bound_f32(n, in, 1, &lo);
		bound_f32(n, in, 2, &hi);
		clip_f32(dfq_tensor_f32(in[0]), dfq_tensor_f32(out[0]), in[0]->numel, lo, hi);
		return DFQ_OK;
	}
	if (in[0]->dtype == DFQ_DTYPE_I64) {
		int64_t lo = INT64_MIN, hi = INT64_MAX;
		bound_i64(n, in, 1, &lo);
		bound_i64(n, in, 2, &hi);
		clip_i64(dfq_tensor_i64(in[0]), dfq_tensor_i64(out[0]), in[0]->numel, lo, hi);
		return DFQ_OK;
	}
	return dfq_error_set(err, DFQ_ERR_UNSUPPORTED, "%s node '%s': %s input", n->op_type,
			     n->name, dfq_dtype_name(in[0]->dtype));
}
