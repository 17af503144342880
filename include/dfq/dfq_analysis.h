/* dfq_analysis.h - where quantization error comes from: per-layer sensitivity and a
 * layer-by-layer comparison of the fake-quantized model against FP32.
 *
 * Both are queries: they run the model on data through an executor (prepared and
 * left reset, see model_exec) and never change the model.  Both stream the data in
 * batches and report progress through a callback that can stop them (Ctrl-C);
 * figures are accumulated in double.
 *
 * SQNR in dB: 10 log10(sum x^2 / sum (y - x)^2) over every value of every image,
 * x the FP32 value and y the other run's; +inf when the two are equal. */
#ifndef DFQ_ANALYSIS_H
#define DFQ_ANALYSIS_H

#include <stdbool.h>
#include <stdint.h>

#include "dfq_data.h"
#include "dfq_error.h"
#include "dfq_exec.h"
#include "dfq_model.h"

/* Called as work goes on: done of total images' worth of runs, seconds since
 * the start.  Return false to stop there (the result is then marked
 * cancelled and holds nothing). */
typedef bool (*dfq_analysis_progress_fn)(void *user, int64_t done, int64_t total, double seconds);

struct dfq_analysis_opts {
	int64_t n;                         /* the first n images of the slice; 0 = all */
	int64_t batch;                     /* images per run; 0 = DFQ_EVAL_DEFAULT_BATCH */
	dfq_data_split split;              /* DFQ_SPLIT_EVAL unless told otherwise */
	dfq_analysis_progress_fn progress; /* NULL or called after every run */
	void *user;                        /* passed to progress */
};
/* n = 0, batch = 0, the evaluation slice, no progress callback. */
void dfq_analysis_opts_default(struct dfq_analysis_opts *o);

/* SQNR in dB of sum x^2 over sum of squared errors (+inf when se2 is 0, NaN
 * when nothing was summed). */
double dfq_sqnr_from_sums(double sx2, double se2);

/* --- sensitivity ----------------------------------------------------------------- */

/* One layer quantized on its own, everything else FP32, three ways. */
enum dfq_sens_kind {
	DFQ_SENS_WEIGHTS = 0, /* only its weights fake-quantized (wbits, scheme, granularity) */
	DFQ_SENS_ACT,         /* only its output activation, on the grid quantize would give it */
	DFQ_SENS_BOTH,        /* both: the layer as quantize would make it */
	DFQ_SENS_KINDS
};

struct dfq_sens_row {
	int layer;
	bool skipped;    /* not measured (a layer quantize skips: why says why) */
	const char *why; /* static text, or NULL */
	bool has_act;    /* its output has an activation grid (abits > 0 and a range) */
	/* per kind: top-1 accuracy (0..1) and SQNR of the logits against FP32's on
	 * the same images; NaN when not measured (ACT without a grid) */
	double top1[DFQ_SENS_KINDS];
	double sqnr_db[DFQ_SENS_KINDS];
	int nrecomputed; /* nodes a run of this layer recomputes (its downstream) */
};

struct dfq_sens_result {
	struct dfq_qconfig q; /* the configuration tried */
	int64_t n;            /* images measured */
	double top1_fp32;     /* the FP32 top-1 on them */
	int nrows;
	struct dfq_sens_row *rows; /* owned, one per layer in layer order */
	int64_t runs;              /* executor runs made (batches x (1 + runs per batch)) */
	double seconds;
	bool cancelled; /* stopped by progress: nothing else is filled */
};
/* Free r->rows and zero *r (r may be NULL). */
void dfq_sens_result_free(struct dfq_sens_result *r);

/* Per-layer sensitivity of m (every layer's BatchNorm folded: DFQ_ERR_ARG
 * otherwise) to quantization with q (wbits, abits, scheme, per_channel; bias
 * bits and bias corrections are not applied: biases stay as in FP32 mode) on
 * the first o->n images of d's slice.  The FP32 base is the model in FP32 mode
 * as it stands.  Per batch, one FP32 run keeps the values later runs need;
 * then for each layer and kind a run through ex recomputes only the nodes
 * downstream of the layer (dfq_exec_set_given), the other values taken from
 * the FP32 run.  ex (an executor over m->g) is left reset.  The model is not
 * changed.  *r is zeroed first; free it with dfq_sens_result_free. */
dfq_status dfq_model_sensitivity(struct dfq_model *m, struct dfq_exec *ex, struct dfq_data *d,
                                 const struct dfq_qconfig *q, const struct dfq_analysis_opts *o,
                                 struct dfq_sens_result *r, struct dfq_error *err);

/* --- compare --------------------------------------------------------------------- */

struct dfq_cmp_row {
	int layer;       /* the layer whose output this is, or -1 (the model's output) */
	int vi;          /* the value compared */
	bool quantized;  /* the value is fake-quantized in QUANT mode (its grid applied) */
	double sqnr_db;  /* of the QUANT run's value (as its readers see it) against FP32 */
	double max_abs;  /* largest |QUANT - FP32| */
	double rms_fp32; /* root mean square of the FP32 value (for scale) */
};

struct dfq_cmp_result {
	int64_t n;                    /* images */
	double top1_fp32, top1_quant; /* top-1 of the two runs on them */
	int nrows;
	struct dfq_cmp_row *rows; /* owned: each layer's output in graph order, then the
	                           * model's first output when no layer produces it */
	double seconds;
	bool cancelled; /* stopped by progress: nothing else is filled */
};
void dfq_cmp_result_free(struct dfq_cmp_result *r);

/* The model as it stands in QUANT mode (input quantizer included) against
 * FP32 mode on the same images, value by value at every layer's output.
 * ex is left reset; the model is not changed. */
dfq_status dfq_model_compare(struct dfq_model *m, struct dfq_exec *ex, struct dfq_data *d,
                             const struct dfq_analysis_opts *o, struct dfq_cmp_result *r,
                             struct dfq_error *err);

#endif
