"""Bring your own key against a real server with boto3, the openssl command line and the aws CLI:
GetParametersForImport (every wrapping algorithm x wrapping key spec), ImportKeyMaterial (symmetric, HMAC,
ECC and RSA material), reimport rules, DeleteImportedKeyMaterial, expiry by the jobs runner, token errors,
and on-demand rotation of imported material (kms-semantics.md section 7.4)."""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from tests.support.awscli import aws_runner
from tests.support.servers import TEST_ACCOUNT, TEST_REGION, Deployment, ServerProcess

from openkms import errors
from openkms.app import build_service
from openkms.clock import FixedClock
from openkms.config import load_settings
from openkms.service.context import Caller, RequestContext

ALGORITHMS = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256"]
WRAPPING_SPECS = ["RSA_2048", "RSA_3072", "RSA_4096"]
FOREVER = "KEY_MATERIAL_DOES_NOT_EXPIRE"
DER = serialization.Encoding.DER
PKCS8 = serialization.PrivateFormat.PKCS8


def code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


def wrap(algorithm: str, public_der: bytes, material: bytes) -> bytes:
    """Client-side wrapping as AWS documents it, with pyca/cryptography."""
    public = serialization.load_der_public_key(public_der)
    assert isinstance(public, rsa.RSAPublicKey)
    h = hashes.SHA256() if algorithm.endswith("SHA_256") else hashes.SHA1()
    oaep = padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)
    if algorithm.startswith("RSAES_OAEP"):
        return public.encrypt(material, oaep)
    aes_key = os.urandom(32)
    return public.encrypt(aes_key, oaep) + keywrap.aes_key_wrap_with_padding(aes_key, material)


def external_key(kms: Any, spec: str = "SYMMETRIC_DEFAULT", usage: str | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {"Origin": "EXTERNAL", "KeySpec": spec}
    if usage:
        args["KeyUsage"] = usage
    return dict(kms.create_key(**args)["KeyMetadata"])


def import_material(
    kms: Any,
    key_id: str,
    material: bytes,
    algorithm: str = "RSAES_OAEP_SHA_256",
    spec: str = "RSA_2048",
    **extra: Any,
) -> dict[str, Any]:
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec=spec)
    extra.setdefault("ExpirationModel", FOREVER)
    return dict(
        kms.import_key_material(
            KeyId=key_id,
            ImportToken=params["ImportToken"],
            EncryptedKeyMaterial=wrap(algorithm, params["PublicKey"], material),
            **extra,
        )
    )


# --- GetParametersForImport x every algorithm and wrapping key spec --------------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("spec", WRAPPING_SPECS)
def test_symmetric_import_with_every_wrapping(kms: Any, algorithm: str, spec: str) -> None:
    key = external_key(kms)
    assert key["KeyState"] == "PendingImport" and key["Origin"] == "EXTERNAL" and not key["Enabled"]
    assert "CurrentKeyMaterialId" not in key and "ExpirationModel" not in key
    before = time.time()
    params = kms.get_parameters_for_import(
        KeyId=key["KeyId"], WrappingAlgorithm=algorithm, WrappingKeySpec=spec
    )
    assert params["KeyId"] == key["Arn"]
    public = serialization.load_der_public_key(params["PublicKey"])
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == int(spec[4:])
    valid_to = params["ParametersValidTo"].timestamp()
    assert before + 86400 - 5 <= valid_to <= time.time() + 86400 + 5
    assert len(params["ImportToken"]) <= 6144
    material = os.urandom(32)
    out = kms.import_key_material(
        KeyId=key["KeyId"],
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=wrap(algorithm, params["PublicKey"], material),
        ExpirationModel=FOREVER,
    )
    assert out["KeyId"] == key["Arn"] and len(out["KeyMaterialId"]) == 64
    md = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert md["KeyState"] == "Enabled" and md["Enabled"]
    assert md["ExpirationModel"] == FOREVER and "ValidTo" not in md
    assert md["CurrentKeyMaterialId"] == out["KeyMaterialId"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"bring your own key")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"bring your own key"


def test_each_call_gets_a_fresh_wrapping_key(kms: Any) -> None:
    key = external_key(kms)
    a, b = (
        kms.get_parameters_for_import(
            KeyId=key["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
        )
        for _ in range(2)
    )
    assert a["PublicKey"] != b["PublicKey"] and a["ImportToken"] != b["ImportToken"]
    # a token only goes with its own public key
    with pytest.raises(ClientError) as excinfo:
        kms.import_key_material(
            KeyId=key["KeyId"],
            ImportToken=a["ImportToken"],
            EncryptedKeyMaterial=wrap("RSAES_OAEP_SHA_256", b["PublicKey"], os.urandom(32)),
            ExpirationModel=FOREVER,
        )
    assert code(excinfo) == "InvalidCiphertextException"


def test_rejected_parameters(kms: Any) -> None:
    key = external_key(kms)
    for algorithm, spec, expected in (
        ("RSAES_PKCS1_V1_5", "RSA_2048", "ValidationException"),  # withdrawn since October 2023
        ("SM2PKE", "RSA_2048", "UnsupportedOperationException"),  # SM2: China Regions only
        ("RSAES_OAEP_SHA_256", "SM2", "UnsupportedOperationException"),
    ):
        with pytest.raises(ClientError) as excinfo:
            kms.get_parameters_for_import(
                KeyId=key["KeyId"], WrappingAlgorithm=algorithm, WrappingKeySpec=spec
            )
        assert code(excinfo) == expected, (algorithm, spec)
    rsa_key = external_key(kms, "RSA_2048", "SIGN_VERIFY")
    with pytest.raises(ClientError) as excinfo:
        kms.get_parameters_for_import(
            KeyId=rsa_key["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_4096"
        )
    assert code(excinfo) == "ValidationException" and "RSA_AES_KEY_WRAP" in str(excinfo.value)
    p521 = external_key(kms, "ECC_NIST_P521", "SIGN_VERIFY")
    with pytest.raises(ClientError) as excinfo:
        kms.get_parameters_for_import(
            KeyId=p521["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_1", WrappingKeySpec="RSA_2048"
        )
    assert code(excinfo) == "ValidationException"
    generated = kms.create_key()["KeyMetadata"]
    calls: tuple[Callable[[], Any], ...] = (
        lambda: kms.get_parameters_for_import(
            KeyId=generated["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
        ),
        lambda: kms.delete_imported_key_material(KeyId=generated["KeyId"]),
    )
    for call in calls:
        with pytest.raises(ClientError) as excinfo:
            call()
        assert code(excinfo) == "UnsupportedOperationException"
        assert str(excinfo.value).endswith(
            f"{generated['Arn']} origin is AWS_KMS which is not valid for this operation."
        )
    with pytest.raises(ClientError) as excinfo:
        kms.create_key(Origin="EXTERNAL", KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")
    assert code(excinfo) == "UnsupportedOperationException"


def test_pending_import_key_refuses_crypto_and_enable(kms: Any) -> None:
    key = external_key(kms)
    calls: tuple[Callable[[], Any], ...] = (
        lambda: kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x"),
        lambda: kms.enable_key(KeyId=key["KeyId"]),
    )
    for call in calls:
        with pytest.raises(ClientError) as excinfo:
            call()
        assert code(excinfo) == "KMSInvalidStateException"
        assert str(excinfo.value).endswith(f"{key['Arn']} is pending import.")
    # nothing imported yet: deleting has no effect
    assert kms.delete_imported_key_material(KeyId=key["KeyId"])["KeyId"] == key["Arn"]


# --- HMAC, ECC and RSA material ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "algorithm", "low", "high"),
    [
        ("HMAC_224", "HMAC_SHA_224", 28, 64),
        ("HMAC_256", "HMAC_SHA_256", 32, 64),
        ("HMAC_384", "HMAC_SHA_384", 48, 128),
        ("HMAC_512", "HMAC_SHA_512", 64, 128),
    ],
)
def test_hmac_material(kms: Any, spec: str, algorithm: str, low: int, high: int) -> None:
    key = external_key(kms, spec, "GENERATE_VERIFY_MAC")
    for bad in (low - 1, high + 1):
        with pytest.raises(ClientError) as excinfo:
            import_material(kms, key["KeyId"], os.urandom(bad), spec="RSA_3072")
        assert code(excinfo) == "IncorrectKeyMaterialException", bad
    material = os.urandom(high)  # the longest allowed: more than the generated length
    import_material(kms, key["KeyId"], material, spec="RSA_3072")
    digest = {"HMAC_SHA_224": "sha224", "HMAC_SHA_256": "sha256", "HMAC_SHA_384": "sha384"}.get(
        algorithm, "sha512"
    )
    mac = kms.generate_mac(KeyId=key["KeyId"], Message=b"imported", MacAlgorithm=algorithm)["Mac"]
    assert mac == hmac.digest(material, b"imported", digest)
    md = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert md["KeyState"] == "Enabled" and "CurrentKeyMaterialId" not in md


@pytest.mark.parametrize(
    ("spec", "curve", "digest", "algorithm", "wrapping"),
    [
        ("ECC_NIST_P256", ec.SECP256R1(), hashes.SHA256(), "ECDSA_SHA_256", "RSAES_OAEP_SHA_256"),
        ("ECC_NIST_P384", ec.SECP384R1(), hashes.SHA384(), "ECDSA_SHA_384", "RSA_AES_KEY_WRAP_SHA_1"),
        ("ECC_NIST_P521", ec.SECP521R1(), hashes.SHA512(), "ECDSA_SHA_512", "RSA_AES_KEY_WRAP_SHA_256"),
        ("ECC_SECG_P256K1", ec.SECP256K1(), hashes.SHA256(), "ECDSA_SHA_256", "RSAES_OAEP_SHA_1"),
    ],
)
def test_ecc_signing_material(
    kms: Any, spec: str, curve: ec.EllipticCurve, digest: hashes.HashAlgorithm, algorithm: str, wrapping: str
) -> None:
    private = ec.generate_private_key(curve)
    key = external_key(kms, spec, "SIGN_VERIFY")
    wrong_curve = ec.generate_private_key(ec.SECP384R1() if spec != "ECC_NIST_P384" else ec.SECP256R1())
    with pytest.raises(ClientError) as excinfo:
        import_material(
            kms,
            key["KeyId"],
            wrong_curve.private_bytes(DER, PKCS8, serialization.NoEncryption()),
            wrapping,
            "RSA_4096",
        )
    assert code(excinfo) == "IncorrectKeyMaterialException"
    der = private.private_bytes(DER, PKCS8, serialization.NoEncryption())
    import_material(kms, key["KeyId"], der, wrapping, "RSA_4096")
    public_der = private.public_key().public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert kms.get_public_key(KeyId=key["KeyId"])["PublicKey"] == public_der
    signature = kms.sign(KeyId=key["KeyId"], Message=b"signed by imported key", SigningAlgorithm=algorithm)[
        "Signature"
    ]
    private.public_key().verify(signature, b"signed by imported key", ec.ECDSA(digest))  # raises if invalid


def test_rsa_material_sign_and_decrypt(kms: Any) -> None:
    signer = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = external_key(kms, "RSA_2048", "SIGN_VERIFY")
    der = signer.private_bytes(DER, PKCS8, serialization.NoEncryption())
    import_material(kms, key["KeyId"], der, "RSA_AES_KEY_WRAP_SHA_256", "RSA_2048")
    signature = kms.sign(KeyId=key["KeyId"], Message=b"pss", SigningAlgorithm="RSASSA_PSS_SHA_256")[
        "Signature"
    ]
    signer.public_key().verify(
        signature,
        b"pss",
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )
    decrypter = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    enc_key = external_key(kms, "RSA_3072", "ENCRYPT_DECRYPT")
    der = decrypter.private_bytes(DER, PKCS8, serialization.NoEncryption())
    import_material(kms, enc_key["KeyId"], der, "RSA_AES_KEY_WRAP_SHA_1", "RSA_3072")
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    ciphertext = decrypter.public_key().encrypt(b"for the imported key", oaep)
    plain = kms.decrypt(
        KeyId=enc_key["KeyId"], CiphertextBlob=ciphertext, EncryptionAlgorithm="RSAES_OAEP_SHA_256"
    )
    assert plain["Plaintext"] == b"for the imported key"
    # the material of an asymmetric key cannot change after the first import
    other = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    with pytest.raises(ClientError) as excinfo:
        import_material(
            kms,
            enc_key["KeyId"],
            other.private_bytes(DER, PKCS8, serialization.NoEncryption()),
            "RSA_AES_KEY_WRAP_SHA_1",
        )
    assert code(excinfo) == "IncorrectKeyMaterialException"


# --- token and material errors -------------------------------------------------------------------------
def test_token_errors(kms: Any) -> None:
    key, other = external_key(kms), external_key(kms)
    params = kms.get_parameters_for_import(
        KeyId=key["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
    )
    encrypted = wrap("RSAES_OAEP_SHA_256", params["PublicKey"], os.urandom(32))
    tampered = bytearray(params["ImportToken"])
    tampered[len(tampered) // 2] ^= 1
    for key_id, token in ((other["KeyId"], params["ImportToken"]), (key["KeyId"], bytes(tampered))):
        with pytest.raises(ClientError) as excinfo:
            kms.import_key_material(
                KeyId=key_id, ImportToken=token, EncryptedKeyMaterial=encrypted, ExpirationModel=FOREVER
            )
        assert code(excinfo) == "InvalidImportTokenException"
    with pytest.raises(ClientError) as excinfo:
        kms.import_key_material(
            KeyId=key["KeyId"],
            ImportToken=params["ImportToken"],
            EncryptedKeyMaterial=os.urandom(256),
            ExpirationModel=FOREVER,
        )
    assert code(excinfo) == "InvalidCiphertextException"
    with pytest.raises(ClientError) as excinfo:  # 31 bytes is not AES-256 material
        kms.import_key_material(
            KeyId=key["KeyId"],
            ImportToken=params["ImportToken"],
            EncryptedKeyMaterial=wrap("RSAES_OAEP_SHA_256", params["PublicKey"], os.urandom(31)),
            ExpirationModel=FOREVER,
        )
    assert code(excinfo) == "IncorrectKeyMaterialException"
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"


def test_expiration_model_rules(kms: Any) -> None:
    key = external_key(kms)
    params = kms.get_parameters_for_import(
        KeyId=key["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_1", WrappingKeySpec="RSA_2048"
    )
    encrypted = wrap("RSAES_OAEP_SHA_1", params["PublicKey"], os.urandom(32))
    now = dt.datetime.now(dt.UTC)
    for extra, fragment in (
        ({}, "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES"),
        ({"ValidTo": now - dt.timedelta(minutes=1)}, "future"),
        ({"ValidTo": now + dt.timedelta(days=366)}, "365 days"),
        ({"ExpirationModel": FOREVER, "ValidTo": now + dt.timedelta(days=1)}, "must not be set"),
    ):
        with pytest.raises(ClientError) as excinfo:
            kms.import_key_material(
                KeyId=key["KeyId"], ImportToken=params["ImportToken"], EncryptedKeyMaterial=encrypted, **extra
            )
        assert code(excinfo) == "ValidationException" and fragment in str(excinfo.value)
    valid_to = (now + dt.timedelta(days=30)).replace(microsecond=0)
    kms.import_key_material(
        KeyId=key["KeyId"],
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=encrypted,
        ValidTo=valid_to,
    )
    md = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert md["ExpirationModel"] == "KEY_MATERIAL_EXPIRES" and md["ValidTo"] == valid_to


def test_expired_token_and_stateless_acceptance(deployment: Deployment, kms: Any) -> None:
    """A token is accepted by any process holding the root key until ParametersValidTo, then refused."""
    key = external_key(kms)
    params = kms.get_parameters_for_import(
        KeyId=key["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
    )
    encrypted = wrap("RSAES_OAEP_SHA_256", params["PublicKey"], os.urandom(32))
    request = {
        "KeyId": key["KeyId"],
        "ImportToken": params["ImportToken"],
        "EncryptedKeyMaterial": encrypted,
        "ExpirationModel": FOREVER,
    }
    expires = params["ParametersValidTo"].timestamp()
    settings = load_settings(environ=deployment.env())

    def call_at(now: float) -> dict[str, Any]:
        service = build_service(settings, clock=FixedClock(now))
        try:
            caller = Caller(TEST_ACCOUNT, f"arn:aws:iam::{TEST_ACCOUNT}:root", "test")
            ctx = RequestContext("req", caller, TEST_REGION, "127.0.0.1", "test", now)
            return service.operations["ImportKeyMaterial"].handler(ctx, request)
        finally:
            service.core.store.close()

    with pytest.raises(errors.ExpiredImportTokenException):
        call_at(expires + 1)
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    out = call_at(expires - 60)  # another process, 23h59 later: still valid
    assert out["KeyId"] == key["Arn"]
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


# --- reimport, delete, expiry ------------------------------------------------------------------------------
def test_delete_and_reimport(kms: Any) -> None:
    key = external_key(kms)
    material = os.urandom(32)
    first = import_material(kms, key["KeyId"], material)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"survives deletion")["CiphertextBlob"]
    with pytest.raises(ClientError) as excinfo:  # different material into a key that had material
        import_material(kms, key["KeyId"], os.urandom(32))
    assert code(excinfo) == "IncorrectKeyMaterialException"

    deleted = kms.delete_imported_key_material(KeyId=key["KeyId"])
    assert deleted["KeyId"] == key["Arn"] and deleted["KeyMaterialId"] == first["KeyMaterialId"]
    md = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert md["KeyState"] == "PendingImport" and "ExpirationModel" not in md
    assert md["CurrentKeyMaterialId"] == first["KeyMaterialId"]
    with pytest.raises(ClientError) as excinfo:
        kms.decrypt(CiphertextBlob=blob)
    assert code(excinfo) == "KMSInvalidStateException"
    with pytest.raises(ClientError) as excinfo:
        import_material(kms, key["KeyId"], os.urandom(32), "RSA_AES_KEY_WRAP_SHA_256")
    assert code(excinfo) == "IncorrectKeyMaterialException"

    again = import_material(
        kms, key["KeyId"], material, "RSA_AES_KEY_WRAP_SHA_1", KeyMaterialId=first["KeyMaterialId"]
    )
    assert again["KeyMaterialId"] == first["KeyMaterialId"]
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"survives deletion"


def test_disabled_key_goes_pending_import_and_back(kms: Any) -> None:
    key = external_key(kms)
    material = os.urandom(32)
    import_material(kms, key["KeyId"], material)
    kms.disable_key(KeyId=key["KeyId"])
    kms.delete_imported_key_material(KeyId=key["KeyId"])
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    import_material(kms, key["KeyId"], material)
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    kms.delete_imported_key_material(KeyId=key["KeyId"])  # state stays PendingDeletion
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"


def test_expiry_by_the_jobs_runner(deployment: Deployment, kms: Any) -> None:
    key = external_key(kms)
    material = os.urandom(32)
    valid_to = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    import_material(kms, key["KeyId"], material, ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=valid_to)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"until ValidTo")["CiphertextBlob"]
    before = deployment.cli("jobs", "run", "--at", (valid_to - dt.timedelta(minutes=1)).isoformat()).stdout
    assert "expired 0" in before
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    after = deployment.cli("jobs", "run", "--at", (valid_to + dt.timedelta(minutes=1)).isoformat()).stdout
    assert "expired 1" in after
    md = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert md["KeyState"] == "PendingImport" and "ValidTo" not in md
    with pytest.raises(ClientError) as excinfo:
        kms.decrypt(CiphertextBlob=blob)
    assert code(excinfo) == "KMSInvalidStateException"
    rotations = kms.list_key_rotations(KeyId=key["KeyId"], IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    assert [r["ImportState"] for r in rotations] == ["PENDING_IMPORT"]
    out = deployment.cli(
        "audit", "query", "--key", key["KeyId"], "--event-name", "DeleteExpiredKeyMaterial", "--json"
    )
    events = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert len(events) == 1 and events[0]["eventType"] == "AwsServiceEvent"
    import_material(kms, key["KeyId"], material)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"until ValidTo"


# --- new material and on-demand rotation -------------------------------------------------------------------
def test_new_material_and_on_demand_rotation(kms: Any) -> None:
    key = external_key(kms)
    first = import_material(kms, key["KeyId"], os.urandom(32))
    with pytest.raises(ClientError) as excinfo:
        kms.rotate_key_on_demand(KeyId=key["KeyId"])
    assert code(
        excinfo
    ) == "KMSInvalidStateException" and "No available key material pending rotation" in str(excinfo.value)
    old_blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"old")["CiphertextBlob"]
    second_material = os.urandom(32)
    second = import_material(
        kms,
        key["KeyId"],
        second_material,
        ImportType="NEW_KEY_MATERIAL",
        KeyMaterialDescription="2026 material",
    )
    assert second["KeyMaterialId"] != first["KeyMaterialId"]
    with pytest.raises(ClientError) as excinfo:  # only one material may wait for rotation
        import_material(kms, key["KeyId"], os.urandom(32), ImportType="NEW_KEY_MATERIAL")
    assert code(excinfo) == "KMSInvalidStateException" and "pending rotation" in str(excinfo.value)
    listed = kms.list_key_rotations(KeyId=key["KeyId"], IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    assert [(r["KeyMaterialId"], r["KeyMaterialState"], r["ImportState"]) for r in listed] == [
        (first["KeyMaterialId"], "CURRENT", "IMPORTED"),
        (second["KeyMaterialId"], "PENDING_ROTATION", "IMPORTED"),
    ]
    assert listed[1]["KeyMaterialDescription"] == "2026 material"
    assert kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"] == []

    kms.rotate_key_on_demand(KeyId=key["KeyId"])
    md = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert md["CurrentKeyMaterialId"] == second["KeyMaterialId"]
    rotations = kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"]
    assert [(r["KeyMaterialId"], r["RotationType"]) for r in rotations] == [
        (second["KeyMaterialId"], "ON_DEMAND")
    ]
    new_blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"new")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=old_blob)["Plaintext"] == b"old"
    assert kms.decrypt(CiphertextBlob=new_blob)["Plaintext"] == b"new"

    # deleting the current material makes the key PendingImport; both materials must be back to enable it
    kms.delete_imported_key_material(KeyId=key["KeyId"], KeyMaterialId=first["KeyMaterialId"])
    kms.delete_imported_key_material(KeyId=key["KeyId"])
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    import_material(kms, key["KeyId"], second_material, KeyMaterialId=second["KeyMaterialId"])
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"


# --- the openssl command line and the aws CLI, as AWS documents them ---------------------------------------
def sh(workdir: Path, command: str) -> None:
    subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=workdir, check=True, capture_output=True)


def test_openssl_and_aws_cli_flow(server: ServerProcess, kms: Any, tmp_path: Path) -> None:
    aws = aws_runner(server.url, tmp_path)
    for algorithm in ("RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_256"):
        key_id = json.loads(aws("kms", "create-key", "--origin", "EXTERNAL").stdout)["KeyMetadata"]["KeyId"]
        params = json.loads(
            aws(
                "kms",
                "get-parameters-for-import",
                "--key-id",
                key_id,
                "--wrapping-algorithm",
                algorithm,
                "--wrapping-key-spec",
                "RSA_3072",
            ).stdout
        )
        (tmp_path / "PublicKey.bin").write_bytes(base64.b64decode(params["PublicKey"]))
        (tmp_path / "ImportToken.bin").write_bytes(base64.b64decode(params["ImportToken"]))
        sh(tmp_path, "openssl rand -out PlaintextKeyMaterial.bin 32")
        if algorithm == "RSAES_OAEP_SHA_256":
            sh(
                tmp_path,
                "openssl pkeyutl -encrypt -in PlaintextKeyMaterial.bin -out EncryptedKeyMaterial.bin "
                "-inkey PublicKey.bin -keyform DER -pubin -pkeyopt rsa_padding_mode:oaep "
                "-pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256",
            )
        else:
            sh(tmp_path, "openssl rand -out aes-key.bin 32")
            sh(
                tmp_path,
                "openssl enc -id-aes256-wrap-pad -K \"$(xxd -p < aes-key.bin | tr -d '\\n')\" -iv A65959A6 "
                "-in PlaintextKeyMaterial.bin -out key-material-wrapped.bin",
            )
            sh(
                tmp_path,
                "openssl pkeyutl -encrypt -in aes-key.bin -out aes-key-wrapped.bin -inkey PublicKey.bin "
                "-keyform DER -pubin -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 "
                "-pkeyopt rsa_mgf1_md:sha256",
            )
            sh(tmp_path, "cat aes-key-wrapped.bin key-material-wrapped.bin > EncryptedKeyMaterial.bin")
        out = json.loads(
            aws(
                "kms",
                "import-key-material",
                "--key-id",
                key_id,
                "--encrypted-key-material",
                "fileb://EncryptedKeyMaterial.bin",
                "--import-token",
                "fileb://ImportToken.bin",
                "--expiration-model",
                FOREVER,
            ).stdout
        )
        material = (tmp_path / "PlaintextKeyMaterial.bin").read_bytes()
        assert len(out["KeyMaterialId"]) == 64
        assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"openssl-wrapped")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"openssl-wrapped"
        # the same bytes from pyca map to the same material id: it is the material openssl wrapped
        kms.delete_imported_key_material(KeyId=key_id)
        again = import_material(kms, key_id, material)
        assert again["KeyMaterialId"] == out["KeyMaterialId"]
    deleted = json.loads(aws("kms", "delete-imported-key-material", "--key-id", key_id).stdout)
    assert deleted["KeyId"].endswith(key_id)


def test_audit_never_holds_tokens_or_wrapped_material(deployment: Deployment, kms: Any) -> None:
    key = external_key(kms)
    params = kms.get_parameters_for_import(
        KeyId=key["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
    )
    encrypted = wrap("RSAES_OAEP_SHA_256", params["PublicKey"], os.urandom(32))
    kms.import_key_material(
        KeyId=key["KeyId"],
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=encrypted,
        ExpirationModel=FOREVER,
    )
    out = deployment.cli("audit", "query", "--key", key["KeyId"], "--json").stdout
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    names = {e["eventName"] for e in events}
    assert {"GetParametersForImport", "ImportKeyMaterial"} <= names
    for secret in (params["ImportToken"], params["PublicKey"], encrypted):
        assert base64.b64encode(secret).decode()[:40] not in out
    imported = next(e for e in events if e["eventName"] == "ImportKeyMaterial")
    assert imported["requestParameters"]["expirationModel"] == FOREVER


def test_cancelled_deletion_without_material_returns_to_pending_import(kms: Any) -> None:
    # Disabled would let EnableKey report Enabled for a key that every operation refuses as pending import
    # (and GetPublicKey answered that ECC_NIST_P256 has no public key).
    never = external_key(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    kms.schedule_key_deletion(KeyId=never["KeyId"], PendingWindowInDays=7)
    kms.cancel_key_deletion(KeyId=never["KeyId"])
    assert kms.describe_key(KeyId=never["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    with pytest.raises(ClientError) as excinfo:
        kms.enable_key(KeyId=never["KeyId"])
    assert code(excinfo) == "KMSInvalidStateException"

    deleted = external_key(kms)
    material = os.urandom(32)
    import_material(kms, deleted["KeyId"], material)
    blob = kms.encrypt(KeyId=deleted["KeyId"], Plaintext=b"kept")["CiphertextBlob"]
    kms.schedule_key_deletion(KeyId=deleted["KeyId"], PendingWindowInDays=7)
    kms.delete_imported_key_material(KeyId=deleted["KeyId"])
    kms.cancel_key_deletion(KeyId=deleted["KeyId"])
    assert kms.describe_key(KeyId=deleted["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    import_material(kms, deleted["KeyId"], material)  # the same material makes it usable again
    assert kms.describe_key(KeyId=deleted["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"kept"

    kept = external_key(kms)
    import_material(kms, kept["KeyId"], os.urandom(32))
    kms.schedule_key_deletion(KeyId=kept["KeyId"], PendingWindowInDays=7)
    kms.cancel_key_deletion(KeyId=kept["KeyId"])
    assert kms.describe_key(KeyId=kept["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"


def test_reimported_staged_material_cannot_make_a_second_pending_rotation(kms: Any) -> None:
    key = external_key(kms)
    import_material(kms, key["KeyId"], os.urandom(32))
    staged_bytes = os.urandom(32)
    staged = import_material(kms, key["KeyId"], staged_bytes, ImportType="NEW_KEY_MATERIAL")
    kms.delete_imported_key_material(KeyId=key["KeyId"], KeyMaterialId=staged["KeyMaterialId"])
    newer = import_material(kms, key["KeyId"], os.urandom(32), ImportType="NEW_KEY_MATERIAL")
    # Re-importing the deleted staged material used to stage it beside `newer`: two materials pending
    # rotation, and RotateKeyOnDemand then promoted the older one.
    with pytest.raises(ClientError) as excinfo:
        import_material(
            kms,
            key["KeyId"],
            staged_bytes,
            ImportType="EXISTING_KEY_MATERIAL",
            KeyMaterialId=staged["KeyMaterialId"],
        )
    assert code(excinfo) == "KMSInvalidStateException" and "pending rotation" in str(excinfo.value)
    listed = kms.list_key_rotations(KeyId=key["KeyId"], IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    pending = [
        r["KeyMaterialId"]
        for r in listed
        if r["ImportState"] == "IMPORTED" and r["KeyMaterialState"] == "PENDING_ROTATION"
    ]
    assert pending == [newer["KeyMaterialId"]]
    kms.rotate_key_on_demand(KeyId=key["KeyId"])
    assert (
        kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"] == newer["KeyMaterialId"]
    )
