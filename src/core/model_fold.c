/* model_fold.c - BatchNorm folding, ReLU6 -> ReLU and clip_weight. */
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

/* --- step plumbing shared by the model_*.c steps ------------------------------ */

struct dfq_step_row *model_step_row(const struct dfq_model *m, const bool *sel, int li,
                                    bool editable_only, struct dfq_step_report *r,
                                    dfq_status *st, struct dfq_error *err)
{
	if (!model_selected(sel, li))
		return NULL;
	struct dfq_step_row *row = model_report_row(r, li, err);
	if (!row) {
		*st = err ? err->status : DFQ_ERR_NOMEM;
		return NULL;
	}
	const struct dfq_layer *L = &m->layers[li];
	if (editable_only && !L->editable) {
		snprintf(row->note, sizeof row->note, "skipped: %s", L->why_fixed);
		return NULL;
	}
	return row;
}

dfq_status model_step_finish(struct dfq_model *m, struct dfq_step_report *r, dfq_status st,
                             struct dfq_error *err)
{
	if (st == DFQ_OK)
		st = model_refresh(m, err);
	if (st != DFQ_OK) {
		dfq_step_report_free(r);
		return st;
	}
	model_report_count(r);
	return DFQ_OK;
}

void model_report_hand(struct dfq_step_report *r, struct dfq_step_report *rep)
{
	if (rep)
		*rep = *r;
	else
		dfq_step_report_free(r);
}

/* --- fold ------------------------------------------------------------------ */

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

/* W'[o] = W[o] s_o, b' = (b - mu) s + beta; returns max |s|. */
static double fold_one(struct dfq_model *m, struct dfq_layer *L)
{
	const struct dfq_node *bn = &m->g->nodes[L->bn_node];
	const float *gam = dfq_tensor_f32(m->g->values[bn->inputs[1]].init);
	const float *bet = dfq_tensor_f32(m->g->values[bn->inputs[2]].init);
	const float *mu = dfq_tensor_f32(m->g->values[bn->inputs[3]].init);
	const float *var = dfq_tensor_f32(m->g->values[bn->inputs[4]].init);
	double eps = bn->p.epsilon, smax = 0.0;
	float *w = model_w(m, L), *b = model_b(m, L);
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

dfq_status dfq_model_fold(struct dfq_model *m, struct dfq_step_report *rep, struct dfq_error *err)
{
	struct dfq_graph *g = m->g;
	struct dfq_step_report r;
	dfq_step_report_init(&r);
	r.step = DFQ_STEP_FOLD;
	bool *kill = calloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof *kill);
	int *params = malloc((size_t)(4 * (m->nlayers ? m->nlayers : 1)) * sizeof *params);
	int nparams = 0;
	dfq_status st =
	    kill && params ? DFQ_OK : dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory folding");
	/* pass 1: decide and build the report; nothing changes yet */
	for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
		struct dfq_layer *L = &m->layers[li];
		if (L->bn_node < 0)
			continue;
		struct dfq_step_row *row = model_report_row(&r, li, err);
		if (!row) {
			st = err ? err->status : DFQ_ERR_NOMEM;
			break;
		}
		const char *why = fold_blocker(m, L);
		if (why) {
			snprintf(row->note, sizeof row->note, "BatchNormalization '%s' kept: %s",
			         g->nodes[L->bn_node].name, why);
			continue;
		}
		row->changed = true;
		snprintf(row->note, sizeof row->note, "folded BatchNormalization '%s'",
		         g->nodes[L->bn_node].name);
	}
	if (st != DFQ_OK) {
		free(kill);
		free(params);
		dfq_step_report_free(&r);
		return st;
	}
	/* pass 2: fold and rewire (the producer takes over the BN's output) */
	for (int i = 0; i < r.nrows; i++) {
		struct dfq_step_row *row = &r.rows[i];
		if (!row->changed)
			continue;
		struct dfq_layer *L = &m->layers[row->layer];
		const struct dfq_tensor *w = g->values[L->w_vi].init;
		row->before = max_abs(dfq_tensor_f32(w), w->numel);
		row->extra = fold_one(m, L);
		row->after = max_abs(dfq_tensor_f32(w), w->numel);
		struct dfq_node *bn = &g->nodes[L->bn_node];
		int prod = L->bias_add_node >= 0 ? L->bias_add_node : L->node;
		g->nodes[prod].outputs[0] = bn->outputs[0];
		for (int k = 1; k < 5; k++)
			params[nparams++] = bn->inputs[k];
		kill[L->bn_node] = true;
		L->steps |= DFQ_STEP_FOLD;
	}
	int nfolded = 0;
	for (int i = 0; i < r.nrows; i++)
		nfolded += r.rows[i].changed;
	if (nfolded > 0)
		st = model_remove_nodes(m, kill, err);
	if (st == DFQ_OK)
		drop_unused(g, params, nparams);
	free(kill);
	free(params);
	if (st != DFQ_OK) {
		dfq_step_report_free(&r);
		return st;
	}
	r.has_stats = m->has_stats;
	if (r.nrows == 0 && !m->has_stats)
		snprintf(r.summary, sizeof r.summary,
		         "no BatchNormalization to fold: the model came folded, so it has no BN "
		         "statistics (use ranges and bias correction from data)");
	else if (r.nrows == 0)
		snprintf(r.summary, sizeof r.summary, "nothing to fold: BatchNorm already folded");
	else
		snprintf(r.summary, sizeof r.summary,
		         "folded %d BatchNormalization node%s into their layers (%d kept)", nfolded,
		         nfolded == 1 ? "" : "s", r.nrows - nfolded);
	model_report_count(&r);
	model_report_hand(&r, rep);
	return DFQ_OK;
}

/* --- ReLU6 -> ReLU --------------------------------------------------------------- */

dfq_status dfq_model_relu6_to_relu(struct dfq_model *m, const bool *sel,
                                   struct dfq_step_report *rep, struct dfq_error *err)
{
	struct dfq_graph *g = m->g;
	struct dfq_step_report r;
	dfq_step_report_init(&r);
	r.step = DFQ_STEP_RELU6;
	char **names = calloc((size_t)(m->nlayers ? m->nlayers : 1), sizeof *names);
	dfq_status st = names ? DFQ_OK : dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
	for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
		const struct dfq_layer *L = &m->layers[li];
		if (!model_selected(sel, li) || L->act != DFQ_ACT_RELU6)
			continue;
		struct dfq_step_row *row = model_report_row(&r, li, err);
		names[li] = malloc(sizeof "Relu");
		if (!row || !names[li]) {
			st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
			break;
		}
		memcpy(names[li], "Relu", sizeof "Relu");
		row->changed = true;
		row->before = 6.0;
		row->after = INFINITY;
		int pi = m->priv->point_of_value[L->out_vi];
		if (pi >= 0 && m->points[pi].global.valid)
			row->extra = m->points[pi].global.hi;
		snprintf(row->note, sizeof row->note, "Clip '%s' (0, 6) -> Relu",
		         g->nodes[L->act_node].name);
	}
	bool stale = false;
	for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
		if (!names[li])
			continue;
		struct dfq_layer *L = &m->layers[li];
		model_clip_to_relu(g, L->act_node, names[li]);
		names[li] = NULL;
		L->steps |= DFQ_STEP_RELU6;
		int pi = m->priv->point_of_value[L->out_vi];
		if (pi >= 0 && m->points[pi].global.valid && m->points[pi].global.hi >= 6.0f)
			stale = true;
	}
	for (int li = 0; names && li < m->nlayers; li++)
		free(names[li]);
	free(names);
	if (st == DFQ_OK && r.nrows > 0)
		st = model_refinalize(m, err);
	if (st != DFQ_OK) {
		dfq_step_report_free(&r);
		return st;
	}
	m->data_stale |= stale;
	snprintf(r.summary, sizeof r.summary, "replaced %d ReLU6 by ReLU%s", r.nrows,
	         stale ? " (some measured activations reached 6: measure again)" : "");
	model_report_count(&r);
	model_report_hand(&r, rep);
	return DFQ_OK;
}

/* --- clip_weight ------------------------------------------------------------------ */

dfq_status dfq_model_clip(struct dfq_model *m, const bool *sel, float lo, float hi,
                          struct dfq_step_report *rep, struct dfq_error *err)
{
	if (!isfinite(lo) || !isfinite(hi) || !(lo < hi))
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "clip needs finite bounds with LO < HI, not [%g, %g]",
		                     (double)lo, (double)hi);
	for (int li = 0; li < m->nlayers; li++)
		if (model_selected(sel, li) && m->layers[li].bn_node >= 0)
			return dfq_error_set(
			    err, DFQ_ERR_ARG,
			    "layer '%s' still has its BatchNormalization: run fold "
			    "first (weights are clipped after folding)",
			    m->layers[li].name);
	struct dfq_step_report r;
	dfq_step_report_init(&r);
	r.step = DFQ_STEP_CLIP;
	dfq_status st = DFQ_OK;
	/* pass 1: rows and the reference copies (the only allocations) */
	struct dfq_tensor **refs = calloc((size_t)(m->nlayers ? m->nlayers : 1), sizeof *refs);
	if (!refs)
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory clipping");
	for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
		struct dfq_layer *L = &m->layers[li];
		struct dfq_step_row *row = model_step_row(m, sel, li, true, &r, &st, err);
		if (!row)
			continue; /* not selected, skipped, or st set (ends the loop) */
		const struct dfq_tensor *w = m->g->values[L->w_vi].init;
		const float *x = dfq_tensor_f32(w);
		int64_t n = 0;
		float mn = INFINITY, mx = -INFINITY;
		for (int64_t i = 0; i < w->numel; i++) {
			n += x[i] < lo || x[i] > hi;
			mn = x[i] < mn ? x[i] : mn;
			mx = x[i] > mx ? x[i] : mx;
		}
		row->before = mn;
		row->before2 = mx;
		row->after = mn < lo ? lo : mn > hi ? hi : mn;
		row->after2 = mx > hi ? hi : mx < lo ? lo : mx;
		row->extra = (double)n;
		row->changed = n > 0;
		if (n > 0)
			snprintf(row->note, sizeof row->note,
			         "clipped %lld of %lld weights to [%g, %g]", (long long)n,
			         (long long)w->numel, (double)lo, (double)hi);
		else
			snprintf(row->note, sizeof row->note,
			         "all %lld weights already inside [%g, %g]", (long long)w->numel,
			         (double)lo, (double)hi);
		if (n > 0 && !L->w_ref) {
			refs[li] = dfq_tensor_clone(w, err);
			if (!refs[li])
				st = err ? err->status : DFQ_ERR_NOMEM;
		}
	}
	/* pass 2: clip */
	for (int i = 0; i < r.nrows && st == DFQ_OK; i++) {
		if (!r.rows[i].changed)
			continue;
		int li = r.rows[i].layer;
		struct dfq_layer *L = &m->layers[li];
		if (refs[li]) {
			L->w_ref = refs[li];
			refs[li] = NULL;
		}
		const struct dfq_tensor *w = m->g->values[L->w_vi].init;
		float *x = dfq_tensor_f32(w);
		for (int64_t k = 0; k < w->numel; k++)
			x[k] = x[k] < lo ? lo : x[k] > hi ? hi : x[k];
		L->steps |= DFQ_STEP_CLIP;
		if (L->bcorr_q || L->bcorr_fp)
			strncat(r.rows[i].note, "; bias correction dropped",
			        sizeof r.rows[i].note - strlen(r.rows[i].note) - 1);
		model_layer_drop_bcorr(L);
		st = model_layer_update(m, li, err);
		m->data_stale = true;
	}
	for (int li = 0; refs && li < m->nlayers; li++)
		dfq_tensor_free(refs[li]);
	free(refs);
	st = model_step_finish(m, &r, st, err);
	if (st != DFQ_OK)
		return st;
	snprintf(r.summary, sizeof r.summary, "clipped the weights of %d layer%s to [%g, %g]",
	         r.nchanged, r.nchanged == 1 ? "" : "s", (double)lo, (double)hi);
	model_report_hand(&r, rep);
	return DFQ_OK;
}
