/* output.c - where command text goes: stdout, stderr with FILE:LINE:, or JSON. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"

/* Every line a command prints goes through emit(): to stdout/stderr, or to the
 * session's sink when it has one (the screen's log, a session load's replay). */
static void emit(struct session *s, enum out_kind kind, const char *text)
{
	if (s->sink) {
		s->sink(s->sink_user, kind, text);
		return;
	}
	if (kind == OUT_ERROR) {
		/* Keep stdout and stderr in order when both go to one terminal. */
		fflush(stdout);
		fprintf(stderr, "%s\n", text);
		return;
	}
	fputs(text, stdout);
	putchar('\n');
	if (kind == OUT_JSON)
		fflush(stdout);
}

static void vemit(struct session *s, enum out_kind kind, const char *fmt, va_list ap)
{
	char buf[4096];
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	if (n >= (int)sizeof buf)
		strcpy(buf + sizeof buf - 4, "...");
	emit(s, kind, buf);
}

/* Text is for people: --json replaces all of it with the result object; -q
 * keeps only results (and errors, which are never silenced). */
void cmd_result(struct cmd_ctx *ctx, const char *fmt, ...)
{
	if (ctx->s->json)
		return;
	va_list ap;
	va_start(ap, fmt);
	vemit(ctx->s, OUT_RESULT, fmt, ap);
	va_end(ap);
}

void cmd_print(struct cmd_ctx *ctx, const char *fmt, ...)
{
	if (ctx->s->json || ctx->s->quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vemit(ctx->s, OUT_INFO, fmt, ap);
	va_end(ap);
}

void cmd_out(struct cmd_ctx *ctx, bool result, const char *fmt, ...)
{
	if (ctx->s->json || (!result && ctx->s->quiet))
		return;
	va_list ap;
	va_start(ap, fmt);
	vemit(ctx->s, result ? OUT_RESULT : OUT_INFO, fmt, ap);
	va_end(ap);
}

bool cmd_verbose(const struct cmd_ctx *ctx)
{
	return ctx->s->set.verbose && !ctx->s->quiet && !ctx->s->json;
}

void cmd_detail(struct cmd_ctx *ctx, const char *fmt, ...)
{
	if (!cmd_verbose(ctx))
		return;
	va_list ap;
	va_start(ap, fmt);
	vemit(ctx->s, OUT_DETAIL, fmt, ap);
	va_end(ap);
}

/* Print a cJSON object as one line and flush, so a reader of the pipe sees
 * each result as soon as the command finishes. */
static void print_json_line(struct session *s, cJSON *obj)
{
	char *text = cJSON_PrintUnformatted(obj);
	if (text) {
		emit(s, OUT_JSON, text);
		cJSON_free(text);
	}
}

static void verror(struct cmd_ctx *ctx, const char *fmt, va_list ap)
{
	char msg[1024], line[1300];
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (ctx->file)
		snprintf(line, sizeof line, "%s:%d: %s", ctx->file, ctx->line, msg);
	else
		snprintf(line, sizeof line, "%s", msg);
	emit(ctx->s, OUT_ERROR, line);
	/* One JSON error object per failing command, however many lines. */
	if (ctx->s->json && !ctx->reported) {
		cJSON *o = cJSON_CreateObject();
		if (o) {
			const char *name = ctx->entry ? ctx->entry->name : ctx->word;
			if (name)
				cJSON_AddStringToObject(o, "cmd", name);
			else
				cJSON_AddNullToObject(o, "cmd");
			if (ctx->file) {
				cJSON_AddStringToObject(o, "file", ctx->file);
				cJSON_AddNumberToObject(o, "line", ctx->line);
			}
			cJSON_AddStringToObject(o, "error", msg);
			print_json_line(ctx->s, o);
			cJSON_Delete(o);
		}
	}
	ctx->reported = true;
}

void cmd_error(struct cmd_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verror(ctx, fmt, ap);
	va_end(ap);
}

enum cmd_retval cmd_fail(struct cmd_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verror(ctx, fmt, ap);
	va_end(ap);
	return CMD_RETURN_ERROR;
}

void cmd_emit_json(struct cmd_ctx *ctx)
{
	if (ctx->json)
		print_json_line(ctx->s, ctx->json);
}

void cli_info(struct session *s, const char *fmt, ...)
{
	if (s->json || s->quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vemit(s, OUT_INFO, fmt, ap);
	va_end(ap);
}

void cli_warn(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fputs("dfq: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* set by the screen: the width of the pane its output lands in */
static int width_override;

void cli_set_output_width(int cols)
{
	width_override = cols > 0 ? cols : 0;
}

int cli_output_width(void)
{
	static const struct num_spec columns = {.whole = true, .lo = 1, .hi = 100000};
	struct winsize ws;
	if (width_override > 0)
		return width_override;
	if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	const char *c = getenv("COLUMNS");
	double n;
	if (c && num_parse(c, &columns, &n))
		return (int)n;
	return 100;
}

/* What to type about a core error that names a remedy. */
static const char *remedy_text(dfq_remedy r)
{
	switch (r) {
	case DFQ_REMEDY_NONE:
		break;
	case DFQ_REMEDY_FOLD:
		return "run 'fold' first";
	case DFQ_REMEDY_RELU6:
		return "run 'relu6-to-relu' first";
	case DFQ_REMEDY_DATA:
		return "use data: 'measure data', 'biascorr --empirical'";
	case DFQ_REMEDY_LIST:
		return "type 'layers' to list them";
	}
	return NULL;
}

enum cmd_retval cmd_fail_error(struct cmd_ctx *ctx, const struct dfq_error *err)
{
	const char *r = remedy_text(err->remedy);
	if (!r)
		return cmd_fail(ctx, "%s", err->msg);
	if (err->remedy == DFQ_REMEDY_LIST)
		return cmd_fail(ctx, "%s (%s)", err->msg, r);
	return cmd_fail(ctx, "%s: %s", err->msg, r);
}

/* --- progress --------------------------------------------------------------------------- */

#define BAR_WIDTH 30

void cli_progress(struct session *s, const char *what, int64_t done, int64_t total, double secs)
{
	if (secs - s->progress_last < 0.1 && done < total && s->progress_last > 0)
		return;
	s->progress_last = secs > 0 ? secs : 1e-9;
	if (s->progress) {
		s->progress(s->progress_user, what, done, total, secs);
		return;
	}
	if (s->json || s->quiet || !isatty(STDERR_FILENO))
		return;
	char bar[BAR_WIDTH + 1];
	int fill = total > 0 ? (int)(BAR_WIDTH * (done < total ? done : total) / total) : 0;
	for (int i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '-';
	bar[BAR_WIDTH] = '\0';
	double rate = secs > 0 ? (double)done / secs : 0;
	long eta = rate > 0 && total > done ? (long)((double)(total - done) / rate + 0.5) : 0;
	fprintf(stderr, "\r\033[K%s [%s] %3d%% %lld/%lld  ETA %ld:%02ld", what, bar,
	        (int)(100 * done / (total > 0 ? total : 1)), (long long)done, (long long)total,
	        eta / 60, eta % 60);
	fflush(stderr);
	s->progress_drawn = true;
}

void cli_progress_end(struct session *s)
{
	s->progress_last = 0;
	if (s->progress) {
		s->progress(s->progress_user, NULL, -1, 0, 0);
		return;
	}
	if (s->progress_drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		s->progress_drawn = false;
	}
}
