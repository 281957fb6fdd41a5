"""LookupEvents request checks and the SigV4 scope of the CloudTrail endpoint."""

from __future__ import annotations

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from openkms import errors
from openkms.api.sigv4 import Credential, SigV4Verifier
from openkms.audit.lookup import (
    InvalidLookupAttributesException,
    InvalidMaxResultsException,
    InvalidNextTokenException,
    InvalidTimeRangeException,
    _make_token,
    _read_token,
    validate_request,
)


def test_validation() -> None:
    ok = validate_request(
        "LookupEvents",
        {
            "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "Encrypt"}],
            "MaxResults": 10,
            "Unknown": 1,
        },
    )
    assert "Unknown" not in ok
    with pytest.raises(InvalidLookupAttributesException):
        validate_request(
            "LookupEvents", {"LookupAttributes": [{"AttributeKey": "Nope", "AttributeValue": "x"}]}
        )
    two = [
        {"AttributeKey": "EventName", "AttributeValue": "a"},
        {"AttributeKey": "EventId", "AttributeValue": "b"},
    ]
    with pytest.raises(InvalidLookupAttributesException):
        validate_request("LookupEvents", {"LookupAttributes": two})
    with pytest.raises(InvalidTimeRangeException):
        validate_request("LookupEvents", {"StartTime": 10, "EndTime": 5})
    with pytest.raises(InvalidMaxResultsException):
        validate_request("LookupEvents", {"MaxResults": 51})
    with pytest.raises(errors.SerializationException):
        validate_request("LookupEvents", {"StartTime": "yesterday"})


def test_next_token_is_bound_to_its_query() -> None:
    token = _make_token(42, "abc")
    assert _read_token(token, "abc") == 42
    with pytest.raises(InvalidNextTokenException):
        _read_token(token, "other query")
    with pytest.raises(InvalidNextTokenException):
        _read_token("%%%", "abc")


def _headers(service: str) -> tuple[list[tuple[str, str]], bytes]:
    body = b"{}"
    request = AWSRequest(
        method="POST",
        url="http://127.0.0.1:1/",
        data=body,
        headers={"X-Amz-Target": "x", "Content-Type": "application/x-amz-json-1.1"},
    )
    SigV4Auth(Credentials("AKID", "secret"), service, "us-east-1").add_auth(request)
    return [(k.lower(), v) for k, v in request.headers.items()] + [("host", "127.0.0.1:1")], body


def test_cloudtrail_scope_accepted_only_when_configured() -> None:
    credential = Credential("AKID", "secret", "111122223333", "arn:aws:iam::111122223333:root")
    headers, body = _headers("cloudtrail")
    kms_only = SigV4Verifier(lambda _: credential)
    with pytest.raises(errors.InvalidSignatureException):
        kms_only.verify("POST", "/", "", headers, body)
    both = SigV4Verifier(lambda _: credential, extra_services=["cloudtrail"])
    assert both.verify("POST", "/", "", headers, body).service == "cloudtrail"
    kms_headers, kms_body = _headers("kms")
    assert both.verify("POST", "/", "", kms_headers, kms_body).service == "kms"
