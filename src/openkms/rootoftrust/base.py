"""The root-of-trust contract.

A root of trust protects exactly one kind of value: the 32-byte service **root key** (each version of
it).  The wrapped root key may be stored anywhere (database, config); only the root of trust can turn
it back into the root key.  Everything below the root key (key material, secrets) is the keyring's job.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class RootOfTrustError(Exception):
    """The root of trust is unusable (missing/unsafe configuration) or refused to unwrap a value.

    Messages may name files or devices (they go to operators), but never contain key bytes.
    """


@runtime_checkable
class RootOfTrust(Protocol):
    """Wraps and unwraps the service root key.

    Contract for every implementation (checked by the shared conformance suite):

    * ``unwrap_root_key(wrap_root_key(k)) == k`` for every 32-byte ``k``.
    * ``wrap_root_key`` is randomised: wrapping the same key twice gives different outputs, both valid.
    * ``unwrap_root_key`` authenticates its input: a value wrapped by a different root of trust (or
      a different key of the same kind), or altered in any bit, raises :class:`RootOfTrustError`
      and never returns wrong bytes.
    * Neither method logs, stores or returns key bytes anywhere else; ``repr()`` reveals no secret.
    * Methods are safe to call from several threads.
    """

    @property
    def name(self) -> str:
        """Short implementation name for logs and health output (e.g. ``"file"``)."""
        ...

    def wrap_root_key(self, root_key: bytes) -> bytes:
        """Return ``root_key`` (exactly 32 bytes; ``ValueError`` otherwise) wrapped for storage."""
        ...

    def unwrap_root_key(self, wrapped: bytes) -> bytes:
        """Return the 32-byte root key inside ``wrapped``; raise :class:`RootOfTrustError` on failure."""
        ...

    def health(self) -> dict[str, object]:
        """Return a JSON-serialisable status, at least ``{"name": str, "ok": bool}``; never raises."""
        ...
