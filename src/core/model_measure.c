/* model_measure.c - QuantMeasure: data-free ranges from BN statistics, ranges from data, run-time
 * grids. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

void dfq_measure_opts_default(struct dfq_measure_opts *o)
{
	o->momentum = 0.1;
	o->percentile = 99.99;
}

/* --- the clipped normal distribution ----------------------------------------- */

static double std_pdf(double x)
{
	return exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
}

static double std_cdf(double x)
{
	return 0.5 * erfc(-x / M_SQRT2);
}

/*
 * X ~ N(mu, sd^2), Y = clamp(X, a, b).  With z = (x - mu) / sd, al = (a - mu) / sd,
 * be = (b - mu) / sd and P = Phi(be) - Phi(al) the mass left unclipped:
 *   E[Y]   = a Phi(al) + b (1 - Phi(be)) + mu P + sd (phi(al) - phi(be))
 *   E[Y^2] = a^2 Phi(al) + b^2 (1 - Phi(be)) + mu^2 P + 2 mu sd (phi(al) - phi(be))
 *            + sd^2 (P + al phi(al) - be phi(be))
 * (the last from the integral of z^2 phi(z), which is Phi(z) - z phi(z)).
 * An infinite bound contributes nothing: its mass and its phi are 0.
 */
void model_clipped_normal(double mu, double sd, double a, double b, double *mean, double *var)
{
	sd = fabs(sd);
	if (!(sd > 0.0)) {
		double y = mu < a ? a : mu > b ? b : mu;
		*mean = y;
		*var = 0.0;
		return;
	}
	double al = (a - mu) / sd, be = (b - mu) / sd;
	double pa = isinf(a) ? 0.0 : std_cdf(al);
	double pb = isinf(b) ? 0.0 : 1.0 - std_cdf(be);
	double fa = isinf(a) ? 0.0 : std_pdf(al);
	double fb = isinf(b) ? 0.0 : std_pdf(be);
	double afa = isinf(a) ? 0.0 : al * fa;
	double bfb = isinf(b) ? 0.0 : be * fb;
	double p = 1.0 - pa - pb;
	double e1 = (pa > 0.0 ? a * pa : 0.0) + (pb > 0.0 ? b * pb : 0.0) + mu * p + sd * (fa - fb);
	double e2 = (pa > 0.0 ? a * a * pa : 0.0) + (pb > 0.0 ? b * b * pb : 0.0) + mu * mu * p +
	            2.0 * mu * sd * (fa - fb) + sd * sd * (p + afa - bfb);
	*mean = e1;
	double v = e2 - e1 * e1;
	*var = v > 0.0 ? v : 0.0;
}

/* --- data-free propagation ------------------------------------------------------ */

void model_vdesc_free(struct vdesc *d, int n)
{
	if (!d)
		return;
	for (int i = 0; i < n; i++) {
		free(d[i].mean);
		free(d[i].var);
	}
	free(d);
}

static bool vdesc_alloc(struct vdesc *v, int64_t c)
{
	v->mean = malloc((size_t)(c ? c : 1) * sizeof *v->mean);
	v->var = malloc((size_t)(c ? c : 1) * sizeof *v->var);
	v->c = c;
	return v->mean && v->var;
}

/* lo/hi = min/max over channels of mean -+ n sd. */
static void rule_range(struct vdesc *v, double n)
{
	double lo = INFINITY, hi = -INFINITY;
	for (int64_t c = 0; c < v->c; c++) {
		double sd = sqrt(v->var[c]);
		lo = fmin(lo, v->mean[c] - n * sd);
		hi = fmax(hi, v->mean[c] + n * sd);
	}
	v->range.valid = v->c > 0 && isfinite(lo) && isfinite(hi);
	v->range.lo = (float)lo;
	v->range.hi = (float)hi;
}

static bool copy_desc(struct vdesc *d, const struct vdesc *s)
{
	d->range = s->range;
	if (!s->valid)
		return true;
	if (!vdesc_alloc(d, s->c))
		return false;
	memcpy(d->mean, s->mean, (size_t)s->c * sizeof *d->mean);
	memcpy(d->var, s->var, (size_t)s->c * sizeof *d->var);
	d->valid = true;
	return true;
}

/* Constant bound of a Clip node (attribute or input form); NAN if not constant. */
static float clip_bound(const struct dfq_graph *g, const struct dfq_node *n, int slot, float def)
{
	if (slot >= n->ninputs || n->inputs[slot] < 0)
		return def;
	const struct dfq_tensor *t = g->values[n->inputs[slot]].init;
	if (!t || t->dtype != DFQ_DTYPE_F32 || t->numel != 1)
		return NAN;
	return dfq_tensor_f32(t)[0];
}

static float clampf(float x, float a, float b)
{
	return x < a ? a : x > b ? b : x;
}

/* Relu / Clip: the clipped normal per channel; the range clipped. */
static bool desc_clip(struct vdesc *d, const struct vdesc *s, double a, double b)
{
	if (s->range.valid) {
		d->range.valid = true;
		d->range.lo = clampf(s->range.lo, (float)a, (float)b);
		d->range.hi = clampf(s->range.hi, (float)a, (float)b);
	}
	if (!s->valid)
		return true;
	if (!vdesc_alloc(d, s->c))
		return false;
	for (int64_t c = 0; c < s->c; c++)
		model_clipped_normal(s->mean[c], sqrt(s->var[c]), a, b, &d->mean[c], &d->var[c]);
	d->valid = true;
	return true;
}

/* Add of two independent Gaussians per channel: means and variances add. */
static bool desc_add(struct vdesc *d, const struct vdesc *x, const struct vdesc *y, double n)
{
	if (!x->valid || !y->valid || x->c != y->c)
		return true;
	if (!vdesc_alloc(d, x->c))
		return false;
	for (int64_t c = 0; c < x->c; c++) {
		d->mean[c] = x->mean[c] + y->mean[c];
		d->var[c] = x->var[c] + y->var[c];
	}
	d->valid = true;
	rule_range(d, n);
	return true;
}

/* Concat along channels: descriptors concatenate, ranges unite. */
static bool desc_concat(const struct dfq_graph *g, const struct dfq_node *n, struct vdesc *d,
                        const struct vdesc *all)
{
	int rank = g->values[n->outputs[0]].shape.ndim;
	int64_t axis = n->p.axis < 0 && rank > 0 ? n->p.axis + rank : n->p.axis;
	bool valid = axis == 1, rvalid = true;
	int64_t c = 0;
	float lo = INFINITY, hi = -INFINITY;
	for (int i = 0; i < n->ninputs; i++) {
		const struct vdesc *s = n->inputs[i] >= 0 ? &all[n->inputs[i]] : NULL;
		if (!s || !s->valid)
			valid = false;
		else
			c += s->c;
		if (!s || !s->range.valid) {
			rvalid = false;
		} else {
			lo = fminf(lo, s->range.lo);
			hi = fmaxf(hi, s->range.hi);
		}
	}
	d->range = (struct dfq_range){.valid = rvalid && n->ninputs > 0, .lo = lo, .hi = hi};
	if (!valid)
		return true;
	if (!vdesc_alloc(d, c))
		return false;
	int64_t at = 0;
	for (int i = 0; i < n->ninputs; i++) {
		const struct vdesc *s = &all[n->inputs[i]];
		memcpy(d->mean + at, s->mean, (size_t)s->c * sizeof *d->mean);
		memcpy(d->var + at, s->var, (size_t)s->c * sizeof *d->var);
		at += s->c;
	}
	d->valid = true;
	return true;
}

/* Layer linear output: N(beta, gamma^2) per channel. */
static bool desc_layer(struct vdesc *d, const struct dfq_layer *L, double n)
{
	if (!vdesc_alloc(d, L->cout))
		return false;
	for (int64_t c = 0; c < L->cout; c++) {
		d->mean[c] = L->beta[c];
		d->var[c] = (double)L->gamma[c] * L->gamma[c];
	}
	d->valid = true;
	rule_range(d, n);
	return true;
}

static bool is_runtime(const struct dfq_graph *g, int vi)
{
	return vi >= 0 && !g->values[vi].init;
}

static bool node_desc(const struct dfq_model *m, const struct dfq_node *n, struct vdesc *all)
{
	const struct dfq_graph *g = m->g;
	struct vdesc *d = &all[n->outputs[0]];
	const struct vdesc *x = n->inputs[0] >= 0 ? &all[n->inputs[0]] : NULL;
	switch (n->op) {
	case DFQ_OP_RELU:
		return desc_clip(d, x, 0.0, INFINITY);
	case DFQ_OP_CLIP: {
		float a = clip_bound(g, n, 1, n->p.clip_min),
		      b = clip_bound(g, n, 2, n->p.clip_max);
		if (isnan(a) || isnan(b))
			return true;
		return desc_clip(d, x, a <= -FLT_MAX ? -INFINITY : a, b >= FLT_MAX ? INFINITY : b);
	}
	case DFQ_OP_ADD:
		if (n->ninputs != 2 || !is_runtime(g, n->inputs[0]) || !is_runtime(g, n->inputs[1]))
			return true;
		return desc_add(d, x, &all[n->inputs[1]], m->n_sigma);
	case DFQ_OP_CONCAT:
		return desc_concat(g, n, d, all);
	case DFQ_OP_MAXPOOL:
	case DFQ_OP_AVGPOOL:
	case DFQ_OP_GLOBALAVGPOOL:
	case DFQ_OP_FLATTEN:
	case DFQ_OP_RESHAPE:
	case DFQ_OP_SQUEEZE:
	case DFQ_OP_UNSQUEEZE:
	case DFQ_OP_IDENTITY:
	case DFQ_OP_DROPOUT:
	case DFQ_OP_PAD:
		/* channels pass through (pools: the mean is kept, the input's
		 * range bounds the output's) */
		return copy_desc(d, x);
	default:
		return true;
	}
}

dfq_status model_vdesc_compute(const struct dfq_model *m, struct vdesc **out, struct dfq_error *err)
{
	const struct dfq_graph *g = m->g;
	struct vdesc *d = calloc((size_t)(g->nvalues ? g->nvalues : 1), sizeof *d);
	int *lin = malloc((size_t)(g->nvalues ? g->nvalues : 1) * sizeof *lin);
	if (!d || !lin) {
		free(d);
		free(lin);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory propagating BN statistics");
	}
	for (int vi = 0; vi < g->nvalues; vi++)
		lin[vi] = -1;
	for (int li = 0; li < m->nlayers; li++)
		if (m->layers[li].has_stats)
			lin[m->layers[li].lin_vi] = li;
	for (int i = 0; i < g->ninputs && i < m->priv->ngiven; i++)
		d[g->inputs[i]].range = m->priv->given[i];
	bool ok = true;
	for (int ni = 0; ni < g->nnodes && ok; ni++) {
		const struct dfq_node *n = &g->nodes[ni];
		if (n->noutputs < 1 || n->outputs[0] < 0 || n->ninputs < 1)
			continue;
		int li = lin[n->outputs[0]];
		if (li >= 0)
			ok = desc_layer(&d[n->outputs[0]], &m->layers[li], m->n_sigma);
		else
			ok = node_desc(m, n, d);
	}
	free(lin);
	if (!ok) {
		model_vdesc_free(d, g->nvalues);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory propagating BN statistics");
	}
	*out = d;
	return DFQ_OK;
}

/* --- run-time grids --------------------------------------------------------- */

static const struct dfq_range *range_of(const struct dfq_apoint *p, dfq_range_src s)
{
	switch (s) {
	case DFQ_RANGE_BN:
		return &p->bn;
	case DFQ_RANGE_MINMAX:
		return &p->minmax;
	case DFQ_RANGE_GLOBAL:
		return &p->global;
	case DFQ_RANGE_PERCENTILE:
		return &p->pct;
	case DFQ_RANGE_GIVEN:
		return &p->given;
	case DFQ_RANGE_NONE:
		break;
	}
	return NULL;
}

/* The chosen source, else the given range, data min/max, BN. */
static dfq_range_src resolve_src(const struct dfq_apoint *p, dfq_range_src want)
{
	const dfq_range_src order[] = {want, DFQ_RANGE_GIVEN, DFQ_RANGE_MINMAX, DFQ_RANGE_BN};
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
		const struct dfq_range *r = range_of(p, order[i]);
		if (r && r->valid)
			return order[i];
	}
	return DFQ_RANGE_NONE;
}

static void point_grid(const struct dfq_model *m, struct dfq_apoint *p)
{
	int bits = 0;
	dfq_qscheme scheme = m->aux_q.scheme;
	if (p->kind == DFQ_APOINT_LAYER) {
		const struct dfq_layer *L = &m->layers[p->layer];
		if (L->quantized) {
			bits = L->q.abits;
			scheme = L->q.scheme;
		}
	} else if (m->aux_enabled) {
		bits = m->aux_q.abits;
	}
	p->used = resolve_src(p, m->range_src);
	p->bits = bits;
	p->enabled = false;
	if (bits <= 0 || p->used == DFQ_RANGE_NONE)
		return;
	const struct dfq_range *r = range_of(p, p->used);
	p->enabled = dfq_qparams_make(bits, scheme, r->lo, r->hi, &p->qp, NULL) == DFQ_OK;
}

dfq_status model_refresh(struct dfq_model *m, struct dfq_error *err)
{
	struct vdesc *d;
	dfq_status st = model_vdesc_compute(m, &d, err);
	if (st != DFQ_OK)
		return st;
	for (int i = 0; i < m->npoints; i++) {
		struct dfq_apoint *p = &m->points[i];
		p->bn = p->kind == DFQ_APOINT_INPUT ? (struct dfq_range){0} : d[p->vi].range;
		p->given = (struct dfq_range){0};
		for (int k = 0; k < m->g->ninputs && k < m->priv->ngiven; k++)
			if (m->g->inputs[k] == p->vi)
				p->given = m->priv->given[k];
		point_grid(m, p);
	}
	model_vdesc_free(d, m->g->nvalues);
	return DFQ_OK;
}

/* --- settings ------------------------------------------------------------------ */

dfq_status dfq_model_set_range_source(struct dfq_model *m, dfq_range_src src, struct dfq_error *err)
{
	if (src != DFQ_RANGE_BN && src != DFQ_RANGE_MINMAX && src != DFQ_RANGE_GLOBAL &&
	    src != DFQ_RANGE_PERCENTILE)
		return dfq_error_set(
		    err, DFQ_ERR_ARG,
		    "activation ranges come from bn, minmax, global or percentile");
	dfq_range_src old = m->range_src;
	m->range_src = src;
	dfq_status st = model_refresh(m, err);
	if (st != DFQ_OK)
		m->range_src = old;
	return st;
}

dfq_status dfq_model_set_n_sigma(struct dfq_model *m, double n, struct dfq_error *err)
{
	if (!(n > 0.0) || !isfinite(n))
		return dfq_error_set(err, DFQ_ERR_ARG, "n-std must be a positive number, not %g",
		                     n);
	double old = m->n_sigma;
	m->n_sigma = n;
	dfq_status st = model_refresh(m, err);
	if (st != DFQ_OK) {
		m->n_sigma = old;
		model_refresh(m, NULL);
	}
	return st;
}

dfq_status dfq_model_set_input_range(struct dfq_model *m, int input, float lo, float hi,
                                     struct dfq_error *err)
{
	if (input < 0 || input >= m->priv->ngiven)
		return dfq_error_set(err, DFQ_ERR_ARG, "the model has no input %d (it has %d)",
		                     input, m->priv->ngiven);
	if (!isfinite(lo) || !isfinite(hi) || lo > hi)
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "input range [%g, %g] must be finite with lo <= hi",
		                     (double)lo, (double)hi);
	struct dfq_range old = m->priv->given[input];
	m->priv->given[input] = (struct dfq_range){.valid = true, .lo = lo, .hi = hi};
	dfq_status st = model_refresh(m, err);
	if (st != DFQ_OK)
		m->priv->given[input] = old;
	return st;
}

dfq_status dfq_model_clear_input_range(struct dfq_model *m, int input, struct dfq_error *err)
{
	if (input < 0 || input >= m->priv->ngiven)
		return dfq_error_set(err, DFQ_ERR_ARG, "the model has no input %d (it has %d)",
		                     input, m->priv->ngiven);
	if (!m->priv->given[input].valid)
		return DFQ_OK;
	struct dfq_range old = m->priv->given[input];
	m->priv->given[input] = (struct dfq_range){0};
	dfq_status st = model_refresh(m, err);
	if (st != DFQ_OK)
		m->priv->given[input] = old;
	return st;
}

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
	         m->npoints, m->n_sigma,
	         m->has_stats ? "" : "; the model has no BN statistics: measure ranges from data");
	if (rep)
		*rep = r;
	else
		dfq_step_report_free(&r);
	return DFQ_OK;
}

/* --- ranges from data ------------------------------------------------------------- */

dfq_status dfq_model_measure_data_begin(struct dfq_model *m, const struct dfq_measure_opts *opts,
                                        struct dfq_error *err)
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
	m->priv->mopts = o;
	for (int i = 0; i < m->npoints; i++) {
		struct dfq_apoint *p = &m->points[i];
		p->minmax = p->global = p->pct = (struct dfq_range){0};
		p->nbatches = p->nsamples = 0;
	}
	m->data_stale = false;
	return model_refresh(m, err);
}

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
	int pi = vi < c->m->priv->npov ? c->m->priv->point_of_value[vi] : -1;
	if (pi < 0 || t->dtype != DFQ_DTYPE_F32)
		return DFQ_OK;
	return observe(c, &c->m->points[pi], t, err);
}

dfq_status dfq_model_measure_data_batch(struct dfq_model *m, struct dfq_exec *ex,
                                        const struct dfq_tensor *x, struct dfq_error *err)
{
	if (m->g->ninputs != 1)
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "measuring from data needs a model with one input (this one "
		                     "has %d)",
		                     m->g->ninputs);
	if (!x || x->dtype != DFQ_DTYPE_F32)
		return dfq_error_set(err, DFQ_ERR_ARG, "measuring needs a float32 batch");
	/* work on copies so that a failing batch leaves the ranges as they were */
	size_t bytes = (size_t)m->npoints * sizeof *m->points;
	struct dfq_apoint *saved = malloc(bytes ? bytes : 1);
	if (!saved)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory measuring ranges");
	memcpy(saved, m->points, bytes);
	struct measure_ctx *c = calloc(1, sizeof *c);
	if (!c) {
		free(saved);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory measuring ranges");
	}
	c->m = m;
	dfq_status st = dfq_model_exec_prepare(m, ex, DFQ_RUN_FP32, err);
	int pi = m->priv->point_of_value[m->g->inputs[0]];
	if (st == DFQ_OK && pi >= 0)
		st = observe(c, &m->points[pi], x, err);
	struct dfq_tensor **outs =
	    calloc((size_t)(m->g->noutputs ? m->g->noutputs : 1), sizeof *outs);
	if (st == DFQ_OK && !outs)
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory measuring ranges");
	if (st == DFQ_OK) {
		dfq_exec_set_hook(ex, measure_hook, c);
		struct dfq_tensor *in = (struct dfq_tensor *)x; /* the executor only reads it */
		st = dfq_exec_run(ex, &in, outs, err);
		for (int i = 0; i < m->g->noutputs; i++)
			dfq_tensor_free(outs[i]);
	}
	free(outs);
	model_exec_reset(ex);
	free(c->scratch);
	free(c);
	if (st == DFQ_OK)
		st = model_refresh(m, err);
	if (st != DFQ_OK)
		memcpy(m->points, saved, bytes);
	free(saved);
	return st;
}
