/* onnx_internal.h - helpers shared by the ONNX model importer and the TensorProto decoder. */
#ifndef DFQ_ONNX_INTERNAL_H
#define DFQ_ONNX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dfq/dfq_error.h"
#include "dfq/dfq_tensor.h"
#include "onnx.pb-c.h"

/* Read the whole file at path into a new malloc'd buffer (*buf, caller owns;
 * never NULL on success, even for an empty file). */
dfq_status onnx_read_file(const char *path, uint8_t **buf, size_t *len, struct dfq_error *err);

/* Name of an ONNX TensorProto.DataType ("FLOAT16", ...; "type N" if unknown). */
const char *onnx_elem_type_name(int32_t data_type, char *buf, size_t len);

/* Decode tp into a new tensor (*out, caller owns).  float32 stays float32,
 * double becomes float32, int64/int32 become int64; anything else fails.
 * what names the tensor in messages ("initializer 'w'", "attribute 'value'
 * of node 'c'"); model is how the model is named in the external-data
 * message ("model 'a.onnx'" or "the model"). */
dfq_status onnx_decode_tensor(const Onnx__TensorProto *tp, const char *what, const char *model,
			      struct dfq_tensor **out, struct dfq_error *err);

#endif
