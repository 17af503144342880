/* tui_internal.h - what the screen's files share: the screen state, panes as objects with an
 * ops table (htop's way: draw, key; keys return flags, one loop redraws what is dirty), the
 * drawing helpers and the per-layer figures the panes show. */
#ifndef DFQ_TUI_INTERNAL_H
#define DFQ_TUI_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <curses.h>

#include "cli.h"
#include "dfq/dfq_model.h"

/* --- panes ------------------------------------------------------------------------------- */

enum pane_id { PANE_LAYERS, PANE_DETAIL, PANE_HIST, PANE_STEPS, PANE_LOG, NPANES };

struct tui;
struct pane;

/* What a key handler did (flags). */
enum {
	KEY_NONE = 0,     /* not this pane's key */
	KEY_DONE = 1,     /* handled */
	KEY_DIRTY = 2,    /* this pane needs a redraw */
	KEY_SELECTED = 4, /* the selected layer changed: the panes that follow it too */
	KEY_ALL = 8,      /* everything needs a redraw */
};

struct pane_ops {
	const char *name; /* the title when the pane has nothing better */
	/* The title in the border (buf), e.g. the selected layer's name. */
	void (*title)(struct pane *p, struct tui *t, char *buf, size_t len);
	/* Draw the inside of p->win (the border is drawn for it). */
	void (*draw)(struct pane *p, struct tui *t);
	/* A key while the pane has the focus: KEY_* flags. */
	int (*key)(struct pane *p, struct tui *t, int ch);
	/* Follows the selected layer (redrawn when it changes). */
	bool follows_selection;
};

struct pane {
	const struct pane_ops *ops;
	WINDOW *win; /* with its border; NULL when not shown */
	int y, x, h, w;
	bool dirty;
	int scroll; /* the pane's own: first row shown */
};

extern const struct pane_ops pane_layers_ops, pane_detail_ops, pane_hist_ops, pane_steps_ops,
    pane_log_ops;

/* --- figures of a layer, cached by the identity of its tensors ----------------------------
 * Tensors are replaced, never changed in place, once the model shares them (copy-on-write),
 * so a pointer that did not change means figures that did not change. */

struct layer_figs {
	const void *w, *wq, *before; /* the tensors the figures are of */
	int before_step;             /* history entry that made `before` obsolete, or -1 */
	struct dfq_layer_info info;
	double sqnr; /* of the fake-quantized weights, NaN when float */
	/* per-channel ranges, now and before the last step that changed them */
	float *lo, *hi, *blo, *bhi; /* owned, cout each; blo/bhi NULL without a before */
	bool have_channels;
};

/* --- the log ------------------------------------------------------------------------------ */

struct log_line {
	enum out_kind kind;
	char *text; /* owned */
	bool cmd;   /* the command line that produced what follows */
};

#define LOG_MAX 2000

/* --- the screen ---------------------------------------------------------------------------- */

struct tui {
	struct session *s;
	SCREEN *screen;
	struct pane panes[NPANES];
	WINDOW *statusw, *promptw; /* the status line and the command line */
	int focus;                 /* the pane with the focus */
	bool cmdline;              /* the command line has the focus */
	int sel;                   /* the selected layer */
	bool small; /* 80x24 layout: detail, histogram and steps share one tabbed pane */
	int tab;    /* small layout: PANE_DETAIL, PANE_HIST or PANE_STEPS */
	bool too_small;
	int rows, cols;
	bool utf8, color;
	bool hist_act; /* the histogram shows the activation error */
	bool help;     /* the key table is shown */
	bool quit;
	bool ask_quit;    /* unsaved steps: the next y leaves */
	char status[256]; /* the status line's message, until the next key */
	bool status_error;
	/* the log */
	struct log_line *log;
	int nlog;
	bool log_follow; /* scrolled to the end */
	/* long work in progress */
	const char *prog_what;
	int64_t prog_done, prog_total;
	double prog_secs;
	/* figures per layer (nfigs == the model's layers, or 0) */
	struct layer_figs *figs;
	int nfigs;
	const struct dfq_model *figs_model;
	/* histogram of the selected layer (pane_hist.c), cached */
	void *hist_cache;
	/* search */
	char search[128];
	/* timing (DFQ_TUI_TRACE=FILE): each frame's drawing time, and the time
	 * from a key to the screen showing its effect */
	FILE *trace;
	struct timespec key_at;
	bool key_pending;
};

/* screen.c */
/* Mark the panes that show the selected layer, or all of them. */
void tui_dirty(struct tui *t, bool all);
/* Select layer li (clamped) and keep it in view. */
void tui_select(struct tui *t, int li);
/* Run a command line as typed at the prompt; its text goes to the log. */
void tui_command(struct tui *t, const char *line);
/* A one-line message in the status line until the next key. */
void tui_message(struct tui *t, bool error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The selected layer's name as commands take it ("" without a model). */
const char *tui_layer_name(const struct tui *t, int li);

/* draw.c */
enum tui_color { C_NORMAL, C_TITLE, C_FOCUS, C_ERROR, C_DIM, C_GOOD, C_BAD, C_BAR, C_BAR2, C_SEL };
void draw_init_colors(struct tui *t);
/* curses attributes (an int: attrs here never need the high bits). */
int tui_attr(const struct tui *t, enum tui_color c);
/* The border of p with its title (the focus highlighted). */
void draw_frame(struct tui *t, struct pane *p, const char *title);
/* Text at (y, x) of w, cut to n columns (attr for the whole), padding with
 * spaces to n when pad. */
/* Bytes of UTF-8 text s that make its next row of n columns when it is wrapped at blanks
 * (all of it when it fits; at least one character). */
size_t draw_wrap_cut(const char *s, int n);
void draw_text(WINDOW *w, int y, int x, int n, int attr, bool pad, const char *text);
/* printf into (y, x) cut to n columns. */
void draw_fmt(WINDOW *w, int y, int x, int n, int attr, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* A horizontal bar chart cell: a bar from lo to hi on [-scale, scale]
 * mapped onto n columns at (y, x), with the zero line. */
void draw_range_bar(struct tui *t, WINDOW *w, int y, int x, int n, double lo, double hi,
                    double scale, int attr);
/* The progress of the running command as a bar of width columns with its
 * ETA (and the counts, with counts). */
void fmt_progress(const struct tui *t, int width, bool counts, char *buf, size_t len);
/* "1.23", "-", "inf" into buf. */
const char *fmt_num(double v, char *buf, size_t len);

/* figs.c */
/* Figures of layer li (recomputed when its tensors changed; NULL without a
 * model or out of memory). */
const struct layer_figs *figs_of(struct tui *t, int li, bool channels);
void figs_free(struct tui *t);
/* "F R E Q B": the steps that touched the layer, as letters. */
void figs_steps_marks(unsigned steps, char *buf, size_t len);

/* pane_log.c */
void log_add(struct tui *t, enum out_kind kind, const char *text, bool cmd);
void log_free(struct tui *t);

/* pane_layers.c: select the next layer whose name contains text */
void layers_search(struct tui *t, const char *text);

/* pane_hist.c */
void hist_free(struct tui *t);

/* prompt.c: GNU Readline inside curses, through its callback interface */
void prompt_init(struct tui *t);
void prompt_done(struct tui *t);
/* Give the command line the focus, with text typed in already (may be NULL). */
void prompt_open(struct tui *t, const char *text);
/* The command line as a search of the layers ('/'). */
void prompt_search(struct tui *t);
void prompt_close(struct tui *t);
/* A key for the command line. */
void prompt_key(struct tui *t, int ch);
/* Draw the command line (the last row). */
void prompt_draw(struct tui *t);

#endif
