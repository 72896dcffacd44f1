"""The shipped rule pack on a generated trail with labelled attacks
(../shared/tools/ctgen), scored by ../shared/tools/ctscore.

Every alert must name real events of the corpus (event_ids of aggregate
alerts included), nothing may alert on the false-positive traps or on
background traffic, and the scenarios the pack covers must be detected.
"""
import gzip
import json
import os
import subprocess
import sys
import unittest

from twtest import SHARED, TempDir, alerts_of, record, tw, write_log

CTGEN = os.path.join(SHARED, "tools", "ctgen")
CTSCORE = os.path.join(SHARED, "tools", "ctscore")

# The acceptance configuration of issue #3: the synthetic organisation's
# corporate egress ranges; every other pack list stays empty.
CONFIG = """lists:
  corporate_cidrs: [203.0.113.0/24, 198.51.100.0/24]
"""


def score(trail, alerts_path):
    return subprocess.run([sys.executable, CTSCORE, os.path.join(trail, "labels.jsonl"), alerts_path],
                          capture_output=True, text=True)


class Corpus(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        d = cls.tmp.__enter__()
        cls.trail = os.path.join(d, "trail")
        subprocess.run([sys.executable, CTGEN, "--out", cls.trail, "--records", "20000", "--org",
                        "--accounts", "2", "--regions", "2", "--seed", "11"], check=True, capture_output=True)
        cls.config = os.path.join(d, "trailwatch.yaml")
        with open(cls.config, "w") as f:
            f.write(CONFIG)
        cls.p = tw("replay", "-c", cls.config, "--jobs", "2", cls.trail)
        cls.alerts_path = os.path.join(d, "alerts.jsonl")
        with open(cls.alerts_path, "w") as f:
            f.write(cls.p.stdout)
        cls.score = score(cls.trail, cls.alerts_path)
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

    def test_every_attack_detected_nothing_else(self):
        self.assertNotRegex(self.score.stdout, r"(?m)^MISSED")
        self.assertEqual(self.score.returncode, 0, self.score.stdout)

    def test_trail_without_organisation(self):
        # An account trail (no o-xxxx level), another seed: the same bar.
        with TempDir() as d:
            trail = os.path.join(d, "trail")
            subprocess.run([sys.executable, CTGEN, "--out", trail, "--records", "20000", "--seed", "5"],
                           check=True, capture_output=True)
            p = tw("replay", "-c", self.config, trail)
            self.assertEqual(p.returncode, 0, p.stderr)
            path = os.path.join(d, "alerts.jsonl")
            with open(path, "w") as f:
                f.write(p.stdout)
            s = score(trail, path)
            self.assertEqual(s.returncode, 0, s.stdout)
            self.assertRegex(s.stdout, r"recall (\d+)/\1;")

    def test_iac_principals_silence_drift_rules_only(self):
        # The CI role's bucket policy change is drift when the role is a listed pipeline;
        # making a bucket public is not, whoever does it.
        ci = {"type": "AssumedRole", "accountId": "111122223333",
              "arn": "arn:aws:sts::111122223333:assumed-role/ci-deployer/run-7"}
        tls = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256"}
        drift = record(eventName="PutBucketPolicy", eventCategory="Management", managementEvent=True,
                       readOnly=False, userIdentity=ci, tlsDetails=tls,
                       requestParameters={"bucketName": "b", "bucketPolicy": {"Statement": [
                           {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/app"},
                            "Action": "s3:GetObject"}]}})
        public = record(eventName="PutBucketPolicy", eventCategory="Management", managementEvent=True,
                        readOnly=False, userIdentity=ci, tlsDetails=tls,
                        requestParameters={"bucketName": "b", "bucketPolicy": {"Statement": [
                            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}]}})
        with TempDir() as d:
            path = write_log(os.path.join(d, "one.json"), [drift, public], gz=False)
            titles = lambda cfg: sorted(a["title"] for a in alerts_of(tw("replay", "-c", cfg, path).stdout))
            before = titles(self.config)
            cfg = os.path.join(d, "iac.yaml")
            with open(cfg, "w") as f:
                f.write(CONFIG + "  iac_principals: ['arn:aws:sts::*:assumed-role/ci-deployer/*']\n")
            after = titles(cfg)
        made_public = "S3 bucket policy made public (Allow to everyone without a restricting condition)"
        self.assertEqual(before, ["S3 bucket policy changed", made_public])
        self.assertEqual(after, [made_public])


if __name__ == "__main__":
    unittest.main()
