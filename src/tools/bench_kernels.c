/* bench_kernels.c - timings of the fast kernels against the scalar oracle (run by scripts/bench).
 *
 *   bench_kernels sgemm     SGEMM 512^3 GFLOP/s with whatever core type this process gets
 *   bench_kernels conv      per-image times of two Conv shapes, fast vs scalar, batch 1 and 8
 *
 * This machine's speed drifts (shared cores), so repetitions of the two
 * variants are interleaved and the best time of each is kept: the ratios are
 * what to read, not the absolute numbers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dfq/dfq_blas.h"
#include "dfq/dfq_parallel.h"
#include "ops/ops_internal.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static unsigned long long rng_state = 42;

static float frand(void)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (float)((rng_state >> 40) & 0xffffff) / (float)0x1000000 - 0.5f;
}

static struct dfq_tensor *rand_tensor(int ndim, const int64_t *dims)
{
	struct dfq_error err;
	struct dfq_tensor *t = dfq_tensor_new(DFQ_DTYPE_F32, ndim, dims, &err);
	if (!t) {
		fprintf(stderr, "bench_kernels: %s\n", err.msg);
		exit(1);
	}
	float *d = dfq_tensor_f32(t);
	for (int64_t i = 0; i < t->numel; i++)
		d[i] = frand();
	return t;
}

static int bench_sgemm(void)
{
	struct dfq_error err;
	if (dfq_blas_init(&err) != DFQ_OK) {
		fprintf(stderr, "bench_kernels: %s\n", err.msg);
		return 1;
	}
	int n = 512;
	int64_t dims[2] = {n, n};
	struct dfq_tensor *a = rand_tensor(2, dims), *b = rand_tensor(2, dims),
	                  *c = rand_tensor(2, dims);
	double best = 1e30;
	for (int r = 0; r < 8; r++) {
		double t0 = now();
		for (int i = 0; i < 5; i++)
			dfq_sgemm(false, false, n, n, n, 1.0f, a->data, n, b->data, n, 0.0f,
			          c->data, n);
		double t = (now() - t0) / 5;
		if (t < best)
			best = t;
	}
	printf("%.1f GFLOP/s  [%s]\n", 2.0 * n * n * n / best / 1e9, dfq_blas_describe());
	dfq_tensor_free(a);
	dfq_tensor_free(b);
	dfq_tensor_free(c);
	return 0;
}

struct conv_case {
	const char *name;
	int64_t c, m, hw, k, group, pad;
};

/* Best seconds per call of fast and scalar, interleaved. */
static void time_conv(const struct dfq_node *n, const struct dfq_tensor *const *in,
                      struct dfq_tensor *const *out, const struct dfq_kctx *ctx, int reps,
                      double *t_fast, double *t_slow)
{
	struct dfq_error err;
	*t_fast = *t_slow = 1e30;
	for (int r = 0; r < reps; r++) {
		for (int v = 0; v < 2; v++) {
			double t0 = now();
			dfq_status st = v == 0 ? op_conv_forward_fast(n, in, out, ctx, &err)
			                       : op_conv_forward(n, in, out, ctx, &err);
			double t = now() - t0;
			if (st != DFQ_OK) {
				fprintf(stderr, "bench_kernels: %s\n", err.msg);
				exit(1);
			}
			double *best = v == 0 ? t_fast : t_slow;
			if (t < *best)
				*best = t;
		}
	}
}

static int bench_conv(void)
{
	struct dfq_error err;
	if (dfq_blas_init(&err) != DFQ_OK) {
		fprintf(stderr, "bench_kernels: %s\n", err.msg);
		return 1;
	}
	struct dfq_pool *pool = dfq_pool_new(0, &err);
	if (!pool) {
		fprintf(stderr, "bench_kernels: %s\n", err.msg);
		return 1;
	}
	struct dfq_kctx ctx = {.pool = pool};
	static const struct conv_case cases[] = {
	    {"conv 3x3 64->64 56x56 pad 1", 64, 64, 56, 3, 1, 1},
	    {"depthwise 3x3 32ch 112x112 pad 1", 32, 32, 112, 3, 32, 1},
	};
	static const int64_t batches[] = {1, 8};
	printf("%d threads; times per image, best of interleaved runs\n", dfq_pool_size(pool));
	for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
		const struct conv_case *cc = &cases[ci];
		for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
			int64_t nb = batches[bi];
			int64_t xd[4] = {nb, cc->c, cc->hw, cc->hw};
			int64_t wd[4] = {cc->m, cc->c / cc->group, cc->k, cc->k};
			int64_t bd[1] = {cc->m};
			int64_t yd[4] = {nb, cc->m, cc->hw, cc->hw}; /* stride 1, "same" pads */
			struct dfq_tensor *x = rand_tensor(4, xd), *w = rand_tensor(4, wd),
			                  *b = rand_tensor(1, bd), *y = rand_tensor(4, yd);
			struct dfq_node n = {.name = "bench", .op_type = "Conv", .op = DFQ_OP_CONV};
			n.p.group = cc->group;
			for (int i = 0; i < DFQ_MAX_SPATIAL; i++)
				n.p.strides[i] = n.p.dilations[i] = 1;
			n.p.nspatial = 2;
			n.p.kernel[0] = n.p.kernel[1] = cc->k;
			for (int i = 0; i < 4; i++)
				n.p.pads[i] = cc->pad;
			const struct dfq_tensor *in[3] = {x, w, b};
			struct dfq_tensor *out[1] = {y};
			double tf, ts;
			time_conv(&n, in, out, &ctx, nb == 1 ? 5 : 3, &tf, &ts);
			printf(
			    "%-34s batch %lld: fast %8.3f ms  scalar %8.3f ms  speed-up %6.1fx\n",
			    cc->name, (long long)nb, tf * 1e3 / (double)nb, ts * 1e3 / (double)nb,
			    ts / tf);
			dfq_tensor_free(x);
			dfq_tensor_free(w);
			dfq_tensor_free(b);
			dfq_tensor_free(y);
		}
	}
	dfq_pool_free(pool);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "sgemm") == 0)
		return bench_sgemm();
	if (argc == 2 && strcmp(argv[1], "conv") == 0)
		return bench_conv();
	fprintf(stderr, "usage: bench_kernels sgemm|conv\n");
	return 2;
}
