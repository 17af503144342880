/* cmd-history.c - the step history: steps, undo, redo, reset. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model-cmd.h"

/* --- steps ------------------------------------------------------------------------------ */

/* "92.58" or "-" */
static const char *pct(const struct eval_mark *e, char *buf, size_t len)
{
	if (e->valid)
		snprintf(buf, len, "%.2f", 100.0 * e->top1);
	else
		snprintf(buf, len, "-");
	return buf;
}

/* "+1.23" against ref when both were measured on the same samples, else "-". */
static const char *delta(const struct eval_mark *e, const struct eval_mark *ref, char *buf,
                         size_t len)
{
	if (e->valid && ref->valid && e->n == ref->n)
		snprintf(buf, len, "%+.2f", 100.0 * (e->top1 - ref->top1));
	else
		snprintf(buf, len, "-");
	return buf;
}

/* The names of the layers an entry touched, as far as they fit in buf. */
static void touched_names(const struct dfq_model *m, const struct dfq_history_entry *e, char *buf,
                          size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int k = 0; k < e->ntouched && used + 1 < len; k++) {
		int n = snprintf(buf + used, len - used, "%s%s", k ? ", " : "",
		                 mc_layer_name(m, e->touched[k]));
		if (n < 0 || (size_t)n >= len - used) {
			snprintf(buf + (len > 4 ? len - 4 : 0), len > 4 ? 4 : len, "...");
			break;
		}
		used += (size_t)n;
	}
}

static void entry_json(cJSON *arr, const struct dfq_model *m, int i,
                       const struct dfq_history_entry *e, const struct step_tag *t)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddNumberToObject(o, "step", i + 1);
	cJSON_AddStringToObject(o, "line", e->label);
	cJSON_AddBoolToObject(o, "applied", e->applied);
	cJSON_AddNumberToObject(o, "when", (double)(t && t->when ? t->when : e->when));
	cJSON_AddNumberToObject(o, "seconds", e->seconds);
	cJSON *ls = cJSON_AddArrayToObject(o, "layers");
	for (int k = 0; ls && k < e->ntouched; k++) {
		cJSON *s = cJSON_CreateString(mc_layer_name(m, e->touched[k]));
		if (!cJSON_AddItemToArray(ls, s))
			cJSON_Delete(s);
	}
	if (t)
		mc_json_mark(o, "eval", &t->eval, t->eval_quant);
	else
		cJSON_AddNullToObject(o, "eval");
	if (!cJSON_AddItemToArray(arr, o))
		cJSON_Delete(o);
}

static enum cmd_retval cmd_steps_exec(struct cmd_ctx *ctx, struct args *a)
{
	struct session *s = ctx->s;
	const struct dfq_model *m = s->model;
	int n = dfq_model_history_count(m), applied = dfq_model_history_applied(m);
	cJSON *arr = cJSON_AddArrayToObject(ctx->json, "steps");
	mc_json_mark(ctx->json, "fp32", &s->fp32, false);
	cJSON_AddNumberToObject(ctx->json, "applied", applied);
	/* the label column takes what the others leave, within reason */
	int width = cli_output_width();
	int lw = width - 62;
	lw = lw < 16 ? 16 : lw > 60 ? 60 : lw;
	char b1[24], b2[24], b3[24];
	cmd_result(ctx, "  #  %-*s %6s  %-8s %8s  %6s %8s %8s", lw, "step", "layers", "at", "took",
	           "top-1", "vs FP32", "vs prev");
	cmd_result(ctx, "  0  %-*s %6s  %-8s %8s  %6s %8s %8s", lw, "(the model as loaded)", "", "",
	           "", pct(&s->fp32, b1, sizeof b1), "-", "-");
	struct eval_mark prev = s->fp32;
	for (int i = 0; i < n; i++) {
		struct dfq_history_entry e;
		struct dfq_error err;
		if (dfq_model_history_entry(m, i, &e, &err) != DFQ_OK)
			return cmd_fail_error(ctx, &err);
		const struct step_tag *t = e.tag;
		struct eval_mark none = {0};
		const struct eval_mark *ev = t ? &t->eval : &none;
		char label[256], at[16], took[24];
		snprintf(label, sizeof label, "%s%s", e.label, e.applied ? "" : "  (undone)");
		if ((int)strlen(label) > lw)
			snprintf(label + lw - 3, sizeof label - (size_t)(lw - 3), "...");
		time_t when = t && t->when ? t->when : e.when;
		strftime(at, sizeof at, "%H:%M:%S", localtime(&when));
		if (e.seconds < 1.0)
			snprintf(took, sizeof took, "%.0f ms", e.seconds * 1e3);
		else
			snprintf(took, sizeof took, "%.1f s", e.seconds);
		cmd_result(ctx, "%3d  %-*s %6d  %-8s %8s  %6s %8s %8s", i + 1, lw, label,
		           e.ntouched, at, took, pct(ev, b1, sizeof b1),
		           delta(ev, &s->fp32, b2, sizeof b2), delta(ev, &prev, b3, sizeof b3));
		if (cmd_verbose(ctx) && e.ntouched > 0) {
			char names[1024];
			touched_names(m, &e, names, sizeof names);
			cmd_detail(ctx, "     %*s layers: %s", 0, "", names);
		}
		if (ev->valid && e.applied)
			prev = *ev;
		if (arr)
			entry_json(arr, m, i, &e, t);
	}
	if (n == 0)
		cmd_print(ctx,
		          "no steps yet: fold, relu6-to-relu, clip, equalize, absorb, quantize, "
		          "float, bits, measure and biascorr are steps");
	else if (applied < n)
		cmd_print(ctx, "%d step%s undone: 'redo' applies %s again", n - applied,
		          n - applied == 1 ? "" : "s", n - applied == 1 ? "it" : "them");
	return CMD_RETURN_NORMAL;
}

const struct cmd_entry cmd_steps_entry = {
    .name = "steps",
    .alias = NULL,
    .usage = "steps",
    .args = {NULL, 0, 0},
    .summary = "the applied steps: command, layers touched, time, accuracy after them",
    .exec = cmd_steps_exec,
    .flags = CMD_NEEDS_MODEL,
    .help = "Every command that changes the model is a step, kept with the settings and\n"
            "data it ran with; 'undo' and 'redo' move through them, 'save' writes them\n"
            "as a command file.  top-1 is the accuracy of the last eval after a step;\n"
            "'vs prev' compares it with the step evaluated before.  -v lists the layers.",
};

/* --- undo, redo, reset ------------------------------------------------------------------ */

/* "relu6-to-relu; equalize all" for entries [from, to). */
static void labels(const struct dfq_model *m, int from, int to, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int i = from; i < to && used + 1 < len; i++) {
		struct dfq_history_entry e;
		if (dfq_model_history_entry(m, i, &e, NULL) != DFQ_OK)
			break;
		int k = snprintf(buf + used, len - used, "%s%s", i > from ? "; " : "", e.label);
		if (k < 0 || (size_t)k >= len - used)
			break;
		used += (size_t)k;
	}
}

/* Undo (or redo) n steps and say which. */
static enum cmd_retval move(struct cmd_ctx *ctx, int n, bool back, const char *what)
{
	struct session *s = ctx->s;
	struct dfq_model *m = s->model;
	int before = dfq_model_history_applied(m), done;
	struct dfq_error err;
	dfq_status st =
	    back ? dfq_model_undo(m, n, &done, &err) : dfq_model_redo(m, n, &done, &err);
	if (st != DFQ_OK)
		return cmd_fail_error(ctx, &err);
	session_model_changed(s);
	s->steps_unsaved = true;
	int after = dfq_model_history_applied(m), total = dfq_model_history_count(m);
	char list[1024];
	labels(m, back ? after : before, back ? before : after, list, sizeof list);
	cmd_print(ctx, "%s: %s (%d of %d step%s applied)", what, list, after, total,
	          total == 1 ? "" : "s");
	cJSON_AddNumberToObject(ctx->json, back ? "undone" : "redone", done);
	cJSON_AddNumberToObject(ctx->json, "applied", after);
	cJSON_AddNumberToObject(ctx->json, "steps", total);
	return CMD_RETURN_NORMAL;
}

static const struct num_spec count_num = {.whole = true, .lo = 1, .hi = 10000};

static enum cmd_retval cmd_undo_exec(struct cmd_ctx *ctx, struct args *a)
{
	double n = 1;
	if (a->npos && !num_parse(a->pos[0], &count_num, &n)) {
		char why[256];
		num_why("N", a->pos[0], &count_num, why, sizeof why);
		return cmd_fail(ctx, "%s", why);
	}
	if (dfq_model_history_applied(ctx->s->model) == 0)
		return cmd_fail(ctx, "undo: nothing to undo (the model is as loaded)");
	return move(ctx, (int)n, true, "undo");
}

static enum cmd_retval cmd_redo_exec(struct cmd_ctx *ctx, struct args *a)
{
	double n = 1;
	if (a->npos && !num_parse(a->pos[0], &count_num, &n)) {
		char why[256];
		num_why("N", a->pos[0], &count_num, why, sizeof why);
		return cmd_fail(ctx, "%s", why);
	}
	const struct dfq_model *m = ctx->s->model;
	if (dfq_model_history_applied(m) == dfq_model_history_count(m))
		return cmd_fail(ctx, "redo: nothing to redo");
	return move(ctx, (int)n, false, "redo");
}

static enum cmd_retval cmd_reset_exec(struct cmd_ctx *ctx, struct args *a)
{
	struct dfq_model *m = ctx->s->model;
	int n = dfq_model_history_applied(m);
	if (n == 0) {
		cmd_print(ctx, "reset: the model is as loaded already");
		cJSON_AddNumberToObject(ctx->json, "undone", 0);
		return CMD_RETURN_NORMAL;
	}
	int done;
	struct dfq_error err;
	if (dfq_model_undo(m, n, &done, &err) != DFQ_OK)
		return cmd_fail_error(ctx, &err);
	session_model_changed(ctx->s);
	ctx->s->steps_unsaved = true;
	cmd_print(ctx, "reset: undid %d step%s; the model is as loaded ('redo %d' brings %s back)",
	          done, done == 1 ? "" : "s", done, done == 1 ? "it" : "them");
	cJSON_AddNumberToObject(ctx->json, "undone", done);
	return CMD_RETURN_NORMAL;
}

const struct cmd_entry cmd_undo_entry = {
    .name = "undo",
    .alias = NULL,
    .usage = "undo [N]",
    .args = {NULL, 0, 1, ARGS_CHOICE, NULL},
    .summary = "undo the last step (or N steps): the model exactly as it was",
    .exec = cmd_undo_exec,
    .flags = CMD_NEEDS_MODEL,
    .help = "Undoing restores what the step changed (weights, ranges, corrections,\n"
            "the graph) exactly; settings stay as they are.  'redo' goes forward again\n"
            "until a new step is made.",
};

const struct cmd_entry cmd_redo_entry = {
    .name = "redo",
    .alias = NULL,
    .usage = "redo [N]",
    .args = {NULL, 0, 1, ARGS_CHOICE, NULL},
    .summary = "apply the next undone step (or N of them) again",
    .exec = cmd_redo_exec,
    .flags = CMD_NEEDS_MODEL,
};

const struct cmd_entry cmd_reset_entry = {
    .name = "reset",
    .alias = NULL,
    .usage = "reset",
    .args = {NULL, 0, 0},
    .summary = "undo every step: the model as loaded (settings, data and 'redo' stay)",
    .exec = cmd_reset_exec,
    .flags = CMD_NEEDS_MODEL,
};
