/* cmd.h - the command table (tmux style): entries, parsed arguments, context. */
#ifndef DFQ_CLI_CMD_H
#define DFQ_CLI_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

struct session;

/* What a command's exec returns; the runner decides what happens next. */
enum cmd_retval {
	CMD_RETURN_NORMAL = 0,
	CMD_RETURN_ERROR, /* failed: the rest of the line is dropped */
	CMD_RETURN_QUIT,  /* leave the program */
};

/* What an argument names, so that completion offers the right words. */
enum args_kind {
	ARGS_FILE = 0, /* a file, or free text: file names are offered */
	ARGS_TARGET,   /* layers (LAYER...|all): the model's layer names and all */
	ARGS_CHOICE,   /* one of the spec's choices */
	ARGS_COMMAND,  /* a command name or alias */
	ARGS_SETTING,  /* KEY VALUE: a setting, then a value for it */
};

/* One long flag ("--out"), named without the dashes. */
struct args_flag {
	const char *name;
	bool takes_value;
	const char *const *choices; /* the values completion offers (NULL-terminated), or NULL */
};

/* The argument template: flags (NULL-name terminated, or NULL for none) and
 * the number of positionals; max_pos -1 means no limit.  kind and choices
 * say what the positionals are (only completion reads them: each command
 * checks its own values). */
struct args_spec {
	const struct args_flag *flags;
	int min_pos, max_pos;
	enum args_kind kind;
	const char *const *choices; /* ARGS_CHOICE: the words, NULL-terminated */
};

struct args_value {
	const char *name; /* points into the entry's flag table */
	char *value;      /* owned copy; NULL for a switch */
};

/* Parsed arguments.  Owns pos[] strings and flags[] values; args_free(). */
struct args {
	int npos;
	char **pos;
	int nflags;
	struct args_value *flags;
};

struct cmd_ctx;

struct cmd_entry {
	const char *name;
	/* Other names, NULL-terminated (NULL if none).  An exact alias wins over
	 * a prefix: "q" is quit although quantize starts with it too. */
	const char *const *alias;
	const char *usage; /* full usage line, starting with the name */
	struct args_spec args;
	const char *summary; /* one line for `help` */
	enum cmd_retval (*exec)(struct cmd_ctx *ctx, struct args *args);
};

/* Where a command runs and where its output goes. */
struct cmd_ctx {
	struct session *s;
	const struct cmd_entry *entry; /* NULL before lookup succeeded */
	const char *word;              /* the command word as typed */
	const char *file;              /* script name for "FILE:LINE: ", NULL otherwise */
	int line;
	cJSON *json;   /* --json: the result object being built, else NULL */
	bool reported; /* an error line was printed for this command */
};

/* The registry: NULL-terminated, in `help` order. */
extern const struct cmd_entry *const cmd_table[];

extern const struct cmd_entry cmd_load_entry;
extern const struct cmd_entry cmd_infer_entry;
extern const struct cmd_entry cmd_data_entry;
extern const struct cmd_entry cmd_eval_entry;
extern const struct cmd_entry cmd_layers_entry;
extern const struct cmd_entry cmd_info_entry;
extern const struct cmd_entry cmd_fold_entry;
extern const struct cmd_entry cmd_relu6_entry;
extern const struct cmd_entry cmd_clip_entry;
extern const struct cmd_entry cmd_equalize_entry;
extern const struct cmd_entry cmd_absorb_entry;
extern const struct cmd_entry cmd_quantize_entry;
extern const struct cmd_entry cmd_dequantize_entry;
extern const struct cmd_entry cmd_measure_entry;
extern const struct cmd_entry cmd_biascorr_entry;
extern const struct cmd_entry cmd_error_entry;
extern const struct cmd_entry cmd_reset_entry;
extern const struct cmd_entry cmd_echo_entry;
extern const struct cmd_entry cmd_help_entry;
extern const struct cmd_entry cmd_quit_entry;
extern const struct cmd_entry cmd_set_entry;
extern const struct cmd_entry cmd_show_entry;
extern const struct cmd_entry cmd_source_entry;

/* cmd.c: lookup by exact name or alias, then unique prefix.  On failure
 * returns NULL and writes one sentence (ambiguous / unknown with the closest
 * suggestion) into why. */
const struct cmd_entry *cmd_find(const char *word, char *why, size_t len);
/* True when word is one of e's aliases / a prefix of its name or an alias. */
bool cmd_is_alias(const struct cmd_entry *e, const char *word);
bool cmd_starts_with(const struct cmd_entry *e, const char *word);
/* "exit, q": e's aliases into buf ("" when none); returns buf. */
const char *cmd_alias_list(const struct cmd_entry *e, char *buf, size_t len);
/* Levenshtein distance, for "did you mean". */
int cmd_edit_distance(const char *a, const char *b);

/* Run one line: split on ';' (outside quotes), tokenize shell-like, run
 * each command; an error drops the rest of the line.  file/line (file may be
 * NULL) prefix error messages. */
enum cmd_retval cmd_run_line(struct session *s, const char *line, const char *file, int lineno);
/* Run one already-split command (argv[0] is the command word). */
enum cmd_retval cmd_run_argv(struct session *s, int argc, char **argv, const char *file,
                             int lineno);
/* Run newline-separated lines from a string (-c).  Returns CMD_RETURN_ERROR
 * when it stopped early because a line failed with errexit on. */
enum cmd_retval cmd_run_string(struct session *s, const char *text);
/* Run a command file (-x, source, piped stdin); name is used in messages.
 * Same return convention as cmd_run_string. */
enum cmd_retval cmd_run_stream(struct session *s, FILE *fp, const char *name);

/* args.c: check argv[1..argc) against spec.  On failure returns false and
 * writes one sentence into why (ending in the usage line). */
bool args_parse(const struct cmd_entry *entry, int argc, char **argv, struct args *out, char *why,
                size_t len);
void args_free(struct args *a);
bool args_has(const struct args *a, const char *flag);
/* The flag's value (last one given wins), or NULL. */
const char *args_get(const struct args *a, const char *flag);

/* output.c: the only ways a command reports. */
void cmd_print(struct cmd_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cmd_error(struct cmd_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* cmd_error() and return CMD_RETURN_ERROR, so a failure path is one line. */
enum cmd_retval cmd_fail(struct cmd_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Print the --json result object of a finished command (one line). */
void cmd_emit_json(struct cmd_ctx *ctx);

#endif
