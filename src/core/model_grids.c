/* model_grids.c - the run-time activation grids: each point's range (from the chosen source,
 * with fallbacks) and bits, recomputed after every change. */
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* --- run-time grids --------------------------------------------------------- */

static const struct dfq_range *range_of(const struct dfq_apoint *p, dfq_range_src s)
{
	switch (s) {
	case DFQ_RANGE_BN:
		return &p->bn;
	case DFQ_RANGE_MINMAX:
		return &p->minmax;
	case DFQ_RANGE_GLOBAL:
		return &p->global;
	case DFQ_RANGE_PERCENTILE:
		return &p->pct;
	case DFQ_RANGE_GIVEN:
		return &p->given;
	case DFQ_RANGE_NONE:
		break;
	}
	return NULL;
}

/* The chosen source, else the given range, data min/max, BN. */
static dfq_range_src resolve_src(const struct dfq_apoint *p, dfq_range_src want)
{
	const dfq_range_src order[] = {want, DFQ_RANGE_GIVEN, DFQ_RANGE_MINMAX, DFQ_RANGE_BN};
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
		const struct dfq_range *r = range_of(p, order[i]);
		if (r && r->valid)
			return order[i];
	}
	return DFQ_RANGE_NONE;
}

static void point_grid(const struct dfq_model *m, struct dfq_apoint *p)
{
	int bits = 0;
	dfq_qscheme scheme = m->aux_q.scheme;
	if (p->kind == DFQ_APOINT_LAYER) {
		const struct dfq_layer *L = &m->layers[p->layer];
		if (L->quantized) {
			bits = L->q.abits;
			scheme = L->q.scheme;
		}
	} else if (m->aux_enabled) {
		bits = m->aux_q.abits;
	}
	p->used = resolve_src(p, m->range_src);
	p->bits = bits;
	p->enabled = false;
	if (bits <= 0 || p->used == DFQ_RANGE_NONE)
		return;
	const struct dfq_range *r = range_of(p, p->used);
	p->enabled = dfq_qparams_make(bits, scheme, r->lo, r->hi, &p->qp, NULL) == DFQ_OK;
}

const struct dfq_range *model_point_range(const struct dfq_apoint *p)
{
	return range_of(p, p->used);
}

dfq_status model_refresh(struct dfq_model *m, struct dfq_error *err)
{
	struct vdesc *d;
	dfq_status st = model_cow_points(m, err);
	if (st == DFQ_OK)
		st = model_vdesc_compute(m, &d, err);
	if (st != DFQ_OK)
		return st;
	for (int i = 0; i < m->npoints; i++) {
		struct dfq_apoint *p = &m->points[i];
		p->bn = p->kind == DFQ_APOINT_INPUT ? (struct dfq_range){0} : d[p->vi].range;
		p->given = (struct dfq_range){0};
		for (int k = 0; k < m->g->ninputs && k < m->priv->ngiven; k++)
			if (m->g->inputs[k] == p->vi)
				p->given = m->priv->given[k];
		point_grid(m, p);
	}
	model_vdesc_free(d, m->g->nvalues);
	return DFQ_OK;
}
