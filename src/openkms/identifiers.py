"""KeyId forms (key id, key ARN, alias name, alias ARN) -> one ``KeyRef``; the only place ARNs are built.

Resolution rules follow kms-semantics.md section 2.2: malformed ids and ARNs answer NotFoundException with
AWS's observed wording, aliases given to operations that need a key answer InvalidArnException.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from openkms import errors

_KEY_ID = re.compile(r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})\Z")
_ARN = re.compile(r"arn:(aws|aws-cn|aws-us-gov):kms:([a-z0-9-]+):(\d{12}):(.+)\Z")
_ALIAS_CHARS = re.compile(r"alias/[a-zA-Z0-9/_-]+\Z")
ALIAS_NOT_SUPPORTED = "Key Aliases are not supported for this operation"


@dataclass(frozen=True, slots=True)
class KeyRef:
    """A parsed KeyId parameter. Exactly one of ``key_id`` / ``alias_name`` is set."""

    account: str | None  # only when the caller wrote an ARN
    region: str | None
    key_id: str | None
    alias_name: str | None  # "alias/..."


def is_key_id(value: str) -> bool:
    return _KEY_ID.match(value) is not None


def new_key_id() -> str:
    return str(uuid.uuid4())


def key_arn(partition: str, region: str, account: str, key_id: str) -> str:
    return f"arn:{partition}:kms:{region}:{account}:key/{key_id}"


def alias_arn(partition: str, region: str, account: str, alias_name: str) -> str:
    return f"arn:{partition}:kms:{region}:{account}:{alias_name}"


def principal_arn(partition: str, account: str, user_name: str) -> str:
    """The IAM principal of an access key: the account root, or an IAM user."""
    if user_name == "root":
        return f"arn:{partition}:iam::{account}:root"
    return f"arn:{partition}:iam::{account}:user/{user_name}"


def root_arn(partition: str, account: str) -> str:
    return f"arn:{partition}:iam::{account}:root"


def user_arn(partition: str, account: str, name: str, path: str = "/") -> str:
    return f"arn:{partition}:iam::{account}:user{path}{name}"


def role_arn(partition: str, account: str, name: str, path: str = "/") -> str:
    return f"arn:{partition}:iam::{account}:role{path}{name}"


def assumed_role_arn(partition: str, account: str, role_name: str, session_name: str) -> str:
    """A role session as it appears to policies and in messages (the role's path is not part of it)."""
    return f"arn:{partition}:sts::{account}:assumed-role/{role_name}/{session_name}"


@dataclass(frozen=True, slots=True)
class PrincipalRef:
    """A caller's ARN taken apart: ``kind`` is "root", "user" or "assumed-role"."""

    partition: str
    account: str
    kind: str
    name: str  # user or role name ("" for root)
    session: str = ""  # role session name


_PRINCIPAL_ARN = re.compile(r"arn:(aws|aws-cn|aws-us-gov):(iam|sts)::(\d{12}):(.+)\Z")


def parse_principal_arn(arn: str) -> PrincipalRef | None:
    """The root, user (any path) or assumed-role ARN of a caller; None for any other form."""
    match = _PRINCIPAL_ARN.match(arn)
    if match is None:
        return None
    partition, service, account, resource = match.groups()
    if service == "iam":
        if resource == "root":
            return PrincipalRef(partition, account, "root", "")
        if resource.startswith("user/"):
            return PrincipalRef(partition, account, "user", resource.rpartition("/")[2])
        return None
    parts = resource.split("/")
    if len(parts) == 3 and parts[0] == "assumed-role" and parts[1] and parts[2]:
        return PrincipalRef(partition, account, "assumed-role", parts[1], parts[2])
    return None


def parse_key_ref(value: str, *, partition: str, region: str, allow_alias: bool) -> KeyRef:
    """Parse a KeyId parameter as the caller wrote it (resolution against storage happens later).

    ``partition`` is the deployment's: an ARN of another partition names no key here, even when the rest
    of it matches one (``arn:aws-cn:kms:us-east-1:...`` is not ``arn:aws:kms:us-east-1:...``).
    """
    if value.startswith("arn:"):
        match = _ARN.match(value)
        if match is None:
            raise errors.NotFoundException(f"Invalid arn {value}")
        arn_partition, arn_region, account, resource = match.groups()
        if arn_partition != partition:
            raise errors.NotFoundException(f"Invalid arn {value}")
        if resource.startswith("alias/"):
            if not allow_alias:
                raise errors.InvalidArnException(ALIAS_NOT_SUPPORTED)
            if arn_region != region:
                raise errors.NotFoundException(f"Invalid arn {arn_region}")
            return KeyRef(account=account, region=arn_region, key_id=None, alias_name=resource)
        if not resource.startswith("key/"):
            raise errors.NotFoundException(f"Invalid arn {value}")
        if arn_region != region:
            raise errors.NotFoundException(f"Invalid arn {arn_region}")
        key_id = resource[4:]
        if not is_key_id(key_id):
            raise errors.NotFoundException(f"Invalid keyId '{key_id}'")
        return KeyRef(account=account, region=arn_region, key_id=key_id, alias_name=None)
    if value.startswith("alias/"):
        if not allow_alias:
            raise errors.InvalidArnException(ALIAS_NOT_SUPPORTED)
        return KeyRef(account=None, region=None, key_id=None, alias_name=value)
    if not is_key_id(value):
        raise errors.NotFoundException(f"Invalid keyId '{value}'")
    return KeyRef(account=None, region=None, key_id=value, alias_name=None)


def check_alias_name(name: str) -> None:
    """Validate a customer alias name for CreateAlias/UpdateAlias/DeleteAlias (section 2.1)."""
    if not name.startswith("alias/"):
        raise errors.ValidationException(
            'Alias must start with the prefix "alias/". Please see '
            "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"
        )
    if name.startswith("alias/aws/") or name == "alias/aws":
        raise errors.NotAuthorizedException("")
    if _ALIAS_CHARS.match(name) is None:
        raise errors.ValidationException(f"{name} contains invalid characters for an alias")
