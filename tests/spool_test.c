/* spool_test.c: tests of the durable alert spool (daemon/spool.c): order and
 * acks across two sinks, dedup before and after delivery and across reopen,
 * new and dropped sinks, torn tails, crash recovery under SIGKILL at random
 * moments, segment rotation and deletion, the size bound and the alert
 * size bound.  Prints one line per failure and "N passed, N failed"; exits 1
 * on failure.  `spool_test --bench [DIR]` measures throughput instead.
 *
 * Build: make -s && cc -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Iinclude -o build/spool_test \
 *	tests/spool_test.c build/spool.o build/buf.o
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "trailwatch/spool.h"

#include "check.h"

static char root[] = "/tmp/spool_test.XXXXXX";
static char msg[512];
static int64_t fake_now = 1700000000;

static int64_t fake_clock(void)
{
	return fake_now;
}

static const char *const two[] = { "stdout", "slack" };

/* A fresh directory under root for one test. */
static const char *testdir(const char *name)
{
	static char path[256];

	snprintf(path, sizeof(path), "%s/%s", root, name);
	return path;
}

static void mkid(char id[33], uint64_t hi, uint64_t lo)
{
	snprintf(id, 33, "%016" PRIx64 "%016" PRIx64, hi, lo);
}

static uint64_t id_lo(const char *id)
{
	return strtoull(id + 16, NULL, 16);
}

/* Adds alert number n with about pad bytes of filler. */
static int add_n(struct spool *s, uint64_t hi, uint64_t n, size_t pad)
{
	char id[33], *json;
	int len, r;

	mkid(id, hi, n);
	json = malloc(pad + 128);
	if (!json)
		return -ENOMEM;
	len = snprintf(json, pad + 128, "{\"id\":\"%s\",\"n\":%" PRIu64 ",\"pad\":\"%*s\"}", id, n,
		       (int)pad, "");
	r = spool_add(s, id, json, (size_t)len, msg, sizeof(msg));
	free(json);
	return r;
}

static struct spool *open_spool(const char *dir, const char *const *sinks, size_t n,
				const struct spool_limits *lim)
{
	struct spool *s = NULL;
	int r = spool_open(dir, sinks, n, lim, &s, msg, sizeof(msg));

	if (r < 0) {
		printf("spool_open %s: %d %s\n", dir, r, msg);
		return NULL;
	}
	return s;
}

/* Takes everything sink k has pending (acking it); their numbers go to out. */
static size_t drain(struct spool *s, size_t k, uint64_t *out, size_t max)
{
	size_t n = 0;

	for (;;) {
		const char *json;
		size_t len;
		char id[33];

		if (spool_peek(s, k, &json, &len, id, NULL, msg, sizeof(msg)) < 0) {
			printf("peek: %s\n", msg);
			break;
		}
		if (!json)
			break;
		if (out && n < max)
			out[n] = id_lo(id);
		n++;
		if (spool_ack(s, k, id, msg, sizeof(msg)) < 0) {
			printf("ack: %s\n", msg);
			break;
		}
	}
	return n;
}

/* The number of the alert sink k gets next, or UINT64_MAX for none. */
static uint64_t head(struct spool *s, size_t k)
{
	const char *json;
	size_t len;
	char id[33];

	if (spool_peek(s, k, &json, &len, id, NULL, msg, sizeof(msg)) < 0 || !json)
		return UINT64_MAX;
	if (!memmem(json, len, id, 32))
		return UINT64_MAX - 1;	/* the JSON is not the one that was added */
	return id_lo(id);
}

static int ack_n(struct spool *s, size_t k, uint64_t hi, uint64_t n)
{
	char id[33];

	mkid(id, hi, n);
	return spool_ack(s, k, id, msg, sizeof(msg));
}

static size_t count_files(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

/* The newest segment file's path. */
static void last_segment(const char *dir, char *out, size_t outlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char best[256] = "";

	while (d && (e = readdir(d)))
		if (strncmp(e->d_name, "seg-", 4) == 0 && strcmp(e->d_name, best) > 0)
			snprintf(best, sizeof(best), "%s", e->d_name);
	if (d)
		closedir(d);
	snprintf(out, outlen, "%s/%s", dir, best);
}

static off_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

static void append_bytes(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_APPEND);

	if (fd < 0 || write(fd, p, n) != (ssize_t)n)
		printf("cannot append to %s\n", path);
	if (fd >= 0)
		close(fd);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- tests ---- */

static void test_order(void)
{
	const char *dir = testdir("order");
	struct spool_stats st;
	struct spool *s = open_spool(dir, two, 2, NULL);
	char id[33];

	CHECK(s);
	if (!s)
		return;
	for (uint64_t n = 1; n <= 5; n++)
		CHECK(add_n(s, 1, n, 10) == 1);
	CHECK(head(s, 0) == UINT64_MAX);	/* not committed yet */
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	CHECK(head(s, 0) == 1);
	CHECK(head(s, 1) == 1);
	CHECK(ack_n(s, 0, 1, 2) == -ENOENT);	/* not its oldest */
	CHECK(ack_n(s, 0, 1, 1) == 0);
	CHECK(ack_n(s, 0, 1, 1) == -ENOENT);	/* twice */
	CHECK(head(s, 0) == 2);
	CHECK(head(s, 1) == 1);
	CHECK(ack_n(s, 1, 1, 1) == 0);
	CHECK(ack_n(s, 1, 1, 2) == 0);
	CHECK(ack_n(s, 1, 1, 3) == 0);
	CHECK(head(s, 1) == 4);
	CHECK(head(s, 0) == 2);
	spool_stats(s, &st);
	CHECK(st.nsinks == 2 && strcmp(st.sink[1].name, "slack") == 0);
	CHECK(st.sink[0].pending == 4);
	CHECK(st.sink[1].pending == 2);
	CHECK(st.holding_sink == 0);
	CHECK(st.alerts == 5);
	CHECK(add_n(s, 1, 6, 10) == 1);
	spool_stats(s, &st);
	CHECK(st.uncommitted == 1 && st.sink[0].pending == 4);
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);	/* nothing to do */
	uint64_t got[16];
	size_t n = drain(s, 0, got, 16);
	CHECK(n == 5 && got[0] == 2 && got[4] == 6);
	n = drain(s, 1, got, 16);
	CHECK(n == 3 && got[0] == 4 && got[2] == 6);
	spool_stats(s, &st);
	CHECK(st.sink[0].pending == 0 && st.sink[1].pending == 0 && st.holding_sink == SIZE_MAX);

	/* Bad input. */
	char shortid[33] = "0123";

	CHECK(spool_add(s, shortid, "{}", 2, msg, sizeof(msg)) == -EINVAL);
	CHECK(spool_add(s, "0123456789ABCDEF0123456789abcdef", "{}", 2, msg, sizeof(msg)) == -EINVAL);
	mkid(id, 1, 99);
	CHECK(spool_add(s, id, "", 0, msg, sizeof(msg)) == -EINVAL);
	CHECK(spool_peek(s, 2, NULL, NULL, id, NULL, msg, sizeof(msg)) == -EINVAL);
	CHECK(spool_ack(s, 2, id, msg, sizeof(msg)) == -EINVAL);

	/* One process at a time. */
	struct spool *s2 = NULL;
	CHECK(spool_open(dir, two, 2, NULL, &s2, msg, sizeof(msg)) == -EBUSY && !s2);
	const char *dup[] = { "a", "a" }, *bad[] = { "has space" };
	CHECK(spool_open(testdir("x"), dup, 2, NULL, &s2, msg, sizeof(msg)) == -EINVAL);
	CHECK(spool_open(testdir("x"), bad, 1, NULL, &s2, msg, sizeof(msg)) == -EINVAL);
	CHECK(spool_open(testdir("x"), two, 0, NULL, &s2, msg, sizeof(msg)) == -EINVAL);
	spool_close(s);
	spool_close(NULL);
}

static void test_dedup(void)
{
	const char *dir = testdir("dedup");
	struct spool_limits lim = { .segment_bytes = 4096, .max_ids = 1000, .remember_seconds = 3600,
				    .now = fake_clock };
	struct spool_stats st;
	struct spool *s = open_spool(dir, two, 2, &lim);

	if (!s) {
		CHECK(0);
		return;
	}
	CHECK(add_n(s, 2, 1, 10) == 1);
	CHECK(add_n(s, 2, 1, 10) == 0);		/* in the spool, uncommitted */
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	CHECK(add_n(s, 2, 1, 10) == 0);		/* in the spool, committed */
	CHECK(ack_n(s, 0, 2, 1) == 0);
	CHECK(add_n(s, 2, 1, 10) == 0);		/* delivered to one sink */
	CHECK(ack_n(s, 1, 2, 1) == 0);
	CHECK(add_n(s, 2, 1, 10) == 0);		/* delivered to both */
	/* Enough others (1 KiB each, 4 KiB segments) that the first segment is deleted. */
	for (uint64_t n = 2; n <= 20; n++) {
		CHECK(add_n(s, 2, n, 1000) == 1);
		CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	}
	drain(s, 0, NULL, 0);
	drain(s, 1, NULL, 0);
	spool_stats(s, &st);
	CHECK(st.alerts < 6 && st.segments <= 2);
	CHECK(st.remembered == 20);
	CHECK(add_n(s, 2, 1, 10) == 0);		/* only remembered now */
	CHECK(add_n(s, 2, 3, 10) == 0);
	spool_stats(s, &st);
	CHECK(st.duplicates == 6);
	spool_close(s);

	s = open_spool(dir, two, 2, &lim);
	if (!s) {
		CHECK(0);
		return;
	}
	CHECK(add_n(s, 2, 1, 10) == 0);		/* after reopen */
	CHECK(add_n(s, 2, 20, 10) == 0);
	spool_stats(s, &st);
	CHECK(st.remembered == 20);
	/* After a compaction too (state file instead of acks.log). */
	CHECK(spool_compact(s, msg, sizeof(msg)) == 0);
	spool_close(s);
	s = open_spool(dir, two, 2, &lim);
	if (!s) {
		CHECK(0);
		return;
	}
	CHECK(add_n(s, 2, 2, 10) == 0);
	/* The window: remembered for an hour after delivery, then forgotten. */
	fake_now += 3601;
	CHECK(add_n(s, 2, 1, 10) == 1);
	spool_stats(s, &st);
	CHECK(st.remembered == 0);
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	drain(s, 0, NULL, 0);
	drain(s, 1, NULL, 0);
	spool_close(s);

	/* The count bound: only the last max_ids delivered ids. */
	lim.max_ids = 3;
	s = open_spool(dir, two, 2, &lim);
	if (!s) {
		CHECK(0);
		return;
	}
	for (uint64_t n = 100; n < 110; n++)
		CHECK(add_n(s, 2, n, 3000) == 1);
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	for (uint64_t n = 110; n < 120; n++) {
		CHECK(add_n(s, 2, n, 3000) == 1);
		CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	}
	drain(s, 0, NULL, 0);
	drain(s, 1, NULL, 0);
	spool_stats(s, &st);
	CHECK(st.remembered == 3);
	CHECK(add_n(s, 2, 119, 10) == 0);	/* the last (and in the last segment anyway) */
	CHECK(add_n(s, 2, 117, 10) == 0);
	CHECK(add_n(s, 2, 100, 10) == 1);	/* forgotten, its segment deleted */
	spool_close(s);
}

static void test_reopen_and_sinks(void)
{
	const char *dir = testdir("reopen");
	const char *three[] = { "stdout", "slack", "webhook:soc" }, *one[] = { "stdout" };
	struct spool_stats st;
	struct spool *s = open_spool(dir, two, 2, NULL);
	uint64_t got[32];

	if (!s) {
		CHECK(0);
		return;
	}
	for (uint64_t n = 1; n <= 10; n++)
		CHECK(add_n(s, 3, n, 100) == 1);
	CHECK(add_n(s, 3, 11, 100) == 1);	/* never committed: gone after close */
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	CHECK(add_n(s, 3, 12, 100) == 1);
	for (uint64_t n = 1; n <= 3; n++)
		CHECK(ack_n(s, 0, 3, n) == 0);
	for (uint64_t n = 1; n <= 7; n++)
		CHECK(ack_n(s, 1, 3, n) == 0);
	spool_close(s);

	s = open_spool(dir, two, 2, NULL);
	if (!s) {
		CHECK(0);
		return;
	}
	spool_stats(s, &st);
	CHECK(st.sink[0].pending == 8 && st.sink[1].pending == 4);
	CHECK(head(s, 0) == 4);
	CHECK(head(s, 1) == 8);
	CHECK(st.torn_records == 0);
	CHECK(add_n(s, 3, 12, 100) == 1);	/* was not committed */
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	spool_close(s);

	/* A new sink starts at the end; its position survives a reopen. */
	s = open_spool(dir, three, 3, NULL);
	if (!s) {
		CHECK(0);
		return;
	}
	spool_stats(s, &st);
	CHECK(st.sink[0].pending == 9 && st.sink[1].pending == 5 && st.sink[2].pending == 0);
	CHECK(head(s, 2) == UINT64_MAX);
	CHECK(add_n(s, 3, 13, 100) == 1);
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	spool_close(s);
	s = open_spool(dir, three, 3, NULL);
	if (!s) {
		CHECK(0);
		return;
	}
	spool_stats(s, &st);
	CHECK(st.sink[0].pending == 10 && st.sink[1].pending == 6 && st.sink[2].pending == 1);
	CHECK(head(s, 2) == 13);
	spool_close(s);

	/* A dropped sink holds nothing: stdout alone decides, and what slack had
	 * not taken counts as delivered. */
	s = open_spool(dir, one, 1, NULL);
	if (!s) {
		CHECK(0);
		return;
	}
	CHECK(drain(s, 0, got, 32) == 10 && got[0] == 4 && got[9] == 13);
	spool_stats(s, &st);
	CHECK(st.sink[0].pending == 0 && st.holding_sink == SIZE_MAX);
	CHECK(add_n(s, 3, 9, 100) == 0);
	spool_close(s);
	/* ...and coming back it is new: nothing old. */
	s = open_spool(dir, two, 2, NULL);
	if (!s) {
		CHECK(0);
		return;
	}
	CHECK(head(s, 1) == UINT64_MAX);
	spool_close(s);
}

static void test_torn(void)
{
	const char *dir = testdir("torn");
	struct spool_stats st;
	struct spool *s = open_spool(dir, two, 2, NULL);
	char seg[512], path[512];
	uint64_t got[16];

	if (!s) {
		CHECK(0);
		return;
	}
	for (uint64_t n = 1; n <= 3; n++)
		CHECK(add_n(s, 4, n, 50) == 1);
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	spool_close(s);

	/* Cut the last record short: the first two survive. */
	last_segment(dir, seg, sizeof(seg));
	CHECK(truncate(seg, file_size(seg) - 5) == 0);
	s = open_spool(dir, two, 2, NULL);
	if (!s) {
		CHECK(0);
		return;
	}
	spool_stats(s, &st);
	CHECK(st.torn_records == 1 && st.torn_bytes > 0);
	CHECK(st.sink[0].pending == 2 && st.sink[1].pending == 2);
	CHECK(add_n(s, 4, 3, 50) == 1);		/* lost, so it is new again */
	CHECK(add_n(s, 4, 4, 50) == 1);
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	spool_close(s);
	s = open_spool(dir, two, 2, NULL);
	if (!s) {
		CHECK(0);
		return;
	}
	spool_stats(s, &st);
	CHECK(st.torn_records == 0);
	CHECK(st.sink[0].pending == 4);
	CHECK(ack_n(s, 1, 4, 1) == 0);
	spool_close(s);

	/* Garbage after the last record (more than the next commit writes), and after the last ack. */
	{
		char junk[2000];

		memset(junk, 'g', sizeof(junk));
		memcpy(junk, "\x13\x00\x00\x00", 4);
		append_bytes(seg, junk, sizeof(junk));
	}
	snprintf(path, sizeof(path), "%s/acks.log", dir);
	append_bytes(path, "\xff\xff", 2);
	s = open_spool(dir, two, 2, NULL);
	if (!s) {
		CHECK(0);
		return;
	}
	spool_stats(s, &st);
	CHECK(st.torn_records == 2);
	CHECK(drain(s, 0, got, 16) == 4 && got[0] == 1 && got[1] == 2 && got[2] == 3 && got[3] == 4);
	CHECK(drain(s, 1, got, 16) == 3 && got[0] == 2);
	CHECK(add_n(s, 4, 5, 10) == 1);
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	spool_close(s);
	/* The garbage was cut off, so what came after it reads back. */
	s = open_spool(dir, two, 2, NULL);
	if (!s) {
		CHECK(0);
		return;
	}
	spool_stats(s, &st);
	CHECK(st.torn_records == 0);
	CHECK(head(s, 0) == 5 && head(s, 1) == 5);
	CHECK(drain(s, 0, NULL, 0) == 1 && drain(s, 1, NULL, 0) == 1);

	/* A flipped byte inside a record: that record and the rest of its file go. */
	for (uint64_t n = 6; n <= 8; n++)
		CHECK(add_n(s, 4, n, 50) == 1);
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	spool_close(s);
	{
		int fd = open(seg, O_RDWR);
		char c;
		off_t at = file_size(seg) - 10;	/* inside the last record, 8 */

		CHECK(fd >= 0 && pread(fd, &c, 1, at) == 1);
		c ^= 0x20;
		CHECK(pwrite(fd, &c, 1, at) == 1);
		close(fd);
	}
	s = open_spool(dir, two, 2, NULL);
	if (!s) {
		CHECK(0);
		return;
	}
	spool_stats(s, &st);
	CHECK(st.torn_records == 1);
	CHECK(st.sink[0].pending == 2 && st.sink[1].pending == 2);
	CHECK(head(s, 0) == 6);
	spool_close(s);

	/* A segment cut short before its header was written (killed while
	 * creating it) is removed, and the one before it is written to again. */
	snprintf(path, sizeof(path), "%s/seg-00000000ffffffff", dir);
	{
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);

		CHECK(fd >= 0 && write(fd, "TWSP", 4) == 4);
		if (fd >= 0)
			close(fd);
	}
	s = open_spool(dir, two, 2, NULL);
	if (!s) {
		CHECK(0);
		return;
	}
	spool_stats(s, &st);
	CHECK(st.torn_records == 1 && st.torn_bytes == 4);
	CHECK(file_size(path) < 0);
	CHECK(head(s, 0) == 6 && head(s, 1) == 6);
	CHECK(add_n(s, 4, 9, 50) == 1);
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	CHECK(drain(s, 0, got, 16) == 3 && got[2] == 9);
	spool_close(s);

	/* A damaged state file is an error, not a silent restart. */
	snprintf(path, sizeof(path), "%s/state", dir);
	append_bytes(path, "x", 1);
	struct spool *s2 = NULL;
	CHECK(spool_open(dir, two, 2, NULL, &s2, msg, sizeof(msg)) == -EBADMSG && strstr(msg, "state"));
	CHECK(unlink(path) == 0);
	CHECK(spool_open(dir, two, 2, NULL, &s2, msg, sizeof(msg)) == -ENOENT && strstr(msg, "state"));
}

/* Flips one byte at offset at of path. */
static void flip_byte(const char *path, off_t at)
{
	int fd = open(path, O_RDWR);
	char c;

	CHECK(fd >= 0 && pread(fd, &c, 1, at) == 1);
	c ^= 0x5a;
	CHECK(pwrite(fd, &c, 1, at) == 1);
	if (fd >= 0)
		close(fd);
}

/* The names of the segment files of dir, in order (at most max). */
static size_t segments(const char *dir, char names[][512], size_t max)
{
	struct dirent **list;
	int n = scandir(dir, &list, NULL, alphasort);
	size_t k = 0;

	for (int i = 0; i < n; i++) {
		if (strncmp(list[i]->d_name, "seg-", 4) == 0 && strlen(list[i]->d_name) == 20 && k < max)
			snprintf(names[k++], 512, "%s/%s", dir, list[i]->d_name);
		free(list[i]);
	}
	free(list);
	return k;
}

/* Damage that is not a crash: every intact alert is still delivered, the
 * lost ones are reported (file, bytes, seqs) and counted, once the sinks
 * are past them no more. */
static void test_damage(void)
{
	const char *dir = testdir("damage");
	struct spool_limits lim = { .segment_bytes = 8192, .max_bytes = 1 << 20 };
	struct spool_stats st;
	struct spool *s = open_spool(dir, two, 2, &lim);
	char seg[16][512], path[600];
	uint64_t got[128];
	size_t nseg;

	if (!s) {
		CHECK(0);
		return;
	}
	for (uint64_t n = 0; n < 100; n++) {
		CHECK(add_n(s, 6, n, 300) == 1);
		if (n % 10 == 9)
			CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	}
	spool_close(s);
	nseg = segments(dir, seg, 16);
	CHECK(nseg >= 4);

	/* One flipped byte in the middle of the first segment's data. */
	flip_byte(seg[0], file_size(seg[0]) / 2);
	s = open_spool(dir, two, 2, &lim);
	if (!s) {
		CHECK(0);
		return;
	}
	spool_stats(s, &st);
	CHECK(st.torn_records == 0);
	CHECK(st.ndamage == 1 && st.lost_alerts == 1);
	CHECK(strcmp(st.damage[0].what, "damaged records") == 0);
	CHECK(strncmp(st.damage[0].file, "seg-", 4) == 0);
	CHECK(st.damage[0].end_seq == st.damage[0].first_seq + 1 && st.damage[0].undelivered == 1);
	CHECK(st.damage[0].from > 16 && st.damage[0].to > st.damage[0].from);
	CHECK(st.sink[0].pending == 99 && st.sink[1].pending == 99);
	CHECK(drain(s, 0, got, 128) == 99 && got[0] == 0 && got[98] == 99);
	spool_close(s);

	/* A whole segment deleted, another replaced by a FIFO, a third one's
	 * header damaged: the rest reads back. */
	CHECK(unlink(seg[1]) == 0);
	CHECK(unlink(seg[2]) == 0 && mkfifo(seg[2], 0600) == 0);
	flip_byte(seg[3], 3);
	s = open_spool(dir, two, 2, &lim);
	if (!s) {
		CHECK(0);
		return;
	}
	spool_stats(s, &st);
	{
		bool fifo = false, header = false, gap = false;

		for (size_t i = 0; i < st.ndamage && i < SPOOL_MAX_DAMAGE; i++) {
			fifo |= strstr(st.damage[i].what, "not a regular file") != NULL;
			header |= strstr(st.damage[i].what, "header damaged") != NULL;
			gap |= strstr(st.damage[i].what, "missing") != NULL && st.damage[i].undelivered > 0;
		}
		CHECK(fifo && header && gap);
	}
	snprintf(path, sizeof(path), "%s.damaged", seg[2]);
	CHECK(file_size(path) == 0);		/* the FIFO, set aside */
	CHECK(st.lost_alerts > 1 && st.sink[1].pending == 100 - st.lost_alerts);
	CHECK(st.sink[0].pending == 0);
	{
		size_t n = drain(s, 1, got, 128);

		CHECK(n == st.sink[1].pending && got[0] == 0 && got[n - 1] == 99);
		for (size_t i = 1; i < n; i++)
			CHECK(got[i] > got[i - 1]);
	}
	spool_close(s);

	/* Every sink is past the damage now: reopening loses nothing more. */
	s = open_spool(dir, two, 2, &lim);
	if (!s) {
		CHECK(0);
		return;
	}
	spool_stats(s, &st);
	CHECK(st.lost_alerts == 0);
	CHECK(add_n(s, 6, 100, 10) == 1 && spool_commit(s, msg, sizeof(msg)) == 0);
	CHECK(drain(s, 0, got, 4) == 1 && got[0] == 100);

	/* Damaged after it was opened: peek says so and gives the id. */
	CHECK(add_n(s, 6, 101, 10) == 1 && add_n(s, 6, 102, 10) == 1 && spool_commit(s, msg, sizeof(msg)) == 0);
	last_segment(dir, path, sizeof(path));
	flip_byte(path, file_size(path) - 200);
	{
		const char *json;
		size_t len;
		char id[33] = "";

		CHECK(spool_peek(s, 0, &json, &len, id, NULL, msg, sizeof(msg)) == -EBADMSG);
		CHECK(id_lo(id) == 101 && strstr(msg, "no longer reads back"));
		CHECK(spool_ack(s, 0, id, msg, sizeof(msg)) == 0);
		CHECK(head(s, 0) == 102);
	}
	spool_close(s);
}

static void test_rotation(void)
{
	const char *dir = testdir("rotation");
	struct spool_limits lim = { .segment_bytes = 4096, .max_bytes = 1 << 20 };
	struct spool_stats st;
	struct spool *s = open_spool(dir, two, 2, &lim);
	size_t before;

	if (!s) {
		CHECK(0);
		return;
	}
	for (uint64_t n = 1; n <= 40; n++) {
		CHECK(add_n(s, 5, n, 900) == 1);
		if (n % 2 == 0)
			CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	}
	before = count_files(dir, "seg-");
	spool_stats(s, &st);
	CHECK(before >= 6 && st.segments == before);
	CHECK(st.bytes > 40 * 900);
	CHECK(drain(s, 0, NULL, 0) == 40);
	CHECK(count_files(dir, "seg-") == before);	/* slack has not taken them */
	spool_stats(s, &st);
	CHECK(st.holding_sink == 1 && st.sink[1].held_bytes == st.bytes && st.sink[0].held_bytes == 0);
	for (uint64_t n = 1; n <= 20; n++)
		CHECK(ack_n(s, 1, 5, n) == 0);
	CHECK(count_files(dir, "seg-") < before && count_files(dir, "seg-") > 1);
	CHECK(drain(s, 1, NULL, 0) == 20);
	CHECK(count_files(dir, "seg-") == 1);
	spool_stats(s, &st);
	CHECK(st.segments == 1 && st.bytes < 5000);
	spool_close(s);
	s = open_spool(dir, two, 2, &lim);
	if (!s) {
		CHECK(0);
		return;
	}
	CHECK(head(s, 0) == UINT64_MAX && head(s, 1) == UINT64_MAX);
	CHECK(add_n(s, 5, 41, 10) == 1);
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	CHECK(head(s, 0) == 41 && head(s, 1) == 41);
	spool_close(s);
}

static void test_limits(void)
{
	const char *dir = testdir("limits");
	struct spool_limits lim = { .segment_bytes = 4096, .max_bytes = 16384 };
	struct spool_stats st;
	struct spool *s = open_spool(dir, two, 2, &lim);
	uint64_t n;
	int r = 0;
	char id[33], *big;

	if (!s) {
		CHECK(0);
		return;
	}
	/* slack never acks: the spool fills up. */
	for (n = 1; n < 100; n++) {
		r = add_n(s, 6, n, 900);
		if (r != 1)
			break;
		CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
		CHECK(ack_n(s, 0, 6, n) == 0);
	}
	CHECK(r == -ENOSPC);
	CHECK(strstr(msg, "\"slack\"") != NULL);
	CHECK(n > 10 && n < 20);
	spool_stats(s, &st);
	CHECK(st.holding_sink == 1 && st.sink[1].pending == n - 1 && st.sink[0].pending == 0);
	CHECK(st.bytes <= lim.max_bytes);
	CHECK(add_n(s, 6, n, 900) == -ENOSPC);
	CHECK(drain(s, 1, NULL, 0) == n - 1);
	CHECK(add_n(s, 6, n, 900) == 1);
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);

	/* The alert size bound. */
	big = malloc(SPOOL_MAX_ALERT + 1);
	if (!big) {
		CHECK(0);
		spool_close(s);
		return;
	}
	memset(big, 'x', SPOOL_MAX_ALERT + 1);
	mkid(id, 6, 1000);
	CHECK(spool_add(s, id, big, SPOOL_MAX_ALERT + 1, msg, sizeof(msg)) == -E2BIG);
	spool_close(s);
	lim.max_bytes = 4 << 20;
	s = open_spool(dir, two, 2, &lim);
	if (!s) {
		CHECK(0);
		free(big);
		return;
	}
	big[0] = '"';
	big[SPOOL_MAX_ALERT - 1] = '"';
	CHECK(drain(s, 0, NULL, 0) == 1 && drain(s, 1, NULL, 0) == 1);
	CHECK(spool_add(s, id, big, SPOOL_MAX_ALERT, msg, sizeof(msg)) == 1);
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	spool_close(s);
	s = open_spool(dir, two, 2, &lim);
	if (s) {
		const char *json = NULL;
		size_t len = 0;
		char got[33];

		CHECK(spool_peek(s, 1, &json, &len, got, NULL, msg, sizeof(msg)) == 0);
		CHECK(json && len == SPOOL_MAX_ALERT && memcmp(json, big, len) == 0 && strcmp(got, id) == 0);
		spool_close(s);
	} else {
		CHECK(0);
	}
	free(big);
}

/* Each alert keeps the second it was added, across a reopen (the age cap
 * of delivery.c reads it). */
static void test_added_time(void)
{
	const char *dir = testdir("added");
	struct spool_limits lim = { .segment_bytes = 4096, .now = fake_clock };
	const char *json;
	size_t len;
	int64_t added = 0, saved = fake_now;
	char id[33], want[33];
	struct spool *s = open_spool(dir, two, 2, &lim);

	if (!s) {
		CHECK(0);
		return;
	}
	fake_now = 1800000000;
	CHECK(add_n(s, 3, 1, 10) == 1);
	fake_now += 7200;
	CHECK(add_n(s, 3, 2, 10) == 1);
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	spool_close(s);
	s = open_spool(dir, two, 2, &lim);
	if (!s) {
		CHECK(0);
		return;
	}
	CHECK(spool_peek(s, 1, &json, &len, id, &added, msg, sizeof(msg)) == 0 && json);
	mkid(want, 3, 1);
	CHECK(strcmp(id, want) == 0);
	CHECKF(added == 1800000000, "added %lld", (long long)added);
	CHECK(spool_ack(s, 1, id, msg, sizeof(msg)) == 0);
	CHECK(spool_peek(s, 1, &json, &len, id, &added, msg, sizeof(msg)) == 0 && json);
	CHECKF(added == 1800000000 + 7200, "added %lld", (long long)added);
	spool_close(s);
	fake_now = saved;
}

/* One commit larger than a segment, then everything acked: the spool must
 * take new alerts (it once counted the acked last segment for good). */
static void test_acked_big_tail(void)
{
	const char *dir = testdir("bigtail");
	const char *const one[] = { "a" };
	struct spool_limits lim = { .segment_bytes = 4096, .max_bytes = 8192 };
	struct spool *s = open_spool(dir, one, 1, &lim);

	if (!s) {
		CHECK(0);
		return;
	}
	struct spool_stats st;
	uint64_t n = 0;

	/* one commit of more than a segment (6000 of the 8192 bytes) */
	do {
		CHECK(add_n(s, 7, ++n, 100) == 1);
		spool_stats(s, &st);
	} while (st.bytes < 6000 && n < 100);
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	spool_stats(s, &st);
	CHECK(st.bytes > lim.segment_bytes && st.segments == 1);
	CHECK(drain(s, 0, NULL, 0) == n);
	CHECK(add_n(s, 7, ++n, 1500) == 1);	/* refused for good before the fix */
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	CHECK(drain(s, 0, NULL, 0) == 1);
	for (int i = 0; i < 3; i++)
		CHECK(add_n(s, 7, ++n, 1500) == 1);
	spool_close(s);
}

static void test_compaction(void)
{
	const char *dir = testdir("compaction");
	struct spool_limits lim = { .ack_log_bytes = 4096 };
	struct spool_stats st;
	struct spool *s = open_spool(dir, two, 2, &lim);
	char log[512], tmp[512];
	off_t biggest = 0;

	if (!s) {
		CHECK(0);
		return;
	}
	snprintf(log, sizeof(log), "%s/acks.log", dir);
	snprintf(tmp, sizeof(tmp), "%s/state.tmp", dir);
	for (uint64_t n = 1; n <= 300; n++)
		CHECK(add_n(s, 8, n, 20) == 1);
	CHECK(spool_commit(s, msg, sizeof(msg)) == 0);
	/* ~50-byte acks: the log is rewritten into the state every ~80.  The
	 * file itself is made 16 + 4096 bytes long (zeros after the acks). */
	for (uint64_t n = 1; n <= 200; n++) {
		CHECK(ack_n(s, 0, 8, n) == 0);
		CHECK(ack_n(s, 1, 8, n) == 0);
		spool_stats(s, &st);
		if ((off_t)st.acks_logged > biggest)
			biggest = (off_t)st.acks_logged;
		CHECK(file_size(log) >= 16 + 4096);
	}
	CHECK(biggest > 2000 && biggest < 4096 + 200);
	spool_stats(s, &st);
	CHECK(st.remembered == 200 && st.compact_error == 0);

	/* A compaction that cannot write state.tmp does not stop the acks. */
	CHECK(mkdir(tmp, 0700) == 0);
	for (uint64_t n = 201; n <= 290; n++)
		CHECK(ack_n(s, 0, 8, n) == 0);
	spool_stats(s, &st);
	CHECK(st.compact_error == EISDIR);
	CHECK(st.acks_logged > 4096 && file_size(log) > 16 + 4096);
	CHECK(rmdir(tmp) == 0);
	for (uint64_t n = 201; n <= 290; n++)
		CHECK(ack_n(s, 1, 8, n) == 0);
	spool_stats(s, &st);
	CHECK(st.compact_error == 0 && st.acks_logged < 4096 && file_size(log) == 16 + 4096);
	spool_close(s);

	s = open_spool(dir, two, 2, &lim);
	if (!s) {
		CHECK(0);
		return;
	}
	spool_stats(s, &st);
	CHECK(st.remembered == 290);
	CHECK(st.sink[0].pending == 10 && st.sink[1].pending == 10);
	CHECK(head(s, 0) == 291 && head(s, 1) == 291);
	CHECK(add_n(s, 8, 1, 20) == 0 && add_n(s, 8, 250, 20) == 0);
	spool_close(s);
}

/* ---- crash simulation ---- */

#define CRASH_ROUNDS 30			/* SPOOL_CRASH_ROUNDS=N in the environment for a longer soak */
#define MAX_TRACK 20000

struct round {
	uint64_t committed[MAX_TRACK];	/* numbers, in commit order */
	size_t ncommitted;
	uint64_t batch[16];		/* being committed when killed */
	size_t nbatch;
	unsigned char *acked[2];	/* by number: acked and reported */
	uint64_t inflight[2];		/* ack started, not reported; UINT64_MAX if none */
	bool bad;
};

static void child_write(int fd, const char *line)
{
	size_t n = strlen(line);

	if (write(fd, line, n) != (ssize_t)n)
		_exit(3);
}

static void __attribute__((noreturn)) crash_child(const char *dir, int fd, uint64_t round,
						   const struct spool_limits *lim)
{
	struct spool *s = NULL;
	char line[1024], id[33], emsg[256];
	uint64_t n = 0;

	srand((unsigned)(round * 7919 + 17));
	if (spool_open(dir, two, 2, lim, &s, emsg, sizeof(emsg)) < 0) {
		snprintf(line, sizeof(line), "X open: %s\n", emsg);
		child_write(fd, line);
		_exit(2);
	}
	for (int loop = 0; loop < 100000; loop++) {
		int batch = 1 + rand() % 8;
		size_t off = 0;

		off += (size_t)snprintf(line + off, sizeof(line) - off, "P");
		for (int i = 0; i < batch; i++) {
			mkid(id, round, n + (uint64_t)i);
			off += (size_t)snprintf(line + off, sizeof(line) - off, " %s", id);
		}
		line[off++] = '\n';
		line[off] = '\0';
		child_write(fd, line);
		for (int i = 0; i < batch; i++) {
			char json[200];
			int len;

			mkid(id, round, n);
			len = snprintf(json, sizeof(json), "{\"id\":\"%s\",\"n\":%" PRIu64 ",\"pad\":\"%*s\"}",
				       id, n, rand() % 100, "");
			if (spool_add(s, id, json, (size_t)len, emsg, sizeof(emsg)) != 1) {
				snprintf(line, sizeof(line), "X add: %s\n", emsg);
				child_write(fd, line);
				_exit(2);
			}
			n++;
		}
		if (spool_commit(s, emsg, sizeof(emsg)) < 0) {
			snprintf(line, sizeof(line), "X commit: %s\n", emsg);
			child_write(fd, line);
			_exit(2);
		}
		child_write(fd, "C\n");
		/* Now and then a compaction, so that kills land in it too. */
		if (rand() % 8 == 0 && spool_compact(s, emsg, sizeof(emsg)) < 0) {
			snprintf(line, sizeof(line), "X compact: %s\n", emsg);
			child_write(fd, line);
			_exit(2);
		}
		/* An id that is in the spool or delivered is refused. */
		if (n > 20) {
			mkid(id, round, (uint64_t)rand() % (n - 10));
			if (spool_add(s, id, "{}", 2, emsg, sizeof(emsg)) != 0) {
				child_write(fd, "X a re-added id was not refused\n");
				_exit(2);
			}
		}
		for (size_t k = 0; k < 2; k++) {
			int acks = rand() % (k == 0 ? 8 : 5);

			for (int i = 0; i < acks; i++) {
				const char *json;
				size_t len;

				if (spool_peek(s, k, &json, &len, id, NULL, emsg, sizeof(emsg)) < 0) {
					snprintf(line, sizeof(line), "X peek: %s\n", emsg);
					child_write(fd, line);
					_exit(2);
				}
				if (!json)
					break;
				snprintf(line, sizeof(line), "a %zu %s\n", k, id);
				child_write(fd, line);
				if (spool_ack(s, k, id, emsg, sizeof(emsg)) < 0) {
					snprintf(line, sizeof(line), "X ack: %s\n", emsg);
					child_write(fd, line);
					_exit(2);
				}
				snprintf(line, sizeof(line), "A %zu %s\n", k, id);
				child_write(fd, line);
			}
		}
	}
	for (;;)
		pause();
}

static void crash_line(struct round *rd, char *line)
{
	char *p;
	size_t k;
	uint64_t n;

	switch (line[0]) {
	case 'P':
		rd->nbatch = 0;
		for (p = strtok(line + 1, " "); p && rd->nbatch < 16; p = strtok(NULL, " "))
			rd->batch[rd->nbatch++] = id_lo(p);
		break;
	case 'C':
		for (size_t i = 0; i < rd->nbatch && rd->ncommitted < MAX_TRACK; i++)
			rd->committed[rd->ncommitted++] = rd->batch[i];
		rd->nbatch = 0;
		break;
	case 'a':
	case 'A':
		k = (size_t)(line[2] - '0');
		n = id_lo(line + 4);
		if (k > 1 || n >= MAX_TRACK * 2)
			break;
		if (line[0] == 'a') {
			rd->inflight[k] = n;
		} else {
			rd->acked[k][n] = 1;
			rd->inflight[k] = UINT64_MAX;
		}
		break;
	case 'X':
		printf("crash child: %s\n", line);
		rd->bad = true;
		break;
	}
}

/* Reads the child's lines until the deadline (ms, -1: until the end). */
static void crash_read(int fd, struct round *rd, char *buf, size_t *have, size_t cap, int ms)
{
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int left = -1, pr;
		ssize_t got;
		char *nl;

		if (ms >= 0) {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			left = ms - (int)((t1.tv_sec - t0.tv_sec) * 1000 +
					  (t1.tv_nsec - t0.tv_nsec) / 1000000);
			if (left <= 0)
				return;
		}
		pr = poll(&p, 1, left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			return;
		got = read(fd, buf + *have, cap - 1 - *have);
		if (got <= 0)
			return;
		*have += (size_t)got;
		buf[*have] = '\0';
		while ((nl = strchr(buf, '\n'))) {
			*nl = '\0';
			crash_line(rd, buf);
			*have -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, *have + 1);
		}
	}
}

static bool in_list(const uint64_t *v, size_t n, uint64_t x)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

static void test_crash(void)
{
	const char *dir = testdir("crash");
	struct spool_limits lim = { .segment_bytes = 8192 };
	static struct round rd;
	static char buf[1 << 16];
	static uint64_t pending[2][MAX_TRACK * 2];
	size_t total_committed = 0, total_torn = 0, rounds_with_commits = 0;
	size_t batch_survived = 0, ack_landed = 0;
	unsigned char *acked0 = calloc(MAX_TRACK * 2, 1), *acked1 = calloc(MAX_TRACK * 2, 1);

	const char *env = getenv("SPOOL_CRASH_ROUNDS");
	int rounds = env && atoi(env) > 0 ? atoi(env) : CRASH_ROUNDS;

	srand(12345);
	for (uint64_t round = 1; round <= (uint64_t)rounds && acked0 && acked1; round++) {
		int pfd[2], status;
		size_t have = 0, npend[2];
		int delay = 5 + rand() % 120;
		struct spool *s;
		struct spool_stats st;
		pid_t pid;
		bool ok = true;

		memset(&rd, 0, offsetof(struct round, acked));
		memset(acked0, 0, MAX_TRACK * 2);
		memset(acked1, 0, MAX_TRACK * 2);
		rd.acked[0] = acked0;
		rd.acked[1] = acked1;
		rd.inflight[0] = rd.inflight[1] = UINT64_MAX;
		rd.bad = false;
		if (pipe(pfd) < 0) {
			CHECK(0);
			break;
		}
		fflush(stdout);
		pid = fork();
		if (pid < 0) {
			CHECK(0);
			break;
		}
		if (pid == 0) {
			close(pfd[0]);
			crash_child(dir, pfd[1], round, &lim);
		}
		close(pfd[1]);
		crash_read(pfd[0], &rd, buf, &have, sizeof(buf), delay);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		crash_read(pfd[0], &rd, buf, &have, sizeof(buf), -1);
		close(pfd[0]);
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		CHECK(!rd.bad);

		s = open_spool(dir, two, 2, &lim);
		if (!s) {
			CHECK(0);
			break;
		}
		spool_stats(s, &st);
		total_torn += st.torn_records;
		for (size_t k = 0; k < 2; k++)
			npend[k] = drain(s, k, pending[k], MAX_TRACK * 2);
		total_committed += rd.ncommitted;
		if (rd.ncommitted)
			rounds_with_commits++;

		for (size_t k = 0; k < 2; k++) {
			for (size_t i = 0; i < npend[k]; i++) {
				uint64_t n = pending[k][i];

				/* In order, once, only what was added, never what was acked. */
				if (i && n <= pending[k][i - 1])
					ok = false;
				if (!in_list(rd.committed, rd.ncommitted, n)) {
					if (in_list(rd.batch, rd.nbatch, n))
						batch_survived++;	/* written, commit had not returned */
					else
						ok = false;
				}
				if (n < MAX_TRACK * 2 && rd.acked[k][n]) {
					printf("round %" PRIu64 ": sink %zu got acked alert %" PRIu64 " again\n",
					       round, k, n);
					ok = false;
				}
			}
			if (rd.inflight[k] != UINT64_MAX && !in_list(pending[k], npend[k], rd.inflight[k]))
				ack_landed++;	/* killed after the ack was written, before it was reported */
			/* Every committed alert is pending or was acked (or was the ack in flight). */
			for (size_t i = 0; i < rd.ncommitted; i++) {
				uint64_t n = rd.committed[i];

				if (n < MAX_TRACK * 2 && !rd.acked[k][n] && n != rd.inflight[k] &&
				    !in_list(pending[k], npend[k], n)) {
					printf("round %" PRIu64 ": sink %zu lost committed alert %" PRIu64 "\n",
					       round, k, n);
					ok = false;
				}
			}
		}
		CHECK(ok);
		/* Delivered everywhere now: every committed id is refused. */
		for (size_t i = 0; i < rd.ncommitted; i++)
			if (add_n(s, round, rd.committed[i], 10) != 0) {
				printf("round %" PRIu64 ": committed alert %" PRIu64 " accepted again\n",
				       round, rd.committed[i]);
				ok = false;
				break;
			}
		CHECK(ok);
		spool_close(s);
	}
	CHECK(rounds_with_commits >= (size_t)rounds / 2);
	CHECK(total_committed >= 200);
	printf("crash: %d kills, %zu rounds with commits, %zu alerts committed, %zu uncommitted alerts found "
	       "written, %zu in-flight acks found done, %zu torn records recovered\n",
	       rounds, rounds_with_commits, total_committed, batch_survived, ack_landed, total_torn);
	free(acked0);
	free(acked1);
}

/* ---- throughput ---- */

static double seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int bench(const char *base)
{
	char dir[600];
	struct spool *s;
	double t0, t;
	int n = 20000;
	uint64_t nacks = 0;

	snprintf(dir, sizeof(dir), "%s/bench", base);
	s = open_spool(dir, two, 2, NULL);
	if (!s)
		return 1;
	t0 = seconds();
	for (int i = 0; i < n; i++) {
		if (add_n(s, 7, (uint64_t)i, 600) != 1) {
			printf("add: %s\n", msg);
			break;
		}
		if (i % 10 == 9 && spool_commit(s, msg, sizeof(msg)) < 0) {
			printf("commit: %s\n", msg);
			break;
		}
	}
	t = seconds() - t0;
	printf("add+commit (commit every 10, ~700-byte alerts): %d alerts in %.2f s = %.0f alerts/s "
	       "(%.0f commits/s)\n", n, t, n / t, n / 10 / t);
	t0 = seconds();
	nacks = drain(s, 0, NULL, 0);
	t = seconds() - t0;
	printf("peek+ack, first sink: %" PRIu64 " in %.2f s = %.0f acks/s\n", nacks, t, (double)nacks / t);
	t0 = seconds();
	nacks = drain(s, 1, NULL, 0);
	t = seconds() - t0;
	printf("peek+ack, second sink (remembers ids, deletes segments): %" PRIu64 " in %.2f s = %.0f acks/s\n",
	       nacks, t, (double)nacks / t);
	spool_close(s);
	t0 = seconds();
	s = open_spool(dir, two, 2, NULL);
	t = seconds() - t0;
	printf("reopen with %d delivered ids remembered: %.3f s\n", n, t);
	spool_close(s);
	rm_rf(dir);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "--bench") == 0) {
		const char *base = argc >= 3 ? argv[2] : "/var/tmp";
		char tmpl[512];
		int r;

		snprintf(tmpl, sizeof(tmpl), "%s/spool_bench.XXXXXX", base);
		if (!mkdtemp(tmpl)) {
			perror(tmpl);
			return 1;
		}
		r = bench(tmpl);
		rm_rf(tmpl);
		return r;
	}
	if (!mkdtemp(root)) {
		perror(root);
		return 1;
	}
	test_order();
	test_dedup();
	test_reopen_and_sinks();
	test_torn();
	test_damage();
	test_rotation();
	test_limits();
	test_acked_big_tail();
	test_added_time();
	test_compaction();
	test_crash();
	rm_rf(root);
	return check_summary();
}
