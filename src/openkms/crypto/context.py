"""Canonical, injective encoding of a KMS encryption context (kms-semantics.md section 5.5).

Layout (all integers big-endian)::

    count(2) then, for each pair sorted by the UTF-8 bytes of the key:
        len(key)(2) key-utf8  len(value)(2) value-utf8

An absent context and ``{}`` both encode to ``b""``.  Every element is length-prefixed, so
``{"ab": "c"}`` and ``{"a": "bc"}`` encode differently.  No Unicode normalisation, no case folding.
"""

from __future__ import annotations

from collections.abc import Mapping

_MAX_ELEMENT = 0xFFFF


def _utf8(text: str) -> bytes:
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates: not representable, and must not be silently replaced.
        raise ValueError("encryption context contains a string that is not valid Unicode") from None
    if len(raw) > _MAX_ELEMENT:
        raise ValueError("encryption context element is longer than 65535 bytes")
    return raw


def encode_encryption_context(ec: Mapping[str, str] | None) -> bytes:
    """Return the canonical AAD encoding of ``ec``.

    Raises ``ValueError`` if a key or value cannot be encoded as UTF-8 (lone surrogates), if any
    encoded element exceeds 65535 bytes, or if there are more than 65535 pairs.  Callers that need
    an overall size cap (for example 8192 bytes) apply it to the returned value.
    """
    if not ec:
        return b""
    if len(ec) > _MAX_ELEMENT:
        raise ValueError("encryption context has more than 65535 pairs")
    # Sorting by the *encoded* key bytes (not Python str order) is what makes the order canonical.
    items = sorted((_utf8(k), _utf8(v)) for k, v in ec.items())
    parts: list[bytes] = [len(items).to_bytes(2, "big")]
    for key, value in items:
        parts.append(len(key).to_bytes(2, "big"))
        parts.append(key)
        parts.append(len(value).to_bytes(2, "big"))
        parts.append(value)
    return b"".join(parts)
