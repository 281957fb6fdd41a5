"""The operator commands of ``openkms``: server, init, admin, jobs, audit, operator, policy.

``openkms.cli.main`` imports this module only when one of them runs (or ``--help`` lists them): it pulls
in the server stack, which the client commands (``encrypt-file`` / ``decrypt-file``) do not need."""

from __future__ import annotations

import datetime as dt
import errno
import logging
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from openkms.cli.audit import audit
from openkms.cli.common import OperatorError, _fail_cleanly, _settings, console, parse_instant
from openkms.cli.identities import apply_seed_at_start, register
from openkms.cli.operator import operator
from openkms.cli.policy import policy
from openkms.cli.shares import add_share_option, share_file_option
from openkms.cli.unseal import seal, unseal

__all__ = ["OperatorError", "commands"]


@click.group()
def commands() -> None:
    """Holder of the operator commands; ``openkms.cli.main.main`` is the group users run."""


def _print_bootstrap(cred: Any) -> None:
    console.print("[bold]Bootstrap admin credential[/bold] (shown once; also saved with mode 0600):")
    console.print(f"  account:               {cred.account}")
    console.print(f"  aws_access_key_id:     {cred.access_key_id}")
    console.print(f"  aws_secret_access_key: {cred.secret_access_key}")
    console.print(f"  saved to:              {cred.path}")


@commands.command()
@click.option("--account", default=None, help="Account id of the bootstrap credential (12 digits).")
@click.option(
    "--shamir",
    "shamir_split",
    default=None,
    metavar="N/T",
    help="Protect the root key with an unseal key split into N shares, any T of which unseal "
    "(2 <= T <= N <= 16), instead of a key file. The server then starts sealed.",
)
@click.option(
    "--share-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="With --shamir: write share-<i>.txt (mode 0600), one per operator, instead of printing them.",
)
@click.pass_context
@_fail_cleanly
def init(ctx: click.Context, account: str | None, shamir_split: str | None, share_dir: Path | None) -> None:
    """Create the data directory, root of trust, database and a bootstrap admin credential."""
    from openkms.app import DEFAULT_ACCOUNT, initialize
    from openkms.cli.unseal import parse_split_option, prepare_share_dir, print_shares, write_shares

    split = parse_split_option(shamir_split) if shamir_split is not None else None
    if share_dir is not None and split is None:
        raise click.UsageError("--share-dir needs --shamir N/T")
    settings = _settings(ctx)
    if share_dir is not None:
        prepare_share_dir(share_dir, split[0] if split else 0)
    deliver = (lambda shares: write_shares(shares, share_dir)) if share_dir is not None else None
    cred = initialize(settings, account=account or DEFAULT_ACCOUNT, shamir=split, deliver_shares=deliver)
    if cred is None:
        console.print(f"{settings.data_dir} is already initialized.")
        if split is not None:
            raise OperatorError("already initialized: no new shares were created")
        return
    console.print(f"Initialized {settings.data_dir} (database {settings.database_url}).")
    if cred.shares:
        print_shares(cred.shares, share_dir)
    _print_bootstrap(cred)


@commands.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8777; 0 picks a free port).")
@click.option("--workers", type=int, default=None, help="Worker processes (default 1).")
@click.option(
    "--seed",
    "seed_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Apply this identities seed file (TOML/YAML) before serving (also [iam] seed_file).",
)
@click.pass_context
@_fail_cleanly
def server(
    ctx: click.Context, host: str | None, port: int | None, workers: int | None, seed_file: Path | None
) -> None:
    """Run the KMS endpoint (initializes a fresh data directory first)."""
    from openkms.api.server import WorkerControl, serve
    from openkms.app import (
        NodeAudit,
        initialize,
        make_handler_factory,
        make_unsealer,
        master_loop,
        preflight,
        seal_control_task,
        server_limits,
        tls_context,
    )
    from openkms.rootoftrust.control import ControlError, bind_control_socket, socket_path

    settings = _settings(
        ctx,
        **{
            "server.host": host,
            "server.port": port,
            "server.workers": workers,
            "iam.seed_file": str(seed_file) if seed_file is not None else None,
        },
    )
    logging.basicConfig(
        level=settings.logging.level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    cred = initialize(settings)
    if cred is not None:
        _print_bootstrap(cred)
    if settings.iam.seed_file:
        apply_seed_at_start(settings, Path(settings.iam.seed_file))
    preflight(settings)  # fail here, with a clear message, rather than in every worker
    scheme = "https" if settings.server.tls_cert_file else "http"
    unsealer = make_unsealer(settings)  # shamir: the server starts sealed
    # one audit commit stream for the whole node, in this (the master) process: docs/architecture.md
    node_audit = NodeAudit(settings, unsealer) if settings.audit.enabled else None
    master_task = master_loop(settings, unsealer, node_audit)
    worker_control = None
    if unsealer is not None:
        try:
            control_socket = bind_control_socket(socket_path(settings.data_dir))
        except ControlError as exc:
            raise OperatorError(str(exc)) from exc
        worker_control = WorkerControl()
        master_task = seal_control_task(settings, unsealer, control_socket, worker_control, master_task)
        status = unsealer.status()
        console.print(
            f"openkms is sealed: unseal with {status.threshold} of {status.shares} shares "
            f"(openkms operator unseal; cluster {status.cluster})"
        )

    def listening(bound_host: str, bound_port: int) -> None:
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        console.print(f"openkms listening on {scheme}://{shown}:{bound_port} (data dir {settings.data_dir})")
        sys.stdout.flush()

    if node_audit is not None:
        node_audit.start()
    try:
        serve(
            settings.server.host,
            settings.server.port,
            make_handler_factory(settings, unsealer, node_audit),
            workers=settings.server.workers,
            limits=server_limits(settings),
            ssl_context=tls_context(settings),
            on_listening=listening,
            master_task=master_task,
            worker_control=worker_control,
            before_fork=node_audit.before_fork if node_audit is not None else None,
        )
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        where = f"{settings.server.host}:{settings.server.port}"
        raise OperatorError(f"cannot listen on {where}: {exc.strerror}") from exc
    finally:
        if node_audit is not None:
            node_audit.close()


@commands.group()
def admin() -> None:
    """Manage accounts, users, roles, identity policies and access keys."""


register(admin)


# The commands below predate ``admin access-key``; kept for scripts. ``create-access-key --user NAME`` does
# not require the user to exist (a "legacy" principal whose identity policies are not modelled).
@admin.command("create-access-key")
@click.option("--account", required=True, help="Account id (12 digits).")
@click.option("--user", "user_name", default="root", show_default=True, help="IAM user name, or root.")
@click.option("--access-key-id", default=None, help="Explicit access key id (e.g. for test environments).")
@click.option("--secret-access-key", default=None, help="Explicit secret (e.g. for test environments).")
@click.pass_context
@_fail_cleanly
def create_access_key(
    ctx: click.Context, account: str, user_name: str, access_key_id: str | None, secret_access_key: str | None
) -> None:
    """Create an access key for a principal."""
    from openkms.cli.shares import offline_service
    from openkms.service.credentials import CredentialError

    service = offline_service(ctx)
    try:
        key_id, secret = service.credentials.create(
            account, user_name=user_name, access_key_id=access_key_id, secret_access_key=secret_access_key
        )
    except CredentialError as exc:
        raise click.ClickException(str(exc)) from exc
    console.print(f"aws_access_key_id     = {key_id}")
    console.print(f"aws_secret_access_key = {secret}")


@admin.command("list-access-keys")
@click.pass_context
@_fail_cleanly
def list_access_keys(ctx: click.Context) -> None:
    """List access keys (secrets are never shown again)."""
    from openkms.cli.shares import offline_service

    service = offline_service(ctx, needs_root=False)
    table = Table("access key id", "account", "principal", "created")
    for record in service.credentials.list():
        created = dt.datetime.fromtimestamp(record.created_at, dt.UTC).isoformat(timespec="seconds")
        table.add_row(record.access_key_id, record.account, record.principal_arn, created)
    console.print(table)


@admin.command("delete-access-key")
@click.argument("access_key_id")
@click.pass_context
@_fail_cleanly
def delete_access_key(ctx: click.Context, access_key_id: str) -> None:
    """Delete an access key; requests signed with it are rejected from then on."""
    from openkms.cli.shares import offline_service

    if not offline_service(ctx, needs_root=False).credentials.delete(access_key_id):
        raise click.ClickException(f"access key {access_key_id} does not exist")
    console.print(f"deleted {access_key_id}")


@commands.group()
def jobs() -> None:
    """Background work (automatic rotation, scheduled deletion)."""


@share_file_option
@jobs.command("run")
@click.option(
    "--at", "at", default=None, help="Run as if it were this instant (ISO-8601 or epoch seconds; testing)."
)
@click.pass_context
@_fail_cleanly
def jobs_run(ctx: click.Context, at: str | None) -> None:
    """Run every due job once, now or at a given instant."""
    from openkms.app import build_audit, prune_audit, service_event_recorder
    from openkms.cli.shares import offline_service
    from openkms.clock import FixedClock, SystemClock

    clock = SystemClock()
    if at is not None:
        clock = FixedClock(parse_instant(at))  # type: ignore[assignment]
    settings = _settings(ctx)
    service = offline_service(ctx, settings, clock=clock)
    audit_parts = build_audit(settings, service.core.keyring)  # RotateKey / DeleteKey service events
    try:
        now = clock.now()
        done = service.run_due_jobs(now, on_event=service_event_recorder(audit_parts, now))
        prune_audit(settings, audit_parts.database if audit_parts is not None else None, now)
    finally:
        if audit_parts is not None:
            audit_parts.writer.close()
    console.print(
        f"rotated {done['rotated']} key(s), deleted {done['deleted']} key(s), "
        f"expired {done['expired']} imported key material(s)"
    )


commands.add_command(audit)
commands.add_command(operator)
commands.add_command(policy)
operator.add_command(unseal)  # shamir: `operator unseal|seal` (cli/unseal.py)
operator.add_command(seal)
add_share_option(policy)
add_share_option(admin)  # shamir: offline commands take the shares of a quorum (cli/shares.py)
