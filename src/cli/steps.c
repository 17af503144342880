/* steps.c - the step history as the program sees it: every CMD_STEP command runs in one model
 * transaction, recorded under the command as typed with the settings and data it ran with
 * (what `save` and `session save` write), or rolled back when it fails; and the accuracy
 * measured after each step. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"

void step_tag_free(void *tag)
{
	struct step_tag *t = tag;
	if (!t)
		return;
	free(t->data);
	free(t);
}

static struct step_tag *step_tag_new(const struct session *s)
{
	struct step_tag *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->set = s->set;
	if (s->data_line && !(t->data = strdup(s->data_line))) {
		free(t);
		return NULL;
	}
	return t;
}

bool session_step_begin(struct cmd_ctx *ctx)
{
	struct dfq_model *m = ctx->s->model;
	if (!m || dfq_model_in_transaction(m))
		return true;
	struct dfq_error err;
	if (dfq_model_begin(m, &err) != DFQ_OK) {
		cmd_fail_error(ctx, &err);
		return false;
	}
	ctx->step_open = true;
	return true;
}

enum cmd_retval session_step_end(struct cmd_ctx *ctx, enum cmd_retval rv)
{
	struct session *s = ctx->s;
	struct dfq_model *m = s->model;
	if (!ctx->step_open || !m)
		return rv;
	ctx->step_open = false;
	if (rv != CMD_RETURN_NORMAL || ctx->not_a_step) {
		dfq_model_rollback(m);
		session_model_changed(s);
		return rv;
	}
	struct dfq_error err;
	struct step_tag *tag = step_tag_new(s);
	dfq_status st = tag ? dfq_model_commit(m, ctx->line_text, tag, step_tag_free, &err)
	                    : dfq_error_set(&err, DFQ_ERR_NOMEM, "out of memory");
	if (st != DFQ_OK) {
		step_tag_free(tag);
		dfq_model_rollback(m);
		session_model_changed(s);
		return cmd_fail(ctx, "%s; the step was not kept (nothing changed)", err.msg);
	}
	s->steps_unsaved = true;
	return rv;
}

struct step_tag *session_step_tag(const struct session *s, int i)
{
	struct dfq_history_entry e;
	if (!s->model || dfq_model_history_entry(s->model, i, &e, NULL) != DFQ_OK)
		return NULL;
	return e.tag;
}

void session_record_eval(struct session *s, bool quant, const struct eval_mark *mark)
{
	int applied = s->model ? dfq_model_history_applied(s->model) : 0;
	struct step_tag *t = applied > 0 ? session_step_tag(s, applied - 1) : NULL;
	if (t) {
		t->eval = *mark;
		t->eval_quant = quant;
	}
	if (s->nevals == s->cap_evals) {
		int cap = s->cap_evals ? 2 * s->cap_evals : 16;
		struct eval_record *e = realloc(s->evals, (size_t)cap * sizeof *e);
		if (!e)
			return; /* the history of accuracies is a record, not a result */
		s->evals = e;
		s->cap_evals = cap;
	}
	s->evals[s->nevals++] = (struct eval_record){applied, quant, *mark, time(NULL)};
}
