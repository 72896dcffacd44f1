"""Memory comes back after a large object.

`trailwatch run` used to keep its decompression buffer at the size of the
largest object it had seen, for as long as it ran (1,031 MiB after one
804 MiB object).  Here a watched directory gets one object of 250 MB of
JSON (2 MB gzipped: its records repeat), whose last record raises an alert;
once the alert is out, the process must hold well under the object's size
(VmRSS below 100 MiB) within a few seconds, while its peak (VmHWM) shows
that the object was in memory.

At start `run` compares what the limits let objects take with the cgroup's
memory.max (MemoryMax=) and says so when they do not fit: checked in a
private mount namespace whose /sys/fs/cgroup is a tmpfs with a memory.max
of our choosing (root only).
"""
import gzip
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import twtest
from test_run import Runner

JSON_BYTES = 250 * 1000 * 1000
MIB = 1 << 20
BOUND = 100 * MIB


def status_bytes(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def write_big_object(path, nbytes):
    """A CloudTrail object of about nbytes of JSON: DescribeInstances records
    that no shipped rule alerts on, then one DeleteBucket that one does."""
    rec = twtest.record(eventSource="ec2.amazonaws.com", eventName="DescribeInstances",
                        requestParameters={"filterSet": {"items": [{"name": "tag:Name", "value": "x" * 600}]}})
    last = twtest.record(eventName="DeleteBucket", eventID="60000000-0000-4000-8000-000000000001",
                         requestParameters={"bucketName": "victim", "Host": "s3.amazonaws.com"})
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(b'{"Records":[')
        n = size = 0
        while size < nbytes:
            rec["eventID"] = "%08d-0000-4000-8000-000000000000" % n
            chunk = json.dumps(rec, separators=(",", ":")).encode() + b","
            f.write(chunk)
            size += len(chunk)
            n += 1
        f.write(json.dumps(last, separators=(",", ":")).encode() + b"]}")
    old = time.time() - 60
    os.utime(path, (old, old))


class MemoryComesBack(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-memory-")
        self.tmp = self._tmp.name
        self.inbox = os.path.join(self.tmp, "inbox")
        os.makedirs(self.inbox)
        self.config = os.path.join(self.tmp, "trailwatch.yaml")
        with open(self.config, "w") as f:
            f.write(f"state_dir: {self.tmp}/state\nrules: [builtin]\n"
                    f"sources:\n  - {{type: dir, path: {self.inbox}, poll_interval: 1s}}\n")
        self.daemon = None

    def tearDown(self):
        if self.daemon:
            self.daemon.stop(signal.SIGKILL)
        self._tmp.cleanup()

    def test_rss_returns_after_a_large_object(self):
        env = dict(os.environ)
        env.pop("JOURNAL_STREAM", None)
        self.daemon = d = Runner(self.config, env)
        write_big_object(os.path.join(self.inbox, "111122223333_CloudTrail_us-east-1_20261126T1000Z_big.json.gz"),
                         JSON_BYTES)
        end = time.monotonic() + 30
        while time.monotonic() < end and not d.alerts() and d.p.poll() is None:
            time.sleep(0.1)
        self.assertEqual([a["bucket"] for a in d.alerts()], ["victim"], d.stderr())
        peak = status_bytes(d.p.pid, "VmHWM")
        self.assertGreater(peak, JSON_BYTES, "the object was never in memory whole?")
        end = time.monotonic() + 5
        while True:
            rss = status_bytes(d.p.pid, "VmRSS")
            if rss < BOUND or time.monotonic() > end:
                break
            time.sleep(0.2)
        self.assertLess(rss, BOUND, f"VmRSS {rss // MIB} MiB after the object (peak {peak // MIB} MiB)")
        self.assertEqual(d.stop(), 0, d.stderr())

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare"), "needs root and unshare")
    def test_limits_that_do_not_fit_memory_max_are_an_error(self):
        # a dir source: 1 GiB x 1.5 + 256 MiB = 1792 MiB, plus 512 MiB of room
        script = ('mount -t tmpfs none /sys/fs/cgroup || exit 99; g=$(sed -n "s/^0:://p" /proc/self/cgroup); '
                  'mkdir -p /sys/fs/cgroup$g && echo "$0" > /sys/fs/cgroup$g/memory.max && '
                  'exec timeout --preserve-status -s TERM 2 "$1" run -c "$2"')
        said = {}
        for limit in (2 << 30, 4 << 30, "max"):
            p = subprocess.run(["unshare", "-m", "sh", "-c", script, str(limit), twtest.TW, self.config],
                               capture_output=True, text=True, timeout=30)
            if p.returncode == 99:
                self.skipTest("cannot mount a tmpfs on /sys/fs/cgroup: " + p.stderr)
            self.assertEqual(p.returncode, 0, p.stderr)
            said[limit] = [l for l in p.stderr.splitlines() if "MemoryMax=" in l]
        self.assertEqual(len(said[2 << 30]), 1, said)
        self.assertIn("error: memory: ", said[2 << 30][0])
        self.assertIn("1792 MiB", said[2 << 30][0])
        self.assertIn("2048 MiB", said[2 << 30][0])
        self.assertEqual(said[4 << 30], [])
        self.assertEqual(said["max"], [])


if __name__ == "__main__":
    unittest.main()
