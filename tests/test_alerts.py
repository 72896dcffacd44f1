"""The alert object: shape, escaping, ids."""
import json
import os
import unittest

from twtest import TempDir, alerts_of, record, tw, write_log


def rule(title, rid="00000000-0000-4000-8000-0000000f0001"):
    return (f"title: {json.dumps(title)}\nid: {rid}\n"
            "logsource: {product: aws, service: cloudtrail}\n"
            "detection: {a: {eventName: X}, condition: a}\ntags: [attack.t1530]\nlevel: high\n")


class Alerts(unittest.TestCase):
    def replay(self, d, rule_text, *logs):
        os.makedirs(os.path.join(d, "rules"), exist_ok=True)
        with open(os.path.join(d, "rules", "r.yml"), "w") as f:
            f.write(rule_text)
        p = tw("replay", "-r", os.path.join(d, "rules"), *logs)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def test_long_unicode_title_stays_valid_utf8(self):
        title = "Zugriff auf öffentliche Buckets – " + "é" * 3000 + " \"quoted\" \\ end"
        with TempDir() as d:
            log = write_log(os.path.join(d, "a.json.gz"), [record(eventName="X")])
            p = self.replay(d, rule(title), log)
            raw = p.stdout.encode()
            raw.decode("utf-8")  # raises on invalid UTF-8
            a = alerts_of(p.stdout)[0]
            self.assertEqual(a["title"], title)
            self.assertEqual(a["severity"], "high")
            self.assertEqual(a["tags"], ["attack.t1530"])

    def test_records_without_event_id_get_distinct_ids(self):
        with TempDir() as d:
            r = record(eventName="X")
            del r["eventID"]
            a = write_log(os.path.join(d, "a.json.gz"), [r])
            b = write_log(os.path.join(d, "b.json.gz"), [r])
            alerts = alerts_of(self.replay(d, rule("x"), a, b).stdout)
            self.assertEqual(len(alerts), 2)
            self.assertNotEqual(alerts[0]["id"], alerts[1]["id"])
            self.assertEqual(alerts[0]["event_ids"], [])

    def test_same_event_same_id_across_runs_and_rules_differ(self):
        with TempDir() as d:
            log = write_log(os.path.join(d, "a.json.gz"), [record(eventName="X", eventID="e-1")])
            one = alerts_of(self.replay(d, rule("x"), log).stdout)[0]["id"]
            two = alerts_of(self.replay(d, rule("x"), log).stdout)[0]["id"]
            other = alerts_of(self.replay(d, rule("x", rid="00000000-0000-4000-8000-0000000f0002"), log).stdout)[0]["id"]
            self.assertEqual(one, two)
            self.assertNotEqual(one, other)
            self.assertRegex(one, r"^[0-9a-f]{32}$")

    def test_correlation_sample_leaves_out_overlong_event_ids(self):
        # A group keeps its sample of event ids inside itself, each under
        # 64 bytes: a longer (non-CloudTrail) id is left out, not cut.
        text = (rule("base", rid="00000000-0000-4000-8000-0000000f0003") +
                "---\ntitle: three\nid: 00000000-0000-4000-8000-0000000f0004\n"
                "correlation: {type: event_count, rules: [00000000-0000-4000-8000-0000000f0003], "
                "group-by: [userIdentity.arn], timespan: 10m, condition: {gte: 3}}\nlevel: high\n")
        long_id = "L" * 100
        with TempDir() as d:
            recs = [record(eventName="X", eventID=i, eventTime=f"2026-11-26T10:00:0{n}Z")
                    for n, i in enumerate(["e-1", long_id, "e-3"])]
            log = write_log(os.path.join(d, "a.json.gz"), recs)
            alerts = [a for a in alerts_of(self.replay(d, text, log).stdout) if a["title"] == "three"]
            self.assertEqual(len(alerts), 1)
            self.assertEqual(alerts[0]["count"], 3)
            self.assertEqual(alerts[0]["event_ids"], ["e-1", "e-3"])

    def test_alerts_of_a_file_come_in_time_order(self):
        # Within a file, matches go out by eventTime (records without one
        # first, ties in record order): a counting sort over the file's
        # seconds, or qsort when its times spread wide (the second file).
        def rec(eid, t):
            r = record(eventName="X", eventID=eid)
            if t:
                r["eventTime"] = t
            else:
                del r["eventTime"]
            return r
        with TempDir() as d:
            a = write_log(os.path.join(d, "a.json.gz"), [
                rec("a2", "2026-11-26T10:00:02Z"), rec("a0", "2026-11-26T10:00:00Z"),
                rec("a1", "2026-11-26T10:00:01Z"), rec("an", None), rec("a0b", "2026-11-26T10:00:00Z")])
            b = write_log(os.path.join(d, "b.json.gz"), [
                rec("b26", "2026-11-26T10:00:00Z"), rec("b20", "2020-01-01T00:00:00Z"),
                rec("b23", "2023-06-01T00:00:00Z")])
            p = self.replay(d, rule("x"), a, b)
            ids = [al["event_ids"][0] for al in alerts_of(p.stdout)]
            self.assertEqual(ids, ["an", "a0", "a0b", "a1", "a2", "b20", "b23", "b26"])

    def test_control_characters_are_escaped(self):
        with TempDir() as d:
            log = write_log(os.path.join(d, "a.json.gz"), [record(eventName="X", userAgent="a\nb\tc\u0001d")])
            p = self.replay(d, rule("x"), log)
            self.assertEqual(len(p.stdout.splitlines()), 1)
            self.assertEqual(alerts_of(p.stdout)[0]["user_agent"], "a\nb\tc\u0001d")


if __name__ == "__main__":
    unittest.main()
