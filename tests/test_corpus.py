"""The shipped rule pack on a generated trail with labelled attacks
(../shared/tools/ctgen), scored by ../shared/tools/ctscore.

Every alert must name real events of the corpus (event_ids of aggregate
alerts included), nothing may alert on the false-positive traps or on
background traffic, and the scenarios the pack covers must be detected.
"""
import gzip
import json
import os
import re
import subprocess
import sys
import unittest

from twtest import SHARED, TempDir, alerts_of, tw

CTGEN = os.path.join(SHARED, "tools", "ctgen")
CTSCORE = os.path.join(SHARED, "tools", "ctscore")

# Scenarios the current pack must detect (the pack grows with issue #3).
COVERED = [
    "s3-bucket-policy-public", "s3-public-access-block-disabled", "s3-public-access-block-deleted",
    "s3-account-public-access-block-disabled", "s3-recon-unusual-user-agent",
    "s3-pentest-distribution-user-agent", "s3-access-denied-spike", "s3-mass-object-deletion",
    "cloudtrail-stoplogging", "cloudtrail-deletetrail", "cloudtrail-puteventselectors",
]


class Corpus(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        d = cls.tmp.__enter__()
        cls.trail = os.path.join(d, "trail")
        subprocess.run([sys.executable, CTGEN, "--out", cls.trail, "--records", "20000", "--org",
                        "--accounts", "2", "--regions", "2", "--seed", "11"], check=True, capture_output=True)
        cls.p = tw("replay", "--jobs", "2", cls.trail)
        cls.alerts_path = os.path.join(d, "alerts.jsonl")
        with open(cls.alerts_path, "w") as f:
            f.write(cls.p.stdout)
        cls.score = subprocess.run([sys.executable, CTSCORE, os.path.join(cls.trail, "labels.jsonl"),
                                    cls.alerts_path], capture_output=True, text=True)
        cls.ids = set()
        for dirpath, _, files in os.walk(cls.trail):
            for f in files:
                if f.endswith(".json.gz") and "Digest" not in dirpath:
                    with gzip.open(os.path.join(dirpath, f)) as fh:
                        cls.ids.update(r["eventID"] for r in json.load(fh)["Records"])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.__exit__(None, None, None)

    def test_replay_succeeds(self):
        self.assertEqual(self.p.returncode, 0, self.p.stderr)

    def test_alerts_name_real_events(self):
        alerts = alerts_of(self.p.stdout)
        self.assertTrue(any(a.get("count") for a in alerts), "no aggregate alert to check")
        for a in alerts:
            self.assertTrue(a["event_ids"])
            for i in a["event_ids"]:
                self.assertIn(i, self.ids, a)

    def test_no_false_positives(self):
        out = self.score.stdout
        self.assertNotIn("FALSE POSITIVE", out)
        self.assertRegex(out, r"of which on background or traps only: 0;")

    def test_covered_scenarios_detected(self):
        detected = set(re.findall(r"^detected\s+(\S+)", self.score.stdout, re.M))
        missing = [s for s in COVERED if s not in detected]
        self.assertEqual(missing, [], self.score.stdout)


if __name__ == "__main__":
    unittest.main()
