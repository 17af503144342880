/* gnuplot.c - gnuplot as a co-process: started once per session on first use, spoken to through
 * two pipes with a sentinel after every exchange and a deadline, killed and reaped at the end
 * (see gnuplot.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "gnuplot.h"

struct gnuplot {
	pid_t pid;         /* the running gnuplot, 0 when none */
	int in_fd, out_fd; /* its standard input; its standard output and error */
	bool missing;      /* not installed: do not look again */
	char missing_why[256];
	char *terminals; /* " name name ... " of the running gnuplot, or NULL */
	unsigned long seq;
	char path[1024]; /* the program found on $PATH */
};

/* --- reaping: a SIGCHLD handler reaps the gnuplots it knows as soon as they exit -------- */

#define MAX_TRACKED 8

static volatile sig_atomic_t tracked[MAX_TRACKED]; /* pids, 0 = free slot */
static volatile sig_atomic_t reaped[MAX_TRACKED];
static volatile sig_atomic_t reaped_status[MAX_TRACKED];
static struct sigaction old_chld;
static int ntracked_live;

static void on_sigchld(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	for (int i = 0; i < MAX_TRACKED; i++) {
		pid_t p = (pid_t)tracked[i];
		int st;
		if (p > 0 && !reaped[i] && waitpid(p, &st, WNOHANG) == p) {
			reaped_status[i] = st;
			reaped[i] = 1;
		}
	}
	/* whoever handled SIGCHLD before us still hears of it */
	if (old_chld.sa_flags & SA_SIGINFO) {
		if (old_chld.sa_sigaction)
			old_chld.sa_sigaction(sig, si, uc);
	} else if (old_chld.sa_handler != SIG_DFL && old_chld.sa_handler != SIG_IGN) {
		old_chld.sa_handler(sig);
	}
	errno = saved;
}

static void block_chld(bool block, sigset_t *old)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGCHLD);
	if (block)
		sigprocmask(SIG_BLOCK, &s, old);
	else
		sigprocmask(SIG_SETMASK, old, NULL);
}

static void track(pid_t pid)
{
	sigset_t old;
	block_chld(true, &old);
	for (int i = 0; i < MAX_TRACKED; i++)
		if (tracked[i] == 0) {
			reaped[i] = 0;
			tracked[i] = pid;
			break;
		}
	if (ntracked_live++ == 0) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_sigaction = on_sigchld;
		sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_NOCLDSTOP;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGCHLD, &sa, &old_chld);
	}
	block_chld(false, &old);
}

static void untrack(pid_t pid)
{
	sigset_t old;
	block_chld(true, &old);
	for (int i = 0; i < MAX_TRACKED; i++)
		if (tracked[i] == pid) {
			tracked[i] = 0;
			reaped[i] = 0;
			if (--ntracked_live == 0)
				sigaction(SIGCHLD, &old_chld, NULL);
		}
	block_chld(false, &old);
}

/* True when pid has exited and is reaped (by us or the handler); *status
 * gets its wait status (0 when unknown). */
static bool child_gone(pid_t pid, int *status)
{
	*status = 0;
	for (int i = 0; i < MAX_TRACKED; i++)
		if (tracked[i] == pid && reaped[i]) {
			*status = reaped_status[i];
			return true;
		}
	int st;
	pid_t r = waitpid(pid, &st, WNOHANG);
	if (r == pid) {
		*status = st;
		for (int i = 0; i < MAX_TRACKED; i++)
			if (tracked[i] == pid) {
				reaped_status[i] = st;
				reaped[i] = 1;
			}
		return true;
	}
	if (r < 0 && errno == ECHILD) {
		/* the handler got there first */
		for (int i = 0; i < MAX_TRACKED; i++)
			if (tracked[i] == pid && reaped[i])
				*status = reaped_status[i];
		return true;
	}
	return false;
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* Wait up to secs for pid to be gone. */
static bool wait_gone(pid_t pid, double secs, int *status)
{
	double end = now_s() + secs;
	for (;;) {
		if (child_gone(pid, status))
			return true;
		if (now_s() >= end)
			return false;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

static double timeout_s(void)
{
	const char *e = getenv("DFQ_GNUPLOT_TIMEOUT");
	char *end;
	double t = e ? strtod(e, &end) : 0.0;
	if (e && end != e && *end == '\0' && isfinite(t) && t > 0.0)
		return t;
	return 10.0;
}

/* --- the process ------------------------------------------------------------------- */

struct gnuplot *gnuplot_new(void)
{
	struct gnuplot *gp = calloc(1, sizeof *gp);
	if (gp)
		gp->in_fd = gp->out_fd = -1;
	return gp;
}

/* Forget the process (its fds closed; it is reaped already). */
static void forget(struct gnuplot *gp)
{
	if (gp->in_fd >= 0)
		close(gp->in_fd);
	if (gp->out_fd >= 0)
		close(gp->out_fd);
	gp->in_fd = gp->out_fd = -1;
	if (gp->pid > 0)
		untrack(gp->pid);
	gp->pid = 0;
	free(gp->terminals);
	gp->terminals = NULL;
}

/* End the process: EOF first (gnuplot quits), then SIGTERM and SIGKILL to
 * its group; whatever else is left in the group (helpers, or a wrapper
 * script's children) is killed too.  Reaps it. */
static void stop(struct gnuplot *gp, double grace)
{
	if (gp->pid <= 0) {
		forget(gp);
		return;
	}
	pid_t pid = gp->pid;
	int st;
	if (gp->in_fd >= 0) {
		close(gp->in_fd);
		gp->in_fd = -1;
	}
	if (!wait_gone(pid, grace, &st)) {
		kill(-pid, SIGTERM);
		if (!wait_gone(pid, 0.2, &st)) {
			kill(-pid, SIGKILL);
			while (!child_gone(pid, &st)) {
				struct timespec ts = {0, 5 * 1000 * 1000};
				nanosleep(&ts, NULL);
			}
		}
	}
	kill(-pid, SIGKILL); /* the rest of its group, if any (ESRCH otherwise) */
	forget(gp);
}

void gnuplot_close(struct gnuplot *gp)
{
	if (!gp)
		return;
	stop(gp, 0.5);
	free(gp);
}

/* gnuplot on $PATH into gp->path. */
static bool find_program(struct gnuplot *gp)
{
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/bin:/bin";
	const char *p = path;
	while (*p) {
		const char *colon = strchr(p, ':');
		size_t n = colon ? (size_t)(colon - p) : strlen(p);
		char cand[1024];
		if (n == 0)
			snprintf(cand, sizeof cand, "./gnuplot");
		else
			snprintf(cand, sizeof cand, "%.*s/gnuplot", (int)n, p);
		struct stat sb;
		if (stat(cand, &sb) == 0 && S_ISREG(sb.st_mode) && access(cand, X_OK) == 0) {
			snprintf(gp->path, sizeof gp->path, "%s", cand);
			return true;
		}
		p += n;
		if (*p == ':')
			p++;
	}
	return false;
}

/* A growing buffer of what gnuplot printed. */
struct sbuf {
	char *p;
	size_t n, cap;
};

static bool sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4096;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *q = realloc(b->p, cap);
		if (!q)
			return false;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
	return true;
}

/* The wait status in words. */
static void status_text(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exit status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(st));
	else
		snprintf(buf, len, "status %d", st);
}

/* gnuplot's error in out, if it reported one: "line N: MESSAGE" (and the
 * "system error: ..." line after it). */
static bool find_error(const char *out, char *why, size_t len)
{
	for (const char *l = out; l && *l;) {
		const char *eol = strchr(l, '\n');
		size_t n = eol ? (size_t)(eol - l) : strlen(l);
		const char *s = l;
		while (s < l + n && (*s == ' ' || *s == '\t'))
			s++;
		if (s[0] == '"') { /* "FILE" line N: from a loaded file */
			const char *q = memchr(s + 1, '"', (size_t)(l + n - s - 1));
			s = q ? q + 1 : s;
			while (s < l + n && *s == ' ')
				s++;
		}
		int k = 0;
		if (strncmp(s, "line ", 5) == 0 && sscanf(s + 5, "%*d:%n", &k) >= 0 && k > 0) {
			const char *msg = s + 5 + k;
			while (*msg == ' ')
				msg++;
			int mlen = (int)(l + n - msg);
			const char *next = eol ? eol + 1 : NULL;
			if (next && strncmp(next, "system error: ", 14) == 0) {
				const char *e2 = strchr(next, '\n');
				int n2 = e2 ? (int)(e2 - next - 14) : (int)strlen(next + 14);
				snprintf(why, len, "gnuplot: %.*s (%.*s)", mlen, msg, n2,
				         next + 14);
			} else {
				snprintf(why, len, "gnuplot: %.*s", mlen, msg);
			}
			return true;
		}
		l = eol ? eol + 1 : NULL;
	}
	return false;
}

/* The process died or was killed: say so, reap, forget it. */
static enum gnuplot_status died(struct gnuplot *gp, const char *what, char *why, size_t len)
{
	int st = 0;
	char how[64] = "";
	if (gp->pid > 0 && wait_gone(gp->pid, 0.2, &st)) {
		status_text(st, how, sizeof how);
		snprintf(why, len, "gnuplot %s (%s)", what, how);
		kill(-gp->pid, SIGKILL);
		forget(gp);
	} else {
		snprintf(why, len, "gnuplot %s", what);
		stop(gp, 0.0);
	}
	return GNUPLOT_FAILED;
}

/* Write cmds and a sentinel, read until the sentinel: what gnuplot printed
 * before it into *out (may be NULL). */
static enum gnuplot_status exchange(struct gnuplot *gp, const char *cmds, char **out, char *why,
                                    size_t len)
{
	if (out)
		*out = NULL;
	const char *log = getenv("DFQ_GNUPLOT_LOG");
	FILE *lf = log && *log ? fopen(log, "a") : NULL;
	if (lf) {
		/* every command sent, for whoever wants the script */
		fputs(cmds, lf);
		fclose(lf);
	}
	char tail[64], mark[48];
	gp->seq++;
	snprintf(tail, sizeof tail, "\nprint 'DFQ-DONE-%lu'\n", gp->seq);
	snprintf(mark, sizeof mark, "DFQ-DONE-%lu\n", gp->seq);
	size_t nc = strlen(cmds), nt = strlen(tail), ntot = nc + nt;
	char *msg = malloc(ntot + 1);
	if (!msg)
		return snprintf(why, len, "out of memory"), GNUPLOT_FAILED;
	memcpy(msg, cmds, nc);
	memcpy(msg + nc, tail, nt + 1);
	struct sbuf rd = {0};
	double deadline = now_s() + timeout_s();
	struct sigaction ign, old_pipe;
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, &old_pipe);
	size_t off = 0;
	enum gnuplot_status st = GNUPLOT_OK;
	const char *done = NULL;
	const char *what = NULL;
	while (!done) {
		int st_child;
		double left = deadline - now_s();
		if (left <= 0.0) {
			what = "timeout";
			break;
		}
		struct pollfd p[2] = {{gp->out_fd, POLLIN, 0}, {gp->in_fd, POLLOUT, 0}};
		int np = off < ntot ? 2 : 1;
		int ms = left > 0.1 ? 100 : (int)(left * 1000) + 1;
		int r = poll(p, (nfds_t)np, ms);
		if (r < 0 && errno != EINTR) {
			what = "unreadable";
			break;
		}
		if (r > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			char buf[8192];
			ssize_t k = read(gp->out_fd, buf, sizeof buf);
			if (k == 0) {
				what = "exited";
				break;
			}
			if (k > 0 && !sbuf_add(&rd, buf, (size_t)k)) {
				what = "nomem";
				break;
			}
			if (k < 0 && errno != EAGAIN && errno != EINTR) {
				what = "unreadable";
				break;
			}
			/* the sentinel at the start of a line */
			for (const char *f = rd.p; f && (f = strstr(f, mark)); f++)
				if (f == rd.p || f[-1] == '\n') {
					done = f;
					break;
				}
		}
		if (!done && np == 2 && r > 0 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t w = write(gp->in_fd, msg + off, ntot - off);
			if (w > 0)
				off += (size_t)w;
			else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				what = errno == EPIPE ? "exited" : "unwritable";
				break;
			}
		}
		if (!done && r == 0 && child_gone(gp->pid, &st_child)) {
			/* reaped already: say how it ended */
			char how[64];
			status_text(st_child, how, sizeof how);
			snprintf(why, len, "gnuplot exited while plotting (%s)", how);
			kill(-gp->pid, SIGKILL);
			forget(gp);
			st = GNUPLOT_FAILED;
			break;
		}
	}
	sigaction(SIGPIPE, &old_pipe, NULL);
	free(msg);
	if (st == GNUPLOT_OK && what) {
		if (strcmp(what, "timeout") == 0) {
			char t[96];
			snprintf(t, sizeof t, "did not answer within %g s (stopped)", timeout_s());
			stop(gp, 0.0);
			snprintf(why, len, "gnuplot %s", t);
			st = GNUPLOT_FAILED;
		} else if (strcmp(what, "nomem") == 0) {
			stop(gp, 0.0);
			snprintf(why, len, "out of memory reading gnuplot's output");
			st = GNUPLOT_FAILED;
		} else {
			st = died(gp, "exited while plotting", why, len);
		}
	}
	if (st != GNUPLOT_OK) {
		free(rd.p);
		return st;
	}
	size_t keep = (size_t)(done - rd.p);
	rd.p[keep] = '\0';
	if (find_error(rd.p, why, len))
		st = GNUPLOT_ERROR;
	if (out)
		*out = rd.p;
	else
		free(rd.p);
	return st;
}

enum gnuplot_status gnuplot_start(struct gnuplot *gp, char *why, size_t len)
{
	if (gp->missing) {
		snprintf(why, len, "%s", gp->missing_why);
		return GNUPLOT_MISSING;
	}
	int st;
	if (gp->pid > 0 && child_gone(gp->pid, &st)) {
		kill(-gp->pid, SIGKILL);
		forget(gp); /* it died since the last use: start a new one */
	}
	if (gp->pid > 0)
		return GNUPLOT_OK;
	if (!find_program(gp)) {
		gp->missing = true;
		snprintf(gp->missing_why, sizeof gp->missing_why,
		         "gnuplot is not installed (no gnuplot on $PATH)");
		snprintf(why, len, "%s", gp->missing_why);
		return GNUPLOT_MISSING;
	}
	int in[2] = {-1, -1}, out[2] = {-1, -1}, ep[2] = {-1, -1};
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0) {
		snprintf(why, len, "cannot start gnuplot: %s", strerror(errno));
		for (int i = 0; i < 2; i++) {
			if (in[i] >= 0)
				close(in[i]);
			if (out[i] >= 0)
				close(out[i]);
			if (ep[i] >= 0)
				close(ep[i]);
		}
		return GNUPLOT_FAILED;
	}
	pid_t parent = getpid();
	char *const argv[] = {"gnuplot", NULL};
	sigset_t old;
	block_chld(true, &old);
	pid_t pid = fork();
	if (pid == 0) {
		/* the child: async-signal-safe calls only */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(out[1], 2);
		/* close every other descriptor but ep[1] (close-on-exec: it reports a failed
		 * exec), moved to 3 or above first if it sits below */
		int efd = ep[1] >= 3 ? ep[1] : fcntl(ep[1], F_DUPFD_CLOEXEC, 3);
		if (efd < 0) {
			syscall(SYS_close_range, 3u, ~0u, 0u);
		} else {
			if (efd > 3)
				syscall(SYS_close_range, 3u, (unsigned)efd - 1, 0u);
			syscall(SYS_close_range, (unsigned)efd + 1, ~0u, 0u);
		}
		struct sigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		sigemptyset(&dfl.sa_mask);
		sigaction(SIGPIPE, &dfl, NULL);
		sigaction(SIGINT, &dfl, NULL);
		sigaction(SIGCHLD, &dfl, NULL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(gp->path, argv);
		int e = errno;
		ssize_t w = efd < 0 ? -1 : write(efd, &e, sizeof e);
		(void)w;
		_exit(127);
	}
	int fork_errno = errno;
	close(in[0]);
	close(out[1]);
	close(ep[1]);
	if (pid < 0) {
		block_chld(false, &old);
		close(in[1]);
		close(out[0]);
		close(ep[0]);
		snprintf(why, len, "cannot start gnuplot: %s", strerror(fork_errno));
		return GNUPLOT_FAILED;
	}
	gp->pid = pid;
	gp->in_fd = in[1];
	gp->out_fd = out[0];
	track(pid);
	block_chld(false, &old);
	/* exec failed: the child wrote its errno before the pipe closed */
	int e = 0;
	ssize_t k;
	do
		k = read(ep[0], &e, sizeof e);
	while (k < 0 && errno == EINTR);
	close(ep[0]);
	if (k == (ssize_t)sizeof e) {
		stop(gp, 0.2);
		gp->missing = true;
		snprintf(gp->missing_why, sizeof gp->missing_why,
		         "gnuplot cannot be run (%.200s: %s)", gp->path, strerror(e));
		snprintf(why, len, "%s", gp->missing_why);
		return GNUPLOT_MISSING;
	}
	fcntl(gp->in_fd, F_SETFL, fcntl(gp->in_fd, F_GETFL) | O_NONBLOCK);
	fcntl(gp->out_fd, F_SETFL, fcntl(gp->out_fd, F_GETFL) | O_NONBLOCK);
	/* what it can draw on, asked once */
	char *terms = NULL;
	enum gnuplot_status s =
	    exchange(gp, "set print '-'\nprint GPVAL_TERMINALS\n", &terms, why, len);
	if (s != GNUPLOT_OK) {
		free(terms);
		if (s == GNUPLOT_ERROR) {
			stop(gp, 0.2);
			s = GNUPLOT_FAILED;
		}
		return s;
	}
	size_t n = strlen(terms);
	gp->terminals = malloc(n + 3);
	if (!gp->terminals) {
		free(terms);
		stop(gp, 0.2);
		snprintf(why, len, "out of memory");
		return GNUPLOT_FAILED;
	}
	gp->terminals[0] = ' ';
	for (size_t i = 0; i < n; i++)
		gp->terminals[i + 1] = terms[i] == '\n' || terms[i] == '\t' ? ' ' : terms[i];
	gp->terminals[n + 1] = ' ';
	gp->terminals[n + 2] = '\0';
	free(terms);
	return GNUPLOT_OK;
}

bool gnuplot_has_terminal(struct gnuplot *gp, const char *name)
{
	char w[64];
	if (!gp->terminals || strlen(name) > 60)
		return false;
	snprintf(w, sizeof w, " %s ", name);
	return strstr(gp->terminals, w) != NULL;
}

const char *gnuplot_window_terminal(struct gnuplot *gp)
{
	static const char *const windows[] = {"qt", "wxt", "x11"};
	const char *d = getenv("DISPLAY");
	char why[256];
	if (!d || !*d || gnuplot_start(gp, why, sizeof why) != GNUPLOT_OK)
		return NULL;
	for (size_t i = 0; i < sizeof windows / sizeof *windows; i++)
		if (gnuplot_has_terminal(gp, windows[i]))
			return windows[i];
	return NULL;
}

enum gnuplot_status gnuplot_run(struct gnuplot *gp, const char *cmds, char **out, char *why,
                                size_t len)
{
	if (out)
		*out = NULL;
	enum gnuplot_status st = gnuplot_start(gp, why, len);
	if (st != GNUPLOT_OK)
		return st;
	return exchange(gp, cmds, out, why, len);
}

const char *gnuplot_quote(const char *text, char *buf, size_t len)
{
	size_t o = 0;
	if (len < 3) {
		if (len)
			buf[0] = '\0';
		return buf;
	}
	buf[o++] = '\'';
	for (const unsigned char *s = (const unsigned char *)(text ? text : ""); *s; s++) {
		const char *piece;
		char one[3] = {0};
		if (*s == '\'')
			piece = "''";
		else if (*s == '\n')
			piece = "'.\"\\n\".'";
		else {
			one[0] = *s < 0x20 || *s == 0x7f ? '?' : (char)*s;
			piece = one;
		}
		size_t k = strlen(piece);
		if (o + k + 2 > len)
			break; /* keep room for the closing quote */
		memcpy(buf + o, piece, k);
		o += k;
	}
	buf[o++] = '\'';
	buf[o] = '\0';
	return buf;
}

struct gnuplot *session_gnuplot(struct session *s)
{
	if (!s->gnuplot)
		s->gnuplot = gnuplot_new();
	return s->gnuplot;
}
