/* cmd-layers.c - layers (the layer table) and info (one layer in detail). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model-cmd.h"

/* "Conv", "Conv/dw", "Gemm", "MatMul". */
static const char *layer_op(const struct dfq_layer *L)
{
	if (L->op == DFQ_OP_CONV)
		return L->depthwise ? "Conv/dw" : "Conv";
	return L->op == DFQ_OP_GEMM ? "Gemm" : "MatMul";
}

/* "32x1x3x3". */
static const char *dims_str(const struct dfq_tensor *t, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; i < t->ndim && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? "x" : "",
		                         (long long)t->dims[i]);
	return buf;
}

static void json_dims(cJSON *obj, const char *key, const struct dfq_tensor *t)
{
	cJSON *a = cJSON_AddArrayToObject(obj, key);
	for (int i = 0; a && i < t->ndim; i++) {
		cJSON *d = cJSON_CreateNumber((double)t->dims[i]);
		if (!cJSON_AddItemToArray(a, d))
			cJSON_Delete(d);
	}
}

/* The activation point at a layer's output, or NULL. */
static const struct dfq_apoint *layer_point(const struct dfq_model *m, int li)
{
	for (int i = 0; i < m->npoints; i++)
		if (m->points[i].kind == DFQ_APOINT_LAYER && m->points[i].layer == li)
			return &m->points[i];
	return NULL;
}

/* The data range shown next to the BN one: the data source in use when the
 * setting asks for one, else the seed's QuantMeasure running min/max. */
static const struct dfq_range *data_range(const struct dfq_model *m, const struct dfq_apoint *p,
                                          dfq_range_src *src)
{
	*src = DFQ_RANGE_MINMAX;
	if (m->range_src == DFQ_RANGE_GLOBAL || m->range_src == DFQ_RANGE_PERCENTILE)
		*src = m->range_src;
	return *src == DFQ_RANGE_GLOBAL       ? &p->global
	       : *src == DFQ_RANGE_PERCENTILE ? &p->pct
	                                      : &p->minmax;
}

/* "[0, 5.43]" with a '*' when it is the range in use, "-" when unknown. */
static const char *range_str(const struct dfq_range *r, bool used, char *buf, size_t len)
{
	if (!r->valid)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "[%.3g, %.3g]%s", (double)r->lo, (double)r->hi, used ? "*" : "");
	return buf;
}

/* --- layers ----------------------------------------------------------------- */

static void layer_json(cJSON *arr, const struct dfq_model *m, int li,
                       const struct dfq_layer_info *inf, const struct dfq_apoint *p)
{
	const struct dfq_layer *L = &m->layers[li];
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddNumberToObject(o, "index", li);
	cJSON_AddStringToObject(o, "name", mc_layer_name(m, li));
	cJSON_AddStringToObject(o, "node", L->name);
	cJSON_AddStringToObject(o, "op", layer_op(L));
	cJSON_AddStringToObject(o, "act", dfq_act_name(L->act));
	json_dims(o, "weight_shape", m->g->values[L->w_vi].init);
	mc_json_num(o, "wmin", inf->wmin);
	mc_json_num(o, "wmax", inf->wmax);
	mc_json_num(o, "range_min", inf->rmin);
	mc_json_num(o, "range_max", inf->rmax);
	mc_json_num(o, "spread", inf->spread);
	dfq_range_src ds = DFQ_RANGE_MINMAX;
	const struct dfq_range *dr = p ? data_range(m, p, &ds) : NULL;
	mc_json_range(o, "act_bn", p && p->bn.valid, p ? p->bn.lo : 0, p ? p->bn.hi : 0);
	mc_json_range(o, "act_data", dr && dr->valid, dr ? dr->lo : 0, dr ? dr->hi : 0);
	if (p && p->used != DFQ_RANGE_NONE)
		cJSON_AddStringToObject(o, "act_used", dfq_range_src_name(p->used));
	else
		cJSON_AddNullToObject(o, "act_used");
	cJSON_AddNumberToObject(o, "wbits", inf->wbits);
	cJSON_AddNumberToObject(o, "abits", inf->abits);
	cJSON *steps = cJSON_AddArrayToObject(o, "steps");
	for (int k = 0; steps && k < DFQ_STEP_COUNT; k++) {
		if (!(L->steps & (1u << k)))
			continue;
		cJSON *sn = cJSON_CreateString(dfq_step_name(1u << k));
		if (!cJSON_AddItemToArray(steps, sn))
			cJSON_Delete(sn);
	}
	if (!cJSON_AddItemToArray(arr, o))
		cJSON_Delete(o);
}

static void layer_row(struct cmd_ctx *ctx, const struct dfq_model *m, int li, int w,
                      const struct dfq_layer_info *inf, const struct dfq_apoint *p)
{
	const struct dfq_layer *L = &m->layers[li];
	char shape[48], wmin[24], wmax[24], spread[24], bn[40], data[40], bits[32], steps[96];
	dfq_range_src ds = DFQ_RANGE_MINMAX;
	const struct dfq_range none = {0};
	const struct dfq_range *dr = p ? data_range(m, p, &ds) : &none;
	range_str(p ? &p->bn : &none, p && p->enabled && p->used == DFQ_RANGE_BN, bn, sizeof bn);
	range_str(dr, p && p->enabled && p->used == ds, data, sizeof data);
	if (inf->wbits > 0 && inf->abits > 0)
		snprintf(bits, sizeof bits, "W%dA%d", inf->wbits, inf->abits);
	else if (inf->wbits > 0)
		snprintf(bits, sizeof bits, "W%d", inf->wbits);
	else
		snprintf(bits, sizeof bits, "-");
	cmd_print(ctx, "%3d  %-*.*s  %-7s  %-5s  %-12s  %9s  %9s  %8s  %-20s  %-20s  %-5s  %s", li,
	          w, w, mc_layer_name(m, li), layer_op(L),
	          L->act == DFQ_ACT_NONE ? "-" : dfq_act_name(L->act),
	          dims_str(m->g->values[L->w_vi].init, shape, sizeof shape),
	          mc_num(inf->wmin, wmin, sizeof wmin), mc_num(inf->wmax, wmax, sizeof wmax),
	          mc_num(inf->spread, spread, sizeof spread), bn, data, bits,
	          dfq_steps_str(L->steps, steps, sizeof steps));
}

static enum cmd_retval cmd_layers_exec(struct cmd_ctx *ctx, struct args *a)
{
	struct dfq_model *m = mc_model(ctx);
	if (!m)
		return CMD_RETURN_ERROR;
	int w = mc_name_width(m);
	cJSON *arr = cJSON_AddArrayToObject(ctx->json, "layers");
	cmd_print(ctx, "%3s  %-*s  %-7s  %-5s  %-12s  %9s  %9s  %8s  %-20s  %-20s  %-5s  %s", "#",
	          w, "name", "op", "act", "weight", "W min", "W max", "spread", "act range (bn)",
	          "act range (data)", "bits", "steps");
	int nquant = 0;
	for (int li = 0; li < m->nlayers; li++) {
		struct dfq_layer_info inf;
		struct dfq_error err;
		if (dfq_model_layer_info(m, li, &inf, &err) != DFQ_OK)
			return cmd_fail(ctx, "%s", err.msg);
		const struct dfq_apoint *p = layer_point(m, li);
		layer_row(ctx, m, li, w, &inf, p);
		if (arr)
			layer_json(arr, m, li, &inf, p);
		nquant += m->layers[li].quantized;
	}
	const char *bn =
	    m->folded ? (m->has_stats ? "folded (statistics kept)" : "none") : "not folded";
	cmd_print(ctx,
	          "%d layer%s, %d quantized; BatchNorm %s; spread = largest / smallest "
	          "per-channel weight range; * = the activation range in use",
	          m->nlayers, m->nlayers == 1 ? "" : "s", nquant, bn);
	cJSON_AddBoolToObject(ctx->json, "folded", m->folded);
	cJSON_AddBoolToObject(ctx->json, "has_stats", m->has_stats);
	cJSON_AddNumberToObject(ctx->json, "quantized", nquant);
	return CMD_RETURN_NORMAL;
}

const struct cmd_entry cmd_layers_entry = {
    .name = "layers",
    .alias = NULL,
    .usage = "layers",
    .args = {NULL, 0, 0},
    .summary = "the layer table: weights, range spread, activation ranges, bits, steps",
    .exec = cmd_layers_exec,
};

/* --- info ------------------------------------------------------------------- */

/* "[min, max]" of n floats. */
static void array_range(const float *x, int64_t n, char *buf, size_t len)
{
	float lo = INFINITY, hi = -INFINITY;
	for (int64_t i = 0; i < n; i++) {
		lo = x[i] < lo ? x[i] : lo;
		hi = x[i] > hi ? x[i] : hi;
	}
	snprintf(buf, len, "[%.4g, %.4g]", (double)lo, (double)hi);
}

static double max_abs(const float *x, int64_t n)
{
	double m = 0;
	for (int64_t i = 0; i < n; i++)
		m = fabs(x[i]) > m ? fabs(x[i]) : m;
	return m;
}

static void json_floats(cJSON *obj, const char *key, const float *x, int64_t n)
{
	cJSON *a = cJSON_AddArrayToObject(obj, key);
	for (int64_t i = 0; a && i < n; i++) {
		cJSON *v = isfinite(x[i]) ? cJSON_CreateNumber(x[i]) : cJSON_CreateNull();
		if (!cJSON_AddItemToArray(a, v))
			cJSON_Delete(v);
	}
}

static void info_structure(struct cmd_ctx *ctx, const struct dfq_model *m, int li)
{
	const struct dfq_layer *L = &m->layers[li];
	const struct dfq_graph *g = m->g;
	const struct dfq_tensor *w = g->values[L->w_vi].init;
	char shape[48];
	cmd_print(ctx, "layer %d: %s (node '%s')", li, mc_layer_name(m, li), L->name);
	if (L->op == DFQ_OP_CONV)
		cmd_print(
		    ctx, "  %-11s %s, group %lld%s, %lld -> %lld channels, %lld-element kernel",
		    "op", layer_op(L), (long long)L->group, L->depthwise ? " (depthwise)" : "",
		    (long long)L->cin, (long long)L->cout, (long long)L->ksize);
	else
		cmd_print(ctx, "  %-11s %s, %lld -> %lld features", "op", layer_op(L),
		          (long long)L->cin, (long long)L->cout);
	cmd_print(ctx, "  %-11s '%s' %s (%lld values)", "weight", g->values[L->w_vi].name,
	          dims_str(w, shape, sizeof shape), (long long)w->numel);
	if (L->b_vi >= 0)
		cmd_print(ctx, "  %-11s '%s' (%lld values)", "bias", g->values[L->b_vi].name,
		          (long long)g->values[L->b_vi].init->numel);
	else
		cmd_print(ctx, "  %-11s none", "bias");
	cmd_print(ctx, "  %-11s '%s' -> '%s'", "tensors", g->values[L->in_vi].name,
	          g->values[L->out_vi].name);
	if (L->act_node >= 0)
		cmd_print(ctx, "  %-11s %s (node '%s')", "activation", dfq_act_name(L->act),
		          g->nodes[L->act_node].name);
	else
		cmd_print(ctx, "  %-11s none", "activation");
	if (L->bn_node >= 0)
		cmd_print(ctx, "  %-11s node '%s', not folded yet", "BatchNorm",
		          g->nodes[L->bn_node].name);
	else
		cmd_print(ctx, "  %-11s %s", "BatchNorm",
		          (L->steps & DFQ_STEP_FOLD) ? "folded into the weights" : "none");
	if (L->has_stats && L->gamma && L->beta) {
		char gr[64], br[64];
		array_range(L->gamma, L->cout, gr, sizeof gr);
		array_range(L->beta, L->cout, br, sizeof br);
		cmd_print(ctx, "  %-11s gamma %s, beta %s", "BN stats", gr, br);
	} else {
		cmd_print(ctx, "  %-11s none (ranges and bias correction need data)", "BN stats");
	}
	cJSON *j = ctx->json;
	cJSON_AddNumberToObject(j, "index", li);
	cJSON_AddStringToObject(j, "name", mc_layer_name(m, li));
	cJSON_AddStringToObject(j, "node", L->name);
	cJSON_AddStringToObject(j, "op", layer_op(L));
	cJSON_AddNumberToObject(j, "group", (double)L->group);
	cJSON_AddNumberToObject(j, "cin", (double)L->cin);
	cJSON_AddNumberToObject(j, "cout", (double)L->cout);
	cJSON_AddStringToObject(j, "weight", g->values[L->w_vi].name);
	if (j)
		json_dims(j, "weight_shape", w);
	cJSON_AddStringToObject(j, "act", dfq_act_name(L->act));
	cJSON_AddBoolToObject(j, "bn_folded", L->bn_node < 0);
	cJSON_AddBoolToObject(j, "has_stats", L->has_stats);
	if (j && L->has_stats && L->gamma && L->beta) {
		json_floats(j, "gamma", L->gamma, L->cout);
		json_floats(j, "beta", L->beta, L->cout);
	}
}

static void info_weights(struct cmd_ctx *ctx, const struct dfq_model *m, int li,
                         const struct dfq_layer_info *inf)
{
	const struct dfq_layer *L = &m->layers[li];
	char a[24], b[24], c[24], d[24], e[24];
	cmd_print(ctx, "  %-11s min %s, max %s; per-channel range %s .. %s (spread %s)", "W",
	          mc_num(inf->wmin, a, sizeof a), mc_num(inf->wmax, b, sizeof b),
	          mc_num(inf->rmin, c, sizeof c), mc_num(inf->rmax, d, sizeof d),
	          mc_num(inf->spread, e, sizeof e));
	float *lo = malloc(sizeof *lo * (size_t)(L->cout ? L->cout : 1));
	float *hi = malloc(sizeof *hi * (size_t)(L->cout ? L->cout : 1));
	struct dfq_error err;
	if (lo && hi && dfq_model_channel_ranges(m, li, lo, hi, &err) == DFQ_OK) {
		int64_t show = L->cout < 8 ? L->cout : 8;
		char line[512];
		size_t used = 0;
		line[0] = '\0';
		for (int64_t o = 0; o < show && used < sizeof line; o++)
			used += (size_t)snprintf(line + used, sizeof line - used,
			                         "%s%lld:[%.3g, %.3g]", o ? " " : "", (long long)o,
			                         (double)lo[o], (double)hi[o]);
		cmd_print(ctx, "  %-11s %s%s", "channels", line,
		          show < L->cout ? " ... (all of them in --json)" : "");
		json_floats(ctx->json, "channel_min", lo, L->cout);
		json_floats(ctx->json, "channel_max", hi, L->cout);
	}
	free(lo);
	free(hi);
	mc_json_num(ctx->json, "wmin", inf->wmin);
	mc_json_num(ctx->json, "wmax", inf->wmax);
	mc_json_num(ctx->json, "range_min", inf->rmin);
	mc_json_num(ctx->json, "range_max", inf->rmax);
	mc_json_num(ctx->json, "spread", inf->spread);
}

static void info_act(struct cmd_ctx *ctx, const struct dfq_model *m, int li)
{
	const struct dfq_apoint *p = layer_point(m, li);
	if (!p) {
		cmd_print(ctx, "  %-11s none at this layer's output", "act range");
		return;
	}
	char bn[48], mm[48], gl[48], pc[48];
	cmd_print(
	    ctx, "  %-11s bn %s, minmax %s, global %s, percentile %s", "act range",
	    range_str(&p->bn, false, bn, sizeof bn), range_str(&p->minmax, false, mm, sizeof mm),
	    range_str(&p->global, false, gl, sizeof gl), range_str(&p->pct, false, pc, sizeof pc));
	if (p->enabled)
		cmd_print(ctx, "  %-11s A%d from %s: scale %.4g, zero point %d", "act grid",
		          p->bits, dfq_range_src_name(p->used), (double)p->qp.scale,
		          p->qp.zero_point);
	else
		cmd_print(ctx, "  %-11s float (%s)", "act grid",
		          p->bits > 0 ? "no range known" : "not quantized");
	cJSON *o = cJSON_AddObjectToObject(ctx->json, "act");
	if (!o)
		return;
	mc_json_range(o, "bn", p->bn.valid, p->bn.lo, p->bn.hi);
	mc_json_range(o, "minmax", p->minmax.valid, p->minmax.lo, p->minmax.hi);
	mc_json_range(o, "global", p->global.valid, p->global.lo, p->global.hi);
	mc_json_range(o, "percentile", p->pct.valid, p->pct.lo, p->pct.hi);
	cJSON_AddNumberToObject(o, "samples", (double)p->nsamples);
	cJSON_AddBoolToObject(o, "enabled", p->enabled);
	cJSON_AddNumberToObject(o, "bits", p->bits);
	cJSON_AddStringToObject(o, "used", dfq_range_src_name(p->used));
	if (p->enabled) {
		cJSON_AddNumberToObject(o, "scale", p->qp.scale);
		cJSON_AddNumberToObject(o, "zero_point", p->qp.zero_point);
	}
}

static void info_quant(struct cmd_ctx *ctx, const struct dfq_model *m, int li)
{
	const struct dfq_layer *L = &m->layers[li];
	char cfg[96], steps[96];
	if (L->quantized) {
		struct dfq_qerr_stats st;
		struct dfq_error err;
		mc_qconfig_str(&L->q, cfg, sizeof cfg);
		if (dfq_model_weight_error(m, li, NULL, DFQ_QERR_SUM, NULL, &st, &err) == DFQ_OK) {
			cmd_print(ctx, "  %-11s %s: SQNR %.2f dB, max |error| %.4g", "quantized",
			          cfg, st.sqnr_db, st.max_abs);
			mc_json_num(ctx->json, "sqnr_db", st.sqnr_db);
		} else {
			cmd_print(ctx, "  %-11s %s", "quantized", cfg);
		}
		cJSON_AddStringToObject(ctx->json, "qconfig", cfg);
	} else {
		cmd_print(ctx, "  %-11s no (float)", "quantized");
		cJSON_AddNullToObject(ctx->json, "qconfig");
	}
	if (L->bcorr_q || L->bcorr_fp) {
		double q = L->bcorr_q ? max_abs(L->bcorr_q, L->cout) : 0;
		double f = L->bcorr_fp ? max_abs(L->bcorr_fp, L->cout) : 0;
		cmd_print(ctx, "  %-11s max |correction| %.4g quantized, %.4g float (clipping)",
		          "bias corr", q, f);
		mc_json_num(ctx->json, "biascorr_max", q);
		if (ctx->json && L->bcorr_q)
			json_floats(ctx->json, "biascorr", L->bcorr_q, L->cout);
	}
	dfq_steps_str(L->steps, steps, sizeof steps);
	cmd_print(ctx, "  %-11s %s", "steps", steps);
	if (!L->editable)
		cmd_print(ctx, "  %-11s no: %s", "editable", L->why_fixed ? L->why_fixed : "?");
	cJSON_AddStringToObject(ctx->json, "steps", steps);
	cJSON_AddBoolToObject(ctx->json, "editable", L->editable);
}

static enum cmd_retval cmd_info_exec(struct cmd_ctx *ctx, struct args *a)
{
	struct dfq_model *m = mc_model(ctx);
	if (!m)
		return CMD_RETURN_ERROR;
	int li = mc_one_layer(ctx, m, a->pos[0]);
	if (li < 0)
		return CMD_RETURN_ERROR;
	struct dfq_layer_info inf;
	struct dfq_error err;
	if (dfq_model_layer_info(m, li, &inf, &err) != DFQ_OK)
		return cmd_fail(ctx, "%s", err.msg);
	info_structure(ctx, m, li);
	info_weights(ctx, m, li, &inf);
	info_act(ctx, m, li);
	info_quant(ctx, m, li);
	return CMD_RETURN_NORMAL;
}

const struct cmd_entry cmd_info_entry = {
    .name = "info",
    .alias = NULL,
    .usage = "info LAYER",
    .args = {NULL, 1, 1, ARGS_TARGET, NULL},
    .summary = "one layer in detail: structure, weight ranges, activation ranges, quantization",
    .exec = cmd_info_exec,
};
