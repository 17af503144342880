/* error.c - the one-sentence error buffer. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dfq/dfq_error.h"

/* Mark a truncated message visibly instead of cutting it silently. */
static void mark_truncated(char *msg)
{
	strcpy(msg + DFQ_ERROR_MAX - 4, "...");
}

dfq_status dfq_error_set(struct dfq_error *err, dfq_status status, const char *fmt, ...)
{
	if (!err)
		return status;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		strcpy(err->msg, "(unformattable error message)");
	else if ((size_t)n >= sizeof err->msg)
		mark_truncated(err->msg);
	err->status = status;
	err->remedy = DFQ_REMEDY_NONE;
	return status;
}

dfq_status dfq_error_remedy(struct dfq_error *err, dfq_remedy remedy)
{
	if (!err)
		return DFQ_ERR_INTERNAL;
	err->remedy = remedy;
	return err->status;
}

dfq_status dfq_error_prefix(struct dfq_error *err, const char *fmt, ...)
{
	if (!err)
		return DFQ_ERR_INTERNAL;
	char prefix[DFQ_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	if (n < 0)
		return err->status;
	char old[DFQ_ERROR_MAX];
	memcpy(old, err->msg, sizeof old);
	n = snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
	if (n < 0 || (size_t)n >= sizeof err->msg)
		mark_truncated(err->msg);
	return err->status;
}

void dfq_error_clear(struct dfq_error *err)
{
	if (!err)
		return;
	err->status = DFQ_OK;
	err->remedy = DFQ_REMEDY_NONE;
	err->msg[0] = '\0';
}

const char *dfq_status_name(dfq_status status)
{
	switch (status) {
	case DFQ_OK:
		return "ok";
	case DFQ_ERR_IO:
		return "i/o error";
	case DFQ_ERR_PARSE:
		return "parse error";
	case DFQ_ERR_UNSUPPORTED:
		return "unsupported";
	case DFQ_ERR_SHAPE:
		return "shape error";
	case DFQ_ERR_GRAPH:
		return "graph error";
	case DFQ_ERR_ARG:
		return "bad argument";
	case DFQ_ERR_NOMEM:
		return "out of memory";
	case DFQ_ERR_INTERNAL:
		return "internal error";
	}
	return "unknown error";
}
