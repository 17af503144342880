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
	if (t->nlog == LOG_MAX) {
		free(t->log[0].text);
		memmove(t->log, t->log + 1, (LOG_MAX - 1) * sizeof *t->log);
		t->nlog--;
	}
	/* a JSON object or a long line: one entry per line of text */
	const char *p = text;
	do {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char *copy = malloc(n + 1);
		if (!copy)
			return;
		memcpy(copy, p, n);
		copy[n] = '\0';
		t->log[t->nlog++] = (struct log_line){kind, copy, cmd};
		p = e ? e + 1 : NULL;
	} while (p && *p && t->nlog < LOG_MAX);
	t->panes[PANE_LOG].dirty = true;
}

static void log_title(struct pane *p, struct tui *t, char *buf, size_t len)
{
	if (p->scroll > 0)
		snprintf(buf, len, "Log (%d lines back)", p->scroll);
	else
		snprintf(buf, len, "Log");
}

static void log_draw(struct pane *p, struct tui *t)
{
	WINDOW *w = p->win;
	int inner = p->w - 2, rows = p->h - 2;
	int last = t->nlog - p->scroll;
	int first = last - rows > 0 ? last - rows : 0;
	for (int r = 0; r < rows; r++) {
		int i = first + r;
		if (i >= last) {
			draw_text(w, 1 + r, 1, inner, A_NORMAL, true, "");
			continue;
		}
		const struct log_line *l = &t->log[i];
		int attr = l->kind == OUT_ERROR                           ? tui_attr(t, C_ERROR)
		           : l->cmd                                       ? tui_attr(t, C_TITLE)
		           : l->kind == OUT_INFO || l->kind == OUT_DETAIL ? (int)A_NORMAL
		                                                          : (int)A_NORMAL;
		draw_text(w, 1 + r, 1, inner, attr, true, l->text);
	}
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
