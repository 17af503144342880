/* exec.c - runs a finalized graph node by node, freeing intermediates as soon as they are dead. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dfq/dfq_blas.h"
#include "dfq/dfq_exec.h"
#include "dfq/dfq_parallel.h"
#include "optimize.h"

#define SLOTS_MIN 8

struct dfq_exec {
	const struct dfq_graph *g; /* borrowed */
	struct dfq_exec_opts opts;
	struct dfq_pool *pool; /* owned */
	dfq_exec_hook hook;
	void *hook_user;
	/* Per-value replacements for constant data (e.g. fake-quantized weights),
	 * borrowed; NULL until the first dfq_exec_set_override(). */
	const struct dfq_tensor **overrides;
	int noverrides;
	/* Per-value fake quantization (dfq_exec_set_quant): quant_on[vi] says
	 * whether quants[vi] applies; both owned, NULL until the first one. */
	struct dfq_qparams *quants;
	bool *quant_on;
	int nquants;
	/* Per-value given tensors (dfq_exec_set_given), borrowed; NULL until
	 * the first one.  ngiven_on counts the set ones. */
	const struct dfq_tensor **given;
	int ngiven, ngiven_on;
	/* The fused fast path (optimize.c): built on the first fast run without a
	 * hook, owned.  A hook needs every node's output, so it runs node by node. */
	struct dfq_plan *plan;
	bool ran_plan;                    /* the last run used the plan (for the profile) */
	bool profile;                     /* time each step (dfq_exec_set_profile) */
	struct dfq_prof_entry *node_prof; /* owned, per node, for runs node by node */
	int node_prof_n;                  /* its entries (the graph's nodes when it was set up) */
};

/* Per-run state.  vals[vi] is the computed tensor of value vi; owned[vi]
 * says whether the run must free it (fed inputs are borrowed). */
struct run {
	struct dfq_tensor **vals;
	bool *owned;
	int *refs;  /* reads still to come */
	bool *keep; /* graph outputs: never freed early */
	bool *skip; /* per node: not run (incremental runs), or NULL */
	const struct dfq_tensor **in;
	const struct dfq_shape **in_shape;
	struct dfq_shape *in_shapes;
	struct dfq_shape *out_shapes;
	struct dfq_tensor **out;
	int wi, wo; /* slots in in[]/in_shape[] and out[]/out_shapes[] */
};

void dfq_exec_opts_default(struct dfq_exec_opts *o)
{
	o->fast = true;
	o->nthreads = 0;
}

struct dfq_exec *dfq_exec_new(const struct dfq_graph *g, const struct dfq_exec_opts *opts,
			      struct dfq_error *err)
{
	struct dfq_exec *ex = calloc(1, sizeof *ex);
	if (!ex) {
		dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory creating an executor");
		return NULL;
	}
	ex->g = g;
	if (opts)
		ex->opts = *opts;
	else
		dfq_exec_opts_default(&ex->opts);
	/* Load the BLAS now, on this thread and before any worker exists: it sets
	 * OPENBLAS_CORETYPE with setenv(), which must not race with other threads. */
	if (ex->opts.fast && dfq_blas_init(err) != DFQ_OK) {
		free(ex);
		return NULL;
	}
	ex->pool = dfq_pool_new(ex->opts.nthreads, err);
	if (!ex->pool) {
		free(ex);
		return NULL;
	}
	const char *prof = getenv("DFQ_PROFILE");
	if (prof && strcmp(prof, "1") == 0)
		dfq_exec_set_profile(ex, true);
	return ex;
}

void dfq_exec_free(struct dfq_exec *ex)
{
	if (!ex)
		return;
	dfq_pool_free(ex->pool);
	dfq_plan_free(ex->plan);
	free(ex->node_prof);
	free(ex->overrides);
	free(ex->quants);
	free(ex->quant_on);
	free(ex->given);
	free(ex);
}

void dfq_exec_set_hook(struct dfq_exec *ex, dfq_exec_hook fn, void *user)
{
	ex->hook = fn;
	ex->hook_user = fn ? user : NULL;
}

dfq_status dfq_exec_set_override(struct dfq_exec *ex, int vi, const struct dfq_tensor *t,
				 struct dfq_error *err)
{
	const struct dfq_graph *g = ex->g;
	if (vi < 0 || vi >= g->nvalues || !g->values[vi].init)
		return dfq_error_set(err, DFQ_ERR_ARG,
				     "only constant tensors can be overridden (value %d)", vi);
	if (t && !dfq_tensor_same_shape(t, g->values[vi].init))
		return dfq_error_set(err, DFQ_ERR_SHAPE,
				     "override of '%s' must keep its shape and type",
				     g->values[vi].name);
	if (ex->noverrides < g->nvalues) {
		/* the graph may have gained values since the table was sized */
		const struct dfq_tensor **t2 =
		    realloc(ex->overrides, (size_t)g->nvalues * sizeof *ex->overrides);
		if (!t2)
			return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
		memset(t2 + ex->noverrides, 0,
		       (size_t)(g->nvalues - ex->noverrides) * sizeof *t2);
		ex->overrides = t2;
		ex->noverrides = g->nvalues;
	}
	ex->overrides[vi] = t;
	return DFQ_OK;
}

void dfq_exec_clear_overrides(struct dfq_exec *ex)
{
	if (ex->overrides)
		memset(ex->overrides, 0, (size_t)ex->noverrides * sizeof *ex->overrides);
}

/* Whether the grid can be used: the kernels divide by nothing but rely on a
 * positive finite scale and a zero point on the code range. */
static bool qparams_usable(const struct dfq_qparams *q)
{
	return q->scale > 0.0f && isfinite(q->scale) && isfinite(1.0f / q->scale) &&
	       q->qmin < q->qmax && q->zero_point >= q->qmin && q->zero_point <= q->qmax;
}

/* DFQ_OK when vi is a value some node computes (what set_quant and set_given accept);
 * else DFQ_ERR_ARG saying why: no such value, a graph input or a constant. */
static dfq_status node_value(const struct dfq_graph *g, int vi, const char *what,
			     struct dfq_error *err)
{
	if (vi < 0 || vi >= g->nvalues)
		return dfq_error_set(err, DFQ_ERR_ARG, "no value %d to be %s", vi, what);
	const struct dfq_value *v = &g->values[vi];
	bool input = false;
	for (int i = 0; i < g->ninputs; i++)
		input = input || g->inputs[i] == vi;
	if (v->init || input)
		return dfq_error_set(err, DFQ_ERR_ARG,
				     "only values computed by a node can be %s ('%s' is %s)", what,
				     v->name, input ? "a graph input" : "a constant");
	return DFQ_OK;
}

dfq_status dfq_exec_set_quant(struct dfq_exec *ex, int vi, const struct dfq_qparams *q,
			      struct dfq_error *err)
{
	const struct dfq_graph *g = ex->g;
	dfq_status st = node_value(g, vi, "fake-quantized", err);
	if (st != DFQ_OK)
		return st;
	const struct dfq_value *v = &g->values[vi];
	if (q && !qparams_usable(q))
		return dfq_error_set(err, DFQ_ERR_ARG,
				     "the quantization grid for '%s' is not valid (scale %g, zero "
				     "point %d, codes %d..%d)",
				     v->name, (double)q->scale, (int)q->zero_point, (int)q->qmin,
				     (int)q->qmax);
	if (ex->nquants < g->nvalues) {
		struct dfq_qparams *q2 =
		    realloc(ex->quants, (size_t)g->nvalues * sizeof *ex->quants);
		if (!q2)
			return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
		ex->quants = q2;
		bool *on2 = realloc(ex->quant_on, (size_t)g->nvalues * sizeof *ex->quant_on);
		if (!on2)
			return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
		ex->quant_on = on2;
		memset(on2 + ex->nquants, 0, (size_t)(g->nvalues - ex->nquants) * sizeof *on2);
		ex->nquants = g->nvalues;
	}
	ex->quant_on[vi] = q != NULL;
	if (q)
		ex->quants[vi] = *q;
	return DFQ_OK;
}

void dfq_exec_clear_quants(struct dfq_exec *ex)
{
	if (ex->quant_on)
		memset(ex->quant_on, 0, (size_t)ex->nquants * sizeof *ex->quant_on);
}

dfq_status dfq_exec_set_given(struct dfq_exec *ex, int vi, const struct dfq_tensor *t,
			      struct dfq_error *err)
{
	const struct dfq_graph *g = ex->g;
	dfq_status st = node_value(g, vi, "given", err);
	if (st != DFQ_OK)
		return st;
	const struct dfq_value *v = &g->values[vi];
	if (t && t->dtype != DFQ_DTYPE_F32)
		return dfq_error_set(err, DFQ_ERR_ARG, "the value given for '%s' is not float32",
				     v->name);
	if (ex->ngiven < g->nvalues) {
		const struct dfq_tensor **t2 =
		    realloc(ex->given, (size_t)g->nvalues * sizeof *ex->given);
		if (!t2)
			return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
		memset(t2 + ex->ngiven, 0, (size_t)(g->nvalues - ex->ngiven) * sizeof *t2);
		ex->given = t2;
		ex->ngiven = g->nvalues;
	}
	ex->ngiven_on += (t != NULL) - (ex->given[vi] != NULL);
	ex->given[vi] = t;
	return DFQ_OK;
}

void dfq_exec_clear_given(struct dfq_exec *ex)
{
	if (ex->given)
		memset(ex->given, 0, (size_t)ex->ngiven * sizeof *ex->given);
	ex->ngiven_on = 0;
}

void dfq_exec_set_profile(struct dfq_exec *ex, bool on)
{
	ex->profile = on;
	if (ex->plan)
		dfq_plan_profile_reset(ex->plan);
	free(ex->node_prof);
	ex->node_prof = NULL;
	ex->node_prof_n = 0;
}

/* Per-node profile entries for the graph as it is now (it may have been edited
 * since the last run: then the times start over).  Without memory the
 * node-by-node path is just not timed. */
static void node_prof_fit(struct dfq_exec *ex)
{
	const struct dfq_graph *g = ex->g;
	bool same = ex->node_prof && ex->node_prof_n == g->nnodes;
	for (int ni = 0; same && ni < g->nnodes; ni++)
		same = ex->node_prof[ni].node == g->nodes[ni].name;
	if (same)
		return;
	free(ex->node_prof);
	ex->node_prof_n = 0;
	ex->node_prof = calloc((size_t)g->nnodes + 1, sizeof *ex->node_prof);
	if (!ex->node_prof)
		return;
	ex->node_prof_n = g->nnodes;
	for (int ni = 0; ni < g->nnodes; ni++) {
		ex->node_prof[ni].node = g->nodes[ni].name;
		snprintf(ex->node_prof[ni].op, sizeof ex->node_prof[ni].op, "%s",
			 g->nodes[ni].op_type);
	}
}

int dfq_exec_get_profile(struct dfq_exec *ex, const struct dfq_prof_entry **out)
{
	*out = NULL;
	if (!ex->profile)
		return 0;
	if (ex->ran_plan && ex->plan)
		return dfq_plan_profile(ex->plan, out);
	*out = ex->node_prof;
	return ex->node_prof_n;
}

/* The fused path (optimize.c) when it applies: *done false means run node by node. */
static dfq_status run_plan(struct dfq_exec *ex, struct dfq_tensor *const *inputs,
			   struct dfq_tensor **outputs, bool *done, struct dfq_error *err)
{
	*done = false;
	if (!ex->opts.fast || ex->hook)
		return DFQ_OK;
	if (!ex->plan) {
		ex->plan = dfq_plan_new(ex->g, err);
		if (!ex->plan)
			return err ? err->status : DFQ_ERR_NOMEM;
	}
	struct dfq_plan_env env = {
	    .pool = ex->pool,
	    .overrides = ex->overrides,
	    .noverrides = ex->noverrides,
	    .quants = ex->quants,
	    .quant_on = ex->quant_on,
	    .nquants = ex->nquants,
	    .given = ex->ngiven_on > 0 ? ex->given : NULL,
	    .ngiven = ex->ngiven,
	    .profile = ex->profile,
	};
	bool fallback = false;
	dfq_status st = dfq_plan_run(ex->plan, &env, inputs, outputs, &fallback, err);
	*done = !fallback;
	ex->ran_plan = *done;
	return st;
}

struct dfq_pool *dfq_exec_pool(struct dfq_exec *ex)
{
	return ex->pool;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void run_free(struct run *r, int nvalues)
{
	if (r->vals && r->owned)
		for (int vi = 0; vi < nvalues; vi++)
			if (r->owned[vi])
				dfq_tensor_free(r->vals[vi]);
	free(r->vals);
	free(r->owned);
	free(r->refs);
	free(r->keep);
	free(r->skip);
	free(r->in);
	free(r->in_shape);
	free(r->in_shapes);
	free(r->out_shapes);
	free(r->out);
}

static dfq_status run_alloc(struct run *r, const struct dfq_graph *g, struct dfq_error *err)
{
	/* at least 8 slots, NULL past a node's own count: kernels may look at
	 * an optional slot (in[2] of a two-input Conv) and must see NULL */
	int wi = SLOTS_MIN, wo = SLOTS_MIN;
	for (int ni = 0; ni < g->nnodes; ni++) {
		wi = g->nodes[ni].ninputs > wi ? g->nodes[ni].ninputs : wi;
		wo = g->nodes[ni].noutputs > wo ? g->nodes[ni].noutputs : wo;
	}
	size_t nv = (size_t)g->nvalues + 1;
	r->vals = calloc(nv, sizeof *r->vals);
	r->owned = calloc(nv, sizeof *r->owned);
	r->refs = calloc(nv, sizeof *r->refs);
	r->keep = calloc(nv, sizeof *r->keep);
	r->wi = wi;
	r->wo = wo;
	r->in = calloc((size_t)wi, sizeof *r->in);
	r->in_shape = calloc((size_t)wi, sizeof *r->in_shape);
	r->in_shapes = calloc((size_t)wi, sizeof *r->in_shapes);
	r->out_shapes = calloc((size_t)wo, sizeof *r->out_shapes);
	r->out = calloc((size_t)wo, sizeof *r->out);
	if (!r->vals || !r->owned || !r->refs || !r->keep || !r->in || !r->in_shape ||
	    !r->in_shapes || !r->out_shapes || !r->out)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory starting a run");
	/* count reads from the nodes themselves: the graph's nconsumers may be
	 * stale if a transformation edited nodes without finalizing */
	for (int ni = 0; ni < g->nnodes; ni++) {
		const struct dfq_node *n = &g->nodes[ni];
		for (int i = 0; i < n->ninputs; i++)
			if (n->inputs[i] >= 0)
				r->refs[n->inputs[i]]++;
	}
	for (int i = 0; i < g->noutputs; i++)
		r->keep[g->outputs[i]] = true;
	return DFQ_OK;
}

/* An incremental run (given values): run only the nodes a graph output
 * needs that compute something not given, walking back from the outputs;
 * reads are counted again from the nodes that run. */
static dfq_status run_incremental(const struct dfq_exec *ex, struct run *r, struct dfq_error *err)
{
	const struct dfq_graph *g = ex->g;
	bool *need = calloc((size_t)g->nvalues + 1, sizeof *need);
	r->skip = calloc((size_t)g->nnodes + 1, sizeof *r->skip);
	if (!need || !r->skip) {
		free(need);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory starting a run");
	}
	for (int i = 0; i < g->noutputs; i++)
		need[g->outputs[i]] = true;
	for (int ni = g->nnodes - 1; ni >= 0; ni--) {
		const struct dfq_node *n = &g->nodes[ni];
		bool run = false;
		for (int o = 0; o < n->noutputs; o++) {
			int vi = n->outputs[o];
			run = run || (vi >= 0 && need[vi] && !(vi < ex->ngiven && ex->given[vi]));
		}
		r->skip[ni] = !run;
		for (int i = 0; run && i < n->ninputs; i++)
			if (n->inputs[i] >= 0)
				need[n->inputs[i]] = true;
	}
	free(need);
	memset(r->refs, 0, ((size_t)g->nvalues + 1) * sizeof *r->refs);
	for (int ni = 0; ni < g->nnodes; ni++) {
		const struct dfq_node *n = &g->nodes[ni];
		for (int i = 0; !r->skip[ni] && i < n->ninputs; i++)
			if (n->inputs[i] >= 0)
				r->refs[n->inputs[i]]++;
	}
	for (int vi = 0; vi < ex->ngiven && vi < g->nvalues; vi++)
		if (ex->given[vi])
			r->vals[vi] = (struct dfq_tensor *)ex->given[vi]; /* borrowed, only read */
	return DFQ_OK;
}

/* A fed input must match the static shape where that is known. */
static dfq_status check_input(const struct dfq_value *v, const struct dfq_tensor *t,
			      struct dfq_error *err)
{
	if (!t)
		return dfq_error_set(err, DFQ_ERR_ARG, "input '%s' was not given", v->name);
	if (t->dtype != v->shape.dtype)
		return dfq_error_set(err, DFQ_ERR_ARG, "input '%s' expects %s data, got %s",
				     v->name, dfq_dtype_name(v->shape.dtype),
				     dfq_dtype_name(t->dtype));
	if (v->shape.ndim < 0)
		return DFQ_OK;
	bool ok = t->ndim == v->shape.ndim;
	for (int i = 0; ok && i < t->ndim; i++)
		if (v->shape.dims[i] >= 0 && v->shape.dims[i] != t->dims[i])
			ok = false;
	if (ok)
		return DFQ_OK;
	char want[128], got[128];
	struct dfq_shape ts;
	dfq_tensor_shape(t, &ts);
	return dfq_error_set(err, DFQ_ERR_SHAPE, "input '%s' expects %s, got %s", v->name,
			     dfq_shape_str(&v->shape, want, sizeof want),
			     dfq_shape_str(&ts, got, sizeof got));
}

/* The tensor holding value vi during the run (constant or computed). */
static const struct dfq_tensor *value_data(const struct dfq_exec *ex, const struct run *r, int vi)
{
	if (vi < ex->noverrides && ex->overrides[vi])
		return ex->overrides[vi];
	return ex->g->values[vi].init ? ex->g->values[vi].init : r->vals[vi];
}

/* One value read: free it when that was the last read and nobody else wants it. */
static void release(struct run *r, int vi)
{
	if (--r->refs[vi] > 0 || r->keep[vi] || !r->owned[vi])
		return;
	dfq_tensor_free(r->vals[vi]);
	r->vals[vi] = NULL;
	r->owned[vi] = false;
}

static dfq_status run_node(struct dfq_exec *ex, struct run *r, const struct dfq_node *n,
			   struct dfq_error *err)
{
	const struct dfq_graph *g = ex->g;
	memset(r->in, 0, (size_t)r->wi * sizeof *r->in);
	memset(r->in_shape, 0, (size_t)r->wi * sizeof *r->in_shape);
	memset(r->out, 0, (size_t)r->wo * sizeof *r->out);
	for (int i = 0; i < n->ninputs; i++) {
		int vi = n->inputs[i];
		if (vi < 0)
			continue;
		r->in[i] = value_data(ex, r, vi);
		if (!r->in[i])
			return dfq_error_set(err, DFQ_ERR_INTERNAL,
					     "%s node '%s' reads '%s' before it is computed",
					     n->op_type, n->name, g->values[vi].name);
		dfq_tensor_shape(r->in[i], &r->in_shapes[i]);
		r->in_shape[i] = &r->in_shapes[i];
	}
	struct dfq_kctx kctx = {.pool = ex->pool};
	dfq_status st = dfq_node_compute(n, r->in_shape, r->in, r->out_shapes, r->out, &kctx,
					 ex->opts.fast, err);
	if (st != DFQ_OK)
		return st;
	/* hand outputs to the run before the hook, so every path frees them */
	for (int o = 0; o < n->noutputs; o++) {
		int vi = n->outputs[o];
		if (vi < 0)
			continue;
		r->vals[vi] = r->out[o];
		r->owned[vi] = true;
		r->out[o] = NULL;
	}
	for (int o = 0; o < n->noutputs && ex->hook; o++) {
		int vi = n->outputs[o];
		if (vi < 0)
			continue;
		st = ex->hook(ex->hook_user, g, vi, r->vals[vi], err);
		if (st != DFQ_OK)
			return dfq_node_name_error(err, n, st);
	}
	for (int o = 0; o < n->noutputs; o++) {
		int vi = n->outputs[o];
		if (vi >= 0 && vi < ex->nquants && ex->quant_on[vi] &&
		    r->vals[vi]->dtype == DFQ_DTYPE_F32)
			plan_fake_quant(ex->pool, r->vals[vi], &ex->quants[vi]);
	}
	for (int i = 0; i < n->ninputs; i++)
		if (n->inputs[i] >= 0)
			release(r, n->inputs[i]);
	/* outputs nobody reads (e.g. a Dropout mask) are dead at once */
	for (int o = 0; o < n->noutputs; o++) {
		int vi = n->outputs[o];
		if (vi >= 0 && r->refs[vi] == 0 && !r->keep[vi]) {
			dfq_tensor_free(r->vals[vi]);
			r->vals[vi] = NULL;
			r->owned[vi] = false;
		}
	}
	return DFQ_OK;
}

/* Move or copy graph outputs to the caller. */
static dfq_status hand_outputs(const struct dfq_exec *ex, struct run *r,
			       struct dfq_tensor **outputs, struct dfq_error *err)
{
	const struct dfq_graph *g = ex->g;
	for (int i = 0; i < g->noutputs; i++) {
		int vi = g->outputs[i];
		if (r->owned[vi] && !g->values[vi].init) {
			/* computed: move (a second listing of the same value copies) */
			outputs[i] = r->vals[vi];
			r->vals[vi] = NULL;
			r->owned[vi] = false;
			continue;
		}
		const struct dfq_tensor *src = value_data(ex, r, vi);
		if (!src) {
			/* moved to an earlier slot already */
			for (int j = 0; j < i && !src; j++)
				if (g->outputs[j] == vi)
					src = outputs[j];
		}
		if (!src)
			return dfq_error_set(err, DFQ_ERR_INTERNAL,
					     "graph output '%s' was not "
					     "computed",
					     g->values[vi].name);
		outputs[i] = dfq_tensor_clone(src, err);
		if (!outputs[i])
			return err ? err->status : DFQ_ERR_NOMEM;
	}
	return DFQ_OK;
}

dfq_status dfq_exec_run(struct dfq_exec *ex, struct dfq_tensor *const *inputs,
			struct dfq_tensor **outputs, struct dfq_error *err)
{
	const struct dfq_graph *g = ex->g;
	for (int i = 0; i < g->noutputs; i++)
		outputs[i] = NULL;
	for (int i = 0; i < g->ninputs; i++) {
		const struct dfq_tensor *t = inputs ? inputs[i] : NULL;
		dfq_status st = check_input(&g->values[g->inputs[i]], t, err);
		if (st != DFQ_OK)
			return st;
	}
	bool done;
	dfq_status st = run_plan(ex, inputs, outputs, &done, err);
	if (done || st != DFQ_OK)
		return st;
	ex->ran_plan = false;
	if (ex->profile)
		node_prof_fit(ex);
	struct run r = {0};
	st = run_alloc(&r, g, err);
	for (int i = 0; i < g->ninputs && st == DFQ_OK; i++)
		r.vals[g->inputs[i]] = inputs[i]; /* borrowed: owned stays false */
	if (st == DFQ_OK && ex->ngiven_on > 0)
		st = run_incremental(ex, &r, err);
	for (int ni = 0; ni < g->nnodes && st == DFQ_OK; ni++) {
		if (r.skip && r.skip[ni])
			continue;
		double t0 = ex->node_prof ? now() : 0.0;
		st = run_node(ex, &r, &g->nodes[ni], err);
		if (ex->node_prof) {
			ex->node_prof[ni].seconds += now() - t0;
			ex->node_prof[ni].calls++;
		}
	}
	if (st == DFQ_OK)
		st = hand_outputs(ex, &r, outputs, err);
	if (st != DFQ_OK) {
		for (int i = 0; i < g->noutputs; i++) {
			dfq_tensor_free(outputs[i]);
			outputs[i] = NULL;
		}
	}
	run_free(&r, g->nvalues);
	return st;
}
