"""The HTTP/1.1 edge: one thin ``asyncio.Protocol`` over ``httptools`` (llhttp), nothing else.

Why not an ASGI server: on these machines a raw protocol on uvloop costs about 20 µs per request and
the ASGI stacks 60-125 µs more (``perf-baseline.md`` §3c), which is more than the KMS work itself.

Contract, per connection:

* Requests are answered strictly in arrival order, one at a time. Pipelined requests are parsed and
  queued; reading pauses while ``_MAX_PIPELINE`` requests wait or while the transport's write buffer
  is full (``pause_writing``).
* A handler returning an ``HttpResponse`` is answered inline (no task); one returning an awaitable is
  run as a task. The server adds ``Date`` and ``Content-Length``; a response is one ``write``.
* Errors of the HTTP layer itself (malformed request, body or header block too large, timeouts) are
  answered with an AWS JSON error body and the connection is closed, after the responses to requests
  received before it. Handler exceptions become a bare 500 ``InternalFailure``; the traceback goes to
  the log, never the request body and never the client.
* Resource bounds: body <= ``max_body_bytes`` (checked against Content-Length before the body is read,
  and while chunks stream in), header block <= ``max_header_bytes`` (plus at most one socket read),
  and deadlines for the header block, the body and idle keep-alive, enforced by one sweeper per server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import cast

import httptools

from openkms import errors

log = logging.getLogger(__name__)


@dataclass(slots=True)
class HttpRequest:
    """One parsed request. Header names are lowercased; names and values are decoded as latin-1,
    so ``value.encode("latin-1")`` gives back the bytes on the wire (SigV4 needs them)."""

    method: str
    raw_path: str  # path exactly as received, without the query
    query: str  # raw query string without '?', '' if none
    headers: list[tuple[str, str]]  # (lowercase name, value) in arrival order, duplicates kept
    body: bytes
    peer: str  # client IP address
    tls: bool


@dataclass(slots=True)
class HttpResponse:
    """A response to send. ``Content-Length``, ``Date`` and ``Connection`` are added by the server."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


Handler = Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]


@dataclass(frozen=True)
class ServerLimits:
    max_body_bytes: int = 256 * 1024
    max_header_bytes: int = 16 * 1024  # total of request line + headers
    header_timeout: float = 10.0  # time to receive a complete header block
    body_timeout: float = 30.0
    keepalive_timeout: float = 60.0
    max_connections: int = 4096  # per worker


# (status, __type, message) of the errors this layer answers by itself.
_Error = tuple[int, str, str]
BAD_REQUEST: _Error = (400, "SerializationException", "Malformed HTTP request")
TIMED_OUT: _Error = (408, "RequestTimeoutException", "Request timed out")
BODY_TOO_LARGE: _Error = (413, "RequestEntityTooLargeException", "Request body too large")
HEADERS_TOO_LARGE: _Error = (431, "RequestHeaderFieldsTooLarge", "Request header fields too large")
INTERNAL_FAILURE: _Error = (500, "InternalFailure", "Internal server error")
TOO_MANY_CONNECTIONS: _Error = (503, "ServiceUnavailable", "Too many connections")


def error_response(error: _Error) -> HttpResponse:
    status, code, message = error
    body = json.dumps({"__type": code, "message": message}).encode()
    return HttpResponse(status, [("Content-Type", "application/x-amz-json-1.1")], body)


_INTERNAL_RESPONSE = error_response(INTERNAL_FAILURE)

_MAX_PIPELINE = 16  # queued requests per connection before reading pauses
_LINGER_SECONDS = 2.0  # after an error: keep draining input so the client reads the answer, not a RST
_LINGER_BYTES = 1 << 20
_INF = float("inf")

# connection modes of a parsed request; _KEEP_SAID: the client asked for keep-alive explicitly
# (HTTP/1.0 needs the answer to say so too). Not ``parser.get_http_version()``: it costs 0.85 µs.
_CLOSE, _KEEP, _KEEP_SAID = 0, 1, 2
# what the connection's deadline guards
_PHASE_NONE, _PHASE_IDLE, _PHASE_HEAD, _PHASE_BODY, _PHASE_LINGER = range(5)

_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}
_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n" for s in HTTPStatus}
_CONNECTION = {_CLOSE: "Connection: close\r\n", _KEEP: "", _KEEP_SAID: "Connection: keep-alive\r\n"}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_SPECIAL = ("content-length", "transfer-encoding", "expect", "connection")
_SPECIAL_LENGTHS = frozenset(len(name) for name in _SPECIAL)

_monotonic = time.monotonic
_date_second = -1
_date_line = ""


def _date_header() -> str:
    """The ``Date`` header line (RFC 7231 IMF-fixdate), formatted at most once per second."""
    global _date_second, _date_line
    second = int(time.time())
    if second != _date_second:
        _date_line = f"Date: {formatdate(second, usegmt=True)}\r\n"
        _date_second = second
    return _date_line


def _serialize(response: HttpResponse, head_only: bool, mode: int) -> bytes:
    """The bytes of a response; ``ValueError`` if a header would split the response (CR/LF)."""
    status_line = _STATUS_LINES.get(response.status)
    if status_line is None:
        if type(response.status) is not int or not 100 <= response.status <= 599:
            raise ValueError("status code out of range")
        status_line = f"HTTP/1.1 {response.status} Unknown\r\n"
    headers = response.headers
    text = "".join([f"{name}: {value}\r\n" for name, value in headers])
    if text.count("\n") != len(headers) or text.count("\r") != len(headers):
        raise ValueError("CR or LF inside a response header")
    body = response.body
    head = f"{status_line}{text}{_date_header()}Content-Length: {len(body)}\r\n{_CONNECTION[mode]}\r\n"
    return b"".join((head.encode("latin-1"), b"" if head_only else body))


def _peer_ip(peername: object) -> str:
    if isinstance(peername, tuple) and peername:
        host = str(peername[0])
        if host.startswith("::ffff:") and "." in host:
            return host[7:]  # IPv4-mapped IPv6 address: report the IPv4 address
        return host
    return ""


class _Abort(Exception):
    """Raised from a parser callback to stop parsing with a specific error answer."""

    def __init__(self, error: _Error) -> None:
        super().__init__(error[2])
        self.error = error


class HttpServerState:
    """What the connections of one server in one process share: the handler, the limits, the set of
    open connections (for ``max_connections`` and graceful shutdown), and the deadline sweeper with
    its coarse clock ``now`` (deadlines are checked every ``interval`` <= a quarter of the shortest
    timeout, so they may fire up to one interval early or late)."""

    def __init__(self, handler: Handler, limits: ServerLimits, *, tls: bool = False) -> None:
        self.handler = handler
        self.limits = limits
        self.tls = tls
        self.connections: set[HttpProtocol] = set()
        self.now = _monotonic()
        shortest = min(limits.header_timeout, limits.body_timeout, limits.keepalive_timeout)
        self.interval = min(1.0, max(0.02, shortest / 4))
        self._sweeper: asyncio.TimerHandle | None = None

    def protocol_factory(self) -> HttpProtocol:
        return HttpProtocol(self)

    def start(self) -> None:
        """Start the deadline sweeper on the running loop."""
        self._sweep()

    def _sweep(self) -> None:
        self.now = now = _monotonic()
        for connection in [c for c in self.connections if now >= c.deadline]:
            connection.deadline_passed()
        self._sweeper = asyncio.get_running_loop().call_later(self.interval, self._sweep)

    def begin_shutdown(self) -> None:
        """Close idle connections now; busy ones close after the response in progress."""
        for connection in list(self.connections):
            connection.shutdown()

    async def wait_closed(self, timeout: float) -> bool:
        """Wait until every connection has closed; after ``timeout`` close the rest. True if graceful."""
        end = _monotonic() + timeout
        while self.connections and _monotonic() < end:
            await asyncio.sleep(0.02)
        graceful = not self.connections
        for connection in list(self.connections):
            connection.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        return graceful


class HttpProtocol(asyncio.Protocol):
    """One HTTP/1.x connection. The parser callbacks (``on_*``) are called by httptools.

    The hot path (a whole request in one read, a synchronous handler) runs: ``data_received`` ->
    parser callbacks -> ``_drain`` -> handler -> ``_respond`` (one write) -> ``_settle``, with no task,
    no timer and no clock read beyond the ``Date`` cache.
    """

    __slots__ = (
        "_body",
        "_body_len",
        "_busy",
        "_closing",
        "_content_length",
        "_dead",
        "_declared_body",
        "_discarded",
        "_expect_continue",
        "_fatal",
        "_feed_len",
        "_handler",
        "_head_bound",
        "_head_raw",
        "_headers",
        "_in_flight",
        "_in_head",
        "_in_message",
        "_input_done",
        "_keep_alive_said",
        "_limits",
        "_lingering",
        "_loop",
        "_parser",
        "_peer",
        "_phase",
        "_queue",
        "_raw_headers",
        "_read_paused",
        "_responded",
        "_state",
        "_task",
        "_tls",
        "_transport",
        "_url",
        "_write_paused",
        "deadline",
    )

    def __init__(self, state: HttpServerState) -> None:
        self._state = state
        self._handler = state.handler
        self._limits = state.limits
        self._tls = state.tls
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._peer = ""
        # The message being parsed. A message begins with its first ``on_url``; its fields are reset
        # when it completes, so they are clean when the next one begins.
        self._in_message = self._in_head = False
        self._url = b""
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._body_len = self._content_length = 0
        self._declared_body = self._expect_continue = self._keep_alive_said = False
        # Header block size: ``_head_bound`` >= its size (the reads that carried it), ``_head_raw`` <= its
        # size (reads entirely inside it). The exact size is only computed when the bound exceeds the limit.
        self._feed_len = self._head_bound = self._head_raw = 0
        # requests parsed but not answered, and the one being answered by a task
        self._queue: deque[tuple[HttpRequest, int]] = deque()
        self._busy = False
        self._task: asyncio.Future[HttpResponse] | None = None
        self._in_flight: tuple[HttpRequest, int] | None = None
        self._responded = False
        # flow control and the end of the connection
        self._read_paused = self._write_paused = False
        self._fatal: _Error | None = None  # answer this once the pipeline drains, then close
        self._input_done = False  # EOF or upgrade: no further requests will be read
        self._closing = False  # server shutting down: close once idle
        self._lingering = False  # error answered, write side shut, discarding input
        self._dead = False  # transport closed or closing
        self._discarded = 0
        # what ``deadline`` guards: idle connection, header block, body, or lingering after an error
        self._phase = _PHASE_IDLE
        self.deadline = _INF

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        state = self._state
        if len(state.connections) >= self._limits.max_connections:
            self._transport.write(_serialize(error_response(TOO_MANY_CONNECTIONS), False, _CLOSE))
            self._close()
            return
        state.connections.add(self)
        self._peer = _peer_ip(transport.get_extra_info("peername"))
        self.deadline = _monotonic() + self._limits.header_timeout  # first request, else close quietly

    def connection_lost(self, exc: Exception | None) -> None:
        self._dead = True
        self.deadline = _INF
        self._queue.clear()
        self._state.connections.discard(self)
        # A running handler task is left to finish (it may be writing audit records); its answer is dropped.

    def data_received(self, data: bytes) -> None:
        if self._fatal is not None or self._lingering or self._dead or self._input_done:
            self._discard(len(data))
            return
        size = self._feed_len = len(data)
        was_in_head = self._in_head
        if was_in_head:
            self._head_bound += size
        raw_headers = self._raw_headers  # replaced when a message completes
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._upgrade_requested()
        except httptools.HttpParserError as exc:
            self._parse_failed(exc)
        else:
            if self._in_message:
                self._partial_message(was_in_head and self._raw_headers is raw_headers, size)
        self._drain()

    def eof_received(self) -> bool:
        self._input_done = True
        if self._dead or self._lingering:
            return False
        # half-closed: still answer what was received (True keeps the transport open), then close
        return bool(self._busy or self._queue or self._fatal is not None)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()
        self._drain()

    # --- httptools callbacks ---

    def on_url(self, url: bytes) -> None:
        if self._in_message:
            self._url += url
        else:
            self._in_message = self._in_head = True
            self._url = url
            self._head_bound = self._feed_len

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw_headers.append((name, value))
        if len(name) in _SPECIAL_LENGTHS:  # a cheap filter: most headers are none of these
            key = name.lower()
            if key == b"content-length":
                self._content_length = int(value)  # llhttp has checked the digits
                self._declared_body = self._content_length > 0
            elif key == b"transfer-encoding":
                self._declared_body = True
            elif key == b"expect":
                self._expect_continue = value.lower() == b"100-continue"
            elif key == b"connection":
                self._keep_alive_said = b"keep-alive" in value.lower()

    def on_headers_complete(self) -> None:
        self._in_head = False
        raw = self._raw_headers
        limits = self._limits
        if self._head_bound > limits.max_header_bytes:
            size = len(self._url) + 20 + sum([len(name) + len(value) + 4 for name, value in raw])
            if size > limits.max_header_bytes:
                raise _Abort(HEADERS_TOO_LARGE)
        self._headers = [(name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in raw]
        if self._content_length > limits.max_body_bytes:
            self._report_oversized()
            raise _Abort(BODY_TOO_LARGE)  # before reading any of it
        if self._expect_continue and not self._busy and not self._queue and self._transport is not None:
            self._transport.write(_CONTINUE)  # only when no earlier response is still owed

    def _report_oversized(self) -> None:
        """Let the handler audit a request refused for its body size (``rejected(request, error)``, if
        the handler has one: the audit log records refused requests too)."""
        report = getattr(self._state.handler, "rejected", None)
        if report is None:
            return
        try:
            raw_method = self._parser.get_method()
            method = _METHODS.get(raw_method) or raw_method.decode("latin-1")
            url = self._url
            mark = url.find(b"?")
            path = (url if mark < 0 else url[:mark]).decode("latin-1")
            request = HttpRequest(method, path, "", self._headers, b"", self._peer, self._tls)
            report(request, errors.RequestEntityTooLargeException(BODY_TOO_LARGE[2]))
        except Exception:  # the refusal is sent whatever happens to its record
            log.exception("recording a refused request failed")

    def on_body(self, body: bytes) -> None:
        self._body_len += len(body)
        if self._body_len > self._limits.max_body_bytes:
            self._report_oversized()
            raise _Abort(BODY_TOO_LARGE)
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("latin-1")
        url = self._url
        mark = url.find(b"?")
        if mark < 0:
            path, query = url.decode("latin-1"), ""
        else:
            path, query = url[:mark].decode("latin-1"), url[mark + 1 :].decode("latin-1")
        parts = self._body
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        request = HttpRequest(method, path, query, self._headers, body, self._peer, self._tls)
        mode = _CLOSE
        if parser.should_keep_alive():
            mode = _KEEP_SAID if self._keep_alive_said else _KEEP
        self._queue.append((request, mode))
        # reset for the next message
        self._in_message = False
        self._raw_headers = []
        self._body = []
        self._body_len = self._content_length = self._head_raw = 0
        self._declared_body = self._expect_continue = self._keep_alive_said = False
        self._phase = _PHASE_NONE
        self.deadline = _INF
        if len(self._queue) >= _MAX_PIPELINE:
            self._update_reading()

    # --- answering ---

    def _drain(self) -> None:
        """Answer queued requests in order until one needs a task or the writer is paused."""
        queue = self._queue
        while queue and not self._busy and not self._write_paused and not self._dead:
            request, mode = queue.popleft()
            try:
                result = self._handler(request)
            except Exception:
                log.exception("request handler failed")
                result = _INTERNAL_RESPONSE
            if isinstance(result, HttpResponse):
                self._respond(request, result, mode)
            else:
                self._start_task(request, result, mode)
        self._settle()

    def _start_task(self, request: HttpRequest, awaitable: Awaitable[HttpResponse], mode: int) -> None:
        try:
            task = asyncio.ensure_future(awaitable, loop=self._loop)
        except TypeError:
            log.exception("request handler returned neither a response nor an awaitable")
            self._respond(request, _INTERNAL_RESPONSE, mode)
            return
        self._busy = True
        self._task = task
        self._in_flight = (request, mode)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[HttpResponse]) -> None:
        assert self._in_flight is not None
        request, mode = self._in_flight
        self._busy = False
        self._task = self._in_flight = None
        response: object
        if task.cancelled():
            response = _INTERNAL_RESPONSE
        elif (exc := task.exception()) is not None:
            log.error("request handler failed", exc_info=exc)
            response = _INTERNAL_RESPONSE
        else:
            response = task.result()
        if not isinstance(response, HttpResponse):
            log.error("request handler returned %s, not an HttpResponse", type(response).__name__)
            response = _INTERNAL_RESPONSE
        self._respond(request, response, mode)
        self._drain()

    def _respond(self, request: HttpRequest, response: HttpResponse, mode: int) -> None:
        transport = self._transport
        if self._dead or transport is None:
            return
        if (self._input_done or (self._closing and not self._in_message)) and not self._queue:
            mode = _CLOSE  # the last answer this connection will give
        head_only = request.method == "HEAD"
        try:
            data = _serialize(response, head_only, mode)
        except Exception:
            log.exception("request handler returned an invalid response")
            data = _serialize(_INTERNAL_RESPONSE, head_only, mode)
        transport.write(data)
        self._responded = True
        if mode == _CLOSE:
            self._queue.clear()
            self._close()

    def _settle(self) -> None:
        """After the queue stopped: send a pending error, close, or wait for the next request."""
        if self._busy or self._dead or self._queue or self._lingering:
            return
        if self._fatal is not None:
            self._send_error(self._fatal)
            return
        if self._input_done or (self._closing and not self._in_message):
            self._close()
            return
        if self._read_paused:
            self._update_reading()
        if self._responded:
            self._responded = False
            if not self._in_message:
                self._phase = _PHASE_IDLE
                self.deadline = self._state.now + self._limits.keepalive_timeout

    def _send_error(self, error: _Error) -> None:
        transport = self._transport
        assert transport is not None
        self._lingering = True
        transport.write(_serialize(error_response(error), False, _CLOSE))
        if self._input_done or not transport.can_write_eof():
            self._close()
            return
        # Closing with unread input makes the kernel send a RST, which can destroy the answer
        # before the client reads it. Shut the write side and drain input for a moment instead.
        transport.write_eof()
        self._phase = _PHASE_LINGER
        self.deadline = self._state.now + _LINGER_SECONDS
        if self._read_paused:
            self._read_paused = False
            transport.resume_reading()

    # --- deadlines, errors, flow control, the end ---

    def _partial_message(self, whole_read_in_head: bool, size: int) -> None:
        """A read ended inside a message: start its header or body deadline, cap a growing header."""
        limits = self._limits
        if self._in_head:
            if whole_read_in_head:
                # httptools buffers a header until it ends: bound what such reads can pile up
                self._head_raw += size
                if self._head_raw > limits.max_header_bytes:
                    self._set_fatal(HEADERS_TOO_LARGE)
                    return
            if self._phase != _PHASE_HEAD:
                self._phase = _PHASE_HEAD
                self.deadline = self._state.now + limits.header_timeout
        elif self._phase != _PHASE_BODY:
            self._phase = _PHASE_BODY
            self.deadline = self._state.now + limits.body_timeout

    def _set_fatal(self, error: _Error) -> None:
        if self._fatal is None:
            self._fatal = error
        self._in_message = self._in_head = False
        self._phase = _PHASE_NONE
        self.deadline = _INF

    def _parse_failed(self, exc: Exception) -> None:
        cause = exc.__context__
        if isinstance(cause, _Abort):
            self._set_fatal(cause.error)
            return
        if isinstance(exc, httptools.HttpParserCallbackError):
            log.error("HTTP parser callback failed", exc_info=cause or exc)
        self._set_fatal(BAD_REQUEST)

    def _upgrade_requested(self) -> None:
        # No protocol upgrades: a complete bodiless request is answered as plain HTTP, then the
        # connection closes. llhttp skips the body of an upgrade request, so one with a body is refused.
        if self._in_message or self._declared_body:
            if not self._in_message and self._queue:
                self._queue.pop()
            self._set_fatal(BAD_REQUEST)
        else:
            self._input_done = True

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or self._dead:
            return
        pause = self._write_paused or len(self._queue) >= _MAX_PIPELINE
        if pause and not self._read_paused:
            self._read_paused = True
            transport.pause_reading()
        elif not pause and self._read_paused:
            self._read_paused = False
            transport.resume_reading()
            if self._phase == _PHASE_HEAD:  # the client was not at fault while we were not reading
                self.deadline = self._state.now + self._limits.header_timeout
            elif self._phase == _PHASE_BODY:
                self.deadline = self._state.now + self._limits.body_timeout

    def _discard(self, size: int) -> None:
        self._discarded += size
        if self._discarded > _LINGER_BYTES:
            self._close()

    def deadline_passed(self) -> None:
        """Called by the sweeper once ``deadline`` is past."""
        phase = self._phase
        if phase in (_PHASE_HEAD, _PHASE_BODY):
            if self._read_paused:
                return  # the deadline restarts when reading resumes
            self._set_fatal(TIMED_OUT)  # slowloris: 408 after the owed answers, then close
            self._drain()
        elif phase == _PHASE_LINGER or not (self._busy or self._queue):
            self._close()  # idle keep-alive, silent new connection, or lingering after an error
        else:
            self.deadline = _INF

    def shutdown(self) -> None:
        """Graceful stop: close now if idle, else after the response in progress."""
        self._closing = True
        if self._lingering or not (self._busy or self._queue or self._in_message or self._fatal is not None):
            self._close()

    def abort(self) -> None:
        self._dead = True
        if self._transport is not None:
            self._transport.abort()

    def _close(self) -> None:
        self.deadline = _INF
        if not self._dead:
            self._dead = True
            if self._transport is not None:
                self._transport.close()
