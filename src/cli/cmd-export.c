/* cmd-export.c - export and export-encodings: the model as it stands as an ONNX file (float, or
 * with QuantizeLinear/DequantizeLinear pairs: the core builds it, src/core/onnx_export.c), and its
 * quantization grids as an AIMET encodings file (JSON, built here with cJSON). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dfq/dfq_onnx.h"
#include "files.h"
#include "model-cmd.h"

/* True when path is the file the session's model was loaded from (it must stay as it was:
 * save and replay load it again). */
static bool is_model_file(const struct session *s, const char *path)
{
	struct stat a, b;
	return s->model_path && stat(path, &a) == 0 && stat(s->model_path, &b) == 0 &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static bool write_file(struct cmd_ctx *ctx, const char *path, const void *data, size_t len)
{
	char why[512];
	if (!cli_write_atomic(path, data, len, why, sizeof why)) {
		cmd_error(ctx, "%s: %s", ctx->entry->name, why);
		return false;
	}
	return true;
}

static enum cmd_retval cmd_export_exec(struct cmd_ctx *ctx, struct args *a)
{
	const char *path = a->pos[0];
	bool qdq = args_has(a, "qdq");
	if (is_model_file(ctx->s, path))
		return cmd_fail(
		    ctx, "export: %s is the model this session loaded: give another name", path);
	struct dfq_error err = {0};
	struct dfq_onnx_export_info info;
	uint8_t *buf = NULL;
	size_t len = 0;
	if (dfq_onnx_export(ctx->s->model, qdq, &buf, &len, &info, &err) != DFQ_OK)
		return cmd_fail_error(ctx, &err);
	bool ok = write_file(ctx, path, buf, len);
	free(buf);
	if (!ok)
		return CMD_RETURN_ERROR;
	char opset[64];
	if (info.opset != info.opset_in)
		snprintf(opset, sizeof opset, "opset %lld, raised from %lld", (long long)info.opset,
		         (long long)info.opset_in);
	else
		snprintf(opset, sizeof opset, "opset %lld", (long long)info.opset);
	if (qdq) {
		cmd_print(ctx,
		          "exported the quantized model to %s (%d nodes, %s): %d weight%s and %d "
		          "activation%s as QDQ%s",
		          path, info.nnodes, opset, info.nweight_qdq,
		          info.nweight_qdq == 1 ? "" : "s", info.nact_qdq,
		          info.nact_qdq == 1 ? "" : "s",
		          info.nclips ? ", a Clip before the grids under 8 bits" : "");
		if (info.nbias_qdq)
			cmd_print(ctx, "%d 8-bit bias%s as QDQ", info.nbias_qdq,
			          info.nbias_qdq == 1 ? "" : "es");
		if (info.nbias_float)
			cmd_print(ctx,
			          "%d 16-bit bias%s written as fake-quantized floats (no 16-bit "
			          "QuantizeLinear before opset 21)",
			          info.nbias_float, info.nbias_float == 1 ? "" : "es");
	} else {
		cmd_print(ctx, "exported the float model to %s (%d nodes, %s)", path, info.nnodes,
		          opset);
	}
	cJSON_AddStringToObject(ctx->json, "path", path);
	cJSON_AddBoolToObject(ctx->json, "qdq", qdq);
	cJSON_AddNumberToObject(ctx->json, "bytes", (double)len);
	cJSON_AddNumberToObject(ctx->json, "nodes", info.nnodes);
	cJSON_AddNumberToObject(ctx->json, "opset", (double)info.opset);
	cJSON_AddNumberToObject(ctx->json, "weights_qdq", info.nweight_qdq);
	cJSON_AddNumberToObject(ctx->json, "activations_qdq", info.nact_qdq);
	cJSON_AddNumberToObject(ctx->json, "clips", info.nclips);
	cJSON_AddNumberToObject(ctx->json, "biases_qdq", info.nbias_qdq);
	cJSON_AddNumberToObject(ctx->json, "biases_float", info.nbias_float);
	return CMD_RETURN_NORMAL;
}

static const struct args_flag export_flags[] = {
    {"qdq", false, NULL, NULL},
    {NULL, false, NULL, NULL},
};

const struct cmd_entry cmd_export_entry = {
    .name = "export",
    .alias = NULL,
    .usage = "export FILE.onnx [--qdq]",
    .args = {export_flags, 1, 1, ARGS_FILE, NULL},
    .summary = "write the model as it stands as ONNX (float, or quantized with --qdq)",
    .exec = cmd_export_exec,
    .flags = CMD_NEEDS_MODEL,
    .help = "Without --qdq: what eval runs in float (the folded, equalized, absorbed,\n"
            "clipped weights; biases with the float part of bias correction).  With\n"
            "--qdq: what the quantized model runs: each quantized layer's weights as\n"
            "int8 (symmetric) or uint8 (asymmetric) codes with a DequantizeLinear (per\n"
            "channel with its axis: opset 13 at least), each quantized activation (the\n"
            "model input too) as QuantizeLinear -> DequantizeLinear keeping its name,\n"
            "with a Clip first for grids under 8 bits, and biases with the quantized\n"
            "model's bias correction (8-bit ones as codes).  Grids of more than 8 bits\n"
            "cannot be written (the command says which, and writes nothing).  Node,\n"
            "input and output names are the model's.  The file is replaced whole or\n"
            "not at all.",
};

/* --- export-encodings --------------------------------------------------------------------------
 */

/* One AIMET encoding of grid q: min/max the grid's ends, offset its lowest code relative to
 * the zero point (-zero_point for asymmetric grids, -2^(bits-1) for symmetric ones). */
static cJSON *encoding(const struct dfq_qparams *q)
{
	cJSON *e = cJSON_CreateObject();
	if (!e)
		return NULL;
	cJSON_AddNumberToObject(e, "bitwidth", q->bits);
	cJSON_AddStringToObject(e, "dtype", "int");
	cJSON_AddStringToObject(e, "is_symmetric", q->scheme == DFQ_QSCHEME_SYM ? "True" : "False");
	cJSON_AddNumberToObject(e, "max", (double)((float)(q->qmax - q->zero_point) * q->scale));
	cJSON_AddNumberToObject(e, "min", (double)((float)(q->qmin - q->zero_point) * q->scale));
	cJSON_AddNumberToObject(e, "offset", q->qmin - q->zero_point);
	cJSON_AddNumberToObject(e, "scale", (double)q->scale);
	return e;
}

static bool add_encodings(struct cmd_ctx *ctx, cJSON *obj, const char *kind, const char *name,
                          const struct dfq_qparams *q, int n)
{
	cmd_detail(ctx, "  %-10s %s: %d-bit %s, %d grid%s", kind, name, q->bits,
	           q->scheme == DFQ_QSCHEME_SYM ? "sym" : "asym", n, n == 1 ? "" : "s");
	cJSON *list = cJSON_AddArrayToObject(obj, name);
	for (int i = 0; list && i < n; i++) {
		cJSON *e = encoding(&q[i]);
		if (!e)
			return false;
		cJSON_AddItemToArray(list, e);
	}
	return list != NULL;
}

static enum cmd_retval cmd_export_enc_exec(struct cmd_ctx *ctx, struct args *a)
{
	const char *path = a->pos[0];
	const struct dfq_model *m = ctx->s->model;
	const struct dfq_graph *g = m->g;
	if (is_model_file(ctx->s, path))
		return cmd_fail(ctx,
		                "export-encodings: %s is the model this session loaded: give "
		                "another name",
		                path);
	cJSON *root = cJSON_CreateObject();
	cJSON *acts = root ? cJSON_AddObjectToObject(root, "activation_encodings") : NULL;
	cJSON *params = root ? cJSON_AddObjectToObject(root, "param_encodings") : NULL;
	bool ok = root && acts && params && cJSON_AddStringToObject(root, "version", "0.5.0");
	int nact = 0, nparam = 0;
	for (int pi = 0; ok && pi < m->npoints; pi++) {
		const struct dfq_apoint *pt = &m->points[pi];
		if (!pt->enabled || pt->vi < 0 || g->values[pt->vi].init)
			continue;
		ok = add_encodings(ctx, acts, "activation", g->values[pt->vi].name, &pt->qp, 1);
		nact++;
	}
	float *bias = NULL;
	for (int li = 0; ok && li < m->nlayers; li++) {
		const struct dfq_layer *L = &m->layers[li];
		if (!L->quantized || !L->wqp)
			continue;
		ok = add_encodings(ctx, params, "param", g->values[L->w_vi].name, L->wqp, L->nwqp);
		nparam++;
		if (!ok || L->b_vi < 0 || (L->q.bbits != 8 && L->q.bbits != 16))
			continue;
		struct dfq_qparams q;
		bool has = false;
		struct dfq_error err = {0};
		free(bias);
		bias = malloc((size_t)L->cout * sizeof *bias);
		if (!bias || dfq_onnx_export_bias_grid(m, li, bias, &q, &has, &err) != DFQ_OK) {
			ok = false;
			break;
		}
		if (has) {
			ok = add_encodings(ctx, params, "param", g->values[L->b_vi].name, &q, 1);
			nparam++;
		}
	}
	free(bias);
	char *text = ok ? cJSON_Print(root) : NULL;
	cJSON_Delete(root);
	if (!text)
		return cmd_fail(ctx, "out of memory");
	if (nact + nparam == 0) {
		cJSON_free(text);
		return cmd_fail(ctx, "export-encodings: nothing is quantized: quantize first");
	}
	size_t len = strlen(text);
	bool wrote = write_file(ctx, path, text, len);
	cJSON_free(text);
	if (!wrote)
		return CMD_RETURN_ERROR;
	cmd_print(ctx, "wrote the encodings of %d activation%s and %d parameter%s to %s", nact,
	          nact == 1 ? "" : "s", nparam, nparam == 1 ? "" : "s", path);
	cJSON_AddStringToObject(ctx->json, "path", path);
	cJSON_AddNumberToObject(ctx->json, "activations", nact);
	cJSON_AddNumberToObject(ctx->json, "params", nparam);
	return CMD_RETURN_NORMAL;
}

const struct cmd_entry cmd_export_enc_entry = {
    .name = "export-encodings",
    .alias = NULL,
    .usage = "export-encodings FILE.json",
    .args = {NULL, 1, 1, ARGS_FILE, NULL},
    .summary = "write the quantization grids as an AIMET encodings file (JSON)",
    .exec = cmd_export_enc_exec,
    .flags = CMD_NEEDS_MODEL,
    .help = "AIMET's format (version 0.5.0): activation_encodings (each quantized\n"
            "activation, the model input too) and param_encodings (each quantized\n"
            "layer's weights, and its bias when it has 8 or 16 bits), keyed by the\n"
            "model's tensor names (the names 'export' keeps).  Each entry is a list of\n"
            "{bitwidth, dtype \"int\", is_symmetric \"True\"/\"False\", min, max, offset,\n"
            "scale}: one per output channel for per-channel weights.  min and max are the\n"
            "grid's ends and offset its lowest code less the zero point (AIMET's\n"
            "convention: -zero_point asymmetric, -2^(bits-1) symmetric).  The file is\n"
            "replaced whole or not at all.",
};
