"""Helpers shared by the Python tests: the binary, paths, CloudTrail files."""
import gzip
import json
import os
import time
import subprocess
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
TW = os.environ.get("TW", os.path.join(ROOT, "trailwatch"))
SIGMAHQ = os.path.join(SHARED, "testdata", "sigmahq-aws-cloudtrail")


def tw(*args, input=None, timeout=600, env=None):
    """Runs trailwatch; returns the CompletedProcess (text mode)."""
    return subprocess.run([TW, *args], capture_output=True, text=True, input=input, timeout=timeout, env=env)


def record(**fields):
    """A minimal but realistic CloudTrail record; fields override or add."""
    rec = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLEEXAMPLE01",
            "arn": "arn:aws:iam::111122223333:user/alice",
            "accountId": "111122223333",
            "accessKeyId": "AKIAEXAMPLEEXAMPLE01",
            "userName": "alice",
        },
        "eventTime": "2026-11-26T10:00:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.10",
        "userAgent": "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79 exe/x86_64 prompt/off command/s3.cp",
        "requestParameters": {"bucketName": "prod-data", "key": "a/b.csv"},
        "responseElements": None,
        "requestID": "EXAMPLE123456789",
        "eventID": str(uuid.uuid4()),
        "readOnly": True,
        "eventType": "AwsApiCall",
        "managementEvent": False,
        "recipientAccountId": "111122223333",
        "eventCategory": "Data",
    }
    rec.update(fields)
    return rec


def write_log(path, records, gz=True):
    """Writes a CloudTrail log file {"Records": [...]}."""
    body = json.dumps({"Records": records}, separators=(",", ":")).encode()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(gzip.compress(body, mtime=0) if gz else body)
    return path


def drop_log(inbox, n, records):
    """Log file number n in a watched inbox (type: dir), its mtime a minute
    back so the source reads it at once; returns its path."""
    path = os.path.join(inbox, "111122223333_CloudTrail_us-east-1_20261126T10%02dZ_f%d.json.gz" % (n % 60, n))
    write_log(path, records)
    old = time.time() - 60
    os.utime(path, (old, old))
    return path


def alerts_of(stdout):
    return [json.loads(l) for l in stdout.splitlines() if l.strip()]


class TempDir:
    def __enter__(self):
        self.t = tempfile.TemporaryDirectory(prefix="tw-test-")
        return self.t.name

    def __exit__(self, *exc):
        self.t.cleanup()
