"""The wire protocol and SigV4 at the front door: raw HTTP requests against a real server."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
import time
from urllib.parse import urlparse

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from tests.support.servers import TEST_REGION


class Raw:
    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.url = url

    def signed(
        self,
        target: str | None,
        body: bytes,
        *,
        secret: str = "test",
        access_key: str = "test",
        region: str = TEST_REGION,
        service: str = "kms",
        when: dt.datetime | None = None,
    ) -> dict[str, str]:
        headers = {"Content-Type": "application/x-amz-json-1.1"}
        if target is not None:
            headers["X-Amz-Target"] = f"TrentService.{target}"
        req = AWSRequest(method="POST", url=self.url + "/", data=body, headers=headers)
        signer = SigV4Auth(Credentials(access_key, secret), service, region)
        if when is not None:
            import botocore.auth

            original = botocore.auth.get_current_datetime
            botocore.auth.get_current_datetime = lambda: when  # type: ignore[assignment]
            try:
                signer.add_auth(req)
            finally:
                botocore.auth.get_current_datetime = original  # type: ignore[assignment]
        else:
            signer.add_auth(req)
        return dict(req.headers.items())

    def send(self, headers: dict[str, str], body: bytes, method: str = "POST") -> tuple[int, dict, dict]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        conn.request(method, "/", body=body, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        parsed = json.loads(payload) if payload else {}
        return resp.status, parsed, dict(resp.getheaders())

    def call(self, target: str | None, body: bytes, **kw: object) -> tuple[int, dict, dict]:
        return self.send(self.signed(target, body, **kw), body)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def raw(server) -> Raw:
    return Raw(server.url)


def test_success_shape_and_headers(raw: Raw) -> None:
    status, body, headers = raw.call("GenerateRandom", b'{"NumberOfBytes": 8}')
    assert status == 200
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    assert len(headers["x-amzn-RequestId"]) == 36
    assert "Date" in headers
    assert set(body) == {"Plaintext"}


def test_empty_body_means_no_parameters(raw: Raw) -> None:
    status, body, _ = raw.call("ListKeys", b"")
    assert status == 200 and "Keys" in body and body["Truncated"] in (True, False)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "SerializationException"),
        (b"[1,2]", "SerializationException"),
        (b'{"NumberOfBytes": "eight"}', "SerializationException"),
        (b'{"KeyId": "alias/x", "Plaintext": "***not base64***"}', "SerializationException"),
    ],
)
def test_malformed_bodies(raw: Raw, body: bytes, code: str) -> None:
    target = "Encrypt" if b"Plaintext" in body else "GenerateRandom"
    status, resp, _ = raw.call(target, body)
    assert (status, resp["__type"]) == (400, code)
    assert resp["message"]


@pytest.mark.parametrize("valid_to", [1e20, -1e300, 253402300800, '"0001-01-01T00:00:00+14:00"'])
def test_timestamp_no_date_can_hold_is_a_serialization_error(raw: Raw, valid_to: object) -> None:
    # Such a ValidTo used to pass validation and break the audit record's date formatting: a 500.
    body = (
        '{"KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab", "ImportToken": "YQ==", '
        f'"EncryptedKeyMaterial": "YQ==", "ExpirationModel": "KEY_MATERIAL_EXPIRES", "ValidTo": {valid_to}}}'
    )
    status, resp, _ = raw.call("ImportKeyMaterial", body.encode())
    assert (status, resp["__type"]) == (400, "SerializationException")
    assert resp["message"] == "Value at 'validTo' is not a valid timestamp (epoch seconds or ISO-8601)."


def test_missing_required_member(raw: Raw) -> None:
    status, resp, _ = raw.call("Encrypt", b'{"KeyId": "alias/x"}')
    assert (status, resp["__type"]) == (400, "ValidationException")
    assert resp["message"] == (
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_unknown_and_missing_target(raw: Raw) -> None:
    status, resp, _ = raw.call("NoSuchOperation", b"{}")
    assert (status, resp["__type"]) == (400, "UnknownOperationException")
    status, resp, _ = raw.call(None, b"{}")
    assert (status, resp["__type"]) == (400, "UnknownOperationException")


def test_unsupported_operation_is_named(raw: Raw) -> None:
    status, resp, _ = raw.call("CreateCustomKeyStore", b'{"CustomKeyStoreName": "x"}')
    assert (status, resp["__type"]) == (400, "UnsupportedOperationException")
    assert "CreateCustomKeyStore" in resp["message"]


def test_no_signature(raw: Raw) -> None:
    status, resp, _ = raw.send(
        {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.ListKeys"}, b"{}"
    )
    assert (status, resp["__type"], resp["message"]) == (
        400,
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    )


def test_wrong_secret_and_unknown_key(raw: Raw) -> None:
    status, resp, _ = raw.call("ListKeys", b"{}", secret="wrong")
    assert (status, resp["__type"]) == (400, "InvalidSignatureException")
    assert resp["message"].startswith("The request signature we calculated does not match")
    status, resp, _ = raw.call("ListKeys", b"{}", access_key="AKIANOSUCHKEY0000000")
    assert (resp["__type"], resp["message"]) == (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )


def test_body_altered_after_signing(raw: Raw) -> None:
    headers = raw.signed("GenerateRandom", b'{"NumberOfBytes": 8}')
    status, resp, _ = raw.send(headers, b'{"NumberOfBytes": 9}')
    assert (status, resp["__type"]) == (400, "InvalidSignatureException")


def test_header_altered_after_signing(raw: Raw) -> None:
    headers = raw.signed("GenerateRandom", b'{"NumberOfBytes": 8}')
    headers["X-Amz-Target"] = "TrentService.ListKeys"
    status, resp, _ = raw.send(headers, b'{"NumberOfBytes": 8}')
    assert (status, resp["__type"]) == (400, "InvalidSignatureException")


@pytest.mark.parametrize("minutes", [-20, 20])
def test_stale_or_future_signature(raw: Raw, minutes: int) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
    status, resp, _ = raw.call("ListKeys", b"{}", when=when.replace(tzinfo=None))
    assert (status, resp["__type"]) == (400, "InvalidSignatureException")
    assert resp["message"].startswith("Signature expired" if minutes < 0 else "Signature not yet current")


def test_wrong_service_scope(raw: Raw) -> None:
    status, resp, _ = raw.call("ListKeys", b"{}", service="s3")
    assert (status, resp["__type"]) == (400, "InvalidSignatureException")
    assert "kms" in resp["message"]


def test_region_comes_from_credential_scope(raw: Raw) -> None:
    status, body, _ = raw.call("CreateKey", b"{}", region="eu-central-1")
    assert status == 200
    assert body["KeyMetadata"]["Arn"].startswith("arn:aws:kms:eu-central-1:")
    status, resp, _ = raw.call("DescribeKey", json.dumps({"KeyId": body["KeyMetadata"]["KeyId"]}).encode())
    assert resp["__type"] == "NotFoundException"  # keys live in their own Region


def test_oversized_body(raw: Raw) -> None:
    body = b'{"Description": "' + b"x" * (300 * 1024) + b'"}'
    status, resp, _ = raw.send(raw.signed("CreateKey", body), body)
    assert status == 413 and resp["__type"] == "RequestEntityTooLargeException"


def test_health_endpoint(raw: Raw) -> None:
    conn = http.client.HTTPConnection(raw.host, raw.port, timeout=10)
    conn.request("GET", "/health")
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["status"] == "ok"


def test_server_survives_garbage_and_half_closed_connections(raw: Raw) -> None:
    for payload in (b"\x00\x01\x02 garbage\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"):
        sock = socket.create_connection((raw.host, raw.port), timeout=10)
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        try:
            while sock.recv(4096):
                pass
        except OSError:
            pass
        sock.close()
    status, _, _ = raw.call("GenerateRandom", b'{"NumberOfBytes": 4}')
    assert status == 200


def test_requests_do_not_block_each_other(raw: Raw) -> None:
    started = time.monotonic()
    slow = socket.create_connection((raw.host, raw.port), timeout=10)
    slow.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")  # a slow client
    for _ in range(5):
        assert raw.call("GenerateRandom", b'{"NumberOfBytes": 4}')[0] == 200
    slow.close()
    assert time.monotonic() - started < 20
