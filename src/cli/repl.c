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

/* The session whose model's layer names complete (set by repl_run). */
static const struct session *complete_session;

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

/* The flags the flag generator walks (NULL-name terminated). */
static const struct args_flag *complete_flags;

/* "--name" for each flag whose name starts with what follows the dashes. */
static char *flag_generator(const char *text, int state)
{
	static int i;
	static size_t len;
	if (!state) {
		i = 0;
		len = strlen(text) - 2; /* text starts with "--" */
	}
	while (complete_flags && complete_flags[i].name) {
		const char *name = complete_flags[i++].name;
		if (strncmp(name, text + 2, len) != 0)
			continue;
		size_t n = strlen(name) + 3;
		char *w = malloc(n);
		if (w)
			snprintf(w, n, "--%s", name);
		return w;
	}
	return NULL;
}

static const char *command_words[48];
static const char *setting_words[24];
static const char *const no_words[] = {NULL};

/* Layer targets of the loaded model, rebuilt for each completion (owned;
 * the strings are the model's). */
static const char **layer_words;
static int layer_cap;

static void build_word_lists(void)
{
	int n = 0;
	const int max = (int)(sizeof command_words / sizeof command_words[0]) - 1;
	for (int i = 0; cmd_table[i] && n < max; i++) {
		command_words[n++] = cmd_table[i]->name;
		for (const char *const *a = cmd_table[i]->alias; a && *a && n < max; a++)
			command_words[n++] = *a;
	}
	command_words[n] = NULL;
	n = 0;
	for (int i = 0; session_settings[i].name && n < 23; i++)
		setting_words[n++] = session_settings[i].name;
	setting_words[n] = NULL;
}

/* A layer target: "all" and every layer's short name (alias), or, when none
 * of those starts with text, the layers' node names (long, and mostly
 * noise in a list of candidates). */
static const char *const *target_words(const char *text)
{
	const struct dfq_model *m = complete_session ? complete_session->model : NULL;
	int n = m ? m->nlayers : 0;
	if (n + 2 > layer_cap) {
		const char **w = realloc(layer_words, sizeof *w * (size_t)(n + 2));
		if (!w)
			return no_words;
		layer_words = w;
		layer_cap = n + 2;
	}
	size_t len = strlen(text);
	bool any = strncmp("all", text, len) == 0;
	layer_words[0] = "all";
	for (int i = 0; i < n; i++) {
		layer_words[i + 1] = m->layers[i].alias;
		any = any || strncmp(m->layers[i].alias, text, len) == 0;
	}
	layer_words[n + 1] = NULL;
	if (!any) {
		for (int i = 0; i < n; i++)
			layer_words[i] = m->layers[i].name;
		layer_words[n] = NULL;
	}
	return layer_words;
}

static char **complete_from(const char *const *words, const char *text)
{
	complete_words = words;
	rl_attempted_completion_over = 1;
	return rl_completion_matches(text, word_generator);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Where the word being completed stands in its command. */
struct complete_at {
	const struct cmd_entry *e;
	const struct args_flag *value_of; /* the word is this flag's value */
	bool is_flag;                     /* the word is a flag ("--...") */
	int pos;                          /* else: the positional it is (0 = first) */
	char first[256];                  /* the first positional, if any (set KEY) */
};

/* The flag named by word ("--name" or "--name=value"), or NULL. */
static const struct args_flag *find_flag(const struct cmd_entry *e, const char *word)
{
	size_t n = strcspn(word + 2, "=");
	for (const struct args_flag *f = e->args.flags; f && f->name; f++)
		if (strlen(f->name) == n && strncmp(f->name, word + 2, n) == 0)
			return f;
	return NULL;
}

/* Walk the words of buf[from, to) (the command's words before the one being
 * completed, cur) as args_parse() would. */
static void locate(const char *buf, int from, int to, const char *cur, struct complete_at *at)
{
	char word[256];
	bool flags_done = false;
	const struct args_flag *pending = NULL;
	at->pos = 0;
	at->first[0] = '\0';
	for (int i = from; i < to;) {
		while (i < to && is_blank(buf[i]))
			i++;
		int w = 0;
		for (; i < to && !is_blank(buf[i]); i++)
			if (w < (int)sizeof word - 1)
				word[w++] = buf[i];
		word[w] = '\0';
		if (w == 0)
			break;
		if (pending) {
			pending = NULL;
		} else if (!flags_done && strcmp(word, "--") == 0) {
			flags_done = true;
		} else if (!flags_done && word[0] == '-' && word[1] == '-') {
			const struct args_flag *f = find_flag(at->e, word);
			if (f && f->takes_value && !strchr(word, '='))
				pending = f;
		} else {
			if (at->pos++ == 0)
				snprintf(at->first, sizeof at->first, "%s", word);
		}
	}
	at->value_of = pending;
	at->is_flag = false;
	if (!pending && !flags_done && cur[0] == '-' && cur[1] == '-') {
		const struct args_flag *f = find_flag(at->e, cur);
		if (strchr(cur, '=') && f && f->takes_value)
			at->value_of = f;
		else
			at->is_flag = true;
	}
}

/* The words the positional at->pos can be (no_words: nothing to offer), or
 * NULL for file names. */
static const char *const *positional_words(const struct complete_at *at, const char *text)
{
	const struct args_spec *spec = &at->e->args;
	int pos = at->pos;
	if (pos > 0 && spec->subs) {
		/* the first word chose what follows it (a unique prefix chooses too) */
		const struct args_sub *sub = NULL;
		size_t n = strlen(at->first);
		int matches = 0;
		for (const struct args_sub *u = spec->subs; n && u->word; u++) {
			if (strcmp(u->word, at->first) == 0) {
				sub = u;
				matches = 1;
				break;
			}
			if (strncmp(u->word, at->first, n) == 0) {
				sub = u;
				matches++;
			}
		}
		if (matches != 1)
			sub = NULL;
		if (!sub || !sub->rest)
			return no_words;
		spec = sub->rest;
		pos--;
	}
	if (spec->max_pos >= 0 && pos >= spec->max_pos)
		return no_words;
	switch (spec->kind) {
	case ARGS_FILE:
		return NULL;
	case ARGS_TARGET:
		if (spec->max_pos >= 0 && pos >= spec->max_pos - spec->trailing)
			return spec->choices ? spec->choices : no_words;
		return target_words(text);
	case ARGS_CHOICE:
		return spec->choices ? spec->choices : no_words;
	case ARGS_COMMAND:
		return command_words;
	case ARGS_SETTING: {
		if (pos == 0)
			return setting_words;
		/* The setting's values: on/off, its choices; nothing for numbers. */
		const struct setting_def *d = session_setting_find(at->first);
		return d && d->choices ? d->choices : no_words;
	}
	}
	return NULL;
}

/* Command names in the first word (also after ';'); argument words get what
 * the command's argument template says they are: layers, one of a list, a
 * flag, a setting; file names otherwise (readline's own completion). */
static char **dfq_complete(const char *text, int start, int end)
{
	const char *buf = rl_line_buffer;
	int cmd = 0;
	for (int i = 0; i < start; i++)
		if (buf[i] == ';')
			cmd = i + 1;
	while (cmd < start && is_blank(buf[cmd]))
		cmd++;
	/* The shell word being completed starts at the blank before it (text may
	 * start later, after a ',' or ':' inside the word). */
	int wstart = start;
	while (wstart > cmd && !is_blank(buf[wstart - 1]))
		wstart--;
	if (wstart <= cmd)
		return complete_from(command_words, text);

	char word[64];
	int w = 0;
	while (buf[cmd + w] && !is_blank(buf[cmd + w]) && w < 63) {
		word[w] = buf[cmd + w];
		w++;
	}
	word[w] = '\0';
	char why[256];
	struct complete_at at = {.e = cmd_find(word, why, sizeof why)};
	if (!at.e)
		return NULL;
	/* The word so far, up to the cursor. */
	char cur[256];
	snprintf(cur, sizeof cur, "%.*s", end - wstart, buf + wstart);
	locate(buf, cmd + w, wstart, cur, &at);
	if (at.value_of)
		return at.value_of->choices ? complete_from(at.value_of->choices, text) : NULL;
	if (at.is_flag && wstart == start) {
		complete_flags = at.e->args.flags;
		rl_attempted_completion_over = 1;
		return rl_completion_matches(text, flag_generator);
	}
	const char *const *words = positional_words(&at, text);
	return words ? complete_from(words, text) : NULL; /* NULL: file names */
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

/* The history file, set up by repl_readline_setup. */
static char *hist_file;

void repl_readline_setup(struct session *s)
{
	hist_file = history_path();
	build_word_lists();
	complete_session = s;
	rl_readline_name = "dfq";
	rl_attempted_completion_function = dfq_complete;
	/* Also complete after ',' and ':' inside a word: each layer of "1,conv2"
	 * and each file of "npy:X.npy,Y.npy". */
	rl_completer_word_break_characters = " \t\n\"\\'`@$><=;|&{(,:";
	rl_catch_signals = 0;
	using_history();
	history_start(hist_file);
}

void repl_history_add(const char *line)
{
	const char *p = line + strspn(line, " \t");
	if (!*p)
		return;
	add_history(line);
	if (hist_file)
		append_history(1, hist_file);
}

void repl_readline_done(void)
{
	free(hist_file);
	hist_file = NULL;
	free(layer_words);
	layer_words = NULL;
	layer_cap = 0;
	complete_session = NULL;
}

void repl_run(struct session *s)
{
	repl_readline_setup(s);
	rl_signal_event_hook = on_signal_event;
	/* Typos at the prompt are not failures of the program. */
	bool had_error = s->had_error;
	cli_info(s, "dfq %s: type 'help' for commands, 'quit' or Ctrl-D to leave", PACKAGE_VERSION);
	for (;;) {
		got_sigint = 0;
		catch_sigint(true);
		char *line = readline("dfq> ");
		/* While a command runs, Ctrl-C is the command's (cli_interrupt_catch). */
		catch_sigint(false);
		if (!line)
			break;
		repl_history_add(line);
		enum cmd_retval rv = cmd_run_line(s, line, NULL, 0, false);
		free(line);
		if (rv == CMD_RETURN_QUIT)
			break;
	}
	s->had_error = had_error;
	repl_readline_done();
}
