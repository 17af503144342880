/* step_biascorr.c - analytic (data-free) bias correction (paper sec. 4.2; docs/algorithms.md
 * sec. 8): the expected output error eps E[x], with E[x] from the BN statistics upstream. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* --- analytic --------------------------------------------------------------- */

static const char *bc_blocker(const struct dfq_layer *L)
{
	if (!L->editable)
		return L->why_fixed;
	if (L->bn_node >= 0)
		return "BatchNorm not folded yet";
	if (L->b_vi < 0)
		return "a MatMul without a bias Add has no bias to correct";
	if (!L->quantized && !L->w_ref)
		return "neither quantized nor clipped: nothing to correct";
	return NULL;
}

struct bc_new {
	float *q, *fp; /* new corrections (owned until committed) */
};

/* Corrections for layer L: q from W_q - W_ref, fp from W - W_ref (clipped only). */
static dfq_status bc_layer(const struct dfq_model *m, const struct dfq_layer *L, const double *ex,
                           struct bc_new *out, struct dfq_step_row *row, struct dfq_error *err)
{
	const float *w = model_w(m, L);
	const float *ref = L->w_ref ? dfq_tensor_f32(L->w_ref) : w;
	const float *wq = L->quantized ? dfq_tensor_f32(L->wq) : w;
	double *pred = malloc((size_t)L->cout * sizeof *pred);
	out->q = rc_alloc((size_t)L->cout * sizeof *out->q);
	if (L->w_ref)
		out->fp = rc_alloc((size_t)L->cout * sizeof *out->fp);
	if (!pred || !out->q || (L->w_ref && !out->fp)) {
		free(pred);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory correcting biases");
	}
	model_predicted_shift(L, wq, ref, ex, pred);
	double before = 0.0, extra = 0.0;
	for (int64_t o = 0; o < L->cout; o++) {
		out->q[o] = (float)-pred[o];
		before = fmax(before, fabs(pred[o]));
		extra = fmax(extra, fabs(pred[o]));
	}
	if (L->w_ref) {
		model_predicted_shift(L, w, ref, ex, pred);
		for (int64_t o = 0; o < L->cout; o++)
			out->fp[o] = (float)-pred[o];
	}
	free(pred);
	row->before = before;
	row->extra = extra;
	return DFQ_OK;
}

/* What is left of the expected error once the QUANT-mode bias is in place
 * (bias quantization only). */
static double residual(const struct dfq_model *m, const struct dfq_layer *L)
{
	if (!L->b_run_q)
		return 0.0;
	const float *b = model_b(m, L), *br = dfq_tensor_f32(L->b_run_q);
	double r = 0.0;
	for (int64_t o = 0; o < L->cout; o++)
		r = fmax(r, fabs((double)br[o] - ((double)b[o] + L->bcorr_q[o])));
	return r;
}

dfq_status dfq_model_biascorr_analytic(struct dfq_model *m, const bool *sel,
                                       struct dfq_step_report *rep, struct dfq_error *err)
{
	struct model_step s;
	struct dfq_step_report r;
	dfq_status st = model_step_open(m, &s, &r, DFQ_STEP_BIASCORR, err);
	if (st != DFQ_OK)
		return st;
	struct vdesc *d;
	st = model_vdesc_compute(m, &d, err);
	if (st != DFQ_OK)
		return model_step_close(m, &s, st, "biascorr", err);
	struct bc_new *nw = calloc((size_t)(m->nlayers ? m->nlayers : 1), sizeof *nw);
	if (!nw)
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory correcting biases");
	/* pass 1: every correction, nothing changed yet */
	for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
		const struct dfq_layer *L = &m->layers[li];
		struct dfq_step_row *row = model_step_row(m, sel, li, false, &r, &st, err);
		if (!row)
			continue; /* not selected, or st set (ends the loop) */
		const char *why = bc_blocker(L);
		double *ex = NULL;
		bool nomem = false;
		if (!why)
			ex = model_expected_input(L, &d[L->in_vi], &why, err, &nomem);
		if (nomem) {
			st = DFQ_ERR_NOMEM;
			break;
		}
		if (!ex) {
			snprintf(row->note, sizeof row->note, "skipped: %s", why);
			continue;
		}
		st = bc_layer(m, L, ex, &nw[li], row, err);
		free(ex);
		row->changed = st == DFQ_OK;
	}
	model_vdesc_free(d, m->g->nvalues);
	/* pass 2: commit */
	for (int i = 0; i < r.nrows && st == DFQ_OK; i++) {
		struct dfq_step_row *row = &r.rows[i];
		if (!row->changed)
			continue;
		struct dfq_layer *L;
		st = model_writable_layer(m, row->layer, &L, err);
		if (st != DFQ_OK)
			break;
		rc_unref(L->bcorr_q);
		rc_unref(L->bcorr_fp);
		L->bcorr_q = nw[row->layer].q;
		L->bcorr_fp = nw[row->layer].fp;
		L->bcorr_empirical = false;
		nw[row->layer].q = nw[row->layer].fp = NULL;
		L->steps |= DFQ_STEP_BIASCORR;
		st = model_layer_update(m, row->layer, err);
		if (st != DFQ_OK)
			break;
		L = &m->layers[row->layer];
		row->after = residual(m, L);
		snprintf(row->note, sizeof row->note, "analytic: corrected %lld channels%s",
		         (long long)L->cout,
		         L->bcorr_fp ? " (and the clipping error in FP32)" : "");
	}
	for (int li = 0; nw && li < m->nlayers; li++) {
		rc_unref(nw[li].q);
		rc_unref(nw[li].fp);
	}
	free(nw);
	st = model_step_finish(m, &s, st, "biascorr", &r, err);
	if (st != DFQ_OK)
		return st;
	snprintf(r.summary, sizeof r.summary,
	         "analytic bias correction of %d layer%s (%d left as they are)%s", r.nchanged,
	         r.nchanged == 1 ? "" : "s", r.nskipped,
	         m->has_stats ? "" : "; the model has no BN statistics");
	model_report_hand(&r, rep);
	return DFQ_OK;
}
