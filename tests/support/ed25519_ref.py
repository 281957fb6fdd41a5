"""A small, slow, independent Ed25519ph verifier (RFC 8032 section 5.1.7, phflag = 1, empty context).

Written from the RFC's equations for tests only: it checks the server's ED25519_PH_SHA_512 signatures
without going through libsodium, which the server uses. Affine coordinates, not constant-time.
"""

from __future__ import annotations

import hashlib

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
_SQRT_M1 = pow(2, (P - 1) // 4, P)

Point = tuple[int, int]


def _add(a: Point, b: Point) -> Point:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    x3 = (x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P)
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P)
    return x3 % P, y3 % P


def _mul(k: int, point: Point) -> Point:
    result: Point = (0, 1)
    while k:
        if k & 1:
            result = _add(result, point)
        point = _add(point, point)
        k >>= 1
    return result


def _decode(raw: bytes) -> Point | None:
    if len(raw) != 32:
        return None
    value = int.from_bytes(raw, "little")
    sign, y = value >> 255, value & ((1 << 255) - 1)
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * _SQRT_M1 % P
    if (x * x - x2) % P or (x == 0 and sign):
        return None
    if x & 1 != sign:
        x = P - x
    return x, y


_BASE = _decode((4 * pow(5, P - 2, P) % P).to_bytes(32, "little"))
assert _BASE is not None


def verify_ed25519ph(public: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is an Ed25519ph signature of ``message`` (prehash = SHA-512) by ``public``."""
    if len(signature) != 64:
        return False
    a, r = _decode(public), _decode(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= L:
        return False
    dom2 = b"SigEd25519 no Ed25519 collisions" + bytes((1, 0))
    k = (
        int.from_bytes(
            hashlib.sha512(dom2 + signature[:32] + public + hashlib.sha512(message).digest()).digest(),
            "little",
        )
        % L
    )
    assert _BASE is not None
    return _mul(s, _BASE) == _add(r, _mul(k, a))
