/* pane_log.c - the log: every command typed and the text it printed, errors in colour,
 * scrollable; the newest lines in view unless the user scrolled back. */
#include <stdlib.h>
#include <string.h>

#include "tui_internal.h"

void log_free(struct tui *t)
{
	for (int i = 0; i < t->nlog; i++)
		free(t->log[i].text);
	free(t->log);
	t->log = NULL;
	t->nlog = 0;
}

void log_add(struct tui *t, enum out_kind kind, const char *text, bool cmd)
{
	if (!t->log) {
		t->log = calloc(LOG_MAX, sizeof *t->log);
		if (!t->log)
			return;
	}
	/* a JSON object or a long line: one entry per line of text; the oldest go first */
	const char *p = text;
	do {
		if (t->nlog == LOG_MAX) {
			free(t->log[0].text);
			memmove(t->log, t->log + 1, (LOG_MAX - 1) * sizeof *t->log);
			t->nlog--;
		}
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char *copy = malloc(n + 1);
		if (!copy)
			return;
		memcpy(copy, p, n);
		copy[n] = '\0';
		t->log[t->nlog++] = (struct log_line){kind, copy, cmd};
		p = e ? e + 1 : NULL;
	} while (p && *p);
	t->panes[PANE_LOG].dirty = true;
}

static void log_title(struct pane *p, struct tui *t, char *buf, size_t len)
{
	if (p->scroll > 0)
		snprintf(buf, len, "Log (%d lines back)", p->scroll);
	else
		snprintf(buf, len, "Log");
}

/* Where a wrapped entry's later rows start: under the value of a "key   value" line (the
 * load and data summaries), else two columns in from the text; 1 to inner / 2. */
static int log_hang(const char *text, int inner)
{
	int lead = 0;
	while (text[lead] == ' ')
		lead++;
	int i = lead;
	while (text[i] && text[i] != ' ')
		i++;
	int hang = lead + 2;
	if (text[i] == ' ' && text[i + 1] == ' ') {
		while (text[i] == ' ')
			i++;
		hang = i;
	}
	return hang < 1 ? 1 : hang > inner / 2 ? inner / 2 : hang;
}

/* Rows entry text takes at width inner, wrapped at blanks with log_hang's indent. */
static int log_rows(const char *text, int inner)
{
	int n = 1, rest = inner - log_hang(text, inner);
	size_t b = draw_wrap_cut(text, inner);
	for (text += b; *text; text += b, n++)
		b = draw_wrap_cut(text, rest > 1 ? rest : 1);
	return n;
}

static void log_draw(struct pane *p, struct tui *t)
{
	WINDOW *w = p->win;
	int inner = p->w - 2, rows = p->h - 2;
	int last = t->nlog - p->scroll;
	/* the newest entries that fit, each wrapped whole: go back from the last one */
	int first = last, used = 0;
	while (first > 0 && used < rows) {
		int k = log_rows(t->log[first - 1].text, inner);
		if (used + k > rows && used > 0)
			break;
		used += k;
		first--;
	}
	/* an entry taller than the pane shows its last rows */
	int skip = used > rows ? used - rows : 0, r = 0;
	for (int i = first; i < last && r < rows; i++) {
		const struct log_line *l = &t->log[i];
		int attr = l->kind == OUT_ERROR ? tui_attr(t, C_ERROR)
		           : l->cmd             ? tui_attr(t, C_TITLE)
		                                : (int)A_NORMAL;
		const char *s = l->text;
		int hang = log_hang(s, inner);
		for (int row = 0; r < rows && (row == 0 || *s); row++) {
			int x = row == 0 ? 1 : 1 + hang, n = row == 0 ? inner : inner - hang;
			size_t b = draw_wrap_cut(s, n > 1 ? n : 1);
			if (skip > 0) {
				skip--;
			} else {
				if (x > 1)
					draw_text(w, 1 + r, 1, x - 1, A_NORMAL, true, "");
				char *part = strndup(s, b);
				draw_text(w, 1 + r, x, n, attr, true, part ? part : "");
				free(part);
				r++;
			}
			s += b;
		}
	}
	for (; r < rows; r++)
		draw_text(w, 1 + r, 1, inner, A_NORMAL, true, "");
}

static int log_key(struct pane *p, struct tui *t, int ch)
{
	int rows = p->h - 2 > 1 ? p->h - 2 : 1;
	int max = t->nlog - rows > 0 ? t->nlog - rows : 0;
	switch (ch) {
	case KEY_UP:
	case 'k':
		p->scroll++;
		break;
	case KEY_DOWN:
	case 'j':
		p->scroll--;
		break;
	case KEY_PPAGE:
		p->scroll += rows;
		break;
	case KEY_NPAGE:
		p->scroll -= rows;
		break;
	case 'g':
		p->scroll = max;
		break;
	case 'G':
		p->scroll = 0;
		break;
	default:
		return KEY_NONE;
	}
	p->scroll = p->scroll < 0 ? 0 : p->scroll > max ? max : p->scroll;
	return KEY_DONE | KEY_DIRTY;
}

const struct pane_ops pane_log_ops = {
    .name = "Log",
    .title = log_title,
    .draw = log_draw,
    .key = log_key,
    .follows_selection = false,
};
