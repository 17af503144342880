/* files.h - writing a file so that a crash or a full disk never leaves half of it: a temporary
 * file beside it, flushed to the disk, then renamed over the old one.  Every function returns
 * false with one sentence in why (naming path) when it fails. */
#ifndef DFQ_CLI_FILES_H
#define DFQ_CLI_FILES_H

#include <stdbool.h>
#include <stddef.h>

/* Create an empty temporary file beside path ("PATH.tmp.XXXXXX", mode 0666 less the umask, as
 * an ordinary file) and return its name, which the caller owns (free) and either passes to
 * cli_temp_commit or unlinks.  *fd is the open file, or -1 when fd is NULL (then it is closed).
 * NULL when it cannot (the directory is not writable, out of memory). */
char *cli_temp_beside(const char *path, int *fd, char *why, size_t whylen);

/* Flush the finished temporary file tmp to the disk and rename it over path, then flush the
 * directory so the rename survives a crash.  On failure tmp is unlinked and path is untouched.
 * tmp stays the caller's to free. */
bool cli_temp_commit(const char *tmp, const char *path, char *why, size_t whylen);

/* Write len bytes of text to path atomically with the two above: the old file stays whole until
 * the new one is. */
bool cli_write_atomic(const char *path, const char *text, size_t len, char *why, size_t whylen);

/* True when path names a file that save and session save must not overwrite: a model (an
 * .onnx name, in any case). */
bool cli_looks_like_model(const char *path);

#endif
