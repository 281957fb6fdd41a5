"""Key lifecycle through boto3 against a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError
from tests.support.servers import TEST_ACCOUNT, TEST_REGION


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    err = excinfo.value.response
    return err["Error"]["Code"], err["Error"]["Message"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_create_key_defaults(kms) -> None:
    md = kms.create_key(Description="first")["KeyMetadata"]
    assert md["AWSAccountId"] == TEST_ACCOUNT
    assert md["Arn"] == f"arn:aws:kms:{TEST_REGION}:{TEST_ACCOUNT}:key/{md['KeyId']}"
    assert md["KeyState"] == "Enabled" and md["Enabled"] is True
    assert md["KeySpec"] == md["CustomerMasterKeySpec"] == "SYMMETRIC_DEFAULT"
    assert md["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert md["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert md["Origin"] == "AWS_KMS" and md["KeyManager"] == "CUSTOMER"
    assert md["MultiRegion"] is False
    assert len(md["CurrentKeyMaterialId"]) == 64
    assert "DeletionDate" not in md
    assert abs(md["CreationDate"].timestamp() - time.time()) < 120
    described = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    assert described == md


def test_describe_by_every_identifier_form(kms) -> None:
    md = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/describe-forms", TargetKeyId=md["KeyId"])
    alias_arn = f"arn:aws:kms:{TEST_REGION}:{TEST_ACCOUNT}:alias/describe-forms"
    for ident in (md["KeyId"], md["Arn"], "alias/describe-forms", alias_arn):
        assert kms.describe_key(KeyId=ident)["KeyMetadata"]["KeyId"] == md["KeyId"]


def test_not_found_messages(kms) -> None:
    missing = "11111111-2222-3333-4444-555555555555"
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId=missing)
    assert error_of(e) == (
        "NotFoundException",
        f"Key 'arn:aws:kms:{TEST_REGION}:{TEST_ACCOUNT}:key/{missing}' does not exist",
        400,
    )
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId="not-a-key")
    assert error_of(e) == ("NotFoundException", "Invalid keyId 'not-a-key'", 400)
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId="alias/does-not-exist")
    assert error_of(e) == (
        "NotFoundException",
        f"Alias arn:aws:kms:{TEST_REGION}:{TEST_ACCOUNT}:alias/does-not-exist is not found.",
        400,
    )
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId=f"arn:aws:kms:eu-west-3:{TEST_ACCOUNT}:key/{missing}")
    assert error_of(e) == ("NotFoundException", "Invalid arn eu-west-3", 400)


def test_arn_of_another_partition_names_no_key(kms) -> None:
    # The deployment's partition is aws: the same region, account and key id under aws-cn is another key.
    md = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/other-partition", TargetKeyId=md["KeyId"])
    cn_key = md["Arn"].replace("arn:aws:", "arn:aws-cn:", 1)
    cn_alias = f"arn:aws-cn:kms:{TEST_REGION}:{TEST_ACCOUNT}:alias/other-partition"
    for ident in (cn_key, cn_alias):
        with pytest.raises(ClientError) as e:
            kms.encrypt(KeyId=ident, Plaintext=b"x")
        assert error_of(e) == ("NotFoundException", f"Invalid arn {ident}", 400)
    with pytest.raises(ClientError) as e:
        kms.disable_key(KeyId=cn_key)
    assert error_of(e) == ("NotFoundException", f"Invalid arn {cn_key}", 400)
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_nul_characters_are_refused_not_a_500(kms) -> None:
    # PostgreSQL text cannot hold NUL: these used to fail there with KMSInternalException (HTTP 500).
    # Every backend now answers the same 400s.
    md = kms.create_key()["KeyMetadata"]
    for call in (
        lambda: kms.create_key(Description="a\x00b"),
        lambda: kms.update_key_description(KeyId=md["KeyId"], Description="a\x00b"),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_of(e) == (
            "ValidationException",
            "Description cannot contain the NUL character (U+0000).",
            400,
        )
    for call in (
        lambda: kms.tag_resource(KeyId=md["KeyId"], Tags=[{"TagKey": "k\x00", "TagValue": "v"}]),
        lambda: kms.tag_resource(KeyId=md["KeyId"], Tags=[{"TagKey": "k", "TagValue": "v\x00"}]),
        lambda: kms.create_key(Tags=[{"TagKey": "k\x00", "TagValue": "v"}]),
        lambda: kms.untag_resource(KeyId=md["KeyId"], TagKeys=["k\x00"]),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_of(e) == (
            "TagException",
            "Tag keys and values cannot contain the NUL character (U+0000).",
            400,
        )
    for name in ("alias/a\x00", "alias/aws/\x00"):
        with pytest.raises(ClientError) as e:
            kms.describe_key(KeyId=name)
        assert error_of(e) == (
            "NotFoundException",
            f"Alias arn:aws:kms:{TEST_REGION}:{TEST_ACCOUNT}:{name} is not found.",
            400,
        )
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["Description"] == ""


def test_alias_not_accepted_where_aws_refuses_it(kms) -> None:
    md = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/no-alias-ops", TargetKeyId=md["KeyId"])
    with pytest.raises(ClientError) as e:
        kms.disable_key(KeyId="alias/no-alias-ops")
    assert error_of(e)[:2] == ("InvalidArnException", "Key Aliases are not supported for this operation")


def test_other_account_key_is_denied(kms, other_kms) -> None:
    md = kms.create_key()["KeyMetadata"]
    with pytest.raises(ClientError) as e:
        other_kms.encrypt(KeyId=md["Arn"], Plaintext=b"x")
    assert error_of(e)[0] == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        other_kms.describe_key(KeyId=md["KeyId"])  # a bare id resolves in the caller's own account
    assert error_of(e)[0] == "NotFoundException"
    keys = {k["KeyId"] for k in other_kms.list_keys()["Keys"]}
    assert md["KeyId"] not in keys


def test_list_keys_paginates(kms) -> None:
    created = {kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(5)}
    seen: list[str] = []
    marker = None
    while True:
        page = kms.list_keys(Limit=2, **({"Marker": marker} if marker else {}))
        assert len(page["Keys"]) <= 2
        seen += [k["KeyId"] for k in page["Keys"]]
        for k in page["Keys"]:
            assert k["KeyArn"].endswith(k["KeyId"])
        if not page["Truncated"]:
            assert "NextMarker" not in page
            break
        marker = page["NextMarker"]
    assert created <= set(seen)
    assert len(seen) == len(set(seen))
    paginated = [
        k["KeyId"]
        for p in kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 3})
        for k in p["Keys"]
    ]
    assert paginated == seen


def test_forged_marker_rejected(kms) -> None:
    with pytest.raises(ClientError) as e:
        kms.list_keys(Marker="bm90LWEtbWFya2Vy")
    assert error_of(e)[0] == "InvalidMarkerException"


def test_enable_disable_and_description(kms) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key_id)
    kms.disable_key(KeyId=key_id)  # idempotent
    md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (md["KeyState"], md["Enabled"]) == ("Disabled", False)
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=key_id, Plaintext=b"data")
    assert error_of(e) == ("DisabledException", f"{md['Arn']} is disabled.", 400)
    kms.enable_key(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    kms.update_key_description(KeyId=key_id, Description="changed")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "changed"


def test_schedule_and_cancel_deletion(kms) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    before = time.time()
    resp = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert resp["KeyId"] == arn and resp["KeyState"] == "PendingDeletion" and resp["PendingWindowInDays"] == 7
    assert abs(resp["DeletionDate"].timestamp() - (before + 7 * 86400)) < 120
    md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert md["KeyState"] == "PendingDeletion" and "DeletionDate" in md
    for call in (
        lambda: kms.encrypt(KeyId=key_id, Plaintext=b"x"),
        lambda: kms.schedule_key_deletion(KeyId=key_id),
        lambda: kms.enable_key(KeyId=key_id),
        lambda: kms.update_key_description(KeyId=key_id, Description="x"),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_of(e)[:2] == ("KMSInvalidStateException", f"{arn} is pending deletion.")
    assert kms.cancel_key_deletion(KeyId=key_id)["KeyId"] == arn
    md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert md["KeyState"] == "Disabled" and "DeletionDate" not in md
    with pytest.raises(ClientError) as e:
        kms.cancel_key_deletion(KeyId=key_id)
    assert error_of(e)[:2] == ("KMSInvalidStateException", f"{arn} is not pending deletion.")


@pytest.mark.parametrize("window", [1, 6, 31, 365])
def test_deletion_window_outside_7_to_30(kms, window: int) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as e:
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=window)
    # [unverified] AWS wording; our message is pinned here.
    assert error_of(e) == (
        "ValidationException",
        f"PendingWindowInDays should be between 7 and 30, but it is {window}",
        400,
    )
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


def test_deletion_window_outside_model_range(kms) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as e:
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=366)
    assert error_of(e)[:2] == (
        "ValidationException",
        "1 validation error detected: Value '366' at 'pendingWindowInDays' failed to satisfy constraint: "
        "Member must have value less than or equal to 365",
    )


def test_default_key_policy(kms) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    resp = kms.get_key_policy(KeyId=key_id, PolicyName="default")
    policy = json.loads(resp["Policy"])
    assert policy["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{TEST_ACCOUNT}:root"}
    assert policy["Statement"][0]["Action"] == "kms:*"
    assert kms.list_key_policies(KeyId=key_id)["PolicyNames"] == ["default"]


def test_custom_policy_stored_verbatim(kms) -> None:
    document = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}],
        },
        indent=3,
    )
    key_id = kms.create_key(Policy=document)["KeyMetadata"]["KeyId"]
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == document


@pytest.mark.parametrize(
    ("policy", "code"),
    [
        ("not json", "MalformedPolicyDocumentException"),
        ("[1, 2]", "MalformedPolicyDocumentException"),
        ('{"Statement": []}', "MalformedPolicyDocumentException"),
        (
            '{"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "kms:*"}]}',
            "MalformedPolicyDocumentException",
        ),
        (
            '{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Sid": "'
            + "x" * 33000
            + '"}]}',
            "LimitExceededException",
        ),
    ],
)
def test_bad_policies_create_nothing(kms, policy: str, code: str) -> None:
    before = len(list(_all_keys(kms)))
    with pytest.raises(ClientError) as e:
        kms.create_key(Policy=policy)
    assert error_of(e)[0] == code
    assert len(list(_all_keys(kms))) == before


def _all_keys(kms):  # type: ignore[no-untyped-def]
    for page in kms.get_paginator("list_keys").paginate():
        yield from page["Keys"]


def test_create_key_spec_and_usage_rules(kms) -> None:
    with pytest.raises(ClientError) as e:
        kms.create_key(KeySpec="HMAC_256")
    assert error_of(e)[:2] == (
        "ValidationException",
        "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.",
    )
    with pytest.raises(ClientError) as e:
        kms.create_key(KeySpec="RSA_2048", KeyUsage="KEY_AGREEMENT")
    assert error_of(e)[:2] == (
        "ValidationException",
        "KeyUsage KEY_AGREEMENT is not compatible with KeySpec RSA_2048",
    )
    with pytest.raises(ClientError) as e:
        kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="SIGN_VERIFY")
    assert error_of(e)[0] == "ValidationException"
    with pytest.raises(ClientError) as e:
        kms.create_key(KeySpec="NOT_A_SPEC")
    assert error_of(e)[0] == "ValidationException"
    assert "Member must satisfy enum value set" in error_of(e)[1]
    with pytest.raises(ClientError) as e:
        kms.create_key(CustomKeyStoreId="cks-1234567890abcdef0")
    assert error_of(e)[0] == "CustomKeyStoreNotFoundException"


def test_tags(kms) -> None:
    key_id = kms.create_key(Tags=[{"TagKey": "team", "TagValue": "a"}])["KeyMetadata"]["KeyId"]
    kms.tag_resource(
        KeyId=key_id, Tags=[{"TagKey": "env", "TagValue": "prod"}, {"TagKey": "team", "TagValue": "b"}]
    )
    tags = kms.list_resource_tags(KeyId=key_id)
    assert tags["Tags"] == [{"TagKey": "env", "TagValue": "prod"}, {"TagKey": "team", "TagValue": "b"}]
    assert tags["Truncated"] is False
    page = kms.list_resource_tags(KeyId=key_id, Limit=1)
    assert page["Truncated"] is True and len(page["Tags"]) == 1
    rest = kms.list_resource_tags(KeyId=key_id, Marker=page["NextMarker"])
    assert page["Tags"] + rest["Tags"] == tags["Tags"]
    kms.untag_resource(KeyId=key_id, TagKeys=["team", "never-set"])
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "env", "TagValue": "prod"}]


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ([{"TagKey": "aws:x", "TagValue": "1"}], "Tags beginning with aws: are reserved"),
        ([{"TagKey": "AWS:x", "TagValue": "1"}], "Tags beginning with aws: are reserved"),
        ([{"TagKey": "a", "TagValue": "1"}, {"TagKey": "a", "TagValue": "2"}], "Duplicate tag keys"),
        ([{"TagKey": f"k{i}", "TagValue": "v"} for i in range(51)], "Too many tags"),
    ],
)
def test_bad_tags(kms, tags, message: str) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as e:
        kms.tag_resource(KeyId=key_id, Tags=tags)
    assert error_of(e)[:2] == ("TagException", message)
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == []


def test_tag_key_too_long(kms) -> None:
    with pytest.raises(ClientError) as e:
        kms.create_key(Tags=[{"TagKey": "k" * 129, "TagValue": "v"}])
    code, message, _ = error_of(e)
    assert code == "ValidationException"
    assert (
        "at 'tags.1.member.tagKey' failed to satisfy constraint: "
        "Member must have length less than or equal to 128" in message
    )
