/* model-cmd.c - helpers shared by the DFQ model commands: targets, steps, numbers, JSON. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model-cmd.h"

int mc_one_target(struct cmd_ctx *ctx)
{
	const struct dfq_model *m = ctx->s->model;
	int li = -1;
	for (int i = 0; ctx->sel && i < m->nlayers; i++)
		if (ctx->sel[i] && li < 0)
			li = i;
	if (ctx->nsel != 1 || li < 0) {
		cmd_fail(ctx, "'%s' names %d layers; give one layer (a name or an index)",
		         ctx->ntargets ? ctx->targets[0] : "", ctx->nsel);
		return -1;
	}
	return li;
}

const char *mc_layer_name(const struct dfq_model *m, int li)
{
	if (li < 0 || li >= m->nlayers)
		return "?";
	const struct dfq_layer *L = &m->layers[li];
	return L->alias && *L->alias ? L->alias : L->name;
}

int mc_name_width(const struct dfq_model *m)
{
	int w = 4;
	for (int i = 0; i < m->nlayers; i++) {
		int n = (int)strlen(mc_layer_name(m, i));
		w = n > w ? n : w;
	}
	return w > 40 ? 40 : w;
}

const char *mc_point_label(const struct dfq_model *m, const struct dfq_apoint *p, char *buf,
                           size_t len)
{
	if (p->kind == DFQ_APOINT_LAYER)
		snprintf(buf, len, "%s", mc_layer_name(m, p->layer));
	else
		snprintf(buf, len, "%s", m->g->values[p->vi].name);
	return buf;
}

int mc_float_points(const struct dfq_model *m, char *buf, size_t len, cJSON *names)
{
	enum { SHOW = 4 };
	char list[512] = "";
	size_t used = 0;
	int n = 0;
	bool input = false;
	for (int i = 0; i < m->npoints; i++) {
		const struct dfq_apoint *p = &m->points[i];
		if (p->bits <= 0 || p->enabled)
			continue;
		char label[160];
		mc_point_label(m, p, label, sizeof label);
		if (n < SHOW && used < sizeof list)
			used += (size_t)snprintf(list + used, sizeof list - used, "%s%s%s",
			                         n ? ", " : "", label,
			                         p->kind == DFQ_APOINT_INPUT ? " (the input)" : "");
		input = input || p->kind == DFQ_APOINT_INPUT;
		n++;
		if (names) {
			cJSON *x = cJSON_CreateString(label);
			if (!cJSON_AddItemToArray(names, x))
				cJSON_Delete(x);
		}
	}
	if (!buf || n == 0)
		return n;
	char more[32] = "";
	if (n > SHOW)
		snprintf(more, sizeof more, " and %d more", n - SHOW);
	const char *them = n == 1 ? "it" : "them";
	if (input)
		snprintf(buf, len,
		         "%d activation tensor%s without a range stay%s float: %s%s\n"
		         "'measure data' gives %s a range; 8-bit data gives the input one from its "
		         "--mean/--std",
		         n, n == 1 ? "" : "s", n == 1 ? "s" : "", list, more, them);
	else
		snprintf(
		    buf, len,
		    "%d activation tensor%s without a range stay%s float: %s%s ('measure data' "
		    "gives %s a range)",
		    n, n == 1 ? "" : "s", n == 1 ? "s" : "", list, more, them);
	return n;
}

const char *mc_num(double x, char *buf, size_t len)
{
	if (isnan(x))
		snprintf(buf, len, "-");
	else if (isinf(x))
		snprintf(buf, len, "%s", x > 0 ? "inf" : "-inf");
	else
		snprintf(buf, len, "%.4g", x);
	return buf;
}

const char *mc_num_small(double x, double ref, char *buf, size_t len)
{
	if (isfinite(x) && isfinite(ref) && fabs(x) < 1e-5 * fabs(ref))
		snprintf(buf, len, "~0");
	else
		mc_num(x, buf, len);
	return buf;
}

void mc_json_mark(cJSON *obj, const char *key, const struct eval_mark *e, bool quant)
{
	if (!obj)
		return;
	if (!e->valid) {
		cJSON_AddNullToObject(obj, key);
		return;
	}
	cJSON *m = cJSON_AddObjectToObject(obj, key);
	cJSON_AddNumberToObject(m, "n", (double)e->n);
	cJSON_AddNumberToObject(m, "top1", e->top1);
	cJSON_AddNumberToObject(m, "top5", e->top5);
	cJSON_AddStringToObject(m, "mode", quant ? "quant" : "fp32");
}

void mc_json_num(cJSON *obj, const char *key, double x)
{
	if (!obj)
		return;
	if (isfinite(x))
		cJSON_AddNumberToObject(obj, key, x);
	else
		cJSON_AddNullToObject(obj, key);
}

void mc_json_range(cJSON *obj, const char *key, bool valid, double lo, double hi)
{
	if (!obj)
		return;
	if (!valid) {
		cJSON_AddNullToObject(obj, key);
		return;
	}
	cJSON *a = cJSON_AddArrayToObject(obj, key);
	cJSON *x = cJSON_CreateNumber(lo), *y = cJSON_CreateNumber(hi);
	if (!cJSON_AddItemToArray(a, x))
		cJSON_Delete(x);
	if (!cJSON_AddItemToArray(a, y))
		cJSON_Delete(y);
}

void mc_print_lines(struct cmd_ctx *ctx, const char *first, const char *indent, const char *text)
{
	for (const char *p = text, *pre = first; *p; pre = indent) {
		size_t n = strcspn(p, "\n");
		cmd_print(ctx, "%s%.*s", pre, (int)n, p);
		p += n + (p[n] == '\n');
	}
}

/* --- steps ------------------------------------------------------------------ */

static void print_fold_first(struct cmd_ctx *ctx, const struct dfq_step_report *fr)
{
	cmd_print(ctx, "fold: %s", fr->summary);
	cJSON *o = cJSON_AddObjectToObject(ctx->json, "fold");
	if (o) {
		cJSON_AddStringToObject(o, "summary", fr->summary);
		cJSON_AddNumberToObject(o, "changed", fr->nchanged);
	}
}

enum cmd_retval mc_run_step(struct cmd_ctx *ctx, bool needs_fold, mc_step_fn fn, void *arg,
                            struct dfq_step_report *rep)
{
	struct session *s = ctx->s;
	struct dfq_model *m = s->model;
	struct dfq_error err;
	dfq_error_clear(&err);
	dfq_step_report_init(rep);
	if (!needs_fold || m->folded) {
		if (fn(m, arg, rep, &err) != DFQ_OK)
			return cmd_fail_error(ctx, &err);
		session_model_changed(s);
		return CMD_RETURN_NORMAL;
	}
	/* Fold, then the step, as one transaction: a refusal undoes the fold too. */
	bool own = !dfq_model_in_transaction(m);
	if (own && dfq_model_begin(m, &err) != DFQ_OK)
		return cmd_fail_error(ctx, &err);
	struct dfq_step_report fr;
	dfq_step_report_init(&fr);
	if (dfq_model_fold(m, &fr, &err) != DFQ_OK || fn(m, arg, rep, &err) != DFQ_OK ||
	    (own && dfq_model_commit(m, ctx->word, NULL, NULL, &err) != DFQ_OK)) {
		dfq_step_report_free(&fr);
		if (own)
			dfq_model_rollback(m);
		return cmd_fail_error(ctx, &err);
	}
	session_model_changed(s);
	print_fold_first(ctx, &fr);
	dfq_step_report_free(&fr);
	return CMD_RETURN_NORMAL;
}

enum cmd_retval mc_step(struct cmd_ctx *ctx, bool needs_fold, mc_step_fn fn, void *arg,
                        mc_row_fmt fmt, const struct mc_row_keys *keys, struct dfq_step_report *rep)
{
	if (mc_run_step(ctx, needs_fold, fn, arg, rep) != CMD_RETURN_NORMAL)
		return CMD_RETURN_ERROR;
	mc_print_report(ctx, rep, fmt, keys);
	return CMD_RETURN_NORMAL;
}

static void row_json(cJSON *arr, const struct dfq_model *m, const struct dfq_step_row *row,
                     const struct mc_row_keys *k)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddNumberToObject(o, "layer", row->layer);
	cJSON_AddStringToObject(o, "name", mc_layer_name(m, row->layer));
	if (row->layer2 >= 0) {
		cJSON_AddNumberToObject(o, "layer2", row->layer2);
		cJSON_AddStringToObject(o, "name2", mc_layer_name(m, row->layer2));
	}
	cJSON_AddBoolToObject(o, "changed", row->changed);
	if (k) {
		const char *keys[5] = {k->before, k->after, k->before2, k->after2, k->extra};
		double vals[5] = {row->before, row->after, row->before2, row->after2, row->extra};
		for (int i = 0; i < 5; i++)
			if (keys[i])
				mc_json_num(o, keys[i], vals[i]);
	}
	cJSON_AddStringToObject(o, "note", row->note);
	if (!cJSON_AddItemToArray(arr, o))
		cJSON_Delete(o);
}

/* What the user can do when a step found no BN statistics to work with. */
static const char *summary_hint(const struct dfq_step_report *rep)
{
	if (rep->has_stats)
		return "";
	if (rep->step == DFQ_STEP_FOLD && rep->nrows == 0)
		return " (use ranges and bias correction from data)";
	if (rep->step == DFQ_STEP_BIASCORR && rep->samples == 0)
		return ": use --empirical";
	return "";
}

void mc_print_report(struct cmd_ctx *ctx, const struct dfq_step_report *rep, mc_row_fmt fmt,
                     const struct mc_row_keys *keys)
{
	const struct dfq_model *m = ctx->s->model;
	int w = mc_name_width(m);
	cJSON *arr = cJSON_AddArrayToObject(ctx->json, "rows");
	for (int i = 0; (arr || cmd_verbose(ctx)) && i < rep->nrows; i++) {
		const struct dfq_step_row *row = &rep->rows[i];
		char name[160], figs[256] = "";
		if (row->layer2 >= 0)
			snprintf(name, sizeof name, "%s -> %s", mc_layer_name(m, row->layer),
			         mc_layer_name(m, row->layer2));
		else
			snprintf(name, sizeof name, "%s", mc_layer_name(m, row->layer));
		bool note = true;
		if (fmt && row->changed)
			note = fmt(m, row, figs, sizeof figs);
		const char *sep = *figs && note ? "  " : "";
		cmd_detail(ctx, "  %-*s  %s%s%s", w, name, figs, sep, note ? row->note : "");
		if (arr)
			row_json(arr, m, row, keys);
	}
	cmd_print(ctx, "%s%s", rep->summary, summary_hint(rep));
	cJSON_AddStringToObject(ctx->json, "summary", rep->summary);
	cJSON_AddNumberToObject(ctx->json, "changed", rep->nchanged);
	cJSON_AddNumberToObject(ctx->json, "skipped", rep->nskipped);
	cJSON_AddNumberToObject(ctx->json, "biascorr_dropped", rep->ndropped);
	if (rep->ndropped > 0)
		cmd_print(ctx,
		          "biascorr: dropped the correction of %d layer%s: it was made for the "
		          "weights, grids or inputs this step changed ('biascorr' makes it anew)",
		          rep->ndropped, rep->ndropped == 1 ? "" : "s");
}

/* --- quantization configuration ------------------------------------------------- */

void mc_session_qconfig(const struct session *s, struct dfq_qconfig *q)
{
	dfq_qconfig_default(q);
	q->wbits = s->set.wbits;
	q->abits = s->set.abits;
	q->bbits = s->set.bbits;
	q->scheme = s->set.scheme;
	q->per_channel = s->set.per_channel;
}

const char *mc_qconfig_str(const struct dfq_qconfig *q, char *buf, size_t len)
{
	char a[16] = "A-float", b[24] = "";
	if (q->abits > 0)
		snprintf(a, sizeof a, "A%d", q->abits);
	if (q->bbits == 8 || q->bbits == 16)
		snprintf(b, sizeof b, " B%d", q->bbits);
	snprintf(buf, len, "W%d %s%s %s %s", q->wbits, a, b,
	         q->scheme == DFQ_QSCHEME_SYM ? "sym" : "asym",
	         q->per_channel ? "per-channel" : "per-tensor");
	return buf;
}

/* --- eval: the model as it stands ------------------------------------------------ */

/* "35 of 35 layers quantized (W8 A8 asym per-tensor)", or "mixed" configurations. */
static void quant_summary(const struct dfq_model *m, char *buf, size_t len)
{
	int nq = 0;
	bool mixed = false;
	const struct dfq_qconfig *first = NULL;
	for (int i = 0; i < m->nlayers; i++) {
		const struct dfq_layer *L = &m->layers[i];
		if (!L->quantized)
			continue;
		nq++;
		if (!first)
			first = &L->q;
		else if (memcmp(first, &L->q, sizeof *first) != 0)
			mixed = true;
	}
	char cfg[96] = "mixed configurations";
	if (first && !mixed)
		mc_qconfig_str(first, cfg, sizeof cfg);
	snprintf(buf, len, "%d of %d layers quantized (%s)", nq, m->nlayers, cfg);
}

/* Counts of the activation quantizers: with bits, with a grid, from BN,
 * from data; *data_src the data source in use (when ndata > 0). */
struct range_counts {
	int nbits, nen, nbn, ndata, nmeasured;
	int ngiven; /* inputs quantized on their given range (the data normalisation's) */
	dfq_range_src data_src;
};

static void count_ranges(const struct dfq_model *m, struct range_counts *c)
{
	memset(c, 0, sizeof *c);
	c->data_src = DFQ_RANGE_MINMAX;
	for (int i = 0; i < m->npoints; i++) {
		const struct dfq_apoint *p = &m->points[i];
		c->nbits += p->bits > 0;
		c->nen += p->enabled;
		c->nbn += p->enabled && p->used == DFQ_RANGE_BN;
		c->ngiven += p->enabled && p->used == DFQ_RANGE_GIVEN;
		c->nmeasured += p->nsamples > 0;
		if (p->enabled && p->used != DFQ_RANGE_BN && p->used != DFQ_RANGE_GIVEN) {
			c->ndata++;
			c->data_src = p->used;
		}
	}
}

/* With quantized layers the activation grids come from the current ranges:
 * data-free BN ranges are (re)computed now and the user is told which are
 * used.  A model without any BN statistics that was never measured is
 * measured on the calibration data first, when there is some (a model with
 * BN statistics stays data-free: its input and logits then stay float). */
static bool eval_ranges(struct cmd_ctx *ctx, struct dfq_model *m)
{
	struct dfq_step_report rep;
	struct dfq_error err;
	dfq_step_report_init(&rep);
	if (dfq_model_measure_bn(m, &rep, &err) != DFQ_OK)
		return cmd_fail_error(ctx, &err), false;
	dfq_step_report_free(&rep);
	struct range_counts c;
	count_ranges(m, &c);
	if (c.nen < c.nbits && c.nmeasured == 0 && !m->has_stats && ctx->s->data) {
		int64_t n;
		cmd_print(ctx,
		          "ranges %d quantized activation tensors have no BN statistics "
		          "upstream: measuring them on the calibration data first",
		          c.nbits - c.nen);
		if (!mc_measure_data(ctx, m, NULL, &n))
			return false;
		cmd_print(ctx, "       measured %d activation tensors on %lld calibration samples",
		          m->npoints, (long long)n);
		count_ranges(m, &c);
	}
	const char *input = c.ngiven ? ", the input from the data normalisation" : "";
	if (c.ndata == 0)
		cmd_print(ctx,
		          "ranges data-free, from BatchNorm statistics (n-std %g): %d of %d "
		          "quantized activation tensors%s",
		          m->n_sigma, c.nbn, c.nbits, input);
	else
		cmd_print(ctx,
		          "ranges %d of %d quantized activation tensors from BatchNorm, %d "
		          "from data (%s)%s",
		          c.nbn, c.nbits, c.ndata, dfq_range_src_name(c.data_src), input);
	char floats[1024];
	if (mc_float_points(m, floats, sizeof floats, NULL) > 0)
		mc_print_lines(ctx, "       ", "       ", floats);
	if (m->data_stale && c.ndata > 0)
		cmd_print(ctx, "       warning: the data ranges predate the last step; 'measure "
		               "data' again");
	return true;
}

/* The same counts for --json (added after the accuracy keys). */
static void ranges_json(cJSON *obj, const struct dfq_model *m)
{
	struct range_counts c;
	count_ranges(m, &c);
	cJSON *o = cJSON_AddObjectToObject(obj, "ranges");
	if (!o)
		return;
	cJSON_AddNumberToObject(o, "quantized", c.nbits);
	cJSON_AddNumberToObject(o, "bn", c.nbn);
	cJSON_AddNumberToObject(o, "data", c.ndata);
	cJSON_AddNumberToObject(o, "given", c.ngiven);
	cJSON_AddNumberToObject(o, "float", c.nbits - c.nen);
	mc_float_points(m, NULL, 0, cJSON_AddArrayToObject(o, "float_names"));
	cJSON_AddBoolToObject(o, "stale", m->data_stale && c.ndata > 0);
}

int mc_eval_prepare(struct cmd_ctx *ctx, struct dfq_exec *ex)
{
	struct session *s = ctx->s;
	struct dfq_model *m = s->model;
	dfq_run_mode mode = session_run_mode(s);
	char what[160];
	if (mode == DFQ_RUN_QUANT)
		quant_summary(m, what, sizeof what);
	else
		snprintf(what, sizeof what, "%s",
		         session_model_pristine(s) ? "as loaded" : "after the steps applied");
	cmd_print(ctx, "model  %s: %s", mode == DFQ_RUN_QUANT ? "fake-quant" : "FP32", what);
	if (mode == DFQ_RUN_QUANT && !eval_ranges(ctx, m))
		return -1;
	struct dfq_error err;
	if (dfq_model_exec_prepare(m, ex, mode, &err) != DFQ_OK)
		return cmd_fail_error(ctx, &err), -1;
	return (int)mode;
}

/* "vs FP32  -1.23 (91.20%)" when mark was measured on the same samples. */
static void delta_line(struct cmd_ctx *ctx, const char *label, const char *key,
                       const struct eval_mark *mark, int64_t n, double top1)
{
	if (!mark->valid || mark->n != n) {
		cJSON_AddNullToObject(ctx->json, key);
		return;
	}
	double d = 100.0 * (top1 - mark->top1);
	cmd_result(ctx, "%-7s %+.2f points (top-1 %.2f%%)", label, d, 100.0 * mark->top1);
	cJSON_AddNumberToObject(ctx->json, key, d);
}

void mc_eval_deltas(struct cmd_ctx *ctx, int mode, int64_t n, int64_t top1, int64_t top5)
{
	struct session *s = ctx->s;
	double t1 = n ? (double)top1 / (double)n : 0, t5 = n ? (double)top5 / (double)n : 0;
	struct eval_mark now = {true, n, t1, t5};
	bool baseline = mode == DFQ_RUN_FP32 && session_model_pristine(s);
	cJSON_AddStringToObject(ctx->json, "mode", mode == DFQ_RUN_QUANT ? "quant" : "fp32");
	if (mode == DFQ_RUN_QUANT)
		ranges_json(ctx->json, s->model);
	if (!baseline)
		delta_line(ctx, "vs FP32", "delta_fp32", &s->fp32, n, t1);
	else
		cJSON_AddNumberToObject(ctx->json, "delta_fp32", 0);
	delta_line(ctx, "vs last", "delta_last", &s->last, n, t1);
	cJSON_AddBoolToObject(ctx->json, "baseline", baseline);
	session_record_eval(s, mode == DFQ_RUN_QUANT, &now);
	if (baseline)
		s->fp32 = now;
	s->last = now;
}

dfq_status mc_model_run_batch(void *user, struct dfq_exec *ex, struct dfq_tensor *x,
                              struct dfq_tensor **outputs, struct dfq_error *err)
{
	struct mc_model_run *mr = user;
	return dfq_model_run(mr->m, ex, mr->mode, &x, outputs, err);
}
