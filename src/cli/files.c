/* files.c - writing a file so that a crash or a full disk never leaves half of it: a temporary
 * file beside it, flushed to the disk, then renamed over the old one. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

bool cli_write_atomic(const char *path, const char *text, size_t len, char *why, size_t whylen)
{
	size_t n = strlen(path);
	char *tmp = malloc(n + sizeof ".tmp.XXXXXX");
	if (!tmp) {
		snprintf(why, whylen, "out of memory");
		return false;
	}
	memcpy(tmp, path, n);
	memcpy(tmp + n, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
	int fd = mkstemp(tmp);
	if (fd < 0) {
		snprintf(why, whylen, "cannot write %s: %s", path, strerror(errno));
		free(tmp);
		return false;
	}
	/* mkstemp makes it 0600; a saved session is an ordinary file */
	mode_t mask = umask(0);
	umask(mask);
	fchmod(fd, 0666 & ~mask);
	const char *p = text;
	size_t left = len;
	int e = 0;
	while (left > 0 && !e) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			e = w < 0 ? errno : EIO;
		else {
			p += w;
			left -= (size_t)w;
		}
	}
	if (!e && fsync(fd) != 0)
		e = errno;
	if (close(fd) != 0 && !e)
		e = errno;
	if (!e && rename(tmp, path) != 0)
		e = errno;
	if (e) {
		unlink(tmp);
		free(tmp);
		snprintf(why, whylen, "cannot write %s: %s", path, strerror(e));
		return false;
	}
	/* the rename itself reaches the disk with the directory */
	char *dir = strdup(path);
	if (dir) {
		int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
		free(dir);
	}
	free(tmp);
	return true;
}
