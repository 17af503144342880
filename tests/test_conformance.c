/* test_conformance.c - run ONNX's own backend test cases (Debian libonnx-testdata).
 *
 * For every case directory under node/ and pytorch-converted/ the model is
 * loaded; a model dfq refuses as unsupported (operator, element type,
 * training mode, ...) is skipped with its reason.  Every other case runs each
 * test_data_set_* through both the fast path and the scalar oracle and must
 * match output_*.pb (|got - want| <= atol + rtol * |want|, rtol 1e-4,
 * atol 1e-5).  Cases of the operators dfq claims (REQUIRED below) may only be
 * skipped for an unsupported element type, another operator, training-mode
 * BatchNormalization or MaxPool's Indices output; any other skip of those is
 * a failure.
 *
 * Usage: test_conformance [-v] [DATA_DIR] [FILTER]
 *   DATA_DIR defaults to /usr/share/libonnx-testdata/data (or $DFQ_ONNX_TESTDATA);
 *   FILTER runs only cases whose name contains it.
 * Last line: "N passed, N failed, N skipped". */
#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dfq/dfq_exec.h"
#include "dfq/dfq_graph.h"
#include "dfq/dfq_onnx.h"
#include "dfq/dfq_tensor.h"

#define RTOL 1e-4
#define ATOL 1e-5
#define MAX_IO 64

static const char *const suites[] = {"node", "pytorch-converted"};

/* Name prefixes of the cases that exercise operators dfq supports. */
static const char *const required[] = {
	"test_conv_", "test_basic_conv_", "test_batchnorm_", "test_relu", "test_clip",
	"test_leakyrelu", "test_sigmoid", "test_hardsigmoid", "test_hardswish", "test_add",
	"test_sub", "test_mul", "test_div", "test_gemm_", "test_matmul_", "test_maxpool_",
	"test_averagepool_", "test_globalaveragepool", "test_flatten_", "test_reshape_",
	"test_transpose_", "test_squeeze", "test_unsqueeze_", "test_concat_", "test_constant",
	"test_pad", "test_constant_pad", "test_softmax_", "test_reduce_mean_", "test_identity",
	"test_dropout_default", "test_shape", "test_gather_", "test_Conv2d", "test_BatchNorm2d",
	"test_Linear", "test_MaxPool", "test_AvgPool", "test_ReLU", "test_LeakyReLU",
	"test_Sigmoid", "test_Softmax", "test_ConstantPad2d", "test_ZeroPad2d", "test_slice",
	"test_split_", "test_pow", "test_sqrt", "test_erf",
};

/* Skip reasons a REQUIRED case may have: it needs something outside the claim. */
static const char *const allowed_skip[] = {
	"element type", "unsupported operator", "training mode", "Indices", "sequence",
	"optional", "non-float32", "mask output",
};

struct reason {
	char text[DFQ_ERROR_MAX];
	int count;
};

static struct {
	int passed, failed, skipped;
	struct reason reasons[256];
	int nreasons;
	bool verbose;
} R;

/* path = a "/" b; false when it does not fit (never a silently cut path). */
static bool join(char *path, size_t len, const char *a, const char *b)
{
	int n = snprintf(path, len, "%s/%s", a, b);
	return n >= 0 && (size_t)n < len;
}

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static bool is_required(const char *name)
{
	for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
		if (has_prefix(name, required[i]))
			return true;
	return false;
}

static bool skip_allowed(const char *msg)
{
	for (size_t i = 0; i < sizeof allowed_skip / sizeof allowed_skip[0]; i++)
		if (strstr(msg, allowed_skip[i]))
			return true;
	return false;
}

/* Group skip messages by their gist: the text up to the first quote or
 * parenthesis after the first word, so "unsupported operator 'LSTM' (node..."
 * groups as "unsupported operator 'LSTM'". */
static void add_reason(const char *msg)
{
	char key[DFQ_ERROR_MAX];
	memcpy(key, msg, sizeof key);
	key[sizeof key - 1] = '\0';
	char *paren = strstr(key, " (");
	if (paren)
		*paren = '\0';
	char *node = strstr(key, "node '");
	if (node && node > key)
		*(node - 1) = '\0';
	for (int i = 0; i < R.nreasons; i++)
		if (strcmp(R.reasons[i].text, key) == 0) {
			R.reasons[i].count++;
			return;
		}
	if (R.nreasons < (int)(sizeof R.reasons / sizeof R.reasons[0])) {
		memcpy(R.reasons[R.nreasons].text, key, sizeof key);
		R.reasons[R.nreasons++].count = 1;
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted list of sub-directory names of dir starting with prefix (caller frees). */
static int list_dirs(const char *dir, const char *prefix, char ***out)
{
	DIR *d = opendir(dir);
	*out = NULL;
	if (!d)
		return 0;
	int n = 0, cap = 0;
	char **v = NULL;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!has_prefix(e->d_name, prefix))
			continue;
		char path[4096];
		struct stat st;
		if (!join(path, sizeof path, dir, e->d_name) || stat(path, &st) != 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			char **nv = realloc(v, (size_t)cap * sizeof *v);
			if (!nv)
				break;
			v = nv;
		}
		v[n] = strdup(e->d_name);
		if (v[n])
			n++;
	}
	closedir(d);
	qsort(v, (size_t)n, sizeof *v, cmp_str);
	*out = v;
	return n;
}

static void free_list(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Compare got with want; on mismatch write a sentence into why. */
static bool tensors_match(const struct dfq_tensor *got, const struct dfq_tensor *want, char *why,
			  size_t len)
{
	struct dfq_shape gs, ws;
	char a[128], b[128];
	dfq_tensor_shape(got, &gs);
	dfq_tensor_shape(want, &ws);
	if (!dfq_tensor_same_shape(got, want)) {
		snprintf(why, len, "shape %s %s, expected %s %s", dfq_shape_str(&gs, a, sizeof a),
			 dfq_dtype_name(got->dtype), dfq_shape_str(&ws, b, sizeof b),
			 dfq_dtype_name(want->dtype));
		return false;
	}
	for (int64_t i = 0; i < got->numel; i++) {
		double g, w;
		if (got->dtype == DFQ_DTYPE_F32) {
			g = dfq_tensor_f32(got)[i];
			w = dfq_tensor_f32(want)[i];
		} else {
			g = (double)dfq_tensor_i64(got)[i];
			w = (double)dfq_tensor_i64(want)[i];
		}
		bool ok = (isnan(g) && isnan(w)) || (isinf(w) && g == w) ||
			  fabs(g - w) <= ATOL + RTOL * fabs(w);
		if (!ok) {
			snprintf(why, len, "element %lld is %.8g, expected %.8g", (long long)i, g, w);
			return false;
		}
	}
	return true;
}

/* Read DIR/PREFIX_0.pb, PREFIX_1.pb, ... into v; returns the count or -1. */
static int read_pbs(const char *dir, const char *prefix, struct dfq_tensor **v, char **names,
		    char *why, size_t len)
{
	int n = 0;
	for (; n < MAX_IO; n++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s_%d.pb", dir, prefix, n);
		if (stat(path, &st) != 0)
			break;
		struct dfq_error err;
		if (dfq_onnx_read_tensor_file(path, &v[n], &names[n], &err) != DFQ_OK) {
			snprintf(why, len, "%s_%d.pb: %s", prefix, n, err.msg);
			for (int i = 0; i < n; i++) {
				dfq_tensor_free(v[i]);
				free(names[i]);
			}
			return -1;
		}
	}
	return n;
}

/* Run one data set through ex; returns true when every output matches. */
static bool run_data_set(const struct dfq_graph *g, struct dfq_exec *ex, const char *dsdir,
			 char *why, size_t len)
{
	struct dfq_tensor *ins[MAX_IO] = {0}, *want[MAX_IO] = {0}, *got[MAX_IO] = {0};
	char *in_names[MAX_IO] = {0}, *out_names[MAX_IO] = {0};
	struct dfq_tensor *feed[MAX_IO] = {0};
	bool ok = false;
	int nin = read_pbs(dsdir, "input", ins, in_names, why, len);
	int nout = nin < 0 ? -1 : read_pbs(dsdir, "output", want, out_names, why, len);
	if (nin < 0 || nout < 0)
		goto out;
	/* Feed by name when the files carry names, else by position among all
	 * graph inputs (initializers included, as the ONNX runner does). */
	for (int i = 0; i < g->ninputs; i++) {
		const char *name = g->values[g->inputs[i]].name;
		for (int k = 0; k < nin; k++)
			if (in_names[k] && strcmp(in_names[k], name) == 0)
				feed[i] = ins[k];
		if (!feed[i] && i < nin && (!in_names[i] || !in_names[i][0]))
			feed[i] = ins[i];
		if (!feed[i]) {
			snprintf(why, len, "no input data for graph input '%s'", name);
			goto out;
		}
	}
	if (nout != g->noutputs) {
		snprintf(why, len, "%d expected outputs for %d graph outputs", nout, g->noutputs);
		goto out;
	}
	struct dfq_error err;
	if (dfq_exec_run(ex, feed, got, &err) != DFQ_OK) {
		snprintf(why, len, "run failed: %s", err.msg);
		goto out;
	}
	ok = true;
	for (int i = 0; i < nout && ok; i++) {
		char w[256];
		if (!tensors_match(got[i], want[i], w, sizeof w)) {
			snprintf(why, len, "output %d ('%s'): %s", i, g->values[g->outputs[i]].name, w);
			ok = false;
		}
	}
out:
	for (int i = 0; i < MAX_IO; i++) {
		dfq_tensor_free(ins[i]);
		dfq_tensor_free(want[i]);
		dfq_tensor_free(got[i]);
		free(in_names[i]);
		free(out_names[i]);
	}
	return ok;
}

static void run_case(const char *suite_dir, const char *name)
{
	char dir[4096], model[4096], why[1024] = "";
	if (!join(dir, sizeof dir, suite_dir, name) || !join(model, sizeof model, dir, "model.onnx")) {
		R.failed++;
		printf("FAIL %s: path too long\n", name);
		return;
	}
	struct dfq_graph *g = NULL;
	struct dfq_error err;
	dfq_status st = dfq_onnx_load_file(model, &g, &err);
	if (st == DFQ_ERR_UNSUPPORTED) {
		if (is_required(name) && !skip_allowed(err.msg)) {
			R.failed++;
			printf("FAIL %s: required case refused: %s\n", name, err.msg);
			return;
		}
		R.skipped++;
		add_reason(err.msg);
		if (R.verbose)
			printf("skip %s: %s\n", name, err.msg);
		return;
	}
	if (st != DFQ_OK) {
		R.failed++;
		printf("FAIL %s: load: %s\n", name, err.msg);
		return;
	}
	char **sets;
	int nsets = list_dirs(dir, "test_data_set_", &sets);
	bool ok = nsets > 0;
	if (!ok)
		snprintf(why, sizeof why, "no test_data_set_* directories");
	for (int fast = 1; fast >= 0 && ok; fast--) {
		struct dfq_exec_opts o;
		dfq_exec_opts_default(&o);
		o.fast = fast;
		struct dfq_exec *ex = dfq_exec_new(g, &o, &err);
		if (!ex) {
			snprintf(why, sizeof why, "executor: %s", err.msg);
			ok = false;
			break;
		}
		for (int s = 0; s < nsets && ok; s++) {
			char ds[4096];
			if (!join(ds, sizeof ds, dir, sets[s])) {
				snprintf(why, sizeof why, "path too long");
				ok = false;
			} else if (!run_data_set(g, ex, ds, why, sizeof why)) {
				ok = false;
				size_t used = strlen(why);
				snprintf(why + used, sizeof why - used, " (%s, %s)", sets[s],
					 fast ? "fast path" : "scalar");
			}
		}
		dfq_exec_free(ex);
	}
	free_list(sets, nsets);
	dfq_graph_free(g);
	if (ok) {
		R.passed++;
		if (R.verbose)
			printf("ok   %s\n", name);
	} else {
		R.failed++;
		printf("FAIL %s: %s\n", name, why);
	}
}

static int cmp_reason(const void *a, const void *b)
{
	const struct reason *x = a, *y = b;
	return y->count != x->count ? y->count - x->count : strcmp(x->text, y->text);
}

int main(int argc, char **argv)
{
	const char *root = getenv("DFQ_ONNX_TESTDATA");
	const char *filter = NULL;
	int pos = 0;
	if (!root)
		root = "/usr/share/libonnx-testdata/data";
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-v") == 0)
			R.verbose = true;
		else if (pos++ == 0)
			root = argv[i];
		else
			filter = argv[i];
	}
	int ncases = 0;
	for (size_t s = 0; s < sizeof suites / sizeof suites[0]; s++) {
		char sdir[4096];
		if (!join(sdir, sizeof sdir, root, suites[s]))
			continue;
		char **cases;
		int n = list_dirs(sdir, "test_", &cases);
		for (int i = 0; i < n; i++) {
			if (filter && !strstr(cases[i], filter))
				continue;
			run_case(sdir, cases[i]);
			ncases++;
		}
		free_list(cases, n);
	}
	if (ncases == 0) {
		printf("no test cases found under %s (install libonnx-testdata)\n", root);
		printf("0 passed, 1 failed, 0 skipped\n");
		return 1;
	}
	qsort(R.reasons, (size_t)R.nreasons, sizeof R.reasons[0], cmp_reason);
	printf("\nskipped, by reason:\n");
	for (int i = 0; i < R.nreasons; i++)
		printf("  %4d  %s\n", R.reasons[i].count, R.reasons[i].text);
	printf("\nconformance (%s): %d cases\n", root, ncases);
	printf("%d passed, %d failed, %d skipped\n", R.passed, R.failed, R.skipped);
	return R.failed ? 1 : 0;
}
