/* model.c - creating and freeing a model, and what callers ask of it: layer information,
 * per-channel weight ranges, the quantization error of a layer's weights. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

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

static void priv_free(struct dfq_model *m)
{
	struct dfq_model_priv *p = m->priv;
	if (!p)
		return;
	model_save_free(p->txn);
	model_history_free(&p->hist);
	model_exec_free_ctxs(m);
	free(p->point_of_value);
	free(p->given);
	free(p);
	m->priv = NULL;
}

void dfq_model_free(struct dfq_model *m)
{
	if (!m)
		return;
	/* an open transaction holds the model as it was: drop it with the rest */
	priv_free(m);
	model_layers_free(m->layers, m->nlayers);
	free(m->points);
	dfq_graph_free(m->g);
	free(m);
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

/* --- layer info --------------------------------------------------------- */

dfq_status dfq_model_channel_ranges_of(const struct dfq_model *m, int li,
                                       const struct dfq_tensor *w, float *lo, float *hi,
                                       struct dfq_error *err)
{
	if (li < 0 || li >= m->nlayers)
		return dfq_error_set(err, DFQ_ERR_ARG, "no layer %d (the model has %d)", li,
		                     m->nlayers);
	const struct dfq_layer *L = &m->layers[li];
	if (!w)
		w = m->g->values[L->w_vi].init;
	if (!dfq_tensor_same_shape(w, m->g->values[L->w_vi].init))
		return dfq_error_set(err, DFQ_ERR_SHAPE,
		                     "weights of another shape than layer '%s''s", L->name);
	const float *x = dfq_tensor_f32(w);
	int64_t cin_g = L->cin / L->group;
	for (int64_t o = 0; o < L->cout; o++) {
		float mn = INFINITY, mx = -INFINITY;
		for (int64_t i = 0; i < cin_g; i++) {
			const float *p = x + o * L->w_ostride + i * L->w_istride;
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

dfq_status dfq_model_channel_ranges(const struct dfq_model *m, int li, float *lo, float *hi,
                                    struct dfq_error *err)
{
	return dfq_model_channel_ranges_of(m, li, NULL, lo, hi, err);
}

bool dfq_model_layer_act_range(const struct dfq_model *m, int li, float *lo, float *hi)
{
	if (li < 0 || li >= m->nlayers)
		return false;
	int pi = model_point_of(m, m->layers[li].out_vi);
	const struct dfq_range *r = pi >= 0 ? model_point_range(&m->points[pi]) : NULL;
	if (!r || !r->valid)
		return false;
	*lo = r->lo;
	*hi = r->hi;
	return true;
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
	out->has_act_range = dfq_model_layer_act_range(m, li, &out->act_lo, &out->act_hi);
	return DFQ_OK;
}

/* --- weight quantization error ------------------------------------------------------ */

/* [in, out] -> [out, in] copy of a rank-2 tensor. */
static struct dfq_tensor *transposed(const struct dfq_tensor *t, struct dfq_error *err)
{
	int64_t dims[2] = {t->dims[1], t->dims[0]};
	struct dfq_tensor *o = dfq_tensor_new(DFQ_DTYPE_F32, 2, dims, err);
	if (!o)
		return NULL;
	const float *s = dfq_tensor_f32(t);
	float *d = dfq_tensor_f32(o);
	for (int64_t i = 0; i < t->dims[0]; i++)
		for (int64_t j = 0; j < t->dims[1]; j++)
			d[j * t->dims[0] + i] = s[i * t->dims[1] + j];
	return o;
}

dfq_status dfq_model_weight_error(const struct dfq_model *m, int li, const struct dfq_qconfig *q,
                                  dfq_qerr_reduce reduce, struct dfq_tensor **eps,
                                  struct dfq_qerr_stats *stats, struct dfq_error *err)
{
	if (eps)
		*eps = NULL;
	const struct dfq_qconfig *cfg;
	dfq_status st = model_layer_qconfig(m, li, q, &cfg, err);
	if (st != DFQ_OK)
		return st;
	const struct dfq_layer *L = &m->layers[li];
	const struct dfq_tensor *w = m->g->values[L->w_vi].init;
	struct dfq_tensor *tmp = NULL;
	const struct dfq_tensor *wq = L->wq;
	if (q) {
		tmp = dfq_tensor_clone(w, err);
		if (!tmp)
			return err ? err->status : DFQ_ERR_NOMEM;
		st = model_quantize_w(L, w, cfg, tmp, NULL, err);
		wq = tmp;
	}
	if (st == DFQ_OK && stats)
		dfq_qerr_stats(dfq_tensor_f32(w), dfq_tensor_f32(wq), w->numel, stats);
	if (st == DFQ_OK && eps) {
		/* reductions count output channels on axis 0 */
		if (L->w_ostride == 1 && L->cout > 1 && w->ndim == 2) {
			struct dfq_tensor *a = transposed(w, err),
			                  *b = a ? transposed(wq, err) : NULL;
			st = a && b ? dfq_quantize_error(a, b, reduce, eps, err)
			            : (err ? err->status : DFQ_ERR_NOMEM);
			dfq_tensor_free(a);
			dfq_tensor_free(b);
		} else {
			st = dfq_quantize_error(w, wq, reduce, eps, err);
		}
	}
	dfq_tensor_free(tmp);
	return st;
}
