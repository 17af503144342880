/* parallel.c - the fixed thread pool behind dfq_pool_run (see dfq_parallel.h).
 *
 * Workers are persistent and sleep on a condition variable between jobs, so
 * an idle pool costs no CPU (the BLAS may need those cores).  A job is a
 * range split into chunks; every participating thread, the caller included,
 * claims chunks from one atomic counter until none are left, which keeps
 * both cores busy even when one of them is slowed down by something else. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfq/dfq_parallel.h"

/* More chunks than threads lets a fast thread take over work from a slow
 * one; a few per thread is enough for that without much claiming overhead. */
#define CHUNKS_PER_THREAD 4

struct pool_job {
	dfq_pool_fn fn;
	void *arg;
	int64_t n;     /* work items [0, n) */
	int64_t chunk; /* items per chunk (the last one may be shorter) */
	int64_t nchunks;
};

struct worker {
	struct dfq_pool *pool;
	int tid; /* 1..nthreads-1; the caller of dfq_pool_run is 0 */
};

struct dfq_pool {
	int nthreads;           /* including the caller */
	int nstarted;           /* worker threads actually running */
	pthread_t *threads;     /* owned, nthreads - 1 */
	struct worker *workers; /* owned, nthreads - 1 */
	/* Serialises dfq_pool_run from different outside threads: one job at a time. */
	pthread_mutex_t run_lock;
	/* mu protects job, generation, pending and stop. */
	pthread_mutex_t mu;
	pthread_cond_t work_cv; /* workers wait here for a new generation */
	pthread_cond_t done_cv; /* the caller waits here for pending == 0 */
	struct pool_job job;
	uint64_t generation; /* bumped once per job */
	int pending;         /* workers that have not finished the current job */
	bool stop;
	atomic_int_fast64_t next; /* next chunk to claim */
};

/* Set while this thread is inside a pool fn, so nested dfq_pool_run calls
 * run inline instead of waiting for workers that are busy with the outer job. */
static _Thread_local bool in_pool_fn;

/* Claim and run chunks of job until there are none left. */
static void run_chunks(struct dfq_pool *p, const struct pool_job *job, int tid)
{
	bool was_inside = in_pool_fn;
	in_pool_fn = true;
	for (;;) {
		int64_t c = atomic_fetch_add(&p->next, 1);
		if (c >= job->nchunks)
			break;
		int64_t begin = c * job->chunk;
		int64_t end = begin + job->chunk < job->n ? begin + job->chunk : job->n;
		job->fn(job->arg, begin, end, tid);
	}
	in_pool_fn = was_inside;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct dfq_pool *p = w->pool;
	uint64_t seen = 0;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->generation == seen && !p->stop)
			pthread_cond_wait(&p->work_cv, &p->mu);
		if (p->stop)
			break;
		seen = p->generation;
		struct pool_job job = p->job;
		pthread_mutex_unlock(&p->mu);

		run_chunks(p, &job, w->tid);

		pthread_mutex_lock(&p->mu);
		if (--p->pending == 0)
			pthread_cond_signal(&p->done_cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* CPUs this process may run on (the affinity mask, which honours taskset and
 * cgroup cpusets better than the online count). */
static int usable_cpus(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0) {
		int c = CPU_COUNT(&set);
		if (c > 0)
			return c;
	}
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/* Stop and join the started workers, then free everything. */
static void pool_destroy(struct dfq_pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nstarted; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->done_cv);
	pthread_cond_destroy(&p->work_cv);
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->run_lock);
	free(p->workers);
	free(p->threads);
	free(p);
}

struct dfq_pool *dfq_pool_new(int nthreads, struct dfq_error *err)
{
	if (nthreads < 0 || nthreads > 1024) {
		dfq_error_set(err, DFQ_ERR_ARG, "thread count %d is outside 0..1024", nthreads);
		return NULL;
	}
	if (nthreads == 0)
		nthreads = usable_cpus();

	struct dfq_pool *p = calloc(1, sizeof *p);
	if (!p) {
		dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory creating a thread pool");
		return NULL;
	}
	p->nthreads = nthreads;
	pthread_mutex_init(&p->run_lock, NULL);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work_cv, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	atomic_init(&p->next, 0);
	if (nthreads > 1) {
		p->threads = calloc((size_t)nthreads - 1, sizeof *p->threads);
		p->workers = calloc((size_t)nthreads - 1, sizeof *p->workers);
		if (!p->threads || !p->workers) {
			pool_destroy(p);
			dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory creating a thread pool");
			return NULL;
		}
	}
	for (int i = 0; i < nthreads - 1; i++) {
		p->workers[i].pool = p;
		p->workers[i].tid = i + 1;
		int rc = pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i]);
		if (rc != 0) {
			pool_destroy(p);
			dfq_error_set(err, DFQ_ERR_NOMEM, "cannot start thread %d of %d: %s", i + 2,
			              nthreads, strerror(rc));
			return NULL;
		}
		p->nstarted++;
	}
	return p;
}

void dfq_pool_free(struct dfq_pool *p)
{
	if (p)
		pool_destroy(p);
}

int dfq_pool_size(const struct dfq_pool *p)
{
	return p ? p->nthreads : 1;
}

void dfq_pool_run(struct dfq_pool *p, int64_t n, int64_t min_chunk, dfq_pool_fn fn, void *arg)
{
	if (n <= 0)
		return;
	if (min_chunk < 1)
		min_chunk = 1;
	/* Inline: no pool, a single thread, a nested call, or too little work to split. */
	if (!p || p->nthreads == 1 || in_pool_fn || n <= min_chunk) {
		bool was_inside = in_pool_fn;
		in_pool_fn = true;
		fn(arg, 0, n, 0);
		in_pool_fn = was_inside;
		return;
	}

	int64_t max_chunks = (int64_t)p->nthreads * CHUNKS_PER_THREAD;
	int64_t chunk = (n + max_chunks - 1) / max_chunks;
	if (chunk < min_chunk)
		chunk = min_chunk;
	struct pool_job job = {
	    .fn = fn,
	    .arg = arg,
	    .n = n,
	    .chunk = chunk,
	    .nchunks = (n + chunk - 1) / chunk,
	};

	pthread_mutex_lock(&p->run_lock);
	pthread_mutex_lock(&p->mu);
	p->job = job;
	atomic_store(&p->next, 0);
	p->generation++;
	p->pending = p->nstarted;
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->mu);

	run_chunks(p, &job, 0);

	pthread_mutex_lock(&p->mu);
	while (p->pending > 0)
		pthread_cond_wait(&p->done_cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
	pthread_mutex_unlock(&p->run_lock);
}
