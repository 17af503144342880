/* bench_model.c - whole-model eval throughput of dfq's executor (run by scripts/bench models).
 *
 *   bench_model MODEL.onnx IMAGES.npy LABELS.npy BATCH [THREADS] [--profile] [--scalar]
 *               [--check] [--quant W/A]
 *
 * IMAGES.npy is float32 [N, C, H, W] (already normalised), LABELS.npy integer
 * [N].  One warm-up batch, then all N images through dfq_exec_run in batches
 * of BATCH (the last may be shorter); prints one JSON line with the same keys
 * as scripts/bench-ort.js and scripts/bench-torch.py (images_per_s, correct,
 * peak_rss_kb = VmHWM).  --profile adds the executor's per-step time breakdown
 * (stderr, a table); --scalar runs the scalar oracle kernels instead; --check
 * first compares the fast path's logits on one batch with the scalar oracle's
 * (stderr; exit status 1 when they differ by more than 1e-4 of their range).
 * --quant W/A runs the model fake-quantized as `fold; quantize all --wbits W
 * --abits A` leaves it (dfq_model_run in QUANT mode, data-free ranges), to
 * compare fake-quant with FP32 throughput; --check then compares the FP32
 * logits before quantizing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dfq/dfq_exec.h"
#include "dfq/dfq_model.h"
#include "dfq/dfq_npy.h"
#include "dfq/dfq_onnx.h"
#include "optimize.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Peak resident set size of this process in KiB (VmHWM), -1 if unknown. */
static long peak_rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	char line[256];
	long kb = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void die(const char *what, const struct dfq_error *err)
{
	fprintf(stderr, "bench_model: %s: %s\n", what, err->msg);
	exit(1);
}

static int64_t argmax(const float *v, int64_t n)
{
	int64_t best = 0;
	for (int64_t j = 1; j < n; j++)
		if (v[j] > v[best])
			best = j;
	return best;
}

/* Images [s, s + count) of x as a new tensor (caller owns). */
static struct dfq_tensor *slice(const struct dfq_tensor *x, int64_t s, int64_t count)
{
	struct dfq_error err;
	int64_t dims[DFQ_MAX_DIMS];
	memcpy(dims, x->dims, sizeof dims);
	dims[0] = count;
	struct dfq_tensor *t = dfq_tensor_new(DFQ_DTYPE_F32, x->ndim, dims, &err);
	if (!t)
		die("batch", &err);
	int64_t per = x->numel / x->dims[0];
	memcpy(t->data, dfq_tensor_f32(x) + s * per, (size_t)(count * per) * sizeof(float));
	return t;
}

/* Logits of images [0, count) with fast or scalar kernels (caller owns). */
static struct dfq_tensor *logits(const struct dfq_graph *g, const struct dfq_tensor *x,
                                 int64_t count, bool fast, int threads)
{
	struct dfq_error err;
	struct dfq_exec_opts o;
	dfq_exec_opts_default(&o);
	o.nthreads = threads;
	o.fast = fast;
	struct dfq_exec *ex = dfq_exec_new(g, &o, &err);
	if (!ex)
		die("executor", &err);
	struct dfq_tensor *in = slice(x, 0, count), *out = NULL;
	if (dfq_exec_run(ex, &in, &out, &err) != DFQ_OK)
		die("run", &err);
	dfq_tensor_free(in);
	dfq_exec_free(ex);
	return out;
}

/* Fast against scalar logits on one batch; false when they disagree. */
static bool check(const struct dfq_graph *g, const struct dfq_tensor *x, int64_t count, int threads)
{
	struct dfq_tensor *a = logits(g, x, count, true, threads);
	struct dfq_tensor *b = logits(g, x, count, false, threads);
	double diff = 0.0, range = 0.0;
	for (int64_t i = 0; i < a->numel; i++) {
		double d = (double)dfq_tensor_f32(a)[i] - (double)dfq_tensor_f32(b)[i];
		double r = (double)dfq_tensor_f32(b)[i];
		diff = d < 0 ? (-d > diff ? -d : diff) : (d > diff ? d : diff);
		range = r < 0 ? (-r > range ? -r : range) : (r > range ? r : range);
	}
	bool ok = diff <= 1e-4 * (range > 1.0 ? range : 1.0);
	fprintf(stderr, "check: %lld images, max |fast - scalar| = %.3g (max |logit| %.3g): %s\n",
	        (long long)count, diff, range, ok ? "ok" : "MISMATCH");
	dfq_tensor_free(a);
	dfq_tensor_free(b);
	return ok;
}

static void print_profile(struct dfq_exec *ex, int64_t images)
{
	const struct dfq_prof_entry *e;
	int n = dfq_exec_get_profile(ex, &e);
	double total = 0.0;
	for (int i = 0; i < n; i++)
		total += e[i].seconds;
	fprintf(stderr, "%-44s %-36s %10s %6s\n", "step", "node", "us/image", "%");
	for (int i = 0; i < n; i++)
		if (e[i].calls)
			fprintf(stderr, "%-44s %-36.36s %10.2f %6.1f\n", e[i].op, e[i].node,
			        e[i].seconds * 1e6 / (double)images,
			        100.0 * e[i].seconds / (total > 0 ? total : 1));
	fprintf(stderr, "%-44s %-36s %10.2f\n", "total", "", total * 1e6 / (double)images);
}

/* Run images [s, s + count) (through the model in QUANT mode when m is not
 * NULL); returns how many were classified correctly. */
static int64_t run_batch(struct dfq_exec *ex, struct dfq_model *m, const struct dfq_tensor *x,
                         const struct dfq_tensor *labels, int64_t s, int64_t count)
{
	struct dfq_error err;
	struct dfq_tensor *in = slice(x, s, count), *out = NULL;
	dfq_status st = m ? dfq_model_run(m, ex, DFQ_RUN_QUANT, &in, &out, &err)
	                  : dfq_exec_run(ex, &in, &out, &err);
	if (st != DFQ_OK)
		die("run", &err);
	int64_t k = out->numel / count, correct = 0;
	const float *y = dfq_tensor_f32(out);
	for (int64_t i = 0; i < count; i++)
		if (labels && argmax(y + i * k, k) == dfq_tensor_i64(labels)[s + i])
			correct++;
	dfq_tensor_free(out);
	dfq_tensor_free(in);
	return correct;
}

int main(int argc, char **argv)
{
	bool profile = false, scalar = false, want_check = false;
	int wbits = 0, abits = 0;
	const char *pos[5] = {0};
	int npos = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quant") == 0 && i + 1 < argc) {
			if (sscanf(argv[++i], "%d/%d", &wbits, &abits) != 2) {
				fprintf(stderr, "bench_model: --quant wants W/A, e.g. 8/8\n");
				return 2;
			}
		} else if (strcmp(argv[i], "--profile") == 0)
			profile = true;
		else if (strcmp(argv[i], "--scalar") == 0)
			scalar = true;
		else if (strcmp(argv[i], "--check") == 0)
			want_check = true;
		else if (npos < 5)
			pos[npos++] = argv[i];
	}
	if (npos < 4) {
		fprintf(stderr, "usage: bench_model MODEL.onnx IMAGES.npy LABELS.npy BATCH "
		                "[THREADS] [--profile] [--scalar] [--check] [--quant W/A]\n");
		return 2;
	}
	int64_t batch = atoll(pos[3]);
	int threads = npos > 4 ? atoi(pos[4]) : 2;
	struct dfq_error err;
	struct dfq_graph *g = NULL;
	struct dfq_tensor *x = NULL, *labels = NULL;
	if (dfq_onnx_load_file(pos[0], &g, &err) != DFQ_OK)
		die(pos[0], &err);
	if (dfq_npy_read(pos[1], true, &x, &err) != DFQ_OK)
		die(pos[1], &err);
	if (dfq_npy_read(pos[2], false, &labels, &err) != DFQ_OK)
		die(pos[2], &err);
	if (batch < 1 || x->ndim < 1 || x->dims[0] < 1 || labels->numel != x->dims[0]) {
		fprintf(stderr, "bench_model: bad batch size or data shapes\n");
		return 2;
	}

	int64_t n = x->dims[0];
	if (want_check && !check(g, x, batch < n ? batch : n, threads))
		return 1;
	struct dfq_model *m = NULL;
	if (wbits > 0) {
		/* the model owns g from here */
		if (!(m = dfq_model_new(g, &err)) || dfq_model_fold(m, NULL, &err) != DFQ_OK)
			die("model", &err);
		struct dfq_qconfig q;
		dfq_qconfig_default(&q);
		q.wbits = wbits;
		q.abits = abits;
		if (dfq_model_quantize(m, NULL, &q, NULL, &err) != DFQ_OK)
			die("quantize", &err);
		g = m->g;
	}
	struct dfq_exec_opts o;
	dfq_exec_opts_default(&o);
	o.nthreads = threads;
	o.fast = !scalar;
	struct dfq_exec *ex = dfq_exec_new(g, &o, &err);
	if (!ex)
		die("executor", &err);

	run_batch(ex, m, x, NULL, 0, batch < n ? batch : n); /* warm-up */
	if (profile)
		dfq_exec_set_profile(ex, true);
	int64_t correct = 0;
	double t0 = now();
	for (int64_t s = 0; s < n; s += batch)
		correct += run_batch(ex, m, x, labels, s, batch < n - s ? batch : n - s);
	double secs = now() - t0;
	printf("{\"engine\": \"dfq\", \"batch\": %lld, \"n\": %lld, \"threads\": %d, "
	       "\"seconds\": %.6f, \"images_per_s\": %.3f, \"correct\": %lld, "
	       "\"peak_rss_kb\": %ld}\n",
	       (long long)batch, (long long)n, threads, secs, (double)n / secs, (long long)correct,
	       peak_rss_kb());
	if (profile)
		print_profile(ex, n);
	dfq_exec_free(ex);
	dfq_tensor_free(x);
	dfq_tensor_free(labels);
	if (m)
		dfq_model_free(m);
	else
		dfq_graph_free(g);
	return 0;
}
