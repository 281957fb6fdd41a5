"""Request validation against real KMS shapes, with AWS's codes and wording."""

from __future__ import annotations

import base64
from typing import Any

import botocore.session
import pytest

from openkms import errors
from openkms.api.validation import format_violations, parse_body, validate

KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"
B64_32 = base64.b64encode(bytes(range(32))).decode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def validation_message(operation: str, params: dict[str, Any]) -> str:
    with pytest.raises(errors.ValidationException) as info:
        validate(operation, params)
    assert info.value.code == "ValidationException"
    assert info.value.status == 400
    return info.value.message


def serialization_message(operation: str, params: dict[str, Any]) -> str:
    with pytest.raises(errors.SerializationException) as info:
        validate(operation, params)
    assert info.value.code == "SerializationException"
    return info.value.message


def enum_values(shape: str) -> str:
    kms = botocore.session.get_session().get_service_model("kms")
    return "[" + ", ".join(kms.shape_for(shape).enum) + "]"


# --------------------------------------------------------------------------- observed AWS messages


def test_generate_random_too_many_bytes() -> None:
    assert validation_message("GenerateRandom", {"NumberOfBytes": 1025}) == (
        "1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy constraint: "
        "Member must have value less than or equal to 1024"
    )


def test_generate_random_zero_bytes() -> None:
    assert validation_message("GenerateRandom", {"NumberOfBytes": 0}) == (
        "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    )


def test_plaintext_too_long_is_reported_without_its_value() -> None:
    plaintext = b64(b"s3cret!" * 600)  # 4200 bytes
    message = validation_message("Encrypt", {"KeyId": KEY, "Plaintext": plaintext})
    assert message == (
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096"
    )


def test_plaintext_limit_applies_to_decoded_bytes() -> None:
    out = validate("Encrypt", {"KeyId": KEY, "Plaintext": b64(b"x" * 4096)})
    assert out["Plaintext"] == b"x" * 4096


def test_empty_plaintext() -> None:
    assert validation_message("Encrypt", {"KeyId": KEY, "Plaintext": ""}) == (
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1"
    )


def test_empty_ciphertext_blob_value_is_not_shown() -> None:
    assert validation_message("Decrypt", {"CiphertextBlob": ""}) == (
        "1 validation error detected: Value at 'ciphertextBlob' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1"
    )


def test_tag_key_too_long() -> None:
    long_key = "k" * 129
    params = {"Tags": [{"TagKey": "ok", "TagValue": "v"}, {"TagKey": long_key, "TagValue": "v"}]}
    assert validation_message("CreateKey", params) == (
        f"1 validation error detected: Value '{long_key}' at 'tags.2.member.tagKey' failed to satisfy "
        "constraint: Member must have length less than or equal to 128"
    )


def test_tag_value_too_long_first_element() -> None:
    long_value = "v" * 257
    params = {"KeyId": KEY, "Tags": [{"TagKey": "k", "TagValue": long_value}]}
    assert validation_message("TagResource", params) == (
        f"1 validation error detected: Value '{long_value}' at 'tags.1.member.tagValue' failed to satisfy "
        "constraint: Member must have length less than or equal to 256"
    )


def test_enum_violation() -> None:
    assert validation_message("CreateKey", {"KeySpec": "HMAC_random"}) == (
        "1 validation error detected: Value 'HMAC_random' at 'keySpec' failed to satisfy constraint: "
        f"Member must satisfy enum value set: {enum_values('KeySpec')}"
    )


def test_missing_required_member() -> None:
    assert validation_message("DescribeKey", {}) == (
        "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_missing_required_sensitive_member() -> None:
    assert validation_message("Encrypt", {}) == (
        "2 validation errors detected: "
        "Value null at 'keyId' failed to satisfy constraint: Member must not be null; "
        "Value at 'plaintext' failed to satisfy constraint: Member must not be null"
    )


def test_multiple_violations_counted_and_joined() -> None:
    message = validation_message("ScheduleKeyDeletion", {"KeyId": "", "PendingWindowInDays": 366})
    assert message == (
        "2 validation errors detected: "
        "Value '' at 'keyId' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1; "
        "Value '366' at 'pendingWindowInDays' failed to satisfy constraint: "
        "Member must have value less than or equal to 365"
    )


def test_violations_across_members_and_nesting() -> None:
    params = {
        "KeySpec": "NOPE",
        "KeyUsage": "RANDOM",
        "Description": "d" * 8193,
        "Tags": [{"TagKey": ""}],
    }
    message = validation_message("CreateKey", params)
    assert message.startswith("5 validation errors detected: ")
    parts = message.removeprefix("5 validation errors detected: ").split("; ")
    assert len(parts) == 5
    assert any("at 'keySpec'" in p for p in parts)
    assert any("Value 'RANDOM' at 'keyUsage'" in p and enum_values("KeyUsageType") in p for p in parts)
    assert any("at 'description'" in p and "less than or equal to 8192" in p for p in parts)
    assert "Value '' at 'tags.1.member.tagKey' failed to satisfy constraint: " in message
    assert (
        "Value null at 'tags.1.member.tagValue' failed to satisfy constraint: Member must not be null"
        in parts
    )


def test_schedule_key_deletion_window() -> None:
    assert validation_message("ScheduleKeyDeletion", {"KeyId": KEY, "PendingWindowInDays": 400}) == (
        "1 validation error detected: Value '400' at 'pendingWindowInDays' failed to satisfy constraint: "
        "Member must have value less than or equal to 365"
    )
    assert validate("ScheduleKeyDeletion", {"KeyId": KEY, "PendingWindowInDays": 7}) == {
        "KeyId": KEY,
        "PendingWindowInDays": 7,
    }


def test_list_keys_limit_zero() -> None:
    assert validation_message("ListKeys", {"Limit": 0}) == (
        "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    )
    assert validation_message("ListKeys", {"Limit": 1001}).endswith("less than or equal to 1000")


def test_list_aliases_marker() -> None:
    assert validation_message("ListAliases", {"Marker": ""}) == (
        "1 validation error detected: Value '' at 'marker' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1"
    )
    assert validation_message("ListAliases", {"Marker": "m\u0100"}) == (
        "1 validation error detected: Value 'm\u0100' at 'marker' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [\\u0020-\\u00FF]*"
    )
    assert validation_message("ListAliases", {"Marker": "m" * 1025}).endswith(
        "Member must have length less than or equal to 1024"
    )
    assert validate("ListAliases", {"Marker": "opaque+/=marker ÿ", "Limit": 50}) == {
        "Limit": 50,
        "Marker": "opaque+/=marker ÿ",
    }


def test_pattern_and_length_both_reported() -> None:
    message = validation_message("CreateAlias", {"AliasName": "", "TargetKeyId": KEY})
    assert message == (
        "2 validation errors detected: "
        "Value '' at 'aliasName' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1; "
        "Value '' at 'aliasName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"
    )


def test_list_of_enums() -> None:
    message = validation_message("CreateGrant", {"KeyId": KEY, "Operations": ["Encrypt", "Bogus"]})
    assert message == (
        "1 validation error detected: Value '[Encrypt, Bogus]' at 'operations' failed to satisfy constraint: "
        "Member must satisfy constraint: "
        f"[Member must satisfy enum value set: {enum_values('GrantOperation')}]"
    )


def test_grant_token_list_too_long() -> None:
    tokens = [f"t{i}" for i in range(11)]
    message = validation_message("Encrypt", {"KeyId": KEY, "Plaintext": B64_32, "GrantTokens": tokens})
    assert message == (
        f"1 validation error detected: Value '[{', '.join(tokens)}]' at 'grantTokens' failed to satisfy "
        "constraint: Member must have length less than or equal to 10"
    )


def test_nested_sensitive_members() -> None:
    params = {"CustomKeyStoreName": "s", "XksProxyAuthenticationCredential": {"AccessKeyId": "lower"}}
    message = validation_message("CreateCustomKeyStore", params)
    assert "lower" not in message
    assert message == (
        "3 validation errors detected: "
        "Value at 'xksProxyAuthenticationCredential.accessKeyId' failed to satisfy constraint: "
        "Member must have length greater than or equal to 20; "
        "Value at 'xksProxyAuthenticationCredential.accessKeyId' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: ^[A-Z2-7]+$; "
        "Value at 'xksProxyAuthenticationCredential.rawSecretAccessKey' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_format_violations() -> None:
    assert format_violations([("a", "'1'", "P")]) == (
        "1 validation error detected: Value '1' at 'a' failed to satisfy constraint: P"
    )
    assert format_violations([("a", None, "P"), ("b", "null", "Q")]) == (
        "2 validation errors detected: Value at 'a' failed to satisfy constraint: P; "
        "Value null at 'b' failed to satisfy constraint: Q"
    )


# --------------------------------------------------------------------------- conversion


def test_valid_encrypt() -> None:
    params = {"KeyId": KEY, "Plaintext": B64_32, "EncryptionContext": {"a": "b"}, "DryRun": False}
    out = validate("Encrypt", params)
    assert out == {
        "KeyId": KEY,
        "Plaintext": bytes(range(32)),
        "EncryptionContext": {"a": "b"},
        "DryRun": False,
    }
    assert out is not params
    assert params["Plaintext"] == B64_32  # the input is left alone
    assert out["EncryptionContext"] is not params["EncryptionContext"]


def test_null_means_absent() -> None:
    params = {
        "KeyId": KEY,
        "Plaintext": B64_32,
        "EncryptionContext": None,
        "GrantTokens": None,
        "DryRun": None,
    }
    assert validate("Encrypt", params) == {"KeyId": KEY, "Plaintext": bytes(range(32))}


def test_null_required_member_is_missing() -> None:
    assert validation_message("DescribeKey", {"KeyId": None}).endswith(
        "Value null at 'keyId' failed to satisfy constraint: Member must not be null"
    )


def test_unknown_members_ignored() -> None:
    params = {"KeyId": KEY, "Plaintext": B64_32, "Bogus": {"x": [1]}, "keyid": 5}
    assert validate("Encrypt", params) == {"KeyId": KEY, "Plaintext": bytes(range(32))}


def test_nested_structures_converted() -> None:
    params = {
        "KeyId": KEY,
        "Operations": ["Decrypt"],
        "Constraints": {"EncryptionContextSubset": {"k": "v"}, "Unknown": 1, "SourceArn": None},
    }
    out = validate("CreateGrant", params)
    assert out == {
        "KeyId": KEY,
        "Operations": ["Decrypt"],
        "Constraints": {"EncryptionContextSubset": {"k": "v"}},
    }


def test_nested_blob_decoded() -> None:
    out = validate("GenerateRandom", {"NumberOfBytes": 8, "Recipient": {"AttestationDocument": b64(b"doc")}})
    assert out == {"NumberOfBytes": 8, "Recipient": {"AttestationDocument": b"doc"}}


def test_integral_float_accepted_as_integer() -> None:
    assert validate("GenerateRandom", {"NumberOfBytes": 32.0}) == {"NumberOfBytes": 32}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1893456000, 1893456000.0),
        (1893459723.5, 1893459723.5),
        ("2030-01-01T00:00:00Z", 1893456000.0),
        ("2030-01-01T01:00:00+01:00", 1893456000.0),
        ("2030-01-01T00:00:00", 1893456000.0),  # naive means UTC
        ("2030-01-01T00:00:00.250Z", 1893456000.25),
    ],
)
def test_timestamps(value: object, expected: float) -> None:
    params = {"KeyId": KEY, "ImportToken": "YQ==", "EncryptedKeyMaterial": "YQ==", "ValidTo": value}
    out = validate("ImportKeyMaterial", params)
    assert out["ValidTo"] == expected
    assert type(out["ValidTo"]) is float
    assert out["ImportToken"] == b"a"


@pytest.mark.parametrize(
    "value",
    [
        "tomorrow",
        "2030-13-01T00:00:00Z",
        "",
        True,
        [1],
        {"t": 1},
        # numbers and strings no datetime can hold (outside years 1-9999)
        1e300,
        -1e300,
        253402300800,
        -62135596801,
        "0001-01-01T00:00:00+14:00",
    ],
)
def test_bad_timestamps(value: object) -> None:
    params = {"KeyId": KEY, "ImportToken": "YQ==", "EncryptedKeyMaterial": "YQ==", "ValidTo": value}
    serialization_message("ImportKeyMaterial", params)


# --------------------------------------------------------------------------- serialization errors


@pytest.mark.parametrize(
    "value",
    ["YQ", "YQ=", "Y", "YQ==YQ==", "YQ==\n", "YW Jj", "-_8=", "YWJj!", "é"],
)
def test_invalid_base64(value: str) -> None:
    message = serialization_message("Encrypt", {"KeyId": KEY, "Plaintext": value})
    assert message == "Value at 'plaintext' is not valid base64 (standard alphabet, with padding)."


def test_base64_checked_before_constraints() -> None:
    serialization_message("Encrypt", {"KeyId": "", "Plaintext": "not base64!"})


@pytest.mark.parametrize(
    ("operation", "params", "message"),
    [
        ("Encrypt", {"KeyId": 1, "Plaintext": B64_32}, "NUMBER_VALUE can not be converted to a String"),
        ("Encrypt", {"KeyId": True, "Plaintext": B64_32}, "BOOLEAN_VALUE can not be converted to a String"),
        (
            "Encrypt",
            {"KeyId": {}, "Plaintext": B64_32},
            "Start of structure or map found where not expected.",
        ),
        ("Encrypt", {"KeyId": ["k"], "Plaintext": B64_32}, "Start of list found where not expected."),
        ("Encrypt", {"KeyId": KEY, "Plaintext": 12}, "NUMBER_VALUE can not be converted to a Blob"),
        ("GenerateRandom", {"NumberOfBytes": "32"}, "STRING_VALUE can not be converted to an Integer"),
        ("GenerateRandom", {"NumberOfBytes": True}, "BOOLEAN_VALUE can not be converted to an Integer"),
        ("GenerateRandom", {"NumberOfBytes": 3.5}, "NUMBER_VALUE can not be converted to an Integer"),
        ("GenerateRandom", {"NumberOfBytes": 2**31}, "NUMBER_VALUE can not be converted to an Integer"),
        (
            "Encrypt",
            {"KeyId": KEY, "Plaintext": B64_32, "DryRun": "true"},
            "STRING_VALUE can not be converted to a Boolean",
        ),
        (
            "Encrypt",
            {"KeyId": KEY, "Plaintext": B64_32, "DryRun": 1},
            "NUMBER_VALUE can not be converted to a Boolean",
        ),
        (
            "Encrypt",
            {"KeyId": KEY, "Plaintext": B64_32, "EncryptionContext": ["a"]},
            "Start of list found where not expected.",
        ),
        (
            "Encrypt",
            {"KeyId": KEY, "Plaintext": B64_32, "EncryptionContext": {"a": 1}},
            "NUMBER_VALUE can not be converted to a String",
        ),
        (
            "Encrypt",
            {"KeyId": KEY, "Plaintext": B64_32, "GrantTokens": "t"},
            "STRING_VALUE can not be converted to a List",
        ),
        (
            "Encrypt",
            {"KeyId": KEY, "Plaintext": B64_32, "GrantTokens": [1]},
            "NUMBER_VALUE can not be converted to a String",
        ),
        ("CreateKey", {"Tags": [["k", "v"]]}, "Start of list found where not expected."),
        ("CreateKey", {"Tags": ["k"]}, "STRING_VALUE can not be converted to a Structure"),
        ("CreateKey", {"Tags": {"TagKey": "k"}}, "Start of structure or map found where not expected."),
        (
            "CreateGrant",
            {"KeyId": KEY, "Operations": ["Decrypt"], "Constraints": "x"},
            "STRING_VALUE can not be converted to a Structure",
        ),
    ],
)
def test_wrong_json_types(operation: str, params: dict[str, Any], message: str) -> None:
    assert serialization_message(operation, params) == message


def test_type_error_wins_over_constraint_violations() -> None:
    serialization_message("GenerateRandom", {"NumberOfBytes": 5000, "CustomKeyStoreId": 7})


@pytest.mark.parametrize(
    "params",
    [
        {"KeyId": KEY, "Plaintext": B64_32, "GrantTokens": ["t", None]},
        {"KeyId": KEY, "Plaintext": B64_32, "EncryptionContext": {"a": None}},
    ],
)
def test_null_inside_list_or_map_rejected(params: dict[str, Any]) -> None:
    serialization_message("Encrypt", params)


def test_unknown_operation() -> None:
    with pytest.raises(errors.UnknownOperationException):
        validate("FlyToTheMoon", {})


# --------------------------------------------------------------------------- every operation


def test_every_operation_reports_exactly_its_required_members() -> None:
    kms = botocore.session.get_session().get_service_model("kms")
    for name in kms.operation_names:
        required = kms.operation_model(name).input_shape.required_members
        if not required:
            assert validate(name, {}) == {}
            continue
        message = validation_message(name, {})
        count = len(required)
        assert message.startswith(f"{count} validation error{'s' if count > 1 else ''} detected: ")
        for member in required:
            path = member[0].lower() + member[1:]
            assert f" at '{path}' failed to satisfy constraint: Member must not be null" in message


# --------------------------------------------------------------------------- parse_body


def test_parse_body_empty() -> None:
    assert parse_body(b"") == {}
    assert parse_body(b" \r\n") == {}
    assert parse_body(b"{}") == {}


def test_parse_body_object() -> None:
    assert parse_body(b'{"KeyId": "k", "Limit": 5, "X": null}') == {"KeyId": "k", "Limit": 5, "X": None}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "The request body is not valid JSON."),
        (b"not json", "The request body is not valid JSON."),
        (b'{"a": "\xff"}', "The request body is not valid JSON."),
        (b"[]", "Start of list found where not expected."),
        (b'"text"', "STRING_VALUE can not be converted to a Structure"),
        (b"42", "NUMBER_VALUE can not be converted to a Structure"),
        (b"null", "NULL_VALUE can not be converted to a Structure"),
    ],
)
def test_parse_body_errors(body: bytes, message: str) -> None:
    with pytest.raises(errors.SerializationException) as info:
        parse_body(body)
    assert info.value.message == message
