"""Grants end to end: boto3 and the aws CLI against a running server (SQLite and PostgreSQL).

Principals: the root users of two accounts ("test", "other"), user alice in the key's account and user bob
in the other account.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tests.conftest import client
from tests.integration.audit_support import db_events
from tests.integration.test_keys_e2e import error_of
from tests.support.awscli import aws_runner
from tests.support.servers import OTHER_ACCOUNT, TEST_ACCOUNT, TEST_REGION, Deployment, ServerProcess

from openkms.app import open_store
from openkms.config import load_settings
from openkms.storage.tables import grants as grants_table

ALICE = f"arn:aws:iam::{TEST_ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{OTHER_ACCOUNT}:user/bob"
OTHER_ROOT = f"arn:aws:iam::{OTHER_ACCOUNT}:root"
ROOT = f"arn:aws:iam::{TEST_ACCOUNT}:root"
UNKNOWN_GRANT = "0" * 64


@pytest.fixture(scope="module")
def users(deployment: Deployment, server: ServerProcess) -> dict[str, Any]:
    deployment.add_access_key(TEST_ACCOUNT, "alice", "alicesecret", user="alice")
    deployment.add_access_key(OTHER_ACCOUNT, "bob", "bobsecret", user="bob")
    return {
        "alice": client(server.url, "alice", "alicesecret"),
        "bob": client(server.url, "bob", "bobsecret"),
    }


def code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return error_of(excinfo)[0]


def symmetric(kms: Any) -> dict[str, Any]:
    md: dict[str, Any] = kms.create_key()["KeyMetadata"]
    return md


def test_create_list_use_revoke(kms: Any) -> None:
    key = symmetric(kms)
    created = kms.create_grant(
        KeyId=key["KeyId"],
        GranteePrincipal=ALICE,
        RetiringPrincipal=BOB,
        Operations=["Encrypt", "Decrypt", "DescribeKey"],
        Constraints={"EncryptionContextSubset": {"App": "billing"}},
    )
    grant_id, token = created["GrantId"], created["GrantToken"]
    assert re.fullmatch(r"[0-9a-f]{64}", grant_id)
    assert token.startswith("v1.") and grant_id not in token and key["KeyId"] not in token
    grants = kms.list_grants(KeyId=key["Arn"])
    assert grants["Truncated"] is False and "NextMarker" not in grants
    (entry,) = grants["Grants"]
    assert entry.pop("CreationDate").year >= 2024
    assert entry == {
        "KeyId": key["Arn"],
        "GrantId": grant_id,
        "Name": "",
        "GranteePrincipal": ALICE,
        "RetiringPrincipal": BOB,
        "IssuingAccount": ROOT,
        "Operations": ["Encrypt", "Decrypt", "DescribeKey"],
        "Constraints": {"EncryptionContextSubset": {"App": "billing"}},
    }
    # the token is usable at once, on every operation that accepts GrantTokens
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", GrantTokens=[token])["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, GrantTokens=[token])["Plaintext"] == b"x"
    kms.describe_key(KeyId=key["KeyId"], GrantTokens=[token])
    kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256", GrantTokens=[token])

    kms.revoke_grant(KeyId=key["KeyId"], GrantId=grant_id)
    assert kms.list_grants(KeyId=key["KeyId"])["Grants"] == []
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", GrantTokens=[token])
    assert error_of(e)[:3] == ("InvalidGrantTokenException", "The grant token is invalid.", 400)
    with pytest.raises(ClientError) as e:
        kms.revoke_grant(KeyId=key["KeyId"], GrantId=grant_id)
    assert code(e) == "NotFoundException"


def test_name_idempotency(kms: Any) -> None:
    key = symmetric(kms)
    params = {"KeyId": key["KeyId"], "GranteePrincipal": ALICE, "Operations": ["Encrypt", "Decrypt"]}
    first = kms.create_grant(Name="app-grant", **params)
    again = kms.create_grant(Name="app-grant", **{**params, "Operations": ["Decrypt", "Encrypt"]})
    assert again["GrantId"] == first["GrantId"]
    assert again["GrantToken"] != first["GrantToken"]
    for token in (first["GrantToken"], again["GrantToken"]):
        kms.describe_key(KeyId=key["KeyId"], GrantTokens=[token])
    changed = kms.create_grant(Name="app-grant", **{**params, "Operations": ["Encrypt"]})
    unnamed = [kms.create_grant(**params)["GrantId"] for _ in range(2)]
    ids = {g["GrantId"] for g in kms.list_grants(KeyId=key["KeyId"])["Grants"]}
    assert ids == {first["GrantId"], changed["GrantId"], *unnamed} and len(ids) == 4
    names = {g["GrantId"]: g["Name"] for g in kms.list_grants(KeyId=key["KeyId"])["Grants"]}
    assert names[first["GrantId"]] == "app-grant" and names[unnamed[0]] == ""


def test_token_verification(kms: Any, kms_nv: Any) -> None:
    key = symmetric(kms)
    token = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=ALICE, Operations=["Encrypt"])["GrantToken"]
    body = base64.urlsafe_b64decode(token[3:] + "=" * (-len(token[3:]) % 4))
    tampered = bytearray(body)
    tampered[len(body) // 2] ^= 1
    tampered_token = "v1." + base64.urlsafe_b64encode(bytes(tampered)).rstrip(b"=").decode()
    forged = "v1." + base64.urlsafe_b64encode(b"\x00\x00\x00\x01" + bytes(60)).decode()
    for bad in ("not-a-token", "v1.@@@", forged, tampered_token, token[:-4], "v2." + token[3:]):
        with pytest.raises(ClientError) as e:
            kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", GrantTokens=[token, bad])
        assert error_of(e)[:3] == ("InvalidGrantTokenException", "The grant token is invalid.", 400), bad
    with pytest.raises(ClientError) as e:  # the model allows at most 10 tokens
        kms_nv.encrypt(KeyId=key["KeyId"], Plaintext=b"x", GrantTokens=[token] * 11)
    assert code(e) == "ValidationException"
    kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", GrantTokens=[token] * 10)


def test_create_grant_bad_input(kms: Any, kms_nv: Any) -> None:
    key = symmetric(kms)
    rsa = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    hmac = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]

    def fails(client_: Any = kms, **kw: Any) -> tuple[str, str, int]:
        with pytest.raises(ClientError) as e:
            client_.create_grant(**{"GranteePrincipal": ALICE, "Operations": ["Encrypt"], **kw})
        return error_of(e)

    assert fails(KeyId=key["KeyId"], Operations=["Sign"])[:3] == (  # [unverified] wording, pinned here
        "ValidationException",
        f"Grant operations Sign are not valid for {key['Arn']}, which has KeySpec SYMMETRIC_DEFAULT and "
        "KeyUsage ENCRYPT_DECRYPT.",
        400,
    )
    assert fails(KeyId=rsa["KeyId"], Operations=["GenerateDataKey"])[0] == "ValidationException"
    assert fails(KeyId=hmac["KeyId"], Operations=["Encrypt"])[0] == "ValidationException"
    kms.create_grant(KeyId=rsa["KeyId"], GranteePrincipal=ALICE, Operations=["Decrypt", "GetPublicKey"])
    kms.create_grant(KeyId=hmac["KeyId"], GranteePrincipal=ALICE, Operations=["GenerateMac", "DescribeKey"])
    for principal in ("alice", "arn:aws:iam::12345:user/alice", "arn:aws:s3:::bucket", "123456789012"):
        assert fails(KeyId=key["KeyId"], GranteePrincipal=principal)[:2] == (
            "InvalidArnException",
            f"ARN does not refer to a valid principal: {principal}",
        )
        assert fails(KeyId=key["KeyId"], RetiringPrincipal=principal)[0] == "InvalidArnException"
    both = {"EncryptionContextEquals": {"a": "1"}, "EncryptionContextSubset": {"a": "1"}}
    assert fails(KeyId=key["KeyId"], Constraints=both)[:2] == (  # [unverified] that AWS refuses both
        "ValidationException",
        "A grant constraint can contain EncryptionContextEquals or EncryptionContextSubset, not both.",
    )
    on_rsa = {"EncryptionContextSubset": {"a": "1"}}
    assert fails(KeyId=rsa["KeyId"], Operations=["Decrypt"], Constraints=on_rsa)[0] == "ValidationException"
    nine = {"EncryptionContextEquals": {str(i): "v" for i in range(9)}}
    assert fails(KeyId=key["KeyId"], Constraints=nine)[0] == "ValidationException"
    assert fails(KeyId=key["KeyId"], Constraints={"EncryptionContextEquals": {"a": "v" * 385}})[0] == (
        "ValidationException"
    )
    kms.create_grant(
        KeyId=key["KeyId"],
        GranteePrincipal=ALICE,
        Operations=["Encrypt"],
        Constraints={"EncryptionContextEquals": {str(i): "v" * 384 for i in range(8)}},  # at the limits
    )
    kms.create_alias(AliasName="alias/grants-bad-input", TargetKeyId=key["KeyId"])
    assert fails(KeyId="alias/grants-bad-input")[:2] == (
        "InvalidArnException",
        "Key Aliases are not supported for this operation",
    )
    assert fails(kms_nv, KeyId=key["KeyId"], GranteePrincipal=None)[0] in ("ValidationException",)
    service = {"GranteePrincipal": None, "GranteeServicePrincipal": "logs.us-east-1.amazonaws.com"}
    assert fails(kms_nv, KeyId=key["KeyId"], RetiringPrincipal=BOB, **service)[0] == "ValidationException"
    with pytest.raises(ClientError) as e:
        kms_nv.create_grant(
            KeyId=key["KeyId"],
            GranteePrincipal=ALICE,
            GranteeServicePrincipal="a.b.com",
            Operations=["Encrypt"],
        )
    assert code(e) == "ValidationException"
    assert fails(KeyId=key["KeyId"], Operations=[])[0] == "ValidationException"
    assert fails(KeyId="11111111-2222-3333-4444-555555555555")[0] == "NotFoundException"
    assert kms.list_grants(KeyId=key["KeyId"])["Grants"][0]["Operations"] == ["Encrypt"]
    assert len(kms.list_grants(KeyId=key["KeyId"])["Grants"]) == 1


def test_key_state_and_dry_run(kms: Any) -> None:
    key = symmetric(kms)
    with pytest.raises(ClientError) as e:
        kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=ALICE, Operations=["Encrypt"], DryRun=True)
    assert error_of(e)[:2] == (
        "DryRunOperationException",
        "The request would have succeeded, but the DryRun option is set.",
    )
    assert kms.list_grants(KeyId=key["KeyId"])["Grants"] == []
    grant_id = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=ALICE, Operations=["Encrypt"])["GrantId"]
    kms.disable_key(KeyId=key["KeyId"])
    with pytest.raises(ClientError) as e:
        kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=ALICE, Operations=["Encrypt"])
    assert error_of(e)[:2] == ("DisabledException", f"{key['Arn']} is disabled.")
    assert len(kms.list_grants(KeyId=key["KeyId"])["Grants"]) == 1  # listing works in every state
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    with pytest.raises(ClientError) as e:
        kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=ALICE, Operations=["Encrypt"])
    assert error_of(e)[:2] == ("KMSInvalidStateException", f"{key['Arn']} is pending deletion.")
    with pytest.raises(ClientError) as e:
        kms.revoke_grant(KeyId=key["KeyId"], GrantId=grant_id, DryRun=True)
    assert code(e) == "DryRunOperationException"
    kms.revoke_grant(KeyId=key["KeyId"], GrantId=grant_id)  # revoking works in every state


def test_grant_id_errors(kms: Any) -> None:
    key = symmetric(kms)
    for call in (kms.revoke_grant, kms.retire_grant):
        with pytest.raises(ClientError) as e:
            call(KeyId=key["KeyId"], GrantId="not-a-grant-id")
        assert code(e) == "InvalidGrantIdException"
        with pytest.raises(ClientError) as e:
            call(KeyId=key["KeyId"], GrantId=UNKNOWN_GRANT)
        assert code(e) == "NotFoundException"
    with pytest.raises(ClientError) as e:
        kms.list_grants(KeyId=key["KeyId"], GrantId="xyz")
    assert code(e) == "InvalidGrantIdException"


def test_list_grants_filters_and_pages(kms: Any) -> None:
    key = symmetric(kms)
    alice_ids = [
        kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=ALICE, Operations=["Encrypt"])["GrantId"]
        for _ in range(4)
    ]
    bob_id = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=BOB, Operations=["Decrypt"])["GrantId"]
    seen: list[str] = []
    marker: str | None = None
    while True:
        page = kms.list_grants(KeyId=key["KeyId"], Limit=2, **({"Marker": marker} if marker else {}))
        assert len(page["Grants"]) <= 2
        seen += [g["GrantId"] for g in page["Grants"]]
        if not page["Truncated"]:
            assert "NextMarker" not in page
            break
        marker = page["NextMarker"]
    assert sorted(seen) == sorted([*alice_ids, bob_id]) and len(seen) == 5
    by_grantee = kms.list_grants(KeyId=key["KeyId"], GranteePrincipal=BOB)["Grants"]
    assert [g["GrantId"] for g in by_grantee] == [bob_id]
    by_id = kms.list_grants(KeyId=key["KeyId"], GrantId=alice_ids[2])["Grants"]
    assert [g["GrantId"] for g in by_id] == [alice_ids[2]]
    with pytest.raises(ClientError) as e:
        kms.list_grants(KeyId=key["KeyId"], Marker="forged-marker")
    assert code(e) == "InvalidMarkerException"
    other = symmetric(kms)
    with pytest.raises(ClientError) as e:  # a marker of one key's listing is no good for another key
        kms.list_grants(KeyId=other["KeyId"], Marker=marker or "")
    assert code(e) == "InvalidMarkerException"


def test_retire_rules(kms: Any, other_kms: Any, users: dict[str, Any]) -> None:
    alice, bob = users["alice"], users["bob"]
    key = symmetric(kms)

    def grant(**kw: Any) -> dict[str, Any]:
        out: dict[str, Any] = kms.create_grant(KeyId=key["KeyId"], **{"Operations": ["Encrypt"], **kw})
        return out

    # the retiring principal, in another account, retires with the key ARN and grant id
    g = grant(GranteePrincipal=ALICE, RetiringPrincipal=BOB)
    with pytest.raises(ClientError) as e:  # an unrelated principal of another account may not
        other_kms.retire_grant(KeyId=key["Arn"], GrantId=g["GrantId"])
    assert code(e) == "AccessDeniedException"
    bob.retire_grant(KeyId=key["Arn"], GrantId=g["GrantId"])
    with pytest.raises(ClientError) as e:
        bob.retire_grant(KeyId=key["Arn"], GrantId=g["GrantId"])
    assert code(e) == "NotFoundException"

    # the grantee may retire only when the grant includes RetireGrant
    g = grant(GranteePrincipal=BOB)
    with pytest.raises(ClientError) as e:
        bob.retire_grant(GrantToken=g["GrantToken"])
    assert code(e) == "AccessDeniedException"
    kms.retire_grant(GrantToken=g["GrantToken"])  # the account that created it may
    g = grant(GranteePrincipal=BOB, Operations=["Encrypt", "RetireGrant"])
    bob.retire_grant(GrantToken=g["GrantToken"])
    with pytest.raises(ClientError) as e:  # the token of a retired grant is no longer valid
        kms.describe_key(KeyId=key["KeyId"], GrantTokens=[g["GrantToken"]])
    assert code(e) == "InvalidGrantTokenException"

    # an account named as retiring principal: its principals (here its root) may retire
    g = grant(GranteePrincipal=ALICE, RetiringPrincipal=OTHER_ROOT)
    other_kms.retire_grant(GrantToken=g["GrantToken"])

    # principals of the account that created the grant (identity policies are not modelled: allowed)
    g = grant(GranteePrincipal=BOB, RetiringPrincipal=BOB)
    alice.retire_grant(KeyId=key["KeyId"], GrantId=g["GrantId"])
    assert kms.list_grants(KeyId=key["KeyId"])["Grants"] == []


def test_retire_grant_input_forms(kms: Any, kms_nv: Any) -> None:
    key = symmetric(kms)
    g = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=ALICE, Operations=["Encrypt"])
    for kw in ({}, {"KeyId": key["KeyId"]}, {"GrantId": g["GrantId"]}):
        with pytest.raises(ClientError) as e:
            kms_nv.retire_grant(**kw)
        assert code(e) == "ValidationException", kw
    for bad in ("garbage", "v1.AAAA"):
        with pytest.raises(ClientError) as e:
            kms.retire_grant(GrantToken=bad)
        assert code(e) == "InvalidGrantTokenException"
    with pytest.raises(ClientError) as e:
        kms.retire_grant(GrantToken=g["GrantToken"], DryRun=True)
    assert code(e) == "DryRunOperationException"
    other_key = symmetric(kms)
    with pytest.raises(ClientError) as e:  # a KeyId that contradicts the token retires nothing
        kms.retire_grant(GrantToken=g["GrantToken"], KeyId=other_key["KeyId"])
    assert error_of(e) == (
        "ValidationException",
        "The KeyId does not match the key of the grant named by the GrantToken.",
        400,
    )
    assert len(kms.list_grants(KeyId=key["KeyId"])["Grants"]) == 1
    kms.retire_grant(GrantToken=g["GrantToken"], GrantId=g["GrantId"], KeyId=key["Arn"])
    assert kms.list_grants(KeyId=key["KeyId"])["Grants"] == []


def test_list_retirable_grants(kms: Any, other_kms: Any, users: dict[str, Any]) -> None:
    bob = users["bob"]
    ids = set()
    for _ in range(3):
        key = symmetric(kms)
        ids.add(
            kms.create_grant(
                KeyId=key["KeyId"], GranteePrincipal=ALICE, RetiringPrincipal=BOB, Operations=["Decrypt"]
            )["GrantId"]
        )
    other_key = other_kms.create_key()["KeyMetadata"]
    ids.add(
        other_kms.create_grant(
            KeyId=other_key["KeyId"], GranteePrincipal=ALICE, RetiringPrincipal=BOB, Operations=["Decrypt"]
        )["GrantId"]
    )
    seen: list[dict[str, Any]] = []
    kw: dict[str, Any] = {"RetiringPrincipal": BOB, "Limit": 3}
    while True:
        page = bob.list_retirable_grants(**kw)
        seen += page["Grants"]
        if not page["Truncated"]:
            break
        kw["Marker"] = page["NextMarker"]
    mine = [g for g in seen if g["GrantId"] in ids]
    assert len(mine) == 4  # grants on keys of both accounts
    assert {g["KeyId"].split(":")[4] for g in mine} == {TEST_ACCOUNT, OTHER_ACCOUNT}
    assert all(g["RetiringPrincipal"] == BOB for g in seen)
    # the retiring principal must be in the caller's account
    with pytest.raises(ClientError) as e:
        kms.list_retirable_grants(RetiringPrincipal=BOB)
    assert code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        bob.list_retirable_grants(RetiringPrincipal="bob")
    assert code(e) == "InvalidArnException"
    assert (
        kms.list_retirable_grants(RetiringPrincipal=f"arn:aws:iam::{TEST_ACCOUNT}:user/nobody")["Grants"]
        == []
    )


def test_key_deletion_removes_grants(kms: Any, users: dict[str, Any], deployment: Deployment) -> None:
    key = symmetric(kms)
    g = kms.create_grant(
        KeyId=key["KeyId"], GranteePrincipal=ALICE, RetiringPrincipal=BOB, Operations=["Encrypt"]
    )
    survivor = symmetric(kms)
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=8)).isoformat()
    deployment.cli("jobs", "run", "--at", later)
    retirable = users["bob"].list_retirable_grants(RetiringPrincipal=BOB, Limit=100)["Grants"]
    assert g["GrantId"] not in {x["GrantId"] for x in retirable}
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId=survivor["KeyId"], GrantTokens=[g["GrantToken"]])
    assert code(e) == "InvalidGrantTokenException"


def test_retire_by_token_audit_record(kms: Any, deployment: Deployment) -> None:
    key = symmetric(kms)
    g = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=ALICE, Operations=["Encrypt"], Name="audited")
    kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", GrantTokens=[g["GrantToken"]])
    retired = kms.retire_grant(GrantToken=g["GrantToken"])
    events = db_events(deployment)
    by_id = {e.get("requestID"): e for e in events}
    event = by_id[retired["ResponseMetadata"]["RequestId"]]
    assert event["eventName"] == "RetireGrant" and "errorCode" not in event
    assert event["requestParameters"] is None
    assert event["additionalEventData"]["grantId"] == g["GrantId"]
    assert set(event["additionalEventData"]) == {"grantId", "authorizationReason"}
    assert "kms:RetireGrant" in event["additionalEventData"]["authorizationReason"]
    assert [r["ARN"] for r in event["resources"]] == [key["Arn"]]
    created = [
        e
        for e in events
        if e["eventName"] == "CreateGrant"
        and e["responseElements"]
        and e["responseElements"]["grantId"] == g["GrantId"]
    ]
    assert created and created[0]["requestParameters"]["name"] == "audited"
    token_body = g["GrantToken"][3:40]
    assert all(token_body not in json.dumps(e) for e in events)  # grant tokens never reach the log


def test_grant_limit_per_key(kms: Any, deployment: Deployment) -> None:
    key = symmetric(kms)
    named = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=ALICE, Operations=["Encrypt"], Name="n")
    rows = [
        {
            "grant_id": f"{i:064x}",
            "account": TEST_ACCOUNT,
            "region": TEST_REGION,
            "key_id": key["KeyId"],
            "name": "",
            "created_at": 0.0,
            "issuing_account": TEST_ACCOUNT,
            "operations": "Encrypt",
            "grantee_principal": ALICE,
        }
        for i in range(1, 49_999)
    ]
    store = open_store(load_settings(environ=deployment.env()))
    try:  # 49,998 grants written directly: the API would take minutes
        with store.tx() as tx:
            tx.connection.execute(grants_table.insert(), rows)
    finally:
        store.close()
    kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=ALICE, Operations=["Decrypt"])  # the 50,000th
    with pytest.raises(ClientError) as e:
        kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=ALICE, Operations=["Decrypt"])
    assert error_of(e)[:2] == (
        "LimitExceededException",
        f"Cannot create more than 50000 grants for {key['Arn']}.",
    )
    again = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=ALICE, Operations=["Encrypt"], Name="n")
    assert again["GrantId"] == named["GrantId"]  # an idempotent retry creates nothing, so it still works
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)


@pytest.fixture(scope="module")
def aws(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return aws_runner(server.url, tmp_path_factory.mktemp("awscli-grants"))


def test_aws_cli_create_and_list_grants(aws: Any, kms: Any) -> None:
    key = symmetric(kms)
    out = aws(
        "kms",
        "create-grant",
        "--key-id",
        key["KeyId"],
        "--grantee-principal",
        ALICE,
        "--operations",
        "Encrypt",
        "Decrypt",
        "--constraints",
        "EncryptionContextEquals={Dept=IT}",
        "--name",
        "cli-grant",
        "--output",
        "json",
    )
    created = json.loads(out.stdout)
    assert set(created) == {"GrantId", "GrantToken"}
    listed = json.loads(aws("kms", "list-grants", "--key-id", key["Arn"], "--output", "json").stdout)
    (entry,) = listed["Grants"]
    assert entry["GrantId"] == created["GrantId"] and entry["Name"] == "cli-grant"
    assert entry["Constraints"] == {"EncryptionContextEquals": {"Dept": "IT"}}
    assert entry["KeyId"] == key["Arn"] and entry["IssuingAccount"] == ROOT
    assert TEST_REGION in entry["KeyId"]
    bad = aws(
        "kms",
        "create-grant",
        "--key-id",
        key["KeyId"],
        "--grantee-principal",
        "nobody",
        "--operations",
        "Encrypt",
        check=False,
    )
    assert bad.returncode != 0 and "InvalidArnException" in bad.stderr


def test_create_grant_condition_keys(kms: Any) -> None:
    """kms:GrantOperations, kms:GranteePrincipal, kms:RetiringPrincipal, kms:GrantConstraintType and the
    constraint's kms:EncryptionContext keys describe the requested grant (kms-semantics.md 6.5): a key
    policy can limit the grants made with it."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Admin",
                "Effect": "Allow",
                "Principal": {"AWS": ROOT},
                "NotAction": "kms:CreateGrant",
                "Resource": "*",
            },
            {
                "Sid": "DecryptGrantsForAlice",
                "Effect": "Allow",
                "Principal": {"AWS": ROOT},
                "Action": "kms:CreateGrant",
                "Resource": "*",
                "Condition": {
                    "ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt", "DescribeKey"]},
                    "StringEquals": {"kms:GranteePrincipal": ALICE, "kms:EncryptionContext:App": "billing"},
                    "StringEqualsIfExists": {"kms:RetiringPrincipal": ROOT},
                    "ForAnyValue:StringEquals": {"kms:GrantConstraintType": "EncryptionContextSubset"},
                },
            },
        ],
    }
    key_id = kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]["KeyId"]
    subset = {"EncryptionContextSubset": {"app": "billing"}}
    kms.create_grant(KeyId=key_id, GranteePrincipal=ALICE, Operations=["Decrypt"], Constraints=subset)
    kms.create_grant(
        KeyId=key_id,
        GranteePrincipal=ALICE,
        RetiringPrincipal=ROOT,
        Operations=["Decrypt"],
        Constraints=subset,
    )
    refused = [
        {"GranteePrincipal": ALICE, "Operations": ["Decrypt", "Encrypt"], "Constraints": subset},
        {"GranteePrincipal": BOB, "Operations": ["Decrypt"], "Constraints": subset},
        {
            "GranteePrincipal": ALICE,
            "RetiringPrincipal": BOB,
            "Operations": ["Decrypt"],
            "Constraints": subset,
        },
        {"GranteePrincipal": ALICE, "Operations": ["Decrypt"]},
        {
            "GranteePrincipal": ALICE,
            "Operations": ["Decrypt"],
            "Constraints": {"EncryptionContextSubset": {"App": "payroll"}},
        },
        {
            "GranteePrincipal": ALICE,
            "Operations": ["Decrypt"],
            "Constraints": {"EncryptionContextEquals": {"App": "billing"}},
        },
    ]
    for params in refused:
        with pytest.raises(ClientError) as excinfo:
            kms.create_grant(KeyId=key_id, **params)
        assert code(excinfo) == "AccessDeniedException", params


def test_identity_deny_on_retire_grant_binds_retiring_principal_and_grantee(
    kms: Any, deployment: Deployment, server: ServerProcess, tmp_path: Any
) -> None:
    """An explicit Deny in the caller's identity policy overrides every allow (kms-semantics.md 6.4 step
    2, 6.8): it also stops the grant's retiring principal and a grantee holding RetireGrant."""
    deployment.cli("admin", "user", "create", "dora", "--account", TEST_ACCOUNT)
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "kms:RetireGrant", "Resource": "*"},
        ],
    }
    path = tmp_path / "deny-retire.json"
    path.write_text(json.dumps(document))
    deployment.cli(
        "admin", "policy", "put", "--account", TEST_ACCOUNT, "--user", "dora", "--name", "p", str(path)
    )
    made = deployment.cli("admin", "access-key", "create", "--account", TEST_ACCOUNT, "--user", "dora").stdout
    lines = made.splitlines()
    key_id = next(line.split("= ")[1] for line in lines if "aws_access_key_id" in line)
    secret = next(line.split("= ")[1] for line in lines if "aws_secret_access_key" in line)
    dora = client(server.url, key_id, secret)
    dora_arn = f"arn:aws:iam::{TEST_ACCOUNT}:user/dora"
    key = symmetric(kms)
    retiring = kms.create_grant(
        KeyId=key["KeyId"], GranteePrincipal=ALICE, RetiringPrincipal=dora_arn, Operations=["Encrypt"]
    )
    grantee = kms.create_grant(
        KeyId=key["KeyId"], GranteePrincipal=dora_arn, Operations=["Encrypt", "RetireGrant"]
    )
    for g in (retiring, grantee):
        with pytest.raises(ClientError) as e:
            dora.retire_grant(GrantToken=g["GrantToken"])
        assert code(e) == "AccessDeniedException"
        assert "explicit deny in an identity-based policy" in error_of(e)[1]
    assert len(kms.list_grants(KeyId=key["KeyId"])["Grants"]) == 2
