/* pane_layers.c - the layer table: index, name, op, weight shape, bits, weight-range spread, the
 * activation range in use, SQNR of the quantized weights, the steps that touched it, and the last
 * sensitivity and compare results when there are some.  The selected row drives the other
 * panes. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model-cmd.h"
#include "tui_internal.h"

static void layers_title(struct pane *p, struct tui *t, char *buf, size_t len)
{
	const struct settings *st = &t->s->set;
	char a[16] = "float";
	if (st->abits)
		snprintf(a, sizeof a, "%d", st->abits);
	/* the settings a quantize (Q) applies, not the layers' own bits (the bits column) */
	snprintf(buf, len, "Layers (%d)  Q: W%dA%s %s per-%s",
	         t->s->model ? t->s->model->nlayers : 0, st->wbits, a,
	         st->scheme == DFQ_QSCHEME_SYM ? "sym" : "asym", st->per_channel ? "channel" : "tensor");
}

static const char *op_name(const struct dfq_layer *L)
{
	if (L->op == DFQ_OP_CONV)
		return L->depthwise ? "Conv/dw" : "Conv";
	return L->op == DFQ_OP_GEMM ? "Gemm" : "MatMul";
}

/* The columns, most important first; a narrow pane drops from the end of this list. */
enum col {
	COL_IDX,
	COL_NAME,
	COL_BITS,
	COL_SPREAD,
	COL_SQNR,
	COL_STEPS,
	COL_ACT,
	COL_OP,
	COL_SHAPE
};

/* The analysis columns, when a result exists: "sens" = top-1 change (points)
 * with the layer alone quantized (sensitivity, both), "cmp" = SQNR dB of its
 * output in the quantized model against FP32 (compare). */
static int analysis_text(const struct session *s, int li, int w, int n, char *buf, size_t len)
{
	const struct dfq_sens_result *sr = s->sens;
	if (sr && w - n >= 7) {
		char v[16] = "-";
		if (li < sr->nrows && !isnan(sr->rows[li].top1[DFQ_SENS_BOTH]))
			snprintf(v, sizeof v, "%+.1f",
			         100.0 * (sr->rows[li].top1[DFQ_SENS_BOTH] - sr->top1_fp32));
		n += snprintf(buf + n, len - (size_t)n, " %6s", v);
	}
	const struct dfq_cmp_result *cr = s->cmp;
	if (cr && w - n >= 6) {
		char v[16] = "-";
		for (int i = 0; i < cr->nrows; i++)
			if (cr->rows[i].layer == li) {
				double d = cr->rows[i].sqnr_db;
				snprintf(v, sizeof v, isinf(d) ? "inf" : "%.1f", d);
			}
		n += snprintf(buf + n, len - (size_t)n, " %5s", v);
	}
	return n;
}

static void row_text(struct tui *t, int li, int w, char *buf, size_t len)
{
	const struct dfq_model *m = t->s->model;
	const struct dfq_layer *L = &m->layers[li];
	const struct layer_figs *f = figs_of(t, li, false);
	char bits[16] = "-", spread[24] = "-", act[40] = "-", sqnr[24] = "-", marks[16];
	char shape[40] = "";
	if (L->quantized)
		snprintf(bits, sizeof bits, "%d/%d%s", L->q.wbits, L->q.abits,
		         L->pin.what ? "^" : "");
	else if (L->pin.what & DFQ_PIN_FLOAT)
		snprintf(bits, sizeof bits, "fp32^"); /* kept float by 'float' */
	if (f) {
		fmt_num(f->info.spread, spread, sizeof spread);
		if (f->info.has_act_range)
			snprintf(act, sizeof act, "[%.3g, %.3g]", f->info.act_lo, f->info.act_hi);
		if (!isnan(f->sqnr))
			snprintf(sqnr, sizeof sqnr, "%.1f", f->sqnr);
	}
	figs_steps_marks(L->steps, marks, sizeof marks);
	const struct dfq_tensor *wt = m->g->values[L->w_vi].init;
	for (int d = 0, n = 0; d < wt->ndim; d++)
		n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%lld", d ? "x" : "",
		              (long long)wt->dims[d]);
	int nw = w >= 100 ? 24 : w >= 60 ? 20 : w >= 50 ? 18 : 16;
	const char *name = mc_layer_name(m, li);
	char nm[64];
	int nl = (int)strlen(name);
	if (nl > nw) /* keep the end, where names differ */
		snprintf(nm, sizeof nm, "~%s", name + nl - (nw - 1));
	else
		snprintf(nm, sizeof nm, "%s", name);
	int n =
	    snprintf(buf, len, "%3d %-*s %5s %7s %5s %-7s", li, nw, nm, bits, spread, sqnr, marks);
	n = analysis_text(t->s, li, w, n, buf, len);
	if (w - n >= 17)
		n += snprintf(buf + n, len - (size_t)n, " %-16s", act);
	if (w - n >= 8)
		n += snprintf(buf + n, len - (size_t)n, " %-7s", op_name(L));
	if (w - n >= 13)
		snprintf(buf + n, len - (size_t)n, " %s", shape);
}

static void header_text(const struct session *s, int w, char *buf, size_t len)
{
	int nw = w >= 100 ? 24 : w >= 60 ? 20 : w >= 50 ? 18 : 16;
	int n = snprintf(buf, len, "%3s %-*s %5s %7s %5s %-7s", "#", nw, "name", "bits", "spread",
	                 "SQNR", "steps");
	if (s->sens && w - n >= 7)
		n += snprintf(buf + n, len - (size_t)n, " %6s", "sens");
	if (s->cmp && w - n >= 6)
		n += snprintf(buf + n, len - (size_t)n, " %5s", "cmp");
	if (w - n >= 17)
		n += snprintf(buf + n, len - (size_t)n, " %-16s", "act range");
	if (w - n >= 8)
		n += snprintf(buf + n, len - (size_t)n, " %-7s", "op");
	if (w - n >= 13)
		snprintf(buf + n, len - (size_t)n, " %s", "weight");
}

static void layers_draw(struct pane *p, struct tui *t)
{
	const struct dfq_model *m = t->s->model;
	WINDOW *w = p->win;
	int inner = p->w - 2, rows = p->h - 3;
	if (!m) {
		draw_text(w, 1, 1, inner, A_NORMAL, false, "no model: ':load MODEL.onnx'");
		return;
	}
	char buf[512];
	header_text(t->s, inner, buf, sizeof buf);
	draw_text(w, 1, 1, inner, A_BOLD, true, buf);
	if (t->sel < p->scroll)
		p->scroll = t->sel;
	if (t->sel >= p->scroll + rows)
		p->scroll = t->sel - rows + 1;
	for (int r = 0; r < rows; r++) {
		int li = p->scroll + r;
		if (li >= m->nlayers) {
			draw_text(w, 2 + r, 1, inner, A_NORMAL, true, "");
			continue;
		}
		row_text(t, li, inner, buf, sizeof buf);
		int attr = li == t->sel ? tui_attr(t, C_SEL) : (int)A_NORMAL;
		draw_text(w, 2 + r, 1, inner, attr, true, buf);
	}
	if (m->nlayers > rows) {
		snprintf(buf, sizeof buf, " %d-%d of %d ", p->scroll,
		         p->scroll + rows - 1 < m->nlayers - 1 ? p->scroll + rows - 1
		                                               : m->nlayers - 1,
		         m->nlayers);
		draw_text(w, p->h - 1, p->w - 2 - (int)strlen(buf), (int)strlen(buf),
		          tui_attr(t, C_DIM), false, buf);
	}
}

/* Next layer whose name contains t->search, from `from` on (wrapping). */
static int find_next(struct tui *t, int from)
{
	const struct dfq_model *m = t->s->model;
	for (int k = 0; m && t->search[0] && k < m->nlayers; k++) {
		int li = (from + k) % m->nlayers;
		if (strstr(mc_layer_name(m, li), t->search) ||
		    strstr(m->layers[li].name, t->search))
			return li;
	}
	return -1;
}

static int layers_key(struct pane *p, struct tui *t, int ch)
{
	const struct dfq_model *m = t->s->model;
	if (!m)
		return KEY_NONE;
	int rows = p->h - 3 > 1 ? p->h - 3 : 1, sel = t->sel;
	switch (ch) {
	case KEY_UP:
	case 'k':
		sel--;
		break;
	case KEY_DOWN:
	case 'j':
		sel++;
		break;
	case KEY_PPAGE:
		sel -= rows;
		break;
	case KEY_NPAGE:
		sel += rows;
		break;
	case KEY_HOME:
	case 'g':
		sel = 0;
		break;
	case KEY_END:
	case 'G':
		sel = m->nlayers - 1;
		break;
	case 'n': {
		int li = find_next(t, t->sel + 1);
		if (li < 0) {
			tui_message(t, true, "no layer matches '%s'", t->search);
			return KEY_DONE;
		}
		sel = li;
		break;
	}
	default:
		return KEY_NONE;
	}
	tui_select(t, sel);
	return KEY_DONE | KEY_SELECTED;
}

/* Search from the selection (called with the text typed after '/'). */
void layers_search(struct tui *t, const char *text)
{
	snprintf(t->search, sizeof t->search, "%s", text);
	int li = find_next(t, t->sel);
	if (li < 0)
		tui_message(t, true, "no layer matches '%s'", text);
	else {
		tui_select(t, li);
		tui_message(t, false, "'%s': %s (n: next)", text, mc_layer_name(t->s->model, li));
	}
}

const struct pane_ops pane_layers_ops = {
    .name = "Layers",
    .title = layers_title,
    .draw = layers_draw,
    .key = layers_key,
    .follows_selection = true,
};
