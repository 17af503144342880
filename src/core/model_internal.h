/* model_internal.h - what the model_*.c and step_*.c files share; not part of the public API.
 *
 * The model core is three layers, each calling only the layers below it
 * (docs/design.md draws the graph; tests/check-layers enforces it):
 *
 *   steps   step_fold.c step_relu6.c step_clip.c step_equalize.c step_absorb.c
 *           step_quantize.c step_measure.c step_biascorr.c step_biascorr_data.c
 *           (one DFQ step each; a step never calls another step)
 *   middle  model_step.c (the frame every step runs in), model.c (create, free,
 *           queries), model_history.c (transactions, undo, redo), model_settings.c,
 *           model_graph_edit.c (graph surgery), model_discover.c (layers and
 *           activation points from the graph), model_layer.c (what a layer runs
 *           with, and what a change of it makes obsolete), model_exec.c (preparing
 *           executors), model_grids.c (activation grids), model_targets.c,
 *           model_pairs.c, model_cow.c (copy-on-write of the model's parts),
 *           model_hist.c (quantization error histograms), model_analysis.c
 *           (per-layer sensitivity, comparison against FP32)
 *   base    model_base.c (layer buffers and accessors), model_stats.c (data-free
 *           propagation of BN statistics), model_report.c, model_names.c, rc.c
 *
 * Functions are listed under the file that defines them, lowest layer first.
 */
#ifndef DFQ_MODEL_INTERNAL_H
#define DFQ_MODEL_INTERNAL_H

#include <time.h>

#include "dfq/dfq_model.h"
#include "dfq/dfq_parallel.h"
#include "rc.h"

/* ===========================================================================
 * base
 * ======================================================================== */

/* --- model_base.c: a layer's buffers and the model's accessors --------------- */

/* Weight data of layer L (read-only: see model_writable_init). */
float *model_w(const struct dfq_model *m, const struct dfq_layer *L);
/* Bias data of layer L, or NULL when it has none (read-only). */
float *model_b(const struct dfq_model *m, const struct dfq_layer *L);
/* sel[li], with NULL meaning all. */
bool model_selected(const bool *sel, int li);
/* Drop the layer's references to its buffers (not the struct itself) and zero it. */
void model_layer_release(struct dfq_layer *L);
/* *dst = *src, with one more reference on every buffer src points to. */
void model_layer_share(struct dfq_layer *dst, const struct dfq_layer *src);
/* Release n layers and free the array. */
void model_layers_free(struct dfq_layer *layers, int n);
/* Per-output-channel ranges of the current weights: smallest and largest
 * range (max - min, or 2 max |w| for SYM) and their ratio. */
void model_layer_spread(const struct dfq_model *m, const struct dfq_layer *L, dfq_qscheme range,
                        double *rmin, double *rmax, double *spread);
/* Point index of value vi, or -1. */
int model_point_of(const struct dfq_model *m, int vi);

/* --- model_stats.c: data-free propagation of BN statistics ------------------ */

/* Per-value distribution descriptor: per channel mean and variance of the
 * value, and its data-free range. */
struct vdesc {
	bool valid;             /* mean/var known */
	int64_t c;              /* channels */
	double *mean, *var;     /* owned, c each */
	struct dfq_range range; /* data-free range of the value */
};
/* One descriptor per value (array of g->nvalues, free with model_vdesc_free):
 * layer outputs N(beta, gamma^2), then Relu/Clip, Add, Concat and the
 * channel-preserving ops propagate; graph inputs get their given range. */
dfq_status model_vdesc_compute(const struct dfq_model *m, struct vdesc **out,
                               struct dfq_error *err);
void model_vdesc_free(struct vdesc *d, int n);
/* Mean and variance of N(mu, sd^2) clipped to [a, b] (a may be -inf, b +inf). */
void model_clipped_normal(double mu, double sd, double a, double b, double *mean, double *var);
/* E[x] of layer L's input per input feature (cin; a Flatten's features map
 * onto the channels of d) from d, the descriptor of its input value: new
 * array (caller frees), or NULL with *why set when unknown, or NULL with
 * *nomem and err set when out of memory. */
double *model_expected_input(const struct dfq_layer *L, const struct vdesc *d, const char **why,
                             struct dfq_error *err, bool *nomem);
/* pred[o] = sum_i (sum_k (w - ref)[o, i, k]) ex[gi] (cout entries): the
 * expected output shift of weights w against ref for inputs of mean ex. */
void model_predicted_shift(const struct dfq_layer *L, const float *w, const float *ref,
                           const double *ex, double *pred);

/* --- model_report.c: step reports ------------------------------------------ */

/* Grow the report by one row (zeroed, layer2 = -1, NaN figures); NULL on OOM. */
struct dfq_step_row *model_report_row(struct dfq_step_report *r, int layer, struct dfq_error *err);
/* Count changed/skipped rows. */
void model_report_count(struct dfq_step_report *r);
/* First pass of a step over layer li: NULL when li is not in sel (no row),
 * else a new row of r (owned by r).  With editable_only, a fixed layer's row
 * gets "skipped: WHY" and NULL is returned too.  Out of memory: NULL with
 * *st set from err, so a loop running while *st is DFQ_OK ends. */
struct dfq_step_row *model_step_row(const struct dfq_model *m, const bool *sel, int li,
                                    bool editable_only, struct dfq_step_report *r, dfq_status *st,
                                    struct dfq_error *err);
/* Hand the finished report r to the caller (*rep takes over what r owns) or,
 * with rep NULL, free it. */
void model_report_hand(struct dfq_step_report *r, struct dfq_step_report *rep);

/* --- model_names.c: names of enums (public: dfq_act_name, ...) --------------- */

/* The module's qualified name ("features.1.conv.0") from a node name that is
 * an exporter's scope path ("/features/features.1/conv/conv.0/Conv") into
 * buf; false (buf unspecified) when the name is no such path or does not fit. */
bool model_module_path(const char *node_name, char *buf, size_t len);

/* ===========================================================================
 * middle
 * ======================================================================== */

/* --- model_cow.c: copy-on-write of the model's parts ----------------------- */

/* The parts of a model a transaction can replace. */
enum model_part {
	PART_VALUES = 1u << 0, /* g->values: initializers, shapes, consumer counts */
	PART_NODES = 1u << 1,  /* g->nodes: the graph's structure */
	PART_LAYERS = 1u << 2, /* m->layers */
	PART_POINTS = 1u << 3, /* m->points and the value -> point map */
};

/* The model's scalar state a step may change (settings are not part of it:
 * undoing a step keeps the range source, n-std and input ranges). */
struct model_flags {
	bool has_stats, folded;
	struct dfq_qconfig aux_q;
	bool aux_enabled, data_stale;
	struct dfq_measure_opts mopts;
};

/*
 * The other version of every part a transaction changed: the parts as they
 * were before it while it is open or applied, as they were after it once it
 * is undone.  Swapping a save with the model moves between the two versions
 * without allocating, so rolling back, undoing and redoing cannot fail.
 * Arrays are whole copies (small: structs and pointers); the tensors and
 * buffers they point to are shared with the model by reference counting, so
 * a save costs only what its transaction changed.
 */
struct model_save {
	unsigned parts; /* PART_* saved */
	/* PART_VALUES: g->nvalues entries; names borrowed from the graph (the
	 * same pointers in every version), initializers referenced */
	struct dfq_value *values;
	int nvalues;
	/* PART_NODES: a deep copy, owned */
	struct dfq_node *nodes;
	int nnodes;
	/* PART_LAYERS: buffers referenced */
	struct dfq_layer *layers;
	int nlayers;
	/* PART_POINTS */
	struct dfq_apoint *points;
	int npoints;
	int *pov; /* g->nvalues entries */
	struct model_flags flags;
};

/* Open a transaction: an empty save in m->priv->txn.  DFQ_ERR_INTERNAL when
 * one is open already. */
dfq_status model_txn_open(struct dfq_model *m, struct dfq_error *err);
/* Exchange every part s holds with the model's (no allocation). */
void model_save_swap(struct dfq_model *m, struct model_save *s);
/* Free a save and drop its references. */
void model_save_free(struct model_save *s);
/* The model's scalar state. */
void model_flags_get(const struct dfq_model *m, struct model_flags *f);

/* Before the open transaction first changes a part, save it.  Outside a
 * transaction these do nothing (the change is not recorded). */
dfq_status model_cow_values(struct dfq_model *m, struct dfq_error *err);
dfq_status model_cow_nodes(struct dfq_model *m, struct dfq_error *err);
dfq_status model_cow_layers(struct dfq_model *m, struct dfq_error *err);
dfq_status model_cow_points(struct dfq_model *m, struct dfq_error *err);

/* The data of value vi's initializer, safe to change: its part saved, and
 * the tensor cloned when it is shared. */
dfq_status model_writable_init(struct dfq_model *m, int vi, float **out, struct dfq_error *err);
/* Layer li, safe to change (its part saved); its buffers are still shared:
 * change them through model_writable_floats/_tensor. */
dfq_status model_writable_layer(struct dfq_model *m, int li, struct dfq_layer **out,
                                struct dfq_error *err);
/* *p (an rc block of n floats) or *t, private to the model: copied when shared. */
dfq_status model_writable_floats(float **p, int64_t n, struct dfq_error *err);
dfq_status model_writable_tensor(struct dfq_tensor **t, struct dfq_error *err);
/* Install new layers / points (+ value -> point map), taking them over; the
 * old ones go to the open transaction when it has not saved them yet, else
 * are freed.  Cannot fail. */
void model_replace_layers(struct dfq_model *m, struct dfq_layer *layers, int n);
void model_replace_points(struct dfq_model *m, struct dfq_apoint *pts, int n, int *pov);
/* Deep copy of n nodes (NULL on OOM); free with model_nodes_free. */
struct dfq_node *model_nodes_clone(const struct dfq_node *src, int n, struct dfq_error *err);
void model_nodes_free(struct dfq_node *nodes, int n);

/* --- model_pairs.c: consecutive layer pairs -------------------------------- */

struct pair {
	int l1, l2;
};
/* Layer pairs l1 -> (activation) -> l2 where l2 is the only reader of l1's
 * output and reads it as its data input, channels matching.  Caller frees. */
dfq_status model_find_pairs(const struct dfq_model *m, struct pair **out, int *nout,
                            struct dfq_error *err);

/* --- model_targets.c: layer names and target lists (public API only) -------- */

/* --- model_grids.c: activation grids ---------------------------------------- */

/* Recompute the data-free ranges and the run-time activation grids of every
 * point (saving the points first inside a transaction). */
dfq_status model_refresh(struct dfq_model *m, struct dfq_error *err);
/* The range a point's grid is made from (p->used), or NULL. */
const struct dfq_range *model_point_range(const struct dfq_apoint *p);

/* --- model_exec.c: executors ----------------------------------------------- */

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
/* The hook context for ex (created on first use). */
struct model_hook_ctx *model_hook_ctx_for(struct dfq_model *m, struct dfq_exec *ex,
                                          struct dfq_error *err);
/* The value hook: calls ctx->extra and stops the run when it asks to
 * (fake quantization is the executor's, set by dfq_model_exec_prepare). */
dfq_status model_hook(void *user, const struct dfq_graph *g, int vi, struct dfq_tensor *t,
                      struct dfq_error *err);
/* Leave ex with no hook, no overrides, no quantization and no given values. */
void model_exec_reset(struct dfq_exec *ex);
/* Free the hook contexts. */
void model_exec_free_ctxs(struct dfq_model *m);

/* --- model_layer.c: what a layer runs with --------------------------------- */

/* Fake-quantize w (layer L's geometry) with q into out (same shape; may
 * alias w); qp gets 1 or cout grids when not NULL. */
dfq_status model_quantize_w(const struct dfq_layer *L, const struct dfq_tensor *w,
                            const struct dfq_qconfig *q, struct dfq_tensor *out,
                            struct dfq_qparams *qp, struct dfq_error *err);
/* The quantization configuration a question about layer li's weights uses:
 * q when given (its bits checked), else the layer's own, an error when li is
 * out of range or the layer is not quantized.  *cfg borrows q or the layer's. */
dfq_status model_layer_qconfig(const struct dfq_model *m, int li, const struct dfq_qconfig *q,
                               const struct dfq_qconfig **cfg, struct dfq_error *err);
/* Recompute what layer li runs with after its weights, bias, quantization or
 * bias correction changed: the fake-quantized weights and the run-time
 * biases (copy-on-write). */
dfq_status model_layer_update(struct dfq_model *m, int li, struct dfq_error *err);

/* What changed about a layer, for model_layer_changed. */
enum model_change {
	CHANGED_WEIGHTS, /* its float weights (clip, equalization) */
	CHANGED_GRID,    /* its quantized weights: other bits, scheme or granularity */
	CHANGED_INPUT,   /* the statistics of its input (absorption, ReLU6 upstream) */
};
/* Layer li changed: drop the results made for it as it was, and count them
 * in r->ndropped (r may be NULL).  A bias correction is made for the weights,
 * their grid and the input's expected value: CHANGED_WEIGHTS and
 * CHANGED_INPUT drop the layer's correction, CHANGED_GRID its QUANT-mode
 * part.  Corrections measured on data (empirical) also saw every earlier
 * layer, so any change drops the empirical corrections of later layers.
 * Weight and input changes make measured data ranges stale. */
dfq_status model_layer_changed(struct dfq_model *m, int li, enum model_change what,
                               struct dfq_step_report *r, struct dfq_error *err);
/* Drop the empirical corrections of every layer (new activation ranges). */
dfq_status model_drop_empirical(struct dfq_model *m, struct dfq_step_report *r,
                                struct dfq_error *err);

/* --- model_discover.c: layers and activation points from the graph --------- */

/* (Re)discover layers and points from m->g, carrying over per-layer state
 * (matched by weight value) and data ranges (matched by value).  On failure
 * m is unchanged. */
dfq_status model_discover(struct dfq_model *m, struct dfq_error *err);

/* --- model_graph_edit.c: graph surgery ------------------------------------- */

/* Add a zero bias initializer to every Conv/Gemm layer node without one
 * (only when the model is created: no value is added later). */
dfq_status model_add_missing_biases(struct dfq_graph *g, struct dfq_error *err);
/* Remove the nodes flagged in kill (g->nnodes entries), keeping the order,
 * then re-finalize the graph and rediscover the model. */
dfq_status model_remove_nodes(struct dfq_model *m, const bool *kill, struct dfq_error *err);
/* Turn node ni (a Clip) into a Relu reading its first input. */
dfq_status model_clip_to_relu(struct dfq_model *m, int ni, struct dfq_error *err);
/* Re-finalize the graph after an edit and rediscover the model. */
dfq_status model_refinalize(struct dfq_model *m, struct dfq_error *err);

/* --- model_history.c: transactions, undo, redo ------------------------------ */

struct model_record {
	struct model_save *save; /* owned */
	char *label;             /* owned */
	double seconds;
	time_t when;
	int *touched; /* owned, layer indices */
	int ntouched;
	void *tag; /* the caller's, freed with tag_free */
	void (*tag_free)(void *);
};

struct model_history {
	struct model_record *rec; /* owned, n entries */
	int n, cap;
	int applied; /* rec[0..applied) are applied; the rest undone */
};
void model_history_free(struct model_history *h);

/* --- model_settings.c: range source, n-std, input ranges (public API only) -- */

/* --- model_hist.c: quantization error histograms (public API only) ------- */

/* --- model_analysis.c: sensitivity and compare (public API only, dfq_analysis.h) */
/* --- model_bccheck.c: biascorr --check, predicted against measured (public API only) */

/* --- model_step.c: the frame a step runs in -------------------------------- */

/* A step opens a transaction of its own when the caller has not opened one. */
struct model_step {
	bool own; /* this step opened the transaction */
};
/* Open a step, and start its report r (may be NULL) for step (DFQ_STEP_*). */
dfq_status model_step_open(struct dfq_model *m, struct model_step *s, struct dfq_step_report *r,
                           unsigned step, struct dfq_error *err);
/* End of a step with status st: when OK, refresh the grids and (own
 * transaction) record it as label; on failure (own transaction) roll back,
 * so the model is as it was.  Inside the caller's transaction a failure is
 * left to the caller to roll back.  Returns the final status. */
dfq_status model_step_close(struct dfq_model *m, struct model_step *s, dfq_status st,
                            const char *label, struct dfq_error *err);
/* The end of a step that built report r: close, and on success count r's
 * rows (the step then writes its summary and hands r over); on failure free r. */
dfq_status model_step_finish(struct dfq_model *m, struct model_step *s, dfq_status st,
                             const char *label, struct dfq_step_report *r, struct dfq_error *err);

/* --- model.c: creation, freeing, queries (public API only) ----------------- */

/* ===========================================================================
 * the model's private part
 * ======================================================================== */

struct dfq_model_priv {
	int *point_of_value; /* owned, g->nvalues entries: point index or -1 */
	int npov;
	struct dfq_measure_opts mopts;
	struct model_hook_ctx **ctxs; /* owned (each and the array) */
	int nctxs;
	struct dfq_range *given; /* owned, g->ninputs entries: caller-set input ranges */
	int ngiven;
	struct model_save *txn; /* the open transaction, or NULL */
	struct timespec txn_t0; /* when it was opened */
	struct model_history hist;
};

#endif
