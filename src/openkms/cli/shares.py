"""Offline commands on a shamir deployment: the root of trust rebuilt from a quorum of operator shares.

Every command that opens the keyring without a server (``openkms admin ...``, ``jobs run``, ``policy
simulate``, ``operator rotate-root-key``, ``operator migrate-root-of-trust``, ``audit public-key``) gets
its root of trust from :func:`stored_root`.  For ``file`` and ``pkcs11`` that is the configured provider;
when the stored root key is protected by shamir shares, the operator supplies T of them for this one
command — ``--share-file F`` (repeatable), typed at a hidden prompt on a terminal, or one per line on
standard input — and they go through the server's own :class:`~openkms.rootoftrust.unseal.Unsealer`, so
wrong, duplicate, malformed and foreign shares are refused exactly as ``operator unseal`` refuses them.
The shares and the unseal key live only in this short-lived process; nothing is written
(docs/adr/0002-unseal.md, "Offline commands").
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from openkms.cli.common import OperatorError, _settings, console
from openkms.cli.unseal import read_share_files

if TYPE_CHECKING:
    from openkms.config import Settings
    from openkms.rootoftrust.base import RootOfTrust
    from openkms.rootoftrust.shamir import ShamirParams
    from openkms.service.kms import KmsService
    from openkms.storage.base import Store

__all__ = ["add_share_option", "offline_service", "share_file_option", "stored_root"]

_META_KEY = "openkms.share_files"
_HELP = (
    "shamir deployments: a file holding an unseal share (repeatable; several shares may be given one per "
    "line). Without it the shares are prompted for without echo on a terminal, or read one per line from "
    "standard input. Ignored for file and pkcs11."
)
F = TypeVar("F", bound=click.Command)


def _remember(ctx: click.Context, _param: click.Parameter, value: tuple[Path, ...]) -> tuple[Path, ...]:
    # ctx.meta is shared by the whole context chain, so the helper finds the files wherever it runs
    if value:
        ctx.meta[_META_KEY] = (*ctx.meta.get(_META_KEY, ()), *value)
    return value


def _option() -> click.Option:
    return click.Option(
        ["--share-file", "share_files"],
        multiple=True,
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        expose_value=False,
        callback=_remember,
        help=_HELP,
    )


def share_file_option(command: F) -> F:
    """Add ``--share-file`` to one command (applied on top of ``@click.command``)."""
    command.params.append(_option())
    return command


def add_share_option(command: click.Command) -> None:
    """Add ``--share-file`` to ``command`` and, for a group, to every command below it."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_share_option(sub)
        return
    if not any(p.name == "share_files" for p in command.params):
        command.params.append(_option())


def stored_root(ctx: click.Context, settings: Settings, store: Store) -> RootOfTrust:
    """The root of trust that unwraps the stored root keys: the configured provider, or — when the latest
    stored root key is protected by shamir shares — one rebuilt from T shares given by the operator."""
    from openkms.app import root_of_trust, shamir_params

    params = shamir_params(settings, store)
    if params is None:
        return root_of_trust(settings)
    return _unseal_offline(ctx, settings, store, params)


def offline_service(
    ctx: click.Context, settings: Settings | None = None, *, needs_root: bool = True, **kwargs: Any
) -> KmsService:
    """``build_service`` for an offline command, asking for shares on a shamir deployment when the
    command reads or writes a secret (``needs_root``); the others get a locked keyring, which refuses
    anything that would need the root key rather than guess."""
    from openkms.app import build_service, open_store, shamir_params
    from openkms.keyring.keyring import Keyring

    settings = settings or _settings(ctx)
    store = open_store(settings)
    try:
        params = shamir_params(settings, store)
        if params is not None and not needs_root:
            return build_service(settings, store=store, keyring=Keyring.locked(), **kwargs)
        root = _unseal_offline(ctx, settings, store, params) if params is not None else None
        return build_service(settings, store=store, root=root, **kwargs)
    except BaseException:
        store.close()
        raise


def _unseal_offline(
    ctx: click.Context, settings: Settings, store: Store, params: ShamirParams
) -> RootOfTrust:
    from openkms.app import stored_wrapped_root_keys
    from openkms.rootoftrust.unseal import SharesDoNotMatch, Unsealer, UnsealRejected

    unsealer = Unsealer(lambda: stored_wrapped_root_keys(store))
    given = 0
    for text in _shares(ctx, params):
        given += 1
        try:
            status = unsealer.submit(text)
        except SharesDoNotMatch:
            raise OperatorError(
                f"the {params.threshold} shares given do not reconstruct the unseal key of this cluster "
                "(at least one is wrong); nothing was done"
            ) from None
        except UnsealRejected as exc:
            raise OperatorError(f"share {given} rejected: {exc}; nothing was done") from None
        if not status.sealed:
            root = unsealer.root_of_trust()
            assert root is not None
            return root
    if given == 0:
        raise OperatorError(
            f"the root key of {settings.data_dir} is protected by shamir shares "
            f"(cluster {params.fingerprint}): this command needs {params.threshold} of the "
            f"{params.shares} unseal shares. Give them with --share-file FILE (repeatable), type them when "
            "prompted on a terminal, or pipe them one per line on standard input (a running server's "
            "unseal does not extend to offline commands)"
        )
    raise OperatorError(
        f"only {given} of the {params.threshold} shares needed were given (cluster {params.fingerprint}); "
        "nothing was done"
    )


def _shares(ctx: click.Context, params: ShamirParams) -> Iterator[str]:
    files: tuple[Path, ...] = ctx.meta.get(_META_KEY, ())
    if files:
        yield from read_share_files(files)
    elif sys.stdin is not None and sys.stdin.isatty():
        console.print(
            f"The root key is protected by shamir shares (cluster {params.fingerprint}): "
            f"enter {params.threshold} of the {params.shares} shares."
        )
        for k in range(1, params.threshold + 1):
            prompt = f"Unseal share {k} of {params.threshold}"
            yield click.prompt(prompt, hide_input=True, prompt_suffix=" (input hidden): ").strip()
    elif sys.stdin is not None:
        # line by line, stopping at the threshold (the caller stops asking): the rest stays unread
        while line := sys.stdin.readline():
            if line.strip():
                yield line.strip()
