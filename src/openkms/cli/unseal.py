"""``openkms operator unseal|seal`` (added to the ``operator`` group of ``cli/operator.py``) and the share
handling of ``openkms init --shamir``.

The commands talk to the running server of the data directory through its control socket
(``openkms.rootoftrust.control``); they never open the database and never write a share anywhere.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click

from openkms.cli.common import OperatorError, _settings, console

__all__ = [
    "parse_split_option",
    "prepare_share_dir",
    "print_shares",
    "seal",
    "seal_status",
    "unseal",
    "write_shares",
]


def parse_split_option(text: str, option: str = "--shamir") -> tuple[int, int]:
    from openkms.rootoftrust.shamir import parse_split

    try:
        return parse_split(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def prepare_share_dir(share_dir: Path, shares: int) -> None:
    """Create ``share_dir`` (0700) and make sure no share file would be overwritten."""
    share_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for i in range(1, shares + 1):
        if (share_dir / f"share-{i}.txt").exists():
            path = share_dir / f"share-{i}.txt"
            raise OperatorError(f"{path} already exists; refusing to overwrite a share")


def write_shares(shares: Sequence[str], share_dir: Path) -> None:
    """Write ``share-<i>.txt`` (0600, never overwriting) and fsync them, before the root key is stored."""
    written: list[Path] = []
    for i, text in enumerate(shares, start=1):
        path = share_dir / f"share-{i}.txt"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
            written.append(path)
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(text + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            for done in written:  # shares of a split that will never be stored: useless, remove them
                done.unlink(missing_ok=True)
            raise OperatorError(f"cannot write {path}: {exc.strerror}; nothing was initialized") from exc


def print_shares(shares: Sequence[str], share_dir: Path | None) -> None:
    from openkms.rootoftrust.shamir import Share

    threshold = Share.decode(shares[0]).threshold
    if share_dir is not None:
        console.print(
            f"[bold]Unseal key split into {len(shares)} shares, any {threshold} of which unseal.[/bold] "
            f"Written to {share_dir}/share-1.txt .. share-{len(shares)}.txt (mode 0600): give one file to "
            "each operator, then delete them here. They are not stored anywhere else."
        )
        return
    console.print(
        f"[bold]Unseal key split into {len(shares)} shares, any {threshold} of which unseal.[/bold] "
        "Shown once, stored nowhere: give one to each operator."
    )
    for i, text in enumerate(shares, start=1):
        console.print(f"  share {i}: {text}")


def _request(ctx: click.Context, request: dict[str, Any]) -> dict[str, Any]:
    from openkms.rootoftrust.control import ControlError, control_request, socket_path

    settings = _settings(ctx)
    try:
        return control_request(socket_path(settings.data_dir), request)
    except ControlError as exc:
        raise OperatorError(str(exc)) from exc


def seal_status(data_dir: Path) -> dict[str, Any]:
    """The running server's seal state (``{"sealed", "threshold", "progress", ...}``), for other commands
    such as ``operator status``; raises ``ControlError`` when no server runs on ``data_dir``."""
    from openkms.rootoftrust.control import control_request, socket_path

    return control_request(socket_path(data_dir), {"op": "status"})


def _describe(answer: dict[str, Any]) -> str:
    if not answer.get("sealed", True):
        return "unsealed"
    return f"sealed: {answer.get('progress', 0)} of {answer.get('threshold', '?')} shares accepted"


def read_share_files(share_files: Sequence[Path]) -> Iterator[str]:
    """The shares in these files: one per non-empty line, several per file allowed."""
    for path in share_files:
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except OSError as exc:
            raise OperatorError(f"cannot read {path}: {exc.strerror}") from exc
        yield from (line.strip() for line in text.splitlines() if line.strip())


def _shares_from(share_files: Sequence[Path]) -> Iterable[str]:
    if share_files:
        yield from read_share_files(share_files)
    elif sys.stdin.isatty():
        yield click.prompt("Unseal share", hide_input=True, prompt_suffix=" (input hidden): ").strip()
    else:
        yield from (line.strip() for line in sys.stdin if line.strip())


@click.command("unseal")
@click.option(
    "--share-file",
    "share_files",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Read the share from this file (repeatable). Default: prompt without echo, or one share per "
    "line on standard input when it is not a terminal.",
)
@click.option("--reset", is_flag=True, help="Discard the shares accepted so far, then stop.")
@click.pass_context
def unseal(ctx: click.Context, share_files: tuple[Path, ...], reset: bool) -> None:
    """Give the running server one (or more) unseal shares; it unseals once the threshold is met."""
    if reset:
        console.print(f"progress reset; {_describe(_request(ctx, {'op': 'reset'}))}")
        return
    rejected = 0
    answer: dict[str, Any] | None = None
    for share in _shares_from(share_files):
        answer = _request(ctx, {"op": "unseal", "share": share})
        if not answer.get("ok"):
            rejected += 1
            console.print(f"share rejected: {answer.get('error', 'unknown error')}")
        elif answer.get("changed"):
            console.print("share accepted; the threshold is met: openkms is unsealed")
        else:
            console.print(f"share accepted; {_describe(answer)}")
    if answer is None:  # no share given: just report
        console.print(_describe(_request(ctx, {"op": "status"})))
    if rejected:
        raise OperatorError(f"{rejected} share(s) rejected")


@click.command("seal")
@click.pass_context
def seal(ctx: click.Context) -> None:
    """Seal the running server: wipe the unseal key and root keys from every process."""
    answer = _request(ctx, {"op": "seal"})
    if not answer.get("ok"):
        raise OperatorError(str(answer.get("error", "the server refused to seal")))
    console.print("openkms is sealed" if answer.get("changed") else "openkms was already sealed")
