/* test_analysis.c - incremental executor runs (dfq_exec_set_given), per-layer sensitivity and the
 * comparison against FP32 (model_analysis.c), on the small MobileNetV2-like fixture with random
 * images written as NPY: an incremental run equals a full one bit for bit and skips what is
 * upstream, sensitivity's figures equal full runs with one layer quantized, compare of an
 * unquantized model is exact, and neither changes the model. */
#include "dfq_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfq/dfq_analysis.h"
#include "dfq/dfq_data.h"
#include "dfq/dfq_eval.h"
#include "dfq/dfq_exec.h"
#include "dfq/dfq_model.h"
#include "model_internal.h"

#include "model_fixtures.h"
#include "npy_write.h"

#define NIMG 20 /* batches of 8, 8 and 4 */

static char tmpdir[64];
static char xpath[128], ypath[128];

/* NIMG random images for the fixture's input [4, 10, 10] and labels 0..4. */
static struct dfq_data *open_data(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/dfq-analysis-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(xpath, sizeof xpath, "%s/x.npy", tmpdir);
	snprintf(ypath, sizeof ypath, "%s/y.npy", tmpdir);
	static float x[NIMG * 4 * 10 * 10];
	int64_t y[NIMG];
	rng_seed(77);
	for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
		x[i] = (float)nrand();
	for (int i = 0; i < NIMG; i++)
		y[i] = i % 5;
	write_npy(xpath, "<f4", "(20, 4, 10, 10)", x, sizeof x);
	write_npy(ypath, "<i8", "(20,)", y, sizeof y);
	char spec[300];
	snprintf(spec, sizeof spec, "npy:%s,%s", xpath, ypath);
	struct dfq_data_opts o;
	dfq_data_opts_default(&o);
	o.n_calib = 0;
	struct dfq_data *d = NULL;
	struct dfq_error err;
	if (dfq_data_open(spec, &o, &d, &err) != DFQ_OK)
		fail_msg("data: %s", err.msg);
	return d;
}

static void close_data(struct dfq_data *d)
{
	dfq_data_free(d);
	unlink(xpath);
	unlink(ypath);
	rmdir(tmpdir);
}

/* A folded fixture with an executor of the given kind. */
static void open_folded(struct fixture *f, bool fast)
{
	fx_open(f, model_mbv2(0.5, 3), rand_input(4, 10, 10));
	STEP_OK(dfq_model_fold(f->m, NULL, &e_));
	dfq_exec_free(f->ex);
	struct dfq_exec_opts o;
	dfq_exec_opts_default(&o);
	o.fast = fast;
	o.nthreads = 2;
	struct dfq_error err;
	f->ex = dfq_exec_new(f->m->g, &o, &err);
	assert_non_null(f->ex);
}

/* --- incremental runs ----------------------------------------------------------------- */

/* A hook keeping every computed value and counting the calls. */
struct capture {
	struct dfq_tensor **vals; /* g->nvalues */
	int calls;
};

static dfq_status capture_hook(void *user, const struct dfq_graph *g, int vi, struct dfq_tensor *t,
                               struct dfq_error *err)
{
	(void)g;
	struct capture *c = user;
	c->calls++;
	if (c->vals) {
		dfq_tensor_free(c->vals[vi]);
		c->vals[vi] = dfq_tensor_clone(t, err);
	}
	return DFQ_OK;
}

static bool same_bits(const struct dfq_tensor *a, const struct dfq_tensor *b)
{
	return dfq_tensor_same_shape(a, b) &&
	       memcmp(a->data, b->data, (size_t)a->numel * sizeof(float)) == 0;
}

/* Layer li's weights fake-quantized at 4 bits (caller frees). */
static struct dfq_tensor *quantized_weights(const struct dfq_model *m, int li)
{
	const struct dfq_layer *L = &m->layers[li];
	const struct dfq_tensor *w = m->g->values[L->w_vi].init;
	struct dfq_tensor *wq = dfq_tensor_clone(w, NULL);
	assert_non_null(wq);
	struct dfq_qconfig q;
	dfq_qconfig_default(&q);
	q.wbits = 4;
	assert_int_equal(model_quantize_w(L, w, &q, wq, NULL, NULL), DFQ_OK);
	return wq;
}

/* Layer li quantized: a full run, and an incremental one given every value
 * that is not downstream of li from an FP32 run; the two must agree bit for
 * bit (node by node) and the incremental one must skip the nodes upstream. */
static void check_incremental(bool fast)
{
	struct fixture f;
	open_folded(&f, fast);
	struct dfq_model *m = f.m;
	const struct dfq_graph *g = m->g;
	struct dfq_error err;
	struct capture c = {calloc((size_t)g->nvalues, sizeof *c.vals), 0};
	assert_non_null(c.vals);
	/* FP32 values of every node */
	assert_int_equal(dfq_model_exec_prepare(m, f.ex, DFQ_RUN_FP32, &err), DFQ_OK);
	dfq_exec_set_hook(f.ex, capture_hook, &c);
	struct dfq_tensor *fp[1];
	assert_int_equal(dfq_exec_run(f.ex, &f.x, fp, &err), DFQ_OK);
	dfq_exec_set_hook(f.ex, NULL, NULL);
	int li = 3; /* c1's pointwise conv: a block in the middle */
	const struct dfq_layer *L = &m->layers[li];
	struct dfq_tensor *wq = quantized_weights(m, li);
	assert_int_equal(dfq_exec_set_override(f.ex, L->w_vi, wq, &err), DFQ_OK);
	/* the full run with layer li quantized (a hook: node by node when not fast) */
	struct capture cnt = {NULL, 0};
	if (!fast)
		dfq_exec_set_hook(f.ex, capture_hook, &cnt);
	struct dfq_tensor *full[1];
	assert_int_equal(dfq_exec_run(f.ex, &f.x, full, &err), DFQ_OK);
	int full_calls = cnt.calls;
	/* given: every value computed before L's node and read at or after it */
	int given = 0;
	for (int ni = 0; ni < L->node; ni++)
		for (int o = 0; o < g->nodes[ni].noutputs; o++) {
			int vi = g->nodes[ni].outputs[o];
			if (vi < 0 || !c.vals[vi])
				continue;
			assert_int_equal(dfq_exec_set_given(f.ex, vi, c.vals[vi], &err), DFQ_OK);
			given++;
		}
	assert_true(given > 0);
	cnt.calls = 0;
	struct dfq_tensor *inc[1];
	assert_int_equal(dfq_exec_run(f.ex, &f.x, inc, &err), DFQ_OK);
	if (!fast) {
		print_message("node by node: the full run computed %d values, the incremental %d\n",
		              full_calls, cnt.calls);
		assert_true(same_bits(full[0], inc[0]));
		assert_true(cnt.calls > 0 && cnt.calls < full_calls);
		assert_int_equal(full_calls - cnt.calls, given);
	} else {
		/* the given values come from a run node by node: rounding may differ */
		double d = rel_diff(full[0], inc[0]);
		print_message("fused: incremental vs full, max relative difference %.3g\n", d);
		assert_true(d < 1e-5);
	}
	/* the layer's change shows: not the FP32 output */
	assert_false(same_bits(fp[0], inc[0]));
	/* given removed: a full run again */
	dfq_exec_clear_given(f.ex);
	struct dfq_tensor *again[1];
	assert_int_equal(dfq_exec_run(f.ex, &f.x, again, &err), DFQ_OK);
	assert_true(same_bits(full[0], again[0]) || fast);
	/* only computed values can be given */
	assert_int_equal(dfq_exec_set_given(f.ex, g->inputs[0], fp[0], &err), DFQ_ERR_ARG);
	assert_int_equal(dfq_exec_set_given(f.ex, L->w_vi, fp[0], &err), DFQ_ERR_ARG);
	assert_int_equal(dfq_exec_set_given(f.ex, -1, fp[0], &err), DFQ_ERR_ARG);
	model_exec_reset(f.ex);
	for (int vi = 0; vi < g->nvalues; vi++)
		dfq_tensor_free(c.vals[vi]);
	free(c.vals);
	dfq_tensor_free(fp[0]);
	dfq_tensor_free(full[0]);
	dfq_tensor_free(inc[0]);
	dfq_tensor_free(again[0]);
	dfq_tensor_free(wq);
	fx_close(&f);
}

static void test_incremental_node_by_node(void **state)
{
	(void)state;
	check_incremental(false);
}

static void test_incremental_fused(void **state)
{
	(void)state;
	check_incremental(true);
}

/* --- sensitivity ---------------------------------------------------------------------- */

/* Top-1 hits and error sums of full runs over the data with layer li's
 * weights replaced by wq (NULL: FP32) and/or its output on grid act. */
static void full_runs(struct fixture *f, struct dfq_data *d, int li, const struct dfq_tensor *wq,
                      const struct dfq_qparams *act, int64_t *hits, double *sx2, double *se2)
{
	struct dfq_model *m = f->m;
	struct dfq_error err;
	*hits = 0;
	*sx2 = *se2 = 0.0;
	for (int64_t first = 0; first < NIMG; first += 8) {
		int64_t n = NIMG - first < 8 ? NIMG - first : 8;
		int64_t dims[4] = {n, 4, 10, 10}, labels[8];
		struct dfq_tensor *x = dfq_tensor_new(DFQ_DTYPE_F32, 4, dims, NULL);
		assert_int_equal(
		    dfq_data_read(d, DFQ_SPLIT_EVAL, first, n, dfq_tensor_f32(x), labels, &err),
		    DFQ_OK);
		struct dfq_tensor *fp[1], *q[1];
		assert_int_equal(dfq_model_run(m, f->ex, DFQ_RUN_FP32, &x, fp, &err), DFQ_OK);
		assert_int_equal(dfq_model_exec_prepare(m, f->ex, DFQ_RUN_FP32, &err), DFQ_OK);
		if (wq)
			assert_int_equal(dfq_exec_set_override(f->ex, m->layers[li].w_vi, wq, &err),
			                 DFQ_OK);
		if (act)
			assert_int_equal(dfq_exec_set_quant(f->ex, m->layers[li].out_vi, act, &err),
			                 DFQ_OK);
		assert_int_equal(dfq_exec_run(f->ex, &x, q, &err), DFQ_OK);
		int64_t k = q[0]->numel / n;
		for (int64_t i = 0; i < n; i++)
			*hits +=
			    dfq_eval_rank(dfq_tensor_f32(q[0]) + i * k, (int)k, labels[i]) == 0;
		for (int64_t i = 0; i < q[0]->numel; i++) {
			double a = dfq_tensor_f32(fp[0])[i], b = dfq_tensor_f32(q[0])[i];
			*sx2 += a * a;
			*se2 += (b - a) * (b - a);
		}
		model_exec_reset(f->ex);
		dfq_tensor_free(fp[0]);
		dfq_tensor_free(q[0]);
		dfq_tensor_free(x);
	}
}

static int ncalls;
static bool count_progress(void *user, int64_t done, int64_t total, double secs)
{
	(void)secs;
	assert_true(done <= total);
	ncalls++;
	return user == NULL || ncalls < *(int *)user;
}

static void test_sensitivity(void **state)
{
	(void)state;
	struct dfq_data *d = open_data();
	struct fixture f;
	open_folded(&f, false);
	struct dfq_model *m = f.m;
	double sum0 = weights_checksum(m);
	int hist0 = dfq_model_history_count(m);
	struct dfq_qconfig q;
	dfq_qconfig_default(&q);
	q.wbits = 4;
	q.abits = 4;
	struct dfq_analysis_opts o;
	dfq_analysis_opts_default(&o);
	o.batch = 8;
	o.progress = count_progress;
	ncalls = 0;
	struct dfq_sens_result r;
	struct dfq_error err;
	if (dfq_model_sensitivity(m, f.ex, d, &q, &o, &r, &err) != DFQ_OK)
		fail_msg("sensitivity: %s", err.msg);
	assert_false(r.cancelled);
	assert_int_equal(r.n, NIMG);
	assert_int_equal(r.nrows, m->nlayers);
	assert_true(ncalls > 3);
	/* the model is as it was, and so is the executor */
	assert_true(weights_checksum(m) == sum0);
	assert_int_equal(dfq_model_history_count(m), hist0);
	/* each figure equals full runs with that one change */
	int checked = 0;
	for (int li = 0; li < m->nlayers; li++) {
		const struct dfq_sens_row *row = &r.rows[li];
		assert_false(row->skipped);
		assert_true(row->nrecomputed > 0);
		struct dfq_tensor *wq = quantized_weights(m, li);
		int64_t hits;
		double sx2, se2;
		full_runs(&f, d, li, wq, NULL, &hits, &sx2, &se2);
		assert_true(fabs(row->top1[DFQ_SENS_WEIGHTS] - (double)hits / NIMG) < 1e-12);
		double want = dfq_sqnr_from_sums(sx2, se2);
		if (fabs(row->sqnr_db[DFQ_SENS_WEIGHTS] - want) > 1e-9)
			fail_msg("layer %d weights: SQNR %.12g, full runs %.12g", li,
			         row->sqnr_db[DFQ_SENS_WEIGHTS], want);
		if (row->has_act) {
			int pi = model_point_of(m, m->layers[li].out_vi);
			const struct dfq_range *rg = model_point_range(&m->points[pi]);
			struct dfq_qparams g;
			assert_int_equal(dfq_qparams_make(4, q.scheme, rg->lo, rg->hi, &g, NULL),
			                 DFQ_OK);
			full_runs(&f, d, li, NULL, &g, &hits, &sx2, &se2);
			assert_true(
			    fabs(row->sqnr_db[DFQ_SENS_ACT] - dfq_sqnr_from_sums(sx2, se2)) < 1e-9);
			full_runs(&f, d, li, wq, &g, &hits, &sx2, &se2);
			assert_true(fabs(row->sqnr_db[DFQ_SENS_BOTH] -
			                 dfq_sqnr_from_sums(sx2, se2)) < 1e-9);
			assert_true(fabs(row->top1[DFQ_SENS_BOTH] - (double)hits / NIMG) < 1e-12);
			checked++;
		} else {
			assert_true(isnan(row->sqnr_db[DFQ_SENS_ACT]));
			assert_true(row->sqnr_db[DFQ_SENS_BOTH] == row->sqnr_db[DFQ_SENS_WEIGHTS]);
		}
		dfq_tensor_free(wq);
	}
	print_message(
	    "%d layers checked against full runs (%d with an activation grid), %lld runs\n",
	    m->nlayers, checked, (long long)r.runs);
	assert_true(checked > 0);
	/* later layers recompute less */
	assert_true(r.rows[m->nlayers - 1].nrecomputed < r.rows[0].nrecomputed);
	dfq_sens_result_free(&r);

	/* stopped by the progress callback: cancelled, nothing kept */
	int stop_at = 2;
	ncalls = 0;
	o.user = &stop_at;
	assert_int_equal(dfq_model_sensitivity(m, f.ex, d, &q, &o, &r, &err), DFQ_OK);
	assert_true(r.cancelled);
	assert_null(r.rows);
	assert_true(weights_checksum(m) == sum0);
	/* bad requests */
	q.wbits = 1;
	assert_int_equal(dfq_model_sensitivity(m, f.ex, d, &q, NULL, &r, &err), DFQ_ERR_ARG);
	q.wbits = 4;
	o.n = NIMG + 1;
	assert_int_equal(dfq_model_sensitivity(m, f.ex, d, &q, &o, &r, &err), DFQ_ERR_ARG);
	fx_close(&f);

	/* BatchNorm not folded: refused, naming the layer */
	fx_open(&f, model_mbv2(0.5, 3), rand_input(4, 10, 10));
	assert_int_equal(dfq_model_sensitivity(f.m, f.ex, d, &q, NULL, &r, &err), DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "BatchNormalization"));
	fx_close(&f);
	close_data(d);
}

/* --- compare -------------------------------------------------------------------------- */

static void test_compare(void **state)
{
	(void)state;
	struct dfq_data *d = open_data();
	struct fixture f;
	open_folded(&f, true);
	struct dfq_model *m = f.m;
	struct dfq_analysis_opts o;
	dfq_analysis_opts_default(&o);
	o.batch = 8;
	struct dfq_cmp_result r;
	struct dfq_error err;
	/* nothing quantized: every value equals FP32's */
	assert_int_equal(dfq_model_compare(m, f.ex, d, &o, &r, &err), DFQ_OK);
	assert_int_equal(r.n, NIMG);
	assert_true(r.nrows >= m->nlayers);
	for (int i = 0; i < r.nrows; i++) {
		assert_true(isinf(r.rows[i].sqnr_db) && r.rows[i].sqnr_db > 0);
		assert_true(r.rows[i].max_abs == 0.0);
	}
	assert_true(r.top1_fp32 == r.top1_quant);
	dfq_cmp_result_free(&r);
	/* quantized: finite, in graph order, and the model unchanged */
	struct dfq_qconfig q;
	dfq_qconfig_default(&q);
	q.wbits = 4;
	STEP_OK(dfq_model_quantize(m, NULL, &q, NULL, &e_));
	double sum0 = weights_checksum(m);
	int hist0 = dfq_model_history_count(m);
	struct dfq_tensor *y0 = run(&f, DFQ_RUN_QUANT);
	assert_int_equal(dfq_model_compare(m, f.ex, d, &o, &r, &err), DFQ_OK);
	for (int i = 0; i < r.nrows; i++) {
		assert_true(isfinite(r.rows[i].sqnr_db));
		assert_true(r.rows[i].max_abs > 0.0);
		if (i > 0 && r.rows[i].layer >= 0)
			assert_true(r.rows[i].layer > r.rows[i - 1].layer);
	}
	print_message("first layer %.1f dB, last row %.1f dB\n", r.rows[0].sqnr_db,
	              r.rows[r.nrows - 1].sqnr_db);
	dfq_cmp_result_free(&r);
	assert_true(weights_checksum(m) == sum0);
	assert_int_equal(dfq_model_history_count(m), hist0);
	struct dfq_tensor *y1 = run(&f, DFQ_RUN_QUANT);
	assert_true(same_bits(y0, y1));
	dfq_tensor_free(y0);
	dfq_tensor_free(y1);
	fx_close(&f);
	close_data(d);
}

static void test_sqnr_sums(void **state)
{
	(void)state;
	assert_true(isinf(dfq_sqnr_from_sums(1.0, 0.0)) && dfq_sqnr_from_sums(1.0, 0.0) > 0);
	assert_true(fabs(dfq_sqnr_from_sums(100.0, 1.0) - 20.0) < 1e-12);
	assert_true(isnan(dfq_sqnr_from_sums(NAN, 1.0)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_incremental_node_by_node),
	    cmocka_unit_test(test_incremental_fused),
	    cmocka_unit_test(test_sensitivity),
	    cmocka_unit_test(test_compare),
	    cmocka_unit_test(test_sqnr_sums),
	};
	DFQ_RUN_TESTS(tests);
}
