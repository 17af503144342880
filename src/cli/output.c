/* output.c - where command text goes: stdout, stderr with FILE:LINE:, or JSON. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"

/* Text is for people: --json replaces all of it with the result object; -q
 * keeps only results (and errors, which are never silenced). */
void cmd_result(struct cmd_ctx *ctx, const char *fmt, ...)
{
	if (ctx->s->json)
		return;
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

void cmd_print(struct cmd_ctx *ctx, const char *fmt, ...)
{
	if (ctx->s->json || ctx->s->quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

void cmd_out(struct cmd_ctx *ctx, bool result, const char *fmt, ...)
{
	if (ctx->s->json || (!result && ctx->s->quiet))
		return;
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
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
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* Print a cJSON object as one line on stdout and flush, so a reader of the
 * pipe sees each result as soon as the command finishes. */
static void print_json_line(cJSON *obj)
{
	char *text = cJSON_PrintUnformatted(obj);
	if (text) {
		printf("%s\n", text);
		fflush(stdout);
		cJSON_free(text);
	}
}

static void verror(struct cmd_ctx *ctx, const char *fmt, va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof msg, fmt, ap);
	/* Keep stdout and stderr in order when both go to one terminal. */
	fflush(stdout);
	if (ctx->file)
		fprintf(stderr, "%s:%d: %s\n", ctx->file, ctx->line, msg);
	else
		fprintf(stderr, "%s\n", msg);
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
			print_json_line(o);
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
		print_json_line(ctx->json);
}

void cli_info(const struct session *s, const char *fmt, ...)
{
	if (s->json || s->quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
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

int cli_output_width(void)
{
	static const struct num_spec columns = {.whole = true, .lo = 1, .hi = 100000};
	struct winsize ws;
	if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	const char *c = getenv("COLUMNS");
	double n;
	if (c && num_parse(c, &columns, &n))
		return (int)n;
	return 100;
}
