/* slice.c - Slice (attribute form, opset 1-9; input form with steps, opset 10+) and Split
 * (split attribute, opset < 13; split input, opset 13+; num_outputs, opset 18).  Both
 * copy elements of any type; their parameters are read from the attributes or, when they
 * are inputs, from the constants finalize knows (else the sliced dims stay unknown until
 * run time, where every input is known). */
#include <string.h>

#include "ops_internal.h"

/* ---- helpers ------------------------------------------------------------- */

static int64_t prod(const int64_t *dims, int from, int to)
{
	int64_t p = 1;
	for (int i = from; i < to; i++)
		p *= dims[i];
	return p;
}

/* ---- Slice ----------------------------------------------------------------- */

/* The slice of each axis of the input: start, step and element count. */
struct slice_plan {
	bool sliced[DFQ_MAX_DIMS];
	int64_t start[DFQ_MAX_DIMS], step[DFQ_MAX_DIMS], count[DFQ_MAX_DIMS];
};

dfq_status op_slice_parse(OP_PARSE_ARGS)
{
	int64_t v[DFQ_MAX_DIMS];
	int ns, ne, na;

	if (n->opset >= 10) {
		if (dfq_node_attr(n, "starts") || dfq_node_attr(n, "ends"))
			return dfq_error_set(err, DFQ_ERR_PARSE,
			                     "%s node '%s': opset %lld takes starts and ends as "
			                     "inputs, not attributes",
			                     n->op_type, n->name, (long long)n->opset);
		if (n->ninputs < 3)
			return dfq_error_set(
			    err, DFQ_ERR_GRAPH,
			    "%s node '%s' has %d inputs; opset %lld's Slice takes 3 "
			    "to 5",
			    n->op_type, n->name, n->ninputs, (long long)n->opset);
		return DFQ_OK;
	}
	if (n->ninputs != 1)
		return dfq_error_set(err, DFQ_ERR_GRAPH,
		                     "%s node '%s' has %d inputs; opset %lld's Slice takes 1",
		                     n->op_type, n->name, n->ninputs, (long long)n->opset);
	dfq_status st = ops_attr_ints(n, "starts", v, DFQ_MAX_DIMS, &ns, err);
	if (st == DFQ_OK)
		st = ops_attr_ints(n, "ends", v, DFQ_MAX_DIMS, &ne, err);
	if (st == DFQ_OK)
		st = ops_attr_ints(n, "axes", v, DFQ_MAX_DIMS, &na, err);
	if (st != DFQ_OK)
		return st;
	if (ns < 0 || ne < 0)
		return dfq_error_set(err, DFQ_ERR_PARSE,
		                     "%s node '%s': the required '%s' attribute is missing",
		                     n->op_type, n->name, ns < 0 ? "starts" : "ends");
	if (ns != ne || (na >= 0 && na != ns))
		return dfq_error_set(err, DFQ_ERR_PARSE,
		                     "%s node '%s': starts, ends and axes differ in length",
		                     n->op_type, n->name);
	return DFQ_OK;
}

/* starts, ends, axes and steps as lists (*known false when one of the inputs
 * is not known yet). */
struct slice_args {
	int n;
	int64_t starts[DFQ_MAX_DIMS], ends[DFQ_MAX_DIMS], axes[DFQ_MAX_DIMS], steps[DFQ_MAX_DIMS];
	bool has_axes;
};

static dfq_status slice_args(const struct dfq_node *n, const struct dfq_shape *const *in,
                             const struct dfq_tensor *const *in_data, struct slice_args *a,
                             bool *known, struct dfq_error *err)
{
	int ne = 0, na = -1, nst = -1;
	dfq_status st;

	*known = true;
	a->has_axes = false;
	if (n->opset < 10) {
		st = ops_attr_ints(n, "starts", a->starts, DFQ_MAX_DIMS, &a->n, err);
		if (st == DFQ_OK)
			st = ops_attr_ints(n, "ends", a->ends, DFQ_MAX_DIMS, &ne, err);
		if (st == DFQ_OK)
			st = ops_attr_ints(n, "axes", a->axes, DFQ_MAX_DIMS, &na, err);
	} else {
		const char *names[] = {"starts", "ends", "axes", "steps"};
		int64_t *lists[] = {a->starts, a->ends, a->axes, a->steps};
		int *counts[] = {&a->n, &ne, &na, &nst};
		st = DFQ_OK;
		for (int i = 1; i <= 4 && st == DFQ_OK; i++) {
			if (i >= n->ninputs || !in[i])
				continue;
			if (!in_data[i]) {
				*known = false;
				*counts[i - 1] = -2;
				continue;
			}
			st = ops_input_ints(n, in_data[i], names[i - 1], lists[i - 1],
			                     DFQ_MAX_DIMS, counts[i - 1], err);
		}
	}
	if (st != DFQ_OK)
		return st;
	a->has_axes = na != -1;
	if (!*known)
		return DFQ_OK;
	if (a->n != ne || (na >= 0 && na != a->n) || (nst >= 0 && nst != a->n))
		return dfq_error_set(err, DFQ_ERR_SHAPE,
		                     "%s node '%s': starts, ends, axes and steps differ in length",
		                     n->op_type, n->name);
	for (int i = 0; i < a->n; i++) {
		if (na < 0)
			a->axes[i] = i;
		if (nst < 0)
			a->steps[i] = 1;
		if (a->steps[i] == 0)
			return dfq_error_set(err, DFQ_ERR_ARG, "%s node '%s': a step is 0",
			                     n->op_type, n->name);
	}
	return DFQ_OK;
}

/* Clamp one axis's slice as ONNX does: negative indices count from the end,
 * starts and ends beyond the dim clamp to it (to dim-1 and -1 going backwards). */
static void slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t *first,
                       int64_t *count)
{
	if (start < 0)
		start += dim;
	if (end < 0)
		end += dim;
	if (step > 0) {
		start = start < 0 ? 0 : start > dim ? dim : start;
		end = end < 0 ? 0 : end > dim ? dim : end;
		*count = end > start ? 1 + (end - start - 1) / step : 0;
	} else {
		start = start < 0 ? 0 : start > dim - 1 ? dim - 1 : start;
		end = end < -1 ? -1 : end > dim - 1 ? dim - 1 : end;
		/* -INT64_MIN does not exist; any step beyond the dim takes one element */
		int64_t back = step == INT64_MIN ? INT64_MAX : -step;
		*count = start > end ? 1 + (start - end - 1) / back : 0;
	}
	*first = start;
}

/* The plan for an input of rank r and dims (some may be -1: then that axis's
 * count is -1 too). */
static dfq_status slice_make_plan(const struct dfq_node *n, const struct slice_args *a, int r,
                                  const int64_t *dims, struct slice_plan *p, struct dfq_error *err)
{
	for (int d = 0; d < r; d++) {
		p->sliced[d] = false;
		p->start[d] = 0;
		p->step[d] = 1;
		p->count[d] = dims[d];
	}
	for (int i = 0; i < a->n; i++) {
		int64_t ax;
		dfq_status st = ops_norm_axis(n, a->axes[i], r, &ax, err);
		if (st != DFQ_OK)
			return st;
		if (p->sliced[ax])
			return dfq_error_set(err, DFQ_ERR_ARG,
			                     "%s node '%s': axis %lld is repeated", n->op_type,
			                     n->name, (long long)a->axes[i]);
		p->sliced[ax] = true;
		p->step[ax] = a->steps[i];
		if (dims[ax] < 0)
			p->count[ax] = -1;
		else
			slice_axis(dims[ax], a->starts[i], a->ends[i], a->steps[i], &p->start[ax],
			           &p->count[ax]);
		if (p->count[ax] <= 1)
			p->step[ax] = 1; /* one element: a huge step must not overflow offsets */
	}
	return DFQ_OK;
}

dfq_status op_slice_shape(OP_SHAPE_ARGS)
{
	const struct dfq_shape *x = in[0];
	struct slice_args a;
	struct slice_plan p;
	bool known;

	memset(&out[0], 0, sizeof out[0]);
	out[0].dtype = x->dtype;
	out[0].ndim = x->ndim;
	if (x->ndim < 0)
		return DFQ_OK;
	dfq_status st = slice_args(n, in, in_data, &a, &known, err);
	if (st != DFQ_OK)
		return st;
	if (!known) {
		/* the rank stays; the dims are known at run time */
		for (int d = 0; d < x->ndim; d++)
			out[0].dims[d] = -1;
		return DFQ_OK;
	}
	st = slice_make_plan(n, &a, x->ndim, x->dims, &p, err);
	if (st != DFQ_OK)
		return st;
	for (int d = 0; d < x->ndim; d++)
		out[0].dims[d] = p.count[d];
	return DFQ_OK;
}

dfq_status op_slice_forward(OP_FORWARD_ARGS)
{
	const struct dfq_tensor *x = in[0];
	struct dfq_tensor *y = out[0];
	const struct dfq_shape *shapes[5] = {0};
	struct dfq_shape s[5];
	struct slice_args a;
	struct slice_plan p;
	bool known;
	int r = x->ndim;
	size_t esz = dfq_dtype_size(x->dtype);

	for (int i = 0; i < n->ninputs && i < 5; i++)
		if (in[i]) {
			dfq_tensor_shape(in[i], &s[i]);
			shapes[i] = &s[i];
		}
	dfq_status st = slice_args(n, shapes, in, &a, &known, err);
	if (st == DFQ_OK)
		st = slice_make_plan(n, &a, r, x->dims, &p, err);
	if (st != DFQ_OK)
		return st;
	int64_t numel = prod(p.count, 0, r);
	if (y->dtype != x->dtype || y->numel != numel)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
		                     "%s node '%s': output does not have the slice's shape",
		                     n->op_type, n->name);
	if (numel == 0)
		return DFQ_OK;
	/* walk the output in order; the innermost axis is one run when its step is 1 */
	int64_t xs[DFQ_MAX_DIMS], idx[DFQ_MAX_DIMS] = {0}, off = 0;
	int64_t acc = 1;
	for (int d = r - 1; d >= 0; d--) {
		xs[d] = acc;
		acc *= x->dims[d];
	}
	for (int d = 0; d < r; d++)
		off += p.start[d] * xs[d];
	int last = r - 1;
	int64_t run = r > 0 && p.step[last] == 1 ? p.count[last] : 1;
	int outer_rank = r > 0 && p.step[last] == 1 ? last : r;
	const char *src = x->data;
	char *dst = y->data;
	for (int64_t o = 0; o < numel; o += run) {
		memcpy(dst, src + (size_t)off * esz, (size_t)run * esz);
		dst += (size_t)run * esz;
		for (int d = outer_rank - 1; d >= 0; d--) {
			off += p.step[d] * xs[d];
			if (++idx[d] < p.count[d])
				break;
			off -= p.step[d] * xs[d] * p.count[d];
			idx[d] = 0;
		}
	}
	return DFQ_OK;
}

/* ---- Split ----------------------------------------------------------------- */

dfq_status op_split_parse(OP_PARSE_ARGS)
{
	const struct dfq_attr *sa = dfq_node_attr(n, "split");
	dfq_status st = ops_attr_int(n, "axis", 0, &n->p.axis, err);
	if (st != DFQ_OK)
		return st;
	if (sa && (n->opset >= 13 || sa->type != DFQ_ATTR_INTS || (sa->n > 0 && !sa->ints)))
		return dfq_error_set(err, DFQ_ERR_PARSE,
		                     "%s node '%s': opset %lld does not take a 'split' attribute "
		                     "of that form",
		                     n->op_type, n->name, (long long)n->opset);
	if (sa && sa->n != n->noutputs)
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "%s node '%s': split has %d sizes for %d outputs", n->op_type,
		                     n->name, sa->n, n->noutputs);
	int64_t num = 0;
	st = ops_attr_int(n, "num_outputs", 0, &num, err);
	if (st == DFQ_OK && num && num != n->noutputs)
		return dfq_error_set(
		    err, DFQ_ERR_ARG,
		    "%s node '%s': num_outputs is %lld but the node has %d outputs", n->op_type,
		    n->name, (long long)num, n->noutputs);
	if (st == DFQ_OK && n->opset < 13 && n->ninputs > 1)
		return dfq_error_set(err, DFQ_ERR_GRAPH,
		                     "%s node '%s': opset %lld takes split as an attribute, not an "
		                     "input",
		                     n->op_type, n->name, (long long)n->opset);
	return st;
}

/* The size of each output along the axis for a dim of len, into sizes[0..noutputs)
 * (all -1 when the split is not known yet). */
static dfq_status split_sizes(const struct dfq_node *n, const struct dfq_tensor *split_in,
                              bool split_unknown, int64_t len, int64_t *sizes,
                              struct dfq_error *err)
{
	int no = n->noutputs;
	const struct dfq_attr *sa = dfq_node_attr(n, "split");
	const int64_t *given = NULL;

	if (split_in) {
		if (split_in->dtype != DFQ_DTYPE_I64 || split_in->ndim > 1 || split_in->numel != no)
			return dfq_error_set(err, DFQ_ERR_SHAPE,
			                     "%s node '%s': split must be %d int64 sizes",
			                     n->op_type, n->name, no);
		given = dfq_tensor_i64(split_in);
	} else if (sa) {
		given = sa->ints;
	}
	if (split_unknown || (len < 0 && !given)) {
		for (int o = 0; o < no; o++)
			sizes[o] = -1;
		return DFQ_OK;
	}
	if (given) {
		int64_t sum = 0;
		for (int o = 0; o < no; o++) {
			if (given[o] < 0)
				return dfq_error_set(err, DFQ_ERR_ARG,
				                     "%s node '%s': split size %lld is negative",
				                     n->op_type, n->name, (long long)given[o]);
			sizes[o] = given[o];
			sum += given[o];
		}
		if (len >= 0 && sum != len)
			return dfq_error_set(
			    err, DFQ_ERR_SHAPE,
			    "%s node '%s': split sizes add up to %lld, the axis has "
			    "%lld",
			    n->op_type, n->name, (long long)sum, (long long)len);
		return DFQ_OK;
	}
	if (dfq_node_attr(n, "num_outputs")) {
		/* opset 18: equal parts of ceil(len / n), the last one smaller */
		int64_t part = (len + no - 1) / no;
		for (int o = 0; o < no; o++) {
			int64_t left = len - part * o;
			sizes[o] = left < 0 ? 0 : left < part ? left : part;
		}
		return DFQ_OK;
	}
	if (len % no)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
		                     "%s node '%s': an axis of %lld does not split into %d equal "
		                     "parts",
		                     n->op_type, n->name, (long long)len, no);
	for (int o = 0; o < no; o++)
		sizes[o] = len / no;
	return DFQ_OK;
}

dfq_status op_split_shape(OP_SHAPE_ARGS)
{
	const struct dfq_shape *x = in[0];
	int no = n->noutputs;
	int64_t sizes[no > 0 ? no : 1], ax = 0;

	for (int o = 0; o < no; o++) {
		out[o] = *x;
		if (x->ndim < 0) {
			memset(&out[o], 0, sizeof out[o]);
			out[o].dtype = x->dtype;
			out[o].ndim = -1;
		}
	}
	if (x->ndim < 0)
		return DFQ_OK;
	dfq_status st = ops_norm_axis(n, n->p.axis, x->ndim, &ax, err);
	if (st != DFQ_OK)
		return st;
	bool has_input = n->ninputs > 1 && in[1];
	st = split_sizes(n, has_input ? in_data[1] : NULL, has_input && !in_data[1], x->dims[ax],
	                 sizes, err);
	if (st != DFQ_OK)
		return st;
	for (int o = 0; o < no; o++)
		out[o].dims[ax] = sizes[o];
	return DFQ_OK;
}

dfq_status op_split_forward(OP_FORWARD_ARGS)
{
	const struct dfq_tensor *x = in[0];
	int no = n->noutputs;
	int64_t sizes[no > 0 ? no : 1], ax;
	size_t esz = dfq_dtype_size(x->dtype);

	dfq_status st = ops_norm_axis(n, n->p.axis, x->ndim, &ax, err);
	if (st == DFQ_OK)
		st = split_sizes(n, n->ninputs > 1 ? in[1] : NULL, false, x->dims[ax], sizes, err);
	if (st != DFQ_OK)
		return st;
	int64_t outer = prod(x->dims, 0, (int)ax), inner = prod(x->dims, (int)ax + 1, x->ndim);
	int64_t len = x->dims[ax];
	int64_t first = 0;
	for (int o = 0; o < no; first += sizes[o], o++) {
		struct dfq_tensor *y = out[o];
		if (!y)
			continue; /* an output nobody named */
		if (y->dtype != x->dtype || y->numel != outer * sizes[o] * inner)
			return dfq_error_set(
			    err, DFQ_ERR_SHAPE,
			    "%s node '%s': output %d does not have its part's shape", n->op_type,
			    n->name, o);
		size_t row = (size_t)(sizes[o] * inner) * esz;
		const char *src = (const char *)x->data + (size_t)(first * inner) * esz;
		char *dst = y->data;
		for (int64_t b = 0; b < outer && row; b++)
			memcpy(dst + (size_t)b * row, src + (size_t)(b * len * inner) * esz, row);
	}
	return DFQ_OK;
}
