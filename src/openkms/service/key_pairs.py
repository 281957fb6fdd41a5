"""A bounded cache of loaded asymmetric private keys, so Sign never re-parses PKCS#8 or re-expands a seed.

Entries are keyed by (account, key id, material id) and inserted only after the keyring has unwrapped and
authenticated the material for exactly that key, material and key spec; key specs never change and
material ids are never reused, so an entry cannot go stale in a way that matters (a deleted key no longer
resolves, and its entry ages out). Like the keyring's cache this holds secrets in memory: it is bounded,
never logged and never serialised.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from openkms.crypto.asymmetric import KeyPair

DEFAULT_SIZE = 1024

_Key = tuple[str, str, str]


class KeyPairCache:
    __slots__ = ("_entries", "_lock", "_size")

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._entries: OrderedDict[_Key, KeyPair] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def __repr__(self) -> str:
        return f"KeyPairCache({len(self._entries)}/{self._size})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("KeyPairCache holds secrets and cannot be serialised")

    def get(self, account: str, key_id: str, material_id: str, spec: str) -> KeyPair | None:
        found = self._entries.get((account, key_id, material_id))
        if found is None or found.spec != spec:
            return None
        return found

    def put(self, account: str, key_id: str, material_id: str, pair: KeyPair) -> None:
        if not self._size:
            return
        with self._lock:
            self._entries[(account, key_id, material_id)] = pair
            self._entries.move_to_end((account, key_id, material_id))
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
