"""SigV4 verification: known-answer vectors from botocore and the JS SDK v3, and every rejection path."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth, _host_from_url
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from openkms import errors
from openkms.api import sigv4
from openkms.api.sigv4 import Credential, SigV4Verifier, VerifiedRequest

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "sigv4"

NOW = 1735732800.0  # 2025-01-01T12:00:00Z
FIXED = datetime.datetime(2025, 1, 1, 12, 0, 0)
AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_AKID = "ASIAEXAMPLE"
SESSION_SECRET = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQDEXAMPLE+/="

LONG_TERM = Credential(AKID, SECRET, "111122223333", "arn:aws:iam::111122223333:user/alice")
SESSION = Credential(
    SESSION_AKID,
    SESSION_SECRET,
    "111122223333",
    "arn:aws:sts::111122223333:assumed-role/App/s1",
    session_token=TOKEN,
    expires_at=NOW + 3600,
)
STORE = {c.access_key_id: c for c in (LONG_TERM, SESSION)}

ENCRYPT_BODY = b'{"KeyId": "alias/app", "Plaintext": "aGVsbG8="}'
KMS_HEADERS = [("X-Amz-Target", "TrentService.Encrypt"), ("Content-Type", "application/x-amz-json-1.1")]

MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)
INVALID_TOKEN = "The security token included in the request is invalid."


# --------------------------------------------------------------------------------------------------
# helpers


@dataclasses.dataclass
class Req:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes

    def get(self, name: str) -> str:
        return next(v for k, v in self.headers if k == name)

    def replace(self, name: str, value: str) -> Req:
        return dataclasses.replace(self, headers=[(k, value if k == name else v) for k, v in self.headers])

    def without(self, name: str) -> Req:
        return dataclasses.replace(self, headers=[(k, v) for k, v in self.headers if k != name])

    def adding(self, name: str, value: str) -> Req:
        return dataclasses.replace(self, headers=[*self.headers, (name, value)])

    def auth(self, transform: Callable[[str], str]) -> Req:
        return self.replace("authorization", transform(self.get("authorization")))

    @property
    def signature(self) -> str:
        return self.get("authorization").rsplit("Signature=", 1)[1]


def sign(
    *,
    body: bytes = ENCRYPT_BODY,
    url: str = "http://localhost:4566/",
    region: str = "us-east-1",
    service: str = "kms",
    access_key: str = AKID,
    secret: str = SECRET,
    token: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    when: datetime.datetime = FIXED,
) -> Req:
    """A request signed by botocore's SigV4Auth, as the server would receive it."""
    request = AWSRequest(method="POST", url=url, data=body)
    request.headers = HTTPHeaders()
    for name, value in KMS_HEADERS if headers is None else headers:
        request.headers[name] = value
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        SigV4Auth(Credentials(access_key, secret, token), service, region).add_auth(request)
    parts = urlsplit(url)
    wire = [("host", _host_from_url(url))] + [(k.lower(), v) for k, v in request.headers.items()]
    wire.append(("content-length", str(len(body))))
    return Req("POST", parts.path or "/", parts.query, wire, body)


def verifier(clock: float = NOW, **kwargs: Any) -> SigV4Verifier:
    return SigV4Verifier(STORE.get, clock=lambda: clock, **kwargs)


def verify(req: Req, v: SigV4Verifier | None = None) -> VerifiedRequest:
    return (v or verifier()).verify(req.method, req.path, req.query, req.headers, req.body)


def rejected(req: Req, error: type[errors.KMSError], message: str, v: SigV4Verifier | None = None) -> str:
    with pytest.raises(errors.KMSError) as info:
        verify(req, v)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value.message}"
    assert info.value.message == message
    assert info.value.code == error.code
    return info.value.message


def rejected_like(
    req: Req, error: type[errors.KMSError], pattern: str, v: SigV4Verifier | None = None
) -> str:
    with pytest.raises(errors.KMSError) as info:
        verify(req, v)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value.message}"
    assert re.fullmatch(pattern, info.value.message), info.value.message
    return info.value.message


# --------------------------------------------------------------------------------------------------
# known-answer vectors


def _load_vectors() -> list[Any]:
    return [
        pytest.param(vector, id=f"{file}:{vector['name']}")
        for file in ("botocore.json", "js_sdk_v3.json")
        for vector in json.loads((VECTORS / file).read_text())["vectors"]
    ]


@pytest.mark.parametrize("vector", _load_vectors())
def test_vector_verifies(vector: dict[str, Any]) -> None:
    cred = Credential(**vector["credential"])
    v = SigV4Verifier({cred.access_key_id: cred}.get, clock=lambda: vector["now"])
    headers = [(name, value) for name, value in vector["headers"]]
    body = base64.b64decode(vector["body_b64"])
    result = v.verify(vector["method"], vector["path"], vector["query"], headers, body)
    assert result == VerifiedRequest(cred, vector["expect"]["region"], vector["expect"]["signed_at"])
    # ... and any change to the body breaks it
    with pytest.raises((errors.InvalidSignatureException,)):
        v.verify(vector["method"], vector["path"], vector["query"], headers, body + b" ")


def test_vector_files_cover_the_required_cases() -> None:
    boto = json.loads((VECTORS / "botocore.json").read_text())["vectors"]
    js = json.loads((VECTORS / "js_sdk_v3.json").read_text())["vectors"]
    assert len(boto) >= 8 and len(js) >= 4
    paths = {v["path"] for v in boto + js}
    assert {"/", "/prefix", "/a%20b"} <= paths
    assert any(v["query"] for v in boto) and any(v["query"] for v in js)
    assert any(v["credential"]["session_token"] for v in boto) and any(
        v["credential"]["session_token"] for v in js
    )
    assert any(base64.b64decode(v["body_b64"]) == b"" for v in boto)
    assert any(len({h for h, _ in v["headers"]}) < len(v["headers"]) for v in boto)  # duplicates
    assert any(re.search(r":\d+$", dict(v["headers"])["host"]) for v in boto + js)  # non-default port
    js_signed = dict(js[0]["headers"])["authorization"]
    for name in ("x-amz-content-sha256", "x-amz-user-agent", "content-length", "amz-sdk-invocation-id"):
        assert name in js_signed


# --------------------------------------------------------------------------------------------------
# accepted variations


def test_typical_request_returns_identity_region_and_time() -> None:
    result = verify(sign(region="eu-west-1"))
    assert result.credential is LONG_TERM
    assert result.region == "eu-west-1"
    assert result.signed_at == NOW


def test_comma_without_space_in_authorization() -> None:
    req = sign().auth(lambda a: a.replace(", ", ","))
    assert verify(req).region == "us-east-1"


def test_extra_whitespace_between_components() -> None:
    req = sign().auth(lambda a: a.replace(", ", " ,  ").replace(" Credential", "   Credential"))
    assert verify(req).credential is LONG_TERM


def test_skew_boundaries_inclusive() -> None:
    req = sign()
    verify(req, verifier(NOW + 300))
    verify(req, verifier(NOW - 300))
    verify(req, verifier(NOW + 300.9))  # sub-second clock is floored


def test_allowed_regions() -> None:
    v = verifier(allowed_regions={"us-east-1", "eu-west-1"})
    assert verify(sign(region="eu-west-1"), v).region == "eu-west-1"


def test_session_token_accepted_when_unsigned() -> None:
    # botocore signs x-amz-security-token; accept it whether or not it is in SignedHeaders
    req = sign(access_key=SESSION_AKID, secret=SESSION_SECRET, headers=KMS_HEADERS)
    req = req.adding("x-amz-security-token", TOKEN)
    assert verify(req).credential is SESSION


def test_signing_key_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, ...]] = []
    real = sigv4.derive_signing_key

    def counting(secret: str, date: str, region: str, service: str) -> bytes:
        calls.append((date, region, service))
        return real(secret, date, region, service)

    monkeypatch.setattr(sigv4, "derive_signing_key", counting)
    v = verifier()
    for _ in range(5):
        verify(sign(), v)
    verify(sign(region="eu-west-1"), v)
    assert calls == [("20250101", "us-east-1", "kms"), ("20250101", "eu-west-1", "kms")]


def test_signing_key_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sigv4, "_SIGNING_KEY_CACHE_SIZE", 3)
    v = verifier()
    regions = [f"us-test-{i}" for i in range(10)]
    for region in regions:
        verify(sign(region=region), v)
    assert len(v._keys) == 3
    assert [k[3] for k in v._keys] == regions[-3:]


def test_rotated_secret_is_not_served_from_cache() -> None:
    store = {AKID: LONG_TERM}
    v = SigV4Verifier(store.get, clock=lambda: NOW)
    verify(sign(), v)
    store[AKID] = dataclasses.replace(LONG_TERM, secret_access_key="new-secret")
    rejected(sign(), errors.InvalidSignatureException, MISMATCH, v)
    verify(sign(secret="new-secret"), v)


# --------------------------------------------------------------------------------------------------
# 1. missing / malformed Authorization


def test_missing_authorization() -> None:
    rejected(
        sign().without("authorization"),
        errors.MissingAuthenticationTokenException,
        "Missing Authentication Token",
    )


def test_presigned_query_is_not_supported() -> None:
    req = dataclasses.replace(sign().without("authorization"), query="X-Amz-Algorithm=x&X-Amz-Signature=abc")
    rejected_like(req, errors.IncompleteSignatureException, r"Query-string \(presigned\) authentication .*")


@pytest.mark.parametrize(
    ("transform", "expected"),
    [
        (
            lambda a: a.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"),
            "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA1'.",
        ),
        (lambda a: "Bearer abc.def", "Unsupported AWS 'algorithm': 'Bearer'."),
        (lambda a: "", "Unsupported AWS 'algorithm': ''."),
    ],
)
def test_wrong_algorithm(transform: Callable[[str], str], expected: str) -> None:
    rejected(
        sign().auth(transform),
        errors.IncompleteSignatureException,
        expected + " Only 'AWS4-HMAC-SHA256' is supported.",
    )


def test_missing_credential_does_not_echo_signature() -> None:
    req = sign()
    req = req.auth(lambda a: re.sub(r"Credential=[^,]*, ", "", a))
    message = rejected_like(
        req,
        errors.IncompleteSignatureException,
        r"Authorization header requires 'Credential' parameter\. "
        r"Authorization=AWS4-HMAC-SHA256 SignedHeaders=content-type;host;x-amz-date;x-amz-target",
    )
    assert req.signature not in message


def test_missing_signed_headers_and_signature() -> None:
    req = sign().auth(lambda a: a.split(",")[0])
    rejected(
        req,
        errors.IncompleteSignatureException,
        "Authorization header requires 'SignedHeaders' parameter. "
        "Authorization header requires 'Signature' parameter. "
        "Authorization=AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/kms/aws4_request",
    )


def test_empty_signature_component() -> None:
    req = sign()
    req = req.auth(lambda a: a.replace(req.signature, ""))
    message = rejected_like(
        req, errors.IncompleteSignatureException, r"Authorization header requires 'Signature' parameter\. .*"
    )
    assert "Signature=" not in message


def test_duplicate_component() -> None:
    rejected(
        sign().auth(lambda a: a + ", SignedHeaders=host"),
        errors.IncompleteSignatureException,
        "Authorization header contains the 'SignedHeaders' parameter more than once.",
    )


def test_unknown_component() -> None:
    req = sign()
    message = rejected_like(
        req.auth(lambda a: a.replace("Signature=", "Sig=")),
        errors.IncompleteSignatureException,
        r"Authorization header contains an unexpected component 'Sig'\. .*",
    )
    assert req.signature not in message


def test_two_authorization_headers() -> None:
    req = sign()
    rejected(
        req.adding("authorization", req.get("authorization")),
        errors.IncompleteSignatureException,
        "The request contains more than one Authorization header.",
    )


@pytest.mark.parametrize(
    "credential",
    [
        "AKIDEXAMPLE/20250101/us-east-1/kms",
        "AKIDEXAMPLE/20250101/us-east-1/kms/aws4_request/x",
        "AKIDEXAMPLE",
    ],
)
def test_credential_needs_five_elements(credential: str) -> None:
    rejected(
        sign().auth(lambda a: re.sub(r"Credential=[^,]*", f"Credential={credential}", a)),
        errors.IncompleteSignatureException,
        "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
        f"got '{credential}'",
    )


def test_credential_date_format() -> None:
    rejected(
        sign().auth(lambda a: a.replace("/20250101/", "/2025-1-1/")),
        errors.IncompleteSignatureException,
        "Credential date must be in 'yyyyMMdd' format, got '2025-1-1'",
    )


def test_empty_access_key_id() -> None:
    rejected_like(
        sign().auth(lambda a: a.replace("Credential=AKIDEXAMPLE/", "Credential=/")),
        errors.IncompleteSignatureException,
        r"Credential must start with an access key id, .*",
    )


@pytest.mark.parametrize(
    "signed", ["host;content-type;x-amz-date", "content-type;Host;x-amz-date", "host;host", ""]
)
def test_malformed_signed_headers(signed: str) -> None:
    req = sign().auth(lambda a: re.sub(r"SignedHeaders=[^,]*", f"SignedHeaders={signed}", a))
    if not signed:
        rejected_like(req, errors.IncompleteSignatureException, r".*requires 'SignedHeaders' parameter.*")
    else:
        rejected_like(
            req, errors.IncompleteSignatureException, r"SignedHeaders must be a ';'-separated list .*"
        )


# --------------------------------------------------------------------------------------------------
# 2./3. credential scope


def test_wrong_service() -> None:
    rejected(
        sign(service="s3"),
        errors.InvalidSignatureException,
        "Credential should be scoped to correct service: 'kms'. ",
    )


def test_wrong_terminator() -> None:
    rejected(
        sign().auth(lambda a: a.replace("/aws4_request", "/aws4_requests")),
        errors.InvalidSignatureException,
        "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws4_requests'. ",
    )


def test_region_not_allowed() -> None:
    rejected(
        sign(region="eu-west-1"),
        errors.InvalidSignatureException,
        "Credential should be scoped to a valid region. ",
        verifier(allowed_regions=["us-east-1"]),
    )


@pytest.mark.parametrize("region", ["US-EAST-1", "us_east_1", "-us", "us-", "a" * 70])
def test_malformed_region(region: str) -> None:
    rejected(
        sign(region=region),
        errors.InvalidSignatureException,
        "Credential should be scoped to a valid region. ",
    )


# --------------------------------------------------------------------------------------------------
# 4. request time


def test_stale_signature() -> None:
    rejected(
        sign(),
        errors.InvalidSignatureException,
        "Signature expired: 20250101T120000Z is now earlier than 20250101T120600Z "
        "(20250101T121100Z - 5 min.)",
        verifier(NOW + 660),
    )


def test_future_signature() -> None:
    rejected(
        sign(),
        errors.InvalidSignatureException,
        "Signature not yet current: 20250101T120000Z is still later than 20250101T115500Z "
        "(20250101T115000Z + 5 min.)",
        verifier(NOW - 600),
    )


def test_custom_skew_in_message() -> None:
    rejected(
        sign(),
        errors.InvalidSignatureException,
        "Signature expired: 20250101T120000Z is now earlier than 20250101T120100Z "
        "(20250101T121600Z - 15 min.)",
        verifier(NOW + 960, max_skew_seconds=900),
    )


def test_missing_date() -> None:
    rejected(
        sign().without("x-amz-date"),
        errors.IncompleteSignatureException,
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
        "Authorization=AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/kms/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date;x-amz-target",
    )


@pytest.mark.parametrize(
    "value", ["20250101T120000", "2025-01-01T12:00:00Z", "20250230T120000Z", "20250101T246000Z"]
)
def test_malformed_x_amz_date(value: str) -> None:
    rejected(
        sign().replace("x-amz-date", value),
        errors.IncompleteSignatureException,
        f"Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601",
    )


def test_x_amz_date_must_be_signed() -> None:
    req = sign().auth(lambda a: a.replace(";x-amz-date", ""))
    rejected(
        req,
        errors.InvalidSignatureException,
        "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.",
    )


def test_date_header_must_be_signed() -> None:
    req = sign().without("x-amz-date").adding("date", "Wed, 01 Jan 2025 12:00:00 GMT")
    rejected(
        req, errors.InvalidSignatureException, "'Date' must be a 'SignedHeader' in the AWS Authorization."
    )


def test_date_header_fallback_rfc7231() -> None:
    req = sign(headers=[*KMS_HEADERS, ("Date", "x")])  # botocore writes the date itself, '-0000' form
    assert verify(req).signed_at == NOW
    # the IMF-fixdate spelling parses to the same instant, but the Date header is signed as sent
    rejected(req.replace("date", "Wed, 01 Jan 2025 12:00:00 GMT"), errors.InvalidSignatureException, MISMATCH)


@pytest.mark.parametrize(
    "value",
    [
        "Thu, 01 Jan 2025 12:00:00 GMT",
        "Wed, 01 Jan 2025 12:00:00 UTC",
        "Wednesday, 01-Jan-25 12:00:00 GMT",
        "x",
    ],
)
def test_malformed_date_header(value: str) -> None:
    req = sign(headers=[*KMS_HEADERS, ("Date", "x")]).replace("date", value)
    rejected_like(req, errors.IncompleteSignatureException, r"Date must be in RFC 7231 format, .*")


def test_scope_date_must_match_request_date() -> None:
    rejected(
        sign().auth(lambda a: a.replace("/20250101/", "/20250102/")),
        errors.InvalidSignatureException,
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
        "'20250102' != '20250101', from '20250101T120000Z'.",
    )


# --------------------------------------------------------------------------------------------------
# 6. signed headers


def test_host_must_be_signed() -> None:
    req = sign().auth(lambda a: a.replace(";host", ""))
    rejected(
        req,
        errors.InvalidSignatureException,
        "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
    )


def test_signed_header_must_be_present() -> None:
    rejected(
        sign().without("x-amz-target"),
        errors.InvalidSignatureException,
        "Header 'x-amz-target' is listed in SignedHeaders but is not present in the request.",
    )


# --------------------------------------------------------------------------------------------------
# 7. payload hash


def _js_vector() -> tuple[SigV4Verifier, Req]:
    vector = json.loads((VECTORS / "js_sdk_v3.json").read_text())["vectors"][0]
    cred = Credential(**vector["credential"])
    v = SigV4Verifier({cred.access_key_id: cred}.get, clock=lambda: vector["now"])
    headers = [(name, value) for name, value in vector["headers"]]
    return v, Req(
        vector["method"], vector["path"], vector["query"], headers, base64.b64decode(vector["body_b64"])
    )


def test_content_sha256_mismatch() -> None:
    v, req = _js_vector()
    tampered = dataclasses.replace(req, body=req.body.replace(b"alias/app", b"alias/evil"))
    rejected(
        tampered,
        errors.InvalidSignatureException,
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
        v,
    )


def test_unsigned_payload_refused() -> None:
    req = sign(headers=[*KMS_HEADERS, ("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD")])
    rejected(
        req,
        errors.InvalidSignatureException,
        "UNSIGNED-PAYLOAD is not accepted: 'x-amz-content-sha256' must be the SHA-256 of the request body.",
    )


def test_content_sha256_signed_by_botocore_accepted() -> None:
    import hashlib

    req = sign(headers=[*KMS_HEADERS, ("X-Amz-Content-SHA256", hashlib.sha256(ENCRYPT_BODY).hexdigest())])
    assert verify(req).credential is LONG_TERM


# --------------------------------------------------------------------------------------------------
# 5. identity and session tokens


def test_unknown_access_key() -> None:
    rejected(sign(access_key="AKIDUNKNOWN"), errors.UnrecognizedClientException, INVALID_TOKEN)


def test_session_token_verifies() -> None:
    req = sign(access_key=SESSION_AKID, secret=SESSION_SECRET, token=TOKEN)
    assert verify(req).credential is SESSION


def test_wrong_session_token() -> None:
    req = sign(access_key=SESSION_AKID, secret=SESSION_SECRET, token=TOKEN[:-2] + "x=")
    rejected(req, errors.UnrecognizedClientException, INVALID_TOKEN)


def test_missing_session_token() -> None:
    req = sign(access_key=SESSION_AKID, secret=SESSION_SECRET)
    rejected(req, errors.UnrecognizedClientException, INVALID_TOKEN)


def test_session_token_with_long_term_key() -> None:
    rejected(sign(token=TOKEN), errors.UnrecognizedClientException, INVALID_TOKEN)


def test_expired_session_token() -> None:
    req = sign(
        access_key=SESSION_AKID, secret=SESSION_SECRET, token=TOKEN, when=FIXED + datetime.timedelta(hours=2)
    )
    rejected(
        req,
        errors.ExpiredTokenException,
        "The security token included in the request is expired",
        verifier(NOW + 7200),
    )


# --------------------------------------------------------------------------------------------------
# 11. signature mismatch


def test_tampered_body() -> None:
    req = sign()
    rejected(
        dataclasses.replace(req, body=req.body.replace(b"aGVsbG8=", b"aGVsbG9=")),
        errors.InvalidSignatureException,
        MISMATCH,
    )


def test_tampered_signed_header() -> None:
    rejected(
        sign().replace("x-amz-target", "TrentService.Decrypt"), errors.InvalidSignatureException, MISMATCH
    )


def test_tampered_host() -> None:
    rejected(sign().replace("host", "localhost:4567"), errors.InvalidSignatureException, MISMATCH)


def test_unsigned_header_may_change() -> None:
    req = sign().replace("content-length", "999").adding("user-agent", "anything")
    assert verify(req).credential is LONG_TERM


def test_added_duplicate_of_signed_header() -> None:
    rejected(
        sign().adding("x-amz-target", "TrentService.Decrypt"), errors.InvalidSignatureException, MISMATCH
    )


def test_wrong_secret() -> None:
    rejected(sign(secret="not-the-secret"), errors.InvalidSignatureException, MISMATCH)


def test_tampered_path_and_query() -> None:
    req = sign(url="http://localhost:4566/prefix?a=1")
    verify(req)
    rejected(dataclasses.replace(req, path="/prefix2"), errors.InvalidSignatureException, MISMATCH)
    rejected(dataclasses.replace(req, query="a=2"), errors.InvalidSignatureException, MISMATCH)
    rejected(dataclasses.replace(req, method="PUT"), errors.InvalidSignatureException, MISMATCH)


@pytest.mark.parametrize(
    "mangle", [str.upper, lambda s: s[:-1], lambda s: s + "0", lambda s: s[:-1] + "\u00e9"]
)
def test_malformed_signature_value(mangle: Callable[[str], str]) -> None:
    req = sign()
    rejected(
        req.auth(lambda a: a.replace(req.signature, mangle(req.signature))),
        errors.InvalidSignatureException,
        MISMATCH,
    )


# --------------------------------------------------------------------------------------------------
# canonicalisation helpers


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("/", "/"),
        ("", "/"),
        ("/prefix", "/prefix"),
        ("/prefix/", "/prefix/"),
        ("/a%20b", "/a%2520b"),
        ("/a b", "/a%20b"),
        ("//x//y/", "/x/y/"),
        ("/x/./y/../z", "/x/z"),
        ("/../..", "/"),
        ("/~user/a-b_c.d", "/~user/a-b_c.d"),
        ("/a:b@c+d=e", "/a%3Ab%40c%2Bd%3De"),
    ],
)
def test_canonical_uri(raw: str, canonical: str) -> None:
    assert sigv4.canonical_uri(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("", ""),
        ("b=2&a=1", "a=1&b=2"),
        ("a=2&a=1&a=10", "a=1&a=10&a=2"),
        ("sp+ace=x+y", "sp%20ace=x%20y"),
        ("sp%20ace=x%20y", "sp%20ace=x%20y"),
        ("k=%2F&k2=a/b", "k=%2F&k2=a%2Fb"),
        ("flag", "flag="),
        ("t=~._-&u=%7E", "t=~._-&u=~"),
    ],
)
def test_canonical_query(raw: str, canonical: str) -> None:
    assert sigv4.canonical_query(raw) == canonical


def test_parse_dates() -> None:
    assert sigv4._parse_amz_date("20250101T120000Z") == NOW
    assert sigv4._parse_amz_date("20240229T000000Z") is not None
    assert sigv4._parse_amz_date("20250229T000000Z") is None
    assert sigv4._parse_amz_date("2025010１T120000Z") is None  # non-ASCII digit  # noqa: RUF001
    assert sigv4._parse_http_date("Wed, 01 Jan 2025 12:00:00 GMT") == NOW
    assert sigv4._parse_http_date("Wed, 01 Jan 2025 12:00:00 +0000") == NOW
    assert sigv4._parse_http_date("Wed, 01 Foo 2025 12:00:00 GMT") is None


def test_trim() -> None:
    assert sigv4._trim("  a   b \t c  ") == "a b c"
    assert sigv4._trim("plain") == "plain"
    assert sigv4._trim("\tx\t\ty\t") == "x y"


def test_precomputed_hmac_states_match_hmac() -> None:
    import hmac

    key = sigv4.derive_signing_key(SECRET, "20250101", "us-east-1", "kms")
    inner, outer = sigv4._hmac_states(key)
    for message in (b"", b"x", b"AWS4-HMAC-SHA256\n" * 20):
        i = inner.copy()
        i.update(message)
        o = outer.copy()
        o.update(i.digest())
        assert o.digest() == hmac.digest(key, message, "sha256")
