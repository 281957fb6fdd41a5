"""Who is calling, from where, in which Region: the context every service call receives."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    account: str
    principal_arn: str
    access_key_id: str
    user_name: str


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str
    caller: Caller
    region: str
    source_ip: str
    user_agent: str
    now: float
