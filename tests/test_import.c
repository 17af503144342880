/* test_import.c - ONNX import: models built here with protobuf-c, good and malformed. */
#include "dfq_test.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfq/dfq_exec.h"
#include "dfq/dfq_onnx.h"
#include "onnx.pb-c.h"

/* --- a tiny model builder; every allocation goes to one list freed per test ---- */

static void **allocs;
static size_t nallocs;

static void *talloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);
	assert_non_null(p);
	allocs = realloc(allocs, (nallocs + 1) * sizeof *allocs);
	allocs[nallocs++] = p;
	return p;
}

static char *tstr(const char *s)
{
	char *d = talloc(strlen(s) + 1);
	strcpy(d, s);
	return d;
}

static int free_all(void **state)
{
	for (size_t i = 0; i < nallocs; i++)
		free(allocs[i]);
	free(allocs);
	allocs = NULL;
	nallocs = 0;
	return 0;
}

#define MAXN 32

struct mb {
	Onnx__ModelProto m;
	Onnx__GraphProto g;
	Onnx__OperatorSetIdProto opset;
	Onnx__OperatorSetIdProto *opsets[1];
	Onnx__NodeProto *nodes[MAXN];
	Onnx__TensorProto *inits[MAXN];
	Onnx__ValueInfoProto *ins[MAXN], *outs[MAXN];
};

static struct mb *mb_new(int64_t opset)
{
	struct mb *b = talloc(sizeof *b);
	b->m = (Onnx__ModelProto)ONNX__MODEL_PROTO__INIT;
	b->g = (Onnx__GraphProto)ONNX__GRAPH_PROTO__INIT;
	b->opset = (Onnx__OperatorSetIdProto)ONNX__OPERATOR_SET_ID_PROTO__INIT;
	b->opset.domain = tstr("");
	b->opset.has_version = 1;
	b->opset.version = opset;
	b->opsets[0] = &b->opset;
	b->m.n_opset_import = 1;
	b->m.opset_import = b->opsets;
	b->m.has_ir_version = 1;
	b->m.ir_version = 8;
	b->m.producer_name = tstr("dfq-test");
	b->m.producer_version = tstr("1");
	b->m.graph = &b->g;
	b->g.name = tstr("g");
	b->g.node = b->nodes;
	b->g.initializer = b->inits;
	b->g.input = b->ins;
	b->g.output = b->outs;
	return b;
}

/* "a,,b" -> {"a", "", "b"} */
static size_t split(const char *csv, char ***out)
{
	if (!csv || !csv[0]) {
		*out = NULL;
		return 0;
	}
	size_t n = 1;
	for (const char *p = csv; *p; p++)
		n += *p == ',';
	char **v = talloc(n * sizeof *v);
	const char *s = csv;
	for (size_t i = 0; i < n; i++) {
		const char *e = strchr(s, ',');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		v[i] = talloc(len + 1);
		memcpy(v[i], s, len);
		s = e ? e + 1 : s + len;
	}
	*out = v;
	return n;
}

static Onnx__NodeProto *mb_node(struct mb *b, const char *op, const char *name, const char *ins,
				const char *outs)
{
	Onnx__NodeProto *n = talloc(sizeof *n);
	*n = (Onnx__NodeProto)ONNX__NODE_PROTO__INIT;
	n->op_type = tstr(op);
	n->name = name ? tstr(name) : NULL;
	n->n_input = split(ins, &n->input);
	n->n_output = split(outs, &n->output);
	n->attribute = talloc(8 * sizeof *n->attribute);
	assert_true(b->g.n_node < MAXN);
	b->nodes[b->g.n_node++] = n;
	return n;
}

static Onnx__AttributeProto *add_attr(Onnx__NodeProto *n, const char *name, int type)
{
	Onnx__AttributeProto *a = talloc(sizeof *a);
	*a = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
	a->name = tstr(name);
	a->has_type = 1;
	a->type = type;
	n->attribute[n->n_attribute++] = a;
	return a;
}

static void attr_int(Onnx__NodeProto *n, const char *name, int64_t v)
{
	Onnx__AttributeProto *a = add_attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
	a->has_i = 1;
	a->i = v;
}

static void attr_ints(Onnx__NodeProto *n, const char *name, size_t cnt, const int64_t *v)
{
	Onnx__AttributeProto *a = add_attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
	a->n_ints = cnt;
	a->ints = talloc(cnt * sizeof *a->ints);
	memcpy(a->ints, v, cnt * sizeof *v);
}

static Onnx__TensorProto *tensor(const char *name, int type, size_t ndim, const int64_t *dims)
{
	Onnx__TensorProto *t = talloc(sizeof *t);
	*t = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
	t->name = tstr(name);
	t->has_data_type = 1;
	t->data_type = type;
	t->n_dims = ndim;
	t->dims = talloc((ndim ? ndim : 1) * sizeof *t->dims);
	if (ndim)
		memcpy(t->dims, dims, ndim * sizeof *dims);
	return t;
}

/* float32 tensor stored as little-endian raw_data */
static Onnx__TensorProto *tensor_f32_raw(const char *name, size_t ndim, const int64_t *dims,
					 size_t n, const float *v)
{
	Onnx__TensorProto *t = tensor(name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, ndim, dims);
	t->has_raw_data = 1;
	t->raw_data.len = n * 4;
	t->raw_data.data = talloc(n * 4);
	memcpy(t->raw_data.data, v, n * 4); /* the test hosts are little-endian */
	return t;
}

static Onnx__TensorProto *tensor_f32(const char *name, size_t ndim, const int64_t *dims, size_t n,
				     const float *v)
{
	Onnx__TensorProto *t = tensor(name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, ndim, dims);
	t->n_float_data = n;
	t->float_data = talloc(n * sizeof(float));
	memcpy(t->float_data, v, n * sizeof(float));
	return t;
}

static Onnx__TensorProto *tensor_i64(const char *name, size_t ndim, const int64_t *dims, size_t n,
				     const int64_t *v)
{
	Onnx__TensorProto *t = tensor(name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, ndim, dims);
	t->n_int64_data = n;
	t->int64_data = talloc((n ? n : 1) * sizeof(int64_t));
	memcpy(t->int64_data, v, n * sizeof(int64_t));
	return t;
}

static void mb_init(struct mb *b, Onnx__TensorProto *t)
{
	assert_true(b->g.n_initializer < MAXN);
	b->inits[b->g.n_initializer++] = t;
}

/* A graph input or output; dims < 0 are symbolic ("N"); ndim < 0: no shape. */
static Onnx__ValueInfoProto *value_info(const char *name, int type, int ndim, const int64_t *dims)
{
	Onnx__ValueInfoProto *v = talloc(sizeof *v);
	*v = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
	v->name = tstr(name);
	Onnx__TypeProto *tp = talloc(sizeof *tp);
	*tp = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
	Onnx__TypeProto__Tensor *tt = talloc(sizeof *tt);
	*tt = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
	tt->has_elem_type = 1;
	tt->elem_type = type;
	if (ndim >= 0) {
		Onnx__TensorShapeProto *sp = talloc(sizeof *sp);
		*sp = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
		sp->n_dim = (size_t)ndim;
		sp->dim = talloc((size_t)(ndim ? ndim : 1) * sizeof *sp->dim);
		for (int i = 0; i < ndim; i++) {
			Onnx__TensorShapeProto__Dimension *d = talloc(sizeof *d);
			*d = (Onnx__TensorShapeProto__Dimension)
			    ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
			if (dims[i] >= 0) {
				d->value_case =
				    ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
				d->dim_value = dims[i];
			} else {
				d->value_case =
				    ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
				d->dim_param = tstr("N");
			}
			sp->dim[i] = d;
		}
		tt->shape = sp;
	}
	tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	tp->tensor_type = tt;
	v->type = tp;
	return v;
}

static void mb_input(struct mb *b, const char *name, int ndim, const int64_t *dims)
{
	b->ins[b->g.n_input++] = value_info(name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, ndim, dims);
}

static void mb_output(struct mb *b, const char *name)
{
	b->outs[b->g.n_output++] = value_info(name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, -1, NULL);
}

static uint8_t *mb_pack(struct mb *b, size_t *len)
{
	*len = onnx__model_proto__get_packed_size(&b->m);
	uint8_t *buf = talloc(*len);
	assert_int_equal(onnx__model_proto__pack(&b->m, buf), *len);
	return buf;
}

/* Load b; expect failure with status st and a message containing each of needles. */
static void expect_fail(struct mb *b, dfq_status st, const char *n1, const char *n2)
{
	size_t len;
	uint8_t *buf = mb_pack(b, &len);
	struct dfq_graph *g = (struct dfq_graph *)1;
	struct dfq_error err = {0};
	dfq_status got = dfq_onnx_load_buffer(buf, len, &g, &err);
	if (got != st || (n1 && !strstr(err.msg, n1)) || (n2 && !strstr(err.msg, n2)))
		fail_msg("expected %s with '%s' '%s', got %s: %s", dfq_status_name(st),
			 n1 ? n1 : "", n2 ? n2 : "", dfq_status_name(got), err.msg);
	assert_null(g);
	assert_null(strchr(err.msg, '\n'));
}

static struct dfq_graph *load_ok(struct mb *b)
{
	size_t len;
	uint8_t *buf = mb_pack(b, &len);
	struct dfq_graph *g = NULL;
	struct dfq_error err = {0};
	dfq_status st = dfq_onnx_load_buffer(buf, len, &g, &err);
	if (st != DFQ_OK)
		fail_msg("load failed: %s", err.msg);
	return g;
}

/* x[1,1,3,3] -> Conv(2x2 ones, bias -20) -> Relu -> Flatten -> Gemm(transB) -> y[1,2] */
static struct mb *conv_model(void)
{
	struct mb *b = mb_new(13);
	int64_t xd[4] = {-1, 1, 3, 3};
	mb_input(b, "x", 4, xd);
	int64_t wd[4] = {1, 1, 2, 2}, bd[1] = {1};
	mb_init(b, tensor_f32_raw("W", 4, wd, 4, (float[]){1, 1, 1, 1}));
	mb_init(b, tensor_f32("B", 1, bd, 1, (float[]){-20}));
	int64_t gd[2] = {2, 4}, gb[1] = {2};
	mb_init(b, tensor_f32_raw("W2", 2, gd, 8, (float[]){1, 1, 1, 1, 1, -1, 0, 0.5f}));
	mb_init(b, tensor_f32("B2", 1, gb, 2, (float[]){1, 2}));
	Onnx__NodeProto *c = mb_node(b, "Conv", "conv1", "x,W,B", "c");
	attr_ints(c, "kernel_shape", 2, (int64_t[]){2, 2});
	attr_ints(c, "pads", 4, (int64_t[]){0, 0, 0, 0});
	mb_node(b, "Relu", NULL, "c", "r");
	mb_node(b, "Flatten", "flat", "r", "f");
	Onnx__NodeProto *g = mb_node(b, "Gemm", "fc", "f,W2,B2", "y");
	attr_int(g, "transB", 1);
	mb_output(b, "y");
	return b;
}

/* --- good models ------------------------------------------------------------------ */

static void test_conv_relu_gemm(void **state)
{
	struct dfq_graph *g = load_ok(conv_model());
	assert_int_equal(g->nnodes, 4);
	assert_int_equal(g->opset, 13);
	assert_int_equal(g->ir_version, 8);
	assert_string_equal(g->producer, "dfq-test 1");
	assert_string_equal(g->name, "g");
	assert_string_equal(g->nodes[1].name, "Relu_1"); /* unnamed node */
	assert_int_equal(g->ninputs, 1);
	assert_int_equal(dfq_graph_param_count(g), 4 + 1 + 8 + 2);
	const struct dfq_value *y = &g->values[g->outputs[0]];
	assert_int_equal(y->shape.ndim, 2);
	assert_int_equal(y->shape.dims[0], -1);
	assert_int_equal(y->shape.dims[1], 2);
	struct dfq_error err = {0};
	int64_t xd[4] = {1, 1, 3, 3};
	struct dfq_tensor *x = dfq_tensor_new(DFQ_DTYPE_F32, 4, xd, &err);
	for (int i = 0; i < 9; i++)
		dfq_tensor_f32(x)[i] = (float)(i + 1);
	/* conv: 12 16 24 28, -20 -> relu: 0 0 4 8; fc: [13, 0 - 0 + 0 + 4 + 2] */
	for (int fast = 0; fast < 2; fast++) {
		struct dfq_exec_opts o = {.fast = fast, .nthreads = 1};
		struct dfq_exec *ex = dfq_exec_new(g, &o, &err);
		assert_non_null(ex);
		struct dfq_tensor *out = NULL;
		assert_int_equal(dfq_exec_run(ex, &x, &out, &err), DFQ_OK);
		assert_int_equal(out->ndim, 2);
		assert_float_equal(dfq_tensor_f32(out)[0], 13.0f, 1e-5);
		assert_float_equal(dfq_tensor_f32(out)[1], 6.0f, 1e-5);
		dfq_tensor_free(out);
		dfq_exec_free(ex);
	}
	dfq_tensor_free(x);
	dfq_graph_free(g);
}

static void test_load_file(void **state)
{
	size_t len;
	uint8_t *buf = mb_pack(conv_model(), &len);
	char path[] = "/tmp/dfq-test-import-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
	struct dfq_graph *g = NULL;
	struct dfq_error err = {0};
	assert_int_equal(dfq_onnx_load_file(path, &g, &err), DFQ_OK);
	assert_int_equal(g->nnodes, 4);
	dfq_graph_free(g);
	/* a truncated file */
	assert_int_equal(truncate(path, (off_t)(len / 2)), 0);
	g = (struct dfq_graph *)1;
	assert_int_equal(dfq_onnx_load_file(path, &g, &err), DFQ_ERR_PARSE);
	assert_null(g);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, "not an ONNX model (protobuf parse failed)"));
	unlink(path);
	assert_int_equal(dfq_onnx_load_file(path, &g, &err), DFQ_ERR_IO);
	assert_non_null(strstr(err.msg, path));
	assert_int_equal(dfq_onnx_load_file("/tmp", &g, &err), DFQ_ERR_IO);
}

/* PyTorch's x.view(x.size(0), -1): Shape -> Gather -> Unsqueeze -> Concat -> Reshape */
static struct mb *view_model(int64_t batch)
{
	struct mb *b = mb_new(13);
	int64_t xd[4] = {batch, 2, 2, 2};
	mb_input(b, "x", 4, xd);
	mb_node(b, "Relu", "relu", "x", "r");
	mb_node(b, "Shape", "shape", "r", "s");
	Onnx__NodeProto *k0 = mb_node(b, "Constant", "k0", "", "zero");
	Onnx__AttributeProto *a =
	    add_attr(k0, "value", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
	a->t = tensor_i64("", 0, NULL, 1, (int64_t[]){0});
	Onnx__NodeProto *ga = mb_node(b, "Gather", "gather", "s,zero", "n");
	attr_int(ga, "axis", 0);
	Onnx__NodeProto *k1 = mb_node(b, "Constant", "k1", "", "axes");
	a = add_attr(k1, "value", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
	a->t = tensor_i64("", 1, (int64_t[]){1}, 1, (int64_t[]){0});
	mb_node(b, "Unsqueeze", "unsq", "n,axes", "n1");
	Onnx__NodeProto *k2 = mb_node(b, "Constant", "k2", "", "m1");
	a = add_attr(k2, "value", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
	a->t = tensor_i64("", 1, (int64_t[]){1}, 1, (int64_t[]){-1});
	Onnx__NodeProto *cc = mb_node(b, "Concat", "concat", "n1,m1", "shp");
	attr_int(cc, "axis", 0);
	mb_node(b, "Reshape", "reshape", "r,shp", "y");
	mb_output(b, "y");
	return b;
}

static void run_view(struct dfq_graph *g, int64_t batch)
{
	struct dfq_error err = {0};
	int64_t xd[4] = {batch, 2, 2, 2};
	struct dfq_tensor *x = dfq_tensor_new(DFQ_DTYPE_F32, 4, xd, &err);
	for (int64_t i = 0; i < x->numel; i++)
		dfq_tensor_f32(x)[i] = (float)(i % 3) - 1.0f;
	struct dfq_exec *ex = dfq_exec_new(g, NULL, &err);
	struct dfq_tensor *y = NULL;
	if (dfq_exec_run(ex, &x, &y, &err) != DFQ_OK)
		fail_msg("run failed: %s", err.msg);
	assert_int_equal(y->ndim, 2);
	assert_int_equal(y->dims[0], batch);
	assert_int_equal(y->dims[1], 8);
	for (int64_t i = 0; i < y->numel; i++) {
		float v = (float)(i % 3) - 1.0f;
		assert_true(dfq_tensor_f32(y)[i] == (v > 0 ? v : 0));
	}
	dfq_tensor_free(y);
	dfq_tensor_free(x);
	dfq_exec_free(ex);
}

static void test_view_static_folds(void **state)
{
	struct dfq_graph *g = load_ok(view_model(4));
	/* only the real work is left */
	assert_int_equal(g->nnodes, 2);
	assert_string_equal(g->nodes[0].op_type, "Relu");
	assert_string_equal(g->nodes[1].op_type, "Reshape");
	const struct dfq_value *shp = &g->values[dfq_graph_find_value(g, "shp")];
	assert_non_null(shp->init);
	assert_int_equal(dfq_tensor_i64(shp->init)[0], 4);
	assert_int_equal(dfq_tensor_i64(shp->init)[1], -1);
	const struct dfq_value *y = &g->values[g->outputs[0]];
	assert_int_equal(y->shape.dims[0], 4);
	assert_int_equal(y->shape.dims[1], 8);
	run_view(g, 4);
	dfq_graph_free(g);
}

static void test_view_symbolic_runs(void **state)
{
	struct dfq_graph *g = load_ok(view_model(-1));
	/* the Constants fold, the shape arithmetic stays */
	for (int i = 0; i < g->nnodes; i++)
		assert_string_not_equal(g->nodes[i].op_type, "Constant");
	assert_true(g->nnodes >= 5);
	run_view(g, 3);
	run_view(g, 1);
	dfq_graph_free(g);
}

static void test_read_tensor_file(void **state)
{
	Onnx__TensorProto *t =
	    tensor("input_0", ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 1, (int64_t[]){3});
	t->n_int32_data = 3;
	t->int32_data = talloc(3 * sizeof(int32_t));
	t->int32_data[0] = -5;
	t->int32_data[2] = 7;
	size_t len = onnx__tensor_proto__get_packed_size(t);
	uint8_t *buf = talloc(len);
	onnx__tensor_proto__pack(t, buf);
	char path[] = "/tmp/dfq-test-tensor-XXXXXX";
	int fd = mkstemp(path);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
	struct dfq_tensor *out = NULL;
	char *name = NULL;
	struct dfq_error err = {0};
	assert_int_equal(dfq_onnx_read_tensor_file(path, &out, &name, &err), DFQ_OK);
	assert_string_equal(name, "input_0");
	assert_int_equal(out->dtype, DFQ_DTYPE_I64);
	assert_int_equal(dfq_tensor_i64(out)[0], -5);
	assert_int_equal(dfq_tensor_i64(out)[2], 7);
	free(name);
	dfq_tensor_free(out);
	/* double becomes float32 */
	Onnx__TensorProto *d = tensor("", ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE, 0, NULL);
	d->n_double_data = 1;
	d->double_data = talloc(sizeof(double));
	d->double_data[0] = 2.5;
	len = onnx__tensor_proto__get_packed_size(d);
	buf = talloc(len);
	onnx__tensor_proto__pack(d, buf);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
	assert_int_equal(dfq_onnx_read_tensor_file(path, &out, NULL, &err), DFQ_OK);
	assert_int_equal(out->dtype, DFQ_DTYPE_F32);
	assert_int_equal(out->ndim, 0);
	assert_true(dfq_tensor_f32(out)[0] == 2.5f);
	dfq_tensor_free(out);
	/* garbage */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "\xff\xff\xff", 3), 3);
	close(fd);
	assert_int_equal(dfq_onnx_read_tensor_file(path, &out, &name, &err), DFQ_ERR_PARSE);
	assert_null(out);
	assert_null(name);
	unlink(path);
}

/* --- malformed input ------------------------------------------------------------- */

static void test_every_prefix(void **state)
{
	struct mb *models[2] = {conv_model(), view_model(-1)};
	for (int k = 0; k < 2; k++) {
		size_t len;
		uint8_t *buf = mb_pack(models[k], &len);
		int ok = 0;
		for (size_t n = 0; n <= len; n++) {
			/* a copy of exactly n bytes, so ASan sees any overread */
			uint8_t *p = malloc(n ? n : 1);
			memcpy(p, buf, n);
			struct dfq_graph *g = NULL;
			struct dfq_error err = {0};
			if (dfq_onnx_load_buffer(p, n, &g, &err) == DFQ_OK) {
				ok++;
				dfq_graph_free(g);
			} else {
				assert_null(g);
				assert_true(err.msg[0] != '\0');
			}
			free(p);
		}
		assert_true(ok >= 1); /* at least the whole model */
	}
}

static void test_random_bytes(void **state)
{
	unsigned seed = 12345;
	for (int iter = 0; iter < 3000; iter++) {
		size_t n = (size_t)(rand_r(&seed) % 600);
		uint8_t *p = malloc(n ? n : 1);
		for (size_t i = 0; i < n; i++)
			p[i] = (uint8_t)rand_r(&seed);
		struct dfq_graph *g = NULL;
		struct dfq_error err = {0};
		if (dfq_onnx_load_buffer(p, n, &g, &err) == DFQ_OK)
			dfq_graph_free(g);
		free(p);
	}
	/* mutations of a valid model reach much deeper than pure noise */
	size_t len;
	uint8_t *buf = mb_pack(conv_model(), &len);
	for (int iter = 0; iter < 3000; iter++) {
		uint8_t *p = malloc(len);
		memcpy(p, buf, len);
		int flips = 1 + rand_r(&seed) % 4;
		for (int f = 0; f < flips; f++)
			p[(size_t)rand_r(&seed) % len] = (uint8_t)rand_r(&seed);
		struct dfq_graph *g = NULL;
		struct dfq_error err = {0};
		if (dfq_onnx_load_buffer(p, len, &g, &err) == DFQ_OK)
			dfq_graph_free(g);
		free(p);
	}
}

static void test_not_a_model(void **state)
{
	struct dfq_graph *g = NULL;
	struct dfq_error err = {0};
	const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f};
	assert_int_equal(dfq_onnx_load_buffer(junk, sizeof junk, &g, &err), DFQ_ERR_PARSE);
	assert_non_null(strstr(err.msg, "not an ONNX model (protobuf parse failed)"));
	/* an empty buffer parses as an empty ModelProto */
	assert_int_equal(dfq_onnx_load_buffer(junk, 0, &g, &err), DFQ_ERR_PARSE);
	struct mb *b = mb_new(13);
	b->m.graph = NULL;
	expect_fail(b, DFQ_ERR_PARSE, "no graph", NULL);
	b = mb_new(13);
	mb_output(b, "y");
	expect_fail(b, DFQ_ERR_PARSE, "empty graph", NULL);
	b = conv_model();
	b->m.n_opset_import = 0;
	expect_fail(b, DFQ_ERR_PARSE, "opset", NULL);
}

static void test_float16_initializer(void **state)
{
	struct mb *b = conv_model();
	b->inits[1]->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16;
	expect_fail(b, DFQ_ERR_UNSUPPORTED,
		    "initializer 'B' has element type FLOAT16; dfq supports float32 models only",
		    NULL);
}

static void test_int32_input(void **state)
{
	struct mb *b = conv_model();
	b->ins[0]->type->tensor_type->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
	expect_fail(b, DFQ_ERR_UNSUPPORTED, "graph input 'x' has element type INT32", NULL);
}

static void test_int32_initializer_becomes_int64(void **state)
{
	struct mb *b = view_model(2);
	/* replace the Constant k2 by an int32 initializer */
	Onnx__TensorProto *t =
	    tensor("m1", ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 1, (int64_t[]){1});
	t->has_raw_data = 1;
	t->raw_data.len = 4;
	t->raw_data.data = talloc(4);
	memcpy(t->raw_data.data, "\xff\xff\xff\xff", 4);
	mb_init(b, t);
	b->nodes[6]->n_output = 1;
	b->nodes[6]->output[0] = tstr("unused");
	struct dfq_graph *g = load_ok(b);
	run_view(g, 2);
	dfq_graph_free(g);
}

static void test_missing_tensor(void **state)
{
	struct mb *b = conv_model();
	b->nodes[3]->input[1] = tstr("W_missing");
	expect_fail(b, DFQ_ERR_GRAPH,
		    "node 'fc' (Gemm) reads tensor 'W_missing', which no node produces and is "
		    "neither an initializer nor a graph input",
		    NULL);
}

static void test_cycle(void **state)
{
	struct mb *b = conv_model();
	/* conv1 reads the Relu's output: conv1 -> Relu_1 -> conv1 */
	b->nodes[0]->input[0] = tstr("r");
	b->g.n_input = 0;
	expect_fail(b, DFQ_ERR_GRAPH, "cycle", "conv1");
}

static void test_unsupported_op(void **state)
{
	struct mb *b = conv_model();
	b->nodes[1]->op_type = tstr("LSTM");
	b->nodes[1]->name = tstr("lstm_1");
	expect_fail(b, DFQ_ERR_UNSUPPORTED, "unsupported operator 'LSTM' (node 'lstm_1', opset 13)",
		    NULL);
	/* a sub-graph attribute on an unsupported op still names the op */
	b = conv_model();
	b->nodes[1]->op_type = tstr("If");
	add_attr(b->nodes[1], "then_branch", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
	expect_fail(b, DFQ_ERR_UNSUPPORTED, "unsupported operator 'If' (node 'If_1', opset 13)",
		    NULL);
	/* another domain */
	b = conv_model();
	b->nodes[1]->domain = tstr("com.microsoft");
	b->nodes[1]->op_type = tstr("FusedRelu");
	expect_fail(b, DFQ_ERR_UNSUPPORTED, "'FusedRelu'", "com.microsoft");
}

static void test_external_data(void **state)
{
	struct mb *b = conv_model();
	Onnx__TensorProto *t = b->inits[0];
	t->has_raw_data = 0;
	t->has_data_location = 1;
	t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
	Onnx__StringStringEntryProto *e = talloc(sizeof *e);
	*e = (Onnx__StringStringEntryProto)ONNX__STRING_STRING_ENTRY_PROTO__INIT;
	e->key = tstr("location");
	e->value = tstr("weights.bin");
	t->n_external_data = 1;
	t->external_data = talloc(sizeof *t->external_data);
	t->external_data[0] = e;
	expect_fail(b, DFQ_ERR_UNSUPPORTED,
		    "the model stores tensor 'W' in external data (file 'weights.bin')",
		    "self-contained");
}

static void test_truncated_raw_data(void **state)
{
	struct mb *b = conv_model();
	b->inits[2]->raw_data.len = 30; /* 8 floats need 32 bytes */
	expect_fail(b, DFQ_ERR_PARSE, "initializer 'W2'", "raw data is 30 bytes");
	b = conv_model();
	b->inits[1]->n_float_data = 0;
	expect_fail(b, DFQ_ERR_PARSE, "initializer 'B'", NULL);
	/* dims claiming a huge tensor without the data: no huge allocation */
	b = conv_model();
	b->inits[1]->dims[0] = (int64_t)1 << 40;
	expect_fail(b, DFQ_ERR_PARSE, "initializer 'B'", NULL);
	b = conv_model();
	b->inits[1]->dims[0] = -3;
	expect_fail(b, DFQ_ERR_PARSE, "negative", NULL);
}

static void test_duplicate_producer(void **state)
{
	struct mb *b = conv_model();
	b->nodes[2]->output[0] = tstr("r"); /* Flatten writes the Relu's output too */
	expect_fail(b, DFQ_ERR_GRAPH, "'r' is produced by both node 'Relu_1' and node 'flat'",
		    NULL);
	b = conv_model();
	mb_init(b, tensor_f32("r", 1, (int64_t[]){1}, 1, (float[]){0}));
	expect_fail(b, DFQ_ERR_GRAPH, "'r'", "initializer");
	b = conv_model();
	mb_init(b, tensor_f32("W", 1, (int64_t[]){1}, 1, (float[]){0}));
	expect_fail(b, DFQ_ERR_PARSE, "two initializers named 'W'", NULL);
}

static void test_bad_attributes(void **state)
{
	struct mb *b = conv_model();
	Onnx__AttributeProto *a = add_attr(b->nodes[0], "strides", 99);
	(void)a;
	expect_fail(b, DFQ_ERR_PARSE, "attribute 'strides' of node 'conv1'", "unknown type 99");
	/* a sub-graph on a supported op */
	b = conv_model();
	add_attr(b->nodes[0], "body", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
	expect_fail(b, DFQ_ERR_UNSUPPORTED, "'body'", "GRAPH");
	/* the right name with the wrong type: the op's parser refuses it */
	b = conv_model();
	a = add_attr(b->nodes[0], "strides", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
	a->has_f = 1;
	a->f = 2.0f;
	expect_fail(b, DFQ_ERR_PARSE, "conv1", "strides");
	/* a TENSOR attribute without a tensor */
	b = view_model(2);
	b->nodes[2]->attribute[0]->t = NULL;
	expect_fail(b, DFQ_ERR_PARSE, "attribute 'value' of node 'k0'", NULL);
	/* a FLOAT16 Constant */
	b = view_model(2);
	b->nodes[2]->attribute[0]->t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16;
	expect_fail(b, DFQ_ERR_UNSUPPORTED, "attribute 'value' of node 'k0'", "FLOAT16");
	/* a string with a NUL byte */
	b = conv_model();
	a = add_attr(b->nodes[0], "auto_pad", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
	a->has_s = 1;
	a->s.len = 3;
	a->s.data = talloc(3);
	memcpy(a->s.data, "a\0b", 3);
	expect_fail(b, DFQ_ERR_PARSE, "NUL", NULL);
}

static void test_duplicate_names(void **state)
{
	struct mb *b = conv_model();
	b->nodes[1]->name = tstr("conv1");
	b->nodes[2]->name = tstr("conv1");
	struct dfq_graph *g = load_ok(b);
	for (int i = 0; i < g->nnodes; i++)
		for (int j = 0; j < i; j++)
			assert_string_not_equal(g->nodes[i].name, g->nodes[j].name);
	assert_string_equal(g->nodes[0].name, "conv1");
	dfq_graph_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_conv_relu_gemm, free_all),
	    cmocka_unit_test_teardown(test_load_file, free_all),
	    cmocka_unit_test_teardown(test_view_static_folds, free_all),
	    cmocka_unit_test_teardown(test_view_symbolic_runs, free_all),
	    cmocka_unit_test_teardown(test_read_tensor_file, free_all),
	    cmocka_unit_test_teardown(test_every_prefix, free_all),
	    cmocka_unit_test_teardown(test_random_bytes, free_all),
	    cmocka_unit_test_teardown(test_not_a_model, free_all),
	    cmocka_unit_test_teardown(test_float16_initializer, free_all),
	    cmocka_unit_test_teardown(test_int32_input, free_all),
	    cmocka_unit_test_teardown(test_int32_initializer_becomes_int64, free_all),
	    cmocka_unit_test_teardown(test_missing_tensor, free_all),
	    cmocka_unit_test_teardown(test_cycle, free_all),
	    cmocka_unit_test_teardown(test_unsupported_op, free_all),
	    cmocka_unit_test_teardown(test_external_data, free_all),
	    cmocka_unit_test_teardown(test_truncated_raw_data, free_all),
	    cmocka_unit_test_teardown(test_duplicate_producer, free_all),
	    cmocka_unit_test_teardown(test_bad_attributes, free_all),
	    cmocka_unit_test_teardown(test_duplicate_names, free_all),
	};
	DFQ_RUN_TESTS(tests);
}
