/* dfq_exec.h - running a finalized graph on float32 NCHW batches.
 *
 * The executor walks g->nodes in (topological) order, asks each op for its
 * output shapes, allocates them, runs the kernel and frees each intermediate
 * as soon as its last consumer has run.  It borrows the graph: the graph must
 * outlive the executor and must not change while dfq_exec_run() runs. */
#ifndef DFQ_EXEC_H
#define DFQ_EXEC_H

#include <stdbool.h>

#include "dfq_error.h"
#include "dfq_graph.h"
#include "dfq_quant.h"
#include "dfq_tensor.h"

struct dfq_exec_opts {
	bool fast;      /* use forward_fast kernels where an op has one */
	int nthreads;   /* worker threads for kernels; 0 = number of online CPUs */
};

/* Defaults: fast = true, nthreads = 0. */
void dfq_exec_opts_default(struct dfq_exec_opts *o);

/* Called after each node output value vi has been computed, before anyone
 * reads it; may modify t in place (same shape), e.g. for fake quantization or
 * to record ranges.  A non-OK return aborts the run with that error. */
typedef dfq_status (*dfq_exec_hook)(void *user, const struct dfq_graph *g, int vi,
				    struct dfq_tensor *t, struct dfq_error *err);

struct dfq_exec;

/* New executor for g (borrowed).  Caller owns the result. */
struct dfq_exec *dfq_exec_new(const struct dfq_graph *g, const struct dfq_exec_opts *opts,
			      struct dfq_error *err);
void dfq_exec_free(struct dfq_exec *ex);

/* Install (or with fn NULL remove) the value hook. */
void dfq_exec_set_hook(struct dfq_exec *ex, dfq_exec_hook fn, void *user);

/* Run the graph.  inputs[i] (borrowed) feeds g->inputs[i]; its shape must
 * match the static shape where that is known.  On success outputs[i] is a new
 * tensor (caller owns) for g->outputs[i].  On failure no outputs are left
 * allocated and err names the node that failed. */
dfq_status dfq_exec_run(struct dfq_exec *ex, struct dfq_tensor *const *inputs,
			struct dfq_tensor **outputs, struct dfq_error *err);

/* Use t (borrowed; it must outlive its use) instead of the constant value vi
 * (an initializer) in later runs, e.g. fake-quantized weights; t NULL removes
 * the override.  t must have the initializer's shape and type.  The graph
 * itself is not changed. */
dfq_status dfq_exec_set_override(struct dfq_exec *ex, int vi, const struct dfq_tensor *t,
				 struct dfq_error *err);
/* Remove every override. */
void dfq_exec_clear_overrides(struct dfq_exec *ex);

/* Fake-quantize value vi on grid q (copied) in later runs, as soon as it is
 * computed: its readers see the quantized value.  A value hook, if one is
 * installed, is called first and sees the float value.  q NULL removes it.
 * Only float values computed by a node can be quantized (graph inputs: quantize
 * what you feed; constants: use an override).  Unlike a hook, quantization
 * keeps the fused fast path: the convolution kernels apply it in their
 * epilogue. */
dfq_status dfq_exec_set_quant(struct dfq_exec *ex, int vi, const struct dfq_qparams *q,
			      struct dfq_error *err);
/* Remove every quantization. */
void dfq_exec_clear_quants(struct dfq_exec *ex);

/* Use t (borrowed; it must outlive its use and is never changed) as the
 * value vi of later runs instead of computing it: an incremental run, e.g.
 * the values a changed layer does not depend on, kept from an earlier run.
 * A run then computes only what a graph output needs and is not given:
 * every node whose outputs are all given or unneeded is skipped, and no
 * hook, override or fake quantization applies to a given value (the fused
 * path may still recompute one inside a fused chain that runs for another
 * reason; its readers there see the recomputed value).  t must be a float
 * tensor computed by a node (not a graph input: feed those; not a constant:
 * use an override), holding what that node would compute from the run's
 * inputs (the same batch size).  An incremental run equals, bit for bit, a
 * full run on the same path (fused, or node by node with a hook or
 * opts.fast false) when the given values are that run's.  t NULL removes it. */
dfq_status dfq_exec_set_given(struct dfq_exec *ex, int vi, const struct dfq_tensor *t,
			      struct dfq_error *err);
/* Remove every given value. */
void dfq_exec_clear_given(struct dfq_exec *ex);

/* The thread pool of ex (for callers that want to share it), never NULL. */
struct dfq_pool *dfq_exec_pool(struct dfq_exec *ex);

#endif
