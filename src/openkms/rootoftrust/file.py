"""A root of trust backed by a key-encryption key (KEK) in a local file.

File format: one line, the standard base64 encoding of 32 random bytes, then a newline.  The file
must be readable by the service user only (mode 0600 or stricter): :meth:`FileRootOfTrust.load`
refuses to start otherwise, because anyone who can read it can unwrap the root key.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from openkms.crypto.errors import UnwrapError
from openkms.crypto.wrap import KEY_LEN, random_bytes, unwrap, wrap
from openkms.rootoftrust.base import RootOfTrustError

_AAD = b"openkms-root-key-v1"
_MAX_FILE_SIZE = 4096


class FileRootOfTrust:
    """Wraps the root key with AES-256-GCM under a KEK read from a 0600 file."""

    __slots__ = ("_kek", "_path")

    def __init__(self, kek: bytes, path: Path | None = None) -> None:
        if len(kek) != KEY_LEN:
            raise RootOfTrustError("key-encryption key must be 32 bytes")
        self._kek = bytes(kek)
        self._path = path

    def __repr__(self) -> str:
        return f"FileRootOfTrust(path={str(self._path)!r})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("FileRootOfTrust holds a secret and cannot be serialised")

    @property
    def name(self) -> str:
        return "file"

    @property
    def path(self) -> Path | None:
        return self._path

    @classmethod
    def create(cls, path: Path) -> FileRootOfTrust:
        """Generate a new KEK and write it to ``path`` with mode 0600.

        The file is created with ``O_CREAT | O_EXCL`` so an existing file (or symlink) is never
        overwritten; in that case :class:`RootOfTrustError` is raised.
        """
        kek = random_bytes(KEY_LEN)
        data = base64.b64encode(kek) + b"\n"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        except FileExistsError:
            raise RootOfTrustError(
                f"root-of-trust key file {path} already exists; refusing to overwrite"
            ) from None
        except OSError as exc:
            raise RootOfTrustError(f"cannot create root-of-trust key file {path}: {exc.strerror}") from None
        try:
            os.fchmod(fd, 0o600)  # the umask can only remove bits, but be explicit
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise RootOfTrustError(f"cannot write root-of-trust key file {path}: {exc.strerror}") from None
        os.close(fd)
        return cls(kek, path)

    @classmethod
    def load(cls, path: Path) -> FileRootOfTrust:
        """Read the KEK from ``path``.

        Raises :class:`RootOfTrustError` naming the path if the file is missing, unreadable, not a
        regular file, accessible by group or others (``mode & 0o077``), or does not hold exactly
        32 base64-encoded bytes.
        """
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise RootOfTrustError(f"root-of-trust key file {path} does not exist") from None
        except OSError as exc:
            raise RootOfTrustError(f"cannot open root-of-trust key file {path}: {exc.strerror}") from None
        try:
            # fstat on the opened descriptor: the checked file is the file we read.
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise RootOfTrustError(f"root-of-trust key file {path} is not a regular file")
            if info.st_mode & 0o077:
                raise RootOfTrustError(
                    f"root-of-trust key file {path} has mode {stat.S_IMODE(info.st_mode):04o}; "
                    "it must not be accessible by group or others (chmod 600)"
                )
            raw = os.read(fd, _MAX_FILE_SIZE + 1)
        except OSError as exc:
            raise RootOfTrustError(f"cannot read root-of-trust key file {path}: {exc.strerror}") from None
        finally:
            os.close(fd)
        kek = _decode_kek(raw)
        if kek is None:
            raise RootOfTrustError(
                f"root-of-trust key file {path} must contain one line: the base64 encoding of 32 bytes"
            )
        return cls(kek, path)

    def wrap_root_key(self, root_key: bytes) -> bytes:
        if len(root_key) != KEY_LEN:
            raise ValueError("root key must be 32 bytes")
        return wrap(self._kek, root_key, _AAD)

    def unwrap_root_key(self, wrapped: bytes) -> bytes:
        try:
            root_key = unwrap(self._kek, wrapped, _AAD)
        except UnwrapError:
            raise RootOfTrustError(
                "the root key cannot be unwrapped with this root-of-trust key file"
            ) from None
        if len(root_key) != KEY_LEN:
            raise RootOfTrustError("the unwrapped root key has the wrong length")
        return root_key

    def health(self) -> dict[str, object]:
        return {"name": self.name, "ok": True, "path": None if self._path is None else str(self._path)}


def _decode_kek(raw: bytes) -> bytes | None:
    if len(raw) > _MAX_FILE_SIZE:
        return None
    text = raw.strip()
    if b"\n" in text:
        return None
    try:
        kek = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return kek if len(kek) == KEY_LEN else None
