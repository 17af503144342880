/* step_fold.c - folding BatchNormalization into the layers before it (docs/algorithms.md sec. 5),
 * keeping its scale and shift as the layer's output statistics. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

static float max_abs(const float *x, int64_t n)
{
	float m = 0.0f;
	for (int64_t i = 0; i < n; i++)
		m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
	return m;
}

/* Why layer L's BN cannot be folded, or NULL. */
static const char *fold_blocker(const struct dfq_model *m, const struct dfq_layer *L)
{
	if (!L->editable)
		return L->why_fixed;
	if (L->b_vi < 0)
		return "a MatMul without a bias Add has no bias to fold the shift into";
	const struct dfq_node *bn = &m->g->nodes[L->bn_node];
	const float *var = dfq_tensor_f32(m->g->values[bn->inputs[4]].init);
	const float *gam = dfq_tensor_f32(m->g->values[bn->inputs[1]].init);
	const float *bet = dfq_tensor_f32(m->g->values[bn->inputs[2]].init);
	const float *mu = dfq_tensor_f32(m->g->values[bn->inputs[3]].init);
	for (int64_t c = 0; c < L->cout; c++) {
		if (!((double)var[c] + bn->p.epsilon > 0.0))
			return "its BatchNormalization has a variance + epsilon <= 0";
		if (!isfinite(gam[c]) || !isfinite(bet[c]) || !isfinite(mu[c]) || !isfinite(var[c]))
			return "its BatchNormalization holds NaN or Inf";
	}
	return NULL;
}

/* W'[o] = W[o] s_o, b' = (b - mu) s + beta into w and b; returns max |s|. */
static double fold_one(const struct dfq_model *m, const struct dfq_layer *L, float *w, float *b)
{
	const struct dfq_node *bn = &m->g->nodes[L->bn_node];
	const float *gam = dfq_tensor_f32(m->g->values[bn->inputs[1]].init);
	const float *bet = dfq_tensor_f32(m->g->values[bn->inputs[2]].init);
	const float *mu = dfq_tensor_f32(m->g->values[bn->inputs[3]].init);
	const float *var = dfq_tensor_f32(m->g->values[bn->inputs[4]].init);
	double eps = bn->p.epsilon, smax = 0.0;
	int64_t cin_g = L->cin / L->group;
	for (int64_t o = 0; o < L->cout; o++) {
		double s = gam[o] / sqrt((double)var[o] + eps);
		smax = fabs(s) > smax ? fabs(s) : smax;
		for (int64_t i = 0; i < cin_g; i++) {
			float *p = w + o * L->w_ostride + i * L->w_istride;
			for (int64_t k = 0; k < L->ksize; k++)
				p[k] = (float)(p[k] * s);
		}
		b[o] = (float)(((double)b[o] - mu[o]) * s + bet[o]);
	}
	return smax;
}

/* Drop BN parameter tensors nobody reads any more. */
static void drop_unused(struct dfq_graph *g, const int *vis, int n)
{
	for (int i = 0; i < n; i++) {
		struct dfq_value *v = &g->values[vis[i]];
		if (v->nconsumers == 0 && !v->is_output && v->init) {
			dfq_tensor_free(v->init);
			v->init = NULL;
		}
	}
}

/* Fold layer L (row): its weights and bias, and the producer takes over the
 * BN's output; the BN's parameters go to params, its node to kill. */
static dfq_status fold_layer(struct dfq_model *m, int li, struct dfq_step_row *row, bool *kill,
                             int *params, int *nparams, struct dfq_error *err)
{
	struct dfq_graph *g = m->g;
	const struct dfq_layer *L = &m->layers[li];
	float *w, *b;
	struct dfq_layer *WL;
	dfq_status st = model_writable_init(m, L->w_vi, &w, err);
	if (st == DFQ_OK)
		st = model_writable_init(m, L->b_vi, &b, err);
	if (st == DFQ_OK)
		st = model_writable_layer(m, li, &WL, err);
	if (st != DFQ_OK)
		return st;
	int64_t n = g->values[L->w_vi].init->numel;
	row->before = max_abs(w, n);
	row->extra = fold_one(m, L, w, b);
	row->after = max_abs(w, n);
	struct dfq_node *bn = &g->nodes[L->bn_node];
	int prod = L->bias_add_node >= 0 ? L->bias_add_node : L->node;
	g->nodes[prod].outputs[0] = bn->outputs[0];
	for (int k = 1; k < 5; k++)
		params[(*nparams)++] = bn->inputs[k];
	kill[L->bn_node] = true;
	WL->steps |= DFQ_STEP_FOLD;
	return DFQ_OK;
}

dfq_status dfq_model_fold(struct dfq_model *m, struct dfq_step_report *rep, struct dfq_error *err)
{
	struct model_step s;
	struct dfq_step_report r;
	dfq_status st = model_step_open(m, &s, &r, DFQ_STEP_FOLD, err);
	if (st != DFQ_OK)
		return st;
	struct dfq_graph *g = m->g;
	bool *kill = calloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof *kill);
	int *params = malloc((size_t)(4 * (m->nlayers ? m->nlayers : 1)) * sizeof *params);
	int nparams = 0;
	if (!kill || !params)
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory folding");
	/* the graph's structure changes: save it before the first edit */
	if (st == DFQ_OK)
		st = model_cow_nodes(m, err);
	int nfolded = 0;
	for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
		const struct dfq_layer *L = &m->layers[li];
		if (L->bn_node < 0)
			continue;
		struct dfq_step_row *row = model_report_row(&r, li, err);
		if (!row) {
			st = err ? err->status : DFQ_ERR_NOMEM;
			break;
		}
		const char *bn_name = g->nodes[L->bn_node].name;
		const char *why = fold_blocker(m, L);
		if (why) {
			snprintf(row->note, sizeof row->note, "BatchNormalization '%s' kept: %s",
			         bn_name, why);
			continue;
		}
		snprintf(row->note, sizeof row->note, "folded BatchNormalization '%s'", bn_name);
		st = fold_layer(m, li, row, kill, params, &nparams, err);
		row->changed = st == DFQ_OK;
		nfolded += row->changed;
	}
	if (st == DFQ_OK && nfolded > 0)
		st = model_remove_nodes(m, kill, err);
	if (st == DFQ_OK)
		drop_unused(g, params, nparams);
	free(kill);
	free(params);
	st = model_step_finish(m, &s, st, "fold", &r, err);
	if (st != DFQ_OK)
		return st;
	r.has_stats = m->has_stats;
	if (r.nrows == 0 && !m->has_stats)
		snprintf(r.summary, sizeof r.summary,
		         "no BatchNormalization to fold: the model came folded, so it has no BN "
		         "statistics");
	else if (r.nrows == 0)
		snprintf(r.summary, sizeof r.summary, "nothing to fold: BatchNorm already folded");
	else
		snprintf(r.summary, sizeof r.summary,
		         "folded %d BatchNormalization node%s into their layers (%d kept)", nfolded,
		         nfolded == 1 ? "" : "s", r.nrows - nfolded);
	model_report_hand(&r, rep);
	return DFQ_OK;
}
