/* cmd-plot.c - plot: a chart drawn by gnuplot (a PNG or SVG file with --out, a window when there
 * is a display, gnuplot's text otherwise), or by dfq as text when gnuplot is missing or fails. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chart.h"
#include "gnuplot.h"
#include "model-cmd.h"

static const char *const plot_words[] = {"channels", "hist",        "ranges",  "deltas",
                                         "sweep",    "sensitivity", "compare", NULL};

/* The chart kind word names (a unique prefix is enough), or NULL. */
static const char *kind_word(const char *w)
{
	const char *found = NULL;
	for (int i = 0; plot_words[i]; i++) {
		if (strcmp(w, plot_words[i]) == 0)
			return plot_words[i];
		if (strncmp(w, plot_words[i], strlen(w)) == 0)
			found = found ? "" : plot_words[i];
	}
	return found && *found ? found : NULL;
}

/* Positionals after the kind: at least min, at most max. */
static bool arity(struct cmd_ctx *ctx, const struct args *a, const char *kind, int min, int max,
                  const char *usage)
{
	int n = a->npos - 1;
	if (n < min || n > max)
		return cmd_fail(ctx, "usage: plot %s", usage), false;
	(void)kind;
	return true;
}

static bool build(struct cmd_ctx *ctx, const struct args *a, struct chart *c)
{
	struct session *s = ctx->s;
	char why[512];
	const char *kind = kind_word(a->pos[0]);
	if (!kind)
		return cmd_fail(ctx,
		                "plot: '%s' is not a chart; use channels, hist, ranges, deltas, "
		                "sweep, sensitivity or compare",
		                a->pos[0]),
		       false;
	bool hist = strcmp(kind, "hist") == 0;
	if (!hist) {
		static const char *const hflags[] = {"bins", "range", "wbits"};
		for (int i = 0; i < 3; i++)
			if (args_get(a, hflags[i]))
				return cmd_fail(ctx, "--%s goes with 'plot hist'", hflags[i]),
				       false;
	}
	bool ok;
	if (strcmp(kind, "channels") == 0) {
		if (!arity(ctx, a, kind, 1, 1, "channels LAYER"))
			return false;
		int li = cmd_one_layer(ctx, a->pos[1]);
		if (li < 0)
			return false;
		ok = chart_channels(s, li, c, why, sizeof why);
	} else if (hist) {
		if (!arity(ctx, a, kind, 1, 2,
		           "hist LAYER [weights|act] [--bins N] [--range R] "
		           "[--wbits N]"))
			return false;
		struct hist_req r;
		r.layer = cmd_one_layer(ctx, a->pos[1]);
		if (r.layer < 0 || !hist_req_from_args(ctx, a, a->npos > 2 ? a->pos[2] : NULL, &r))
			return false;
		struct dfq_hist h;
		if (!hist_compute(ctx, &r, &h))
			return false;
		ok = chart_hist(s, &h, c, why, sizeof why);
		dfq_hist_free(&h);
	} else if (strcmp(kind, "ranges") == 0) {
		if (!arity(ctx, a, kind, 0, 0, "ranges"))
			return false;
		ok = chart_ranges(s, c, why, sizeof why);
	} else if (strcmp(kind, "deltas") == 0) {
		if (!arity(ctx, a, kind, 0, 0, "deltas"))
			return false;
		ok = chart_deltas(s, c, why, sizeof why);
	} else if (strcmp(kind, "sensitivity") == 0) {
		if (!arity(ctx, a, kind, 0, 0, "sensitivity"))
			return false;
		ok = chart_sensitivity(s, c, why, sizeof why);
	} else if (strcmp(kind, "compare") == 0) {
		if (!arity(ctx, a, kind, 0, 0, "compare"))
			return false;
		ok = chart_compare(s, c, why, sizeof why);
	} else {
		if (!arity(ctx, a, kind, 0, 0, "sweep"))
			return false;
		ok = chart_sweep(s, c, why, sizeof why);
	}
	if (!ok)
		return cmd_fail(ctx, "%s", why), false;
	return true;
}

/* --- JSON: the chart's data ------------------------------------------------------------ */

static void json_array(cJSON *o, const char *key, const double *v, int n)
{
	if (!v)
		return;
	cJSON *arr = cJSON_AddArrayToObject(o, key);
	for (int i = 0; arr && i < n; i++) {
		cJSON *x = isfinite(v[i]) ? cJSON_CreateNumber(v[i]) : cJSON_CreateNull();
		if (!cJSON_AddItemToArray(arr, x))
			cJSON_Delete(x);
	}
}

static void chart_json(cJSON *j, const struct chart *c)
{
	if (!j)
		return;
	static const char *const styles[] = {"vbars", "boxes", "hbars", "line"};
	cJSON_AddStringToObject(j, "chart", chart_kind_name(c->kind));
	cJSON_AddStringToObject(j, "title", c->title ? c->title : "");
	if (c->note)
		cJSON_AddStringToObject(j, "note", c->note);
	cJSON *panels = cJSON_AddArrayToObject(j, "panels");
	for (int p = 0; panels && p < c->npanels; p++) {
		const struct chart_panel *P = &c->panels[p];
		cJSON *o = cJSON_CreateObject();
		if (!o)
			break;
		if (P->title)
			cJSON_AddStringToObject(o, "title", P->title);
		cJSON_AddStringToObject(o, "xlabel", P->xlabel ? P->xlabel : "");
		cJSON_AddStringToObject(o, "ylabel", P->ylabel ? P->ylabel : "");
		cJSON *ss = cJSON_AddArrayToObject(o, "series");
		for (int i = 0; ss && i < P->nseries; i++) {
			const struct chart_series *s = &P->series[i];
			cJSON *so = cJSON_CreateObject();
			if (!so)
				break;
			cJSON_AddStringToObject(so, "name", s->name ? s->name : "");
			cJSON_AddStringToObject(so, "style", styles[s->style]);
			json_array(so, "x", s->x, s->n);
			json_array(so, "y", s->y, s->n);
			json_array(so, "lo", s->lo, s->n);
			json_array(so, "hi", s->hi, s->n);
			if (!cJSON_AddItemToArray(ss, so))
				cJSON_Delete(so);
		}
		cJSON *marks = cJSON_AddArrayToObject(o, "marks");
		for (int i = 0; marks && i < P->nmarks; i++) {
			cJSON *mo = cJSON_CreateObject();
			if (!mo)
				break;
			cJSON_AddStringToObject(mo, "name",
			                        P->marks[i].name ? P->marks[i].name : "");
			if (P->marks[i].band)
				mc_json_range(mo, "band", true, P->marks[i].lo, P->marks[i].hi);
			else
				mc_json_num(mo, "level", P->marks[i].lo);
			if (!cJSON_AddItemToArray(marks, mo))
				cJSON_Delete(mo);
		}
		struct chart_tic *tics[2] = {P->xtics, P->ytics};
		int ntics[2] = {P->nxtics, P->nytics};
		const char *keys[2] = {"xtics", "ytics"};
		for (int t = 0; t < 2; t++) {
			if (!ntics[t])
				continue;
			cJSON *arr = cJSON_AddArrayToObject(o, keys[t]);
			for (int i = 0; arr && i < ntics[t]; i++) {
				cJSON *x = cJSON_CreateObject();
				cJSON_AddNumberToObject(x, "at", tics[t][i].at);
				cJSON_AddStringToObject(x, "label", tics[t][i].label);
				if (!cJSON_AddItemToArray(arr, x))
					cJSON_Delete(x);
			}
		}
		if (!cJSON_AddItemToArray(panels, o))
			cJSON_Delete(o);
	}
}

/* --- drawing ---------------------------------------------------------------------------- */

/* Lines of text as results. */
static void print_text(struct cmd_ctx *ctx, const char *text)
{
	for (const char *l = text; l && *l;) {
		const char *eol = strchr(l, '\n');
		int n = eol ? (int)(eol - l) : (int)strlen(l);
		cmd_result(ctx, "%.*s", n, l);
		l = eol ? eol + 1 : NULL;
	}
}

/* Rows for a chart in line mode: enough for one row per tensor. */
static int text_height(const struct chart *c)
{
	if (c->rows > 0) {
		int h = 3 * c->rows + 12;
		return h < 30 ? 30 : h > 300 ? 300 : h;
	}
	return 30;
}

static enum cmd_retval draw(struct cmd_ctx *ctx, const struct chart *c, const char *out)
{
	struct session *s = ctx->s;
	struct gnuplot *gp = session_gnuplot(s);
	char why[1024];
	int gst = GNUPLOT_OK;
	if (!gp)
		return cmd_fail(ctx, "out of memory");
	if (out) {
		if (!chart_to_file(gp, c, out, &gst, why, sizeof why)) {
			if (gst == GNUPLOT_MISSING || gst == GNUPLOT_FAILED)
				return cmd_fail(ctx, "cannot write %s: %s", out, why);
			return cmd_fail(ctx, "%s", why);
		}
		cmd_print(ctx, "wrote %s", out);
		cJSON_AddStringToObject(ctx->json, "file", out);
		cJSON_AddStringToObject(ctx->json, "drawn", "file");
		return CMD_RETURN_NORMAL;
	}
	const char *win = gnuplot_window_terminal(gp);
	if (win) {
		if (chart_to_window(gp, c, (int)c->kind, &gst, why, sizeof why)) {
			cmd_print(ctx, "shown in a gnuplot %s window", win);
			cJSON_AddStringToObject(ctx->json, "drawn", "window");
			return CMD_RETURN_NORMAL;
		}
	} else if (ctx->s->json) {
		/* scripts get the data; there is nothing to show them */
		cJSON_AddStringToObject(ctx->json, "drawn", "none");
		return CMD_RETURN_NORMAL;
	} else {
		char *text =
		    chart_dumb(gp, c, cli_output_width(), text_height(c), &gst, why, sizeof why);
		if (text) {
			print_text(ctx, text);
			free(text);
			return CMD_RETURN_NORMAL;
		}
	}
	/* gnuplot is missing or failed: one line says so, and dfq draws it */
	cmd_print(ctx, "note: %s; drawing the chart as text instead%s", why,
	          gst == GNUPLOT_MISSING ? " (install gnuplot, e.g. gnuplot-nox, for PNG, SVG and "
	                                   "windows)"
	                                 : "");
	cJSON_AddStringToObject(ctx->json, "drawn", "text");
	cJSON_AddStringToObject(ctx->json, "gnuplot", why);
	if (ctx->s->json)
		return CMD_RETURN_NORMAL;
	char *text = chart_text(c, cli_output_width(), c->rows > 0 ? c->rows + 9 : 30);
	if (!text)
		return cmd_fail(ctx, "out of memory");
	print_text(ctx, text);
	free(text);
	return CMD_RETURN_NORMAL;
}

static enum cmd_retval cmd_plot_exec(struct cmd_ctx *ctx, struct args *a)
{
	const char *out = args_get(a, "out");
	if (out) {
		/* refuse a wrong name before any work */
		const char *dot = strrchr(out, '.');
		const char *slash = strrchr(out, '/');
		if (!dot || (slash && dot < slash) ||
		    (strcasecmp(dot, ".png") != 0 && strcasecmp(dot, ".svg") != 0))
			return cmd_fail(ctx,
			                "--out %s: charts are written as .png or .svg files (the "
			                "name's extension says which)",
			                out);
	}
	struct chart c;
	memset(&c, 0, sizeof c);
	if (!build(ctx, a, &c))
		return CMD_RETURN_ERROR;
	chart_json(ctx->json, &c);
	enum cmd_retval rv = draw(ctx, &c, out);
	chart_free(&c);
	return rv;
}

/* clang-format off */
static const struct args_flag plot_flags[] = {
	{"out", true, NULL, NULL},
	{"bins", true, NULL, &hist_bins_num},
	{"range", true, NULL, &hist_range_num},
	{"wbits", true, NULL, &cli_wbits_num},
	{NULL, false, NULL, NULL},
};
/* clang-format on */

/* For completion: a layer after channels, hist's own words after hist; nothing after the rest. */
static const struct args_spec plot_channels_args = {NULL, 1, 1, ARGS_TARGET, NULL, 0, NULL};
static const struct args_sub plot_subs[] = {
    {"channels", &plot_channels_args},
    {"hist", &cmd_hist_entry.args},
    {NULL, NULL},
};

const struct cmd_entry cmd_plot_entry = {
    .name = "plot",
    .alias = NULL,
    .usage = "plot channels LAYER|hist LAYER [weights|act]|ranges|deltas|sweep|sensitivity|compare "
             "[--out FILE.png|FILE.svg] [--bins N] [--range R] [--wbits N]",
    .args = {plot_flags, 1, 3, ARGS_CHOICE, plot_words, 0, plot_subs},
    .summary = "a chart: channel ranges, error histogram, activation ranges, accuracy per step",
    .exec = cmd_plot_exec,
    .flags = CMD_NEEDS_MODEL,
    .help = "channels LAYER: the weight range (min..max) of each output channel, before and\n"
            "  after the last step that changed the weights (the paper's Figures 2 and 6).\n"
            "hist LAYER [weights|act]: the error histogram of 'hist' (--bins, --range and\n"
            "  --wbits as there).\n"
            "ranges: each activation tensor's BN range, data range and the grid in use.\n"
            "deltas: top-1 after each evaluated step, with the FP32 level.\n"
            "sweep: top-1 against the swept value of the last 'sweep', the FP32 level\n"
            "  marked.\n"
            "sensitivity: the last 'sensitivity' per layer: top-1 change and logits SQNR.\n"
            "compare: the last 'compare' per layer output: SQNR and max error against FP32.\n"
            "--out FILE.png or FILE.svg writes a file (through gnuplot); without it the\n"
            "chart opens in a gnuplot window when there is a display, else gnuplot draws it\n"
            "as text.  Without gnuplot (or when it fails, or takes more than\n"
            "$DFQ_GNUPLOT_TIMEOUT seconds, default 10) dfq draws the text itself.",
};
