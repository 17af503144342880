/* repl.c - the interactive loop: GNU Readline, history and completion. */
#include "config.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "cli.h"
#include "cmd.h"

#define HISTORY_MAX 1000

/* ~/.dfq_history, malloc'd; NULL without $HOME (history is then not kept). */
static char *history_path(void)
{
	const char *home = getenv("HOME");
	if (!home || !*home)
		return NULL;
	size_t n = strlen(home) + sizeof "/.dfq_history";
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/.dfq_history", home);
	return p;
}

/* Load the history and make sure the file exists, so append_history() can
 * add to it line by line.  Failures only mean no history. */
static void history_start(const char *path)
{
	if (!path)
		return;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd >= 0)
		close(fd);
	history_truncate_file(path, HISTORY_MAX);
	read_history(path);
}

/* --- completion: the same tables as the commands ------------------------ */

/* The candidate list the generator walks (NULL-terminated). */
static const char *const *complete_words;

static char *word_generator(const char *text, int state)
{
	static int i;
	static size_t len;
	if (!state) {
		i = 0;
		len = strlen(text);
	}
	while (complete_words && complete_words[i]) {
		const char *w = complete_words[i++];
		if (strncmp(w, text, len) == 0)
			return strdup(w);
	}
	return NULL;
}

static const char *command_words[32];
static const char *setting_words[16];
static const char *const bool_words[] = {"on", "off", NULL};
static const char *const show_words[] = {"settings", NULL};

static void build_word_lists(void)
{
	int n = 0;
	for (int i = 0; cmd_table[i] && n < 30; i++) {
		command_words[n++] = cmd_table[i]->name;
		if (cmd_table[i]->alias)
			command_words[n++] = cmd_table[i]->alias;
	}
	command_words[n] = NULL;
	n = 0;
	for (int i = 0; session_settings[i].name && n < 15; i++)
		setting_words[n++] = session_settings[i].name;
	setting_words[n] = NULL;
}

static char **complete_from(const char *const *words, const char *text)
{
	complete_words = words;
	rl_attempted_completion_over = 1;
	return rl_completion_matches(text, word_generator);
}

/* Command names in the first word (also after ';'); argument words get
 * what the command takes, falling back to file names. */
static char **dfq_complete(const char *text, int start, int end)
{
	const char *buf = rl_line_buffer;
	int cmd = 0;
	for (int i = 0; i < start; i++)
		if (buf[i] == ';')
			cmd = i + 1;
	while (cmd < start && (buf[cmd] == ' ' || buf[cmd] == '\t'))
		cmd++;
	if (cmd >= start)
		return complete_from(command_words, text);

	char word[64];
	int w = 0;
	while (buf[cmd + w] && buf[cmd + w] != ' ' && buf[cmd + w] != '\t' && w < 63) {
		word[w] = buf[cmd + w];
		w++;
	}
	word[w] = '\0';
	/* Index of the argument being completed: words between command and start. */
	int argi = 0;
	for (int i = cmd + w; i < start; i++)
		if ((buf[i] == ' ' || buf[i] == '\t') && buf[i + 1] != ' ' && buf[i + 1] != '\t' &&
		    i + 1 < start)
			argi++;
	char why[256];
	const struct cmd_entry *e = cmd_find(word, why, sizeof why);
	if (e == &cmd_help_entry && argi == 0)
		return complete_from(command_words, text);
	if (e == &cmd_set_entry && argi == 0)
		return complete_from(setting_words, text);
	if (e == &cmd_set_entry && argi == 1)
		return complete_from(bool_words, text);
	if (e == &cmd_show_entry && argi == 0)
		return complete_from(show_words, text);
	return NULL; /* readline completes file names */
}

/* --- Ctrl-C: drop the line being typed, keep the session ----------------- */

static volatile sig_atomic_t got_sigint;

static void on_sigint(int sig)
{
	got_sigint = 1;
}

/* Readline calls this after a read was interrupted by a signal. */
static int on_signal_event(void)
{
	if (got_sigint) {
		got_sigint = 0;
		rl_replace_line("", 0);
		rl_crlf();
		rl_on_new_line();
		rl_redisplay();
	}
	return 0;
}

static void catch_sigint(bool on)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: the read inside readline must return EINTR. */
	sa.sa_handler = on ? on_sigint : SIG_DFL;
	sigaction(SIGINT, &sa, NULL);
}

void repl_run(struct session *s)
{
	char *hist = history_path();
	build_word_lists();
	rl_readline_name = "dfq";
	rl_attempted_completion_function = dfq_complete;
	rl_catch_signals = 0;
	rl_signal_event_hook = on_signal_event;
	using_history();
	history_start(hist);
	/* Typos at the prompt are not failures of the program. */
	bool had_error = s->had_error;
	cli_info(s, "dfq %s: type 'help' for commands, 'quit' or Ctrl-D to leave", PACKAGE_VERSION);
	for (;;) {
		got_sigint = 0;
		catch_sigint(true);
		char *line = readline("dfq> ");
		/* While a command runs Ctrl-C stops the program, as it did
		 * before; cancelling a running command needs support from the core. */
		catch_sigint(false);
		if (!line)
			break;
		const char *p = line + strspn(line, " \t");
		if (*p) {
			add_history(line);
			if (hist)
				append_history(1, hist);
		}
		enum cmd_retval rv = cmd_run_line(s, line, NULL, 0);
		free(line);
		if (rv == CMD_RETURN_QUIT)
			break;
	}
	s->had_error = had_error;
	free(hist);
}
