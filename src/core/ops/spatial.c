/* spatial.c - helpers shared by kernels: attribute readers, axis normalisation and the
 * padding/output-size resolution of Conv and the pools. */
#include <inttypes.h>
#include <string.h>

#include "ops_internal.h"

/* Bound on kernel sizes, strides, dilations, pads and spatial dims: far beyond any real
 * model, and small enough that (k - 1) * d + in + pads can never overflow int64. */
#define SPATIAL_LIMIT INT64_C(0x7fffffff)

static const char *attr_type_name(dfq_attr_type t)
{
	switch (t) {
	case DFQ_ATTR_FLOAT:
		return "FLOAT";
	case DFQ_ATTR_INT:
		return "INT";
	case DFQ_ATTR_STRING:
		return "STRING";
	case DFQ_ATTR_TENSOR:
		return "TENSOR";
	case DFQ_ATTR_FLOATS:
		return "FLOATS";
	case DFQ_ATTR_INTS:
		return "INTS";
	case DFQ_ATTR_STRINGS:
		return "STRINGS";
	}
	return "?";
}

/* The attribute called name, or NULL.  Walks the array itself (rather than calling the
 * graph module) so the kernels can be used on hand-built nodes too. */
static const struct dfq_attr *find_attr(const struct dfq_node *n, const char *name)
{
	if (!n->attrs)
		return NULL;
	for (int i = 0; i < n->nattrs; i++)
		if (n->attrs[i].name && strcmp(n->attrs[i].name, name) == 0)
			return &n->attrs[i];
	return NULL;
}

/* Looks name up and checks its type; *out is NULL when absent. */
static dfq_status get_typed(const struct dfq_node *n, const char *name, dfq_attr_type want,
                            const struct dfq_attr **out, struct dfq_error *err)
{
	const struct dfq_attr *a = find_attr(n, name);
	*out = NULL;
	if (!a)
		return DFQ_OK;
	if (a->type != want)
		return dfq_error_set(err, DFQ_ERR_PARSE,
		                     "%s node '%s': attribute '%s' must be %s, not %s", n->op_type,
		                     n->name, name, attr_type_name(want), attr_type_name(a->type));
	*out = a;
	return DFQ_OK;
}

dfq_status ops_attr_int(const struct dfq_node *n, const char *name, int64_t def, int64_t *out,
                        struct dfq_error *err)
{
	const struct dfq_attr *a;
	dfq_status st = get_typed(n, name, DFQ_ATTR_INT, &a, err);
	if (st != DFQ_OK)
		return st;
	*out = a ? a->i : def;
	return DFQ_OK;
}

dfq_status ops_attr_float(const struct dfq_node *n, const char *name, float def, float *out,
                          struct dfq_error *err)
{
	const struct dfq_attr *a;
	dfq_status st = get_typed(n, name, DFQ_ATTR_FLOAT, &a, err);
	if (st != DFQ_OK)
		return st;
	*out = a ? a->f : def;
	return DFQ_OK;
}

dfq_status ops_attr_ints(const struct dfq_node *n, const char *name, int64_t *out, int max,
                         int *count, struct dfq_error *err)
{
	const struct dfq_attr *a;
	*count = -1;
	dfq_status st = get_typed(n, name, DFQ_ATTR_INTS, &a, err);
	if (st != DFQ_OK || !a)
		return st;
	if (a->n < 0 || (a->n > 0 && !a->ints))
		return dfq_error_set(err, DFQ_ERR_PARSE,
		                     "%s node '%s': attribute '%s' is malformed", n->op_type,
		                     n->name, name);
	if (a->n > max)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
		                     "%s node '%s': attribute '%s' has %d values, at most %d are "
		                     "supported",
		                     n->op_type, n->name, name, a->n, max);
	for (int i = 0; i < a->n; i++)
		out[i] = a->ints[i];
	*count = a->n;
	return DFQ_OK;
}

dfq_status ops_attr_string(const struct dfq_node *n, const char *name, const char *def,
                           const char **out, struct dfq_error *err)
{
	const struct dfq_attr *a;
	dfq_status st = get_typed(n, name, DFQ_ATTR_STRING, &a, err);
	if (st != DFQ_OK)
		return st;
	*out = (a && a->s) ? a->s : def;
	return DFQ_OK;
}

dfq_status ops_norm_axis(const struct dfq_node *n, int64_t axis, int rank, int64_t *out,
                         struct dfq_error *err)
{
	if (rank < 0 || axis < -(int64_t)rank || axis >= (int64_t)rank)
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "%s node '%s': axis %" PRId64 " is out of range for rank %d",
		                     n->op_type, n->name, axis, rank);
	*out = axis < 0 ? axis + rank : axis;
	return DFQ_OK;
}

/* Floor/ceil division for num >= 0, den > 0. */
static int64_t div_floor(int64_t num, int64_t den)
{
	return num / den;
}

static int64_t div_ceil(int64_t num, int64_t den)
{
	return (num + den - 1) / den;
}

/* Explicit pads (auto_pad NOTSET or VALID): out = floor_or_ceil((in + pads - extent) / s) + 1.
 * With ceil_mode, a last window that would start inside the end padding is dropped (ONNX
 * reference and PyTorch agree on this), so every window covers at least one real element. */
static dfq_status resolve_explicit(int axis, int64_t in, int64_t extent, int64_t s, bool ceil_mode,
                                   int64_t pb, int64_t pe, int64_t *out, struct dfq_error *err)
{
	if (in < 0) {
		*out = -1;
		return DFQ_OK;
	}
	int64_t span = in + pb + pe;
	if (span < extent)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
		                     "the kernel extent %" PRId64
		                     " is larger than the padded input "
		                     "%" PRId64 " on spatial axis %d",
		                     extent, span, axis);
	int64_t o = (ceil_mode ? div_ceil(span - extent, s) : div_floor(span - extent, s)) + 1;
	if (ceil_mode && o > 1 && (o - 1) * s >= in + pb)
		o--;
	*out = o;
	return DFQ_OK;
}

/* SAME_UPPER/SAME_LOWER: out = ceil(in / s); the total pad makes the last window fit and its
 * odd unit goes to the end (UPPER) or to the beginning (LOWER). */
static void resolve_same(int64_t in, int64_t extent, int64_t s, bool lower, int64_t *pb,
                         int64_t *pe, int64_t *out)
{
	*pb = *pe = 0;
	if (in < 0) {
		*out = -1;
		return;
	}
	*out = div_ceil(in, s);
	int64_t total = (*out - 1) * s + extent - in;
	if (total < 0)
		total = 0;
	*pb = lower ? total - total / 2 : total / 2;
	*pe = total - *pb;
}

/* Pads are limited to the numbers the rest of the code can add without overflow. */
static dfq_status check_axis_params(int axis, int64_t in, int64_t k, int64_t s, int64_t d,
                                    int64_t pb, int64_t pe, struct dfq_error *err)
{
	if (k < 1 || s < 1 || d < 1)
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "kernel %" PRId64 ", stride %" PRId64 " and dilation %" PRId64
		                     " on spatial axis %d must all be positive",
		                     k, s, d, axis);
	if (pb < 0 || pe < 0)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
		                     "negative pads (%" PRId64 ", %" PRId64
		                     ") on spatial axis %d are not supported",
		                     pb, pe, axis);
	if (k > SPATIAL_LIMIT || s > SPATIAL_LIMIT || d > SPATIAL_LIMIT || pb > SPATIAL_LIMIT ||
	    pe > SPATIAL_LIMIT || in > SPATIAL_LIMIT)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
		                     "kernel, stride, dilation, pad or input size on spatial axis "
		                     "%d is implausibly large",
		                     axis);
	return DFQ_OK;
}

/* Layout note: p->pads holds the ends at index nsp + i (the ONNX layout for nsp spatial axes);
 * when p->nspatial is 0 the pads were absent and are all zero.  pads_out uses the same layout
 * (pads_out[i] = begin, pads_out[nsp + i] = end) and must have room for 2 * nsp values.
 * For SAME_* auto_pad with an unknown input size the pads are unknown too and reported as 0:
 * only the output size (-1) is meaningful then.  Errors carry no node name: callers prefix. */
dfq_status ops_spatial_resolve(const struct dfq_op_params *p, int nsp, const int64_t *in_sp,
                               const int64_t *kernel, bool ceil_mode, int64_t *pads_out,
                               int64_t *out_sp, struct dfq_error *err)
{
	if (nsp < 1 || nsp > DFQ_MAX_SPATIAL)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
		                     "%d spatial dimensions are not supported (1 to %d are)", nsp,
		                     DFQ_MAX_SPATIAL);
	if (p->nspatial != 0 && p->nspatial != nsp)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
		                     "the attributes describe %d spatial dimensions but the input "
		                     "has %d",
		                     p->nspatial, nsp);
	for (int i = 0; i < nsp; i++) {
		int64_t in = in_sp[i], k = kernel[i], s = p->strides[i], d = p->dilations[i];
		int64_t pb = 0, pe = 0;
		if (p->auto_pad == DFQ_AUTO_PAD_NOTSET && p->nspatial != 0) {
			pb = p->pads[i];
			pe = p->pads[nsp + i];
		}
		dfq_status st = check_axis_params(i, in, k, s, d, pb, pe, err);
		if (st != DFQ_OK)
			return st;
		int64_t extent = (k - 1) * d + 1;
		switch (p->auto_pad) {
		case DFQ_AUTO_PAD_NOTSET:
			st = resolve_explicit(i, in, extent, s, ceil_mode, pb, pe, &out_sp[i], err);
			break;
		case DFQ_AUTO_PAD_VALID:
			/* ONNX: ceil((in - extent + 1) / s), the same as floor mode without pads */
			st = resolve_explicit(i, in, extent, s, false, 0, 0, &out_sp[i], err);
			break;
		case DFQ_AUTO_PAD_SAME_UPPER:
		case DFQ_AUTO_PAD_SAME_LOWER:
			resolve_same(in, extent, s, p->auto_pad == DFQ_AUTO_PAD_SAME_LOWER, &pb,
			             &pe, &out_sp[i]);
			break;
		default:
			return dfq_error_set(err, DFQ_ERR_INTERNAL, "unknown auto_pad value %d",
			                     (int)p->auto_pad);
		}
		if (st != DFQ_OK)
			return st;
		pads_out[i] = p->auto_pad == DFQ_AUTO_PAD_VALID ? 0 : pb;
		pads_out[nsp + i] = p->auto_pad == DFQ_AUTO_PAD_VALID ? 0 : pe;
	}
	return DFQ_OK;
}

dfq_status ops_parse_auto_pad(const struct dfq_node *n, dfq_auto_pad *out, struct dfq_error *err)
{
	const char *s;
	dfq_status st = ops_attr_string(n, "auto_pad", "NOTSET", &s, err);
	if (st != DFQ_OK)
		return st;
	if (strcmp(s, "NOTSET") == 0 || s[0] == '\0')
		*out = DFQ_AUTO_PAD_NOTSET;
	else if (strcmp(s, "SAME_UPPER") == 0)
		*out = DFQ_AUTO_PAD_SAME_UPPER;
	else if (strcmp(s, "SAME_LOWER") == 0)
		*out = DFQ_AUTO_PAD_SAME_LOWER;
	else if (strcmp(s, "VALID") == 0)
		*out = DFQ_AUTO_PAD_VALID;
	else
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s node '%s': unknown auto_pad '%s'",
		                     n->op_type, n->name, s);
	return DFQ_OK;
}

dfq_status ops_check_window(const struct dfq_node *n, const struct dfq_op_params *p, int nsp,
                            int64_t min_kernel, struct dfq_error *err)
{
	for (int i = 0; i < nsp; i++)
		if (p->kernel[i] < min_kernel || p->strides[i] < 1 || p->dilations[i] < 1)
			return dfq_error_set(
			    err, DFQ_ERR_PARSE,
			    "%s node '%s': kernel_shape, strides and dilations must "
			    "be positive",
			    n->op_type, n->name);
	for (int i = 0; i < 2 * nsp; i++)
		if (p->pads[i] < 0)
			return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
			                     "%s node '%s': negative pads are not supported",
			                     n->op_type, n->name);
	return DFQ_OK;
}

dfq_status ops_input_ints(const struct dfq_node *n, const struct dfq_tensor *t,
				const char *what, int64_t *out, int max, int *count,
				struct dfq_error *err)
{
	if (t->dtype != DFQ_DTYPE_I64 || t->ndim > 1)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
				     "%s node '%s': %s must be a 1-D int64 tensor, not %d-D %s",
				     n->op_type, n->name, what, t->ndim, dfq_dtype_name(t->dtype));
	if (t->numel > max)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s node '%s': %s has %lld values, at most %d are supported",
				     n->op_type, n->name, what, (long long)t->numel, max);
	const int64_t *v = dfq_tensor_i64(t);
	for (int64_t i = 0; i < t->numel; i++)
		out[i] = v[i];
	*count = (int)t->numel;
	return DFQ_OK;
}
