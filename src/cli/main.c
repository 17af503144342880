/* main.c - dfq: command-line options, then the model, scripts and the REPL. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "tui.h"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: dfq [options] [MODEL.onnx]\n"
	        "  -x FILE        run the commands in FILE (one per line, # comments), then exit\n"
	        "  -c 'CMDS'      run ';'-separated commands, then exit\n"
	        "  -i             stay interactive after -x/-c\n"
	        "  --data SPEC    open data after the model: 'data SPEC' (see 'help data')\n"
	        "  --json         one JSON object per command result on stdout\n"
	        "  --tui|--no-tui the screen (the default on a terminal) or line mode\n"
	        "  --threads N    kernel threads (0 = all CPUs)\n"
	        "  --scalar       use the scalar reference kernels instead of the fast ones\n"
	        "  -q, --quiet    quiet: no informational text, only results and errors\n"
	        "  -v, --verbose  steps list every layer they touched ('set verbose on')\n"
	        "  -h, --help     show this help\n"
	        "  -V, --version  show the version\n"
	        "Without -x/-c, commands are read from the terminal (with line editing) or\n"
	        "from standard input.  In scripts (-x, -c, 'source FILE', piped input) every\n"
	        "command is a unit: a failing command stops the script with exit status 1\n"
	        "(FILE:LINE: message), unless 'set errexit off', with which the next command\n"
	        "runs, after ';' on the same line or on the next line.  At the prompt a\n"
	        "failing command drops the rest of its line.  Type 'help' inside dfq for\n"
	        "commands.\n");
}

/* -x and -c run in the order given. */
struct action {
	bool is_file;
	const char *arg;
};

enum {
	OPT_JSON = 256,
	OPT_TUI,
	OPT_NO_TUI,
	OPT_THREADS,
	OPT_SCALAR,
	OPT_DATA,
};

struct options {
	struct action *actions;
	int nactions;
	bool interactive;
	int tui; /* 1 --tui, 0 --no-tui, -1 as the terminal allows */
	const char *model;
	const char *data; /* --data SPEC */
};

static bool parse_threads(struct session *s, const char *v)
{
	char why[256];
	double n;
	const struct setting_def *d = session_setting_find("threads");
	if (!num_parse(v, d->num, &n)) {
		num_why("--threads", v, d->num, why, sizeof why);
		cli_warn("%s", why);
		return false;
	}
	if (session_setting_set(s, "threads", v, why, sizeof why))
		return true;
	cli_warn("--threads: %s", why);
	return false;
}

/* Returns -1 to go on, else the exit status. */
static int parse_options(int argc, char **argv, struct session *s, struct options *o)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, OPT_JSON},
	    {"tui", no_argument, NULL, OPT_TUI},
	    {"no-tui", no_argument, NULL, OPT_NO_TUI},
	    {"threads", required_argument, NULL, OPT_THREADS},
	    {"scalar", no_argument, NULL, OPT_SCALAR},
	    {"data", required_argument, NULL, OPT_DATA},
	    {"quiet", no_argument, NULL, 'q'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	opterr = 0; /* our own messages, without the program's path */
	while ((c = getopt_long(argc, argv, ":x:c:iqvhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'x':
		case 'c':
			o->actions[o->nactions].is_file = c == 'x';
			o->actions[o->nactions++].arg = optarg;
			break;
		case 'i':
			o->interactive = true;
			break;
		case 'q':
			s->quiet = true;
			break;
		case 'v':
			s->set.verbose = true;
			break;
		case OPT_JSON:
			s->json = true;
			break;
		case OPT_TUI:
			o->tui = 1;
			break;
		case OPT_NO_TUI:
			o->tui = 0;
			break;
		case OPT_SCALAR:
			s->set.fast = false;
			break;
		case OPT_DATA:
			o->data = optarg;
			break;
		case OPT_THREADS:
			if (!parse_threads(s, optarg))
				return 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("dfq %s\n", PACKAGE_VERSION);
			return 0;
		case ':':
			cli_warn("option '%s' needs a value; try 'dfq --help'", argv[optind - 1]);
			return 1;
		default:
			if (optopt)
				cli_warn("unknown option '-%c'; try 'dfq --help'", optopt);
			else
				cli_warn("unknown option '%s'; try 'dfq --help'", argv[optind - 1]);
			return 1;
		}
	}
	if (optind < argc)
		o->model = argv[optind++];
	if (optind < argc) {
		cli_warn("only one model may be given (extra argument '%s')", argv[optind]);
		return 1;
	}
	return -1;
}

/* Run one -x/-c action; returns its outcome (see cmd_run_stream). */
static enum cmd_retval run_action(struct session *s, const struct action *a)
{
	if (!a->is_file)
		return cmd_run_string(s, a->arg);
	FILE *f = fopen(a->arg, "r");
	if (!f) {
		cli_warn("cannot open %s: %s", a->arg, strerror(errno));
		s->had_error = true;
		return CMD_RETURN_ERROR;
	}
	enum cmd_retval rv = cmd_run_stream(s, f, a->arg);
	fclose(f);
	return rv;
}

/* The positional model is simply the first command: load MODEL. */
static enum cmd_retval load_model(struct session *s, const char *model)
{
	char *av[] = {"load", (char *)model, NULL};
	return cmd_run_argv(s, 2, av, NULL, 0);
}

/* --data SPEC is the command after that: data SPEC. */
static enum cmd_retval open_data(struct session *s, const char *spec)
{
	char *av[] = {"data", (char *)spec, NULL};
	return cmd_run_argv(s, 2, av, NULL, 0);
}

int main(int argc, char **argv)
{
	struct session s;
	session_init(&s);
	struct options o = {.tui = -1};
	o.actions = calloc((size_t)argc + 1, sizeof *o.actions);
	if (!o.actions) {
		cli_warn("out of memory");
		return 1;
	}
	int status = parse_options(argc, argv, &s, &o);
	if (status >= 0) {
		free(o.actions);
		session_free(&s);
		return status;
	}
	bool scripted = o.nactions > 0;
	bool interactive = o.interactive || !scripted;
	/* The screen: on a terminal unless told otherwise (--json is for programs). */
	char why[128] = "";
	bool screen = interactive && o.tui != 0 && (o.tui == 1 || !s.json) &&
	              tui_possible(why, sizeof why);
	if (o.tui == 1 && !screen && interactive)
		cli_warn("cannot show the screen (%s); using line mode", why[0] ? why : "--json");

	enum cmd_retval rv = CMD_RETURN_NORMAL;
	if (screen && !scripted) {
		/* the model and data open inside the screen, their summaries in its log */
		const char *first[2];
		char *lines[2] = {NULL, NULL};
		int n = 0;
		if (o.model)
			lines[n++] = cmd_join_argv(2, (char *[]){"load", (char *)o.model});
		if (o.data)
			lines[n++] = cmd_join_argv(2, (char *[]){"data", (char *)o.data});
		for (int i = 0; i < n; i++)
			first[i] = lines[i];
		bool ok = tui_run(&s, first, n);
		for (int i = 0; i < n; i++)
			free(lines[i]);
		if (ok)
			goto done;
		screen = false;
	}
	if (o.model)
		rv = load_model(&s, o.model);
	if (o.data && rv == CMD_RETURN_NORMAL)
		rv = open_data(&s, o.data);
	/* A model that failed to load stops a script before it starts. */
	for (int i = 0; i < o.nactions && rv == CMD_RETURN_NORMAL; i++)
		rv = run_action(&s, &o.actions[i]);
	if (rv != CMD_RETURN_QUIT && interactive) {
		if (screen && tui_run(&s, NULL, 0))
			goto done;
		if (isatty(STDIN_FILENO))
			repl_run(&s);
		else if (rv == CMD_RETURN_NORMAL)
			cmd_run_stream(&s, stdin, "stdin");
	}
done:
	status = s.had_error ? 1 : 0;
	free(o.actions);
	session_free(&s);
	return status;
}
