/* test_model.c - the DFQ model core: layers, targets, fold, relu6, equalize, absorb, quantize,
 * ranges, bias correction. */
#include "dfq_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfq/dfq_exec.h"
#include "dfq/dfq_model.h"
#include "dfq/dfq_onnx.h"
#include "model_internal.h"

#include "model_fixtures.h"

/* --- tests: layers and targets ---------------------------------------------------- */

static void test_layers(void **state)
{
	struct fixture f;
	fx_open(&f, model_mbv2(0.0, 1), rand_input(4, 10, 10));
	struct dfq_model *m = f.m;
	assert_int_equal(m->nlayers, 8);
	assert_string_equal(m->layers[0].name, "conv_c0");
	assert_string_equal(m->layers[0].alias, "c0");
	assert_int_equal(m->layers[0].act, DFQ_ACT_RELU6);
	assert_true(m->layers[0].bn_node >= 0);
	assert_true(m->layers[0].has_stats);
	assert_true(m->layers[1].depthwise);
	assert_int_equal(m->layers[1].group, 16);
	assert_int_equal(m->layers[2].act, DFQ_ACT_NONE);
	assert_int_equal(m->layers[7].op, DFQ_OP_GEMM);
	/* every conv got a bias slot */
	for (int i = 0; i < m->nlayers; i++)
		assert_true(m->layers[i].b_vi >= 0);
	/* points: input, 8 layers, the Add, the pool */
	int kinds[5] = {0};
	for (int i = 0; i < m->npoints; i++)
		kinds[m->points[i].kind]++;
	assert_int_equal(kinds[DFQ_APOINT_INPUT], 1);
	assert_int_equal(kinds[DFQ_APOINT_LAYER], 8);
	assert_int_equal(kinds[DFQ_APOINT_ADD], 1);
	assert_int_equal(kinds[DFQ_APOINT_POOL], 1);
	struct dfq_layer_info info;
	assert_int_equal(dfq_model_layer_info(m, 0, &info, NULL), DFQ_OK);
	assert_true(info.wmin < 0.0f && info.wmax > 0.0f);
	assert_true(info.spread > 1.0);
	assert_true(info.has_act_range);
	assert_true(info.act_lo >= 0.0f && info.act_hi <= 6.0f);
	char buf[64];
	assert_string_equal(dfq_steps_str(DFQ_STEP_FOLD | DFQ_STEP_ABSORB, buf, sizeof buf),
	                    "fold,absorb");
	assert_string_equal(dfq_steps_str(0, buf, sizeof buf), "-");
	fx_close(&f);
}

/* dfq_model_parse_targets with one argument. */
static dfq_status parse1(struct dfq_model *m, const char *arg, bool *sel, struct dfq_error *err)
{
	return dfq_model_parse_targets(m, 1, &arg, sel, err);
}

static void test_targets(void **state)
{
	struct fixture f;
	fx_open(&f, model_mbv2(0.0, 1), rand_input(4, 10, 10));
	struct dfq_model *m = f.m;
	bool sel[8];
	struct dfq_error err;
	assert_int_equal(parse1(m, "c0", sel, &err), DFQ_OK);
	assert_true(sel[0] && !sel[1]);
	assert_int_equal(parse1(m, "3", sel, &err), DFQ_OK);
	assert_true(sel[3] && !sel[0]);
	assert_int_equal(parse1(m, "3-5", sel, &err), DFQ_OK);
	assert_true(!sel[2] && sel[3] && sel[4] && sel[5] && !sel[6]);
	const char *d[] = {"1,conv_c4", "fc"};
	assert_int_equal(dfq_model_parse_targets(m, 2, d, sel, &err), DFQ_OK);
	assert_true(sel[1] && sel[4] && sel[7] && !sel[0]);
	assert_int_equal(parse1(m, "all", sel, &err), DFQ_OK);
	for (int i = 0; i < 8; i++)
		assert_true(sel[i]);
	assert_int_equal(parse1(m, "c9", sel, &err), DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "unknown layer 'c9'"));
	assert_non_null(strstr(err.msg, "did you mean"));
	for (int i = 0; i < 8; i++)
		assert_false(sel[i]);
	/* Nothing close: no guess, a pointer to the list instead. */
	assert_int_equal(parse1(m, "xyz", sel, &err), DFQ_ERR_ARG);
	assert_null(strstr(err.msg, "did you mean"));
	assert_non_null(strstr(err.msg, "unknown layer 'xyz'"));
	assert_int_equal(err.remedy, DFQ_REMEDY_LIST);
	assert_int_equal(parse1(m, "FC", sel, &err), DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "did you mean 'fc'?"));
	assert_int_equal(parse1(m, "9", sel, &err), DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "out of range"));
	assert_int_equal(parse1(m, "5-3", sel, &err), DFQ_ERR_ARG);
	assert_int_equal(parse1(m, "1,,2", sel, &err), DFQ_ERR_ARG);
	fx_close(&f);
}

/* --- fold, relu6, equalize, absorb keep the function -------------------------------- */

static void test_fold(void **state)
{
	struct fixture f;
	fx_open(&f, model_mbv2(0.0, 2), rand_input(4, 10, 10));
	struct dfq_tensor *y0 = run(&f, DFQ_RUN_FP32);
	int nnodes = f.m->g->nnodes;
	struct dfq_step_report rep;
	STEP_OK(dfq_model_fold(f.m, &rep, &e_));
	assert_int_equal(rep.nchanged, 7);
	assert_true(rep.has_stats);
	assert_int_equal(f.m->g->nnodes, nnodes - 7);
	assert_true(f.m->folded);
	for (int i = 0; i < f.m->nlayers; i++) {
		assert_int_equal(f.m->layers[i].bn_node, -1);
		if (i < 7) {
			assert_true(f.m->layers[i].has_stats);
			assert_true(f.m->layers[i].steps & DFQ_STEP_FOLD);
		}
	}
	dfq_step_report_free(&rep);
	struct dfq_tensor *y1 = run_close(&f, DFQ_RUN_FP32, y0, 1e-5, "fold");
	/* folding again is a no-op, not an error */
	STEP_OK(dfq_model_fold(f.m, &rep, &e_));
	assert_int_equal(rep.nrows, 0);
	dfq_step_report_free(&rep);
	dfq_tensor_free(y0);
	dfq_tensor_free(y1);
	fx_close(&f);
}

static void test_fold_mlp(void **state)
{
	struct fixture f;
	int64_t d[2] = {BATCH, 12};
	struct dfq_graph *g = model_mlp(3);
	fx_open(&f, g, rand_tensor(2, d));
	assert_int_equal(f.m->nlayers, 3);
	assert_int_equal(f.m->layers[0].op, DFQ_OP_MATMUL);
	assert_true(f.m->layers[0].bias_add_node >= 0);
	assert_int_equal(f.m->layers[0].act, DFQ_ACT_RELU);
	assert_int_equal(f.m->layers[1].w_ostride, 1); /* Gemm transB=0: [in, out] */
	struct dfq_tensor *y0 = run(&f, DFQ_RUN_FP32);
	STEP_OK(dfq_model_fold(f.m, NULL, &e_));
	struct dfq_tensor *y1 = run_close(&f, DFQ_RUN_FP32, y0, 1e-5, "fold");
	struct dfq_step_report rep;
	STEP_OK(dfq_model_equalize(f.m, NULL, NULL, &rep, &e_));
	assert_int_equal(rep.nchanged, 2);
	for (int i = 0; i < rep.nrows; i++) {
		print_message("mlp pair %d: spread %.3g -> %.3g, layer 2 %.3g -> %.3g\n", i,
		              rep.rows[i].before, rep.rows[i].after, rep.rows[i].before2,
		              rep.rows[i].after2);
		assert_true(rep.rows[i].after <= rep.rows[i].before);
	}
	dfq_step_report_free(&rep);
	struct dfq_tensor *y2 = run_close(&f, DFQ_RUN_FP32, y0, 1e-4, "equalize");
	/* absorption without padding and with Gaussian pre-activations (MatMul of
	 * Gaussian inputs): exact unless a value falls below beta - 4.5 gamma */
	STEP_OK(dfq_model_absorb(f.m, NULL, 4.5, &rep, &e_));
	assert_int_equal(rep.nrows, 2);
	assert_true(rep.rows[0].changed);  /* mm1 -> gemm2 */
	assert_false(rep.rows[1].changed); /* gemm2 has no BN statistics */
	dfq_step_report_free(&rep);
	dfq_tensor_free(run_close(&f, DFQ_RUN_FP32, y2, 1e-5, "absorb"));
	/* per-channel quantization of an [in, out] weight */
	struct dfq_qconfig q;
	dfq_qconfig_default(&q);
	q.per_channel = true;
	q.abits = 0;
	STEP_OK(dfq_model_quantize(f.m, NULL, &q, &rep, &e_));
	assert_int_equal(f.m->layers[1].nwqp, 10);
	dfq_step_report_free(&rep);
	struct dfq_tensor *y3 = run(&f, DFQ_RUN_QUANT);
	assert_true(rel_diff(y0, y3) < 0.1);
	dfq_tensor_free(y0);
	dfq_tensor_free(y1);
	dfq_tensor_free(y2);
	dfq_tensor_free(y3);
	fx_close(&f);
}

/* Largest measured activation at the ReLU6 layer outputs. */
static float relu6_max(struct fixture *f)
{
	STEP_OK(measure2(f->m, f->ex, NULL, f->x, NULL, &e_));
	float mx = 0.0f;
	for (int i = 0; i < f->m->npoints; i++) {
		const struct dfq_apoint *p = &f->m->points[i];
		if (p->kind == DFQ_APOINT_LAYER && f->m->layers[p->layer].act == DFQ_ACT_RELU6)
			mx = fmaxf(mx, p->global.hi);
		if (getenv("DFQ_TEST_DEBUG"))
			print_message("point %d %s: data [%g, %g] bn [%g, %g]\n", i,
			              f->m->g->values[p->vi].name, (double)p->global.lo,
			              (double)p->global.hi, (double)p->bn.lo, (double)p->bn.hi);
	}
	return mx;
}

static void test_relu6(void **state)
{
	struct fixture f;
	gamma_hi = 0.5; /* narrow BN outputs: every activation stays below 6 */
	fx_open(&f, model_mbv2(0.0, 4), rand_input(4, 10, 10));
	gamma_hi = 0.9;
	float mx = relu6_max(&f);
	print_message("relu6: largest activation %.3f\n", (double)mx);
	assert_true(mx > 0.0f && mx < 6.0f); /* the model is built to stay below 6 */
	struct dfq_tensor *y0 = run(&f, DFQ_RUN_FP32);
	struct dfq_step_report rep;
	STEP_OK(dfq_model_relu6_to_relu(f.m, NULL, &rep, &e_));
	assert_int_equal(rep.nchanged, 5);
	dfq_step_report_free(&rep);
	for (int i = 0; i < f.m->nlayers; i++)
		assert_true(f.m->layers[i].act != DFQ_ACT_RELU6);
	assert_true(f.m->layers[0].steps & DFQ_STEP_RELU6);
	for (int ni = 0; ni < f.m->g->nnodes; ni++)
		assert_true(f.m->g->nodes[ni].op != DFQ_OP_CLIP);
	struct dfq_tensor *y1 = run_close(&f, DFQ_RUN_FP32, y0, 1e-6, "relu6-to-relu");
	/* the data ranges survived (same tensors) */
	assert_true(f.m->points[1].global.valid);
	dfq_tensor_free(y0);
	dfq_tensor_free(y1);
	fx_close(&f);
}

/* fold + relu6 + equalize on model A; returns the logits before equalizing.  The
 * equalize report goes to rep, or is dropped when rep is NULL. */
static struct dfq_tensor *prepare_equalized(struct fixture *f, double bmu, uint64_t seed,
                                            struct dfq_step_report *rep)
{
	struct dfq_step_report own;
	fx_open(f, model_mbv2(bmu, seed), rand_input(4, 10, 10));
	STEP_OK(dfq_model_fold(f->m, NULL, &e_));
	STEP_OK(dfq_model_relu6_to_relu(f->m, NULL, NULL, &e_));
	struct dfq_tensor *y0 = run(f, DFQ_RUN_FP32);
	STEP_OK(dfq_model_equalize(f->m, NULL, NULL, rep ? rep : &own, &e_));
	if (!rep)
		dfq_step_report_free(&own);
	return y0;
}

static void test_equalize(void **state)
{
	struct fixture f;
	struct dfq_step_report rep;
	struct dfq_tensor *y0 = prepare_equalized(&f, 0.5, 5, &rep);
	/* pairs: c0-c1, c1-c2, c3-c4, c4-c5 (c2 feeds the Add too, c5 the Add) */
	assert_int_equal(rep.nchanged, 4);
	assert_true(rep.rounds >= 2 && rep.rounds <= 20);
	for (int i = 0; i < rep.nrows; i++) {
		const struct dfq_step_row *r = &rep.rows[i];
		assert_true(r->changed);
		/* the layer whose output channels were equalized got a smaller spread */
		assert_true(r->after < r->before);
		assert_true(f.m->layers[r->layer].steps & DFQ_STEP_EQUALIZE);
		assert_true(f.m->layers[r->layer2].steps & DFQ_STEP_EQUALIZE);
	}
	assert_int_equal(rep.rows[0].layer, 0);
	assert_int_equal(rep.rows[0].layer2, 1);
	assert_false(f.m->layers[6].steps & DFQ_STEP_EQUALIZE);
	dfq_step_report_free(&rep);
	struct dfq_tensor *y1 = run_close(&f, DFQ_RUN_FP32, y0, 1e-4, "equalize");
	/* a second call has little left to do */
	STEP_OK(dfq_model_equalize(f.m, NULL, NULL, &rep, &e_));
	assert_true(rep.rounds <= 3);
	dfq_step_report_free(&rep);
	/* selecting one layer equalizes only its pairs */
	struct dfq_equalize_opts o;
	dfq_equalize_opts_default(&o);
	o.range = DFQ_QSCHEME_SYM;
	bool sel[8] = {false};
	sel[4] = true;
	STEP_OK(dfq_model_equalize(f.m, sel, &o, &rep, &e_));
	assert_int_equal(rep.nrows, 2);
	dfq_step_report_free(&rep);
	dfq_tensor_free(y0);
	dfq_tensor_free(y1);
	fx_close(&f);
}

/* A linear layer (no activation) feeding the next layer alone: --chains through
 * pairs it, stop-linear ends the chain there; both keep the function. */
static void test_equalize_chains(void **state)
{
	(void)state;
	for (int mode = 0; mode < 2; mode++) {
		struct fixture f;
		struct dfq_graph *g = graph_begin(41);
		add_block(g, "c0", "x", 3, 12, 3, 1, 1, 0.5);
		add_block(g, "c1", "c0.out", 12, 8, 1, 1, 0, 0.5); /* linear projection */
		add_block(g, "c2", "c1.out", 8, 16, 1, 1, 1, 0.5); /* its only reader */
		add_head(g, "c2.out", 16, 4);
		image_graph_end(g, 3, 6, 6);
		fx_open(&f, g, rand_input(3, 6, 6));
		STEP_OK(dfq_model_fold(f.m, NULL, &e_));
		struct dfq_tensor *y0 = run(&f, DFQ_RUN_FP32);
		struct dfq_equalize_opts o;
		dfq_equalize_opts_default(&o);
		o.chains = mode ? DFQ_EQ_CHAINS_STOP_LINEAR : DFQ_EQ_CHAINS_THROUGH;
		o.range = mode ? DFQ_QSCHEME_SYM : DFQ_QSCHEME_ASYM;
		o.max_rounds = 1000;
		o.tol = 1e-12;
		struct dfq_step_report rep;
		STEP_OK(dfq_model_equalize(f.m, NULL, &o, &rep, &e_));
		printf("  chains %s: %d of %d pairs equalized in %d rounds\n",
		       mode ? "stop-linear" : "through", rep.nchanged, rep.nrows, rep.rounds);
		assert_int_equal(rep.nrows, 2); /* c0-c1 and c1-c2 */
		assert_int_equal(rep.nchanged, mode ? 1 : 2);
		assert_true(rep.rounds < 1000); /* converged */
		assert_int_equal(rep.rows[1].layer, 1);
		assert_int_equal(rep.rows[1].changed, !mode);
		if (mode)
			assert_non_null(strstr(rep.rows[1].note, "stop-linear"));
		/* the projection's successor is untouched when the chain stops */
		assert_int_equal(!!(f.m->layers[2].steps & DFQ_STEP_EQUALIZE), !mode);
		dfq_step_report_free(&rep);
		struct dfq_tensor *y1 = run_close(&f, DFQ_RUN_FP32, y0, 1e-4, "equalize chains");
		dfq_tensor_free(y0);
		dfq_tensor_free(y1);
		/* an unknown chain scope is refused */
		struct dfq_error err;
		o.chains = (dfq_eq_chains)7;
		assert_int_equal(dfq_model_equalize(f.m, NULL, &o, NULL, &err), DFQ_ERR_ARG);
		fx_close(&f);
	}
}

static void test_equalize_refuses(void **state)
{
	struct fixture f;
	fx_open(&f, model_mbv2(0.0, 6), rand_input(4, 10, 10));
	struct dfq_error err;
	double sum0 = weights_checksum(f.m);
	/* BN not folded */
	assert_int_equal(dfq_model_equalize(f.m, NULL, NULL, NULL, &err), DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "ReLU6") ? strstr(err.msg, "ReLU6")
	                                         : strstr(err.msg, "fold"));
	STEP_OK(dfq_model_fold(f.m, NULL, &e_));
	double sum1 = weights_checksum(f.m);
	assert_int_equal(dfq_model_equalize(f.m, NULL, NULL, NULL, &err), DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "ReLU6"));
	assert_int_equal(err.remedy, DFQ_REMEDY_RELU6);
	assert_non_null(strstr(err.msg, "conv_c0"));
	assert_true(weights_checksum(f.m) == sum1);
	assert_true(sum0 != sum1);
	/* clip and quantize before folding are refused too */
	fx_close(&f);
	fx_open(&f, model_mbv2(0.0, 6), rand_input(4, 10, 10));
	struct dfq_qconfig q;
	dfq_qconfig_default(&q);
	assert_int_equal(dfq_model_quantize(f.m, NULL, &q, NULL, &err), DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "BatchNormalization"));
	assert_int_equal(err.remedy, DFQ_REMEDY_FOLD);
	assert_int_equal(dfq_model_clip(f.m, NULL, -1.0f, 1.0f, NULL, &err), DFQ_ERR_ARG);
	assert_int_equal(err.remedy, DFQ_REMEDY_FOLD);
	q.wbits = 1;
	STEP_OK(dfq_model_fold(f.m, NULL, &e_));
	assert_int_equal(dfq_model_quantize(f.m, NULL, &q, NULL, &err), DFQ_ERR_ARG);
	assert_false(f.m->layers[0].quantized);
	assert_int_equal(dfq_model_clip(f.m, NULL, 1.0f, -1.0f, NULL, &err), DFQ_ERR_ARG);
	assert_true(weights_checksum(f.m) == sum1);
	fx_close(&f);
}

static void test_absorb(void **state)
{
	struct fixture f;
	/* large betas: plenty of channels with beta - 3 gamma > 0 */
	struct dfq_tensor *y0 = prepare_equalized(&f, 2.0, 7, NULL);
	struct dfq_tensor *y1 = run_close(&f, DFQ_RUN_FP32, y0, 1e-4, "equalize");
	float top0 = f.m->points[1].bn.hi;
	struct dfq_step_report rep;
	STEP_OK(dfq_model_absorb(f.m, NULL, 3.0, &rep, &e_));
	/* pairs with ReLU between: c0-c1, c1-c2, c3-c4, c4-c5 */
	assert_int_equal(rep.nrows, 4);
	assert_true(rep.nchanged >= 2);
	for (int i = 0; i < rep.nrows; i++) {
		print_message("absorb pair %d: %s; top %.3g -> %.3g, |b2| %.3g -> %.3g\n", i,
		              rep.rows[i].note, rep.rows[i].before, rep.rows[i].after,
		              rep.rows[i].before2, rep.rows[i].after2);
		if (rep.rows[i].changed)
			assert_true(rep.rows[i].after <= rep.rows[i].before);
	}
	dfq_step_report_free(&rep);
	/* the data-free range of the absorbed output shrank */
	assert_true(f.m->points[1].bn.hi < top0);
	struct dfq_tensor *y2 = run(&f, DFQ_RUN_FP32);
	/* Absorption is exact where the ReLU is active.  It moves the output for
	 * pre-activations below beta - 3 gamma (0.13% of a Gaussian; more in the
	 * heavier tails of depthwise outputs) and at the borders of a padded
	 * second conv (its zero padding stands for 0, not -c; the paper ignores
	 * this).  On these 10x10 images a third of the positions are borders:
	 * documented tolerance 5% of the largest logit (measured: about 2%). */
	double d = rel_diff(y1, y2);
	print_message("absorb: max |logit diff| / max |logit| = %.3g\n", d);
	assert_true(d <= 5e-2);
	dfq_tensor_free(y0);
	dfq_tensor_free(y1);
	dfq_tensor_free(y2);
	fx_close(&f);
}

static void test_resnet(void **state)
{
	struct fixture f;
	fx_open(&f, model_resnet(8), rand_input(3, 8, 8));
	struct dfq_tensor *y0 = run(&f, DFQ_RUN_FP32);
	STEP_OK(dfq_model_fold(f.m, NULL, &e_));
	struct dfq_step_report rep;
	STEP_OK(dfq_model_equalize(f.m, NULL, NULL, &rep, &e_));
	/* only a -> b: the stem feeds the Add as well */
	assert_int_equal(rep.nchanged, 1);
	assert_int_equal(rep.rows[0].layer, 1);
	dfq_step_report_free(&rep);
	struct dfq_tensor *y1 = run_close(&f, DFQ_RUN_FP32, y0, 1e-4, "equalize");
	/* the Add point took over the Relu after it */
	int add = -1;
	for (int i = 0; i < f.m->npoints; i++)
		if (f.m->points[i].kind == DFQ_APOINT_ADD)
			add = i;
	assert_true(add >= 0);
	assert_int_equal(f.m->points[add].act, DFQ_ACT_RELU);
	assert_string_equal(f.m->g->values[f.m->points[add].vi].name, "sum.r");
	/* its data-free range: the sum of the two Gaussians, clipped at 0 */
	assert_true(f.m->points[add].bn.valid);
	assert_true(f.m->points[add].bn.lo == 0.0f && f.m->points[add].bn.hi > 0.0f);
	dfq_tensor_free(y0);
	dfq_tensor_free(y1);
	fx_close(&f);
}

static void test_undo_clip(void **state)
{
	/* undo brings back the equalized model exactly; redo the clipped one */
	struct fixture f;
	struct dfq_tensor *y00 = prepare_equalized(&f, 0.5, 9, NULL);
	struct dfq_tensor *y0 = run(&f, DFQ_RUN_FP32);
	dfq_tensor_free(y00);
	STEP_OK(dfq_model_clip(f.m, NULL, -0.05f, 0.05f, NULL, &e_));
	struct dfq_tensor *yc = run(&f, DFQ_RUN_FP32);
	assert_true(rel_diff(y0, yc) > 1e-3);
	int done;
	STEP_OK(dfq_model_undo(f.m, 1, &done, &e_));
	assert_int_equal(done, 1);
	struct dfq_tensor *yu = run_close(&f, DFQ_RUN_FP32, y0, 0.0, "undo of clip");
	assert_int_equal(f.m->layers[2].steps & DFQ_STEP_CLIP, 0);
	STEP_OK(dfq_model_redo(f.m, 1, &done, &e_));
	struct dfq_tensor *yr = run_close(&f, DFQ_RUN_FP32, yc, 0.0, "redo of clip");
	assert_int_equal(f.m->layers[2].steps & DFQ_STEP_CLIP, DFQ_STEP_CLIP);
	dfq_tensor_free(y0);
	dfq_tensor_free(yc);
	dfq_tensor_free(yu);
	dfq_tensor_free(yr);
	fx_close(&f);
}

/* --- quantization ---------------------------------------------------------------- */

static void test_quantize(void **state)
{
	struct fixture f;
	struct dfq_tensor *y0 = prepare_equalized(&f, 0.5, 10, NULL);
	struct dfq_qconfig q;
	dfq_qconfig_default(&q);
	struct dfq_step_report rep;
	STEP_OK(dfq_model_quantize(f.m, NULL, &q, &rep, &e_));
	assert_int_equal(rep.nchanged, 8);
	for (int i = 0; i < rep.nrows; i++)
		assert_true(rep.rows[i].after > 20.0); /* weight SQNR dB */
	dfq_step_report_free(&rep);
	/* no data yet: the model input has no range and stays float */
	int pin = f.m->priv->point_of_value[f.m->g->inputs[0]];
	assert_false(f.m->points[pin].enabled);
	assert_true(f.m->points[1].enabled);
	STEP_OK(dfq_model_set_input_range(f.m, 0, -4.0f, 4.0f, &e_));
	assert_true(f.m->points[pin].enabled);
	STEP_OK(dfq_model_clear_input_range(f.m, 0, &e_));
	assert_false(f.m->points[pin].enabled);
	STEP_OK(dfq_model_set_input_range(f.m, 0, -4.0f, 4.0f, &e_));
	assert_true(f.m->points[pin].enabled);
	for (int li = 0; li < f.m->nlayers; li++) {
		const struct dfq_layer *L = &f.m->layers[li];
		assert_true(L->quantized && L->wq);
		/* at most 2^8 distinct weights, all on the grid */
		const float *w = dfq_tensor_f32(L->wq);
		for (int64_t i = 0; i < L->wq->numel; i++) {
			float c = (w[i] / L->wqp[0].scale) + (float)L->wqp[0].zero_point;
			assert_true(fabsf(c - nearbyintf(c)) < 1e-2f);
		}
	}
	struct dfq_tensor *yq = run(&f, DFQ_RUN_QUANT);
	/* master weights untouched */
	struct dfq_tensor *yf = run_close(&f, DFQ_RUN_FP32, y0, 1e-4, "quantize (FP32 run)");
	double dq = rel_diff(y0, yq);
	print_message("W8A8 per-tensor quantized logits: rel diff %.3g\n", dq);
	assert_true(dq > 0.0 && dq < 0.25);
	/* a 4-bit model is further away */
	q.wbits = 4;
	q.abits = 4;
	STEP_OK(dfq_model_quantize(f.m, NULL, &q, NULL, &e_));
	struct dfq_tensor *y4 = run(&f, DFQ_RUN_QUANT);
	assert_true(rel_diff(y0, y4) > dq);
	/* back to float */
	STEP_OK(dfq_model_dequantize(f.m, NULL, NULL, &e_));
	struct dfq_tensor *yd = run_close(&f, DFQ_RUN_QUANT, y0, 1e-4, "dequantize");
	dfq_tensor_free(y0);
	dfq_tensor_free(yq);
	dfq_tensor_free(yf);
	dfq_tensor_free(y4);
	dfq_tensor_free(yd);
	fx_close(&f);
}

static void test_quantize_constant(void **state)
{
	struct fixture f;
	fx_open(&f, model_mbv2(0.0, 11), NULL);
	STEP_OK(dfq_model_fold(f.m, NULL, &e_));
	/* an all-zero and a constant weight tensor */
	struct dfq_tensor *w0 = f.m->g->values[f.m->layers[2].w_vi].init;
	struct dfq_tensor *w1 = f.m->g->values[f.m->layers[3].w_vi].init;
	memset(w0->data, 0, (size_t)w0->numel * sizeof(float));
	for (int64_t i = 0; i < w1->numel; i++)
		dfq_tensor_f32(w1)[i] = 0.25f;
	int64_t d[4] = {BATCH, 4, 10, 10};
	f.x = dfq_tensor_new(DFQ_DTYPE_F32, 4, d, NULL); /* a constant (zero) input */
	STEP_OK(measure2(f.m, f.ex, NULL, f.x, NULL, &e_));
	STEP_OK(dfq_model_set_range_source(f.m, DFQ_RANGE_MINMAX, &e_));
	for (int pc = 0; pc < 2; pc++) {
		struct dfq_qconfig q;
		dfq_qconfig_default(&q);
		q.per_channel = pc;
		q.bbits = 8;
		STEP_OK(dfq_model_quantize(f.m, NULL, &q, NULL, &e_));
		for (int64_t i = 0; i < w0->numel; i++)
			assert_true(dfq_tensor_f32(f.m->layers[2].wq)[i] == 0.0f);
		for (int64_t i = 0; i < w1->numel; i++)
			assert_true(dfq_tensor_f32(f.m->layers[3].wq)[i] == 0.25f);
		struct dfq_tensor *y = run(&f, DFQ_RUN_QUANT);
		for (int64_t i = 0; i < y->numel; i++)
			assert_true(isfinite(dfq_tensor_f32(y)[i]));
		dfq_tensor_free(y);
		struct dfq_qerr_stats st;
		struct dfq_tensor *eps;
		STEP_OK(dfq_model_weight_error(f.m, 2, NULL, DFQ_QERR_CHANNEL, &eps, &st, &e_));
		assert_true(st.max_abs == 0.0 && !isnan(st.sqnr_db));
		assert_int_equal(eps->numel, f.m->layers[2].cout);
		dfq_tensor_free(eps);
	}
	fx_close(&f);
}

static void test_weight_error(void **state)
{
	struct fixture f;
	fx_open(&f, model_mbv2(0.0, 12), rand_input(4, 10, 10));
	STEP_OK(dfq_model_fold(f.m, NULL, &e_));
	struct dfq_error err;
	assert_int_equal(dfq_model_weight_error(f.m, 0, NULL, DFQ_QERR_SUM, NULL, NULL, &err),
	                 DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "not quantized"));
	struct dfq_qconfig q;
	dfq_qconfig_default(&q);
	struct dfq_qerr_stats s8, s4;
	struct dfq_tensor *e = NULL;
	STEP_OK(dfq_model_weight_error(f.m, 0, &q, DFQ_QERR_SPATIAL, &e, &s8, &e_));
	assert_int_equal(e->ndim, 2);
	assert_int_equal(e->dims[0], 16);
	assert_int_equal(e->dims[1], 4);
	dfq_tensor_free(e);
	q.wbits = 4;
	STEP_OK(dfq_model_weight_error(f.m, 0, &q, DFQ_QERR_NONE, NULL, &s4, &e_));
	assert_true(s8.sqnr_db > s4.sqnr_db + 15.0);
	assert_true(s8.max_abs < s4.max_abs);
	fx_close(&f);
}

/* --- ranges --------------------------------------------------------------------- */

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

static void test_ranges(void **state)
{
	struct fixture f;
	fx_open(&f, model_mbv2(0.0, 13), rand_input(4, 10, 10));
	struct dfq_model *m = f.m;
	/* data-free: beta +- 6 |gamma| clipped by ReLU6 */
	const struct dfq_layer *L = &m->layers[0];
	double lo = INFINITY, hi = -INFINITY;
	for (int64_t c = 0; c < L->cout; c++) {
		lo = fmin(lo, L->beta[c] - 6.0 * fabs(L->gamma[c]));
		hi = fmax(hi, L->beta[c] + 6.0 * fabs(L->gamma[c]));
	}
	const struct dfq_apoint *p = &m->points[1];
	assert_int_equal(p->layer, 0);
	assert_true(p->bn.valid);
	assert_float_equal(p->bn.lo, fmax(lo, 0.0), 1e-5);
	assert_float_equal(p->bn.hi, fmin(hi, 6.0), 1e-5);
	/* a layer without activation is not clipped */
	int p2 = m->priv->point_of_value[m->layers[2].out_vi];
	assert_true(m->points[p2].bn.lo < 0.0f);
	STEP_OK(dfq_model_set_n_sigma(m, 3.0, &e_));
	assert_true(m->points[p2].bn.hi - m->points[p2].bn.lo <
	            p->bn.hi - p->bn.lo + 100.0f); /* recomputed */
	/* from data: the seed's QuantMeasure */
	struct dfq_measure_opts o;
	dfq_measure_opts_default(&o);
	struct dfq_tensor *x2 = rand_input(4, 10, 10);
	for (int64_t i = 0; i < x2->numel; i++)
		dfq_tensor_f32(x2)[i] *= 2.0f;
	STEP_OK(measure2(m, f.ex, &o, f.x, NULL, &e_));
	int pin = m->priv->point_of_value[m->g->inputs[0]];
	const struct dfq_apoint *in = &m->points[pin];
	/* batch 1: the mean over samples of each sample's min/max */
	double smin = 0.0, gmin = INFINITY;
	int64_t per = f.x->numel / BATCH;
	for (int s = 0; s < BATCH; s++) {
		float mn = INFINITY;
		for (int64_t i = 0; i < per; i++)
			mn = fminf(mn, dfq_tensor_f32(f.x)[s * per + i]);
		smin += mn;
		gmin = fmin(gmin, mn);
	}
	smin /= BATCH;
	assert_float_equal(in->minmax.lo, smin, 1e-5);
	assert_float_equal(in->global.lo, gmin, 1e-6);
	assert_true(in->pct.lo >= in->global.lo && in->pct.hi <= in->global.hi);
	float lo1 = in->minmax.lo;
	STEP_OK(measure2(m, f.ex, &o, f.x, x2, &e_));
	double smin2 = 0.0;
	for (int s = 0; s < BATCH; s++) {
		float mn = INFINITY;
		for (int64_t i = 0; i < per; i++)
			mn = fminf(mn, dfq_tensor_f32(x2)[s * per + i]);
		smin2 += mn;
	}
	smin2 /= BATCH;
	/* running = 0.1 running + 0.9 batch */
	assert_float_equal(in->minmax.lo, 0.1 * lo1 + 0.9 * smin2, 1e-5);
	assert_int_equal(in->nbatches, 2);
	assert_int_equal(in->nsamples, 2 * BATCH);
	for (int i = 0; i < m->npoints; i++)
		assert_true(m->points[i].minmax.valid && m->points[i].global.valid);
	/* percentiles are exact order statistics of the batch */
	o.percentile = 90.0;
	STEP_OK(measure2(m, f.ex, &o, f.x, NULL, &e_));
	float *sorted = malloc((size_t)f.x->numel * sizeof *sorted);
	memcpy(sorted, f.x->data, (size_t)f.x->numel * sizeof *sorted);
	qsort(sorted, (size_t)f.x->numel, sizeof *sorted, cmp_float);
	int64_t nx = f.x->numel;
	assert_true(in->pct.hi == sorted[(int64_t)floor(0.9 * (double)(nx - 1))]);
	assert_true(in->pct.lo == sorted[(int64_t)ceil(0.1 * (double)(nx - 1))]);
	free(sorted);
	dfq_measure_opts_default(&o);
	STEP_OK(measure2(m, f.ex, &o, f.x, x2, &e_));
	/* a batch with a NaN is refused and leaves the ranges alone */
	in = &m->points[pin];
	struct dfq_apoint keep = *in;
	dfq_tensor_f32(x2)[5] = NAN;
	struct dfq_error nerr;
	assert_int_equal(measure2(m, f.ex, &o, f.x, x2, &nerr), DFQ_ERR_ARG);
	assert_non_null(strstr(nerr.msg, "NaN"));
	in = &m->points[pin];
	assert_true(memcmp(&keep, in, sizeof keep) == 0);
	dfq_tensor_f32(x2)[5] = 0.0f;
	/* range source and its fallbacks */
	STEP_OK(dfq_model_set_range_source(m, DFQ_RANGE_PERCENTILE, &e_));
	struct dfq_qconfig q;
	dfq_qconfig_default(&q);
	STEP_OK(dfq_model_fold(m, NULL, &e_));
	STEP_OK(dfq_model_quantize(m, NULL, &q, NULL, &e_));
	for (int i = 0; i < m->npoints; i++) {
		assert_true(m->points[i].enabled);
		assert_int_equal(m->points[i].used, DFQ_RANGE_PERCENTILE);
	}
	struct dfq_error err;
	assert_int_equal(dfq_model_set_input_range(m, 0, 1.0f, -1.0f, &err), DFQ_ERR_ARG);
	assert_int_equal(dfq_model_set_n_sigma(m, -1.0, &err), DFQ_ERR_ARG);
	struct dfq_step_report rep;
	STEP_OK(dfq_model_measure_bn(m, &rep, &e_));
	assert_int_equal(rep.nrows, m->npoints);
	assert_int_equal(rep.nchanged, m->npoints - 2); /* all but the input and the logits */
	dfq_step_report_free(&rep);
	dfq_tensor_free(x2);
	fx_close(&f);
}

static void test_clipped_normal(void **state)
{
	const double cases[][4] = {
	    {0.5, 1.0, 0.0, INFINITY}, {-1.0, 0.7, 0.0, INFINITY}, {4.0, 2.0, 0.0, 6.0},
	    {7.0, 1.0, 0.0, 6.0},      {0.0, 3.0, -1.0, 2.0},      {1.0, 0.0, 0.0, 6.0},
	};
	rng_seed(99);
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		double mu = cases[c][0], sd = cases[c][1], a = cases[c][2], b = cases[c][3];
		double mean, var, s = 0.0, s2 = 0.0;
		model_clipped_normal(mu, sd, a, b, &mean, &var);
		const int n = 400000;
		for (int i = 0; i < n; i++) {
			double x = mu + sd * nrand();
			x = x < a ? a : x > b ? b : x;
			s += x;
			s2 += x * x;
		}
		double em = s / n, ev = s2 / n - em * em;
		double se = sqrt(fmax(ev, 1e-12) / n);
		assert_true(fabs(mean - em) <= 5.0 * se + 1e-12);
		assert_true(fabs(var - ev) <= 0.02 * ev + 1e-9);
	}
	/* the paper's ReLU formula */
	double mean, var;
	model_clipped_normal(0.3, 1.7, 0.0, INFINITY, &mean, &var);
	double z = -0.3 / 1.7;
	double paper =
	    1.7 * exp(-0.5 * z * z) / sqrt(2.0 * M_PI) + 0.3 * (1.0 - 0.5 * erfc(-z / M_SQRT2));
	assert_float_equal(mean, paper, 1e-12);
}

/* --- bias correction ---------------------------------------------------------------- */

/* u ~ N(0, 1) -> identity depthwise conv -> BN(gamma, beta; mean 0, var 1)
 * -> ReLU or ReLU6 -> conv (C -> O, 3x3, no padding) -> y.  The BN output
 * is exactly N(beta, gamma^2): the analytic model is right by construction. */
#define BC_C 6
#define BC_O 5
static struct dfq_graph *model_bc(bool relu6, uint64_t seed)
{
	struct dfq_graph *g = graph_begin(seed);
	int64_t c = BC_C, wd0[4] = {BC_C, 1, 1, 1}, wd1[4] = {BC_O, BC_C, 3, 3};
	float ones[BC_C], w1[BC_O * BC_C * 9];
	for (int i = 0; i < BC_C; i++)
		ones[i] = 1.0f;
	g_init(g, "id.weight", 4, wd0, ones);
	const char *i0[2] = {"u", "id.weight"};
	int ni = g_node(g, "Conv", "conv_id", 2, i0, "u1");
	g_attr_i(g, ni, "group", BC_C);
	float gam[BC_C], bet[BC_C], mu[BC_C], var[BC_C];
	for (int i = 0; i < BC_C; i++) {
		gam[i] = (float)(0.5 + 1.5 * urand());
		bet[i] = relu6 ? (float)(3.0 + 3.0 * urand()) : (float)(nrand());
		mu[i] = 0.0f;
		var[i] = 1.0f - 1e-5f;
	}
	g_init(g, "bn.gamma", 1, &c, gam);
	g_init(g, "bn.beta", 1, &c, bet);
	g_init(g, "bn.mean", 1, &c, mu);
	g_init(g, "bn.var", 1, &c, var);
	const char *bi[5] = {"u1", "bn.gamma", "bn.beta", "bn.mean", "bn.var"};
	g_node(g, "BatchNormalization", "bn", 5, bi, "u2");
	add_act(g, "act", relu6, "u2", "u3");
	for (int i = 0; i < BC_O * BC_C * 9; i++)
		w1[i] = (float)(0.3 * nrand() + 0.05);
	g_init(g, "t.weight", 4, wd1, w1);
	const char *i1[2] = {"u3", "t.weight"};
	g_node(g, "Conv", "conv_t", 2, i1, "y");
	int64_t d[4] = {-1, BC_C, 12, 12};
	g_io(g, "u", 4, d, "y");
	assert_int_equal(dfq_graph_finalize(g, NULL), DFQ_OK);
	return g;
}

#define BC_BATCHES 64
struct bc_data {
	struct dfq_tensor *x[BC_BATCHES];
};

/* Fills d with BC_BATCHES random batches [n, BC_C, 12, 12]; bc_data_free frees them. */
static void bc_data_fill(struct bc_data *d, int64_t n)
{
	int64_t dims[4] = {n, BC_C, 12, 12};
	for (int b = 0; b < BC_BATCHES; b++)
		d->x[b] = rand_tensor(4, dims);
}

static void bc_data_free(struct bc_data *d)
{
	for (int b = 0; b < BC_BATCHES; b++)
		dfq_tensor_free(d->x[b]);
}

static dfq_status bc_next(void *user, int64_t index, const struct dfq_tensor **x,
                          struct dfq_error *err)
{
	struct bc_data *d = user;
	*x = index < BC_BATCHES ? d->x[index] : NULL;
	return DFQ_OK;
}

/* Per output channel mean of (y_quant - y_fp32) over all batches; returns the max |.|. */
static double bc_mean_error(struct fixture *f, struct bc_data *d)
{
	double acc[BC_O] = {0};
	int64_t cnt = 0;
	for (int b = 0; b < BC_BATCHES; b++) {
		f->x = d->x[b];
		struct dfq_tensor *yf = run(f, DFQ_RUN_FP32);
		struct dfq_tensor *yq = run(f, DFQ_RUN_QUANT);
		int64_t sp = yf->dims[2] * yf->dims[3];
		for (int64_t n = 0; n < yf->dims[0]; n++)
			for (int o = 0; o < BC_O; o++)
				for (int64_t i = 0; i < sp; i++) {
					int64_t at = (n * BC_O + o) * sp + i;
					acc[o] +=
					    (double)dfq_tensor_f32(yq)[at] - dfq_tensor_f32(yf)[at];
				}
		cnt += yf->dims[0] * sp;
		dfq_tensor_free(yf);
		dfq_tensor_free(yq);
	}
	f->x = NULL;
	double mx = 0.0;
	for (int o = 0; o < BC_O; o++)
		mx = fmax(mx, fabs(acc[o] / (double)cnt));
	return mx;
}

static void bc_case(bool relu6, bool empirical)
{
	struct fixture f;
	fx_open(&f, model_bc(relu6, relu6 ? 21 : 20), NULL);
	struct bc_data d;
	rng_seed(77);
	bc_data_fill(&d, 8);
	STEP_OK(dfq_model_fold(f.m, NULL, &e_));
	/* 3-bit weights of the target conv only, no activation quantization */
	struct dfq_qconfig q;
	dfq_qconfig_default(&q);
	q.wbits = 3;
	q.abits = 0;
	bool sel[2] = {false, true};
	STEP_OK(dfq_model_quantize(f.m, sel, &q, NULL, &e_));
	/* the first conv at 16 bits: quantized (so bias correction looks at it) but
	 * close enough to exact not to shift the statistics downstream */
	q.wbits = 16;
	sel[0] = true;
	sel[1] = false;
	STEP_OK(dfq_model_quantize(f.m, sel, &q, NULL, &e_));
	double before = bc_mean_error(&f, &d);
	struct dfq_step_report rep;
	if (empirical)
		STEP_OK(dfq_model_biascorr_empirical(f.m, f.ex, NULL, bc_next, &d, &rep, &e_));
	else
		STEP_OK(dfq_model_biascorr_analytic(f.m, NULL, &rep, &e_));
	/* the first conv reads the model input: no statistics, left as it is */
	assert_int_equal(rep.nrows, 2);
	if (!empirical) {
		assert_false(rep.rows[0].changed);
		assert_non_null(strstr(rep.rows[0].note, "no BN statistics"));
	}
	assert_true(rep.rows[1].changed);
	assert_true(f.m->layers[1].steps & DFQ_STEP_BIASCORR);
	dfq_step_report_free(&rep);
	double after = bc_mean_error(&f, &d);
	print_message("bias correction (%s, %s): max |mean output error| %.4g -> %.4g\n",
	              relu6 ? "relu6" : "relu", empirical ? "empirical" : "analytic", before,
	              after);
	assert_true(before > 0.05);
	/* analytic: sampling noise only (about 1% of before here); empirical: exact on
	 * the data it measured */
	assert_true(after < (empirical ? 1e-4 : 0.03 * before));
	/* back to float: the correction made for the quantized weights goes, and
	 * the step says so */
	STEP_OK(dfq_model_dequantize(f.m, NULL, &rep, &e_));
	assert_int_equal(rep.ndropped, empirical ? 2 : 1); /* empirical: the 16-bit conv too */
	assert_null(f.m->layers[1].bcorr_q);
	assert_false(f.m->layers[1].steps & DFQ_STEP_BIASCORR);
	dfq_step_report_free(&rep);
	bc_data_free(&d);
	fx_close(&f);
}

static void test_biascorr_relu(void **state)
{
	bc_case(false, false);
}

static void test_biascorr_relu6(void **state)
{
	bc_case(true, false);
}

static void test_biascorr_empirical(void **state)
{
	bc_case(false, true);
}

/* A batch source that fails on its 60th call (in the second layer stage). */
static int fail_calls;
static dfq_status bc_fail(void *user, int64_t index, const struct dfq_tensor **x,
                          struct dfq_error *err)
{
	if (++fail_calls == 60)
		return dfq_error_set(err, DFQ_ERR_IO, "batch %lld could not be read",
		                     (long long)index);
	return bc_next(user, index, x, err);
}

static void test_biascorr_empirical_fails(void **state)
{
	struct fixture f;
	fx_open(&f, model_bc(false, 31), NULL);
	struct bc_data d;
	bc_data_fill(&d, 2);
	STEP_OK(dfq_model_fold(f.m, NULL, &e_));
	struct dfq_qconfig q;
	dfq_qconfig_default(&q);
	q.wbits = 4;
	STEP_OK(dfq_model_quantize(f.m, NULL, &q, NULL, &e_));
	STEP_OK(dfq_model_biascorr_analytic(f.m, NULL, NULL, &e_));
	float keep[BC_O];
	memcpy(keep, f.m->layers[1].bcorr_q, sizeof keep);
	unsigned steps0 = f.m->layers[0].steps;
	fail_calls = 0;
	struct dfq_error err;
	assert_int_equal(dfq_model_biascorr_empirical(f.m, f.ex, NULL, bc_fail, &d, NULL, &err),
	                 DFQ_ERR_IO);
	assert_non_null(strstr(err.msg, "could not be read"));
	/* the first layer was corrected before the failure: put back */
	assert_null(f.m->layers[0].bcorr_q);
	assert_int_equal(f.m->layers[0].steps, steps0);
	assert_memory_equal(keep, f.m->layers[1].bcorr_q, sizeof keep);
	bc_data_free(&d);
	fx_close(&f);
}

static void test_clip_biascorr(void **state)
{
	struct fixture f;
	fx_open(&f, model_bc(false, 30), NULL);
	STEP_OK(dfq_model_fold(f.m, NULL, &e_));
	bool sel[2] = {false, true};
	struct dfq_step_report rep;
	STEP_OK(dfq_model_clip(f.m, sel, -0.2f, 0.2f, &rep, &e_));
	assert_true(rep.rows[0].extra > 10.0); /* weights clipped */
	assert_true(rep.rows[0].after2 <= 0.2 + 1e-6);
	dfq_step_report_free(&rep);
	assert_non_null(f.m->layers[1].w_ref);
	STEP_OK(dfq_model_biascorr_analytic(f.m, sel, &rep, &e_));
	assert_true(rep.rows[0].changed);
	dfq_step_report_free(&rep);
	/* the clipped FP32 model gets the correction of its clipping error */
	assert_non_null(f.m->layers[1].bcorr_fp);
	assert_non_null(f.m->layers[1].b_run_fp);
	fx_close(&f);
}

static void test_no_bn(void **state)
{
	/* a model that came folded: no statistics, steps say so and do not fail */
	struct fixture f;
	fx_open(&f, model_mbv2(0.0, 14), rand_input(4, 10, 10));
	STEP_OK(dfq_model_fold(f.m, NULL, &e_));
	/* take the folded graph out of the model: a model that arrives folded */
	struct dfq_graph *g = f.m->g;
	f.m->g = NULL;
	struct fixture h;
	fx_open(&h, g, NULL);
	assert_false(h.m->has_stats);
	struct dfq_step_report rep;
	STEP_OK(dfq_model_fold(h.m, &rep, &e_));
	assert_false(rep.has_stats);
	assert_non_null(strstr(rep.summary, "no BN statistics"));
	dfq_step_report_free(&rep);
	for (int i = 0; i < h.m->npoints; i++)
		assert_false(h.m->points[i].bn.valid);
	STEP_OK(dfq_model_relu6_to_relu(h.m, NULL, NULL, &e_));
	STEP_OK(dfq_model_equalize(h.m, NULL, NULL, NULL, &e_));
	STEP_OK(dfq_model_absorb(h.m, NULL, 3.0, &rep, &e_));
	assert_int_equal(rep.nchanged, 0);
	assert_non_null(strstr(rep.rows[0].note, "no BN statistics"));
	dfq_step_report_free(&rep);
	struct dfq_qconfig q;
	dfq_qconfig_default(&q);
	STEP_OK(dfq_model_quantize(h.m, NULL, &q, &rep, &e_));
	dfq_step_report_free(&rep);
	/* no statistics and no data: only the (given) input range; the rest stay float */
	int nfloat = 0;
	for (int i = 0; i < h.m->npoints; i++)
		nfloat += h.m->points[i].bits > 0 && !h.m->points[i].enabled;
	assert_true(nfloat > 0);
	STEP_OK(dfq_model_biascorr_analytic(h.m, NULL, &rep, &e_));
	assert_int_equal(rep.nchanged, 0);
	dfq_step_report_free(&rep);
	fx_close(&h);
	fx_close(&f);
}

/* --- the real sample models ---------------------------------------------------------- */

static const char *samples_dir(void)
{
	static char buf[1024];
	const char *d = getenv("DFQ_TEST_SAMPLES");
	if (d)
		return d;
	const char *top = getenv("top_srcdir");
	snprintf(buf, sizeof buf, "%s/samples", top ? top : ".");
	return buf;
}

static void sample_case(const char *file)
{
	char path[1200];
	snprintf(path, sizeof path, "%s/%s", samples_dir(), file);
	if (access(path, R_OK) != 0) {
		dfq_skip("%s not found (the sample models are trained by scripts/train-samples)\n",
		         path);
	}
	struct dfq_graph *g;
	struct dfq_error err;
	if (dfq_onnx_load_file(path, &g, &err) != DFQ_OK)
		fail_msg("%s", err.msg);
	struct fixture f;
	rng_seed(5);
	fx_open(&f, g, rand_input(1, 28, 28));
	struct dfq_tensor *y0 = run(&f, DFQ_RUN_FP32);
	assert_true(f.m->nlayers >= 10);
	assert_true(f.m->has_stats);
	float mx = relu6_max(&f);
	STEP_OK(dfq_model_fold(f.m, NULL, &e_));
	struct dfq_tensor *y1 = run_close(&f, DFQ_RUN_FP32, y0, 1e-4, "fold");
	STEP_OK(dfq_model_relu6_to_relu(f.m, NULL, NULL, &e_));
	struct dfq_tensor *y2 = run(&f, DFQ_RUN_FP32);
	if (mx < 6.0f)
		assert_true(rel_diff(y1, y2) <= 1e-5);
	else
		print_message("%s: activations reach %.2f > 6: ReLU6 -> ReLU changes the "
		              "logits by %.3g (not checked)\n",
		              file, (double)mx, rel_diff(y1, y2));
	struct dfq_step_report rep;
	STEP_OK(dfq_model_equalize(f.m, NULL, NULL, &rep, &e_));
	assert_true(rep.nchanged > 0);
	int lowered = 0;
	for (int i = 0; i < rep.nrows; i++)
		lowered += rep.rows[i].after < rep.rows[i].before;
	print_message("%s: equalized %d pairs in %d rounds, %d with a lower spread\n", file,
	              rep.nchanged, rep.rounds, lowered);
	dfq_step_report_free(&rep);
	struct dfq_tensor *y3 = run_close(&f, DFQ_RUN_FP32, y2, 1e-4, "equalize");
	STEP_OK(dfq_model_absorb(f.m, NULL, 3.0, NULL, &e_));
	struct dfq_tensor *y4 = run(&f, DFQ_RUN_FP32);
	double da = rel_diff(y3, y4);
	print_message("%s: absorb moved the logits by %.3g of their max\n", file, da);
	assert_true(da <= 5e-2);
	struct dfq_qconfig q;
	dfq_qconfig_default(&q);
	STEP_OK(dfq_model_set_input_range(f.m, 0, -1.0f, 3.0f, &e_));
	STEP_OK(dfq_model_quantize(f.m, NULL, &q, NULL, &e_));
	STEP_OK(dfq_model_biascorr_analytic(f.m, NULL, NULL, &e_));
	struct dfq_tensor *y5 = run(&f, DFQ_RUN_QUANT);
	print_message("%s: W8A8 after DFQ: logits rel diff %.3g\n", file, rel_diff(y4, y5));
	dfq_tensor_free(y0);
	dfq_tensor_free(y1);
	dfq_tensor_free(y2);
	dfq_tensor_free(y3);
	dfq_tensor_free(y4);
	dfq_tensor_free(y5);
	fx_close(&f);
}

static void test_sample_mobilenet(void **state)
{
	sample_case("mobilenetv2_fmnist.onnx");
}

static void test_sample_resnet(void **state)
{
	sample_case("resnet_fmnist.onnx");
}

/* Layer aliases of a default PyTorch export: the module path from the node's scopes. */
static void test_module_path(void **state)
{
	(void)state;
	char b[64];
	assert_true(
	    model_module_path("/features/features.1/conv/conv.0/conv.0.0/Conv", b, sizeof b));
	assert_string_equal(b, "features.1.conv.0.0");
	assert_true(model_module_path("/features/features.0/features.0.0/Conv", b, sizeof b));
	assert_string_equal(b, "features.0.0");
	assert_true(model_module_path("/conv1/conv/Conv", b, sizeof b));
	assert_string_equal(b, "conv1.conv");
	assert_true(model_module_path("/fc/Gemm", b, sizeof b));
	assert_string_equal(b, "fc");
	/* not a scope path, or too long */
	assert_false(model_module_path("Conv_0", b, sizeof b));
	assert_false(model_module_path("/Conv", b, sizeof b));
	assert_false(model_module_path("//Conv", b, sizeof b));
	assert_false(model_module_path("/features/features.1/Conv", b, 8));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_layers),
	    cmocka_unit_test(test_targets),
	    cmocka_unit_test(test_fold),
	    cmocka_unit_test(test_fold_mlp),
	    cmocka_unit_test(test_relu6),
	    cmocka_unit_test(test_equalize),
	    cmocka_unit_test(test_equalize_chains),
	    cmocka_unit_test(test_equalize_refuses),
	    cmocka_unit_test(test_absorb),
	    cmocka_unit_test(test_resnet),
	    cmocka_unit_test(test_undo_clip),
	    cmocka_unit_test(test_quantize),
	    cmocka_unit_test(test_quantize_constant),
	    cmocka_unit_test(test_weight_error),
	    cmocka_unit_test(test_ranges),
	    cmocka_unit_test(test_clipped_normal),
	    cmocka_unit_test(test_biascorr_relu),
	    cmocka_unit_test(test_biascorr_relu6),
	    cmocka_unit_test(test_biascorr_empirical),
	    cmocka_unit_test(test_biascorr_empirical_fails),
	    cmocka_unit_test(test_clip_biascorr),
	    cmocka_unit_test(test_no_bn),
	    cmocka_unit_test(test_sample_mobilenet),
	    cmocka_unit_test(test_sample_resnet),
	    cmocka_unit_test(test_module_path),
	};
	DFQ_RUN_TESTS(tests);
}
