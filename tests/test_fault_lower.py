"""The "lower" faults of issue 14, item 12: each once passed unnoticed.

- Loading rules was quadratic: every rule was compared with every rule
  before it (the duplicate-id check, ruleset_find), so 10k rules took 0.4 s
  and 100k took about a minute (50k: 10.6 s; 40k overriding 40k: 19.6 s).
  Now ids and names are looked up in a hash: both load in well under a
  second here (the bound below is 5 s, room for a sanitizer build).
"""
import os
import time
import unittest
import uuid

import twtest
from twtest import TempDir, tw


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
    BOUND = 5.0     # seconds; the quadratic loader took 10.6 s for 50k rules

    def test_50k_rules_load_in_bounded_time(self):
        with TempDir() as d:
            write_rules(d, 50000)
            t = time.monotonic()
            p = tw("check", "-r", d, timeout=300)
            took = time.monotonic() - t
            self.assertEqual(p.returncode, 0, p.stderr[-2000:])
            self.assertIn("50000 detection rules", p.stdout)
            self.assertLess(took, self.BOUND, "50k rules took %.1fs to load" % took)

    def test_40k_rules_overriding_40k_in_bounded_time(self):
        # a later directory replaces every rule of an earlier one (same ids)
        with TempDir() as d:
            a, b = os.path.join(d, "a"), os.path.join(d, "b")
            write_rules(a, 40000)
            write_rules(b, 40000, level="high")
            t = time.monotonic()
            p = tw("check", "-r", a, "-r", b, timeout=300)
            took = time.monotonic() - t
            self.assertEqual(p.returncode, 0, p.stderr[-2000:])
            self.assertIn("40000 detection rules", p.stdout)
            self.assertIn("40000 rules overridden by a later directory", p.stdout)
            self.assertLess(took, self.BOUND, "40k overriding 40k took %.1fs" % took)
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


if __name__ == "__main__":
    unittest.main()
