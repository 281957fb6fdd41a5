"""``openkms admin`` commands for identities: accounts, users, roles, identity policies, principal tags,
access keys and seed files. They work on the data directory; a running server sees the changes at its
next request (the shared generation counter)."""

from __future__ import annotations

import datetime as dt
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from openkms.cli.common import OperatorError, _fail_cleanly, console

if TYPE_CHECKING:
    from openkms.service.identities import Identities
    from openkms.service.seed import SeedReport


def _identities(ctx: click.Context, *, needs_root: bool = False) -> Identities:
    """The identities service; ``needs_root`` for the commands that create a secret (access keys): on a
    shamir deployment only those ask for shares."""
    from openkms.cli.shares import offline_service

    return offline_service(ctx, needs_root=needs_root).identities


def _operator_errors(func: Callable[..., None]) -> Callable[..., None]:
    """IdentityError / SeedError -> a clean one-line operator error (exit status 1, no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from openkms.service.identities import IdentityError
        from openkms.service.seed import SeedError

        try:
            func(*args, **kwargs)
        except (IdentityError, SeedError) as exc:
            raise OperatorError(str(exc)) from exc

    return _fail_cleanly(wrapper)


def _parse_tags(pairs: tuple[str, ...]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="tags")
        tags[key] = value
    return tags


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


def _principal_options(func: Callable[..., None]) -> Callable[..., None]:
    """--account A (--user NAME | --role NAME)."""
    func = click.option("--role", "role", default=None, help="Role name.")(func)
    func = click.option("--user", "user", default=None, help="IAM user name.")(func)
    return click.option("--account", required=True, help="Account id (12 digits).")(func)


def _kind_name(user: str | None, role: str | None) -> tuple[str, str]:
    if (user is None) == (role is None):
        raise click.UsageError("name exactly one principal: --user NAME or --role NAME")
    return ("user", user) if user is not None else ("role", role)  # type: ignore[return-value]


# ------------------------------------------------------------------------------------ users / roles


def _principal_group(kind: str) -> click.Group:
    @click.group(name=kind, help=f"Manage IAM {kind}s.")
    def group() -> None:
        pass

    @group.command("create", help=f"Create an IAM {kind}.")
    @click.argument("name")
    @click.option("--account", required=True, help="Account id (12 digits).")
    @click.option("--path", default="/", show_default=True, help="IAM path, e.g. /engineering/.")
    @click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag (repeatable).")
    @click.option(
        "--id", "principal_id", default=None, help=f"Explicit unique id ({kind} ids start AIDA/AROA)."
    )
    @click.pass_context
    @_operator_errors
    def create(
        ctx: click.Context,
        name: str,
        account: str,
        path: str,
        tags: tuple[str, ...],
        principal_id: str | None,
    ) -> None:
        record = _identities(ctx).create(
            account, kind, name, path=path, tags=_parse_tags(tags), principal_id=principal_id
        )
        console.print(f"created {kind} {record.arn} (id {record.principal_id})")

    @group.command("delete", help=f"Delete an IAM {kind} with its tags and policies.")
    @click.argument("name")
    @click.option("--account", required=True, help="Account id (12 digits).")
    @click.option("--force", is_flag=True, help="Also delete its access keys.")
    @click.pass_context
    @_operator_errors
    def delete(ctx: click.Context, name: str, account: str, force: bool) -> None:
        keys = _identities(ctx).delete(account, kind, name, force=force)
        console.print(f"deleted {kind} {name}" + (f" and access keys {', '.join(keys)}" if keys else ""))

    @group.command("list", help=f"List IAM {kind}s.")
    @click.option("--account", default=None, help="Only this account.")
    @click.pass_context
    @_operator_errors
    def list_(ctx: click.Context, account: str | None) -> None:
        table = Table("account", "name", "arn", "id", "created")
        for record in _identities(ctx).list_principals(account, kind):
            table.add_row(
                record.account, record.name, record.arn, record.principal_id, _when(record.created_at)
            )
        console.print(table)

    return group


user = _principal_group("user")
role = _principal_group("role")


# ----------------------------------------------------------------------------------------- policies


@click.group()
def policy() -> None:
    """Attach identity (IAM) policies to users and roles."""


@policy.command("put")
@_principal_options
@click.option("--name", "policy_name", required=True, help="Policy name.")
@click.argument("document", type=click.File("r", encoding="utf-8"))
@click.pass_context
@_operator_errors
def policy_put(
    ctx: click.Context, account: str, user: str | None, role: str | None, policy_name: str, document: Any
) -> None:
    """Attach (or replace) the policy DOCUMENT (a JSON file, or - for standard input)."""
    kind, name = _kind_name(user, role)
    try:
        text = document.read()
    except UnicodeDecodeError as exc:
        raise OperatorError("the policy document is not UTF-8 text") from exc
    _identities(ctx).put_policy(account, kind, name, policy_name, text)
    console.print(f"attached policy {policy_name} to {kind} {name}")


@policy.command("delete")
@_principal_options
@click.option("--name", "policy_name", required=True, help="Policy name.")
@click.pass_context
@_operator_errors
def policy_delete(
    ctx: click.Context, account: str, user: str | None, role: str | None, policy_name: str
) -> None:
    """Detach and delete a policy."""
    kind, name = _kind_name(user, role)
    _identities(ctx).delete_policy(account, kind, name, policy_name)
    console.print(f"deleted policy {policy_name} of {kind} {name}")


@policy.command("list")
@_principal_options
@click.option("--show", is_flag=True, help="Print the documents.")
@click.pass_context
@_operator_errors
def policy_list(ctx: click.Context, account: str, user: str | None, role: str | None, show: bool) -> None:
    """List the policies of a user or role."""
    kind, name = _kind_name(user, role)
    for record in _identities(ctx).policies(account, kind, name):
        if show:
            console.print(f"# {record.policy_name}")
            sys.stdout.write(record.document.rstrip("\n") + "\n")
            sys.stdout.flush()
        else:
            console.print(record.policy_name)


# --------------------------------------------------------------------------------------------- tags


@click.group()
def tag() -> None:
    """Tag users and roles (aws:PrincipalTag/<key> in policy conditions)."""


@tag.command("add")
@_principal_options
@click.argument("tags", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.pass_context
@_operator_errors
def tag_add(
    ctx: click.Context, account: str, user: str | None, role: str | None, tags: tuple[str, ...]
) -> None:
    """Add or replace tags."""
    kind, name = _kind_name(user, role)
    _identities(ctx).tag(account, kind, name, _parse_tags(tags))
    console.print(f"tagged {kind} {name}")


@tag.command("remove")
@_principal_options
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@click.pass_context
@_operator_errors
def tag_remove(
    ctx: click.Context, account: str, user: str | None, role: str | None, keys: tuple[str, ...]
) -> None:
    """Remove tags by key."""
    kind, name = _kind_name(user, role)
    _identities(ctx).untag(account, kind, name, keys)
    console.print(f"untagged {kind} {name}")


@tag.command("list")
@_principal_options
@click.pass_context
@_operator_errors
def tag_list(ctx: click.Context, account: str, user: str | None, role: str | None) -> None:
    """Print the tags of a user or role as KEY=VALUE lines."""
    kind, name = _kind_name(user, role)
    for key, value in _identities(ctx).tags(account, kind, name).items():
        console.print(f"{key}={value}")


# -------------------------------------------------------------------------------------- access keys


@click.group("access-key")
def access_key() -> None:
    """Access keys of the account root, users and role sessions."""


@access_key.command("create")
@click.option("--account", required=True, help="Account id (12 digits).")
@click.option("--user", default=None, help="An existing IAM user.")
@click.option("--role", default=None, help="An existing role (with --session).")
@click.option("--session", default=None, help="Role session name: calls appear as assumed-role/ROLE/SESSION.")
@click.option("--root", is_flag=True, help="The account root.")
@click.option("--access-key-id", default=None, help="Explicit access key id (e.g. for test environments).")
@click.option("--secret-access-key", default=None, help="Explicit secret (e.g. for test environments).")
@click.pass_context
@_operator_errors
def access_key_create(
    ctx: click.Context,
    account: str,
    user: str | None,
    role: str | None,
    session: str | None,
    root: bool,
    access_key_id: str | None,
    secret_access_key: str | None,
) -> None:
    """Create an access key; the secret is printed once."""
    if sum((root, user is not None, role is not None)) != 1:
        raise click.UsageError("choose exactly one of --root, --user NAME, --role NAME --session NAME")
    record, secret = _identities(ctx, needs_root=True).create_access_key(
        account, user=user, role=role, session=session,
        access_key_id=access_key_id, secret_access_key=secret_access_key,
    )  # fmt: skip
    console.print(f"principal             = {record.principal_arn}")
    console.print(f"aws_access_key_id     = {record.access_key_id}")
    console.print(f"aws_secret_access_key = {secret}")


@access_key.command("list")
@click.option("--account", default=None, help="Only this account.")
@click.pass_context
@_fail_cleanly
def access_key_list(ctx: click.Context, account: str | None) -> None:
    """List access keys (secrets are never shown again)."""
    table = Table("access key id", "account", "type", "principal", "created")
    for record in _identities(ctx).credentials.list():
        if account is None or record.account == account:
            table.add_row(
                record.access_key_id, record.account, record.principal_type, record.principal_arn,
                _when(record.created_at),
            )  # fmt: skip
    console.print(table)


@access_key.command("delete")
@click.argument("access_key_id")
@click.pass_context
@_fail_cleanly
def access_key_delete(ctx: click.Context, access_key_id: str) -> None:
    """Delete an access key; requests signed with it are rejected from then on."""
    if not _identities(ctx).credentials.delete(access_key_id):
        raise OperatorError(f"access key {access_key_id} does not exist")
    console.print(f"deleted {access_key_id}")


# ----------------------------------------------------------------------------------- accounts, seed


@click.group()
def account() -> None:
    """Accounts known to this deployment (labels; any 12-digit account may own keys)."""


@account.command("create")
@click.argument("account_id")
@click.option("--name", default="", help="A label.")
@click.pass_context
@_operator_errors
def account_create(ctx: click.Context, account_id: str, name: str) -> None:
    """Register an account (or rename it)."""
    _identities(ctx).put_account(account_id, name)
    console.print(f"account {account_id} registered")


@account.command("list")
@click.pass_context
@_operator_errors
def account_list(ctx: click.Context) -> None:
    """List registered accounts."""
    table = Table("account", "name", "created")
    for record in _identities(ctx).list_accounts():
        table.add_row(record.account, record.name, _when(record.created_at))
    console.print(table)


def print_seed_report(report: SeedReport, path: Path) -> None:
    for line in report.changes:
        console.print(f"  {line}")
    console.print(f"seed {path}: {len(report.changes)} change(s), {report.unchanged} item(s) unchanged")


@click.command("seed")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
@_operator_errors
def seed(ctx: click.Context, path: Path) -> None:
    """Apply a seed file (TOML, or YAML by its .yaml/.yml suffix); idempotent."""
    from openkms.service.seed import apply_seed, read_seed_file

    accounts = read_seed_file(path)  # checked before the data directory is touched
    print_seed_report(apply_seed(_identities(ctx, needs_root=True), accounts), path)


def apply_seed_at_start(settings: Any, path: Path) -> None:
    """``openkms server --seed`` / ``[iam] seed_file``: apply before serving; a bad file stops the start."""
    from openkms.app import build_service
    from openkms.service.identities import IdentityError
    from openkms.service.seed import SeedError, apply_seed, read_seed_file

    _refuse_seed_while_sealed(settings, path)
    try:
        accounts = read_seed_file(path)
        service = build_service(settings)
        try:
            print_seed_report(apply_seed(service.identities, accounts), path)
        finally:
            service.core.store.close()
    except (IdentityError, SeedError) as exc:
        raise OperatorError(str(exc)) from exc


def _refuse_seed_while_sealed(settings: Any, path: Path) -> None:
    """A shamir server starts sealed: it holds no root key to wrap the seed's access-key secrets with."""
    from openkms.app import open_store, shamir_params

    store = open_store(settings)
    try:
        params = shamir_params(settings, store)
    finally:
        store.close()
    if params is not None:
        raise OperatorError(
            "a shamir deployment starts sealed and cannot apply a seed file at start-up; apply it with "
            f"'openkms admin seed {path}' (it asks for {params.threshold} shares) and start without --seed"
        )


def register(admin: click.Group) -> None:
    for command in (user, role, policy, tag, access_key, account, seed):
        admin.add_command(command)
