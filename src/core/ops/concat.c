/* concat.c - Concat along one axis (float32 and int64). */
#include <string.h>

#include "ops_internal.h"

dfq_status op_concat_parse(OP_PARSE_ARGS)
{
	/* opsets < 4 default to axis 1; later ones require it */
	if (n->opset < 4)
		return ops_attr_int(n, "axis", 1, &n->p.axis, err);
	if (!dfq_node_attr(n, "axis"))
		return dfq_error_set(err, DFQ_ERR_PARSE,
				     "%s node '%s': the required 'axis' attribute is missing",
				     n->op_type, n->name);
	return ops_attr_int(n, "axis", 0, &n->p.axis, err);
}

dfq_status op_concat_shape(OP_SHAPE_ARGS)
{
	int r = -1;
	int64_t a;

	memset(&out[0], 0, sizeof out[0]);
	out[0].dtype = in[0]->dtype;
	for (int i = 0; i < n->ninputs; i++) {
		if (in[i]->dtype != in[0]->dtype)
			return dfq_error_set(err, DFQ_ERR_SHAPE,
					     "%s node '%s': input %d is %s but input 0 is %s",
					     n->op_type, n->name, i, dfq_dtype_name(in[i]->dtype),
					     dfq_dtype_name(in[0]->dtype));
		if (in[i]->ndim < 0)
			continue;
		if (r >= 0 && in[i]->ndim != r)
			return dfq_error_set(err, DFQ_ERR_SHAPE,
					     "%s node '%s': inputs have ranks %d and %d",
					     n->op_type, n->name, r, in[i]->ndim);
		r = in[i]->ndim;
	}
	out[0].ndim = r;
	if (r < 0)
		return DFQ_OK;
	dfq_status st = ops_norm_axis(n, n->p.axis, r, &a, err);
	if (st != DFQ_OK)
		return st;
	for (int d = 0; d < r; d++)
		out[0].dims[d] = d == a ? 0 : -1;
	for (int i = 0; i < n->ninputs; i++) {
		if (in[i]->ndim < 0) {
			out[0].dims[a] = -1;
			continue;
		}
		for (int d = 0; d < r; d++) {
			int64_t v = in[i]->dims[d], *o = &out[0].dims[d];
			if (d == a) {
				*o = (*o < 0 || v < 0) ? -1 : *o + v;
			} else if (*o < 0) {
				*o = v;
			} else if (v >= 0 && v != *o) {
				return dfq_error_set(err, DFQ_ERR_SHAPE,
						     "%s node '%s': input %d has size %lld on "
						     "axis %d where another has %lld",
						     n->op_type, n->name, i, (long long)v, d,
						     (long long)*o);
			}
		}
	}
	return DFQ_OK;
}

dfq_status op_concat_forward(OP_FORWARD_ARGS)
{
	struct dfq_tensor *y = out[0];
	size_t esz = dfq_dtype_size(y->dtype);
	int64_t a;

	dfq_status st = ops_norm_axis(n, n->p.axis, y->ndim, &a, err);
	if (st != DFQ_OK)
		return st;
	/* each input contributes a block of dims[a] * inner elements per outer index */
	int64_t outer = 1, inner = 1;
	for (int d = 0; d < a; d++)
		outer *= y->dims[d];
	for (int d = (int)a + 1; d < y->ndim; d++)
		inner *= y->dims[d];
	int64_t total = 0;
	for (int i = 0; i < n->ninputs; i++) {
		if (in[i]->dtype != y->dtype || in[i]->ndim != y->ndim)
			return dfq_error_set(err, DFQ_ERR_SHAPE,
					     "%s node '%s': input %d does not match the output",
					     n->op_type, n->name, i);
		total += in[i]->numel;
	}
	if (total != y->numel)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
				     "%s node '%s': inputs hold %lld elements, the output %lld",
				     n->op_type, n->name, (long long)total, (long long)y->numel);
	char *dst = y->data;
	for (int64_t o = 0; o < outer; o++) {
		for (int i = 0; i < n->ninputs; i++) {
			size_t blk = (size_t)(in[i]->dims[a] * inner) * esz;
			if (blk)
				memcpy(dst, (const char *)in[i]->data + (size_t)o * blk, blk);
			dst += blk;
		}
	}
	return DFQ_OK;
}
