/* pad.c - Pad, constant mode: pads/value attributes (opset < 11) or pads,
 * constant_value and axes inputs (opset >= 11, axes from 18).  Negative pads crop. */
#include <math.h>
#include <string.h>

#include "ops_internal.h"

dfq_status op_pad_parse(OP_PARSE_ARGS)
{
	const char *mode;
	int cnt = -1;

	dfq_status st = ops_attr_string(n, "mode", "constant", &mode, err);
	if (st != DFQ_OK)
		return st;
	if (strcmp(mode, "constant") != 0)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s node '%s': mode '%s' is not supported (only constant)",
				     n->op_type, n->name, mode);
	n->p.has_pads = false;
	n->p.npads = 0;
	n->p.pad_value = 0.0f;
	if (n->opset >= 11)
		return DFQ_OK; /* pads and value are inputs */
	if (dfq_node_attr(n, "paddings"))
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s node '%s': the opset 1 'paddings' attribute is not "
				     "supported",
				     n->op_type, n->name);
	st = ops_attr_ints(n, "pads", n->p.pad_list, 2 * DFQ_MAX_DIMS, &cnt, err);
	if (st != DFQ_OK)
		return st;
	if (cnt < 0)
		return dfq_error_set(err, DFQ_ERR_PARSE,
				     "%s node '%s': the required 'pads' attribute is missing",
				     n->op_type, n->name);
	n->p.has_pads = true;
	n->p.npads = cnt;
	return ops_attr_float(n, "value", 0.0f, &n->p.pad_value, err);
}

/* An int64 1-D input into out[0..max). */
static dfq_status read_list(const struct dfq_node *n, const struct dfq_tensor *t, const char *what,
			    int64_t *out, int max, int *count, struct dfq_error *err)
{
	if (t->dtype != DFQ_DTYPE_I64 || t->ndim > 1)
		return dfq_error_set(err, DFQ_ERR_SHAPE, "%s node '%s': %s must be 1-D int64",
				     n->op_type, n->name, what);
	if (t->numel > max)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED, "%s node '%s': %s has %lld values",
				     n->op_type, n->name, what, (long long)t->numel);
	memcpy(out, t->data, sizeof(int64_t) * (size_t)t->numel);
	*count = (int)t->numel;
	return DFQ_OK;
}

/* begin[]/end[] pads for each of the r input axes; *known is false when the
 * pads (or axes) are inputs whose value is not known yet. */
static dfq_status pad_resolve(const struct dfq_node *n, int r, const struct dfq_shape *const *in,
			      const struct dfq_tensor *const *in_data, int64_t *begin,
			      int64_t *end, bool *known, struct dfq_error *err)
{
	int64_t pads[2 * DFQ_MAX_DIMS], axes[DFQ_MAX_DIMS];
	int npads, naxes = r;
	dfq_status st;

	*known = false;
	if (n->p.has_pads) {
		npads = n->p.npads;
		memcpy(pads, n->p.pad_list, sizeof(int64_t) * (size_t)npads);
	} else {
		if (n->ninputs < 2 || !in[1])
			return dfq_error_set(err, DFQ_ERR_ARG, "%s node '%s': pads are missing",
					     n->op_type, n->name);
		if (!in_data[1])
			return DFQ_OK;
		st = read_list(n, in_data[1], "pads", pads, 2 * DFQ_MAX_DIMS, &npads, err);
		if (st != DFQ_OK)
			return st;
	}
	for (int i = 0; i < r; i++)
		axes[i] = i;
	if (n->ninputs > 3 && in[3]) {
		if (!in_data[3])
			return DFQ_OK;
		st = read_list(n, in_data[3], "axes", axes, DFQ_MAX_DIMS, &naxes, err);
		if (st != DFQ_OK)
			return st;
	}
	if (npads != 2 * naxes)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
				     "%s node '%s': %d pads for %d axes (need twice as many)",
				     n->op_type, n->name, npads, naxes);
	for (int i = 0; i < r; i++)
		begin[i] = end[i] = 0;
	bool seen[DFQ_MAX_DIMS] = {false};
	for (int j = 0; j < naxes; j++) {
		int64_t a;
		st = ops_norm_axis(n, axes[j], r, &a, err);
		if (st != DFQ_OK)
			return st;
		if (seen[a])
			return dfq_error_set(err, DFQ_ERR_ARG,
					     "%s node '%s': axis %lld is repeated", n->op_type,
					     n->name, (long long)axes[j]);
		seen[a] = true;
		begin[a] = pads[j];
		end[a] = pads[naxes + j];
	}
	*known = true;
	return DFQ_OK;
}

dfq_status op_pad_shape(OP_SHAPE_ARGS)
{
	int r = in[0]->ndim;
	int64_t begin[DFQ_MAX_DIMS], end[DFQ_MAX_DIMS];
	bool known;

	out[0] = *in[0];
	if (r < 0)
		return DFQ_OK;
	dfq_status st = pad_resolve(n, r, in, in_data, begin, end, &known, err);
	if (st != DFQ_OK)
		return st;
	for (int i = 0; i < r; i++) {
		if (!known || in[0]->dims[i] < 0) {
			out[0].dims[i] = -1;
			continue;
		}
		out[0].dims[i] = in[0]->dims[i] + begin[i] + end[i];
		if (out[0].dims[i] < 0)
			return dfq_error_set(err, DFQ_ERR_SHAPE,
					     "%s node '%s': pads %lld, %lld crop more than axis "
					     "%d's %lld",
					     n->op_type, n->name, (long long)begin[i],
					     (long long)end[i], i, (long long)in[0]->dims[i]);
	}
	return DFQ_OK;
}

/* The fill value as raw bytes of the data's type. */
static dfq_status pad_value(const struct dfq_node *n, const struct dfq_tensor *const *in,
			    dfq_dtype dtype, unsigned char *bytes, struct dfq_error *err)
{
	float f = n->p.pad_value;
	int64_t i = 0;
	const struct dfq_tensor *v = (n->ninputs > 2 && in[2] && in[2]->numel > 0) ? in[2] : NULL;

	if (v && v->dtype != dtype)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
				     "%s node '%s': constant_value is %s but the data is %s",
				     n->op_type, n->name, dfq_dtype_name(v->dtype),
				     dfq_dtype_name(dtype));
	if (dtype == DFQ_DTYPE_F32) {
		if (v)
			f = dfq_tensor_f32(v)[0];
		memcpy(bytes, &f, sizeof f);
		return DFQ_OK;
	}
	if (v) {
		i = dfq_tensor_i64(v)[0];
	} else if (f != truncf(f) || !(fabsf(f) < 0x1p62f)) {
		return dfq_error_set(err, DFQ_ERR_ARG,
				     "%s node '%s': pad value %g does not fit int64 data",
				     n->op_type, n->name, (double)f);
	} else {
		i = (int64_t)f;
	}
	memcpy(bytes, &i, sizeof i);
	return DFQ_OK;
}

dfq_status op_pad_forward(OP_FORWARD_ARGS)
{
	const struct dfq_tensor *x = in[0];
	struct dfq_tensor *y = out[0];
	int r = x->ndim;
	int64_t begin[DFQ_MAX_DIMS], end[DFQ_MAX_DIMS], xs[DFQ_MAX_DIMS], idx[DFQ_MAX_DIMS] = {0};
	const struct dfq_shape *shp[4] = {NULL};
	struct dfq_shape s[4];
	unsigned char val[8];
	size_t esz = dfq_dtype_size(x->dtype);
	bool known;

	for (int i = 0; i < n->ninputs && i < 4; i++) {
		if (in[i]) {
			dfq_tensor_shape(in[i], &s[i]);
			shp[i] = &s[i];
		}
	}
	dfq_status st = pad_resolve(n, r, shp, in, begin, end, &known, err);
	if (st == DFQ_OK)
		st = pad_value(n, in, x->dtype, val, err);
	if (st != DFQ_OK)
		return st;
	if (y->dtype != x->dtype || y->ndim != r)
		return dfq_error_set(err, DFQ_ERR_SHAPE, "%s node '%s': output has the wrong shape",
				     n->op_type, n->name);
	int64_t stride = 1;
	for (int d = r - 1; d >= 0; d--) {
		if (y->dims[d] != x->dims[d] + begin[d] + end[d])
			return dfq_error_set(err, DFQ_ERR_SHAPE,
					     "%s node '%s': output has the wrong shape",
					     n->op_type, n->name);
		xs[d] = stride;
		stride *= x->dims[d];
	}
	const char *src = x->data;
	char *dst = y->data;
	for (int64_t o = 0; o < y->numel; o++) {
		/* output index idx reads input index idx - begin when that is inside */
		int64_t off = 0;
		bool inside = true;
		for (int d = 0; d < r && inside; d++) {
			int64_t c = idx[d] - begin[d];
			inside = c >= 0 && c < x->dims[d];
			off += c * xs[d];
		}
		memcpy(dst + (size_t)o * esz, inside ? src + (size_t)off * esz : (const char *)val,
		       esz);
		for (int d = r - 1; d >= 0; d--) {
			if (++idx[d] < y->dims[d])
				break;
			idx[d] = 0;
		}
	}
	return DFQ_OK;
}
