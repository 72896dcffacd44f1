"""Self-tests of the awsenv harness (moto_server behind the SigV4-verifying proxy).

They check that correct requests (boto3's, awkward keys, pagination,
delimiters, url encoding) all pass with zero rejections and the right
content, that each kind of bad request is refused with its own reason, and
that fault injection, outages, counters and shutdown do what they claim.
"""
import datetime
import gzip
import hashlib
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
from contextlib import redirect_stderr

import botocore.exceptions

import awsenv

HERE = os.path.dirname(os.path.abspath(__file__))
CTGEN = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "tools", "ctgen")

AWKWARD_KEYS = [
    "plain.txt",
    "with space/and more spaces.json",
    "plus+sign.gz",
    "equals=sign&amp.txt",
    "deep/a/b/c/d.txt",
    "unicod\u00e9/caf\u00e9.json",
    "tilde~star*.txt",
    "percent%41%2F.txt",
    "colon:comma,semi;at@dollar$.txt",
    "quote'paren(x)!.txt",
    "double//slash.txt",
]


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


class EnvTestCase(unittest.TestCase):
    """One S3Env for the class; every test starts with no rejections, no faults."""

    @classmethod
    def setUpClass(cls):
        cls.env = awsenv.S3Env(bucket="trail").start()

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def setUp(self):
        self.env.clear_rejections()
        self.env.clear_faults()
        self.env.release()

    def assertNoRejections(self):
        self.env.assert_no_rejections(self.id())

    def bucket(self, name):
        """A fresh bucket (created directly in moto)."""
        self.env.create_bucket(name)
        return name


class GoodRequests(EnvTestCase):
    """Correct clients must never be refused."""

    def test_awkward_keys_roundtrip(self):
        c = self.env.client(max_attempts=1)
        b = self.bucket("awkward")
        for k in AWKWARD_KEYS:
            c.put_object(Bucket=b, Key=k, Body=("body of " + k).encode())
        listed = [o["Key"] for o in c.list_objects_v2(Bucket=b)["Contents"]]
        self.assertEqual(sorted(listed), sorted(AWKWARD_KEYS))
        for k in AWKWARD_KEYS:
            self.assertEqual(c.get_object(Bucket=b, Key=k)["Body"].read(), ("body of " + k).encode(), k)
            self.assertEqual(c.head_object(Bucket=b, Key=k)["ContentLength"], len(("body of " + k).encode()))
        # What moto stored, read behind the proxy's back, is the same.
        self.assertEqual(sorted(self.env.list_keys(bucket=b)), sorted(AWKWARD_KEYS))
        self.assertNoRejections()

    def test_pagination_max_keys_2(self):
        c = self.env.client(max_attempts=1)
        b = self.bucket("pages")
        keys = [f"AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/26/f{i:02d}+x=y.json.gz" for i in range(7)]
        for k in keys:
            self.env.put_object(k, b"x", bucket=b)
        got, pages, token = [], 0, None
        while True:
            kw = {"ContinuationToken": token} if token else {}
            r = c.list_objects_v2(Bucket=b, MaxKeys=2, Prefix="AWSLogs/", **kw)
            pages += 1
            self.assertLessEqual(r["KeyCount"], 2)
            got += [o["Key"] for o in r.get("Contents", [])]
            if not r["IsTruncated"]:
                break
            token = r["NextContinuationToken"]
        self.assertEqual(got, sorted(keys))
        self.assertEqual(pages, 4)
        # botocore's paginator does the same through the proxy.
        pag = c.get_paginator("list_objects_v2").paginate(Bucket=b, PaginationConfig={"PageSize": 2})
        self.assertEqual([o["Key"] for p in pag for o in p.get("Contents", [])], sorted(keys))
        self.assertNoRejections()

    def test_delimiter_prefix_start_after_encoding_url(self):
        c = self.env.client(max_attempts=1)
        b = self.bucket("delim")
        keys = ["AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/25/a.json.gz",
                "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/26/b.json.gz",
                "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/26/c d+\u00e9.json.gz",
                "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/26/d.json.gz",
                "AWSLogs/444455556666/CloudTrail/eu-west-1/2026/11/26/e.json.gz",
                "other/f.txt"]
        for k in keys:
            self.env.put_object(k, k, bucket=b)

        r = c.list_objects_v2(Bucket=b, Prefix="AWSLogs/", Delimiter="/")
        self.assertEqual([p["Prefix"] for p in r["CommonPrefixes"]],
                         ["AWSLogs/111122223333/", "AWSLogs/444455556666/"])
        self.assertNotIn("Contents", r)

        r = c.list_objects_v2(Bucket=b, Prefix="AWSLogs/111122223333/", Delimiter="/")
        self.assertEqual([p["Prefix"] for p in r["CommonPrefixes"]],
                         ["AWSLogs/111122223333/CloudTrail-Digest/", "AWSLogs/111122223333/CloudTrail/"])

        day = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/"
        r = c.list_objects_v2(Bucket=b, Prefix=day, StartAfter=day + "25/a.json.gz")
        self.assertEqual([o["Key"] for o in r["Contents"]], [keys[1], keys[2]])

        # EncodingType=url chosen by the caller: keys come back encoded.
        r = c.list_objects_v2(Bucket=b, Prefix=day + "26/", EncodingType="url")
        self.assertEqual([urllib.parse.unquote_plus(o["Key"]) for o in r["Contents"]], [keys[1], keys[2]])
        self.assertNotEqual(r["Contents"][1]["Key"], keys[2])   # really encoded

        # StartAfter and Prefix with awkward characters travel in the query.
        r = c.list_objects_v2(Bucket=b, Prefix=day + "26/c d+", StartAfter=day + "26/b")
        self.assertEqual([o["Key"] for o in r["Contents"]], [keys[2]])
        self.assertNoRejections()

    def test_raw_signed_request_accepted(self):
        """The raw-request helpers make correct requests: the rejection tests
        below start from these and change one thing."""
        self.env.put_object("raw/x y.txt", b"hello")
        resp = self.env.send(*self.env.signed_request("GET", "/trail/raw/x%20y.txt"))
        self.assertEqual((resp.status, resp.body), (200, b"hello"))
        resp = self.env.send(*self.env.signed_request("GET", "/trail?list-type=2&prefix=raw%2F"))
        self.assertEqual(resp.status, 200, resp.body)
        self.assertIn(b"<Key>raw/x y.txt</Key>", resp.body)
        resp = self.env.send(*self.env.signed_request("PUT", "/trail/raw/new", body=b"data"))
        self.assertEqual(resp.status, 200, resp.body)
        # Ten minutes of clock skew is within S3's 15.
        resp = self.env.send(*self.env.signed_request(
            "GET", "/trail/raw/new", timestamp=now_utc() - datetime.timedelta(minutes=10)))
        self.assertEqual((resp.status, resp.body), (200, b"data"))
        self.assertNoRejections()

    def test_curl_sigv4_client(self):
        """A SigV4 signer that is not botocore's (curl's, in C) is accepted,
        including a PUT with Expect: 100-continue."""
        if not shutil.which("curl") or "aws-sigv4" not in subprocess.run(
                ["curl", "--help", "all"], capture_output=True, text=True).stdout:
            self.skipTest("no curl with --aws-sigv4")
        creds = self.env.credentials
        self.env.put_object("curl/a b+c=\u00e9.txt", b"from moto")

        def curl(url, *args, payload=b""):
            p = subprocess.run(["curl", "-sS", "--fail-with-body", "--aws-sigv4", "aws:amz:us-east-1:s3",
                                "--user", f"{creds.access_key}:{creds.secret_key}",
                                "-H", "x-amz-content-sha256: " + hashlib.sha256(payload).hexdigest(),
                                *args, self.env.endpoint_url + url], capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            return p.stdout

        self.assertEqual(curl("/trail/curl/a%20b%2Bc%3D%C3%A9.txt"), b"from moto")
        self.assertIn(b"<Key>curl/a b+c=\xc3\xa9.txt</Key>", curl("/trail?list-type=2&prefix=curl%2Fa%20b"))
        data = os.urandom(1024 * 1024)
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            curl("/trail/curl/put.bin", "-T", f.name, "-H", "Expect: 100-continue", payload=data)
        self.assertEqual(self.env.moto_client().get_object(Bucket="trail", Key="curl/put.bin")["Body"].read(), data)
        # From stdin: Transfer-Encoding: chunked, which the proxy de-chunks.
        p = subprocess.run(["curl", "-sS", "--fail-with-body", "--aws-sigv4", "aws:amz:us-east-1:s3", "-v",
                            "--user", f"{creds.access_key}:{creds.secret_key}", "-T", "-",
                            "-H", "x-amz-content-sha256: " + hashlib.sha256(data).hexdigest(),
                            self.env.endpoint_url + "/trail/curl/chunked.bin"], input=data, capture_output=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn(b"Transfer-Encoding: chunked", p.stderr)
        self.assertEqual(self.env.moto_client().get_object(Bucket="trail", Key="curl/chunked.bin")["Body"].read(),
                         data)
        self.assertNoRejections()

    def test_large_objects_stream_through(self):
        c = self.env.client(max_attempts=1)
        data = os.urandom(3 * 1024 * 1024) + b"end"
        c.put_object(Bucket="trail", Key="big/blob.bin", Body=data)
        self.assertEqual(c.get_object(Bucket="trail", Key="big/blob.bin")["Body"].read(), data)
        self.assertEqual(c.get_object(Bucket="trail", Key="big/blob.bin", Range="bytes=5-9")["Body"].read(),
                         data[5:10])
        self.assertNoRejections()

    def test_temporary_credentials(self):
        creds = self.env.temporary_credentials()
        self.assertTrue(creds.access_key.startswith("ASIA") and creds.token)
        c = self.env.client(creds, max_attempts=1)
        c.put_object(Bucket="trail", Key="tmp/k", Body=b"v")
        self.assertEqual(c.get_object(Bucket="trail", Key="tmp/k")["Body"].read(), b"v")
        self.assertEqual({r.access_key for r in self.env.requests[-2:]}, {creds.access_key})
        self.assertNoRejections()

    def test_upload_tree_from_ctgen(self):
        if not os.path.exists(CTGEN):
            self.skipTest("ctgen not found")
        b = self.bucket("ctgen")
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([sys.executable, CTGEN, "--out", d, "--records", "200", "--seed", "3"],
                           check=True, capture_output=True, timeout=60)
            files = sorted(os.path.relpath(os.path.join(r, f), d).replace(os.sep, "/")
                           for r, _, fs in os.walk(d) for f in fs if f != "labels.jsonl")
            keys = self.env.upload_tree(d, prefix="logs/", bucket=b)
            self.assertEqual(keys, ["logs/" + f for f in files])
            c = self.env.client(max_attempts=1)
            pag = c.get_paginator("list_objects_v2").paginate(Bucket=b, Prefix="logs/AWSLogs/")
            listed = [o["Key"] for p in pag for o in p.get("Contents", [])]
            self.assertEqual(listed, [k for k in keys if k.startswith("logs/AWSLogs/")])
            gz = next(k for k in keys if k.endswith(".json.gz") and "Digest" not in k)
            with open(os.path.join(d, gz[len("logs/"):]), "rb") as f:
                self.assertEqual(c.get_object(Bucket=b, Key=gz)["Body"].read(), f.read())
            self.assertIn("Records", json.loads(gzip.decompress(c.get_object(Bucket=b, Key=gz)["Body"].read())))
        self.assertNoRejections()

    def test_put_file_later(self):
        b = self.bucket("later")
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "AWSLogs", "1", "new file.json.gz")
            os.makedirs(os.path.dirname(p))
            with open(p, "wb") as f:
                f.write(b"gz")
            self.assertEqual(self.env.put_file(p, bucket=b, root=d, prefix="pre/"), "pre/AWSLogs/1/new file.json.gz")
            self.assertEqual(self.env.put_file(p, bucket=b), "new file.json.gz")
            self.assertEqual(self.env.put_file(p, key="explicit/k", bucket=b), "explicit/k")
        self.assertEqual(sorted(self.env.list_keys(bucket=b)),
                         ["explicit/k", "new file.json.gz", "pre/AWSLogs/1/new file.json.gz"])

    def test_client_env(self):
        base = {"PATH": os.environ.get("PATH", ""), "AWS_PROFILE": "prod", "AWS_CONFIG_FILE": "/x",
                "AWS_SHARED_CREDENTIALS_FILE": "/y", "AWS_WEB_IDENTITY_TOKEN_FILE": "/z",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.2/x",
                "AWS_SESSION_TOKEN": "stale", "https_proxy": "http://proxy:3128", "KEEP": "1"}
        env = self.env.client_env(base=base)
        self.assertEqual(env["KEEP"], "1")
        for gone in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                     "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_SESSION_TOKEN", "https_proxy"):
            self.assertNotIn(gone, env)
        self.assertEqual((env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_REGION"],
                          env["AWS_EC2_METADATA_DISABLED"]),
                         (self.env.credentials.access_key, self.env.credentials.secret_key, "us-east-1", "true"))
        tmp = self.env.temporary_credentials()
        self.assertEqual(self.env.client_env(tmp, base=base)["AWS_SESSION_TOKEN"], tmp.token)

        # A separate process that finds its credentials only in that
        # environment (boto3's default chain) gets through the proxy.
        self.env.put_object("env/obj", b"from env")
        code = ("import boto3,botocore.config,sys;"
                "c=boto3.client('s3',endpoint_url=sys.argv[1],"
                "config=botocore.config.Config(s3={'addressing_style':'path'}));"
                "print(c.get_object(Bucket='trail',Key='env/obj')['Body'].read().decode())")
        p = subprocess.run([sys.executable, "-c", code, self.env.endpoint_url], capture_output=True, text=True,
                           env=self.env.client_env(tmp), timeout=60)
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "from env"), p.stderr)
        self.assertEqual(self.env.requests[-1].access_key, tmp.access_key)
        self.assertNoRejections()


SIGV4_SUITE = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "testdata", "aws-sigv4-test-suite")


class VerifierAgainstOfficialVectors(unittest.TestCase):
    """The verifier's signature computation, checked against signatures made
    by other implementations (not botocore's signer): AWS's SigV4 test suite
    and the S3 documentation's examples.  No server needed."""

    def parse_signed_request(self, raw):
        head, _, body = raw.partition(b"\n\n")
        line, _, header_lines = head.partition(b"\n")
        method, rest = line.decode("latin-1").split(" ", 1)      # as http.server decodes it
        target = rest.rsplit(" ", 1)[0]
        headers = http.client.parse_headers(io.BytesIO(header_lines + b"\r\n\r\n"))
        return method, target, headers, body

    def test_sigv4_suite(self):
        from botocore.utils import normalize_url_path
        vectors = os.path.join(SIGV4_SUITE, "v4")
        if not os.path.isdir(vectors):
            self.skipTest("aws-sigv4-test-suite not found")
        checked = 0
        for case in sorted(os.listdir(vectors)):
            d = os.path.join(vectors, case)
            with open(os.path.join(d, "context.json")) as f:
                ctx = json.load(f)
            with open(os.path.join(d, "header-signed-request.txt"), "rb") as f:
                method, target, headers, _ = self.parse_signed_request(f.read())
            path, _, query = target.partition("?")
            if ctx["normalize"] and normalize_url_path(path) != path:
                continue        # generic path normalisation ('/./', '//'...): S3 does not do it
            with open(os.path.join(d, "header-canonical-request.txt")) as f:
                want_canonical = f.read()
            with open(os.path.join(d, "header-signature.txt")) as f:
                want_signature = f.read().strip()
            c = ctx["credentials"]
            verifier = awsenv.Verifier(ctx["region"], ctx["service"])
            auth = verifier.parse_authorization(headers["Authorization"])
            signature, canonical, _ = verifier.compute_signature(
                awsenv.Credentials(c["access_key_id"], c["secret_access_key"], c.get("token")), auth, method,
                awsenv.canonical_path(path), awsenv.canonical_query_pairs(query), headers, headers["X-Amz-Date"])
            with self.subTest(case=case):
                self.assertEqual(canonical, want_canonical)
                self.assertEqual(signature, want_signature)
            checked += 1
        self.assertGreaterEqual(checked, 30)

    def test_s3_documentation_examples(self):
        """Full Verifier.check on the S3 docs' header-signing examples."""
        verifier = awsenv.Verifier("us-east-1")
        verifier.add_credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        when = datetime.datetime(2013, 5, 24, tzinfo=datetime.timezone.utc).timestamp()
        cases = [
            ("/test.txt", "Range: bytes=0-9\r\n", "host;range;x-amz-content-sha256;x-amz-date",
             "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
            ("/?lifecycle", "", "host;x-amz-content-sha256;x-amz-date",
             "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
            ("/?max-keys=2&prefix=J", "", "host;x-amz-content-sha256;x-amz-date",
             "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
        ]
        for target, extra, signed, signature in cases:
            def headers(sig):
                text = ("Host: examplebucket.s3.amazonaws.com\r\n" + extra
                        + f"x-amz-content-sha256: {awsenv.EMPTY_SHA256}\r\nx-amz-date: 20130524T000000Z\r\n"
                        + "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
                        + f"s3/aws4_request,SignedHeaders={signed},Signature={sig}\r\n\r\n")
                return http.client.parse_headers(io.BytesIO(text.encode()))
            with self.subTest(target=target):
                creds = verifier.check("GET", target, headers(signature), b"", now=when)
                self.assertEqual(creds.access_key, "AKIAIOSFODNN7EXAMPLE")
                with self.assertRaises(awsenv.Reject) as cm:
                    verifier.check("GET", target, headers(signature[:-1] + "0"), b"", now=when)
                self.assertEqual(cm.exception.reason, "signature-mismatch")
                with self.assertRaises(awsenv.Reject) as cm:
                    verifier.check("GET", target, headers(signature), b"", now=when + 16 * 60)
                self.assertEqual(cm.exception.reason, "time-skewed")


class Rejections(EnvTestCase):
    """Each bad request is refused with its own reason and an S3-style error."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env.put_object("obj", b"content")

    def assertRejected(self, request, reason, status, code):
        method, target, headers, body = request
        before = len(self.env.rejections)
        resp = self.env.send(method, target, headers, body)
        self.assertEqual(resp.status, status, resp.body)
        self.assertEqual(awsenv.error_code(resp.body), code, resp.body)
        got = [(r.reason, r.method, r.path) for r in self.env.rejections[before:]]
        self.assertEqual(got, [(reason, method, target.partition("?")[0])])
        return resp

    def sign(self, method="GET", target="/trail/obj", **kw):
        return list(self.env.signed_request(method, target, **kw))

    def test_tampered_signature(self):
        m, t, h, b = self.sign()
        sig = h["Authorization"][-64:]
        h["Authorization"] = h["Authorization"][:-64] + sig[:-1] + ("0" if sig[-1] != "0" else "1")
        resp = self.assertRejected((m, t, h, b), "signature-mismatch", 403, "SignatureDoesNotMatch")
        self.assertIn(b"<CanonicalRequest>GET\n/trail/obj\n", resp.body)

    def test_tampered_request_after_signing(self):
        m, t, h, b = self.sign(target="/trail?list-type=2&prefix=a")
        self.assertRejected((m, "/trail?list-type=2&prefix=b", h, b), "signature-mismatch", 403,
                            "SignatureDoesNotMatch")

    def test_wrong_secret(self):
        bad = awsenv.Credentials(self.env.credentials.access_key, "not-the-secret")
        self.assertRejected(self.sign(credentials=bad), "signature-mismatch", 403, "SignatureDoesNotMatch")
        # The same through boto3.
        c = self.env.client(bad, max_attempts=1)
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            c.list_objects_v2(Bucket="trail")
        self.assertEqual(cm.exception.response["Error"]["Code"], "SignatureDoesNotMatch")
        self.assertEqual(self.env.rejection_reasons()[-1], "signature-mismatch")

    def test_unknown_access_key(self):
        self.assertRejected(self.sign(credentials=awsenv.Credentials("AKIAUNKNOWN000000000", "s")),
                            "unknown-access-key", 403, "InvalidAccessKeyId")

    def test_missing_content_sha256(self):
        m, t, h, b = self.sign()
        del h["X-Amz-Content-SHA256"]
        self.assertRejected((m, t, h, b), "missing-content-sha256", 400, "InvalidRequest")

    def test_wrong_payload_hash(self):
        m, t, h, b = self.sign("PUT", "/trail/put-me", body=b"what was signed")
        self.assertRejected((m, t, h, b"what was sent"), "payload-hash-mismatch", 400, "XAmzContentSHA256Mismatch")
        self.assertNotIn("put-me", self.env.list_keys())

    def test_unsigned_payload(self):
        m, t, h, b = self.sign("PUT", "/trail/unsigned", body=b"x", payload_hash="UNSIGNED-PAYLOAD")
        self.assertEqual(h["X-Amz-Content-SHA256"], "UNSIGNED-PAYLOAD")
        self.assertRejected((m, t, h, b), "unsigned-payload", 403, "AccessDenied")
        self.env.verifier.allow_unsigned_payload = True
        try:
            self.assertEqual(self.env.send(m, t, h, b).status, 200)
        finally:
            self.env.verifier.allow_unsigned_payload = False

    def test_lowercase_percent_encoding_path(self):
        # Signed exactly as sent, so only the lowercase hex is wrong.
        self.assertRejected(self.sign(target="/trail/a%2cb"), "lowercase-percent-encoding", 403,
                            "SignatureDoesNotMatch")

    def test_lowercase_percent_encoding_query(self):
        self.assertRejected(self.sign(target="/trail?list-type=2&prefix=AWSLogs%2f"), "lowercase-percent-encoding",
                            403, "SignatureDoesNotMatch")

    def test_non_canonical_query(self):
        # A raw '/' in a query value: S3 signs it as %2F.
        self.assertRejected(self.sign(target="/trail?list-type=2&prefix=AWSLogs/"), "non-canonical-encoding",
                            403, "SignatureDoesNotMatch")

    def test_scope_date_mismatch(self):
        m, t, h, b = self.sign()
        day = h["X-Amz-Date"][:8]
        other = (datetime.datetime.strptime(day, "%Y%m%d") - datetime.timedelta(days=1)).strftime("%Y%m%d")
        h["Authorization"] = h["Authorization"].replace(f"/{day}/", f"/{other}/")
        self.assertRejected((m, t, h, b), "scope-date-mismatch", 400, "AuthorizationHeaderMalformed")

    def test_scope_region_mismatch(self):
        self.assertRejected(list(awsenv.sign_request("GET", self.env.endpoint_url + "/trail/obj",
                                                     self.env.credentials, region="eu-west-1")),
                            "scope-region-mismatch", 400, "AuthorizationHeaderMalformed")

    def test_skewed_date(self):
        for minutes in (-16, 16):
            self.assertRejected(self.sign(timestamp=now_utc() + datetime.timedelta(minutes=minutes)),
                                "time-skewed", 403, "RequestTimeTooSkewed")

    def test_session_token_missing(self):
        tmp = self.env.temporary_credentials()
        self.assertRejected(self.sign(credentials=tmp._replace(token=None)), "token-missing", 403,
                            "InvalidAccessKeyId")
        # boto3 given the key without its token: refused the same way.
        with self.assertRaises(botocore.exceptions.ClientError):
            self.env.client(tmp._replace(token=None), max_attempts=1).head_object(Bucket="trail", Key="obj")
        self.assertEqual(self.env.rejection_reasons()[-1], "token-missing")

    def test_session_token_wrong(self):
        tmp = self.env.temporary_credentials()
        self.assertRejected(self.sign(credentials=tmp._replace(token=tmp.token[:-4] + "AAAA")),
                            "token-mismatch", 400, "InvalidToken")

    def test_session_token_unexpected(self):
        self.assertRejected(self.sign(credentials=self.env.credentials._replace(token="tok")),
                            "token-unexpected", 400, "InvalidToken")

    def test_expired_token(self):
        tmp = self.env.temporary_credentials()
        self.assertEqual(self.env.send(*self.sign(credentials=tmp)).status, 200)
        self.env.expire_credentials(tmp.access_key)
        self.assertRejected(self.sign(credentials=tmp), "token-expired", 400, "ExpiredToken")

    def test_required_headers_not_signed(self):
        self.assertRejected(self.sign(unsigned_headers=["host"]), "host-not-signed", 403, "AccessDenied")
        self.assertRejected(self.sign(unsigned_headers=["x-amz-date"]), "amz-date-not-signed", 403, "AccessDenied")
        self.assertRejected(self.sign(unsigned_headers=["x-amz-content-sha256"]), "content-sha256-not-signed",
                            403, "AccessDenied")

    def test_unsigned_amz_header(self):
        m, t, h, b = self.sign()
        h["x-amz-meta-added"] = "later"
        resp = self.assertRejected((m, t, h, b), "unsigned-amz-header", 403, "AccessDenied")
        self.assertIn(b"x-amz-meta-added", resp.body)

    def test_missing_and_malformed_authorization(self):
        m, t, h, b = self.sign()
        del h["Authorization"]
        self.assertRejected((m, t, h, b), "missing-authorization", 403, "AccessDenied")
        h["Authorization"] = "AWS AKIATRAILWATCHTEST01:c2lnbmF0dXJl"
        self.assertRejected((m, t, h, b), "malformed-authorization", 400, "AuthorizationHeaderMalformed")

    def test_head_rejection_has_no_body(self):
        m, t, h, b = self.sign("HEAD")
        h["Authorization"] = h["Authorization"][:-1] + ("0" if h["Authorization"][-1] != "0" else "1")
        before = len(self.env.rejections)
        resp = self.env.send(m, t, h, b)
        self.assertEqual((resp.status, resp.body), (403, b""))
        self.assertEqual(self.env.rejections[before].reason, "signature-mismatch")


class Faults(EnvTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env.put_object("f/obj", b"content")

    def get(self):
        return self.env.send(*self.env.signed_request("GET", "/trail/f/obj"))

    def test_slow_down_then_normal(self):
        self.env.slow_down(2, retry_after=3)
        for _ in range(2):
            r = self.get()
            self.assertEqual((r.status, awsenv.error_code(r.body)), (503, "SlowDown"))
            self.assertIn(("Retry-After", "3"), r.headers)
            self.assertTrue(r.body.startswith(b"<?xml") and b"<Error><Code>SlowDown</Code>" in r.body)
        self.assertEqual((self.get().status, self.get().body), (200, b"content"))
        self.assertEqual(self.env.proxy.pending_faults(), 0)
        self.assertEqual([r.outcome for r in self.env.requests[-4:]], ["fault", "fault", "ok", "ok"])
        self.assertNoRejections()

    def test_boto3_retries_through_slow_down(self):
        self.env.take_counts()
        self.env.slow_down(2)
        c = self.env.client(max_attempts=4)
        self.assertEqual(c.get_object(Bucket="trail", Key="f/obj")["Body"].read(), b"content")
        counts = self.env.take_counts()
        self.assertEqual((counts["get"], counts["faulted"]), (3, 2))
        c1 = self.env.client(max_attempts=1)
        self.env.slow_down(1)
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            c1.get_object(Bucket="trail", Key="f/obj")
        self.assertEqual(cm.exception.response["Error"]["Code"], "SlowDown")

    def test_internal_error_and_kinds(self):
        self.env.internal_error(1, kinds={"list"})
        self.assertEqual(self.get().status, 200)          # not a list: untouched
        r = self.env.send(*self.env.signed_request("GET", "/trail?list-type=2"))
        self.assertEqual((r.status, awsenv.error_code(r.body)), (500, "InternalError"))
        r = self.env.send(*self.env.signed_request("GET", "/trail?list-type=2"))
        self.assertEqual(r.status, 200)

    def test_reset(self):
        self.env.reset_next(1)
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            self.get()
        self.assertEqual(self.get().status, 200)

    def test_delay(self):
        self.env.set_delay(0.4)
        t = time.monotonic()
        self.assertEqual(self.get().status, 200)
        self.assertGreaterEqual(time.monotonic() - t, 0.4)
        self.env.set_delay(0)

    def test_hold_and_release(self):
        self.env.hold()
        result = []
        th = threading.Thread(target=lambda: result.append(self.get().status))
        th.start()
        th.join(0.4)
        self.assertTrue(th.is_alive())
        self.assertEqual(result, [])
        self.env.release()
        th.join(10)
        self.assertEqual(result, [200])

    def test_outage_refuses_connections_then_recovers(self):
        c = self.env.client(max_attempts=1)
        pooled = self.env.client()                        # default retries, keeps a pooled connection
        self.assertEqual(pooled.get_object(Bucket="trail", Key="f/obj")["Body"].read(), b"content")
        port = self.env.proxy.port
        with self.env.outage():
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            with self.assertRaises(botocore.exceptions.EndpointConnectionError):
                c.list_objects_v2(Bucket="trail")
        self.assertEqual(self.env.proxy.port, port)
        self.assertEqual(c.get_object(Bucket="trail", Key="f/obj")["Body"].read(), b"content")
        self.assertEqual(pooled.get_object(Bucket="trail", Key="f/obj")["Body"].read(), b"content")
        self.assertNoRejections()

    def test_outage_reset_and_503_modes(self):
        with self.env.outage("reset"):
            with self.assertRaises((ConnectionError, http.client.HTTPException)):
                self.get()
        with self.env.outage("503"):
            r = self.get()
            self.assertEqual((r.status, awsenv.error_code(r.body)), (503, "ServiceUnavailable"))
        self.assertEqual(self.get().status, 200)


class Counters(EnvTestCase):

    def test_counts_by_kind(self):
        env = self.env
        for i in range(3):
            env.put_object(f"c/k{i}", b"v")
        c = env.client(max_attempts=1)
        env.take_counts()
        pages = list(c.get_paginator("list_objects_v2").paginate(Bucket="trail", Prefix="c/",
                                                                  PaginationConfig={"PageSize": 2}))
        self.assertEqual(len(pages), 2)
        for i in range(3):
            c.get_object(Bucket="trail", Key=f"c/k{i}")
        c.head_object(Bucket="trail", Key="c/k0")
        c.put_object(Bucket="trail", Key="c/new", Body=b"n")
        c.list_objects(Bucket="trail", Prefix="c/")       # v1: other
        c.list_buckets()                                  # other
        c.delete_object(Bucket="trail", Key="c/new")      # other
        bad = env.client(env.credentials._replace(secret_key="wrong"), max_attempts=1)
        with self.assertRaises(botocore.exceptions.ClientError):
            bad.get_object(Bucket="trail", Key="c/k0")  # counted as get and as rejected
        counts = env.take_counts()
        self.assertEqual(counts, {"list": 2, "get": 4, "head": 1, "put": 1, "other": 3, "total": 11,
                                  "rejected": 1, "faulted": 0})
        self.assertEqual(env.counts()["total"], 0)
        self.assertEqual(env.rejection_reasons(), ["signature-mismatch"])

    def test_wait_for_counts(self):
        self.env.take_counts()
        c = self.env.client(max_attempts=1)
        threading.Timer(0.2, lambda: c.list_objects_v2(Bucket="trail")).start()
        self.assertGreaterEqual(self.env.wait_for_counts(timeout=10, list=1)["list"], 1)
        with self.assertRaises(TimeoutError):
            self.env.wait_for_counts(timeout=0.2, head=1)


class Lifecycle(unittest.TestCase):

    def test_shutdown_kills_moto_and_frees_port(self):
        with awsenv.S3Env(bucket=None) as env:
            proc = env.moto.proc
            port = env.proxy.port
            moto_port = env.moto.port
            self.assertEqual(env.client(max_attempts=1).list_buckets()["Buckets"], [])
            tmpdir = env.tmpdir
        self.assertIsNotNone(proc.poll())
        for p in (port, moto_port):
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", p), timeout=2).close()
        self.assertFalse(os.path.exists(tmpdir))

    def test_failure_prints_diagnostics_and_cleans_up(self):
        err = io.StringIO()
        with redirect_stderr(err), self.assertRaises(ZeroDivisionError):
            with awsenv.S3Env(bucket="diag") as env:
                proc = env.moto.proc
                bad = env.client(env.credentials._replace(secret_key="wrong"), max_attempts=1)
                with self.assertRaises(botocore.exceptions.ClientError):
                    bad.list_objects_v2(Bucket="diag")
                1 / 0
        self.assertIsNotNone(proc.poll())
        text = err.getvalue()
        self.assertIn("rejected [signature-mismatch] GET /diag", text)
        self.assertIn("moto.log", text)
        self.assertIn("Running on http://127.0.0.1", text)


if __name__ == "__main__":
    unittest.main()
