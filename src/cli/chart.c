/* chart.c - charts as data built from the session, and drawn by gnuplot: to a PNG or SVG file,
 * in a window, or as its dumb text (the text renderer without gnuplot is chart-text.c). */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chart.h"
#include "files.h"
#include "gnuplot.h"
#include "model-cmd.h"
#include "sweep.h"

/* --- the data -------------------------------------------------------------------- */

static void series_free(struct chart_series *s)
{
	free(s->name);
	free(s->x);
	free(s->y);
	free(s->lo);
	free(s->hi);
}

void chart_free(struct chart *c)
{
	if (!c)
		return;
	for (int p = 0; p < c->npanels && p < CHART_MAX_PANELS; p++) {
		struct chart_panel *P = &c->panels[p];
		free(P->title);
		free(P->xlabel);
		free(P->ylabel);
		for (int i = 0; i < P->nseries; i++)
			series_free(&P->series[i]);
		free(P->series);
		for (int i = 0; i < P->nmarks; i++)
			free(P->marks[i].name);
		free(P->marks);
		for (int i = 0; i < P->nxtics; i++)
			free(P->xtics[i].label);
		free(P->xtics);
		for (int i = 0; i < P->nytics; i++)
			free(P->ytics[i].label);
		free(P->ytics);
	}
	free(c->title);
	free(c->note);
	memset(c, 0, sizeof *c);
}

const char *chart_kind_name(enum chart_kind k)
{
	switch (k) {
	case CHART_CHANNELS:
		return "channels";
	case CHART_HIST:
		return "hist";
	case CHART_RANGES:
		return "ranges";
	case CHART_DELTAS:
		return "deltas";
	case CHART_SWEEP:
		return "sweep";
	case CHART_SENS:
		return "sensitivity";
	case CHART_CMP:
		return "compare";
	}
	return "?";
}

/* A malloc'd printf; NULL when out of memory. */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	char *s = NULL;
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* Building a chart: the first allocation that fails is remembered. */
struct build {
	struct chart *c;
	bool oom;
};

static void *keep(struct build *b, void *s)
{
	if (!s)
		b->oom = true;
	return s;
}

static struct chart_panel *panel_add(struct build *b, const char *xlabel, const char *ylabel)
{
	struct chart *c = b->c;
	struct chart_panel *P = &c->panels[c->npanels++];
	memset(P, 0, sizeof *P);
	P->xmin = P->xmax = P->ymin = P->ymax = NAN;
	P->xlabel = keep(b, strdup(xlabel));
	P->ylabel = keep(b, strdup(ylabel));
	return P;
}

static struct chart_series *series_add(struct build *b, struct chart_panel *P, char *name,
                                       enum chart_style style, int n)
{
	struct chart_series *a = realloc(P->series, (size_t)(P->nseries + 1) * sizeof *a);
	if (!a) {
		free(name);
		b->oom = true;
		return NULL;
	}
	P->series = a;
	struct chart_series *s = &a[P->nseries++];
	memset(s, 0, sizeof *s);
	s->name = keep(b, name);
	s->style = style;
	s->n = n;
	size_t k = (size_t)(n > 0 ? n : 1);
	bool xy = style == CHART_BOXES || style == CHART_LINE;
	bool range = style == CHART_VBARS || style == CHART_HBARS;
	s->x = style != CHART_HBARS ? keep(b, calloc(k, sizeof(double))) : NULL;
	s->y = xy || style == CHART_HBARS ? keep(b, calloc(k, sizeof(double))) : NULL;
	s->lo = range ? keep(b, calloc(k, sizeof(double))) : NULL;
	s->hi = range ? keep(b, calloc(k, sizeof(double))) : NULL;
	return b->oom ? NULL : s;
}

static void mark_add(struct build *b, struct chart_panel *P, char *name, bool band, double lo,
                     double hi)
{
	struct chart_mark *a = realloc(P->marks, (size_t)(P->nmarks + 1) * sizeof *a);
	if (!a) {
		free(name);
		b->oom = true;
		return;
	}
	P->marks = a;
	a[P->nmarks++] = (struct chart_mark){keep(b, name), band, lo, hi};
}

static void tic_add(struct build *b, struct chart_tic **tics, int *n, double at, char *label)
{
	struct chart_tic *a = realloc(*tics, (size_t)(*n + 1) * sizeof *a);
	if (!a) {
		free(label);
		b->oom = true;
		return;
	}
	*tics = a;
	a[(*n)++] = (struct chart_tic){at, keep(b, label)};
}

/* The end of a builder: out of memory frees everything. */
static bool build_end(struct build *b, char *why, size_t len)
{
	if (!b->oom)
		return true;
	chart_free(b->c);
	snprintf(why, len, "out of memory building the chart");
	return false;
}

/* A model's name for titles: its file name without directory and ".onnx". */
static void path_name(const char *path, char *buf, size_t len)
{
	const char *p = path ? path : "model";
	const char *slash = strrchr(p, '/');
	p = slash ? slash + 1 : p;
	size_t n = strlen(p);
	if (n > 5 && strcasecmp(p + n - 5, ".onnx") == 0)
		n -= 5;
	snprintf(buf, len, "%.*s", (int)n, p);
}

/* The session's model's name for titles. */
static void model_name(const struct session *s, char *buf, size_t len)
{
	path_name(s->model_path, buf, len);
}

static const char *bits_text(const struct dfq_layer *L, char *buf, size_t len)
{
	if (!L->quantized)
		snprintf(buf, len, "float weights (not quantized)");
	else
		snprintf(buf, len, "W%d %s %s", L->q.wbits,
		         L->q.scheme == DFQ_QSCHEME_SYM ? "sym" : "asym",
		         L->q.per_channel ? "per-channel" : "per-tensor");
	return buf;
}

/* Largest over smallest channel range (inf when some channel is constant). */
static double spread(const float *lo, const float *hi, int64_t n)
{
	double mn = INFINITY, mx = 0.0;
	for (int64_t i = 0; i < n; i++) {
		double r = (double)hi[i] - lo[i];
		mn = r < mn ? r : mn;
		mx = r > mx ? r : mx;
	}
	return mn > 0.0 ? mx / mn : INFINITY;
}

/* --- builders ------------------------------------------------------------------------- */

/* One panel of channel ranges. */
static void channel_panel(struct build *b, const struct dfq_layer *L, const float *lo,
                          const float *hi, char *title, char *name)
{
	struct chart_panel *P =
	    panel_add(b, "output channel", "weight value (min..max per channel)");
	P->title = title; /* NULL: none (a failed fmt is caught by the caller's keep) */
	P->zero_line = true;
	P->xmin = -0.5;
	P->xmax = (double)L->cout - 0.5;
	struct chart_series *s = series_add(b, P, name, CHART_VBARS, (int)L->cout);
	if (!s)
		return;
	s->width = 0.7;
	for (int64_t o = 0; o < L->cout; o++) {
		s->x[o] = (double)o;
		s->lo[o] = lo[o];
		s->hi[o] = hi[o];
	}
}

bool chart_channels(struct session *s, int li, struct chart *c, char *why, size_t len)
{
	memset(c, 0, sizeof *c);
	struct dfq_model *m = s->model;
	if (!m || li < 0 || li >= m->nlayers)
		return snprintf(why, len, "no such layer"), false;
	const struct dfq_layer *L = &m->layers[li];
	struct dfq_error err;
	float *lo = malloc((size_t)L->cout * sizeof *lo),
	      *hi = malloc((size_t)L->cout * sizeof *hi);
	float *blo = malloc((size_t)L->cout * sizeof *blo),
	      *bhi = malloc((size_t)L->cout * sizeof *bhi);
	int step = -1;
	struct dfq_tensor *before = dfq_model_weights_before(m, li, &step);
	bool ok = lo && hi && blo && bhi;
	if (!ok)
		snprintf(why, len, "out of memory building the chart");
	if (ok && dfq_model_channel_ranges(m, li, lo, hi, &err) != DFQ_OK)
		ok = (snprintf(why, len, "%s", err.msg), false);
	if (ok && before && dfq_model_channel_ranges_of(m, li, before, blo, bhi, &err) != DFQ_OK)
		ok = (snprintf(why, len, "%s", err.msg), false);
	struct dfq_history_entry e = {0};
	if (ok && before && dfq_model_history_entry(m, step, &e, &err) != DFQ_OK)
		ok = (snprintf(why, len, "%s", err.msg), false);
	if (ok) {
		struct build b = {c, false};
		char mn[128], bits[64];
		model_name(s, mn, sizeof mn);
		bits_text(L, bits, sizeof bits);
		const char *name = mc_layer_name(m, li);
		c->kind = CHART_CHANNELS;
		if (before) {
			c->title =
			    keep(&b, fmt("%s: %s, weight range of each output channel before and "
			                 "after step %d '%s' (%s now)",
			                 mn, name, step + 1, e.label, bits));
			channel_panel(&b, L, blo, bhi,
			              keep(&b, fmt("before step %d '%s'", step + 1, e.label)),
			              fmt("before '%s'", e.label));
			channel_panel(&b, L, lo, hi, keep(&b, fmt("after it (now, %s)", bits)),
			              fmt("after '%s'", e.label));
			c->note = keep(&b, fmt("%lld channels, each panel on its own scale; range "
			                       "spread (largest / smallest channel range) %.4g "
			                       "before, %.4g after",
			                       (long long)L->cout, spread(blo, bhi, L->cout),
			                       spread(lo, hi, L->cout)));
		} else {
			c->title =
			    keep(&b, fmt("%s: %s, weight range of each output channel (%s; no "
			                 "applied step changed these weights)",
			                 mn, name, bits));
			channel_panel(&b, L, lo, hi, NULL, strdup("now (as loaded)"));
			c->note =
			    keep(&b, fmt("%lld channels; range spread (largest / smallest channel "
			                 "range) %.4g",
			                 (long long)L->cout, spread(lo, hi, L->cout)));
		}
		ok = build_end(&b, why, len);
	}
	dfq_tensor_free(before);
	free(lo);
	free(hi);
	free(blo);
	free(bhi);
	return ok;
}

bool chart_hist(struct session *s, const struct dfq_hist *h, struct chart *c, char *why, size_t len)
{
	memset(c, 0, sizeof *c);
	struct dfq_model *m = s->model;
	if (!m || h->layer < 0 || h->layer >= m->nlayers || h->nbins < 1)
		return snprintf(why, len, "no histogram to chart"), false;
	struct build b = {c, false};
	char mn[128], step[96];
	model_name(s, mn, sizeof mn);
	const char *name = mc_layer_name(m, h->layer);
	if (h->ngrids > 1)
		snprintf(step, sizeof step, "steps %.4g to %.4g, a grid per channel", h->step_min,
		         h->step_max);
	else
		snprintf(step, sizeof step, "step %.4g", h->step);
	const char *scheme = h->scheme == DFQ_QSCHEME_SYM ? "sym" : "asym";
	c->kind = CHART_HIST;
	struct chart_panel *P;
	if (h->kind == DFQ_HIST_WEIGHTS) {
		c->title =
		    keep(&b, fmt("%s: %s, weight quantization error (Q(W) - W) in grid steps; "
		                 "W%d %s %s, %s; data-free",
		                 mn, name, h->bits, scheme,
		                 h->per_channel ? "per-channel" : "per-tensor", step));
		P = panel_add(&b, "quantization error (grid steps)", "weights (count)");
	} else {
		c->title =
		    keep(&b, fmt("%s: %s, output activation quantization error (fq(y) - y) in "
		                 "grid steps; A%d %s, %s, grid [%.4g, %.4g]; data: first "
		                 "calibration batch (%lld samples)",
		                 mn, name, h->bits, scheme, step, h->grid_lo, h->grid_hi,
		                 (long long)h->samples));
		P = panel_add(&b, "quantization error (grid steps)", "activation values (count)");
	}
	P->xmin = h->lo;
	P->xmax = h->hi;
	P->ymin = 0.0;
	double w = (h->hi - h->lo) / h->nbins;
	if (h->lo <= 0.5 && h->hi >= -0.5 && !(h->lo >= -0.5 && h->hi <= 0.5))
		mark_add(&b, P, strdup("rounding alone: [-0.5, +0.5] step"), true, -0.5, 0.5);
	else
		mark_add(&b, P, strdup("[-0.5, +0.5] step: rounding alone"), true, -0.5, 0.5);
	struct chart_series *sr = series_add(&b, P, strdup("count per bin"), CHART_BOXES, h->nbins);
	if (sr) {
		sr->width = w;
		for (int i = 0; i < h->nbins; i++) {
			sr->x[i] = h->lo + (i + 0.5) * w;
			sr->y[i] = (double)h->counts[i];
		}
	}
	c->note = keep(
	    &b, fmt("%lld %s: %lld below %.3g, %lld above %.3g, %lld clipped, %lld exact "
	            "(on the grid); mean %.3g steps, max |error| %.3g steps; SQNR %.2f dB",
	            (long long)h->n, h->kind == DFQ_HIST_WEIGHTS ? "weights" : "values",
	            (long long)h->below, h->lo, (long long)h->above, h->hi, (long long)h->clipped,
	            (long long)h->exact, h->mean, h->max_abs, h->sqnr_db));
	return build_end(&b, why, len);
}

/* The data range a point has from data: the session's source when it is a
 * data source, else minmax. */
static const struct dfq_range *data_range(const struct dfq_model *m, const struct dfq_apoint *p,
                                          dfq_range_src *src)
{
	*src = m->range_src == DFQ_RANGE_GLOBAL || m->range_src == DFQ_RANGE_PERCENTILE
	           ? m->range_src
	           : DFQ_RANGE_MINMAX;
	return *src == DFQ_RANGE_GLOBAL       ? &p->global
	       : *src == DFQ_RANGE_PERCENTILE ? &p->pct
	                                      : &p->minmax;
}

bool chart_ranges(struct session *s, struct chart *c, char *why, size_t len)
{
	memset(c, 0, sizeof *c);
	struct dfq_model *m = s->model;
	if (!m || m->npoints == 0)
		return snprintf(why, len, "the model has no activation tensors to chart"), false;
	struct build b = {c, false};
	int np = m->npoints, nbn = 0, ndata = 0, ngrid = 0;
	int64_t samples = 0;
	dfq_range_src src = DFQ_RANGE_MINMAX;
	for (int i = 0; i < np; i++) {
		const struct dfq_apoint *p = &m->points[i];
		nbn += p->bn.valid;
		ndata += data_range(m, p, &src)->valid;
		ngrid += p->enabled;
		samples = p->nsamples > samples ? p->nsamples : samples;
	}
	char mn[128], data[128], grid[96];
	model_name(s, mn, sizeof mn);
	if (ndata)
		snprintf(data, sizeof data, "data: %s over %lld samples%s", dfq_range_src_name(src),
		         (long long)samples,
		         m->data_stale ? " (stale: measured before a change)" : "");
	else
		snprintf(data, sizeof data, "no data ranges ('measure data')");
	if (ngrid)
		snprintf(grid, sizeof grid, "the grid in use at %d of %d tensors", ngrid, np);
	else
		snprintf(grid, sizeof grid, "no grid in use (nothing quantized)");
	c->kind = CHART_RANGES;
	c->rows = np;
	c->title =
	    keep(&b, fmt("%s: activation range of each tensor: BN (data-free, n = %g), %s; %s", mn,
	                 m->n_sigma, data, grid));
	struct chart_panel *P =
	    panel_add(&b, "activation value", "activation tensor (graph order)");
	P->ymin = -0.7;
	P->ymax = np - 0.3;
	P->zero_line = false;
	struct chart_series *sb =
	    series_add(&b, P, fmt("BN range (data-free, n = %g)", m->n_sigma), CHART_HBARS, nbn);
	struct chart_series *sd =
	    ndata ? series_add(&b, P, fmt("data range (%s)", dfq_range_src_name(src)), CHART_HBARS,
	                       ndata)
	          : NULL;
	struct chart_series *sg =
	    ngrid ? series_add(&b, P, strdup("grid in use (its representable range)"), CHART_HBARS,
	                       ngrid)
	          : NULL;
	if (b.oom)
		return build_end(&b, why, len);
	/* adding a series may move the others: find them again */
	sb = &P->series[0];
	sd = ndata ? &P->series[1] : NULL;
	sg = ngrid ? &P->series[ndata ? 2 : 1] : NULL;
	if (sb) {
		sb->width = 0.26;
		sb->offset = 0.28;
	}
	if (sd) {
		sd->width = 0.26;
		sd->offset = 0.0;
	}
	if (sg) {
		sg->width = 0.26;
		sg->offset = -0.28;
		sg->outline = true;
	}
	int kb = 0, kd = 0, kg = 0;
	for (int i = 0; i < np; i++) {
		const struct dfq_apoint *p = &m->points[i];
		double row = np - 1 - i;
		char label[160];
		mc_point_label(m, p, label, sizeof label);
		if (p->enabled)
			tic_add(&b, &P->ytics, &P->nytics, row, fmt("%s (A%d)", label, p->bits));
		else
			tic_add(&b, &P->ytics, &P->nytics, row, strdup(label));
		if (p->bn.valid && sb) {
			sb->y[kb] = row;
			sb->lo[kb] = p->bn.lo;
			sb->hi[kb++] = p->bn.hi;
		}
		const struct dfq_range *dr = data_range(m, p, &src);
		if (dr->valid && sd) {
			sd->y[kd] = row;
			sd->lo[kd] = dr->lo;
			sd->hi[kd++] = dr->hi;
		}
		if (p->enabled && sg) {
			sg->y[kg] = row;
			sg->lo[kg] = (double)(p->qp.qmin - p->qp.zero_point) * p->qp.scale;
			sg->hi[kg++] = (double)(p->qp.qmax - p->qp.zero_point) * p->qp.scale;
		}
	}
	if (nbn + ndata + ngrid == 0) {
		chart_free(c);
		return snprintf(why, len,
		                "no activation tensor has a range yet: the model has no BatchNorm "
		                "statistics; 'measure data' measures them"),
		       false;
	}
	c->note = keep(&b, fmt("%d tensors: %d with a BN range, %d with a data range, %d quantized",
	                       np, nbn, ndata, ngrid));
	return build_end(&b, why, len);
}

bool chart_deltas(struct session *s, struct chart *c, char *why, size_t len)
{
	memset(c, 0, sizeof *c);
	struct dfq_model *m = s->model;
	if (!m)
		return snprintf(why, len, CLI_MSG_NO_MODEL), false;
	int applied = dfq_model_history_applied(m);
	int npts = s->fp32.valid ? 1 : 0;
	int64_t n = s->fp32.valid ? s->fp32.n : 0;
	bool mixed = false;
	for (int i = 0; i < applied; i++) {
		const struct step_tag *t = session_step_tag(s, i);
		if (t && t->eval.valid) {
			mixed = mixed || (n && t->eval.n != n);
			n = n ? n : t->eval.n;
			npts++;
		}
	}
	if (npts == 0)
		return snprintf(
		           why, len,
		           "no accuracy to plot yet: 'eval' after the steps you want to compare "
		           "(and once before them, for the FP32 level)"),
		       false;
	struct build b = {c, false};
	char mn[128], fp[64] = "FP32 not evaluated";
	model_name(s, mn, sizeof mn);
	if (s->fp32.valid)
		snprintf(fp, sizeof fp, "FP32 %.2f%%", 100.0 * s->fp32.top1);
	c->kind = CHART_DELTAS;
	c->title = keep(&b, fmt("%s: top-1 accuracy after each step, on %lld images%s (%s)", mn,
	                        (long long)n, mixed ? " or other counts" : "", fp));
	struct chart_panel *P =
	    panel_add(&b, "step (numbered as 'steps' lists them)", "top-1 accuracy (%)");
	P->xmin = -0.5;
	P->xmax = applied + 0.5;
	struct chart_series *sr =
	    series_add(&b, P, strdup("top-1 after the step (evaluated ones)"), CHART_LINE, npts);
	if (!sr)
		return build_end(&b, why, len);
	int k = 0;
	if (s->fp32.valid) {
		sr->x[k] = 0.0;
		sr->y[k++] = 100.0 * s->fp32.top1;
	}
	tic_add(&b, &P->xtics, &P->nxtics, 0.0, strdup("0: as loaded"));
	for (int i = 0; i < applied; i++) {
		struct dfq_history_entry e;
		if (dfq_model_history_entry(m, i, &e, NULL) != DFQ_OK)
			continue;
		tic_add(&b, &P->xtics, &P->nxtics, i + 1.0, fmt("%d: %.28s", i + 1, e.label));
		const struct step_tag *t = session_step_tag(s, i);
		if (t && t->eval.valid && k < npts) {
			sr->x[k] = i + 1.0;
			sr->y[k++] = 100.0 * t->eval.top1;
		}
	}
	if (s->fp32.valid)
		mark_add(&b, P, fmt("FP32 %.2f%% (the model as loaded)", 100.0 * s->fp32.top1),
		         false, 100.0 * s->fp32.top1, 0.0);
	/* room above and below the points for their values */
	double lo = INFINITY, hi = -INFINITY;
	for (int i = 0; i < k; i++) {
		lo = fmin(lo, sr->y[i]);
		hi = fmax(hi, sr->y[i]);
	}
	if (s->fp32.valid) {
		lo = fmin(lo, 100.0 * s->fp32.top1);
		hi = fmax(hi, 100.0 * s->fp32.top1);
	}
	double pad = fmax(1.0, 0.1 * (hi - lo));
	P->ymin = fmax(0.0, lo - pad);
	P->ymax = hi + pad;
	if (mixed)
		c->note = keep(&b, strdup("the evals counted different numbers of images: compare "
		                          "with care"));
	return build_end(&b, why, len);
}

bool chart_sweep(struct session *s, struct chart *c, char *why, size_t len)
{
	memset(c, 0, sizeof *c);
	const struct sweep_result *r = s->sweep;
	if (!r || r->ndone == 0)
		return snprintf(why, len,
		                "no sweep has been run, so there is nothing to plot (e.g. 'sweep "
		                "wbits 2..8 --n 1000' first)"),
		       false;
	struct build b = {c, false};
	char mn[128], pipe[160] = "";
	path_name(r->model, mn, sizeof mn);
	size_t used = 0;
	for (int i = 0; i < r->nsteps && used < sizeof pipe; i++)
		used += (size_t)snprintf(pipe + used, sizeof pipe - used, "%s%s", i ? "; " : "",
		                         r->steps[i]);
	if (used >= sizeof pipe)
		snprintf(pipe + sizeof pipe - 4, 4, "...");
	static const char *const what[] = {"weight bits", "activation bits", "weight clip value X"};
	static const char *const xl[] = {
	    "weight bits (quantize --wbits; pinned layers keep theirs)",
	    "activation bits (quantize --abits; pinned layers keep theirs)",
	    "weight clip value X (weights clipped to [-X, X])"};
	c->kind = CHART_SWEEP;
	c->title = keep(&b, fmt("%s: top-1 accuracy against %s, on %lld images (FP32 %.2f%%); "
	                        "steps: %s",
	                        mn, what[r->kind], (long long)r->n, 100.0 * r->fp32.top1,
	                        r->nsteps ? pipe : "none"));
	struct chart_panel *P = panel_add(&b, xl[r->kind], "top-1 accuracy (%)");
	struct chart_series *sr =
	    series_add(&b, P, strdup("top-1 after the steps, per value"), CHART_LINE, r->ndone);
	if (!sr)
		return build_end(&b, why, len);
	double lo = 100.0 * r->fp32.top1, hi = lo;
	for (int i = 0; i < r->ndone; i++) {
		const struct sweep_point *p = &r->pts[i];
		sr->x[i] = p->value;
		sr->y[i] = p->n ? 100.0 * (double)p->top1 / (double)p->n : 0.0;
		lo = fmin(lo, sr->y[i]);
		hi = fmax(hi, sr->y[i]);
		if (r->kind != SWEEP_CLIP)
			tic_add(&b, &P->xtics, &P->nxtics, p->value,
			        fmt("%s%d", r->kind == SWEEP_WBITS ? "W" : "A", (int)p->value));
	}
	double x0 = r->pts[0].value, x1 = r->pts[r->ndone - 1].value;
	double xpad = x1 > x0 ? 0.05 * (x1 - x0) : 0.5;
	P->xmin = x0 - xpad;
	P->xmax = x1 + xpad;
	mark_add(&b, P, fmt("FP32 %.2f%% (the model as loaded)", 100.0 * r->fp32.top1), false,
	         100.0 * r->fp32.top1, 0.0);
	double pad = fmax(1.0, 0.1 * (hi - lo));
	P->ymin = fmax(0.0, lo - pad);
	P->ymax = fmin(100.0, hi + pad);
	if (r->interrupted)
		c->note =
		    keep(&b, fmt("interrupted: %d of %d points measured", r->ndone, r->nplanned));
	return build_end(&b, why, len);
}

/* One HBARS series on P: a bar from 0 to v[i] in row rows - 1 - i for every finite v[i]. */
static void hbars_from_zero(struct build *b, struct chart_panel *P, char *name, const double *v,
                            int n, double width, double offset, bool outline)
{
	int k = 0;
	for (int i = 0; i < n; i++)
		k += isfinite(v[i]);
	struct chart_series *sr = series_add(b, P, name, CHART_HBARS, k);
	if (!sr)
		return;
	sr->width = width;
	sr->offset = offset;
	sr->outline = outline;
	k = 0;
	for (int i = 0; i < n; i++) {
		if (!isfinite(v[i]))
			continue;
		sr->y[k] = n - 1 - i;
		sr->lo[k] = fmin(0.0, v[i]);
		sr->hi[k++] = fmax(0.0, v[i]);
	}
}

/* Row labels (the first row at the top) on P's y axis. */
static void row_tics(struct build *b, struct chart_panel *P, char *const *labels, int n)
{
	P->ymin = -0.7;
	P->ymax = n - 0.3;
	for (int i = 0; i < n; i++)
		tic_add(b, &P->ytics, &P->nytics, n - 1 - i, strdup(labels[i]));
}

bool chart_sensitivity(struct session *s, struct chart *c, char *why, size_t len)
{
	memset(c, 0, sizeof *c);
	const struct dfq_sens_result *r = s->sens;
	struct dfq_model *m = s->model;
	if (!m)
		return snprintf(why, len, CLI_MSG_NO_MODEL), false;
	if (!r)
		return snprintf(
		           why, len,
		           "no sensitivity measured on this model yet: run 'sensitivity' first"),
		       false;
	int n = r->nrows;
	double *v = calloc((size_t)(n ? n : 1) * 6, sizeof *v);
	char **labels = calloc((size_t)(n ? n : 1), sizeof *labels);
	struct build b = {c, !v || !labels};
	static const char *const kname[DFQ_SENS_KINDS] = {"only its weights quantized",
	                                                  "only its output activation quantized",
	                                                  "both (as quantize makes it)"};
	for (int i = 0; v && labels && i < n; i++) {
		const struct dfq_sens_row *row = &r->rows[i];
		labels[i] =
		    keep(&b, strdup(row->layer < m->nlayers ? mc_layer_name(m, row->layer) : "?"));
		for (int k = 0; k < DFQ_SENS_KINDS; k++) {
			v[k * n + i] = 100.0 * (row->top1[k] - r->top1_fp32);
			v[(3 + k) * n + i] = row->sqnr_db[k];
		}
	}
	char mn[128], cfg[96];
	model_name(s, mn, sizeof mn);
	mc_qconfig_str(&r->q, cfg, sizeof cfg);
	c->kind = CHART_SENS;
	c->rows = n;
	c->title =
	    keep(&b, fmt("%s: each layer quantized alone (%s, the rest FP32) on %lld images; "
	                 "FP32 top-1 %.2f%%",
	                 mn, cfg, (long long)r->n, 100.0 * r->top1_fp32));
	const double off[DFQ_SENS_KINDS] = {0.28, 0.0, -0.28};
	struct chart_panel *P = b.oom
	                            ? NULL
	                            : panel_add(&b, "top-1 change against FP32 (percentage points)",
	                                        "layer (graph order)");
	for (int k = 0; P && k < DFQ_SENS_KINDS && !b.oom; k++)
		hbars_from_zero(&b, P, strdup(kname[k]), v + k * n, n, 0.26, off[k],
		                k == DFQ_SENS_BOTH);
	if (P && !b.oom) {
		P->zero_line = true;
		row_tics(&b, P, labels, n);
	}
	struct chart_panel *Q =
	    b.oom ? NULL
	          : panel_add(&b, "SQNR of the logits against FP32's (dB; higher is better)",
	                      "layer (graph order)");
	for (int k = 0; Q && k < DFQ_SENS_KINDS && !b.oom; k++)
		hbars_from_zero(&b, Q, strdup(kname[k]), v + (3 + k) * n, n, 0.26, off[k],
		                k == DFQ_SENS_BOTH);
	if (Q && !b.oom) {
		row_tics(&b, Q, labels, n);
		/* from 0, unless a layer made the logits noisier than their signal (SQNR < 0) */
		bool below = false;
		for (int i = 3 * n; v && i < 6 * n; i++)
			below |= isfinite(v[i]) && v[i] < 0.0;
		if (below)
			Q->zero_line = true;
		else
			Q->xmin = 0.0;
	}
	c->note =
	    keep(&b, strdup("bars left of 0 lost accuracy; a missing bar was not measured (no "
	                    "activation grid, or a layer quantize skips)"));
	for (int i = 0; labels && i < n; i++)
		free(labels[i]);
	free(labels);
	free(v);
	return build_end(&b, why, len);
}

bool chart_compare(struct session *s, struct chart *c, char *why, size_t len)
{
	memset(c, 0, sizeof *c);
	const struct dfq_cmp_result *r = s->cmp;
	struct dfq_model *m = s->model;
	if (!m)
		return snprintf(why, len, CLI_MSG_NO_MODEL), false;
	if (!r)
		return snprintf(why, len,
		                "no comparison made on this model yet: run 'compare' first"),
		       false;
	int n = r->nrows;
	double *v = calloc((size_t)(n ? n : 1) * 2, sizeof *v);
	char **labels = calloc((size_t)(n ? n : 1), sizeof *labels);
	struct build b = {c, !v || !labels};
	for (int i = 0; v && labels && i < n; i++) {
		const struct dfq_cmp_row *row = &r->rows[i];
		const char *name =
		    row->layer >= 0 && row->layer < m->nlayers
		        ? mc_layer_name(m, row->layer)
		        : (row->vi < m->g->nvalues ? m->g->values[row->vi].name : "?");
		labels[i] = keep(&b, fmt("%s%s", name, row->quantized ? "" : " (float)"));
		v[i] = row->sqnr_db;
		v[n + i] = row->max_abs;
	}
	char mn[128];
	model_name(s, mn, sizeof mn);
	c->kind = CHART_CMP;
	c->rows = n;
	c->title = keep(&b, fmt("%s: each layer's output, fake-quantized against FP32, on %lld "
	                        "images (top-1 %.2f%% FP32, %.2f%% quantized)",
	                        mn, (long long)r->n, 100.0 * r->top1_fp32, 100.0 * r->top1_quant));
	struct chart_panel *P = b.oom ? NULL
	                              : panel_add(&b, "SQNR against FP32 (dB; higher is better)",
	                                          "layer output (graph order)");
	if (P)
		hbars_from_zero(&b, P, strdup("SQNR of the output as the next layer reads it"), v,
		                n, 0.6, 0.0, false);
	if (P && !b.oom) {
		row_tics(&b, P, labels, n);
		P->zero_line = true;
	}
	struct chart_panel *Q = b.oom
	                            ? NULL
	                            : panel_add(&b, "largest |quantized - FP32| (activation units)",
	                                        "layer output (graph order)");
	if (Q)
		hbars_from_zero(&b, Q, strdup("max abs error"), v + n, n, 0.6, 0.0, true);
	if (Q && !b.oom) {
		row_tics(&b, Q, labels, n);
		Q->xmin = 0.0;
	}
	int inf = 0;
	for (int i = 0; v && i < n; i++)
		inf += isinf(v[i]) != 0;
	if (inf)
		c->note = keep(
		    &b, fmt("%d output%s equal FP32 exactly (no bar)", inf, inf == 1 ? "" : "s"));
	for (int i = 0; labels && i < n; i++)
		free(labels[i]);
	free(labels);
	free(v);
	return build_end(&b, why, len);
}

/* --- gnuplot commands ------------------------------------------------------------------- */

struct out {
	char *p;
	size_t n, cap;
	bool oom;
};

static void put(struct out *o, const char *f, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *f, ...)
{
	if (o->oom)
		return;
	va_list ap;
	for (;;) {
		va_start(ap, f);
		int k = vsnprintf(o->p ? o->p + o->n : NULL, o->p ? o->cap - o->n : 0, f, ap);
		va_end(ap);
		if (k < 0) {
			o->oom = true;
			return;
		}
		if (o->p && o->n + (size_t)k < o->cap) {
			o->n += (size_t)k;
			return;
		}
		size_t cap = o->cap ? o->cap * 2 : 8192;
		while (cap < o->n + (size_t)k + 1)
			cap *= 2;
		char *q = realloc(o->p, cap);
		if (!q) {
			o->oom = true;
			return;
		}
		o->p = q;
		o->cap = cap;
	}
}

static const char *const colours[] = {"#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee"};

/* A number for gnuplot (%.9g; NaN and infinities as NaN). */
static const char *num(double x, char *buf)
{
	if (isfinite(x))
		snprintf(buf, 32, "%.9g", x);
	else
		snprintf(buf, 32, "NaN");
	return buf;
}

/* What text targets show of a labelled tic: up to its first ':'. */
static void tic_text(const char *label, bool brief, char *buf, size_t len)
{
	const char *colon = brief ? strchr(label, ':') : NULL;
	snprintf(buf, len, "%.*s", colon ? (int)(colon - label) : (int)strlen(label), label);
}

static void range_cmd(struct out *o, const char *axis, double lo, double hi)
{
	char a[32], b[32];
	put(o, "set %srange [%s:%s]\n", axis, isnan(lo) ? "*" : num(lo, a),
	    isnan(hi) ? "*" : num(hi, b));
}

static void panel_gnuplot(struct out *o, const struct chart *c, int pi, enum chart_target to)
{
	const struct chart_panel *P = &c->panels[pi];
	char q[2048], a[32], b[32], d[32];
	bool text = to == CHART_TO_TEXT;
	/* the data */
	for (int si = 0; si < P->nseries; si++) {
		const struct chart_series *s = &P->series[si];
		put(o, "$P%dS%d << EOD\n", pi, si);
		for (int i = 0; i < s->n; i++) {
			switch (s->style) {
			case CHART_VBARS:
				put(o, "%s %s %s\n", num(s->x[i], a), num(s->lo[i], b),
				    num(s->hi[i], d));
				break;
			case CHART_HBARS:
				if (text) /* a segment per bar: lines keep each series' character */
					put(o, "%s %s\n%s %s\n\n", num(s->lo[i], a),
					    num(s->y[i] + s->offset, b), num(s->hi[i], d),
					    num(s->y[i] + s->offset, b));
				else
					put(o, "%s %s %s\n", num(s->y[i], a), num(s->lo[i], b),
					    num(s->hi[i], d));
				break;
			case CHART_BOXES:
			case CHART_LINE:
				put(o, "%s %s\n", num(s->x[i], a), num(s->y[i], b));
				break;
			}
		}
		put(o, "EOD\n");
	}
	/* the settings of this panel */
	put(o, "unset object\nunset arrow\nunset label\nset xtics autofreq norotate\n"
	       "set ytics autofreq\n");
	/* text has no room for grid lines or a rotated y label: the x label says both */
	put(o, text ? "unset grid\n" : "set grid\n");
	if (c->npanels > 1 && P->nseries <= 1)
		put(o, "unset key\n"); /* the panels' titles say what each shows */
	else
		put(o, "set key below center horizontal\n");
	if (c->npanels > 1)
		put(o, "set title %s\n", gnuplot_quote(P->title ? P->title : "", q, sizeof q));
	if (text) {
		put(o, "unset xlabel\nunset ylabel\n"); /* the title says */
	} else {
		put(o, "set xlabel %s\n", gnuplot_quote(P->xlabel, q, sizeof q));
		put(o, "set ylabel %s\n", gnuplot_quote(P->ylabel, q, sizeof q));
	}
	range_cmd(o, "x", P->xmin, P->xmax);
	range_cmd(o, "y", P->ymin, P->ymax);
	/* zero of the values: y = 0, or x = 0 where bars run sideways (rows are y) */
	bool sideways = P->nseries > 0 && P->series[0].style == CHART_HBARS;
	put(o, "unset xzeroaxis\nunset yzeroaxis\n");
	if (P->zero_line)
		put(o, "set %czeroaxis lt -1\n", sideways ? 'y' : 'x');
	for (int i = 0; i < P->nxtics; i++) {
		char t[256];
		tic_text(P->xtics[i].label, text, t, sizeof t);
		put(o, "set xtics %s(%s %s)\n", i ? "add " : "", gnuplot_quote(t, q, sizeof q),
		    num(P->xtics[i].at, a));
	}
	if (P->nxtics && !text)
		put(o, "set xtics rotate by -30 left\n");
	for (int i = 0; i < P->nytics; i++)
		put(o, "set ytics %s(%s %s)\n", i ? "add " : "",
		    gnuplot_quote(P->ytics[i].label, q, sizeof q), num(P->ytics[i].at, a));
	if (P->nytics)
		put(o, "set ytics font ',8'\nset grid noytics\n");
	for (int i = 0; i < P->nmarks; i++) {
		const struct chart_mark *k = &P->marks[i];
		if (!k->band)
			continue;
		if (!text)
			put(o,
			    "set object %d rect from %s, graph 0 to %s, graph 1 behind "
			    "fc rgb '#dce6f5' fs solid 1.0 noborder\n",
			    i + 1, num(k->lo, a), num(k->hi, b));
		/* its edges, where they are not the plot's own */
		if (isnan(P->xmin) || k->lo > P->xmin)
			put(o,
			    "set arrow from %s, graph 0 to %s, graph 1 nohead dt 2 "
			    "lc rgb '#5577aa'\n",
			    num(k->lo, a), num(k->lo, a));
		if (isnan(P->xmax) || k->hi < P->xmax)
			put(o,
			    "set arrow from %s, graph 0 to %s, graph 1 nohead dt 2 "
			    "lc rgb '#5577aa'\n",
			    num(k->hi, a), num(k->hi, a));
	}
	/* the plot */
	put(o, "plot ");
	int nplot = 0;
	/* marks first: the data is drawn over them */
	for (int i = 0; i < P->nmarks; i++) {
		const struct chart_mark *k = &P->marks[i];
		gnuplot_quote(k->name, q, sizeof q);
		if (k->band && !text)
			put(o, "%skeyentry with boxes fs solid 1.0 fc rgb '#dce6f5' title %s",
			    nplot++ ? ", " : "", q);
		else if (k->band)
			put(o, "%skeyentry with lines dt 2 lc rgb '#5577aa' title %s",
			    nplot++ ? ", " : "", q);
		else
			put(o, "%s%s with lines dt 2 lw 2 lc rgb '#c00000' title %s",
			    nplot++ ? ", " : "", num(k->lo, a), q);
	}
	for (int si = 0; si < P->nseries; si++) {
		const struct chart_series *s = &P->series[si];
		/* the panels of one series set (sensitivity, compare) keep their colours */
		const char *col = colours[(si + (c->kind == CHART_CHANNELS ? pi : 0)) % 5];
		if (s->n == 0)
			continue;
		gnuplot_quote(s->name, q, sizeof q);
		put(o, "%s$P%dS%d ", nplot++ ? ", " : "", pi, si);
		switch (s->style) {
		case CHART_VBARS:
			if (text) /* one column per bar */
				put(o,
				    "using 1:2:(0):($3-$2) with vectors nohead lw 2 lc rgb '%s' "
				    "title %s",
				    col, q);
			else
				put(o,
				    "using 1:(($2+$3)/2):($1-%s):($1+%s):2:3 with boxxyerror fs "
				    "solid 0.7 lc rgb '%s' title %s",
				    num(s->width / 2, a), num(s->width / 2, b), col, q);
			break;
		case CHART_BOXES:
			put(o,
			    "using 1:2:(%s) with boxes fs solid 0.7 border lc rgb '#333333' "
			    "fc rgb '%s' title %s",
			    num(s->width, a), col, q);
			break;
		case CHART_HBARS:
			if (text) { /* one row per bar */
				put(o, "using 1:2 with lines lc rgb '%s' title %s", col, q);
				break;
			}
			put(o,
			    "using (($2+$3)/2):($1+%s):2:3:($1+%s):($1+%s) with boxxyerror %s "
			    "lc rgb '%s' title %s",
			    num(s->offset, a), num(s->offset - s->width / 2, b),
			    num(s->offset + s->width / 2, d),
			    s->outline ? "fs empty border lw 2" : "fs solid 0.6", col, q);
			break;
		case CHART_LINE:
			put(o, "using 1:2 with linespoints pt 7 ps 1.3 lw 2 lc rgb '%s' title %s",
			    col, q);
			if (!text) /* each point's value beside it */
				put(o,
				    ", $P%dS%d using 1:2:(sprintf('%%.2f', $2)) with labels "
				    "offset char 0,1.2 tc rgb '%s' notitle",
				    pi, si, col);
			break;
		}
	}
	if (nplot == 0)
		put(o, "NaN notitle");
	put(o, "\n");
}

/* t word-wrapped to lines of at most width characters (a word longer than
 * that stays whole); "; " is where it prefers to break.  malloc'd, NULL
 * when out of memory. */
static char *wrap_title(const char *t, int width)
{
	char *w = strdup(t ? t : "");
	if (!w)
		return NULL;
	char *line = w;
	for (;;) {
		char *nl = strchr(line, '\n');
		int len = nl ? (int)(nl - line) : (int)strlen(line);
		if (len > width) {
			/* the last "; " in reach, else the last space */
			char *cut = NULL;
			for (char *p = line; p < line + width && p < line + len; p++)
				if (p[0] == ';' && p[1] == ' ')
					cut = p + 1;
			if (!cut || cut - line < width / 2)
				for (char *p = line + width; p > line; p--)
					if (*p == ' ') {
						cut = p;
						break;
					}
			if (cut && cut > line) {
				*cut = '\n';
				line = cut + 1;
				continue;
			}
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	return w;
}

char *chart_gnuplot(const struct chart *c, enum chart_target to, int width)
{
	struct out o = {0};
	char q[2048];
	put(&o, "set encoding utf8\nset termoption noenhanced\nset datafile missing 'NaN'\n");
	/* the title says what is shown; in text the note goes under it */
	/* the title says what is shown; the note (figures the bars do not show) under it;
	 * text has no room for rotated y labels: a line says what the axes show */
	bool text = to == CHART_TO_TEXT;
	const struct chart_panel *P0 = &c->panels[0];
	const char *sub = c->npanels == 1 && P0->title ? P0->title : NULL;
	char *axes = text && c->npanels > 0 ? fmt("x: %s; y: %s", P0->xlabel, P0->ylabel) : NULL;
	char *all =
	    fmt("%s%s%s%s%s%s%s", c->title ? c->title : "", sub ? "\n" : "", sub ? sub : "",
	        c->note ? "\n" : "", c->note ? c->note : "", axes ? "\n" : "", axes ? axes : "");
	free(axes);
	int tw = text ? (width > 20 ? width - 2 : 18) : width > 40 ? width : 110;
	char *title = all ? wrap_title(all, tw) : NULL;
	free(all);
	if (!title)
		return NULL;
	gnuplot_quote(title, q, sizeof q);
	free(title);
	if (c->npanels > 1)
		put(&o, "set multiplot layout 1,%d title %s\n", c->npanels, q);
	else
		put(&o, "set title %s\n", q);
	for (int p = 0; p < c->npanels; p++)
		panel_gnuplot(&o, c, p, to);
	if (c->npanels > 1)
		put(&o, "unset multiplot\n");
	if (o.oom) {
		free(o.p);
		return NULL;
	}
	return o.p;
}

/* --- gnuplot output --------------------------------------------------------------------- */

void chart_pixels(const struct chart *c, int *w, int *h)
{
	*w = c->npanels > 1 ? 1400 : 1000;
	*h = 620;
	if (c->rows > 0) { /* a row per tensor or layer */
		*w = c->npanels > 1 ? 1400 : 1100;
		*h = 180 + 20 * c->rows;
		*h = *h < 560 ? 560 : *h > 4000 ? 4000 : *h;
	}
}

/* Characters a title line takes in a picture of c (about 9 pixels each). */
static int title_chars(const struct chart *c)
{
	int w, h;
	chart_pixels(c, &w, &h);
	return w / 9;
}

/* The extension of path, lower case ("png", "svg"), or "". */
static void extension(const char *path, char *buf, size_t len)
{
	const char *dot = strrchr(path, '.');
	const char *slash = strrchr(path, '/');
	buf[0] = '\0';
	if (!dot || (slash && dot < slash) || strlen(dot + 1) >= len)
		return;
	size_t i = 0;
	for (const char *s = dot + 1; *s; s++)
		buf[i++] = (char)tolower((unsigned char)*s);
	buf[i] = '\0';
}

/* gnuplot draws into a temporary file beside path, renamed over it once whole (files.h). */
bool chart_to_file(struct gnuplot *gp, const struct chart *c, const char *path, int *gst, char *why,
                   size_t len)
{
	int dummy;
	gst = gst ? gst : &dummy;
	*gst = GNUPLOT_OK;
	char ext[8];
	extension(path, ext, sizeof ext);
	bool png = strcmp(ext, "png") == 0, svg = strcmp(ext, "svg") == 0;
	if (!png && !svg)
		return snprintf(why, len, "'%s': charts are written as .png or .svg files", path),
		       false;
	for (const char *s = path; *s; s++)
		if ((unsigned char)*s < 0x20)
			return snprintf(why, len, "the file name has a control character in it"),
			       false;
	enum gnuplot_status st = gnuplot_start(gp, why, len);
	if (st != GNUPLOT_OK)
		return *gst = st, false;
	const char *term = png ? (gnuplot_has_terminal(gp, "pngcairo") ? "pngcairo"
	                          : gnuplot_has_terminal(gp, "png")    ? "png"
	                                                               : NULL)
	                       : (gnuplot_has_terminal(gp, "svg") ? "svg" : NULL);
	if (!term)
		return snprintf(why, len, "this gnuplot cannot write %s files (no %s terminal)",
		                png ? "PNG" : "SVG", png ? "pngcairo or png" : "svg"),
		       false;
	/* a temporary name beside the file, made here: the directory is writable */
	char *tmp = cli_temp_beside(path, NULL, why, len);
	if (!tmp)
		return false;
	int pw, ph;
	chart_pixels(c, &pw, &ph);
	char q[4200], *cmds = NULL, *script = chart_gnuplot(c, CHART_TO_FILE, title_chars(c));
	bool ok = false;
	if (script &&
	    asprintf(&cmds,
	             "reset session\nset print '-'\nset terminal %s size %d,%d noenhanced%s\n"
	             "set output %s\n",
	             term, pw, ph, png ? " font ',10'" : " font 'sans,11'",
	             gnuplot_quote(tmp, q, sizeof q)) >= 0) {
		st = gnuplot_run(gp, cmds, NULL, why, len);
		free(cmds);
		cmds = NULL;
		/* the output is open only now: draw, then close it */
		if (st == GNUPLOT_OK && asprintf(&cmds, "%s\nunset output\n", script) >= 0) {
			st = gnuplot_run(gp, cmds, NULL, why, len);
			if (st == GNUPLOT_ERROR)
				gnuplot_run(gp, "unset output\n", NULL, q, sizeof q);
		} else if (st == GNUPLOT_OK) {
			snprintf(why, len, "out of memory");
			st = GNUPLOT_ERROR;
		}
		struct stat sb;
		if (st == GNUPLOT_OK && (stat(tmp, &sb) != 0 || sb.st_size == 0))
			snprintf(why, len, "gnuplot wrote nothing to %s", path);
		else if (st == GNUPLOT_OK)
			ok = cli_temp_commit(tmp, path, why, len);
		*gst = st;
	} else {
		snprintf(why, len, "out of memory");
	}
	if (!ok)
		unlink(tmp);
	free(cmds);
	free(script);
	free(tmp);
	return ok;
}

bool chart_to_window(struct gnuplot *gp, const struct chart *c, int window, int *gst, char *why,
                     size_t len)
{
	int dummy;
	gst = gst ? gst : &dummy;
	*gst = GNUPLOT_OK;
	enum gnuplot_status st = gnuplot_start(gp, why, len);
	if (st != GNUPLOT_OK)
		return *gst = st, false;
	const char *term = gnuplot_window_terminal(gp);
	if (!term)
		return snprintf(why, len, "no gnuplot window: %s",
		                getenv("DISPLAY") && *getenv("DISPLAY")
		                    ? "this gnuplot has no qt, wxt or x11 terminal"
		                    : "$DISPLAY is not set"),
		       false;
	char q[2048], *cmds = NULL, *script = chart_gnuplot(c, CHART_TO_WINDOW, title_chars(c));
	int pw, ph;
	chart_pixels(c, &pw, &ph);
	bool ok = false;
	if (script &&
	    asprintf(&cmds,
	             "reset session\nset print '-'\nset terminal %s %d size %d,%d "
	             "noenhanced title %s\nset output\n%s\n",
	             term, window, pw, ph > 1000 ? 1000 : ph,
	             gnuplot_quote(c->title ? c->title : "dfq", q, sizeof q), script) >= 0) {
		st = gnuplot_run(gp, cmds, NULL, why, len);
		*gst = st;
		ok = st == GNUPLOT_OK;
	} else {
		snprintf(why, len, "out of memory");
	}
	free(cmds);
	free(script);
	return ok;
}

char *chart_dumb(struct gnuplot *gp, const struct chart *c, int width, int height, int *gst,
                 char *why, size_t len)
{
	int dummy;
	gst = gst ? gst : &dummy;
	*gst = GNUPLOT_OK;
	width = width < 30 ? 30 : width > 1000 ? 1000 : width;
	height = height < 8 ? 8 : height > 1000 ? 1000 : height;
	enum gnuplot_status st = gnuplot_start(gp, why, len);
	if (st != GNUPLOT_OK)
		return *gst = st, NULL;
	if (!gnuplot_has_terminal(gp, "dumb"))
		return snprintf(why, len, "this gnuplot has no dumb terminal"), NULL;
	char *cmds = NULL, *script = chart_gnuplot(c, CHART_TO_TEXT, width), *out = NULL;
	if (!script ||
	    asprintf(&cmds,
	             "reset session\nset print '-'\nset terminal dumb size %d,%d noenhanced\n"
	             "set output\n%s\n",
	             width, height, script) < 0) {
		free(script);
		snprintf(why, len, "out of memory");
		return NULL;
	}
	st = gnuplot_run(gp, cmds, &out, why, len);
	free(cmds);
	free(script);
	*gst = st;
	if (st != GNUPLOT_OK) {
		free(out);
		return NULL;
	}
	/* drop the form feed a page starts with and the blank lines around it */
	char *p = out;
	while (*p == '\f' || *p == '\n' || *p == '\r')
		p++;
	memmove(out, p, strlen(p) + 1);
	size_t n = strlen(out);
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ' || out[n - 1] == '\r'))
		n--;
	out[n] = '\0';
	return out;
}

bool chart_open(struct gnuplot *gp, const struct chart *c, const char *png_path, char *msg,
                size_t len)
{
	int gst;
	if (gnuplot_window_terminal(gp)) {
		const char *term = gnuplot_window_terminal(gp);
		if (chart_to_window(gp, c, (int)c->kind, &gst, msg, len)) {
			snprintf(msg, len, "shown in a gnuplot %s window", term);
			return true;
		}
		if (gst != GNUPLOT_OK)
			return false;
	}
	if (!chart_to_file(gp, c, png_path, &gst, msg, len))
		return false;
	snprintf(msg, len, "wrote %s", png_path);
	return true;
}
