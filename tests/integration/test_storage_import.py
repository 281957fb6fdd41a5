"""Storage for imported key material (migration 0003_import): the import columns of ``materials``,
``Tx.replace_material`` and ``Tx.materials_due_for_expiry``, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

from tests.integration.test_storage_conformance import (
    ACCOUNT,
    OTHER_ACCOUNT,
    REGION,
    T0,
    make_key,
    make_material,
    mid,
)

from openkms.storage.base import MaterialState
from openkms.storage.sql import SqlStore

pytest_plugins = ["tests.integration.storage_fixtures"]


def test_import_columns_round_trip_and_replace(store: SqlStore) -> None:
    imported = make_material(
        "k1",
        mid(1),
        import_state="IMPORTED",
        expiration_model="KEY_MATERIAL_EXPIRES",
        valid_to=T0 + 100,
        description="from the HSM",
    )
    with store.tx() as tx:
        tx.insert_key(make_key("k1", origin="EXTERNAL"))
        tx.insert_material(imported)
    with store.read() as tx:
        assert tx.get_material(ACCOUNT, "k1", mid(1)) == imported
    deleted = replace(imported, ekt=None, import_state="PENDING_IMPORT", expiration_model=None, valid_to=None)
    with store.tx() as tx:
        tx.replace_material(deleted)
    with store.read() as tx:
        assert tx.get_material(ACCOUNT, "k1", mid(1)) == deleted
        assert tx.list_materials(ACCOUNT, "k1") == [deleted]
    promoted = replace(deleted, ekt=b"again", state=MaterialState.NON_CURRENT, rotation_type="ON_DEMAND")
    with store.tx() as tx:
        tx.replace_material(promoted)
    with store.read() as tx:
        assert tx.get_material(ACCOUNT, "k1", mid(1)) == promoted


def test_materials_due_for_expiry(store: SqlStore) -> None:
    with store.tx() as tx:
        tx.insert_key(make_key("k1", origin="EXTERNAL"))
        tx.insert_key(make_key("k2", account=OTHER_ACCOUNT, origin="EXTERNAL"))
        tx.insert_key(make_key("k3", origin="EXTERNAL"))
        tx.insert_material(make_material("k1", mid(1), valid_to=T0 + 10, import_state="IMPORTED"))
        tx.insert_material(
            make_material("k2", mid(2), account=OTHER_ACCOUNT, valid_to=T0 + 5, import_state="IMPORTED")
        )
        tx.insert_material(make_material("k3", mid(3), valid_to=T0 + 50, import_state="IMPORTED"))
        tx.insert_material(make_material("k1", mid(4), valid_to=None))  # never expires
        # already deleted material is not due again
        tx.insert_material(
            make_material("k3", mid(5), ekt=None, valid_to=T0 + 1, import_state="PENDING_IMPORT")
        )
    with store.read() as tx:
        due = tx.materials_due_for_expiry(T0 + 10, 10)
        assert [(k.key_id, k.region, m.material_id) for k, m in due] == [
            ("k2", REGION, mid(2)),
            ("k1", REGION, mid(1)),
        ]
        assert [m.material_id for _, m in tx.materials_due_for_expiry(T0 + 100, 1)] == [mid(2)]
        assert tx.materials_due_for_expiry(T0, 10) == []
