"""``openkms encrypt-file`` / ``decrypt-file``: envelope encryption of files in the AWS Encryption SDK
message format, through the SDK itself (the format is never reimplemented here).

KMS generates and wraps a data key per file; the SDK encrypts the file with it in frames, streaming, so
memory stays bounded whatever the size. The output is interchangeable with ``aws-encryption-cli`` and
every AWS Encryption SDK. Output goes to a temporary file beside the target and is renamed into place
only when the whole message is done (for decryption: after the final frame and the signature verify), so
a failure never leaves truncated or unauthenticated plaintext under the output name.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

# 256 KiB frames: the SDK's per-frame Python overhead dominates at its 4 KiB default; measured with
# benchmarks/envelope.py, 256 KiB costs ~20 % less CPU than 64 KiB, and larger frames gain nothing (EPYC)
# or cost more system time (Xeon guest: page faults on the larger buffers); docs/performance.md
DEFAULT_FRAME_LENGTH = 256 * 1024
MAX_ENCRYPTED_DATA_KEYS = 16  # refuse messages that would make us call KMS without bound
SIGNED = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384"  # the SDK's default suite
UNSIGNED = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY"
ALGORITHMS = (SIGNED, UNSIGNED)


@functools.cache
def _stderr() -> Console:
    # imported on first use: with --quiet the command never loads rich (it starts once per file)
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _context(pairs: tuple[str, ...]) -> dict[str, str]:
    context: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected name=value, got {pair!r}", param_hint="--encryption-context")
        if name.startswith("aws-crypto-"):
            raise click.BadParameter(f"{name!r}: the aws-crypto- prefix is reserved by the Encryption SDK")
        context[name] = value
    return context


def _connection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--endpoint-url", default=None, help="openkms endpoint (default: AWS_ENDPOINT_URL / profile)."
        ),
        click.option("--profile", default=None, help="Profile in the shared AWS config/credentials files."),
        click.option("--region", default=None, help="Region for key ids that are not ARNs."),
        click.option(
            "--encryption-context",
            "-c",
            "context",
            multiple=True,
            metavar="NAME=VALUE",
            help="Encryption context pair (repeatable); on decrypt, pairs the message must carry.",
        ),
        click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False), default=None),
        click.option("--force", is_flag=True, help="Overwrite an existing output file."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@contextlib.contextmanager
def _progress(label: str, total: int, quiet: bool) -> Iterator[Callable[[int], None]]:
    if quiet or not _stderr().is_terminal:  # a bar only for a person watching
        yield lambda _n: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=_stderr(), transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


@contextlib.contextmanager
def _atomic_output(target: Path, force: bool) -> Iterator[IO[bytes]]:
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists (use --force to overwrite)")
    if not target.parent.is_dir():
        raise click.ClickException(f"{target.parent} is not a directory")
    # mode 0600 (mkstemp): decrypted output is plaintext
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _input_size(path: Path) -> int:
    try:
        if not path.is_file():
            raise click.ClickException(f"{path}: not a file" if path.exists() else f"{path}: no such file")
        return path.stat().st_size
    except PermissionError as exc:
        raise click.ClickException(f"{path}: permission denied") from exc


def _default_output(path: Path, decrypt: bool) -> Path:
    # the suffixes aws-encryption-cli uses, so the two tools name files alike
    if not decrypt:
        return path.with_name(path.name + ".encrypted")
    if path.suffix == ".encrypted":
        return path.with_suffix("")
    return path.with_name(path.name + ".decrypted")


@click.command("encrypt-file")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--key-id",
    "-k",
    "key_ids",
    multiple=True,
    required=True,
    help="KMS key (id, ARN, alias name or alias ARN). Repeat to let any of several keys decrypt; the first "
    "generates the data key.",
)
@click.option("--algorithm", type=click.Choice(ALGORITHMS), default=SIGNED, show_default=True)
@click.option(
    "--frame-length",
    type=click.IntRange(1, 2**31 - 1),
    default=DEFAULT_FRAME_LENGTH,
    show_default=True,
    help="Bytes of plaintext per frame.",
)
@_connection_options
def encrypt_file(
    input_path: Path, key_ids: tuple[str, ...], algorithm: str, frame_length: int, **options: Any
) -> None:
    """Encrypt INPUT under KMS keys into an AWS Encryption SDK message (default INPUT.encrypted)."""
    from openkms.cli.files_run import run_encrypt

    context = _context(options.pop("context"))
    size = _input_size(input_path)
    output = options.pop("output") or _default_output(input_path, decrypt=False)
    force, quiet = options.pop("force"), options.pop("quiet")
    with _progress(f"encrypting {input_path.name}", size, quiet) as advance:
        arns = run_encrypt(
            input_path,
            lambda: _atomic_output(output, force),
            key_ids=key_ids,
            context=context,
            algorithm=algorithm,
            frame_length=frame_length,
            advance=advance,
            **options,
        )
    if not quiet:
        _stderr().print(f"encrypted {input_path} -> {output} ({size} bytes) under {', '.join(arns)}")


@click.command("decrypt-file")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--key-id",
    "-k",
    "key_ids",
    multiple=True,
    help="Only use these KMS keys (repeatable). Default: any KMS key in the message that you may use.",
)
@_connection_options
def decrypt_file(input_path: Path, key_ids: tuple[str, ...], **options: Any) -> None:
    """Decrypt an AWS Encryption SDK message (default output: INPUT without .encrypted)."""
    from openkms.cli.files_run import run_decrypt

    context = _context(options.pop("context"))
    size = _input_size(input_path)
    output = options.pop("output") or _default_output(input_path, decrypt=True)
    force, quiet = options.pop("force"), options.pop("quiet")
    with _progress(f"decrypting {input_path.name}", size, quiet) as advance:
        used = run_decrypt(
            input_path,
            lambda: _atomic_output(output, force),
            key_ids=key_ids,
            required_context=context,
            advance=advance,
            **options,
        )
    if not quiet:
        _stderr().print(f"decrypted {input_path} -> {output} with {used}")
