/* eval.c - the evaluation loop: a data slice through the executor in batches, top-1/top-5. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dfq/dfq_eval.h"

void dfq_eval_opts_default(struct dfq_eval_opts *o)
{
	memset(o, 0, sizeof *o);
	o->split = DFQ_SPLIT_EVAL;
}

int dfq_eval_rank(const float *scores, int k, int64_t label)
{
	if (label < 0 || label >= k || isnan(scores[label]))
		return k;
	float y = scores[label];
	int rank = 0;
	for (int j = 0; j < k; j++)
		if (scores[j] > y || (scores[j] == y && j < label))
			rank++;
	return rank;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* State of one run: the batch tensor (reused), the outputs, the counts. */
struct eval_run {
	struct dfq_exec *ex;
	const struct dfq_graph *g;
	struct dfq_data *d;
	dfq_data_split split;
	int64_t batch;            /* samples per exec run */
	bool fixed;               /* the model's batch dimension is fixed: pad the last one */
	struct dfq_tensor *x;     /* owned, [batch, C, H, W] */
	int64_t *labels;          /* owned, batch entries */
	struct dfq_tensor **outs; /* owned array, g->noutputs entries, each freed per batch */
	struct dfq_eval_result *r;
	dfq_eval_run_fn run; /* NULL: dfq_exec_run */
	void *run_user;
};

static void run_free(struct eval_run *e)
{
	dfq_tensor_free(e->x);
	free(e->labels);
	free(e->outs);
}

static void free_outputs(struct eval_run *e)
{
	for (int k = 0; k < e->g->noutputs; k++) {
		dfq_tensor_free(e->outs[k]);
		e->outs[k] = NULL;
	}
}

/* Check the model and data agree and allocate the batch buffers. */
static dfq_status run_setup(struct eval_run *e, const struct dfq_eval_opts *o,
			    struct dfq_error *err)
{
	const struct dfq_graph *g = e->g;
	if (g->ninputs != 1)
		return dfq_error_set(err, DFQ_ERR_ARG, "evaluation needs a model with one input; "
				     "this one has %d", g->ninputs);
	if (g->noutputs < 1)
		return dfq_error_set(err, DFQ_ERR_ARG, "the model has no outputs");
	const struct dfq_value *in = &g->values[g->inputs[0]];
	dfq_status st = dfq_data_fit(e->d, in->name, &in->shape, err);
	if (st)
		return st;
	e->batch = o->batch > 0 ? o->batch : DFQ_EVAL_DEFAULT_BATCH;
	if (in->shape.dims[0] > 0) {
		e->batch = in->shape.dims[0];
		e->fixed = true;
	}
	const struct dfq_data_info *di = dfq_data_get_info(e->d);
	int64_t dims[4] = {e->batch, di->channels, di->height, di->width};
	e->x = dfq_tensor_new(DFQ_DTYPE_F32, 4, dims, err);
	if (!e->x)
		return err ? err->status : DFQ_ERR_NOMEM;
	e->labels = malloc(sizeof *e->labels * (size_t)e->batch);
	e->outs = calloc((size_t)g->noutputs, sizeof *e->outs);
	if (!e->labels || !e->outs)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory for a batch of %lld",
				     (long long)e->batch);
	return DFQ_OK;
}

/* Count the hits among the first m rows of the first output. */
static dfq_status score(struct eval_run *e, int64_t rows, int64_t m, struct dfq_error *err)
{
	const struct dfq_tensor *y = e->outs[0];
	const char *name = e->g->values[e->g->outputs[0]].name;
	if (y->dtype != DFQ_DTYPE_F32 || y->ndim < 1 || y->dims[0] != rows ||
	    y->numel % rows != 0 || y->numel == 0) {
		struct dfq_shape s;
		char buf[160];
		dfq_tensor_shape(y, &s);
		return dfq_error_set(err, DFQ_ERR_SHAPE, "the model's output '%s' is %s %s; "
				     "evaluation needs float32 scores with %lld rows", name,
				     dfq_dtype_name(y->dtype), dfq_shape_str(&s, buf, sizeof buf),
				     (long long)rows);
	}
	int64_t k = y->numel / rows;
	if (k > (1 << 24))
		return dfq_error_set(err, DFQ_ERR_SHAPE, "the model's output '%s' has %lld scores "
				     "per sample; that is not a classifier", name, (long long)k);
	int nclasses = dfq_data_get_info(e->d)->nclasses;
	if (nclasses > k)
		return dfq_error_set(err, DFQ_ERR_SHAPE, "the data has %d classes but the model's "
				     "output '%s' scores only %lld", nclasses, name, (long long)k);
	e->r->nclasses = (int)k;
	const float *p = dfq_tensor_f32(y);
	for (int64_t i = 0; i < m; i++) {
		int rank = dfq_eval_rank(p + i * k, (int)k, e->labels[i]);
		e->r->top1 += rank < 1;
		e->r->top5 += rank < 5;
	}
	return DFQ_OK;
}

/* Samples [first, first + m) through the model. */
static dfq_status run_batch(struct eval_run *e, int64_t first, int64_t m, struct dfq_error *err)
{
	struct dfq_tensor *x = e->x, *tail = NULL;
	int64_t rows = m;
	if (m < e->batch && e->fixed) {
		/* A fixed batch size: pad with zeros, score only the real rows. */
		memset(x->data, 0, (size_t)x->numel * sizeof(float));
		rows = e->batch;
	} else if (m < e->batch) {
		int64_t dims[4] = {m, x->dims[1], x->dims[2], x->dims[3]};
		tail = x = dfq_tensor_new(DFQ_DTYPE_F32, 4, dims, err);
		if (!x)
			return err ? err->status : DFQ_ERR_NOMEM;
	}
	dfq_status st = dfq_data_read(e->d, e->split, first, m, dfq_tensor_f32(x), e->labels, err);
	if (st == DFQ_OK) {
		st = e->run ? e->run(e->run_user, e->ex, x, e->outs, err)
			    : dfq_exec_run(e->ex, &x, e->outs, err);
		if (st)
			memset(e->outs, 0, sizeof *e->outs * (size_t)e->g->noutputs);
	}
	if (st == DFQ_OK)
		st = score(e, rows, m, err);
	free_outputs(e);
	dfq_tensor_free(tail);
	return st;
}

dfq_status dfq_eval_run(struct dfq_exec *ex, const struct dfq_graph *g, struct dfq_data *d,
			const struct dfq_eval_opts *o, struct dfq_eval_result *r,
			struct dfq_error *err)
{
	struct dfq_eval_opts defaults;
	if (!o) {
		dfq_eval_opts_default(&defaults);
		o = &defaults;
	}
	memset(r, 0, sizeof *r);
	int64_t avail = dfq_data_count(d, o->split);
	int64_t total = o->n > 0 ? o->n : avail;
	const char *slice = o->split == DFQ_SPLIT_EVAL ? "evaluation" : "calibration";
	if (o->n < 0 || total > avail)
		return dfq_error_set(err, DFQ_ERR_ARG, "%lld samples asked for but the %s slice "
				     "has %lld", (long long)o->n, slice, (long long)avail);
	if (total == 0)
		return dfq_error_set(err, DFQ_ERR_ARG, "the %s slice is empty", slice);
	struct eval_run e = {.ex = ex, .g = g, .d = d, .split = o->split, .r = r,
			     .run = o->run, .run_user = o->run_user};
	dfq_status st = run_setup(&e, o, err);
	double t0 = now_seconds();
	for (int64_t first = 0; st == DFQ_OK && first < total; first += e.batch) {
		int64_t m = total - first < e.batch ? total - first : e.batch;
		st = run_batch(&e, first, m, err);
		if (st)
			break;
		r->n = first + m;
		r->seconds = now_seconds() - t0;
		if (o->progress && !o->progress(o->user, r->n, total, r->seconds) && r->n < total) {
			r->cancelled = true;
			break;
		}
	}
	r->seconds = now_seconds() - t0;
	r->images_per_s = r->seconds > 0 ? (double)r->n / r->seconds : 0;
	run_free(&e);
	return st;
}
