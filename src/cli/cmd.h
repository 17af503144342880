/* cmd.h - the command table (tmux style): entries, parsed arguments, context. */
#ifndef DFQ_CLI_CMD_H
#define DFQ_CLI_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "dfq/dfq_error.h"

struct session;

/* What a command's exec returns; the runner decides what happens next. */
enum cmd_retval {
	CMD_RETURN_NORMAL = 0,
	CMD_RETURN_ERROR, /* failed (at the prompt the rest of the line is dropped) */
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

/* The numbers an argument (flag, positional or setting) accepts.  One parser
 * (num_parse) checks them all and words every refusal the same way:
 * "NAME must be RANGE, not 'VALUE'". */
struct num_spec {
	bool whole;       /* whole numbers only (else any finite real) */
	double lo, hi;    /* inclusive bounds; -INFINITY / INFINITY: none */
	bool above_lo;    /* lo itself is refused ("a number above 0") */
	const char *zero; /* 0 is accepted too, outside [lo, hi], and means this ("float") */
	const int *only;  /* whole numbers: exactly these, -1 terminated (lo/hi unused) */
};

/* One long flag ("--out"), named without the dashes. */
struct args_flag {
	const char *name;
	bool takes_value;
	const char *const *choices; /* the values completion offers (NULL-terminated), or NULL */
	const struct num_spec *num; /* a number: args_parse() checks it, args_num() reads it */
};

struct args_sub;

/* The argument template: flags (NULL-name terminated, or NULL for none) and
 * the number of positionals; max_pos -1 means no limit.  kind and choices
 * say what the positionals are (completion reads them; the runner resolves
 * ARGS_TARGET positionals into the context).  trailing: the last positionals
 * that are not targets (clip TARGET... LO HI has 2); with a bounded max_pos,
 * completion offers choices there (hist LAYER [weights|act]).  subs: for an
 * ARGS_CHOICE first word, what the words after it are (plot channels LAYER). */
struct args_spec {
	const struct args_flag *flags;
	int min_pos, max_pos;
	enum args_kind kind;
	const char *const *choices; /* ARGS_CHOICE: the words; ARGS_TARGET: the trailing words */
	int trailing;
	const struct args_sub *subs; /* NULL-word terminated, or NULL */
};

/* After the first word `word`, the positionals are those of rest (its flags
 * are not used: the command's own are). */
struct args_sub {
	const char *word;
	const struct args_spec *rest;
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

/* What a command needs and what it is (struct cmd_entry's flags).  The runner
 * (cmd_run_argv) acts on them, so commands do not repeat the checks. */
#define CMD_NEEDS_MODEL 0x1u /* refused with CLI_MSG_NO_MODEL when no model is loaded */
#define CMD_NEEDS_DATA  0x2u /* refused with CLI_MSG_NO_DATA when no data set is open */
#define CMD_TARGET_ALL  0x4u /* no TARGET positionals means all layers */
#define CMD_STEP        0x8u /* changes the model: one recorded, undoable step (steps.c) */

/* The one wording of each refusal, wherever it is made. */
#define CLI_MSG_NO_MODEL "no model loaded; use 'load MODEL.onnx' first"
#define CLI_MSG_NO_DATA  "no data set; use 'data SPEC' first (e.g. 'data fmnist')"

struct cmd_entry {
	const char *name;
	/* Other names, NULL-terminated (NULL if none).  An exact alias wins over
	 * a prefix: "q" is quit although quantize starts with it too. */
	const char *const *alias;
	const char *usage; /* full usage line, starting with the name */
	struct args_spec args;
	const char *summary; /* one line for `help` */
	enum cmd_retval (*exec)(struct cmd_ctx *ctx, struct args *args);
	unsigned flags;   /* CMD_NEEDS_MODEL, CMD_NEEDS_DATA, CMD_TARGET_ALL, CMD_STEP */
	const char *help; /* more lines for `help COMMAND` (may be NULL) */
};

/* Where a command runs and where its output goes. */
struct cmd_ctx {
	struct session *s;
	const struct cmd_entry *entry; /* NULL before lookup succeeded */
	const char *word;              /* the command word as typed */
	const char *file;              /* script name for "FILE:LINE: ", NULL otherwise */
	int line;
	cJSON *json;     /* --json: the result object being built, else NULL */
	bool reported;   /* an error line was printed for this command */
	char *line_text; /* the command as typed: argv re-joined, quoted where
	                  * needed (owned by the runner; labels steps) */
	/* ARGS_TARGET commands: the layers their TARGET positionals name (all of
	 * them for CMD_TARGET_ALL when none are given), resolved by the runner,
	 * which owns sel: m->nlayers flags, NULL when there were no targets. */
	bool *sel;
	int nsel;             /* layers selected */
	char *const *targets; /* the target words (borrowed), ntargets of them */
	int ntargets;
	/* CMD_STEP commands: the runner opened the model's transaction; an
	 * invocation that turns out to change nothing sets not_a_step, and the
	 * transaction is rolled back instead of recorded */
	bool step_open;
	bool not_a_step;
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
extern const struct cmd_entry cmd_hist_entry;
extern const struct cmd_entry cmd_plot_entry;
extern const struct cmd_entry cmd_sensitivity_entry;
extern const struct cmd_entry cmd_compare_entry;
extern const struct cmd_entry cmd_reset_entry;
extern const struct cmd_entry cmd_steps_entry;
extern const struct cmd_entry cmd_undo_entry;
extern const struct cmd_entry cmd_redo_entry;
extern const struct cmd_entry cmd_save_entry;
extern const struct cmd_entry cmd_export_entry;
extern const struct cmd_entry cmd_export_enc_entry;
extern const struct cmd_entry cmd_session_entry;
extern const struct cmd_entry cmd_echo_entry;
extern const struct cmd_entry cmd_help_entry;
extern const struct cmd_entry cmd_quit_entry;
extern const struct cmd_entry cmd_set_entry;
extern const struct cmd_entry cmd_show_entry;
extern const struct cmd_entry cmd_source_entry;
extern const struct cmd_entry cmd_float_entry;
extern const struct cmd_entry cmd_bits_entry;
extern const struct cmd_entry cmd_sweep_entry;

/* cmd.c: lookup by exact name or alias, then unique prefix.  On failure
 * returns NULL and writes one sentence (ambiguous / unknown with the closest
 * suggestion) into why. */
const struct cmd_entry *cmd_find(const char *word, char *why, size_t len);
/* True when word is one of e's aliases / a prefix of its name or an alias. */
bool cmd_is_alias(const struct cmd_entry *e, const char *word);
bool cmd_starts_with(const struct cmd_entry *e, const char *word);
/* "exit, q": e's aliases into buf ("" when none); returns buf. */
const char *cmd_alias_list(const struct cmd_entry *e, char *buf, size_t len);

/* Run one line: split on ';' (outside quotes), tokenize shell-like, run
 * each command.  file/line (file may be NULL) prefix error messages.
 * At the prompt (script false) a failing command drops the rest of its line
 * and the line returns CMD_RETURN_ERROR.  In a script every command is a
 * unit: a failure stops the line (CMD_RETURN_ERROR) only when errexit is on;
 * with errexit off the next command runs and the line returns
 * CMD_RETURN_NORMAL (the failure is kept in had_error). */
enum cmd_retval cmd_run_line(struct session *s, const char *line, const char *file, int lineno,
                             bool script);
/* Run one already-split command (argv[0] is the command word). */
enum cmd_retval cmd_run_argv(struct session *s, int argc, char **argv, const char *file,
                             int lineno);
/* Run newline-separated lines from a string (-c) as a script.  Returns
 * CMD_RETURN_ERROR when a command failed with errexit on (the rest is not
 * run), CMD_RETURN_QUIT after quit. */
enum cmd_retval cmd_run_string(struct session *s, const char *text);
/* Run a command file (-x, source, piped stdin) as a script; name is used in
 * messages.  Same return convention as cmd_run_string. */
enum cmd_retval cmd_run_stream(struct session *s, FILE *fp, const char *name);
/* The words of a line holding one command, split as cmd_run_line() splits
 * them (malloc'd, NULL-terminated, *argc of them; free with cmd_words_free).
 * NULL with why when the line does not split or holds no or several commands. */
char **cmd_split_words(const char *line, int *argc, char *why, size_t len);
void cmd_words_free(int argc, char **argv);
/* argv re-joined with shell quoting where a word needs it, so that
 * cmd_run_line() would split it back into the same words (malloc'd). */
char *cmd_join_argv(int argc, char *const *argv);

/* args.c: check argv[1..argc) against spec.  On failure returns false and
 * writes one sentence into why (ending in the usage line). */
bool args_parse(const struct cmd_entry *entry, int argc, char **argv, struct args *out, char *why,
                size_t len);
void args_free(struct args *a);
bool args_has(const struct args *a, const char *flag);
/* The flag's value (last one given wins), or NULL. */
const char *args_get(const struct args *a, const char *flag);
/* The value of a number flag (checked by args_parse against its num_spec),
 * or def when the flag was not given. */
double args_num(const struct args *a, const char *flag, double def);

/* args.c: the one number parser.  num_parse() reads text as spec says and
 * is false when it is not such a number; num_why() words the refusal
 * ("NAME must be RANGE, not 'TEXT'"); num_range() is the RANGE part
 * ("a whole number from 2 to 16 (or 0: float)"). */
bool num_parse(const char *text, const struct num_spec *spec, double *out);
void num_why(const char *name, const char *text, const struct num_spec *spec, char *why,
             size_t len);
const char *num_range(const struct num_spec *spec, char *buf, size_t len);
/* num_parse(), reporting the refusal for ctx (name: "--n", "LO", ...). */
bool cmd_num(struct cmd_ctx *ctx, const char *name, const char *text, const struct num_spec *spec,
             double *out);

/* output.c: the only ways a command reports.  A command's RESULT (what it
 * was asked for: accuracies, tables, statistics, help) goes through
 * cmd_result and is silenced only by --json; informational text (step
 * summaries, notes, progress) through cmd_print, silenced by -q too; the
 * per-layer rows of a step through cmd_detail, printed only in verbose mode
 * (-v, set verbose on) and never with -q (--json keeps them as "rows"). */
void cmd_result(struct cmd_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cmd_print(struct cmd_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cmd_detail(struct cmd_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* cmd_result when result, else cmd_print. */
void cmd_out(struct cmd_ctx *ctx, bool result, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The session is verbose (cmd_detail prints). */
bool cmd_verbose(const struct cmd_ctx *ctx);
void cmd_error(struct cmd_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The core's error as one line: its message, and what to do about it when
 * the core names a remedy (err->remedy), in this program's commands. */
enum cmd_retval cmd_fail_error(struct cmd_ctx *ctx, const struct dfq_error *err);
/* cmd_error() and return CMD_RETURN_ERROR, so a failure path is one line. */
enum cmd_retval cmd_fail(struct cmd_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Print the --json result object of a finished command (one line). */
void cmd_emit_json(struct cmd_ctx *ctx);

#endif
