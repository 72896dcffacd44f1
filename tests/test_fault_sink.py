"""Faults in a sink's answer: `trailwatch run` with a webhook sink pointed at a
local receiver (tests/receivers.py), fed by a `type: dir` source.

A receiver's answer is judged by its status, whatever its body: a 2xx
acks the alert and a final 4xx dead-letters it even when the body is far
larger than the part trailwatch keeps (64 KiB); a 3xx is final too (a
redirect is never followed: it could send the alert to another host), and
its error names the status and where the redirect pointed, without the
Location's path (it may hold a token).  Each FaultSinkTest case fails on
the code before this was fixed: there, a body over the limit was a network
error and a 3xx a retry, so the first alert was POSTed again and again and
the others never went out.  WholeBodyTest is a guard that passes on both:
the credential chain, which needs all of a body, still refuses one over
its limit.
"""
import json
import os
import signal
import subprocess
import tempfile
import time
import unittest

import receivers
from test_delivery import Env, alert_ids, events
from test_run import Runner

BIG = 200 << 10         # a body well past the 64 KiB kept of an answer
QUIET = 2.0             # seconds without a new request that mean "not retried"
CREDS_TOOL = os.environ.get("CREDS_TOOL")


def big_body(head):
    return head + b"x" * (BIG - len(head))


class FaultSinkTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-fault-sink-")
        self.e = Env(self._tmp.name)
        self.runners = []

    def tearDown(self):
        for r in self.runners:
            r.stop(signal.SIGKILL)
        self._tmp.cleanup()

    def run_against(self, hook, n):
        """Runs trailwatch with one webhook sink at hook on n alerts; returns
        the Runner once n requests came and then none for QUIET seconds
        (a retry comes within about a second, the backoff's first step)."""
        self.e.write(f"  - {{name: hook, type: webhook, url: '{hook.url}'}}\n")
        self.e.drop(events(n))
        r = Runner(self.e.config, dict(os.environ))
        self.runners.append(r)
        hook.wait_for(n, timeout=15)
        seen = hook.counts()["total"]
        deadline = time.monotonic() + QUIET
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if hook.counts()["total"] != seen:
                seen = hook.counts()["total"]
                deadline = time.monotonic() + QUIET
                if seen > 3 * n:
                    break       # retried over and over: enough to see it
        self.assertEqual(r.stop(), 0, r.stderr())
        return r

    def dead_letters(self):
        dead = os.path.join(self.e.state, "dead-letter", "hook")
        out = {}
        for name in sorted(os.listdir(dead)) if os.path.isdir(dead) else []:
            with open(os.path.join(dead, name)) as f:
                out[name[:-len(".json")]] = json.load(f)
        return out

    def test_200_with_a_large_body_is_delivered_once(self):
        with receivers.Receiver() as hook:
            hook.respond(200, big_body(b'{"ok":true}'))
            r = self.run_against(hook, 3)
            ids = alert_ids(hook.requests())
            self.assertEqual(hook.answers(), ["200"] * 3, r.stderr())
            self.assertEqual(len(set(ids)), 3, f"re-POSTed: {ids}")
            self.assertEqual(self.dead_letters(), {})
            self.assertNotIn("larger than the limit", r.stderr())

    def test_200_with_an_endless_body_is_delivered_once(self):
        # past what is read and thrown away (1 MiB): the transfer is cut
        # short and the status still stands
        with receivers.Receiver() as hook:
            hook.respond(200, big_body(b"ok") * 20)
            r = self.run_against(hook, 2)
            ids = alert_ids(hook.requests())
            self.assertEqual(hook.answers(), ["200"] * 2, r.stderr())
            self.assertEqual(len(set(ids)), 2, f"re-POSTed: {ids}")
            self.assertIn("2 sent, 0 retried", r.stderr())

    def test_400_with_a_large_body_is_dead_lettered_after_one_post(self):
        with receivers.Receiver() as hook:
            hook.respond(400, big_body(b'{"error":"schema"}'), n=1)
            r = self.run_against(hook, 2)
            reqs = hook.requests()
            self.assertEqual(hook.answers(), ["400", "200"], r.stderr())
            refused, delivered = alert_ids(reqs)
            self.assertNotEqual(refused, delivered, "the refused alert was POSTed again")
            dead = self.dead_letters()
            self.assertEqual(list(dead), [refused])
            self.assertEqual(json.loads(dead[refused]["alert"])["id"], refused)
            self.assertTrue(dead[refused]["reason"].startswith('HTTP 400: {"error":"schema"}xxx'),
                            dead[refused]["reason"])
            self.assertIn(f"alert {refused} refused with HTTP 400", r.stderr())

    def test_redirects_are_dead_lettered_not_followed(self):
        with receivers.Receiver() as hook, receivers.Receiver() as elsewhere:
            token = "T0KEN-in-the-path-8c2f"
            moves = [(301, elsewhere.url + token), (302, elsewhere.url + "?key=" + token),
                     (307, "https://user:" + token + "@hooks.example.net:8443/" + token),
                     (308, "/moved/" + token)]
            for status, location in moves:
                hook.respond(status, "moved", {"Location": location}, n=1)
            r = self.run_against(hook, len(moves) + 1)
            err = r.stderr()
            self.assertEqual(hook.answers(), [str(s) for s, _ in moves] + ["200"], err)
            ids = alert_ids(hook.requests())
            self.assertEqual(len(set(ids)), len(ids), f"re-POSTed: {ids}")
            self.assertEqual(elsewhere.counts()["total"], 0)    # never followed
            dead = self.dead_letters()
            self.assertEqual(sorted(dead), sorted(ids[:len(moves)]))
            origin = elsewhere.base_url
            where = [origin, origin, "https://hooks.example.net:8443", "the sink's own host"]
            for (status, _), id_, to in zip(moves, ids, where):
                reason = dead[id_]["reason"]
                self.assertIn(f"HTTP {status}: redirect to {to}", reason)
                self.assertIn("not followed", reason)
                self.assertIn(f"alert {id_} refused with HTTP {status}: redirect to {to}", err)
            for text in [err] + [d["reason"] for d in dead.values()]:
                self.assertNotIn(token, text)   # a Location's path or user may be a secret


@unittest.skipUnless(CREDS_TOOL, "CREDS_TOOL (the tests/creds_tool driver) is not set")
class WholeBodyTest(unittest.TestCase):
    """A guard, not a fault: it passes before and after the fix.  The credential
    chain needs the whole body of an answer, so for it a body over its limit
    stays an error, as it does for S3 (only sinks keep a body's start)."""

    def test_container_credentials_past_the_limit_are_an_error(self):
        with tempfile.TemporaryDirectory(prefix="tw-fault-sink-") as home, receivers.Receiver() as ecs:
            ecs.respond(200, big_body(b'{"AccessKeyId":"AKIAEXAMPLE"'))
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
                   "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONTAINER_CREDENTIALS_FULL_URI": ecs.url + "creds"}
            p = subprocess.run([CREDS_TOOL], env=env, capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
            self.assertIn("response larger than 65536 bytes", p.stderr)
            self.assertEqual(ecs.counts()["total"], 1)


if __name__ == "__main__":
    unittest.main()
