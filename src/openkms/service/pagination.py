"""Opaque, tamper-evident pagination markers (kms-semantics.md section 7.9).

A marker is ``base64url(tag16 || position)`` where the tag is an HMAC over the listing's scope and the
position; anything else answers InvalidMarkerException. Markers carry no secrets, the MAC only stops
callers from steering a listing into another account's rows.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from openkms import errors
from openkms.crypto.wrap import constant_time_equal, hmac_sha256

_TAG = 16


class Markers:
    def __init__(self, key: Callable[[], bytes]) -> None:
        # fetched on first use: a service built for an offline command of a sealed deployment has no
        # root key to derive it from, and never lists anything
        self._key_source = key
        self._key: bytes | None = None

    def _mac_key(self) -> bytes:
        if self._key is None:
            self._key = self._key_source()
        return self._key

    def make(self, scope: str, position: str) -> str:
        raw = position.encode("utf-8")
        tag = hmac_sha256(self._mac_key(), scope.encode("utf-8") + b"\x00" + raw)[:_TAG]
        return base64.urlsafe_b64encode(tag + raw).decode("ascii")

    def read(self, scope: str, marker: str | None) -> str | None:
        if marker is None:
            return None
        try:
            blob = base64.urlsafe_b64decode(marker.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
            raise errors.InvalidMarkerException("The marker is invalid.") from exc
        tag, raw = blob[:_TAG], blob[_TAG:]
        expected = hmac_sha256(self._mac_key(), scope.encode("utf-8") + b"\x00" + raw)[:_TAG]
        if len(tag) != _TAG or not constant_time_equal(tag, expected):
            raise errors.InvalidMarkerException("The marker is invalid.")
        return raw.decode("utf-8")
