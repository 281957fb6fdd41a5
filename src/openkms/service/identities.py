"""Identities: accounts, IAM users and roles, their tags and identity policies, and the access keys that
sign as them; and ``principal(caller)``, the :class:`~openkms.authz.model.Principal` the evaluator sees.

Managed by the operator (``openkms admin``, ``openkms admin seed``), never through the KMS API. Every
change goes through ``Core.changing`` so that every worker's principal cache (``Directory.principal``) is
dropped, creations included: a principal computed for a legacy access key must be recomputed once a user
of that name exists.

Principals (kms-semantics.md sections 1.6 and 6.4):

* account root (``arn:aws:iam::A:root``): ``ACCOUNT``, identity policies not modelled (implicit allow);
* IAM user: ``USER`` with the documents of its attached policies (none attached: an empty tuple, which
  allows nothing); a user named by an access key but never created (keys made before identities
  existed, or with ``admin create-access-key --user``) is a legacy principal whose identity policies are
  not modelled (``None``);
* role session (``arn:aws:sts::A:assumed-role/ROLE/SESSION``): ``ASSUMED_ROLE`` with the role's tags and
  policies; ``aws:PrincipalArn`` is the role's ARN, ``aws:userid`` is ``ROLEID:SESSION``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from openkms.authz.model import Principal, PrincipalType
from openkms.identifiers import (
    assumed_role_arn,
    parse_principal_arn,
    role_arn,
    root_arn,
    user_arn,
)
from openkms.service.context import Caller
from openkms.service.core import Core
from openkms.service.credentials import CredentialError, Credentials
from openkms.service.identity_checks import (
    KINDS,
    MAX_TAGS,
    ROLE,
    USER,
    IdentityError,
    check_account,
    check_kind,
    check_name,
    check_path,
    check_policy_document,
    check_policy_name,
    check_policy_sizes,
    check_principal_id,
    check_session,
    check_tags,
    legacy_principal_id,
    new_principal_id,
)
from openkms.storage.base import (
    AccessKeyRecord,
    AccountRecord,
    DuplicateError,
    IamPrincipalRecord,
    IdentityPolicyRecord,
    TagRecord,
    Tx,
)

# -------------------------------------------------------------------------------------- service


class Identities:
    def __init__(self, core: Core, credentials: Credentials) -> None:
        self.core = core
        self.credentials = credentials

    # --- the principal of a caller (PrincipalSource) ----------------------------------------------

    def principal(self, caller: Caller) -> Principal:
        """The principal an authenticated caller acts as; cached until any identity changes."""
        return self.core.directory.principal(caller.principal_arn, lambda tx: self.load_principal(tx, caller))

    def load_principal(self, tx: Tx, caller: Caller) -> Principal:
        arn, account = caller.principal_arn, caller.account
        ref = parse_principal_arn(arn)
        if ref is None or ref.kind == "root":
            return Principal(arn, account, PrincipalType.ACCOUNT, account, arn, identity_policies=None)
        kind = USER if ref.kind == "user" else ROLE
        record = tx.get_iam_principal(account, kind, ref.name)
        if record is None:
            if kind == USER:  # a legacy user: identity policies not modelled
                user_id = legacy_principal_id(USER, account, ref.name)
                return Principal(arn, account, PrincipalType.USER, user_id, arn, identity_policies=None)
            # a session of a role that does not exist (cannot be created so): it may do nothing
            role_id = legacy_principal_id(ROLE, account, ref.name)
            return Principal(
                arn, account, PrincipalType.ASSUMED_ROLE, f"{role_id}:{ref.session}",
                role_arn(ref.partition, account, ref.name), identity_policies=(),
            )  # fmt: skip
        tags = {t.key: t.value for t in tx.list_iam_principal_tags(account, kind, record.name)}
        documents = tuple(p.document for p in tx.list_identity_policies(account, kind, record.name))
        if kind == USER:
            return Principal(
                record.arn, account, PrincipalType.USER, record.principal_id, record.arn, tags, documents
            )
        return Principal(
            arn, account, PrincipalType.ASSUMED_ROLE, f"{record.principal_id}:{ref.session}",
            record.arn, tags, documents,
        )  # fmt: skip

    # --- accounts ---------------------------------------------------------------------------------

    def put_account(self, account: str, name: str = "") -> None:
        check_account(account)
        with self.core.changing() as tx:
            tx.put_account(AccountRecord(account, name, self.core.clock.now()))

    def list_accounts(self) -> list[AccountRecord]:
        with self.core.store.read() as tx:
            return tx.list_accounts()

    # --- users and roles --------------------------------------------------------------------------

    def new_record(
        self, account: str, kind: str, name: str, path: str = "/", principal_id: str | None = None
    ) -> IamPrincipalRecord:
        check_account(account)
        check_name(check_kind(kind), name)
        check_path(path)
        principal_id = check_principal_id(kind, principal_id) if principal_id else new_principal_id(kind)
        build = user_arn if kind == USER else role_arn
        return IamPrincipalRecord(
            account, kind, name, path, principal_id, build(self.core.partition, account, name, path),
            self.core.clock.now(),
        )  # fmt: skip

    def create(
        self,
        account: str,
        kind: str,
        name: str,
        *,
        path: str = "/",
        tags: Mapping[str, str] | None = None,
        principal_id: str | None = None,
    ) -> IamPrincipalRecord:
        record = self.new_record(account, kind, name, path, principal_id)
        tag_map = check_tags(tags or {})
        try:
            with self.core.changing() as tx:
                existing = tx.get_iam_principal(account, kind, name)
                if existing is not None:
                    raise IdentityError(f"{kind} {existing.name} already exists in account {account}")
                tx.insert_iam_principal(record)
                tx.put_iam_principal_tags(account, kind, name, [TagRecord(k, v) for k, v in tag_map.items()])
                rebind_access_keys(tx, record)
        except DuplicateError as exc:
            raise IdentityError(f"{kind} id {record.principal_id} is already in use") from exc
        return record

    def get(self, account: str, kind: str, name: str) -> IamPrincipalRecord:
        with self.core.store.read() as tx:
            return self._existing(tx, account, kind, name)

    def _existing(self, tx: Tx, account: str, kind: str, name: str) -> IamPrincipalRecord:
        record = tx.get_iam_principal(check_account(account), check_kind(kind), name)
        if record is None:
            raise IdentityError(f"{kind} {name} does not exist in account {account}")
        return record

    def delete(self, account: str, kind: str, name: str, *, force: bool = False) -> list[str]:
        """Delete a user or role with its tags and policies. Its access keys are deleted too with
        ``force``; without it, a principal that still has access keys is refused (as IAM refuses).
        Returns the ids of the deleted access keys."""
        with self.core.changing() as tx:
            record = self._existing(tx, account, kind, name)
            keys = [k.access_key_id for k in tx.list_access_keys() if _belongs(k, record)]
            if keys and not force:
                raise IdentityError(
                    f"{kind} {record.name} still has access keys ({', '.join(keys)}); delete them first "
                    "or use --force"
                )
            for key in keys:
                tx.delete_access_key(key)
            tx.delete_iam_principal(account, kind, name)
        return keys

    def list_principals(
        self, account: str | None = None, kind: str | None = None
    ) -> list[IamPrincipalRecord]:
        if account is not None:
            check_account(account)
        with self.core.store.read() as tx:
            return tx.list_iam_principals(account, check_kind(kind) if kind is not None else None)

    # --- tags -------------------------------------------------------------------------------------

    def tag(self, account: str, kind: str, name: str, tags: Mapping[str, str]) -> None:
        check_tags(tags)
        with self.core.changing() as tx:
            record = self._existing(tx, account, kind, name)
            current = {t.key for t in tx.list_iam_principal_tags(account, kind, record.name)}
            if len(current | set(tags)) > MAX_TAGS:
                raise IdentityError(f"a principal may have at most {MAX_TAGS} tags")
            tx.put_iam_principal_tags(account, kind, name, [TagRecord(k, v) for k, v in tags.items()])

    def untag(self, account: str, kind: str, name: str, keys: Sequence[str]) -> None:
        with self.core.changing() as tx:
            self._existing(tx, account, kind, name)
            tx.delete_iam_principal_tags(account, kind, name, list(keys))

    def tags(self, account: str, kind: str, name: str) -> dict[str, str]:
        with self.core.store.read() as tx:
            self._existing(tx, account, kind, name)
            return {t.key: t.value for t in tx.list_iam_principal_tags(account, kind, name)}

    # --- identity policies ------------------------------------------------------------------------

    def put_policy(self, account: str, kind: str, name: str, policy_name: str, document: str) -> None:
        check_policy_name(policy_name)
        check_policy_document(document, f"policy {policy_name}")
        with self.core.changing() as tx:
            record = self._existing(tx, account, kind, name)
            others = [p.document for p in tx.list_identity_policies(account, kind, name)
                      if p.policy_name != policy_name]  # fmt: skip
            check_policy_sizes(kind, record.name, [*others, document])
            tx.put_identity_policy(
                IdentityPolicyRecord(account, kind, record.name, policy_name, document, self.core.clock.now())
            )

    def delete_policy(self, account: str, kind: str, name: str, policy_name: str) -> None:
        with self.core.changing() as tx:
            record = self._existing(tx, account, kind, name)
            if not tx.delete_identity_policy(account, kind, name, policy_name):
                raise IdentityError(f"{kind} {record.name} has no policy named {policy_name}")

    def policies(self, account: str, kind: str, name: str) -> list[IdentityPolicyRecord]:
        with self.core.store.read() as tx:
            self._existing(tx, account, kind, name)
            return tx.list_identity_policies(account, kind, name)

    # --- access keys ------------------------------------------------------------------------------

    def access_key_record(
        self,
        tx: Tx,
        account: str,
        *,
        user: str | None = None,
        role: str | None = None,
        session: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> tuple[AccessKeyRecord, str]:
        """A new access key record (not stored) for the root (neither ``user`` nor ``role``), an existing
        user, or a session of an existing role; and its secret in clear."""
        check_account(account)
        if user is not None and role is not None:
            raise IdentityError("an access key belongs to a user or a role session, not both")
        if session is not None and role is None:
            raise IdentityError("a session name is only used with a role")
        try:
            if user is not None:
                found = self._existing(tx, account, USER, user)
                return self.credentials.new_record(
                    account, user_name=found.name, principal_type="User", arn=found.arn,
                    access_key_id=access_key_id, secret_access_key=secret_access_key,
                )  # fmt: skip
            if role is not None:
                found = self._existing(tx, account, ROLE, role)
                if session is None:
                    raise IdentityError("a role's access key needs a session name (--session)")
                check_session(session)
                arn = assumed_role_arn(self.core.partition, account, found.name, session)
                return self.credentials.new_record(
                    account, user_name=found.name, principal_type="AssumedRole", arn=arn,
                    session_name=session, access_key_id=access_key_id, secret_access_key=secret_access_key,
                )  # fmt: skip
            return self.credentials.new_record(
                account, user_name="root", principal_type="Root", arn=root_arn(self.core.partition, account),
                access_key_id=access_key_id, secret_access_key=secret_access_key,
            )  # fmt: skip
        except CredentialError as exc:
            raise IdentityError(str(exc)) from exc

    def create_access_key(
        self,
        account: str,
        *,
        user: str | None = None,
        role: str | None = None,
        session: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> tuple[AccessKeyRecord, str]:
        try:
            with self.core.changing() as tx:
                record, secret = self.access_key_record(
                    tx, account, user=user, role=role, session=session,
                    access_key_id=access_key_id, secret_access_key=secret_access_key,
                )  # fmt: skip
                tx.insert_access_key(record)
        except DuplicateError as exc:
            raise IdentityError(f"access key {access_key_id} already exists") from exc
        return record, secret


def _belongs(key: AccessKeyRecord, principal: IamPrincipalRecord) -> bool:
    """Whether an access key signs as ``principal`` (a user, or any session of a role)."""
    if key.account != principal.account or key.user_name.lower() != principal.name.lower():
        return False
    return key.principal_type == ("User" if principal.kind == USER else "AssumedRole")


def rebind_access_keys(tx: Tx, user: IamPrincipalRecord) -> int:
    """Point the access keys of a user (made before it existed, or before its path changed) at its ARN,
    so callers appear with the user's path. Secrets are bound to the key id only: they stay valid."""
    if user.kind != USER:
        return 0  # a role session's ARN never holds the role's path
    moved = 0
    for key in tx.list_access_keys():
        if _belongs(key, user) and (key.principal_arn != user.arn or key.user_name != user.name):
            tx.delete_access_key(key.access_key_id)
            tx.insert_access_key(replace(key, principal_arn=user.arn, user_name=user.name))
            moved += 1
    return moved


def with_path(record: IamPrincipalRecord, partition: str, path: str) -> IamPrincipalRecord:
    build = user_arn if record.kind == USER else role_arn
    return replace(record, path=path, arn=build(partition, record.account, record.name, path))


__all__ = [
    "KINDS",
    "ROLE",
    "USER",
    "Identities",
    "IdentityError",
    "check_account",
    "check_name",
    "check_path",
    "check_policy_document",
    "check_tags",
]
