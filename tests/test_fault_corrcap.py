"""A correlation whose table of groups is full (correlation.max_groups).

Whoever can assume a role chooses its session names, and so the group-by
values of a rule grouped by userIdentity.arn: a flood of distinct sessions
fills the table on purpose.  At the cap the correlator makes room by evicting
the group that counts least (docs/rules.md, "At the limit"), so a planted
exfiltration of 6 GiB by one session among 2,000 sessions of 1 KiB each
still alerts (at the fifth GiB, the rule's threshold), in `replay` and in `run`, and the same every time.  `run` says
so: an error naming the rule the first time its table is full (not once per
object), the evictions in STATUS= and in the exit summary.

The cap is 50 here (correlation.max_groups) so that a flood of 2,000 groups
is enough.

SeenBeforeCap: the same for the values a seen_before rule remembers (see
its docstring).
"""
import os
import re
import signal
import tempfile
import time
import unittest

import twtest
from test_run import Runner
from test_service import NotifySocket

CAP = 50
SESSIONS = 2000
EXFIL_RULE = "6d427935-a5bd-4dce-b391-2f49fb2f96e5"
EXFIL_ARN = "arn:aws:sts::111122223333:assumed-role/app/exfil"
GIB = 1 << 30
EVICTED = SESSIONS + 2 - CAP


def read(i, session, nbytes, second):
    """A GetObject by one session of role app, `second` seconds after 10:00."""
    return twtest.record(
        eventID="50000000-0000-4000-8000-%012d" % i,
        eventTime="2026-11-26T%02d:%02d:%02dZ" % (10 + second // 3600, second // 60 % 60, second % 60),
        userIdentity={"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/app/" + session,
                      "accountId": "111122223333", "principalId": "AROAEXAMPLE:" + session},
        requestParameters={"bucketName": "prod-data", "key": "k%d" % i, "Host": "prod-data.s3.amazonaws.com"},
        additionalEventData={"bytesTransferredOut": nbytes})


def flood_and_exfil():
    """2,000 sessions reading 1 KiB each, one a second from 10:00; the
    exfil session reads 1 GiB six times between 10:10 and 10:20, when the
    table has long been full.  Returns the records in time order."""
    recs = [read(i, "s%05d" % i, 1024, i) for i in range(SESSIONS)]
    for k in range(6):
        at = 600 + 120 * k
        recs.append(read(SESSIONS + k, "exfil", GIB, at))
    recs.sort(key=lambda r: r["eventTime"])
    return recs


def exfil_alerts(alerts):
    return [a for a in alerts if a["rule"] == EXFIL_RULE]


class CorrelationCap(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-corrcap-")
        self.tmp = self._tmp.name
        self.inbox = os.path.join(self.tmp, "inbox")
        os.makedirs(self.inbox)
        self.config = os.path.join(self.tmp, "trailwatch.yaml")
        with open(self.config, "w") as f:
            f.write(f"state_dir: {self.tmp}/state\nrules: [builtin]\n"
                    f"correlation: {{max_groups: {CAP}}}\n"
                    f"sources:\n  - {{type: dir, path: {self.inbox}, poll_interval: 1s}}\n")
        self.daemons = []
        self.sock = None

    def tearDown(self):
        for d in self.daemons:
            d.stop(signal.SIGKILL)
        if self.sock:
            self.sock.close()
        self._tmp.cleanup()

    def files(self, nfiles=8):
        """The records as nfiles log files in the inbox, in delivery order."""
        recs = flood_and_exfil()
        per = (len(recs) + nfiles - 1) // nfiles
        return [twtest.drop_log(self.inbox, n, recs[n * per:(n + 1) * per]) for n in range(nfiles)]

    def test_replay_still_alerts_on_the_planted_group(self):
        self.files()
        runs = [twtest.tw("replay", "-c", self.config, self.inbox) for _ in range(2)]
        for p in runs:
            self.assertEqual(p.returncode, 0, p.stderr)
        got = exfil_alerts(twtest.alerts_of(runs[0].stdout))
        self.assertEqual(len(got), 1, runs[0].stderr)
        self.assertEqual(got[0]["group"], {"userIdentity.arn": EXFIL_ARN})
        self.assertEqual(got[0]["value"], 5 * GIB)  # the read that crossed 5 GiB
        # at the cap the outcome does not depend on chance
        self.assertEqual(runs[0].stdout, runs[1].stdout)
        # every session past the cap evicted one group, and so did the sixth
        # read of the exfil session: its group was spent when it fired (it
        # then holds nothing) and had been evicted; the summary names the rule
        m = re.search(r"correlation \"Large S3 download volume[^\"]*\" \(%s\): (\d+) groups evicted" % EXFIL_RULE,
                      runs[0].stderr)
        self.assertTrue(m, runs[0].stderr)
        self.assertEqual(int(m.group(1)), EVICTED, runs[0].stderr)

    def test_run_alerts_and_says_the_table_is_full(self):
        self.sock = NotifySocket(os.path.join(self.tmp, "notify.sock"))
        env = dict(os.environ)
        env.pop("JOURNAL_STREAM", None)
        env["NOTIFY_SOCKET"] = self.sock.path
        d = Runner(self.config, env)
        self.daemons.append(d)
        self.sock.wait_for("READY")
        self.files()
        end = time.monotonic() + 30
        while time.monotonic() < end and not exfil_alerts(d.alerts()):
            time.sleep(0.1)
        got = exfil_alerts(d.alerts())
        self.assertEqual(len(got), 1, d.stderr())
        self.assertEqual(got[0]["group"], {"userIdentity.arn": EXFIL_ARN})
        # an error the first time the rule's table is full, once, not per object
        first = [l for l in d.stderr().splitlines()
                 if "error:" in l and EXFIL_RULE in l and "correlation.max_groups" in l]
        self.assertEqual(len(first), 1, d.stderr())
        self.assertIn("%d groups" % CAP, first[0])
        # STATUS= counts the evictions
        end = time.monotonic() + 15
        while time.monotonic() < end:
            statuses = [m["STATUS"] for _, m in self.sock.having("STATUS")]
            if any(re.search(r", \d+ correlation groups evicted", s) for s in statuses):
                break
            time.sleep(0.2)
        else:
            self.fail(f"no evictions in STATUS=: {statuses}")
        # and so does the exit summary, with what the last minute evicted
        self.assertEqual(d.stop(), 0, d.stderr())
        tail = d.stderr().splitlines()
        self.assertTrue(any(re.search(r"correlation \"Large S3 download volume[^\"]*\" \(%s\): %d groups evicted"
                                      % (EXFIL_RULE, EVICTED), l) for l in tail), d.stderr())



RANSOM_RULE = "5f9c0283-1648-405f-9cf7-19ae0db698e6"
RANSOM_ARN = "arn:aws:sts::111122223333:assumed-role/app/ransom"


def s3_call(i, session, name, key, second):
    return twtest.record(
        eventID="60000000-0000-4000-8000-%012d" % i, eventName=name,
        eventTime="2026-11-26T10:%02d:%02dZ" % (second // 60, second % 60),
        userIdentity={"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/app/" + session,
                      "accountId": "111122223333", "principalId": "AROAEXAMPLE:" + session},
        requestParameters={"bucketName": "prod-data", "key": key, "Host": "prod-data.s3.amazonaws.com"},
        additionalEventData={"bytesTransferredOut": 1024} if name == "GetObject" else {})


class SeenBeforeCap(unittest.TestCase):
    """The values a seen_before rule remembers (the reads the ransomware
    rule pairs with writes) are capped at correlation.max_groups x 10.  At
    the cap the table used to forget everything, the reads of an attack
    under way included, so a flood of other reads just before hid the
    rewrite of 20 objects (no alert).  Now it forgets the oldest half."""

    @staticmethod
    def records():
        """110 reads by other sessions, then the attacker reads 20 objects and writes them back."""
        recs = [s3_call(i, "reader%03d" % i, "GetObject", "flood/%d" % i, i % 60) for i in range(110)]
        recs += [s3_call(200 + k, "ransom", "GetObject", "data/%d" % k, 120 + k) for k in range(20)]
        recs += [s3_call(300 + k, "ransom", "PutObject", "data/%d" % k, 180 + k) for k in range(20)]
        return recs

    def test_run_alerts_and_warns(self):
        with tempfile.TemporaryDirectory(prefix="tw-seencap-") as tmp:
            inbox = os.path.join(tmp, "inbox")
            os.makedirs(inbox)
            config = os.path.join(tmp, "trailwatch.yaml")
            with open(config, "w") as f:
                f.write(f"state_dir: {tmp}/state\nrules: [builtin]\ncorrelation: {{max_groups: 10}}\n"
                        f"sources:\n  - {{type: dir, path: {inbox}, poll_interval: 1s}}\n")
            env = dict(os.environ)
            env.pop("NOTIFY_SOCKET", None)
            d = Runner(config, env)
            try:
                twtest.drop_log(inbox, 0, self.records())
                end = time.monotonic() + 30
                while time.monotonic() < end and not [a for a in d.alerts() if a["rule"] == RANSOM_RULE]:
                    time.sleep(0.1)
                self.assertEqual(len([a for a in d.alerts() if a["rule"] == RANSOM_RULE]), 1, d.stderr())
                self.assertRegex(d.stderr(), r"warning: \d+ more correlation entries dropped at their caps: .*"
                                             r"seen_before memory at 10 x correlation.max_groups")
                self.assertEqual(d.stop(), 0, d.stderr())
                self.assertRegex(d.stderr(), r"warning: \d+ correlation entries dropped at their caps in all")
            finally:
                d.stop(signal.SIGKILL)

    def test_a_flood_of_reads_before_the_attack(self):
        with tempfile.TemporaryDirectory(prefix="tw-seencap-") as tmp:
            config = os.path.join(tmp, "trailwatch.yaml")
            with open(config, "w") as f:
                f.write("rules: [builtin]\ncorrelation: {max_groups: 10}\n")
            log = twtest.write_log(os.path.join(tmp, "in", "a.json.gz"), self.records())
            p = twtest.tw("replay", "-c", config, log)
            self.assertEqual(p.returncode, 0, p.stderr)
            got = [a for a in twtest.alerts_of(p.stdout) if a["rule"] == RANSOM_RULE]
            self.assertEqual(len(got), 1, p.stderr)
            self.assertEqual(got[0]["group"], {"userIdentity.arn": RANSOM_ARN,
                                               "requestParameters.bucketName": "prod-data"})
            # what was forgotten is counted
            self.assertRegex(p.stderr, r"\d+ (entries|values) dropped|dropped \d+")



LONG_RULES = """title: base
name: long_base
id: 7b000000-0000-4000-8000-000000000001
logsource: {product: aws, service: cloudtrail}
detection: {a: {eventName: ListBuckets}, condition: a}
---
title: three calls with one user agent
id: 7b000000-0000-4000-8000-000000000002
correlation: {type: event_count, rules: [long_base], group-by: [userAgent], timespan: 10m, condition: {gte: 3}}
"""


class LongGroupValue(unittest.TestCase):
    """A group-by value the caller chooses can be long: a group key over
    4 KiB used to be refused, so a correlation grouped by userAgent never
    fired for a 5,000-byte user agent (and run said nothing).  Now a long
    value stands in by its start and a hash of all of it: three calls with
    it alert, and two with another that differs only at its end stay a
    group of their own."""

    def test_long_user_agents_are_grouped_and_kept_apart(self):
        with tempfile.TemporaryDirectory(prefix="tw-longkey-") as tmp:
            rules = os.path.join(tmp, "rules")
            os.makedirs(rules)
            with open(os.path.join(rules, "long.yml"), "w") as f:
                f.write(LONG_RULES)
            ua_a = "aws-cli/2.15.30 " + "A" * 4984
            ua_b = ua_a[:-1] + "B"
            recs = [twtest.record(eventID="70000000-0000-4000-8000-%012d" % i, eventName="ListBuckets",
                                  eventTime="2026-11-26T10:00:%02dZ" % i, userAgent=ua)
                    for i, ua in enumerate([ua_a, ua_b, ua_a, ua_b, ua_a])]
            log = twtest.write_log(os.path.join(tmp, "in", "a.json.gz"), recs)
            p = twtest.tw("replay", "-r", rules, log)
            self.assertEqual(p.returncode, 0, p.stderr)
            got = [a for a in twtest.alerts_of(p.stdout) if a["rule"] == "7b000000-0000-4000-8000-000000000002"]
            self.assertEqual(len(got), 1, p.stderr)
            self.assertEqual(got[0]["count"], 3)
            shown = got[0]["group"]["userAgent"]
            self.assertTrue(shown.startswith("aws-cli/2.15.30 AAAA"), shown[:40])
            self.assertRegex(shown, r"~5000:[0-9a-f]{32}$")
            self.assertLess(len(shown), 4096)
            self.assertNotIn("groups not made", p.stderr)


if __name__ == "__main__":
    unittest.main()
