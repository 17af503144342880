/* model-cmd.h - helpers shared by the DFQ model commands: targets, steps, numbers, JSON. */
#ifndef DFQ_CLI_MODEL_CMD_H
#define DFQ_CLI_MODEL_CMD_H

#include <stdbool.h>
#include <stddef.h>

#include "cli.h"
#include "cmd.h"
#include "dfq/dfq_model.h"

/* The session's model, or NULL after reporting that none is loaded. */
struct dfq_model *mc_model(struct cmd_ctx *ctx);

/* The layers named by specs (see dfq_model_parse_targets): a new array of
 * m->nlayers flags (caller frees), or NULL after reporting the error. */
bool *mc_targets(struct cmd_ctx *ctx, const struct dfq_model *m, int nspecs, char *const *specs);
/* Exactly one layer: its index, or -1 after reporting the error. */
int mc_one_layer(struct cmd_ctx *ctx, const struct dfq_model *m, const char *spec);

/* The name shown for a layer: the short weight-derived alias. */
const char *mc_layer_name(const struct dfq_model *m, int li);
/* Width of the widest layer name (capped), for aligned tables. */
int mc_name_width(const struct dfq_model *m);

/* Strict number parsing of a whole word; false when it is not one. */
bool mc_parse_long(const char *s, long *out);
bool mc_parse_double(const char *s, double *out);
/* The value of --name as a whole number in [lo, hi], or the default when the
 * flag is absent; false after reporting a bad value. */
bool mc_flag_long(struct cmd_ctx *ctx, const struct args *a, const char *name, long lo, long hi,
                  long *out);

/* "%.4g", "-" for NaN, "inf"/"-inf" (buf of at least 24 bytes); returns buf. */
const char *mc_num(double x, char *buf, size_t len);

/* As mc_num, but "~0" when |x| is below 1e-5 |ref|: float noise left after a
 * correction, which would otherwise vary with the summation order. */
const char *mc_num_small(double x, double ref, char *buf, size_t len);

/* A number in a JSON object; NaN and infinities become null. */
void mc_json_num(cJSON *obj, const char *key, double x);
/* [lo, hi] as a JSON array, or null when !valid. */
void mc_json_range(cJSON *obj, const char *key, bool valid, double lo, double hi);

/* A DFQ step on a model, with its argument. */
typedef dfq_status (*mc_step_fn)(struct dfq_model *m, void *arg, struct dfq_step_report *rep,
                                 struct dfq_error *err);

/* Run fn on the session's model and fill rep.  With needs_fold, BatchNorm
 * is folded first when it is not yet (printed as a step of its own); that
 * happens on a copy of the model which replaces the session's only when fn
 * succeeds too, so a failing command leaves the session as it was. */
enum cmd_retval mc_run_step(struct cmd_ctx *ctx, bool needs_fold, mc_step_fn fn, void *arg,
                            struct dfq_step_report *rep);

/* Keys naming a report's row figures in JSON (NULL: not written). */
struct mc_row_keys {
	const char *before, *after, *before2, *after2, *extra;
};

/* Print a finished step: fmt (may be NULL) writes a changed row's figures
 * into buf and says whether its note adds anything; every row gets
 * "  NAME[ -> NAME2]  figures  note", then the summary.  JSON: "summary",
 * "changed", "skipped" and "rows" with the figures under keys. */
typedef bool (*mc_row_fmt)(const struct dfq_model *m, const struct dfq_step_row *row, char *buf,
                           size_t len);
void mc_print_report(struct cmd_ctx *ctx, const struct dfq_model *m,
                     const struct dfq_step_report *rep, mc_row_fmt fmt,
                     const struct mc_row_keys *keys);

/* The session's quantization configuration from its settings. */
void mc_session_qconfig(const struct session *s, struct dfq_qconfig *q);
/* "W8 A8 asym per-tensor" (bias too when quantized). */
const char *mc_qconfig_str(const struct dfq_qconfig *q, char *buf, size_t len);

/* cmd-quant.c: QuantMeasure from data over the calibration slice of the
 * session's data (all of it, or --n of a; a may be NULL); *samples gets the
 * count.  False after reporting an error (the data ranges are then cleared). */
bool mc_measure_data(struct cmd_ctx *ctx, struct dfq_model *m, const struct args *a,
                     int64_t *samples);

/* eval, before running: say how the model stands (FP32 or fake-quant and
 * with which activation ranges) and prepare ex for that mode.  Returns the
 * mode, or -1 after reporting an error. */
int mc_eval_prepare(struct cmd_ctx *ctx, struct dfq_exec *ex);
/* eval, after a complete run in mode: print and record the deltas against
 * the FP32 baseline and the previous eval (both on the same n samples). */
void mc_eval_deltas(struct cmd_ctx *ctx, int mode, int64_t n, int64_t top1, int64_t top5);

#endif
