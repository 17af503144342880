/* tui.h - the workbench screen: ncurses panes around the session, the command line at the
 * bottom.  The screen only calls the program's command runner and the core's queries; every
 * command it runs behaves as in line mode, its text going to the log pane. */
#ifndef DFQ_TUI_H
#define DFQ_TUI_H

#include <stdbool.h>
#include <stddef.h>

struct session;

/* Whether the screen can run here: stdin and stdout are terminals and TERM
 * names one that can address the cursor (not "dumb").  why gets the reason
 * when not (may be NULL). */
bool tui_possible(char *why, size_t len);

/* Run the screen on s until the user leaves (q, Ctrl-D or quit), running
 * the n command lines first first (e.g. load MODEL: their text goes to the
 * log).  Returns false, with nothing run, when the terminal could not be set
 * up. */
bool tui_run(struct session *s, const char *const *first, int n);

#endif
