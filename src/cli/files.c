/* files.c - writing a file so that a crash or a full disk never leaves half of it: a temporary
 * file beside it, flushed to the disk, then renamed over the old one. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"

char *cli_temp_beside(const char *path, int *fdp, char *why, size_t whylen)
{
	if (fdp)
		*fdp = -1;
	size_t n = strlen(path);
	char *tmp = malloc(n + sizeof ".tmp.XXXXXX");
	if (!tmp) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	memcpy(tmp, path, n);
	memcpy(tmp + n, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
	int fd = mkstemp(tmp);
	if (fd < 0) {
		snprintf(why, whylen, "cannot write %s: %s", path, strerror(errno));
		free(tmp);
		return NULL;
	}
	/* mkstemp makes it 0600; what dfq writes is an ordinary file */
	mode_t mask = umask(0);
	umask(mask);
	fchmod(fd, 0666 & ~mask);
	if (fdp)
		*fdp = fd;
	else
		close(fd);
	return tmp;
}

bool cli_temp_commit(const char *tmp, const char *path, char *why, size_t whylen)
{
	int e = 0;
	int fd = open(tmp, O_RDONLY);
	if (fd < 0 || fsync(fd) != 0)
		e = errno;
	if (fd >= 0)
		close(fd);
	if (!e && rename(tmp, path) != 0)
		e = errno;
	if (e) {
		unlink(tmp);
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
	return true;
}

bool cli_write_atomic(const char *path, const char *text, size_t len, char *why, size_t whylen)
{
	int fd;
	char *tmp = cli_temp_beside(path, &fd, why, whylen);
	if (!tmp)
		return false;
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
	if (close(fd) != 0 && !e)
		e = errno;
	if (e) {
		unlink(tmp);
		free(tmp);
		snprintf(why, whylen, "cannot write %s: %s", path, strerror(e));
		return false;
	}
	bool ok = cli_temp_commit(tmp, path, why, whylen);
	free(tmp);
	return ok;
}

bool cli_looks_like_model(const char *path)
{
	size_t n = strlen(path);
	return n >= 5 && strcasecmp(path + n - 5, ".onnx") == 0;
}
