"""`trailwatch replay` on a realistic generated trail (../shared/tools/ctgen).

- The output does not depend on --jobs, and alert ids are stable.
- Every alert's context fields equal the record's own values as Python's
  json module reads them (a differential check of the streaming extractor).
- Every alert has the fields architecture.md requires.
"""
import gzip
import json
import os
import subprocess
import sys
import unittest

from twtest import SHARED, SIGMAHQ, TempDir, alerts_of, tw

CTGEN = os.path.join(SHARED, "tools", "ctgen")
REQUIRED = ["id", "rule", "title", "severity", "event_ids", "event_time", "account", "region",
            "event_name", "principal", "source_ip", "user_agent"]


def records_by_id(trail):
    out = {}
    for dirpath, _, files in os.walk(trail):
        for f in files:
            if f.endswith(".json.gz") and "CloudTrail-Digest" not in dirpath:
                with gzip.open(os.path.join(dirpath, f)) as fh:
                    for r in json.load(fh)["Records"]:
                        out[r["eventID"]] = r
    return out


class Replay(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.d = cls.tmp.__enter__()
        cls.trail = os.path.join(cls.d, "trail")
        subprocess.run([sys.executable, CTGEN, "--out", cls.trail, "--records", "30000", "--org", "--seed", "3"],
                       check=True, capture_output=True)
        cls.records = records_by_id(cls.trail)
        cls.runs = {}
        for jobs in ("1", "2", "3"):
            p = tw("replay", "-r", os.path.join(SIGMAHQ, "rules"), "--jobs", jobs, cls.trail)
            cls.runs[jobs] = p

    @classmethod
    def tearDownClass(cls):
        cls.tmp.__exit__(None, None, None)

    def test_exit_status_and_summary(self):
        p = self.runs["1"]
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stderr, r"replay: \d+ files, 31\d\d\d records, \d+ alerts; 0 files with errors")

    def test_jobs_do_not_change_the_output(self):
        self.assertGreater(len(self.runs["1"].stdout), 0)
        self.assertEqual(self.runs["1"].stdout, self.runs["2"].stdout)
        self.assertEqual(self.runs["1"].stdout, self.runs["3"].stdout)

    def test_ids_are_stable_and_unique(self):
        again = tw("replay", "-r", os.path.join(SIGMAHQ, "rules"), self.trail)
        self.assertEqual(again.stdout, self.runs["1"].stdout)
        ids = [a["id"] for a in alerts_of(self.runs["1"].stdout)]
        self.assertEqual(len(ids), len(set(ids)))

    def test_alert_fields_match_the_records(self):
        alerts = alerts_of(self.runs["1"].stdout)
        self.assertGreater(len(alerts), 100)
        for a in alerts:
            for k in REQUIRED:
                self.assertIn(k, a)
            self.assertIn(a["severity"], ["informational", "low", "medium", "high", "critical"])
            self.assertEqual(len(a["event_ids"]), 1)
            r = self.records[a["event_ids"][0]]
            ident = r.get("userIdentity") or {}
            self.assertEqual(a["event_time"], r["eventTime"])
            self.assertEqual(a["account"], r["recipientAccountId"])
            self.assertEqual(a["region"], r["awsRegion"])
            self.assertEqual(a["event_name"], r["eventName"])
            self.assertEqual(a["principal"], ident.get("arn") or ident.get("type") or ident.get("invokedBy"))
            self.assertEqual(a["source_ip"], r["sourceIPAddress"])
            self.assertEqual(a["user_agent"], r["userAgent"])
            params = r.get("requestParameters") or {}
            self.assertEqual(a.get("bucket"), params.get("bucketName"))
            self.assertEqual(a.get("object_key"), params.get("key"))
            self.assertTrue(a["log_object"].startswith(self.trail))


if __name__ == "__main__":
    unittest.main()
