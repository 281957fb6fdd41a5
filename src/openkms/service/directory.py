"""Cached lookups of keys, aliases, materials and credentials, kept coherent across workers.

The crypto hot path resolves a key and its material without touching the database. Correctness rests
on two rules:

* only rows that exist are cached (no negative caching), so a newly created key or alias needs no
  invalidation;
* any change to an existing row bumps the shared generation after its transaction commits, and a
  value read from the database is cached only if the generation did not move during the read (otherwise
  a reader could re-insert a value that was stale before the writer's bump).

Grants are the exception to the first rule: a key's grant list is cached even when empty (every
Encrypt consults it), which is sound because every grant write -- create, retire, revoke, key deletion
-- goes through ``Core.changing()`` and so bumps the generation.

Principals (``principal``) are the exception to the first rule: what is cached is computed from rows that
may not exist yet (an access key's user created later), so every identity change -- creations included --
bumps the generation (``service.identities`` writes only through ``Core.changing``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from openkms.authz.model import Grant, Principal
from openkms.identifiers import key_arn
from openkms.service.generation import LocalGeneration
from openkms.service.grant_rules import to_grant
from openkms.storage.base import AccessKeyRecord, AliasRecord, KeyRecord, MaterialRecord, Store, Tx

K = TypeVar("K")
T = TypeVar("T")
_MAX_ENTRIES = 100_000


@dataclass(frozen=True, slots=True)
class KeyExtras:
    """What authorization needs besides the key record: aws:ResourceTag/* and kms:ResourceAliases."""

    tags: Mapping[str, str]
    aliases: tuple[str, ...]


class Directory:
    def __init__(self, store: Store, generation: LocalGeneration, partition: str = "aws") -> None:
        self._store = store
        self._partition = partition
        self._generation = generation
        self._seen = generation.current()
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str, str], KeyRecord] = {}
        self._aliases: dict[tuple[str, str, str], AliasRecord] = {}
        self._materials: dict[tuple[str, str], dict[str, MaterialRecord]] = {}
        self._access_keys: dict[str, AccessKeyRecord] = {}
        self._grants: dict[tuple[str, str, str], tuple[Grant, ...]] = {}
        self._extras: dict[tuple[str, str, str], KeyExtras] = {}
        self._principals: dict[str, Principal] = {}

    def _refresh(self) -> int:
        current = self._generation.current()
        if current != self._seen:
            with self._lock:
                self._keys.clear()
                self._aliases.clear()
                self._materials.clear()
                self._access_keys.clear()
                self._grants.clear()
                self._extras.clear()
                self._principals.clear()
                self._seen = current
        return current

    def _remember(self, cache: dict[K, T], key: K, value: T | None, generation: int) -> None:
        # Only cache what was read under an unchanged generation (see the module docstring). The check and
        # the write hold the lock ``_refresh`` clears under: otherwise a thread could pass the check, lose
        # the CPU while another thread clears for a new generation, and then store its stale value.
        if value is None:
            return
        with self._lock:
            if self._generation.current() == generation:
                if len(cache) >= _MAX_ENTRIES:
                    cache.clear()
                cache[key] = value

    def key(self, account: str, region: str, key_id: str) -> KeyRecord | None:
        generation = self._refresh()
        cache_key = (account, region, key_id)
        found = self._keys.get(cache_key)
        if found is None:
            with self._store.read() as tx:
                found = tx.get_key(account, region, key_id)
            self._remember(self._keys, cache_key, found, generation)
        return found

    def alias(self, account: str, region: str, name: str) -> AliasRecord | None:
        if "\x00" in name:  # no alias holds NUL (CreateAlias's pattern), and PostgreSQL text cannot
            return None
        generation = self._refresh()
        cache_key = (account, region, name)
        found = self._aliases.get(cache_key)
        if found is None:
            with self._store.read() as tx:
                found = tx.get_alias(account, region, name)
            self._remember(self._aliases, cache_key, found, generation)
        return found

    def materials(self, account: str, key_id: str) -> dict[str, MaterialRecord]:
        generation = self._refresh()
        cache_key = (account, key_id)
        found = self._materials.get(cache_key)
        if found is None:
            with self._store.read() as tx:
                found = {m.material_id: m for m in tx.list_materials(account, key_id)}
            self._remember(self._materials, cache_key, found or None, generation)
        return found

    def key_extras(self, account: str, region: str, key_id: str) -> KeyExtras:
        """Tags and alias names of a key. Every tag or alias change bumps the generation."""
        generation = self._refresh()
        cache_key = (account, region, key_id)
        found = self._extras.get(cache_key)
        if found is None:
            with self._store.read() as tx:
                tags = {t.key: t.value for t in tx.list_tags(account, region, key_id)}
                aliases = tuple(a.name for a in tx.list_aliases(account, region, key_id, None, 50))
            found = KeyExtras(tags, aliases)
            self._remember(self._extras, cache_key, found, generation)
        return found

    def access_key(self, access_key_id: str) -> AccessKeyRecord | None:
        generation = self._refresh()
        found = self._access_keys.get(access_key_id)
        if found is None:
            with self._store.read() as tx:
                found = tx.get_access_key(access_key_id)
            self._remember(self._access_keys, access_key_id, found, generation)
        return found

    def grants(self, account: str, region: str, key_id: str, *, reload: bool = False) -> tuple[Grant, ...]:
        """The grants of a key, as the evaluator sees them (cached even when empty, see above).

        ``reload`` reads them from the database even when cached: a grant created on another node is in
        the database before this node's poller drops the caches (grant tokens use it, see
        ``GrantTokens.catch_up``). What it reads is at least as new as what was cached."""
        generation = self._refresh()
        cache_key = (account, region, key_id)
        found = None if reload else self._grants.get(cache_key)
        if found is None:
            with self._store.read() as tx:
                records = tx.list_grants(account, region, key_id)
            arn = key_arn(self._partition, region, account, key_id)
            found = tuple(to_grant(r, arn) for r in records)
            if self._generation.current() == generation:
                if len(self._grants) >= _MAX_ENTRIES:
                    self._grants.clear()
                self._grants[cache_key] = found
        return found

    def principal(self, arn: str, load: Callable[[Tx], Principal]) -> Principal:
        """The principal behind a caller ARN, computed by ``load`` in a read transaction on a miss."""
        generation = self._refresh()
        found = self._principals.get(arn)
        if found is None:
            with self._store.read() as tx:
                found = load(tx)
            self._remember(self._principals, arn, found, generation)
        return found

    @property
    def generation(self) -> LocalGeneration:
        return self._generation

    def changed(self) -> None:
        """Call after committing a change to an existing key, alias, material, credential or grant."""
        self._generation.bump()
        self._refresh()
