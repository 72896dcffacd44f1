"""Fault: a full disk, on small tmpfs mounts in a private mount namespace
(a holder process keeps the namespace; trailwatch runs in it with nsenter;
the test reaches the files through /proc/HOLDER/root).

Before: a file sink left half a line when the disk filled, and its retry was
glued onto it; with the disk still full, a restart exited at its first
commit and delivered none of the alerts already spooled.  Now a file sink
writes whole lines only, and while the spool cannot be written new objects
wait (their checkpoints do not move) but what is spooled is delivered; once
there is space again the waiting objects are read and nothing is lost.
"""
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import receivers
import twtest
from test_delivery import events, alert_ids


def can_mount():
    if os.geteuid() != 0:
        return False
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True)
    return p.returncode == 0


class Namespace:
    """A private mount namespace with tmpfs mounts {path: size}."""

    def __init__(self, mounts):
        script = "".join(f"mkdir -p {p} && mount -t tmpfs -o size={size} tmpfs {p} && "
                         for p, size in mounts.items())
        self.p = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                   script + "echo ready && exec sleep 3600"],
                                  stdout=subprocess.PIPE, text=True)
        assert self.p.stdout.readline().strip() == "ready"

    def path(self, p):
        return f"/proc/{self.p.pid}/root{p}"

    def close(self):
        self.p.kill()
        self.p.wait()


class Daemon:
    def __init__(self, ns, config):
        self.lines, self.err = [], []
        self.p = subprocess.Popen(["nsenter", "-t", str(ns.p.pid), "-m", twtest.TW, "run", "-c", config],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._t = [threading.Thread(target=self._read, args=(self.p.stdout, self.lines), daemon=True),
                   threading.Thread(target=self._read, args=(self.p.stderr, self.err), daemon=True)]
        for t in self._t:
            t.start()

    @staticmethod
    def _read(f, out):
        for line in f:
            out.append(line)

    def stderr(self):
        return "".join(self.err)

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        for t in self._t:
            t.join(5)
        return self.p.returncode


def fill(path):
    """Writes a filler file until the file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096) > 0:
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


@unittest.skipUnless(can_mount(), "needs root and unshare -m")
class DiskFullTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-fault-disk-")
        self.tmp = self._tmp.name
        self.inbox = os.path.join(self.tmp, "inbox")
        os.makedirs(self.inbox)
        self.config = os.path.join(self.tmp, "trailwatch.yaml")
        self.ns = None
        self.daemons = []
        self.n = 0

    def tearDown(self):
        for d in self.daemons:
            d.stop(signal.SIGKILL)
        if self.ns:
            self.ns.close()
        self._tmp.cleanup()

    def drop(self, records):
        twtest.drop_log(self.inbox, self.n, records)
        self.n += 1

    def start(self):
        d = Daemon(self.ns, self.config)
        self.daemons.append(d)
        return d

    def test_file_sink_writes_whole_lines_only(self):
        out_dir = os.path.join(self.tmp, "out")
        self.ns = Namespace({out_dir: "64k"})
        out = os.path.join(out_dir, "alerts.jsonl")
        with open(self.config, "w") as f:
            f.write(f"state_dir: {self.tmp}/state\n"
                    f"sources:\n  - {{type: dir, path: {self.inbox}, poll_interval: 1s}}\n"
                    f"sinks:\n  - {{name: archive, type: file, path: {out}}}\n")
        self.drop(events(200))
        d = self.start()
        seen = []
        end = time.monotonic() + 90
        while time.monotonic() < end and len(set(seen)) < 200:
            time.sleep(1.5)
            path = self.ns.path(out)
            if not os.path.exists(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            # whatever the disk took holds whole lines only, each an alert
            self.assertTrue(data == b"" or data.endswith(b"\n"), data[-200:])
            for line in data.splitlines():
                seen.append(json.loads(line)["id"])
            os.truncate(path, 0)     # room again, as a log rotation would make
        self.assertIsNone(d.p.poll(), d.stderr())
        self.assertEqual(d.stop(), 0, d.stderr())
        with open(self.ns.path(out), "rb") as f:
            for line in f.read().splitlines():
                seen.append(json.loads(line)["id"])
        self.assertEqual(len(set(seen)), 200)
        self.assertIn("No space left on device", d.stderr())

    def test_restart_on_a_full_disk_delivers_what_is_spooled(self):
        state = os.path.join(self.tmp, "state")
        self.ns = Namespace({state: "1m"})
        with receivers.Receiver() as hook:
            hook.fail(503)
            with open(self.config, "w") as f:
                f.write(f"state_dir: {state}\n"
                        f"sources:\n  - {{type: dir, path: {self.inbox}, poll_interval: 1s}}\n"
                        f"sinks:\n  - {{name: soc, type: webhook, url: '{hook.url}'}}\n")
            self.drop(events(100))
            self.drop(events(100, start=100))
            d = self.start()
            end = time.monotonic() + 30
            while time.monotonic() < end and "2 files" not in d.stderr():
                hook.wait_for(1, timeout=30)
                break
            time.sleep(3)
            self.assertEqual(d.stop(), 0, d.stderr())
            fill(self.ns.path(os.path.join(state, "filler")))
            # the disk is full: start again, with the receiver healthy and new work waiting
            hook.respond(200)
            self.drop(events(50, start=200))
            d = self.start()
            end = time.monotonic() + 60
            while time.monotonic() < end and len(set(alert_ids(hook.requests()))) < 200:
                time.sleep(0.3)
            time.sleep(2)
            self.assertIsNone(d.p.poll(), d.stderr())
            got = set(alert_ids([q for q, a in zip(hook.requests(), hook.answers()) if a == "200"]))
            self.assertEqual(len(got), 200, d.stderr())
            self.assertIn("new objects wait: the spool cannot be written (No space left on device)", d.stderr())
            # space again: the waiting object is read, nothing is lost
            os.unlink(self.ns.path(os.path.join(state, "filler")))
            end = time.monotonic() + 60
            while time.monotonic() < end and len(set(alert_ids(hook.requests()))) < 250:
                time.sleep(0.3)
            time.sleep(1)
            self.assertEqual(d.stop(), 0, d.stderr())
            got = set(alert_ids([q for q, a in zip(hook.requests(), hook.answers()) if a == "200"]))
            self.assertEqual(len(got), 250, d.stderr())


if __name__ == "__main__":
    unittest.main()
