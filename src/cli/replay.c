/* replay.c - command scripts that rebuild a session: the settings a step ran with as `set`
 * lines, its data as the `data` command that opened it, then the step as typed.  `save` writes
 * one; `session load` runs one. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"

void script_add(struct script *sc, const char *fmt, ...)
{
	if (sc->oom)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		sc->oom = true;
		return;
	}
	if (sc->len + (size_t)n + 2 > sc->cap) {
		size_t cap = sc->cap ? sc->cap : 1024;
		while (sc->len + (size_t)n + 2 > cap)
			cap *= 2;
		char *t = realloc(sc->text, cap);
		if (!t) {
			sc->oom = true;
			return;
		}
		sc->text = t;
		sc->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(sc->text + sc->len, sc->cap - sc->len, fmt, ap);
	va_end(ap);
	sc->len += (size_t)n;
	sc->text[sc->len++] = '\n';
	sc->text[sc->len] = '\0';
}

void script_free(struct script *sc)
{
	free(sc->text);
	memset(sc, 0, sizeof *sc);
}

/* Settings that change what steps compute (threads, timing, verbose and
 * errexit change how, not what). */
static bool replayed(const char *name)
{
	return strcmp(name, "threads") != 0 && strcmp(name, "timing") != 0 &&
	       strcmp(name, "verbose") != 0 && strcmp(name, "errexit") != 0;
}

void script_settings(struct script *sc, const struct settings *from, const struct settings *to)
{
	struct session a = {.set = *from}, b = {.set = *to};
	for (int i = 0; session_settings[i].name; i++) {
		const char *name = session_settings[i].name;
		if (!replayed(name))
			continue;
		char va[64], vb[64];
		session_setting_str(&a, i, va, sizeof va);
		session_setting_str(&b, i, vb, sizeof vb);
		if (strcmp(va, vb) != 0)
			script_add(sc, "set %s %s", name, vb);
	}
}

bool replay_same_data(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

void script_state(struct script *sc, struct replay_state *st, const struct settings *set,
                  const char *data)
{
	if (data && !replay_same_data(st->data, data)) {
		script_add(sc, "%s", data);
		st->data = data;
	}
	script_settings(sc, &st->set, set);
	st->set = *set;
}

void replay_state_init(struct replay_state *st)
{
	struct session fresh;
	session_init(&fresh);
	st->set = fresh.set;
	st->data = NULL;
	session_free(&fresh);
}

void replay_capture_sink(void *user, enum out_kind kind, const char *line)
{
	struct replay_capture *c = user;
	if (kind == OUT_ERROR && !c->first[0])
		snprintf(c->first, sizeof c->first, "%s", line);
}
