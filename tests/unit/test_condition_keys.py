"""Condition keys built for a permission check (kms-semantics.md 6.5) and the default principal source."""

from __future__ import annotations

from openkms.authz.model import PrincipalType
from openkms.service.authorization import CROSS_ACCOUNT_ACTIONS, ArnPrincipalSource
from openkms.service.condition_keys import caller_keys, create_key_keys, key_keys, request_keys
from openkms.service.context import Caller, RequestContext
from openkms.storage.base import KeyRecord, KeyState

ACCOUNT = "111122223333"


def ctx(caller: Caller, *, secure: bool = False) -> RequestContext:
    return RequestContext("r", caller, "eu-west-1", "10.1.2.3", "ua", 1_700_000_000.5, secure=secure)


def test_encrypt_keys_keep_context_values_and_lower_case_names() -> None:
    keys = request_keys("Encrypt", {"EncryptionContext": {"AppName": "Billing"}}, None)
    assert keys["kms:encryptioncontext:appname"] == "Billing"
    assert keys["kms:encryptioncontextkeys"] == ("AppName",)
    assert keys["kms:encryptionalgorithm"] == "SYMMETRIC_DEFAULT"
    assert "kms:requestalias" not in keys
    assert request_keys("Encrypt", {}, None)["kms:encryptioncontextkeys"] == ()


def test_re_encrypt_uses_the_side_of_the_permission() -> None:
    params = {
        "SourceEncryptionContext": {"s": "1"},
        "DestinationEncryptionContext": {"d": "2"},
        "DestinationEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
    }
    source = request_keys("ReEncryptFrom", params, None)
    destination = request_keys("ReEncryptTo", params, None)
    assert (
        source["kms:encryptioncontextkeys"] == ("s",)
        and source["kms:encryptionalgorithm"] == "SYMMETRIC_DEFAULT"
    )
    assert destination["kms:encryptioncontext:d"] == "2"
    assert destination["kms:encryptionalgorithm"] == "RSAES_OAEP_SHA_256"


def test_operation_specific_keys() -> None:
    assert request_keys("Sign", {"SigningAlgorithm": "ECDSA_SHA_256"}, None) == {
        "kms:signingalgorithm": "ECDSA_SHA_256",
        "kms:messagetype": "RAW",
    }
    assert (
        request_keys("GenerateMac", {"MacAlgorithm": "HMAC_SHA_256"}, None)["kms:macalgorithm"]
        == "HMAC_SHA_256"
    )
    assert request_keys("PutKeyPolicy", {}, None) == {
        "kms:policyname": "default",
        "kms:bypasspolicylockoutsafetycheck": False,
    }
    assert request_keys("GetKeyPolicy", {"PolicyName": "AWS_RAM"}, None) == {"kms:policyname": "AWS_RAM"}
    assert request_keys("EnableKeyRotation", {}, None) == {"kms:rotationperiodindays": 365}
    assert request_keys("ScheduleKeyDeletion", {"PendingWindowInDays": 7}, None) == {
        "kms:schedulekeydeletionpendingwindowindays": 7
    }
    tagged = request_keys("TagResource", {"Tags": [{"TagKey": "Team", "TagValue": "Blue"}]}, None)
    assert tagged == {"aws:requesttag/team": "Blue", "aws:tagkeys": ("Team",)}
    assert request_keys("UntagResource", {"TagKeys": ["a"]}, None) == {"aws:tagkeys": ("a",)}
    assert request_keys("RevokeGrant", {}, None) == {"kms:grantisforawsresource": False}
    pair = request_keys("GenerateDataKeyPair", {"KeyPairSpec": "RSA_2048"}, None)
    assert pair["kms:datakeypairspec"] == "RSA_2048"


def test_request_alias_only_where_aws_sets_it() -> None:
    assert request_keys("Encrypt", {}, "alias/app")["kms:requestalias"] == "alias/app"
    assert request_keys("DescribeKey", {}, "alias/app")["kms:requestalias"] == "alias/app"
    assert "kms:requestalias" not in request_keys("DisableKey", {}, "alias/app")


def test_create_key_keys_use_the_request_and_its_defaults() -> None:
    keys = create_key_keys({"Tags": [{"TagKey": "k", "TagValue": "v"}]})
    assert keys["kms:keyspec"] == "SYMMETRIC_DEFAULT" and keys["kms:keyusage"] == "ENCRYPT_DECRYPT"
    assert keys["kms:keyorigin"] == "AWS_KMS" and keys["kms:multiregion"] is False
    assert keys["kms:bypasspolicylockoutsafetycheck"] is False
    assert keys["aws:requesttag/k"] == "v" and keys["aws:tagkeys"] == ("k",)
    signing = create_key_keys({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"})
    assert signing["kms:keyspec"] == "ECC_NIST_P256" and signing["kms:keyusage"] == "SIGN_VERIFY"


def test_key_keys() -> None:
    key = KeyRecord(ACCOUNT, "eu-west-1", "k", 0.0, "", "HMAC_256", "GENERATE_VERIFY_MAC", "AWS_KMS",
                    "CUSTOMER", KeyState.ENABLED, "{}")  # fmt: skip
    keys = key_keys(key, {"Env": "prod"}, ("alias/a", "alias/b"))
    assert keys["kms:keyspec"] == "HMAC_256" and keys["kms:keyusage"] == "GENERATE_VERIFY_MAC"
    assert keys["aws:resourcetag/env"] == "prod" and keys["kms:resourcealiases"] == ("alias/a", "alias/b")
    assert keys["kms:multiregion"] is False


def test_caller_keys_of_root_user_and_service() -> None:
    source = ArnPrincipalSource()
    root_caller = Caller(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root", "AK1")
    root = source.principal(root_caller)
    assert root.type is PrincipalType.ACCOUNT and root.identity_policies is None
    keys = caller_keys(ctx(root_caller, secure=True), root)
    assert keys["aws:principaltype"] == "Account" and "aws:username" not in keys
    assert keys["aws:securetransport"] is True and keys["aws:sourceip"] == "10.1.2.3"
    assert keys["kms:calleraccount"] == ACCOUNT and keys["aws:requestedregion"] == "eu-west-1"
    assert keys["aws:currenttime"] == "2023-11-14T22:13:20Z" and keys["aws:epochtime"] == 1_700_000_000
    assert "kms:viaservice" not in keys

    user_caller = Caller(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/alice", "AK2", via_service="s3")
    alice = source.principal(user_caller)
    assert alice.type is PrincipalType.USER and alice.user_id.startswith("AIDA") and len(alice.user_id) == 21
    keys = caller_keys(ctx(user_caller), alice)
    assert keys["aws:username"] == "alice" and keys["aws:principalarn"] == alice.arn
    assert keys["aws:securetransport"] is False
    assert keys["kms:viaservice"] == "s3.eu-west-1.amazonaws.com"


def test_cross_account_actions_follow_section_2_3() -> None:
    assert {"Encrypt", "ReEncryptFrom", "ReEncryptTo", "DescribeKey", "GetPublicKey"} <= CROSS_ACCOUNT_ACTIONS
    assert not {"PutKeyPolicy", "DisableKey", "ScheduleKeyDeletion", "TagResource", "CreateAlias"} & (
        CROSS_ACCOUNT_ACTIONS
    )


def test_create_grant_keys_describe_the_requested_grant() -> None:
    params = {
        "GranteePrincipal": "arn:aws:iam::111122223333:user/alice",
        "Operations": ["Decrypt", "DescribeKey"],
        "Constraints": {"EncryptionContextSubset": {"App": "billing"}},
    }
    keys = request_keys("CreateGrant", params, None)
    assert keys == {
        "kms:grantisforawsresource": False,
        "kms:grantoperations": ("Decrypt", "DescribeKey"),
        "kms:granteeprincipal": "arn:aws:iam::111122223333:user/alice",
        "kms:grantconstrainttype": "EncryptionContextSubset",
        "kms:encryptioncontext:app": "billing",
        "kms:encryptioncontextkeys": ("App",),
    }


def test_import_keys() -> None:
    wrapping = {"WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"}
    assert request_keys("GetParametersForImport", wrapping, None) == {
        "kms:wrappingalgorithm": "RSAES_OAEP_SHA_256",
        "kms:wrappingkeyspec": "RSA_2048",
    }
    assert request_keys("ImportKeyMaterial", {"ValidTo": 1_900_000_000.0}, None) == {
        "kms:expirationmodel": "KEY_MATERIAL_EXPIRES",
        "kms:validto": 1_900_000_000.0,
    }
    never = request_keys("ImportKeyMaterial", {"ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}, None)
    assert never == {"kms:expirationmodel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}
