/* pane_steps.c - accuracy and steps: the FP32 baseline, then every step with the top-1 after it
 * (when it was evaluated), its delta against FP32 and against the step evaluated before; undone
 * steps greyed, the best result marked.  It reads the model's history and the program's tags. */
#include <stdio.h>
#include <string.h>

#include "tui_internal.h"

static void steps_title(struct pane *p, struct tui *t, char *buf, size_t len)
{
	const struct dfq_model *m = t->s->model;
	int n = m ? dfq_model_history_count(m) : 0, a = m ? dfq_model_history_applied(m) : 0;
	if (n > a)
		snprintf(buf, len, "Accuracy and steps (%d, %d undone)", n, n - a);
	else
		snprintf(buf, len, "Accuracy and steps (%d)", n);
}

static void fmt_pct(const struct eval_mark *e, char *b, size_t n)
{
	if (e->valid)
		snprintf(b, n, "%.2f", 100 * e->top1);
	else
		snprintf(b, n, "-");
}

static void fmt_delta(const struct eval_mark *e, const struct eval_mark *ref, char *b, size_t n)
{
	if (e->valid && ref->valid && e->n == ref->n)
		snprintf(b, n, "%+.2f", 100 * (e->top1 - ref->top1));
	else
		snprintf(b, n, "-");
}

static void steps_draw(struct pane *p, struct tui *t)
{
	WINDOW *w = p->win;
	int inner = p->w - 2, rows = p->h - 3;
	const struct session *s = t->s;
	const struct dfq_model *m = s->model;
	int n = m ? dfq_model_history_count(m) : 0;
	int lw = inner - 30;
	lw = lw < 8 ? 8 : lw;
	char buf[512], a[16], b[16], c[16];
	snprintf(buf, sizeof buf, "%3s %-*s %6s %7s %7s", "", lw, "step", "top-1", "vs FP32",
	         "vs prev");
	draw_text(w, 1, 1, inner, A_BOLD, true, buf);
	/* the best applied result, for its mark */
	int best = -1;
	double besttop = -1;
	for (int i = 0; i < n; i++) {
		struct dfq_history_entry e;
		if (dfq_model_history_entry(m, i, &e, NULL) != DFQ_OK || !e.applied)
			continue;
		const struct step_tag *tag = e.tag;
		if (tag && tag->eval.valid && tag->eval.top1 > besttop) {
			besttop = tag->eval.top1;
			best = i;
		}
	}
	/* rows: the baseline and the entries; the newest stay in view */
	int total = n + 1;
	int first = total > rows ? total - rows : 0;
	if (p->scroll > 0)
		first = first - p->scroll > 0 ? first - p->scroll : 0;
	struct eval_mark prev = s->fp32;
	for (int i = 0; i < first - 1 && i < n; i++) {
		struct dfq_history_entry e;
		if (dfq_model_history_entry(m, i, &e, NULL) == DFQ_OK && e.applied && e.tag &&
		    ((struct step_tag *)e.tag)->eval.valid)
			prev = ((struct step_tag *)e.tag)->eval;
	}
	for (int r = 0; r < rows; r++) {
		int k = first + r; /* 0: baseline, i + 1: entry i */
		if (k >= total) {
			draw_text(w, 2 + r, 1, inner, A_NORMAL, true, "");
			continue;
		}
		if (k == 0) {
			fmt_pct(&s->fp32, a, sizeof a);
			snprintf(buf, sizeof buf, "%3s %-*.*s %6s %7s %7s", "", lw, lw,
			         "FP32 (as loaded)", a, "-", "-");
			draw_text(w, 2 + r, 1, inner, A_NORMAL, true, buf);
			continue;
		}
		struct dfq_history_entry e;
		if (dfq_model_history_entry(m, k - 1, &e, NULL) != DFQ_OK)
			continue;
		const struct step_tag *tag = e.tag;
		struct eval_mark none = {0};
		const struct eval_mark *ev = tag ? &tag->eval : &none;
		fmt_pct(ev, a, sizeof a);
		fmt_delta(ev, &s->fp32, b, sizeof b);
		fmt_delta(ev, &prev, c, sizeof c);
		snprintf(buf, sizeof buf, "%3d%c%-*.*s %6s %7s %7s", k,
		         e.applied && k - 1 == best ? '*' : ' ', lw, lw, e.label, a, b, c);
		int attr = A_NORMAL;
		if (!e.applied)
			attr = tui_attr(t, C_DIM);
		else if (k - 1 == best)
			attr = tui_attr(t, C_GOOD) | A_BOLD;
		draw_text(w, 2 + r, 1, inner, attr, true, buf);
		if (!e.applied)
			draw_text(w, 2 + r, 1 + 4 + lw - 8 > 5 ? 1 + 4 + lw - 8 : 5, 8, attr, false,
			          " undone ");
		if (e.applied && ev->valid)
			prev = *ev;
	}
	/* long work in progress (eval, measure, biascorr): its bar sits here */
	if (t->prog_what && rows > 2) {
		fmt_progress(t, inner - 30 > 10 ? inner - 30 : 10, false, buf, sizeof buf);
		draw_text(w, p->h - 2, 1, inner, tui_attr(t, C_FOCUS), true, buf);
	}
}

static int steps_key(struct pane *p, struct tui *t, int ch)
{
	switch (ch) {
	case KEY_UP:
	case 'k':
		p->scroll++;
		return KEY_DONE | KEY_DIRTY;
	case KEY_DOWN:
	case 'j':
		p->scroll = p->scroll > 0 ? p->scroll - 1 : 0;
		return KEY_DONE | KEY_DIRTY;
	case 'G':
		p->scroll = 0;
		return KEY_DONE | KEY_DIRTY;
	}
	return KEY_NONE;
}

const struct pane_ops pane_steps_ops = {
    .name = "Accuracy and steps",
    .title = steps_title,
    .draw = steps_draw,
    .key = steps_key,
    .follows_selection = false,
};
