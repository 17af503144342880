/* model_analysis.c - per-layer sensitivity to quantization and a layer-by-layer comparison of the
 * fake-quantized model against FP32 (dfq_analysis.h).  Queries: they configure an executor and
 * never change the model.
 *
 * Sensitivity loops over batches outside and layers inside: per batch one FP32 run keeps every
 * value some layer's run will not recompute, then each layer's runs start from those values
 * (dfq_exec_set_given) and recompute only what lies downstream of the layer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dfq/dfq_analysis.h"
#include "dfq/dfq_eval.h"
#include "model_internal.h"

void dfq_analysis_opts_default(struct dfq_analysis_opts *o)
{
	memset(o, 0, sizeof *o);
	o->split = DFQ_SPLIT_EVAL;
}

double dfq_sqnr_from_sums(double sx2, double se2)
{
	if (isnan(sx2) || isnan(se2))
		return NAN;
	if (se2 <= 0.0)
		return INFINITY;
	if (sx2 <= 0.0)
		return -INFINITY;
	return 10.0 * log10(sx2 / se2);
}

void dfq_sens_result_free(struct dfq_sens_result *r)
{
	if (!r)
		return;
	free(r->rows);
	memset(r, 0, sizeof *r);
}

void dfq_cmp_result_free(struct dfq_cmp_result *r)
{
	if (!r)
		return;
	free(r->rows);
	memset(r, 0, sizeof *r);
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* --- the data, batch by batch (as eval reads it) ------------------------------------ */

struct batches {
	struct dfq_data *d;
	dfq_data_split split;
	int64_t total, batch;
	bool fixed;            /* the model's batch size is fixed: pad the last batch */
	struct dfq_tensor *x;  /* owned, [batch, C, H, W] */
	struct dfq_tensor *xt; /* owned: a shorter last batch, or NULL */
	int64_t *labels;       /* owned, batch entries */
};

static void batches_close(struct batches *b)
{
	dfq_tensor_free(b->x);
	dfq_tensor_free(b->xt);
	free(b->labels);
}

static dfq_status batches_open(struct batches *b, const struct dfq_graph *g, struct dfq_data *d,
                               const struct dfq_analysis_opts *o, struct dfq_error *err)
{
	memset(b, 0, sizeof *b);
	b->d = d;
	b->split = o->split;
	if (g->ninputs != 1)
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "a data pass needs a model with one input; this one has %d",
		                     g->ninputs);
	if (g->noutputs < 1)
		return dfq_error_set(err, DFQ_ERR_ARG, "the model has no outputs");
	int64_t avail = dfq_data_count(d, o->split);
	const char *slice = o->split == DFQ_SPLIT_EVAL ? "evaluation" : "calibration";
	b->total = o->n > 0 ? o->n : avail;
	if (o->n < 0 || b->total > avail)
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "%lld images asked for but the %s slice has %lld",
		                     (long long)o->n, slice, (long long)avail);
	if (b->total == 0)
		return dfq_error_set(err, DFQ_ERR_ARG, "the %s slice is empty", slice);
	const struct dfq_value *in = &g->values[g->inputs[0]];
	dfq_status st = dfq_data_fit(d, in->name, &in->shape, err);
	if (st != DFQ_OK)
		return st;
	b->batch = o->batch > 0 ? o->batch : DFQ_EVAL_DEFAULT_BATCH;
	if (in->shape.dims[0] > 0) {
		b->batch = in->shape.dims[0];
		b->fixed = true;
	}
	const struct dfq_data_info *di = dfq_data_get_info(d);
	int64_t dims[4] = {b->batch, di->channels, di->height, di->width};
	b->x = dfq_tensor_new(DFQ_DTYPE_F32, 4, dims, err);
	if (!b->x)
		return err ? err->status : DFQ_ERR_NOMEM;
	b->labels = malloc(sizeof *b->labels * (size_t)b->batch);
	if (!b->labels)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory for a batch");
	return DFQ_OK;
}

/* Images [first, first + m) into *x (borrowed from b); *rows = the rows the
 * model will see (m, or the fixed batch size when padded). */
static dfq_status batches_read(struct batches *b, int64_t first, int64_t m, struct dfq_tensor **x,
                               int64_t *rows, struct dfq_error *err)
{
	*x = b->x;
	*rows = m;
	if (m < b->batch && b->fixed) {
		memset(b->x->data, 0, (size_t)b->x->numel * sizeof(float));
		*rows = b->batch;
	} else if (m < b->batch) {
		dfq_tensor_free(b->xt);
		int64_t dims[4] = {m, b->x->dims[1], b->x->dims[2], b->x->dims[3]};
		b->xt = dfq_tensor_new(DFQ_DTYPE_F32, 4, dims, err);
		if (!b->xt)
			return err ? err->status : DFQ_ERR_NOMEM;
		*x = b->xt;
	}
	return dfq_data_read(b->d, b->split, first, m, dfq_tensor_f32(*x), b->labels, err);
}

/* Scores per image of output y for rows images, or 0 after an error. */
static int64_t scores_per_row(const struct dfq_graph *g, const struct dfq_tensor *y, int64_t rows,
                              struct dfq_error *err)
{
	if (!y || y->dtype != DFQ_DTYPE_F32 || y->ndim < 1 || y->dims[0] != rows || y->numel == 0 ||
	    y->numel % rows != 0 || y->numel / rows > (1 << 24)) {
		dfq_error_set(err, DFQ_ERR_SHAPE,
		              "the model's output '%s' is not float32 scores with %lld rows",
		              g->values[g->outputs[0]].name, (long long)rows);
		return 0;
	}
	return y->numel / rows;
}

/* Top-1 hits among the first m rows of y (k scores each). */
static int64_t top1_hits(const struct dfq_tensor *y, int64_t k, int64_t m, const int64_t *labels)
{
	const float *p = dfq_tensor_f32(y);
	int64_t hits = 0;
	for (int64_t i = 0; i < m; i++)
		hits += dfq_eval_rank(p + i * k, (int)k, labels[i]) == 0;
	return hits;
}

/* Sums of x^2 and (y - x)^2 over n values. */
static void err_sums(const float *x, const float *y, int64_t n, double *sx2, double *se2)
{
	double a = 0.0, e = 0.0;
	for (int64_t i = 0; i < n; i++) {
		double d = (double)y[i] - (double)x[i];
		a += (double)x[i] * x[i];
		e += d * d;
	}
	*sx2 += a;
	*se2 += e;
}

static void free_outputs(const struct dfq_graph *g, struct dfq_tensor **outs)
{
	for (int i = 0; i < g->noutputs; i++) {
		dfq_tensor_free(outs[i]);
		outs[i] = NULL;
	}
}

/* --- keeping the FP32 values -------------------------------------------------------- */

/* A hook that keeps a copy of every value flagged in want (store: g->nvalues
 * entries, owned, each replaced on the next run). */
struct keep {
	const bool *want;
	struct dfq_tensor **store;
};

static dfq_status keep_hook(void *user, const struct dfq_graph *g, int vi, struct dfq_tensor *t,
                            struct dfq_error *err)
{
	(void)g;
	struct keep *k = user;
	if (!k->want[vi])
		return DFQ_OK;
	dfq_tensor_free(k->store[vi]);
	k->store[vi] = dfq_tensor_clone(t, err);
	return k->store[vi] ? DFQ_OK : (err ? err->status : DFQ_ERR_NOMEM);
}

static void store_free(struct dfq_tensor **store, int n)
{
	for (int i = 0; store && i < n; i++)
		dfq_tensor_free(store[i]);
	free(store);
}

static bool is_input(const struct dfq_graph *g, int vi)
{
	for (int i = 0; i < g->ninputs; i++)
		if (g->inputs[i] == vi)
			return true;
	return false;
}

/* --- sensitivity -------------------------------------------------------------------- */

/* What one layer's runs need, worked out once. */
struct sens_layer {
	struct dfq_tensor *wq; /* owned: its fake-quantized weights, or NULL (skipped) */
	bool has_act;
	struct dfq_qparams act; /* its output grid (has_act) */
	int *given;             /* owned: values its runs take from the FP32 run */
	int ngiven;
	int nruns; /* runs per batch: 1 (weights; both = weights) or 3 */
	/* sums over the batches, per kind */
	int64_t hits[DFQ_SENS_KINDS];
	double sx2[DFQ_SENS_KINDS], se2[DFQ_SENS_KINDS];
};

struct sens {
	struct dfq_model *m;
	struct dfq_exec *ex;
	const struct dfq_qconfig *q;
	struct sens_layer *ls; /* owned, m->nlayers */
	bool *want;            /* owned, g->nvalues: some layer takes it as given */
	int *producer;         /* owned, g->nvalues: the node computing it, or -1 */
	bool *in_down;         /* owned, g->nnodes: scratch */
	bool *val_down;        /* owned, g->nvalues: scratch */
	bool *mark;            /* owned, g->nvalues: scratch */
};

static void sens_free(struct sens *s)
{
	for (int li = 0; s->ls && li < s->m->nlayers; li++) {
		dfq_tensor_free(s->ls[li].wq);
		free(s->ls[li].given);
	}
	free(s->ls);
	free(s->want);
	free(s->producer);
	free(s->in_down);
	free(s->val_down);
	free(s->mark);
}

/* The nodes downstream of layer li (in_down; their count is returned, -1
 * on error) and the values its runs take as given: read by a downstream
 * node or a graph output, computed upstream. */
static int sens_downstream(struct sens *s, int li, struct dfq_error *err)
{
	const struct dfq_graph *g = s->m->g;
	const struct dfq_layer *L = &s->m->layers[li];
	struct sens_layer *sl = &s->ls[li];
	memset(s->val_down, 0, (size_t)g->nvalues * sizeof *s->val_down);
	memset(s->mark, 0, (size_t)g->nvalues * sizeof *s->mark);
	int out_node = L->out_vi >= 0 ? s->producer[L->out_vi] : -1;
	int n = 0;
	for (int ni = 0; ni < g->nnodes; ni++) {
		const struct dfq_node *nd = &g->nodes[ni];
		bool down = ni == out_node;
		for (int i = 0; !down && i < nd->ninputs; i++) {
			int vi = nd->inputs[i];
			down = vi >= 0 && (vi == L->w_vi || s->val_down[vi]);
		}
		s->in_down[ni] = down;
		for (int o = 0; down && o < nd->noutputs; o++)
			if (nd->outputs[o] >= 0)
				s->val_down[nd->outputs[o]] = true;
		n += down;
	}
	int cap = 0;
	for (int ni = 0; ni < g->nnodes; ni++) {
		const struct dfq_node *nd = &g->nodes[ni];
		for (int i = 0; s->in_down[ni] && i < nd->ninputs; i++) {
			int vi = nd->inputs[i];
			if (vi >= 0 && !s->val_down[vi] && !g->values[vi].init &&
			    !is_input(g, vi) && !s->mark[vi]) {
				s->mark[vi] = true;
				cap++;
			}
		}
	}
	for (int i = 0; i < g->noutputs; i++) {
		int vi = g->outputs[i];
		if (!s->val_down[vi] && !g->values[vi].init && !is_input(g, vi) && !s->mark[vi]) {
			s->mark[vi] = true;
			cap++;
		}
	}
	sl->given = malloc(sizeof *sl->given * (size_t)(cap ? cap : 1));
	if (!sl->given) {
		dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory planning the runs");
		return -1;
	}
	for (int vi = 0; vi < g->nvalues; vi++)
		if (s->mark[vi]) {
			sl->given[sl->ngiven++] = vi;
			s->want[vi] = true;
		}
	return n;
}

/* Everything the per-layer runs need: quantized weights, grids, given values. */
static dfq_status sens_setup(struct sens *s, struct dfq_sens_result *r, struct dfq_error *err)
{
	struct dfq_model *m = s->m;
	const struct dfq_graph *g = m->g;
	s->ls = calloc((size_t)(m->nlayers ? m->nlayers : 1), sizeof *s->ls);
	s->want = calloc((size_t)g->nvalues + 1, sizeof *s->want);
	s->producer = malloc(((size_t)g->nvalues + 1) * sizeof *s->producer);
	s->in_down = calloc((size_t)g->nnodes + 1, sizeof *s->in_down);
	s->val_down = calloc((size_t)g->nvalues + 1, sizeof *s->val_down);
	s->mark = calloc((size_t)g->nvalues + 1, sizeof *s->mark);
	r->rows = calloc((size_t)(m->nlayers ? m->nlayers : 1), sizeof *r->rows);
	if (!s->ls || !s->want || !s->producer || !s->in_down || !s->val_down || !s->mark ||
	    !r->rows)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory planning the runs");
	r->nrows = m->nlayers;
	for (int vi = 0; vi < g->nvalues; vi++)
		s->producer[vi] = -1;
	for (int ni = 0; ni < g->nnodes; ni++)
		for (int o = 0; o < g->nodes[ni].noutputs; o++)
			if (g->nodes[ni].outputs[o] >= 0)
				s->producer[g->nodes[ni].outputs[o]] = ni;
	dfq_status st = DFQ_OK;
	for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
		const struct dfq_layer *L = &m->layers[li];
		struct sens_layer *sl = &s->ls[li];
		struct dfq_sens_row *row = &r->rows[li];
		row->layer = li;
		for (int k = 0; k < DFQ_SENS_KINDS; k++)
			row->top1[k] = row->sqnr_db[k] = NAN;
		if (!L->editable) {
			row->skipped = true;
			row->why = L->why_fixed ? L->why_fixed : "its weights cannot be changed";
			continue;
		}
		const struct dfq_tensor *w = g->values[L->w_vi].init;
		sl->wq = dfq_tensor_clone(w, err);
		if (!sl->wq)
			return err ? err->status : DFQ_ERR_NOMEM;
		st = model_quantize_w(L, w, s->q, sl->wq, NULL, err);
		if (st != DFQ_OK) {
			dfq_error_prefix(err, "layer '%s'", L->name);
			break;
		}
		int pi = model_point_of(m, L->out_vi);
		const struct dfq_range *rg = pi >= 0 ? model_point_range(&m->points[pi]) : NULL;
		sl->has_act = s->q->abits > 0 && rg && rg->valid &&
		              dfq_qparams_make(s->q->abits, s->q->scheme, rg->lo, rg->hi, &sl->act,
		                               NULL) == DFQ_OK;
		row->has_act = sl->has_act;
		sl->nruns = sl->has_act ? 3 : 1;
		int n = sens_downstream(s, li, err);
		if (n < 0)
			st = err ? err->status : DFQ_ERR_NOMEM;
		row->nrecomputed = n;
	}
	return st;
}

/* One run of layer li's kind k on x, the givens set; its logits against fp. */
static dfq_status sens_run(struct sens *s, int li, int k, struct dfq_tensor *x,
                           const struct dfq_tensor *fp, int64_t kscores, int64_t m,
                           const int64_t *labels, struct dfq_tensor **outs, struct dfq_error *err)
{
	const struct dfq_layer *L = &s->m->layers[li];
	struct sens_layer *sl = &s->ls[li];
	bool w = k != DFQ_SENS_ACT, a = k != DFQ_SENS_WEIGHTS && sl->has_act;
	dfq_status st = dfq_exec_set_override(s->ex, L->w_vi, w ? sl->wq : NULL, err);
	if (st == DFQ_OK && a)
		st = dfq_exec_set_quant(s->ex, L->out_vi, &sl->act, err);
	if (st == DFQ_OK)
		st = dfq_exec_run(s->ex, &x, outs, err);
	if (st == DFQ_OK && scores_per_row(s->m->g, outs[0], fp->dims[0], err) != kscores)
		st = err ? err->status : DFQ_ERR_SHAPE;
	if (st == DFQ_OK) {
		sl->hits[k] += top1_hits(outs[0], kscores, m, labels);
		err_sums(dfq_tensor_f32(fp), dfq_tensor_f32(outs[0]), m * kscores, &sl->sx2[k],
		         &sl->se2[k]);
	}
	free_outputs(s->m->g, outs);
	dfq_exec_set_override(s->ex, L->w_vi, NULL, NULL);
	if (a)
		dfq_exec_set_quant(s->ex, L->out_vi, NULL, NULL);
	return st;
}

static dfq_status check_folded(const struct dfq_model *m, struct dfq_error *err)
{
	for (int li = 0; li < m->nlayers; li++)
		if (m->layers[li].bn_node >= 0) {
			dfq_error_set(err, DFQ_ERR_ARG,
			              "layer '%s' still has its BatchNormalization '%s' (quantize "
			              "folds it first)",
			              m->layers[li].name, m->g->nodes[m->layers[li].bn_node].name);
			return dfq_error_remedy(err, DFQ_REMEDY_FOLD);
		}
	return DFQ_OK;
}

static dfq_status check_bits(const struct dfq_qconfig *q, struct dfq_error *err)
{
	if (q->wbits < 2 || q->wbits > 16)
		return dfq_error_set(err, DFQ_ERR_ARG, "weights take 2 to 16 bits, not %d",
		                     q->wbits);
	if (q->abits != 0 && (q->abits < 2 || q->abits > 16))
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "activations take 2 to 16 bits (0: float), not %d", q->abits);
	return DFQ_OK;
}

/* The batch loop: FP32 once, then every layer's runs from its values. */
static dfq_status sens_loop(struct sens *s, struct batches *b, const struct dfq_analysis_opts *o,
                            struct dfq_sens_result *r, struct dfq_error *err)
{
	struct dfq_model *m = s->m;
	const struct dfq_graph *g = m->g;
	int64_t per = 1; /* runs per batch */
	for (int li = 0; li < m->nlayers; li++)
		per += s->ls[li].wq ? s->ls[li].nruns : 0;
	struct dfq_tensor **store = calloc((size_t)g->nvalues + 1, sizeof *store);
	struct dfq_tensor **outs = calloc((size_t)g->noutputs, sizeof *outs);
	struct dfq_tensor **fpo = calloc((size_t)g->noutputs, sizeof *fpo);
	dfq_status st = store && outs && fpo ? DFQ_OK
	                                     : dfq_error_set(err, DFQ_ERR_NOMEM,
	                                                     "out of memory for a batch's values");
	struct keep kp = {.want = s->want, .store = store};
	int64_t fp_hits = 0;
	double t0 = now_seconds();
	for (int64_t first = 0; st == DFQ_OK && first < b->total; first += b->batch) {
		int64_t mm = b->total - first < b->batch ? b->total - first : b->batch, rows;
		struct dfq_tensor *x;
		st = batches_read(b, first, mm, &x, &rows, err);
		if (st == DFQ_OK)
			st = dfq_model_exec_prepare(m, s->ex, DFQ_RUN_FP32, err);
		if (st != DFQ_OK)
			break;
		dfq_exec_set_hook(s->ex, keep_hook, &kp);
		st = dfq_exec_run(s->ex, &x, fpo, err);
		dfq_exec_set_hook(s->ex, NULL, NULL);
		r->runs++;
		int64_t k = st == DFQ_OK ? scores_per_row(g, fpo[0], rows, err) : 0;
		if (k == 0) {
			st = st == DFQ_OK ? (err ? err->status : DFQ_ERR_SHAPE) : st;
			break;
		}
		fp_hits += top1_hits(fpo[0], k, mm, b->labels);
		int64_t done = 1;
		for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
			struct sens_layer *sl = &s->ls[li];
			if (!sl->wq)
				continue;
			for (int i = 0; i < sl->ngiven && st == DFQ_OK; i++) {
				const struct dfq_tensor *t = store[sl->given[i]];
				st = t ? dfq_exec_set_given(s->ex, sl->given[i], t, err)
				       : dfq_error_set(err, DFQ_ERR_INTERNAL,
				                       "value '%s' was not kept from the FP32 run",
				                       g->values[sl->given[i]].name);
			}
			for (int kind = 0; kind < DFQ_SENS_KINDS && st == DFQ_OK; kind++) {
				if (kind != DFQ_SENS_WEIGHTS && !sl->has_act)
					continue;
				st = sens_run(s, li, kind, x, fpo[0], k, mm, b->labels, outs, err);
				r->runs++;
				done++;
				if (st == DFQ_OK && o->progress &&
				    !o->progress(o->user, (first * per + mm * done) / per, b->total,
				                 now_seconds() - t0)) {
					r->cancelled = true;
					break;
				}
			}
			dfq_exec_clear_given(s->ex);
			if (r->cancelled)
				break;
		}
		free_outputs(g, fpo);
		if (r->cancelled)
			break;
		r->n = first + mm;
		if (st == DFQ_OK && o->progress && per == 1 &&
		    !o->progress(o->user, r->n, b->total, now_seconds() - t0) && r->n < b->total)
			r->cancelled = true;
		if (r->cancelled)
			break;
	}
	r->seconds = now_seconds() - t0;
	if (fpo)
		free_outputs(g, fpo);
	free(fpo);
	free(outs);
	store_free(store, g->nvalues);
	r->top1_fp32 = r->n ? (double)fp_hits / (double)r->n : NAN;
	return st;
}

dfq_status dfq_model_sensitivity(struct dfq_model *m, struct dfq_exec *ex, struct dfq_data *d,
                                 const struct dfq_qconfig *q, const struct dfq_analysis_opts *o,
                                 struct dfq_sens_result *r, struct dfq_error *err)
{
	memset(r, 0, sizeof *r);
	struct dfq_analysis_opts def;
	if (!o) {
		dfq_analysis_opts_default(&def);
		o = &def;
	}
	dfq_status st = check_bits(q, err);
	if (st == DFQ_OK)
		st = check_folded(m, err);
	if (st != DFQ_OK)
		return st;
	r->q = *q;
	struct batches b;
	struct sens s = {.m = m, .ex = ex, .q = q};
	st = batches_open(&b, m->g, d, o, err);
	if (st == DFQ_OK)
		st = sens_setup(&s, r, err);
	if (st == DFQ_OK)
		st = sens_loop(&s, &b, o, r, err);
	model_exec_reset(ex);
	for (int li = 0; st == DFQ_OK && !r->cancelled && li < m->nlayers; li++) {
		struct dfq_sens_row *row = &r->rows[li];
		const struct sens_layer *sl = &s.ls[li];
		if (!sl->wq)
			continue;
		for (int k = 0; k < DFQ_SENS_KINDS; k++) {
			/* without an activation grid the layer quantized is its weights quantized
			 */
			int from = k == DFQ_SENS_BOTH && !sl->has_act ? DFQ_SENS_WEIGHTS : k;
			if (k == DFQ_SENS_ACT && !sl->has_act)
				continue;
			row->top1[k] = (double)sl->hits[from] / (double)r->n;
			row->sqnr_db[k] = dfq_sqnr_from_sums(sl->sx2[from], sl->se2[from]);
		}
	}
	sens_free(&s);
	batches_close(&b);
	if (st != DFQ_OK || r->cancelled) {
		bool c = r->cancelled && st == DFQ_OK;
		dfq_sens_result_free(r);
		r->cancelled = c;
	}
	return st;
}

/* --- compare -------------------------------------------------------------------------- */

struct cmp_acc {
	double sx2, se2, max_abs;
	int64_t count;
};

/* The QUANT run's hook: each compared value, as its readers will see it,
 * against the FP32 run's. */
struct cmp {
	const struct dfq_model *m;
	const int *row_of;         /* g->nvalues entries: the row, or -1 */
	struct dfq_tensor **store; /* the FP32 values */
	struct cmp_acc *acc;
};

static dfq_status cmp_hook(void *user, const struct dfq_graph *g, int vi, struct dfq_tensor *t,
                           struct dfq_error *err)
{
	struct cmp *c = user;
	int row = c->row_of[vi];
	if (row < 0)
		return DFQ_OK;
	const struct dfq_tensor *fp = c->store[vi];
	if (!fp || fp->numel != t->numel || t->dtype != DFQ_DTYPE_F32)
		return dfq_error_set(err, DFQ_ERR_INTERNAL,
		                     "value '%s' differs in size between runs", g->values[vi].name);
	int pi = model_point_of(c->m, vi);
	const struct dfq_qparams *q =
	    pi >= 0 && c->m->points[pi].enabled ? &c->m->points[pi].qp : NULL;
	const float *x = dfq_tensor_f32(fp), *y = dfq_tensor_f32(t);
	struct cmp_acc *a = &c->acc[row];
	double sx2 = 0.0, se2 = 0.0, mx = a->max_abs;
	for (int64_t i = 0; i < t->numel; i++) {
		double yi = q ? (double)dfq_fake_quant1(y[i], q) : (double)y[i];
		double e = yi - (double)x[i];
		sx2 += (double)x[i] * x[i];
		se2 += e * e;
		mx = fabs(e) > mx ? fabs(e) : mx;
	}
	a->sx2 += sx2;
	a->se2 += se2;
	a->max_abs = mx;
	a->count += t->numel;
	return DFQ_OK;
}

/* The QUANT run of one batch: the model input quantized as dfq_model_run does. */
static dfq_status cmp_quant_run(struct dfq_model *m, struct dfq_exec *ex, struct cmp *c,
                                struct dfq_tensor *x, struct dfq_tensor **outs,
                                struct dfq_error *err)
{
	dfq_status st = dfq_model_exec_prepare(m, ex, DFQ_RUN_QUANT, err);
	if (st != DFQ_OK)
		return st;
	struct dfq_tensor *in = x, *own = NULL;
	int ip = model_point_of(m, m->g->inputs[0]);
	if (ip >= 0 && m->points[ip].enabled) {
		own = dfq_tensor_clone(x, err);
		if (!own)
			return err ? err->status : DFQ_ERR_NOMEM;
		dfq_fake_quant(dfq_tensor_f32(own), own->numel, &m->points[ip].qp);
		in = own;
	}
	dfq_exec_set_hook(ex, cmp_hook, c);
	st = dfq_exec_run(ex, &in, outs, err);
	dfq_exec_set_hook(ex, NULL, NULL);
	dfq_tensor_free(own);
	return st;
}

dfq_status dfq_model_compare(struct dfq_model *m, struct dfq_exec *ex, struct dfq_data *d,
                             const struct dfq_analysis_opts *o, struct dfq_cmp_result *r,
                             struct dfq_error *err)
{
	memset(r, 0, sizeof *r);
	struct dfq_analysis_opts def;
	if (!o) {
		dfq_analysis_opts_default(&def);
		o = &def;
	}
	const struct dfq_graph *g = m->g;
	struct batches b;
	dfq_status st = batches_open(&b, g, d, o, err);
	int nrows = m->nlayers + 1;
	int *row_of = malloc(((size_t)g->nvalues + 1) * sizeof *row_of);
	bool *want = calloc((size_t)g->nvalues + 1, sizeof *want);
	struct dfq_tensor **store = calloc((size_t)g->nvalues + 1, sizeof *store);
	struct cmp_acc *acc = calloc((size_t)nrows, sizeof *acc);
	r->rows = calloc((size_t)nrows, sizeof *r->rows);
	struct dfq_tensor **fpo = calloc((size_t)g->noutputs + 1, sizeof *fpo);
	struct dfq_tensor **qo = calloc((size_t)g->noutputs + 1, sizeof *qo);
	if (st == DFQ_OK && (!row_of || !want || !store || !acc || !r->rows || !fpo || !qo))
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory for a comparison");
	if (st == DFQ_OK) {
		for (int vi = 0; vi < g->nvalues; vi++)
			row_of[vi] = -1;
		for (int li = 0; li < m->nlayers; li++) {
			int vi = m->layers[li].out_vi;
			if (vi < 0 || row_of[vi] >= 0)
				continue;
			struct dfq_cmp_row *row = &r->rows[r->nrows];
			row->layer = li;
			row->vi = vi;
			int pi = model_point_of(m, vi);
			row->quantized = pi >= 0 && m->points[pi].enabled;
			row_of[vi] = r->nrows++;
			want[vi] = true;
		}
		int ov = g->outputs[0];
		if (row_of[ov] < 0 && !g->values[ov].init && !is_input(g, ov)) {
			struct dfq_cmp_row *row = &r->rows[r->nrows];
			row->layer = -1;
			row->vi = ov;
			int pi = model_point_of(m, ov);
			row->quantized = pi >= 0 && m->points[pi].enabled;
			row_of[ov] = r->nrows++;
			want[ov] = true;
		}
	}
	struct keep kp = {.want = want, .store = store};
	struct cmp c = {.m = m, .row_of = row_of, .store = store, .acc = acc};
	int64_t hits_fp = 0, hits_q = 0;
	double t0 = now_seconds();
	for (int64_t first = 0; st == DFQ_OK && first < b.total; first += b.batch) {
		int64_t mm = b.total - first < b.batch ? b.total - first : b.batch, rows;
		struct dfq_tensor *x;
		st = batches_read(&b, first, mm, &x, &rows, err);
		if (st == DFQ_OK)
			st = dfq_model_exec_prepare(m, ex, DFQ_RUN_FP32, err);
		if (st != DFQ_OK)
			break;
		dfq_exec_set_hook(ex, keep_hook, &kp);
		st = dfq_exec_run(ex, &x, fpo, err);
		dfq_exec_set_hook(ex, NULL, NULL);
		if (st == DFQ_OK)
			st = cmp_quant_run(m, ex, &c, x, qo, err);
		int64_t k = st == DFQ_OK ? scores_per_row(g, fpo[0], rows, err) : 0;
		if (k > 0 && scores_per_row(g, qo[0], rows, err) != k)
			k = 0;
		if (k == 0) {
			st = st == DFQ_OK ? (err ? err->status : DFQ_ERR_SHAPE) : st;
			break;
		}
		hits_fp += top1_hits(fpo[0], k, mm, b.labels);
		hits_q += top1_hits(qo[0], k, mm, b.labels);
		free_outputs(g, fpo);
		free_outputs(g, qo);
		r->n = first + mm;
		if (o->progress && !o->progress(o->user, r->n, b.total, now_seconds() - t0) &&
		    r->n < b.total) {
			r->cancelled = true;
			break;
		}
	}
	r->seconds = now_seconds() - t0;
	model_exec_reset(ex);
	if (fpo)
		free_outputs(g, fpo);
	if (qo)
		free_outputs(g, qo);
	if (st == DFQ_OK && !r->cancelled) {
		r->top1_fp32 = r->n ? (double)hits_fp / (double)r->n : NAN;
		r->top1_quant = r->n ? (double)hits_q / (double)r->n : NAN;
		for (int i = 0; i < r->nrows; i++) {
			struct dfq_cmp_row *row = &r->rows[i];
			row->sqnr_db = dfq_sqnr_from_sums(acc[i].sx2, acc[i].se2);
			row->max_abs = acc[i].max_abs;
			row->rms_fp32 =
			    acc[i].count ? sqrt(acc[i].sx2 / (double)acc[i].count) : NAN;
		}
	}
	free(fpo);
	free(qo);
	free(acc);
	free(want);
	free(row_of);
	store_free(store, g->nvalues);
	batches_close(&b);
	if (st != DFQ_OK || r->cancelled) {
		bool cancelled = r->cancelled && st == DFQ_OK;
		dfq_cmp_result_free(r);
		r->cancelled = cancelled;
	}
	return st;
}
