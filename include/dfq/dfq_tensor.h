/* dfq_tensor.h - dense, contiguous, row-major tensors (NCHW for images).
 *
 * A tensor owns its data buffer (64-byte aligned).  Element types are the
 * ones the engine computes with: float32 for activations and weights, int64
 * for shapes/indices.  Ownership: whoever receives a dfq_tensor* from a
 * *_new/_clone function owns it and frees it with dfq_tensor_free().
 *
 * A tensor can have several owners (dfq_tensor_ref), e.g. a model and the
 * step history that keeps its earlier versions: each owner frees it once and
 * the last free releases it.  A tensor with more than one owner is read-only:
 * whoever wants to change it changes a clone (copy-on-write). */
#ifndef DFQ_TENSOR_H
#define DFQ_TENSOR_H

#include <stdbool.h>
#include <stdint.h>

#include "dfq_error.h"

#define DFQ_MAX_DIMS 8

typedef enum dfq_dtype {
	DFQ_DTYPE_F32 = 0,
	DFQ_DTYPE_I64,
	DFQ_DTYPE_COUNT
} dfq_dtype;

/* A shape without data.  In static shape inference a dim of -1 means
 * "unknown" (e.g. a symbolic batch); ndim of -1 means the rank is unknown. */
struct dfq_shape {
	dfq_dtype dtype;
	int ndim;
	int64_t dims[DFQ_MAX_DIMS];
};

struct dfq_tensor {
	dfq_dtype dtype;
	int ndim;                     /* 0 for a scalar */
	int64_t dims[DFQ_MAX_DIMS];
	int64_t numel;                /* product of dims (1 for a scalar) */
	void *data;                   /* owned, numel * dfq_dtype_size(dtype) bytes */
	int refs;                     /* owners (1 from _new/_clone); see dfq_tensor_ref */
};

/* Bytes per element of dtype. */
size_t dfq_dtype_size(dfq_dtype dtype);
/* "float32" / "int64". */
const char *dfq_dtype_name(dfq_dtype dtype);

/* Product of dims[0..ndim); -1 if any dim is negative; sets *overflow on
 * int64 overflow (overflow may be NULL). */
int64_t dfq_dims_numel(int ndim, const int64_t *dims, bool *overflow);

/* New zero-filled tensor.  Returns NULL and fills err on bad dims (negative,
 * ndim out of range, overflow) or out of memory.  Caller owns the result. */
struct dfq_tensor *dfq_tensor_new(dfq_dtype dtype, int ndim, const int64_t *dims,
				  struct dfq_error *err);
/* Same, from a shape (which must have no unknown dims). */
struct dfq_tensor *dfq_tensor_new_shape(const struct dfq_shape *shape, struct dfq_error *err);
/* Deep copy.  Caller owns the result. */
struct dfq_tensor *dfq_tensor_clone(const struct dfq_tensor *t, struct dfq_error *err);
/* Drop one owner of t; the last frees t and its data.  NULL is fine. */
void dfq_tensor_free(struct dfq_tensor *t);
/* One more owner of t (NULL is fine); returns t. */
struct dfq_tensor *dfq_tensor_ref(struct dfq_tensor *t);
/* True when t has more than one owner (and must not be changed in place). */
bool dfq_tensor_shared(const struct dfq_tensor *t);

/* Change the dims in place without touching data; the element count must be
 * unchanged (DFQ_ERR_SHAPE otherwise). */
dfq_status dfq_tensor_reshape(struct dfq_tensor *t, int ndim, const int64_t *dims,
			      struct dfq_error *err);

/* Typed data access (asserts the dtype). */
float *dfq_tensor_f32(const struct dfq_tensor *t);
int64_t *dfq_tensor_i64(const struct dfq_tensor *t);

/* The tensor's shape. */
void dfq_tensor_shape(const struct dfq_tensor *t, struct dfq_shape *out);

/* Format dims as "[1, 3, 224, 224]" ("?" for unknown dims) into buf; returns buf. */
char *dfq_shape_str(const struct dfq_shape *s, char *buf, size_t len);

/* true when both have the same dtype and dims. */
bool dfq_tensor_same_shape(const struct dfq_tensor *a, const struct dfq_tensor *b);

#endif
