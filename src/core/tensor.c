/* tensor.c - dense tensor allocation and shape helpers. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfq/dfq_tensor.h"

/* 64-byte alignment keeps AVX-512 loads in the BLAS and our kernels aligned. */
#define DFQ_ALIGN 64

size_t dfq_dtype_size(dfq_dtype dtype)
{
	switch (dtype) {
	case DFQ_DTYPE_F32: return 4;
	case DFQ_DTYPE_I64: return 8;
	default: return 0;
	}
}

const char *dfq_dtype_name(dfq_dtype dtype)
{
	switch (dtype) {
	case DFQ_DTYPE_F32: return "float32";
	case DFQ_DTYPE_I64: return "int64";
	default: return "?";
	}
}

int64_t dfq_dims_numel(int ndim, const int64_t *dims, bool *overflow)
{
	int64_t n = 1;
	if (overflow)
		*overflow = false;
	for (int i = 0; i < ndim; i++) {
		if (dims[i] < 0)
			return -1;
		if (dims[i] != 0 && n > INT64_MAX / dims[i]) {
			if (overflow)
				*overflow = true;
			return -1;
		}
		n *= dims[i];
	}
	return n;
}

struct dfq_tensor *dfq_tensor_new(dfq_dtype dtype, int ndim, const int64_t *dims,
				  struct dfq_error *err)
{
	if (dtype < 0 || dtype >= DFQ_DTYPE_COUNT) {
		dfq_error_set(err, DFQ_ERR_ARG, "unknown tensor element type %d", (int)dtype);
		return NULL;
	}
	if (ndim < 0 || ndim > DFQ_MAX_DIMS) {
		dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
			      "tensor rank %d is outside the supported 0..%d", ndim, DFQ_MAX_DIMS);
		return NULL;
	}
	bool overflow;
	int64_t numel = dfq_dims_numel(ndim, dims, &overflow);
	if (numel < 0) {
		dfq_error_set(err, DFQ_ERR_SHAPE, "%s",
			      overflow ? "tensor element count overflows"
				       : "tensor has a negative or unknown dimension");
		return NULL;
	}
	size_t esz = dfq_dtype_size(dtype);
	if ((uint64_t)numel > (SIZE_MAX - DFQ_ALIGN) / esz) {
		dfq_error_set(err, DFQ_ERR_NOMEM, "tensor of %lld elements is too large",
			      (long long)numel);
		return NULL;
	}
	struct dfq_tensor *t = calloc(1, sizeof *t);
	if (!t) {
		dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory allocating a tensor");
		return NULL;
	}
	size_t bytes = (size_t)numel * esz;
	/* aligned_alloc needs a multiple of the alignment; never size 0. */
	size_t alloc = (bytes + DFQ_ALIGN - 1) / DFQ_ALIGN * DFQ_ALIGN;
	if (alloc == 0)
		alloc = DFQ_ALIGN;
	t->data = aligned_alloc(DFQ_ALIGN, alloc);
	if (!t->data) {
		free(t);
		dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
		return NULL;
	}
	memset(t->data, 0, alloc);
	t->dtype = dtype;
	t->ndim = ndim;
	for (int i = 0; i < ndim; i++)
		t->dims[i] = dims[i];
	t->numel = numel;
	t->refs = 1;
	return t;
}

struct dfq_tensor *dfq_tensor_new_shape(const struct dfq_shape *shape, struct dfq_error *err)
{
	return dfq_tensor_new(shape->dtype, shape->ndim, shape->dims, err);
}

struct dfq_tensor *dfq_tensor_clone(const struct dfq_tensor *t, struct dfq_error *err)
{
	struct dfq_tensor *c = dfq_tensor_new(t->dtype, t->ndim, t->dims, err);
	if (c && t->numel)
		memcpy(c->data, t->data, (size_t)t->numel * dfq_dtype_size(t->dtype));
	return c;
}

void dfq_tensor_free(struct dfq_tensor *t)
{
	if (!t || --t->refs > 0)
		return;
	free(t->data);
	free(t);
}

struct dfq_tensor *dfq_tensor_ref(struct dfq_tensor *t)
{
	if (t)
		t->refs++;
	return t;
}

bool dfq_tensor_shared(const struct dfq_tensor *t)
{
	return t && t->refs > 1;
}

dfq_status dfq_tensor_reshape(struct dfq_tensor *t, int ndim, const int64_t *dims,
			      struct dfq_error *err)
{
	if (ndim < 0 || ndim > DFQ_MAX_DIMS)
		return dfq_error_set(err, DFQ_ERR_SHAPE, "rank %d is outside 0..%d", ndim,
				     DFQ_MAX_DIMS);
	int64_t n = dfq_dims_numel(ndim, dims, NULL);
	if (n != t->numel)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
				     "cannot reshape %lld elements into %lld",
				     (long long)t->numel, (long long)n);
	t->ndim = ndim;
	for (int i = 0; i < ndim; i++)
		t->dims[i] = dims[i];
	return DFQ_OK;
}

float *dfq_tensor_f32(const struct dfq_tensor *t)
{
	assert(t->dtype == DFQ_DTYPE_F32);
	return t->data;
}

int64_t *dfq_tensor_i64(const struct dfq_tensor *t)
{
	assert(t->dtype == DFQ_DTYPE_I64);
	return t->data;
}

void dfq_tensor_shape(const struct dfq_tensor *t, struct dfq_shape *out)
{
	memset(out, 0, sizeof *out);
	out->dtype = t->dtype;
	out->ndim = t->ndim;
	for (int i = 0; i < t->ndim; i++)
		out->dims[i] = t->dims[i];
}

char *dfq_shape_str(const struct dfq_shape *s, char *buf, size_t len)
{
	size_t used = 0;
	if (len == 0)
		return buf;
	buf[0] = '\0';
	if (s->ndim < 0) {
		snprintf(buf, len, "[?]");
		return buf;
	}
	used += (size_t)snprintf(buf, len, "[");
	for (int i = 0; i < s->ndim && used < len; i++) {
		if (s->dims[i] < 0)
			used += (size_t)snprintf(buf + used, len - used, "%s?", i ? ", " : "");
		else
			used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? ", " : "",
						 (long long)s->dims[i]);
	}
	if (used < len)
		snprintf(buf + used, len - used, "]");
	return buf;
}

bool dfq_tensor_same_shape(const struct dfq_tensor *a, const struct dfq_tensor *b)
{
	if (a->dtype != b->dtype || a->ndim != b->ndim)
		return false;
	for (int i = 0; i < a->ndim; i++)
		if (a->dims[i] != b->dims[i])
			return false;
	return true;
}
