/* onnx_tensor.c - TensorProto decoding (initializers, Constant values, test-data .pb files). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfq/dfq_onnx.h"
#include "onnx_internal.h"

dfq_status onnx_read_file(const char *path, uint8_t **buf, size_t *len, struct dfq_error *err)
{
	*buf = NULL;
	*len = 0;
	FILE *f = fopen(path, "rb");
	if (!f)
		return dfq_error_set(err, DFQ_ERR_IO, "cannot open '%s': %s", path,
				     strerror(errno));
	size_t cap = 1 << 16, n = 0;
	uint8_t *b = malloc(cap);
	if (!b) {
		fclose(f);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory reading '%s'", path);
	}
	/* Read in a loop rather than trusting ftell: works for pipes too. */
	for (;;) {
		if (n == cap) {
			if (cap > SIZE_MAX / 2)
				break;
			uint8_t *nb = realloc(b, cap * 2);
			if (!nb) {
				free(b);
				fclose(f);
				return dfq_error_set(err, DFQ_ERR_NOMEM,
						     "out of memory reading '%s'", path);
			}
			b = nb;
			cap *= 2;
		}
		size_t got = fread(b + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		int e = errno;
		free(b);
		fclose(f);
		return dfq_error_set(err, DFQ_ERR_IO, "cannot read '%s': %s", path,
				     e ? strerror(e) : "read error");
	}
	fclose(f);
	*buf = b;
	*len = n;
	return DFQ_OK;
}

const char *onnx_elem_type_name(int32_t data_type, char *buf, size_t len)
{
	static const char *const names[] = {
	    "UNDEFINED", "FLOAT",  "UINT8",     "INT8",       "UINT16",   "INT16",
	    "INT32",     "INT64",  "STRING",    "BOOL",       "FLOAT16",  "DOUBLE",
	    "UINT32",    "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16",
	};
	if (data_type >= 0 && (size_t)data_type < sizeof names / sizeof names[0])
		return names[data_type];
	snprintf(buf, len, "type %d", (int)data_type);
	return buf;
}

/* ONNX raw_data is little-endian; read element i of width w from it. */
static uint64_t le_load(const uint8_t *p, size_t w)
{
	uint64_t v = 0;
	for (size_t k = 0; k < w; k++)
		v |= (uint64_t)p[k] << (8 * k);
	return v;
}

/* Fill t from raw little-endian bytes of element width w and ONNX type dt. */
static void from_raw(struct dfq_tensor *t, const uint8_t *raw, size_t w, int32_t dt)
{
	for (int64_t i = 0; i < t->numel; i++) {
		uint64_t bits = le_load(raw + (size_t)i * w, w);
		switch (dt) {
		case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: {
			uint32_t b32 = (uint32_t)bits;
			float f;
			memcpy(&f, &b32, 4);
			((float *)t->data)[i] = f;
			break;
		}
		case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: {
			double d;
			memcpy(&d, &bits, 8);
			((float *)t->data)[i] = (float)d;
			break;
		}
		case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
			((int64_t *)t->data)[i] = (int32_t)(uint32_t)bits;
			break;
		default: /* INT64 */
			((int64_t *)t->data)[i] = (int64_t)bits;
			break;
		}
	}
}

/* Number of values in the typed repeated field that matches dt. */
static size_t typed_count(const Onnx__TensorProto *tp, int32_t dt)
{
	switch (dt) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
		return tp->n_float_data;
	case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
		return tp->n_double_data;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
		return tp->n_int32_data;
	default:
		return tp->n_int64_data;
	}
}

/* Fill t from the typed repeated field that matches dt (count already checked). */
static void from_typed(struct dfq_tensor *t, const Onnx__TensorProto *tp, int32_t dt)
{
	for (int64_t i = 0; i < t->numel; i++) {
		switch (dt) {
		case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
			((float *)t->data)[i] = tp->float_data[i];
			break;
		case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
			((float *)t->data)[i] = (float)tp->double_data[i];
			break;
		case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
			((int64_t *)t->data)[i] = tp->int32_data[i];
			break;
		default:
			((int64_t *)t->data)[i] = tp->int64_data[i];
			break;
		}
	}
}

/* The 'location' entry of an external-data tensor, or "?". */
static const char *external_location(const Onnx__TensorProto *tp)
{
	for (size_t i = 0; i < tp->n_external_data; i++) {
		const Onnx__StringStringEntryProto *e = tp->external_data[i];
		if (e && e->key && e->value && strcmp(e->key, "location") == 0)
			return e->value;
	}
	return "?";
}

dfq_status onnx_decode_tensor(const Onnx__TensorProto *tp, const char *what, const char *model,
			      struct dfq_tensor **out, struct dfq_error *err)
{
	*out = NULL;
	if (tp->has_data_location &&
	    tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s stores tensor '%s' in external data (file '%s'); dfq "
				     "needs a self-contained .onnx",
				     model, tp->name ? tp->name : "", external_location(tp));
	if (tp->segment)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s is segmented; dfq does not "
				     "support segmented tensors",
				     what);
	int32_t dt = tp->has_data_type ? tp->data_type : 0;
	size_t w;
	dfq_dtype dtype;
	switch (dt) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
		w = 4;
		dtype = DFQ_DTYPE_F32;
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
		w = 8;
		dtype = DFQ_DTYPE_F32;
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
		w = 4;
		dtype = DFQ_DTYPE_I64;
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
		w = 8;
		dtype = DFQ_DTYPE_I64;
		break;
	default: {
		char b[32];
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s has element type %s; dfq supports float32 models only",
				     what, onnx_elem_type_name(dt, b, sizeof b));
	}
	}
	if (tp->n_dims > DFQ_MAX_DIMS)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s has rank %zu; dfq supports up "
				     "to %d dimensions",
				     what, tp->n_dims, DFQ_MAX_DIMS);
	for (size_t i = 0; i < tp->n_dims; i++)
		if (tp->dims[i] < 0)
			return dfq_error_set(err, DFQ_ERR_PARSE, "%s has a negative dimension %lld",
					     what, (long long)tp->dims[i]);
	/* Check the stored element count before allocating: a corrupt file
	 * must not make us allocate what its dims claim. */
	bool overflow;
	int64_t numel = dfq_dims_numel((int)tp->n_dims, tp->dims, &overflow);
	if (numel < 0)
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s has too many elements", what);
	/* an empty raw_data next to typed values is an exporter quirk, not data */
	bool raw = tp->has_raw_data && (tp->raw_data.len > 0 || typed_count(tp, dt) == 0);
	if (raw) {
		if ((uint64_t)numel > SIZE_MAX / w || tp->raw_data.len != (size_t)numel * w)
			return dfq_error_set(
			    err, DFQ_ERR_PARSE,
			    "%s has %lld elements of %zu bytes but its raw data is "
			    "%zu bytes (truncated or corrupt)",
			    what, (long long)numel, w, tp->raw_data.len);
	} else if (typed_count(tp, dt) != (uint64_t)numel) {
		return dfq_error_set(err, DFQ_ERR_PARSE,
				     "%s has %lld elements but holds %zu values", what,
				     (long long)numel, typed_count(tp, dt));
	}
	struct dfq_tensor *t = dfq_tensor_new(dtype, (int)tp->n_dims, tp->dims, err);
	if (!t)
		return dfq_error_prefix(err, "%s", what);
	if (raw)
		from_raw(t, tp->raw_data.data, w, dt);
	else
		from_typed(t, tp, dt);
	*out = t;
	return DFQ_OK;
}

dfq_status dfq_onnx_read_tensor_file(const char *path, struct dfq_tensor **out, char **name_out,
				     struct dfq_error *err)
{
	*out = NULL;
	if (name_out)
		*name_out = NULL;
	uint8_t *buf;
	size_t len;
	dfq_status st = onnx_read_file(path, &buf, &len, err);
	if (st != DFQ_OK)
		return st;
	Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
	free(buf);
	if (!tp)
		return dfq_error_set(err, DFQ_ERR_PARSE,
				     "'%s' is not an ONNX tensor (protobuf parse failed)", path);
	const char *name = tp->name ? tp->name : "";
	char what[DFQ_ERROR_MAX / 2];
	snprintf(what, sizeof what, "tensor '%s' in '%s'", name, path);
	char model[DFQ_ERROR_MAX / 2];
	snprintf(model, sizeof model, "'%s'", path);
	struct dfq_tensor *t = NULL;
	st = onnx_decode_tensor(tp, what, model, &t, err);
	if (st == DFQ_OK && name_out) {
		size_t n = strlen(name) + 1;
		*name_out = malloc(n);
		if (*name_out) {
			memcpy(*name_out, name, n);
		} else {
			dfq_tensor_free(t);
			t = NULL;
			st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
		}
	}
	onnx__tensor_proto__free_unpacked(tp, NULL);
	*out = t;
	return st;
}
