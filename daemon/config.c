/* config.c: the config file, as a table of keys (see config.h).
 *
 * Each entry of config_keys[] names a key by its dotted path, its type, the
 * field of struct config it sets and its default.  Sections (maps) are
 * entries of type KEY_SECTION; the walker descends into them.  Adding a key
 * is adding a line to the table and, if its type is new, a case to set_key().
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trailwatch/builtin.h"
#include "trailwatch/config.h"
#include "trailwatch/yamltree.h"

enum key_type {
	KEY_SECTION,
	KEY_SIZE,	/* size_t with K/M/G suffixes */
	KEY_UINT,	/* unsigned */
	KEY_COUNT,	/* size_t */
	KEY_DURATION,	/* int64_t seconds: 30s, 10m, 1h, 1d */
	KEY_LOG_LEVEL,
	KEY_RULES,	/* list of directories */
	KEY_LISTS,	/* map of name -> list of values */
	KEY_STRING,
	KEY_SOURCES,	/* list of sources: their keys are in source_keys[] */
};

struct config_key {
	const char *path;
	enum key_type type;
	size_t offset;
	const char *def;	/* default, as text (documentation) */
};

#define OFF(field) offsetof(struct config, field)

static const struct config_key config_keys[] = {
	{ "rules", KEY_RULES, OFF(rules), "[builtin, /etc/trailwatch/rules.d]" },
	{ "lists", KEY_LISTS, OFF(lists), "{}" },
	{ "log_level", KEY_LOG_LEVEL, OFF(log_level), "info" },
	{ "limits", KEY_SECTION, 0, NULL },
	{ "limits.max_object_size", KEY_SIZE, OFF(limits.input.max_object), "256MiB" },
	{ "limits.max_decompressed_size", KEY_SIZE, OFF(limits.input.max_decompressed), "1GiB" },
	{ "limits.max_record_size", KEY_SIZE, OFF(limits.json.max_record), "1MiB" },
	{ "limits.max_json_depth", KEY_UINT, OFF(limits.json.max_depth), "64" },
	{ "correlation", KEY_SECTION, 0, NULL },
	{ "correlation.max_groups", KEY_COUNT, OFF(corr.max_groups), "100000" },
	{ "correlation.max_entries_per_group", KEY_COUNT, OFF(corr.max_entries), "100000" },
	{ "correlation.lateness", KEY_DURATION, OFF(corr.lateness), "15m" },
	{ "state_dir", KEY_STRING, OFF(state_dir), CONFIG_DEFAULT_STATE_DIR },
	{ "sources", KEY_SOURCES, OFF(sources), "[]" },
};

#define NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))

int size_parse(const char *s, size_t *ret)
{
	unsigned long long v, mult = 1;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end == '\0' || strcmp(end, "B") == 0)
		mult = 1;
	else if (strcmp(end, "K") == 0 || strcmp(end, "KiB") == 0)
		mult = 1ull << 10;
	else if (strcmp(end, "M") == 0 || strcmp(end, "MiB") == 0)
		mult = 1ull << 20;
	else if (strcmp(end, "G") == 0 || strcmp(end, "GiB") == 0)
		mult = 1ull << 30;
	else
		return -EINVAL;
	if (v == 0 || v > (unsigned long long)SIZE_MAX / mult)
		return -EINVAL;
	*ret = (size_t)(v * mult);
	return 0;
}

static void cerr(struct diag *d, const char *file, const struct ynode *n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void cerr(struct diag *d, const char *file, const struct ynode *n, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	diag_add(d, file, n ? n->line : 0, n ? n->col : 0, "%s", msg);
}

static const struct config_key *find_key(const char *path)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(config_keys[i].path, path) == 0)
			return &config_keys[i];
	return NULL;
}

static int set_lists(struct config *c, const struct ynode *n, struct diag *d)
{
	struct rule_lists *l = &c->lists;
	int r = 0;

	if (n->type != YNODE_MAP) {
		cerr(d, c->path, n, "'lists' must be a map of names to lists of values");
		return -EINVAL;
	}
	l->n = n->n;
	l->names = arena_alloc(&c->arena, (n->n + 1) * sizeof(*l->names));
	l->values = arena_alloc(&c->arena, (n->n + 1) * sizeof(*l->values));
	l->nvalues = arena_alloc(&c->arena, (n->n + 1) * sizeof(*l->nvalues));
	if (!l->names || !l->values || !l->nvalues)
		return -ENOMEM;
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *v = n->items[i];

		l->names[i] = n->keys[i]->value;
		if (v->type == YNODE_SCALAR && ynode_is_null(v)) {
			l->nvalues[i] = 0;	/* an empty list */
			continue;
		}
		if (v->type != YNODE_SEQ) {
			cerr(d, c->path, v, "list '%s' must be a list of values", l->names[i]);
			r = -EINVAL;
			continue;
		}
		l->values[i] = arena_alloc(&c->arena, (v->n + 1) * sizeof(*l->values[i]));
		if (!l->values[i])
			return -ENOMEM;
		for (size_t k = 0; k < v->n; k++) {
			if (v->items[k]->type != YNODE_SCALAR || ynode_is_null(v->items[k])) {
				cerr(d, c->path, v->items[k], "each item of list '%s' must be a single value",
				     l->names[i]);
				r = -EINVAL;
				continue;
			}
			l->values[i][l->nvalues[i]++] = v->items[k]->value;
		}
	}
	return r;
}

/* ---- sources ------------------------------------------------------------ */

enum skey_type { SK_STRING, SK_BOOL, SK_DURATION, SK_TIME, SK_LIST, SK_COUNT };

/* The keys of one source: which types they apply to (bit 1 << SOURCE_*). */
struct source_key {
	const char *name;
	enum skey_type type;
	size_t offset;
	unsigned types;
};

#define SOFF(field) offsetof(struct source_config, field)
#define SRC_S3 (1u << SOURCE_S3)
#define SRC_DIR (1u << SOURCE_DIR)

static const struct source_key source_keys[] = {
	{ "bucket", SK_STRING, SOFF(bucket), SRC_S3 },
	{ "prefix", SK_STRING, SOFF(prefix), SRC_S3 },
	{ "region", SK_STRING, SOFF(region), SRC_S3 },
	{ "endpoint", SK_STRING, SOFF(endpoint), SRC_S3 },
	{ "path_style", SK_BOOL, SOFF(path_style), SRC_S3 },
	{ "poll_interval", SK_DURATION, SOFF(poll_interval), SRC_S3 | SRC_DIR },
	{ "quiet_poll_interval", SK_DURATION, SOFF(quiet_poll_interval), SRC_S3 },
	{ "start_time", SK_TIME, SOFF(start_time), SRC_S3 },
	{ "lookback", SK_DURATION, SOFF(lookback), SRC_S3 },
	{ "discovery_interval", SK_DURATION, SOFF(discovery_interval), SRC_S3 },
	{ "accounts", SK_LIST, SOFF(accounts), SRC_S3 },
	{ "regions", SK_LIST, SOFF(regions), SRC_S3 },
	{ "role_arn", SK_STRING, SOFF(role_arn), SRC_S3 },
	{ "external_id", SK_STRING, SOFF(external_id), SRC_S3 },
	{ "parallel", SK_COUNT, SOFF(parallel), SRC_S3 },
	{ "path", SK_STRING, SOFF(path), SRC_DIR },
};

static bool all_digits(const char *s, size_t n)
{
	if (strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int set_source_key(struct config *c, struct source_config *src, const struct source_key *k,
			  const struct ynode *n, struct diag *d)
{
	void *field = (char *)src + k->offset;

	if (k->type == SK_LIST) {
		const char ***list = field;
		size_t *count = k->offset == SOFF(accounts) ? &src->naccounts : &src->nregions;
		if (n->type != YNODE_SEQ || n->n == 0) {
			cerr(d, c->path, n, "'%s' must be a list of values", k->name);
			return -EINVAL;
		}
		*list = arena_alloc(&c->arena, n->n * sizeof(**list));
		if (!*list)
			return -ENOMEM;
		for (size_t i = 0; i < n->n; i++) {
			const struct ynode *v = n->items[i];
			if (v->type != YNODE_SCALAR || ynode_is_null(v) || !v->value[0]) {
				cerr(d, c->path, v, "each item of '%s' must be a single value", k->name);
				return -EINVAL;
			}
			if (k->offset == SOFF(accounts) && !all_digits(v->value, 12)) {
				cerr(d, c->path, v, "'%s' is not an AWS account id (12 digits)", v->value);
				return -EINVAL;
			}
			(*list)[i] = v->value;
		}
		*count = n->n;
		return 0;
	}
	if (n->type != YNODE_SCALAR || ynode_is_null(n) || !n->value[0]) {
		cerr(d, c->path, n, "'%s' must be a single value", k->name);
		return -EINVAL;
	}
	switch (k->type) {
	case SK_STRING:
		*(const char **)field = n->value;
		return 0;
	case SK_BOOL:
		if (ynode_bool(n, (bool *)field) < 0) {
			cerr(d, c->path, n, "'%s' must be true or false", k->name);
			return -EINVAL;
		}
		return 0;
	case SK_DURATION:
		if (timespan_parse(n->value, (int64_t *)field) < 0 || *(int64_t *)field <= 0) {
			cerr(d, c->path, n, "'%s' must be a duration such as 30s, 10m, 1h or 1d", k->name);
			return -EINVAL;
		}
		return 0;
	case SK_TIME:
		if (ctlog_parse_time(n->value, strlen(n->value), (int64_t *)field) < 0) {
			cerr(d, c->path, n, "'%s' must be a time such as 2026-11-20T00:00:00Z", k->name);
			return -EINVAL;
		}
		return 0;
	case SK_COUNT: {
		char *end;
		unsigned long v = strtoul(n->value, &end, 10);
		if (*end || v == 0 || v > 64 || n->value[0] == '-') {
			cerr(d, c->path, n, "'%s' must be a whole number from 1 to 64", k->name);
			return -EINVAL;
		}
		*(size_t *)field = v;
		return 0;
	}
	default:
		return -EINVAL;
	}
}

/* One source: its type first, then its keys, then what it requires. */
static int parse_source(struct config *c, const struct ynode *n, struct source_config *src, struct diag *d)
{
	const struct ynode *type = ynode_get(n, "type");
	int r = 0;

	memset(src, 0, sizeof(*src));
	src->line = n->line;
	src->col = n->col;
	if (n->type != YNODE_MAP) {
		cerr(d, c->path, n, "each source must be a map with a 'type'");
		return -EINVAL;
	}
	if (!type || type->type != YNODE_SCALAR ||
	    (strcmp(type->value, "s3") != 0 && strcmp(type->value, "dir") != 0)) {
		cerr(d, c->path, type ? type : n, "a source needs 'type: s3' or 'type: dir'");
		return -EINVAL;
	}
	src->type = strcmp(type->value, "s3") == 0 ? SOURCE_S3 : SOURCE_DIR;
	src->prefix = "AWSLogs/";
	src->poll_interval = 60;
	src->lookback = 900;
	src->discovery_interval = 600;
	src->parallel = 4;
	for (size_t i = 0; i < n->n; i++) {
		const char *key = n->keys[i]->value;
		const struct source_key *k = NULL;
		int e;

		if (strcmp(key, "type") == 0)
			continue;
		for (size_t j = 0; j < sizeof(source_keys) / sizeof(source_keys[0]) && !k; j++)
			if (strcmp(source_keys[j].name, key) == 0)
				k = &source_keys[j];
		if (!k) {
			cerr(d, c->path, n->keys[i], "unknown key '%s' in a source", key);
			r = -EINVAL;
			continue;
		}
		if (!(k->types & (1u << src->type))) {
			cerr(d, c->path, n->keys[i], "'%s' does not apply to a source of type %s", key, type->value);
			r = -EINVAL;
			continue;
		}
		e = set_source_key(c, src, k, n->items[i], d);
		if (e == -ENOMEM)
			return e;
		if (e < 0)
			r = e;
	}
	if (r < 0)
		return r;
	if (!src->quiet_poll_interval || src->quiet_poll_interval < src->poll_interval)
		src->quiet_poll_interval = src->poll_interval;
	if (src->type == SOURCE_S3) {
		if (!src->bucket || !src->region) {
			cerr(d, c->path, n, "an s3 source needs 'bucket' and 'region'");
			return -EINVAL;
		}
		if (src->external_id && !src->role_arn) {
			cerr(d, c->path, n, "'external_id' needs 'role_arn'");
			return -EINVAL;
		}
		src->name = arena_printf(&c->arena, "s3://%s/%s", src->bucket, src->prefix);
	} else {
		if (!src->path) {
			cerr(d, c->path, n, "a dir source needs 'path'");
			return -EINVAL;
		}
		src->name = src->path;
	}
	return src->name ? 0 : -ENOMEM;
}

static int set_sources(struct config *c, const struct ynode *n, struct diag *d)
{
	int r = 0;

	if (n->type != YNODE_SEQ) {
		cerr(d, c->path, n, "'sources' must be a list of sources");
		return -EINVAL;
	}
	c->sources = arena_alloc(&c->arena, (n->n + 1) * sizeof(*c->sources));
	if (!c->sources)
		return -ENOMEM;
	for (size_t i = 0; i < n->n; i++) {
		int e = parse_source(c, n->items[i], &c->sources[i], d);
		if (e == -ENOMEM)
			return e;
		if (e < 0)
			r = e;
		for (size_t k = 0; e == 0 && k < i; k++) {
			if (strcmp(c->sources[k].name, c->sources[i].name) == 0) {
				cerr(d, c->path, n->items[i], "source %s is configured twice", c->sources[i].name);
				r = -EINVAL;
			}
		}
	}
	c->nsources = n->n;
	return r;
}

static int set_key(struct config *c, const struct config_key *k, const struct ynode *n, struct diag *d)
{
	void *field = (char *)c + k->offset;

	if (k->type == KEY_LISTS)
		return set_lists(c, n, d);
	if (k->type == KEY_SOURCES)
		return set_sources(c, n, d);
	if (k->type == KEY_RULES) {
		size_t count = n->type == YNODE_SEQ ? n->n : 1;
		const char **dirs = arena_alloc(&c->arena, (count + 1) * sizeof(*dirs));

		if (!dirs)
			return -ENOMEM;
		if (n->type == YNODE_MAP) {
			cerr(d, c->path, n, "'rules' must be a list of directories");
			return -EINVAL;
		}
		for (size_t i = 0; i < count; i++) {
			const struct ynode *item = n->type == YNODE_SEQ ? n->items[i] : n;
			if (item->type != YNODE_SCALAR || ynode_is_null(item) || !item->value[0]) {
				cerr(d, c->path, item, "each item of 'rules' must be a directory or 'builtin'");
				return -EINVAL;
			}
			dirs[i] = item->value;
		}
		c->rules = dirs;
		c->nrules = count;
		c->rules_default = false;
		return 0;
	}
	if (n->type != YNODE_SCALAR || ynode_is_null(n)) {
		cerr(d, c->path, n, "'%s' must be a single value", k->path);
		return -EINVAL;
	}
	switch (k->type) {
	case KEY_SIZE:
		if (size_parse(n->value, (size_t *)field) < 0) {
			cerr(d, c->path, n, "'%s' must be a size such as 512KiB, 1MiB or 1GiB", k->path);
			return -EINVAL;
		}
		return 0;
	case KEY_UINT:
	case KEY_COUNT: {
		char *end;
		unsigned long long v;
		errno = 0;
		v = strtoull(n->value, &end, 10);
		if (errno || *end || v == 0 || n->value[0] == '-' ||
		    (k->type == KEY_UINT && v > UINT_MAX)) {
			cerr(d, c->path, n, "'%s' must be a positive whole number", k->path);
			return -EINVAL;
		}
		if (k->type == KEY_UINT)
			*(unsigned *)field = (unsigned)v;
		else
			*(size_t *)field = (size_t)v;
		return 0;
	}
	case KEY_DURATION:
		if (timespan_parse(n->value, (int64_t *)field) < 0) {
			cerr(d, c->path, n, "'%s' must be a duration such as 30s, 10m, 1h or 1d", k->path);
			return -EINVAL;
		}
		return 0;
	case KEY_STRING:
		if (!n->value[0]) {
			cerr(d, c->path, n, "'%s' must not be empty", k->path);
			return -EINVAL;
		}
		*(const char **)field = n->value;
		return 0;
	case KEY_LOG_LEVEL:
		if (log_level_from_string(n->value, (enum log_level *)field) < 0) {
			cerr(d, c->path, n, "'%s' must be error, warning, info or debug", k->path);
			return -EINVAL;
		}
		return 0;
	default:
		return -EINVAL;
	}
}

static int walk_map(struct config *c, const struct ynode *map, const char *prefix, struct diag *d)
{
	int r = 0;

	if (map->type != YNODE_MAP) {
		cerr(d, c->path, map, "'%s' must be a map", prefix[0] ? prefix : "the configuration");
		return -EINVAL;
	}
	for (size_t i = 0; i < map->n; i++) {
		char path[256];
		const struct config_key *k;
		int e;

		snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "." : "", map->keys[i]->value);
		k = find_key(path);
		if (!k) {
			cerr(d, c->path, map->keys[i], "unknown key '%s'", path);
			r = -EINVAL;
			continue;
		}
		e = k->type == KEY_SECTION ? walk_map(c, map->items[i], path, d) : set_key(c, k, map->items[i], d);
		if (e == -ENOMEM)
			return e;
		if (e < 0)
			r = e;
	}
	return r;
}

static void set_defaults(struct config *c)
{
	static const char *const default_rules[] = { CONFIG_BUILTIN_RULES, CONFIG_DEFAULT_RULES_DIR };

	c->rules = (const char **)default_rules;
	c->nrules = 2;
	c->rules_default = true;
	c->log_level = LOG_LEVEL_INFO;
	c->limits.input.max_object = INPUT_DEFAULT_MAX_OBJECT;
	c->limits.input.max_decompressed = INPUT_DEFAULT_MAX_DECOMPRESSED;
	c->limits.json.max_record = CTLOG_DEFAULT_MAX_RECORD;
	c->limits.json.max_depth = CTLOG_DEFAULT_MAX_DEPTH;
	c->corr.max_groups = 100000;
	c->corr.max_entries = 100000;
	c->corr.lateness = 900;
	c->state_dir = CONFIG_DEFAULT_STATE_DIR;
}

/* Lists that the shipped rules use.  They exist even when the config does not
 * name them, empty, so that the pack loads with any config; an empty list
 * turns its refinement off (docs/config.md says what each one does). */
static const char *const pack_lists[] = {
	"corporate_cidrs", "org_accounts", "iac_principals", "scanner_principals",
};

static int add_pack_lists(struct config *c)
{
	struct rule_lists *l = &c->lists;
	size_t n = l->n, max = l->n + sizeof(pack_lists) / sizeof(pack_lists[0]);
	const char **names = arena_alloc(&c->arena, max * sizeof(*names));
	const char ***values = arena_alloc(&c->arena, max * sizeof(*values));
	size_t *nvalues = arena_alloc(&c->arena, max * sizeof(*nvalues));

	if (!names || !values || !nvalues)
		return -ENOMEM;
	if (n) {
		memcpy(names, l->names, n * sizeof(*names));
		memcpy(values, l->values, n * sizeof(*values));
		memcpy(nvalues, l->nvalues, n * sizeof(*nvalues));
	}
	for (size_t i = 0; i < sizeof(pack_lists) / sizeof(pack_lists[0]); i++) {
		bool defined = false;
		for (size_t k = 0; k < l->n; k++)
			defined |= strcmp(l->names[k], pack_lists[i]) == 0;
		if (defined)
			continue;
		names[n] = pack_lists[i];
		values[n] = NULL;
		nvalues[n] = 0;
		n++;
	}
	l->names = names;
	l->values = values;
	l->nvalues = nvalues;
	l->n = n;
	return 0;
}

/* Reads the file (path) or the text (data) into a new config. */
static int load(const char *path, const char *data, size_t len, struct config **ret, struct diag *d)
{
	struct config *c = calloc(1, sizeof(*c));
	int r = 0;

	if (!c)
		return -ENOMEM;
	arena_init(&c->arena);
	set_defaults(c);
	if (path) {
		c->path = arena_strdup(&c->arena, path);
		if (!c->path) {
			r = -ENOMEM;
			goto fail;
		}
		r = data ? yfile_load_buffer(path, data, len, &c->yf, d) : yfile_load(path, &c->yf, d);
		if (r < 0) {
			if (r != -EINVAL)
				diag_add(d, path, 0, 0, "cannot read the configuration: %s", strerror(-r));
			goto fail;
		}
		if (c->yf->ndocs > 1) {
			diag_add(d, path, c->yf->docs[1].line, 1, "the configuration is one YAML document");
			r = -EINVAL;
			goto fail;
		}
		if (c->yf->ndocs == 1 && c->yf->docs[0].root) {
			r = walk_map(c, c->yf->docs[0].root, "", d);
			if (r < 0)
				goto fail;
		}
	}
	r = add_pack_lists(c);
	if (r < 0)
		goto fail;
	*ret = c;
	return 0;
fail:
	config_free(c);
	return r;
}

int config_load(const char *path, struct config **ret, struct diag *d)
{
	return load(path, NULL, 0, ret, d);
}

int config_load_buffer(const char *name, const char *data, size_t len, struct config **ret, struct diag *d)
{
	return load(name, data, len, ret, d);
}

void config_free(struct config *c)
{
	if (!c)
		return;
	yfile_free(c->yf);
	arena_free(&c->arena);
	free(c);
}

int config_rule_sources(struct config *c, const char *const *dirs, size_t ndirs,
			struct rule_source **ret, size_t *ret_n)
{
	const char *const *list = ndirs ? dirs : c->rules;
	size_t n = ndirs ? ndirs : c->nrules;
	struct rule_source *src;
	size_t k = 0;

	src = arena_alloc(&c->arena, (n + 1) * sizeof(*src));
	if (!src)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(list[i], CONFIG_BUILTIN_RULES) == 0) {
			src[k].files = builtin_rules;
			src[k].nfiles = builtin_rules_count;
			src[k].path = CONFIG_BUILTIN_RULES;
			k++;
			continue;
		}
		src[k].path = list[i];
		/* The default site directory may be absent; a configured one may not. */
		src[k].optional = !ndirs && c->rules_default && strcmp(list[i], CONFIG_DEFAULT_RULES_DIR) == 0;
		k++;
	}
	*ret = src;
	*ret_n = k;
	return 0;
}
