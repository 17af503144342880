/* sweep.c - accuracy against one setting: for each value, the model is loaded again on a scratch
 * session, the session's applied steps are replayed as recorded (with the settings and data each
 * ran with, as `save` writes them) but with the value in place of what it sets, and the result is
 * evaluated.  The session's own model, history and settings are never touched.
 *
 * Where the value goes:
 *   wbits/abits  `set wbits|abits` for every step, and --wbits|--abits on every quantize step
 *                (replacing a recorded explicit one: the sweep is about that setting); layers
 *                pinned with `bits` keep their bits (a pin is the user's exception to it).  No
 *                quantize step: the pipeline ends with `quantize all`.
 *   clip         the LO HI of every clip step become -X X; no clip step: `clip all -X X` is
 *                inserted before the first quantize step (at the end when none quantizes). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dfq/dfq_eval.h"
#include "dfq/dfq_sha256.h"
#include "model-cmd.h"
#include "replay.h"
#include "sweep.h"

const char *sweep_kind_name(enum sweep_kind k)
{
	return k == SWEEP_WBITS ? "wbits" : k == SWEEP_ABITS ? "abits" : "clip";
}

void sweep_free(struct sweep_result *r)
{
	if (!r)
		return;
	free(r->model);
	free(r->how);
	for (int i = 0; r->steps && i < r->nsteps; i++)
		free(r->steps[i]);
	free(r->steps);
	free(r->pts);
	free(r);
}

/* --- the range -------------------------------------------------------------------------- */

static const struct num_spec bits_num = {.whole = true, .lo = DFQ_QBITS_MIN, .hi = DFQ_QBITS_MAX};
static const struct num_spec clip_num = {.lo = 0, .hi = INFINITY, .above_lo = true};

int sweep_count(const struct sweep_req *r)
{
	return (int)floor((r->hi - r->lo) / r->step + 1e-9) + 1;
}

bool sweep_parse_range(enum sweep_kind kind, const char *text, struct sweep_req *r, char *why,
                       size_t len)
{
	const struct num_spec *spec = kind == SWEEP_CLIP ? &clip_num : &bits_num;
	const char *dots = strstr(text, "..");
	const char *colon = dots ? strchr(dots + 2, ':') : NULL;
	if (!dots || dots == text || dots[2] == '\0' || dots[2] == ':' ||
	    (colon && colon[1] == '\0')) {
		snprintf(why, len, "sweep: the range must be A..B or A..B:STEP (e.g. %s), not '%s'",
		         kind == SWEEP_CLIP ? "0.5..3:0.5" : "2..8", text);
		return false;
	}
	char a[64], b[64], st[64];
	snprintf(a, sizeof a, "%.*s", (int)(dots - text), text);
	snprintf(b, sizeof b, "%.*s", (int)(colon ? colon - dots - 2 : (long)strlen(dots + 2)),
	         dots + 2);
	snprintf(st, sizeof st, "%s", colon ? colon + 1 : "");
	const char *what = kind == SWEEP_CLIP ? "the clip value" : "the bits";
	char name[32];
	snprintf(name, sizeof name, "%s", what);
	if (!num_parse(a, spec, &r->lo)) {
		num_why(name, a, spec, why, len);
		return false;
	}
	if (!num_parse(b, spec, &r->hi)) {
		num_why(name, b, spec, why, len);
		return false;
	}
	if (r->lo > r->hi) {
		snprintf(why, len, "sweep: the range %s goes down; give it low to high (%s..%s)",
		         text, b, a);
		return false;
	}
	if (*st) {
		static const struct num_spec whole_step = {.whole = true, .lo = 1, .hi = INFINITY};
		static const struct num_spec real_step = {
		    .lo = 0, .hi = INFINITY, .above_lo = true};
		const struct num_spec *ss = kind == SWEEP_CLIP ? &real_step : &whole_step;
		if (!num_parse(st, ss, &r->step)) {
			num_why("STEP", st, ss, why, len);
			return false;
		}
	} else {
		r->step = kind == SWEEP_CLIP ? (r->hi > r->lo ? (r->hi - r->lo) / 5 : 1) : 1;
	}
	r->kind = kind;
	int n = sweep_count(r);
	if (n > SWEEP_MAX_POINTS) {
		snprintf(why, len, "sweep: %s makes %d points; at most %d (a larger STEP)", text, n,
		         SWEEP_MAX_POINTS);
		return false;
	}
	return true;
}

/* --- the pipeline for one value ------------------------------------------------------------ */

/* The session's applied steps as recorded: label and tag (tag may be NULL). */
struct step_src {
	const char *line;
	const struct step_tag *tag;
	bool quantize, clip; /* what the command is */
};

static const struct cmd_entry *line_entry(const char *line)
{
	int argc;
	char why[256];
	char **argv = cmd_split_words(line, &argc, why, sizeof why);
	if (!argv)
		return NULL;
	const struct cmd_entry *e = argc > 0 ? cmd_find(argv[0], why, sizeof why) : NULL;
	cmd_words_free(argc, argv);
	return e;
}

/* "%g" of v (a value of the sweep as a command word). */
static const char *num_word(double v, char *buf, size_t len)
{
	snprintf(buf, len, "%.6g", v);
	return buf;
}

/* line with the value v in place of what the sweep sets (a copy of line when
 * it sets nothing of it); NULL with why. */
static char *rewrite(const struct step_src *st, const struct sweep_req *r, double v, char *why,
                     size_t len)
{
	bool bits = r->kind != SWEEP_CLIP;
	if (!(bits && st->quantize) && !(!bits && st->clip)) {
		char *c = strdup(st->line);
		if (!c)
			snprintf(why, len, "out of memory");
		return c;
	}
	int argc;
	char **argv = cmd_split_words(st->line, &argc, why, len);
	if (!argv)
		return NULL;
	const struct cmd_entry *e = bits ? &cmd_quantize_entry : &cmd_clip_entry;
	struct args a;
	if (!args_parse(e, argc, argv, &a, why, len)) {
		cmd_words_free(argc, argv);
		return NULL;
	}
	/* word, positionals, flags as --name value: at most 1 + npos + 2 nflags + 2 */
	int cap = 3 + a.npos + 2 * a.nflags + 2;
	char **nv = calloc((size_t)cap, sizeof *nv);
	char(*flagw)[48] = calloc((size_t)a.nflags + 2, sizeof *flagw);
	char *out = NULL;
	if (nv && flagw) {
		int k = 0;
		char vs[32], ns[32];
		nv[k++] = argv[0];
		int keep = bits ? a.npos : a.npos - 2;
		for (int i = 0; i < keep; i++)
			nv[k++] = a.pos[i];
		if (!bits) {
			nv[k++] = (char *)num_word(-v, ns, sizeof ns);
			nv[k++] = (char *)num_word(v, vs, sizeof vs);
		}
		const char *swept = r->kind == SWEEP_WBITS ? "wbits" : "abits";
		int nf = 0;
		for (int i = 0; i < a.nflags; i++) {
			if (bits && strcmp(a.flags[i].name, swept) == 0)
				continue;
			snprintf(flagw[nf], sizeof flagw[nf], "--%s", a.flags[i].name);
			nv[k++] = flagw[nf++];
			if (a.flags[i].value)
				nv[k++] = a.flags[i].value;
		}
		if (bits) {
			snprintf(flagw[nf], sizeof flagw[nf], "--%s", swept);
			nv[k++] = flagw[nf++];
			nv[k++] = (char *)num_word(v, vs, sizeof vs);
		}
		out = cmd_join_argv(k, nv);
	}
	if (!out)
		snprintf(why, len, "out of memory");
	free(nv);
	free(flagw);
	args_free(&a);
	cmd_words_free(argc, argv);
	return out;
}

/* The settings a step ran with, with the swept one set to v. */
static void swept_settings(struct settings *set, const struct sweep_req *r, double v)
{
	if (r->kind == SWEEP_WBITS)
		set->wbits = (int)v;
	else if (r->kind == SWEEP_ABITS)
		set->abits = (int)v;
}

/* What a point runs after loading the model: the steps with v, as lines. */
static bool point_script(const struct session *s, const struct step_src *src, int nsrc,
                         const struct sweep_req *r, double v, bool borrow, struct script *sc,
                         char *why, size_t len)
{
	struct replay_state st;
	replay_state_init(&st);
	if (borrow)
		st.data = s->data_line; /* open already: the session's, lent */
	bool has_clip = false, has_quant = false, inserted = false;
	for (int i = 0; i < nsrc; i++) {
		has_clip |= src[i].clip;
		has_quant |= src[i].quantize;
	}
	char vs[32], ns[32];
	num_word(v, vs, sizeof vs);
	num_word(-v, ns, sizeof ns);
	for (int i = 0; i < nsrc; i++) {
		struct settings set = src[i].tag ? src[i].tag->set : st.set;
		swept_settings(&set, r, v);
		script_state(sc, &st, &set, src[i].tag ? src[i].tag->data : NULL);
		if (r->kind == SWEEP_CLIP && !has_clip && !inserted && src[i].quantize) {
			script_add(sc, "clip all %s %s", ns, vs);
			inserted = true;
		}
		char *line = rewrite(&src[i], r, v, why, len);
		if (!line)
			return false;
		script_add(sc, "%s", line);
		free(line);
	}
	struct settings set = s->set;
	swept_settings(&set, r, v);
	script_state(sc, &st, &set, s->data_line);
	if (r->kind == SWEEP_CLIP && !has_clip && !inserted)
		script_add(sc, "clip all %s %s", ns, vs);
	if (r->kind != SWEEP_CLIP && !has_quant)
		script_add(sc, "quantize all --%s %s", sweep_kind_name(r->kind), vs);
	if (sc->oom)
		snprintf(why, len, "out of memory");
	return !sc->oom;
}

/* One line for the user: where the value goes. */
static char *how_text(const struct step_src *src, int nsrc, const struct sweep_req *r)
{
	int nclip = 0, nquant = 0;
	for (int i = 0; i < nsrc; i++) {
		nclip += src[i].clip;
		nquant += src[i].quantize;
	}
	char buf[512];
	const char *k = sweep_kind_name(r->kind);
	if (r->kind != SWEEP_CLIP && nquant > 0)
		snprintf(
		    buf, sizeof buf,
		    "each point sets '%s' and the --%s of the %d quantize step%s (layers pinned "
		    "with 'bits' keep theirs)",
		    k, k, nquant, nquant == 1 ? "" : "s");
	else if (r->kind != SWEEP_CLIP)
		snprintf(buf, sizeof buf,
		         "no step quantizes, so each point ends with 'quantize all --%s V'", k);
	else if (nclip > 0)
		snprintf(buf, sizeof buf, "each point's %d clip step%s clip to [-V, V]", nclip,
		         nclip == 1 ? "" : "s");
	else if (nquant > 0)
		snprintf(buf, sizeof buf,
		         "no step clips, so each point runs 'clip all -V V' before the first "
		         "quantize step");
	else
		snprintf(
		    buf, sizeof buf,
		    "no step clips or quantizes, so each point ends with 'clip all -V V' (FP32)");
	return strdup(buf);
}

/* --- running the points ------------------------------------------------------------------ */

/* Progress over every image of the run. */
struct progress {
	struct session *s;
	int64_t base, total;
	struct timespec t0;
};

static double since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static bool on_progress(void *user, int64_t done, int64_t total, double secs)
{
	struct progress *p = user;
	(void)total;
	(void)secs;
	cli_progress(p->s, "sweep", p->base + done, p->total, since(&p->t0));
	return !cli_interrupted();
}

/* Evaluate t's model as it stands (as eval does) on n images. */
static bool eval_scratch(struct session *t, struct replay_capture *cap, int64_t n, struct progress *pg,
                         struct dfq_eval_result *r, char *why, size_t len)
{
	struct dfq_error err;
	dfq_error_clear(&err);
	struct dfq_exec *ex = session_exec(t, &err);
	if (!ex) {
		snprintf(why, len, "%s", err.msg);
		return false;
	}
	struct cmd_ctx tctx = {.s = t};
	int mode = mc_eval_prepare(&tctx, ex);
	if (mode < 0) {
		snprintf(why, len, "%s", cap->first);
		return false;
	}
	struct dfq_eval_opts o;
	dfq_eval_opts_default(&o);
	o.n = n;
	o.batch = t->set.batch;
	o.progress = on_progress;
	o.user = pg;
	struct mc_model_run mr = {t->model, (dfq_run_mode)mode};
	o.run = mc_model_run_batch;
	o.run_user = &mr;
	if (dfq_eval_run(ex, t->graph, t->data, &o, r, &err) != DFQ_OK) {
		snprintf(why, len, "%s", err.msg);
		return false;
	}
	pg->base += r->n;
	return true;
}

/* Run the lines of text on t one by one; false with why (or stopped). */
static bool run_script(struct session *t, struct replay_capture *cap, const char *text, bool *stopped,
                       char *why, size_t len)
{
	const char *p = text;
	while (p && *p) {
		const char *eol = strchr(p, '\n');
		size_t n = eol ? (size_t)(eol - p) : strlen(p);
		char *line = strndup(p, n);
		if (!line) {
			snprintf(why, len, "out of memory");
			return false;
		}
		t->had_error = false;
		cap->first[0] = '\0';
		cmd_run_line(t, line, NULL, 0, true);
		if (cli_interrupted()) {
			*stopped = true;
			free(line);
			return false;
		}
		if (t->had_error) {
			snprintf(why, len, "'%s' failed: %s", line, cap->first);
			free(line);
			return false;
		}
		free(line);
		p = eol ? eol + 1 : NULL;
	}
	return true;
}

struct run {
	struct cmd_ctx *ctx;
	const struct sweep_req *r;
	struct step_src *src;
	int nsrc;
	bool borrow; /* the session's data is lent to the scratch sessions */
	int64_t n;
	struct progress pg;
	struct sweep_result *res;
};

/* Point k (k < 0: the FP32 model as loaded).  False with why, or *stopped. */
static bool run_point(struct run *R, int k, bool *stopped, char *why, size_t len)
{
	struct session *s = R->ctx->s;
	struct session t;
	session_init(&t);
	struct replay_capture cap = {""};
	t.sink = replay_capture_sink;
	t.sink_user = &cap;
	t.quiet = true; /* no progress bars of the steps it replays */
	t.set.threads = s->set.threads;
	if (R->borrow) {
		t.data = s->data;
		t.data_line = s->data_line;
	}
	bool ok = false;
	struct script sc = {0};
	char *av[] = {"load", s->model_path};
	if (cmd_run_argv(&t, 2, av, NULL, 0) != CMD_RETURN_NORMAL) {
		snprintf(why, len, "loading %s failed: %s", s->model_path, cap.first);
		goto out;
	}
	double v = k < 0 ? 0 : R->r->lo + k * R->r->step;
	if (k >= 0) {
		if (!point_script(s, R->src, R->nsrc, R->r, v, R->borrow, &sc, why, len))
			goto out;
		if (!run_script(&t, &cap, sc.text ? sc.text : "", stopped, why, len))
			goto out;
	} else {
		/* FP32: the model as loaded, under the session's settings */
		struct replay_state st;
		replay_state_init(&st);
		if (R->borrow)
			st.data = s->data_line;
		script_state(&sc, &st, &s->set, s->data_line);
		if (sc.oom || !run_script(&t, &cap, sc.text ? sc.text : "", stopped, why, len)) {
			if (sc.oom)
				snprintf(why, len, "out of memory");
			goto out;
		}
	}
	struct dfq_eval_result er;
	if (!eval_scratch(&t, &cap, R->n, &R->pg, &er, why, len))
		goto out;
	if (er.cancelled || cli_interrupted()) {
		*stopped = true;
		goto out;
	}
	if (k < 0) {
		double nn = er.n ? (double)er.n : 1;
		R->res->fp32 =
		    (struct eval_mark){true, er.n, (double)er.top1 / nn, (double)er.top5 / nn};
	} else {
		R->res->pts[k] = (struct sweep_point){v, er.n, er.top1, er.top5};
		R->res->ndone = k + 1;
	}
	ok = true;
out:
	script_free(&sc);
	if (R->borrow) {
		/* lent: the scratch session must not free them (a data command in the
		 * replay would have replaced them, but borrow means there is none) */
		if (t.data == s->data)
			t.data = NULL;
		if (t.data_line == s->data_line)
			t.data_line = NULL;
	}
	t.sink = NULL;
	session_free(&t);
	return ok;
}

/* The applied steps of the session's model, read once. */
static bool collect_steps(struct run *R, char *why, size_t len)
{
	const struct session *s = R->ctx->s;
	int applied = dfq_model_history_applied(s->model);
	R->src = calloc((size_t)(applied ? applied : 1), sizeof *R->src);
	R->res->steps = calloc((size_t)(applied ? applied : 1), sizeof *R->res->steps);
	if (!R->src || !R->res->steps) {
		snprintf(why, len, "out of memory");
		return false;
	}
	R->borrow = true;
	for (int i = 0; i < applied; i++) {
		struct dfq_history_entry e;
		if (dfq_model_history_entry(s->model, i, &e, NULL) != DFQ_OK)
			return snprintf(why, len, "the step history changed"), false;
		struct step_src *st = &R->src[i];
		st->line = e.label;
		st->tag = e.tag;
		const struct cmd_entry *ce = line_entry(e.label);
		st->quantize = ce == &cmd_quantize_entry;
		st->clip = ce == &cmd_clip_entry;
		if (st->tag && st->tag->data && !replay_same_data(st->tag->data, s->data_line))
			R->borrow = false; /* a step ran on other data: open it as it did */
		if (!(R->res->steps[i] = strdup(e.label)))
			return snprintf(why, len, "out of memory"), false;
		R->res->nsteps = i + 1;
		R->nsrc = i + 1;
	}
	return true;
}

bool sweep_run(struct cmd_ctx *ctx, const struct sweep_req *r, struct sweep_result **out)
{
	struct session *s = ctx->s;
	*out = NULL;
	char why[1024] = "";
	/* the points load the model from its file again: it must be the same */
	if (s->model_sha256[0]) {
		char have[65];
		struct dfq_error err;
		if (dfq_sha256_file(s->model_path, have, &err) != DFQ_OK)
			return cmd_fail(ctx, "sweep reloads the model for each point: %s", err.msg),
			       false;
		if (strcmp(have, s->model_sha256) != 0)
			return cmd_fail(
			           ctx,
			           "sweep reloads the model for each point, and %s has changed "
			           "since it was loaded ('load' it again)",
			           s->model_path),
			       false;
	}
	int64_t avail = dfq_data_count(s->data, DFQ_SPLIT_EVAL);
	if (avail <= 0)
		return cmd_fail(ctx, "the data set has no evaluation samples"), false;
	if (r->n > avail)
		return cmd_fail(ctx, "--n %lld: the data has %lld evaluation samples",
		                (long long)r->n, (long long)avail),
		       false;
	int npts = sweep_count(r);
	struct run R = {.ctx = ctx, .r = r, .n = r->n > 0 ? r->n : avail};
	R.res = calloc(1, sizeof *R.res);
	bool ok = R.res != NULL;
	if (ok) {
		R.res->kind = r->kind;
		R.res->n = R.n;
		R.res->nplanned = npts;
		R.res->model = strdup(s->model_path);
		R.res->pts = calloc((size_t)npts, sizeof *R.res->pts);
		ok = R.res->model && R.res->pts;
		if (!ok)
			snprintf(why, sizeof why, "out of memory");
	} else {
		snprintf(why, sizeof why, "out of memory");
	}
	if (ok)
		ok = collect_steps(&R, why, sizeof why);
	if (ok && !(R.res->how = how_text(R.src, R.nsrc, r))) {
		snprintf(why, sizeof why, "out of memory");
		ok = false;
	}
	bool stopped = false;
	if (ok) {
		R.pg.s = s;
		R.pg.total = (int64_t)(npts + 1) * R.n;
		clock_gettime(CLOCK_MONOTONIC, &R.pg.t0);
		cli_interrupt_catch(true);
		ok = run_point(&R, -1, &stopped, why, sizeof why);
		for (int k = 0; ok && k < npts; k++) {
			char w2[900] = "";
			ok = run_point(&R, k, &stopped, w2, sizeof w2);
			if (!ok && !stopped)
				snprintf(why, sizeof why, "sweep %s %.6g: %s",
				         sweep_kind_name(r->kind), r->lo + k * r->step, w2);
		}
		cli_interrupt_catch(false);
		cli_progress_end(s);
	}
	free(R.src);
	if (ok) {
		*out = R.res;
		return true;
	}
	if (stopped && R.res && R.res->ndone > 0) {
		R.res->interrupted = true;
		*out = R.res;
		return true;
	}
	sweep_free(R.res);
	if (stopped)
		return cmd_fail(ctx, "sweep interrupted before its first point; nothing kept"),
		       false;
	return cmd_fail(ctx, "%s", why), false;
}
