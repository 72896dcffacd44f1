/* check.h: the C test programs' one way to check and to report.
 *
 *   CHECK(expr)               counts a pass, or prints "FILE:LINE: FAIL expr"
 *   CHECKF(expr, fmt, ...)    the same with a message of its own
 *   check_at(ok, FILE, LINE, fmt, ...)   for helpers that report their caller's line
 *   check_summary()           prints "N passed, N failed" (what tests/run.py reads);
 *                             returns the exit status
 */
#ifndef TRAILWATCH_TESTS_CHECK_H
#define TRAILWATCH_TESTS_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static int passed, failed;	/* the counts of one test program */

static void __attribute__((format(printf, 4, 5), unused)) check_at(bool ok, const char *file, int line,
								    const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		passed++;
		return;
	}
	failed++;
	printf("%s:%d: FAIL ", file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

#define CHECK(expr) check_at(!!(expr), __FILE__, __LINE__, "%s", #expr)
#define CHECKF(expr, ...) check_at(!!(expr), __FILE__, __LINE__, __VA_ARGS__)

static int __attribute__((unused)) check_summary(void)
{
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

#endif
