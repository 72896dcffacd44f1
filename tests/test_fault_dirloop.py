"""Entries that cannot be read in a watched directory or a replayed tree.

A symbolic link loop (`loop -> .`), a link to a directory above
(`sub/up -> ..`), a dangling link and an unreadable directory are each left
out and named once on stderr; every other file is still read and alerted on,
by `trailwatch run` (`type: dir`, at every poll, files dropped later
included) and by `trailwatch replay` (exit status 1, as for a missing path).
A name with a newline or an ESC in it is escaped in the message, so it
cannot forge a log line or reach the terminal.  The polls are told apart by
dropping files and waiting for their alerts, not by sleeping.
"""
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import unittest

import twtest
from test_run import Runner

FORGED = "trailwatch: error: forged"
EVIL = "evil\n" + FORGED + "\x1b[31m"


def delete_bucket(i):
    return twtest.record(eventName="DeleteBucket", eventID="30000000-0000-4000-8000-%012d" % i,
                         requestParameters={"bucketName": "victim-%d" % i, "Host": "s3.amazonaws.com"})


def buckets(alerts):
    return sorted(a["bucket"] for a in alerts)


def lines_naming(stderr, path):
    """The stderr lines that report path itself (not something below it)."""
    return [l for l in stderr.splitlines() if (path + ": ") in l]


class DirSource(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-dirloop-")
        self.tmp = self._tmp.name
        self.inbox = os.path.join(self.tmp, "inbox")
        os.makedirs(os.path.join(self.inbox, "sub"))
        self.config = os.path.join(self.tmp, "trailwatch.yaml")
        with open(self.config, "w") as f:
            f.write(f"state_dir: {self.tmp}/state\nrules: [builtin]\n"
                    f"sources:\n  - {{type: dir, path: {self.inbox}, poll_interval: 1s}}\n")
        self.n = 0
        self.daemon = None

    def tearDown(self):
        if self.daemon:
            self.daemon.stop()
        self._tmp.cleanup()

    def drop(self, sub=""):
        twtest.drop_log(os.path.join(self.inbox, sub), self.n, [delete_bucket(self.n)])
        self.n += 1

    def start(self):
        env = dict(os.environ)
        env.pop("JOURNAL_STREAM", None)
        self.daemon = Runner(self.config, env)

    def wait_alerts(self, n, timeout=10):
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(self.daemon.alerts()) < n and self.daemon.p.poll() is None:
            time.sleep(0.1)
        return self.daemon.alerts()

    def want(self, n):
        self.assertEqual(buckets(self.wait_alerts(n)), sorted("victim-%d" % i for i in range(n)),
                         self.daemon.stderr())

    def test_loop_is_named_once_and_every_other_file_is_alerted(self):
        self.drop()
        self.drop()
        self.drop("sub")
        os.symlink(".", os.path.join(self.inbox, "loop"))
        os.symlink("..", os.path.join(self.inbox, "sub", "up"))
        os.symlink("nowhere", os.path.join(self.inbox, "dangling"))
        self.start()
        self.want(3)
        # two more polls (each proved by the file it reads), still one message each
        self.drop()
        self.want(4)
        self.drop("sub")
        self.want(5)
        status = self.daemon.stop()
        err = self.daemon.stderr()
        self.assertEqual(status, 0, err)
        self.assertEqual(len(lines_naming(err, os.path.join(self.inbox, "loop"))), 1, err)
        self.assertEqual(len(lines_naming(err, os.path.join(self.inbox, "sub", "up"))), 1, err)
        self.assertEqual(len(lines_naming(err, os.path.join(self.inbox, "dangling"))), 1, err)
        self.assertNotIn("loop/loop", err)
        self.assertIn("loop: not read: loops back to the directory it is in", err)
        self.assertIn("dangling: not read: dangling symbolic link", err)

    def test_file_dropped_after_the_loop_is_read_and_a_loop_that_comes_back_is_named_again(self):
        loop = os.path.join(self.inbox, "loop")
        os.symlink(".", loop)
        self.start()
        time.sleep(1.5)     # a poll or two with the loop and nothing else
        self.drop()
        self.want(1)
        os.unlink(loop)
        self.drop()
        self.want(2)        # a poll without the loop
        os.symlink(".", loop)
        self.drop()
        self.want(3)        # a poll with the loop again
        self.drop()
        self.want(4)
        status = self.daemon.stop()
        err = self.daemon.stderr()
        self.assertEqual(status, 0, err)
        self.assertEqual(len(lines_naming(err, loop)), 2, err)

    def test_a_name_with_a_newline_and_an_escape_cannot_forge_a_line(self):
        os.symlink("nowhere", os.path.join(self.inbox, EVIL))
        self.drop()
        self.start()
        self.wait_alerts(1)
        self.drop()
        got = buckets(self.wait_alerts(2))
        status = self.daemon.stop()
        err = self.daemon.stderr()
        self.assertEqual(status, 0, err)
        self.assertFalse([l for l in err.splitlines() if l.startswith(FORGED)], err)
        self.assertNotIn("\x1b", err)
        self.assertEqual(got, ["victim-0", "victim-1"], err)
        self.assertEqual(len(lines_naming(err, os.path.join(self.inbox, "evil\\n" + FORGED + "\\x1b[31m"))), 1,
                         err)


class Replay(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-dirloop-")
        self.tree = os.path.join(self._tmp.name, "tree")
        for i, sub in enumerate(("", "", "a", "a/b")):
            twtest.drop_log(os.path.join(self.tree, sub), i, [delete_bucket(i)])

    def tearDown(self):
        self._tmp.cleanup()

    def replay(self, *prefix):
        p = subprocess.run([*prefix, twtest.TW, "replay", "-r", "builtin", self.tree], capture_output=True,
                           text=True, timeout=60)
        return p, buckets(twtest.alerts_of(p.stdout))

    def test_loops_are_named_once_the_rest_is_read_once_and_the_status_is_1(self):
        os.symlink(".", os.path.join(self.tree, "loop"))
        os.symlink("../..", os.path.join(self.tree, "a", "b", "top"))
        os.symlink("self", os.path.join(self.tree, "a", "self"))
        p, got = self.replay()
        self.assertEqual(got, ["victim-0", "victim-1", "victim-2", "victim-3"], p.stderr)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(len(lines_naming(p.stderr, os.path.join(self.tree, "loop"))), 1, p.stderr)
        self.assertEqual(len(lines_naming(p.stderr, os.path.join(self.tree, "a", "b", "top"))), 1, p.stderr)
        self.assertIn("a/self: not read: symbolic link loop", p.stderr)
        self.assertIn("3 entries not read", p.stderr)

    def test_a_name_with_a_newline_and_an_escape_cannot_forge_a_line(self):
        os.symlink("nowhere", os.path.join(self.tree, EVIL))
        p, got = self.replay()
        self.assertFalse([l for l in p.stderr.splitlines() if l.startswith(FORGED)], p.stderr)
        self.assertNotIn("\x1b", p.stderr)
        self.assertEqual(got, ["victim-0", "victim-1", "victim-2", "victim-3"], p.stderr)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("evil\\n" + FORGED + "\\x1b[31m: not read: dangling symbolic link", p.stderr)

    def test_an_unreadable_directory_is_named_and_the_rest_is_read(self):
        locked = os.path.join(self.tree, "a", "locked")
        twtest.drop_log(locked, 9, [delete_bucket(9)])
        os.chmod(locked, 0)
        prefix = []
        if os.geteuid() == 0:   # root reads anything: replay as nobody
            if not shutil.which("setpriv"):
                self.skipTest("root, and no setpriv to drop privileges")
            nobody = pwd.getpwnam("nobody")
            prefix = ["setpriv", "--reuid", str(nobody.pw_uid), "--regid", str(nobody.pw_gid), "--clear-groups"]
            for d, _, _ in os.walk(self._tmp.name):
                if d != locked:
                    os.chmod(d, 0o755)
            os.chmod(self._tmp.name, 0o755)
        try:
            p, got = self.replay(*prefix)
        finally:
            os.chmod(locked, 0o755)
        self.assertEqual(got, ["victim-0", "victim-1", "victim-2", "victim-3"], p.stderr)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(len(lines_naming(p.stderr, locked)), 1, p.stderr)
        self.assertIn("locked: not read: Permission denied", p.stderr)


class RuleDirectory(unittest.TestCase):
    RULE = """title: Bucket deleted
id: 3c0ad1d4-0000-4000-8000-000000000003
logsource: {product: aws, service: cloudtrail}
detection:
    selection: {eventSource: s3.amazonaws.com, eventName: DeleteBucket}
    condition: selection
level: high
"""

    def test_a_loop_in_a_rule_directory_is_an_error_naming_it(self):
        with tempfile.TemporaryDirectory(prefix="tw-dirloop-") as tmp:
            rules = os.path.join(tmp, "rules")
            os.makedirs(rules)
            with open(os.path.join(rules, "r.yml"), "w") as f:
                f.write(self.RULE)
            os.symlink(".", os.path.join(rules, "loop"))
            p = twtest.tw("check", "-r", rules)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(os.path.join(rules, "loop") + ": cannot read rules: loops back to the directory it is in",
                          p.stderr)


if __name__ == "__main__":
    unittest.main()
