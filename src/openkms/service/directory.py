"""Cached lookups of keys, aliases, materials and credentials, kept coherent across workers.

The crypto hot path resolves a key and its material without touching the database. Correctness rests
on two rules:

* only rows that exist are cached (no negative caching), so a newly created key or alias needs no
  invalidation;
* any change to an existing row bumps the shared generation after its transaction commits, and a
  value read from the database is cached only if the generation did not move during the read (otherwise
  a reader could re-insert a value that was stale before the writer's bump).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from openkms.service.generation import LocalGeneration
from openkms.storage.base import AccessKeyRecord, AliasRecord, KeyRecord, MaterialRecord, Store

T = TypeVar("T")
_MAX_ENTRIES = 100_000


class Directory:
    def __init__(self, store: Store, generation: LocalGeneration) -> None:
        self._store = store
        self._generation = generation
        self._seen = generation.current()
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str, str], KeyRecord] = {}
        self._aliases: dict[tuple[str, str, str], AliasRecord] = {}
        self._materials: dict[tuple[str, str], dict[str, MaterialRecord]] = {}
        self._access_keys: dict[str, AccessKeyRecord] = {}

    def _refresh(self) -> int:
        current = self._generation.current()
        if current != self._seen:
            with self._lock:
                self._keys.clear()
                self._aliases.clear()
                self._materials.clear()
                self._access_keys.clear()
                self._seen = current
        return current

    def _cached(self, cache: dict[tuple[str, ...], T] | dict[str, T], key: object, load: Callable[[], T | None]) -> T | None:
        before = self._refresh()
        value = cache.get(key)  # type: ignore[call-overload]
        if value is not None:
            return value
        value = load()
        if value is not None and self._generation.current() == before:
            if len(cache) >= _MAX_ENTRIES:
                cache.clear()
            cache[key] = value  # type: ignore[index]
        return value

    def key(self, account: str, region: str, key_id: str) -> KeyRecord | None:
        def load() -> KeyRecord | None:
            with self._store.tx() as tx:
                return tx.get_key(account, region, key_id)

        return self._cached(self._keys, (account, region, key_id), load)

    def alias(self, account: str, region: str, name: str) -> AliasRecord | None:
        def load() -> AliasRecord | None:
            with self._store.tx() as tx:
                return tx.get_alias(account, region, name)

        return self._cached(self._aliases, (account, region, name), load)

    def materials(self, account: str, key_id: str) -> dict[str, MaterialRecord]:
        def load() -> dict[str, MaterialRecord] | None:
            with self._store.tx() as tx:
                rows = tx.list_materials(account, key_id)
            return {m.material_id: m for m in rows} or None

        return self._cached(self._materials, (account, key_id), load) or {}

    def access_key(self, access_key_id: str) -> AccessKeyRecord | None:
        def load() -> AccessKeyRecord | None:
            with self._store.tx() as tx:
                return tx.get_access_key(access_key_id)

        return self._cached(self._access_keys, access_key_id, load)

    def changed(self) -> None:
        """Call after committing a change to an existing key, alias, material or credential."""
        self._generation.bump()
        self._refresh()
