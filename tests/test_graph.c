/* test_graph.c - graph IR, finalize (checks, sorting, shapes, folding) and the executor. */
#include "dfq_test.h"

#include <stdlib.h>
#include <string.h>

#include "dfq/dfq_exec.h"
#include "dfq/dfq_graph.h"

/* --- helpers ------------------------------------------------------------------ */

static struct dfq_graph *new_graph(void)
{
	struct dfq_error err = {0};
	struct dfq_graph *g = dfq_graph_new(&err);
	assert_non_null(g);
	return g;
}

/* Declare name as a float32 run-time input of the given shape (-1 = symbolic). */
static int add_input(struct dfq_graph *g, const char *name, int ndim, const int64_t *dims)
{
	struct dfq_error err = {0};
	int vi = dfq_graph_intern_value(g, name, &err);
	assert_true(vi >= 0);
	struct dfq_value *v = &g->values[vi];
	v->is_input = true;
	v->shape.dtype = DFQ_DTYPE_F32;
	v->shape.ndim = ndim;
	for (int i = 0; i < ndim; i++)
		v->shape.dims[i] = dims[i];
	g->inputs = realloc(g->inputs, (size_t)(g->ninputs + 1) * sizeof *g->inputs);
	g->inputs[g->ninputs++] = vi;
	return vi;
}

static void add_output(struct dfq_graph *g, const char *name)
{
	struct dfq_error err = {0};
	int vi = dfq_graph_intern_value(g, name, &err);
	assert_true(vi >= 0);
	g->outputs = realloc(g->outputs, (size_t)(g->noutputs + 1) * sizeof *g->outputs);
	g->outputs[g->noutputs++] = vi;
}

static struct dfq_tensor *f32(int ndim, const int64_t *dims, const float *data)
{
	struct dfq_error err = {0};
	struct dfq_tensor *t = dfq_tensor_new(DFQ_DTYPE_F32, ndim, dims, &err);
	assert_non_null(t);
	if (data)
		memcpy(t->data, data, (size_t)t->numel * sizeof(float));
	return t;
}

static void add_init(struct dfq_graph *g, const char *name, struct dfq_tensor *t)
{
	struct dfq_error err = {0};
	int vi = dfq_graph_intern_value(g, name, &err);
	assert_true(vi >= 0);
	g->values[vi].init = t;
}

static int node1(struct dfq_graph *g, const char *name, const char *op, const char *in0,
		 const char *in1, const char *out)
{
	struct dfq_error err = {0};
	const char *ins[2] = {in0, in1};
	const char *outs[1] = {out};
	int ni = dfq_graph_add_node(g, name, op, 13, in1 ? 2 : (in0 ? 1 : 0), ins, 1, outs, &err);
	assert_true(ni >= 0);
	return ni;
}

static int find_node(const struct dfq_graph *g, const char *name)
{
	for (int i = 0; i < g->nnodes; i++)
		if (strcmp(g->nodes[i].name, name) == 0)
			return i;
	return -1;
}

/* --- the IR -------------------------------------------------------------------- */

static void test_values_index(void **state)
{
	struct dfq_graph *g = new_graph();
	struct dfq_error err = {0};
	char name[32];
	/* enough values to exercise index growth */
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof name, "v%d", i);
		assert_int_equal(dfq_graph_intern_value(g, name, &err), i);
	}
	for (int i = 0; i < 5000; i += 7) {
		snprintf(name, sizeof name, "v%d", i);
		assert_int_equal(dfq_graph_find_value(g, name), i);
		assert_int_equal(dfq_graph_intern_value(g, name, &err), i);
	}
	assert_int_equal(g->nvalues, 5000);
	assert_int_equal(dfq_graph_find_value(g, "nope"), -1);
	assert_int_equal(g->values[17].producer, -1);
	assert_int_equal(g->values[17].shape.ndim, -1);
	dfq_graph_free(g);
	dfq_graph_free(NULL);
}

static void test_add_node(void **state)
{
	struct dfq_graph *g = new_graph();
	struct dfq_error err = {0};
	const char *ins[3] = {"x", "", "w"};
	const char *outs[1] = {"y"};
	int ni = dfq_graph_add_node(g, "n0", "Conv", 13, 3, ins, 1, outs, &err);
	assert_int_equal(ni, 0);
	const struct dfq_node *n = &g->nodes[0];
	assert_string_equal(n->op_type, "Conv");
	assert_int_equal(n->inputs[1], -1);
	assert_int_equal(g->values[n->outputs[0]].producer, 0);
	assert_int_equal(g->values[n->inputs[0]].nconsumers, 1);
	/* a second producer of y is refused and leaves the graph as it was */
	const char *ins2[1] = {"x"};
	assert_int_equal(dfq_graph_add_node(g, "n1", "Relu", 13, 1, ins2, 1, outs, &err), -1);
	assert_int_equal(err.status, DFQ_ERR_GRAPH);
	assert_non_null(strstr(err.msg, "'y'"));
	assert_non_null(strstr(err.msg, "'n0'"));
	assert_non_null(strstr(err.msg, "'n1'"));
	assert_int_equal(g->nnodes, 1);
	assert_int_equal(g->values[dfq_graph_find_value(g, "x")].nconsumers, 1);
	/* the same output twice in one node */
	const char *dup[2] = {"a", "a"};
	assert_int_equal(dfq_graph_add_node(g, "n2", "Dropout", 13, 1, ins2, 2, dup, &err), -1);
	assert_int_equal(g->nnodes, 1);
	dfq_graph_free(g);
}

static void test_attrs_deep_copy(void **state)
{
	struct dfq_graph *g = new_graph();
	struct dfq_error err = {0};
	int ni = node1(g, "c", "Conv", "x", "w", "y");
	int64_t ints[2] = {1, 2};
	struct dfq_attr a = {.name = "strides", .type = DFQ_ATTR_INTS, .n = 2, .ints = ints};
	assert_int_equal(dfq_graph_node_add_attr(g, ni, &a, &err), DFQ_OK);
	ints[0] = 99;
	float fl[1] = {0.5f};
	struct dfq_attr b = {.name = "scales", .type = DFQ_ATTR_FLOATS, .n = 1, .floats = fl};
	assert_int_equal(dfq_graph_node_add_attr(g, ni, &b, &err), DFQ_OK);
	char s0[] = "NOTSET", s1[] = "x";
	char *strs[2] = {s0, s1};
	struct dfq_attr c = {.name = "names", .type = DFQ_ATTR_STRINGS, .n = 2, .strings = strs};
	assert_int_equal(dfq_graph_node_add_attr(g, ni, &c, &err), DFQ_OK);
	s0[0] = 'Z';
	struct dfq_attr d = {.name = "auto_pad", .type = DFQ_ATTR_STRING, .s = s0};
	assert_int_equal(dfq_graph_node_add_attr(g, ni, &d, &err), DFQ_OK);
	int64_t dims[1] = {2};
	struct dfq_tensor *t = f32(1, dims, (float[]){1, 2});
	struct dfq_attr e = {.name = "value", .type = DFQ_ATTR_TENSOR, .t = t};
	assert_int_equal(dfq_graph_node_add_attr(g, ni, &e, &err), DFQ_OK);
	dfq_tensor_f32(t)[0] = 7;
	dfq_tensor_free(t);
	struct dfq_attr f = {.name = "group", .type = DFQ_ATTR_INT, .i = 4};
	assert_int_equal(dfq_graph_node_add_attr(g, ni, &f, &err), DFQ_OK);
	/* bad attributes are refused, the node is unchanged */
	struct dfq_attr bad = {.name = "odd", .type = (dfq_attr_type)42};
	assert_int_not_equal(dfq_graph_node_add_attr(g, ni, &bad, &err), DFQ_OK);
	struct dfq_attr bad2 = {.name = "nt", .type = DFQ_ATTR_TENSOR, .t = NULL};
	assert_int_not_equal(dfq_graph_node_add_attr(g, ni, &bad2, &err), DFQ_OK);

	const struct dfq_node *n = &g->nodes[ni];
	assert_int_equal(n->nattrs, 6);
	const struct dfq_attr *r = dfq_node_attr(n, "strides");
	assert_non_null(r);
	assert_int_equal(r->ints[0], 1);
	assert_true(dfq_node_attr(n, "scales")->floats[0] == 0.5f);
	assert_string_equal(dfq_node_attr(n, "names")->strings[0], "NOTSET");
	assert_string_equal(dfq_node_attr(n, "auto_pad")->s, "ZOTSET");
	assert_true(dfq_tensor_f32(dfq_node_attr(n, "value")->t)[0] == 1.0f);
	assert_int_equal(dfq_node_attr(n, "group")->i, 4);
	assert_null(dfq_node_attr(n, "pads"));
	dfq_graph_free(g);
}

/* --- finalize -------------------------------------------------------------------- */

static void test_unsupported_op(void **state)
{
	struct dfq_graph *g = new_graph();
	struct dfq_error err = {0};
	int64_t d[2] = {1, 4};
	add_input(g, "x", 2, d);
	node1(g, "r", "Relu", "x", NULL, "h");
	node1(g, "lstm_1", "LSTM", "h", NULL, "y");
	add_output(g, "y");
	assert_int_equal(dfq_graph_finalize(g, &err), DFQ_ERR_UNSUPPORTED);
	assert_string_equal(err.msg, "unsupported operator 'LSTM' (node 'lstm_1', opset 13)");
	dfq_graph_free(g);
}

static void test_dangling_input(void **state)
{
	struct dfq_graph *g = new_graph();
	struct dfq_error err = {0};
	int64_t d[2] = {1, 4};
	add_input(g, "x", 2, d);
	node1(g, "x2", "Add", "x", "ghost", "y");
	add_output(g, "y");
	assert_int_equal(dfq_graph_finalize(g, &err), DFQ_ERR_GRAPH);
	assert_string_equal(err.msg, "node 'x2' (Add) reads tensor 'ghost', which no node produces "
				     "and is neither an initializer nor a graph input");
	dfq_graph_free(g);
}

static void test_cycle(void **state)
{
	struct dfq_graph *g = new_graph();
	struct dfq_error err = {0};
	int64_t d[2] = {1, 4};
	add_input(g, "x", 2, d);
	node1(g, "add", "Add", "x", "b", "a");
	node1(g, "relu", "Relu", "a", NULL, "b");
	node1(g, "out", "Relu", "a", NULL, "y");
	add_output(g, "y");
	assert_int_equal(dfq_graph_finalize(g, &err), DFQ_ERR_GRAPH);
	assert_non_null(strstr(err.msg, "cycle"));
	assert_true(strstr(err.msg, "'add'") || strstr(err.msg, "'relu'"));
	assert_null(strstr(err.msg, "'out'"));
	dfq_graph_free(g);
}

static void test_arity(void **state)
{
	struct dfq_graph *g = new_graph();
	struct dfq_error err = {0};
	int64_t d[2] = {1, 4};
	add_input(g, "x", 2, d);
	node1(g, "g1", "Gemm", "x", NULL, "y");
	add_output(g, "y");
	assert_int_equal(dfq_graph_finalize(g, &err), DFQ_ERR_GRAPH);
	assert_non_null(strstr(err.msg, "'g1'"));
	assert_non_null(strstr(err.msg, "1 input"));
	dfq_graph_free(g);
}

static void test_topo_sort(void **state)
{
	struct dfq_graph *g = new_graph();
	struct dfq_error err = {0};
	int64_t d[2] = {2, 3};
	add_input(g, "x", 2, d);
	/* listed backwards */
	node1(g, "c", "Add", "b1", "b2", "y");
	node1(g, "b2n", "Relu", "a", NULL, "b2");
	node1(g, "b1n", "Sigmoid", "a", NULL, "b1");
	node1(g, "a", "Relu", "x", NULL, "a");
	add_output(g, "y");
	assert_int_equal(dfq_graph_finalize(g, &err), DFQ_OK);
	assert_int_equal(g->nnodes, 4);
	for (int ni = 0; ni < g->nnodes; ni++) {
		const struct dfq_node *n = &g->nodes[ni];
		for (int i = 0; i < n->ninputs; i++) {
			int p = g->values[n->inputs[i]].producer;
			assert_true(p < ni);
		}
		assert_int_equal(g->values[n->outputs[0]].producer, ni);
	}
	assert_string_equal(g->nodes[0].name, "a");
	assert_string_equal(g->nodes[3].name, "c");
	const struct dfq_value *y = &g->values[dfq_graph_find_value(g, "y")];
	assert_int_equal(y->shape.ndim, 2);
	assert_int_equal(y->shape.dims[1], 3);
	assert_int_equal(g->values[dfq_graph_find_value(g, "a")].nconsumers, 2);
	/* finalize is repeatable */
	assert_int_equal(dfq_graph_finalize(g, &err), DFQ_OK);
	assert_int_equal(g->nnodes, 4);
	dfq_graph_free(g);
}

/* Constant -> Add(initializer) folds; a real layer reading it stays. */
static void test_constant_folding(void **state)
{
	struct dfq_graph *g = new_graph();
	struct dfq_error err = {0};
	int64_t d[2] = {-1, 3};
	add_input(g, "x", 2, d);
	int64_t three[1] = {3};
	add_init(g, "w", f32(1, three, (float[]){1, 2, 3}));
	int cn = node1(g, "k", "Constant", NULL, NULL, "kv");
	struct dfq_tensor *kt = f32(1, three, (float[]){10, 20, 30});
	struct dfq_attr va = {.name = "value", .type = DFQ_ATTR_TENSOR, .t = kt};
	assert_int_equal(dfq_graph_node_add_attr(g, cn, &va, &err), DFQ_OK);
	dfq_tensor_free(kt);
	node1(g, "sum", "Add", "kv", "w", "bias");
	node1(g, "layer", "Add", "x", "bias", "h");
	node1(g, "shape", "Shape", "h", NULL, "hs");
	node1(g, "act", "Relu", "h", NULL, "y");
	add_output(g, "y");
	add_output(g, "hs");
	assert_int_equal(dfq_graph_finalize(g, &err), DFQ_OK);
	/* Constant and sum folded; Shape of [?, 3] cannot fold */
	assert_int_equal(g->nnodes, 3);
	assert_int_equal(find_node(g, "k"), -1);
	assert_int_equal(find_node(g, "sum"), -1);
	assert_true(find_node(g, "layer") >= 0);
	const struct dfq_value *b = &g->values[dfq_graph_find_value(g, "bias")];
	assert_non_null(b->init);
	assert_int_equal(b->producer, -1);
	assert_true(dfq_tensor_f32(b->init)[2] == 33.0f);
	/* the folded intermediate nobody reads any more is dropped */
	assert_null(g->values[dfq_graph_find_value(g, "kv")].init);
	/* run it: y = relu(x + bias), hs = shape */
	struct dfq_exec *ex = dfq_exec_new(g, NULL, &err);
	assert_non_null(ex);
	int64_t xd[2] = {2, 3};
	struct dfq_tensor *x = f32(2, xd, (float[]){-100, 0, 1, 2, -30, 4});
	struct dfq_tensor *out[2] = {0};
	assert_int_equal(dfq_exec_run(ex, &x, out, &err), DFQ_OK);
	float want[6] = {0, 22, 34, 13, 0, 37};
	for (int i = 0; i < 6; i++)
		assert_true(dfq_tensor_f32(out[0])[i] == want[i]);
	assert_int_equal(out[1]->dtype, DFQ_DTYPE_I64);
	assert_int_equal(dfq_tensor_i64(out[1])[0], 2);
	assert_int_equal(dfq_tensor_i64(out[1])[1], 3);
	dfq_tensor_free(out[0]);
	dfq_tensor_free(out[1]);
	dfq_tensor_free(x);
	dfq_exec_free(ex);
	dfq_graph_free(g);
}

/* With a static input shape, Shape folds and so does what depends on it. */
static void test_shape_folding_static(void **state)
{
	struct dfq_graph *g = new_graph();
	struct dfq_error err = {0};
	int64_t d[4] = {2, 3, 4, 5};
	add_input(g, "x", 4, d);
	node1(g, "r", "Relu", "x", NULL, "h");
	node1(g, "s", "Shape", "h", NULL, "hs");
	node1(g, "c", "Cast", "hs", NULL, "hf");
	struct dfq_attr to = {.name = "to", .type = DFQ_ATTR_INT, .i = 1};
	assert_int_equal(dfq_graph_node_add_attr(g, find_node(g, "c"), &to, &err), DFQ_OK);
	add_output(g, "h");
	add_output(g, "hf");
	assert_int_equal(dfq_graph_finalize(g, &err), DFQ_OK);
	assert_int_equal(g->nnodes, 1);
	const struct dfq_value *hf = &g->values[dfq_graph_find_value(g, "hf")];
	assert_non_null(hf->init);
	assert_true(dfq_tensor_f32(hf->init)[3] == 5.0f);
	/* the executor hands out a copy of a constant graph output */
	struct dfq_exec *ex = dfq_exec_new(g, NULL, &err);
	struct dfq_tensor *x = f32(4, d, NULL);
	struct dfq_tensor *out[2] = {0};
	assert_int_equal(dfq_exec_run(ex, &x, out, &err), DFQ_OK);
	assert_ptr_not_equal(out[1], hf->init);
	assert_true(dfq_tensor_f32(out[1])[0] == 2.0f);
	dfq_tensor_free(out[0]);
	dfq_tensor_free(out[1]);
	dfq_tensor_free(x);
	dfq_exec_free(ex);
	assert_int_equal(dfq_graph_param_count(g), 0);
	dfq_graph_free(g);
}

static void test_static_shape_error(void **state)
{
	struct dfq_graph *g = new_graph();
	struct dfq_error err = {0};
	int64_t d[2] = {2, 3};
	add_input(g, "x", 2, d);
	int64_t wd[2] = {4, 5};
	add_init(g, "w", f32(2, wd, NULL));
	node1(g, "mm", "MatMul", "x", "w", "y");
	add_output(g, "y");
	assert_int_not_equal(dfq_graph_finalize(g, &err), DFQ_OK);
	assert_non_null(strstr(err.msg, "'mm'"));
	dfq_graph_free(g);
}

static void test_param_count(void **state)
{
	struct dfq_graph *g = new_graph();
	struct dfq_error err = {0};
	int64_t d[2] = {1, 4};
	add_input(g, "x", 2, d);
	int64_t wd[2] = {4, 4};
	add_init(g, "w", f32(2, wd, NULL));
	int64_t bd[1] = {4};
	add_init(g, "b", f32(1, bd, NULL));
	const char *ins[3] = {"x", "w", "b"};
	const char *o1[1] = {"h"};
	assert_true(dfq_graph_add_node(g, "g1", "Gemm", 13, 3, ins, 1, o1, &err) >= 0);
	/* shares w: counted once */
	node1(g, "m", "MatMul", "h", "w", "y");
	add_output(g, "y");
	assert_int_equal(dfq_graph_finalize(g, &err), DFQ_OK);
	assert_int_equal(dfq_graph_param_count(g), 20);
	dfq_graph_free(g);
}

/* --- executor -------------------------------------------------------------------- */

struct hook_log {
	int calls;
	int fail_at;
};

static dfq_status hook(void *user, const struct dfq_graph *g, int vi, struct dfq_tensor *t,
		       struct dfq_error *err)
{
	struct hook_log *log = user;
	log->calls++;
	if (log->calls == log->fail_at)
		return dfq_error_set(err, DFQ_ERR_ARG, "hook refused '%s'", g->values[vi].name);
	/* double every value in place */
	for (int64_t i = 0; i < t->numel; i++)
		dfq_tensor_f32(t)[i] *= 2;
	return DFQ_OK;
}

static struct dfq_graph *chain_graph(void)
{
	struct dfq_graph *g = new_graph();
	struct dfq_error err = {0};
	int64_t d[4] = {-1, 1, 2, 2};
	add_input(g, "x", 4, d);
	node1(g, "r1", "Relu", "x", NULL, "a");
	node1(g, "r2", "Relu", "a", NULL, "b");
	node1(g, "add", "Add", "a", "b", "y");
	add_output(g, "y");
	add_output(g, "a");
	add_output(g, "x");
	assert_int_equal(dfq_graph_finalize(g, &err), DFQ_OK);
	return g;
}

static void test_exec_hook_and_outputs(void **state)
{
	struct dfq_graph *g = chain_graph();
	struct dfq_error err = {0};
	struct dfq_exec_opts o;
	dfq_exec_opts_default(&o);
	assert_true(o.fast);
	o.nthreads = 2;
	struct dfq_exec *ex = dfq_exec_new(g, &o, &err);
	assert_non_null(ex);
	assert_non_null(dfq_exec_pool(ex));
	struct hook_log log = {0, -1};
	dfq_exec_set_hook(ex, hook, &log);
	int64_t xd[4] = {1, 1, 2, 2};
	struct dfq_tensor *x = f32(4, xd, (float[]){1, -1, 2, 3});
	struct dfq_tensor *out[3] = {0};
	assert_int_equal(dfq_exec_run(ex, &x, out, &err), DFQ_OK);
	assert_int_equal(log.calls, 3);
	/* a = 2 relu(x); b = 2 relu(a); y = 2 (a + b) */
	float wa[4] = {2, 0, 4, 6}, wy[4] = {12, 0, 24, 36};
	for (int i = 0; i < 4; i++) {
		assert_true(dfq_tensor_f32(out[1])[i] == wa[i]);
		assert_true(dfq_tensor_f32(out[0])[i] == wy[i]);
	}
	/* the fed input comes back as a copy */
	assert_ptr_not_equal(out[2], x);
	assert_true(dfq_tensor_f32(out[2])[1] == -1.0f);
	for (int i = 0; i < 3; i++)
		dfq_tensor_free(out[i]);

	/* a failing hook aborts the run, names the node, leaves nothing allocated */
	log = (struct hook_log){0, 2};
	assert_int_equal(dfq_exec_run(ex, &x, out, &err), DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "'r2'"));
	for (int i = 0; i < 3; i++)
		assert_null(out[i]);

	/* scalar path, no hook */
	dfq_exec_set_hook(ex, NULL, NULL);
	dfq_exec_free(ex);
	o.fast = false;
	ex = dfq_exec_new(g, &o, &err);
	assert_int_equal(dfq_exec_run(ex, &x, out, &err), DFQ_OK);
	assert_true(dfq_tensor_f32(out[0])[3] == 6.0f);
	for (int i = 0; i < 3; i++)
		dfq_tensor_free(out[i]);
	dfq_tensor_free(x);
	dfq_exec_free(ex);
	dfq_graph_free(g);
}

static void test_exec_input_checks(void **state)
{
	struct dfq_graph *g = chain_graph();
	struct dfq_error err = {0};
	struct dfq_exec *ex = dfq_exec_new(g, NULL, &err);
	struct dfq_tensor *out[3] = {0};
	int64_t bad[4] = {4, 3, 2, 2};
	struct dfq_tensor *x = f32(4, bad, NULL);
	assert_int_equal(dfq_exec_run(ex, &x, out, &err), DFQ_ERR_SHAPE);
	assert_string_equal(err.msg, "input 'x' expects [?, 1, 2, 2], got [4, 3, 2, 2]");
	dfq_tensor_free(x);
	int64_t r3[3] = {1, 2, 2};
	x = f32(3, r3, NULL);
	assert_int_equal(dfq_exec_run(ex, &x, out, &err), DFQ_ERR_SHAPE);
	dfq_tensor_free(x);
	x = dfq_tensor_new(DFQ_DTYPE_I64, 4, (int64_t[]){1, 1, 2, 2}, &err);
	assert_int_equal(dfq_exec_run(ex, &x, out, &err), DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "int64"));
	dfq_tensor_free(x);
	/* a batch of 5 is fine: the batch is symbolic */
	int64_t ok[4] = {5, 1, 2, 2};
	x = f32(4, ok, NULL);
	assert_int_equal(dfq_exec_run(ex, &x, out, &err), DFQ_OK);
	assert_int_equal(out[0]->dims[0], 5);
	for (int i = 0; i < 3; i++)
		dfq_tensor_free(out[i]);
	dfq_tensor_free(x);
	dfq_exec_free(ex);
	dfq_graph_free(g);
}

/* A kernel failing at run time: message prefixed with node name and op. */
static void test_exec_kernel_error(void **state)
{
	struct dfq_graph *g = new_graph();
	struct dfq_error err = {0};
	int64_t d[2] = {-1, -1};
	add_input(g, "x", 2, d);
	int64_t wd[2] = {3, 2};
	add_init(g, "w", f32(2, wd, NULL));
	node1(g, "mm1", "MatMul", "x", "w", "h");
	node1(g, "r", "Relu", "h", NULL, "y");
	add_output(g, "y");
	assert_int_equal(dfq_graph_finalize(g, &err), DFQ_OK);
	struct dfq_exec *ex = dfq_exec_new(g, NULL, &err);
	int64_t xd[2] = {2, 4};
	struct dfq_tensor *x = f32(2, xd, NULL);
	struct dfq_tensor *y = NULL;
	assert_int_not_equal(dfq_exec_run(ex, &x, &y, &err), DFQ_OK);
	assert_non_null(strstr(err.msg, "'mm1'"));
	assert_null(y);
	dfq_tensor_free(x);
	dfq_exec_free(ex);
	dfq_graph_free(g);
}


/* --- Slice and Split: the forms the ONNX test data do not cover ---------------- */

/* x = 0..11 as [3, 4] through one node of op at opset, with INTS attributes
 * (name, count, values) and int64 initializer inputs after x; runs the scalar
 * path and returns the outputs (caller frees). */
struct ints_attr {
	const char *name;
	int n;
	int64_t v[4];
};

static void run_one(const char *op, int64_t opset, const struct ints_attr *attrs, int nattrs,
		    const struct ints_attr *inits, int ninits, int nout, struct dfq_tensor **out)
{
	struct dfq_graph *g = new_graph();
	struct dfq_error err = {0};
	int64_t xd[2] = {3, 4};
	add_input(g, "x", 2, xd);
	const char *ins[5] = {"x"};
	for (int i = 0; i < ninits; i++) {
		ins[i + 1] = inits[i].n < 0 ? "" : inits[i].name;
		if (inits[i].n < 0)
			continue;
		int64_t d = inits[i].n;
		struct dfq_tensor *t = dfq_tensor_new(DFQ_DTYPE_I64, 1, &d, &err);
		assert_non_null(t);
		memcpy(t->data, inits[i].v, sizeof(int64_t) * (size_t)d);
		add_init(g, inits[i].name, t);
	}
	const char *outs[3] = {"y0", "y1", "y2"};
	int ni = dfq_graph_add_node(g, "n", op, opset, 1 + ninits, ins, nout, outs, &err);
	assert_true(ni >= 0);
	for (int i = 0; i < nattrs; i++) {
		struct dfq_attr a = {.name = (char *)attrs[i].name,
				     .type = DFQ_ATTR_INTS,
				     .n = attrs[i].n,
				     .ints = (int64_t *)attrs[i].v};
		if (attrs[i].n < 0) /* an INT attribute */
			a = (struct dfq_attr){.name = (char *)attrs[i].name,
					      .type = DFQ_ATTR_INT,
					      .i = attrs[i].v[0]};
		assert_int_equal(dfq_graph_node_add_attr(g, ni, &a, &err), DFQ_OK);
	}
	for (int o = 0; o < nout; o++)
		add_output(g, outs[o]);
	assert_int_equal(dfq_graph_finalize(g, &err), DFQ_OK);
	struct dfq_exec_opts o;
	dfq_exec_opts_default(&o);
	o.fast = false;
	struct dfq_exec *ex = dfq_exec_new(g, &o, &err);
	assert_non_null(ex);
	float xv[12];
	for (int i = 0; i < 12; i++)
		xv[i] = (float)i;
	struct dfq_tensor *x = f32(2, xd, xv);
	assert_int_equal(dfq_exec_run(ex, &x, out, &err), DFQ_OK);
	dfq_tensor_free(x);
	dfq_exec_free(ex);
	dfq_graph_free(g);
}

static void expect(struct dfq_tensor *t, int64_t d0, int64_t d1, const float *want)
{
	assert_int_equal(t->ndim, 2);
	assert_int_equal(t->dims[0], d0);
	assert_int_equal(t->dims[1], d1);
	for (int64_t i = 0; i < d0 * d1; i++)
		assert_true(dfq_tensor_f32(t)[i] == want[i]);
	dfq_tensor_free(t);
}

static void test_slice_forms(void **state)
{
	struct dfq_tensor *out[3] = {0};
	/* opset 9 attributes: negative axis, a start below -dim, an end of INT64_MAX */
	struct ints_attr a9[] = {
	    {"starts", 2, {1, -100}}, {"ends", 2, {INT64_MAX, -1}}, {"axes", 2, {0, -1}}};
	run_one("Slice", 9, a9, 3, NULL, 0, 1, out);
	expect(out[0], 2, 3, (float[]){4, 5, 6, 8, 9, 10});
	/* opset 1 without axes: the first axes in order */
	struct ints_attr a1[] = {{"starts", 1, {-1}}, {"ends", 1, {3}}};
	run_one("Slice", 1, a1, 2, NULL, 0, 1, out);
	expect(out[0], 1, 4, (float[]){8, 9, 10, 11});
	/* opset 13: a negative step from INT64_MAX to INT64_MIN walks the whole axis back */
	struct ints_attr i13[] = {{"s", 1, {INT64_MAX}},
				  {"e", 1, {INT64_MIN}},
				  {"a", 1, {1}},
				  {"st", 1, {-2}}};
	run_one("Slice", 13, NULL, 0, i13, 4, 1, out);
	expect(out[0], 3, 2, (float[]){3, 1, 7, 5, 11, 9});
	/* steps of INT64_MAX and INT64_MIN take one element each */
	struct ints_attr big[] = {
	    {"s", 1, {1}}, {"e", 1, {INT64_MAX}}, {"a", 1, {1}}, {"st", 1, {INT64_MAX}}};
	run_one("Slice", 13, NULL, 0, big, 4, 1, out);
	expect(out[0], 3, 1, (float[]){1, 5, 9});
	struct ints_attr small[] = {
	    {"s", 1, {-1}}, {"e", 1, {INT64_MIN}}, {"a", 1, {-1}}, {"st", 1, {INT64_MIN}}};
	run_one("Slice", 13, NULL, 0, small, 4, 1, out);
	expect(out[0], 3, 1, (float[]){3, 7, 11});
	/* opset 10: steps absent (empty slot), ends past the dim, an empty result */
	struct ints_attr i10[] = {{"s", 2, {0, 2}}, {"e", 2, {10, 2}}, {"a", 2, {0, 1}}};
	run_one("Slice", 10, NULL, 0, i10, 3, 1, out);
	assert_int_equal(out[0]->numel, 0);
	dfq_tensor_free(out[0]);
}

static void test_split_forms(void **state)
{
	struct dfq_tensor *out[3] = {0};
	/* opset 11: split attribute on a negative axis */
	struct ints_attr a11[] = {{"split", 2, {1, 3}}, {"axis", -1, {-1}}};
	run_one("Split", 11, a11, 2, NULL, 0, 2, out);
	expect(out[0], 3, 1, (float[]){0, 4, 8});
	expect(out[1], 3, 3, (float[]){1, 2, 3, 5, 6, 7, 9, 10, 11});
	/* opset 13: split as an input, a zero-size part */
	struct ints_attr i13[] = {{"sp", 3, {2, 0, 1}}};
	run_one("Split", 13, NULL, 0, i13, 1, 3, out);
	expect(out[0], 2, 4, (float[]){0, 1, 2, 3, 4, 5, 6, 7});
	assert_int_equal(out[1]->numel, 0);
	dfq_tensor_free(out[1]);
	expect(out[2], 1, 4, (float[]){8, 9, 10, 11});
	/* opset 13 without split: equal parts */
	struct ints_attr ax[] = {{"axis", -1, {1}}};
	run_one("Split", 13, ax, 1, NULL, 0, 2, out);
	expect(out[0], 3, 2, (float[]){0, 1, 4, 5, 8, 9});
	expect(out[1], 3, 2, (float[]){2, 3, 6, 7, 10, 11});
	/* opset 18 num_outputs: uneven, the last part smaller */
	struct ints_attr a18[] = {{"num_outputs", -1, {2}}};
	run_one("Split", 18, a18, 1, NULL, 0, 2, out);
	expect(out[0], 2, 4, (float[]){0, 1, 2, 3, 4, 5, 6, 7});
	expect(out[1], 1, 4, (float[]){8, 9, 10, 11});
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_values_index),
	    cmocka_unit_test(test_add_node),
	    cmocka_unit_test(test_attrs_deep_copy),
	    cmocka_unit_test(test_unsupported_op),
	    cmocka_unit_test(test_dangling_input),
	    cmocka_unit_test(test_cycle),
	    cmocka_unit_test(test_arity),
	    cmocka_unit_test(test_topo_sort),
	    cmocka_unit_test(test_constant_folding),
	    cmocka_unit_test(test_shape_folding_static),
	    cmocka_unit_test(test_static_shape_error),
	    cmocka_unit_test(test_param_count),
	    cmocka_unit_test(test_exec_hook_and_outputs),
	    cmocka_unit_test(test_exec_input_checks),
	    cmocka_unit_test(test_exec_kernel_error),
	    cmocka_unit_test(test_slice_forms),
	    cmocka_unit_test(test_split_forms),
	};
	DFQ_RUN_TESTS(tests);
}
