/* reduce.c - ReduceMean over an axes attribute (opset < 18) or axes input (opset 18). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops_internal.h"

dfq_status op_reducemean_parse(OP_PARSE_ARGS)
{
	int64_t keep = 1, noop = 0;
	int cnt = -1;

	dfq_status st = ops_attr_int(n, "keepdims", 1, &keep, err);
	if (st == DFQ_OK && n->opset >= 18)
		st = ops_attr_int(n, "noop_with_empty_axes", 0, &noop, err);
	if (st == DFQ_OK && n->opset < 18)
		st = ops_attr_ints(n, "axes", n->p.axes, DFQ_MAX_DIMS, &cnt, err);
	if (st != DFQ_OK)
		return st;
	n->p.keepdims = keep != 0;
	n->p.noop_with_empty_axes = noop != 0;
	n->p.has_axes = cnt >= 0;
	n->p.naxes = cnt < 0 ? 0 : cnt;
	return DFQ_OK;
}

/* reduced[d] for each axis of rank r; *known is false when the axes input's
 * value is not known yet.  No (or empty) axes means all axes, or none with
 * noop_with_empty_axes. */
static dfq_status reduce_axes(const struct dfq_node *n, int r, const struct dfq_shape *const *in,
			      const struct dfq_tensor *const *in_data, bool *reduced, bool *known,
			      struct dfq_error *err)
{
	int64_t axes[DFQ_MAX_DIMS];
	int naxes = 0;

	*known = true;
	if (n->p.has_axes) {
		naxes = n->p.naxes;
		memcpy(axes, n->p.axes, sizeof(int64_t) * (size_t)naxes);
	} else if (n->opset >= 18 && n->ninputs > 1 && in[1]) {
		const struct dfq_tensor *t = in_data[1];
		if (!t) {
			*known = false;
			return DFQ_OK;
		}
		if (t->dtype != DFQ_DTYPE_I64 || t->ndim > 1 || t->numel > DFQ_MAX_DIMS)
			return dfq_error_set(err, DFQ_ERR_SHAPE,
					     "%s node '%s': axes must be 1-D int64 with at most %d "
					     "values",
					     n->op_type, n->name, DFQ_MAX_DIMS);
		naxes = (int)t->numel;
		memcpy(axes, t->data, sizeof(int64_t) * (size_t)naxes);
	}
	for (int d = 0; d < r; d++)
		reduced[d] = naxes == 0 && !n->p.noop_with_empty_axes;
	for (int i = 0; i < naxes; i++) {
		int64_t a;
		dfq_status st = ops_norm_axis(n, axes[i], r, &a, err);
		if (st != DFQ_OK)
			return st;
		reduced[a] = true; /* a repeated axis is harmless here */
	}
	return DFQ_OK;
}

dfq_status op_reducemean_shape(OP_SHAPE_ARGS)
{
	int r = in[0]->ndim;
	bool reduced[DFQ_MAX_DIMS], known;

	if (in[0]->dtype != DFQ_DTYPE_F32)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s node '%s': only float32 input is supported, not %s",
				     n->op_type, n->name, dfq_dtype_name(in[0]->dtype));
	out[0] = *in[0];
	if (r < 0)
		return DFQ_OK;
	dfq_status st = reduce_axes(n, r, in, in_data, reduced, &known, err);
	if (st != DFQ_OK)
		return st;
	if (!known) {
		/* with keepdims the rank survives; without it we cannot tell */
		out[0].ndim = n->p.keepdims ? r : -1;
		for (int d = 0; d < r; d++)
			out[0].dims[d] = -1;
		return DFQ_OK;
	}
	out[0].ndim = 0;
	for (int d = 0; d < r; d++) {
		if (!reduced[d])
			out[0].dims[out[0].ndim++] = in[0]->dims[d];
		else if (n->p.keepdims)
			out[0].dims[out[0].ndim++] = 1;
	}
	return DFQ_OK;
}

dfq_status op_reducemean_forward(OP_FORWARD_ARGS)
{
	const struct dfq_tensor *x = in[0];
	int r = x->ndim;
	bool reduced[DFQ_MAX_DIMS], known;
	const struct dfq_shape *shp[2] = {NULL};
	struct dfq_shape s[2];
	int64_t ostride[DFQ_MAX_DIMS], idx[DFQ_MAX_DIMS] = {0}, count = 1, onumel = 1;

	for (int i = 0; i < n->ninputs && i < 2; i++) {
		if (in[i]) {
			dfq_tensor_shape(in[i], &s[i]);
			shp[i] = &s[i];
		}
	}
	dfq_status st = reduce_axes(n, r, shp, in, reduced, &known, err);
	if (st != DFQ_OK)
		return st;
	/* an input axis moves the output offset by ostride (0 when reduced) */
	for (int d = r - 1; d >= 0; d--) {
		ostride[d] = reduced[d] ? 0 : onumel;
		if (reduced[d])
			count *= x->dims[d];
		else
			onumel *= x->dims[d];
	}
	if (out[0]->numel != onumel)
		return dfq_error_set(err, DFQ_ERR_SHAPE, "%s node '%s': output has the wrong shape",
				     n->op_type, n->name);
	double *acc = calloc((size_t)(onumel ? onumel : 1), sizeof *acc); /* freed below */
	if (!acc)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "%s node '%s': out of memory",
				     n->op_type, n->name);
	const float *px = dfq_tensor_f32(x);
	int64_t off = 0;
	for (int64_t i = 0; i < x->numel; i++) {
		acc[off] += px[i];
		for (int d = r - 1; d >= 0; d--) {
			off += ostride[d];
			if (++idx[d] < x->dims[d])
				break;
			off -= ostride[d] * x->dims[d];
			idx[d] = 0;
		}
	}
	float *py = dfq_tensor_f32(out[0]);
	for (int64_t o = 0; o < onumel; o++)
		py[o] = count ? (float)(acc[o] / (double)count) : NAN; /* mean of nothing */
	free(acc);
	return DFQ_OK;
}
