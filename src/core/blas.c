/* blas.c - SGEMM through OpenBLAS loaded at run time, with the core type chosen by dfq.
 *
 * Why dlopen: OpenBLAS picks its kernels once, in its load-time constructor,
 * from its own CPU table or from OPENBLAS_CORETYPE.  Debian 12's 0.3.21 does
 * not know newer Intel CPUs and falls back to its SSE3 "Prescott" kernels
 * (measured ~6x slower than its AVX-512 ones on the same machine).  Linking
 * it normally would run that constructor before main(), so instead we set
 * OPENBLAS_CORETYPE from the CPU's features and only then load the library. */
#include <assert.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "dfq/dfq_blas.h"

#ifndef DFQ_OPENBLAS_SONAME
#define DFQ_OPENBLAS_SONAME "libopenblas.so.0"
#endif

/* CBLAS enum values (fixed by the CBLAS standard); declared here so the
 * build does not depend on any cblas.h.  blasint is int in Debian's
 * (LP64, not ILP64) OpenBLAS. */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

typedef void (*cblas_sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha,
                               const float *a, int lda, const float *b, int ldb, float beta,
                               float *c, int ldc);
typedef void (*set_threads_fn)(int n);
typedef char *(*get_str_fn)(void);

/* Everything below is written once, inside pthread_once, and read-only afterwards
 * (except cur_threads, under threads_lock). */
static struct {
	pthread_once_t once;
	dfq_status status;
	char msg[DFQ_ERROR_MAX];
	void *lib; /* owned for the life of the process, never dlclosed */
	cblas_sgemm_fn sgemm;
	set_threads_fn set_threads;
	get_str_fn get_corename;
	get_str_fn get_config;
	char desc[384];
	pthread_mutex_t threads_lock; /* guards cur_threads and the set_threads call */
	int cur_threads;              /* last value given to the BLAS; 0 = its own default */
} blas = {.once = PTHREAD_ONCE_INIT, .threads_lock = PTHREAD_MUTEX_INITIALIZER};

/* The OpenBLAS core type whose kernels fit this CPU, or NULL to let OpenBLAS
 * detect it.  *why gets the features that decided it, for the description. */
static const char *pick_coretype(const char **why)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
		/* Cooperlake only adds bfloat16 GEMM kernels, which dfq does not use;
		 * its SGEMM is SkylakeX's (measured equal), so SkylakeX is the safer name. */
		*why = "AVX-512";
		return "SkylakeX";
	}
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
		*why = "AVX2 and FMA";
		return "Haswell";
	}
	*why = NULL;
	return NULL;
}

/* "0.3.21" out of "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...", or "?". */
static void config_version(const char *config, char *buf, size_t len)
{
	const char *prefix = "OpenBLAS ";
	snprintf(buf, len, "?");
	if (!config || strncmp(config, prefix, strlen(prefix)) != 0)
		return;
	const char *v = config + strlen(prefix);
	size_t n = strcspn(v, " ");
	if (n > 0 && n < len)
		snprintf(buf, len, "%.*s", (int)n, v);
}

static void *must_sym(const char *name)
{
	void *s = dlsym(blas.lib, name);
	if (!s && blas.status == DFQ_OK) {
		blas.status = DFQ_ERR_UNSUPPORTED;
		snprintf(blas.msg, sizeof blas.msg, "%s has no symbol %s: it is not OpenBLAS",
		         DFQ_OPENBLAS_SONAME, name);
	}
	return s;
}

static void blas_load(void)
{
	/* Copied: setenv below may invalidate what getenv returned. */
	const char *env = getenv("OPENBLAS_CORETYPE");
	bool was_set = env != NULL;
	char user[64] = "";
	if (env)
		snprintf(user, sizeof user, "%s", env);
	const char *why = NULL;
	const char *chosen = NULL;

	/* Respect the user's choice; otherwise set ours just for the load.
	 * (setenv is not thread-safe: call dfq_blas_init before starting threads.) */
	if (!*user) {
		chosen = pick_coretype(&why);
		if (chosen && setenv("OPENBLAS_CORETYPE", chosen, 1) != 0)
			chosen = NULL;
	}
	/* One BLAS thread to start with, unless the user chose a count: dfq runs
	 * its own threads and asks for the BLAS's only where it wants them
	 * (dfq_blas_set_threads, which starts them then).  Otherwise OpenBLAS
	 * starts a thread per core at the load, which spins for a while on the
	 * cores dfq's threads need (measured: 5-6% of the CPU time of a 2-thread
	 * eval of the ResNet sample). */
	bool threads_set = false;
	if (!getenv("OPENBLAS_NUM_THREADS") && !getenv("GOTO_NUM_THREADS") &&
	    !getenv("OMP_NUM_THREADS"))
		threads_set = setenv("OPENBLAS_NUM_THREADS", "1", 1) == 0;
	blas.lib = dlopen(DFQ_OPENBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
	const char *dlerr = blas.lib ? NULL : dlerror();
	if (threads_set)
		unsetenv("OPENBLAS_NUM_THREADS");
	/* OpenBLAS has read the variable in its constructor: leave the environment
	 * as the user had it, so child processes do not think the user set it. */
	if (chosen && was_set)
		setenv("OPENBLAS_CORETYPE", "", 1);
	else if (chosen)
		unsetenv("OPENBLAS_CORETYPE");
	if (!blas.lib) {
		blas.status = DFQ_ERR_UNSUPPORTED;
		snprintf(blas.msg, sizeof blas.msg,
		         "cannot load the BLAS library %s (install libopenblas0-pthread): %s",
		         DFQ_OPENBLAS_SONAME, dlerr ? dlerr : "unknown error");
		return;
	}

	blas.sgemm = (cblas_sgemm_fn)must_sym("cblas_sgemm");
	blas.set_threads = (set_threads_fn)must_sym("openblas_set_num_threads");
	blas.get_corename = (get_str_fn)must_sym("openblas_get_corename");
	blas.get_config = (get_str_fn)must_sym("openblas_get_config");
	if (blas.status != DFQ_OK) {
		blas.sgemm = NULL;
		return;
	}

	char version[32];
	config_version(blas.get_config(), version, sizeof version);
	const char *core = blas.get_corename();
	if (!core)
		core = "?";
	/* Report what OpenBLAS actually uses, which differs from what was asked
	 * when e.g. the library was already loaded by someone else. */
	char who[160];
	if (*user && strcasecmp(core, user) == 0)
		snprintf(who, sizeof who, "set by OPENBLAS_CORETYPE");
	else if (*user)
		snprintf(who, sizeof who,
		         "detected by OpenBLAS (OPENBLAS_CORETYPE=%s was not applied)", user);
	else if (chosen && strcasecmp(core, chosen) == 0)
		snprintf(who, sizeof who, "chosen by dfq from the CPU's features (%s)", why);
	else if (chosen)
		snprintf(who, sizeof who,
		         "detected by OpenBLAS (dfq asked for %s, which was not applied)", chosen);
	else
		snprintf(who, sizeof who, "detected by OpenBLAS");
	snprintf(blas.desc, sizeof blas.desc, "OpenBLAS %s (%s), core %s, %s", version,
	         DFQ_OPENBLAS_SONAME, core, who);
}

dfq_status dfq_blas_init(struct dfq_error *err)
{
	pthread_once(&blas.once, blas_load);
	if (blas.status != DFQ_OK)
		return dfq_error_set(err, blas.status, "%s", blas.msg);
	return DFQ_OK;
}

void dfq_sgemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
               const float *b, int ldb, float beta, float *c, int ldc)
{
	assert(blas.sgemm && "dfq_blas_init must succeed before dfq_sgemm");
	if (m <= 0 || n <= 0)
		return;
	if (k <= 0) {
		/* Empty product: C = beta * C (beta 0 clears, as BLAS does). */
		for (int i = 0; i < m; i++)
			for (int j = 0; j < n; j++)
				c[(size_t)i * ldc + j] =
				    beta == 0.0f ? 0.0f : beta * c[(size_t)i * ldc + j];
		return;
	}
	blas.sgemm(CBLAS_ROW_MAJOR, ta ? CBLAS_TRANS : CBLAS_NO_TRANS,
	           tb ? CBLAS_TRANS : CBLAS_NO_TRANS, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void dfq_blas_set_threads(int n)
{
	assert(blas.set_threads && "dfq_blas_init must succeed before dfq_blas_set_threads");
	if (n < 1)
		n = 1;
	/* Setting the count is cheap but not free in OpenBLAS; kernels call this
	 * per operator, so skip calls that change nothing. */
	pthread_mutex_lock(&blas.threads_lock);
	if (blas.cur_threads != n) {
		blas.set_threads(n);
		blas.cur_threads = n;
	}
	pthread_mutex_unlock(&blas.threads_lock);
}

const char *dfq_blas_describe(void)
{
	/* Loads the library if nobody has yet: pthread_once also orders the read of desc. */
	pthread_once(&blas.once, blas_load);
	if (blas.status != DFQ_OK)
		return blas.msg;
	return blas.desc;
}
