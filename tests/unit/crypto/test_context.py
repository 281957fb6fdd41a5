"""Canonical encryption-context encoding (kms-semantics.md section 5.5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openkms.crypto.context import encode_encryption_context


def test_absent_and_empty_are_the_same() -> None:
    assert encode_encryption_context(None) == b""
    assert encode_encryption_context({}) == b""


def test_layout() -> None:
    assert encode_encryption_context({"a": "bc"}) == b"\x00\x01" + b"\x00\x01a" + b"\x00\x02bc"
    assert encode_encryption_context({"k": ""}) == b"\x00\x01\x00\x01k\x00\x00"


def test_collision_pair_differs() -> None:
    assert encode_encryption_context({"ab": "c"}) != encode_encryption_context({"a": "bc"})
    assert encode_encryption_context({"a": "b", "c": "d"}) != encode_encryption_context({"a": "bcd"})


def test_order_independent_and_sorted_by_utf8_bytes() -> None:
    a = encode_encryption_context({"b": "2", "a": "1", "é": "3", "Z": "0"})
    b = encode_encryption_context({"é": "3", "Z": "0", "a": "1", "b": "2"})
    assert a == b
    assert a == (
        b"\x00\x04"
        + b"\x00\x01Z\x00\x010"
        + b"\x00\x01a\x00\x011"
        + b"\x00\x01b\x00\x012"
        + b"\x00\x02\xc3\xa9\x00\x013"
    )


def test_case_sensitive_and_no_normalisation() -> None:
    assert encode_encryption_context({"a": "x"}) != encode_encryption_context({"A": "x"})
    nfc, nfd = "\u00e9", "e\u0301"
    assert encode_encryption_context({nfc: "v"}) != encode_encryption_context({nfd: "v"})


def test_unicode_lengths_are_bytes() -> None:
    out = encode_encryption_context({"k": "😀"})
    assert out == b"\x00\x01\x00\x01k\x00\x04" + "😀".encode()


@pytest.mark.parametrize("ec", [{"\ud800": "v"}, {"k": "\udfff"}, {"k": "ok\udc80"}])
def test_lone_surrogates_raise_value_error(ec: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        encode_encryption_context(ec)


def test_element_length_limits() -> None:
    assert len(encode_encryption_context({"k": "x" * 65535})) == 2 + 2 + 1 + 2 + 65535
    with pytest.raises(ValueError):
        encode_encryption_context({"k": "x" * 65536})
    with pytest.raises(ValueError):
        encode_encryption_context({"é" * 32768: "v"})  # 65536 bytes


def _decode(data: bytes) -> dict[str, str]:
    if not data:
        return {}
    count, pos, out = int.from_bytes(data[:2], "big"), 2, {}
    for _ in range(count):
        n = int.from_bytes(data[pos : pos + 2], "big")
        key = data[pos + 2 : pos + 2 + n].decode()
        pos += 2 + n
        n = int.from_bytes(data[pos : pos + 2], "big")
        out[key] = data[pos + 2 : pos + 2 + n].decode()
        pos += 2 + n
    assert pos == len(data)
    return out


_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)


@given(st.dictionaries(_text, _text, max_size=8))
def test_encoding_is_injective_and_decodable(ec: dict[str, str]) -> None:
    assert _decode(encode_encryption_context(ec)) == ec


@given(st.dictionaries(_text, _text, max_size=5), st.dictionaries(_text, _text, max_size=5))
def test_distinct_contexts_encode_differently(a: dict[str, str], b: dict[str, str]) -> None:
    assert (encode_encryption_context(a) == encode_encryption_context(b)) == (a == b)
