#!/usr/bin/env python3
"""The Bucket e2e scenario with a real S3 SDK (boto3) and plain HTTP (urllib) for anonymous,
presigned, CORS and website requests. One phase per run (argv[1]); the last stdout line is
{"result": ...}. Connection from the environment: S3_ENDPOINT (http://ip:port of the gateway),
S3_REGION, S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; WEB_ENDPOINT and WEB_HOST for
the website phase."""

import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def s3(key_id=None, secret=None, attempts=1):
    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT"],
        region_name=os.environ["S3_REGION"],
        aws_access_key_id=key_id or os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or os.environ["AWS_SECRET_ACCESS_KEY"],
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": attempts, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def http(method, url, headers=None, body=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def code(e):
    return e.response.get("Error", {}).get("Code")


def crud():
    c = s3()
    b = os.environ["S3_BUCKET"]
    out = {}
    # Read-after-write and overwrite: every PUT is visible at once, complete.
    for i in range(20):
        body = f"version {i}".encode()
        c.put_object(Bucket=b, Key="raw/obj", Body=body)
        got = c.get_object(Bucket=b, Key="raw/obj")["Body"].read()
        assert got == body, (i, got)
    out["read_after_write"] = 20
    for k in ["a/1.txt", "a/2.txt", "b/3.txt"]:
        c.put_object(Bucket=b, Key=k, Body=k.encode(), ContentType="text/plain")
    listed = [o["Key"] for o in c.list_objects_v2(Bucket=b, Prefix="a/")["Contents"]]
    assert listed == ["a/1.txt", "a/2.txt"], listed
    folders = [p["Prefix"] for p in c.list_objects_v2(Bucket=b, Delimiter="/").get("CommonPrefixes", [])]
    assert "a/" in folders and "b/" in folders, folders
    out["list"] = listed
    # Delete visibility: gone at once.
    c.delete_object(Bucket=b, Key="b/3.txt")
    try:
        c.get_object(Bucket=b, Key="b/3.txt")
        raise AssertionError("deleted object still readable")
    except ClientError as e:
        assert code(e) == "NoSuchKey", code(e)
    out["delete_visible"] = True
    # Multipart: 4 parts of 5 MiB + a tail, checked by digest.
    part = os.urandom(5 * 1024 * 1024)
    up = c.create_multipart_upload(Bucket=b, Key="big/blob")
    parts, digest = [], hashlib.sha256()
    t0 = time.time()
    for n in range(1, 6):
        data = part if n < 5 else part[: 1024 * 1024]
        digest.update(data)
        r = c.upload_part(Bucket=b, Key="big/blob", PartNumber=n, UploadId=up["UploadId"], Body=data)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    c.complete_multipart_upload(Bucket=b, Key="big/blob", UploadId=up["UploadId"], MultipartUpload={"Parts": parts})
    got = c.get_object(Bucket=b, Key="big/blob")["Body"].read()
    assert hashlib.sha256(got).hexdigest() == digest.hexdigest()
    out["multipart_bytes"] = len(got)
    out["multipart_seconds"] = round(time.time() - t0, 2)
    # Presigned GET works without credentials, and expires.
    url = c.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "a/1.txt"}, ExpiresIn=60)
    status, _, body = http("GET", url)
    assert status == 200 and body == b"a/1.txt", (status, body)
    out["presigned"] = status
    # SSE would be ignored by Garage: the gateway refuses it.
    try:
        c.put_object(Bucket=b, Key="secret", Body=b"x", ServerSideEncryption="AES256")
        raise AssertionError("SSE accepted")
    except ClientError as e:
        assert code(e) == "NotImplemented", code(e)
        out["sse_refused"] = e.response["Error"].get("Message", "")
    try:
        c.head_object(Bucket=b, Key="secret")
        raise AssertionError("refused SSE object was stored")
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    return out


def cors():
    b = os.environ["S3_BUCKET"]
    url = f"{os.environ['S3_ENDPOINT']}/{b}/a/1.txt"
    ok_status, ok_headers, _ = http("OPTIONS", url, {"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"})
    bad_status, bad_headers, _ = http("OPTIONS", url, {"Origin": "https://evil.example.net", "Access-Control-Request-Method": "GET"})
    lower = {k.lower(): v for k, v in ok_headers.items()}
    assert ok_status == 200, (ok_status, ok_headers)
    assert lower.get("access-control-allow-origin") in ("https://app.example.com", "*"), lower
    assert bad_status == 403, (bad_status, bad_headers)
    return {"allowed": ok_status, "allow_origin": lower.get("access-control-allow-origin"), "refused": bad_status}


def readonly():
    c = s3(os.environ["RO_KEY_ID"], os.environ["RO_SECRET"])
    b = os.environ["S3_BUCKET"]
    got = c.get_object(Bucket=b, Key="a/1.txt")["Body"].read()
    assert got == b"a/1.txt"
    try:
        c.put_object(Bucket=b, Key="ro-write", Body=b"x")
        raise AssertionError("read-only key wrote")
    except ClientError as e:
        assert code(e) == "AccessDenied", code(e)
    return {"read": True, "write": "AccessDenied"}


def anonymous():
    """argv: method key expected_status [referer]"""
    method, key, expected = sys.argv[2], sys.argv[3], int(sys.argv[4])
    headers = {}
    if len(sys.argv) > 5:
        headers["Referer"] = sys.argv[5]
    url = f"{os.environ['S3_ENDPOINT']}/{os.environ['S3_BUCKET']}/{key}"
    body = b"anonymous" if method == "PUT" else None
    status, _, data = http(method, url, headers, body)
    assert status == expected, (status, data[:300])
    return {"status": status}


def quota():
    c = s3()
    b = os.environ["S3_BUCKET"]
    limit = int(sys.argv[2])
    written = 0
    for i in range(limit + 5):
        try:
            c.put_object(Bucket=b, Key=f"q/{i}", Body=b"q")
            written += 1
        except ClientError as e:
            return {"written": written, "refused": code(e), "status": e.response["ResponseMetadata"]["HTTPStatusCode"]}
    raise AssertionError(f"quota never refused ({written} written)")


def website():
    c = s3()
    b = os.environ["S3_BUCKET"]
    c.put_object(Bucket=b, Key="index.html", Body=b"<h1>home</h1>", ContentType="text/html")
    c.put_object(Bucket=b, Key="404.html", Body=b"<h1>not here</h1>", ContentType="text/html")
    host = os.environ["WEB_HOST"]
    web = os.environ["WEB_ENDPOINT"]
    s1, _, home = http("GET", f"{web}/", {"Host": host})
    s2, _, missing = http("GET", f"{web}/nope.html", {"Host": host})
    assert s1 == 200 and home == b"<h1>home</h1>", (s1, home)
    assert s2 == 404 and missing == b"<h1>not here</h1>", (s2, missing)
    return {"index": s1, "error_document": s2}


def get():
    """argv: key expected_body — read with the bucket's own key."""
    got = s3().get_object(Bucket=os.environ["S3_BUCKET"], Key=sys.argv[2])["Body"].read()
    assert got == sys.argv[3].encode(), got
    return {"key": sys.argv[2], "bytes": len(got)}


def survive():
    """Writes and reads through the gateway for argv[2] seconds; every operation must succeed
    (with the SDK's standard retries, as applications run it)."""
    # Until Garage's peers notice the frozen node (ping timeouts), some requests stall and the
    # gateway answers a retryable 503: the SDK's standard retries ride over that.
    c = s3(attempts=10)
    b = os.environ["S3_BUCKET"]
    end = time.time() + float(sys.argv[2])
    n, slowest = 0, 0.0
    while time.time() < end:
        t0 = time.time()
        body = os.urandom(4096)
        c.put_object(Bucket=b, Key=f"ha/{n}", Body=body)
        assert c.get_object(Bucket=b, Key=f"ha/{n}")["Body"].read() == body
        slowest = max(slowest, time.time() - t0)
        n += 1
    return {"ops": n, "slowest_seconds": round(slowest, 3)}


PHASES = {f.__name__: f for f in [crud, cors, readonly, anonymous, quota, website, get, survive]}

if __name__ == "__main__":
    result = PHASES[sys.argv[1]]()
    print(json.dumps({"result": result}))
