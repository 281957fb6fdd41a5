"""The audit log end to end: one CloudTrail record per request (allowed, denied, invalid, not
authenticated), LookupEvents with boto3 and the aws CLI, GetKeyLastUsage, service events, verification,
and a scan of everything recorded in the module for the secrets the module used."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson
import pytest
from botocore.exceptions import ClientError
from tests.integration.audit_support import (
    audit_deployment,
    audited,
    audited_server,
    by_request,
    client,
    db_events,
    file_events,
    raw_log_bytes,
    secret_credential,
)
from tests.support.servers import OTHER_ACCOUNT, TEST_ACCOUNT, TEST_REGION, Deployment, ServerProcess

__all__ = ["audited", "audited_server"]

AWS = Path(sys.executable).parent / "aws"
SECRETS: list[bytes] = []  # every secret value this module sends or receives


def remember(*values: bytes | str) -> None:
    for value in values:
        raw = value.encode() if isinstance(value, str) else value
        SECRETS.append(raw)


@pytest.fixture(scope="module")
def cred(audited: Deployment) -> tuple[str, str]:
    access_key, secret = secret_credential(audited)
    remember(secret)
    return access_key, secret


@pytest.fixture(scope="module")
def kms(audited_server: ServerProcess, cred: tuple[str, str]) -> Any:
    return client(audited_server.url, *cred)


@pytest.fixture(scope="module")
def kms_nv(audited_server: ServerProcess, cred: tuple[str, str]) -> Any:
    return client(audited_server.url, *cred, validate=False)


@pytest.fixture(scope="module")
def key(kms: Any) -> dict[str, Any]:
    md: dict[str, Any] = kms.create_key(Description="audited key")["KeyMetadata"]
    return md


def rid(response: dict[str, Any]) -> str:
    return str(response["ResponseMetadata"]["RequestId"])


def error_rid(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    response = excinfo.value.response
    return response["Error"]["Code"], str(response["ResponseMetadata"]["RequestId"])


def one_event(dep: Deployment, request_id: str) -> dict[str, Any]:
    found = by_request(db_events(dep)).get(request_id, [])
    assert len(found) == 1, f"{len(found)} events for request {request_id}"
    in_file = by_request(file_events(dep)).get(request_id, [])
    assert len(in_file) == 1 and in_file[0]["eventID"] == found[0]["eventID"]
    return found[0]


def test_every_operation_records_exactly_one_event(
    audited: Deployment,
    audited_server: ServerProcess,
    kms: Any,
    key: dict[str, Any],
    cred: tuple[str, str],
) -> None:
    key_id, arn = key["KeyId"], key["Arn"]
    plaintext = os.urandom(24)
    remember(plaintext)
    context = {"Purpose": "audit-test"}
    calls: list[tuple[str, dict[str, Any], bool]] = []  # (operation, response, read only)

    def call(op: str, method: Any, read_only: bool, **kw: Any) -> dict[str, Any]:
        response: dict[str, Any] = method(**kw)
        calls.append((op, response, read_only))
        return response

    enc = call("Encrypt", kms.encrypt, True, KeyId=key_id, Plaintext=plaintext, EncryptionContext=context)
    remember(enc["CiphertextBlob"])
    dec = call("Decrypt", kms.decrypt, True, CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=context)
    assert dec["Plaintext"] == plaintext
    re = call(
        "ReEncrypt",
        kms.re_encrypt,
        True,
        CiphertextBlob=enc["CiphertextBlob"],
        SourceEncryptionContext=context,
        DestinationKeyId=key_id,
    )
    remember(re["CiphertextBlob"])
    gdk = call("GenerateDataKey", kms.generate_data_key, True, KeyId=key_id, KeySpec="AES_256")
    remember(gdk["Plaintext"], gdk["CiphertextBlob"])
    gdk2 = call(
        "GenerateDataKeyWithoutPlaintext",
        kms.generate_data_key_without_plaintext,
        True,
        KeyId=key_id,
        NumberOfBytes=32,
    )
    remember(gdk2["CiphertextBlob"])
    rnd = call("GenerateRandom", kms.generate_random, True, NumberOfBytes=32)
    remember(rnd["Plaintext"])
    call("DescribeKey", kms.describe_key, True, KeyId=key_id)
    call("ListKeys", kms.list_keys, True, Limit=5)
    call("UpdateKeyDescription", kms.update_key_description, False, KeyId=key_id, Description="changed")
    call("DisableKey", kms.disable_key, False, KeyId=key_id)
    call("EnableKey", kms.enable_key, False, KeyId=key_id)
    call("CreateAlias", kms.create_alias, False, AliasName="alias/audited", TargetKeyId=key_id)
    call("ListAliases", kms.list_aliases, True, KeyId=key_id)
    call("DeleteAlias", kms.delete_alias, False, AliasName="alias/audited")
    call("TagResource", kms.tag_resource, False, KeyId=key_id, Tags=[{"TagKey": "team", "TagValue": "blue"}])
    call("ListResourceTags", kms.list_resource_tags, True, KeyId=key_id)
    call("UntagResource", kms.untag_resource, False, KeyId=key_id, TagKeys=["team"])
    call("EnableKeyRotation", kms.enable_key_rotation, False, KeyId=key_id)
    call("GetKeyRotationStatus", kms.get_key_rotation_status, True, KeyId=key_id)
    call("DisableKeyRotation", kms.disable_key_rotation, False, KeyId=key_id)
    call("RotateKeyOnDemand", kms.rotate_key_on_demand, False, KeyId=key_id)
    call("ListKeyRotations", kms.list_key_rotations, True, KeyId=key_id)
    call("GetKeyPolicy", kms.get_key_policy, True, KeyId=key_id, PolicyName="default")
    call("ListKeyPolicies", kms.list_key_policies, True, KeyId=key_id)
    call("GetKeyLastUsage", kms.get_key_last_usage, True, KeyId=key_id)

    user_id = client(audited_server.url, *cred, "sts").get_caller_identity()["UserId"]
    assert user_id.startswith("AIDA")
    for op, response, read_only in calls:
        event = one_event(audited, rid(response))
        assert event["eventName"] == op
        assert event["eventSource"] == "kms.amazonaws.com" and event["eventType"] == "AwsApiCall"
        assert event["readOnly"] is read_only, op
        assert "errorCode" not in event, op
        assert event["recipientAccountId"] == TEST_ACCOUNT
        assert event["userIdentity"]["type"] == "IAMUser" and event["userIdentity"]["userName"] == "auditor"
        assert event["userIdentity"]["principalId"] == user_id, op  # CloudTrail's: the caller's aws:userid
        assert event["awsRegion"] == TEST_REGION
        resources = [r["ARN"] for r in event["resources"]]
        assert resources == ([] if op in ("GenerateRandom", "ListKeys", "DeleteAlias") else [arn]), op

    events = {op: one_event(audited, rid(r)) for op, r, _ in calls}
    assert events["Encrypt"]["requestParameters"] == {"keyId": key_id, "encryptionContext": context}
    assert events["Decrypt"]["requestParameters"] == {
        "encryptionContext": context,
        "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }
    assert events["GenerateDataKey"]["requestParameters"] == {"keyId": key_id, "keySpec": "AES_256"}
    assert events["GenerateRandom"]["requestParameters"] == {"numberOfBytes": 32}
    assert events["DisableKey"]["responseElements"] == {"keyId": arn}
    assert events["TagResource"]["requestParameters"]["tags"] == [{"tagKey": "team", "tagValue": "blue"}]
    assert events["Decrypt"]["additionalEventData"]["keyMaterialId"] == dec["KeyMaterialId"]


def test_create_key_and_deletion_events(audited: Deployment, kms: Any) -> None:
    created = kms.create_key(Description="to delete", Tags=[{"TagKey": "k", "TagValue": "v"}])
    md = created["KeyMetadata"]
    event = one_event(audited, rid(created))
    assert event["requestParameters"] == {
        "description": "to delete",
        "tags": [{"tagKey": "k", "tagValue": "v"}],
    }
    assert event["responseElements"]["keyMetadata"]["keyId"] == md["KeyId"]
    assert event["responseElements"]["keyMetadata"]["creationDate"].endswith(("AM", "PM"))
    assert [r["ARN"] for r in event["resources"]] == [md["Arn"]]
    scheduled = kms.schedule_key_deletion(KeyId=md["KeyId"], PendingWindowInDays=7)
    event = one_event(audited, rid(scheduled))
    assert event["requestParameters"] == {"keyId": md["KeyId"], "pendingWindowInDays": 7}
    assert event["responseElements"]["keyId"] == md["Arn"]
    assert event["responseElements"]["keyState"] == "PendingDeletion"
    assert event["responseElements"]["deletionDate"].endswith(("AM", "PM"))
    cancelled = kms.cancel_key_deletion(KeyId=md["KeyId"])
    assert one_event(audited, rid(cancelled))["responseElements"] == {"keyId": md["Arn"]}


def test_every_kind_of_failure_records_one_event(
    audited: Deployment,
    audited_server: ServerProcess,
    kms: Any,
    kms_nv: Any,
    key: dict[str, Any],
    cred: tuple[str, str],
) -> None:
    failures: list[tuple[str, str, str]] = []  # (operation, expected code, request id)

    def expect(op: str, code: str, method: Any, **kw: Any) -> None:
        with pytest.raises(ClientError) as excinfo:
            method(**kw)
        got, request_id = error_rid(excinfo)
        assert got == code
        failures.append((op, code, request_id))

    missing = "11111111-2222-3333-4444-555555555555"
    expect("GenerateRandom", "ValidationException", kms_nv.generate_random, NumberOfBytes=5000)
    expect("DescribeKey", "NotFoundException", kms.describe_key, KeyId=missing)
    expect("Decrypt", "InvalidCiphertextException", kms.decrypt, CiphertextBlob=b"\x01" * 80)
    expect(
        "Encrypt", "DryRunOperationException", kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x", DryRun=True
    )
    expect(
        "CreateGrant",
        "InvalidArnException",
        kms.create_grant,
        KeyId=key["KeyId"],
        GranteePrincipal="bob",
        Operations=["Decrypt"],
    )
    other = client(audited_server.url, "other", "othersecret")
    expect("Encrypt", "AccessDeniedException", other.encrypt, KeyId=key["Arn"], Plaintext=b"x")
    wrong_secret = client(audited_server.url, cred[0], "not-the-secret")
    expect("Encrypt", "InvalidSignatureException", wrong_secret.encrypt, KeyId=key["KeyId"], Plaintext=b"x")
    unknown = client(audited_server.url, "AKIANOSUCHKEY0000000", "whatever")
    expect("ListKeys", "UnrecognizedClientException", unknown.list_keys)

    for op, code, request_id in failures:
        event = one_event(audited, request_id)
        assert (event["eventName"], event["errorCode"]) == (op, code)
        assert "errorMessage" in event
        assert event["responseElements"] is None
    by_id = {request_id: one_event(audited, request_id) for _, _, request_id in failures}
    denied = by_id[failures[5][2]]
    assert denied["recipientAccountId"] == OTHER_ACCOUNT and denied["resources"][0]["ARN"] == key["Arn"]
    # authenticated, whether or not an authorization check ran: the caller's aws:userid, as CloudTrail has
    user_id = client(audited_server.url, *cred, "sts").get_caller_identity()["UserId"]
    for op, code, request_id in failures[:5]:
        assert by_id[request_id]["userIdentity"]["principalId"] == user_id, (op, code)
    other_id = client(audited_server.url, "other", "othersecret", "sts").get_caller_identity()["UserId"]
    assert denied["userIdentity"]["principalId"] == other_id
    for _, _, request_id in failures[6:]:  # not authenticated: nothing to name
        assert "principalId" not in by_id[request_id]["userIdentity"]
    bad_signature = by_id[failures[6][2]]
    assert bad_signature["userIdentity"] == {"type": "Unknown", "accessKeyId": cred[0]}
    assert bad_signature["requestParameters"] is None and bad_signature["recipientAccountId"] is None


def test_unknown_target_and_unsigned_request(audited: Deployment, audited_server: ServerProcess) -> None:
    parsed = urlparse(audited_server.url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    conn.request(
        "POST",
        "/",
        body=b"{}",
        headers={"X-Amz-Target": "TrentService.NoSuchThing", "Content-Type": "application/x-amz-json-1.1"},
    )
    response = conn.getresponse()
    response.read()
    request_id = response.getheader("x-amzn-RequestId")
    conn.close()
    assert response.status == 400 and request_id
    event = one_event(audited, request_id)
    assert event["errorCode"] == "MissingAuthenticationTokenException"
    assert event["eventName"] == "UnknownOperation"


def test_oversized_request_is_recorded(audited: Deployment, audited_server: ServerProcess) -> None:
    # Refused by the HTTP layer before its body is read: recorded with what it claims (no signature can
    # be checked without the body), once.
    parsed = urlparse(audited_server.url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    agent = f"oversize-test/{os.getpid()}-{time.time_ns()}"
    conn.request(
        "POST",
        "/",
        body=b"x" * (300 * 1024),
        headers={
            "X-Amz-Target": "TrentService.CreateKey",
            "Content-Type": "application/x-amz-json-1.1",
            "User-Agent": agent,
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDOVERSIZED/20261129/us-east-1/kms/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=00",
        },
    )
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 413
    deadline = time.monotonic() + 10
    while True:
        found = [e for e in db_events(audited) if e.get("userAgent") == agent]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(found) == 1, found
    event = found[0]
    assert event["eventName"] == "CreateKey"
    assert event["errorCode"] == "RequestEntityTooLargeException"
    assert event["userIdentity"] == {"type": "Unknown", "accessKeyId": "AKIDOVERSIZED"}
    assert event["requestParameters"] is None


def test_lookup_events_with_boto3(
    audited_server: ServerProcess, kms: Any, key: dict[str, Any], cred: tuple[str, str]
) -> None:
    ct = client(audited_server.url, *cred, service="cloudtrail")
    marker = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"lookup me")
    remember(b"lookup me")
    found = ct.lookup_events(
        LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": key["Arn"]}], MaxResults=50
    )["Events"]
    mine = [e for e in found if json.loads(e["CloudTrailEvent"])["requestID"] == rid(marker)]
    assert len(mine) == 1
    event = mine[0]
    assert event["EventName"] == "Encrypt" and event["EventSource"] == "kms.amazonaws.com"
    assert event["ReadOnly"] == "true" and event["Username"] == "auditor" and event["AccessKeyId"] == cred[0]
    assert event["Resources"] == [{"ResourceType": "AWS::KMS::Key", "ResourceName": key["Arn"]}]
    times = [e["EventTime"] for e in found]
    assert times == sorted(times, reverse=True)  # newest first

    for _ in range(3):
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"lookup me")
    page = ct.lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "Encrypt"}], MaxResults=2
    )
    assert len(page["Events"]) == 2 and page["NextToken"]
    second = ct.lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "Encrypt"}],
        MaxResults=2,
        NextToken=page["NextToken"],
    )
    ids = {e["EventId"] for e in page["Events"]} | {e["EventId"] for e in second["Events"]}
    assert len(ids) == 4
    with pytest.raises(ClientError) as excinfo:
        ct.lookup_events(
            LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "Encrypt"}],
            NextToken="bm90LWEtdG9rZW4=",
        )
    assert excinfo.value.response["Error"]["Code"] == "InvalidNextTokenException"
    start = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert ct.lookup_events(StartTime=start)["Events"] == []
    other = client(audited_server.url, "other", "othersecret", service="cloudtrail")
    theirs = other.lookup_events(
        LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": key["Arn"]}]
    )
    assert all(
        json.loads(e["CloudTrailEvent"])["recipientAccountId"] == OTHER_ACCOUNT for e in theirs["Events"]
    )


def test_aws_cli_lookup_events(
    audited_server: ServerProcess, kms: Any, key: dict[str, Any], cred: tuple[str, str], tmp_path: Path
) -> None:
    if not AWS.exists():
        pytest.fail(f"the aws CLI is not installed next to the interpreter ({AWS})")
    marker = kms.describe_key(KeyId=key["KeyId"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPENKMS_"))}
    env.update(
        AWS_ENDPOINT_URL=audited_server.url,
        AWS_ACCESS_KEY_ID=cred[0],
        AWS_SECRET_ACCESS_KEY=cred[1],
        AWS_DEFAULT_REGION=TEST_REGION,
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_PAGER="",
    )
    result = subprocess.run(
        [
            str(AWS),
            "cloudtrail",
            "lookup-events",
            "--lookup-attributes",
            f"AttributeKey=ResourceName,AttributeValue={key['Arn']}",
            "--max-results",
            "5",
            "--output",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    events = json.loads(result.stdout)["Events"]
    records = [json.loads(e["CloudTrailEvent"]) for e in events]
    assert any(r["requestID"] == rid(marker) and r["eventName"] == "DescribeKey" for r in records)


def test_get_key_last_usage(audited: Deployment, kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    unused = kms.get_key_last_usage(KeyId=key_id)
    assert unused["KeyLastUsage"] == {} and unused["KeyCreationDate"] == unused["TrackingStartDate"]
    enc = kms.generate_data_key(KeyId=key_id, NumberOfBytes=16)
    remember(enc["Plaintext"], enc["CiphertextBlob"])
    kms.describe_key(KeyId=key_id)  # not a cryptographic operation: not tracked
    with pytest.raises(ClientError):
        kms.decrypt(CiphertextBlob=b"\x01" * 90, KeyId=key_id)  # failed: not tracked
    usage = kms.get_key_last_usage(KeyId=key_id)
    last = usage["KeyLastUsage"]
    assert last["Operation"] == "GenerateDataKey"
    assert last["KmsRequestId"] == rid(enc)
    assert last["CloudTrailEventId"] == one_event(audited, rid(enc))["eventID"]
    assert abs(last["Timestamp"].timestamp() - time.time()) < 60


def test_service_events_rotation_and_deletion(audited: Deployment, kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    doomed = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=doomed, PendingWindowInDays=7)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=100)).replace(microsecond=0)
    audited.cli("jobs", "run", "--at", later.isoformat())
    events = db_events(audited)
    rotate = [
        e for e in events if e["eventName"] == "RotateKey" and e["resources"][0]["ARN"].endswith(key_id)
    ]
    delete = [
        e for e in events if e["eventName"] == "DeleteKey" and e["resources"][0]["ARN"].endswith(doomed)
    ]
    assert len(rotate) == 1 and len(delete) == 1
    for event in (rotate[0], delete[0]):
        assert event["eventType"] == "AwsServiceEvent"
        assert event["userIdentity"] == {"accountId": TEST_ACCOUNT, "invokedBy": "AWS Internal"}
        assert event["eventTime"] == later.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert "requestID" not in event
    assert rotate[0]["serviceEventDetails"] == {"keyId": key_id}


def test_the_servers_own_jobs_record_through_the_node_commit_stream(tmp_path: Path) -> None:
    """The running server's background jobs (not ``openkms jobs run``): the master's service event joins
    the workers' commit stream, lands once in every sink, and the chain verifies."""
    from tests.integration.test_import import external_key, import_material

    dep = audit_deployment(tmp_path, "sqlite", OPENKMS_JOBS_INTERVAL_SECONDS="0.3")
    server = ServerProcess(dep, workers=2)
    try:
        kms = client(server.url, "test", "test")
        key_id = external_key(kms)["KeyId"]
        valid_to = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
        import_material(kms, key_id, os.urandom(32), ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=valid_to)
        deadline = time.monotonic() + 30
        while kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] != "PendingImport":
            assert time.monotonic() < deadline, "the server's jobs loop did not expire the material"
            time.sleep(0.2)
        kms.describe_key(KeyId=key_id)  # a worker's record after the master's
    finally:
        assert server.stop() == 0
    for events in (db_events(dep), file_events(dep)):
        expired = [e for e in events if e["eventName"] == "DeleteExpiredKeyMaterial"]
        assert len(expired) == 1 and expired[0]["eventType"] == "AwsServiceEvent"
        assert expired[0]["resources"][0]["ARN"].endswith(key_id)
    assert "background jobs failed" not in server.log
    verified = dep.cli("audit", "verify")
    assert verified.stdout.count(": OK") == 2, verified.stdout  # the database and the file


def test_cli_reads_the_log(audited: Deployment, kms: Any, key: dict[str, Any]) -> None:
    marker = kms.describe_key(KeyId=key["KeyId"])
    out = audited.cli("audit", "query", "--request-id", rid(marker), "--json").stdout
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [r["requestID"] for r in records] == [rid(marker)]
    by_key = audited.cli(
        "audit", "query", "--key", key["KeyId"], "--event-name", "DescribeKey", "--limit", "2"
    ).stdout
    assert "DescribeKey" in by_key and key["KeyId"] in by_key
    assert rid(marker) in audited.cli("audit", "tail", "-n", "3").stdout
    pem = audited.cli("audit", "public-key").stdout
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")


def test_verify_and_export(audited: Deployment, kms: Any, tmp_path: Path) -> None:
    time.sleep(1.2)  # past the digest interval
    kms.list_keys(Limit=1)  # a batch after the interval writes a digest
    result = audited.cli("audit", "verify")
    assert result.stdout.count(": OK") == 2, result.stdout  # the database and the file
    pem = tmp_path / "audit.pem"
    audited.cli("audit", "public-key", "--output", str(pem))
    export = tmp_path / "export.jsonl"
    audited.cli("audit", "export", "--output", str(export))
    checked = audited.cli("audit", "verify", "--file", str(export), "--public-key", str(pem))
    assert ": OK" in checked.stdout, checked.stdout
    records = [json.loads(line) for line in export.read_text().splitlines()]
    assert "export" in records[0] and any("digest" in r for r in records)


def test_zz_nothing_secret_was_recorded(audited: Deployment) -> None:
    """Runs last: every byte the log holds, against every secret this module used (raw, base64, hex)."""
    stored = raw_log_bytes(audited)
    assert len(SECRETS) >= 10
    for secret in SECRETS:
        for form in {secret, base64.b64encode(secret), secret.hex().encode()}:
            if len(form) >= 8:
                assert form not in stored, f"a secret value was recorded: {form[:12]!r}..."


def test_lookup_events_username_of_path_users_and_by_role_sessions(
    audited: Deployment, audited_server: ServerProcess, cred: tuple[str, str]
) -> None:
    """Username is the user's name (not its path) and any caller of the account can look it up: a user
    created with a path, looked up by a role session, must be found."""
    audited.cli("admin", "user", "create", "pathy", "--account", TEST_ACCOUNT, "--path", "/eng/team/")
    audited.cli("admin", "role", "create", "reader", "--account", TEST_ACCOUNT)
    user_key, user_secret = "AKIAPATHY0000000001", "pathy-secret-0123456789"
    session_key, session_secret = "AKIAREADERSESSION01", "reader-secret-0123456789"
    audited.cli(
        "admin", "access-key", "create", "--account", TEST_ACCOUNT, "--user", "pathy",
        "--access-key-id", user_key, "--secret-access-key", user_secret,
    )  # fmt: skip
    audited.cli(
        "admin", "access-key", "create", "--account", TEST_ACCOUNT, "--role", "reader", "--session", "s1",
        "--access-key-id", session_key, "--secret-access-key", session_secret,
    )  # fmt: skip
    remember(user_secret, session_secret)
    with pytest.raises(ClientError):  # denied (no policy) but recorded with the user's identity
        client(audited_server.url, user_key, user_secret).list_keys()
    by_user = [{"AttributeKey": "Username", "AttributeValue": "pathy"}]
    as_auditor = client(audited_server.url, *cred, service="cloudtrail")
    found = as_auditor.lookup_events(LookupAttributes=by_user)["Events"]
    assert found and all(e["Username"] == "pathy" for e in found)
    assert json.loads(found[0]["CloudTrailEvent"])["userIdentity"]["arn"].endswith(":user/eng/team/pathy")
    as_session = client(audited_server.url, session_key, session_secret, service="cloudtrail")
    seen = as_session.lookup_events(LookupAttributes=by_user)["Events"]
    assert [e["EventId"] for e in seen] == [e["EventId"] for e in found]
    by_auditor = [{"AttributeKey": "Username", "AttributeValue": "auditor"}]
    assert as_session.lookup_events(LookupAttributes=by_auditor, MaxResults=1)["Events"]
    # a role session's events show its session name (as in the aws CLI's lookup-events example)
    by_session = [{"AttributeKey": "Username", "AttributeValue": "s1"}]
    own = as_auditor.lookup_events(LookupAttributes=by_session)["Events"]
    assert own and all(e["Username"] == "s1" for e in own)
    assert all(json.loads(e["CloudTrailEvent"])["userIdentity"]["type"] == "AssumedRole" for e in own)


def test_lookup_events_next_token_of_another_query_is_refused(
    audited_server: ServerProcess, kms: Any, key: dict[str, Any], cred: tuple[str, str]
) -> None:
    """A NextToken must come with the parameters of the call that returned it (CloudTrail answers
    InvalidNextTokenException): carried to another attribute value it would skip that query's newer events."""
    for _ in range(3):
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"token probe")
    remember(b"token probe")
    ct = client(audited_server.url, *cred, service="cloudtrail")
    first = ct.lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "Encrypt"}], MaxResults=1
    )
    for other in (
        {"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "Decrypt"}]},
        {"LookupAttributes": [{"AttributeKey": "ReadOnly", "AttributeValue": "true"}]},
        {"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "Encrypt"}], "EndTime": 1},
        {},
    ):
        with pytest.raises(ClientError) as excinfo:
            ct.lookup_events(**other, NextToken=first["NextToken"])
        assert excinfo.value.response["Error"]["Code"] == "InvalidNextTokenException", other
    again = ct.lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "Encrypt"}],
        MaxResults=1,
        NextToken=first["NextToken"],
    )
    assert again["Events"][0]["EventId"] != first["Events"][0]["EventId"]


def _forged_token(seq: int) -> str:
    """A NextToken in openkms' format (its query fingerprint is not secret: callers can build one)."""
    fingerprint = hashlib.sha256(orjson.dumps([TEST_ACCOUNT, None, None, None])).hexdigest()[:16]
    return base64.urlsafe_b64encode(f"{seq}:{fingerprint}".encode()).decode()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"StartTime": 1e300}', "SerializationException"),
        (b'{"StartTime": -1e20}', "SerializationException"),
        (b'{"EndTime": 1e20}', "SerializationException"),
        (b'{"StartTime": 100000000000000000000000000}', "SerializationException"),
        (f'{{"NextToken": "{_forged_token(10**30)}"}}'.encode(), "InvalidNextTokenException"),
        (f'{{"NextToken": "{_forged_token(-5)}"}}'.encode(), "InvalidNextTokenException"),
        (f'{{"NextToken": "{_forged_token(2**62)}"}}'.encode(), None),  # in range: a valid page
    ],
)
def test_lookup_events_out_of_range_values_are_client_errors(
    audited_server: ServerProcess, cred: tuple[str, str], body: bytes, expected: str | None
) -> None:
    """Times outside years 1-9999 and a forged token's sequence number the database cannot bind were
    500s (KMSInternalException)."""
    ct = client(audited_server.url, *cred, service="cloudtrail", validate=False)

    def replace_body(request: Any, **_: Any) -> None:
        request.data = body

    ct.meta.events.register_first("before-sign.cloudtrail.LookupEvents", replace_body)
    if expected is None:
        assert ct.lookup_events()["Events"]
        return
    with pytest.raises(ClientError) as excinfo:
        ct.lookup_events()
    response = excinfo.value.response
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (expected, 400)
