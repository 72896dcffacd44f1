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
#include "trailwatch/match.h"
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
	KEY_SINKS,	/* list of sinks: their keys are in sink_keys[] */
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
	{ "sinks", KEY_SINKS, OFF(sinks), "[{type: stdout}]" },
	{ "spool", KEY_SECTION, 0, NULL },
	{ "spool.max_size", KEY_SIZE, OFF(spool_max_size), "256MiB" },
	{ "spool.remember", KEY_DURATION, OFF(spool_remember), "7d" },
	{ "spool.max_age", KEY_DURATION, OFF(spool_max_age), "7d" },
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

/* May a message show this key?  Ours are lower-case words joined by '_'.
 * Anything else is described, never shown: it may be a secret written
 * where a key goes, such as a webhook URL or a token one line off
 * ("{url: https://hooks.slack.com/..., https://hooks.slack.com/...: x}",
 * or a secret under "hmac_secret:" at the key's indentation), and config
 * errors reach the journal. */
static bool key_showable(const char *key)
{
	size_t n = 0;

	for (const char *p = key; *p; p++, n++)
		if (!((*p >= 'a' && *p <= 'z') || *p == '_') || n >= 40)
			return false;
	return n > 0;
}

#define KEY_NOT_SHOWN "not shown: it is not a key name, and may be a secret or a URL written as a key"

static const struct config_key *find_key(const char *path)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(config_keys[i].path, path) == 0)
			return &config_keys[i];
	return NULL;
}

/* What the shipped pack's lists hold, checked here so that a mistake is
 * reported at its place in the configuration (docs/config.md, "lists"). */
enum list_kind {
	LIST_ANY,
	LIST_ACCOUNTS,		/* AWS account ids */
	LIST_CIDRS,		/* IPv4 or IPv6 networks */
	LIST_PRINCIPALS,	/* whole principals (whole_principal) */
};

static const struct {
	const char *name;
	enum list_kind kind;
} list_kinds[] = {
	{ "corporate_cidrs", LIST_CIDRS },
	{ "org_accounts", LIST_ACCOUNTS },
	{ "iac_networks", LIST_CIDRS },
	{ "iac_principals", LIST_PRINCIPALS },
	{ "iac_network_principals", LIST_PRINCIPALS },
	{ "scanner_principals", LIST_PRINCIPALS },
};

static enum list_kind list_kind(const char *name)
{
	for (size_t i = 0; i < sizeof(list_kinds) / sizeof(list_kinds[0]); i++)
		if (strcmp(list_kinds[i].name, name) == 0)
			return list_kinds[i].kind;
	return LIST_ANY;
}

static bool has_wildcard(const char *s, size_t len)
{
	return memchr(s, '*', len) || memchr(s, '?', len);
}

/* Does the ARN pattern name whole principals?  A user, role or root ARN
 * (arn:PARTITION:iam::ACCOUNT:user/NAME, role/PATH/NAME, root), a role
 * session (arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION) or a
 * federated user, with wildcards only in ACCOUNT and SESSION: whoever calls
 * AssumeRole chooses the session name, so a pattern with a wildcard in the
 * role or user name would let anyone who names a role or session to fit it
 * be excused. */
static bool whole_principal(const char *s)
{
	const char *p = s, *colon, *res, *slash;
	bool sts;

	if (strncmp(p, "arn:", 4) != 0)
		return false;
	p += 4;
	colon = strchr(p, ':');
	if (!colon || colon == p || has_wildcard(p, (size_t)(colon - p)))
		return false;
	p = colon + 1;
	if (strncmp(p, "iam::", 5) == 0)
		sts = false;
	else if (strncmp(p, "sts::", 5) == 0)
		sts = true;
	else
		return false;
	p += 5;
	colon = strchr(p, ':');
	if (!colon)
		return false;
	if (!(colon - p == 1 && *p == '*') && !aws_account_id(p, (size_t)(colon - p)))
		return false;
	res = colon + 1;
	if (!sts && strcmp(res, "root") == 0)
		return true;
	if (!sts && (strncmp(res, "user/", 5) == 0 || strncmp(res, "role/", 5) == 0))
		return res[5] && !has_wildcard(res + 5, strlen(res + 5));
	if (sts && strncmp(res, "federated-user/", 15) == 0)
		return res[15] && !has_wildcard(res + 15, strlen(res + 15));
	if (sts && strncmp(res, "assumed-role/", 13) == 0) {
		res += 13;
		slash = strchr(res, '/');
		return slash && slash > res && !has_wildcard(res, (size_t)(slash - res)) && slash[1];
	}
	return false;
}

/* Checks one value of list `name`; reports at n.  -EINVAL. */
static int check_list_value(struct config *c, const char *name, const struct ynode *n, struct diag *d)
{
	struct cidr net;

	switch (list_kind(name)) {
	case LIST_ACCOUNTS:
		if (!aws_account_id(n->value, strlen(n->value))) {
			cerr(d, c->path, n, "lists.%s: '%s' is not an AWS account id (12 digits)", name, n->value);
			return -EINVAL;
		}
		return 0;
	case LIST_CIDRS:
		if (cidr_parse(&net, n->value) < 0) {
			cerr(d, c->path, n, "lists.%s: '%s' is not an IPv4 or IPv6 network (a.b.c.d/n or x::y/n)",
			     name, n->value);
			return -EINVAL;
		}
		return 0;
	case LIST_PRINCIPALS:
		if (!whole_principal(n->value)) {
			cerr(d, c->path, n, "lists.%s: '%s' must name whole principals: a user, role or role-session ARN whose user or role name has no wildcard (the caller picks session names, not role names)",
			     name, n->value);
			return -EINVAL;
		}
		return 0;
	default:
		return 0;
	}
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
			if (check_list_value(c, l->names[i], v->items[k], d) < 0) {
				r = -EINVAL;
				continue;
			}
			l->values[i][l->nvalues[i]++] = v->items[k]->value;
		}
	}
	return r;
}

/* ---- sources and sinks ---------------------------------------------------- */

/* Does the URL start with https:// or http:// (the only schemes libcurl is
 * allowed)?  Compared as the sinks compare it, case and all. */
static bool http_url(const char *url)
{
	return strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0;
}

/* Items of `sources:` and `sinks:` are maps whose keys depend on their type;
 * one table each (source_keys, sink_keys) says which keys exist, what they
 * hold, where they go in the item's struct and which types take them. */

enum skey_type {
	SK_STRING, SK_BOOL, SK_DURATION, SK_TIME, SK_COUNT,
	SK_LIST,	/* list of values: const char **, with its count at count_offset */
	SK_ACCOUNTS,	/* SK_LIST of 12-digit account ids */
	SK_LEVEL,	/* a severity: enum level */
	SK_MAP,		/* map of names to values: const char **names, **values, count */
};

struct item_key {
	const char *name;
	enum skey_type type;
	size_t offset;
	unsigned types;		/* bit (1 << type of the item) for each type that takes it */
	size_t count_offset;	/* SK_LIST, SK_ACCOUNTS, SK_MAP: the count */
	size_t values_offset;	/* SK_MAP: the values */
};

#define SOFF(field) offsetof(struct source_config, field)
#define SRC_S3 (1u << SOURCE_S3)
#define SRC_DIR (1u << SOURCE_DIR)

static const struct item_key source_keys[] = {
	{ "bucket", SK_STRING, SOFF(bucket), SRC_S3, 0, 0 },
	{ "prefix", SK_STRING, SOFF(prefix), SRC_S3, 0, 0 },
	{ "region", SK_STRING, SOFF(region), SRC_S3, 0, 0 },
	{ "endpoint", SK_STRING, SOFF(endpoint), SRC_S3, 0, 0 },
	{ "path_style", SK_BOOL, SOFF(path_style), SRC_S3, 0, 0 },
	{ "poll_interval", SK_DURATION, SOFF(poll_interval), SRC_S3 | SRC_DIR, 0, 0 },
	{ "quiet_poll_interval", SK_DURATION, SOFF(quiet_poll_interval), SRC_S3, 0, 0 },
	{ "start_time", SK_TIME, SOFF(start_time), SRC_S3, 0, 0 },
	{ "lookback", SK_DURATION, SOFF(lookback), SRC_S3, 0, 0 },
	{ "discovery_interval", SK_DURATION, SOFF(discovery_interval), SRC_S3, 0, 0 },
	{ "accounts", SK_ACCOUNTS, SOFF(accounts), SRC_S3, SOFF(naccounts), 0 },
	{ "regions", SK_LIST, SOFF(regions), SRC_S3, SOFF(nregions), 0 },
	{ "role_arn", SK_STRING, SOFF(role_arn), SRC_S3, 0, 0 },
	{ "external_id", SK_STRING, SOFF(external_id), SRC_S3, 0, 0 },
	{ "parallel", SK_COUNT, SOFF(parallel), SRC_S3, 0, 0 },
	{ "request_timeout", SK_DURATION, SOFF(request_timeout), SRC_S3, 0, 0 },
	{ "path", SK_STRING, SOFF(path), SRC_DIR, 0, 0 },
};

static int set_item_key(struct config *c, void *item, const struct item_key *k, const struct ynode *n,
			struct diag *d)
{
	void *field = (char *)item + k->offset;

	if (k->type == SK_LIST || k->type == SK_ACCOUNTS) {
		const char ***list = field;
		size_t *count = (size_t *)((char *)item + k->count_offset);
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
			if (k->type == SK_ACCOUNTS && !aws_account_id(v->value, strlen(v->value))) {
				cerr(d, c->path, v, "'%s' is not an AWS account id (12 digits)", v->value);
				return -EINVAL;
			}
			(*list)[i] = v->value;
		}
		*count = n->n;
		return 0;
	}
	if (k->type == SK_MAP) {
		const char ***names = field, ***values = (const char ***)((char *)item + k->values_offset);
		size_t *count = (size_t *)((char *)item + k->count_offset);
		if (n->type != YNODE_MAP) {
			cerr(d, c->path, n, "'%s' must be a map of names to values", k->name);
			return -EINVAL;
		}
		*names = arena_alloc(&c->arena, (n->n + 1) * sizeof(**names));
		*values = arena_alloc(&c->arena, (n->n + 1) * sizeof(**values));
		if (!*names || !*values)
			return -ENOMEM;
		for (size_t i = 0; i < n->n; i++) {
			const struct ynode *v = n->items[i];
			if (v->type != YNODE_SCALAR || ynode_is_null(v)) {
				cerr(d, c->path, v, "each value of '%s' must be a single value", k->name);
				return -EINVAL;
			}
			(*names)[i] = n->keys[i]->value;
			(*values)[i] = v->value;
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
	case SK_LEVEL:
		if (level_from_string(n->value, (enum level *)field) < 0) {
			cerr(d, c->path, n, "'%s' must be informational, low, medium, high or critical", k->name);
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

/* Every key of the map n but "type", for an item of the given type (one of
 * `what`: "source", "sink"): looked up in table, checked to apply to the
 * type, stored into item.  Reports every problem; -EINVAL, -ENOMEM. */
static int set_item_keys(struct config *c, const struct ynode *n, void *item, const struct item_key *table,
			 size_t ntable, unsigned type, const char *what, const char *type_name, struct diag *d)
{
	int r = 0;

	for (size_t i = 0; i < n->n; i++) {
		const char *key = n->keys[i]->value;
		const struct item_key *k = NULL;
		int e;

		if (strcmp(key, "type") == 0)
			continue;
		for (size_t j = 0; j < ntable && !k; j++)
			if (strcmp(table[j].name, key) == 0)
				k = &table[j];
		if (!k) {
			if (key_showable(key))
				cerr(d, c->path, n->keys[i], "unknown key '%s' in a %s", key, what);
			else
				cerr(d, c->path, n->keys[i], "unknown key in a %s (%zu characters, " KEY_NOT_SHOWN ")",
				     what, strlen(key));
			r = -EINVAL;
			continue;
		}
		if (!(k->types & (1u << type))) {
			cerr(d, c->path, n->keys[i], "'%s' does not apply to a %s of type %s", key, what, type_name);
			r = -EINVAL;
			continue;
		}
		e = set_item_key(c, item, k, n->items[i], d);
		if (e == -ENOMEM)
			return e;
		if (e < 0)
			r = e;
	}
	return r;
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
	src->request_timeout = 60;
	r = set_item_keys(c, n, src, source_keys, sizeof(source_keys) / sizeof(source_keys[0]), src->type, "source",
			  type->value, d);
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
		if (src->request_timeout > 3600) {
			cerr(d, c->path, ynode_get(n, "request_timeout"), "'request_timeout' must be at most 1h");
			return -EINVAL;
		}
		if (src->endpoint && !http_url(src->endpoint)) {
			cerr(d, c->path, ynode_get(n, "endpoint"), "'endpoint' must start with https:// or http://");
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
			/* a source that had errors has no name */
			if (c->sources[k].name && strcmp(c->sources[k].name, c->sources[i].name) == 0) {
				cerr(d, c->path, n->items[i], "source %s is configured twice", c->sources[i].name);
				r = -EINVAL;
			}
		}
	}
	c->nsources = n->n;
	return r;
}

#define KOFF(field) offsetof(struct sink_config, field)
#define SINKS_HTTP ((1u << SINK_WEBHOOK) | (1u << SINK_SLACK) | (1u << SINK_TEAMS))
#define SINKS_ALL 0xffu

static const char *const sink_type_names[] = {
	[SINK_STDOUT] = "stdout", [SINK_FILE] = "file", [SINK_WEBHOOK] = "webhook", [SINK_SLACK] = "slack",
	[SINK_TEAMS] = "teams", [SINK_PAGERDUTY] = "pagerduty", [SINK_JOURNAL] = "journal",
};

static const struct item_key sink_keys[] = {
	{ "name", SK_STRING, KOFF(name), SINKS_ALL, 0, 0 },
	{ "min_severity", SK_LEVEL, KOFF(min_severity), SINKS_ALL, 0, 0 },
	{ "rules", SK_LIST, KOFF(rules), SINKS_ALL, KOFF(nrules), 0 },
	{ "exclude_rules", SK_LIST, KOFF(exclude_rules), SINKS_ALL, KOFF(nexclude_rules), 0 },
	{ "url", SK_STRING, KOFF(url.value), SINKS_HTTP, 0, 0 },
	{ "url_file", SK_STRING, KOFF(url.file), SINKS_HTTP, 0, 0 },
	{ "url_credential", SK_STRING, KOFF(url.credential), SINKS_HTTP, 0, 0 },
	{ "hmac_secret", SK_STRING, KOFF(hmac.value), 1u << SINK_WEBHOOK, 0, 0 },
	{ "hmac_secret_file", SK_STRING, KOFF(hmac.file), 1u << SINK_WEBHOOK, 0, 0 },
	{ "hmac_secret_credential", SK_STRING, KOFF(hmac.credential), 1u << SINK_WEBHOOK, 0, 0 },
	{ "headers", SK_MAP, KOFF(header_names), 1u << SINK_WEBHOOK, KOFF(nheaders), KOFF(header_values) },
	{ "routing_key", SK_STRING, KOFF(routing_key.value), 1u << SINK_PAGERDUTY, 0, 0 },
	{ "routing_key_file", SK_STRING, KOFF(routing_key.file), 1u << SINK_PAGERDUTY, 0, 0 },
	{ "routing_key_credential", SK_STRING, KOFF(routing_key.credential), 1u << SINK_PAGERDUTY, 0, 0 },
	{ "endpoint", SK_STRING, KOFF(endpoint), 1u << SINK_PAGERDUTY, 0, 0 },
	{ "path", SK_STRING, KOFF(path), 1u << SINK_FILE, 0, 0 },
};

/* Where the secret given under one of its three keys is written. */
static void secret_place(const struct ynode *n, const char *key, struct secret_ref *s)
{
	static const char *const suffix[] = { "", "_file", "_credential" };

	for (size_t i = 0; i < 3; i++) {
		char name[64];
		const struct ynode *v;

		snprintf(name, sizeof(name), "%s%s", key, suffix[i]);
		v = ynode_get(n, name);
		if (v) {
			s->line = v->line;
			s->col = v->col;
			return;
		}
	}
}

/* An HTTP header name: a token of RFC 9110's characters. */
static bool header_name_ok(const struct ynode *k)
{
	if (!k->len || strlen(k->value) != k->len)
		return false;
	for (size_t i = 0; i < k->len; i++) {
		unsigned char c = (unsigned char)k->value[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("!#$%&'*+-.^_`|~", c)))
			return false;
	}
	return true;
}

/* A header value may not end the header: no CR, LF or NUL (and no other
 * control character but tab).  It may be a secret: never shown. */
static bool header_value_ok(const struct ynode *v)
{
	for (size_t i = 0; i < v->len; i++) {
		unsigned char c = (unsigned char)v->value[i];
		if ((c < ' ' && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

/* The headers of a webhook sink, as the receiver would get them: each
 * name a token, each value on its line.  -EINVAL. */
static int check_headers(struct config *c, const struct sink_config *sk, const struct ynode *h, struct diag *d)
{
	int r = 0;

	for (size_t i = 0; h && h->type == YNODE_MAP && i < h->n; i++) {
		if (!header_name_ok(h->keys[i])) {
			cerr(d, c->path, h->keys[i], "sink %s: a header name must be letters, digits and !#$%%&'*+-.^_`|~ only (no space, colon, line break or NUL)",
			     sk->name);
			r = -EINVAL;
		} else if (h->items[i]->type == YNODE_SCALAR && !header_value_ok(h->items[i])) {
			cerr(d, c->path, h->items[i], "sink %s: the value of header '%s' has a line break, NUL or other control character: it would end the header and begin another (not shown)",
			     sk->name, h->keys[i]->value);
			r = -EINVAL;
		}
	}
	return r;
}

/* How many of a secret's three spellings are given. */
static int secret_forms(const struct secret_ref *s)
{
	return !!s->value + !!s->file + !!s->credential;
}

static int parse_sink(struct config *c, const struct ynode *n, struct sink_config *sk, struct diag *d)
{
	const struct ynode *type = ynode_get(n, "type");
	int r = 0;

	memset(sk, 0, sizeof(*sk));
	sk->line = n->line;
	sk->col = n->col;
	if (n->type != YNODE_MAP) {
		cerr(d, c->path, n, "each sink must be a map with a 'type'");
		return -EINVAL;
	}
	for (size_t t = 0; type && type->type == YNODE_SCALAR && t < sizeof(sink_type_names) / sizeof(sink_type_names[0]);
	     t++) {
		if (strcmp(type->value, sink_type_names[t]) == 0) {
			sk->type = (enum sink_type)t;
			sk->type_name = sink_type_names[t];
		}
	}
	if (!sk->type_name) {
		cerr(d, c->path, type ? type : n,
		     "a sink needs a type: slack, webhook, pagerduty, teams, journal, stdout or file");
		return -EINVAL;
	}
	sk->name = sk->type_name;
	sk->min_severity = LEVEL_INFORMATIONAL;
	r = set_item_keys(c, n, sk, sink_keys, sizeof(sink_keys) / sizeof(sink_keys[0]), sk->type, "sink",
			  sk->type_name, d);
	if (r < 0)
		return r;
	for (const char *p = sk->name; *p; p++) {
		if (*p <= ' ' || *p > '~' || *p == '/' || p - sk->name >= 64) {
			cerr(d, c->path, n, "sink name '%s': at most 64 printable characters, no space or '/'", sk->name);
			return -EINVAL;
		}
	}
	if (((1u << sk->type) & SINKS_HTTP) && secret_forms(&sk->url) != 1) {
		cerr(d, c->path, n, "a %s sink needs exactly one of url, url_file and url_credential", sk->type_name);
		return -EINVAL;
	}
	if (sk->type == SINK_PAGERDUTY && secret_forms(&sk->routing_key) != 1) {
		cerr(d, c->path, n, "a pagerduty sink needs exactly one of routing_key, routing_key_file and "
				    "routing_key_credential");
		return -EINVAL;
	}
	if (secret_forms(&sk->hmac) > 1) {
		cerr(d, c->path, n, "give the HMAC secret one way: hmac_secret, hmac_secret_file or hmac_secret_credential");
		return -EINVAL;
	}
	if (sk->type == SINK_FILE && !sk->path) {
		cerr(d, c->path, n, "a file sink needs 'path'");
		return -EINVAL;
	}
	secret_place(n, "url", &sk->url);
	secret_place(n, "hmac_secret", &sk->hmac);
	secret_place(n, "routing_key", &sk->routing_key);
	/* the URL may be a secret (a Slack webhook's is): never shown */
	if (sk->url.value && !http_url(sk->url.value)) {
		cerr(d, c->path, ynode_get(n, "url"), "sink %s: the url must start with https:// (or http://)", sk->name);
		r = -EINVAL;
	}
	if (sk->endpoint && !http_url(sk->endpoint)) {
		cerr(d, c->path, ynode_get(n, "endpoint"), "sink %s: the endpoint must start with https:// (or http://)",
		     sk->name);
		r = -EINVAL;
	}
	if (check_headers(c, sk, ynode_get(n, "headers"), d) < 0)
		r = -EINVAL;
	return r;
}

static int set_sinks(struct config *c, const struct ynode *n, struct diag *d)
{
	int r = 0;

	if (n->type != YNODE_SEQ || n->n == 0) {
		cerr(d, c->path, n, "'sinks' must be a list of sinks");
		return -EINVAL;
	}
	c->sinks = arena_alloc(&c->arena, (n->n + 1) * sizeof(*c->sinks));
	if (!c->sinks)
		return -ENOMEM;
	for (size_t i = 0; i < n->n; i++) {
		int e = parse_sink(c, n->items[i], &c->sinks[i], d);
		if (e == -ENOMEM)
			return e;
		if (e < 0)
			r = e;
		for (size_t k = 0; e == 0 && k < i; k++) {
			if (c->sinks[k].name && strcmp(c->sinks[k].name, c->sinks[i].name) == 0) {
				cerr(d, c->path, n->items[i], "two sinks are named '%s' (give one a 'name')",
				     c->sinks[i].name);
				r = -EINVAL;
				break;
			}
		}
	}
	c->nsinks = n->n;
	return r;
}

static int set_key(struct config *c, const struct config_key *k, const struct ynode *n, struct diag *d)
{
	void *field = (char *)c + k->offset;

	if (k->type == KEY_LISTS)
		return set_lists(c, n, d);
	if (k->type == KEY_SOURCES)
		return set_sources(c, n, d);
	if (k->type == KEY_SINKS)
		return set_sinks(c, n, d);
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
		if (!k && key_showable(map->keys[i]->value)) {
			cerr(d, c->path, map->keys[i], "unknown key '%s'", path);
		} else if (!k) {
			cerr(d, c->path, map->keys[i], "unknown key%s%s%s (%zu characters, " KEY_NOT_SHOWN ")",
			     prefix[0] ? " in '" : "", prefix, prefix[0] ? "'" : "", strlen(map->keys[i]->value));
		}
		if (!k) {
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
	c->spool_max_size = (size_t)256 << 20;
	c->spool_remember = 7 * 86400;
	c->spool_max_age = 7 * 86400;
}

/* Lists that the shipped rules use.  They exist even when the config does not
 * name them, empty, so that the pack loads with any config; an empty list
 * turns its refinement off (docs/config.md says what each one does). */
static const char *const pack_lists[] = {
	"corporate_cidrs", "org_accounts", "iac_principals", "iac_network_principals", "iac_networks",
	"scanner_principals", "public_buckets", "trail_buckets",
};

/* trail_buckets, when the config does not give it: the buckets that the S3
 * sources read, each once (the trail moving its log files elsewhere is what
 * blinds trailwatch).  NULL and 0 without S3 sources.  -ENOMEM. */
static int source_buckets(struct config *c, const char ***ret, size_t *ret_n)
{
	const char **out = arena_alloc(&c->arena, (c->nsources + 1) * sizeof(*out));
	size_t n = 0;

	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < c->nsources; i++) {
		bool seen = false;
		if (c->sources[i].type != SOURCE_S3 || !c->sources[i].bucket)
			continue;
		for (size_t k = 0; k < n; k++)
			seen |= strcmp(out[k], c->sources[i].bucket) == 0;
		if (!seen)
			out[n++] = c->sources[i].bucket;
	}
	*ret = n ? out : NULL;
	*ret_n = n;
	return 0;
}

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
		if (strcmp(pack_lists[i], "trail_buckets") == 0 && source_buckets(c, &values[n], &nvalues[n]) < 0)
			return -ENOMEM;
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
	const struct ynode *sd;
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
			if ((sd = ynode_get(c->yf->docs[0].root, "state_dir"))) {
				c->state_dir_line = sd->line;
				c->state_dir_col = sd->col;
			}
			if (c->spool_max_size < (size_t)16 << 10) {
				const struct ynode *sp = ynode_get(c->yf->docs[0].root, "spool");
				cerr(d, c->path, sp ? ynode_get(sp, "max_size") : NULL, "'spool.max_size' must be at least 16KiB");
				r = -EINVAL;
				goto fail;
			}
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

size_t config_object_memory(const struct config *c)
{
	size_t fetching = 1;

	for (size_t i = 0; i < c->nsources; i++)
		if (c->sources[i].type == SOURCE_S3 && c->sources[i].parallel > fetching)
			fetching = c->sources[i].parallel;
	return c->limits.input.max_decompressed / 2 * 3 + fetching * c->limits.input.max_object;
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
