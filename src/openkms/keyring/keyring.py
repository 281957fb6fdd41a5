"""The key hierarchy below the root of trust (architecture.md section 3; ADR 0001).

::

    root key v (32 bytes, in memory only while unsealed)
      ├── HKDF "openkms/ekt-wrap"      wraps key material -> EKT, AAD binds account/key/material/spec
      ├── HKDF "openkms/secret-wrap"   wraps stored secrets, AAD binds purpose/binding
      ├── HKDF "openkms/token-seal"    seals tokens handed to callers (grant and import tokens), AAD binds
      │                               purpose and binding; the sealing version travels with the token
      └── HKDF "openkms/ext/<purpose>" sub-keys of the OLDEST version (pagination-marker MACs, imported-
                                      material ids): stable across root-key rotation and processes

Security invariants enforced in this module (look for "INVARIANT"):

* AAD binding: every wrapped value carries its identity in the AAD, length-prefixed so that fields
  cannot be shifted into one another; a wrapped value copied to another record does not unwrap.
* Domain separation: internal wrapping keys and caller sub-keys come from distinct HKDF infos;
  :meth:`Keyring.subkey` can never return a wrapping key.
* Cache bound: at most ``cache_size`` unwrapped materials are held (LRU, optional TTL); nothing here
  logs, reprs or pickles key bytes.  Python cannot zeroise memory, so the bound is the mitigation.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from openkms.crypto.errors import UnwrapError
from openkms.crypto.wrap import KEY_LEN, derive_subkey, random_bytes, unwrap, wrap

_EKT_AAD_PREFIX = b"kms-ekt-v1"
_SECRET_AAD_PREFIX = b"kms-secret-v1"
_EKT_PURPOSE = b"ekt-wrap"
_SECRET_PURPOSE = b"secret-wrap"
_TOKEN_PURPOSE = b"token-seal"
_TOKEN_AAD_PREFIX = b"kms-token-v1"
_VERSION_BYTES = 4
_EXT_PURPOSE_PREFIX = b"ext/"

_CacheKey = tuple[str, str, str]
LOCKED = 0  # the current_version of a keyring without root keys (``Keyring.locked``)


class KeyringError(Exception):
    """Key material or a secret could not be unwrapped, or a root-key version is unknown."""


def _lp(*fields: str) -> bytes:
    # INVARIANT (AAD binding): each field is UTF-8 with a 4-byte big-endian length prefix, so the
    # encoding is injective: ("ab", "c") and ("a", "bc") give different AADs.
    parts: list[bytes] = []
    for field in fields:
        raw = field.encode("utf-8")
        parts.append(len(raw).to_bytes(4, "big"))
        parts.append(raw)
    return b"".join(parts)


def _ekt_aad(account: str, key_id: str, material_id: str, key_spec: str) -> bytes:
    # The Region is deliberately absent so MRK replicas can share one EKT (kms-semantics 5.2).
    return _EKT_AAD_PREFIX + _lp(account, key_id, material_id, key_spec)


def _secret_aad(purpose: str, binding: str) -> bytes:
    return _SECRET_AAD_PREFIX + _lp(purpose, binding)


def _token_aad(purpose: str, binding: bytes) -> bytes:
    # INVARIANT (AAD binding): the purpose is length-prefixed, so the binding cannot be shifted into it;
    # an empty binding gives the AAD of tokens sealed before bindings existed.
    return _TOKEN_AAD_PREFIX + _lp(purpose) + binding


class Keyring:
    """Unsealed root keys plus a bounded, thread-safe cache of unwrapped key material.

    ``root_keys`` maps root-key version to the 32-byte root key; new values are wrapped under
    ``current_version``, older versions only unwrap.  ``cache_size`` bounds the material cache
    (0 disables it); ``cache_ttl`` (seconds, optional) expires entries that have not been refreshed.
    """

    __slots__ = (
        "_cache",
        "_cache_size",
        "_cache_ttl",
        "_current_version",
        "_ekt_keys",
        "_index",
        "_lock",
        "_resolve_lock",
        "_resolver",
        "_root_keys",
        "_secret_keys",
        "_subkeys",
        "_token_keys",
    )

    def __init__(
        self,
        root_keys: Mapping[int, bytes],
        current_version: int,
        cache_size: int = 10000,
        cache_ttl: float | None = None,
        resolver: Callable[[int], bytes | None] | None = None,
    ) -> None:
        if current_version not in root_keys and (root_keys or current_version != LOCKED):
            raise ValueError("current_version is not among the root keys")
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        if cache_ttl is not None and cache_ttl <= 0:
            raise ValueError("cache_ttl must be positive")
        for key in root_keys.values():
            if len(key) != KEY_LEN:
                raise ValueError("every root key must be 32 bytes")
        self._root_keys: dict[int, bytes] = {v: bytes(k) for v, k in root_keys.items()}
        self._current_version = current_version
        # INVARIANT (domain separation): one HKDF info per role; derived once per root version.
        self._ekt_keys = {v: derive_subkey(k, _EKT_PURPOSE) for v, k in self._root_keys.items()}
        self._secret_keys = {v: derive_subkey(k, _SECRET_PURPOSE) for v, k in self._root_keys.items()}
        self._token_keys = {v: derive_subkey(k, _TOKEN_PURPOSE) for v, k in self._root_keys.items()}
        self._subkeys: dict[bytes, bytes] = {}
        self._cache_size = cache_size
        self._cache_ttl = cache_ttl
        # value: (key_spec, material, expiry as time.monotonic() or inf)
        self._cache: OrderedDict[_CacheKey, tuple[str, bytes, float]] = OrderedDict()
        self._index: dict[tuple[str, str], set[str]] = {}  # (account, key_id) -> material ids cached
        self._lock = threading.Lock()
        # Root-key rotation (``openkms operator rotate-root-key``) adds versions while servers run:
        # ``resolver(version)`` fetches and unwraps a version this keyring has not seen (None: no such
        # version), so re-wrapped records stay readable without a restart.
        self._resolver = resolver
        self._resolve_lock = threading.Lock()

    # --- never reveal or serialise secrets -------------------------------------------------------
    def __repr__(self) -> str:
        return (
            f"Keyring(versions={sorted(self._root_keys)}, current_version={self._current_version}, "
            f"cached={len(self._cache)}/{self._cache_size})"
        )

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("Keyring holds secrets and cannot be serialised")

    @classmethod
    def locked(cls) -> Keyring:
        """A keyring without any root key: every operation that needs one raises ``KeyringError``. For the
        offline commands of a sealed (shamir) deployment that read and write no secret."""
        return cls({}, LOCKED, cache_size=0)

    def _current(self, keys: dict[int, bytes]) -> tuple[int, bytes]:
        version = self._current_version
        key = keys.get(version)
        if key is None:  # only a locked keyring: current_version is otherwise always held
            raise KeyringError("no root key is available (the deployment is sealed)")
        return version, key

    @property
    def current_version(self) -> int:
        return self._current_version

    @property
    def versions(self) -> frozenset[int]:
        return frozenset(self._root_keys)

    @staticmethod
    def generate_root_key() -> bytes:
        """Return a new random 32-byte root key."""
        return random_bytes(KEY_LEN)

    def _resolve(self, version: int, keys: dict[int, bytes]) -> bytes | None:
        """Fetch an unseen root-key version through the resolver; a newer one becomes current."""
        if self._resolver is None or version <= 0:
            return None
        with self._resolve_lock:
            if version not in self._root_keys:
                root_key = self._resolver(version)
                if root_key is None or len(root_key) != KEY_LEN:
                    return None
                # Derived keys first, then the root key: readers check the derived maps without the lock.
                self._ekt_keys[version] = derive_subkey(root_key, _EKT_PURPOSE)
                self._secret_keys[version] = derive_subkey(root_key, _SECRET_PURPOSE)
                self._token_keys[version] = derive_subkey(root_key, _TOKEN_PURPOSE)
                self._root_keys[version] = bytes(root_key)
                if version > self._current_version:
                    # A rotation happened: wrap and seal new values under the new version from now on,
                    # so the rotation's re-wrap pass converges while this process keeps serving.
                    self._current_version = version
        return keys.get(version)

    def adopt_latest(self, version: int) -> bool:
        """Make root-key ``version`` current if it is newer than the current one (fetching it through the
        resolver); return whether it is now known."""
        if version <= self._current_version:
            return version in self._root_keys
        return self._resolve(version, self._ekt_keys) is not None

    # --- key material ----------------------------------------------------------------------------
    def wrap_material(
        self, account: str, key_id: str, material_id: str, key_spec: str, material: bytes
    ) -> tuple[bytes, int]:
        """Wrap ``material`` under the current root key; return ``(ekt, root_key_version)``."""
        version, wrap_key = self._current(self._ekt_keys)
        return wrap(wrap_key, material, _ekt_aad(account, key_id, material_id, key_spec)), version

    def unwrap_material(
        self,
        account: str,
        key_id: str,
        material_id: str,
        key_spec: str,
        ekt: bytes,
        root_key_version: int,
    ) -> bytes:
        """Return the material inside ``ekt``, from the cache when possible.

        Raises :class:`KeyringError` if the root-key version is unknown or the EKT does not unwrap
        with exactly this (account, key_id, material_id, key_spec).
        """
        cache_key = (account, key_id, material_id)
        if self._cache_size:
            with self._lock:
                hit = self._cache.get(cache_key)
                if hit is not None:
                    spec, material, expiry = hit
                    # A hit only counts for the same key spec (it was proven by a full unwrap).
                    if spec == key_spec and expiry > time.monotonic():
                        self._cache.move_to_end(cache_key)
                        return material
                    self._drop(cache_key)
        wrap_key = self._ekt_keys.get(root_key_version) or self._resolve(root_key_version, self._ekt_keys)
        if wrap_key is None:
            raise KeyringError("unknown root key version")
        try:
            material = unwrap(wrap_key, ekt, _ekt_aad(account, key_id, material_id, key_spec))
        except UnwrapError:
            raise KeyringError("key material cannot be unwrapped") from None
        if self._cache_size:
            self._insert(cache_key, key_spec, material)
        return material

    def _insert(self, cache_key: _CacheKey, key_spec: str, material: bytes) -> None:
        expiry = float("inf") if self._cache_ttl is None else time.monotonic() + self._cache_ttl
        with self._lock:
            self._cache[cache_key] = (key_spec, material, expiry)
            self._cache.move_to_end(cache_key)
            self._index.setdefault(cache_key[:2], set()).add(cache_key[2])
            # INVARIANT (cache bound): never more than cache_size unwrapped materials in memory.
            while len(self._cache) > self._cache_size:
                oldest = next(iter(self._cache))
                self._drop(oldest)

    def _drop(self, cache_key: _CacheKey) -> None:
        # Caller holds the lock.
        self._cache.pop(cache_key, None)
        ids = self._index.get(cache_key[:2])
        if ids is not None:
            ids.discard(cache_key[2])
            if not ids:
                del self._index[cache_key[:2]]

    def evict(self, account: str, key_id: str) -> None:
        """Forget every cached material of one key (call on deletion of the key or of its material)."""
        with self._lock:
            for material_id in self._index.pop((account, key_id), set()):
                self._cache.pop((account, key_id, material_id), None)

    def clear(self) -> None:
        """Forget all cached material and sub-keys (e.g. when sealing)."""
        with self._lock:
            self._cache.clear()
            self._index.clear()
            self._subkeys.clear()

    # --- secrets ---------------------------------------------------------------------------------
    def wrap_secret(self, purpose: str, binding: str, secret: bytes) -> tuple[bytes, int]:
        """Wrap ``secret`` (e.g. an access-key secret) bound to ``purpose`` and ``binding`` (e.g. the
        access key id); return ``(wrapped, root_key_version)``."""
        version, wrap_key = self._current(self._secret_keys)
        return wrap(wrap_key, secret, _secret_aad(purpose, binding)), version

    def unwrap_secret(self, purpose: str, binding: str, wrapped: bytes, root_key_version: int) -> bytes:
        """Reverse :meth:`wrap_secret`; raise :class:`KeyringError` on any failure.  Not cached."""
        wrap_key = self._secret_keys.get(root_key_version) or self._resolve(
            root_key_version, self._secret_keys
        )
        if wrap_key is None:
            raise KeyringError("unknown root key version")
        try:
            return unwrap(wrap_key, wrapped, _secret_aad(purpose, binding))
        except UnwrapError:
            raise KeyringError("secret cannot be unwrapped") from None

    # --- tokens ----------------------------------------------------------------------------------
    def seal_token(self, purpose: str, payload: bytes, binding: bytes = b"") -> bytes:
        """Seal ``payload`` into an opaque, authentic token for ``purpose`` (e.g. ``"grant-token-v1"``),
        bound to ``binding`` (e.g. the key it was issued for; given again to open it).

        Tokens are handed to callers and come back later, possibly after the root key was rotated and to
        another process, so the sealing root-key version travels in the clear in front of the payload.
        """
        version, seal_key = self._current(self._token_keys)
        return version.to_bytes(_VERSION_BYTES, "big") + wrap(seal_key, payload, _token_aad(purpose, binding))

    def open_token(self, purpose: str, sealed: bytes, binding: bytes = b"") -> bytes:
        """Reverse :meth:`seal_token`; raise :class:`KeyringError` for anything not sealed by us for
        ``purpose`` and ``binding`` (forged, altered, truncated, another purpose or binding, unknown
        root-key version)."""
        if len(sealed) <= _VERSION_BYTES:
            raise KeyringError("token cannot be opened")
        version = int.from_bytes(sealed[:_VERSION_BYTES], "big")
        # an unknown version: sealed by a process that met a newer root key first (fetched on demand)
        key = self._token_keys.get(version) or self._resolve(version, self._token_keys)
        if key is None:
            raise KeyringError("token cannot be opened")
        try:
            return unwrap(key, sealed[_VERSION_BYTES:], _token_aad(purpose, binding))
        except UnwrapError:
            raise KeyringError("token cannot be opened") from None

    # --- derived sub-keys ------------------------------------------------------------------------
    def subkey(self, purpose: bytes) -> bytes:
        """Return a 32-byte key for ``purpose`` derived from the OLDEST root-key version held (cached).

        It does not follow root-key rotation, so every process of a deployment derives the same value
        before and after one (a pagination marker from one worker reads in another). Values that must be
        secret and die with an old root key go through :meth:`seal_token` instead.
        """
        key = self._subkeys.get(purpose)
        if key is None:
            # INVARIANT (domain separation): the "ext/" prefix keeps caller purposes disjoint from
            # the internal wrapping purposes, whatever bytes the caller passes.
            if not self._root_keys:
                raise KeyringError("no root key is available (the deployment is sealed)")
            key = derive_subkey(self._root_keys[min(self._root_keys)], _EXT_PURPOSE_PREFIX + purpose)
            with self._lock:
                self._subkeys[purpose] = key
        return key

    def identity_key(self) -> bytes:
        """The key of imported-material ids (kms-semantics.md section 5.3): a re-import must map the same
        bytes to the same id years later, which :meth:`subkey`'s derivation from the oldest version gives.
        Root-key rotation must therefore keep version 1 loadable (or carry this key forward) for as long
        as imported keys exist."""
        return self.subkey(b"material-id-v1")
