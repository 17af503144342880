/* step_quantize.c - fake quantization of layers (docs/algorithms.md sec. 1): weights on their
 * grid, output activations marked with their bits; back to float; mixed precision (layers pinned
 * float or to bits of their own, which quantize then respects); the auxiliary points' bits. */
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

/* q with the bits pin p gives (false: p keeps the layer float). */
static bool apply_pin(const struct dfq_pin *p, const struct dfq_qconfig *q, struct dfq_qconfig *out)
{
	*out = *q;
	if (p->what & DFQ_PIN_FLOAT)
		return false;
	if (p->what & DFQ_PIN_WBITS)
		out->wbits = p->wbits;
	if (p->what & DFQ_PIN_ABITS)
		out->abits = p->abits;
	return true;
}

bool dfq_layer_pinned_qconfig(const struct dfq_layer *L, const struct dfq_qconfig *q,
                              struct dfq_qconfig *out)
{
	return apply_pin(&L->pin, q, out);
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
	int nfloat = 0, nown = 0;
	for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
		struct dfq_step_row *row = model_step_row(m, sel, li, true, &r, &st, err);
		if (!row)
			continue; /* not selected, skipped, or st set (ends the loop) */
		struct dfq_qconfig lq;
		if (!dfq_layer_pinned_qconfig(&m->layers[li], q, &lq)) {
			snprintf(row->note, sizeof row->note, "kept float (pinned by 'float')");
			nfloat++;
			continue;
		}
		if (m->layers[li].pin.what) {
			char own[96];
			qconfig_str(&lq, own, sizeof own);
			snprintf(row->note, sizeof row->note, "%s (its own bits, pinned)", own);
			nown++;
		} else {
			snprintf(row->note, sizeof row->note, "%s", cfg);
		}
		st = quantize_layer(m, li, &lq, row, &r, err);
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
	int n = snprintf(r.summary, sizeof r.summary, "quantized %d layer%s (%s)", r.nchanged,
	                 r.nchanged == 1 ? "" : "s", cfg);
	if (nfloat > 0 && n > 0 && (size_t)n < sizeof r.summary)
		n += snprintf(r.summary + n, sizeof r.summary - (size_t)n, ", %d kept float",
		              nfloat);
	if (nown > 0 && n > 0 && (size_t)n < sizeof r.summary)
		snprintf(r.summary + n, sizeof r.summary - (size_t)n, ", %d with %s own bits", nown,
		         nown == 1 ? "its" : "their");
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

/* --- mixed precision ---------------------------------------------------------------- */

static dfq_status check_pin(const struct dfq_pin *p, struct dfq_error *err)
{
	unsigned known = DFQ_PIN_FLOAT | DFQ_PIN_WBITS | DFQ_PIN_ABITS;
	if (p->what & ~known)
		return dfq_error_set(err, DFQ_ERR_ARG, "unknown pin 0x%x", p->what);
	if ((p->what & DFQ_PIN_FLOAT) && (p->what & ~(unsigned)DFQ_PIN_FLOAT))
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "a layer is kept float or given bits, not both");
	if ((p->what & DFQ_PIN_WBITS) && (p->wbits < DFQ_QBITS_MIN || p->wbits > DFQ_QBITS_MAX))
		return dfq_error_set(err, DFQ_ERR_ARG, "weight bits must be %d to %d, not %d",
		                     DFQ_QBITS_MIN, DFQ_QBITS_MAX, p->wbits);
	if ((p->what & DFQ_PIN_ABITS) && p->abits != 0 &&
	    (p->abits < DFQ_QBITS_MIN || p->abits > DFQ_QBITS_MAX))
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "activation bits must be %d to %d (or 0 for float), not %d",
		                     DFQ_QBITS_MIN, DFQ_QBITS_MAX, p->abits);
	return DFQ_OK;
}

static bool same_pin(const struct dfq_pin *a, const struct dfq_pin *b)
{
	return a->what == b->what && (!(a->what & DFQ_PIN_WBITS) || a->wbits == b->wbits) &&
	       (!(a->what & DFQ_PIN_ABITS) || a->abits == b->abits);
}

/* "W4 A8", "W4", "A6": the bits a pin gives. */
static void pin_str(const struct dfq_pin *p, char *buf, size_t len)
{
	char w[16] = "", a[16] = "";
	if (p->what & DFQ_PIN_WBITS)
		snprintf(w, sizeof w, "W%d", p->wbits);
	if (p->what & DFQ_PIN_ABITS)
		snprintf(a, sizeof a, p->abits ? "A%d" : "A-float", p->abits);
	snprintf(buf, len, "%s%s%s", w, *w && *a ? " " : "", a);
}

/* Pin layer li; *requant / *dequant count what happened to a quantized layer. */
static dfq_status pin_layer(struct dfq_model *m, int li, const struct dfq_pin *p,
                            struct dfq_step_row *row, struct dfq_step_report *r, int *requant,
                            int *dequant, struct dfq_error *err)
{
	const struct dfq_layer *C = &m->layers[li];
	bool was_q = C->quantized;
	row->before = was_q ? C->q.wbits : 0;
	struct dfq_qconfig nq = C->q;
	bool repin = !same_pin(&C->pin, p);
	bool unquant = was_q && (p->what & DFQ_PIN_FLOAT);
	bool requantize = false;
	if (was_q && !unquant && p->what) {
		apply_pin(p, &C->q, &nq);
		requantize = nq.wbits != C->q.wbits || nq.abits != C->q.abits;
	}
	dfq_status st = DFQ_OK;
	if (repin || unquant || requantize) {
		struct dfq_layer *L;
		st = model_writable_layer(m, li, &L, err);
		if (st != DFQ_OK)
			return st;
		L->pin = *p;
		if (unquant || requantize) {
			bool regrid = unquant || !same_grid(&L->q, &nq);
			if (unquant) {
				L->quantized = false;
				L->steps &= ~(unsigned)DFQ_STEP_QUANTIZE;
			} else {
				L->q = nq;
			}
			st = regrid ? model_layer_changed(m, li, CHANGED_GRID, r, err) : DFQ_OK;
			if (st == DFQ_OK)
				st = model_layer_update(m, li, err);
			if (st != DFQ_OK)
				return st;
		}
	}
	const struct dfq_layer *N = &m->layers[li];
	row->after = N->quantized ? N->q.wbits : 0;
	row->extra = N->quantized ? N->q.abits : NAN;
	row->changed = repin || unquant || requantize;
	*requant += requantize;
	*dequant += unquant;
	char bits[32];
	pin_str(p, bits, sizeof bits);
	if (!p->what)
		snprintf(row->note, sizeof row->note, "%s", repin ? "pin dropped" : "not pinned");
	else if (p->what & DFQ_PIN_FLOAT)
		snprintf(row->note, sizeof row->note, "kept float%s",
		         unquant ? ": back to float now" : "");
	else if (requantize)
		snprintf(row->note, sizeof row->note, "pinned %s: quantized again now", bits);
	else
		snprintf(row->note, sizeof row->note, "pinned %s%s", bits,
		         was_q ? "" : " (for the next quantize)");
	return DFQ_OK;
}

dfq_status dfq_model_pin(struct dfq_model *m, const bool *sel, const struct dfq_pin *pin,
                         struct dfq_step_report *rep, struct dfq_error *err)
{
	dfq_status st = check_pin(pin, err);
	if (st != DFQ_OK)
		return st;
	/* the fields the pin does not use are zero, so equal pins compare equal */
	struct dfq_pin np = {pin->what, (pin->what & DFQ_PIN_WBITS) ? pin->wbits : 0,
	                     (pin->what & DFQ_PIN_ABITS) ? pin->abits : 0};
	pin = &np;
	struct model_step s;
	struct dfq_step_report r;
	st = model_step_open(m, &s, &r, DFQ_STEP_QUANTIZE, err);
	if (st != DFQ_OK)
		return st;
	int requant = 0, dequant = 0;
	for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
		struct dfq_step_row *row = model_step_row(m, sel, li, true, &r, &st, err);
		if (!row)
			continue; /* not selected, skipped, or st set (ends the loop) */
		st = pin_layer(m, li, pin, row, &r, &requant, &dequant, err);
		if (st != DFQ_OK)
			dfq_error_prefix(err, "layer '%s'", m->layers[li].name);
	}
	st = model_step_finish(m, &s, st, pin->what & DFQ_PIN_FLOAT ? "float" : "bits", &r, err);
	if (st != DFQ_OK)
		return st;
	int n = r.nchanged;
	const char *ls = n == 1 ? "" : "s";
	char bits[32];
	pin_str(pin, bits, sizeof bits);
	if (!pin->what)
		snprintf(r.summary, sizeof r.summary,
		         "dropped the pins of %d layer%s (they stay as they are)", n, ls);
	else if (pin->what & DFQ_PIN_FLOAT)
		snprintf(r.summary, sizeof r.summary,
		         "%d layer%s kept in FP32 (%d back to float now); a quantize leaves %s float",
		         n, ls, dequant, n == 1 ? "it" : "them");
	else
		snprintf(r.summary, sizeof r.summary,
		         "%d layer%s pinned to %s (%d quantized again now); a quantize gives %s "
		         "these bits",
		         n, ls, bits, requant, n == 1 ? "it" : "them");
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
