/* op_table.c - the operator table: ONNX name, arity and kernels per op.
 * Arities are the ONNX schema's for opsets 7..18. */
#include <assert.h>
#include <string.h>

#include "ops_internal.h"

#define OP(fam, nm, imin, imax, omin, omax)                                                      \
	{                                                                                        \
		.name = nm, .min_inputs = imin, .max_inputs = imax, .min_outputs = omin,          \
		.max_outputs = omax, .parse = op_##fam##_parse, .shape = op_##fam##_shape,        \
		.forward = op_##fam##_forward,                                                     \
	}
#define OP_FAST(fam, nm, imin, imax, omin, omax)                                                 \
	{                                                                                        \
		.name = nm, .min_inputs = imin, .max_inputs = imax, .min_outputs = omin,          \
		.max_outputs = omax, .parse = op_##fam##_parse, .shape = op_##fam##_shape,        \
		.forward = op_##fam##_forward, .forward_fast = op_##fam##_forward_fast,            \
	}

const struct dfq_op_def dfq_op_defs[DFQ_OP_COUNT] = {
	[DFQ_OP_CONV] = OP_FAST(conv, "Conv", 2, 3, 1, 1),
	/* training-mode outputs (mean/var) are refused by parse */
	[DFQ_OP_BATCHNORM] = OP(batchnorm, "BatchNormalization", 5, 5, 1, 5),
	[DFQ_OP_RELU] = OP(unary, "Relu", 1, 1, 1, 1),
	[DFQ_OP_CLIP] = OP(clip, "Clip", 1, 3, 1, 1),
	[DFQ_OP_LEAKYRELU] = OP(unary, "LeakyRelu", 1, 1, 1, 1),
	[DFQ_OP_SIGMOID] = OP(unary, "Sigmoid", 1, 1, 1, 1),
	[DFQ_OP_HARDSIGMOID] = OP(unary, "HardSigmoid", 1, 1, 1, 1),
	[DFQ_OP_HARDSWISH] = OP(unary, "HardSwish", 1, 1, 1, 1),
	[DFQ_OP_ADD] = OP(binary, "Add", 2, 2, 1, 1),
	[DFQ_OP_SUB] = OP(binary, "Sub", 2, 2, 1, 1),
	[DFQ_OP_MUL] = OP(binary, "Mul", 2, 2, 1, 1),
	[DFQ_OP_DIV] = OP(binary, "Div", 2, 2, 1, 1),
	[DFQ_OP_GEMM] = OP_FAST(gemm, "Gemm", 2, 3, 1, 1),
	[DFQ_OP_MATMUL] = OP_FAST(matmul, "MatMul", 2, 2, 1, 1),
	/* MaxPool's optional Indices output is refused by parse */
	[DFQ_OP_MAXPOOL] = OP(pool, "MaxPool", 1, 1, 1, 2),
	[DFQ_OP_AVGPOOL] = OP(pool, "AveragePool", 1, 1, 1, 1),
	[DFQ_OP_GLOBALAVGPOOL] = OP(globalavgpool, "GlobalAveragePool", 1, 1, 1, 1),
	[DFQ_OP_FLATTEN] = OP(flatten, "Flatten", 1, 1, 1, 1),
	[DFQ_OP_RESHAPE] = OP(reshape, "Reshape", 1, 2, 1, 1),
	[DFQ_OP_TRANSPOSE] = OP(transpose, "Transpose", 1, 1, 1, 1),
	[DFQ_OP_SQUEEZE] = OP(squeeze, "Squeeze", 1, 2, 1, 1),
	[DFQ_OP_UNSQUEEZE] = OP(squeeze, "Unsqueeze", 1, 2, 1, 1),
	[DFQ_OP_CONCAT] = OP(concat, "Concat", 1, 1024, 1, 1),
	[DFQ_OP_PAD] = OP(pad, "Pad", 1, 4, 1, 1),
	[DFQ_OP_SOFTMAX] = OP(softmax, "Softmax", 1, 1, 1, 1),
	[DFQ_OP_REDUCEMEAN] = OP(reducemean, "ReduceMean", 1, 2, 1, 1),
	[DFQ_OP_IDENTITY] = OP(identity, "Identity", 1, 1, 1, 1),
	[DFQ_OP_DROPOUT] = OP(identity, "Dropout", 1, 3, 1, 2),
	[DFQ_OP_CONSTANT] = OP(constant, "Constant", 0, 0, 1, 1),
	[DFQ_OP_SHAPE] = OP(shapeof, "Shape", 1, 1, 1, 1),
	[DFQ_OP_GATHER] = OP(gather, "Gather", 2, 2, 1, 1),
	[DFQ_OP_CAST] = OP(cast, "Cast", 1, 1, 1, 1),
	/* opset < 10 takes one input (parse checks which form the opset wants) */
	[DFQ_OP_SLICE] = OP(slice, "Slice", 1, 5, 1, 1),
	[DFQ_OP_SPLIT] = OP(split, "Split", 1, 2, 1, 1024),
	[DFQ_OP_POW] = OP(binary, "Pow", 2, 2, 1, 1),
	[DFQ_OP_SQRT] = OP(unary, "Sqrt", 1, 1, 1, 1),
	[DFQ_OP_ERF] = OP(unary, "Erf", 1, 1, 1, 1),
};

/* The X-macro name list and the table must agree: a new op cannot be half-added. */
static const char *const op_names[] = {
#define DFQ_OP_NAME(id, nm) nm,
	DFQ_OP_LIST(DFQ_OP_NAME)
#undef DFQ_OP_NAME
};
_Static_assert(sizeof op_names / sizeof op_names[0] == DFQ_OP_COUNT, "op list and enum disagree");

dfq_op dfq_op_lookup(const char *op_type)
{
	for (int i = 0; i < DFQ_OP_COUNT; i++) {
		assert(dfq_op_defs[i].name && strcmp(dfq_op_defs[i].name, op_names[i]) == 0);
		if (strcmp(op_type, op_names[i]) == 0)
			return (dfq_op)i;
	}
	return DFQ_OP_COUNT;
}

const char *dfq_op_name(dfq_op op)
{
	return (op >= 0 && op < DFQ_OP_COUNT) ? op_names[op] : "?";
}
