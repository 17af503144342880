/* chart.h - charts as data: what `plot` draws and what the screen's panes can draw.
 *
 * A chart is a title, a note and one or two panels side by side; a panel has
 * axis labels with units, ranges, labelled tics, series and marks.  Builders
 * make one from the session (per-channel weight ranges before and after a
 * step, an error histogram, the activation ranges, accuracy per step); the
 * renderers turn it into gnuplot commands (chart_gnuplot), into text of
 * W x H characters without gnuplot (chart_text), or run gnuplot on it
 * (chart_to_file, chart_to_window, chart_dumb, chart_open).
 *
 * Ownership: struct chart is the caller's (e.g. on the stack); it owns every
 * string and array it points to.  chart_free() releases them and zeroes it;
 * a builder zeroes it first, so after a failed build there is nothing to free
 * (freeing is still safe). */
#ifndef DFQ_CLI_CHART_H
#define DFQ_CLI_CHART_H

#include <stdbool.h>
#include <stddef.h>

#include "cmd.h"
#include "dfq/dfq_model.h"

struct session;
struct cmd_ctx;
struct gnuplot;

enum chart_kind {
	CHART_CHANNELS = 0, /* per-output-channel weight ranges of a layer, before and after */
	CHART_HIST,         /* quantization error histogram, in grid steps */
	CHART_RANGES,       /* activation ranges per tensor: BN, data, grid */
	CHART_DELTAS,       /* top-1 after each step */
	CHART_SWEEP,        /* top-1 against a swept setting (sweep.h) */
	CHART_SENS,         /* per layer: top-1 change and logits SQNR quantized alone */
	CHART_CMP,          /* per layer output: SQNR and max error against FP32 */
};

enum chart_style {
	CHART_VBARS, /* a vertical bar at x[i] from lo[i] to hi[i] (a channel's range) */
	CHART_BOXES, /* a box centred on x[i], from 0 up to y[i] (a histogram bin) */
	CHART_HBARS, /* a horizontal bar in row y[i] from lo[i] to hi[i] (a tensor's range) */
	CHART_LINE,  /* points (x[i], y[i]) joined by lines */
};

struct chart_series {
	char *name; /* for the key, owned */
	enum chart_style style;
	int n;
	double *x, *y, *lo, *hi; /* owned, n each (those the style uses; the others NULL) */
	double width;            /* BOXES, VBARS: width in x units; HBARS: thickness in rows */
	double offset;           /* HBARS: drawn at row y[i] + offset (bars side by side) */
	bool outline;            /* drawn as an outline (HBARS: the ends only in text) */
};

/* Something marked across a panel: a band lo <= x <= hi, or a level y = lo. */
struct chart_mark {
	char *name; /* for the key, owned */
	bool band;
	double lo, hi;
};

struct chart_tic {
	double at;
	char *label; /* owned */
};

struct chart_panel {
	char *title;                   /* the panel's own title, or NULL */
	char *xlabel, *ylabel;         /* what the axes show, with units */
	double xmin, xmax, ymin, ymax; /* NAN: from the data */
	int nseries;
	struct chart_series *series;
	int nmarks;
	struct chart_mark *marks;
	int nxtics, nytics; /* labelled tics (0: numbers) */
	struct chart_tic *xtics, *ytics;
	bool zero_line; /* draw the values' zero: y = 0 (x = 0 for HBARS panels) */
};

#define CHART_MAX_PANELS 2

struct chart {
	enum chart_kind kind;
	char *title; /* says what is shown: model, layer, bits, before/after, data or data-free */
	char *note;  /* one line under the chart (figures the bars do not show), or NULL */
	int npanels;
	struct chart_panel panels[CHART_MAX_PANELS];
	int rows; /* labelled rows (ranges, sensitivity, compare), for sizing; 0 otherwise */
};

void chart_free(struct chart *c);
/* "chan", "hist", ... as `plot` names the kinds. */
const char *chart_kind_name(enum chart_kind k);

/* --- builders: false with one sentence in why ------------------------------------- */

/* Layer li's per-output-channel weight ranges (min..max) now and, when an
 * applied step changed the weights, before the last one that did: two panels,
 * before and after (the paper's Figures 2 and 6). */
bool chart_channels(struct session *s, int li, struct chart *c, char *why, size_t len);
/* A histogram from hist_compute() (or the core) as boxes, the [-0.5, 0.5]
 * band marked; the counts beyond the bins and the clipped ones in the note. */
bool chart_hist(struct session *s, const struct dfq_hist *h, struct chart *c, char *why,
                size_t len);
/* One row per activation point: its BN range, data range and the grid in use. */
bool chart_ranges(struct session *s, struct chart *c, char *why, size_t len);
/* top-1 after each applied step that was evaluated, the FP32 level marked. */
bool chart_deltas(struct session *s, struct chart *c, char *why, size_t len);

/* The session's last sweep: top-1 against the swept value, the FP32 level
 * marked. */
bool chart_sweep(struct session *s, struct chart *c, char *why, size_t len);
/* The session's last sensitivity: per layer (a row each), the top-1 change
 * and the logits SQNR with only its weights, only its activation, or both
 * quantized; two panels. */
bool chart_sensitivity(struct session *s, struct chart *c, char *why, size_t len);
/* The session's last compare: per layer output, its SQNR and largest error
 * against FP32; two panels. */
bool chart_compare(struct session *s, struct chart *c, char *why, size_t len);

/* What hist (the command) and `plot hist` measure. */
struct hist_req {
	int layer;
	bool act;     /* output activations on the first calibration batch, else weights */
	int nbins;    /* 2..200 */
	double range; /* the bins cover [-range, range] grid steps (0.5 by default) */
	int wbits;    /* weights: bits to try (0: the layer's own; a float layer needs them) */
};
/* Measure r into h (cmd-hist.c): weights with the layer's configuration (or
 * the session's with r->wbits), or activations on the first calibration batch
 * of the session's data.  False after reporting the error through ctx (a
 * caller outside a command, e.g. a pane, can pass a ctx of its own,
 * {.s = session}: the error line then goes to the session's sink). */
bool hist_compute(struct cmd_ctx *ctx, const struct hist_req *r, struct dfq_hist *h);
/* r's figures from a's --bins, --range and --wbits, and what ("weights",
 * "act" or NULL: weights); not r->layer.  False after reporting. */
bool hist_req_from_args(struct cmd_ctx *ctx, const struct args *a, const char *what,
                        struct hist_req *r);
/* The numbers --bins and --range take (2..200 bins; R >= 0.5 steps). */
extern const struct num_spec hist_bins_num, hist_range_num;
/* The one layer word names (a name or an index): its index, or -1 after
 * reporting. */
int cmd_one_layer(struct cmd_ctx *ctx, const char *word);

/* --- renderers -------------------------------------------------------------------- */

/* Where gnuplot draws: the commands differ a little (text has no rotated labels). */
enum chart_target { CHART_TO_FILE, CHART_TO_WINDOW, CHART_TO_TEXT };

/* gnuplot commands that draw c (data inline as heredoc blocks, titles quoted
 * safely): everything after `set terminal` and `set output`.  Titles are
 * wrapped to width characters (CHART_TO_TEXT: the text's width; else 0 for
 * the default, 110).
 * malloc'd, NULL when out of memory. */
char *chart_gnuplot(const struct chart *c, enum chart_target to, int width);

/* c drawn as text without gnuplot: height lines of at most width columns
 * (ASCII), each ending in '\n'; width >= 30, height >= 8 (smaller sizes are
 * raised to these).  malloc'd, NULL when out of memory. */
char *chart_text(const struct chart *c, int width, int height);

/* The size in pixels chart_to_file uses for c (more rows, taller). */
void chart_pixels(const struct chart *c, int *w, int *h);

/* Write c to path (".png": pngcairo, else png; ".svg": svg) through gp,
 * atomically: gnuplot writes a temporary file beside it, renamed when whole.
 * Another extension is refused.  *gst (may be NULL) gets gnuplot's status:
 * GNUPLOT_MISSING or GNUPLOT_FAILED when gnuplot itself is the problem. */
bool chart_to_file(struct gnuplot *gp, const struct chart *c, const char *path, int *gst, char *why,
                   size_t len);
/* c in a gnuplot window (qt, wxt or x11, with $DISPLAY); window picks one per
 * caller (e.g. the chart kind, so each kind keeps its window).  False when
 * there is no window terminal or gnuplot fails (*gst as above). */
bool chart_to_window(struct gnuplot *gp, const struct chart *c, int window, int *gst, char *why,
                     size_t len);
/* gnuplot's `dumb` text of c, width x height characters (for a pane, or
 * stdout), malloc'd, trailing blank lines dropped; NULL with why (and *gst). */
char *chart_dumb(struct gnuplot *gp, const struct chart *c, int width, int height, int *gst,
                 char *why, size_t len);
/* The screen's "open the chart": a window when there is one, else a PNG at
 * png_path.  msg gets what happened ("shown in a qt window", "wrote PATH") or
 * why not; true on success. */
bool chart_open(struct gnuplot *gp, const struct chart *c, const char *png_path, char *msg,
                size_t len);

#endif
