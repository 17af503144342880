/* dfq_onnx.h - ONNX import: ModelProto and TensorProto files to dfq objects.
 *
 * Only float32 models with all data inside the file are accepted; external
 * data, other element types and unsupported operators fail with one sentence
 * naming what is wrong (op type, node name, opset). */
#ifndef DFQ_ONNX_H
#define DFQ_ONNX_H

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

#endif
