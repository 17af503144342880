/* test_history.c - every step a transaction: undo and redo restore the model exactly, a step
 * that fails at any of its allocations (each made to fail in turn) leaves the model as it was,
 * and steps that depend on each other stay consistent.
 *
 * The binary is linked with -Wl,--wrap for the allocation functions, so that the k-th
 * allocation of the core (and of this file) can be made to fail. */
#include "model_fixtures.h"

#include <errno.h>

#include "dfq/dfq_quant.h"

/* --- allocation failure injection --------------------------------------------------------- */

/* The linker sends the core's calls here (prototypes for -Wmissing-prototypes). */
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t sz);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n);
int __wrap_posix_memalign(void **p, size_t a, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t sz);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);

/* countdown > 0: the allocation that brings it to 0 fails (one only). */
static long countdown;
static bool fired;

static bool fail_now(void)
{
	if (countdown > 0 && --countdown == 0) {
		fired = true;
		return true;
	}
	return false;
}

void *__wrap_malloc(size_t n)
{
	return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t sz)
{
	return fail_now() ? NULL : __real_calloc(n, sz);
}

void *__wrap_realloc(void *p, size_t n)
{
	return fail_now() ? NULL : __real_realloc(p, n);
}

void *__wrap_aligned_alloc(size_t a, size_t n)
{
	return fail_now() ? NULL : __real_aligned_alloc(a, n);
}

int __wrap_posix_memalign(void **p, size_t a, size_t n)
{
	return fail_now() ? ENOMEM : __real_posix_memalign(p, a, n);
}

char *__wrap_strdup(const char *s)
{
	return fail_now() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
	return fail_now() ? NULL : __real_strndup(s, n);
}

/* --- a fingerprint of everything a step can change --------------------------------------- */

struct fp {
	uint64_t h;
};

static void fp_bytes(struct fp *f, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		f->h ^= b[i];
		f->h *= 1099511628211ULL;
	}
}

#define FP(f, x) fp_bytes(f, &(x), sizeof(x))

static void fp_str(struct fp *f, const char *s)
{
	fp_bytes(f, s ? s : "(null)", strlen(s ? s : "(null)") + 1);
}

static void fp_tensor(struct fp *f, const struct dfq_tensor *t)
{
	int present = t != NULL;
	FP(f, present);
	if (!t)
		return;
	FP(f, t->ndim);
	fp_bytes(f, t->dims, (size_t)t->ndim * sizeof t->dims[0]);
	fp_bytes(f, t->data, (size_t)t->numel * dfq_dtype_size(t->dtype));
}

static void fp_floats(struct fp *f, const float *x, int64_t n)
{
	int present = x != NULL;
	FP(f, present);
	if (x)
		fp_bytes(f, x, (size_t)n * sizeof *x);
}

static void fp_range(struct fp *f, const struct dfq_range *r)
{
	FP(f, r->valid);
	if (r->valid) {
		FP(f, r->lo);
		FP(f, r->hi);
	}
}

static void fp_qconfig(struct fp *f, const struct dfq_qconfig *q)
{
	FP(f, q->wbits);
	FP(f, q->abits);
	FP(f, q->bbits);
	FP(f, q->scheme);
	FP(f, q->per_channel);
}

static void fp_qparams(struct fp *f, const struct dfq_qparams *q)
{
	FP(f, q->scale);
	FP(f, q->zero_point);
	FP(f, q->qmin);
	FP(f, q->qmax);
}

static void fp_graph(struct fp *f, const struct dfq_graph *g)
{
	FP(f, g->nnodes);
	for (int i = 0; i < g->nnodes; i++) {
		const struct dfq_node *n = &g->nodes[i];
		fp_str(f, n->name);
		fp_str(f, n->op_type);
		FP(f, n->op);
		fp_bytes(f, n->inputs, (size_t)n->ninputs * sizeof *n->inputs);
		fp_bytes(f, n->outputs, (size_t)n->noutputs * sizeof *n->outputs);
		FP(f, n->nattrs);
	}
	FP(f, g->nvalues);
	for (int i = 0; i < g->nvalues; i++) {
		const struct dfq_value *v = &g->values[i];
		fp_str(f, v->name);
		fp_tensor(f, v->init);
		FP(f, v->producer);
		FP(f, v->nconsumers);
		FP(f, v->shape.ndim);
		if (v->shape.ndim > 0)
			fp_bytes(f, v->shape.dims, (size_t)v->shape.ndim * sizeof v->shape.dims[0]);
	}
}

static void fp_layer(struct fp *f, const struct dfq_layer *L)
{
	fp_str(f, L->name);
	fp_str(f, L->alias);
	FP(f, L->index);
	FP(f, L->node);
	FP(f, L->op);
	FP(f, L->w_vi);
	FP(f, L->b_vi);
	FP(f, L->bias_add_node);
	FP(f, L->bn_node);
	FP(f, L->act_node);
	FP(f, L->act);
	FP(f, L->in_vi);
	FP(f, L->lin_vi);
	FP(f, L->out_vi);
	FP(f, L->cout);
	FP(f, L->cin);
	FP(f, L->group);
	FP(f, L->has_stats);
	if (L->has_stats) {
		fp_floats(f, L->gamma, L->cout);
		fp_floats(f, L->beta, L->cout);
	}
	FP(f, L->steps);
	FP(f, L->editable);
	FP(f, L->quantized);
	fp_qconfig(f, &L->q);
	FP(f, L->pin.what);
	FP(f, L->pin.wbits);
	FP(f, L->pin.abits);
	fp_tensor(f, L->wq);
	FP(f, L->nwqp);
	for (int i = 0; L->wqp && i < L->nwqp; i++)
		fp_qparams(f, &L->wqp[i]);
	fp_floats(f, L->bcorr_q, L->cout);
	fp_floats(f, L->bcorr_fp, L->cout);
	FP(f, L->bcorr_empirical);
	fp_tensor(f, L->w_ref);
	fp_tensor(f, L->b_run_q);
	fp_tensor(f, L->b_run_fp);
}

static void fp_point(struct fp *f, const struct dfq_apoint *p)
{
	FP(f, p->vi);
	FP(f, p->kind);
	FP(f, p->layer);
	FP(f, p->act);
	fp_range(f, &p->bn);
	fp_range(f, &p->given);
	fp_range(f, &p->minmax);
	fp_range(f, &p->global);
	fp_range(f, &p->pct);
	FP(f, p->nbatches);
	FP(f, p->nsamples);
	FP(f, p->enabled);
	FP(f, p->bits);
	FP(f, p->used);
	if (p->enabled)
		fp_qparams(f, &p->qp);
}

static uint64_t fingerprint(const struct dfq_model *m)
{
	struct fp f = {14695981039346656037ULL};
	fp_graph(&f, m->g);
	FP(&f, m->nlayers);
	for (int i = 0; i < m->nlayers; i++)
		fp_layer(&f, &m->layers[i]);
	FP(&f, m->npoints);
	for (int i = 0; i < m->npoints; i++)
		fp_point(&f, &m->points[i]);
	FP(&f, m->has_stats);
	FP(&f, m->folded);
	fp_qconfig(&f, &m->aux_q);
	FP(&f, m->aux_enabled);
	FP(&f, m->data_stale);
	FP(&f, m->range_src);
	FP(&f, m->n_sigma);
	for (int vi = 0; vi < m->g->nvalues; vi++) {
		int pi = m->priv->point_of_value[vi];
		FP(&f, pi);
	}
	return f.h;
}

/* --- fixtures ----------------------------------------------------------------------------- */

/* A MobileNetV2-like model with an executor on one thread (the injection
 * counts allocations, so they must come in a fixed order). */
static void open1(struct fixture *f, double bmu, uint64_t seed)
{
	struct dfq_error err;
	f->m = dfq_model_new(model_mbv2(bmu, seed), &err);
	if (!f->m)
		fail_msg("dfq_model_new: %s", err.msg);
	struct dfq_exec_opts o;
	dfq_exec_opts_default(&o);
	o.nthreads = 1;
	f->ex = dfq_exec_new(f->m->g, &o, &err);
	assert_non_null(f->ex);
	f->x = rand_input(4, 10, 10);
}

/* Bit-identical outputs. */
static void assert_same(const struct dfq_tensor *a, const struct dfq_tensor *b, const char *what)
{
	assert_true(dfq_tensor_same_shape(a, b));
	if (memcmp(a->data, b->data, (size_t)a->numel * sizeof(float)) != 0)
		fail_msg("%s: outputs differ (max rel diff %.3g)", what, rel_diff(a, b));
}

static struct dfq_qconfig qbits(int wbits, int abits)
{
	struct dfq_qconfig q;
	dfq_qconfig_default(&q);
	q.wbits = wbits;
	q.abits = abits;
	return q;
}

/* --- undo and redo ----------------------------------------------------------------------- */

/* The pipeline of the issue: five steps, five undos back to the model as
 * loaded, five redos to the model after them, bit for bit. */
static void test_undo_redo_pipeline(void **state)
{
	struct fixture f;
	open1(&f, 0.5, 21);
	uint64_t h0 = fingerprint(f.m);
	struct dfq_tensor *y0 = run(&f, DFQ_RUN_FP32);
	STEP_OK(dfq_model_fold(f.m, NULL, &e_));
	STEP_OK(dfq_model_relu6_to_relu(f.m, NULL, NULL, &e_));
	STEP_OK(dfq_model_equalize(f.m, NULL, NULL, NULL, &e_));
	STEP_OK(dfq_model_absorb(f.m, NULL, 3.0, NULL, &e_));
	struct dfq_qconfig q = qbits(4, 8);
	STEP_OK(dfq_model_quantize(f.m, NULL, &q, NULL, &e_));
	STEP_OK(dfq_model_biascorr_analytic(f.m, NULL, NULL, &e_));
	uint64_t h1 = fingerprint(f.m);
	struct dfq_tensor *y1 = run(&f, DFQ_RUN_QUANT);
	assert_int_equal(dfq_model_history_count(f.m), 6);
	assert_int_equal(dfq_model_history_applied(f.m), 6);
	struct dfq_history_entry e;
	STEP_OK(dfq_model_history_entry(f.m, 1, &e, &e_));
	assert_string_equal(e.label, "relu6-to-relu");
	assert_true(e.applied && e.ntouched > 0);

	int done;
	STEP_OK(dfq_model_undo(f.m, 5, &done, &e_));
	assert_int_equal(done, 5);
	STEP_OK(dfq_model_undo(f.m, 5, &done, &e_));
	assert_int_equal(done, 1); /* only the fold was left */
	assert_true(fingerprint(f.m) == h0);
	struct dfq_tensor *yu = run(&f, DFQ_RUN_FP32);
	assert_same(y0, yu, "after undoing everything");
	STEP_OK(dfq_model_history_entry(f.m, 0, &e, &e_));
	assert_false(e.applied);

	STEP_OK(dfq_model_redo(f.m, 100, &done, &e_));
	assert_int_equal(done, 6);
	assert_true(fingerprint(f.m) == h1);
	struct dfq_tensor *yr = run(&f, DFQ_RUN_QUANT);
	assert_same(y1, yr, "after redoing everything");

	/* and once more through the middle */
	STEP_OK(dfq_model_undo(f.m, 3, &done, &e_));
	STEP_OK(dfq_model_redo(f.m, 3, &done, &e_));
	assert_true(fingerprint(f.m) == h1);
	dfq_tensor_free(y0);
	dfq_tensor_free(y1);
	dfq_tensor_free(yu);
	dfq_tensor_free(yr);
	fx_close(&f);
}

/* A new step after undo ends the undone branch; settings stay through undo. */
static void test_history_branch(void **state)
{
	struct fixture f;
	open1(&f, 0.5, 22);
	STEP_OK(dfq_model_fold(f.m, NULL, &e_));
	struct dfq_qconfig q = qbits(8, 8);
	STEP_OK(dfq_model_quantize(f.m, NULL, &q, NULL, &e_));
	STEP_OK(dfq_model_clip(f.m, NULL, -1.0f, 1.0f, NULL, &e_));
	int done;
	STEP_OK(dfq_model_undo(f.m, 2, &done, &e_));
	STEP_OK(dfq_model_set_n_sigma(f.m, 3.0, &e_));
	q.wbits = 6;
	STEP_OK(dfq_model_quantize(f.m, NULL, &q, NULL, &e_));
	assert_int_equal(dfq_model_history_count(f.m), 2);
	STEP_OK(dfq_model_redo(f.m, 1, &done, &e_));
	assert_int_equal(done, 0);
	STEP_OK(dfq_model_undo(f.m, 1, &done, &e_));
	assert_true(f.m->n_sigma == 3.0); /* a setting, not a step */
	assert_false(f.m->layers[0].quantized);
	/* a transaction inside a transaction is a mistake */
	struct dfq_error err;
	STEP_OK(dfq_model_begin(f.m, &e_));
	assert_int_equal(dfq_model_begin(f.m, &err), DFQ_ERR_INTERNAL);
	assert_int_equal(dfq_model_undo(f.m, 1, &done, &err), DFQ_ERR_INTERNAL);
	dfq_model_rollback(f.m);
	fx_close(&f);
}

/* Several calls, one entry; a failure inside is rolled back by the caller. */
static void test_explicit_transaction(void **state)
{
	struct fixture f;
	open1(&f, 0.5, 23);
	uint64_t h0 = fingerprint(f.m);
	STEP_OK(dfq_model_begin(f.m, &e_));
	STEP_OK(dfq_model_fold(f.m, NULL, &e_));
	struct dfq_qconfig q = qbits(1, 8);
	struct dfq_error err;
	assert_int_equal(dfq_model_quantize(f.m, NULL, &q, NULL, &err), DFQ_ERR_ARG);
	dfq_model_rollback(f.m);
	assert_true(fingerprint(f.m) == h0);
	assert_int_equal(dfq_model_history_count(f.m), 0);
	STEP_OK(dfq_model_begin(f.m, &e_));
	STEP_OK(dfq_model_fold(f.m, NULL, &e_));
	q.wbits = 8;
	STEP_OK(dfq_model_quantize(f.m, NULL, &q, NULL, &e_));
	STEP_OK(dfq_model_commit(f.m, "quantize all", NULL, NULL, &e_));
	assert_int_equal(dfq_model_history_count(f.m), 1);
	struct dfq_history_entry e;
	STEP_OK(dfq_model_history_entry(f.m, 0, &e, &e_));
	assert_string_equal(e.label, "quantize all");
	assert_int_equal(e.ntouched, f.m->nlayers);
	int done;
	STEP_OK(dfq_model_undo(f.m, 1, &done, &e_));
	assert_true(fingerprint(f.m) == h0);
	fx_close(&f);
}

/* --- steps that depend on each other --------------------------------------------------- */

/* Re-quantizing drops the correction made for the old grid, and says so; a
 * correction made again equals one made on a fresh model. */
static void test_requantize_drops_biascorr(void **state)
{
	struct fixture f, g;
	open1(&f, 0.5, 24);
	open1(&g, 0.5, 24);
	dfq_tensor_free(g.x);
	g.x = dfq_tensor_clone(f.x, NULL);
	struct dfq_qconfig q8 = qbits(8, 8), q4 = qbits(4, 8);
	struct dfq_step_report rep;
	STEP_OK(dfq_model_fold(f.m, NULL, &e_));
	STEP_OK(dfq_model_quantize(f.m, NULL, &q8, NULL, &e_));
	STEP_OK(dfq_model_biascorr_analytic(f.m, NULL, &rep, &e_));
	int corrected = rep.nchanged;
	assert_true(corrected > 0);
	dfq_step_report_free(&rep);
	STEP_OK(dfq_model_quantize(f.m, NULL, &q4, &rep, &e_));
	assert_int_equal(rep.ndropped, corrected);
	dfq_step_report_free(&rep);
	for (int i = 0; i < f.m->nlayers; i++)
		assert_null(f.m->layers[i].bcorr_q);
	/* the same as quantizing to W4 directly */
	STEP_OK(dfq_model_fold(g.m, NULL, &e_));
	STEP_OK(dfq_model_quantize(g.m, NULL, &q4, NULL, &e_));
	struct dfq_tensor *yf = run(&f, DFQ_RUN_QUANT), *yg = run(&g, DFQ_RUN_QUANT);
	assert_same(yg, yf, "W8, correction, W4 against W4");
	STEP_OK(dfq_model_biascorr_analytic(f.m, NULL, NULL, &e_));
	STEP_OK(dfq_model_biascorr_analytic(g.m, NULL, NULL, &e_));
	struct dfq_tensor *yf2 = run(&f, DFQ_RUN_QUANT), *yg2 = run(&g, DFQ_RUN_QUANT);
	assert_same(yg2, yf2, "a fresh W4 correction");
	/* the same grid again keeps the correction */
	STEP_OK(dfq_model_quantize(f.m, NULL, &q4, &rep, &e_));
	assert_int_equal(rep.ndropped, 0);
	dfq_step_report_free(&rep);
	assert_non_null(f.m->layers[1].bcorr_q);
	/* changed weights drop it too */
	STEP_OK(dfq_model_clip(f.m, NULL, -0.5f, 0.5f, &rep, &e_));
	assert_true(rep.ndropped > 0);
	dfq_step_report_free(&rep);
	dfq_tensor_free(yf);
	dfq_tensor_free(yg);
	dfq_tensor_free(yf2);
	dfq_tensor_free(yg2);
	fx_close(&f);
	fx_close(&g);
}

/* --- a failing step changes nothing ----------------------------------------------------------- */

enum op {
	OP_FOLD,
	OP_RELU6,
	OP_CLIP,
	OP_EQUALIZE,
	OP_ABSORB,
	OP_QUANTIZE,
	OP_REQUANTIZE,
	OP_BIASCORR,
	OP_MEASURE,
	OP_BIASCORR_DATA,
	OP_DEQUANTIZE,
	OP_AUX,
	OP_UNDO,
	OP_REDO,
	OP_PIN_FLOAT,
	OP_PIN_BITS,
	OP_PIN_CLEAR,
	OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "fold",       "relu6-to-relu", "clip",     "equalize",     "absorb",
    "quantize",   "quantize W4",   "biascorr", "measure data", "biascorr --empirical",
    "dequantize", "aux bits",      "undo",     "redo",         "float",
    "bits",       "bits --clear",
};

static dfq_status one_batch(void *user, int64_t i, const struct dfq_tensor **x,
                            struct dfq_error *err)
{
	*x = i == 0 ? user : NULL;
	return DFQ_OK;
}

static dfq_status do_op(struct fixture *f, enum op op, struct dfq_error *err)
{
	struct dfq_qconfig q8 = qbits(8, 8), q4 = qbits(4, 8);
	bool sel[16] = {false};
	sel[1] = sel[2] = true;
	int done;
	switch (op) {
	case OP_FOLD:
		return dfq_model_fold(f->m, NULL, err);
	case OP_RELU6:
		return dfq_model_relu6_to_relu(f->m, NULL, NULL, err);
	case OP_CLIP:
		return dfq_model_clip(f->m, NULL, -0.8f, 0.8f, NULL, err);
	case OP_EQUALIZE:
		return dfq_model_equalize(f->m, NULL, NULL, NULL, err);
	case OP_ABSORB:
		return dfq_model_absorb(f->m, NULL, 1.0, NULL, err);
	case OP_QUANTIZE:
		return dfq_model_quantize(f->m, NULL, &q8, NULL, err);
	case OP_REQUANTIZE:
		return dfq_model_quantize(f->m, sel, &q4, NULL, err);
	case OP_BIASCORR:
		return dfq_model_biascorr_analytic(f->m, NULL, NULL, err);
	case OP_MEASURE:
		return dfq_model_measure_data(f->m, f->ex, NULL, one_batch, f->x, NULL, err);
	case OP_BIASCORR_DATA:
		return dfq_model_biascorr_empirical(f->m, f->ex, sel, one_batch, f->x, NULL, err);
	case OP_DEQUANTIZE:
		return dfq_model_dequantize(f->m, sel, NULL, err);
	case OP_AUX:
		return dfq_model_set_aux_quant(f->m, 6, DFQ_QSCHEME_SYM, err);
	case OP_UNDO:
		return dfq_model_undo(f->m, 2, &done, err);
	case OP_REDO:
		return dfq_model_redo(f->m, 2, &done, err);
	case OP_PIN_FLOAT: {
		struct dfq_pin p = {DFQ_PIN_FLOAT, 0, 0};
		return dfq_model_pin(f->m, sel, &p, NULL, err);
	}
	case OP_PIN_BITS: {
		/* layer 1 quantized again now, layer 3 (float) only pinned */
		bool sel2[16] = {false};
		sel2[1] = sel2[3] = true;
		struct dfq_pin p = {DFQ_PIN_WBITS | DFQ_PIN_ABITS, 5, 6};
		return dfq_model_pin(f->m, sel2, &p, NULL, err);
	}
	case OP_PIN_CLEAR: {
		struct dfq_pin p = {0, 0, 0};
		return dfq_model_pin(f->m, NULL, &p, NULL, err);
	}
	case OP_COUNT:
		break;
	}
	return DFQ_ERR_INTERNAL;
}

/* Run op with its k-th allocation failing, for k = 1, 2, ... until it runs
 * without reaching the failure; after each failure the model (and its
 * history) must be exactly as before.  Then run it for real. */
static void op_with_failures(struct fixture *f, enum op op)
{
	long k;
	for (k = 1;; k++) {
		uint64_t h0 = fingerprint(f->m);
		int n0 = dfq_model_history_count(f->m), a0 = dfq_model_history_applied(f->m);
		struct dfq_error err;
		dfq_error_clear(&err);
		fired = false;
		countdown = k;
		dfq_status st = do_op(f, op, &err);
		countdown = 0;
		if (!fired) {
			if (st != DFQ_OK)
				fail_msg("%s: %s", op_names[op], err.msg);
			break;
		}
		if (st == DFQ_OK) {
			/* the failed allocation was one the step could do without
			 * (e.g. a cache): it must have succeeded completely; undo
			 * it to go on failing later allocations */
			int done;
			if (op != OP_UNDO && op != OP_REDO) {
				STEP_OK(dfq_model_undo(f->m, 1, &done, &e_));
				if (fingerprint(f->m) != h0)
					fail_msg(
					    "%s: undo after a success at allocation %ld differs",
					    op_names[op], k);
			} else {
				int d2;
				STEP_OK(op == OP_UNDO ? dfq_model_redo(f->m, 2, &d2, &e_)
				                      : dfq_model_undo(f->m, 2, &d2, &e_));
			}
			continue;
		}
		if (fingerprint(f->m) != h0 || dfq_model_history_count(f->m) != n0 ||
		    dfq_model_history_applied(f->m) != a0)
			fail_msg("%s: failing allocation %ld (%s) changed the model", op_names[op],
			         k, err.msg);
	}
	print_message("%-22s %4ld allocations, each failure left the model as it was\n",
	              op_names[op], k - 1);
	assert_true(k > 1 || op == OP_REDO);
}

static void test_alloc_failures(void **state)
{
	struct fixture f;
	open1(&f, 1.5, 25); /* large BN means: absorption has channels to move */
	static const enum op seq[] = {
	    OP_FOLD,       OP_RELU6,    OP_CLIP,     OP_EQUALIZE,   OP_ABSORB,
	    OP_QUANTIZE,   OP_MEASURE,  OP_BIASCORR, OP_REQUANTIZE, OP_BIASCORR_DATA,
	    OP_DEQUANTIZE, OP_AUX,      OP_UNDO,     OP_REDO,       OP_QUANTIZE,
	    OP_PIN_FLOAT,  OP_PIN_BITS, OP_QUANTIZE, OP_PIN_CLEAR,
	};
	for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++)
		op_with_failures(&f, seq[i]);
	/* the history made under failures still undoes to the model as loaded */
	struct fixture g;
	open1(&g, 1.5, 25);
	int done;
	STEP_OK(dfq_model_undo(f.m, 1000, &done, &e_));
	assert_true(fingerprint(f.m) == fingerprint(g.m));
	fx_close(&g);
	fx_close(&f);
}

/* --- mixed precision ----------------------------------------------------------------------- */

/* float and bits pin layers: quantize skips the float ones and gives the
 * others their bits; undo restores pins (and the quantized layer) exactly;
 * a pinned model runs as one quantized per layer by hand. */
static void test_pins(void **state)
{
	struct fixture f, g;
	open1(&f, 0.5, 26);
	open1(&g, 0.5, 26);
	dfq_tensor_free(g.x);
	g.x = dfq_tensor_clone(f.x, NULL);
	struct dfq_qconfig q8 = qbits(8, 8), q6 = qbits(6, 8);
	struct dfq_step_report rep;
	STEP_OK(dfq_model_fold(f.m, NULL, &e_));
	STEP_OK(dfq_model_quantize(f.m, NULL, &q8, NULL, &e_));
	uint64_t hq = fingerprint(f.m);
	bool s1[16] = {false}, s2[16] = {false};
	s1[1] = true;
	s2[2] = true;
	struct dfq_pin pf = {DFQ_PIN_FLOAT, 0, 0}, pb = {DFQ_PIN_WBITS, 4, 0};
	/* float on a quantized layer dequantizes it now */
	STEP_OK(dfq_model_pin(f.m, s1, &pf, &rep, &e_));
	assert_int_equal(rep.nchanged, 1);
	dfq_step_report_free(&rep);
	assert_false(f.m->layers[1].quantized);
	assert_int_equal(f.m->layers[1].pin.what, DFQ_PIN_FLOAT);
	/* bits on a quantized layer quantizes it again now, its abits kept */
	STEP_OK(dfq_model_pin(f.m, s2, &pb, NULL, &e_));
	assert_true(f.m->layers[2].quantized);
	assert_int_equal(f.m->layers[2].q.wbits, 4);
	assert_int_equal(f.m->layers[2].q.abits, 8);
	uint64_t hp = fingerprint(f.m);
	/* quantize all keeps the pins, and counts them */
	STEP_OK(dfq_model_quantize(f.m, NULL, &q6, &rep, &e_));
	assert_int_equal(rep.nchanged, f.m->nlayers - 1);
	assert_non_null(strstr(rep.summary, "1 kept float, 1 with its own bits"));
	dfq_step_report_free(&rep);
	assert_false(f.m->layers[1].quantized);
	assert_int_equal(f.m->layers[2].q.wbits, 4);
	assert_int_equal(f.m->layers[0].q.wbits, 6);
	/* the same model by hand: W6 everywhere, W4 on layer 2, layer 1 float */
	STEP_OK(dfq_model_fold(g.m, NULL, &e_));
	STEP_OK(dfq_model_quantize(g.m, NULL, &q6, NULL, &e_));
	struct dfq_qconfig q4 = qbits(4, 8);
	STEP_OK(dfq_model_quantize(g.m, s2, &q4, NULL, &e_));
	STEP_OK(dfq_model_dequantize(g.m, s1, NULL, &e_));
	struct dfq_tensor *yf = run(&f, DFQ_RUN_QUANT), *yg = run(&g, DFQ_RUN_QUANT);
	assert_same(yg, yf, "pinned against quantized by hand");
	/* undo: the pins and the quantized layer come back exactly */
	int done;
	STEP_OK(dfq_model_undo(f.m, 1, &done, &e_));
	assert_true(fingerprint(f.m) == hp);
	STEP_OK(dfq_model_undo(f.m, 2, &done, &e_));
	assert_true(fingerprint(f.m) == hq);
	assert_true(f.m->layers[1].quantized);
	assert_int_equal(f.m->layers[1].pin.what, 0);
	STEP_OK(dfq_model_redo(f.m, 3, &done, &e_));
	struct dfq_tensor *yr = run(&f, DFQ_RUN_QUANT);
	assert_same(yf, yr, "after undo and redo");
	/* bits on a float layer only pins; a later quantize uses them; --clear drops them */
	struct dfq_pin pa = {DFQ_PIN_WBITS | DFQ_PIN_ABITS, 5, 0};
	STEP_OK(dfq_model_pin(f.m, s1, &pa, NULL, &e_));
	assert_false(f.m->layers[1].quantized);
	STEP_OK(dfq_model_quantize(f.m, NULL, &q8, NULL, &e_));
	assert_int_equal(f.m->layers[1].q.wbits, 5);
	assert_int_equal(f.m->layers[1].q.abits, 0);
	struct dfq_pin pc = {0, 0, 0};
	STEP_OK(dfq_model_pin(f.m, NULL, &pc, &rep, &e_));
	assert_int_equal(rep.nchanged, 2);
	dfq_step_report_free(&rep);
	assert_int_equal(f.m->layers[1].q.wbits, 5); /* stays as it is */
	STEP_OK(dfq_model_quantize(f.m, NULL, &q8, NULL, &e_));
	assert_int_equal(f.m->layers[1].q.wbits, 8);
	/* bad pins change nothing */
	uint64_t h = fingerprint(f.m);
	struct dfq_error err;
	struct dfq_pin bad1 = {DFQ_PIN_FLOAT | DFQ_PIN_WBITS, 4, 0}, bad2 = {DFQ_PIN_WBITS, 1, 0};
	assert_int_equal(dfq_model_pin(f.m, NULL, &bad1, NULL, &err), DFQ_ERR_ARG);
	assert_int_equal(dfq_model_pin(f.m, NULL, &bad2, NULL, &err), DFQ_ERR_ARG);
	assert_true(fingerprint(f.m) == h);
	dfq_tensor_free(yf);
	dfq_tensor_free(yg);
	dfq_tensor_free(yr);
	fx_close(&f);
	fx_close(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_undo_redo_pipeline),
	    cmocka_unit_test(test_history_branch),
	    cmocka_unit_test(test_explicit_transaction),
	    cmocka_unit_test(test_requantize_drops_biascorr),
	    cmocka_unit_test(test_pins),
	    cmocka_unit_test(test_alloc_failures),
	};
	DFQ_RUN_TESTS(tests);
}
