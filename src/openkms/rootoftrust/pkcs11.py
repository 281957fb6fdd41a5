"""A root of trust in a PKCS#11 token (an HSM; SoftHSM2 in tests).

The root key is wrapped by an AES-256 key that lives in the token and never leaves it: the key is
generated inside the token with ``CKA_SENSITIVE = true`` and ``CKA_EXTRACTABLE = false`` (or an existing
key with those attributes is found by its label), and wrapping and unwrapping are ``C_Encrypt`` /
``C_Decrypt`` calls with ``CKM_AES_GCM`` inside the token.

Wrapped format::

    b"OKP1" || iv(12) || AES-256-GCM(token key, iv, root_key, aad=_AAD)   (ciphertext || 16-byte tag)

The IV comes from ``os.urandom`` (random per call, so wrapping is randomised); the tag authenticates the
value, so a value wrapped by another token key, or altered in any bit, never unwraps to wrong bytes.

Sessions: a small pool; each call borrows one session for its exclusive use (PKCS#11 sessions are not
safe for concurrent operations).  The login state of PKCS#11 is per application, so the first session
logs in and the others share that login.  A failure that is not the value's fault (token removed,
session closed, PIN changed and the login lost) drops every session and re-initializes the library;
the call is retried once on a fresh connection and fails with :class:`RootOfTrustError` if that does not
work either; the next call tries to connect again.  The PIN is read again on every (re)connection, so
an operator can fix a changed PIN by updating the PIN file without restarting.

SECURITY: the PIN is never logged, never in ``repr()`` and never accepted on the command line (see
``config.py``); error messages name the module, token and key label, never the PIN or key bytes.
"""

from __future__ import annotations

import os
import queue
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.mechanisms import GCMParams

from openkms.rootoftrust.base import RootOfTrustError

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
_MAGIC = b"OKP1"
_IV_LEN = 12
_TAG_LEN = 16
_KEY_LEN = 32
_AAD = b"openkms-root-key-v1/pkcs11"
_MAX_PIN_FILE = 1024


@dataclass(frozen=True)
class Pkcs11Config:
    """Where the token key lives.  ``pin`` is a callable so the PIN is read at each (re)connection."""

    module: str
    token_label: str
    key_label: str
    pin: Callable[[], str]
    pool_size: int = 4

    def __repr__(self) -> str:
        return (
            f"Pkcs11Config(module={self.module!r}, token_label={self.token_label!r}, "
            f"key_label={self.key_label!r}, pool_size={self.pool_size})"
        )


def pin_from_file(path: Path) -> Callable[[], str]:
    """A PIN source reading ``path`` (first line, mode 0600 or stricter) at every call."""

    def read() -> str:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise RootOfTrustError(f"cannot open PKCS#11 PIN file {path}: {exc.strerror}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise RootOfTrustError(f"PKCS#11 PIN file {path} is not a regular file")
            if info.st_mode & 0o077:
                raise RootOfTrustError(
                    f"PKCS#11 PIN file {path} has mode {stat.S_IMODE(info.st_mode):04o}; "
                    "it must not be accessible by group or others (chmod 600)"
                )
            raw = os.read(fd, _MAX_PIN_FILE + 1)
        finally:
            os.close(fd)
        lines = raw.decode("utf-8", errors="strict").splitlines() if len(raw) <= _MAX_PIN_FILE else []
        if not lines or not lines[0]:
            raise RootOfTrustError(f"PKCS#11 PIN file {path} must contain the PIN on its first line")
        return lines[0]

    return read


def pin_value(pin: str) -> Callable[[], str]:
    """A PIN source returning a PIN already read (from the environment, by ``config.py``)."""
    if not pin:
        raise RootOfTrustError("the PKCS#11 PIN is empty")
    return lambda: pin


# --- one library handle per module path, shared by every provider of the process -------------------------
# A PKCS#11 module may be C_Initialize'd once per process, and unloading it invalidates every handle, so
# libraries are loaded once and kept.  ``epoch`` counts re-initializations: a provider re-initializes
# only if nobody did since it connected, so two providers recovering at once do not undo each other.


class _Library:
    def __init__(self, path: str) -> None:
        self.lib = pkcs11.lib(path)
        self.epoch = 0
        # python-pkcs11 calls C_Initialize(NULL), which tells the module that the application does not
        # call it from several threads at once (SoftHSM2 then uses no mutexes and crashes under
        # concurrent calls).  So every call into the module holds this lock.  The module is off the hot
        # path (unwrapped material is cached), so serialising it costs nothing measurable.
        self.lock = threading.RLock()
        self.forked = False  # set in a forked child: the module must be initialized again there

    def reset(self, seen_epoch: int) -> int:
        with self.lock:
            if self.epoch == seen_epoch:
                try:
                    self.lib.reinitialize()
                except p11.PKCS11Error:
                    with suppress(p11.PKCS11Error):
                        self.lib.initialize()
                self.epoch += 1
            return self.epoch


_LIBRARIES: dict[str, _Library] = {}
_LIBRARIES_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    # PKCS#11: a forked child must C_Initialize again (and must not use the parent's sessions).  Locks
    # another thread held at the fork would never be released in the child, so they are replaced.
    global _LIBRARIES_LOCK
    _LIBRARIES_LOCK = threading.Lock()
    for library in _LIBRARIES.values():
        library.lock = threading.RLock()
        library.forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def _library(path: str) -> _Library:
    with _LIBRARIES_LOCK:
        found = _LIBRARIES.get(path)
        if found is not None and found.forked:
            found.forked = False
            found.reset(found.epoch)
        if found is None:
            if not os.path.exists(path):
                raise RootOfTrustError(f"PKCS#11 module {path} does not exist (is softhsm2 installed?)")
            found = _LIBRARIES[path] = _Library(path)  # PKCS11Error: the caller names the token
        return found


class _Connection:
    """Sessions of one (re)connection; discarded whole when anything goes wrong."""

    def __init__(self, library: _Library, epoch: int, token: Any, key_handle_session: Any, key: Any) -> None:
        self.library = library
        self.epoch = epoch
        self.token = token
        self.idle: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        self.idle.put((key_handle_session, key))
        self.opened = 1
        self.alive = True


class _ValueRejected(Exception):
    """The token rejected the wrapped value itself (a working session could not decrypt it)."""


class Pkcs11RootOfTrust:
    """Wraps the root key with AES-256-GCM under a non-extractable key inside a PKCS#11 token."""

    __slots__ = ("_config", "_conn", "_lock", "_slots")

    def __init__(self, config: Pkcs11Config, *, create_key: bool = False) -> None:
        if not config.token_label or not config.key_label:
            raise RootOfTrustError("the PKCS#11 root of trust needs a token label and a key label")
        if not 1 <= config.pool_size <= 64:
            raise RootOfTrustError("the PKCS#11 session pool size must be between 1 and 64")
        self._config = config
        self._lock = threading.Lock()  # guards _conn and session creation
        self._slots = threading.BoundedSemaphore(config.pool_size)
        self._conn: _Connection | None = None
        # Connect now: a missing module, token, PIN or key is a start-up error, not a first-request error.
        self._conn = self._connect(create_key=create_key)

    def __repr__(self) -> str:
        c = self._config
        return f"Pkcs11RootOfTrust(module={c.module!r}, token={c.token_label!r}, key={c.key_label!r})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("Pkcs11RootOfTrust holds a logged-in session and cannot be serialised")

    @property
    def name(self) -> str:
        return "pkcs11"

    @property
    def config(self) -> Pkcs11Config:
        return self._config

    # --- connection management -------------------------------------------------------------------------
    def _where(self) -> str:
        c = self._config
        return f"PKCS#11 token '{c.token_label}' (module {c.module})"

    def _connect(self, *, create_key: bool = False, seen_epoch: int | None = None) -> _Connection:
        try:
            library = _library(self._config.module)
        except p11.PKCS11Error as exc:
            # SoftHSM2 fails C_Initialize when its token directory is missing
            raise RootOfTrustError(
                f"{self._where()} is not available: the module failed to initialize ({_describe(exc)})"
            ) from None
        with library.lock:
            return self._connect_locked(library, create_key, seen_epoch)

    def _connect_locked(self, library: _Library, create_key: bool, seen_epoch: int | None) -> _Connection:
        if seen_epoch is not None:
            library.reset(seen_epoch)
        epoch = library.epoch
        try:
            token = self._find_token(library, epoch)
            session = self._login(token)
        except p11.PKCS11Error as exc:
            raise RootOfTrustError(f"cannot open a session on {self._where()}: {_describe(exc)}") from None
        try:
            key = self._find_key(session, create_key)
        except p11.PKCS11Error as exc:
            raise RootOfTrustError(
                f"cannot use key '{self._config.key_label}' on {self._where()}: {_describe(exc)}"
            ) from None
        return _Connection(library, epoch, token, session, key)

    def _find_token(self, library: _Library, epoch: int) -> Any:
        label = self._config.token_label
        for attempt in range(2):
            try:
                return library.lib.get_token(token_label=label)
            except p11.NoSuchToken:
                if attempt == 0:
                    # A token inserted (or a SoftHSM2 token directory restored) after the module was
                    # initialized is only seen after C_Finalize/C_Initialize.
                    epoch = library.reset(epoch)
                    continue
                raise RootOfTrustError(f"{self._where()} was not found") from None
            except p11.MultipleTokensReturned:
                raise RootOfTrustError(f"more than one PKCS#11 token is labelled '{label}'") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _login(self, token: Any) -> Any:
        pin = self._config.pin()
        try:
            return token.open(rw=True, user_pin=pin)
        except p11.UserAlreadyLoggedIn:
            # Another provider of this process is logged in to the same token: the login is shared.
            return token.open(rw=True)
        except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange):
            raise RootOfTrustError(f"the PIN for {self._where()} was rejected") from None
        except p11.PinLocked:
            raise RootOfTrustError(f"the user PIN of {self._where()} is locked") from None

    def _find_key(self, session: Any, create_key: bool) -> Any:
        label = self._config.key_label
        try:
            key = session.get_key(label=label, key_type=KeyType.AES, object_class=ObjectClass.SECRET_KEY)
        except p11.NoSuchKey:
            if not create_key:
                raise RootOfTrustError(
                    f"no AES key labelled '{label}' on {self._where()} "
                    "(openkms init creates it; a migration with --to pkcs11 too)"
                ) from None
            return session.generate_key(
                KeyType.AES,
                256,
                label=label,
                store=True,
                template={
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.ENCRYPT: True,
                    Attribute.DECRYPT: True,
                    Attribute.WRAP: False,
                    Attribute.UNWRAP: False,
                    Attribute.MODIFIABLE: False,
                },
            )
        except p11.MultipleObjectsReturned:
            raise RootOfTrustError(f"more than one key is labelled '{label}' on {self._where()}") from None
        # INVARIANT: only a key that cannot leave the token protects the root key.
        if not key[Attribute.SENSITIVE] or key[Attribute.EXTRACTABLE]:
            raise RootOfTrustError(
                f"key '{label}' on {self._where()} is extractable or not sensitive; openkms requires "
                "CKA_SENSITIVE=true and CKA_EXTRACTABLE=false"
            )
        if key.key_length != 256:
            raise RootOfTrustError(f"key '{label}' on {self._where()} is not an AES-256 key")
        return key

    @contextmanager
    def _session(self) -> Iterator[tuple[_Connection, Any, Any]]:
        """Borrow (connection, session, key); reconnects first if the last connection was dropped."""
        self._slots.acquire()
        try:
            with self._lock:
                conn = self._conn
                # stale too when the module was re-initialized since (by another provider, or a fork)
                if conn is None or not conn.alive or conn.epoch != _library(self._config.module).epoch:
                    # Re-initialize the module: after a failure its view of slots and tokens is stale.
                    library = _LIBRARIES.get(self._config.module)
                    seen = conn.epoch if conn is not None else library.epoch if library else None
                    self._conn = None
                    conn = self._conn = self._connect(seen_epoch=seen)
                try:
                    session, key = conn.idle.get_nowait()
                except queue.Empty:
                    session, key = self._open_extra(conn)
            try:
                yield conn, session, key
            finally:
                if conn.alive:
                    conn.idle.put((session, key))
        finally:
            self._slots.release()

    def _open_extra(self, conn: _Connection) -> tuple[Any, Any]:
        # Caller holds self._lock.  The login is shared, so extra sessions open without a PIN.
        try:
            with conn.library.lock:
                session = conn.token.open(rw=True)
                key = session.get_key(
                    label=self._config.key_label, key_type=KeyType.AES, object_class=ObjectClass.SECRET_KEY
                )
        except p11.PKCS11Error as exc:
            conn.alive = False
            raise RootOfTrustError(f"cannot open a session on {self._where()}: {_describe(exc)}") from None
        conn.opened += 1
        return session, key

    def _drop(self, conn: _Connection) -> None:
        with self._lock:
            conn.alive = False

    def _call(self, op: Callable[[Any], bytes], *, value_may_be_bad: bool) -> bytes:
        """Run ``op(key)`` on a pooled session; on a connection failure reconnect and retry once."""
        last: p11.PKCS11Error | None = None
        for _attempt in range(2):
            with self._session() as (conn, _session, key):
                try:
                    with conn.library.lock:
                        return op(key)
                except p11.PKCS11Error as exc:
                    last = exc
                    with conn.library.lock:
                        rejected = value_may_be_bad and self._session_works(key)
                    if rejected:
                        raise _ValueRejected from None
                    self._drop(conn)
        raise RootOfTrustError(f"{self._where()} failed: {_describe(last)}; will reconnect on next use")

    @staticmethod
    def _session_works(key: Any) -> bool:
        # Decrypting a forged value fails with a generic error on some tokens (SoftHSM2:
        # CKR_GENERAL_ERROR), so tell "bad value" from "bad session" by a probe encryption.
        try:
            key.encrypt(bytes(16), mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(bytes(_IV_LEN)))
        except p11.PKCS11Error:
            return False
        return True

    # --- the RootOfTrust contract --------------------------------------------------------------------
    def wrap_root_key(self, root_key: bytes) -> bytes:
        if len(root_key) != _KEY_LEN:
            raise ValueError("root key must be 32 bytes")
        iv = os.urandom(_IV_LEN)
        params = GCMParams(iv, _AAD)
        sealed = self._call(
            lambda key: bytes(key.encrypt(root_key, mechanism=Mechanism.AES_GCM, mechanism_param=params)),
            value_may_be_bad=False,
        )
        if len(sealed) != _KEY_LEN + _TAG_LEN:
            raise RootOfTrustError(f"{self._where()} returned a ciphertext of unexpected length")
        return _MAGIC + iv + sealed

    def unwrap_root_key(self, wrapped: bytes) -> bytes:
        refused = RootOfTrustError(f"the root key cannot be unwrapped with key '{self._config.key_label}'")
        if len(wrapped) != len(_MAGIC) + _IV_LEN + _KEY_LEN + _TAG_LEN or not wrapped.startswith(_MAGIC):
            raise refused
        iv = wrapped[len(_MAGIC) : len(_MAGIC) + _IV_LEN]
        sealed = wrapped[len(_MAGIC) + _IV_LEN :]
        params = GCMParams(iv, _AAD)
        try:
            root_key = self._call(
                lambda key: bytes(key.decrypt(sealed, mechanism=Mechanism.AES_GCM, mechanism_param=params)),
                value_may_be_bad=True,
            )
        except _ValueRejected:
            raise refused from None
        if len(root_key) != _KEY_LEN:
            raise refused
        return root_key

    def health(self) -> dict[str, object]:
        c = self._config
        status: dict[str, object] = {
            "name": self.name,
            "ok": False,
            "module": c.module,
            "token": c.token_label,
            "key_label": c.key_label,
        }
        try:
            self.unwrap_root_key(self.wrap_root_key(bytes(_KEY_LEN)))
        except Exception as exc:  # health never raises
            status["error"] = str(exc) if isinstance(exc, RootOfTrustError) else type(exc).__name__
            return status
        status["ok"] = True
        return status


def _describe(exc: BaseException | None) -> str:
    # PKCS#11 exceptions carry the CKR_* meaning in their class name and docstring, never secrets.
    if exc is None:
        return "unknown error"
    doc = (type(exc).__doc__ or "").strip().splitlines()
    return f"{type(exc).__name__}" + (f" ({doc[0].rstrip('.')})" if doc else "")
