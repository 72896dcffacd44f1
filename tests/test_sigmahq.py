"""SigmaHQ's own CloudTrail rules, loaded unchanged, fire on true events and
stay quiet on false ones.

For every rule file in ../shared/testdata/sigmahq-aws-cloudtrail/rules there
is tests/sigmahq/<rule file name>.json: {"true": [records], "false": [records]}
with hand-written CloudTrail records.  Each rule is replayed alone over a log
file holding its records; every "true" record must be named by an alert and
no "false" record may be.
"""
import json
import os
import unittest

from twtest import SIGMAHQ, HERE, TempDir, alerts_of, tw, write_log

EVENTS = os.path.join(HERE, "sigmahq")
RULES = os.path.join(SIGMAHQ, "rules")
PLACEHOLDER = os.path.join(SIGMAHQ, "rules-placeholder")


class SigmaHQCompat(unittest.TestCase):
    def test_all_rules_load_unchanged(self):
        p = tw("check", "-r", RULES)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("57 detection rules", p.stdout)

    def test_every_rule_has_events(self):
        missing = [f for f in sorted(os.listdir(RULES))
                   if not os.path.exists(os.path.join(EVENTS, f + ".json"))]
        self.assertEqual(missing, [], "rules without hand-written test events")

    def test_placeholder_rule_needs_lists(self):
        p = tw("check", "-r", PLACEHOLDER)
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stderr, r"\.yml:\d+:\d+: placeholder %Legitimate_Countries% is not defined")

    def check_rule(self, rule_path, events_path, config=None):
        with open(events_path) as f:
            ev = json.load(f)
        true_ids = [r["eventID"] for r in ev["true"]]
        false_ids = [r["eventID"] for r in ev["false"]]
        self.assertTrue(true_ids, "no true events")
        self.assertTrue(false_ids, "no false events")
        self.assertEqual(len(set(true_ids + false_ids)), len(true_ids + false_ids), "eventIDs must be unique")
        with TempDir() as d:
            log = write_log(os.path.join(d, "trail", "111122223333_CloudTrail_us-east-1_20261126T1000Z_x.json.gz"),
                            ev["true"] + ev["false"])
            args = ["replay", "-r", rule_path, log]
            if config:
                cfg = os.path.join(d, "tw.yaml")
                with open(cfg, "w") as f:
                    f.write(config)
                args[1:1] = ["-c", cfg]
            p = tw(*args)
        self.assertEqual(p.returncode, 0, p.stderr)
        named = {i for a in alerts_of(p.stdout) for i in a["event_ids"]}
        self.assertEqual(sorted(set(true_ids) - named), [], "true events without an alert")
        self.assertEqual(sorted(set(false_ids) & named), [], "false events that alerted")

    def test_placeholder_rule_with_lists(self):
        cfg = "lists:\n  Legitimate_Countries: [DE, FR]\n  Legitimate_IP_Ranges: ['203.0.113.7']\n"
        path = os.path.join(EVENTS, "placeholder", "aws_cloudtrail_console_login_success_from_susp_locations.yml.json")
        self.check_rule(os.path.join(PLACEHOLDER, "aws_cloudtrail_console_login_success_from_susp_locations.yml"),
                        path, config=cfg)


def _make(name):
    def test(self):
        events = os.path.join(EVENTS, name + ".json")
        if not os.path.exists(events):
            self.fail(f"no events file {events}")
        self.check_rule(os.path.join(RULES, name), events)
    return test


for _name in sorted(os.listdir(RULES)) if os.path.isdir(RULES) else []:
    setattr(SigmaHQCompat, "test_rule_" + _name[:-4], _make(_name))
