/* model_exec.c - running the model: executors prepared for FP32 or fake-quantized runs, and the
 * value hook that lets data-driven steps see every activation. */
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

void model_exec_reset(struct dfq_exec *ex)
{
	dfq_exec_set_hook(ex, NULL, NULL);
	dfq_exec_clear_overrides(ex);
	dfq_exec_clear_quants(ex);
	dfq_exec_clear_given(ex);
}

struct model_hook_ctx *model_hook_ctx_for(struct dfq_model *m, struct dfq_exec *ex,
                                          struct dfq_error *err)
{
	struct dfq_model_priv *p = m->priv;
	for (int i = 0; i < p->nctxs; i++) {
		if (p->ctxs[i]->ex == ex) {
			return p->ctxs[i];
		}
	}
	struct model_hook_ctx **a = realloc(p->ctxs, (size_t)(p->nctxs + 1) * sizeof *a);
	if (!a) {
		dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory preparing an executor");
		return NULL;
	}
	p->ctxs = a;
	struct model_hook_ctx *c = calloc(1, sizeof *c);
	if (!c) {
		dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory preparing an executor");
		return NULL;
	}
	c->m = m;
	c->ex = ex;
	p->ctxs[p->nctxs++] = c;
	return c;
}

dfq_status model_hook(void *user, const struct dfq_graph *g, int vi, struct dfq_tensor *t,
                      struct dfq_error *err)
{
	struct model_hook_ctx *c = user;
	if (c->extra) {
		dfq_status st = c->extra(c->extra_user, g, vi, t, err);
		if (st != DFQ_OK)
			return st;
		if (c->stop)
			return dfq_error_set(err, DFQ_ERR_INTERNAL, "run stopped early on purpose");
	}
	return DFQ_OK;
}

dfq_status dfq_model_exec_prepare(struct dfq_model *m, struct dfq_exec *ex, dfq_run_mode mode,
                                  struct dfq_error *err)
{
	model_exec_reset(ex);
	dfq_status st = DFQ_OK;
	for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
		const struct dfq_layer *L = &m->layers[li];
		if (mode == DFQ_RUN_QUANT) {
			if (L->quantized && L->wq)
				st = dfq_exec_set_override(ex, L->w_vi, L->wq, err);
			if (st == DFQ_OK && L->b_run_q)
				st = dfq_exec_set_override(ex, L->b_vi, L->b_run_q, err);
		} else if (L->b_run_fp) {
			st = dfq_exec_set_override(ex, L->b_vi, L->b_run_fp, err);
		}
	}
	/* activations: the executor quantizes them (in the fused kernels'
	 * epilogues where it can); graph inputs are quantized by dfq_model_run */
	const struct dfq_graph *g = m->g;
	for (int pi = 0; st == DFQ_OK && mode == DFQ_RUN_QUANT && pi < m->npoints; pi++) {
		const struct dfq_apoint *pt = &m->points[pi];
		if (!pt->enabled || pt->vi < 0 || g->values[pt->vi].init)
			continue;
		bool input = false;
		for (int i = 0; i < g->ninputs; i++)
			input = input || g->inputs[i] == pt->vi;
		if (!input)
			st = dfq_exec_set_quant(ex, pt->vi, &pt->qp, err);
	}
	if (st != DFQ_OK)
		model_exec_reset(ex);
	return st;
}

dfq_status dfq_model_run(struct dfq_model *m, struct dfq_exec *ex, dfq_run_mode mode,
                         struct dfq_tensor *const *inputs, struct dfq_tensor **outputs,
                         struct dfq_error *err)
{
	const struct dfq_graph *g = m->g;
	for (int i = 0; i < g->noutputs; i++)
		outputs[i] = NULL;
	dfq_status st = dfq_model_exec_prepare(m, ex, mode, err);
	if (st != DFQ_OK)
		return st;
	if (mode != DFQ_RUN_QUANT)
		return dfq_exec_run(ex, inputs, outputs, err);
	/* the hook never sees graph inputs: quantize copies of them here */
	struct dfq_tensor **in = calloc((size_t)(g->ninputs ? g->ninputs : 1), sizeof *in);
	struct dfq_tensor **own = calloc((size_t)(g->ninputs ? g->ninputs : 1), sizeof *own);
	if (!in || !own)
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory running the model");
	for (int i = 0; i < g->ninputs && st == DFQ_OK; i++) {
		in[i] = inputs ? inputs[i] : NULL;
		int pi = m->priv->point_of_value[g->inputs[i]];
		if (!in[i] || pi < 0 || !m->points[pi].enabled || in[i]->dtype != DFQ_DTYPE_F32)
			continue;
		own[i] = dfq_tensor_clone(in[i], err);
		if (!own[i]) {
			st = err ? err->status : DFQ_ERR_NOMEM;
			break;
		}
		dfq_fake_quant(dfq_tensor_f32(own[i]), own[i]->numel, &m->points[pi].qp);
		in[i] = own[i];
	}
	if (st == DFQ_OK)
		st = dfq_exec_run(ex, in, outputs, err);
	for (int i = 0; own && i < g->ninputs; i++)
		dfq_tensor_free(own[i]);
	free(in);
	free(own);
	return st;
}

void model_exec_free_ctxs(struct dfq_model *m)
{
	struct dfq_model_priv *p = m->priv;
	for (int i = 0; i < p->nctxs; i++)
		free(p->ctxs[i]);
	free(p->ctxs);
	p->ctxs = NULL;
	p->nctxs = 0;
}
