/* cmd-help.c - help: the command list, or one command's usage (prefix match). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"

static void add_json_entry(cJSON *arr, const struct cmd_entry *e)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", e->name);
	if (e->alias) {
		cJSON *al = cJSON_AddArrayToObject(o, "aliases");
		for (const char *const *a = e->alias; al && *a; a++) {
			cJSON *x = cJSON_CreateString(*a);
			if (!cJSON_AddItemToArray(al, x))
				cJSON_Delete(x);
		}
	}
	cJSON_AddStringToObject(o, "usage", e->usage);
	cJSON_AddStringToObject(o, "summary", e->summary);
	if (!cJSON_AddItemToArray(arr, o))
		cJSON_Delete(o);
}

/* "on, off" or "a whole number from 2 to 16": what a setting takes. */
static const char *setting_values(const struct setting_def *d, char *buf, size_t len)
{
	if (d->num)
		return num_range(d->num, buf, len);
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; d->choices && d->choices[i] && used < len; i++)
		used +=
		    (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", d->choices[i]);
	return buf;
}

static void print_one(struct cmd_ctx *ctx, const struct cmd_entry *e)
{
	cmd_result(ctx, "usage: %s", e->usage);
	cmd_result(ctx, "  %s", e->summary);
	if (e->alias) {
		char list[64];
		cmd_result(ctx, "  alias%s: %s", e->alias[1] ? "es" : "",
		           cmd_alias_list(e, list, sizeof list));
	}
	if (e->args.kind == ARGS_SETTING) {
		for (int i = 0; session_settings[i].name; i++) {
			char vals[160];
			cmd_result(ctx, "  %-11s %s", session_settings[i].name,
			           setting_values(&session_settings[i], vals, sizeof vals));
		}
	}
	/* Lines of more help, each printed on its own. */
	for (const char *p = e->help; p && *p;) {
		size_t n = strcspn(p, "\n");
		cmd_result(ctx, "%.*s", (int)n, p);
		p += n + (p[n] == '\n');
	}
}

/* "name, alias, ..." as help lists it (into buf); its length. */
static int help_names(const struct cmd_entry *e, char *buf, size_t len)
{
	char list[64];
	return snprintf(buf, len, "%s%s%s", e->name, e->alias ? ", " : "",
	                cmd_alias_list(e, list, sizeof list));
}

static enum cmd_retval help_all(struct cmd_ctx *ctx, cJSON *arr)
{
	/* the summaries line up after the longest names */
	int w = 0;
	char names[80];
	for (int i = 0; cmd_table[i]; i++) {
		int n = help_names(cmd_table[i], names, sizeof names);
		w = n > w ? n : w;
	}
	for (int i = 0; cmd_table[i]; i++) {
		const struct cmd_entry *e = cmd_table[i];
		help_names(e, names, sizeof names);
		cmd_result(ctx, "  %-*s %s", w, names, e->summary);
		add_json_entry(arr, e);
	}
	cmd_result(ctx, "'help COMMAND' shows its usage.  Commands may be shortened to a unique");
	cmd_result(ctx, "prefix; separate several on one line with ';'.");
	return CMD_RETURN_NORMAL;
}

/* Like sqlite3's .help: an exact name or alias shows that command; otherwise
 * every command starting with the word is shown. */
static enum cmd_retval cmd_help_exec(struct cmd_ctx *ctx, struct args *a)
{
	cJSON *arr = cJSON_AddArrayToObject(ctx->json, "commands");
	if (a->npos == 0)
		return help_all(ctx, arr);
	const char *word = a->pos[0];
	for (int i = 0; cmd_table[i]; i++) {
		const struct cmd_entry *e = cmd_table[i];
		if (strcmp(e->name, word) == 0 || cmd_is_alias(e, word)) {
			print_one(ctx, e);
			add_json_entry(arr, e);
			return CMD_RETURN_NORMAL;
		}
	}
	int n = 0;
	for (int i = 0; cmd_table[i]; i++) {
		const struct cmd_entry *e = cmd_table[i];
		if (!cmd_starts_with(e, word))
			continue;
		print_one(ctx, e);
		add_json_entry(arr, e);
		n++;
	}
	if (n == 0)
		return cmd_fail(ctx, "no command matches '%s'; type 'help' for a list", word);
	return CMD_RETURN_NORMAL;
}

const struct cmd_entry cmd_help_entry = {
    .name = "help",
    .alias = NULL,
    .usage = "help [COMMAND]",
    .args = {NULL, 0, 1, ARGS_COMMAND, NULL},
    .summary = "list the commands, or show how to use one",
    .exec = cmd_help_exec,
};
