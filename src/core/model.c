/* model.c - the graph seen as DFQ layers and activation points: discovery, targets, reports, free.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model_internal.h"

/* --- names ---------------------------------------------------------------- */

const char *dfq_act_name(dfq_act a)
{
	switch (a) {
	case DFQ_ACT_NONE:
		return "none";
	case DFQ_ACT_RELU:
		return "relu";
	case DFQ_ACT_RELU6:
		return "relu6";
	}
	return "?";
}

static const char *const step_names[DFQ_STEP_COUNT] = {
    "fold", "relu6", "clip", "equalize", "absorb", "quantize", "biascorr",
};

const char *dfq_step_name(unsigned step)
{
	for (int i = 0; i < DFQ_STEP_COUNT; i++)
		if (step == 1u << i)
			return step_names[i];
	return "?";
}

char *dfq_steps_str(unsigned mask, char *buf, size_t len)
{
	size_t used = 0;
	if (len == 0)
		return buf;
	buf[0] = '\0';
	for (int i = 0; i < DFQ_STEP_COUNT; i++) {
		if (!(mask & (1u << i)))
			continue;
		int k = snprintf(buf + used, len - used, "%s%s", used ? "," : "", step_names[i]);
		if (k < 0 || (size_t)k >= len - used)
			break;
		used += (size_t)k;
	}
	if (!buf[0])
		snprintf(buf, len, "-");
	return buf;
}

const char *dfq_apoint_kind_name(dfq_apoint_kind k)
{
	switch (k) {
	case DFQ_APOINT_INPUT:
		return "input";
	case DFQ_APOINT_LAYER:
		return "layer";
	case DFQ_APOINT_ADD:
		return "add";
	case DFQ_APOINT_CONCAT:
		return "concat";
	case DFQ_APOINT_POOL:
		return "pool";
	}
	return "?";
}

const char *dfq_range_src_name(dfq_range_src s)
{
	switch (s) {
	case DFQ_RANGE_BN:
		return "bn";
	case DFQ_RANGE_MINMAX:
		return "minmax";
	case DFQ_RANGE_GLOBAL:
		return "global";
	case DFQ_RANGE_PERCENTILE:
		return "percentile";
	case DFQ_RANGE_GIVEN:
		return "given";
	case DFQ_RANGE_NONE:
		return "none";
	}
	return "?";
}

dfq_status dfq_range_src_parse(const char *s, dfq_range_src *out, struct dfq_error *err)
{
	static const dfq_range_src choices[] = {DFQ_RANGE_BN, DFQ_RANGE_MINMAX, DFQ_RANGE_GLOBAL,
	                                        DFQ_RANGE_PERCENTILE};
	for (size_t i = 0; i < sizeof choices / sizeof choices[0]; i++) {
		if (strcmp(s, dfq_range_src_name(choices[i])) == 0) {
			*out = choices[i];
			return DFQ_OK;
		}
	}
	return dfq_error_set(err, DFQ_ERR_ARG,
	                     "unknown activation range source '%s' (expected bn, minmax, global "
	                     "or percentile)",
	                     s);
}

void dfq_qconfig_default(struct dfq_qconfig *q)
{
	q->wbits = 8;
	q->abits = 8;
	q->bbits = 0;
	q->scheme = DFQ_QSCHEME_ASYM;
	q->per_channel = false;
}

/* --- small helpers shared by the step files -------------------------------- */

float *model_w(const struct dfq_model *m, const struct dfq_layer *L)
{
	return dfq_tensor_f32(m->g->values[L->w_vi].init);
}

float *model_b(const struct dfq_model *m, const struct dfq_layer *L)
{
	return L->b_vi >= 0 ? dfq_tensor_f32(m->g->values[L->b_vi].init) : NULL;
}

bool model_selected(const bool *sel, int li)
{
	return !sel || sel[li];
}

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

void model_layer_spread(const struct dfq_model *m, const struct dfq_layer *L, dfq_qscheme range,
                        double *rmin, double *rmax, double *spread)
{
	const float *w = model_w(m, L);
	int64_t cin_g = L->cin / L->group;
	double lo_r = INFINITY, hi_r = 0.0;
	/* [out, ...] layouts: each output channel is one contiguous run */
	bool rows = L->w_istride == L->ksize && L->w_ostride == cin_g * L->ksize;
	for (int64_t o = 0; o < L->cout; o++) {
		float mn = INFINITY, mx = -INFINITY;
		if (rows) {
			const float *p = w + o * L->w_ostride;
			for (int64_t k = 0; k < L->w_ostride; k++) {
				mn = p[k] < mn ? p[k] : mn;
				mx = p[k] > mx ? p[k] : mx;
			}
		}
		for (int64_t i = 0; i < cin_g && !rows; i++) {
			const float *p = w + o * L->w_ostride + i * L->w_istride;
			for (int64_t k = 0; k < L->ksize; k++) {
				mn = p[k] < mn ? p[k] : mn;
				mx = p[k] > mx ? p[k] : mx;
			}
		}
		double r = range == DFQ_QSCHEME_SYM ? 2.0 * fmax(fabs(mn), fabs(mx))
		                                    : (double)mx - (double)mn;
		lo_r = r < lo_r ? r : lo_r;
		hi_r = r > hi_r ? r : hi_r;
	}
	if (L->cout == 0)
		lo_r = 0.0;
	*rmin = lo_r;
	*rmax = hi_r;
	*spread = lo_r > 0.0 ? hi_r / lo_r : (hi_r > 0.0 ? INFINITY : 1.0);
}

/* --- freeing ------------------------------------------------------------- */

void model_layer_release(struct dfq_layer *L)
{
	free(L->name);
	free(L->alias);
	free(L->gamma);
	free(L->beta);
	dfq_tensor_free(L->wq);
	free(L->wqp);
	free(L->bcorr_q);
	free(L->bcorr_fp);
	dfq_tensor_free(L->w_ref);
	dfq_tensor_free(L->b_run_q);
	dfq_tensor_free(L->b_run_fp);
	memset(L, 0, sizeof *L);
}

static void layers_free(struct dfq_layer *layers, int n)
{
	for (int i = 0; i < n; i++)
		model_layer_release(&layers[i]);
	free(layers);
}

static void priv_free(struct dfq_model_priv *p)
{
	if (!p)
		return;
	free(p->point_of_value);
	for (int i = 0; i < p->nctxs; i++)
		free(p->ctxs[i]);
	free(p->ctxs);
	free(p->given);
	free(p);
}

void dfq_model_free(struct dfq_model *m)
{
	if (!m)
		return;
	layers_free(m->layers, m->nlayers);
	free(m->points);
	priv_free(m->priv);
	dfq_graph_free(m->g);
	free(m);
}

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
		L->alias = malloc(n - sfx + 1);
		if (L->alias) {
			memcpy(L->alias, wn, n - sfx);
			L->alias[n - sfx] = '\0';
		}
	} else {
		L->alias = strdup(L->name);
	}
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
	L->name = strdup(n->name);
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
	L->gamma = malloc((size_t)L->cout * sizeof *L->gamma);
	L->beta = malloc((size_t)L->cout * sizeof *L->beta);
	if (!L->gamma || !L->beta)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory copying BN statistics");
	memcpy(L->gamma, dfq_tensor_f32(g->values[bn->inputs[1]].init),
	       (size_t)L->cout * sizeof *L->gamma);
	memcpy(L->beta, dfq_tensor_f32(g->values[bn->inputs[2]].init),
	       (size_t)L->cout * sizeof *L->beta);
	L->has_stats = true;
	return DFQ_OK;
}

/* Move per-layer state from old to L (same weight value).  Statistics the
 * old layer had win (equalization/absorption may have changed them); a
 * layer first seen now keeps the ones just copied from its BN. */
static void carry_layer(struct dfq_layer *L, struct dfq_layer *old)
{
	L->steps = old->steps;
	L->quantized = old->quantized;
	L->q = old->q;
	L->nwqp = old->nwqp;
	if (old->has_stats) {
		free(L->gamma);
		free(L->beta);
		L->gamma = old->gamma;
		L->beta = old->beta;
		L->has_stats = true;
		old->gamma = old->beta = NULL;
	}
#define MOVE(f)                                                                                    \
	do {                                                                                       \
		L->f = old->f;                                                                     \
		old->f = NULL;                                                                     \
	} while (0)
	MOVE(wq);
	MOVE(wqp);
	MOVE(bcorr_q);
	MOVE(bcorr_fp);
	MOVE(w_ref);
	MOVE(b_run_q);
	MOVE(b_run_fp);
#undef MOVE
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
	if (st != DFQ_OK) {
		layers_free(layers, n);
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
		layers_free(layers, nl);
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
	layers_free(m->layers, m->nlayers);
	free(m->points);
	m->layers = layers;
	m->nlayers = nl;
	m->points = pts;
	m->npoints = np;
	for (int vi = 0; vi < g->nvalues; vi++)
		pov[vi] = -1;
	for (int i = 0; i < np; i++)
		pov[pts[i].vi] = i;
	free(m->priv->point_of_value);
	m->priv->point_of_value = pov;
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

/* --- creation --------------------------------------------------------------- */

static struct dfq_model *model_alloc(struct dfq_graph *g, struct dfq_error *err)
{
	struct dfq_model *m = calloc(1, sizeof *m);
	struct dfq_model_priv *p = calloc(1, sizeof *p);
	struct dfq_range *given = calloc((size_t)(g->ninputs ? g->ninputs : 1), sizeof *given);
	if (!m || !p || !given) {
		free(m);
		free(p);
		free(given);
		dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory creating the model");
		return NULL;
	}
	m->g = g;
	m->priv = p;
	p->given = given;
	p->ngiven = g->ninputs;
	dfq_measure_opts_default(&p->mopts);
	m->range_src = DFQ_RANGE_BN;
	m->n_sigma = 6.0;
	dfq_qconfig_default(&m->aux_q);
	m->aux_enabled = false;
	return m;
}

/* The model struct without the graph (which stays the caller's). */
static void model_free_keep_graph(struct dfq_model *m)
{
	m->g = NULL;
	dfq_model_free(m);
}

static dfq_status check_weights_finite(const struct dfq_model *m, struct dfq_error *err)
{
	for (int li = 0; li < m->nlayers; li++) {
		const struct dfq_layer *L = &m->layers[li];
		const struct dfq_tensor *w = m->g->values[L->w_vi].init;
		const float *x = dfq_tensor_f32(w);
		for (int64_t i = 0; i < w->numel; i++)
			if (!isfinite(x[i]))
				return dfq_error_set(
				    err, DFQ_ERR_ARG,
				    "%s node '%s': weight '%s' holds %s at element "
				    "%lld",
				    m->g->nodes[L->node].op_type, L->name,
				    m->g->values[L->w_vi].name, isnan(x[i]) ? "NaN" : "Inf",
				    (long long)i);
	}
	return DFQ_OK;
}

struct dfq_model *dfq_model_new(struct dfq_graph *g, struct dfq_error *err)
{
	if (!g) {
		dfq_error_set(err, DFQ_ERR_ARG, "no graph to build a model from");
		return NULL;
	}
	struct dfq_model *m = model_alloc(g, err);
	if (!m)
		return NULL;
	dfq_status st = model_discover(m, err);
	if (st == DFQ_OK)
		st = check_weights_finite(m, err);
	/* every Conv/Gemm layer gets a bias slot now, so that no step ever adds
	 * a value later (executors size their tables by the value count) */
	if (st == DFQ_OK)
		st = model_add_missing_biases(g, err);
	if (st == DFQ_OK)
		st = model_discover(m, err);
	if (st == DFQ_OK)
		st = model_refresh(m, err);
	if (st != DFQ_OK) {
		model_free_keep_graph(m);
		return NULL;
	}
	return m;
}

/* Deep copy of one layer's owned state (names and buffers). */
static dfq_status clone_layer(struct dfq_layer *d, const struct dfq_layer *s, struct dfq_error *err)
{
	*d = *s;
	d->name = d->alias = NULL;
	d->gamma = d->beta = d->bcorr_q = d->bcorr_fp = NULL;
	d->wq = d->w_ref = d->b_run_q = d->b_run_fp = NULL;
	d->wqp = NULL;
	size_t fc = (size_t)s->cout * sizeof(float);
	bool ok = (d->name = strdup(s->name)) && (d->alias = strdup(s->alias));
#define CLONE_F(f)                                                                                 \
	if (ok && s->f) {                                                                          \
		d->f = malloc(fc);                                                                 \
		ok = d->f != NULL;                                                                 \
		if (ok)                                                                            \
			memcpy(d->f, s->f, fc);                                                    \
	}
	CLONE_F(gamma)
	CLONE_F(beta)
	CLONE_F(bcorr_q)
	CLONE_F(bcorr_fp)
#undef CLONE_F
#define CLONE_T(f)                                                                                 \
	if (ok && s->f) {                                                                          \
		d->f = dfq_tensor_clone(s->f, NULL);                                               \
		ok = d->f != NULL;                                                                 \
	}
	CLONE_T(wq)
	CLONE_T(w_ref)
	CLONE_T(b_run_q)
	CLONE_T(b_run_fp)
#undef CLONE_T
	if (ok && s->wqp) {
		d->wqp = malloc((size_t)s->nwqp * sizeof *d->wqp);
		ok = d->wqp != NULL;
		if (ok)
			memcpy(d->wqp, s->wqp, (size_t)s->nwqp * sizeof *d->wqp);
	}
	if (!ok)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory copying layer '%s'",
		                     s->name);
	return DFQ_OK;
}

struct dfq_model *dfq_model_clone(const struct dfq_model *m, struct dfq_error *err)
{
	struct dfq_graph *g = model_graph_clone(m->g, err);
	if (!g)
		return NULL;
	struct dfq_model *c = model_alloc(g, err);
	if (!c) {
		dfq_graph_free(g);
		return NULL;
	}
	c->range_src = m->range_src;
	c->n_sigma = m->n_sigma;
	c->aux_q = m->aux_q;
	c->aux_enabled = m->aux_enabled;
	c->data_stale = m->data_stale;
	c->has_stats = m->has_stats;
	c->folded = m->folded;
	c->priv->mopts = m->priv->mopts;
	memcpy(c->priv->given, m->priv->given, (size_t)m->priv->ngiven * sizeof *c->priv->given);
	dfq_status st = DFQ_OK;
	c->layers = calloc((size_t)(m->nlayers ? m->nlayers : 1), sizeof *c->layers);
	c->points = malloc((size_t)(m->npoints ? m->npoints : 1) * sizeof *c->points);
	c->priv->point_of_value = malloc((size_t)(m->priv->npov ? m->priv->npov : 1) * sizeof(int));
	if (!c->layers || !c->points || !c->priv->point_of_value)
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory copying the model");
	for (int i = 0; i < m->nlayers && st == DFQ_OK; i++) {
		st = clone_layer(&c->layers[i], &m->layers[i], err);
		c->nlayers = i + 1;
	}
	if (st != DFQ_OK) {
		dfq_model_free(c);
		return NULL;
	}
	memcpy(c->points, m->points, (size_t)m->npoints * sizeof *c->points);
	c->npoints = m->npoints;
	memcpy(c->priv->point_of_value, m->priv->point_of_value,
	       (size_t)m->priv->npov * sizeof(int));
	c->priv->npov = m->priv->npov;
	return c;
}

/* --- layer lookup and targets --------------------------------------------- */

int dfq_model_find_layer(const struct dfq_model *m, const char *name)
{
	for (int i = 0; i < m->nlayers; i++)
		if (strcmp(m->layers[i].name, name) == 0)
			return i;
	for (int i = 0; i < m->nlayers; i++)
		if (strcmp(m->layers[i].alias, name) == 0)
			return i;
	return -1;
}

/* Edit distance, capped at 64 characters per side (enough to rank names). */
static int edit_distance(const char *a, const char *b)
{
	enum { MAXL = 64 };
	int la = (int)strlen(a), lb = (int)strlen(b);
	la = la > MAXL ? MAXL : la;
	lb = lb > MAXL ? MAXL : lb;
	int prev[MAXL + 1], cur[MAXL + 1];
	for (int j = 0; j <= lb; j++)
		prev[j] = j;
	for (int i = 1; i <= la; i++) {
		cur[0] = i;
		for (int j = 1; j <= lb; j++) {
			int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			int del = prev[j] + 1, ins = cur[j - 1] + 1;
			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, (size_t)(lb + 1) * sizeof *prev);
	}
	return prev[lb];
}

/* The name or alias the user probably meant: one equal to name but for case,
 * the only layer starting with name, or else the nearest within max(2,
 * len / 3) edits that keeps something of both words (fewer edits than either
 * is long).  NULL when nothing is that close: a far-off guess misleads. */
static const char *closest_name(const struct dfq_model *m, const char *name)
{
	int n = (int)strlen(name);
	const char *prefix = NULL;
	int nprefix = 0;
	for (int i = 0; i < m->nlayers; i++) {
		const char *cands[2] = {m->layers[i].alias, m->layers[i].name};
		bool starts = false;
		for (int k = 0; k < 2; k++) {
			if (strcasecmp(name, cands[k]) == 0)
				return cands[k];
			if (!starts && strncmp(name, cands[k], (size_t)n) == 0) {
				starts = true;
				prefix = cands[k];
			}
		}
		nprefix += starts;
	}
	if (nprefix == 1)
		return prefix;
	const char *best = NULL;
	int bd = (n / 3 > 2 ? n / 3 : 2) + 1;
	for (int i = 0; i < m->nlayers; i++) {
		const char *cands[2] = {m->layers[i].alias, m->layers[i].name};
		for (int k = 0; k < 2; k++) {
			int d = edit_distance(name, cands[k]);
			if (d < bd && d < n && d < (int)strlen(cands[k])) {
				bd = d;
				best = cands[k];
			}
		}
	}
	return best;
}

static bool all_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

static dfq_status parse_index(const struct dfq_model *m, const char *s, size_t n, int *out,
                              struct dfq_error *err)
{
	long long v = 0;
	for (size_t i = 0; i < n; i++) {
		v = v * 10 + (s[i] - '0');
		if (v > 1000000000LL)
			break;
	}
	if (v >= m->nlayers)
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "layer index %.*s is out of range (the model has %d layers, "
		                     "0 to %d)",
		                     (int)n, s, m->nlayers, m->nlayers - 1);
	*out = (int)v;
	return DFQ_OK;
}

/* One comma-free token into sel. */
static dfq_status parse_token(const struct dfq_model *m, const char *tok, bool *sel,
                              struct dfq_error *err)
{
	size_t n = strlen(tok);
	if (n == 0)
		return dfq_error_set(err, DFQ_ERR_ARG, "empty layer name in the target list");
	if (strcmp(tok, "all") == 0) {
		for (int i = 0; i < m->nlayers; i++)
			sel[i] = true;
		return DFQ_OK;
	}
	int li = dfq_model_find_layer(m, tok);
	if (li >= 0) {
		sel[li] = true;
		return DFQ_OK;
	}
	const char *dash = strchr(tok, '-');
	if (all_digits(tok, n)) {
		dfq_status st = parse_index(m, tok, n, &li, err);
		if (st == DFQ_OK)
			sel[li] = true;
		return st;
	}
	if (dash && all_digits(tok, (size_t)(dash - tok)) &&
	    all_digits(dash + 1, strlen(dash + 1))) {
		int a, b;
		dfq_status st = parse_index(m, tok, (size_t)(dash - tok), &a, err);
		if (st == DFQ_OK)
			st = parse_index(m, dash + 1, strlen(dash + 1), &b, err);
		if (st != DFQ_OK)
			return st;
		if (a > b)
			return dfq_error_set(err, DFQ_ERR_ARG,
			                     "layer range '%s' is backwards (write %d-%d)", tok, b,
			                     a);
		for (int i = a; i <= b; i++)
			sel[i] = true;
		return DFQ_OK;
	}
	const char *best = closest_name(m, tok);
	if (best)
		return dfq_error_set(err, DFQ_ERR_ARG, "unknown layer '%s' (did you mean '%s'?)",
		                     tok, best);
	if (m->nlayers == 0)
		return dfq_error_set(err, DFQ_ERR_ARG, "unknown layer '%s' (the model has no layers)",
		                     tok);
	return dfq_error_set(err, DFQ_ERR_ARG, "unknown layer '%s' (type 'layers' to list them)",
	                     tok);
}

dfq_status dfq_model_parse_targets(const struct dfq_model *m, int nspecs, const char *const *specs,
                                   bool *sel, struct dfq_error *err)
{
	for (int i = 0; i < m->nlayers; i++)
		sel[i] = false;
	if (nspecs <= 0)
		return dfq_error_set(err, DFQ_ERR_ARG, "no layers given (name, index, A-B or all)");
	for (int s = 0; s < nspecs; s++) {
		const char *p = specs[s];
		char tok[512];
		for (;;) {
			const char *e = strchr(p, ',');
			size_t n = e ? (size_t)(e - p) : strlen(p);
			if (n >= sizeof tok)
				return dfq_error_set(err, DFQ_ERR_ARG,
				                     "layer name '%.40s...' is too "
				                     "long",
				                     p);
			memcpy(tok, p, n);
			tok[n] = '\0';
			dfq_status st = parse_token(m, tok, sel, err);
			if (st != DFQ_OK) {
				for (int i = 0; i < m->nlayers; i++)
					sel[i] = false;
				return st;
			}
			if (!e)
				break;
			p = e + 1;
		}
	}
	return DFQ_OK;
}

/* --- layer info --------------------------------------------------------- */

dfq_status dfq_model_channel_ranges(const struct dfq_model *m, int li, float *lo, float *hi,
                                    struct dfq_error *err)
{
	if (li < 0 || li >= m->nlayers)
		return dfq_error_set(err, DFQ_ERR_ARG, "no layer %d (the model has %d)", li,
		                     m->nlayers);
	const struct dfq_layer *L = &m->layers[li];
	const float *w = model_w(m, L);
	int64_t cin_g = L->cin / L->group;
	for (int64_t o = 0; o < L->cout; o++) {
		float mn = INFINITY, mx = -INFINITY;
		for (int64_t i = 0; i < cin_g; i++) {
			const float *p = w + o * L->w_ostride + i * L->w_istride;
			for (int64_t k = 0; k < L->ksize; k++) {
				mn = p[k] < mn ? p[k] : mn;
				mx = p[k] > mx ? p[k] : mx;
			}
		}
		lo[o] = mn;
		hi[o] = mx;
	}
	return DFQ_OK;
}

dfq_status dfq_model_layer_info(const struct dfq_model *m, int li, struct dfq_layer_info *out,
                                struct dfq_error *err)
{
	if (li < 0 || li >= m->nlayers)
		return dfq_error_set(err, DFQ_ERR_ARG, "no layer %d (the model has %d)", li,
		                     m->nlayers);
	const struct dfq_layer *L = &m->layers[li];
	const struct dfq_tensor *w = m->g->values[L->w_vi].init;
	memset(out, 0, sizeof *out);
	const float *x = dfq_tensor_f32(w);
	float mn = INFINITY, mx = -INFINITY;
	for (int64_t i = 0; i < w->numel; i++) {
		mn = x[i] < mn ? x[i] : mn;
		mx = x[i] > mx ? x[i] : mx;
	}
	out->wmin = mn;
	out->wmax = mx;
	double rmin, rmax, spread;
	model_layer_spread(m, L, DFQ_QSCHEME_ASYM, &rmin, &rmax, &spread);
	out->rmin = (float)rmin;
	out->rmax = (float)rmax;
	out->spread = spread;
	out->nparams = w->numel + (L->b_vi >= 0 ? m->g->values[L->b_vi].init->numel : 0);
	out->wbits = L->quantized ? L->q.wbits : 0;
	out->abits = L->quantized ? L->q.abits : 0;
	int pi = L->out_vi < m->priv->npov ? m->priv->point_of_value[L->out_vi] : -1;
	if (pi >= 0) {
		const struct dfq_apoint *p = &m->points[pi];
		const struct dfq_range *r = p->used == DFQ_RANGE_BN           ? &p->bn
		                            : p->used == DFQ_RANGE_MINMAX     ? &p->minmax
		                            : p->used == DFQ_RANGE_GLOBAL     ? &p->global
		                            : p->used == DFQ_RANGE_PERCENTILE ? &p->pct
		                            : p->used == DFQ_RANGE_GIVEN      ? &p->given
		                                                              : NULL;
		if (r && r->valid) {
			out->has_act_range = true;
			out->act_lo = r->lo;
			out->act_hi = r->hi;
		}
	}
	return DFQ_OK;
}
