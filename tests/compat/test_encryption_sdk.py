"""The AWS Encryption SDK for Python (``aws-encryption-sdk``) with its KMS master key provider, configured
only the documented way: a botocore session that finds the endpoint in ``AWS_ENDPOINT_URL`` or in a
profile's ``endpoint_url`` (docs/clients.md)."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import aws_encryption_sdk
import boto3
import botocore.session
import pytest
from aws_encryption_sdk import CommitmentPolicy, StrictAwsKmsMasterKeyProvider
from aws_encryption_sdk.exceptions import DecryptKeyError
from aws_encryption_sdk.identifiers import Algorithm
from tests.support.esdk import pattern_chunks
from tests.support.servers import TEST_REGION, ServerProcess

SDK = aws_encryption_sdk.EncryptionSDKClient(
    commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
)
CONTEXT = {"purpose": "compat", "tenant": "t-1"}


@pytest.fixture
def env_session(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> botocore.session.Session:
    """docs/clients.md: the environment variables, then a plain botocore session."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-such-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-such-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", TEST_REGION)
    return botocore.session.Session()


@pytest.fixture(scope="module")
def keys(kms) -> list[str]:  # type: ignore[no-untyped-def]
    return [kms.create_key(Description=f"esdk {i}")["KeyMetadata"]["Arn"] for i in range(3)]


def provider(session: botocore.session.Session, *arns: str) -> StrictAwsKmsMasterKeyProvider:
    return StrictAwsKmsMasterKeyProvider(key_ids=list(arns), botocore_session=session)


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 300_001])
def test_round_trip_sizes(env_session: botocore.session.Session, keys: list[str], size: int) -> None:
    plaintext = hashlib.shake_256(str(size).encode()).digest(size) if size else b""
    ciphertext, header = SDK.encrypt(
        source=plaintext, key_provider=provider(env_session, keys[0]), encryption_context=CONTEXT
    )
    assert header.algorithm == Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
    assert [edk.key_provider.key_info.decode() for edk in header.encrypted_data_keys] == [keys[0]]
    assert ciphertext[:1] == b"\x02" and len(ciphertext) > size  # message format version 2

    decrypted, dheader = SDK.decrypt(source=ciphertext, key_provider=provider(env_session, keys[0]))
    assert decrypted == plaintext
    assert CONTEXT.items() <= dheader.encryption_context.items()


def test_unsigned_suite_and_small_frames(env_session: botocore.session.Session, keys: list[str]) -> None:
    plaintext = b"x" * 10_000
    ciphertext, header = SDK.encrypt(
        source=plaintext,
        key_provider=provider(env_session, keys[1]),
        frame_length=512,
        algorithm=Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
    )
    assert header.frame_length == 512 and "aws-crypto-public-key" not in header.encryption_context
    assert SDK.decrypt(source=ciphertext, key_provider=provider(env_session, keys[1]))[0] == plaintext


def test_multi_key_message_decrypts_with_either_key(
    env_session: botocore.session.Session, keys: list[str], kms
) -> None:  # type: ignore[no-untyped-def]
    plaintext = b"two keys can open this"
    ciphertext, header = SDK.encrypt(
        source=plaintext, key_provider=provider(env_session, keys[0], keys[1]), encryption_context=CONTEXT
    )
    assert sorted(edk.key_provider.key_info.decode() for edk in header.encrypted_data_keys) == sorted(
        keys[:2]
    )
    for arn in keys[:2]:
        assert SDK.decrypt(source=ciphertext, key_provider=provider(env_session, arn))[0] == plaintext
    # a key that is not in the message cannot open it
    with pytest.raises(DecryptKeyError):
        SDK.decrypt(source=ciphertext, key_provider=provider(env_session, keys[2]))
    # with the first key disabled, the SDK falls through to the second data key
    kms.disable_key(KeyId=keys[0])
    try:
        both = provider(env_session, keys[0], keys[1])
        assert SDK.decrypt(source=ciphertext, key_provider=both)[0] == plaintext
        with pytest.raises(DecryptKeyError):
            SDK.decrypt(source=ciphertext, key_provider=provider(env_session, keys[0]))
    finally:
        kms.enable_key(KeyId=keys[0])


def test_tampered_message_is_rejected(env_session: botocore.session.Session, keys: list[str]) -> None:
    ciphertext, _ = SDK.encrypt(source=b"p" * 5000, key_provider=provider(env_session, keys[0]))
    tampered = bytearray(ciphertext)
    tampered[len(tampered) // 2] ^= 1
    with pytest.raises(Exception) as caught:
        SDK.decrypt(source=bytes(tampered), key_provider=provider(env_session, keys[0]))
    assert type(caught.value).__name__ in ("InvalidTag", "InvalidSignature", "SerializationError")


def test_profile_with_bootstrap_credentials(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """docs/clients.md, "a profile": endpoint_url + region in a config profile named like the section of
    the bootstrap credentials file, which is used as the shared credentials file unchanged."""
    bootstrap = server.deployment.data_dir / "bootstrap-credentials"
    assert "[openkms]" in bootstrap.read_text()
    config = tmp_path / "config"
    config.write_text(f"[profile openkms]\nregion = {TEST_REGION}\nendpoint_url = {server.url}\n")
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(bootstrap))
    monkeypatch.setenv("AWS_PROFILE", "openkms")

    arn = boto3.session.Session().client("kms").create_key(Description="via profile")["KeyMetadata"]["Arn"]
    session = botocore.session.Session()
    ciphertext, _ = SDK.encrypt(source=b"profile", key_provider=provider(session, arn))
    assert SDK.decrypt(source=ciphertext, key_provider=provider(session, arn))[0] == b"profile"


class _PatternReader(io.RawIOBase):
    """A file-like source of ``total`` bytes generated on the fly (never all in memory)."""

    def __init__(self, total: int) -> None:
        self._chunks: Iterator[bytes] = pattern_chunks(total)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) < size:
            nxt = next(self._chunks, None)
            if nxt is None:
                break
            self._pending += nxt
        cut = len(self._pending) if size < 0 else size
        out, self._pending = self._pending[:cut], self._pending[cut:]
        return out


@pytest.mark.slow
def test_stream_100_mb_in_bounded_memory(
    env_session: botocore.session.Session, keys: list[str], tmp_path: Path
) -> None:
    total = 100 * 1024 * 1024
    expected = hashlib.sha256()
    for piece in pattern_chunks(total):
        expected.update(piece)
    message = tmp_path / "big.msg"
    mkp = provider(env_session, keys[0])

    tracemalloc.start()
    try:
        with (
            message.open("wb") as out,
            SDK.stream(
                mode="e", source=_PatternReader(total), key_provider=mkp, frame_length=64 * 1024
            ) as enc,
        ):
            for chunk in enc:
                out.write(chunk)
        encrypt_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        got = hashlib.sha256()
        with message.open("rb") as src, SDK.stream(mode="d", source=src, key_provider=mkp) as dec:
            for chunk in dec:
                got.update(chunk)
        decrypt_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message.stat().st_size > total
    assert got.hexdigest() == expected.hexdigest()
    # streaming: a few frames in flight, not the 100 MB
    assert encrypt_peak < 16 * 1024 * 1024, encrypt_peak
    assert decrypt_peak < 16 * 1024 * 1024, decrypt_peak
