"""Storage of identities (accounts, IAM users and roles, tags, identity policies, principal-typed access
keys) on SQLite and PostgreSQL, and the 0003 migration of access keys that existed before it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text

from openkms.storage.base import (
    AccessKeyRecord,
    AccountRecord,
    DuplicateError,
    IamPrincipalRecord,
    IdentityPolicyRecord,
    TagRecord,
)
from openkms.storage.migrate import upgrade_database
from openkms.storage.sql import SqlStore, create_sql_engine

pytest_plugins = ["tests.integration.storage_fixtures"]

A = "111122223333"
B = "444455556666"
T0 = 1_700_000_000.5


def user(name: str, account: str = A, path: str = "/", pid: str | None = None) -> IamPrincipalRecord:
    return IamPrincipalRecord(
        account, "user", name, path, pid or f"AIDA{name.upper():X<17}"[:21],
        f"arn:aws:iam::{account}:user{path}{name}", T0,
    )  # fmt: skip


def role(name: str, account: str = A) -> IamPrincipalRecord:
    return IamPrincipalRecord(
        account, "role", name, "/", f"AROA{name.upper():X<17}"[:21], f"arn:aws:iam::{account}:role/{name}", T0
    )


def test_accounts(store: SqlStore) -> None:
    with store.tx() as tx:
        assert tx.list_accounts() == []
        tx.put_account(AccountRecord(B, "prod", T0))
        tx.put_account(AccountRecord(A, "dev", T0))
        assert tx.get_account(A) == AccountRecord(A, "dev", T0)
        tx.put_account(AccountRecord(A, "development", T0 + 5))  # renames, keeps created_at
    with store.tx() as tx:
        assert tx.get_account(A) == AccountRecord(A, "development", T0)
        assert [a.account for a in tx.list_accounts()] == [A, B]
        assert tx.get_account("000000000000") is None


def test_principals_case_insensitive_unique(store: SqlStore) -> None:
    alice = user("Alice", path="/eng/")
    with store.tx() as tx:
        tx.insert_iam_principal(alice)
        tx.insert_iam_principal(role("alice"))  # another kind: no clash
        tx.insert_iam_principal(user("alice", account=B, pid="AIDAOTHERACCOUNT00001"))
    with pytest.raises(DuplicateError), store.tx() as tx:
        tx.insert_iam_principal(user("ALICE", pid="AIDADIFFERENTID000001"))
    with pytest.raises(DuplicateError), store.tx() as tx:  # principal ids are unique across the store
        tx.insert_iam_principal(user("bob", pid=alice.principal_id))
    with store.read() as tx:
        assert tx.get_iam_principal(A, "user", "aLiCe") == alice
        assert tx.get_iam_principal(A, "role", "ALICE") == role("alice")
        assert tx.get_iam_principal(A, "user", "bob") is None
        listed = [(p.account, p.kind, p.name) for p in tx.list_iam_principals(None, None)]
        assert listed == [(A, "role", "alice"), (A, "user", "Alice"), (B, "user", "alice")]
        assert [p.kind for p in tx.list_iam_principals(A, None)] == ["role", "user"]
        assert tx.list_iam_principals(None, "role") == [role("alice")]
        assert [p.account for p in tx.list_iam_principals(B, "user")] == [B]


def test_update_and_delete_principal_cascades_tags_and_policies(store: SqlStore) -> None:
    with store.tx() as tx:
        tx.insert_iam_principal(user("carol"))
        tx.insert_iam_principal(role("app"))
        tx.put_iam_principal_tags(A, "user", "CAROL", [TagRecord("team", "blue"), TagRecord("env", "dev")])
        tx.put_iam_principal_tags(A, "role", "app", [TagRecord("team", "red")])
        tx.put_identity_policy(IdentityPolicyRecord(A, "user", "carol", "p1", '{"Statement":[]}', T0))
        tx.put_identity_policy(IdentityPolicyRecord(A, "role", "app", "p1", "{}", T0))
        moved = replace(user("carol"), path="/x/", arn=f"arn:aws:iam::{A}:user/x/carol")
        assert tx.update_iam_principal(moved) is True
        assert tx.update_iam_principal(user("nobody")) is False
    with store.tx() as tx:
        assert tx.get_iam_principal(A, "user", "carol") == moved
        assert tx.delete_iam_principal(A, "user", "Carol") is True
        assert tx.delete_iam_principal(A, "user", "carol") is False
    with store.read() as tx:
        assert tx.list_iam_principal_tags(A, "user", "carol") == []
        assert tx.list_identity_policies(A, "user", "carol") == []
        # the role of the same account keeps its own
        assert tx.list_iam_principal_tags(A, "role", "app") == [TagRecord("team", "red")]
        assert len(tx.list_identity_policies(A, "role", "app")) == 1


def test_principal_tags(store: SqlStore) -> None:
    with store.tx() as tx:
        tx.insert_iam_principal(user("dan"))
        assert tx.list_iam_principal_tags(A, "user", "dan") == []
        tx.put_iam_principal_tags(
            A, "user", "dan", [TagRecord("b", "1"), TagRecord("a", "2"), TagRecord("b", "3")]
        )
        tx.put_iam_principal_tags(A, "user", "dan", [])
    with store.tx() as tx:
        assert tx.list_iam_principal_tags(A, "user", "DAN") == [TagRecord("a", "2"), TagRecord("b", "3")]
        tx.put_iam_principal_tags(A, "user", "dan", [TagRecord("a", "changed")])
        tx.delete_iam_principal_tags(A, "user", "dan", ["b", "missing"])
        tx.delete_iam_principal_tags(A, "user", "dan", [])
    with store.read() as tx:
        assert tx.list_iam_principal_tags(A, "user", "dan") == [TagRecord("a", "changed")]


def test_identity_policies(store: SqlStore) -> None:
    doc = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}'
    with store.tx() as tx:
        tx.insert_iam_principal(role("App"))
        tx.put_identity_policy(IdentityPolicyRecord(A, "role", "App", "zeta", doc, T0))
        tx.put_identity_policy(IdentityPolicyRecord(A, "role", "app", "alpha", "{}", T0))
    with store.tx() as tx:
        listed = tx.list_identity_policies(A, "role", "APP")
        assert [(p.policy_name, p.document) for p in listed] == [("alpha", "{}"), ("zeta", doc)]
        assert listed[0].principal_name == "APP" and listed[0].account == A and listed[0].kind == "role"
        tx.put_identity_policy(IdentityPolicyRecord(A, "role", "app", "alpha", '{"x":1}', T0 + 1))
        assert tx.delete_identity_policy(A, "role", "app", "zeta") is True
        assert tx.delete_identity_policy(A, "role", "app", "zeta") is False
    with store.read() as tx:
        assert [(p.document, p.updated_at) for p in tx.list_identity_policies(A, "role", "app")] == [
            ('{"x":1}', T0 + 1)
        ]
        assert tx.list_identity_policies(B, "role", "app") == []


def test_access_keys_carry_their_principal(store: SqlStore) -> None:
    session = AccessKeyRecord(
        "AKIAROLE", A, "app", f"arn:aws:sts::{A}:assumed-role/app/build", b"w", 1, T0,
        principal_type="AssumedRole", session_name="build",
    )  # fmt: skip
    legacy_user = AccessKeyRecord("AKIAUSER", A, "bob", f"arn:aws:iam::{A}:user/bob", b"w", 1, T0)
    legacy_root = AccessKeyRecord("AKIAROOT", A, "root", f"arn:aws:iam::{A}:root", b"w", 1, T0)
    with store.tx() as tx:
        for record in (session, legacy_user, legacy_root):
            tx.insert_access_key(record)
    with store.read() as tx:
        assert tx.get_access_key("AKIAROLE") == session
        assert tx.get_access_key("AKIAUSER") == replace(legacy_user, principal_type="User")
        assert tx.get_access_key("AKIAROOT") == replace(legacy_root, principal_type="Root")


def test_migration_keeps_existing_access_keys(tmp_path: Path) -> None:
    """Rows written by the 0002 schema read back as root and IAM-user keys after the upgrade."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade_database(url, revision="0002")
    engine = create_sql_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            for key_id, name, arn in (
                ("AKIAOLDROOT", "root", f"arn:aws:iam::{A}:root"),
                ("AKIAOLDUSER", "auditor", f"arn:aws:iam::{A}:user/auditor"),
            ):
                conn.execute(
                    text(
                        "INSERT INTO access_keys (access_key_id, account, user_name, principal_arn, "
                        "wrapped_secret, root_key_version, created_at, enabled) "
                        "VALUES (:k, :a, :n, :arn, :w, 1, :t, :e)"
                    ),
                    {"k": key_id, "a": A, "n": name, "arn": arn, "w": b"secret", "t": T0, "e": True},
                )
    finally:
        engine.dispose()
    upgrade_database(url)
    store = SqlStore(url)
    try:
        with store.read() as tx:
            root = tx.get_access_key("AKIAOLDROOT")
            auditor = tx.get_access_key("AKIAOLDUSER")
        assert root is not None and root.principal_type == "Root" and root.session_name is None
        assert auditor is not None and auditor.principal_type == "User" and auditor.user_name == "auditor"
        assert auditor.wrapped_secret == b"secret"
    finally:
        store.close()
