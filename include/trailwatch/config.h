/* config.h: /etc/trailwatch/trailwatch.yaml.
 *
 * Every key is listed in one table in config.c (name, type, default, what
 * it sets); an unknown key or a bad value is an error with file:line:column,
 * all of them are reported, and loading fails once.  Without a file the
 * built-in defaults apply: the shipped rule pack plus /etc/trailwatch/rules.d.
 * See docs/config.md for the reference.  Does not log.
 */
#ifndef TRAILWATCH_CONFIG_H
#define TRAILWATCH_CONFIG_H

#include <stddef.h>

#include "trailwatch/arena.h"
#include "trailwatch/correlate.h"
#include "trailwatch/diag.h"
#include "trailwatch/log.h"
#include "trailwatch/process.h"
#include "trailwatch/rules.h"

#define CONFIG_DEFAULT_PATH "/etc/trailwatch/trailwatch.yaml"
#define CONFIG_DEFAULT_RULES_DIR "/etc/trailwatch/rules.d"
#define CONFIG_BUILTIN_RULES "builtin"

#define CONFIG_DEFAULT_STATE_DIR "/var/lib/trailwatch"

struct yfile;

/* A secret given one of three ways (exactly one is set): in the file
 * itself, in a file of its own, or as a systemd credential
 * ($CREDENTIALS_DIRECTORY/NAME, LoadCredential=).  Read when run starts. */
struct secret_ref {
	const char *value;
	const char *file;
	const char *credential;
	unsigned line, col;	/* where the one given is written (its value) */
};

enum sink_type {
	SINK_STDOUT,
	SINK_FILE,
	SINK_WEBHOOK,
	SINK_SLACK,
	SINK_TEAMS,
	SINK_PAGERDUTY,
	SINK_JOURNAL,
};

/* One entry of `sinks:` (docs/config.md). */
struct sink_config {
	enum sink_type type;
	const char *type_name;
	const char *name;		/* unique; default: the type */
	int line, col;
	enum level min_severity;	/* default informational: everything */
	const char **rules;		/* only alerts whose rule id or a tag matches one (globs) */
	size_t nrules;
	const char **exclude_rules;	/* never alerts whose rule id or a tag matches one */
	size_t nexclude_rules;
	struct secret_ref url;		/* webhook, slack, teams */
	struct secret_ref hmac;		/* webhook: signs the body (optional) */
	const char **header_names;	/* webhook: extra headers */
	const char **header_values;
	size_t nheaders;
	struct secret_ref routing_key;	/* pagerduty */
	const char *endpoint;		/* pagerduty: default https://events.pagerduty.com/v2/enqueue */
	const char *path;		/* file: JSON lines appended */
};

enum source_type {
	SOURCE_S3,	/* a CloudTrail bucket, polled */
	SOURCE_DIR,	/* a local directory, watched for new files */
};

/* One entry of `sources:` (docs/config.md).  Strings live in the config. */
struct source_config {
	enum source_type type;
	const char *name;		/* "s3://bucket/prefix" or the directory: state and messages */
	int line, col;			/* where it was written, for messages */
	/* s3 */
	const char *bucket;
	const char *prefix;		/* default "AWSLogs/" */
	const char *region;
	const char *endpoint;		/* NULL: AWS's */
	bool path_style;
	int64_t poll_interval;		/* seconds; default 60 */
	int64_t quiet_poll_interval;	/* for prefixes without new objects; default poll_interval */
	int64_t start_time;		/* epoch seconds; 0: now minus lookback */
	int64_t lookback;		/* seconds of keys re-listed; default 900 */
	int64_t discovery_interval;	/* seconds between account/region discoveries; default 600 */
	const char **accounts;		/* only these accounts (NULL: all) */
	size_t naccounts;
	const char **regions;		/* only these regions (NULL: all) */
	size_t nregions;
	const char *role_arn;		/* AssumeRole on top of the credential chain */
	const char *external_id;
	size_t parallel;		/* object GETs in flight; default 4 */
	int64_t request_timeout;	/* seconds one S3 request may take (a GET: plus its size at
					 * S3_GET_MIN_RATE); default 60, at most 3600 */
	/* dir */
	const char *path;
};

struct config {
	const char *path;		/* NULL: built-in defaults */
	struct arena arena;
	struct yfile *yf;
	const char **rules;		/* rule directories; "builtin" is the shipped pack */
	size_t nrules;
	bool rules_default;		/* rules were not configured */
	struct rule_lists lists;
	struct process_limits limits;
	struct corr_limits corr;
	enum log_level log_level;
	struct source_config *sources;
	size_t nsources;
	const char *state_dir;		/* default /var/lib/trailwatch */
	unsigned state_dir_line, state_dir_col;	/* where it is written; 0: not configured */
	struct sink_config *sinks;	/* none configured: stdout */
	size_t nsinks;
	size_t spool_max_size;		/* bytes of undelivered alerts kept */
	int64_t spool_remember;		/* seconds a delivered alert id is remembered */
	int64_t spool_max_age;		/* seconds an alert may wait for a sink */
};

/* Loads path, or the defaults when path is NULL.  -EINVAL with every error
 * in d; -ENOENT etc. when the file cannot be read (also in d). */
int config_load(const char *path, struct config **ret, struct diag *d);

/* The same from text in memory; name is used in messages (tests, fuzzing). */
int config_load_buffer(const char *name, const char *data, size_t len, struct config **ret, struct diag *d);
void config_free(struct config *c);

/* Rule sources for ruleset_load: the -r directories when given (dirs), else
 * the configured ones.  *ret is allocated from the config's arena. */
int config_rule_sources(struct config *c, const char *const *dirs, size_t ndirs,
			struct rule_source **ret, size_t *ret_n);

/* The most memory `run` may need for log objects with c's limits, in bytes:
 * one object's JSON (limits.max_decompressed_size) and half as much again
 * for its matches (when every record matches: about 450 bytes each), plus
 * the objects being fetched meanwhile, limits.max_object_size for each GET
 * in flight (the largest `parallel` of the sources, which are polled one at
 * a time; 1 for a dir source).  The rules and the correlation state come on
 * top (docs/service.md, "Memory"). */
size_t config_object_memory(const struct config *c);

/* Parses "512", "64KiB", "1MiB", "1GiB" (K/M/G also accepted).  -EINVAL. */
int size_parse(const char *s, size_t *ret);

#endif
