"""`trailwatch run` as systemd sees it, without systemd as PID 1.

NOTIFY_SOCKET points at this test's own datagram socket and WATCHDOG_USEC is
set, as a Type=notify unit with WatchdogSec= would do.  Checked: READY=1
only once the sources are set up (and never when they cannot be); STATUS=
kept current; WATCHDOG=1 at half the interval, and none while S3 says nothing; RELOADING=1 with
MONOTONIC_USEC, then READY=1, on SIGHUP; a bad configuration on reload is
reported with file:line:column and the old one keeps running; correlation
state of unchanged rules survives a reload, that of a changed rule does not;
STOPPING=1 and exit 0 on SIGTERM.
"""
import os
import signal
import socket
import tempfile
import threading
import time
import unittest

import receivers
import twtest
from test_run import Runner

WATCHDOG_USEC = 1000000


class NotifySocket:
    """A datagram socket standing in for systemd's: every message, timed."""

    def __init__(self, path):
        self.path = path
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(path)
        self.s.settimeout(0.2)
        self.msgs = []          # (monotonic time, {key: value})
        self._stop = False
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        while not self._stop:
            try:
                data = self.s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = {}
            for line in data.decode().split("\n"):
                if "=" in line:
                    k, v = line.split("=", 1)
                    fields[k] = v
            self.msgs.append((time.monotonic(), fields))

    def close(self):
        self._stop = True
        self._t.join(2)
        self.s.close()

    def having(self, key):
        return [(t, m) for t, m in list(self.msgs) if key in m]

    def wait_for(self, key, n=1, timeout=30, value=None):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = [(t, m) for t, m in self.having(key) if value is None or m[key] == value]
            if len(got) >= n:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{key} x{n} not received in {timeout}s; got {self.msgs}")


def denied(i, arn="arn:aws:iam::111122223333:user/mallory"):
    return twtest.record(eventName="GetObject", errorCode="AccessDenied", eventID="10000000-0000-4000-8000-%012d" % i,
                         eventTime="2026-11-26T10:00:%02dZ" % i,
                         userIdentity={"type": "IAMUser", "arn": arn, "accountId": "111122223333"},
                         requestParameters={"bucketName": "b", "key": "k%d" % i, "Host": "b.s3.amazonaws.com"})


def delete_bucket(i):
    return twtest.record(eventName="DeleteBucket", eventID="20000000-0000-4000-8000-%012d" % i,
                         eventTime="2026-11-26T11:00:%02dZ" % i,
                         requestParameters={"bucketName": "victim-%d" % i, "Host": "s3.amazonaws.com"})


BASE_RULE = """title: Denied
name: t_denied
id: 3c0ad1d4-0000-4000-8000-000000000001
logsource: {product: aws, service: cloudtrail}
detection:
    selection: {eventSource: s3.amazonaws.com, errorCode: AccessDenied}
    condition: selection
level: low
"""

CORR_RULE = """title: Three denials
id: 3c0ad1d4-0000-4000-8000-000000000002
correlation:
    type: event_count
    rules: [t_denied]
    group-by: [userIdentity.arn]
    timespan: 1h
    condition: {gte: 3}
level: high
"""

DELETE_RULE = """title: Bucket deleted
id: 3c0ad1d4-0000-4000-8000-000000000003
logsource: {product: aws, service: cloudtrail}
detection:
    selection: {eventSource: s3.amazonaws.com, eventName: DeleteBucket}
    condition: selection
level: high
"""


THROTTLED_RULE = DELETE_RULE + """trailwatch:
    throttle:
        timespan: 1h
"""


class ServiceTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-svc-")
        self.tmp = self._tmp.name
        self.inbox = os.path.join(self.tmp, "inbox")
        self.state = os.path.join(self.tmp, "state")
        self.rules = os.path.join(self.tmp, "rules")
        os.makedirs(self.inbox)
        os.makedirs(self.rules)
        self.config = os.path.join(self.tmp, "trailwatch.yaml")
        self.write_config()
        self.write_rules(BASE_RULE + "---\n" + CORR_RULE)
        self.sock = NotifySocket(os.path.join(self.tmp, "notify.sock"))
        self.n = 0
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            d.stop(signal.SIGKILL)
        self.sock.close()
        self._tmp.cleanup()

    def write_config(self, extra=""):
        with open(self.config, "w") as f:
            f.write(f"state_dir: {self.state}\nrules: [{self.rules}]\n"
                    f"sources:\n  - {{type: dir, path: {self.inbox}, poll_interval: 1s}}\n{extra}")

    def write_rules(self, text, name="local.yml"):
        with open(os.path.join(self.rules, name), "w") as f:
            f.write(text)

    def drop(self, records):
        twtest.drop_log(self.inbox, self.n, records)
        self.n += 1

    def start(self, env_extra=None):
        env = dict(os.environ)
        env.pop("JOURNAL_STREAM", None)
        env["NOTIFY_SOCKET"] = self.sock.path
        env["WATCHDOG_USEC"] = str(WATCHDOG_USEC)
        env.update(env_extra or {})
        d = Runner(self.config, env)
        self.daemons.append(d)
        return d

    def wait_alerts(self, d, n, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(d.alerts()) < n:
            time.sleep(0.1)
        return d.alerts()

    def test_ready_status_watchdog_stopping(self):
        self.drop([delete_bucket(1)])
        self.write_rules(DELETE_RULE, "delete.yml")
        d = self.start()
        t_ready, ready = self.sock.wait_for("READY")[0]
        # READY came after the source and the spool were set up
        self.assertTrue(os.path.isdir(os.path.join(self.state, "spool")))
        self.assertTrue(os.path.isdir(os.path.join(self.state, "checkpoints")))
        self.assertRegex(ready.get("STATUS", ""), r"^1 source, \d+ objects, \d+ alerts, stdout: \d+ pending$")
        self.assertEqual(len(self.wait_alerts(d, 1)), 1)
        # STATUS is refreshed and counts what happened
        end = time.monotonic() + 20
        while time.monotonic() < end:
            statuses = [m["STATUS"] for t, m in self.sock.having("STATUS") if t > t_ready]
            if any(s.startswith("1 source, 1 objects, 1 alerts") for s in statuses):
                break
            time.sleep(0.2)
        else:
            self.fail(f"no STATUS with the alert counted: {statuses}")
        # the watchdog: pings at half the interval, never a gap of a whole one
        time.sleep(3)
        pings = [t for t, m in self.sock.having("WATCHDOG")]
        self.assertGreaterEqual(len(pings), 5, pings)
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        self.assertLess(max(gaps), WATCHDOG_USEC / 1e6 * 0.9, gaps)
        self.assertGreater(min(gaps), WATCHDOG_USEC / 1e6 * 0.4, gaps)
        self.assertEqual(d.stop(), 0, d.stderr())
        stopping = self.sock.wait_for("STOPPING", timeout=5)
        self.assertGreater(stopping[0][0], pings[-1] - 1)
        self.assertEqual(len(self.sock.having("READY")), 1)

    def test_watchdog_stops_while_s3_says_nothing(self):
        # S3 that never answers: the LIST gets no byte, which is no progress,
        # so the pings stop one interval after the last progress (docs/service.md,
        # "Watchdog"); in production the request is cut well before systemd
        # would act (30 s of silence, or request_timeout), and that end is
        # progress again (tests/test_fault_stall.py has the GET cases)
        with receivers.Receiver() as s3:
            s3.hang()
            with open(self.config, "w") as f:
                f.write(f"state_dir: {self.state}\nsources:\n  - {{type: s3, bucket: trail, region: us-east-1, "
                        f"endpoint: '{s3.base_url}', path_style: true}}\n")
            d = self.start({"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
                            "AWS_EC2_METADATA_DISABLED": "true", "WATCHDOG_USEC": "2000000"})
            t_ready = self.sock.wait_for("READY")[0][0]
            end = time.monotonic() + 20
            while time.monotonic() < end and s3.hanging() == 0:
                time.sleep(0.1)
            self.assertGreater(s3.hanging(), 0)
            t_hang = time.monotonic()
            time.sleep(6)
            self.assertGreater(s3.hanging(), 0)     # still the same request
            late = [t for t, m in self.sock.having("WATCHDOG") if t > t_hang + 2.5]
            self.assertEqual(late, [], self.sock.msgs)
            self.assertGreater(t_hang, t_ready)
            # SIGTERM abandons the hanging request at once (TimeoutStopSec=30
            # would not wait for libcurl's own timeout)
            t = time.monotonic()
            self.assertEqual(d.stop(), 0, d.stderr())
            self.assertLess(time.monotonic() - t, 5)

    def test_reload_reports_what_a_changed_throttle_held(self):
        self.write_rules(THROTTLED_RULE, "delete.yml")
        d = self.start()
        self.sock.wait_for("READY")
        self.drop([delete_bucket(1), delete_bucket(2), delete_bucket(3)])
        self.assertEqual(len(self.wait_alerts(d, 1)), 1)
        time.sleep(2)
        self.assertEqual(len(d.alerts()), 1)        # two held back
        # the throttled rule changes: what it held is reported at the reload,
        # not lost with the old rule set
        self.write_rules(THROTTLED_RULE.replace("level: high", "level: critical"), "delete.yml")
        d.p.send_signal(signal.SIGHUP)
        self.sock.wait_for("READY", n=2)
        alerts = self.wait_alerts(d, 2, timeout=10)
        self.assertEqual(len(alerts), 2, d.stderr())
        self.assertEqual(alerts[1]["count"], 3)
        self.assertEqual(alerts[1]["severity"], "high")    # the old rule's summary
        self.assertEqual(d.stop(), 0, d.stderr())
        self.assertEqual(len(d.alerts()), 2)

    def test_no_ready_when_a_source_cannot_be_set_up(self):
        # an S3 source with no credentials anywhere: the service must not claim to be ready
        self.write_config()
        with open(self.config, "a") as f:
            f.write("  - {type: s3, bucket: trail, region: us-east-1, endpoint: 'http://127.0.0.1:9'}\n")
        env = {"AWS_SHARED_CREDENTIALS_FILE": os.path.join(self.tmp, "none"),
               "AWS_CONFIG_FILE": os.path.join(self.tmp, "none"), "AWS_EC2_METADATA_DISABLED": "true",
               "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
        d = self.start(env)
        code = d.p.wait(60)
        self.assertEqual(code, 1, d.stderr())
        time.sleep(0.3)
        self.assertEqual(self.sock.having("READY"), [], d.stderr())

    def test_reload_keeps_unchanged_correlations_and_survives_a_bad_config(self):
        d = self.start()
        self.sock.wait_for("READY")
        self.drop([denied(1), denied(2)])
        time.sleep(2.5)
        self.assertEqual(d.alerts(), [])        # two of the three denials
        # a new rule file: the correlation itself is unchanged
        self.write_rules(DELETE_RULE, "delete.yml")
        d.p.send_signal(signal.SIGHUP)
        reloading = self.sock.wait_for("RELOADING")
        self.assertIn("MONOTONIC_USEC", reloading[0][1])
        mono = int(reloading[0][1]["MONOTONIC_USEC"])
        self.assertLess(abs(mono / 1e6 - time.clock_gettime(time.CLOCK_MONOTONIC)), 30)
        ready = self.sock.wait_for("READY", n=2)
        self.assertGreater(ready[1][0], reloading[0][0])
        self.drop([denied(3), delete_bucket(1)])
        alerts = self.wait_alerts(d, 2)
        self.assertEqual(sorted(a["title"].split(" (")[0] for a in alerts), ["Bucket deleted", "Three denials"],
                         d.stderr())
        self.assertIn("1 kept their correlation", d.stderr())

        # a broken config: logged with its place, the old set keeps running
        with open(self.config, "a") as f:
            f.write("sinks:\n  - {type: carrier-pigeon}\n")
        d.p.send_signal(signal.SIGHUP)
        self.sock.wait_for("RELOADING", n=2)
        self.sock.wait_for("READY", n=3)
        time.sleep(0.5)
        self.assertRegex(d.stderr(), r"trailwatch\.yaml:6:\d+: a sink needs a type")
        self.assertIn("the previous configuration and rules keep running", d.stderr())
        self.drop([delete_bucket(2)])
        self.assertEqual(len(self.wait_alerts(d, 3)), 3)

        # a broken rule: the same
        self.write_config()
        self.write_rules("title: x\nlogsource: {product: aws, service: cloudtrail}\ndetection: {sel: {a: 1}, "
                         "condition: nope}\n", "broken.yml")
        d.p.send_signal(signal.SIGHUP)
        self.sock.wait_for("READY", n=4)
        time.sleep(0.5)
        self.assertRegex(d.stderr(), r"broken\.yml:\d+:\d+: ")
        os.unlink(os.path.join(self.rules, "broken.yml"))

        # the correlation rule changes (a higher threshold): its state starts over
        self.drop([denied(4, arn="arn:aws:iam::111122223333:user/eve"),
                   denied(5, arn="arn:aws:iam::111122223333:user/eve")])
        time.sleep(2.5)
        self.write_rules(BASE_RULE + "---\n" + CORR_RULE.replace("gte: 3", "gte: 4"))
        d.p.send_signal(signal.SIGHUP)
        self.sock.wait_for("READY", n=5)
        self.drop([denied(6, arn="arn:aws:iam::111122223333:user/eve"),
                   denied(7, arn="arn:aws:iam::111122223333:user/eve")])
        time.sleep(3)
        # four denials by eve in all, but only two since the rule changed
        self.assertEqual(len(d.alerts()), 3, d.alerts())
        self.drop([denied(8, arn="arn:aws:iam::111122223333:user/eve"),
                   denied(9, arn="arn:aws:iam::111122223333:user/eve")])
        self.assertEqual(len(self.wait_alerts(d, 4)), 4)
        self.assertEqual(d.stop(), 0, d.stderr())
        self.sock.wait_for("STOPPING", timeout=5)


if __name__ == "__main__":
    unittest.main()
