/* model-cmd.h - helpers shared by the DFQ model commands: targets, steps, numbers, JSON. */
#ifndef DFQ_CLI_MODEL_CMD_H
#define DFQ_CLI_MODEL_CMD_H

#include <stdbool.h>
#include <stddef.h>

#include "cli.h"
#include "cmd.h"
#include "dfq/dfq_model.h"

/* The one layer the command's TARGET (resolved by the runner into
 * ctx->sel) names: its index, or -1 after reporting that it names none or
 * several. */
int mc_one_target(struct cmd_ctx *ctx);

/* The name shown for a layer: the short weight-derived alias. */
const char *mc_layer_name(const struct dfq_model *m, int li);
/* Width of the widest layer name (capped), for aligned tables. */
int mc_name_width(const struct dfq_model *m);

/* An activation point's name as tables show it: the layer's for a layer
 * output, else the tensor's. */
const char *mc_point_label(const struct dfq_model *m, const struct dfq_apoint *p, char *buf,
                           size_t len);
/* The activation tensors that stay float although quantized layers want them
 * (bits > 0 and no range, so not enabled): their count, and in buf (may be
 * NULL) "N activation tensor(s) without a range stay(s) float: NAMES" (up to
 * 4 names, then "and N more") and the remedy (on a second line when the
 * input is one of them).  names (may be NULL) gets them all as a JSON array. */
int mc_float_points(const struct dfq_model *m, char *buf, size_t len, cJSON *names);
/* Informational text of several lines: the first prefixed by first, the
 * others by indent. */
void mc_print_lines(struct cmd_ctx *ctx, const char *first, const char *indent, const char *text);

/* "%.4g", "-" for NaN, "inf"/"-inf" (buf of at least 24 bytes); returns buf. */
const char *mc_num(double x, char *buf, size_t len);

/* As mc_num, but "~0" when |x| is below 1e-5 |ref|: float noise left after a
 * correction, which would otherwise vary with the summation order. */
const char *mc_num_small(double x, double ref, char *buf, size_t len);

/* An accuracy as {"n", "top1", "top5", "mode"} under key, or null when it
 * was not measured. */
void mc_json_mark(cJSON *obj, const char *key, const struct eval_mark *e, bool quant);
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

/* Print a finished step: its summary line; in verbose mode first a row
 * per layer, "  NAME[ -> NAME2]  figures  note", where fmt (may be NULL)
 * writes a changed row's figures into buf and says whether its note adds
 * anything.  JSON (always): "summary", "changed", "skipped" and "rows" with
 * the figures under keys. */
typedef bool (*mc_row_fmt)(const struct dfq_model *m, const struct dfq_step_row *row, char *buf,
                           size_t len);
void mc_print_report(struct cmd_ctx *ctx, const struct dfq_step_report *rep, mc_row_fmt fmt,
                     const struct mc_row_keys *keys);

/* A step command's body: mc_run_step(), then mc_print_report() on success.
 * rep stays filled for the caller's extras; the caller frees it (it is
 * empty after a failure). */
enum cmd_retval mc_step(struct cmd_ctx *ctx, bool needs_fold, mc_step_fn fn, void *arg,
                        mc_row_fmt fmt, const struct mc_row_keys *keys,
                        struct dfq_step_report *rep);

/* The session's quantization configuration from its settings. */
void mc_session_qconfig(const struct session *s, struct dfq_qconfig *q);
/* "W8 A8 asym per-tensor" (bias too when quantized). */
const char *mc_qconfig_str(const struct dfq_qconfig *q, char *buf, size_t len);

/* cmd-quant.c: QuantMeasure from data over the calibration slice of the
 * session's data (all of it, or --n of a; a may be NULL); *samples gets the
 * count.  False after reporting an error (the data ranges are then cleared;
 * without data, CLI_MSG_NO_DATA). */
bool mc_measure_data(struct cmd_ctx *ctx, struct dfq_model *m, const struct args *a,
                     int64_t *samples);

/* cmd-quant.c: the first calibration batch of the session's data, fitted to
 * the model's input, as the data passes read it (a reference the caller drops
 * with dfq_tensor_free); *samples (may be NULL) gets its size.  NULL after
 * reporting an error (without data: CLI_MSG_NO_DATA). */
struct dfq_tensor *mc_calib_batch(struct cmd_ctx *ctx, int64_t *samples);

/* A dfq_eval_run_fn (user: struct mc_model_run) that runs each batch through
 * dfq_model_run, so that a fake-quant eval also quantizes the model input, as an
 * INT8 runtime would. */
struct mc_model_run {
	struct dfq_model *m;
	dfq_run_mode mode;
};
dfq_status mc_model_run_batch(void *user, struct dfq_exec *ex, struct dfq_tensor *x,
                              struct dfq_tensor **outputs, struct dfq_error *err);

/* eval, before running: say how the model stands (FP32 or fake-quant and
 * with which activation ranges) and prepare ex for that mode.  Returns the
 * mode, or -1 after reporting an error. */
int mc_eval_prepare(struct cmd_ctx *ctx, struct dfq_exec *ex);
/* eval, after a complete run in mode: print and record the deltas against
 * the FP32 baseline and the previous eval (both on the same n samples). */
void mc_eval_deltas(struct cmd_ctx *ctx, int mode, int64_t n, int64_t top1, int64_t top5);

#endif
