/* cmd-load.c - load: read an ONNX model into the session and summarise it. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "dfq/dfq_onnx.h"

struct op_count {
	const char *op_type; /* borrowed from the graph */
	int n;
};

/* Most frequent first, then by name, so the summary is stable. */
static int op_count_cmp(const void *pa, const void *pb)
{
	const struct op_count *a = pa, *b = pb;
	if (a->n != b->n)
		return b->n - a->n;
	return strcmp(a->op_type, b->op_type);
}

/* Count nodes per op type; returns a malloc'd sorted array (caller frees). */
static struct op_count *count_ops(const struct dfq_graph *g, int *nout)
{
	struct op_count *c = calloc((size_t)g->nnodes + 1, sizeof *c);
	int n = 0;
	if (!c)
		return NULL;
	for (int i = 0; i < g->nnodes; i++) {
		int k = 0;
		while (k < n && strcmp(c[k].op_type, g->nodes[i].op_type) != 0)
			k++;
		if (k == n)
			c[n++].op_type = g->nodes[i].op_type;
		c[k].n++;
	}
	qsort(c, (size_t)n, sizeof *c, op_count_cmp);
	*nout = n;
	return c;
}

/* [1, 3, null, 224]: unknown (symbolic) dims are null. */
static cJSON *shape_json(const struct dfq_shape *s)
{
	cJSON *arr = cJSON_CreateArray();
	for (int i = 0; arr && i < s->ndim; i++) {
		cJSON *d = s->dims[i] < 0 ? cJSON_CreateNull()
					  : cJSON_CreateNumber((double)s->dims[i]);
		if (!cJSON_AddItemToArray(arr, d))
			cJSON_Delete(d);
	}
	return arr;
}

static void list_values(struct cmd_ctx *ctx, const struct dfq_graph *g, const char *label,
			int n, const int *idx, const char *key)
{
	cJSON *arr = cJSON_AddArrayToObject(ctx->json, key);
	for (int i = 0; i < n; i++) {
		const struct dfq_value *v = &g->values[idx[i]];
		char shape[160];
		dfq_shape_str(&v->shape, shape, sizeof shape);
		cmd_print(ctx, "  %-9s %s %s", label, v->name, shape);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", v->name);
		cJSON *sj = shape_json(&v->shape);
		if (!cJSON_AddItemToObject(o, "shape", sj))
			cJSON_Delete(sj);
		if (!cJSON_AddItemToArray(arr, o))
			cJSON_Delete(o);
	}
}

static void print_ops(struct cmd_ctx *ctx, const struct dfq_graph *g)
{
	int n = 0;
	struct op_count *c = count_ops(g, &n);
	if (!c)
		return;
	char line[1024];
	size_t used = 0;
	line[0] = '\0';
	cJSON *ops = cJSON_AddObjectToObject(ctx->json, "ops");
	for (int i = 0; i < n; i++) {
		if (used < sizeof line)
			used += (size_t)snprintf(line + used, sizeof line - used, "%s%s %d",
						 i ? ", " : "", c[i].op_type, c[i].n);
		cJSON_AddNumberToObject(ops, c[i].op_type, c[i].n);
	}
	if (used >= sizeof line)
		strcpy(line + sizeof line - 4, "...");
	cmd_print(ctx, "  %-9s %s", "ops", n ? line : "(none)");
	free(c);
}

static void print_summary(struct cmd_ctx *ctx, const struct dfq_graph *g, const char *path)
{
	int64_t params = dfq_graph_param_count(g);
	cJSON_AddStringToObject(ctx->json, "path", path);
	cJSON_AddStringToObject(ctx->json, "producer", g->producer ? g->producer : "");
	cJSON_AddNumberToObject(ctx->json, "opset", (double)g->opset);
	cJSON_AddNumberToObject(ctx->json, "nodes", g->nnodes);
	cJSON_AddNumberToObject(ctx->json, "params", (double)params);
	cmd_print(ctx, "loaded %s", path);
	cmd_print(ctx, "  %-9s %s", "producer", g->producer && *g->producer ? g->producer : "?");
	cmd_print(ctx, "  %-9s %lld", "opset", (long long)g->opset);
	list_values(ctx, g, "input", g->ninputs, g->inputs, "inputs");
	if (g->ninputs == 0) /* a constant model: infer runs it without files */
		cmd_print(ctx, "  %-9s %s", "input", "(none)");
	list_values(ctx, g, "output", g->noutputs, g->outputs, "outputs");
	cmd_print(ctx, "  %-9s %d", "nodes", g->nnodes);
	print_ops(ctx, g);
	cmd_print(ctx, "  %-9s %lld", "params", (long long)params);
}

/* A model with convolutions and no BatchNorm statistics (PyTorch's default
 * export folds BatchNorm into the convolutions): say once what that costs and
 * the two ways out. */
static void print_stats_notice(struct cmd_ctx *ctx, const struct dfq_model *m)
{
	bool conv = false;
	for (int i = 0; m && i < m->nlayers; i++)
		conv |= m->layers[i].op == DFQ_OP_CONV;
	if (!conv || m->has_stats)
		return;
	cmd_print(ctx, "  %-9s %s", "note",
	          "no BatchNorm statistics (a default PyTorch export folds BatchNorm away):");
	cmd_print(ctx, "  %-9s %s", "",
	          "data-free activation ranges and analytic bias correction need them; use");
	cmd_print(ctx, "  %-9s %s", "",
	          "data ('measure data', 'biascorr --empirical') or re-export with");
	cmd_print(ctx, "  %-9s %s", "",
	          "torch.onnx.export(..., training=torch.onnx.TrainingMode.PRESERVE)");
}

/* On failure the session keeps its old model. */
static enum cmd_retval cmd_load_exec(struct cmd_ctx *ctx, struct args *a)
{
	const char *path = a->pos[0];
	struct dfq_graph *g = NULL;
	struct dfq_error err;
	dfq_error_clear(&err);
	if (dfq_onnx_load_file(path, &g, &err) != DFQ_OK)
		return cmd_fail_error(ctx, &err);
	if (session_set_model(ctx->s, g, path, &err) != DFQ_OK)
		return cmd_fail_error(ctx, &err);
	print_summary(ctx, ctx->s->graph, path);
	print_stats_notice(ctx, ctx->s->model);
	return CMD_RETURN_NORMAL;
}

const struct cmd_entry cmd_load_entry = {
	.name = "load",
	.alias = NULL,
	.usage = "load MODEL.onnx",
	.args = {NULL, 1, 1},
	.summary = "load an ONNX model and print a summary",
	.exec = cmd_load_exec,
};
