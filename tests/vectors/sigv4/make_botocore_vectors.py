"""Generates tests/vectors/sigv4/botocore.json: requests signed by botocore's SigV4Auth.

    .venv/bin/python tests/vectors/sigv4/make_botocore_vectors.py > tests/vectors/sigv4/botocore.json

Two sources, both with botocore's clock frozen at 20250101T120000Z:

* real ``boto3`` KMS clients, with the prepared request captured at ``before-send`` (what goes on the
  wire, plus the ``Host`` header http.client adds);
* ``SigV4Auth.add_auth`` on hand-built ``AWSRequest`` objects for the odd cases (query strings,
  duplicate headers, whitespace, the Date header fallback, dot segments).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import sys
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import boto3
from botocore.auth import SigV4Auth, _host_from_url
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

FIXED = datetime.datetime(2025, 1, 1, 12, 0, 0)
NOW = 1735732800.0  # 2025-01-01T12:00:00Z

ACCESS_KEY = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_KEY = "ASIAEXAMPLE"
SESSION_SECRET = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQDEXAMPLE+/="


def credential_json(access_key: str, secret: str, token: str | None) -> dict[str, Any]:
    return {
        "access_key_id": access_key,
        "secret_access_key": secret,
        "account": "111122223333",
        "principal_arn": "arn:aws:iam::111122223333:user/botocore",
        "session_token": token,
        "expires_at": NOW + 3600 if token else None,
    }


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def wire_vector(
    name: str, url: str, method: str, headers: list[tuple[str, str]], body: bytes, cred: dict[str, Any]
) -> dict[str, Any]:
    parts = urlsplit(url)
    names = {h for h, _ in headers}
    if "host" not in names:
        # http.client sends Host first: host[:port], the port only when it is not the default one.
        headers = [("host", _host_from_url(url)), *headers]
    region = cred.pop("_region")
    return {
        "name": name,
        "signer": "botocore",
        "method": method,
        "path": parts.path or "/",
        "query": parts.query,
        "headers": [[h, v] for h, v in headers],
        "body_b64": base64.b64encode(body).decode("ascii"),
        "now": NOW,
        "credential": cred,
        "expect": {"region": region, "signed_at": NOW},
    }


def client_vector(
    name: str,
    endpoint: str,
    region: str,
    operation: str,
    params: dict[str, Any],
    *,
    access_key: str = ACCESS_KEY,
    secret: str = SECRET,
    token: str | None = None,
) -> dict[str, Any]:
    session = boto3.session.Session(
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        region_name=region,
    )
    client = session.client("kms", endpoint_url=endpoint)
    captured: dict[str, Any] = {}

    class Captured(Exception):
        pass

    def hook(request: Any, **_: Any) -> None:
        captured["request"] = request
        raise Captured

    client.meta.events.register("before-send", hook)
    with contextlib.suppress(Captured):
        getattr(client, operation)(**params)
    request = captured["request"]
    headers = [(k.lower(), _text(v)) for k, v in request.headers.items()]
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    cred = credential_json(access_key, secret, token) | {"_region": region}
    return wire_vector(name, request.url, request.method, headers, body, cred)


def signer_vector(
    name: str,
    url: str,
    region: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    params: dict[str, str] | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    request = AWSRequest(method="POST", url=url, data=body, params=params or {})
    # An email.message-based header map keeps repeated names (AWSRequest's own map folds them), and
    # SigV4Auth signs every value of a repeated name.
    request.headers = HTTPHeaders()
    for k, v in headers:
        request.headers[k] = v  # appends
    access_key, secret = (SESSION_KEY, SESSION_SECRET) if token else (ACCESS_KEY, SECRET)
    SigV4Auth(Credentials(access_key, secret, token), "kms", region).add_auth(request)
    prepared = request.prepare()
    # The prepared request's HeadersDict folds repeated names, so take the signed request's headers.
    wire = [(k.lower(), _text(v)) for k, v in request.headers.items()]
    if prepared.body:
        wire.append(("content-length", str(len(prepared.body))))
    cred = credential_json(access_key, secret, token) | {"_region": region}
    return wire_vector(name, prepared.url, "POST", wire, body, cred)


JSON_HEADERS = [("Content-Type", "application/x-amz-json-1.1"), ("X-Amz-Target", "TrentService.ListKeys")]


def main() -> None:
    vectors = []
    with mock.patch("botocore.auth.get_current_datetime", return_value=FIXED):
        vectors.append(
            client_vector(
                "botocore client Encrypt",
                "http://localhost:4566",
                "us-east-1",
                "encrypt",
                {"KeyId": "alias/app", "Plaintext": b"hello world", "EncryptionContext": {"purpose": "test"}},
            )
        )
        vectors.append(
            client_vector(
                "botocore client Decrypt session token",
                "http://localhost:4566",
                "us-west-2",
                "decrypt",
                {"CiphertextBlob": bytes(range(32))},
                access_key=SESSION_KEY,
                secret=SESSION_SECRET,
                token=SESSION_TOKEN,
            )
        )
        vectors.append(
            client_vector(
                "botocore client GenerateDataKey non-default port, /prefix path",
                "http://127.0.0.1:8443/prefix",
                "ap-southeast-2",
                "generate_data_key",
                {"KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab", "KeySpec": "AES_256"},
            )
        )
        vectors.append(
            client_vector(
                "botocore client Encrypt endpoint path with %20",
                "http://localhost:4566/a%20b",
                "us-east-1",
                "encrypt",
                {"KeyId": "alias/app", "Plaintext": b"\x00\xff"},
            )
        )
        vectors.append(
            client_vector(
                "botocore client ListKeys https default port",
                "https://kms.example.com:443",
                "eu-central-1",
                "list_keys",
                {},
            )
        )
        vectors.append(
            signer_vector("SigV4Auth empty body", "http://localhost:4566/", "us-east-1", JSON_HEADERS, b"")
        )
        vectors.append(
            signer_vector(
                "SigV4Auth query string from params",
                "http://localhost:4566/",
                "us-east-1",
                JSON_HEADERS,
                b"{}",
                params={"b": "2", "a": "1", "sp ace": "x y", "tilde": "~._-", "slash": "a/b"},
            )
        )
        vectors.append(
            signer_vector(
                "SigV4Auth query string in the URL",
                "http://localhost:4566/?z=1&b=%2F&a=2&a=1",
                "us-east-1",
                JSON_HEADERS,
                b"{}",
            )
        )
        vectors.append(
            signer_vector(
                "SigV4Auth duplicate headers",
                "http://localhost:4566/",
                "us-east-1",
                [*JSON_HEADERS, ("X-Custom", "first"), ("X-Custom", "  second  value ")],
                b"{}",
            )
        )
        vectors.append(
            signer_vector(
                "SigV4Auth header values with extra whitespace",
                "http://localhost:4566/",
                "us-east-1",
                [*JSON_HEADERS, ("X-Spaces", "  a   b \t c  "), ("X-Tab", "\tx\t\ty\t")],
                b'{"Limit": 10}',
            )
        )
        vectors.append(
            signer_vector(
                "SigV4Auth session token",
                "http://localhost:4566/",
                "us-east-1",
                JSON_HEADERS,
                b"{}",
                token=SESSION_TOKEN,
            )
        )
        vectors.append(
            signer_vector(
                "SigV4Auth non-default port in host",
                "https://kms.internal.example:9443/",
                "eu-west-1",
                JSON_HEADERS,
                b"{}",
            )
        )
        vectors.append(
            signer_vector(
                "SigV4Auth Date header instead of X-Amz-Date",
                "http://localhost:4566/",
                "us-east-1",
                [*JSON_HEADERS, ("Date", "Wed, 01 Jan 2025 12:00:00 GMT")],
                b"{}",
            )
        )
        vectors.append(
            signer_vector(
                "SigV4Auth dot segments and repeated slashes in the path",
                "http://localhost:4566/x/./y/../z//",
                "us-east-1",
                JSON_HEADERS,
                b"{}",
            )
        )
    json.dump(
        {"generator": "tests/vectors/sigv4/make_botocore_vectors.py", "vectors": vectors},
        sys.stdout,
        indent=2,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
