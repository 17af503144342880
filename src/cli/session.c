/* session.c - the session: loaded DFQ model, settings and the lazily built executor. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "dfq/dfq_eval.h"

const struct setting_def session_settings[] = {
    {"threads", SETTING_INT, "kernel threads (0 = all CPUs)"},
    {"fast", SETTING_BOOL, "fast kernels (off = scalar reference kernels)"},
    {"errexit", SETTING_BOOL, "stop a script at the first failing line"},
    {"batch", SETTING_INT, "samples per run in eval (1 to 4096)"},
    {"wbits", SETTING_INT, "quantize: weight bits (2 to 16)"},
    {"abits", SETTING_INT, "quantize: activation bits (2 to 16, 0 = float)"},
    {"bbits", SETTING_INT, "quantize: bias bits (0 = float, 8, 16, 32 = INT32 as float)"},
    {"scheme", SETTING_CHOICE, "grids: asym (zero point) or sym; equalize ranges too"},
    {"granularity", SETTING_CHOICE, "weight grids: tensor or channel (per output channel)"},
    {"act-range", SETTING_CHOICE, "activation ranges: bn, minmax, global or percentile"},
    {"n-std", SETTING_FLOAT, "data-free ranges: beta +- n-std * |gamma|"},
    {"timing", SETTING_BOOL, "print each command's time (\"ms\" in --json) and eval's speed"},
    {NULL, SETTING_INT, NULL},
};

void session_init(struct session *s)
{
	memset(s, 0, sizeof *s);
	s->set.threads = 0;
	s->set.fast = true;
	s->set.errexit = true;
	s->set.batch = DFQ_EVAL_DEFAULT_BATCH;
	struct dfq_qconfig q;
	dfq_qconfig_default(&q);
	s->set.wbits = q.wbits;
	s->set.abits = q.abits;
	s->set.bbits = q.bbits;
	s->set.scheme = q.scheme;
	s->set.per_channel = q.per_channel;
	s->set.act_range = DFQ_RANGE_BN;
	s->set.n_std = 6.0;
}

/* Drop the executor; the next session_exec() builds a new one. */
static void session_drop_exec(struct session *s)
{
	dfq_exec_free(s->exec);
	s->exec = NULL;
}

void session_free(struct session *s)
{
	session_drop_exec(s);
	dfq_model_free(s->model);
	free(s->model_path);
	dfq_data_free(s->data);
	memset(s, 0, sizeof *s);
}

/* The model-side settings (range source, n-std) onto m. */
static dfq_status apply_model_settings(const struct session *s, struct dfq_model *m,
                                       struct dfq_error *err)
{
	dfq_status st = DFQ_OK;
	if (m->range_src != s->set.act_range)
		st = dfq_model_set_range_source(m, s->set.act_range, err);
	if (st == DFQ_OK && m->n_sigma != s->set.n_std)
		st = dfq_model_set_n_sigma(m, s->set.n_std, err);
	return st;
}

/* The values d's samples take: 8-bit pixels are in [0, 1] after the /255,
 * then (x - mean[c]) / std[c] (std > 0).  False when the raw range is not
 * known (float data). */
static bool data_input_range(const struct dfq_data *d, float *lo, float *hi)
{
	const struct dfq_data_info *in = dfq_data_get_info(d);
	if (!in->eight_bit || in->nnorm < 1)
		return false;
	*lo = INFINITY;
	*hi = -INFINITY;
	for (int c = 0; c < in->nnorm; c++) {
		/* In float, as the samples are computed. */
		float l = (0.0f - in->mean[c]) / in->std[c], h = (1.0f - in->mean[c]) / in->std[c];
		*lo = l < *lo ? l : *lo;
		*hi = h > *hi ? h : *hi;
	}
	return isfinite(*lo) && isfinite(*hi);
}

/* Give m's input the range of d's samples, or none when d (which may be
 * NULL) does not know it: a range kept from other data would clip these. */
static dfq_status sync_input_range(struct dfq_model *m, const struct dfq_data *d,
                                   struct dfq_error *err)
{
	/* Data feeds a model with one input (see cmd-data.c). */
	if (!m || m->g->ninputs != 1)
		return DFQ_OK;
	float lo, hi;
	if (d && data_input_range(d, &lo, &hi))
		return dfq_model_set_input_range(m, 0, lo, hi, err);
	return dfq_model_clear_input_range(m, 0, err);
}

dfq_status session_set_model(struct session *s, struct dfq_graph *g, const char *path,
                             struct dfq_error *err)
{
	char *p = strdup(path);
	if (!p) {
		dfq_graph_free(g);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
	}
	struct dfq_model *m = dfq_model_new(g, err);
	if (!m) {
		dfq_graph_free(g);
		free(p);
		return err ? err->status : DFQ_ERR_NOMEM;
	}
	dfq_status st = apply_model_settings(s, m, err);
	if (st == DFQ_OK)
		st = sync_input_range(m, s->data, err);
	if (st != DFQ_OK) {
		dfq_model_free(m);
		free(p);
		return st;
	}
	if (!s->model_path || strcmp(s->model_path, path) != 0)
		s->fp32 = s->last = (struct eval_mark){0};
	/* The executor borrows the old graph: it must go first. */
	session_drop_exec(s);
	dfq_model_free(s->model);
	free(s->model_path);
	s->model = m;
	s->graph = m->g;
	s->model_path = p;
	return DFQ_OK;
}

void session_replace_model(struct session *s, struct dfq_model *m)
{
	session_drop_exec(s);
	dfq_model_free(s->model);
	s->model = m;
	s->graph = m->g;
}

void session_model_changed(struct session *s)
{
	/* Steps edit the graph in place: the executor stays valid. */
	s->graph = s->model ? s->model->g : NULL;
}

dfq_run_mode session_run_mode(const struct session *s)
{
	for (int i = 0; s->model && i < s->model->nlayers; i++)
		if (s->model->layers[i].quantized)
			return DFQ_RUN_QUANT;
	return DFQ_RUN_FP32;
}

bool session_model_pristine(const struct session *s)
{
	for (int i = 0; s->model && i < s->model->nlayers; i++) {
		const struct dfq_layer *L = &s->model->layers[i];
		if (L->quantized || (L->steps & ~(unsigned)DFQ_STEP_FOLD) || L->bcorr_fp)
			return false;
	}
	return s->model != NULL;
}

struct dfq_exec *session_exec(struct session *s, struct dfq_error *err)
{
	if (!s->graph) {
		dfq_error_set(err, DFQ_ERR_ARG, "no model loaded; use 'load MODEL.onnx' first");
		return NULL;
	}
	if (!s->exec) {
		struct dfq_exec_opts o;
		dfq_exec_opts_default(&o);
		o.fast = s->set.fast;
		o.nthreads = s->set.threads;
		s->exec = dfq_exec_new(s->graph, &o, err);
	}
	return s->exec;
}

dfq_status session_set_data(struct session *s, struct dfq_data *d, struct dfq_error *err)
{
	dfq_status st = sync_input_range(s->model, d, err);
	if (st != DFQ_OK)
		return st;
	/* Other samples: the accuracies are no longer comparable. */
	s->fp32 = s->last = (struct eval_mark){0};
	dfq_data_free(s->data);
	s->data = d;
	return DFQ_OK;
}

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	interrupted = 1;
}

/* What SIGINT did before cli_interrupt_catch(true), restored by (false). */
static struct sigaction saved_sigint;
static bool sigint_saved;

void cli_interrupt_catch(bool on)
{
	interrupted = 0;
	if (!on) {
		if (sigint_saved)
			sigaction(SIGINT, &saved_sigint, NULL);
		sigint_saved = false;
		return;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_interrupt;
	sigint_saved = sigaction(SIGINT, &sa, &saved_sigint) == 0;
}

bool cli_interrupted(void)
{
	return interrupted != 0;
}

static bool parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"on", "true", "yes", "1"};
	static const char *const no[] = {"off", "false", "no", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

static int setting_index(const char *key)
{
	for (int i = 0; session_settings[i].name; i++)
		if (strcmp(session_settings[i].name, key) == 0)
			return i;
	return -1;
}

/* "threads, fast, errexit" for error messages. */
static void setting_names(char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; session_settings[i].name && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
		                         session_settings[i].name);
}

/* "wbits", "abits", "bbits": the bit widths quantize accepts. */
static bool parse_bits(const char *key, const char *value, int *out, char *why, size_t len)
{
	char *end;
	errno = 0;
	long n = strtol(value, &end, 10);
	bool num = !errno && end != value && !*end;
	if (strcmp(key, "bbits") == 0) {
		if (num && (n == 0 || n == 8 || n == 16 || n == 32)) {
			*out = (int)n;
			return true;
		}
		snprintf(why, len, "bbits must be 0 (float), 8, 16 or 32, not '%s'", value);
		return false;
	}
	bool zero_ok = strcmp(key, "abits") == 0;
	if (num && ((n >= DFQ_QBITS_MIN && n <= DFQ_QBITS_MAX) || (n == 0 && zero_ok))) {
		*out = (int)n;
		return true;
	}
	snprintf(why, len, "%s must be a bit width from %d to %d%s, not '%s'", key, DFQ_QBITS_MIN,
	         DFQ_QBITS_MAX, zero_ok ? " (or 0: float)" : "", value);
	return false;
}

/* The DFQ settings; false when key is not one of them (*handled false). */
static bool dfq_setting_set(struct session *s, const char *key, const char *value, char *why,
                            size_t len, bool *handled)
{
	struct dfq_error err;
	*handled = true;
	if (strcmp(key, "wbits") == 0)
		return parse_bits(key, value, &s->set.wbits, why, len);
	if (strcmp(key, "abits") == 0)
		return parse_bits(key, value, &s->set.abits, why, len);
	if (strcmp(key, "bbits") == 0)
		return parse_bits(key, value, &s->set.bbits, why, len);
	if (strcmp(key, "scheme") == 0) {
		bool sym = strcmp(value, "sym") == 0;
		if (!sym && strcmp(value, "asym") != 0) {
			snprintf(why, len, "scheme must be asym or sym, not '%s'", value);
			return false;
		}
		s->set.scheme = sym ? DFQ_QSCHEME_SYM : DFQ_QSCHEME_ASYM;
		return true;
	}
	if (strcmp(key, "granularity") == 0) {
		bool ch = strcmp(value, "channel") == 0;
		if (!ch && strcmp(value, "tensor") != 0) {
			snprintf(why, len, "granularity must be tensor or channel, not '%s'",
			         value);
			return false;
		}
		s->set.per_channel = ch;
		return true;
	}
	if (strcmp(key, "act-range") == 0) {
		dfq_range_src src;
		if (dfq_range_src_parse(value, &src, &err) != DFQ_OK) {
			snprintf(why, len,
			         "act-range must be bn, minmax, global or percentile, not '%s'",
			         value);
			return false;
		}
		if (s->model && dfq_model_set_range_source(s->model, src, &err)) {
			snprintf(why, len, "%s", err.msg);
			return false;
		}
		s->set.act_range = src;
		return true;
	}
	if (strcmp(key, "n-std") == 0) {
		char *end;
		errno = 0;
		double n = strtod(value, &end);
		if (errno || end == value || *end || !isfinite(n) || n <= 0 || n > 100) {
			snprintf(why, len, "n-std must be a number above 0 (at most 100), not '%s'",
			         value);
			return false;
		}
		if (s->model && dfq_model_set_n_sigma(s->model, n, &err) != DFQ_OK) {
			snprintf(why, len, "%s", err.msg);
			return false;
		}
		s->set.n_std = n;
		return true;
	}
	if (strcmp(key, "timing") == 0) {
		if (!parse_bool(value, &s->set.timing)) {
			snprintf(why, len, "timing must be on or off, not '%s'", value);
			return false;
		}
		return true;
	}
	*handled = false;
	return false;
}

bool session_setting_set(struct session *s, const char *key, const char *value, char *why,
                         size_t len)
{
	int i = setting_index(key);
	bool handled;
	bool ok = i >= 0 && dfq_setting_set(s, key, value, why, len, &handled);
	if (i >= 0 && handled)
		return ok;
	if (i < 0) {
		char names[256];
		setting_names(names, sizeof names);
		snprintf(why, len, "unknown setting '%s' (settings: %s)", key, names);
		return false;
	}
	if (session_settings[i].type == SETTING_BOOL) {
		bool b;
		if (!parse_bool(value, &b)) {
			snprintf(why, len, "%s must be on or off, not '%s'", key, value);
			return false;
		}
		if (strcmp(key, "fast") == 0) {
			if (s->set.fast != b)
				session_drop_exec(s);
			s->set.fast = b;
		} else {
			s->set.errexit = b;
		}
		return true;
	}
	bool is_batch = strcmp(key, "batch") == 0;
	long lo = is_batch ? 1 : 0, hi = is_batch ? 4096 : 1024;
	char *end;
	errno = 0;
	long n = strtol(value, &end, 10);
	if (errno || end == value || *end || n < lo || n > hi) {
		snprintf(why, len, "%s must be a whole number from %ld to %ld, not '%s'", key, lo,
		         hi, value);
		return false;
	}
	if (is_batch) {
		s->set.batch = (int)n;
		return true;
	}
	if (s->set.threads != (int)n)
		session_drop_exec(s);
	s->set.threads = (int)n;
	return true;
}

double session_setting_num(const struct session *s, int i)
{
	const char *name = session_settings[i].name;
	if (strcmp(name, "threads") == 0)
		return s->set.threads;
	if (strcmp(name, "fast") == 0)
		return s->set.fast;
	if (strcmp(name, "batch") == 0)
		return s->set.batch;
	if (strcmp(name, "wbits") == 0)
		return s->set.wbits;
	if (strcmp(name, "abits") == 0)
		return s->set.abits;
	if (strcmp(name, "bbits") == 0)
		return s->set.bbits;
	if (strcmp(name, "scheme") == 0)
		return s->set.scheme;
	if (strcmp(name, "granularity") == 0)
		return s->set.per_channel;
	if (strcmp(name, "act-range") == 0)
		return s->set.act_range;
	if (strcmp(name, "n-std") == 0)
		return s->set.n_std;
	if (strcmp(name, "timing") == 0)
		return s->set.timing;
	return s->set.errexit;
}

int session_setting_int(const struct session *s, int i)
{
	return (int)lround(session_setting_num(s, i));
}

const char *session_setting_str(const struct session *s, int i, char *buf, size_t len)
{
	const char *name = session_settings[i].name;
	switch (session_settings[i].type) {
	case SETTING_BOOL:
		snprintf(buf, len, "%s", session_setting_int(s, i) ? "on" : "off");
		break;
	case SETTING_FLOAT:
		snprintf(buf, len, "%g", session_setting_num(s, i));
		break;
	case SETTING_CHOICE:
		if (strcmp(name, "scheme") == 0)
			snprintf(buf, len, "%s", s->set.scheme == DFQ_QSCHEME_SYM ? "sym" : "asym");
		else if (strcmp(name, "granularity") == 0)
			snprintf(buf, len, "%s", s->set.per_channel ? "channel" : "tensor");
		else
			snprintf(buf, len, "%s", dfq_range_src_name(s->set.act_range));
		break;
	case SETTING_INT:
		snprintf(buf, len, "%d", session_setting_int(s, i));
		break;
	}
	return buf;
}
