"""The identities part of the SQL store: accounts, IAM users and roles, principal tags, identity policies.

Mixed into :class:`openkms.storage.sql.SqlTx`; statements are built once per dialect like the rest of the
store. Principal names are matched ignoring case through the ``folded`` (lower-cased) key column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import Any, Final

from sqlalchemy import (
    Connection,
    CursorResult,
    Delete,
    Executable,
    Select,
    Update,
    and_,
    bindparam,
    delete,
    select,
    update,
)

from openkms.storage.base import AccountRecord, IamPrincipalRecord, IdentityPolicyRecord, TagRecord
from openkms.storage.tables import iam_accounts, iam_policies, iam_principal_tags, iam_principals

_PRINCIPAL_FIELDS: Final = tuple(f.name for f in fields(IamPrincipalRecord))
_OWNER: Final = ("account", "kind", "folded")


def _p(name: str) -> Any:
    return bindparam(f"p_{name}")


def _owner(account: str, kind: str, name: str) -> dict[str, Any]:
    return {"p_account": account, "p_kind": kind, "p_folded": name.lower()}


class IdentityStatements:
    def __init__(self, insert: Callable[..., Any]) -> None:
        def where(table: Any, *names: str) -> Any:
            return and_(*(table.c[n] == _p(n) for n in names))

        account_insert = insert(iam_accounts).values(
            account=_p("account"), name=_p("name"), created_at=_p("created_at")
        )
        self.put_account = account_insert.on_conflict_do_update(
            index_elements=[iam_accounts.c.account], set_={"name": account_insert.excluded.name}
        )
        account_cols = (iam_accounts.c.account, iam_accounts.c.name, iam_accounts.c.created_at)
        self.get_account: Select[Any] = select(*account_cols).where(where(iam_accounts, "account"))
        self.list_accounts: Select[Any] = select(*account_cols).order_by(iam_accounts.c.account)

        cols = [iam_principals.c[n] for n in _PRINCIPAL_FIELDS]
        self.get_principal: Select[Any] = select(*cols).where(where(iam_principals, *_OWNER))
        self.insert_principal = (
            insert(iam_principals)
            .values({**{n: _p(n) for n in _PRINCIPAL_FIELDS}, "folded": _p("folded")})
            .on_conflict_do_nothing()
            .execution_options(preserve_rowcount=True)
        )
        self.update_principal: Update = (
            update(iam_principals)
            .where(where(iam_principals, *_OWNER))
            .values(path=_p("path"), arn=_p("arn"))
        )
        self.delete_principal: Delete = delete(iam_principals).where(where(iam_principals, *_OWNER))
        self.delete_principal_tags: Delete = delete(iam_principal_tags).where(
            where(iam_principal_tags, *_OWNER)
        )
        self.delete_principal_policies: Delete = delete(iam_policies).where(where(iam_policies, *_OWNER))
        order = (iam_principals.c.account, iam_principals.c.kind, iam_principals.c.folded)
        listed = select(*cols).order_by(*order)
        self.list_principals: dict[tuple[bool, bool], Select[Any]] = {
            (False, False): listed,
            (True, False): listed.where(iam_principals.c.account == _p("account")),
            (False, True): listed.where(iam_principals.c.kind == _p("kind")),
            (True, True): listed.where(where(iam_principals, "account", "kind")),
        }

        self.list_tags: Select[Any] = (
            select(iam_principal_tags.c.tag_key, iam_principal_tags.c.tag_value)
            .where(where(iam_principal_tags, *_OWNER))
            .order_by(iam_principal_tags.c.tag_key)
        )
        tag_insert = insert(iam_principal_tags).values({n: _p(n) for n in (*_OWNER, "tag_key", "tag_value")})
        self.put_tag = tag_insert.on_conflict_do_update(
            index_elements=[iam_principal_tags.c[n] for n in (*_OWNER, "tag_key")],
            set_={"tag_value": tag_insert.excluded.tag_value},
        )
        self.delete_tags: Delete = delete(iam_principal_tags).where(
            where(iam_principal_tags, *_OWNER),
            iam_principal_tags.c.tag_key.in_(bindparam("p_tag_keys", expanding=True)),
        )

        self.list_policies: Select[Any] = (
            select(
                iam_policies.c.account,
                iam_policies.c.kind,
                iam_policies.c.folded,
                iam_policies.c.policy_name,
                iam_policies.c.document,
                iam_policies.c.updated_at,
            )
            .where(where(iam_policies, *_OWNER))
            .order_by(iam_policies.c.policy_name)
        )
        policy_insert = insert(iam_policies).values(
            {n: _p(n) for n in (*_OWNER, "policy_name", "document", "updated_at")}
        )
        self.put_policy = policy_insert.on_conflict_do_update(
            index_elements=[iam_policies.c[n] for n in (*_OWNER, "policy_name")],
            set_={
                "document": policy_insert.excluded.document,
                "updated_at": policy_insert.excluded.updated_at,
            },
        )
        self.delete_policy: Delete = delete(iam_policies).where(where(iam_policies, *_OWNER, "policy_name"))


class IdentityTxMixin:
    """The identities methods of ``Tx`` (see ``storage/base.py``)."""

    __slots__ = ()

    @property
    def connection(self) -> Connection:  # provided by SqlTx
        raise NotImplementedError

    def _identity_statements(self) -> IdentityStatements:  # provided by SqlTx
        raise NotImplementedError

    def _insert(self, stmt: Executable, params: Mapping[str, Any], what: str) -> None:  # SqlTx
        raise NotImplementedError

    def _x(self, stmt: Executable, params: Any = None) -> CursorResult[Any]:
        return self.connection.execute(stmt, params)

    # accounts

    def get_account(self, account: str) -> AccountRecord | None:
        row = self._x(self._identity_statements().get_account, {"p_account": account}).first()
        return None if row is None else AccountRecord(*list(row))

    def put_account(self, record: AccountRecord) -> None:
        self._x(
            self._identity_statements().put_account,
            {"p_account": record.account, "p_name": record.name, "p_created_at": record.created_at},
        )

    def list_accounts(self) -> list[AccountRecord]:
        return [AccountRecord(*list(row)) for row in self._x(self._identity_statements().list_accounts)]

    # principals

    def get_iam_principal(self, account: str, kind: str, name: str) -> IamPrincipalRecord | None:
        row = self._x(self._identity_statements().get_principal, _owner(account, kind, name)).first()
        return None if row is None else IamPrincipalRecord(*list(row))

    def insert_iam_principal(self, record: IamPrincipalRecord) -> None:
        params = {f"p_{n}": getattr(record, n) for n in _PRINCIPAL_FIELDS}
        params["p_folded"] = record.name.lower()
        self._insert(
            self._identity_statements().insert_principal,
            params,
            f"{record.kind} {record.account}/{record.name} ({record.principal_id})",
        )

    def update_iam_principal(self, record: IamPrincipalRecord) -> bool:
        params = _owner(record.account, record.kind, record.name)
        params.update(p_path=record.path, p_arn=record.arn)
        return self._x(self._identity_statements().update_principal, params).rowcount > 0

    def delete_iam_principal(self, account: str, kind: str, name: str) -> bool:
        q = self._identity_statements()
        params = _owner(account, kind, name)
        self._x(q.delete_principal_tags, params)
        self._x(q.delete_principal_policies, params)
        return self._x(q.delete_principal, params).rowcount > 0

    def list_iam_principals(self, account: str | None, kind: str | None) -> list[IamPrincipalRecord]:
        params: dict[str, Any] = {}
        if account is not None:
            params["p_account"] = account
        if kind is not None:
            params["p_kind"] = kind
        stmt = self._identity_statements().list_principals[account is not None, kind is not None]
        return [IamPrincipalRecord(*list(row)) for row in self._x(stmt, params)]

    # tags

    def list_iam_principal_tags(self, account: str, kind: str, name: str) -> list[TagRecord]:
        rows = self._x(self._identity_statements().list_tags, _owner(account, kind, name))
        return [TagRecord(*list(row)) for row in rows]

    def put_iam_principal_tags(self, account: str, kind: str, name: str, tags: Sequence[TagRecord]) -> None:
        if not tags:
            return
        owner = _owner(account, kind, name)
        values = {tag.key: tag.value for tag in tags}  # the last value of a repeated key wins
        self._x(
            self._identity_statements().put_tag,
            [{**owner, "p_tag_key": k, "p_tag_value": v} for k, v in values.items()],
        )

    def delete_iam_principal_tags(self, account: str, kind: str, name: str, tag_keys: Sequence[str]) -> None:
        if not tag_keys:
            return
        params = {**_owner(account, kind, name), "p_tag_keys": list(tag_keys)}
        self._x(self._identity_statements().delete_tags, params)

    # identity policies

    def list_identity_policies(self, account: str, kind: str, name: str) -> list[IdentityPolicyRecord]:
        rows = self._x(self._identity_statements().list_policies, _owner(account, kind, name))
        return [IdentityPolicyRecord(r[0], r[1], name, r[3], r[4], r[5]) for r in map(list, rows)]

    def put_identity_policy(self, record: IdentityPolicyRecord) -> None:
        params = {
            **_owner(record.account, record.kind, record.principal_name),
            "p_policy_name": record.policy_name,
            "p_document": record.document,
            "p_updated_at": record.updated_at,
        }
        self._x(self._identity_statements().put_policy, params)

    def delete_identity_policy(self, account: str, kind: str, name: str, policy_name: str) -> bool:
        params = {**_owner(account, kind, name), "p_policy_name": policy_name}
        return self._x(self._identity_statements().delete_policy, params).rowcount > 0


__all__ = ["IdentityStatements", "IdentityTxMixin"]
