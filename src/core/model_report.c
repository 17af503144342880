/* model_report.c - step reports: rows, counts, handing them to the caller. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

void dfq_step_report_init(struct dfq_step_report *r)
{
	memset(r, 0, sizeof *r);
}

void dfq_step_report_free(struct dfq_step_report *r)
{
	if (!r)
		return;
	free(r->rows);
	dfq_step_report_init(r);
}

struct dfq_step_row *model_report_row(struct dfq_step_report *r, int layer, struct dfq_error *err)
{
	struct dfq_step_row *rows = realloc(r->rows, (size_t)(r->nrows + 1) * sizeof *rows);
	if (!rows) {
		dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory building a report");
		return NULL;
	}
	r->rows = rows;
	struct dfq_step_row *row = &rows[r->nrows++];
	memset(row, 0, sizeof *row);
	row->layer = layer;
	row->layer2 = -1;
	row->before = row->after = row->before2 = row->after2 = row->extra = NAN;
	return row;
}

void model_report_count(struct dfq_step_report *r)
{
	r->nchanged = r->nskipped = 0;
	for (int i = 0; i < r->nrows; i++) {
		if (r->rows[i].changed)
			r->nchanged++;
		else
			r->nskipped++;
	}
}

struct dfq_step_row *model_step_row(const struct dfq_model *m, const bool *sel, int li,
                                    bool editable_only, struct dfq_step_report *r, dfq_status *st,
                                    struct dfq_error *err)
{
	if (!model_selected(sel, li))
		return NULL;
	struct dfq_step_row *row = model_report_row(r, li, err);
	if (!row) {
		*st = err ? err->status : DFQ_ERR_NOMEM;
		return NULL;
	}
	const struct dfq_layer *L = &m->layers[li];
	if (editable_only && !L->editable) {
		snprintf(row->note, sizeof row->note, "skipped: %s", L->why_fixed);
		return NULL;
	}
	return row;
}

void model_report_hand(struct dfq_step_report *r, struct dfq_step_report *rep)
{
	if (rep)
		*rep = *r;
	else
		dfq_step_report_free(r);
}
