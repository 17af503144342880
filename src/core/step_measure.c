/* step_measure.c - QuantMeasure (docs/algorithms.md sec. 3): the data-free ranges as a report,
 * and ranges from data as a step (running mean of per-sample min/max, global min/max,
 * percentiles). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

dfq_status dfq_model_measure_bn(struct dfq_model *m, struct dfq_step_report *rep,
                                struct dfq_error *err)
{
	struct dfq_step_report r;
	dfq_step_report_init(&r);
	dfq_status st = model_refresh(m, err);
	for (int i = 0; i < m->npoints && st == DFQ_OK && rep; i++) {
		const struct dfq_apoint *p = &m->points[i];
		struct dfq_step_row *row = model_report_row(&r, i, err);
		if (!row) {
			st = err ? err->status : DFQ_ERR_NOMEM;
			break;
		}
		row->changed = p->bn.valid;
		if (p->bn.valid) {
			row->before = p->bn.lo;
			row->after = p->bn.hi;
			row->extra = (double)p->bn.hi - p->bn.lo;
		}
		snprintf(row->note, sizeof row->note, "%s '%s'%s", dfq_apoint_kind_name(p->kind),
		         m->g->values[p->vi].name,
		         p->bn.valid ? "" : ": no BN statistics upstream");
	}
	if (st != DFQ_OK) {
		dfq_step_report_free(&r);
		return st;
	}
	model_report_count(&r);
	r.has_stats = m->has_stats;
	snprintf(r.summary, sizeof r.summary,
	         "%d of %d activation tensors have a data-free range (n = %g)%s", r.nchanged,
	         m->npoints, m->n_sigma, m->has_stats ? "" : "; the model has no BN statistics");
	if (rep)
		*rep = r;
	else
		dfq_step_report_free(&r);
	return DFQ_OK;
}

/* --- ranges from data ------------------------------------------------------------- */

/* k-th smallest of x[0..n) (reorders x). */
static float select_kth(float *x, int64_t n, int64_t k)
{
	int64_t lo = 0, hi = n - 1;
	while (lo < hi) {
		float piv = x[lo + (hi - lo) / 2];
		int64_t i = lo, j = hi;
		while (i <= j) {
			while (x[i] < piv)
				i++;
			while (x[j] > piv)
				j--;
			if (i <= j) {
				float t = x[i];
				x[i] = x[j];
				x[j] = t;
				i++;
				j--;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			return x[k];
	}
	return x[k];
}

#define PCT_BINS 4096

/* Bin of x in PCT_BINS equal bins over [lo, lo + PCT_BINS / inv). */
static inline int pct_bin(float x, float lo, float inv)
{
	int b = (int)((x - lo) * inv);
	return b < 0 ? 0 : b >= PCT_BINS ? PCT_BINS - 1 : b;
}

/* The k1-th and k2-th smallest (k1 <= k2) of x[0..n), all finite within
 * [lo, hi]: a histogram locates the bins holding those ranks, then only the
 * values of those bins are sorted out (in scratch, >= n floats). */
static void two_ranks(const float *x, int64_t n, float lo, float hi, int64_t k1, int64_t k2,
                      float *scratch, int64_t *counts, float *v1, float *v2)
{
	if (!(hi > lo)) {
		*v1 = *v2 = lo;
		return;
	}
	float inv = (float)(PCT_BINS / ((double)hi - lo));
	memset(counts, 0, PCT_BINS * sizeof *counts);
	for (int64_t i = 0; i < n; i++)
		counts[pct_bin(x[i], lo, inv)]++;
	int64_t ks[2] = {k1, k2}, below[2] = {0, 0};
	int bins[2];
	for (int r = 0; r < 2; r++) {
		int b = 0;
		while (b < PCT_BINS - 1 && below[r] + counts[b] <= ks[r])
			below[r] += counts[b++];
		bins[r] = b;
	}
	/* one more pass gathers both bins: the first from the front of
	 * scratch, the second from the back */
	int64_t m1 = 0, m2 = 0;
	for (int64_t i = 0; i < n; i++) {
		int b = pct_bin(x[i], lo, inv);
		if (b == bins[0])
			scratch[m1++] = x[i];
		else if (b == bins[1])
			scratch[n - 1 - m2++] = x[i];
	}
	*v1 = m1 > 0 ? select_kth(scratch, m1, k1 - below[0]) : lo;
	if (bins[1] == bins[0])
		*v2 = select_kth(scratch, m1, k2 - below[1]);
	else
		*v2 = m2 > 0 ? select_kth(scratch + n - m2, m2, k2 - below[1]) : hi;
}

/* min and max of x[0..n) in blocks of 8 (vectorised).  A NaN never wins a
 * comparison, so z8 collects x * 0, which is NaN for NaN and Inf: then both
 * results are NaN and the caller's isfinite check reports it. */
static void minmax8(const float *x, int64_t n, float *mn, float *mx)
{
	float l8[8], h8[8], z8[8];
	for (int j = 0; j < 8; j++) {
		l8[j] = INFINITY;
		h8[j] = -INFINITY;
		z8[j] = 0.0f;
	}
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++) {
			l8[j] = x[i + j] < l8[j] ? x[i + j] : l8[j];
			h8[j] = x[i + j] > h8[j] ? x[i + j] : h8[j];
			z8[j] += x[i + j] * 0.0f;
		}
	float l = INFINITY, h = -INFINITY, z = 0.0f;
	for (int j = 0; j < 8; j++) {
		l = l8[j] < l ? l8[j] : l;
		h = h8[j] > h ? h8[j] : h;
		z += z8[j];
	}
	for (; i < n; i++) {
		l = x[i] < l ? x[i] : l;
		h = x[i] > h ? x[i] : h;
		z += x[i] * 0.0f;
	}
	*mn = z != 0.0f ? NAN : l;
	*mx = z != 0.0f ? NAN : h;
}

struct measure_ctx {
	struct dfq_model *m;
	float *scratch; /* owned, for percentiles */
	int64_t cap;
	int64_t counts[PCT_BINS];
};

/* Fold the statistics of tensor t into point p. */
static dfq_status observe(struct measure_ctx *c, struct dfq_apoint *p, const struct dfq_tensor *t,
                          struct dfq_error *err)
{
	const struct dfq_measure_opts *o = &c->m->priv->mopts;
	const float *x = dfq_tensor_f32(t);
	int64_t ns = t->ndim >= 1 && t->dims[0] > 0 ? t->dims[0] : 1;
	int64_t per = t->numel / ns;
	if (t->numel == 0 || per == 0)
		return DFQ_OK;
	double smin = 0.0, smax = 0.0;
	float gmin = INFINITY, gmax = -INFINITY;
	for (int64_t s = 0; s < ns; s++) {
		float mn, mx;
		minmax8(x + s * per, per, &mn, &mx);
		if (!isfinite(mn) || !isfinite(mx))
			return dfq_error_set(err, DFQ_ERR_ARG,
			                     "tensor '%s' holds NaN or Inf values",
			                     c->m->g->values[p->vi].name);
		smin += mn;
		smax += mx;
		gmin = fminf(gmin, mn);
		gmax = fmaxf(gmax, mx);
	}
	smin /= (double)ns;
	smax /= (double)ns;
	if (t->numel > c->cap) {
		float *s = realloc(c->scratch, (size_t)t->numel * sizeof *s);
		if (!s)
			return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory measuring ranges");
		c->scratch = s;
		c->cap = t->numel;
	}
	int64_t n = t->numel;
	int64_t khi = (int64_t)floor(o->percentile / 100.0 * (double)(n - 1));
	int64_t klo = (int64_t)ceil((1.0 - o->percentile / 100.0) * (double)(n - 1));
	khi = khi < 0 ? 0 : khi > n - 1 ? n - 1 : khi;
	klo = klo < 0 ? 0 : klo > khi ? khi : klo;
	float plo, phi;
	two_ranks(x, n, gmin, gmax, klo, khi, c->scratch, c->counts, &plo, &phi);
	if (p->nbatches == 0) {
		p->minmax = (struct dfq_range){true, (float)smin, (float)smax};
		p->global = (struct dfq_range){true, gmin, gmax};
		p->pct = (struct dfq_range){true, plo, phi};
	} else {
		/* the seed's QuantMeasure: running = momentum * running + (1 - momentum) * batch */
		double mo = o->momentum;
		p->minmax.lo = (float)(mo * p->minmax.lo + (1.0 - mo) * smin);
		p->minmax.hi = (float)(mo * p->minmax.hi + (1.0 - mo) * smax);
		p->global.lo = fminf(p->global.lo, gmin);
		p->global.hi = fmaxf(p->global.hi, gmax);
		double nb = (double)p->nbatches;
		p->pct.lo = (float)((p->pct.lo * nb + plo) / (nb + 1.0));
		p->pct.hi = (float)((p->pct.hi * nb + phi) / (nb + 1.0));
	}
	p->nbatches++;
	p->nsamples += ns;
	return DFQ_OK;
}

static dfq_status measure_hook(void *user, const struct dfq_graph *g, int vi, struct dfq_tensor *t,
                               struct dfq_error *err)
{
	struct measure_ctx *c = user;
	int pi = model_point_of(c->m, vi);
	if (pi < 0 || t->dtype != DFQ_DTYPE_F32)
		return DFQ_OK;
	return observe(c, &c->m->points[pi], t, err);
}

/* Run batch x on ex (prepared for FP32) with the measuring hook. */
static dfq_status measure_batch(struct measure_ctx *c, struct dfq_exec *ex,
                                const struct dfq_tensor *x, struct dfq_tensor **outs,
                                struct dfq_error *err)
{
	struct dfq_model *m = c->m;
	if (x->dtype != DFQ_DTYPE_F32)
		return dfq_error_set(err, DFQ_ERR_ARG, "measuring needs float32 batches");
	int pi = model_point_of(m, m->g->inputs[0]);
	dfq_status st = pi >= 0 ? observe(c, &m->points[pi], x, err) : DFQ_OK;
	if (st != DFQ_OK)
		return st;
	struct dfq_tensor *in = (struct dfq_tensor *)x; /* the executor only reads it */
	st = dfq_exec_run(ex, &in, outs, err);
	for (int i = 0; i < m->g->noutputs; i++) {
		dfq_tensor_free(outs[i]);
		outs[i] = NULL;
	}
	return st;
}

/* Forget the data ranges, then measure every batch. */
static dfq_status measure_all(struct dfq_model *m, struct dfq_exec *ex, dfq_batch_fn next,
                              void *user, struct dfq_step_report *r, struct dfq_error *err)
{
	dfq_status st = model_cow_points(m, err);
	if (st != DFQ_OK)
		return st;
	for (int i = 0; i < m->npoints; i++) {
		struct dfq_apoint *p = &m->points[i];
		p->minmax = p->global = p->pct = (struct dfq_range){0};
		p->nbatches = p->nsamples = 0;
	}
	struct measure_ctx *c = calloc(1, sizeof *c);
	struct dfq_tensor **outs =
	    calloc((size_t)(m->g->noutputs ? m->g->noutputs : 1), sizeof *outs);
	if (!c || !outs)
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory measuring ranges");
	if (st == DFQ_OK) {
		c->m = m;
		st = dfq_model_exec_prepare(m, ex, DFQ_RUN_FP32, err);
	}
	if (st == DFQ_OK)
		dfq_exec_set_hook(ex, measure_hook, c);
	int64_t index = 0;
	for (; st == DFQ_OK; index++) {
		const struct dfq_tensor *x = NULL;
		st = next(user, index, &x, err);
		if (st != DFQ_OK || !x)
			break;
		st = measure_batch(c, ex, x, outs, err);
		r->samples += x->ndim >= 1 ? x->dims[0] : 1;
	}
	if (st == DFQ_OK && index == 0)
		st = dfq_error_set(err, DFQ_ERR_ARG, "measuring ranges from data got no batches");
	model_exec_reset(ex);
	if (c)
		free(c->scratch);
	free(c);
	free(outs);
	return st;
}

dfq_status dfq_model_measure_data(struct dfq_model *m, struct dfq_exec *ex,
                                  const struct dfq_measure_opts *opts, dfq_batch_fn next,
                                  void *user, struct dfq_step_report *rep, struct dfq_error *err)
{
	struct dfq_measure_opts o;
	if (opts)
		o = *opts;
	else
		dfq_measure_opts_default(&o);
	if (!(o.momentum >= 0.0 && o.momentum < 1.0))
		return dfq_error_set(err, DFQ_ERR_ARG, "momentum must be in [0, 1), not %g",
		                     o.momentum);
	if (!(o.percentile > 50.0 && o.percentile <= 100.0))
		return dfq_error_set(err, DFQ_ERR_ARG, "percentile must be in (50, 100], not %g",
		                     o.percentile);
	if (m->g->ninputs != 1)
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "measuring from data needs a model with one input (this one "
		                     "has %d)",
		                     m->g->ninputs);
	if (!next)
		return dfq_error_set(err, DFQ_ERR_ARG, "measuring from data needs batches");
	struct model_step s;
	struct dfq_step_report r;
	dfq_status st = model_step_open(m, &s, &r, 0, err);
	if (st != DFQ_OK)
		return st;
	m->priv->mopts = o;
	m->data_stale = false;
	/* corrections measured on data saw the grids of the old ranges */
	st = model_drop_empirical(m, &r, err);
	if (st == DFQ_OK)
		st = measure_all(m, ex, next, user, &r, err);
	st = model_step_finish(m, &s, st, "measure data", &r, err);
	if (st != DFQ_OK)
		return st;
	snprintf(r.summary, sizeof r.summary, "measured %d activation tensors on %lld samples",
	         m->npoints, (long long)r.samples);
	model_report_hand(&r, rep);
	return DFQ_OK;
}
