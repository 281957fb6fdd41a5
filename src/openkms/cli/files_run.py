"""The work behind ``encrypt-file`` / ``decrypt-file``: stream a file through the AWS Encryption SDK and
turn every failure (files, KMS answers, corrupt messages, connection problems) into one clean message."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import aws_encryption_sdk
import click
from aws_encryption_sdk import exceptions as sdk_errors
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy
from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidSignature, InvalidTag

from openkms.cli.files_kms import (
    EndpointKmsKeyProvider,
    FileCommandError,
    KmsClients,
    quiet_sdk_logs,
)

OutputOpener = Callable[[], contextlib.AbstractContextManager[IO[bytes]]]
READ_CHUNK = 64 * 1024  # at least; encryption reads a frame's worth at a time


class _Tracked:
    """A read-only file wrapper that reports how many bytes the SDK has consumed (the progress bar)."""

    def __init__(self, raw: IO[bytes], advance: Callable[[int], None]) -> None:
        self._raw = raw
        self._advance = advance

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._advance(len(data))
        return data

    def close(self) -> None:
        self._raw.close()

    @property
    def closed(self) -> bool:
        return self._raw.closed


def _sdk_client() -> Any:
    return aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
        max_encrypted_data_keys=16,  # bound the KMS calls a hostile message can cause
    )


def _kms_detail(clients: KmsClients) -> str:
    seen: list[str] = []
    for err in clients.errors:
        text = f"{err.operation}: {err.code}: {err.message}".rstrip(": ")
        if text not in seen:
            seen.append(text)
    return ("; KMS answered " + " / ".join(seen)) if seen else ""


@contextlib.contextmanager
def _clean_errors(clients: KmsClients, path: Path, decrypting: bool) -> Iterator[None]:
    try:
        yield
    except FileCommandError as exc:
        raise click.ClickException(str(exc)) from exc
    except (InvalidTag, InvalidSignature) as exc:
        raise click.ClickException(f"{path}: the message is corrupt or was tampered with") from exc
    except (sdk_errors.DecryptKeyError, sdk_errors.MasterKeyProviderError) as exc:
        detail = _kms_detail(clients)
        what = "none of the message's data keys could be decrypted" if decrypting else str(exc)
        raise click.ClickException(f"{path}: {what}{detail}") from exc
    except (sdk_errors.GenerateKeyError, sdk_errors.EncryptKeyError) as exc:
        detail = _kms_detail(clients)
        raise click.ClickException(f"{path}: KMS could not wrap the data key{detail}") from exc
    except (sdk_errors.SerializationError, sdk_errors.NotSupportedError) as exc:
        raise click.ClickException(
            f"{path}: not a valid AWS Encryption SDK message ({exc})" if decrypting else f"{path}: {exc}"
        ) from exc
    except sdk_errors.AWSEncryptionSDKClientError as exc:
        raise click.ClickException(f"{path}: {type(exc).__name__}: {exc}") from exc
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise click.ClickException(f"KMS answered {err.get('Code')}: {err.get('Message')}") from exc
    except BotoCoreError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"{exc.filename or path}: {exc.strerror or exc}") from exc


def _make_clients(endpoint_url: str | None, profile: str | None, region: str | None) -> KmsClients:
    try:
        return KmsClients(endpoint_url=endpoint_url, profile=profile, region=region)
    except FileCommandError as exc:
        raise click.ClickException(str(exc)) from exc


def run_encrypt(
    input_path: Path,
    open_output: OutputOpener,
    *,
    key_ids: tuple[str, ...],
    context: dict[str, str],
    algorithm: str,
    frame_length: int,
    advance: Callable[[int], None],
    endpoint_url: str | None,
    profile: str | None,
    region: str | None,
) -> list[str]:
    """Encrypt ``input_path`` into the output; -> the key ARNs that can decrypt it."""
    quiet_sdk_logs()
    clients = _make_clients(endpoint_url, profile, region)
    with _clean_errors(clients, input_path, decrypting=False):
        arns = [clients.resolve(key_id) for key_id in key_ids]
        provider = EndpointKmsKeyProvider(clients=clients)
        for arn in arns:
            provider.add_master_key(arn)
        with open(input_path, "rb") as raw, open_output() as out:
            source = _Tracked(raw, advance)
            with _sdk_client().stream(
                mode="e",
                source=source,
                key_provider=provider,
                encryption_context=context,
                algorithm=getattr(Algorithm, algorithm),
                frame_length=frame_length,
            ) as stream:
                # read() in frame-sized pieces: the SDK's iterator hands out 8 KiB lines, and every
                # piece it hands out costs a copy of what is left of its internal buffer
                while chunk := stream.read(max(READ_CHUNK, frame_length)):
                    out.write(chunk)
    return arns


def _check_context(header: Any, required: dict[str, str], path: Path) -> None:
    actual = dict(header.encryption_context)
    missing = {k: v for k, v in required.items() if actual.get(k) != v}
    if missing:
        names = ", ".join(sorted(missing))
        raise click.ClickException(f"{path}: the message's encryption context does not match ({names})")


def run_decrypt(
    input_path: Path,
    open_output: OutputOpener,
    *,
    key_ids: tuple[str, ...],
    required_context: dict[str, str],
    advance: Callable[[int], None],
    endpoint_url: str | None,
    profile: str | None,
    region: str | None,
) -> str:
    """Decrypt ``input_path`` into the output; -> the ARN of the key that unwrapped the data key."""
    quiet_sdk_logs()
    clients = _make_clients(endpoint_url, profile, region)
    with _clean_errors(clients, input_path, decrypting=True):
        provider = EndpointKmsKeyProvider(clients=clients, discovery=not key_ids)
        for arn in [clients.resolve(key_id) for key_id in key_ids]:
            provider.add_master_key(arn)
        with open(input_path, "rb") as raw, open_output() as out:
            source = _Tracked(raw, advance)
            with _sdk_client().stream(mode="d", source=source, key_provider=provider) as stream:
                checked = False
                while chunk := stream.read(4 * READ_CHUNK):  # a 256 KiB frame (encrypt-file's) per read
                    if not checked:
                        _check_context(stream.header, required_context, input_path)
                        checked = True
                    out.write(chunk)
                # an empty plaintext yields no chunk; the context must match all the same
                _check_context(stream.header, required_context, input_path)
    return clients.decrypted_with[-1] if clients.decrypted_with else "a KMS key"
