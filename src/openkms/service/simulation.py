"""``openkms policy simulate``: one permission check, offline, against the stored policies.

The request goes through the same :class:`Authorizer` (principal source, grants, condition keys, evaluator)
as a real call; nothing is created or changed (an ``alias/aws/...`` name whose managed key does not
exist yet is simply not found).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from openkms import errors
from openkms.authz.model import AccessRequest, ConditionValue, Decision
from openkms.identifiers import key_arn, parse_key_ref
from openkms.service import condition_keys
from openkms.service.authorization import access_denied_message
from openkms.service.context import Caller, RequestContext
from openkms.service.core import Core

_PRINCIPAL = re.compile(r"arn:[\w-]+:(?:iam|sts)::(\d{12}):\S+\Z")
ACCOUNT_ACTIONS = frozenset({"CreateKey", "ListKeys", "ListAliases", "GenerateRandom", "ListRetirableGrants"})


class SimulationError(ValueError):
    """The question cannot be asked: bad principal, unknown key, missing key."""


@dataclass(frozen=True)
class Simulation:
    request: AccessRequest
    decision: Decision

    @property
    def message(self) -> str:
        """What the caller would be answered."""
        if self.decision.allowed:
            return "allowed"
        return "AccessDeniedException: " + access_denied_message(self.request, self.decision)


def parse_condition_value(text: str) -> ConditionValue:
    """``true``/``false`` are booleans, integers are numbers, ``a,b`` (with a comma) a multi-valued key."""
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if "," in text:
        return tuple(v for v in text.split(",") if v)
    return text


def simulate(
    core: Core,
    *,
    principal_arn: str,
    action: str,
    key: str | None,
    region: str = "us-east-1",
    context: Mapping[str, str] | None = None,
    conditions: Mapping[str, ConditionValue] | None = None,
    source_ip: str = "127.0.0.1",
    now: float | None = None,
) -> Simulation:
    match = _PRINCIPAL.match(principal_arn)
    if match is None:
        raise SimulationError(f"not a principal ARN: {principal_arn}")
    account = match.group(1)
    action = action.removeprefix("kms:")
    params: dict[str, object] = {}
    member = condition_keys.context_member(action)
    if member is not None:
        params[member] = dict(context or {})
    extra = {name.lower(): value for name, value in (conditions or {}).items()}
    caller = Caller(account, principal_arn, "simulate")
    ctx = RequestContext(
        request_id="simulate",
        caller=caller,
        region=region,
        source_ip=source_ip,
        user_agent="openkms policy simulate",
        now=core.clock.now() if now is None else now,
        params=params,
        secure=True,
    )
    authorizer = core.authorizer
    if key is None:
        if action not in ACCOUNT_ACTIONS:
            raise SimulationError(f"kms:{action} needs --key")
        request = authorizer.account_request(ctx, action, extra)
        return Simulation(request, authorizer.decide(None, request))
    try:
        ref = parse_key_ref(key, partition=core.partition, region=region, allow_alias=True)
    except errors.KMSError as exc:
        raise SimulationError(exc.message) from exc
    key_account = ref.account or account
    key_region = ref.region or region
    key_id = ref.key_id
    if ref.alias_name is not None:
        alias = core.directory.alias(key_account, key_region, ref.alias_name)
        if alias is None:
            raise SimulationError(f"alias {ref.alias_name} does not exist in {key_account} {key_region}")
        key_id = alias.target_key_id
    assert key_id is not None
    record = core.directory.key(key_account, key_region, key_id)
    if record is None:
        raise SimulationError(
            f"key {key_arn(core.partition, key_region, key_account, key_id)} does not exist"
        )
    request = authorizer.key_request(ctx, action, record, request_alias=ref.alias_name, extra=extra)
    return Simulation(request, authorizer.decide(None, request))
