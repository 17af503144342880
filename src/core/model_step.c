/* model_step.c - the frame every step runs in: its own transaction unless the caller opened
 * one, the grids refreshed at the end, and the step recorded, or rolled back on failure. */
#include "model_internal.h"

dfq_status model_step_open(struct dfq_model *m, struct model_step *s, struct dfq_step_report *r,
                           unsigned step, struct dfq_error *err)
{
	if (r) {
		dfq_step_report_init(r);
		r->step = step;
		r->has_stats = m->has_stats;
	}
	s->own = !m->priv->txn;
	return s->own ? model_txn_open(m, err) : DFQ_OK;
}

dfq_status model_step_close(struct dfq_model *m, struct model_step *s, dfq_status st,
                            const char *label, struct dfq_error *err)
{
	if (st == DFQ_OK)
		st = model_refresh(m, err);
	if (s->own) {
		if (st == DFQ_OK)
			st = dfq_model_commit(m, label, NULL, NULL, err);
		if (st != DFQ_OK)
			dfq_model_rollback(m);
	}
	return st;
}

dfq_status model_step_finish(struct dfq_model *m, struct model_step *s, dfq_status st,
                             const char *label, struct dfq_step_report *r, struct dfq_error *err)
{
	st = model_step_close(m, s, st, label, err);
	if (st != DFQ_OK) {
		dfq_step_report_free(r);
		return st;
	}
	model_report_count(r);
	return DFQ_OK;
}
