"""SM2 (GB/T 32918, GM/T 0003) on the recommended curve sm2p256v1: SM2DSA, SM2PKE, raw ECDH, key encodings.

No library we could rely on covers SM2 completely and soundly (docs/compatibility.md: ``gmssl`` draws
nonces from ``random``; ``snowland-smx`` validates neither ciphertext points nor signature ranges;
``tongsuopy`` has no SM2 encryption and no digest signing), so the curve arithmetic is written here, on
Python integers, with SM3 from pyca/cryptography and nonces from :mod:`secrets`. Every input point is
checked to lie on the curve (invalid-curve attacks), signature components are range-checked, and the
unit tests pin the GB/T 32918.5 Annex A examples and cross-check with the ``openssl`` command line.
Python integer arithmetic is not constant-time; the scalar multiplication runs a fixed number of ladder
steps, which removes the grossest timing signal but is no constant-time guarantee (documented).

Encodings (what OpenSSL 3 and GM/T 0009 use; AWS's exact bytes are unverified, see compatibility.md):

* public key: DER SubjectPublicKeyInfo, id-ecPublicKey with the named curve 1.2.156.10197.1.301;
* private key (GenerateDataKeyPair): PKCS#8 DER wrapping an RFC 5915 ECPrivateKey, like other EC keys;
* signature: DER ``SEQUENCE { r INTEGER, s INTEGER }``;
* ciphertext: DER ``SEQUENCE { x INTEGER, y INTEGER, hash OCTET STRING, ciphertext OCTET STRING }`` --
  C1, C3, C2 in that order. Decryption also accepts the raw ``04 || x || y || C3 || C2`` form.
"""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import utils

from openkms.crypto.errors import InvalidCiphertextError, InvalidPublicKeyError, InvalidSignatureError

# GB/T 32918.5 recommended curve parameters (y^2 = x^3 + ax + b over Fp, cofactor 1).
P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123

# The default distinguishing ID of GM/T 0009; the KMS model (Verify documentation): "By default, KMS uses
# 1234567812345678 as the distinguishing ID".
DEFAULT_ID = b"1234567812345678"
MAX_PLAINTEXT = 1024  # SM2PKE plaintext limit of AWS KMS (Encrypt documentation)
SECRET_LEN = 32

Point = tuple[int, int]
_Jacobian = tuple[int, int, int]
_INFINITY: _Jacobian = (1, 1, 0)

# DER pieces: AlgorithmIdentifier { id-ecPublicKey, sm2p256v1 }
_ALG_ID = bytes.fromhex("301306072a8648ce3d020106082a811ccf5501822d")
_SPKI_PREFIX = bytes.fromhex("3059") + _ALG_ID + bytes.fromhex("034200")
_PKCS8_PREFIX = bytes.fromhex("308187020100") + _ALG_ID + bytes.fromhex("046d306b0201010420")
_PKCS8_PUBLIC = bytes.fromhex("a144034200")


# --- field and group arithmetic --------------------------------------------------------------------------
def on_curve(point: Point) -> bool:
    x, y = point
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


def _double(p: _Jacobian) -> _Jacobian:
    x1, y1, z1 = p
    if z1 == 0 or y1 == 0:
        return _INFINITY
    # dbl-2001-b (a = -3)
    delta = z1 * z1 % P
    gamma = y1 * y1 % P
    beta = x1 * gamma % P
    alpha = 3 * (x1 - delta) * (x1 + delta) % P
    x3 = (alpha * alpha - 8 * beta) % P
    z3 = ((y1 + z1) * (y1 + z1) - gamma - delta) % P
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % P
    return x3, y3, z3


def _add(p: _Jacobian, q: _Jacobian) -> _Jacobian:
    x1, y1, z1 = p
    x2, y2, z2 = q
    if z1 == 0:
        return q
    if z2 == 0:
        return p
    # add-2007-bl
    z1z1 = z1 * z1 % P
    z2z2 = z2 * z2 % P
    u1 = x1 * z2z2 % P
    u2 = x2 * z1z1 % P
    s1 = y1 * z2 * z2z2 % P
    s2 = y2 * z1 * z1z1 % P
    h = (u2 - u1) % P
    r = 2 * (s2 - s1) % P
    if h == 0:
        return _double(p) if r == 0 else _INFINITY
    i = 4 * h * h % P
    j = h * i % P
    v = u1 * i % P
    x3 = (r * r - j - 2 * v) % P
    y3 = (r * (v - x3) - 2 * s1 * j) % P
    z3 = ((z1 + z2) * (z1 + z2) - z1z1 - z2z2) * h % P
    return x3, y3, z3


def _affine(p: _Jacobian) -> Point | None:
    x, y, z = p
    if z == 0:
        return None
    zi = pow(z, -1, P)
    zi2 = zi * zi % P
    return x * zi2 % P, y * zi2 * zi % P


def _ladder(k: int, point: Point) -> _Jacobian:
    # Montgomery ladder over a fixed 257 steps: the same sequence of group operations for every scalar
    # below 2^257 (Python integers still leak some timing; see the module docstring).
    r0: _Jacobian = _INFINITY
    r1: _Jacobian = (point[0], point[1], 1)
    for i in range(256, -1, -1):
        if (k >> i) & 1:
            r0, r1 = _add(r0, r1), _double(r1)
        else:
            r1, r0 = _add(r0, r1), _double(r0)
    return r0


def multiply(k: int, point: Point) -> Point | None:
    """``k * point`` in affine coordinates (None for the point at infinity)."""
    return _affine(_ladder(k % N, point))


def _multiply_add(s: int, t: int, point: Point) -> Point | None:
    return _affine(_add(_ladder(s, (GX, GY)), _ladder(t, point)))


def _random_scalar() -> int:
    return secrets.randbelow(N - 1) + 1  # [1, n-1]


# --- SM3 and the SM2 key derivation function --------------------------------------------------------
def sm3(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


def kdf(z: bytes, length: int) -> bytes:
    """GB/T 32918.4 section 5.4.3: SM3(Z || ct) for ct = 1, 2, ... (32-bit big-endian), truncated."""
    out = bytearray()
    counter = 1
    while len(out) < length:
        out += sm3(z + counter.to_bytes(4, "big"))
        counter += 1
    return bytes(out[:length])


def _b32(value: int) -> bytes:
    return value.to_bytes(32, "big")


# --- keys ------------------------------------------------------------------------------------------------
def generate_private() -> bytes:
    """A new private key: 32 bytes, d uniformly in [1, n-2] (d = n-1 has no (1+d)^-1 for signing)."""
    return _b32(secrets.randbelow(N - 2) + 1)


def private_scalar(secret: bytes) -> int:
    d = int.from_bytes(secret, "big")
    if len(secret) != SECRET_LEN or not 1 <= d <= N - 2:
        raise ValueError("not an SM2 private key")
    return d


def public_point(secret: bytes) -> Point:
    point = multiply(private_scalar(secret), (GX, GY))
    assert point is not None  # d in [1, n-2]
    return point


def spki_der(point: Point) -> bytes:
    return _SPKI_PREFIX + b"\x04" + _b32(point[0]) + _b32(point[1])


def pkcs8_der(secret: bytes) -> bytes:
    """PKCS#8 (RFC 5208) DER of the key, the curve in the AlgorithmIdentifier and the public key in the
    ECPrivateKey -- the layout OpenSSL writes (138 bytes)."""
    point = public_point(secret)
    return _PKCS8_PREFIX + secret + _PKCS8_PUBLIC + b"\x04" + _b32(point[0]) + _b32(point[1])


def parse_spki(der: bytes) -> Point:
    """The point of an SM2 SubjectPublicKeyInfo (uncompressed); :class:`InvalidPublicKeyError` if the
    encoding, the curve or the point is wrong."""
    if len(der) != len(_SPKI_PREFIX) + 65 or not der.startswith(_SPKI_PREFIX + b"\x04"):
        raise InvalidPublicKeyError()
    body = der[len(_SPKI_PREFIX) + 1 :]
    point = int.from_bytes(body[:32], "big"), int.from_bytes(body[32:], "big")
    if not on_curve(point):
        raise InvalidPublicKeyError()
    return point


def parse_pkcs8(der: bytes) -> bytes:
    """The 32-byte secret of an SM2 private key in PKCS#8 DER (RFC 5208 wrapping an RFC 5915
    ECPrivateKey, id-ecPublicKey with the named curve sm2p256v1: what ``openssl pkcs8 -topk8`` writes).
    Optional parts are checked when present: the curve in the ECPrivateKey must be sm2p256v1 and its
    public key must be d * G. :class:`ValueError` for anything else (other curves, explicit parameters,
    encrypted keys, a bare ECPrivateKey, trailing bytes, d outside [1, n-2])."""
    body, end = _read(der, 0, 0x30)
    if end != len(der):
        raise ValueError("trailing bytes")
    version, pos = _read(body, 0, 0x02)
    if version != b"\x00":
        raise ValueError("PKCS#8 version")
    algorithm, pos = _read(body, pos, 0x30)
    if _der(0x30, algorithm) != _ALG_ID:
        raise ValueError("not an SM2 key")
    inner, pos = _read(body, pos, 0x04)
    if pos != len(body):
        _, pos = _read(body, pos, 0xA0)  # [0] attributes: allowed, ignored
        if pos != len(body):
            raise ValueError("trailing fields")
    ec_key, end = _read(inner, 0, 0x30)
    if end != len(inner):
        raise ValueError("trailing bytes")
    ec_version, pos = _read(ec_key, 0, 0x02)
    raw, pos = _read(ec_key, pos, 0x04)
    if ec_version != b"\x01" or not 1 <= len(raw) <= SECRET_LEN:
        raise ValueError("ECPrivateKey")
    secret = raw.rjust(SECRET_LEN, b"\x00")  # RFC 5915 fixes the length; tolerate stripped zeros
    point = public_point(secret)  # ValueError unless d is in [1, n-2]
    if pos < len(ec_key) and ec_key[pos] == 0xA0:
        params, pos = _read(ec_key, pos, 0xA0)
        if params != _ALG_ID[-10:]:  # the OID 1.2.156.10197.1.301
            raise ValueError("curve")
    if pos < len(ec_key) and ec_key[pos] == 0xA1:
        public, pos = _read(ec_key, pos, 0xA1)
        if public != _der(0x03, b"\x00\x04" + _b32(point[0]) + _b32(point[1])):
            raise ValueError("public key does not match the private key")
    if pos != len(ec_key):
        raise ValueError("trailing fields")
    return secret


# --- SM2DSA ----------------------------------------------------------------------------------------------
def z_value(point: Point, ident: bytes = DEFAULT_ID) -> bytes:
    """Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA) (GB/T 32918.2 section 5.5)."""
    entl = (len(ident) * 8).to_bytes(2, "big")
    return sm3(entl + ident + _b32(A) + _b32(B) + _b32(GX) + _b32(GY) + _b32(point[0]) + _b32(point[1]))


def message_digest(point: Point, message: bytes, ident: bytes = DEFAULT_ID) -> bytes:
    """e = SM3(Z || M): what a caller passes as a DIGEST message."""
    return sm3(z_value(point, ident) + message)


def _sign_with(d: int, e: int, k: int) -> tuple[int, int] | None:
    x1 = multiply(k, (GX, GY))
    assert x1 is not None
    r = (e + x1[0]) % N
    if r == 0 or r + k == N:
        return None
    s = pow(1 + d, -1, N) * (k - r * d) % N
    return (r, s) if s else None


def sign_digest(secret: bytes, digest: bytes) -> bytes:
    """Sign the 32-byte e = SM3(Z || M); DER-encoded (r, s)."""
    d = private_scalar(secret)
    e = int.from_bytes(digest, "big")
    while True:
        rs = _sign_with(d, e, _random_scalar())
        if rs is not None:
            return utils.encode_dss_signature(*rs)


def verify_digest(point: Point, digest: bytes, signature: bytes) -> None:
    """Raise :class:`InvalidSignatureError` unless ``signature`` (DER) is valid for e = ``digest``."""
    try:
        r, s = utils.decode_dss_signature(signature)
    except ValueError:
        raise InvalidSignatureError() from None
    if not (1 <= r < N and 1 <= s < N):
        raise InvalidSignatureError()
    t = (r + s) % N
    if t == 0:
        raise InvalidSignatureError()
    x1 = _multiply_add(s, t, point)
    if x1 is None or (int.from_bytes(digest, "big") + x1[0]) % N != r:
        raise InvalidSignatureError()


# --- SM2PKE ----------------------------------------------------------------------------------------------
def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(body)) + body


def _der_int(value: int) -> bytes:
    raw = value.to_bytes(value.bit_length() // 8 + 1, "big")  # leading 0 keeps it positive
    if len(raw) > 1 and raw[0] == 0 and raw[1] < 0x80:
        raw = raw[1:]
    return _der(0x02, raw)


def _read(data: bytes, pos: int, tag: int) -> tuple[bytes, int]:
    """One strict-DER TLV of ``tag`` at ``pos``: ``(contents, next position)``."""
    if pos + 2 > len(data) or data[pos] != tag:
        raise ValueError
    length, pos = data[pos + 1], pos + 2
    if length & 0x80:
        count = length & 0x7F
        if count not in (1, 2) or pos + count > len(data):
            raise ValueError
        length = int.from_bytes(data[pos : pos + count], "big")
        if length < 0x80 or (count == 2 and length < 0x100):
            raise ValueError  # not minimal
        pos += count
    if pos + length > len(data):
        raise ValueError
    return data[pos : pos + length], pos + length


def _parse_int(raw: bytes) -> int:
    if not raw or raw[0] & 0x80 or (len(raw) > 1 and raw[0] == 0 and raw[1] < 0x80):
        raise ValueError
    return int.from_bytes(raw, "big")


def _split_ciphertext(ciphertext: bytes) -> tuple[Point, bytes, bytes]:
    if ciphertext[:1] == b"\x04":  # raw C1 || C3 || C2
        if len(ciphertext) < 1 + 64 + 32 + 1:
            raise ValueError
        c1 = int.from_bytes(ciphertext[1:33], "big"), int.from_bytes(ciphertext[33:65], "big")
        return c1, ciphertext[65:97], ciphertext[97:]
    body, end = _read(ciphertext, 0, 0x30)
    if end != len(ciphertext):
        raise ValueError
    x, pos = _read(body, 0, 0x02)
    y, pos = _read(body, pos, 0x02)
    c3, pos = _read(body, pos, 0x04)
    c2, pos = _read(body, pos, 0x04)
    if pos != len(body) or len(c3) != 32 or not c2:
        raise ValueError
    return (_parse_int(x), _parse_int(y)), c3, c2


def _encrypt_with(point: Point, plaintext: bytes, k: int) -> bytes | None:
    c1 = multiply(k, (GX, GY))
    shared = multiply(k, point)
    assert c1 is not None and shared is not None  # k in [1, n-1], the point has order n
    x2, y2 = _b32(shared[0]), _b32(shared[1])
    t = kdf(x2 + y2, len(plaintext))
    if not any(t):
        return None
    c2 = bytes(a ^ b for a, b in zip(plaintext, t, strict=True))
    c3 = sm3(x2 + plaintext + y2)
    body = _der_int(c1[0]) + _der_int(c1[1]) + _der(0x04, c3) + _der(0x04, c2)
    return _der(0x30, body)


def encrypt(point: Point, plaintext: bytes, limit: int = MAX_PLAINTEXT) -> bytes:
    """SM2 public-key encryption (GB/T 32918.4) of 1..``limit`` bytes; DER C1, C3, C2 (module docstring).
    The algorithm has no size limit of its own: ``limit`` is KMS's Encrypt limit by default, and larger for
    wrapping imported key material (an RSA_4096 private key is about 2.4 KB)."""
    if not 1 <= len(plaintext) <= limit:
        raise ValueError(f"SM2PKE plaintext must be 1 to {limit} bytes")
    while True:
        ciphertext = _encrypt_with(point, plaintext, _random_scalar())
        if ciphertext is not None:
            return ciphertext


def decrypt(secret: bytes, ciphertext: bytes) -> bytes:
    """Raise :class:`InvalidCiphertextError` on any failure (encoding, point, hash), without saying which."""
    d = private_scalar(secret)
    try:
        c1, c3, c2 = _split_ciphertext(ciphertext)
    except ValueError:
        raise InvalidCiphertextError() from None
    if not on_curve(c1):  # refuse points of other curves (invalid-curve attack on d)
        raise InvalidCiphertextError()
    shared = multiply(d, c1)
    if shared is None:
        raise InvalidCiphertextError()
    x2, y2 = _b32(shared[0]), _b32(shared[1])
    t = kdf(x2 + y2, len(c2))
    if not any(t):
        raise InvalidCiphertextError()
    plaintext = bytes(a ^ b for a, b in zip(c2, t, strict=True))
    if not secrets.compare_digest(sm3(x2 + plaintext + y2), c3):
        raise InvalidCiphertextError()
    return plaintext


# --- ECDH ------------------------------------------------------------------------------------------------
def derive_shared_secret(secret: bytes, peer_spki_der: bytes) -> bytes:
    """Raw ECDH on the SM2 curve: the x-coordinate of d * Q, 32 bytes, no KDF (what DeriveSharedSecret
    returns for the NIST curves). :class:`InvalidPublicKeyError` for a bad peer key."""
    peer = parse_spki(peer_spki_der)
    shared = multiply(private_scalar(secret), peer)
    if shared is None:
        raise InvalidPublicKeyError()
    return _b32(shared[0])


class Sm2Key:
    """A loaded SM2 private key with its public point and SubjectPublicKeyInfo (never repr'd)."""

    __slots__ = ("point", "public_der", "secret")

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.point = public_point(secret)  # raises ValueError for material that is not an SM2 key
        self.public_der = spki_der(self.point)

    def __repr__(self) -> str:
        return "Sm2Key()"
