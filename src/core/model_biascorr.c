/* model_biascorr.c - bias correction (paper sec. 4.2), analytic and empirical, and the weight
 * quantization error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* --- analytic --------------------------------------------------------------- */

/* E[x] of layer L's input, one entry per input channel (cin), from the
 * descriptor of its input value; NULL with *why set when unknown. */
static double *expected_input(const struct dfq_layer *L, const struct vdesc *d, const char **why,
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
static void predicted_error(const struct dfq_layer *L, const float *w, const float *ref,
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

static const char *bc_blocker(const struct dfq_layer *L)
{
	if (!L->editable)
		return L->why_fixed;
	if (L->bn_node >= 0)
		return "BatchNorm not folded yet: run fold first";
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
	out->q = malloc((size_t)L->cout * sizeof *out->q);
	if (L->w_ref)
		out->fp = malloc((size_t)L->cout * sizeof *out->fp);
	if (!pred || !out->q || (L->w_ref && !out->fp)) {
		free(pred);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory correcting biases");
	}
	predicted_error(L, wq, ref, ex, pred);
	double before = 0.0, extra = 0.0;
	for (int64_t o = 0; o < L->cout; o++) {
		out->q[o] = (float)-pred[o];
		before = fmax(before, fabs(pred[o]));
		extra = fmax(extra, fabs(pred[o]));
	}
	if (L->w_ref) {
		predicted_error(L, w, ref, ex, pred);
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
	struct vdesc *d;
	dfq_status st = model_vdesc_compute(m, &d, err);
	if (st != DFQ_OK)
		return st;
	struct dfq_step_report r;
	dfq_step_report_init(&r);
	r.step = DFQ_STEP_BIASCORR;
	r.has_stats = m->has_stats;
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
			ex = expected_input(L, &d[L->in_vi], &why, err, &nomem);
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
		struct dfq_layer *L = &m->layers[row->layer];
		model_layer_drop_bcorr(L);
		L->bcorr_q = nw[row->layer].q;
		L->bcorr_fp = nw[row->layer].fp;
		nw[row->layer].q = nw[row->layer].fp = NULL;
		L->steps |= DFQ_STEP_BIASCORR;
		st = model_layer_update(m, row->layer, err);
		row->after = residual(m, L);
		snprintf(row->note, sizeof row->note, "analytic: corrected %lld channels%s",
		         (long long)L->cout,
		         L->bcorr_fp ? " (and the clipping error in FP32)" : "");
	}
	for (int li = 0; nw && li < m->nlayers; li++) {
		free(nw[li].q);
		free(nw[li].fp);
	}
	free(nw);
	if (st != DFQ_OK) {
		dfq_step_report_free(&r);
		return st;
	}
	model_report_count(&r);
	snprintf(r.summary, sizeof r.summary,
	         "analytic bias correction of %d layer%s (%d left as they are)%s", r.nchanged,
	         r.nchanged == 1 ? "" : "s", r.nskipped,
	         m->has_stats ? "" : "; the model has no BN statistics: use --empirical");
	model_report_hand(&r, rep);
	return DFQ_OK;
}

/* --- empirical --------------------------------------------------------------------- */

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
			int pi = e->m->priv->point_of_value[g->inputs[0]];
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
		                  : L->bn_node >= 0 ? "BatchNorm not folded yet: run fold first"
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

/* Keep (copies of) the QUANT corrections so a failure can put them back. */
static dfq_status save_bcorr(const struct dfq_model *m, float ***out, struct dfq_error *err)
{
	float **s = calloc((size_t)(m->nlayers ? m->nlayers : 1), sizeof *s);
	if (!s)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory correcting biases");
	for (int li = 0; li < m->nlayers; li++) {
		const struct dfq_layer *L = &m->layers[li];
		if (!L->bcorr_q)
			continue;
		s[li] = malloc((size_t)L->cout * sizeof **s);
		if (!s[li]) {
			for (int k = 0; k < li; k++)
				free(s[k]);
			free(s);
			return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory correcting biases");
		}
		memcpy(s[li], L->bcorr_q, (size_t)L->cout * sizeof **s);
	}
	*out = s;
	return DFQ_OK;
}

static void restore_bcorr(struct dfq_model *m, float **saved, const unsigned *steps)
{
	for (int li = 0; li < m->nlayers; li++) {
		struct dfq_layer *L = &m->layers[li];
		free(L->bcorr_q);
		L->bcorr_q = saved[li];
		saved[li] = NULL;
		L->steps = steps[li];
		model_layer_update(m, li, NULL);
	}
}

/* Stage ti: QUANT pass measuring target ti, then its correction. */
static dfq_status emp_stage(struct emp *e, struct dfq_exec *ex, int ti, dfq_batch_fn next,
                            void *user, struct dfq_step_row *row, struct dfq_error *err)
{
	struct dfq_model *m = e->m;
	struct dfq_layer *L = &m->layers[e->targets[ti]];
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
		                     L->name);
	if (!L->bcorr_q) {
		L->bcorr_q = calloc((size_t)L->cout, sizeof *L->bcorr_q);
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
	row->before = before;
	row->after = added;
	row->extra = (double)e->samples;
	row->changed = true;
	snprintf(row->note, sizeof row->note, "empirical: mean output error over %lld samples",
	         (long long)e->samples);
	return model_layer_update(m, e->targets[ti], err);
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
	struct dfq_step_report r;
	dfq_step_report_init(&r);
	r.step = DFQ_STEP_BIASCORR;
	r.has_stats = m->has_stats;
	struct emp e = {0};
	float **saved = NULL;
	unsigned *steps = malloc((size_t)(m->nlayers ? m->nlayers : 1) * sizeof *steps);
	dfq_status st = steps ? emp_init(&e, m, sel, &r, err)
	                      : dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
	if (st == DFQ_OK)
		st = save_bcorr(m, &saved, err);
	for (int li = 0; st == DFQ_OK && li < m->nlayers; li++)
		steps[li] = m->layers[li].steps;
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
	if (st != DFQ_OK && saved)
		restore_bcorr(m, saved, steps);
	if (saved) {
		for (int li = 0; li < m->nlayers; li++)
			free(saved[li]);
		free(saved);
	}
	free(steps);
	emp_free(&e);
	if (st != DFQ_OK) {
		dfq_step_report_free(&r);
		return st;
	}
	model_report_count(&r);
	snprintf(r.summary, sizeof r.summary,
	         "empirical bias correction of %d layer%s over %lld samples", r.nchanged,
	         r.nchanged == 1 ? "" : "s", (long long)e.samples);
	model_report_hand(&r, rep);
	return DFQ_OK;
}

/* --- weight quantization error ------------------------------------------------------ */

/* [in, out] -> [out, in] copy of a rank-2 tensor. */
static struct dfq_tensor *transposed(const struct dfq_tensor *t, struct dfq_error *err)
{
	int64_t dims[2] = {t->dims[1], t->dims[0]};
	struct dfq_tensor *o = dfq_tensor_new(DFQ_DTYPE_F32, 2, dims, err);
	if (!o)
		return NULL;
	const float *s = dfq_tensor_f32(t);
	float *d = dfq_tensor_f32(o);
	for (int64_t i = 0; i < t->dims[0]; i++)
		for (int64_t j = 0; j < t->dims[1]; j++)
			d[j * t->dims[0] + i] = s[i * t->dims[1] + j];
	return o;
}

dfq_status dfq_model_weight_error(const struct dfq_model *m, int li, const struct dfq_qconfig *q,
                                  dfq_qerr_reduce reduce, struct dfq_tensor **eps,
                                  struct dfq_qerr_stats *stats, struct dfq_error *err)
{
	if (eps)
		*eps = NULL;
	if (li < 0 || li >= m->nlayers)
		return dfq_error_set(err, DFQ_ERR_ARG, "no layer %d (the model has %d)", li,
		                     m->nlayers);
	const struct dfq_layer *L = &m->layers[li];
	if (!q && !L->quantized)
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "layer '%s' is not quantized: quantize it or give bits",
		                     L->name);
	const struct dfq_tensor *w = m->g->values[L->w_vi].init;
	struct dfq_tensor *tmp = NULL;
	const struct dfq_tensor *wq = L->wq;
	dfq_status st = DFQ_OK;
	if (q) {
		if (q->wbits < DFQ_QBITS_MIN || q->wbits > DFQ_QBITS_MAX)
			return dfq_error_set(err, DFQ_ERR_ARG,
			                     "weight bits must be %d to %d, not %d", DFQ_QBITS_MIN,
			                     DFQ_QBITS_MAX, q->wbits);
		tmp = dfq_tensor_clone(w, err);
		if (!tmp)
			return err ? err->status : DFQ_ERR_NOMEM;
		st = model_quantize_w(L, w, q, tmp, NULL, err);
		wq = tmp;
	}
	if (st == DFQ_OK && stats)
		dfq_qerr_stats(dfq_tensor_f32(w), dfq_tensor_f32(wq), w->numel, stats);
	if (st == DFQ_OK && eps) {
		/* reductions count output channels on axis 0 */
		if (L->w_ostride == 1 && L->cout > 1 && w->ndim == 2) {
			struct dfq_tensor *a = transposed(w, err),
			                  *b = a ? transposed(wq, err) : NULL;
			st = a && b ? dfq_quantize_error(a, b, reduce, eps, err)
			            : (err ? err->status : DFQ_ERR_NOMEM);
			dfq_tensor_free(a);
			dfq_tensor_free(b);
		} else {
			st = dfq_quantize_error(w, wq, reduce, eps, err);
		}
	}
	dfq_tensor_free(tmp);
	return st;
}
