/* deadletter.c: a sink's dead-letter folder (see deadletter.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "trailwatch/deadletter.h"
#include "trailwatch/msg.h"
#include "trailwatch/statefile.h"

/* A letter holds one alert, escaped once more as a JSON string. */
#define LETTER_MAX (8u * SPOOL_MAX_ALERT + 4096)

struct found {
	char id[SPOOL_ID_LEN + 1];
	struct timespec mtime;
};

int deadletters_init(struct deadletters *q, const char *dir)
{
	memset(q, 0, sizeof(*q));
	q->dir = strdup(dir);
	if (!q->dir)
		return -ENOMEM;
	q->maybe = true;
	buf_init(&q->file, LETTER_MAX);
	buf_init(&q->json, SPOOL_MAX_ALERT);
	return 0;
}

void deadletters_free(struct deadletters *q)
{
	free(q->dir);
	free(q->ids);
	buf_free(&q->file);
	buf_free(&q->json);
	memset(q, 0, sizeof(*q));
}

int deadletters_keep(struct deadletters *q, const char *sink, const char id[SPOOL_ID_LEN + 1], const char *json,
		     size_t len, const char *why, char *msg, size_t msglen)
{
	struct json_object *o = json_object_new_object();
	char name[SPOOL_ID_LEN + 8];
	const char *text;
	int r = -ENOMEM;

	if (!o)
		return msg_fail(msg, msglen, -ENOMEM, "%s: out of memory", q->dir);
	if (json_object_object_add(o, "sink", json_object_new_string(sink)) == 0 &&
	    json_object_object_add(o, "reason", json_object_new_string(why)) == 0 &&
	    json_object_object_add(o, "alert", json_object_new_string_len(json, (int)len)) == 0) {
		text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
		snprintf(name, sizeof(name), "%s.json", id);
		r = statefile_mkdirs(q->dir, msg, msglen);
		if (r == 0)
			r = statefile_write(q->dir, name, text, strlen(text), msg, msglen);
	} else {
		msg_fail(msg, msglen, r, "%s: out of memory", q->dir);
	}
	json_object_put(o);
	if (r == 0 && strncmp(why, DEADLETTER_EVICTED, strlen(DEADLETTER_EVICTED)) == 0)
		q->maybe = true;
	return r;
}

static int by_mtime(const void *a, const void *b)
{
	const struct found *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	return strcmp(x->id, y->id);
}

static bool letter_name(const char *name)
{
	if (strlen(name) != SPOOL_ID_LEN + 5 || strcmp(name + SPOOL_ID_LEN, ".json") != 0)
		return false;
	return strspn(name, "0123456789abcdef") == SPOOL_ID_LEN;
}

/* Lists the folder's letters, oldest first (at most DEADLETTER_SCAN_MAX). */
static int scan(struct deadletters *q, char *msg, size_t msglen)
{
	struct found *f = NULL, *v;
	size_t n = 0, cap = 0;
	struct dirent *e;
	DIR *d;
	int r = 0;

	free(q->ids);
	q->ids = NULL;
	q->n = q->next = 0;
	d = opendir(q->dir);
	if (!d)
		return errno == ENOENT ? 0 : msg_fail(msg, msglen, -errno, "%s: cannot list: %s", q->dir,
						      strerror(errno));
	while ((e = readdir(d)) && n < DEADLETTER_SCAN_MAX) {
		struct stat st;

		if (!letter_name(e->d_name) || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			v = realloc(f, cap * sizeof(*f));
			if (!v) {
				r = -ENOMEM;
				goto out;
			}
			f = v;
		}
		memcpy(f[n].id, e->d_name, SPOOL_ID_LEN);
		f[n].id[SPOOL_ID_LEN] = '\0';
		f[n].mtime = st.st_mtim;
		n++;
	}
	if (n) {
		qsort(f, n, sizeof(*f), by_mtime);
		q->ids = malloc(n * sizeof(*q->ids));
		if (!q->ids) {
			r = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			memcpy(q->ids[i], f[i].id, sizeof(q->ids[i]));
		q->n = n;
	}
out:
	closedir(d);
	free(f);
	if (r == -ENOMEM)
		msg_fail(msg, msglen, r, "%s: out of memory", q->dir);
	return r;
}

/* Reads letter id: 1 with its alert in q->json when it is an evicted one,
 * 0 when it is another kind (or gone), -errno. */
static int read_letter(struct deadletters *q, const char *id, char *msg, size_t msglen)
{
	struct json_object *o = NULL, *reason, *alert;
	char path[4096];
	int r;

	snprintf(path, sizeof(path), "%s/%s.json", q->dir, id);
	r = buf_read_file(&q->file, path, msg, msglen);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	o = json_tokener_parse(q->file.data ? q->file.data : "");
	if (!o || !json_object_object_get_ex(o, "reason", &reason) ||
	    !json_object_object_get_ex(o, "alert", &alert) || !json_object_is_type(alert, json_type_string) ||
	    !json_object_is_type(reason, json_type_string)) {
		r = msg_fail(msg, msglen, -EBADMSG, "%s: not a dead letter", path);
		goto out;
	}
	if (strncmp(json_object_get_string(reason), DEADLETTER_EVICTED, strlen(DEADLETTER_EVICTED)) != 0) {
		r = 0;
		goto out;
	}
	buf_reset(&q->json);
	r = buf_append(&q->json, json_object_get_string(alert), (size_t)json_object_get_string_len(alert));
	if (r < 0) {
		msg_fail(msg, msglen, r, "%s: its alert is too large", path);
		goto out;
	}
	r = 1;
out:
	json_object_put(o);
	return r;
}

int deadletters_next(struct deadletters *q, const char **json, size_t *len, char id[SPOOL_ID_LEN + 1], char *msg,
		     size_t msglen)
{
	int r;

	if (q->next == q->n) {
		if (!q->maybe)
			return 0;
		q->maybe = false;
		r = scan(q, msg, msglen);
		if (r < 0)
			return r;
		q->maybe = q->n == DEADLETTER_SCAN_MAX;	/* more than one scan takes */
	}
	while (q->next < q->n) {
		const char *this = q->ids[q->next++];

		r = read_letter(q, this, msg, msglen);
		if (r == 0)
			continue;
		if (r < 0)
			return r;
		memcpy(id, this, SPOOL_ID_LEN + 1);
		q->next--;	/* given until deadletters_done */
		*json = q->json.data;
		*len = q->json.len;
		return 1;
	}
	return 0;
}

int deadletters_done(struct deadletters *q, const char id[SPOOL_ID_LEN + 1], bool remove, char *msg,
		     size_t msglen)
{
	char path[4096];

	if (q->next < q->n && strcmp(q->ids[q->next], id) == 0)
		q->next++;
	if (!remove)
		return 0;
	snprintf(path, sizeof(path), "%s/%s.json", q->dir, id);
	if (unlink(path) < 0 && errno != ENOENT)
		return msg_fail(msg, msglen, -errno, "%s: cannot remove: %s", path, strerror(errno));
	return 0;
}
