/* rc.c - reference-counted heap blocks: a count in front of the caller's bytes. */
#include "rc.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The header keeps the payload aligned for any type. */
struct rc_head {
	alignas(max_align_t) size_t refs;
};

static struct rc_head *head_of(const void *p)
{
	return (struct rc_head *)((char *)p - sizeof(struct rc_head));
}

void *rc_alloc(size_t bytes)
{
	if (bytes > SIZE_MAX - sizeof(struct rc_head))
		return NULL;
	struct rc_head *h = calloc(1, sizeof *h + (bytes ? bytes : 1));
	if (!h)
		return NULL;
	h->refs = 1;
	return h + 1;
}

void *rc_dup(const void *src, size_t bytes)
{
	void *p = rc_alloc(bytes);
	if (p && bytes)
		memcpy(p, src, bytes);
	return p;
}

char *rc_strdup(const char *s)
{
	return s ? rc_dup(s, strlen(s) + 1) : NULL;
}

void *rc_ref(void *p)
{
	if (p)
		head_of(p)->refs++;
	return p;
}

void rc_unref(void *p)
{
	if (!p)
		return;
	struct rc_head *h = head_of(p);
	if (--h->refs == 0)
		free(h);
}

bool rc_shared(const void *p)
{
	return p && head_of(p)->refs > 1;
}

bool rc_writable(void **p, size_t bytes)
{
	if (!*p || !rc_shared(*p))
		return true;
	void *c = rc_dup(*p, bytes);
	if (!c)
		return false;
	rc_unref(*p);
	*p = c;
	return true;
}
