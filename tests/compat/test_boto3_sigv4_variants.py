"""boto3 configured the ways users configure it: endpoint URLs with a path, explicit signature versions,
host names with a port, and credentials the server does not know."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from tests.conftest import client
from tests.integration.test_keys_e2e import error_of
from tests.support.servers import TEST_REGION, ServerProcess

INVALID_TOKEN = ("UnrecognizedClientException", "The security token included in the request is invalid.", 400)


@pytest.mark.parametrize("prefix", ["/prefix", "/prefix/nested/", "/pre%20fix"])
def test_endpoint_url_with_path_prefix(server: ServerProcess, kms, prefix: str) -> None:
    """botocore signs the endpoint's path (the canonical URI is no longer '/'); the server must agree."""
    prefixed = client(server.url + prefix)
    key_id = prefixed.create_key(Description=f"via {prefix}")["KeyMetadata"]["KeyId"]
    blob = prefixed.encrypt(KeyId=key_id, Plaintext=b"p", EncryptionContext={"a": "b"})["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "b"})["Plaintext"] == b"p"
    assert prefixed.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == f"via {prefix}"


@pytest.mark.parametrize("signature_version", [None, "v4"])
def test_signature_version(server: ServerProcess, signature_version: str | None) -> None:
    kms = boto3.client(
        "kms",
        endpoint_url=server.url,
        region_name=TEST_REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(signature_version=signature_version, retries={"max_attempts": 1}),
    )
    assert len(kms.generate_random(NumberOfBytes=7)["Plaintext"]) == 7


def test_host_with_port_is_signed(server: ServerProcess) -> None:
    """Both spellings of the local host, each with the non-default port in the signed Host header."""
    port = server.url.rsplit(":", 1)[1]
    sent: dict[str, str | bytes] = {}

    def capture(request, **_) -> None:  # type: ignore[no-untyped-def]
        sent.update(request.headers)

    for url in (server.url, f"http://localhost:{port}"):
        sent.clear()
        kms = client(url)
        kms.meta.events.register("before-send.kms.*", capture)
        kms.list_keys(Limit=1)
        authorization = sent["Authorization"]
        if isinstance(authorization, bytes):
            authorization = authorization.decode()
        assert "host" in authorization.split("SignedHeaders=")[1].split(",")[0].split(";")


def test_unknown_session_token(server: ServerProcess) -> None:
    kms = boto3.client(
        "kms",
        endpoint_url=server.url,
        region_name=TEST_REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        aws_session_token="not-a-session-token",
        config=Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as e:
        kms.list_keys()
    assert error_of(e) == INVALID_TOKEN


def test_unknown_access_key(server: ServerProcess) -> None:
    with pytest.raises(ClientError) as e:
        client(server.url, "AKIAUNKNOWNKEY000000", "whatever").list_keys()
    assert error_of(e) == INVALID_TOKEN
