/* model_graph_edit.c - graph surgery for DFQ steps: bias slots, node removal, Clip -> Relu, and
 * re-finalizing the graph after an edit (copy-on-write: the graph as it was stays with the
 * open transaction). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* Output channels of a Conv/Gemm node that could be a layer and has no
 * bias; 0 when it needs none or is no layer. */
static int64_t needs_bias(const struct dfq_graph *g, const struct dfq_node *n)
{
	if ((n->op != DFQ_OP_CONV && n->op != DFQ_OP_GEMM) || n->ninputs < 2 || n->inputs[1] < 0)
		return 0;
	if (n->ninputs >= 3 && n->inputs[2] >= 0)
		return 0;
	const struct dfq_tensor *w = g->values[n->inputs[1]].init;
	if (!w || w->dtype != DFQ_DTYPE_F32)
		return 0;
	if (n->op == DFQ_OP_CONV)
		return w->ndim >= 3 ? w->dims[0] : 0;
	if (w->ndim != 2 || n->p.trans_a || n->p.alpha != 1.0f || n->p.beta != 1.0f)
		return 0;
	return n->p.trans_b ? w->dims[0] : w->dims[1];
}

/* A value name not used yet: "<base>" or "<base>_<k>". */
static dfq_status fresh_name(const struct dfq_graph *g, const char *base, char *buf, size_t len,
                             struct dfq_error *err)
{
	snprintf(buf, len, "%s", base);
	for (int k = 1; dfq_graph_find_value(g, buf) >= 0; k++) {
		if (k > 1000)
			return dfq_error_set(err, DFQ_ERR_INTERNAL, "no free tensor name for '%s'",
			                     base);
		snprintf(buf, len, "%s_%d", base, k);
	}
	return DFQ_OK;
}

/* Name for a new bias: the weight's name with ".weight" -> ".bias", else
 * "<node>.bias". */
static void bias_base(const struct dfq_graph *g, const struct dfq_node *n, char *buf, size_t len)
{
	const char *wn = g->values[n->inputs[1]].name;
	size_t l = strlen(wn), sfx = strlen(".weight");
	if (l > sfx && strcmp(wn + l - sfx, ".weight") == 0)
		snprintf(buf, len, "%.*s.bias", (int)(l - sfx), wn);
	else
		snprintf(buf, len, "%s.bias", n->name);
}

static dfq_status add_bias(struct dfq_graph *g, int ni, int64_t cout, struct dfq_error *err)
{
	char base[400], name[420];
	bias_base(g, &g->nodes[ni], base, sizeof base);
	dfq_status st = fresh_name(g, base, name, sizeof name, err);
	if (st != DFQ_OK)
		return st;
	struct dfq_tensor *b = dfq_tensor_new(DFQ_DTYPE_F32, 1, &cout, err);
	if (!b)
		return err ? err->status : DFQ_ERR_NOMEM;
	struct dfq_node *n = &g->nodes[ni];
	int *ins = realloc(n->inputs, 3 * sizeof *ins);
	if (!ins) {
		dfq_tensor_free(b);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory adding a bias");
	}
	n->inputs = ins;
	int vi = dfq_graph_intern_value(g, name, err);
	if (vi < 0) {
		dfq_tensor_free(b);
		return err ? err->status : DFQ_ERR_NOMEM;
	}
	/* intern may move g->values and g->nodes stays put; re-fetch n anyway */
	n = &g->nodes[ni];
	struct dfq_value *v = &g->values[vi];
	v->init = b;
	dfq_tensor_shape(b, &v->shape);
	v->nconsumers = 1;
	if (n->ninputs < 3)
		n->ninputs = 3;
	n->inputs[2] = vi;
	return DFQ_OK;
}

dfq_status model_add_missing_biases(struct dfq_graph *g, struct dfq_error *err)
{
	for (int ni = 0; ni < g->nnodes; ni++) {
		int64_t cout = needs_bias(g, &g->nodes[ni]);
		if (cout <= 0)
			continue;
		dfq_status st = add_bias(g, ni, cout, err);
		if (st != DFQ_OK)
			return st;
	}
	return DFQ_OK;
}

dfq_status model_refinalize(struct dfq_model *m, struct dfq_error *err)
{
	/* The edits keep the order topological and every shape as it was, so
	 * this re-check can only fail for want of memory; the transaction then
	 * puts the graph back as it was. */
	dfq_status st = model_cow_values(m, err);
	if (st == DFQ_OK)
		st = model_cow_nodes(m, err);
	if (st == DFQ_OK)
		st = dfq_graph_finalize(m->g, err);
	if (st == DFQ_OK)
		st = model_discover(m, err);
	if (st == DFQ_OK)
		st = model_refresh(m, err);
	return st;
}

dfq_status model_remove_nodes(struct dfq_model *m, const bool *kill, struct dfq_error *err)
{
	dfq_status st = model_cow_values(m, err);
	if (st == DFQ_OK)
		st = model_cow_nodes(m, err);
	if (st != DFQ_OK)
		return st;
	struct dfq_graph *g = m->g;
	int k = 0;
	for (int ni = 0; ni < g->nnodes; ni++) {
		if (kill[ni])
			dfq_node_clear(&g->nodes[ni]);
		else
			g->nodes[k++] = g->nodes[ni];
	}
	g->nnodes = k;
	return model_refinalize(m, err);
}

dfq_status model_clip_to_relu(struct dfq_model *m, int ni, struct dfq_error *err)
{
	dfq_status st = model_cow_values(m, err);
	if (st == DFQ_OK)
		st = model_cow_nodes(m, err);
	char *relu = st == DFQ_OK ? strdup("Relu") : NULL;
	if (st == DFQ_OK && !relu)
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
	if (st != DFQ_OK)
		return st;
	struct dfq_graph *g = m->g;
	struct dfq_node *n = &g->nodes[ni];
	for (int i = 1; i < n->ninputs; i++)
		if (n->inputs[i] >= 0)
			g->values[n->inputs[i]].nconsumers--;
	free(n->op_type);
	n->op_type = relu;
	n->ninputs = 1;
	for (int i = 0; i < n->nattrs; i++)
		dfq_attr_clear(&n->attrs[i]);
	free(n->attrs);
	n->attrs = NULL;
	n->nattrs = 0;
	n->op = DFQ_OP_RELU;
	memset(&n->p, 0, sizeof n->p);
	return DFQ_OK;
}
