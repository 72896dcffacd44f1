"""Self-tests of tests/receivers.py: every answer mode seen from a real HTTP
client, the counters, wait_for, the life cycle (no hang, no leaked threads or
ports), the HMAC check and the payload checkers."""
import http.client
import json
import socket
import threading
import time
import unittest
import urllib.error
import urllib.request

import receivers
from receivers import Receiver


def post(url_or_receiver, body=b"{}", headers=None, timeout=5.0, path=None, conn=None, method="POST",
         chunked=False):
    """POSTs with http.client; returns (status, {lower-case header: value}, body)."""
    r = url_or_receiver
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(r.host, r.port, timeout=timeout)
    try:
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if chunked:
            conn.request(method, path or r.path, body=iter([body[:3], body[3:]]), headers=hdrs,
                         encode_chunked=True)
        else:
            conn.request(method, path or r.path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        if own:
            conn.close()


def connect(port, timeout=1.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.close()


class ReceiverTestCase(unittest.TestCase):
    def setUp(self):
        self.threads_before = set(threading.enumerate())
        self.clients = []
        self.addCleanup(self.join_and_check_threads)    # runs after r.stop (cleanups are LIFO)
        self.r = Receiver().start()
        self.addCleanup(self.r.stop)

    def join_and_check_threads(self):
        for t in self.clients:
            t.join(10)
        leaked = [t for t in threading.enumerate() if t not in self.threads_before]
        self.assertEqual(leaked, [], "threads left behind")

    def in_thread(self, fn, *args, **kw):
        """Runs fn in a thread; returns (thread, result dict with 'value' or 'error')."""
        out = {}

        def run():
            try:
                out["value"] = fn(*args, **kw)
            except BaseException as e:   # noqa: BLE001 - handed to the test
                out["error"] = e
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.clients.append(t)
        return t, out


class Basics(ReceiverTestCase):
    def test_default_answer_and_record(self):
        r = self.r
        self.assertRegex(r.url, r"^http://127\.0\.0\.1:\d+/$")
        self.assertNotEqual(r.port, 0)
        before = time.monotonic()
        status, headers, body = post(r, b'{"a": 1}', {"X-Thing": "yes"}, path="/hook/1?x=2")
        after = time.monotonic()
        self.assertEqual((status, body), (200, b"ok"))
        self.assertEqual(headers["content-length"], "2")
        [req] = r.requests()
        self.assertEqual((req.method, req.path, req.body, req.answer), ("POST", "/hook/1?x=2", b'{"a": 1}', "200"))
        self.assertEqual(req.headers["X-Thing"], "yes")
        self.assertEqual(req.header("x-thing"), "yes")
        self.assertEqual(req.header("Content-Type"), "application/json")
        self.assertIsNone(req.header("X-Absent"))
        self.assertTrue(before <= req.time <= after)
        self.assertEqual(r.bodies_json(), [{"a": 1}])
        self.assertEqual(req.json(), {"a": 1})
        self.assertEqual(r.counts(), {"200": 1, "total": 1})

    def test_urllib_and_other_methods(self):
        r = self.r
        with urllib.request.urlopen(urllib.request.Request(r.url, data=b"[1,2]", method="PUT"), timeout=5) as resp:
            self.assertEqual((resp.status, resp.read()), (200, b"ok"))
        with urllib.request.urlopen(r.base_url + "/x", timeout=5) as resp:
            self.assertEqual(resp.status, 200)
        self.assertEqual([(q.method, q.path, q.body) for q in r.requests()],
                         [("PUT", "/", b"[1,2]"), ("GET", "/x", b"")])

    def test_requests_is_a_copy(self):
        post(self.r)
        reqs = self.r.requests()
        reqs.clear()
        self.assertEqual(len(self.r.requests()), 1)

    def test_chunked_body_and_expect_100_continue(self):
        r = self.r
        status, _, _ = post(r, b'{"chunked": true}', chunked=True)
        self.assertEqual(status, 200)
        # Expect: 100-continue, as libcurl sends for larger bodies: the client
        # waits for "100 Continue" before sending the body.
        big = json.dumps({"pad": "x" * 5000}).encode()
        with socket.create_connection((r.host, r.port), timeout=5) as s:
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(big))
            first = s.recv(100)
            self.assertTrue(first.startswith(b"HTTP/1.1 100"), first)
            s.sendall(big)
            rest = b""
            while b"\r\n\r\nok" not in rest:
                chunk = s.recv(4096)
                self.assertTrue(chunk, rest)
                rest += chunk
            self.assertIn(b" 200 ", rest)
        self.assertEqual([q.body for q in r.requests()], [b'{"chunked": true}', big])

    def test_keep_alive_connection_serves_several(self):
        conn = http.client.HTTPConnection(self.r.host, self.r.port, timeout=5)
        try:
            for i in range(3):
                self.assertEqual(post(self.r, b"%d" % i, conn=conn)[0], 200)
        finally:
            conn.close()
        self.assertEqual([q.body for q in self.r.requests()], [b"0", b"1", b"2"])

    def test_concurrent_requests_all_recorded(self):
        outs = [self.in_thread(post, self.r, b'{"i": %d}' % i) for i in range(20)]
        for t, _ in outs:
            t.join(10)
        self.assertTrue(all(o.get("value", (0,))[0] == 200 for _, o in outs), outs)
        self.assertEqual(sorted(b["i"] for b in self.r.bodies_json()), list(range(20)))
        self.assertEqual(self.r.counts(), {"200": 20, "total": 20})

    def test_bodies_json_names_the_bad_body(self):
        post(self.r, b"{}")
        post(self.r, b"not json")
        with self.assertRaisesRegex(ValueError, r"request 1 .*not JSON"):
            self.r.bodies_json()

    def test_clear(self):
        post(self.r)
        self.r.clear()
        self.assertEqual((self.r.requests(), self.r.counts()), ([], {"total": 0}))


class Modes(ReceiverTestCase):
    def test_error_statuses(self):
        r = self.r
        r.fail(500, n=1)
        r.fail(503, n=1)
        r.fail(400, body=b'{"error":"invalid_payload"}', n=1)
        self.assertEqual(r.pending(), 3)
        got = [post(r) for _ in range(4)]
        self.assertEqual([g[0] for g in got], [500, 503, 400, 200])
        self.assertEqual(got[0][2], b"Internal Server Error")
        self.assertEqual(got[2][2], b'{"error":"invalid_payload"}')
        self.assertEqual(r.answers(), ["500", "503", "400", "200"])
        self.assertEqual(r.pending(), 0)

    def test_429_with_retry_after_then_200(self):
        r = self.r
        r.rate_limit(retry_after=7, n=3)
        got = [post(r) for _ in range(13)]
        self.assertEqual([g[0] for g in got], [429] * 3 + [200] * 10)
        self.assertEqual(got[0][1]["retry-after"], "7")
        self.assertNotIn("retry-after", got[3][1])
        self.assertEqual(r.counts(), {"429": 3, "200": 10, "total": 13})
        self.assertEqual(r.answers(), ["429"] * 3 + ["200"] * 10)
        # urllib sees it as an HTTPError carrying the header
        r.rate_limit(retry_after=2, n=1)
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(urllib.request.Request(r.url, data=b"{}"), timeout=5)
        self.assertEqual((cm.exception.code, cm.exception.headers["Retry-After"]), (429, "2"))
        cm.exception.close()

    def test_standing_mode_until_changed_and_queue_first(self):
        r = self.r
        r.fail(503)                       # standing
        self.assertEqual([post(r)[0] for _ in range(3)], [503] * 3)
        r.rate_limit(1, n=2)              # queued, then back to the standing 503
        self.assertEqual([post(r)[0] for _ in range(3)], [429, 429, 503])
        r.fail(500, n=5)
        r.ok()                            # standing; drops the queue
        self.assertEqual(r.pending(), 0)
        self.assertEqual(post(r)[0], 200)
        r.respond(202, "accepted", {"X-Custom": "1"})
        status, headers, body = post(r)
        self.assertEqual((status, headers["x-custom"], body), (202, "1", b"accepted"))
        with self.assertRaises(ValueError):
            r.fail(500, n=-1)

    def test_close_without_answer(self):
        r = self.r
        r.close(n=1)
        with self.assertRaises(http.client.RemoteDisconnected):
            post(r, b'{"closed": 1}')
        self.assertEqual(post(r)[0], 200)
        self.assertEqual(r.answers(), ["close", "200"])
        self.assertEqual(r.requests()[0].body, b'{"closed": 1}')    # read in full first

    def test_reset_without_answer(self):
        self.r.reset(n=1)
        with self.assertRaises(ConnectionResetError) as cm:
            post(self.r)
        # a real RST (ECONNRESET), not the orderly close that http.client
        # reports as RemoteDisconnected (itself a ConnectionResetError subclass)
        self.assertNotIsInstance(cm.exception, http.client.RemoteDisconnected)
        self.assertEqual(self.r.counts(), {"reset": 1, "total": 1})

    def test_hang_until_client_times_out(self):
        r = self.r
        r.hang(n=1)
        start = time.monotonic()
        with self.assertRaises(socket.timeout):
            post(r, timeout=0.3)
        self.assertLess(time.monotonic() - start, 2)
        self.assertEqual(r.answers(), ["hang"])
        # the handler notices the client gave up and ends
        deadline = time.monotonic() + 2
        while r.hanging() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(r.hanging(), 0)
        self.assertEqual(post(r)[0], 200)

    def test_hang_released(self):
        r = self.r
        r.hang()
        t, out = self.in_thread(post, r, timeout=10)
        r.wait_for(1)
        time.sleep(0.2)
        self.assertTrue(t.is_alive())                 # really no answer yet
        self.assertEqual(r.hanging(), 1)
        start = time.monotonic()
        r.release()
        t.join(3)
        self.assertLess(time.monotonic() - start, 1.5)
        self.assertIsInstance(out.get("error"), (http.client.RemoteDisconnected, ConnectionResetError), out)
        self.assertEqual(r.hanging(), 0)
        # still hanging mode: the next one hangs too
        t2, out2 = self.in_thread(post, r, timeout=10)
        r.wait_for(2)
        r.ok()
        self.assertTrue(t2.is_alive())
        r.release()
        t2.join(3)
        self.assertIn("error", out2)

    def test_stop_releases_hanging_requests_quickly(self):
        r = self.r
        r.hang()
        ts = [self.in_thread(post, r, timeout=20) for _ in range(3)]
        r.wait_for(3)
        # plus an idle keep-alive connection
        conn = http.client.HTTPConnection(r.host, r.port, timeout=20)
        self.addCleanup(conn.close)
        conn.connect()
        start = time.monotonic()
        r.stop()
        self.assertLess(time.monotonic() - start, 2.0)
        for t, out in ts:
            t.join(3)
            self.assertFalse(t.is_alive())
            self.assertIsInstance(out.get("error"), (http.client.RemoteDisconnected, ConnectionResetError), out)
        self.assertEqual(r.counts(), {"hang": 3, "total": 3})

    def test_down_refuses_and_up_accepts_on_same_port(self):
        r = self.r
        port = r.port
        conn = http.client.HTTPConnection(r.host, r.port, timeout=5)     # a live keep-alive connection
        self.addCleanup(conn.close)
        self.assertEqual(post(r, conn=conn)[0], 200)
        r.down()
        self.assertTrue(r.is_down)
        with self.assertRaises(ConnectionRefusedError):
            connect(port)
        with self.assertRaises(urllib.error.URLError) as cm:
            urllib.request.urlopen(urllib.request.Request(r.url, data=b"{}"), timeout=5)
        self.assertIsInstance(cm.exception.reason, ConnectionRefusedError)
        # the live connection was cut: reusing it fails
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError, BrokenPipeError)):
            post(r, conn=conn)
        r.up()
        self.assertFalse(r.is_down)
        self.assertEqual(r.port, port)
        self.assertEqual(post(r)[0], 200)
        self.assertEqual(r.counts(), {"200": 2, "total": 2})     # nothing counted while down

    def test_down_cuts_hanging_request(self):
        r = self.r
        r.hang(n=1)
        t, out = self.in_thread(post, r, timeout=10)
        r.wait_for(1)
        r.down()
        t.join(3)
        self.assertIn("error", out)
        r.up()
        self.assertEqual(post(r)[0], 200)


class WaitFor(ReceiverTestCase):
    def test_timeout_message(self):
        self.r.rate_limit(1, n=5)
        post(self.r)
        start = time.monotonic()
        with self.assertRaises(TimeoutError) as cm:
            self.r.wait_for(2, timeout=0.3)
        took = time.monotonic() - start
        self.assertTrue(0.25 <= took < 1.5, took)
        msg = str(cm.exception)
        self.assertIn("for 2 request(s), got 1", msg)
        self.assertIn("'429': 1", msg)
        self.assertIn("POST / -> 429", msg)
        self.assertIn(str(self.r.port), msg)

    def test_wakes_up_when_requests_arrive(self):
        def later():
            time.sleep(0.2)
            post(self.r, b"1")
            post(self.r, b"2")
        self.in_thread(later)
        start = time.monotonic()
        reqs = self.r.wait_for(2, timeout=5)
        self.assertLess(time.monotonic() - start, 2)
        self.assertEqual([q.body for q in reqs], [b"1", b"2"])
        self.assertEqual(len(self.r.wait_for(0, timeout=0)), 2)


class Lifecycle(unittest.TestCase):
    def test_no_threads_or_ports_leak(self):
        before = {t for t in threading.enumerate()}
        ports = []
        for _ in range(3):
            with Receiver() as r:
                ports.append(r.port)
                post(r)
                conn = http.client.HTTPConnection(r.host, r.port, timeout=5)
                post(r, conn=conn)                  # left open, idle
                r.hang(n=1)
                client = threading.Thread(target=lambda: self.assertRaises(Exception, post, r, timeout=10))
                client.start()
                r.wait_for(3)
                r.down()
                r.up()
            client.join(5)
            conn.close()
            self.assertFalse(client.is_alive())
        leaked = [t for t in threading.enumerate() if t not in before]
        self.assertEqual(leaked, [])
        for port in ports:                          # nothing listens any more
            with self.assertRaises(ConnectionRefusedError):
                connect(port)
        # and the port can be bound again
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", ports[-1]))
        finally:
            s.close()

    def test_stop_twice_and_without_start(self):
        Receiver().stop()
        r = Receiver().start()
        r.stop()
        r.stop()

    def test_restart_and_given_port(self):
        r = Receiver().start()
        port = r.port
        r.stop()
        r2 = Receiver(port=port, path="hook").start()
        try:
            self.assertEqual(r2.url, f"http://127.0.0.1:{port}/hook")
            self.assertEqual(post(r2)[0], 200)
            self.assertEqual(r2.requests()[0].path, "/hook")
        finally:
            r2.stop()


class Hmac(unittest.TestCase):
    SECRET = b"s3cret-key"

    def req(self, body=b'{"alert":1}', headers=None):
        return receivers.Request("POST", "/", headers or {}, body, 0.0, "200")

    def test_good_signature(self):
        h = receivers.sign_hmac(self.SECRET, b'{"alert":1}')
        self.assertTrue(receivers.verify_hmac(self.req(headers=h), self.SECRET))
        self.assertTrue(receivers.verify_hmac(self.req(headers=h), self.SECRET.decode()))   # str secret
        # header names are case-insensitive
        low = {k.lower(): v for k, v in h.items()}
        self.assertTrue(receivers.verify_hmac(self.req(headers=low), self.SECRET))

    def test_known_vector(self):
        # computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac key
        h = {"X-Trailwatch-Timestamp": "1700000000",
             "X-Trailwatch-Signature": "v1=" + __import__("hmac").new(
                 b"key", b'1700000000.{"a":1}', "sha256").hexdigest()}
        self.assertEqual(receivers.sign_hmac(b"key", b'{"a":1}', 1700000000), h)
        self.assertTrue(receivers.verify_hmac(self.req(b'{"a":1}', h), b"key", now=1700000100))

    def test_bad_signatures(self):
        h = receivers.sign_hmac(self.SECRET, b'{"alert":1}')
        now = int(h["X-Trailwatch-Timestamp"])
        cases = {
            "wrong secret": (self.req(headers=h), b"other"),
            "tampered body": (self.req(b'{"alert":2}', h), self.SECRET),
            "flipped hex": (self.req(headers={**h, "X-Trailwatch-Signature": h["X-Trailwatch-Signature"][:-1]
                                              + ("0" if h["X-Trailwatch-Signature"][-1] != "0" else "1")}),
                            self.SECRET),
            "no v1=": (self.req(headers={**h, "X-Trailwatch-Signature": h["X-Trailwatch-Signature"][3:]}),
                       self.SECRET),
            "upper-case hex": (self.req(headers={**h, "X-Trailwatch-Signature":
                                                 "v1=" + h["X-Trailwatch-Signature"][3:].upper()}), self.SECRET),
            "no signature": (self.req(headers={"X-Trailwatch-Timestamp": h["X-Trailwatch-Timestamp"]}),
                             self.SECRET),
            "no timestamp": (self.req(headers={"X-Trailwatch-Signature": h["X-Trailwatch-Signature"]}),
                             self.SECRET),
            "timestamp not digits": (self.req(headers={**h, "X-Trailwatch-Timestamp": "17e8"}), self.SECRET),
            "signed other timestamp": (self.req(headers={**h, "X-Trailwatch-Timestamp": str(now - 1)}),
                                       self.SECRET),
        }
        for name, (req, secret) in cases.items():
            with self.subTest(name):
                self.assertFalse(receivers.verify_hmac(req, secret, now=now))
                self.assertIsNotNone(receivers.hmac_problem(req, secret, now=now))

    def test_timestamp_window(self):
        body = b"{}"
        h = receivers.sign_hmac(self.SECRET, body, 1_000_000)
        req = self.req(body, h)
        self.assertTrue(receivers.verify_hmac(req, self.SECRET, now=1_000_300))        # exactly max_age
        self.assertFalse(receivers.verify_hmac(req, self.SECRET, now=1_000_301))       # too old
        self.assertIn("old", receivers.hmac_problem(req, self.SECRET, now=1_000_301))
        self.assertTrue(receivers.verify_hmac(req, self.SECRET, now=999_700))
        self.assertFalse(receivers.verify_hmac(req, self.SECRET, now=999_699))         # too far ahead
        self.assertIn("future", receivers.hmac_problem(req, self.SECRET, now=999_699))
        self.assertTrue(receivers.verify_hmac(req, self.SECRET, max_age=10, now=1_000_010))
        self.assertFalse(receivers.verify_hmac(req, self.SECRET, max_age=10, now=1_000_011))
        # default now = the clock
        self.assertFalse(receivers.verify_hmac(req, self.SECRET))

    def test_replay(self):
        seen = set()
        h = receivers.sign_hmac(self.SECRET, b"{}")
        self.assertFalse(receivers.verify_hmac(self.req(b"{}", {**h, "X-Trailwatch-Signature": "v1=00"}),
                                               self.SECRET, seen=seen))
        self.assertEqual(seen, set())                      # a bad one is not remembered
        self.assertTrue(receivers.verify_hmac(self.req(b"{}", h), self.SECRET, seen=seen))
        self.assertFalse(receivers.verify_hmac(self.req(b"{}", h), self.SECRET, seen=seen))
        self.assertIn("replay", receivers.hmac_problem(self.req(b"{}", h), self.SECRET, seen=seen))
        h2 = receivers.sign_hmac(self.SECRET, b"{ }")          # another message: fine
        self.assertTrue(receivers.verify_hmac(self.req(b"{ }", h2), self.SECRET, seen=seen))

    def test_over_http(self):
        with Receiver() as r:
            body = b'{"x":1}'
            post(r, body, receivers.sign_hmac("k", body))
            post(r, body, receivers.sign_hmac("wrong", body))
            self.assertEqual([receivers.verify_hmac(q, "k") for q in r.requests()], [True, False])


def text(t, s="mrkdwn"):
    return {"type": s, "text": t}


GOOD_SLACK = {
    "text": "Root login from 203.0.113.10",
    "blocks": [
        {"type": "header", "text": text("Root console login", "plain_text")},
        {"type": "section", "text": text("*Rule:* root login"),
         "fields": [text("*Account*\n111122223333"), text("*Region*\nus-east-1")],
         "accessory": {"type": "button", "text": text("Open", "plain_text"), "url": "https://example.com/a",
                       "style": "danger"}},
        {"type": "divider"},
        {"type": "context", "elements": [text("event e-1"), {"type": "image", "image_url": "https://x/i.png",
                                                              "alt_text": "icon"}]},
        {"type": "actions", "elements": [{"type": "button", "text": text("Ack", "plain_text"),
                                          "action_id": "ack", "value": "e-1"}]},
    ],
}


def slack_with(**changes):
    msg = json.loads(json.dumps(GOOD_SLACK))
    for path, value in changes.items():
        obj = msg
        keys = path.split("__")
        for k in keys[:-1]:
            obj = obj[int(k)] if isinstance(obj, list) else obj[k]
        last = keys[-1]
        if isinstance(obj, list):
            obj[int(last)] = value
        elif value is KeyError:
            del obj[last]
        else:
            obj[last] = value
    return msg


class Slack(unittest.TestCase):
    def test_good(self):
        self.assertEqual(receivers.slack_problems(GOOD_SLACK), [])
        self.assertEqual(receivers.slack_problems(json.dumps(GOOD_SLACK).encode()), [])
        self.assertEqual(receivers.slack_problems({"text": "just text"}), [])
        self.assertEqual(receivers.slack_problems({"blocks": [{"type": "section", "text": text("x" * 3000)}]}), [])
        self.assertEqual(receivers.slack_problems(
            {"blocks": [{"type": "header", "text": text("h" * 150, "plain_text")}]}), [])

    def test_bad(self):
        fields11 = [text("f")] * 11
        cases = {
            "not json": (b"{nope", "not JSON"),
            "a list": ([], "not a JSON object"),
            "no text or blocks": ({"username": "x"}, "neither text nor blocks"),
            "empty text": ({"text": ""}, "text is empty"),
            "51 blocks": ({"blocks": [{"type": "divider"}] * 51}, "51 blocks (max 50)"),
            "header 151": (slack_with(blocks__0__text=text("h" * 151, "plain_text")), "151 characters (max 150)"),
            "header mrkdwn": (slack_with(blocks__0__text=text("h")), "not plain_text"),
            "section 3001": (slack_with(blocks__1__text=text("s" * 3001)), "3001 characters (max 3000)"),
            "11 fields": (slack_with(blocks__1__fields=fields11), "11 items (max 10)"),
            "field 2001": (slack_with(blocks__1__fields__0=text("f" * 2001)), "2001 characters (max 2000)"),
            "section empty": ({"blocks": [{"type": "section"}]}, "neither text nor fields"),
            "text object no type": (slack_with(blocks__1__text={"text": "x"}), "type is None"),
            "text object bad type": (slack_with(blocks__1__text=text("x", "markdown")), "type is 'markdown'"),
            "text object no text": (slack_with(blocks__1__text={"type": "mrkdwn"}), "text.text is missing"),
            "text object empty": (slack_with(blocks__1__text=text("")), "text.text is empty"),
            "text is a string": (slack_with(blocks__1__text="plain string"), "not a text object"),
            "emoji on mrkdwn": (slack_with(blocks__1__text={**text("x"), "emoji": True}), "emoji is only allowed"),
            "11 context elements": (slack_with(blocks__3__elements=[text("c")] * 11), "11 items (max 10)"),
            "button url 3001": (slack_with(blocks__1__accessory__url="https://e/" + "u" * 2991),
                                "url has 3001 characters (max 3000)"),
            "button text 76": (slack_with(blocks__4__elements__0__text=text("b" * 76, "plain_text")),
                               "76 characters (max 75)"),
            "button style": (slack_with(blocks__4__elements__0__style="green"), "style is 'green'"),
            "block_id 256": (slack_with(blocks__2__block_id="b" * 256), "block_id has 256 characters"),
            "unknown block": ({"blocks": [{"type": "sectoin", "text": text("x")}]}, "not a known block type"),
            "message too big": ({"text": "t" * 39990, "blocks": [{"type": "section", "text": text("x" * 100)}]},
                                "cap 40000"),
        }
        for name, (payload, expected) in cases.items():
            with self.subTest(name):
                problems = receivers.slack_problems(payload)
                self.assertTrue(any(expected in p for p in problems), (expected, problems))


GOOD_PD = {
    "routing_key": "R0123456789abcdef0123456789abcde",
    "event_action": "trigger",
    "dedup_key": "trailwatch-0123456789abcdef",
    "payload": {"summary": "Root console login", "source": "trailwatch@host1", "severity": "critical",
                "timestamp": "2026-11-26T10:00:00Z", "component": "cloudtrail", "group": "aws",
                "class": "attack.t1078", "custom_details": {"eventID": "e-1"}},
    "links": [{"href": "https://example.com/a", "text": "event"}],
    "client": "trailwatch",
}


def pd_with(**changes):
    ev = json.loads(json.dumps(GOOD_PD))
    for k, v in changes.items():
        obj, key = (ev["payload"], k[3:]) if k.startswith("pl_") else (ev, k)
        if v is KeyError:
            del obj[key]
        else:
            obj[key] = v
    return ev


class PagerDuty(unittest.TestCase):
    def test_good(self):
        self.assertEqual(receivers.pagerduty_problems(GOOD_PD), [])
        self.assertEqual(receivers.pagerduty_problems(json.dumps(GOOD_PD)), [])
        for ts in ("2015-07-17T08:42:58.315+0000", "2026-11-26T10:00:00.123456789+01:00", "2026-11-26T10:00:00"):
            self.assertEqual(receivers.pagerduty_problems(pd_with(pl_timestamp=ts)), [], ts)
        self.assertEqual(receivers.pagerduty_problems(pd_with(pl_timestamp=KeyError)), [])
        resolve = {"routing_key": "k", "event_action": "resolve", "dedup_key": "d"}
        self.assertEqual(receivers.pagerduty_problems(resolve), [])
        self.assertEqual(receivers.pagerduty_problems(pd_with(pl_summary="s" * 1024, dedup_key="d" * 255)), [])

    def test_bad(self):
        cases = {
            "no routing_key": (pd_with(routing_key=KeyError), "routing_key is missing"),
            "empty routing_key": (pd_with(routing_key=""), "routing_key is empty"),
            "bad action": (pd_with(event_action="create"), "event_action is 'create'"),
            "dedup 256": (pd_with(dedup_key="d" * 256), "256 characters (max 255)"),
            "resolve without dedup": ({"routing_key": "k", "event_action": "acknowledge"}, "dedup_key is missing"),
            "no payload": (pd_with(payload=KeyError), "payload is missing"),
            "summary 1025": (pd_with(pl_summary="s" * 1025), "1025 characters (max 1024)"),
            "empty summary": (pd_with(pl_summary=""), "payload.summary is empty"),
            "no source": (pd_with(pl_source=KeyError), "payload.source is missing"),
            "bad severity": (pd_with(pl_severity="high"), "payload.severity is 'high'"),
            "no severity": (pd_with(pl_severity=KeyError), "payload.severity is None"),
            "bad timestamp": (pd_with(pl_timestamp="26/11/2026 10:00"), "not an ISO 8601"),
            "impossible date": (pd_with(pl_timestamp="2026-13-40T10:00:00Z"), "not an ISO 8601"),
            "numeric timestamp": (pd_with(pl_timestamp=1700000000), "not an ISO 8601"),
            "details not object": (pd_with(pl_custom_details="x"), "custom_details is not an object"),
            "link without href": (pd_with(links=[{"text": "x"}]), "links[0].href is missing"),
        }
        for name, (payload, expected) in cases.items():
            with self.subTest(name):
                problems = receivers.pagerduty_problems(payload)
                self.assertTrue(any(expected in p for p in problems), (expected, problems))


def teams(card=None, **top):
    card = card if card is not None else {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4",
        "body": [{"type": "TextBlock", "text": "Root console login", "weight": "Bolder"},
                 {"type": "FactSet", "facts": [{"title": "Account", "value": "111122223333"}]},
                 {"type": "Container", "items": [{"type": "TextBlock", "text": "details"}]}],
        "actions": [{"type": "Action.OpenUrl", "title": "Open", "url": "https://example.com/a"}]}
    msg = {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                               "contentUrl": None, "content": card}]}
    msg.update(top)
    return msg


class Teams(unittest.TestCase):
    def test_good(self):
        self.assertEqual(receivers.teams_problems(teams()), [])
        self.assertEqual(receivers.teams_problems(json.dumps(teams()).encode()), [])
        m = teams()
        del m["attachments"][0]["contentUrl"]
        self.assertEqual(receivers.teams_problems(m), [])

    def test_bad(self):
        def card(**changes):
            c = teams()["attachments"][0]["content"]
            for k, v in changes.items():
                if v is KeyError:
                    del c[k]
                else:
                    c[k] = v
            return teams(c)

        def att(**changes):
            m = teams()
            m["attachments"][0].update(changes)
            return m
        cases = {
            "type not message": (teams(type="MessageCard"), "type is 'MessageCard'"),
            "no attachments": (teams(attachments=[]), "attachments is not a non-empty list"),
            "wrong contentType": (att(contentType="application/json"), "contentType is 'application/json'"),
            "contentUrl set": (att(contentUrl="https://x"), "contentUrl should be null"),
            "content missing": (att(content=None), "content is not an object"),
            "card type": (card(type="MessageCard"), "content.type is 'MessageCard'"),
            "no version": (card(version=KeyError), "content.version is None"),
            "numeric version": (card(version=1.4), "content.version is 1.4"),
            "no body": (card(body=KeyError), "content.body is not a non-empty list"),
            "TextBlock without text": (card(body=[{"type": "TextBlock"}]), "body[0].text is missing"),
            "element without type": (card(body=[{"text": "x"}]), "body[0].type is missing"),
            "fact without value": (card(body=[{"type": "FactSet", "facts": [{"title": "a"}]}]),
                                   "facts[0].value is missing"),
            "nested bad": (card(body=[{"type": "Container", "items": [{"type": "TextBlock", "text": 5}]}]),
                           "items[0].text is a int"),
            "Action.Submit": (card(actions=[{"type": "Action.Submit", "title": "x"}]), "'Action.Submit'"),
            "OpenUrl without url": (card(actions=[{"type": "Action.OpenUrl"}]), "actions[0].url is missing"),
            "too big": (card(body=[{"type": "TextBlock", "text": "x" * 30000}]), "bytes (max 28672)"),
            "not json": ("<html>", "not JSON"),
        }
        for name, (payload, expected) in cases.items():
            with self.subTest(name):
                problems = receivers.teams_problems(payload)
                self.assertTrue(any(expected in p for p in problems), (expected, problems))


if __name__ == "__main__":
    unittest.main()
