"""The vocabulary of authorization: who asks, for what, under which policies and grants; and the answer.

``authz`` is pure: it decides over these values and never reads storage. The service layer builds an
:class:`AccessRequest` per permission check (kms-semantics.md section 6.1) and turns a denied
:class:`Decision` into AccessDeniedException with :func:`openkms.authz.messages.access_denied_message`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# A condition key's value in the request context: strings, or a list for multi-valued keys
# (kms:EncryptionContextKeys, aws:TagKeys, kms:GrantOperations, kms:ResourceAliases), booleans
# (kms:MultiRegion, aws:SecureTransport), numbers (kms:RotationPeriodInDays, aws:EpochTime).
ConditionValue = str | bool | int | float | Sequence[str]


class PrincipalType(enum.Enum):
    """``aws:PrincipalType``."""

    ACCOUNT = "Account"  # the account's root user: arn:aws:iam::ACCOUNT:root
    USER = "User"  # arn:aws:iam::ACCOUNT:user/PATH/NAME
    ASSUMED_ROLE = "AssumedRole"  # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller, with everything the evaluator may need to know about it."""

    arn: str  # as the caller appears in messages and audit (session ARN for a role session)
    account: str
    type: PrincipalType
    user_id: str  # aws:userid
    # aws:PrincipalArn: the role ARN (arn:aws:iam::A:role/NAME) for role sessions, else ``arn``.
    principal_arn: str
    tags: Mapping[str, str] = field(default_factory=dict)  # aws:PrincipalTag/<k>
    # The identity (IAM) policy documents attached to the user or role. ``None`` means identity
    # policies are not modelled for this principal: treated as allow-all within its own account
    # (kms-semantics.md section 6.4). The account root always has an implicit allow-all.
    identity_policies: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """A stored grant as the evaluator sees it (section 6.8)."""

    grant_id: str
    key_arn: str
    grantee_principal: str
    operations: frozenset[str]  # grant operation names, e.g. "Decrypt", "ReEncryptFrom"
    issuing_account: str
    retiring_principal: str | None = None
    encryption_context_equals: Mapping[str, str] | None = None
    encryption_context_subset: Mapping[str, str] | None = None
    source_arn: str | None = None  # never matches here: our callers never act for an AWS resource
    name: str = ""


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """One permission check: may ``principal`` perform ``action`` on ``resource``?"""

    principal: Principal
    action: str  # permission name without the "kms:" prefix: "Encrypt", "ReEncryptFrom", "CreateKey"
    resource: str  # key ARN, alias ARN, or "*" for account-level actions
    resource_account: str  # the account that owns the resource (the caller's for "*")
    # The key policy of the key being accessed; None when the resource has no resource-based policy
    # (aliases, "*"): then identity policies alone decide.
    key_policy: str | None = None
    grants: Sequence[Grant] = ()  # grants on the key; consulted only for grant operations
    # Condition keys of this request, names lower-cased ("kms:encryptioncontext:app", "aws:sourceip").
    condition_keys: Mapping[str, ConditionValue] = field(default_factory=dict)
    # The request's encryption context, for grant constraints (None when the operation takes none).
    encryption_context: Mapping[str, str] | None = None
    cross_account: bool = True  # False: the action is never allowed to another account's principal


class Denial(enum.Enum):
    """Why a request was denied: picks the AccessDeniedException wording (section 6.9)."""

    NO_RESOURCE_ALLOW = "no resource-based policy allows"
    NO_IDENTITY_ALLOW = "no identity-based policy allows"
    EXPLICIT_DENY_RESOURCE = "with an explicit deny in a resource-based policy"
    EXPLICIT_DENY_IDENTITY = "with an explicit deny in an identity-based policy"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    # Which statement(s) or grant allowed or denied, for the audit log and ``openkms policy simulate``,
    # e.g. 'key policy statement "Enable IAM User Permissions" (#1) allows; identity policy ... allows'.
    reason: str
    denial: Denial | None = None  # set exactly when ``allowed`` is False
    grant_id: str | None = None  # the grant that allowed the request, if a grant did
