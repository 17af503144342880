/* model_fixtures.h - for the model-core tests: deterministic random numbers, a small graph
 * builder, MobileNetV2-, ResNet- and MLP-like models with calibrated BatchNorm, and a fixture
 * (model, executor, input) with helpers to run and compare. */
#ifndef DFQ_MODEL_FIXTURES_H
#define DFQ_MODEL_FIXTURES_H

#include "dfq_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dfq/dfq_exec.h"
#include "dfq/dfq_model.h"
#include "model_internal.h"

/* --- deterministic random numbers ------------------------------------------------ */

static uint64_t rng_state = 88172645463325252ULL;

static inline void rng_seed(uint64_t s)
{
	rng_state = s * 2654435761ULL + 88172645463325252ULL;
}

static inline double urand(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return ((rng_state >> 11) + 0.5) / 9007199254740992.0;
}

static inline double nrand(void)
{
	return sqrt(-2.0 * log(urand())) * cos(2.0 * M_PI * urand());
}

/* --- a small graph builder ------------------------------------------------------- */

static inline void g_init(struct dfq_graph *g, const char *name, int ndim, const int64_t *dims,
                          const float *data)
{
	int vi = dfq_graph_intern_value(g, name, NULL);
	assert_true(vi >= 0);
	struct dfq_tensor *t = dfq_tensor_new(DFQ_DTYPE_F32, ndim, dims, NULL);
	assert_non_null(t);
	if (data)
		memcpy(t->data, data, (size_t)t->numel * sizeof(float));
	g->values[vi].init = t;
	dfq_tensor_shape(t, &g->values[vi].shape);
}

static inline void g_scalar(struct dfq_graph *g, const char *name, float v)
{
	int vi = dfq_graph_intern_value(g, name, NULL);
	struct dfq_tensor *t = dfq_tensor_new(DFQ_DTYPE_F32, 0, NULL, NULL);
	assert_non_null(t);
	dfq_tensor_f32(t)[0] = v;
	g->values[vi].init = t;
	dfq_tensor_shape(t, &g->values[vi].shape);
}

static inline int g_node(struct dfq_graph *g, const char *op, const char *name, int nin,
                         const char *const *ins, const char *out)
{
	int ni = dfq_graph_add_node(g, name, op, 13, nin, ins, 1, &out, NULL);
	assert_true(ni >= 0);
	return ni;
}

static inline void g_attr_i(struct dfq_graph *g, int ni, const char *name, int64_t v)
{
	struct dfq_attr a = {.name = (char *)name, .type = DFQ_ATTR_INT, .i = v};
	assert_int_equal(dfq_graph_node_add_attr(g, ni, &a, NULL), DFQ_OK);
}

static inline void g_attr_ints(struct dfq_graph *g, int ni, const char *name, int n, int64_t *v)
{
	struct dfq_attr a = {.name = (char *)name, .type = DFQ_ATTR_INTS, .n = n, .ints = v};
	assert_int_equal(dfq_graph_node_add_attr(g, ni, &a, NULL), DFQ_OK);
}

static inline void g_io(struct dfq_graph *g, const char *in, int ndim, const int64_t *dims,
                        const char *out)
{
	int vi = dfq_graph_intern_value(g, in, NULL);
	g->values[vi].shape.dtype = DFQ_DTYPE_F32;
	g->values[vi].shape.ndim = ndim;
	memcpy(g->values[vi].shape.dims, dims, (size_t)ndim * sizeof *dims);
	g->inputs = malloc(sizeof *g->inputs);
	g->inputs[0] = vi;
	g->ninputs = 1;
	g->outputs = malloc(sizeof *g->outputs);
	g->outputs[0] = dfq_graph_intern_value(g, out, NULL);
	g->noutputs = 1;
}

/* Conv "conv_<name>" with weight "<name>.weight": per-output-channel scales
 * exp(spread * N(0,1)) make channel ranges differ, as in trained MobileNets. */
static inline void add_conv(struct dfq_graph *g, const char *name, const char *in, const char *out,
                            int64_t cin, int64_t cout, int64_t k, int64_t group, bool bias,
                            double spread)
{
	char wn[64], bn[64], nn[64];
	snprintf(wn, sizeof wn, "%s.weight", name);
	snprintf(bn, sizeof bn, "%s.bias", name);
	snprintf(nn, sizeof nn, "conv_%s", name);
	int64_t wd[4] = {cout, cin / group, k, k};
	int64_t n = wd[0] * wd[1] * k * k;
	float *w = malloc((size_t)n * sizeof *w);
	double sd = 1.0 / sqrt((double)(cin / group * k * k));
	for (int64_t o = 0; o < cout; o++) {
		double sc = exp(spread * nrand());
		for (int64_t i = 0; i < n / cout; i++)
			w[o * (n / cout) + i] = (float)(sd * sc * nrand());
	}
	g_init(g, wn, 4, wd, w);
	free(w);
	if (bias) {
		float *b = malloc((size_t)cout * sizeof *b);
		for (int64_t o = 0; o < cout; o++)
			b[o] = (float)(0.1 * nrand());
		g_init(g, bn, 1, &cout, b);
		free(b);
	}
	const char *ins[3] = {in, wn, bn};
	int ni = g_node(g, "Conv", nn, bias ? 3 : 2, ins, out);
	int64_t pads[4] = {k / 2, k / 2, k / 2, k / 2};
	g_attr_ints(g, ni, "pads", 4, pads);
	if (group > 1)
		g_attr_i(g, ni, "group", group);
}

/* Upper end of the BN gammas of model A's blocks. */
static double gamma_hi = 0.9;

/* BatchNormalization "bn_<name>": gamma U(glo, ghi), beta N(bmu, bsd); mean/var
 * set by calibrate(). */
static inline void add_bn(struct dfq_graph *g, const char *name, const char *in, const char *out,
                          int64_t c, double glo, double ghi, double bmu, double bsd)
{
	char s[4][64];
	const char *sfx[4] = {"gamma", "beta", "mean", "var"};
	float *v = malloc((size_t)c * sizeof *v);
	for (int k = 0; k < 4; k++) {
		snprintf(s[k], sizeof s[k], "%s.%s", name, sfx[k]);
		for (int64_t i = 0; i < c; i++)
			v[i] = k == 0   ? (float)(glo + (ghi - glo) * urand())
			       : k == 1 ? (float)(bmu + bsd * nrand())
			       : k == 2 ? 0.0f
			                : 1.0f;
		g_init(g, s[k], 1, &c, v);
	}
	free(v);
	char nn[64];
	snprintf(nn, sizeof nn, "bn_%s", name);
	const char *ins[5] = {in, s[0], s[1], s[2], s[3]};
	g_node(g, "BatchNormalization", nn, 5, ins, out);
}

static inline void add_act(struct dfq_graph *g, const char *name, bool relu6, const char *in,
                           const char *out)
{
	if (!relu6) {
		g_node(g, "Relu", name, 1, &in, out);
		return;
	}
	char lo[96], hi[96];
	snprintf(lo, sizeof lo, "%s.min", name);
	snprintf(hi, sizeof hi, "%s.max", name);
	g_scalar(g, lo, 0.0f);
	g_scalar(g, hi, 6.0f);
	const char *ins[3] = {in, lo, hi};
	g_node(g, "Clip", name, 3, ins, out);
}

/* conv + bn + act as one call: output tensor "<name>.out". */
static inline void add_block(struct dfq_graph *g, const char *name, const char *in, int64_t cin,
                             int64_t cout, int64_t k, int64_t group, int act, double bmu)
{
	char c[64], b[64], o[64];
	snprintf(c, sizeof c, "%s.c", name);
	snprintf(b, sizeof b, "%s.b", name);
	snprintf(o, sizeof o, "%s.out", name);
	add_conv(g, name, in, c, cin, cout, k, group, false, 1.0);
	add_bn(g, name, c, act ? b : o, cout, 0.3, gamma_hi, bmu, 0.5);
	if (act) {
		char an[64];
		snprintf(an, sizeof an, "act_%s", name);
		add_act(g, an, act == 6, b, o);
	}
}

static inline void add_head(struct dfq_graph *g, const char *in, int64_t c, int64_t classes)
{
	const char *gin = in;
	g_node(g, "GlobalAveragePool", "gap", 1, &gin, "pooled");
	const char *fin = "pooled";
	int ni = g_node(g, "Flatten", "flatten", 1, &fin, "flat");
	g_attr_i(g, ni, "axis", 1);
	int64_t wd[2] = {classes, c};
	float *w = malloc((size_t)(classes * c) * sizeof *w);
	for (int64_t i = 0; i < classes * c; i++)
		w[i] = (float)(nrand() / sqrt((double)c));
	g_init(g, "fc.weight", 2, wd, w);
	free(w);
	float *b = calloc((size_t)classes, sizeof *b);
	g_init(g, "fc.bias", 1, &classes, b);
	free(b);
	const char *ins[3] = {"flat", "fc.weight", "fc.bias"};
	ni = g_node(g, "Gemm", "fc", 3, ins, "logits");
	g_attr_i(g, ni, "transB", 1);
}

#define BATCH 8

/* A tensor of shape dims ~ N(0, 1). Caller frees. */
static inline struct dfq_tensor *rand_tensor(int ndim, const int64_t *dims)
{
	struct dfq_tensor *t = dfq_tensor_new(DFQ_DTYPE_F32, ndim, dims, NULL);
	assert_non_null(t);
	for (int64_t i = 0; i < t->numel; i++)
		dfq_tensor_f32(t)[i] = (float)nrand();
	return t;
}

/* Random input batch [BATCH, c, h, w] ~ N(0, 1). Caller frees. */
static inline struct dfq_tensor *rand_input(int64_t c, int64_t h, int64_t w)
{
	int64_t d[4] = {BATCH, c, h, w};
	return rand_tensor(4, d);
}

/* --- BN calibration: each BN's mean/var from the data reaching it ------------ */

struct calib {
	int vi;
	int64_t c;
	double *s, *s2;
	int64_t n;
};

static inline dfq_status calib_hook(void *user, const struct dfq_graph *g, int vi,
                                    struct dfq_tensor *t, struct dfq_error *err)
{
	struct calib *k = user;
	if (vi != k->vi)
		return DFQ_OK;
	int64_t n = t->dims[0], sp = t->numel / (n * k->c);
	const float *x = dfq_tensor_f32(t);
	for (int64_t b = 0; b < n; b++)
		for (int64_t c = 0; c < k->c; c++)
			for (int64_t i = 0; i < sp; i++) {
				double v = x[(b * k->c + c) * sp + i];
				k->s[c] += v;
				k->s2[c] += v * v;
			}
	k->n += n * sp;
	return DFQ_OK;
}

static inline void calibrate(struct dfq_graph *g, const struct dfq_tensor *x)
{
	for (int ni = 0; ni < g->nnodes; ni++) {
		struct dfq_node *n = &g->nodes[ni];
		if (n->op != DFQ_OP_BATCHNORM)
			continue;
		struct calib k = {.vi = n->inputs[0], .c = g->values[n->inputs[1]].init->numel};
		k.s = calloc((size_t)k.c, sizeof *k.s);
		k.s2 = calloc((size_t)k.c, sizeof *k.s2);
		struct dfq_exec *ex = dfq_exec_new(g, NULL, NULL);
		assert_non_null(ex);
		dfq_exec_set_hook(ex, calib_hook, &k);
		struct dfq_tensor *out[1];
		struct dfq_tensor *in = (struct dfq_tensor *)x;
		assert_int_equal(dfq_exec_run(ex, &in, out, NULL), DFQ_OK);
		dfq_tensor_free(out[0]);
		dfq_exec_free(ex);
		float *mu = dfq_tensor_f32(g->values[n->inputs[3]].init);
		float *var = dfq_tensor_f32(g->values[n->inputs[4]].init);
		for (int64_t c = 0; c < k.c; c++) {
			double m = k.s[c] / (double)k.n;
			mu[c] = (float)m;
			var[c] = (float)fmax(k.s2[c] / (double)k.n - m * m,
			                     0.05); /* no near-dead channels */
		}
		free(k.s);
		free(k.s2);
	}
}

/* An empty graph, the random numbers restarted from seed. */
static inline struct dfq_graph *graph_begin(uint64_t seed)
{
	rng_seed(seed);
	struct dfq_graph *g = dfq_graph_new(NULL);
	assert_non_null(g);
	return g;
}

/* Input "x" [-1, c, h, w] to output "logits"; finalizes g and sets its BN statistics
 * from a random batch. */
static inline void image_graph_end(struct dfq_graph *g, int64_t c, int64_t h, int64_t w)
{
	int64_t d[4] = {-1, c, h, w};
	g_io(g, "x", 4, d, "logits");
	assert_int_equal(dfq_graph_finalize(g, NULL), DFQ_OK);
	struct dfq_tensor *x = rand_input(c, h, w);
	calibrate(g, x);
	dfq_tensor_free(x);
}

/* Model A, MobileNetV2-like on [N, 4, 10, 10]: two inverted residual blocks
 * (the second with a residual Add), ReLU6 everywhere, BN after every conv. */
static inline struct dfq_graph *model_mbv2(double bmu, uint64_t seed)
{
	struct dfq_graph *g = graph_begin(seed);
	add_block(g, "c0", "x", 4, 16, 3, 1, 6, bmu);
	add_block(g, "c1", "c0.out", 16, 16, 3, 16, 6, bmu);
	add_block(g, "c2", "c1.out", 16, 8, 1, 1, 0, bmu);
	add_block(g, "c3", "c2.out", 8, 24, 1, 1, 6, bmu);
	add_block(g, "c4", "c3.out", 24, 24, 3, 24, 6, bmu);
	add_block(g, "c5", "c4.out", 24, 8, 1, 1, 0, bmu);
	const char *ains[2] = {"c2.out", "c5.out"};
	g_node(g, "Add", "add", 2, ains, "sum");
	add_block(g, "c6", "sum", 8, 32, 1, 1, 6, bmu);
	add_head(g, "c6.out", 32, 5);
	image_graph_end(g, 4, 10, 10);
	return g;
}

/* Model B, ResNet-like on [N, 3, 8, 8] with ReLU: stem, a basic block whose
 * Add is followed by Relu, head. */
static inline struct dfq_graph *model_resnet(uint64_t seed)
{
	struct dfq_graph *g = graph_begin(seed);
	add_block(g, "stem", "x", 3, 8, 3, 1, 1, 1.0);
	add_block(g, "a", "stem.out", 8, 8, 3, 1, 1, 1.0);
	add_block(g, "b", "a.out", 8, 8, 3, 1, 0, 0.0);
	const char *ains[2] = {"b.out", "stem.out"};
	g_node(g, "Add", "add", 2, ains, "sum");
	const char *rin = "sum";
	g_node(g, "Relu", "relu_add", 1, &rin, "sum.r");
	add_head(g, "sum.r", 8, 4);
	image_graph_end(g, 3, 8, 8);
	return g;
}

/* Model C: an MLP on [N, 12]: MatMul + Add(bias) + BN + Relu, Gemm (transB=0)
 * + Relu, Gemm (transB=1): the weight layouts [in, out] and [out, in]. */
static inline struct dfq_graph *model_mlp(uint64_t seed)
{
	struct dfq_graph *g = graph_begin(seed);
	int64_t d1[2] = {12, 16}, d2[2] = {16, 10}, d3[2] = {4, 10}, c16 = 16, c10 = 10, c4 = 4;
	float w[256];
	double sc[16];
	for (int o = 0; o < 16; o++)
		sc[o] = exp(1.5 * nrand());
	for (int i = 0; i < 12 * 16; i++) /* [in, out]: channel o is column i % 16 */
		w[i] = (float)(nrand() * sc[i % 16] / 3.5);
	g_init(g, "m1.weight", 2, d1, w);
	for (int i = 0; i < 16; i++)
		w[i] = (float)(0.1 * nrand());
	g_init(g, "m1.bias", 1, &c16, w);
	for (int o = 0; o < 10; o++)
		sc[o] = exp(1.5 * nrand());
	for (int i = 0; i < 160; i++)
		w[i] = (float)(nrand() / 4.0 * sc[i % 10]);
	g_init(g, "g2.weight", 2, d2, w);
	for (int i = 0; i < 10; i++)
		w[i] = (float)(0.1 * nrand());
	g_init(g, "g2.bias", 1, &c10, w);
	for (int i = 0; i < 40; i++)
		w[i] = (float)(nrand() / 3.0);
	g_init(g, "g3.weight", 2, d3, w);
	for (int i = 0; i < 4; i++)
		w[i] = 0.0f;
	g_init(g, "g3.bias", 1, &c4, w);
	const char *mm[2] = {"x", "m1.weight"};
	g_node(g, "MatMul", "mm1", 2, mm, "mm1.o");
	const char *ad[2] = {"mm1.o", "m1.bias"};
	g_node(g, "Add", "mm1_bias", 2, ad, "mm1.b");
	add_bn(g, "m1", "mm1.b", "mm1.n", 16, 0.3, 0.9, 1.0, 0.5);
	add_act(g, "act_m1", false, "mm1.n", "mm1.r");
	const char *g2[3] = {"mm1.r", "g2.weight", "g2.bias"};
	g_node(g, "Gemm", "gemm2", 3, g2, "g2.o");
	add_act(g, "act_g2", false, "g2.o", "g2.r");
	const char *g3[3] = {"g2.r", "g3.weight", "g3.bias"};
	int ni = g_node(g, "Gemm", "gemm3", 3, g3, "logits");
	g_attr_i(g, ni, "transB", 1);
	int64_t d[2] = {-1, 12};
	g_io(g, "x", 2, d, "logits");
	assert_int_equal(dfq_graph_finalize(g, NULL), DFQ_OK);
	int64_t xd[2] = {64, 12};
	struct dfq_tensor *x = rand_tensor(2, xd);
	calibrate(g, x);
	dfq_tensor_free(x);
	return g;
}

/* --- helpers for the checks --------------------------------------------------- */

struct fixture {
	struct dfq_model *m;
	struct dfq_exec *ex;
	struct dfq_tensor *x;
};

static inline void fx_open(struct fixture *f, struct dfq_graph *g, struct dfq_tensor *x)
{
	struct dfq_error err;
	f->m = dfq_model_new(g, &err);
	if (!f->m)
		fail_msg("dfq_model_new: %s", err.msg);
	f->ex = dfq_exec_new(f->m->g, NULL, &err);
	assert_non_null(f->ex);
	f->x = x;
}

static inline void fx_close(struct fixture *f)
{
	dfq_exec_free(f->ex);
	dfq_model_free(f->m);
	dfq_tensor_free(f->x);
}

/* Run in mode; caller frees. */
static inline struct dfq_tensor *run(struct fixture *f, dfq_run_mode mode)
{
	struct dfq_error err;
	struct dfq_tensor *out[1];
	dfq_status st = dfq_model_run(f->m, f->ex, mode, &f->x, out, &err);
	if (st != DFQ_OK)
		fail_msg("run: %s", err.msg);
	return out[0];
}

/* max |a - b| / max |a| */
static inline double rel_diff(const struct dfq_tensor *a, const struct dfq_tensor *b)
{
	assert_true(dfq_tensor_same_shape(a, b));
	double d = 0.0, m = 0.0;
	for (int64_t i = 0; i < a->numel; i++) {
		double x = dfq_tensor_f32(a)[i], y = dfq_tensor_f32(b)[i];
		assert_true(isfinite(y));
		d = fmax(d, fabs(x - y));
		m = fmax(m, fabs(x));
	}
	return m > 0.0 ? d / m : d;
}

/* Runs f in mode and checks that the output stayed within tol of ref (rel_diff): the
 * step named by what kept the model's function.  Caller frees the output. */
static inline struct dfq_tensor *run_close(struct fixture *f, dfq_run_mode mode,
                                           const struct dfq_tensor *ref, double tol,
                                           const char *what)
{
	struct dfq_tensor *y = run(f, mode);
	double d = rel_diff(ref, y);
	if (!(d <= tol))
		fail_msg("%s: output moved by %.3g of its max, more than %.3g", what, d, tol);
	return y;
}

#define STEP_OK(call)                                                                              \
	do {                                                                                       \
		struct dfq_error e_;                                                               \
		dfq_status s_ = (call);                                                            \
		if (s_ != DFQ_OK)                                                                  \
			fail_msg("%s: %s", #call, e_.msg);                                         \
	} while (0)

/* Batches for dfq_model_measure_data: x[0..n). */
struct batches {
	const struct dfq_tensor *x[3];
	int n;
};

static inline dfq_status batches_next(void *user, int64_t i, const struct dfq_tensor **x,
                                      struct dfq_error *err)
{
	const struct batches *b = user;
	*x = i < b->n ? b->x[i] : NULL;
	return DFQ_OK;
}

/* Measure the data ranges on x1 (and x2 when not NULL) as one step. */
static inline dfq_status measure2(struct dfq_model *m, struct dfq_exec *ex,
                                  const struct dfq_measure_opts *o, const struct dfq_tensor *x1,
                                  const struct dfq_tensor *x2, struct dfq_error *err)
{
	struct batches b = {{x1, x2}, x2 ? 2 : 1};
	return dfq_model_measure_data(m, ex, o, batches_next, &b, NULL, err);
}

static inline double weights_checksum(const struct dfq_model *m)
{
	double s = 0.0;
	for (int li = 0; li < m->nlayers; li++) {
		const struct dfq_tensor *w = m->g->values[m->layers[li].w_vi].init;
		for (int64_t i = 0; i < w->numel; i++)
			s += dfq_tensor_f32(w)[i] * (double)(i % 7 + 1);
		const float *b = model_b(m, &m->layers[li]);
		for (int64_t o = 0; b && o < m->layers[li].cout; o++)
			s += b[o] * 3.0;
	}
	return s;
}

#endif
