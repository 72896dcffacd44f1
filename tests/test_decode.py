"""Bad input: every problem is one line naming the file and the record or
byte offset, the rest of the file and of the run goes on, and the exit
status is non-zero at the end."""
import gzip
import json
import os
import unittest
import zlib

from twtest import TempDir, alerts_of, record, tw, write_log

RULE = """title: every X
id: 00000000-0000-4000-8000-0000000d0001
logsource: {product: aws, service: cloudtrail}
detection: {a: {eventName: X}, condition: a}
"""


class Decode(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()
        self.d = self.tmp.__enter__()
        self.rules = os.path.join(self.d, "rules")
        os.makedirs(self.rules)
        with open(os.path.join(self.rules, "x.yml"), "w") as f:
            f.write(RULE)
        self.trail = os.path.join(self.d, "trail")

    def tearDown(self):
        self.tmp.__exit__(None, None, None)

    def replay(self, *paths, config=None):
        args = ["replay", "-r", self.rules]
        if config:
            cfg = os.path.join(self.d, "tw.yaml")
            with open(cfg, "w") as f:
                f.write(config)
            args = ["replay", "-c", cfg, "-r", self.rules]
        p = tw(*args, *(paths or [self.trail]))
        return p, [i for a in alerts_of(p.stdout) for i in a["event_ids"]]

    def path(self, name):
        return os.path.join(self.trail, name)

    def xs(self, n, prefix):
        return [record(eventName="X", eventID=f"{prefix}-{i}") for i in range(n)]

    def raw(self, name, data):
        os.makedirs(self.trail, exist_ok=True)
        with open(self.path(name), "wb") as f:
            f.write(data)
        return self.path(name)

    def test_clean_input_exits_zero(self):
        write_log(self.path("a.json.gz"), self.xs(3, "a"))
        p, ids = self.replay()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(ids, ["a-0", "a-1", "a-2"])
        self.assertIn("replay: 1 files, 3 records, 3 alerts; 0 files with errors", p.stderr)

    def test_corrupt_gzip_is_reported_and_others_continue(self):
        good = gzip.compress(json.dumps({"Records": self.xs(2, "bad")}).encode())
        bad = bytearray(good)
        for i in range(20, len(bad) - 10):
            bad[i] ^= 0x5a
        self.raw("a.json.gz", bytes(bad))
        write_log(self.path("b.json.gz"), self.xs(2, "b"))
        p, ids = self.replay()
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"{self.path('a.json.gz')}: corrupt gzip data (member at byte 0)", p.stderr)
        self.assertEqual(ids, ["b-0", "b-1"])

    def test_truncated_gzip(self):
        good = gzip.compress(json.dumps({"Records": self.xs(50, "t")}).encode())
        self.raw("a.json.gz", good[: len(good) // 2])
        p, ids = self.replay()
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"{self.path('a.json.gz')}: corrupt gzip data", p.stderr)

    def test_truncated_json_keeps_the_records_before(self):
        body = json.dumps({"Records": self.xs(5, "j")}, separators=(",", ":"))
        cut = body.index('"j-3"')
        self.raw("a.json", body[:cut].encode())
        p, ids = self.replay()
        self.assertEqual(p.returncode, 1)
        self.assertEqual(ids, ["j-0", "j-1", "j-2"])
        self.assertRegex(p.stderr, rf"{self.path('a.json')}: record 3 at byte {len(body[:cut])}: truncated JSON")

    def test_syntax_error_inside_a_record_skips_only_that_record(self):
        recs = [json.dumps(r, separators=(",", ":")) for r in self.xs(3, "s")]
        recs[1] = recs[1].replace('"eventName":"X",', '"eventName":"X" ', 1)
        body = '{"Records":[' + ",".join(recs) + "]}"
        self.raw("a.json", body.encode())
        p, ids = self.replay()
        self.assertEqual(p.returncode, 1)
        self.assertEqual(ids, ["s-0", "s-2"])
        self.assertRegex(p.stderr, r"a\.json: record 1 at byte \d+: expected ',' or '}'")

    def test_record_over_the_size_limit(self):
        recs = self.xs(3, "big")
        recs[1]["requestParameters"] = {"policy": "x" * 100000}
        write_log(self.path("a.json.gz"), recs)
        p, ids = self.replay(config="limits: {max_record_size: 64KiB}\n")
        self.assertEqual(p.returncode, 1)
        self.assertEqual(ids, ["big-0", "big-2"])
        self.assertRegex(p.stderr, r"a\.json\.gz: record 1 at byte \d+: record larger than the limit of 65536 bytes")

    def test_nesting_deeper_than_the_limit(self):
        recs = [json.dumps(r, separators=(",", ":")) for r in self.xs(3, "deep")]
        recs[1] = recs[1][:-1] + ',"requestParameters":' + "[" * 200 + "]" * 200 + "}"
        self.raw("a.json", ('{"Records":[' + ",".join(recs) + "]}").encode())
        p, ids = self.replay()
        self.assertEqual(p.returncode, 1)
        self.assertEqual(ids, ["deep-0", "deep-2"])
        self.assertRegex(p.stderr, r"record 1 at byte \d+: JSON nested deeper than the limit of 64")

    def test_invalid_utf8(self):
        recs = [json.dumps(r, separators=(",", ":")).encode() for r in self.xs(3, "u")]
        recs[1] = recs[1].replace(b'"eventName":"X"', b'"eventName":"X","userAgent":"\xc3\x28"', 1)
        self.raw("a.json", b'{"Records":[' + b",".join(recs) + b"]}")
        p, ids = self.replay()
        self.assertEqual(p.returncode, 1)
        self.assertEqual(ids, ["u-0", "u-2"])
        self.assertRegex(p.stderr, r"record 1 at byte \d+: invalid UTF-8 in string")

    def test_not_cloudtrail(self):
        self.raw("digestlike.json", json.dumps({"awsAccountId": "1", "logFiles": []}).encode())
        self.raw("page.json", b"<html><body>Access Denied</body></html>")
        self.raw("empty.json", b"")
        self.raw("records-not-array.json", b'{"Records": {"a": 1}}')
        write_log(self.path("ok.json.gz"), self.xs(1, "ok"))
        p, ids = self.replay()
        self.assertEqual(p.returncode, 1)
        self.assertEqual(ids, ["ok-0"])
        self.assertIn("digestlike.json: byte 36: not a CloudTrail log file: no \"Records\" array", p.stderr)
        self.assertIn("page.json: byte 0: not a CloudTrail log file: it does not start with a JSON object", p.stderr)
        self.assertIn("empty.json: byte 0: not a CloudTrail log file: empty", p.stderr)
        self.assertIn("records-not-array.json: byte 12: not a CloudTrail log file: \"Records\" is not an array", p.stderr)

    def test_gzip_bomb_stops_at_the_limit(self):
        # 64 MiB of spaces inside valid JSON compresses to about 64 KiB.
        body = b'{"Records":[' + b" " * (64 << 20) + b"]}"
        self.raw("bomb.json.gz", gzip.compress(body, 9))
        write_log(self.path("z.json.gz"), self.xs(1, "after"))
        p, ids = self.replay(config="limits: {max_decompressed_size: 8MiB}\n")
        self.assertEqual(p.returncode, 1)
        self.assertIn("bomb.json.gz: decompressed data over the limit of 8388608 bytes", p.stderr)
        self.assertEqual(ids, ["after-0"])

    def test_object_size_limit(self):
        write_log(self.path("a.json"), self.xs(200, "o"), gz=False)
        p, ids = self.replay(config="limits: {max_object_size: 4KiB}\n")
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r"a\.json: file of \d+ bytes is over the limit of 4096 bytes")
        self.assertEqual(ids, [])

    def test_multi_member_gzip(self):
        body = json.dumps({"Records": self.xs(4, "m")}).encode()
        half = len(body) // 2
        self.raw("a.json.gz", gzip.compress(body[:half]) + gzip.compress(body[half:]))
        p, ids = self.replay()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(ids, ["m-0", "m-1", "m-2", "m-3"])

    def test_gzip_detected_by_content_not_name(self):
        self.raw("a.json", gzip.compress(json.dumps({"Records": self.xs(1, "n")}).encode()))
        p, ids = self.replay()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(ids, ["n-0"])

    def test_digest_insight_and_other_files_are_skipped_and_counted(self):
        base = "AWSLogs/111122223333"
        write_log(self.path(f"{base}/CloudTrail/us-east-1/2026/11/26/a.json.gz"), self.xs(1, "log"))
        self.raw("x", b"")
        os.makedirs(self.path(f"{base}/CloudTrail-Digest/us-east-1/2026/11/26"))
        self.raw(f"{base}/CloudTrail-Digest/us-east-1/2026/11/26/d.json.gz", gzip.compress(b"{}"))
        os.makedirs(self.path(f"{base}/CloudTrail-Insight/us-east-1/2026/11/26"))
        self.raw(f"{base}/CloudTrail-Insight/us-east-1/2026/11/26/i.json.gz", gzip.compress(b"{}"))
        self.raw("README.txt", b"hello")
        p, ids = self.replay()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(ids, ["log-0"])
        self.assertIn("skipped 1 digest, 1 insight, 2 other files", p.stderr)

    def test_files_in_key_order(self):
        for name in ("b/2.json.gz", "a/9.json.gz", "b/10.json.gz", "a/10.json.gz"):
            write_log(self.path(name), self.xs(1, name))
        p, ids = self.replay()
        self.assertEqual(ids, ["a/10.json.gz-0", "a/9.json.gz-0", "b/10.json.gz-0", "b/2.json.gz-0"])

    def test_missing_path(self):
        write_log(self.path("a.json.gz"), self.xs(1, "a"))
        p, ids = self.replay(self.path("a.json.gz"), os.path.join(self.d, "nope"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("nope: No such file or directory", p.stderr)
        self.assertEqual(ids, ["a-0"])

    def test_escapes_and_unicode_in_values(self):
        recs = self.xs(1, "esc")
        recs[0]["userAgent"] = 'quote " backslash \\ tab \t snowman \u2603 pile \U0001F4A9'
        write_log(self.path("a.json.gz"), recs)
        p, _ = self.replay()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(alerts_of(p.stdout)[0]["user_agent"], recs[0]["userAgent"])


if __name__ == "__main__":
    unittest.main()
