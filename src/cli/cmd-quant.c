/* cmd-quant.c - quantize, dequantize, measure (QuantMeasure), biascorr and error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dfq/dfq_data.h"
#include "dfq/dfq_npy.h"
#include "model-cmd.h"

/* Keep calibration batches in memory for the passes of empirical bias
 * correction when they take no more than this. */
#define CALIB_CACHE_BYTES ((int64_t)256 << 20)

/* --- quantize / dequantize -------------------------------------------------------- */

struct quant_arg {
	const bool *sel;
	struct dfq_qconfig q;
};

static dfq_status quantize_fn(struct dfq_model *m, void *arg, struct dfq_step_report *rep,
                              struct dfq_error *err)
{
	struct quant_arg *q = arg;
	return dfq_model_quantize(m, q->sel, &q->q, rep, err);
}

static bool quantize_row(const struct dfq_model *m, const struct dfq_step_row *r, char *buf,
                         size_t len)
{
	char a[24], b[24], c[24];
	if (isnan(r->before))
		snprintf(buf, len, "SQNR %s dB, max |err| %s", mc_num(r->after, a, sizeof a),
		         mc_num(r->extra, c, sizeof c));
	else
		snprintf(buf, len, "SQNR %s dB (was %s), max |err| %s",
		         mc_num(r->after, a, sizeof a), mc_num(r->before, b, sizeof b),
		         mc_num(r->extra, c, sizeof c));
	return false;
}

/* The session's configuration overridden by the command's flags. */
static bool qconfig_from_args(struct cmd_ctx *ctx, const struct args *a, struct dfq_qconfig *q)
{
	mc_session_qconfig(ctx->s, q);
	q->wbits = (int)args_num(a, "wbits", q->wbits);
	q->abits = (int)args_num(a, "abits", q->abits);
	q->bbits = (int)args_num(a, "bbits", q->bbits);
	if (args_has(a, "sym") && args_has(a, "asym"))
		return cmd_fail(ctx, "give --sym or --asym, not both"), false;
	if (args_has(a, "per-channel") && args_has(a, "per-tensor"))
		return cmd_fail(ctx, "give --per-channel or --per-tensor, not both"), false;
	if (args_has(a, "sym"))
		q->scheme = DFQ_QSCHEME_SYM;
	if (args_has(a, "asym"))
		q->scheme = DFQ_QSCHEME_ASYM;
	if (args_has(a, "per-channel"))
		q->per_channel = true;
	if (args_has(a, "per-tensor"))
		q->per_channel = false;
	return true;
}

static enum cmd_retval cmd_quantize_exec(struct cmd_ctx *ctx, struct args *a)
{
	static const struct mc_row_keys keys = {"sqnr_before", "sqnr_db", NULL, NULL, "max_err"};
	struct quant_arg qa = {.sel = ctx->sel};
	if (!qconfig_from_args(ctx, a, &qa.q))
		return CMD_RETURN_ERROR;
	struct dfq_step_report rep;
	enum cmd_retval rv = mc_run_step(ctx, true, quantize_fn, &qa, &rep);
	if (rv != CMD_RETURN_NORMAL)
		return rv;
	mc_print_report(ctx, &rep, quantize_row, &keys);
	char cfg[96], floats[1024];
	cJSON_AddStringToObject(ctx->json, "config", mc_qconfig_str(&qa.q, cfg, sizeof cfg));
	cJSON_AddNumberToObject(ctx->json, "wbits", qa.q.wbits);
	cJSON_AddNumberToObject(ctx->json, "abits", qa.q.abits);
	cJSON_AddNumberToObject(ctx->json, "bbits", qa.q.bbits);
	cJSON *names = cJSON_AddArrayToObject(ctx->json, "float_activations");
	if (mc_float_points(ctx->s->model, floats, sizeof floats, names) > 0)
		mc_print_lines(ctx, "warning: ", "         ", floats);
	dfq_step_report_free(&rep);
	return CMD_RETURN_NORMAL;
}

/* clang-format off */
static const struct args_flag quantize_flags[] = {
	{"wbits", true, NULL, &cli_wbits_num},
	{"abits", true, NULL, &cli_abits_num},
	{"bbits", true, NULL, &cli_bbits_num},
	{"per-channel", false, NULL, NULL},
	{"per-tensor", false, NULL, NULL},
	{"sym", false, NULL, NULL},
	{"asym", false, NULL, NULL},
	{NULL, false, NULL, NULL},
};
/* clang-format on */

const struct cmd_entry cmd_quantize_entry = {
    .name = "quantize",
    .alias = NULL,
    .usage = "quantize TARGET... [--wbits N] [--abits N] [--bbits N] "
             "[--per-channel|--per-tensor] [--sym|--asym]",
    .args = {quantize_flags, 1, -1, ARGS_TARGET, NULL},
    .summary = "fake-quantize the weights (and output activations) of layers",
    .exec = cmd_quantize_exec,
    .flags = CMD_NEEDS_MODEL | CMD_STEP,
};

static dfq_status dequantize_fn(struct dfq_model *m, void *arg, struct dfq_step_report *rep,
                                struct dfq_error *err)
{
	return dfq_model_dequantize(m, arg, rep, err);
}

static enum cmd_retval cmd_dequantize_exec(struct cmd_ctx *ctx, struct args *a)
{
	static const struct mc_row_keys keys = {NULL, NULL, NULL, NULL, "wbits_before"};
	struct dfq_step_report rep;
	enum cmd_retval rv = mc_step(ctx, false, dequantize_fn, ctx->sel, NULL, &keys, &rep);
	dfq_step_report_free(&rep);
	return rv;
}

const struct cmd_entry cmd_dequantize_entry = {
    .name = "dequantize",
    .alias = NULL,
    .usage = "dequantize [TARGET...]",
    .args = {NULL, 0, -1, ARGS_TARGET, NULL},
    .summary = "back to float weights and activations for layers (default: all)",
    .exec = cmd_dequantize_exec,
    .flags = CMD_NEEDS_MODEL | CMD_TARGET_ALL | CMD_STEP,
};

/* --- the calibration slice --------------------------------------------------------- */

/* Calibration batches of the session's data, read on demand and kept when
 * they are small enough (the model makes several passes). */
struct calib {
	struct dfq_data *d;
	int64_t n, batch, nbatches;
	bool cache;
	struct dfq_tensor **held; /* owned: nbatches entries (cache) or 1 (the current) */
	bool interrupted;
	/* progress: batches handed out so far of passes * nbatches */
	struct session *s;
	const char *what;
	int64_t fetched, passes;
	struct timespec t0;
};

static void calib_free(struct calib *c)
{
	int64_t nh = c->cache ? c->nbatches : 1;
	for (int64_t i = 0; c->held && i < nh; i++)
		dfq_tensor_free(c->held[i]);
	free(c->held);
	c->held = NULL;
}

/* Set up the calibration samples of the session's data, fitted to the
 * model's input: all of the slice, or --n of them when a has it (a may be
 * NULL).  Reports and returns false on error. */
static bool calib_open(struct cmd_ctx *ctx, const struct args *a, struct calib *c)
{
	struct session *s = ctx->s;
	memset(c, 0, sizeof *c);
	if (!s->data)
		return cmd_fail(ctx, CLI_MSG_NO_DATA), false;
	const struct dfq_graph *g = s->model->g;
	if (g->ninputs != 1)
		return cmd_fail(ctx, "data passes need a model with one input; this one has %d",
		                g->ninputs),
		       false;
	struct dfq_error err;
	const struct dfq_value *in = &g->values[g->inputs[0]];
	if (dfq_data_fit(s->data, in->name, &in->shape, &err) != DFQ_OK)
		return cmd_fail_error(ctx, &err), false;
	int64_t avail = dfq_data_count(s->data, DFQ_SPLIT_CALIB);
	if (avail <= 0)
		return cmd_fail(ctx,
		                "the data set has no calibration slice (see 'data ... --calib N')"),
		       false;
	/* --n is a whole number >= 1 (args_parse); at most what there is. */
	const struct num_spec upto = {.whole = true, .lo = 1, .hi = (double)avail};
	double n = (double)avail;
	if (a && args_get(a, "n") && !cmd_num(ctx, "--n", args_get(a, "n"), &upto, &n))
		return false;
	c->d = s->data;
	c->n = (int64_t)n;
	c->batch = s->set.batch > 0 ? s->set.batch : 64;
	c->nbatches = (c->n + c->batch - 1) / c->batch;
	c->cache =
	    c->n * dfq_data_sample_numel(s->data) * (int64_t)sizeof(float) <= CALIB_CACHE_BYTES;
	c->held = calloc((size_t)(c->cache ? c->nbatches : 1), sizeof *c->held);
	if (!c->held)
		return cmd_fail(ctx, "out of memory"), false;
	return true;
}

static dfq_status calib_get(struct calib *c, int64_t index, const struct dfq_tensor **x,
                            struct dfq_error *err)
{
	*x = NULL;
	if (index < 0 || index >= c->nbatches)
		return DFQ_OK;
	if (cli_interrupted()) {
		c->interrupted = true;
		return dfq_error_set(err, DFQ_ERR_ARG, "interrupted");
	}
	struct dfq_tensor **slot = c->cache ? &c->held[index] : &c->held[0];
	if (!c->cache) {
		dfq_tensor_free(*slot);
		*slot = NULL;
	}
	if (!*slot) {
		int64_t first = index * c->batch;
		int64_t n = c->n - first < c->batch ? c->n - first : c->batch;
		dfq_status st = dfq_data_batch(c->d, DFQ_SPLIT_CALIB, first, n, slot, NULL, err);
		if (st != DFQ_OK)
			return st;
	}
	*x = *slot;
	return DFQ_OK;
}

/* The model asks for the batches pass after pass: each one it gets is a
 * unit of progress. */
static dfq_status calib_next(void *user, int64_t index, const struct dfq_tensor **x,
                             struct dfq_error *err)
{
	struct calib *c = user;
	dfq_status st = calib_get(c, index, x, err);
	if (st == DFQ_OK && *x && c->s) {
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		double secs =
		    (double)(t.tv_sec - c->t0.tv_sec) + (double)(t.tv_nsec - c->t0.tv_nsec) * 1e-9;
		int64_t total = c->passes * c->nbatches;
		c->fetched++;
		cli_progress(c->s, c->what, c->fetched < total ? c->fetched : total, total, secs);
	}
	return st;
}

/* Report progress of passes passes over the batches, as what. */
static void calib_progress(struct calib *c, struct session *s, const char *what, int64_t passes)
{
	c->s = s;
	c->what = what;
	c->passes = passes > 0 ? passes : 1;
	c->fetched = 0;
	clock_gettime(CLOCK_MONOTONIC, &c->t0);
}

struct dfq_tensor *mc_calib_batch(struct cmd_ctx *ctx, int64_t *samples)
{
	struct calib c;
	if (!calib_open(ctx, NULL, &c))
		return NULL;
	const struct dfq_tensor *x = NULL;
	struct dfq_error err;
	dfq_error_clear(&err);
	struct dfq_tensor *out = NULL;
	if (calib_get(&c, 0, &x, &err) != DFQ_OK)
		cmd_fail_error(ctx, &err);
	else if (!x)
		cmd_fail(ctx, "the data set has no calibration samples");
	else
		out = dfq_tensor_ref((struct dfq_tensor *)x);
	if (out && samples)
		*samples = out->ndim >= 1 ? out->dims[0] : 1;
	calib_free(&c);
	return out;
}

/* --- measure ---------------------------------------------------------------------- */

static int point_width(const struct dfq_model *m)
{
	int w = mc_name_width(m);
	for (int i = 0; i < m->npoints; i++) {
		char b[160];
		int n = (int)strlen(mc_point_label(m, &m->points[i], b, sizeof b));
		w = n > w ? n : w;
	}
	return w > 48 ? 48 : w;
}

static void range_text(const struct dfq_range *r, char *buf, size_t len)
{
	if (r->valid)
		snprintf(buf, len, "[%.4g, %.4g]", (double)r->lo, (double)r->hi);
	else
		snprintf(buf, len, "-");
}

static void point_json(cJSON *arr, const struct dfq_model *m, int i)
{
	const struct dfq_apoint *p = &m->points[i];
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	char b[160];
	cJSON_AddNumberToObject(o, "point", i);
	cJSON_AddStringToObject(o, "kind", dfq_apoint_kind_name(p->kind));
	cJSON_AddStringToObject(o, "name", mc_point_label(m, p, b, sizeof b));
	cJSON_AddStringToObject(o, "tensor", m->g->values[p->vi].name);
	if (p->layer >= 0)
		cJSON_AddNumberToObject(o, "layer", p->layer);
	mc_json_range(o, "bn", p->bn.valid, p->bn.lo, p->bn.hi);
	mc_json_range(o, "minmax", p->minmax.valid, p->minmax.lo, p->minmax.hi);
	mc_json_range(o, "global", p->global.valid, p->global.lo, p->global.hi);
	mc_json_range(o, "percentile", p->pct.valid, p->pct.lo, p->pct.hi);
	if (p->kind == DFQ_APOINT_INPUT)
		mc_json_range(o, "given", p->given.valid, p->given.lo, p->given.hi);
	cJSON_AddStringToObject(o, "used", dfq_range_src_name(p->used));
	cJSON_AddBoolToObject(o, "enabled", p->enabled);
	if (!cJSON_AddItemToArray(arr, o))
		cJSON_Delete(o);
}

/* One line per activation point: its BN range, or its data ranges. */
static void print_points(struct cmd_ctx *ctx, const struct dfq_model *m, bool data)
{
	int w = point_width(m);
	cJSON *arr = cJSON_AddArrayToObject(ctx->json, "points");
	if (data)
		cmd_detail(ctx, "  %-6s  %-*s  %-22s  %-22s  %-22s", "kind", w, "tensor", "minmax",
		           "global", "percentile");
	else
		cmd_detail(ctx, "  %-6s  %-*s  %-22s  %s", "kind", w, "tensor", "bn range", "used");
	for (int i = 0; i < m->npoints; i++) {
		const struct dfq_apoint *p = &m->points[i];
		char b[160], r1[48], r2[48], r3[48];
		mc_point_label(m, p, b, sizeof b);
		if (data) {
			range_text(&p->minmax, r1, sizeof r1);
			range_text(&p->global, r2, sizeof r2);
			range_text(&p->pct, r3, sizeof r3);
			cmd_detail(ctx, "  %-6s  %-*.*s  %-22s  %-22s  %-22s",
			           dfq_apoint_kind_name(p->kind), w, w, b, r1, r2, r3);
		} else {
			range_text(&p->bn, r1, sizeof r1);
			/* An input has no BN range; its given one (from the data
			 * normalisation) is shown where it is used. */
			r2[0] = '\0';
			if (p->used == DFQ_RANGE_GIVEN) {
				r2[0] = ' ';
				range_text(&p->given, r2 + 1, sizeof r2 - 1);
			}
			cmd_detail(ctx, "  %-6s  %-*.*s  %-22s  %s%s",
			           dfq_apoint_kind_name(p->kind), w, w, b, r1,
			           dfq_range_src_name(p->used), r2);
		}
		if (arr)
			point_json(arr, m, i);
	}
}

static enum cmd_retval measure_bn(struct cmd_ctx *ctx, struct dfq_model *m)
{
	struct dfq_step_report rep;
	struct dfq_error err;
	dfq_step_report_init(&rep);
	if (dfq_model_measure_bn(m, &rep, &err) != DFQ_OK)
		return cmd_fail_error(ctx, &err);
	print_points(ctx, m, false);
	cmd_print(ctx, "%s", rep.summary);
	cJSON_AddStringToObject(ctx->json, "summary", rep.summary);
	cJSON_AddNumberToObject(ctx->json, "with_range", rep.nchanged);
	dfq_step_report_free(&rep);
	return CMD_RETURN_NORMAL;
}

bool mc_measure_data(struct cmd_ctx *ctx, struct dfq_model *m, const struct args *a,
                     int64_t *samples)
{
	struct calib c;
	struct dfq_error err;
	dfq_error_clear(&err);
	if (!calib_open(ctx, a, &c))
		return false;
	struct dfq_exec *ex = session_exec(ctx->s, &err);
	struct dfq_step_report rep;
	dfq_step_report_init(&rep);
	calib_progress(&c, ctx->s, "measure", 1);
	cli_interrupt_catch(true);
	dfq_status st =
	    ex ? dfq_model_measure_data(m, ex, NULL, calib_next, &c, &rep, &err) : err.status;
	cli_interrupt_catch(false);
	cli_progress_end(ctx->s);
	dfq_step_report_free(&rep);
	bool stopped = c.interrupted;
	calib_free(&c);
	session_model_changed(ctx->s);
	if (st != DFQ_OK) {
		if (stopped)
			return cmd_fail(ctx, "measure interrupted; the ranges are as they were"),
			       false;
		return cmd_fail_error(ctx, &err), false;
	}
	*samples = c.n;
	return true;
}

static enum cmd_retval measure_data(struct cmd_ctx *ctx, struct dfq_model *m, const struct args *a)
{
	int64_t n;
	if (!mc_measure_data(ctx, m, a, &n))
		return CMD_RETURN_ERROR;
	print_points(ctx, m, true);
	cmd_print(ctx, "measured %d activation tensors on %lld calibration samples", m->npoints,
	          (long long)n);
	if (m->range_src == DFQ_RANGE_BN && m->has_stats)
		cmd_print(ctx, "note: act-range is bn, so quantization keeps the BN ranges where "
		               "there are any; 'set act-range minmax' uses these");
	cJSON_AddNumberToObject(ctx->json, "samples", (double)n);
	cJSON_AddStringToObject(ctx->json, "act_range", dfq_range_src_name(m->range_src));
	return CMD_RETURN_NORMAL;
}

static enum cmd_retval cmd_measure_exec(struct cmd_ctx *ctx, struct args *a)
{
	struct dfq_model *m = ctx->s->model;
	const char *what = a->npos ? a->pos[0] : (m->range_src == DFQ_RANGE_BN ? "bn" : "data");
	cJSON_AddStringToObject(ctx->json, "source", what);
	if (strcmp(what, "bn") == 0) {
		if (args_get(a, "n"))
			return cmd_fail(ctx, "measure bn takes no --n (it reads no data)");
		ctx->not_a_step = true; /* the data-free ranges follow the model anyway */
		return measure_bn(ctx, m);
	}
	if (strcmp(what, "data") == 0)
		return measure_data(ctx, m, a);
	return cmd_fail(ctx, "measure: '%s' is not a source; use bn or data", what);
}

/* --n of the calibration slice (calib_open checks it is no more than there is) */
static const struct num_spec n_num = {.whole = true, .lo = 1, .hi = INFINITY};

static const struct args_flag n_flags[] = {
    {"n", true, NULL, &n_num},
    {NULL, false, NULL, NULL},
};

static const char *const measure_words[] = {"bn", "data", NULL};

const struct cmd_entry cmd_measure_entry = {
    .name = "measure",
    .alias = NULL,
    .usage = "measure [bn|data] [--n N]",
    .args = {n_flags, 0, 1, ARGS_CHOICE, measure_words},
    .summary = "activation ranges (QuantMeasure): data-free from BatchNorm, or from data",
    .exec = cmd_measure_exec,
    .flags = CMD_NEEDS_MODEL | CMD_STEP,
};

/* --- biascorr -------------------------------------------------------------------- */

static dfq_status biascorr_fn(struct dfq_model *m, void *arg, struct dfq_step_report *rep,
                              struct dfq_error *err)
{
	return dfq_model_biascorr_analytic(m, arg, rep, err);
}

static bool biascorr_row(const struct dfq_model *m, const struct dfq_step_row *r, char *buf,
                         size_t len)
{
	char a[24], b[24], c[24];
	snprintf(buf, len, "expected error %s -> %s (max correction %s)",
	         mc_num(r->before, a, sizeof a), mc_num_small(r->after, r->before, b, sizeof b),
	         mc_num(r->extra, c, sizeof c));
	return true;
}

static bool biascorr_emp_row(const struct dfq_model *m, const struct dfq_step_row *r, char *buf,
                             size_t len)
{
	char a[24], b[24];
	snprintf(buf, len, "mean error %s, correction %s", mc_num(r->before, a, sizeof a),
	         mc_num(r->after, b, sizeof b));
	return true;
}

static enum cmd_retval biascorr_empirical(struct cmd_ctx *ctx, struct dfq_model *m, const bool *sel,
                                          const struct args *a)
{
	struct calib c;
	struct dfq_error err;
	dfq_error_clear(&err);
	if (!m->folded)
		return cmd_fail(ctx, "fold and quantize the layers before bias correction");
	if (!calib_open(ctx, a, &c))
		return CMD_RETURN_ERROR;
	struct dfq_exec *ex = session_exec(ctx->s, &err);
	struct dfq_step_report rep;
	dfq_step_report_init(&rep);
	/* one FP32 pass, then one per layer corrected */
	int64_t passes = 1;
	for (int i = 0; i < m->nlayers; i++)
		passes += !sel || sel[i];
	calib_progress(&c, ctx->s, "biascorr", passes);
	cli_interrupt_catch(true);
	dfq_status st =
	    ex ? dfq_model_biascorr_empirical(m, ex, sel, calib_next, &c, &rep, &err) : err.status;
	cli_interrupt_catch(false);
	cli_progress_end(ctx->s);
	bool stopped = c.interrupted;
	calib_free(&c);
	if (st != DFQ_OK)
		return cmd_fail(ctx, "%s",
		                stopped ? "biascorr interrupted; nothing changed" : err.msg);
	session_model_changed(ctx->s);
	static const struct mc_row_keys keys = {"mean_err", "correction", NULL, NULL, "samples"};
	mc_print_report(ctx, &rep, biascorr_emp_row, &keys);
	cJSON_AddBoolToObject(ctx->json, "empirical", true);
	cJSON_AddNumberToObject(ctx->json, "samples", (double)c.n);
	dfq_step_report_free(&rep);
	return CMD_RETURN_NORMAL;
}

/* --- biascorr --check ------------------------------------------------------------ */

/* A layer whose prediction goes wrong: correcting by it would leave more
 * than half of the measured shift (or the shift and the prediction point
 * apart). */
#define CHECK_WRONG_RESID 0.5
/* What is left is small next to the output's spread (rms of gamma). */
#define CHECK_SMALL_SD 0.01

/* The k channels with the largest |pred - meas| into idx (k <= 3). */
static int check_worst(const struct dfq_bccheck_layer *e, int64_t *idx, int k)
{
	int got = 0;
	for (int64_t o = 0; o < e->cout; o++) {
		double d = fabs(e->pred[o] - e->meas[o]);
		int at = got < k ? got++ : k;
		while (at > 0 && fabs(e->pred[idx[at - 1]] - e->meas[idx[at - 1]]) < d) {
			if (at < k)
				idx[at] = idx[at - 1];
			at--;
		}
		if (at < k)
			idx[at] = o;
	}
	return got;
}

static cJSON *check_array(const double *x, int64_t n)
{
	cJSON *a = cJSON_CreateArray();
	for (int64_t i = 0; a && i < n; i++) {
		cJSON *v = isfinite(x[i]) ? cJSON_CreateNumber(x[i]) : cJSON_CreateNull();
		if (!cJSON_AddItemToArray(a, v))
			cJSON_Delete(v);
	}
	return a;
}

static void check_json(struct cmd_ctx *ctx, const struct dfq_bccheck_layer *e, const int64_t *w,
                       int nw, cJSON *arr)
{
	const struct dfq_model *m = ctx->s->model;
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddItemToArray(arr, o)) {
		cJSON_Delete(o);
		return;
	}
	cJSON_AddNumberToObject(o, "layer", e->layer);
	cJSON_AddStringToObject(o, "name", mc_layer_name(m, e->layer));
	cJSON_AddBoolToObject(o, "checked", e->checked);
	if (!e->checked) {
		cJSON_AddStringToObject(o, "note", e->note);
		return;
	}
	mc_json_num(o, "corr", e->corr);
	mc_json_num(o, "norm_ratio", e->ratio);
	mc_json_num(o, "left", e->resid);
	mc_json_num(o, "left_sd", e->left_sd);
	mc_json_num(o, "corr_measured_ex", e->corr_mx);
	mc_json_num(o, "norm_ratio_measured_ex", e->ratio_mx);
	mc_json_num(o, "ex_corr", e->ex_corr);
	mc_json_num(o, "ex_norm_ratio", e->ex_ratio);
	cJSON_AddBoolToObject(o, "wrong", !(e->resid <= CHECK_WRONG_RESID));
	cJSON *wa = cJSON_AddArrayToObject(o, "worst");
	for (int i = 0; wa && i < nw; i++) {
		cJSON *c = cJSON_CreateObject();
		if (!c || !cJSON_AddItemToArray(wa, c)) {
			cJSON_Delete(c);
			break;
		}
		cJSON_AddNumberToObject(c, "channel", (double)w[i]);
		mc_json_num(c, "predicted", e->pred[w[i]]);
		mc_json_num(c, "measured", e->meas[w[i]]);
	}
	cJSON_AddItemToObject(o, "predicted", check_array(e->pred, e->cout));
	cJSON_AddItemToObject(o, "measured", check_array(e->meas, e->cout));
	cJSON_AddItemToObject(o, "ex_predicted", check_array(e->ex_pred, e->cin));
	cJSON_AddItemToObject(o, "ex_measured", check_array(e->ex_meas, e->cin));
}

/* One line per layer: how well eps E[x] from BN predicts the measured shift. */
static void check_print(struct cmd_ctx *ctx, const struct dfq_bccheck *c)
{
	const struct dfq_model *m = ctx->s->model;
	int w = mc_name_width(m);
	cJSON *arr = cJSON_AddArrayToObject(ctx->json, "layers");
	char a[24], b[24], f[24];
	char wrong[512];
	size_t used = 0;
	int nchecked = 0, nwrong = 0, nex = 0, nsmall = 0;
	wrong[0] = '\0';
	cmd_result(ctx, "  %-*s  %6s  %7s  %6s  %7s  %6s  %7s  %s", w, "layer", "corr", "|p|/|m|",
	           "left", "left/sd", "E[x]r", "E[x]|r|",
	           "worst channels: predicted / measured shift");
	for (int i = 0; i < c->n; i++) {
		const struct dfq_bccheck_layer *e = &c->layers[i];
		int64_t wi[3];
		int nw = e->checked ? check_worst(e, wi, 3) : 0;
		check_json(ctx, e, wi, nw, arr);
		if (!e->checked) {
			cmd_detail(ctx, "  %-*s  not checked: %s", w, mc_layer_name(m, e->layer),
			           e->note);
			continue;
		}
		nchecked++;
		char worst[160];
		size_t wu = 0;
		worst[0] = '\0';
		for (int k = 0; k < nw && wu < sizeof worst; k++)
			wu += (size_t)snprintf(worst + wu, sizeof worst - wu, "%s%lld: %s / %s",
			                       k ? ", " : "", (long long)wi[k],
			                       mc_num(e->pred[wi[k]], a, sizeof a),
			                       mc_num(e->meas[wi[k]], b, sizeof b));
		bool bad = !(e->resid <= CHECK_WRONG_RESID);
		char h[24];
		cmd_result(ctx, "  %-*s  %6.3f  %7s  %6.3f  %7s  %6.3f  %7s  %s%s", w,
		           mc_layer_name(m, e->layer), e->corr, mc_num(e->ratio, b, sizeof b),
		           e->resid, mc_num(e->left_sd, h, sizeof h), e->ex_corr,
		           mc_num(e->ex_ratio, f, sizeof f), worst, bad ? "  <- wrong" : "");
		if (bad) {
			nwrong++;
			/* E[x] is to blame when the measured E[x] would have predicted well */
			nex += e->corr_mx > 0.9 && !(e->corr > 0.9);
			nsmall += e->left_sd < CHECK_SMALL_SD;
			if (used < sizeof wrong)
				used += (size_t)snprintf(wrong + used, sizeof wrong - used, "%s%s",
				                         nwrong > 1 ? ", " : "",
				                         mc_layer_name(m, e->layer));
		}
	}
	cmd_result(ctx,
	           "%d layer%s checked over %lld samples; the prediction goes wrong (leaves more "
	           "than %.0f%% of the shift) in %d%s%s",
	           nchecked, nchecked == 1 ? "" : "s", (long long)c->samples,
	           100.0 * CHECK_WRONG_RESID, nwrong, nwrong ? ": " : "", wrong);
	if (nwrong)
		cmd_print(ctx,
		          "  of these, %d would be predicted well from the measured E[x] (the BN "
		          "statistics no longer describe the input), and in %d what is left is "
		          "below %g of the output's spread",
		          nex, nsmall, CHECK_SMALL_SD);
	cmd_print(ctx, "  corr: of predicted and measured shift over channels; |p|/|m|: ratio of "
	               "their norms; left: |measured - predicted| / |measured|; left/sd: its rms "
	               "against the output's BN spread; E[x]r, E[x]|r|: corr and norm ratio for "
	               "E[x] per input channel");
	cJSON_AddNumberToObject(ctx->json, "samples", (double)c->samples);
	cJSON_AddNumberToObject(ctx->json, "checked", nchecked);
	cJSON_AddNumberToObject(ctx->json, "wrong", nwrong);
}

static enum cmd_retval biascorr_check(struct cmd_ctx *ctx, struct dfq_model *m, const bool *sel,
                                      const struct args *a)
{
	ctx->not_a_step = true; /* a query: nothing is kept */
	if (!m->folded)
		return cmd_fail(ctx,
		                "fold and quantize the layers before checking bias correction");
	struct calib c;
	struct dfq_error err;
	dfq_error_clear(&err);
	if (!calib_open(ctx, a, &c))
		return CMD_RETURN_ERROR;
	struct dfq_exec *ex = session_exec(ctx->s, &err);
	struct dfq_bccheck chk = {0};
	calib_progress(&c, ctx->s, "biascorr --check", 1);
	cli_interrupt_catch(true);
	dfq_status st =
	    ex ? dfq_model_biascorr_check(m, ex, sel, calib_next, &c, &chk, &err) : err.status;
	cli_interrupt_catch(false);
	cli_progress_end(ctx->s);
	bool stopped = c.interrupted;
	calib_free(&c);
	if (st != DFQ_OK) {
		dfq_bccheck_free(&chk);
		return cmd_fail(ctx, "%s", stopped ? "biascorr --check interrupted" : err.msg);
	}
	check_print(ctx, &chk);
	dfq_bccheck_free(&chk);
	return CMD_RETURN_NORMAL;
}

static enum cmd_retval cmd_biascorr_exec(struct cmd_ctx *ctx, struct args *a)
{
	static const struct mc_row_keys keys = {"err_before", "err_after", NULL, NULL,
	                                        "max_correction"};
	if (args_has(a, "check") && args_has(a, "empirical"))
		return cmd_fail(ctx, "--check checks the analytic correction: give it without "
		                     "--empirical");
	if (args_has(a, "check"))
		return biascorr_check(ctx, ctx->s->model, ctx->sel, a);
	if (args_get(a, "n") && !args_has(a, "empirical"))
		return cmd_fail(ctx, "--n goes with --empirical or --check (analytic correction "
		                     "reads no data)");
	if (args_has(a, "empirical"))
		return biascorr_empirical(ctx, ctx->s->model, ctx->sel, a);
	struct dfq_step_report rep;
	enum cmd_retval rv = mc_step(ctx, true, biascorr_fn, ctx->sel, biascorr_row, &keys, &rep);
	cJSON_AddBoolToObject(ctx->json, "empirical", false);
	cJSON_AddBoolToObject(ctx->json, "has_stats", rep.has_stats);
	dfq_step_report_free(&rep);
	return rv;
}

static const struct args_flag biascorr_flags[] = {
    {"empirical", false, NULL, NULL},
    {"check", false, NULL, NULL},
    {"n", true, NULL, &n_num},
    {NULL, false, NULL, NULL},
};

const struct cmd_entry cmd_biascorr_entry = {
    .name = "biascorr",
    .alias = NULL,
    .usage = "biascorr TARGET... [--empirical [--n N] | --check [--n N]]",
    .args = {biascorr_flags, 1, -1, ARGS_TARGET, NULL},
    .summary = "bias correction: analytic from BN statistics, or empirical from data",
    .exec = cmd_biascorr_exec,
    .flags = CMD_NEEDS_MODEL | CMD_STEP,
    .help = "--check changes nothing: over the calibration slice (or N samples) it measures\n"
            "each layer's mean output shift from its weight error on its real FP32 input,\n"
            "and E[x] per input channel, against what the analytic correction predicts\n"
            "(eps E[x], E[x] from BN): correlation over channels, norm ratio, what the\n"
            "correction would leave, the worst channels.  --json has every channel.",
};

/* --- error ------------------------------------------------------------------------ */

/* Up to max values of t on one line, with "... (N in all)" when cut. */
static void print_values(struct cmd_ctx *ctx, const struct dfq_tensor *t, int64_t max)
{
	char line[1024];
	size_t used = 0;
	line[0] = '\0';
	const float *x = dfq_tensor_f32(t);
	int64_t n = t->numel < max ? t->numel : max;
	for (int64_t i = 0; i < n && used < sizeof line; i++)
		used += (size_t)snprintf(line + used, sizeof line - used, "%s%.4g", i ? " " : "",
		                         (double)x[i]);
	if (n < t->numel)
		cmd_result(ctx,
		           "  %s ... (%lld values in all; --out FILE.npy or --json for every one)",
		           line, (long long)t->numel);
	else
		cmd_result(ctx, "  %s", line);
}

static void error_json(struct cmd_ctx *ctx, const struct dfq_tensor *t,
                       const struct dfq_qerr_stats *st)
{
	cJSON *j = ctx->json;
	if (!j)
		return;
	mc_json_num(j, "sqnr_db", st->sqnr_db);
	mc_json_num(j, "max_abs", st->max_abs);
	mc_json_num(j, "mean_abs", st->mean_abs);
	mc_json_num(j, "mean", st->mean);
	mc_json_num(j, "rms", st->rms);
	cJSON *dims = cJSON_AddArrayToObject(j, "shape");
	for (int i = 0; dims && i < t->ndim; i++) {
		cJSON *d = cJSON_CreateNumber((double)t->dims[i]);
		if (!cJSON_AddItemToArray(dims, d))
			cJSON_Delete(d);
	}
	cJSON *vals = cJSON_AddArrayToObject(j, "values");
	const float *x = dfq_tensor_f32(t);
	for (int64_t i = 0; vals && i < t->numel; i++) {
		cJSON *v = cJSON_CreateNumber(x[i]);
		if (!cJSON_AddItemToArray(vals, v))
			cJSON_Delete(v);
	}
}

static enum cmd_retval cmd_error_exec(struct cmd_ctx *ctx, struct args *a)
{
	struct dfq_model *m = ctx->s->model;
	struct dfq_error err;
	dfq_error_clear(&err);
	dfq_qerr_reduce red = DFQ_QERR_CHANNEL;
	const char *rs = args_get(a, "reduce");
	if (rs && dfq_qerr_reduce_parse(rs, &red, &err) != DFQ_OK)
		return cmd_fail_error(ctx, &err);
	int li = mc_one_target(ctx);
	if (li < 0)
		return CMD_RETURN_ERROR;
	const struct dfq_layer *L = &m->layers[li];
	struct dfq_qconfig q;
	const struct dfq_qconfig *qp = NULL;
	if (!L->quantized) {
		mc_session_qconfig(ctx->s, &q);
		qp = &q;
	}
	struct dfq_tensor *eps = NULL;
	struct dfq_qerr_stats st;
	if (dfq_model_weight_error(m, li, qp, red, &eps, &st, &err) != DFQ_OK)
		return cmd_fail_error(ctx, &err);
	char cfg[96], shape[160];
	struct dfq_shape sh;
	dfq_tensor_shape(eps, &sh);
	mc_qconfig_str(L->quantized ? &L->q : &q, cfg, sizeof cfg);
	cmd_result(ctx, "%s: %s%s", mc_layer_name(m, li), cfg,
	           L->quantized ? "" : " (not quantized: the error it would have)");
	cmd_result(ctx, "  SQNR %.2f dB, max |err| %.4g, mean |err| %.4g, mean err %.4g, rms %.4g",
	           st.sqnr_db, st.max_abs, st.mean_abs, st.mean, st.rms);
	cmd_result(ctx, "  reduce %s: %s", dfq_qerr_reduce_name(red),
	           dfq_shape_str(&sh, shape, sizeof shape));
	print_values(ctx, eps, 16);
	cJSON_AddNumberToObject(ctx->json, "layer", li);
	cJSON_AddStringToObject(ctx->json, "name", mc_layer_name(m, li));
	cJSON_AddStringToObject(ctx->json, "config", cfg);
	cJSON_AddBoolToObject(ctx->json, "quantized", L->quantized);
	cJSON_AddStringToObject(ctx->json, "reduce", dfq_qerr_reduce_name(red));
	error_json(ctx, eps, &st);
	const char *out = args_get(a, "out");
	enum cmd_retval rv = CMD_RETURN_NORMAL;
	if (out && dfq_npy_write(out, eps, &err) != DFQ_OK)
		rv = cmd_fail_error(ctx, &err);
	else if (out)
		cmd_print(ctx, "  wrote %s", out);
	dfq_tensor_free(eps);
	return rv;
}

static const char *const reduce_words[] = {"none", "sum", "mean", "channel", "spatial", NULL};

static const struct args_flag error_flags[] = {
    {"reduce", true, reduce_words, NULL},
    {"out", true, NULL, NULL},
    {NULL, false, NULL, NULL},
};

const struct cmd_entry cmd_error_entry = {
    .name = "error",
    .alias = NULL,
    .usage = "error LAYER [--reduce none|sum|mean|channel|spatial] [--out FILE.npy]",
    .args = {error_flags, 1, 1, ARGS_TARGET, NULL},
    .summary = "weight quantization error of a layer: SQNR, max, mean, per channel",
    .exec = cmd_error_exec,
    .flags = CMD_NEEDS_MODEL,
};
