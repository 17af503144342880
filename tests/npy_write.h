/* npy_write.h - writing a .npy file (format version 1.0) by hand, for tests that need
 * NumPy inputs without NumPy.  Included by the test programs that use it. */
#ifndef DFQ_NPY_WRITE_H
#define DFQ_NPY_WRITE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfq_test.h"

/* path = a .npy of len bytes of data with dtype descr (e.g. "<f4") and shape, a Python
 * tuple (e.g. "(2, 3)").  Fails the test on any I/O error. */
static inline void write_npy(const char *path, const char *descr, const char *shape,
                             const void *data, size_t len)
{
	char dict[256];
	snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
	         descr, shape);
	size_t total = (10 + strlen(dict) + 1 + 63) / 64 * 64, hlen = total - 10;
	unsigned char *buf = calloc(1, total + len);
	assert_non_null(buf);
	memcpy(buf, "\x93NUMPY\x01\x00", 8);
	buf[8] = (unsigned char)(hlen & 0xff);
	buf[9] = (unsigned char)(hlen >> 8);
	memcpy(buf + 10, dict, strlen(dict));
	memset(buf + 10 + strlen(dict), ' ', hlen - strlen(dict) - 1);
	buf[total - 1] = '\n';
	if (len)
		memcpy(buf + total, data, len);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, total + len, f), total + len);
	assert_int_equal(fclose(f), 0);
	free(buf);
}

#endif
