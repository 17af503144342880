/* draw.c - drawing helpers of the screen: colours (or none, with NO_COLOR or a monochrome
 * terminal), pane borders with titles, text cut to a width, range bars. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tui_internal.h"

void draw_init_colors(struct tui *t)
{
	if (!t->color)
		return;
	start_color();
	use_default_colors();
	init_pair(1, COLOR_CYAN, -1);           /* titles */
	init_pair(2, COLOR_BLACK, COLOR_CYAN);  /* focused title */
	init_pair(3, COLOR_RED, -1);            /* errors */
	init_pair(4, COLOR_GREEN, -1);          /* better */
	init_pair(5, COLOR_YELLOW, -1);         /* worse */
	init_pair(6, COLOR_BLUE, -1);           /* bars: before */
	init_pair(7, COLOR_GREEN, -1);          /* bars: now */
	init_pair(8, COLOR_BLACK, COLOR_WHITE); /* selection */
}

static attr_t tui_attr_bits(const struct tui *t, enum tui_color c)
{
	if (!t->color) {
		switch (c) {
		case C_TITLE:
			return A_BOLD;
		case C_FOCUS:
		case C_SEL:
			return A_REVERSE;
		case C_ERROR:
			return A_BOLD;
		case C_DIM:
			return A_DIM;
		case C_GOOD:
		case C_BAD:
			return A_BOLD;
		default:
			return A_NORMAL;
		}
	}
	switch (c) {
	case C_TITLE:
		return COLOR_PAIR(1) | A_BOLD;
	case C_FOCUS:
		return COLOR_PAIR(2) | A_BOLD;
	case C_ERROR:
		return COLOR_PAIR(3) | A_BOLD;
	case C_DIM:
		return A_DIM;
	case C_GOOD:
		return COLOR_PAIR(4);
	case C_BAD:
		return COLOR_PAIR(5);
	case C_BAR:
		return COLOR_PAIR(6);
	case C_BAR2:
		return COLOR_PAIR(7);
	case C_SEL:
		return A_REVERSE;
	default:
		return A_NORMAL;
	}
}

int tui_attr(const struct tui *t, enum tui_color c)
{
	return (int)tui_attr_bits(t, c);
}

/* Columns of UTF-8 text s (one per character: the screen's own text has no wide ones). */
static int text_cols(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* Bytes of s that fill at most n columns. */
static size_t text_cut(const char *s, int n)
{
	size_t i = 0;
	int cols = 0;
	while (s[i]) {
		size_t k = 1;
		while (((unsigned char)s[i + k] & 0xC0) == 0x80)
			k++;
		if (cols + 1 > n)
			break;
		cols++;
		i += k;
	}
	return i;
}

size_t draw_wrap_cut(const char *s, int n)
{
	size_t all = text_cut(s, n);
	if (!s[all])
		return all;
	/* break after the last blank that leaves at least half the row used, so that a
	 * word is not split; a row without one is cut where it is full */
	for (size_t i = all; i > 0; i--)
		if (s[i - 1] == ' ' && text_cols(s) - text_cols(s + i) >= n / 2)
			return i;
	return all > 0 ? all : 1;
}

void draw_text(WINDOW *w, int y, int x, int n, int attr, bool pad, const char *text)
{
	if (n <= 0)
		return;
	size_t b = text_cut(text, n);
	wattron(w, attr);
	mvwaddnstr(w, y, x, text, (int)b);
	if (pad)
		for (int k = text_cols(text) < n ? text_cols(text) : n; k < n; k++)
			waddch(w, ' ');
	wattroff(w, attr);
}

void draw_fmt(WINDOW *w, int y, int x, int n, int attr, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	draw_text(w, y, x, n, attr, false, buf);
}

void draw_frame(struct tui *t, struct pane *p, const char *title)
{
	WINDOW *w = p->win;
	bool focus =
	    !t->cmdline && (t->focus == (int)(p - t->panes) ||
	                    (t->small && t->focus == PANE_DETAIL && p == &t->panes[t->tab]));
	/* drawn as text, not the terminal's alternate character set: UTF-8 box
	 * characters where the locale has them, ASCII elsewhere */
	const char *h = t->utf8 ? "\u2500" : "-", *v = t->utf8 ? "\u2502" : "|";
	const char *c[4] = {"+", "+", "+", "+"};
	if (t->utf8) {
		c[0] = "\u250c";
		c[1] = "\u2510";
		c[2] = "\u2514";
		c[3] = "\u2518";
	}
	for (int x = 1; x < p->w - 1; x++) {
		mvwaddstr(w, 0, x, h);
		mvwaddstr(w, p->h - 1, x, h);
	}
	for (int y = 1; y < p->h - 1; y++) {
		mvwaddstr(w, y, 0, v);
		mvwaddstr(w, y, p->w - 1, v);
	}
	mvwaddstr(w, 0, 0, c[0]);
	mvwaddstr(w, 0, p->w - 1, c[1]);
	mvwaddstr(w, p->h - 1, 0, c[2]);
	/* the last cell of the screen's last row would scroll: pane windows never reach it */
	mvwaddstr(w, p->h - 1, p->w - 1, c[3]);
	char buf[512];
	snprintf(buf, sizeof buf, " %s ", title);
	draw_text(w, 0, 2, p->w - 4, tui_attr(t, focus ? C_FOCUS : C_TITLE), false, buf);
}

const char *fmt_num(double v, char *buf, size_t len)
{
	if (isnan(v))
		snprintf(buf, len, "-");
	else if (isinf(v))
		snprintf(buf, len, "%s", v > 0 ? "inf" : "-inf");
	else if (fabs(v) >= 1000 || (fabs(v) < 0.01 && v != 0))
		snprintf(buf, len, "%.3g", v);
	else
		snprintf(buf, len, "%.2f", v);
	return buf;
}

void draw_range_bar(struct tui *t, WINDOW *w, int y, int x, int n, double lo, double hi,
                    double scale, int attr)
{
	if (n < 3)
		return;
	int zero = n / 2;
	double half = (double)(n - 1) / 2.0;
	int a = zero, b = zero;
	if (scale > 0 && isfinite(lo) && isfinite(hi)) {
		a = (int)lround(zero + lo / scale * half);
		b = (int)lround(zero + hi / scale * half);
		a = a < 0 ? 0 : a > n - 1 ? n - 1 : a;
		b = b < 0 ? 0 : b > n - 1 ? n - 1 : b;
	}
	for (int i = 0; i < n; i++) {
		bool in = i >= a && i <= b;
		if (i == zero && !in) {
			if (t->utf8)
				mvwaddstr(w, y, x + i, "\u2502");
			else
				mvwaddch(w, y, x + i, '|');
		} else if (in) {
			wattron(w, attr);
			if (t->utf8)
				mvwaddstr(w, y, x + i, i == zero ? "\u253c" : "\u2501");
			else
				mvwaddch(w, y, x + i, i == zero ? '+' : '=');
			wattroff(w, attr);
		} else {
			mvwaddch(w, y, x + i, ' ');
		}
	}
}

void fmt_progress(const struct tui *t, int width, bool counts, char *buf, size_t len)
{
	char bar[256];
	width = width < (int)sizeof bar - 1 ? width : (int)sizeof bar - 1;
	int fill = t->prog_total > 0 ? (int)(width * t->prog_done / t->prog_total) : 0;
	for (int i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : '-';
	bar[width > 0 ? width : 0] = '\0';
	double rate = t->prog_secs > 0 ? (double)t->prog_done / t->prog_secs : 0;
	long eta = rate > 0 ? (long)((double)(t->prog_total - t->prog_done) / rate + 0.5) : 0;
	int pct = (int)(100 * t->prog_done / (t->prog_total ? t->prog_total : 1));
	if (counts)
		snprintf(buf, len, "%s [%s] %3d%%  %lld/%lld  ETA %ld:%02ld  (Ctrl-C cancels)",
		         t->prog_what, bar, pct, (long long)t->prog_done, (long long)t->prog_total,
		         eta / 60, eta % 60);
	else
		snprintf(buf, len, "%s [%s] %3d%% ETA %ld:%02ld", t->prog_what, bar, pct, eta / 60,
		         eta % 60);
}
