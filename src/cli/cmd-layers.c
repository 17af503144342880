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

/* The bits column: what the layer runs with ("W4A8", "W8", "-"), with a '^'
 * when it is pinned ('float', 'bits'): "FP32^" for a layer kept float, the
 * pinned bits for a float layer waiting for its quantize ("W4^", "A6^"). */
static void bits_cell(const struct dfq_layer *L, const struct dfq_layer_info *inf, char *buf,
                      size_t len)
{
	const char *pin = L->pin.what ? "^" : "";
	if (L->pin.what & DFQ_PIN_FLOAT)
		snprintf(buf, len, "FP32%s", pin);
	else if (inf->wbits > 0 && inf->abits > 0)
		snprintf(buf, len, "W%dA%d%s", inf->wbits, inf->abits, pin);
	else if (inf->wbits > 0)
		snprintf(buf, len, "W%d%s", inf->wbits, pin);
	else if (!L->pin.what)
		snprintf(buf, len, "-");
	else if ((L->pin.what & DFQ_PIN_WBITS) && (L->pin.what & DFQ_PIN_ABITS) && L->pin.abits)
		snprintf(buf, len, "W%dA%d^", L->pin.wbits, L->pin.abits);
	else if (L->pin.what & DFQ_PIN_WBITS)
		snprintf(buf, len, "W%d^", L->pin.wbits);
	else
		snprintf(buf, len, "A%d^", L->pin.abits);
}

/* The pin as JSON, only for a pinned layer (so tables of unpinned models read as
 * before): {"float": true} or {"wbits": N, "abits": N} (those pinned). */
static void pin_json(cJSON *o, const struct dfq_layer *L)
{
	if (!L->pin.what)
		return;
	cJSON *p = cJSON_AddObjectToObject(o, "pin");
	if (L->pin.what & DFQ_PIN_FLOAT)
		cJSON_AddBoolToObject(p, "float", true);
	if (L->pin.what & DFQ_PIN_WBITS)
		cJSON_AddNumberToObject(p, "wbits", L->pin.wbits);
	if (L->pin.what & DFQ_PIN_ABITS)
		cJSON_AddNumberToObject(p, "abits", L->pin.abits);
}

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
	pin_json(o, L);
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

/* The table's columns, in order.  The table fits the output width by
 * dropping the least useful columns and shortening names (see fit_plan). */
enum col {
	COL_IDX,
	COL_NAME,
	COL_OP,
	COL_ACT,
	COL_WEIGHT,
	COL_WMIN,
	COL_WMAX,
	COL_SPREAD,
	COL_BN,
	COL_DATA,
	COL_BITS,
	COL_STEPS,
	NCOLS
};

/* clang-format off */
static const struct {
	const char *head;
	bool right; /* numbers are right-aligned */
} col_def[NCOLS] = {
	{"#", true}, {"name", false}, {"op", false}, {"act", false}, {"weight", false},
	{"W min", true}, {"W max", true}, {"spread", true}, {"act range (bn)", false},
	{"act range (data)", false}, {"bits", false}, {"steps", false},
};
/* clang-format on */

#define CELL 128

struct table {
	int nrows;
	char (*cell)[NCOLS][CELL]; /* owned: nrows rows */
	int width[NCOLS];          /* widest cell or heading */
	bool shown[NCOLS];
	bool empty[NCOLS]; /* hidden because it said nothing (not listed as hidden) */
	int name_width;    /* the name column as printed (names longer are shortened) */
};

/* A table row's cells for layer li. */
static void layer_cells(const struct dfq_model *m, int li, const struct dfq_layer_info *inf,
                        const struct dfq_apoint *p, char (*c)[CELL])
{
	const struct dfq_layer *L = &m->layers[li];
	dfq_range_src ds = DFQ_RANGE_MINMAX;
	const struct dfq_range none = {0};
	const struct dfq_range *dr = p ? data_range(m, p, &ds) : &none;
	snprintf(c[COL_IDX], CELL, "%d", li);
	snprintf(c[COL_NAME], CELL, "%s", mc_layer_name(m, li));
	snprintf(c[COL_OP], CELL, "%s", layer_op(L));
	snprintf(c[COL_ACT], CELL, "%s", L->act == DFQ_ACT_NONE ? "-" : dfq_act_name(L->act));
	dims_str(m->g->values[L->w_vi].init, c[COL_WEIGHT], CELL);
	mc_num(inf->wmin, c[COL_WMIN], CELL);
	mc_num(inf->wmax, c[COL_WMAX], CELL);
	mc_num(inf->spread, c[COL_SPREAD], CELL);
	range_str(p ? &p->bn : &none, p && p->enabled && p->used == DFQ_RANGE_BN, c[COL_BN], CELL);
	range_str(dr, p && p->enabled && p->used == ds, c[COL_DATA], CELL);
	bits_cell(L, inf, c[COL_BITS], CELL);
	dfq_steps_str(L->steps, c[COL_STEPS], CELL);
}

static int table_width(const struct table *t)
{
	int w = 0, n = 0;
	for (int k = 0; k < NCOLS; k++) {
		if (!t->shown[k])
			continue;
		w += k == COL_NAME ? t->name_width : t->width[k];
		n++;
	}
	return w + 2 * (n > 0 ? n - 1 : 0);
}

/* True when every cell of column k is "-" (e.g. no data ranges measured). */
static bool column_empty(const struct table *t, int k)
{
	for (int r = 0; r < t->nrows; r++)
		if (strcmp(t->cell[r][k], "-") != 0)
			return false;
	return true;
}

/* What goes first when the table is too wide: a column that says nothing,
 * long names, then the columns least needed to follow DFQ (the layer's
 * history, its shape, its activation, its op are in 'info LAYER'), then the
 * data ranges and the weight extremes; names shrink last. */
/* clang-format off */
static const struct {
	int col, col2; /* columns to drop (-1: none) */
	bool if_empty; /* only when col says nothing */
	int name_cap;  /* else: shorten names to this width */
} fit_plan[] = {
	{COL_DATA, -1, true, 0},
	{-1, -1, false, 24},
	{COL_STEPS, -1, false, 0},
	{COL_WEIGHT, -1, false, 0},
	{COL_ACT, -1, false, 0},
	{-1, -1, false, 16},
	{COL_OP, -1, false, 0},
	{COL_DATA, -1, false, 0},
	{COL_WMIN, COL_WMAX, false, 0},
	{-1, -1, false, 10},
};
/* clang-format on */

static void table_fit(struct table *t, int width)
{
	for (size_t i = 0; i < sizeof fit_plan / sizeof fit_plan[0]; i++) {
		if (table_width(t) <= width)
			return;
		if (fit_plan[i].col < 0) {
			if (t->name_width > fit_plan[i].name_cap)
				t->name_width = fit_plan[i].name_cap;
			continue;
		}
		if (!t->shown[fit_plan[i].col] ||
		    (fit_plan[i].if_empty && !column_empty(t, fit_plan[i].col)))
			continue;
		t->shown[fit_plan[i].col] = false;
		t->empty[fit_plan[i].col] = fit_plan[i].if_empty;
		if (fit_plan[i].col2 >= 0)
			t->shown[fit_plan[i].col2] = false;
	}
}

/* s cut to w characters in the middle, keeping more of the end, where
 * names differ: "featu~.13.conv.0". */
static const char *shorten(const char *s, int w, char *buf, size_t len)
{
	int n = (int)strlen(s);
	if (n <= w || w < 3) {
		snprintf(buf, len, "%s", s);
		return buf;
	}
	int head = (w - 1) / 3, tail = w - 1 - head;
	snprintf(buf, len, "%.*s~%s", head, s, s + n - tail);
	return buf;
}

/* One line of the shown columns; the last one is not padded. */
static void table_line(struct cmd_ctx *ctx, const struct table *t, const char *const *text)
{
	char line[NCOLS * (CELL + 2)];
	size_t used = 0;
	int last = -1;
	for (int k = 0; k < NCOLS; k++)
		if (t->shown[k])
			last = k;
	for (int k = 0; k < NCOLS && used < sizeof line; k++) {
		if (!t->shown[k])
			continue;
		char cut[CELL];
		int w = k == COL_NAME ? t->name_width : t->width[k];
		const char *x = k == COL_NAME ? shorten(text[k], w, cut, sizeof cut) : text[k];
		const char *sep = used ? "  " : "";
		if (k == last && !col_def[k].right)
			used += (size_t)snprintf(line + used, sizeof line - used, "%s%s", sep, x);
		else
			used += (size_t)snprintf(line + used, sizeof line - used, "%s%*s", sep,
			                         col_def[k].right ? w : -w, x);
	}
	cmd_result(ctx, "%s", line);
}

/* "steps, weight": the columns hidden that had something to say. */
static void hidden_list(const struct table *t, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int k = 0; k < NCOLS && used < len; k++)
		if (!t->shown[k] && !t->empty[k])
			used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
			                         col_def[k].head);
}

/* text as result lines of at most width characters, broken at blanks (a
 * word longer than width gets a line of its own). */
static void result_wrapped(struct cmd_ctx *ctx, const char *text, int width)
{
	const char *p = text;
	while (*p) {
		int n = (int)strlen(p);
		if (n > width) {
			int cut = width;
			while (cut > 0 && p[cut] != ' ')
				cut--;
			if (cut == 0)
				cut = (int)strcspn(p, " ");
			n = cut;
		}
		cmd_result(ctx, "%.*s", n, p);
		p += n;
		while (*p == ' ')
			p++;
	}
}

static enum cmd_retval cmd_layers_exec(struct cmd_ctx *ctx, struct args *a)
{
	struct dfq_model *m = ctx->s->model;
	struct table t = {.nrows = 0};
	t.cell = calloc((size_t)ctx->nsel + 1, sizeof *t.cell);
	if (!t.cell)
		return cmd_fail(ctx, "out of memory");
	cJSON *arr = cJSON_AddArrayToObject(ctx->json, "layers");
	int nquant = 0, npinned = 0;
	for (int li = 0; li < m->nlayers; li++) {
		if (!ctx->sel[li])
			continue;
		npinned += m->layers[li].pin.what != 0;
		struct dfq_layer_info inf;
		struct dfq_error err;
		if (dfq_model_layer_info(m, li, &inf, &err) != DFQ_OK) {
			free(t.cell);
			return cmd_fail_error(ctx, &err);
		}
		const struct dfq_apoint *p = layer_point(m, li);
		layer_cells(m, li, &inf, p, t.cell[t.nrows++]);
		if (arr)
			layer_json(arr, m, li, &inf, p);
		nquant += m->layers[li].quantized;
	}
	for (int k = 0; k < NCOLS; k++) {
		t.width[k] = (int)strlen(col_def[k].head);
		t.shown[k] = true;
		for (int r = 0; r < t.nrows; r++) {
			int n = (int)strlen(t.cell[r][k]);
			t.width[k] = n > t.width[k] ? n : t.width[k];
		}
	}
	t.name_width = t.width[COL_NAME] > 40 ? 40 : t.width[COL_NAME];
	int width = cli_output_width();
	if (!args_has(a, "wide"))
		table_fit(&t, width);

	const char *head[NCOLS];
	for (int k = 0; k < NCOLS; k++)
		head[k] = col_def[k].head;
	table_line(ctx, &t, head);
	for (int r = 0; r < t.nrows; r++) {
		const char *row[NCOLS];
		for (int k = 0; k < NCOLS; k++)
			row[k] = t.cell[r][k];
		table_line(ctx, &t, row);
	}
	const char *bn =
	    m->folded ? (m->has_stats ? "folded (statistics kept)" : "none") : "not folded";
	char count[64];
	if (ctx->nsel < m->nlayers)
		snprintf(count, sizeof count, "%d of %d layers", ctx->nsel, m->nlayers);
	else
		snprintf(count, sizeof count, "%d layer%s", m->nlayers, m->nlayers == 1 ? "" : "s");
	char text[512], hidden[256];
	snprintf(text, sizeof text, "%s, %d quantized; BatchNorm %s", count, nquant, bn);
	result_wrapped(ctx, text, width);
	static const char spread[] = "spread = largest/smallest channel weight range",
	                  star[] = "* = activation range in use";
	if (width >= (int)(sizeof spread + sizeof star))
		cmd_result(ctx, "%s; %s", spread, star);
	else
		cmd_result(ctx, "%s\n%s", spread, star);
	if (npinned > 0)
		result_wrapped(ctx,
		               "^ = bits pinned by 'float' or 'bits' (a later quantize keeps them)",
		               width);
	hidden_list(&t, hidden, sizeof hidden);
	snprintf(text, sizeof text, "hidden to fit %d columns: %s ('layers --wide' shows them)",
	         width, hidden);
	if (*hidden)
		result_wrapped(ctx, text, width);
	free(t.cell);
	cJSON_AddBoolToObject(ctx->json, "folded", m->folded);
	cJSON_AddBoolToObject(ctx->json, "has_stats", m->has_stats);
	cJSON_AddNumberToObject(ctx->json, "quantized", nquant);
	return CMD_RETURN_NORMAL;
}

static const struct args_flag layers_flags[] = {
    {"wide", false, NULL, NULL},
    {NULL, false, NULL, NULL},
};

const struct cmd_entry cmd_layers_entry = {
    .name = "layers",
    .alias = NULL,
    .usage = "layers [TARGET...] [--wide]",
    .args = {layers_flags, 0, -1, ARGS_TARGET, NULL},
    .summary = "the layer table: weights, range spread, activation ranges, bits, steps",
    .exec = cmd_layers_exec,
    .flags = CMD_NEEDS_MODEL | CMD_TARGET_ALL,
    .help = "  The table fits the terminal (else $COLUMNS, else 100 columns): the least\n"
            "  needed columns go first and long names are shortened in the middle with '~';\n"
            "  --wide shows every column in full.  --json has every column of every layer.",
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
	cmd_result(ctx, "layer %d: %s (node '%s')", li, mc_layer_name(m, li), L->name);
	if (L->op == DFQ_OP_CONV)
		cmd_result(
		    ctx, "  %-11s %s, group %lld%s, %lld -> %lld channels, %lld-element kernel",
		    "op", layer_op(L), (long long)L->group, L->depthwise ? " (depthwise)" : "",
		    (long long)L->cin, (long long)L->cout, (long long)L->ksize);
	else
		cmd_result(ctx, "  %-11s %s, %lld -> %lld features", "op", layer_op(L),
		           (long long)L->cin, (long long)L->cout);
	cmd_result(ctx, "  %-11s '%s' %s (%lld values)", "weight", g->values[L->w_vi].name,
	           dims_str(w, shape, sizeof shape), (long long)w->numel);
	if (L->b_vi >= 0)
		cmd_result(ctx, "  %-11s '%s' (%lld values)", "bias", g->values[L->b_vi].name,
		           (long long)g->values[L->b_vi].init->numel);
	else
		cmd_result(ctx, "  %-11s none", "bias");
	cmd_result(ctx, "  %-11s '%s' -> '%s'", "tensors", g->values[L->in_vi].name,
	           g->values[L->out_vi].name);
	if (L->act_node >= 0)
		cmd_result(ctx, "  %-11s %s (node '%s')", "activation", dfq_act_name(L->act),
		           g->nodes[L->act_node].name);
	else
		cmd_result(ctx, "  %-11s none", "activation");
	if (L->bn_node >= 0)
		cmd_result(ctx, "  %-11s node '%s', not folded yet", "BatchNorm",
		           g->nodes[L->bn_node].name);
	else
		cmd_result(ctx, "  %-11s %s", "BatchNorm",
		           (L->steps & DFQ_STEP_FOLD) ? "folded into the weights" : "none");
	if (L->has_stats && L->gamma && L->beta) {
		char gr[64], br[64];
		array_range(L->gamma, L->cout, gr, sizeof gr);
		array_range(L->beta, L->cout, br, sizeof br);
		cmd_result(ctx, "  %-11s gamma %s, beta %s", "BN stats", gr, br);
	} else {
		cmd_result(ctx, "  %-11s none (ranges and bias correction need data)", "BN stats");
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
	cmd_result(ctx, "  %-11s min %s, max %s; per-channel range %s .. %s (spread %s)", "W",
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
		cmd_result(ctx, "  %-11s %s%s", "channels", line,
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
		cmd_result(ctx, "  %-11s none at this layer's output", "act range");
		return;
	}
	char bn[48], mm[48], gl[48], pc[48];
	cmd_result(
	    ctx, "  %-11s bn %s, minmax %s, global %s, percentile %s", "act range",
	    range_str(&p->bn, false, bn, sizeof bn), range_str(&p->minmax, false, mm, sizeof mm),
	    range_str(&p->global, false, gl, sizeof gl), range_str(&p->pct, false, pc, sizeof pc));
	if (p->enabled)
		cmd_result(ctx, "  %-11s A%d from %s: scale %.4g, zero point %d", "act grid",
		           p->bits, dfq_range_src_name(p->used), (double)p->qp.scale,
		           p->qp.zero_point);
	else
		cmd_result(ctx, "  %-11s float (%s)", "act grid",
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
			cmd_result(ctx, "  %-11s %s: SQNR %.2f dB, max |error| %.4g", "quantized",
			           cfg, st.sqnr_db, st.max_abs);
			mc_json_num(ctx->json, "sqnr_db", st.sqnr_db);
		} else {
			cmd_result(ctx, "  %-11s %s", "quantized", cfg);
		}
		cJSON_AddStringToObject(ctx->json, "qconfig", cfg);
	} else {
		cmd_result(ctx, "  %-11s no (float)", "quantized");
		cJSON_AddNullToObject(ctx->json, "qconfig");
	}
	if (L->bcorr_q || L->bcorr_fp) {
		double q = L->bcorr_q ? max_abs(L->bcorr_q, L->cout) : 0;
		double f = L->bcorr_fp ? max_abs(L->bcorr_fp, L->cout) : 0;
		cmd_result(ctx, "  %-11s max |correction| %.4g quantized, %.4g float (clipping)",
		           "bias corr", q, f);
		mc_json_num(ctx->json, "biascorr_max", q);
		if (ctx->json && L->bcorr_q)
			json_floats(ctx->json, "biascorr", L->bcorr_q, L->cout);
	}
	dfq_steps_str(L->steps, steps, sizeof steps);
	cmd_result(ctx, "  %-11s %s", "steps", steps);
	if (!L->editable)
		cmd_result(ctx, "  %-11s no: %s", "editable", L->why_fixed ? L->why_fixed : "?");
	cJSON_AddStringToObject(ctx->json, "steps", steps);
	cJSON_AddBoolToObject(ctx->json, "editable", L->editable);
}

static enum cmd_retval cmd_info_exec(struct cmd_ctx *ctx, struct args *a)
{
	struct dfq_model *m = ctx->s->model;
	int li = mc_one_target(ctx);
	if (li < 0)
		return CMD_RETURN_ERROR;
	struct dfq_layer_info inf;
	struct dfq_error err;
	if (dfq_model_layer_info(m, li, &inf, &err) != DFQ_OK)
		return cmd_fail_error(ctx, &err);
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
    .flags = CMD_NEEDS_MODEL,
};
