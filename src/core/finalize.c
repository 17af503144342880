/* finalize.c - graph checks, topological sort, static shape inference and constant folding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfq/dfq_graph.h"

#define SLOTS_MIN 8

/* Recompute producer/nconsumers and the is_input/is_output flags from the
 * nodes and the input/output lists (the lists are the source of truth). */
static dfq_status recount(struct dfq_graph *g, struct dfq_error *err)
{
	for (int i = 0; i < g->nvalues; i++) {
		g->values[i].producer = -1;
		g->values[i].nconsumers = 0;
		g->values[i].is_input = false;
		g->values[i].is_output = false;
	}
	for (int i = 0; i < g->ninputs; i++)
		g->values[g->inputs[i]].is_input = true;
	for (int i = 0; i < g->noutputs; i++)
		g->values[g->outputs[i]].is_output = true;
	for (int ni = 0; ni < g->nnodes; ni++) {
		const struct dfq_node *n = &g->nodes[ni];
		for (int i = 0; i < n->ninputs; i++)
			if (n->inputs[i] >= 0)
				g->values[n->inputs[i]].nconsumers++;
		for (int i = 0; i < n->noutputs; i++) {
			int vi = n->outputs[i];
			if (vi < 0)
				continue;
			struct dfq_value *v = &g->values[vi];
			if (v->producer >= 0)
				return dfq_error_set(
				    err, DFQ_ERR_GRAPH,
				    "tensor '%s' is produced by both node '%s' and "
				    "node '%s'",
				    v->name, g->nodes[v->producer].name, n->name);
			v->producer = ni;
		}
	}
	return DFQ_OK;
}

/* Drop trailing empty optional slots so counts mean "slots in use". */
static void trim_slots(int *count, const int *idx)
{
	while (*count > 0 && idx[*count - 1] < 0)
		(*count)--;
}

static const char *plural(int n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static dfq_status check_arity(const struct dfq_node *n, struct dfq_error *err)
{
	const struct dfq_op_def *d = &dfq_op_defs[n->op];
	if (n->ninputs < d->min_inputs || n->ninputs > d->max_inputs)
		return dfq_error_set(err, DFQ_ERR_GRAPH,
				     "%s node '%s' has %d %s; %s takes %d to %d", n->op_type,
				     n->name, n->ninputs, plural(n->ninputs, "input", "inputs"),
				     n->op_type, d->min_inputs, d->max_inputs);
	if (n->noutputs < d->min_outputs || n->noutputs > d->max_outputs)
		return dfq_error_set(err, DFQ_ERR_GRAPH,
				     "%s node '%s' has %d %s; %s gives %d to %d", n->op_type,
				     n->name, n->noutputs, plural(n->noutputs, "output", "outputs"),
				     n->op_type, d->min_outputs, d->max_outputs);
	for (int i = 0; i < d->min_inputs; i++)
		if (n->inputs[i] < 0)
			return dfq_error_set(err, DFQ_ERR_GRAPH,
					     "%s node '%s' leaves its required input %d empty",
					     n->op_type, n->name, i);
	for (int i = 0; i < d->min_outputs; i++)
		if (n->outputs[i] < 0)
			return dfq_error_set(err, DFQ_ERR_GRAPH,
					     "%s node '%s' leaves its required output %d empty",
					     n->op_type, n->name, i);
	return DFQ_OK;
}

/* Step 1: resolve every op (reporting the first unsupported one before any
 * other problem, since that is what the user needs to know), check arity,
 * parse attributes. */
static dfq_status resolve_ops(struct dfq_graph *g, struct dfq_error *err)
{
	for (int ni = 0; ni < g->nnodes; ni++) {
		struct dfq_node *n = &g->nodes[ni];
		n->op = dfq_op_lookup(n->op_type);
		if (n->op == DFQ_OP_COUNT)
			return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
					     "unsupported operator '%s' (node '%s', opset %lld)",
					     n->op_type, n->name, (long long)n->opset);
	}
	for (int ni = 0; ni < g->nnodes; ni++) {
		struct dfq_node *n = &g->nodes[ni];
		trim_slots(&n->ninputs, n->inputs);
		trim_slots(&n->noutputs, n->outputs);
		dfq_status st = check_arity(n, err);
		if (st != DFQ_OK)
			return st;
		memset(&n->p, 0, sizeof n->p);
		st = dfq_op_defs[n->op].parse(n, err);
		if (st != DFQ_OK)
			return dfq_node_name_error(err, n, st);
	}
	return DFQ_OK;
}

/* A value is available before any node runs when it is constant or fed. */
static bool is_source(const struct dfq_value *v)
{
	return v->init || v->is_input;
}

/* Step 2: every read has a source; constants and inputs have no producer. */
static dfq_status check_values(const struct dfq_graph *g, struct dfq_error *err)
{
	for (int vi = 0; vi < g->nvalues; vi++) {
		const struct dfq_value *v = &g->values[vi];
		if (v->producer >= 0 && v->init)
			return dfq_error_set(err, DFQ_ERR_GRAPH,
					     "tensor '%s' is both an initializer and the output of "
					     "node '%s'",
					     v->name, g->nodes[v->producer].name);
		if (v->producer >= 0 && v->is_input)
			return dfq_error_set(err, DFQ_ERR_GRAPH,
					     "graph input '%s' is also the output of node '%s'",
					     v->name, g->nodes[v->producer].name);
		if (v->init && v->is_input)
			return dfq_error_set(err, DFQ_ERR_GRAPH,
					     "graph input '%s' is also an initializer", v->name);
	}
	for (int ni = 0; ni < g->nnodes; ni++) {
		const struct dfq_node *n = &g->nodes[ni];
		for (int i = 0; i < n->ninputs; i++) {
			int vi = n->inputs[i];
			if (vi < 0 || is_source(&g->values[vi]) || g->values[vi].producer >= 0)
				continue;
			return dfq_error_set(
			    err, DFQ_ERR_GRAPH,
			    "node '%s' (%s) reads tensor '%s', which no node "
			    "produces and is neither an initializer nor a graph input",
			    n->name, n->op_type, g->values[vi].name);
		}
	}
	for (int i = 0; i < g->noutputs; i++) {
		const struct dfq_value *v = &g->values[g->outputs[i]];
		if (!is_source(v) && v->producer < 0)
			return dfq_error_set(err, DFQ_ERR_GRAPH,
					     "graph output '%s' is not produced by any node and is "
					     "neither an initializer nor a graph input",
					     v->name);
	}
	return DFQ_OK;
}

/* --- step 3: topological sort ------------------------------------------------ */

/* Binary min-heap of node indices: Kahn's algorithm that always emits the
 * lowest ready index keeps an already sorted model in its original order. */
struct heap {
	int *a;
	int n;
};

static void heap_push(struct heap *h, int x)
{
	int i = h->n++;
	while (i > 0 && h->a[(i - 1) / 2] > x) {
		h->a[i] = h->a[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->a[i] = x;
}

static int heap_pop(struct heap *h)
{
	int top = h->a[0], x = h->a[--h->n], i = 0;
	for (;;) {
		int c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->a[c + 1] < h->a[c])
			c++;
		if (h->a[c] >= x)
			break;
		h->a[i] = h->a[c];
		i = c;
	}
	if (h->n > 0)
		h->a[i] = x;
	return top;
}

/* First predecessor of node ni that has not been emitted, or -1. */
static int pending_pred(const struct dfq_graph *g, int ni, const int *indeg)
{
	const struct dfq_node *n = &g->nodes[ni];
	for (int i = 0; i < n->ninputs; i++) {
		int vi = n->inputs[i];
		if (vi < 0 || is_source(&g->values[vi]))
			continue;
		int p = g->values[vi].producer;
		if (p >= 0 && indeg[p] > 0)
			return p;
	}
	return -1;
}

/* Name the nodes of one cycle among the unsorted nodes (indeg > 0).
 * Following "a pending predecessor" from any unsorted node must enter a
 * cycle within nnodes steps; then follow it once around. */
static dfq_status cycle_error(const struct dfq_graph *g, const int *indeg, struct dfq_error *err)
{
	int r = -1;
	for (int ni = 0; ni < g->nnodes && r < 0; ni++)
		if (indeg[ni] > 0)
			r = ni;
	for (int k = 0; k < g->nnodes && r >= 0; k++)
		r = pending_pred(g, r, indeg);
	if (r < 0)
		return dfq_error_set(err, DFQ_ERR_INTERNAL, "topological sort failed");
	/* walk backwards around the cycle, then print it forwards */
	enum { SHOW = 6 };
	int ring[SHOW], len = 0, total = 0;
	int x = r;
	do {
		if (len < SHOW)
			ring[len++] = x;
		total++;
		x = pending_pred(g, x, indeg);
	} while (x != r && x >= 0 && total <= g->nnodes);
	char buf[DFQ_ERROR_MAX] = "";
	size_t used = 0;
	for (int i = len - 1; i >= 0 && used < sizeof buf; i--)
		used += (size_t)snprintf(buf + used, sizeof buf - used, "'%s' -> ",
					 g->nodes[ring[i]].name);
	if (used < sizeof buf)
		snprintf(buf + used, sizeof buf - used, "%s'%s'", total > SHOW ? "... -> " : "",
			 g->nodes[ring[len - 1]].name);
	return dfq_error_set(err, DFQ_ERR_GRAPH, "the graph has a cycle through node '%s' (%s)",
			     g->nodes[r].name, buf);
}

/* Reorder g->nodes topologically; on a cycle, name a node on it. */
static dfq_status topo_sort(struct dfq_graph *g, struct dfq_error *err)
{
	int nn = g->nnodes;
	if (nn == 0)
		return DFQ_OK;
	size_t ncons = 0;
	for (int ni = 0; ni < nn; ni++)
		ncons += (size_t)g->nodes[ni].ninputs;
	int *indeg = calloc((size_t)nn, sizeof *indeg);
	int *order = malloc((size_t)nn * sizeof *order);
	int *cstart = calloc((size_t)g->nvalues + 1, sizeof *cstart);
	int *cons = malloc((ncons ? ncons : 1) * sizeof *cons);
	struct heap h = {malloc((size_t)nn * sizeof(int)), 0};
	struct dfq_node *sorted = malloc((size_t)nn * sizeof *sorted);
	dfq_status st = DFQ_OK;
	if (!indeg || !order || !cstart || !cons || !h.a || !sorted) {
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory sorting the graph");
		goto out;
	}
	/* consumers of each value in CSR form (a node reading a value twice is
	 * listed twice, matching its in-degree) */
	for (int ni = 0; ni < nn; ni++) {
		const struct dfq_node *n = &g->nodes[ni];
		for (int i = 0; i < n->ninputs; i++) {
			int vi = n->inputs[i];
			if (vi < 0 || is_source(&g->values[vi]) || g->values[vi].producer < 0)
				continue;
			cstart[vi + 1]++;
			indeg[ni]++;
		}
	}
	for (int vi = 0; vi < g->nvalues; vi++)
		cstart[vi + 1] += cstart[vi];
	{
		int *fill = malloc(((size_t)g->nvalues + 1) * sizeof *fill);
		if (!fill) {
			st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory sorting the graph");
			goto out;
		}
		memcpy(fill, cstart, ((size_t)g->nvalues + 1) * sizeof *fill);
		for (int ni = 0; ni < nn; ni++) {
			const struct dfq_node *n = &g->nodes[ni];
			for (int i = 0; i < n->ninputs; i++) {
				int vi = n->inputs[i];
				if (vi < 0 || is_source(&g->values[vi]) ||
				    g->values[vi].producer < 0)
					continue;
				cons[fill[vi]++] = ni;
			}
		}
		free(fill);
	}
	for (int ni = 0; ni < nn; ni++)
		if (indeg[ni] == 0)
			heap_push(&h, ni);
	int norder = 0;
	while (h.n > 0) {
		int ni = heap_pop(&h);
		order[norder++] = ni;
		const struct dfq_node *n = &g->nodes[ni];
		for (int o = 0; o < n->noutputs; o++) {
			int vi = n->outputs[o];
			if (vi < 0)
				continue;
			for (int c = cstart[vi]; c < cstart[vi + 1]; c++)
				if (--indeg[cons[c]] == 0)
					heap_push(&h, cons[c]);
		}
	}
	if (norder < nn) {
		st = cycle_error(g, indeg, err);
		goto out;
	}
	for (int i = 0; i < nn; i++)
		sorted[i] = g->nodes[order[i]];
	memcpy(g->nodes, sorted, (size_t)nn * sizeof *sorted);
	st = recount(g, err);
out:
	free(indeg);
	free(order);
	free(cstart);
	free(cons);
	free(h.a);
	free(sorted);
	return st;
}

/* --- steps 4 and 5: static shapes and constant folding ----------------------- */

/* Per-node scratch arrays, sized for the widest node. */
struct scratch {
	const struct dfq_shape **in;
	const struct dfq_tensor **in_data;
	struct dfq_shape *out;
	struct dfq_tensor **out_t;
	int wi, wo;
};

static bool shape_known(const struct dfq_shape *s)
{
	if (s->ndim < 0)
		return false;
	for (int i = 0; i < s->ndim; i++)
		if (s->dims[i] < 0)
			return false;
	return true;
}

static void shape_unknown(struct dfq_shape *s)
{
	memset(s, 0, sizeof *s);
	s->dtype = DFQ_DTYPE_F32;
	s->ndim = -1;
}

/* Gather node n's input shapes/data; returns true when all inputs are constant. */
static bool gather_inputs(const struct dfq_graph *g, const struct dfq_node *n, struct scratch *s,
			  bool *rank_unknown)
{
	bool all_const = true;
	*rank_unknown = false;
	memset(s->in, 0, (size_t)s->wi * sizeof *s->in);
	memset(s->in_data, 0, (size_t)s->wi * sizeof *s->in_data);
	memset(s->out_t, 0, (size_t)s->wo * sizeof *s->out_t);
	for (int i = 0; i < n->ninputs; i++) {
		int vi = n->inputs[i];
		if (vi < 0) {
			s->in[i] = NULL;
			s->in_data[i] = NULL;
			continue;
		}
		const struct dfq_value *v = &g->values[vi];
		s->in[i] = &v->shape;
		s->in_data[i] = v->init;
		if (!v->init)
			all_const = false;
		if (!v->init && v->shape.ndim < 0)
			*rank_unknown = true;
	}
	return all_const;
}

/* Evaluate node n on constant inputs with the reference kernel; its outputs
 * become initializers.  (Constant nodes have no inputs and always fold.) */
static dfq_status fold_node(struct dfq_graph *g, const struct dfq_node *n, struct scratch *s,
			    bool *folded_val, struct dfq_error *err)
{
	struct dfq_kctx kctx = {.pool = NULL};
	dfq_status st = dfq_node_compute(n, s->in, s->in_data, s->out, s->out_t, &kctx, false, err);
	if (st != DFQ_OK)
		return st;
	for (int o = 0; o < n->noutputs; o++) {
		int vi = n->outputs[o];
		if (vi < 0)
			continue;
		struct dfq_value *v = &g->values[vi];
		v->init = s->out_t[o];
		dfq_tensor_shape(v->init, &v->shape);
		folded_val[vi] = true;
	}
	return DFQ_OK;
}

/* Shape(x) with x's static shape fully known is a constant ([start, end)
 * slice of opset 15 included). */
static dfq_status fold_shape(struct dfq_graph *g, const struct dfq_node *n, bool *folded_val,
			     struct dfq_error *err)
{
	const struct dfq_shape *xs = &g->values[n->inputs[0]].shape;
	int64_t r = xs->ndim, start = 0, end = r;
	const struct dfq_attr *a = dfq_node_attr(n, "start");
	if (a && a->type == DFQ_ATTR_INT)
		start = a->i;
	a = dfq_node_attr(n, "end");
	if (a && a->type == DFQ_ATTR_INT)
		end = a->i;
	if (start < 0)
		start += r;
	if (end < 0)
		end += r;
	start = start < 0 ? 0 : start > r ? r : start;
	end = end < 0 ? 0 : end > r ? r : end;
	int64_t len = end > start ? end - start : 0;
	struct dfq_tensor *t = dfq_tensor_new(DFQ_DTYPE_I64, 1, &len, err);
	if (!t)
		return dfq_node_name_error(err, n, err ? err->status : DFQ_ERR_NOMEM);
	for (int64_t i = 0; i < len; i++)
		dfq_tensor_i64(t)[i] = xs->dims[start + i];
	struct dfq_value *v = &g->values[n->outputs[0]];
	v->init = t;
	dfq_tensor_shape(t, &v->shape);
	folded_val[n->outputs[0]] = true;
	return DFQ_OK;
}

/* One pass in topological order is already a fixed point: whether a node
 * folds depends only on its inputs, which are all settled before it. */
static dfq_status infer_and_fold(struct dfq_graph *g, bool *folded_node, bool *folded_val,
				 struct dfq_error *err)
{
	/* at least 8 slots, NULL past a node's own count: kernels may look at
	 * an optional slot (in[2] of a two-input Conv) and must see NULL */
	int wi = SLOTS_MIN, wo = SLOTS_MIN;
	for (int ni = 0; ni < g->nnodes; ni++) {
		wi = g->nodes[ni].ninputs > wi ? g->nodes[ni].ninputs : wi;
		wo = g->nodes[ni].noutputs > wo ? g->nodes[ni].noutputs : wo;
	}
	struct scratch s = {
	    .in = malloc((size_t)wi * sizeof *s.in),
	    .in_data = malloc((size_t)wi * sizeof *s.in_data),
	    .out = malloc((size_t)wo * sizeof *s.out),
	    .out_t = malloc((size_t)wo * sizeof *s.out_t),
	    .wi = wi,
	    .wo = wo,
	};
	dfq_status st = DFQ_OK;
	if (!s.in || !s.in_data || !s.out || !s.out_t) {
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory inferring shapes");
		goto out;
	}
	for (int ni = 0; ni < g->nnodes && st == DFQ_OK; ni++) {
		const struct dfq_node *n = &g->nodes[ni];
		bool rank_unknown;
		bool all_const = gather_inputs(g, n, &s, &rank_unknown);
		if (all_const) {
			st = fold_node(g, n, &s, folded_val, err);
			folded_node[ni] = true;
			continue;
		}
		if (n->op == DFQ_OP_SHAPE && shape_known(s.in[0])) {
			st = fold_shape(g, n, folded_val, err);
			folded_node[ni] = true;
			continue;
		}
		if (rank_unknown) {
			/* nothing to infer from (e.g. an input declared without a
			 * shape); the executor checks shapes at run time */
			for (int o = 0; o < n->noutputs; o++)
				if (n->outputs[o] >= 0)
					shape_unknown(&g->values[n->outputs[o]].shape);
			continue;
		}
		st = dfq_op_defs[n->op].shape(n, s.in, s.in_data, s.out, err);
		if (st != DFQ_OK) {
			st = dfq_node_name_error(err, n, st);
			break;
		}
		for (int o = 0; o < n->noutputs; o++)
			if (n->outputs[o] >= 0)
				g->values[n->outputs[o]].shape = s.out[o];
	}
out:
	free(s.in);
	free(s.in_data);
	free(s.out);
	free(s.out_t);
	return st;
}

/* Remove folded nodes, keeping the order, then drop folded intermediate
 * constants nobody reads any more (Shape outputs feeding a folded Gather,
 * ...).  Initializers from the model are kept even when unused. */
static dfq_status compact(struct dfq_graph *g, const bool *folded_node, const bool *folded_val,
			  struct dfq_error *err)
{
	int k = 0;
	for (int ni = 0; ni < g->nnodes; ni++) {
		if (folded_node[ni])
			dfq_node_clear(&g->nodes[ni]);
		else
			g->nodes[k++] = g->nodes[ni];
	}
	g->nnodes = k;
	dfq_status st = recount(g, err);
	if (st != DFQ_OK)
		return st;
	for (int vi = 0; vi < g->nvalues; vi++) {
		struct dfq_value *v = &g->values[vi];
		if (folded_val[vi] && v->nconsumers == 0 && !v->is_output) {
			dfq_tensor_free(v->init);
			v->init = NULL;
		}
	}
	return DFQ_OK;
}

/* Static shapes start over on every finalize (it may run again after a
 * transformation): constants from their data, graph inputs as declared,
 * everything else unknown until inferred. */
static void reset_shapes(struct dfq_graph *g)
{
	for (int vi = 0; vi < g->nvalues; vi++) {
		struct dfq_value *v = &g->values[vi];
		if (v->init)
			dfq_tensor_shape(v->init, &v->shape);
		else if (!v->is_input)
			shape_unknown(&v->shape);
	}
}

static dfq_status check_lists(const struct dfq_graph *g, struct dfq_error *err)
{
	for (int i = 0; i < g->ninputs; i++)
		if (g->inputs[i] < 0 || g->inputs[i] >= g->nvalues)
			return dfq_error_set(err, DFQ_ERR_INTERNAL, "graph input %d is invalid", i);
	for (int i = 0; i < g->noutputs; i++)
		if (g->outputs[i] < 0 || g->outputs[i] >= g->nvalues)
			return dfq_error_set(err, DFQ_ERR_INTERNAL, "graph output %d is invalid",
					     i);
	return DFQ_OK;
}

dfq_status dfq_graph_finalize(struct dfq_graph *g, struct dfq_error *err)
{
	dfq_status st;
	if ((st = check_lists(g, err)) || (st = recount(g, err)) || (st = resolve_ops(g, err)) ||
	    (st = check_values(g, err)) || (st = topo_sort(g, err)))
		return st;
	reset_shapes(g);
	bool *folded_node = calloc((size_t)g->nnodes + 1, sizeof *folded_node);
	bool *folded_val = calloc((size_t)g->nvalues + 1, sizeof *folded_val);
	if (!folded_node || !folded_val) {
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory finalizing the graph");
	} else {
		st = infer_and_fold(g, folded_node, folded_val, err);
		if (st == DFQ_OK)
			st = compact(g, folded_node, folded_val, err);
	}
	free(folded_node);
	free(folded_val);
	return st;
}
