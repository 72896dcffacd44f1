/* journal_send.c: the journald sink's driver for tests/test_sinkfmt_journal.py.
 *
 * Reads alerts from standard input, one JSON object per line (as `trailwatch
 * replay` prints them), and sends each to journald with sinkfmt_journal()
 * and sinkfmt_journal_send().  Exit 0 when every line was sent; otherwise 1,
 * with a message on standard error naming the line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "trailwatch/sinkfmt.h"

int main(void)
{
	char *line = NULL, msg[256];
	size_t cap = 0, lineno = 0;
	ssize_t n;
	int status = 0;

	while ((n = getline(&line, &cap, stdin)) >= 0) {
		struct sinkfmt_journal_fields f;
		int r;

		lineno++;
		if (n == 0 || (n == 1 && line[0] == '\n'))
			continue;
		r = sinkfmt_journal(line, (size_t)n, &f, msg, sizeof(msg));
		if (r < 0) {
			fprintf(stderr, "journal_send: line %zu: %s\n", lineno,
				r == -EINVAL ? msg : strerror(-r));
			status = 1;
			continue;
		}
		r = sinkfmt_journal_send(&f);
		sinkfmt_journal_free(&f);
		if (r < 0) {
			fprintf(stderr, "journal_send: line %zu: sd_journal_sendv: %s\n", lineno,
				strerror(-r));
			status = 1;
		}
	}
	free(line);
	return status;
}
