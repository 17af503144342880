/* shape_ops.c - data-movement and shape operators: Flatten, Reshape, Transpose, Squeeze,
 * Unsqueeze, Identity/Dropout, Constant, Shape, Gather, Cast (any of float32/int64). */
#include <string.h>

#include "ops_internal.h"

/* ---- helpers ------------------------------------------------------------- */

static void shape_unknown_rank(struct dfq_shape *s, dfq_dtype dtype)
{
	memset(s, 0, sizeof *s);
	s->dtype = dtype;
	s->ndim = -1;
}

/* Product of dims[from..to), -1 if any of them is unknown. */
static int64_t dims_prod(const int64_t *dims, int from, int to)
{
	int64_t p = 1;
	for (int i = from; i < to; i++) {
		if (dims[i] < 0)
			return -1;
		p *= dims[i];
	}
	return p;
}

/* The ops here that only relabel dims copy the data unchanged. */
static dfq_status copy_same_data(const struct dfq_node *n, const struct dfq_tensor *x,
				 struct dfq_tensor *y, struct dfq_error *err)
{
	if (x->dtype != y->dtype || x->numel != y->numel)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
				     "%s node '%s': output of %lld %s elements does not match the "
				     "input's %lld %s elements",
				     n->op_type, n->name, (long long)y->numel,
				     dfq_dtype_name(y->dtype), (long long)x->numel,
				     dfq_dtype_name(x->dtype));
	if (x->numel)
		memcpy(y->data, x->data, (size_t)x->numel * dfq_dtype_size(x->dtype));
	return DFQ_OK;
}

/* Normalise axes for rank into mark[] (true = listed); repeated axes are an error. */
static dfq_status mark_axes(const struct dfq_node *n, const int64_t *axes, int naxes, int rank,
			    bool *mark, struct dfq_error *err)
{
	for (int i = 0; i < rank; i++)
		mark[i] = false;
	for (int i = 0; i < naxes; i++) {
		int64_t a;
		dfq_status st = ops_norm_axis(n, axes[i], rank, &a, err);
		if (st != DFQ_OK)
			return st;
		if (mark[a])
			return dfq_error_set(err, DFQ_ERR_ARG,
					     "%s node '%s': axis %lld is repeated", n->op_type,
					     n->name, (long long)axes[i]);
		mark[a] = true;
	}
	return DFQ_OK;
}

/* ---- Flatten --------------------------------------------------------------- */

dfq_status op_flatten_parse(OP_PARSE_ARGS)
{
	return ops_attr_int(n, "axis", 1, &n->p.axis, err);
}

dfq_status op_flatten_shape(OP_SHAPE_ARGS)
{
	int r = in[0]->ndim;
	int64_t a = n->p.axis;

	memset(&out[0], 0, sizeof out[0]);
	out[0].dtype = in[0]->dtype;
	out[0].ndim = 2;
	if (r < 0) {
		out[0].dims[0] = out[0].dims[1] = -1;
		return DFQ_OK;
	}
	/* unlike most axes, Flatten's may equal the rank (everything in the first dim) */
	if (a < -(int64_t)r || a > r)
		return dfq_error_set(err, DFQ_ERR_ARG,
				     "%s node '%s': axis %lld is out of range for rank %d",
				     n->op_type, n->name, (long long)a, r);
	if (a < 0)
		a += r;
	out[0].dims[0] = dims_prod(in[0]->dims, 0, (int)a);
	out[0].dims[1] = dims_prod(in[0]->dims, (int)a, r);
	return DFQ_OK;
}

dfq_status op_flatten_forward(OP_FORWARD_ARGS)
{
	return copy_same_data(n, in[0], out[0], err);
}

/* ---- Reshape --------------------------------------------------------------- */

dfq_status op_reshape_parse(OP_PARSE_ARGS)
{
	if (n->opset < 5 || dfq_node_attr(n, "shape"))
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s node '%s': the 'shape' attribute form (opset < 5) is not "
				     "supported",
				     n->op_type, n->name);
	int64_t az = 0;
	dfq_status st = ops_attr_int(n, "allowzero", 0, &az, err);
	n->p.allowzero = az != 0;
	return st;
}

/* The -1 dim of a Reshape target.  in_known/out_known are the products of the
 * known dims; when the only unknown dims are input dims copied by a 0 in the
 * target (a symbolic batch kept in place) they cancel out and the inferred
 * dim is still known. */
static dfq_status reshape_infer(const struct dfq_node *n, int64_t in_known, int in_unknown,
				int64_t out_known, int out_unknown, int copied_unknown,
				int64_t *dim, struct dfq_error *err)
{
	*dim = -1;
	if (in_known < 0 || in_unknown != out_unknown || out_unknown != copied_unknown)
		return DFQ_OK;
	if (out_known == 0) {
		if (in_unknown)
			return DFQ_OK;
		return dfq_error_set(err, DFQ_ERR_SHAPE,
				     "%s node '%s': cannot infer the -1 dim next to a 0-size dim",
				     n->op_type, n->name);
	}
	if (in_known % out_known) {
		if (in_unknown)
			return DFQ_OK;
		return dfq_error_set(err, DFQ_ERR_SHAPE,
				     "%s node '%s': cannot reshape %lld elements into a multiple "
				     "of %lld",
				     n->op_type, n->name, (long long)in_known,
				     (long long)out_known);
	}
	*dim = in_known / out_known;
	return DFQ_OK;
}

dfq_status op_reshape_shape(OP_SHAPE_ARGS)
{
	const struct dfq_shape *x = in[0];
	int64_t tgt[DFQ_MAX_DIMS];
	int k;

	if (!in_data[1]) {
		/* target unknown until run time: at best its length gives the rank */
		shape_unknown_rank(&out[0], x->dtype);
		if (in[1]->ndim == 1 && in[1]->dims[0] >= 0 && in[1]->dims[0] <= DFQ_MAX_DIMS) {
			out[0].ndim = (int)in[1]->dims[0];
			for (int i = 0; i < out[0].ndim; i++)
				out[0].dims[i] = -1;
		}
		return DFQ_OK;
	}
	dfq_status st = ops_input_ints(n, in_data[1], "the target shape", tgt, DFQ_MAX_DIMS, &k,
				      err);
	if (st != DFQ_OK)
		return st;

	memset(&out[0], 0, sizeof out[0]);
	out[0].dtype = x->dtype;
	out[0].ndim = k;
	int infer = -1, out_unknown = 0, copied_unknown = 0;
	int64_t out_known = 1;
	bool has_zero = false;
	for (int i = 0; i < k; i++) {
		int64_t v = tgt[i], d;
		if (v == 0 && !n->p.allowzero) {
			if (x->ndim >= 0 && i >= x->ndim)
				return dfq_error_set(err, DFQ_ERR_ARG,
						     "%s node '%s': target dim %d is 0 (copy) but "
						     "the input has rank %d",
						     n->op_type, n->name, i, x->ndim);
			d = x->ndim >= 0 ? x->dims[i] : -1;
			if (d < 0)
				copied_unknown++;
		} else if (v == -1) {
			if (infer >= 0)
				return dfq_error_set(err, DFQ_ERR_ARG,
						     "%s node '%s': target shape has more than "
						     "one -1",
						     n->op_type, n->name);
			infer = i;
			continue;
		} else if (v < -1) {
			return dfq_error_set(err, DFQ_ERR_ARG,
					     "%s node '%s': target dim %lld is invalid",
					     n->op_type, n->name, (long long)v);
		} else {
			d = v;
			has_zero |= v == 0;
		}
		out[0].dims[i] = d;
		if (d < 0)
			out_unknown++;
		else
			out_known *= d;
	}
	if (infer >= 0 && has_zero)
		return dfq_error_set(err, DFQ_ERR_ARG,
				     "%s node '%s': allowzero target with both 0 and -1",
				     n->op_type, n->name);

	int in_unknown = 0;
	int64_t in_known = x->ndim < 0 ? -1 : 1;
	for (int i = 0; i < x->ndim; i++) {
		if (x->dims[i] < 0)
			in_unknown++;
		else
			in_known *= x->dims[i];
	}
	if (infer >= 0)
		return reshape_infer(n, in_known, in_unknown, out_known, out_unknown,
				     copied_unknown, &out[0].dims[infer], err);
	if (in_known >= 0 && !in_unknown && !out_unknown && in_known != out_known) {
		char sa[128], sb[128];
		return dfq_error_set(err, DFQ_ERR_SHAPE, "%s node '%s': cannot reshape %s into %s",
				     n->op_type, n->name, dfq_shape_str(x, sa, sizeof sa),
				     dfq_shape_str(&out[0], sb, sizeof sb));
	}
	return DFQ_OK;
}

dfq_status op_reshape_forward(OP_FORWARD_ARGS)
{
	return copy_same_data(n, in[0], out[0], err);
}

/* ---- Transpose ------------------------------------------------------------- */

dfq_status op_transpose_parse(OP_PARSE_ARGS)
{
	int cnt;
	dfq_status st = ops_attr_ints(n, "perm", n->p.axes, DFQ_MAX_DIMS, &cnt, err);
	if (st != DFQ_OK)
		return st;
	n->p.has_axes = cnt >= 0;
	n->p.naxes = cnt < 0 ? 0 : cnt;
	return DFQ_OK;
}

/* perm[] for rank r: the attribute checked to be a permutation, or reversed axes. */
static dfq_status transpose_perm(const struct dfq_node *n, int r, int *perm,
				 struct dfq_error *err)
{
	bool used[DFQ_MAX_DIMS];

	if (!n->p.has_axes) {
		for (int i = 0; i < r; i++)
			perm[i] = r - 1 - i;
		return DFQ_OK;
	}
	if (n->p.naxes != r)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
				     "%s node '%s': perm has %d entries but the input has rank %d",
				     n->op_type, n->name, n->p.naxes, r);
	dfq_status st = mark_axes(n, n->p.axes, r, r, used, err);
	if (st != DFQ_OK)
		return st;
	for (int i = 0; i < r; i++)
		perm[i] = (int)(n->p.axes[i] < 0 ? n->p.axes[i] + r : n->p.axes[i]);
	return DFQ_OK;
}

dfq_status op_transpose_shape(OP_SHAPE_ARGS)
{
	int r = in[0]->ndim, perm[DFQ_MAX_DIMS];

	shape_unknown_rank(&out[0], in[0]->dtype);
	if (r < 0) {
		if (n->p.has_axes) {
			out[0].ndim = n->p.naxes;
			for (int i = 0; i < n->p.naxes; i++)
				out[0].dims[i] = -1;
		}
		return DFQ_OK;
	}
	dfq_status st = transpose_perm(n, r, perm, err);
	if (st != DFQ_OK)
		return st;
	out[0].ndim = r;
	for (int i = 0; i < r; i++)
		out[0].dims[i] = in[0]->dims[perm[i]];
	return DFQ_OK;
}

dfq_status op_transpose_forward(OP_FORWARD_ARGS)
{
	const struct dfq_tensor *x = in[0];
	struct dfq_tensor *y = out[0];
	int r = x->ndim, perm[DFQ_MAX_DIMS];
	int64_t xs[DFQ_MAX_DIMS], step[DFQ_MAX_DIMS], idx[DFQ_MAX_DIMS] = {0};
	size_t esz = dfq_dtype_size(x->dtype);

	dfq_status st = transpose_perm(n, r, perm, err);
	if (st != DFQ_OK)
		return st;
	if (x->dtype != y->dtype || x->numel != y->numel)
		return copy_same_data(n, x, y, err); /* reports the mismatch */
	int64_t s = 1;
	for (int i = r - 1; i >= 0; i--) {
		xs[i] = s;
		s *= x->dims[i];
	}
	/* output axis i walks input axis perm[i] */
	for (int i = 0; i < r; i++)
		step[i] = xs[perm[i]];
	const char *src = x->data;
	char *dst = y->data;
	int64_t off = 0;
	for (int64_t o = 0; o < y->numel; o++) {
		memcpy(dst + (size_t)o * esz, src + (size_t)off * esz, esz);
		for (int d = r - 1; d >= 0; d--) {
			off += step[d];
			if (++idx[d] < y->dims[d])
				break;
			off -= step[d] * y->dims[d];
			idx[d] = 0;
		}
	}
	return DFQ_OK;
}

/* ---- Squeeze, Unsqueeze ---------------------------------------------------- */

dfq_status op_squeeze_parse(OP_PARSE_ARGS)
{
	int cnt = -1;

	n->p.has_axes = false;
	n->p.naxes = 0;
	if (n->opset >= 13)
		return DFQ_OK; /* axes is input 1 */
	dfq_status st = ops_attr_ints(n, "axes", n->p.axes, DFQ_MAX_DIMS, &cnt, err);
	if (st != DFQ_OK)
		return st;
	if (cnt < 0 && n->op == DFQ_OP_UNSQUEEZE)
		return dfq_error_set(err, DFQ_ERR_PARSE,
				     "%s node '%s': the required 'axes' attribute is missing",
				     n->op_type, n->name);
	n->p.has_axes = cnt >= 0;
	n->p.naxes = cnt < 0 ? 0 : cnt;
	return DFQ_OK;
}

enum axes_state { AXES_ABSENT, AXES_KNOWN, AXES_UNKNOWN };

/* The axes of a Squeeze/Unsqueeze: attribute (opset < 13) or input 1, which
 * may be absent, or present with a value not known before run time. */
static dfq_status squeeze_axes(const struct dfq_node *n, const struct dfq_shape *const *in,
			       const struct dfq_tensor *const *in_data, int64_t *axes, int *naxes,
			       enum axes_state *state, struct dfq_error *err)
{
	*naxes = 0;
	if (n->opset < 13) {
		*state = n->p.has_axes ? AXES_KNOWN : AXES_ABSENT;
		*naxes = n->p.naxes;
		memcpy(axes, n->p.axes, sizeof(int64_t) * (size_t)n->p.naxes);
		return DFQ_OK;
	}
	if (n->ninputs < 2 || !in[1]) {
		*state = AXES_ABSENT;
		return DFQ_OK;
	}
	if (!in_data[1]) {
		*state = AXES_UNKNOWN;
		/* the count still fixes Unsqueeze's rank; -1 when unknown too */
		*naxes = in[1]->ndim == 0 ? 1 : in[1]->ndim == 1 ? (int)in[1]->dims[0] : -1;
		return DFQ_OK;
	}
	*state = AXES_KNOWN;
	return ops_input_ints(n, in_data[1], "axes", axes, DFQ_MAX_DIMS, naxes, err);
}

static dfq_status squeeze_shape(const struct dfq_node *n, const struct dfq_shape *x,
				const int64_t *axes, int naxes, enum axes_state state,
				struct dfq_shape *out, struct dfq_error *err)
{
	bool mark[DFQ_MAX_DIMS];
	int r = x->ndim;

	if (state == AXES_UNKNOWN || r < 0)
		return DFQ_OK; /* rank unknown */
	if (state == AXES_ABSENT || naxes == 0) {
		/* all 1-dims go; an unknown dim might be one of them */
		for (int i = 0; i < r; i++) {
			if (x->dims[i] < 0)
				return DFQ_OK;
			mark[i] = x->dims[i] == 1;
		}
	} else {
		dfq_status st = mark_axes(n, axes, naxes, r, mark, err);
		if (st != DFQ_OK)
			return st;
		for (int i = 0; i < r; i++)
			if (mark[i] && x->dims[i] >= 0 && x->dims[i] != 1)
				return dfq_error_set(err, DFQ_ERR_SHAPE,
						     "%s node '%s': cannot squeeze axis %d of "
						     "size %lld",
						     n->op_type, n->name, i, (long long)x->dims[i]);
	}
	out->ndim = 0;
	for (int i = 0; i < r; i++)
		if (!mark[i])
			out->dims[out->ndim++] = x->dims[i];
	return DFQ_OK;
}

static dfq_status unsqueeze_shape(const struct dfq_node *n, const struct dfq_shape *x,
				  const int64_t *axes, int naxes, enum axes_state state,
				  struct dfq_shape *out, struct dfq_error *err)
{
	bool mark[DFQ_MAX_DIMS];
	int r = x->ndim;

	if (state == AXES_ABSENT)
		return dfq_error_set(err, DFQ_ERR_ARG, "%s node '%s': axes are missing",
				     n->op_type, n->name);
	if (r < 0 || naxes < 0)
		return DFQ_OK; /* rank unknown */
	if (r + naxes > DFQ_MAX_DIMS)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s node '%s': output rank %d exceeds the supported %d",
				     n->op_type, n->name, r + naxes, DFQ_MAX_DIMS);
	out->ndim = r + naxes;
	if (state == AXES_UNKNOWN) {
		for (int i = 0; i < out->ndim; i++)
			out->dims[i] = -1;
		return DFQ_OK;
	}
	/* axes index the output, so they are normalised against its rank */
	dfq_status st = mark_axes(n, axes, naxes, out->ndim, mark, err);
	if (st != DFQ_OK)
		return st;
	for (int i = 0, j = 0; i < out->ndim; i++)
		out->dims[i] = mark[i] ? 1 : x->dims[j++];
	return DFQ_OK;
}

dfq_status op_squeeze_shape(OP_SHAPE_ARGS)
{
	int64_t axes[DFQ_MAX_DIMS];
	int naxes;
	enum axes_state state;

	shape_unknown_rank(&out[0], in[0]->dtype);
	dfq_status st = squeeze_axes(n, in, in_data, axes, &naxes, &state, err);
	if (st != DFQ_OK)
		return st;
	if (n->op == DFQ_OP_UNSQUEEZE)
		return unsqueeze_shape(n, in[0], axes, naxes, state, &out[0], err);
	return squeeze_shape(n, in[0], axes, naxes, state, &out[0], err);
}

dfq_status op_squeeze_forward(OP_FORWARD_ARGS)
{
	return copy_same_data(n, in[0], out[0], err);
}

/* ---- Identity, Dropout (inference) ----------------------------------------- */

dfq_status op_identity_parse(OP_PARSE_ARGS)
{
	/* inference Dropout's mask is all true; nothing we run needs it */
	if (n->op == DFQ_OP_DROPOUT && n->noutputs > 1 && n->outputs[1] >= 0)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s node '%s': the mask output is not supported", n->op_type,
				     n->name);
	return DFQ_OK;
}

dfq_status op_identity_shape(OP_SHAPE_ARGS)
{
	out[0] = *in[0];
	return DFQ_OK;
}

/* Dropout's training_mode input (opset 12+), when given, must be false. */
static bool dropout_training(const struct dfq_node *n, const struct dfq_tensor *const *in)
{
	if (n->op != DFQ_OP_DROPOUT || n->ninputs < 3 || !in[2] || in[2]->numel < 1)
		return false;
	if (in[2]->dtype == DFQ_DTYPE_I64)
		return dfq_tensor_i64(in[2])[0] != 0;
	return dfq_tensor_f32(in[2])[0] != 0.0f;
}

dfq_status op_identity_forward(OP_FORWARD_ARGS)
{
	if (dropout_training(n, in))
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s node '%s': training mode is not supported", n->op_type,
				     n->name);
	return copy_same_data(n, in[0], out[0], err);
}

/* ---- Constant -------------------------------------------------------------- */

static const char *const constant_forms[] = {
	"value", "value_float", "value_floats", "value_int", "value_ints",
};
static const char *const constant_refused[] = {
	"sparse_value", "value_string", "value_strings",
};

/* The one attribute holding the value (checked by parse). */
static const struct dfq_attr *constant_attr(const struct dfq_node *n)
{
	for (size_t i = 0; i < sizeof constant_forms / sizeof constant_forms[0]; i++) {
		const struct dfq_attr *a = dfq_node_attr(n, constant_forms[i]);
		if (a)
			return a;
	}
	return NULL;
}

dfq_status op_constant_parse(OP_PARSE_ARGS)
{
	static const dfq_attr_type want[] = {
		DFQ_ATTR_TENSOR, DFQ_ATTR_FLOAT, DFQ_ATTR_FLOATS, DFQ_ATTR_INT, DFQ_ATTR_INTS,
	};
	int found = 0;

	for (size_t i = 0; i < sizeof constant_refused / sizeof constant_refused[0]; i++)
		if (dfq_node_attr(n, constant_refused[i]))
			return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
					     "%s node '%s': '%s' constants are not supported",
					     n->op_type, n->name, constant_refused[i]);
	for (size_t i = 0; i < sizeof constant_forms / sizeof constant_forms[0]; i++) {
		const struct dfq_attr *a = dfq_node_attr(n, constant_forms[i]);
		if (!a)
			continue;
		found++;
		if (a->type != want[i] || (a->type == DFQ_ATTR_TENSOR && !a->t) ||
		    (a->type == DFQ_ATTR_FLOATS && a->n > 0 && !a->floats) ||
		    (a->type == DFQ_ATTR_INTS && a->n > 0 && !a->ints) || a->n < 0)
			return dfq_error_set(err, DFQ_ERR_PARSE,
					     "%s node '%s': attribute '%s' has the wrong type",
					     n->op_type, n->name, constant_forms[i]);
	}
	if (found != 1)
		return dfq_error_set(err, DFQ_ERR_PARSE,
				     "%s node '%s': needs exactly one value attribute, has %d",
				     n->op_type, n->name, found);
	return DFQ_OK;
}

dfq_status op_constant_shape(OP_SHAPE_ARGS)
{
	const struct dfq_attr *a = constant_attr(n);

	memset(&out[0], 0, sizeof out[0]);
	if (!a)
		return dfq_error_set(err, DFQ_ERR_INTERNAL, "%s node '%s': no value attribute",
				     n->op_type, n->name);
	switch (a->type) {
	case DFQ_ATTR_TENSOR: dfq_tensor_shape(a->t, &out[0]); break;
	case DFQ_ATTR_FLOAT: out[0].dtype = DFQ_DTYPE_F32; break;
	case DFQ_ATTR_INT: out[0].dtype = DFQ_DTYPE_I64; break;
	case DFQ_ATTR_FLOATS:
		out[0].dtype = DFQ_DTYPE_F32;
		out[0].ndim = 1;
		out[0].dims[0] = a->n;
		break;
	default:
		out[0].dtype = DFQ_DTYPE_I64;
		out[0].ndim = 1;
		out[0].dims[0] = a->n;
		break;
	}
	return DFQ_OK;
}

dfq_status op_constant_forward(OP_FORWARD_ARGS)
{
	const struct dfq_attr *a = constant_attr(n);
	struct dfq_tensor *y = out[0];
	struct dfq_shape s;

	dfq_status st = op_constant_shape(n, NULL, NULL, &s, err);
	if (st != DFQ_OK)
		return st;
	if (s.dtype != y->dtype || s.ndim != y->ndim ||
	    dfq_dims_numel(s.ndim, s.dims, NULL) != y->numel)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
				     "%s node '%s': output does not have the constant's shape",
				     n->op_type, n->name);
	switch (a->type) {
	case DFQ_ATTR_TENSOR: return copy_same_data(n, a->t, y, err);
	case DFQ_ATTR_FLOAT: dfq_tensor_f32(y)[0] = a->f; break;
	case DFQ_ATTR_INT: dfq_tensor_i64(y)[0] = a->i; break;
	case DFQ_ATTR_FLOATS:
		if (a->n)
			memcpy(y->data, a->floats, sizeof(float) * (size_t)a->n);
		break;
	default:
		if (a->n)
			memcpy(y->data, a->ints, sizeof(int64_t) * (size_t)a->n);
		break;
	}
	return DFQ_OK;
}

/* ---- Shape ----------------------------------------------------------------- */

dfq_status op_shapeof_parse(OP_PARSE_ARGS)
{
	int64_t v;
	dfq_status st = ops_attr_int(n, "start", 0, &v, err);
	if (st == DFQ_OK)
		st = ops_attr_int(n, "end", 0, &v, err);
	return st;
}

/* [start, end) of the dims to output (opset 15): negative counts from the
 * end, out of range clamps. */
static dfq_status shapeof_range(const struct dfq_node *n, int r, int *start, int *end,
				struct dfq_error *err)
{
	int64_t s, e;
	dfq_status st = ops_attr_int(n, "start", 0, &s, err);
	if (st == DFQ_OK)
		st = ops_attr_int(n, "end", r, &e, err);
	if (st != DFQ_OK)
		return st;
	if (s < 0)
		s += r;
	if (e < 0)
		e += r;
	s = s < 0 ? 0 : s > r ? r : s;
	e = e < 0 ? 0 : e > r ? r : e;
	*start = (int)s;
	*end = (int)(e < s ? s : e);
	return DFQ_OK;
}

dfq_status op_shapeof_shape(OP_SHAPE_ARGS)
{
	int s, e;

	memset(&out[0], 0, sizeof out[0]);
	out[0].dtype = DFQ_DTYPE_I64;
	out[0].ndim = 1;
	out[0].dims[0] = -1;
	if (in[0]->ndim < 0)
		return DFQ_OK;
	dfq_status st = shapeof_range(n, in[0]->ndim, &s, &e, err);
	if (st == DFQ_OK)
		out[0].dims[0] = e - s;
	return st;
}

dfq_status op_shapeof_forward(OP_FORWARD_ARGS)
{
	int s, e;

	dfq_status st = shapeof_range(n, in[0]->ndim, &s, &e, err);
	if (st != DFQ_OK)
		return st;
	if (out[0]->dtype != DFQ_DTYPE_I64 || out[0]->numel != e - s)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
				     "%s node '%s': output must be %d int64 values", n->op_type,
				     n->name, e - s);
	int64_t *y = dfq_tensor_i64(out[0]);
	for (int i = s; i < e; i++)
		y[i - s] = in[0]->dims[i];
	return DFQ_OK;
}

/* ---- Gather ---------------------------------------------------------------- */

dfq_status op_gather_parse(OP_PARSE_ARGS)
{
	return ops_attr_int(n, "axis", 0, &n->p.axis, err);
}

dfq_status op_gather_shape(OP_SHAPE_ARGS)
{
	const struct dfq_shape *x = in[0], *idx = in[1];
	int64_t a;

	shape_unknown_rank(&out[0], x->dtype);
	if (idx->dtype != DFQ_DTYPE_I64)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s node '%s': indices must be int64, not %s", n->op_type,
				     n->name, dfq_dtype_name(idx->dtype));
	if (x->ndim < 0 || idx->ndim < 0)
		return DFQ_OK;
	dfq_status st = ops_norm_axis(n, n->p.axis, x->ndim, &a, err);
	if (st != DFQ_OK)
		return st;
	int r = x->ndim + idx->ndim - 1;
	if (r > DFQ_MAX_DIMS)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s node '%s': output rank %d exceeds the supported %d",
				     n->op_type, n->name, r, DFQ_MAX_DIMS);
	out[0].ndim = 0;
	for (int i = 0; i < a; i++)
		out[0].dims[out[0].ndim++] = x->dims[i];
	for (int i = 0; i < idx->ndim; i++)
		out[0].dims[out[0].ndim++] = idx->dims[i];
	for (int i = (int)a + 1; i < x->ndim; i++)
		out[0].dims[out[0].ndim++] = x->dims[i];
	return DFQ_OK;
}

dfq_status op_gather_forward(OP_FORWARD_ARGS)
{
	const struct dfq_tensor *x = in[0], *idx = in[1];
	size_t esz = dfq_dtype_size(x->dtype);
	int64_t a;

	dfq_status st = ops_norm_axis(n, n->p.axis, x->ndim, &a, err);
	if (st != DFQ_OK)
		return st;
	int64_t outer = dims_prod(x->dims, 0, (int)a), len = x->dims[a];
	int64_t inner = dims_prod(x->dims, (int)a + 1, x->ndim);
	if (out[0]->dtype != x->dtype || out[0]->numel != outer * idx->numel * inner)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
				     "%s node '%s': output does not match data and indices",
				     n->op_type, n->name);
	const int64_t *ix = dfq_tensor_i64(idx);
	const char *src = x->data;
	char *dst = out[0]->data;
	size_t row = (size_t)inner * esz;
	for (int64_t o = 0; o < outer; o++) {
		for (int64_t j = 0; j < idx->numel; j++) {
			int64_t k = ix[j];
			if (k < -len || k >= len)
				return dfq_error_set(err, DFQ_ERR_ARG,
						     "%s node '%s': index %lld is out of range "
						     "for a dim of %lld",
						     n->op_type, n->name, (long long)k,
						     (long long)len);
			if (k < 0)
				k += len;
			memcpy(dst, src + (size_t)(o * len + k) * row, row);
			dst += row;
		}
	}
	return DFQ_OK;
}

/* ---- Cast ------------------------------------------------------------------ */

/* ONNX TensorProto.DataType numbers we cast to. */
enum { ONNX_FLOAT = 1, ONNX_INT64 = 7 };

dfq_status op_cast_parse(OP_PARSE_ARGS)
{
	int64_t to;
	dfq_status st = ops_attr_int(n, "to", -1, &to, err);
	if (st != DFQ_OK)
		return st;
	if (to == -1)
		return dfq_error_set(err, DFQ_ERR_PARSE,
				     "%s node '%s': the required 'to' attribute is missing",
				     n->op_type, n->name);
	if (to == ONNX_FLOAT)
		n->p.cast_to = DFQ_DTYPE_F32;
	else if (to == ONNX_INT64)
		n->p.cast_to = DFQ_DTYPE_I64;
	else
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s node '%s': cast to ONNX type %lld is not supported (only "
				     "float32 and int64)",
				     n->op_type, n->name, (long long)to);
	return DFQ_OK;
}

dfq_status op_cast_shape(OP_SHAPE_ARGS)
{
	out[0] = *in[0];
	out[0].dtype = n->p.cast_to;
	return DFQ_OK;
}

dfq_status op_cast_forward(OP_FORWARD_ARGS)
{
	const struct dfq_tensor *x = in[0];
	struct dfq_tensor *y = out[0];

	if (y->dtype != n->p.cast_to || y->numel != x->numel)
		return dfq_error_set(err, DFQ_ERR_SHAPE, "%s node '%s': output has the wrong shape",
				     n->op_type, n->name);
	if (x->dtype == y->dtype)
		return copy_same_data(n, x, y, err);
	if (x->dtype == DFQ_DTYPE_I64) {
		const int64_t *px = dfq_tensor_i64(x);
		float *py = dfq_tensor_f32(y);
		for (int64_t i = 0; i < x->numel; i++)
			py[i] = (float)px[i];
		return DFQ_OK;
	}
	const float *px = dfq_tensor_f32(x);
	int64_t *py = dfq_tensor_i64(y);
	for (int64_t i = 0; i < x->numel; i++) {
		/* truncation toward zero; NaN, inf and |x| >= 2^63 have no int64 value
		 * (and converting them is undefined behaviour in C) */
		if (!(px[i] >= -0x1p63f && px[i] < 0x1p63f))
			return dfq_error_set(err, DFQ_ERR_ARG,
					     "%s node '%s': %g has no int64 value", n->op_type,
					     n->name, (double)px[i]);
		py[i] = (int64_t)px[i];
	}
	return DFQ_OK;
}
