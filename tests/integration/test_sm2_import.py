"""Bring your own key in a China Region through boto3 against a real server (SQLite and PostgreSQL): SM2
wrapping keys (GetParametersForImport with WrappingKeySpec SM2 and SM2PKE) and imported SM2 key material.

Material is wrapped on the client side with openkms.crypto.sm2 (SM2PKE), pyca/cryptography (RSAES_OAEP)
and, for one flow, entirely with the ``openssl`` command line (key generated, converted to PKCS#8 and
wrapped by openssl; signatures checked by openssl with the distinguishing ID 1234567812345678).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from tests.conftest import client
from tests.integration.test_import import FOREVER, wrap
from tests.integration.test_keys_e2e import error_of
from tests.unit.crypto.test_sm2 import _openssl, _run

from openkms.crypto import sm2

CHINA = "cn-north-1"
DISTID = ("-pkeyopt", "distid:1234567812345678")
DER = serialization.Encoding.DER
PKCS8 = serialization.PrivateFormat.PKCS8
CLEAR = serialization.NoEncryption()


@pytest.fixture(scope="module")
def cn(server):  # type: ignore[no-untyped-def]
    return client(server.url, region=CHINA)


def external(cn: Any, spec: str, usage: str | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {"Origin": "EXTERNAL", "KeySpec": spec}
    if usage:
        args["KeyUsage"] = usage
    return dict(cn.create_key(**args)["KeyMetadata"])


def sm2_wrap(public_der: bytes, material: bytes) -> bytes:
    """SM2PKE wrapping on the client side (no 1024-byte limit: RSA private keys are larger)."""
    return sm2.encrypt(sm2.parse_spki(public_der), material, limit=4096)


def import_sm2pke(cn: Any, key_id: str, material: bytes) -> dict[str, Any]:
    params = cn.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="SM2PKE", WrappingKeySpec="SM2")
    return dict(
        cn.import_key_material(
            KeyId=key_id,
            ImportToken=params["ImportToken"],
            EncryptedKeyMaterial=sm2_wrap(params["PublicKey"], material),
            ExpirationModel=FOREVER,
        )
    )


def expect(call: Any, code: str, message: str | None = None) -> str:
    with pytest.raises(ClientError) as e:
        call()
    got = error_of(e)
    assert got[0] == code and got[2] == 400, got
    if message is not None:
        assert got[1] == message
    return got[1]


# --- SM2 wrapping keys ---------------------------------------------------------------------------------
def test_sm2_wrapping_key_parameters(cn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key = external(cn, "ECC_NIST_P256", "SIGN_VERIFY")
    before = time.time()
    a, b = (
        cn.get_parameters_for_import(KeyId=key["KeyId"], WrappingAlgorithm="SM2PKE", WrappingKeySpec="SM2")
        for _ in range(2)
    )
    assert a["KeyId"] == key["Arn"] and key["Arn"].startswith(f"arn:aws:kms:{CHINA}:")
    assert before + 86400 - 5 <= a["ParametersValidTo"].timestamp() <= time.time() + 86400 + 5
    # A fresh SM2 key pair per call; the public key is an SM2 SubjectPublicKeyInfo openssl reads.
    assert a["PublicKey"] != b["PublicKey"] and a["ImportToken"] != b["ImportToken"]
    assert len(a["PublicKey"]) == 91 and sm2.on_curve(sm2.parse_spki(a["PublicKey"]))
    (tmp_path / "wrapping.der").write_bytes(a["PublicKey"])
    text = _run(
        _openssl(),
        "pkey",
        "-pubin",
        "-inform",
        "DER",
        "-in",
        str(tmp_path / "wrapping.der"),
        "-text",
        "-noout",
    )
    assert b"ASN1 OID: SM2" in text
    # ECC material wrapped with SM2PKE; material wrapped for the other call's key does not unwrap.
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.private_bytes(DER, PKCS8, CLEAR)
    expect(
        lambda: cn.import_key_material(
            KeyId=key["KeyId"],
            ImportToken=a["ImportToken"],
            EncryptedKeyMaterial=sm2_wrap(b["PublicKey"], der),
            ExpirationModel=FOREVER,
        ),
        "InvalidCiphertextException",
    )
    out = cn.import_key_material(
        KeyId=key["KeyId"],
        ImportToken=a["ImportToken"],
        EncryptedKeyMaterial=sm2_wrap(a["PublicKey"], der),
        ExpirationModel=FOREVER,
    )
    assert out["KeyId"] == key["Arn"] and len(out["KeyMaterialId"]) == 64
    assert cn.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    signature = cn.sign(KeyId=key["KeyId"], Message=b"p256 via sm2pke", SigningAlgorithm="ECDSA_SHA_256")
    private.public_key().verify(signature["Signature"], b"p256 via sm2pke", ec.ECDSA(hashes.SHA256()))


def test_rsa_private_key_wrapped_with_sm2pke(cn) -> None:  # type: ignore[no-untyped-def]
    # In China Regions RSA private keys are wrapped with SM2PKE (RSA_AES_KEY_WRAP is not offered there):
    # a PKCS#8 RSA_3072 key is well above SM2PKE's 1024-byte Encrypt limit.
    signer = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    der = signer.private_bytes(DER, PKCS8, CLEAR)
    assert len(der) > 1024
    key = external(cn, "RSA_3072", "SIGN_VERIFY")
    import_sm2pke(cn, key["KeyId"], der)
    signature = cn.sign(KeyId=key["KeyId"], Message=b"rsa", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")
    signer.public_key().verify(signature["Signature"], b"rsa", padding.PKCS1v15(), hashes.SHA256())


# --- imported SM2 material -------------------------------------------------------------------------------
def test_import_sm2_signing_key(cn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    secret = sm2.generate_private()
    point = sm2.public_point(secret)
    key = external(cn, "SM2", "SIGN_VERIFY")
    assert key["KeyState"] == "PendingImport" and key["Origin"] == "EXTERNAL" and key["KeySpec"] == "SM2"
    expect(
        lambda: cn.sign(KeyId=key["KeyId"], Message=b"m", SigningAlgorithm="SM2DSA"),
        "KMSInvalidStateException",
    )
    out = import_sm2pke(cn, key["KeyId"], sm2.pkcs8_der(secret))
    md = cn.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert md["KeyState"] == "Enabled" and md["SigningAlgorithms"] == ["SM2DSA"]
    assert md["ExpirationModel"] == FOREVER and len(out["KeyMaterialId"]) == 64
    public = cn.get_public_key(KeyId=key["KeyId"])["PublicKey"]
    assert public == sm2.spki_der(point)
    # Signed by the server, verified locally (openkms.crypto.sm2 and openssl) ...
    message = b"signed with imported SM2 material"
    signature = cn.sign(KeyId=key["KeyId"], Message=message, SigningAlgorithm="SM2DSA")["Signature"]
    sm2.verify_digest(point, sm2.message_digest(point, message), signature)  # raises if invalid
    for name, data in (("pub.der", public), ("msg", message), ("sig", signature)):
        (tmp_path / name).write_bytes(data)
    verified = _run(
        _openssl(), "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.der"), "-keyform", "DER",
        "-rawin", "-digest", "sm3", *DISTID, "-in", str(tmp_path / "msg"), "-sigfile", str(tmp_path / "sig"),
    )  # fmt: skip
    assert b"Signature Verified Successfully" in verified
    # ... and signed locally, verified by the server.
    mine = sm2.sign_digest(secret, sm2.message_digest(point, b"local"))
    assert cn.verify(KeyId=key["KeyId"], Message=b"local", Signature=mine, SigningAlgorithm="SM2DSA")[
        "SignatureValid"
    ]
    expect(
        lambda: cn.verify(KeyId=key["KeyId"], Message=b"other", Signature=mine, SigningAlgorithm="SM2DSA"),
        "KMSInvalidSignatureException",
    )
    # Reimport: the same material (wrapped another way) keeps its id; other SM2 material is refused.
    params = cn.get_parameters_for_import(
        KeyId=key["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
    )
    again = cn.import_key_material(
        KeyId=key["KeyId"],
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=wrap("RSAES_OAEP_SHA_256", params["PublicKey"], sm2.pkcs8_der(secret)),
        ExpirationModel=FOREVER,
    )
    assert again["KeyMaterialId"] == out["KeyMaterialId"]
    expect(
        lambda: import_sm2pke(cn, key["KeyId"], sm2.pkcs8_der(sm2.generate_private())),
        "IncorrectKeyMaterialException",
    )


def test_import_sm2_encryption_key_wrapped_with_rsa(cn) -> None:  # type: ignore[no-untyped-def]
    secret = sm2.generate_private()
    point = sm2.public_point(secret)
    key = external(cn, "SM2", "ENCRYPT_DECRYPT")
    # SM2 material may also travel under an RSA wrapping key with RSAES_OAEP (AWS's table).
    params = cn.get_parameters_for_import(
        KeyId=key["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_1", WrappingKeySpec="RSA_3072"
    )
    cn.import_key_material(
        KeyId=key["KeyId"],
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=wrap("RSAES_OAEP_SHA_1", params["PublicKey"], sm2.pkcs8_der(secret)),
        ExpirationModel="KEY_MATERIAL_EXPIRES",
        ValidTo=time.time() + 3600,
    )
    md = cn.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert md["KeyState"] == "Enabled" and md["EncryptionAlgorithms"] == ["SM2PKE"]
    assert md["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    ciphertext = cn.encrypt(KeyId=key["KeyId"], Plaintext=b"to the owner", EncryptionAlgorithm="SM2PKE")
    assert sm2.decrypt(secret, ciphertext["CiphertextBlob"]) == b"to the owner"
    local = sm2.encrypt(point, b"from the owner")
    out = cn.decrypt(KeyId=key["KeyId"], CiphertextBlob=local, EncryptionAlgorithm="SM2PKE")
    assert out["Plaintext"] == b"from the owner"


def test_import_sm2_key_agreement_key(cn) -> None:  # type: ignore[no-untyped-def]
    secret, peer = sm2.generate_private(), sm2.generate_private()
    key = external(cn, "SM2", "KEY_AGREEMENT")
    import_sm2pke(cn, key["KeyId"], sm2.pkcs8_der(secret))
    peer_public = sm2.spki_der(sm2.public_point(peer))
    resp = cn.derive_shared_secret(KeyId=key["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=peer_public)
    assert resp["KeyOrigin"] == "EXTERNAL"
    assert resp["SharedSecret"] == sm2.derive_shared_secret(peer, sm2.spki_der(sm2.public_point(secret)))


def test_openssl_flow(cn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """AWS's recipe with openssl only: generate an SM2 key, convert it to PKCS#8 DER, wrap it with
    ``pkeyutl -encrypt`` under the SM2 wrapping public key, import; then check signatures both ways."""
    openssl = _openssl()

    def run(*args: str) -> bytes:
        return _run(openssl, *args)

    key = external(cn, "SM2", "SIGN_VERIFY")
    params = cn.get_parameters_for_import(
        KeyId=key["KeyId"], WrappingAlgorithm="SM2PKE", WrappingKeySpec="SM2"
    )
    files = {name: str(tmp_path / name) for name in (
        "WrappingPublicKey.bin", "key.pem", "PlaintextKeyMaterial.der", "EncryptedKeyMaterial.bin", "pub.der",
        "msg", "sig",
    )}  # fmt: skip
    Path(files["WrappingPublicKey.bin"]).write_bytes(params["PublicKey"])
    run("genpkey", "-algorithm", "SM2", "-out", files["key.pem"])
    run(
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        files["key.pem"],
        "-outform",
        "DER",
        "-out",
        files["PlaintextKeyMaterial.der"],
    )
    run(
        "pkeyutl", "-encrypt", "-pubin", "-inkey", files["WrappingPublicKey.bin"], "-keyform", "DER",
        "-in", files["PlaintextKeyMaterial.der"], "-out", files["EncryptedKeyMaterial.bin"],
    )  # fmt: skip
    cn.import_key_material(
        KeyId=key["KeyId"],
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=Path(files["EncryptedKeyMaterial.bin"]).read_bytes(),
        ExpirationModel=FOREVER,
    )
    run("pkey", "-in", files["key.pem"], "-pubout", "-outform", "DER", "-out", files["pub.der"])
    assert cn.get_public_key(KeyId=key["KeyId"])["PublicKey"] == Path(files["pub.der"]).read_bytes()
    message = b"openssl made this key"
    Path(files["msg"]).write_bytes(message)
    signature = cn.sign(KeyId=key["KeyId"], Message=message, SigningAlgorithm="SM2DSA")["Signature"]
    Path(files["sig"]).write_bytes(signature)
    verify = (
        "pkeyutl", "-verify", "-pubin", "-inkey", files["pub.der"], "-keyform", "DER", "-rawin", "-digest",
        "sm3", *DISTID, "-in", files["msg"], "-sigfile", files["sig"],
    )  # fmt: skip
    assert b"Signature Verified Successfully" in run(*verify)
    made = run(
        "pkeyutl",
        "-sign",
        "-inkey",
        files["key.pem"],
        "-rawin",
        "-digest",
        "sm3",
        *DISTID,
        "-in",
        files["msg"],
    )
    assert cn.verify(KeyId=key["KeyId"], Message=message, Signature=made, SigningAlgorithm="SM2DSA")[
        "SignatureValid"
    ]


# --- bad input -------------------------------------------------------------------------------------------
def test_sm2_wrapping_refused_outside_china(kms, server) -> None:  # type: ignore[no-untyped-def]
    key = kms.create_key(Origin="EXTERNAL", KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    message = (
        "The SM2 wrapping key spec and SM2PKE wrapping algorithm are only available in the AWS China "
        "Regions (cn-*)."
    )
    for algorithm, spec in (("SM2PKE", "SM2"), ("SM2PKE", "RSA_2048"), ("RSAES_OAEP_SHA_256", "SM2")):
        expect(
            lambda a=algorithm, s=spec: kms.get_parameters_for_import(
                KeyId=key["KeyId"], WrappingAlgorithm=a, WrappingKeySpec=s
            ),
            "UnsupportedOperationException",
            message,
        )
    for region in ("us-east-1", "eu-central-1"):
        expect(
            lambda r=region: client(server.url, region=r).create_key(
                Origin="EXTERNAL", KeySpec="SM2", KeyUsage="SIGN_VERIFY"
            ),
            "UnsupportedOperationException",
            "KeySpec SM2 is only available in the AWS China Regions (cn-*).",
        )


def test_rejected_wrapping_combinations_in_china(cn) -> None:  # type: ignore[no-untyped-def]
    sm2_key = external(cn, "SM2", "SIGN_VERIFY")
    rsa_key = external(cn, "RSA_2048", "SIGN_VERIFY")
    symmetric = external(cn, "SYMMETRIC_DEFAULT")
    hmac_key = external(cn, "HMAC_256", "GENERATE_VERIFY_MAC")

    def params(key: dict[str, Any], algorithm: str, spec: str) -> Any:
        return lambda: cn.get_parameters_for_import(
            KeyId=key["KeyId"], WrappingAlgorithm=algorithm, WrappingKeySpec=spec
        )

    expect(
        params(sm2_key, "SM2PKE", "RSA_2048"),
        "ValidationException",
        "Wrapping algorithm SM2PKE cannot be used with wrapping key spec RSA_2048: use SM2.",
    )
    expect(
        params(sm2_key, "RSAES_OAEP_SHA_256", "SM2"),
        "ValidationException",
        "Wrapping algorithm RSAES_OAEP_SHA_256 cannot be used with wrapping key spec SM2: use SM2PKE.",
    )
    for key in (symmetric, hmac_key):  # SM2 wrapping keys carry asymmetric material only
        assert "asymmetric" in expect(params(key, "SM2PKE", "SM2"), "ValidationException")
    for algorithm in ("RSA_AES_KEY_WRAP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1"):  # not offered in China
        assert "China Regions" in expect(params(rsa_key, algorithm, "RSA_4096"), "ValidationException")
    assert "SM2PKE" in expect(params(rsa_key, "RSAES_OAEP_SHA_256", "RSA_4096"), "ValidationException")
    # Symmetric material keeps RSAES_OAEP in China.
    assert cn.get_parameters_for_import(
        KeyId=symmetric["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
    )["PublicKey"]


def test_tampered_sm2_ciphertext(cn) -> None:  # type: ignore[no-untyped-def]
    key = external(cn, "SM2", "ENCRYPT_DECRYPT")
    params = cn.get_parameters_for_import(
        KeyId=key["KeyId"], WrappingAlgorithm="SM2PKE", WrappingKeySpec="SM2"
    )
    good = sm2_wrap(params["PublicKey"], sm2.pkcs8_der(sm2.generate_private()))
    flipped_c2 = good[:-1] + bytes([good[-1] ^ 1])
    flipped_c3 = bytearray(good)
    flipped_c3[-139 - 20] ^= 0x80  # inside the 32-byte SM3 hash, before the 138-byte C2 and its header
    raw = b"\x04" + good[4:]  # not a valid ciphertext in either encoding
    for bad in (flipped_c2, bytes(flipped_c3), good[:-1], raw, b"garbage"):
        expect(
            lambda b=bad: cn.import_key_material(
                KeyId=key["KeyId"], ImportToken=params["ImportToken"], EncryptedKeyMaterial=b,
                ExpirationModel=FOREVER,
            ),
            "InvalidCiphertextException",
        )  # fmt: skip
    assert cn.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    # The untouched ciphertext still imports with the same token.
    cn.import_key_material(
        KeyId=key["KeyId"],
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=good,
        ExpirationModel=FOREVER,
    )
    assert cn.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_wrong_curve_and_malformed_material(cn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sm2_key = external(cn, "SM2", "SIGN_VERIFY")
    p256_key = external(cn, "ECC_NIST_P256", "SIGN_VERIFY")
    secret = sm2.generate_private()
    good = sm2.pkcs8_der(secret)
    other_point = sm2.public_point(sm2.generate_private())
    mismatched = good[:-64] + other_point[0].to_bytes(32, "big") + other_point[1].to_bytes(32, "big")
    openssl = _openssl()
    _run(openssl, "genpkey", "-algorithm", "SM2", "-outform", "DER", "-out", str(tmp_path / "bare.der"))
    bare_ec_private_key = (tmp_path / "bare.der").read_bytes()  # RFC 5915 without the PKCS#8 wrapper
    assert bare_ec_private_key[:1] == b"\x30" and bare_ec_private_key != good
    p256 = ec.generate_private_key(ec.SECP256R1()).private_bytes(DER, PKCS8, CLEAR)
    for material in (p256, mismatched, bare_ec_private_key, good + b"\x00", secret, b"\x00" * 138):
        expect(lambda m=material: import_sm2pke(cn, sm2_key["KeyId"], m), "IncorrectKeyMaterialException")
    expect(lambda: import_sm2pke(cn, p256_key["KeyId"], good), "IncorrectKeyMaterialException")
    assert cn.describe_key(KeyId=sm2_key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    import_sm2pke(cn, sm2_key["KeyId"], good)
    assert cn.get_public_key(KeyId=sm2_key["KeyId"])["PublicKey"] == sm2.spki_der(sm2.public_point(secret))
