/* dfq_test.h - shared glue for cmocka test programs.
 * Every test program ends with the line "N passed, N failed". */
#ifndef DFQ_TEST_H
#define DFQ_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#define DFQ_RUN_TESTS(tests)                                                                     \
	do {                                                                                     \
		int failed_ = cmocka_run_group_tests(tests, NULL, NULL);                         \
		int total_ = (int)(sizeof(tests) / sizeof((tests)[0]));                           \
		if (failed_ < 0)                                                                 \
			failed_ = total_;                                                        \
		printf("%d passed, %d failed\n", total_ - failed_, failed_);                     \
		return failed_ ? 1 : 0;                                                          \
	} while (0)

#endif
