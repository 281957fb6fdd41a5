"""``Tx`` grant methods on SQLite and PostgreSQL (fixtures in ``storage_fixtures.py``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from tests.integration.test_storage_conformance import (
    ACCOUNT,
    OTHER_ACCOUNT,
    OTHER_REGION,
    REGION,
    T0,
    make_key,
    make_material,
)

from openkms.storage.base import AliasRecord, DuplicateError, GrantRecord, TagRecord
from openkms.storage.sql import SqlStore

pytest_plugins = ["tests.integration.storage_fixtures"]

KEY = "11111111-1111-1111-1111-111111111111"
KEY2 = "22222222-2222-2222-2222-222222222222"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{OTHER_ACCOUNT}:role/bob"


def gid(n: int) -> str:
    return f"{n:064x}"


def make_grant(
    n: int, key_id: str = KEY, account: str = ACCOUNT, region: str = REGION, **changes: Any
) -> GrantRecord:
    grant = GrantRecord(
        grant_id=gid(n),
        account=account,
        region=region,
        key_id=key_id,
        name="",
        created_at=T0 + n,
        issuing_account=account,
        operations=("Encrypt", "Decrypt"),
        grantee_principal=ALICE,
    )
    return replace(grant, **changes)


def test_insert_get_roundtrip_all_fields(store: SqlStore) -> None:
    full = make_grant(
        1,
        name="my/grant:1",
        operations=("Decrypt", "RetireGrant", "CreateGrant"),
        grantee_principal=None,
        grantee_service_principal="logs.us-east-1.amazonaws.com",
        retiring_principal=BOB,
        constraints='{"EncryptionContextSubset":{"a":"b"}}',
    )
    other = make_grant(2, retiring_service_principal="s3.amazonaws.com")
    with store.tx() as tx:
        tx.insert_grant(full)
        tx.insert_grant(other)
    with store.read() as tx:
        assert tx.get_grant(ACCOUNT, REGION, KEY, gid(1)) == full
        assert tx.get_grant(ACCOUNT, REGION, KEY, gid(2)) == other
        # the key coordinates are part of the lookup: a grant id under another key is not found
        assert tx.get_grant(ACCOUNT, REGION, KEY2, gid(1)) is None
        assert tx.get_grant(OTHER_ACCOUNT, REGION, KEY, gid(1)) is None
        assert tx.get_grant(ACCOUNT, OTHER_REGION, KEY, gid(1)) is None
        assert tx.get_grant(ACCOUNT, REGION, KEY, gid(3)) is None


def test_duplicate_grant_id_raises(store: SqlStore) -> None:
    with store.tx() as tx:
        tx.insert_grant(make_grant(1))
    with pytest.raises(DuplicateError), store.tx() as tx:
        tx.insert_grant(make_grant(1, key_id=KEY2))
    with store.read() as tx:
        assert tx.count_grants(ACCOUNT, REGION, KEY2) == 0


def test_list_by_key_filters_and_pagination(store: SqlStore) -> None:
    with store.tx() as tx:
        for n in (5, 3, 1, 4, 2):
            tx.insert_grant(make_grant(n, name="n1" if n % 2 else ""))
        tx.insert_grant(make_grant(6, grantee_principal=BOB))
        tx.insert_grant(make_grant(7, grantee_principal=None, grantee_service_principal="a.amazonaws.com"))
        tx.insert_grant(make_grant(8, key_id=KEY2))
        tx.insert_grant(make_grant(9, account=OTHER_ACCOUNT))
        tx.insert_grant(make_grant(10, region=OTHER_REGION))
    with store.read() as tx:
        ids = [g.grant_id for g in tx.list_grants(ACCOUNT, REGION, KEY)]
        assert ids == [gid(n) for n in range(1, 8)]
        page = tx.list_grants(ACCOUNT, REGION, KEY, limit=3)
        assert [g.grant_id for g in page] == [gid(1), gid(2), gid(3)]
        rest = tx.list_grants(ACCOUNT, REGION, KEY, after_grant_id=page[-1].grant_id, limit=10)
        assert [g.grant_id for g in rest] == [gid(n) for n in range(4, 8)]
        assert [g.grant_id for g in tx.list_grants(ACCOUNT, REGION, KEY, grant_id=gid(4))] == [gid(4)]
        assert tx.list_grants(ACCOUNT, REGION, KEY, grant_id=gid(8)) == []
        assert [g.grant_id for g in tx.list_grants(ACCOUNT, REGION, KEY, grantee_principal=BOB)] == [gid(6)]
        by_service = tx.list_grants(ACCOUNT, REGION, KEY, grantee_service_principal="a.amazonaws.com")
        assert [g.grant_id for g in by_service] == [gid(7)]
        named = tx.list_grants(ACCOUNT, REGION, KEY, name="n1", grantee_principal=ALICE)
        assert [g.grant_id for g in named] == [gid(1), gid(3), gid(5)]
        assert tx.count_grants(ACCOUNT, REGION, KEY) == 7
        assert tx.count_grants(ACCOUNT, REGION, KEY2) == 1


def test_list_retirable_spans_accounts_within_region(store: SqlStore) -> None:
    with store.tx() as tx:
        tx.insert_grant(make_grant(1, retiring_principal=BOB))
        tx.insert_grant(make_grant(2, account=OTHER_ACCOUNT, key_id=KEY2, retiring_principal=BOB))
        tx.insert_grant(make_grant(3, region=OTHER_REGION, retiring_principal=BOB))
        tx.insert_grant(make_grant(4, retiring_principal=ALICE))
        tx.insert_grant(make_grant(5, retiring_service_principal="s3.amazonaws.com"))
        tx.insert_grant(make_grant(6))
    with store.read() as tx:
        found = tx.list_retirable_grants(REGION, retiring_principal=BOB, limit=10)
        assert [g.grant_id for g in found] == [gid(1), gid(2)]
        first = tx.list_retirable_grants(REGION, retiring_principal=BOB, limit=1)
        assert [g.grant_id for g in first] == [gid(1)]
        after = tx.list_retirable_grants(REGION, retiring_principal=BOB, after_grant_id=gid(1), limit=1)
        assert [g.grant_id for g in after] == [gid(2)]
        service = tx.list_retirable_grants(REGION, retiring_service_principal="s3.amazonaws.com", limit=10)
        assert [g.grant_id for g in service] == [gid(5)]
        assert tx.list_retirable_grants(REGION, limit=10) == []


def test_delete_grant(store: SqlStore) -> None:
    with store.tx() as tx:
        tx.insert_grant(make_grant(1))
        tx.insert_grant(make_grant(2))
    with store.tx() as tx:
        assert tx.delete_grant(ACCOUNT, REGION, KEY2, gid(1)) is False  # wrong key: nothing deleted
        assert tx.delete_grant(ACCOUNT, REGION, KEY, gid(1)) is True
        assert tx.delete_grant(ACCOUNT, REGION, KEY, gid(1)) is False
    with store.read() as tx:
        assert [g.grant_id for g in tx.list_grants(ACCOUNT, REGION, KEY)] == [gid(2)]


def test_rollback_discards_grant(store: SqlStore) -> None:
    with pytest.raises(RuntimeError), store.tx() as tx:
        tx.insert_grant(make_grant(1))
        raise RuntimeError("abort")
    with store.read() as tx:
        assert tx.get_grant(ACCOUNT, REGION, KEY, gid(1)) is None


def test_delete_key_deletes_its_grants_only(store: SqlStore) -> None:
    with store.tx() as tx:
        tx.insert_key(make_key(KEY))
        tx.insert_key(make_key(KEY2))
        tx.insert_material(make_material(KEY, "a" * 64))
        tx.insert_alias(AliasRecord(ACCOUNT, REGION, "alias/x", KEY, T0, T0))
        tx.put_tags(ACCOUNT, REGION, KEY, [TagRecord("k", "v")])
        tx.insert_grant(make_grant(1))
        tx.insert_grant(make_grant(2, retiring_principal=BOB))
        tx.insert_grant(make_grant(3, key_id=KEY2))
    with store.tx() as tx:
        tx.delete_key(ACCOUNT, REGION, KEY)
    with store.read() as tx:
        assert tx.list_grants(ACCOUNT, REGION, KEY) == []
        assert tx.count_grants(ACCOUNT, REGION, KEY) == 0
        assert tx.list_retirable_grants(REGION, retiring_principal=BOB, limit=10) == []
        assert [g.grant_id for g in tx.list_grants(ACCOUNT, REGION, KEY2)] == [gid(3)]
