/* dfq_onnx.h - ONNX import: ModelProto and TensorProto files to dfq objects.
 *
 * Only float32 models with all data inside the file are accepted; external
 * data, other element types and unsupported operators fail with one sentence
 * naming what is wrong (op type, node name, opset). */
#ifndef DFQ_ONNX_H
#define DFQ_ONNX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dfq_error.h"
#include "dfq_graph.h"
#include "dfq_tensor.h"

/* Load and finalize a model from a file.  On success *out is a new graph
 * (caller owns).  On failure *out is NULL and err says why. */
dfq_status dfq_onnx_load_file(const char *path, struct dfq_graph **out, struct dfq_error *err);
/* Same from a buffer (borrowed). */
dfq_status dfq_onnx_load_buffer(const uint8_t *buf, size_t len, struct dfq_graph **out,
				struct dfq_error *err);

/* Read a serialized TensorProto (an ONNX test-data input_N.pb/output_N.pb).
 * float32 stays float32; int64/int32 become int64; double becomes float32.
 * *out is new (caller owns); if name_out is not NULL, *name_out is a new
 * malloc'd copy of the tensor's name ("" if none). */
dfq_status dfq_onnx_read_tensor_file(const char *path, struct dfq_tensor **out, char **name_out,
				     struct dfq_error *err);

/* ---------------------------------------------------------------------------
 * Export (onnx_export.c)
 * ------------------------------------------------------------------------- */

struct dfq_model;
struct dfq_qparams;

/* What an export wrote. */
struct dfq_onnx_export_info {
	int64_t opset_in, opset; /* the model's opset and the one written (raised to 13
	                          * for per-channel QDQ when the model's ops allow) */
	int nnodes;              /* nodes written */
	int nweight_qdq;         /* quantized weights written as codes + DequantizeLinear */
	int nact_qdq;            /* activation points as QuantizeLinear -> DequantizeLinear */
	int nclips;              /* of those, with a Clip first (grids under 8 bits) */
	int nbias_qdq;           /* 8-bit biases as codes + DequantizeLinear */
	int nbias_float;         /* 16-bit biases written as their fake-quantized floats */
};

/* The model as it stands as a serialized ONNX ModelProto in *buf (new,
 * caller frees with free(); *len bytes).  Node, input and output names and
 * the opset are the graph's.
 *   qdq false: what FP32 mode runs: the graph's float weights and the biases
 *              plus the FP32 part of bias correction.
 *   qdq true:  what QUANT mode runs: each quantized layer's weights as int8
 *              (symmetric) or uint8 (asymmetric) codes with a DequantizeLinear
 *              (per channel with axis), each enabled activation point (model
 *              input included) as QuantizeLinear -> DequantizeLinear keeping
 *              the value's name (a Clip first when the grid has fewer than 8
 *              bits, so that the 8-bit type's saturation is the grid's), biases
 *              plus the QUANT-mode correction (8-bit ones as codes too).
 * DFQ_ERR_UNSUPPORTED naming the layer or value when a grid cannot be written
 * (more than 8 bits) or the opset cannot be raised; DFQ_ERR_ARG for qdq when
 * nothing is quantized.  info (may be NULL) says what was written. */
dfq_status dfq_onnx_export(const struct dfq_model *m, bool qdq, uint8_t **buf, size_t *len,
			   struct dfq_onnx_export_info *info, struct dfq_error *err);

/* Layer li's QUANT-mode bias before its own quantization (bias + bcorr_q)
 * into b (cout floats, caller's) and, when the layer is quantized with bbits
 * 8 or 16, its grid into *q with *has_grid true.  The layer must have a bias. */
dfq_status dfq_onnx_export_bias_grid(const struct dfq_model *m, int li, float *b,
				     struct dfq_qparams *q, bool *has_grid,
				     struct dfq_error *err);

#endif
