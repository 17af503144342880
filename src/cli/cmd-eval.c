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

#define BAR_WIDTH 30

/* The progress bar on stderr (only on a terminal, never with --json). */
struct progress {
	bool show;
	bool drawn;
	double last; /* seconds at the last redraw */
};

static void bar_clear(struct progress *p)
{
	if (p->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		p->drawn = false;
	}
}

static void bar_draw(struct progress *p, int64_t done, int64_t total, double secs)
{
	char bar[BAR_WIDTH + 1];
	int fill = total ? (int)(BAR_WIDTH * done / total) : 0;
	for (int i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '-';
	bar[BAR_WIDTH] = '\0';
	double rate = secs > 0 ? (double)done / secs : 0;
	long eta = rate > 0 ? (long)((double)(total - done) / rate + 0.5) : 0;
	fprintf(stderr, "\r\033[Keval [%s] %3d%% %lld/%lld  %.0f images/s  ETA %ld:%02ld", bar,
	        (int)(100 * done / (total ? total : 1)), (long long)done, (long long)total, rate,
	        eta / 60, eta % 60);
	fflush(stderr);
	p->drawn = true;
}

/* After each batch: redraw at most ten times a second; stop on Ctrl-C. */
static bool on_progress(void *user, int64_t done, int64_t total, double secs)
{
	struct progress *p = user;
	if (p->show && (secs - p->last >= 0.1 || done == total)) {
		bar_draw(p, done, total, secs);
		p->last = secs;
	}
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

/* Batches go through dfq_model_run, so a fake-quant eval also quantizes the
 * model input, as an INT8 runtime would. */
struct model_run {
	struct dfq_model *m;
	dfq_run_mode mode;
};

static dfq_status run_model(void *user, struct dfq_exec *ex, struct dfq_tensor *x,
                            struct dfq_tensor **outputs, struct dfq_error *err)
{
	struct model_run *mr = user;
	return dfq_model_run(mr->m, ex, mr->mode, &x, outputs, err);
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

	struct progress p = {.show = !s->json && !s->quiet && isatty(STDERR_FILENO)};
	o.progress = on_progress;
	o.user = &p;
	struct model_run mr = {.m = s->model, .mode = (dfq_run_mode)mode};
	if (s->model) {
		o.run = run_model;
		o.run_user = &mr;
	}
	struct dfq_eval_result r;
	cli_interrupt_catch(true);
	dfq_status st = dfq_eval_run(ex, s->graph, s->data, &o, &r, &err);
	cli_interrupt_catch(false);
	bar_clear(&p);
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
