/* cmd-help.c - help: the command list, or one command's usage (prefix match). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"

static void add_json_entry(cJSON *arr, const struct cmd_entry *e)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", e->name);
	if (e->alias)
		cJSON_AddStringToObject(o, "alias", e->alias);
	cJSON_AddStringToObject(o, "usage", e->usage);
	cJSON_AddStringToObject(o, "summary", e->summary);
	if (!cJSON_AddItemToArray(arr, o))
		cJSON_Delete(o);
}

static void print_one(struct cmd_ctx *ctx, const struct cmd_entry *e)
{
	cmd_print(ctx, "usage: %s", e->usage);
	cmd_print(ctx, "  %s", e->summary);
	if (e->alias)
		cmd_print(ctx, "  alias: %s", e->alias);
}

static enum cmd_retval help_all(struct cmd_ctx *ctx, cJSON *arr)
{
	for (int i = 0; cmd_table[i]; i++) {
		const struct cmd_entry *e = cmd_table[i];
		char names[64];
		snprintf(names, sizeof names, "%s%s%s", e->name, e->alias ? ", " : "",
			 e->alias ? e->alias : "");
		cmd_print(ctx, "  %-13s %s", names, e->summary);
		add_json_entry(arr, e);
	}
	cmd_print(ctx, "'help COMMAND' shows its usage.  Commands may be shortened to a unique");
	cmd_print(ctx, "prefix; separate several on one line with ';'.");
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
		if (strcmp(e->name, word) == 0 || (e->alias && strcmp(e->alias, word) == 0)) {
			print_one(ctx, e);
			add_json_entry(arr, e);
			return CMD_RETURN_NORMAL;
		}
	}
	int n = 0;
	for (int i = 0; cmd_table[i]; i++) {
		const struct cmd_entry *e = cmd_table[i];
		if (strncmp(e->name, word, strlen(word)) != 0 &&
		    !(e->alias && strncmp(e->alias, word, strlen(word)) == 0))
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
	.args = {NULL, 0, 1},
	.summary = "list the commands, or show how to use one",
	.exec = cmd_help_exec,
};
