/* text.c - small text helpers shared by the core and the program. */
#include <string.h>

#include "dfq/dfq_text.h"

int dfq_edit_distance(const char *a, const char *b)
{
	enum { MAXL = 64 };
	int la = (int)strlen(a), lb = (int)strlen(b);
	la = la > MAXL ? MAXL : la;
	lb = lb > MAXL ? MAXL : lb;
	int prev[MAXL + 1], cur[MAXL + 1];
	for (int j = 0; j <= lb; j++)
		prev[j] = j;
	for (int i = 1; i <= la; i++) {
		cur[0] = i;
		for (int j = 1; j <= lb; j++) {
			int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			int del = prev[j] + 1, ins = cur[j - 1] + 1;
			int m = sub < del ? sub : del;
			cur[j] = m < ins ? m : ins;
		}
		memcpy(prev, cur, (size_t)(lb + 1) * sizeof *prev);
	}
	return prev[lb];
}
