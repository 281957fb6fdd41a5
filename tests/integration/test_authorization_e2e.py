"""Authorization end to end: boto3 as several principals in two accounts against a real server.

Principals: the root of TEST_ACCOUNT ("test"), IAM users alice and bob of TEST_ACCOUNT, the root of
OTHER_ACCOUNT ("other"), and an access key of alice flagged as acting through S3 (kms:ViaService).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tests.conftest import BACKENDS, client, make_deployment
from tests.integration.test_keys_e2e import error_of
from tests.support.servers import OTHER_ACCOUNT, TEST_ACCOUNT, Deployment, ServerProcess, drop_pg_schema

ROOT = f"arn:aws:iam::{TEST_ACCOUNT}:root"
ALICE = f"arn:aws:iam::{TEST_ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{TEST_ACCOUNT}:user/bob"
OTHER_ROOT = f"arn:aws:iam::{OTHER_ACCOUNT}:root"
CAROL = f"arn:aws:iam::{OTHER_ACCOUNT}:user/carol"


@pytest.fixture(scope="module", params=BACKENDS)
def authz_deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    dep = make_deployment(tmp_path_factory.mktemp("authz-" + request.param), request.param)
    dep.add_access_key(TEST_ACCOUNT, "alice", "alicesecret", user="alice")
    dep.add_access_key(TEST_ACCOUNT, "bob", "bobsecret", user="bob")
    dep.add_access_key(TEST_ACCOUNT, "alices3", "alices3secret", user="alice")
    dep.add_access_key(OTHER_ACCOUNT, "carol", "carolsecret", user="carol")
    dep.extra_env["OPENKMS_KMS_SERVICE_ACCESS_KEYS"] = "alices3=s3"
    yield dep
    if dep.schema:
        drop_pg_schema(dep.schema)


@pytest.fixture(scope="module")
def authz_server(authz_deployment: Deployment) -> Iterator[ServerProcess]:
    proc = ServerProcess(authz_deployment)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def root(authz_server: ServerProcess) -> Any:
    return client(authz_server.url)


@pytest.fixture(scope="module")
def alice(authz_server: ServerProcess) -> Any:
    return client(authz_server.url, "alice", "alicesecret")


@pytest.fixture(scope="module")
def bob(authz_server: ServerProcess) -> Any:
    return client(authz_server.url, "bob", "bobsecret")


@pytest.fixture(scope="module")
def other(authz_server: ServerProcess) -> Any:
    return client(authz_server.url, "other", "othersecret")


@pytest.fixture(scope="module")
def alice_via_s3(authz_server: ServerProcess) -> Any:
    return client(authz_server.url, "alices3", "alices3secret")


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: Any, actions: Any = "kms:*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": actions, "Resource": "*", **extra}


def denied(user: str, action: str, resource: str, why: str) -> tuple[str, str, int]:
    reasons = {
        "resource": f"because no resource-based policy allows the kms:{action} action",
        "identity": f"because no identity-based policy allows the kms:{action} action",
        "explicit-resource": "with an explicit deny in a resource-based policy",
    }
    message = (
        f"User: {user} is not authorized to perform: kms:{action} on resource: {resource} {reasons[why]}"
    )
    return "AccessDeniedException", message, 400


# --- default policy, account delegation ------------------------------------------------------------------


def test_default_policy_lets_the_account_in_and_keeps_others_out(root: Any, alice: Any, other: Any) -> None:
    md = root.create_key()["KeyMetadata"]
    blob = alice.encrypt(KeyId=md["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    assert root.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    with pytest.raises(ClientError) as e:
        other.encrypt(KeyId=md["Arn"], Plaintext=b"x")
    assert error_of(e) == denied(OTHER_ROOT, "Encrypt", md["Arn"], "resource")


def test_key_policy_naming_one_user(root: Any, alice: Any, bob: Any) -> None:
    doc = policy(allow(ALICE, ["kms:Encrypt", "kms:DescribeKey"]))
    # the root would lose kms:PutKeyPolicy: the lockout safety check refuses, the bypass flag overrides
    with pytest.raises(ClientError) as e:
        root.create_key(Policy=doc)
    assert error_of(e) == (
        "MalformedPolicyDocumentException",
        "The new key policy will not allow you to update the key policy in the future.",
        400,
    )
    md = root.create_key(Policy=doc, BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]
    alice.encrypt(KeyId=md["KeyId"], Plaintext=b"x")
    with pytest.raises(ClientError) as e:
        bob.encrypt(KeyId=md["KeyId"], Plaintext=b"x")
    assert error_of(e) == denied(BOB, "Encrypt", md["Arn"], "resource")
    with pytest.raises(ClientError) as e:
        alice.disable_key(KeyId=md["KeyId"])
    assert error_of(e) == denied(ALICE, "DisableKey", md["Arn"], "resource")
    with pytest.raises(ClientError) as e:  # the account's root is not named either
        root.get_key_policy(KeyId=md["KeyId"])
    assert error_of(e) == denied(ROOT, "GetKeyPolicy", md["Arn"], "resource")


def test_explicit_deny_wins(root: Any, alice: Any, bob: Any) -> None:
    doc = policy(
        allow(ROOT),
        {"Effect": "Deny", "Principal": {"AWS": BOB}, "Action": "kms:Decrypt", "Resource": "*"},
    )
    md = root.create_key(Policy=doc)["KeyMetadata"]
    blob = bob.encrypt(KeyId=md["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    assert alice.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    with pytest.raises(ClientError) as e:
        bob.decrypt(CiphertextBlob=blob)
    assert error_of(e) == denied(BOB, "Decrypt", md["Arn"], "explicit-resource")


def test_encryption_context_condition(root: Any, alice: Any) -> None:
    doc = policy(
        allow(ROOT, ["kms:Describe*", "kms:Get*", "kms:Put*"]),
        allow(
            ALICE,
            ["kms:Encrypt", "kms:Decrypt"],
            Condition={"StringEquals": {"kms:EncryptionContext:app": "billing"}},
        ),
    )
    md = root.create_key(Policy=doc)["KeyMetadata"]
    blob = alice.encrypt(KeyId=md["KeyId"], Plaintext=b"x", EncryptionContext={"app": "billing"})[
        "CiphertextBlob"
    ]
    assert alice.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "billing"})["Plaintext"] == b"x"
    for context in ({}, {"app": "payroll"}):
        with pytest.raises(ClientError) as e:
            alice.encrypt(KeyId=md["KeyId"], Plaintext=b"x", EncryptionContext=context)
        assert error_of(e) == denied(ALICE, "Encrypt", md["Arn"], "resource")


def test_request_alias_and_resource_tag_conditions(root: Any, alice: Any) -> None:
    doc = policy(
        allow(ROOT, ["kms:Get*", "kms:Put*", "kms:CreateAlias", "kms:TagResource"]),
        allow(ALICE, "kms:Encrypt", Condition={"StringEquals": {"kms:RequestAlias": "alias/authz-app"}}),
        allow(ALICE, "kms:DescribeKey", Condition={"StringEquals": {"aws:ResourceTag/team": "blue"}}),
    )
    md = root.create_key(Policy=doc)["KeyMetadata"]
    root.create_alias(AliasName="alias/authz-app", TargetKeyId=md["KeyId"])
    alice.encrypt(KeyId="alias/authz-app", Plaintext=b"x")
    with pytest.raises(ClientError):
        alice.encrypt(KeyId=md["KeyId"], Plaintext=b"x")
    with pytest.raises(ClientError):
        alice.describe_key(KeyId=md["KeyId"])
    root.tag_resource(KeyId=md["KeyId"], Tags=[{"TagKey": "team", "TagValue": "blue"}])
    assert alice.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyId"] == md["KeyId"]


# --- cross-account ---------------------------------------------------------------------------------------


def test_cross_account_with_key_policy(root: Any, other: Any) -> None:
    doc = policy(
        allow(ROOT), allow(OTHER_ACCOUNT, ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey", "kms:*"])
    )
    md = root.create_key(Policy=doc)["KeyMetadata"]
    root.create_alias(AliasName="alias/shared", TargetKeyId=md["KeyId"])
    blob = other.encrypt(KeyId=md["Arn"], Plaintext=b"shared")["CiphertextBlob"]
    assert other.decrypt(CiphertextBlob=blob)["Plaintext"] == b"shared"
    alias_arn = md["Arn"].split(":key/")[0] + ":alias/shared"
    assert other.describe_key(KeyId=alias_arn)["KeyMetadata"]["Arn"] == md["Arn"]
    # not cross-account capable, even though the key policy allows kms:* to the account
    for call in (
        lambda: other.schedule_key_deletion(KeyId=md["Arn"]),
        lambda: other.disable_key(KeyId=md["Arn"]),
        lambda: other.get_key_policy(KeyId=md["Arn"]),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_of(e)[0] == "AccessDeniedException"
    # a bare key id always means the caller's own account
    with pytest.raises(ClientError) as e:
        other.describe_key(KeyId=md["KeyId"])
    assert error_of(e)[0] == "NotFoundException"


def test_cross_account_user_needs_an_identity_policy(root: Any, authz_server: ServerProcess) -> None:
    # carol's account is let in by the key policy, but carol has no identity policy that allows the
    # action (identity policies are not modelled for her: allow-all only within her own account)
    carol = client(authz_server.url, "carol", "carolsecret")
    md = root.create_key(Policy=policy(allow(ROOT), allow(OTHER_ACCOUNT, "kms:Encrypt")))["KeyMetadata"]
    with pytest.raises(ClientError) as e:
        carol.encrypt(KeyId=md["Arn"], Plaintext=b"x")
    assert error_of(e) == denied(CAROL, "Encrypt", md["Arn"], "identity")
    carol.create_key()  # in her own account she may do what the key policy delegates


def test_missing_key_of_another_account_does_not_reveal_existence(other: Any) -> None:
    arn = f"arn:aws:kms:us-east-1:{TEST_ACCOUNT}:key/00000000-0000-0000-0000-000000000000"
    with pytest.raises(ClientError) as e:
        other.encrypt(KeyId=arn, Plaintext=b"x")
    assert error_of(e) == denied(OTHER_ROOT, "Encrypt", arn, "resource")


# --- key policies ----------------------------------------------------------------------------------------


def test_put_get_list_key_policy(root: Any) -> None:
    md = root.create_key()["KeyMetadata"]
    doc = policy(allow(ROOT), allow(ALICE, "kms:Encrypt"))
    root.put_key_policy(KeyId=md["KeyId"], Policy=doc)
    assert root.get_key_policy(KeyId=md["KeyId"])["Policy"] == doc
    assert root.get_key_policy(KeyId=md["KeyId"], PolicyName="default")["PolicyName"] == "default"
    assert root.list_key_policies(KeyId=md["KeyId"])["PolicyNames"] == ["default"]
    with pytest.raises(ClientError) as e:
        root.put_key_policy(KeyId=md["KeyId"], Policy=doc, PolicyName="AWS_RAM")
    assert error_of(e) == (
        "ValidationException",
        "The AWS_RAM policy can only be managed by the RAM service.",
        400,
    )
    with pytest.raises(ClientError) as e:
        root.get_key_policy(KeyId=md["KeyId"], PolicyName="AWS_RAM")
    assert error_of(e)[0] == "NotFoundException"
    with pytest.raises(ClientError) as e:  # [proposal] wording, pinned here
        root.put_key_policy(KeyId=md["KeyId"], Policy=doc, PolicyName="custom")
    assert error_of(e) == (
        "ValidationException",
        "PolicyName custom is not valid. Valid values: default.",
        400,
    )


def test_put_key_policy_lockout_and_bypass(root: Any, alice: Any) -> None:
    md = root.create_key()["KeyMetadata"]
    alice_only = policy(allow(ALICE))
    with pytest.raises(ClientError) as e:
        root.put_key_policy(KeyId=md["KeyId"], Policy=alice_only)
    assert error_of(e)[0:2] == (
        "MalformedPolicyDocumentException",
        "The new key policy will not allow you to update the key policy in the future.",
    )
    root.put_key_policy(KeyId=md["KeyId"], Policy=alice_only, BypassPolicyLockoutSafetyCheck=True)
    with pytest.raises(ClientError) as e:
        root.put_key_policy(KeyId=md["KeyId"], Policy=policy(allow(ROOT)))
    assert error_of(e) == denied(ROOT, "PutKeyPolicy", md["Arn"], "resource")
    alice.put_key_policy(KeyId=md["KeyId"], Policy=policy(allow(ROOT)))  # alice can still manage it
    root.describe_key(KeyId=md["KeyId"])


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ("not json", "MalformedPolicyDocumentException"),
        ("[]", "MalformedPolicyDocumentException"),
        ('{"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "kms:*"}]}',
         "MalformedPolicyDocumentException"),
        ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}',
         "MalformedPolicyDocumentException"),
        ('{"Statement": [], "Pad": "' + "x" * 33000 + '"}', "LimitExceededException"),
    ],
)  # fmt: skip
def test_malformed_policies(root: Any, document: str, code: str) -> None:
    md = root.create_key()["KeyMetadata"]
    with pytest.raises(ClientError) as e:
        root.put_key_policy(KeyId=md["KeyId"], Policy=document)
    assert error_of(e)[0] == code
    with pytest.raises(ClientError) as e:
        root.create_key(Policy=document)
    assert error_of(e)[0] == code


# --- DryRun ----------------------------------------------------------------------------------------------


def test_dry_run_is_an_authorization_check(root: Any, bob: Any) -> None:
    md = root.create_key(Policy=policy(allow(ROOT), {**allow(BOB, "kms:Decrypt"), "Effect": "Deny"}))[
        "KeyMetadata"
    ]
    blob = root.encrypt(KeyId=md["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    with pytest.raises(ClientError) as e:
        root.encrypt(KeyId=md["KeyId"], Plaintext=b"x", DryRun=True)
    assert error_of(e)[0] == "DryRunOperationException"
    with pytest.raises(ClientError) as e:
        bob.decrypt(CiphertextBlob=blob, DryRun=True)
    assert error_of(e) == denied(BOB, "Decrypt", md["Arn"], "explicit-resource")
    with pytest.raises(ClientError) as e:
        bob.decrypt(
            CiphertextBlob=b"\0" * 64, KeyId=md["KeyId"], DryRun=True, DryRunModifiers=["IGNORE_CIPHERTEXT"]
        )
    assert error_of(e)[0] == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        root.decrypt(
            CiphertextBlob=b"\0" * 64, KeyId=md["KeyId"], DryRun=True, DryRunModifiers=["IGNORE_CIPHERTEXT"]
        )
    assert error_of(e)[0] == "DryRunOperationException"


# --- AWS managed keys ------------------------------------------------------------------------------------


def test_aws_managed_key_created_on_first_use(root: Any, alice: Any, alice_via_s3: Any, other: Any) -> None:
    md = root.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    assert md["KeyManager"] == "AWS" and md["KeyState"] == "Enabled"
    assert root.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]["KeyId"] == md["KeyId"]  # created once
    status = root.get_key_rotation_status(KeyId=md["KeyId"])
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 365
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in root.list_aliases()["Aliases"]}
    assert aliases["alias/aws/s3"] == md["KeyId"]
    # direct use is not allowed by the managed-key policy; use through the service is
    with pytest.raises(ClientError) as e:
        alice.encrypt(KeyId="alias/aws/s3", Plaintext=b"x")
    assert error_of(e) == denied(ALICE, "Encrypt", md["Arn"], "resource")
    blob = alice_via_s3.encrypt(KeyId="alias/aws/s3", Plaintext=b"object")["CiphertextBlob"]
    assert alice_via_s3.decrypt(CiphertextBlob=blob)["Plaintext"] == b"object"
    with pytest.raises(ClientError):
        alice.decrypt(CiphertextBlob=blob)
    # not editable, disableable, deletable; rotation cannot be changed
    for action, call in (
        ("PutKeyPolicy", lambda: root.put_key_policy(KeyId=md["KeyId"], Policy=policy(allow(ROOT)))),
        ("DisableKey", lambda: root.disable_key(KeyId=md["KeyId"])),
        ("ScheduleKeyDeletion", lambda: root.schedule_key_deletion(KeyId=md["KeyId"])),
        ("DisableKeyRotation", lambda: root.disable_key_rotation(KeyId=md["KeyId"])),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_of(e) == denied(ROOT, action, md["Arn"], "resource")
    # another account cannot use it, even through the service
    with pytest.raises(ClientError) as e:
        other.encrypt(KeyId=md["Arn"], Plaintext=b"x")
    assert error_of(e)[0] == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        root.create_alias(AliasName="alias/aws/mine", TargetKeyId=md["KeyId"])
    assert error_of(e)[0] == "NotAuthorizedException"


# --- audit and simulate ----------------------------------------------------------------------------------


def test_decision_reasons_reach_the_audit_record(authz_server: ServerProcess, root: Any, bob: Any) -> None:
    md = root.create_key(Policy=policy({**allow(ROOT), "Sid": "Owners"}, {**allow(BOB), "Effect": "Deny"}))[
        "KeyMetadata"
    ]
    ok = root.encrypt(KeyId=md["KeyId"], Plaintext=b"secret-plaintext", EncryptionContext={"k": "hidden-v"})
    with pytest.raises(ClientError) as e:
        bob.encrypt(KeyId=md["KeyId"], Plaintext=b"secret-plaintext")
    ct = client(authz_server.url, service="cloudtrail")
    events = ct.lookup_events(
        LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": md["Arn"]}], MaxResults=50
    )["Events"]
    by_id = {
        json.loads(ev["CloudTrailEvent"])["requestID"]: json.loads(ev["CloudTrailEvent"]) for ev in events
    }
    allowed = by_id[ok["ResponseMetadata"]["RequestId"]]["additionalEventData"]["authorizationReason"]
    assert "kms:Encrypt" in allowed and "allowed" in allowed and "Owners" in allowed
    refused = by_id[e.value.response["ResponseMetadata"]["RequestId"]]
    assert "denied" in refused["additionalEventData"]["authorizationReason"]
    raw = json.dumps(list(by_id.values()))
    assert "secret-plaintext" not in raw and "hidden-v" not in raw.split('"requestParameters"')[0]


def test_policy_simulate_cli(authz_deployment: Deployment, root: Any) -> None:
    doc = policy(
        allow(ROOT, ["kms:Get*", "kms:Put*", "kms:Encrypt"]),
        allow(BOB, "kms:Decrypt", Condition={"StringEquals": {"kms:EncryptionContext:app": "x"}}),
    )
    md = root.create_key(Policy=doc)["KeyMetadata"]
    yes = authz_deployment.cli(
        "policy", "simulate", "--principal", BOB, "--action", "kms:Decrypt", "--key", md["Arn"],
        "--context", "app=x", check=False,
    )  # fmt: skip
    assert yes.returncode == 0, yes.stdout + yes.stderr
    assert "ALLOWED" in yes.stdout and "reason:" in yes.stdout
    no = authz_deployment.cli(
        "policy", "simulate", "--principal", BOB, "--action", "Decrypt", "--key", md["KeyId"],
        "--context", "app=y", check=False,
    )  # fmt: skip
    assert no.returncode == 1 and "DENIED" in no.stdout
    assert "because no resource-based policy allows the kms:Decrypt action" in no.stdout
    cross = authz_deployment.cli(
        "policy", "simulate", "--principal", OTHER_ROOT, "--action", "kms:Encrypt", "--key", md["Arn"],
        check=False,
    )  # fmt: skip
    assert cross.returncode == 1
    missing = authz_deployment.cli(
        "policy",
        "simulate",
        "--principal",
        BOB,
        "--action",
        "kms:Encrypt",
        "--key",
        "alias/nope",
        check=False,
    )
    assert missing.returncode not in (0, 1) and "does not exist" in missing.stderr + missing.stdout


def test_account_level_actions(other: Any, authz_server: ServerProcess) -> None:
    # account-level operations are authorised in the caller's own account
    md = other.create_key(Tags=[{"TagKey": "a", "TagValue": "b"}])["KeyMetadata"]
    assert md["AWSAccountId"] == OTHER_ACCOUNT
    assert md["KeyId"] in {k["KeyId"] for k in other.list_keys()["Keys"]}
    assert len(other.generate_random(NumberOfBytes=8)["Plaintext"]) == 8
    other.list_aliases()


def test_alias_operations_need_the_key_permission(root: Any, alice: Any, tmp_path: Path) -> None:
    md = root.create_key(Policy=policy(allow(ROOT), {**allow(ALICE, "kms:CreateAlias"), "Effect": "Deny"}))[
        "KeyMetadata"
    ]
    with pytest.raises(ClientError) as e:
        alice.create_alias(AliasName="alias/authz-denied", TargetKeyId=md["KeyId"])
    assert error_of(e) == denied(ALICE, "CreateAlias", md["Arn"], "explicit-resource")
    root.create_alias(AliasName="alias/authz-denied", TargetKeyId=md["KeyId"])
    assert alice.describe_key(KeyId="alias/authz-denied")["KeyMetadata"]["KeyId"] == md["KeyId"]


def test_import_condition_keys(root: Any) -> None:
    """kms:WrappingAlgorithm / kms:WrappingKeySpec (GetParametersForImport) and kms:ExpirationModel
    (ImportKeyMaterial) carry the request's values (kms-semantics.md 6.5): a key policy can require them."""
    wrapping = {"kms:WrappingAlgorithm": "RSAES_OAEP_SHA_256", "kms:WrappingKeySpec": "RSA_3072"}
    expires = {"StringEqualsIfExists": {"kms:ExpirationModel": "KEY_MATERIAL_EXPIRES"}}
    admin = allow(ROOT, Condition=expires)
    del admin["Action"]
    admin["NotAction"] = "kms:GetParametersForImport"
    document = policy(admin, allow(ROOT, "kms:GetParametersForImport", Condition={"StringEquals": wrapping}))
    md = root.create_key(Origin="EXTERNAL", Policy=document)["KeyMetadata"]
    root.get_parameters_for_import(
        KeyId=md["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_3072"
    )
    for algorithm, spec in (("RSAES_OAEP_SHA_1", "RSA_3072"), ("RSAES_OAEP_SHA_256", "RSA_2048")):
        with pytest.raises(ClientError) as e:
            root.get_parameters_for_import(
                KeyId=md["KeyId"], WrappingAlgorithm=algorithm, WrappingKeySpec=spec
            )
        assert error_of(e) == denied(ROOT, "GetParametersForImport", md["Arn"], "resource")
    params = root.get_parameters_for_import(
        KeyId=md["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_3072"
    )
    with pytest.raises(ClientError) as e:  # refused before the (bogus) material is looked at
        root.import_key_material(
            KeyId=md["KeyId"], ImportToken=params["ImportToken"], EncryptedKeyMaterial=b"x" * 384,
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )  # fmt: skip
    assert error_of(e) == denied(ROOT, "ImportKeyMaterial", md["Arn"], "resource")


def test_create_key_default_policy_skips_the_lockout_check(
    authz_deployment: Deployment, authz_server: ServerProcess, root: Any, tmp_path: Path
) -> None:
    """The lockout check applies to a key policy the caller provides (CreateKey `Policy` doc): a user whose
    identity policy allows kms:CreateKey but not kms:PutKeyPolicy gets a key with the default policy."""
    authz_deployment.cli("admin", "user", "create", "erin", "--account", TEST_ACCOUNT)
    document = tmp_path / "create-only.json"
    document.write_text(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": ["kms:CreateKey", "kms:Encrypt"], "Resource": "*"}
                ],
            }
        )
    )
    authz_deployment.cli(
        "admin", "policy", "put", "--account", TEST_ACCOUNT, "--user", "erin", "--name", "p", str(document)
    )
    made = authz_deployment.cli("admin", "access-key", "create", "--account", TEST_ACCOUNT, "--user", "erin")
    lines = made.stdout.splitlines()
    key_id = next(line.split("= ")[1] for line in lines if "aws_access_key_id" in line)
    secret = next(line.split("= ")[1] for line in lines if "aws_secret_access_key" in line)
    erin = client(authz_server.url, key_id, secret)
    md = erin.create_key()["KeyMetadata"]
    erin.encrypt(KeyId=md["KeyId"], Plaintext=b"x")
    assert "Enable IAM User Permissions" in root.get_key_policy(KeyId=md["KeyId"])["Policy"]
    with pytest.raises(ClientError) as e:  # a policy she provides is still checked
        erin.create_key(Policy=policy(allow(ROOT)))
    assert error_of(e)[0] == "MalformedPolicyDocumentException"


def test_cross_account_iam_user_needs_both_policies(
    authz_deployment: Deployment, authz_server: ServerProcess, root: Any, tmp_path: Path
) -> None:
    """Cross-account: the key policy lets the other account in and the user's own identity policy allows
    the action on the key ARN; either alone is not enough (kms-semantics.md 6.4)."""
    authz_deployment.cli("admin", "user", "create", "frank", "--account", OTHER_ACCOUNT)
    made = authz_deployment.cli(
        "admin", "access-key", "create", "--account", OTHER_ACCOUNT, "--user", "frank"
    )
    lines = made.stdout.splitlines()
    key_id = next(line.split("= ")[1] for line in lines if "aws_access_key_id" in line)
    secret = next(line.split("= ")[1] for line in lines if "aws_secret_access_key" in line)
    frank = client(authz_server.url, key_id, secret)
    frank_arn = f"arn:aws:iam::{OTHER_ACCOUNT}:user/frank"
    delegating = root.create_key(Policy=policy(allow(ROOT), allow(OTHER_ACCOUNT, "kms:Encrypt")))[
        "KeyMetadata"
    ]
    default = root.create_key()["KeyMetadata"]
    with pytest.raises(ClientError) as e:  # no identity policy yet
        frank.encrypt(KeyId=delegating["Arn"], Plaintext=b"x")
    assert error_of(e) == denied(frank_arn, "Encrypt", delegating["Arn"], "identity")
    document = tmp_path / "frank.json"
    document.write_text(
        json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
        )
    )
    authz_deployment.cli(
        "admin", "policy", "put", "--account", OTHER_ACCOUNT, "--user", "frank", "--name", "p", str(document)
    )
    frank.encrypt(KeyId=delegating["Arn"], Plaintext=b"x")
    with pytest.raises(ClientError) as e:  # the key policy delegates Encrypt only
        frank.decrypt(
            CiphertextBlob=root.encrypt(KeyId=delegating["KeyId"], Plaintext=b"x")["CiphertextBlob"]
        )
    assert error_of(e) == denied(frank_arn, "Decrypt", delegating["Arn"], "resource")
    with pytest.raises(ClientError) as e:  # the default policy's root statement delegates within its account
        frank.encrypt(KeyId=default["Arn"], Plaintext=b"x")
    assert error_of(e) == denied(frank_arn, "Encrypt", default["Arn"], "resource")
