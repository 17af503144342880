/* screen.c - the workbench screen: the layout (five panes and the command line at 160x48, two
 * panes and a tabbed one at 80x24, one message below 60x16), the loop that reads a key,
 * dispatches it and redraws only the dirty panes, the keys, and running commands with their
 * text going to the log and their progress to the steps pane. */
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model-cmd.h"
#include "tui.h"
#include "tui_internal.h"

#define MIN_COLS  60
#define MIN_ROWS  16
#define WIDE_COLS 120
#define WIDE_ROWS 30

static const struct pane_ops *const pane_ops_of[NPANES] = {
    &pane_layers_ops, &pane_detail_ops, &pane_hist_ops, &pane_steps_ops, &pane_log_ops,
};

bool tui_possible(char *why, size_t len)
{
	const char *term = getenv("TERM");
	const char *reason = NULL;
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
		reason = "standard input and output are not a terminal";
	else if (!term || !*term || strcmp(term, "dumb") == 0)
		reason = "TERM is dumb or not set";
	if (reason && why)
		snprintf(why, len, "%s", reason);
	return !reason;
}

/* --- state changes ------------------------------------------------------------------------ */

void tui_dirty(struct tui *t, bool all)
{
	for (int i = 0; i < NPANES; i++)
		if (all || t->panes[i].ops->follows_selection)
			t->panes[i].dirty = true;
}

void tui_select(struct tui *t, int li)
{
	const struct dfq_model *m = t->s->model;
	int n = m ? m->nlayers : 0;
	li = li >= n ? n - 1 : li;
	li = li < 0 ? 0 : li;
	if (li != t->sel)
		t->panes[PANE_DETAIL].scroll = 0;
	t->sel = li;
	tui_dirty(t, false);
}

const char *tui_layer_name(const struct tui *t, int li)
{
	const struct dfq_model *m = t->s->model;
	return m && li < m->nlayers ? mc_layer_name(m, li) : "";
}

void tui_message(struct tui *t, bool error, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->status, sizeof t->status, fmt, ap);
	va_end(ap);
	t->status_error = error;
}

/* --- layout ------------------------------------------------------------------------------- */

static void place(struct pane *p, int y, int x, int h, int w)
{
	if (p->win)
		delwin(p->win);
	p->win = NULL;
	p->y = y;
	p->x = x;
	p->h = h;
	p->w = w;
	if (h >= 3 && w >= 8)
		p->win = newwin(h, w, y, x);
	p->dirty = true;
}

static void hide(struct pane *p)
{
	if (p->win)
		delwin(p->win);
	p->win = NULL;
	p->h = p->w = 0;
}

static void layout(struct tui *t)
{
	getmaxyx(stdscr, t->rows, t->cols);
	t->too_small = t->cols < MIN_COLS || t->rows < MIN_ROWS;
	for (int i = 0; i < NPANES; i++)
		hide(&t->panes[i]);
	if (t->statusw)
		delwin(t->statusw);
	if (t->promptw)
		delwin(t->promptw);
	t->statusw = t->promptw = NULL;
	clear();
	wnoutrefresh(stdscr);
	if (t->too_small)
		return;
	t->statusw = newwin(1, t->cols, t->rows - 2, 0);
	t->promptw = newwin(1, t->cols, t->rows - 1, 0);
	t->small = t->cols < WIDE_COLS || t->rows < WIDE_ROWS;
	int avail = t->rows - 2; /* the status line and the command line */
	if (!t->small) {
		int top = avail * 55 / 100;
		int bottom = avail - top;
		int lw = t->cols * 46 / 100;
		place(&t->panes[PANE_LAYERS], 0, 0, top, lw);
		place(&t->panes[PANE_DETAIL], 0, lw, top, t->cols - lw);
		int hw = t->cols * 36 / 100, sw = t->cols * 34 / 100;
		place(&t->panes[PANE_HIST], top, 0, bottom, hw);
		place(&t->panes[PANE_STEPS], top, hw, bottom, sw);
		place(&t->panes[PANE_LOG], top, hw + sw, bottom, t->cols - hw - sw);
		/* tables and text charts are made to fit the log, not the terminal */
		cli_set_output_width(t->cols - hw - sw - 2);
	} else {
		cli_set_output_width(t->cols);
		/* the layers on the left; detail, histogram and steps as tabs on the
		 * right; the log as the status line */
		int lw = t->cols * 45 / 100;
		place(&t->panes[PANE_LAYERS], 0, 0, avail, lw);
		if (t->tab != PANE_DETAIL && t->tab != PANE_HIST && t->tab != PANE_STEPS)
			t->tab = PANE_DETAIL;
		place(&t->panes[t->tab], 0, lw, avail, t->cols - lw);
		if (t->focus != PANE_LAYERS)
			t->focus = t->tab;
	}
	if (!t->panes[t->focus].win)
		t->focus = PANE_LAYERS;
}

/* --- drawing ------------------------------------------------------------------------------ */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void draw_too_small(struct tui *t)
{
	char msg[96];
	snprintf(msg, sizeof msg, "dfq needs at least %dx%d (now %dx%d)", MIN_COLS, MIN_ROWS,
	         t->cols, t->rows);
	erase();
	int n = (int)strlen(msg);
	mvaddnstr(t->rows / 2, n < t->cols ? (t->cols - n) / 2 : 0, msg, t->cols);
	wnoutrefresh(stdscr);
}

static void draw_pane(struct tui *t, struct pane *p)
{
	werase(p->win);
	char title[256];
	p->ops->title(p, t, title, sizeof title);
	if (t->small && (p - t->panes) == t->tab) {
		/* the tabbed pane names its tabs and their keys first */
		char tabs[320];
		snprintf(tabs, sizeof tabs, "%s %s %s  %s",
		         t->tab == PANE_DETAIL ? "[1 detail]" : "1 detail",
		         t->tab == PANE_HIST ? "[2 hist]" : "2 hist",
		         t->tab == PANE_STEPS ? "[3 steps]" : "3 steps", title);
		draw_frame(t, p, tabs);
	} else {
		draw_frame(t, p, title);
	}
	p->ops->draw(p, t);
	wnoutrefresh(p->win);
	p->dirty = false;
}

static void draw_status(struct tui *t)
{
	WINDOW *w = t->statusw;
	werase(w);
	char buf[512];
	int attr = A_NORMAL;
	if (t->prog_what) {
		fmt_progress(t, t->cols / 3, true, buf, sizeof buf);
		attr = tui_attr(t, C_FOCUS);
	} else if (t->ask_quit) {
		snprintf(buf, sizeof buf, "%s", t->status);
		attr = tui_attr(t, C_ERROR);
	} else if (t->status[0]) {
		snprintf(buf, sizeof buf, "%s", t->status);
		attr = t->status_error ? tui_attr(t, C_ERROR) : (int)A_NORMAL;
	} else if (t->small && t->nlog > 0) {
		/* the log's last line stands for the log */
		const struct log_line *l = &t->log[t->nlog - 1];
		snprintf(buf, sizeof buf, "%s", l->text);
		attr = l->kind == OUT_ERROR ? tui_attr(t, C_ERROR) : (int)A_NORMAL;
	} else {
		snprintf(
		    buf, sizeof buf,
		    "? keys  : command  Tab next pane  Q quantize  u/r undo/redo  e eval  q quit");
		attr = tui_attr(t, C_DIM);
	}
	wattron(w, attr);
	mvwaddnstr(w, 0, 0, buf, t->cols);
	wattroff(w, attr);
	wnoutrefresh(w);
}

static const char *const key_help[] = {
    "Up/Down j/k PgUp/PgDn g/G   move the layer selection (scroll a focused pane)",
    "/ n                         search layers by name; next match",
    "Enter                       'info' of the selected layer into the log",
    "Q                           quantize the selected layer with the current bits",
    "c                           clip the selected layer (asks LO HI)",
    "b                           bias-correct the selected layer",
    "u r                         undo, redo",
    "e                           eval (progress in the steps pane; Ctrl-C cancels)",
    "w a                         histogram of the weight / activation error",
    "p                           the focused pane's chart in gnuplot (window or PNG)",
    ": Tab                       the command line / the next pane",
    "1 2 3                       detail, histogram, steps (tabs at 80x24)",
    "?                           this table",
    "q Ctrl-D                    leave (asks first when steps are not saved)",
    NULL,
};

static void draw_help(struct tui *t)
{
	int n = 0;
	while (key_help[n])
		n++;
	int h = n + 4, w = 80;
	w = w > t->cols - 2 ? t->cols - 2 : w;
	h = h > t->rows - 2 ? t->rows - 2 : h;
	WINDOW *win = newwin(h, w, (t->rows - h) / 2, (t->cols - w) / 2);
	if (!win)
		return;
	struct pane tmp = {.win = win, .h = h, .w = w};
	draw_frame(t, &tmp, "Keys (any key closes)");
	for (int i = 0; i < n && i + 2 < h - 1; i++)
		draw_text(win, 2 + i, 2, w - 4, A_NORMAL, false, key_help[i]);
	wnoutrefresh(win);
	delwin(win);
}

/* Redraw what is dirty, then the status and command lines; doupdate. */
static void redraw(struct tui *t)
{
	double t0 = now();
	bool all = true;
	for (int i = 0; i < NPANES; i++)
		all &= !t->panes[i].win || t->panes[i].dirty;
	if (t->too_small) {
		draw_too_small(t);
	} else {
		for (int i = 0; i < NPANES; i++)
			if (t->panes[i].win && t->panes[i].dirty)
				draw_pane(t, &t->panes[i]);
		draw_status(t);
		if (t->help)
			draw_help(t);
		/* last: the cursor stays where the command line puts it */
		prompt_draw(t);
	}
	doupdate();
	if (t->trace) {
		double t1 = now();
		fprintf(t->trace, "frame %.3f ms%s", (t1 - t0) * 1e3, all ? " full" : "");
		if (t->key_pending) {
			double k = (double)t->key_at.tv_sec + (double)t->key_at.tv_nsec * 1e-9;
			fprintf(t->trace, " key-to-screen %.3f ms", (t1 - k) * 1e3);
			t->key_pending = false;
		}
		fputc('\n', t->trace);
		fflush(t->trace);
	}
}

/* --- the session's output and progress ------------------------------------------------------- */

static void sink_line(void *user, enum out_kind kind, const char *line)
{
	struct tui *t = user;
	log_add(t, kind, line, false);
}

static void sink_progress(void *user, const char *what, int64_t done, int64_t total, double secs)
{
	struct tui *t = user;
	t->prog_what = done < 0 ? NULL : what;
	t->prog_done = done;
	t->prog_total = total;
	t->prog_secs = secs;
	t->panes[PANE_STEPS].dirty = true;
	/* the command runs on this thread: show the bar now */
	redraw(t);
}

void tui_command(struct tui *t, const char *line)
{
	char shown[600];
	snprintf(shown, sizeof shown, "> %s", line);
	log_add(t, OUT_RESULT, shown, true);
	t->panes[PANE_LOG].scroll = 0;
	t->status[0] = '\0';
	redraw(t);
	enum cmd_retval rv = cmd_run_line(t->s, line, NULL, 0, false);
	t->prog_what = NULL;
	if (rv == CMD_RETURN_QUIT)
		t->quit = true;
	tui_select(t, t->sel); /* the model may have fewer layers now */
	tui_dirty(t, true);
}

/* --- keys ---------------------------------------------------------------------------------------
 */

static volatile sig_atomic_t got_sigint;

static void on_sigint(int sig)
{
	(void)sig;
	got_sigint = 1;
}

/* Idle, Ctrl-C only clears the command line; while a command runs it is the
 * command's (cli_interrupt_catch). */
static void catch_idle_sigint(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_sigint;
	sigaction(SIGINT, &sa, NULL);
}

static void next_focus(struct tui *t, int dir)
{
	for (int k = 1; k <= NPANES; k++) {
		int i = ((t->focus + dir * k) % NPANES + NPANES) % NPANES;
		if (t->panes[i].win) {
			t->focus = i;
			break;
		}
	}
	tui_dirty(t, true);
}

/* Unsaved steps: applied steps made since the last save. */
static bool unsaved(const struct tui *t)
{
	return t->s->model && t->s->steps_unsaved && dfq_model_history_count(t->s->model) > 0;
}

static void command_fmt(struct tui *t, const char *fmt, const char *name)
{
	char line[400];
	snprintf(line, sizeof line, fmt, name);
	tui_command(t, line);
}

/* The chart of the focused pane: in a gnuplot window when there is a
 * display, else into a PNG file in the current directory, named in the log. */
static void plot_focused(struct tui *t)
{
	const char *name = tui_layer_name(t, t->sel);
	int f = t->small && t->focus != PANE_LAYERS ? t->tab : t->focus;
	char what[320], file[400] = "";
	if (f == PANE_HIST)
		snprintf(what, sizeof what, "hist %s %s", name, t->hist_act ? "act" : "weights");
	else if (f == PANE_STEPS)
		snprintf(what, sizeof what, "deltas");
	else if (f == PANE_LOG)
		snprintf(what, sizeof what, "ranges");
	else
		snprintf(what, sizeof what, "channels %s", name);
	if (!getenv("DISPLAY")) {
		/* dfq-channels-features.3.conv.0.png: the words, safe as a file name */
		size_t n = (size_t)snprintf(file, sizeof file, " --out 'dfq-");
		for (const char *c = what; *c && n + 8 < sizeof file; c++)
			file[n++] = *c == ' ' ? '-' : *c == '/' || *c == '\'' ? '_' : *c;
		snprintf(file + n, sizeof file - n, ".png'");
	}
	char line[800];
	snprintf(line, sizeof line, "plot %s%s", what, file);
	tui_command(t, line);
}

static void global_key(struct tui *t, int ch)
{
	const char *name = tui_layer_name(t, t->sel);
	bool model = t->s->model != NULL;
	switch (ch) {
	case 'q':
	case 4: /* Ctrl-D */
		if (unsaved(t)) {
			t->ask_quit = true;
			tui_message(t, true,
			            "%d step%s not saved ('save FILE.dfq'): leave anyway? (y/n)",
			            dfq_model_history_applied(t->s->model),
			            dfq_model_history_applied(t->s->model) == 1 ? "" : "s");
		} else {
			t->quit = true;
		}
		return;
	case ':':
		prompt_open(t, NULL);
		return;
	case '/':
		prompt_search(t);
		return;
	case '\t':
		next_focus(t, 1);
		return;
	case KEY_BTAB:
		next_focus(t, -1);
		return;
	case '?':
		t->help = true;
		return;
	case 12: /* Ctrl-L: redraw everything, as curses programs do */
		clearok(curscr, TRUE);
		tui_dirty(t, true);
		return;
	case '1':
	case '2':
	case '3': {
		int p = ch == '1' ? PANE_DETAIL : ch == '2' ? PANE_HIST : PANE_STEPS;
		if (t->small) {
			t->tab = p;
			t->focus = p;
			layout(t);
		} else {
			t->focus = p;
		}
		tui_dirty(t, true);
		return;
	}
	case 'w':
	case 'a':
		t->hist_act = ch == 'a';
		t->panes[PANE_HIST].dirty = true;
		if (t->small && t->tab != PANE_HIST) {
			t->tab = PANE_HIST;
			layout(t);
		}
		return;
	case 'u':
		tui_command(t, "undo");
		return;
	case 'r':
		tui_command(t, "redo");
		return;
	case 'e':
		tui_command(t, "eval");
		return;
	case 'p':
		if (model)
			plot_focused(t);
		return;
	}
	if (!model) {
		tui_message(t, true, "no model: ':load MODEL.onnx' loads one");
		return;
	}
	switch (ch) {
	case '\n':
	case '\r':
	case KEY_ENTER:
		command_fmt(t, "info %s", name);
		return;
	case 'Q':
		command_fmt(t, "quantize %s", name);
		return;
	case 'b':
		command_fmt(t, "biascorr %s", name);
		return;
	case 'c': {
		char text[300];
		snprintf(text, sizeof text, "clip %s ", name);
		prompt_open(t, text);
		tui_message(t, false, "clip %s: type LO HI, Enter (Esc cancels)", name);
		return;
	}
	}
	tui_message(t, false, "unknown key (? lists them)");
}

static void key(struct tui *t, int ch)
{
	t->status[0] = '\0';
	if (t->help) {
		t->help = false;
		tui_dirty(t, true);
		return;
	}
	if (t->ask_quit) {
		t->ask_quit = false;
		if (ch == 'y' || ch == 'Y')
			t->quit = true;
		return;
	}
	if (t->cmdline) {
		prompt_key(t, ch);
		return;
	}
	struct pane *p = &t->panes[t->small && t->focus != PANE_LAYERS ? t->tab : t->focus];
	int r = p->win && p->ops->key ? p->ops->key(p, t, ch) : KEY_NONE;
	/* the selection keys reach the layers from any pane without its own use */
	if (r == KEY_NONE && p != &t->panes[PANE_LAYERS])
		r = t->panes[PANE_LAYERS].ops->key(&t->panes[PANE_LAYERS], t, ch);
	if (r & KEY_DIRTY)
		p->dirty = true;
	if (r & KEY_SELECTED)
		tui_dirty(t, false);
	if (r & KEY_ALL)
		tui_dirty(t, true);
	if (r == KEY_NONE)
		global_key(t, ch);
}

/* --- the loop -----------------------------------------------------------------------------------
 */

static bool setup(struct tui *t)
{
	setlocale(LC_CTYPE, "");
	t->utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
	t->screen = newterm(NULL, stdout, stdin);
	if (!t->screen)
		return false;
	t->color = has_colors() && !getenv("NO_COLOR");
	draw_init_colors(t);
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	set_escdelay(25);
	curs_set(0);
	return true;
}

bool tui_run(struct session *s, const char *const *first, int n)
{
	struct tui t;
	memset(&t, 0, sizeof t);
	t.s = s;
	for (int i = 0; i < NPANES; i++)
		t.panes[i].ops = pane_ops_of[i];
	t.focus = PANE_LAYERS;
	t.tab = PANE_DETAIL;
	const char *trace = getenv("DFQ_TUI_TRACE");
	if (trace && *trace)
		t.trace = fopen(trace, "a");
	if (!setup(&t)) {
		if (t.trace)
			fclose(t.trace);
		return false;
	}
	/* every line a command prints goes to the log; progress to the screen */
	out_sink old_sink = s->sink;
	void *old_user = s->sink_user;
	s->sink = sink_line;
	s->sink_user = &t;
	s->progress = sink_progress;
	s->progress_user = &t;
	prompt_init(&t);
	catch_idle_sigint();
	layout(&t);
	for (int i = 0; i < n && !t.quit; i++)
		tui_command(&t, first[i]);
	/* typos at the command line are not failures of the program (the
	 * commands given with it are) */
	bool had_error = s->had_error;
	log_add(&t, OUT_INFO, "dfq: ? lists the keys, : opens the command line", false);
	while (!t.quit) {
		redraw(&t);
		got_sigint = 0;
		int ch = getch();
		if (t.trace) {
			clock_gettime(CLOCK_MONOTONIC, &t.key_at);
			t.key_pending = true;
		}
		if (ch == ERR) {
			if (got_sigint && t.cmdline)
				prompt_close(&t);
			continue;
		}
		if (ch == KEY_RESIZE) {
			layout(&t);
			continue;
		}
		if (t.too_small)
			continue;
		key(&t, ch);
	}
	s->had_error = had_error;
	prompt_done(&t);
	endwin();
	delscreen(t.screen);
	cli_set_output_width(0);
	signal(SIGINT, SIG_DFL);
	s->sink = old_sink;
	s->sink_user = old_user;
	s->progress = NULL;
	s->progress_user = NULL;
	for (int i = 0; i < NPANES; i++)
		hide(&t.panes[i]);
	if (t.statusw)
		delwin(t.statusw);
	if (t.promptw)
		delwin(t.promptw);
	figs_free(&t);
	hist_free(&t);
	log_free(&t);
	if (t.trace)
		fclose(t.trace);
	return true;
}
