"""SM2 keys (SM2DSA, SM2PKE, ECDH) through boto3 in a China Region against a real server (SQLite and
PostgreSQL), and AWS's refusal of SM2 outside China Regions.

Signatures and ciphertexts are checked with the ``openssl`` command line (OpenSSL 3 implements SM2
independently of openkms.crypto.sm2), with the public key from GetPublicKey.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.conftest import client
from tests.integration.test_keys_e2e import error_of
from tests.unit.crypto.test_sm2 import _openssl, _run

from openkms.crypto import sm2

CHINA = "cn-north-1"
DISTID = ("-pkeyopt", "distid:1234567812345678")


@pytest.fixture(scope="module")
def cn(server):  # type: ignore[no-untyped-def]
    return client(server.url, region=CHINA)


@pytest.fixture(scope="module")
def sm2_keys(cn) -> dict[str, dict]:  # type: ignore[type-arg]
    return {
        usage: cn.create_key(KeySpec="SM2", KeyUsage=usage)["KeyMetadata"]
        for usage in ("SIGN_VERIFY", "ENCRYPT_DECRYPT", "KEY_AGREEMENT")
    }


def test_sm2_is_refused_outside_china_regions(kms, server) -> None:  # type: ignore[no-untyped-def]
    for region in ("us-east-1", "eu-west-1"):
        regional = client(server.url, region=region)
        with pytest.raises(ClientError) as e:
            regional.create_key(KeySpec="SM2", KeyUsage="SIGN_VERIFY")
        assert error_of(e)[:2] == (
            "UnsupportedOperationException",
            "KeySpec SM2 is only available in the AWS China Regions (cn-*).",
        )
    symmetric = kms.create_key()["KeyMetadata"]
    with pytest.raises(ClientError) as e:
        kms.generate_data_key_pair(KeyId=symmetric["KeyId"], KeyPairSpec="SM2")
    assert error_of(e)[0] == "UnsupportedOperationException"


def test_describe_and_public_key(cn, sm2_keys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lists = {
        "SIGN_VERIFY": ("SigningAlgorithms", ["SM2DSA"]),
        "ENCRYPT_DECRYPT": ("EncryptionAlgorithms", ["SM2PKE"]),
        "KEY_AGREEMENT": ("KeyAgreementAlgorithms", ["ECDH"]),
    }
    openssl = _openssl()
    for usage, md in sm2_keys.items():
        assert md["Arn"].startswith(f"arn:aws:kms:{CHINA}:")
        described = cn.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
        member, algorithms = lists[usage]
        assert described["KeySpec"] == described["CustomerMasterKeySpec"] == "SM2"
        assert described["KeyUsage"] == usage and described[member] == algorithms
        assert not {m for m, _ in lists.values() if m != member} & set(described)
        public = cn.get_public_key(KeyId=md["KeyId"])
        assert public["KeySpec"] == "SM2" and public[member] == algorithms and public["KeyUsage"] == usage
        assert len(public["PublicKey"]) == 91
        path = tmp_path / f"{usage}.der"
        path.write_bytes(public["PublicKey"])
        text = _run(openssl, "pkey", "-pubin", "-inform", "DER", "-in", str(path), "-text", "-noout")
        assert b"ASN1 OID: SM2" in text


def _sign_verify_files(tmp_path: Path, public: bytes, message: bytes, signature: bytes) -> tuple[str, ...]:
    (tmp_path / "pub.der").write_bytes(public)
    (tmp_path / "msg").write_bytes(message)
    (tmp_path / "sig").write_bytes(signature)
    return (
        "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.der"), "-keyform", "DER", "-rawin",
        "-digest", "sm3", *DISTID, "-in", str(tmp_path / "msg"), "-sigfile", str(tmp_path / "sig"),
    )  # fmt: skip


def test_sign_raw_and_digest_verified_by_openssl(cn, sm2_keys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    openssl = _openssl()
    key_id = sm2_keys["SIGN_VERIFY"]["KeyId"]
    public = cn.get_public_key(KeyId=key_id)["PublicKey"]
    message = b"signed in cn-north-1" * 20
    raw = cn.sign(KeyId=key_id, Message=message, SigningAlgorithm="SM2DSA")
    assert raw["SigningAlgorithm"] == "SM2DSA" and raw["KeyId"] == sm2_keys["SIGN_VERIFY"]["Arn"]
    out = _run(openssl, *_sign_verify_files(tmp_path, public, message, raw["Signature"]))
    assert b"Signature Verified Successfully" in out
    # DIGEST: the caller's e = SM3(Z || M), Z with the default distinguishing ID (AWS documentation).
    digest = sm2.message_digest(sm2.parse_spki(public), message)
    signed = cn.sign(KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm="SM2DSA")
    out = _run(openssl, *_sign_verify_files(tmp_path, public, message, signed["Signature"]))
    assert b"Signature Verified Successfully" in out
    # The server verifies both ways, and a signature made by openssl.
    for signature in (raw["Signature"], signed["Signature"]):
        assert cn.verify(KeyId=key_id, Message=message, Signature=signature, SigningAlgorithm="SM2DSA")[
            "SignatureValid"
        ]
        assert cn.verify(
            KeyId=key_id, Message=digest, MessageType="DIGEST", Signature=signature, SigningAlgorithm="SM2DSA"
        )["SignatureValid"]


def test_verify_failures_and_bad_input(cn, sm2_keys) -> None:  # type: ignore[no-untyped-def]
    key_id = sm2_keys["SIGN_VERIFY"]["KeyId"]
    signature = cn.sign(KeyId=key_id, Message=b"m", SigningAlgorithm="SM2DSA")["Signature"]
    for message, sig in ((b"M", signature), (b"m", signature[:-1]), (b"m", b"\x30\x00")):
        with pytest.raises(ClientError) as e:
            cn.verify(KeyId=key_id, Message=message, Signature=sig, SigningAlgorithm="SM2DSA")
        assert error_of(e) == ("KMSInvalidSignatureException", "", 400)
    with pytest.raises(ClientError) as e:
        cn.sign(KeyId=key_id, Message=b"x" * 31, MessageType="DIGEST", SigningAlgorithm="SM2DSA")
    assert error_of(e)[:2] == ("ValidationException", "Digest is invalid length for algorithm SM2DSA.")
    with pytest.raises(ClientError) as e:
        cn.sign(KeyId=key_id, Message=b"x" * 64, MessageType="EXTERNAL_MU", SigningAlgorithm="SM2DSA")
    assert error_of(e)[0] == "ValidationException"
    with pytest.raises(ClientError) as e:
        cn.sign(KeyId=key_id, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    assert error_of(e)[:2] == (
        "InvalidKeyUsageException",
        "Algorithm ECDSA_SHA_256 is incompatible with key spec SM2.",
    )
    with pytest.raises(ClientError) as e:
        cn.sign(KeyId=sm2_keys["ENCRYPT_DECRYPT"]["KeyId"], Message=b"m", SigningAlgorithm="SM2DSA")
    assert error_of(e)[0] == "InvalidKeyUsageException"
    with pytest.raises(ClientError) as e:
        cn.sign(KeyId=key_id, Message=b"m", SigningAlgorithm="SM2DSA", DryRun=True)
    assert error_of(e)[0] == "DryRunOperationException"


def test_encrypt_decrypt(cn, sm2_keys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    openssl = _openssl()
    md = sm2_keys["ENCRYPT_DECRYPT"]
    key_id = md["KeyId"]
    for plaintext in (b"x", bytes(range(256)) * 4):
        blob = cn.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionAlgorithm="SM2PKE")
        assert blob["EncryptionAlgorithm"] == "SM2PKE" and blob["KeyId"] == md["Arn"]
        out = cn.decrypt(KeyId=key_id, CiphertextBlob=blob["CiphertextBlob"], EncryptionAlgorithm="SM2PKE")
        assert out["Plaintext"] == plaintext and out["EncryptionAlgorithm"] == "SM2PKE"
    # A ciphertext made by openssl with the public key from GetPublicKey.
    (tmp_path / "pub.der").write_bytes(cn.get_public_key(KeyId=key_id)["PublicKey"])
    (tmp_path / "pt").write_bytes(b"made by openssl")
    ciphertext = _run(
        openssl, "pkeyutl", "-encrypt", "-pubin", "-inkey", str(tmp_path / "pub.der"), "-keyform", "DER",
        "-in", str(tmp_path / "pt"),
    )  # fmt: skip
    out = cn.decrypt(KeyId=key_id, CiphertextBlob=ciphertext, EncryptionAlgorithm="SM2PKE")
    assert out["Plaintext"] == b"made by openssl"
    # Limits and failures.
    with pytest.raises(ClientError) as e:
        cn.encrypt(KeyId=key_id, Plaintext=b"x" * 1025, EncryptionAlgorithm="SM2PKE")
    assert error_of(e)[:2] == (
        "ValidationException",
        "Algorithm SM2PKE and key spec SM2 cannot encrypt data larger than 1024 bytes.",
    )
    tampered = ciphertext[:-1] + bytes([ciphertext[-1] ^ 1])
    for bad in (tampered, b"garbage"):
        with pytest.raises(ClientError) as e:
            cn.decrypt(KeyId=key_id, CiphertextBlob=bad, EncryptionAlgorithm="SM2PKE")
        assert error_of(e) == ("InvalidCiphertextException", "", 400)
    with pytest.raises(ClientError) as e:
        cn.encrypt(KeyId=key_id, Plaintext=b"x")
    assert error_of(e)[:2] == (
        "InvalidKeyUsageException",
        "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec SM2.",
    )
    with pytest.raises(ClientError) as e:
        cn.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert error_of(e)[0] == "InvalidKeyUsageException"
    # ReEncrypt from SM2 to a symmetric key and back.
    symmetric = cn.create_key()["KeyMetadata"]["KeyId"]
    moved = cn.re_encrypt(
        CiphertextBlob=ciphertext,
        SourceKeyId=key_id,
        SourceEncryptionAlgorithm="SM2PKE",
        DestinationKeyId=symmetric,
    )
    assert cn.decrypt(CiphertextBlob=moved["CiphertextBlob"])["Plaintext"] == b"made by openssl"
    back = cn.re_encrypt(
        CiphertextBlob=moved["CiphertextBlob"],
        DestinationKeyId=key_id,
        DestinationEncryptionAlgorithm="SM2PKE",
    )
    out = cn.decrypt(KeyId=key_id, CiphertextBlob=back["CiphertextBlob"], EncryptionAlgorithm="SM2PKE")
    assert out["Plaintext"] == b"made by openssl"


def test_generate_data_key_pair(cn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    openssl = _openssl()
    wrapping = cn.create_key()["KeyMetadata"]
    pair = cn.generate_data_key_pair(KeyId=wrapping["KeyId"], KeyPairSpec="SM2", EncryptionContext={"a": "b"})
    assert pair["KeyPairSpec"] == "SM2" and len(pair["PrivateKeyPlaintext"]) == 138
    (tmp_path / "key.der").write_bytes(pair["PrivateKeyPlaintext"])
    public = _run(
        openssl, "pkey", "-inform", "DER", "-in", str(tmp_path / "key.der"), "-pubout", "-outform", "DER"
    )
    assert public == pair["PublicKey"]
    opened = cn.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"], EncryptionContext={"a": "b"})
    assert opened["Plaintext"] == pair["PrivateKeyPlaintext"]
    without = cn.generate_data_key_pair_without_plaintext(KeyId=wrapping["KeyId"], KeyPairSpec="SM2")
    assert "PrivateKeyPlaintext" not in without and len(without["PublicKey"]) == 91
    private = cn.decrypt(CiphertextBlob=without["PrivateKeyCiphertextBlob"])["Plaintext"]
    (tmp_path / "key2.der").write_bytes(private)
    public = _run(
        openssl, "pkey", "-inform", "DER", "-in", str(tmp_path / "key2.der"), "-pubout", "-outform", "DER"
    )
    assert public == without["PublicKey"]


def test_derive_shared_secret(cn, sm2_keys) -> None:  # type: ignore[no-untyped-def]
    md = sm2_keys["KEY_AGREEMENT"]
    server_public = cn.get_public_key(KeyId=md["KeyId"])["PublicKey"]
    mine = sm2.generate_private()
    resp = cn.derive_shared_secret(
        KeyId=md["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=sm2.Sm2Key(mine).public_der
    )
    assert resp["SharedSecret"] == sm2.derive_shared_secret(mine, server_public)
    assert len(resp["SharedSecret"]) == 32 and resp["KeyOrigin"] == "AWS_KMS" and resp["KeyId"] == md["Arn"]
    p256 = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    good = sm2.Sm2Key(mine).public_der
    for bad in (p256, good[:-1] + bytes([good[-1] ^ 1]), b"not a key"):
        with pytest.raises(ClientError) as e:
            cn.derive_shared_secret(KeyId=md["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=bad)
        assert error_of(e) == ("ValidationException", "", 400)
    with pytest.raises(ClientError) as e:
        cn.derive_shared_secret(
            KeyId=sm2_keys["SIGN_VERIFY"]["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=good
        )
    assert error_of(e)[0] == "InvalidKeyUsageException"
