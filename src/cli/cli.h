/* cli.h - the dfq program's session state, settings, messages and REPL. */
#ifndef DFQ_CLI_H
#define DFQ_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "dfq/dfq_error.h"
#include "dfq/dfq_exec.h"
#include "dfq/dfq_graph.h"

/* User-visible settings (`set KEY VALUE`, `show settings`). */
struct settings {
	int threads;  /* kernel threads; 0 = all online CPUs */
	bool fast;    /* fast kernels (false = scalar oracle) */
	bool errexit; /* a failing script line stops the script */
};

/* Everything a command can see.  The session owns the graph, its path and
 * the executor; the executor borrows the graph and is rebuilt whenever the
 * model or an execution setting changes. */
struct session {
	struct dfq_graph *graph; /* owned, NULL when no model is loaded */
	char *model_path;        /* owned, NULL when no model is loaded */
	struct dfq_exec *exec;   /* owned, created lazily by session_exec() */
	struct settings set;
	bool json;               /* --json: one JSON object per command on stdout */
	bool quiet;              /* -q: no informational text */
	bool had_error;          /* some command failed (exit status 1) */
	int depth;               /* nesting of `source` */
};

#define SESSION_MAX_DEPTH 16

void session_init(struct session *s);
void session_free(struct session *s);
/* Replace the model: takes ownership of g, copies path, drops the executor. */
dfq_status session_set_model(struct session *s, struct dfq_graph *g, const char *path,
			     struct dfq_error *err);
/* The executor for the current model and settings (borrowed from s), built on
 * first use.  NULL with err filled when there is no model or it cannot be built. */
struct dfq_exec *session_exec(struct session *s, struct dfq_error *err);

/* The settings table, shared by `set`, `show settings` and completion. */
enum setting_type { SETTING_INT, SETTING_BOOL };
struct setting_def {
	const char *name;
	enum setting_type type;
	const char *help;
};
/* NULL-name terminated. */
extern const struct setting_def session_settings[];
/* Set KEY to VALUE; false with one sentence in why when either is bad. */
bool session_setting_set(struct session *s, const char *key, const char *value, char *why,
			 size_t len);
/* Current value of setting i: as a number (bools are 0/1) and as text. */
int session_setting_int(const struct session *s, int i);
const char *session_setting_str(const struct session *s, int i, char *buf, size_t len);

/* output.c: messages outside any command (warnings from option handling,
 * the banner).  cli_info is silenced by -q and --json. */
void cli_info(const struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* repl.c: the interactive GNU Readline loop; returns when the user quits. */
void repl_run(struct session *s);

#endif
