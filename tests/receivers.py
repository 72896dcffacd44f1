"""receivers: local HTTP endpoints for the alert sinks' integration tests,
plus checkers for what the sinks send (HMAC signature, Slack, PagerDuty and
Teams payloads).  Standard library only.

    import receivers
    with receivers.Receiver() as r:
        r.rate_limit(retry_after=1, n=3)           # the next 3 requests: 429
        ...run trailwatch with a webhook sink pointed at r.url...
        r.wait_for(4, timeout=10)
        assert r.answers() == ["429", "429", "429", "200"]
        for req in r.requests():
            assert receivers.verify_hmac(req, b"secret")
            assert receivers.slack_problems(req.body) == []

Receiver
    A ThreadingHTTPServer on 127.0.0.1 (a free port, or the one given).  Every
    request (any method) is read in full (Content-Length or chunked;
    "Expect: 100-continue" is honoured) and recorded as a Request *before* it
    is answered, so a client holding an answer can rely on the records.

    How requests are answered (a "behaviour"):
      ok()                       200, body "ok" (the default)
      fail(status, body)         any status, e.g. fail(500), fail(503),
                                 fail(400, b'{"error":"bad"}')
      rate_limit(retry_after)    429 with "Retry-After: <seconds>"
      hang()                     read the request, never answer: the handler
                                 waits until release(), stop(), down(), or
                                 until the client gives up (closes)
      close()                    read the request, close the connection
                                 without a byte of answer (FIN)
      reset()                    the same, but with a TCP RST
      down() / up()              close the listening socket (connections are
                                 refused, live ones are cut) / re-open it on
                                 the same port
    Every behaviour method takes n: with n=None (the default) the behaviour
    becomes the standing one "until changed" and anything queued is dropped;
    with n=k it is queued for the next k requests, after whatever was queued
    before, and then the standing behaviour applies again.  So
        r.rate_limit(retry_after=2, n=3)
    gives "three 429s, then 200s".

    Each request is counted under the label of how it was answered: the
    status as a string ("200", "429", ...), or "hang", "close", "reset";
    counts() also has "total".  answers() is the same labels in arrival
    order.  Requests attempted while down() never reach the receiver and are
    not counted (the client sees ECONNREFUSED).

verify_hmac(request, secret, max_age=300, seen=None, now=None) -> bool
    The sinks' signature scheme: headers
        X-Trailwatch-Timestamp: <unix seconds>
        X-Trailwatch-Signature: v1=<hex(HMAC-SHA256(secret, TIMESTAMP + "." + raw_body))>
    hmac_problem() is the same check returning the reason (None when good).

slack_problems / pagerduty_problems / teams_problems(payload) -> [str]
    The list of what is wrong with a payload (a dict, or the raw JSON body);
    [] means it looks acceptable to the service.  The limits come from the
    services' documentation; see the comments at each checker.
"""

import contextlib
import dataclasses
import datetime
import hashlib
import hmac
import http.server
import json
import re
import select
import socket
import struct
import threading
import time

__all__ = [
    "Request", "Receiver", "sign_hmac", "hmac_problem", "verify_hmac",
    "slack_problems", "pagerduty_problems", "teams_problems",
    "TIMESTAMP_HEADER", "SIGNATURE_HEADER",
]

# ---------------------------------------------------------------------------
# Records


@dataclasses.dataclass(frozen=True)
class Request:
    """One recorded request.

    method, path (the raw request target, query included), headers (a dict of
    the received header names -> values; a repeated header's values are joined
    with ", "), body (the raw bytes, de-chunked), time (time.monotonic() when
    the request head had been read), answer (how it was answered: "200",
    "429", ..., "hang", "close", "reset")."""

    method: str
    path: str
    headers: dict
    body: bytes
    time: float
    answer: str

    def header(self, name, default=None):
        """A header's value, the name matched case-insensitively."""
        lname = name.lower()
        for k, v in self.headers.items():
            if k.lower() == lname:
                return v
        return default

    def json(self):
        """The body parsed as JSON (raises ValueError if it is not JSON)."""
        return json.loads(self.body)


@dataclasses.dataclass(frozen=True)
class _Behaviour:
    kind: str                   # "status", "hang", "close", "reset"
    status: int = 200
    body: bytes = b"ok"
    headers: tuple = ()         # ((name, value), ...)

    @property
    def label(self):
        return str(self.status) if self.kind == "status" else self.kind


_OK = _Behaviour("status", 200, b"ok")

# ---------------------------------------------------------------------------
# The server


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive and 100-continue, as libcurl expects
    server_version = "trailwatch-test-receiver"
    sys_version = ""
    timeout = 60                    # an idle keep-alive connection ends eventually

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        # The answer goes out in several small writes: without TCP_NODELAY,
        # Nagle holds the last one for the client's delayed ACK (~40 ms per
        # request on a kept-alive connection), which would make the receiver,
        # not the sender, the limit of any throughput measured against it.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _read_body(self):
        """The body, de-chunked if Transfer-Encoding: chunked."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("connection closed inside a chunked body")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass            # trailers: ignored
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self):
        receiver = self.server.receiver
        arrived = time.monotonic()
        try:
            body = self._read_body()
        except (ValueError, ConnectionError, OSError):
            self.close_connection = True
            return
        headers = {}
        for name, value in self.headers.items():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        behaviour = receiver._take_behaviour()
        receiver._record(Request(self.command, self.path, headers, body, arrived, behaviour.label))
        try:
            if behaviour.kind == "status":
                self._answer(behaviour)
            elif behaviour.kind == "hang":
                receiver._hang(self.connection)
                self._drop(rst=False)
            elif behaviour.kind == "close":
                self._drop(rst=False)
            else:
                self._drop(rst=True)
        except OSError:                 # the client went away first
            self.close_connection = True

    def _answer(self, b):
        body = b"" if self.command == "HEAD" else b.body
        self.send_response(b.status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(b.body)))
        for name, value in b.headers:
            self.send_header(name, value)
        if self.server.receiver._stopping.is_set():
            self.close_connection = True
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _drop(self, rst):
        """Ends the connection without an answer: FIN, or RST with rst."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            if rst:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
            self.connection.close()     # the real close comes when rfile is closed in finish()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False      # the Receiver tracks and joins handler threads itself
    allow_reuse_address = True  # up() re-binds the same port despite TIME_WAIT

    def process_request(self, request, client_address):
        # Registered here, in the serving thread, so that once shutdown() has
        # returned every connection and thread is known to the Receiver.
        t = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                             name=f"receiver-{self.server_address[1]}-conn", daemon=True)
        self.receiver._track(request, t, True)
        t.start()

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.receiver._track(request, threading.current_thread(), False)

    def handle_error(self, request, client_address):
        pass                    # a client that went away is not a harness error


class Receiver:
    """A recording HTTP receiver on host:port (port 0 = a free one); see the
    module docstring.  A context manager: `with Receiver() as r:` starts and
    stops it.  `path` is only what `url` ends with: every path is accepted."""

    def __init__(self, host="127.0.0.1", port=0, path="/"):
        self.host, self.port = host, port
        self.path = path if path.startswith("/") else "/" + path
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._requests = []
        self._counts = {}
        self._standing = _OK
        self._queue = []            # [[behaviour, remaining], ...]
        self._connections = set()
        self._threads = set()
        self._hanging = 0
        self._release_gen = 0
        self._stopping = threading.Event()
        self._server = None
        self._serve_thread = None
        self._down = False

    # -- life cycle ----------------------------------------------------------

    @property
    def url(self):
        """http://HOST:PORT/PATH (the port is known once started)."""
        return f"http://{self.host}:{self.port}{self.path}"

    @property
    def base_url(self):
        return f"http://{self.host}:{self.port}"

    def start(self):
        """Opens the listening socket and serves; returns self."""
        self._stopping.clear()
        self._open()
        return self

    def _open(self):
        deadline = time.monotonic() + 5
        while True:
            try:
                server = _Server((self.host, self.port), _Handler)
                break
            except OSError:
                if self.port == 0 or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)        # the old socket may still be going away
        server.receiver = self
        self.port = server.server_address[1]
        self._server = server
        self._serve_thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                              name=f"receiver-{self.port}", daemon=True)
        self._serve_thread.start()

    def _close_listener(self):
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()           # serve_forever has returned: no new connections
            server.server_close()       # the listening socket is closed
            self._serve_thread.join(5)
            self._serve_thread = None

    def _cut_connections(self):
        """Releases hanging handlers and shuts every live connection down, which
        wakes handlers blocked reading an idle keep-alive connection."""
        self.release()
        with self._lock:
            conns = list(self._connections)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)

    def stop(self, timeout=5.0):
        """Stops serving; hanging requests are released and every connection is
        cut; handler threads are joined (at most `timeout` seconds in all).
        Safe to call twice or without start().  Raises RuntimeError if a
        handler thread is still alive after the timeout (a harness bug)."""
        self._stopping.set()
        self._close_listener()
        self._cut_connections()
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                threads = [t for t in self._threads if t.is_alive()]
            if not threads:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"receiver on port {self.port}: {len(threads)} handler thread(s) "
                                   f"still alive {timeout}s after stop()")
            threads[0].join(min(left, 0.1))
            self._cut_connections()     # in case one was accepted in the meantime
        self._down = False

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- outage ----------------------------------------------------------------

    def down(self):
        """Closes the listening socket and cuts live connections (hanging ones
        included): new connections are refused until up()."""
        self._down = True
        self._close_listener()
        self._cut_connections()

    def up(self):
        """Re-opens the listening socket on the same port after down()."""
        if self._server is None and not self._stopping.is_set():
            self._open()
        self._down = False

    @property
    def is_down(self):
        return self._down

    # -- behaviours ------------------------------------------------------------

    def _set(self, behaviour, n):
        if n is not None and (not isinstance(n, int) or n < 0):
            raise ValueError(f"n must be None or a count >= 0, not {n!r}")
        with self._lock:
            if n is None:
                self._standing = behaviour
                self._queue.clear()
            elif n > 0:
                self._queue.append([behaviour, n])

    def ok(self, n=None):
        """Answer 200 with body "ok"."""
        self._set(_OK, n)

    def respond(self, status, body=b"", headers=None, n=None):
        """Answer `status` with `body` (bytes or str) and extra `headers` (dict)."""
        if isinstance(body, str):
            body = body.encode()
        if not 100 <= int(status) <= 599:
            raise ValueError(f"status {status!r}")
        self._set(_Behaviour("status", int(status), bytes(body), tuple((headers or {}).items())), n)

    def fail(self, status=500, body=None, headers=None, n=None):
        """An error answer: 500, 503, 400 with a body, ... (body defaults to
        the reason phrase)."""
        if body is None:
            try:
                body = http.HTTPStatus(status).phrase
            except ValueError:
                body = "error"
        self.respond(status, body, headers, n)

    def rate_limit(self, retry_after=1, body="rate limited", n=None):
        """Answer 429 with "Retry-After: <retry_after>" (seconds; any value you
        give is sent as is, so an invalid one can be tested too)."""
        self.respond(429, body, {"Retry-After": str(retry_after)}, n)

    def hang(self, n=None):
        """Read the request and never answer: until release(), stop(), down()
        or the client closing the connection."""
        self._set(_Behaviour("hang", 0, b""), n)

    def close(self, n=None):
        """Read the request, then close the connection without answering."""
        self._set(_Behaviour("close", 0, b""), n)

    def reset(self, n=None):
        """Read the request, then reset the connection (TCP RST) without answering."""
        self._set(_Behaviour("reset", 0, b""), n)

    def pending(self):
        """How many queued (n=...) answers are still to be given."""
        with self._lock:
            return sum(left for _, left in self._queue)

    def release(self):
        """Ends every request hanging now: its connection is closed unanswered.
        Requests that arrive later still hang if the behaviour says so."""
        with self._changed:
            self._release_gen += 1
            self._changed.notify_all()

    def hanging(self):
        """How many requests are hanging right now."""
        with self._lock:
            return self._hanging

    def _take_behaviour(self):
        with self._lock:
            if self._queue:
                item = self._queue[0]
                item[1] -= 1
                if item[1] <= 0:
                    self._queue.pop(0)
                return item[0]
            return self._standing

    def _hang(self, conn):
        with self._changed:
            gen = self._release_gen
            self._hanging += 1
        try:
            while True:
                with self._changed:
                    if self._release_gen != gen or self._stopping.is_set():
                        return
                    self._changed.wait(0.05)
                if _peer_closed(conn):
                    return
        finally:
            with self._changed:
                self._hanging -= 1
                self._changed.notify_all()

    # -- records ---------------------------------------------------------------

    def _record(self, req):
        with self._changed:
            self._requests.append(req)
            self._counts[req.answer] = self._counts.get(req.answer, 0) + 1
            self._changed.notify_all()

    def _track(self, conn, thread, opened):
        with self._lock:
            if opened:
                self._connections.add(conn)
                self._threads.add(thread)
            else:
                self._connections.discard(conn)
                self._threads.discard(thread)

    def requests(self):
        """A copy of the list of Requests, in arrival order."""
        with self._lock:
            return list(self._requests)

    def bodies_json(self):
        """Every request body parsed as JSON (ValueError names the one that is not)."""
        out = []
        for i, r in enumerate(self.requests()):
            try:
                out.append(json.loads(r.body))
            except ValueError as e:
                raise ValueError(f"request {i} ({r.method} {r.path}) body is not JSON: {e}: {r.body[:200]!r}")
        return out

    def answers(self):
        """How each request was answered, in arrival order ("200", "429", "hang", ...)."""
        with self._lock:
            return [r.answer for r in self._requests]

    def counts(self):
        """{label: number of requests answered so} plus "total"."""
        with self._lock:
            return dict(self._counts, total=len(self._requests))

    def clear(self):
        """Forgets the recorded requests and counters (behaviours are kept)."""
        with self._lock:
            self._requests.clear()
            self._counts.clear()

    def wait_for(self, n, timeout=10.0):
        """Waits until at least n requests were recorded; returns the requests.
        Raises TimeoutError saying how many came and how they were answered."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    got = len(self._requests)
                    last = "; ".join(f"{r.method} {r.path} -> {r.answer}" for r in self._requests[-3:])
                    raise TimeoutError(
                        f"receiver {self.url}: waited {timeout}s for {n} request(s), got {got}"
                        f" (counts {dict(self._counts)}; {'DOWN; ' if self._down else ''}"
                        f"standing answer {self._standing.label}, queued "
                        f"{[(b.label, k) for b, k in self._queue]})"
                        + (f"; last: {last}" if last else ""))
                self._changed.wait(left)
            return list(self._requests)


def _peer_closed(conn):
    """True if the client closed its end (or the socket is unusable)."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        if not readable:
            return False
        return conn.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True

# ---------------------------------------------------------------------------
# HMAC signatures

TIMESTAMP_HEADER = "X-Trailwatch-Timestamp"
SIGNATURE_HEADER = "X-Trailwatch-Signature"


def _key(secret):
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def sign_hmac(secret, body, timestamp=None):
    """The headers a correct sender adds: {TIMESTAMP_HEADER: ..., SIGNATURE_HEADER: "v1=<hex>"}."""
    ts = str(int(time.time()) if timestamp is None else int(timestamp))
    body = body.encode() if isinstance(body, str) else bytes(body)
    mac = hmac.new(_key(secret), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: "v1=" + mac}


def hmac_problem(request, secret, max_age=300, seen=None, now=None):
    """None if `request` (a Request, or anything with .headers and .body) is
    correctly signed, else why not.  The timestamp must be plain decimal unix
    seconds no more than max_age old nor max_age in the future (now: the
    current time, default time.time()); the signature "v1=" + lower-case hex
    HMAC-SHA256(secret, TIMESTAMP + "." + raw body), compared in constant
    time.  With a `seen` set, a (timestamp, signature) pair already in it is
    a replay; a good request's pair is added to it."""
    get = request.header if hasattr(request, "header") else \
        (lambda name: next((v for k, v in request.headers.items() if k.lower() == name.lower()), None))
    ts, sig = get(TIMESTAMP_HEADER), get(SIGNATURE_HEADER)
    if ts is None:
        return f"no {TIMESTAMP_HEADER} header"
    if sig is None:
        return f"no {SIGNATURE_HEADER} header"
    if not re.fullmatch(r"[0-9]{1,12}", ts):
        return f"{TIMESTAMP_HEADER} {ts!r} is not unix seconds"
    now = time.time() if now is None else now
    age = now - int(ts)
    if age > max_age:
        return f"timestamp {ts} is {age:.0f}s old (max {max_age}s)"
    if -age > max_age:
        return f"timestamp {ts} is {-age:.0f}s in the future (max {max_age}s)"
    if not sig.startswith("v1="):
        return f"{SIGNATURE_HEADER} {sig[:80]!r} does not start with 'v1='"
    body = request.body.encode() if isinstance(request.body, str) else bytes(request.body)
    expected = "v1=" + hmac.new(_key(secret), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(sig.encode("utf-8", "replace"), expected.encode()):
        return "signature does not match"
    if seen is not None:
        if (ts, sig) in seen:
            return "replayed (timestamp, signature) pair"
        seen.add((ts, sig))
    return None


def verify_hmac(request, secret, max_age=300, seen=None, now=None):
    """True if hmac_problem(...) finds nothing wrong, else False."""
    return hmac_problem(request, secret, max_age, seen, now) is None

# ---------------------------------------------------------------------------
# Payload checkers: shared helpers


def _load(payload, problems):
    """A dict from a dict, str or bytes (JSON); None (with a problem noted) if not."""
    if isinstance(payload, (bytes, bytearray, str)):
        try:
            payload = json.loads(payload)
        except ValueError as e:
            problems.append(f"body is not JSON: {e}")
            return None
    if not isinstance(payload, dict):
        problems.append(f"payload is a {type(payload).__name__}, not a JSON object")
        return None
    return payload


def _str(value, where, problems, max_len=None, required=True, min_len=1):
    """Checks a string field; returns True if it is a string."""
    if value is None:
        if required:
            problems.append(f"{where} is missing")
        return False
    if not isinstance(value, str):
        problems.append(f"{where} is a {type(value).__name__}, not a string")
        return False
    if len(value) < min_len:
        problems.append(f"{where} is empty")
    if max_len is not None and len(value) > max_len:
        problems.append(f"{where} has {len(value)} characters (max {max_len})")
    return True

# ---------------------------------------------------------------------------
# Slack (incoming webhook message with Block Kit blocks)
#
# Limits, from Slack's Block Kit reference (docs.slack.dev / api.slack.com
# reference/block-kit), as found with the docs search:
# * "You can include up to 50 blocks in each message" (reference/block-kit/blocks).
# * Text object: type "plain_text" or "mrkdwn"; text "The minimum length is 1
#   and maximum length is 3000 characters"; `emoji` "only usable when type is
#   plain_text", `verbatim` "only usable when type is mrkdwn"
#   (reference/block-kit/composition-objects/text-object).
# * Header block: "text ... in the form of a plain_text text object. Maximum
#   length for the text in this field is 150 characters"; block_id max 255
#   (reference/block-kit/blocks/header-block).
# * Section block: text "Maximum length for the text in this field is 3000
#   characters"; fields "Maximum number of items is 10. Maximum length for the
#   text in each item is 2000 characters"; one of the two is required.
# * Context block: elements (image elements and text objects) "Maximum number
#   of items is 10".
# * Actions block: "There is a maximum of 25 elements in each action block".
# * Button element: text plain_text, max 75; action_id max 255; url "Maximum
#   length for this field is 3000 characters"; value max 2000; style
#   "primary" or "danger" (reference/block-kit/block-elements/button-element).
# * Image (block or element): image_url and alt_text required; alt_text max
#   2000 (the validation example of the slack-blocks crate fails at 2001).
# * Whole message: Slack truncates message text longer than 40,000 characters
#   (api.slack.com/changelog/2018-04-truncating-really-long-messages); here the
#   whole serialized message is capped at that, a reasonable upper bound.
# Lengths are counted in Unicode code points (Python's len).

SLACK_MAX_BLOCKS = 50
SLACK_MAX_TEXT = 3000
SLACK_MAX_HEADER = 150
SLACK_MAX_FIELDS = 10
SLACK_MAX_FIELD_TEXT = 2000
SLACK_MAX_CONTEXT_ELEMENTS = 10
SLACK_MAX_ACTION_ELEMENTS = 25
SLACK_MAX_BUTTON_TEXT = 75
SLACK_MAX_URL = 3000
SLACK_MAX_BUTTON_VALUE = 2000
SLACK_MAX_BLOCK_ID = 255
SLACK_MAX_ALT_TEXT = 2000
SLACK_MAX_MESSAGE = 40000

# Types this checker does not look into, but which are valid blocks.
_SLACK_OTHER_BLOCKS = {"rich_text", "markdown", "file", "video", "input", "table"}


def _slack_text(obj, where, problems, max_len=SLACK_MAX_TEXT, plain_only=False):
    if not isinstance(obj, dict):
        problems.append(f"{where} is not a text object (a {type(obj).__name__})")
        return
    t = obj.get("type")
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if t not in allowed:
        problems.append(f"{where}.type is {t!r}, not {' or '.join(allowed)}")
    _str(obj.get("text"), f"{where}.text", problems, max_len)
    if "emoji" in obj and t != "plain_text":
        problems.append(f"{where}.emoji is only allowed with plain_text")
    if "verbatim" in obj and t != "mrkdwn":
        problems.append(f"{where}.verbatim is only allowed with mrkdwn")
    for k in ("emoji", "verbatim"):
        if k in obj and not isinstance(obj[k], bool):
            problems.append(f"{where}.{k} is not a boolean")


def _slack_image(obj, where, problems):
    _str(obj.get("image_url"), f"{where}.image_url", problems, SLACK_MAX_URL)
    _str(obj.get("alt_text"), f"{where}.alt_text", problems, SLACK_MAX_ALT_TEXT)


def _slack_element(el, where, problems):
    """An interactive element (accessory or actions element)."""
    if not isinstance(el, dict):
        problems.append(f"{where} is not an object")
        return
    t = el.get("type")
    if t == "button":
        if "text" not in el:
            problems.append(f"{where}.text is missing")
        else:
            _slack_text(el["text"], f"{where}.text", problems, SLACK_MAX_BUTTON_TEXT, plain_only=True)
        _str(el.get("action_id"), f"{where}.action_id", problems, SLACK_MAX_BLOCK_ID, required=False)
        _str(el.get("url"), f"{where}.url", problems, SLACK_MAX_URL, required=False)
        _str(el.get("value"), f"{where}.value", problems, SLACK_MAX_BUTTON_VALUE, required=False)
        if "style" in el and el["style"] not in ("primary", "danger"):
            problems.append(f"{where}.style is {el['style']!r}, not primary or danger")
    elif t == "image":
        _slack_image(el, where, problems)
    elif not isinstance(t, str) or not t:
        problems.append(f"{where}.type is missing")


def _slack_block(block, where, problems):
    if not isinstance(block, dict):
        problems.append(f"{where} is not an object")
        return
    t = block.get("type")
    _str(block.get("block_id"), f"{where}.block_id", problems, SLACK_MAX_BLOCK_ID, required=False)
    if t == "header":
        if "text" not in block:
            problems.append(f"{where}.text is missing")
        else:
            _slack_text(block["text"], f"{where}.text", problems, SLACK_MAX_HEADER, plain_only=True)
    elif t == "section":
        if "text" not in block and "fields" not in block:
            problems.append(f"{where} has neither text nor fields")
        if "text" in block:
            _slack_text(block["text"], f"{where}.text", problems, SLACK_MAX_TEXT)
        if "fields" in block:
            fields = block["fields"]
            if not isinstance(fields, list) or not fields:
                problems.append(f"{where}.fields is not a non-empty list")
            else:
                if len(fields) > SLACK_MAX_FIELDS:
                    problems.append(f"{where}.fields has {len(fields)} items (max {SLACK_MAX_FIELDS})")
                for i, f in enumerate(fields):
                    _slack_text(f, f"{where}.fields[{i}]", problems, SLACK_MAX_FIELD_TEXT)
        if "accessory" in block:
            _slack_element(block["accessory"], f"{where}.accessory", problems)
    elif t == "context":
        els = block.get("elements")
        if not isinstance(els, list) or not els:
            problems.append(f"{where}.elements is not a non-empty list")
        else:
            if len(els) > SLACK_MAX_CONTEXT_ELEMENTS:
                problems.append(f"{where}.elements has {len(els)} items (max {SLACK_MAX_CONTEXT_ELEMENTS})")
            for i, el in enumerate(els):
                if isinstance(el, dict) and el.get("type") == "image":
                    _slack_image(el, f"{where}.elements[{i}]", problems)
                else:
                    _slack_text(el, f"{where}.elements[{i}]", problems, SLACK_MAX_TEXT)
    elif t == "actions":
        els = block.get("elements")
        if not isinstance(els, list) or not els:
            problems.append(f"{where}.elements is not a non-empty list")
        else:
            if len(els) > SLACK_MAX_ACTION_ELEMENTS:
                problems.append(f"{where}.elements has {len(els)} items (max {SLACK_MAX_ACTION_ELEMENTS})")
            for i, el in enumerate(els):
                _slack_element(el, f"{where}.elements[{i}]", problems)
    elif t == "image":
        _slack_image(block, where, problems)
        if "title" in block:
            _slack_text(block["title"], f"{where}.title", problems, SLACK_MAX_ALT_TEXT, plain_only=True)
    elif t == "divider" or t in _SLACK_OTHER_BLOCKS:
        pass
    elif t is None:
        problems.append(f"{where}.type is missing")
    else:
        problems.append(f"{where}.type {t!r} is not a known block type")


def slack_problems(payload):
    """What is wrong with a Slack incoming-webhook message (dict or JSON body);
    [] if nothing.  See the limits above."""
    problems = []
    msg = _load(payload, problems)
    if msg is None:
        return problems
    text, blocks = msg.get("text"), msg.get("blocks")
    if text is None and blocks is None:
        problems.append("neither text nor blocks is present")
    if text is not None:
        _str(text, "text", problems, SLACK_MAX_MESSAGE)
    if blocks is not None:
        if not isinstance(blocks, list) or not blocks:
            problems.append("blocks is not a non-empty list")
        else:
            if len(blocks) > SLACK_MAX_BLOCKS:
                problems.append(f"{len(blocks)} blocks (max {SLACK_MAX_BLOCKS})")
            for i, b in enumerate(blocks):
                _slack_block(b, f"blocks[{i}]", problems)
    size = len(json.dumps(msg, ensure_ascii=False))
    if size > SLACK_MAX_MESSAGE:
        problems.append(f"the message JSON has {size} characters (cap {SLACK_MAX_MESSAGE})")
    return problems

# ---------------------------------------------------------------------------
# PagerDuty Events API v2
#
# From PagerDuty's developer docs, "Send an Alert Event"
# (github.com/PagerDuty/developer-docs, docs/events-API-v2/02-Trigger-Events.md):
# * routing_key, required: "the 32 character Integration Key" (only required
#   non-empty here);
# * event_action, required: "trigger, acknowledge or resolve";
# * dedup_key: "The maximum permitted length of this property is 255
#   characters"; acknowledge and resolve events act on the alert with that
#   key, so it is required for them here;
# * payload.summary, required: "The maximum permitted length of this property
#   is 1024 characters"; payload.source, required; payload.severity, required:
#   "critical, error, warning or info"; payload.timestamp optional (ISO 8601,
#   e.g. the docs' "2015-07-17T08:42:58.315+0000"); component, group, class
#   strings; custom_details an object;
# * images: objects with src (required), href, alt; links: objects with href
#   (required), text.
# The payload object is required for trigger events only.

PD_ACTIONS = ("trigger", "acknowledge", "resolve")
PD_SEVERITIES = ("critical", "error", "warning", "info")
PD_MAX_DEDUP_KEY = 255
PD_MAX_SUMMARY = 1024

_ISO8601 = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|z|[+-]\d{2}(:?\d{2})?)?")


def _iso8601(s):
    if not isinstance(s, str) or not _ISO8601.fullmatch(s):
        return False
    t = s.replace("z", "Z")
    t = re.sub(r"\.(\d{6})\d+", r".\1", t)          # fromisoformat takes at most microseconds
    try:
        datetime.datetime.fromisoformat(t)
    except ValueError:
        return False
    return True


def pagerduty_problems(payload):
    """What is wrong with a PagerDuty Events API v2 event (dict or JSON body);
    [] if nothing."""
    problems = []
    ev = _load(payload, problems)
    if ev is None:
        return problems
    _str(ev.get("routing_key"), "routing_key", problems)
    action = ev.get("event_action")
    if action not in PD_ACTIONS:
        problems.append(f"event_action is {action!r}, not one of {', '.join(PD_ACTIONS)}")
    if "dedup_key" in ev:
        _str(ev["dedup_key"], "dedup_key", problems, PD_MAX_DEDUP_KEY)
    elif action in ("acknowledge", "resolve"):
        problems.append(f"dedup_key is missing ({action} needs it)")
    p = ev.get("payload")
    if p is None:
        if action == "trigger":
            problems.append("payload is missing (trigger needs it)")
    elif not isinstance(p, dict):
        problems.append("payload is not an object")
    else:
        _str(p.get("summary"), "payload.summary", problems, PD_MAX_SUMMARY)
        _str(p.get("source"), "payload.source", problems)
        if p.get("severity") not in PD_SEVERITIES:
            problems.append(f"payload.severity is {p.get('severity')!r}, not one of {', '.join(PD_SEVERITIES)}")
        if "timestamp" in p and not _iso8601(p["timestamp"]):
            problems.append(f"payload.timestamp {p['timestamp']!r} is not an ISO 8601 date-time")
        for k in ("component", "group", "class"):
            if k in p:
                _str(p[k], f"payload.{k}", problems)
        if "custom_details" in p and not isinstance(p["custom_details"], dict):
            problems.append("payload.custom_details is not an object")
    for k in ("client", "client_url"):
        if k in ev:
            _str(ev[k], k, problems)
    for k, required in (("images", "src"), ("links", "href")):
        if k in ev:
            if not isinstance(ev[k], list):
                problems.append(f"{k} is not a list")
                continue
            for i, item in enumerate(ev[k]):
                if not isinstance(item, dict):
                    problems.append(f"{k}[{i}] is not an object")
                else:
                    _str(item.get(required), f"{k}[{i}].{required}", problems)
    return problems

# ---------------------------------------------------------------------------
# Microsoft Teams incoming webhook with an Adaptive Card
#
# From Microsoft's Teams docs (MicrosoftDocs/msteams-docs,
# webhooks-and-connectors/how-to/connectors-using.md, "Send adaptive cards
# using an incoming webhook"): the body is
#   {"type": "message", "attachments": [{"contentType":
#    "application/vnd.microsoft.card.adaptive", "contentUrl": null,
#    "content": {"$schema": ..., "type": "AdaptiveCard", "version": "1.2",
#                "body": [...]}}]}
# "The type field must be message", "The attachments array contains a set of
# card objects", "The contentType field must be set to adaptive card type",
# "The content object is the card formatted in JSON".  Supported actions:
# Action.OpenUrl, Action.ShowCard, Action.ToggleVisibility (Action.Submit is
# not).  "The message size limit is 28 KB" (add-incoming-webhook, learn.microsoft.com).
# Card elements are checked shallowly: each has a type; TextBlock has text;
# FactSet facts have title and value; containers are walked.

TEAMS_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
TEAMS_ACTIONS = ("Action.OpenUrl", "Action.ShowCard", "Action.ToggleVisibility")
TEAMS_MAX_BYTES = 28 * 1024


def _teams_actions(actions, where, problems):
    if not isinstance(actions, list):
        problems.append(f"{where} is not a list")
        return
    for i, a in enumerate(actions):
        w = f"{where}[{i}]"
        if not isinstance(a, dict):
            problems.append(f"{w} is not an object")
            continue
        t = a.get("type")
        if t not in TEAMS_ACTIONS:
            problems.append(f"{w}.type is {t!r}, not one of {', '.join(TEAMS_ACTIONS)}")
        if t == "Action.OpenUrl":
            _str(a.get("url"), f"{w}.url", problems)
        if t == "Action.ShowCard" and isinstance(a.get("card"), dict):
            _teams_elements(a["card"].get("body", []), f"{w}.card.body", problems)


def _teams_elements(items, where, problems):
    if not isinstance(items, list):
        problems.append(f"{where} is not a list")
        return
    for i, el in enumerate(items):
        w = f"{where}[{i}]"
        if not isinstance(el, dict):
            problems.append(f"{w} is not an object")
            continue
        t = el.get("type")
        if not isinstance(t, str) or not t:
            problems.append(f"{w}.type is missing")
            continue
        if t == "TextBlock":
            _str(el.get("text"), f"{w}.text", problems, min_len=0)
        elif t == "FactSet":
            facts = el.get("facts")
            if not isinstance(facts, list):
                problems.append(f"{w}.facts is not a list")
            else:
                for j, f in enumerate(facts):
                    if not isinstance(f, dict):
                        problems.append(f"{w}.facts[{j}] is not an object")
                        continue
                    _str(f.get("title"), f"{w}.facts[{j}].title", problems, min_len=0)
                    _str(f.get("value"), f"{w}.facts[{j}].value", problems, min_len=0)
        elif t == "Container":
            _teams_elements(el.get("items"), f"{w}.items", problems)
        elif t == "ColumnSet":
            for j, col in enumerate(el.get("columns") or []):
                if not isinstance(col, dict):
                    problems.append(f"{w}.columns[{j}] is not an object")
                else:
                    _teams_elements(col.get("items", []), f"{w}.columns[{j}].items", problems)
        elif t == "ActionSet":
            _teams_actions(el.get("actions"), f"{w}.actions", problems)


def teams_problems(payload):
    """What is wrong with a Teams incoming-webhook Adaptive Card message
    (dict or JSON body); [] if nothing."""
    problems = []
    msg = _load(payload, problems)
    if msg is None:
        return problems
    if msg.get("type") != "message":
        problems.append(f"type is {msg.get('type')!r}, not 'message'")
    atts = msg.get("attachments")
    if not isinstance(atts, list) or not atts:
        problems.append("attachments is not a non-empty list")
        atts = []
    for i, att in enumerate(atts):
        w = f"attachments[{i}]"
        if not isinstance(att, dict):
            problems.append(f"{w} is not an object")
            continue
        if att.get("contentType") != TEAMS_CONTENT_TYPE:
            problems.append(f"{w}.contentType is {att.get('contentType')!r}, not {TEAMS_CONTENT_TYPE!r}")
        if att.get("contentUrl") is not None:
            problems.append(f"{w}.contentUrl should be null or absent")
        card = att.get("content")
        if not isinstance(card, dict):
            problems.append(f"{w}.content is not an object")
            continue
        if card.get("type") != "AdaptiveCard":
            problems.append(f"{w}.content.type is {card.get('type')!r}, not 'AdaptiveCard'")
        v = card.get("version")
        if not isinstance(v, str) or not re.fullmatch(r"\d+\.\d+", v):
            problems.append(f"{w}.content.version is {v!r}, not a version string like '1.4'")
        body = card.get("body")
        if not isinstance(body, list) or not body:
            problems.append(f"{w}.content.body is not a non-empty list")
        else:
            _teams_elements(body, f"{w}.content.body", problems)
        if "actions" in card:
            _teams_actions(card["actions"], f"{w}.content.actions", problems)
    size = len(json.dumps(msg, ensure_ascii=False).encode())
    if size > TEAMS_MAX_BYTES:
        problems.append(f"the message is {size} bytes (max {TEAMS_MAX_BYTES})")
    return problems
