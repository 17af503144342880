/* graph.c - the graph IR: values, nodes, attributes, and the name index. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfq/dfq_graph.h"

/* The public struct has no room for a name index, so dfq_graph_new() hands
 * out the first member of a larger private struct.  Graphs therefore must
 * come from dfq_graph_new().  The index maps value names to indices with
 * open addressing; it is kept in sync lazily (values are append-only: code
 * that edits g->values directly may append but must not rename). */
struct graph_impl {
	struct dfq_graph g; /* must stay first */
	int *slots;         /* owned; value index or -1, cap_slots a power of two */
	int cap_slots;
	int nindexed; /* values[0..nindexed) are in the index */
};

static struct graph_impl *impl_of(const struct dfq_graph *g)
{
	return (struct graph_impl *)((char *)g - offsetof(struct graph_impl, g));
}

/* FNV-1a: short names, no adversary worth a keyed hash. */
static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static void index_put(struct graph_impl *gi, int vi)
{
	uint32_t mask = (uint32_t)gi->cap_slots - 1;
	uint32_t h = name_hash(gi->g.values[vi].name) & mask;
	while (gi->slots[h] >= 0)
		h = (h + 1) & mask;
	gi->slots[h] = vi;
}

/* Rebuild the index for all values with a table at most half full. */
static dfq_status index_rebuild(struct graph_impl *gi, struct dfq_error *err)
{
	int cap = 64;
	while (cap < 2 * gi->g.nvalues + 2) {
		if (cap > INT32_MAX / 2)
			return dfq_error_set(err, DFQ_ERR_NOMEM, "too many tensors in the graph");
		cap *= 2;
	}
	if (cap != gi->cap_slots) {
		int *s = malloc((size_t)cap * sizeof *s);
		if (!s)
			return dfq_error_set(err, DFQ_ERR_NOMEM,
					     "out of memory indexing tensor names");
		free(gi->slots);
		gi->slots = s;
		gi->cap_slots = cap;
	}
	memset(gi->slots, 0xff, (size_t)cap * sizeof *gi->slots);
	for (int i = 0; i < gi->g.nvalues; i++)
		index_put(gi, i);
	gi->nindexed = gi->g.nvalues;
	return DFQ_OK;
}

/* Bring the index up to date with g->values (appends are cheap). */
static dfq_status index_sync(struct graph_impl *gi, struct dfq_error *err)
{
	if (gi->nindexed > gi->g.nvalues || 2 * gi->g.nvalues + 2 > gi->cap_slots)
		return index_rebuild(gi, err);
	for (; gi->nindexed < gi->g.nvalues; gi->nindexed++)
		index_put(gi, gi->nindexed);
	return DFQ_OK;
}

/* Lookup in a synced index; -1 when absent. */
static int index_get(const struct graph_impl *gi, const char *name)
{
	uint32_t mask = (uint32_t)gi->cap_slots - 1;
	for (uint32_t h = name_hash(name) & mask; gi->slots[h] >= 0; h = (h + 1) & mask)
		if (strcmp(gi->g.values[gi->slots[h]].name, name) == 0)
			return gi->slots[h];
	return -1;
}

struct dfq_graph *dfq_graph_new(struct dfq_error *err)
{
	struct graph_impl *gi = calloc(1, sizeof *gi);
	if (!gi) {
		dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory allocating a graph");
		return NULL;
	}
	gi->g.name = strdup("");
	gi->g.producer = strdup("");
	if (!gi->g.name || !gi->g.producer) {
		dfq_graph_free(&gi->g);
		dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory allocating a graph");
		return NULL;
	}
	return &gi->g;
}

void dfq_attr_clear(struct dfq_attr *a)
{
	free(a->name);
	free(a->s);
	dfq_tensor_free(a->t);
	free(a->floats);
	free(a->ints);
	if (a->strings)
		for (int i = 0; i < a->n; i++)
			free(a->strings[i]);
	free(a->strings);
	memset(a, 0, sizeof *a);
}

void dfq_node_clear(struct dfq_node *n)
{
	free(n->name);
	free(n->op_type);
	free(n->inputs);
	free(n->outputs);
	for (int i = 0; i < n->nattrs; i++)
		dfq_attr_clear(&n->attrs[i]);
	free(n->attrs);
	memset(n, 0, sizeof *n);
}

void dfq_graph_free(struct dfq_graph *g)
{
	if (!g)
		return;
	struct graph_impl *gi = impl_of(g);
	for (int i = 0; i < g->nvalues; i++) {
		free(g->values[i].name);
		dfq_tensor_free(g->values[i].init);
	}
	free(g->values);
	for (int i = 0; i < g->nnodes; i++)
		dfq_node_clear(&g->nodes[i]);
	free(g->nodes);
	free(g->inputs);
	free(g->outputs);
	free(g->name);
	free(g->producer);
	free(gi->slots);
	free(gi);
}

int dfq_graph_find_value(const struct dfq_graph *g, const char *name)
{
	struct graph_impl *gi = impl_of(g);
	/* A failed sync (out of memory) falls back to a linear scan: a lookup
	 * must not fail. */
	if (index_sync(gi, NULL) != DFQ_OK) {
		for (int i = 0; i < g->nvalues; i++)
			if (strcmp(g->values[i].name, name) == 0)
				return i;
		return -1;
	}
	int vi = index_get(gi, name);
	return vi;
}

/* Grow an array of elem-sized items to hold at least need; doubles. */
static dfq_status grow(void **arr, int *cap, int need, size_t elem, struct dfq_error *err)
{
	if (need <= *cap)
		return DFQ_OK;
	if (need > INT32_MAX / 2)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "graph is too large");
	int ncap = *cap ? *cap : 16;
	while (ncap < need)
		ncap *= 2;
	void *p = realloc(*arr, (size_t)ncap * elem);
	if (!p)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory growing the graph");
	*arr = p;
	*cap = ncap;
	return DFQ_OK;
}

int dfq_graph_intern_value(struct dfq_graph *g, const char *name, struct dfq_error *err)
{
	struct graph_impl *gi = impl_of(g);
	if (index_sync(gi, err) != DFQ_OK)
		return -1;
	int vi = index_get(gi, name);
	if (vi >= 0)
		return vi;
	if (grow((void **)&g->values, &g->cap_values, g->nvalues + 1, sizeof *g->values, err))
		return -1;
	struct dfq_value *v = &g->values[g->nvalues];
	memset(v, 0, sizeof *v);
	v->name = strdup(name);
	if (!v->name) {
		dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory adding tensor '%s'", name);
		return -1;
	}
	v->shape.dtype = DFQ_DTYPE_F32;
	v->shape.ndim = -1;
	v->producer = -1;
	g->nvalues++;
	if (index_sync(gi, err) != DFQ_OK) {
		/* keep the value (the graph stays consistent) but report the failure */
		return -1;
	}
	return g->nvalues - 1;
}

/* Intern each name of names[0..n) into idx ("" -> -1). */
static dfq_status intern_names(struct dfq_graph *g, int n, const char *const *names, int *idx,
			       struct dfq_error *err)
{
	for (int i = 0; i < n; i++) {
		if (!names[i] || !names[i][0]) {
			idx[i] = -1;
			continue;
		}
		idx[i] = dfq_graph_intern_value(g, names[i], err);
		if (idx[i] < 0)
			return err ? err->status : DFQ_ERR_NOMEM;
	}
	return DFQ_OK;
}

/* Fail if a value in outs[] already has a producer or repeats within outs. */
static dfq_status check_new_outputs(const struct dfq_graph *g, const char *name, int n,
				    const int *outs, struct dfq_error *err)
{
	for (int i = 0; i < n; i++) {
		if (outs[i] < 0)
			continue;
		const struct dfq_value *v = &g->values[outs[i]];
		if (v->producer >= 0)
			return dfq_error_set(
			    err, DFQ_ERR_GRAPH,
			    "tensor '%s' is produced by both node '%s' and node '%s'", v->name,
			    g->nodes[v->producer].name, name);
		for (int j = 0; j < i; j++)
			if (outs[j] == outs[i])
				return dfq_error_set(err, DFQ_ERR_GRAPH,
						     "node '%s' lists output '%s' twice", name,
						     v->name);
	}
	return DFQ_OK;
}

int dfq_graph_add_node(struct dfq_graph *g, const char *name, const char *op_type, int64_t opset,
		       int ninputs, const char *const *inputs, int noutputs,
		       const char *const *outputs, struct dfq_error *err)
{
	if (ninputs < 0 || noutputs < 0 || !name || !op_type) {
		dfq_error_set(err, DFQ_ERR_ARG, "bad arguments adding node '%s'",
			      name ? name : "?");
		return -1;
	}
	if (grow((void **)&g->nodes, &g->cap_nodes, g->nnodes + 1, sizeof *g->nodes, err))
		return -1;
	struct dfq_node n = {0};
	n.name = strdup(name);
	n.op_type = strdup(op_type);
	n.inputs = malloc((size_t)(ninputs ? ninputs : 1) * sizeof *n.inputs);
	n.outputs = malloc((size_t)(noutputs ? noutputs : 1) * sizeof *n.outputs);
	if (!n.name || !n.op_type || !n.inputs || !n.outputs) {
		dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory adding node '%s'", name);
		goto fail;
	}
	n.op = DFQ_OP_COUNT; /* unresolved until finalize */
	n.opset = opset;
	n.ninputs = ninputs;
	n.noutputs = noutputs;
	if (intern_names(g, ninputs, inputs, n.inputs, err) ||
	    intern_names(g, noutputs, outputs, n.outputs, err) ||
	    check_new_outputs(g, name, noutputs, n.outputs, err))
		goto fail;
	int ni = g->nnodes;
	for (int i = 0; i < ninputs; i++)
		if (n.inputs[i] >= 0)
			g->values[n.inputs[i]].nconsumers++;
	for (int i = 0; i < noutputs; i++)
		if (n.outputs[i] >= 0)
			g->values[n.outputs[i]].producer = ni;
	g->nodes[ni] = n;
	g->nnodes++;
	return ni;
fail:
	dfq_node_clear(&n);
	return -1;
}

/* Deep copy of src into dst (zeroed by the caller). */
static dfq_status attr_copy(struct dfq_attr *dst, const struct dfq_attr *src, struct dfq_error *err)
{
	dst->type = src->type;
	dst->f = src->f;
	dst->i = src->i;
	dst->name = strdup(src->name ? src->name : "");
	if (!dst->name)
		goto nomem;
	switch (src->type) {
	case DFQ_ATTR_FLOAT:
	case DFQ_ATTR_INT:
		return DFQ_OK;
	case DFQ_ATTR_STRING:
		dst->s = strdup(src->s ? src->s : "");
		return dst->s ? DFQ_OK : dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
	case DFQ_ATTR_TENSOR:
		if (!src->t)
			return dfq_error_set(err, DFQ_ERR_ARG,
					     "tensor attribute '%s' has no tensor", dst->name);
		dst->t = dfq_tensor_clone(src->t, err);
		return dst->t ? DFQ_OK : err ? err->status : DFQ_ERR_NOMEM;
	case DFQ_ATTR_FLOATS:
	case DFQ_ATTR_INTS:
	case DFQ_ATTR_STRINGS:
		break;
	default:
		return dfq_error_set(err, DFQ_ERR_ARG, "attribute '%s' has unknown type %d",
				     dst->name, (int)src->type);
	}
	if (src->n < 0 || (src->n > 0 && !(src->type == DFQ_ATTR_FLOATS ? (void *)src->floats
					   : src->type == DFQ_ATTR_INTS ? (void *)src->ints
									: (void *)src->strings)))
		return dfq_error_set(err, DFQ_ERR_ARG, "list attribute '%s' has no elements",
				     dst->name);
	size_t cnt = (size_t)(src->n ? src->n : 1);
	if (src->type == DFQ_ATTR_FLOATS) {
		dst->floats = calloc(cnt, sizeof *dst->floats);
		if (!dst->floats)
			goto nomem;
		if (src->n)
			memcpy(dst->floats, src->floats, (size_t)src->n * sizeof *dst->floats);
	} else if (src->type == DFQ_ATTR_INTS) {
		dst->ints = calloc(cnt, sizeof *dst->ints);
		if (!dst->ints)
			goto nomem;
		if (src->n)
			memcpy(dst->ints, src->ints, (size_t)src->n * sizeof *dst->ints);
	} else {
		dst->strings = calloc(cnt, sizeof *dst->strings);
		if (!dst->strings)
			goto nomem;
		for (int i = 0; i < src->n; i++) {
			dst->n = i; /* so a failure frees only what was copied */
			dst->strings[i] = strdup(src->strings[i] ? src->strings[i] : "");
			if (!dst->strings[i])
				goto nomem;
		}
	}
	dst->n = src->n;
	return DFQ_OK;
nomem:
	return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory copying attribute '%s'",
			     src->name ? src->name : "");
}

dfq_status dfq_node_copy(struct dfq_node *dst, const struct dfq_node *src, struct dfq_error *err)
{
	memset(dst, 0, sizeof *dst);
	dst->op = src->op;
	dst->opset = src->opset;
	dst->p = src->p;
	dst->name = strdup(src->name);
	dst->op_type = strdup(src->op_type);
	dst->inputs = malloc((size_t)(src->ninputs ? src->ninputs : 1) * sizeof *dst->inputs);
	dst->outputs = malloc((size_t)(src->noutputs ? src->noutputs : 1) * sizeof *dst->outputs);
	dst->attrs = calloc((size_t)(src->nattrs ? src->nattrs : 1), sizeof *dst->attrs);
	if (!dst->name || !dst->op_type || !dst->inputs || !dst->outputs || !dst->attrs) {
		dfq_node_clear(dst);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory copying node '%s'",
				     src->name);
	}
	dst->ninputs = src->ninputs;
	dst->noutputs = src->noutputs;
	memcpy(dst->inputs, src->inputs, (size_t)src->ninputs * sizeof *dst->inputs);
	memcpy(dst->outputs, src->outputs, (size_t)src->noutputs * sizeof *dst->outputs);
	for (int a = 0; a < src->nattrs; a++) {
		dst->nattrs = a + 1; /* so a failure frees what was copied */
		dfq_status st = attr_copy(&dst->attrs[a], &src->attrs[a], err);
		if (st != DFQ_OK) {
			dfq_node_clear(dst);
			return dfq_error_prefix(err, "node '%s'", src->name);
		}
	}
	return DFQ_OK;
}

dfq_status dfq_graph_node_add_attr(struct dfq_graph *g, int ni, const struct dfq_attr *a,
				   struct dfq_error *err)
{
	assert(ni >= 0 && ni < g->nnodes);
	struct dfq_node *n = &g->nodes[ni];
	struct dfq_attr copy = {0};
	dfq_status st = attr_copy(&copy, a, err);
	if (st != DFQ_OK) {
		dfq_attr_clear(&copy);
		return dfq_error_prefix(err, "node '%s'", n->name);
	}
	struct dfq_attr *na = realloc(n->attrs, (size_t)(n->nattrs + 1) * sizeof *na);
	if (!na) {
		dfq_attr_clear(&copy);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory adding an attribute");
	}
	n->attrs = na;
	n->attrs[n->nattrs++] = copy;
	return DFQ_OK;
}

const struct dfq_attr *dfq_node_attr(const struct dfq_node *n, const char *name)
{
	for (int i = 0; i < n->nattrs; i++)
		if (strcmp(n->attrs[i].name, name) == 0)
			return &n->attrs[i];
	return NULL;
}

/* Weight-carrying ops, by ONNX name so this also works before finalize. */
static bool has_weights(const struct dfq_node *n)
{
	static const char *const names[] = {"Conv", "Gemm", "MatMul", "BatchNormalization"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(n->op_type, names[i]) == 0)
			return true;
	return false;
}

int64_t dfq_graph_param_count(const struct dfq_graph *g)
{
	bool *seen = calloc((size_t)(g->nvalues ? g->nvalues : 1), sizeof *seen);
	int64_t total = 0;
	for (int ni = 0; ni < g->nnodes; ni++) {
		const struct dfq_node *n = &g->nodes[ni];
		if (!has_weights(n))
			continue;
		for (int i = 0; i < n->ninputs; i++) {
			int vi = n->inputs[i];
			if (vi < 0 || !g->values[vi].init ||
			    g->values[vi].init->dtype != DFQ_DTYPE_F32)
				continue;
			/* a tensor shared by two layers counts once (without the
			 * scratch array, e.g. out of memory, it counts per use) */
			if (seen) {
				if (seen[vi])
					continue;
				seen[vi] = true;
			}
			total += g->values[vi].init->numel;
		}
	}
	free(seen);
	return total;
}

dfq_status dfq_node_name_error(struct dfq_error *err, const struct dfq_node *n, dfq_status st)
{
	if (!err)
		return st;
	char needle[DFQ_ERROR_MAX];
	snprintf(needle, sizeof needle, "'%s'", n->name);
	if (!strstr(err->msg, needle))
		dfq_error_prefix(err, "%s node '%s'", n->op_type, n->name);
	err->status = st;
	return st;
}

dfq_status dfq_node_compute(const struct dfq_node *n, const struct dfq_shape *const *in_shape,
			    const struct dfq_tensor *const *in, struct dfq_shape *out_shape,
			    struct dfq_tensor **out, const struct dfq_kctx *ctx, bool fast,
			    struct dfq_error *err)
{
	const struct dfq_op_def *d = &dfq_op_defs[n->op];
	dfq_status st = d->shape(n, in_shape, in, out_shape, err);
	if (st != DFQ_OK)
		return dfq_node_name_error(err, n, st);
	for (int o = 0; o < n->noutputs; o++) {
		if (n->outputs[o] < 0)
			continue;
		out[o] = dfq_tensor_new_shape(&out_shape[o], err);
		if (!out[o]) {
			st = dfq_node_name_error(err, n, err ? err->status : DFQ_ERR_NOMEM);
			goto fail;
		}
	}
	if (fast && d->forward_fast)
		st = d->forward_fast(n, in, out, ctx, err);
	else
		st = d->forward(n, in, out, ctx, err);
	if (st == DFQ_OK)
		return DFQ_OK;
	st = dfq_node_name_error(err, n, st);
fail:
	for (int o = 0; o < n->noutputs; o++) {
		dfq_tensor_free(out[o]);
		out[o] = NULL;
	}
	return st;
}
