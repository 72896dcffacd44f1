"""The AWS credential chain (daemon/creds.c) through tests/creds_tool.

Every test runs the driver (CREDS_TOOL) with an environment holding only PATH, HOME (a temp
dir) and what the test sets, against fixture files in a temp dir and local stand-ins that
speak the real protocols on 127.0.0.1:

  * IMDS: IMDSv2 token PUT (TTL header required), 401 for a missing or unknown token, the
    role listing and the credentials document; modes: the PUT never answered (hop limit),
    tokens good for one use only (stale token), credentials failing after the first.
  * container endpoint (ECS / EKS Pod Identity): checks the Authorization header.
  * STS: AssumeRoleWithWebIdentity form fields checked; AssumeRole signatures verified with
    botocore's SigV4Auth against a table of known keys (the keys the tests hand out, and every
    set STS or IMDS issued); wrong ones get STS's error XML.

The driver prints hash prefixes of secrets, never secrets; the tests compare them with the
hashes of what the stand-ins issued.
"""
import datetime
import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import uuid
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

CREDS_TOOL = os.environ.get("CREDS_TOOL")

BASE_KEY = "AKIABASEKEY000000001"
BASE_SECRET = "base/Secret+Key0123456789abcdefGHIJKLMNop"
ROLE_NAME = "trail-role"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


def sha8(s):
    return hashlib.sha256(s.encode()).hexdigest()[:8]


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Keys:
    """Access key id -> (secret, session token or None): what STS accepts signatures from."""

    def __init__(self):
        self.lock = threading.Lock()
        self.table = {BASE_KEY: (BASE_SECRET, None)}

    def add(self, ak, secret, token):
        with self.lock:
            self.table[ak] = (secret, token)

    def get(self, ak):
        with self.lock:
            return self.table.get(ak)


class StandIn:
    """An HTTP server (on 127.0.0.1 unless told) in a thread; handle() does the work; every
    request is logged as a dict (method, path, headers, body)."""

    def __init__(self, server_class=http.server.ThreadingHTTPServer, host="127.0.0.1"):
        self.lock = threading.Lock()
        self.log = []
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                req = {"method": self.command, "path": self.path, "headers": self.headers, "body": body}
                with outer.lock:
                    outer.log.append(req)
                status, ctype, data = outer.handle(req, self)
                if status is None:
                    return
                data = data.encode() if isinstance(data, str) else data
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = _any

        self.server = server_class((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://%s:%d" % ("[%s]" % host if ":" in host else host, self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def requests(self, method=None, path=None):
        with self.lock:
            return [r for r in self.log if (method is None or r["method"] == method) and
                    (path is None or r["path"] == path)]

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class IMDS(StandIn):
    """EC2 instance metadata, v2.  mode: "normal", "hang" (token PUT never answered),
    "one-use" (a token is good for one GET), "fail-after-first" (credentials answer 500 after
    the first success)."""

    def __init__(self, keys, mode="normal", expires_in=3600):
        self.keys, self.mode, self.expires_in = keys, mode, expires_in
        self.tokens = set()
        self.issued = []
        super().__init__()

    def handle(self, req, h):
        path = req["path"]
        if req["method"] == "PUT" and path == "/latest/api/token":
            if self.mode == "hang":
                self.release.wait(15)
                return None, None, None
            ttl = req["headers"].get("X-aws-ec2-metadata-token-ttl-seconds")
            if not ttl or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return 400, "text/plain", "missing or bad X-aws-ec2-metadata-token-ttl-seconds"
            token = "imds-token-" + uuid.uuid4().hex
            with self.lock:
                self.tokens.add(token)
            return 200, "text/plain", token
        if req["method"] != "GET":
            return 405, "text/plain", ""
        token = req["headers"].get("X-aws-ec2-metadata-token")
        with self.lock:
            ok = token in self.tokens
            if ok and self.mode == "one-use":
                self.tokens.discard(token)
        if not ok:
            return 401, "text/plain", ""
        if path == "/latest/meta-data/iam/security-credentials/":
            return 200, "text/plain", ROLE_NAME
        if path == "/latest/meta-data/iam/security-credentials/" + ROLE_NAME:
            with self.lock:
                if self.mode == "fail-after-first" and self.issued:
                    return 500, "text/plain", "internal error"
                n = len(self.issued) + 1
                cred = {"ak": "ASIAIMDS%012d" % n, "secret": "imds/secret+%d" % n,
                        "token": "IMDSTOKEN%d/abc+def=" % n, "exp": int(time.time()) + self.expires_in}
                self.issued.append(cred)
            self.keys.add(cred["ak"], cred["secret"], cred["token"])
            return 200, "text/plain", json.dumps({
                "Code": "Success", "LastUpdated": iso(time.time()), "Type": "AWS-HMAC",
                "AccessKeyId": cred["ak"], "SecretAccessKey": cred["secret"], "Token": cred["token"],
                "Expiration": iso(cred["exp"])})
        return 404, "text/plain", ""


class Container(StandIn):
    """ECS / EKS Pod Identity credentials endpoint; auth: the Authorization value required
    (None: no header required)."""

    def __init__(self, auth=None, later_lifetime=3600, fail_after=None, expiration=True, **kw):
        self.auth = auth
        self.expiration = expiration    # False: the answer has no Expiration
        # the first credentials expire in an hour, later ones in later_lifetime seconds (negative:
        # already expired); after fail_after of them every request gets a 500
        self.later_lifetime = later_lifetime
        self.fail_after = fail_after
        self.issued = []
        super().__init__(**kw)

    def handle(self, req, h):
        if req["method"] != "GET":
            return 405, "application/json", "{}"
        if self.auth is not None and req["headers"].get("Authorization") != self.auth:
            return 401, "application/json", json.dumps({"code": "AccessDenied",
                                                        "message": "Authorization token is wrong"})
        with self.lock:
            n = len(self.issued) + 1
            if self.fail_after is not None and n > self.fail_after:
                return 500, "application/json", json.dumps({"code": "InternalError", "message": "try later"})
            cred = {"ak": "ASIAECS%013d" % n, "secret": "ecs/secret+%d" % n, "token": "ECSTOKEN%d=" % n,
                    "exp": int(time.time()) + (3600 if n == 1 else self.later_lifetime), "path": req["path"]}
            self.issued.append(cred)
        body = {"AccessKeyId": cred["ak"], "SecretAccessKey": cred["secret"], "Token": cred["token"],
                "Expiration": iso(cred["exp"]), "RoleArn": "arn:aws:iam::111122223333:role/task"}
        if not self.expiration:
            del body["Expiration"]
        return 200, "application/json", json.dumps(body)


class STS(StandIn):
    """STS AssumeRole (SigV4 verified against keys) and AssumeRoleWithWebIdentity
    (web_identity_token: the token expected; on_web_identity: called after each one)."""

    def __init__(self, keys, region="us-east-1", web_identity_token=None, on_web_identity=None):
        self.keys, self.region = keys, region
        self.web_identity_token = web_identity_token
        self.on_web_identity = on_web_identity
        self.issued = []
        super().__init__()

    def error(self, status, code, message):
        return status, "text/xml", (
            '<ErrorResponse xmlns="%s"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message>'
            '</Error><RequestId>%s</RequestId></ErrorResponse>' % (STS_NS, code, escape(message), uuid.uuid4()))

    def verify(self, req):
        """None when the signature is right, else an error response."""
        hd = req["headers"]
        m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/sts/aws4_request, "
                         r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})", hd.get("Authorization") or "")
        if not m:
            return self.error(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
        ak, day, region, signed, signature = m.groups()
        entry = self.keys.get(ak)
        if entry is None:
            return self.error(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
        secret, token = entry
        amz_date = hd.get("X-Amz-Date") or ""
        names = signed.split(";")
        if region != self.region or not amz_date.startswith(day) or "host" not in names or "x-amz-date" not in names:
            return self.error(400, "IncompleteSignature", "bad credential scope or signed headers")
        if token is not None and hd.get("X-Amz-Security-Token") != token:
            return self.error(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
        if any(hd.get(n) is None for n in names):
            return self.error(400, "IncompleteSignature", "a signed header is missing")
        awsreq = AWSRequest(method=req["method"], url="http://%s%s" % (hd["Host"], req["path"]), data=req["body"],
                            headers={n: hd[n] for n in names})
        awsreq.context["timestamp"] = amz_date
        auth = SigV4Auth(Credentials(ak, secret, token), "sts", region)
        canonical = auth.canonical_request(awsreq)
        expected = auth.signature(auth.string_to_sign(awsreq, canonical), awsreq)
        if not hmac.compare_digest(expected, signature):
            return self.error(403, "SignatureDoesNotMatch",
                              "The request signature we calculated does not match the signature you provided. "
                              "Check your AWS Secret Access Key and signing method.")
        req["signed_by"] = ak
        return None

    def handle(self, req, h):
        if req["method"] != "POST" or urlsplit(req["path"]).path != "/":
            return self.error(404, "NotFound", "no such thing")
        form = {k: v[0] for k, v in parse_qs(req["body"].decode(), keep_blank_values=True).items()}
        req["form"] = form
        action = form.get("Action")
        if form.get("Version") != "2011-06-15":
            return self.error(400, "InvalidAction", "bad Version")
        if action == "AssumeRole":
            bad = self.verify(req)
            if bad:
                return bad
        elif action == "AssumeRoleWithWebIdentity":
            if req["headers"].get("Authorization"):
                return self.error(400, "InvalidRequest", "AssumeRoleWithWebIdentity is not signed")
            if form.get("WebIdentityToken") != self.web_identity_token:
                return self.error(400, "InvalidIdentityToken", "Couldn't retrieve verification key")
        else:
            return self.error(400, "InvalidAction", "unknown Action")
        arn, session = form.get("RoleArn", ""), form.get("RoleSessionName", "")
        if not arn.startswith("arn:aws:iam::") or not re.fullmatch(r"[\w+=,.@-]{2,64}", session):
            return self.error(400, "ValidationError", "bad RoleArn or RoleSessionName")
        duration = int(form.get("DurationSeconds", "3600"))
        with self.lock:
            n = len(self.issued) + 1
            cred = {"ak": "ASIASTS%013d" % n, "secret": "sts/secret+%d" % n,
                    "token": "STSTOKEN%d/%s=" % (n, arn.rsplit("/", 1)[-1]), "exp": int(time.time()) + duration,
                    "role": arn, "action": action}
            self.issued.append(cred)
        self.keys.add(cred["ak"], cred["secret"], cred["token"])
        if action == "AssumeRoleWithWebIdentity" and self.on_web_identity:
            self.on_web_identity()
        return 200, "text/xml", (
            '<{a}Response xmlns="{ns}"><{a}Result><Credentials><AccessKeyId>{ak}</AccessKeyId>'
            '<SecretAccessKey>{sk}</SecretAccessKey><SessionToken>{st}</SessionToken>'
            '<Expiration>{exp}</Expiration></Credentials><AssumedRoleUser><Arn>{arn}</Arn>'
            '<AssumedRoleId>AROA:{s}</AssumedRoleId></AssumedRoleUser></{a}Result><ResponseMetadata>'
            '<RequestId>{rid}</RequestId></ResponseMetadata></{a}Response>').format(
                a=action, ns=STS_NS, ak=cred["ak"], sk=escape(cred["secret"]), st=escape(cred["token"]),
                exp=iso(cred["exp"]), arn=escape(arn), s=escape(session), rid=uuid.uuid4())


@unittest.skipUnless(CREDS_TOOL, "CREDS_TOOL (the tests/creds_tool driver) is not set")
class CredsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="creds-test-")
        self.home = os.path.join(self.dir, "home")
        os.makedirs(os.path.join(self.home, ".aws"))
        self.keys = Keys()
        self.standins = []

    def tearDown(self):
        for s in self.standins:
            s.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, standin):
        self.standins.append(standin)
        return standin

    def write(self, name, text):
        path = os.path.join(self.dir, name) if not name.startswith("~/") else os.path.join(self.home, name[2:])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_tool(self, env, *args, imds=False):
        """Runs the driver; returns (exit status, parsed JSON or None, stderr)."""
        full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home}
        if not imds:
            full["AWS_EC2_METADATA_DISABLED"] = "true"
        full.update(env)
        p = subprocess.run([CREDS_TOOL] + list(args), env=full, capture_output=True, text=True, timeout=30)
        out = json.loads(p.stdout) if p.returncode == 0 else None
        if p.returncode not in (0, 2):
            self.fail("creds_tool exited %d: %s" % (p.returncode, p.stderr))
        return p.returncode, out, p.stderr

    def ok(self, env, *args, **kw):
        rc, out, err = self.run_tool(env, *args, **kw)
        self.assertEqual(rc, 0, err)
        return out

    def fails(self, env, *args, **kw):
        rc, out, err = self.run_tool(env, *args, **kw)
        self.assertEqual(rc, 2, "expected a failure, got %r" % (out,))
        return err

    def assertCred(self, out, ak, secret, token, source=None):
        self.assertEqual(out["access_key_id"], ak)
        self.assertEqual(out["secret_sha256_prefix"], sha8(secret))
        self.assertEqual(out["has_token"], token is not None)
        self.assertEqual(out["token_sha256_prefix"], sha8(token) if token else None)
        if source is not None:
            self.assertEqual(out["source"], source)

    # ---- environment ----

    def test_env_keys(self):
        out = self.ok({"AWS_ACCESS_KEY_ID": "AKIAENV0000000000001", "AWS_SECRET_ACCESS_KEY": "env/secret",
                       "AWS_SESSION_TOKEN": "envtoken=="})
        self.assertCred(out, "AKIAENV0000000000001", "env/secret", "envtoken==", "environment")
        self.assertEqual(out["expiration"], 0)

    def test_env_without_token(self):
        out = self.ok({"AWS_ACCESS_KEY_ID": "AKIAENV0000000000002", "AWS_SECRET_ACCESS_KEY": "env/secret2"})
        self.assertCred(out, "AKIAENV0000000000002", "env/secret2", None, "environment")

    def test_env_one_key_is_an_error(self):
        err = self.fails({"AWS_ACCESS_KEY_ID": "AKIAENV0000000000003"})
        self.assertIn("environment: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not", err)
        err = self.fails({"AWS_SECRET_ACCESS_KEY": "only/the+secret"})
        self.assertIn("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not", err)
        self.assertNotIn("only/the+secret", err)

    # ---- shared files ----

    CREDENTIALS = (
        "# a comment\n"
        "; another\n"
        "[default]\n"
        "aws_access_key_id = AKIADEFAULT000000001\n"
        "aws_secret_access_key=default/secret   # inline comment\n"
        "\n"
        "[prod]\r\n"
        "  aws_access_key_id   =   AKIAPROD000000000001  \r\n"
        "aws_secret_access_key = prod/secret+1\r\n"
        "aws_session_token = prodtoken/1=\r\n")

    def test_profile_static_keys(self):
        self.write("~/.aws/credentials", self.CREDENTIALS)
        out = self.ok({})
        self.assertCred(out, "AKIADEFAULT000000001", "default/secret", None, "profile default")
        out = self.ok({"AWS_PROFILE": "prod"})
        self.assertCred(out, "AKIAPROD000000000001", "prod/secret+1", "prodtoken/1=", "profile prod")

    def test_profile_in_config_file_and_precedence(self):
        config = self.write("conf", (
            "[default]\nregion = eu-west-1\n"
            "[prod]\naws_access_key_id = AKIAIGNORED000000001\naws_secret_access_key = ignored\n"
            "[sso-session corp]\nsso_region = us-east-1\n"
            "[profile dev]\n"
            "s3 =\n  max_concurrent_requests = 20\n  aws_access_key_id = AKIASUBSECTION000001\n"
            "aws_access_key_id = AKIADEVCONFIG0000001\n"
            "aws_secret_access_key = config/secret\n"
            "[profile both]\naws_access_key_id = AKIACONFIGLOSES00001\naws_secret_access_key = loses\n"))
        creds = self.write("creds", "[both]\naws_access_key_id = AKIACREDSWINS0000001\n"
                                    "aws_secret_access_key = wins\n")
        env = {"AWS_CONFIG_FILE": config, "AWS_SHARED_CREDENTIALS_FILE": creds}
        out = self.ok(dict(env, AWS_PROFILE="dev"))
        self.assertCred(out, "AKIADEVCONFIG0000001", "config/secret", None, "profile dev")
        out = self.ok(dict(env, AWS_PROFILE="both"))
        self.assertCred(out, "AKIACREDSWINS0000001", "wins", None, "profile both")
        # [prod] in a config file is not a profile: "profile prod" does not exist
        err = self.fails(dict(env, AWS_PROFILE="prod"))
        self.assertIn("profile prod (AWS_PROFILE) not found", err)

    def test_missing_profile_is_an_error(self):
        self.write("~/.aws/credentials", self.CREDENTIALS)
        err = self.fails({"AWS_PROFILE": "nope"})
        self.assertIn("shared files: profile nope (AWS_PROFILE) not found: profile nope not in %s/.aws/credentials"
                      % self.home, err)
        self.assertIn("%s/.aws/config: no such file" % self.home, err)

    def test_credential_process_and_sso_profiles_are_errors_not_fall_through(self):
        imds = self.start(IMDS(self.keys))
        self.write("~/.aws/config", "[profile proc]\ncredential_process = /usr/bin/get-creds\n"
                   "[profile sso]\nsso_session = corp\nsso_account_id = 111122223333\n")
        for profile in ("proc", "sso"):
            err = self.fails({"AWS_PROFILE": profile, "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url})
            self.assertIn("profile %s uses credential_process or SSO" % profile, err)

    def test_syntax_error_names_file_and_line(self):
        path = self.write("~/.aws/credentials", "[default]\naws_access_key_id = AKIAX\nthis line is wrong\n")
        err = self.fails({})
        self.assertIn("shared files: %s:3: expected '[section]' or 'key = value'" % path, err)

    def test_source_profile_chain_and_assume_role(self):
        sts = self.start(STS(self.keys))
        self.write("~/.aws/credentials", "[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                   % (BASE_KEY, BASE_SECRET))
        self.write("~/.aws/config", (
            "[profile mid]\nrole_arn = arn:aws:iam::111122223333:role/mid\nsource_profile = base\n"
            "[profile top]\nrole_arn = arn:aws:iam::444455556666:role/top\nsource_profile = mid\n"
            "external_id = ext-123/abc\nrole_session_name = nightly@trail\nduration_seconds = 1800\n"))
        out = self.ok({"AWS_PROFILE": "top", "AWS_ENDPOINT_URL_STS": sts.url})
        reqs = sts.requests("POST")
        self.assertEqual([r["form"]["RoleArn"] for r in reqs],
                         ["arn:aws:iam::111122223333:role/mid", "arn:aws:iam::444455556666:role/top"])
        mid, top = sts.issued
        self.assertEqual(reqs[0]["signed_by"], BASE_KEY)
        self.assertEqual(reqs[1]["signed_by"], mid["ak"])
        self.assertEqual(reqs[1]["headers"]["X-Amz-Security-Token"], mid["token"])
        self.assertEqual(reqs[1]["form"]["ExternalId"], "ext-123/abc")
        self.assertEqual(reqs[1]["form"]["RoleSessionName"], "nightly@trail")
        self.assertEqual(reqs[1]["form"]["DurationSeconds"], "1800")
        self.assertNotIn("ExternalId", reqs[0]["form"])
        self.assertCred(out, top["ak"], top["secret"], top["token"],
                        "profile top (assume role arn:aws:iam::444455556666:role/top)")
        self.assertEqual(out["expiration"], top["exp"])

    def test_source_profile_cycle_is_an_error(self):
        sts = self.start(STS(self.keys))
        self.write("~/.aws/config", (
            "[profile a]\nrole_arn = arn:aws:iam::111122223333:role/a\nsource_profile = b\n"
            "[profile b]\nrole_arn = arn:aws:iam::111122223333:role/b\nsource_profile = a\n"))
        err = self.fails({"AWS_PROFILE": "a", "AWS_ENDPOINT_URL_STS": sts.url})
        self.assertIn("source_profile cycle: a -> b -> a", err)
        self.assertEqual(sts.requests(), [])

    def test_source_profile_depth_limit_and_broken_roles(self):
        sts = self.start(STS(self.keys))
        config = "".join("[profile p%d]\nrole_arn = arn:aws:iam::111122223333:role/p%d\nsource_profile = p%d\n"
                         % (i, i, i + 1) for i in range(10))
        config += "[profile p10]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (BASE_KEY, BASE_SECRET)
        config += "[profile lost]\nrole_arn = arn:aws:iam::111122223333:role/lost\n"
        config += "[profile ghost]\nrole_arn = arn:aws:iam::111122223333:role/g\nsource_profile = nobody\n"
        config += "[profile half]\naws_access_key_id = AKIAHALF000000000001\n"
        self.write("~/.aws/config", config)
        env = {"AWS_ENDPOINT_URL_STS": sts.url}
        err = self.fails(dict(env, AWS_PROFILE="p0"))
        self.assertIn("more than 8 source_profile links: p0 -> p1 -> p2 -> p3 -> p4 -> p5 -> p6 -> p7 -> p8 -> p9",
                      err)
        out = self.ok(dict(env, AWS_PROFILE="p3"))  # 7 links: fine
        self.assertEqual(len(sts.issued), 7)
        self.assertEqual(sts.requests()[0]["form"]["RoleArn"], "arn:aws:iam::111122223333:role/p9")
        self.assertEqual(out["access_key_id"], sts.issued[-1]["ak"])
        err = self.fails(dict(env, AWS_PROFILE="lost"))
        self.assertIn("profile lost: role_arn without source_profile, credential_source or web_identity_token_file",
                      err)
        err = self.fails(dict(env, AWS_PROFILE="ghost"))
        self.assertIn("profile ghost: source_profile nobody does not exist", err)
        err = self.fails(dict(env, AWS_PROFILE="half"))
        self.assertIn("profile half: aws_access_key_id without aws_secret_access_key", err)

    def test_self_referencing_source_profile_uses_its_keys(self):
        sts = self.start(STS(self.keys))
        self.write("~/.aws/credentials", "[me]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                   "role_arn = arn:aws:iam::111122223333:role/self\nsource_profile = me\n" % (BASE_KEY, BASE_SECRET))
        out = self.ok({"AWS_PROFILE": "me", "AWS_ENDPOINT_URL_STS": sts.url})
        self.assertEqual(sts.requests()[0]["signed_by"], BASE_KEY)
        self.assertEqual(out["access_key_id"], sts.issued[0]["ak"])

    def test_credential_source_environment(self):
        sts = self.start(STS(self.keys))
        self.write("~/.aws/config", "[profile ops]\nrole_arn = arn:aws:iam::111122223333:role/ops\n"
                                    "credential_source = Environment\n")
        env = {"AWS_ACCESS_KEY_ID": BASE_KEY, "AWS_SECRET_ACCESS_KEY": BASE_SECRET, "AWS_ENDPOINT_URL_STS": sts.url}
        out = self.ok(env, "--profile", "ops")
        self.assertEqual(sts.requests()[0]["signed_by"], BASE_KEY)
        self.assertCred(out, sts.issued[0]["ak"], sts.issued[0]["secret"], sts.issued[0]["token"],
                        "profile ops (assume role arn:aws:iam::111122223333:role/ops)")
        # without the environment's keys it is an error, not a fall-through
        err = self.fails({"AWS_ENDPOINT_URL_STS": sts.url}, "--profile", "ops")
        self.assertIn("profile ops: credential_source Environment: AWS_ACCESS_KEY_ID not set", err)

    def test_credential_source_instance_metadata(self):
        imds = self.start(IMDS(self.keys))
        sts = self.start(STS(self.keys))
        self.write("~/.aws/config", "[default]\nrole_arn = arn:aws:iam::111122223333:role/ec2\n"
                                    "credential_source = Ec2InstanceMetadata\n")
        out = self.ok({"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url, "AWS_ENDPOINT_URL_STS": sts.url}, imds=True)
        self.assertEqual(sts.requests()[0]["signed_by"], imds.issued[0]["ak"])
        self.assertEqual(sts.requests()[0]["headers"]["X-Amz-Security-Token"], imds.issued[0]["token"])
        self.assertEqual(out["access_key_id"], sts.issued[0]["ak"])

    # ---- web identity ----

    def test_web_identity_from_env_rereads_the_token_file(self):
        token_file = self.write("token", "eyJhbGciOiJSUzI1NiJ9.jwt1.sig\n")

        def rotate():
            # after each exchange the token is replaced, as the kubelet does
            n = len(sts.issued) + 1
            with open(token_file, "w") as f:
                f.write("eyJhbGciOiJSUzI1NiJ9.jwt%d.sig" % n)
            sts.web_identity_token = "eyJhbGciOiJSUzI1NiJ9.jwt%d.sig" % n

        sts = self.start(STS(self.keys, web_identity_token="eyJhbGciOiJSUzI1NiJ9.jwt1.sig", on_web_identity=rotate))
        env = {"AWS_WEB_IDENTITY_TOKEN_FILE": token_file, "AWS_ROLE_ARN": "arn:aws:iam::111122223333:role/pod",
               "AWS_ROLE_SESSION_NAME": "pod-session", "AWS_ENDPOINT_URL_STS": sts.url}
        out = self.ok(env)
        first = sts.requests()[0]
        self.assertEqual(first["form"]["Action"], "AssumeRoleWithWebIdentity")
        self.assertEqual(first["form"]["RoleArn"], "arn:aws:iam::111122223333:role/pod")
        self.assertEqual(first["form"]["RoleSessionName"], "pod-session")
        self.assertEqual(first["form"]["WebIdentityToken"], "eyJhbGciOiJSUzI1NiJ9.jwt1.sig")
        self.assertIsNone(first["headers"].get("Authorization"))
        self.assertCred(out, sts.issued[0]["ak"], sts.issued[0]["secret"], sts.issued[0]["token"],
                        "web identity (role arn:aws:iam::111122223333:role/pod)")
        # a refresh reads the (rotated) file again
        out = self.ok(env, "--twice", "--now", str(sts.issued[0]["exp"] - 100))
        self.assertEqual([r["form"]["WebIdentityToken"] for r in sts.requests()],
                         ["eyJhbGciOiJSUzI1NiJ9.jwt%d.sig" % i for i in (1, 2, 3)])
        self.assertEqual(out["access_key_id"], sts.issued[2]["ak"])

    def test_web_identity_rejected_token(self):
        token_file = self.write("token", "not-the-right-token")
        sts = self.start(STS(self.keys, web_identity_token="the-right-one"))
        err = self.fails({"AWS_WEB_IDENTITY_TOKEN_FILE": token_file,
                          "AWS_ROLE_ARN": "arn:aws:iam::111122223333:role/pod", "AWS_ENDPOINT_URL_STS": sts.url})
        self.assertIn("HTTP 400 InvalidIdentityToken", err)
        self.assertNotIn("not-the-right-token", err)

    def test_web_identity_profile(self):
        token_file = self.write("token", "jwt-from-profile")
        sts = self.start(STS(self.keys, web_identity_token="jwt-from-profile"))
        self.write("~/.aws/config", "[default]\nrole_arn = arn:aws:iam::111122223333:role/wi\n"
                                    "web_identity_token_file = %s\n" % token_file)
        out = self.ok({"AWS_ENDPOINT_URL_STS": sts.url})
        self.assertEqual(out["access_key_id"], sts.issued[0]["ak"])
        self.assertEqual(out["source"], "profile default (web identity, role arn:aws:iam::111122223333:role/wi)")

    # ---- container ----

    def test_container_relative_uri(self):
        ecs = self.start(Container())
        out = self.ok({"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/4f1c-task"},
                      "--container-endpoint", ecs.url)
        self.assertEqual(ecs.issued[0]["path"], "/v2/credentials/4f1c-task")
        self.assertCred(out, ecs.issued[0]["ak"], ecs.issued[0]["secret"], ecs.issued[0]["token"],
                        "container (%s)" % ecs.url)   # logged: no credentials path
        self.assertEqual(out["expiration"], ecs.issued[0]["exp"])

    def test_credentials_expired_on_arrival_are_an_error_asked_for_once(self):
        # at the refresh the endpoint gives credentials that are already expired (a host clock hours
        # off): an error naming the clock, and the endpoint is not asked again by every request
        ecs = self.start(Container(later_lifetime=-7200))
        due = int(time.time()) + 3600 - 100
        err = self.fails({"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x"},
                         "--container-endpoint", ecs.url, "--twice", "--now", str(due), "--calls", "3")
        lines = err.splitlines()
        self.assertRegex(lines[0], r"call 1: .*the credentials it gave expired \d+s before now: "
                                   r"is this host's clock right\?$")
        self.assertRegex(lines[1], r"call 2: .*clock right\? \(asked again in 30s\)$")
        self.assertRegex(lines[2], r"clock right\? \(asked again in 30s\)$")
        self.assertEqual(len(ecs.issued), 2)
        for c in ecs.issued:
            self.assertNotIn(c["secret"], err)

    def test_temporary_credentials_without_expiration_are_an_error(self):
        # they could never be refreshed: the service would fail for good when the session ends
        ecs = self.start(Container(expiration=False))
        err = self.fails({"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x"},
                         "--container-endpoint", ecs.url)
        self.assertIn("temporary credentials (with a Token) but no Expiration", err)
        self.assertNotIn(ecs.issued[0]["token"], err)

    def test_a_failing_refresh_is_retried_only_after_the_pause(self):
        # the old credentials have expired and the endpoint fails: each request gets the error,
        # but the endpoint is asked once per CREDS_RETRY_SECONDS (30 s), not once per request
        ecs = self.start(Container(fail_after=1))
        after = int(time.time()) + 3600 + 10
        env = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x"}
        err = self.fails(env, "--container-endpoint", ecs.url, "--twice", "--now", str(after), "--calls", "4")
        # the first credentials, then the one refresh (two attempts of one request); before, each of
        # the four calls made a refresh of its own: 9 requests
        self.assertEqual(len(ecs.requests()), 3, err)
        self.assertEqual(err.count("HTTP 500"), 4, err)
        self.assertEqual(err.count("(asked again in 30s)"), 3, err)

    def test_container_full_uri_with_token_file(self):
        ecs = self.start(Container(auth="eks-pod-identity-token-1"))
        token_file = self.write("eks-token", "eks-pod-identity-token-1\n")
        out = self.ok({"AWS_CONTAINER_CREDENTIALS_FULL_URI": ecs.url + "/v1/credentials",
                       "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": token_file,
                       "AWS_CONTAINER_AUTHORIZATION_TOKEN": "loses-to-the-file"})
        self.assertEqual(ecs.requests()[0]["headers"]["Authorization"], "eks-pod-identity-token-1")
        self.assertEqual(out["access_key_id"], ecs.issued[0]["ak"])

    def test_container_token_from_env_and_wrong_token(self):
        ecs = self.start(Container(auth="Basic right"))
        out = self.ok({"AWS_CONTAINER_CREDENTIALS_FULL_URI": ecs.url + "/creds",
                       "AWS_CONTAINER_AUTHORIZATION_TOKEN": "Basic right"})
        self.assertEqual(out["access_key_id"], ecs.issued[0]["ak"])
        err = self.fails({"AWS_CONTAINER_CREDENTIALS_FULL_URI": ecs.url + "/creds",
                          "AWS_CONTAINER_AUTHORIZATION_TOKEN": "Basic wrong-secret-value"})
        self.assertIn("HTTP 401 AccessDenied: Authorization token is wrong", err)
        self.assertNotIn("wrong-secret-value", err)

    def test_container_full_uri_ipv6_loopback(self):
        try:
            sock = socket.socket(socket.AF_INET6)
            sock.bind(("::1", 0))
            sock.close()
        except OSError:
            self.skipTest("no IPv6 loopback")

        class Server6(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6

        ecs = self.start(Container(server_class=Server6, host="::1"))
        self.assertTrue(ecs.url.startswith("http://[::1]:"))
        out = self.ok({"AWS_CONTAINER_CREDENTIALS_FULL_URI": ecs.url + "/v1/credentials"})
        self.assertEqual(out["access_key_id"], ecs.issued[0]["ak"])

    def test_container_full_uri_host_not_allowed(self):
        for host in ("192.0.2.10", "169.254.170.3", "[fd00:ec2::24]", "[::2]", "metadata.example"):
            err = self.fails({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://%s/creds" % host})
            self.assertIn("AWS_CONTAINER_CREDENTIALS_FULL_URI host %s is not allowed" % host, err)

    # ---- instance metadata ----

    def imds_env(self, imds):
        return {"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url}

    def test_imds(self):
        imds = self.start(IMDS(self.keys))
        out = self.ok(self.imds_env(imds), imds=True)
        c = imds.issued[0]
        self.assertCred(out, c["ak"], c["secret"], c["token"], "instance metadata (role %s)" % ROLE_NAME)
        self.assertEqual(out["expiration"], c["exp"])
        puts = imds.requests("PUT")
        self.assertEqual(len(puts), 1)
        self.assertEqual(puts[0]["headers"]["X-aws-ec2-metadata-token-ttl-seconds"], "21600")
        self.assertEqual(len(imds.requests("GET")), 2)

    def test_imds_stale_token_gets_a_new_one(self):
        imds = self.start(IMDS(self.keys, mode="one-use"))
        out = self.ok(self.imds_env(imds), imds=True)
        self.assertEqual(out["access_key_id"], imds.issued[0]["ak"])
        self.assertEqual(len(imds.requests("PUT")), 2)
        self.assertEqual([r["path"] for r in imds.requests("GET")],
                         ["/latest/meta-data/iam/security-credentials/",
                          "/latest/meta-data/iam/security-credentials/" + ROLE_NAME,
                          "/latest/meta-data/iam/security-credentials/" + ROLE_NAME])

    def test_imds_token_timeout_mentions_the_hop_limit(self):
        imds = self.start(IMDS(self.keys, mode="hang"))
        start = time.time()
        err = self.fails(self.imds_env(imds), imds=True)
        self.assertLess(time.time() - start, 10)
        self.assertIn("no AWS credentials:", err)
        self.assertIn("instance metadata: %s: token request" % imds.url, err)
        self.assertIn("HttpPutResponseHopLimit, must be 2 or more", err)
        self.assertEqual(len(imds.requests("PUT")), 2)  # one retry

    def test_imds_disabled(self):
        imds = self.start(IMDS(self.keys))
        err = self.fails(dict(self.imds_env(imds), AWS_EC2_METADATA_DISABLED="true"), imds=True)
        self.assertIn("instance metadata: disabled (AWS_EC2_METADATA_DISABLED=true)", err)
        self.assertEqual(imds.requests(), [])

    # ---- order, and nothing at all ----

    def test_env_wins_over_profile(self):
        self.write("~/.aws/credentials", self.CREDENTIALS)
        out = self.ok({"AWS_ACCESS_KEY_ID": "AKIAENVWINS000000001", "AWS_SECRET_ACCESS_KEY": "s",
                       "AWS_PROFILE": "prod"})
        self.assertEqual(out["access_key_id"], "AKIAENVWINS000000001")

    def test_profile_wins_over_container_and_imds(self):
        imds = self.start(IMDS(self.keys))
        ecs = self.start(Container())
        self.write("~/.aws/credentials", self.CREDENTIALS)
        out = self.ok(dict(self.imds_env(imds), AWS_CONTAINER_CREDENTIALS_FULL_URI=ecs.url + "/c"), imds=True)
        self.assertEqual(out["access_key_id"], "AKIADEFAULT000000001")
        self.assertEqual(imds.requests(), [])
        self.assertEqual(ecs.requests(), [])

    def test_container_wins_over_imds(self):
        imds = self.start(IMDS(self.keys))
        ecs = self.start(Container())
        out = self.ok(dict(self.imds_env(imds), AWS_CONTAINER_CREDENTIALS_FULL_URI=ecs.url + "/c"), imds=True)
        self.assertEqual(out["access_key_id"], ecs.issued[0]["ak"])
        self.assertEqual(imds.requests(), [])

    def test_no_credentials_names_every_source(self):
        url = "http://127.0.0.1:%d" % closed_port()
        err = self.fails({"AWS_EC2_METADATA_SERVICE_ENDPOINT": url}, imds=True)
        self.assertIn("no AWS credentials: environment: AWS_ACCESS_KEY_ID not set; "
                      "web identity: AWS_WEB_IDENTITY_TOKEN_FILE not set; "
                      "shared files: {h}/.aws/credentials: no such file, {h}/.aws/config: no such file; "
                      "container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI "
                      "not set; instance metadata: {u}: token request".format(h=self.home, u=url), err)

    def test_default_profile_absent_falls_through(self):
        self.write("~/.aws/config", "[profile other]\nregion = us-west-2\n")
        err = self.fails({})
        self.assertIn("shared files: %s/.aws/credentials: no such file, profile default not in %s/.aws/config; "
                      "container:" % (self.home, self.home), err)

    # ---- refresh ----

    def test_refresh_when_due(self):
        imds = self.start(IMDS(self.keys))
        out = self.ok(self.imds_env(imds), "--twice", imds=True)
        self.assertEqual(len(imds.issued), 1)  # not due: asked once
        self.assertEqual(out["access_key_id"], imds.issued[0]["ak"])
        exp = imds.issued[0]["exp"]
        out = self.ok(self.imds_env(imds), "--twice", "--now", str(exp - 100), imds=True)
        self.assertEqual(len(imds.issued), 3)  # this run: once, then again when due
        self.assertEqual(out["access_key_id"], imds.issued[2]["ak"])
        self.assertFalse(out["kept_old"])

    def test_failed_refresh_keeps_old_credentials_until_they_expire(self):
        imds = self.start(IMDS(self.keys, mode="fail-after-first"))
        exp = int(time.time()) + 3600
        out = self.ok(self.imds_env(imds), "--twice", "--now", str(exp - 100), imds=True)
        self.assertEqual(out["access_key_id"], imds.issued[0]["ak"])
        self.assertTrue(out["kept_old"])
        self.assertIn("refresh failed, keeping credentials", out["warning"])
        self.assertIn("HTTP 500", out["warning"])
        imds2 = self.start(IMDS(self.keys, mode="fail-after-first"))
        err = self.fails(self.imds_env(imds2), "--twice", "--now", str(exp + 100), imds=True)
        self.assertIn("instance metadata (role %s): " % ROLE_NAME, err)
        self.assertIn("HTTP 500", err)

    # ---- assume role on top ----

    def test_assume_role_option_over_env(self):
        sts = self.start(STS(self.keys, region="eu-west-1"))
        out = self.ok({"AWS_ACCESS_KEY_ID": BASE_KEY, "AWS_SECRET_ACCESS_KEY": BASE_SECRET},
                      "--role-arn", "arn:aws:iam::111122223333:role/reader", "--external-id", "ext:42",
                      "--sts-endpoint", sts.url, "--region", "eu-west-1")
        req = sts.requests()[0]
        self.assertEqual(req["signed_by"], BASE_KEY)
        self.assertEqual(req["form"]["Action"], "AssumeRole")
        self.assertEqual(req["form"]["ExternalId"], "ext:42")
        self.assertEqual(req["form"]["RoleSessionName"], "trailwatch")
        self.assertEqual(req["form"]["DurationSeconds"], "3600")
        self.assertIsNone(req["headers"].get("X-Amz-Security-Token"))
        c = sts.issued[0]
        self.assertCred(out, c["ak"], c["secret"], c["token"],
                        "environment, then assume role arn:aws:iam::111122223333:role/reader")
        self.assertEqual(out["expiration"], c["exp"])

    def test_assume_role_with_a_wrong_base_secret(self):
        sts = self.start(STS(self.keys))
        err = self.fails({"AWS_ACCESS_KEY_ID": BASE_KEY, "AWS_SECRET_ACCESS_KEY": "Wrong/Secret+Value"},
                         "--role-arn", "arn:aws:iam::111122223333:role/reader", "--sts-endpoint", sts.url)
        self.assertIn("assume role arn:aws:iam::111122223333:role/reader: STS AssumeRole "
                      "arn:aws:iam::111122223333:role/reader: HTTP 403 SignatureDoesNotMatch", err)
        self.assertNotIn("Wrong/Secret+Value", err)
        self.assertEqual(sts.issued, [])

    def test_assume_role_option_refreshes_its_base(self):
        imds = self.start(IMDS(self.keys))
        sts = self.start(STS(self.keys))
        exp = int(time.time()) + 3600
        out = self.ok(self.imds_env(imds), "--role-arn", "arn:aws:iam::111122223333:role/r", "--sts-endpoint",
                      sts.url, "--twice", "--now", str(exp - 60), imds=True)
        self.assertEqual(len(imds.issued), 2)
        self.assertEqual(len(sts.issued), 2)
        self.assertEqual(sts.requests()[1]["signed_by"], imds.issued[1]["ak"])
        self.assertEqual(out["access_key_id"], sts.issued[1]["ak"])
        self.assertEqual(out["source"], "instance metadata (role %s), then assume role "
                                        "arn:aws:iam::111122223333:role/r" % ROLE_NAME)


if __name__ == "__main__":
    unittest.main()
