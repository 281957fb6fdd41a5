"""Shamir secret sharing over GF(2^8), byte by byte (the field of AES: x^8 + x^4 + x^3 + x + 1).

A secret of any length is split byte-wise: for each byte a random polynomial of degree ``threshold - 1``
whose constant term is that byte is evaluated at ``x = 1..shares``; any ``threshold`` points give the
constant term back by Lagrange interpolation at ``x = 0``; fewer reveal nothing about it (every value
of the secret is equally likely).  The x coordinates (share indexes) are public, the y values secret.

Arithmetic on secret values is branch-free shift-and-xor (no table lookups indexed by a secret, no
early exits), so its running time does not depend on the secret bytes beyond what CPython's integer
operations themselves reveal ("constant-time-ish": Python gives no hard guarantee).  Only public values
(the indexes) go through the inverse, and that too is computed without tables.

No framing, fingerprints or checksums here: ``openkms.rootoftrust.shamir`` wraps the points into
operator-facing share strings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

MAX_SHARES = 255  # x ranges over the non-zero field elements


def gf_mul(a: int, b: int) -> int:
    """Product of two field elements (0..255), without branches or tables."""
    product = 0
    for _ in range(8):
        product ^= -(b & 1) & a  # add a when the low bit of b is set
        carry = -(a >> 7) & 0x1B  # reduce by the field polynomial when a overflows
        a = ((a << 1) & 0xFF) ^ carry
        b >>= 1
    return product & 0xFF


def gf_inv(a: int) -> int:
    """Multiplicative inverse (a^254); ``ValueError`` for 0, which has none."""
    if not 1 <= a <= 255:
        raise ValueError("0 has no inverse in GF(2^8)")
    result, power, exponent = 1, a, 254
    while exponent:  # the exponent is public: branching on it leaks nothing
        if exponent & 1:
            result = gf_mul(result, power)
        power = gf_mul(power, power)
        exponent >>= 1
    return result


def _evaluate(coefficients: Sequence[int], x: int) -> int:
    # Horner's rule, highest coefficient first.
    value = 0
    for c in reversed(coefficients):
        value = gf_mul(value, x) ^ c
    return value


def split(
    secret: bytes, shares: int, threshold: int, *, random: bytes | None = None
) -> list[tuple[int, bytes]]:
    """Split ``secret`` into ``shares`` points ``(x, y)`` with ``x = 1..shares``; any ``threshold`` of them
    recover it.  ``random`` (``len(secret) * (threshold - 1)`` bytes) fixes the polynomial coefficients
    for test vectors; by default they come from the OS CSPRNG."""
    if not secret:
        raise ValueError("the secret must not be empty")
    if not 2 <= threshold <= shares <= MAX_SHARES:
        raise ValueError(f"need 2 <= threshold <= shares <= {MAX_SHARES}")
    needed = len(secret) * (threshold - 1)
    coins = os.urandom(needed) if random is None else random
    if len(coins) != needed:
        raise ValueError(f"random must be {needed} bytes")
    ys = [bytearray(len(secret)) for _ in range(shares)]
    for i, byte in enumerate(secret):
        coefficients = [byte, *coins[i * (threshold - 1) : (i + 1) * (threshold - 1)]]
        for n in range(shares):
            ys[n][i] = _evaluate(coefficients, n + 1)
    return [(n + 1, bytes(y)) for n, y in enumerate(ys)]


def combine(points: Sequence[tuple[int, bytes]]) -> bytes:
    """The secret whose polynomial passes through ``points`` (Lagrange interpolation at 0).

    Given at least ``threshold`` points of one split, the result is the secret; given fewer, or points of
    different splits, it is an unrelated value -- callers must authenticate the result (the unseal key is
    checked by unwrapping the root key with it).  ``ValueError`` for no points, duplicate or zero x, or
    y values of different lengths.
    """
    if not points:
        raise ValueError("no shares")
    xs = [x for x, _ in points]
    if len(set(xs)) != len(xs) or not all(1 <= x <= MAX_SHARES for x in xs):
        raise ValueError("share indexes must be distinct and between 1 and 255")
    length = len(points[0][1])
    if length == 0 or any(len(y) != length for _, y in points):
        raise ValueError("shares must have equal, non-zero lengths")
    # Lagrange basis at 0: l_j = prod_{m != j} x_m / (x_m - x_j); subtraction is xor in GF(2^8).
    # Only the public x values enter here.
    basis = []
    for j, xj in enumerate(xs):
        numerator, denominator = 1, 1
        for m, xm in enumerate(xs):
            if m != j:
                numerator = gf_mul(numerator, xm)
                denominator = gf_mul(denominator, xm ^ xj)
        basis.append(gf_mul(numerator, gf_inv(denominator)))
    secret = bytearray(length)
    for (_, y), weight in zip(points, basis, strict=True):
        for i in range(length):
            secret[i] ^= gf_mul(y[i], weight)
    return bytes(secret)
