"""The "lower" faults of issue 14, item 12: each once passed unnoticed.

- Loading rules was quadratic: every rule was compared with every rule
  before it (the duplicate-id check, ruleset_find), so 10k rules took 0.4 s
  and 100k took about a minute (50k: 9 s; 25k overriding 25k: 9 s).
  Now ids and names are looked up in a hash: both load in well under a
  second here (the bound below is 5 s, room for a sanitizer build).
- A backtracking regular expression ((a+)+$ on 30 a's and a b) cost 12 ms a
  record, and PCRE2's match limit made it "no match" without a word.  Now
  `check` warns at the pattern's line:column, each match is bounded by a
  limit that grows with the value's length (0.1 ms here), and the matches
  stopped there are counted per rule: in replay's summary, in a warning of
  `run` (at most once a minute) and in its exit summary.
- A secret written where a key goes (a webhook URL as a key of the sink, an
  HMAC secret at the indentation of `hmac_secret:`) was echoed by "unknown
  key '...'" into the terminal and the journal.  A key that is not a key
  name (lower-case letters and '_') is now described by its place and
  length, never shown.
- `trailwatch check -c` passed what `run` then refused: a sink URL that is
  not http(s), a url_file that is missing, a systemd credential missing
  from $CREDENTIALS_DIRECTORY, a state_dir that cannot be created.  And
  both passed CR/LF in a header value, which run sent as it was: a header
  injection.  Now the configuration refuses bad URLs and header names and
  values at their line:column, and check (and run, before it opens
  anything) reads every secret file and credential as run does and checks
  the state_dir, without the network.
- The exit summary of `run` ("sink X: N sent, ...", "SOURCE: N polls, N
  files, ...") counted only since the last reload: SIGHUP starts new sinks
  and sources from zero.  Their counts are now kept by name at each reload
  and added up at exit, as are the dropped alerts and the regex limit hits.
"""
import os
import signal
import tempfile
import time
import unittest
import uuid

import twtest
from test_run import Runner
from test_service import NotifySocket
from twtest import TempDir, tw

BT_RULE = """title: Backtracking
id: 7a1e0000-0000-4000-8000-000000000001
logsource: {product: aws, service: cloudtrail}
detection:
    selection:
        requestParameters.bucketName|re: '(a+)+$'
    condition: selection
level: low
"""

DELETE_RULE = """title: Bucket deleted
id: 7a1e0000-0000-4000-8000-000000000002
logsource: {product: aws, service: cloudtrail}
detection:
    selection: {eventSource: s3.amazonaws.com, eventName: DeleteBucket}
    condition: selection
level: high
"""

ALMOST = "a" * 30 + "b"        # (a+)+$ backtracks through 2^30 ways before it fails


def delete_bucket(i, bucket=None):
    return twtest.record(eventName="DeleteBucket", eventID="40000000-0000-4000-8000-%012d" % i,
                         requestParameters={"bucketName": bucket or "victim-%d" % i, "Host": "s3.amazonaws.com"})


def write_rules(d, n, per_file=1000, level="low", start=0):
    """n trivial detection rules, per_file documents to a file."""
    os.makedirs(d, exist_ok=True)
    for f in range(start, start + n, per_file):
        docs = []
        for i in range(f, min(start + n, f + per_file)):
            docs.append("title: Rule %d\nid: %s\nlogsource: {product: aws, service: cloudtrail}\n"
                        "detection:\n    selection: {eventName: Op%d}\n    condition: selection\nlevel: %s\n"
                        % (i, uuid.UUID(int=i + 1), i, level))
        with open(os.path.join(d, "r%06d.yml" % f), "w") as fh:
            fh.write("---\n".join(docs))


class RuleLoadScale(unittest.TestCase):
    BOUND = 5.0     # seconds; the quadratic loader took 9-10 s for 50k rules

    def test_50k_rules_load_in_bounded_time(self):
        with TempDir() as d:
            write_rules(d, 50000)
            t = time.monotonic()
            p = tw("check", "-r", d, timeout=300)
            took = time.monotonic() - t
            self.assertEqual(p.returncode, 0, p.stderr[-2000:])
            self.assertIn("50000 detection rules", p.stdout)
            self.assertLess(took, self.BOUND, "50k rules took %.1fs to load" % took)

    def test_25k_rules_overriding_25k_in_bounded_time(self):
        # a later directory replaces every rule of an earlier one (same ids)
        with TempDir() as d:
            a, b = os.path.join(d, "a"), os.path.join(d, "b")
            write_rules(a, 25000)
            write_rules(b, 25000, level="high")
            t = time.monotonic()
            p = tw("check", "-r", a, "-r", b, timeout=300)
            took = time.monotonic() - t
            self.assertEqual(p.returncode, 0, p.stderr[-2000:])
            self.assertIn("25000 detection rules", p.stdout)
            self.assertIn("25000 rules overridden by a later directory", p.stdout)
            self.assertLess(took, self.BOUND, "25k overriding 25k took %.1fs" % took)
            # the later copy is the one that alerts, once
            with TempDir() as logs:
                twtest.write_log(os.path.join(logs, "a.json"), [twtest.record(eventName="Op1234")], gz=False)
                p = tw("replay", "-r", a, "-r", b, logs, timeout=300)
                alerts = twtest.alerts_of(p.stdout)
                self.assertEqual([(x["rule"], x["severity"]) for x in alerts],
                                 [(str(uuid.UUID(int=1235)), "high")], p.stderr[-2000:])

    def test_duplicates_still_refused_and_overrides_still_apply(self):
        with TempDir() as d:
            a, b = os.path.join(d, "a"), os.path.join(d, "b")
            write_rules(a, 3000)
            write_rules(b, 10, start=2990)
            # a duplicate id in the same directory, far from the first one
            with open(os.path.join(a, "zz-dup.yml"), "w") as f:
                f.write("title: again\nid: %s\nlogsource: {product: aws, service: cloudtrail}\n"
                        "detection: {s: {eventName: X}, condition: s}\n" % uuid.UUID(int=1))
            p = tw("check", "-r", a, "-r", b)
            self.assertEqual(p.returncode, 1)
            self.assertRegex(p.stderr, r"zz-dup\.yml:1:1: duplicate rule id '00000000-0000-0000-0000-000000000001' "
                                       r"\(also in .*/a/r000000\.yml:1\)")
            os.unlink(os.path.join(a, "zz-dup.yml"))
            p = tw("check", "-r", a, "-r", b)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("3000 detection rules", p.stdout)
            self.assertIn("10 rules overridden", p.stdout)


class Backtracking(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-lower-")
        self.tmp = self._tmp.name
        self.rules = os.path.join(self.tmp, "rules")
        os.makedirs(self.rules)
        with open(os.path.join(self.rules, "bt.yml"), "w") as f:
            f.write(BT_RULE)
        self.daemon = None

    def tearDown(self):
        if self.daemon:
            self.daemon.stop(signal.SIGKILL)
        self._tmp.cleanup()

    def test_check_warns_at_the_pattern(self):
        p = tw("check", "-r", self.rules)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stderr, r"bt\.yml:6:42: warning: the regular expression can take time exponential "
                                   r"in the value's length \(a repeated group that can itself repeat")
        # the shipped pack has no such pattern
        p = tw("check")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("warning", p.stderr)

    def test_replay_bounds_counts_and_reports(self):
        n = 500
        logs = os.path.join(self.tmp, "logs")
        twtest.write_log(os.path.join(logs, "a.json"), [delete_bucket(i, ALMOST) for i in range(n)] +
                         [delete_bucket(n, "aaaa")], gz=False)
        t = time.monotonic()
        p = tw("replay", "-r", self.rules, logs)
        took = time.monotonic() - t
        self.assertEqual(p.returncode, 0, p.stderr)
        # 12 ms a record before (6 s); well under 1 ms now
        self.assertLess(took, 2.0, "%d records took %.1fs" % (n, took))
        # a value that matches still matches
        self.assertEqual([a["bucket"] for a in twtest.alerts_of(p.stdout)], ["aaaa"])
        self.assertIn("warning: %d regular-expression matches stopped at the match limit and counted as no match "
                      "(7a1e0000-0000-4000-8000-000000000001: %d)" % (n, n), p.stderr)

    def test_run_warns_and_the_exit_summary_counts(self):
        inbox = os.path.join(self.tmp, "inbox")
        os.makedirs(inbox)
        with open(os.path.join(self.rules, "delete.yml"), "w") as f:
            f.write(DELETE_RULE)
        config = os.path.join(self.tmp, "trailwatch.yaml")
        with open(config, "w") as f:
            f.write(f"state_dir: {self.tmp}/state\nrules: [{self.rules}]\n"
                    f"sources:\n  - {{type: dir, path: {inbox}, poll_interval: 1s}}\n")
        env = dict(os.environ)
        env.pop("JOURNAL_STREAM", None)
        self.daemon = Runner(config, env)
        twtest.drop_log(inbox, 0, [delete_bucket(i, ALMOST) for i in range(3)])
        end = time.monotonic() + 20
        while time.monotonic() < end and len(self.daemon.alerts()) < 3:
            time.sleep(0.1)
        self.assertEqual(len(self.daemon.alerts()), 3, self.daemon.stderr())   # DeleteBucket, not (a+)+$
        end = time.monotonic() + 5
        while time.monotonic() < end and "stopped at the match limit" not in self.daemon.stderr():
            time.sleep(0.1)
        self.assertEqual(self.daemon.stop(), 0, self.daemon.stderr())
        err = self.daemon.stderr()
        self.assertIn("bt.yml:6:42: warning: the regular expression can take time exponential", err)
        self.assertIn("warning: 3 more regular-expression matches stopped at the match limit and counted as no "
                      "match: the pattern backtracks too much (by rule, since the rules were loaded: "
                      "7a1e0000-0000-4000-8000-000000000001: 3)", err)
        self.assertIn("warning: 3 regular-expression matches stopped at the match limit in all", err)


class SecretAsKey(unittest.TestCase):
    def check(self, text):
        with TempDir() as d:
            path = os.path.join(d, "trailwatch.yaml")
            with open(path, "w") as f:
                f.write(text)
            p = tw("check", "-c", path)
            return path, p

    def test_url_written_as_a_key_of_a_sink(self):
        path, p = self.check("sinks:\n"
                             "  - {type: slack, url: 'https://hooks.slack.com/services/T0/B0/public',\n"
                             "     'https://hooks.slack.com/services/T1111/B2222/SeCrEtToKeN42': x}\n")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertNotIn("SeCrEtToKeN42", p.stderr)
        self.assertNotIn("T1111", p.stderr)
        self.assertIn(f"{path}:3:6: unknown key in a sink (58 characters, not shown: it is not a key name, "
                      "and may be a secret or a URL written as a key)", p.stderr)

    def test_hmac_secret_one_line_off(self):
        path, p = self.check("sinks:\n"
                             "  - type: webhook\n"
                             "    url: https://example.com/hook\n"
                             "    hmac_secret:\n"
                             "    9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08:\n")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertNotIn("9f86d081", p.stderr)
        self.assertIn(f"{path}:4:17: 'hmac_secret' must be a single value", p.stderr)
        self.assertIn(f"{path}:5:5: unknown key in a sink (64 characters, not shown", p.stderr)

    def test_at_the_top_and_in_a_section(self):
        path, p = self.check("xoxb-1234-SECRET: 1\nlimits:\n  ghp_SeCrEt99: 2\n  max_json_depht: 3\n")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertNotIn("SECRET", p.stderr)
        self.assertNotIn("SeCrEt", p.stderr)
        self.assertIn(f"{path}:1:1: unknown key (16 characters, not shown", p.stderr)
        self.assertIn(f"{path}:3:3: unknown key in 'limits' (12 characters, not shown", p.stderr)
        # a misspelt key name is still shown: that is what helps
        self.assertIn(f"{path}:4:3: unknown key 'limits.max_json_depht'", p.stderr)

    def test_duplicate_secret_key(self):
        """A duplicate key is named when it is a field or key name, never when it
        may be a secret (this echoed the webhook URL before)."""
        path, p = self.check("sinks:\n"
                             "  - type: webhook\n"
                             "    https://hooks.slack.com/services/T1111/B2222/SeCrEtToKeN42: 1\n"
                             "    https://hooks.slack.com/services/T1111/B2222/SeCrEtToKeN42: 1\n"
                             "limits:\n  ghp_SeCrEt99: 1\n  ghp_SeCrEt99: 2\n")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertNotIn("SeCrEt", p.stderr)
        self.assertIn(f"{path}:4:5: duplicate key (58 characters, not shown: it is not a field or key name, "
                      "and may be a secret or a URL written as a key; first at line 3)", p.stderr)
        self.assertIn(f"{path}:7:3: duplicate key (12 characters, not shown", p.stderr)
        path, p = self.check("limits:\n  max_json_depth: 3\n  max_json_depth: 4\n")
        self.assertIn(f"{path}:3:3: duplicate key 'max_json_depth' (first at line 2)", p.stderr)


class CheckAsRun(unittest.TestCase):
    """`check -c` refuses what `run` refuses, at the place in the file."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-lower-")
        self.tmp = self._tmp.name
        self.config = os.path.join(self.tmp, "trailwatch.yaml")
        self.creds = os.path.join(self.tmp, "creds")
        os.makedirs(self.creds)

    def tearDown(self):
        self._tmp.cleanup()

    def secret(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def check(self, text, env_extra=None, command="check"):
        with open(self.config, "w") as f:
            f.write(text)
        env = dict(os.environ)
        env.pop("CREDENTIALS_DIRECTORY", None)
        env.pop("JOURNAL_STREAM", None)
        env.update(env_extra or {})
        return tw(command, "-c", self.config, "-r", os.path.join(self.tmp, "none.yml"), env=env, timeout=60)

    def setUpRules(self):
        with open(os.path.join(self.tmp, "none.yml"), "w") as f:
            f.write(DELETE_RULE)

    def test_sink_url_not_http(self):
        self.setUpRules()
        ftp = self.secret("ftp-url", "ftp://files.example/drop\n")
        p = self.check("sinks:\n"
                       "  - {name: a, type: slack, url: 'ftp://hooks.example/T0/B0/SeCrEt1'}\n"
                       "  - {name: b, type: pagerduty, routing_key: k, endpoint: 'gopher://pd.example'}\n"
                       f"  - {{name: c, type: webhook, url_file: {ftp}}}\n")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"{self.config}:2:33: sink a: the url must start with https:// (or http://)", p.stderr)
        self.assertIn(f"{self.config}:3:58: sink b: the endpoint must start with https:// (or http://)", p.stderr)
        self.assertNotIn("SeCrEt1", p.stderr)
        # config errors come first; with those fixed, the file's content
        p = self.check(f"sinks:\n  - {{name: c, type: webhook, url_file: {ftp}}}\n")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"{self.config}:2:40: sink c: the url in url_file '{ftp}' must start with https:// (or http://)",
                      p.stderr)
        self.assertNotIn("files.example", p.stderr)

    def test_missing_url_file_and_credential(self):
        self.setUpRules()
        missing = os.path.join(self.tmp, "no-such-url")
        text = ("sinks:\n"
                f"  - {{name: a, type: webhook, url_file: {missing}}}\n"
                "  - {name: b, type: slack, url_credential: slack-url}\n")
        p = self.check(text, {"CREDENTIALS_DIRECTORY": self.creds})
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"{self.config}:2:40: sink a: url: {missing}: no such file", p.stderr)
        self.assertIn(f"{self.config}:3:44: sink b: url: {self.creds}/slack-url: no such file", p.stderr)
        self.assertIn("trailwatch: 2 errors in the configuration", p.stderr)
        # run says the same, at the same places, before it opens anything
        p = self.check(text, {"CREDENTIALS_DIRECTORY": self.creds}, command="run")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"{self.config}:2:40: sink a: url: {missing}: no such file", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "state")))
        # given both, check passes (and never reaches for the network)
        self.secret("no-such-url", "https://192.0.2.1/hook\n")
        with open(os.path.join(self.creds, "slack-url"), "w") as f:
            f.write("https://hooks.slack.com/services/T0/B0/x\n")
        p = self.check(text, {"CREDENTIALS_DIRECTORY": self.creds})
        self.assertEqual(p.returncode, 0, p.stderr)
        # nothing but what run would also refuse: the file has no sources
        self.assertEqual(p.stderr, f"{self.config}: warning: no sources configured: 'trailwatch run' refuses "
                                   "this file ('replay' and 'test' need none)\n")
        # outside systemd a credential cannot be looked for: said, not an error
        p = self.check(text)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"{self.config}:3:44: warning: sink b: url_credential 'slack-url' not checked: "
                      "$CREDENTIALS_DIRECTORY is not set", p.stderr)

    def test_state_dir_that_cannot_be_created(self):
        self.setUpRules()
        blocker = self.secret("a-file", "")
        p = self.check(f"log_level: info\nstate_dir: {blocker}/state\n")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"{self.config}:2:12: state_dir: {blocker}: not a directory", p.stderr)
        p = self.check(f"state_dir: {self.tmp}/new/state\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "new")))     # check creates nothing
        # root may write in /proc by access(), but no directory can be made there (run refused it)
        p = self.check("state_dir: /proc/no-such/state\n")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"{self.config}:1:12: state_dir: /proc: cannot create /proc/no-such/state in it", p.stderr)

    def test_line_breaks_and_nul_in_headers_are_refused(self):
        self.setUpRules()
        text = ("sinks:\n"
                "  - type: webhook\n"
                "    url: https://soar.example/hook\n"
                "    headers:\n"
                "      X-Team: soc\n"
                "      X-Token: \"t0ken\\r\\nX-Injected: yes\"\n"
                "      X-Other: \"a\\nb\"\n"
                "      X-Nul: \"a\\0b\"\n"
                "      \"X-Bad: name\": v\n")
        for command in ("check", "run"):
            p = self.check(text, command=command)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(f"{self.config}:6:16: sink webhook: the value of header 'X-Token' has a line break, NUL or "
                          "other control character", p.stderr)
            self.assertIn(f"{self.config}:7:16: sink webhook: the value of header 'X-Other'", p.stderr)
            self.assertIn(f"{self.config}:8:14: sink webhook: the value of header 'X-Nul'", p.stderr)
            self.assertIn(f"{self.config}:9:7: sink webhook: a header name must be letters, digits", p.stderr)
            self.assertNotIn("t0ken", p.stderr)
            self.assertNotIn("X-Injected", p.stderr)


class TotalsAcrossReloads(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-lower-")
        self.tmp = self._tmp.name
        self.inbox = os.path.join(self.tmp, "inbox")
        self.rules = os.path.join(self.tmp, "rules")
        os.makedirs(self.inbox)
        os.makedirs(self.rules)
        for name, text in (("bt.yml", BT_RULE), ("delete.yml", DELETE_RULE)):
            with open(os.path.join(self.rules, name), "w") as f:
                f.write(text)
        self.config = os.path.join(self.tmp, "trailwatch.yaml")
        self.archive = os.path.join(self.tmp, "alerts.jsonl")
        with open(self.config, "w") as f:
            f.write(f"state_dir: {self.tmp}/state\nrules: [{self.rules}]\n"
                    f"sources:\n  - {{type: dir, path: {self.inbox}, poll_interval: 1s}}\n"
                    f"sinks:\n  - {{type: stdout}}\n  - {{name: archive, type: file, path: {self.archive}}}\n")
        self.sock = NotifySocket(os.path.join(self.tmp, "notify.sock"))
        self.daemon = None

    def tearDown(self):
        if self.daemon:
            self.daemon.stop(signal.SIGKILL)
        self.sock.close()
        self._tmp.cleanup()

    def wait_alerts(self, n, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(self.daemon.alerts()) < n and self.daemon.p.poll() is None:
            time.sleep(0.1)
        self.assertEqual(len(self.daemon.alerts()), n, self.daemon.stderr())

    def test_exit_summary_covers_both_sides_of_a_reload(self):
        env = dict(os.environ)
        env.pop("JOURNAL_STREAM", None)
        env["NOTIFY_SOCKET"] = self.sock.path
        self.daemon = Runner(self.config, env)
        self.sock.wait_for("READY")
        twtest.drop_log(self.inbox, 0, [delete_bucket(1), delete_bucket(2, ALMOST)])
        self.wait_alerts(2)
        self.daemon.p.send_signal(signal.SIGHUP)
        self.sock.wait_for("READY", n=2)
        twtest.drop_log(self.inbox, 1, [delete_bucket(3)])
        self.wait_alerts(3)
        end = time.monotonic() + 10
        while time.monotonic() < end and os.path.getsize(self.archive) < 3 * 100:
            time.sleep(0.1)
        time.sleep(0.5)
        self.assertEqual(self.daemon.stop(), 0, self.daemon.stderr())
        err = self.daemon.stderr()
        self.assertIn("reloaded: 1 source", err)
        self.assertIn("sink stdout: 3 sent, 0 retried", err)
        self.assertIn("sink archive: 3 sent, 0 retried", err)
        self.assertRegex(err, r"%s: \d+ polls, 2 files, 0 failed" % self.inbox)
        self.assertIn("1 regular-expression match stopped at the match limit in all", err)
        # each sink and source once
        self.assertEqual(err.count("sink stdout: "), 1, err)
        self.assertEqual(err.count("%s: " % self.inbox) - err.count("%s: not read" % self.inbox), 1, err)


if __name__ == "__main__":
    unittest.main()
