/* cli.h - the dfq program's session state, settings, messages and REPL. */
#ifndef DFQ_CLI_H
#define DFQ_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "dfq/dfq_analysis.h"
#include "dfq/dfq_data.h"
#include "dfq/dfq_error.h"
#include "dfq/dfq_exec.h"
#include "dfq/dfq_graph.h"
#include "dfq/dfq_model.h"
#include "dfq/dfq_quant.h"

#include "cmd.h"

/* User-visible settings (`set KEY VALUE`, `show settings`). */
struct settings {
	int threads;  /* kernel threads; 0 = all online CPUs */
	bool fast;    /* fast kernels (false = scalar oracle) */
	bool errexit; /* a failing script line stops the script */
	int batch;    /* samples per run in eval (and other data passes) */
	/* DFQ defaults (quantize, equalize, QuantMeasure) */
	int wbits, abits, bbits; /* quantize: weights, activations (0 float), bias (0 float) */
	dfq_qscheme scheme;      /* asym or sym grids */
	dfq_qscheme eq_range;    /* equalize's channel range: ASYM max - min, SYM 2 max |w| */
	dfq_eq_chains eq_chains; /* equalize: through linear layers, or stop at them */
	bool per_channel;        /* granularity: a weight grid per output channel */
	dfq_range_src act_range; /* where activation ranges come from */
	double n_std;            /* data-free ranges: beta +- n_std |gamma| */
	bool timing;             /* print each command's wall time and eval's speed */
	bool verbose;            /* steps list every layer they touched (-v) */
};

/* An accuracy kept for the deltas `eval` prints. */
struct eval_mark {
	bool valid;
	int64_t n; /* samples it was measured on */
	double top1, top5;
};

/* What a line of output is, for a sink that shows them apart. */
enum out_kind {
	OUT_RESULT, /* what the command was asked for */
	OUT_INFO,   /* what it did (silenced by -q) */
	OUT_DETAIL, /* per-layer rows (verbose) */
	OUT_ERROR,  /* one line per failure */
	OUT_JSON,   /* --json: one result object */
};
/* Where the session's output goes instead of stdout/stderr. */
typedef void (*out_sink)(void *user, enum out_kind kind, const char *line);
/* Where progress of long work goes: done of total units of what ("eval"),
 * secs since it began; done < 0 means it ended. */
typedef void (*progress_sink)(void *user, const char *what, int64_t done, int64_t total,
                              double secs);

/* What the program keeps with each step of the model's history (the
 * entry's tag; its label is the command as typed). */
struct step_tag {
	struct settings set;   /* the settings the step ran with */
	char *data;            /* the data command in force (owned), or NULL */
	struct eval_mark eval; /* the accuracy after it, when an eval followed */
	bool eval_quant;       /* that eval ran the fake-quantized model */
	time_t when;           /* when it was first made (a session load replays it), or 0 */
};

/* One eval of the session, for the history of accuracies. */
struct eval_record {
	int step;   /* steps applied when it ran (0: the model as loaded) */
	bool quant; /* fake-quantized */
	struct eval_mark mark;
	time_t when;
};

/* Everything a command can see.  The session owns the DFQ model (which owns
 * the graph), its path and the executor; the executor borrows the graph and
 * is rebuilt whenever the model is replaced or an execution setting changes
 * (DFQ steps edit the graph in place and keep it). */
struct session {
	struct dfq_model *model; /* owned, NULL when no model is loaded */
	struct dfq_graph *graph; /* borrowed: model->g (NULL when no model is loaded) */
	char *model_path;        /* owned, NULL when no model is loaded */
	char model_sha256[65];   /* the model file's SHA-256 when it was loaded ("" unknown) */
	struct dfq_exec *exec;   /* owned, created lazily by session_exec() */
	struct dfq_data *data;   /* owned, NULL until `data SPEC` */
	struct settings set;
	bool json;             /* --json: one JSON object per command on stdout */
	bool quiet;            /* -q: no informational text */
	bool had_error;        /* some command failed (exit status 1) */
	int depth;             /* nesting of `source` */
	struct eval_mark fp32; /* the model before any step (eval of the unchanged model) */
	struct eval_mark last; /* the previous eval */
	char *data_line;       /* owned: the data command that opened data, for save */
	bool steps_unsaved;    /* the history moved since the last save / session save */
	struct eval_record *evals; /* owned: every eval on this model, oldest first */
	int nevals, cap_evals;
	out_sink sink;   /* NULL: stdout and stderr */
	void *sink_user; /* the sink's */
	progress_sink progress; /* NULL: a bar on stderr when it is a terminal */
	void *progress_user;
	bool progress_drawn; /* the stderr bar is on the screen */
	double progress_last; /* seconds at its last redraw */
	/* replaying a session file: a step line may run only steps, its data line only `data`
	 * (a hand-edited file must not run `session save`, `source` or `quit`) */
	enum { RUN_ANY = 0, RUN_STEPS, RUN_DATA } only;
	struct gnuplot *gnuplot; /* owned: the chart co-process (gnuplot.h), NULL until a plot */
	struct sweep_result *sweep; /* owned: the last sweep (sweep.h), for plot sweep, or NULL */
	/* the last sensitivity and compare results on this model (owned, NULL
	 * when none), for plot and the screen; dropped with the model */
	struct dfq_sens_result *sens;
	struct dfq_cmp_result *cmp;
};

#define SESSION_MAX_DEPTH 16

void session_init(struct session *s);
void session_free(struct session *s);
/* Replace the model: takes ownership of g (freed on failure), wraps it in a
 * DFQ model with the session's settings and its input range from the data
 * (see session_set_data), copies path, drops the executor.
 * The accuracy marks go unless path is the current model's (reset). */
dfq_status session_set_model(struct session *s, struct dfq_graph *g, const char *path,
                             struct dfq_error *err);
/* Forget the kept sensitivity and compare results. */
void session_drop_analysis(struct session *s);
/* Replace the DFQ model by m (taken; same file, e.g. a folded copy). */
void session_replace_model(struct session *s, struct dfq_model *m);
/* A step changed the model in place. */
void session_model_changed(struct session *s);
/* QUANT when some layer is quantized, else FP32: how the model "stands". */
dfq_run_mode session_run_mode(const struct session *s);
/* True when the model computes what its file does: no step but fold, no
 * quantization (its eval is the FP32 baseline). */
bool session_model_pristine(const struct session *s);
/* The executor for the current model and settings (borrowed from s), built on
 * first use.  NULL with err filled when there is no model or it cannot be built. */
struct dfq_exec *session_exec(struct session *s, struct dfq_error *err);
/* Replace the data set (takes ownership of d; NULL drops it).  The model's
 * input gets the range of d's samples when d knows it (8-bit pixels), else
 * none; on failure the session is unchanged and d is still the caller's. */
dfq_status session_set_data(struct session *s, struct dfq_data *d, struct dfq_error *err);

/* Ctrl-C during a long command: between cli_interrupt_catch(true) and
 * (false) SIGINT only sets a flag, which the command polls with
 * cli_interrupted() (e.g. between batches) to stop and return to the prompt.
 * Catches nest (a sweep runs steps that catch too): an inner pair keeps the
 * outer one's flag and handler. */
void cli_interrupt_catch(bool on);
bool cli_interrupted(void);

/* The step history's hooks (steps.c): the runner calls session_step_begin()
 * before the exec of every CMD_STEP command (false: the command fails and
 * nothing ran) and session_step_end() after it, with its outcome. */
bool session_step_begin(struct cmd_ctx *ctx);
/* Returns the command's outcome: rv, or an error when the step could not be
 * recorded (then nothing changed). */
enum cmd_retval session_step_end(struct cmd_ctx *ctx, enum cmd_retval rv);
/* An eval finished: keep it in the session's history of accuracies and with
 * the step it followed. */
void session_record_eval(struct session *s, bool quant, const struct eval_mark *mark);
/* The tag of history entry i of the model (NULL when the entry has none,
 * e.g. a range measurement made by eval). */
struct step_tag *session_step_tag(const struct session *s, int i);
/* Free a step tag (the history calls it when an entry goes). */
void step_tag_free(void *tag);

/* The settings table, shared by `set`, `show settings`, `help set` and
 * completion. */
enum setting_type { SETTING_INT, SETTING_BOOL, SETTING_CHOICE, SETTING_FLOAT };
struct setting_def {
	const char *name;
	enum setting_type type;
	const char *help;
	const char *const *choices; /* BOOL, CHOICE: the values (NULL-terminated) */
	const struct num_spec *num; /* INT, FLOAT: the numbers accepted */
};
/* NULL-name terminated. */
extern const struct setting_def session_settings[];
/* The setting named key, or NULL. */
const struct setting_def *session_setting_find(const char *key);
/* The bit widths quantize accepts, as flags and as settings. */
extern const struct num_spec cli_wbits_num, cli_abits_num, cli_bbits_num;
/* Set KEY to VALUE; false with one sentence in why when either is bad. */
bool session_setting_set(struct session *s, const char *key, const char *value, char *why,
                         size_t len);
/* Current value of setting i: as a number (bools are 0/1; choices their
 * index; floats rounded) and as text. */
int session_setting_int(const struct session *s, int i);
double session_setting_num(const struct session *s, int i);
const char *session_setting_str(const struct session *s, int i, char *buf, size_t len);

/* output.c: messages outside any command (warnings from option handling,
 * the banner).  cli_info is silenced by -q and --json. */
void cli_info(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Format output for cols columns instead of the terminal's (the screen's log pane);
 * 0 goes back to the terminal's width. */
void cli_set_output_width(int cols);
/* The columns tables may use: what cli_set_output_width set, else the terminal's
 * width when stdout is one, else $COLUMNS when it is set to a number, else 100. */
int cli_output_width(void);

/* output.c: progress of long work (eval, measuring, empirical bias
 * correction): to the session's progress sink, else a bar with an ETA on
 * stderr when it is a terminal (never with --json or -q).  Redraws at most
 * ten times a second.  cli_progress_end clears it. */
void cli_progress(struct session *s, const char *what, int64_t done, int64_t total, double secs);
void cli_progress_end(struct session *s);

/* repl.c: the interactive GNU Readline loop; returns when the user quits. */
void repl_run(struct session *s);
/* Readline as the prompt and the screen's command line both use it:
 * completion from the command table and s's layers, history in
 * ~/.dfq_history.  repl_readline_done undoes the setup. */
void repl_readline_setup(struct session *s);
void repl_history_add(const char *line);
void repl_readline_done(void);

#endif
