/* model_targets.c - layers by name or index, target lists ("3-7", "conv1,conv2", "all") and
 * the nearest name for a misspelt one. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dfq/dfq_text.h"
#include "model_internal.h"

/* --- layer lookup and targets --------------------------------------------- */

int dfq_model_find_layer(const struct dfq_model *m, const char *name)
{
	for (int i = 0; i < m->nlayers; i++)
		if (strcmp(m->layers[i].name, name) == 0)
			return i;
	for (int i = 0; i < m->nlayers; i++)
		if (strcmp(m->layers[i].alias, name) == 0)
			return i;
	return -1;
}

/* The name or alias the user probably meant: one equal to name but for case,
 * the only layer starting with name, or else the nearest within max(2,
 * len / 3) edits that keeps something of both words (fewer edits than either
 * is long).  NULL when nothing is that close: a far-off guess misleads. */
static const char *closest_name(const struct dfq_model *m, const char *name)
{
	int n = (int)strlen(name);
	const char *prefix = NULL;
	int nprefix = 0;
	for (int i = 0; i < m->nlayers; i++) {
		const char *cands[2] = {m->layers[i].alias, m->layers[i].name};
		bool starts = false;
		for (int k = 0; k < 2; k++) {
			if (strcasecmp(name, cands[k]) == 0)
				return cands[k];
			if (!starts && strncmp(name, cands[k], (size_t)n) == 0) {
				starts = true;
				prefix = cands[k];
			}
		}
		nprefix += starts;
	}
	if (nprefix == 1)
		return prefix;
	const char *best = NULL;
	int bd = (n / 3 > 2 ? n / 3 : 2) + 1;
	for (int i = 0; i < m->nlayers; i++) {
		const char *cands[2] = {m->layers[i].alias, m->layers[i].name};
		for (int k = 0; k < 2; k++) {
			int d = dfq_edit_distance(name, cands[k]);
			if (d < bd && d < n && d < (int)strlen(cands[k])) {
				bd = d;
				best = cands[k];
			}
		}
	}
	return best;
}

static bool all_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

static dfq_status parse_index(const struct dfq_model *m, const char *s, size_t n, int *out,
                              struct dfq_error *err)
{
	long long v = 0;
	for (size_t i = 0; i < n; i++) {
		v = v * 10 + (s[i] - '0');
		if (v > 1000000000LL)
			break;
	}
	if (v >= m->nlayers)
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "layer index %.*s is out of range (the model has %d layers, "
		                     "0 to %d)",
		                     (int)n, s, m->nlayers, m->nlayers - 1);
	*out = (int)v;
	return DFQ_OK;
}

/* One comma-free token into sel. */
static dfq_status parse_token(const struct dfq_model *m, const char *tok, bool *sel,
                              struct dfq_error *err)
{
	size_t n = strlen(tok);
	if (n == 0)
		return dfq_error_set(err, DFQ_ERR_ARG, "empty layer name in the target list");
	if (strcmp(tok, "all") == 0) {
		for (int i = 0; i < m->nlayers; i++)
			sel[i] = true;
		return DFQ_OK;
	}
	int li = dfq_model_find_layer(m, tok);
	if (li >= 0) {
		sel[li] = true;
		return DFQ_OK;
	}
	const char *dash = strchr(tok, '-');
	if (all_digits(tok, n)) {
		dfq_status st = parse_index(m, tok, n, &li, err);
		if (st == DFQ_OK)
			sel[li] = true;
		return st;
	}
	if (dash && all_digits(tok, (size_t)(dash - tok)) &&
	    all_digits(dash + 1, strlen(dash + 1))) {
		int a, b;
		dfq_status st = parse_index(m, tok, (size_t)(dash - tok), &a, err);
		if (st == DFQ_OK)
			st = parse_index(m, dash + 1, strlen(dash + 1), &b, err);
		if (st != DFQ_OK)
			return st;
		if (a > b)
			return dfq_error_set(err, DFQ_ERR_ARG,
			                     "layer range '%s' is backwards (write %d-%d)", tok, b,
			                     a);
		for (int i = a; i <= b; i++)
			sel[i] = true;
		return DFQ_OK;
	}
	const char *best = closest_name(m, tok);
	if (best)
		return dfq_error_set(err, DFQ_ERR_ARG, "unknown layer '%s' (did you mean '%s'?)",
		                     tok, best);
	if (m->nlayers == 0)
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "unknown layer '%s' (the model has no layers)", tok);
	dfq_error_set(err, DFQ_ERR_ARG, "unknown layer '%s'", tok);
	return dfq_error_remedy(err, DFQ_REMEDY_LIST);
}

dfq_status dfq_model_parse_targets(const struct dfq_model *m, int nspecs, const char *const *specs,
                                   bool *sel, struct dfq_error *err)
{
	for (int i = 0; i < m->nlayers; i++)
		sel[i] = false;
	if (nspecs <= 0)
		return dfq_error_set(err, DFQ_ERR_ARG, "no layers given (name, index, A-B or all)");
	for (int s = 0; s < nspecs; s++) {
		const char *p = specs[s];
		char tok[512];
		for (;;) {
			const char *e = strchr(p, ',');
			size_t n = e ? (size_t)(e - p) : strlen(p);
			if (n >= sizeof tok)
				return dfq_error_set(err, DFQ_ERR_ARG,
				                     "layer name '%.40s...' is too "
				                     "long",
				                     p);
			memcpy(tok, p, n);
			tok[n] = '\0';
			dfq_status st = parse_token(m, tok, sel, err);
			if (st != DFQ_OK) {
				for (int i = 0; i < m->nlayers; i++)
					sel[i] = false;
				return st;
			}
			if (!e)
				break;
			p = e + 1;
		}
	}
	return DFQ_OK;
}
