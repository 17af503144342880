/* cmd-analysis.c - sensitivity (each layer quantized on its own against FP32) and compare (the
 * quantized model's activations against FP32, layer by layer).  Queries: the model is left as
 * it was; the last result of each is kept in the session for plot and the screen. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "dfq/dfq_analysis.h"
#include "model-cmd.h"

struct progress {
	struct session *s;
	const char *what;
};

/* After each run: the bar; stop on Ctrl-C. */
static bool on_progress(void *user, int64_t done, int64_t total, double secs)
{
	struct progress *p = user;
	cli_progress(p->s, p->what, done, total, secs);
	return !cli_interrupted();
}

/* A top-1 difference in percentage points, "-" when not measured. */
static const char *pp(double d, char *buf, size_t len)
{
	if (isnan(d))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%+.2f", 100.0 * d);
	return buf;
}

/* SQNR in dB, "-" when not measured, "inf" when exact. */
static const char *db(double x, char *buf, size_t len)
{
	if (isnan(x))
		snprintf(buf, len, "-");
	else if (isinf(x))
		snprintf(buf, len, x > 0 ? "inf" : "-inf");
	else
		snprintf(buf, len, "%.1f", x);
	return buf;
}

/* --- sensitivity ----------------------------------------------------------------------- */

static const struct dfq_sens_result *sort_result;

/* Worst first: the largest top-1 loss with both quantized, then the lowest
 * SQNR; skipped layers last. */
static int sens_cmp(const void *a, const void *b)
{
	const struct dfq_sens_row *x = &sort_result->rows[*(const int *)a];
	const struct dfq_sens_row *y = &sort_result->rows[*(const int *)b];
	if (x->skipped != y->skipped)
		return x->skipped ? 1 : -1;
	double dx = x->top1[DFQ_SENS_BOTH], dy = y->top1[DFQ_SENS_BOTH];
	if (dx != dy && !isnan(dx) && !isnan(dy))
		return dx < dy ? -1 : 1;
	double sx = x->sqnr_db[DFQ_SENS_BOTH], sy = y->sqnr_db[DFQ_SENS_BOTH];
	if (sx != sy && !isnan(sx) && !isnan(sy))
		return sx < sy ? -1 : 1;
	return x->layer - y->layer;
}

/* The rows' order, worst first (malloc'd, r->nrows entries). */
static int *sens_order(const struct dfq_sens_result *r)
{
	int *ord = malloc(sizeof *ord * (size_t)(r->nrows ? r->nrows : 1));
	if (!ord)
		return NULL;
	for (int i = 0; i < r->nrows; i++)
		ord[i] = i;
	sort_result = r;
	qsort(ord, (size_t)r->nrows, sizeof *ord, sens_cmp);
	sort_result = NULL;
	return ord;
}

static const char *const kind_keys[DFQ_SENS_KINDS] = {"weights", "act", "both"};

static void sens_json(struct cmd_ctx *ctx, const struct dfq_sens_result *r, const int *ord,
                      bool folded)
{
	const struct dfq_model *m = ctx->s->model;
	cJSON *j = ctx->json;
	cJSON_AddNumberToObject(j, "wbits", r->q.wbits);
	cJSON_AddNumberToObject(j, "abits", r->q.abits);
	cJSON_AddStringToObject(j, "scheme", r->q.scheme == DFQ_QSCHEME_SYM ? "sym" : "asym");
	cJSON_AddBoolToObject(j, "per_channel", r->q.per_channel);
	cJSON_AddNumberToObject(j, "n", (double)r->n);
	mc_json_num(j, "top1_fp32", r->top1_fp32);
	cJSON_AddBoolToObject(j, "folded_for_it", folded);
	cJSON_AddNumberToObject(j, "runs", (double)r->runs);
	cJSON *a = cJSON_AddArrayToObject(j, "layers");
	for (int i = 0; a && i < r->nrows; i++) {
		const struct dfq_sens_row *row = &r->rows[ord[i]];
		cJSON *o = cJSON_CreateObject();
		if (!cJSON_AddItemToArray(a, o)) {
			cJSON_Delete(o);
			break;
		}
		cJSON_AddNumberToObject(o, "layer", row->layer);
		cJSON_AddStringToObject(o, "name", mc_layer_name(m, row->layer));
		if (row->skipped) {
			cJSON_AddStringToObject(o, "skipped", row->why ? row->why : "");
			continue;
		}
		cJSON *d = cJSON_AddObjectToObject(o, "top1_delta");
		cJSON *q = cJSON_AddObjectToObject(o, "sqnr_db");
		for (int k = 0; k < DFQ_SENS_KINDS; k++) {
			mc_json_num(d, kind_keys[k], row->top1[k] - r->top1_fp32);
			mc_json_num(q, kind_keys[k], row->sqnr_db[k]);
		}
		cJSON_AddNumberToObject(o, "recomputed_nodes", row->nrecomputed);
	}
}

static void sens_print(struct cmd_ctx *ctx, const struct dfq_sens_result *r, const int *ord)
{
	const struct dfq_model *m = ctx->s->model;
	char cfg[96];
	mc_qconfig_str(&r->q, cfg, sizeof cfg);
	cmd_result(ctx,
	           "sensitivity of each layer quantized alone (%s, the rest FP32) on %lld images; "
	           "FP32 top-1 %.2f%%, worst first",
	           cfg, (long long)r->n, 100.0 * r->top1_fp32);
	int w = mc_name_width(m);
	cmd_result(ctx, "  %-*s  %-26s  %s", w, "", "top-1 delta (points)", "logits SQNR (dB)");
	cmd_result(ctx, "  %-*s  %8s %8s %8s  %8s %8s %8s", w, "layer", "weights", "act", "both",
	           "weights", "act", "both");
	for (int i = 0; i < r->nrows; i++) {
		const struct dfq_sens_row *row = &r->rows[ord[i]];
		if (row->skipped) {
			cmd_result(ctx, "  %-*s  skipped: %s", w, mc_layer_name(m, row->layer),
			           row->why ? row->why : "");
			continue;
		}
		char b[6][32];
		cmd_result(ctx, "  %-*s  %8s %8s %8s  %8s %8s %8s", w, mc_layer_name(m, row->layer),
		           pp(row->top1[0] - r->top1_fp32, b[0], 32),
		           pp(row->top1[1] - r->top1_fp32, b[1], 32),
		           pp(row->top1[2] - r->top1_fp32, b[2], 32), db(row->sqnr_db[0], b[3], 32),
		           db(row->sqnr_db[1], b[4], 32), db(row->sqnr_db[2], b[5], 32));
	}
	if (ctx->s->set.timing)
		cmd_result(ctx, "time   %.2f s (%lld runs)", r->seconds, (long long)r->runs);
}

/* Keep r (taken) as the session's last result of its kind. */
static void keep_sens(struct session *s, struct dfq_sens_result *r)
{
	struct dfq_sens_result *k = malloc(sizeof *k);
	if (!k) {
		dfq_sens_result_free(r);
		return;
	}
	*k = *r;
	dfq_sens_result_free(s->sens);
	free(s->sens);
	s->sens = k;
}

static enum cmd_retval cmd_sensitivity_exec(struct cmd_ctx *ctx, struct args *a)
{
	struct session *s = ctx->s;
	struct dfq_model *m = s->model;
	struct dfq_error err;
	dfq_error_clear(&err);
	struct dfq_qconfig q;
	mc_session_qconfig(s, &q);
	q.wbits = (int)args_num(a, "wbits", q.wbits);
	q.abits = (int)args_num(a, "abits", q.abits);
	q.bbits = 0; /* biases stay float here */
	struct dfq_analysis_opts o;
	dfq_analysis_opts_default(&o);
	o.n = (int64_t)args_num(a, "n", 0);
	o.batch = s->set.batch;
	struct dfq_exec *ex = session_exec(s, &err);
	if (!ex)
		return cmd_fail_error(ctx, &err);
	/* quantize folds BatchNorm first: measure what it would quantize, on the
	 * model folded inside a transaction that is rolled back (no history entry) */
	bool fold = !m->folded;
	if (fold) {
		if (dfq_model_begin(m, &err) != DFQ_OK)
			return cmd_fail_error(ctx, &err);
		if (dfq_model_fold(m, NULL, &err) != DFQ_OK) {
			dfq_model_rollback(m);
			return cmd_fail_error(ctx, &err);
		}
	}
	struct progress pg = {s, "sensitivity"};
	o.progress = on_progress;
	o.user = &pg;
	struct dfq_sens_result r;
	cli_interrupt_catch(true);
	dfq_status st = dfq_model_sensitivity(m, ex, s->data, &q, &o, &r, &err);
	cli_interrupt_catch(false);
	cli_progress_end(s);
	if (fold)
		dfq_model_rollback(m);
	session_model_changed(s);
	if (st != DFQ_OK)
		return cmd_fail_error(ctx, &err);
	if (r.cancelled)
		return cmd_fail(ctx, "sensitivity interrupted; the model is unchanged");
	int *ord = sens_order(&r);
	if (!ord) {
		dfq_sens_result_free(&r);
		return cmd_fail(ctx, "out of memory sorting the layers");
	}
	if (fold)
		cmd_print(ctx, "(BatchNorm folded for the measurement, as quantize does; the model "
		               "is unchanged)");
	sens_json(ctx, &r, ord, fold);
	sens_print(ctx, &r, ord);
	free(ord);
	keep_sens(s, &r);
	return CMD_RETURN_NORMAL;
}

/* --- compare --------------------------------------------------------------------------- */

static const char *cmp_name(const struct dfq_model *m, const struct dfq_cmp_row *row)
{
	return row->layer >= 0 ? mc_layer_name(m, row->layer) : m->g->values[row->vi].name;
}

static void cmp_report(struct cmd_ctx *ctx, const struct dfq_cmp_result *r)
{
	const struct dfq_model *m = ctx->s->model;
	cJSON *j = ctx->json;
	cJSON_AddNumberToObject(j, "n", (double)r->n);
	mc_json_num(j, "top1_fp32", r->top1_fp32);
	mc_json_num(j, "top1_quant", r->top1_quant);
	cJSON *arr = cJSON_AddArrayToObject(j, "values");
	cmd_result(ctx,
	           "the fake-quantized model against FP32 on %lld images (top-1 %.2f%% FP32, "
	           "%.2f%% quantized), in graph order",
	           (long long)r->n, 100.0 * r->top1_fp32, 100.0 * r->top1_quant);
	int w = mc_name_width(m);
	cmd_result(ctx, "  %3s  %-*s  %-5s  %8s  %10s  %10s", "#", w, "layer", "grid", "SQNR dB",
	           "max |err|", "rms FP32");
	for (int i = 0; i < r->nrows; i++) {
		const struct dfq_cmp_row *row = &r->rows[i];
		char idx[16], b1[32], b2[32], b3[32], grid[16];
		snprintf(idx, sizeof idx, row->layer >= 0 ? "%d" : "-", row->layer);
		int pi = -1;
		for (int p = 0; p < m->npoints && pi < 0; p++)
			if (m->points[p].vi == row->vi)
				pi = p;
		if (row->quantized && pi >= 0)
			snprintf(grid, sizeof grid, "A%d", m->points[pi].bits);
		else
			snprintf(grid, sizeof grid, "float");
		cmd_result(ctx, "  %3s  %-*s  %-5s  %8s  %10s  %10s", idx, w, cmp_name(m, row),
		           grid, db(row->sqnr_db, b1, sizeof b1),
		           mc_num(row->max_abs, b2, sizeof b2),
		           mc_num(row->rms_fp32, b3, sizeof b3));
		cJSON *o = cJSON_CreateObject();
		if (!cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			continue;
		}
		if (row->layer >= 0)
			cJSON_AddNumberToObject(o, "layer", row->layer);
		else
			cJSON_AddNullToObject(o, "layer");
		cJSON_AddStringToObject(o, "name", cmp_name(m, row));
		cJSON_AddStringToObject(o, "tensor", m->g->values[row->vi].name);
		cJSON_AddBoolToObject(o, "quantized", row->quantized);
		mc_json_num(o, "sqnr_db", row->sqnr_db);
		mc_json_num(o, "max_abs_err", row->max_abs);
		mc_json_num(o, "rms_fp32", row->rms_fp32);
	}
	if (ctx->s->set.timing)
		cmd_result(ctx, "time   %.2f s", r->seconds);
}

static enum cmd_retval cmd_compare_exec(struct cmd_ctx *ctx, struct args *a)
{
	struct session *s = ctx->s;
	struct dfq_error err;
	dfq_error_clear(&err);
	if (session_run_mode(s) != DFQ_RUN_QUANT)
		return cmd_fail(ctx,
		                "compare: nothing is quantized, so every activation equals FP32's; "
		                "quantize first (e.g. 'quantize all')");
	struct dfq_analysis_opts o;
	dfq_analysis_opts_default(&o);
	o.n = (int64_t)args_num(a, "n", 0);
	o.batch = s->set.batch;
	struct dfq_exec *ex = session_exec(s, &err);
	if (!ex)
		return cmd_fail_error(ctx, &err);
	struct progress pg = {s, "compare"};
	o.progress = on_progress;
	o.user = &pg;
	struct dfq_cmp_result r;
	cli_interrupt_catch(true);
	dfq_status st = dfq_model_compare(s->model, ex, s->data, &o, &r, &err);
	cli_interrupt_catch(false);
	cli_progress_end(s);
	if (st != DFQ_OK)
		return cmd_fail_error(ctx, &err);
	if (r.cancelled)
		return cmd_fail(ctx, "compare interrupted; the model is unchanged");
	cmp_report(ctx, &r);
	struct dfq_cmp_result *k = malloc(sizeof *k);
	if (!k) {
		dfq_cmp_result_free(&r);
		return CMD_RETURN_NORMAL;
	}
	*k = r;
	dfq_cmp_result_free(s->cmp);
	free(s->cmp);
	s->cmp = k;
	return CMD_RETURN_NORMAL;
}

static const struct num_spec n_num = {.whole = true, .lo = 1, .hi = INFINITY};

static const struct args_flag sens_flags[] = {
    {"n", true, NULL, &n_num},
    {"wbits", true, NULL, &cli_wbits_num},
    {"abits", true, NULL, &cli_abits_num},
    {NULL, false, NULL, NULL},
};

static const struct args_flag cmp_flags[] = {
    {"n", true, NULL, &n_num},
    {NULL, false, NULL, NULL},
};

const struct cmd_entry cmd_sensitivity_entry = {
    .name = "sensitivity",
    .alias = NULL,
    .usage = "sensitivity [--n N] [--wbits N] [--abits N]",
    .args = {sens_flags, 0, 0},
    .summary = "each layer quantized alone: top-1 change and logits SQNR, worst first",
    .exec = cmd_sensitivity_exec,
    .flags = CMD_NEEDS_MODEL | CMD_NEEDS_DATA,
    .help = "Quantizes one layer at a time, everything else FP32, on the first N images of\n"
            "the data (default: all) and reports per layer the top-1 change against FP32\n"
            "and the SQNR of the logits against FP32's, three ways: only its weights\n"
            "quantized, only its output activation, and both (the layer as quantize would\n"
            "make it; biases stay float).  Bits, scheme and granularity are the session's\n"
            "(set wbits/abits/scheme/granularity; --wbits and --abits override them).  The\n"
            "model as it stands in FP32 mode is the base; BatchNorm is folded for the\n"
            "measurement when it is not yet.  The model is not changed (no history entry);\n"
            "'plot sensitivity' draws the result and the screen's layer table shows it.",
};

const struct cmd_entry cmd_compare_entry = {
    .name = "compare",
    .alias = NULL,
    .usage = "compare [--n N]",
    .args = {cmp_flags, 0, 0},
    .summary = "per-layer SQNR of the quantized model's activations against FP32",
    .exec = cmd_compare_exec,
    .flags = CMD_NEEDS_MODEL | CMD_NEEDS_DATA,
    .help = "Runs the model as it stands fake-quantized and in FP32 on the same first N\n"
            "images (default: all) and compares every layer's output, in graph order, as\n"
            "the next layer reads it (its grid applied): SQNR in dB and the largest\n"
            "absolute error, then the model's output; so one sees where the error builds\n"
            "up.  Needs some layer quantized.  'plot compare' draws the result and the\n"
            "screen's layer table shows it.",
};
