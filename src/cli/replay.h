/* replay.h - command scripts that rebuild a session (save, session load). */
#ifndef DFQ_CLI_REPLAY_H
#define DFQ_CLI_REPLAY_H

#include <stdbool.h>
#include <stddef.h>

#include "cli.h"

/* A growing text of command lines.  text is owned (NULL until the first
 * line); oom says a line could not be added (the text is then incomplete). */
struct script {
	char *text;
	size_t len, cap;
	bool oom;
};
/* Append one line (no newline in fmt). */
void script_add(struct script *sc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void script_free(struct script *sc);

/* The `set` lines that take the settings from *from to *to, for the
 * settings that change what steps compute. */
void script_settings(struct script *sc, const struct settings *from, const struct settings *to);

/* What a replay has set up so far: the settings and the data command
 * (borrowed), starting from a fresh session's. */
struct replay_state {
	struct settings set;
	const char *data;
};
void replay_state_init(struct replay_state *st);
/* The lines that bring the replay to settings set and data (a data command,
 * or NULL for "whatever is open"), updating st. */
void script_state(struct script *sc, struct replay_state *st, const struct settings *set,
                  const char *data);
/* Both NULL or the same command. */
bool replay_same_data(const char *a, const char *b);

/* A replaying session's sink (session load, sweep's scratch sessions): its output goes
 * nowhere but its first error, kept for the one line the command prints. */
struct replay_capture {
	char first[768];
};
void replay_capture_sink(void *user, enum out_kind kind, const char *line);

/* cmd-save.c: the command script of s's applied steps and settings, titled
 * with the file it goes to (may be NULL).  false when out of memory. */
bool save_script(const struct session *s, struct script *sc, const char *title);

#endif
