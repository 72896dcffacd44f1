"""Fault: a poison record, one whose alert renders larger than the spool
takes (SPOOL_MAX_ALERT, 256 KiB), under the 1 MiB record limit.

Before: `run` stopped ("Argument list too long", no file named), the
checkpoint never moved and every restart died the same way; the good alerts
of the same batch were never delivered.  Now the long values are cut with a
marker, the alert says which and how long they were ("truncated"), every
alert of the object is delivered, the checkpoint moves, and `run` goes on.
The same holds for an object read from S3 (moto behind the SigV4 proxy).
"""
import json
import os
import signal
import tempfile
import time
import unittest

import awsenv
import twtest
from test_run import Runner

RULE = """title: Bucket deleted
id: 3c0ad1d4-0000-4000-8000-00000000f001
logsource: {product: aws, service: cloudtrail}
detection:
    selection: {eventSource: s3.amazonaws.com, eventName: DeleteBucket}
    condition: selection
level: high
"""

BIG_UA = "Mozilla/5.0 " + "A" * 300000
BIG_KEY = "k/" + "\u00e9" * 150001          # 300,004 bytes of UTF-8: cut between sequences


def delete_bucket(i, **over):
    rec = twtest.record(eventName="DeleteBucket", eventID="f0000000-0000-4000-8000-%012d" % i,
                        eventTime="2026-11-26T11:00:%02dZ" % i,
                        requestParameters={"bucketName": "victim-%d" % i, "Host": "s3.amazonaws.com"})
    rec.update(over)
    return rec


def poison_batch():
    return [delete_bucket(1), delete_bucket(2, userAgent=BIG_UA),
            delete_bucket(3, requestParameters={"bucketName": "victim-3", "key": BIG_KEY}),
            delete_bucket(4)]


class PoisonCase:
    """Shared checks on the alerts of poison_batch()."""

    def check_alerts(self, alerts):
        by_event = {a["event_ids"][0][-2:]: a for a in alerts}
        self.assertEqual(sorted(by_event), ["01", "02", "03", "04"], [a["event_ids"] for a in alerts])
        for a in alerts:
            self.assertLessEqual(len(json.dumps(a, separators=(",", ":"))), 256 << 10)
        ua = by_event["02"]
        self.assertEqual(ua["truncated"], {"user_agent": len(BIG_UA)})
        self.assertTrue(ua["user_agent"].startswith("Mozilla/5.0 AAAA"), ua["user_agent"][:40])
        self.assertTrue(ua["user_agent"].endswith("...[cut: %d bytes]" % len(BIG_UA)), ua["user_agent"][-40:])
        self.assertLess(len(ua["user_agent"]), 5000)
        key = by_event["03"]
        full = len(BIG_KEY.encode())
        self.assertEqual(key["truncated"], {"object_key": full})
        self.assertTrue(key["object_key"].endswith("...[cut: %d bytes]" % full))
        self.assertNotIn("truncated", by_event["01"])
        self.assertEqual(by_event["01"]["user_agent"], twtest.record()["userAgent"])


class DirPoisonTest(unittest.TestCase, PoisonCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-poison-")
        self.tmp = self._tmp.name
        self.inbox = os.path.join(self.tmp, "inbox")
        self.rules = os.path.join(self.tmp, "rules")
        os.makedirs(self.inbox)
        os.makedirs(self.rules)
        with open(os.path.join(self.rules, "delete.yml"), "w") as f:
            f.write(RULE)
        self.config = os.path.join(self.tmp, "trailwatch.yaml")
        with open(self.config, "w") as f:
            f.write(f"state_dir: {self.tmp}/state\nrules: [{self.rules}]\n"
                    f"sources:\n  - {{type: dir, path: {self.inbox}, poll_interval: 1s}}\n")
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            d.stop(signal.SIGKILL)
        self._tmp.cleanup()

    def start(self):
        d = Runner(self.config, dict(os.environ))
        self.daemons.append(d)
        return d

    def wait_alerts(self, d, n, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(d.alerts()) < n and d.p.poll() is None:
            time.sleep(0.1)
        return d.alerts()

    def test_poison_record_is_cut_and_delivered_and_run_goes_on(self):
        twtest.drop_log(self.inbox, 0, poison_batch())
        d = self.start()
        alerts = self.wait_alerts(d, 4)
        self.assertIsNone(d.p.poll(), d.stderr())
        self.check_alerts(alerts)
        # the warning names the object the alert came from
        self.assertRegex(d.stderr(), r"from \S+_f0\.json\.gz: values cut to fit 262144 bytes")
        # the service goes on: a later object is read too
        twtest.drop_log(self.inbox, 1, [delete_bucket(5)])
        self.assertEqual(len(self.wait_alerts(d, 5)), 5, d.stderr())
        self.assertEqual(d.stop(), 0, d.stderr())
        # the checkpoint moved: a restart neither dies nor repeats
        d2 = self.start()
        time.sleep(3)
        self.assertIsNone(d2.p.poll(), d2.stderr())
        self.assertEqual(d2.alerts(), [])
        self.assertEqual(d2.stop(), 0, d2.stderr())

    def test_replay_prints_the_same_cut_alerts(self):
        path = twtest.drop_log(self.inbox, 0, poison_batch())
        p = twtest.tw("replay", "-r", self.rules, path)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.check_alerts(twtest.alerts_of(p.stdout))


class S3PoisonTest(unittest.TestCase, PoisonCase):
    def setUp(self):
        self.env = awsenv.S3Env(bucket="trail").start()
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-poison-s3-")
        self.tmp = self._tmp.name
        self.rules = os.path.join(self.tmp, "rules")
        os.makedirs(self.rules)
        with open(os.path.join(self.rules, "delete.yml"), "w") as f:
            f.write(RULE)
        self.config = os.path.join(self.tmp, "trailwatch.yaml")
        with open(self.config, "w") as f:
            f.write(f"""state_dir: {self.tmp}/state
rules: [{self.rules}]
sources:
  - type: s3
    bucket: trail
    prefix: AWSLogs/
    region: us-east-1
    endpoint: {self.env.endpoint_url}
    path_style: true
    poll_interval: 1s
    start_time: 2026-11-26T00:00:00Z
""")
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            d.stop(signal.SIGKILL)
        self.env.close()
        self._tmp.cleanup()

    def test_poison_object_from_s3(self):
        local = twtest.write_log(os.path.join(self.tmp, "o.json.gz"), poison_batch())
        key = ("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/26/"
               "111122223333_CloudTrail_us-east-1_20261126T1100Z_poison.json.gz")
        with open(local, "rb") as f:
            self.env.put_object(key, f.read())
        d = Runner(self.config, self.env.client_env())
        self.daemons.append(d)
        end = time.monotonic() + 60
        while time.monotonic() < end and len(d.alerts()) < 4 and d.p.poll() is None:
            time.sleep(0.2)
        self.assertIsNone(d.p.poll(), d.stderr())
        self.check_alerts(d.alerts())
        self.assertIn("s3://trail/" + key + ": values cut", d.stderr())
        self.assertEqual(d.stop(), 0, d.stderr())


if __name__ == "__main__":
    unittest.main()
