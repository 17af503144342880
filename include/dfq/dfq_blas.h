/* dfq_blas.h - SGEMM through the system BLAS, with the CPU core type chosen.
 *
 * Debian 12's OpenBLAS 0.3.21 does not recognise recent Intel CPUs (e.g.
 * family 6 model 207) and falls back to its SSE3 "Prescott" kernels, ~6x
 * slower than its AVX-512 ones.  OpenBLAS reads OPENBLAS_CORETYPE when it is
 * loaded, so dfq loads it at run time (dlopen) after setting the core type
 * from the CPU's features, unless the user has set OPENBLAS_CORETYPE. */
#ifndef DFQ_BLAS_H
#define DFQ_BLAS_H

#include <stdbool.h>

#include "dfq_error.h"

/* Load the BLAS once (thread-safe, idempotent).  Fails with a clear message
 * if the library cannot be loaded. */
dfq_status dfq_blas_init(struct dfq_error *err);

/* Row-major C = alpha * op(A) * op(B) + beta * C, op = transpose when ta/tb.
 * A is M x K (K x M if ta), B is K x N (N x K if tb).  dfq_blas_init must
 * have succeeded. */
void dfq_sgemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
	       const float *b, int ldb, float beta, float *c, int ldc);

/* Threads the BLAS may use inside one dfq_sgemm call. */
void dfq_blas_set_threads(int n);

/* One line: library, version/config, core type and who chose it. */
const char *dfq_blas_describe(void);

#endif
