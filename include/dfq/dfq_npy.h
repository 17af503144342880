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

#endif
