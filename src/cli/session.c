/* session.c - the session: loaded model, settings and the lazily built executor. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

const struct setting_def session_settings[] = {
	{"threads", SETTING_INT, "kernel threads (0 = all CPUs)"},
	{"fast", SETTING_BOOL, "fast kernels (off = scalar reference kernels)"},
	{"errexit", SETTING_BOOL, "stop a script at the first failing line"},
	{NULL, SETTING_INT, NULL},
};

void session_init(struct session *s)
{
	memset(s, 0, sizeof *s);
	s->set.threads = 0;
	s->set.fast = true;
	s->set.errexit = true;
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
	dfq_graph_free(s->graph);
	free(s->model_path);
	memset(s, 0, sizeof *s);
}

dfq_status session_set_model(struct session *s, struct dfq_graph *g, const char *path,
			     struct dfq_error *err)
{
	char *p = strdup(path);
	if (!p) {
		dfq_graph_free(g);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
	}
	/* The executor borrows the old graph: it must go first. */
	session_drop_exec(s);
	dfq_graph_free(s->graph);
	free(s->model_path);
	s->graph = g;
	s->model_path = p;
	return DFQ_OK;
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

bool session_setting_set(struct session *s, const char *key, const char *value, char *why,
			 size_t len)
{
	int i = setting_index(key);
	if (i < 0) {
		char names[128];
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
	char *end;
	errno = 0;
	long n = strtol(value, &end, 10);
	if (errno || end == value || *end || n < 0 || n > 1024) {
		snprintf(why, len, "%s must be a whole number from 0 to 1024, not '%s'", key,
			 value);
		return false;
	}
	if (s->set.threads != (int)n)
		session_drop_exec(s);
	s->set.threads = (int)n;
	return true;
}

int session_setting_int(const struct session *s, int i)
{
	const char *name = session_settings[i].name;
	if (strcmp(name, "threads") == 0)
		return s->set.threads;
	if (strcmp(name, "fast") == 0)
		return s->set.fast;
	return s->set.errexit;
}

const char *session_setting_str(const struct session *s, int i, char *buf, size_t len)
{
	int v = session_setting_int(s, i);
	if (session_settings[i].type == SETTING_BOOL)
		snprintf(buf, len, "%s", v ? "on" : "off");
	else
		snprintf(buf, len, "%d", v);
	return buf;
}
