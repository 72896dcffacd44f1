"""Fault: the spool damaged between two runs (not by a crash).

100 alerts wait in the spool for a webhook that answers 503; `run` stops;
the segment is damaged; `run` starts again with the webhook healthy.

Before: one flipped byte in the middle of committed data cut the segment
there and 51 of the 100 alerts vanished without a log line; a deleted or
FIFO segment lost all of them silently (a FIFO hung the start).  Now every
intact alert is delivered, and the log says which segment, which bytes and
how many alerts were lost.
"""
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import receivers
from test_delivery import Env, events, alert_ids
from test_run import Runner


class SpoolDamageTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-fault-spool-")
        self.e = Env(self._tmp.name)
        self.runners = []

    def tearDown(self):
        for r in self.runners:
            r.stop(signal.SIGKILL)
        self._tmp.cleanup()

    def start(self):
        r = Runner(self.e.config, dict(os.environ))
        self.runners.append(r)
        return r

    def spool_100(self, hook):
        """Leaves 100 alerts spooled and undelivered; returns the segment."""
        hook.fail(503)
        self.e.write(f"  - {{name: soc, type: webhook, url: '{hook.url}'}}\n")
        self.e.drop(events(100))
        r = self.start()
        hook.wait_for(1, timeout=30)        # delivery starts after the commit
        self.assertEqual(r.stop(), 0, r.stderr())
        segs = sorted(glob.glob(os.path.join(self.e.state, "spool", "seg-*")))
        self.assertEqual(len(segs), 1, segs)
        return segs[0]

    def restart_healthy(self, hook, expect):
        hook.respond(200)
        before = len(hook.requests())
        r = self.start()
        end = time.monotonic() + 30
        while time.monotonic() < end and len(set(alert_ids(hook.requests()[before:]))) < expect:
            time.sleep(0.2)
        time.sleep(1.5)
        self.assertIsNone(r.p.poll(), r.stderr())
        self.assertEqual(r.stop(), 0, r.stderr())
        return set(alert_ids(hook.requests()[before:])), r.stderr()

    def test_flipped_byte_loses_one_alert_and_says_so(self):
        with receivers.Receiver() as hook:
            seg = self.spool_100(hook)
            size = os.path.getsize(seg)
            with open(seg, "r+b") as f:
                f.seek(size // 2)
                c = f.read(1)
                f.seek(size // 2)
                f.write(bytes([c[0] ^ 0x5a]))
            got, err = self.restart_healthy(hook, 99)
            self.assertEqual(len(got), 99, err)
            name = os.path.basename(seg)
            m = re.search(name + r" bytes (\d+)-(\d+): damaged records: alerts (\d+)-(\d+) lost "
                          r"\(1 of them not yet delivered\)", err)
            self.assertTrue(m, err)
            self.assertLessEqual(int(m.group(1)), size // 2)
            self.assertGreaterEqual(int(m.group(2)), size // 2)
            self.assertIn("1 undelivered alerts lost to damage in the spool", err)
            # and the sink's exit summary counts it (it said "0 lost")
            self.assertIn("sink soc: 99 sent, 0 retried, 0 dead letters, 0 evicted, 0 expired, 0 filtered out, "
                          "1 lost", err)

    def test_damaged_header_is_repaired_without_a_false_range(self):
        """A flipped first byte: the header is rewritten and nothing is lost;
        it said 'alerts 0-18446744073709551615 lost'."""
        with receivers.Receiver() as hook:
            seg = self.spool_100(hook)
            with open(seg, "r+b") as f:
                c = f.read(1)
                f.seek(0)
                f.write(bytes([c[0] ^ 0xff]))
            got, err = self.restart_healthy(hook, 100)
            self.assertEqual(len(got), 100, err)
            self.assertIn(os.path.basename(seg) + " bytes 0-15: header damaged (repaired)\n", err)
            self.assertNotIn("18446744073709551615", err)
            self.assertIn("0 filtered out, 0 lost", err)

    def test_deleted_segment_is_reported(self):
        with receivers.Receiver() as hook:
            seg = self.spool_100(hook)
            os.unlink(seg)
            got, err = self.restart_healthy(hook, 0)
            self.assertEqual(got, set())
            self.assertRegex(err, r"alerts 0-99 lost \(100 of them not yet delivered\)")
            self.assertIn("100 undelivered alerts lost", err)

    def test_fifo_segment_neither_hangs_nor_hides(self):
        with receivers.Receiver() as hook:
            seg = self.spool_100(hook)
            os.unlink(seg)
            os.mkfifo(seg)
            got, err = self.restart_healthy(hook, 0)
            self.assertIn(os.path.basename(seg) + ": not a regular file: set aside", err)
            self.assertIn("100 undelivered alerts lost", err)
            self.assertTrue(os.path.exists(seg + ".damaged"))
            # a new alert is spooled and delivered after it
            hook.respond(200)
            before = len(hook.requests())
            self.e.drop(events(1, start=500))
            r = self.start()
            hook.wait_for(before + 1, timeout=30)
            self.assertEqual(r.stop(), 0, r.stderr())


class AckLogTest(unittest.TestCase):
    """acks.log deleted, truncated or overwritten after 100 alerts were
    delivered (and `run` was killed, so no compaction at stop folded them in).
    Before: 51-100 of them were sent again without a word (a cut at a record
    boundary stayed silent until the log was made long, with zeros after its
    records, so that a shorter one is told from one a crash stopped).  Now the start says so, naming
    the file and what is pending for each sink; they are sent again
    (at-least-once), never lost."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-fault-acks-")
        self.e = Env(self._tmp.name)
        self.runners = []

    def tearDown(self):
        for r in self.runners:
            r.stop(signal.SIGKILL)
        self._tmp.cleanup()

    def start(self):
        r = Runner(self.e.config, dict(os.environ))
        self.runners.append(r)
        return r

    def deliver_100_then(self, damage):
        with receivers.Receiver() as hook:
            self.e.write(f"  - {{name: soc, type: webhook, url: '{hook.url}'}}\n")
            self.e.drop(events(100))
            r = self.start()
            hook.wait_for(100, timeout=60)
            time.sleep(1)
            r.stop(signal.SIGKILL)
            acks = os.path.join(self.e.state, "spool", "acks.log")
            self.assertGreater(os.path.getsize(acks), 16)
            damage(acks)
            r = self.start()
            time.sleep(4)
            self.assertIsNone(r.p.poll(), r.stderr())
            self.assertEqual(r.stop(), 0, r.stderr())
            ids = alert_ids(hook.requests())
            self.assertEqual(len(set(ids)), 100)
            return r.stderr(), len(ids) - 100

    def test_deleted(self):
        err, again = self.deliver_100_then(os.unlink)
        self.assertRegex(err, r"acks.log missing \(deleted\?\): the acks written since the spool's state was last "
                              r"saved are lost, so alerts the sinks took since then are sent again "
                              r"\(pending now: soc \d+\)")
        self.assertGreater(again, 0)

    def test_truncated(self):
        def cut(path):
            os.truncate(path, 8)
        err, again = self.deliver_100_then(cut)
        self.assertIn("acks.log shorter than its header (truncated?)", err)

    @staticmethod
    def records_end(path):
        """Where the acks end: the log is made 1 MiB long, zeros after them."""
        with open(path, "rb") as f:
            return len(f.read().rstrip(b"\0"))

    def test_cut_at_a_record_boundary(self):
        """The cut a crash can never make: before, 51 alerts were sent again
        without a word (records of 42 bytes + the sink's name)."""
        def cut(path):
            end = self.records_end(path)
            rec = 42 + len("soc")
            self.assertEqual((end - 16) % rec, 0)
            os.truncate(path, 16 + rec * 49)
        err, again = self.deliver_100_then(cut)
        self.assertRegex(err, r"acks.log shorter than it was made \(truncated\?\): the acks written since the "
                              r"spool's state was last saved are lost")
        self.assertGreater(again, 0)

    def test_cut_in_a_record(self):
        def cut(path):
            os.truncate(path, self.records_end(path) // 2 + 7)
        err, again = self.deliver_100_then(cut)
        self.assertIn("acks.log shorter than it was made (truncated?)", err)

    def test_cut_in_the_middle(self):
        def cut(path):
            os.truncate(path, self.records_end(path) // 2)
            with open(path, "ab") as f:
                f.write(b"\xff" * 500)
        err, again = self.deliver_100_then(cut)
        self.assertRegex(err, r"acks.log unreadable from a byte on at byte \d+")

    def test_replaced_by_a_directory(self):
        """Before: every start stopped at 'acks.log: cannot open: Is a directory'."""
        def swap(path):
            os.unlink(path)
            os.mkdir(path)
        err, again = self.deliver_100_then(swap)
        self.assertIn("acks.log not a regular file (set aside as acks.log.damaged): the acks written", err)
        self.assertTrue(os.path.isdir(os.path.join(self.e.state, "spool", "acks.log.damaged")))
        self.assertTrue(os.path.isfile(os.path.join(self.e.state, "spool", "acks.log")))
        self.assertGreater(again, 0)

    def test_overwritten_in_the_middle(self):
        def cut(path):
            with open(path, "r+b") as f:
                f.seek(self.records_end(path) // 2)
                f.write(b"\xff" * 100)
        err, again = self.deliver_100_then(cut)
        self.assertRegex(err, r"acks.log unreadable from a byte on at byte \d+")


class CompactionKillTest(unittest.TestCase):
    """kill -9 at each step of a compaction: the one `run` makes as it stops,
    with 50 of 100 alerts delivered and 50 waiting for a webhook that answers
    503.  strace, attached once the alerts are spooled, kills the process on
    entering the chosen system call (so that call never happens): the new
    state file half made or unsynced, the rename, the directory's fsync
    after it, the ack log's new header and the zeroing of its old acks.  The kill is checked to have happened
    (exit by SIGKILL), then `run` starts again with the webhook healthy: the
    50 waiting alerts are delivered, none is lost, the 50 delivered ones are
    not sent again, and the spool reports no damage."""

    # (path under spool/ whose system calls strace watches, the call, which one of them,
    # what is on disk then)
    POINTS = [
        ("state.tmp", "pwrite64", 1, "the new state created, empty"),
        ("state.tmp", "fsync", 1, "the new state written, not synced"),
        (".", "renameat", 1, "the new state synced, not in place"),
        (".", "fsync", 1, "the new state in place, the directory not synced"),
        ("acks.log", "pwrite64", 1, "the new state in place, the ack log's header not yet moved on"),
        ("acks.log", "pwrite64", 2, "the ack log's new header written, its old acks not yet zeroed"),
    ]

    def setUp(self):
        self.strace = shutil.which("strace")
        self.assertIsNotNone(self.strace, "strace is needed (scripts/install-deps installs it)")
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-fault-compact-")
        self.runners = []

    def tearDown(self):
        for r in self.runners:
            r.stop(signal.SIGKILL)
        self._tmp.cleanup()

    def start(self, e):
        r = Runner(e.config, dict(os.environ))
        self.runners.append(r)
        return r

    def attach(self, pid, path, call, when):
        p = subprocess.Popen([self.strace, "-qq", "-o", "/dev/null", "-p", str(pid), "-P", path,
                              "-e", "trace=" + call, "-e", f"inject={call}:signal=KILL:when={when}"],
                             stderr=subprocess.PIPE, text=True)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            with open(f"/proc/{pid}/status") as f:
                if any(l.startswith("TracerPid:") and l.split()[1] != "0" for l in f):
                    return p
            time.sleep(0.05)
        p.kill()
        self.fail(f"strace did not attach: {p.stderr.read()}")

    def test_kill_at_each_step(self):
        for i, (name, call, when, what) in enumerate(self.POINTS):
            with self.subTest(what):
                e = Env(os.path.join(self._tmp.name, str(i)))
                with receivers.Receiver() as hook:
                    hook.fail(503)
                    hook.ok(n=50)
                    e.write(f"  - {{name: soc, type: webhook, url: '{hook.url}'}}\n")
                    e.drop(events(100))
                    r = self.start(e)
                    hook.wait_for(52, timeout=30)   # 50 delivered, the next refused twice
                    delivered = set(alert_ids(hook.requests()[:50]))
                    self.assertEqual(len(delivered), 50)
                    tracer = self.attach(r.p.pid, os.path.join(e.state, "spool", name), call, when)
                    r.p.send_signal(signal.SIGTERM)
                    r.p.wait(30)
                    tracer.wait(10)
                    self.assertEqual(r.p.returncode, -signal.SIGKILL, f"not killed at {call}: {r.stderr()}")
                    hook.ok()
                    before = len(hook.requests())
                    r2 = self.start(e)
                    end = time.monotonic() + 30
                    while time.monotonic() < end and len(set(alert_ids(hook.requests()[before:]))) < 50:
                        time.sleep(0.2)
                    time.sleep(1.5)
                    self.assertEqual(r2.stop(), 0, r2.stderr())
                    again = alert_ids(hook.requests()[before:])
                    self.assertEqual(len(delivered | set(again)), 100, r2.stderr())
                    self.assertEqual(len(again), len(set(again)), "sent twice after the restart")
                    self.assertEqual(delivered & set(again), set(), "delivered before the kill, sent again")
                    self.assertIn("sink soc: 50 sent, 0 retried, 0 dead letters, 0 evicted, 0 expired, "
                                  "0 filtered out, 0 lost", r2.stderr())
                    self.assertNotRegex(r2.stderr(), r"[1-9]\d* (undelivered )?alerts? lost|damage|error")


if __name__ == "__main__":
    unittest.main()
