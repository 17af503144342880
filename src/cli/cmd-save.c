/* cmd-save.c - save: the applied steps and the settings as a command file that `dfq -x` and
 * `source` replay to the same weights and activation grids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "files.h"
#include "model-cmd.h"
#include "replay.h"

bool save_script(const struct session *s, struct script *sc, const char *title)
{
	const struct dfq_model *m = s->model;
	int applied = dfq_model_history_applied(m), n = dfq_model_history_count(m);
	char when[64];
	time_t now = time(NULL);
	strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&now));
	script_add(sc, "# dfq: %d step%s on %s, saved %s", applied, applied == 1 ? "" : "s",
	           s->model_path, when);
	if (title)
		script_add(sc, "# replay: dfq -x %s", title);
	char *av[] = {"load", s->model_path};
	char *load = cmd_join_argv(2, av);
	if (!load)
		return false;
	script_add(sc, "%s", load);
	free(load);
	struct replay_state st;
	replay_state_init(&st);
	for (int i = 0; i < applied; i++) {
		struct dfq_history_entry e;
		if (dfq_model_history_entry(m, i, &e, NULL) != DFQ_OK)
			return false;
		const struct step_tag *t = e.tag;
		/* an entry without a tag (a range measurement made by eval) ran
		 * with the settings then in force: the ones set up so far */
		if (t)
			script_state(sc, &st, &t->set, t->data);
		script_add(sc, "%s", e.label);
	}
	script_state(sc, &st, &s->set, s->data_line);
	if (n > applied)
		script_add(sc, "# %d undone step%s not saved", n - applied,
		           n - applied == 1 ? "" : "s");
	return !sc->oom;
}

static enum cmd_retval cmd_save_exec(struct cmd_ctx *ctx, struct args *a)
{
	const char *path = a->pos[0];
	if (cli_looks_like_model(path))
		return cmd_fail(ctx,
		                "save writes a command file, and %s looks like a model: give a "
		                ".dfq name",
		                path);
	struct script sc = {0};
	if (!save_script(ctx->s, &sc, path)) {
		script_free(&sc);
		return cmd_fail(ctx, "out of memory");
	}
	char why[512];
	bool ok = cli_write_atomic(path, sc.text, sc.len, why, sizeof why);
	script_free(&sc);
	if (!ok)
		return cmd_fail(ctx, "save: %s", why);
	ctx->s->steps_unsaved = false;
	int applied = dfq_model_history_applied(ctx->s->model);
	cmd_print(ctx, "saved %d step%s and the settings to %s (replay: dfq -x %s)", applied,
	          applied == 1 ? "" : "s", path, path);
	cJSON_AddStringToObject(ctx->json, "path", path);
	cJSON_AddNumberToObject(ctx->json, "steps", applied);
	return CMD_RETURN_NORMAL;
}

const struct cmd_entry cmd_save_entry = {
    .name = "save",
    .alias = NULL,
    .usage = "save FILE.dfq",
    .args = {NULL, 1, 1, ARGS_FILE, NULL},
    .summary = "write the applied steps and the settings as a command file (dfq -x replays it)",
    .exec = cmd_save_exec,
    .flags = CMD_NEEDS_MODEL,
    .help = "The file loads the model, opens the data the steps used, and runs each step\n"
            "as it was typed, with 'set' lines for the settings it ran with: 'dfq -x\n"
            "FILE.dfq' rebuilds the same weights and activation grids.  Paths are as\n"
            "they were typed (relative to where dfq ran).  The file is replaced whole\n"
            "or not at all.",
};
