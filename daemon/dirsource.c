/* dirsource.c: a watched local directory (see dirsource.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "trailwatch/buf.h"
#include "trailwatch/dirsource.h"
#include "trailwatch/input.h"
#include "trailwatch/keyset.h"
#include "trailwatch/log.h"
#include "trailwatch/statefile.h"
#include "trailwatch/walk.h"

#define MAX_CHECKPOINT (256u << 20)

struct dirsource {
	const struct source_config *c;
	char *dir;			/* the checkpoint's directory */
	char *file;			/* the checkpoint's name */
	size_t max_object;
	volatile sig_atomic_t *stop;
	struct keyset done;		/* files processed (full paths) */
	struct keyset reported;		/* problems logged and still there: "ERRNO:PATH" */
	struct buf raw;			/* one file's bytes */
	struct dirsource_stats stats;
};

static bool accept_log(const char *path, void *ctx)
{
	(void)ctx;
	return input_classify(path) == INPUT_LOG;
}

static int checkpoint_write(struct dirsource *d)
{
	struct json_object *o = json_object_new_object(), *files = json_object_new_array();
	char msg[600];
	const char *text;
	int r = -ENOMEM;

	if (!o || !files) {
		json_object_put(files);
		goto out;
	}
	json_object_object_add(o, "version", json_object_new_int(1));
	json_object_object_add(o, "path", json_object_new_string(d->c->path));
	for (size_t i = 0; i < d->done.n; i++)
		json_object_array_add(files, json_object_new_string(d->done.v[i]));
	json_object_object_add(o, "done", files);
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	r = text ? statefile_write(d->dir, d->file, text, strlen(text), msg, sizeof(msg)) : -ENOMEM;
	if (r < 0 && r != -ENOMEM)
		log_error("%s: checkpoint not saved: %s", d->c->name, msg);
out:
	json_object_put(o);
	return r;
}

static int checkpoint_load(struct dirsource *d)
{
	struct json_object *o = NULL, *v;
	char msg[600];
	struct buf b;
	int r;

	buf_init(&b, MAX_CHECKPOINT);
	r = statefile_read(d->dir, d->file, &b, msg, sizeof(msg));
	if (r == -ENOENT || r == -ENOMEM) {
		r = r == -ENOENT ? 0 : r;
		goto out;
	}
	if (r < 0) {
		log_error("%s: %s; every file there will be read again", d->c->name, msg);
		r = 0;
		goto out;
	}
	o = json_tokener_parse(b.data ? b.data : "");
	if (!o || !json_object_object_get_ex(o, "path", &v) || !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), d->c->path) != 0 || !json_object_object_get_ex(o, "done", &v) ||
	    !json_object_is_type(v, json_type_array)) {
		log_error("%s: %s/%s: not a checkpoint; every file there will be read again", d->c->name, d->dir,
			  d->file);
		goto out;
	}
	for (size_t i = 0; i < json_object_array_length(v) && r == 0; i++) {
		struct json_object *f = json_object_array_get_idx(v, i);
		if (json_object_is_type(f, json_type_string) && keyset_add(&d->done, json_object_get_string(f)) < 0)
			r = -ENOMEM;
	}
out:
	json_object_put(o);
	buf_free(&b);
	return r;
}

int dirsource_new(const struct source_config *sc, const char *state_dir, size_t max_object,
		  volatile sig_atomic_t *stop, struct dirsource **ret, char *msg, size_t msglen)
{
	struct dirsource *d = calloc(1, sizeof(*d));
	int r = -ENOMEM;

	if (!d)
		return -ENOMEM;
	d->c = sc;
	d->max_object = max_object;
	d->stop = stop;
	buf_init(&d->raw, max_object);
	if (asprintf(&d->dir, "%s/checkpoints", state_dir) < 0) {
		d->dir = NULL;
		goto fail;
	}
	{
		char *key;
		if (asprintf(&key, "dir-%s", sc->path) < 0)
			goto fail;
		d->file = statefile_name(key, ".json");
		free(key);
		if (!d->file)
			goto fail;
	}
	r = statefile_mkdirs(d->dir, msg, msglen);
	if (r == 0)
		r = checkpoint_load(d);
	if (r < 0)
		goto fail;
	*ret = d;
	return 0;
fail:
	dirsource_free(d);
	return r;
}

void dirsource_free(struct dirsource *d)
{
	if (!d)
		return;
	keyset_clear(&d->done);
	keyset_clear(&d->reported);
	buf_free(&d->raw);
	free(d->dir);
	free(d->file);
	free(d);
}

void dirsource_stats(const struct dirsource *d, struct dirsource_stats *ret)
{
	*ret = d->stats;
}

/* Logs one problem of this poll (error: negative errno) unless the last poll
 * had it too, and adds it to now.  The message names the path; log.c
 * escapes it. */
static int report(struct dirsource *d, struct keyset *now, const char *path, int error, const char *text)
{
	struct log_about about = { .source = d->c->name, .object = path, .error = -error };
	char *key;
	int r;

	if (asprintf(&key, "%d:%s", error, path) < 0)
		return -ENOMEM;
	if (!keyset_has(&d->reported, key))
		log_about(LOG_LEVEL_ERROR, &about, "%s", text);
	r = keyset_add(now, key) < 0 ? -ENOMEM : 0;
	free(key);
	return r;
}

/* Lists the directory.  What cannot be read is logged once for as long as
 * it stays (and again if it comes back after a poll without it), not at
 * every poll; the rest is listed.  Returns 0 with the log files in *files,
 * 1 when the directory itself cannot be read (nothing listed), or -ENOMEM. */
static int list_files(struct dirsource *d, struct pathlist *files)
{
	struct walk_skips unread = { 0 };
	struct keyset now = { 0 };
	char err[600], text[900];
	int r = walk_files(d->c->path, accept_log, NULL, files, &unread, err, sizeof(err));

	if (r == -ENOMEM)
		goto out;
	if (r < 0) {
		pathlist_free(files);
		snprintf(text, sizeof(text), "%s: %s", d->c->name, err);
		r = report(d, &now, d->c->path, r, text);
		if (r == 0)
			r = 1;
	} else {
		for (size_t i = 0; i < unread.n && r == 0; i++) {
			snprintf(text, sizeof(text), "%s: not read: %s", unread.v[i].path, unread.v[i].why);
			r = report(d, &now, unread.v[i].path, unread.v[i].error, text);
		}
		if (r == 0 && unread.dropped) {
			snprintf(text, sizeof(text), "%s: %zu more entries not read, not shown", d->c->name,
				 unread.dropped);
			r = report(d, &now, d->c->path, -E2BIG, text);
		}
	}
	if (r >= 0) {
		keyset_clear(&d->reported);
		d->reported = now;
		memset(&now, 0, sizeof(now));
	}
out:
	keyset_clear(&now);
	walk_skips_free(&unread);
	return r;
}

/* Commits the spool, then records the batch's files as done. */
static int finish_batch(struct dirsource *d, const struct source_sink *sink, char **files, size_t n)
{
	int r = sink->commit(sink->ctx);

	for (size_t i = 0; i < n && r == 0; i++)
		if (keyset_add(&d->done, files[i]) < 0)
			r = -ENOMEM;
	if (r == 0 && n)
		r = checkpoint_write(d) == -ENOMEM ? -ENOMEM : 0;
	return r;
}

int dirsource_poll(struct dirsource *d, int64_t now, const struct source_sink *sink)
{
	struct pathlist files = { 0 };
	char err[600], *batch[DIRSOURCE_BATCH];
	size_t nbatch = 0, before;
	int r;

	d->stats.polls++;
	r = list_files(d, &files);
	if (r != 0) {
		pathlist_free(&files);
		return r < 0 ? r : 0;
	}
	/* forget what is gone, so the checkpoint stays as small as the directory */
	before = d->done.n;
	for (size_t i = 0; i < d->done.n;) {
		if (access(d->done.v[i], F_OK) < 0 && errno == ENOENT)
			keyset_remove_at(&d->done, i);
		else
			i++;
	}
	/* read in delivery order, as replay does */
	pathlist_sort(&files, 0, input_cmp_delivery);
	for (size_t i = 0; i < files.n && r == 0; i++) {
		const char *path = files.paths[i];
		struct stat st;

		if (d->stop && *d->stop) {
			r = -ECANCELED;
			break;
		}
		if (keyset_has(&d->done, path))
			continue;
		if (stat(path, &st) < 0 || now - st.st_mtime < DIRSOURCE_SETTLE)
			continue;	/* gone, or maybe still being written: next poll */
		r = input_read_file(path, d->max_object, &d->raw, err, sizeof(err));
		if (r == -ENOMEM)
			break;
		if (r < 0) {
			struct log_about about = { .source = d->c->name, .object = path, .error = -r };
			log_about(LOG_LEVEL_ERROR, &about, "%s: %s", path, err);
			d->stats.failed_files++;
			r = 0;
		} else {
			r = sink->object(sink->ctx, path, d->raw.data, d->raw.len);
			buf_trim(&d->raw, INPUT_KEEP_BUFFER);
			d->stats.files++;
			if (r < 0)
				break;
		}
		batch[nbatch++] = files.paths[i];
		if (nbatch == DIRSOURCE_BATCH) {
			r = finish_batch(d, sink, batch, nbatch);
			nbatch = 0;
		}
	}
	if (r == 0 || r == -ECANCELED) {
		int f = finish_batch(d, sink, batch, nbatch);
		if (f < 0)
			r = f;
		else if (before != d->done.n && checkpoint_write(d) == -ENOMEM)
			r = -ENOMEM;
	}
	pathlist_free(&files);
	return r;
}
