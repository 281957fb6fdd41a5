"""``openkms operator``: root-of-trust status, root-key rotation, migration between providers."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import click

from openkms.cli.common import OperatorError, _fail_cleanly, _settings, console


@click.group()
def operator() -> None:
    """Root of trust and root key: status, rotation, migration."""


def _status(ctx: click.Context) -> dict[str, Any]:
    from openkms.app import open_store, root_of_trust
    from openkms.rootoftrust.base import RootOfTrustError
    from openkms.service.root_keys import unwrap_root_key_record

    settings = _settings(ctx)
    store = open_store(settings)
    try:
        with store.read() as tx:
            records = tx.list_root_keys()
            counts = tx.count_wrapped_by_root_key()
    finally:
        store.close()
    if not records:
        raise OperatorError(f"{settings.data_dir} is not initialized; run 'openkms init'")
    provider = settings.root_of_trust.provider
    sealed: bool | None = None  # only providers that seal (shamir) report true/false
    if records[-1].provider == "shamir":
        provider, sealed, health = _shamir_health(settings.data_dir)
    else:
        try:
            root = root_of_trust(settings)
            health = root.health()
            for record in records:  # healthy means: every stored root-key version unwraps
                unwrap_root_key_record(root, record)
        except RootOfTrustError as exc:  # the token is absent, the key file unreadable, wrong provider...
            health = {"name": provider, "ok": False, "error": str(exc)}
    latest = records[-1].version
    return {
        "provider": provider,
        "sealed": sealed,
        "root_key_version": latest,
        "root_key_versions": [
            {
                "version": r.version,
                "provider": r.provider,
                "created": dt.datetime.fromtimestamp(r.created_at, dt.UTC).isoformat(timespec="seconds"),
                "secrets": counts.get(r.version, 0),
            }
            for r in records
        ],
        "rewrap_pending": sum(n for v, n in counts.items() if v < latest),
        "health": health,
    }


def _shamir_health(data_dir: Path) -> tuple[str, bool | None, dict[str, Any]]:
    """The shamir root of trust lives only in a running server: ask it (its control socket).  Sealed, or
    no server, counts as unhealthy."""
    from openkms.cli.unseal import seal_status
    from openkms.rootoftrust.control import ControlError

    try:
        state = seal_status(data_dir)
    except ControlError as exc:
        return "shamir", None, {"name": "shamir", "ok": False, "error": str(exc)}
    sealed = bool(state.get("sealed", True))
    health = {
        "name": "shamir",
        "ok": not sealed,
        "sealed": sealed,
        "threshold": state.get("threshold"),
        "progress": state.get("progress"),
        "cluster": state.get("cluster"),
    }
    return "shamir", sealed, health


@operator.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_fail_cleanly
def status(ctx: click.Context, as_json: bool) -> None:
    """Provider, sealed state, root key version and health. Exits 1 when the root of trust is unhealthy."""
    report = _status(ctx)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        health = report["health"]
        console.print(f"provider:          {report['provider']}")
        sealed = report["sealed"]
        console.print(f"sealed:            {'n/a' if sealed is None else str(sealed).lower()}")
        console.print(f"root key version:  {report['root_key_version']}")
        for v in report["root_key_versions"]:
            console.print(
                f"  v{v['version']}: provider {v['provider']}, created {v['created']}, "
                f"{v['secrets']} secret(s)"
            )
        if report["rewrap_pending"]:
            console.print(
                f"re-wrap pending:   {report['rewrap_pending']} secret(s) under older versions "
                "(run 'openkms operator rotate-root-key --rewrap-only')"
            )
        console.print(f"health:            {'ok' if health.get('ok') else 'FAILING'}")
        if health.get("error"):
            console.print(f"  {health['error']}")
    if not report["health"].get("ok"):
        sys.exit(1)


@operator.command("rotate-root-key")
@click.option(
    "--rewrap-only", is_flag=True, help="Do not add a version; finish re-wrapping under the current one."
)
@click.pass_context
@_fail_cleanly
def rotate_root_key(ctx: click.Context, rewrap_only: bool) -> None:
    """Add a root-key version and re-wrap every stored secret under it; servers keep serving."""
    from openkms.app import build_service, root_of_trust
    from openkms.service.root_keys import add_root_key_version, rewrap_all

    settings = _settings(ctx)
    service = build_service(settings)
    core = service.core
    if not rewrap_only:
        version = add_root_key_version(core.store, core.keyring, root_of_trust(settings), core.clock.now())
        console.print(f"root key version {version} created and current")
    report = rewrap_all(core)
    console.print(
        f"re-wrapped under v{report.version}: {report.materials} key material(s), "
        f"{report.access_keys} access key secret(s), {report.signing_keys} audit signing key(s)"
    )
    if not report.done:
        pending = ", ".join(f"v{v}: {n}" for v, n in report.remaining.items())
        raise OperatorError(
            f"secrets still under older root-key versions ({pending}); a server may still write under an "
            "older version: run 'openkms operator rotate-root-key --rewrap-only' again"
        )


@operator.command("migrate-root-of-trust")
@click.option("--to", "target", type=click.Choice(["file", "pkcs11"]), required=True, help="New provider.")
@click.option("--key-file", type=click.Path(path_type=Path), help="file: the new key file (created).")
@click.option("--module", help="pkcs11: the PKCS#11 module (.so).")
@click.option("--token-label", help="pkcs11: label of the token.")
@click.option("--key-label", help="pkcs11: label of the AES key (generated in the token if absent).")
@click.option(
    "--pin-file",
    type=click.Path(path_type=Path),
    help="pkcs11: file holding the user PIN (or set OPENKMS_ROOT_OF_TRUST_PKCS11_PIN).",
)
@click.pass_context
@_fail_cleanly
def migrate_root_of_trust(
    ctx: click.Context,
    target: str,
    key_file: Path | None,
    module: str | None,
    token_label: str | None,
    key_label: str | None,
    pin_file: Path | None,
) -> None:
    """Re-wrap the root key (every version) under another provider, without losing a key.

    Reads the current provider from the configuration, protects the root key with the new one in a
    single transaction, then prints the configuration to switch to. Restart the servers with it.
    """
    from openkms.app import open_store, root_of_trust
    from openkms.service.root_keys import migrate_root_of_trust as migrate

    source_settings = _settings(ctx)
    overrides: dict[str, Any] = {"root_of_trust.provider": target}
    if target == "file":
        if key_file is None:
            raise click.UsageError("--to file needs --key-file (a new file; it is created)")
        overrides["root_of_trust.key_file"] = str(key_file)
    else:
        overrides.update(
            {
                "root_of_trust.pkcs11_module": module,
                "root_of_trust.pkcs11_token_label": token_label,
                "root_of_trust.pkcs11_key_label": key_label,
                "root_of_trust.pkcs11_pin_file": None if pin_file is None else str(pin_file),
            }
        )
    target_settings = _settings(ctx, **overrides)
    source = root_of_trust(source_settings)
    destination = root_of_trust(target_settings, create=True)
    store = open_store(source_settings)
    try:
        moved = migrate(store, source, destination)
    finally:
        store.close()
    console.print(f"root key version(s) {moved or 'none'} now protected by the '{target}' provider.")
    console.print("Switch the configuration of every node to (then restart them):")
    r = target_settings.root_of_trust
    console.print("  [root_of_trust]", markup=False)
    console.print(f'  provider = "{target}"')
    if target == "file":
        console.print(f'  key_file = "{target_settings.root_key_file}"')
    else:
        console.print(f'  pkcs11_module = "{r.pkcs11_module}"')
        console.print(f'  pkcs11_token_label = "{r.pkcs11_token_label}"')
        console.print(f'  pkcs11_key_label = "{r.pkcs11_key_label}"')
        if r.pkcs11_pin_file:
            console.print(f'  pkcs11_pin_file = "{r.pkcs11_pin_file}"')
        else:
            console.print("  # PIN: keep OPENKMS_ROOT_OF_TRUST_PKCS11_PIN in the service environment")
    if source_settings.root_of_trust.provider == "file":
        console.print(
            f"The old key file {source_settings.root_key_file} is no longer needed once every node runs "
            "with the new configuration; destroy it (and backups made with it) to retire it."
        )
