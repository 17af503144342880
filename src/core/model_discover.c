/* model_discover.c - the graph seen as DFQ layers (Conv/Gemm/MatMul with their BatchNorm and
 * activation) and activation points (where an INT8 runtime keeps tensors in 8 bits). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* --- discovery ------------------------------------------------------------ */

/* For each value: the node that reads it when exactly one node input does
 * and it is not a graph output; -1 otherwise. */
static int *only_consumers(const struct dfq_graph *g, struct dfq_error *err)
{
	int *oc = malloc((size_t)(g->nvalues ? g->nvalues : 1) * sizeof *oc);
	int *cnt = calloc((size_t)(g->nvalues ? g->nvalues : 1), sizeof *cnt);
	if (!oc || !cnt) {
		free(oc);
		free(cnt);
		dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory scanning the graph");
		return NULL;
	}
	for (int vi = 0; vi < g->nvalues; vi++)
		oc[vi] = -1;
	for (int ni = 0; ni < g->nnodes; ni++) {
		const struct dfq_node *n = &g->nodes[ni];
		for (int i = 0; i < n->ninputs; i++) {
			int vi = n->inputs[i];
			if (vi < 0)
				continue;
			cnt[vi]++;
			oc[vi] = ni;
		}
	}
	for (int vi = 0; vi < g->nvalues; vi++)
		if (cnt[vi] != 1)
			oc[vi] = -1;
	for (int i = 0; i < g->noutputs; i++)
		oc[g->outputs[i]] = -1;
	free(cnt);
	return oc;
}

/* A float32 initializer, or NULL. */
static const struct dfq_tensor *f32_init(const struct dfq_graph *g, int vi)
{
	if (vi < 0 || !g->values[vi].init || g->values[vi].init->dtype != DFQ_DTYPE_F32)
		return NULL;
	return g->values[vi].init;
}

/* Scalar constant input slot of node n, or NAN when absent/not constant. */
static float const_scalar(const struct dfq_graph *g, const struct dfq_node *n, int slot, float def)
{
	if (slot >= n->ninputs || n->inputs[slot] < 0)
		return def;
	const struct dfq_tensor *t = f32_init(g, n->inputs[slot]);
	return t && t->numel == 1 ? dfq_tensor_f32(t)[0] : NAN;
}

/* The activation node n is, if any: Relu, or Clip(0, 6) in either form. */
static dfq_act act_of_node(const struct dfq_graph *g, const struct dfq_node *n, int vi)
{
	if (n->ninputs < 1 || n->inputs[0] != vi || n->noutputs < 1 || n->outputs[0] < 0)
		return DFQ_ACT_NONE;
	if (n->op == DFQ_OP_RELU)
		return DFQ_ACT_RELU;
	if (n->op != DFQ_OP_CLIP)
		return DFQ_ACT_NONE;
	float lo = const_scalar(g, n, 1, n->p.clip_min);
	float hi = const_scalar(g, n, 2, n->p.clip_max);
	return lo == 0.0f && hi == 6.0f ? DFQ_ACT_RELU6 : DFQ_ACT_NONE;
}

/* Activation following value vi (its only consumer), or NONE with *node -1. */
static dfq_act act_after(const struct dfq_graph *g, const int *oc, int vi, int *node)
{
	*node = -1;
	int c = oc[vi];
	if (c < 0)
		return DFQ_ACT_NONE;
	dfq_act a = act_of_node(g, &g->nodes[c], vi);
	if (a != DFQ_ACT_NONE)
		*node = c;
	return a;
}

/* Fill the geometry of a Conv/Gemm/MatMul node ni whose weight is an
 * initializer; false when it is not a layer we can transform. */
static bool layer_geometry(const struct dfq_graph *g, int ni, struct dfq_layer *L)
{
	const struct dfq_node *n = &g->nodes[ni];
	if (n->ninputs < 2 || n->noutputs < 1 || n->inputs[0] < 0 || g->values[n->inputs[0]].init)
		return false;
	const struct dfq_tensor *w = f32_init(g, n->inputs[1]);
	if (!w || w->numel == 0)
		return false;
	L->w_vi = n->inputs[1];
	L->b_vi = -1;
	if (n->op == DFQ_OP_CONV) {
		if (w->ndim < 3 || n->p.group < 1 || w->dims[0] % n->p.group != 0)
			return false;
		L->cout = w->dims[0];
		L->group = n->p.group;
		L->cin = w->dims[1] * L->group;
		L->ksize = w->numel / (w->dims[0] * w->dims[1]);
		L->w_istride = L->ksize;
		L->w_ostride = w->dims[1] * L->ksize;
	} else if (n->op == DFQ_OP_GEMM) {
		if (w->ndim != 2 || n->p.trans_a || n->p.alpha != 1.0f || n->p.beta != 1.0f)
			return false;
		L->group = 1;
		L->ksize = 1;
		L->cout = n->p.trans_b ? w->dims[0] : w->dims[1];
		L->cin = n->p.trans_b ? w->dims[1] : w->dims[0];
		L->w_ostride = n->p.trans_b ? L->cin : 1;
		L->w_istride = n->p.trans_b ? 1 : L->cout;
	} else if (n->op == DFQ_OP_MATMUL) {
		if (w->ndim != 2)
			return false;
		L->group = 1;
		L->ksize = 1;
		L->cin = w->dims[0];
		L->cout = w->dims[1];
		L->w_ostride = 1;
		L->w_istride = L->cout;
	} else {
		return false;
	}
	L->depthwise = L->group > 1 && L->group == L->cin;
	if ((n->op == DFQ_OP_CONV || n->op == DFQ_OP_GEMM) && n->ninputs >= 3 &&
	    n->inputs[2] >= 0) {
		const struct dfq_tensor *b = f32_init(g, n->inputs[2]);
		if (!b || b->numel != L->cout)
			return false;
		/* Gemm's C must broadcast along the output features only */
		if (n->op == DFQ_OP_GEMM && !(b->ndim == 1 || (b->ndim == 2 && b->dims[0] == 1)))
			return false;
		L->b_vi = n->inputs[2];
	}
	return true;
}

/* MatMul followed by Add(constant [out]): that Add carries the bias. */
static void matmul_bias(const struct dfq_graph *g, const int *oc, struct dfq_layer *L, int *cur)
{
	int c = oc[*cur];
	if (c < 0 || g->nodes[c].op != DFQ_OP_ADD || g->nodes[c].ninputs != 2)
		return;
	const struct dfq_node *a = &g->nodes[c];
	int other = a->inputs[0] == *cur ? a->inputs[1] : a->inputs[0];
	const struct dfq_tensor *b = f32_init(g, other);
	if (!b || b->numel != L->cout || !(b->ndim == 1 || (b->ndim == 2 && b->dims[0] == 1)))
		return;
	L->b_vi = other;
	L->bias_add_node = c;
	*cur = a->outputs[0];
}

/* BatchNormalization reading value cur as its only consumer, with constant
 * per-channel parameters: its node index, else -1. */
static int bn_after(const struct dfq_graph *g, const int *oc, const struct dfq_layer *L, int cur)
{
	int c = oc[cur];
	if (c < 0 || g->nodes[c].op != DFQ_OP_BATCHNORM)
		return -1;
	const struct dfq_node *n = &g->nodes[c];
	if (n->ninputs != 5 || n->inputs[0] != cur || n->outputs[0] < 0)
		return -1;
	for (int i = 1; i < n->noutputs; i++)
		if (n->outputs[i] >= 0)
			return -1;
	for (int i = 1; i < 5; i++) {
		const struct dfq_tensor *t = f32_init(g, n->inputs[i]);
		if (!t || t->numel != L->cout)
			return -1;
	}
	return c;
}

static void layer_alias(struct dfq_layer *L, const struct dfq_graph *g)
{
	const char *wn = g->values[L->w_vi].name;
	size_t n = strlen(wn), sfx = strlen(".weight");
	if (n > sfx && strcmp(wn + n - sfx, ".weight") == 0) {
		L->alias = rc_alloc(n - sfx + 1);
		if (L->alias) {
			memcpy(L->alias, wn, n - sfx);
			L->alias[n - sfx] = '\0';
		}
	} else {
		/* a default PyTorch export names weights "onnx::Conv_123" and nodes
		 * by scope path: the module's name is the readable one */
		char path[256];
		bool ok = L->name && model_module_path(L->name, path, sizeof path);
		L->alias = rc_strdup(ok ? path : L->name);
	}
}

/* Two layers of one module (or scope paths that meet) would share an alias:
 * the later ones keep their node names, so every alias names one layer. */
static dfq_status unique_aliases(struct dfq_layer *layers, int n, struct dfq_error *err)
{
	for (int i = 1; i < n; i++) {
		for (int j = 0; j < i; j++) {
			if (strcmp(layers[i].alias, layers[j].alias) != 0)
				continue;
			char *a = rc_strdup(layers[i].name);
			if (!a)
				return dfq_error_set(err, DFQ_ERR_NOMEM,
				                     "out of memory listing layers");
			rc_unref(layers[i].alias);
			layers[i].alias = a;
			break;
		}
	}
	return DFQ_OK;
}

/* One layer at node ni (fills *L, names owned); false when ni is no layer. */
static bool find_layer_at(const struct dfq_graph *g, const int *oc, int ni, struct dfq_layer *L,
                          bool *nomem)
{
	memset(L, 0, sizeof *L);
	const struct dfq_node *n = &g->nodes[ni];
	if (n->op != DFQ_OP_CONV && n->op != DFQ_OP_GEMM && n->op != DFQ_OP_MATMUL)
		return false;
	L->bias_add_node = -1;
	if (!layer_geometry(g, ni, L))
		return false;
	L->node = ni;
	L->op = n->op;
	L->in_vi = n->inputs[0];
	int cur = n->outputs[0];
	if (n->op == DFQ_OP_MATMUL)
		matmul_bias(g, oc, L, &cur);
	L->bn_node = bn_after(g, oc, L, cur);
	if (L->bn_node >= 0)
		cur = g->nodes[L->bn_node].outputs[0];
	L->lin_vi = cur;
	L->act = act_after(g, oc, cur, &L->act_node);
	L->out_vi = L->act_node >= 0 ? g->nodes[L->act_node].outputs[0] : cur;
	L->editable = g->values[L->w_vi].nconsumers == 1 &&
	              (L->b_vi < 0 || g->values[L->b_vi].nconsumers == 1);
	L->why_fixed = L->editable ? NULL : "its weight or bias is shared with another node";
	L->name = rc_strdup(n->name);
	layer_alias(L, g);
	if (!L->name || !L->alias) {
		*nomem = true;
		return false;
	}
	return true;
}

/* Copy the BN's scale/shift as the layer's statistics. */
static dfq_status stats_from_bn(const struct dfq_graph *g, struct dfq_layer *L,
                                struct dfq_error *err)
{
	const struct dfq_node *bn = &g->nodes[L->bn_node];
	L->gamma = rc_alloc((size_t)L->cout * sizeof *L->gamma);
	L->beta = rc_alloc((size_t)L->cout * sizeof *L->beta);
	if (!L->gamma || !L->beta)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory copying BN statistics");
	memcpy(L->gamma, dfq_tensor_f32(g->values[bn->inputs[1]].init),
	       (size_t)L->cout * sizeof *L->gamma);
	memcpy(L->beta, dfq_tensor_f32(g->values[bn->inputs[2]].init),
	       (size_t)L->cout * sizeof *L->beta);
	L->has_stats = true;
	return DFQ_OK;
}

/* Carry per-layer state over from old to L (same weight value), sharing its
 * buffers.  Statistics the old layer had win (equalization/absorption may have
 * changed them); a layer first seen now keeps the ones just copied from its BN. */
static void carry_layer(struct dfq_layer *L, const struct dfq_layer *old)
{
	L->steps = old->steps;
	L->quantized = old->quantized;
	L->q = old->q;
	L->pin = old->pin;
	L->nwqp = old->nwqp;
	L->bcorr_empirical = old->bcorr_empirical;
	if (old->has_stats) {
		rc_unref(L->gamma);
		rc_unref(L->beta);
		L->gamma = rc_ref(old->gamma);
		L->beta = rc_ref(old->beta);
		L->has_stats = true;
	}
	L->wq = dfq_tensor_ref(old->wq);
	L->wqp = rc_ref(old->wqp);
	L->bcorr_q = rc_ref(old->bcorr_q);
	L->bcorr_fp = rc_ref(old->bcorr_fp);
	L->w_ref = dfq_tensor_ref(old->w_ref);
	L->b_run_q = dfq_tensor_ref(old->b_run_q);
	L->b_run_fp = dfq_tensor_ref(old->b_run_fp);
}

static dfq_status discover_layers(const struct dfq_model *m, struct dfq_layer **out, int *nout,
                                  const int *oc, struct dfq_error *err)
{
	const struct dfq_graph *g = m->g;
	struct dfq_layer *layers = calloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof *layers);
	if (!layers)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory listing layers");
	int n = 0;
	dfq_status st = DFQ_OK;
	for (int ni = 0; ni < g->nnodes && st == DFQ_OK; ni++) {
		bool nomem = false;
		struct dfq_layer *L = &layers[n];
		if (!find_layer_at(g, oc, ni, L, &nomem)) {
			model_layer_release(L);
			if (nomem)
				st = dfq_error_set(err, DFQ_ERR_NOMEM,
				                   "out of memory listing layers");
			continue;
		}
		L->index = n++;
		if (L->bn_node >= 0)
			st = stats_from_bn(g, L, err);
	}
	if (st == DFQ_OK)
		st = unique_aliases(layers, n, err);
	if (st != DFQ_OK) {
		model_layers_free(layers, n);
		return st;
	}
	*out = layers;
	*nout = n;
	return DFQ_OK;
}

/* The fused activation after an Add: point at the activation's output. */
static void add_point_value(const struct dfq_graph *g, const int *oc, int vi, int *pvi,
                            dfq_act *act)
{
	int node;
	*act = act_after(g, oc, vi, &node);
	*pvi = node >= 0 ? g->nodes[node].outputs[0] : vi;
}

static bool is_bias_add(const struct dfq_layer *layers, int nl, int ni)
{
	for (int i = 0; i < nl; i++)
		if (layers[i].bias_add_node == ni)
			return true;
	return false;
}

static dfq_status discover_points(const struct dfq_graph *g, const int *oc,
                                  const struct dfq_layer *layers, int nl, struct dfq_apoint **out,
                                  int *nout, struct dfq_error *err)
{
	struct dfq_apoint *pts = calloc((size_t)(g->ninputs + g->nnodes + 1), sizeof *pts);
	int *layer_of_node = malloc((size_t)(g->nnodes ? g->nnodes : 1) * sizeof(int));
	if (!pts || !layer_of_node) {
		free(pts);
		free(layer_of_node);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory listing activations");
	}
	for (int ni = 0; ni < g->nnodes; ni++)
		layer_of_node[ni] = -1;
	for (int li = 0; li < nl; li++)
		layer_of_node[layers[li].node] = li;
	int n = 0;
	for (int i = 0; i < g->ninputs; i++) {
		if (g->values[g->inputs[i]].shape.dtype != DFQ_DTYPE_F32)
			continue;
		pts[n++] =
		    (struct dfq_apoint){.vi = g->inputs[i], .kind = DFQ_APOINT_INPUT, .layer = -1};
	}
	for (int ni = 0; ni < g->nnodes; ni++) {
		const struct dfq_node *nd = &g->nodes[ni];
		struct dfq_apoint p = {.layer = -1, .vi = -1};
		if (layer_of_node[ni] >= 0) {
			const struct dfq_layer *L = &layers[layer_of_node[ni]];
			p.kind = DFQ_APOINT_LAYER;
			p.layer = L->index;
			p.vi = L->out_vi;
			p.act = L->act;
		} else if (nd->op == DFQ_OP_ADD && !is_bias_add(layers, nl, ni) &&
		           nd->outputs[0] >= 0) {
			p.kind = DFQ_APOINT_ADD;
			add_point_value(g, oc, nd->outputs[0], &p.vi, &p.act);
		} else if (nd->op == DFQ_OP_CONCAT && nd->outputs[0] >= 0) {
			p.kind = DFQ_APOINT_CONCAT;
			p.vi = nd->outputs[0];
		} else if ((nd->op == DFQ_OP_MAXPOOL || nd->op == DFQ_OP_AVGPOOL ||
		            nd->op == DFQ_OP_GLOBALAVGPOOL) &&
		           nd->outputs[0] >= 0) {
			p.kind = DFQ_APOINT_POOL;
			p.vi = nd->outputs[0];
		}
		if (p.vi < 0)
			continue;
		/* a value is quantized once, by the first point that claims it */
		bool dup = false;
		for (int k = 0; k < n && !dup; k++)
			dup = pts[k].vi == p.vi;
		if (!dup)
			pts[n++] = p;
	}
	free(layer_of_node);
	*out = pts;
	*nout = n;
	return DFQ_OK;
}

/* Carry data ranges over to the new points (same value). */
static void carry_points(struct dfq_apoint *pts, int n, const struct dfq_apoint *old, int nold)
{
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < nold; k++) {
			if (old[k].vi != pts[i].vi)
				continue;
			pts[i].minmax = old[k].minmax;
			pts[i].global = old[k].global;
			pts[i].pct = old[k].pct;
			pts[i].nbatches = old[k].nbatches;
			pts[i].nsamples = old[k].nsamples;
			break;
		}
	}
}

dfq_status model_discover(struct dfq_model *m, struct dfq_error *err)
{
	const struct dfq_graph *g = m->g;
	struct dfq_layer *layers = NULL;
	struct dfq_apoint *pts = NULL;
	int nl = 0, np = 0;
	int *oc = only_consumers(g, err);
	if (!oc)
		return err ? err->status : DFQ_ERR_NOMEM;
	int *pov = malloc((size_t)(g->nvalues ? g->nvalues : 1) * sizeof *pov);
	dfq_status st = pov ? DFQ_OK : dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
	if (st == DFQ_OK)
		st = discover_layers(m, &layers, &nl, oc, err);
	if (st == DFQ_OK)
		st = discover_points(g, oc, layers, nl, &pts, &np, err);
	free(oc);
	if (st != DFQ_OK) {
		model_layers_free(layers, nl);
		free(pov);
		return st;
	}
	/* commit: nothing below fails */
	for (int i = 0; i < nl; i++) {
		for (int k = 0; k < m->nlayers; k++) {
			if (m->layers[k].w_vi == layers[i].w_vi) {
				carry_layer(&layers[i], &m->layers[k]);
				break;
			}
		}
	}
	carry_points(pts, np, m->points, m->npoints);
	for (int vi = 0; vi < g->nvalues; vi++)
		pov[vi] = -1;
	for (int i = 0; i < np; i++)
		pov[pts[i].vi] = i;
	model_replace_layers(m, layers, nl);
	model_replace_points(m, pts, np, pov);
	m->priv->npov = g->nvalues;
	m->has_stats = false;
	m->folded = true;
	for (int i = 0; i < nl; i++) {
		m->has_stats |= layers[i].has_stats;
		if (layers[i].bn_node >= 0)
			m->folded = false;
	}
	return DFQ_OK;
}
