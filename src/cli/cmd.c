/* cmd.c - the command registry, lookup, line splitting and the runner. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cmd.h"
#include "dfq/dfq_text.h"

const struct cmd_entry *const cmd_table[] = {
    &cmd_load_entry,       &cmd_infer_entry,    &cmd_data_entry,     &cmd_eval_entry,
    &cmd_layers_entry,     &cmd_info_entry,     &cmd_fold_entry,     &cmd_relu6_entry,
    &cmd_clip_entry,       &cmd_equalize_entry, &cmd_absorb_entry,   &cmd_quantize_entry,
    &cmd_dequantize_entry, &cmd_measure_entry,  &cmd_biascorr_entry, &cmd_error_entry,
    &cmd_hist_entry,       &cmd_plot_entry,
    &cmd_float_entry,      &cmd_bits_entry,     &cmd_sweep_entry,
    &cmd_sensitivity_entry, &cmd_compare_entry,
    &cmd_export_entry,     &cmd_export_enc_entry,
    &cmd_steps_entry,      &cmd_undo_entry,     &cmd_redo_entry,     &cmd_reset_entry,
    &cmd_save_entry,       &cmd_session_entry,  &cmd_set_entry,      &cmd_show_entry,
    &cmd_source_entry,     &cmd_echo_entry,     &cmd_help_entry,     &cmd_quit_entry,
    NULL,
};

/* --- lookup ------------------------------------------------------------- */

static bool is_prefix(const char *prefix, const char *s)
{
	return s && strncmp(prefix, s, strlen(prefix)) == 0;
}

bool cmd_is_alias(const struct cmd_entry *e, const char *word)
{
	for (const char *const *a = e->alias; a && *a; a++)
		if (strcmp(*a, word) == 0)
			return true;
	return false;
}

bool cmd_starts_with(const struct cmd_entry *e, const char *word)
{
	if (is_prefix(word, e->name))
		return true;
	for (const char *const *a = e->alias; a && *a; a++)
		if (is_prefix(word, *a))
			return true;
	return false;
}

const char *cmd_alias_list(const struct cmd_entry *e, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (const char *const *a = e->alias; a && *a && used < len; a++)
		used +=
		    (size_t)snprintf(buf + used, len - used, "%s%s", a == e->alias ? "" : ", ", *a);
	return buf;
}

/* d edits between word and cand make a likely typo: few, and not the whole
 * of either word (else "z" would suggest the alias "q"). */
static bool close_enough(const char *word, const char *cand, int d, int limit)
{
	return d < limit && d < (int)strlen(word) && d < (int)strlen(cand);
}

/* Closest name or alias to word, if close enough to be a likely typo. */
static const char *closest_name(const char *word)
{
	const char *best = NULL;
	int bestd = strlen(word) <= 3 ? 2 : 3;
	for (int i = 0; cmd_table[i]; i++) {
		const struct cmd_entry *e = cmd_table[i];
		int d = dfq_edit_distance(word, e->name);
		if (close_enough(word, e->name, d, bestd)) {
			bestd = d;
			best = e->name;
		}
		for (const char *const *a = e->alias; a && *a; a++) {
			d = dfq_edit_distance(word, *a);
			if (close_enough(word, *a, d, bestd)) {
				bestd = d;
				best = *a;
			}
		}
	}
	return best;
}

const struct cmd_entry *cmd_find(const char *word, char *why, size_t len)
{
	for (int i = 0; cmd_table[i]; i++) {
		const struct cmd_entry *e = cmd_table[i];
		if (strcmp(e->name, word) == 0 || cmd_is_alias(e, word))
			return e;
	}
	const struct cmd_entry *found = NULL;
	int nfound = 0;
	char list[256] = "";
	size_t used = 0;
	for (int i = 0; cmd_table[i]; i++) {
		const struct cmd_entry *e = cmd_table[i];
		if (!cmd_starts_with(e, word))
			continue;
		found = e;
		nfound++;
		if (used < sizeof list)
			used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
			                         nfound > 1 ? ", " : "", e->name);
	}
	if (nfound == 1)
		return found;
	if (nfound > 1) {
		snprintf(why, len, "ambiguous command: %s, could be: %s", word, list);
		return NULL;
	}
	const char *guess = closest_name(word);
	if (guess)
		snprintf(why, len, "unknown command '%s'; did you mean '%s'?", word, guess);
	else
		snprintf(why, len, "unknown command '%s'; type 'help' for a list", word);
	return NULL;
}

/* --- splitting a line into commands and words --------------------------- */

struct cmd_words {
	int argc;
	char **argv; /* owned, NULL-terminated */
};

struct cmd_list {
	int n;
	struct cmd_words *cmds; /* owned */
};

static void cmd_list_free(struct cmd_list *l)
{
	for (int i = 0; i < l->n; i++) {
		for (int j = 0; j < l->cmds[i].argc; j++)
			free(l->cmds[i].argv[j]);
		free(l->cmds[i].argv);
	}
	free(l->cmds);
	memset(l, 0, sizeof *l);
}

/* Append word to the last command (starting a new command if asked). */
static bool push_word(struct cmd_list *l, bool new_cmd, const char *word, size_t wlen)
{
	if (new_cmd || l->n == 0) {
		struct cmd_words *c = realloc(l->cmds, sizeof *c * (size_t)(l->n + 1));
		if (!c)
			return false;
		l->cmds = c;
		l->cmds[l->n].argc = 0;
		l->cmds[l->n].argv = NULL;
		l->n++;
	}
	struct cmd_words *c = &l->cmds[l->n - 1];
	char **v = realloc(c->argv, sizeof *v * (size_t)(c->argc + 2));
	if (!v)
		return false;
	c->argv = v;
	if (!(v[c->argc] = strndup(word, wlen)))
		return false;
	v[++c->argc] = NULL;
	return true;
}

/* Shell-like: 'single' quotes are literal, "double" quotes honour \" and \\,
 * a backslash outside quotes escapes the next character, ';' outside quotes
 * ends a command and '#' at the start of a word starts a comment.  Empty
 * commands are dropped. */
static bool split_line(const char *line, struct cmd_list *out, char *why, size_t len)
{
	memset(out, 0, sizeof *out);
	char *buf = malloc(strlen(line) + 1);
	if (!buf) {
		snprintf(why, len, "out of memory");
		return false;
	}
	size_t w = 0;
	bool in_word = false, new_cmd = true, ok = true;
	const char *p = line;
	for (; ok && *p; p++) {
		char c = *p;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';') {
			if (in_word) {
				ok = push_word(out, new_cmd, buf, w);
				new_cmd = false;
			}
			in_word = false;
			w = 0;
			if (c == ';')
				new_cmd = true;
			continue;
		}
		if (c == '#' && !in_word)
			break;
		in_word = true;
		if (c == '\\') {
			if (p[1])
				c = *++p;
			buf[w++] = c;
		} else if (c == '\'' || c == '"') {
			char q = c;
			for (p++; *p && *p != q; p++) {
				if (q == '"' && *p == '\\' && (p[1] == '"' || p[1] == '\\'))
					p++;
				buf[w++] = *p;
			}
			if (!*p) {
				snprintf(why, len, "unterminated %s quote",
				         q == '"' ? "double" : "single");
				free(buf);
				cmd_list_free(out);
				return false;
			}
		} else {
			buf[w++] = c;
		}
	}
	if (ok && in_word)
		ok = push_word(out, new_cmd, buf, w);
	free(buf);
	if (!ok) {
		snprintf(why, len, "out of memory");
		cmd_list_free(out);
	}
	return ok;
}

char **cmd_split_words(const char *line, int *argc, char *why, size_t len)
{
	struct cmd_list l;
	*argc = 0;
	if (!split_line(line, &l, why, len))
		return NULL;
	if (l.n != 1) {
		snprintf(why, len, "'%s' is not one command", line);
		cmd_list_free(&l);
		return NULL;
	}
	char **argv = l.cmds[0].argv;
	*argc = l.cmds[0].argc;
	free(l.cmds);
	return argv;
}

void cmd_words_free(int argc, char **argv)
{
	for (int i = 0; argv && i < argc; i++)
		free(argv[i]);
	free(argv);
}

/* --- the command as typed ------------------------------------------------ */

/* Characters a word may hold without quotes: split_line() splits or
 * unquotes at no other. */
static bool plain_char(char c)
{
	return strchr(" \t\r\n;'\"\\", c) == NULL;
}

char *cmd_join_argv(int argc, char *const *argv)
{
	/* Worst case: every character becomes '\'' (4), plus quotes and blanks. */
	size_t cap = 1;
	for (int i = 0; i < argc; i++)
		cap += 4 * strlen(argv[i]) + 3;
	char *out = malloc(cap), *p = out;
	if (!out)
		return NULL;
	for (int i = 0; i < argc; i++) {
		const char *w = argv[i];
		bool plain = *w != '\0' && *w != '#';
		for (const char *c = w; plain && *c; c++)
			plain = plain_char(*c);
		if (i)
			*p++ = ' ';
		if (plain) {
			p += sprintf(p, "%s", w);
			continue;
		}
		/* 'single quotes' are literal; a quote itself is written '\'' */
		*p++ = '\'';
		for (const char *c = w; *c; c++) {
			if (*c == '\'')
				p += sprintf(p, "'\\''");
			else
				*p++ = *c;
		}
		*p++ = '\'';
	}
	*p = '\0';
	return out;
}

/* --- running ------------------------------------------------------------ */

/* What the entry needs that the session lacks: one line, the same for every
 * command.  False after reporting. */
static bool check_needs(struct cmd_ctx *ctx)
{
	unsigned f = ctx->entry->flags;
	bool target = ctx->entry->args.kind == ARGS_TARGET;
	if ((f & CMD_NEEDS_MODEL || target) && !ctx->s->model)
		return cmd_fail(ctx, CLI_MSG_NO_MODEL), false;
	if (f & CMD_NEEDS_DATA && !ctx->s->data)
		return cmd_fail(ctx, CLI_MSG_NO_DATA), false;
	return true;
}

/* The layers the TARGET positionals name (all of the non-trailing ones;
 * "all" for CMD_TARGET_ALL entries when there are none) into ctx->sel.
 * False after reporting. */
static bool resolve_targets(struct cmd_ctx *ctx, struct args *a)
{
	const struct cmd_entry *e = ctx->entry;
	if (e->args.kind != ARGS_TARGET)
		return true;
	static char all[] = "all";
	static char *const all_targets[] = {all};
	int n = a->npos - e->args.trailing;
	char *const *specs = a->pos;
	if (n <= 0) {
		if (!(e->flags & CMD_TARGET_ALL))
			return true;
		specs = all_targets;
		n = 1;
	}
	const struct dfq_model *m = ctx->s->model;
	if (m->nlayers == 0)
		return cmd_fail(ctx, "the model has no Conv, Gemm or MatMul layers with constant "
		                     "weights"),
		       false;
	ctx->sel = calloc((size_t)m->nlayers, sizeof *ctx->sel);
	if (!ctx->sel)
		return cmd_fail(ctx, "out of memory"), false;
	struct dfq_error err;
	dfq_error_clear(&err);
	if (dfq_model_parse_targets(m, n, (const char *const *)specs, ctx->sel, &err) != DFQ_OK)
		return cmd_fail_error(ctx, &err), false;
	ctx->targets = specs;
	ctx->ntargets = n;
	for (int i = 0; i < m->nlayers; i++)
		ctx->nsel += ctx->sel[i];
	return true;
}

/* The command's exec; for a CMD_STEP entry between the step history's hooks. */
static enum cmd_retval run_exec(struct cmd_ctx *ctx, struct args *a)
{
	const struct cmd_entry *e = ctx->entry;
	if (!(e->flags & CMD_STEP))
		return e->exec(ctx, a);
	if (!session_step_begin(ctx))
		return CMD_RETURN_ERROR;
	enum cmd_retval rv = e->exec(ctx, a);
	return session_step_end(ctx, rv);
}

enum cmd_retval cmd_run_argv(struct session *s, int argc, char **argv, const char *file, int lineno)
{
	struct cmd_ctx ctx = {.s = s, .word = argv[0], .file = file, .line = lineno};
	char why[768];
	const struct cmd_entry *e = cmd_find(argv[0], why, sizeof why);
	if (!e) {
		cmd_error(&ctx, "%s", why);
		s->had_error = true;
		return CMD_RETURN_ERROR;
	}
	ctx.entry = e;
	if ((s->only == RUN_STEPS && !(e->flags & CMD_STEP)) ||
	    (s->only == RUN_DATA && e != &cmd_data_entry)) {
		cmd_error(&ctx, "'%s' is not %s, and only %s replayed here", e->name,
		          s->only == RUN_STEPS ? "a step" : "a data command",
		          s->only == RUN_STEPS ? "steps are" : "a data command is");
		s->had_error = true;
		return CMD_RETURN_ERROR;
	}
	struct args a;
	if (!args_parse(e, argc, argv, &a, why, sizeof why)) {
		cmd_error(&ctx, "%s", why);
		s->had_error = true;
		return CMD_RETURN_ERROR;
	}
	ctx.line_text = cmd_join_argv(argc, argv);
	if (s->json) {
		ctx.json = cJSON_CreateObject();
		cJSON_AddStringToObject(ctx.json, "cmd", e->name);
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	enum cmd_retval rv = CMD_RETURN_ERROR;
	if (!ctx.line_text)
		cmd_fail(&ctx, "out of memory");
	else if (check_needs(&ctx) && resolve_targets(&ctx, &a))
		rv = run_exec(&ctx, &a);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rv == CMD_RETURN_NORMAL && s->set.timing) {
		double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
		            (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6;
		cmd_print(&ctx, "(%.1f ms)", ms);
		cJSON_AddNumberToObject(ctx.json, "ms", ms);
	}
	if (rv == CMD_RETURN_ERROR) {
		/* Every failure says something, exactly once. */
		if (!ctx.reported)
			cmd_error(&ctx, "%s failed", e->name);
		s->had_error = true;
	} else {
		cmd_emit_json(&ctx);
	}
	fflush(stdout);
	cJSON_Delete(ctx.json);
	free(ctx.sel);
	free(ctx.line_text);
	args_free(&a);
	return rv;
}

enum cmd_retval cmd_run_line(struct session *s, const char *line, const char *file, int lineno,
                             bool script)
{
	struct cmd_list l;
	char why[256];
	if (!split_line(line, &l, why, sizeof why)) {
		struct cmd_ctx ctx = {.s = s, .file = file, .line = lineno};
		cmd_error(&ctx, "%s", why);
		s->had_error = true;
		return script && !s->set.errexit ? CMD_RETURN_NORMAL : CMD_RETURN_ERROR;
	}
	enum cmd_retval rv = CMD_RETURN_NORMAL;
	for (int i = 0; i < l.n; i++) {
		rv = cmd_run_argv(s, l.cmds[i].argc, l.cmds[i].argv, file, lineno);
		if (rv == CMD_RETURN_QUIT)
			break;
		/* A script's commands are units: with errexit off the next one
		 * runs, on this line or the next.  At the prompt (as in tmux) a
		 * failure drops the rest of the line. */
		if (rv == CMD_RETURN_ERROR) {
			if (!script || s->set.errexit)
				break;
			rv = CMD_RETURN_NORMAL;
		}
	}
	cmd_list_free(&l);
	return rv;
}

enum cmd_retval cmd_run_stream(struct session *s, FILE *fp, const char *name)
{
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0;
	enum cmd_retval rv = CMD_RETURN_NORMAL;
	while (rv == CMD_RETURN_NORMAL && getline(&line, &cap, fp) >= 0)
		rv = cmd_run_line(s, line, name, ++lineno, true);
	free(line);
	return rv;
}

enum cmd_retval cmd_run_string(struct session *s, const char *text)
{
	char *copy = strdup(text);
	if (!copy) {
		cli_warn("out of memory");
		s->had_error = true;
		return CMD_RETURN_ERROR;
	}
	enum cmd_retval rv = CMD_RETURN_NORMAL;
	char *save = NULL;
	for (char *l = strtok_r(copy, "\n", &save); l && rv == CMD_RETURN_NORMAL;
	     l = strtok_r(NULL, "\n", &save))
		rv = cmd_run_line(s, l, NULL, 0, true);
	free(copy);
	return rv;
}
