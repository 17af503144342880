/* gnuplot.h - one long-lived gnuplot per session, run as a co-process.
 *
 * gnuplot starts on first use (fork and exec, found on $PATH) with two pipes:
 * dfq writes commands to its standard input and reads its standard output and
 * error (one pipe) back.  Every exchange ends with gnuplot printing a sentinel
 * line, read with a deadline, so a gnuplot that is stuck or dead is noticed
 * instead of hanging dfq: writes never block (SIGPIPE is ignored around them,
 * EPIPE means gone), its exit is noticed (waitpid WNOHANG, and a SIGCHLD
 * handler reaps it at once), and one that misses the deadline is killed.  It
 * runs in a process group of its own, so Ctrl-C at dfq's prompt does not
 * reach it, gets SIGTERM if dfq dies, and gnuplot_close() kills what is left
 * of the group and reaps it: no zombie, no gnuplot outliving dfq.
 *
 * The deadline is 10 s, or $DFQ_GNUPLOT_TIMEOUT seconds.  Not thread-safe:
 * one thread plots. */
#ifndef DFQ_CLI_GNUPLOT_H
#define DFQ_CLI_GNUPLOT_H

#include <stdbool.h>
#include <stddef.h>

struct gnuplot;
struct session;

enum gnuplot_status {
	GNUPLOT_OK = 0,
	GNUPLOT_MISSING, /* not installed: no gnuplot on $PATH, or it cannot be run */
	GNUPLOT_FAILED,  /* died, or stuck past the deadline (then killed); the next
	                  * use starts a new one */
	GNUPLOT_ERROR,   /* it reported an error (why holds its message); it keeps running */
};

/* A handle; nothing is started until the first use.  NULL when out of memory. */
struct gnuplot *gnuplot_new(void);
/* End gnuplot (its input closed, so it quits; SIGTERM, then SIGKILL to its
 * process group after a short grace), reap it and free gp.  NULL is fine. */
void gnuplot_close(struct gnuplot *gp);

/* The session's gnuplot, created on first use (NULL when out of memory).
 * session_free() ends it with gnuplot_close(). */
struct gnuplot *session_gnuplot(struct session *s);

/* Start gnuplot unless it is running, and learn its terminals (once per
 * process started).  A gnuplot found missing stays missing for this handle. */
enum gnuplot_status gnuplot_start(struct gnuplot *gp, char *why, size_t len);
/* The running gnuplot has terminal name ("pngcairo", "svg", "dumb", ...). */
bool gnuplot_has_terminal(struct gnuplot *gp, const char *name);
/* The window terminal to use: "qt", "wxt" or "x11" when $DISPLAY is set and
 * gnuplot has it, else NULL.  Starts gnuplot when needed. */
const char *gnuplot_window_terminal(struct gnuplot *gp);

/* Send cmds (complete lines) and wait until gnuplot has run them.  *out (out
 * may be NULL) gets what it printed meanwhile (malloc'd, caller frees; NULL
 * on failure).  A reported error gives GNUPLOT_ERROR with its message. */
enum gnuplot_status gnuplot_run(struct gnuplot *gp, const char *cmds, char **out, char *why,
                                size_t len);

/* text as a gnuplot string constant that is safe in any command: single
 * quotes (no backquote or macro substitution), ' doubled, a newline as
 * '."\n".', other control characters as '?'.  Returns buf (truncated text
 * stays a complete constant). */
const char *gnuplot_quote(const char *text, char *buf, size_t len);

#endif
