/* dfq_test.h - shared glue for cmocka test programs.
 * Every test program ends with the line "N passed, N failed" (", N skipped" when some
 * test could not run here: dfq_skip). */
#ifndef DFQ_TEST_H
#define DFQ_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

/* Skip the running test, saying why: counted as skipped, not passed. */
static int dfq_skipped_ __attribute__((unused));
#define dfq_skip(...)                                                                            \
	do {                                                                                     \
		dfq_skipped_++;                                                                  \
		print_message("skipped: " __VA_ARGS__);                                          \
		skip();                                                                          \
	} while (0)

#define DFQ_RUN_TESTS(tests)                                                                     \
	do {                                                                                     \
		int failed_ = cmocka_run_group_tests(tests, NULL, NULL);                         \
		int total_ = (int)(sizeof(tests) / sizeof((tests)[0]));                           \
		if (failed_ < 0)                                                                 \
			failed_ = total_;                                                        \
		if (dfq_skipped_)                                                                \
			printf("%d passed, %d failed, %d skipped\n", total_ - failed_ - dfq_skipped_, \
			       failed_, dfq_skipped_);                                           \
		else                                                                             \
			printf("%d passed, %d failed\n", total_ - failed_, failed_);             \
		return failed_ ? 1 : 0;                                                          \
	} while (0)

#endif
