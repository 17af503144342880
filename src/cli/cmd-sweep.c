/* cmd-sweep.c - sweep wbits|abits|clip A..B[:STEP]: top-1 against one setting for the pipeline
 * as it stands (sweep.c runs it on scratch sessions); the table, and the result kept for
 * `plot sweep`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model-cmd.h"
#include "sweep.h"

static const char *const sweep_words[] = {"wbits", "abits", "clip", NULL};

/* "W4", "A6", "4" as the table's first column shows a value. */
static void value_str(enum sweep_kind k, double v, char *buf, size_t len)
{
	if (k == SWEEP_CLIP)
		snprintf(buf, len, "%.4g", v);
	else
		snprintf(buf, len, "%s%d", k == SWEEP_WBITS ? "W" : "A", (int)v);
}

static void print_result(struct cmd_ctx *ctx, const struct sweep_result *r)
{
	const char *k = sweep_kind_name(r->kind);
	cmd_result(ctx, "FP32 (as loaded)  top-1 %6.2f%%", 100.0 * r->fp32.top1);
	cmd_result(ctx, "%-8s  %7s  %8s", r->kind == SWEEP_CLIP ? "clip X" : k, "top-1", "vs FP32");
	cJSON *pts = cJSON_AddArrayToObject(ctx->json, "points");
	for (int i = 0; i < r->ndone; i++) {
		const struct sweep_point *p = &r->pts[i];
		double t1 = p->n ? (double)p->top1 / (double)p->n : 0;
		double t5 = p->n ? (double)p->top5 / (double)p->n : 0;
		double d = 100.0 * (t1 - r->fp32.top1);
		char v[32];
		value_str(r->kind, p->value, v, sizeof v);
		cmd_result(ctx, "%-8s  %6.2f%%  %+8.2f", v, 100.0 * t1, d);
		cJSON *o = cJSON_CreateObject();
		if (!o)
			continue;
		cJSON_AddNumberToObject(o, "value", p->value);
		cJSON_AddNumberToObject(o, "top1", t1);
		cJSON_AddNumberToObject(o, "top5", t5);
		cJSON_AddNumberToObject(o, "n", (double)p->n);
		cJSON_AddNumberToObject(o, "delta_fp32", d);
		if (!cJSON_AddItemToArray(pts, o))
			cJSON_Delete(o);
	}
}

static enum cmd_retval cmd_sweep_exec(struct cmd_ctx *ctx, struct args *a)
{
	struct session *s = ctx->s;
	enum sweep_kind kind;
	if (strcmp(a->pos[0], "wbits") == 0)
		kind = SWEEP_WBITS;
	else if (strcmp(a->pos[0], "abits") == 0)
		kind = SWEEP_ABITS;
	else if (strcmp(a->pos[0], "clip") == 0)
		kind = SWEEP_CLIP;
	else
		return cmd_fail(ctx,
		                "sweep: '%s' is not a setting to sweep; use wbits, abits or clip",
		                a->pos[0]);
	struct sweep_req req;
	char why[512];
	if (!sweep_parse_range(kind, a->pos[1], &req, why, sizeof why))
		return cmd_fail(ctx, "%s", why);
	req.n = (int64_t)args_num(a, "n", 0);
	int64_t avail = dfq_data_count(s->data, DFQ_SPLIT_EVAL);
	if (req.n > avail)
		return cmd_fail(ctx, "--n %lld: the data has %lld evaluation samples",
		                (long long)req.n, (long long)avail);
	int npts = sweep_count(&req);
	int nsteps = dfq_model_history_applied(s->model);
	cmd_print(ctx,
	          "sweep %s %s: %d point%s, each the model loaded again and its %d step%s "
	          "replayed",
	          sweep_kind_name(kind), a->pos[1], npts, npts == 1 ? "" : "s", nsteps,
	          nsteps == 1 ? "" : "s");
	struct sweep_result *r;
	if (!sweep_run(ctx, &req, &r))
		return CMD_RETURN_ERROR;
	cmd_print(ctx, "  %s; top-1 on %lld images", r->how, (long long)r->n);
	cJSON_AddStringToObject(ctx->json, "kind", sweep_kind_name(kind));
	cJSON_AddNumberToObject(ctx->json, "from", req.lo);
	cJSON_AddNumberToObject(ctx->json, "to", req.hi);
	cJSON_AddNumberToObject(ctx->json, "step", req.step);
	cJSON_AddNumberToObject(ctx->json, "n", (double)r->n);
	cJSON_AddStringToObject(ctx->json, "how", r->how);
	cJSON *steps = cJSON_AddArrayToObject(ctx->json, "steps");
	for (int i = 0; steps && i < r->nsteps; i++) {
		cJSON *l = cJSON_CreateString(r->steps[i]);
		if (!cJSON_AddItemToArray(steps, l))
			cJSON_Delete(l);
	}
	mc_json_mark(ctx->json, "fp32", &r->fp32, false);
	print_result(ctx, r);
	cJSON_AddBoolToObject(ctx->json, "interrupted", r->interrupted);
	bool stopped = r->interrupted;
	int done = r->ndone, planned = r->nplanned;
	sweep_free(s->sweep);
	s->sweep = r;
	if (stopped)
		return cmd_fail(ctx,
		                "sweep interrupted after %d of %d points (kept: 'plot sweep' draws "
		                "them)",
		                done, planned);
	cmd_print(ctx, "'plot sweep' draws it");
	return CMD_RETURN_NORMAL;
}

static const struct num_spec n_num = {.whole = true, .lo = 1, .hi = INFINITY};

static const struct args_flag sweep_flags[] = {
    {"n", true, NULL, &n_num},
    {NULL, false, NULL, NULL},
};

const struct cmd_entry cmd_sweep_entry = {
    .name = "sweep",
    .alias = NULL,
    .usage = "sweep wbits|abits|clip A..B[:STEP] [--n N]",
    .args = {sweep_flags, 2, 2, ARGS_CHOICE, sweep_words},
    .summary = "top-1 against weight bits, activation bits or weight clip, for the steps so far",
    .exec = cmd_sweep_exec,
    .flags = CMD_NEEDS_MODEL | CMD_NEEDS_DATA,
    .help = "For each value from A to B (STEP 1 for bits; clip's default makes six points)\n"
            "the model is loaded again from its file, the applied steps are replayed as\n"
            "recorded (settings and data as each ran, as 'save' writes them) with the\n"
            "value put in, and the result is evaluated on the first N images of the eval\n"
            "slice (default: all of it); the FP32 model as loaded is evaluated once.\n"
            "The session's model, steps and settings stay exactly as they were.\n"
            "  wbits, abits: 'set wbits|abits' for every step, and the value replaces the\n"
            "    --wbits|--abits of every quantize step, explicit ones too; layers pinned\n"
            "    with 'bits' keep their bits, layers kept with 'float' stay float.  With no\n"
            "    quantize step, each point ends with 'quantize all'.\n"
            "  clip X (X > 0): the LO HI of every clip step become -X X; with no clip step,\n"
            "    'clip all -X X' runs before the first quantize step (or last).\n"
            "Ctrl-C stops it and keeps the points done.  'plot sweep' draws the last sweep\n"
            "(top-1 against the value, the FP32 level marked); --json has every point.",
};
