/* model_bccheck.c - `biascorr --check`: what the analytic bias correction predicts (eps E[x],
 * E[x] from the BN statistics) against what data show (eps applied to the layer's real FP32
 * input, averaged), and E[x] predicted against measured; a query, the model is unchanged. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

struct chk_layer {
	struct dfq_tensor *eps; /* W_q - W_ref in W's shape (owned) */
	double *sum_x;          /* cin: sum of x per input feature */
	double *sum_y;          /* cout: sum of eps * x per output channel */
	int64_t cnt_x, cnt_y;   /* elements per feature / channel seen */
};

struct chk {
	struct dfq_model *m;
	struct dfq_bccheck *out;
	struct chk_layer *cl; /* per entry of out */
	struct dfq_kctx kctx;
};

void dfq_bccheck_free(struct dfq_bccheck *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->n && c->layers; i++) {
		struct dfq_bccheck_layer *e = &c->layers[i];
		free(e->pred);
		free(e->meas);
		free(e->pred_mx);
		free(e->ex_pred);
		free(e->ex_meas);
	}
	free(c->layers);
	memset(c, 0, sizeof *c);
}

/* Per-channel sums of t ([N, C, ...]) into acc; elements per channel into *cnt. */
static bool sums(const struct dfq_tensor *t, int64_t c, double *acc, int64_t *cnt)
{
	if (t->dtype != DFQ_DTYPE_F32 || t->ndim < 2 || t->dims[1] != c || t->numel == 0)
		return false;
	int64_t n = t->dims[0], sp = t->numel / (n * c);
	const float *x = dfq_tensor_f32(t);
	for (int64_t b = 0; b < n; b++)
		for (int64_t k = 0; k < c; k++) {
			const float *p = x + (b * c + k) * sp;
			double s = 0.0;
			for (int64_t j = 0; j < sp; j++)
				s += p[j];
			acc[k] += s;
		}
	*cnt += n * sp;
	return true;
}

/* eps * x through the layer's own node (same strides, pads, groups), no bias. */
static dfq_status shift_of(struct chk *c, const struct dfq_layer *L, const struct chk_layer *cl,
                           const struct dfq_tensor *x, struct dfq_tensor **y, struct dfq_error *err)
{
	const struct dfq_node *n = &c->m->g->nodes[L->node];
	if (n->ninputs < 2 || n->noutputs < 1)
		return dfq_error_set(err, DFQ_ERR_INTERNAL, "layer '%s' has no weight input",
		                     L->name);
	struct dfq_node two = *n;
	two.ninputs = 2;
	two.noutputs = 1;
	/* room for the bias slot too (NULL): kernels may look at it */
	const struct dfq_tensor *in[3] = {NULL, NULL, NULL};
	struct dfq_shape shp[2], osh[1];
	const struct dfq_shape *inshp[3] = {&shp[0], &shp[1], NULL};
	for (int s = 0; s < 2; s++) {
		in[s] = n->inputs[s] == L->w_vi ? cl->eps : x;
		dfq_tensor_shape(in[s], &shp[s]);
	}
	*y = NULL;
	struct dfq_tensor *o[1] = {NULL};
	dfq_status st = dfq_node_compute(&two, inshp, in, osh, o, &c->kctx, true, err);
	*y = o[0];
	return st;
}

static dfq_status chk_record(void *user, const struct dfq_graph *g, int vi, struct dfq_tensor *t,
                             struct dfq_error *err)
{
	(void)g;
	struct chk *c = user;
	for (int i = 0; i < c->out->n; i++) {
		struct dfq_bccheck_layer *e = &c->out->layers[i];
		const struct dfq_layer *L = &c->m->layers[e->layer];
		if (!e->checked || L->in_vi != vi)
			continue;
		struct chk_layer *cl = &c->cl[i];
		if (!sums(t, L->cin, cl->sum_x, &cl->cnt_x))
			continue; /* reported as not seen */
		struct dfq_tensor *y = NULL;
		dfq_status st = shift_of(c, L, cl, t, &y, err);
		if (st == DFQ_OK)
			sums(y, L->cout, cl->sum_y, &cl->cnt_y);
		dfq_tensor_free(y);
		if (st != DFQ_OK)
			return st;
	}
	return DFQ_OK;
}

/* Pearson correlation of a and b (NAN when either is constant). */
static double pearson(const double *a, const double *b, int64_t n)
{
	double ma = 0.0, mb = 0.0;
	for (int64_t i = 0; i < n; i++) {
		ma += a[i];
		mb += b[i];
	}
	ma /= (double)n;
	mb /= (double)n;
	double sab = 0.0, saa = 0.0, sbb = 0.0;
	for (int64_t i = 0; i < n; i++) {
		sab += (a[i] - ma) * (b[i] - mb);
		saa += (a[i] - ma) * (a[i] - ma);
		sbb += (b[i] - mb) * (b[i] - mb);
	}
	return saa > 0.0 && sbb > 0.0 ? sab / sqrt(saa * sbb) : NAN;
}

static double norm(const double *a, int64_t n)
{
	double s = 0.0;
	for (int64_t i = 0; i < n; i++)
		s += a[i] * a[i];
	return sqrt(s);
}

static double ratio(double num, double den)
{
	return den > 0.0 ? num / den : NAN;
}

static bool is_runtime_in(const struct dfq_model *m, const struct dfq_layer *L)
{
	return L->in_vi >= 0 && !m->g->values[L->in_vi].init;
}

/* Set up entry e for layer L: the prediction now, buffers for the data. */
static dfq_status chk_entry(struct chk *c, const struct vdesc *d, int li,
                            struct dfq_bccheck_layer *e, struct chk_layer *cl,
                            struct dfq_error *err)
{
	const struct dfq_model *m = c->m;
	const struct dfq_layer *L = &m->layers[li];
	e->layer = li;
	e->cout = L->cout;
	e->cin = L->cin;
	e->corr = e->ratio = e->corr_mx = e->ratio_mx = e->ex_corr = e->ex_ratio = e->resid = NAN;
	e->left_sd = NAN;
	const char *why = L->bn_node >= 0 ? "BatchNorm not folded yet"
	                  : !L->quantized ? "not quantized: no weight error to correct"
	                  : L->b_vi < 0   ? "a MatMul without a bias Add has no bias to correct"
	                  : !is_runtime_in(m, L) ? "its input is a constant"
	                                         : NULL;
	bool nomem = false;
	if (!why)
		e->ex_pred = model_expected_input(L, &d[L->in_vi], &why, err, &nomem);
	if (nomem)
		return DFQ_ERR_NOMEM;
	if (!e->ex_pred) {
		snprintf(e->note, sizeof e->note, "%s", why);
		return DFQ_OK;
	}
	e->pred = malloc((size_t)L->cout * sizeof *e->pred);
	e->meas = malloc((size_t)L->cout * sizeof *e->meas);
	e->pred_mx = malloc((size_t)L->cout * sizeof *e->pred_mx);
	e->ex_meas = malloc((size_t)L->cin * sizeof *e->ex_meas);
	cl->sum_x = calloc((size_t)L->cin, sizeof *cl->sum_x);
	cl->sum_y = calloc((size_t)L->cout, sizeof *cl->sum_y);
	const struct dfq_tensor *w = m->g->values[L->w_vi].init;
	cl->eps = dfq_tensor_clone(w, err);
	if (!e->pred || !e->meas || !e->pred_mx || !e->ex_meas || !cl->sum_x || !cl->sum_y ||
	    !cl->eps)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory checking bias correction");
	const float *ref = L->w_ref ? dfq_tensor_f32(L->w_ref) : dfq_tensor_f32(w);
	const float *wq = dfq_tensor_f32(L->wq);
	float *ep = dfq_tensor_f32(cl->eps);
	for (int64_t k = 0; k < cl->eps->numel; k++)
		ep[k] = wq[k] - ref[k];
	model_predicted_shift(L, wq, ref, e->ex_pred, e->pred);
	e->checked = true;
	return DFQ_OK;
}

/* The numbers of a checked entry once the data are in. */
static void chk_finish(const struct chk *c, struct dfq_bccheck_layer *e, const struct chk_layer *cl)
{
	const struct dfq_layer *L = &c->m->layers[e->layer];
	if (cl->cnt_x == 0 || cl->cnt_y == 0) {
		e->checked = false;
		snprintf(e->note, sizeof e->note, "its input was not seen while measuring");
		return;
	}
	for (int64_t i = 0; i < e->cin; i++)
		e->ex_meas[i] = cl->sum_x[i] / (double)cl->cnt_x;
	for (int64_t o = 0; o < e->cout; o++)
		e->meas[o] = cl->sum_y[o] / (double)cl->cnt_y;
	const float *ref = L->w_ref ? dfq_tensor_f32(L->w_ref) : model_w(c->m, L);
	model_predicted_shift(L, dfq_tensor_f32(L->wq), ref, e->ex_meas, e->pred_mx);
	double nm = norm(e->meas, e->cout);
	e->corr = pearson(e->pred, e->meas, e->cout);
	e->ratio = ratio(norm(e->pred, e->cout), nm);
	e->corr_mx = pearson(e->pred_mx, e->meas, e->cout);
	e->ratio_mx = ratio(norm(e->pred_mx, e->cout), nm);
	e->ex_corr = pearson(e->ex_pred, e->ex_meas, e->cin);
	e->ex_ratio = ratio(norm(e->ex_pred, e->cin), norm(e->ex_meas, e->cin));
	double r = 0.0;
	for (int64_t o = 0; o < e->cout; o++)
		r += (e->meas[o] - e->pred[o]) * (e->meas[o] - e->pred[o]);
	e->resid = ratio(sqrt(r), nm);
	double gs = 0.0;
	for (int64_t o = 0; L->has_stats && o < e->cout; o++)
		gs += (double)L->gamma[o] * L->gamma[o];
	e->left_sd = L->has_stats ? ratio(sqrt(r), sqrt(gs)) : NAN;
}

/* One pass over every batch in FP32 mode with the hook recording. */
static dfq_status chk_pass(struct chk *c, struct dfq_exec *ex, dfq_batch_fn next, void *user,
                           struct dfq_error *err)
{
	struct dfq_model *m = c->m;
	const struct dfq_graph *g = m->g;
	dfq_status st = dfq_model_exec_prepare(m, ex, DFQ_RUN_FP32, err);
	if (st != DFQ_OK)
		return st;
	struct model_hook_ctx *hc = model_hook_ctx_for(m, ex, err);
	if (!hc)
		return err ? err->status : DFQ_ERR_NOMEM;
	hc->extra = chk_record;
	hc->extra_user = c;
	hc->stop = false;
	dfq_exec_set_hook(ex, model_hook, hc);
	struct dfq_tensor **outs = calloc((size_t)(g->noutputs ? g->noutputs : 1), sizeof *outs);
	if (!outs)
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory checking bias correction");
	int64_t index = 0;
	for (; st == DFQ_OK; index++) {
		const struct dfq_tensor *x = NULL;
		st = next(user, index, &x, err);
		if (st != DFQ_OK || !x)
			break;
		c->out->samples += x->ndim >= 1 ? x->dims[0] : 1;
		struct dfq_tensor *in = (struct dfq_tensor *)x; /* only read */
		st = dfq_exec_run(ex, &in, outs, err);
		for (int i = 0; i < g->noutputs; i++) {
			dfq_tensor_free(outs[i]);
			outs[i] = NULL;
		}
	}
	free(outs);
	hc->extra = NULL;
	model_exec_reset(ex);
	if (st == DFQ_OK && index == 0)
		st = dfq_error_set(err, DFQ_ERR_ARG, "checking bias correction got no batches");
	return st;
}

dfq_status dfq_model_biascorr_check(struct dfq_model *m, struct dfq_exec *ex, const bool *sel,
                                    dfq_batch_fn next, void *user, struct dfq_bccheck *out,
                                    struct dfq_error *err)
{
	memset(out, 0, sizeof *out);
	if (m->g->ninputs != 1)
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "checking bias correction needs a model with one input (this "
		                     "one has %d)",
		                     m->g->ninputs);
	if (!next)
		return dfq_error_set(err, DFQ_ERR_ARG, "checking bias correction needs batches");
	struct chk c = {.m = m, .out = out};
	int n = 0;
	for (int li = 0; li < m->nlayers; li++)
		n += model_selected(sel, li);
	out->layers = calloc((size_t)(n ? n : 1), sizeof *out->layers);
	c.cl = calloc((size_t)(n ? n : 1), sizeof *c.cl);
	struct vdesc *d = NULL;
	dfq_status st =
	    out->layers && c.cl
	        ? DFQ_OK
	        : dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory checking bias correction");
	if (st == DFQ_OK)
		st = model_vdesc_compute(m, &d, err);
	int nchecked = 0;
	for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
		if (!model_selected(sel, li))
			continue;
		int i = out->n++;
		st = chk_entry(&c, d, li, &out->layers[i], &c.cl[i], err);
		nchecked += out->layers[i].checked;
	}
	if (d)
		model_vdesc_free(d, m->g->nvalues);
	if (st == DFQ_OK && nchecked > 0)
		st = chk_pass(&c, ex, next, user, err);
	for (int i = 0; i < out->n && st == DFQ_OK; i++)
		if (out->layers[i].checked)
			chk_finish(&c, &out->layers[i], &c.cl[i]);
	for (int i = 0; c.cl && i < out->n; i++) {
		dfq_tensor_free(c.cl[i].eps);
		free(c.cl[i].sum_x);
		free(c.cl[i].sum_y);
	}
	free(c.cl);
	return st;
}
