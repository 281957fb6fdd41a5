"""Every asymmetric and HMAC key spec through boto3 against a real server, on SQLite and PostgreSQL.

Every signature, ciphertext, shared secret and encapsulation is checked by an implementation other than
the server's code path: ``openssl`` for RSA/ECDSA/Ed25519 signatures and RSA-OAEP, pyca on the client side
with the public key from GetPublicKey, kyber-py for ML-KEM-512, and round trips.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, padding, rsa, utils
from kyber_py.ml_kem import ML_KEM_512
from tests.integration.test_keys_e2e import error_of
from tests.support import openssl

SIGN_SPECS = {
    "RSA_2048": [
        "RSASSA_PKCS1_V1_5_SHA_256",
        "RSASSA_PKCS1_V1_5_SHA_384",
        "RSASSA_PKCS1_V1_5_SHA_512",
        "RSASSA_PSS_SHA_256",
        "RSASSA_PSS_SHA_384",
        "RSASSA_PSS_SHA_512",
    ],
    "RSA_3072": ["RSASSA_PSS_SHA_256", "RSASSA_PKCS1_V1_5_SHA_512"],
    "RSA_4096": ["RSASSA_PSS_SHA_512", "RSASSA_PKCS1_V1_5_SHA_256"],
    "ECC_NIST_P256": ["ECDSA_SHA_256"],
    "ECC_NIST_P384": ["ECDSA_SHA_384"],
    "ECC_NIST_P521": ["ECDSA_SHA_512"],
    "ECC_SECG_P256K1": ["ECDSA_SHA_256"],
    "ECC_NIST_EDWARDS25519": ["ED25519_SHA_512"],
}
SPKI_LENGTH = {
    "RSA_2048": 294,
    "RSA_3072": 422,
    "RSA_4096": 550,
    "ECC_NIST_P256": 91,
    "ECC_NIST_P384": 120,
    "ECC_NIST_P521": 158,
    "ECC_SECG_P256K1": 88,
    "ECC_NIST_EDWARDS25519": 44,
    "ML_DSA_44": 1334,
    "ML_DSA_65": 1974,
    "ML_DSA_87": 2614,
    "ML_KEM_512": 822,
    "ML_KEM_768": 1206,
    "ML_KEM_1024": 1590,
}
HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


class Keys(dict):  # type: ignore[type-arg]
    """(spec, usage) -> KeyMetadata, created once per server."""


@pytest.fixture(scope="module")
def keys(kms) -> Keys:
    made = Keys()
    pairs = [(s, "SIGN_VERIFY") for s in [*SIGN_SPECS, "ML_DSA_44", "ML_DSA_65", "ML_DSA_87"]]
    pairs += [(s, "ENCRYPT_DECRYPT") for s in ("RSA_2048", "RSA_3072", "RSA_4096")]
    pairs += [(s, "KEY_AGREEMENT") for s in ("ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521")]
    pairs += [(s, "ENCAPSULATE_DECAPSULATE") for s in ("ML_KEM_512", "ML_KEM_768", "ML_KEM_1024")]
    pairs += [(f"HMAC_{n}", "GENERATE_VERIFY_MAC") for n in (224, 256, 384, 512)]
    for spec, usage in pairs:
        made[spec, usage] = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
    made["SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"] = kms.create_key()["KeyMetadata"]
    return made


def _public(kms, key_id: str):  # type: ignore[no-untyped-def]
    return serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])


# --- CreateKey / DescribeKey / GetPublicKey ---------------------------------------------------------------
EXPECTED_LISTS = {
    "SIGN_VERIFY": "SigningAlgorithms",
    "ENCRYPT_DECRYPT": "EncryptionAlgorithms",
    "KEY_AGREEMENT": "KeyAgreementAlgorithms",
    "ENCAPSULATE_DECAPSULATE": "EncapsulationAlgorithms",
    "GENERATE_VERIFY_MAC": "MacAlgorithms",
}


def test_metadata_and_public_keys(kms, keys: Keys) -> None:
    for (spec, usage), md in keys.items():
        if spec == "SYMMETRIC_DEFAULT":
            continue
        assert md["KeySpec"] == spec and md["KeyUsage"] == usage and md["KeyState"] == "Enabled"
        lists = [m for m in EXPECTED_LISTS.values() if m in md]
        assert lists == [EXPECTED_LISTS[usage]], (spec, usage)
        assert "CurrentKeyMaterialId" not in md
        assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"] == md
        if usage == "GENERATE_VERIFY_MAC":
            with pytest.raises(ClientError) as e:
                kms.get_public_key(KeyId=md["KeyId"])
            assert error_of(e)[0] == "UnsupportedOperationException"
            continue
        pub = kms.get_public_key(KeyId=md["Arn"])
        assert pub["KeyId"] == md["Arn"] and pub["KeySpec"] == spec and pub["KeyUsage"] == usage
        assert pub[EXPECTED_LISTS[usage]] == md[EXPECTED_LISTS[usage]]
        assert len(pub["PublicKey"]) == SPKI_LENGTH[spec], spec
        assert ("CustomerMasterKeySpec" in pub) == (not spec.startswith(("ML_", "ECC_NIST_EDWARDS"))), spec
        if spec != "ML_KEM_512":  # pyca cannot load ML-KEM-512 at all
            serialization.load_der_public_key(pub["PublicKey"])


def test_algorithm_lists(keys: Keys) -> None:
    assert keys["RSA_2048", "SIGN_VERIFY"]["SigningAlgorithms"] == [
        "RSASSA_PKCS1_V1_5_SHA_256",
        "RSASSA_PKCS1_V1_5_SHA_384",
        "RSASSA_PKCS1_V1_5_SHA_512",
        "RSASSA_PSS_SHA_256",
        "RSASSA_PSS_SHA_384",
        "RSASSA_PSS_SHA_512",
    ]
    assert keys["RSA_4096", "ENCRYPT_DECRYPT"]["EncryptionAlgorithms"] == [
        "RSAES_OAEP_SHA_1",
        "RSAES_OAEP_SHA_256",
    ]
    assert keys["ECC_NIST_EDWARDS25519", "SIGN_VERIFY"]["SigningAlgorithms"] == [
        "ED25519_SHA_512",
        "ED25519_PH_SHA_512",
    ]
    assert keys["ML_DSA_65", "SIGN_VERIFY"]["SigningAlgorithms"] == ["ML_DSA_SHAKE_256"]
    assert keys["ECC_NIST_P384", "KEY_AGREEMENT"]["KeyAgreementAlgorithms"] == ["ECDH"]
    assert keys["ML_KEM_768", "ENCAPSULATE_DECAPSULATE"]["EncapsulationAlgorithms"] == ["ML_KEM"]
    assert keys["HMAC_384", "GENERATE_VERIFY_MAC"]["MacAlgorithms"] == ["HMAC_SHA_384"]
    assert keys["ECC_SECG_P256K1", "SIGN_VERIFY"]["CustomerMasterKeySpec"] == "ECC_SECG_P256K1"


@pytest.mark.parametrize(
    ("spec", "usage"),
    [
        ("ECC_SECG_P256K1", "KEY_AGREEMENT"),
        ("ECC_NIST_EDWARDS25519", "KEY_AGREEMENT"),
        ("ML_DSA_44", "ENCRYPT_DECRYPT"),
        ("ML_KEM_768", "SIGN_VERIFY"),
        ("HMAC_256", "SIGN_VERIFY"),
        ("RSA_2048", "GENERATE_VERIFY_MAC"),
        ("ECC_NIST_P256", "ENCRYPT_DECRYPT"),
    ],
)
def test_create_key_rejects_usages_aws_rejects(kms, spec: str, usage: str) -> None:
    with pytest.raises(ClientError) as e:
        kms.create_key(KeySpec=spec, KeyUsage=usage)
    assert error_of(e)[:2] == (
        "ValidationException",
        f"KeyUsage {usage} is not compatible with KeySpec {spec}",
    )


def test_sm2_and_region_gates(kms, server) -> None:
    from tests.conftest import client

    # SM2 outside China Regions: tests/integration/test_sm2_e2e.py
    with pytest.raises(ClientError) as e:
        client(server.url, region="us-east-1").create_key(KeySpec="SM2", KeyUsage="SIGN_VERIFY")
    assert error_of(e)[0] == "UnsupportedOperationException"
    china = client(server.url, region="cn-north-1")
    with pytest.raises(ClientError) as e:
        china.create_key(KeySpec="ML_KEM_768", KeyUsage="ENCAPSULATE_DECAPSULATE")
    assert error_of(e)[0] == "UnsupportedOperationException"


# --- Sign / Verify -----------------------------------------------------------------------------------------
def _client_verify(public, algorithm: str, message: bytes, signature: bytes, digest: bool = False) -> None:  # type: ignore[no-untyped-def]
    h = HASHES.get(algorithm[-3:])
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, message, ec.ECDSA(utils.Prehashed(h()) if digest else h()))
    elif isinstance(public, rsa.RSAPublicKey):
        pad = padding.PSS(padding.MGF1(h()), h.digest_size) if "PSS" in algorithm else padding.PKCS1v15()
        public.verify(signature, message, pad, utils.Prehashed(h()) if digest else h())
    elif isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(signature, message)
    else:
        public.verify(signature, message)


@pytest.mark.parametrize("spec", list(SIGN_SPECS))
def test_sign_raw_checked_by_openssl_and_pyca(kms, keys: Keys, spec: str) -> None:
    md = keys[spec, "SIGN_VERIFY"]
    pub_der = kms.get_public_key(KeyId=md["KeyId"])["PublicKey"]
    public = serialization.load_der_public_key(pub_der)
    message = os.urandom(100)
    for algorithm in SIGN_SPECS[spec]:
        resp = kms.sign(KeyId=md["KeyId"], Message=message, SigningAlgorithm=algorithm)
        assert resp["KeyId"] == md["Arn"] and resp["SigningAlgorithm"] == algorithm
        sig = resp["Signature"]
        assert openssl.verify_signature(pub_der, algorithm, message, sig), (spec, algorithm)
        _client_verify(public, algorithm, message, sig)
        ok = kms.verify(KeyId=md["KeyId"], Message=message, Signature=sig, SigningAlgorithm=algorithm)
        assert ok["SignatureValid"] is True and ok["KeyId"] == md["Arn"]
        corrupted = bytearray(sig)
        corrupted[len(sig) // 2] ^= 0x01
        with pytest.raises(ClientError) as e:
            kms.verify(
                KeyId=md["KeyId"], Message=message, Signature=bytes(corrupted), SigningAlgorithm=algorithm
            )
        assert error_of(e) == ("KMSInvalidSignatureException", "", 400)
        with pytest.raises(ClientError) as e:
            kms.verify(KeyId=md["KeyId"], Message=message + b"x", Signature=sig, SigningAlgorithm=algorithm)
        assert error_of(e) == ("KMSInvalidSignatureException", "", 400)


@pytest.mark.parametrize("spec", [s for s in SIGN_SPECS if s != "ECC_NIST_EDWARDS25519"])
def test_sign_digest_and_cross_verification(kms, keys: Keys, spec: str) -> None:
    md = keys[spec, "SIGN_VERIFY"]
    public = _public(kms, md["KeyId"])
    message = b"the quick brown fox"
    for algorithm in SIGN_SPECS[spec]:
        h = HASHES[algorithm[-3:]]
        digest = hashlib.new(h.name, message).digest()
        sig = kms.sign(KeyId=md["KeyId"], Message=digest, MessageType="DIGEST", SigningAlgorithm=algorithm)[
            "Signature"
        ]
        _client_verify(public, algorithm, digest, sig, digest=True)
        _client_verify(public, algorithm, message, sig)  # DIGEST of m verifies as RAW m
        kms.verify(KeyId=md["KeyId"], Message=message, Signature=sig, SigningAlgorithm=algorithm)
        raw_sig = kms.sign(KeyId=md["KeyId"], Message=message, SigningAlgorithm=algorithm)["Signature"]
        kms.verify(
            KeyId=md["KeyId"],
            Message=digest,
            MessageType="DIGEST",
            Signature=raw_sig,
            SigningAlgorithm=algorithm,
        )
        with pytest.raises(ClientError) as e:
            kms.sign(KeyId=md["KeyId"], Message=digest[:-1], MessageType="DIGEST", SigningAlgorithm=algorithm)
        assert error_of(e)[:2] == (
            "ValidationException",
            f"Digest is invalid length for algorithm {algorithm}.",
        )


def test_ed25519_ph(kms, keys: Keys) -> None:
    md = keys["ECC_NIST_EDWARDS25519", "SIGN_VERIFY"]
    public = _public(kms, md["KeyId"])
    digest = hashlib.sha512(b"prehashed message").digest()
    resp = kms.sign(
        KeyId=md["KeyId"], Message=digest, MessageType="DIGEST", SigningAlgorithm="ED25519_PH_SHA_512"
    )
    sig = resp["Signature"]
    assert len(sig) == 64
    kms.verify(
        KeyId=md["KeyId"],
        Message=digest,
        MessageType="DIGEST",
        Signature=sig,
        SigningAlgorithm="ED25519_PH_SHA_512",
    )
    from tests.support.ed25519_ref import verify_ed25519ph

    assert verify_ed25519ph(public.public_bytes_raw(), digest, sig)  # independent pure-Python RFC 8032
    with pytest.raises(InvalidSignature):
        public.verify(sig, digest)  # not a pure Ed25519 signature
    for algorithm, message_type in (("ED25519_PH_SHA_512", "RAW"), ("ED25519_SHA_512", "DIGEST")):
        with pytest.raises(ClientError) as e:
            kms.sign(KeyId=md["KeyId"], Message=digest, MessageType=message_type, SigningAlgorithm=algorithm)
        assert error_of(e)[0] == "ValidationException"
    with pytest.raises(ClientError) as e:
        kms.sign(
            KeyId=md["KeyId"],
            Message=digest[:32],
            MessageType="DIGEST",
            SigningAlgorithm="ED25519_PH_SHA_512",
        )
    assert error_of(e)[:2] == (
        "ValidationException",
        "Digest is invalid length for algorithm ED25519_PH_SHA_512.",
    )


@pytest.mark.parametrize("spec", ["ML_DSA_44", "ML_DSA_65", "ML_DSA_87"])
def test_ml_dsa_raw_and_external_mu(kms, keys: Keys, spec: str) -> None:
    md = keys[spec, "SIGN_VERIFY"]
    public = _public(kms, md["KeyId"])
    assert isinstance(public, mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey | mldsa.MLDSA87PublicKey)
    message = os.urandom(4096)
    sig = kms.sign(KeyId=md["KeyId"], Message=message, SigningAlgorithm="ML_DSA_SHAKE_256")["Signature"]
    assert len(sig) == {"ML_DSA_44": 2420, "ML_DSA_65": 3309, "ML_DSA_87": 4627}[spec]
    public.verify(sig, message)
    hasher = mldsa.MLDSAMuHasher(public)
    hasher.update(message)
    mu = hasher.finalize()
    mu_sig = kms.sign(
        KeyId=md["KeyId"], Message=mu, MessageType="EXTERNAL_MU", SigningAlgorithm="ML_DSA_SHAKE_256"
    )
    public.verify(mu_sig["Signature"], message)  # a signature over mu verifies as one over the message
    kms.verify(
        KeyId=md["KeyId"],
        Message=mu,
        MessageType="EXTERNAL_MU",
        Signature=sig,
        SigningAlgorithm="ML_DSA_SHAKE_256",
    )
    with pytest.raises(ClientError) as e:
        kms.verify(
            KeyId=md["KeyId"], Message=message[:-1], Signature=sig, SigningAlgorithm="ML_DSA_SHAKE_256"
        )
    assert error_of(e) == ("KMSInvalidSignatureException", "", 400)
    for message_type, value in (("DIGEST", mu), ("EXTERNAL_MU", mu[:32])):
        with pytest.raises(ClientError) as e:
            kms.sign(
                KeyId=md["KeyId"],
                Message=value,
                MessageType=message_type,
                SigningAlgorithm="ML_DSA_SHAKE_256",
            )
        assert error_of(e)[0] == "ValidationException"


def test_external_mu_only_for_ml_dsa(kms, keys: Keys) -> None:
    with pytest.raises(ClientError) as e:
        kms.sign(
            KeyId=keys["ECC_NIST_P256", "SIGN_VERIFY"]["KeyId"],
            Message=os.urandom(64),
            MessageType="EXTERNAL_MU",
            SigningAlgorithm="ECDSA_SHA_256",
        )
    assert error_of(e)[0] == "ValidationException"


def test_sign_errors(kms, kms_nv, keys: Keys) -> None:
    p256 = keys["ECC_NIST_P256", "SIGN_VERIFY"]
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=p256["KeyId"], Message=b"x", SigningAlgorithm="ECDSA_SHA_384")
    assert error_of(e)[:2] == (
        "InvalidKeyUsageException",
        "Algorithm ECDSA_SHA_384 is incompatible with key spec ECC_NIST_P256.",
    )
    with pytest.raises(ClientError) as e:
        kms.sign(
            KeyId=p256["KeyId"], Message=b"x" * 31, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256"
        )
    assert error_of(e)[:2] == ("ValidationException", "Digest is invalid length for algorithm ECDSA_SHA_256.")
    with pytest.raises(ClientError) as e:
        kms_nv.sign(KeyId=p256["KeyId"], Message=b"x" * 4097, SigningAlgorithm="ECDSA_SHA_256")
    assert error_of(e)[0] == "ValidationException" and "length less than or equal to 4096" in error_of(e)[1]
    for key in (
        keys["RSA_2048", "ENCRYPT_DECRYPT"],
        keys["SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"],
        keys["ECC_NIST_P256", "KEY_AGREEMENT"],
    ):
        with pytest.raises(ClientError) as e:
            kms.sign(KeyId=key["KeyId"], Message=b"x", SigningAlgorithm="ECDSA_SHA_256")
        assert error_of(e)[:2] == (
            "InvalidKeyUsageException",
            f"{key['Arn']} key usage is {key['KeyUsage']} which is not valid for Sign.",
        )
    with pytest.raises(ClientError) as e:
        kms.verify(KeyId=p256["KeyId"], Message=b"x", Signature=b"\x30\x00", SigningAlgorithm="ECDSA_SHA_256")
    assert error_of(e) == ("KMSInvalidSignatureException", "", 400)
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=p256["KeyId"], Message=b"x", SigningAlgorithm="ECDSA_SHA_256", DryRun=True)
    assert error_of(e)[0] == "DryRunOperationException"
    sig = kms.sign(KeyId=p256["KeyId"], Message=b"x", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    with pytest.raises(ClientError) as e:
        kms.verify(
            KeyId=p256["KeyId"], Message=b"x", Signature=sig, SigningAlgorithm="ECDSA_SHA_256", DryRun=True
        )
    assert error_of(e)[0] == "DryRunOperationException"


def test_key_states_apply(kms) -> None:
    md = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    kms.disable_key(KeyId=md["KeyId"])
    for call in (
        lambda: kms.sign(KeyId=md["KeyId"], Message=b"x", SigningAlgorithm="ECDSA_SHA_256"),
        lambda: kms.get_public_key(KeyId=md["KeyId"]),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_of(e)[:2] == ("DisabledException", f"{md['Arn']} is disabled.")
    kms.enable_key(KeyId=md["KeyId"])
    kms.sign(KeyId=md["KeyId"], Message=b"x", SigningAlgorithm="ECDSA_SHA_256")
    kms.schedule_key_deletion(KeyId=md["KeyId"], PendingWindowInDays=7)
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=md["KeyId"], Message=b"x", SigningAlgorithm="ECDSA_SHA_256")
    assert error_of(e)[:2] == ("KMSInvalidStateException", f"{md['Arn']} is pending deletion.")
    with pytest.raises(ClientError) as e:
        kms.enable_key_rotation(KeyId=md["KeyId"])
    assert error_of(e)[0] in ("KMSInvalidStateException", "UnsupportedOperationException")


# --- RSA-OAEP ----------------------------------------------------------------------------------------------
LIMITS = {
    ("RSA_2048", "RSAES_OAEP_SHA_1"): 214,
    ("RSA_2048", "RSAES_OAEP_SHA_256"): 190,
    ("RSA_3072", "RSAES_OAEP_SHA_1"): 342,
    ("RSA_3072", "RSAES_OAEP_SHA_256"): 318,
    ("RSA_4096", "RSAES_OAEP_SHA_1"): 470,
    ("RSA_4096", "RSAES_OAEP_SHA_256"): 446,
}


@pytest.mark.parametrize(("spec", "algorithm"), list(LIMITS))
def test_rsa_oaep(kms, keys: Keys, spec: str, algorithm: str) -> None:
    md = keys[spec, "ENCRYPT_DECRYPT"]
    pub_der = kms.get_public_key(KeyId=md["KeyId"])["PublicKey"]
    limit = LIMITS[spec, algorithm]
    plaintext = os.urandom(limit)
    enc = kms.encrypt(KeyId=md["KeyId"], Plaintext=plaintext, EncryptionAlgorithm=algorithm)
    assert enc["EncryptionAlgorithm"] == algorithm and len(enc["CiphertextBlob"]) == int(spec[4:]) // 8
    dec = kms.decrypt(KeyId=md["KeyId"], CiphertextBlob=enc["CiphertextBlob"], EncryptionAlgorithm=algorithm)
    assert dec["Plaintext"] == plaintext and dec["KeyId"] == md["Arn"] and "KeyMaterialId" not in dec
    # openssl and pyca encrypt with the public key; the server decrypts.
    from_openssl = openssl.oaep_encrypt(pub_der, algorithm, b"from openssl")
    assert (
        kms.decrypt(KeyId=md["KeyId"], CiphertextBlob=from_openssl, EncryptionAlgorithm=algorithm)[
            "Plaintext"
        ]
        == b"from openssl"
    )
    h = hashes.SHA1() if algorithm.endswith("_1") else hashes.SHA256()
    public = serialization.load_der_public_key(pub_der)
    assert isinstance(public, rsa.RSAPublicKey)
    from_pyca = public.encrypt(b"from pyca", padding.OAEP(padding.MGF1(h), h, None))
    assert (
        kms.decrypt(KeyId=md["KeyId"], CiphertextBlob=from_pyca, EncryptionAlgorithm=algorithm)["Plaintext"]
        == b"from pyca"
    )
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=md["KeyId"], Plaintext=plaintext + b"x", EncryptionAlgorithm=algorithm)
    assert error_of(e)[:2] == (
        "ValidationException",
        f"Algorithm {algorithm} and key spec {spec} cannot encrypt data larger than {limit} bytes.",
    )
    corrupted = bytearray(enc["CiphertextBlob"])
    corrupted[5] ^= 0x40
    for bad in (bytes(corrupted), enc["CiphertextBlob"][:-1]):
        with pytest.raises(ClientError) as e:
            kms.decrypt(KeyId=md["KeyId"], CiphertextBlob=bad, EncryptionAlgorithm=algorithm)
        assert error_of(e) == ("InvalidCiphertextException", "", 400)


def test_rsa_encryption_errors(kms, keys: Keys) -> None:
    rsa_enc = keys["RSA_4096", "ENCRYPT_DECRYPT"]
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=rsa_enc["KeyId"], Plaintext=b"x")
    assert error_of(e)[:2] == (
        "InvalidKeyUsageException",
        "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_4096.",
    )
    sign_key = keys["RSA_2048", "SIGN_VERIFY"]
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=sign_key["KeyId"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert error_of(e)[:2] == (
        "InvalidKeyUsageException",
        f"{sign_key['Arn']} key usage is SIGN_VERIFY which is not valid for Encrypt.",
    )
    sym = keys["SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"]
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=sym["KeyId"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert error_of(e)[:2] == (
        "InvalidKeyUsageException",
        "Algorithm RSAES_OAEP_SHA_256 is incompatible with key spec SYMMETRIC_DEFAULT.",
    )
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=rsa_enc["KeyId"], Plaintext=b"x", EncryptionAlgorithm="SM2PKE")
    assert error_of(e)[:2] == (
        "InvalidKeyUsageException",
        "Algorithm SM2PKE is incompatible with key spec RSA_4096.",
    )
    blob = kms.encrypt(KeyId=rsa_enc["KeyId"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_1")[
        "CiphertextBlob"
    ]
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_1")
    assert error_of(e)[0] == "ValidationException"
    with pytest.raises(ClientError) as e:  # OAEP hash mismatch is a decryption failure
        kms.decrypt(KeyId=rsa_enc["KeyId"], CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert error_of(e) == ("InvalidCiphertextException", "", 400)
    with pytest.raises(ClientError) as e:
        kms.decrypt(
            KeyId=rsa_enc["KeyId"], CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_1", DryRun=True
        )
    assert error_of(e)[0] == "DryRunOperationException"
    with pytest.raises(ClientError) as e:
        kms.encrypt(
            KeyId=rsa_enc["KeyId"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_1", DryRun=True
        )
    assert error_of(e)[0] == "DryRunOperationException"
    with pytest.raises(ClientError) as e:
        kms.generate_data_key(KeyId=rsa_enc["KeyId"], KeySpec="AES_256")
    assert error_of(e)[0] == "InvalidKeyUsageException"


def test_re_encrypt_between_rsa_and_symmetric(kms, keys: Keys) -> None:
    rsa_key = keys["RSA_3072", "ENCRYPT_DECRYPT"]
    sym = keys["SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"]
    blob = kms.encrypt(KeyId=sym["KeyId"], Plaintext=b"move", EncryptionContext={"a": "b"})["CiphertextBlob"]
    out = kms.re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext={"a": "b"},
        DestinationKeyId=rsa_key["KeyId"],
        DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256",
    )
    assert out["KeyId"] == rsa_key["Arn"] and out["SourceKeyMaterialId"] == sym["CurrentKeyMaterialId"]
    assert "DestinationKeyMaterialId" not in out
    back = kms.re_encrypt(
        CiphertextBlob=out["CiphertextBlob"],
        SourceKeyId=rsa_key["KeyId"],
        SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256",
        DestinationKeyId=sym["KeyId"],
        DestinationEncryptionContext={"c": "d"},
    )
    assert back["SourceKeyId"] == rsa_key["Arn"] and "SourceKeyMaterialId" not in back
    assert (
        kms.decrypt(CiphertextBlob=back["CiphertextBlob"], EncryptionContext={"c": "d"})["Plaintext"]
        == b"move"
    )


def test_re_encrypt_dry_run_checks_the_oaep_size_limit(kms, keys: Keys) -> None:
    # DryRun answers DryRunOperationException only when the real call would succeed (section 4.2)
    rsa_key = keys["RSA_3072", "ENCRYPT_DECRYPT"]
    sym = keys["SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"]
    big = kms.encrypt(KeyId=sym["KeyId"], Plaintext=b"x" * 4096)["CiphertextBlob"]
    for dry_run in (False, True):
        with pytest.raises(ClientError) as e:
            kms.re_encrypt(
                CiphertextBlob=big,
                DestinationKeyId=rsa_key["KeyId"],
                DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256",
                DryRun=dry_run,
            )
        assert e.value.response["Error"] == {
            "Code": "ValidationException",
            "Message": "Algorithm RSAES_OAEP_SHA_256 and key spec RSA_3072 cannot encrypt data larger "
            "than 318 bytes.",
        }
    small = kms.encrypt(KeyId=sym["KeyId"], Plaintext=b"x" * 318)["CiphertextBlob"]
    with pytest.raises(ClientError) as e:
        kms.re_encrypt(
            CiphertextBlob=small,
            DestinationKeyId=rsa_key["KeyId"],
            DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256",
            DryRun=True,
        )
    assert e.value.response["Error"]["Code"] == "DryRunOperationException"


# --- HMAC --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [224, 256, 384, 512])
def test_mac(kms, keys: Keys, bits: int) -> None:
    md = keys[f"HMAC_{bits}", "GENERATE_VERIFY_MAC"]
    algorithm = f"HMAC_SHA_{bits}"
    message = os.urandom(4096)
    resp = kms.generate_mac(KeyId=md["KeyId"], Message=message, MacAlgorithm=algorithm)
    assert resp["KeyId"] == md["Arn"] and resp["MacAlgorithm"] == algorithm and len(resp["Mac"]) == bits // 8
    assert kms.generate_mac(KeyId=md["KeyId"], Message=message, MacAlgorithm=algorithm)["Mac"] == resp["Mac"]
    ok = kms.verify_mac(KeyId=md["KeyId"], Message=message, MacAlgorithm=algorithm, Mac=resp["Mac"])
    assert ok["MacValid"] is True
    for bad in (resp["Mac"][:-1] + bytes([resp["Mac"][-1] ^ 1]), resp["Mac"][:-1]):
        with pytest.raises(ClientError) as e:
            kms.verify_mac(KeyId=md["KeyId"], Message=message, MacAlgorithm=algorithm, Mac=bad)
        assert error_of(e) == ("KMSInvalidMacException", "", 400)
    other = "HMAC_SHA_256" if bits != 256 else "HMAC_SHA_512"
    with pytest.raises(ClientError) as e:
        kms.generate_mac(KeyId=md["KeyId"], Message=message, MacAlgorithm=other)
    assert error_of(e)[:2] == (
        "InvalidKeyUsageException",
        f"Algorithm {other} is incompatible with key spec HMAC_{bits}.",
    )
    with pytest.raises(ClientError) as e:
        kms.generate_mac(KeyId=md["KeyId"], Message=message, MacAlgorithm=algorithm, DryRun=True)
    assert error_of(e)[0] == "DryRunOperationException"


def test_mac_keys_are_not_encryption_keys(kms, keys: Keys) -> None:
    md = keys["HMAC_256", "GENERATE_VERIFY_MAC"]
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=md["KeyId"], Plaintext=b"x")
    assert error_of(e)[:2] == (
        "InvalidKeyUsageException",
        f"{md['Arn']} key usage is GENERATE_VERIFY_MAC which is not valid for Encrypt.",
    )
    sym = keys["SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"]
    with pytest.raises(ClientError) as e:
        kms.generate_mac(KeyId=sym["KeyId"], Message=b"x", MacAlgorithm="HMAC_SHA_256")
    assert error_of(e)[:2] == (
        "InvalidKeyUsageException",
        f"{sym['Arn']} key usage is ENCRYPT_DECRYPT which is not valid for GenerateMac.",
    )
    with pytest.raises(ClientError) as e:
        kms.get_public_key(KeyId=sym["KeyId"])
    assert error_of(e)[0] == "UnsupportedOperationException"
    with pytest.raises(ClientError) as e:
        kms.enable_key_rotation(KeyId=md["KeyId"])
    assert error_of(e)[0] == "UnsupportedOperationException"


# --- ECDH --------------------------------------------------------------------------------------------------
CURVES = {"ECC_NIST_P256": ec.SECP256R1, "ECC_NIST_P384": ec.SECP384R1, "ECC_NIST_P521": ec.SECP521R1}


@pytest.mark.parametrize("spec", list(CURVES))
def test_derive_shared_secret(kms, keys: Keys, spec: str) -> None:
    md = keys[spec, "KEY_AGREEMENT"]
    kms_public = _public(kms, md["KeyId"])
    assert isinstance(kms_public, ec.EllipticCurvePublicKey)
    mine = ec.generate_private_key(CURVES[spec]())
    spki = mine.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    resp = kms.derive_shared_secret(KeyId=md["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=spki)
    assert resp["SharedSecret"] == mine.exchange(ec.ECDH(), kms_public)
    assert len(resp["SharedSecret"]) == {"ECC_NIST_P256": 32, "ECC_NIST_P384": 48, "ECC_NIST_P521": 66}[spec]
    assert (
        resp["KeyId"] == md["Arn"]
        and resp["KeyAgreementAlgorithm"] == "ECDH"
        and resp["KeyOrigin"] == "AWS_KMS"
    )
    other_curve = (
        ec.generate_private_key(ec.SECP256K1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for bad in (other_curve, spki[:-1], b"not a key", spki[:-8] + bytes(8)):
        with pytest.raises(ClientError) as e:
            kms.derive_shared_secret(KeyId=md["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=bad)
        assert error_of(e) == ("ValidationException", "", 400)
    with pytest.raises(ClientError) as e:
        kms.derive_shared_secret(KeyId=md["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=spki, DryRun=True)
    assert error_of(e)[0] == "DryRunOperationException"


def test_derive_shared_secret_wrong_usage(kms, keys: Keys) -> None:
    md = keys["ECC_NIST_P256", "SIGN_VERIFY"]
    spki = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ClientError) as e:
        kms.derive_shared_secret(KeyId=md["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=spki)
    assert error_of(e)[:2] == (
        "InvalidKeyUsageException",
        f"{md['Arn']} key usage is SIGN_VERIFY which is not valid for DeriveSharedSecret.",
    )


# --- ML-KEM ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["ML_KEM_512", "ML_KEM_768", "ML_KEM_1024"])
def test_encapsulate_decapsulate(kms, keys: Keys, spec: str) -> None:
    md = keys[spec, "ENCAPSULATE_DECAPSULATE"]
    spki = kms.get_public_key(KeyId=md["KeyId"])["PublicKey"]
    enc = kms.encapsulate(KeyId=md["KeyId"], EncapsulationAlgorithm="ML_KEM")
    ct = enc["SharedSecretCiphertextBlob"]
    assert (
        len(enc["SharedSecret"]) == 32
        and len(ct) == {"ML_KEM_512": 768, "ML_KEM_768": 1088, "ML_KEM_1024": 1568}[spec]
    )
    dec = kms.decapsulate(KeyId=md["KeyId"], SharedSecretCiphertextBlob=ct, EncapsulationAlgorithm="ML_KEM")
    assert dec["SharedSecret"] == enc["SharedSecret"] and dec["KeyId"] == md["Arn"]
    # The client encapsulates to the public key with an independent implementation.
    if spec == "ML_KEM_512":
        secret, client_ct = ML_KEM_512.encaps(spki[22:])
    else:
        public = serialization.load_der_public_key(spki)
        assert isinstance(public, mlkem.MLKEM768PublicKey | mlkem.MLKEM1024PublicKey)
        secret, client_ct = public.encapsulate()
    got = kms.decapsulate(
        KeyId=md["KeyId"], SharedSecretCiphertextBlob=client_ct, EncapsulationAlgorithm="ML_KEM"
    )
    assert got["SharedSecret"] == secret
    tampered = bytearray(client_ct)
    tampered[0] ^= 1
    rejected = kms.decapsulate(
        KeyId=md["KeyId"], SharedSecretCiphertextBlob=bytes(tampered), EncapsulationAlgorithm="ML_KEM"
    )
    assert rejected["SharedSecret"] != secret and len(rejected["SharedSecret"]) == 32  # implicit rejection
    with pytest.raises(ClientError) as e:
        kms.decapsulate(
            KeyId=md["KeyId"], SharedSecretCiphertextBlob=client_ct[:-1], EncapsulationAlgorithm="ML_KEM"
        )
    assert error_of(e) == ("InvalidCiphertextException", "", 400)
    with pytest.raises(ClientError) as e:
        kms.encapsulate(KeyId=md["KeyId"], EncapsulationAlgorithm="ML_KEM", DryRun=True)
    assert error_of(e)[0] == "DryRunOperationException"


def test_kem_wrong_usage(kms, keys: Keys) -> None:
    md = keys["ECC_NIST_P256", "SIGN_VERIFY"]
    with pytest.raises(ClientError) as e:
        kms.encapsulate(KeyId=md["KeyId"], EncapsulationAlgorithm="ML_KEM")
    assert error_of(e)[:2] == (
        "InvalidKeyUsageException",
        f"{md['Arn']} key usage is SIGN_VERIFY which is not valid for Encapsulate.",
    )


# --- GenerateDataKeyPair -----------------------------------------------------------------------------------
PAIR_SPECS = [
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "ECC_NIST_EDWARDS25519",
    "ML_KEM_512",
    "ML_KEM_768",
    "ML_KEM_1024",
]


@pytest.mark.parametrize("spec", PAIR_SPECS)
def test_generate_data_key_pair(kms, keys: Keys, spec: str) -> None:
    sym = keys["SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"]
    ctx = {"purpose": "pair"}
    resp = kms.generate_data_key_pair(KeyId=sym["KeyId"], KeyPairSpec=spec, EncryptionContext=ctx)
    assert resp["KeyPairSpec"] == spec and resp["KeyId"] == sym["Arn"]
    assert resp["KeyMaterialId"] == sym["CurrentKeyMaterialId"]
    private_der, public_der = resp["PrivateKeyPlaintext"], resp["PublicKey"]
    assert len(public_der) == SPKI_LENGTH[spec]
    opened = kms.decrypt(CiphertextBlob=resp["PrivateKeyCiphertextBlob"], EncryptionContext=ctx)
    assert opened["Plaintext"] == private_der
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=resp["PrivateKeyCiphertextBlob"])
    assert error_of(e)[0] == "InvalidCiphertextException"
    if spec.startswith("ML_KEM"):
        assert len(private_der) == 86 and private_der[-66:-64] == b"\x80\x40"
        seed = private_der[-64:]
        if spec == "ML_KEM_512":
            assert ML_KEM_512.key_derive(seed)[0] == public_der[22:]
        else:
            key = serialization.load_der_private_key(private_der, None)
            assert (
                key.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                == public_der
            )
        return
    private = serialization.load_der_private_key(private_der, None)
    assert (
        private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == public_der
    )
    assert openssl.parse_private_key(private_der)
    without = kms.generate_data_key_pair_without_plaintext(KeyId=sym["KeyId"], KeyPairSpec=spec)
    assert "PrivateKeyPlaintext" not in without
    inner = serialization.load_der_private_key(
        kms.decrypt(CiphertextBlob=without["PrivateKeyCiphertextBlob"])["Plaintext"], None
    )
    assert (
        inner.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == without["PublicKey"]
    )


def test_generate_data_key_pair_errors(kms, keys: Keys) -> None:
    for key in (
        keys["RSA_2048", "ENCRYPT_DECRYPT"],
        keys["ECC_NIST_P256", "SIGN_VERIFY"],
        keys["HMAC_256", "GENERATE_VERIFY_MAC"],
    ):
        with pytest.raises(ClientError) as e:
            kms.generate_data_key_pair(KeyId=key["KeyId"], KeyPairSpec="ECC_NIST_P256")
        assert error_of(e)[0] == "InvalidKeyUsageException"
    with pytest.raises(ClientError) as e:
        kms.generate_data_key_pair(
            KeyId=keys["RSA_2048", "ENCRYPT_DECRYPT"]["KeyId"], KeyPairSpec="ECC_NIST_P256"
        )
    assert error_of(e)[1] == "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048."
    sym = keys["SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"]
    with pytest.raises(ClientError) as e:
        kms.generate_data_key_pair(KeyId=sym["KeyId"], KeyPairSpec="SM2")
    assert error_of(e)[0] == "UnsupportedOperationException"
    with pytest.raises(ClientError) as e:
        kms.generate_data_key_pair_without_plaintext(KeyId=sym["KeyId"], KeyPairSpec="RSA_2048", DryRun=True)
    assert error_of(e)[0] == "DryRunOperationException"


def test_hmac_matches_stdlib_on_generated_keys(kms, keys: Keys) -> None:
    """A MAC from the server equals HMAC over the same message only with the same key; sanity-check the
    output is not a plain hash."""
    md = keys["HMAC_256", "GENERATE_VERIFY_MAC"]
    mac = kms.generate_mac(KeyId=md["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert mac != hashlib.sha256(b"m").digest() and mac != hmac.digest(b"", b"m", "sha256")
