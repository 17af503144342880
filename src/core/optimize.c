/* optimize.c - the executor's fused fast path: a plan of fused Conv chains and single nodes.
 *
 * Built once per executor from the graph (which is never changed):
 *   - every eligible Conv starts a chain that takes in, while each value has
 *     exactly one reader and is not a graph output: a BatchNormalization with
 *     constant parameters, a Relu or Clip (constant bounds), an Add of a
 *     same-shaped tensor, and a second Relu or Clip.  The chain becomes one
 *     step, run at the position of its last node (all its inputs exist by then);
 *   - every other node is a step that runs its op's kernels as the node-by-node
 *     executor does.
 * Fused steps keep their outputs in CNHW layout (see ops/fused.h); values are
 * converted on demand when a reader needs the other layout, which is free for
 * one image or one channel.  GlobalAveragePool reads CNHW directly.
 *
 * BatchNormalization becomes a per-channel scale and bias applied to the
 * convolution's sum, which rounds differently from running the nodes in turn
 * (the oracle): results agree to float precision, not bit for bit.
 *
 * The steps are rebuilt at every run (a linear pass over the graph, cheap
 * next to any convolution), because callers may edit the graph and its
 * weights between runs; nothing derived from weights is kept.  What is kept
 * are the activation buffers: an arena owned by the plan, so that after the
 * first batch of a given size a run allocates nothing but its outputs and
 * touches no page for the first time.
 *
 * With several threads, a batch runs as parts side by side, one thread each
 * with a plan of its own (run_parallel), instead of splitting every operator
 * over the threads: on small images the latter meets at a barrier after every
 * step, and each step reads activations its predecessor left in the other
 * cores' caches. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dfq/dfq_blas.h"
#include "ops/fused.h"
#include "ops/ops_internal.h"
#include "optimize.h"

#define ALIGN 64

enum step_kind { STEP_NODE, STEP_CONV };

/* A fused Conv chain; node indices are -1 where the part is absent. */
struct chain {
	int conv, bn, act1, add, act2;
	int x_vi, w_vi, b_vi, res_vi, out_vi;
	int q1_vi, q2_vi; /* values fake-quantized in the epilogue (fq1/fq2), or -1 */
	bool depthwise;
};

struct step {
	enum step_kind kind;
	int node;  /* NODE: the node; CONV: the Conv */
	int pos;   /* the node index it runs at */
	bool skip; /* not run: what it computes is given or not needed */
	struct chain ch;
	/* CONV, depthwise: the next step is a Conv chain that alone reads this
	 * one's output; they run together (fused_dw_pw_run) when the kernels can
	 * (a 1x1 convolution, as MobileNetV2's projection) */
	bool pair_next;
};

/* One buffer of the arena: FUSED_GUARD floats, cap bytes of data, FUSED_GUARD
 * floats.  The guards are zeroed once; kernels may read them (see fused.h). */
struct abuf {
	void *p; /* the allocation; the data start FUSED_GUARD floats in */
	size_t cap;
	bool busy;
};

#define GUARD_BYTES (FUSED_GUARD * sizeof(float))

static void *abuf_data(const struct abuf *b)
{
	return (char *)b->p + GUARD_BYTES;
}

/* The mask tables of one convolution geometry (see fused_conv_masks_size). */
#define MASK_KEYS  12
#define MASK_CACHE 64 /* geometries kept at most (a model has a few dozen at most) */
struct mask_entry {
	int64_t key[MASK_KEYS];
	void *buf; /* owned */
};

/* A value during a run.  t has the logical (NCHW) dims whatever the layout. */
struct rval {
	struct dfq_tensor t;
	int buf;   /* arena buffer, -1 when borrowed (a fed input) */
	bool cnhw; /* data in CNHW order */
	bool live;
};

struct dfq_plan {
	const struct dfq_graph *g; /* borrowed */
	/* rebuilt by plan_build at every run; arrays owned, grown as the graph grows */
	int nsteps;
	struct step *steps; /* in run order */
	int *refs0;         /* per value: reads of it by steps (computed values only) */
	bool *keep;         /* per value: graph outputs */
	int *nreaders;      /* per value: node inputs reading it */
	int *reader;        /* per value: the last node reading it */
	bool *used;         /* per node: taken into a chain */
	bool *need;         /* per value: scratch for the steps a run with given values needs */
	struct rval *vals;  /* per value: its data during a run */
	int *refs;          /* per value: reads still to come */
	int cap_values, cap_nodes;
	/* kept between runs */
	struct abuf *bufs; /* owned, the arena */
	int nbufs, capbufs;
	float *scratch; /* owned, 64-byte aligned */
	size_t scratch_cap;
	/* owned: a chain's per-channel scale and bias; two chains' when a pair of
	 * steps runs together */
	float *epi[2];
	size_t epi_cap[2];
	struct mask_entry *masks; /* owned, per geometry */
	int nmasks;
	struct dfq_prof_entry *prof; /* owned, one per step of the last plan */
	int nprof, cap_prof;
	/* plans of the pool's other threads, for the parts of a batch that run
	 * side by side (see dfq_plan_run); owned, created at the first such run */
	struct dfq_plan **workers;
	int nworkers;
};

/* --- small helpers ----------------------------------------------------------------------- */

static bool is_const(const struct dfq_graph *g, int vi)
{
	return vi >= 0 && g->values[vi].init != NULL;
}

static const struct dfq_tensor *const_data(const struct dfq_graph *g,
                                           const struct dfq_plan_env *env, int vi)
{
	if (env->overrides && vi < env->noverrides && env->overrides[vi])
		return env->overrides[vi];
	return g->values[vi].init;
}

/* The fake quantization of value vi, or NULL. */
static const struct dfq_qparams *value_quant(const struct dfq_plan_env *env, int vi)
{
	return env->quant_on && vi >= 0 && vi < env->nquants && env->quant_on[vi]
	           ? &env->quants[vi]
	           : NULL;
}

struct fq_job {
	float *x;
	const struct dfq_qparams *qp;
};

static void fq_chunk(void *arg, int64_t begin, int64_t end, int tid)
{
	(void)tid;
	const struct fq_job *j = arg;
	dfq_fake_quant(j->x + begin, end - begin, j->qp);
}

void plan_fake_quant(struct dfq_pool *pool, struct dfq_tensor *t, const struct dfq_qparams *q)
{
	struct fq_job j = {dfq_tensor_f32(t), q};
	dfq_pool_run(pool, t->numel, 1 << 15, fq_chunk, &j);
}

/* 64-byte aligned memory of at least bytes (never a zero-size request); free() it. */
static void *alloc_aligned(size_t bytes)
{
	size_t n = (bytes + ALIGN - 1) / ALIGN * ALIGN;
	return aligned_alloc(ALIGN, n ? n : ALIGN);
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* --- building the plan --------------------------------------------------------------------- */

/* The one node reading vi, or -1 if there are more, none, or vi is a graph output. */
static int sole_reader(const struct dfq_plan *p, int vi)
{
	return p->nreaders[vi] == 1 && !p->keep[vi] ? p->reader[vi] : -1;
}

static bool f32_vector(const struct dfq_graph *g, int vi, int64_t len)
{
	const struct dfq_tensor *t = is_const(g, vi) ? g->values[vi].init : NULL;
	return t && t->dtype == DFQ_DTYPE_F32 && t->ndim == 1 && t->dims[0] == len;
}

/* A Conv the fused kernels run: 2-D, constant float weights (and bias), group 1
 * or depthwise, on a computed input. */
static bool conv_eligible(const struct dfq_graph *g, const struct dfq_node *n, bool *depthwise)
{
	if (n->op != DFQ_OP_CONV || n->ninputs < 2 || n->noutputs != 1 || n->outputs[0] < 0)
		return false;
	int x = n->inputs[0], w = n->inputs[1], b = n->ninputs > 2 ? n->inputs[2] : -1;
	if (x < 0 || is_const(g, x) || !is_const(g, w))
		return false;
	const struct dfq_tensor *wt = g->values[w].init;
	if (wt->dtype != DFQ_DTYPE_F32 || wt->ndim != 4 || wt->numel == 0)
		return false;
	if (n->p.nspatial != 0 && n->p.nspatial != 2)
		return false;
	if (b >= 0 && !f32_vector(g, b, wt->dims[0]))
		return false;
	int64_t grp = n->p.group;
	*depthwise = grp > 1 && wt->dims[1] == 1 && wt->dims[0] % grp == 0;
	if (*depthwise && wt->dims[2] * wt->dims[3] > FUSED_MAX_TAPS)
		return false;
	return grp == 1 || *depthwise;
}

static bool bn_eligible(const struct dfq_graph *g, const struct dfq_node *n, int64_t m)
{
	if (n->op != DFQ_OP_BATCHNORM || n->ninputs != 5)
		return false;
	for (int o = 1; o < n->noutputs; o++)
		if (n->outputs[o] >= 0)
			return false;
	for (int i = 1; i < 5; i++)
		if (!f32_vector(g, n->inputs[i], m))
			return false;
	return true;
}

/* Relu, or Clip whose bounds are attributes or constant scalars. */
static bool act_eligible(const struct dfq_graph *g, const struct dfq_node *n)
{
	if (n->op == DFQ_OP_RELU)
		return n->ninputs == 1;
	if (n->op != DFQ_OP_CLIP || n->ninputs > 3)
		return false;
	for (int i = 1; i < n->ninputs; i++) {
		int vi = n->inputs[i];
		if (vi < 0)
			continue;
		const struct dfq_tensor *t = is_const(g, vi) ? g->values[vi].init : NULL;
		if (!t || t->dtype != DFQ_DTYPE_F32 || t->numel > 1)
			return false;
	}
	return true;
}

static bool same_static_shape(const struct dfq_shape *a, const struct dfq_shape *b)
{
	if (a->ndim != 4 || b->ndim != 4 || a->dtype != b->dtype)
		return false;
	for (int i = 0; i < 4; i++)
		if (a->dims[i] != b->dims[i] || (i > 0 && a->dims[i] < 0))
			return false;
	return true;
}

/* Grow a chain from the Conv at ni into s; marks the nodes it takes in used.
 * A fake-quantized value can only sit where the epilogue quantizes: right
 * before the residual Add (q1) or at the chain's end, so it ends the chain
 * anywhere else. */
static void grow_chain(struct dfq_plan *p, const struct dfq_plan_env *env, int ni, bool depthwise,
                       struct step *s)
{
	const struct dfq_graph *g = p->g;
	const struct dfq_node *conv = &g->nodes[ni];
	struct chain *c = &s->ch;
	memset(c, 0, sizeof *c);
	c->conv = ni;
	c->bn = c->act1 = c->add = c->act2 = -1;
	c->x_vi = conv->inputs[0];
	c->w_vi = conv->inputs[1];
	c->b_vi = conv->ninputs > 2 ? conv->inputs[2] : -1;
	c->res_vi = -1;
	c->q1_vi = c->q2_vi = -1;
	c->depthwise = depthwise;
	int64_t m = g->values[c->w_vi].init->dims[0];
	int cur = conv->outputs[0], last = ni;

	for (;;) {
		bool quantized = value_quant(env, cur) != NULL;
		if (quantized && c->add >= 0)
			break;
		int r = sole_reader(p, cur);
		if (r < 0 || p->used[r])
			break;
		const struct dfq_node *n = &g->nodes[r];
		if (n->noutputs < 1 || n->outputs[0] < 0)
			break;
		if (quantized && n->op != DFQ_OP_ADD)
			break;
		bool first = n->ninputs >= 1 && n->inputs[0] == cur;
		if (first && c->bn < 0 && c->act1 < 0 && c->add < 0 && bn_eligible(g, n, m)) {
			c->bn = r;
		} else if (first && c->act1 < 0 && c->add < 0 && act_eligible(g, n)) {
			c->act1 = r;
		} else if (c->add < 0 && n->op == DFQ_OP_ADD && n->ninputs == 2 &&
		           n->noutputs == 1) {
			int other = n->inputs[0] == cur ? n->inputs[1] : n->inputs[0];
			if (other < 0 || other == cur || is_const(g, other) ||
			    !same_static_shape(&g->values[cur].shape, &g->values[other].shape) ||
			    g->values[cur].shape.dtype != DFQ_DTYPE_F32)
				break;
			c->add = r;
			c->res_vi = other;
			c->q1_vi = quantized ? cur : -1;
		} else if (first && c->add >= 0 && c->act2 < 0 && act_eligible(g, n)) {
			c->act2 = r;
		} else {
			break;
		}
		p->used[r] = true;
		cur = n->outputs[0];
		last = r;
	}
	s->kind = STEP_CONV;
	s->node = ni;
	s->pos = last;
	c->out_vi = cur;
	if (value_quant(env, cur)) {
		if (c->add < 0)
			c->q1_vi = cur;
		else
			c->q2_vi = cur;
	}
}

/* Fill a profile label: the op types of the step's nodes joined by '+'. */
static void step_label(const struct dfq_graph *g, const struct step *s, struct dfq_prof_entry *e)
{
	e->node = g->nodes[s->node].name;
	if (s->kind == STEP_NODE) {
		snprintf(e->op, sizeof e->op, "%s", g->nodes[s->node].op_type);
		return;
	}
	const struct chain *c = &s->ch;
	int parts[5] = {c->conv, c->bn, c->act1, c->add, c->act2};
	size_t len = 0;
	e->op[0] = '\0';
	for (int i = 0; i < 5; i++) {
		if (parts[i] < 0)
			continue;
		const char *name = g->nodes[parts[i]].op_type;
		int w = snprintf(e->op + len, sizeof e->op - len, "%s%s", len ? "+" : "", name);
		if (w < 0 || (size_t)w >= sizeof e->op - len)
			break;
		len += (size_t)w;
	}
}

static int step_cmp(const void *a, const void *b)
{
	const struct step *x = a, *y = b;
	return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Count the step's reads of computed values into refs. */
static void count_step_reads(const struct dfq_graph *g, const struct step *s, int *refs)
{
	if (s->kind == STEP_CONV) {
		refs[s->ch.x_vi]++;
		if (s->ch.res_vi >= 0)
			refs[s->ch.res_vi]++;
		return;
	}
	const struct dfq_node *n = &g->nodes[s->node];
	for (int i = 0; i < n->ninputs; i++)
		if (n->inputs[i] >= 0 && !is_const(g, n->inputs[i]))
			refs[n->inputs[i]]++;
}

static const struct dfq_tensor *given_of(const struct dfq_plan_env *env, int vi)
{
	return env->given && vi < env->ngiven ? env->given[vi] : NULL;
}

/* Mark each computed value step s reads. */
static void step_reads(const struct dfq_graph *g, const struct step *s, bool *mark)
{
	if (s->kind == STEP_CONV) {
		mark[s->ch.x_vi] = true;
		if (s->ch.res_vi >= 0)
			mark[s->ch.res_vi] = true;
		return;
	}
	const struct dfq_node *n = &g->nodes[s->node];
	for (int i = 0; i < n->ninputs; i++)
		if (n->inputs[i] >= 0 && !is_const(g, n->inputs[i]))
			mark[n->inputs[i]] = true;
}

/* With given values: skip every step whose results are all given or not
 * needed by a graph output, walking back from the outputs. */
static void plan_skips(struct dfq_plan *p, const struct dfq_plan_env *env)
{
	const struct dfq_graph *g = p->g;
	bool any = false;
	for (int vi = 0; env->given && vi < env->ngiven && !any; vi++)
		any = env->given[vi] != NULL;
	for (int i = 0; i < p->nsteps; i++)
		p->steps[i].skip = false;
	if (!any)
		return;
	memset(p->need, 0, ((size_t)g->nvalues + 1) * sizeof *p->need);
	for (int i = 0; i < g->noutputs; i++)
		p->need[g->outputs[i]] = true;
	for (int i = p->nsteps - 1; i >= 0; i--) {
		struct step *s = &p->steps[i];
		bool run = false;
		if (s->kind == STEP_CONV) {
			run = p->need[s->ch.out_vi] && !given_of(env, s->ch.out_vi);
		} else {
			const struct dfq_node *n = &g->nodes[s->node];
			for (int o = 0; o < n->noutputs; o++) {
				int vi = n->outputs[o];
				run = run || (vi >= 0 && p->need[vi] && !given_of(env, vi));
			}
		}
		s->skip = !run;
		if (run)
			step_reads(g, s, p->need);
	}
}

/* Make the per-value and per-node arrays fit the graph as it is now. */
static dfq_status plan_fit(struct dfq_plan *p, struct dfq_error *err)
{
	const struct dfq_graph *g = p->g;
	if (g->nvalues + 1 > p->cap_values) {
		size_t nv = (size_t)g->nvalues + 1;
		free(p->refs0);
		free(p->keep);
		free(p->nreaders);
		free(p->reader);
		free(p->vals);
		free(p->refs);
		free(p->need);
		p->need = malloc(nv * sizeof *p->need);
		p->refs0 = malloc(nv * sizeof *p->refs0);
		p->keep = malloc(nv * sizeof *p->keep);
		p->nreaders = malloc(nv * sizeof *p->nreaders);
		p->reader = malloc(nv * sizeof *p->reader);
		p->vals = malloc(nv * sizeof *p->vals);
		p->refs = malloc(nv * sizeof *p->refs);
		p->cap_values = 0;
		if (!p->refs0 || !p->keep || !p->nreaders || !p->reader || !p->vals || !p->refs ||
		    !p->need)
			return dfq_error_set(err, DFQ_ERR_NOMEM,
			                     "out of memory planning the graph");
		p->cap_values = (int)nv;
	}
	if (g->nnodes + 1 > p->cap_nodes) {
		size_t nn = (size_t)g->nnodes + 1;
		free(p->steps);
		free(p->used);
		p->steps = malloc(nn * sizeof *p->steps);
		p->used = malloc(nn * sizeof *p->used);
		p->cap_nodes = 0;
		if (!p->steps || !p->used)
			return dfq_error_set(err, DFQ_ERR_NOMEM,
			                     "out of memory planning the graph");
		p->cap_nodes = (int)nn;
	}
	return DFQ_OK;
}

/* The profile entries follow the steps; when the steps changed since the last
 * run (an edited graph), the recorded times start over. */
static dfq_status plan_profile_fit(struct dfq_plan *p, struct dfq_error *err)
{
	bool same = p->nprof == p->nsteps;
	for (int i = 0; same && i < p->nsteps; i++) {
		struct dfq_prof_entry e;
		step_label(p->g, &p->steps[i], &e);
		same = e.node == p->prof[i].node && strcmp(e.op, p->prof[i].op) == 0;
	}
	if (same)
		return DFQ_OK;
	if (p->nsteps > p->cap_prof) {
		struct dfq_prof_entry *np = realloc(p->prof, (size_t)p->nsteps * sizeof *np);
		if (!np)
			return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory for the profile");
		p->prof = np;
		p->cap_prof = p->nsteps;
	}
	for (int i = 0; i < p->nsteps; i++) {
		step_label(p->g, &p->steps[i], &p->prof[i]);
		p->prof[i].calls = 0;
		p->prof[i].seconds = 0.0;
	}
	p->nprof = p->nsteps;
	return DFQ_OK;
}

/* The steps for the graph (and the quantized values) as they are now. */
static dfq_status plan_build(struct dfq_plan *p, const struct dfq_plan_env *env,
                             struct dfq_error *err)
{
	const struct dfq_graph *g = p->g;
	dfq_status st = plan_fit(p, err);
	if (st != DFQ_OK)
		return st;
	size_t nv = (size_t)g->nvalues + 1;
	memset(p->refs0, 0, nv * sizeof *p->refs0);
	memset(p->keep, 0, nv * sizeof *p->keep);
	memset(p->nreaders, 0, nv * sizeof *p->nreaders);
	memset(p->used, 0, ((size_t)g->nnodes + 1) * sizeof *p->used);
	for (int i = 0; i < g->noutputs; i++)
		p->keep[g->outputs[i]] = true;
	for (int ni = 0; ni < g->nnodes; ni++) {
		const struct dfq_node *n = &g->nodes[ni];
		for (int i = 0; i < n->ninputs; i++) {
			if (n->inputs[i] < 0)
				continue;
			p->nreaders[n->inputs[i]]++;
			p->reader[n->inputs[i]] = ni;
		}
	}
	p->nsteps = 0;
	for (int ni = 0; ni < g->nnodes; ni++) {
		const struct dfq_node *n = &g->nodes[ni];
		if (p->used[ni])
			continue;
		struct step *s = &p->steps[p->nsteps++];
		s->pair_next = false;
		bool dw;
		if (conv_eligible(g, n, &dw)) {
			p->used[ni] = true;
			grow_chain(p, env, ni, dw, s);
		} else {
			s->kind = STEP_NODE;
			s->node = s->pos = ni;
		}
	}
	/* a chain runs at its last node: by then every one of its inputs exists */
	qsort(p->steps, (size_t)p->nsteps, sizeof *p->steps, step_cmp);
	plan_skips(p, env);
	for (int i = 0; i < p->nsteps; i++)
		if (!p->steps[i].skip)
			count_step_reads(g, &p->steps[i], p->refs0);
	/* a depthwise chain whose output only the next step, a Conv chain, reads
	 * as its input (MobileNetV2's depthwise conv and 1x1 projection) */
	for (int i = 0; i + 1 < p->nsteps; i++) {
		struct step *s = &p->steps[i];
		const struct step *t = &p->steps[i + 1];
		int out = s->ch.out_vi;
		s->pair_next = !s->skip && !t->skip && s->kind == STEP_CONV && s->ch.depthwise &&
		               s->ch.res_vi < 0 && t->kind == STEP_CONV && !t->ch.depthwise &&
		               t->ch.x_vi == out && p->refs0[out] == 1 && !p->keep[out];
	}
	return DFQ_OK;
}

struct dfq_plan *dfq_plan_new(const struct dfq_graph *g, struct dfq_error *err)
{
	struct dfq_plan *p = calloc(1, sizeof *p);
	if (!p) {
		dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory planning the graph");
		return NULL;
	}
	p->g = g;
	return p;
}

void dfq_plan_free(struct dfq_plan *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->nbufs; i++)
		free(p->bufs[i].p);
	free(p->bufs);
	free(p->scratch);
	free(p->epi[0]);
	free(p->epi[1]);
	for (int i = 0; i < p->nmasks; i++)
		free(p->masks[i].buf);
	free(p->masks);
	free(p->steps);
	free(p->used);
	free(p->refs0);
	free(p->need);
	free(p->keep);
	free(p->nreaders);
	free(p->reader);
	free(p->vals);
	free(p->refs);
	free(p->prof);
	for (int i = 0; i < p->nworkers; i++)
		dfq_plan_free(p->workers[i]);
	free(p->workers);
	free(p);
}

int dfq_plan_fused_count(const struct dfq_plan *p)
{
	int n = 0;
	for (int i = 0; i < p->nsteps; i++)
		n += p->steps[i].kind == STEP_CONV;
	return n;
}

int dfq_plan_profile(struct dfq_plan *p, const struct dfq_prof_entry **out)
{
	*out = p->prof;
	return p->nprof;
}

void dfq_plan_profile_reset(struct dfq_plan *p)
{
	for (int i = 0; i < p->nprof; i++) {
		p->prof[i].calls = 0;
		p->prof[i].seconds = 0.0;
	}
}

/* --- a chain's epilogue ------------------------------------------------------------------------
 */

/* Bounds of a Relu or Clip node with the current constants. */
static void act_bounds(const struct dfq_graph *g, const struct dfq_plan_env *env,
                       const struct dfq_node *n, float *lo, float *hi)
{
	if (n->op == DFQ_OP_RELU) {
		*lo = 0.0f;
		*hi = INFINITY;
		return;
	}
	*lo = n->p.clip_min;
	*hi = n->p.clip_max;
	for (int i = 1; i < n->ninputs && i < 3; i++) {
		if (n->inputs[i] < 0)
			continue;
		const struct dfq_tensor *t = const_data(g, env, n->inputs[i]);
		if (t->numel >= 1)
			*(i == 1 ? lo : hi) = dfq_tensor_f32(t)[0];
	}
}

/* The epilogue of chain c for m output channels, with the current constants:
 * BatchNormalization's affine map (computed in double as batchnorm.c does),
 * the conv bias folded into it, and the activations' bounds.  Its arrays are
 * p->epi[slot]'s (one slot per chain of a pair of steps). */
static dfq_status chain_epi(struct dfq_plan *p, const struct dfq_plan_env *env,
                            const struct chain *c, int slot, int64_t m, struct fused_epi *e,
                            struct dfq_error *err)
{
	const struct dfq_graph *g = p->g;
	const struct dfq_tensor *bt = c->b_vi >= 0 ? const_data(g, env, c->b_vi) : NULL;
	memset(e, 0, sizeof *e);
	e->bias = bt ? dfq_tensor_f32(bt) : NULL;
	if (c->bn >= 0) {
		if ((size_t)(2 * m) > p->epi_cap[slot]) {
			free(p->epi[slot]);
			p->epi[slot] = malloc((size_t)(2 * m) * sizeof *p->epi[slot]);
			p->epi_cap[slot] = p->epi[slot] ? (size_t)(2 * m) : 0;
			if (!p->epi[slot])
				return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
		}
		const struct dfq_node *bn = &g->nodes[c->bn];
		const float *gam = dfq_tensor_f32(const_data(g, env, bn->inputs[1]));
		const float *bet = dfq_tensor_f32(const_data(g, env, bn->inputs[2]));
		const float *mean = dfq_tensor_f32(const_data(g, env, bn->inputs[3]));
		const float *var = dfq_tensor_f32(const_data(g, env, bn->inputs[4]));
		float *sc = p->epi[slot], *bi = p->epi[slot] + m;
		for (int64_t o = 0; o < m; o++) {
			double a = (double)gam[o] / sqrt((double)var[o] + (double)bn->p.epsilon);
			double b0 = e->bias ? e->bias[o] : 0.0;
			sc[o] = (float)a;
			bi[o] = (float)((b0 - mean[o]) * a + bet[o]);
		}
		e->scale = sc;
		e->bias = bi;
	}
	e->lo1 = e->lo2 = -INFINITY;
	e->hi1 = e->hi2 = INFINITY;
	e->act1 = c->act1 >= 0;
	e->act2 = c->act2 >= 0;
	if (e->act1)
		act_bounds(g, env, &g->nodes[c->act1], &e->lo1, &e->hi1);
	if (e->act2)
		act_bounds(g, env, &g->nodes[c->act2], &e->lo2, &e->hi2);
	const struct dfq_qparams *q1 = value_quant(env, c->q1_vi), *q2 = value_quant(env, c->q2_vi);
	e->fq1 = q1 != NULL;
	e->fq2 = q2 != NULL;
	if (q1)
		e->q1 = fused_fq_of(q1->scale, q1->zero_point, q1->qmin, q1->qmax);
	if (q2)
		e->q2 = fused_fq_of(q2->scale, q2->zero_point, q2->qmin, q2->qmax);
	return DFQ_OK;
}

/* --- arena and values ------------------------------------------------------------------------ */

/* A free buffer of at least bytes, marked busy: the smallest that fits, else a
 * new one (replacing the largest free buffer that is too small, so their
 * number stays that of the values alive at once).  Returns -1 when out of memory. */
static int arena_get(struct dfq_plan *p, size_t bytes, struct dfq_error *err)
{
	int best = -1, spare = -1;
	for (int i = 0; i < p->nbufs; i++) {
		const struct abuf *b = &p->bufs[i];
		if (b->busy)
			continue;
		if (b->cap >= bytes) {
			if (best < 0 || b->cap < p->bufs[best].cap)
				best = i;
		} else if (spare < 0 || b->cap > p->bufs[spare].cap) {
			spare = i;
		}
	}
	if (best >= 0) {
		p->bufs[best].busy = true;
		return best;
	}
	if (spare < 0 && p->nbufs == p->capbufs) {
		int cap = p->capbufs ? 2 * p->capbufs : 16;
		struct abuf *nb = realloc(p->bufs, (size_t)cap * sizeof *nb);
		if (!nb) {
			dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory for activation buffers");
			return -1;
		}
		p->bufs = nb;
		p->capbufs = cap;
	}
	bytes = (bytes + ALIGN - 1) / ALIGN * ALIGN;
	char *mem = alloc_aligned(bytes + 2 * GUARD_BYTES);
	if (!mem) {
		dfq_error_set(err, DFQ_ERR_NOMEM,
		              "out of memory for an activation buffer of %zu bytes", bytes);
		return -1;
	}
	memset(mem, 0, GUARD_BYTES);
	memset(mem + GUARD_BYTES + bytes, 0, GUARD_BYTES);
	int i = spare;
	if (i >= 0)
		free(p->bufs[i].p);
	else
		i = p->nbufs++;
	p->bufs[i] = (struct abuf){.p = mem, .cap = bytes, .busy = true};
	return i;
}

/* Give value vi a buffer for shape s. */
static dfq_status val_alloc(struct dfq_plan *p, int vi, const struct dfq_shape *s, bool cnhw,
                            struct dfq_error *err)
{
	bool overflow = false;
	int64_t numel = dfq_dims_numel(s->ndim, s->dims, &overflow);
	if (numel < 0 || overflow)
		return dfq_error_set(err, DFQ_ERR_SHAPE, "value '%s' has no valid shape",
		                     p->g->values[vi].name);
	int b = arena_get(p, (size_t)numel * dfq_dtype_size(s->dtype), err);
	if (b < 0)
		return DFQ_ERR_NOMEM;
	struct rval *v = &p->vals[vi];
	memset(&v->t, 0, sizeof v->t);
	v->t.dtype = s->dtype;
	v->t.ndim = s->ndim;
	memcpy(v->t.dims, s->dims, sizeof v->t.dims);
	v->t.numel = numel;
	v->t.data = abuf_data(&p->bufs[b]);
	v->buf = b;
	v->cnhw = cnhw;
	v->live = true;
	return DFQ_OK;
}

static void val_drop(struct dfq_plan *p, int vi)
{
	struct rval *v = &p->vals[vi];
	if (v->live && v->buf >= 0)
		p->bufs[v->buf].busy = false;
	v->live = false;
	v->buf = -1;
}

/* One read of computed value vi done: drop it after its last one. */
static void release(struct dfq_plan *p, int vi)
{
	if (--p->refs[vi] > 0 || p->keep[vi])
		return;
	val_drop(p, vi);
}

/* Give a borrowed value (a fed input) a copy in the arena, which has guards. */
static dfq_status val_own(struct dfq_plan *p, int vi, struct dfq_error *err)
{
	struct rval *v = &p->vals[vi];
	if (v->buf >= 0)
		return DFQ_OK;
	size_t bytes = (size_t)v->t.numel * dfq_dtype_size(v->t.dtype);
	int b = arena_get(p, bytes, err);
	if (b < 0)
		return DFQ_ERR_NOMEM;
	memcpy(abuf_data(&p->bufs[b]), v->t.data, bytes);
	v->buf = b;
	v->t.data = abuf_data(&p->bufs[b]);
	return DFQ_OK;
}

/* Put value vi (4-D float when cnhw is asked for) in the layout asked for. */
static dfq_status val_layout(struct dfq_plan *p, struct dfq_pool *pool, int vi, bool cnhw,
                             struct dfq_error *err)
{
	struct rval *v = &p->vals[vi];
	if (v->cnhw == cnhw)
		return DFQ_OK;
	int64_t n = v->t.dims[0], c = v->t.dims[1], hw = v->t.dims[2] * v->t.dims[3];
	if (n == 1 || c == 1 || v->t.numel == 0) {
		v->cnhw = cnhw; /* the same memory */
		return DFQ_OK;
	}
	int b = arena_get(p, (size_t)v->t.numel * sizeof(float), err);
	if (b < 0)
		return DFQ_ERR_NOMEM;
	float *dst = abuf_data(&p->bufs[b]);
	if (cnhw)
		fused_nchw_to_cnhw(v->t.data, dst, n, c, hw, pool);
	else
		fused_cnhw_to_nchw(v->t.data, dst, n, c, hw, pool);
	if (v->buf >= 0)
		p->bufs[v->buf].busy = false;
	v->buf = b;
	v->t.data = dst;
	v->cnhw = cnhw;
	return DFQ_OK;
}

static dfq_status need_scratch(struct dfq_plan *p, size_t floats, struct dfq_error *err)
{
	if (floats <= p->scratch_cap)
		return DFQ_OK;
	free(p->scratch);
	p->scratch = alloc_aligned(floats * sizeof(float));
	p->scratch_cap = p->scratch ? floats : 0;
	if (!p->scratch)
		return dfq_error_set(err, DFQ_ERR_NOMEM,
		                     "out of memory for %zu bytes of convolution scratch",
		                     floats * sizeof(float));
	return DFQ_OK;
}

/* The mask tables for cv's geometry, computed at its first use and kept
 * (building them is serial work, a few percent of a run); NULL when out of memory. */
static const void *plan_masks(struct dfq_plan *p, const struct fused_conv *cv, size_t bytes)
{
	int64_t key[MASK_KEYS] = {cv->h,  cv->w,  cv->oh, cv->ow, cv->kh, cv->kw,
	                          cv->sh, cv->sw, cv->dh, cv->dw, cv->ph, cv->pw};
	for (int i = 0; i < p->nmasks; i++)
		if (memcmp(p->masks[i].key, key, sizeof key) == 0)
			return p->masks[i].buf;
	if (!p->masks) {
		p->masks = calloc(MASK_CACHE, sizeof *p->masks);
		if (!p->masks)
			return NULL;
	}
	if (p->nmasks == MASK_CACHE) {
		for (int i = 0; i < p->nmasks; i++)
			free(p->masks[i].buf);
		p->nmasks = 0;
	}
	void *buf = alloc_aligned(bytes);
	if (!buf)
		return NULL;
	fused_conv_masks_fill(cv, buf);
	struct mask_entry *e = &p->masks[p->nmasks++];
	memcpy(e->key, key, sizeof key);
	e->buf = buf;
	return buf;
}

static dfq_status not_computed(const struct dfq_graph *g, const struct dfq_node *n, int vi,
                               struct dfq_error *err)
{
	return dfq_error_set(err, DFQ_ERR_INTERNAL, "%s node '%s' reads '%s' before it is computed",
	                     n->op_type, n->name, g->values[vi].name);
}

/* --- steps ---------------------------------------------------------------------------------------
 */

/* Run one node with the op table's kernels, as the node-by-node executor does. */
static dfq_status run_node_step(struct dfq_plan *p, const struct dfq_plan_env *env,
                                const struct step *s, struct dfq_error *err)
{
	const struct dfq_graph *g = p->g;
	const struct dfq_node *n = &g->nodes[s->node];
	const struct dfq_op_def *d = &dfq_op_defs[n->op];
	/* at least 8 slots, NULL past the node's own count: kernels may look at
	 * an optional slot (in[2] of a two-input Conv) and must see NULL */
	int wi = n->ninputs > 8 ? n->ninputs : 8, wo = n->noutputs > 8 ? n->noutputs : 8;
	const struct dfq_tensor *in[wi];
	const struct dfq_shape *in_shape[wi];
	struct dfq_shape in_shapes[wi], out_shapes[wo];
	struct dfq_tensor *out[wo];
	memset(in, 0, sizeof in);
	memset(in_shape, 0, sizeof in_shape);
	memset(out, 0, sizeof out);

	/* GlobalAveragePool reads a CNHW input as it is */
	int x = n->ninputs > 0 ? n->inputs[0] : -1;
	bool gap = n->op == DFQ_OP_GLOBALAVGPOOL && x >= 0 && !is_const(g, x) && p->vals[x].live &&
	           p->vals[x].cnhw;
	dfq_status st;
	for (int i = 0; i < n->ninputs; i++) {
		int vi = n->inputs[i];
		if (vi < 0)
			continue;
		if (is_const(g, vi)) {
			in[i] = const_data(g, env, vi);
		} else {
			if (!p->vals[vi].live)
				return not_computed(g, n, vi, err);
			if (!gap && (st = val_layout(p, env->pool, vi, false, err)) != DFQ_OK)
				return dfq_node_name_error(err, n, st);
			in[i] = &p->vals[vi].t;
		}
		dfq_tensor_shape(in[i], &in_shapes[i]);
		in_shape[i] = &in_shapes[i];
	}
	st = d->shape(n, in_shape, in, out_shapes, err);
	if (st != DFQ_OK)
		return dfq_node_name_error(err, n, st);
	for (int o = 0; o < n->noutputs; o++) {
		int vi = n->outputs[o];
		if (vi < 0)
			continue;
		if ((st = val_alloc(p, vi, &out_shapes[o], false, err)) != DFQ_OK)
			return dfq_node_name_error(err, n, st);
		out[o] = &p->vals[vi].t;
		/* the kernels were written against dfq_tensor_new's zeroed outputs */
		memset(out[o]->data, 0, (size_t)out[o]->numel * dfq_dtype_size(out[o]->dtype));
	}
	if (gap && out[0] && in[0]->dtype == DFQ_DTYPE_F32 && in[0]->ndim == 4 &&
	    out[0]->numel == in[0]->dims[0] * in[0]->dims[1]) {
		const struct dfq_tensor *t = in[0];
		fused_gap_cnhw(dfq_tensor_f32(t), t->dims[0], t->dims[1], t->dims[2] * t->dims[3],
		               dfq_tensor_f32(out[0]), env->pool);
	} else {
		if (gap && (st = val_layout(p, env->pool, x, false, err)) != DFQ_OK)
			return dfq_node_name_error(err, n, st);
		if (gap)
			in[0] = &p->vals[x].t;
		struct dfq_kctx kctx = {.pool = env->pool};
		st = d->forward_fast ? d->forward_fast(n, in, out, &kctx, err)
		                     : d->forward(n, in, out, &kctx, err);
		if (st != DFQ_OK)
			return dfq_node_name_error(err, n, st);
	}
	for (int o = 0; o < n->noutputs; o++) {
		const struct dfq_qparams *q = value_quant(env, n->outputs[o]);
		if (q && out[o] && out[o]->dtype == DFQ_DTYPE_F32)
			plan_fake_quant(env->pool, out[o], q);
	}
	for (int i = 0; i < n->ninputs; i++)
		if (n->inputs[i] >= 0 && !is_const(g, n->inputs[i]))
			release(p, n->inputs[i]);
	/* outputs nobody reads (e.g. a Dropout mask) are dead at once */
	for (int o = 0; o < n->noutputs; o++) {
		int vi = n->outputs[o];
		if (vi >= 0 && p->refs[vi] == 0 && !p->keep[vi])
			val_drop(p, vi);
	}
	return DFQ_OK;
}

/* Set up *cv for the fused chain of step s: its input (and residual) in
 * CNHW, its output allocated, its epilogue in p->epi[slot], its masks.  Sets
 * *fallback (and returns DFQ_OK) when the data at hand are not what the plan
 * expected. */
static dfq_status conv_prepare(struct dfq_plan *p, const struct dfq_plan_env *env,
                               const struct step *s, int slot, struct fused_conv *cv,
                               bool *fallback, struct dfq_error *err)
{
	const struct dfq_graph *g = p->g;
	const struct chain *c = &s->ch;
	const struct dfq_node *n = &g->nodes[c->conv];
	if (!p->vals[c->x_vi].live)
		return not_computed(g, n, c->x_vi, err);
	const struct dfq_tensor *x = &p->vals[c->x_vi].t;
	if (x->ndim != 4 || x->dtype != DFQ_DTYPE_F32) {
		*fallback = true;
		return DFQ_OK;
	}
	const struct dfq_tensor *wt = const_data(g, env, c->w_vi);
	const struct dfq_tensor *bt = c->b_vi >= 0 ? const_data(g, env, c->b_vi) : NULL;
	struct dfq_shape xs, ws, bs, ys;
	dfq_tensor_shape(x, &xs);
	dfq_tensor_shape(wt, &ws);
	if (bt)
		dfq_tensor_shape(bt, &bs);
	const struct dfq_shape *ins[3] = {&xs, &ws, bt ? &bs : NULL};
	const struct dfq_tensor *ind[3] = {x, wt, bt};
	dfq_status st = dfq_op_defs[DFQ_OP_CONV].shape(n, ins, ind, &ys, err);
	if (st != DFQ_OK)
		return dfq_node_name_error(err, n, st);
	int64_t kernel[2] = {ws.dims[2], ws.dims[3]}, in_sp[2] = {xs.dims[2], xs.dims[3]};
	int64_t pads[4], out_sp[2];
	st = ops_spatial_resolve(&n->p, 2, in_sp, kernel, false, pads, out_sp, err);
	if (st != DFQ_OK)
		return dfq_error_prefix(err, "Conv node '%s'", n->name);
	if (ys.ndim != 4 || ys.dims[2] != out_sp[0] || ys.dims[3] != out_sp[1]) {
		*fallback = true;
		return DFQ_OK;
	}
	if (c->res_vi >= 0) {
		const struct rval *r = &p->vals[c->res_vi];
		if (!r->live)
			return not_computed(g, &g->nodes[c->add], c->res_vi, err);
		struct dfq_shape rs;
		dfq_tensor_shape(&r->t, &rs);
		if (rs.dtype != DFQ_DTYPE_F32 || rs.ndim != 4 ||
		    memcmp(rs.dims, ys.dims, 4 * sizeof rs.dims[0]) != 0) {
			*fallback = true; /* it broadcasts, or fails: the nodes will tell */
			return DFQ_OK;
		}
		if ((st = val_layout(p, env->pool, c->res_vi, true, err)) != DFQ_OK)
			return dfq_node_name_error(err, n, st);
	}
	if ((st = val_own(p, c->x_vi, err)) != DFQ_OK ||
	    (st = val_layout(p, env->pool, c->x_vi, true, err)) != DFQ_OK ||
	    (st = val_alloc(p, c->out_vi, &ys, true, err)) != DFQ_OK)
		return dfq_node_name_error(err, n, st);

	*cv = (struct fused_conv){
	    .n = xs.dims[0],
	    .c = xs.dims[1],
	    .h = xs.dims[2],
	    .w = xs.dims[3],
	    .m = ys.dims[1],
	    .oh = ys.dims[2],
	    .ow = ys.dims[3],
	    .kh = kernel[0],
	    .kw = kernel[1],
	    .sh = n->p.strides[0],
	    .sw = n->p.strides[1],
	    .dh = n->p.dilations[0],
	    .dw = n->p.dilations[1],
	    .ph = pads[0],
	    .pw = pads[1],
	    .depthwise = c->depthwise,
	    .x = dfq_tensor_f32(&p->vals[c->x_vi].t),
	    .wt = dfq_tensor_f32(wt),
	    .y = dfq_tensor_f32(&p->vals[c->out_vi].t),
	};
	if ((st = chain_epi(p, env, c, slot, cv->m, &cv->epi, err)) != DFQ_OK)
		return dfq_node_name_error(err, n, st);
	if (c->res_vi >= 0)
		cv->epi.res = dfq_tensor_f32(&p->vals[c->res_vi].t);
	size_t mbytes = fused_conv_masks_size(cv);
	if (mbytes && !(cv->masks = plan_masks(p, cv, mbytes)))
		return dfq_error_set(err, DFQ_ERR_NOMEM, "Conv node '%s': out of memory", n->name);
	return DFQ_OK;
}

/* The reads of step s's chain done. */
static void conv_done(struct dfq_plan *p, const struct step *s)
{
	const struct chain *c = &s->ch;
	release(p, c->x_vi);
	if (c->res_vi >= 0)
		release(p, c->res_vi);
	if (p->refs[c->out_vi] == 0 && !p->keep[c->out_vi])
		val_drop(p, c->out_vi);
}

/* Run a fused chain; *fallback as conv_prepare. */
static dfq_status run_conv_step(struct dfq_plan *p, const struct dfq_plan_env *env,
                                const struct step *s, bool *fallback, struct dfq_error *err)
{
	struct fused_conv cv;
	dfq_status st = conv_prepare(p, env, s, 0, &cv, fallback, err);
	if (st != DFQ_OK || *fallback)
		return st;
	int64_t need = fused_conv_scratch(&cv, dfq_pool_size(env->pool));
	if ((st = need_scratch(p, (size_t)need, err)) != DFQ_OK)
		return dfq_node_name_error(err, &p->g->nodes[s->ch.conv], st);
	fused_conv_run(&cv, env->pool, p->scratch);
	conv_done(p, s);
	return DFQ_OK;
}

/* Run the depthwise chain of step s and the 1x1 chain of step t that reads
 * its output (s->pair_next) together, or one after the other where the
 * kernels cannot pair them.  The depthwise output keeps its buffer either way
 * (the 1x1 chain is set up reading it), but the paired kernels never touch it. */
static dfq_status run_conv_pair(struct dfq_plan *p, const struct dfq_plan_env *env,
                                const struct step *s, const struct step *t, bool *fallback,
                                struct dfq_error *err)
{
	struct fused_conv dw, pw;
	dfq_status st = conv_prepare(p, env, s, 0, &dw, fallback, err);
	if (st != DFQ_OK || *fallback)
		return st;
	st = conv_prepare(p, env, t, 1, &pw, fallback, err);
	if (st != DFQ_OK || *fallback)
		return st;
	/* the mask cache may have started over for pw's: look dw's up again */
	size_t mbytes = fused_conv_masks_size(&dw);
	if (mbytes && !(dw.masks = plan_masks(p, &dw, mbytes)))
		return dfq_error_set(err, DFQ_ERR_NOMEM, "Conv node '%s': out of memory",
		                     p->g->nodes[s->ch.conv].name);
	int nthreads = dfq_pool_size(env->pool);
	bool paired = fused_dw_pw_ok(&dw, &pw, nthreads);
	int64_t need = paired ? fused_dw_pw_scratch(&dw, &pw, nthreads)
	                      : fused_conv_scratch(&dw, nthreads);
	if (!paired && fused_conv_scratch(&pw, nthreads) > need)
		need = fused_conv_scratch(&pw, nthreads);
	if ((st = need_scratch(p, (size_t)need, err)) != DFQ_OK)
		return dfq_node_name_error(err, &p->g->nodes[s->ch.conv], st);
	if (paired) {
		fused_dw_pw_run(&dw, &pw, env->pool, p->scratch);
	} else {
		fused_conv_run(&dw, env->pool, p->scratch);
		fused_conv_run(&pw, env->pool, p->scratch);
	}
	conv_done(p, s);
	conv_done(p, t);
	return DFQ_OK;
}

/* --- a run
 * ------------------------------------------------------------------------------------------ */

/* Images per sub-batch when a large batch is split (see dfq_plan_run): small
 * enough that a layer's activations stay in cache, large enough that every
 * operator has work for all threads.  16, as for the parts that threads run
 * side by side (PAR_SUB_BATCH): with 32, a 1x1 convolution writing 144
 * channels of 14x14 for each image ran at 73 GFLOP/s against 103 (its output
 * no longer fits in L2), and a 1-thread eval of the samples was 4-7%
 * (ResNet) and 6-15% (MobileNetV2) slower, in runs side by side with 16;
 * 8 measured the same as 16. */
#define SUB_BATCH 16

/* Whether node n treats the images of its batch independently: an operator
 * that works per image or per element, with constant parameters that do not
 * span the batch axis. */
static bool per_image_node(const struct dfq_graph *g, const struct dfq_node *n)
{
	int rank = n->ninputs > 0 && n->inputs[0] >= 0 ? g->values[n->inputs[0]].shape.ndim : -1;
	for (int i = 1; i < n->ninputs; i++) {
		int vi = n->inputs[i];
		if (vi < 0 || !is_const(g, vi))
			continue;
		/* a constant operand of an elementwise op must broadcast over the batch */
		const struct dfq_tensor *t = g->values[vi].init;
		bool eltwise = n->op == DFQ_OP_ADD || n->op == DFQ_OP_SUB || n->op == DFQ_OP_MUL ||
		               n->op == DFQ_OP_DIV;
		if (eltwise && t->ndim >= rank && !(t->ndim == rank && t->dims[0] == 1))
			return false;
	}
	switch (n->op) {
	case DFQ_OP_CONV:
	case DFQ_OP_BATCHNORM:
	case DFQ_OP_MAXPOOL:
	case DFQ_OP_AVGPOOL:
	case DFQ_OP_GLOBALAVGPOOL:
	case DFQ_OP_RELU:
	case DFQ_OP_CLIP:
	case DFQ_OP_LEAKYRELU:
	case DFQ_OP_SIGMOID:
	case DFQ_OP_HARDSIGMOID:
	case DFQ_OP_HARDSWISH:
	case DFQ_OP_IDENTITY:
	case DFQ_OP_DROPOUT:
		for (int i = 1; i < n->ninputs; i++)
			if (n->inputs[i] >= 0 && !is_const(g, n->inputs[i]))
				return false;
		return true;
	case DFQ_OP_ADD:
	case DFQ_OP_SUB:
	case DFQ_OP_MUL:
	case DFQ_OP_DIV:
		return true; /* activations checked by the caller, constants above */
	case DFQ_OP_FLATTEN:
		return n->p.axis >= 1;
	case DFQ_OP_CONCAT:
		return n->p.axis >= 1 || (rank > 0 && n->p.axis < 0 && n->p.axis + rank >= 1);
	case DFQ_OP_SOFTMAX:
		return n->p.axis >= 1 || (rank > 0 && n->p.axis < 0 && n->p.axis + rank >= 1);
	case DFQ_OP_GEMM: {
		if (n->p.trans_a || n->ninputs < 2 || !is_const(g, n->inputs[1]))
			return false;
		if (n->ninputs < 3 || n->inputs[2] < 0)
			return true;
		if (!is_const(g, n->inputs[2]))
			return false;
		const struct dfq_tensor *c = g->values[n->inputs[2]].init;
		return c->ndim <= 1 || (c->ndim == 2 && c->dims[0] == 1);
	}
	default:
		return false;
	}
}

/* A constant, or a value with the symbolic batch as its first axis. */
static bool batched_or_const(const struct dfq_graph *g, int vi)
{
	const struct dfq_value *v = &g->values[vi];
	return v->init || (v->shape.ndim >= 1 && v->shape.dims[0] == -1);
}

/* The graph can run a batch as consecutive sub-batches: every operator works
 * per image, and every value the nodes compute or read (graph inputs and
 * outputs included) has the symbolic batch as its first axis or is constant.
 * Values no node uses do not count: dfq keeps the parameters of folded
 * BatchNormalizations as orphan values (layer statistics), and those once
 * made every folded model run its batches whole, out of cache. */
static bool batch_separable(const struct dfq_graph *g)
{
	if (g->ninputs < 1 || g->noutputs < 1)
		return false;
	for (int i = 0; i < g->ninputs; i++)
		if (!batched_or_const(g, g->inputs[i]))
			return false;
	for (int i = 0; i < g->noutputs; i++)
		if (is_const(g, g->outputs[i]) || !batched_or_const(g, g->outputs[i]))
			return false;
	for (int ni = 0; ni < g->nnodes; ni++) {
		const struct dfq_node *n = &g->nodes[ni];
		if (!per_image_node(g, n))
			return false;
		for (int i = 0; i < n->ninputs; i++)
			if (n->inputs[i] >= 0 && !batched_or_const(g, n->inputs[i]))
				return false;
		for (int o = 0; o < n->noutputs; o++)
			if (n->outputs[o] >= 0 && !batched_or_const(g, n->outputs[o]))
				return false;
	}
	return true;
}

/* Copy the graph outputs (NCHW) into new tensors for the caller: all of them
 * (total < 0), or the images [first, first + count) of a batch of total into
 * outputs allocated at the first sub-batch. */
static dfq_status hand_outputs(struct dfq_plan *p, const struct dfq_plan_env *env,
                               struct dfq_tensor **outputs, int64_t first, int64_t count,
                               int64_t total, bool *fallback, struct dfq_error *err)
{
	const struct dfq_graph *g = p->g;
	bool whole = total < 0;
	for (int i = 0; i < g->noutputs; i++) {
		int vi = g->outputs[i];
		if (is_const(g, vi)) {
			if (!outputs[i])
				outputs[i] = dfq_tensor_clone(const_data(g, env, vi), err);
			if (!outputs[i])
				return err ? err->status : DFQ_ERR_NOMEM;
			continue;
		}
		const struct rval *v = &p->vals[vi];
		if (!v->live)
			return dfq_error_set(err, DFQ_ERR_INTERNAL,
			                     "graph output '%s' was not computed",
			                     g->values[vi].name);
		if (!whole && (v->t.ndim < 1 || v->t.dims[0] != count)) {
			*fallback = true; /* the batch did not come through as planned */
			return DFQ_OK;
		}
		if (!outputs[i]) {
			int64_t dims[DFQ_MAX_DIMS];
			memcpy(dims, v->t.dims, sizeof dims);
			if (!whole)
				dims[0] = total;
			outputs[i] = dfq_tensor_new(v->t.dtype, v->t.ndim, dims, err);
			if (!outputs[i])
				return err ? err->status : DFQ_ERR_NOMEM;
		}
		struct dfq_tensor *o = outputs[i];
		if (!whole && (o->dtype != v->t.dtype || o->ndim != v->t.ndim ||
		               memcmp(o->dims + 1, v->t.dims + 1,
		                      (size_t)(o->ndim - 1) * sizeof o->dims[0]) != 0)) {
			*fallback = true;
			return DFQ_OK;
		}
		size_t esz = dfq_dtype_size(v->t.dtype);
		int64_t off = whole ? 0 : first * (o->numel / total);
		char *dst = (char *)o->data + (size_t)off * esz;
		if (v->cnhw && v->t.dims[0] > 1 && v->t.dims[1] > 1)
			fused_cnhw_to_nchw(v->t.data, (float *)dst, v->t.dims[0], v->t.dims[1],
			                   v->t.dims[2] * v->t.dims[3], env->pool);
		else
			memcpy(dst, v->t.data, (size_t)v->t.numel * esz);
	}
	return DFQ_OK;
}

/* Forget every value and free every buffer for the next (sub-)batch. */
static void run_reset(struct dfq_plan *p)
{
	for (int i = 0; i < p->nbufs; i++)
		p->bufs[i].busy = false;
	for (int vi = 0; vi < p->g->nvalues + 1; vi++)
		p->vals[vi] = (struct rval){.buf = -1};
}

/* v borrows t (a fed input or a given value): the struct is copied (a view
 * of the sub-batch [first, first + count) when count >= 0), the data is not. */
static void borrow(struct rval *v, const struct dfq_tensor *t, int64_t first, int64_t count)
{
	v->t = *t;
	if (count >= 0 && t->ndim > 0 && t->dims[0] > 0 && count != t->dims[0]) {
		int64_t per = t->numel / t->dims[0];
		v->t.dims[0] = count;
		v->t.numel = per * count;
		v->t.data = (char *)t->data + (size_t)(first * per) * dfq_dtype_size(t->dtype);
	}
	v->buf = -1;
	v->live = true;
}

/* Run the steps on images [first, first + count) of the inputs. */
static dfq_status run_steps(struct dfq_plan *p, const struct dfq_plan_env *env,
                            struct dfq_tensor *const *inputs, int64_t first, int64_t count,
                            bool *fallback, struct dfq_error *err)
{
	const struct dfq_graph *g = p->g;
	run_reset(p);
	memcpy(p->refs, p->refs0, ((size_t)g->nvalues + 1) * sizeof *p->refs);
	for (int i = 0; i < g->ninputs; i++)
		borrow(&p->vals[g->inputs[i]], inputs[i], first, count);
	for (int vi = 0; env->given && vi < env->ngiven && vi < g->nvalues; vi++)
		if (env->given[vi])
			borrow(&p->vals[vi], env->given[vi], first, count);
	dfq_status st = DFQ_OK;
	for (int i = 0; i < p->nsteps && st == DFQ_OK && !*fallback; i++) {
		const struct step *s = &p->steps[i];
		if (s->skip)
			continue;
		double t0 = env->profile ? now() : 0.0;
		/* not when profiling, which times the steps one by one */
		if (s->kind == STEP_CONV && s->pair_next && !env->profile) {
			st = run_conv_pair(p, env, s, s + 1, fallback, err);
			i++;
		} else if (s->kind == STEP_CONV)
			st = run_conv_step(p, env, s, fallback, err);
		else
			st = run_node_step(p, env, s, err);
		if (env->profile && i < p->nprof) {
			p->prof[i].seconds += now() - t0;
			p->prof[i].calls++;
		}
	}
	return st;
}

/* Images per part when the parts of a batch run side by side, one thread
 * each (see dfq_plan_run): a part's activations should stay in its core's L2. */
#define PAR_SUB_BATCH 16

/* The parts of a batch, run side by side by the pool's threads, each with its
 * own plan (the caller's for thread 0) and no pool of its own. */
struct par_job {
	struct dfq_plan *p;
	const struct dfq_plan_env *env;
	struct dfq_tensor *const *inputs;
	struct dfq_tensor **outputs;
	int64_t total, parts;
	pthread_mutex_t lock; /* over outputs and the fields below */
	dfq_status st;        /* the first failure */
	bool fallback;
	struct dfq_error err;
	atomic_bool stop; /* a part failed or fell back: the others need not run */
};

static void par_task(void *arg, int64_t begin, int64_t end, int tid)
{
	struct par_job *j = arg;
	struct dfq_plan *p = tid == 0 ? j->p : j->p->workers[tid - 1];
	struct dfq_plan_env env = *j->env;
	env.pool = NULL;
	for (int64_t k = begin; k < end && !atomic_load(&j->stop); k++) {
		int64_t first = j->total * k / j->parts;
		int64_t count = j->total * (k + 1) / j->parts - first;
		struct dfq_error e = {0};
		bool fb = false;
		dfq_status st = run_steps(p, &env, j->inputs, first, count, &fb, &e);
		pthread_mutex_lock(&j->lock);
		if (st == DFQ_OK && !fb)
			st = hand_outputs(p, &env, j->outputs, first, count, j->total, &fb, &e);
		if ((st != DFQ_OK || fb) && !atomic_load(&j->stop)) {
			j->st = st;
			j->fallback = fb && st == DFQ_OK;
			j->err = e;
			atomic_store(&j->stop, true);
		}
		pthread_mutex_unlock(&j->lock);
	}
}

/* Run the parts of a batch of total images side by side (see dfq_plan_run). */
static dfq_status run_parallel(struct dfq_plan *p, const struct dfq_plan_env *env,
                               struct dfq_tensor *const *inputs, struct dfq_tensor **outputs,
                               int64_t total, int nthreads, bool *fallback, struct dfq_error *err)
{
	if (p->nworkers < nthreads - 1) {
		struct dfq_plan **w = realloc(p->workers, (size_t)(nthreads - 1) * sizeof *w);
		if (!w)
			return dfq_error_set(err, DFQ_ERR_NOMEM,
			                     "out of memory planning the graph");
		p->workers = w;
		for (; p->nworkers < nthreads - 1; p->nworkers++)
			if (!(p->workers[p->nworkers] = dfq_plan_new(p->g, err)))
				return err ? err->status : DFQ_ERR_NOMEM;
	}
	for (int i = 0; i < nthreads - 1; i++) {
		dfq_status st = plan_build(p->workers[i], env, err);
		if (st != DFQ_OK)
			return st;
	}
	/* whole rounds of parts, so that no thread idles at the end */
	int64_t parts = (total + PAR_SUB_BATCH - 1) / PAR_SUB_BATCH;
	parts = (parts + nthreads - 1) / nthreads * nthreads;
	struct par_job j = {.p = p,
	                    .env = env,
	                    .inputs = inputs,
	                    .outputs = outputs,
	                    .total = total,
	                    .parts = parts};
	pthread_mutex_init(&j.lock, NULL);
	dfq_pool_run(env->pool, parts, 1, par_task, &j);
	pthread_mutex_destroy(&j.lock);
	for (int i = 0; i < nthreads - 1; i++)
		run_reset(p->workers[i]);
	*fallback = j.fallback;
	if (j.st != DFQ_OK && err)
		*err = j.err;
	return j.st;
}

dfq_status dfq_plan_run(struct dfq_plan *p, const struct dfq_plan_env *env,
                        struct dfq_tensor *const *inputs, struct dfq_tensor **outputs,
                        bool *fallback, struct dfq_error *err)
{
	const struct dfq_graph *g = p->g;
	*fallback = false;
	for (int i = 0; i < g->noutputs; i++)
		outputs[i] = NULL;
	dfq_status st = plan_build(p, env, err);
	if (st == DFQ_OK && env->profile)
		st = plan_profile_fit(p, err);
	if (st == DFQ_OK && dfq_plan_fused_count(p) > 0)
		st = dfq_blas_init(err);
	if (st != DFQ_OK)
		return st;

	/* A large batch of a graph that treats images independently runs as
	 * sub-batches: the same results, with activations that stay in cache
	 * (and buffers sized for a sub-batch). */
	int64_t total = g->ninputs > 0 && inputs[0]->ndim > 0 ? inputs[0]->dims[0] : 0;
	int64_t parts = 1;
	/* With several threads, a batch of a few images per thread or more runs
	 * as parts side by side, a thread each, rather than every operator split
	 * over the threads: each core keeps its part's activations in its own
	 * cache, and threads meet once per part instead of at every operator.
	 * Not when profiling: per-step times of threads running different steps
	 * at once would not add up to anything. */
	int nthreads = dfq_pool_size(env->pool);
	bool same_batch = true;
	for (int i = 0; i < g->ninputs; i++)
		if (inputs[i]->ndim < 1 || inputs[i]->dims[0] != total)
			same_batch = false;
	/* given values are split into parts as the inputs are */
	for (int vi = 0; env->given && vi < env->ngiven && vi < g->nvalues; vi++) {
		const struct dfq_tensor *t = env->given[vi];
		if (t && (t->ndim < 1 || t->dims[0] != total))
			same_batch = false;
	}
	if (nthreads > 1 && !env->profile && total >= 2 * nthreads && same_batch &&
	    batch_separable(g)) {
		st = run_parallel(p, env, inputs, outputs, total, nthreads, fallback, err);
		parts = 0;
	} else if (total > SUB_BATCH && batch_separable(g)) {
		parts = (total + SUB_BATCH - 1) / SUB_BATCH;
		if (!same_batch)
			parts = 1;
	}
	if (parts == 1)
		total = -1; /* one run of whatever the inputs hold */
	for (int64_t k = 0; k < parts && st == DFQ_OK && !*fallback; k++) {
		int64_t first = 0, count = -1;
		if (parts > 1) {
			first = total * k / parts;
			count = total * (k + 1) / parts - first;
		}
		st = run_steps(p, env, inputs, first, count, fallback, err);
		if (st == DFQ_OK && !*fallback)
			st = hand_outputs(p, env, outputs, first, count, total, fallback, err);
	}
	if (st != DFQ_OK || *fallback) {
		for (int i = 0; i < g->noutputs; i++) {
			dfq_tensor_free(outputs[i]);
			outputs[i] = NULL;
		}
	}
	run_reset(p);
	return st;
}
