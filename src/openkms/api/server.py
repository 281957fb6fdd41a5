"""Process model: listening sockets, N forked uvloop workers, a supervising master.

The master binds the sockets (so port 0 works), then either serves in-process (``workers == 1``) or
forks the workers and supervises them. With several workers each gets its own ``SO_REUSEPORT`` socket
on the same port, so the kernel spreads connections evenly: with one shared accept queue the worker
that wakes first takes most of a burst of new connections (measured: one of two workers served 99 %
of a 32-connection benchmark). A worker that dies
unexpectedly is restarted with exponential backoff; SIGTERM/SIGINT stop everything gracefully
(workers stop listening, close idle keep-alive connections, finish in-flight requests for up to
``SHUTDOWN_TIMEOUT`` seconds, exit 0). Each worker builds its handler after the fork, so no
database connection, lock or thread crosses a fork. ``master_task(stop_event)`` runs in a daemon
thread of the master (for example the background-jobs runner) until ``stop_event`` is set.

The master blocks its signals and takes them with ``sigtimedwait`` (no handler races). Restarting a
worker forks while the ``master_task`` thread runs: keep that thread's state fork-safe, since the
child only calls ``make_handler`` and never touches it.

``WorkerControl`` (seal and unseal, docs/adr/0002-unseal.md) asks the supervisor to replace every worker
at once: the old ones get SIGTERM (graceful, as above), new ones are forked into the same slots and so
accept from the same listening sockets, which the master keeps open: connections arriving during the
swap wait in the accept queue instead of being refused. A master given a ``WorkerControl`` forks even
for one worker.

``before_fork`` (the audit committer's channels, ``openkms.audit.committer``) is called in the master
before each fork; of the ``ForkCallbacks`` it returns, ``child`` runs first thing in the new worker and
``parent`` in the master right after the fork. A master given ``before_fork`` forks even for one worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import uvloop

from openkms.api.http import Handler, HttpServerState, ServerLimits

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 5.0  # seconds a worker waits for in-flight requests on SIGTERM
_BACKLOG = 1024
_DEFAULT_LIMITS = ServerLimits()
_MASTER_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGUSR1}


@dataclass(frozen=True)
class ForkCallbacks:
    child: Callable[[], None]  # in the new worker, before its handler is built
    parent: Callable[[], None]  # in the master, after the fork


class WorkerControl:
    """Lets a thread of the master ask the supervisor to replace every worker (seal and unseal).

    ``recycle`` stops the running workers gracefully (in-flight requests finish), forks new ones at once
    -- they inherit the master's state as it is now -- and returns when every old worker has exited,
    so from then on no process serves with the state from before.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[threading.Event] = []

    def recycle(self, timeout: float = SHUTDOWN_TIMEOUT + 5.0) -> bool:
        done = threading.Event()
        with self._lock:
            self._pending.append(done)
        os.kill(os.getpid(), signal.SIGUSR1)  # wakes the supervisor's sigtimedwait
        return done.wait(timeout)

    def take(self) -> list[threading.Event]:
        with self._lock:
            pending, self._pending = self._pending, []
        return pending


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A non-blocking listening TCP socket on ``host`` (name, IPv4 or IPv6 literal) and ``port``."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_socket(
    sock: socket.socket,
    handler: Handler,
    *,
    limits: ServerLimits = _DEFAULT_LIMITS,
    ssl_context: ssl.SSLContext | None = None,
    stop: asyncio.Event | None = None,
    signals: tuple[int, ...] = (),
    shutdown_timeout: float = SHUTDOWN_TIMEOUT,
) -> None:
    """Serve HTTP on an already listening socket until ``stop`` is set or one of ``signals`` arrives,
    then shut down gracefully. ``signals`` needs the main thread."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    state = HttpServerState(handler, limits, tls=ssl_context is not None)
    server = await loop.create_server(
        state.protocol_factory,
        sock=sock,
        backlog=_BACKLOG,
        ssl=ssl_context,
        ssl_handshake_timeout=limits.header_timeout if ssl_context is not None else None,
    )
    state.start()
    try:
        await stop.wait()
    finally:
        server.close()  # stop accepting
        state.begin_shutdown()
        if not await state.wait_closed(shutdown_timeout):
            log.warning("shutdown timeout: closed connections with requests in flight")
        for signum in signals:
            loop.remove_signal_handler(signum)


async def _worker_main(
    sock: socket.socket,
    make_handler: Callable[[], Handler],
    limits: ServerLimits,
    ssl_context: ssl.SSLContext | None,
    signals: tuple[int, ...],
) -> None:
    handler = make_handler()  # inside the worker's own loop, after any fork
    await serve_socket(sock, handler, limits=limits, ssl_context=ssl_context, signals=signals)


def _run_worker(
    sock: socket.socket,
    make_handler: Callable[[], Handler],
    limits: ServerLimits,
    ssl_context: ssl.SSLContext | None,
    signals: tuple[int, ...],
) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_worker_main(sock, make_handler, limits, ssl_context, signals))


def _start_master_task(
    master_task: Callable[[threading.Event], None] | None, stop_event: threading.Event
) -> threading.Thread | None:
    if master_task is None:
        return None

    def run() -> None:
        try:
            master_task(stop_event)
        except Exception:
            log.exception("master task failed")

    thread = threading.Thread(target=run, name="openkms-master-task", daemon=True)
    thread.start()
    return thread


def serve(
    host: str,
    port: int,
    make_handler: Callable[[], Handler],
    *,
    workers: int = 1,
    limits: ServerLimits = _DEFAULT_LIMITS,
    ssl_context: ssl.SSLContext | None = None,
    on_listening: Callable[[str, int], None] | None = None,
    master_task: Callable[[threading.Event], None] | None = None,
    worker_control: WorkerControl | None = None,
    before_fork: Callable[[], ForkCallbacks] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then return after a graceful shutdown. Call from the main thread.

    With ``worker_control`` the workers are always forked (even one), so that they can be replaced."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    sockets = bind_sockets(host, port, workers)
    sock = sockets[0]
    try:
        if on_listening is not None:
            on_listening(host, sock.getsockname()[1])
        stop_event = threading.Event()
        if workers == 1 and worker_control is None and before_fork is None:
            thread = _start_master_task(master_task, stop_event)
            try:
                _run_worker(sock, make_handler, limits, ssl_context, (signal.SIGTERM, signal.SIGINT))
            finally:
                stop_event.set()
                if thread is not None:
                    thread.join(SHUTDOWN_TIMEOUT)
        else:
            supervisor = _Supervisor(sockets, make_handler, limits, ssl_context, worker_control, before_fork)
            supervisor.run(master_task, stop_event)
    finally:
        for each in sockets:
            each.close()


def bind_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """One listening socket per worker on one port: ``SO_REUSEPORT`` where the platform has it (the
    kernel then balances new connections across them), else one socket that every worker shares."""
    if count == 1 or not hasattr(socket, "SO_REUSEPORT"):
        shared = bind_socket(host, port)
        return [shared] * count
    # SECURITY: SO_REUSEPORT lets any process of the same user join a port that is already served with
    # SO_REUSEPORT (another openkms with its own data directory would silently share the connections).
    # A plain bind first fails on any port in use; only then is the group formed on the port it got.
    probe = bind_socket(host, port)
    port = probe.getsockname()[1]
    probe.close()
    first = bind_socket(host, port, reuse_port=True)
    sockets = [first]
    try:
        for _ in range(count - 1):
            sockets.append(bind_socket(host, first.getsockname()[1], reuse_port=True))
    except BaseException:
        for each in sockets:
            each.close()
        raise
    return sockets


class _Supervisor:
    """Forks the workers, restarts the ones that die, and stops them all on SIGTERM/SIGINT."""

    def __init__(
        self,
        sockets: list[socket.socket],
        make_handler: Callable[[], Handler],
        limits: ServerLimits,
        ssl_context: ssl.SSLContext | None,
        control: WorkerControl | None = None,
        before_fork: Callable[[], ForkCallbacks] | None = None,
    ) -> None:
        self._before_fork = before_fork
        self._sockets = sockets  # slot -> its listening socket (the master keeps them for restarts)
        self._control = control
        self._retiring: dict[int, int] = {}  # pid -> slot of workers being replaced
        self._recycled: list[threading.Event] = []  # set once every retiring worker has exited
        self._make_handler = make_handler
        self._limits = limits
        self._ssl_context = ssl_context
        self._slots = len(sockets)
        self._children: dict[int, int] = {}  # pid -> slot
        self._started: dict[int, float] = {}  # slot -> monotonic start time
        self._failures: dict[int, int] = {}  # slot -> consecutive early deaths
        self._restart_at: dict[int, float] = {}  # slot -> when to fork it again
        self._old_mask: set[int | signal.Signals] = set()

    def run(self, master_task: Callable[[threading.Event], None] | None, stop_event: threading.Event) -> None:
        self._old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _MASTER_SIGNALS)
        thread = None
        try:
            for slot in range(self._slots):
                self._spawn(slot)
            thread = _start_master_task(master_task, stop_event)  # inherits the blocked mask
            self._supervise()
            self._stop_children()
        finally:
            stop_event.set()
            if thread is not None:
                thread.join(SHUTDOWN_TIMEOUT)
            signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)

    def _spawn(self, slot: int) -> None:
        for stream in (sys.stdout, sys.stderr):  # else the child would flush the master's buffered output
            if stream is not None:
                stream.flush()
        callbacks = self._before_fork() if self._before_fork is not None else None
        try:
            pid = os.fork()
        except BaseException:
            if callbacks is not None:
                callbacks.parent()  # e.g. closes the unused end of a channel, so its other end sees EOF
            raise
        if pid == 0:
            self._child(slot, callbacks)  # never returns
        if callbacks is not None:
            callbacks.parent()
        self._children[pid] = slot
        self._started[slot] = time.monotonic()
        log.info("worker %d started (pid %d)", slot, pid)

    def _child(self, slot: int, callbacks: ForkCallbacks | None) -> None:
        code = 1
        sock = self._sockets[slot]
        for other in self._sockets:
            if other is not sock:
                other.close()  # only the worker's own socket: no connection waits on a non-accepting copy
        try:
            if callbacks is not None:
                callbacks.child()
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C reaches the master, which relays
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
            _run_worker(sock, self._make_handler, self._limits, self._ssl_context, (signal.SIGTERM,))
            code = 0
        except BaseException:
            log.exception("worker failed")
        finally:
            logging.shutdown()
            os._exit(code)

    def _supervise(self) -> None:
        while True:
            now = time.monotonic()
            wait = min([0.5, *(due - now for due in self._restart_at.values())])
            info = signal.sigtimedwait(_MASTER_SIGNALS, max(wait, 0.01))
            if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
                log.info("signal %d: shutting down", info.si_signo)
                return
            for slot in self._reap(expected=False):
                self._schedule_restart(slot)
            if self._control is not None:
                self._recycle(self._control.take())
            now = time.monotonic()
            for slot, due in list(self._restart_at.items()):
                if due <= now:
                    del self._restart_at[slot]
                    self._spawn(slot)

    def _recycle(self, requests: list[threading.Event]) -> None:
        if requests:
            self._recycled.extend(requests)
            for pid, slot in list(self._children.items()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                self._retiring[pid] = slot
            self._children.clear()
            self._restart_at.clear()
            self._failures.clear()
            for slot in range(self._slots):
                self._spawn(slot)
            log.info("replacing every worker")
        if not self._retiring and self._recycled:
            for done in self._recycled:
                done.set()
            self._recycled = []

    def _reap(self, *, expected: bool) -> list[int]:
        """Collect exited workers; return their slots (not those of replaced workers)."""
        slots = []
        while self._children or self._retiring:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if self._retiring.pop(pid, None) is not None:
                log.info("replaced worker (pid %d) exited with %d", pid, os.waitstatus_to_exitcode(status))
                continue
            slot = self._children.pop(pid, None)
            if slot is not None:
                slots.append(slot)
                code = os.waitstatus_to_exitcode(status)
                level = logging.INFO if expected and code == 0 else logging.WARNING
                log.log(level, "worker %d (pid %d) exited with %d", slot, pid, code)
        return slots

    def _schedule_restart(self, slot: int) -> None:
        lived = time.monotonic() - self._started.get(slot, 0.0)
        failures = self._failures.get(slot, 0) + 1 if lived < 10.0 else 0
        self._failures[slot] = failures
        delay = min(0.1 * 2**failures, 10.0)
        self._restart_at[slot] = time.monotonic() + delay
        log.warning("restarting worker %d in %.1f s", slot, delay)

    def _stop_children(self) -> None:
        self._children.update(self._retiring)
        self._retiring.clear()
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for sock in self._sockets:
            sock.close()  # the master never accepts; the workers hold their own copies
        end = time.monotonic() + SHUTDOWN_TIMEOUT + 2.0
        while self._children and time.monotonic() < end:
            info = signal.sigtimedwait(_MASTER_SIGNALS, 0.1)
            self._reap(expected=True)
            if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
                break  # asked twice: stop waiting
        for pid in list(self._children):
            log.warning("worker pid %d did not stop in time; killing it", pid)
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self._children.clear()
