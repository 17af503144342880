/* model_layer.c - what a layer runs with (its fake-quantized weights and run-time biases), kept
 * up to date copy-on-write, and what a change of a layer makes obsolete. */
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

dfq_status model_layer_qconfig(const struct dfq_model *m, int li, const struct dfq_qconfig *q,
                               const struct dfq_qconfig **cfg, struct dfq_error *err)
{
	*cfg = NULL;
	if (li < 0 || li >= m->nlayers)
		return dfq_error_set(err, DFQ_ERR_ARG, "no layer %d (the model has %d)", li,
		                     m->nlayers);
	const struct dfq_layer *L = &m->layers[li];
	if (!q && !L->quantized)
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "layer '%s' is not quantized: quantize it or give bits",
		                     L->name);
	const struct dfq_qconfig *c = q ? q : &L->q;
	if (c->wbits < DFQ_QBITS_MIN || c->wbits > DFQ_QBITS_MAX)
		return dfq_error_set(err, DFQ_ERR_ARG, "weight bits must be %d to %d, not %d",
		                     DFQ_QBITS_MIN, DFQ_QBITS_MAX, c->wbits);
	*cfg = c;
	return DFQ_OK;
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
/* --- run-time biases ------------------------------------------------------------ */

/* b + add (add may be NULL), fake-quantized over its own min/max when bbits
 * is 8 or 16, into *out: reused when it is the model's alone, else new. */
static dfq_status build_bias(const struct dfq_model *m, const struct dfq_layer *L, const float *add,
                             int bbits, dfq_qscheme scheme, struct dfq_tensor **out,
                             struct dfq_error *err)
{
	const struct dfq_tensor *b = m->g->values[L->b_vi].init;
	struct dfq_tensor *t = *out && !dfq_tensor_shared(*out) ? *out : dfq_tensor_clone(b, err);
	if (!t)
		return err ? err->status : DFQ_ERR_NOMEM;
	const float *src = dfq_tensor_f32(b);
	float *dst = dfq_tensor_f32(t);
	for (int64_t o = 0; o < b->numel; o++)
		dst[o] = add ? src[o] + add[o] : src[o];
	dfq_status st = DFQ_OK;
	if (bbits == 8 || bbits == 16) {
		float lo, hi;
		struct dfq_qparams qp;
		st = dfq_minmax(dst, b->numel, &lo, &hi, err);
		if (st == DFQ_OK)
			st = dfq_qparams_make(bbits, scheme, lo, hi, &qp, err);
		if (st == DFQ_OK)
			dfq_fake_quant(dst, b->numel, &qp);
	}
	if (st != DFQ_OK) {
		if (t != *out)
			dfq_tensor_free(t);
		return st;
	}
	if (t != *out) {
		dfq_tensor_free(*out);
		*out = t;
	}
	return DFQ_OK;
}

static void drop_tensor(struct dfq_tensor **t)
{
	dfq_tensor_free(*t);
	*t = NULL;
}

static dfq_status update_biases(struct dfq_model *m, struct dfq_layer *L, struct dfq_error *err)
{
	if (L->b_vi < 0) {
		drop_tensor(&L->b_run_q);
		drop_tensor(&L->b_run_fp);
		return DFQ_OK;
	}
	int bbits = L->quantized ? L->q.bbits : 0;
	dfq_status st = DFQ_OK;
	if (L->bcorr_q || bbits == 8 || bbits == 16)
		st = build_bias(m, L, L->bcorr_q, bbits, L->q.scheme, &L->b_run_q, err);
	else
		drop_tensor(&L->b_run_q);
	if (st != DFQ_OK)
		return st;
	if (L->bcorr_fp)
		st = build_bias(m, L, L->bcorr_fp, 0, L->q.scheme, &L->b_run_fp, err);
	else
		drop_tensor(&L->b_run_fp);
	return st;
}

/* The fake-quantized weights of a quantized layer, into a tensor and grids
 * of its own (reused when nothing else holds them). */
static dfq_status update_weights(struct dfq_model *m, struct dfq_layer *L, struct dfq_error *err)
{
	if (!L->quantized) {
		drop_tensor(&L->wq);
		rc_unref(L->wqp);
		L->wqp = NULL;
		L->nwqp = 0;
		return DFQ_OK;
	}
	const struct dfq_tensor *w = m->g->values[L->w_vi].init;
	int nqp = L->q.per_channel ? (int)L->cout : 1;
	struct dfq_tensor *wq =
	    L->wq && !dfq_tensor_shared(L->wq) ? L->wq : dfq_tensor_clone(w, err);
	struct dfq_qparams *qp = L->wqp && !rc_shared(L->wqp) && L->nwqp == nqp
	                             ? L->wqp
	                             : rc_alloc((size_t)nqp * sizeof *qp);
	dfq_status st = wq && qp ? DFQ_OK : dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
	if (st == DFQ_OK)
		st = model_quantize_w(L, w, &L->q, wq, qp, err);
	if (st != DFQ_OK) {
		if (wq != L->wq)
			dfq_tensor_free(wq);
		if (qp != L->wqp)
			rc_unref(qp);
		return dfq_error_prefix(err, "layer '%s'", L->name);
	}
	if (wq != L->wq) {
		dfq_tensor_free(L->wq);
		L->wq = wq;
	}
	if (qp != L->wqp) {
		rc_unref(L->wqp);
		L->wqp = qp;
		L->nwqp = nqp;
	}
	return DFQ_OK;
}

dfq_status model_layer_update(struct dfq_model *m, int li, struct dfq_error *err)
{
	struct dfq_layer *L;
	dfq_status st = model_writable_layer(m, li, &L, err);
	if (st == DFQ_OK)
		st = update_weights(m, L, err);
	if (st == DFQ_OK)
		st = update_biases(m, L, err);
	return st;
}

/* --- what a change makes obsolete ----------------------------------------------------- */

/* Drop layer li's QUANT-mode correction (and with all, its FP32 one). */
static dfq_status drop_bcorr(struct dfq_model *m, int li, bool all, struct dfq_step_report *r,
                             struct dfq_error *err)
{
	const struct dfq_layer *C = &m->layers[li];
	if (!C->bcorr_q && !(all && C->bcorr_fp))
		return DFQ_OK;
	struct dfq_layer *L;
	dfq_status st = model_writable_layer(m, li, &L, err);
	if (st != DFQ_OK)
		return st;
	rc_unref(L->bcorr_q);
	L->bcorr_q = NULL;
	L->bcorr_empirical = false;
	if (all) {
		rc_unref(L->bcorr_fp);
		L->bcorr_fp = NULL;
	}
	if (!L->bcorr_fp)
		L->steps &= ~(unsigned)DFQ_STEP_BIASCORR;
	if (r)
		r->ndropped++;
	return model_layer_update(m, li, err);
}

dfq_status model_layer_changed(struct dfq_model *m, int li, enum model_change what,
                               struct dfq_step_report *r, struct dfq_error *err)
{
	dfq_status st = drop_bcorr(m, li, what != CHANGED_GRID, r, err);
	for (int k = li + 1; k < m->nlayers && st == DFQ_OK; k++)
		if (m->layers[k].bcorr_empirical)
			st = drop_bcorr(m, k, false, r, err);
	if (what != CHANGED_GRID)
		m->data_stale = true;
	return st;
}

dfq_status model_drop_empirical(struct dfq_model *m, struct dfq_step_report *r,
                                struct dfq_error *err)
{
	dfq_status st = DFQ_OK;
	for (int k = 0; k < m->nlayers && st == DFQ_OK; k++)
		if (m->layers[k].bcorr_empirical)
			st = drop_bcorr(m, k, false, r, err);
	return st;
}
