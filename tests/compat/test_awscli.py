"""The real ``aws`` CLI (``aws kms ...``) against a running server, as a user would type it from AWS's docs.

Every call is a subprocess (~0.5-1 s), so the module keeps to about 25 CLI invocations per backend and
does set-up and cross-checks with boto3.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from tests.integration.test_keys_e2e import error_of
from tests.support.awscli import AwsRunner, aws_runner
from tests.support.servers import TEST_ACCOUNT, TEST_REGION, ServerProcess

ERROR_LINE = re.compile(
    r"An error occurred \((?P<code>\w+)\) when calling the (?P<op>\w+) operation: ?(?P<msg>.*)"
)

Aws = AwsRunner


@pytest.fixture(scope="module")
def aws(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Aws:
    return aws_runner(server.url, tmp_path_factory.mktemp("awscli"))


def aws_json(aws: Aws, *args: str) -> dict:
    out = aws(*args, "--output", "json").stdout
    return json.loads(out) if out.strip() else {}


def aws_error(aws: Aws, *args: str, **env: str) -> tuple[str, str, str]:
    """-> (error code, operation, message) of a call that must fail the way the CLI reports service errors."""
    result = aws(*args, check=False, **env)
    # CLI v2 exits 254 on a service error, v1 exits 255
    assert result.returncode in (254, 255), (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    match = ERROR_LINE.search(result.stderr)
    assert match, result.stderr
    return match["code"], match["op"], match["msg"].strip()


@pytest.fixture(scope="module")
def key(aws: Aws) -> dict:
    md = aws_json(aws, "kms", "create-key", "--description", "created by the aws cli")["KeyMetadata"]
    return md


def test_create_key_and_describe_key(aws: Aws, kms, key: dict) -> None:
    assert key["AWSAccountId"] == TEST_ACCOUNT
    assert key["Arn"] == f"arn:aws:kms:{TEST_REGION}:{TEST_ACCOUNT}:key/{key['KeyId']}"
    assert key["Description"] == "created by the aws cli"
    assert key["KeyState"] == "Enabled" and key["Enabled"] is True
    assert key["KeyUsage"] == "ENCRYPT_DECRYPT" and key["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert isinstance(key["CreationDate"], (int, float))

    described = aws_json(aws, "kms", "describe-key", "--key-id", key["Arn"])["KeyMetadata"]
    assert described == kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"] | {
        "CreationDate": described["CreationDate"]
    }
    assert described["KeyId"] == key["KeyId"] and described["CreationDate"] == key["CreationDate"]


def test_list_keys_pagination(aws: Aws, kms, key: dict) -> None:
    for _ in range(3):
        kms.create_key()
    expected = [k["KeyId"] for page in kms.get_paginator("list_keys").paginate() for k in page["Keys"]]
    assert len(expected) >= 4 and key["KeyId"] in expected

    # auto-pagination: --page-size 2 makes the CLI follow NextMarker over several requests
    everything = aws_json(aws, "kms", "list-keys", "--page-size", "2")
    assert [k["KeyId"] for k in everything["Keys"]] == expected
    assert "NextToken" not in everything and "NextMarker" not in everything
    assert all(k["KeyArn"].endswith(f":key/{k['KeyId']}") for k in everything["Keys"])

    # --max-items stops early and hands out a NextToken that --starting-token resumes from
    first = aws_json(aws, "kms", "list-keys", "--page-size", "2", "--max-items", "3")
    assert [k["KeyId"] for k in first["Keys"]] == expected[:3]
    assert first["NextToken"]
    rest = aws_json(aws, "kms", "list-keys", "--page-size", "2", "--starting-token", first["NextToken"])
    assert [k["KeyId"] for k in rest["Keys"]] == expected[3:]


def test_alias_and_encrypt_decrypt_pipeline(aws: Aws, key: dict) -> None:
    workdir: Path = aws.workdir  # type: ignore[attr-defined]
    created = aws("kms", "create-alias", "--alias-name", "alias/cli-test", "--target-key-id", key["KeyId"])
    assert created.stdout == ""
    aliases = aws_json(aws, "kms", "list-aliases", "--key-id", key["KeyId"])["Aliases"]
    assert [(a["AliasName"], a["TargetKeyId"]) for a in aliases] == [("alias/cli-test", key["KeyId"])]
    assert aliases[0]["AliasArn"] == f"arn:aws:kms:{TEST_REGION}:{TEST_ACCOUNT}:alias/cli-test"

    plaintext = b"secret \x00\xff\n bytes" * 10
    (workdir / "plaintext.bin").write_bytes(plaintext)
    # aws kms encrypt ... --query CiphertextBlob --output text | base64 --decode > plaintext.enc
    encoded = aws(
        "kms",
        "encrypt",
        "--key-id",
        "alias/cli-test",
        "--plaintext",
        "fileb://plaintext.bin",
        "--encryption-context",
        "k=v,k2=v2",
        "--query",
        "CiphertextBlob",
        "--output",
        "text",
    ).stdout
    (workdir / "plaintext.enc").write_bytes(base64.b64decode(encoded.strip(), validate=True))

    # aws kms decrypt --ciphertext-blob fileb://plaintext.enc --query Plaintext --output text | base64 -d
    decoded = aws(
        "kms",
        "decrypt",
        "--ciphertext-blob",
        "fileb://plaintext.enc",
        "--encryption-context",
        "k2=v2,k=v",
        "--query",
        "Plaintext",
        "--output",
        "text",
    ).stdout
    assert base64.b64decode(decoded.strip(), validate=True) == plaintext

    # the context is bound to the ciphertext
    code, op, _ = aws_error(aws, "kms", "decrypt", "--ciphertext-blob", "fileb://plaintext.enc")
    assert (code, op) == ("InvalidCiphertextException", "Decrypt")


def test_generate_data_key_and_random(aws: Aws, kms, key: dict) -> None:
    out = aws_json(aws, "kms", "generate-data-key", "--key-id", key["KeyId"], "--key-spec", "AES_256")
    assert out["KeyId"] == key["Arn"]
    data_key = base64.b64decode(out["Plaintext"], validate=True)
    assert len(data_key) == 32
    assert kms.decrypt(CiphertextBlob=base64.b64decode(out["CiphertextBlob"]))["Plaintext"] == data_key

    random = aws_json(aws, "kms", "generate-random", "--number-of-bytes", "16")
    assert len(base64.b64decode(random["Plaintext"], validate=True)) == 16


def test_rotation(aws: Aws, kms) -> None:
    md = kms.create_key()["KeyMetadata"]
    key_id, arn = md["KeyId"], md["Arn"]
    assert aws("kms", "enable-key-rotation", "--key-id", key_id).stdout == ""
    status = aws_json(aws, "kms", "get-key-rotation-status", "--key-id", key_id)
    assert status["KeyRotationEnabled"] is True
    assert status["KeyId"] == arn and status["RotationPeriodInDays"] == 365

    assert aws_json(aws, "kms", "rotate-key-on-demand", "--key-id", key_id) == {"KeyId": arn}
    rotations = aws_json(aws, "kms", "list-key-rotations", "--key-id", key_id)["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["ON_DEMAND"]
    assert rotations[0]["KeyId"] == arn and isinstance(rotations[0]["RotationDate"], (int, float))
    current = kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert rotations[0]["KeyMaterialId"] == current


def test_tags(aws: Aws, kms) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    tags_arg = ["TagKey=env,TagValue=prod", "TagKey=team,TagValue=crypto"]
    assert aws("kms", "tag-resource", "--key-id", key_id, "--tags", *tags_arg).stdout == ""
    tags = aws_json(aws, "kms", "list-resource-tags", "--key-id", key_id)
    assert sorted((t["TagKey"], t["TagValue"]) for t in tags["Tags"]) == [("env", "prod"), ("team", "crypto")]
    assert tags.get("Truncated") in (False, None)
    assert aws("kms", "untag-resource", "--key-id", key_id, "--tag-keys", "team").stdout == ""
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "env", "TagValue": "prod"}]


def test_disable_enable_and_deletion(aws: Aws, kms) -> None:
    md = kms.create_key()["KeyMetadata"]
    key_id, arn = md["KeyId"], md["Arn"]
    (aws.workdir / "small.bin").write_bytes(b"x")  # type: ignore[attr-defined]

    assert aws("kms", "disable-key", "--key-id", key_id).stdout == ""
    code, op, msg = aws_error(aws, "kms", "encrypt", "--key-id", key_id, "--plaintext", "fileb://small.bin")
    assert (code, op, msg) == ("DisabledException", "Encrypt", f"{arn} is disabled.")
    assert aws("kms", "enable-key", "--key-id", key_id).stdout == ""
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"

    scheduled = aws_json(
        aws, "kms", "schedule-key-deletion", "--key-id", key_id, "--pending-window-in-days", "7"
    )
    assert scheduled["KeyId"] == arn and scheduled["KeyState"] == "PendingDeletion"
    assert scheduled["PendingWindowInDays"] == 7 and isinstance(scheduled["DeletionDate"], (int, float))
    assert aws_json(aws, "kms", "cancel-key-deletion", "--key-id", key_id) == {"KeyId": arn}
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"


def test_errors(aws: Aws, kms) -> None:
    missing = "alias/does-not-exist"
    code, op, msg = aws_error(aws, "kms", "describe-key", "--key-id", missing)
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId=missing)
    assert (code, op, msg) == ("NotFoundException", "DescribeKey", error_of(e)[1])

    code, op, msg = aws_error(aws, "kms", "list-keys", AWS_SECRET_ACCESS_KEY="wrong-secret")
    assert (code, op) == ("InvalidSignatureException", "ListKeys")
    assert msg.startswith("The request signature we calculated does not match the signature you provided.")
