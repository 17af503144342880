/* cmd-infer.c - infer: run the loaded model on input files, write outputs as .npy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "dfq/dfq_exec.h"
#include "dfq/dfq_npy.h"
#include "dfq/dfq_onnx.h"

/* Decide by content, not by name: a .npy starts with "\x93NUMPY". */
static bool looks_like_npy(const char *path)
{
	unsigned char magic[6];
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	bool yes = fread(magic, 1, 6, f) == 6 && memcmp(magic, "\x93NUMPY", 6) == 0;
	fclose(f);
	return yes;
}

/* A float32 copy of an int64 tensor (caller owns), for float model inputs. */
static struct dfq_tensor *to_float(const struct dfq_tensor *t, struct dfq_error *err)
{
	struct dfq_tensor *f = dfq_tensor_new(DFQ_DTYPE_F32, t->ndim, t->dims, err);
	if (!f)
		return NULL;
	for (int64_t i = 0; i < t->numel; i++)
		dfq_tensor_f32(f)[i] = (float)dfq_tensor_i64(t)[i];
	return f;
}

static bool shape_fits(const struct dfq_shape *want, const struct dfq_tensor *t)
{
	if (want->ndim < 0)
		return true;
	if (want->ndim != t->ndim)
		return false;
	for (int i = 0; i < t->ndim; i++)
		if (want->dims[i] >= 0 && want->dims[i] != t->dims[i])
			return false;
	return true;
}

/* Read one input file for graph input v; *out is new (caller owns). */
static enum cmd_retval read_input(struct cmd_ctx *ctx, const char *path, const struct dfq_value *v,
                                  struct dfq_tensor **out)
{
	struct dfq_error err;
	struct dfq_tensor *t = NULL;
	dfq_error_clear(&err);
	bool as_float = v->shape.dtype == DFQ_DTYPE_F32;
	dfq_status st = looks_like_npy(path) ? dfq_npy_read(path, as_float, &t, &err)
	                                     : dfq_onnx_read_tensor_file(path, &t, NULL, &err);
	if (st != DFQ_OK)
		return cmd_fail_error(ctx, &err);
	if (t->dtype != v->shape.dtype) {
		if (v->shape.dtype != DFQ_DTYPE_F32) {
			dfq_tensor_free(t);
			return cmd_fail(ctx, "input '%s' expects %s data but %s holds %s", v->name,
			                dfq_dtype_name(v->shape.dtype), path,
			                dfq_dtype_name(t->dtype));
		}
		struct dfq_tensor *f = to_float(t, &err);
		dfq_tensor_free(t);
		if (!f)
			return cmd_fail(ctx, "%s: %s", path, err.msg);
		t = f;
	}
	if (!shape_fits(&v->shape, t)) {
		char want[160], have[160];
		struct dfq_shape ts;
		dfq_tensor_shape(t, &ts);
		dfq_tensor_free(t);
		return cmd_fail(ctx, "input '%s' expects shape %s but %s holds %s", v->name,
		                dfq_shape_str(&v->shape, want, sizeof want), path,
		                dfq_shape_str(&ts, have, sizeof have));
	}
	*out = t;
	return CMD_RETURN_NORMAL;
}

/* Where output k goes (malloc'd, caller frees): --out names output 0 and
 * OUT_k.npy the others; without --out, "<output name>.npy" made safe as a
 * file name in the current directory. */
static char *output_path(const char *out, int k, const char *name)
{
	size_t n = (out ? strlen(out) : strlen(name)) + 24;
	char *p = malloc(n);
	if (!p)
		return NULL;
	if (out && k == 0) {
		snprintf(p, n, "%s", out);
	} else if (out) {
		size_t base = strlen(out);
		if (base > 4 && strcmp(out + base - 4, ".npy") == 0)
			base -= 4;
		snprintf(p, n, "%.*s_%d.npy", (int)base, out, k);
	} else if (!*name) {
		snprintf(p, n, "output_%d.npy", k);
	} else {
		size_t i = 0;
		for (; name[i]; i++) {
			char c = name[i];
			bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			          (c >= '0' && c <= '9') || c == '-' || c == '_' ||
			          (c == '.' && i > 0);
			p[i] = ok ? c : '_';
		}
		snprintf(p + i, n - i, ".npy");
	}
	return p;
}

struct stats {
	double min, max, mean;
	int64_t nonfinite;
	int64_t argmax; /* of the first row of a 2-D output, else -1 */
};

static double elem(const struct dfq_tensor *t, int64_t i)
{
	return t->dtype == DFQ_DTYPE_F32 ? (double)dfq_tensor_f32(t)[i]
	                                 : (double)dfq_tensor_i64(t)[i];
}

/* min/max/mean over the finite values, summed in double. */
static void compute_stats(const struct dfq_tensor *t, struct stats *st)
{
	double sum = 0;
	int64_t n = 0;
	st->min = INFINITY;
	st->max = -INFINITY;
	st->nonfinite = 0;
	st->argmax = -1;
	for (int64_t i = 0; i < t->numel; i++) {
		double x = elem(t, i);
		if (!isfinite(x)) {
			st->nonfinite++;
			continue;
		}
		st->min = x < st->min ? x : st->min;
		st->max = x > st->max ? x : st->max;
		sum += x;
		n++;
	}
	st->mean = n ? sum / (double)n : NAN;
	if (t->ndim == 2 && t->dims[0] > 0 && t->dims[1] > 0) {
		st->argmax = 0;
		for (int64_t j = 1; j < t->dims[1]; j++)
			if (elem(t, j) > elem(t, st->argmax))
				st->argmax = j;
	}
}

static void report_output(struct cmd_ctx *ctx, cJSON *arr, const char *name,
                          const struct dfq_tensor *t, const char *path)
{
	struct dfq_shape s;
	struct stats st;
	char shape[160], extra[96] = "";
	dfq_tensor_shape(t, &s);
	dfq_shape_str(&s, shape, sizeof shape);
	compute_stats(t, &st);
	cmd_result(ctx, "output %s %s -> %s", name, shape, path);
	if (st.argmax >= 0)
		snprintf(extra, sizeof extra, "  argmax[0] %lld", (long long)st.argmax);
	if (st.nonfinite)
		snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "  non-finite %lld",
		         (long long)st.nonfinite);
	if (t->numel > st.nonfinite)
		cmd_result(ctx, "  min %.5g  max %.5g  mean %.5g%s", st.min, st.max, st.mean,
		           extra);
	else
		cmd_result(ctx, "  (no finite values)%s", extra);

	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", name);
	cJSON *dims = cJSON_AddArrayToObject(o, "shape");
	for (int i = 0; i < t->ndim; i++) {
		cJSON *d = cJSON_CreateNumber((double)t->dims[i]);
		if (!cJSON_AddItemToArray(dims, d))
			cJSON_Delete(d);
	}
	cJSON_AddStringToObject(o, "dtype", dfq_dtype_name(t->dtype));
	cJSON_AddStringToObject(o, "path", path);
	if (t->numel > st.nonfinite) {
		cJSON_AddNumberToObject(o, "min", st.min);
		cJSON_AddNumberToObject(o, "max", st.max);
		cJSON_AddNumberToObject(o, "mean", st.mean);
	}
	if (st.argmax >= 0)
		cJSON_AddNumberToObject(o, "argmax", (double)st.argmax);
	if (st.nonfinite)
		cJSON_AddNumberToObject(o, "nonfinite", (double)st.nonfinite);
	if (!cJSON_AddItemToArray(arr, o))
		cJSON_Delete(o);
}

static enum cmd_retval write_outputs(struct cmd_ctx *ctx, const struct dfq_graph *g,
                                     struct dfq_tensor **outs, const char *out)
{
	cJSON *arr = cJSON_AddArrayToObject(ctx->json, "outputs");
	for (int k = 0; k < g->noutputs; k++) {
		const char *name = g->values[g->outputs[k]].name;
		char *path = output_path(out, k, name);
		if (!path)
			return cmd_fail(ctx, "out of memory");
		struct dfq_error err;
		if (dfq_npy_write(path, outs[k], &err) != DFQ_OK) {
			free(path);
			return cmd_fail_error(ctx, &err);
		}
		report_output(ctx, arr, name, outs[k], path);
		free(path);
	}
	return CMD_RETURN_NORMAL;
}

static void names_list(const struct dfq_graph *g, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; i < g->ninputs && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s'%s'", i ? ", " : "",
		                         g->values[g->inputs[i]].name);
}

static enum cmd_retval cmd_infer_exec(struct cmd_ctx *ctx, struct args *a)
{
	struct session *s = ctx->s;
	struct dfq_graph *g = s->graph;
	struct dfq_error err;
	dfq_error_clear(&err);
	if (a->npos != g->ninputs && g->ninputs == 0)
		return cmd_fail(ctx,
		                "the model has no inputs (run 'infer' alone) but %d file%s given",
		                a->npos, a->npos == 1 ? " was" : "s were");
	if (a->npos != g->ninputs) {
		char names[256];
		names_list(g, names, sizeof names);
		return cmd_fail(ctx, "the model has %d input%s (%s) but %d file%s given",
		                g->ninputs, g->ninputs == 1 ? "" : "s", names, a->npos,
		                a->npos == 1 ? " was" : "s were");
	}
	struct dfq_exec *ex = session_exec(s, &err);
	if (!ex)
		return cmd_fail_error(ctx, &err);

	struct dfq_tensor **ins = calloc((size_t)g->ninputs + 1, sizeof *ins);
	struct dfq_tensor **outs = calloc((size_t)g->noutputs + 1, sizeof *outs);
	enum cmd_retval rv = CMD_RETURN_NORMAL;
	if (!ins || !outs)
		rv = cmd_fail(ctx, "out of memory");
	for (int i = 0; rv == CMD_RETURN_NORMAL && i < g->ninputs; i++)
		rv = read_input(ctx, a->pos[i], &g->values[g->inputs[i]], &ins[i]);
	if (rv == CMD_RETURN_NORMAL) {
		/* The model as it stands: fake-quantized once layers are quantized. */
		if (dfq_model_run(s->model, ex, session_run_mode(s), ins, outs, &err) != DFQ_OK) {
			/* The executor freed any outputs; never free them twice. */
			memset(outs, 0, sizeof *outs * (size_t)g->noutputs);
			rv = cmd_fail_error(ctx, &err);
		} else {
			rv = write_outputs(ctx, g, outs, args_get(a, "out"));
		}
	}
	for (int i = 0; ins && i < g->ninputs; i++)
		dfq_tensor_free(ins[i]);
	for (int i = 0; outs && i < g->noutputs; i++)
		dfq_tensor_free(outs[i]);
	free(ins);
	free(outs);
	return rv;
}

static const struct args_flag infer_flags[] = {
    {"out", true, NULL, NULL},
    {NULL, false, NULL, NULL},
};

static const char *const infer_aliases[] = {"run", NULL};

const struct cmd_entry cmd_infer_entry = {
    .name = "infer",
    .alias = infer_aliases,
    .usage = "infer [INPUT.npy|INPUT.pb...] [--out OUT.npy]",
    .args = {infer_flags, 0, -1},
    .summary = "run the model on input files; write each output as .npy",
    .exec = cmd_infer_exec,
    .flags = CMD_NEEDS_MODEL,
};
