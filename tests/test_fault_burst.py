"""Fault: a burst larger than the spool (spool.max_size 16KiB, one object
with 300 alerts of about 1 KB).

Before: healthy sinks lost alerts: a webhook that answered every request
was "holding the space" while its request was in flight and had its oldest
alerts evicted, and evicted alerts counted as delivered, so they could never
be sent again.  Now the object waits while the sinks take what is spooled
(back-pressure): healthy sinks get every alert, whatever their speed.  Only
a stuck sink gives up alerts, kept in dead-letter/SINK/; when it takes
alerts again, those evicted dead letters are delivered to it too, and their
files removed.
"""
import glob
import json
import os
import signal
import tempfile
import time
import unittest

import receivers
from test_delivery import Env, events, alert_ids
from test_run import Runner


class BurstTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-fault-burst-")
        self.e = Env(self._tmp.name)
        self.out = os.path.join(self._tmp.name, "alerts.jsonl")
        self.runners = []

    def tearDown(self):
        for r in self.runners:
            r.stop(signal.SIGKILL)
        self._tmp.cleanup()

    def start(self):
        r = Runner(self.e.config, dict(os.environ))
        self.runners.append(r)
        return r

    def configure(self, hook):
        self.e.write(f"  - {{name: archive, type: file, path: {self.out}}}\n"
                     f"  - {{name: soc, type: webhook, url: '{hook.url}'}}\n")
        with open(self.e.config, "a") as f:
            f.write("spool: {max_size: 16KiB}\n")

    def archived(self):
        if not os.path.exists(self.out):
            return []
        with open(self.out) as f:
            return [json.loads(l)["id"] for l in f]

    def dead(self):
        return glob.glob(os.path.join(self.e.state, "dead-letter", "soc", "*.json"))

    def test_healthy_sinks_lose_nothing(self):
        with receivers.Receiver() as hook:
            self.configure(hook)
            self.e.drop(events(300))
            r = self.start()
            hook.wait_for(300, timeout=120)
            time.sleep(1)
            self.assertEqual(r.stop(), 0, r.stderr())
            self.assertEqual(len(set(alert_ids(hook.requests()))), 300, r.stderr())
            self.assertEqual(len(set(self.archived())), 300)
            self.assertEqual(self.dead(), [])
            self.assertNotIn("evicted", r.stderr().replace("0 evicted", ""))

    def test_a_stuck_sink_gets_its_evicted_alerts_when_it_is_back(self):
        with receivers.Receiver() as hook:
            hook.fail(503)
            self.configure(hook)
            self.e.drop(events(300))
            r = self.start()
            end = time.monotonic() + 120
            while time.monotonic() < end and len(self.archived()) < 300:
                time.sleep(0.2)
            self.assertEqual(len(set(self.archived())), 300, r.stderr())
            self.assertIn("spool full: sink soc", r.stderr())
            evicted = len(self.dead())
            self.assertGreater(evicted, 0)
            # back: the spooled alerts and the evicted ones all arrive, once
            hook.respond(200)
            end = time.monotonic() + 120
            while time.monotonic() < end and len(set(alert_ids(hook.requests()))) < 300:
                time.sleep(0.2)
            time.sleep(1)
            self.assertEqual(r.stop(), 0, r.stderr())
            ok = [q for q, a in zip(hook.requests(), hook.answers()) if a == "200"]
            ids = alert_ids(ok)
            self.assertEqual(len(set(ids)), 300, r.stderr())
            self.assertEqual(len(ids), 300)
            self.assertEqual(self.dead(), [])
            self.assertRegex(r.stderr(), r"sink soc: %d evicted alerts delivered from " % evicted)


if __name__ == "__main__":
    unittest.main()
