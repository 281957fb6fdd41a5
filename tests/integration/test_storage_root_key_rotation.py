"""Storage: the "root key rotation" Tx methods, on SQLite and PostgreSQL (fixtures in storage_fixtures.py)."""

from __future__ import annotations

import pytest

from openkms.storage.base import (
    AccessKeyRecord,
    ConflictError,
    KeyRecord,
    KeyState,
    MaterialRecord,
    MaterialState,
    RootKeyRecord,
)
from openkms.storage.sql import SqlStore
from openkms.storage.tables import audit_signing_keys

pytest_plugins = ["tests.integration.storage_fixtures"]

T0 = 1_700_000_000.0
ACCOUNT = "123456789012"


def _key(key_id: str, region: str = "us-east-1", spec: str = "SYMMETRIC_DEFAULT") -> KeyRecord:
    return KeyRecord(
        ACCOUNT,
        region,
        key_id,
        T0,
        "",
        spec,
        "ENCRYPT_DECRYPT",
        "AWS_KMS",
        "CUSTOMER",
        KeyState.ENABLED,
        "{}",
    )


def _material(key_id: str, mid: str, version: int, ekt: bytes | None = b"ekt") -> MaterialRecord:
    return MaterialRecord(ACCOUNT, key_id, mid, ekt, version, MaterialState.CURRENT, T0)


def test_list_and_replace_root_keys(store: SqlStore) -> None:
    with store.tx() as tx:
        assert tx.list_root_keys() == []
        tx.insert_root_key(RootKeyRecord(2, "file", b"w2", T0 + 1))
        tx.insert_root_key(RootKeyRecord(1, "file", b"w1", T0))
    with store.tx() as tx:
        assert [r.version for r in tx.list_root_keys()] == [1, 2]
        tx.replace_root_key(RootKeyRecord(1, "pkcs11", b"new", T0), "file")
    with store.read() as tx:
        assert tx.get_root_key(1) == RootKeyRecord(1, "pkcs11", b"new", T0)  # created_at kept
        assert tx.get_root_key(2) == RootKeyRecord(2, "file", b"w2", T0 + 1)
    with pytest.raises(ConflictError), store.tx() as tx:
        tx.replace_root_key(RootKeyRecord(1, "file", b"x", T0), "file")  # provider is pkcs11 now
    with pytest.raises(ConflictError), store.tx() as tx:
        tx.replace_root_key(RootKeyRecord(9, "file", b"x", T0), "file")
    with store.read() as tx:
        assert tx.get_root_key(1) == RootKeyRecord(1, "pkcs11", b"new", T0)


def test_materials_to_rewrap_and_compare_and_set(store: SqlStore) -> None:
    with store.tx() as tx:
        tx.insert_key(_key("k1"))
        tx.insert_key(_key("k1", region="eu-west-1"))  # a replica: one material set, listed once
        tx.insert_key(_key("k2", spec="HMAC_256"))
        tx.insert_material(_material("k1", "a" * 64, 1))
        tx.insert_material(_material("k1", "b" * 64, 2))
        tx.insert_material(_material("k2", "c" * 64, 1))
        tx.insert_material(_material("k2", "d" * 64, 1, ekt=None))  # deleted imported material
    with store.read() as tx:
        found = tx.materials_to_rewrap(2, 100)
        expected = [("a", "SYMMETRIC_DEFAULT"), ("c", "HMAC_256")]
        assert [(m.material_id[0], spec) for m, spec in found] == expected
        assert len(tx.materials_to_rewrap(2, 1)) == 1
        assert tx.materials_to_rewrap(1, 100) == []
        assert tx.count_wrapped_by_root_key() == {1: 2, 2: 1}
    first = found[0][0]
    with store.tx() as tx:
        assert tx.rewrap_material(first, b"ekt-v2", 2) is True
        assert tx.rewrap_material(first, b"again", 2) is False  # stale: version and ekt moved on
    with store.read() as tx:
        stored = tx.get_material(ACCOUNT, "k1", "a" * 64)
        assert stored is not None and (stored.ekt, stored.root_key_version) == (b"ekt-v2", 2)
        assert stored.state is MaterialState.CURRENT
        assert [m.material_id[0] for m, _ in tx.materials_to_rewrap(2, 100)] == ["c"]


def test_access_and_signing_keys_to_rewrap(store: SqlStore) -> None:
    with store.tx() as tx:
        tx.insert_access_key(AccessKeyRecord("AK1", ACCOUNT, "root", "arn:aws:iam::x:root", b"s1", 1, T0))
        tx.insert_access_key(AccessKeyRecord("AK2", ACCOUNT, "root", "arn:aws:iam::x:root", b"s2", 2, T0))
        tx.connection.execute(
            audit_signing_keys.insert().values(
                key_id="sk", public_key=b"pub", wrapped_seed=b"seed", root_key_version=1, created_at=T0
            )
        )
    with store.read() as tx:
        old = tx.access_keys_to_rewrap(2, 10)
        assert [r.access_key_id for r in old] == ["AK1"]
        assert tx.signing_keys_to_rewrap(2, 10) == [("sk", b"seed", 1)]
        assert tx.count_wrapped_by_root_key() == {1: 2, 2: 1}
    with store.tx() as tx:
        assert tx.rewrap_access_key(old[0], b"s1-v2", 2) is True
        assert tx.rewrap_access_key(old[0], b"s1-v3", 2) is False
        assert tx.rewrap_signing_key("sk", b"other", 1, b"seed-v2", 2) is False  # wrong old value
        assert tx.rewrap_signing_key("sk", b"seed", 1, b"seed-v2", 2) is True
    with store.read() as tx:
        record = tx.get_access_key("AK1")
        assert record is not None and (record.wrapped_secret, record.root_key_version) == (b"s1-v2", 2)
        assert tx.access_keys_to_rewrap(2, 10) == [] and tx.signing_keys_to_rewrap(2, 10) == []
        assert tx.count_wrapped_by_root_key() == {2: 3}
