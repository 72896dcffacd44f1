"""An outside suite: the test events that Panther ships for its S3 and
CloudTrail rules (tests/outside/panther.json, transcribed from
panther-labs/panther-analysis, Apache License 2.0), judged the way a SOC
would: for each event, the set of the pack's rules that must alert on it,
and none other.  Where that differs from Panther's own expectation (a bucket
made private with a canned ACL is hardening; an event that needs an IP
reputation feed is not covered), the case says why.
"""
import json
import os
import re
import unittest

from twtest import HERE, ROOT, TempDir, alerts_of, tw, write_log

SUITE = os.path.join(HERE, "outside", "panther.json")


def rule_ids():
    """name -> id for the pack's rules, and id -> id."""
    out = {}
    pack = os.path.join(ROOT, "rules.d")
    for f in sorted(os.listdir(pack)):
        with open(os.path.join(pack, f)) as fh:
            for doc in re.split(r"(?m)^---$", fh.read()):
                i = re.search(r"(?m)^id: (\S+)", doc)
                n = re.search(r"(?m)^name: (\S+)", doc)
                if i:
                    out[i.group(1)] = i.group(1)
                    if n:
                        out[n.group(1)] = i.group(1)
    return out


class PantherTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(SUITE) as f:
            cls.suite = json.load(f)
        ids = rule_ids()
        cls.names = {v: k for k, v in ids.items() if k != v}
        with TempDir() as d:
            log = write_log(os.path.join(d, "panther.json.gz"), [c["record"] for c in cls.suite["cases"]])
            cfg = os.path.join(d, "tw.yaml")
            with open(cfg, "w") as f:
                f.write(cls.suite["config"])
            cls.p = tw("replay", "-c", cfg, log)
        cls.fired = {}
        for a in alerts_of(cls.p.stdout):
            for e in a["event_ids"]:
                cls.fired.setdefault(e, set()).add(a["rule"])
        cls.ids = ids

    def test_replay_reads_every_event(self):
        self.assertEqual(self.p.returncode, 0, self.p.stderr)
        self.assertRegex(self.p.stderr, r"%d records" % len(self.suite["cases"]))

    def test_suite_is_whole(self):
        cases = self.suite["cases"]
        self.assertGreaterEqual(len(cases), 60)
        self.assertTrue(any(c["expect"] for c in cases) and any(not c["expect"] for c in cases))


def _make(i, case):
    def test(self):
        want = {self.ids[r] for r in case["expect"]}
        got = self.fired.get(case["record"]["eventID"], set())
        self.assertEqual(sorted(self.names.get(r, r) for r in got), sorted(self.names.get(r, r) for r in want),
                         case.get("why", ""))
    test.__doc__ = f'{case["panther_rule"]}: {case["panther_test"]}'
    return test


with open(SUITE) as _f:
    for _i, _case in enumerate(json.load(_f)["cases"]):
        setattr(PantherTests, f"test_case_{_i:02d}", _make(_i, _case))

if __name__ == "__main__":
    unittest.main()
