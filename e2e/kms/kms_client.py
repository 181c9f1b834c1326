#!/usr/bin/env python3
"""The KMS e2e scenario with a real AWS SDK (boto3), run by e2e/suite/tests/kms.rs.

Every call goes over TLS to the KMS Service, verified against the KMS CA for the Service's DNS
name (the test host cannot resolve cluster names, so that one name is mapped to the reachable
address; the certificate is still checked for the name). Prints one `step: detail` line per
step and a final JSON line `{"result": {...}}`; exits non-zero on the first failed expectation.

Phases (argv[1]):
  basic <alias>         encrypt/decrypt with context, data key envelope, describe/list,
                        disable -> refused -> enable, prints a ciphertext for `rotated`
  rotated <alias> <b64> the old ciphertext still decrypts after rotation; new ones use v2
  delete <alias>        schedule deletion (7 days) -> refused -> cancel -> disabled -> enable
  foreign <key-arn>     another namespace's access key cannot use the key
"""

import base64
import json
import os
import socket
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HOST = os.environ["KMS_HOST"]
IP, PORT = os.environ["KMS_ADDR"].rsplit(":", 1)
_resolve = socket.getaddrinfo


def _mapped(host, port, *args, **kwargs):
    if host == HOST:
        return _resolve(IP, port, *args, **kwargs)
    return _resolve(host, port, *args, **kwargs)


socket.getaddrinfo = _mapped

kms = boto3.client(
    "kms",
    endpoint_url=f"https://{HOST}:{PORT}",
    region_name=os.environ.get("KMS_REGION", "local"),
    verify=os.environ["KMS_CA_FILE"],
    aws_access_key_id=os.environ["KMS_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["KMS_SECRET_ACCESS_KEY"],
    config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=5),
)
result = {}


def step(name, detail):
    print(f"{name}: {detail}", flush=True)


def error_code(fn):
    try:
        fn()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def expect_error(name, code, fn):
    got = error_code(fn)
    if got != code:
        sys.exit(f"{name}: expected {code}, got {got}")
    step(name, f"refused with {code}")


def until(name, check, timeout=30.0):
    """Polls `check` until true; returns seconds taken (watch propagation across replicas)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            sys.exit(f"{name}: not within {timeout}s")
        time.sleep(0.05)
    took = time.monotonic() - start
    step(name, f"after {took:.2f}s")
    return took


def basic(alias):
    ctx = {"order": "42", "tenant": "shop"}
    enc = kms.encrypt(KeyId=alias, Plaintext=b"card 4111", EncryptionContext=ctx)
    blob = enc["CiphertextBlob"]
    dec = kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)
    assert dec["Plaintext"] == b"card 4111", dec
    assert dec["KeyId"] == enc["KeyId"], (dec["KeyId"], enc["KeyId"])
    step("encrypt/decrypt with context", f"{len(blob)}-byte ciphertext under {enc['KeyId']}")
    expect_error("decrypt with another context", "InvalidCiphertextException",
                 lambda: kms.decrypt(CiphertextBlob=blob, EncryptionContext={"order": "43", "tenant": "shop"}))
    big = kms.encrypt(KeyId=alias, Plaintext=os.urandom(4096))
    assert kms.decrypt(CiphertextBlob=big["CiphertextBlob"])["Plaintext"]
    step("4096-byte plaintext", "encrypted and decrypted")

    dk = kms.generate_data_key(KeyId=alias, KeySpec="AES_256", EncryptionContext={"file": "report.csv"})
    data = b"id,amount\n1,9.99\n" * 1000
    nonce = os.urandom(12)
    sealed = AESGCM(dk["Plaintext"]).encrypt(nonce, data, None)
    stored_key = dk["CiphertextBlob"]  # kept beside the data; the plaintext key is dropped
    del dk
    back = kms.decrypt(CiphertextBlob=stored_key, EncryptionContext={"file": "report.csv"})
    assert AESGCM(back["Plaintext"]).decrypt(nonce, sealed, None) == data
    step("envelope encryption", f"{len(data)} bytes encrypted locally, data key decrypted by the KMS")
    np = kms.generate_data_key_without_plaintext(KeyId=alias, NumberOfBytes=32)
    assert "Plaintext" not in np and np["CiphertextBlob"]
    step("data key without plaintext", "ok")

    meta = kms.describe_key(KeyId=alias)["KeyMetadata"]
    assert meta["KeyState"] == "Enabled" and meta["KeyUsage"] == "ENCRYPT_DECRYPT", meta
    keys = [k["KeyId"] for k in kms.list_keys()["Keys"]]
    assert meta["KeyId"] in keys, keys
    aliases = [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
    assert alias in aliases, aliases
    rot = kms.get_key_rotation_status(KeyId=alias)
    step("describe/list/rotation status", f"{meta['KeyId']} {meta['KeyState']}, rotation {rot['KeyRotationEnabled']}")
    result["key_id"] = meta["KeyId"]
    result["arn"] = meta["Arn"]

    kms.disable_key(KeyId=alias)
    result["disable_seconds"] = until("disable reaches the replicas",
                                      lambda: error_code(lambda: kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)) == "DisabledException")
    expect_error("encrypt with a disabled key", "DisabledException", lambda: kms.encrypt(KeyId=alias, Plaintext=b"x"))
    kms.enable_key(KeyId=alias)
    result["enable_seconds"] = until("enable reaches the replicas",
                                     lambda: error_code(lambda: kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)) is None)
    result["ciphertext"] = base64.b64encode(blob).decode()


def rotated(alias, old_b64):
    old = base64.b64decode(old_b64)
    ctx = {"order": "42", "tenant": "shop"}
    assert kms.decrypt(CiphertextBlob=old, EncryptionContext=ctx)["Plaintext"] == b"card 4111"
    new = kms.encrypt(KeyId=alias, Plaintext=b"after rotation")["CiphertextBlob"]
    # The blob names its key version (bytes 17..21, big-endian).
    result["old_version"] = int.from_bytes(old[17:21], "big")
    result["new_version"] = int.from_bytes(new[17:21], "big")
    assert result["new_version"] > result["old_version"], result
    assert kms.decrypt(CiphertextBlob=new)["Plaintext"] == b"after rotation"
    step("rotation", f"old ciphertext (v{result['old_version']}) still decrypts, new ones use v{result['new_version']}")


def delete(alias):
    key_id = kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"]
    r = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert r["KeyState"] == "PendingDeletion", r
    until("pending deletion reaches the replicas",
          lambda: kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion")
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    step("scheduled deletion", f"deletion date {meta.get('DeletionDate')}")
    expect_error("encrypt with a key pending deletion", "KMSInvalidStateException",
                 lambda: kms.encrypt(KeyId=key_id, Plaintext=b"x"))
    kms.cancel_key_deletion(KeyId=key_id)
    until("cancelled deletion: the key is back, disabled",
          lambda: kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled")
    kms.enable_key(KeyId=key_id)
    until("enabled again", lambda: error_code(lambda: kms.encrypt(KeyId=key_id, Plaintext=b"x")) is None)
    result["key_id"] = key_id


def foreign(arn):
    expect_error("another namespace's key", "NotFoundException", lambda: kms.encrypt(KeyId=arn, Plaintext=b"x"))
    assert all(k["KeyArn"] != arn for k in kms.list_keys()["Keys"])
    step("another namespace's key", "not listed")


def main():
    phase = sys.argv[1]
    {"basic": basic, "rotated": rotated, "delete": delete, "foreign": foreign}[phase](*sys.argv[2:])
    print(json.dumps({"result": result}), flush=True)


if __name__ == "__main__":
    main()
