"""The ``shamir`` root of trust: an unseal key split into operator shares, never stored.

``openkms init --shamir N/T`` draws a random 32-byte **unseal key**, splits it into N shares (any T
recover it, :mod:`openkms.crypto.shamir`) and wraps the root key with it (AES-256-GCM).  The unseal key
itself is then forgotten: only the shares (handed to the operators once) can bring it back.

Wrapped root key (what the database stores, provider ``"shamir"``)::

    header = b"OKSH" || 0x01 || cluster_id(8) || threshold(1) || shares(1)          (15 bytes)
    wrapped = header || wrap(unseal_key, root_key, AAD = b"openkms-root-key-shamir-v1" || header)

The header is public (the server reads the threshold and the cluster id from it while sealed) and
authenticated (it is in the AAD).  The GCM tag is the only verification value: a candidate unseal key is
correct exactly when it unwraps the root key.

Share text (one line, copy-pasteable)::

    okms-share-1-<base32, lower case, no padding, of:
        index(1) || threshold(1) || cluster_id(8) || y(32) || checksum(4)>

``checksum`` = SHA-256(b"okms-share-1" || the 42 bytes before it)[:4] catches typos and truncation;
``cluster_id`` rejects a share of another cluster (or of an earlier ``init``) before it is used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from openkms.crypto import shamir
from openkms.crypto.errors import UnwrapError
from openkms.crypto.wrap import KEY_LEN, random_bytes, unwrap, wrap
from openkms.rootoftrust.base import RootOfTrustError

PROVIDER = "shamir"
MAX_SHARES = 16
SHARE_PREFIX = "okms-share-1-"
_MAGIC = b"OKSH\x01"
_HEADER_LEN = len(_MAGIC) + 8 + 2
_AAD_PREFIX = b"openkms-root-key-shamir-v1"
_CHECKSUM_DOMAIN = b"okms-share-1"
_PAYLOAD_LEN = 1 + 1 + 8 + KEY_LEN + 4


class ShareError(ValueError):
    """A share string is malformed, damaged, or belongs to another cluster; the message says which
    (never anything about the secret)."""


@dataclass(frozen=True, slots=True)
class ShamirParams:
    """The public parameters of one split, read from the header of a wrapped root key."""

    cluster_id: bytes  # 8 random bytes drawn at init; every share carries them
    threshold: int
    shares: int

    @property
    def fingerprint(self) -> str:
        return self.cluster_id.hex()

    def header(self) -> bytes:
        return _MAGIC + self.cluster_id + bytes((self.threshold, self.shares))

    @classmethod
    def of_wrapped(cls, wrapped: bytes) -> ShamirParams:
        """The parameters in front of a wrapped root key; :class:`RootOfTrustError` if it is not one."""
        if len(wrapped) < _HEADER_LEN or not wrapped.startswith(_MAGIC):
            raise RootOfTrustError("the stored root key was not wrapped by the shamir root of trust")
        threshold, shares = wrapped[_HEADER_LEN - 2], wrapped[_HEADER_LEN - 1]
        if not 2 <= threshold <= shares <= MAX_SHARES:
            raise RootOfTrustError("the stored shamir root-key header is damaged")
        return cls(bytes(wrapped[len(_MAGIC) : _HEADER_LEN - 2]), threshold, shares)


@dataclass(frozen=True, slots=True)
class Share:
    """One decoded share.  ``repr`` hides the secret part."""

    index: int
    threshold: int
    cluster_id: bytes
    value: bytes

    def __repr__(self) -> str:
        return f"Share(index={self.index}, threshold={self.threshold}, cluster={self.cluster_id.hex()})"

    def encode(self) -> str:
        body = bytes((self.index, self.threshold)) + self.cluster_id + self.value
        payload = body + _checksum(body)
        return SHARE_PREFIX + base64.b32encode(payload).decode("ascii").rstrip("=").lower()

    @classmethod
    def decode(cls, text: str) -> Share:
        """Parse a share string (surrounding and inner whitespace ignored, any case)."""
        compact = "".join(text.split())
        if not compact.lower().startswith(SHARE_PREFIX):
            raise ShareError(f"not an openkms share (expected a line starting with {SHARE_PREFIX!r})")
        encoded = compact[len(SHARE_PREFIX) :].upper()
        try:
            payload = base64.b32decode(encoded + "=" * (-len(encoded) % 8))
        except (binascii.Error, ValueError):
            raise ShareError("malformed share: not valid base32") from None
        if len(payload) != _PAYLOAD_LEN:
            raise ShareError("malformed share: wrong length (truncated or extended)")
        body, check = payload[:-4], payload[-4:]
        if not hmac.compare_digest(_checksum(body), check):
            raise ShareError("malformed share: checksum mismatch (mistyped or damaged)")
        index, threshold = body[0], body[1]
        if not 1 <= index <= MAX_SHARES or not 2 <= threshold <= MAX_SHARES:
            raise ShareError("malformed share: index or threshold out of range")
        return cls(index, threshold, bytes(body[2:10]), bytes(body[10:]))


def _checksum(body: bytes) -> bytes:
    return hashlib.sha256(_CHECKSUM_DOMAIN + body).digest()[:4]


def parse_split(text: str) -> tuple[int, int]:
    """``"5/3"`` -> ``(5, 3)`` (N shares, threshold T); ``ValueError`` unless 2 <= T <= N <= 16."""
    shares_text, sep, threshold_text = text.partition("/")
    try:
        if not sep:
            raise ValueError
        shares, threshold = int(shares_text), int(threshold_text)
    except ValueError:
        raise ValueError(f"expected N/T (shares/threshold, e.g. 5/3), got {text!r}") from None
    if not 2 <= threshold <= shares <= MAX_SHARES:
        raise ValueError(f"need 2 <= T <= N <= {MAX_SHARES} (got N={shares}, T={threshold})")
    return shares, threshold


class ShamirRootOfTrust:
    """An unsealed shamir root of trust: the unseal key in memory, wrapping and unwrapping root keys."""

    __slots__ = ("_key", "_params")

    def __init__(self, unseal_key: bytes, params: ShamirParams) -> None:
        if len(unseal_key) != KEY_LEN:
            raise RootOfTrustError("the unseal key must be 32 bytes")
        self._key = bytes(unseal_key)
        self._params = params

    def __repr__(self) -> str:
        p = self._params
        return f"ShamirRootOfTrust(cluster={p.fingerprint}, threshold={p.threshold}, shares={p.shares})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("ShamirRootOfTrust holds a secret and cannot be serialised")

    @classmethod
    def create(cls, shares: int, threshold: int) -> tuple[ShamirRootOfTrust, list[str]]:
        """A new unseal key split into ``shares`` share strings (threshold ``threshold``)."""
        if not 2 <= threshold <= shares <= MAX_SHARES:
            raise ValueError(f"need 2 <= threshold <= shares <= {MAX_SHARES}")
        params = ShamirParams(random_bytes(8), threshold, shares)
        unseal_key = random_bytes(KEY_LEN)
        texts = [
            Share(x, threshold, params.cluster_id, y).encode()
            for x, y in shamir.split(unseal_key, shares, threshold)
        ]
        return cls(unseal_key, params), texts

    @classmethod
    def from_shares(cls, shares: list[Share], params: ShamirParams) -> ShamirRootOfTrust:
        """Combine ``threshold`` shares of the split described by ``params`` (not yet verified: check by
        unwrapping a root key)."""
        if len(shares) < params.threshold:
            raise RootOfTrustError("not enough shares")
        return cls(shamir.combine([(s.index, s.value) for s in shares]), params)

    @property
    def name(self) -> str:
        return PROVIDER

    @property
    def params(self) -> ShamirParams:
        return self._params

    def wrap_root_key(self, root_key: bytes) -> bytes:
        if len(root_key) != KEY_LEN:
            raise ValueError("root key must be 32 bytes")
        header = self._params.header()
        return header + wrap(self._key, root_key, _AAD_PREFIX + header)

    def unwrap_root_key(self, wrapped: bytes) -> bytes:
        params = ShamirParams.of_wrapped(wrapped)
        if params != self._params:
            raise RootOfTrustError("the stored root key belongs to another shamir split (cluster)")
        header = bytes(wrapped[:_HEADER_LEN])
        try:
            root_key = unwrap(self._key, bytes(wrapped[_HEADER_LEN:]), _AAD_PREFIX + header)
        except UnwrapError:
            raise RootOfTrustError("the root key cannot be unwrapped with this unseal key") from None
        if len(root_key) != KEY_LEN:
            raise RootOfTrustError("the unwrapped root key has the wrong length")
        return root_key

    def health(self) -> dict[str, object]:
        p = self._params
        return {"name": PROVIDER, "ok": True, "sealed": False, "threshold": p.threshold, "shares": p.shares}
