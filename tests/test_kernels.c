/* test_kernels.c - fast kernels (conv_fast.c, gemm_fast.c, the fused plan of optimize.c and
 * ops/fused.c) against the scalar oracles, the thread pool and the BLAS loader. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "dfq_test.h"

#include "dfq/dfq_blas.h"
#include "dfq/dfq_exec.h"
#include "dfq/dfq_quant.h"
#include "dfq/dfq_parallel.h"
#include "ops/fused.h"
#include "ops/ops_internal.h"
#include "optimize.h"

/* --- helpers ------------------------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

/* xorshift64*: the same sequence on every run. */
static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ULL;
}

/* Uniform in [lo, hi]. */
static int64_t rnd_int(int64_t lo, int64_t hi)
{
	return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static float rnd_float(void)
{
	return (float)(rnd() >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
}

static struct dfq_tensor *rand_tensor(int ndim, const int64_t *dims)
{
	struct dfq_error err;
	struct dfq_tensor *t = dfq_tensor_new(DFQ_DTYPE_F32, ndim, dims, &err);
	assert_non_null(t);
	float *d = dfq_tensor_f32(t);
	for (int64_t i = 0; i < t->numel; i++)
		d[i] = rnd_float();
	return t;
}

/* Output of the given shape filled with garbage, so a kernel that skips an element shows. */
static struct dfq_tensor *garbage_tensor(const struct dfq_shape *s)
{
	struct dfq_error err;
	struct dfq_tensor *t = dfq_tensor_new_shape(s, &err);
	assert_non_null(t);
	float *d = dfq_tensor_f32(t);
	for (int64_t i = 0; i < t->numel; i++)
		d[i] = 1e6f;
	return t;
}

/* max |got - ref| <= 1e-4 * max(1, max |ref|), with a message naming the case. */
static void assert_close(const struct dfq_tensor *ref, const struct dfq_tensor *got,
                         const char *what)
{
	assert_true(dfq_tensor_same_shape(ref, got));
	const float *r = dfq_tensor_f32(ref), *g = dfq_tensor_f32(got);
	double scale = 1.0, diff = 0.0;
	for (int64_t i = 0; i < ref->numel; i++) {
		if (fabs(r[i]) > scale)
			scale = fabs(r[i]);
		if (!(fabs((double)r[i] - g[i]) <= diff))
			diff = fabs((double)r[i] - g[i]);
	}
	if (!(diff <= 1e-4 * scale))
		fail_msg("%s: max abs diff %g exceeds %g", what, diff, 1e-4 * scale);
}

static struct dfq_pool *pool2(void)
{
	struct dfq_error err;
	struct dfq_pool *p = dfq_pool_new(2, &err);
	assert_non_null(p);
	return p;
}

/* Free t[0..n) (NULL entries are skipped by dfq_tensor_free). */
static void free_tensors(int n, struct dfq_tensor **t)
{
	for (int i = 0; i < n; i++)
		dfq_tensor_free(t[i]);
}

/* The kernels under test: shape, the scalar oracle (forward) and the fast path (forward_fast). */
static const struct dfq_op_def conv_kernels = {.name = "Conv",
                                               .shape = op_conv_shape,
                                               .forward = op_conv_forward,
                                               .forward_fast = op_conv_forward_fast};
static const struct dfq_op_def gemm_kernels = {.name = "Gemm",
                                               .shape = op_gemm_shape,
                                               .forward = op_gemm_forward,
                                               .forward_fast = op_gemm_forward_fast};
static const struct dfq_op_def matmul_kernels = {.name = "MatMul",
                                                 .shape = op_matmul_shape,
                                                 .forward = op_matmul_forward,
                                                 .forward_fast = op_matmul_forward_fast};

/* Run node on in[0..3) (NULL: an absent input) through k's oracle and fast kernel, into
 * outputs filled with garbage, and compare.  Both run with a pool of 2 threads; when
 * serial_too, the oracle runs without a pool instead, and the fast kernel runs once more
 * without one, into an output of NaNs. */
static void check_fast_kernel(const struct dfq_op_def *k, const struct dfq_node *node,
                              struct dfq_tensor *const *in, bool serial_too, const char *what)
{
	struct dfq_error err;
	struct dfq_shape shapes[3], ys;
	const struct dfq_shape *ins[3];
	const struct dfq_tensor *cin[3], *nodata[3] = {NULL, NULL, NULL};
	for (int i = 0; i < 3; i++) {
		if (in[i])
			dfq_tensor_shape(in[i], &shapes[i]);
		ins[i] = in[i] ? &shapes[i] : NULL;
		cin[i] = in[i];
	}
	if (k->shape(node, ins, nodata, &ys, &err) != DFQ_OK)
		fail_msg("%s: shape failed: %s", what, err.msg);

	struct dfq_tensor *ref = garbage_tensor(&ys), *fast = garbage_tensor(&ys);
	struct dfq_tensor *o_ref[1] = {ref}, *o_fast[1] = {fast};
	struct dfq_kctx serial = {.pool = NULL};
	struct dfq_pool *pool = pool2();
	struct dfq_kctx par = {.pool = pool};

	if (k->forward(node, cin, o_ref, serial_too ? &serial : &par, &err) != DFQ_OK)
		fail_msg("%s: oracle failed: %s", what, err.msg);
	if (k->forward_fast(node, cin, o_fast, &par, &err) != DFQ_OK)
		fail_msg("%s: fast failed: %s", what, err.msg);
	assert_close(ref, fast, what);
	if (serial_too) {
		memset(fast->data, 0xff, (size_t)fast->numel * sizeof(float)); /* NaNs */
		if (k->forward_fast(node, cin, o_fast, &serial, &err) != DFQ_OK)
			fail_msg("%s: fast (no pool) failed: %s", what, err.msg);
		assert_close(ref, fast, what);
	}
	dfq_pool_free(pool);
	dfq_tensor_free(ref);
	dfq_tensor_free(fast);
}

/* --- Conv ---------------------------------------------------------------------------------- */

struct conv_case {
	int nsp; /* 1 or 2 */
	int64_t n, group, cg, mg;
	int64_t in[2], k[2], s[2], d[2], pads[4];
	dfq_auto_pad auto_pad;
	bool bias;
	bool kernel_attr; /* give kernel_shape (else taken from W) */
};

/* Run one case through the oracle and the fast kernel (with and without a pool). */
static void run_conv_case(const struct conv_case *cc, const char *what)
{
	int rank = cc->nsp + 2;
	int64_t c = cc->cg * cc->group, m = cc->mg * cc->group;
	int64_t xd[4] = {cc->n, c}, wd[4] = {m, cc->cg}, bd[1] = {m};
	for (int i = 0; i < cc->nsp; i++) {
		xd[2 + i] = cc->in[i];
		wd[2 + i] = cc->k[i];
	}
	struct dfq_tensor *in[3];
	in[0] = rand_tensor(rank, xd);
	in[1] = rand_tensor(rank, wd);
	in[2] = cc->bias ? rand_tensor(1, bd) : NULL;

	struct dfq_node node = {.name = "conv_t",
	                        .op_type = "Conv",
	                        .op = DFQ_OP_CONV,
	                        .ninputs = cc->bias ? 3 : 2,
	                        .noutputs = 1};
	struct dfq_op_params *p = &node.p;
	for (int i = 0; i < DFQ_MAX_SPATIAL; i++)
		p->strides[i] = p->dilations[i] = 1;
	p->nspatial = cc->nsp;
	p->group = cc->group;
	p->auto_pad = cc->auto_pad;
	for (int i = 0; i < cc->nsp; i++) {
		p->kernel[i] = cc->kernel_attr ? cc->k[i] : 0;
		p->strides[i] = cc->s[i];
		p->dilations[i] = cc->d[i];
		p->pads[i] = cc->pads[i];
		p->pads[cc->nsp + i] = cc->pads[2 + i];
	}
	check_fast_kernel(&conv_kernels, &node, in, true, what);
	free_tensors(3, in);
}

static struct conv_case conv2d(int64_t n, int64_t group, int64_t cg, int64_t mg, int64_t h,
                               int64_t w, int64_t k, int64_t s, int64_t pad)
{
	struct conv_case cc = {
	    .nsp = 2,
	    .n = n,
	    .group = group,
	    .cg = cg,
	    .mg = mg,
	    .in = {h, w},
	    .k = {k, k},
	    .s = {s, s},
	    .d = {1, 1},
	    .pads = {pad, pad, pad, pad},
	    .bias = true,
	};
	return cc;
}

/* Run the plain case conv2d(n, group, cg, mg, h, w, k, s, pad). */
static void run_conv2d(int64_t n, int64_t group, int64_t cg, int64_t mg, int64_t h, int64_t w,
                       int64_t k, int64_t s, int64_t pad, const char *what)
{
	struct conv_case cc = conv2d(n, group, cg, mg, h, w, k, s, pad);
	run_conv_case(&cc, what);
}

static void test_conv_depthwise(void **state)
{
	run_conv2d(1, 8, 1, 1, 17, 19, 3, 1, 1, "depthwise 3x3");
	run_conv2d(3, 6, 1, 1, 15, 12, 3, 2, 1, "depthwise 3x3 stride 2 batch 3");
	run_conv2d(2, 5, 1, 3, 11, 9, 5, 1, 2, "depthwise multiplier 3, 5x5");
	run_conv2d(1, 1, 1, 7, 9, 9, 3, 1, 0, "one input channel, 7 outputs");
	struct conv_case cc = conv2d(2, 4, 1, 2, 13, 14, 3, 1, 1);
	cc.d[0] = 2, cc.d[1] = 3, cc.bias = false;
	run_conv_case(&cc, "depthwise multiplier 2, dilated, no bias");
	run_conv2d(1, 32, 1, 1, 40, 37, 3, 1, 1, "depthwise 32 channels");
}

static void test_conv_1x1(void **state)
{
	run_conv2d(1, 1, 16, 24, 20, 21, 1, 1, 0, "1x1 batch 1");
	struct conv_case cc = conv2d(4, 1, 8, 5, 9, 7, 1, 1, 0);
	cc.bias = false;
	run_conv_case(&cc, "1x1 batch 4, no bias");
	run_conv2d(2, 2, 6, 4, 10, 10, 1, 1, 0, "1x1 grouped");
	run_conv2d(2, 1, 6, 4, 10, 11, 1, 2, 0, "1x1 stride 2 (im2col)");
	run_conv2d(1, 1, 64, 128, 28, 28, 1, 1, 0, "1x1 64->128 28x28 (split columns)");
}

static void test_conv_gemm(void **state)
{
	run_conv2d(1, 1, 3, 8, 32, 30, 3, 1, 1, "3x3 3->8 batch 1 (split columns)");
	run_conv2d(8, 1, 4, 6, 12, 12, 3, 1, 1, "3x3 batch 8");
	run_conv2d(2, 1, 64, 8, 30, 30, 3, 1, 1,
	           "3x3 K=576 30x30 (several column blocks per image)");
	run_conv2d(1, 1, 32, 40, 7, 7, 3, 1, 1, "3x3 7x7 batch 1 (threaded BLAS)");
	run_conv2d(2, 4, 3, 5, 11, 13, 3, 2, 1, "grouped 4, stride 2");
	struct conv_case cc = conv2d(1, 2, 4, 3, 16, 16, 7, 2, 3);
	cc.kernel_attr = true;
	run_conv_case(&cc, "7x7 stride 2 with kernel_shape");
	cc = conv2d(2, 1, 3, 4, 9, 12, 3, 1, 0);
	cc.pads[0] = 0, cc.pads[1] = 2, cc.pads[2] = 1, cc.pads[3] = 0;
	run_conv_case(&cc, "asymmetric pads");
	cc = conv2d(1, 1, 2, 3, 10, 9, 3, 2, 0);
	cc.auto_pad = DFQ_AUTO_PAD_SAME_UPPER;
	run_conv_case(&cc, "SAME_UPPER stride 2");
	cc.auto_pad = DFQ_AUTO_PAD_SAME_LOWER;
	cc.k[0] = 4, cc.k[1] = 2;
	run_conv_case(&cc, "SAME_LOWER even kernel");
	cc.auto_pad = DFQ_AUTO_PAD_VALID;
	run_conv_case(&cc, "VALID");
	run_conv2d(2, 1, 3, 4, 5, 5, 3, 1, 0, "output 3x3");
	run_conv2d(1, 1, 3, 4, 3, 3, 3, 1, 0, "output 1x1");
}

static void test_conv_1d_3d(void **state)
{
	struct conv_case cc = {
	    .nsp = 1,
	    .n = 2,
	    .group = 1,
	    .cg = 3,
	    .mg = 4,
	    .in = {20},
	    .k = {3},
	    .s = {2},
	    .d = {2},
	    .pads = {1, 0, 2, 0},
	    .bias = true,
	};
	run_conv_case(&cc, "1-D dilated strided");
	cc.group = 3, cc.cg = 1, cc.mg = 2, cc.s[0] = 1, cc.d[0] = 1;
	run_conv_case(&cc, "1-D depthwise multiplier 2");
}

/* Many random shapes: groups, multipliers, strides, dilations, pads, auto_pad, bias, batch. */
static void test_conv_random(void **state)
{
	static const dfq_auto_pad pads[] = {DFQ_AUTO_PAD_NOTSET, DFQ_AUTO_PAD_NOTSET,
	                                    DFQ_AUTO_PAD_SAME_UPPER, DFQ_AUTO_PAD_SAME_LOWER,
	                                    DFQ_AUTO_PAD_VALID};
	for (int t = 0; t < 300; t++) {
		struct conv_case cc = {.nsp = (int)rnd_int(1, 2), .n = rnd_int(1, 3)};
		cc.group = rnd_int(1, 3);
		cc.cg = rnd_int(1, 4);
		cc.mg = rnd_int(1, 4);
		if (rnd_int(0, 3) == 0) /* depthwise, maybe with a multiplier */
			cc.cg = 1, cc.group = rnd_int(1, 6);
		cc.auto_pad = pads[rnd_int(0, 4)];
		cc.bias = rnd_int(0, 1);
		cc.kernel_attr = rnd_int(0, 1);
		for (int i = 0; i < cc.nsp; i++) {
			cc.k[i] = rnd_int(1, 4);
			cc.s[i] = rnd_int(1, 3);
			cc.d[i] = rnd_int(1, 2);
			cc.pads[i] = rnd_int(0, 2);
			cc.pads[2 + i] = rnd_int(0, 2);
			int64_t extent = (cc.k[i] - 1) * cc.d[i] + 1;
			cc.in[i] = rnd_int(extent, extent + 14);
		}
		char what[160];
		snprintf(what, sizeof what,
		         "random case %d (nsp %d n %lld group %lld cg %lld mg %lld k %lldx%lld s "
		         "%lldx%lld d %lldx%lld auto_pad %d)",
		         t, cc.nsp, (long long)cc.n, (long long)cc.group, (long long)cc.cg,
		         (long long)cc.mg, (long long)cc.k[0], (long long)cc.k[1],
		         (long long)cc.s[0], (long long)cc.s[1], (long long)cc.d[0],
		         (long long)cc.d[1], (int)cc.auto_pad);
		run_conv_case(&cc, what);
	}
}

/* A 3-D conv is not accelerated: the fast entry point must still give the oracle's result. */
static void test_conv_3d_fallback(void **state)
{
	struct dfq_error err;
	int64_t xd[5] = {1, 2, 4, 5, 6}, wd[5] = {3, 2, 2, 2, 2}, yd[5] = {1, 3, 3, 4, 5};
	struct dfq_tensor *x = rand_tensor(5, xd), *w = rand_tensor(5, wd);
	struct dfq_tensor *r = rand_tensor(5, yd), *f = rand_tensor(5, yd);
	struct dfq_node node = {.name = "c3", .op_type = "Conv", .op = DFQ_OP_CONV, .ninputs = 2};
	for (int i = 0; i < DFQ_MAX_SPATIAL; i++)
		node.p.strides[i] = node.p.dilations[i] = 1;
	node.p.group = 1;
	const struct dfq_tensor *in[3] = {x, w, NULL};
	struct dfq_tensor *o_r[1] = {r}, *o_f[1] = {f};
	struct dfq_kctx ctx = {0};
	assert_int_equal(op_conv_forward(&node, in, o_r, &ctx, &err), DFQ_OK);
	assert_int_equal(op_conv_forward_fast(&node, in, o_f, &ctx, &err), DFQ_OK);
	assert_close(r, f, "3-D conv");
	dfq_tensor_free(x);
	dfq_tensor_free(w);
	dfq_tensor_free(r);
	dfq_tensor_free(f);
}

/* --- Gemm ---------------------------------------------------------------------------------- */

static void run_gemm_case(int64_t m, int64_t nn, int64_t k, bool ta, bool tb, float alpha,
                          float beta, int cndim, const int64_t *cdims, const char *what)
{
	int64_t ad[2] = {ta ? k : m, ta ? m : k}, bd[2] = {tb ? nn : k, tb ? k : nn};
	struct dfq_tensor *in[3];
	in[0] = rand_tensor(2, ad);
	in[1] = rand_tensor(2, bd);
	in[2] = cndim >= 0 ? rand_tensor(cndim, cdims) : NULL;
	struct dfq_node node = {.name = "gemm_t",
	                        .op_type = "Gemm",
	                        .op = DFQ_OP_GEMM,
	                        .ninputs = in[2] ? 3 : 2,
	                        .noutputs = 1};
	node.p.trans_a = ta;
	node.p.trans_b = tb;
	node.p.alpha = alpha;
	node.p.beta = beta;
	check_fast_kernel(&gemm_kernels, &node, in, false, what);
	free_tensors(3, in);
}

static void test_gemm_combos(void **state)
{
	/* small (serial) and large enough to be split over threads, by rows and by columns */
	static const int64_t sizes[][3] = {{3, 5, 4}, {1, 10, 7}, {40, 300, 200}, {300, 30, 250}};
	static const float alphas[] = {1.0f, 0.5f};
	static const float betas[] = {1.0f, -2.0f, 0.0f};
	for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
		int64_t m = sizes[si][0], nn = sizes[si][1], k = sizes[si][2];
		/* C: none, scalar, [1], [n], [1, n], [m, 1], [m, n], [1, 1] */
		const int64_t cd[][2] = {{0, 0},  {0, 0}, {1, 0},  {nn, 0},
		                         {1, nn}, {m, 1}, {m, nn}, {1, 1}};
		const int cnd[] = {-1, 0, 1, 1, 2, 2, 2, 2};
		for (int ci = 0; ci < 8; ci++)
			for (int t = 0; t < 4; t++)
				for (size_t ai = 0; ai < 2; ai++)
					for (size_t bi = 0; bi < 3; bi++) {
						char what[128];
						snprintf(what, sizeof what,
						         "gemm %lldx%lldx%lld ta %d tb %d alpha %g "
						         "beta %g C form %d",
						         (long long)m, (long long)nn, (long long)k,
						         t & 1, t >> 1, alphas[ai], betas[bi], ci);
						run_gemm_case(m, nn, k, t & 1, t >> 1, alphas[ai],
						              betas[bi], cnd[ci], cd[ci], what);
					}
	}
}

/* --- MatMul -------------------------------------------------------------------------------- */

static void run_matmul_case(int an, const int64_t *adims, int bn, const int64_t *bdims,
                            const char *what)
{
	struct dfq_tensor *in[3];
	in[0] = rand_tensor(an, adims);
	in[1] = rand_tensor(bn, bdims);
	in[2] = NULL;
	struct dfq_node node = {
	    .name = "mm_t", .op_type = "MatMul", .op = DFQ_OP_MATMUL, .ninputs = 2, .noutputs = 1};
	check_fast_kernel(&matmul_kernels, &node, in, false, what);
	free_tensors(3, in);
}

static void test_matmul(void **state)
{
	const int64_t a1[] = {7, 5}, b1[] = {5, 9};
	run_matmul_case(2, a1, 2, b1, "2-D");
	const int64_t a2[] = {64, 300}, b2[] = {300, 200};
	run_matmul_case(2, a2, 2, b2, "2-D large (split)");
	const int64_t a3[] = {2, 3, 4, 6}, b3[] = {2, 3, 6, 5};
	run_matmul_case(4, a3, 4, b3, "batched 4-D");
	const int64_t a4[] = {3, 1, 4, 6}, b4[] = {5, 6, 2};
	run_matmul_case(4, a4, 3, b4, "broadcast batch dims");
	const int64_t a5[] = {4, 6}, b5[] = {3, 6, 8};
	run_matmul_case(2, a5, 3, b5, "2-D times batched");
	const int64_t a6[] = {6}, b6[] = {2, 6, 3};
	run_matmul_case(1, a6, 3, b6, "1-D times batched (fallback)");
	const int64_t a7[] = {4, 6}, b7[] = {6};
	run_matmul_case(2, a7, 1, b7, "matrix times vector (fallback)");
	const int64_t a8[] = {2, 100, 120}, b8[] = {120, 150};
	run_matmul_case(3, a8, 2, b8, "batch 2, split within products");
}

/* --- thread pool ----------------------------------------------------------------------------- */

struct sum_arg {
	struct dfq_pool *pool;
	atomic_llong sum;
	atomic_int bad_tid;  /* cmocka asserts must stay on the main thread */
	unsigned char *seen; /* each index exactly once */
};

static void sum_fn(void *arg, int64_t begin, int64_t end, int tid)
{
	struct sum_arg *s = arg;
	long long part = 0;
	if (tid < 0 || tid >= dfq_pool_size(s->pool))
		atomic_fetch_add(&s->bad_tid, 1);
	for (int64_t i = begin; i < end; i++) {
		part += i;
		s->seen[i]++;
	}
	atomic_fetch_add(&s->sum, part);
}

static void check_sum(struct dfq_pool *p, int64_t n, int64_t min_chunk)
{
	struct sum_arg s = {.pool = p, .seen = calloc((size_t)n + 1, 1)};
	assert_non_null(s.seen);
	atomic_init(&s.sum, 0);
	atomic_init(&s.bad_tid, 0);
	dfq_pool_run(p, n, min_chunk, sum_fn, &s);
	assert_int_equal(atomic_load(&s.sum), n * (n - 1) / 2);
	assert_int_equal(atomic_load(&s.bad_tid), 0);
	for (int64_t i = 0; i < n; i++)
		assert_int_equal(s.seen[i], 1);
	free(s.seen);
}

static void test_pool_sum(void **state)
{
	struct dfq_error err;
	struct dfq_pool *p = dfq_pool_new(3, &err);
	assert_non_null(p);
	assert_int_equal(dfq_pool_size(p), 3);
	for (int rep = 0; rep < 200; rep++)
		check_sum(p, rnd_int(0, 5000), rnd_int(1, 50));
	check_sum(p, 1, 1);
	check_sum(p, 100000, 1);
	check_sum(NULL, 1000, 1);
	dfq_pool_free(p);

	p = dfq_pool_new(1, &err);
	assert_non_null(p);
	check_sum(p, 777, 3);
	dfq_pool_free(p);
	p = dfq_pool_new(0, &err); /* online CPUs */
	assert_non_null(p);
	assert_true(dfq_pool_size(p) >= 1);
	dfq_pool_free(p);
	assert_null(dfq_pool_new(-1, &err));
	assert_int_equal(err.status, DFQ_ERR_ARG);
	assert_int_equal(dfq_pool_size(NULL), 1);
}

struct nest_arg {
	struct dfq_pool *pool;
	atomic_int bad;
	atomic_llong inner_sum;
};

static void inner_fn(void *arg, int64_t begin, int64_t end, int tid)
{
	struct nest_arg *a = arg;
	long long s = 0;
	for (int64_t i = begin; i < end; i++)
		s += i;
	atomic_fetch_add(&a->inner_sum, s);
}

struct inline_probe {
	pthread_t caller;
	int calls;
	int64_t begin, end;
	int tid;
};

static void probe_fn(void *arg, int64_t begin, int64_t end, int tid)
{
	struct inline_probe *pr = arg;
	if (!pthread_equal(pr->caller, pthread_self()))
		pr->calls = -1000; /* ran on another thread: not inline */
	pr->calls++;
	pr->begin = begin;
	pr->end = end;
	pr->tid = tid;
}

static void outer_fn(void *arg, int64_t begin, int64_t end, int tid)
{
	struct nest_arg *a = arg;
	for (int64_t i = begin; i < end; i++) {
		/* a nested call must run inline, in one piece, on this thread */
		struct inline_probe pr = {.caller = pthread_self()};
		dfq_pool_run(a->pool, 100, 1, probe_fn, &pr);
		if (pr.calls != 1 || pr.begin != 0 || pr.end != 100 || pr.tid != 0)
			atomic_fetch_add(&a->bad, 1);
		dfq_pool_run(a->pool, 10, 1, inner_fn, a);
	}
}

static void test_pool_nested(void **state)
{
	struct nest_arg a = {.pool = pool2()};
	atomic_init(&a.bad, 0);
	atomic_init(&a.inner_sum, 0);
	dfq_pool_run(a.pool, 64, 1, outer_fn, &a);
	assert_int_equal(atomic_load(&a.bad), 0);
	assert_int_equal(atomic_load(&a.inner_sum), 64 * 45);

	/* NULL pool: inline, one call over the whole range */
	struct inline_probe pr = {.caller = pthread_self()};
	dfq_pool_run(NULL, 50, 7, probe_fn, &pr);
	assert_int_equal(pr.calls, 1);
	assert_int_equal(pr.begin, 0);
	assert_int_equal(pr.end, 50);
	dfq_pool_free(a.pool);
}

/* --- BLAS ---------------------------------------------------------------------------------- */

static void test_blas_init(void **state)
{
	struct dfq_error err;
	const char *before = getenv("OPENBLAS_CORETYPE");
	char saved[64] = "";
	if (before)
		snprintf(saved, sizeof saved, "%s", before);
	assert_int_equal(dfq_blas_init(&err), DFQ_OK);
	assert_int_equal(dfq_blas_init(&err), DFQ_OK); /* idempotent */
	const char *d = dfq_blas_describe();
	assert_non_null(d);
	assert_true(strncmp(d, "OpenBLAS ", 9) == 0);
	assert_non_null(strstr(d, ", core "));
	/* the environment is left as the user had it */
	const char *after = getenv("OPENBLAS_CORETYPE");
	assert_true((before == NULL) == (after == NULL));
	if (after)
		assert_string_equal(saved, after);

	/* a 2x3 * 3x2 product, and k = 0 clearing C */
	const float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 0, 0, 1, 1, 1};
	float c[4] = {9, 9, 9, 9};
	dfq_sgemm(false, false, 2, 2, 3, 1.0f, a, 3, b, 2, 0.0f, c, 2);
	assert_true(c[0] == 4 && c[1] == 5 && c[2] == 10 && c[3] == 11);
	dfq_sgemm(false, false, 2, 2, 0, 1.0f, a, 1, b, 2, 0.0f, c, 2);
	assert_true(c[0] == 0 && c[1] == 0 && c[2] == 0 && c[3] == 0);
	dfq_blas_set_threads(1);
	dfq_blas_set_threads(2);
}

/* --- the fused plan (optimize.c, ops/fused.c) ------------------------------------------------ */

/* Graph building: run-time inputs with a symbolic batch, initializers, nodes with
 * attributes. */
static void g_input(struct dfq_graph *g, const char *name, const int64_t *dims)
{
	struct dfq_error err;
	int vi = dfq_graph_intern_value(g, name, &err);
	assert_true(vi >= 0);
	struct dfq_value *v = &g->values[vi];
	v->is_input = true;
	v->shape.dtype = DFQ_DTYPE_F32;
	v->shape.ndim = 4;
	v->shape.dims[0] = -1;
	for (int i = 1; i < 4; i++)
		v->shape.dims[i] = dims[i];
	g->inputs = realloc(g->inputs, (size_t)(g->ninputs + 1) * sizeof *g->inputs);
	assert_non_null(g->inputs);
	g->inputs[g->ninputs++] = vi;
}

static void g_output(struct dfq_graph *g, const char *name)
{
	struct dfq_error err;
	int vi = dfq_graph_intern_value(g, name, &err);
	assert_true(vi >= 0);
	g->outputs = realloc(g->outputs, (size_t)(g->noutputs + 1) * sizeof *g->outputs);
	assert_non_null(g->outputs);
	g->outputs[g->noutputs++] = vi;
}

/* A random initializer (positive when pos, e.g. a BN variance). */
static void g_init(struct dfq_graph *g, const char *name, int ndim, const int64_t *dims, bool pos)
{
	struct dfq_error err;
	int vi = dfq_graph_intern_value(g, name, &err);
	assert_true(vi >= 0);
	struct dfq_tensor *t = rand_tensor(ndim, dims);
	if (pos)
		for (int64_t i = 0; i < t->numel; i++)
			dfq_tensor_f32(t)[i] = 0.5f + fabsf(dfq_tensor_f32(t)[i]);
	g->values[vi].init = t;
}

static void g_scalar(struct dfq_graph *g, const char *name, float v)
{
	struct dfq_error err;
	int vi = dfq_graph_intern_value(g, name, &err);
	assert_true(vi >= 0);
	struct dfq_tensor *t = dfq_tensor_new(DFQ_DTYPE_F32, 0, NULL, &err);
	assert_non_null(t);
	dfq_tensor_f32(t)[0] = v;
	g->values[vi].init = t;
}

static int g_node(struct dfq_graph *g, const char *name, const char *op, int64_t opset, int nin,
                  const char *const *ins, const char *out)
{
	struct dfq_error err;
	const char *outs[1] = {out};
	int ni = dfq_graph_add_node(g, name, op, opset, nin, ins, 1, outs, &err);
	if (ni < 0)
		fail_msg("%s", err.msg);
	return ni;
}

static void g_ints(struct dfq_graph *g, int ni, const char *name, int n, int64_t a, int64_t b)
{
	struct dfq_error err;
	int64_t v[4] = {a, b, a, b};
	struct dfq_attr at = {.name = (char *)name, .type = DFQ_ATTR_INTS, .n = n, .ints = v};
	assert_int_equal(dfq_graph_node_add_attr(g, ni, &at, &err), DFQ_OK);
}

static void g_attr_int(struct dfq_graph *g, int ni, const char *name, int64_t v)
{
	struct dfq_error err;
	struct dfq_attr at = {.name = (char *)name, .type = DFQ_ATTR_INT, .i = v};
	assert_int_equal(dfq_graph_node_add_attr(g, ni, &at, &err), DFQ_OK);
}

static void g_attr_float(struct dfq_graph *g, int ni, const char *name, float v)
{
	struct dfq_error err;
	struct dfq_attr at = {.name = (char *)name, .type = DFQ_ATTR_FLOAT, .f = v};
	assert_int_equal(dfq_graph_node_add_attr(g, ni, &at, &err), DFQ_OK);
}

/* The begin and end pads of a 2-D conv node: begin on both axes, then end on both. */
static void g_pads(struct dfq_graph *g, int ni, int64_t begin, int64_t end)
{
	struct dfq_error err;
	int64_t pads[4] = {begin, begin, end, end};
	struct dfq_attr pa = {.name = "pads", .type = DFQ_ATTR_INTS, .n = 4, .ints = pads};
	assert_int_equal(dfq_graph_node_add_attr(g, ni, &pa, &err), DFQ_OK);
}

/* BatchNormalization of m channels, in -> out, with random parameters named
 * params[0..4) (scale, bias, mean, variance; the variance positive). */
static void g_bn(struct dfq_graph *g, const char *name, const char *const *params, int64_t m,
                 const char *in, const char *out)
{
	int64_t md[1] = {m};
	for (int i = 0; i < 4; i++)
		g_init(g, params[i], 1, md, i == 3);
	const char *bi[5] = {in, params[0], params[1], params[2], params[3]};
	g_node(g, name, "BatchNormalization", 13, 5, bi, out);
}

/* A new graph X (dims xd, the batch symbolic) -> Conv 1x1 to m channels + Relu -> "t". */
static struct dfq_graph *stem_graph(const int64_t *xd, int64_t m)
{
	struct dfq_error err;
	struct dfq_graph *g = dfq_graph_new(&err);
	assert_non_null(g);
	g_input(g, "x", xd);
	int64_t w0[4] = {m, xd[1], 1, 1};
	g_init(g, "w0", 4, w0, false);
	const char *c0[2] = {"x", "w0"};
	g_node(g, "conv0", "Conv", 13, 2, c0, "t0");
	const char *r0[1] = {"t0"};
	g_node(g, "relu0", "Relu", 13, 1, r0, "t");
	return g;
}

/* Close g: GlobalAveragePool(y) -> "p", outputs y and p, finalized. */
static void g_finish(struct dfq_graph *g, const char *y)
{
	struct dfq_error err;
	const char *gi[1] = {y};
	g_node(g, "gap", "GlobalAveragePool", 13, 1, gi, "p");
	g_output(g, y);
	g_output(g, "p");
	if (dfq_graph_finalize(g, &err) != DFQ_OK)
		fail_msg("finalize: %s", err.msg);
}

enum act { ACT_NONE, ACT_RELU, ACT_CLIP, ACT_CLIP6 };

/* X -> Conv 1x1 + Relu (so the case sees a computed CNHW input) -> the case's
 * Conv [+ BN] [+ act1] [+ Add(R)] [+ act2] -> Y, and GlobalAveragePool(Y) -> P. */
struct chain_case {
	int64_t c, h, w;                 /* input */
	int64_t m, kh, kw, s, d, pb, pe; /* conv (pads: begin/end on both axes) */
	bool dw;                         /* depthwise: group c, m a multiple of c */
	bool bias, bn, add;
	enum act act1, act2;
};

static void add_act(struct dfq_graph *g, enum act a, const char *name, const char *in,
                    const char *out)
{
	if (a == ACT_RELU) {
		const char *ins[1] = {in};
		g_node(g, name, "Relu", 13, 1, ins, out);
	} else if (a == ACT_CLIP) {
		char lo[64], hi[64];
		snprintf(lo, sizeof lo, "%s_lo", name);
		snprintf(hi, sizeof hi, "%s_hi", name);
		g_scalar(g, lo, -0.25f);
		g_scalar(g, hi, 0.5f);
		const char *ins[3] = {in, lo, hi};
		g_node(g, name, "Clip", 13, 3, ins, out);
	} else {
		const char *ins[1] = {in};
		int ni = g_node(g, name, "Clip", 6, 1, ins, out);
		g_attr_float(g, ni, "min", 0.0f);
		g_attr_float(g, ni, "max", 6.0f);
	}
}

/* Output size of one axis. */
static int64_t out_len(const struct chain_case *cc, int64_t in, int64_t k)
{
	return (in + cc->pb + cc->pe - ((k - 1) * cc->d + 1)) / cc->s + 1;
}

static struct dfq_graph *chain_graph(const struct chain_case *cc)
{
	int64_t xd[4] = {-1, cc->c, cc->h, cc->w};
	int64_t oh = out_len(cc, cc->h, cc->kh), ow = out_len(cc, cc->w, cc->kw);
	int64_t rd[4] = {-1, cc->m, oh, ow};
	int64_t wd[4] = {cc->m, cc->dw ? 1 : cc->c, cc->kh, cc->kw};
	int64_t md[1] = {cc->m};
	struct dfq_graph *g = stem_graph(xd, cc->c);
	g_init(g, "w", 4, wd, false);
	if (cc->bias)
		g_init(g, "b", 1, md, false);
	const char *ci[3] = {"t", "w", "b"};
	int ni = g_node(g, "conv", "Conv", 13, cc->bias ? 3 : 2, ci, "y0");
	g_ints(g, ni, "kernel_shape", 2, cc->kh, cc->kw);
	g_ints(g, ni, "strides", 2, cc->s, cc->s);
	g_ints(g, ni, "dilations", 2, cc->d, cc->d);
	g_pads(g, ni, cc->pb, cc->pe);
	if (cc->dw)
		g_attr_int(g, ni, "group", cc->c);
	const char *cur = "y0";
	if (cc->bn) {
		static const char *const bn[4] = {"scale", "shift", "mean", "var"};
		g_bn(g, "bn", bn, cc->m, cur, "y1");
		cur = "y1";
	}
	if (cc->act1) {
		add_act(g, cc->act1, "act1", cur, "y2");
		cur = "y2";
	}
	if (cc->add) {
		g_input(g, "r", rd);
		const char *ai[2] = {"r", cur}; /* the residual first: either order is an Add */
		g_node(g, "add", "Add", 13, 2, ai, "y3");
		cur = "y3";
	}
	if (cc->act2) {
		add_act(g, cc->act2, "act2", cur, "y4");
		cur = "y4";
	}
	g_finish(g, cur);
	return g;
}

/* An executor over g with the given kernels and threads (the caller frees it). */
static struct dfq_exec *new_exec(const struct dfq_graph *g, bool fast, int nthreads)
{
	struct dfq_error err;
	struct dfq_exec_opts o;
	dfq_exec_opts_default(&o);
	o.fast = fast;
	o.nthreads = nthreads;
	struct dfq_exec *ex = dfq_exec_new(g, &o, &err);
	if (!ex)
		fail_msg("executor: %s", err.msg);
	return ex;
}

/* Run g on inputs with the given kernels; outputs are new. */
static void run_graph(const struct dfq_graph *g, bool fast, int nthreads,
                      struct dfq_tensor *const *in, struct dfq_tensor **out)
{
	struct dfq_error err;
	struct dfq_exec *ex = new_exec(g, fast, nthreads);
	if (dfq_exec_run(ex, in, out, &err) != DFQ_OK)
		fail_msg("run: %s", err.msg);
	dfq_exec_free(ex);
}

/* The sub-batches a batch of n images runs as on one thread: batches of more
 * than SUB_BATCH (optimize.c: 16) images run in parts of at most that many. */
static int64_t sub_batches(int64_t n)
{
	const int64_t sub = 16;
	return n > sub ? (n + sub - 1) / sub : 1;
}

/* Calls of the step that ran the case's whole chain in ex's last run (profile
 * on), 0 if no step did. */
static int64_t chain_step_calls(struct dfq_exec *ex, const struct chain_case *cc)
{
	const struct dfq_prof_entry *e;
	int n = dfq_exec_get_profile(ex, &e);
	int parts = 1 + cc->bn + (cc->act1 != ACT_NONE) + cc->add + (cc->act2 != ACT_NONE);
	int64_t found = 0;
	for (int i = 0; i < n; i++) {
		if (strcmp(e[i].node, "conv") != 0)
			continue;
		int plus = 0;
		for (const char *c = e[i].op; *c; c++)
			plus += *c == '+';
		found = plus + 1 == parts ? e[i].calls : 0;
	}
	return found;
}

/* How often one run of the fast path ran the case's whole chain as one fused
 * step (once per sub-batch), 0 if it did not fuse it. */
static int64_t fused_whole_chain(const struct dfq_graph *g, const struct chain_case *cc,
                                 struct dfq_tensor *const *in)
{
	struct dfq_error err;
	struct dfq_exec *ex = dfq_exec_new(g, NULL, &err);
	assert_non_null(ex);
	dfq_exec_set_profile(ex, true);
	struct dfq_tensor *out[2] = {NULL, NULL};
	assert_int_equal(dfq_exec_run(ex, in, out, &err), DFQ_OK);
	int64_t found = chain_step_calls(ex, cc);
	dfq_tensor_free(out[0]);
	dfq_tensor_free(out[1]);
	dfq_exec_free(ex);
	return found;
}

/* Random inputs of a batch of n for the case: x, and the residual r when it has an Add. */
static void case_inputs(const struct chain_case *cc, int64_t n, struct dfq_tensor **in)
{
	int64_t xd[4] = {n, cc->c, cc->h, cc->w};
	int64_t rd[4] = {n, cc->m, out_len(cc, cc->h, cc->kh), out_len(cc, cc->w, cc->kw)};
	in[0] = rand_tensor(4, xd);
	in[1] = cc->add ? rand_tensor(4, rd) : NULL;
}

/* The fast path's configurations: the best kernels the CPU has, then the generic
 * ones (fused_force_generic), each on 1 and then 2 threads. */
enum { FAST_CONFIGS = 4 };

/* Whether configuration i uses the generic kernels. */
static bool fast_config_generic(int i)
{
	return i >= FAST_CONFIGS / 2;
}

/* Switch to configuration i, return its threads and name it in msg: "what (batch
 * n, isa, T threads<more>)".  The caller switches back with fused_force_generic(false). */
static int use_fast_config(int i, const char *what, int64_t n, const char *more, char *msg,
                           size_t size)
{
	int threads = 1 + i % 2;
	fused_force_generic(fast_config_generic(i));
	snprintf(msg, size, "%s (batch %lld, %s, %d threads%s)", what, (long long)n, fused_isa(),
	         threads, more);
	return threads;
}

/* Both outputs of a graph (Y and the pooled P) within assert_close's tolerance of ref's. */
static void assert_outputs_close(struct dfq_tensor *const *ref, struct dfq_tensor *const *got,
                                 const char *what)
{
	assert_close(ref[0], got[0], what);
	assert_close(ref[1], got[1], what);
}

/* cc on a batch of n: the fast path in each configuration gives the oracle's
 * results, and runs the chain as one fused step per sub-batch. */
static void run_chain_case(const struct chain_case *cc, int64_t n, const char *what)
{
	struct dfq_graph *g = chain_graph(cc);
	struct dfq_tensor *in[2], *ref[2], *got[2];
	case_inputs(cc, n, in);
	run_graph(g, false, 1, in, ref);
	for (int i = 0; i < FAST_CONFIGS; i++) {
		char msg[256];
		int threads = use_fast_config(i, what, n, "", msg, sizeof msg);
		run_graph(g, true, threads, in, got);
		assert_outputs_close(ref, got, msg);
		free_tensors(2, got);
	}
	fused_force_generic(false);
	int64_t runs = fused_whole_chain(g, cc, in), parts = sub_batches(n);
	if (runs != parts)
		fail_msg("%s: the chain ran as one step %lld times, not %lld", what,
		         (long long)runs, (long long)parts);
	free_tensors(2, ref);
	free_tensors(2, in);
	dfq_graph_free(g);
}

static const struct chain_case chain_cases[] = {
    /* c, h, w, m, kh, kw, s, d, pb, pe, dw, bias, bn, add, act1, act2 */
    {16, 7, 7, 24, 1, 1, 1, 1, 0, 0, false, false, true, true, ACT_NONE, ACT_NONE},
    {8, 14, 14, 13, 1, 1, 1, 1, 0, 0, false, true, true, false, ACT_CLIP6, ACT_NONE},
    {8, 9, 11, 16, 3, 3, 1, 1, 1, 1, false, false, true, true, ACT_NONE, ACT_RELU},
    {5, 12, 12, 7, 3, 3, 2, 1, 1, 1, false, true, false, false, ACT_RELU, ACT_NONE},
    {5, 13, 11, 7, 3, 3, 2, 1, 1, 1, false, true, true, true, ACT_CLIP, ACT_CLIP6},
    {6, 10, 10, 9, 3, 3, 1, 1, 0, 0, false, false, true, false, ACT_RELU, ACT_NONE},
    {4, 11, 9, 8, 3, 3, 1, 2, 2, 2, false, true, true, true, ACT_NONE, ACT_RELU},
    {4, 12, 12, 8, 1, 1, 2, 1, 0, 0, false, false, true, true, ACT_NONE, ACT_RELU},
    {3, 9, 9, 5, 5, 3, 1, 1, 2, 1, false, true, false, false, ACT_NONE, ACT_NONE},
    /* 8 and more input channels: implicit GEMM through the shift map (AVX-512) */
    {12, 13, 11, 10, 3, 3, 2, 1, 1, 1, false, true, true, true, ACT_RELU, ACT_CLIP6},
    {9, 11, 9, 17, 3, 3, 1, 2, 2, 2, false, false, true, true, ACT_NONE, ACT_RELU},
    {10, 9, 9, 8, 5, 3, 1, 1, 2, 1, false, true, false, false, ACT_CLIP, ACT_NONE},
    {8, 7, 9, 11, 1, 1, 1, 1, 1, 1, false, true, true, false, ACT_NONE, ACT_NONE},
    {32, 14, 14, 32, 3, 3, 1, 1, 1, 1, true, false, true, false, ACT_CLIP6, ACT_NONE},
    {16, 14, 14, 16, 3, 3, 2, 1, 1, 1, true, false, true, false, ACT_CLIP6, ACT_NONE},
    {16, 7, 7, 16, 3, 3, 1, 1, 1, 1, true, true, true, true, ACT_RELU, ACT_CLIP},
    {6, 13, 9, 12, 3, 3, 2, 1, 1, 1, true, true, false, false, ACT_NONE, ACT_NONE},
    {6, 10, 10, 6, 3, 3, 1, 1, 0, 0, true, false, true, true, ACT_CLIP, ACT_NONE},
    {5, 12, 12, 5, 5, 5, 1, 2, 4, 4, true, true, true, false, ACT_RELU, ACT_NONE},
    {3, 9, 8, 6, 3, 3, 1, 1, 1, 1, true, true, true, true, ACT_NONE, ACT_RELU},
    {2, 70, 70, 2, 3, 3, 1, 1, 1, 1, true, true, true, false, ACT_CLIP6, ACT_NONE},
    /* depthwise 3x3 stride 2 on an even size with ow <= 16: by output rows
     * (AVX-512); the widest rows, one-pixel rows, a multiplier, the residual */
    {4, 32, 32, 8, 3, 3, 2, 1, 1, 1, true, true, true, true, ACT_RELU, ACT_CLIP},
    {3, 2, 2, 3, 3, 3, 2, 1, 1, 1, true, false, true, true, ACT_NONE, ACT_RELU},
    {5, 10, 6, 5, 3, 3, 2, 1, 1, 0, true, true, false, false, ACT_CLIP6, ACT_NONE},
    /* the shift map on rows of 1, 3, 5 and 16 outputs */
    {3, 5, 1, 6, 3, 3, 1, 1, 1, 1, true, true, true, true, ACT_RELU, ACT_NONE},
    {4, 7, 3, 4, 3, 3, 1, 1, 1, 1, true, false, true, false, ACT_CLIP6, ACT_NONE},
    {5, 5, 5, 5, 3, 3, 1, 1, 1, 1, true, true, false, true, ACT_NONE, ACT_CLIP},
    {4, 16, 16, 4, 3, 3, 1, 1, 1, 1, true, true, true, true, ACT_CLIP6, ACT_RELU},
};

static void test_fused_chains(void **state)
{
	for (size_t i = 0; i < sizeof chain_cases / sizeof chain_cases[0]; i++) {
		char what[64];
		snprintf(what, sizeof what, "chain case %zu", i);
		run_chain_case(&chain_cases[i], 1, what);
		run_chain_case(&chain_cases[i], 3, what);
	}
}

/* A batch larger than the plan's sub-batch runs as sub-batches (the chain
 * graphs treat images independently): the same results. */
static void test_fused_sub_batches(void **state)
{
	run_chain_case(&chain_cases[2], 70, "sub-batches, 3x3 + add");
	run_chain_case(&chain_cases[11], 33, "sub-batches, depthwise + add");

	/* a value no node uses, without a batch axis (as the statistics of a folded
	 * BatchNormalization that dfq keeps), does not keep a batch whole */
	struct dfq_graph *g = chain_graph(&chain_cases[2]);
	struct dfq_error err;
	int vi = dfq_graph_intern_value(g, "orphan_stats", &err);
	assert_true(vi >= 0);
	g->values[vi].shape.dtype = DFQ_DTYPE_F32;
	g->values[vi].shape.ndim = 1;
	g->values[vi].shape.dims[0] = chain_cases[2].m;
	struct dfq_tensor *in[2];
	case_inputs(&chain_cases[2], 70, in);
	assert_int_equal(fused_whole_chain(g, &chain_cases[2], in), sub_batches(70));
	free_tensors(2, in);
	dfq_graph_free(g);
}

/* Random geometries, small enough for the sanitizer build. */
static void test_fused_random(void **state)
{
	for (int it = 0; it < 24; it++) {
		struct chain_case cc = {
		    .c = rnd_int(1, 20),
		    .h = rnd_int(3, 16),
		    .w = rnd_int(3, 16),
		    .kh = rnd_int(1, 3) * 2 - 1,
		    .s = rnd_int(1, 2),
		    .d = rnd_int(1, 2),
		    .dw = rnd() % 3 == 0,
		    .bias = rnd() % 2,
		    .bn = rnd() % 2,
		    .add = rnd() % 2,
		    .act1 = (enum act)rnd_int(0, 3),
		    .act2 = (enum act)rnd_int(0, 3),
		};
		cc.kw = rnd() % 2 ? cc.kh : 1;
		cc.pb = rnd_int(0, (cc.kh - 1) * cc.d / 2 + 1);
		cc.pe = rnd_int(0, cc.pb);
		cc.m = cc.dw ? cc.c * rnd_int(1, 2) : rnd_int(1, 20);
		if (cc.act2 && !cc.add)
			cc.act2 = ACT_NONE; /* a second activation needs the Add before it */
		if (out_len(&cc, cc.h, cc.kh) < 1 || out_len(&cc, cc.w, cc.kw) < 1)
			continue;
		char what[64];
		snprintf(what, sizeof what, "random chain %d", it);
		run_chain_case(&cc, rnd_int(1, 4), what);
	}
}

/* The plan refolds BatchNormalization when an override changes the weights. */
static void test_fused_override(void **state)
{
	const struct chain_case cc = {8, 9, 9,     12,   3,    3,     1,        1,
	                              1, 1, false, true, true, false, ACT_RELU, ACT_NONE};
	struct dfq_graph *g = chain_graph(&cc);
	int64_t xd[4] = {2, cc.c, cc.h, cc.w};
	struct dfq_tensor *in[1] = {rand_tensor(4, xd)};
	int wv = dfq_graph_find_value(g, "w"), vv = dfq_graph_find_value(g, "var");
	struct dfq_tensor *w2 = dfq_tensor_clone(g->values[wv].init, NULL);
	struct dfq_tensor *v2 = dfq_tensor_clone(g->values[vv].init, NULL);
	for (int64_t i = 0; i < w2->numel; i++)
		dfq_tensor_f32(w2)[i] *= -0.5f;
	for (int64_t i = 0; i < v2->numel; i++)
		dfq_tensor_f32(v2)[i] *= 3.0f;
	struct dfq_error err;
	struct dfq_exec_opts o;
	dfq_exec_opts_default(&o);
	struct dfq_exec *fast = dfq_exec_new(g, &o, &err);
	o.fast = false;
	struct dfq_exec *slow = dfq_exec_new(g, &o, &err);
	assert_non_null(fast);
	assert_non_null(slow);
	for (int round = 0; round < 3; round++) {
		/* round 0: graph weights; 1: both overridden; 2: cleared again */
		if (round == 1) {
			for (int e = 0; e < 2; e++) {
				struct dfq_exec *ex = e ? slow : fast;
				assert_int_equal(dfq_exec_set_override(ex, wv, w2, &err), DFQ_OK);
				assert_int_equal(dfq_exec_set_override(ex, vv, v2, &err), DFQ_OK);
			}
		} else if (round == 2) {
			dfq_exec_clear_overrides(fast);
			dfq_exec_clear_overrides(slow);
		}
		struct dfq_tensor *a[2], *b[2];
		assert_int_equal(dfq_exec_run(fast, in, a, &err), DFQ_OK);
		assert_int_equal(dfq_exec_run(slow, in, b, &err), DFQ_OK);
		assert_outputs_close(b, a, "override");
		free_tensors(2, a);
		free_tensors(2, b);
	}
	dfq_exec_free(fast);
	dfq_exec_free(slow);
	dfq_tensor_free(w2);
	dfq_tensor_free(v2);
	dfq_tensor_free(in[0]);
	dfq_graph_free(g);
}

/* A 1x1 conv 4->4 on 6x6 + BN + Add + Relu. */
static const struct chain_case small_add_case = {
    4, 6, 6, 4, 1, 1, 1, 1, 0, 0, false, false, true, true, ACT_NONE, ACT_RELU};

/* A residual whose batch differs at run time broadcasts: the plan hands the run
 * to the node-by-node executor, which gets it right (and the batch, large
 * enough to be split, is not split: the inputs' batches differ). */
static void test_fused_fallback(void **state)
{
	struct dfq_graph *g = chain_graph(&small_add_case);
	int64_t xd[4] = {40, 4, 6, 6}, rd[4] = {1, 4, 6, 6};
	struct dfq_tensor *in[2] = {rand_tensor(4, xd), rand_tensor(4, rd)};
	struct dfq_tensor *ref[2], *got[2];
	run_graph(g, false, 1, in, ref);
	run_graph(g, true, 2, in, got);
	assert_outputs_close(ref, got, "broadcast residual");
	free_tensors(2, ref);
	free_tensors(2, got);
	free_tensors(2, in);
	dfq_graph_free(g);
}

/* A hook sees every node's output, so it runs node by node, with the same results. */
static dfq_status count_hook(void *user, const struct dfq_graph *g, int vi, struct dfq_tensor *t,
                             struct dfq_error *err)
{
	(*(int *)user)++;
	return DFQ_OK;
}

static void test_fused_hook(void **state)
{
	const struct chain_case cc = {6, 8, 8,    6,     3,    3,    1,         1,
	                              1, 1, true, false, true, true, ACT_CLIP6, ACT_NONE};
	struct dfq_graph *g = chain_graph(&cc);
	int64_t xd[4] = {2, 6, 8, 8};
	struct dfq_tensor *in[2] = {rand_tensor(4, xd), rand_tensor(4, xd)};
	struct dfq_tensor *ref[2], *got[2];
	run_graph(g, false, 1, in, ref);
	struct dfq_error err;
	struct dfq_exec *ex = dfq_exec_new(g, NULL, &err);
	assert_non_null(ex);
	int calls = 0;
	dfq_exec_set_hook(ex, count_hook, &calls);
	assert_int_equal(dfq_exec_run(ex, in, got, &err), DFQ_OK);
	assert_int_equal(calls, g->nnodes);
	assert_outputs_close(ref, got, "hook");
	free_tensors(2, ref);
	free_tensors(2, got);
	free_tensors(2, in);
	dfq_exec_free(ex);
	dfq_graph_free(g);
}

/* --- fake quantization in the plan (dfq_exec_set_quant) ----------------------------------- */

/* Fake-quantize, in ex, the values names[0..n) on 8-bit grids over [lo[i], hi[i]];
 * their steps into steps[] when it is not NULL. */
static void set_named_quants(struct dfq_exec *ex, const struct dfq_graph *g, int n,
                             const char *const *names, const float *lo, const float *hi,
                             float *steps)
{
	struct dfq_error err;
	for (int i = 0; i < n; i++) {
		struct dfq_qparams q;
		assert_int_equal(dfq_qparams_make(8, DFQ_QSCHEME_ASYM, lo[i], hi[i], &q, &err),
		                 DFQ_OK);
		int vi = dfq_graph_find_value(g, names[i]);
		assert_true(vi >= 0);
		if (dfq_exec_set_quant(ex, vi, &q, &err) != DFQ_OK)
			fail_msg("set_quant %s: %s", names[i], err.msg);
		if (steps)
			steps[i] = q.scale;
	}
}

/* Quantize, in ex, the case's conv input t, the value before the Add (q1 in the
 * epilogue), the chain's output (q2, or q1 without an Add) and the pooled p
 * (a plain node step), each on its own 8-bit grid. */
static void set_case_quants(struct dfq_exec *ex, const struct dfq_graph *g,
                            const struct chain_case *cc, float *steps)
{
	const char *pre = cc->act1 ? "y2" : cc->bn ? "y1" : "y0";
	const char *fin = cc->act2 ? "y4" : cc->add ? "y3" : pre;
	const char *names[4] = {"t", pre, fin, "p"};
	const float lo[4] = {0.0f, -3.0f, -4.0f, -1.0f}, hi[4] = {2.0f, 3.0f, 5.0f, 1.5f};
	set_named_quants(ex, g, 4, names, lo, hi, steps);
}

/* got against ref of a quantized graph: the fused kernels multiply by the
 * grid's reciprocal and round their sums differently, so a value next to a
 * rounding boundary may land one code away, and that code's difference
 * travels on (through the Add into the next grid): allow a few steps, on a
 * small share of the values; everything else must be equal. */
static void assert_quant_close(const struct dfq_tensor *ref, const struct dfq_tensor *got,
                               float step, const char *what)
{
	assert_true(dfq_tensor_same_shape(ref, got));
	const float *r = dfq_tensor_f32(ref), *g = dfq_tensor_f32(got);
	int64_t differ = 0;
	for (int64_t i = 0; i < ref->numel; i++) {
		double d = fabs((double)r[i] - g[i]);
		if (!(d <= 4.0 * step + 1e-6))
			fail_msg("%s: element %lld is %.9g, the oracle says %.9g (step %g)", what,
			         (long long)i, (double)g[i], (double)r[i], (double)step);
		differ += d > 1e-6;
	}
	if (differ * 50 > ref->numel + 50)
		fail_msg("%s: %lld of %lld values differ from the oracle", what, (long long)differ,
		         (long long)ref->numel);
}

/* cc on a batch of n with the case's quantizers (set_case_quants): the fast path in
 * each configuration gives the oracle's results, within assert_quant_close. */
static void run_quant_case(const struct chain_case *cc, int64_t n, const char *what)
{
	struct dfq_graph *g = chain_graph(cc);
	struct dfq_tensor *in[2], *ref[2], *got[2];
	case_inputs(cc, n, in);
	struct dfq_error err;
	struct dfq_exec *slow = new_exec(g, false, 1);
	float steps[4];
	set_case_quants(slow, g, cc, steps);
	assert_int_equal(dfq_exec_run(slow, in, ref, &err), DFQ_OK);
	for (int i = 0; i < FAST_CONFIGS; i++) {
		char msg[256];
		int threads = use_fast_config(i, what, n, "", msg, sizeof msg);
		struct dfq_exec *fast = new_exec(g, true, threads);
		set_case_quants(fast, g, cc, NULL);
		/* without the profile: with 2 threads and 4+ images, the parts of the
		 * batch run side by side, each thread with a plan of its own */
		assert_int_equal(dfq_exec_run(fast, in, got, &err), DFQ_OK);
		assert_quant_close(ref[0], got[0], steps[1] + steps[2], msg);
		assert_quant_close(ref[1], got[1], steps[3], msg);
		free_tensors(2, got);
		/* with it, the steps in turn: still one fused step, as the
		 * quantizers sit where the epilogue has them */
		dfq_exec_set_profile(fast, true);
		assert_int_equal(dfq_exec_run(fast, in, got, &err), DFQ_OK);
		assert_quant_close(ref[0], got[0], steps[1] + steps[2], msg);
		if (chain_step_calls(fast, cc) == 0)
			fail_msg("%s: the quantized chain did not run as one step", msg);
		dfq_exec_free(fast);
		free_tensors(2, got);
	}
	fused_force_generic(false);
	dfq_exec_free(slow);
	free_tensors(2, ref);
	free_tensors(2, in);
	dfq_graph_free(g);
}

/* Quantized activations keep the fused chains, with the oracle's results. */
static void test_fused_quant(void **state)
{
	for (size_t i = 0; i < sizeof chain_cases / sizeof chain_cases[0]; i++) {
		char what[64];
		snprintf(what, sizeof what, "quantized chain case %zu", i);
		run_quant_case(&chain_cases[i], i % 2 ? 2 : 5, what);
	}
	run_quant_case(&chain_cases[2], 40, "quantized, sub-batches");
}

/* MobileNetV2's block: X -> Conv 1x1 + Relu -> depthwise 3x3 + BN + Clip 0..6 -> "d" ->
 * Conv 1x1 + BN [+ Add(X)] -> Y, and GlobalAveragePool(Y) -> P.  The plan runs
 * the depthwise chain and the 1x1 chain reading it together, block of columns
 * by block (fused_dw_pw_run), except when profiling. */
struct dwpw_case {
	int64_t c, e, o, h, w, s; /* input, expanded and output channels; size; dw stride */
	bool add;                 /* Y += X (o == c, s == 1) */
};

static struct dfq_graph *dwpw_graph(const struct dwpw_case *dc)
{
	static const char *const bn1[4] = {"s1", "b1", "m1", "v1"};
	static const char *const bn2[4] = {"s2", "b2", "m2", "v2"};
	int64_t xd[4] = {-1, dc->c, dc->h, dc->w};
	int64_t w1[4] = {dc->e, 1, 3, 3}, w2[4] = {dc->o, dc->e, 1, 1};
	struct dfq_graph *g = stem_graph(xd, dc->e);
	g_init(g, "w1", 4, w1, false);
	g_init(g, "w2", 4, w2, false);
	const char *c1[2] = {"t", "w1"};
	int ni = g_node(g, "dw", "Conv", 13, 2, c1, "d0");
	g_ints(g, ni, "kernel_shape", 2, 3, 3);
	g_ints(g, ni, "strides", 2, dc->s, dc->s);
	g_pads(g, ni, 1, 1);
	g_attr_int(g, ni, "group", dc->e);
	g_bn(g, "bn1", bn1, dc->e, "d0", "d1");
	add_act(g, ACT_CLIP6, "clip1", "d1", "d");
	const char *c2[2] = {"d", "w2"};
	g_node(g, "pw", "Conv", 13, 2, c2, "y0");
	g_bn(g, "bn2", bn2, dc->o, "y0", dc->add ? "y1" : "y");
	if (dc->add) {
		const char *ai[2] = {"x", "y1"};
		g_node(g, "add", "Add", 13, 2, ai, "y");
	}
	g_finish(g, "y");
	return g;
}

/* Fake-quantize the paired depthwise output d and the block's output y. */
static void set_dwpw_quants(struct dfq_exec *ex, const struct dfq_graph *g)
{
	const char *names[2] = {"d", "y"};
	const float lo[2] = {0.0f, -4.0f}, hi[2] = {6.0f, 5.0f};
	set_named_quants(ex, g, 2, names, lo, hi, NULL);
}

/* The fast path on in: the outputs of a run without and (the steps one by
 * one, unpaired) with the profile. */
static void run_dwpw_fast(const struct dfq_graph *g, int threads, bool quant,
                          struct dfq_tensor *const *in, struct dfq_tensor **got,
                          struct dfq_tensor **apart)
{
	struct dfq_error err;
	struct dfq_exec *ex = new_exec(g, true, threads);
	if (quant)
		set_dwpw_quants(ex, g);
	assert_int_equal(dfq_exec_run(ex, in, got, &err), DFQ_OK);
	dfq_exec_set_profile(ex, true);
	assert_int_equal(dfq_exec_run(ex, in, apart, &err), DFQ_OK);
	dfq_exec_free(ex);
}

/* Both outputs of a graph bit for bit equal to b's (paired against unpaired runs). */
static void assert_outputs_same(struct dfq_tensor *const *a, struct dfq_tensor *const *b,
                                const char *what)
{
	for (int k = 0; k < 2; k++) {
		assert_true(dfq_tensor_same_shape(a[k], b[k]));
		if (memcmp(a[k]->data, b[k]->data, (size_t)a[k]->numel * sizeof(float)) != 0)
			fail_msg("%s: paired and unpaired runs differ", what);
	}
}

/* Paired, the block gives the oracle's results (float), and with AVX-512
 * exactly the unpaired fast path's (float and quantized: the same kernels
 * summing in the same order, only the depthwise output's place differs). */
static void test_fused_dw_pw(void **state)
{
	static const struct dwpw_case cases[] = {
	    /* c, e, o, h, w, s, add */
	    {8, 24, 8, 7, 7, 1, true},
	    {6, 18, 10, 14, 14, 2, false}, /* 18: a group of channels short */
	    {4, 36, 4, 9, 11, 1, true},
	    {16, 144, 24, 14, 14, 1, false}, /* several column blocks, the last short */
	    {8, 40, 8, 32, 32, 2, false},    /* stride 2 by rows, 16-wide rows */
	    {8, 24, 8, 3, 3, 1, true},       /* 3x3 images: a block holds many */
	};
	static const int64_t batches[] = {1, 5, 40};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct dfq_graph *g = dwpw_graph(&cases[i]);
		char what[64];
		snprintf(what, sizeof what, "dw+1x1 case %zu", i);
		for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
			int64_t n = batches[b];
			int64_t xd[4] = {n, cases[i].c, cases[i].h, cases[i].w};
			struct dfq_tensor *in[1] = {rand_tensor(4, xd)};
			struct dfq_tensor *ref[2], *got[2], *apart[2];
			run_graph(g, false, 1, in, ref);
			for (int c = 0; c < FAST_CONFIGS; c++) {
				for (int quant = 0; quant < 2; quant++) {
					char msg[256];
					int threads =
					    use_fast_config(c, what, n, quant ? ", quantized" : "",
					                    msg, sizeof msg);
					run_dwpw_fast(g, threads, quant, in, got, apart);
					if (!quant)
						assert_outputs_close(ref, got, msg);
					/* only the AVX-512 kernels pair (the others go through
					 * the BLAS, whose sums depend on how the threads share
					 * the columns out) */
					if (!fast_config_generic(c))
						assert_outputs_same(apart, got, msg);
					free_tensors(2, got);
					free_tensors(2, apart);
				}
			}
			fused_force_generic(false);
			free_tensors(2, ref);
			dfq_tensor_free(in[0]);
		}
		dfq_graph_free(g);
	}
}

/* What dfq_exec_set_quant refuses, and that removing a grid restores float. */
static void test_exec_quant_args(void **state)
{
	struct dfq_graph *g = chain_graph(&small_add_case);
	struct dfq_error err;
	struct dfq_exec *ex = dfq_exec_new(g, NULL, &err);
	assert_non_null(ex);
	struct dfq_qparams q;
	assert_int_equal(dfq_qparams_make(4, DFQ_QSCHEME_SYM, -1.0f, 1.0f, &q, &err), DFQ_OK);
	assert_int_equal(dfq_exec_set_quant(ex, dfq_graph_find_value(g, "x"), &q, &err),
	                 DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "graph input"));
	assert_int_equal(dfq_exec_set_quant(ex, dfq_graph_find_value(g, "w"), &q, &err),
	                 DFQ_ERR_ARG);
	assert_int_equal(dfq_exec_set_quant(ex, -1, &q, &err), DFQ_ERR_ARG);
	assert_int_equal(dfq_exec_set_quant(ex, g->nvalues, &q, &err), DFQ_ERR_ARG);
	struct dfq_qparams bad = q;
	bad.scale = 0.0f;
	int y = dfq_graph_find_value(g, "y4");
	assert_int_equal(dfq_exec_set_quant(ex, y, &bad, &err), DFQ_ERR_ARG);
	bad = q;
	bad.zero_point = q.qmax + 1;
	assert_int_equal(dfq_exec_set_quant(ex, y, &bad, &err), DFQ_ERR_ARG);

	/* a grid of 4 bits over [-1, 1] on the output: at most 16 distinct values */
	int64_t xd[4] = {3, 4, 6, 6};
	struct dfq_tensor *in[2] = {rand_tensor(4, xd), rand_tensor(4, xd)};
	struct dfq_tensor *a[2], *b[2];
	assert_int_equal(dfq_exec_set_quant(ex, y, &q, &err), DFQ_OK);
	assert_int_equal(dfq_exec_run(ex, in, a, &err), DFQ_OK);
	for (int64_t i = 0; i < a[0]->numel; i++) {
		float v = dfq_tensor_f32(a[0])[i];
		assert_true(v == dfq_fake_quant1(v, &q));
	}
	/* removed (one, then all): the float results again */
	assert_int_equal(dfq_exec_set_quant(ex, y, NULL, &err), DFQ_OK);
	assert_int_equal(dfq_exec_run(ex, in, b, &err), DFQ_OK);
	bool changed = false;
	for (int64_t i = 0; i < b[0]->numel; i++) {
		float v = dfq_tensor_f32(b[0])[i];
		changed = changed || v != dfq_fake_quant1(v, &q);
	}
	assert_true(changed);
	dfq_exec_clear_quants(ex);
	free_tensors(2, a);
	free_tensors(2, b);
	free_tensors(2, in);
	dfq_exec_free(ex);
	dfq_graph_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_blas_init),
	    cmocka_unit_test(test_pool_sum),
	    cmocka_unit_test(test_pool_nested),
	    cmocka_unit_test(test_conv_depthwise),
	    cmocka_unit_test(test_conv_1x1),
	    cmocka_unit_test(test_conv_gemm),
	    cmocka_unit_test(test_conv_1d_3d),
	    cmocka_unit_test(test_conv_random),
	    cmocka_unit_test(test_conv_3d_fallback),
	    cmocka_unit_test(test_gemm_combos),
	    cmocka_unit_test(test_matmul),
	    cmocka_unit_test(test_fused_chains),
	    cmocka_unit_test(test_fused_random),
	    cmocka_unit_test(test_fused_override),
	    cmocka_unit_test(test_fused_fallback),
	    cmocka_unit_test(test_fused_hook),
	    cmocka_unit_test(test_fused_sub_batches),
	    cmocka_unit_test(test_fused_quant),
	    cmocka_unit_test(test_fused_dw_pw),
	    cmocka_unit_test(test_exec_quant_args),
	};
	/* the cases are small: share out every convolution, as a large one would be */
	fused_set_par_min_macs(0);
	DFQ_RUN_TESTS(tests);
}
