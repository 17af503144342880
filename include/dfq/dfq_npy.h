/* dfq_npy.h - NumPy .npy files (format versions 1.0, 2.0 and 3.0, C order).
 *
 * Reading: little-endian float32 and int64 load as they are; float64 loads as
 * float32; int32/int16/int8/uint8 load as int64 when as_float is false and as
 * float32 (same values) when it is true; bool loads as int64.  Fortran order
 * and big-endian data are refused with a clear error. */
#ifndef DFQ_NPY_H
#define DFQ_NPY_H

#include <stdbool.h>

#include "dfq_error.h"
#include "dfq_tensor.h"

/* Read path into a new tensor (caller owns).  Integer data is returned as
 * float32 when as_float is true. */
dfq_status dfq_npy_read(const char *path, bool as_float, struct dfq_tensor **out,
			struct dfq_error *err);
/* Write t as a version 1.0 .npy ('<f4' or '<i8').  Writes to a temporary file
 * and renames, so a failed write never leaves a partial file at path. */
dfq_status dfq_npy_write(const char *path, const struct dfq_tensor *t, struct dfq_error *err);

/* Streaming: an open .npy file read piece by piece with pread(), for arrays
 * larger than memory.  dfq_npy_open() reads and checks the header (and that
 * the file is exactly as long as the shape says); the caller owns the reader
 * and frees it with dfq_npy_close(). */
struct dfq_npy_reader;

dfq_status dfq_npy_open(const char *path, struct dfq_npy_reader **out, struct dfq_error *err);
void dfq_npy_close(struct dfq_npy_reader *r);
/* The array's shape; dtype is F32 for float data and I64 for integer or bool
 * data (what dfq_npy_read() gives with as_float false). */
void dfq_npy_reader_shape(const struct dfq_npy_reader *r, struct dfq_shape *out);
/* numpy's name of the stored element type: "float32", "uint8", "int64", ... */
const char *dfq_npy_reader_dtype(const struct dfq_npy_reader *r);
/* Elements [first, first + n) of the flattened (C order) array, converted as
 * dfq_npy_read() converts them.  The _i64 variant refuses float data. */
dfq_status dfq_npy_read_f32(struct dfq_npy_reader *r, int64_t first, int64_t n, float *out,
			    struct dfq_error *err);
dfq_status dfq_npy_read_i64(struct dfq_npy_reader *r, int64_t first, int64_t n, int64_t *out,
			    struct dfq_error *err);

#endif
