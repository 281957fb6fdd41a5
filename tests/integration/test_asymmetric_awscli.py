"""A few asymmetric and HMAC operations through the real ``aws`` CLI, cross-checked with openssl/pyca."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.support import openssl
from tests.support.awscli import aws_runner
from tests.support.servers import ServerProcess


@pytest.fixture(scope="module")
def aws(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    run = aws_runner(server.url, tmp_path_factory.mktemp("awscli-asym"))

    def run_json(*args: str, check: bool = True) -> dict:  # type: ignore[type-arg]
        result = run(*args, "--output", "json", check=check)
        return (
            json.loads(result.stdout)
            if result.returncode == 0 and result.stdout.strip()
            else {"stderr": result.stderr, "rc": result.returncode}
        )

    run_json.workdir = run.workdir  # type: ignore[attr-defined]
    return run_json


def test_cli_sign_verify_with_openssl(aws) -> None:  # type: ignore[no-untyped-def]
    md = aws("kms", "create-key", "--key-spec", "ECC_NIST_P256", "--key-usage", "SIGN_VERIFY")["KeyMetadata"]
    assert md["SigningAlgorithms"] == ["ECDSA_SHA_256"]
    (aws.workdir / "msg.bin").write_bytes(b"signed by the aws cli")
    sig = base64.b64decode(
        aws(
            "kms",
            "sign",
            "--key-id",
            md["KeyId"],
            "--message",
            "fileb://msg.bin",
            "--signing-algorithm",
            "ECDSA_SHA_256",
        )["Signature"]
    )
    pub = base64.b64decode(aws("kms", "get-public-key", "--key-id", md["KeyId"])["PublicKey"])
    assert openssl.verify_signature(pub, "ECDSA_SHA_256", b"signed by the aws cli", sig)
    (aws.workdir / "sig.bin").write_bytes(sig)
    ok = aws(
        "kms",
        "verify",
        "--key-id",
        md["KeyId"],
        "--message",
        "fileb://msg.bin",
        "--signature",
        "fileb://sig.bin",
        "--signing-algorithm",
        "ECDSA_SHA_256",
    )
    assert ok["SignatureValid"] is True
    (aws.workdir / "bad.bin").write_bytes(sig[:-1] + bytes([sig[-1] ^ 1]))
    bad = aws(
        "kms",
        "verify",
        "--key-id",
        md["KeyId"],
        "--message",
        "fileb://msg.bin",
        "--signature",
        "fileb://bad.bin",
        "--signing-algorithm",
        "ECDSA_SHA_256",
        check=False,
    )
    assert bad["rc"] != 0 and "KMSInvalidSignatureException" in bad["stderr"]


def test_cli_mac_and_rsa_oaep(aws) -> None:  # type: ignore[no-untyped-def]
    hmac_key = aws("kms", "create-key", "--key-spec", "HMAC_256", "--key-usage", "GENERATE_VERIFY_MAC")
    key_id = hmac_key["KeyMetadata"]["KeyId"]
    (aws.workdir / "m.bin").write_bytes(b"mac me")
    mac = aws(
        "kms",
        "generate-mac",
        "--key-id",
        key_id,
        "--message",
        "fileb://m.bin",
        "--mac-algorithm",
        "HMAC_SHA_256",
    )["Mac"]
    (aws.workdir / "mac.bin").write_bytes(base64.b64decode(mac))
    assert (
        aws(
            "kms",
            "verify-mac",
            "--key-id",
            key_id,
            "--message",
            "fileb://m.bin",
            "--mac",
            "fileb://mac.bin",
            "--mac-algorithm",
            "HMAC_SHA_256",
        )["MacValid"]
        is True
    )
    rsa_key = aws("kms", "create-key", "--key-spec", "RSA_2048", "--key-usage", "ENCRYPT_DECRYPT")[
        "KeyMetadata"
    ]
    pub = base64.b64decode(aws("kms", "get-public-key", "--key-id", rsa_key["KeyId"])["PublicKey"])
    (aws.workdir / "ct.bin").write_bytes(openssl.oaep_encrypt(pub, "RSAES_OAEP_SHA_256", b"for the cli"))
    out = aws(
        "kms",
        "decrypt",
        "--key-id",
        rsa_key["KeyId"],
        "--ciphertext-blob",
        "fileb://ct.bin",
        "--encryption-algorithm",
        "RSAES_OAEP_SHA_256",
    )
    assert base64.b64decode(out["Plaintext"]) == b"for the cli"


def test_cli_derive_shared_secret_and_data_key_pair(aws) -> None:  # type: ignore[no-untyped-def]
    md = aws("kms", "create-key", "--key-spec", "ECC_NIST_P384", "--key-usage", "KEY_AGREEMENT")[
        "KeyMetadata"
    ]
    pub = serialization.load_der_public_key(
        base64.b64decode(aws("kms", "get-public-key", "--key-id", md["KeyId"])["PublicKey"])
    )
    mine = ec.generate_private_key(ec.SECP384R1())
    (aws.workdir / "peer.der").write_bytes(
        mine.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    out = aws(
        "kms",
        "derive-shared-secret",
        "--key-id",
        md["KeyId"],
        "--key-agreement-algorithm",
        "ECDH",
        "--public-key",
        "fileb://peer.der",
    )
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    assert base64.b64decode(out["SharedSecret"]) == mine.exchange(ec.ECDH(), pub)
    sym = aws("kms", "create-key")["KeyMetadata"]["KeyId"]
    pair = aws("kms", "generate-data-key-pair", "--key-id", sym, "--key-pair-spec", "ECC_NIST_EDWARDS25519")
    private = serialization.load_der_private_key(base64.b64decode(pair["PrivateKeyPlaintext"]), None)
    assert private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == base64.b64decode(pair["PublicKey"])
