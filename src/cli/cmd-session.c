/* cmd-session.c - session save|load FILE.json: the whole session (model file and its SHA-256,
 * settings, data, steps with their settings and accuracies, measured ranges, the history of
 * evals) as versioned JSON.  Loading replays the steps on a session of its own and replaces the
 * current one only when everything worked: a bad file changes nothing.
 *
 * Format 1 (the README describes it field by field):
 *   {"dfq_session": 1, "saved_by": "dfq 0.1", "saved_at": "2026-12-02T11:00:00Z",
 *    "model": {"path": "...", "sha256": "..."}, "data": "data fmnist" | null,
 *    "settings": {"wbits": "8", ...},
 *    "steps": [{"line": "...", "applied": true, "when": 1764671000, "seconds": 0.01,
 *               "layers": ["..."], "settings": {...}, "data": ... ,
 *               "eval": {"n": 10000, "top1": 0.92, "top5": 0.99, "mode": "quant"} | null}],
 *    "ranges": [{"tensor": "...", "kind": "layer", "layer": "...", "bn": [lo, hi] | null,
 *                "minmax": ..., "global": ..., "percentile": ..., "samples": 0,
 *                "used": "bn", "bits": 8, "grid": {"scale": ..., "zero_point": ...} | null}],
 *    "fp32": {...} | null, "evals": [{"step": 0, "mode": "fp32", "n": ..., "top1": ...,
 *                                     "top5": ..., "when": ...}]} */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dfq/dfq_sha256.h"
#include "files.h"
#include "model-cmd.h"
#include "replay.h"

#define SESSION_FORMAT    1
#define SESSION_MAX_BYTES (64 << 20)

/* --- save --------------------------------------------------------------------------------- */

static cJSON *settings_json(const struct settings *set)
{
	struct session tmp = {.set = *set};
	cJSON *o = cJSON_CreateObject();
	for (int i = 0; o && session_settings[i].name; i++) {
		char v[64];
		session_setting_str(&tmp, i, v, sizeof v);
		cJSON_AddStringToObject(o, session_settings[i].name, v);
	}
	return o;
}

static void add_string_or_null(cJSON *o, const char *key, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, key, v);
	else
		cJSON_AddNullToObject(o, key);
}

static cJSON *steps_json(const struct session *s)
{
	const struct dfq_model *m = s->model;
	cJSON *arr = cJSON_CreateArray();
	for (int i = 0; arr && i < dfq_model_history_count(m); i++) {
		struct dfq_history_entry e;
		if (dfq_model_history_entry(m, i, &e, NULL) != DFQ_OK)
			break;
		const struct step_tag *t = e.tag;
		cJSON *o = cJSON_CreateObject();
		if (!o || !cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			break;
		}
		cJSON_AddStringToObject(o, "line", e.label);
		cJSON_AddBoolToObject(o, "applied", e.applied);
		cJSON_AddNumberToObject(o, "when", (double)(t && t->when ? t->when : e.when));
		cJSON_AddNumberToObject(o, "seconds", e.seconds);
		cJSON *ls = cJSON_AddArrayToObject(o, "layers");
		for (int k = 0; ls && k < e.ntouched; k++) {
			cJSON *n = cJSON_CreateString(mc_layer_name(m, e.touched[k]));
			if (!cJSON_AddItemToArray(ls, n))
				cJSON_Delete(n);
		}
		if (t) {
			cJSON *set = settings_json(&t->set);
			if (!cJSON_AddItemToObject(o, "settings", set))
				cJSON_Delete(set);
			add_string_or_null(o, "data", t->data);
			mc_json_mark(o, "eval", &t->eval, t->eval_quant);
		}
	}
	return arr;
}

static void add_range(cJSON *o, const char *key, const struct dfq_range *r)
{
	mc_json_range(o, key, r->valid, r->lo, r->hi);
}

static cJSON *ranges_json(const struct dfq_model *m)
{
	cJSON *arr = cJSON_CreateArray();
	for (int i = 0; arr && i < m->npoints; i++) {
		const struct dfq_apoint *p = &m->points[i];
		cJSON *o = cJSON_CreateObject();
		if (!o || !cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			break;
		}
		cJSON_AddStringToObject(o, "tensor", m->g->values[p->vi].name);
		cJSON_AddStringToObject(o, "kind", dfq_apoint_kind_name(p->kind));
		if (p->layer >= 0)
			cJSON_AddStringToObject(o, "layer", mc_layer_name(m, p->layer));
		add_range(o, "bn", &p->bn);
		add_range(o, "minmax", &p->minmax);
		add_range(o, "global", &p->global);
		add_range(o, "percentile", &p->pct);
		cJSON_AddNumberToObject(o, "samples", (double)p->nsamples);
		cJSON_AddStringToObject(o, "used", dfq_range_src_name(p->used));
		cJSON_AddNumberToObject(o, "bits", p->bits);
		if (p->enabled) {
			cJSON *g = cJSON_AddObjectToObject(o, "grid");
			cJSON_AddNumberToObject(g, "scale", p->qp.scale);
			cJSON_AddNumberToObject(g, "zero_point", p->qp.zero_point);
		} else {
			cJSON_AddNullToObject(o, "grid");
		}
	}
	return arr;
}

static cJSON *evals_json(const struct session *s)
{
	cJSON *arr = cJSON_CreateArray();
	for (int i = 0; arr && i < s->nevals; i++) {
		const struct eval_record *r = &s->evals[i];
		cJSON *o = cJSON_CreateObject();
		if (!o || !cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			break;
		}
		cJSON_AddNumberToObject(o, "step", r->step);
		cJSON_AddStringToObject(o, "mode", r->quant ? "quant" : "fp32");
		cJSON_AddNumberToObject(o, "n", (double)r->mark.n);
		cJSON_AddNumberToObject(o, "top1", r->mark.top1);
		cJSON_AddNumberToObject(o, "top5", r->mark.top5);
		cJSON_AddNumberToObject(o, "when", (double)r->when);
	}
	return arr;
}

static void add_item(cJSON *o, const char *key, cJSON *item, bool *ok)
{
	if (!item || !cJSON_AddItemToObject(o, key, item)) {
		cJSON_Delete(item);
		*ok = false;
	}
}

static enum cmd_retval session_save(struct cmd_ctx *ctx, const char *path)
{
	struct session *s = ctx->s;
	char when[32];
	time_t now = time(NULL);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	cJSON *root = cJSON_CreateObject();
	bool ok = root != NULL;
	if (ok) {
		cJSON_AddNumberToObject(root, "dfq_session", SESSION_FORMAT);
		cJSON_AddStringToObject(root, "saved_by", "dfq " PACKAGE_VERSION);
		cJSON_AddStringToObject(root, "saved_at", when);
		cJSON *model = cJSON_AddObjectToObject(root, "model");
		cJSON_AddStringToObject(model, "path", s->model_path);
		cJSON_AddStringToObject(model, "sha256", s->model_sha256);
		add_string_or_null(root, "data", s->data_line);
		add_item(root, "settings", settings_json(&s->set), &ok);
		add_item(root, "steps", steps_json(s), &ok);
		add_item(root, "ranges", ranges_json(s->model), &ok);
		if (s->fp32.valid)
			mc_json_mark(root, "fp32", &s->fp32, false);
		else
			cJSON_AddNullToObject(root, "fp32");
		add_item(root, "evals", evals_json(s), &ok);
	}
	char *text = ok ? cJSON_Print(root) : NULL;
	cJSON_Delete(root);
	if (!text)
		return cmd_fail(ctx, "out of memory");
	size_t len = strlen(text);
	char why[512];
	/* cJSON's text has no final newline */
	char *t2 = realloc(text, len + 2);
	if (t2) {
		text = t2;
		text[len++] = '\n';
		text[len] = '\0';
	}
	ok = cli_write_atomic(path, text, len, why, sizeof why);
	cJSON_free(text);
	if (!ok)
		return cmd_fail(ctx, "session save: %s", why);
	s->steps_unsaved = false;
	int n = dfq_model_history_count(s->model);
	cmd_print(ctx, "saved the session (%d step%s, %d eval%s) to %s", n, n == 1 ? "" : "s",
	          s->nevals, s->nevals == 1 ? "" : "s", path);
	cJSON_AddStringToObject(ctx->json, "path", path);
	return CMD_RETURN_NORMAL;
}

/* --- load: reading and checking the file ------------------------------------------------ */

/* The file's text (NUL-terminated, caller frees), or NULL with why. */
static char *read_file(const char *path, char *why, size_t len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(why, len, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		if (n + 1 >= cap) {
			if (cap >= SESSION_MAX_BYTES) {
				snprintf(why, len, "%s is larger than a session can be (64 MB)",
				         path);
				free(buf);
				buf = NULL;
				break;
			}
			char *b = realloc(buf, cap * 2);
			if (!b) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = b;
			cap *= 2;
		}
		size_t k = fread(buf + n, 1, cap - n - 1, f);
		n += k;
		if (k == 0)
			break;
	}
	bool bad = ferror(f);
	fclose(f);
	if (buf && bad) {
		snprintf(why, len, "cannot read %s", path);
		free(buf);
		return NULL;
	}
	if (!buf) {
		if (!*why)
			snprintf(why, len, "out of memory reading %s", path);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

/* Line and column of byte off of text. */
static void where(const char *text, size_t off, int *line, int *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off && text[i]; i++) {
		if (text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

static bool is_string_or_null(const cJSON *x)
{
	return !x || cJSON_IsNull(x) || cJSON_IsString(x);
}

static bool is_settings(const cJSON *o)
{
	if (!cJSON_IsObject(o))
		return false;
	const cJSON *v;
	cJSON_ArrayForEach(v, o) if (!cJSON_IsString(v)) return false;
	return true;
}

static bool is_mark(const cJSON *o)
{
	return !o || cJSON_IsNull(o) ||
	       (cJSON_IsObject(o) && cJSON_IsNumber(cJSON_GetObjectItem(o, "n")) &&
	        cJSON_IsNumber(cJSON_GetObjectItem(o, "top1")) &&
	        cJSON_IsNumber(cJSON_GetObjectItem(o, "top5")));
}

/* Everything load reads is there, of the right type: or why not. */
static bool check_format(const cJSON *root, const char *path, char *why, size_t len)
{
	const cJSON *v = cJSON_GetObjectItem(root, "dfq_session");
	if (!cJSON_IsObject(root) || !cJSON_IsNumber(v)) {
		snprintf(why, len,
		         "%s is not a dfq session (it has no \"dfq_session\" format number)", path);
		return false;
	}
	if (v->valuedouble > SESSION_FORMAT) {
		snprintf(
		    why, len,
		    "%s was saved by a newer dfq (session format %g; this dfq reads format %d)",
		    path, v->valuedouble, SESSION_FORMAT);
		return false;
	}
	if (v->valuedouble != SESSION_FORMAT) {
		snprintf(why, len, "%s has an unknown session format %g (this dfq reads %d)", path,
		         v->valuedouble, SESSION_FORMAT);
		return false;
	}
	const cJSON *model = cJSON_GetObjectItem(root, "model");
	const cJSON *sha = cJSON_GetObjectItem(model, "sha256");
	if (!cJSON_IsString(cJSON_GetObjectItem(model, "path")) || !cJSON_IsString(sha) ||
	    strlen(sha->valuestring) != 64) {
		snprintf(why, len, "%s: \"model\" needs a \"path\" and a 64-digit \"sha256\"",
		         path);
		return false;
	}
	if (!is_string_or_null(cJSON_GetObjectItem(root, "data")) ||
	    !is_settings(cJSON_GetObjectItem(root, "settings")) ||
	    !is_mark(cJSON_GetObjectItem(root, "fp32"))) {
		snprintf(why, len,
		         "%s: \"data\", \"settings\" or \"fp32\" is not what a session holds",
		         path);
		return false;
	}
	const cJSON *steps = cJSON_GetObjectItem(root, "steps");
	if (!cJSON_IsArray(steps)) {
		snprintf(why, len, "%s: \"steps\" must be a list", path);
		return false;
	}
	int i = 0;
	bool undone = false;
	const cJSON *st;
	cJSON_ArrayForEach(st, steps)
	{
		i++;
		const cJSON *line = cJSON_GetObjectItem(st, "line");
		const cJSON *applied = cJSON_GetObjectItem(st, "applied");
		const cJSON *set = cJSON_GetObjectItem(st, "settings");
		if (!cJSON_IsString(line) || !*line->valuestring || !cJSON_IsBool(applied) ||
		    (set && !is_settings(set)) ||
		    !is_string_or_null(cJSON_GetObjectItem(st, "data")) ||
		    !is_mark(cJSON_GetObjectItem(st, "eval"))) {
			snprintf(why, len, "%s: step %d is not what a session holds", path, i);
			return false;
		}
		if (cJSON_IsTrue(applied) && undone) {
			snprintf(why, len, "%s: step %d is applied after an undone one", path, i);
			return false;
		}
		undone |= cJSON_IsFalse(applied);
	}
	const cJSON *evals = cJSON_GetObjectItem(root, "evals"), *e;
	if (evals && !cJSON_IsArray(evals)) {
		snprintf(why, len, "%s: \"evals\" must be a list", path);
		return false;
	}
	cJSON_ArrayForEach(e, evals) if (!is_mark(e) ||
	                                 !cJSON_IsNumber(cJSON_GetObjectItem(e, "step")))
	{
		snprintf(why, len, "%s: an entry of \"evals\" is not an accuracy", path);
		return false;
	}
	return true;
}

/* --- load: replaying on a session of its own -------------------------------------------- */

/* Settings about how this program runs rather than about the session: a
 * loaded session does not change them. */
static bool program_setting(const char *name)
{
	return strcmp(name, "errexit") == 0 || strcmp(name, "verbose") == 0 ||
	       strcmp(name, "timing") == 0 || strcmp(name, "threads") == 0;
}

/* Apply a settings object to t; false with why. */
static bool apply_settings(struct session *t, const cJSON *set, char *why, size_t len)
{
	const cJSON *v;
	cJSON_ArrayForEach(v, set)
	{
		char w[512];
		if (program_setting(v->string))
			continue;
		if (!session_setting_set(t, v->string, v->valuestring, w, sizeof w)) {
			snprintf(why, len, "setting %s: %s", v->string, w);
			return false;
		}
	}
	return true;
}

/* Open data command d in t unless it is open already. */
static bool apply_data(struct session *t, const char *d, struct replay_capture *c, char *why, size_t len)
{
	if (!d || replay_same_data(t->data_line, d))
		return true;
	t->had_error = false;
	t->only = RUN_DATA;
	cmd_run_line(t, d, NULL, 0, true);
	t->only = RUN_ANY;
	if (t->had_error)
		snprintf(why, len, "opening the data (%s) failed: %s", d, c->first);
	return !t->had_error;
}

static void mark_from(const cJSON *o, struct eval_mark *m, bool *quant)
{
	if (!o || !cJSON_IsObject(o))
		return;
	m->valid = true;
	m->n = (int64_t)cJSON_GetObjectItem(o, "n")->valuedouble;
	m->top1 = cJSON_GetObjectItem(o, "top1")->valuedouble;
	m->top5 = cJSON_GetObjectItem(o, "top5")->valuedouble;
	const cJSON *mode = cJSON_GetObjectItem(o, "mode");
	if (quant)
		*quant = cJSON_IsString(mode) && strcmp(mode->valuestring, "quant") == 0;
}

/* Rebuild the session root describes in t. */
static bool replay(struct session *t, const cJSON *root, const char *path, struct replay_capture *c,
                   char *why, size_t len)
{
	const char *model =
	    cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "path")->valuestring;
	char *av[] = {"load", (char *)model};
	if (cmd_run_argv(t, 2, av, NULL, 0) != CMD_RETURN_NORMAL) {
		snprintf(why, len, "loading the model failed: %s", c->first);
		return false;
	}
	const cJSON *steps = cJSON_GetObjectItem(root, "steps"), *st;
	int i = 0, nundone = 0;
	cJSON_ArrayForEach(st, steps)
	{
		i++;
		const cJSON *set = cJSON_GetObjectItem(st, "settings");
		const cJSON *data = cJSON_GetObjectItem(st, "data");
		const char *line = cJSON_GetObjectItem(st, "line")->valuestring;
		if (set && !apply_settings(t, set, why, len))
			return false;
		if (!apply_data(t, cJSON_IsString(data) ? data->valuestring : NULL, c, why, len))
			return false;
		t->had_error = false;
		t->only = RUN_STEPS;
		cmd_run_line(t, line, NULL, 0, true);
		t->only = RUN_ANY;
		if (t->had_error) {
			snprintf(why, len, "step %d (%s) failed on replay: %s", i, line, c->first);
			return false;
		}
		nundone += cJSON_IsFalse(cJSON_GetObjectItem(st, "applied"));
		int n = dfq_model_history_count(t->model);
		struct step_tag *tag = n > 0 ? session_step_tag(t, n - 1) : NULL;
		if (tag) {
			mark_from(cJSON_GetObjectItem(st, "eval"), &tag->eval, &tag->eval_quant);
			const cJSON *w = cJSON_GetObjectItem(st, "when");
			tag->when = cJSON_IsNumber(w) ? (time_t)w->valuedouble : 0;
		}
	}
	int done;
	struct dfq_error err;
	if (nundone > 0 && dfq_model_undo(t->model, nundone, &done, &err) != DFQ_OK) {
		snprintf(why, len, "%s", err.msg);
		return false;
	}
	const cJSON *data = cJSON_GetObjectItem(root, "data");
	if (!apply_settings(t, cJSON_GetObjectItem(root, "settings"), why, len) ||
	    !apply_data(t, cJSON_IsString(data) ? data->valuestring : NULL, c, why, len))
		return false;
	mark_from(cJSON_GetObjectItem(root, "fp32"), &t->fp32, NULL);
	const cJSON *evals = cJSON_GetObjectItem(root, "evals"), *e;
	int ne = cJSON_GetArraySize(evals);
	if (ne > 0) {
		t->evals = calloc((size_t)ne, sizeof *t->evals);
		if (!t->evals) {
			snprintf(why, len, "out of memory");
			return false;
		}
		t->cap_evals = ne;
	}
	cJSON_ArrayForEach(e, evals)
	{
		struct eval_record *r = &t->evals[t->nevals++];
		mark_from(e, &r->mark, &r->quant);
		r->step = (int)cJSON_GetObjectItem(e, "step")->valuedouble;
		const cJSON *w = cJSON_GetObjectItem(e, "when");
		r->when = cJSON_IsNumber(w) ? (time_t)w->valuedouble : 0;
	}
	return true;
}

/* Activation points whose measured ranges differ from the saved ones. */
static int ranges_differ(const struct dfq_model *m, const cJSON *ranges)
{
	int ndiff = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, ranges)
	{
		const cJSON *name = cJSON_GetObjectItem(r, "tensor");
		const cJSON *mm = cJSON_GetObjectItem(r, "minmax");
		if (!cJSON_IsString(name))
			continue;
		for (int i = 0; i < m->npoints; i++) {
			const struct dfq_apoint *p = &m->points[i];
			if (strcmp(m->g->values[p->vi].name, name->valuestring) != 0)
				continue;
			bool saved = cJSON_IsArray(mm) && cJSON_GetArraySize(mm) == 2;
			if (saved != p->minmax.valid ||
			    (saved &&
			     ((float)cJSON_GetArrayItem(mm, 0)->valuedouble != p->minmax.lo ||
			      (float)cJSON_GetArrayItem(mm, 1)->valuedouble != p->minmax.hi)))
				ndiff++;
			break;
		}
	}
	return ndiff;
}

/* Move what t built into s (the caller's output options stay). */
static void adopt(struct session *s, struct session *t)
{
	struct session old = *s;
	*s = *t;
	s->steps_unsaved = false;
	s->set.errexit = old.set.errexit;
	s->set.verbose = old.set.verbose;
	s->set.timing = old.set.timing;
	s->set.threads = old.set.threads;
	/* t's executor ran with t's thread count: the next use builds one */
	dfq_exec_free(s->exec);
	s->exec = NULL;
	s->json = old.json;
	s->quiet = old.quiet;
	s->had_error = old.had_error;
	s->depth = old.depth;
	s->sink = old.sink;
	s->sink_user = old.sink_user;
	/* the screen's progress bar, or none: t's replay had its own */
	s->progress = old.progress;
	s->progress_user = old.progress_user;
	s->progress_drawn = old.progress_drawn;
	s->progress_last = old.progress_last;
	s->gnuplot = old.gnuplot; /* the chart co-process (and its windows) stay */
	old.gnuplot = NULL;
	old.json = old.quiet = false;
	old.sink = NULL;
	session_free(&old);
	memset(t, 0, sizeof *t);
}

static enum cmd_retval session_load(struct cmd_ctx *ctx, const char *path)
{
	char why[1024] = "";
	char *text = read_file(path, why, sizeof why);
	if (!text)
		return cmd_fail(ctx, "session load: %s", why);
	cJSON *root = cJSON_Parse(text);
	if (!root) {
		const char *at = cJSON_GetErrorPtr();
		int line = 0, col = 0;
		if (at && at >= text && at <= text + strlen(text))
			where(text, (size_t)(at - text), &line, &col);
		free(text);
		if (line)
			return cmd_fail(ctx,
			                "session load: %s is not valid JSON (line %d, column %d; "
			                "truncated or corrupt)",
			                path, line, col);
		return cmd_fail(ctx, "session load: %s is not valid JSON", path);
	}
	free(text);
	enum cmd_retval rv = CMD_RETURN_ERROR;
	struct session t;
	session_init(&t);
	struct replay_capture cap = {""};
	t.sink = replay_capture_sink;
	t.sink_user = &cap;
	if (!check_format(root, path, why, sizeof why)) {
		rv = cmd_fail(ctx, "session load: %s", why);
		goto out;
	}
	const cJSON *model = cJSON_GetObjectItem(root, "model");
	const char *mpath = cJSON_GetObjectItem(model, "path")->valuestring;
	const char *want = cJSON_GetObjectItem(model, "sha256")->valuestring;
	char have[65];
	struct dfq_error err;
	if (dfq_sha256_file(mpath, have, &err) != DFQ_OK) {
		rv = cmd_fail(ctx, "session load: the session's model: %s", err.msg);
		goto out;
	}
	if (strcmp(have, want) != 0) {
		rv = cmd_fail(ctx,
		              "session load: %s has changed since the session was saved (SHA-256 "
		              "%.12s..., the session's is %.12s...)",
		              mpath, have, want);
		goto out;
	}
	if (!replay(&t, root, path, &cap, why, sizeof why)) {
		rv = cmd_fail(ctx, "session load: %s: %s", path, why);
		goto out;
	}
	int ndiff = ranges_differ(t.model, cJSON_GetObjectItem(root, "ranges"));
	int n = dfq_model_history_count(t.model), applied = dfq_model_history_applied(t.model);
	adopt(ctx->s, &t);
	cmd_print(ctx, "loaded the session %s: %s, %d step%s (%d applied), %d eval%s", path, mpath,
	          n, n == 1 ? "" : "s", applied, ctx->s->nevals, ctx->s->nevals == 1 ? "" : "s");
	if (ndiff > 0)
		cmd_print(
		    ctx,
		    "note: the data ranges of %d activation tensor%s differ from the saved ones "
		    "(other data?)",
		    ndiff, ndiff == 1 ? "" : "s");
	cJSON_AddStringToObject(ctx->json, "path", path);
	cJSON_AddNumberToObject(ctx->json, "steps", n);
	cJSON_AddNumberToObject(ctx->json, "applied", applied);
	cJSON_AddNumberToObject(ctx->json, "ranges_differ", ndiff);
	rv = CMD_RETURN_NORMAL;
out:
	t.sink = NULL;
	session_free(&t);
	cJSON_Delete(root);
	return rv;
}

static enum cmd_retval cmd_session_exec(struct cmd_ctx *ctx, struct args *a)
{
	const char *what = a->pos[0], *path = a->pos[1];
	cJSON_AddStringToObject(ctx->json, "action", what);
	if (strcmp(what, "save") == 0) {
		if (!ctx->s->model)
			return cmd_fail(ctx, CLI_MSG_NO_MODEL);
		if (cli_looks_like_model(path))
			return cmd_fail(ctx,
			                "session save writes JSON, and %s looks like a model: give "
			                "a .json name",
			                path);
		return session_save(ctx, path);
	}
	if (strcmp(what, "load") == 0)
		return session_load(ctx, path);
	return cmd_fail(ctx, "session: '%s' is neither save nor load", what);
}

static const char *const session_words[] = {"save", "load", NULL};

const struct cmd_entry cmd_session_entry = {
    .name = "session",
    .alias = NULL,
    .usage = "session save|load FILE.json",
    .args = {NULL, 2, 2, ARGS_CHOICE, session_words},
    .summary = "save or load the whole session (model, settings, steps, ranges, accuracies)",
    .exec = cmd_session_exec,
    .flags = 0,
    .help = "The file is JSON (format 1, described in the README), written whole or not\n"
            "at all.  Loading checks the model file's SHA-256, replays the steps (undone\n"
            "ones too, then undoes them) with the settings and data each ran with, and\n"
            "only then replaces the current session: a corrupt, truncated or foreign\n"
            "file, a newer format or a changed model leaves the session as it was; its\n"
            "step lines may name only steps, its data lines only `data`.",
};
