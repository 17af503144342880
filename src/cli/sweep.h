/* sweep.h - accuracy against one setting (weight bits, activation bits, weight clip): the
 * session's recorded steps replayed on a scratch session for each value, the session itself
 * untouched.  cmd-sweep.c is the command; `plot sweep` draws the last one (chart.c). */
#ifndef DFQ_CLI_SWEEP_H
#define DFQ_CLI_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli.h"

enum sweep_kind {
	SWEEP_WBITS = 0, /* quantize's weight bits */
	SWEEP_ABITS,     /* quantize's activation bits */
	SWEEP_CLIP,      /* clip's bounds: -X .. X */
};

/* "wbits", "abits", "clip". */
const char *sweep_kind_name(enum sweep_kind k);

struct sweep_point {
	double value;       /* the setting */
	int64_t n;          /* images evaluated */
	int64_t top1, top5; /* of those, hits */
};

/* A sweep's outcome (the last one is kept in the session for plot sweep).
 * Owns every string and array it points to; sweep_free() frees it. */
struct sweep_result {
	enum sweep_kind kind;
	char *model;             /* the model file */
	char *how;               /* one line: where the value went into the pipeline */
	int nsteps;              /* the steps replayed per point (the session's, as recorded) */
	char **steps;            /* nsteps lines, as the first point ran them */
	int64_t n;               /* images per point (the eval slice, or --n) */
	struct eval_mark fp32;   /* the model as loaded, on the same images */
	int nplanned, ndone;     /* points asked for, and measured */
	struct sweep_point *pts; /* nplanned entries, the first ndone filled */
	bool interrupted;        /* Ctrl-C stopped it after ndone points */
};
void sweep_free(struct sweep_result *r);

/* What to sweep: values lo, lo + step, ... up to hi (at most SWEEP_MAX_POINTS). */
#define SWEEP_MAX_POINTS 64
struct sweep_req {
	enum sweep_kind kind;
	double lo, hi, step;
	int64_t n; /* images per point; 0: all of the eval slice */
};

/* Parse "A..B[:STEP]" for kind into r (lo, hi, step): bits are whole numbers
 * 2..16 with a whole step (default 1); clip values are above 0 (default step:
 * a fifth of the range, six points).  False with one sentence in why. */
bool sweep_parse_range(enum sweep_kind kind, const char *text, struct sweep_req *r, char *why,
                       size_t len);
/* The number of points r asks for. */
int sweep_count(const struct sweep_req *r);

/* Run the sweep for ctx's session: each value on a scratch session (the
 * model loaded again from its file, the session's steps replayed with the
 * value), evaluated on r->n images; the FP32 accuracy once.  Progress with
 * an ETA; Ctrl-C stops it, keeping the points done.  *out gets the result
 * (also after an interruption, when a point was done); false after reporting
 * an error through ctx (nothing kept then).  The session's model, history
 * and settings are as they were. */
bool sweep_run(struct cmd_ctx *ctx, const struct sweep_req *r, struct sweep_result **out);

#endif
