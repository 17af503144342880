/* args.c - central argument checking against each command's template. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

void args_free(struct args *a)
{
	for (int i = 0; i < a->npos; i++)
		free(a->pos[i]);
	free(a->pos);
	for (int i = 0; i < a->nflags; i++)
		free(a->flags[i].value);
	free(a->flags);
	memset(a, 0, sizeof *a);
}

static const struct args_flag *find_flag(const struct args_spec *spec, const char *name, size_t len)
{
	if (!spec->flags)
		return NULL;
	for (const struct args_flag *f = spec->flags; f->name; f++)
		if (strlen(f->name) == len && strncmp(f->name, name, len) == 0)
			return f;
	return NULL;
}

/* Copy s, or fail the parse on allocation failure. */
static char *dup_or_why(const char *s, char *why, size_t len)
{
	char *c = strdup(s);
	if (!c)
		snprintf(why, len, "out of memory");
	return c;
}

/* Parse one "--name[=value]" at argv[*i]; may consume argv[*i + 1]. */
static bool parse_flag(const struct cmd_entry *e, int argc, char **argv, int *i, struct args *out,
                       char *why, size_t len)
{
	const char *word = argv[*i] + 2;
	const char *eq = strchr(word, '=');
	size_t nlen = eq ? (size_t)(eq - word) : strlen(word);
	const struct args_flag *f = find_flag(&e->args, word, nlen);
	if (!f) {
		snprintf(why, len, "unknown flag '--%.*s'; usage: %s", (int)nlen, word, e->usage);
		return false;
	}
	const char *value = NULL;
	if (f->takes_value) {
		if (eq) {
			value = eq + 1;
		} else if (*i + 1 < argc) {
			value = argv[++*i];
		} else {
			snprintf(why, len, "--%s needs a value; usage: %s", f->name, e->usage);
			return false;
		}
	} else if (eq) {
		snprintf(why, len, "--%s takes no value; usage: %s", f->name, e->usage);
		return false;
	}
	out->flags[out->nflags].name = f->name;
	out->flags[out->nflags].value = NULL;
	if (value && !(out->flags[out->nflags].value = dup_or_why(value, why, len)))
		return false;
	out->nflags++;
	return true;
}

bool args_parse(const struct cmd_entry *e, int argc, char **argv, struct args *out, char *why,
                size_t len)
{
	memset(out, 0, sizeof *out);
	/* argc bounds both arrays, so no reallocation is needed. */
	out->pos = calloc((size_t)argc + 1, sizeof *out->pos);
	out->flags = calloc((size_t)argc + 1, sizeof *out->flags);
	if (!out->pos || !out->flags) {
		snprintf(why, len, "out of memory");
		args_free(out);
		return false;
	}
	bool flags_done = false;
	for (int i = 1; i < argc; i++) {
		const char *w = argv[i];
		if (!flags_done && strcmp(w, "--") == 0) {
			flags_done = true;
			continue;
		}
		/* Only "--x" is a flag: "-1" and "-" stay positionals (numbers, stdin). */
		if (!flags_done && w[0] == '-' && w[1] == '-') {
			if (!parse_flag(e, argc, argv, &i, out, why, len)) {
				args_free(out);
				return false;
			}
			continue;
		}
		if (!(out->pos[out->npos] = dup_or_why(w, why, len))) {
			args_free(out);
			return false;
		}
		out->npos++;
	}
	if (out->npos < e->args.min_pos || (e->args.max_pos >= 0 && out->npos > e->args.max_pos)) {
		snprintf(why, len, "usage: %s", e->usage);
		args_free(out);
		return false;
	}
	return true;
}

bool args_has(const struct args *a, const char *flag)
{
	for (int i = 0; i < a->nflags; i++)
		if (strcmp(a->flags[i].name, flag) == 0)
			return true;
	return false;
}

const char *args_get(const struct args *a, const char *flag)
{
	const char *v = NULL;
	for (int i = 0; i < a->nflags; i++)
		if (strcmp(a->flags[i].name, flag) == 0)
			v = a->flags[i].value;
	return v;
}
