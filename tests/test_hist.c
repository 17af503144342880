/* test_hist.c - quantization error histograms (model_hist.c) against an independent
 * recomputation: weights per tensor and per channel, widened ranges, clipping on a narrow grid,
 * and the activation error at a layer's output on a batch. */
#include "dfq_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dfq/dfq_exec.h"
#include "dfq/dfq_model.h"
#include "model_internal.h"

#include "model_fixtures.h"

/* --- the reference: one value at a time, written out plainly ------------------------ */

struct ref {
	int nbins;
	double lo, hi;
	int64_t counts[256];
	int64_t below, above, clipped, exact, n;
	double sum, max_abs, sx2, se2;
};

static void ref_init(struct ref *r, int nbins, double lo, double hi)
{
	memset(r, 0, sizeof *r);
	assert_true(nbins <= 256);
	r->nbins = nbins;
	r->lo = lo;
	r->hi = hi;
}

/* x quantized to xq on grid g. */
static void ref_add(struct ref *r, float x, float xq, const struct dfq_qparams *g)
{
	double code = rint((double)x / g->scale) + g->zero_point;
	bool clipped = code < g->qmin || code > g->qmax;
	double e = ((double)xq - x) / g->scale;
	if (clipped)
		r->clipped++;
	else
		e = fmin(fmax(e, -0.5), 0.5); /* rounding is at most half a step */
	if (e < r->lo)
		r->below++;
	else if (e > r->hi)
		r->above++;
	else {
		int b = (int)((e - r->lo) * (r->nbins / (r->hi - r->lo)));
		r->counts[b >= r->nbins ? r->nbins - 1 : b]++;
	}
	r->exact += xq == x;
	r->sum += e;
	r->max_abs = fmax(r->max_abs, fabs(e));
	r->sx2 += (double)x * x;
	r->se2 += ((double)xq - x) * ((double)xq - x);
	r->n++;
}

static void ref_check(const struct ref *r, const struct dfq_hist *h)
{
	assert_int_equal(h->nbins, r->nbins);
	assert_int_equal(h->n, r->n);
	for (int b = 0; b < r->nbins; b++)
		if (h->counts[b] != r->counts[b])
			fail_msg("bin %d: %lld, the reference counts %lld", b,
			         (long long)h->counts[b], (long long)r->counts[b]);
	assert_int_equal(h->below, r->below);
	assert_int_equal(h->above, r->above);
	assert_int_equal(h->clipped, r->clipped);
	assert_int_equal(h->exact, r->exact);
	assert_true(fabs(h->mean - r->sum / (double)r->n) < 1e-9);
	assert_true(fabs(h->max_abs - r->max_abs) < 1e-9);
	if (r->se2 > 0.0)
		assert_true(fabs(h->sqnr_db - 10.0 * log10(r->sx2 / r->se2)) < 1e-9);
	else
		assert_true(isinf(h->sqnr_db));
}

/* A model folded, with the layers quantized as q says (sel NULL: all). */
static void quantize(struct fixture *f, const bool *sel, int wbits, int abits, bool per_channel)
{
	STEP_OK(dfq_model_fold(f->m, NULL, &e_));
	struct dfq_qconfig q;
	dfq_qconfig_default(&q);
	q.wbits = wbits;
	q.abits = abits;
	q.per_channel = per_channel;
	STEP_OK(dfq_model_quantize(f->m, sel, &q, NULL, &e_));
}

/* The reference of layer li's weights against grids computed here from W's
 * (or each output channel's) min and max. */
static void ref_weights(const struct dfq_model *m, int li, int bits, bool per_channel,
                        struct ref *r, double *step_min, double *step_max)
{
	const struct dfq_layer *L = &m->layers[li];
	const float *w = dfq_tensor_f32(m->g->values[L->w_vi].init);
	int64_t cin_g = L->cin / L->group;
	struct dfq_qparams g;
	*step_min = INFINITY;
	*step_max = 0.0;
	for (int64_t o = 0; o < L->cout; o++) {
		/* the grid: over all of W, or over channel o */
		float lo = INFINITY, hi = -INFINITY;
		for (int64_t oo = per_channel ? o : 0; oo < (per_channel ? o + 1 : L->cout); oo++)
			for (int64_t i = 0; i < cin_g; i++)
				for (int64_t k = 0; k < L->ksize; k++) {
					float v = w[oo * L->w_ostride + i * L->w_istride + k];
					lo = fminf(lo, v);
					hi = fmaxf(hi, v);
				}
		assert_int_equal(dfq_qparams_make(bits, DFQ_QSCHEME_ASYM, lo, hi, &g, NULL),
		                 DFQ_OK);
		*step_min = fmin(*step_min, g.scale);
		*step_max = fmax(*step_max, g.scale);
		for (int64_t i = 0; i < cin_g; i++)
			for (int64_t k = 0; k < L->ksize; k++) {
				float v = w[o * L->w_ostride + i * L->w_istride + k];
				ref_add(r, v, dfq_fake_quant1(v, &g), &g);
			}
	}
}

/* --- weights ----------------------------------------------------------------------- */

/* A quantized layer's own grid: the error fills [-0.5, 0.5] evenly, nothing
 * beyond; the same counts as the reference. */
static void test_weights_uniform(void **state)
{
	struct fixture f;
	fx_open(&f, model_mbv2(0.0, 3), rand_input(4, 10, 10));
	quantize(&f, NULL, 8, 8, false);
	struct dfq_hist h;
	struct dfq_hist_opts o = {10, -0.5, 0.5};
	int li = 0; /* c0: 16x4x3x3, 576 weights */
	STEP_OK(dfq_model_weight_hist(f.m, li, NULL, &o, &h, &e_));
	struct ref r;
	double smin, smax;
	ref_init(&r, 10, -0.5, 0.5);
	ref_weights(f.m, li, 8, false, &r, &smin, &smax);
	ref_check(&r, &h);
	assert_int_equal(h.kind, DFQ_HIST_WEIGHTS);
	assert_int_equal(h.layer, li);
	assert_int_equal(h.bits, 8);
	assert_int_equal(h.ngrids, 1);
	assert_int_equal(h.n, 576);
	assert_int_equal(h.below + h.above + h.clipped, 0);
	assert_true(fabs(h.step - smin) < 1e-12 && h.step_min == h.step_max);
	assert_true(h.grid_lo <= 0.0 && h.grid_hi > 0.0);
	/* uniform-ish: every bin within half of the mean count, |mean| small */
	for (int b = 0; b < 10; b++)
		if (h.counts[b] < 576 / 10 / 2 || h.counts[b] > 576 / 10 * 3 / 2)
			fail_msg("bin %d holds %lld of 576: not uniform", b,
			         (long long)h.counts[b]);
	assert_true(fabs(h.mean) < 0.05);
	assert_true(fabs(h.rms - sqrt(1.0 / 12.0)) < 0.03);
	assert_true(h.max_abs <= 0.5);
	/* the SQNR is the one `error` reports */
	struct dfq_qerr_stats st;
	STEP_OK(dfq_model_weight_error(f.m, li, NULL, DFQ_QERR_SUM, NULL, &st, &e_));
	assert_true(fabs(st.sqnr_db - h.sqnr_db) < 1e-6);
	assert_true(fabs(st.max_abs / h.step - h.max_abs) < 1e-4);
	dfq_hist_free(&h);
	dfq_hist_free(&h); /* freeing twice is safe */

	/* widened to [-2, 2]: still nothing beyond half a step */
	o = (struct dfq_hist_opts){40, -2.0, 2.0};
	STEP_OK(dfq_model_weight_hist(f.m, li, NULL, &o, &h, &e_));
	int64_t outside = 0;
	for (int b = 0; b < 40; b++) {
		double c = -2.0 + (b + 0.5) * 0.1;
		if (fabs(c) > 0.5)
			outside += h.counts[b];
	}
	assert_int_equal(outside, 0);
	dfq_hist_free(&h);
	fx_close(&f);
}

/* A float layer: an error without bits, what W4 would do with them. */
static void test_weights_float_layer(void **state)
{
	struct fixture f;
	fx_open(&f, model_mbv2(0.0, 4), rand_input(4, 10, 10));
	struct dfq_hist h;
	struct dfq_error err;
	memset(&h, 0x5a, sizeof h);
	assert_int_equal(dfq_model_weight_hist(f.m, 3, NULL, NULL, &h, &err), DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "not quantized"));
	assert_null(h.counts); /* zeroed: nothing to free */
	dfq_hist_free(&h);
	assert_int_equal(dfq_model_weight_hist(f.m, 99, NULL, NULL, &h, &err), DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "no layer 99"));
	struct dfq_qconfig q;
	dfq_qconfig_default(&q);
	q.wbits = 1;
	assert_int_equal(dfq_model_weight_hist(f.m, 3, &q, NULL, &h, &err), DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "weight bits"));
	q.wbits = 4;
	STEP_OK(dfq_model_weight_hist(f.m, 3, &q, NULL, &h, &e_));
	struct ref r;
	double smin, smax;
	ref_init(&r, 20, -0.5, 0.5);
	ref_weights(f.m, 3, 4, false, &r, &smin, &smax);
	ref_check(&r, &h);
	assert_int_equal(h.bits, 4);
	assert_int_equal(h.q.wbits, 4);
	assert_false(f.m->layers[3].quantized); /* a query changes nothing */
	struct dfq_qerr_stats st;
	STEP_OK(dfq_model_weight_error(f.m, 3, &q, DFQ_QERR_SUM, NULL, &st, &e_));
	assert_true(fabs(st.sqnr_db - h.sqnr_db) < 1e-6);
	dfq_hist_free(&h);
	/* bad options */
	struct dfq_hist_opts o = {0, -0.5, 0.5};
	assert_int_equal(dfq_model_weight_hist(f.m, 3, &q, &o, &h, &err), DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "bins"));
	o = (struct dfq_hist_opts){10, 0.5, -0.5};
	assert_int_equal(dfq_model_weight_hist(f.m, 3, &q, &o, &h, &err), DFQ_ERR_ARG);
	o = (struct dfq_hist_opts){10, -INFINITY, 0.5};
	assert_int_equal(dfq_model_weight_hist(f.m, 3, &q, &o, &h, &err), DFQ_ERR_ARG);
	fx_close(&f);
}

/* Per-channel grids: each channel's own step, for [out, in] convolution
 * weights and for a Gemm that stores its weights [in, out]. */
static void test_weights_per_channel(void **state)
{
	struct fixture f;
	fx_open(&f, model_mbv2(0.0, 5), rand_input(4, 10, 10));
	quantize(&f, NULL, 4, 8, true);
	struct dfq_hist h;
	STEP_OK(dfq_model_weight_hist(f.m, 1, NULL, NULL, &h, &e_)); /* c1: depthwise 16x1x3x3 */
	struct ref r;
	double smin, smax;
	ref_init(&r, 20, -0.5, 0.5);
	ref_weights(f.m, 1, 4, true, &r, &smin, &smax);
	ref_check(&r, &h);
	assert_int_equal(h.ngrids, 16);
	assert_true(h.per_channel);
	assert_true(fabs(h.step_min - smin) < 1e-12 && fabs(h.step_max - smax) < 1e-12);
	assert_true(h.step_max > 2.0 * h.step_min); /* the channels' ranges differ */
	/* against the per-tensor grid, which the channels' steps would not give */
	struct ref rt;
	ref_init(&rt, 20, -0.5, 0.5);
	ref_weights(f.m, 1, 4, false, &rt, &smin, &smax);
	bool differ = false;
	for (int b = 0; b < 20; b++)
		differ = differ || rt.counts[b] != h.counts[b];
	assert_true(differ);
	dfq_hist_free(&h);
	fx_close(&f);

	/* the MLP's gemm2 keeps W as [in, out] (16 x 10): channel o is a column */
	int64_t d[2] = {BATCH, 12};
	fx_open(&f, model_mlp(6), rand_tensor(2, d));
	assert_int_equal(f.m->layers[1].w_ostride, 1);
	struct dfq_qconfig q;
	dfq_qconfig_default(&q);
	q.wbits = 3;
	q.per_channel = true;
	STEP_OK(dfq_model_weight_hist(f.m, 1, &q, NULL, &h, &e_));
	ref_init(&r, 20, -0.5, 0.5);
	ref_weights(f.m, 1, 3, true, &r, &smin, &smax);
	ref_check(&r, &h);
	assert_int_equal(h.ngrids, 10);
	assert_int_equal(h.n, 160);
	dfq_hist_free(&h);
	fx_close(&f);
}

/* --- the plain function: a forced narrow grid clips --------------------------------- */

static void test_narrow_grid(void **state)
{
	rng_seed(7);
	enum { N = 20000 };
	float *x = malloc(N * sizeof *x);
	assert_non_null(x);
	for (int i = 0; i < N; i++)
		x[i] = (float)(2.0 * urand() - 1.0); /* U(-1, 1) */
	/* a grid over [-1, 1]: uniform, nothing clipped */
	struct dfq_qparams g;
	assert_int_equal(dfq_qparams_make(6, DFQ_QSCHEME_SYM, -1.0f, 1.0f, &g, NULL), DFQ_OK);
	struct dfq_hist h;
	STEP_OK(dfq_qerr_hist(x, NULL, N, &g, 1, NULL, &h, &e_));
	assert_int_equal(h.clipped, 0);
	assert_int_equal(h.below + h.above, 0);
	for (int b = 0; b < 20; b++)
		assert_true(h.counts[b] > N / 20 * 8 / 10 && h.counts[b] < N / 20 * 12 / 10);
	dfq_hist_free(&h);
	/* forced narrow: [-0.5, 0.5] with 6 bits clips about half of the values */
	assert_int_equal(dfq_qparams_make(6, DFQ_QSCHEME_SYM, -0.5f, 0.5f, &g, NULL), DFQ_OK);
	struct dfq_hist_opts o = {20, -0.5, 0.5};
	STEP_OK(dfq_qerr_hist(x, NULL, N, &g, 1, &o, &h, &e_));
	struct ref r;
	ref_init(&r, 20, -0.5, 0.5);
	for (int i = 0; i < N; i++)
		ref_add(&r, x[i], dfq_fake_quant1(x[i], &g), &g);
	ref_check(&r, &h);
	assert_true(h.clipped > N * 4 / 10 && h.clipped < N * 6 / 10);
	/* a clipped value lands beyond the edges unless it was clipped by less than
	 * half a step; the errors of clipping reach 0.5 / step steps */
	assert_true(h.below + h.above <= h.clipped && h.below + h.above > h.clipped * 9 / 10);
	assert_true(h.below > 0 && h.above > 0);
	assert_true(h.max_abs > 0.4 / g.scale);
	dfq_hist_free(&h);
	/* widened to [-40, 40] steps: every value in a bin, the mass beyond
	 * +-0.5 is the values clipped by more than half a step */
	o = (struct dfq_hist_opts){80, -40.0, 40.0};
	STEP_OK(dfq_qerr_hist(x, NULL, N, &g, 1, &o, &h, &e_));
	ref_init(&r, 80, -40.0, 40.0);
	for (int i = 0; i < N; i++)
		ref_add(&r, x[i], dfq_fake_quant1(x[i], &g), &g);
	ref_check(&r, &h);
	assert_int_equal(h.below + h.above, 0);
	int64_t beyond = 0;
	for (int b = 0; b < 80; b++)
		if (b != 39 && b != 40)
			beyond += h.counts[b];
	assert_true(beyond > 0 && beyond <= h.clipped);
	dfq_hist_free(&h);
	/* two grids over two blocks; bad arguments */
	struct dfq_qparams g2[2];
	assert_int_equal(dfq_qparams_make(4, DFQ_QSCHEME_ASYM, -1.0f, 1.0f, &g2[0], NULL), DFQ_OK);
	assert_int_equal(dfq_qparams_make(4, DFQ_QSCHEME_ASYM, -0.1f, 0.1f, &g2[1], NULL), DFQ_OK);
	STEP_OK(dfq_qerr_hist(x, NULL, 100, g2, 2, NULL, &h, &e_));
	ref_init(&r, 20, -0.5, 0.5);
	for (int i = 0; i < 100; i++)
		ref_add(&r, x[i], dfq_fake_quant1(x[i], &g2[i / 50]), &g2[i / 50]);
	ref_check(&r, &h);
	assert_int_equal(h.ngrids, 0); /* the plain function leaves the layer figures */
	assert_true(h.step_min < h.step_max);
	dfq_hist_free(&h);
	struct dfq_error err;
	assert_int_equal(dfq_qerr_hist(x, NULL, 101, g2, 2, NULL, &h, &err), DFQ_ERR_ARG);
	x[3] = NAN;
	assert_int_equal(dfq_qerr_hist(x, NULL, 10, &g, 1, NULL, &h, &err), DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "NaN"));
	assert_null(h.counts);
	free(x);
}

/* --- activations ------------------------------------------------------------------- */

struct grab {
	int vi;
	struct dfq_tensor *t;
};

static dfq_status grab_hook(void *user, const struct dfq_graph *g, int vi, struct dfq_tensor *t,
                            struct dfq_error *err)
{
	struct grab *k = user;
	if (vi == k->vi && !k->t)
		k->t = dfq_tensor_clone(t, err);
	return DFQ_OK;
}

/* Layer li's float output on x when only layer li is quantized (no input
 * quantizer): the FP32 model with li's weights replaced by Q(W). */
static struct dfq_tensor *output_with_qw(struct fixture *f, int li, const struct dfq_tensor *x)
{
	const struct dfq_layer *L = &f->m->layers[li];
	struct dfq_exec *ex = dfq_exec_new(f->m->g, NULL, NULL);
	assert_non_null(ex);
	assert_int_equal(dfq_exec_set_override(ex, L->w_vi, L->wq, NULL), DFQ_OK);
	struct grab k = {L->out_vi, NULL};
	dfq_exec_set_hook(ex, grab_hook, &k);
	struct dfq_tensor *out[1];
	struct dfq_tensor *in = (struct dfq_tensor *)x;
	assert_int_equal(dfq_exec_run(ex, &in, out, NULL), DFQ_OK);
	dfq_tensor_free(out[0]);
	dfq_exec_free(ex);
	assert_non_null(k.t);
	return k.t;
}

static void test_act_known(void **state)
{
	struct fixture f;
	fx_open(&f, model_mbv2(0.0, 8), rand_input(4, 10, 10));
	bool sel[8] = {false};
	int li = 2; /* c2: a 1x1 conv without activation */
	sel[0] = sel[1] = sel[li] = true;
	quantize(&f, sel, 8, 4, false);
	/* with c0 and c1 quantized too, li's input is quantized: the reference
	 * runs QUANT mode itself and grabs li's float output */
	const struct dfq_layer *L = &f.m->layers[li];
	int pi = model_point_of(f.m, L->out_vi);
	assert_true(pi >= 0 && f.m->points[pi].enabled);
	const struct dfq_qparams *g = &f.m->points[pi].qp;
	assert_int_equal(g->bits, 4);
	struct dfq_hist h;
	struct dfq_hist_opts o = {16, -2.0, 2.0};
	STEP_OK(dfq_model_act_hist(f.m, f.ex, li, f.x, &o, &h, &e_));
	assert_int_equal(dfq_model_exec_prepare(f.m, f.ex, DFQ_RUN_QUANT, NULL), DFQ_OK);
	struct grab k = {L->out_vi, NULL};
	dfq_exec_set_hook(f.ex, grab_hook, &k);
	struct dfq_tensor *out[1];
	assert_int_equal(dfq_exec_run(f.ex, &f.x, out, NULL), DFQ_OK);
	dfq_tensor_free(out[0]);
	model_exec_reset(f.ex);
	struct ref r;
	ref_init(&r, 16, -2.0, 2.0);
	for (int64_t i = 0; i < k.t->numel; i++) {
		float y = dfq_tensor_f32(k.t)[i];
		ref_add(&r, y, dfq_fake_quant1(y, g), g);
	}
	ref_check(&r, &h);
	assert_int_equal(h.kind, DFQ_HIST_ACT);
	assert_int_equal(h.samples, BATCH);
	assert_int_equal(h.n, BATCH * 8 * 10 * 10);
	assert_true(fabs(h.step - g->scale) < 1e-12);
	assert_int_equal(h.bits, 4);
	dfq_tensor_free(k.t);
	dfq_hist_free(&h);
	/* the executor is usable afterwards, in either mode */
	dfq_tensor_free(run(&f, DFQ_RUN_FP32));
	fx_close(&f);

	/* only c0 quantized (no input quantizer): its float output is the FP32
	 * model's with Q(W) in place of W, known without the model's QUANT run;
	 * ReLU6's zeros are on the grid */
	fx_open(&f, model_mbv2(0.0, 9), rand_input(4, 10, 10));
	bool sel0[8] = {true};
	quantize(&f, sel0, 6, 3, false);
	struct dfq_tensor *y = output_with_qw(&f, 0, f.x);
	pi = model_point_of(f.m, f.m->layers[0].out_vi);
	g = &f.m->points[pi].qp;
	STEP_OK(dfq_model_act_hist(f.m, f.ex, 0, f.x, NULL, &h, &e_));
	ref_init(&r, 20, -0.5, 0.5);
	int64_t zeros = 0;
	for (int64_t i = 0; i < y->numel; i++) {
		float v = dfq_tensor_f32(y)[i];
		zeros += v == 0.0f;
		ref_add(&r, v, dfq_fake_quant1(v, g), g);
	}
	ref_check(&r, &h);
	assert_true(zeros > 0 && h.counts[10] >= zeros); /* error 0 opens bin 10 */
	assert_true(h.exact >= zeros);
	dfq_tensor_free(y);
	dfq_hist_free(&h);
	fx_close(&f);
}

/* Narrow data-free ranges (n-std 1) clip the output: clipped values counted,
 * mass beyond the edges. */
static void test_act_clipped(void **state)
{
	struct fixture f;
	fx_open(&f, model_mbv2(0.0, 10), rand_input(4, 10, 10));
	quantize(&f, NULL, 8, 8, false);
	struct dfq_hist wide, narrow;
	int li = 3; /* c3: relu6 */
	STEP_OK(dfq_model_act_hist(f.m, f.ex, li, f.x, NULL, &wide, &e_));
	STEP_OK(dfq_model_set_n_sigma(f.m, 1.0, &e_));
	STEP_OK(dfq_model_act_hist(f.m, f.ex, li, f.x, NULL, &narrow, &e_));
	print_message(
	    "n-std 6: clipped %lld, below %lld; n-std 1: clipped %lld, below %lld of %lld\n",
	    (long long)wide.clipped, (long long)wide.below, (long long)narrow.clipped,
	    (long long)narrow.below, (long long)narrow.n);
	assert_true(narrow.clipped > wide.clipped);
	/* values above the grid's top come back lower: Q(y) - y < 0 */
	assert_true(narrow.below > 0 && narrow.above == 0);
	assert_true(narrow.step < wide.step);
	assert_true(narrow.max_abs > 1.0);
	dfq_hist_free(&wide);
	dfq_hist_free(&narrow);
	fx_close(&f);
}

/* Outputs without a grid: each says why. */
static void test_act_errors(void **state)
{
	struct fixture f;
	fx_open(&f, model_mbv2(0.0, 11), rand_input(4, 10, 10));
	struct dfq_hist h;
	struct dfq_error err;
	assert_int_equal(dfq_model_act_hist(f.m, f.ex, 0, f.x, NULL, &h, &err), DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "is not quantized"));
	bool sel[8] = {true};
	quantize(&f, sel, 8, 0, false); /* c0 with float activations */
	assert_int_equal(dfq_model_act_hist(f.m, f.ex, 0, f.x, NULL, &h, &err), DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "float"));
	/* all quantized: the Gemm head has no BN statistics, so no data-free range */
	struct dfq_qconfig q;
	dfq_qconfig_default(&q);
	STEP_OK(dfq_model_quantize(f.m, NULL, &q, NULL, &e_));
	assert_int_equal(dfq_model_act_hist(f.m, f.ex, 7, f.x, NULL, &h, &err), DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "no range"));
	assert_int_equal(err.remedy, DFQ_REMEDY_DATA);
	assert_null(h.counts);
	assert_int_equal(dfq_model_act_hist(f.m, f.ex, -1, f.x, NULL, &h, &err), DFQ_ERR_ARG);
	/* with data ranges it has one */
	STEP_OK(measure2(f.m, f.ex, NULL, f.x, NULL, &e_));
	STEP_OK(dfq_model_set_range_source(f.m, DFQ_RANGE_MINMAX, &e_));
	STEP_OK(dfq_model_act_hist(f.m, f.ex, 7, f.x, NULL, &h, &e_));
	assert_int_equal(h.n, BATCH * 5);
	dfq_hist_free(&h);
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_weights_uniform),     cmocka_unit_test(test_weights_float_layer),
	    cmocka_unit_test(test_weights_per_channel), cmocka_unit_test(test_narrow_grid),
	    cmocka_unit_test(test_act_known),           cmocka_unit_test(test_act_clipped),
	    cmocka_unit_test(test_act_errors),
	};
	DFQ_RUN_TESTS(tests);
}
