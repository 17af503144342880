/* dfq_sha256.h - SHA-256 (FIPS 180-4), to tell whether a model file is the one a saved session
 * was made on. */
#ifndef DFQ_SHA256_H
#define DFQ_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "dfq_error.h"

struct dfq_sha256 {
	uint32_t h[8];
	uint64_t bytes;          /* message length so far */
	unsigned char block[64]; /* bytes not yet hashed */
	size_t nblock;
};

void dfq_sha256_init(struct dfq_sha256 *c);
void dfq_sha256_update(struct dfq_sha256 *c, const void *data, size_t n);
/* The digest as 64 lowercase hex digits and a NUL (c is used up). */
void dfq_sha256_hex(struct dfq_sha256 *c, char hex[65]);
/* The digest of the file at path, as hex.  DFQ_ERR_IO naming the file when
 * it cannot be read. */
dfq_status dfq_sha256_file(const char *path, char hex[65], struct dfq_error *err);

#endif
