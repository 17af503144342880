/* test_eval_samples.c - the eval loop; the sample models against PyTorch on Fashion-MNIST. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "dfq_test.h"
#include "npy_write.h"

#include "dfq/dfq_data.h"
#include "dfq/dfq_eval.h"
#include "dfq/dfq_exec.h"
#include "dfq/dfq_npy.h"
#include "dfq/dfq_onnx.h"

/* Where the committed files live: make check exports top_srcdir. */
static const char *srcdir(void)
{
	const char *t = getenv("top_srcdir");
	return t && *t ? t : ".";
}

static const char *samples_dir(void)
{
	static char buf[1024];
	const char *s = getenv("DFQ_SAMPLES_DIR"); /* to try other models */
	if (s && *s)
		return s;
	snprintf(buf, sizeof buf, "%s/samples", srcdir());
	return buf;
}

static struct dfq_graph *load_model(const char *path)
{
	struct dfq_graph *g = NULL;
	struct dfq_error err;
	if (dfq_onnx_load_file(path, &g, &err) != DFQ_OK)
		fail_msg("%s", err.msg);
	return g;
}

static struct dfq_exec *new_exec(const struct dfq_graph *g)
{
	struct dfq_error err;
	struct dfq_exec *ex = dfq_exec_new(g, NULL, &err);
	if (!ex)
		fail_msg("%s", err.msg);
	return ex;
}

/* --- the loop on a small model, against direct runs ----------------------- */

enum { TN = 23, TC = 3, TH = 8, TW = 8, TK = 5 };

/* tests/cli/data/tinynet.onnx ([N, 3, 8, 8] -> probs [N, 5]) and an npy set
 * of TN random images with labels i % 5. */
struct tiny {
	struct dfq_graph *g;
	struct dfq_exec *ex;
	struct dfq_data *d;
	char dir[64];
};


static void tiny_open(struct tiny *t)
{
	char path[1200], xp[128], yp[128], spec[300];
	snprintf(path, sizeof path, "%s/tests/cli/data/tinynet.onnx", srcdir());
	t->g = load_model(path);
	t->ex = new_exec(t->g);
	snprintf(t->dir, sizeof t->dir, "/tmp/dfq-test-eval.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	static float x[TN * TC * TH * TW];
	int64_t y[TN];
	unsigned s = 12345;
	for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) {
		s = s * 1103515245u + 12345u;
		x[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
	}
	for (int i = 0; i < TN; i++)
		y[i] = i % TK;
	snprintf(xp, sizeof xp, "%s/x.npy", t->dir);
	snprintf(yp, sizeof yp, "%s/y.npy", t->dir);
	write_npy(xp, "<f4", "(23, 3, 8, 8)", x, sizeof x);
	write_npy(yp, "<i8", "(23,)", y, sizeof y);
	snprintf(spec, sizeof spec, "npy:%s,%s", xp, yp);
	struct dfq_data_opts o;
	dfq_data_opts_default(&o);
	o.n_calib = 0;
	struct dfq_error err;
	if (dfq_data_open(spec, &o, &t->d, &err) != DFQ_OK)
		fail_msg("%s", err.msg);
}

static void tiny_close(struct tiny *t)
{
	char cmd[128];
	dfq_data_free(t->d);
	dfq_exec_free(t->ex);
	dfq_graph_free(t->g);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
	assert_int_equal(system(cmd), 0);
}

/* Hits among the first n samples, counted from one run over all of them. */
static void direct_counts(struct tiny *t, int64_t n, int64_t *top1, int64_t *top5)
{
	struct dfq_tensor *x = NULL, *y = NULL, *out[2] = {NULL, NULL};
	struct dfq_error err;
	const struct dfq_value *in = &t->g->values[t->g->inputs[0]];
	assert_int_equal(dfq_data_fit(t->d, in->name, &in->shape, &err), DFQ_OK);
	assert_int_equal(dfq_data_batch(t->d, DFQ_SPLIT_EVAL, 0, n, &x, &y, &err), DFQ_OK);
	if (dfq_exec_run(t->ex, &x, out, &err) != DFQ_OK)
		fail_msg("%s", err.msg);
	*top1 = *top5 = 0;
	for (int64_t i = 0; i < n; i++) {
		int r = dfq_eval_rank(dfq_tensor_f32(out[0]) + i * TK, TK, dfq_tensor_i64(y)[i]);
		*top1 += r < 1;
		*top5 += r < 5;
	}
	dfq_tensor_free(x);
	dfq_tensor_free(y);
	dfq_tensor_free(out[0]);
	dfq_tensor_free(out[1]);
}

struct stop_after {
	int calls, stop_at;
	int64_t last_done, total;
};

static bool count_progress(void *user, int64_t done, int64_t total, double secs)
{
	struct stop_after *s = user;
	assert_true(done > s->last_done);
	assert_true(secs >= 0);
	s->last_done = done;
	s->total = total;
	return ++s->calls != s->stop_at;
}

static void test_eval_loop(void **state)
{
	struct tiny t;
	tiny_open(&t);
	int64_t top1, top5;
	direct_counts(&t, TN, &top1, &top5);
	assert_int_equal(top5, TN); /* five classes: always in the top five */
	struct dfq_error err;
	/* Batches of 1, 5 (a tail of 3), 23 and 64 count the same. */
	const int64_t batches[4] = {1, 5, TN, 64};
	for (int i = 0; i < 4; i++) {
		struct dfq_eval_opts o;
		dfq_eval_opts_default(&o);
		o.batch = batches[i];
		struct stop_after s = {0};
		o.progress = count_progress;
		o.user = &s;
		struct dfq_eval_result r;
		if (dfq_eval_run(t.ex, t.g, t.d, &o, &r, &err) != DFQ_OK)
			fail_msg("%s", err.msg);
		assert_int_equal(r.n, TN);
		assert_int_equal(r.top1, top1);
		assert_int_equal(r.top5, top5);
		assert_int_equal(r.nclasses, TK);
		assert_false(r.cancelled);
		assert_int_equal(s.calls, (TN + batches[i] - 1) / batches[i]);
		assert_int_equal(s.last_done, TN);
		assert_int_equal(s.total, TN);
	}
	/* The first 10 only. */
	int64_t t1_10, t5_10;
	direct_counts(&t, 10, &t1_10, &t5_10);
	struct dfq_eval_opts o;
	dfq_eval_opts_default(&o);
	o.n = 10;
	o.batch = 4;
	struct dfq_eval_result r;
	assert_int_equal(dfq_eval_run(t.ex, t.g, t.d, &o, &r, &err), DFQ_OK);
	assert_int_equal(r.n, 10);
	assert_int_equal(r.top1, t1_10);
	/* Stopped by the callback after two batches: not an error. */
	struct stop_after s = {.stop_at = 2};
	o.n = 0;
	o.progress = count_progress;
	o.user = &s;
	assert_int_equal(dfq_eval_run(t.ex, t.g, t.d, &o, &r, &err), DFQ_OK);
	assert_true(r.cancelled);
	assert_int_equal(r.n, 8);
	/* More than the slice holds. */
	o.n = TN + 1;
	o.progress = NULL;
	assert_int_equal(dfq_eval_run(t.ex, t.g, t.d, &o, &r, &err), DFQ_ERR_ARG);
	tiny_close(&t);
}

/* A model whose batch dimension is fixed runs in batches of that size, the
 * last one padded. */
static void test_eval_fixed_batch(void **state)
{
	struct tiny t;
	tiny_open(&t);
	int64_t top1, top5;
	direct_counts(&t, TN, &top1, &top5);
	t.g->values[t.g->inputs[0]].shape.dims[0] = 4;
	struct dfq_eval_opts o;
	dfq_eval_opts_default(&o);
	o.batch = 64; /* ignored */
	struct dfq_eval_result r;
	struct dfq_error err;
	if (dfq_eval_run(t.ex, t.g, t.d, &o, &r, &err) != DFQ_OK)
		fail_msg("%s", err.msg);
	assert_int_equal(r.n, TN);
	assert_int_equal(r.top1, top1);
	tiny_close(&t);
}

/* The data's samples must be the model's input. */
static void test_eval_shape_mismatch(void **state)
{
	struct tiny t;
	tiny_open(&t);
	t.g->values[t.g->inputs[0]].shape.dims[1] = 1;
	struct dfq_eval_result r;
	struct dfq_error err;
	assert_int_equal(dfq_eval_run(t.ex, t.g, t.d, NULL, &r, &err), DFQ_ERR_SHAPE);
	assert_non_null(strstr(err.msg, "[3, 8, 8]"));
	assert_non_null(strstr(err.msg, "[?, 1, 8, 8]"));
	tiny_close(&t);
}

/* --- the sample models ------------------------------------------------------ */

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = calloc(1, 1 << 16);
	assert_non_null(buf);
	size_t n = fread(buf, 1, (1 << 16) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* pytorch_correct from NAME.json. */
static int64_t pytorch_correct(const char *path)
{
	char *text = read_text(path);
	if (!text)
		fail_msg("%s is missing: the sample models are committed with their PyTorch "
			 "results (scripts/train-samples writes them)", path);
	cJSON *j = cJSON_Parse(text);
	free(text);
	if (!j)
		fail_msg("%s is not valid JSON", path);
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "pytorch_correct");
	if (!cJSON_IsNumber(c))
		fail_msg("%s has no number 'pytorch_correct'", path);
	int64_t v = (int64_t)c->valuedouble;
	cJSON_Delete(j);
	return v;
}

/* Logits of the first 64 test images against NAME.ref.npy. */
static void check_logits(const char *name, struct dfq_graph *g, struct dfq_exec *ex,
			 struct dfq_data *d)
{
	char path[1200];
	snprintf(path, sizeof path, "%s/%s.ref.npy", samples_dir(), name);
	struct dfq_tensor *ref = NULL, *x = NULL, *out[4] = {NULL};
	struct dfq_error err;
	if (dfq_npy_read(path, false, &ref, &err) != DFQ_OK)
		fail_msg("%s (the sample models are committed with their reference logits)",
			 err.msg);
	assert_int_equal(ref->ndim, 2);
	int64_t n = ref->dims[0];
	const struct dfq_value *in = &g->values[g->inputs[0]];
	assert_int_equal(dfq_data_fit(d, in->name, &in->shape, &err), DFQ_OK);
	assert_int_equal(dfq_data_batch(d, DFQ_SPLIT_EVAL, 0, n, &x, NULL, &err), DFQ_OK);
	if (dfq_exec_run(ex, &x, out, &err) != DFQ_OK)
		fail_msg("%s: %s", name, err.msg);
	assert_int_equal(out[0]->numel, ref->numel);
	double maxdiff = 0, maxabs = 0;
	for (int64_t i = 0; i < ref->numel; i++) {
		double r = dfq_tensor_f32(ref)[i], o = dfq_tensor_f32(out[0])[i];
		maxdiff = fmax(maxdiff, fabs(r - o));
		maxabs = fmax(maxabs, fabs(r));
	}
	printf("# %s: %lld x %lld logits, max |diff| %.3g, max |logit| %.3g\n", name,
	       (long long)ref->dims[0], (long long)ref->dims[1], maxdiff, maxabs);
	if (!(maxdiff <= 1e-4 * maxabs))
		fail_msg("%s: logits differ from PyTorch's by %g (allowed %g)", name, maxdiff,
			 1e-4 * maxabs);
	dfq_tensor_free(ref);
	dfq_tensor_free(x);
	for (int i = 0; i < g->noutputs && i < 4; i++)
		dfq_tensor_free(out[i]);
}

static void check_sample(const char *name)
{
	char path[1200];
	snprintf(path, sizeof path, "%s/%s.onnx", samples_dir(), name);
	if (access(path, R_OK) != 0)
		fail_msg("%s is missing: the sample models are committed (scripts/train-samples "
			 "makes them)", path);
	if (access(DFQ_FMNIST_DIR "/t10k-images-idx3-ubyte.gz", R_OK) != 0)
		fail_msg("Fashion-MNIST is not installed at " DFQ_FMNIST_DIR " (Debian package "
			 "dataset-fashion-mnist; scripts/setup installs it)");
	snprintf(path, sizeof path, "%s/%s.json", samples_dir(), name);
	int64_t want = pytorch_correct(path);
	snprintf(path, sizeof path, "%s/%s.onnx", samples_dir(), name);
	struct dfq_graph *g = load_model(path);
	struct dfq_exec *ex = new_exec(g);
	struct dfq_data_opts o;
	dfq_data_opts_default(&o);
	o.n_calib = 0;
	struct dfq_data *d = NULL;
	struct dfq_error err;
	if (dfq_data_open("fmnist", &o, &d, &err) != DFQ_OK)
		fail_msg("%s", err.msg);
	check_logits(name, g, ex, d);

	struct dfq_eval_result r;
	if (dfq_eval_run(ex, g, d, NULL, &r, &err) != DFQ_OK)
		fail_msg("%s: %s", name, err.msg);
	printf("# %s: top-1 %lld/%lld (PyTorch %lld), top-5 %lld, %.0f images/s\n", name,
	       (long long)r.top1, (long long)r.n, (long long)want, (long long)r.top5,
	       r.images_per_s);
	assert_int_equal(r.n, 10000);
	if (llabs(r.top1 - want) > 2)
		fail_msg("%s: %lld correct, PyTorch %lld", name, (long long)r.top1,
			 (long long)want);
	dfq_data_free(d);
	dfq_exec_free(ex);
	dfq_graph_free(g);
}

static void test_mobilenetv2(void **state)
{
	check_sample("mobilenetv2_fmnist");
}

static void test_resnet(void **state)
{
	check_sample("resnet_fmnist");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eval_loop),
		cmocka_unit_test(test_eval_fixed_batch),
		cmocka_unit_test(test_eval_shape_mismatch),
		cmocka_unit_test(test_mobilenetv2),
		cmocka_unit_test(test_resnet),
	};
	DFQ_RUN_TESTS(tests);
}
