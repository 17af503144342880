/* step_relu6.c - the paper's "Replace ReLU6": each selected layer's Clip(0, 6) becomes a Relu, so
 * that rescaling (equalization) commutes with the activation. */
#include <math.h>
#include <stdio.h>

#include "model_internal.h"

dfq_status dfq_model_relu6_to_relu(struct dfq_model *m, const bool *sel,
                                   struct dfq_step_report *rep, struct dfq_error *err)
{
	struct model_step s;
	struct dfq_step_report r;
	dfq_status st = model_step_open(m, &s, &r, DFQ_STEP_RELU6, err);
	if (st != DFQ_OK)
		return st;
	bool stale = false;
	int first = -1;
	for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
		const struct dfq_layer *L = &m->layers[li];
		if (!model_selected(sel, li) || L->act != DFQ_ACT_RELU6)
			continue;
		struct dfq_step_row *row = model_report_row(&r, li, err);
		if (!row) {
			st = err ? err->status : DFQ_ERR_NOMEM;
			break;
		}
		row->before = 6.0;
		row->after = INFINITY;
		int pi = model_point_of(m, L->out_vi);
		if (pi >= 0 && m->points[pi].global.valid) {
			row->extra = m->points[pi].global.hi;
			stale |= m->points[pi].global.hi >= 6.0f;
		}
		snprintf(row->note, sizeof row->note, "Clip '%s' (0, 6) -> Relu",
		         m->g->nodes[L->act_node].name);
		struct dfq_layer *WL;
		st = model_clip_to_relu(m, L->act_node, err);
		if (st == DFQ_OK)
			st = model_writable_layer(m, li, &WL, err);
		if (st == DFQ_OK) {
			WL->steps |= DFQ_STEP_RELU6;
			row->changed = true;
			first = first < 0 ? li : first;
		}
	}
	/* what later layers expect of their inputs was made for ReLU6 */
	for (int k = first + 1; first >= 0 && k < m->nlayers && st == DFQ_OK; k++)
		if (m->layers[k].bcorr_q || m->layers[k].bcorr_fp)
			st = model_layer_changed(m, k, CHANGED_INPUT, &r, err);
	if (st == DFQ_OK && r.nrows > 0)
		st = model_refinalize(m, err);
	if (st == DFQ_OK)
		m->data_stale |= stale;
	st = model_step_finish(m, &s, st, "relu6-to-relu", &r, err);
	if (st != DFQ_OK)
		return st;
	snprintf(r.summary, sizeof r.summary, "replaced %d ReLU6 by ReLU%s", r.nrows,
	         stale ? " (some measured activations reached 6: the data ranges are stale)" : "");
	model_report_hand(&r, rep);
	return DFQ_OK;
}
