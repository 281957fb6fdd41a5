"""Conformance suite for ``openkms.storage``: every ``Tx`` method and every contract rule of ``base.py``,
run against SQLite and PostgreSQL (fixtures in ``storage_fixtures.py``)."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from openkms.storage.base import (
    AccessKeyRecord,
    AliasRecord,
    ConflictError,
    DuplicateError,
    KeyRecord,
    KeyState,
    MaterialRecord,
    MaterialState,
    RootKeyRecord,
    TagRecord,
)
from openkms.storage.migrate import current_revision, head_revision, upgrade_database
from openkms.storage.sql import SqlStore, create_sql_engine
from openkms.storage.tables import metadata

if TYPE_CHECKING:
    from tests.integration.storage_fixtures import StoreTarget

pytest_plugins = ["tests.integration.storage_fixtures"]

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
REGION = "eu-west-1"
OTHER_REGION = "us-east-1"
T0 = 1_700_000_000.25


def make_key(key_id: str, account: str = ACCOUNT, region: str = REGION, **changes: Any) -> KeyRecord:
    key = KeyRecord(
        account=account,
        region=region,
        key_id=key_id,
        created_at=T0,
        description="",
        key_spec="SYMMETRIC_DEFAULT",
        key_usage="ENCRYPT_DECRYPT",
        origin="AWS_KMS",
        key_manager="CUSTOMER",
        state=KeyState.ENABLED,
        policy='{"Version":"2012-10-17"}',
    )
    return replace(key, **changes)


def make_material(
    key_id: str, material_id: str, account: str = ACCOUNT, created_at: float = T0, **changes: Any
) -> MaterialRecord:
    material = MaterialRecord(
        account=account,
        key_id=key_id,
        material_id=material_id,
        ekt=b"\x00ekt-" + material_id.encode(),
        root_key_version=1,
        state=MaterialState.CURRENT,
        created_at=created_at,
    )
    return replace(material, **changes)


def make_alias(name: str, key_id: str, account: str = ACCOUNT, region: str = REGION) -> AliasRecord:
    return AliasRecord(account, region, name, key_id, created_at=T0, updated_at=T0)


def mid(n: int) -> str:
    return f"{n:064x}"


# ------------------------------------------------------------------------------------------- schema


def test_migrated_schema_matches_tables(store_target: StoreTarget) -> None:
    engine = create_sql_engine(store_target.url, schema=store_target.schema, pool_size=1)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    finally:
        engine.dispose()
    assert diffs == []


def test_current_revision_is_head(store_target: StoreTarget) -> None:
    assert head_revision() == "0005_identities"
    assert current_revision(store_target.url, schema=store_target.schema) == head_revision()
    upgrade_database(store_target.url, schema=store_target.schema)  # idempotent
    assert current_revision(store_target.url, schema=store_target.schema) == head_revision()


def test_fresh_sqlite_has_no_revision(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert current_revision(url) is None
    upgrade_database(url)
    assert current_revision(url) == "0005_identities"


# ------------------------------------------------------------------------------------ transactions


def test_commit_is_visible_to_another_store(store: SqlStore, open_store: Callable[..., SqlStore]) -> None:
    with store.tx() as tx:
        tx.insert_key(make_key("k1"))
    other = open_store()
    with other.tx() as tx:
        assert tx.get_key(ACCOUNT, REGION, "k1") == make_key("k1")


def test_read_transaction_sees_commits_and_does_not_wait_for_writers(
    store: SqlStore, open_store: Callable[..., SqlStore]
) -> None:
    with store.tx() as tx:
        tx.insert_key(make_key("k1"))
    other = open_store()
    writer_open = threading.Event()
    release = threading.Event()

    def hold_write_transaction() -> None:
        with other.tx() as tx:
            tx.insert_key(make_key("k2"))
            writer_open.set()
            release.wait(10)

    thread = threading.Thread(target=hold_write_transaction)
    thread.start()
    try:
        assert writer_open.wait(10)
        started = time.monotonic()
        with store.read() as tx:
            assert tx.get_key(ACCOUNT, REGION, "k1") == make_key("k1")
            assert tx.get_key(ACCOUNT, REGION, "k2") is None  # uncommitted work is invisible
        assert time.monotonic() - started < 2.0  # the reader did not queue behind the writer
    finally:
        release.set()
        thread.join(10)
    with store.read() as tx:
        assert tx.get_key(ACCOUNT, REGION, "k2") is not None


def test_serialized_writers_from_many_threads(open_store: Callable[..., SqlStore]) -> None:
    stores = [open_store(), open_store()]

    def create(i: int) -> None:
        with stores[i % 2].tx() as tx:
            tx.insert_key(make_key(f"w{i:03d}"))
            tx.bump_generation()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(80)))
    with stores[0].read() as tx:
        assert len(tx.list_keys(ACCOUNT, REGION, None, 1000)) == 80
        assert tx.get_generation() == 80


def test_rollback_on_exception(store: SqlStore) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), store.tx() as tx:
        tx.insert_key(make_key("k1"))
        tx.insert_material(make_material("k1", mid(1)))
        tx.put_tags(ACCOUNT, REGION, "k1", [TagRecord("a", "b")])
        tx.bump_generation()
        assert tx.get_key(ACCOUNT, REGION, "k1") is not None  # visible inside the transaction
        raise Boom
    with store.tx() as tx:
        assert tx.get_key(ACCOUNT, REGION, "k1") is None
        assert tx.list_materials(ACCOUNT, "k1") == []
        assert tx.list_tags(ACCOUNT, REGION, "k1") == []
        assert tx.get_generation() == 0


def test_transaction_usable_after_duplicate_error(store: SqlStore) -> None:
    with store.tx() as tx:
        tx.insert_key(make_key("k1"))
    with store.tx() as tx:
        with pytest.raises(DuplicateError):
            tx.insert_key(make_key("k1", description="again"))
        tx.insert_key(make_key("k2"))
    with store.tx() as tx:
        assert tx.get_key(ACCOUNT, REGION, "k1") == make_key("k1")
        assert tx.get_key(ACCOUNT, REGION, "k2") is not None


# -------------------------------------------------------------------------------------------- keys


def test_key_roundtrip_all_fields(store: SqlStore) -> None:
    key = make_key(
        "mrk-0123456789abcdef0123456789abcdef",
        description="d\u00e9scription \U0001f511" * 100,
        key_spec="RSA_4096",
        key_usage="SIGN_VERIFY",
        origin="EXTERNAL",
        key_manager="AWS",
        state=KeyState.PENDING_DELETION,
        policy='{"Statement":[]}' * 1000,
        multi_region=True,
        deletion_date=T0 + 7 * 86400.5,
        pending_window_days=7,
        rotation_enabled=True,
        rotation_period_days=90,
        next_rotation_at=T0 + 90 * 86400.125,
        current_material_id=mid(42),
        on_demand_rotations=3,
        version=5,
    )
    with store.tx() as tx:
        tx.insert_key(key)
    with store.tx() as tx:
        got = tx.get_key(ACCOUNT, REGION, key.key_id)
    assert got == key
    assert got is not None
    assert isinstance(got.state, KeyState)
    assert type(got.multi_region) is bool and type(got.rotation_enabled) is bool
    assert type(got.created_at) is float and type(got.version) is int


@pytest.mark.parametrize("state", list(KeyState))
def test_every_key_state_roundtrips(store: SqlStore, state: KeyState) -> None:
    with store.tx() as tx:
        tx.insert_key(make_key("k", state=state))
    with store.tx() as tx:
        got = tx.get_key(ACCOUNT, REGION, "k")
    assert got is not None and got.state is state


def test_get_missing_key_is_none(store: SqlStore) -> None:
    with store.tx() as tx:
        tx.insert_key(make_key("k1"))
        assert tx.get_key(ACCOUNT, REGION, "nope") is None
        assert tx.get_key(OTHER_ACCOUNT, REGION, "k1") is None
        assert tx.get_key(ACCOUNT, OTHER_REGION, "k1") is None


def test_duplicate_key_insert(store: SqlStore) -> None:
    with store.tx() as tx:
        tx.insert_key(make_key("k1"))
    with pytest.raises(DuplicateError), store.tx() as tx:
        tx.insert_key(make_key("k1", description="other"))
    # same key id in another region or account is a different key
    with store.tx() as tx:
        tx.insert_key(make_key("k1", region=OTHER_REGION))
        tx.insert_key(make_key("k1", account=OTHER_ACCOUNT))


def test_update_key_compare_and_set(store: SqlStore) -> None:
    with store.tx() as tx:
        tx.insert_key(make_key("k1"))
    with store.tx() as tx:
        updated = tx.update_key(
            make_key("k1", description="new", state=KeyState.DISABLED), expected_version=1
        )
    assert updated.version == 2
    assert updated == make_key("k1", description="new", state=KeyState.DISABLED, version=2)
    with store.tx() as tx:
        assert tx.get_key(ACCOUNT, REGION, "k1") == updated

    # stale writer loses, stored row unchanged
    with pytest.raises(ConflictError), store.tx() as tx:
        tx.update_key(make_key("k1", description="stale"), expected_version=1)
    with store.tx() as tx:
        assert tx.get_key(ACCOUNT, REGION, "k1") == updated
        assert tx.update_key(replace(updated, description="v3"), expected_version=2).version == 3
        # the record's own version field is ignored: expected_version decides
        assert tx.update_key(replace(updated, description="v4", version=99), expected_version=3).version == 4
        got = tx.get_key(ACCOUNT, REGION, "k1")
    assert got is not None and got.version == 4 and got.description == "v4"


def test_update_missing_key_conflicts(store: SqlStore) -> None:
    with pytest.raises(ConflictError), store.tx() as tx:
        tx.update_key(make_key("ghost"), expected_version=1)


def test_update_key_concurrent_writers_one_wins(open_store: Callable[..., SqlStore]) -> None:
    stores = [open_store(), open_store()]
    with stores[0].tx() as tx:
        tx.insert_key(make_key("k1"))
    barrier = threading.Barrier(8)

    def attempt(i: int) -> bool:
        barrier.wait()
        try:
            with stores[i % 2].tx() as tx:
                tx.update_key(make_key("k1", description=f"w{i}"), expected_version=1)
        except ConflictError:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(8)))
    assert results.count(True) == 1
    with stores[0].tx() as tx:
        got = tx.get_key(ACCOUNT, REGION, "k1")
    assert got is not None and got.version == 2


def test_get_key_in_a_write_tx_waits_for_a_concurrent_writer(open_store: Callable[..., SqlStore]) -> None:
    # The services read a key, check its state and compare-and-set it in one write transaction. A second
    # writer of the same key (another worker or node) must read the first one's commit, not the version
    # before it: on PostgreSQL it failed its compare-and-set and the request answered KMSInternalException.
    first, second = open_store(), open_store()
    with first.tx() as tx:
        tx.insert_key(make_key("k1"))
    holding, read_done = threading.Event(), threading.Event()
    seen: list[int] = []

    def other_writer() -> None:
        holding.wait(10)
        with second.tx() as tx:
            current = tx.get_key(ACCOUNT, REGION, "k1")
            assert current is not None
            seen.append(current.version)
            read_done.set()
            tx.update_key(replace(current, description="second"), expected_version=current.version)

    thread = threading.Thread(target=other_writer)
    thread.start()
    with first.tx() as tx:
        current = tx.get_key(ACCOUNT, REGION, "k1")
        assert current is not None
        tx.update_key(replace(current, description="first"), expected_version=current.version)
        holding.set()
        assert not read_done.wait(0.5)  # the other writer is still waiting for this transaction
    thread.join(10)
    assert seen == [2]
    with first.read() as tx:
        got = tx.get_key(ACCOUNT, REGION, "k1")
    assert got is not None and got.version == 3 and got.description == "second"


def test_delete_key_cascades(store: SqlStore) -> None:
    with store.tx() as tx:
        for key_id in ("k1", "k2"):
            tx.insert_key(make_key(key_id))
            tx.insert_material(make_material(key_id, mid(1)))
            tx.insert_material(make_material(key_id, mid(2)))
            tx.insert_alias(make_alias(f"alias/{key_id}-a", key_id))
            tx.insert_alias(make_alias(f"alias/{key_id}-b", key_id))
            tx.put_tags(ACCOUNT, REGION, key_id, [TagRecord("t", key_id)])
    with store.tx() as tx:
        tx.delete_key(ACCOUNT, REGION, "k1")
    with store.tx() as tx:
        assert tx.get_key(ACCOUNT, REGION, "k1") is None
        assert tx.list_materials(ACCOUNT, "k1") == []
        assert tx.get_material(ACCOUNT, "k1", mid(1)) is None
        assert tx.list_aliases(ACCOUNT, REGION, "k1", None, 100) == []
        assert tx.get_alias(ACCOUNT, REGION, "alias/k1-a") is None
        assert tx.list_tags(ACCOUNT, REGION, "k1") == []
        # the other key is untouched
        assert tx.get_key(ACCOUNT, REGION, "k2") is not None
        assert len(tx.list_materials(ACCOUNT, "k2")) == 2
        assert tx.count_aliases_for_key(ACCOUNT, REGION, "k2") == 2
        assert tx.list_tags(ACCOUNT, REGION, "k2") == [TagRecord("t", "k2")]
        tx.delete_key(ACCOUNT, REGION, "missing")  # no-op


def test_delete_multi_region_replica_keeps_shared_material(store: SqlStore) -> None:
    """Materials are keyed by (account, key_id): multi-region replicas share them, so they go with the
    last region's key row."""
    key_id = "mrk-00000000000000000000000000000001"
    with store.tx() as tx:
        tx.insert_key(make_key(key_id, multi_region=True))
        tx.insert_key(make_key(key_id, region=OTHER_REGION, multi_region=True))
        tx.insert_material(make_material(key_id, mid(1)))
        tx.insert_alias(make_alias("alias/primary", key_id))
        tx.insert_alias(make_alias("alias/replica", key_id, region=OTHER_REGION))
    with store.tx() as tx:
        tx.delete_key(ACCOUNT, OTHER_REGION, key_id)
    with store.tx() as tx:
        assert [m.material_id for m in tx.list_materials(ACCOUNT, key_id)] == [mid(1)]
        assert tx.get_alias(ACCOUNT, REGION, "alias/primary") is not None
        assert tx.get_alias(ACCOUNT, OTHER_REGION, "alias/replica") is None
        tx.delete_key(ACCOUNT, REGION, key_id)
    with store.tx() as tx:
        assert tx.list_materials(ACCOUNT, key_id) == []


def test_list_keys_order_and_pagination(store: SqlStore) -> None:
    ids = [f"{n:08x}-0000-0000-0000-000000000000" for n in (5, 1, 9, 3, 7, 2)]
    with store.tx() as tx:
        for key_id in ids:
            tx.insert_key(make_key(key_id))
        tx.insert_key(make_key("00000000-other-region", region=OTHER_REGION))
        tx.insert_key(make_key("00000000-other-account", account=OTHER_ACCOUNT))
    expected = sorted(ids)
    with store.tx() as tx:
        assert [k.key_id for k in tx.list_keys(ACCOUNT, REGION, None, 100)] == expected
        pages: list[list[str]] = []
        after: str | None = None
        while True:
            page = [k.key_id for k in tx.list_keys(ACCOUNT, REGION, after, 4)]
            if not page:
                break
            pages.append(page)
            after = page[-1]
        assert pages == [expected[:4], expected[4:]]
        # strictly after, even for an id that does not exist
        assert [k.key_id for k in tx.list_keys(ACCOUNT, REGION, expected[2], 1)] == [expected[3]]
        assert [k.key_id for k in tx.list_keys(ACCOUNT, REGION, expected[2] + "x", 10)] == expected[3:]
        assert tx.list_keys(ACCOUNT, REGION, expected[-1], 10) == []
        assert tx.list_keys("999999999999", REGION, None, 10) == []
        assert tx.count_keys(ACCOUNT, REGION) == len(ids)
        assert tx.count_keys(ACCOUNT, OTHER_REGION) == 1
        assert tx.count_keys("999999999999", REGION) == 0


def test_keys_due_for_rotation(store: SqlStore) -> None:
    now = T0 + 1000
    due: dict[str, Any] = dict(rotation_enabled=True, rotation_period_days=365)
    with store.tx() as tx:
        tx.insert_key(make_key("due-late", next_rotation_at=now - 500, **due))
        tx.insert_key(make_key("due-exact", next_rotation_at=now, **due))
        tx.insert_key(make_key("due-other-acct", account=OTHER_ACCOUNT, next_rotation_at=now - 100, **due))
        tx.insert_key(make_key("due-other-region", region=OTHER_REGION, next_rotation_at=now - 200, **due))
        tx.insert_key(make_key("future", next_rotation_at=now + 0.5, **due))
        tx.insert_key(make_key("no-date", **due))
        tx.insert_key(make_key("rotation-off", rotation_enabled=False, next_rotation_at=now - 900))
        tx.insert_key(make_key("disabled", state=KeyState.DISABLED, next_rotation_at=now - 900, **due))
        tx.insert_key(make_key("pending", state=KeyState.PENDING_DELETION, next_rotation_at=now - 900, **due))
    with store.tx() as tx:
        got = [k.key_id for k in tx.keys_due_for_rotation(now, 100)]
        assert sorted(got) == ["due-exact", "due-late", "due-other-acct", "due-other-region"]
        assert got == ["due-late", "due-other-region", "due-other-acct", "due-exact"]  # most overdue first
        assert len(tx.keys_due_for_rotation(now, 2)) == 2
        assert tx.keys_due_for_rotation(T0, 100) == []
        assert all(isinstance(k, KeyRecord) for k in tx.keys_due_for_rotation(now, 100))


def test_keys_due_for_deletion(store: SqlStore) -> None:
    now = T0 + 1000
    pending: dict[str, Any] = dict(state=KeyState.PENDING_DELETION, pending_window_days=7)
    with store.tx() as tx:
        tx.insert_key(make_key("late", deletion_date=now - 10, **pending))
        tx.insert_key(make_key("exact", deletion_date=now, **pending))
        tx.insert_key(make_key("other-acct", account=OTHER_ACCOUNT, deletion_date=now - 5, **pending))
        tx.insert_key(make_key("future", deletion_date=now + 1, **pending))
        tx.insert_key(make_key("enabled-with-date", deletion_date=now - 100))
        tx.insert_key(
            make_key("replica-pending", state=KeyState.PENDING_REPLICA_DELETION, deletion_date=now - 100)
        )
    with store.tx() as tx:
        assert [k.key_id for k in tx.keys_due_for_deletion(now, 100)] == ["late", "other-acct", "exact"]
        assert [k.key_id for k in tx.keys_due_for_deletion(now, 1)] == ["late"]
        assert tx.keys_due_for_deletion(T0, 100) == []


# --------------------------------------------------------------------------------------- materials


def test_material_roundtrip_and_duplicate(store: SqlStore) -> None:
    symmetric = make_material("k1", mid(1))
    asymmetric = make_material(
        "k1",
        mid(2),
        created_at=T0 + 1,
        ekt=None,
        root_key_version=2,
        state=MaterialState.PENDING_ROTATION,
        rotation_type="ON_DEMAND",
        rotation_date=T0 + 1.5,
        public_key=bytes(range(256)) * 2,
    )
    with store.tx() as tx:
        tx.insert_material(symmetric)
        tx.insert_material(asymmetric)
    with store.tx() as tx:
        assert tx.get_material(ACCOUNT, "k1", mid(1)) == symmetric
        assert tx.get_material(ACCOUNT, "k1", mid(2)) == asymmetric
        assert tx.get_material(ACCOUNT, "k1", mid(3)) is None
        assert tx.get_material(OTHER_ACCOUNT, "k1", mid(1)) is None
        assert tx.get_material(ACCOUNT, "k2", mid(1)) is None
    with pytest.raises(DuplicateError), store.tx() as tx:
        tx.insert_material(replace(symmetric, ekt=b"different"))
    with store.tx() as tx:
        tx.insert_material(make_material("k2", mid(1)))  # same material id under another key is fine
        assert tx.get_material(ACCOUNT, "k1", mid(1)) == symmetric


def test_list_materials_oldest_first(store: SqlStore) -> None:
    with store.tx() as tx:
        tx.insert_material(make_material("k1", mid(9), created_at=T0 + 20))
        tx.insert_material(make_material("k1", mid(5), created_at=T0))
        tx.insert_material(make_material("k1", mid(7), created_at=T0 + 10))
        # same timestamp: insertion order decides, not the (random) material id
        tx.insert_material(make_material("k1", mid(3), created_at=T0 + 30))
        tx.insert_material(make_material("k1", mid(1), created_at=T0 + 30))
        tx.insert_material(make_material("k2", mid(2)))
        tx.insert_material(make_material("k1", mid(4), account=OTHER_ACCOUNT))
    with store.tx() as tx:
        tx.insert_material(make_material("k1", mid(0), created_at=T0 + 30))
    with store.tx() as tx:
        assert [m.material_id for m in tx.list_materials(ACCOUNT, "k1")] == [
            mid(5),
            mid(7),
            mid(9),
            mid(3),
            mid(1),
            mid(0),
        ]
        assert tx.list_materials(ACCOUNT, "nope") == []


def test_set_material_state(store: SqlStore) -> None:
    with store.tx() as tx:
        tx.insert_material(make_material("k1", mid(1)))
        tx.insert_material(
            make_material("k1", mid(2), created_at=T0 + 1, state=MaterialState.PENDING_ROTATION)
        )
    with store.tx() as tx:
        tx.set_material_state(ACCOUNT, "k1", mid(1), MaterialState.NON_CURRENT)
        tx.set_material_state(ACCOUNT, "k1", mid(2), MaterialState.CURRENT)
        tx.set_material_state(ACCOUNT, "k1", mid(3), MaterialState.CURRENT)  # missing: no-op
    with store.tx() as tx:
        states = {m.material_id: m.state for m in tx.list_materials(ACCOUNT, "k1")}
    assert states == {mid(1): MaterialState.NON_CURRENT, mid(2): MaterialState.CURRENT}


# ----------------------------------------------------------------------------------------- aliases


def test_alias_crud(store: SqlStore) -> None:
    alias = make_alias("alias/app", "k1")
    with store.tx() as tx:
        tx.insert_alias(alias)
    with store.tx() as tx:
        assert tx.get_alias(ACCOUNT, REGION, "alias/app") == alias
        assert tx.get_alias(ACCOUNT, OTHER_REGION, "alias/app") is None
        assert tx.get_alias(OTHER_ACCOUNT, REGION, "alias/app") is None
    with pytest.raises(DuplicateError), store.tx() as tx:
        tx.insert_alias(make_alias("alias/app", "k2"))
    with store.tx() as tx:
        tx.insert_alias(make_alias("alias/app", "k2", region=OTHER_REGION))
        moved = AliasRecord(ACCOUNT, REGION, "alias/app", "k2", created_at=T0 + 99, updated_at=T0 + 5)
        tx.update_alias(moved)
    with store.tx() as tx:
        # created_at is immutable, target and updated_at change
        assert tx.get_alias(ACCOUNT, REGION, "alias/app") == replace(moved, created_at=T0)
        tx.delete_alias(ACCOUNT, REGION, "alias/app")
        tx.delete_alias(ACCOUNT, REGION, "alias/missing")  # no-op
    with store.tx() as tx:
        assert tx.get_alias(ACCOUNT, REGION, "alias/app") is None
        assert tx.get_alias(ACCOUNT, OTHER_REGION, "alias/app") is not None


def test_list_aliases_filter_order_pagination(store: SqlStore) -> None:
    targets = {"alias/e": "k1", "alias/a": "k2", "alias/d": "k1", "alias/b": "k1", "alias/c": "k2"}
    with store.tx() as tx:
        for name, key_id in targets.items():
            tx.insert_alias(make_alias(name, key_id))
        tx.insert_alias(make_alias("alias/0", "k1", region=OTHER_REGION))
        tx.insert_alias(make_alias("alias/0", "k1", account=OTHER_ACCOUNT))
    with store.tx() as tx:

        def names(key_id: str | None, after: str | None, limit: int = 100) -> list[str]:
            return [a.name for a in tx.list_aliases(ACCOUNT, REGION, key_id, after, limit)]

        assert names(None, None) == ["alias/a", "alias/b", "alias/c", "alias/d", "alias/e"]
        assert names(None, None, 2) == ["alias/a", "alias/b"]
        assert names(None, "alias/b", 2) == ["alias/c", "alias/d"]
        assert names(None, "alias/e") == []
        assert names("k1", None) == ["alias/b", "alias/d", "alias/e"]
        assert names("k1", "alias/b", 1) == ["alias/d"]
        assert names("k2", "alias/a") == ["alias/c"]
        assert names("k3", None) == []
        assert tx.count_aliases_for_key(ACCOUNT, REGION, "k1") == 3
        assert tx.count_aliases_for_key(ACCOUNT, REGION, "k2") == 2
        assert tx.count_aliases_for_key(ACCOUNT, REGION, "k3") == 0
        assert tx.count_aliases_for_key(ACCOUNT, OTHER_REGION, "k1") == 1
        assert all(isinstance(a, AliasRecord) for a in tx.list_aliases(ACCOUNT, REGION, None, None, 10))


# -------------------------------------------------------------------------------------------- tags


def test_tags(store: SqlStore) -> None:
    with store.tx() as tx:
        assert tx.list_tags(ACCOUNT, REGION, "k1") == []
        tx.put_tags(
            ACCOUNT, REGION, "k1", [TagRecord("zeta", "1"), TagRecord("alpha", "2"), TagRecord("mu", "")]
        )
        tx.put_tags(ACCOUNT, REGION, "k2", [TagRecord("alpha", "other key")])
        tx.put_tags(ACCOUNT, OTHER_REGION, "k1", [TagRecord("alpha", "other region")])
    with store.tx() as tx:
        assert tx.list_tags(ACCOUNT, REGION, "k1") == [
            TagRecord("alpha", "2"),
            TagRecord("mu", ""),
            TagRecord("zeta", "1"),
        ]
        # insert or replace
        tx.put_tags(ACCOUNT, REGION, "k1", [TagRecord("alpha", "replaced"), TagRecord("beta", "new")])
        tx.put_tags(ACCOUNT, REGION, "k1", [])
    with store.tx() as tx:
        assert tx.list_tags(ACCOUNT, REGION, "k1") == [
            TagRecord("alpha", "replaced"),
            TagRecord("beta", "new"),
            TagRecord("mu", ""),
            TagRecord("zeta", "1"),
        ]
        tx.delete_tags(ACCOUNT, REGION, "k1", ["zeta", "mu", "not-there"])
        tx.delete_tags(ACCOUNT, REGION, "k1", [])
    with store.tx() as tx:
        assert tx.list_tags(ACCOUNT, REGION, "k1") == [
            TagRecord("alpha", "replaced"),
            TagRecord("beta", "new"),
        ]
        assert tx.list_tags(ACCOUNT, REGION, "k2") == [TagRecord("alpha", "other key")]
        assert tx.list_tags(ACCOUNT, OTHER_REGION, "k1") == [TagRecord("alpha", "other region")]


def test_put_tags_same_key_twice_last_wins(store: SqlStore) -> None:
    with store.tx() as tx:
        tx.put_tags(ACCOUNT, REGION, "k1", [TagRecord("a", "1"), TagRecord("a", "2")])
        assert tx.list_tags(ACCOUNT, REGION, "k1") == [TagRecord("a", "2")]


# ------------------------------------------------------------------------------------- credentials


def test_access_keys(store: SqlStore) -> None:
    records = [
        AccessKeyRecord(
            "AKIAZZZ",
            ACCOUNT,
            "bob",
            f"arn:aws:iam::{ACCOUNT}:user/bob",
            b"\x01\x02",
            1,
            T0,
            principal_type="User",
        ),
        AccessKeyRecord(
            "AKIAAAA",
            OTHER_ACCOUNT,
            "al",
            f"arn:aws:iam::{OTHER_ACCOUNT}:root",
            b"\xff" * 60,
            2,
            T0 + 1,
            False,
            principal_type="Root",
        ),
    ]
    with store.tx() as tx:
        assert tx.list_access_keys() == []
        assert tx.get_access_key("AKIAZZZ") is None
        for record in records:
            tx.insert_access_key(record)
    with pytest.raises(DuplicateError), store.tx() as tx:
        tx.insert_access_key(replace(records[0], user_name="mallory"))
    with store.tx() as tx:
        assert tx.get_access_key("AKIAZZZ") == records[0]
        assert tx.get_access_key("AKIAAAA") == records[1]
        assert tx.list_access_keys() == [records[1], records[0]]  # ordered by id
        assert tx.delete_access_key("AKIAZZZ") is True
        assert tx.delete_access_key("AKIAZZZ") is False
        assert tx.delete_access_key("never") is False
    with store.tx() as tx:
        assert tx.list_access_keys() == [records[1]]


def test_root_keys(store: SqlStore) -> None:
    with store.tx() as tx:
        assert tx.latest_root_key() is None
        assert tx.get_root_key(1) is None
        tx.insert_root_key(RootKeyRecord(1, "file", b"wrapped-1", T0))
        tx.insert_root_key(RootKeyRecord(3, "shamir", b"wrapped-3", T0 + 2))
        tx.insert_root_key(RootKeyRecord(2, "file", b"wrapped-2", T0 + 1))
    with pytest.raises(DuplicateError), store.tx() as tx:
        tx.insert_root_key(RootKeyRecord(2, "file", b"other", T0))
    with store.tx() as tx:
        assert tx.get_root_key(2) == RootKeyRecord(2, "file", b"wrapped-2", T0 + 1)
        assert tx.latest_root_key() == RootKeyRecord(3, "shamir", b"wrapped-3", T0 + 2)
        assert tx.get_root_key(4) is None


# ------------------------------------------------------------------------------------ coordination


def test_lease_exclusive_renew_and_takeover(store: SqlStore) -> None:
    with store.tx() as tx:
        assert tx.try_acquire_lease("rotation", "node-a", now=T0, ttl=30) is True
        assert tx.try_acquire_lease("rotation", "node-b", now=T0 + 1, ttl=30) is False
        assert tx.try_acquire_lease("deletion", "node-b", now=T0 + 1, ttl=30) is True  # other lease
    with store.tx() as tx:
        # renewal by the owner extends the lease
        assert tx.try_acquire_lease("rotation", "node-a", now=T0 + 20, ttl=30) is True
        assert tx.try_acquire_lease("rotation", "node-b", now=T0 + 40, ttl=30) is False
        # expired (expires_at <= now): anyone may take it over
        assert tx.try_acquire_lease("rotation", "node-b", now=T0 + 50, ttl=30) is True
        assert tx.try_acquire_lease("rotation", "node-a", now=T0 + 51, ttl=30) is False
        assert tx.try_acquire_lease("rotation", "node-b", now=T0 + 51, ttl=30) is True


def test_lease_rolled_back_with_transaction(store: SqlStore) -> None:
    with pytest.raises(RuntimeError), store.tx() as tx:
        assert tx.try_acquire_lease("job", "node-a", now=T0, ttl=30)
        raise RuntimeError
    with store.tx() as tx:
        assert tx.try_acquire_lease("job", "node-b", now=T0, ttl=30) is True


def test_lease_race_across_stores(open_store: Callable[..., SqlStore]) -> None:
    stores = [open_store(), open_store()]
    contenders = 8
    for round_no in range(5):
        barrier = threading.Barrier(contenders)
        name = f"lease-{round_no}"

        def attempt(i: int, name: str = name, barrier: threading.Barrier = barrier) -> bool:
            barrier.wait()
            with stores[i % 2].tx() as tx:
                return tx.try_acquire_lease(name, f"owner-{i}", now=T0, ttl=60)

        with ThreadPoolExecutor(contenders) as pool:
            results = list(pool.map(attempt, range(contenders)))
        assert results.count(True) == 1, results
        # after expiry exactly one newcomer takes over
        barrier = threading.Barrier(contenders)

        def takeover(i: int, name: str = name, barrier: threading.Barrier = barrier) -> bool:
            barrier.wait()
            with stores[i % 2].tx() as tx:
                return tx.try_acquire_lease(name, f"late-{i}", now=T0 + 61, ttl=60)

        with ThreadPoolExecutor(contenders) as pool:
            assert list(pool.map(takeover, range(contenders))).count(True) == 1


def test_generation(store: SqlStore) -> None:
    with store.tx() as tx:
        assert tx.get_generation() == 0
        assert tx.bump_generation() == 1
        assert tx.bump_generation() == 2
        assert tx.get_generation() == 2
    with store.tx() as tx:
        assert tx.get_generation() == 2


def test_generation_concurrent_bumps(open_store: Callable[..., SqlStore]) -> None:
    stores = [open_store(), open_store()]
    threads, per_thread = 8, 25
    barrier = threading.Barrier(threads)

    def worker(i: int) -> list[int]:
        barrier.wait()
        seen = []
        for _ in range(per_thread):
            with stores[i % 2].tx() as tx:
                seen.append(tx.bump_generation())
        return seen

    with ThreadPoolExecutor(threads) as pool:
        values = [v for seen in pool.map(worker, range(threads)) for v in seen]
    total = threads * per_thread
    assert sorted(values) == list(range(1, total + 1))
    with stores[0].tx() as tx:
        assert tx.get_generation() == total


# ------------------------------------------------------------------------------ dialect specifics


def test_sqlite_file_is_private_and_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "kms.db"
    url = f"sqlite:///{path}"
    old_umask = os.umask(0o022)
    try:
        upgrade_database(url)
        store = SqlStore(url, sqlite_synchronous="NORMAL")
    finally:
        os.umask(old_umask)
    try:
        with store.tx() as tx:
            tx.insert_key(make_key("k1"))
            conn = tx.connection
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000
        for name in ("kms.db", "kms.db-wal", "kms.db-shm"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    finally:
        store.close()
    default = SqlStore(url)
    try:
        with default.tx() as tx:
            assert tx.connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    finally:
        default.close()


def test_sqlite_rejects_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sqlite_synchronous"):
        SqlStore(f"sqlite:///{tmp_path / 'a.db'}", sqlite_synchronous="FULL; DROP TABLE keys")
    with pytest.raises(ValueError):
        SqlStore("sqlite://")
    with pytest.raises(ValueError):
        SqlStore("sqlite:///:memory:")
    with pytest.raises(ValueError, match="schema"):
        SqlStore(f"sqlite:///{tmp_path / 'a.db'}", schema="x")


def test_sqlite_transactions_begin_immediate(tmp_path: Path) -> None:
    """A transaction holds the write lock from its start: a second read-then-write transaction waits for
    the first to commit instead of both reading and then one failing with SQLITE_BUSY."""
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    upgrade_database(url)
    stores = [SqlStore(url), SqlStore(url)]
    try:
        with stores[0].tx() as tx:
            tx.insert_key(make_key("k1"))
        first_inside = threading.Event()
        marks: dict[str, float] = {}

        def first() -> int:
            with stores[0].tx() as tx:
                key = tx.get_key(ACCOUNT, REGION, "k1")
                assert key is not None
                first_inside.set()
                time.sleep(0.3)
                version = tx.update_key(key, expected_version=key.version).version
                marks["first_done"] = time.monotonic()
            return version

        def second() -> int:
            first_inside.wait()
            with stores[1].tx() as tx:
                marks["second_started"] = time.monotonic()
                key = tx.get_key(ACCOUNT, REGION, "k1")
                assert key is not None
                return tx.update_key(key, expected_version=key.version).version

        with ThreadPoolExecutor(2) as pool:
            a, b = pool.submit(first), pool.submit(second)
            assert (a.result(), b.result()) == (2, 3)
        assert marks["second_started"] >= marks["first_done"]
    finally:
        for store in stores:
            store.close()


def test_postgres_schema_isolation(pg_session_schema: tuple[str, str]) -> None:
    url, schema = pg_session_schema
    store = SqlStore(url, schema=schema)
    try:
        assert store.dialect == "postgresql"
        with store.tx() as tx:
            assert tx.connection.exec_driver_sql("SELECT current_schema()").scalar() == schema
            assert tx.connection.exec_driver_sql("SHOW search_path").scalar() == schema
    finally:
        store.close()
    with pytest.raises(ValueError, match="invalid schema"):
        SqlStore(url, schema='x"; DROP SCHEMA public; --')
