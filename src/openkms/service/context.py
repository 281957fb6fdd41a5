"""Who is calling, from where, in which Region: the context every service call receives."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Caller:
    account: str
    principal_arn: str
    access_key_id: str


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
