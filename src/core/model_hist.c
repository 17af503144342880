/* model_hist.c - the quantization error of a layer's weights or of its output activations on a
 * batch, in units of the grid step, as a histogram (docs/algorithms.md sec. 1-3).  A query: it
 * changes nothing in the model. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

void dfq_hist_opts_default(struct dfq_hist_opts *o)
{
	o->nbins = 20;
	o->lo = -0.5;
	o->hi = 0.5;
}

void dfq_hist_free(struct dfq_hist *h)
{
	if (!h)
		return;
	free(h->counts);
	memset(h, 0, sizeof *h);
}

/* --- the accumulator ------------------------------------------------------------ */

struct hacc {
	struct dfq_hist *h;
	double inv_w;     /* bins per grid step */
	double sum, sum2; /* of the error in steps */
	double sx2, se2;  /* of x^2 and of the error^2 in x's units */
	double ssum;      /* of the grids' steps */
	int64_t sgrids;   /* grids seen (for the mean step) */
};

/* Zero h, check o and give h its bins. */
static dfq_status hist_begin(struct dfq_hist *h, const struct dfq_hist_opts *o, struct hacc *a,
                             struct dfq_error *err)
{
	struct dfq_hist_opts def;
	if (!o) {
		dfq_hist_opts_default(&def);
		o = &def;
	}
	memset(h, 0, sizeof *h);
	memset(a, 0, sizeof *a);
	h->layer = -1;
	if (o->nbins < 1 || o->nbins > DFQ_HIST_BINS_MAX)
		return dfq_error_set(err, DFQ_ERR_ARG, "a histogram has 1 to %d bins, not %d",
		                     DFQ_HIST_BINS_MAX, o->nbins);
	if (!isfinite(o->lo) || !isfinite(o->hi) || !(o->lo < o->hi))
		return dfq_error_set(
		    err, DFQ_ERR_ARG,
		    "a histogram's range must be finite with its low end below its "
		    "high end, not [%g, %g]",
		    o->lo, o->hi);
	h->counts = calloc((size_t)o->nbins, sizeof *h->counts);
	if (!h->counts)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory for a histogram");
	h->nbins = o->nbins;
	h->lo = o->lo;
	h->hi = o->hi;
	h->step_min = INFINITY;
	h->step_max = -INFINITY;
	a->h = h;
	a->inv_w = o->nbins / (o->hi - o->lo);
	return DFQ_OK;
}

/* A grid the values use: its step into the step figures. */
static void hist_grid(struct hacc *a, const struct dfq_qparams *g)
{
	struct dfq_hist *h = a->h;
	double s = g->scale;
	h->step_min = s < h->step_min ? s : h->step_min;
	h->step_max = s > h->step_max ? s : h->step_max;
	a->ssum += s;
	a->sgrids++;
}

/* One value x, quantized to xq on grid g.  False when either is not finite. */
static inline bool hist_add(struct hacc *a, float x, float xq, const struct dfq_qparams *g)
{
	struct dfq_hist *h = a->h;
	if (!isfinite(x) || !isfinite(xq))
		return false;
	double s = g->scale;
	double d = (double)xq - (double)x;
	double e = d / s;
	/* the integer code before the clamp (algorithms.md sec. 1) */
	double code = nearbyint((double)x / s) + g->zero_point;
	if (code < g->qmin || code > g->qmax)
		h->clipped++;
	else
		e = e < -0.5 ? -0.5 : e > 0.5 ? 0.5 : e;
	if (e < h->lo) {
		h->below++;
	} else if (e > h->hi) {
		h->above++;
	} else {
		int b = (int)((e - h->lo) * a->inv_w);
		h->counts[b < 0 ? 0 : b >= h->nbins ? h->nbins - 1 : b]++;
	}
	h->exact += d == 0.0;
	double ae = fabs(e);
	h->max_abs = ae > h->max_abs ? ae : h->max_abs;
	a->sum += e;
	a->sum2 += e * e;
	a->sx2 += (double)x * x;
	a->se2 += d * d;
	h->n++;
	return true;
}

/* The figures from the sums; the grid (the first one) described. */
static void hist_end(struct hacc *a, const struct dfq_qparams *g0)
{
	struct dfq_hist *h = a->h;
	double n = h->n > 0 ? (double)h->n : 1.0;
	h->mean = a->sum / n;
	h->rms = sqrt(a->sum2 / n);
	h->sqnr_db = a->se2 > 0.0 ? 10.0 * log10(a->sx2 / a->se2) : INFINITY;
	h->step = a->sgrids > 0 ? a->ssum / (double)a->sgrids : 0.0;
	if (a->sgrids == 0)
		h->step_min = h->step_max = 0.0;
	if (g0) {
		h->grid = *g0;
		h->bits = g0->bits;
		h->scheme = g0->scheme;
		/* in float, as the grid computes its end values */
		h->grid_lo = (double)((float)(g0->qmin - g0->zero_point) * g0->scale);
		h->grid_hi = (double)((float)(g0->qmax - g0->zero_point) * g0->scale);
	}
}

static dfq_status not_finite(struct dfq_hist *h, struct dfq_error *err, const char *what)
{
	dfq_hist_free(h);
	return dfq_error_set(err, DFQ_ERR_ARG, "%s holds NaN or Inf values", what);
}

dfq_status dfq_qerr_hist(const float *x, const float *xq, int64_t n,
                         const struct dfq_qparams *grids, int ngrids, const struct dfq_hist_opts *o,
                         struct dfq_hist *h, struct dfq_error *err)
{
	struct hacc a;
	dfq_status st = hist_begin(h, o, &a, err);
	if (st != DFQ_OK)
		return st;
	if (ngrids < 1 || n < 0 || n % ngrids != 0) {
		dfq_hist_free(h);
		return dfq_error_set(err, DFQ_ERR_ARG, "%lld values do not split into %d grids",
		                     (long long)n, ngrids);
	}
	int64_t per = n / ngrids;
	for (int gi = 0; gi < ngrids; gi++) {
		const struct dfq_qparams *g = &grids[gi];
		if (!(g->scale > 0.0f)) {
			dfq_hist_free(h);
			return dfq_error_set(err, DFQ_ERR_ARG, "grid %d has no positive step", gi);
		}
		hist_grid(&a, g);
		for (int64_t i = gi * per; i < (gi + 1) * per; i++)
			if (!hist_add(&a, x[i], xq ? xq[i] : dfq_fake_quant1(x[i], g), g))
				return not_finite(h, err, "the values");
	}
	hist_end(&a, &grids[0]);
	return DFQ_OK;
}

/* --- weights ------------------------------------------------------------------- */

dfq_status dfq_model_weight_hist(const struct dfq_model *m, int li, const struct dfq_qconfig *q,
                                 const struct dfq_hist_opts *o, struct dfq_hist *h,
                                 struct dfq_error *err)
{
	memset(h, 0, sizeof *h);
	const struct dfq_qconfig *cfg;
	dfq_status st = model_layer_qconfig(m, li, q, &cfg, err);
	if (st != DFQ_OK)
		return st;
	const struct dfq_layer *L = &m->layers[li];
	const struct dfq_tensor *w = m->g->values[L->w_vi].init;
	const struct dfq_tensor *wq = L->wq;
	const struct dfq_qparams *grids = L->wqp;
	int ngrids = L->nwqp;
	struct dfq_tensor *tmp = NULL;
	struct dfq_qparams *tgrids = NULL;
	if (q || !wq || !grids || ngrids < 1) {
		/* what cfg does to the current weights */
		tmp = dfq_tensor_clone(w, err);
		tgrids = calloc((size_t)(L->cout > 0 ? L->cout : 1), sizeof *tgrids);
		if (!tmp || !tgrids)
			st =
			    tmp ? dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory for a histogram")
			        : (err ? err->status : DFQ_ERR_NOMEM);
		if (st == DFQ_OK)
			st = model_quantize_w(L, w, cfg, tmp, tgrids, err);
		wq = tmp;
		grids = tgrids;
		ngrids = cfg->per_channel ? (int)L->cout : 1;
	}
	struct hacc a;
	if (st == DFQ_OK)
		st = hist_begin(h, o, &a, err);
	if (st == DFQ_OK && ngrids != 1 && ngrids != L->cout)
		st = dfq_error_set(err, DFQ_ERR_INTERNAL,
		                   "layer '%s' has %d weight grids for %lld "
		                   "output channels",
		                   L->name, ngrids, (long long)L->cout);
	if (st == DFQ_OK) {
		const float *x = dfq_tensor_f32(w), *xq = dfq_tensor_f32(wq);
		int64_t cin_g = L->cin / L->group;
		for (int gi = 0; gi < ngrids; gi++)
			hist_grid(&a, &grids[gi]);
		for (int64_t oc = 0; oc < L->cout && st == DFQ_OK; oc++) {
			const struct dfq_qparams *g = &grids[ngrids > 1 ? oc : 0];
			for (int64_t i = 0; i < cin_g && st == DFQ_OK; i++) {
				int64_t base = oc * L->w_ostride + i * L->w_istride;
				for (int64_t k = 0; k < L->ksize; k++)
					if (!hist_add(&a, x[base + k], xq[base + k], g)) {
						st = dfq_error_set(
						    err, DFQ_ERR_ARG,
						    "layer '%s''s weights hold NaN or "
						    "Inf values",
						    L->name);
						break;
					}
			}
		}
	}
	if (st == DFQ_OK) {
		hist_end(&a, &grids[0]);
		h->kind = DFQ_HIST_WEIGHTS;
		h->layer = li;
		h->q = *cfg;
		h->per_channel = ngrids > 1 || cfg->per_channel;
		h->ngrids = ngrids;
	} else {
		dfq_hist_free(h);
	}
	dfq_tensor_free(tmp);
	free(tgrids);
	return st;
}

/* --- activations --------------------------------------------------------------- */

struct act_state {
	struct hacc *a;
	int vi;                      /* the layer's output */
	const struct dfq_qparams *g; /* its grid */
	struct model_hook_ctx *ctx;
	bool seen, bad;
};

static dfq_status act_record(void *user, const struct dfq_graph *g, int vi, struct dfq_tensor *t,
                             struct dfq_error *err)
{
	struct act_state *s = user;
	if (vi != s->vi || t->dtype != DFQ_DTYPE_F32)
		return DFQ_OK;
	const float *y = dfq_tensor_f32(t);
	for (int64_t i = 0; i < t->numel; i++)
		if (!hist_add(s->a, y[i], dfq_fake_quant1(y[i], s->g), s->g)) {
			s->bad = true;
			return dfq_error_set(err, DFQ_ERR_ARG,
			                     "tensor '%s' holds NaN or Inf values",
			                     g->values[vi].name);
		}
	s->seen = true;
	s->ctx->stop = true; /* nothing after this output matters */
	return DFQ_OK;
}

/* Why layer L's output has no grid, or NULL when it has one. */
static const char *no_grid(const struct dfq_model *m, const struct dfq_layer *L,
                           const struct dfq_apoint *p)
{
	if (!L->quantized)
		return "is not quantized, so its output has no activation grid";
	if (L->q.abits <= 0)
		return "keeps its output activations float (abits 0): they have no grid";
	if (!p)
		return "has no activation point at its output";
	if (!p->enabled)
		return "has no range for its output activations, so they stay float";
	return NULL;
}

dfq_status dfq_model_act_hist(struct dfq_model *m, struct dfq_exec *ex, int li,
                              const struct dfq_tensor *x, const struct dfq_hist_opts *o,
                              struct dfq_hist *h, struct dfq_error *err)
{
	memset(h, 0, sizeof *h);
	if (li < 0 || li >= m->nlayers)
		return dfq_error_set(err, DFQ_ERR_ARG, "no layer %d (the model has %d)", li,
		                     m->nlayers);
	const struct dfq_layer *L = &m->layers[li];
	int pi = model_point_of(m, L->out_vi);
	const struct dfq_apoint *p = pi >= 0 ? &m->points[pi] : NULL;
	const char *why = no_grid(m, L, p);
	if (why) {
		dfq_error_set(err, DFQ_ERR_ARG, "layer '%s' %s", L->name, why);
		if (p && L->quantized && L->q.abits > 0)
			dfq_error_remedy(err, DFQ_REMEDY_DATA);
		return DFQ_ERR_ARG;
	}
	const struct dfq_graph *g = m->g;
	if (g->ninputs != 1)
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "a data pass needs a model with one input; this one has %d",
		                     g->ninputs);
	if (!x || x->dtype != DFQ_DTYPE_F32 || x->ndim < 1)
		return dfq_error_set(err, DFQ_ERR_ARG, "the batch must be a float32 tensor");
	struct hacc a;
	dfq_status st = hist_begin(h, o, &a, err);
	if (st != DFQ_OK)
		return st;
	struct act_state s = {.a = &a, .vi = L->out_vi, .g = &p->qp};
	struct dfq_tensor *own = NULL;
	struct dfq_tensor **outs = calloc((size_t)(g->noutputs ? g->noutputs : 1), sizeof *outs);
	if (!outs)
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory for a histogram");
	if (st == DFQ_OK)
		st = dfq_model_exec_prepare(m, ex, DFQ_RUN_QUANT, err);
	if (st == DFQ_OK) {
		s.ctx = model_hook_ctx_for(m, ex, err);
		if (!s.ctx)
			st = err ? err->status : DFQ_ERR_NOMEM;
	}
	struct dfq_tensor *in = (struct dfq_tensor *)x; /* the executor only reads it */
	if (st == DFQ_OK) {
		/* QUANT mode: the input quantizer runs outside the hook */
		int ip = model_point_of(m, g->inputs[0]);
		if (ip >= 0 && m->points[ip].enabled) {
			own = dfq_tensor_clone(x, err);
			if (!own)
				st = err ? err->status : DFQ_ERR_NOMEM;
			else
				dfq_fake_quant(dfq_tensor_f32(own), own->numel, &m->points[ip].qp);
			in = own;
		}
	}
	if (st == DFQ_OK) {
		s.ctx->extra = act_record;
		s.ctx->extra_user = &s;
		s.ctx->stop = false;
		dfq_exec_set_hook(ex, model_hook, s.ctx);
		struct dfq_error run_err;
		dfq_error_clear(&run_err);
		st = dfq_exec_run(ex, &in, outs, &run_err);
		for (int i = 0; i < g->noutputs; i++)
			dfq_tensor_free(outs[i]);
		if (st != DFQ_OK && s.seen && s.ctx->stop)
			st = DFQ_OK; /* stopped on purpose after the layer's output */
		else if (st != DFQ_OK && err)
			*err = run_err;
		s.ctx->extra = NULL;
		s.ctx->extra_user = NULL;
		s.ctx->stop = false;
		if (st == DFQ_OK && !s.seen)
			st = dfq_error_set(err, DFQ_ERR_INTERNAL,
			                   "layer '%s': its output was not seen while running",
			                   L->name);
	}
	model_exec_reset(ex);
	dfq_tensor_free(own);
	free(outs);
	if (st != DFQ_OK) {
		dfq_hist_free(h);
		return st;
	}
	hist_grid(&a, &p->qp);
	hist_end(&a, &p->qp);
	h->kind = DFQ_HIST_ACT;
	h->layer = li;
	h->ngrids = 1;
	h->samples = x->dims[0];
	return DFQ_OK;
}
