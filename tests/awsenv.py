"""awsenv: a real S3 API for integration tests, with every request's SigV4
signature verified.

    import awsenv
    with awsenv.S3Env(bucket="trail") as env:
        env.upload_tree("/tmp/trail", prefix="")          # straight to moto
        # run the code under test against env.endpoint_url, with
        # subprocess.run(..., env=env.client_env())
        env.assert_no_rejections()
        print(env.counts())                # {'list': 3, 'get': 7, ...}

What runs:

    code under test --HTTP--> VerifyingProxy --HTTP--> moto_server
                              (127.0.0.1:P1)           (127.0.0.1:P2)

* MotoServer: `python3 -m moto.server` (what the `moto_server` script runs)
  on a free loopback port, output captured to a temp file.  Moto's own
  signature checking stays OFF (INITIAL_NO_AUTH_ACTION_COUNT is not set):
  it wrongly rejects correct requests whose query values contain '/'.
* Verifier: checks a request's AWS4-HMAC-SHA256 Authorization header the
  way S3 does, recomputing the signature with botocore's S3SigV4Auth and a
  credential table the test controls, plus stricter checks of its own (see
  Verifier.check for the list and the reason strings).
* VerifyingProxy: a ThreadingHTTPServer that verifies each request, answers
  rejections with an S3-style XML error, forwards good requests unchanged to
  moto and relays the answer; it also counts requests by kind and injects
  faults (SlowDown, InternalError, connection resets, delays, a held
  upstream, a whole outage with the port closed) on the test's command.
* S3Env: the three together as a context manager, plus helpers to fill the
  bucket, to build the environment of the code under test, and to craft raw
  signed requests.

How a request is verified (Verifier.check): the Authorization header is
parsed; the access key is looked up in the table; scope, dates, required
signed headers, session token, wire encoding and payload hash are checked
one by one, each failure with its own reason string; then the request is
rebuilt as received (method, canonical path and query, only the headers
named in SignedHeaders with their received values, X-Amz-Date as the
timestamp) into a botocore AWSRequest, and botocore's S3SigV4Auth computes
canonical_request -> string_to_sign -> signature with the secret from the
table.  The canonical path/query are derived from the wire form the way S3
does (percent-decode once, re-encode unreserved-only, upper-case hex); by
default (strict_encoding) the wire form must already be that canonical
form, so what was sent is exactly what was signed.  The computation is
checked against AWS's official SigV4 test vectors by test_awsenv.py.

Addressing is path-style (http://127.0.0.1:PORT/BUCKET/KEY): that is what a
client needs with a custom endpoint on an IP address.

Only the standard library, boto3/botocore and moto are used.
"""

import atexit
import collections
import contextlib
import datetime
import hashlib
import hmac
import http.client
import http.server
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from urllib.parse import quote, unquote_to_bytes, urlsplit
from xml.sax.saxutils import escape as xml_escape

import boto3
import botocore.auth
import botocore.config
import botocore.credentials
from botocore.awsrequest import AWSRequest, HTTPHeaders

DEFAULT_REGION = "us-east-1"
# The default (permanent) key pair.  The secret deliberately contains '/'
# and '+', as real secrets do.
DEFAULT_ACCESS_KEY = "AKIATRAILWATCHTEST01"
DEFAULT_SECRET_KEY = "tw/Test+Secret/Key0123456789abcdefGHIJKLMN"

SIGV4_ALGORITHM = "AWS4-HMAC-SHA256"
SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"   # the X-Amz-Date format
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_SKEW_SECONDS = 15 * 60          # what S3 allows

# Hop-by-hop headers: never forwarded in either direction.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
              "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "expect"}

# Environment variables a client could pick up from the host besides AWS_*.
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


Credentials = collections.namedtuple("Credentials", "access_key secret_key token")
Credentials.__new__.__defaults__ = (None,)
Credentials.__doc__ = "An access key pair; token is the session token of temporary credentials, or None."

Rejection = collections.namedtuple("Rejection", "reason method path query status code message access_key detail")
Rejection.__doc__ = """A request the proxy refused.
reason: the harness's own distinct reason string (see Verifier.check);
method/path/query: as received (raw); status/code/message: the S3-style
answer sent; access_key: from the Credential, if it could be parsed;
detail: extra text (for signature mismatches: the canonical request and
string to sign the proxy computed)."""

RequestRecord = collections.namedtuple("RequestRecord", "method path query kind status outcome access_key")
RequestRecord.__doc__ = """One request seen by the proxy (filed before its answer is sent).
kind: list/get/head/put/other (see classify); status: HTTP status answered
(None for a reset); outcome: 'ok' (forwarded), 'rejected', 'fault' (injected
error or reset), 'error' (upstream failure)."""

RawResponse = collections.namedtuple("RawResponse", "status headers body")
RawResponse.__doc__ = "status: int; headers: list of (name, value); body: bytes."


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def error_xml(code, message, **extra):
    """An S3 error document: <Error><Code>..</Code><Message>..</Message>..</Error>."""
    parts = [f"<Code>{xml_escape(code)}</Code>", f"<Message>{xml_escape(message)}</Message>"]
    for name, value in extra.items():
        parts.append(f"<{name}>{xml_escape(str(value))}</{name}>")
    parts.append(f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error>' + "".join(parts) + "</Error>").encode()


def error_code(body):
    """The <Code> of an S3 error body (bytes), or None."""
    m = re.search(rb"<Code>([^<]*)</Code>", body or b"")
    return m.group(1).decode() if m else None


def classify(method, path, query):
    """The kind of a path-style request, for the counters:
    'list' = GET on a bucket with list-type=2 (ListObjectsV2),
    'get' = GET on an object, 'head' = any HEAD, 'put' = any PUT,
    'other' = everything else (ListObjects v1, ListBuckets, POST, DELETE...)."""
    method = method.upper()
    if method == "HEAD":
        return "head"
    if method == "PUT":
        return "put"
    if method == "GET":
        bucket, _, key = path.lstrip("/").partition("/")
        params = [p.partition("=") for p in query.split("&")] if query else []
        if bucket and not key:
            if any(k == "list-type" and v == "2" for k, _, v in params):
                return "list"
            return "other"
        if bucket and key:
            return "get"
    return "other"


# ---------------------------------------------------------------------------
# Canonical encoding (what S3 signs) and the checks of the wire encoding

_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_PCT_LOWER = re.compile(r"%(?:[0-9a-f][a-f]|[a-f][0-9a-f])")


def _wire_bytes(s):
    # http.server decodes the request line as ISO-8859-1: that maps every
    # byte to one character, so this gives back the exact bytes received.
    return s.encode("latin-1")


def canonical_path(raw_path):
    """S3's canonical URI for a path as received: percent-decode once, then
    URI-encode every byte except unreserved characters and '/'
    (A-Z a-z 0-9 - _ . ~ /), upper-case hex.  S3 does not normalise the
    path (no '.'/'..' resolution, no double encoding, '//' kept)."""
    return quote(unquote_to_bytes(_wire_bytes(raw_path)), safe="/~")


def canonical_query_pairs(raw_query):
    """[(raw_key, raw_value, canonical_key, canonical_value)] for a query
    string as received.  Canonical = percent-decode once, URI-encode all but
    unreserved characters ('/' included), upper-case hex.  A parameter
    without '=' (e.g. ?uploads) has the value ''."""
    pairs = []
    if not raw_query:
        return pairs
    for item in raw_query.split("&"):
        k, _, v = item.partition("=")
        ck = quote(unquote_to_bytes(_wire_bytes(k)), safe="-_.~")
        cv = quote(unquote_to_bytes(_wire_bytes(v)), safe="-_.~")
        pairs.append((k, v, ck, cv))
    return pairs


# ---------------------------------------------------------------------------
# The verifier


class Reject(Exception):
    """Raised by Verifier.check: the request must be refused."""

    def __init__(self, reason, status, code, message, access_key=None, detail="", extra=None):
        super().__init__(f"{reason}: {message}")
        self.reason, self.status, self.code, self.message = reason, status, code, message
        self.access_key, self.detail, self.extra = access_key, detail, extra or {}


class _ExactHeadersSigner(botocore.auth.S3SigV4Auth):
    """botocore's S3 signer, made to sign exactly the headers it is given.

    S3SigV4Auth.headers_to_sign() drops a blacklist (user-agent, expect...)
    and adds 'host' from the URL when missing; for verification the header
    set must be exactly the client's SignedHeaders, so this returns the
    request's headers as they are (the verifier puts only the signed ones
    in).  Everything else - canonical header values (trim, fold repeated
    headers with ','), the sorted SignedHeaders list, the canonical query
    string from the URL, the path taken as is (S3 does not normalise it),
    the string to sign, the key derivation - is botocore's code."""

    def headers_to_sign(self, request):
        return request.headers


class Verifier:
    """Checks requests against a credential table.

    Construct with the expected region; the table is changed with
    add_credentials/remove_credentials/expire_credentials (thread-safe).
    Settings (plain attributes, may be changed while running):
      allow_unsigned_payload: accept x-amz-content-sha256: UNSIGNED-PAYLOAD
          (default False: the body must be hashed);
      strict_encoding: the path and query on the wire must already be in
          canonical form (default True; lowercase hex is refused either way);
      max_skew: seconds X-Amz-Date may be from now (default 900, as S3).
    """

    def __init__(self, region=DEFAULT_REGION, service="s3", allow_unsigned_payload=False,
                 strict_encoding=True, max_skew=MAX_SKEW_SECONDS):
        self.region = region
        self.service = service
        self.allow_unsigned_payload = allow_unsigned_payload
        self.strict_encoding = strict_encoding
        self.max_skew = max_skew
        self._lock = threading.Lock()
        self._table = {}        # access key -> (Credentials, expired: bool)

    # -- credential table ---------------------------------------------------

    def add_credentials(self, access_key, secret_key, token=None):
        """Registers a key pair (token: the session token it requires, or
        None for a permanent key).  Returns the Credentials."""
        creds = Credentials(access_key, secret_key, token)
        with self._lock:
            self._table[access_key] = (creds, False)
        return creds

    def remove_credentials(self, access_key):
        with self._lock:
            self._table.pop(access_key, None)

    def expire_credentials(self, access_key):
        """From now on requests with this key get 400 ExpiredToken."""
        with self._lock:
            creds, _ = self._table[access_key]
            self._table[access_key] = (creds, True)

    def lookup(self, access_key):
        """(Credentials, expired) or None."""
        with self._lock:
            return self._table.get(access_key)

    # -- the check ----------------------------------------------------------

    @staticmethod
    def parse_authorization(value):
        """Parses 'AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
        SignedHeaders=a;b;c, Signature=hex'.  Returns a dict with access_key,
        date, region, service, signed_headers (list, as sent) and signature;
        raises ValueError when malformed."""
        algorithm, _, rest = value.strip().partition(" ")
        if algorithm != SIGV4_ALGORITHM:
            raise ValueError(f"unsupported algorithm {algorithm!r}")
        fields = {}
        for part in rest.split(","):
            name, eq, val = part.strip().partition("=")
            if not eq or name in fields:
                raise ValueError(f"bad component {part.strip()!r}")
            fields[name] = val
        if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
            raise ValueError(f"components {sorted(fields)}; need Credential, SignedHeaders, Signature")
        scope = fields["Credential"].split("/")
        if len(scope) != 5 or scope[4] != "aws4_request" or not all(scope):
            raise ValueError(f"bad Credential {fields['Credential']!r}")
        if not re.fullmatch(r"[0-9a-f]{64}", fields["Signature"]):
            raise ValueError("Signature is not 64 lowercase hex digits")
        signed = fields["SignedHeaders"].split(";")
        if not all(signed):
            raise ValueError(f"bad SignedHeaders {fields['SignedHeaders']!r}")
        return {"access_key": scope[0], "date": scope[1], "region": scope[2], "service": scope[3],
                "signed_headers": signed, "signature": fields["Signature"]}

    def check(self, method, target, headers, body, now=None):
        """Verifies one request as received.

        method: as received; target: the raw request target ('/bucket/key?a=b',
        exactly the bytes of the request line, as http.server gives it);
        headers: http.client.HTTPMessage (or anything with get_all/items);
        body: bytes, already de-chunked.  Returns the Credentials used;
        raises Reject with one of these reasons, checked in this order:

          missing-authorization      no Authorization header (403 AccessDenied)
          presigned-url              X-Amz-Signature in the query: unsupported
          malformed-authorization    unparsable Authorization (400 AuthorizationHeaderMalformed)
          unknown-access-key         not in the table (403 InvalidAccessKeyId)
          scope-service-mismatch     service in Credential is not s3 (400 AuthorizationHeaderMalformed)
          scope-region-mismatch      region in Credential is not ours (400 AuthorizationHeaderMalformed)
          missing-amz-date           no X-Amz-Date (403 AccessDenied)
          bad-amz-date               X-Amz-Date not YYYYMMDDTHHMMSSZ (403 AccessDenied)
          scope-date-mismatch        Credential date != X-Amz-Date[:8] (400 AuthorizationHeaderMalformed)
          time-skewed                X-Amz-Date more than max_skew from now (403 RequestTimeTooSkewed)
          missing-content-sha256     no x-amz-content-sha256 (400 InvalidRequest)
          host-not-signed            'host' not in SignedHeaders (403 AccessDenied)
          amz-date-not-signed        'x-amz-date' not in SignedHeaders (403 AccessDenied)
          content-sha256-not-signed  'x-amz-content-sha256' not in SignedHeaders (403 AccessDenied)
          signed-header-missing      a SignedHeaders name absent from the request (403 AccessDenied)
          unsigned-amz-header        an x-amz-* header present but not signed (403 AccessDenied,
                                     as S3's "headers present in the request which were not signed")
          token-missing              key needs a session token, none sent (403 InvalidAccessKeyId)
          token-unexpected           permanent key but a token was sent (400 InvalidToken)
          token-mismatch             wrong token (400 InvalidToken)
          token-expired              key marked expired (400 ExpiredToken)
          lowercase-percent-encoding '%2f'-style escapes in path or query (403 SignatureDoesNotMatch)
          non-canonical-encoding     (strict_encoding) path/query not in canonical form on the wire
                                     (e.g. a raw '/' or '+' in a query value, '%7E') (403 SignatureDoesNotMatch)
          unsigned-payload           UNSIGNED-PAYLOAD and allow_unsigned_payload is off (403 AccessDenied)
          streaming-payload          STREAMING-* aws-chunked payloads: unsupported (403 AccessDenied)
          bad-content-sha256         x-amz-content-sha256 is not 64 lowercase hex (400 InvalidArgument)
          payload-hash-mismatch      x-amz-content-sha256 != SHA-256 of the body
                                     (400 XAmzContentSHA256Mismatch)
          signature-mismatch         recomputed signature differs (403 SignatureDoesNotMatch)
        """
        path, _, query = target.partition("?")
        auth_values = headers.get_all("Authorization") or []
        if not auth_values:
            if re.search(r"(^|&)X-Amz-(Signature|Credential)=", query):
                raise Reject("presigned-url", 403, "AccessDenied",
                             "Query-string (presigned) authentication is not supported by this harness")
            raise Reject("missing-authorization", 403, "AccessDenied", "Access Denied")
        if len(auth_values) > 1:
            raise Reject("malformed-authorization", 400, "AuthorizationHeaderMalformed",
                         "More than one Authorization header")
        try:
            auth = self.parse_authorization(auth_values[0])
        except ValueError as e:
            raise Reject("malformed-authorization", 400, "AuthorizationHeaderMalformed",
                         f"The authorization header is malformed: {e}")
        akid = auth["access_key"]

        def reject(reason, status, code, message, detail="", **extra):
            return Reject(reason, status, code, message, access_key=akid, detail=detail, extra=extra)

        entry = self.lookup(akid)
        if entry is None:
            raise reject("unknown-access-key", 403, "InvalidAccessKeyId",
                         "The AWS Access Key Id you provided does not exist in our records.",
                         AWSAccessKeyId=akid)
        creds, expired = entry

        # Credential scope.
        if auth["service"] != self.service:
            raise reject("scope-service-mismatch", 400, "AuthorizationHeaderMalformed",
                         f"The authorization header is malformed; incorrect service "
                         f"'{auth['service']}'. This endpoint belongs to '{self.service}'.")
        if auth["region"] != self.region:
            raise reject("scope-region-mismatch", 400, "AuthorizationHeaderMalformed",
                         f"The authorization header is malformed; the region '{auth['region']}' "
                         f"is wrong; expecting '{self.region}'", Region=self.region)

        # Dates.
        amz_dates = headers.get_all("X-Amz-Date") or []
        if len(amz_dates) != 1:
            raise reject("missing-amz-date", 403, "AccessDenied",
                         "AWS authentication requires a valid Date or x-amz-date header")
        amz_date = amz_dates[0].strip()
        try:
            when = datetime.datetime.strptime(amz_date, SIGV4_TIMESTAMP).replace(tzinfo=datetime.timezone.utc)
            if len(amz_date) != 16:
                raise ValueError(amz_date)
        except ValueError:
            raise reject("bad-amz-date", 403, "AccessDenied",
                         f"AWS authentication requires a valid Date or x-amz-date header (got {amz_date!r})")
        if auth["date"] != amz_date[:8]:
            raise reject("scope-date-mismatch", 400, "AuthorizationHeaderMalformed",
                         f"The authorization header is malformed; Invalid credential date "
                         f"'{auth['date']}'. Date is not the same as X-Amz-Date: '{amz_date[:8]}'.")
        now = time.time() if now is None else now
        if abs(when.timestamp() - now) > self.max_skew:
            server_time = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime(SIGV4_TIMESTAMP)
            raise reject("time-skewed", 403, "RequestTimeTooSkewed",
                         "The difference between the request time and the current time is too large.",
                         RequestTime=amz_date, ServerTime=server_time,
                         MaxAllowedSkewMilliseconds=self.max_skew * 1000)

        # Which headers are signed.
        content_sha = headers.get_all("X-Amz-Content-SHA256") or []
        if len(content_sha) != 1:
            raise reject("missing-content-sha256", 400, "InvalidRequest",
                         "Missing required header for this request: x-amz-content-sha256")
        content_sha = content_sha[0].strip()
        signed = auth["signed_headers"]
        for name, reason in (("host", "host-not-signed"), ("x-amz-date", "amz-date-not-signed"),
                             ("x-amz-content-sha256", "content-sha256-not-signed")):
            if name not in signed:
                raise reject(reason, 403, "AccessDenied",
                             f"'{name}' must be a signed header (SignedHeaders={';'.join(signed)})")
        for name in signed:
            if not headers.get_all(name):
                raise reject("signed-header-missing", 403, "AccessDenied",
                             f"SignedHeaders lists '{name}' but the request has no such header")
        unsigned = sorted({n.lower() for n in headers.keys()
                           if n.lower().startswith("x-amz-") and n.lower() not in signed})
        if unsigned:
            raise reject("unsigned-amz-header", 403, "AccessDenied",
                         "There were headers present in the request which were not signed",
                         HeadersNotSigned=", ".join(unsigned))

        # Session token.
        tokens = headers.get_all("X-Amz-Security-Token") or []
        if creds.token is not None and not tokens:
            raise reject("token-missing", 403, "InvalidAccessKeyId",
                         "The AWS Access Key Id you provided does not exist in our records "
                         "(temporary credentials need X-Amz-Security-Token).", AWSAccessKeyId=akid)
        if creds.token is None and tokens:
            raise reject("token-unexpected", 400, "InvalidToken",
                         "The provided token is malformed or otherwise invalid "
                         "(this access key is permanent and takes no session token).")
        if creds.token is not None and (len(tokens) != 1 or not hmac.compare_digest(tokens[0].strip(), creds.token)):
            raise reject("token-mismatch", 400, "InvalidToken",
                         "The provided token is malformed or otherwise invalid.")
        if expired:
            raise reject("token-expired", 400, "ExpiredToken", "The provided token has expired.")

        # Encoding of the path and query on the wire.
        if _PCT_LOWER.search(target):
            raise reject("lowercase-percent-encoding", 403, "SignatureDoesNotMatch",
                         "Percent-encoding must use upper-case hex digits (RFC 3986 / SigV4)",
                         detail=f"target: {target}")
        cpath = canonical_path(path)
        pairs = canonical_query_pairs(query)
        if self.strict_encoding:
            bad = []
            if cpath != path:
                bad.append(f"path {path!r} (canonical {cpath!r})")
            for k, v, ck, cv in pairs:
                if (k, v) != (ck, cv):
                    bad.append(f"query {k}={v} (canonical {ck}={cv})")
            if bad:
                raise reject("non-canonical-encoding", 403, "SignatureDoesNotMatch",
                             "The request is not URI-encoded in canonical form: " + "; ".join(bad),
                             detail=f"target: {target}")

        # Payload hash.
        if content_sha == UNSIGNED_PAYLOAD:
            if not self.allow_unsigned_payload:
                raise reject("unsigned-payload", 403, "AccessDenied",
                             "x-amz-content-sha256: UNSIGNED-PAYLOAD is not allowed (harness setting)")
        elif content_sha.startswith("STREAMING-"):
            raise reject("streaming-payload", 403, "AccessDenied",
                         f"x-amz-content-sha256: {content_sha} (aws-chunked) is not supported by this harness")
        elif not re.fullmatch(r"[0-9a-f]{64}", content_sha):
            raise reject("bad-content-sha256", 400, "InvalidArgument",
                         f"x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a lowercase hex SHA-256, got {content_sha!r}")
        else:
            actual = hashlib.sha256(body).hexdigest()
            if content_sha != actual:
                raise reject("payload-hash-mismatch", 400, "XAmzContentSHA256Mismatch",
                             "The provided 'x-amz-content-sha256' header does not match what was computed.",
                             ClientComputedContentSHA256=content_sha, S3ComputedContentSHA256=actual)

        # The signature: rebuild the request from what was received and let
        # botocore compute the canonical request, string to sign, signature.
        expected, canonical_request, string_to_sign = self.compute_signature(
            creds, auth, method, cpath, pairs, headers, amz_date)
        if not hmac.compare_digest(expected, auth["signature"]):
            raise reject("signature-mismatch", 403, "SignatureDoesNotMatch",
                         "The request signature we calculated does not match the signature you provided. "
                         "Check your key and signing method.",
                         detail=f"CanonicalRequest:\n{canonical_request}\nStringToSign:\n{string_to_sign}\n"
                                f"expected {expected}, got {auth['signature']}",
                         AWSAccessKeyId=akid, StringToSign=string_to_sign,
                         SignatureProvided=auth["signature"], CanonicalRequest=canonical_request)
        return creds

    def compute_signature(self, creds, auth, method, cpath, pairs, headers, amz_date):
        """Returns (signature, canonical_request, string_to_sign) computed by
        botocore for the request as received.

        The AWSRequest gets: the method as received; a URL whose path is the
        canonical path and whose query is the canonical key=value pairs (in
        the order received: botocore sorts them); only the headers named in
        SignedHeaders, with every value as received (repeated headers kept).
        context['timestamp'] is X-Amz-Date, which is what add_auth would set
        from the clock; x-amz-content-sha256 is present, so botocore uses
        its value as the payload hash rather than hashing the body."""
        query = "&".join(f"{ck}={cv}" for _, _, ck, cv in pairs)
        host = headers.get("Host", "")
        url = f"http://{host}{cpath}" + (f"?{query}" if query else "")
        request = AWSRequest(method=method, url=url)
        signed_headers = HTTPHeaders()
        for name in auth["signed_headers"]:
            for value in headers.get_all(name):
                signed_headers[name] = value     # HTTPHeaders appends: repeats kept
        request.headers = signed_headers
        request.context["timestamp"] = amz_date
        signer = _ExactHeadersSigner(
            botocore.credentials.Credentials(creds.access_key, creds.secret_key, creds.token),
            self.service, self.region)
        canonical_request = signer.canonical_request(request)
        string_to_sign = signer.string_to_sign(request, canonical_request)
        return signer.signature(string_to_sign, request), canonical_request, string_to_sign


# ---------------------------------------------------------------------------
# The proxy


class _Fault:
    """One injected fault: answer `status` with an S3 error `code` (or reset
    the connection when status is None) to the next `count` matching requests."""

    def __init__(self, count, status, code, message, retry_after=None, kinds=None):
        self.count, self.status, self.code, self.message = count, status, code, message
        self.retry_after, self.kinds = retry_after, set(kinds) if kinds else None


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive, as S3 and real clients use
    timeout = 120                       # idle keep-alive connections end eventually
    server_version = "AmazonS3"
    sys_version = ""

    # -- connection bookkeeping (so an outage can cut live connections) ----

    def setup(self):
        super().setup()
        self.server.proxy._track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.proxy._track(self.connection, False)

    def log_message(self, fmt, *args):
        self.server.proxy._log(f"{self.address_string()} " + (fmt % args))

    # -- one request -------------------------------------------------------

    def _read_body(self):
        """The request body, de-chunked if Transfer-Encoding: chunked."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass                    # trailers: ignored
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self):
        proxy = self.server.proxy
        method = self.command
        target = self.path
        path, _, query = target.partition("?")
        body = self._read_body()
        kind = classify(method, path, query)
        proxy._count(kind)

        # 1. Verification.
        try:
            creds = proxy.verifier.check(method, target, self.headers, body)
        except Reject as r:
            # Book-keeping always happens before the answer goes out, so a
            # client that has its answer can rely on the records.
            proxy._reject(Rejection(r.reason, method, path, query, r.status, r.code, r.message,
                                    r.access_key, r.detail))
            proxy._record(RequestRecord(method, path, query, kind, r.status, "rejected", r.access_key))
            self._send_error(r.status, r.code, r.message, extra=r.extra)
            return
        akid = creds.access_key

        # 2. Injected faults, holds and delays (only for verified requests).
        proxy._wait_while_held()
        delay = proxy.delay
        if delay:
            proxy._stopping.wait(delay)
        fault = proxy._take_fault(kind)
        if fault is not None:
            proxy._count("faulted")
            if fault.status is None:
                proxy._record(RequestRecord(method, path, query, kind, None, "fault", akid))
                self._reset()
                return
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            proxy._record(RequestRecord(method, path, query, kind, fault.status, "fault", akid))
            self._send_error(fault.status, fault.code, fault.message, headers=headers)
            return

        # 3. Forward to moto and relay the answer.
        self._response_started = False
        record = RequestRecord(method, path, query, kind, None, "ok", akid)
        try:
            self._forward(method, target, body, record)
        except (OSError, http.client.HTTPException) as e:
            proxy._log(f"upstream or client error for {method} {target}: {e!r}")
            if self._response_started:
                self.close_connection = True    # half an answer sent: only closing is honest
            else:
                proxy._record(record._replace(status=500, outcome="error"))
                with contextlib.suppress(OSError):
                    self._send_error(500, "InternalError", f"harness proxy: upstream failed: {e}")

    def _forward(self, method, target, body, record):
        """Sends the request as received (same method, raw target, headers,
        body; Host left as the client sent it) to moto; relays the answer.
        `record` (with moto's status) is filed before the answer is relayed."""
        proxy = self.server.proxy
        conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() in HOP_BY_HOP or name.lower() == "content-length":
                    continue
                conn.putheader(name, value)
            if body or method.upper() in ("PUT", "POST"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body if body else None)
            resp = conn.getresponse()

            self.server.proxy._record(record._replace(status=resp.status))
            self._response_started = True
            self.send_response_only(resp.status, resp.reason)
            length = resp.getheader("Content-Length")
            no_body = method.upper() == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
            data = None
            if not no_body and length is None:
                data = resp.read()            # no length from upstream: buffer, then send one
            for name, value in resp.getheaders():
                if name.lower() in HOP_BY_HOP or (data is not None and name.lower() == "content-length"):
                    continue
                self.send_header(name, value)
            if data is not None:
                self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if data is not None:
                self.wfile.write(data)
            elif not no_body:
                while True:                   # stream: bodies can be large
                    chunk = resp.read(256 * 1024)
                    if not chunk:
                        break
                    self.wfile.write(chunk)
        finally:
            conn.close()

    def _send_error(self, status, code, message, headers=None, extra=None):
        """An S3-style error answer (no body for HEAD, as S3)."""
        body = error_xml(code, message, **(extra or {}))
        if self.command == "HEAD":
            body = b""
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amz-request-id", uuid.uuid4().hex[:16].upper())
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _reset(self):
        """Drops the connection with a TCP RST (SO_LINGER 0, then close)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def _serve(self):
        """Every method lands here."""
        proxy = self.server.proxy
        try:
            if proxy._down_mode in ("reset", "503"):
                self._serve_outage(proxy._down_mode)
            else:
                self._handle()
        except ConnectionError as e:          # the client went away: not a harness bug
            proxy._log(f"client connection lost during {self.command} {self.path}: {e!r}")
            self.close_connection = True
        except Exception as e:                # keep the server alive; note the bug
            proxy._log(f"proxy internal error: {e!r}")
            proxy.errors.append(repr(e))
            self.close_connection = True

    def _serve_outage(self, mode):
        """During go_down('reset') or go_down('503'): no verification, no forwarding."""
        proxy = self.server.proxy
        path, _, query = self.path.partition("?")
        kind = classify(self.command, path, query)
        proxy._count(kind)
        proxy._count("faulted")
        if mode == "reset":
            proxy._record(RequestRecord(self.command, path, query, kind, None, "fault", None))
            self._reset()
        else:
            self._read_body()
            proxy._record(RequestRecord(self.command, path, query, kind, 503, "fault", None))
            self._send_error(503, "ServiceUnavailable", "Service is unable to handle request.")

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_OPTIONS = do_PATCH = _serve


class _ProxyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False      # live keep-alive connections are cut explicitly
    allow_reuse_address = True  # re-bind the same port after an outage


class VerifyingProxy:
    """The verifying, fault-injecting HTTP proxy in front of moto.

    Attributes: port, host, endpoint_url ('http://127.0.0.1:PORT'),
    verifier (a Verifier), rejections (list of Rejection), requests (list
    of RequestRecord), errors (internal proxy errors, should stay empty),
    delay (seconds added before forwarding each verified request).
    """

    COUNT_KEYS = ("list", "get", "head", "put", "other", "total", "rejected", "faulted")

    def __init__(self, upstream_host, upstream_port, verifier, host="127.0.0.1", port=0, log_path=None):
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.verifier = verifier
        self.host, self.port = host, port
        self.delay = 0.0
        self.rejections = []
        self.requests = []
        self.errors = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._counts = dict.fromkeys(self.COUNT_KEYS, 0)
        self._faults = []
        self._connections = set()
        self._released = threading.Event()
        self._released.set()
        self._stopping = threading.Event()
        self._down_mode = None
        self._server = None
        self._thread = None
        self._log_file = open(log_path, "a", buffering=1) if log_path else None

    @property
    def endpoint_url(self):
        return f"http://{self.host}:{self.port}"

    # -- life cycle ----------------------------------------------------------

    def start(self):
        """Opens the listening socket (on self.port; 0 = pick one) and serves."""
        deadline = time.monotonic() + 5
        while True:
            try:
                server = _ProxyServer((self.host, self.port), _ProxyHandler)
                break
            except OSError:
                if self.port == 0 or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)         # the old socket may still be going away
        server.proxy = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"awsenv-proxy-{self.port}", daemon=True)
        self._thread.start()
        return self

    def _close_listener(self):
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()            # stops serve_forever
            server.server_close()        # closes the listening socket
            self._thread.join(5)
        self._drop_connections()

    def stop(self):
        """Stops serving and cuts every connection; held requests are released."""
        self._stopping.set()
        self._released.set()
        self._close_listener()
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    # -- outages -------------------------------------------------------------

    def go_down(self, mode="refuse"):
        """Simulates a server outage until come_up():
        'refuse': close the listening socket and cut live connections, so
                  connects fail with ECONNREFUSED (the port stays ours: it is
                  re-bound on come_up);
        'reset':  accept connections but reset each request's connection;
        '503':    answer every request 503 ServiceUnavailable."""
        if mode not in ("refuse", "reset", "503"):
            raise ValueError(mode)
        self._down_mode = mode
        if mode == "refuse":
            self._close_listener()
        else:
            self._drop_connections()    # clients must reconnect into the outage

    def come_up(self):
        """Ends an outage: re-opens the listener on the same port if it was closed."""
        mode, self._down_mode = self._down_mode, None
        if mode == "refuse" and self._server is None:
            self.start()

    @contextlib.contextmanager
    def outage(self, mode="refuse"):
        """`with proxy.outage(): ...` = go_down(mode) ... come_up()."""
        self.go_down(mode)
        try:
            yield self
        finally:
            self.come_up()

    def hold(self):
        """Verified requests wait (without an answer) until release()."""
        self._released.clear()

    def release(self):
        self._released.set()

    # -- faults --------------------------------------------------------------

    def fail_next(self, n, status, code, message, retry_after=None, kinds=None):
        """The next n verified requests (of the given kinds, e.g. {'list'};
        default any) get `status` with an S3 error document of `code`.
        Faults queue up: a later call applies after the earlier ones ran out."""
        with self._lock:
            self._faults.append(_Fault(n, status, code, message, retry_after, kinds))

    def slow_down(self, n=1, retry_after=None, kinds=None):
        """Next n requests: 503 SlowDown (with Retry-After: retry_after if given)."""
        self.fail_next(n, 503, "SlowDown", "Please reduce your request rate.", retry_after, kinds)

    def internal_error(self, n=1, kinds=None):
        """Next n requests: 500 InternalError."""
        self.fail_next(n, 500, "InternalError", "We encountered an internal error. Please try again.",
                       None, kinds)

    def reset_next(self, n=1, kinds=None):
        """Next n requests: the connection is reset (TCP RST), no answer."""
        self.fail_next(n, None, None, None, None, kinds)

    def clear_faults(self):
        with self._lock:
            self._faults.clear()
        self.delay = 0.0

    def pending_faults(self):
        """How many injected faults are still to be delivered."""
        with self._lock:
            return sum(f.count for f in self._faults)

    def _take_fault(self, kind):
        with self._lock:
            for f in self._faults:
                if f.count > 0 and (f.kinds is None or kind in f.kinds):
                    f.count -= 1
                    if f.count == 0:
                        self._faults.remove(f)
                    return f
        return None

    def _wait_while_held(self):
        while not self._released.wait(0.1):
            if self._stopping.is_set():
                return

    # -- accounting ----------------------------------------------------------

    def counts(self):
        """A snapshot of the counters: list, get, head, put, other (by kind,
        see classify), total, rejected, faulted."""
        with self._lock:
            return dict(self._counts)

    def take_counts(self):
        """The counters since the last take_counts/reset_counts, then zeroes them
        (e.g. requests per poll cycle)."""
        with self._lock:
            counts, self._counts = self._counts, dict.fromkeys(self.COUNT_KEYS, 0)
            return counts

    reset_counts = take_counts

    def wait_for_counts(self, timeout=10.0, **minimums):
        """Waits until every named counter is >= its minimum (e.g. list=2);
        returns the counts, or raises TimeoutError with the counts."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if all(self._counts[k] >= v for k, v in minimums.items()):
                    return dict(self._counts)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"waited {timeout}s for {minimums}; counts {self._counts}")
                self._changed.wait(left)

    def _count(self, key):
        with self._changed:
            self._counts[key] += 1
            if key in ("list", "get", "head", "put", "other"):
                self._counts["total"] += 1
            self._changed.notify_all()

    def _reject(self, rejection):
        with self._changed:
            self.rejections.append(rejection)
            self._counts["rejected"] += 1
            self._changed.notify_all()
        self._log(f"REJECTED {rejection.reason}: {rejection.method} {rejection.path}"
                  f"{'?' + rejection.query if rejection.query else ''}: {rejection.message}"
                  + (f"\n{rejection.detail}" if rejection.detail else ""))

    def _record(self, record):
        with self._lock:
            self.requests.append(record)

    def _track(self, conn, opened):
        with self._lock:
            (self._connections.add if opened else self._connections.discard)(conn)

    def _drop_connections(self):
        with self._lock:
            conns = list(self._connections)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)

    def _log(self, line):
        f = self._log_file
        if f is not None:
            with contextlib.suppress(ValueError, OSError):
                f.write(f"{time.strftime('%H:%M:%S')} {line}\n")


# ---------------------------------------------------------------------------
# moto_server


def _set_pdeathsig():
    """In the child: die with SIGTERM when the parent (test) process dies, so
    a killed test run cannot leave a moto_server behind (Linux only).
    Strictly, the signal comes when the *thread* that started moto exits:
    start an S3Env from the main thread or from a thread that outlives it."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))   # PR_SET_PDEATHSIG
    except Exception:
        pass


class MotoServer:
    """`python3 -m moto.server` on 127.0.0.1:port (0 = a free one), output to log_path."""

    def __init__(self, log_path, host="127.0.0.1", port=0, startup_timeout=30.0):
        self.host, self.port = host, port
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self.proc = None

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def start(self):
        for attempt in range(3):        # a free port can be taken between pick and bind
            port = self.port or free_port(self.host)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
            env.update(AWS_ACCESS_KEY_ID="moto", AWS_SECRET_ACCESS_KEY="moto", AWS_DEFAULT_REGION=DEFAULT_REGION)
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(port)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                    preexec_fn=_set_pdeathsig if sys.platform.startswith("linux") else None)
            _live_processes.add(self.proc)
            if self._wait_ready(port):
                self.port = port
                return self
            self.stop()
        raise RuntimeError(f"moto_server did not start; its log:\n{self.log()}")

    def _wait_ready(self, port):
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                conn = http.client.HTTPConnection(self.host, port, timeout=2)
                conn.request("GET", "/")
                conn.getresponse().read()
                conn.close()
                return True
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
        return False

    def stop(self):
        """SIGTERM, then SIGKILL after 5 s; always waited for."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        _live_processes.discard(proc)

    def log(self, tail=20000):
        """The end of moto's output."""
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return ""
        return data[-tail:].decode("utf-8", "replace")


_live_processes = set()


@atexit.register
def _kill_leftovers():
    for proc in list(_live_processes):
        with contextlib.suppress(Exception):
            proc.kill()
            proc.wait(5)


# ---------------------------------------------------------------------------
# Raw signed requests (for probing the endpoint and for crafting bad requests)


class _SelectedHeadersSigner(botocore.auth.S3SigV4Auth):
    """S3SigV4Auth that leaves some headers out of the signature (to craft
    requests whose required headers are not signed)."""

    def __init__(self, credentials, service, region, unsigned=()):
        super().__init__(credentials, service, region)
        self._unsigned = {h.lower() for h in unsigned}

    def headers_to_sign(self, request):
        headers = super().headers_to_sign(request)
        for name in self._unsigned:
            del headers[name]
        return headers


def sign_request(method, url, credentials, body=b"", headers=None, region=DEFAULT_REGION,
                 timestamp=None, unsigned_headers=(), payload_hash=None):
    """Signs a request the way boto3 does (botocore S3SigV4Auth, payload
    hashed) and returns (method, target, headers: dict, body) ready for
    send_raw, so a test can modify any part before sending.

    url: 'http://host:port/path?query', used exactly as written (path and
    query are signed as they are: write them percent-encoded).
    timestamp: datetime (UTC) or X-Amz-Date string; default now.
    unsigned_headers: header names to leave out of SignedHeaders.
    payload_hash: x-amz-content-sha256 value to send and sign instead of
    the body's SHA-256 (e.g. 'UNSIGNED-PAYLOAD')."""
    if timestamp is None:
        timestamp = datetime.datetime.now(datetime.timezone.utc)
    if isinstance(timestamp, datetime.datetime):
        timestamp = timestamp.strftime(SIGV4_TIMESTAMP)
    parts = urlsplit(url)
    request = AWSRequest(method=method, url=url, data=body or b"")
    request.headers["Host"] = parts.netloc
    for name, value in (headers or {}).items():
        request.headers[name] = value
    signer = _SelectedHeadersSigner(
        botocore.credentials.Credentials(credentials.access_key, credentials.secret_key, credentials.token),
        "s3", region, unsigned_headers)
    # What add_auth() does, with our timestamp instead of the clock:
    request.context["timestamp"] = timestamp
    signer._modify_request_before_signing(request)
    if payload_hash is not None:
        del request.headers["X-Amz-Content-SHA256"]
        request.headers["X-Amz-Content-SHA256"] = payload_hash
    canonical_request = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical_request)
    signer._inject_signature_to_request(request, signer.signature(string_to_sign, request))
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return method, target, dict(request.headers.items()), body or b""


def send_raw(endpoint_url, method, target, headers, body=b"", timeout=30):
    """Sends one request exactly as given (no header added but
    Content-Length when there is a body or the method is PUT/POST) over a
    fresh connection; returns RawResponse(status, headers, body)."""
    parts = urlsplit(endpoint_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if body or method.upper() in ("PUT", "POST"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        resp = conn.getresponse()
        return RawResponse(resp.status, resp.getheaders(), resp.read())
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# All together


class S3Env:
    """moto_server + VerifyingProxy + helpers, as a context manager:

        with S3Env(bucket="trail") as env: ...

    or env = S3Env(...).start() ... env.close() (e.g. in setUpClass /
    tearDownClass).  On an exception out of the with block, moto's log,
    the proxy's log and the rejections are printed to stderr.

    Arguments: bucket (created on start; None = none), region, prefix (the
    default key prefix of upload_tree/put_file), allow_unsigned_payload,
    strict_encoding (see Verifier).

    Attributes: endpoint_url (the proxy, for the code under test), moto_url
    (moto directly: unverified, for test set-up), bucket, region,
    credentials (the default permanent Credentials), verifier, proxy, moto,
    tmpdir (removed on close).
    """

    def __init__(self, bucket="trail", region=DEFAULT_REGION, prefix="", allow_unsigned_payload=False,
                 strict_encoding=True):
        self.bucket = bucket
        self.region = region
        self.prefix = prefix
        self.verifier = Verifier(region, allow_unsigned_payload=allow_unsigned_payload,
                                 strict_encoding=strict_encoding)
        self.credentials = self.verifier.add_credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)
        self.tmpdir = None
        self.moto = None
        self.proxy = None
        self._moto_client = None

    # -- life cycle ----------------------------------------------------------

    def start(self):
        self.tmpdir = tempfile.mkdtemp(prefix="awsenv-")
        try:
            self.moto = MotoServer(os.path.join(self.tmpdir, "moto.log")).start()
            self.proxy = VerifyingProxy(self.moto.host, self.moto.port, self.verifier,
                                        log_path=os.path.join(self.tmpdir, "proxy.log")).start()
            if self.bucket:
                self.create_bucket(self.bucket)
        except BaseException:
            self.close(failed=True)
            raise
        return self

    def close(self, failed=False):
        """Stops the proxy and moto; with failed=True prints diagnostics first."""
        if failed:
            sys.stderr.write(self.diagnostics())
        if self.proxy is not None:
            self.proxy.stop()
        if self.moto is not None:
            self.moto.stop()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        self.close(failed=exc_type is not None)
        return False

    @property
    def endpoint_url(self):
        return self.proxy.endpoint_url

    @property
    def moto_url(self):
        return self.moto.url

    def diagnostics(self):
        """Text for failure messages: rejections, proxy errors, logs."""
        out = ["==== awsenv diagnostics ===="]
        if self.proxy is not None:
            out.append(f"counts: {self.proxy.counts()}")
            for r in self.proxy.rejections:
                out.append(f"rejected [{r.reason}] {r.method} {r.path}{'?' + r.query if r.query else ''}: "
                           f"{r.status} {r.code}: {r.message}" + (f"\n{r.detail}" if r.detail else ""))
            for e in self.proxy.errors:
                out.append(f"proxy internal error: {e}")
        if self.tmpdir:
            for name in ("proxy.log", "moto.log"):
                path = os.path.join(self.tmpdir, name)
                with contextlib.suppress(OSError), open(path, "rb") as f:
                    out.append(f"---- {name} (tail) ----")
                    out.append(f.read()[-8000:].decode("utf-8", "replace"))
        return "\n".join(out) + "\n"

    # -- what the code under test needs ---------------------------------------

    def client_env(self, credentials=None, base=None, region=None, endpoint_vars=False):
        """A complete environment for a subprocess running the code under test:
        `base` (default os.environ) without any AWS_* variable or HTTP proxy
        setting, plus AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
        AWS_SESSION_TOKEN (only when the credentials have a token), AWS_REGION
        and AWS_DEFAULT_REGION, AWS_EC2_METADATA_DISABLED=true and
        NO_PROXY=127.0.0.1,localhost.  So AWS_PROFILE, AWS_CONFIG_FILE,
        AWS_SHARED_CREDENTIALS_FILE, AWS_WEB_IDENTITY_TOKEN_FILE,
        AWS_CONTAINER_* and the rest are gone.  endpoint_vars=True also sets
        AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_S3 to the proxy."""
        creds = credentials or self.credentials
        env = {k: v for k, v in (os.environ if base is None else base).items()
               if not k.upper().startswith("AWS_") and k not in PROXY_VARS}
        env.update({
            "AWS_ACCESS_KEY_ID": creds.access_key,
            "AWS_SECRET_ACCESS_KEY": creds.secret_key,
            "AWS_REGION": region or self.region,
            "AWS_DEFAULT_REGION": region or self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        })
        if creds.token:
            env["AWS_SESSION_TOKEN"] = creds.token
        if endpoint_vars:
            env["AWS_ENDPOINT_URL"] = env["AWS_ENDPOINT_URL_S3"] = self.endpoint_url
        return env

    # -- credentials -----------------------------------------------------------

    def add_credentials(self, access_key, secret_key, token=None):
        """Registers a key pair with the proxy; returns Credentials."""
        return self.verifier.add_credentials(access_key, secret_key, token)

    def temporary_credentials(self):
        """New random temporary credentials (ASIA... key, secret, session
        token), registered with the proxy; returns Credentials."""
        akid = "ASIA" + secrets.token_hex(8).upper()
        return self.verifier.add_credentials(akid, secrets.token_urlsafe(30),
                                             "FwoGZXIvYXdzE" + secrets.token_urlsafe(120))

    def expire_credentials(self, access_key):
        """Requests with this key now get 400 ExpiredToken."""
        self.verifier.expire_credentials(access_key)

    def remove_credentials(self, access_key):
        self.verifier.remove_credentials(access_key)

    # -- boto3 clients -----------------------------------------------------------

    def client(self, credentials=None, max_attempts=None, **config):
        """A boto3 S3 client through the verifying proxy (path-style).
        max_attempts: total attempts including retries (None = botocore's default)."""
        creds = credentials or self.credentials
        if max_attempts is not None:
            config.setdefault("retries", {"total_max_attempts": max_attempts, "mode": "standard"})
        cfg = botocore.config.Config(s3={"addressing_style": "path"}, proxies={}, **config)
        return boto3.session.Session().client(
            "s3", region_name=self.region, endpoint_url=self.endpoint_url, config=cfg,
            aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
            aws_session_token=creds.token)

    def moto_client(self):
        """A boto3 S3 client talking to moto directly (not verified, not counted)."""
        if self._moto_client is None:
            cfg = botocore.config.Config(s3={"addressing_style": "path"}, proxies={},
                                         retries={"total_max_attempts": 3, "mode": "standard"})
            self._moto_client = boto3.session.Session().client(
                "s3", region_name=self.region, endpoint_url=self.moto_url, config=cfg,
                aws_access_key_id="moto", aws_secret_access_key="moto")
        return self._moto_client

    # -- bucket contents (directly in moto) ------------------------------------------

    def create_bucket(self, name):
        kwargs = {}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        self.moto_client().create_bucket(Bucket=name, **kwargs)
        return name

    def upload_tree(self, directory, prefix=None, bucket=None, skip=("labels.jsonl",)):
        """Uploads every file under `directory` as prefix + its relative path
        ('/'-separated), directly to moto.  Files whose name is in `skip` are
        left out (default: ctgen's ground truth labels.jsonl).  Returns the
        sorted list of keys."""
        prefix = self.prefix if prefix is None else prefix
        keys = []
        for root, dirs, files in os.walk(directory):
            dirs.sort()
            for name in sorted(files):
                if name in skip:
                    continue
                path = os.path.join(root, name)
                rel = os.path.relpath(path, directory).replace(os.sep, "/")
                keys.append(self.put_file(path, key=prefix + rel, bucket=bucket))
        return sorted(keys)

    def put_file(self, path, key=None, bucket=None, root=None, prefix=None):
        """Uploads one file directly to moto (e.g. a new log, to test pick-up).
        key: explicit key; default prefix + the path relative to `root`, or
        prefix + the file name when root is None.  Returns the key."""
        if key is None:
            prefix = self.prefix if prefix is None else prefix
            rel = os.path.relpath(path, root).replace(os.sep, "/") if root else os.path.basename(path)
            key = prefix + rel
        with open(path, "rb") as f:
            return self.put_object(key, f.read(), bucket=bucket)

    def put_object(self, key, body, bucket=None, **extra):
        """Writes one object directly to moto; returns the key."""
        if isinstance(body, str):
            body = body.encode()
        self.moto_client().put_object(Bucket=bucket or self.bucket, Key=key, Body=body, **extra)
        return key

    def delete_object(self, key, bucket=None):
        self.moto_client().delete_object(Bucket=bucket or self.bucket, Key=key)

    def list_keys(self, prefix="", bucket=None):
        """All keys under prefix, read directly from moto."""
        keys = []
        for page in self.moto_client().get_paginator("list_objects_v2").paginate(
                Bucket=bucket or self.bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        return keys

    # -- raw requests ------------------------------------------------------------------

    def signed_request(self, method, target, body=b"", headers=None, credentials=None, **kw):
        """sign_request for the proxy endpoint: target is '/bucket/key?query'
        (percent-encoded as it should go on the wire)."""
        return sign_request(method, self.endpoint_url + target, credentials or self.credentials,
                            body, headers, region=self.region, **kw)

    def send(self, method, target, headers, body=b""):
        """send_raw to the proxy; returns RawResponse."""
        return send_raw(self.endpoint_url, method, target, headers, body)

    # -- proxy control and results (delegates) ------------------------------------------

    @property
    def rejections(self):
        """List of Rejection (reason, method, path, query, status, code, message, access_key, detail)."""
        return self.proxy.rejections

    def rejection_reasons(self):
        return [r.reason for r in self.proxy.rejections]

    def clear_rejections(self):
        del self.proxy.rejections[:]

    @property
    def requests(self):
        """List of RequestRecord, in the order their answers were decided (just before each was sent)."""
        return self.proxy.requests

    def assert_no_rejections(self, msg=""):
        """Raises AssertionError (with the details) if any request was refused
        or the proxy hit an internal error."""
        if self.proxy.rejections or self.proxy.errors:
            raise AssertionError(f"{msg}{': ' if msg else ''}{len(self.proxy.rejections)} request(s) rejected, "
                                 f"{len(self.proxy.errors)} proxy error(s)\n" + self.diagnostics())

    def counts(self):
        return self.proxy.counts()

    def take_counts(self):
        return self.proxy.take_counts()

    reset_counts = take_counts

    def wait_for_counts(self, timeout=10.0, **minimums):
        return self.proxy.wait_for_counts(timeout, **minimums)

    def slow_down(self, n=1, retry_after=None, kinds=None):
        self.proxy.slow_down(n, retry_after, kinds)

    def internal_error(self, n=1, kinds=None):
        self.proxy.internal_error(n, kinds)

    def fail_next(self, n, status, code, message, retry_after=None, kinds=None):
        self.proxy.fail_next(n, status, code, message, retry_after, kinds)

    def reset_next(self, n=1, kinds=None):
        self.proxy.reset_next(n, kinds)

    def set_delay(self, seconds):
        """Adds `seconds` before forwarding each verified request (0 = off)."""
        self.proxy.delay = seconds

    def clear_faults(self):
        self.proxy.clear_faults()

    def go_down(self, mode="refuse"):
        self.proxy.go_down(mode)

    def come_up(self):
        self.proxy.come_up()

    def outage(self, mode="refuse"):
        return self.proxy.outage(mode)

    def hold(self):
        self.proxy.hold()

    def release(self):
        self.proxy.release()
