/* prompt.c - the command line at the bottom of the screen: GNU Readline inside curses through
 * its callback interface, as tig's prompt does.  curses owns the terminal and reads the keys;
 * each key goes to readline (rl_getc_function, rl_callback_read_char), which edits, completes
 * and keeps the history as at the line-mode prompt; its line is drawn by rl_redisplay_function
 * into the last row.  Readline never touches the terminal or the signals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "tui_internal.h"

/* The screen whose command line readline edits (one at a time). */
static struct tui *rl_tui;

/* Bytes waiting for readline: a key becomes one byte or an escape sequence. */
static unsigned char pending[32];
static int npending, pos;

/* What Enter does with the line: run it, or search the layers. */
static bool searching;

static int getc_hook(FILE *f)
{
	(void)f;
	return pos < npending ? pending[pos++] : EOF;
}

static int input_hook(void)
{
	return pos < npending;
}

static void noop_prep(int meta)
{
	(void)meta;
}

static void noop_deprep(void)
{
}

/* The prompt: where the session stands. */
static void prompt_text(struct tui *t, char *buf, size_t len)
{
	if (searching) {
		snprintf(buf, len, "/");
		return;
	}
	const struct session *s = t->s;
	if (!s->model) {
		snprintf(buf, len, "dfq> ");
		return;
	}
	const char *name = strrchr(s->model_path, '/');
	name = name ? name + 1 : s->model_path;
	char base[64];
	snprintf(base, sizeof base, "%s", name);
	char *dot = strrchr(base, '.');
	if (dot)
		*dot = '\0';
	int n = dfq_model_history_applied(s->model);
	char a[16] = "float";
	if (s->set.abits)
		snprintf(a, sizeof a, "%d", s->set.abits);
	snprintf(buf, len, "dfq [%s, %d step%s, W%dA%s]> ", base, n, n == 1 ? "" : "s",
	         s->set.wbits, a);
}

void prompt_draw(struct tui *t)
{
	WINDOW *win = t->promptw;
	if (!win)
		return;
	int w = t->cols;
	char pr[160];
	prompt_text(t, pr, sizeof pr);
	int plen = (int)strlen(pr);
	werase(win);
	if (!t->cmdline) {
		wattron(win, tui_attr(t, C_DIM));
		mvwaddnstr(win, 0, 0, pr, w);
		wattroff(win, tui_attr(t, C_DIM));
		wnoutrefresh(win);
		return;
	}
	wattron(win, A_BOLD);
	mvwaddnstr(win, 0, 0, pr, w);
	wattroff(win, A_BOLD);
	/* the line scrolls sideways to keep the cursor in view */
	const char *line = rl_line_buffer ? rl_line_buffer : "";
	int room = w - plen - 1 > 1 ? w - plen - 1 : 1;
	int cur = rl_point, first = cur >= room ? cur - room + 1 : 0;
	mvwaddnstr(win, 0, plen, line + first, room);
	wmove(win, 0, plen + cur - first);
	wnoutrefresh(win);
}

static void redisplay_hook(void)
{
	if (!rl_tui)
		return;
	prompt_draw(rl_tui);
	doupdate();
}

/* A completed line: run it (or search), then leave the command line. */
static void on_line(char *line)
{
	struct tui *t = rl_tui;
	bool search = searching;
	prompt_close(t);
	if (!line) {
		/* Ctrl-D on an empty line leaves, as in line mode */
		t->quit = true;
		return;
	}
	if (search) {
		if (*line)
			layers_search(t, line);
	} else if (line[strspn(line, " \t")]) {
		repl_history_add(line);
		tui_command(t, line);
	}
	free(line);
}

/* Completion candidates go to the log, as the line-mode prompt lists them. */
static void show_matches(char **matches, int n, int longest)
{
	(void)longest;
	char buf[1024];
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 1; i <= n && used < sizeof buf - 1; i++)
		used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%s", i > 1 ? "  " : "",
		                         matches[i]);
	log_add(rl_tui, OUT_INFO, buf, false);
	tui_dirty(rl_tui, false);
	rl_forced_update_display();
}

void prompt_init(struct tui *t)
{
	rl_tui = t;
	repl_readline_setup(t->s);
	/* readline must not touch the terminal, the signals or the environment */
	rl_catch_signals = 0;
	rl_catch_sigwinch = 0;
	rl_change_environment = 0;
	rl_prep_term_function = noop_prep;
	rl_deprep_term_function = noop_deprep;
	rl_getc_function = getc_hook;
	rl_input_available_hook = input_hook;
	rl_redisplay_function = redisplay_hook;
	rl_completion_display_matches_hook = show_matches;
	/* the bell and anything else readline would print */
	rl_outstream = fopen("/dev/null", "w");
}

void prompt_done(struct tui *t)
{
	if (rl_tui == t)
		rl_callback_handler_remove();
	repl_readline_done();
	if (rl_outstream && rl_outstream != stdout)
		fclose(rl_outstream);
	rl_outstream = NULL;
	rl_tui = NULL;
}

static void open_mode(struct tui *t, const char *text, bool search)
{
	searching = search;
	t->cmdline = true;
	char pr[160];
	prompt_text(t, pr, sizeof pr);
	rl_callback_handler_install(pr, on_line);
	if (text) {
		rl_insert_text(text);
		rl_point = rl_end;
	}
	curs_set(1);
	tui_dirty(t, true);
}

void prompt_open(struct tui *t, const char *text)
{
	open_mode(t, text, false);
}

void prompt_search(struct tui *t)
{
	open_mode(t, NULL, true);
}

void prompt_close(struct tui *t)
{
	t->cmdline = false;
	searching = false;
	rl_callback_handler_remove();
	curs_set(0);
	tui_dirty(t, true);
}

/* A curses key as the bytes a terminal would send readline. */
static void feed(int ch)
{
	const char *seq = NULL;
	switch (ch) {
	case KEY_LEFT:
		seq = "\033[D";
		break;
	case KEY_RIGHT:
		seq = "\033[C";
		break;
	case KEY_UP:
		seq = "\033[A";
		break;
	case KEY_DOWN:
		seq = "\033[B";
		break;
	case KEY_HOME:
		seq = "\033[H";
		break;
	case KEY_END:
		seq = "\033[F";
		break;
	case KEY_DC:
		seq = "\033[3~";
		break;
	case KEY_BACKSPACE:
		ch = 127;
		break;
	case KEY_ENTER:
	case '\n':
		ch = '\r';
		break;
	}
	npending = pos = 0;
	if (seq) {
		npending = (int)strlen(seq);
		memcpy(pending, seq, (size_t)npending);
	} else if (ch >= 0 && ch < 256) {
		pending[npending++] = (unsigned char)ch;
	}
}

void prompt_key(struct tui *t, int ch)
{
	if (ch == 27) { /* Esc: leave the command line */
		prompt_close(t);
		return;
	}
	feed(ch);
	while (t->cmdline && pos < npending)
		rl_callback_read_char();
	npending = pos = 0;
}
