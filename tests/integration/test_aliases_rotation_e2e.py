"""Aliases, rotation and background jobs through boto3 and the operator CLI against a real server."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError
from tests.integration.test_keys_e2e import error_of
from tests.support.servers import TEST_ACCOUNT, TEST_REGION


def alias_arn(name: str) -> str:
    return f"arn:aws:kms:{TEST_REGION}:{TEST_ACCOUNT}:{name}"


def test_alias_lifecycle(kms) -> None:
    k1 = kms.create_key()["KeyMetadata"]
    k2 = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/app/lifecycle", TargetKeyId=k1["Arn"])
    listed = kms.list_aliases(KeyId=k1["KeyId"])["Aliases"]
    assert [(a["AliasName"], a["TargetKeyId"], a["AliasArn"]) for a in listed] == [
        ("alias/app/lifecycle", k1["KeyId"], alias_arn("alias/app/lifecycle"))
    ]
    blob = kms.encrypt(KeyId="alias/app/lifecycle", Plaintext=b"a")["CiphertextBlob"]
    kms.update_alias(AliasName="alias/app/lifecycle", TargetKeyId=k2["KeyId"])
    assert kms.encrypt(KeyId="alias/app/lifecycle", Plaintext=b"a")["KeyId"] == k2["Arn"]
    assert kms.decrypt(CiphertextBlob=blob)["KeyId"] == k1["Arn"]
    kms.delete_alias(AliasName="alias/app/lifecycle")
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId="alias/app/lifecycle")
    assert error_of(e)[0] == "NotFoundException"
    with pytest.raises(ClientError) as e:
        kms.delete_alias(AliasName="alias/app/lifecycle")
    assert error_of(e)[:2] == ("NotFoundException", f"Alias {alias_arn('alias/app/lifecycle')} is not found.")


def test_alias_errors(kms) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/dup", TargetKeyId=key_id)
    with pytest.raises(ClientError) as e:
        kms.create_alias(AliasName="alias/dup", TargetKeyId=key_id)
    assert error_of(e)[:2] == (
        "AlreadyExistsException",
        f"An alias with the name {alias_arn('alias/dup')} already exists",
    )
    with pytest.raises(ClientError) as e:
        kms.create_alias(AliasName="noprefix", TargetKeyId=key_id)
    assert error_of(e)[0] == "ValidationException" and 'must start with the prefix "alias/"' in error_of(e)[1]
    with pytest.raises(ClientError) as e:
        kms.create_alias(AliasName="alias/Service:Test", TargetKeyId=key_id)
    assert error_of(e)[:2] == (
        "ValidationException",
        "alias/Service:Test contains invalid characters for an alias",
    )
    for reserved in ("alias/aws/s3", "alias/aws/mine"):
        with pytest.raises(ClientError) as e:
            kms.create_alias(AliasName=reserved, TargetKeyId=key_id)
        assert error_of(e)[0] == "NotAuthorizedException"
    with pytest.raises(ClientError) as e:
        kms.create_alias(AliasName="alias/to-missing", TargetKeyId="11111111-2222-3333-4444-555555555555")
    assert error_of(e)[0] == "NotFoundException"
    with pytest.raises(ClientError) as e:
        kms.create_alias(AliasName="alias/to-alias", TargetKeyId="alias/dup")
    assert error_of(e)[0] == "InvalidArnException"
    with pytest.raises(ClientError) as e:
        kms.update_alias(AliasName="alias/never-created", TargetKeyId=key_id)
    assert error_of(e)[0] == "NotFoundException"
    pending = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=pending, PendingWindowInDays=7)
    with pytest.raises(ClientError) as e:
        kms.create_alias(AliasName="alias/to-pending", TargetKeyId=pending)
    assert error_of(e)[0] == "KMSInvalidStateException"
    names = [a["AliasName"] for p in kms.get_paginator("list_aliases").paginate() for a in p["Aliases"]]
    assert "alias/to-pending" not in names and "alias/to-missing" not in names


def test_list_aliases_paginates(kms) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    for i in range(5):
        kms.create_alias(AliasName=f"alias/page/{i}", TargetKeyId=key_id)
    pages = list(kms.get_paginator("list_aliases").paginate(KeyId=key_id, PaginationConfig={"PageSize": 2}))
    assert len(pages) == 3
    assert [a["AliasName"] for p in pages for a in p["Aliases"]] == [f"alias/page/{i}" for i in range(5)]


def test_list_aliases_pages_hold_at_most_100(kms) -> None:
    # KMS documents Limit 1-100 for ListAliases although the model allows up to 1000 (as for ListGrants)
    for k in range(3):  # at most 50 aliases per key
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        for i in range(34):
            kms.create_alias(AliasName=f"alias/hundred/{k}/{i}", TargetKeyId=key_id)
    page = kms.list_aliases(Limit=1000)
    assert len(page["Aliases"]) == 100
    assert page["Truncated"] is True and "NextMarker" in page
    assert len(kms.list_aliases(Limit=1)["Aliases"]) == 1


def test_rotation_settings(kms, kms_nv) -> None:
    md = kms.create_key()["KeyMetadata"]
    status = kms.get_key_rotation_status(KeyId=md["KeyId"])
    assert status["KeyRotationEnabled"] is False and status["KeyId"] == md["Arn"]
    assert "NextRotationDate" not in status
    kms.enable_key_rotation(KeyId=md["KeyId"], RotationPeriodInDays=90)
    status = kms.get_key_rotation_status(KeyId=md["KeyId"])
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 90
    expected = dt.datetime.now(dt.UTC) + dt.timedelta(days=90)
    assert abs((status["NextRotationDate"] - expected).total_seconds()) < 120
    for bad in (89, 2561):
        with pytest.raises(ClientError) as e:
            kms_nv.enable_key_rotation(KeyId=md["KeyId"], RotationPeriodInDays=bad)
        assert error_of(e)[0] == "ValidationException"
    kms.schedule_key_deletion(KeyId=md["KeyId"], PendingWindowInDays=7)
    assert kms.get_key_rotation_status(KeyId=md["KeyId"])["KeyRotationEnabled"] is False
    kms.cancel_key_deletion(KeyId=md["KeyId"])
    assert kms.get_key_rotation_status(KeyId=md["KeyId"])["KeyRotationEnabled"] is True  # restored
    with pytest.raises(ClientError) as e:
        kms.enable_key_rotation(KeyId=md["KeyId"])  # Disabled after cancel
    assert error_of(e)[0] == "DisabledException"
    kms.enable_key(KeyId=md["KeyId"])
    kms.disable_key_rotation(KeyId=md["KeyId"])
    assert kms.get_key_rotation_status(KeyId=md["KeyId"])["KeyRotationEnabled"] is False


def test_rotate_on_demand_keeps_old_ciphertexts(kms) -> None:
    md = kms.create_key()["KeyMetadata"]
    first = md["CurrentKeyMaterialId"]
    old_blob = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"before", EncryptionContext={"v": "1"})[
        "CiphertextBlob"
    ]
    assert kms.rotate_key_on_demand(KeyId=md["KeyId"])["KeyId"] == md["Arn"]
    current = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]
    assert current != first
    new = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"after")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=new)["KeyMaterialId"] == current
    old = kms.decrypt(CiphertextBlob=old_blob, EncryptionContext={"v": "1"})
    assert (old["Plaintext"], old["KeyMaterialId"]) == (b"before", first)
    rotations = kms.list_key_rotations(KeyId=md["KeyId"])["Rotations"]
    assert [(r["KeyMaterialId"], r["RotationType"], r["KeyMaterialState"]) for r in rotations] == [
        (current, "ON_DEMAND", "CURRENT")
    ]
    everything = kms.list_key_rotations(KeyId=md["KeyId"], IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    assert [(r["KeyMaterialId"], r["KeyMaterialState"]) for r in everything] == [
        (first, "NON_CURRENT"),
        (current, "CURRENT"),
    ]
    kms.disable_key(KeyId=md["KeyId"])
    with pytest.raises(ClientError) as e:
        kms.rotate_key_on_demand(KeyId=md["KeyId"])
    assert error_of(e)[:2] == ("DisabledException", f"{md['Arn']} is disabled.")


def test_automatic_rotation_and_deletion_jobs(kms, deployment) -> None:
    rotating = kms.create_key()["KeyMetadata"]
    kms.enable_key_rotation(KeyId=rotating["KeyId"], RotationPeriodInDays=90)
    blob = kms.encrypt(KeyId=rotating["KeyId"], Plaintext=b"kept")["CiphertextBlob"]
    doomed = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/doomed", TargetKeyId=doomed["KeyId"])
    doomed_blob = kms.encrypt(KeyId=doomed["KeyId"], Plaintext=b"gone")["CiphertextBlob"]
    kms.schedule_key_deletion(KeyId=doomed["KeyId"], PendingWindowInDays=7)

    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=6)).isoformat()
    deployment.cli("jobs", "run", "--at", soon)
    assert kms.describe_key(KeyId=doomed["KeyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert (
        kms.describe_key(KeyId=rotating["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]
        == rotating["CurrentKeyMaterialId"]
    )

    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=91)).isoformat()
    out = deployment.cli("jobs", "run", "--at", later).stdout
    assert "deleted" in out
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId=doomed["KeyId"])
    assert error_of(e)[0] == "NotFoundException"
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId="alias/doomed")
    assert error_of(e)[0] == "NotFoundException"
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=doomed_blob)
    assert error_of(e)[0] == "AccessDeniedException"

    after = kms.describe_key(KeyId=rotating["KeyId"])["KeyMetadata"]
    assert after["CurrentKeyMaterialId"] != rotating["CurrentKeyMaterialId"]
    rotations = kms.list_key_rotations(KeyId=rotating["KeyId"])["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["AUTOMATIC"]
    status = kms.get_key_rotation_status(KeyId=rotating["KeyId"])
    assert status["NextRotationDate"] > dt.datetime.now(dt.UTC) + dt.timedelta(days=170)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"kept"


def test_one_jobs_pass_does_every_due_job(kms, deployment) -> None:
    # The jobs read due keys 100 at a time; a pass used to stop after the first batch, so
    # `jobs run --at TIME` left the rest unrotated and undeleted.
    rotating = [kms.create_key()["KeyMetadata"] for _ in range(101)]
    for md in rotating:
        kms.enable_key_rotation(KeyId=md["KeyId"], RotationPeriodInDays=90)
    doomed = [kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(101)]
    for key_id in doomed:
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)

    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=100)).isoformat()
    deployment.cli("jobs", "run", "--at", later)
    for md in rotating:
        after = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]
        assert after != md["CurrentKeyMaterialId"]
    left = {k["KeyId"] for page in kms.get_paginator("list_keys").paginate() for k in page["Keys"]}
    assert left.isdisjoint(doomed)
