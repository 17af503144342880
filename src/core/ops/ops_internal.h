/* ops_internal.h - the functions behind dfq_op_defs[] and helpers shared by
 * kernels.  Not part of the public API.
 *
 * Naming: op_<family>_parse / _shape / _forward / _forward_fast with the
 * signatures of struct dfq_op_def.  A family serves several ops when they
 * share code (binary serves Add/Sub/Mul/Div and tells them apart by n->op). */
#ifndef DFQ_OPS_INTERNAL_H
#define DFQ_OPS_INTERNAL_H

#include "dfq/dfq_graph.h"
#include "dfq/dfq_ops.h"
#include "dfq/dfq_parallel.h"

#define OP_PARSE_ARGS struct dfq_node *n, struct dfq_error *err
#define OP_SHAPE_ARGS                                                                            \
	const struct dfq_node *n, const struct dfq_shape *const *in,                             \
		const struct dfq_tensor *const *in_data, struct dfq_shape *out,                  \
		struct dfq_error *err
#define OP_FORWARD_ARGS                                                                          \
	const struct dfq_node *n, const struct dfq_tensor *const *in,                            \
		struct dfq_tensor *const *out, const struct dfq_kctx *ctx, struct dfq_error *err

#define DFQ_DECLARE_OP(fam)                                                                      \
	dfq_status op_##fam##_parse(OP_PARSE_ARGS);                                              \
	dfq_status op_##fam##_shape(OP_SHAPE_ARGS);                                              \
	dfq_status op_##fam##_forward(OP_FORWARD_ARGS);

DFQ_DECLARE_OP(conv)          /* Conv */
DFQ_DECLARE_OP(batchnorm)     /* BatchNormalization (inference) */
DFQ_DECLARE_OP(unary)         /* Relu, LeakyRelu, Sigmoid, HardSigmoid, HardSwish, Sqrt, Erf */
DFQ_DECLARE_OP(clip)          /* Clip (attribute and input forms) */
DFQ_DECLARE_OP(binary)        /* Add, Sub, Mul, Div, Pow (numpy broadcasting) */
DFQ_DECLARE_OP(gemm)          /* Gemm */
DFQ_DECLARE_OP(matmul)        /* MatMul (2-D and batched, broadcasting) */
DFQ_DECLARE_OP(pool)          /* MaxPool, AveragePool */
DFQ_DECLARE_OP(globalavgpool) /* GlobalAveragePool */
DFQ_DECLARE_OP(flatten)       /* Flatten */
DFQ_DECLARE_OP(reshape)       /* Reshape */
DFQ_DECLARE_OP(transpose)     /* Transpose */
DFQ_DECLARE_OP(squeeze)       /* Squeeze, Unsqueeze */
DFQ_DECLARE_OP(concat)        /* Concat */
DFQ_DECLARE_OP(pad)           /* Pad (constant mode) */
DFQ_DECLARE_OP(softmax)       /* Softmax */
DFQ_DECLARE_OP(reducemean)    /* ReduceMean */
DFQ_DECLARE_OP(identity)      /* Identity, Dropout (inference) */
DFQ_DECLARE_OP(constant)      /* Constant */
DFQ_DECLARE_OP(shapeof)       /* Shape */
DFQ_DECLARE_OP(gather)        /* Gather */
DFQ_DECLARE_OP(cast)          /* Cast (float32 <-> int64) */
DFQ_DECLARE_OP(slice)         /* Slice (attribute and input forms) */
DFQ_DECLARE_OP(split)         /* Split (attribute, input and num_outputs forms) */

/* Fast kernels (im2col + SGEMM, direct depthwise, BLAS Gemm/MatMul). */
dfq_status op_conv_forward_fast(OP_FORWARD_ARGS);
dfq_status op_gemm_forward_fast(OP_FORWARD_ARGS);
dfq_status op_matmul_forward_fast(OP_FORWARD_ARGS);

/* --- shared helpers (spatial.c) ------------------------------------------ */

/* Resolve padding and output size for Conv/pools along nsp spatial axes.
 * in_sp: input spatial dims (may be -1: unknown, then out_sp is -1 too),
 * kernel/strides/dilations: per axis; p supplies pads, auto_pad and
 * (for pools) ceil_mode.  pads_out gets begin/end pads as in dfq_op_params. */
dfq_status ops_spatial_resolve(const struct dfq_op_params *p, int nsp, const int64_t *in_sp,
			       const int64_t *kernel, bool ceil_mode, int64_t *pads_out,
			       int64_t *out_sp, struct dfq_error *err);

/* Conv/pool auto_pad attribute ("NOTSET" when absent or empty); DFQ_ERR_PARSE
 * naming the node for an unknown value. */
dfq_status ops_parse_auto_pad(const struct dfq_node *n, dfq_auto_pad *out, struct dfq_error *err);
/* Check the first nsp axes of p's window: kernel sizes at least min_kernel
 * (Conv passes 0, "take it from W"), strides and dilations at least 1
 * (DFQ_ERR_PARSE), pads (2 * nsp values) not negative (DFQ_ERR_UNSUPPORTED). */
dfq_status ops_check_window(const struct dfq_node *n, const struct dfq_op_params *p, int nsp,
			    int64_t min_kernel, struct dfq_error *err);

/* Attribute readers with defaults: they fail (DFQ_ERR_PARSE, naming the node
 * and attribute) when the attribute exists with the wrong type. */
dfq_status ops_attr_int(const struct dfq_node *n, const char *name, int64_t def, int64_t *out,
			struct dfq_error *err);
dfq_status ops_attr_float(const struct dfq_node *n, const char *name, float def, float *out,
			  struct dfq_error *err);
/* INTS attribute into out[0..max); *count = -1 when absent.  DFQ_ERR_UNSUPPORTED
 * when it has more than max elements. */
dfq_status ops_attr_ints(const struct dfq_node *n, const char *name, int64_t *out, int max,
			 int *count, struct dfq_error *err);
/* A 1-D (or scalar) int64 tensor input (e.g. Reshape's shape, Slice's starts) into
 * out[0..max); *count its length.  DFQ_ERR_SHAPE for another type or rank,
 * DFQ_ERR_UNSUPPORTED for more than max values; what names it in the message. */
dfq_status ops_input_ints(const struct dfq_node *n, const struct dfq_tensor *t, const char *what,
			  int64_t *out, int max, int *count, struct dfq_error *err);
/* STRING attribute (borrowed) or def when absent. */
dfq_status ops_attr_string(const struct dfq_node *n, const char *name, const char *def,
			   const char **out, struct dfq_error *err);

/* --- broadcasting (broadcast.c) --------------------------------------------- */

/* numpy/ONNX multidirectional broadcast of a and b into out (dims -1 stay
 * unknown); DFQ_ERR_SHAPE naming both shapes when they do not broadcast. */
dfq_status ops_broadcast_shape(const struct dfq_shape *a, const struct dfq_shape *b,
			       struct dfq_shape *out, struct dfq_error *err);
/* Element strides of t viewed with out's rank (0 on broadcast axes); out_ndim
 * >= t->ndim.  strides has out_ndim entries. */
void ops_broadcast_strides(const struct dfq_tensor *t, int out_ndim, int64_t *strides);

/* Normalise a possibly negative axis for a rank; DFQ_ERR_ARG naming the node
 * when out of range. */
dfq_status ops_norm_axis(const struct dfq_node *n, int64_t axis, int rank, int64_t *out,
			 struct dfq_error *err);

#endif
