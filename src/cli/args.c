/* args.c - central argument checking against each command's template, and
 * the one number parser of the CLI. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

/* --- numbers ------------------------------------------------------------ */

/* A whole word that is a whole number ("12", "-3"; not "1.5", "1e3", " 2"). */
static bool whole_word(const char *s, double *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || s[0] == ' ' || s[0] == '\t')
		return false;
	*out = (double)v;
	return true;
}

/* A whole word that is a finite real number. */
static bool real_word(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || s[0] == ' ' || s[0] == '\t' || !isfinite(v))
		return false;
	*out = v;
	return true;
}

bool num_parse(const char *text, const struct num_spec *spec, double *out)
{
	double v;
	if (!text || !(spec->whole ? whole_word(text, &v) : real_word(text, &v)))
		return false;
	bool ok;
	if (spec->only) {
		ok = false;
		for (const int *o = spec->only; *o >= 0; o++)
			ok = ok || v == (double)*o;
	} else {
		ok = (spec->above_lo ? v > spec->lo : v >= spec->lo) && v <= spec->hi;
		ok = ok || (spec->zero && v == 0);
	}
	if (ok)
		*out = v;
	return ok;
}

const char *num_range(const struct num_spec *spec, char *buf, size_t len)
{
	const char *what = spec->whole ? "a whole number" : "a number";
	char zero[64] = "";
	if (spec->zero)
		snprintf(zero, sizeof zero, " (or 0: %s)", spec->zero);
	if (spec->only) {
		/* "0 (float), 8, 16 or 32" */
		size_t used = 0;
		buf[0] = '\0';
		for (const int *o = spec->only; *o >= 0 && used < len; o++) {
			const char *sep = o == spec->only ? "" : o[1] < 0 ? " or " : ", ";
			used += (size_t)snprintf(buf + used, len - used, "%s%d", sep, *o);
			if (*o == 0 && spec->zero && used < len)
				used +=
				    (size_t)snprintf(buf + used, len - used, " (%s)", spec->zero);
		}
		return buf;
	}
	bool has_lo = isfinite(spec->lo), has_hi = isfinite(spec->hi);
	if (has_lo && has_hi && !spec->above_lo)
		snprintf(buf, len, "%s from %g to %g%s", what, spec->lo, spec->hi, zero);
	else if (has_lo && has_hi)
		snprintf(buf, len, "%s above %g and at most %g%s", what, spec->lo, spec->hi, zero);
	else if (has_lo && spec->above_lo)
		snprintf(buf, len, "%s above %g%s", what, spec->lo, zero);
	else if (has_lo)
		snprintf(buf, len, "%s of %g or more%s", what, spec->lo, zero);
	else if (has_hi)
		snprintf(buf, len, "%s of %g or less%s", what, spec->hi, zero);
	else
		snprintf(buf, len, "%s", what);
	return buf;
}

void num_why(const char *name, const char *text, const struct num_spec *spec, char *why, size_t len)
{
	char range[128];
	snprintf(why, len, "%s must be %s, not '%s'", name, num_range(spec, range, sizeof range),
	         text ? text : "");
}

bool cmd_num(struct cmd_ctx *ctx, const char *name, const char *text, const struct num_spec *spec,
             double *out)
{
	if (num_parse(text, spec, out))
		return true;
	char why[256];
	num_why(name, text, spec, why, sizeof why);
	cmd_error(ctx, "%s", why);
	return false;
}

/* --- argument templates -------------------------------------------------- */

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
	double num;
	if (f->num && !num_parse(value, f->num, &num)) {
		char flag[64];
		snprintf(flag, sizeof flag, "--%s", f->name);
		num_why(flag, value, f->num, why, len);
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

double args_num(const struct args *a, const char *flag, double def)
{
	const char *v = args_get(a, flag);
	double x;
	/* args_parse checked it; a flag without a num_spec reads as a real. */
	if (!v || !real_word(v, &x))
		return def;
	return x;
}
