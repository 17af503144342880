/* chart-text.c - a chart drawn as plain text (ASCII) of W x H characters, without gnuplot: for
 * the screen's panes and for line mode when gnuplot is missing or fails. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chart.h"

struct canvas {
	int w, h;
	char *c; /* h rows of w characters */
};

static void set(struct canvas *cv, int x, int y, char ch)
{
	if (x >= 0 && x < cv->w && y >= 0 && y < cv->h)
		cv->c[y * cv->w + x] = ch;
}

static char get(const struct canvas *cv, int x, int y)
{
	return x >= 0 && x < cv->w && y >= 0 && y < cv->h ? cv->c[y * cv->w + x] : '\0';
}

/* text at (x, y), at most n characters (non-ASCII bytes as '?'). */
static void text(struct canvas *cv, int x, int y, const char *s, int n)
{
	for (int i = 0; s && s[i] && i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		set(cv, x + i, y, ch < 0x20 || ch > 0x7e ? '?' : (char)ch);
	}
}

/* s fitted to n columns: cut with "..." when longer. */
static void fit(const char *s, int n, char *buf, size_t len)
{
	int k = (int)strlen(s ? s : "");
	if (n < 4 || k <= n)
		snprintf(buf, len, "%.*s", n, s ? s : "");
	else
		snprintf(buf, len, "%.*s...", n - 3, s);
}

static void centred(struct canvas *cv, int x0, int w, int y, const char *s)
{
	char b[1024];
	fit(s, w, b, sizeof b);
	int k = (int)strlen(b);
	text(cv, x0 + (w - k) / 2, y, b, w);
}

static const char *fmt_num(double v, char *buf, size_t len)
{
	snprintf(buf, len, "%.3g", fabs(v) < 1e-12 ? 0.0 : v);
	return buf;
}

/* The series' character: bars and boxes '#' (a second series '%'), lines
 * '*', horizontal bars '=' then '#', outlines '[' ']'. */
static char series_char(const struct chart_series *s, int si)
{
	switch (s->style) {
	case CHART_VBARS:
		return si % 2 ? '%' : '#';
	case CHART_BOXES:
		return '#';
	case CHART_LINE:
		return '*';
	case CHART_HBARS:
		return s->outline ? '[' : si == 0 ? '=' : '#';
	}
	return '#';
}

/* The data's extent on x and y, where the panel leaves them open. */
static void extent(const struct chart_panel *P, double *x0, double *x1, double *y0, double *y1)
{
	double xa = INFINITY, xb = -INFINITY, ya = INFINITY, yb = -INFINITY;
	for (int si = 0; si < P->nseries; si++) {
		const struct chart_series *s = &P->series[si];
		for (int i = 0; i < s->n; i++) {
			switch (s->style) {
			case CHART_VBARS:
				xa = fmin(xa, s->x[i]);
				xb = fmax(xb, s->x[i]);
				ya = fmin(ya, s->lo[i]);
				yb = fmax(yb, s->hi[i]);
				break;
			case CHART_HBARS:
				xa = fmin(xa, s->lo[i]);
				xb = fmax(xb, s->hi[i]);
				ya = fmin(ya, s->y[i]);
				yb = fmax(yb, s->y[i]);
				break;
			case CHART_BOXES:
				xa = fmin(xa, s->x[i] - s->width / 2);
				xb = fmax(xb, s->x[i] + s->width / 2);
				ya = fmin(ya, 0.0);
				yb = fmax(yb, s->y[i]);
				break;
			case CHART_LINE:
				xa = fmin(xa, s->x[i]);
				xb = fmax(xb, s->x[i]);
				ya = fmin(ya, s->y[i]);
				yb = fmax(yb, s->y[i]);
				break;
			}
		}
	}
	for (int i = 0; i < P->nmarks; i++) {
		if (P->marks[i].band) {
			xa = fmin(xa, P->marks[i].lo);
			xb = fmax(xb, P->marks[i].hi);
		} else {
			ya = fmin(ya, P->marks[i].lo);
			yb = fmax(yb, P->marks[i].lo);
		}
	}
	if (P->zero_line) {
		ya = fmin(ya, 0.0);
		yb = fmax(yb, 0.0);
	}
	*x0 = isnan(P->xmin) ? xa : P->xmin;
	*x1 = isnan(P->xmax) ? xb : P->xmax;
	*y0 = isnan(P->ymin) ? ya : P->ymin;
	*y1 = isnan(P->ymax) ? yb : P->ymax;
	if (!isfinite(*x0) || !isfinite(*x1)) {
		*x0 = 0.0;
		*x1 = 1.0;
	}
	if (!isfinite(*y0) || !isfinite(*y1)) {
		*y0 = 0.0;
		*y1 = 1.0;
	}
	if (*x1 <= *x0) {
		*x0 -= 0.5;
		*x1 += 0.5;
	}
	if (*y1 <= *y0) {
		*y0 -= 0.5;
		*y1 += 0.5;
	}
}

struct area {
	int x0, y0, w, h; /* the plotting cells */
	double xa, xb, ya, yb;
};

static int col_of(const struct area *a, double x)
{
	double t = (x - a->xa) / (a->xb - a->xa);
	return a->x0 + (int)lround(t * (a->w - 1));
}

static int row_of(const struct area *a, double y)
{
	double t = (a->yb - y) / (a->yb - a->ya);
	int r = (int)lround(t * (a->h - 1));
	return a->y0 + (r < 0 ? 0 : r >= a->h ? a->h - 1 : r);
}

static bool in_cols(const struct area *a, int c)
{
	return c >= a->x0 && c < a->x0 + a->w;
}

/* Categorical rows (labelled y tics, e.g. one per tensor): the text row of
 * category value y, or -1 when it does not fit. */
static int cat_row(const struct area *a, double y, double top)
{
	int r = (int)lround(top - y);
	return r >= 0 && r < a->h ? a->y0 + r : -1;
}

static void draw_panel(struct canvas *cv, const struct chart_panel *P, int x0, int y0, int w, int h)
{
	char b[1024], n1[32], n2[32], n3[32];
	int y = y0;
	if (P->title)
		centred(cv, x0, w, y++, P->title);
	fit(P->ylabel, w - 2, b, sizeof b);
	text(cv, x0, y, "^ ", 2);
	text(cv, x0 + 2, y++, b, w - 2);
	double xa, xb, ya, yb;
	extent(P, &xa, &xb, &ya, &yb);
	bool cats = P->nytics > 0;
	/* the left margin: labels of the categories, or numbers */
	int margin = 0;
	if (cats) {
		for (int i = 0; i < P->nytics; i++) {
			int k = (int)strlen(P->ytics[i].label);
			margin = k > margin ? k : margin;
		}
		margin = margin > w / 3 ? w / 3 : margin;
	} else {
		margin = (int)strlen(fmt_num(ya, n1, sizeof n1));
		int k = (int)strlen(fmt_num(yb, n2, sizeof n2));
		margin = k > margin ? k : margin;
		k = (int)strlen(fmt_num((ya + yb) / 2, n3, sizeof n3));
		margin = k > margin ? k : margin;
	}
	struct area a = {x0 + margin + 1, y, w - margin - 2, h - (y - y0) - 3, xa, xb, ya, yb};
	if (a.w < 4 || a.h < 2)
		return;
	int axis_row = a.y0 + a.h;
	/* frame: the y axis and the x axis */
	for (int r = a.y0; r < axis_row; r++)
		set(cv, a.x0 - 1, r, '|');
	set(cv, a.x0 - 1, axis_row, '+');
	for (int c = a.x0; c < a.x0 + a.w; c++)
		set(cv, c, axis_row, '-');
	double top = 0.0;
	int hidden = 0;
	if (cats) {
		double hi = -INFINITY;
		for (int i = 0; i < P->nytics; i++)
			hi = fmax(hi, P->ytics[i].at);
		top = hi;
		for (int i = 0; i < P->nytics; i++) {
			int r = cat_row(&a, P->ytics[i].at, top);
			if (r < 0) {
				hidden++;
				continue;
			}
			fit(P->ytics[i].label, margin, b, sizeof b);
			int k = (int)strlen(b);
			text(cv, a.x0 - 1 - k, r, b, k);
		}
		if (hidden) {
			/* the last row says how many did not fit */
			snprintf(b, sizeof b, "... %d more rows (a taller chart shows them)",
			         hidden);
			for (int c = x0; c < a.x0 + a.w; c++)
				set(cv, c, axis_row - 1, ' ');
			text(cv, x0, axis_row - 1, b, w);
		}
	} else {
		fmt_num(yb, n1, sizeof n1);
		text(cv, a.x0 - 1 - (int)strlen(n1), a.y0, n1, margin);
		fmt_num(ya, n1, sizeof n1);
		text(cv, a.x0 - 1 - (int)strlen(n1), axis_row - 1, n1, margin);
		if (a.h >= 5) {
			fmt_num((ya + yb) / 2, n1, sizeof n1);
			text(cv, a.x0 - 1 - (int)strlen(n1), row_of(&a, (ya + yb) / 2), n1, margin);
		}
	}
	int last_row = hidden ? axis_row - 1 : axis_row;
	/* marks under the data: the zero line, bands, levels */
	if (P->zero_line && !cats && ya < 0.0 && yb > 0.0)
		for (int c = a.x0; c < a.x0 + a.w; c++)
			set(cv, c, row_of(&a, 0.0), '.');
	for (int i = 0; i < P->nmarks; i++) {
		const struct chart_mark *k = &P->marks[i];
		if (k->band) {
			int cl = col_of(&a, k->lo), ch = col_of(&a, k->hi);
			for (int r = a.y0; r < last_row; r++) {
				if (in_cols(&a, cl))
					set(cv, cl, r, ':');
				if (in_cols(&a, ch))
					set(cv, ch, r, ':');
			}
		} else if (!cats && k->lo >= ya && k->lo <= yb) {
			int r = row_of(&a, k->lo);
			for (int c = a.x0; c < a.x0 + a.w; c++)
				set(cv, c, r, '-');
		}
	}
	/* the data */
	for (int si = 0; si < P->nseries; si++) {
		const struct chart_series *s = &P->series[si];
		char ch = series_char(s, si);
		if (s->style == CHART_VBARS) {
			/* several channels to a column: the column shows their union */
			double *clo = malloc((size_t)a.w * sizeof *clo),
			       *chi = malloc((size_t)a.w * sizeof *chi);
			if (!clo || !chi) {
				free(clo);
				free(chi);
				continue;
			}
			for (int c = 0; c < a.w; c++) {
				clo[c] = INFINITY;
				chi[c] = -INFINITY;
			}
			for (int i = 0; i < s->n; i++) {
				int c = col_of(&a, s->x[i]) - a.x0;
				if (c < 0 || c >= a.w)
					continue;
				clo[c] = fmin(clo[c], s->lo[i]);
				chi[c] = fmax(chi[c], s->hi[i]);
			}
			for (int c = 0; c < a.w; c++) {
				if (clo[c] > chi[c])
					continue;
				for (int r = row_of(&a, chi[c]); r <= row_of(&a, clo[c]); r++)
					set(cv, a.x0 + c, r, ch);
			}
			free(clo);
			free(chi);
		} else if (s->style == CHART_BOXES) {
			int base = row_of(&a, fmax(0.0, ya));
			for (int c = 0; c < a.w; c++) {
				/* the column covers [cx0, cx1) in x: its tallest box */
				double cx0 = xa + (xb - xa) * (c - 0.5) / (a.w - 1);
				double cx1 = xa + (xb - xa) * (c + 0.5) / (a.w - 1);
				double top_y = -INFINITY;
				for (int i = 0; i < s->n; i++)
					if (s->x[i] - s->width / 2 < cx1 &&
					    s->x[i] + s->width / 2 > cx0)
						top_y = fmax(top_y, s->y[i]);
				if (!(top_y > 0.0))
					continue;
				for (int r = row_of(&a, top_y); r <= base; r++)
					set(cv, a.x0 + c, r, ch);
			}
		} else if (s->style == CHART_HBARS) {
			for (int i = 0; i < s->n; i++) {
				int r = cats ? cat_row(&a, s->y[i], top) : row_of(&a, s->y[i]);
				if (r < 0 || r >= last_row)
					continue;
				int cl = col_of(&a, s->lo[i]), chh = col_of(&a, s->hi[i]);
				cl = cl < a.x0 ? a.x0 : cl;
				chh = chh >= a.x0 + a.w ? a.x0 + a.w - 1 : chh;
				if (s->outline) {
					set(cv, cl, r, '[');
					set(cv, chh, r, ']');
				} else {
					for (int c = cl; c <= chh; c++)
						set(cv, c, r, ch);
				}
			}
		} else {
			/* a line: dots between points, then the points */
			for (int i = 0; i + 1 < s->n; i++) {
				int c0 = col_of(&a, s->x[i]), c1 = col_of(&a, s->x[i + 1]);
				for (int c = c0 + 1; c < c1; c++) {
					double t = (double)(c - c0) / (c1 - c0);
					int r = row_of(&a, s->y[i] + t * (s->y[i + 1] - s->y[i]));
					if (get(cv, c, r) != '*')
						set(cv, c, r, '.');
				}
			}
			for (int i = 0; i < s->n; i++)
				set(cv, col_of(&a, s->x[i]), row_of(&a, s->y[i]), '*');
		}
	}
	/* x tics: labelled ones where they fit, else the ends and the middle */
	int tr = axis_row + 1;
	if (P->nxtics) {
		int free_from = 0;
		for (int i = 0; i < P->nxtics; i++) {
			const char *l = P->xtics[i].label;
			const char *colon = strchr(l, ':');
			int k = colon ? (int)(colon - l) : (int)strlen(l);
			int c = col_of(&a, P->xtics[i].at) - k / 2;
			if (c < free_from || !in_cols(&a, c + k - 1) || c < a.x0 - 1)
				continue;
			text(cv, c, tr, l, k);
			free_from = c + k + 1;
		}
	} else if (P->nseries > 0 && P->series[0].style == CHART_VBARS && P->series[0].n > 0) {
		/* bars (channels): the first, middle and last bar's x under it */
		const struct chart_series *s = &P->series[0];
		double xs[3] = {s->x[0], s->x[s->n / 2], s->x[s->n - 1]};
		int free_from = 0;
		for (int i = 0; i < 3; i++) {
			fmt_num(xs[i], n1, sizeof n1);
			int k = (int)strlen(n1);
			int c = col_of(&a, xs[i]) - (i == 2 ? k - 1 : i == 1 ? k / 2 : 0);
			if (c < free_from || (i == 1 && s->n < 3))
				continue;
			text(cv, c, tr, n1, k);
			free_from = c + k + 1;
		}
	} else {
		fmt_num(xa, n1, sizeof n1);
		fmt_num(xb, n2, sizeof n2);
		fmt_num((xa + xb) / 2, n3, sizeof n3);
		text(cv, a.x0, tr, n1, 32);
		int k3 = (int)strlen(n3), k2 = (int)strlen(n2);
		if (a.w > (int)strlen(n1) + k3 + k2 + 4)
			text(cv, a.x0 + (a.w - k3) / 2, tr, n3, 32);
		text(cv, a.x0 + a.w - k2, tr, n2, 32);
	}
	centred(cv, a.x0, a.w, tr + 1, P->xlabel);
}

/* "  # name   : band  - level" for the key. */
static void legend(const struct chart *c, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int p = 0; p < c->npanels; p++) {
		const struct chart_panel *P = &c->panels[p];
		for (int si = 0; si < P->nseries && used < len; si++) {
			const struct chart_series *s = &P->series[si];
			char ch = series_char(s, si);
			if (c->npanels > 1 && p > 0 && s->style == CHART_VBARS)
				continue; /* the panels' titles say which is which */
			used +=
			    (size_t)snprintf(buf + used, len - used, "%s%s %s", used ? "   " : "",
			                     s->outline ? "[ ]" : (char[]){ch, '\0'}, s->name);
		}
		for (int i = 0; i < P->nmarks && used < len; i++)
			used +=
			    (size_t)snprintf(buf + used, len - used, "%s%s %s", used ? "   " : "",
			                     P->marks[i].band ? ": :" : "---", P->marks[i].name);
	}
}

/* Split s into at most max lines of width w (at spaces where possible). */
static int wrap(const char *s, int w, char lines[][1024], int max)
{
	int n = 0;
	while (s && *s && n < max) {
		while (*s == ' ')
			s++;
		int len = (int)strlen(s);
		const char *nl = strchr(s, '\n');
		int take = nl && nl - s < w ? (int)(nl - s) : len <= w ? len : w;
		if (take < len && !(nl && nl - s == take)) {
			int k = take;
			while (k > w / 2 && s[k] != ' ')
				k--;
			if (s[k] == ' ')
				take = k;
		}
		if (n == max - 1 && take < len && !nl) {
			fit(s, w, lines[n++], 1024);
			break;
		}
		snprintf(lines[n++], 1024, "%.*s", take, s);
		s += take;
		if (*s == '\n')
			s++;
	}
	return n;
}

char *chart_text(const struct chart *c, int width, int height)
{
	int W = width < 30 ? 30 : width > 1000 ? 1000 : width;
	int H = height < 8 ? 8 : height > 1000 ? 1000 : height;
	struct canvas cv = {W, H, malloc((size_t)W * (size_t)H)};
	char *out = malloc((size_t)(W + 1) * (size_t)H + 1);
	if (!cv.c || !out) {
		free(cv.c);
		free(out);
		return NULL;
	}
	memset(cv.c, ' ', (size_t)W * (size_t)H);
	char lines[2][1024];
	int nt = wrap(c->title, W, lines, H >= 16 ? 2 : 1);
	for (int i = 0; i < nt; i++)
		text(&cv, 0, i, lines[i], W);
	int bottom = H;
	if (c->note && H >= 12) {
		char b[1024];
		fit(c->note, W, b, sizeof b);
		text(&cv, 0, --bottom, b, W);
	}
	char key[2048], b[1024];
	legend(c, key, sizeof key);
	if (key[0] && H >= 10) {
		fit(key, W, b, sizeof b);
		text(&cv, 0, --bottom, b, W);
	}
	int top = nt;
	int np = c->npanels > 0 ? c->npanels : 1;
	int pw = (W - (np - 1) * 2) / np;
	for (int p = 0; p < c->npanels; p++)
		draw_panel(&cv, &c->panels[p], p * (pw + 2), top, pw, bottom - top);
	size_t o = 0;
	for (int r = 0; r < H; r++) {
		int k = W;
		while (k > 0 && cv.c[r * W + k - 1] == ' ')
			k--;
		memcpy(out + o, cv.c + r * W, (size_t)k);
		o += (size_t)k;
		out[o++] = '\n';
	}
	out[o] = '\0';
	free(cv.c);
	return out;
}
