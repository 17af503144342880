/* pane_hist.c - the error histogram of the selected layer: the weight quantization error
 * (W_q - W) in units of the grid step, flat on [-0.5, 0.5] when nothing clips, so clipping and
 * outliers stand out as counts beyond the edges; with `a` the activation error at the layer's
 * output on a calibration batch.  A float layer shows what the current bits would do. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfq/dfq_data.h"
#include "model-cmd.h"
#include "tui_internal.h"

#define ACT_BATCH 64

/* The histogram shown, and what it was made of (recomputed when that changes). */
struct hist_cache {
	int layer, nbins;
	bool act;
	const void *w, *wq;
	int applied, count; /* the history's position */
	const struct dfq_model *model;
	const void *data;
	struct settings set;
	bool ok, preview;
	char why[DFQ_ERROR_MAX];
	struct dfq_hist h;
};

void hist_free(struct tui *t)
{
	struct hist_cache *c = t->hist_cache;
	if (c)
		dfq_hist_free(&c->h);
	free(c);
	t->hist_cache = NULL;
}

/* A calibration batch of the session's data (first ACT_BATCH samples), or NULL with why. */
static struct dfq_tensor *calib_batch(struct session *s, char *why, size_t len)
{
	struct dfq_error err;
	if (!s->data) {
		snprintf(why, len, "no data: ':data SPEC' opens some (e.g. data fmnist)");
		return NULL;
	}
	const struct dfq_graph *g = s->model->g;
	if (g->ninputs != 1) {
		snprintf(why, len, "the model has %d inputs; activations need one", g->ninputs);
		return NULL;
	}
	const struct dfq_value *in = &g->values[g->inputs[0]];
	int64_t n = dfq_data_count(s->data, DFQ_SPLIT_CALIB);
	n = n > ACT_BATCH ? ACT_BATCH : n;
	struct dfq_tensor *x = NULL;
	if (n <= 0 || dfq_data_fit(s->data, in->name, &in->shape, &err) != DFQ_OK ||
	    dfq_data_batch(s->data, DFQ_SPLIT_CALIB, 0, n, &x, NULL, &err) != DFQ_OK) {
		snprintf(why, len, "%s", n <= 0 ? "the data has no calibration slice" : err.msg);
		return NULL;
	}
	return x;
}

static void compute(struct tui *t, struct hist_cache *c, int li, int nbins)
{
	struct session *s = t->s;
	struct dfq_model *m = s->model;
	const struct dfq_layer *L = &m->layers[li];
	dfq_hist_free(&c->h);
	c->ok = false;
	c->why[0] = '\0';
	c->preview = false;
	struct dfq_hist_opts o;
	dfq_hist_opts_default(&o);
	o.nbins = nbins;
	struct dfq_error err;
	if (!c->act) {
		struct dfq_qconfig q;
		mc_session_qconfig(s, &q);
		c->preview = !L->quantized;
		c->ok =
		    dfq_model_weight_hist(m, li, c->preview ? &q : NULL, &o, &c->h, &err) == DFQ_OK;
		if (!c->ok)
			snprintf(c->why, sizeof c->why, "%s", err.msg);
		return;
	}
	struct dfq_tensor *x = calib_batch(s, c->why, sizeof c->why);
	if (!x)
		return;
	struct dfq_exec *ex = session_exec(s, &err);
	c->ok = ex && dfq_model_act_hist(m, ex, li, x, &o, &c->h, &err) == DFQ_OK;
	if (!c->ok)
		snprintf(c->why, sizeof c->why, "%s", err.msg);
	dfq_tensor_free(x);
}

/* The histogram of layer li as the pane shows it now. */
static struct hist_cache *hist_of(struct tui *t, int li, int nbins)
{
	struct session *s = t->s;
	const struct dfq_model *m = s->model;
	struct hist_cache *c = t->hist_cache;
	if (!c) {
		c = calloc(1, sizeof *c);
		if (!c)
			return NULL;
		c->layer = -1;
		t->hist_cache = c;
	}
	const struct dfq_layer *L = &m->layers[li];
	const void *w = m->g->values[L->w_vi].init;
	int applied = dfq_model_history_applied(m), count = dfq_model_history_count(m);
	bool same = c->layer == li && c->act == t->hist_act && c->nbins == nbins && c->w == w &&
	            c->wq == L->wq && c->model == m && c->applied == applied && c->count == count &&
	            c->data == s->data && memcmp(&c->set, &s->set, sizeof c->set) == 0;
	if (!same) {
		c->layer = li;
		c->act = t->hist_act;
		c->nbins = nbins;
		c->w = w;
		c->wq = L->wq;
		c->model = m;
		c->applied = applied;
		c->count = count;
		c->data = s->data;
		c->set = s->set;
		compute(t, c, li, nbins);
	}
	return c;
}

static void hist_title(struct pane *p, struct tui *t, char *buf, size_t len)
{
	const struct dfq_model *m = t->s->model;
	if (!m || t->sel >= m->nlayers) {
		snprintf(buf, len, "Error histogram");
		return;
	}
	const struct dfq_layer *L = &m->layers[t->sel];
	const char *name = mc_layer_name(m, t->sel);
	if (t->hist_act)
		snprintf(buf, len, "Activation error: %s A%d (grid steps)", name,
		         L->quantized ? L->q.abits : t->s->set.abits);
	else if (L->quantized)
		snprintf(buf, len, "Error histogram: %s W%d (grid steps)", name, L->q.wbits);
	else
		snprintf(buf, len, "Error histogram: %s float (as W%d would be)", name,
		         t->s->set.wbits);
}

/* Eighths of a cell, for bars that end between rows. */
static const char *const eighths[9] = {" ",      "\u2581", "\u2582", "\u2583", "\u2584",
                                       "\u2585", "\u2586", "\u2587", "\u2588"};

static void hist_draw(struct pane *p, struct tui *t)
{
	WINDOW *w = p->win;
	int inner = p->w - 2;
	struct dfq_model *m = t->s->model;
	if (!m || t->sel >= m->nlayers) {
		draw_text(w, 1, 1, inner, A_NORMAL, false, "no layer selected");
		return;
	}
	/* bins: a column each (two when there is room), between the edge counts */
	int side = 8;
	int avail = inner - 2 * side;
	int nbins = avail >= 80 ? 40 : avail >= 20 ? avail / 2 : avail > 4 ? avail : 4;
	int cw = avail >= 2 * nbins ? 2 : 1;
	struct hist_cache *c = hist_of(t, t->sel, nbins);
	if (!c || !c->ok) {
		draw_text(w, 1, 1, inner, tui_attr(t, C_ERROR), false,
		          c ? c->why : "out of memory");
		draw_text(w, 3, 1, inner, tui_attr(t, C_DIM), false,
		          "w: weights  a: activations on a calibration batch");
		return;
	}
	const struct dfq_hist *h = &c->h;
	int rows = p->h - 5; /* the plot; then the axis, the figures, the keys */
	if (rows < 1)
		rows = 1;
	int64_t top = 1;
	for (int b = 0; b < h->nbins; b++)
		top = h->counts[b] > top ? h->counts[b] : top;
	int x0 = 1 + side + (avail - nbins * cw) / 2;
	for (int b = 0; b < h->nbins; b++) {
		/* height in eighths of a row */
		int e = (int)llround((double)h->counts[b] / (double)top * rows * 8);
		for (int r = 0; r < rows; r++) {
			int y = 1 + rows - 1 - r;
			int fill = e - r * 8;
			fill = fill < 0 ? 0 : fill > 8 ? 8 : fill;
			for (int k = 0; k < cw; k++) {
				if (t->utf8) {
					wattron(w, tui_attr(t, C_BAR2));
					mvwaddstr(w, y, x0 + b * cw + k, eighths[fill]);
					wattroff(w, tui_attr(t, C_BAR2));
				} else {
					mvwaddch(w, y, x0 + b * cw + k, fill >= 4 ? '#' : ' ');
				}
			}
		}
	}
	/* what fell outside the bins: clipping, outliers */
	int attr = h->below || h->above ? tui_attr(t, C_BAD) : tui_attr(t, C_DIM);
	draw_fmt(w, 1 + rows - 1, 1, side, attr, "<%lld", (long long)h->below);
	draw_fmt(w, 1 + rows - 1, x0 + nbins * cw + 1, side, attr, "%lld>", (long long)h->above);
	draw_fmt(w, 1, 1, side, tui_attr(t, C_DIM), "%lld", (long long)top);
	if (rows >= 3) /* what the top of the scale counts */
		draw_text(w, 2, 1, side, tui_attr(t, C_DIM), false, "per bin");
	/* the axis, in grid steps */
	int span = nbins * cw;
	char lo[16], hi[16];
	snprintf(lo, sizeof lo, "%+g", h->lo);
	snprintf(hi, sizeof hi, "%+g", h->hi);
	draw_text(w, 1 + rows, x0, (int)strlen(lo), A_NORMAL, false, lo);
	draw_text(w, 1 + rows, x0 + span / 2, 1, A_NORMAL, false, "0");
	draw_text(w, 1 + rows, x0 + span - (int)strlen(hi), (int)strlen(hi), A_NORMAL, false, hi);
	char buf[256];
	snprintf(buf, sizeof buf, "%lld %s, %lld clipped, mean %+.3f, SQNR %.1f dB%s",
	         (long long)h->n, c->act ? "values" : "weights", (long long)h->clipped, h->mean,
	         h->sqnr_db, c->preview ? " (preview)" : "");
	draw_text(w, 2 + rows, 1, inner, A_NORMAL, true, buf);
	if (c->act)
		snprintf(buf, sizeof buf, "[w] weights  [a] activations on %lld calibration images",
		         (long long)h->samples);
	else
		snprintf(buf, sizeof buf, "[w] weights  [a] activations on a calibration batch");
	draw_text(w, 3 + rows, 1, inner, tui_attr(t, C_DIM), true, buf);
}

const struct pane_ops pane_hist_ops = {
    .name = "Error histogram",
    .title = hist_title,
    .draw = hist_draw,
    .key = NULL,
    .follows_selection = true,
};
