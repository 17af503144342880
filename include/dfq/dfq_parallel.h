/* dfq_parallel.h - a small fixed thread pool for data-parallel kernels.
 *
 * dfq_pool_run() splits [0, n) into contiguous chunks, runs fn on them on the
 * pool's threads and the calling thread, and returns when all are done.
 * Calls from inside a running fn run serially on the calling thread (no
 * nested parallelism). */
#ifndef DFQ_PARALLEL_H
#define DFQ_PARALLEL_H

#include <stdint.h>

#include "dfq_error.h"

struct dfq_pool;

typedef void (*dfq_pool_fn)(void *arg, int64_t begin, int64_t end, int tid);

/* nthreads counts the caller (1 = no extra threads; 0 = online CPUs).
 * Caller owns the result. */
struct dfq_pool *dfq_pool_new(int nthreads, struct dfq_error *err);
void dfq_pool_free(struct dfq_pool *p);
/* Total threads including the caller. */
int dfq_pool_size(const struct dfq_pool *p);
/* Run fn over [0, n); p may be NULL (runs fn(arg, 0, n, 0) inline).  Work
 * items are split in chunks of at least min_chunk. */
void dfq_pool_run(struct dfq_pool *p, int64_t n, int64_t min_chunk, dfq_pool_fn fn, void *arg);

#endif
