"""The KMS service model is read from botocore, not retyped."""

from __future__ import annotations

import re

import botocore.session
import pytest

from openkms.api.model import (
    BlobNode,
    IntegerNode,
    ListNode,
    MapNode,
    StringNode,
    StructureNode,
    UnsupportedPatternError,
    java_regex_to_python,
    load_service_model,
)
from openkms.api.validation import operation_names


@pytest.fixture(scope="module")
def botocore_kms():  # the independent view of the same model
    return botocore.session.get_session().get_service_model("kms")


def test_all_56_operations(botocore_kms) -> None:
    model = load_service_model()
    assert len(model.operations) == 56
    assert set(model.operations) == set(botocore_kms.operation_names)
    assert operation_names() == sorted(botocore_kms.operation_names)
    assert {"Encrypt", "Decrypt", "CreateKey", "GenerateRandom", "ListAliases"} <= set(model.operations)


def test_cached() -> None:
    assert load_service_model() is load_service_model()


def test_metadata() -> None:
    model = load_service_model()
    assert model.target_prefix == "TrentService"
    assert model.api_version == "2014-11-01"
    assert model.json_version == "1.1"
    assert model.signing_name == "kms"
    assert model.metadata["protocol"] == "json"


def test_every_pattern_is_enforced() -> None:
    assert load_service_model().unenforced_patterns == frozenset()


def test_operation_members_match_botocore(botocore_kms) -> None:
    model = load_service_model()
    for name in botocore_kms.operation_names:
        op = model.operations[name]
        bc = botocore_kms.operation_model(name)
        assert op.name == name
        assert [m[0] for m in op.input_shape.members] == list(bc.input_shape.members)
        required = {m[0] for m in op.input_shape.members if m[3]}
        assert required == set(bc.input_shape.required_members)
        expected_out = list(bc.output_shape.members) if bc.output_shape is not None else []
        assert list(op.output_members) == expected_out
        assert op.error_codes == frozenset(e.error_code for e in bc.error_shapes)


def test_operation_details() -> None:
    ops = load_service_model().operations
    assert ops["DisableKey"].output_members == ()
    assert ops["Encrypt"].output_members == ("CiphertextBlob", "KeyId", "EncryptionAlgorithm")
    assert "NotFoundException" in ops["Encrypt"].error_codes
    assert "DisabledException" in ops["Encrypt"].error_codes
    assert "InvalidMarkerException" in ops["ListAliases"].error_codes


def test_sensitive_members() -> None:
    ops = load_service_model().operations
    assert ops["Encrypt"].sensitive_input_members == {"Plaintext"}
    assert ops["Sign"].sensitive_input_members == {"Message"}
    assert ops["Decrypt"].sensitive_input_members == frozenset()
    assert ops["Decrypt"].sensitive_output_members == {"Plaintext"}
    assert ops["GenerateDataKeyPair"].sensitive_output_members == {"PrivateKeyPlaintext"}
    assert ops["CreateCustomKeyStore"].sensitive_input_members == {
        "KeyStorePassword",
        "XksProxyAuthenticationCredential",  # contains the raw secret access key
    }


def test_compiled_tree_for_encrypt() -> None:
    enc = load_service_model().operations["Encrypt"].input_shape
    assert isinstance(enc, StructureNode)
    members = {m[0]: m for m in enc.members}
    _, segment, key_id, required = members["KeyId"]
    assert (segment, required) == ("keyId", True)
    assert isinstance(key_id, StringNode)
    assert (key_id.min_len, key_id.max_len) == (1, 2048)
    plaintext = members["Plaintext"][2]
    assert isinstance(plaintext, BlobNode)
    assert plaintext.sensitive and (plaintext.min_len, plaintext.max_len) == (1, 4096)
    assert isinstance(members["EncryptionContext"][2], MapNode)
    grant_tokens = members["GrantTokens"][2]
    assert isinstance(grant_tokens, ListNode) and grant_tokens.max_len == 10
    algorithm = members["EncryptionAlgorithm"][2]
    assert isinstance(algorithm, StringNode) and algorithm.enum is not None
    assert "SYMMETRIC_DEFAULT" in algorithm.enum


def test_integer_bounds_from_model() -> None:
    ops = load_service_model().operations
    nob = {m[0]: m[2] for m in ops["GenerateRandom"].input_shape.members}["NumberOfBytes"]
    assert isinstance(nob, IntegerNode) and (nob.min_value, nob.max_value) == (1, 1024)
    pw = {m[0]: m[2] for m in ops["ScheduleKeyDeletion"].input_shape.members}["PendingWindowInDays"]
    assert isinstance(pw, IntegerNode) and (pw.min_value, pw.max_value) == (1, 365)


def test_shared_shapes_compile_once() -> None:
    ops = load_service_model().operations
    a = {m[0]: m[2] for m in ops["Encrypt"].input_shape.members}["KeyId"]
    b = {m[0]: m[2] for m in ops["Decrypt"].input_shape.members}["KeyId"]
    assert a is b


@pytest.mark.parametrize(
    ("java", "ok", "bad"),
    [
        (r"[\w]+", ["abc_9"], ["é", "a-b", ""]),  # Java's \w is ASCII only
        (r"^[a-zA-Z0-9:/_-]+$", ["alias/x_y-z"], ["alias x", "a\n"]),
        (r"^[a-zA-Z0-9-_.]+$", ["a-b_c.d"], ["a b"]),
        (r"[\u0020-\u00FF]*", ["", "ÿ ~"], ["\u0100", "\t"]),
        (
            r"^(/[a-zA-Z0-9\/_-]+/kms/xks/v\d{1,2})$|^(/kms/xks/v\d{1,2})$",
            ["/kms/xks/v1", "/p/kms/xks/v12"],
            ["/kms/xks/v"],
        ),
        (
            r"^arn:aws[a-z0-9-]*:[a-z0-9-]+:[a-z0-9-]*:[0-9]{12}:.+$",
            ["arn:aws:s3::111122223333:x"],
            ["arn:aws:s3::111122223333:\u2028"],
        ),
        (r"\p{Alpha}+\P{Digit}", ["ab-"], ["ab1", "é-"]),
    ],
)
def test_java_regex_translation(java: str, ok: list[str], bad: list[str]) -> None:
    compiled = re.compile(java_regex_to_python(java), re.ASCII)
    for s in ok:
        assert compiled.fullmatch(s), s
    for s in bad:
        assert not compiled.fullmatch(s), s


@pytest.mark.parametrize("java", [r"\p{L}+", r"[a-z&&[^x]]", r"\Qa.b\E", r"[a-z[0-9]]"])
def test_java_regex_unsupported(java: str) -> None:
    with pytest.raises(UnsupportedPatternError):
        java_regex_to_python(java)
