"""The AWS Encryption SDK for JavaScript (``@aws-crypto/client-node``, tests/js/esdk_interop.mjs) and the
Python SDK, both against openkms: a message written by either decrypts in the other. The JS side gets its
endpoint through a KMS client provider (the SDK's ``getClient``), the documented way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_encryption_sdk
import botocore.session
import pytest
from aws_encryption_sdk import CommitmentPolicy, StrictAwsKmsMasterKeyProvider
from tests.support.esdk import endpoint_env, js_esdk, ok, openkms, run, sha256_file, write_pattern
from tests.support.servers import ServerProcess

SDK = aws_encryption_sdk.EncryptionSDKClient(
    commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
)
CONTEXT = {"purpose": "js-interop", "team": "compat"}


@pytest.fixture(scope="module")
def work(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp(f"esdk-js-{server.deployment.backend}")


@pytest.fixture(scope="module")
def keys(kms) -> list[str]:  # type: ignore[no-untyped-def]
    return [kms.create_key(Description=f"esdk js {i}")["KeyMetadata"]["Arn"] for i in range(2)]


@pytest.fixture
def python_provider(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[..., StrictAwsKmsMasterKeyProvider]:
    """The Python SDK's KMS provider over a botocore session configured by the environment variables."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-such-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-such-credentials"))
    for name, value in endpoint_env(server.url, tmp_path).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    session = botocore.session.Session()

    def make(*arns: str) -> StrictAwsKmsMasterKeyProvider:
        return StrictAwsKmsMasterKeyProvider(key_ids=list(arns), botocore_session=session)

    return make


@pytest.mark.parametrize("size", [0, 4097, 3 * 1024 * 1024 + 5])
def test_python_message_decrypts_in_js(
    server: ServerProcess, work: Path, keys: list[str], size: int, python_provider: Callable[..., Any]
) -> None:
    src, enc, dec = work / f"py-{size}.bin", work / f"py-{size}.enc", work / f"py-{size}.js.dec"
    digest = write_pattern(src, size)
    with (
        src.open("rb") as plain,
        enc.open("wb") as out,
        SDK.stream(
            mode="e", source=plain, key_provider=python_provider(*keys), encryption_context=CONTEXT
        ) as stream,
    ):
        for chunk in stream:
            out.write(chunk)
    # the second key alone is enough on the JS side
    result = js_esdk("decrypt", server.url, enc, dec, [keys[1]], work)
    assert result.ok, result.raw
    assert sha256_file(dec) == digest
    assert CONTEXT.items() <= result.encryption_context.items()
    assert sorted(result.key_ids) == sorted(keys)


@pytest.mark.parametrize("size", [1, 70_000, 3 * 1024 * 1024 + 5])
def test_js_message_decrypts_in_python(
    server: ServerProcess, work: Path, keys: list[str], size: int, python_provider: Callable[..., Any]
) -> None:
    src, enc = work / f"js-{size}.bin", work / f"js-{size}.enc"
    digest = write_pattern(src, size)
    result = js_esdk("encrypt", server.url, src, enc, keys, work, context=CONTEXT)
    assert result.ok, result.raw
    assert sorted(result.key_ids) == sorted(keys)

    for arn in keys:  # either key opens it in Python
        plaintext, header = SDK.decrypt(source=enc.read_bytes(), key_provider=python_provider(arn))
        assert len(plaintext) == size and CONTEXT.items() <= header.encryption_context.items()
    # and openkms decrypt-file, with the context checked
    out = work / f"js-{size}.openkms.dec"
    ok(
        run(
            [*openkms(), "decrypt-file", str(enc), "-o", str(out), "-c", "purpose=js-interop"],
            endpoint_env(server.url, work),
            work,
        )
    )
    assert sha256_file(out) == digest


def test_openkms_encrypt_file_decrypts_in_js(server: ServerProcess, work: Path, keys: list[str]) -> None:
    """encrypt-file's 256 KiB frames and the unsigned suite are read by the JS SDK too."""
    src = work / "ours.bin"
    digest = write_pattern(src, 1_000_003)
    env = endpoint_env(server.url, work)
    for algorithm in ("AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384", "AES_256_GCM_HKDF_SHA512_COMMIT_KEY"):
        enc, dec = work / f"ours.{algorithm}.enc", work / f"ours.{algorithm}.dec"
        ok(
            run(
                [
                    *openkms(),
                    "encrypt-file",
                    str(src),
                    "-o",
                    str(enc),
                    "-k",
                    keys[0],
                    "-c",
                    "purpose=js-interop",
                    "--algorithm",
                    algorithm,
                    "-q",
                ],
                env,
                work,
            )
        )
        result = js_esdk("decrypt", server.url, enc, dec, [keys[0]], work)
        assert result.ok, result.raw
        assert sha256_file(dec) == digest
        assert result.encryption_context["purpose"] == "js-interop"
        assert ("aws-crypto-public-key" in result.encryption_context) == algorithm.endswith("P384")


def test_js_refuses_a_key_not_in_the_message(server: ServerProcess, work: Path, keys: list[str], kms) -> None:  # type: ignore[no-untyped-def]
    src, enc = work / "only-first.bin", work / "only-first.enc"
    write_pattern(src, 1000)
    assert js_esdk("encrypt", server.url, src, enc, [keys[0]], work, context=CONTEXT).ok
    result = js_esdk("decrypt", server.url, enc, work / "only-first.dec", [keys[1]], work)
    assert not result.ok and result.raw["message"]
