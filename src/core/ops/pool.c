/* pool.c - MaxPool, AveragePool and GlobalAveragePool: attribute parsing, shape inference and
 * the scalar reference kernels (1 to 3 spatial axes). */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "ops_internal.h"

static bool is_max(const struct dfq_node *n)
{
	return n->op == DFQ_OP_MAXPOOL;
}

/* Reads an INTS attribute holding per_axis values per spatial axis; the axis count must
 * equal the one kernel_shape gave. */
static dfq_status read_axis_ints(struct dfq_node *n, const char *name, int per_axis, int nsp,
                                 int64_t *out, struct dfq_error *err)
{
	int count;
	dfq_status st = ops_attr_ints(n, name, out, per_axis * DFQ_MAX_SPATIAL, &count, err);
	if (st != DFQ_OK)
		return st;
	if (count >= 0 && count != per_axis * nsp)
		return dfq_error_set(err, DFQ_ERR_PARSE,
		                     "%s node '%s': attribute '%s' has %d values but kernel_shape "
		                     "has %d axes",
		                     n->op_type, n->name, name, count, nsp);
	return DFQ_OK;
}

/* kernel_shape is required and fixes the spatial rank. */
static dfq_status parse_kernel(struct dfq_node *n, struct dfq_op_params *p, struct dfq_error *err)
{
	int count;
	dfq_status st = ops_attr_ints(n, "kernel_shape", p->kernel, DFQ_MAX_SPATIAL, &count, err);
	if (st == DFQ_ERR_UNSUPPORTED)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
		                     "%s node '%s': more than %d spatial dimensions are not "
		                     "supported",
		                     n->op_type, n->name, DFQ_MAX_SPATIAL);
	if (st != DFQ_OK)
		return st;
	if (count <= 0)
		return dfq_error_set(err, DFQ_ERR_PARSE,
		                     "%s node '%s': attribute 'kernel_shape' is required",
		                     n->op_type, n->name);
	p->nspatial = count;
	return DFQ_OK;
}

/* Optional flags that only exist from some opset on: read them there, else keep def. */
static dfq_status parse_flag(struct dfq_node *n, const char *name, int64_t since, bool *out,
                             struct dfq_error *err)
{
	int64_t v = 0;
	*out = false;
	if (n->opset < since)
		return DFQ_OK;
	dfq_status st = ops_attr_int(n, name, 0, &v, err);
	if (st != DFQ_OK)
		return st;
	*out = v != 0;
	return DFQ_OK;
}

/* Dilations: MaxPool from opset 10; AveragePool only gained them in opset 19, so any value
 * other than 1 is refused there. */
static dfq_status parse_dilations(struct dfq_node *n, struct dfq_op_params *p,
                                  struct dfq_error *err)
{
	if (is_max(n) && n->opset < 10)
		return DFQ_OK;
	dfq_status st = read_axis_ints(n, "dilations", 1, p->nspatial, p->dilations, err);
	if (st != DFQ_OK || is_max(n))
		return st;
	for (int i = 0; i < p->nspatial; i++)
		if (p->dilations[i] != 1)
			return dfq_error_set(
			    err, DFQ_ERR_UNSUPPORTED,
			    "AveragePool node '%s': dilations other than 1 are not "
			    "supported",
			    n->name);
	return DFQ_OK;
}

dfq_status op_pool_parse(OP_PARSE_ARGS)
{
	struct dfq_op_params *p = &n->p;
	memset(p, 0, sizeof *p);
	for (int i = 0; i < DFQ_MAX_SPATIAL; i++)
		p->strides[i] = p->dilations[i] = 1;
	if (is_max(n) && n->noutputs >= 2 && n->outputs && n->outputs[1] != -1)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
		                     "MaxPool node '%s': the Indices output is not supported",
		                     n->name);
	dfq_status st;
	if ((st = parse_kernel(n, p, err)) ||
	    (st = read_axis_ints(n, "strides", 1, p->nspatial, p->strides, err)) ||
	    (st = read_axis_ints(n, "pads", 2, p->nspatial, p->pads, err)) ||
	    (st = ops_parse_auto_pad(n, &p->auto_pad, err)) || (st = parse_dilations(n, p, err)) ||
	    (st = parse_flag(n, "ceil_mode", 10, &p->ceil_mode, err)))
		return st;
	if (!is_max(n) && (st = parse_flag(n, "count_include_pad", 7, &p->count_include_pad, err)))
		return st;
	return ops_check_window(n, p, p->nspatial, 1, err);
}

/* Output spatial sizes and resolved pads.  Explicit pads as wide as the window would make
 * windows that see no input at all (a max of nothing, an average over zero elements). */
static dfq_status pool_spatial(const struct dfq_node *n, const int64_t *in_sp, int64_t *pads,
                               int64_t *out_sp, struct dfq_error *err)
{
	const struct dfq_op_params *p = &n->p;
	int nsp = p->nspatial;
	dfq_status st =
	    ops_spatial_resolve(p, nsp, in_sp, p->kernel, p->ceil_mode, pads, out_sp, err);
	if (st != DFQ_OK)
		return dfq_error_prefix(err, "%s node '%s'", n->op_type, n->name);
	for (int i = 0; i < nsp; i++) {
		int64_t extent = (p->kernel[i] - 1) * p->dilations[i] + 1;
		if (pads[i] >= extent || pads[nsp + i] >= extent)
			return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
			                     "%s node '%s': pads must be smaller than the kernel "
			                     "extent %" PRId64 " on spatial axis %d",
			                     n->op_type, n->name, extent, i);
	}
	return DFQ_OK;
}

dfq_status op_pool_shape(OP_SHAPE_ARGS)
{
	const struct dfq_shape *x = in[0];
	int nsp = n->p.nspatial;
	if (x->dtype != DFQ_DTYPE_F32)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
		                     "%s node '%s': input is %s, only float32 is supported",
		                     n->op_type, n->name, dfq_dtype_name(x->dtype));
	out->dtype = DFQ_DTYPE_F32;
	out->ndim = nsp + 2;
	int64_t in_sp[DFQ_MAX_SPATIAL], pads[2 * DFQ_MAX_SPATIAL], out_sp[DFQ_MAX_SPATIAL];
	if (x->ndim >= 0 && x->ndim != nsp + 2)
		return dfq_error_set(
		    err, DFQ_ERR_SHAPE,
		    "%s node '%s': kernel_shape has %d axes, so the input must have "
		    "rank %d, not %d",
		    n->op_type, n->name, nsp, nsp + 2, x->ndim);
	for (int i = 0; i < nsp; i++)
		in_sp[i] = x->ndim >= 0 ? x->dims[2 + i] : -1;
	dfq_status st = pool_spatial(n, in_sp, pads, out_sp, err);
	if (st != DFQ_OK)
		return st;
	out->dims[0] = x->ndim >= 0 ? x->dims[0] : -1;
	out->dims[1] = x->ndim >= 0 ? x->dims[1] : -1;
	for (int i = 0; i < nsp; i++)
		out->dims[2 + i] = out_sp[i];
	return DFQ_OK;
}

/* The pool seen as 3-D: lower ranks get leading unit axes with kernel 1 and no pads. */
struct pool_geom {
	bool max, include_pad;
	int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
	const float *x;
	float *y;
};

/* Window positions along one axis that land inside [lo, hi). */
static int64_t axis_count(const struct pool_geom *g, int ax, int64_t o, int64_t lo, int64_t hi)
{
	int64_t c = 0;
	for (int64_t k = 0; k < g->k[ax]; k++) {
		int64_t i = o * g->s[ax] - g->pb[ax] + k * g->d[ax];
		c += i >= lo && i < hi;
	}
	return c;
}

/* Divisor of an average: the window's real elements, or with count_include_pad also its
 * padding (but not the part a ceil_mode window hangs beyond the end padding). */
static int64_t avg_divisor(const struct pool_geom *g, const int64_t *o)
{
	int64_t c = 1;
	for (int ax = 0; ax < 3; ax++) {
		if (g->include_pad)
			c *= axis_count(g, ax, o[ax], -g->pb[ax], g->in[ax] + g->pe[ax]);
		else
			c *= axis_count(g, ax, o[ax], 0, g->in[ax]);
	}
	return c;
}

/* One output value of plane x (pads never take part in a max; they add zeros to a sum). */
static float pool_point(const struct pool_geom *g, const float *x, const int64_t *o)
{
	double acc = g->max ? -INFINITY : 0.0;
	for (int64_t k0 = 0; k0 < g->k[0]; k0++) {
		int64_t i0 = o[0] * g->s[0] - g->pb[0] + k0 * g->d[0];
		if (i0 < 0 || i0 >= g->in[0])
			continue;
		for (int64_t k1 = 0; k1 < g->k[1]; k1++) {
			int64_t i1 = o[1] * g->s[1] - g->pb[1] + k1 * g->d[1];
			if (i1 < 0 || i1 >= g->in[1])
				continue;
			const float *xr = x + (i0 * g->in[1] + i1) * g->in[2];
			for (int64_t k2 = 0; k2 < g->k[2]; k2++) {
				int64_t i2 = o[2] * g->s[2] - g->pb[2] + k2 * g->d[2];
				if (i2 < 0 || i2 >= g->in[2])
					continue;
				if (!g->max)
					acc += xr[i2];
				else if (xr[i2] > acc || isnan(xr[i2]))
					acc = xr[i2];
			}
		}
	}
	if (g->max)
		return (float)acc;
	return (float)(acc / (double)avg_divisor(g, o));
}

/* Work item = one (batch, channel) plane. */
static void pool_planes(void *arg, int64_t begin, int64_t end, int tid)
{
	const struct pool_geom *g = arg;
	int64_t in_plane = g->in[0] * g->in[1] * g->in[2];
	int64_t out_plane = g->out[0] * g->out[1] * g->out[2];
	for (int64_t pl = begin; pl < end; pl++) {
		const float *x = g->x + pl * in_plane;
		float *y = g->y + pl * out_plane;
		int64_t o[3];
		for (o[0] = 0; o[0] < g->out[0]; o[0]++)
			for (o[1] = 0; o[1] < g->out[1]; o[1]++)
				for (o[2] = 0; o[2] < g->out[2]; o[2]++)
					*y++ = pool_point(g, x, o);
	}
}

dfq_status op_pool_forward(OP_FORWARD_ARGS)
{
	const struct dfq_tensor *x = in[0];
	struct dfq_tensor *y = out[0];
	const struct dfq_op_params *p = &n->p;
	int nsp = p->nspatial;
	if (x->ndim != nsp + 2 || y->ndim != nsp + 2)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
		                     "%s node '%s': the input must have rank %d, not %d",
		                     n->op_type, n->name, nsp + 2, x->ndim);
	int64_t pads[2 * DFQ_MAX_SPATIAL], out_sp[DFQ_MAX_SPATIAL];
	dfq_status st = pool_spatial(n, x->dims + 2, pads, out_sp, err);
	if (st != DFQ_OK)
		return st;
	if (y->dims[0] != x->dims[0] || y->dims[1] != x->dims[1] ||
	    memcmp(y->dims + 2, out_sp, (size_t)nsp * sizeof *out_sp) != 0)
		return dfq_error_set(err, DFQ_ERR_INTERNAL,
		                     "%s node '%s': output tensor has the wrong shape", n->op_type,
		                     n->name);
	struct pool_geom g = {
	    .max = is_max(n),
	    .include_pad = p->count_include_pad,
	    .x = dfq_tensor_f32(x),
	    .y = dfq_tensor_f32(y),
	};
	int lead = DFQ_MAX_SPATIAL - nsp;
	for (int ax = 0; ax < 3; ax++) {
		int i = ax - lead;
		bool real = i >= 0;
		g.in[ax] = real ? x->dims[2 + i] : 1;
		g.out[ax] = real ? out_sp[i] : 1;
		g.k[ax] = real ? p->kernel[i] : 1;
		g.s[ax] = real ? p->strides[i] : 1;
		g.d[ax] = real ? p->dilations[i] : 1;
		g.pb[ax] = real ? pads[i] : 0;
		g.pe[ax] = real ? pads[nsp + i] : 0;
	}
	dfq_pool_run(ctx ? ctx->pool : NULL, x->dims[0] * x->dims[1], 1, pool_planes, &g);
	return DFQ_OK;
}

/* --- GlobalAveragePool ------------------------------------------------------------------ */

dfq_status op_globalavgpool_parse(OP_PARSE_ARGS)
{
	memset(&n->p, 0, sizeof n->p);
	return DFQ_OK;
}

dfq_status op_globalavgpool_shape(OP_SHAPE_ARGS)
{
	const struct dfq_shape *x = in[0];
	if (x->dtype != DFQ_DTYPE_F32)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
		                     "GlobalAveragePool node '%s': input is %s, only float32 is "
		                     "supported",
		                     n->name, dfq_dtype_name(x->dtype));
	*out = *x;
	if (x->ndim < 0)
		return DFQ_OK;
	if (x->ndim < 3)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
		                     "GlobalAveragePool node '%s': the input must have rank 3 or "
		                     "more, it has %d",
		                     n->name, x->ndim);
	for (int i = 2; i < x->ndim; i++)
		out->dims[i] = 1;
	return DFQ_OK;
}

struct gap_job {
	const float *x;
	float *y;
	int64_t plane;
};

static void gap_planes(void *arg, int64_t begin, int64_t end, int tid)
{
	const struct gap_job *j = arg;
	for (int64_t pl = begin; pl < end; pl++) {
		const float *x = j->x + pl * j->plane;
		double acc = 0.0;
		for (int64_t i = 0; i < j->plane; i++)
			acc += x[i];
		/* an empty plane has no mean; NaN says so rather than inventing 0 */
		j->y[pl] = j->plane ? (float)(acc / (double)j->plane) : NAN;
	}
}

dfq_status op_globalavgpool_forward(OP_FORWARD_ARGS)
{
	const struct dfq_tensor *x = in[0];
	struct dfq_tensor *y = out[0];
	if (x->ndim < 3 || y->ndim != x->ndim || y->numel != x->dims[0] * x->dims[1])
		return dfq_error_set(err, DFQ_ERR_SHAPE,
		                     "GlobalAveragePool node '%s': bad input or output shape",
		                     n->name);
	struct gap_job j = {
	    .x = dfq_tensor_f32(x),
	    .y = dfq_tensor_f32(y),
	    .plane = dfq_dims_numel(x->ndim - 2, x->dims + 2, NULL),
	};
	dfq_pool_run(ctx ? ctx->pool : NULL, x->dims[0] * x->dims[1], 1, gap_planes, &j);
	return DFQ_OK;
}
