/* onnx_export.c - the model as it stands (struct dfq_model) to an ONNX ModelProto (protobuf-c),
 * packed to bytes: float (FP32 mode) or with QuantizeLinear/DequantizeLinear pairs (QUANT mode).
 *
 * The graph is written node for node with its names, attributes and opset; what the model runs
 * with that the graph does not hold is added: the run-time biases (bias correction, fake-quantized
 * biases), and in QDQ mode each quantized weight as integer codes with a DequantizeLinear and each
 * enabled activation point as QuantizeLinear -> DequantizeLinear (a Clip before them when the
 * grid is narrower than the 8-bit type's saturation).  Every protobuf object comes from one
 * arena, freed at the end: nothing of the model is changed. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfq/dfq_model.h"
#include "dfq/dfq_onnx.h"
#include "onnx_internal.h"

/* --- arena ------------------------------------------------------------------------------- */

struct arena {
	void **p;
	size_t n, cap;
	bool oom;
};

static void *ar_new(struct arena *a, size_t size)
{
	if (a->oom)
		return NULL;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 256;
		void **p = realloc(a->p, cap * sizeof *p);
		if (!p) {
			a->oom = true;
			return NULL;
		}
		a->p = p;
		a->cap = cap;
	}
	void *q = calloc(1, size ? size : 1);
	if (!q) {
		a->oom = true;
		return NULL;
	}
	a->p[a->n++] = q;
	return q;
}

static char *ar_fmt(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *ar_fmt(struct arena *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *s = n >= 0 ? ar_new(a, (size_t)n + 1) : NULL;
	if (!s)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

static void ar_free(struct arena *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->p[i]);
	free(a->p);
	memset(a, 0, sizeof *a);
}

/* A growing array of pointers inside the arena's bookkeeping (freed by ar_free). */
struct plist {
	void **v;
	size_t n, cap;
};

static bool pl_push(struct arena *a, struct plist *l, void *x)
{
	if (!x || a->oom)
		return false;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		void **v = ar_new(a, cap * sizeof *v);
		if (!v)
			return false;
		if (l->n)
			memcpy(v, l->v, l->n * sizeof *v);
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = x;
	return true;
}

/* --- the builder --------------------------------------------------------------------------- */

struct builder {
	const struct dfq_model *m;
	const struct dfq_graph *g;
	bool qdq;
	struct arena ar;
	struct plist nodes, inits;
	char **prod_name; /* per value: the name its producer (or the initializer) writes */
	char **cons_name; /* per value: the name the graph's nodes read it by */
	const struct dfq_tensor **init_of; /* per value: the tensor written for it (NULL: none) */
	bool *skip_init; /* per value: its initializer is replaced (quantized weight, bias) */
	int *point_of;   /* per value: enabled activation point index, or -1 */
	struct dfq_onnx_export_info *info;
};

static bool is_input(const struct dfq_graph *g, int vi)
{
	for (int i = 0; i < g->ninputs; i++)
		if (g->inputs[i] == vi)
			return true;
	return false;
}

/* A name the graph does not use: base, else base_2, base_3, ... */
static char *fresh(struct builder *b, const char *base, const char *sfx)
{
	char *s = ar_fmt(&b->ar, "%s%s", base, sfx);
	for (int k = 2; s && dfq_graph_find_value(b->g, s) >= 0 && k < 1000; k++)
		s = ar_fmt(&b->ar, "%s%s_%d", base, sfx, k);
	return s;
}

static Onnx__TensorProto *tensor_proto(struct builder *b, const char *name, int32_t dtype, int ndim,
                                       const int64_t *dims, const void *data, size_t bytes)
{
	Onnx__TensorProto *t = ar_new(&b->ar, sizeof *t);
	int64_t *d = ar_new(&b->ar, (size_t)(ndim ? ndim : 1) * sizeof *d);
	if (!t || !d)
		return NULL;
	onnx__tensor_proto__init(t);
	t->name = (char *)name;
	t->has_data_type = true;
	t->data_type = dtype;
	t->n_dims = (size_t)ndim;
	if (ndim)
		memcpy(d, dims, (size_t)ndim * sizeof *d);
	t->dims = d;
	t->has_raw_data = true;
	t->raw_data.len = bytes;
	t->raw_data.data = (uint8_t *)data; /* borrowed: packed before anything is freed */
	return t;
}

static bool add_init(struct builder *b, Onnx__TensorProto *t)
{
	return pl_push(&b->ar, &b->inits, t);
}

/* A float32 or int64 dfq tensor as an initializer (data borrowed). */
static bool add_tensor_init(struct builder *b, const char *name, const struct dfq_tensor *t)
{
	int32_t dt = t->dtype == DFQ_DTYPE_F32 ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
	                                       : ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
	return add_init(b, tensor_proto(b, name, dt, t->ndim, t->dims, t->data,
	                                (size_t)t->numel * dfq_dtype_size(t->dtype)));
}

/* A float32 scalar or vector initializer copied into the arena. */
static bool add_float_init(struct builder *b, const char *name, const float *x, int64_t n,
                           bool vector)
{
	float *d = ar_new(&b->ar, (size_t)n * sizeof *d);
	if (!d)
		return false;
	memcpy(d, x, (size_t)n * sizeof *d);
	return add_init(b, tensor_proto(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
	                                vector ? 1 : 0, &n, d, (size_t)n * sizeof *d));
}

static Onnx__NodeProto *node_proto(struct builder *b, const char *name, const char *op, int nin,
                                   char **in, int nout, char **out)
{
	Onnx__NodeProto *n = ar_new(&b->ar, sizeof *n);
	char **i = ar_new(&b->ar, (size_t)(nin ? nin : 1) * sizeof *i);
	char **o = ar_new(&b->ar, (size_t)(nout ? nout : 1) * sizeof *o);
	if (!n || !i || !o)
		return NULL;
	onnx__node_proto__init(n);
	n->name = (char *)name;
	n->op_type = (char *)op;
	n->domain = "";
	n->n_input = (size_t)nin;
	n->input = i;
	for (int k = 0; k < nin; k++)
		i[k] = in[k] ? in[k] : "";
	n->n_output = (size_t)nout;
	n->output = o;
	for (int k = 0; k < nout; k++)
		o[k] = out[k];
	return n;
}

static Onnx__AttributeProto *int_attr(struct builder *b, const char *name, int64_t v)
{
	Onnx__AttributeProto *a = ar_new(&b->ar, sizeof *a);
	if (!a)
		return NULL;
	onnx__attribute_proto__init(a);
	a->name = (char *)name;
	a->has_type = true;
	a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
	a->has_i = true;
	a->i = v;
	return a;
}

static Onnx__AttributeProto *attr_proto(struct builder *b, const struct dfq_attr *s)
{
	Onnx__AttributeProto *a = ar_new(&b->ar, sizeof *a);
	if (!a)
		return NULL;
	onnx__attribute_proto__init(a);
	a->name = s->name;
	a->has_type = true;
	switch (s->type) {
	case DFQ_ATTR_FLOAT:
		a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
		a->has_f = true;
		a->f = s->f;
		break;
	case DFQ_ATTR_INT:
		a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
		a->has_i = true;
		a->i = s->i;
		break;
	case DFQ_ATTR_STRING:
		a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
		a->has_s = true;
		a->s.data = (uint8_t *)s->s;
		a->s.len = strlen(s->s);
		break;
	case DFQ_ATTR_TENSOR: {
		const struct dfq_tensor *t = s->t;
		a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
		int32_t dt = t->dtype == DFQ_DTYPE_F32 ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
		                                       : ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
		a->t = tensor_proto(b, "", dt, t->ndim, t->dims, t->data,
		                    (size_t)t->numel * dfq_dtype_size(t->dtype));
		if (!a->t)
			return NULL;
		break;
	}
	case DFQ_ATTR_FLOATS:
		a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
		a->n_floats = (size_t)s->n;
		a->floats = s->floats;
		break;
	case DFQ_ATTR_INTS:
		a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
		a->n_ints = (size_t)s->n;
		a->ints = s->ints;
		break;
	case DFQ_ATTR_STRINGS: {
		ProtobufCBinaryData *v = ar_new(&b->ar, (size_t)(s->n ? s->n : 1) * sizeof *v);
		if (!v)
			return NULL;
		for (int k = 0; k < s->n; k++) {
			v[k].data = (uint8_t *)s->strings[k];
			v[k].len = strlen(s->strings[k]);
		}
		a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
		a->n_strings = (size_t)s->n;
		a->strings = v;
		break;
	}
	}
	return a;
}

static bool set_attrs(struct builder *b, Onnx__NodeProto *n, int na, Onnx__AttributeProto **a)
{
	Onnx__AttributeProto **v = ar_new(&b->ar, (size_t)(na ? na : 1) * sizeof *v);
	if (!v)
		return false;
	for (int k = 0; k < na; k++) {
		if (!a[k])
			return false;
		v[k] = a[k];
	}
	n->n_attribute = (size_t)na;
	n->attribute = v;
	return true;
}

/* --- quantizers ------------------------------------------------------------------------------ */

/* The ONNX integer type holding grid q's codes: uint8 for asymmetric grids, int8 for symmetric
 * ones; 0 when the grid has more than 8 bits. */
static int32_t code_type(const struct dfq_qparams *q)
{
	if (q->qmin >= 0 && q->qmax <= 255)
		return ONNX__TENSOR_PROTO__DATA_TYPE__UINT8;
	if (q->qmin >= -128 && q->qmax <= 127)
		return ONNX__TENSOR_PROTO__DATA_TYPE__INT8;
	return 0;
}

/* The grid is narrower than its type's saturation (e.g. 4 bits in a uint8): clamp first. */
static bool needs_clip(const struct dfq_qparams *q)
{
	int32_t t = code_type(q);
	if (t == ONNX__TENSOR_PROTO__DATA_TYPE__UINT8)
		return q->qmin != 0 || q->qmax != 255;
	return q->qmin != -128 || q->qmax != 127;
}

/* Scale (float) and zero-point (code type) initializers for n grids (n == 1: scalars). */
static bool add_grid_inits(struct builder *b, const char *sname, const char *zname,
                           const struct dfq_qparams *q, int64_t n, bool vector)
{
	float *s = ar_new(&b->ar, (size_t)n * sizeof *s);
	uint8_t *z = ar_new(&b->ar, (size_t)n);
	if (!s || !z)
		return false;
	int32_t dt = code_type(&q[0]);
	for (int64_t i = 0; i < n; i++) {
		s[i] = q[i].scale;
		if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__UINT8)
			z[i] = (uint8_t)q[i].zero_point;
		else
			((int8_t *)z)[i] = (int8_t)q[i].zero_point;
	}
	return add_init(b, tensor_proto(b, sname, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
	                                vector ? 1 : 0, &n, s, (size_t)n * sizeof *s)) &&
	       add_init(b, tensor_proto(b, zname, dt, vector ? 1 : 0, &n, z, (size_t)n));
}

/* Constant values x (shape t's) on grids q (ng of them, channel c's elements chosen by
 * chan_stride: element e is on grid (e / chan_stride) % ng, or e % ng when chan_stride is 0) as
 * integer codes + DequantizeLinear writing out_name. */
static bool add_dq_const(struct builder *b, const char *base, const char *out_name,
                         const struct dfq_tensor *t, const float *x, const struct dfq_qparams *q,
                         int ng, int64_t chan_stride, int axis)
{
	uint8_t *codes = ar_new(&b->ar, (size_t)t->numel);
	if (!codes)
		return false;
	int32_t dt = code_type(&q[0]);
	for (int64_t e = 0; e < t->numel; e++) {
		int64_t c = ng == 1 ? 0 : chan_stride ? (e / chan_stride) % ng : e % ng;
		int32_t v = dfq_quant_code(x[e], &q[c]);
		if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__UINT8)
			codes[e] = (uint8_t)v;
		else
			((int8_t *)codes)[e] = (int8_t)v;
	}
	char *qn = fresh(b, base, "_quantized"), *sn = fresh(b, base, "_scale");
	char *zn = fresh(b, base, "_zero_point"), *nn = fresh(b, base, "_DequantizeLinear");
	if (!qn || !sn || !zn || !nn)
		return false;
	if (!add_init(b, tensor_proto(b, qn, dt, t->ndim, t->dims, codes, (size_t)t->numel)) ||
	    !add_grid_inits(b, sn, zn, q, ng, ng > 1))
		return false;
	char *in[3] = {qn, sn, zn}, *out[1] = {(char *)out_name};
	Onnx__NodeProto *n = node_proto(b, nn, "DequantizeLinear", 3, in, 1, out);
	if (!n)
		return false;
	if (ng > 1) {
		Onnx__AttributeProto *a[1] = {int_attr(b, "axis", axis)};
		if (!set_attrs(b, n, 1, a))
			return false;
	}
	return pl_push(&b->ar, &b->nodes, n);
}

/* Activation value vi through (Clip ->) QuantizeLinear -> DequantizeLinear: reads in, writes
 * out. */
static bool add_qdq_act(struct builder *b, int vi, const struct dfq_qparams *q, char *in, char *out)
{
	const char *base = b->g->values[vi].name;
	char *sn = fresh(b, base, "_scale"), *zn = fresh(b, base, "_zero_point");
	if (!sn || !zn || !add_grid_inits(b, sn, zn, q, 1, false))
		return false;
	char *x = in;
	if (needs_clip(q)) {
		float lo = (float)(q->qmin - q->zero_point) * q->scale;
		float hi = (float)(q->qmax - q->zero_point) * q->scale;
		char *ln = fresh(b, base, "_clip_min"), *hn = fresh(b, base, "_clip_max");
		char *cn = fresh(b, base, "_clipped"), *nn = fresh(b, base, "_Clip");
		if (!ln || !hn || !cn || !nn || !add_float_init(b, ln, &lo, 1, false) ||
		    !add_float_init(b, hn, &hi, 1, false))
			return false;
		char *ci[3] = {x, ln, hn}, *co[1] = {cn};
		if (!pl_push(&b->ar, &b->nodes, node_proto(b, nn, "Clip", 3, ci, 1, co)))
			return false;
		b->info->nclips++;
		x = cn;
	}
	char *qv = fresh(b, base, "_quantized");
	char *qn = fresh(b, base, "_QuantizeLinear"), *dn = fresh(b, base, "_DequantizeLinear");
	if (!qv || !qn || !dn)
		return false;
	char *qi[3] = {x, sn, zn}, *qo[1] = {qv};
	char *di[3] = {qv, sn, zn}, *dout[1] = {out};
	b->info->nact_qdq++;
	return pl_push(&b->ar, &b->nodes, node_proto(b, qn, "QuantizeLinear", 3, qi, 1, qo)) &&
	       pl_push(&b->ar, &b->nodes, node_proto(b, dn, "DequantizeLinear", 3, di, 1, dout));
}

/* --- checks ------------------------------------------------------------------------------------
 */

dfq_status dfq_onnx_export_bias_grid(const struct dfq_model *m, int li, float *b,
                                     struct dfq_qparams *q, bool *has_grid, struct dfq_error *err)
{
	const struct dfq_layer *L = &m->layers[li];
	*has_grid = false;
	const struct dfq_tensor *bt = m->g->values[L->b_vi].init;
	const float *src = dfq_tensor_f32(bt);
	for (int64_t o = 0; o < bt->numel; o++)
		b[o] = L->bcorr_q ? src[o] + L->bcorr_q[o] : src[o];
	if (!L->quantized || (L->q.bbits != 8 && L->q.bbits != 16))
		return DFQ_OK;
	float lo, hi;
	dfq_status st = dfq_minmax(b, bt->numel, &lo, &hi, err);
	if (st == DFQ_OK)
		st = dfq_qparams_make(L->q.bbits, L->q.scheme, lo, hi, q, err);
	*has_grid = st == DFQ_OK;
	return st;
}

/* Ops whose meaning is the same in every opset from 7 to 13 as dfq reads them: the opset can
 * be raised under them. */
static bool opset_neutral(const char *op)
{
	static const char *const ok[] = {"Conv",
	                                 "Gemm",
	                                 "MatMul",
	                                 "Relu",
	                                 "Add",
	                                 "Mul",
	                                 "Sub",
	                                 "Div",
	                                 "Flatten",
	                                 "Reshape",
	                                 "Concat",
	                                 "Identity",
	                                 "MaxPool",
	                                 "Transpose",
	                                 "Sigmoid",
	                                 "AveragePool",
	                                 "GlobalAveragePool",
	                                 "BatchNormalization",
	                                 "Tanh",
	                                 "GlobalMaxPool",
	                                 NULL};
	for (int i = 0; ok[i]; i++)
		if (strcmp(op, ok[i]) == 0)
			return true;
	return false;
}

static dfq_status check_qdq(struct builder *b, int64_t *opset, struct dfq_error *err)
{
	const struct dfq_model *m = b->m;
	const struct dfq_graph *g = b->g;
	bool per_channel = false, any = false;
	for (int li = 0; li < m->nlayers; li++) {
		const struct dfq_layer *L = &m->layers[li];
		if (!L->quantized || !L->wqp)
			continue;
		any = true;
		if (code_type(&L->wqp[0]) == 0)
			return dfq_error_set(
			    err, DFQ_ERR_UNSUPPORTED,
			    "cannot export: layer '%s' has %d-bit weights and ONNX "
			    "QuantizeLinear/DequantizeLinear hold 8 bits at most "
			    "(int8/uint8)",
			    L->name, L->q.wbits);
		per_channel = per_channel || L->nwqp > 1;
		for (int k = 0; k < li; k++)
			if (m->layers[k].w_vi == L->w_vi && m->layers[k].quantized)
				return dfq_error_set(
				    err, DFQ_ERR_UNSUPPORTED,
				    "cannot export: layers '%s' and '%s' share their "
				    "weights",
				    m->layers[k].name, L->name);
	}
	for (int pi = 0; pi < m->npoints; pi++) {
		const struct dfq_apoint *pt = &m->points[pi];
		if (!pt->enabled || pt->vi < 0 || g->values[pt->vi].init)
			continue;
		any = true;
		if (code_type(&pt->qp) == 0)
			return dfq_error_set(
			    err, DFQ_ERR_UNSUPPORTED,
			    "cannot export: activation '%s' has a %d-bit grid and ONNX "
			    "QuantizeLinear/DequantizeLinear hold 8 bits at most "
			    "(int8/uint8)",
			    g->values[pt->vi].name, pt->bits);
	}
	if (!any)
		return dfq_error_set(
		    err, DFQ_ERR_ARG,
		    "nothing is quantized: quantize first, or export without --qdq");
	/* QuantizeLinear needs opset 10, Clip with min/max inputs 11, per-channel QDQ 13 */
	int64_t need = per_channel ? 13 : 11;
	*opset = g->opset;
	if (g->opset >= need)
		return DFQ_OK;
	for (int ni = 0; ni < g->nnodes; ni++)
		if (!opset_neutral(g->nodes[ni].op_type))
			return dfq_error_set(
			    err, DFQ_ERR_UNSUPPORTED,
			    "cannot export: the model's opset %lld must be raised to "
			    "13 for QuantizeLinear/DequantizeLinear%s, and its %s "
			    "node '%s' changed meaning in between",
			    (long long)g->opset, per_channel ? " per channel" : "",
			    g->nodes[ni].op_type, g->nodes[ni].name);
	*opset = 13;
	return DFQ_OK;
}

/* --- the graph -----------------------------------------------------------------------------------
 */

static bool value_info(struct builder *b, struct plist *l, int vi, const char *name)
{
	const struct dfq_value *v = &b->g->values[vi];
	Onnx__ValueInfoProto *p = ar_new(&b->ar, sizeof *p);
	Onnx__TypeProto *tp = ar_new(&b->ar, sizeof *tp);
	Onnx__TypeProto__Tensor *tt = ar_new(&b->ar, sizeof *tt);
	if (!p || !tp || !tt)
		return false;
	onnx__value_info_proto__init(p);
	onnx__type_proto__init(tp);
	onnx__type_proto__tensor__init(tt);
	p->name = (char *)name;
	p->type = tp;
	tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	tp->tensor_type = tt;
	tt->has_elem_type = true;
	tt->elem_type = v->shape.dtype == DFQ_DTYPE_I64 ? ONNX__TENSOR_PROTO__DATA_TYPE__INT64
	                                                : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	if (v->shape.ndim >= 0) {
		Onnx__TensorShapeProto *sp = ar_new(&b->ar, sizeof *sp);
		Onnx__TensorShapeProto__Dimension **d =
		    ar_new(&b->ar, (size_t)(v->shape.ndim ? v->shape.ndim : 1) * sizeof *d);
		if (!sp || !d)
			return false;
		onnx__tensor_shape_proto__init(sp);
		sp->n_dim = (size_t)v->shape.ndim;
		sp->dim = d;
		for (int k = 0; k < v->shape.ndim; k++) {
			d[k] = ar_new(&b->ar, sizeof *d[k]);
			if (!d[k])
				return false;
			onnx__tensor_shape_proto__dimension__init(d[k]);
			if (v->shape.dims[k] >= 0) {
				d[k]->value_case =
				    ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
				d[k]->dim_value = v->shape.dims[k];
			} else {
				d[k]->value_case =
				    ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
				d[k]->dim_param = k == 0 ? "N" : ar_fmt(&b->ar, "d%d", k);
			}
		}
		tt->shape = sp;
	}
	return pl_push(&b->ar, l, p);
}

static bool copy_node(struct builder *b, const struct dfq_node *n)
{
	char **in = ar_new(&b->ar, (size_t)(n->ninputs ? n->ninputs : 1) * sizeof *in);
	char **out = ar_new(&b->ar, (size_t)(n->noutputs ? n->noutputs : 1) * sizeof *out);
	Onnx__AttributeProto **a = ar_new(&b->ar, (size_t)(n->nattrs ? n->nattrs : 1) * sizeof *a);
	if (!in || !out || !a)
		return false;
	for (int k = 0; k < n->ninputs; k++)
		in[k] = n->inputs[k] >= 0 ? b->cons_name[n->inputs[k]] : NULL;
	for (int k = 0; k < n->noutputs; k++)
		out[k] = n->outputs[k] >= 0 ? b->prod_name[n->outputs[k]] : "";
	Onnx__NodeProto *p = node_proto(b, n->name, n->op_type, n->ninputs, in, n->noutputs, out);
	for (int k = 0; p && k < n->nattrs; k++)
		a[k] = attr_proto(b, &n->attrs[k]);
	return p && set_attrs(b, p, n->nattrs, a) && pl_push(&b->ar, &b->nodes, p);
}

/* Names, the run-time biases and the quantized weights' codes. */
static dfq_status plan(struct builder *b, struct dfq_error *err)
{
	const struct dfq_model *m = b->m;
	const struct dfq_graph *g = b->g;
	int nv = g->nvalues;
	b->prod_name = ar_new(&b->ar, (size_t)(nv ? nv : 1) * sizeof *b->prod_name);
	b->cons_name = ar_new(&b->ar, (size_t)(nv ? nv : 1) * sizeof *b->cons_name);
	b->init_of = ar_new(&b->ar, (size_t)(nv ? nv : 1) * sizeof *b->init_of);
	b->skip_init = ar_new(&b->ar, (size_t)(nv ? nv : 1) * sizeof *b->skip_init);
	b->point_of = ar_new(&b->ar, (size_t)(nv ? nv : 1) * sizeof *b->point_of);
	if (b->ar.oom)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory exporting the model");
	for (int vi = 0; vi < nv; vi++) {
		b->prod_name[vi] = b->cons_name[vi] = g->values[vi].name;
		b->init_of[vi] = g->values[vi].init;
		b->point_of[vi] = -1;
	}
	/* biases as the mode runs them */
	for (int li = 0; li < m->nlayers; li++) {
		const struct dfq_layer *L = &m->layers[li];
		if (L->b_vi < 0)
			continue;
		const struct dfq_tensor *bt = b->qdq ? L->b_run_q : L->b_run_fp;
		if (bt)
			b->init_of[L->b_vi] = bt;
	}
	if (!b->qdq)
		return DFQ_OK;
	for (int pi = 0; pi < m->npoints; pi++) {
		const struct dfq_apoint *pt = &m->points[pi];
		if (!pt->enabled || pt->vi < 0 || g->values[pt->vi].init)
			continue;
		b->point_of[pt->vi] = pi;
		const char *nm = g->values[pt->vi].name;
		if (is_input(g, pt->vi))
			b->cons_name[pt->vi] = fresh(b, nm, "_dequantized");
		else
			b->prod_name[pt->vi] = fresh(b, nm, "_float");
	}
	return b->ar.oom ? dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory exporting the model")
	                 : DFQ_OK;
}

/* Quantized weights and 8-bit biases as codes + DequantizeLinear (written before the nodes). */
static dfq_status add_quantized_params(struct builder *b, struct dfq_error *err)
{
	const struct dfq_model *m = b->m;
	const struct dfq_graph *g = b->g;
	for (int li = 0; li < m->nlayers; li++) {
		const struct dfq_layer *L = &m->layers[li];
		if (!L->quantized || !L->wqp)
			continue;
		const struct dfq_tensor *w = g->values[L->w_vi].init;
		bool in_out = L->w_ostride == 1 && L->cout > 1; /* W [in, out] */
		int axis = in_out ? w->ndim - 1 : 0;
		if (!add_dq_const(b, g->values[L->w_vi].name, g->values[L->w_vi].name, w,
		                  dfq_tensor_f32(w), L->wqp, L->nwqp, in_out ? 0 : L->w_ostride,
		                  axis))
			return dfq_error_set(err, DFQ_ERR_NOMEM,
			                     "out of memory exporting the model");
		b->skip_init[L->w_vi] = true;
		b->info->nweight_qdq++;
		if (L->b_vi < 0 || (L->q.bbits != 8 && L->q.bbits != 16))
			continue;
		const struct dfq_tensor *bt = g->values[L->b_vi].init;
		float *bias = ar_new(&b->ar, (size_t)bt->numel * sizeof *bias);
		struct dfq_qparams q;
		bool has = false;
		if (!bias)
			return dfq_error_set(err, DFQ_ERR_NOMEM,
			                     "out of memory exporting the model");
		dfq_status st = dfq_onnx_export_bias_grid(m, li, bias, &q, &has, err);
		if (st != DFQ_OK)
			return dfq_error_prefix(err, "layer '%s' bias", L->name);
		if (!has || code_type(&q) == 0) {
			/* 16 bits: no 8-bit type holds the codes; the fake-quantized values
			 * themselves (b_run_q) are written as floats */
			b->info->nbias_float++;
			continue;
		}
		if (!add_dq_const(b, g->values[L->b_vi].name, g->values[L->b_vi].name, bt, bias, &q,
		                  1, 0, 0))
			return dfq_error_set(err, DFQ_ERR_NOMEM,
			                     "out of memory exporting the model");
		b->skip_init[L->b_vi] = true;
		b->info->nbias_qdq++;
	}
	return DFQ_OK;
}

static dfq_status build(struct builder *b, Onnx__ModelProto *mp, int64_t opset,
                        struct dfq_error *err)
{
	const struct dfq_graph *g = b->g;
	dfq_status st = plan(b, err);
	if (st == DFQ_OK && b->qdq)
		st = add_quantized_params(b, err);
	if (st != DFQ_OK)
		return st;
#define OOM() dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory exporting the model")
	/* the model inputs' quantizers come first */
	for (int i = 0; i < g->ninputs; i++) {
		int vi = g->inputs[i];
		if (b->point_of[vi] >= 0 && !add_qdq_act(b, vi, &b->m->points[b->point_of[vi]].qp,
		                                         b->prod_name[vi], b->cons_name[vi]))
			return OOM();
	}
	for (int ni = 0; ni < g->nnodes; ni++) {
		const struct dfq_node *n = &g->nodes[ni];
		if (!copy_node(b, n))
			return OOM();
		for (int k = 0; k < n->noutputs; k++) {
			int vi = n->outputs[k];
			if (vi >= 0 && b->point_of[vi] >= 0 &&
			    !add_qdq_act(b, vi, &b->m->points[b->point_of[vi]].qp, b->prod_name[vi],
			                 b->cons_name[vi]))
				return OOM();
		}
	}
	/* initializers: every constant a node reads */
	bool *used = ar_new(&b->ar, (size_t)(g->nvalues ? g->nvalues : 1));
	if (!used)
		return OOM();
	for (int ni = 0; ni < g->nnodes; ni++)
		for (int k = 0; k < g->nodes[ni].ninputs; k++)
			if (g->nodes[ni].inputs[k] >= 0)
				used[g->nodes[ni].inputs[k]] = true;
	for (int vi = 0; vi < g->nvalues; vi++)
		if (used[vi] && b->init_of[vi] && !b->skip_init[vi] &&
		    !add_tensor_init(b, g->values[vi].name, b->init_of[vi]))
			return OOM();
	struct plist ins = {0}, outs = {0};
	for (int i = 0; i < g->ninputs; i++)
		if (!value_info(b, &ins, g->inputs[i], g->values[g->inputs[i]].name))
			return OOM();
	for (int i = 0; i < g->noutputs; i++)
		if (!value_info(b, &outs, g->outputs[i], b->cons_name[g->outputs[i]]))
			return OOM();

	Onnx__GraphProto *gp = ar_new(&b->ar, sizeof *gp);
	Onnx__OperatorSetIdProto *os = ar_new(&b->ar, sizeof *os);
	Onnx__OperatorSetIdProto **osl = ar_new(&b->ar, sizeof *osl);
	if (!gp || !os || !osl)
		return OOM();
	onnx__graph_proto__init(gp);
	gp->name = g->name && g->name[0] ? g->name : "dfq";
	gp->n_node = b->nodes.n;
	gp->node = (Onnx__NodeProto **)b->nodes.v;
	gp->n_initializer = b->inits.n;
	gp->initializer = (Onnx__TensorProto **)b->inits.v;
	gp->n_input = ins.n;
	gp->input = (Onnx__ValueInfoProto **)ins.v;
	gp->n_output = outs.n;
	gp->output = (Onnx__ValueInfoProto **)outs.v;
	onnx__operator_set_id_proto__init(os);
	os->domain = "";
	os->has_version = true;
	os->version = opset;
	osl[0] = os;
	mp->has_ir_version = true;
	/* opset 13 needs IR version 7 */
	mp->ir_version = g->ir_version ? g->ir_version : 7;
	if (opset >= 13 && mp->ir_version < 7)
		mp->ir_version = 7;
	mp->n_opset_import = 1;
	mp->opset_import = osl;
	mp->producer_name = "dfq";
	mp->producer_version = "";
	mp->doc_string = ar_fmt(
	    &b->ar, "%s by dfq from a model made by %s", b->qdq ? "quantized (QDQ)" : "transformed",
	    g->producer && g->producer[0] ? g->producer : "an unknown producer");
	mp->graph = gp;
	b->info->nnodes = (int)b->nodes.n;
	return b->ar.oom ? OOM() : DFQ_OK;
#undef OOM
}

dfq_status dfq_onnx_export(const struct dfq_model *m, bool qdq, uint8_t **buf, size_t *len,
                           struct dfq_onnx_export_info *info, struct dfq_error *err)
{
	*buf = NULL;
	*len = 0;
	struct dfq_onnx_export_info dummy;
	if (!info)
		info = &dummy;
	memset(info, 0, sizeof *info);
	const uint16_t one = 1;
	if (*(const uint8_t *)&one != 1)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
		                     "exporting ONNX needs a little-endian machine");
	struct builder b = {.m = m, .g = m->g, .qdq = qdq, .info = info};
	int64_t opset = m->g->opset;
	info->opset_in = opset;
	dfq_status st = qdq ? check_qdq(&b, &opset, err) : DFQ_OK;
	Onnx__ModelProto mp;
	onnx__model_proto__init(&mp);
	if (st == DFQ_OK)
		st = build(&b, &mp, opset, err);
	if (st == DFQ_OK) {
		info->opset = opset;
		size_t n = onnx__model_proto__get_packed_size(&mp);
		uint8_t *out = malloc(n ? n : 1);
		if (!out) {
			st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory packing the model");
		} else {
			*len = onnx__model_proto__pack(&mp, out);
			*buf = out;
		}
	}
	ar_free(&b.ar);
	return st;
}
