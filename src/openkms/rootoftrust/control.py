"""The operator control socket: how ``openkms operator unseal|seal`` reach a running server.

A Unix stream socket ``<data_dir>/control.sock``, created by the master process with mode 0600 inside
the 0700 data directory, and a peer-credential check (``SO_PEERCRED``): only the server's own user (or
root) can connect.  No network exposure, no token to manage, no secret ever stored (docs/adr/0002).

Protocol: the client sends one JSON object on one line, the server answers one JSON object on one line
and closes the connection.  Requests: ``{"op": "status"}``, ``{"op": "unseal", "share": "okms-share-..."}``,
``{"op": "reset"}``, ``{"op": "seal"}``.  Answers: ``{"ok": true, "sealed": bool, "threshold": T,
"progress": k, ...}`` or ``{"ok": false, "error": "..."}``.  Requests are handled one at a time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from openkms.rootoftrust.unseal import Unsealer, UnsealRejected

log = logging.getLogger("openkms.control")

SOCKET_NAME = "control.sock"
_MAX_REQUEST = 4096
_IO_TIMEOUT = 10.0
_CONTROL_TIMEOUT = 30.0  # the client waits this long: an answer may wait for workers to be replaced


class ControlError(Exception):
    """The control socket cannot be created or reached; the message is for the operator."""


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


def bind_control_socket(path: Path) -> socket.socket:
    """Listen on ``path`` (0600).  A stale socket file is replaced; a live one means another server runs
    on this data directory, which is refused."""
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ControlError(f"{path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(str(path))
        except OSError:
            path.unlink()  # nobody listens: left over from a server that did not stop cleanly
        else:
            raise ControlError(f"another openkms server is running on this data directory ({path})")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # the socket file is created 0600, with no window of a wider mode
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise ControlError(f"cannot create the control socket {path}: {exc.strerror}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(8)
    return sock


def _peer_allowed(conn: socket.socket) -> bool:
    if not hasattr(socket, "SO_PEERCRED"):  # not Linux: the 0600 socket in the 0700 data dir must do
        return True
    # struct ucred {pid_t pid; uid_t uid; gid_t gid;}
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", raw)
    return uid in (os.getuid(), 0)


class ControlServer:
    """Answers operator requests; runs in a thread of the master process.

    ``on_change`` is called after the seal state changed (unsealed, or sealed) and must return only once
    every worker serves with the new state (``WorkerControl.recycle``); its result is reported.
    """

    def __init__(self, sock: socket.socket, unsealer: Unsealer, on_change: Callable[[], bool]) -> None:
        self._sock = sock
        self._unsealer = unsealer
        self._on_change = on_change

    def serve(self, stop: threading.Event) -> None:
        self._sock.settimeout(0.5)
        try:
            while not stop.is_set():
                try:
                    conn, _ = self._sock.accept()
                except TimeoutError:
                    continue
                except OSError:
                    if stop.is_set():
                        return
                    raise
                with conn:
                    try:
                        self._handle(conn)
                    except Exception:
                        log.exception("control request failed")
                        with contextlib.suppress(OSError):
                            conn.sendall(orjson.dumps(_error("internal error; see the server log")) + b"\n")
        finally:
            with contextlib.suppress(OSError):
                path = self._sock.getsockname()
                self._sock.close()
                if isinstance(path, str) and path:
                    os.unlink(path)

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(_IO_TIMEOUT)
        if not _peer_allowed(conn):
            log.warning("control socket: refused a connection from another user")
            return
        data = b""
        while b"\n" not in data and len(data) <= _MAX_REQUEST:
            chunk = conn.recv(_MAX_REQUEST)
            if not chunk:
                break
            data += chunk
        try:
            request = orjson.loads(data.split(b"\n", 1)[0]) if len(data) <= _MAX_REQUEST else None
        except orjson.JSONDecodeError:
            request = None
        answer = self.answer(request) if isinstance(request, dict) else _error("malformed request")
        conn.sendall(orjson.dumps(answer) + b"\n")

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        unsealer = self._unsealer
        if op == "status":
            return {"ok": True, **unsealer.status().as_dict()}
        if op == "reset":
            unsealer.reset()
            return {"ok": True, **unsealer.status().as_dict()}
        if op == "seal":
            was_sealed = unsealer.root_of_trust() is None
            unsealer.seal()
            replaced = True
            if not was_sealed:
                log.warning("sealed by an operator: the root key is wiped from every process")
                replaced = self._on_change()
            after = unsealer.status().as_dict()
            return {"ok": True, "changed": not was_sealed, "replaced": replaced, **after}
        if op == "unseal":
            share = request.get("share")
            if not isinstance(share, str) or len(share) > 1024:
                return _error("malformed share")
            was_sealed = unsealer.root_of_trust() is None
            try:
                status = unsealer.submit(share)
            except UnsealRejected as exc:
                log.warning("unseal: a share was rejected")  # never the share, never why in detail
                return {**_error(str(exc)), **unsealer.status().as_dict()}
            if was_sealed and not status.sealed:
                log.warning("unsealed by a quorum of operators")
                replaced = self._on_change()
                return {"ok": True, "changed": True, "replaced": replaced, **status.as_dict()}
            log.info("unseal: share accepted (%d of %d)", status.progress, status.threshold)
            return {"ok": True, "changed": False, **status.as_dict()}
        return _error("unknown operation")


def _error(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


def control_request(path: Path, request: dict[str, Any], timeout: float = _CONTROL_TIMEOUT) -> dict[str, Any]:
    """Send one request to the server listening on ``path``; :class:`ControlError` if none is."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except FileNotFoundError:
            raise ControlError(
                f"no sealable openkms server (shamir root of trust) is running on this data directory "
                f"({path} is missing)"
            ) from None
        except OSError as exc:
            raise ControlError(f"cannot reach the openkms server at {path}: {exc.strerror}") from None
        sock.sendall(orjson.dumps(request) + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        raise ControlError("the openkms server did not answer in time") from None
    finally:
        sock.close()
    try:
        answer = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ControlError("the openkms server closed the control connection without an answer") from None
    if not isinstance(answer, dict):
        raise ControlError("unexpected answer from the openkms server")
    return answer
