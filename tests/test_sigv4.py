"""SigV4: trailwatch's signer against botocore's on generated S3 and STS requests.

AWS's own test vectors run in the C unit tests; this adds requests like the
ones trailwatch sends, with awkward object keys and continuation tokens
(spaces, '+', '=', '/', '%', unicode, '~', '*'), session tokens, and POSTs with
bodies.  The C side signs through `unit --sign` (tests/unit.c); botocore
builds its canonical request from the URL the C side would send: the path
encoded by botocore's own S3 rule (quote with '/~' safe) and the query as
trailwatch encodes it.  Both must agree byte for byte.
"""
import datetime
import hashlib
import json
import os
import random
import subprocess
import unittest
from urllib.parse import quote

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

UNIT = os.environ.get("UNIT")

AWKWARD = ["a b", "plus+sign", "eq=al", "sl/ash", "per%cent", "caf\u00e9", "\u30c6\u30b9\u30c8", "tilde~",
           "star*", "semi;colon", "comma,", "amp&", "q?mark", "hash#", "dollar$", "quote'", "paren()",
           "AWSLogs/o-abc123/111122223333/CloudTrail/us-east-1/2026/11/27/",
           "1/AAAA+bbbb/cc==", "emoji\U0001F600", "back\\slash", "x" * 300]


def enc(s):
    """trailwatch's query encoding: everything but unreserved bytes as %XX."""
    return quote(s, safe="-_.~")


def make_case(rng, i):
    service = rng.choice(["s3", "s3", "s3", "sts"])
    token = rng.choice([None, "FwoGZXIvYXdzE" + "/+=" * rng.randint(1, 20) + "Tok%d" % i])
    when = 1700000000 + rng.randint(0, 10 ** 8)
    if service == "s3":
        bucket = rng.choice(["trail", "org-cloudtrail-logs", "a.b-c"])
        if rng.random() < 0.5:
            method, key, body = "GET", rng.choice(AWKWARD) + "/" + rng.choice(AWKWARD), b""
            params = {}
        else:
            method, key, body = "GET", "", b""
            params = {"list-type": "2", "prefix": rng.choice(AWKWARD)}
            for name in ("continuation-token", "start-after", "delimiter", "encoding-type"):
                if rng.random() < 0.5:
                    params[name] = {"delimiter": "/", "encoding-type": "url"}.get(
                        name, rng.choice(AWKWARD) + str(rng.randint(0, 10 ** 6)))
        path = "/" + bucket + ("/" + key if key else "")
        headers = [("Host", "127.0.0.1:%d" % rng.randint(1024, 65535))]
        if rng.random() < 0.3:
            headers.append(("Range", "bytes=0-%d" % rng.randint(1, 10 ** 6)))
    else:
        method, path = "POST", "/"
        body = ("Action=AssumeRole&Version=2011-06-15&RoleArn=" + enc("arn:aws:iam::111122223333:role/r%d" % i) +
                "&RoleSessionName=trailwatch").encode()
        params = {}
        headers = [("Host", "sts.us-east-1.amazonaws.com"),
                   ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")]
    query = "&".join(enc(k) + "=" + enc(v) for k, v in params.items())
    return {
        "method": method, "path": path, "query": query, "headers": [list(h) for h in headers],
        "payload_hash": hashlib.sha256(body).hexdigest(), "body": body.decode(),
        "akid": "AKIAEXAMPLE%04d" % i, "secret": "secret/+%d" % rng.randint(0, 10 ** 9), "token": token,
        "region": rng.choice(["us-east-1", "eu-west-1", "ap-southeast-2"]), "service": service, "time": when,
    }


def botocore_sign(case):
    url_path = quote(case["path"], safe="/~")
    url = "https://host" + url_path + ("?" + case["query"] if case["query"] else "")
    req = AWSRequest(method=case["method"], url=url, data=case["body"].encode())
    for name, value in case["headers"]:
        req.headers[name] = value
    creds = Credentials(case["akid"], case["secret"], case["token"])
    auth = (S3SigV4Auth if case["service"] == "s3" else SigV4Auth)(creds, case["service"], case["region"])
    req.context["timestamp"] = datetime.datetime.fromtimestamp(case["time"], datetime.timezone.utc).strftime(
        "%Y%m%dT%H%M%SZ")
    req.context["payload_signing_enabled"] = True
    auth._modify_request_before_signing(req)
    if case["service"] != "s3":
        req.headers["X-Amz-Content-SHA256"] = case["payload_hash"]
    canonical = auth.canonical_request(req)
    sts = auth.string_to_sign(req, canonical)
    return canonical, sts, auth.signature(sts, req)


@unittest.skipUnless(UNIT, "UNIT (the C unit test binary) is not set")
class DifferentialTest(unittest.TestCase):
    def test_matches_botocore(self):
        rng = random.Random(20261127)
        cases = [make_case(rng, i) for i in range(400)]
        lines = "".join(json.dumps({k: v for k, v in c.items() if k != "body"}) + "\n" for c in cases)
        p = subprocess.run([UNIT, "--sign"], input=lines, capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        results = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual(len(results), len(cases))
        for case, got in zip(cases, results):
            with self.subTest(path=case["path"], query=case["query"]):
                self.assertEqual(got["error"], 0)
                canonical, sts, sig = botocore_sign(case)
                self.assertEqual(got["canonical"], canonical)
                self.assertEqual(got["string_to_sign"], sts)
                self.assertEqual(got["signature"], sig)

    def test_a_wrong_secret_changes_the_signature(self):
        rng = random.Random(1)
        case = make_case(rng, 1)
        other = dict(case, secret=case["secret"] + "x")
        lines = json.dumps({k: v for k, v in case.items() if k != "body"}) + "\n" + \
            json.dumps({k: v for k, v in other.items() if k != "body"}) + "\n"
        p = subprocess.run([UNIT, "--sign"], input=lines, capture_output=True, text=True, timeout=60)
        a, b = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual(a["canonical"], b["canonical"])
        self.assertNotEqual(a["signature"], b["signature"])


if __name__ == "__main__":
    unittest.main()
