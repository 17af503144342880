/* dfq_graph.h - the graph IR: named values (tensors) and nodes (operators).
 *
 * A graph owns everything in it: value names, initializer tensors, nodes and
 * their attributes.  Values are referenced by index into g->values; a node's
 * optional input that is left empty is -1.  After dfq_graph_finalize() the
 * nodes array is in topological order, every node's op is resolved and its
 * parameters parsed, static shapes are inferred and constant sub-graphs
 * (Constant nodes, shape arithmetic feeding Reshape, ...) are folded into
 * initializers. */
#ifndef DFQ_GRAPH_H
#define DFQ_GRAPH_H

#include <stdbool.h>
#include <stdint.h>

#include "dfq_error.h"
#include "dfq_ops.h"
#include "dfq_tensor.h"

typedef enum dfq_attr_type {
	DFQ_ATTR_FLOAT = 0,
	DFQ_ATTR_INT,
	DFQ_ATTR_STRING,
	DFQ_ATTR_TENSOR,
	DFQ_ATTR_FLOATS,
	DFQ_ATTR_INTS,
	DFQ_ATTR_STRINGS,
} dfq_attr_type;

/* One ONNX attribute, kept verbatim on the node (for export and display). */
struct dfq_attr {
	char *name;              /* owned */
	dfq_attr_type type;
	float f;                 /* FLOAT */
	int64_t i;               /* INT */
	char *s;                 /* STRING, owned, NUL-terminated */
	struct dfq_tensor *t;    /* TENSOR, owned */
	int n;                   /* element count of floats/ints/strings */
	float *floats;           /* FLOATS, owned */
	int64_t *ints;           /* INTS, owned */
	char **strings;          /* STRINGS, owned (each and the array) */
};

struct dfq_value {
	char *name;              /* owned, unique in the graph */
	struct dfq_shape shape;  /* static shape; dims -1 when unknown (symbolic batch) */
	struct dfq_tensor *init; /* owned constant data (initializer or folded), or NULL */
	int producer;            /* index of the producing node, -1 if none */
	int nconsumers;          /* number of node inputs reading it (counting repeats) */
	bool is_input;           /* a graph input fed at run time */
	bool is_output;          /* a graph output */
};

struct dfq_node {
	char *name;              /* owned; never NULL (import names unnamed nodes "<op_type>_<index>") */
	char *op_type;           /* owned, as in the model */
	dfq_op op;               /* resolved by finalize */
	int64_t opset;           /* ai.onnx opset the node is interpreted with */
	int ninputs;
	int *inputs;             /* owned; value indices, -1 for an empty optional input */
	int noutputs;
	int *outputs;            /* owned; value indices, -1 for an unused optional output */
	int nattrs;
	struct dfq_attr *attrs;  /* owned */
	struct dfq_op_params p;  /* parsed by the op's parse() in finalize */
};

struct dfq_graph {
	char *name;              /* owned, may be "" */
	char *producer;          /* owned, e.g. "pytorch 1.13.1", may be "" */
	int64_t opset;           /* default-domain opset import of the model */
	int64_t ir_version;
	int nvalues, cap_values;
	struct dfq_value *values;
	int nnodes, cap_nodes;
	struct dfq_node *nodes;
	int ninputs;             /* run-time inputs (graph inputs that are not initializers) */
	int *inputs;             /* owned, value indices */
	int noutputs;
	int *outputs;            /* owned, value indices */
};

/* Empty graph.  Caller owns it; free with dfq_graph_free(). */
struct dfq_graph *dfq_graph_new(struct dfq_error *err);
void dfq_graph_free(struct dfq_graph *g);

/* Index of the value called name, or -1. */
int dfq_graph_find_value(const struct dfq_graph *g, const char *name);
/* Index of the value called name, created (no data, unknown shape) if absent.
 * Returns -1 and fills err on allocation failure. */
int dfq_graph_intern_value(struct dfq_graph *g, const char *name, struct dfq_error *err);

/* Append a node; copies name/op_type; input and output names are interned
 * ("" means an empty optional slot, stored as -1).  The node's attributes
 * array starts empty; add with dfq_graph_node_add_attr().  Returns the node
 * index, or -1 with err filled (e.g. a value produced by two nodes). */
int dfq_graph_add_node(struct dfq_graph *g, const char *name, const char *op_type, int64_t opset,
		       int ninputs, const char *const *inputs, int noutputs,
		       const char *const *outputs, struct dfq_error *err);
/* Append a copy of *a to node ni (deep copy; the caller keeps a). */
dfq_status dfq_graph_node_add_attr(struct dfq_graph *g, int ni, const struct dfq_attr *a,
				   struct dfq_error *err);

/* Find an attribute of node n by name, or NULL. */
const struct dfq_attr *dfq_node_attr(const struct dfq_node *n, const char *name);

/* Free everything attribute a owns and zero *a; the struct itself stays the
 * caller's (usually a slot of a node's attrs array). */
void dfq_attr_clear(struct dfq_attr *a);
/* Free everything node n owns (name, op_type, inputs, outputs, attributes)
 * and zero *n; the struct itself stays the caller's (usually a slot of
 * g->nodes).  For code that drops nodes from g->nodes: value producers and
 * consumer counts are left as they are (dfq_graph_finalize recounts). */
void dfq_node_clear(struct dfq_node *n);

/* Deep copy of node src into dst (its previous contents are not freed).  On
 * failure dst is zeroed. */
dfq_status dfq_node_copy(struct dfq_node *dst, const struct dfq_node *src, struct dfq_error *err);

/* Put "OP node 'NAME': " in front of err's message unless it already names
 * the node (kernels often do), set err->status to st and return st. */
dfq_status dfq_node_name_error(struct dfq_error *err, const struct dfq_node *n, dfq_status st);

/* Run node n once: its op's shape() on in_shape/in into out_shape, a new
 * tensor per used output into out[] (out[] must come in all NULL; unused
 * outputs stay NULL), then the kernel (the fast one when fast and the op has
 * one) with ctx.  On success the caller owns out[].  On failure every tensor
 * made here is freed, out[] is all NULL again and err names the node. */
dfq_status dfq_node_compute(const struct dfq_node *n, const struct dfq_shape *const *in_shape,
			    const struct dfq_tensor *const *in, struct dfq_shape *out_shape,
			    struct dfq_tensor **out, const struct dfq_kctx *ctx, bool fast,
			    struct dfq_error *err);

/* Resolve ops (DFQ_ERR_UNSUPPORTED naming op type, node and opset), parse
 * parameters, check every input is produced/initialized/fed, sort
 * topologically (DFQ_ERR_GRAPH on a cycle), infer static shapes and fold
 * constants.  On failure the graph must only be freed. */
dfq_status dfq_graph_finalize(struct dfq_graph *g, struct dfq_error *err);

/* Number of float parameters held by initializers read by Conv/Gemm/MatMul/BN nodes. */
int64_t dfq_graph_param_count(const struct dfq_graph *g);

#endif
