/* dfq_model.h - a loaded graph seen as DFQ layers, and every DFQ step on it.
 *
 * A "layer" is a Conv, Gemm or MatMul node whose weight is an initializer,
 * with the BatchNormalization that follows it (until `fold`) and its
 * activation (Relu, Clip(0,6) = ReLU6 in attribute or input form, or none).
 * See docs/algorithms.md for the math of every step.
 *
 * Ownership: struct dfq_model owns its graph (m->g), its layers, activation
 * points and everything they point to.  Callers read the public fields and
 * never change them; they change the model only through the functions below.
 * Executors are created by the caller over m->g (dfq_exec_new(m->g, ...)),
 * borrow it, and stay valid across every step: steps edit the graph in place
 * (node indices may change after fold/relu6-to-relu, value indices never do).
 *
 * Every step is a transaction (see "Step history" below): it changes the
 * model copy-on-write, and a step that fails, out of memory included, leaves
 * the model as it was.  Every step fills a struct dfq_step_report (rows per
 * layer or per pair, with numbers before/after) that the caller prints and
 * frees with dfq_step_report_free().
 *
 * Two ways to run the model on an executor:
 *   FP32  - the graph's float master weights; layer biases plus the FP32 part
 *           of bias correction (only clipped layers have one);
 *   QUANT - fake quantization: each quantized layer's weights replaced by
 *           their fake-quantized copy (computed once per change, held by the
 *           layer) through dfq_exec_set_override(); biases plus the quantized
 *           model's bias correction (bbits 8 or 16: fake-quantized); activations
 *           fake-quantized by the exec value hook at the enabled activation
 *           points (model input, outputs of quantized layers after their
 *           activation, Add, Concat, pooling nodes) with the current ranges.
 * The graph itself always holds FP32 master weights. */
#ifndef DFQ_MODEL_H
#define DFQ_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "dfq_error.h"
#include "dfq_exec.h"
#include "dfq_graph.h"
#include "dfq_quant.h"
#include "dfq_tensor.h"

struct dfq_model;

/* ---------------------------------------------------------------------------
 * Layers
 * ------------------------------------------------------------------------- */

typedef enum dfq_act {
	DFQ_ACT_NONE = 0,
	DFQ_ACT_RELU,
	DFQ_ACT_RELU6, /* Clip(0, 6) */
} dfq_act;

/* "none" / "relu" / "relu6". */
const char *dfq_act_name(dfq_act a);

/* Steps applied to a layer (bitmask in struct dfq_layer.steps). */
enum dfq_step {
	DFQ_STEP_FOLD = 1u << 0,     /* its BatchNormalization was folded in */
	DFQ_STEP_RELU6 = 1u << 1,    /* its ReLU6 was replaced by ReLU */
	DFQ_STEP_CLIP = 1u << 2,     /* clip_weight */
	DFQ_STEP_EQUALIZE = 1u << 3, /* cross-layer equalization (as layer 1 or 2) */
	DFQ_STEP_ABSORB = 1u << 4,   /* high-bias absorption (as layer 1 or 2) */
	DFQ_STEP_QUANTIZE = 1u << 5, /* weights fake-quantized */
	DFQ_STEP_BIASCORR = 1u << 6, /* bias correction */
};
#define DFQ_STEP_COUNT 7

/* Short name of one step bit ("fold", "relu6", "clip", "equalize", "absorb",
 * "quantize", "biascorr"); "?" for anything else. */
const char *dfq_step_name(unsigned step);
/* Comma-separated names of the bits in mask ("-" when none) into buf; returns buf. */
char *dfq_steps_str(unsigned mask, char *buf, size_t len);

/* Quantization configuration of a layer (and of quantize requests). */
struct dfq_qconfig {
	int wbits;          /* weights: 2..16 */
	int abits;          /* output activation: 2..16, 0 = keep it float */
	int bbits;          /* bias: 0 = float, 8 or 16 (own min/max grid), 32 = INT32
	                     * as hardware does (its rounding error, at most half of
	                     * s_w s_x, is far below the output's grid: kept float) */
	dfq_qscheme scheme; /* weights and activations: asymmetric or symmetric */
	bool per_channel;   /* weights: a grid per output channel */
};

/* Defaults: W8 A8, float bias, asymmetric, per tensor. */
void dfq_qconfig_default(struct dfq_qconfig *q);

/* Mixed precision: what a layer is pinned to by the `float` and `bits` steps
 * (dfq_model_pin).  A pin is part of the layer's state (undo and redo restore
 * it) and outlives a later quantize: quantize skips a layer pinned float and
 * gives a layer with pinned bits those bits instead of the request's. */
enum dfq_pin_what {
	DFQ_PIN_FLOAT = 1u << 0, /* kept in FP32 */
	DFQ_PIN_WBITS = 1u << 1, /* its own weight bits (wbits) */
	DFQ_PIN_ABITS = 1u << 2, /* its own output activation bits (abits, 0 = float) */
};
struct dfq_pin {
	unsigned what; /* DFQ_PIN_* bits, 0 = not pinned; FLOAT goes alone */
	int wbits;     /* with DFQ_PIN_WBITS: 2..16 */
	int abits;     /* with DFQ_PIN_ABITS: 0 or 2..16 */
};

/* A layer's buffers (names, statistics, grids, corrections, tensors) are
 * shared with the step history's earlier versions of the model: read them,
 * never change them (the model changes them copy-on-write). */
struct dfq_layer {
	int index;         /* position in m->layers: 0-based, topological order */
	char *name;        /* owned: the Conv/Gemm/MatMul node's name */
	char *alias;       /* owned: weight name without ".weight" (e.g. "features.0.0"),
	                    * or a copy of name when the weight has no such name */
	int node;          /* index of the Conv/Gemm/MatMul node in m->g->nodes */
	dfq_op op;         /* DFQ_OP_CONV, DFQ_OP_GEMM or DFQ_OP_MATMUL */
	int w_vi;          /* weight value (initializer) */
	int b_vi;          /* bias value (initializer), -1 when the layer has none */
	int bias_add_node; /* MatMul + Add(bias): the Add node, else -1 */
	int bn_node;       /* BatchNormalization node, -1 when none (or folded) */
	int act_node;      /* Relu/Clip node of the activation, -1 when none */
	dfq_act act;
	int in_vi;  /* input activation value */
	int lin_vi; /* linear output: after BN (if any), before the activation */
	int out_vi; /* output: after the activation (== lin_vi when none) */

	/* geometry: element (o, i, k) of W, o an output channel, i an input
	 * channel within o's group (0 <= i < cin / group), k in [0, ksize), sits
	 * at o * w_ostride + i * w_istride + k */
	int64_t cout, cin; /* output and input channels (cin over all groups) */
	int64_t group;     /* Conv group (1 for Gemm/MatMul) */
	int64_t ksize;     /* product of kernel dims (1 for Gemm/MatMul) */
	int64_t w_ostride, w_istride;
	bool depthwise; /* group == cin (one input channel per group; cout may be a
	                 * multiple of cin) */

	/* Statistics of the linear output, from its BatchNormalization (kept
	 * through folding, rescaled by equalization, shifted by absorption):
	 * channel c ~ N(beta[c], gamma[c]^2).  NULL when the model came without BN. */
	bool has_stats;
	float *gamma, *beta; /* owned, cout each, or NULL */

	unsigned steps;        /* DFQ_STEP_* bits applied so far */
	bool editable;         /* false: weight or bias shared with another node */
	const char *why_fixed; /* static text: why not editable, or NULL */

	/* quantization state */
	bool quantized; /* q below is in force */
	struct dfq_qconfig q;
	struct dfq_tensor *wq;   /* owned: fake-quantized weights (W's shape) or NULL */
	struct dfq_qparams *wqp; /* owned: weight grids (1 or cout entries) or NULL */
	int nwqp;
	struct dfq_pin pin; /* mixed precision: kept float or its own bits (see above) */

	/* bias correction (docs/algorithms.md, "Bias correction"): per output
	 * channel amounts added to the bias in each run mode; NULL when none */
	float *bcorr_q;       /* owned, cout: added in QUANT mode */
	float *bcorr_fp;      /* owned, cout: added in FP32 mode (clip correction) */
	bool bcorr_empirical; /* bcorr_q was measured on data (it then depends on
	                       * every earlier layer as it was) */
	/* clip_weight keeps the weights before the first clip: the reference
	 * bias correction compares against (owned, W's shape, or NULL) */
	struct dfq_tensor *w_ref;
	/* run-time bias tensors built from the above (owned, or NULL when the
	 * plain bias initializer is used) */
	struct dfq_tensor *b_run_q, *b_run_fp;
};

/* The configuration a quantize with q gives layer L: q with L's pinned bits
 * in out.  False when L is pinned float (quantize leaves it alone). */
bool dfq_layer_pinned_qconfig(const struct dfq_layer *L, const struct dfq_qconfig *q,
                              struct dfq_qconfig *out);

/* Numbers for the layer table, computed from the current weights. */
struct dfq_layer_info {
	float wmin, wmax; /* of W */
	float rmin, rmax; /* smallest and largest per-output-channel range (max - min) */
	double spread;    /* rmax / rmin: +inf when some channel is constant and another not,
	                   * 1 when all are constant */
	bool has_act_range;
	float act_lo, act_hi; /* range of the output activation quantizer in use */
	int wbits, abits;     /* 0 when not quantized */
	int64_t nparams;      /* elements of W (+ bias) */
};
dfq_status dfq_model_layer_info(const struct dfq_model *m, int li, struct dfq_layer_info *out,
                                struct dfq_error *err);
/* The range of layer li's output activation quantizer in use (cheap: no
 * pass over the weights); false when it has none. */
bool dfq_model_layer_act_range(const struct dfq_model *m, int li, float *lo, float *hi);

/* Per output channel min and max of the current weights (lo, hi: cout each,
 * caller's arrays), e.g. for a per-channel range chart. */
dfq_status dfq_model_channel_ranges(const struct dfq_model *m, int li, float *lo, float *hi,
                                    struct dfq_error *err);
/* The same of weights w of layer li's shape (NULL: the current ones), e.g.
 * from dfq_model_weights_before(). */
dfq_status dfq_model_channel_ranges_of(const struct dfq_model *m, int li,
                                       const struct dfq_tensor *w, float *lo, float *hi,
                                       struct dfq_error *err);

/* ---------------------------------------------------------------------------
 * Activation points (QuantMeasure)
 * ------------------------------------------------------------------------- */

typedef enum dfq_apoint_kind {
	DFQ_APOINT_INPUT = 0, /* a model input */
	DFQ_APOINT_LAYER,     /* a layer's output, after its activation */
	DFQ_APOINT_ADD,       /* an Add (after a directly following Relu/ReLU6, fused) */
	DFQ_APOINT_CONCAT,
	DFQ_APOINT_POOL, /* MaxPool, AveragePool, GlobalAveragePool */
} dfq_apoint_kind;
const char *dfq_apoint_kind_name(dfq_apoint_kind k);

/* Where a point's range comes from. */
typedef enum dfq_range_src {
	DFQ_RANGE_BN = 0,     /* data-free, from BatchNorm statistics (n-sigma rule) */
	DFQ_RANGE_MINMAX,     /* data: the seed's QuantMeasure (momentum-averaged
	                       * per-sample min/max means) */
	DFQ_RANGE_GLOBAL,     /* data: plain min/max over everything seen */
	DFQ_RANGE_PERCENTILE, /* data: mean over batches of the batch percentiles */
	DFQ_RANGE_GIVEN,      /* set by the caller (model input) */
	DFQ_RANGE_NONE,
} dfq_range_src;
/* "bn", "minmax", "global", "percentile", "given", "none". */
const char *dfq_range_src_name(dfq_range_src s);
/* Parse "bn"/"minmax"/"global"/"percentile"; DFQ_ERR_ARG otherwise. */
dfq_status dfq_range_src_parse(const char *s, dfq_range_src *out, struct dfq_error *err);

struct dfq_range {
	bool valid;
	float lo, hi;
};

struct dfq_apoint {
	int vi; /* the quantized value (its name: m->g->values[vi].name) */
	dfq_apoint_kind kind;
	int layer;                  /* layer index for LAYER points, else -1 */
	dfq_act act;                /* activation folded into this point (clips the BN range) */
	struct dfq_range bn;        /* data-free: from BN statistics (invalid: none upstream) */
	struct dfq_range given;     /* set by the caller (only model inputs) */
	struct dfq_range minmax;    /* data: running mean of per-sample min/max (momentum) */
	struct dfq_range global;    /* data: global min/max */
	struct dfq_range pct;       /* data: mean over batches of the percentile pair */
	int64_t nbatches, nsamples; /* data seen */
	/* run-time quantizer (QUANT mode), refreshed after every change */
	bool enabled; /* quantized at run time */
	int bits;
	dfq_range_src used; /* which range the grid was made from */
	struct dfq_qparams qp;
};

/* ---------------------------------------------------------------------------
 * The model
 * ------------------------------------------------------------------------- */

struct dfq_model_priv;

struct dfq_model {
	struct dfq_graph *g; /* owned; executors borrow it */
	int nlayers;
	struct dfq_layer *layers; /* owned */
	int npoints;
	struct dfq_apoint *points; /* owned, in topological order, inputs first */
	bool has_stats;            /* some layer has BN statistics */
	bool folded;               /* no BatchNormalization left after a layer */

	/* settings (change them through the setters) */
	dfq_range_src range_src;     /* default DFQ_RANGE_BN */
	double n_sigma;              /* BN ranges: beta +- n |gamma|, default 6 */
	struct dfq_qconfig aux_q;    /* bits/scheme of INPUT/ADD/CONCAT/POOL points */
	bool aux_enabled;            /* those points are quantized in QUANT mode */
	bool data_stale;             /* data ranges were measured before the last change
	                              * of the function's intermediate values */
	struct dfq_model_priv *priv; /* owned, internal */
};

/* Wrap a finalized graph.  On success the model owns g; on failure g is
 * still the caller's (unchanged, except after running out of memory, when
 * zero biases may have been added).  Discovers layers and activation points,
 * copies BN statistics and computes the data-free ranges.  Every Conv/Gemm
 * layer without a bias gets a zero bias initializer ("<weight>.bias"), so
 * that no step ever adds a tensor later: create executors after this call
 * (they size their override tables by the value count).
 * Executors prepared by the model (dfq_model_exec_prepare/run) point into
 * it: reset them (hook NULL, overrides cleared) or free them before
 * dfq_model_free(). */
struct dfq_model *dfq_model_new(struct dfq_graph *g, struct dfq_error *err);
void dfq_model_free(struct dfq_model *m);

/* Index of the layer named name (node name or alias, exact), or -1. */
int dfq_model_find_layer(const struct dfq_model *m, const char *name);

/* Parse target specs into sel (m->nlayers entries, caller's array, cleared
 * first).  Each spec: "all", a layer index "3", a range "3-7", a name (node
 * name or alias), or a comma-separated list of these ("1,4,conv9").
 * DFQ_ERR_ARG naming the unknown layer and suggesting a close name when
 * there is one. */
dfq_status dfq_model_parse_targets(const struct dfq_model *m, int nspecs, const char *const *specs,
                                   bool *sel, struct dfq_error *err);

/* ---------------------------------------------------------------------------
 * Step history
 *
 * Every change of the model is a transaction, recorded as one entry of the
 * history when it succeeds.  A step called on its own is one transaction;
 * several calls make one entry between dfq_model_begin() and
 * dfq_model_commit() (e.g. fold, then quantize: one command).  Inside such a
 * transaction a failing step leaves the model as it found it only after
 * dfq_model_rollback(), which the caller must then call.
 *
 * An entry keeps only what its transaction replaced (the weights, layers,
 * activation ranges or graph structure it changed), sharing everything else
 * with the model.  Undo and redo exchange those parts back and forth: the
 * model is restored exactly.  Settings (range source, n-std, input ranges)
 * are not steps and stay as they are; the activation grids are recomputed
 * for them after an undo or redo.  Executors must be prepared again
 * (dfq_model_exec_prepare, done by dfq_model_run) after any change.
 * ------------------------------------------------------------------------- */

/* Open a transaction.  DFQ_ERR_INTERNAL when one is open already. */
dfq_status dfq_model_begin(struct dfq_model *m, struct dfq_error *err);
/* Record the open transaction as a history entry labelled label (copied;
 * e.g. the command as typed), dropping the undone entries after the
 * current position (redo is no longer possible).  tag (may be NULL) is the
 * caller's, kept with the entry and freed with tag_free (may be NULL) when
 * the entry goes.  On failure (out of memory) the transaction stays open
 * and tag stays the caller's: roll back. */
dfq_status dfq_model_commit(struct dfq_model *m, const char *label, void *tag,
                            void (*tag_free)(void *), struct dfq_error *err);
/* Undo everything the open transaction changed and close it.  Cannot fail. */
void dfq_model_rollback(struct dfq_model *m);
/* True while a transaction is open. */
bool dfq_model_in_transaction(const struct dfq_model *m);

/* Undo the last n applied entries (fewer when there are fewer); *done gets
 * how many were undone.  On failure (out of memory recomputing the grids)
 * nothing changed. */
dfq_status dfq_model_undo(struct dfq_model *m, int n, int *done, struct dfq_error *err);
/* Redo the next n undone entries, as dfq_model_undo. */
dfq_status dfq_model_redo(struct dfq_model *m, int n, int *done, struct dfq_error *err);

/* The weights of layer li as they were before the last applied step that
 * changed them, with that step's index in *step (may be NULL): a reference
 * the caller drops with dfq_tensor_free(), read-only.  When that step also
 * folded the layer's BatchNorm (a command that folds first), the weights
 * come with the BatchNorm folded in, so that they compare with the ones the
 * step made (the form of the paper's Figure 2).  NULL (and *step -1) when no
 * applied step changed them. */
struct dfq_tensor *dfq_model_weights_before(const struct dfq_model *m, int li, int *step);
/* What those weights are, as an identity to cache views by (no allocation):
 * it changes when they would.  NULL when there are none. */
const void *dfq_model_weights_before_id(const struct dfq_model *m, int li, int *step);

struct dfq_history_entry {
	const char *label;  /* borrowed from the model */
	bool applied;       /* false: undone (redo brings it back) */
	time_t when;        /* when it was recorded */
	double seconds;     /* how long the transaction took */
	int ntouched;       /* layers it changed */
	const int *touched; /* their indices, ascending (borrowed) */
	void *tag;          /* the caller's */
};
/* Entries in the history, applied ones first (the rest are undone). */
int dfq_model_history_count(const struct dfq_model *m);
int dfq_model_history_applied(const struct dfq_model *m);
/* Entry i (0 = the oldest).  DFQ_ERR_ARG when there is none. */
dfq_status dfq_model_history_entry(const struct dfq_model *m, int i, struct dfq_history_entry *out,
                                   struct dfq_error *err);

/* ---------------------------------------------------------------------------
 * Step reports
 * ------------------------------------------------------------------------- */

struct dfq_step_row {
	int layer;    /* the layer (layer 1 of a pair) */
	int layer2;   /* layer 2 of a pair, -1 for per-layer rows */
	bool changed; /* false: skipped (note says why) */
	/* Meaning per step (documented at each step function). */
	double before, after;
	double before2, after2;
	double extra;
	char note[160]; /* what was done or why it was skipped */
};

struct dfq_step_report {
	unsigned step; /* DFQ_STEP_* (0 for measure) */
	int nrows;
	struct dfq_step_row *rows; /* owned */
	int nchanged, nskipped;
	int rounds;        /* equalize: rounds run */
	double last_delta; /* equalize: mean |dW| of the last round */
	bool has_stats;    /* fold/absorb/biascorr: BN statistics were available */
	int64_t samples;   /* measure data, empirical biascorr: samples seen */
	int ndropped;      /* layers whose bias correction this step dropped: it was
	                    * made for weights, grids or inputs the step changed */
	char summary[256]; /* one line for the user */
};
void dfq_step_report_init(struct dfq_step_report *r);
/* Free the rows and re-init; r itself is the caller's. */
void dfq_step_report_free(struct dfq_step_report *r);

/* ---------------------------------------------------------------------------
 * Steps.  sel: m->nlayers flags from dfq_model_parse_targets(), NULL = all.
 * rep may be NULL.  On error nothing changed (inside a transaction opened
 * with dfq_model_begin: roll it back).
 * ------------------------------------------------------------------------- */

/* Fold every BatchNormalization that follows a layer (sec. 5): W'[o] = W[o] s_o,
 * b' = (b - mu) s + beta with s = gamma / sqrt(var + eps); the BN node is
 * removed and the layer's output takes over its output tensor; gamma/beta
 * stay as the layer's statistics.  A model without BN is not an error:
 * rep->has_stats = false and the summary says so.
 * Rows (per layer with BN): before/after = max |W| before/after, extra = the
 * largest |s|. */
dfq_status dfq_model_fold(struct dfq_model *m, struct dfq_step_report *rep, struct dfq_error *err);

/* Replace each selected layer's Clip(0,6) by Relu (the paper's "Replace
 * ReLU6").  Rows: before = 6, after = +inf (the activation's upper bound),
 * extra = the data-measured max of the output if known (else NaN). */
dfq_status dfq_model_relu6_to_relu(struct dfq_model *m, const bool *sel,
                                   struct dfq_step_report *rep, struct dfq_error *err);

/* clip_weight: W <- clamp(W, lo, hi) (sec. 4; BN must be folded first).
 * Rows: before/after = min W, before2/after2 = max W, extra = number of
 * weights clipped. */
dfq_status dfq_model_clip(struct dfq_model *m, const bool *sel, float lo, float hi,
                          struct dfq_step_report *rep, struct dfq_error *err);

/* Which layer pairs equalization chains: THROUGH pairs a layer with no
 * activation (a linear projection) with the layer it feeds, as the paper
 * allows; STOP_LINEAR ends a chain at such a layer (only pairs with a ReLU or
 * PReLU-like activation between are equalized). */
typedef enum dfq_eq_chains {
	DFQ_EQ_CHAINS_THROUGH = 0,
	DFQ_EQ_CHAINS_STOP_LINEAR,
} dfq_eq_chains;

struct dfq_equalize_opts {
	dfq_qscheme range;    /* ASYM (default): max - min; SYM: 2 max |w| (the paper's) */
	dfq_eq_chains chains; /* default STOP_LINEAR */
	int max_rounds;       /* default 20 */
	double tol;           /* stop when the mean |dW| of a round is below: 2e-7 */
};
void dfq_equalize_opts_default(struct dfq_equalize_opts *o);

/* Cross-layer equalization (sec. 6) of every eligible pair that has a
 * selected layer, iterated over all those pairs until converged.  Refuses
 * (DFQ_ERR_ARG, naming the layer) when a pair has ReLU6 between, or a layer
 * still has its BatchNormalization.  Rows per pair: before/after = range
 * spread of layer 1 (over output channels), before2/after2 = that of layer 2,
 * extra = the largest |log2 s_i| of the pair's total scaling. */
dfq_status dfq_model_equalize(struct dfq_model *m, const bool *sel,
                              const struct dfq_equalize_opts *opts, struct dfq_step_report *rep,
                              struct dfq_error *err);

/* High-bias absorption (sec. 7) for pairs layer1 -> ReLU -> layer2 whose
 * layer 1 is selected: c = max(0, beta - n_std |gamma|) (n_std 3 in the
 * paper; <= 0 means 3).  Rows per pair: before/after = max_c (beta_c + n_sigma
 * |gamma_c|) of layer 1 (the top of its data-free range), before2/after2 =
 * max |b2| of layer 2, extra = channels absorbed. */
dfq_status dfq_model_absorb(struct dfq_model *m, const bool *sel, double n_std,
                            struct dfq_step_report *rep, struct dfq_error *err);

/* Quantize the selected layers with q: weights fake-quantized once (and
 * again whenever a later step changes them), output activation bits set.
 * Pins win (dfq_model_pin): a layer pinned float is skipped (a row not
 * changed), a layer with pinned bits gets q with those bits; the summary
 * counts both.
 * When every layer is selected the auxiliary points (input, Add, Concat,
 * pools) take q's abits and scheme too.  Needs BN folded in those layers.
 * Rows: before = weight SQNR dB before (NaN when it was float), after =
 * weight SQNR dB now, extra = max |Q(W) - W|. */
dfq_status dfq_model_quantize(struct dfq_model *m, const bool *sel, const struct dfq_qconfig *q,
                              struct dfq_step_report *rep, struct dfq_error *err);

/* Back to float for the selected layers (all of them: aux points too).
 * Rows: extra = the wbits the layer had. */
dfq_status dfq_model_dequantize(struct dfq_model *m, const bool *sel, struct dfq_step_report *rep,
                                struct dfq_error *err);

/* Mixed precision, as one step: pin the selected layers (see struct dfq_pin).
 *   FLOAT: keep them in FP32; a quantized one goes back to float now.
 *   WBITS and/or ABITS: their own bits; a quantized one is quantized again
 *     now with them (the rest of its configuration as it was); a float one
 *     keeps the pin until a quantize covers it (nothing is quantized now).
 *   what 0: drop their pins (the layers stay as they are).
 * A new pin replaces the layer's old one.  DFQ_ERR_ARG on bad bits or FLOAT
 * with bits.  Rows: before = wbits before (0: float), after = wbits after,
 * extra = abits after (NaN when float). */
dfq_status dfq_model_pin(struct dfq_model *m, const bool *sel, const struct dfq_pin *pin,
                         struct dfq_step_report *rep, struct dfq_error *err);

/* Bits/scheme of the auxiliary activation points; bits 0 turns them off. */
dfq_status dfq_model_set_aux_quant(struct dfq_model *m, int bits, dfq_qscheme scheme,
                                   struct dfq_error *err);

/* ---------------------------------------------------------------------------
 * QuantMeasure: activation ranges
 * ------------------------------------------------------------------------- */

/* Which range quantizes the activations (falls back, per point, to the
 * given range, then data min/max, then BN when the chosen one is missing). */
dfq_status dfq_model_set_range_source(struct dfq_model *m, dfq_range_src src,
                                      struct dfq_error *err);
/* n of the data-free rule beta +- n |gamma| (> 0; default 6); recomputes. */
dfq_status dfq_model_set_n_sigma(struct dfq_model *m, double n, struct dfq_error *err);
/* The range of model input i (e.g. from the data normalisation). */
dfq_status dfq_model_set_input_range(struct dfq_model *m, int input, float lo, float hi,
                                     struct dfq_error *err);
/* Forget it again (e.g. other data whose range is not known). */
dfq_status dfq_model_clear_input_range(struct dfq_model *m, int input, struct dfq_error *err);

/* Recompute the data-free ranges (done automatically after every step; this
 * only fills a report).  Rows per point: layer = point index, before/after =
 * lo/hi of the BN range (NaN when none), extra = its width. */
dfq_status dfq_model_measure_bn(struct dfq_model *m, struct dfq_step_report *rep,
                                struct dfq_error *err);

struct dfq_measure_opts {
	double momentum;   /* 0.1: running = momentum * running + (1 - momentum) * batch,
	                    * the seed's QuantMeasure; the first batch initialises */
	double percentile; /* e.g. 99.99: lo/hi at (100 - p)% and p% of each batch */
};
void dfq_measure_opts_default(struct dfq_measure_opts *o);

/* Batch source for data-driven steps: set *x to batch number index (0, 1,
 * ...; borrowed by the model until the next call) or to NULL when there
 * are no more.  The same index must give the same batch every time: the
 * model makes several passes. */
typedef dfq_status (*dfq_batch_fn)(void *user, int64_t index, const struct dfq_tensor **x,
                                   struct dfq_error *err);

/* QuantMeasure from data, as one step: forget the data ranges, then run
 * every batch next() gives (model input 0; the model must have one input)
 * in FP32 mode on ex (an executor over m->g, left with no hook and no
 * overrides) and fold each point's min/max into its data ranges (opts NULL:
 * defaults).  Empirical bias corrections are dropped: they were measured
 * with the grids of the old ranges.  No rows; rep->samples = samples seen. */
dfq_status dfq_model_measure_data(struct dfq_model *m, struct dfq_exec *ex,
                                  const struct dfq_measure_opts *opts, dfq_batch_fn next,
                                  void *user, struct dfq_step_report *rep, struct dfq_error *err);

/* ---------------------------------------------------------------------------
 * Running the model
 * ------------------------------------------------------------------------- */

typedef enum dfq_run_mode {
	DFQ_RUN_FP32 = 0,
	DFQ_RUN_QUANT,
} dfq_run_mode;

/* Configure ex (an executor over m->g) for mode: overrides (weights, biases)
 * and the activation hook.  The exec hook never sees graph inputs, so the
 * model input quantizer is applied by dfq_model_run() only: prefer it.
 * The configuration refers to the model's current tensors: prepare again
 * after any step. */
dfq_status dfq_model_exec_prepare(struct dfq_model *m, struct dfq_exec *ex, dfq_run_mode mode,
                                  struct dfq_error *err);

/* Prepare ex for mode and run it: inputs borrowed (never modified: in QUANT
 * mode a quantized copy of an enabled input is fed), outputs new (caller
 * owns), as dfq_exec_run(). */
dfq_status dfq_model_run(struct dfq_model *m, struct dfq_exec *ex, dfq_run_mode mode,
                         struct dfq_tensor *const *inputs, struct dfq_tensor **outputs,
                         struct dfq_error *err);

/* ---------------------------------------------------------------------------
 * Bias correction (sec. 8)
 * ------------------------------------------------------------------------- */

/* Analytic (data-free): for each selected layer whose input has BN
 * statistics upstream, E[x_c] from the clipped-normal model and
 *   bcorr_q[o]  = -sum_c (sum_k (W_q - W_ref)[o,c,k]) E[x_c]   (QUANT mode)
 *   bcorr_fp[o] = -sum_c (sum_k (W - W_ref)[o,c,k]) E[x_c]     (FP32, clipped layers)
 * where W_q is the fake-quantized weights (W when not quantized) and W_ref
 * the weights before clipping (W when never clipped).  Replaces any earlier
 * correction.  Rows: before = max_o |expected output error| without
 * correction, after = with it (only bias quantization remains), extra =
 * max |correction|. */
dfq_status dfq_model_biascorr_analytic(struct dfq_model *m, const bool *sel,
                                       struct dfq_step_report *rep, struct dfq_error *err);

/* Empirical: mean over the batches of (y_fp32 - y_quant) per output channel
 * at each selected layer's linear output, added to its QUANT-mode bias,
 * layer by layer in topological order (each layer is measured with the
 * earlier ones already corrected).  One FP32 pass plus one (truncated)
 * QUANT pass per layer over all batches.  ex: an executor over m->g, left
 * with no hook and no overrides.  Rows: before = max |mean error| before,
 * after = max |correction| added, extra = samples seen. */
dfq_status dfq_model_biascorr_empirical(struct dfq_model *m, struct dfq_exec *ex, const bool *sel,
                                        dfq_batch_fn next, void *user, struct dfq_step_report *rep,
                                        struct dfq_error *err);

/* What the analytic bias correction predicts against what the data show
 * (`biascorr --check`), per layer: eps = Q(W) - W_ref (the weight error the
 * correction removes) and x the layer's real FP32 input. */
struct dfq_bccheck_layer {
	int layer;
	bool checked;   /* false: note says why not */
	char note[160];
	int64_t cout, cin;
	double *pred;    /* cout: eps E[x], E[x] from the BN statistics (what biascorr
	                  * subtracts from the bias) */
	double *meas;    /* cout: mean over data and output positions of eps * x */
	double *pred_mx; /* cout: eps E[x] with E[x] measured (no padding borders) */
	double *ex_pred, *ex_meas; /* cin: E[x] per input feature, predicted, measured */
	double corr, ratio;        /* Pearson corr(pred, meas) over channels, |pred| / |meas| */
	double corr_mx, ratio_mx;  /* the same for pred_mx against meas */
	double ex_corr, ex_ratio;  /* corr(ex_pred, ex_meas), |ex_pred| / |ex_meas| */
	double resid;              /* |meas - pred| / |meas|: what the correction leaves */
	double left_sd;            /* rms(meas - pred) / rms(gamma): that against the output's
	                            * spread (NAN without BN statistics) */
};
struct dfq_bccheck {
	int n; /* entries: one per selected layer */
	struct dfq_bccheck_layer *layers;
	int64_t samples;
};
/* A query, not a step (the model is unchanged): run every batch next()
 * gives (model input 0) in FP32 mode on ex (left with no hook and no
 * overrides) and measure, for each selected quantized layer whose input has
 * BN statistics upstream, E[x] per input feature and the mean output shift
 * of its weight error given that input; compare with what the analytic
 * correction predicts from the BN statistics.  *out filled (free with
 * dfq_bccheck_free, also after an error). */
dfq_status dfq_model_biascorr_check(struct dfq_model *m, struct dfq_exec *ex, const bool *sel,
                                    dfq_batch_fn next, void *user, struct dfq_bccheck *out,
                                    struct dfq_error *err);
void dfq_bccheck_free(struct dfq_bccheck *c);

/* ---------------------------------------------------------------------------
 * Quantization error of a layer's weights (the seed's _quantize_error)
 * ------------------------------------------------------------------------- */

/* eps = Q(W) - W reduced as asked (*eps new, caller owns; eps may be NULL)
 * and its summary (st may be NULL).  q NULL: the layer's own configuration
 * (DFQ_ERR_ARG when it is not quantized). */
dfq_status dfq_model_weight_error(const struct dfq_model *m, int li, const struct dfq_qconfig *q,
                                  dfq_qerr_reduce reduce, struct dfq_tensor **eps,
                                  struct dfq_qerr_stats *st, struct dfq_error *err);

/* ---------------------------------------------------------------------------
 * Quantization error histograms (model_hist.c; docs/algorithms.md sec. 1-3)
 *
 * The error of a quantizer in units of its grid step, (Q(x) - x) / step, per
 * value (per-channel weight grids: each channel's own step).  Rounding alone
 * keeps it within [-0.5, 0.5], spread evenly when the values cover many steps;
 * a value beyond its grid's range is clamped to the end code ("clipped") and
 * lands outside, as far out as it was clipped.  The default bins cover
 * [-0.5, 0.5], so clipping and outliers show in the counts below and above.
 * ------------------------------------------------------------------------- */

#define DFQ_HIST_BINS_MAX 10000

struct dfq_hist_opts {
	int nbins;     /* 1..DFQ_HIST_BINS_MAX; default 20 */
	double lo, hi; /* the bins' range in grid steps, finite, lo < hi; default -0.5, 0.5 */
};
void dfq_hist_opts_default(struct dfq_hist_opts *o);

typedef enum dfq_hist_kind {
	DFQ_HIST_WEIGHTS = 0, /* a layer's weights: Q(W) - W */
	DFQ_HIST_ACT,         /* a layer's output activations on a batch: fq(y) - y */
} dfq_hist_kind;

/* A histogram of quantization errors and its figures.  The struct is the
 * caller's (e.g. on the stack); it owns counts, which dfq_hist_free()
 * releases.  Every function below that fills one first zeroes it, so after a
 * failure there is nothing to free (freeing is still safe), and a zeroed or
 * freed struct may be freed again. */
struct dfq_hist {
	dfq_hist_kind kind;
	int layer; /* the layer, or -1 (dfq_qerr_hist) */
	int bits;  /* of the grid(s) */
	dfq_qscheme scheme;
	bool per_channel; /* weights: a grid per output channel */
	int ngrids;       /* 1, or cout when per channel */
	double step;      /* the grid step (scale); per channel: the mean of the steps */
	double step_min, step_max;
	struct dfq_qparams grid;  /* the grid (per channel: channel 0's) */
	double grid_lo, grid_hi;  /* the values it spans: (qmin - zp) step .. (qmax - zp) step */
	struct dfq_qconfig q;     /* weights: the configuration used (zeroed otherwise) */
	int64_t samples;          /* act: samples in the batch (its axis 0); weights: 0 */
	int nbins;
	double lo, hi;         /* bin b covers [lo + b w, lo + (b + 1) w), w = (hi - lo) / nbins;
	                        * the last bin includes hi */
	int64_t *counts;       /* owned: nbins counts */
	int64_t below, above;  /* errors below lo, above hi */
	int64_t n;             /* values counted (bins + below + above) */
	int64_t clipped;       /* values outside their grid's range (clamped to an end) */
	int64_t exact;         /* values on the grid: error 0 (e.g. a ReLU's zeros) */
	double mean, rms;      /* of the error, in grid steps */
	double max_abs;        /* largest |error|, in grid steps */
	double sqnr_db;        /* 10 log10(sum x^2 / sum (Q(x) - x)^2), +inf when exact */
};
/* Free h->counts and zero *h (h may be NULL). */
void dfq_hist_free(struct dfq_hist *h);

/* The histogram of n values x against their quantized values xq (xq NULL:
 * computed here with dfq_fake_quant1) on ngrids grids: the values come in
 * ngrids consecutive blocks of n / ngrids (ngrids divides n), block g on
 * grids[g].  Unclipped values' errors are folded into [-0.5, 0.5] (float
 * rounding of Q(x) can exceed half a step by up to 2^-24 |code| steps).
 * o NULL: defaults.  DFQ_ERR_ARG on bad options or a NaN/Inf value. */
dfq_status dfq_qerr_hist(const float *x, const float *xq, int64_t n,
                         const struct dfq_qparams *grids, int ngrids,
                         const struct dfq_hist_opts *o, struct dfq_hist *h,
                         struct dfq_error *err);

/* The weight quantization error of layer li: Q(W) - W per weight over its
 * grid step.  q NULL: the layer's own configuration and quantized weights
 * (DFQ_ERR_ARG when it is not quantized); else what q would do (any layer,
 * float or quantized; only wbits, scheme and per_channel matter). */
dfq_status dfq_model_weight_hist(const struct dfq_model *m, int li, const struct dfq_qconfig *q,
                                 const struct dfq_hist_opts *o, struct dfq_hist *h,
                                 struct dfq_error *err);

/* The activation quantization error at layer li's output on batch x (fed
 * to model input 0; the model must have one input): the model runs in
 * QUANT mode on ex (an executor over m->g) up to that output, and each value
 * y of it, as the executor computes it before its fake quantization, gives
 * (fq(y) - y) / step on the output's grid.  DFQ_ERR_ARG when the output has
 * no grid: the layer is not quantized, keeps float activations (abits 0),
 * or its output has no range.  ex is left with no hook and no overrides. */
dfq_status dfq_model_act_hist(struct dfq_model *m, struct dfq_exec *ex, int li,
                              const struct dfq_tensor *x, const struct dfq_hist_opts *o,
                              struct dfq_hist *h, struct dfq_error *err);

#endif
