/* rc.h - reference-counted heap blocks, for state shared copy-on-write.
 *
 * The model's per-layer buffers (statistics, bias corrections, grids, names)
 * are shared between the live model and the step history's earlier versions
 * of it.  A block is freed when its last owner drops it; a block with more
 * than one owner is read-only: change a copy (rc_writable).  Single-threaded:
 * only the thread that changes the model touches the counts. */
#ifndef DFQ_RC_H
#define DFQ_RC_H

#include <stdbool.h>
#include <stddef.h>

/* A new zero-filled block of bytes (at least 1), one owner; NULL when out of
 * memory. */
void *rc_alloc(size_t bytes);
/* A new block holding a copy of the bytes of src (one owner), or NULL. */
void *rc_dup(const void *src, size_t bytes);
/* A new block holding a copy of the string s, or NULL (s NULL gives NULL). */
char *rc_strdup(const char *s);
/* One more owner of p (NULL is fine); returns p. */
void *rc_ref(void *p);
/* Drop one owner of p; the last frees it.  NULL is fine. */
void rc_unref(void *p);
/* True when p has more than one owner. */
bool rc_shared(const void *p);
/* Make *p (a block of bytes) safe to change: when it is shared, replace it
 * by a private copy and drop the shared one.  false (and *p unchanged) when
 * out of memory. */
bool rc_writable(void **p, size_t bytes);

#endif
