/* session.c - the session: loaded DFQ model, settings and the lazily built executor. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "cmd.h"
#include "dfq/dfq_eval.h"
#include "dfq/dfq_sha256.h"
#include "gnuplot.h"
#include "sweep.h"

static const char *const bool_words[] = {"on", "off", NULL};
static const char *const scheme_words[] = {"asym", "sym", NULL};
static const char *const granularity_words[] = {"tensor", "channel", NULL};
static const char *const eq_range_words[] = {"minmax", "sym", NULL};
static const char *const eq_chains_words[] = {"through", "stop-linear", NULL};
static const char *const act_range_words[] = {"bn", "minmax", "global", "percentile", NULL};

static const int bbits_values[] = {0, 8, 16, 32, -1};
const struct num_spec cli_wbits_num = {.whole = true, .lo = DFQ_QBITS_MIN, .hi = DFQ_QBITS_MAX};
const struct num_spec cli_abits_num = {
    .whole = true, .lo = DFQ_QBITS_MIN, .hi = DFQ_QBITS_MAX, .zero = "float"};
const struct num_spec cli_bbits_num = {.whole = true, .zero = "float", .only = bbits_values};
static const struct num_spec threads_num = {.whole = true, .lo = 0, .hi = 1024};
static const struct num_spec batch_num = {.whole = true, .lo = 1, .hi = 4096};
static const struct num_spec n_std_num = {.lo = 0, .hi = 100, .above_lo = true};

/* clang-format off */
const struct setting_def session_settings[] = {
	{"threads", SETTING_INT, "kernel threads (0 = all CPUs)", NULL, &threads_num},
	{"fast", SETTING_BOOL, "fast kernels (off = scalar reference kernels)", bool_words, NULL},
	{"errexit", SETTING_BOOL, "scripts stop at a failing command (off: the next one runs)",
	 bool_words, NULL},
	{"batch", SETTING_INT, "samples per run in eval (1 to 4096)", NULL, &batch_num},
	{"wbits", SETTING_INT, "quantize: weight bits (2 to 16)", NULL, &cli_wbits_num},
	{"abits", SETTING_INT, "quantize: activation bits (2 to 16, 0 = float)", NULL,
	 &cli_abits_num},
	{"bbits", SETTING_INT, "quantize: bias bits (0 = float, 8, 16, 32 = INT32 as float)", NULL,
	 &cli_bbits_num},
	{"scheme", SETTING_CHOICE, "grids: asym (zero point) or sym", scheme_words, NULL},
	{"eq-range", SETTING_CHOICE, "equalize: channel range max - min (minmax) or 2 max |W| (sym)",
	 eq_range_words, NULL},
	{"eq-chains", SETTING_CHOICE,
	 "equalize: chains go through linear layers (through) or end at them (stop-linear)",
	 eq_chains_words, NULL},
	{"granularity", SETTING_CHOICE, "weight grids: tensor or channel (per output channel)",
	 granularity_words, NULL},
	{"act-range", SETTING_CHOICE, "activation ranges: bn, minmax, global or percentile",
	 act_range_words, NULL},
	{"n-std", SETTING_FLOAT, "data-free ranges: beta +- n-std * |gamma|", NULL, &n_std_num},
	{"timing", SETTING_BOOL, "print each command's time (\"ms\" in --json) and eval's speed",
	 bool_words, NULL},
	{"verbose", SETTING_BOOL, "steps list every layer they touched (-v; --json always has them)",
	 bool_words, NULL},
	{NULL, SETTING_INT, NULL, NULL, NULL},
};
/* clang-format on */

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
	struct dfq_equalize_opts eo;
	dfq_equalize_opts_default(&eo);
	s->set.eq_range = eo.range;
	s->set.eq_chains = eo.chains;
	s->set.act_range = DFQ_RANGE_BN;
	s->set.n_std = 6.0;
}

/* Drop the executor; the next session_exec() builds a new one. */
static void session_drop_exec(struct session *s)
{
	dfq_exec_free(s->exec);
	s->exec = NULL;
}

void session_drop_analysis(struct session *s)
{
	dfq_sens_result_free(s->sens);
	free(s->sens);
	s->sens = NULL;
	dfq_cmp_result_free(s->cmp);
	free(s->cmp);
	s->cmp = NULL;
}

void session_free(struct session *s)
{
	session_drop_analysis(s);
	gnuplot_close(s->gnuplot); /* kills and reaps it: no gnuplot outlives dfq */
	session_drop_exec(s);
	dfq_model_free(s->model);
	free(s->model_path);
	dfq_data_free(s->data);
	free(s->data_line);
	free(s->evals);
	sweep_free(s->sweep);
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
	s->nevals = 0; /* they refer to the old model's steps */
	s->steps_unsaved = false;
	/* The executor borrows the old graph: it must go first. */
	session_drop_exec(s);
	session_drop_analysis(s);
	dfq_model_free(s->model);
	free(s->model_path);
	s->model = m;
	s->graph = m->g;
	s->model_path = p;
	/* which file this was, for session save (the file may change later) */
	if (dfq_sha256_file(path, s->model_sha256, NULL) != DFQ_OK)
		s->model_sha256[0] = '\0';
	return DFQ_OK;
}

void session_replace_model(struct session *s, struct dfq_model *m)
{
	session_drop_exec(s);
	session_drop_analysis(s);
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
		dfq_error_set(err, DFQ_ERR_ARG, "%s", CLI_MSG_NO_MODEL);
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
/* Catches in force: a command run inside another one's (a sweep replaying
 * measure data) neither clears the outer one's flag nor restores SIGINT. */
static int catch_depth;

void cli_interrupt_catch(bool on)
{
	if (on && catch_depth++ > 0)
		return;
	if (!on && catch_depth > 1) {
		catch_depth--;
		return;
	}
	interrupted = 0;
	if (!on) {
		catch_depth = 0;
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

const struct setting_def *session_setting_find(const char *key)
{
	for (int i = 0; session_settings[i].name; i++)
		if (strcmp(session_settings[i].name, key) == 0)
			return &session_settings[i];
	return NULL;
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

/* "bn, minmax, global or percentile" */
static void choice_list(const char *const *w, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; w[i] && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s",
		                         i == 0     ? ""
		                         : w[i + 1] ? ", "
		                                    : " or ",
		                         w[i]);
}

/* The index of value among the choices of d, or -1 after wording why. */
static int parse_choice(const struct setting_def *d, const char *value, char *why, size_t len)
{
	for (int i = 0; d->choices[i]; i++)
		if (strcmp(d->choices[i], value) == 0)
			return i;
	char list[128];
	choice_list(d->choices, list, sizeof list);
	snprintf(why, len, "%s must be %s, not '%s'", d->name, list, value);
	return -1;
}

/* Apply a checked value: x for numbers and bools (0/1), choice the index
 * of a CHOICE's value.  False with why when the model refuses it. */
static bool apply_setting(struct session *s, const char *key, double x, int choice, char *why,
                          size_t len)
{
	struct dfq_error err;
	int n = (int)x;
	if (strcmp(key, "threads") == 0) {
		if (s->set.threads != n)
			session_drop_exec(s);
		s->set.threads = n;
	} else if (strcmp(key, "fast") == 0) {
		if (s->set.fast != (n != 0))
			session_drop_exec(s);
		s->set.fast = n != 0;
	} else if (strcmp(key, "errexit") == 0) {
		s->set.errexit = n != 0;
	} else if (strcmp(key, "timing") == 0) {
		s->set.timing = n != 0;
	} else if (strcmp(key, "verbose") == 0) {
		s->set.verbose = n != 0;
	} else if (strcmp(key, "batch") == 0) {
		s->set.batch = n;
	} else if (strcmp(key, "wbits") == 0) {
		s->set.wbits = n;
	} else if (strcmp(key, "abits") == 0) {
		s->set.abits = n;
	} else if (strcmp(key, "bbits") == 0) {
		s->set.bbits = n;
	} else if (strcmp(key, "scheme") == 0) {
		s->set.scheme = choice == 1 ? DFQ_QSCHEME_SYM : DFQ_QSCHEME_ASYM;
	} else if (strcmp(key, "eq-range") == 0) {
		s->set.eq_range = choice == 1 ? DFQ_QSCHEME_SYM : DFQ_QSCHEME_ASYM;
	} else if (strcmp(key, "eq-chains") == 0) {
		s->set.eq_chains = choice == 1 ? DFQ_EQ_CHAINS_STOP_LINEAR : DFQ_EQ_CHAINS_THROUGH;
	} else if (strcmp(key, "granularity") == 0) {
		s->set.per_channel = choice == 1;
	} else if (strcmp(key, "act-range") == 0) {
		dfq_range_src src;
		if (dfq_range_src_parse(act_range_words[choice], &src, &err) != DFQ_OK ||
		    (s->model && dfq_model_set_range_source(s->model, src, &err) != DFQ_OK)) {
			snprintf(why, len, "%s", err.msg);
			return false;
		}
		s->set.act_range = src;
	} else if (strcmp(key, "n-std") == 0) {
		if (s->model && dfq_model_set_n_sigma(s->model, x, &err) != DFQ_OK) {
			snprintf(why, len, "%s", err.msg);
			return false;
		}
		s->set.n_std = x;
	}
	return true;
}

bool session_setting_set(struct session *s, const char *key, const char *value, char *why,
                         size_t len)
{
	const struct setting_def *d = session_setting_find(key);
	if (!d) {
		char names[256];
		setting_names(names, sizeof names);
		snprintf(why, len, "unknown setting '%s' (settings: %s)", key, names);
		return false;
	}
	double x = 0;
	int choice = -1;
	switch (d->type) {
	case SETTING_BOOL: {
		bool b;
		if (!parse_bool(value, &b)) {
			snprintf(why, len, "%s must be on or off, not '%s'", key, value);
			return false;
		}
		x = b;
		break;
	}
	case SETTING_CHOICE:
		if ((choice = parse_choice(d, value, why, len)) < 0)
			return false;
		break;
	case SETTING_INT:
	case SETTING_FLOAT:
		if (!num_parse(value, d->num, &x)) {
			num_why(key, value, d->num, why, len);
			return false;
		}
		break;
	}
	return apply_setting(s, key, x, choice, why, len);
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
	if (strcmp(name, "eq-range") == 0)
		return s->set.eq_range;
	if (strcmp(name, "eq-chains") == 0)
		return s->set.eq_chains;
	if (strcmp(name, "granularity") == 0)
		return s->set.per_channel;
	if (strcmp(name, "act-range") == 0)
		return s->set.act_range;
	if (strcmp(name, "n-std") == 0)
		return s->set.n_std;
	if (strcmp(name, "timing") == 0)
		return s->set.timing;
	if (strcmp(name, "verbose") == 0)
		return s->set.verbose;
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
		else if (strcmp(name, "eq-range") == 0)
			snprintf(buf, len, "%s",
			         eq_range_words[s->set.eq_range == DFQ_QSCHEME_SYM]);
		else if (strcmp(name, "eq-chains") == 0)
			snprintf(buf, len, "%s",
			         eq_chains_words[s->set.eq_chains == DFQ_EQ_CHAINS_STOP_LINEAR]);
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
