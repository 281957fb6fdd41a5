"""GF(2^8) arithmetic and Shamir split/combine: field vectors, hand-computed shares, every subset."""

from __future__ import annotations

import itertools
import os

import pytest

from openkms.crypto.shamir import combine, gf_inv, gf_mul, split


def _reference_mul(a: int, b: int) -> int:
    # schoolbook carry-less multiplication, then reduction by x^8 + x^4 + x^3 + x + 1 (0x11B)
    product = 0
    for bit in range(8):
        if b >> bit & 1:
            product ^= a << bit
    for bit in range(14, 7, -1):
        if product >> bit & 1:
            product ^= 0x11B << (bit - 8)
    return product


def test_field_vectors_from_the_aes_specification() -> None:
    # FIPS 197, section 4.2: {57} . {83} = {c1} and {57} . {13} = {fe}
    assert gf_mul(0x57, 0x83) == 0xC1
    assert gf_mul(0x57, 0x13) == 0xFE
    # FIPS 197, section 4.2.1: xtime sequence of {57}
    assert [gf_mul(0x57, 1 << i) for i in range(1, 4)] == [0xAE, 0x47, 0x8E]


def test_multiplication_matches_the_reference_for_every_pair() -> None:
    for a in range(256):
        for b in range(256):
            assert gf_mul(a, b) == _reference_mul(a, b)


def test_every_nonzero_element_has_an_inverse() -> None:
    for a in range(1, 256):
        assert gf_mul(a, gf_inv(a)) == 1
    assert gf_inv(0x53) == 0xCA  # FIPS 197 section 4.2 example
    with pytest.raises(ValueError):
        gf_inv(0)


def test_hand_computed_shares() -> None:
    # threshold 2, secret 0x2a, coefficient 0x07: y = 0x2a ^ 7x;  7*2 = 0x0e, 7*3 = 0x0e ^ 7 = 0x09
    assert split(b"\x2a", 3, 2, random=b"\x07") == [(1, b"\x2d"), (2, b"\x24"), (3, b"\x23")]
    # threshold 3, secret 0x10, coefficients 1 and 1: y = 0x10 ^ x ^ x^2;  3*3 = 5
    assert split(b"\x10", 3, 3, random=b"\x01\x01") == [(1, b"\x10"), (2, b"\x16"), (3, b"\x16")]
    assert combine([(1, b"\x10"), (2, b"\x16"), (3, b"\x16")]) == b"\x10"
    assert combine([(3, b"\x23"), (1, b"\x2d")]) == b"\x2a"


@pytest.mark.parametrize(("shares", "threshold"), [(2, 2), (5, 3), (6, 6), (16, 2)])
def test_any_threshold_subset_recovers_the_secret(shares: int, threshold: int) -> None:
    secret = os.urandom(32)
    points = split(secret, shares, threshold)
    assert [x for x, _ in points] == list(range(1, shares + 1))
    subsets = list(itertools.combinations(points, threshold))[:200]
    for subset in subsets:
        assert combine(list(subset)) == secret
        assert combine(list(reversed(subset))) == secret
    # more than the threshold works too; fewer gives an unrelated value
    assert combine(points) == secret
    assert combine(points[: threshold - 1]) != secret or threshold == 1


def test_fewer_than_threshold_shares_say_nothing_about_the_secret() -> None:
    # Two shares of a threshold-3 split are consistent with every secret: each possible value of a third
    # share completes them to a different secret, so all 256 secrets remain equally possible.
    points = split(b"\x99", 5, 3)[:2]
    candidates = {combine([*points, (3, bytes([v]))]) for v in range(256)}
    assert len(candidates) == 256


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        split(b"", 3, 2)
    with pytest.raises(ValueError):
        split(b"x", 3, 4)
    with pytest.raises(ValueError):
        split(b"x", 3, 1)
    with pytest.raises(ValueError):
        split(b"x", 256, 2)
    with pytest.raises(ValueError):
        split(b"x", 3, 2, random=b"")
    with pytest.raises(ValueError):
        combine([])
    with pytest.raises(ValueError):
        combine([(1, b"a"), (1, b"b")])
    with pytest.raises(ValueError):
        combine([(0, b"a"), (1, b"b")])
    with pytest.raises(ValueError):
        combine([(1, b"a"), (2, b"bc")])
