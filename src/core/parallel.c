/* parallel.c - the fixed thread pool behind dfq_pool_run (see dfq_parallel.h).
 *
 * Workers are persistent and sleep on a condition variable between jobs, so
 * an idle pool costs no CPU.  (Spinning a while before sleeping was measured
 * slower on this 2-core machine: the spinner takes the core the caller needs
 * when anything else runs.)  A job is a range split into chunks; every
 * participating thread, the caller included, claims chunks from one atomic
 * counter until none are left, which keeps both cores busy even when one of
 * them is slowed down by something else.
 *
 * The caller only waits for workers that are running one of its chunks, never
 * for one that has not woken up yet (on a busy machine that can take a
 * scheduler time slice): the counter carries the job's generation, so a
 * worker that arrives late finds nothing to claim, even if the next job has
 * started. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <immintrin.h>
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
/* Pause instructions the caller spins for, waiting for a worker's last chunk,
 * before it yields the CPU instead (the worker may have been preempted). */
#define SPIN_PAUSES 2000

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
	/* mu protects job and sleeping, and orders the writes of generation and
	 * stop with the workers' checks before they sleep. */
	pthread_mutex_t mu;
	pthread_cond_t work_cv; /* sleeping workers wait here for a new generation */
	struct pool_job job;
	atomic_uint_fast64_t generation; /* bumped once per job */
	atomic_bool stop;
	int sleeping; /* workers waiting on work_cv */
	/* The next chunk to claim, tagged with the job's generation in the high
	 * 32 bits: (generation << 32) | chunk. */
	atomic_uint_fast64_t next;
	atomic_int inflight; /* workers that may be running chunks */
};

/* Set while this thread is inside a pool fn, so nested dfq_pool_run calls
 * run inline instead of waiting for workers that are busy with the outer job. */
static _Thread_local bool in_pool_fn;

/* Claim a chunk of the job of generation gen: its index, or -1 when there is
 * none left or another job has started. */
static int64_t claim(struct dfq_pool *p, const struct pool_job *job, uint64_t gen)
{
	uint64_t tag = (gen & 0xffffffffu) << 32;
	uint_fast64_t v = atomic_load(&p->next);
	for (;;) {
		if ((v & ~(uint64_t)0xffffffffu) != tag ||
		    (int64_t)(v & 0xffffffffu) >= job->nchunks)
			return -1;
		if (atomic_compare_exchange_weak(&p->next, &v, v + 1))
			return (int64_t)(v & 0xffffffffu);
	}
}

/* Claim and run chunks of job until there are none left. */
static void run_chunks(struct dfq_pool *p, const struct pool_job *job, uint64_t gen, int tid)
{
	bool was_inside = in_pool_fn;
	in_pool_fn = true;
	for (;;) {
		int64_t c = claim(p, job, gen);
		if (c < 0)
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

	for (;;) {
		pthread_mutex_lock(&p->mu);
		while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop)) {
			p->sleeping++;
			pthread_cond_wait(&p->work_cv, &p->mu);
			p->sleeping--;
		}
		if (atomic_load(&p->stop)) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		seen = atomic_load(&p->generation);
		struct pool_job job = p->job;
		pthread_mutex_unlock(&p->mu);

		/* announce before claiming: the caller waits for announced workers */
		atomic_fetch_add(&p->inflight, 1);
		run_chunks(p, &job, seen, w->tid);
		atomic_fetch_sub(&p->inflight, 1);
	}
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
	atomic_store(&p->stop, true);
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nstarted; i++)
		pthread_join(p->threads[i], NULL);
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
	atomic_init(&p->next, 0);
	atomic_init(&p->generation, 0);
	atomic_init(&p->stop, false);
	atomic_init(&p->inflight, 0);
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
	uint64_t gen = atomic_load(&p->generation) + 1;
	atomic_store(&p->next, (gen & 0xffffffffu) << 32);
	atomic_store(&p->generation, gen);
	if (p->sleeping > 0)
		pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->mu);

	run_chunks(p, &job, gen, 0);

	/* Every chunk is claimed.  Wait for the workers still running one; a
	 * worker that announces itself from now on finds nothing to claim. */
	for (int i = 0; atomic_load(&p->inflight) > 0; i++) {
		if (i < SPIN_PAUSES)
			_mm_pause();
		else
			sched_yield();
	}
	pthread_mutex_unlock(&p->run_lock);
}
