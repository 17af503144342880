/* dfq_text.h - small text helpers shared by the core and the program. */
#ifndef DFQ_TEXT_H
#define DFQ_TEXT_H

/* Levenshtein distance between a and b (insertions, deletions and
 * substitutions of one character each), for "did you mean" suggestions.
 * Only the first 64 characters of each count: enough to rank names. */
int dfq_edit_distance(const char *a, const char *b);

#endif
