/* optimize.h - the executor's fused fast path (optimize.c) and its per-step profile.
 *
 * A plan turns a finalized graph into steps, at every run: chains Conv
 * [-> BatchNormalization] [-> Relu|Clip] [-> Add] [-> Relu|Clip] whose
 * intermediate values have no other reader become one fused step (everything
 * after the sum applied while the output is in registers or cache), and every
 * other node is a step of its own, run with the op table's kernels.
 * Activations live in buffers the plan keeps between runs.  A batch larger
 * than 32 images of a graph whose operators all treat images independently
 * runs as sub-batches, so that activations stay in cache; with several
 * threads, a batch of such a graph of two images per thread or more runs as
 * parts of up to 16 images side by side, a thread and a plan each.  The graph
 * is not changed, and may be between runs.
 * Not part of the public API (the profile functions are meant for dfq_exec.h). */
#ifndef DFQ_OPTIMIZE_H
#define DFQ_OPTIMIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "dfq/dfq_error.h"
#include "dfq/dfq_exec.h"
#include "dfq/dfq_graph.h"
#include "dfq/dfq_parallel.h"
#include "dfq/dfq_quant.h"
#include "dfq/dfq_tensor.h"

/* Time spent in one step (fused chain or single node) over the runs since
 * profiling was turned on. */
struct dfq_prof_entry {
	const char *node; /* name of the step's first graph node (borrowed from the graph) */
	char op[96];      /* its op type, or e.g. "Conv+BatchNormalization+Clip" when fused */
	int64_t calls;
	double seconds;
};

/* Turn per-step timing on (clearing what was recorded) or off.  Also on from
 * the start when the environment has DFQ_PROFILE=1.  The caller prints. */
void dfq_exec_set_profile(struct dfq_exec *ex, bool on);
/* The entries of the path that ran last (fused plan or node by node), in run
 * order; *out is borrowed until the next run, a change to the graph or dfq_exec_free.
 * Returns the count. */
int dfq_exec_get_profile(struct dfq_exec *ex, const struct dfq_prof_entry **out);

struct dfq_plan;

/* What a run needs from the executor. */
struct dfq_plan_env {
	struct dfq_pool *pool;
	const struct dfq_tensor *const *overrides; /* per value, may be NULL */
	int noverrides;
	const struct dfq_qparams *quants; /* per value, used where quant_on (dfq_exec_set_quant) */
	const bool *quant_on;
	int nquants;
	/* per value, may be NULL: values the run takes as they are instead of
	 * computing them (dfq_exec_set_given); borrowed, never written */
	const struct dfq_tensor *const *given;
	int ngiven;
	bool profile;
};

/* A plan for g (borrowed; it must outlive the plan and not change).  Caller owns. */
struct dfq_plan *dfq_plan_new(const struct dfq_graph *g, struct dfq_error *err);
void dfq_plan_free(struct dfq_plan *p);

/* Run with the contract of dfq_exec_run (inputs already checked against the
 * static shapes).  When the run meets something the fused steps cannot do
 * (e.g. a residual whose shape only broadcasts), it stops with *fallback set,
 * no outputs and DFQ_OK, and the caller runs the graph node by node instead.
 * Not reentrant: one run of a plan at a time. */
dfq_status dfq_plan_run(struct dfq_plan *p, const struct dfq_plan_env *env,
                        struct dfq_tensor *const *inputs, struct dfq_tensor **outputs,
                        bool *fallback, struct dfq_error *err);

/* Fake-quantize the float tensor t in place on grid q, in parallel on pool. */
void plan_fake_quant(struct dfq_pool *pool, struct dfq_tensor *t, const struct dfq_qparams *q);

/* Number of fused chains (steps standing for more than one node, or a Conv). */
int dfq_plan_fused_count(const struct dfq_plan *p);

/* Profile entries of the plan's steps (see dfq_exec_get_profile), and reset. */
int dfq_plan_profile(struct dfq_plan *p, const struct dfq_prof_entry **out);
void dfq_plan_profile_reset(struct dfq_plan *p);

#endif
