"""Who is calling, from where, in which Region: the context every service call receives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Caller:
    account: str
    principal_arn: str
    access_key_id: str
    # The integrated service this access key acts through ("s3"): its calls carry kms:ViaService
    # (docs/authorization.md). None for direct calls.
    via_service: str | None = None


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str
    caller: Caller
    region: str
    source_ip: str
    user_agent: str
    now: float
    # Key ARNs this request resolved, in order (may repeat): the audit event's ``resources``. Filled by
    # ``Core.resolve`` (and by Decrypt for the key named in the ciphertext).
    resources: list[str] = field(default_factory=list)
    # The audit event's ``additionalEventData`` set by a handler (RetireGrant by token: the grant id).
    # Only values that are safe to log go here; never tokens, secrets or payloads.
    additional_event_data: dict[str, str] = field(default_factory=dict)
    # The validated request members: the source of request condition keys (kms-semantics.md 6.5).
    params: Mapping[str, Any] = field(default_factory=dict)
    secure: bool = False  # aws:SecureTransport: the request came over TLS
    # The reason of every authorization decision taken for this request, for the audit record.
    decisions: list[str] = field(default_factory=list)
    # aws:userid of the caller (AIDA..., AROA...:session, the account for root), added by each authorization
    # check (the context is frozen, its lists are not): the audit record's userIdentity.principalId.
    principal_ids: list[str] = field(default_factory=list)
