/* step_clip.c - clip_weight: W <- clamp(W, lo, hi) (docs/algorithms.md sec. 4), keeping the
 * weights as they were before the first clip as the reference bias correction compares against. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "model_internal.h"

/* Clip layer li's weights (row says how many fall outside). */
static dfq_status clip_layer(struct dfq_model *m, int li, float lo, float hi,
                             struct dfq_step_report *r, struct dfq_error *err)
{
	const struct dfq_tensor *w0 = m->g->values[m->layers[li].w_vi].init;
	struct dfq_layer *L;
	dfq_status st = model_writable_layer(m, li, &L, err);
	if (st == DFQ_OK && !L->w_ref) {
		/* the reference is the weights as they are now, shared */
		L->w_ref = dfq_tensor_ref((struct dfq_tensor *)w0);
	}
	float *x;
	if (st == DFQ_OK)
		st = model_writable_init(m, L->w_vi, &x, err);
	if (st != DFQ_OK)
		return st;
	int64_t n = m->g->values[L->w_vi].init->numel;
	for (int64_t k = 0; k < n; k++)
		x[k] = x[k] < lo ? lo : x[k] > hi ? hi : x[k];
	L->steps |= DFQ_STEP_CLIP;
	st = model_layer_changed(m, li, CHANGED_WEIGHTS, r, err);
	if (st == DFQ_OK)
		st = model_layer_update(m, li, err);
	return st;
}

dfq_status dfq_model_clip(struct dfq_model *m, const bool *sel, float lo, float hi,
                          struct dfq_step_report *rep, struct dfq_error *err)
{
	if (!isfinite(lo) || !isfinite(hi) || !(lo < hi))
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "clip needs finite bounds with LO < HI, not [%g, %g]",
		                     (double)lo, (double)hi);
	for (int li = 0; li < m->nlayers; li++) {
		if (model_selected(sel, li) && m->layers[li].bn_node >= 0) {
			dfq_error_set(err, DFQ_ERR_ARG,
			              "layer '%s' still has its BatchNormalization (weights are "
			              "clipped after folding)",
			              m->layers[li].name);
			return dfq_error_remedy(err, DFQ_REMEDY_FOLD);
		}
	}
	struct model_step s;
	struct dfq_step_report r;
	dfq_status st = model_step_open(m, &s, &r, DFQ_STEP_CLIP, err);
	if (st != DFQ_OK)
		return st;
	for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
		struct dfq_step_row *row = model_step_row(m, sel, li, true, &r, &st, err);
		if (!row)
			continue; /* not selected, skipped, or st set (ends the loop) */
		const struct dfq_tensor *w = m->g->values[m->layers[li].w_vi].init;
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
		if (n == 0) {
			snprintf(row->note, sizeof row->note,
			         "all %lld weights already inside [%g, %g]", (long long)w->numel,
			         (double)lo, (double)hi);
			continue;
		}
		snprintf(row->note, sizeof row->note, "clipped %lld of %lld weights to [%g, %g]",
		         (long long)n, (long long)w->numel, (double)lo, (double)hi);
		st = clip_layer(m, li, lo, hi, &r, err);
	}
	st = model_step_finish(m, &s, st, "clip", &r, err);
	if (st != DFQ_OK)
		return st;
	snprintf(r.summary, sizeof r.summary, "clipped the weights of %d layer%s to [%g, %g]",
	         r.nchanged, r.nchanged == 1 ? "" : "s", (double)lo, (double)hi);
	model_report_hand(&r, rep);
	return DFQ_OK;
}
