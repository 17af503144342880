/* dfq_eval.h - top-1/top-5 accuracy of a model over a data set's slice, in batches.
 *
 * The loop streams: it holds one batch of inputs and outputs at a time, never the data
 * set.  A progress callback runs after every batch and can stop the loop (Ctrl-C). */
#ifndef DFQ_EVAL_H
#define DFQ_EVAL_H

#include <stdbool.h>
#include <stdint.h>

#include "dfq_data.h"
#include "dfq_error.h"
#include "dfq_exec.h"
#include "dfq_graph.h"

#define DFQ_EVAL_DEFAULT_BATCH 32

/* Called after each batch with the samples done so far, the total and the
 * seconds since the start.  Return false to stop the evaluation there. */
typedef bool (*dfq_eval_progress_fn)(void *user, int64_t done, int64_t total, double seconds);

/* Runs one batch: like dfq_exec_run (the default), for callers that run the
 * model their own way (e.g. fake quantization of the model input too). */
typedef dfq_status (*dfq_eval_run_fn)(void *user, struct dfq_exec *ex, struct dfq_tensor *x,
				      struct dfq_tensor **outputs, struct dfq_error *err);

struct dfq_eval_opts {
	int64_t n;                     /* the first n samples of the slice; 0 = all of it */
	int64_t batch;                 /* samples per run; 0 = DFQ_EVAL_DEFAULT_BATCH */
	dfq_data_split split;          /* the slice: DFQ_SPLIT_EVAL unless told otherwise */
	dfq_eval_progress_fn progress; /* NULL or called after each batch */
	void *user;                    /* passed to progress */
	dfq_eval_run_fn run;           /* NULL: dfq_exec_run */
	void *run_user;                /* passed to run */
};

struct dfq_eval_result {
	int64_t n;            /* samples evaluated */
	int64_t top1, top5;   /* of those, how many had the label first / in the first five */
	double seconds;       /* wall time, reading the data included */
	double images_per_s;
	bool cancelled;       /* progress said stop: n is less than was asked for */
	int nclasses;         /* the model's scores per sample */
};

/* n = 0, batch = 0, the evaluation slice, no progress callback. */
void dfq_eval_opts_default(struct dfq_eval_opts *o);

/* Run ex (an executor of g, both borrowed) over the first o->n samples of d's
 * slice and count top-1/top-5 hits of the first graph output, read as [N, K]
 * scores (any shape with N rows).  Fits d to g's input first (see
 * dfq_data_fit()).  A model whose batch dimension is fixed runs in batches of
 * that size, the last one padded with zeros.  Cancelling through progress is
 * not an error: *r holds the counts so far and r->cancelled is set. */
dfq_status dfq_eval_run(struct dfq_exec *ex, const struct dfq_graph *g, struct dfq_data *d,
			const struct dfq_eval_opts *o, struct dfq_eval_result *r,
			struct dfq_error *err);

/* How many of the k scores rank above scores[label]: a score above it, or an
 * equal score at a lower index (argmax picks the first maximum).  0 means a
 * top-1 hit; k when scores[label] is NaN. */
int dfq_eval_rank(const float *scores, int k, int64_t label);

#endif
