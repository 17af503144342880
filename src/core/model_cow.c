/* model_cow.c - copy-on-write of the model's parts: what an open transaction saves before it
 * first changes each part, and swapping a save with the model. */
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

void model_flags_get(const struct dfq_model *m, struct model_flags *f)
{
	f->has_stats = m->has_stats;
	f->folded = m->folded;
	f->aux_q = m->aux_q;
	f->aux_enabled = m->aux_enabled;
	f->data_stale = m->data_stale;
	f->mopts = m->priv->mopts;
}

static void flags_set(struct dfq_model *m, const struct model_flags *f)
{
	m->has_stats = f->has_stats;
	m->folded = f->folded;
	m->aux_q = f->aux_q;
	m->aux_enabled = f->aux_enabled;
	m->data_stale = f->data_stale;
	m->priv->mopts = f->mopts;
}

dfq_status model_txn_open(struct dfq_model *m, struct dfq_error *err)
{
	if (m->priv->txn)
		return dfq_error_set(err, DFQ_ERR_INTERNAL, "a transaction is open already");
	struct model_save *s = calloc(1, sizeof *s);
	if (!s)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory starting a step");
	model_flags_get(m, &s->flags);
	m->priv->txn = s;
	clock_gettime(CLOCK_MONOTONIC, &m->priv->txn_t0);
	return DFQ_OK;
}

/* --- nodes ------------------------------------------------------------------ */

void model_nodes_free(struct dfq_node *nodes, int n)
{
	for (int i = 0; nodes && i < n; i++)
		dfq_node_clear(&nodes[i]);
	free(nodes);
}

struct dfq_node *model_nodes_clone(const struct dfq_node *src, int n, struct dfq_error *err)
{
	struct dfq_node *d = calloc((size_t)(n ? n : 1), sizeof *d);
	if (!d) {
		dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory saving the graph");
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		if (dfq_node_copy(&d[i], &src[i], err) != DFQ_OK) {
			model_nodes_free(d, i);
			return NULL;
		}
	}
	return d;
}

/* --- saves ------------------------------------------------------------------- */

void model_save_free(struct model_save *s)
{
	if (!s)
		return;
	if (s->values) {
		/* the names belong to the graph */
		for (int i = 0; i < s->nvalues; i++)
			dfq_tensor_free(s->values[i].init);
		free(s->values);
	}
	model_nodes_free(s->nodes, s->nnodes);
	model_layers_free(s->layers, s->nlayers);
	free(s->points);
	free(s->pov);
	free(s);
}

#define SWAP(T, a, b)                                                                              \
	do {                                                                                       \
		T swap_tmp_ = (a);                                                                 \
		(a) = (b);                                                                         \
		(b) = swap_tmp_;                                                                   \
	} while (0)

void model_save_swap(struct dfq_model *m, struct model_save *s)
{
	struct dfq_graph *g = m->g;
	if (s->parts & PART_VALUES) {
		SWAP(struct dfq_value *, g->values, s->values);
		g->cap_values = g->nvalues;
	}
	if (s->parts & PART_NODES) {
		SWAP(struct dfq_node *, g->nodes, s->nodes);
		SWAP(int, g->nnodes, s->nnodes);
		g->cap_nodes = g->nnodes;
	}
	if (s->parts & PART_LAYERS) {
		SWAP(struct dfq_layer *, m->layers, s->layers);
		SWAP(int, m->nlayers, s->nlayers);
	}
	if (s->parts & PART_POINTS) {
		SWAP(struct dfq_apoint *, m->points, s->points);
		SWAP(int, m->npoints, s->npoints);
		SWAP(int *, m->priv->point_of_value, s->pov);
	}
	struct model_flags now;
	model_flags_get(m, &now);
	flags_set(m, &s->flags);
	s->flags = now;
}

/* --- saving each part ---------------------------------------------------------- */

dfq_status model_cow_values(struct dfq_model *m, struct dfq_error *err)
{
	struct model_save *s = m->priv->txn;
	if (!s || (s->parts & PART_VALUES))
		return DFQ_OK;
	const struct dfq_graph *g = m->g;
	struct dfq_value *v = malloc((size_t)(g->nvalues ? g->nvalues : 1) * sizeof *v);
	if (!v)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory saving the weights");
	memcpy(v, g->values, (size_t)g->nvalues * sizeof *v);
	for (int i = 0; i < g->nvalues; i++)
		dfq_tensor_ref(v[i].init);
	s->values = v;
	s->nvalues = g->nvalues;
	s->parts |= PART_VALUES;
	return DFQ_OK;
}

dfq_status model_cow_nodes(struct dfq_model *m, struct dfq_error *err)
{
	struct model_save *s = m->priv->txn;
	if (!s || (s->parts & PART_NODES))
		return DFQ_OK;
	s->nodes = model_nodes_clone(m->g->nodes, m->g->nnodes, err);
	if (!s->nodes)
		return err ? err->status : DFQ_ERR_NOMEM;
	s->nnodes = m->g->nnodes;
	s->parts |= PART_NODES;
	return DFQ_OK;
}

dfq_status model_cow_layers(struct dfq_model *m, struct dfq_error *err)
{
	struct model_save *s = m->priv->txn;
	if (!s || (s->parts & PART_LAYERS))
		return DFQ_OK;
	struct dfq_layer *l = malloc((size_t)(m->nlayers ? m->nlayers : 1) * sizeof *l);
	if (!l)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory saving the layers");
	for (int i = 0; i < m->nlayers; i++)
		model_layer_share(&l[i], &m->layers[i]);
	s->layers = l;
	s->nlayers = m->nlayers;
	s->parts |= PART_LAYERS;
	return DFQ_OK;
}

dfq_status model_cow_points(struct dfq_model *m, struct dfq_error *err)
{
	struct model_save *s = m->priv->txn;
	if (!s || (s->parts & PART_POINTS))
		return DFQ_OK;
	size_t pb = (size_t)m->npoints * sizeof *m->points;
	size_t vb = (size_t)m->priv->npov * sizeof *m->priv->point_of_value;
	struct dfq_apoint *p = malloc(pb ? pb : 1);
	int *pov = malloc(vb ? vb : 1);
	if (!p || !pov) {
		free(p);
		free(pov);
		return dfq_error_set(err, DFQ_ERR_NOMEM,
		                     "out of memory saving the activation ranges");
	}
	memcpy(p, m->points, pb);
	memcpy(pov, m->priv->point_of_value, vb);
	s->points = p;
	s->npoints = m->npoints;
	s->pov = pov;
	s->parts |= PART_POINTS;
	return DFQ_OK;
}

/* --- writable pieces --------------------------------------------------------------- */

dfq_status model_writable_tensor(struct dfq_tensor **t, struct dfq_error *err)
{
	if (!*t || !dfq_tensor_shared(*t))
		return DFQ_OK;
	struct dfq_tensor *c = dfq_tensor_clone(*t, err);
	if (!c)
		return err ? err->status : DFQ_ERR_NOMEM;
	dfq_tensor_free(*t);
	*t = c;
	return DFQ_OK;
}

dfq_status model_writable_floats(float **p, int64_t n, struct dfq_error *err)
{
	if (!rc_writable((void **)p, (size_t)n * sizeof **p))
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
	return DFQ_OK;
}

dfq_status model_writable_init(struct dfq_model *m, int vi, float **out, struct dfq_error *err)
{
	dfq_status st = model_cow_values(m, err);
	if (st == DFQ_OK)
		st = model_writable_tensor(&m->g->values[vi].init, err);
	if (st != DFQ_OK)
		return st;
	*out = dfq_tensor_f32(m->g->values[vi].init);
	return DFQ_OK;
}

dfq_status model_writable_layer(struct dfq_model *m, int li, struct dfq_layer **out,
                                struct dfq_error *err)
{
	dfq_status st = model_cow_layers(m, err);
	if (st != DFQ_OK)
		return st;
	*out = &m->layers[li];
	return DFQ_OK;
}

/* --- replacing whole parts ------------------------------------------------------------ */

void model_replace_layers(struct dfq_model *m, struct dfq_layer *layers, int n)
{
	struct model_save *s = m->priv->txn;
	if (s && !(s->parts & PART_LAYERS)) {
		s->layers = m->layers;
		s->nlayers = m->nlayers;
		s->parts |= PART_LAYERS;
	} else {
		model_layers_free(m->layers, m->nlayers);
	}
	m->layers = layers;
	m->nlayers = n;
}

void model_replace_points(struct dfq_model *m, struct dfq_apoint *pts, int n, int *pov)
{
	struct model_save *s = m->priv->txn;
	if (s && !(s->parts & PART_POINTS)) {
		s->points = m->points;
		s->npoints = m->npoints;
		s->pov = m->priv->point_of_value;
		s->parts |= PART_POINTS;
	} else {
		free(m->points);
		free(m->priv->point_of_value);
	}
	m->points = pts;
	m->npoints = n;
	m->priv->point_of_value = pov;
}
