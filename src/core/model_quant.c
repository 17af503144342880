/* model_quant.c - quantize/dequantize layers, run-time tensors, and fake-quant execution. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* --- weights --------------------------------------------------------------- */

/* W stored [in, out] (Gemm transB=0, MatMul) and per-channel grids: go
 * through an [out, in] copy so dfq_quantize_weights sees channels on axis 0. */
static dfq_status quantize_transposed(const struct dfq_layer *L, const struct dfq_tensor *w,
                                      const struct dfq_qconfig *q, struct dfq_tensor *out,
                                      struct dfq_qparams *qp, struct dfq_error *err)
{
	int64_t dims[2] = {L->cout, L->cin};
	struct dfq_tensor *t = dfq_tensor_new(DFQ_DTYPE_F32, 2, dims, err);
	if (!t)
		return err ? err->status : DFQ_ERR_NOMEM;
	const float *src = dfq_tensor_f32(w);
	float *tt = dfq_tensor_f32(t);
	for (int64_t i = 0; i < L->cin; i++)
		for (int64_t o = 0; o < L->cout; o++)
			tt[o * L->cin + i] = src[i * L->cout + o];
	dfq_status st = dfq_quantize_weights(t, q->wbits, q->scheme, true, t, qp, err);
	if (st == DFQ_OK) {
		float *dst = dfq_tensor_f32(out);
		for (int64_t i = 0; i < L->cin; i++)
			for (int64_t o = 0; o < L->cout; o++)
				dst[i * L->cout + o] = tt[o * L->cin + i];
	}
	dfq_tensor_free(t);
	return st;
}

dfq_status model_quantize_w(const struct dfq_layer *L, const struct dfq_tensor *w,
                            const struct dfq_qconfig *q, struct dfq_tensor *out,
                            struct dfq_qparams *qp, struct dfq_error *err)
{
	if (q->per_channel && L->w_ostride == 1 && L->cout > 1)
		return quantize_transposed(L, w, q, out, qp, err);
	return dfq_quantize_weights(w, q->wbits, q->scheme, q->per_channel, out, qp, err);
}

/* --- run-time biases ------------------------------------------------------------ */

/* b + add (add may be NULL), fake-quantized over its own min/max when bbits
 * is 8 or 16.  *out is reused when it exists. */
static dfq_status build_bias(const struct dfq_model *m, const struct dfq_layer *L, const float *add,
                             int bbits, dfq_qscheme scheme, struct dfq_tensor **out,
                             struct dfq_error *err)
{
	const struct dfq_tensor *b = m->g->values[L->b_vi].init;
	if (!*out) {
		*out = dfq_tensor_clone(b, err);
		if (!*out)
			return err ? err->status : DFQ_ERR_NOMEM;
	}
	const float *src = dfq_tensor_f32(b);
	float *dst = dfq_tensor_f32(*out);
	for (int64_t o = 0; o < b->numel; o++)
		dst[o] = add ? src[o] + add[o] : src[o];
	if (bbits != 8 && bbits != 16)
		return DFQ_OK;
	float lo, hi;
	struct dfq_qparams qp;
	dfq_status st = dfq_minmax(dst, b->numel, &lo, &hi, err);
	if (st == DFQ_OK)
		st = dfq_qparams_make(bbits, scheme, lo, hi, &qp, err);
	if (st == DFQ_OK)
		dfq_fake_quant(dst, b->numel, &qp);
	return st;
}

static dfq_status update_biases(struct dfq_model *m, struct dfq_layer *L, struct dfq_error *err)
{
	if (L->b_vi < 0) {
		dfq_tensor_free(L->b_run_q);
		dfq_tensor_free(L->b_run_fp);
		L->b_run_q = L->b_run_fp = NULL;
		return DFQ_OK;
	}
	int bbits = L->quantized ? L->q.bbits : 0;
	dfq_status st = DFQ_OK;
	if (L->bcorr_q || bbits == 8 || bbits == 16) {
		st = build_bias(m, L, L->bcorr_q, bbits, L->q.scheme, &L->b_run_q, err);
	} else {
		dfq_tensor_free(L->b_run_q);
		L->b_run_q = NULL;
	}
	if (st != DFQ_OK)
		return st;
	if (L->bcorr_fp) {
		st = build_bias(m, L, L->bcorr_fp, 0, L->q.scheme, &L->b_run_fp, err);
	} else {
		dfq_tensor_free(L->b_run_fp);
		L->b_run_fp = NULL;
	}
	return st;
}

dfq_status model_layer_update(struct dfq_model *m, int li, struct dfq_error *err)
{
	struct dfq_layer *L = &m->layers[li];
	if (L->quantized) {
		const struct dfq_tensor *w = m->g->values[L->w_vi].init;
		int nqp = L->q.per_channel ? (int)L->cout : 1;
		if (!L->wq) {
			L->wq = dfq_tensor_clone(w, err);
			if (!L->wq)
				return err ? err->status : DFQ_ERR_NOMEM;
		}
		if (!L->wqp || L->nwqp != nqp) {
			struct dfq_qparams *qp = realloc(L->wqp, (size_t)nqp * sizeof *qp);
			if (!qp)
				return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
			L->wqp = qp;
			L->nwqp = nqp;
		}
		dfq_status st = model_quantize_w(L, w, &L->q, L->wq, L->wqp, err);
		if (st != DFQ_OK)
			return dfq_error_prefix(err, "layer '%s'", L->name);
	} else {
		dfq_tensor_free(L->wq);
		free(L->wqp);
		L->wq = NULL;
		L->wqp = NULL;
		L->nwqp = 0;
	}
	return update_biases(m, L, err);
}

void model_layer_drop_bcorr(struct dfq_layer *L)
{
	free(L->bcorr_q);
	free(L->bcorr_fp);
	L->bcorr_q = L->bcorr_fp = NULL;
	L->steps &= ~(unsigned)DFQ_STEP_BIASCORR;
}

/* --- quantize / dequantize ------------------------------------------------------- */

static dfq_status check_qconfig(const struct dfq_qconfig *q, struct dfq_error *err)
{
	if (q->wbits < DFQ_QBITS_MIN || q->wbits > DFQ_QBITS_MAX)
		return dfq_error_set(err, DFQ_ERR_ARG, "weight bits must be %d to %d, not %d",
		                     DFQ_QBITS_MIN, DFQ_QBITS_MAX, q->wbits);
	if (q->abits != 0 && (q->abits < DFQ_QBITS_MIN || q->abits > DFQ_QBITS_MAX))
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "activation bits must be %d to %d (or 0 for float), not %d",
		                     DFQ_QBITS_MIN, DFQ_QBITS_MAX, q->abits);
	if (q->bbits != 0 && q->bbits != 8 && q->bbits != 16 && q->bbits != 32)
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "bias bits must be 0 (float), 8, 16 or 32, not %d", q->bbits);
	if (q->scheme != DFQ_QSCHEME_ASYM && q->scheme != DFQ_QSCHEME_SYM)
		return dfq_error_set(err, DFQ_ERR_ARG, "unknown quantization scheme %d",
		                     (int)q->scheme);
	return DFQ_OK;
}

static bool all_selected(const struct dfq_model *m, const bool *sel)
{
	for (int i = 0; sel && i < m->nlayers; i++)
		if (!sel[i])
			return false;
	return true;
}

/* Points that should quantize but have no range. */
static int points_without_range(const struct dfq_model *m)
{
	int n = 0;
	for (int i = 0; i < m->npoints; i++)
		if (m->points[i].bits > 0 && !m->points[i].enabled)
			n++;
	return n;
}

static void qconfig_str(const struct dfq_qconfig *q, char *buf, size_t len)
{
	char bb[16];
	snprintf(bb, sizeof bb, q->bbits ? "b%d" : "b-float", q->bbits);
	snprintf(buf, len, "w%d a%d %s %s %s", q->wbits, q->abits, bb,
	         q->scheme == DFQ_QSCHEME_SYM ? "sym" : "asym",
	         q->per_channel ? "per-channel" : "per-tensor");
}

dfq_status dfq_model_quantize(struct dfq_model *m, const bool *sel, const struct dfq_qconfig *q,
                              struct dfq_step_report *rep, struct dfq_error *err)
{
	dfq_status st = check_qconfig(q, err);
	if (st != DFQ_OK)
		return st;
	for (int li = 0; li < m->nlayers; li++) {
		const struct dfq_layer *L = &m->layers[li];
		if (model_selected(sel, li) && L->bn_node >= 0)
			return dfq_error_set(err, DFQ_ERR_ARG,
			                     "layer '%s' still has its BatchNormalization '%s': "
			                     "run fold first",
			                     L->name, m->g->nodes[L->bn_node].name);
	}
	struct dfq_step_report r;
	dfq_step_report_init(&r);
	r.step = DFQ_STEP_QUANTIZE;
	/* compute every new weight tensor before changing anything */
	struct dfq_tensor **nq = calloc((size_t)(m->nlayers ? m->nlayers : 1), sizeof *nq);
	struct dfq_qparams **nqp = calloc((size_t)(m->nlayers ? m->nlayers : 1), sizeof *nqp);
	if (!nq || !nqp)
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory quantizing");
	char cfg[96];
	qconfig_str(q, cfg, sizeof cfg);
	for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
		struct dfq_layer *L = &m->layers[li];
		struct dfq_step_row *row = model_step_row(m, sel, li, true, &r, &st, err);
		if (!row)
			continue; /* not selected, skipped, or st set (ends the loop) */
		const struct dfq_tensor *w = m->g->values[L->w_vi].init;
		nq[li] = dfq_tensor_clone(w, err);
		nqp[li] = malloc((size_t)(q->per_channel ? L->cout : 1) * sizeof **nqp);
		if (!nq[li] || !nqp[li]) {
			st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory quantizing");
			break;
		}
		st = model_quantize_w(L, w, q, nq[li], nqp[li], err);
		if (st != DFQ_OK) {
			dfq_error_prefix(err, "layer '%s'", L->name);
			break;
		}
		const float *wd = dfq_tensor_f32(w);
		if (L->quantized && L->wq)
			row->before = dfq_sqnr_db(wd, dfq_tensor_f32(L->wq), w->numel);
		struct dfq_qerr_stats es;
		dfq_qerr_stats(wd, dfq_tensor_f32(nq[li]), w->numel, &es);
		row->after = es.sqnr_db;
		row->extra = es.max_abs;
		row->changed = true;
		snprintf(row->note, sizeof row->note, "%s", cfg);
	}
	if (st == DFQ_OK) {
		/* commit */
		for (int li = 0; li < m->nlayers; li++) {
			if (!nqp[li])
				continue;
			struct dfq_layer *L = &m->layers[li];
			if (L->wq) {
				/* keep the tensor an executor may still point at */
				memcpy(L->wq->data, nq[li]->data,
				       (size_t)nq[li]->numel * sizeof(float));
			} else {
				L->wq = nq[li];
				nq[li] = NULL;
			}
			free(L->wqp);
			L->wqp = nqp[li];
			L->nwqp = q->per_channel ? (int)L->cout : 1;
			nqp[li] = NULL;
			L->quantized = true;
			L->q = *q;
			L->steps |= DFQ_STEP_QUANTIZE;
			if (st == DFQ_OK)
				st = update_biases(m, L, err);
		}
		if (all_selected(m, sel)) {
			m->aux_q = *q;
			m->aux_enabled = q->abits > 0;
		}
		if (st == DFQ_OK)
			st = model_refresh(m, err);
	}
	for (int li = 0; nq && li < m->nlayers; li++) {
		dfq_tensor_free(nq[li]);
		free(nqp[li]);
	}
	free(nq);
	free(nqp);
	if (st != DFQ_OK) {
		dfq_step_report_free(&r);
		return st;
	}
	model_report_count(&r);
	int nr = points_without_range(m);
	char tail[160] = "";
	if (nr > 0)
		snprintf(tail, sizeof tail,
		         "; %d activation tensor%s without a range stay%s float (measure data or "
		         "set the input range)",
		         nr, nr == 1 ? "" : "s", nr == 1 ? "s" : "");
	snprintf(r.summary, sizeof r.summary, "quantized %d layer%s (%s)%s", r.nchanged,
	         r.nchanged == 1 ? "" : "s", cfg, tail);
	model_report_hand(&r, rep);
	return DFQ_OK;
}

dfq_status dfq_model_dequantize(struct dfq_model *m, const bool *sel, struct dfq_step_report *rep,
                                struct dfq_error *err)
{
	struct dfq_step_report r;
	dfq_step_report_init(&r);
	r.step = DFQ_STEP_QUANTIZE;
	dfq_status st = DFQ_OK;
	for (int li = 0; li < m->nlayers; li++) {
		if (!model_selected(sel, li) || !m->layers[li].quantized)
			continue;
		struct dfq_step_row *row = model_report_row(&r, li, err);
		if (!row) {
			dfq_step_report_free(&r);
			return err ? err->status : DFQ_ERR_NOMEM;
		}
		row->changed = true;
		row->extra = m->layers[li].q.wbits;
		snprintf(row->note, sizeof row->note, "back to float");
	}
	for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
		struct dfq_layer *L = &m->layers[li];
		if (!model_selected(sel, li) || !L->quantized)
			continue;
		L->quantized = false;
		L->steps &= ~(unsigned)DFQ_STEP_QUANTIZE;
		st = model_layer_update(m, li, err);
	}
	if (all_selected(m, sel))
		m->aux_enabled = false;
	st = model_step_finish(m, &r, st, err);
	if (st != DFQ_OK)
		return st;
	snprintf(r.summary, sizeof r.summary, "%d layer%s back to float", r.nchanged,
	         r.nchanged == 1 ? "" : "s");
	model_report_hand(&r, rep);
	return DFQ_OK;
}

dfq_status dfq_model_set_aux_quant(struct dfq_model *m, int bits, dfq_qscheme scheme,
                                   struct dfq_error *err)
{
	if (bits != 0 && (bits < DFQ_QBITS_MIN || bits > DFQ_QBITS_MAX))
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "activation bits must be %d to %d (or 0 for float), not %d",
		                     DFQ_QBITS_MIN, DFQ_QBITS_MAX, bits);
	if (scheme != DFQ_QSCHEME_ASYM && scheme != DFQ_QSCHEME_SYM)
		return dfq_error_set(err, DFQ_ERR_ARG, "unknown quantization scheme %d",
		                     (int)scheme);
	m->aux_q.abits = bits;
	m->aux_q.scheme = scheme;
	m->aux_enabled = bits > 0;
	return model_refresh(m, err);
}

/* --- execution ---------------------------------------------------------------- */

void model_exec_reset(struct dfq_exec *ex)
{
	dfq_exec_set_hook(ex, NULL, NULL);
	dfq_exec_clear_overrides(ex);
	dfq_exec_clear_quants(ex);
}

struct model_hook_ctx *model_hook_ctx_for(struct dfq_model *m, struct dfq_exec *ex,
                                          struct dfq_error *err)
{
	struct dfq_model_priv *p = m->priv;
	for (int i = 0; i < p->nctxs; i++) {
		if (p->ctxs[i]->ex == ex) {
			return p->ctxs[i];
		}
	}
	struct model_hook_ctx **a = realloc(p->ctxs, (size_t)(p->nctxs + 1) * sizeof *a);
	if (!a) {
		dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory preparing an executor");
		return NULL;
	}
	p->ctxs = a;
	struct model_hook_ctx *c = calloc(1, sizeof *c);
	if (!c) {
		dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory preparing an executor");
		return NULL;
	}
	c->m = m;
	c->ex = ex;
	p->ctxs[p->nctxs++] = c;
	return c;
}

dfq_status model_hook(void *user, const struct dfq_graph *g, int vi, struct dfq_tensor *t,
                      struct dfq_error *err)
{
	struct model_hook_ctx *c = user;
	if (c->extra) {
		dfq_status st = c->extra(c->extra_user, g, vi, t, err);
		if (st != DFQ_OK)
			return st;
		if (c->stop)
			return dfq_error_set(err, DFQ_ERR_INTERNAL, "run stopped early on purpose");
	}
	return DFQ_OK;
}

dfq_status dfq_model_exec_prepare(struct dfq_model *m, struct dfq_exec *ex, dfq_run_mode mode,
                                  struct dfq_error *err)
{
	model_exec_reset(ex);
	dfq_status st = DFQ_OK;
	for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
		const struct dfq_layer *L = &m->layers[li];
		if (mode == DFQ_RUN_QUANT) {
			if (L->quantized && L->wq)
				st = dfq_exec_set_override(ex, L->w_vi, L->wq, err);
			if (st == DFQ_OK && L->b_run_q)
				st = dfq_exec_set_override(ex, L->b_vi, L->b_run_q, err);
		} else if (L->b_run_fp) {
			st = dfq_exec_set_override(ex, L->b_vi, L->b_run_fp, err);
		}
	}
	/* activations: the executor quantizes them (in the fused kernels'
	 * epilogues where it can); graph inputs are quantized by dfq_model_run */
	const struct dfq_graph *g = m->g;
	for (int pi = 0; st == DFQ_OK && mode == DFQ_RUN_QUANT && pi < m->npoints; pi++) {
		const struct dfq_apoint *pt = &m->points[pi];
		if (!pt->enabled || pt->vi < 0 || g->values[pt->vi].init)
			continue;
		bool input = false;
		for (int i = 0; i < g->ninputs; i++)
			input = input || g->inputs[i] == pt->vi;
		if (!input)
			st = dfq_exec_set_quant(ex, pt->vi, &pt->qp, err);
	}
	if (st != DFQ_OK)
		model_exec_reset(ex);
	return st;
}

dfq_status dfq_model_run(struct dfq_model *m, struct dfq_exec *ex, dfq_run_mode mode,
                         struct dfq_tensor *const *inputs, struct dfq_tensor **outputs,
                         struct dfq_error *err)
{
	const struct dfq_graph *g = m->g;
	for (int i = 0; i < g->noutputs; i++)
		outputs[i] = NULL;
	dfq_status st = dfq_model_exec_prepare(m, ex, mode, err);
	if (st != DFQ_OK)
		return st;
	if (mode != DFQ_RUN_QUANT)
		return dfq_exec_run(ex, inputs, outputs, err);
	/* the hook never sees graph inputs: quantize copies of them here */
	struct dfq_tensor **in = calloc((size_t)(g->ninputs ? g->ninputs : 1), sizeof *in);
	struct dfq_tensor **own = calloc((size_t)(g->ninputs ? g->ninputs : 1), sizeof *own);
	if (!in || !own)
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory running the model");
	for (int i = 0; i < g->ninputs && st == DFQ_OK; i++) {
		in[i] = inputs ? inputs[i] : NULL;
		int pi = m->priv->point_of_value[g->inputs[i]];
		if (!in[i] || pi < 0 || !m->points[pi].enabled || in[i]->dtype != DFQ_DTYPE_F32)
			continue;
		own[i] = dfq_tensor_clone(in[i], err);
		if (!own[i]) {
			st = err ? err->status : DFQ_ERR_NOMEM;
			break;
		}
		dfq_fake_quant(dfq_tensor_f32(own[i]), own[i]->numel, &m->points[pi].qp);
		in[i] = own[i];
	}
	if (st == DFQ_OK)
		st = dfq_exec_run(ex, in, outputs, err);
	for (int i = 0; own && i < g->ninputs; i++)
		dfq_tensor_free(own[i]);
	free(in);
	free(own);
	return st;
}
