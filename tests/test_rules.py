"""Rule loading, `trailwatch check` and `trailwatch test`.

- tests/engine/rules: one small rule per feature (every modifier, condition
  form, correlation type, filters, throttling) with true and false events;
  `trailwatch test` must pass all of them.
- tests/engine/must-fail: wrong expectations; `trailwatch test` must fail
  exactly those tests (the runner can fail).
- tests/engine/errors: broken rules whose first lines list the exact
  `line:column: message` errors expected; `check` must report exactly those.
"""
import os
import re
import unittest

import twtest

from twtest import HERE, ROOT, TempDir, tw

ENGINE = os.path.join(HERE, "engine")
ERRORS = os.path.join(ENGINE, "errors")


class EngineCases(unittest.TestCase):
    def test_engine_cases_pass(self):
        p = tw("test", "-c", os.path.join(ENGINE, "config.yaml"), "-r", os.path.join(ENGINE, "rules"))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        m = re.search(r"^(\d+) passed, (\d+) failed$", p.stdout, re.M)
        self.assertIsNotNone(m, p.stdout)
        self.assertEqual(int(m.group(2)), 0)
        self.assertGreaterEqual(int(m.group(1)), 150, "engine cases went missing")

    def test_wrong_expectations_fail(self):
        p = tw("test", "-r", os.path.join(ENGINE, "must-fail"))
        self.assertEqual(p.returncode, 1)
        failed = sorted(re.findall(r"FAIL \S+ test (\S+):", p.stdout))
        self.assertEqual(failed, ["bad-json", "wrong-count", "wrong-false", "wrong-reasons", "wrong-true"], p.stdout)
        self.assertIn("2 passed, 5 failed", p.stdout)
        self.assertIn('test wrong-reasons: expected reasons ["another bucket"], got ["the production bucket prod"]', p.stdout)
        self.assertRegex(p.stdout, r"must-fail/wrong_expectations.yml:\d+: FAIL .* test wrong-count: expected 2 alerts, got 1")
        self.assertRegex(p.stdout, r"test bad-json: the test event is not valid CloudTrail JSON: .*: record 0 at byte 42: expected a member name")


def expected_errors(path):
    with open(path) as f:
        return [l[len("# expect: "):].rstrip("\n") for l in f if l.startswith("# expect: ")]


class RuleErrors(unittest.TestCase):
    def test_all_error_files_at_once(self):
        """Every error of every file is reported in one run, then check fails once."""
        p = tw("check", "-r", ERRORS)
        self.assertEqual(p.returncode, 1)
        total = sum(len(expected_errors(os.path.join(ERRORS, f))) for f in os.listdir(ERRORS))
        lines = [l for l in p.stderr.splitlines() if not l.startswith("trailwatch:")]
        self.assertEqual(len(lines), total, p.stderr)
        self.assertIn(f"trailwatch: {total} errors in the rules", p.stderr)

    def test_shipped_rules_check(self):
        p = tw("check")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("built-in configuration: ok", p.stdout)


def _make(name):
    def test(self):
        path = os.path.join(ERRORS, name)
        want = expected_errors(path)
        self.assertTrue(want, "no '# expect:' lines")
        p = tw("check", "-r", path)
        self.assertEqual(p.returncode, 1, p.stdout)
        got = [l for l in p.stderr.splitlines() if not l.startswith("trailwatch:")]
        self.assertEqual(len(got), len(want), p.stderr)
        for w in want:
            prefix = f"{path}:{w}"
            self.assertTrue(any(g.startswith(prefix) for g in got), f"missing: {prefix}\ngot:\n" + "\n".join(got))
    return test


for _name in sorted(os.listdir(ERRORS)):
    setattr(RuleErrors, "test_errors_" + _name[:-4], _make(_name))


class Config(unittest.TestCase):
    def check_config(self, text):
        with TempDir() as d:
            path = os.path.join(d, "trailwatch.yaml")
            with open(path, "w") as f:
                f.write(text)
            p = tw("check", "-c", path)
            return path, p

    def test_unknown_keys_and_bad_values(self):
        path, p = self.check_config(
            "rules: [builtin]\n"
            "limits:\n"
            "  max_record_size: 1 MiB\n"
            "  max_json_depht: 10\n"
            "correlation:\n"
            "  lateness: soon\n"
            "log_level: loud\n"
            "alerts: []\n")
        self.assertEqual(p.returncode, 1)
        err = p.stderr
        self.assertIn(f"{path}:3:20: 'limits.max_record_size' must be a size", err)
        self.assertIn(f"{path}:4:3: unknown key 'limits.max_json_depht'", err)
        self.assertIn(f"{path}:6:13: 'correlation.lateness' must be a duration", err)
        self.assertIn(f"{path}:7:12: 'log_level' must be error, warning, info or debug", err)
        self.assertIn(f"{path}:8:1: unknown key 'alerts'", err)

    def test_good_config(self):
        path, p = self.check_config(
            "rules: [builtin]\n"
            "lists:\n  corporate_cidrs: [203.0.113.0/24]\n  empty:\n"
            "limits: {max_record_size: 2MiB, max_json_depth: 32, max_object_size: 64MiB, max_decompressed_size: 512MiB}\n"
            "correlation: {max_groups: 1000, max_entries_per_group: 5000, lateness: 20m}\n"
            "log_level: warning\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"{path}: ok", p.stdout)

    def test_sources(self):
        path, p = self.check_config(
            "state_dir: /var/lib/tw\n"
            "sources:\n"
            "  - type: s3\n"
            "    bucket: trail\n"
            "    region: us-east-1\n"
            "    poll_intervall: 60s\n"
            "    accounts: [12345]\n"
            "    start_time: yesterday\n"
            "    path: /tmp\n"
            "  - type: s3\n"
            "    bucket: other\n"
            "  - type: ftp\n"
            "  - type: dir\n"
            "    bucket: x\n"
            "    path: /srv/inbox\n"
            "  - type: s3\n"
            "    bucket: b\n"
            "    region: eu-west-1\n"
            "    external_id: x\n"
            "    parallel: 100\n")
        self.assertEqual(p.returncode, 1)
        err = p.stderr
        self.assertIn(f"{path}:6:5: unknown key 'poll_intervall' in a source", err)
        self.assertIn(f"{path}:7:16: '12345' is not an AWS account id (12 digits)", err)
        self.assertIn(f"{path}:8:17: 'start_time' must be a time such as 2026-11-20T00:00:00Z", err)
        self.assertIn(f"{path}:9:5: 'path' does not apply to a source of type s3", err)
        self.assertIn(f"{path}:10:5: an s3 source needs 'bucket' and 'region'", err)
        self.assertIn(f"{path}:12:11: a source needs 'type: s3' or 'type: dir'", err)
        self.assertIn(f"{path}:14:5: 'bucket' does not apply to a source of type dir", err)
        self.assertIn(f"{path}:20:15: 'parallel' must be a whole number from 1 to 64", err)
        path, p = self.check_config(
            "sources:\n"
            "  - {type: s3, bucket: trail, region: us-east-1, role_arn: 'arn:aws:iam::111122223333:role/r',\n"
            "     external_id: soc, accounts: ['111122223333'], regions: [us-east-1], lookback: 20m,\n"
            "     start_time: 2026-11-20T00:00:00Z, endpoint: 'https://s3.example', path_style: true}\n"
            "  - {type: dir, path: /srv/inbox}\n")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_sinks(self):
        path, p = self.check_config(
            "sinks:\n"
            "  - {type: slack}\n"
            "  - {type: webhook, url: 'https://x', url_file: /f}\n"
            "  - {type: pager}\n"
            "  - {type: file, path: /tmp/a, url: 'https://x'}\n"
            "  - {type: stdout, min_severity: severe}\n"
            "  - {type: journal, color: red}\n"
            "  - {type: journal}\n"
            "  - {type: journal}\n"
            "  - {type: pagerduty, routing_key_credential: pd, name: 'a b'}\n")
        self.assertEqual(p.returncode, 1)
        err = p.stderr
        self.assertIn(f"{path}:2:5: a slack sink needs exactly one of url, url_file and url_credential", err)
        self.assertIn(f"{path}:3:5: a webhook sink needs exactly one of url, url_file and url_credential", err)
        self.assertIn(f"{path}:4:12: a sink needs a type: slack, webhook, pagerduty, teams, journal, stdout or file", err)
        self.assertIn(f"{path}:5:32: 'url' does not apply to a sink of type file", err)
        self.assertIn(f"{path}:6:34: 'min_severity' must be informational, low, medium, high or critical", err)
        self.assertIn(f"{path}:7:21: unknown key 'color' in a sink", err)
        self.assertIn(f"{path}:8:5: two sinks are named 'journal' (give one a 'name')", err)
        self.assertEqual(err.count("two sinks are named"), 2)
        self.assertIn(f"{path}:10:5: sink name 'a b': at most 64 printable characters, no space or '/'", err)
        # check -c also reads the secret files run would read (docs/config.md):
        # this one must exist
        with TempDir() as d:
            hmac = os.path.join(d, "hmac")
            with open(hmac, "w") as f:
                f.write("s3cr3t\n")
            path, p = self.check_config(
                "sinks:\n"
                "  - {name: soc, type: slack, url_credential: slack-url, min_severity: medium, rules: ['attack.*']}\n"
                f"  - {{type: webhook, url: 'https://soar.example', hmac_secret_file: {hmac}, headers: {{X-Team: soc}}}}\n"
                "  - {type: pagerduty, routing_key: abc, min_severity: high, exclude_rules: [dfadee20-*]}\n"
                "  - {type: teams, url: 'https://teams.example'}\n"
                f"  - {{type: file, path: {d}/trailwatch.jsonl}}\n"
                "  - {type: journal}\n"
                "  - {type: stdout}\n"
                "spool: {max_size: 64MiB, remember: 3d}\n")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_every_key_documented(self):
        """Each key of config.c's tables is in docs/config.md and in the
        configuration's man page (the scdoc source of trailwatch.yaml(5)), in
        bold as written in the file: `*limits.max_object_size*`, `*bucket*`."""
        src = open(os.path.join(twtest.ROOT, "daemon", "config.c")).read()
        keys = re.findall(r'\{ "([a-z_.]+)", (?:KEY_(?!SECTION)|SK_)', src)
        self.assertGreater(len(keys), 20)
        doc = open(os.path.join(twtest.ROOT, "docs", "config.md")).read()
        man = open(os.path.join(twtest.ROOT, "man", "trailwatch.yaml.5.scd")).read().replace("\\_", "_")
        for k in keys + ["type"]:
            self.assertIn(f"`{k}`", doc)
            self.assertTrue(f"*{k}*" in man, f"{k} is not in man/trailwatch.yaml.5.scd")
        # And the other way: every key in the first column of docs/config.md's tables.
        documented = [k for cell in re.findall(r"(?m)^\| (`[^|]*) \|", doc) for k in re.findall(r"`([a-z_.]+)`", cell)]
        self.assertGreater(len(documented), len(keys) // 2)
        for k in documented:
            self.assertTrue(f"*{k}*" in man, f"{k} is not in man/trailwatch.yaml.5.scd")

    def test_missing_config(self):
        p = tw("check", "-c", "/nonexistent/trailwatch.yaml")
        self.assertEqual(p.returncode, 1)
        self.assertIn("/nonexistent/trailwatch.yaml: cannot read the configuration: No such file or directory", p.stderr)

    def test_missing_rule_dir(self):
        p = tw("check", "-r", "/nonexistent/rules.d")
        self.assertEqual(p.returncode, 1)
        self.assertIn("/nonexistent/rules.d: cannot read rules:", p.stderr)


class Overrides(unittest.TestCase):
    def test_later_directory_overrides_by_id(self):
        rule = ("title: {t}\nid: 00000000-0000-4000-8000-0000000c0001\n"
                "logsource: {{product: aws, service: cloudtrail}}\n"
                "detection: {{a: {{eventName: {e}}}, condition: a}}\n")
        with TempDir() as d:
            for sub, t, e in (("a", "shipped", "X"), ("b", "site copy", "Y")):
                os.makedirs(os.path.join(d, sub))
                with open(os.path.join(d, sub, "r.yml"), "w") as f:
                    f.write(rule.format(t=t, e=e))
            from twtest import record, write_log, alerts_of
            log = write_log(os.path.join(d, "log.json"), [record(eventName="X"), record(eventName="Y")], gz=False)
            p = tw("replay", "-r", os.path.join(d, "a"), "-r", os.path.join(d, "b"), log)
            self.assertEqual(p.returncode, 0, p.stderr)
            alerts = alerts_of(p.stdout)
            self.assertEqual([(a["title"], a["event_name"]) for a in alerts], [("site copy", "Y")])
            c = tw("check", "-r", os.path.join(d, "a"), "-r", os.path.join(d, "b"))
            self.assertIn("1 rules overridden by a later directory", c.stdout)


class ShippedPack(unittest.TestCase):
    """The pack in rules.d: its own tests pass, every rule has a true and a
    false test, and docs/rule-pack.md describes every rule."""

    PACK = os.path.join(ROOT, "rules.d")

    def documents(self):
        for name in sorted(os.listdir(self.PACK)):
            with open(os.path.join(self.PACK, name)) as f:
                for doc in re.split(r"(?m)^---$", f.read()):
                    m = re.search(r"(?m)^id: (\S+)", doc)
                    if m:
                        yield name, m.group(1), doc

    def test_pack_tests_pass(self):
        p = tw("test", "-r", self.PACK)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        m = re.search(r"(\d+) passed, 0 failed", p.stdout)
        self.assertTrue(m and int(m.group(1)) >= 100, p.stdout)

    def test_every_rule_has_true_and_false_tests(self):
        docs = list(self.documents())
        # A correlation that only feeds another one (a chain) never alerts on
        # its own: the outer correlation's tests are its tests.
        chained = set()
        for _, _, doc in docs:
            if re.search(r"(?m)^correlation:", doc):
                m = re.search(r"(?ms)^    rules:\n((?:        - \S+\n)+)", doc)
                chained.update(re.findall(r"- (\S+)", m.group(1)) if m else [])
        for name, rid, doc in docs:
            if re.search(r"(?m)^filter:", doc):
                continue
            own = re.search(r"(?m)^name: (\S+)", doc)
            if re.search(r"(?m)^correlation:", doc) and own and own.group(1) in chained:
                continue
            with self.subTest(rule=rid, file=name):
                true = re.search(r"match: true|alerts: [1-9]", doc)
                false = re.search(r"match: false|alerts: 0\b", doc)
                self.assertTrue(true and false, "needs a test that alerts and one that does not")

    def test_every_rule_is_documented(self):
        with open(os.path.join(ROOT, "docs", "rule-pack.md")) as f:
            doc = f.read()
        for name, rid, _ in self.documents():
            self.assertIn(rid, doc, name)
