/* model_internal.h - what the model_*.c files share; not part of the public API. */
#ifndef DFQ_MODEL_INTERNAL_H
#define DFQ_MODEL_INTERNAL_H

#include "dfq/dfq_model.h"
#include "dfq/dfq_parallel.h"

/* Hook context for one executor prepared in QUANT mode.  The hook's user
 * pointer must stay valid as long as the executor may run, so contexts live
 * in the model (one per executor address) until the model is freed. */
struct model_hook_ctx {
	struct dfq_model *m;
	const struct dfq_exec *ex; /* identity only, never dereferenced */
	/* empirical bias correction / measurement extras (NULL when unused) */
	dfq_exec_hook extra;
	void *extra_user;
	bool stop; /* extra asked to stop the run early */
};

struct dfq_model_priv {
	int *point_of_value; /* owned, g->nvalues entries: point index or -1 */
	int npov;
	struct dfq_measure_opts mopts;
	struct model_hook_ctx **ctxs; /* owned (each and the array) */
	int nctxs;
	struct dfq_range *given; /* owned, g->ninputs entries: caller-set input ranges */
	int ngiven;
};

/* Per-value distribution descriptor for data-free propagation: per channel
 * mean and variance of the value, and its data-free range. */
struct vdesc {
	bool valid;             /* mean/var known */
	int64_t c;              /* channels */
	double *mean, *var;     /* owned, c each */
	struct dfq_range range; /* data-free range of the value */
};

/* --- model.c ------------------------------------------------------------- */

/* Weight data of layer L. */
float *model_w(const struct dfq_model *m, const struct dfq_layer *L);
/* Bias data of layer L, or NULL when it has none. */
float *model_b(const struct dfq_model *m, const struct dfq_layer *L);
/* (Re)discover layers and points from m->g, carrying over per-layer state
 * (matched by weight value) and data ranges (matched by value).  On failure
 * m is unchanged. */
dfq_status model_discover(struct dfq_model *m, struct dfq_error *err);
/* Recompute data-free ranges and the run-time activation grids. */
dfq_status model_refresh(struct dfq_model *m, struct dfq_error *err);
/* Grow the report by one row (zeroed, layer2 = -1, NaN figures); NULL on OOM. */
struct dfq_step_row *model_report_row(struct dfq_step_report *r, int layer, struct dfq_error *err);
/* Count changed/skipped rows. */
void model_report_count(struct dfq_step_report *r);
/* sel[li], with NULL meaning all. */
bool model_selected(const bool *sel, int li);
/* Free the per-layer state a layer owns (not the struct itself). */
void model_layer_release(struct dfq_layer *L);
/* Per-output-channel ranges of the current weights: rmin/rmax and spread. */
void model_layer_spread(const struct dfq_model *m, const struct dfq_layer *L, dfq_qscheme range,
                        double *rmin, double *rmax, double *spread);

/* --- model_fold.c ------------------------------------------------------- */

/* Per-layer step plumbing (it would sit beside model_report_row in model.c). */

/* First pass of a step over layer li: NULL when li is not in sel (no row),
 * else a new row of r (owned by r).  With editable_only, a fixed layer's row
 * gets "skipped: WHY" and NULL is returned too.  Out of memory: NULL with
 * *st set from err, so a loop running while *st is DFQ_OK ends. */
struct dfq_step_row *model_step_row(const struct dfq_model *m, const bool *sel, int li,
                                    bool editable_only, struct dfq_step_report *r,
                                    dfq_status *st, struct dfq_error *err);
/* End of a step that changed the model: when st is DFQ_OK refresh m's
 * ranges and count r's rows; when st or the refresh failed free r and
 * return the failure. */
dfq_status model_step_finish(struct dfq_model *m, struct dfq_step_report *r, dfq_status st,
                             struct dfq_error *err);
/* Hand the finished report r to the caller (*rep takes over what r owns) or,
 * with rep NULL, free it. */
void model_report_hand(struct dfq_step_report *r, struct dfq_step_report *rep);

/* --- model_graph_edit.c -------------------------------------------------- */

/* Add a zero bias initializer to every Conv/Gemm layer node without one. */
dfq_status model_add_missing_biases(struct dfq_graph *g, struct dfq_error *err);
/* Remove the nodes flagged in kill (g->nnodes entries), keeping the order,
 * then re-finalize the graph and rediscover the model. */
dfq_status model_remove_nodes(struct dfq_model *m, const bool *kill, struct dfq_error *err);
/* Turn node ni (a Clip) into a Relu with its first input; relu_name must
 * be a malloc'd "Relu" the node takes over. */
void model_clip_to_relu(struct dfq_graph *g, int ni, char *relu_name);
/* Re-finalize the graph after an edit and rediscover the model. */
dfq_status model_refinalize(struct dfq_model *m, struct dfq_error *err);
/* Deep copy of a finalized graph.  Caller owns the result. */
struct dfq_graph *model_graph_clone(const struct dfq_graph *g, struct dfq_error *err);

/* --- model_quant.c ------------------------------------------------------- */

/* Recompute what a layer runs with after its weights or bias changed: the
 * fake-quantized weights (when quantized) and the run-time biases. */
dfq_status model_layer_update(struct dfq_model *m, int li, struct dfq_error *err);
/* Fake-quantize w (layer L's geometry) with q into out (same shape; may
 * alias w); qp gets 1 or cout grids when not NULL. */
dfq_status model_quantize_w(const struct dfq_layer *L, const struct dfq_tensor *w,
                            const struct dfq_qconfig *q, struct dfq_tensor *out,
                            struct dfq_qparams *qp, struct dfq_error *err);
/* Drop a layer's bias correction (after its weights changed). */
void model_layer_drop_bcorr(struct dfq_layer *L);
/* The hook context for ex (created on first use). */
struct model_hook_ctx *model_hook_ctx_for(struct dfq_model *m, struct dfq_exec *ex,
                                          struct dfq_error *err);
/* The value hook: calls ctx->extra and stops the run when it asks to
 * (fake quantization is the executor's, set by dfq_model_exec_prepare). */
dfq_status model_hook(void *user, const struct dfq_graph *g, int vi, struct dfq_tensor *t,
                      struct dfq_error *err);
/* Leave ex with no hook and no overrides. */
void model_exec_reset(struct dfq_exec *ex);

/* --- model_measure.c ----------------------------------------------------- */

/* Data-free propagation over the graph: one descriptor per value (array of
 * g->nvalues, caller frees with model_vdesc_free). */
dfq_status model_vdesc_compute(const struct dfq_model *m, struct vdesc **out,
                               struct dfq_error *err);
void model_vdesc_free(struct vdesc *d, int n);
/* Mean and variance of N(mu, sd^2) clipped to [a, b] (a may be -inf, b +inf). */
void model_clipped_normal(double mu, double sd, double a, double b, double *mean, double *var);

#endif
