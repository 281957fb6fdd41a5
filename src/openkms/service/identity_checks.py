"""Names, ids, paths, tags and identity policy documents of IAM principals, checked as IAM checks them
(used by ``service.identities`` and by seed files before anything is stored)."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence

from openkms import errors

USER = "user"
ROLE = "role"
KINDS = (USER, ROLE)
ID_PREFIX = {USER: "AIDA", ROLE: "AROA"}
# Aggregate size of a principal's inline policies, whitespace not counted (IAM quotas).
MAX_POLICY_CHARS = {USER: 2048, ROLE: 10240}
MAX_TAGS = 50

_ACCOUNT = re.compile(r"\d{12}\Z")
_NAME = re.compile(r"[A-Za-z0-9+=,.@_-]{1,64}\Z")
_SESSION = re.compile(r"[A-Za-z0-9+=,.@_-]{2,64}\Z")
_POLICY_NAME = re.compile(r"[A-Za-z0-9+=,.@_-]{1,128}\Z")
_PATH = re.compile(r"/(?:[\x21-\x7e]*/)?\Z")
_PRINCIPAL_ID = re.compile(r"[A-Z0-9]{16,32}\Z")
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_WHITESPACE = re.compile(r"\s+")


class IdentityError(ValueError):
    """An operator asked for something impossible: the message says what and why."""


# ---------------------------------------------------------------------------------------- checks


def check_account(account: str) -> str:
    if not isinstance(account, str) or not _ACCOUNT.match(account):
        raise IdentityError(f"account id {account!r} is not 12 digits")
    return account


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise IdentityError(f"principal kind must be 'user' or 'role', not {kind!r}")
    return kind


def check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise IdentityError(
            f"{kind} name {name!r} is invalid: use 1 to 64 letters, digits and +=,.@_- characters"
        )
    if kind == USER and name.lower() == "root":
        raise IdentityError("'root' is the account root, not a user name; use --root for its access keys")
    return name


def check_path(path: str) -> str:
    if not isinstance(path, str) or len(path) > 512 or not _PATH.match(path):
        raise IdentityError(
            f"path {path!r} is invalid: it must be '/' or begin and end with '/' "
            "(printable ASCII without spaces, at most 512 characters)"
        )
    return path


def check_session(session: str) -> str:
    if not isinstance(session, str) or not _SESSION.match(session):
        raise IdentityError(
            f"session name {session!r} is invalid: use 2 to 64 letters, digits and +=,.@_- characters"
        )
    return session


def check_principal_id(kind: str, principal_id: str) -> str:
    if (
        not isinstance(principal_id, str)
        or not _PRINCIPAL_ID.match(principal_id)
        or not principal_id.startswith(ID_PREFIX[kind])
    ):
        raise IdentityError(
            f"{kind} id {principal_id!r} is invalid: {ID_PREFIX[kind]} followed by upper-case letters "
            "and digits, 16 to 32 characters in all"
        )
    return principal_id


def check_tags(tags: Mapping[str, str]) -> dict[str, str]:
    if len(tags) > MAX_TAGS:
        raise IdentityError(f"a principal may have at most {MAX_TAGS} tags")
    for key, value in tags.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 128:
            raise IdentityError(f"tag key {key!r} must be 1 to 128 characters")
        if key.lower().startswith("aws:"):
            raise IdentityError(f"tag key {key!r} uses the reserved prefix 'aws:'")
        if not isinstance(value, str) or len(value) > 256:
            raise IdentityError(f"the value of tag {key!r} must be a string of at most 256 characters")
    return dict(tags)


def check_policy_name(policy_name: str) -> str:
    if not isinstance(policy_name, str) or not _POLICY_NAME.match(policy_name):
        raise IdentityError(
            f"policy name {policy_name!r} is invalid: use 1 to 128 letters, digits and +=,.@_- characters"
        )
    return policy_name


def check_policy_document(document: str, where: str = "policy") -> str:
    """An identity policy as IAM would accept it (the authorization engine's own checks)."""
    from openkms.authz.documents import check_identity_policy

    try:
        check_identity_policy(document)
    except errors.KMSError as exc:
        raise IdentityError(f"{where} is not a valid identity policy: {exc.message}") from exc
    return document


def check_policy_sizes(kind: str, name: str, documents: Sequence[str]) -> None:
    used = sum(len(_WHITESPACE.sub("", d)) for d in documents)
    if used > MAX_POLICY_CHARS[kind]:
        raise IdentityError(
            f"Maximum policy size of {MAX_POLICY_CHARS[kind]} bytes exceeded for {kind} {name} "
            f"({used} characters of inline policies, whitespace not counted)"
        )


def new_principal_id(kind: str) -> str:
    return ID_PREFIX[kind] + "".join(secrets.choice(_BASE32) for _ in range(17))


def legacy_principal_id(kind: str, account: str, name: str) -> str:
    """A stable id for a principal named by an access key but never created."""
    digest = hashlib.sha256(f"{account}/{kind}/{name.lower()}".encode()).digest()
    return ID_PREFIX[kind] + "".join(_BASE32[b & 31] for b in digest[:17])
