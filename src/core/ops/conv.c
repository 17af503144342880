/* conv.c - Conv (opsets 1..18): attribute parsing, shape inference and the scalar reference
 * kernel (groups, strides, pads, auto_pad, dilations, optional bias; 1 to 3 spatial axes). */
#include <inttypes.h>
#include <string.h>

#include "ops_internal.h"

/* Reads an INTS attribute that has one value per spatial axis and reconciles the axis count
 * with what earlier attributes said (*nsp = 0 while unknown).  per_axis is 1, or 2 for pads. */
static dfq_status read_spatial_ints(struct dfq_node *n, const char *name, int per_axis,
                                    int64_t *out, int *nsp, bool *present, struct dfq_error *err)
{
	int count;
	dfq_status st = ops_attr_ints(n, name, out, per_axis * DFQ_MAX_SPATIAL, &count, err);
	if (st == DFQ_ERR_UNSUPPORTED)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
		                     "Conv node '%s': more than %d spatial dimensions are not "
		                     "supported",
		                     n->name, DFQ_MAX_SPATIAL);
	if (st != DFQ_OK)
		return st;
	*present = count >= 0;
	if (count < 0)
		return DFQ_OK;
	if (count == 0 || count % per_axis != 0)
		return dfq_error_set(err, DFQ_ERR_PARSE,
		                     "Conv node '%s': attribute '%s' has %d values, which fits no "
		                     "spatial rank",
		                     n->name, name, count);
	int k = count / per_axis;
	if (*nsp != 0 && *nsp != k)
		return dfq_error_set(
		    err, DFQ_ERR_PARSE,
		    "Conv node '%s': attribute '%s' describes %d spatial dimensions "
		    "but other attributes describe %d",
		    n->name, name, k, *nsp);
	*nsp = k;
	return DFQ_OK;
}

dfq_status op_conv_parse(OP_PARSE_ARGS)
{
	struct dfq_op_params *p = &n->p;
	memset(p, 0, sizeof *p);
	for (int i = 0; i < DFQ_MAX_SPATIAL; i++)
		p->strides[i] = p->dilations[i] = 1;
	int nsp = 0;
	bool has_kernel, has_strides, has_dil, has_pads;
	dfq_status st;
	if ((st = read_spatial_ints(n, "kernel_shape", 1, p->kernel, &nsp, &has_kernel, err)) ||
	    (st = read_spatial_ints(n, "strides", 1, p->strides, &nsp, &has_strides, err)) ||
	    (st = read_spatial_ints(n, "dilations", 1, p->dilations, &nsp, &has_dil, err)) ||
	    (st = read_spatial_ints(n, "pads", 2, p->pads, &nsp, &has_pads, err)))
		return st;
	p->nspatial = nsp;
	if ((st = ops_attr_int(n, "group", 1, &p->group, err)) != DFQ_OK)
		return st;
	if (p->group < 1)
		return dfq_error_set(err, DFQ_ERR_PARSE,
		                     "Conv node '%s': group %" PRId64 " must be at least 1",
		                     n->name, p->group);
	if ((st = ops_parse_auto_pad(n, &p->auto_pad, err)) != DFQ_OK)
		return st;
	/* all axes: p->nspatial may still be 0 (unknown); unset axes hold the defaults */
	return ops_check_window(n, p, DFQ_MAX_SPATIAL, 0, err);
}

/* Ranks and channel counts of X, W and B agree (unknown dims are let through). */
static dfq_status check_conv_inputs(const struct dfq_node *n, const struct dfq_shape *x,
                                    const struct dfq_shape *w, const struct dfq_shape *b,
                                    struct dfq_error *err)
{
	const struct dfq_shape *all[3] = {x, w, b};
	for (int i = 0; i < 3; i++)
		if (all[i] && all[i]->dtype != DFQ_DTYPE_F32)
			return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
			                     "Conv node '%s': input %d is %s, only float32 is "
			                     "supported",
			                     n->name, i, dfq_dtype_name(all[i]->dtype));
	if (x->ndim >= 0 && w->ndim >= 0 && x->ndim != w->ndim)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
		                     "Conv node '%s': input has rank %d but the weight has rank %d",
		                     n->name, x->ndim, w->ndim);
	int64_t g = n->p.group;
	if (w->ndim >= 2) {
		int64_t m = w->dims[0], cw = w->dims[1];
		if (m >= 0 && m % g != 0)
			return dfq_error_set(err, DFQ_ERR_SHAPE,
			                     "Conv node '%s': %" PRId64 " output channels are not "
			                     "divisible by group %" PRId64,
			                     n->name, m, g);
		if (x->ndim >= 2 && x->dims[1] >= 0 && cw >= 0 && x->dims[1] != cw * g)
			return dfq_error_set(
			    err, DFQ_ERR_SHAPE,
			    "Conv node '%s': input has %" PRId64 " channels but the "
			    "weight expects %" PRId64 " (%" PRId64 " x group %" PRId64 ")",
			    n->name, x->dims[1], cw * g, cw, g);
	}
	if (b) {
		if (b->ndim >= 0 && b->ndim != 1)
			return dfq_error_set(err, DFQ_ERR_SHAPE,
			                     "Conv node '%s': bias must be 1-D, it has rank %d",
			                     n->name, b->ndim);
		if (b->ndim == 1 && w->ndim >= 1 && b->dims[0] >= 0 && w->dims[0] >= 0 &&
		    b->dims[0] != w->dims[0])
			return dfq_error_set(err, DFQ_ERR_SHAPE,
			                     "Conv node '%s': bias has %" PRId64
			                     " values but there are "
			                     "%" PRId64 " output channels",
			                     n->name, b->dims[0], w->dims[0]);
	}
	return DFQ_OK;
}

/* Per-axis kernel size: the attribute when given (it must match W), else W's dims; 0 when
 * neither is known. */
static dfq_status conv_kernel(const struct dfq_node *n, const struct dfq_shape *w, int nsp,
                              int64_t *kernel, struct dfq_error *err)
{
	for (int i = 0; i < nsp; i++) {
		int64_t wk = w->ndim == nsp + 2 ? w->dims[2 + i] : -1;
		int64_t ak = n->p.nspatial ? n->p.kernel[i] : 0;
		if (ak > 0 && wk >= 0 && ak != wk)
			return dfq_error_set(err, DFQ_ERR_SHAPE,
			                     "Conv node '%s': kernel_shape says %" PRId64
			                     " on spatial "
			                     "axis %d but the weight has %" PRId64,
			                     n->name, ak, i, wk);
		kernel[i] = ak > 0 ? ak : (wk >= 0 ? wk : 0);
		if (kernel[i] == 0 && wk == 0)
			return dfq_error_set(err, DFQ_ERR_SHAPE,
			                     "Conv node '%s': the weight has an empty spatial axis",
			                     n->name);
	}
	return DFQ_OK;
}

/* Output spatial sizes (and the resolved pads) for a known spatial rank nsp. */
static dfq_status conv_spatial(const struct dfq_node *n, const struct dfq_shape *x,
                               const struct dfq_shape *w, int nsp, int64_t *pads, int64_t *out_sp,
                               struct dfq_error *err)
{
	int64_t kernel[DFQ_MAX_SPATIAL], in_sp[DFQ_MAX_SPATIAL];
	dfq_status st = conv_kernel(n, w, nsp, kernel, err);
	if (st != DFQ_OK)
		return st;
	for (int i = 0; i < nsp; i++) {
		in_sp[i] = x->ndim == nsp + 2 ? x->dims[2 + i] : -1;
		/* an unknown kernel makes the output size unknown: resolve with a dummy 1 */
		if (kernel[i] == 0) {
			kernel[i] = 1;
			in_sp[i] = -1;
		}
	}
	st = ops_spatial_resolve(&n->p, nsp, in_sp, kernel, false, pads, out_sp, err);
	if (st != DFQ_OK)
		return dfq_error_prefix(err, "Conv node '%s'", n->name);
	return DFQ_OK;
}

dfq_status op_conv_shape(OP_SHAPE_ARGS)
{
	const struct dfq_shape *x = in[0], *w = in[1];
	const struct dfq_shape *b = n->ninputs >= 3 ? in[2] : NULL;
	dfq_status st = check_conv_inputs(n, x, w, b, err);
	if (st != DFQ_OK)
		return st;
	int rank = x->ndim >= 0 ? x->ndim : w->ndim;
	if (rank < 0 && n->p.nspatial > 0)
		rank = n->p.nspatial + 2;
	out->dtype = DFQ_DTYPE_F32;
	out->ndim = rank;
	if (rank < 0)
		return DFQ_OK;
	if (rank < 3)
		return dfq_error_set(
		    err, DFQ_ERR_SHAPE,
		    "Conv node '%s': the input must have rank 3 or more, it has %d", n->name, rank);
	int nsp = rank - 2;
	if (nsp > DFQ_MAX_SPATIAL)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
		                     "Conv node '%s': %d spatial dimensions are not supported",
		                     n->name, nsp);
	int64_t pads[2 * DFQ_MAX_SPATIAL], out_sp[DFQ_MAX_SPATIAL];
	if ((st = conv_spatial(n, x, w, nsp, pads, out_sp, err)) != DFQ_OK)
		return st;
	out->dims[0] = x->ndim == rank ? x->dims[0] : -1;
	out->dims[1] = w->ndim == rank ? w->dims[0] : -1;
	for (int i = 0; i < nsp; i++)
		out->dims[2 + i] = out_sp[i];
	return DFQ_OK;
}

/* The convolution seen as 3-D: 1-D and 2-D problems get leading unit axes (kernel 1,
 * stride 1, no pads), so one loop nest serves every spatial rank. */
struct conv_geom {
	int64_t n, c, m, group, cg, mg; /* batch, in/out channels, per-group counts */
	int64_t in[3], out[3], k[3], s[3], d[3], pb[3];
	const float *x, *w, *b;
	float *y;
};

static void conv_geom_axis(struct conv_geom *g, int ax, int64_t in, int64_t out, int64_t k,
                           int64_t s, int64_t d, int64_t pb)
{
	g->in[ax] = in;
	g->out[ax] = out;
	g->k[ax] = k;
	g->s[ax] = s;
	g->d[ax] = d;
	g->pb[ax] = pb;
}

/* One output value: the double-accumulated dot product of a window with one filter. */
static float conv_point(const struct conv_geom *g, int64_t b, int64_t m, const int64_t *o)
{
	int64_t grp = m / g->mg;
	double acc = g->b ? g->b[m] : 0.0;
	for (int64_t c = 0; c < g->cg; c++) {
		const float *xc =
		    g->x + (b * g->c + grp * g->cg + c) * g->in[0] * g->in[1] * g->in[2];
		const float *wc = g->w + (m * g->cg + c) * g->k[0] * g->k[1] * g->k[2];
		for (int64_t k0 = 0; k0 < g->k[0]; k0++) {
			int64_t i0 = o[0] * g->s[0] - g->pb[0] + k0 * g->d[0];
			if (i0 < 0 || i0 >= g->in[0])
				continue; /* zero padding contributes nothing */
			for (int64_t k1 = 0; k1 < g->k[1]; k1++) {
				int64_t i1 = o[1] * g->s[1] - g->pb[1] + k1 * g->d[1];
				if (i1 < 0 || i1 >= g->in[1])
					continue;
				const float *xr = xc + (i0 * g->in[1] + i1) * g->in[2];
				const float *wr = wc + (k0 * g->k[1] + k1) * g->k[2];
				for (int64_t k2 = 0; k2 < g->k[2]; k2++) {
					int64_t i2 = o[2] * g->s[2] - g->pb[2] + k2 * g->d[2];
					if (i2 >= 0 && i2 < g->in[2])
						acc += (double)xr[i2] * wr[k2];
				}
			}
		}
	}
	return (float)acc;
}

/* Work item = one (batch, output channel) plane. */
static void conv_planes(void *arg, int64_t begin, int64_t end, int tid)
{
	const struct conv_geom *g = arg;
	int64_t plane = g->out[0] * g->out[1] * g->out[2];
	for (int64_t bm = begin; bm < end; bm++) {
		int64_t b = bm / g->m, m = bm % g->m;
		float *y = g->y + bm * plane;
		int64_t o[3];
		for (o[0] = 0; o[0] < g->out[0]; o[0]++)
			for (o[1] = 0; o[1] < g->out[1]; o[1]++)
				for (o[2] = 0; o[2] < g->out[2]; o[2]++)
					*y++ = conv_point(g, b, m, o);
	}
}

dfq_status op_conv_forward(OP_FORWARD_ARGS)
{
	const struct dfq_tensor *x = in[0], *w = in[1];
	const struct dfq_tensor *b = n->ninputs >= 3 ? in[2] : NULL;
	struct dfq_tensor *y = out[0];
	int nsp = x->ndim - 2;
	if (nsp < 1 || nsp > DFQ_MAX_SPATIAL || w->ndim != x->ndim)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
		                     "Conv node '%s': bad input ranks %d and %d", n->name, x->ndim,
		                     w->ndim);
	struct dfq_shape xs, ws, bs;
	dfq_tensor_shape(x, &xs);
	dfq_tensor_shape(w, &ws);
	if (b)
		dfq_tensor_shape(b, &bs);
	/* re-checked here because the kernel indexes by these counts */
	dfq_status st = check_conv_inputs(n, &xs, &ws, b ? &bs : NULL, err);
	if (st != DFQ_OK)
		return st;
	int64_t pads[2 * DFQ_MAX_SPATIAL], out_sp[DFQ_MAX_SPATIAL];
	if ((st = conv_spatial(n, &xs, &ws, nsp, pads, out_sp, err)) != DFQ_OK)
		return st;
	struct conv_geom g = {
	    .n = x->dims[0],
	    .c = x->dims[1],
	    .m = w->dims[0],
	    .group = n->p.group,
	    .x = dfq_tensor_f32(x),
	    .w = dfq_tensor_f32(w),
	    .b = b ? dfq_tensor_f32(b) : NULL,
	    .y = dfq_tensor_f32(y),
	};
	g.cg = g.c / g.group;
	g.mg = g.m / g.group;
	int lead = DFQ_MAX_SPATIAL - nsp;
	for (int ax = 0; ax < lead; ax++)
		conv_geom_axis(&g, ax, 1, 1, 1, 1, 1, 0);
	for (int i = 0; i < nsp; i++)
		conv_geom_axis(&g, lead + i, x->dims[2 + i], out_sp[i], w->dims[2 + i],
		               n->p.strides[i], n->p.dilations[i], pads[i]);
	/* the caller allocated y from shape(); a mismatch is a bug, not bad input */
	if (y->ndim != x->ndim || y->dims[0] != g.n || y->dims[1] != g.m)
		return dfq_error_set(err, DFQ_ERR_INTERNAL,
		                     "Conv node '%s': output tensor has the wrong shape", n->name);
	for (int i = 0; i < nsp; i++)
		if (y->dims[2 + i] != out_sp[i])
			return dfq_error_set(err, DFQ_ERR_INTERNAL,
			                     "Conv node '%s': output tensor has the wrong shape",
			                     n->name);
	dfq_pool_run(ctx ? ctx->pool : NULL, g.n * g.m, 1, conv_planes, &g);
	return DFQ_OK;
}
