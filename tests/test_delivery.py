"""Alert delivery: `trailwatch run` with sinks pointed at local HTTP receivers
(tests/receivers.py), fed by a `type: dir` source.

Checked: every alert reaches every sink once (webhook with a verified HMAC,
Slack, Teams and PagerDuty payloads valid, a file); a receiver that is down
for a while gets everything once it is back; 429 Retry-After is honoured;
a 400 is final and the alert is kept as a dead letter; kill -9 during
delivery repeats at most the alert in flight per sink; severity filters;
no secret appears in anything trailwatch prints.
"""
import json
import os
import signal
import tempfile
import time
import unittest

import receivers
import twtest
from test_run import Runner

SECRET = "hmac-secret-8d1f0c"
ROUTING_KEY = "R0UTINGKEYR0UTINGKEYR0UTINGKEY12"


def events(n, start=0):
    """n DeleteBucket records (one single-event alert each, high severity)."""
    out = []
    for i in range(start, start + n):
        out.append(twtest.record(eventName="DeleteBucket", eventID="00000000-0000-4000-8000-%012d" % i,
                                 eventTime="2026-11-26T10:%02d:%02dZ" % (i // 60 % 60, i % 60),
                                 requestParameters={"bucketName": "victim-%d" % i, "Host": "s3.amazonaws.com"},
                                 tlsDetails={"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                                             "clientProvidedHostHeader": "s3.amazonaws.com"}))
    return out


class Env:
    def __init__(self, tmp):
        self.tmp = tmp
        self.inbox = os.path.join(tmp, "inbox")
        self.state = os.path.join(tmp, "state")
        os.makedirs(self.inbox)
        self.config = os.path.join(tmp, "trailwatch.yaml")
        self.n = 0

    def drop(self, records):
        """A log file in the inbox, old enough to be read at once."""
        twtest.drop_log(self.inbox, self.n, records)
        self.n += 1

    def write(self, sinks):
        with open(self.config, "w") as f:
            f.write(f"state_dir: {self.state}\nsources:\n  - {{type: dir, path: {self.inbox}, poll_interval: 1s}}\n"
                    f"sinks:\n{sinks}")


def alert_ids(reqs):
    return [r.header("X-Trailwatch-Alert-Id") for r in reqs]


class DeliveryTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-deliv-")
        self.e = Env(self._tmp.name)
        self.runners = []

    def tearDown(self):
        for r in self.runners:
            r.stop(signal.SIGKILL)
        self._tmp.cleanup()

    def start(self):
        env = dict(os.environ)
        env["CREDENTIALS_DIRECTORY"] = self._tmp.name
        r = Runner(self.e.config, env)
        self.runners.append(r)
        return r

    def webhook_and_archive(self, name, url, spool):
        """Configures a webhook sink and a file sink 'archive', and the spool
        (YAML flow mapping); returns the archive's path."""
        out = os.path.join(self._tmp.name, "alerts.jsonl")
        self.e.write(f"  - {{name: {name}, type: webhook, url: '{url}'}}\n"
                     f"  - {{name: archive, type: file, path: {out}}}\n")
        with open(self.e.config, "a") as f:
            f.write(f"spool: {spool}\n")
        return out

    def test_every_sink_gets_every_alert_once(self):
        with receivers.Receiver() as hook, receivers.Receiver() as slack, receivers.Receiver() as teams, \
                receivers.Receiver() as pd:
            with open(os.path.join(self._tmp.name, "slack-url"), "w") as f:
                f.write(slack.url + "\n")
            out = os.path.join(self._tmp.name, "alerts.jsonl")
            self.e.write(f"""  - {{name: soar, type: webhook, url: '{hook.url}', hmac_secret: {SECRET}, headers: {{X-Team: soc}}}}
  - {{name: soc-slack, type: slack, url_credential: slack-url}}
  - {{name: teams, type: teams, url: '{teams.url}'}}
  - {{name: pd, type: pagerduty, routing_key: {ROUTING_KEY}, endpoint: '{pd.url}', min_severity: critical}}
  - {{name: archive, type: file, path: {out}}}
""")
            self.e.drop(events(4))
            r = self.start()
            hook.wait_for(4, timeout=30)
            slack.wait_for(4, timeout=30)
            teams.wait_for(4, timeout=30)
            time.sleep(1.5)
            self.assertEqual(r.stop(), 0, r.stderr())
            ids = alert_ids(hook.requests())
            self.assertEqual(len(ids), 4)
            self.assertEqual(len(set(ids)), 4)
            seen = set()
            for q in hook.requests():
                self.assertIsNone(receivers.hmac_problem(q, SECRET.encode(), seen=seen))
                self.assertEqual(q.header("X-Team"), "soc")
                self.assertEqual(q.json()["id"], q.header("X-Trailwatch-Alert-Id"))
            for q in slack.requests():
                self.assertEqual(receivers.slack_problems(q.body), [])
            for q in teams.requests():
                self.assertEqual(receivers.teams_problems(q.body), [])
            self.assertEqual(sorted(alert_ids(slack.requests())), sorted(ids))
            # DeleteBucket alerts are high, not critical: PagerDuty filtered them
            self.assertEqual(pd.requests(), [])
            with open(out) as f:
                self.assertEqual(sorted(json.loads(l)["id"] for l in f), sorted(ids))
            self.assertEqual(r.lines, [])   # stdout is not a configured sink
            # Slack got at most one message a second
            times = [q.time for q in slack.requests()]
            for a, b in zip(times, times[1:]):
                self.assertGreaterEqual(b - a, 0.9)
            for text in (r.stderr(), "".join(r.lines)):
                for secret in (SECRET, slack.url, ROUTING_KEY):
                    self.assertNotIn(secret, text)

    def test_pagerduty_and_a_receiver_down_for_a_while(self):
        with receivers.Receiver() as pd:
            self.e.write(f"  - {{name: pd, type: pagerduty, routing_key: {ROUTING_KEY}, endpoint: '{pd.url}'}}\n")
            pd.down()
            self.e.drop(events(5))
            r = self.start()
            time.sleep(4)
            pd.up()
            pd.wait_for(5, timeout=60)
            time.sleep(1)
            self.assertEqual(r.stop(), 0, r.stderr())
            got = [q.json() for q in pd.requests()]
            self.assertEqual(len(got), 5)
            self.assertEqual(len({g["dedup_key"] for g in got}), 5)
            for g in got:
                self.assertEqual(receivers.pagerduty_problems(g), [])
                self.assertEqual(g["routing_key"], ROUTING_KEY)
            self.assertIn("sink pd:", r.stderr())
            self.assertNotIn(ROUTING_KEY, r.stderr())

    def test_429_retry_after_and_a_final_400(self):
        with receivers.Receiver() as hook:
            self.e.write(f"  - {{name: hook, type: webhook, url: '{hook.url}'}}\n")
            hook.rate_limit(retry_after=2, n=2)
            hook.fail(400, b'{"error":"schema"}', n=1)
            self.e.drop(events(3))
            r = self.start()
            hook.wait_for(5, timeout=30)
            time.sleep(1)
            self.assertEqual(r.stop(), 0, r.stderr())
            reqs = hook.requests()
            self.assertEqual(hook.answers(), ["429", "429", "400", "200", "200"])
            self.assertGreaterEqual(reqs[1].time - reqs[0].time, 1.9)   # Retry-After: 2
            self.assertGreaterEqual(reqs[2].time - reqs[1].time, 1.9)
            dead = os.path.join(self.e.state, "dead-letter", "hook")
            self.assertEqual(len(os.listdir(dead)), 1)
            self.assertIn('{\\"error\\":\\"schema\\"}', open(os.path.join(dead, os.listdir(dead)[0])).read())
            self.assertIn("refused with HTTP 400", r.stderr())
            ok = [q.header("X-Trailwatch-Alert-Id") for q in reqs if q.answer == "200"]
            self.assertEqual(len(set(ok + [reqs[2].header("X-Trailwatch-Alert-Id")])), 3)

    def test_a_dead_sink_does_not_hold_the_others_when_the_spool_is_full(self):
        with receivers.Receiver() as dead:
            out = self.webhook_and_archive("dead", dead.url, "{max_size: 64KiB}")
            dead.down()
            for k in range(8):      # 400 alerts of about 1 KB: several times the spool
                self.e.drop(events(50, start=50 * k))
            r = self.start()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if os.path.exists(out) and sum(1 for _ in open(out)) >= 400:
                    break
                time.sleep(0.2)
            self.assertEqual(r.stop(), 0, r.stderr())
            with open(out) as f:
                ids = [json.loads(l)["id"] for l in f]
            self.assertEqual(len(ids), 400)          # the file sink got everything
            self.assertEqual(len(set(ids)), 400)
            self.assertIn("spool full: sink dead had", r.stderr())
            evicted = os.listdir(os.path.join(self.e.state, "dead-letter", "dead"))
            self.assertGreater(len(evicted), 300)     # kept, not silently lost
            self.assertNotIn("dropped", r.stderr())

    def test_alerts_older_than_max_age_become_dead_letters(self):
        with receivers.Receiver() as hook:
            out = self.webhook_and_archive("hook", hook.url, "{max_age: 3s}")
            hook.down()
            self.e.drop(events(5))
            r = self.start()
            deadline = time.monotonic() + 30
            dead = os.path.join(self.e.state, "dead-letter", "hook")
            while time.monotonic() < deadline and len(os.listdir(dead) if os.path.isdir(dead) else []) < 5:
                time.sleep(0.2)
            hook.up()
            self.e.drop(events(2, start=100))   # fresh alerts still go out
            hook.wait_for(2, timeout=30)
            time.sleep(1)
            self.assertEqual(r.stop(), 0, r.stderr())
            self.assertEqual(len(os.listdir(dead)), 5)
            for name in os.listdir(dead):
                with open(os.path.join(dead, name)) as f:
                    self.assertIn("spool.max_age", f.read())
            # the receiver got only the two fresh ones, once each
            ok = [q.header("X-Trailwatch-Alert-Id") for q in hook.requests() if q.answer == "200"]
            self.assertEqual(len(ok), 2)
            self.assertEqual(len(set(ok)), 2)
            self.assertNotIn(os.path.splitext(os.listdir(dead)[0])[0], ok)
            # the file sink, which was never down, got all seven
            with open(out) as f:
                self.assertEqual(len({json.loads(l)["id"] for l in f}), 7)
            self.assertIn("waited longer than spool.max_age", r.stderr())
            self.assertIn("5 expired", r.stderr())

    def test_a_sink_added_by_a_reload(self):
        a = os.path.join(self._tmp.name, "a.jsonl")
        b = os.path.join(self._tmp.name, "b.jsonl")

        def count(path):
            return sum(1 for _ in open(path)) if os.path.exists(path) else 0

        def wait(path, n):
            end = time.monotonic() + 30
            while time.monotonic() < end and count(path) < n:
                time.sleep(0.1)
            return count(path)

        self.e.write(f"  - {{name: a, type: file, path: {a}}}\n")
        self.e.drop(events(3))
        r = self.start()
        self.assertEqual(wait(a, 3), 3)
        self.e.write(f"  - {{name: a, type: file, path: {a}}}\n  - {{name: b, type: file, path: {b}}}\n")
        r.p.send_signal(signal.SIGHUP)
        end = time.monotonic() + 30
        while time.monotonic() < end and "reloaded:" not in r.stderr():
            time.sleep(0.1)
        self.e.drop(events(2, start=10))
        self.assertEqual(wait(a, 5), 5)
        self.assertEqual(wait(b, 2), 2)
        time.sleep(1)
        self.assertEqual(r.stop(), 0, r.stderr())
        # the new sink starts with the alerts raised after it came: 2, not 5
        self.assertEqual((count(a), count(b)), (5, 2))
        with open(a) as fa, open(b) as fb:
            self.assertLess({json.loads(l)["id"] for l in fb}, {json.loads(l)["id"] for l in fa})

    def test_replay_into_the_sinks(self):
        with receivers.Receiver() as hook:
            self.e.write(f"  - {{name: hook, type: webhook, url: '{hook.url}', hmac_secret: {SECRET}}}\n")
            self.e.drop(events(5))
            p = twtest.tw("replay", "-c", self.e.config, "--sinks", self.e.inbox, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout, "")               # the alerts went to the sink instead
            self.assertEqual(hook.counts()["total"], 5)
            for q in hook.requests():
                self.assertTrue(receivers.verify_hmac(q, SECRET.encode()))
            # replaying again sends nothing: the ids are remembered in the spool
            p = twtest.tw("replay", "-c", self.e.config, "--sinks", self.e.inbox, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(hook.counts()["total"], 5)
            # and without --sinks, replay prints as before
            p = twtest.tw("replay", "-c", self.e.config, self.e.inbox)
            self.assertEqual(len(twtest.alerts_of(p.stdout)), 5)

    def test_kill_9_during_delivery(self):
        with receivers.Receiver() as hook:
            self.e.write(f"  - {{name: hook, type: webhook, url: '{hook.url}'}}\n")
            self.e.drop(events(6))
            kills = 0
            for i in range(5):
                hook.hang(n=1)   # one request in flight when the kill lands
                r = self.start()
                time.sleep(1.5)
                r.stop(signal.SIGKILL)
                kills += 1
                hook.release()
            r = self.start()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len({q.header("X-Trailwatch-Alert-Id") for q in hook.requests()
                                                       if q.answer == "200"}) < 6:
                time.sleep(0.2)
            time.sleep(1)
            self.assertEqual(r.stop(), 0, r.stderr())
            delivered = [q.header("X-Trailwatch-Alert-Id") for q in hook.requests() if q.answer == "200"]
            self.assertEqual(len(set(delivered)), 6)
            # a repeat can only be an alert that was in flight (answered "hang") when a kill came
            hung = {q.header("X-Trailwatch-Alert-Id") for q in hook.requests() if q.answer == "hang"}
            repeats = len(delivered) - len(set(delivered))
            self.assertEqual(repeats, 0)
            self.assertLessEqual(len(hung), kills)


if __name__ == "__main__":
    unittest.main()
