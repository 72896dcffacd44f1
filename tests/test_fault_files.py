"""Faults in what trailwatch reads and writes on the way (item 12 of the
fault list), each of which once misbehaved:

- a value holding U+0000 was cut there in the alert, though the rule saw all
  of it: the analyst never saw what came after ("aws-cli/2.0\\u0000 tool");
- a FIFO named spool/state hung the start (and SIGTERM with it);
- a symlink planted at a state file's temporary name made the checkpoint
  write land wherever it pointed;
- a refused alert was logged as "kept in dead-letter/..." before the dead
  letter was written, also when writing it failed.
"""
import glob
import json
import os
import signal
import subprocess
import tempfile
import time
import unittest

import receivers
import twtest
from test_delivery import Env, events
from test_fault_poison import RULE, delete_bucket
from test_run import Runner


class FilesTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-fault-files-")
        self.tmp = self._tmp.name
        self.e = Env(self.tmp)
        self.runners = []

    def tearDown(self):
        for r in self.runners:
            r.stop(signal.SIGKILL)
        self._tmp.cleanup()

    def start(self):
        r = Runner(self.e.config, dict(os.environ))
        self.runners.append(r)
        return r

    def test_nul_in_a_value_is_shown_not_cut(self):
        rules = os.path.join(self.tmp, "rules")
        os.makedirs(rules)
        with open(os.path.join(rules, "d.yml"), "w") as f:
            f.write(RULE)
        path = twtest.write_log(os.path.join(self.tmp, "nul.json.gz"),
                                [delete_bucket(1, userAgent="aws-cli/2.0\u0000 hidden-tool/6.6")])
        p = twtest.tw("replay", "-r", rules, path)
        self.assertEqual(p.returncode, 0, p.stderr)
        [a] = twtest.alerts_of(p.stdout)
        self.assertEqual(a["user_agent"], "aws-cli/2.0\\u0000 hidden-tool/6.6")

    def test_fifo_as_spool_state_does_not_hang(self):
        self.e.write("  - {name: archive, type: file, path: %s/out.jsonl}\n" % self.tmp)
        os.makedirs(os.path.join(self.e.state, "spool"))
        os.mkfifo(os.path.join(self.e.state, "spool", "state"))
        p = subprocess.run([twtest.TW, "run", "-c", self.e.config], capture_output=True, text=True, timeout=20)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("spool/state: not a regular file", p.stderr)

    def test_symlink_at_a_temporary_name_is_not_followed(self):
        self.e.write("  - {name: archive, type: file, path: %s/out.jsonl}\n" % self.tmp)
        victim = os.path.join(self.tmp, "victim")
        with open(victim, "w") as f:
            f.write("precious\n")
        ckdir = os.path.join(self.e.state, "checkpoints")
        os.makedirs(ckdir)
        name = "dir-" + self.e.inbox.replace("_", "%5F").replace("/", "_") + ".json"
        os.symlink(victim, os.path.join(ckdir, name + ".tmp"))
        self.e.drop(events(1))
        r = self.start()
        end = time.monotonic() + 20
        while time.monotonic() < end and not os.path.exists(os.path.join(ckdir, name)):
            time.sleep(0.2)
        time.sleep(1)
        self.assertEqual(r.stop(), 0, r.stderr())
        with open(victim) as f:
            self.assertEqual(f.read(), "precious\n")
        self.assertTrue(os.path.isfile(os.path.join(ckdir, name)))
        self.assertFalse(os.path.islink(os.path.join(ckdir, name)))

    def test_refused_alert_is_said_kept_only_when_it_is(self):
        with receivers.Receiver() as hook:
            hook.fail(400)
            self.e.write(f"  - {{name: soc, type: webhook, url: '{hook.url}'}}\n")
            os.makedirs(os.path.join(self.e.state, "dead-letter"))
            with open(os.path.join(self.e.state, "dead-letter", "soc"), "w") as f:
                f.write("not a directory\n")
            self.e.drop(events(1))
            r = self.start()
            hook.wait_for(1, timeout=20)
            time.sleep(1.5)
            self.assertEqual(r.stop(), 0, r.stderr())
            self.assertNotIn("kept in", r.stderr())
            self.assertIn("dead letter for alert", r.stderr())
            self.assertIn("refused with HTTP 400", r.stderr())
            self.assertIn("(and not kept: see above)", r.stderr())


if __name__ == "__main__":
    unittest.main()
