/* s3source.c: discovery, per-prefix listing windows and checkpoints for a
 * CloudTrail bucket (see s3source.h).
 *
 * Reading order: keyset (a sorted set of keys), key times, checkpoints,
 * discovery, then poll_group() - the heart of it: list a group of leaves at
 * once, process what each found, in order - and s3source_poll() (rounds).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "trailwatch/ctlog.h"
#include "trailwatch/log.h"
#include "trailwatch/input.h"
#include "trailwatch/keyset.h"
#include "trailwatch/s3source.h"
#include "trailwatch/statefile.h"

#define MAX_CHECKPOINT (8u << 20)	/* bytes of one leaf's checkpoint file */
#define MAX_RETRIES 20			/* polls an object is retried before it is given up */
#define MAX_DISCOVERY_DEPTH 6
#define MAX_FUTURE 3600			/* seconds a key may be named ahead of the clock */
/* Leaves listed at once (up to S3SOURCE_LIST_PARALLEL requests in flight)
 * before their objects are processed: bounds the listings in memory to
 * LIST_GROUP * S3SOURCE_MAX_PENDING keys. */
#define LIST_GROUP 32

/* Most poll cycles a prefix whose listings never end waits between two
 * listings (leaf_list_failed): 15 minutes at the default poll_interval. */
#define LIST_BACKOFF_MAX 15ul

/* Most keys the leaves of a source keep from one backfill round for the
 * next ones (struct leaf, ahead): about 2 MiB. */
#define AHEAD_MAX 16384

/* ---- leaves ------------------------------------------------------------ */

struct retry {
	char *key;
	int tries;			/* polls that failed to fetch it */
	unsigned long cycle;		/* the poll cycle of the last counted try */
};

/* One account/region prefix and its checkpoint. */
struct leaf {
	char *prefix;			/* ".../111122223333/CloudTrail/us-east-1/" */
	char *account, *region;		/* from the prefix; NULL when it is not the usual layout */
	char *file;			/* its checkpoint file's name */
	int64_t newest;			/* time of the newest key processed; 0: none yet */
	struct keyset done;		/* keys processed inside the window */
	struct retry *retry;		/* keys whose retries ran out, to try again */
	size_t nretry;
	int64_t quiet_since;		/* since when its polls found nothing; 0: busy */
	/* Warm-up after a restart: the objects of the last `warmup` seconds
	 * before the checkpoint are read again (their alerts are refused by
	 * the spool as duplicates), so correlation windows and throttles hold
	 * what they held before the restart. */
	int64_t warm_from;		/* listing starts here while warming */
	int64_t warm_floor;		/* the floor at load: older keys were processed */
	int64_t warm_until;		/* the newest processed key at load; 0: not warming */
	struct keyset warm_done;	/* the keys done at load (they were processed) */
	struct keyset warmed;		/* keys already read again */
	int64_t listed_until;		/* with nothing processed yet: when a listing last found nothing */
	int64_t caught_up;		/* when a listing last got to the end of the prefix and its
					 * objects were processed; 0: not since the start */
	int64_t next_key;		/* time of the first key a listing of this cycle left for a later
					 * round (INT64_MAX: none) ... */
	unsigned long next_cycle;	/* ... valid when this is the current poll cycle */
	bool due;			/* polled in the current cycle (leaf_due) */
	int64_t last_poll;
	unsigned long failed_cycle;	/* the poll cycle whose listing of it failed; 0: none */
	unsigned list_failures;		/* listings failed in a row (0: the last one worked) */
	unsigned long retry_cycle;	/* after failures: not listed before this poll cycle */
	/* Keys a backfill round listed past its horizon, kept for the later
	 * rounds of the same poll cycle so that they need not list the prefix
	 * again (see listing_init). */
	struct keyset ahead;
	size_t ahead_next;		/* ahead.v[ahead_next...] are still to be taken */
	unsigned long ahead_cycle;	/* the cycle they were listed in */
	bool ahead_end;			/* that listing got to the end of the prefix */
};

struct s3source {
	struct source_config c;		/* strings belong to the config */
	char *dir;			/* STATE_DIR/checkpoints/SOURCE */
	struct s3_client *s3;
	volatile sig_atomic_t *stop;
	struct leaf **leaves;
	size_t nleaves, capleaves;
	int64_t next_discovery;
	int64_t step;			/* key time one backfill round covers */
	int64_t warmup;			/* seconds of objects read again after a restart */
	size_t ahead_total;		/* keys in the leaves' ahead sets */
	struct s3source_stats stats;
};

static void leaf_free(struct leaf *l)
{
	if (!l)
		return;
	free(l->prefix);
	free(l->account);
	free(l->region);
	free(l->file);
	keyset_clear(&l->done);
	keyset_clear(&l->warmed);
	keyset_clear(&l->warm_done);
	keyset_clear(&l->ahead);
	for (size_t i = 0; i < l->nretry; i++)
		free(l->retry[i].key);
	free(l->retry);
	free(l);
}

/* The time of a CloudTrail object key's delivery stamp
 * (ACCOUNT_CloudTrail_REGION_20261127T1015Z_xxxx.json.gz); 0 when it has none. */
static int64_t key_time(const char *key)
{
	char stamp[15], iso[32];
	int64_t t;

	if (input_delivery_stamp(key, stamp) < 0)
		return 0;
	snprintf(iso, sizeof(iso), "%.4s-%.2s-%.2sT%.2s:%.2s:00Z", stamp, stamp + 4, stamp + 6, stamp + 9,
		 stamp + 11);
	return ctlog_parse_time(iso, strlen(iso), &t) == 0 ? t : 0;
}

/* The first key of the leaf at or after time t, minus one byte: a
 * start-after value.  The usual layout lets it name the minute; otherwise
 * the day folder. */
static void start_after(const struct leaf *l, int64_t t, char *out, size_t outlen)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char day[16], minute[16];

	gmtime_r(&tt, &tm);
	strftime(day, sizeof(day), "%Y/%m/%d/", &tm);
	strftime(minute, sizeof(minute), "%Y%m%dT%H%MZ", &tm);
	if (l->account && l->region)
		snprintf(out, outlen, "%s%s%s_CloudTrail_%s_%s", l->prefix, day, l->account, l->region, minute);
	else
		snprintf(out, outlen, "%s%s", l->prefix, day);
}

/* The time the leaf's listing starts from, on a whole minute (keys name
 * minutes, and start_after() can only say a minute): the newest processed
 * key's time minus the lookback; before anything was processed, start_time
 * (or now minus the lookback) or, once a listing found nothing, that
 * moment minus the lookback.  Keys to retry are fetched by name and do not
 * hold it back. */
static int64_t leaf_floor(const struct s3source *s, const struct leaf *l, int64_t now)
{
	int64_t floor;

	if (l->newest) {
		floor = l->newest - s->c.lookback;
	} else {
		floor = s->c.start_time ? s->c.start_time : now - s->c.lookback;
		if (l->listed_until && l->listed_until - s->c.lookback > floor)
			floor = l->listed_until - s->c.lookback;
	}
	if (l->warm_until && l->warm_from < floor)
		floor = l->warm_from;
	return floor - (floor % 60 + 60) % 60;
}

static bool is_retry(const struct leaf *l, const char *key)
{
	for (size_t i = 0; i < l->nretry; i++)
		if (strcmp(l->retry[i].key, key) == 0)
			return true;
	return false;
}

/* A key read again for the warm-up only (see struct leaf): processed before
 * the restart, i.e. older than the window then, or in its done set then -
 * and not one that was still to be retried. */
static bool is_warm(const struct leaf *l, const char *key)
{
	int64_t t = key_time(key);

	return l->warm_until && t && t <= l->warm_until &&
	       (t < l->warm_floor || keyset_has(&l->warm_done, key)) && !is_retry(l, key);
}

/* ---- checkpoints ---------------------------------------------------------- */

static int checkpoint_write(struct s3source *s, struct leaf *l)
{
	struct json_object *o = json_object_new_object(), *done = json_object_new_array(),
			   *retry = json_object_new_array();
	char msg[600];
	const char *text;
	int r = -ENOMEM;

	if (!o || !done || !retry) {
		json_object_put(done);
		json_object_put(retry);
		goto out;
	}
	json_object_object_add(o, "version", json_object_new_int(1));
	json_object_object_add(o, "prefix", json_object_new_string(l->prefix));
	json_object_object_add(o, "newest", json_object_new_int64(l->newest));
	for (size_t i = 0; i < l->done.n; i++)
		json_object_array_add(done, json_object_new_string(l->done.v[i]));
	for (size_t i = 0; i < l->nretry; i++) {
		struct json_object *e = json_object_new_object();
		json_object_object_add(e, "key", json_object_new_string(l->retry[i].key));
		json_object_object_add(e, "tries", json_object_new_int(l->retry[i].tries));
		json_object_array_add(retry, e);
	}
	json_object_object_add(o, "done", done);
	json_object_object_add(o, "retry", retry);
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	r = text ? statefile_write(s->dir, l->file, text, strlen(text), msg, sizeof(msg)) : -ENOMEM;
	if (r < 0 && r != -ENOMEM)
		log_error("%s: checkpoint not saved: %s", s->c.name, msg);
out:
	json_object_put(o);
	return r;
}

static int add_retry(struct leaf *l, const char *key, int tries, unsigned long cycle)
{
	struct retry *v;

	for (size_t i = 0; i < l->nretry; i++) {
		if (strcmp(l->retry[i].key, key) == 0) {
			l->retry[i].tries = tries;
			l->retry[i].cycle = cycle;
			return 0;
		}
	}
	if (l->nretry >= S3SOURCE_MAX_RETRY)
		return -E2BIG;
	v = realloc(l->retry, (l->nretry + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	l->retry = v;
	v[l->nretry].key = strdup(key);
	if (!v[l->nretry].key)
		return -ENOMEM;
	v[l->nretry].tries = tries;
	v[l->nretry++].cycle = cycle;
	return 0;
}

static void remove_retry(struct leaf *l, const char *key)
{
	for (size_t i = 0; i < l->nretry; i++) {
		if (strcmp(l->retry[i].key, key) == 0) {
			free(l->retry[i].key);
			l->retry[i] = l->retry[--l->nretry];
			return;
		}
	}
}

/* Loads the leaf's checkpoint if there is one.  A damaged file is reported
 * and the leaf starts over from its window (objects may be processed
 * again; their alerts are deduplicated by id in the spool). */
static int checkpoint_load(struct s3source *s, struct leaf *l)
{
	struct buf b;
	struct json_object *o = NULL, *v;
	char msg[600];
	int r;

	buf_init(&b, MAX_CHECKPOINT);
	r = statefile_read(s->dir, l->file, &b, msg, sizeof(msg));
	if (r == -ENOENT) {
		r = 0;
		goto out;
	}
	if (r < 0) {
		log_error("%s: %s; starting %s over", s->c.name, msg, l->prefix);
		r = r == -ENOMEM ? r : 0;
		goto out;
	}
	o = json_tokener_parse(b.data ? b.data : "");
	if (!o || !json_object_object_get_ex(o, "prefix", &v) || !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), l->prefix) != 0) {
		log_error("%s: %s/%s: not a checkpoint of %s; starting it over", s->c.name, s->dir, l->file, l->prefix);
		goto out;
	}
	if (json_object_object_get_ex(o, "newest", &v))
		l->newest = json_object_get_int64(v);
	if (json_object_object_get_ex(o, "done", &v) && json_object_is_type(v, json_type_array)) {
		/* the newest keys, when there are too many */
		size_t n = json_object_array_length(v), first = n > S3SOURCE_MAX_DONE ? n - S3SOURCE_MAX_DONE : 0;
		for (size_t i = first; i < n && r == 0; i++) {
			struct json_object *k = json_object_array_get_idx(v, i);
			if (json_object_is_type(k, json_type_string))
				r = keyset_add(&l->done, json_object_get_string(k)) < 0 ? -ENOMEM : 0;
		}
	}
	if (json_object_object_get_ex(o, "retry", &v) && json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v) && r == 0; i++) {
			struct json_object *e = json_object_array_get_idx(v, i), *k, *t;
			if (json_object_object_get_ex(e, "key", &k) && json_object_is_type(k, json_type_string) &&
			    json_object_object_get_ex(e, "tries", &t))
				r = add_retry(l, json_object_get_string(k), json_object_get_int(t), 0);
		}
	}
	if (r == 0 && l->newest && s->warmup > 0) {
		l->warm_until = l->newest;
		l->warm_floor = l->newest - s->c.lookback;
		l->warm_from = l->warm_floor - s->warmup;
		for (size_t i = 0; i < l->done.n && r == 0; i++)
			r = keyset_add(&l->warm_done, l->done.v[i]) < 0 ? -ENOMEM : 0;
	}
out:
	json_object_put(o);
	buf_free(&b);
	return r;
}

/* ---- discovery ------------------------------------------------------------ */

static bool is_org(const char *s, size_t n)
{
	if (n < 12 || n > 34 || s[0] != 'o' || s[1] != '-')
		return false;
	for (size_t i = 2; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

static bool is_account(const char *s, size_t n)
{
	if (n != 12)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* us-east-1, eu-central-2, us-gov-west-1, ap-southeast-4, ... */
static bool is_region(const char *s, size_t n)
{
	size_t parts = 0, i = 0;

	while (i < n) {
		size_t start = i;
		while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
			i++;
		if (i == start)
			return false;
		parts++;
		if (i < n && s[i++] != '-')
			return false;
		if (i == n && s[n - 1] == '-')
			return false;
	}
	return parts >= 3 && n <= 32 && s[n - 1] >= '0' && s[n - 1] <= '9' && s[0] >= 'a' && s[0] <= 'z';
}

static bool listed(const char *const *list, size_t n, const char *s, size_t len)
{
	if (!list)
		return true;
	for (size_t i = 0; i < n; i++)
		if (strlen(list[i]) == len && memcmp(list[i], s, len) == 0)
			return true;
	return false;
}

static int collect_prefix(const char *prefix, size_t len, void *ctx)
{
	struct keyset *k = ctx;

	(void)len;
	if (k->n >= S3SOURCE_MAX_LEAVES)
		return -E2BIG;
	return keyset_add(k, prefix) < 0 ? -ENOMEM : 0;
}

static int add_leaf(struct s3source *s, const char *prefix)
{
	struct leaf *l;
	const char *seg[8];
	size_t segl[8], n = 0, plen = strlen(prefix);
	int r;

	for (size_t i = 0; i < s->nleaves; i++)
		if (strcmp(s->leaves[i]->prefix, prefix) == 0)
			return 0;
	if (s->nleaves >= S3SOURCE_MAX_LEAVES)
		return -E2BIG;
	if (s->nleaves == s->capleaves) {
		size_t cap = s->capleaves ? 2 * s->capleaves : 16;
		struct leaf **v = realloc(s->leaves, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->leaves = v;
		s->capleaves = cap;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->prefix = strdup(prefix);
	l->file = statefile_name(prefix, ".json");
	if (!l->prefix || !l->file) {
		leaf_free(l);
		return -ENOMEM;
	}
	/* the last three segments: ACCOUNT/CloudTrail/REGION/ */
	for (size_t end = plen ? plen - 1 : 0; end > 0 && n < 3;) {
		size_t start = end;
		while (start > 0 && prefix[start - 1] != '/')
			start--;
		seg[n] = prefix + start;
		segl[n++] = end - start;
		end = start ? start - 1 : 0;
	}
	if (n == 3 && is_region(seg[0], segl[0]) && segl[1] == 10 && memcmp(seg[1], "CloudTrail", 10) == 0 &&
	    is_account(seg[2], segl[2])) {
		l->region = strndup(seg[0], segl[0]);
		l->account = strndup(seg[2], segl[2]);
		if (!l->region || !l->account) {
			leaf_free(l);
			return -ENOMEM;
		}
	}
	r = checkpoint_load(s, l);
	if (r < 0) {
		leaf_free(l);
		return r;
	}
	s->leaves[s->nleaves++] = l;
	log_info("%s: watching %s", s->c.name, prefix);
	return 0;
}

enum depth_kind { LVL_ROOT, LVL_REGIONS };

/* Lists prefix with delimiter '/' and descends into what looks like the
 * trail's layout. */
static int discover(struct s3source *s, const char *prefix, enum depth_kind lvl, int depth)
{
	struct s3_list_params lp = { .prefix = prefix, .delimiter = "/" };
	struct keyset kids = { 0 };
	char msg[S3_MSG], next[2048];
	int r;

	if (depth > MAX_DISCOVERY_DEPTH)
		return 0;
	r = s3_list(s->s3, &lp, NULL, collect_prefix, &kids, msg, sizeof(msg));
	if (r < 0) {
		if (r == -E2BIG)
			log_error("%s: more than %d prefixes under %s", s->c.name, S3SOURCE_MAX_LEAVES, prefix);
		else if (r != -ENOMEM && r != -ECANCELED)
			log_error("%s: discovery: %s", s->c.name, msg);
		goto out;
	}
	for (size_t i = 0; i < kids.n && r == 0; i++) {
		const char *kid = kids.v[i];
		size_t len = strlen(kid), plen = strlen(prefix);
		const char *seg = kid + plen;
		size_t sl = len > plen ? len - plen - 1 : 0;

		if (len <= plen || kid[len - 1] != '/')
			continue;
		if (lvl == LVL_REGIONS) {
			if (is_region(seg, sl) && listed(s->c.regions, s->c.nregions, seg, sl))
				r = add_leaf(s, kid);
		} else if ((sl == 7 && memcmp(seg, "AWSLogs", 7) == 0) || is_org(seg, sl)) {
			r = discover(s, kid, LVL_ROOT, depth + 1);
		} else if (is_account(seg, sl)) {
			if (listed(s->c.accounts, s->c.naccounts, seg, sl) &&
			    (size_t)snprintf(next, sizeof(next), "%sCloudTrail/", kid) < sizeof(next))
				r = discover(s, next, LVL_REGIONS, depth + 1);
		} else if (sl == 10 && memcmp(seg, "CloudTrail", 10) == 0) {
			r = discover(s, kid, LVL_REGIONS, depth + 1);
		}
		/* CloudTrail-Digest/, CloudTrail-Insight/ and the rest: not logs */
	}
out:
	keyset_clear(&kids);
	return r;
}

static int cmp_leaf(const void *a, const void *b)
{
	return strcmp((*(struct leaf *const *)a)->prefix, (*(struct leaf *const *)b)->prefix);
}

static int run_discovery(struct s3source *s)
{
	const char *p = s->c.prefix;
	size_t len = strlen(p), before = s->nleaves;
	enum depth_kind lvl = LVL_ROOT;
	int r;

	s->stats.discoveries++;
	if (len >= 11 && strcmp(p + len - 11, "CloudTrail/") == 0)
		lvl = LVL_REGIONS;
	r = discover(s, p, lvl, 0);
	if (r == 0 && s->nleaves == 0 && strstr(p, "/CloudTrail/") && p[len - 1] == '/')
		r = add_leaf(s, p);	/* the prefix is one account/region already */
	if (s->nleaves != before)
		qsort(s->leaves, s->nleaves, sizeof(*s->leaves), cmp_leaf);
	if (r == 0 && s->nleaves == 0)
		log_warning("%s: no CloudTrail account/region prefixes found yet", s->c.name);
	return r == -E2BIG ? 0 : r;
}

/* ---- polling ------------------------------------------------------------ */

struct listing {
	struct keyset pending;
	struct s3source *s;
	struct leaf *leaf;
	const struct keyset *done;
	char first_after[2048];
	int64_t horizon;		/* keys of later times wait for a later round */
	int64_t next_seen;		/* time of the first key past the horizon */
	bool full;
	bool keep_ahead;		/* keys past the horizon go to leaf->ahead */
	bool cut;			/* the listing stopped before the end of the prefix */
	bool listed;			/* by a request (else from leaf->ahead) */
};

static int collect_object(const struct s3xml_object *obj, void *ctx)
{
	struct listing *ls = ctx;
	int64_t t;

	if (input_classify(obj->key) != INPUT_LOG)
		return 0;
	if (keyset_has(&ls->leaf->warmed, obj->key))
		return 0;	/* read again already */
	if (keyset_has(ls->done, obj->key) && !is_warm(ls->leaf, obj->key))
		return 0;
	t = key_time(obj->key);
	if (t > ls->horizon) {
		/* keys are in time order: the rest is later too */
		if (ls->next_seen == INT64_MAX)
			ls->next_seen = t;
		if (ls->keep_ahead && ls->leaf->ahead.n < S3SOURCE_MAX_PENDING && ls->s->ahead_total < AHEAD_MAX) {
			int r = keyset_add(&ls->leaf->ahead, obj->key);
			if (r < 0)
				return -ENOMEM;
			ls->s->ahead_total += (size_t)r;
			return 0;	/* kept for the next rounds */
		}
		ls->cut = true;
		return -ENOBUFS;
	}
	if (ls->pending.n >= S3SOURCE_MAX_PENDING) {
		ls->full = true;
		ls->cut = true;
		ls->next_seen = t;
		return -ENOBUFS;	/* enough for this round */
	}
	return keyset_add(&ls->pending, obj->key) < 0 ? -ENOMEM : 0;
}

/* What happened to each object of a batch. */
enum outcome { OUT_NONE, OUT_DONE, OUT_FAILED, OUT_RETRY };

struct batch {
	struct s3source *s;
	const struct source_sink *sink;
	enum outcome *out;
	bool *warm;			/* read again for the warm-up only */
	int sink_error;
};

static int fetched(void *ctx, size_t index, const char *key, int err, const char *data, size_t len,
		   const char *msg)
{
	struct batch *b = ctx;
	struct log_about about = { .source = b->s->c.name, .error = -err };
	char name[2048];
	int r;

	if (err == 0) {
		s3_object_name(b->s->s3, key, name, sizeof(name));
		r = b->sink->object(b->sink->ctx, name, data, len);
		if (r < 0) {
			b->sink_error = r;
			return r;
		}
		b->out[index] = OUT_DONE;
		if (b->warm[index])
			b->s->stats.warmup_objects++;
		else
			b->s->stats.objects++;
		return 0;
	}
	if (err == -ENOMEM || err == -ECANCELED)
		return err;
	s3_object_name(b->s->s3, key, name, sizeof(name));
	about.object = name;
	if (err == -EAGAIN || err == -ETIMEDOUT || err == -EACCES) {
		/* throttling, network, a deadline, credentials, a denied read:
		 * the next polls try again, up to MAX_RETRIES, before it is
		 * given up */
		log_about(LOG_LEVEL_WARNING, &about, "%s (will retry at the next poll)", msg);
		b->out[index] = OUT_RETRY;
	} else {
		log_about(LOG_LEVEL_ERROR, &about, "%s", msg);
		b->out[index] = OUT_FAILED;
		b->s->stats.failed_objects++;
	}
	return 0;
}

/* Records what happened to keys[i] after the commit: done (processed, or
 * unreadable for good), to retry (its retries ran out, or the batch
 * stopped before it), or read again for the warm-up. */
static int record_outcome(struct s3source *s, struct leaf *l, const char *key, enum outcome out, bool warm,
			  int64_t now)
{
	int64_t t = key_time(key);
	int tries = 0, r;
	unsigned long cycle = 0;

	if (warm)
		return out == OUT_NONE ? 0 : keyset_add(&l->warmed, key) < 0 ? -ENOMEM : 0;
	if (out == OUT_DONE || out == OUT_FAILED) {
		if (keyset_add(&l->done, key) < 0)
			return -ENOMEM;
		remove_retry(l, key);
		if (t > now + MAX_FUTURE)
			log_warning("%s: s3://%s/%s: named %lld s in the future; it does not move the window",
				    s->c.name, s->c.bucket, key, (long long)(t - now));
		else if (t > l->newest)
			l->newest = t;
		return 0;
	}
	for (size_t k = 0; k < l->nretry; k++) {
		if (strcmp(l->retry[k].key, key) == 0) {
			tries = l->retry[k].tries;
			cycle = l->retry[k].cycle;
		}
	}
	/* one try per poll cycle, however many rounds fetched it; a key the
	 * batch did not reach (a stop, an error) costs no try */
	if (out == OUT_RETRY && (tries == 0 || cycle != s->stats.cycles))
		tries++;
	if (tries > MAX_RETRIES) {
		log_error("%s: s3://%s/%s: giving up after %d polls", s->c.name, s->c.bucket, key, MAX_RETRIES);
		remove_retry(l, key);
		s->stats.failed_objects++;
		return keyset_add(&l->done, key) < 0 ? -ENOMEM : 0;
	}
	r = add_retry(l, key, tries, s->stats.cycles);
	if (r == -E2BIG) {
		log_error("%s: s3://%s/%s: more than %d objects of %s wait for a retry: giving up on this one",
			  s->c.name, s->c.bucket, key, S3SOURCE_MAX_RETRY, l->prefix);
		s->stats.failed_objects++;
		return keyset_add(&l->done, key) < 0 ? -ENOMEM : 0;
	}
	return r;
}

/* Fetches and processes keys[0..n) (key i of leaf owner[i]; the keys of
 * one leaf together, in key order), commits their alerts, then moves the
 * checkpoint of each leaf. */
static int run_batch(struct s3source *s, struct leaf **owner, const struct source_sink *sink, char **keys,
		     size_t n, int64_t now)
{
	struct batch b = { s, sink, calloc(n + 1, sizeof(enum outcome)), calloc(n + 1, sizeof(bool)), 0 };
	int r, c;

	if (!b.out || !b.warm) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		b.warm[i] = is_warm(owner[i], keys[i]);
	r = s3_get_many(s->s3, (const char *const *)keys, n, fetched, &b);
	if (r < 0 && b.sink_error == 0 && r != -ECANCELED && r != -ENOMEM)
		log_error("%s: fetching objects of %s: %s", s->c.name, owner[0]->prefix, strerror(-r));
	/* What was processed is committed even when the batch stopped early. */
	c = sink->commit(sink->ctx);
	if (c < 0) {
		r = c;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		c = record_outcome(s, owner[i], keys[i], b.out[i], b.warm[i], now);
		if (c < 0) {
			r = c;
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct leaf *l = owner[i];
		int64_t floor;
		if (i > 0 && owner[i - 1] == l)
			continue;
		/* forget what the next listings cannot return any more */
		floor = leaf_floor(s, l, now);
		for (size_t k = 0; k < l->done.n;) {
			int64_t t = key_time(l->done.v[k]);
			if ((t && t < floor) || l->done.n > S3SOURCE_MAX_DONE)
				keyset_remove_at(&l->done, k);
			else
				k++;
		}
		if (checkpoint_write(s, l) == -ENOMEM) {
			r = -ENOMEM;
			goto out;
		}
	}
	/* a failed transfer machinery (-EIO) is logged above; its keys wait to be retried */
	r = r == -ECANCELED || r == -ENOMEM ? r : b.sink_error;
out:
	free(b.out);
	free(b.warm);
	return r;
}

/* Takes the keys of leaf l's ahead set up to ls->horizon into the
 * listing's pending ones.  *enough: that is all this round needs (keys are
 * left in the set, the rest being later, or its listing got to the end of
 * the prefix); else the set ran out before the horizon and the prefix must
 * be listed on after its last key (ls->first_after).  0 or -ENOMEM. */
static int take_ahead(struct leaf *l, struct listing *ls, bool *enough)
{
	*enough = false;
	for (; l->ahead_next < l->ahead.n; l->ahead_next++) {
		const char *key = l->ahead.v[l->ahead_next];
		int64_t t = key_time(key);
		if (t > ls->horizon || ls->pending.n >= S3SOURCE_MAX_PENDING) {
			ls->full = t <= ls->horizon;
			ls->next_seen = t;
			*enough = true;
			return 0;
		}
		if (keyset_add(&ls->pending, key) < 0)
			return -ENOMEM;
	}
	if (l->ahead_end) {
		*enough = true;
		return 0;
	}
	snprintf(ls->first_after, sizeof(ls->first_after), "%s", l->ahead.v[l->ahead.n - 1]);
	return 0;
}

/* Sets up the listing of leaf l up to horizon; *list says whether it needs
 * a request, as job j of s3_list_many, or was taken from the keys an
 * earlier round of this cycle listed past its horizon.  In backfill rounds
 * (horizon not INT64_MAX) keys past the horizon are kept for the next. */
static int listing_init(struct s3source *s, struct leaf *l, int64_t now, int64_t horizon, struct listing *ls,
			struct s3_list_job *j, bool *list)
{
	bool enough = false;
	int r = 0;

	memset(ls, 0, sizeof(*ls));
	ls->s = s;
	ls->leaf = l;
	ls->done = &l->done;
	ls->horizon = horizon;
	ls->next_seen = INT64_MAX;
	ls->keep_ahead = horizon != INT64_MAX;
	memset(j, 0, sizeof(*j));
	if (l->ahead_cycle == s->stats.cycles && (l->ahead_next < l->ahead.n || l->ahead_end)) {
		r = take_ahead(l, ls, &enough);
		if (r < 0 || enough) {
			*list = false;
			return r;
		}
	} else {
		start_after(l, leaf_floor(s, l, now), ls->first_after, sizeof(ls->first_after));
	}
	/* what the ahead set held is in pending; a new listing refills it */
	s->ahead_total -= l->ahead.n;
	keyset_clear(&l->ahead);
	l->ahead_next = 0;
	l->ahead_end = false;
	j->p.prefix = l->prefix;
	j->p.start_after = ls->first_after;
	j->on_object = collect_object;
	j->userdata = ls;
	ls->listed = *list = true;
	return 0;
}

/* Forgets every leaf's ahead set (at the end of a poll cycle). */
static void ahead_release(struct s3source *s)
{
	for (size_t i = 0; i < s->nleaves; i++) {
		keyset_clear(&s->leaves[i]->ahead);
		s->leaves[i]->ahead_next = 0;
		s->leaves[i]->ahead_end = false;
	}
	s->ahead_total = 0;
}

/* Logs a failed listing of leaf l (r, msg: why) and holds the leaf back.
 * A failure of S3 (retries ran out, a deadline) is listed again at the
 * next poll.  A listing that would not end (-EPROTO: a repeated or endless
 * continuation token) costs up to S3_LIST_MAX_PAGES requests and fails the
 * same way every time: the first in a row is listed again at the next poll,
 * the n-th after 2^(n-1) - 1 polls are skipped, at most LIST_BACKOFF_MAX. */
static void leaf_list_failed(struct s3source *s, struct leaf *l, int r, const char *msg)
{
	unsigned long skip = 0;

	l->failed_cycle = s->stats.cycles;
	if (r == -EPROTO) {
		if (l->list_failures < 32)
			l->list_failures++;
		skip = l->list_failures > 5 ? LIST_BACKOFF_MAX : (1ul << (l->list_failures - 1)) - 1;
		if (skip > LIST_BACKOFF_MAX)
			skip = LIST_BACKOFF_MAX;
	} else {
		l->list_failures = 0;
	}
	l->retry_cycle = s->stats.cycles + 1 + skip;
	if (skip == 0)
		log_error("%s: %s (listed again at the next poll)", s->c.name, msg);
	else
		log_error("%s: %s (%u times in a row: listed again after %lu skipped poll%s)", s->c.name, msg,
			  l->list_failures, skip, skip == 1 ? "" : "s");
}

/* Takes in what the listing ls of the leaf found (r, msg: the listing's
 * result) and adds the keys to retry to its pending ones; *next_seen gets
 * the time of the first key left for a later round (INT64_MAX: none).
 * -ENOMEM, -ECANCELED; a failed listing is logged and *failed set. */
static int leaf_listed(struct s3source *s, struct leaf *l, int64_t now, struct listing *ls, int r,
		       const char *msg, int64_t *next_seen, bool *failed)
{
	int64_t horizon = ls->horizon;

	*next_seen = INT64_MAX;
	if (r == -ENOBUFS)
		r = 0;
	if (r < 0) {
		/* S3 failed us (retries ran out, a listing going round in
		 * circles): this prefix waits for the next poll cycle, the
		 * others go on */
		if (r != -ENOMEM && r != -ECANCELED)
			leaf_list_failed(s, l, r, msg);
		s->ahead_total -= l->ahead.n;
		keyset_clear(&l->ahead);
		*failed = true;
		return r == -ENOMEM || r == -ECANCELED ? r : 0;
	}
	*failed = false;
	l->list_failures = 0;
	if (ls->keep_ahead && ls->listed) {
		/* listed (not taken from the ahead set): the next rounds of
		 * this cycle take what it kept */
		l->ahead_cycle = s->stats.cycles;
		l->ahead_end = !ls->cut;
	}
	*next_seen = ls->next_seen;
	/* keys to retry are asked for by name (the listing window may have
	 * moved past them) */
	for (size_t i = 0; i < l->nretry && r == 0; i++)
		if (!keyset_has(&l->done, l->retry[i].key) && key_time(l->retry[i].key) <= horizon)
			r = keyset_add(&ls->pending, l->retry[i].key) < 0 ? -ENOMEM : 0;
	l->next_key = ls->next_seen;
	l->next_cycle = s->stats.cycles;
	if (ls->pending.n || ls->next_seen != INT64_MAX) {
		l->quiet_since = 0;	/* busy, or more to come in a later round */
	} else {
		if (!l->quiet_since)
			l->quiet_since = now;
		if (!l->newest)
			l->listed_until = now;	/* nothing there yet: no need to list from start_time again */
	}
	return r;
}

/* After the objects of the listing ls of the leaf were processed. */
static void leaf_finished(struct leaf *l, const struct listing *ls, int64_t now)
{
	if (l->warm_until && ls->horizon >= l->warm_until && !ls->full) {
		l->warm_until = 0;	/* warmed up */
		keyset_clear(&l->warmed);
	}
	if (ls->next_seen == INT64_MAX && !ls->full)
		l->caught_up = now;
}

/* How far the leaf is in key time, for the backfill rounds: its listing
 * floor, or - once a listing got to its end - that moment minus the
 * lookback.  A prefix that has been quiet for hours has an old floor (its
 * newest object is old) but is not behind: it must not put the source
 * into backfill rounds, nor be listed in each of them. */
static int64_t leaf_position(const struct s3source *s, const struct leaf *l, int64_t now)
{
	int64_t pos = leaf_floor(s, l, now);

	if (l->caught_up && !l->warm_until && l->caught_up - s->c.lookback > pos)
		pos = l->caught_up - s->c.lookback;
	return pos;
}

/* Lists the n leaves at once up to horizon, then processes what each
 * found, in order; *next gets the earliest key left for a later round. */
static int poll_group(struct s3source *s, struct leaf **group, size_t n, const struct source_sink *sink,
		      int64_t now, int64_t horizon, int64_t *next)
{
	struct listing *ls = calloc(n + 1, sizeof(*ls));
	struct s3_list_job *jobs = calloc(n + 1, sizeof(*jobs));
	size_t *job_of = calloc(n + 1, sizeof(*job_of));
	size_t batch = s->c.parallel * 4, nj = 0;
	bool *failed = calloc(n + 1, sizeof(*failed));
	char **keys = calloc(batch, sizeof(*keys));
	struct leaf **owner = calloc(batch, sizeof(*owner));
	int r = 0;

	if (!ls || !jobs || !job_of || !failed || !keys || !owner) {
		r = -ENOMEM;
		goto out;
	}
	if (s->stop && *s->stop) {
		r = -ECANCELED;
		goto out;
	}
	/* the leaves that need a request are jobs[0..nj), in order */
	for (size_t i = 0; i < n && r == 0; i++) {
		bool list;
		group[i]->last_poll = now;
		r = listing_init(s, group[i], now, horizon, &ls[i], &jobs[nj], &list);
		if (list)
			job_of[i] = nj++;
	}
	if (r == 0 && nj)
		r = s3_list_many(s->s3, jobs, nj);
	if (r < 0) {
		if (r != -ENOMEM && r != -ECANCELED)
			log_error("%s: listing %zu prefixes: %s", s->c.name, nj, strerror(-r));
		r = r == -ENOMEM || r == -ECANCELED ? r : 0;
		goto out;
	}
	for (size_t i = 0; i < n && r == 0; i++) {
		const struct s3_list_job *j = ls[i].listed ? &jobs[job_of[i]] : NULL;
		int64_t seen;
		r = leaf_listed(s, group[i], now, &ls[i], j ? j->result : 0, j ? j->msg : "", &seen, &failed[i]);
		if (seen < *next)
			*next = seen;
	}
	/* the new objects of the whole group, in batches that may span
	 * leaves: a leaf with one new object does not wait for the GETs of
	 * the one before */
	for (size_t i = 0, k = 0; r == 0;) {
		size_t nb = 0;
		for (; i < n && nb < batch; i++, k = 0) {
			if (failed[i])
				continue;
			for (; k < ls[i].pending.n && nb < batch; k++) {
				keys[nb] = ls[i].pending.v[k];
				owner[nb++] = group[i];
			}
			if (k < ls[i].pending.n)
				break;	/* the rest of this leaf goes in the next batch */
		}
		if (nb == 0)
			break;
		if (s->stop && *s->stop) {
			r = -ECANCELED;
			break;
		}
		r = run_batch(s, owner, sink, keys, nb, now);
	}
	for (size_t i = 0; i < n && r == 0; i++)
		if (!failed[i])
			leaf_finished(group[i], &ls[i], now);
out:
	for (size_t i = 0; ls && i < n; i++)
		keyset_clear(&ls[i].pending);
	free(ls);
	free(jobs);
	free(job_of);
	free(failed);
	free(keys);
	free(owner);
	return r;
}

/* Due at this cycle: leaves quiet for three poll intervals are polled every
 * quiet_poll_interval instead, whatever the other leaves do; a leaf whose
 * listings failed waits for its retry cycle. */
static bool leaf_due(const struct s3source *s, const struct leaf *l, int64_t now)
{
	if (l->list_failures && s->stats.cycles < l->retry_cycle)
		return false;	/* its listings fail: waits (leaf_list_failed) */
	if (!l->quiet_since || now - l->quiet_since < 3 * s->c.poll_interval)
		return true;
	return now >= l->last_poll + s->c.quiet_poll_interval;
}

int s3source_poll(struct s3source *s, int64_t now, const struct source_sink *sink)
{
	int64_t low = INT64_MAX, horizon;
	int r = 0;

	s->stats.cycles++;
	if (now >= s->next_discovery) {
		r = run_discovery(s);
		if (r == -ENOMEM || r == -ECANCELED)
			return r;
		/* a failed discovery (logged) is tried again at the next poll */
		s->next_discovery = r < 0 ? now : now + s->c.discovery_interval;
		r = 0;
	}
	/* Far behind (a backfill, or after an outage): every leaf moves forward
	 * one step of key time per round, so that events of different accounts
	 * and regions reach the correlations in about the order they happened.
	 * Caught up: one round.  Only the leaves due in this cycle count, and
	 * each by its own position (leaf_position). */
	for (size_t i = 0; i < s->nleaves; i++) {
		struct leaf *l = s->leaves[i];
		int64_t f;
		l->due = leaf_due(s, l, now);
		if (!l->due)
			continue;
		f = leaf_position(s, l, now);
		if (f < low)
			low = f;
	}
	horizon = low < now - s->c.lookback - 2 * s->step ? low + s->step : INT64_MAX;
	for (;;) {
		int64_t next = INT64_MAX;

		for (size_t i = 0; i < s->nleaves && r == 0;) {
			struct leaf *group[LIST_GROUP];
			size_t n = 0;
			/* the next LIST_GROUP leaves to list in this round, listed
			 * at once, then processed one after the other in order */
			for (; i < s->nleaves && n < LIST_GROUP; i++) {
				struct leaf *l = s->leaves[i];
				int64_t seen;
				if (!l->due || l->failed_cycle == s->stats.cycles)
					continue;	/* quiet; or failed: not again in the next rounds of this cycle */
				if (horizon != INT64_MAX) {
					/* nothing for this round: not listed again until the rounds reach it */
					seen = l->next_cycle == s->stats.cycles ? l->next_key : leaf_position(s, l, now);
					if (seen > horizon) {
						if (seen < next)
							next = seen;
						continue;
					}
				}
				group[n++] = l;
			}
			r = poll_group(s, group, n, sink, now, horizon, &next);
		}
		if (r < 0 || horizon == INT64_MAX || next == INT64_MAX)
			break;
		s->stats.rounds++;
		/* the next round ends a step past the earliest key still waiting */
		horizon = next > horizon ? next + s->step : horizon + s->step;
		if (horizon >= now - s->c.lookback - 2 * s->step)
			horizon = INT64_MAX;
	}
	ahead_release(s);
	return r;
}

int s3source_new(const struct source_config *sc, const struct s3source_options *o, struct s3source **ret,
		 char *msg, size_t msglen)
{
	struct s3_config c3 = { 0 };
	struct s3source *s = calloc(1, sizeof(*s));
	char *name = NULL;
	int r;

	if (!s)
		return -ENOMEM;
	s->c = *sc;
	s->stop = o->stop;
	s->step = o->step > 60 ? o->step : 60;
	s->warmup = o->warmup;
	name = statefile_name(sc->name + 5, "");	/* without "s3://" */
	if (!name) {
		r = -ENOMEM;
		goto fail;
	}
	if (asprintf(&s->dir, "%s/checkpoints/%s", o->state_dir, name) < 0) {
		s->dir = NULL;
		r = -ENOMEM;
		goto fail;
	}
	r = statefile_mkdirs(s->dir, msg, msglen);
	if (r < 0)
		goto fail;
	c3.bucket = sc->bucket;
	c3.region = sc->region;
	c3.endpoint = sc->endpoint;
	c3.path_style = sc->path_style;
	c3.parallel = sc->parallel;
	c3.list_parallel = S3SOURCE_LIST_PARALLEL;
	c3.request_timeout_ms = (long)sc->request_timeout * 1000;
	c3.max_object = o->max_object;
	c3.stop = o->stop;
	c3.on_wait = o->on_wait;
	c3.wait_ctx = o->wait_ctx;
	r = s3_client_new(&c3, o->creds, o->creds_ctx, &s->s3, msg, msglen);
	if (r < 0)
		goto fail;
	free(name);
	*ret = s;
	return 0;
fail:
	free(name);
	s3source_free(s);
	return r;
}

void s3source_free(struct s3source *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nleaves; i++)
		leaf_free(s->leaves[i]);
	free(s->leaves);
	s3_client_free(s->s3);
	free(s->dir);
	free(s);
}

void s3source_stats(const struct s3source *s, struct s3source_stats *ret)
{
	*ret = s->stats;
	ret->leaves = s->nleaves;
	ret->pending_retry = 0;
	ret->newest = 0;
	for (size_t i = 0; i < s->nleaves; i++) {
		ret->pending_retry += s->leaves[i]->nretry;
		if (s->leaves[i]->newest > ret->newest)
			ret->newest = s->leaves[i]->newest;
	}
	s3_stats(s->s3, &ret->s3);
}
