/* main.c: the command line.
 *
 *   trailwatch run     [-c FILE] [-r DIR]...            the service: polls S3, alerts on stdout
 *   trailwatch replay  [-c FILE] [-r DIR]... [--jobs N] [--sinks] PATH...
 *   trailwatch check   [-c FILE] [-r DIR]...
 *   trailwatch test    [-c FILE] [-r DIR]...
 *
 * Thin on purpose: parse arguments, load config and rules, hand over to the
 * subcommand's module, map its result to an exit status.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trailwatch/config.h"
#include "trailwatch/delivery.h"
#include "trailwatch/diag.h"
#include "trailwatch/log.h"
#include "trailwatch/replay.h"
#include "trailwatch/service.h"
#include "trailwatch/rules.h"
#include "trailwatch/ruletest.h"

#ifndef TRAILWATCH_VERSION
#define TRAILWATCH_VERSION "0.1.0"
#endif

#define MAX_RULE_DIRS 64
#define MAX_JOBS 256

struct args {
	const char *command;
	const char *config;
	const char *rule_dirs[MAX_RULE_DIRS];
	size_t nrule_dirs;
	unsigned jobs;
	bool sinks;		/* replay --sinks */
	const char *log_level;	/* --log-level, checked */
	enum log_level level;
	const char *run_config;	/* the file `run` loads, and reloads */
	char **paths;
	size_t npaths;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: trailwatch COMMAND [OPTIONS]\n"
		"\n"
		"commands:\n"
		"  replay [-c FILE] [-r DIR]... [--jobs N] [--sinks] PATH...\n"
		"        read CloudTrail files (.json, .json.gz; directories recursively) and\n"
		"        print every alert as one JSON object per line (--sinks: deliver them to\n"
		"        the configured sinks through the spool instead, as run does)\n"
		"  check  [-c FILE] [-r DIR]...   validate the configuration and the rules\n"
		"  test   [-c FILE] [-r DIR]...   run the test events the rules carry\n"
		"  run    [-c FILE] [-r DIR]...   the service: polls the configured S3 sources and\n"
		"        delivers alerts to the configured sinks (default: stdout) through the\n"
		"        durable spool in state_dir\n"
		"\n"
		"options:\n"
		"  -c, --config FILE     configuration (default: built-in defaults; run: %s)\n"
		"  -r, --rules DIR       rule directory or file, repeatable; replaces the\n"
		"                        configured rules (default: the shipped pack and\n"
		"                        %s)\n"
		"  -j, --jobs N          replay with N worker threads (default 1)\n"
		"      --log-level L     error, warning, info or debug\n"
		"  -h, --help            this text\n"
		"  -V, --version         the version\n",
		CONFIG_DEFAULT_PATH, CONFIG_DEFAULT_RULES_DIR);
}

static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "rules", required_argument, NULL, 'r' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "sinks", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(a, 0, sizeof(*a));
	a->jobs = 1;
	if (argc < 2) {
		usage(stderr);
		return -EINVAL;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		exit(0);
	}
	if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("trailwatch %s\n", TRAILWATCH_VERSION);
		exit(0);
	}
	a->command = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "c:r:j:hV", opts, NULL)) != -1) {
		char *end;
		unsigned long v;

		switch (c) {
		case 'c':
			a->config = optarg;
			break;
		case 'r':
			if (a->nrule_dirs == MAX_RULE_DIRS) {
				fprintf(stderr, "trailwatch: at most %d -r options\n", MAX_RULE_DIRS);
				return -EINVAL;
			}
			a->rule_dirs[a->nrule_dirs++] = optarg;
			break;
		case 'j':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v == 0 || v > MAX_JOBS) {
				fprintf(stderr, "trailwatch: --jobs takes a number from 1 to %d\n", MAX_JOBS);
				return -EINVAL;
			}
			a->jobs = (unsigned)v;
			break;
		case 'L':
			if (log_level_from_string(optarg, &a->level) < 0) {
				fprintf(stderr, "trailwatch: --log-level takes error, warning, info or debug\n");
				return -EINVAL;
			}
			a->log_level = optarg;
			break;
		case 'S':
			a->sinks = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("trailwatch %s\n", TRAILWATCH_VERSION);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	a->paths = argv + optind;
	a->npaths = (size_t)(argc - optind);
	return 0;
}

/* What a load checks besides the files themselves. */
enum load_for {
	LOAD_REPLAY,	/* replay, test, check without -c: the files */
	LOAD_CHECK,	/* check -c: also what run would refuse before it starts */
	LOAD_RUN,	/* run, and its reloads: the same, as run refuses it */
};

/* Loads config and rules, every problem in d, and sets the log level.
 * Then, for check -c and run, what delivery_open() would refuse
 * (delivery_check).  Returns 0, or a negative errno (*cfg may then be set:
 * the caller frees it; *rs set too: the rules loaded, the sinks did not
 * pass). */
static int load_into(const struct args *a, const char *config_path, enum load_for what, struct config **cfg,
		     struct ruleset **rs, struct diag *d)
{
	struct rule_source *src;
	size_t nsrc;
	int r;

	r = config_load(config_path, cfg, d);
	if (r < 0)
		return r;
	r = config_rule_sources(*cfg, a->rule_dirs, a->nrule_dirs, &src, &nsrc);
	if (r == 0)
		r = ruleset_load(src, nsrc, &(*cfg)->lists, rs, d);
	if (r == 0 && what != LOAD_REPLAY && (*cfg)->path)
		r = delivery_check(*cfg, what == LOAD_CHECK, d);
	if (r < 0)
		return r;
	log_set_level(a->log_level ? a->level : (*cfg)->log_level);
	return 0;
}

/* Loads config and rules; prints every error.  Returns 0 or an exit status. */
static int load(const struct args *a, const char *config_path, enum load_for what, struct config **cfg,
		struct ruleset **rs)
{
	struct diag d;
	int r;

	diag_init(&d);
	r = load_into(a, config_path, what, cfg, rs, &d);
	diag_print(&d, stderr);	/* the errors, or the warnings of what loaded */
	if (r < 0) {
		if (r == -ENOMEM)
			fprintf(stderr, "trailwatch: out of memory\n");
		else if (*cfg)
			fprintf(stderr, "trailwatch: %zu error%s in the %s\n", diag_errors(&d),
				diag_errors(&d) == 1 ? "" : "s", *rs ? "configuration" : "rules");
	}
	diag_free(&d);
	return r < 0 ? 1 : 0;
}

/* service_loader: what `run` loaded at start, loaded again (SIGHUP). */
static int reload_run(void *ctx, struct config **cfg, struct ruleset **rs, struct diag *d)
{
	const struct args *a = ctx;

	*cfg = NULL;
	*rs = NULL;
	return load_into(a, a->run_config, LOAD_RUN, cfg, rs, d);
}

static void rule_summary(const struct ruleset *rs, FILE *f)
{
	size_t det = 0, corr = 0, filt = 0, tests = 0;

	for (size_t i = 0; i < rs->nrules; i++) {
		const struct rule *r = rs->rules[i];
		det += r->kind == RULE_DETECTION && (r->id || !r->nconsumers || r->emits);
		corr += r->kind == RULE_CORRELATION;
		filt += r->kind == RULE_FILTER;
		tests += r->ntests;
	}
	fprintf(f, "%zu files: %zu detection rules, %zu correlation rules, %zu filters, %zu rule tests",
		rs->nfiles, det, corr, filt, tests);
	if (rs->skipped_logsource)
		fprintf(f, "; %zu documents for other log sources skipped", rs->skipped_logsource);
	if (rs->overridden)
		fprintf(f, "; %zu rules overridden by a later directory", rs->overridden);
	fprintf(f, "\n");
}

int main(int argc, char **argv)
{
	struct config *cfg = NULL;
	struct ruleset *rs = NULL;
	struct args a;
	int status;

	if (parse_args(argc, argv, &a) < 0)
		return 2;

	if (strcmp(a.command, "replay") == 0) {
		struct replay_options o = { 0 };

		if (a.npaths == 0) {
			fprintf(stderr, "trailwatch replay: give at least one file or directory\n");
			return 2;
		}
		status = load(&a, a.config, a.sinks ? LOAD_RUN : LOAD_REPLAY, &cfg, &rs);
		if (status)
			goto out;
		o.paths = (const char *const *)a.paths;
		o.npaths = a.npaths;
		o.jobs = a.jobs;
		o.sinks = a.sinks;
		o.out = stdout;
		status = replay_run(cfg, rs, &o);
	} else if (strcmp(a.command, "check") == 0 || strcmp(a.command, "test") == 0) {
		if (a.npaths) {
			fprintf(stderr, "trailwatch %s: unexpected argument '%s'\n", a.command, a.paths[0]);
			return 2;
		}
		status = load(&a, a.config, strcmp(a.command, "check") == 0 ? LOAD_CHECK : LOAD_REPLAY, &cfg, &rs);
		if (status)
			goto out;
		if (strcmp(a.command, "check") == 0) {
			if (a.config && cfg->nsources == 0)
				fprintf(stderr, "%s: warning: no sources configured: 'trailwatch run' refuses this file "
					"('replay' and 'test' need none)\n", a.config);
			printf("%s: ok\n", cfg->path ? cfg->path : "built-in configuration");
			rule_summary(rs, stdout);
		} else {
			status = ruletest_run(cfg, rs, stdout);
		}
	} else if (strcmp(a.command, "run") == 0) {
		if (a.npaths) {
			fprintf(stderr, "trailwatch run: unexpected argument '%s'\n", a.paths[0]);
			return 2;
		}
		struct service_loader loader = { reload_run, &a };

		a.run_config = a.config ? a.config : CONFIG_DEFAULT_PATH;
		status = load(&a, a.run_config, LOAD_RUN, &cfg, &rs);
		if (status)
			goto out;
		status = service_run(cfg, rs, &loader);	/* it frees them */
		cfg = NULL;
		rs = NULL;
	} else {
		fprintf(stderr, "trailwatch: unknown command '%s'\n", a.command);
		usage(stderr);
		status = 2;
	}
out:
	ruleset_free(rs);
	config_free(cfg);
	return status;
}
