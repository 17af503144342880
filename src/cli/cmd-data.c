/* cmd-data.c - data: open an evaluation/calibration data set and describe it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "dfq/dfq_data.h"

/* "M" or "M,M,M" into vals (at most DFQ_DATA_MAX_CHANNELS). */
static bool parse_floats(struct cmd_ctx *ctx, const char *flag, const char *v, float *vals, int *n)
{
	static const struct num_spec real = {.lo = -INFINITY, .hi = INFINITY};
	*n = 0;
	for (const char *p = v;; p++) {
		char item[64];
		size_t k = strcspn(p, ",");
		double x;
		snprintf(item, sizeof item, "%.*s", (int)k, p);
		if (k >= sizeof item || !num_parse(item, &real, &x)) {
			cmd_error(ctx,
			          "--%s takes one number or one per channel separated by "
			          "commas (e.g. 0.485,0.456,0.406), not '%s'",
			          flag, v);
			return false;
		}
		if (*n == DFQ_DATA_MAX_CHANNELS) {
			cmd_error(ctx, "--%s takes at most %d values", flag, DFQ_DATA_MAX_CHANNELS);
			return false;
		}
		vals[(*n)++] = (float)x;
		p += k;
		if (!*p)
			return true;
	}
}

static bool parse_opts(struct cmd_ctx *ctx, struct args *a, struct dfq_data_opts *o)
{
	dfq_data_opts_default(o);
	const char *v;
	o->n_eval = (int64_t)args_num(a, "n", (double)o->n_eval);
	o->n_calib = (int64_t)args_num(a, "calib", (double)o->n_calib);
	if ((v = args_get(a, "mean")) && !parse_floats(ctx, "mean", v, o->mean, &o->nmean))
		return false;
	if ((v = args_get(a, "std")) && !parse_floats(ctx, "std", v, o->std, &o->nstd))
		return false;
	return true;
}

/* "0.286" or "0.485,0.456,0.406" */
static void float_list(char *buf, size_t len, const float *v, int n)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; i < n && used < len; i++)
		used +=
		    (size_t)snprintf(buf + used, len - used, "%s%g", i ? "," : "", (double)v[i]);
}

static void add_floats(cJSON *obj, const char *key, const float *v, int n)
{
	cJSON *arr = cJSON_AddArrayToObject(obj, key);
	for (int i = 0; arr && i < n; i++) {
		/* 0.286, not 0.28600001335144043: the float's shortest decimal. */
		char buf[32];
		snprintf(buf, sizeof buf, "%.7g", (double)v[i]);
		cJSON *x = cJSON_CreateNumber(strtod(buf, NULL));
		if (!cJSON_AddItemToArray(arr, x))
			cJSON_Delete(x);
	}
}

static void print_shape(struct cmd_ctx *ctx, const struct dfq_data_info *in, bool show)
{
	cJSON *arr = cJSON_AddArrayToObject(ctx->json, "shape");
	if (in->channels > 0) {
		const int64_t d[3] = {in->channels, in->height, in->width};
		for (int i = 0; arr && i < 3; i++) {
			cJSON *x = cJSON_CreateNumber((double)d[i]);
			if (!cJSON_AddItemToArray(arr, x))
				cJSON_Delete(x);
		}
	}
	cJSON_AddStringToObject(ctx->json, "element", in->element);
	if (in->from_model && in->channels > 0)
		cmd_out(ctx, show,
		        "  %-9s [%d, %lld, %lld] (the model's input: %s files resized and "
		        "centre-cropped)",
		        "sample", in->channels, (long long)in->height, (long long)in->width,
		        in->element);
	else if (in->from_model)
		cmd_out(ctx, show,
		        "  %-9s %s files, resized to the model's input once a model is "
		        "loaded",
		        "sample", in->element);
	else
		cmd_out(ctx, show, "  %-9s [%d, %lld, %lld] %s", "sample", in->channels,
		        (long long)in->height, (long long)in->width, in->element);
}

static void print_classes(struct cmd_ctx *ctx, const struct dfq_data_info *in, bool show)
{
	cJSON_AddNumberToObject(ctx->json, "classes", in->nclasses);
	if (!in->class_names) {
		cmd_out(ctx, show, "  %-9s %d", "classes", in->nclasses);
		return;
	}
	cJSON *arr = cJSON_AddArrayToObject(ctx->json, "class_names");
	char line[512];
	size_t used = 0;
	line[0] = '\0';
	for (int i = 0; i < in->nclasses; i++) {
		cJSON *x = cJSON_CreateString(in->class_names[i]);
		if (!cJSON_AddItemToArray(arr, x))
			cJSON_Delete(x);
		if (used < sizeof line)
			used += (size_t)snprintf(line + used, sizeof line - used, "%s%s",
			                         i ? ", " : "", in->class_names[i]);
	}
	if (used >= sizeof line)
		strcpy(line + sizeof line - 4, "...");
	cmd_out(ctx, show, "  %-9s %d (%s)", "classes", in->nclasses, line);
}

static cJSON *slice_json(cJSON *obj, const char *key, const char *set, int64_t first, int64_t n,
                         const char *source)
{
	cJSON *o = cJSON_AddObjectToObject(obj, key);
	cJSON_AddStringToObject(o, "set", set);
	cJSON_AddNumberToObject(o, "first", (double)first);
	cJSON_AddNumberToObject(o, "n", (double)n);
	if (source)
		cJSON_AddStringToObject(o, "source", source);
	return o;
}

static void print_slices(struct cmd_ctx *ctx, const struct dfq_data_info *in, bool show)
{
	bool fm = in->kind == DFQ_DATA_FMNIST;
	slice_json(ctx->json, "eval", in->eval_set, in->eval_first, in->eval_n, in->eval_source);
	slice_json(ctx->json, "calib", in->calib_set, in->calib_first, in->calib_n,
	           in->calib_source);
	if (fm)
		cmd_out(ctx, show, "  %-9s first %lld of the test set", "eval",
		        (long long)in->eval_n);
	else
		cmd_out(ctx, show, "  %-9s first %lld (samples 0..%lld)", "eval",
		        (long long)in->eval_n, (long long)in->eval_n - 1);
	if (in->calib_n == 0)
		cmd_out(ctx, show, "  %-9s none", "calib");
	else if (fm)
		cmd_out(ctx, show, "  %-9s first %lld of the training set (%lld samples, %s)",
		        "calib", (long long)in->calib_n, (long long)in->calib_total,
		        in->calib_source);
	else
		cmd_out(ctx, show, "  %-9s last %lld (samples %lld..%lld)", "calib",
		        (long long)in->calib_n, (long long)in->calib_first,
		        (long long)(in->calib_first + in->calib_n - 1));
}

static void print_norm(struct cmd_ctx *ctx, const struct dfq_data_info *in, bool show)
{
	char m[96], s[96];
	float_list(m, sizeof m, in->mean, in->nnorm);
	float_list(s, sizeof s, in->std, in->nnorm);
	add_floats(ctx->json, "mean", in->mean, in->nnorm);
	add_floats(ctx->json, "std", in->std, in->nnorm);
	cJSON_AddNumberToObject(ctx->json, "scale", in->eight_bit ? 1.0 / 255 : 1.0);
	const char *x = in->eight_bit ? "x/255" : "x";
	if (in->nnorm == 1)
		cmd_out(ctx, show, "  %-9s (%s - %s) / %s", "normalise", x, m, s);
	else
		cmd_out(ctx, show, "  %-9s (%s - mean) / std per channel, mean %s, std %s",
		        "normalise", x, m, s);
}

/* The data set's summary; show: it is the command's result (else it is
 * informational text, silenced by -q). */
static void print_summary(struct cmd_ctx *ctx, const struct dfq_data_info *in, bool show)
{
	cJSON_AddStringToObject(ctx->json, "spec", in->spec);
	cJSON_AddStringToObject(ctx->json, "kind", in->kind_name);
	cJSON_AddStringToObject(ctx->json, "source", in->eval_source);
	cJSON_AddNumberToObject(ctx->json, "samples", (double)in->eval_total);
	cmd_out(ctx, show, "data %s", in->spec);
	cmd_out(ctx, show, "  %-9s %s", "kind", in->kind_name);
	cmd_out(ctx, show, "  %-9s %s", "source", in->eval_source);
	cmd_out(ctx, show, "  %-9s %lld%s", "samples", (long long)in->eval_total,
	        in->kind == DFQ_DATA_FMNIST ? " (test set)" : "");
	print_shape(ctx, in, show);
	print_classes(ctx, in, show);
	print_slices(ctx, in, show);
	print_norm(ctx, in, show);
}

/* With a one-input model loaded, d must fit its input (image folders take
 * their size from it). */
static dfq_status fit_model(const struct session *s, struct dfq_data *d, struct dfq_error *err)
{
	if (!s->graph || s->graph->ninputs != 1)
		return DFQ_OK;
	const struct dfq_value *v = &s->graph->values[s->graph->inputs[0]];
	return dfq_data_fit(d, v->name, &v->shape, err);
}

/* Open spec and make it the session's data.  On failure the session keeps
 * its old data. */
static enum cmd_retval open_data(struct cmd_ctx *ctx, const char *spec,
                                 const struct dfq_data_opts *o)
{
	struct session *s = ctx->s;
	struct dfq_error err;
	struct dfq_data *d = NULL;
	dfq_error_clear(&err);
	if (dfq_data_open(spec, o, &d, &err) != DFQ_OK)
		return cmd_fail_error(ctx, &err);
	/* the command as typed, for save and session save to open the same data */
	char *line = strdup(ctx->line_text);
	if (!line) {
		dfq_data_free(d);
		return cmd_fail(ctx, "out of memory");
	}
	if (fit_model(s, d, &err) != DFQ_OK || session_set_data(s, d, &err) != DFQ_OK) {
		free(line);
		dfq_data_free(d);
		return cmd_fail_error(ctx, &err);
	}
	free(s->data_line);
	s->data_line = line;
	/* Opening data is an action: its summary is informational. */
	print_summary(ctx, dfq_data_get_info(d), false);
	return CMD_RETURN_NORMAL;
}

static enum cmd_retval cmd_data_exec(struct cmd_ctx *ctx, struct args *a)
{
	struct dfq_data_opts o;
	if (a->npos == 0) {
		if (a->nflags)
			return cmd_fail(ctx, "data: the flags need a SPEC; usage: %s",
			                ctx->entry->usage);
		if (!ctx->s->data)
			return cmd_fail(ctx, CLI_MSG_NO_DATA);
		/* The model may have changed since the data was opened. */
		struct dfq_error err;
		if (fit_model(ctx->s, ctx->s->data, &err) != DFQ_OK)
			return cmd_fail_error(ctx, &err);
		/* "data" alone asks for the summary: it is the result. */
		print_summary(ctx, dfq_data_get_info(ctx->s->data), true);
		return CMD_RETURN_NORMAL;
	}
	if (!parse_opts(ctx, a, &o))
		return CMD_RETURN_ERROR;
	return open_data(ctx, a->pos[0], &o);
}

static const struct num_spec n_num = {.whole = true, .lo = 1, .hi = INFINITY};
static const struct num_spec calib_num = {.whole = true, .lo = 0, .hi = INFINITY};

static const struct args_flag data_flags[] = {
    {"n", true, NULL, &n_num}, {"calib", true, NULL, &calib_num}, {"mean", true, NULL, NULL},
    {"std", true, NULL, NULL}, {NULL, false, NULL, NULL},
};

const struct cmd_entry cmd_data_entry = {
    .name = "data",
    .alias = NULL,
    .usage = "data [SPEC] [--n N] [--calib N] [--mean M[,M..]] [--std S[,S..]]",
    .args = {data_flags, 0, 1},
    .summary = "open data: fmnist[:DIR], idx:IMAGES,LABELS, npy:X.npy,Y.npy, images:DIR",
    .exec = cmd_data_exec,
};
