/* dfq_error.h - status codes and the one-sentence error buffer.
 *
 * Every fallible function in the core library returns a dfq_status and, on
 * failure, fills a caller-provided struct dfq_error with one clear sentence
 * (no trailing newline).  Library code never prints. */
#ifndef DFQ_ERROR_H
#define DFQ_ERROR_H

#include <stddef.h>

typedef enum dfq_status {
	DFQ_OK = 0,
	DFQ_ERR_IO,          /* file could not be opened/read/written */
	DFQ_ERR_PARSE,       /* malformed or truncated input */
	DFQ_ERR_UNSUPPORTED, /* valid input we do not handle (op, dtype, ...) */
	DFQ_ERR_SHAPE,       /* shapes do not agree */
	DFQ_ERR_GRAPH,       /* dangling reference, cycle, ... */
	DFQ_ERR_ARG,         /* bad argument from the caller/user */
	DFQ_ERR_NOMEM,       /* allocation failed */
	DFQ_ERR_INTERNAL,    /* a bug: should not happen */
} dfq_status;

/* Long enough for any message we build; longer messages end in "..." so a
 * truncation is always visible. */
#define DFQ_ERROR_MAX 512

/* What would resolve an error, when the core knows: the core says what is
 * wrong; the program words what the user can do about it. */
typedef enum dfq_remedy {
	DFQ_REMEDY_NONE = 0,
	DFQ_REMEDY_FOLD,  /* fold BatchNorm into the layers first */
	DFQ_REMEDY_RELU6, /* replace ReLU6 by ReLU first */
	DFQ_REMEDY_DATA,  /* no BN statistics: use data (ranges, bias correction) */
	DFQ_REMEDY_LIST,  /* an unknown name: list the valid ones */
} dfq_remedy;

struct dfq_error {
	dfq_status status;
	dfq_remedy remedy; /* set with dfq_error_remedy; cleared by dfq_error_set */
	char msg[DFQ_ERROR_MAX];
};

/* Format the message into err (err may be NULL) and return status, so a
 * failure path is one line: return dfq_error_set(err, DFQ_ERR_IO, "...", ...); */
dfq_status dfq_error_set(struct dfq_error *err, dfq_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix an existing message: "CONTEXT: old message". Returns err->status. */
dfq_status dfq_error_prefix(struct dfq_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Attach a remedy to the error just set (err may be NULL); returns its status. */
dfq_status dfq_error_remedy(struct dfq_error *err, dfq_remedy remedy);

/* Clear err (status DFQ_OK, empty message). */
void dfq_error_clear(struct dfq_error *err);

/* Static name of a status ("io error", "parse error", ...). */
const char *dfq_status_name(dfq_status status);

#endif
