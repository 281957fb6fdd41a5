"""``openkms policy simulate``: may PRINCIPAL do ACTION on KEY with CONTEXT? (offline, stored policies)."""

from __future__ import annotations

import sys

import click

from openkms.cli.common import _fail_cleanly, console


@click.group()
def policy() -> None:
    """Key policies: simulate a permission check."""


def _pairs(values: tuple[str, ...], option: str) -> list[tuple[str, str]]:
    pairs = []
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint=option)
        pairs.append((name, value))
    return pairs


@policy.command("simulate")
@click.option("--principal", required=True, help="Caller ARN (arn:aws:iam::ACCOUNT:root, ...:user/NAME).")
@click.option("--action", required=True, help="Permission, e.g. kms:Decrypt or Decrypt.")
@click.option(
    "--key", default=None, help="Key id, key ARN, alias name or alias ARN (not for account actions)."
)
@click.option(
    "--region", default="us-east-1", show_default=True, help="Region of a key named by id or alias."
)
@click.option("--context", "contexts", multiple=True, help="Encryption context pair k=v (repeatable).")
@click.option(
    "--condition",
    "conditions",
    multiple=True,
    help="Extra condition key, e.g. kms:ViaService=s3.us-east-1.amazonaws.com or aws:SourceIp=10.0.0.1 "
    "(true/false are booleans, digits numbers, a,b a list).",
)
@click.pass_context
@_fail_cleanly
def simulate(
    ctx: click.Context,
    principal: str,
    action: str,
    key: str | None,
    region: str,
    contexts: tuple[str, ...],
    conditions: tuple[str, ...],
) -> None:
    """Evaluate one request against the stored key policy; exit 0 if allowed, 1 if denied, 2 if the
    question is wrong (unknown key or alias, bad principal)."""
    from openkms.cli.shares import offline_service
    from openkms.service.simulation import SimulationError, parse_condition_value
    from openkms.service.simulation import simulate as run

    service = offline_service(ctx, needs_root=False)
    condition_values = {name: parse_condition_value(v) for name, v in _pairs(conditions, "--condition")}
    source_ip = str(condition_values.pop("aws:SourceIp", "127.0.0.1"))
    try:
        result = run(
            service.core,
            principal_arn=principal,
            action=action,
            key=key,
            region=region,
            context=dict(_pairs(contexts, "--context")),
            conditions=condition_values,
            source_ip=source_ip,
        )
    except SimulationError as exc:
        # exit 2, not 1: "denied" must never be confused with "could not ask"
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    request, decision = result.request, result.decision
    console.print(
        f"{'ALLOWED' if decision.allowed else 'DENIED'}: kms:{request.action} on {request.resource}"
    )
    console.print(f"reason: {decision.reason}")
    if not decision.allowed:
        console.print(result.message)
    sys.exit(0 if decision.allowed else 1)
