/* cmd-eval.c - eval: top-1/top-5 accuracy of the model on the data's evaluation slice. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "dfq/dfq_eval.h"
#include "model-cmd.h"

/* After each batch: progress; stop on Ctrl-C. */
static bool on_progress(void *user, int64_t done, int64_t total, double secs)
{
	cli_progress(user, "eval", done, total, secs);
	return !cli_interrupted();
}

static void report(struct cmd_ctx *ctx, const struct dfq_eval_result *r)
{
	double n = r->n ? (double)r->n : 1;
	double top1 = (double)r->top1 / n, top5 = (double)r->top5 / n;
	/* The keys scripts rely on come first, in this order. */
	cJSON_AddNumberToObject(ctx->json, "top1", top1);
	cJSON_AddNumberToObject(ctx->json, "top5", top5);
	cJSON_AddNumberToObject(ctx->json, "n", (double)r->n);
	cJSON_AddNumberToObject(ctx->json, "images_per_s", r->images_per_s);
	cJSON_AddNumberToObject(ctx->json, "top1_correct", (double)r->top1);
	cJSON_AddNumberToObject(ctx->json, "top5_correct", (double)r->top5);
	cJSON_AddNumberToObject(ctx->json, "seconds", r->seconds);
	cmd_result(ctx, "top-1  %6.2f%%  (%lld of %lld)", 100 * top1, (long long)r->top1,
	           (long long)r->n);
	cmd_result(ctx, "top-5  %6.2f%%  (%lld of %lld)", 100 * top5, (long long)r->top5,
	           (long long)r->n);
	/* Wall-clock figures only with `set timing on`, so transcripts stay stable. */
	if (ctx->s->set.timing)
		cmd_result(ctx, "speed  %.1f images/s (%.2f s)", r->images_per_s, r->seconds);
}

static enum cmd_retval cmd_eval_exec(struct cmd_ctx *ctx, struct args *a)
{
	struct session *s = ctx->s;
	struct dfq_error err;
	dfq_error_clear(&err);
	struct dfq_eval_opts o;
	dfq_eval_opts_default(&o);
	o.n = (int64_t)args_num(a, "n", (double)o.n);
	o.batch = (int64_t)args_num(a, "batch", s->set.batch);
	struct dfq_exec *ex = session_exec(s, &err);
	if (!ex)
		return cmd_fail_error(ctx, &err);
	/* The model as it stands: FP32, or fake-quant once layers are quantized. */
	int mode = mc_eval_prepare(ctx, ex);
	if (mode < 0)
		return CMD_RETURN_ERROR;

	o.progress = on_progress;
	o.user = s;
	struct mc_model_run mr = {.m = s->model, .mode = (dfq_run_mode)mode};
	if (s->model) {
		o.run = mc_model_run_batch;
		o.run_user = &mr;
	}
	struct dfq_eval_result r;
	cli_interrupt_catch(true);
	dfq_status st = dfq_eval_run(ex, s->graph, s->data, &o, &r, &err);
	cli_interrupt_catch(false);
	cli_progress_end(s);
	if (st != DFQ_OK)
		return cmd_fail_error(ctx, &err);
	if (r.cancelled)
		return cmd_fail(ctx, "eval interrupted after %lld images (top-1 so far %.2f%%)",
		                (long long)r.n, r.n ? 100.0 * (double)r.top1 / (double)r.n : 0.0);
	report(ctx, &r);
	mc_eval_deltas(ctx, mode, r.n, r.top1, r.top5);
	return CMD_RETURN_NORMAL;
}

static const struct num_spec n_num = {.whole = true, .lo = 1, .hi = INFINITY};
static const struct num_spec batch_num = {.whole = true, .lo = 1, .hi = 4096};

static const struct args_flag eval_flags[] = {
    {"n", true, NULL, &n_num},
    {"batch", true, NULL, &batch_num},
    {NULL, false, NULL, NULL},
};

const struct cmd_entry cmd_eval_entry = {
    .name = "eval",
    .alias = NULL,
    .usage = "eval [--n N] [--batch B]",
    .args = {eval_flags, 0, 0},
    .summary = "top-1/top-5 accuracy on the first N samples of the data (default: all)",
    .exec = cmd_eval_exec,
    .flags = CMD_NEEDS_MODEL | CMD_NEEDS_DATA,
};
