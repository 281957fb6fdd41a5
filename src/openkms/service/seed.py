"""Seed files: accounts, users, roles, tags, identity policies and access keys declared in TOML or YAML,
applied at start-up (``openkms server --seed``, ``[iam] seed_file``) or by ``openkms admin seed``.

Applying is idempotent and atomic: the whole file is checked first (every error names where it is, e.g.
``accounts[0].users[1].policies.kms-use``), then applied in one transaction that changes only what
differs. For each user and role in the file, its path, tags and identity policies become exactly those
of the file; access keys in the file are created, or replaced when their secret or principal differ;
principals and access keys the file does not mention are left alone. Format: docs/configuration.md.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from openkms.service.identities import Identities, rebind_access_keys, with_path
from openkms.service.identity_checks import (
    ROLE,
    USER,
    IdentityError,
    check_account,
    check_name,
    check_path,
    check_policy_document,
    check_policy_name,
    check_policy_sizes,
    check_principal_id,
    check_session,
    check_tags,
)
from openkms.storage.base import AccountRecord, DuplicateError, IdentityPolicyRecord, TagRecord, Tx


class SeedError(ValueError):
    """The seed file cannot be read or is not valid; the message names the file and the place."""


@dataclass(frozen=True)
class SeedKey:
    access_key_id: str
    secret: str = field(repr=False)
    session: str | None = None


@dataclass(frozen=True)
class SeedPrincipal:
    kind: str
    name: str
    path: str
    principal_id: str | None
    tags: dict[str, str]
    policies: dict[str, str]
    keys: list[SeedKey]


@dataclass(frozen=True)
class SeedAccount:
    account: str
    name: str | None
    root_keys: list[SeedKey]
    principals: list[SeedPrincipal]


@dataclass
class SeedReport:
    changes: list[str] = field(default_factory=list)  # one line per change, never a secret
    unchanged: int = 0


# ------------------------------------------------------------------------------------------ parsing


def read_seed_file(path: Path) -> list[SeedAccount]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SeedError(f"seed file {path} cannot be read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise SeedError(f"seed file {path} is not UTF-8 text") from exc
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SeedError(f"seed file {path} is not valid YAML: {exc}") from exc
    else:
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SeedError(f"seed file {path} is not valid TOML: {exc}") from exc
    try:
        return parse_seed(raw)
    except SeedError as exc:
        raise SeedError(f"seed file {path}: {exc}") from exc


def parse_seed(raw: Any) -> list[SeedAccount]:
    top = _table(raw, "the file", {"version", "accounts"})
    if top.get("version", 1) != 1:
        raise SeedError("version: only version 1 is known")
    accounts = [
        _account(a, f"accounts[{i}]") for i, a in enumerate(_list(top.get("accounts", []), "accounts"))
    ]
    seen_accounts: set[str] = set()
    seen_keys: set[str] = set()
    for i, account in enumerate(accounts):
        if account.account in seen_accounts:
            raise SeedError(f"accounts[{i}]: account {account.account} is listed twice")
        seen_accounts.add(account.account)
        keys = [*account.root_keys, *(k for p in account.principals for k in p.keys)]
        for key in keys:
            if key.access_key_id in seen_keys:
                raise SeedError(f"accounts[{i}]: access key {key.access_key_id} is listed twice")
            seen_keys.add(key.access_key_id)
    return accounts


def _account(raw: Any, where: str) -> SeedAccount:
    table = _table(raw, where, {"id", "name", "access_keys", "users", "roles"})
    account = _string(table.get("id"), f"{where}.id", hint="write the account id in quotes")
    _checked(check_account, account, where=f"{where}.id")
    name = table.get("name")
    if name is not None:
        name = _string(name, f"{where}.name")
    root_keys = [
        _key(k, f"{where}.access_keys[{i}]", False)
        for i, k in enumerate(_list(table.get("access_keys", []), f"{where}.access_keys"))
    ]
    principals: list[SeedPrincipal] = []
    folded: set[tuple[str, str]] = set()
    for kind, plural in ((USER, "users"), (ROLE, "roles")):
        for i, entry in enumerate(_list(table.get(plural, []), f"{where}.{plural}")):
            principal = _principal(entry, kind, f"{where}.{plural}[{i}]")
            if (kind, principal.name.lower()) in folded:
                raise SeedError(f"{where}.{plural}[{i}]: {kind} {principal.name} is listed twice")
            folded.add((kind, principal.name.lower()))
            principals.append(principal)
    return SeedAccount(account, name, root_keys, principals)


def _principal(raw: Any, kind: str, where: str) -> SeedPrincipal:
    table = _table(raw, where, {"name", "path", "id", "tags", "policies", "access_keys"})
    name = _string(table.get("name"), f"{where}.name")
    _checked(check_name, kind, name, where=f"{where}.name")
    path = _string(table.get("path", "/"), f"{where}.path")
    _checked(check_path, path, where=f"{where}.path")
    principal_id = table.get("id")
    if principal_id is not None:
        principal_id = _string(principal_id, f"{where}.id")
        _checked(check_principal_id, kind, principal_id, where=f"{where}.id")
    tags = {
        k: _string(v, f"{where}.tags.{k}") for k, v in _table(table.get("tags", {}), f"{where}.tags").items()
    }
    _checked(check_tags, tags, where=f"{where}.tags")
    policies: dict[str, str] = {}
    for policy_name, document in _table(table.get("policies", {}), f"{where}.policies").items():
        spot = f"{where}.policies.{policy_name}"
        _checked(check_policy_name, policy_name, where=spot)
        if isinstance(document, Mapping):
            try:
                document = orjson.dumps(document).decode()
            except TypeError as exc:
                raise SeedError(f"{spot}: the policy holds a value JSON cannot represent ({exc})") from exc
        document = _string(document, spot, hint="a JSON string or a table")
        _checked(check_policy_document, document, where=spot)
        policies[policy_name] = document
    _checked(check_policy_sizes, kind, name, list(policies.values()), where=f"{where}.policies")
    keys = [
        _key(k, f"{where}.access_keys[{i}]", kind == ROLE)
        for i, k in enumerate(_list(table.get("access_keys", []), f"{where}.access_keys"))
    ]
    return SeedPrincipal(kind, name, path, principal_id, tags, policies, keys)


def _key(raw: Any, where: str, role: bool) -> SeedKey:
    table = _table(raw, where, {"id", "secret", "session"} if role else {"id", "secret"})
    access_key_id = _string(table.get("id"), f"{where}.id")
    secret = _string(table.get("secret"), f"{where}.secret")
    session = None
    if role:
        session = _string(table.get("session"), f"{where}.session", hint="a role's key signs as a session")
        _checked(check_session, session, where=f"{where}.session")
    if not (3 <= len(access_key_id) <= 128 and access_key_id.isascii() and access_key_id.isalnum()):
        raise SeedError(f"{where}.id: the access key id must be 3 to 128 letters or digits")
    if not 1 <= len(secret) <= 128:
        raise SeedError(f"{where}.secret: the secret must be 1 to 128 characters")
    return SeedKey(access_key_id, secret, session)


def _checked(check: Any, *args: Any, where: str) -> None:
    try:
        check(*args)
    except IdentityError as exc:
        raise SeedError(f"{where}: {exc}") from exc


def _table(raw: Any, where: str, allowed: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    if raw is None and where == "the file":
        return {}
    if not isinstance(raw, Mapping):
        raise SeedError(f"{where}: expected a table (mapping), got {_type(raw)}")
    for key in raw:
        if not isinstance(key, str):
            raise SeedError(f"{where}: keys must be strings, got {key!r}")
        if allowed and key not in allowed:
            raise SeedError(f"{where}: unknown entry '{key}' (expected one of {', '.join(sorted(allowed))})")
    return dict(raw)


def _list(raw: Any, where: str) -> list[Any]:
    if not isinstance(raw, list):
        raise SeedError(f"{where}: expected a list, got {_type(raw)}")
    return raw


def _string(raw: Any, where: str, hint: str = "") -> str:
    if raw is None:
        raise SeedError(f"{where}: missing")
    if not isinstance(raw, str):
        raise SeedError(f"{where}: expected a string, got {_type(raw)}" + (f" ({hint})" if hint else ""))
    return raw


def _type(value: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean", int: "a number"}.get(
        type(value), type(value).__name__
    )


# ----------------------------------------------------------------------------------------- applying


def apply_seed(identities: Identities, accounts: list[SeedAccount]) -> SeedReport:
    """Make the store agree with ``accounts`` in one transaction; raises SeedError (nothing applied)."""
    core = identities.core
    for attempt in range(3):
        report = SeedReport()
        try:
            with core.store.tx() as tx:
                for account in accounts:
                    _apply_account(identities, tx, account, report)
                if report.changes:
                    tx.bump_generation()
        except IdentityError as exc:
            raise SeedError(str(exc)) from exc
        except DuplicateError as exc:
            # another node applied the same file at the same moment (PostgreSQL): try again, the rows it
            # committed are then seen as existing
            if attempt == 2:
                raise SeedError(
                    f"the seed could not be applied while others change the same rows: {exc}"
                ) from exc
            continue
        if report.changes:
            core.directory.changed()
        return report
    raise AssertionError("unreachable")  # pragma: no cover


def _apply_account(identities: Identities, tx: Tx, seed: SeedAccount, report: SeedReport) -> None:
    core = identities.core
    account = seed.account
    existing = tx.get_account(account)
    if existing is None or (seed.name is not None and existing.name != seed.name):
        tx.put_account(AccountRecord(account, seed.name or "", core.clock.now()))
        report.changes.append(f"{'created' if existing is None else 'renamed'} account {account}")
    else:
        report.unchanged += 1
    for principal in seed.principals:
        _apply_principal(identities, tx, account, principal, report)
    for key in seed.root_keys:
        _apply_key(identities, tx, account, None, key, report)


def _apply_principal(
    identities: Identities, tx: Tx, account: str, seed: SeedPrincipal, report: SeedReport
) -> None:
    core = identities.core
    kind, what = seed.kind, f"{seed.kind} {seed.name} in {account}"
    record = tx.get_iam_principal(account, kind, seed.name)
    if record is None:
        record = identities.new_record(account, kind, seed.name, seed.path, seed.principal_id)
        tx.insert_iam_principal(record)
        rebind_access_keys(tx, record)
        report.changes.append(f"created {what}")
    else:
        if seed.principal_id is not None and seed.principal_id != record.principal_id:
            raise SeedError(f"{what} exists with id {record.principal_id}, not {seed.principal_id}")
        if record.path != seed.path:
            record = with_path(record, core.partition, seed.path)
            tx.update_iam_principal(record)
            rebind_access_keys(tx, record)
            report.changes.append(f"moved {what} to path {seed.path}")
        else:
            report.unchanged += 1
    name = record.name
    current_tags = {t.key: t.value for t in tx.list_iam_principal_tags(account, kind, name)}
    if current_tags != seed.tags:
        tx.delete_iam_principal_tags(account, kind, name, [k for k in current_tags if k not in seed.tags])
        changed = [TagRecord(k, v) for k, v in seed.tags.items() if current_tags.get(k) != v]
        tx.put_iam_principal_tags(account, kind, name, changed)
        report.changes.append(f"set the tags of {what}")
    current = {p.policy_name: p.document for p in tx.list_identity_policies(account, kind, name)}
    for policy_name in current.keys() - seed.policies.keys():
        tx.delete_identity_policy(account, kind, name, policy_name)
        report.changes.append(f"deleted policy {policy_name} of {what}")
    for policy_name, document in seed.policies.items():
        if current.get(policy_name) != document:
            now = core.clock.now()
            tx.put_identity_policy(IdentityPolicyRecord(account, kind, name, policy_name, document, now))
            report.changes.append(
                f"{'updated' if policy_name in current else 'attached'} policy {policy_name} of {what}"
            )
    for key in seed.keys:
        _apply_key(identities, tx, account, seed, key, report)


def _apply_key(
    identities: Identities,
    tx: Tx,
    account: str,
    owner: SeedPrincipal | None,
    key: SeedKey,
    report: SeedReport,
) -> None:
    record, _secret = identities.access_key_record(
        tx,
        account,
        user=owner.name if owner is not None and owner.kind == USER else None,
        role=owner.name if owner is not None and owner.kind == ROLE else None,
        session=key.session,
        access_key_id=key.access_key_id,
        secret_access_key=key.secret,
    )
    existing = tx.get_access_key(key.access_key_id)
    if existing is not None:
        same_owner = (
            existing.account == record.account
            and existing.principal_type == record.principal_type
            and existing.user_name == record.user_name
            and existing.session_name == record.session_name
            and existing.principal_arn == record.principal_arn
            and existing.enabled
        )
        if same_owner and identities.credentials.secret_matches(existing, key.secret):
            report.unchanged += 1
            return
        tx.delete_access_key(key.access_key_id)
    tx.insert_access_key(record)
    verb = "created" if existing is None else "replaced"
    report.changes.append(f"{verb} access key {key.access_key_id} for {record.principal_arn}")


__all__ = ["SeedError", "SeedReport", "apply_seed", "parse_seed", "read_seed_file"]
