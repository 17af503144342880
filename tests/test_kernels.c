/* test_kernels.c - fast kernels (conv_fast.c, gemm_fast.c) against the scalar oracles, the
 * thread pool and the BLAS loader. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "dfq_test.h"

#include "dfq/dfq_blas.h"
#include "dfq/dfq_parallel.h"
#include "ops/ops_internal.h"

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
	struct dfq_error err;
	int rank = cc->nsp + 2;
	int64_t c = cc->cg * cc->group, m = cc->mg * cc->group;
	int64_t xd[4] = {cc->n, c}, wd[4] = {m, cc->cg}, bd[1] = {m};
	for (int i = 0; i < cc->nsp; i++) {
		xd[2 + i] = cc->in[i];
		wd[2 + i] = cc->k[i];
	}
	struct dfq_tensor *x = rand_tensor(rank, xd), *w = rand_tensor(rank, wd);
	struct dfq_tensor *b = cc->bias ? rand_tensor(1, bd) : NULL;

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

	struct dfq_shape xs, ws, bs, ys;
	dfq_tensor_shape(x, &xs);
	dfq_tensor_shape(w, &ws);
	if (b)
		dfq_tensor_shape(b, &bs);
	const struct dfq_shape *ins[3] = {&xs, &ws, b ? &bs : NULL};
	const struct dfq_tensor *nodata[3] = {NULL, NULL, NULL};
	if (op_conv_shape(&node, ins, nodata, &ys, &err) != DFQ_OK)
		fail_msg("%s: shape failed: %s", what, err.msg);

	struct dfq_tensor *ref = garbage_tensor(&ys), *fast = garbage_tensor(&ys);
	const struct dfq_tensor *in[3] = {x, w, b};
	struct dfq_tensor *o_ref[1] = {ref}, *o_fast[1] = {fast};
	struct dfq_kctx serial = {.pool = NULL};
	struct dfq_pool *pool = pool2();
	struct dfq_kctx par = {.pool = pool};

	if (op_conv_forward(&node, in, o_ref, &serial, &err) != DFQ_OK)
		fail_msg("%s: oracle failed: %s", what, err.msg);
	if (op_conv_forward_fast(&node, in, o_fast, &par, &err) != DFQ_OK)
		fail_msg("%s: fast failed: %s", what, err.msg);
	assert_close(ref, fast, what);
	memset(fast->data, 0xff, (size_t)fast->numel * sizeof(float)); /* NaNs */
	if (op_conv_forward_fast(&node, in, o_fast, &serial, &err) != DFQ_OK)
		fail_msg("%s: fast (no pool) failed: %s", what, err.msg);
	assert_close(ref, fast, what);

	dfq_pool_free(pool);
	dfq_tensor_free(ref);
	dfq_tensor_free(fast);
	dfq_tensor_free(x);
	dfq_tensor_free(w);
	dfq_tensor_free(b);
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

static void test_conv_depthwise(void **state)
{
	struct conv_case cc = conv2d(1, 8, 1, 1, 17, 19, 3, 1, 1);
	run_conv_case(&cc, "depthwise 3x3");
	cc = conv2d(3, 6, 1, 1, 15, 12, 3, 2, 1);
	run_conv_case(&cc, "depthwise 3x3 stride 2 batch 3");
	cc = conv2d(2, 5, 1, 3, 11, 9, 5, 1, 2);
	run_conv_case(&cc, "depthwise multiplier 3, 5x5");
	cc = conv2d(1, 1, 1, 7, 9, 9, 3, 1, 0);
	run_conv_case(&cc, "one input channel, 7 outputs");
	cc = conv2d(2, 4, 1, 2, 13, 14, 3, 1, 1);
	cc.d[0] = 2, cc.d[1] = 3, cc.bias = false;
	run_conv_case(&cc, "depthwise multiplier 2, dilated, no bias");
	cc = conv2d(1, 32, 1, 1, 40, 37, 3, 1, 1);
	run_conv_case(&cc, "depthwise 32 channels");
}

static void test_conv_1x1(void **state)
{
	struct conv_case cc = conv2d(1, 1, 16, 24, 20, 21, 1, 1, 0);
	run_conv_case(&cc, "1x1 batch 1");
	cc = conv2d(4, 1, 8, 5, 9, 7, 1, 1, 0);
	cc.bias = false;
	run_conv_case(&cc, "1x1 batch 4, no bias");
	cc = conv2d(2, 2, 6, 4, 10, 10, 1, 1, 0);
	run_conv_case(&cc, "1x1 grouped");
	cc = conv2d(2, 1, 6, 4, 10, 11, 1, 2, 0);
	run_conv_case(&cc, "1x1 stride 2 (im2col)");
	cc = conv2d(1, 1, 64, 128, 28, 28, 1, 1, 0);
	run_conv_case(&cc, "1x1 64->128 28x28 (split columns)");
}

static void test_conv_gemm(void **state)
{
	struct conv_case cc = conv2d(1, 1, 3, 8, 32, 30, 3, 1, 1);
	run_conv_case(&cc, "3x3 3->8 batch 1 (split columns)");
	cc = conv2d(8, 1, 4, 6, 12, 12, 3, 1, 1);
	run_conv_case(&cc, "3x3 batch 8");
	cc = conv2d(2, 1, 64, 8, 30, 30, 3, 1, 1);
	run_conv_case(&cc, "3x3 K=576 30x30 (several column blocks per image)");
	cc = conv2d(1, 1, 32, 40, 7, 7, 3, 1, 1);
	run_conv_case(&cc, "3x3 7x7 batch 1 (threaded BLAS)");
	cc = conv2d(2, 4, 3, 5, 11, 13, 3, 2, 1);
	run_conv_case(&cc, "grouped 4, stride 2");
	cc = conv2d(1, 2, 4, 3, 16, 16, 7, 2, 3);
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
	cc = conv2d(2, 1, 3, 4, 5, 5, 3, 1, 0);
	run_conv_case(&cc, "output 3x3");
	cc = conv2d(1, 1, 3, 4, 3, 3, 3, 1, 0);
	run_conv_case(&cc, "output 1x1");
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
	struct dfq_error err;
	int64_t ad[2] = {ta ? k : m, ta ? m : k}, bd[2] = {tb ? nn : k, tb ? k : nn};
	struct dfq_tensor *a = rand_tensor(2, ad), *b = rand_tensor(2, bd);
	struct dfq_tensor *c = cndim >= 0 ? rand_tensor(cndim, cdims) : NULL;
	struct dfq_node node = {.name = "gemm_t",
	                        .op_type = "Gemm",
	                        .op = DFQ_OP_GEMM,
	                        .ninputs = c ? 3 : 2,
	                        .noutputs = 1};
	node.p.trans_a = ta;
	node.p.trans_b = tb;
	node.p.alpha = alpha;
	node.p.beta = beta;

	struct dfq_shape as, bs, cs, ys;
	dfq_tensor_shape(a, &as);
	dfq_tensor_shape(b, &bs);
	if (c)
		dfq_tensor_shape(c, &cs);
	const struct dfq_shape *ins[3] = {&as, &bs, c ? &cs : NULL};
	const struct dfq_tensor *nodata[3] = {NULL, NULL, NULL};
	if (op_gemm_shape(&node, ins, nodata, &ys, &err) != DFQ_OK)
		fail_msg("%s: shape failed: %s", what, err.msg);
	struct dfq_tensor *ref = garbage_tensor(&ys), *fast = garbage_tensor(&ys);
	const struct dfq_tensor *in[3] = {a, b, c};
	struct dfq_tensor *o_ref[1] = {ref}, *o_fast[1] = {fast};
	struct dfq_pool *pool = pool2();
	struct dfq_kctx par = {.pool = pool};
	if (op_gemm_forward(&node, in, o_ref, &par, &err) != DFQ_OK)
		fail_msg("%s: oracle failed: %s", what, err.msg);
	if (op_gemm_forward_fast(&node, in, o_fast, &par, &err) != DFQ_OK)
		fail_msg("%s: fast failed: %s", what, err.msg);
	assert_close(ref, fast, what);
	dfq_pool_free(pool);
	dfq_tensor_free(ref);
	dfq_tensor_free(fast);
	dfq_tensor_free(a);
	dfq_tensor_free(b);
	dfq_tensor_free(c);
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
	struct dfq_error err;
	struct dfq_tensor *a = rand_tensor(an, adims), *b = rand_tensor(bn, bdims);
	struct dfq_node node = {
	    .name = "mm_t", .op_type = "MatMul", .op = DFQ_OP_MATMUL, .ninputs = 2, .noutputs = 1};
	struct dfq_shape as, bs, ys;
	dfq_tensor_shape(a, &as);
	dfq_tensor_shape(b, &bs);
	const struct dfq_shape *ins[2] = {&as, &bs};
	const struct dfq_tensor *nodata[2] = {NULL, NULL};
	if (op_matmul_shape(&node, ins, nodata, &ys, &err) != DFQ_OK)
		fail_msg("%s: shape failed: %s", what, err.msg);
	struct dfq_tensor *ref = garbage_tensor(&ys), *fast = garbage_tensor(&ys);
	const struct dfq_tensor *in[2] = {a, b};
	struct dfq_tensor *o_ref[1] = {ref}, *o_fast[1] = {fast};
	struct dfq_pool *pool = pool2();
	struct dfq_kctx par = {.pool = pool};
	if (op_matmul_forward(&node, in, o_ref, &par, &err) != DFQ_OK)
		fail_msg("%s: oracle failed: %s", what, err.msg);
	if (op_matmul_forward_fast(&node, in, o_fast, &par, &err) != DFQ_OK)
		fail_msg("%s: fast failed: %s", what, err.msg);
	assert_close(ref, fast, what);
	dfq_pool_free(pool);
	dfq_tensor_free(ref);
	dfq_tensor_free(fast);
	dfq_tensor_free(a);
	dfq_tensor_free(b);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_blas_init),        cmocka_unit_test(test_pool_sum),
	    cmocka_unit_test(test_pool_nested),      cmocka_unit_test(test_conv_depthwise),
	    cmocka_unit_test(test_conv_1x1),         cmocka_unit_test(test_conv_gemm),
	    cmocka_unit_test(test_conv_1d_3d),       cmocka_unit_test(test_conv_random),
	    cmocka_unit_test(test_conv_3d_fallback), cmocka_unit_test(test_gemm_combos),
	    cmocka_unit_test(test_matmul),
	};
	DFQ_RUN_TESTS(tests);
}
