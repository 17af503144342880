/* step_biascorr_data.c - empirical bias correction: the mean output error of each layer measured
 * on data, FP32 against fake-quant, corrected layer by layer in topological order. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

struct emp {
	struct dfq_model *m;
	int *target_of_value; /* nvalues: index into targets or -1 */
	int ntargets;
	int *targets;    /* layer indices */
	double **sum_fp; /* per target, cout: sum of y_fp32 per channel */
	double **sum_q;  /* per target, cout */
	int64_t *count;  /* per target: elements per channel seen (fp pass) */
	int64_t *count_q;
	int stage; /* target measured in a QUANT pass, -1 in the FP32 pass */
	struct model_hook_ctx *ctx;
	int64_t samples;
};

/* Per-channel sums of t ([N, C, ...]) into acc; elements per channel into *cnt. */
static void channel_sums(const struct dfq_tensor *t, int64_t cout, double *acc, int64_t *cnt)
{
	if (t->ndim < 2 || t->dims[1] != cout)
		return;
	int64_t n = t->dims[0], sp = t->numel / (n * cout);
	const float *x = dfq_tensor_f32(t);
	for (int64_t b = 0; b < n; b++) {
		for (int64_t c = 0; c < cout; c++) {
			const float *p = x + (b * cout + c) * sp;
			double s = 0.0;
			for (int64_t k = 0; k < sp; k++)
				s += p[k];
			acc[c] += s;
		}
	}
	*cnt += n * sp;
}

static dfq_status emp_record(void *user, const struct dfq_graph *g, int vi, struct dfq_tensor *t,
                             struct dfq_error *err)
{
	struct emp *e = user;
	int ti = e->target_of_value[vi];
	if (ti < 0 || t->dtype != DFQ_DTYPE_F32)
		return DFQ_OK;
	int64_t cout = e->m->layers[e->targets[ti]].cout;
	if (e->stage < 0) {
		channel_sums(t, cout, e->sum_fp[ti], &e->count[ti]);
	} else if (ti == e->stage) {
		channel_sums(t, cout, e->sum_q[ti], &e->count_q[ti]);
		e->ctx->stop = true; /* nothing after this layer matters for it */
	}
	return DFQ_OK;
}

/* One pass over every batch on ex as prepared; the hook records. */
static dfq_status emp_pass(struct emp *e, struct dfq_exec *ex, dfq_batch_fn next, void *user,
                           struct dfq_error *err)
{
	const struct dfq_graph *g = e->m->g;
	struct dfq_tensor **outs = calloc((size_t)(g->noutputs ? g->noutputs : 1), sizeof *outs);
	if (!outs)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory correcting biases");
	dfq_status st = DFQ_OK;
	int64_t index = 0;
	for (;; index++) {
		const struct dfq_tensor *x = NULL;
		st = next(user, index, &x, err);
		if (st != DFQ_OK || !x)
			break;
		if (e->stage < 0)
			e->samples += x->ndim >= 1 ? x->dims[0] : 1;
		struct dfq_error run_err;
		dfq_error_clear(&run_err);
		e->ctx->stop = false;
		struct dfq_tensor *in = (struct dfq_tensor *)x; /* only read */
		if (e->stage >= 0) {
			/* QUANT mode: the input quantizer runs outside the hook */
			int pi = model_point_of(e->m, g->inputs[0]);
			if (pi >= 0 && e->m->points[pi].enabled) {
				in = dfq_tensor_clone(x, err);
				if (!in) {
					st = err ? err->status : DFQ_ERR_NOMEM;
					break;
				}
				dfq_fake_quant(dfq_tensor_f32(in), in->numel, &e->m->points[pi].qp);
			}
		}
		st = dfq_exec_run(ex, &in, outs, &run_err);
		if (in != x)
			dfq_tensor_free(in);
		for (int i = 0; i < g->noutputs; i++)
			dfq_tensor_free(outs[i]);
		if (st != DFQ_OK && !e->ctx->stop) {
			if (err)
				*err = run_err;
			break;
		}
		st = DFQ_OK;
	}
	free(outs);
	if (st == DFQ_OK && index == 0)
		st = dfq_error_set(err, DFQ_ERR_ARG, "bias correction from data got no batches");
	return st;
}

static void emp_free(struct emp *e)
{
	for (int i = 0; i < e->ntargets; i++) {
		if (e->sum_fp)
			free(e->sum_fp[i]);
		if (e->sum_q)
			free(e->sum_q[i]);
	}
	free(e->sum_fp);
	free(e->sum_q);
	free(e->count);
	free(e->count_q);
	free(e->targets);
	free(e->target_of_value);
}

static dfq_status emp_init(struct emp *e, struct dfq_model *m, const bool *sel,
                           struct dfq_step_report *r, struct dfq_error *err)
{
	memset(e, 0, sizeof *e);
	e->m = m;
	e->stage = -1;
	int nl = m->nlayers ? m->nlayers : 1;
	e->targets = malloc((size_t)nl * sizeof *e->targets);
	e->target_of_value = malloc((size_t)(m->g->nvalues ? m->g->nvalues : 1) * sizeof(int));
	e->sum_fp = calloc((size_t)nl, sizeof *e->sum_fp);
	e->sum_q = calloc((size_t)nl, sizeof *e->sum_q);
	e->count = calloc((size_t)nl, sizeof *e->count);
	e->count_q = calloc((size_t)nl, sizeof *e->count_q);
	if (!e->targets || !e->target_of_value || !e->sum_fp || !e->sum_q || !e->count ||
	    !e->count_q)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory correcting biases");
	for (int vi = 0; vi < m->g->nvalues; vi++)
		e->target_of_value[vi] = -1;
	for (int li = 0; li < m->nlayers; li++) {
		const struct dfq_layer *L = &m->layers[li];
		if (!model_selected(sel, li))
			continue;
		struct dfq_step_row *row = model_report_row(r, li, err);
		if (!row)
			return err ? err->status : DFQ_ERR_NOMEM;
		const char *why = !L->editable      ? L->why_fixed
		                  : L->bn_node >= 0 ? "BatchNorm not folded yet"
		                  : L->b_vi < 0     ? "a MatMul without a bias Add has no bias"
		                                    : NULL;
		if (why) {
			snprintf(row->note, sizeof row->note, "skipped: %s", why);
			continue;
		}
		int ti = e->ntargets++;
		e->targets[ti] = li;
		e->target_of_value[L->lin_vi] = ti;
		e->sum_fp[ti] = calloc((size_t)L->cout, sizeof **e->sum_fp);
		e->sum_q[ti] = calloc((size_t)L->cout, sizeof **e->sum_q);
		if (!e->sum_fp[ti] || !e->sum_q[ti])
			return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory correcting biases");
	}
	return DFQ_OK;
}

/* Stage ti: QUANT pass measuring target ti, then its correction. */
static dfq_status emp_stage(struct emp *e, struct dfq_exec *ex, int ti, dfq_batch_fn next,
                            void *user, struct dfq_step_row *row, struct dfq_error *err)
{
	struct dfq_model *m = e->m;
	int li = e->targets[ti];
	dfq_status st = dfq_model_exec_prepare(m, ex, DFQ_RUN_QUANT, err);
	if (st != DFQ_OK)
		return st;
	e->ctx = model_hook_ctx_for(m, ex, err);
	if (!e->ctx)
		return err ? err->status : DFQ_ERR_NOMEM;
	e->ctx->extra = emp_record;
	e->ctx->extra_user = e;
	e->ctx->stop = false;
	dfq_exec_set_hook(ex, model_hook, e->ctx);
	e->stage = ti;
	st = emp_pass(e, ex, next, user, err);
	e->ctx->extra = NULL;
	if (st != DFQ_OK)
		return st;
	if (e->count[ti] == 0 || e->count_q[ti] == 0)
		return dfq_error_set(err, DFQ_ERR_INTERNAL,
		                     "layer '%s': its output was not seen while measuring",
		                     m->layers[li].name);
	struct dfq_layer *L;
	st = model_writable_layer(m, li, &L, err);
	if (st == DFQ_OK && L->bcorr_q)
		st = model_writable_floats(&L->bcorr_q, L->cout, err);
	if (st != DFQ_OK)
		return st;
	if (!L->bcorr_q) {
		L->bcorr_q = rc_alloc((size_t)L->cout * sizeof *L->bcorr_q);
		if (!L->bcorr_q)
			return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory correcting biases");
	}
	double before = 0.0, added = 0.0;
	for (int64_t c = 0; c < L->cout; c++) {
		double d = e->sum_fp[ti][c] / (double)e->count[ti] -
		           e->sum_q[ti][c] / (double)e->count_q[ti];
		before = fmax(before, fabs(d));
		added = fmax(added, fabs(d));
		L->bcorr_q[c] = (float)(L->bcorr_q[c] + d);
	}
	L->steps |= DFQ_STEP_BIASCORR;
	L->bcorr_empirical = true;
	row->before = before;
	row->after = added;
	row->extra = (double)e->samples;
	row->changed = true;
	snprintf(row->note, sizeof row->note, "empirical: mean output error over %lld samples",
	         (long long)e->samples);
	return model_layer_update(m, li, err);
}

dfq_status dfq_model_biascorr_empirical(struct dfq_model *m, struct dfq_exec *ex, const bool *sel,
                                        dfq_batch_fn next, void *user, struct dfq_step_report *rep,
                                        struct dfq_error *err)
{
	if (m->g->ninputs != 1)
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "bias correction from data needs a model with one input (this "
		                     "one has %d)",
		                     m->g->ninputs);
	if (!next)
		return dfq_error_set(err, DFQ_ERR_ARG, "bias correction from data needs batches");
	struct model_step s;
	struct dfq_step_report r;
	dfq_status st = model_step_open(m, &s, &r, DFQ_STEP_BIASCORR, err);
	if (st != DFQ_OK)
		return st;
	struct emp e = {0};
	st = emp_init(&e, m, sel, &r, err);
	/* FP32 reference: every target in one pass */
	if (st == DFQ_OK && e.ntargets > 0) {
		st = dfq_model_exec_prepare(m, ex, DFQ_RUN_FP32, err);
		if (st == DFQ_OK) {
			e.ctx = model_hook_ctx_for(m, ex, err);
			st = e.ctx ? DFQ_OK : (err ? err->status : DFQ_ERR_NOMEM);
		}
		if (st == DFQ_OK) {
			e.ctx->extra = emp_record;
			e.ctx->extra_user = &e;
			dfq_exec_set_hook(ex, model_hook, e.ctx);
			st = emp_pass(&e, ex, next, user, err);
			e.ctx->extra = NULL;
		}
	}
	/* then layer by layer, each seeing the earlier ones corrected */
	for (int ti = 0, ri = 0; st == DFQ_OK && ti < e.ntargets; ti++) {
		while (r.rows[ri].layer != e.targets[ti])
			ri++;
		st = emp_stage(&e, ex, ti, next, user, &r.rows[ri], err);
	}
	model_exec_reset(ex);
	emp_free(&e);
	r.samples = e.samples;
	st = model_step_finish(m, &s, st, "biascorr --empirical", &r, err);
	if (st != DFQ_OK)
		return st;
	snprintf(r.summary, sizeof r.summary,
	         "empirical bias correction of %d layer%s over %lld samples", r.nchanged,
	         r.nchanged == 1 ? "" : "s", (long long)e.samples);
	model_report_hand(&r, rep);
	return DFQ_OK;
}
