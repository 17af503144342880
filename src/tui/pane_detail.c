/* pane_detail.c - the selected layer in detail: one bar per output channel, min..max around
 * zero, before and after the last step that changed the weights (equalization shows as the
 * paper's Figure 2 -> Figure 6), then the activation ranges (BN, data) against the grid in
 * use, and the weights' grid. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model-cmd.h"
#include "tui_internal.h"

static void detail_title(struct pane *p, struct tui *t, char *buf, size_t len)
{
	const struct dfq_model *m = t->s->model;
	if (!m || t->sel >= m->nlayers) {
		snprintf(buf, len, "Layer detail");
		return;
	}
	const struct dfq_layer *L = &m->layers[t->sel];
	const struct dfq_tensor *w = m->g->values[L->w_vi].init;
	char shape[48] = "";
	for (int d = 0, n = 0; d < w->ndim; d++)
		n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%lld", d ? "x" : "",
		              (long long)w->dims[d]);
	char bits[16] = "float";
	if (L->quantized)
		snprintf(bits, sizeof bits, "W%dA%d", L->q.wbits, L->q.abits);
	snprintf(buf, len, "%s  %s%s %s  %s  %s", mc_layer_name(m, t->sel),
	         L->op == DFQ_OP_CONV   ? "Conv"
	         : L->op == DFQ_OP_GEMM ? "Gemm"
	                                : "MatMul",
	         L->depthwise ? "/dw" : "", shape, dfq_act_name(L->act), bits);
}

static double panel_scale(const float *lo, const float *hi, int64_t n)
{
	double s = 0;
	for (int64_t o = 0; lo && o < n; o++)
		s = fmax(s, fmax(fabs(lo[o]), fabs(hi[o])));
	return s;
}

/* The grid of the layer's output, as text. */
static void act_text(const struct dfq_model *m, const struct dfq_layer *L, char *buf, size_t len)
{
	char b1[32] = "-", b2[32] = "-", b3[64] = "float";
	for (int i = 0; i < m->npoints; i++) {
		const struct dfq_apoint *p = &m->points[i];
		if (p->vi != L->out_vi)
			continue;
		if (p->bn.valid)
			snprintf(b1, sizeof b1, "[%.3g, %.3g]", p->bn.lo, p->bn.hi);
		if (p->minmax.valid)
			snprintf(b2, sizeof b2, "[%.3g, %.3g]", p->minmax.lo, p->minmax.hi);
		if (p->enabled)
			snprintf(b3, sizeof b3, "%s A%d step %.3g zp %d",
			         dfq_range_src_name(p->used), p->bits, p->qp.scale,
			         (int)p->qp.zero_point);
		else if (p->bits > 0)
			snprintf(b3, sizeof b3, "A%d, no range: float", p->bits);
		break;
	}
	snprintf(buf, len, "activation  bn %s  data %s  grid %s", b1, b2, b3);
}

static void weights_text(const struct dfq_layer *L, const struct layer_figs *f, char *buf,
                         size_t len)
{
	if (!L->quantized) {
		snprintf(buf, len, "weights     float  range [%.3g, %.3g]  spread %.3g",
		         f->info.wmin, f->info.wmax, f->info.spread);
		return;
	}
	char g[64] = "";
	if (L->wqp && L->nwqp == 1)
		snprintf(g, sizeof g, "  step %.3g zp %d", L->wqp[0].scale,
		         (int)L->wqp[0].zero_point);
	snprintf(buf, len, "weights     W%d %s %s%s  SQNR %.1f dB", L->q.wbits,
	         L->q.scheme == DFQ_QSCHEME_SYM ? "sym" : "asym",
	         L->q.per_channel ? "per-channel" : "per-tensor", g, f->sqnr);
}

static void detail_draw(struct pane *p, struct tui *t)
{
	const struct dfq_model *m = t->s->model;
	WINDOW *w = p->win;
	int inner = p->w - 2;
	if (!m || t->sel >= m->nlayers) {
		draw_text(w, 1, 1, inner, A_NORMAL, false, "no layer selected");
		return;
	}
	const struct dfq_layer *L = &m->layers[t->sel];
	const struct layer_figs *f = figs_of(t, t->sel, true);
	if (!f || !f->have_channels) {
		draw_text(w, 1, 1, inner, tui_attr(t, C_ERROR), false, "out of memory");
		return;
	}
	bool two = f->blo != NULL;
	int rows = p->h - 5; /* header, two footer lines, border */
	int label = 5;
	int pw = two ? (inner - label - 3) / 2 : inner - label - 1;
	double sb = two ? panel_scale(f->blo, f->bhi, L->cout) : 0;
	double sn = panel_scale(f->lo, f->hi, L->cout);
	char h1[128], h2[128];
	if (two) {
		struct dfq_history_entry e;
		const char *what = "the last step";
		if (dfq_model_history_entry(m, f->before_step, &e, NULL) == DFQ_OK)
			what = e.label;
		/* the step's command when it fits, else just "before" */
		snprintf(h1, sizeof h1, "before %s, |W| <= %.3g", what, sb);
		if ((int)strlen(h1) > pw)
			snprintf(h1, sizeof h1, "before, |W| <= %.3g", sb);
		snprintf(h2, sizeof h2, "now, |W| <= %.3g", sn);
		if ((int)strlen(h1) > pw) { /* narrow: the bounds must not lose digits */
			snprintf(h1, sizeof h1, "before |W|<=%.3g", sb);
			snprintf(h2, sizeof h2, "now |W|<=%.3g", sn);
		}
		draw_text(w, 1, 1, inner, A_BOLD, true, "ch");
		draw_text(w, 1, 1 + label, pw, A_BOLD, false, h1);
		draw_text(w, 1, 1 + label + pw + 2, pw, A_BOLD, false, h2);
	} else {
		snprintf(h1, sizeof h1,
		         "per-channel weight range, |W| <= %.3g (no step changed them)", sn);
		draw_text(w, 1, 1, inner, A_BOLD, true, "ch");
		draw_text(w, 1, 1 + label, inner - label, A_BOLD, false, h1);
	}
	if (p->scroll > L->cout - rows)
		p->scroll = L->cout - rows > 0 ? (int)L->cout - rows : 0;
	for (int r = 0; r < rows; r++) {
		int64_t o = p->scroll + r;
		draw_text(w, 2 + r, 1, inner, A_NORMAL, true, "");
		if (o >= L->cout)
			continue;
		draw_fmt(w, 2 + r, 1, label, A_NORMAL, "%4lld", (long long)o);
		if (two) {
			draw_range_bar(t, w, 2 + r, 1 + label, pw, f->blo[o], f->bhi[o], sb,
			               tui_attr(t, C_BAR));
			draw_range_bar(t, w, 2 + r, 1 + label + pw + 2, pw, f->lo[o], f->hi[o], sn,
			               tui_attr(t, C_BAR2));
		} else {
			draw_range_bar(t, w, 2 + r, 1 + label, pw, f->lo[o], f->hi[o], sn,
			               tui_attr(t, C_BAR2));
		}
	}
	if (L->cout > rows) {
		char more[64];
		snprintf(more, sizeof more, " channels %d-%lld of %lld (j/k) ", p->scroll,
		         (long long)(p->scroll + rows - 1), (long long)L->cout);
		draw_text(w, p->h - 1, p->w - 2 - (int)strlen(more), (int)strlen(more),
		          tui_attr(t, C_DIM), false, more);
	}
	char buf[256];
	act_text(m, L, buf, sizeof buf);
	draw_text(w, p->h - 3, 1, inner, A_NORMAL, true, buf);
	weights_text(L, f, buf, sizeof buf);
	draw_text(w, p->h - 2, 1, inner, A_NORMAL, true, buf);
}

static int detail_key(struct pane *p, struct tui *t, int ch)
{
	int rows = p->h - 5 > 1 ? p->h - 5 : 1;
	switch (ch) {
	case KEY_UP:
	case 'k':
		p->scroll = p->scroll > 0 ? p->scroll - 1 : 0;
		return KEY_DONE | KEY_DIRTY;
	case KEY_DOWN:
	case 'j':
		p->scroll++;
		return KEY_DONE | KEY_DIRTY;
	case KEY_PPAGE:
		p->scroll = p->scroll > rows ? p->scroll - rows : 0;
		return KEY_DONE | KEY_DIRTY;
	case KEY_NPAGE:
		p->scroll += rows;
		return KEY_DONE | KEY_DIRTY;
	case 'g':
		p->scroll = 0;
		return KEY_DONE | KEY_DIRTY;
	}
	return KEY_NONE;
}

const struct pane_ops pane_detail_ops = {
    .name = "Layer detail",
    .title = detail_title,
    .draw = detail_draw,
    .key = detail_key,
    .follows_selection = true,
};
