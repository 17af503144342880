/* model_stats.c - data-free propagation of BN statistics through the graph: per value, the
 * mean and variance of each channel and the data-free range (docs/algorithms.md, "Activation
 * ranges" and "Bias correction"). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

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

/* --- what bias correction reads --------------------------------------------------- */

/* E[x] of layer L's input, one entry per input channel (cin), from the
 * descriptor of its input value; NULL with *why set when unknown. */
double *model_expected_input(const struct dfq_layer *L, const struct vdesc *d, const char **why,
                             struct dfq_error *err, bool *nomem)
{
	*nomem = false;
	if (!d->valid) {
		*why = "its input has no BN statistics upstream (e.g. the first layer): left as is";
		return NULL;
	}
	if (d->c <= 0 || L->cin % d->c != 0) {
		*why = "its input features do not map onto the channels of the statistics";
		return NULL;
	}
	double *ex = malloc((size_t)L->cin * sizeof *ex);
	if (!ex) {
		*nomem = true;
		dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory correcting biases");
		return NULL;
	}
	/* a Flatten of [C, H, W] gives C*H*W features, channel-major */
	int64_t rep = L->cin / d->c;
	for (int64_t f = 0; f < L->cin; f++)
		ex[f] = d->mean[f / rep];
	return ex;
}

/* pred[o] = sum_i (sum_k (w - ref)[o, i, k]) E[x_gi]: the expected output error. */
void model_predicted_shift(const struct dfq_layer *L, const float *w, const float *ref,
                           const double *ex, double *pred)
{
	int64_t cin_g = L->cin / L->group, cout_g = L->cout / L->group;
	for (int64_t o = 0; o < L->cout; o++) {
		const double *e = ex + (o / cout_g) * cin_g;
		double acc = 0.0;
		for (int64_t i = 0; i < cin_g; i++) {
			int64_t at = o * L->w_ostride + i * L->w_istride;
			double s = 0.0;
			for (int64_t k = 0; k < L->ksize; k++)
				s += (double)w[at + k] - (double)ref[at + k];
			acc += s * e[i];
		}
		pred[o] = acc;
	}
}
