"""The shipped pack on CloudTrail records in the shapes real trails have
(docs/rule-pack.md, "Real CloudTrail"), scenario by scenario.

Each scenario is a few log files of records written the way CloudTrail
writes them (S3 user agents in square brackets, tlsDetails and CipherSuite,
eventVersion, the anonymous principal, DeleteObjects without its keys...),
replayed alone with the pack, and the alerts it must and must not raise, by
rule.  SCENARIOS is also what the issue's before/after figures were measured
on: `python3 tests/test_pack.py --measure BINARY` prints each scenario's
alerts by rule for any trailwatch binary.
"""
import copy
import datetime as dt
import json
import os
import sys
import unittest
import uuid

from twtest import TempDir, alerts_of, tw, write_log, TW
import subprocess

ACCOUNT = "111122223333"
FOREIGN = "999988887777"
START = dt.datetime(2026, 11, 26, 10, 0, 0, tzinfo=dt.timezone.utc)

# Rule ids (docs/rule-pack.md).
UA = "d7907576-6bf5-4565-94ba-d1bcff68de88"
STOPPED = "c655ca3d-f36e-4568-a0ca-c5101433dc88"
NARROWED = "c0b06a19-9bd8-4e1c-9430-9c5802d64129"
S3_DATA_OFF = "ec9b9a73-a18c-4cba-b732-f9044bf25d2c"
INSIGHTS_OFF = "622385f9-66ce-4b75-b4fc-72f79df995a7"
REFUSED = "f8402859-fc9d-4b7a-abc4-4e7be80145e4"
TRAIL_CHANGED = "0699d837-10c0-419f-9650-16cc2f5c9e52"
POLICY_PUBLIC = "3a4e7ae8-ea6b-4314-b450-5a0bc682ceea"
POLICY_FOREIGN = "4aa5595f-a97e-4e28-9fa1-a2859280fd24"
POLICY_CHANGED = "2cb5c644-a241-48ad-9c06-16434fc3ed60"
BUCKET_DELETED = "a341a162-3325-4e21-8191-cf28c27fa1e5"
PLAINTEXT = "f6009dff-7379-430c-b36c-6529cb53fec2"
ANON_ACCESS = "67542be2-2cbc-439c-912a-d54e5cb9d198"
ANON_SCANNING = "b2da3862-77f5-4d74-a204-234aabfc31f4"
DENIED_SPIKE = "f45d750d-76f7-4eaf-8c4b-3c0a7e3a416f"
ENUMERATION = "e48768c2-2415-4c4a-ad81-8b2ff83dfd2c"
RANSOM_NOTE = "3ead1635-1999-4c58-9c21-9ce33f05b9bf"
MASS_DELETION = "f08b8a01-4f82-4fcb-b091-4164a7ad6509"
REWRITTEN = "5f9c0283-1648-405f-9cf7-19ae0db698e6"
SSE_C = "eba7b235-76a5-40f7-97df-b38f2b0fb488"
ACL_CHANGED = "b266a25f-020d-4622-9fae-6a974fb2f993"

CONFIG = """lists:
  corporate_cidrs: [203.0.113.0/24, 198.51.100.0/24]
"""

CLI = "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79-99.164.amzn2023.x86_64 exe/x86_64.amzn.2023 prompt/off"
TLS = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256"}


def user(name, account=ACCOUNT):
    return {"type": "IAMUser", "principalId": "AIDA" + name.upper().ljust(17, "X")[:17],
            "arn": f"arn:aws:iam::{account}:user/{name}", "accountId": account, "userName": name}


def role(name, session, account=ACCOUNT):
    return {"type": "AssumedRole", "principalId": "AROAEXAMPLE:" + session,
            "arn": f"arn:aws:sts::{account}:assumed-role/{name}/{session}", "accountId": account,
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{account}:role/{name}",
                                                 "accountId": account, "userName": name}}}


ANONYMOUS = {"type": "AWSAccount", "principalId": "", "accountId": "anonymous"}


def s3(name, seconds=0, who=None, bucket="prod-data", key=None, agent=CLI, ip="203.0.113.10", error=None,
       version="1.09", tls=True, params=None, extra=None):
    """An S3 record as CloudTrail writes it: the agent in square brackets,
    TLS details, additionalEventData with the cipher suite."""
    data = name in ("GetObject", "PutObject", "CopyObject", "DeleteObject", "DeleteObjects", "HeadObject",
                    "ListObjects", "CompleteMultipartUpload")
    rp = {"bucketName": bucket, "Host": f"{bucket}.s3.us-east-1.amazonaws.com"}
    if key is not None:
        rp["key"] = key
    rp.update(params or {})
    rec = {
        "eventVersion": version, "userIdentity": who or user("alice"),
        "eventTime": (START + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "s3.amazonaws.com", "eventName": name, "awsRegion": "us-east-1",
        # S3 brackets the agent of signed requests; anonymous ones come bare
        "sourceIPAddress": ip, "userAgent": agent if who is ANONYMOUS else f"[{agent}]",
        "requestParameters": rp, "responseElements": None,
        "additionalEventData": {"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256",
                                "bytesTransferredIn": 0, "AuthenticationMethod": "AuthHeader",
                                "bytesTransferredOut": 1024 if name == "GetObject" else 0},
        "requestID": uuid.uuid4().hex[:16].upper(), "eventID": str(uuid.uuid4()), "readOnly": name.startswith(("Get", "List", "Head")),
        "resources": [{"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}],
        "eventType": "AwsApiCall", "managementEvent": not data, "recipientAccountId": ACCOUNT,
        "eventCategory": "Data" if data else "Management",
    }
    if tls:
        rec["tlsDetails"] = dict(TLS, clientProvidedHostHeader=rp["Host"])
    else:
        del rec["additionalEventData"]["CipherSuite"]
    if error is not None:
        rec["errorCode"] = error  # "" is success, as some exports write it
        if error:
            rec["errorMessage"] = "Access Denied"
    rec.update(extra or {})
    return rec


def trail(name, seconds=0, params=None, error=None, who=None):
    """A CloudTrail management call (bare user agent, as cloudtrail.amazonaws.com writes it)."""
    rec = {
        "eventVersion": "1.11", "userIdentity": who or role("admin", "bob"),
        "eventTime": (START + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "cloudtrail.amazonaws.com", "eventName": name, "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.20", "userAgent": CLI, "requestParameters": params or {"name": "org-trail"},
        "responseElements": None, "requestID": str(uuid.uuid4()), "eventID": str(uuid.uuid4()), "readOnly": False,
        "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": ACCOUNT,
        "eventCategory": "Management", "tlsDetails": dict(TLS, clientProvidedHostHeader="cloudtrail.us-east-1.amazonaws.com"),
    }
    if error:
        rec["errorCode"] = error
    return rec


FULL_LOGGING = {"trailName": "org-trail", "eventSelectors": [
    {"readWriteType": "All", "includeManagementEvents": True, "excludeManagementEventSources": [],
     "dataResources": [{"type": "AWS::S3::Object", "values": ["arn:aws:s3"]}]}]}


def policy(statement):
    return {"bucketPolicy": {"Version": "2012-10-17", "Statement": [statement]}, "policy": ""}


def scanner_probes():
    """301 refused anonymous requests from three addresses, as internet
    scanners send them (curl, python-requests, bare Go client)."""
    out, t = [], 0
    for ip, n, agent in (("45.155.205.17", 150, "curl/8.5.0"), ("91.240.118.9", 120, "python-requests/2.31.0"),
                         ("5.188.206.44", 31, "Go-http-client/1.1")):
        for i in range(n):
            out.append(s3("GetObject", t, who=ANONYMOUS, bucket=f"corp-{['backup', 'data', 'logs'][i % 3]}",
                          key=[".env", "backup.sql", "config.json", "id_rsa"][i % 4], agent=agent, ip=ip,
                          error="AccessDenied"))
            t += 7
    return out


def stratus_client_side_encryption():
    """aws.impact.s3-ransomware-client-side-encryption: 51 objects downloaded,
    then each written back encrypted, then the note."""
    thief = role("app-backend", "i-0abc123def4567890")
    keys = [f"{a}-{b}.{ext}" for a, b, ext in zip(
        ["liable", "donated", "mayday", "blooper", "pueblo", "tantrum", "scary", "secret", "secluded", "babied",
         "ignition", "unfasten", "affirm"] * 4, ["june", "chewy", "ditto", "shape", "credit"] * 11,
        ["sql", "txt", "docx", "pdf", "png", "tar.gz"] * 9)][:51]
    out = [s3("ListObjects", 0, who=thief, bucket="victim-docs", agent="aws-sdk-go-v2/1.25.3 os/linux lang/go#1.22.1")]
    out += [s3("GetObject", 1 + i, who=thief, bucket="victim-docs", key=k, agent="aws-sdk-go-v2/1.25.3 os/linux lang/go#1.22.1")
            for i, k in enumerate(keys)]
    out += [s3("PutObject", 90 + i, who=thief, bucket="victim-docs", key=k, agent="aws-sdk-go-v2/1.25.3 os/linux lang/go#1.22.1")
            for i, k in enumerate(keys)]
    out.append(s3("PutObject", 200, who=thief, bucket="victim-docs", key="FILES-DELETED.txt",
                  agent="aws-sdk-go-v2/1.25.3 os/linux lang/go#1.22.1"))
    return out


def etl_job():
    """A job that reads raw/ and writes curated/ in the same bucket: other keys."""
    job = role("etl", "glue-run-42")
    out = [s3("GetObject", i, who=job, bucket="lake", key=f"raw/2026/11/26/part-{i:04d}.parquet") for i in range(60)]
    out += [s3("PutObject", 100 + i, who=job, bucket="lake", key=f"curated/2026/11/26/part-{i:04d}.parquet") for i in range(60)]
    return out


def batch_deletion_listing_keys():
    keys = [{"Key": f"exports/2026/f{i:04d}.csv"} for i in range(300)]
    return [s3("DeleteObjects", 0, who=user("mallory"), bucket="prod-data",
               params={"delete": {"Object": keys, "Quiet": "true"}})]


def batch_deletion_as_cloudtrail_logs_it():
    """A DeleteObjects of 150 objects since June 2025: the batch without its
    keys, and one DeleteObject event per object."""
    who = user("mallory")
    out = [s3("DeleteObjects", 0, who=who, bucket="prod-data", params={"delete": ""})]
    out += [s3("DeleteObject", 1, who=who, bucket="prod-data", key=f"exports/2026/f{i:04d}.csv") for i in range(150)]
    return out


SCENARIOS = [
    # (name, [files: [records]], config extra, {rule: expected alert count}, [rules that must stay quiet])
    ("bracketed tool agents on S3",
     [[s3("ListBuckets", 0, who=user("x1"), agent="curl/7.88.1"),
       s3("GetObject", 1, who=user("x2"), key="a.csv", agent="python-requests/2.31.0"),
       s3("GetBucketAcl", 2, who=user("x3"), agent="Go-http-client/1.1")]],
     "", {UA: 3}, []),
    ("bracketed SDK and console agents stay quiet",
     [[s3("GetObject", 0, key="a.csv"), s3("PutObject", 1, key="b.csv", agent="Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#5.10.213"),
       s3("GetObject", 2, key="c.csv", agent="S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.488")]],
     "", {}, [UA]),
    ("selectors restoring full logging",
     [[trail("PutEventSelectors", 0, params=FULL_LOGGING)]], "", {TRAIL_CHANGED: 1}, [NARROWED, S3_DATA_OFF, STOPPED]),
    ("selectors turning management events off (Stratus)",
     [[trail("PutEventSelectors", 0, params={"trailName": "org-trail", "eventSelectors": [
         {"readWriteType": "ReadOnly", "includeManagementEvents": False, "excludeManagementEventSources": [],
          "dataResources": [{"type": "AWS::S3::Object", "values": []}, {"type": "AWS::Lambda::Function", "values": []}]}]})]],
     "", {NARROWED: 1}, [S3_DATA_OFF, TRAIL_CHANGED]),
    ("advanced selectors logging management writes only",
     [[trail("PutEventSelectors", 0, params={"trailName": "org-trail", "advancedEventSelectors": [
         {"name": "writes", "fieldSelectors": [{"field": "eventCategory", "equals": ["Management"]},
                                               {"field": "readOnly", "equals": ["false"]}]},
         {"name": "s3", "fieldSelectors": [{"field": "eventCategory", "equals": ["Data"]},
                                           {"field": "resources.type", "equals": ["AWS::S3::Object"]}]}]})]],
     "", {NARROWED: 1}, [TRAIL_CHANGED]),
    ("UpdateTrail to a bucket elsewhere",
     [[trail("UpdateTrail", 0, params={"name": "org-trail", "s3BucketName": "exfil-logs-7"})]],
     "  trail_buckets: [org-cloudtrail-logs]\n", {NARROWED: 1}, [TRAIL_CHANGED]),
    ("UpdateTrail to the trail's own bucket, validation on",
     [[trail("UpdateTrail", 0, params={"name": "org-trail", "s3BucketName": "org-cloudtrail-logs",
                                       "enableLogFileValidation": True})]],
     "  trail_buckets: [org-cloudtrail-logs]\n", {TRAIL_CHANGED: 1}, [NARROWED]),
    ("refused StopLogging",
     [[trail("StopLogging", 0, error="AccessDenied")]], "", {REFUSED: 1}, [STOPPED]),
    ("StopLogging",
     [[trail("StopLogging", 0, params={"name": f"arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/org-trail"})]],
     "", {STOPPED: 1}, []),
    ("Insights turned off",
     [[trail("PutInsightSelectors", 0, params={"trailName": "org-trail", "insightSelectors": []})]],
     "", {INSIGHTS_OFF: 1}, [TRAIL_CHANGED]),
    ("a policy granting a foreign account: one alert",
     [[s3("PutBucketPolicy", 0, params=policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{FOREIGN}:root"},
                                               "Action": "s3:GetObject", "Resource": "arn:aws:s3:::prod-data/*"}))]],
     "", {POLICY_FOREIGN: 1}, [POLICY_CHANGED]),
    ("a public policy: one alert",
     [[s3("PutBucketPolicy", 0, params=policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                               "Resource": "arn:aws:s3:::prod-data/*"}))]],
     "", {POLICY_PUBLIC: 1}, [POLICY_CHANGED, POLICY_FOREIGN]),
    ("DeleteBucket with an empty errorCode",
     [[s3("DeleteBucket", 0, error="")]], "", {BUCKET_DELETED: 1}, []),
    ("old records never carry tlsDetails",
     [[s3("GetObject", 0, key="a.csv", version="1.05", tls=False)]], "", {}, [PLAINTEXT]),
    ("a cipher suite without tlsDetails is TLS",
     [[dict(s3("GetObject", 0, key="a.csv"), tlsDetails=None)]], "", {}, [PLAINTEXT]),
    ("plain HTTP in a recent record",
     [[s3("GetObject", 0, key="a.csv", tls=False)]], "", {PLAINTEXT: 1}, []),
    ("301 refused anonymous scanner requests",
     # the two addresses past 50 in an hour: an alert each, and the day's summary
     [scanner_probes()], "", {ANON_SCANNING: 4}, [UA, PLAINTEXT, DENIED_SPIKE, ENUMERATION, ANON_ACCESS]),
    ("anonymous downloads from a bucket that is not public on purpose",
     [[s3("GetObject", 30 * i, who=ANONYMOUS, bucket="prod-exports", key=f"customers-{i}.csv", agent="curl/8.5.0",
          ip="45.155.205.17") for i in range(40)]],
     "", {ANON_ACCESS: 2}, [UA]),
    ("anonymous downloads from a website bucket",
     [[s3("GetObject", 30 * i, who=ANONYMOUS, bucket="www-example", key="index.html", agent="Mozilla/5.0",
          ip="81.2.69.14") for i in range(40)]],
     "  public_buckets: [www-example]\n", {}, [ANON_ACCESS]),
    ("Stratus client-side encryption: objects read, rewritten, a note",
     # 51 objects: the alert at 20, the rest in the throttle's summary
     [stratus_client_side_encryption()], "", {REWRITTEN: 2, RANSOM_NOTE: 1}, []),
    ("an ETL job reading raw/ and writing curated/",
     [etl_job()], "", {}, [REWRITTEN]),
    ("ordinary names stay quiet",
     [[s3("PutObject", i, key=k) for i, k in enumerate(["config/widget.json", "README.md", "ops/restore.sh",
                                                          "dist/README.txt", "docs/backup-restore-guide.txt"])]],
     "", {}, [RANSOM_NOTE]),
    ("a batch delete that lists 300 keys",
     [batch_deletion_listing_keys()], "", {MASS_DELETION: 1}, []),
    ("a batch delete as CloudTrail logs it since June 2025",
     [batch_deletion_as_cloudtrail_logs_it()], "", {MASS_DELETION: 1}, []),
]


def write_scenario(d, files):
    paths = []
    for i, recs in enumerate(files):
        paths.append(write_log(os.path.join(d, "AWSLogs", ACCOUNT, "CloudTrail", "us-east-1", "2026", "11", "26",
                                            f"{ACCOUNT}_CloudTrail_us-east-1_20261126T10{i:02d}Z_s{i}.json.gz"), recs))
    return paths


def run_scenario(binary, files, config_extra):
    with TempDir() as d:
        write_scenario(d, files)
        cfg = os.path.join(d, "tw.yaml")
        with open(cfg, "w") as f:
            f.write(CONFIG + config_extra)
        p = subprocess.run([binary, "replay", "-c", cfg, os.path.join(d, "AWSLogs")], capture_output=True, text=True)
    return p


def by_rule(alerts):
    out = {}
    for a in alerts:
        out[a["rule"]] = out.get(a["rule"], 0) + 1
    return out


class RealShapes(unittest.TestCase):
    def check(self, files, config_extra, want, quiet):
        p = run_scenario(TW, files, config_extra)
        self.assertEqual(p.returncode, 0, p.stderr)
        got = by_rule(alerts_of(p.stdout))
        for rule, n in want.items():
            self.assertEqual(got.get(rule, 0), n, f"{rule}: {got}")
        for rule in quiet:
            self.assertNotIn(rule, got, got)
        return alerts_of(p.stdout)

    def test_reasons_say_what_was_turned_off(self):
        alerts = self.check([[trail("PutEventSelectors", 0, params={"trailName": "org-trail", "eventSelectors": [
            {"readWriteType": "All", "includeManagementEvents": False, "dataResources": []}]})]], "", {NARROWED: 1}, [])
        self.assertEqual(alerts[0]["reasons"], ["management events are no longer logged", "S3 data events are not logged"])
        self.assertEqual(alerts[0]["severity"], "critical")

    def test_covering_alert_names_the_covered_rule(self):
        alerts = self.check(SCENARIOS[10][1], "", {POLICY_FOREIGN: 1}, [POLICY_CHANGED])
        self.assertEqual(alerts[0]["covers"], [{"rule": POLICY_CHANGED, "title": "S3 bucket policy changed"}])

    def test_anonymous_write_says_so(self):
        alerts = self.check([[s3("PutObject", 0, who=ANONYMOUS, bucket="drop", key="x.php", agent="curl/8.5.0")]],
                            "", {ANON_ACCESS: 1}, [UA])
        self.assertEqual(alerts[0]["reasons"], ["anonymous write (PutObject): anyone on the internet can change this bucket"])

    def test_rewrite_across_replay_order(self):
        # Replay goes through one account's day, then the next account's
        # from its start: the second timeline lies hours behind the first.
        # The memory of read keys must follow each one.
        late = [s3("GetObject", 12 * 3600 + i, who=role("reporting", "r-1", "222233334444"), bucket="reports",
                   key=f"r/{i}.csv") for i in range(400)]
        thief = role("app", "s-1")
        early = [s3("GetObject", i, who=thief, bucket="victim", key=f"k{i}.docx") for i in range(25)]
        early += [s3("GetObject", 30 + i, who=thief, bucket="victim", key=f"decoy/{i}.docx") for i in range(300)]
        early += [s3("PutObject", 400 + i, who=thief, bucket="victim", key=f"k{i}.docx") for i in range(25)]
        with TempDir() as d:
            write_log(os.path.join(d, "AWSLogs", "222233334444", "CloudTrail", "us-east-1", "2026", "11", "26", "a.json.gz"), late)
            write_log(os.path.join(d, "AWSLogs", ACCOUNT, "CloudTrail", "us-east-1", "2026", "11", "26", "b.json.gz"), early)
            p = tw("replay", d)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(by_rule(alerts_of(p.stdout)).get(REWRITTEN), 1, p.stdout)

    def test_iac_exclusion_is_by_whole_principal_of_our_accounts(self):
        ci = lambda account: role("terraform-deployer", "gha-7741", account)
        change = lambda who, ip: s3("PutBucketPolicy", 0, who=who, ip=ip, params=policy(
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/app"}, "Action": "s3:GetObject"}))
        iac = "  iac_principals: ['arn:aws:sts::*:assumed-role/terraform-deployer/gha-*']\n"
        pinned = ("  iac_network_principals: ['arn:aws:sts::*:assumed-role/terraform-deployer/*']\n"
                  "  iac_networks: [10.20.0.0/16]\n")
        self.check([[change(ci(ACCOUNT), "10.20.1.5")]], iac, {}, [POLICY_CHANGED])
        # the same role name in an account that is not ours is not the pipeline
        self.check([[change(ci(FOREIGN), "10.20.1.5")]], iac, {POLICY_CHANGED: 1}, [])
        # a pinned pipeline counts only from its network
        self.check([[change(ci(ACCOUNT), "10.20.1.5")]], pinned, {}, [POLICY_CHANGED])
        self.check([[change(ci(ACCOUNT), "185.220.101.7")]], pinned, {POLICY_CHANGED: 1}, [])

    def test_principal_lists_refuse_patterns_an_attacker_can_fit(self):
        with TempDir() as d:
            cfg = os.path.join(d, "tw.yaml")
            with open(cfg, "w") as f:
                f.write("lists:\n  iac_principals:\n    - '*terraform*'\n    - 'arn:aws:sts::*:assumed-role/*/deploy'\n"
                        "    - 'arn:aws:sts::*:assumed-role/deployer/gha-*'\n  iac_networks: [10.20.0.0/33]\n"
                        "  scanner_principals:\n    - 'arn:aws:iam::12345:role/scanner'\n"
                        "    - 'arn:aws:iam::111122223333:role/scanner'\n"
                        "  org_accounts: ['111122223333', '11112222333']\n")
            p = tw("check", "-c", cfg)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r"tw\.yaml:3:7: lists\.iac_principals: '\*terraform\*' must name whole principals")
        self.assertRegex(p.stderr, r"tw\.yaml:4:7: lists\.iac_principals: 'arn:aws:sts::\*:assumed-role/\*/deploy' must name")
        self.assertNotIn("gha-*", p.stderr)
        self.assertRegex(p.stderr, r"tw\.yaml:6:18: lists\.iac_networks: '10\.20\.0\.0/33' is not an IPv4 or IPv6 network")
        # an account is 12 digits (or *)
        self.assertRegex(p.stderr, r"tw\.yaml:8:7: lists\.scanner_principals: 'arn:aws:iam::12345:role/scanner' must name")
        self.assertNotIn("111122223333:role/scanner", p.stderr)
        self.assertRegex(p.stderr, r"tw\.yaml:10:34: lists\.org_accounts: '11112222333' is not an AWS account id")
        self.assertNotIn("'111122223333' is not", p.stderr)

    def test_trail_buckets_default_to_the_sources(self):
        narrowing = [[trail("UpdateTrail", 0, params={"name": "org-trail", "s3BucketName": "org-cloudtrail-logs"})]]
        with TempDir() as d:
            write_scenario(d, narrowing)
            cfg = os.path.join(d, "tw.yaml")
            with open(cfg, "w") as f:
                f.write("sources:\n  - type: s3\n    bucket: org-cloudtrail-logs\n    region: us-east-1\n")
            p = tw("replay", "-c", cfg, os.path.join(d, "AWSLogs"))
            moved = tw("replay", os.path.join(d, "AWSLogs"))
        self.assertEqual(by_rule(alerts_of(p.stdout)), {TRAIL_CHANGED: 1}, p.stderr)
        # without sources the list is empty: any new destination alerts
        self.assertEqual(by_rule(alerts_of(moved.stdout)).get(NARROWED), 1)


def _make(name, files, extra, want, quiet):
    def test(self):
        self.check(files, extra, want, quiet)
    test.__doc__ = name
    return test


for _i, (_name, _files, _extra, _want, _quiet) in enumerate(SCENARIOS):
    setattr(RealShapes, f"test_scenario_{_i:02d}", _make(_name, _files, _extra, _want, _quiet))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        for name, files, extra, want, quiet in SCENARIOS:
            got = by_rule(alerts_of(run_scenario(sys.argv[2], files, extra).stdout))
            print(f"{name}: {sum(got.values())} alerts {json.dumps(got)}")
        sys.exit(0)
    unittest.main()
