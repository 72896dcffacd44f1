/* log.c: leveled messages to journald or stderr (see log.h). */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>

#include <systemd/sd-journal.h>

#include "trailwatch/log.h"

#define LOG_LINE 4096
#define LOG_MAX_FIELDS 16

static enum log_level max_level = LOG_LEVEL_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t target_once = PTHREAD_ONCE_INIT;
static bool journal;

static const char *const level_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARNING] = "warning",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

static const int level_priority[] = {
	[LOG_LEVEL_ERROR] = LOG_ERR,
	[LOG_LEVEL_WARNING] = LOG_WARNING,
	[LOG_LEVEL_INFO] = LOG_INFO,
	[LOG_LEVEL_DEBUG] = LOG_DEBUG,
};

void log_set_level(enum log_level level)
{
	max_level = level;
}

int log_level_from_string(const char *s, enum log_level *ret)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*ret = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* systemd's rule: stderr is the journal when JOURNAL_STREAM names its
 * device and inode. */
static void pick_target(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int n = 0;

	if (!e || sscanf(e, "%llu:%llu%n", &dev, &ino, &n) != 2 || e[n] != '\0')
		return;
	if (fstat(2, &st) < 0)
		return;
	journal = (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

bool log_to_journal(void)
{
	pthread_once(&target_once, pick_target);
	return journal;
}

/* Appends text (already "KEY=value") to iov. */
static void add_raw(struct iovec *iov, size_t *n, const char *text)
{
	if (*n >= LOG_MAX_FIELDS)
		return;
	iov[*n].iov_base = (char *)text;
	iov[*n].iov_len = strlen(text);
	(*n)++;
}

/* Appends "KEY=value" when value is set; the text is formatted into store. */
static void add_field(struct iovec *iov, size_t *n, char *store, size_t size, const char *key, const char *value)
{
	if (!value)
		return;
	snprintf(store, size, "%s=%s", key, value);
	add_raw(iov, n, store);
}

static int send_journal(enum log_level level, const struct log_about *a, const char *text)
{
	struct iovec iov[LOG_MAX_FIELDS];
	char message[LOG_LINE + 16], priority[16], source[300], object[1200], sink[100], err[32];
	size_t n = 0;

	add_field(iov, &n, message, sizeof(message), "MESSAGE", text);
	snprintf(priority, sizeof(priority), "PRIORITY=%d", level_priority[level]);
	add_raw(iov, &n, priority);
	add_raw(iov, &n, "SYSLOG_IDENTIFIER=trailwatch");
	if (a) {
		add_field(iov, &n, source, sizeof(source), "TRAILWATCH_SOURCE", a->source);
		add_field(iov, &n, object, sizeof(object), "TRAILWATCH_OBJECT", a->object);
		add_field(iov, &n, sink, sizeof(sink), "TRAILWATCH_SINK", a->sink);
		if (a->error > 0) {
			snprintf(err, sizeof(err), "ERRNO=%d", a->error);
			add_raw(iov, &n, err);
		}
		for (size_t i = 0; a->extra && a->extra[i]; i++)
			add_raw(iov, &n, a->extra[i]);
	}
	return sd_journal_sendv(iov, (int)n);
}

/* Copies text into out (size > 0), truncated, with control characters
 * written as \n, \r, \t or \xHH: C0 bytes, DEL and C1 (U+0080-U+009F, as
 * UTF-8), which terminals act on.  A name in a message (a file, an S3 key,
 * a receiver's answer) can then neither start a line of its own nor move
 * the cursor or change colours. */
static void escape_controls(char *out, size_t size, const char *text)
{
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		char esc[9];
		bool c1 = p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f;

		if (*p == '\n')
			snprintf(esc, sizeof(esc), "\\n");
		else if (*p == '\r')
			snprintf(esc, sizeof(esc), "\\r");
		else if (*p == '\t')
			snprintf(esc, sizeof(esc), "\\t");
		else if (*p < 0x20 || *p == 0x7f)
			snprintf(esc, sizeof(esc), "\\x%02x", *p);
		else if (c1)
			snprintf(esc, sizeof(esc), "\\x%02x\\x%02x", p[0], p[1]);
		else
			snprintf(esc, sizeof(esc), "%c", *p);
		if (o + strlen(esc) >= size)
			break;
		memcpy(out + o, esc, strlen(esc));
		o += strlen(esc);
		p += c1;
	}
	out[o] = '\0';
}

void log_aboutv(enum log_level level, const struct log_about *about, const char *fmt, va_list ap)
{
	char raw[LOG_LINE], line[LOG_LINE];

	if (level > max_level)
		return;
	vsnprintf(raw, sizeof(raw), fmt, ap);
	escape_controls(line, sizeof(line), raw);
	if (log_to_journal() && send_journal(level, about, line) >= 0)
		return;
	/* One write per line so that lines from worker threads never interleave. */
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "trailwatch: %s: %s\n", level_names[level], line);
	pthread_mutex_unlock(&log_lock);
}

void log_about(enum log_level level, const struct log_about *about, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_aboutv(level, about, fmt, ap);
	va_end(ap);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_aboutv(level, NULL, fmt, ap);
	va_end(ap);
}
