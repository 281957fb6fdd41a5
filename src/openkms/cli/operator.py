"""``openkms operator``: root-of-trust status, root-key rotation, migration between providers."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from openkms.cli.common import OperatorError, _fail_cleanly, _settings, console
from openkms.cli.shares import share_file_option, stored_root

if TYPE_CHECKING:
    from openkms.config import Settings
    from openkms.rootoftrust.base import RootOfTrust
    from openkms.storage.base import Store


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


@share_file_option
@operator.command("rotate-root-key")
@click.option(
    "--rewrap-only", is_flag=True, help="Do not add a version; finish re-wrapping under the current one."
)
@click.pass_context
@_fail_cleanly
def rotate_root_key(ctx: click.Context, rewrap_only: bool) -> None:
    """Add a root-key version and re-wrap every stored secret under it; servers keep serving."""
    from openkms.app import build_service, open_store
    from openkms.service.root_keys import add_root_key_version, rewrap_all

    settings = _settings(ctx)
    store = open_store(settings)
    try:
        root = stored_root(ctx, settings, store)  # shamir: from the shares the operator gives
        core = build_service(settings, store=store, root=root).core
        if not rewrap_only:
            version = add_root_key_version(core.store, core.keyring, root, core.clock.now())
            console.print(f"root key version {version} created and current")
        report = rewrap_all(core)
    finally:
        store.close()
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


@share_file_option
@operator.command("migrate-root-of-trust")
@click.option(
    "--to", "target", type=click.Choice(["file", "pkcs11", "shamir"]), required=True, help="New provider."
)
@click.option("--key-file", type=click.Path(path_type=Path), help="file: the new key file (created).")
@click.option("--module", help="pkcs11: the PKCS#11 module (.so).")
@click.option("--token-label", help="pkcs11: label of the token.")
@click.option("--key-label", help="pkcs11: label of the AES key (generated in the token if absent).")
@click.option(
    "--pin-file",
    type=click.Path(path_type=Path),
    help="pkcs11: file holding the user PIN (or set OPENKMS_ROOT_OF_TRUST_PKCS11_PIN).",
)
@click.option(
    "--shares",
    "split",
    metavar="N/T",
    help="shamir: split a new unseal key into N shares, any T of which unseal (2 <= T <= N <= 16).",
)
@click.option(
    "--share-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="shamir: write the new shares to share-<i>.txt (mode 0600), one per operator, instead of printing.",
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
    split: str | None,
    share_dir: Path | None,
) -> None:
    """Re-wrap the root key (every version) under another provider, without losing a key.

    The current provider is the one the stored root key names (for shamir: give a quorum of the current
    shares, like every offline command). The root key is protected by the new provider in a single
    transaction; then the command prints the configuration to switch to. Restart the servers with it.
    """
    from openkms.app import open_store, root_of_trust
    from openkms.cli.unseal import parse_split_option

    source_settings = _settings(ctx)
    if target != "shamir" and (split is not None or share_dir is not None):
        raise click.UsageError("--shares and --share-dir go with --to shamir")
    if target == "shamir" and split is None:
        raise click.UsageError("--to shamir needs --shares N/T")
    # every option is checked before the operator is asked for shares
    target_settings = (
        None
        if target == "shamir"
        else _target_settings(ctx, target, key_file, module, token_label, key_label, pin_file)
    )
    if split is not None:
        parse_split_option(split, "--shares")
    store = open_store(source_settings)
    try:
        source = stored_root(ctx, source_settings, store)  # before anything new is created
        if target_settings is None:
            assert split is not None
            moved = _migrate_to_shamir(store, source, split, share_dir)
            _print_next_steps_shamir(moved, split)
        else:
            moved = _migrate(store, source, root_of_trust(target_settings, create=True))
            _print_next_steps(moved, target, target_settings)
    finally:
        store.close()
    if source_settings.root_of_trust.provider == "file" and source.name == "file":
        console.print(
            f"The old key file {source_settings.root_key_file} is no longer needed once every node runs "
            "with the new configuration; destroy it (and backups made with it) to retire it."
        )
    elif source.name == "shamir":
        console.print(
            "The previous shares no longer unseal anything (servers unsealed with them keep serving until "
            "they are restarted)."
        )


def _target_settings(
    ctx: click.Context,
    target: str,
    key_file: Path | None,
    module: str | None,
    token_label: str | None,
    key_label: str | None,
    pin_file: Path | None,
) -> Settings:
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
    return _settings(ctx, **overrides)


def _migrate(store: Store, source: RootOfTrust, destination: RootOfTrust) -> list[int]:
    from openkms.service.root_keys import migrate_root_of_trust as migrate

    return migrate(store, source, destination)


def _migrate_to_shamir(store: Store, source: RootOfTrust, split: str, share_dir: Path | None) -> list[int]:
    """A new unseal key split into shares: the shares are delivered (printed, or written and fsynced)
    *before* the transaction that makes them the only way to the root key commits, so a failure to
    deliver them loses nothing; a failed migration voids them."""
    from openkms.cli.unseal import parse_split_option, prepare_share_dir, print_shares, write_shares
    from openkms.rootoftrust.shamir import ShamirRootOfTrust

    shares, threshold = parse_split_option(split, "--shares")
    if share_dir is not None:
        prepare_share_dir(share_dir, shares)
    destination, texts = ShamirRootOfTrust.create(shares, threshold)
    if share_dir is not None:
        write_shares(texts, share_dir)
    print_shares(texts, share_dir)
    sys.stdout.flush()  # a broken stdout fails here, before the root key depends on the printed shares
    try:
        return _migrate(store, source, destination)
    except BaseException:
        if share_dir is not None:
            for i in range(1, shares + 1):
                (share_dir / f"share-{i}.txt").unlink(missing_ok=True)
        console.print("The migration failed and nothing changed: the new shares are void (discard them).")
        raise


def _print_next_steps_shamir(moved: list[int], split: str) -> None:
    _, threshold = (int(x) for x in split.split("/"))
    console.print(f"root key version(s) {moved or 'none'} now protected by the 'shamir' provider.")
    console.print("Switch the configuration of every node to (then restart them):")
    console.print("  [root_of_trust]", markup=False)
    console.print('  provider = "shamir"')
    console.print(
        f"Restarted servers start sealed: unseal each with {threshold} of the new shares "
        "('openkms operator unseal'). Offline commands now ask for shares (--share-file)."
    )


def _print_next_steps(moved: list[int], target: str, target_settings: Settings) -> None:
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
