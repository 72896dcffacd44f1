"""Faults of an S3 endpoint that used to stall the whole service (issue 14,
item 3): the run must stay bounded, keep delivering and keep the watchdog
honest.

A small S3 stand-in (FakeS3, below) answers ListObjectsV2 and GetObject the
way a misbehaving endpoint would; it does not verify signatures (the
verifying proxy of awsenv.py is for correct endpoints).  Checked:

- a listing whose IsTruncated stays true with a continuation token that
  repeats (the same one, or a cycle), or with fresh tokens forever, ends
  with an error naming the bucket/prefix and the token problem, after a
  bounded number of LISTs; the service keeps running and a dir source in
  the same configuration still delivers;
- a GetObject that never answers does not hold back the delivery of alerts
  already spooled, and with `request_timeout` the request ends by its
  deadline with a warning naming the object, retried at the next poll (not
  again and again inside the same poll); a GET's deadline grows with the
  object's length, so a large object at a fair rate is not cut and a
  trickle is;
- the watchdog: WATCHDOG=1 keeps coming while a slow GET makes progress and
  stops while a GET gets no answer at all.
"""
import datetime
import gzip
import http.server
import json
import os
import select
import signal
import socket
import tempfile
import threading
import time
import unittest
import urllib.parse

import receivers
import twtest
from test_run import Runner
from test_service import DELETE_RULE, NotifySocket, delete_bucket

PREFIX = "AWSLogs/111122223333/CloudTrail/us-east-1/"
DELETE_RULE_ID = "3c0ad1d4-0000-4000-8000-000000000003"


def log_key(name, minutes_ago=5):
    """A CloudTrail object key of the leaf, named a few minutes back (inside the lookback)."""
    t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=minutes_ago)
    return (f"{PREFIX}{t:%Y/%m/%d}/111122223333_CloudTrail_us-east-1_{t:%Y%m%dT%H%M}Z_{name}.json.gz")


def log_body(n=3, pad=0):
    """A gzip'd CloudTrail file of n harmless records (pad: bytes of filler per record)."""
    recs = [twtest.record(eventName="GetObject", userAgent="x" * pad) for _ in range(n)]
    return gzip.compress(json.dumps({"Records": recs}).encode(), mtime=0)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True      # headers and body are separate writes: no 40 ms delayed-ACK stall

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        fake = self.server.fake
        path, _, query = self.path.partition("?")
        q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        if path.rstrip("/") == "/trail" and q.get("list-type") == "2":
            fake.on_list(self, q)
        elif path.startswith("/trail/"):
            fake.on_get(self, urllib.parse.unquote(path[len("/trail/"):]))
        else:
            self.send_answer(404, b"<Error><Code>NoSuchKey</Code></Error>")

    def send_answer(self, status, body, ctype="application/xml"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class FakeS3:
    """Bucket "trail" on 127.0.0.1, path style.

    list_mode: "normal" (one page of `objects`), "repeat" (IsTruncated with
    the same NextContinuationToken for ever), "cycle" (tokens A, B, C, A...),
    "fresh" (a new token on every page, for ever).  Delimiter listings (the
    source's discovery) get an empty page, so the configured prefix is the
    leaf.  objects: key -> ("body", bytes) | ("hang", seconds or None: no
    answer at all, until the client closes or the time passed, then the
    body) | ("trickle", bytes, chunk, interval).
    """

    def __init__(self, list_mode="normal", objects=None):
        self.list_mode = list_mode
        self.objects = objects or {}
        self.lock = threading.Lock()
        self.lists = 0
        self.list_times = []
        self.chains = []            # pages asked for by each listing (one that starts without a token)
        self._token_chain = {}
        self.gets = []              # dicts: key, start, end, closed_by_client
        self.stopping = threading.Event()
        self.srv = _Server(("127.0.0.1", 0), _Handler)
        self.srv.fake = self
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"
        self._t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self._t.start()

    def close(self):
        self.stopping.set()
        self.srv.shutdown()
        self.srv.server_close()

    def counts(self):
        with self.lock:
            return self.lists, len(self.gets)

    # ---- ListObjectsV2

    def on_list(self, h, q):
        token = q.get("continuation-token")
        with self.lock:
            self.lists += 1
            self.list_times.append(time.monotonic())
            if "delimiter" in q:
                chain = None
            elif token is None or token not in self._token_chain:
                self.chains.append(1)
                chain = len(self.chains) - 1
            else:
                chain = self._token_chain[token]
                self.chains[chain] += 1
        if "delimiter" in q:
            h.send_answer(200, self.page(q, [], None, token))
            return
        if self.list_mode == "normal":
            nxt = None
        elif self.list_mode == "repeat":
            nxt = "SAME-TOKEN-1"
        elif self.list_mode == "cycle":
            nxt = {"A": "B", "B": "C"}.get(token, "A")
        else:
            nxt = "fresh-%d-%d" % (chain, self.chains[chain])
        with self.lock:
            if nxt is not None:
                self._token_chain[nxt] = chain
        keys = sorted(self.objects) if token is None or self.list_mode != "normal" else []
        h.send_answer(200, self.page(q, keys, nxt, token))

    def page(self, q, keys, next_token, token):
        enc = lambda s: urllib.parse.quote(s, safe="/")
        parts = ['<?xml version="1.0" encoding="UTF-8"?>',
                 '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
                 "<Name>trail</Name>", f"<Prefix>{enc(q.get('prefix', ''))}</Prefix>"]
        if "delimiter" in q:
            parts.append(f"<Delimiter>{enc(q['delimiter'])}</Delimiter>")
        parts += [f"<KeyCount>{len(keys)}</KeyCount>", "<MaxKeys>1000</MaxKeys>", "<EncodingType>url</EncodingType>",
                  f"<IsTruncated>{'true' if next_token else 'false'}</IsTruncated>"]
        if token:
            parts.append(f"<ContinuationToken>{token}</ContinuationToken>")
        if next_token:
            parts.append(f"<NextContinuationToken>{next_token}</NextContinuationToken>")
        for k in keys:
            size = len(self.objects[k][1]) if self.objects[k][1] else 0
            parts.append(f"<Contents><Key>{enc(k)}</Key><LastModified>2026-11-26T10:00:00.000Z</LastModified>"
                         f"<ETag>&quot;0123&quot;</ETag><Size>{size}</Size><StorageClass>STANDARD</StorageClass>"
                         "</Contents>")
        parts.append("</ListBucketResult>")
        return "".join(parts).encode()

    # ---- GetObject

    def on_get(self, h, key):
        rec = {"key": key, "start": time.monotonic(), "end": None, "closed_by_client": False}
        with self.lock:
            self.gets.append(rec)
        spec = self.objects.get(key)
        try:
            if spec is None:
                h.send_answer(404, b"<Error><Code>NoSuchKey</Code><Message>none</Message></Error>")
            elif spec[0] == "body":
                h.send_answer(200, spec[1], "application/octet-stream")
            elif spec[0] == "hang":
                if self._silent(h, spec[2] if len(spec) > 2 else None, rec):
                    h.send_answer(200, spec[1], "application/octet-stream")
            elif spec[0] == "trickle":
                _, body, chunk, interval = spec
                h.send_response(200)
                h.send_header("Content-Type", "application/octet-stream")
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                for i in range(0, len(body), chunk):
                    h.wfile.write(body[i:i + chunk])
                    h.wfile.flush()
                    if self.stopping.wait(interval):
                        break
        except (ConnectionError, OSError):
            rec["closed_by_client"] = True
        rec["end"] = time.monotonic()

    def _silent(self, h, seconds, rec):
        """Says nothing for `seconds` (None: for ever); True when the time passed,
        False when the client closed the connection first (or the server stops)."""
        end = None if seconds is None else time.monotonic() + seconds
        while not self.stopping.is_set():
            left = 0.2 if end is None else min(0.2, end - time.monotonic())
            if left <= 0:
                return True
            r, _, _ = select.select([h.connection], [], [], left)
            if r and not h.connection.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK):   # b'' at EOF
                rec["closed_by_client"] = True
                h.close_connection = True
                return False
        return False


def s3_env(base=None):
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.upper().startswith("AWS_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.pop("JOURNAL_STREAM", None)
    env.update({"AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKEFAKE", "AWS_SECRET_ACCESS_KEY": "fake/secret/key",
                "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    return env


class StallTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-stall-")
        self.tmp = self._tmp.name
        self.inbox = os.path.join(self.tmp, "inbox")
        self.state = os.path.join(self.tmp, "state")
        self.rules = os.path.join(self.tmp, "rules")
        os.makedirs(self.inbox)
        os.makedirs(self.rules)
        with open(os.path.join(self.rules, "delete.yml"), "w") as f:
            f.write(DELETE_RULE)
        self.config = os.path.join(self.tmp, "trailwatch.yaml")
        self.fakes, self.runners, self.n = [], [], 0

    def tearDown(self):
        for r in self.runners:
            r.stop(signal.SIGKILL)
        for f in self.fakes:
            f.close()
        self._tmp.cleanup()

    def fake(self, **kw):
        f = FakeS3(**kw)
        self.fakes.append(f)
        return f

    def write_config(self, fake, order=("s3", "dir"), s3_extra="", sinks=""):
        s3 = (f"  - type: s3\n    bucket: trail\n    prefix: {PREFIX}\n    region: us-east-1\n"
              f"    endpoint: {fake.url}\n    path_style: true\n    poll_interval: 1s\n{s3_extra}")
        src = {"s3": s3, "dir": f"  - {{type: dir, path: {self.inbox}, poll_interval: 1s}}\n"}
        with open(self.config, "w") as f:
            f.write(f"state_dir: {self.state}\nrules: [{self.rules}]\nsources:\n"
                    + "".join(src[o] for o in order) + sinks)

    def start(self, env_extra=None):
        env = s3_env()
        env.update(env_extra or {})
        r = Runner(self.config, env)
        self.runners.append(r)
        return r

    def drop(self, i):
        twtest.drop_log(self.inbox, self.n, [delete_bucket(i)])
        self.n += 1

    def wait_until(self, cond, timeout, what, runner=None):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return
            if runner is not None and runner.p.poll() is not None:
                self.fail(f"{what}: trailwatch exited ({runner.p.returncode}):\n{runner.stderr()}")
            time.sleep(0.05)
        self.fail(f"{what}: not within {timeout}s" + (f"\n{runner.stderr()[-3000:]}" if runner else ""))

    def dir_alerts(self, r):
        return [a for a in r.alerts() if a["rule"] == DELETE_RULE_ID]

    # ---- (a) pagination ---------------------------------------------------

    def check_bad_pagination(self, mode, problem):
        fake = self.fake(list_mode=mode, objects={log_key("a"): ("body", log_body())})
        # the S3 source first: before the fix it never returned, so the dir source was never polled
        self.write_config(fake, order=("s3", "dir"))
        self.drop(1)
        r = self.start()
        # (1000 pages from this Python server take a few seconds)
        self.wait_until(lambda: len(self.dir_alerts(r)) >= 1, 10 if mode != "fresh" else 60,
                        "the dir source's first alert", r)
        # every listing stops at the bad token (a page limit of 1000 bounds the fresh
        # tokens), and a prefix whose listings never end is listed again after 0, 1, 3,
        # 7 ... skipped polls (1 s): over 8 s, at most 3 listings however fast the machine
        self.wait_until(lambda: "listed again after 1 skipped poll)" in r.stderr(), 30, "the second failure", r)
        t0 = time.monotonic()
        lists0, _ = fake.counts()
        chains0 = len(fake.chains)
        time.sleep(8)
        lists, _ = fake.counts()
        with fake.lock:
            chains = list(fake.chains)
        self.assertIsNone(r.p.poll(), r.stderr())
        took = time.monotonic() - t0
        self.assertLessEqual(max(chains), 1000 if mode == "fresh" else 4, chains[-5:])
        self.assertLessEqual(len(chains) - chains0, 3, f"{len(chains) - chains0} listings in {took:.1f}s")
        self.assertLessEqual(lists - lists0, 3 * max(chains), f"{lists - lists0} LISTs in {took:.1f}s")
        err = r.stderr()
        self.assertIn(f"LIST s3://trail/{PREFIX}", err)
        self.assertIn(problem, err)
        self.assertIn("listed again at the next poll", err)    # the first failure
        # the dir source keeps going: a new file is alerted
        self.drop(2)
        self.wait_until(lambda: len(self.dir_alerts(r)) >= 2, 10 if mode != "fresh" else 60,
                        "the dir source's second alert", r)
        self.assertEqual(r.stop(), 0, r.stderr())
        return fake

    def test_repeated_continuation_token(self):
        self.check_bad_pagination("repeat", "continuation token")

    def test_cycling_continuation_tokens(self):
        self.check_bad_pagination("cycle", "continuation token")

    def test_endless_fresh_continuation_tokens(self):
        self.check_bad_pagination("fresh", "1000 pages")

    # ---- (b) a GET that never answers -------------------------------------

    def test_hanging_get_does_not_hold_back_delivery(self):
        """The dir source's alert is spooled first; then the S3 source's GET hangs
        (no answer at all).  The webhook must get the alert meanwhile."""
        key = log_key("stuck")
        fake = self.fake(objects={key: ("hang", log_body())})
        with receivers.Receiver() as hook:
            self.write_config(fake, order=("dir", "s3"),
                              sinks=f"sinks:\n  - {{name: hook, type: webhook, url: '{hook.url}'}}\n")
            self.drop(1)
            r = self.start()
            self.wait_until(lambda: fake.counts()[1] >= 1, 10, "the GET", r)
            t_get = fake.gets[0]["start"]
            self.wait_until(lambda: hook.counts().get("total", 0) >= 1, 5,
                            "the dir source's alert at the webhook while the GET hangs", r)
            self.assertIsNone(fake.gets[0]["end"], "the GET ended before the alert was delivered")
            self.assertLess(time.monotonic() - t_get, 5)
            self.assertEqual(hook.requests()[0].json()["rule"], DELETE_RULE_ID)
            # a stop does not wait for the hanging GET
            t = time.monotonic()
            self.assertEqual(r.stop(), 0, r.stderr())
            self.assertLess(time.monotonic() - t, 5)

    def test_hanging_get_ends_by_its_deadline(self):
        key = log_key("stuck")
        fake = self.fake(objects={key: ("hang", log_body())})
        self.write_config(fake, order=("s3", "dir"), s3_extra="    request_timeout: 2s\n")
        r = self.start()
        self.wait_until(lambda: fake.counts()[1] >= 1, 10, "the first GET", r)
        # the warning names the object, after one deadline rather than after a round of retries
        self.wait_until(lambda: f"GET s3://trail/{key}" in r.stderr() and "will retry at the next poll" in r.stderr(),
                        2 + 4, "the warning about the stuck object", r)
        self.wait_until(lambda: fake.counts()[1] >= 3, 10, "GETs at the next polls", r)
        with fake.lock:
            gets = [dict(g) for g in fake.gets if g["end"] is not None]
            list_times = list(fake.list_times)
        for g in gets:
            self.assertTrue(g["closed_by_client"], g)
            self.assertLess(g["end"] - g["start"], 2 + 1.5, g)
            self.assertGreater(g["end"] - g["start"], 1.5, g)
        # not retried inside the poll: a new listing (the next poll) comes between two GETs
        for a, b in zip(gets, gets[1:]):
            self.assertTrue(any(a["end"] <= t <= b["start"] for t in list_times), (a, b, list_times[-10:]))
        self.drop(1)
        self.wait_until(lambda: len(self.dir_alerts(r)) >= 1, 10, "the dir source's alert", r)
        self.assertEqual(r.stop(), 0, r.stderr())

    def test_get_deadline_grows_with_the_object(self):
        """request_timeout 1s: a GET may take 1 s plus its length at 128 KiB/s.
        A ~400 KiB object sent at about 200 KiB/s (2 s) is within its 4 s;
        a 64 KiB one trickled at 10 KiB/s is cut at about 1.5 s."""
        recs = [twtest.record(eventName="GetObject", userAgent=os.urandom(2048).hex()) for _ in range(160)]
        big_body = gzip.compress(json.dumps({"Records": recs}).encode(), mtime=0)
        self.assertGreater(len(big_body), 300 << 10)
        big, slow = log_key("a-big"), log_key("b-trickle")
        fake = self.fake(objects={big: ("trickle", big_body, 20 << 10, 0.1),
                                  slow: ("trickle", os.urandom(64 << 10), 1024, 0.1)})
        self.write_config(fake, order=("s3",), s3_extra="    request_timeout: 1s\n    parallel: 1\n")
        r = self.start()
        self.wait_until(lambda: "answer not complete within" in r.stderr(), 20, "the trickle's warning", r)
        g_big = next(g for g in fake.gets if g["key"] == big)
        g_slow = next(g for g in fake.gets if g["key"] == slow)
        self.wait_until(lambda: g_slow["end"] is not None, 5, "the trickle's end at the server")
        self.assertEqual(r.stop(), 0, r.stderr())
        self.assertFalse(g_big["closed_by_client"], g_big)
        self.assertGreater(g_big["end"] - g_big["start"], 1.5, g_big)    # longer than request_timeout alone
        self.assertTrue(g_slow["closed_by_client"], g_slow)
        self.assertLess(g_slow["end"] - g_slow["start"], 1.5 + 1.5, g_slow)
        err = r.stderr()
        self.assertIn(f"GET s3://trail/{slow}: answer not complete within 1500 ms", err)
        self.assertNotIn(f"GET s3://trail/{big}:", err)
        self.assertRegex(err, r"[1-9]\d* objects")

    # ---- (c) the watchdog -------------------------------------------------

    def test_watchdog_follows_progress(self):
        """WATCHDOG_USEC=2s: pings due every second while the last progress is
        less than 2 s old.  One GET trickles its body over about 5 s
        (progress: the pings go on), the next says nothing for 8 s (no
        progress: the pings stop 2 s into it), then both are done and the
        idle loop pings again."""
        slow, silent = log_key("a-slow"), log_key("b-silent")
        body = log_body(20, pad=40)
        chunk = max(1, len(body) // 20)
        fake = self.fake(objects={slow: ("trickle", body, chunk, 0.25), silent: ("hang", log_body(), 8)})
        self.write_config(fake, order=("s3",), s3_extra="    parallel: 1\n")
        sock = NotifySocket(os.path.join(self.tmp, "notify.sock"))
        try:
            r = self.start({"NOTIFY_SOCKET": sock.path, "WATCHDOG_USEC": "2000000"})
            sock.wait_for("READY", timeout=10)
            self.wait_until(lambda: len(fake.gets) >= 2 and fake.gets[1]["end"] is not None, 30,
                            "both GETs", r)
            time.sleep(3)
            self.assertIsNone(r.p.poll(), r.stderr())
            pings = [t for t, m in sock.having("WATCHDOG")]
            g_slow, g_silent = fake.gets[0], fake.gets[1]
            self.assertEqual((g_slow["key"], g_silent["key"]), (slow, silent))
            self.assertGreater(g_slow["end"] - g_slow["start"], 3.5, g_slow)

            def max_gap(a, b):
                ts = [a] + [t for t in pings if a < t < b] + [b]
                return max(y - x for x, y in zip(ts, ts[1:]))

            # while bytes arrive: pings keep coming, never a gap near the interval
            self.assertLess(max_gap(g_slow["start"] + 0.5, g_slow["end"]), 1.8, pings)
            # while nothing arrives: no ping for most of the 8 s
            self.assertGreater(max_gap(g_silent["start"], g_silent["end"]), 5, pings)
            # afterwards the loop is alive again
            after = [t for t in pings if t > g_silent["end"]]
            self.assertGreaterEqual(len(after), 2, pings)
            self.assertEqual(r.stop(), 0, r.stderr())
        finally:
            sock.close()

    # ---- (c) a credential request that never answers ----------------------

    def test_hanging_sts_does_not_hold_a_stop(self):
        """The source assumes a role; STS accepts the connection and says
        nothing.  A stop must not wait for STS's 30 s deadline (before: it
        waited that long, past the unit's TimeoutStopSec=30 with a retry)."""
        fake = self.fake(objects={log_key("a"): ("body", log_body())})
        with receivers.Receiver() as sts:
            sts.hang()
            self.write_config(fake, order=("s3",),
                              s3_extra="    role_arn: arn:aws:iam::111122223333:role/trail-reader\n")
            r = self.start({"AWS_ENDPOINT_URL_STS": sts.url})
            self.wait_until(lambda: len(sts.requests()) >= 1, 10, "the AssumeRole request", r)
            time.sleep(0.5)
            t = time.monotonic()
            r.p.send_signal(signal.SIGTERM)
            try:
                r.p.wait(10)
            except Exception:
                pass
            took = time.monotonic() - t
            sts.release()
            self.assertIsNotNone(r.p.returncode, "still running 10 s after SIGTERM")
            self.assertLess(took, 3, r.stderr())
            self.assertIn("STS AssumeRole", r.stderr())

if __name__ == "__main__":
    unittest.main()
