"""SM2 and SM3 primitives against published vectors and against OpenSSL 3 (an independent implementation).

Vectors: GB/T 32905-2016 (SM3) examples 1 and 2; GB/T 32918.5-2017 Annex A (= GM/T 0003.5-2012) signature
and encryption examples on the recommended curve, with their fixed random k.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from tests.support.servers import in_ci

from openkms.crypto import asymmetric, signing, sm2
from openkms.crypto.errors import InvalidCiphertextError, InvalidPublicKeyError, InvalidSignatureError

# GB/T 32918.5 Annex A
D = bytes.fromhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
PUB = (
    0x09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020,
    0xCCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13,
)
K = 0x59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21
Z = bytes.fromhex("B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3")
E = bytes.fromhex("F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640")
R = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
S = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA
# "encryption standard" under PUB with k = K, in C1 || C3 || C2 order
ENC_C1 = b"\x04" + bytes.fromhex(  # 04 || x || y
    "04EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73"
    "E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF0"
)
ENC_C3 = bytes.fromhex("59983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD8766")
ENC_C2 = bytes.fromhex("21886CA989CA9C7D58087307CA93092D651EFA")


def test_sm3_gbt32905_examples() -> None:
    assert sm2.sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sm2.sm3(b"abcd" * 16).hex() == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"


def test_annex_a_keys_z_and_digest() -> None:
    assert sm2.public_point(D) == PUB
    assert sm2.on_curve(PUB) and sm2.on_curve((sm2.GX, sm2.GY))
    assert sm2.multiply(sm2.N, (sm2.GX, sm2.GY)) is None  # G has order n
    assert sm2.z_value(PUB) == Z
    assert sm2.message_digest(PUB, b"message digest") == E


def test_annex_a_signature() -> None:
    assert sm2._sign_with(int.from_bytes(D, "big"), int.from_bytes(E, "big"), K) == (R, S)
    signature = utils.encode_dss_signature(R, S)
    sm2.verify_digest(PUB, E, signature)
    for bad in (
        utils.encode_dss_signature(R, (S + 1) % sm2.N),
        utils.encode_dss_signature(R + sm2.N, S),  # r out of range, same residue
        utils.encode_dss_signature(0, S),
        utils.encode_dss_signature(R, 0),
        signature[:-1],
        signature + b"\x00",
        b"",
    ):
        with pytest.raises(InvalidSignatureError):
            sm2.verify_digest(PUB, E, bad)
    with pytest.raises(InvalidSignatureError):
        sm2.verify_digest(PUB, bytes(32), signature)


def test_annex_a_encryption() -> None:
    ciphertext = sm2._encrypt_with(PUB, b"encryption standard", K)
    assert ciphertext is not None
    x, y = int.from_bytes(ENC_C1[1:33], "big"), int.from_bytes(ENC_C1[33:], "big")
    assert ciphertext == _der_ciphertext(x, y, ENC_C3, ENC_C2)
    assert sm2.decrypt(D, ciphertext) == b"encryption standard"
    assert sm2.decrypt(D, ENC_C1 + ENC_C3 + ENC_C2) == b"encryption standard"  # raw C1C3C2 form


def _der_ciphertext(x: int, y: int, c3: bytes, c2: bytes) -> bytes:
    def tlv(tag: int, body: bytes) -> bytes:
        assert len(body) < 0x80
        return bytes([tag, len(body)]) + body

    def integer(v: int) -> bytes:
        raw = v.to_bytes(33, "big").lstrip(b"\x00")
        return tlv(2, b"\x00" + raw if raw[0] & 0x80 else raw)

    return tlv(0x30, integer(x) + integer(y) + tlv(4, c3) + tlv(4, c2))


def test_decrypt_rejects_tampering_and_foreign_points() -> None:
    ciphertext = sm2.encrypt(PUB, b"secret")
    assert sm2.decrypt(D, ciphertext) == b"secret"
    raw = ENC_C1 + ENC_C3 + ENC_C2
    off_curve = ENC_C1[:-1] + bytes([ENC_C1[-1] ^ 1])
    for bad in (
        ciphertext[:-1] + bytes([ciphertext[-1] ^ 1]),  # C2
        raw[:70] + bytes([raw[70] ^ 1]) + raw[71:],  # C3
        off_curve + ENC_C3 + ENC_C2,
        raw[:97],  # no C2
        ciphertext + b"\x00",
        b"\x30\x00",
        b"",
    ):
        with pytest.raises(InvalidCiphertextError):
            sm2.decrypt(D, bad)
    other = sm2.generate_private()
    with pytest.raises(InvalidCiphertextError):
        sm2.decrypt(other, ciphertext)


def test_round_trips_and_limits() -> None:
    secret = sm2.generate_private()
    point = sm2.public_point(secret)
    for message in (b"", b"x", bytes(range(256)) * 16):
        digest = sm2.message_digest(point, message)
        sm2.verify_digest(point, digest, sm2.sign_digest(secret, digest))
    assert sm2.decrypt(secret, sm2.encrypt(point, b"m" * 1024)) == b"m" * 1024
    for size in (0, 1025):
        with pytest.raises(ValueError):
            sm2.encrypt(point, b"m" * size)
    for bad in (b"\x00" * 32, sm2.N.to_bytes(32, "big"), (sm2.N - 1).to_bytes(32, "big"), b"\x01"):
        with pytest.raises(ValueError):
            sm2.private_scalar(bad)


def test_ecdh_agrees_and_checks_the_peer() -> None:
    a, b = sm2.generate_private(), sm2.generate_private()
    shared = sm2.derive_shared_secret(a, sm2.Sm2Key(b).public_der)
    assert shared == sm2.derive_shared_secret(b, sm2.Sm2Key(a).public_der)
    # x(a * bG) computed another way: (a*b mod n) * G
    product = int.from_bytes(a, "big") * int.from_bytes(b, "big") % sm2.N
    point = sm2.multiply(product, (sm2.GX, sm2.GY))
    assert point is not None and shared == point[0].to_bytes(32, "big") and len(shared) == 32
    good = sm2.Sm2Key(b).public_der
    p256 = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for bad in (good[:-1] + bytes([good[-1] ^ 1]), p256, good[:-1], b"", good + b"\x00"):
        with pytest.raises(InvalidPublicKeyError):
            sm2.derive_shared_secret(a, bad)


def test_key_pair_integration_with_the_asymmetric_module() -> None:
    material = asymmetric.generate_material("SM2")
    pair = asymmetric.load("SM2", material)
    assert pair.family is asymmetric.Family.SM2 and len(pair.public_der) == 91
    assert "Sm2Key" in repr(pair.private) and material.hex() not in repr(pair.private)
    for message_type, message in (
        (signing.MessageType.RAW, b"hello"),
        (signing.MessageType.DIGEST, sm2.message_digest(sm2.parse_spki(pair.public_der), b"hello")),
    ):
        signature = signing.sign(pair, signing.SigningAlgorithm.SM2DSA, message, message_type)
        signing.verify(pair, signing.SigningAlgorithm.SM2DSA, message, message_type, signature)
    raw = signing.sign(pair, signing.SigningAlgorithm.SM2DSA, b"hello", signing.MessageType.RAW)
    digest = sm2.message_digest(sm2.parse_spki(pair.public_der), b"hello")
    signing.verify(pair, signing.SigningAlgorithm.SM2DSA, digest, signing.MessageType.DIGEST, raw)
    with pytest.raises(InvalidSignatureError):
        signing.verify(pair, signing.SigningAlgorithm.SM2DSA, b"hellO", signing.MessageType.RAW, raw)
    alg = asymmetric.EncryptionAlgorithm.SM2PKE
    assert asymmetric.oaep_max_plaintext("SM2", alg) == 1024
    assert asymmetric.oaep_decrypt(pair, alg, asymmetric.oaep_encrypt(pair, alg, b"pt")) == b"pt"
    private_der, public_der = asymmetric.generate_data_key_pair("SM2")
    assert len(private_der) == 138 and len(public_der) == 91
    with pytest.raises(ValueError):
        asymmetric.load("SM2", b"\x00" * 32)


# --- OpenSSL 3 as the independent implementation --------------------------------------------------------
def _openssl() -> str:
    path = shutil.which("openssl")
    probe = path and subprocess.run([path, "list", "-public-key-algorithms"], capture_output=True).stdout
    if path is None or not probe or b"SM2" not in probe:
        if in_ci():
            pytest.fail("openssl with SM2 support is required in CI")
        pytest.skip("openssl with SM2 support is not available")
    return path


def _run(*args: str) -> bytes:
    return subprocess.run(args, capture_output=True, check=True).stdout


@pytest.fixture
def ossl_key(tmp_path: Path) -> tuple[str, Path, Path, bytes]:
    """A key pair made by us, written as PKCS#8 and SPKI DER files."""
    openssl = _openssl()
    secret = sm2.generate_private()
    private, public = tmp_path / "key.der", tmp_path / "pub.der"
    private.write_bytes(sm2.pkcs8_der(secret))
    public.write_bytes(sm2.Sm2Key(secret).public_der)
    return openssl, private, public, secret


def test_openssl_reads_our_key_encodings(ossl_key: tuple[str, Path, Path, bytes]) -> None:
    openssl, private, public, _secret = ossl_key
    text = _run(openssl, "pkey", "-pubin", "-inform", "DER", "-in", str(public), "-text", "-noout")
    assert b"ASN1 OID: SM2" in text
    # OpenSSL re-derives the public key from our PKCS#8 and re-encodes both byte for byte the same.
    assert _run(openssl, "pkey", "-inform", "DER", "-in", str(private), "-pubout", "-outform", "DER") == (
        public.read_bytes()
    )
    pkcs8 = _run(
        openssl, "pkcs8", "-topk8", "-nocrypt", "-inform", "DER", "-in", str(private), "-outform", "DER"
    )
    assert pkcs8 == private.read_bytes()


def test_signatures_interoperate_with_openssl(
    ossl_key: tuple[str, Path, Path, bytes], tmp_path: Path
) -> None:
    openssl, private, public, secret = ossl_key
    point = sm2.public_point(secret)
    message = tmp_path / "msg"
    message.write_bytes(b"the quick brown fox" * 10)
    ours = tmp_path / "ours.sig"
    ours.write_bytes(sm2.sign_digest(secret, sm2.message_digest(point, message.read_bytes())))
    distid = ("-pkeyopt", "distid:1234567812345678")
    common = ("-rawin", "-digest", "sm3", *distid, "-in", str(message), "-keyform", "DER")
    out = _run(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", str(public), "-sigfile", str(ours), *common)
    assert b"Signature Verified Successfully" in out
    theirs = _run(openssl, "pkeyutl", "-sign", "-inkey", str(private), *common)
    sm2.verify_digest(point, sm2.message_digest(point, message.read_bytes()), theirs)
    with pytest.raises(InvalidSignatureError):
        sm2.verify_digest(point, sm2.message_digest(point, b"other"), theirs)


def test_encryption_interoperates_with_openssl(
    ossl_key: tuple[str, Path, Path, bytes], tmp_path: Path
) -> None:
    openssl, private, public, secret = ossl_key
    plaintext = bytes(range(256)) * 4
    ours = tmp_path / "ours.ct"
    ours.write_bytes(sm2.encrypt(sm2.public_point(secret), plaintext))
    key = ("-inkey", str(private), "-keyform", "DER")
    assert _run(openssl, "pkeyutl", "-decrypt", *key, "-in", str(ours)) == plaintext
    message = tmp_path / "pt"
    message.write_bytes(b"from openssl")
    theirs = _run(
        openssl,
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-inkey",
        str(public),
        "-keyform",
        "DER",
        "-in",
        str(message),
    )
    assert sm2.decrypt(secret, theirs) == b"from openssl"
