/* cmd-hist.c - hist: the quantization error of a layer's weights, or of its output activations
 * on a calibration batch, as a histogram in grid steps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chart.h"
#include "model-cmd.h"

int cmd_one_layer(struct cmd_ctx *ctx, const char *word)
{
	const struct dfq_model *m = ctx->s->model;
	if (m->nlayers == 0)
		return cmd_fail(ctx, "the model has no Conv, Gemm or MatMul layers with constant "
		                     "weights"),
		       -1;
	bool *sel = calloc((size_t)m->nlayers, sizeof *sel);
	if (!sel)
		return cmd_fail(ctx, "out of memory"), -1;
	struct dfq_error err;
	dfq_error_clear(&err);
	int li = -1, n = 0;
	if (dfq_model_parse_targets(m, 1, &word, sel, &err) != DFQ_OK) {
		cmd_fail_error(ctx, &err);
		free(sel);
		return -1;
	}
	for (int i = 0; i < m->nlayers; i++)
		if (sel[i]) {
			li = li < 0 ? i : li;
			n++;
		}
	free(sel);
	if (n != 1)
		return cmd_fail(ctx, "'%s' names %d layers; give one layer (a name or an index)",
		                word, n),
		       -1;
	return li;
}

bool hist_compute(struct cmd_ctx *ctx, const struct hist_req *r, struct dfq_hist *h)
{
	struct session *s = ctx->s;
	struct dfq_model *m = s->model;
	memset(h, 0, sizeof *h);
	const struct dfq_layer *L = &m->layers[r->layer];
	const char *name = mc_layer_name(m, r->layer);
	struct dfq_hist_opts o = {r->nbins, -r->range, r->range};
	struct dfq_error err;
	dfq_error_clear(&err);
	if (r->act) {
		if (r->wbits)
			return cmd_fail(ctx, "--wbits goes with weights: the activation error is "
			                     "measured on the grid the layer's output has"),
			       false;
		if (!L->quantized)
			return cmd_fail(ctx,
			                "layer '%s' is not quantized, so its output has no "
			                "activation grid: quantize it first",
			                name),
			       false;
		struct dfq_tensor *x = mc_calib_batch(ctx, NULL);
		if (!x)
			return false;
		struct dfq_exec *ex = session_exec(s, &err);
		dfq_status st =
		    ex ? dfq_model_act_hist(m, ex, r->layer, x, &o, h, &err) : err.status;
		dfq_tensor_free(x);
		if (st != DFQ_OK && err.remedy == DFQ_REMEDY_DATA)
			return cmd_fail(ctx, "%s: 'measure data' gives it one", err.msg), false;
		if (st != DFQ_OK)
			return cmd_fail_error(ctx, &err), false;
		return true;
	}
	struct dfq_qconfig q;
	const struct dfq_qconfig *qp = NULL;
	if (r->wbits) {
		if (L->quantized)
			q = L->q;
		else
			mc_session_qconfig(s, &q);
		q.wbits = r->wbits;
		qp = &q;
	} else if (!L->quantized) {
		return cmd_fail(ctx,
		                "layer '%s' is not quantized: quantize it, or give --wbits N "
		                "for the error N-bit weights would have",
		                name),
		       false;
	}
	if (dfq_model_weight_hist(m, r->layer, qp, &o, h, &err) != DFQ_OK)
		return cmd_fail_error(ctx, &err), false;
	return true;
}

/* --- hist ------------------------------------------------------------------------------ */

/* "0.04738" or "0.001 to 0.03 (a grid per channel)" */
static const char *step_text(const struct dfq_hist *h, char *buf, size_t len)
{
	if (h->ngrids > 1)
		snprintf(buf, len, "steps %.4g to %.4g (a grid per channel)", h->step_min,
		         h->step_max);
	else
		snprintf(buf, len, "step %.4g", h->step);
	return buf;
}

static void hist_json(cJSON *j, const struct dfq_model *m, const struct dfq_hist *h,
                      const struct hist_req *r)
{
	if (!j)
		return;
	cJSON_AddNumberToObject(j, "layer", h->layer);
	cJSON_AddStringToObject(j, "name", mc_layer_name(m, h->layer));
	cJSON_AddStringToObject(j, "kind", h->kind == DFQ_HIST_ACT ? "act" : "weights");
	cJSON_AddStringToObject(j, "unit", "grid steps");
	cJSON_AddNumberToObject(j, "bits", h->bits);
	cJSON_AddStringToObject(j, "scheme", h->scheme == DFQ_QSCHEME_SYM ? "sym" : "asym");
	if (h->kind == DFQ_HIST_WEIGHTS) {
		char cfg[96];
		cJSON_AddBoolToObject(j, "per_channel", h->per_channel);
		cJSON_AddBoolToObject(j, "quantized", m->layers[h->layer].quantized);
		cJSON_AddBoolToObject(j, "what_if", r->wbits != 0);
		cJSON_AddStringToObject(j, "config", mc_qconfig_str(&h->q, cfg, sizeof cfg));
	} else {
		cJSON_AddNumberToObject(j, "samples", (double)h->samples);
		mc_json_range(j, "grid", true, h->grid_lo, h->grid_hi);
	}
	mc_json_num(j, "step", h->step);
	mc_json_num(j, "step_min", h->step_min);
	mc_json_num(j, "step_max", h->step_max);
	mc_json_num(j, "lo", h->lo);
	mc_json_num(j, "hi", h->hi);
	cJSON *edges = cJSON_AddArrayToObject(j, "edges");
	cJSON *counts = cJSON_AddArrayToObject(j, "counts");
	double w = (h->hi - h->lo) / h->nbins;
	for (int b = 0; b <= h->nbins; b++) {
		cJSON *e = cJSON_CreateNumber(b == h->nbins ? h->hi : h->lo + b * w);
		if (!cJSON_AddItemToArray(edges, e))
			cJSON_Delete(e);
		if (b == h->nbins)
			break;
		cJSON *c = cJSON_CreateNumber((double)h->counts[b]);
		if (!cJSON_AddItemToArray(counts, c))
			cJSON_Delete(c);
	}
	cJSON_AddNumberToObject(j, "n", (double)h->n);
	cJSON_AddNumberToObject(j, "below", (double)h->below);
	cJSON_AddNumberToObject(j, "above", (double)h->above);
	cJSON_AddNumberToObject(j, "clipped", (double)h->clipped);
	cJSON_AddNumberToObject(j, "exact", (double)h->exact);
	mc_json_num(j, "mean", h->mean);
	mc_json_num(j, "rms", h->rms);
	mc_json_num(j, "max_abs", h->max_abs);
	mc_json_num(j, "sqnr_db", h->sqnr_db);
}

/* The histogram as lines: a header, a line per bin, a footer. */
static void hist_print(struct cmd_ctx *ctx, const struct dfq_model *m, const struct dfq_hist *h,
                       const struct hist_req *r)
{
	const char *name = mc_layer_name(m, h->layer);
	const char *scheme = h->scheme == DFQ_QSCHEME_SYM ? "sym" : "asym";
	char step[96];
	step_text(h, step, sizeof step);
	if (h->kind == DFQ_HIST_WEIGHTS) {
		bool what_if = !m->layers[h->layer].quantized || r->wbits;
		cmd_result(
		    ctx, "%s: weight quantization error (Q(W) - W) in grid steps, W%d %s %s, %s%s",
		    name, h->bits, scheme, h->per_channel ? "per-channel" : "per-tensor", step,
		    what_if ? (m->layers[h->layer].quantized ? " (what these bits would do)"
		                                             : " (not quantized: what these "
		                                               "bits would do)")
		            : "");
	} else {
		cmd_result(
		    ctx,
		    "%s: output activation quantization error (fq(y) - y) in grid steps, A%d "
		    "%s, %s, grid [%.4g, %.4g], first calibration batch (%lld samples)",
		    name, h->bits, scheme, step, h->grid_lo, h->grid_hi, (long long)h->samples);
	}
	/* the bins: edges, count, bar */
	double w = (h->hi - h->lo) / h->nbins;
	char e0[32], e1[32];
	int ew = 0;
	int64_t most = 1;
	int cw = 1;
	for (int b = 0; b <= h->nbins; b++) {
		int k = snprintf(e0, sizeof e0, "%.4g", b == h->nbins ? h->hi : h->lo + b * w);
		ew = k > ew ? k : ew;
		if (b < h->nbins) {
			most = h->counts[b] > most ? h->counts[b] : most;
			k = snprintf(e1, sizeof e1, "%lld", (long long)h->counts[b]);
			cw = k > cw ? k : cw;
		}
	}
	int bar = cli_output_width() - (2 + 1 + ew + 2 + ew + 1 + 2 + cw + 2);
	bar = bar < 10 ? 10 : bar;
	char *hashes = malloc((size_t)bar + 1);
	if (!hashes)
		return;
	for (int b = 0; b < h->nbins; b++) {
		double a = b == 0 ? h->lo : h->lo + b * w;
		double z = b == h->nbins - 1 ? h->hi : h->lo + (b + 1) * w;
		snprintf(e0, sizeof e0, "%.4g", fabs(a) < 1e-12 ? 0.0 : a);
		snprintf(e1, sizeof e1, "%.4g", fabs(z) < 1e-12 ? 0.0 : z);
		int k = (int)llround((double)h->counts[b] * bar / (double)most);
		k = h->counts[b] > 0 && k == 0 ? 1 : k;
		memset(hashes, '#', (size_t)k);
		hashes[k] = '\0';
		char edges[96];
		snprintf(edges, sizeof edges, "[%*s, %*s%c", ew, e0, ew, e1,
		         b == h->nbins - 1 ? ']' : ')');
		cmd_result(ctx, "  %s  %*lld%s%s", edges, cw, (long long)h->counts[b],
		           k ? "  " : "", hashes);
	}
	free(hashes);
	cmd_result(ctx,
	           "  n %lld %s: %lld below %.4g, %lld above %.4g, %lld clipped, %lld exact (on "
	           "the grid)",
	           (long long)h->n, h->kind == DFQ_HIST_WEIGHTS ? "weights" : "values",
	           (long long)h->below, h->lo, (long long)h->above, h->hi, (long long)h->clipped,
	           (long long)h->exact);
	char sq[24];
	cmd_result(ctx, "  mean %.4g steps, rms %.4g steps, max |error| %.4g steps; SQNR %s dB",
	           h->mean, h->rms, h->max_abs,
	           mc_num(round(h->sqnr_db * 100) / 100, sq, sizeof sq));
}

const struct num_spec hist_bins_num = {.whole = true, .lo = 2, .hi = 200};
const struct num_spec hist_range_num = {.lo = 0.5, .hi = 1e6};

bool hist_req_from_args(struct cmd_ctx *ctx, const struct args *a, const char *what,
                        struct hist_req *r)
{
	r->act = false;
	if (what && strcmp(what, "act") == 0)
		r->act = true;
	else if (what && strcmp(what, "weights") != 0)
		return cmd_fail(ctx, "'%s' is not weights or act", what), false;
	r->nbins = (int)args_num(a, "bins", 20);
	r->range = args_num(a, "range", 0.5);
	r->wbits = (int)args_num(a, "wbits", 0);
	return true;
}

static enum cmd_retval cmd_hist_exec(struct cmd_ctx *ctx, struct args *a)
{
	struct dfq_model *m = ctx->s->model;
	struct hist_req r;
	r.layer = ctx->sel ? mc_one_target(ctx) : cmd_one_layer(ctx, a->pos[0]);
	if (r.layer < 0)
		return CMD_RETURN_ERROR;
	if (!hist_req_from_args(ctx, a, a->npos > 1 ? a->pos[1] : NULL, &r))
		return CMD_RETURN_ERROR;
	struct dfq_hist h;
	if (!hist_compute(ctx, &r, &h))
		return CMD_RETURN_ERROR;
	hist_print(ctx, m, &h, &r);
	hist_json(ctx->json, m, &h, &r);
	dfq_hist_free(&h);
	return CMD_RETURN_NORMAL;
}

/* clang-format off */
static const struct args_flag hist_flags[] = {
	{"bins", true, NULL, &hist_bins_num},
	{"range", true, NULL, &hist_range_num},
	{"wbits", true, NULL, &cli_wbits_num},
	{NULL, false, NULL, NULL},
};
/* clang-format on */

static const char *const hist_what_words[] = {"weights", "act", NULL};

const struct cmd_entry cmd_hist_entry = {
    .name = "hist",
    .alias = NULL,
    .usage = "hist LAYER [weights|act] [--bins N] [--range R] [--wbits N]",
    /* one TARGET, then an optional word the runner leaves alone */
    .args = {hist_flags, 1, 2, ARGS_TARGET, hist_what_words, 1, NULL},
    .summary = "quantization error histogram of a layer, in grid steps: weights or activations",
    .exec = cmd_hist_exec,
    .flags = CMD_NEEDS_MODEL,
    .help = "The error of each weight, (Q(W) - W) / step, with the layer's own grid (a grid\n"
            "per channel: the channel's step); rounding alone keeps it in [-0.5, +0.5],\n"
            "spread evenly, so clipped values and outliers stand out beyond the bins\n"
            "(counted below/above).  'act' shows (fq(y) - y) / step at the layer's output on\n"
            "the first calibration batch of the data, the model running fake-quantized.\n"
            "--bins N (2 to 200, default 20); --range R: bins over [-R, +R] steps (default\n"
            "0.5); --wbits N: what N-bit weights would do (needed for a float layer).\n"
            "'plot hist LAYER' draws it.",
};
