/* dfq_ops.h - the operator table (ggml style): one enum of operator kinds,
 * one parse/shape/forward set of functions each.
 *
 * The op list is an X-macro so the enum and the ONNX names cannot drift
 * apart; dfq_op_defs[] is checked against DFQ_OP_COUNT at compile time. */
#ifndef DFQ_OPS_H
#define DFQ_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "dfq_error.h"
#include "dfq_tensor.h"

#define DFQ_OP_LIST(X)                                   \
	X(CONV, "Conv")                                  \
	X(BATCHNORM, "BatchNormalization")               \
	X(RELU, "Relu")                                  \
	X(CLIP, "Clip")                                  \
	X(LEAKYRELU, "LeakyRelu")                        \
	X(SIGMOID, "Sigmoid")                            \
	X(HARDSIGMOID, "HardSigmoid")                    \
	X(HARDSWISH, "HardSwish")                        \
	X(ADD, "Add")                                    \
	X(SUB, "Sub")                                    \
	X(MUL, "Mul")                                    \
	X(DIV, "Div")                                    \
	X(GEMM, "Gemm")                                  \
	X(MATMUL, "MatMul")                              \
	X(MAXPOOL, "MaxPool")                            \
	X(AVGPOOL, "AveragePool")                        \
	X(GLOBALAVGPOOL, "GlobalAveragePool")            \
	X(FLATTEN, "Flatten")                            \
	X(RESHAPE, "Reshape")                            \
	X(TRANSPOSE, "Transpose")                        \
	X(SQUEEZE, "Squeeze")                            \
	X(UNSQUEEZE, "Unsqueeze")                        \
	X(CONCAT, "Concat")                              \
	X(PAD, "Pad")                                    \
	X(SOFTMAX, "Softmax")                            \
	X(REDUCEMEAN, "ReduceMean")                      \
	X(IDENTITY, "Identity")                          \
	X(DROPOUT, "Dropout")                            \
	X(CONSTANT, "Constant")                          \
	X(SHAPE, "Shape")                                \
	X(GATHER, "Gather")                              \
	X(CAST, "Cast")                                  \
	X(SLICE, "Slice")                                \
	X(SPLIT, "Split")                                \
	X(POW, "Pow")                                    \
	X(SQRT, "Sqrt")                                  \
	X(ERF, "Erf")

typedef enum dfq_op {
#define DFQ_OP_ENUM(id, name) DFQ_OP_##id,
	DFQ_OP_LIST(DFQ_OP_ENUM)
#undef DFQ_OP_ENUM
	DFQ_OP_COUNT
} dfq_op;

typedef enum dfq_auto_pad {
	DFQ_AUTO_PAD_NOTSET = 0,
	DFQ_AUTO_PAD_SAME_UPPER,
	DFQ_AUTO_PAD_SAME_LOWER,
	DFQ_AUTO_PAD_VALID,
} dfq_auto_pad;

#define DFQ_MAX_SPATIAL 3

/* Parsed operator parameters (attributes with opset-aware defaults).  One flat
 * struct for all ops: each op's parse() fills the fields it uses. */
struct dfq_op_params {
	/* Conv, MaxPool, AveragePool */
	int nspatial;                        /* spatial rank, 0 if not known from attributes */
	int64_t kernel[DFQ_MAX_SPATIAL];     /* kernel_shape (0 = take from W for Conv) */
	int64_t strides[DFQ_MAX_SPATIAL];
	int64_t dilations[DFQ_MAX_SPATIAL];
	int64_t pads[2 * DFQ_MAX_SPATIAL];   /* x1_begin, x2_begin, ..., x1_end, x2_end, ... */
	int64_t group;
	dfq_auto_pad auto_pad;
	bool ceil_mode;
	bool count_include_pad;
	/* scalar attributes */
	float alpha, beta;                   /* LeakyRelu, HardSigmoid, Gemm */
	float epsilon;                       /* BatchNormalization */
	float clip_min, clip_max;            /* Clip attribute form (opset < 11), else -inf/+inf */
	bool trans_a, trans_b;               /* Gemm */
	int64_t axis;                        /* Flatten, Concat, Softmax, Gather */
	bool softmax_coerce_2d;              /* Softmax opset < 13 semantics */
	bool keepdims;                       /* ReduceMean */
	bool noop_with_empty_axes;           /* ReduceMean opset 18 */
	bool allowzero;                      /* Reshape opset 14 */
	/* axes (Squeeze/Unsqueeze/ReduceMean attribute forms) or perm (Transpose) */
	bool has_axes;
	int naxes;
	int64_t axes[DFQ_MAX_DIMS];
	/* Pad attribute form (opset < 11) */
	bool has_pads;
	int npads;
	int64_t pad_list[2 * DFQ_MAX_DIMS];
	float pad_value;
	/* Cast */
	dfq_dtype cast_to;
};

struct dfq_node;
struct dfq_pool;

/* What a kernel may use besides its inputs: the thread pool (NULL = run on
 * the calling thread only). */
struct dfq_kctx {
	struct dfq_pool *pool;
};

struct dfq_op_def {
	const char *name;                /* ONNX op_type */
	int min_inputs, max_inputs;
	int min_outputs, max_outputs;
	/* Fill n->p from n->attrs and n->opset, applying the opset's defaults.
	 * Unsupported attribute values (e.g. a Pad mode other than constant)
	 * fail here with DFQ_ERR_UNSUPPORTED. */
	dfq_status (*parse)(struct dfq_node *n, struct dfq_error *err);
	/* Output shapes from input shapes.  in[i]/in_data[i] are NULL for empty
	 * optional inputs; in_data[i] is non-NULL when the input's value is known
	 * (always at run time; constants only in static inference).  Unknown dims
	 * are -1: propagate them, never fail on them. */
	dfq_status (*shape)(const struct dfq_node *n, const struct dfq_shape *const *in,
			    const struct dfq_tensor *const *in_data, struct dfq_shape *out,
			    struct dfq_error *err);
	/* Scalar reference kernel, the oracle.  out[] are allocated by the caller
	 * with the shapes shape() returned (NULL for unused optional outputs). */
	dfq_status (*forward)(const struct dfq_node *n, const struct dfq_tensor *const *in,
			      struct dfq_tensor *const *out, const struct dfq_kctx *ctx,
			      struct dfq_error *err);
	/* Optional fast kernel with the same contract; NULL when there is none. */
	dfq_status (*forward_fast)(const struct dfq_node *n, const struct dfq_tensor *const *in,
				   struct dfq_tensor *const *out, const struct dfq_kctx *ctx,
				   struct dfq_error *err);
};

extern const struct dfq_op_def dfq_op_defs[DFQ_OP_COUNT];

/* The op for an ONNX op_type (default domain), or DFQ_OP_COUNT if unsupported. */
dfq_op dfq_op_lookup(const char *op_type);
/* ONNX name of op. */
const char *dfq_op_name(dfq_op op);

#endif
