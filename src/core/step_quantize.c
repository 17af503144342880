/* step_quantize.c - fake quantization of layers (docs/algorithms.md sec. 1): weights on their
 * grid, output activations marked with their bits; back to float; the auxiliary points' bits. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model_internal.h"

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

static void qconfig_str(const struct dfq_qconfig *q, char *buf, size_t len)
{
	char bb[16];
	snprintf(bb, sizeof bb, q->bbits ? "b%d" : "b-float", q->bbits);
	snprintf(buf, len, "w%d a%d %s %s %s", q->wbits, q->abits, bb,
	         q->scheme == DFQ_QSCHEME_SYM ? "sym" : "asym",
	         q->per_channel ? "per-channel" : "per-tensor");
}

/* The weights' grid of a layer quantized with a and with b is the same. */
static bool same_grid(const struct dfq_qconfig *a, const struct dfq_qconfig *b)
{
	return a->wbits == b->wbits && a->scheme == b->scheme && a->per_channel == b->per_channel;
}

/* Quantize layer li with q; row gets the SQNR before/after and max error. */
static dfq_status quantize_layer(struct dfq_model *m, int li, const struct dfq_qconfig *q,
                                 struct dfq_step_row *row, struct dfq_step_report *r,
                                 struct dfq_error *err)
{
	const struct dfq_tensor *w = m->g->values[m->layers[li].w_vi].init;
	const float *wd = dfq_tensor_f32(w);
	struct dfq_layer *L;
	dfq_status st = model_writable_layer(m, li, &L, err);
	if (st != DFQ_OK)
		return st;
	if (L->quantized && L->wq)
		row->before = dfq_sqnr_db(wd, dfq_tensor_f32(L->wq), w->numel);
	/* a correction made for other grids no longer applies */
	bool regrid = !L->quantized || !same_grid(&L->q, q);
	L->quantized = true;
	L->q = *q;
	L->steps |= DFQ_STEP_QUANTIZE;
	st = regrid ? model_layer_changed(m, li, CHANGED_GRID, r, err) : DFQ_OK;
	if (st == DFQ_OK)
		st = model_layer_update(m, li, err);
	if (st != DFQ_OK)
		return st;
	struct dfq_qerr_stats es;
	dfq_qerr_stats(wd, dfq_tensor_f32(L->wq), w->numel, &es);
	row->after = es.sqnr_db;
	row->extra = es.max_abs;
	row->changed = true;
	return DFQ_OK;
}

dfq_status dfq_model_quantize(struct dfq_model *m, const bool *sel, const struct dfq_qconfig *q,
                              struct dfq_step_report *rep, struct dfq_error *err)
{
	dfq_status st = check_qconfig(q, err);
	if (st != DFQ_OK)
		return st;
	for (int li = 0; li < m->nlayers; li++) {
		const struct dfq_layer *L = &m->layers[li];
		if (model_selected(sel, li) && L->bn_node >= 0) {
			dfq_error_set(err, DFQ_ERR_ARG,
			              "layer '%s' still has its BatchNormalization '%s'", L->name,
			              m->g->nodes[L->bn_node].name);
			return dfq_error_remedy(err, DFQ_REMEDY_FOLD);
		}
	}
	struct model_step s;
	struct dfq_step_report r;
	st = model_step_open(m, &s, &r, DFQ_STEP_QUANTIZE, err);
	if (st != DFQ_OK)
		return st;
	char cfg[96];
	qconfig_str(q, cfg, sizeof cfg);
	for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
		struct dfq_step_row *row = model_step_row(m, sel, li, true, &r, &st, err);
		if (!row)
			continue; /* not selected, skipped, or st set (ends the loop) */
		snprintf(row->note, sizeof row->note, "%s", cfg);
		st = quantize_layer(m, li, q, row, &r, err);
		if (st != DFQ_OK)
			dfq_error_prefix(err, "layer '%s'", m->layers[li].name);
	}
	if (st == DFQ_OK && all_selected(m, sel)) {
		m->aux_q = *q;
		m->aux_enabled = q->abits > 0;
	}
	st = model_step_finish(m, &s, st, "quantize", &r, err);
	if (st != DFQ_OK)
		return st;
	snprintf(r.summary, sizeof r.summary, "quantized %d layer%s (%s)", r.nchanged,
	         r.nchanged == 1 ? "" : "s", cfg);
	model_report_hand(&r, rep);
	return DFQ_OK;
}

dfq_status dfq_model_dequantize(struct dfq_model *m, const bool *sel, struct dfq_step_report *rep,
                                struct dfq_error *err)
{
	struct model_step s;
	struct dfq_step_report r;
	dfq_status st = model_step_open(m, &s, &r, DFQ_STEP_QUANTIZE, err);
	if (st != DFQ_OK)
		return st;
	for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
		if (!model_selected(sel, li) || !m->layers[li].quantized)
			continue;
		struct dfq_step_row *row = model_report_row(&r, li, err);
		struct dfq_layer *L;
		if (!row) {
			st = err ? err->status : DFQ_ERR_NOMEM;
			break;
		}
		row->changed = true;
		row->extra = m->layers[li].q.wbits;
		snprintf(row->note, sizeof row->note, "back to float");
		st = model_writable_layer(m, li, &L, err);
		if (st != DFQ_OK)
			break;
		L->quantized = false;
		L->steps &= ~(unsigned)DFQ_STEP_QUANTIZE;
		st = model_layer_changed(m, li, CHANGED_GRID, &r, err);
		if (st == DFQ_OK)
			st = model_layer_update(m, li, err);
	}
	if (st == DFQ_OK && all_selected(m, sel))
		m->aux_enabled = false;
	st = model_step_finish(m, &s, st, "dequantize", &r, err);
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
	struct model_step s;
	dfq_status st = model_step_open(m, &s, NULL, 0, err);
	if (st != DFQ_OK)
		return st;
	m->aux_q.abits = bits;
	m->aux_q.scheme = scheme;
	m->aux_enabled = bits > 0;
	return model_step_close(m, &s, DFQ_OK, "aux-quant", err);
}
