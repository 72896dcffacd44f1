"""The journald sink for real: alerts sent with sinkfmt_journal_send() to a
private systemd-journald and read back with journalctl, and the message
catalog (systemd/trailwatch.catalog) compiled and applied by journalctl -x.

JOURNAL_SEND is the driver, tests/journal_send (one alert per stdin line).
journald runs inside `unshare -m -p -f --mount-proc`: a private mount
namespace with tmpfs on /run, on /var/log/journal (or /var/log) and on the
catalog directories, so nothing reaches the host's journal or catalog; and a
private PID namespace, so that journald dies with the test's shell whatever
happens.  Skipped, with the reason, when JOURNAL_SEND is unset, when we are
not root or unshare is not permitted, or when systemd-journald is missing.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from twtest import ROOT, TW

JOURNAL_SEND = os.environ.get("JOURNAL_SEND")
MESSAGE_ID = "f442f7875c15402285e79119440d7fc0"
CATALOG = os.path.join(ROOT, "systemd", "trailwatch.catalog")
VALUE_MAX = 64 * 1024
MESSAGE_MAX = 2048
PRIORITY = {"critical": "2", "high": "3", "medium": "4", "low": "5", "informational": "6"}
FIELDS = [
    ("TRAILWATCH_ALERT_ID", "id"), ("TRAILWATCH_RULE", "rule"), ("TRAILWATCH_SEVERITY", "severity"),
    ("TRAILWATCH_EVENT_NAME", "event_name"), ("TRAILWATCH_ACCOUNT", "account"),
    ("TRAILWATCH_REGION", "region"), ("TRAILWATCH_PRINCIPAL", "principal"),
    ("TRAILWATCH_SOURCE_IP", "source_ip"), ("TRAILWATCH_BUCKET", "bucket"),
    ("TRAILWATCH_OBJECT_KEY", "object_key"),
]

# Used when TW (trailwatch) is not built: alerts exactly as it prints them.
FALLBACK_ALERTS = [
    '{"id":"d23353436cf67a3a2347017245383e4d","rule":"d7907576-6bf5-4565-94ba-d1bcff68de88",'
    '"title":"S3 API called with a hacking or scripting tool\'s user agent","severity":"medium",'
    '"event_ids":["90df58b2-d845-439b-85b8-86c4ca8da693"],"event_time":"2026-11-26T04:19:24Z",'
    '"account":"130201276659","region":"us-east-1","event_name":"DeleteObject",'
    '"principal":"arn:aws:sts::130201276659:assumed-role/app-backend/app-backend-9584708748",'
    '"source_ip":"45.155.205.24","user_agent":"curl/7.88.1","bucket":"prod-data-6659",'
    '"object_key":"11/tmp/tmp/c82e3fca.jpg","tags":["attack.discovery","attack.t1078.004"],'
    '"log_object":"examples/sample-trail/x.json.gz"}',
    '{"id":"0b96917a97eaa05cb50d1e3eca5c869f","rule":"f08b8a01-4f82-4fcb-b091-4164a7ad6509",'
    '"title":"Mass deletion of S3 objects by one principal","severity":"high",'
    '"event_ids":["c41264e3-f9a3-4738-90c4-56e7b74e398a","dc5002bd-8974-4918-bbe1-56edd9419d16"],'
    '"event_time":"2026-11-26T04:19:24Z","account":"130201276659","region":"us-east-1",'
    '"event_name":"DeleteObject","principal":"arn:aws:sts::130201276659:assumed-role/app-backend/x",'
    '"source_ip":"45.155.205.24","user_agent":"curl/7.88.1","bucket":"prod-data-6659",'
    '"object_key":"exports/1f9cb741.jpg","count":100,"group":{"userIdentity.arn":"arn:x"},'
    '"tags":["attack.impact"],"log_object":"x.json.gz","first_seen":"2026-11-26T04:19:24Z","window":"5m"}',
]

# Hostile and large values: a newline in the principal (the binary-safe
# path of the native protocol), a 90 KB object key (cut to 64 KiB), an
# 80 KB user agent (the alert field re-serialized within 64 KiB).
HOSTILE = json.dumps({
    "id": "hostile-1", "rule": "r-hostile", "title": "Hostile\nvalues", "severity": "critical",
    "event_ids": ["ev-h"], "event_time": "2026-11-26T04:19:24Z", "account": "111122223333",
    "region": "us-east-1", "event_name": "PutObject", "principal": "arn:aws:iam::1:user/\u20ac\nline2",
    "source_ip": "198.51.100.1", "user_agent": "u" * 80000, "bucket": "b<&>",
    "object_key": "k\u00e9" * 30000,
}, separators=(",", ":"), ensure_ascii=False)

# A private journald: tmpfs on /run and the journal directory (under the
# caller's `unshare -m`), then journald started and waited for.
JOURNALD_MOUNTS = r"""
set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/journal
if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; else mount -t tmpfs tmpfs /var/log; fi
"""
JOURNALD_START = r"""
"$JOURNALD" &
i=0
while [ ! -S /run/systemd/journal/socket ]; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then echo "systemd-journald did not start" >&2; exit 3; fi
    sleep 0.1
done
"""
JOURNALD_UP = JOURNALD_MOUNTS + JOURNALD_START

NAMESPACE_SCRIPT = JOURNALD_MOUNTS + r"""
explain=0
if [ -d /var/lib/systemd/catalog ] && [ -d /usr/lib/systemd/catalog ]; then
    mount -t tmpfs tmpfs /var/lib/systemd/catalog
    mount -t tmpfs tmpfs /usr/lib/systemd/catalog
    cp "$CATALOG" /usr/lib/systemd/catalog/trailwatch.catalog
    journalctl --update-catalog
    explain=1
fi
""" + JOURNALD_START + r"""
"$DRIVER" < "$ALERTS"
journalctl --sync 2>/dev/null || sleep 1
journalctl --no-pager --all -o json MESSAGE_ID=$MESSAGE_ID > "$OUT/entries.json"
if [ $explain = 1 ]; then
    journalctl --no-pager -x -o short MESSAGE_ID=$MESSAGE_ID TRAILWATCH_ALERT_ID=$EXPLAIN_ID > "$OUT/explained.txt"
fi
"""


def journald_path():
    for p in ("/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald"):
        if os.access(p, os.X_OK):
            return p
    return None


def namespace_problem():
    """Why the namespace test cannot run here, or None."""
    if not JOURNAL_SEND:
        return "JOURNAL_SEND (the tests/journal_send driver) is not set"
    if not os.access(JOURNAL_SEND, os.X_OK):
        return f"JOURNAL_SEND={JOURNAL_SEND} is not an executable"
    if os.geteuid() != 0:
        return "not root: cannot mount in a private namespace"
    if not shutil.which("unshare") or not shutil.which("journalctl"):
        return "unshare or journalctl is not installed"
    if not journald_path():
        return "systemd-journald is not installed"
    try:
        p = subprocess.run(["unshare", "-m", "-p", "-f", "--mount-proc", "sh", "-c", "mount -t tmpfs tmpfs /run"],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unshare failed: {e}"
    if p.returncode != 0:
        return f"unshare -m -p is not permitted here: {p.stderr.strip()}"
    return None


def value(entry, name):
    """A field of `journalctl -o json` as text: binary values come as byte arrays."""
    v = entry.get(name)
    if isinstance(v, list) and v and all(isinstance(x, int) for x in v):
        v = bytes(v).decode("utf-8")
    return v


def cut_bytes(s, limit):
    """s cut like sinkfmt does: at a character boundary, "…" within limit bytes."""
    b = s.encode()
    if len(b) <= limit:
        return s
    out, n = [], 0
    for ch in s:
        k = len(ch.encode())
        if n + k + 3 > limit:
            break
        out.append(ch)
        n += k
    return "".join(out) + "\u2026"


def expected_message(a):
    def line(s):
        return "".join(" " if ord(c) < 0x20 or c == "\x7f" else c for c in s)
    msg = f"trailwatch alert [{a['severity']}] {line(a['title'])}"
    parts = [(label, a.get(key)) for label, key in
             (("principal ", "principal"), ("bucket ", "bucket"), ("key ", "object_key"), ("from ", "source_ip"))]
    parts = [label + line(v) for label, v in parts if isinstance(v, str) and v]
    if parts:
        msg += ": " + ", ".join(parts)
    return msg


def utf16_len(s):
    return sum(2 if ord(c) > 0xFFFF else 1 for c in s)


def real_alerts():
    """Alert lines from `trailwatch replay examples/sample-trail`: a single-event
    one and a correlation (with count); the fixed ones without a binary."""
    sample = os.path.join(ROOT, "examples", "sample-trail")
    if os.access(TW, os.X_OK) and os.path.isdir(sample):
        p = subprocess.run([TW, "replay", sample], capture_output=True, text=True, timeout=600)
        lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
        single = next((l for l in lines if '"count"' not in l), None)
        corr = next((l for l in lines if '"count"' in l), None)
        if single and corr:
            return [single, corr]
    return FALLBACK_ALERTS


class CatalogTest(unittest.TestCase):
    """systemd/trailwatch.catalog compiles and defines our MESSAGE_ID (no journald needed)."""

    @unittest.skipUnless(shutil.which("journalctl"), "journalctl is not installed")
    def test_catalog_compiles(self):
        with tempfile.TemporaryDirectory() as root:
            d = os.path.join(root, "usr", "lib", "systemd", "catalog")
            os.makedirs(d)
            shutil.copy(CATALOG, d)
            p = subprocess.run(["journalctl", f"--root={root}", "--update-catalog"], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            p = subprocess.run(["journalctl", f"--root={root}", "--dump-catalog", MESSAGE_ID],
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn(f"-- {MESSAGE_ID}", p.stdout)
            self.assertIn("Subject: trailwatch alert (@TRAILWATCH_SEVERITY@)", p.stdout)
            self.assertIn("Defined-By: trailwatch", p.stdout)
            self.assertIn("Documentation: man:trailwatch(8)", p.stdout)
            self.assertIn("Alert id:   @TRAILWATCH_ALERT_ID@", p.stdout)

    def test_catalog_id_is_the_header_constant(self):
        with open(os.path.join(ROOT, "include", "trailwatch", "sinkfmt.h")) as f:
            self.assertIn(f'#define SINKFMT_JOURNAL_MESSAGE_ID "{MESSAGE_ID}"', f.read())


class JournalSinkTest(unittest.TestCase):
    """Alerts through a private journald, read back field by field."""

    @classmethod
    def setUpClass(cls):
        problem = namespace_problem()
        if problem:
            raise unittest.SkipTest(problem)
        cls.alerts = real_alerts() + [HOSTILE]
        cls.tmp = tempfile.TemporaryDirectory()
        alerts_path = os.path.join(cls.tmp.name, "alerts.jsonl")
        with open(alerts_path, "w") as f:
            f.write("".join(a + "\n" for a in cls.alerts))
        env = dict(os.environ, CATALOG=CATALOG, JOURNALD=journald_path(), DRIVER=os.path.abspath(JOURNAL_SEND),
                   ALERTS=alerts_path, OUT=cls.tmp.name, MESSAGE_ID=MESSAGE_ID,
                   EXPLAIN_ID=json.loads(cls.alerts[0])["id"])
        p = subprocess.run(["unshare", "-m", "-p", "-f", "--mount-proc", "sh", "-c", NAMESPACE_SCRIPT],
                           capture_output=True, text=True, env=env, timeout=120)
        if p.returncode != 0:
            cls.tmp.cleanup()
            raise AssertionError(f"namespace script failed ({p.returncode}): {p.stderr}")
        with open(os.path.join(cls.tmp.name, "entries.json")) as f:
            cls.entries = [json.loads(l) for l in f if l.strip()]
        explained = os.path.join(cls.tmp.name, "explained.txt")
        cls.explained = open(explained).read() if os.path.exists(explained) else None

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def entry(self, alert_id):
        found = [e for e in self.entries if value(e, "TRAILWATCH_ALERT_ID") == alert_id]
        self.assertEqual(len(found), 1, f"entries for {alert_id}: {len(found)} of {len(self.entries)}")
        return found[0]

    def test_every_alert_is_one_entry(self):
        self.assertEqual(len(self.entries), len(self.alerts))

    def test_fields_of_real_alerts(self):
        for line in self.alerts[:-1]:
            a = json.loads(line)
            with self.subTest(alert=a["id"]):
                e = self.entry(a["id"])
                self.assertEqual(value(e, "MESSAGE_ID"), MESSAGE_ID)
                self.assertEqual(value(e, "PRIORITY"), PRIORITY[a["severity"]])
                self.assertEqual(value(e, "SYSLOG_IDENTIFIER"), "trailwatch")
                self.assertEqual(value(e, "MESSAGE"), expected_message(a))
                self.assertEqual(value(e, "TRAILWATCH_EVENT_ID"), a["event_ids"][0])
                for field, key in FIELDS:
                    if a.get(key):
                        self.assertEqual(value(e, field), a[key], field)
                    else:
                        self.assertNotIn(field, e)
                self.assertEqual(value(e, "TRAILWATCH_ALERT"), line)
                self.assertEqual(json.loads(value(e, "TRAILWATCH_ALERT")), a)
                self.assertEqual(e.get("_TRANSPORT"), "journal")

    def test_hostile_values(self):
        a = json.loads(HOSTILE)
        e = self.entry("hostile-1")
        self.assertEqual(value(e, "PRIORITY"), "2")
        self.assertEqual(value(e, "TRAILWATCH_PRINCIPAL"), "arn:aws:iam::1:user/\u20ac\nline2")
        self.assertEqual(value(e, "TRAILWATCH_BUCKET"), "b<&>")
        key = value(e, "TRAILWATCH_OBJECT_KEY")
        self.assertEqual(key, cut_bytes(a["object_key"], VALUE_MAX))
        self.assertLessEqual(len(key.encode()), VALUE_MAX)
        self.assertGreater(len(key.encode()), VALUE_MAX - 8)
        msg = value(e, "MESSAGE")
        self.assertNotIn("\n", msg)
        self.assertTrue(msg.endswith("\u2026"))
        self.assertLessEqual(utf16_len(msg), MESSAGE_MAX)
        self.assertTrue(expected_message(a).startswith(msg[:-1]))
        small = json.loads(value(e, "TRAILWATCH_ALERT"))
        self.assertLessEqual(len(value(e, "TRAILWATCH_ALERT").encode()), VALUE_MAX)
        self.assertIs(small["truncated"], True)
        self.assertEqual(small["id"], "hostile-1")
        self.assertTrue(small["user_agent"].endswith("\u2026"))

    def test_catalog_explains_an_entry(self):
        if self.explained is None:
            self.skipTest("no catalog directories to mount over")
        a = json.loads(self.alerts[0])
        self.assertIn(f"Subject: trailwatch alert ({a['severity']}): rule {a['rule']} matched CloudTrail event "
                      f"{a['event_ids'][0]}", self.explained)
        self.assertIn(f"Alert id:   {a['id']}", self.explained)
        self.assertIn(f"Principal:  {a['principal']}", self.explained)



# `trailwatch run` inside the namespace until alerts.jsonl has $WANT lines
# (or 30 s), $SETTLE seconds more, SIGTERM; then the journal entries that
# match $MATCH.  With STDERR_JOURNAL set, stderr is the journal the way
# systemd's StandardError=journal makes it: JOURNAL_STREAM names it.
RUN_SCRIPT = JOURNALD_UP + r"""
: > "$OUT/run.err"
if [ -n "$STDERR_JOURNAL" ]; then
    export JOURNAL_STREAM="$(stat -c %d:%i "$OUT/run.err")"
fi
"$TW" run -c "$CONFIG" 2>> "$OUT/run.err" &
pid=$!
i=0
while [ "$(wc -l < "$OUT/alerts.jsonl" 2>/dev/null || echo 0)" -lt "$WANT" ] && [ $i -lt 300 ]; do
    i=$((i + 1)); sleep 0.1
done
sleep "$SETTLE"
kill -TERM $pid
wait $pid
journalctl --sync 2>/dev/null || sleep 1
journalctl --no-pager --all -o json "$MATCH" > "$OUT/entries.json"
"""


def run_in_journal(tmp, config, want, settle, match, stderr_journal=False):
    """Runs RUN_SCRIPT in a private mount and pid namespace; returns the
    process, trailwatch's stderr and the matching entries' JSON text."""
    env = dict(os.environ, JOURNALD=journald_path(), TW=os.environ["TW"], CONFIG=config, OUT=tmp,
               WANT=str(want), SETTLE=str(settle), MATCH=match, STDERR_JOURNAL="1" if stderr_journal else "")
    p = subprocess.run(["unshare", "-m", "-p", "-f", "--mount-proc", "sh", "-c", RUN_SCRIPT],
                       capture_output=True, text=True, env=env, timeout=180)
    texts = []
    for name in ("run.err", "entries.json"):
        path = os.path.join(tmp, name)
        if not os.path.exists(path):
            texts.append("")
            continue
        with open(path) as f:
            texts.append(f.read())
    return p, texts[0], texts[1]


class RunJournalTest(unittest.TestCase):
    """`trailwatch run` with a journal sink (and a file sink to compare), end to
    end, against a private journald."""

    def test_run_logs_each_alert_to_the_journal(self):
        problem = namespace_problem() or (None if os.environ.get("TW") else "TW is not set")
        if problem:
            self.skipTest(problem)
        with tempfile.TemporaryDirectory() as tmp:
            inbox = os.path.join(tmp, "inbox")
            os.makedirs(inbox)
            subprocess.run(["cp", "-r", os.path.join(ROOT, "examples", "sample-trail"), inbox], check=True)
            old = time.time() - 60
            for d, _, files in os.walk(inbox):
                for f in files:
                    os.utime(os.path.join(d, f), (old, old))
            want = subprocess.run([os.environ["TW"], "replay", inbox], capture_output=True, text=True).stdout
            want_ids = sorted(json.loads(l)["id"] for l in want.splitlines())
            config = os.path.join(tmp, "c.yaml")
            with open(config, "w") as f:
                f.write(f"state_dir: {tmp}/state\nsources:\n  - {{type: dir, path: {inbox}, poll_interval: 1s}}\n"
                        f"sinks:\n  - {{type: journal}}\n  - {{type: file, path: {tmp}/alerts.jsonl}}\n")
            p, err, raw = run_in_journal(tmp, config, len(want_ids), 1, "MESSAGE_ID=" + MESSAGE_ID)
            self.assertEqual(p.returncode, 0, p.stderr + err)
            entries = [json.loads(l) for l in raw.splitlines() if l.strip()]
            got = sorted(value(e, "TRAILWATCH_ALERT_ID") for e in entries)
            self.assertGreater(len(want_ids), 50)
            self.assertEqual(got, want_ids, err)
            self.assertIn("sink journal: %d sent" % len(want_ids), err)



class RunLogsToJournalTest(unittest.TestCase):
    """`trailwatch run`'s own messages, when stderr is the journal (JOURNAL_STREAM),
    go to journald natively with structured fields; secrets stay out."""

    def test_messages_are_structured_journal_entries(self):
        problem = namespace_problem() or (None if os.environ.get("TW") else "TW is not set")
        if problem:
            self.skipTest(problem)
        from twtest import record, write_log
        secret_url = "http://127.0.0.1:9/hook-SECRET-TOKEN-4f1a"
        with tempfile.TemporaryDirectory() as tmp:
            inbox = os.path.join(tmp, "inbox")
            bad = os.path.join(inbox, "111122223333_CloudTrail_us-east-1_20261126T1000Z_bad.json")
            os.makedirs(inbox)
            with open(bad, "w") as f:
                f.write('{"Records": [ {"eventVersion": "1.09", oops} ]}')
            write_log(os.path.join(inbox, "111122223333_CloudTrail_us-east-1_20261126T1005Z_good.json.gz"),
                      [record(eventName="DeleteBucket", requestParameters={"bucketName": "v", "Host": "s3.amazonaws.com"})])
            old = time.time() - 60
            for name in os.listdir(inbox):
                os.utime(os.path.join(inbox, name), (old, old))
            with open(os.path.join(tmp, "hook-url"), "w") as f:
                f.write(secret_url + "\n")
            config = os.path.join(tmp, "c.yaml")
            with open(config, "w") as f:
                f.write(f"state_dir: {tmp}/state\nsources:\n  - {{type: dir, path: {inbox}, poll_interval: 1s}}\n"
                        f"sinks:\n  - {{type: file, path: {tmp}/alerts.jsonl}}\n"
                        f"  - {{name: hook, type: webhook, url_file: {tmp}/hook-url}}\n")
            p, err, raw = run_in_journal(tmp, config, 1, 2, "SYSLOG_IDENTIFIER=trailwatch", stderr_journal=True)
            self.assertEqual(p.returncode, 0, p.stderr + err)
            self.assertEqual(err, "")           # everything went to the journal, natively
            entries = [json.loads(l) for l in raw.splitlines() if l.strip()]
            self.assertNotIn("SECRET-TOKEN", raw)
            # the bad object: an error naming the source and the object
            bad_entries = [e for e in entries if value(e, "TRAILWATCH_OBJECT") == bad]
            self.assertTrue(bad_entries, [value(e, "MESSAGE") for e in entries])
            self.assertEqual(value(bad_entries[0], "PRIORITY"), "3")
            self.assertEqual(value(bad_entries[0], "TRAILWATCH_SOURCE"), inbox)
            self.assertIn("bad.json", value(bad_entries[0], "MESSAGE"))
            # the unreachable sink: a warning naming it
            hook = [e for e in entries if value(e, "TRAILWATCH_SINK") == "hook" and value(e, "PRIORITY") == "4"]
            self.assertTrue(hook, [value(e, "MESSAGE") for e in entries])
            # the exit summary carries counts as fields
            summary = [e for e in entries if value(e, "TRAILWATCH_SOURCE") == inbox and value(e, "TRAILWATCH_OBJECTS")]
            self.assertEqual([value(e, "TRAILWATCH_OBJECTS") for e in summary], ["2"])
            self.assertEqual(value(summary[0], "TRAILWATCH_FAILED"), "0")
            self.assertEqual(value(summary[0], "PRIORITY"), "6")


if __name__ == "__main__":
    unittest.main()
