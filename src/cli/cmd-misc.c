/* cmd-misc.c - quit, set, show, source and echo. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"

static enum cmd_retval cmd_quit_exec(struct cmd_ctx *ctx, struct args *a)
{
	return CMD_RETURN_QUIT;
}

/* "q" as in gdb and sqlite3: an exact alias beats the prefix of quantize. */
static const char *const quit_aliases[] = {"exit", "q", NULL};

const struct cmd_entry cmd_quit_entry = {
    .name = "quit",
    .alias = quit_aliases,
    .usage = "quit",
    .args = {NULL, 0, 0},
    .summary = "leave dfq (Ctrl-D works too)",
    .exec = cmd_quit_exec,
};

/* A setting's value as JSON: bool, number or string by its type. */
static void add_setting_json(const struct session *s, cJSON *obj, const char *key, int i)
{
	char buf[32];
	switch (session_settings[i].type) {
	case SETTING_BOOL:
		cJSON_AddBoolToObject(obj, key, session_setting_int(s, i));
		break;
	case SETTING_INT:
	case SETTING_FLOAT:
		cJSON_AddNumberToObject(obj, key, session_setting_num(s, i));
		break;
	case SETTING_CHOICE:
		cJSON_AddStringToObject(obj, key, session_setting_str(s, i, buf, sizeof buf));
		break;
	}
}

static enum cmd_retval cmd_set_exec(struct cmd_ctx *ctx, struct args *a)
{
	char why[256];
	if (!session_setting_set(ctx->s, a->pos[0], a->pos[1], why, sizeof why))
		return cmd_fail(ctx, "%s", why);
	cJSON_AddStringToObject(ctx->json, "key", a->pos[0]);
	for (int i = 0; session_settings[i].name; i++)
		if (strcmp(session_settings[i].name, a->pos[0]) == 0)
			add_setting_json(ctx->s, ctx->json, "value", i);
	return CMD_RETURN_NORMAL;
}

const struct cmd_entry cmd_set_entry = {
    .name = "set",
    .alias = NULL,
    .usage = "set KEY VALUE",
    .args = {NULL, 2, 2, ARGS_SETTING, NULL},
    .summary = "change a setting (see 'show settings')",
    .exec = cmd_set_exec,
    .help = "  errexit applies to scripts (-x FILE, -c 'CMDS', source FILE, piped input),\n"
            "  where every command is a unit: with errexit on (the default) a failing\n"
            "  command stops the script (exit status 1, FILE:LINE: message); with errexit\n"
            "  off the next command runs, after ';' on the same line or on the next line.\n"
            "  At the prompt a failing command drops the rest of its line.",
};

static enum cmd_retval show_settings(struct cmd_ctx *ctx)
{
	cJSON *obj = cJSON_AddObjectToObject(ctx->json, "settings");
	for (int i = 0; session_settings[i].name; i++) {
		const struct setting_def *d = &session_settings[i];
		char buf[32];
		cmd_result(ctx, "%-11s %-7s  %s", d->name,
		           session_setting_str(ctx->s, i, buf, sizeof buf), d->help);
		add_setting_json(ctx->s, obj, d->name, i);
	}
	return CMD_RETURN_NORMAL;
}

static enum cmd_retval cmd_show_exec(struct cmd_ctx *ctx, struct args *a)
{
	const char *what = a->pos[0];
	if (strlen(what) > 0 && strncmp(what, "settings", strlen(what)) == 0)
		return show_settings(ctx);
	return cmd_fail(ctx, "show: unknown item '%s' (try: show settings)", what);
}

static const char *const show_words[] = {"settings", NULL};

const struct cmd_entry cmd_show_entry = {
    .name = "show",
    .alias = NULL,
    .usage = "show settings",
    .args = {NULL, 1, 1, ARGS_CHOICE, show_words},
    .summary = "show the current settings",
    .exec = cmd_show_exec,
};

/* Errors inside the file are reported there, with its name and line; this
 * command only fails (silently) when the file stopped early. */
static enum cmd_retval cmd_source_exec(struct cmd_ctx *ctx, struct args *a)
{
	const char *path = a->pos[0];
	if (ctx->s->depth >= SESSION_MAX_DEPTH)
		return cmd_fail(ctx, "source: %s: files nested more than %d deep", path,
		                SESSION_MAX_DEPTH);
	FILE *f = fopen(path, "r");
	if (!f)
		return cmd_fail(ctx, "cannot open %s: %s", path, strerror(errno));
	ctx->s->depth++;
	enum cmd_retval rv = cmd_run_stream(ctx->s, f, path);
	ctx->s->depth--;
	fclose(f);
	if (rv == CMD_RETURN_ERROR)
		ctx->reported = true;
	cJSON_AddStringToObject(ctx->json, "path", path);
	return rv;
}

const struct cmd_entry cmd_source_entry = {
    .name = "source",
    .alias = NULL,
    .usage = "source FILE",
    .args = {NULL, 1, 1},
    .summary = "run the commands in FILE",
    .exec = cmd_source_exec,
};

/* Text for people reading a script's output, and labels for programs
 * reading its --json (e.g. scripts/ablation marks each pipeline with one). */
static enum cmd_retval cmd_echo_exec(struct cmd_ctx *ctx, struct args *a)
{
	char line[1024];
	size_t used = 0;
	line[0] = '\0';
	for (int i = 0; i < a->npos && used < sizeof line; i++)
		used += (size_t)snprintf(line + used, sizeof line - used, "%s%s", i ? " " : "",
		                         a->pos[i]);
	if (used >= sizeof line)
		return cmd_fail(ctx, "echo: text longer than %zu characters", sizeof line - 1);
	cmd_result(ctx, "%s", line);
	cJSON_AddStringToObject(ctx->json, "text", line);
	return CMD_RETURN_NORMAL;
}

const struct cmd_entry cmd_echo_entry = {
    .name = "echo",
    .alias = NULL,
    .usage = "echo TEXT...",
    .args = {NULL, 0, -1},
    .summary = "print TEXT (in --json: {\"cmd\":\"echo\",\"text\":...}), e.g. to label results",
    .exec = cmd_echo_exec,
};
