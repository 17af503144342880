/* onnx_import.c - ONNX ModelProto (protobuf-c) to a finalized dfq_graph. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfq/dfq_onnx.h"
#include "onnx_internal.h"

/* How the model is named in messages, and what is being built. */
struct importer {
	const Onnx__ModelProto *m; /* borrowed */
	struct dfq_graph *g;       /* owned until handed out */
	int64_t opset;
	char src[DFQ_ERROR_MAX / 2];   /* "'a.onnx'" or "the buffer" */
	char model[DFQ_ERROR_MAX / 2]; /* "model 'a.onnx'" or "the model" */
};

/* snprintf for message fragments: a fragment cut short only shortens an
 * error message (which shows "..." when cut), never a name we store. */
static void fragment(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fragment(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static bool str_empty(const char *s)
{
	return !s || !s[0];
}

static bool is_default_domain(const char *d)
{
	return str_empty(d) || strcmp(d, "ai.onnx") == 0;
}

/* Version of domain in opset_import, or -1. */
static int64_t domain_opset(const Onnx__ModelProto *m, const char *domain)
{
	for (size_t i = 0; i < m->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto *o = m->opset_import[i];
		if (!o)
			continue;
		bool match = is_default_domain(domain)
				 ? is_default_domain(o->domain)
				 : (o->domain && strcmp(o->domain, domain) == 0);
		if (match)
			return o->has_version ? o->version : -1;
	}
	return -1;
}

static bool uses_default_domain(const Onnx__ModelProto *m)
{
	if (!m->graph)
		return true;
	for (size_t i = 0; i < m->graph->n_node; i++)
		if (is_default_domain(m->graph->node[i]->domain))
			return true;
	return m->graph->n_node == 0;
}

static dfq_status import_header(struct importer *im, struct dfq_error *err)
{
	const Onnx__ModelProto *m = im->m;
	im->opset = domain_opset(m, "");
	if (im->opset < 0 && uses_default_domain(m))
		return dfq_error_set(err, DFQ_ERR_PARSE,
				     "%s has no opset version for the default ONNX domain",
				     im->model);
	/* without default-domain nodes, the first node's domain is the problem */
	if (im->opset < 0)
		im->opset = 0;
	else if (im->opset < 1)
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s declares ONNX opset %lld", im->model,
				     (long long)im->opset);
	if (!m->graph)
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s has no graph", im->model);
	if (m->graph->n_node == 0)
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s has an empty graph (no nodes)",
				     im->model);
	if (m->graph->n_sparse_initializer > 0)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s has sparse initializers, which dfq does not support",
				     im->model);
	struct dfq_graph *g = im->g;
	g->opset = im->opset;
	g->ir_version = m->has_ir_version ? m->ir_version : 0;
	const char *pn = m->producer_name ? m->producer_name : "";
	const char *pv = m->producer_version ? m->producer_version : "";
	char prod[256];
	snprintf(prod, sizeof prod, "%s%s%s", pn, (pn[0] && pv[0]) ? " " : "", pv);
	char *p = strdup(prod);
	char *nm = strdup(m->graph->name ? m->graph->name : "");
	if (!p || !nm) {
		free(p);
		free(nm);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
	}
	free(g->producer);
	g->producer = p;
	free(g->name);
	g->name = nm;
	return DFQ_OK;
}

static dfq_status import_initializers(struct importer *im, struct dfq_error *err)
{
	const Onnx__GraphProto *gp = im->m->graph;
	for (size_t i = 0; i < gp->n_initializer; i++) {
		const Onnx__TensorProto *tp = gp->initializer[i];
		if (str_empty(tp->name))
			return dfq_error_set(err, DFQ_ERR_PARSE,
					     "%s has an initializer (#%zu) "
					     "without a name",
					     im->model, i);
		int vi = dfq_graph_intern_value(im->g, tp->name, err);
		if (vi < 0)
			return err ? err->status : DFQ_ERR_NOMEM;
		if (im->g->values[vi].init)
			return dfq_error_set(err, DFQ_ERR_PARSE,
					     "%s has two initializers named '%s'", im->model,
					     tp->name);
		char what[DFQ_ERROR_MAX / 2];
		fragment(what, sizeof what, "initializer '%s'", tp->name);
		struct dfq_tensor *t;
		dfq_status st = onnx_decode_tensor(tp, what, im->model, &t, err);
		if (st != DFQ_OK)
			return st;
		im->g->values[vi].init = t;
		dfq_tensor_shape(t, &im->g->values[vi].shape);
	}
	return DFQ_OK;
}

/* What kind of non-tensor type tp is, for messages. */
static const char *type_kind(const Onnx__TypeProto *tp)
{
	switch (tp->value_case) {
	case ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE:
		return "a sequence";
	case ONNX__TYPE_PROTO__VALUE_MAP_TYPE:
		return "a map";
	case ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE:
		return "an optional";
	case ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE:
		return "a sparse tensor";
	default:
		return "of no known type";
	}
}

/* Declared type of a graph input: float32 tensors (int64 for shape and index
 * inputs); symbolic or missing
 * dims become -1, a missing shape an unknown rank. */
static dfq_status input_shape(const struct importer *im, const Onnx__ValueInfoProto *vp,
			      struct dfq_shape *s, struct dfq_error *err)
{
	memset(s, 0, sizeof *s);
	s->dtype = DFQ_DTYPE_F32;
	s->ndim = -1;
	const Onnx__TypeProto *tp = vp->type;
	if (!tp)
		return DFQ_OK;
	if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "graph input '%s' is %s, not a tensor; dfq supports float32 "
				     "tensor inputs only",
				     vp->name, type_kind(tp));
	const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
	/* int64 inputs carry shapes and indices (Reshape, Gather, ...): allowed. */
	if (tt->has_elem_type && tt->elem_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) {
		s->dtype = DFQ_DTYPE_I64;
	} else if (tt->has_elem_type && tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
		char b[32];
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "graph input '%s' has element type %s; dfq supports float32 "
				     "models only",
				     vp->name, onnx_elem_type_name(tt->elem_type, b, sizeof b));
	}
	if (!tt->shape)
		return DFQ_OK;
	if (tt->shape->n_dim > DFQ_MAX_DIMS)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "graph input '%s' has rank %zu; dfq supports up to %d "
				     "dimensions",
				     vp->name, tt->shape->n_dim, DFQ_MAX_DIMS);
	s->ndim = (int)tt->shape->n_dim;
	for (int i = 0; i < s->ndim; i++) {
		const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
		bool fixed =
		    d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
		    d->dim_value >= 0;
		s->dims[i] = fixed ? d->dim_value : -1;
	}
	(void)im;
	return DFQ_OK;
}

/* Graph inputs that are initializers (older exporters list every weight as
 * an input) are constants, not run-time inputs. */
static dfq_status import_inputs(struct importer *im, struct dfq_error *err)
{
	const Onnx__GraphProto *gp = im->m->graph;
	struct dfq_graph *g = im->g;
	g->inputs = malloc((gp->n_input ? gp->n_input : 1) * sizeof *g->inputs);
	if (!g->inputs)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < gp->n_input; i++) {
		const Onnx__ValueInfoProto *vp = gp->input[i];
		if (str_empty(vp->name))
			return dfq_error_set(err, DFQ_ERR_PARSE,
					     "%s has a graph input (#%zu) without a name",
					     im->model, i);
		int vi = dfq_graph_intern_value(g, vp->name, err);
		if (vi < 0)
			return err ? err->status : DFQ_ERR_NOMEM;
		struct dfq_value *v = &g->values[vi];
		if (v->init)
			continue;
		if (v->is_input)
			return dfq_error_set(err, DFQ_ERR_PARSE, "%s lists graph input '%s' twice",
					     im->model, vp->name);
		dfq_status st = input_shape(im, vp, &v->shape, err);
		if (st != DFQ_OK)
			return st;
		v->is_input = true;
		g->inputs[g->ninputs++] = vi;
	}
	return DFQ_OK;
}

static dfq_status import_outputs(struct importer *im, struct dfq_error *err)
{
	const Onnx__GraphProto *gp = im->m->graph;
	struct dfq_graph *g = im->g;
	if (gp->n_output == 0)
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s has no graph outputs", im->model);
	g->outputs = malloc(gp->n_output * sizeof *g->outputs);
	if (!g->outputs)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < gp->n_output; i++) {
		const Onnx__ValueInfoProto *vp = gp->output[i];
		if (str_empty(vp->name))
			return dfq_error_set(err, DFQ_ERR_PARSE,
					     "%s has a graph output (#%zu) without a name",
					     im->model, i);
		int vi = dfq_graph_intern_value(g, vp->name, err);
		if (vi < 0)
			return err ? err->status : DFQ_ERR_NOMEM;
		g->values[vi].is_output = true;
		g->outputs[g->noutputs++] = vi;
	}
	return DFQ_OK;
}

/* --- attributes ------------------------------------------------------------ */

static const char *attr_type_name(int t)
{
	switch (t) {
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH:
		return "GRAPH";
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS:
		return "GRAPHS";
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS:
		return "TENSORS";
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR:
		return "SPARSE_TENSOR";
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSORS:
		return "SPARSE_TENSORS";
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO:
		return "TYPE_PROTO";
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTOS:
		return "TYPE_PROTOS";
	default:
		return "?";
	}
}

/* IR version 1 attributes have no type field: tell it from the payload. */
static int attr_proto_type(const Onnx__AttributeProto *ap)
{
	if (ap->has_type && ap->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED)
		return ap->type;
	if (ap->t)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
	if (ap->g)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
	if (ap->n_floats)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
	if (ap->n_ints)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
	if (ap->n_strings)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
	if (ap->has_s)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
	if (ap->has_i)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
	if (ap->has_f)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
	return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED;
}

/* Bytes to a NUL-terminated string; embedded NULs would silently cut it. */
static dfq_status bytes_str(const ProtobufCBinaryData *b, const char *what, char **out,
			    struct dfq_error *err)
{
	if (b->len && memchr(b->data, 0, b->len))
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s holds a string with a NUL byte", what);
	*out = malloc(b->len + 1);
	if (!*out)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
	if (b->len)
		memcpy(*out, b->data, b->len);
	(*out)[b->len] = '\0';
	return DFQ_OK;
}

/* Free what attr_from_proto allocated (lists of numbers are borrowed). */
static void tmp_attr_free(struct dfq_attr *a)
{
	free(a->s);
	dfq_tensor_free(a->t);
	if (a->strings)
		for (int i = 0; i < a->n; i++)
			free(a->strings[i]);
	free(a->strings);
}

/* Fill a (zeroed) from ap; a borrows ap's name and number lists. */
static dfq_status attr_from_proto(const struct importer *im, const Onnx__NodeProto *np,
				  const char *node, const Onnx__AttributeProto *ap,
				  struct dfq_attr *a, struct dfq_error *err)
{
	char what[DFQ_ERROR_MAX / 2];
	fragment(what, sizeof what, "attribute '%s' of node '%s'", ap->name, node);
	if (!str_empty(ap->ref_attr_name))
		return dfq_error_set(err, DFQ_ERR_PARSE,
				     "%s refers to a function attribute outside a function", what);
	a->name = ap->name;
	int t = attr_proto_type(ap);
	size_t n = 0;
	switch (t) {
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
		a->type = DFQ_ATTR_FLOAT;
		a->f = ap->f;
		return DFQ_OK;
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
		a->type = DFQ_ATTR_INT;
		a->i = ap->i;
		return DFQ_OK;
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
		a->type = DFQ_ATTR_STRING;
		return bytes_str(&ap->s, what, &a->s, err);
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR:
		a->type = DFQ_ATTR_TENSOR;
		if (!ap->t)
			return dfq_error_set(err, DFQ_ERR_PARSE, "%s has type TENSOR but no tensor",
					     what);
		return onnx_decode_tensor(ap->t, what, im->model, &a->t, err);
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
		a->type = DFQ_ATTR_FLOATS;
		a->floats = ap->floats;
		n = ap->n_floats;
		break;
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
		a->type = DFQ_ATTR_INTS;
		a->ints = ap->ints;
		n = ap->n_ints;
		break;
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS:
		a->type = DFQ_ATTR_STRINGS;
		n = ap->n_strings;
		if (n > (size_t)INT32_MAX)
			break;
		a->strings = calloc(n ? n : 1, sizeof *a->strings);
		if (!a->strings)
			return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
		for (size_t i = 0; i < n; i++) {
			a->n = (int)i + 1;
			dfq_status st = bytes_str(&ap->strings[i], what, &a->strings[i], err);
			if (st != DFQ_OK)
				return st;
		}
		break;
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED:
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s has no type", what);
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH:
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS:
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS:
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR:
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSORS:
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO:
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTOS:
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s (%s) has type %s, which dfq does not support", what,
				     np->op_type, attr_type_name(t));
	default:
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s has unknown type %d", what, t);
	}
	if (n > (size_t)INT32_MAX)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED, "%s has too many elements", what);
	a->n = (int)n;
	return DFQ_OK;
}

/* --- nodes ----------------------------------------------------------------- */

static dfq_status import_named_node(struct importer *im, const Onnx__NodeProto *np,
				    const char *name, struct dfq_error *err)
{
	if (!is_default_domain(np->domain)) {
		int64_t v = domain_opset(im->m, np->domain);
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "unsupported operator '%s' from domain '%s' (node '%s', "
				     "opset %lld)",
				     np->op_type, np->domain, name, (long long)v);
	}
	if (np->n_input > (size_t)INT32_MAX || np->n_output > (size_t)INT32_MAX)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED, "node '%s' has too many inputs",
				     name);
	int ni = dfq_graph_add_node(im->g, name, np->op_type, im->opset, (int)np->n_input,
				    (const char *const *)np->input, (int)np->n_output,
				    (const char *const *)np->output, err);
	if (ni < 0)
		return err ? err->status : DFQ_ERR_GRAPH;
	/* An unsupported op fails in finalize with the standard message; its
	 * attributes (e.g. the sub-graphs of If/Loop) do not matter. */
	if (dfq_op_lookup(np->op_type) == DFQ_OP_COUNT)
		return DFQ_OK;
	for (size_t i = 0; i < np->n_attribute; i++) {
		const Onnx__AttributeProto *ap = np->attribute[i];
		if (str_empty(ap->name))
			return dfq_error_set(err, DFQ_ERR_PARSE,
					     "node '%s' has an attribute without a name", name);
		struct dfq_attr a = {0};
		dfq_status st = attr_from_proto(im, np, name, ap, &a, err);
		if (st == DFQ_OK)
			st = dfq_graph_node_add_attr(im->g, ni, &a, err);
		tmp_attr_free(&a);
		if (st != DFQ_OK)
			return st;
	}
	return DFQ_OK;
}

/* Unnamed nodes are called "<op_type>_<index>" (index in the model). */
static dfq_status import_node(struct importer *im, size_t idx, struct dfq_error *err)
{
	const Onnx__NodeProto *np = im->m->graph->node[idx];
	if (str_empty(np->op_type))
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s has a node (#%zu) without an op_type",
				     im->model, idx);
	if (!str_empty(np->name))
		return import_named_node(im, np, np->name, err);
	size_t len = strlen(np->op_type) + 24;
	char *gen = malloc(len);
	if (!gen)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
	snprintf(gen, len, "%s_%zu", np->op_type, idx);
	dfq_status st = import_named_node(im, np, gen, err);
	free(gen);
	return st;
}

/* --- node name uniqueness ----------------------------------------------------- */

struct name_ref {
	const char *name;
	int idx;
};

static int cmp_name_ref(const void *a, const void *b)
{
	const struct name_ref *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* Layers are addressed by name, so names must be unique: repeated names
 * (or a generated "Relu_3" meeting a real one) get a "_<k>" suffix; the
 * first node of each name keeps it.  A suffix can collide again, hence
 * the rounds. */
static dfq_status unique_names(struct dfq_graph *g, struct dfq_error *err)
{
	struct name_ref *refs = malloc((size_t)(g->nnodes ? g->nnodes : 1) * sizeof *refs);
	if (!refs)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
	dfq_status st = DFQ_OK;
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < g->nnodes; i++)
			refs[i] = (struct name_ref){g->nodes[i].name, i};
		qsort(refs, (size_t)g->nnodes, sizeof *refs, cmp_name_ref);
		bool renamed = false;
		for (int i = 1, first = 0, k = 1; i < g->nnodes; i++) {
			if (strcmp(refs[i].name, refs[first].name) != 0) {
				first = i;
				k = 1;
				continue;
			}
			struct dfq_node *n = &g->nodes[refs[i].idx];
			size_t len = strlen(refs[first].name) + 16;
			char *nn = malloc(len);
			if (nn)
				snprintf(nn, len, "%s_%d", refs[first].name, ++k);
			if (!nn) {
				st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
				goto out;
			}
			/* refs[i].name points into n->name: nothing reads it again */
			free(n->name);
			n->name = nn;
			renamed = true;
		}
		if (!renamed)
			goto out;
	}
	st = dfq_error_set(err, DFQ_ERR_GRAPH, "cannot give the nodes unique names");
out:
	free(refs);
	return st;
}

static dfq_status import_model(struct importer *im, struct dfq_error *err)
{
	dfq_status st;
	if ((st = import_header(im, err)) || (st = import_initializers(im, err)) ||
	    (st = import_inputs(im, err)) || (st = import_outputs(im, err)))
		return st;
	for (size_t i = 0; i < im->m->graph->n_node; i++)
		if ((st = import_node(im, i, err)))
			return st;
	if ((st = unique_names(im->g, err)))
		return st;
	return dfq_graph_finalize(im->g, err);
}

/* Parse buf and build the graph; path is NULL for a buffer. */
static dfq_status load(const uint8_t *buf, size_t len, const char *path, struct dfq_graph **out,
		       struct dfq_error *err)
{
	*out = NULL;
	struct importer im = {0};
	if (path) {
		fragment(im.src, sizeof im.src, "'%s'", path);
		fragment(im.model, sizeof im.model, "model '%s'", path);
	} else {
		snprintf(im.src, sizeof im.src, "the buffer");
		snprintf(im.model, sizeof im.model, "the model");
	}
	Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
	if (!m)
		return dfq_error_set(err, DFQ_ERR_PARSE,
				     "%s is not an ONNX model (protobuf parse failed)", im.src);
	im.m = m;
	im.g = dfq_graph_new(err);
	dfq_status st = im.g ? import_model(&im, err) : (err ? err->status : DFQ_ERR_NOMEM);
	onnx__model_proto__free_unpacked(m, NULL);
	if (st != DFQ_OK) {
		dfq_graph_free(im.g);
		return st;
	}
	*out = im.g;
	return DFQ_OK;
}

dfq_status dfq_onnx_load_buffer(const uint8_t *buf, size_t len, struct dfq_graph **out,
				struct dfq_error *err)
{
	return load(buf, len, NULL, out, err);
}

dfq_status dfq_onnx_load_file(const char *path, struct dfq_graph **out, struct dfq_error *err)
{
	*out = NULL;
	uint8_t *buf;
	size_t len;
	dfq_status st = onnx_read_file(path, &buf, &len, err);
	if (st != DFQ_OK)
		return st;
	st = load(buf, len, path, out, err);
	free(buf);
	return st;
}
