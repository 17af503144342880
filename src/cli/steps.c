/* steps.c - the step history's hooks around every CMD_STEP command.
 *
 * The runner (cmd_run_argv) calls session_step_begin() before the exec of
 * each command whose entry has CMD_STEP, and session_step_end() after it,
 * with what the exec returned.  The step history fills these in: begin a
 * model transaction, then commit it labelled with the command line as typed
 * (ctx->line_text) or roll it back when rv is an error, for undo/redo.  For
 * now they do nothing: a step changes the model directly (mc_run_step in
 * model-cmd.c folds on a copy so that a failing step leaves it as it was). */
#include "cli.h"
#include "cmd.h"

bool session_step_begin(struct cmd_ctx *ctx)
{
	return true;
}

void session_step_end(struct cmd_ctx *ctx, enum cmd_retval rv)
{
}
