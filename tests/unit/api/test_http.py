"""The HTTP edge (``openkms.api.http``) and process model (``openkms.api.server``) over raw sockets.

Most tests run ``serve_socket`` on a uvloop loop in a thread; the process tests start ``serve`` in a
subprocess. Every wait is bounded by a socket timeout or a deadline.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httptools
import pytest
import uvloop

from openkms.api.http import HttpProtocol, HttpRequest, HttpResponse, ServerLimits
from openkms.api.server import bind_socket, serve_socket

TIMEOUT = 5.0
SRC = str(Path(__file__).resolve().parents[3] / "src")


# --- a trivial echo application ---


def echo(request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
    path = request.raw_path
    if path == "/boom":
        raise RuntimeError("secret-detail-in-exception")
    if path == "/inject":
        return HttpResponse(200, [("X-Bad", "a\r\nSet-Cookie: x=1")], b"")
    if path.startswith("/async"):
        return _echo_later(request)
    if path == "/big":
        return HttpResponse(200, [], b"x" * (512 * 1024))
    return _echo(request)


async def _echo_later(request: HttpRequest) -> HttpResponse:
    params = dict(p.split("=", 1) for p in request.query.split("&") if "=" in p)
    await asyncio.sleep(float(params.get("ms", "10")) / 1000)
    if "boom" in params:
        raise RuntimeError("secret-detail-in-exception")
    return _echo(request)


def _echo(request: HttpRequest) -> HttpResponse:
    info = {
        "method": request.method,
        "path": request.raw_path,
        "query": request.query,
        "headers": request.headers,
        "peer": request.peer,
        "tls": request.tls,
        "body": request.body.decode("latin-1"),
    }
    return HttpResponse(200, [("Content-Type", "application/json")], json.dumps(info).encode())


# --- a server on a loop in a thread ---


@contextmanager
def running(
    limits: ServerLimits | None = None, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None
) -> Iterator[int]:
    sock = bind_socket(host, 0)
    port = sock.getsockname()[1]
    loop = uvloop.new_event_loop()
    stop: list[asyncio.Event] = []
    ready = threading.Event()

    async def main() -> None:
        stop.append(asyncio.Event())
        ready.set()
        limit = limits or ServerLimits()
        await serve_socket(
            sock, echo, limits=limit, ssl_context=ssl_context, stop=stop[0], shutdown_timeout=2.0
        )

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(TIMEOUT)
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(TIMEOUT)
        assert not thread.is_alive()
        loop.close()
        sock.close()


class Response:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.parts: list[bytes] = []
        self.body = b""

    def json(self) -> dict[str, Any]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value


class Client:
    """Raw socket client; responses are parsed with httptools' response parser."""

    def __init__(self, port: int, host: str = "127.0.0.1", sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.create_connection((host, port), timeout=TIMEOUT)
        self.sock.settimeout(TIMEOUT)
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[Response] = []
        self.current = Response()

    def on_message_begin(self) -> None:
        self.current = Response()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers[name.decode().lower()] = value.decode()

    def on_headers_complete(self) -> None:
        self.current.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.current.parts.append(body)

    def on_message_complete(self) -> None:
        self.current.body = b"".join(self.current.parts)
        self.done.append(self.current)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, count: int = 1) -> list[Response]:
        while len(self.done) < count:
            data = self.sock.recv(1 << 16)
            if not data:
                raise EOFError(f"connection closed after {len(self.done)} responses")
            self.parser.feed_data(data)
        out, self.done = self.done[:count], self.done[count:]
        return out

    def one(self, data: bytes) -> Response:
        self.send(data)
        return self.read()[0]

    def closed(self, within: float = TIMEOUT) -> bool:
        """True if the server closes the connection within ``within`` seconds (data is drained)."""
        self.sock.settimeout(within)
        try:
            while self.sock.recv(1 << 16):
                pass
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        return True

    def close(self) -> None:
        self.sock.close()


def request(path: str = "/", body: bytes = b"", method: str = "POST", extra: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def assert_error(response: Response, status: int, code: str) -> None:
    assert response.status == status
    assert response.headers["content-type"] == "application/x-amz-json-1.1"
    assert response.json()["__type"] == code
    assert response.headers.get("connection") == "close"


# --- keep-alive, pipelining, versions ---


def test_keepalive_many_requests_on_one_socket() -> None:
    with running() as port:
        client = Client(port)
        for i in range(5):
            response = client.one(request(f"/k{i}?n={i}", b"body%d" % i, extra="X-Amz-Target: T.Op\r\n"))
            assert response.status == 200
            info = response.json()
            assert info["path"] == f"/k{i}" and info["query"] == f"n={i}"
            assert info["body"] == f"body{i}"
            assert ["x-amz-target", "T.Op"] in info["headers"]
            assert info["peer"] == "127.0.0.1" and info["tls"] is False
            assert int(response.headers["content-length"]) == len(response.body)
            assert response.headers["date"].endswith(" GMT")
            assert "connection" not in response.headers
        client.close()


def test_headers_keep_order_duplicates_and_raw_bytes() -> None:
    with running() as port:
        client = Client(port)
        extra = "X-A: 1\r\nx-b: two\r\nX-A: 3\r\nX-Utf: \xe9\r\n"
        response = client.one(request("/h/%7E?b=2&a=1", extra=extra))
        info = response.json()
        assert info["path"] == "/h/%7E" and info["query"] == "b=2&a=1"
        headers = [tuple(h) for h in info["headers"]]
        assert [h for h in headers if h[0].startswith("x-")] == [
            ("x-a", "1"),
            ("x-b", "two"),
            ("x-a", "3"),
            ("x-utf", "\xe9".encode().decode("latin-1")),  # bytes on the wire, latin-1 decoded
        ]


def test_pipelined_requests_are_answered_in_order() -> None:
    with running() as port:
        client = Client(port)
        # async requests finishing in reverse order of arrival, mixed with synchronous ones
        paths = [f"/async{i}?ms={(10 - i) * 5}" if i % 2 else f"/sync{i}" for i in range(10)]
        client.send(b"".join(request(p, b"%d" % i) for i, p in enumerate(paths)))
        responses = client.read(10)
        assert [r.json()["path"] for r in responses] == [p.split("?")[0] for p in paths]
        assert [r.json()["body"] for r in responses] == [str(i) for i in range(10)]
        assert client.one(request("/after")).status == 200


def test_many_pipelined_requests_pause_and_resume_reading() -> None:
    with running() as port:
        client = Client(port)
        client.send(b"".join(request(f"/async{i}?ms=1", b"x") for i in range(100)))
        responses = client.read(100)
        assert [r.json()["path"] for r in responses] == [f"/async{i}" for i in range(100)]


def test_write_backpressure_with_large_responses(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[int] = []
    original = HttpProtocol.pause_writing

    def pause_writing(self: HttpProtocol) -> None:
        pauses.append(1)
        original(self)

    monkeypatch.setattr(HttpProtocol, "pause_writing", pause_writing)
    with running() as port:
        client = Client(port)
        client.send(b"".join(request("/big", method="GET") for _ in range(20)))
        time.sleep(0.3)  # 10 MiB of answers: the server fills the socket buffers and pauses
        responses = client.read(20)
        assert all(r.status == 200 and len(r.body) == 512 * 1024 for r in responses)
        assert pauses


def test_http10_closes_by_default() -> None:
    with running() as port:
        client = Client(port)
        client.send(b"GET /old HTTP/1.0\r\n\r\n")
        response = client.read()[0]
        assert response.status == 200 and response.json()["method"] == "GET"
        assert response.headers["connection"] == "close"
        assert client.closed()


def test_http10_keepalive_when_asked() -> None:
    with running() as port:
        client = Client(port)
        for _ in range(2):
            response = client.one(b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            assert response.status == 200
            assert response.headers["connection"] == "keep-alive"


def test_connection_close_from_client_is_honoured() -> None:
    with running() as port:
        client = Client(port)
        response = client.one(request("/bye", extra="Connection: close\r\n"))
        assert response.status == 200 and response.headers["connection"] == "close"
        assert client.closed()


def test_head_has_length_but_no_body() -> None:
    with running() as port:
        client = Client(port)
        client.send(b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n")
        client.parser = httptools.HttpResponseParser(client)
        data = client.sock.recv(1 << 16)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: " in head
        assert rest == b""
        assert client.one(request("/next")).status == 200


def test_chunked_request_body() -> None:
    with running() as port:
        client = Client(port)
        client.send(b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"hello ", b"chunked ", b"world"):
            client.send(b"%x\r\n%s\r\n" % (len(part), part))
            time.sleep(0.01)
        client.send(b"0\r\n\r\n")
        response = client.read()[0]
        assert response.status == 200 and response.json()["body"] == "hello chunked world"


def test_expect_100_continue() -> None:
    with running() as port:
        client = Client(port)
        client.send(b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        assert client.sock.recv(1 << 16).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        client.send(b"data")
        response = client.read()[0]
        assert response.status == 200 and response.json()["body"] == "data"


def test_upgrade_request_is_answered_as_plain_http_then_closed() -> None:
    with running() as port:
        client = Client(port)
        response = client.one(request("/u", method="GET", extra="Connection: Upgrade\r\nUpgrade: h2c\r\n"))
        assert response.status == 200 and response.headers["connection"] == "close"
        assert client.closed()


# --- errors of the HTTP layer ---


def test_malformed_request_gets_400_json_and_close() -> None:
    with running() as port:
        client = Client(port)
        response = client.one(b"THIS IS NOT HTTP\r\n\r\n")
        assert_error(response, 400, "SerializationException")
        assert response.json()["message"] == "Malformed HTTP request"
        assert client.closed()


def test_error_comes_after_the_answers_owed_to_earlier_requests() -> None:
    with running() as port:
        client = Client(port)
        client.send(request("/async?ms=50") + request("/ok") + b"BROKEN\r\n\r\n")
        first, second, error = client.read(3)
        assert first.json()["path"] == "/async" and second.json()["path"] == "/ok"
        assert_error(error, 400, "SerializationException")
        assert client.closed()


def test_body_too_large_by_content_length_is_refused_before_reading_it() -> None:
    with running(ServerLimits(max_body_bytes=1000)) as port:
        client = Client(port)
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n")  # body never sent
        response = client.read()[0]
        assert_error(response, 413, "RequestEntityTooLargeException")
        assert client.closed()
        exact = Client(port)
        assert exact.one(request("/", b"y" * 1000)).status == 200


def test_body_too_large_while_streaming_chunks() -> None:
    with running(ServerLimits(max_body_bytes=1000)) as port:
        client = Client(port)
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):
            client.send(b"190\r\n" + b"z" * 400 + b"\r\n")
        response = client.read()[0]
        assert_error(response, 413, "RequestEntityTooLargeException")
        assert client.closed()


def test_large_body_sent_in_full_still_gets_413_not_a_reset() -> None:
    with running(ServerLimits(max_body_bytes=1000)) as port:
        client = Client(port)
        client.send(request("/", b"q" * 300_000))
        assert_error(client.read()[0], 413, "RequestEntityTooLargeException")


def test_huge_headers_get_431() -> None:
    with running(ServerLimits(max_header_bytes=4096)) as port:
        client = Client(port)
        response = client.one(request("/", extra=f"X-Big: {'a' * 5000}\r\n"))
        assert_error(response, 431, "RequestHeaderFieldsTooLarge")
        assert client.closed()
        many = Client(port)
        extra = "".join(f"X-H{i}: {'b' * 50}\r\n" for i in range(100))
        assert_error(many.one(request("/", extra=extra)), 431, "RequestHeaderFieldsTooLarge")
        long_url = Client(port)
        assert_error(long_url.one(request("/" + "u" * 5000)), 431, "RequestHeaderFieldsTooLarge")


def test_one_endless_header_trickled_in_is_cut_off() -> None:
    with running(ServerLimits(max_header_bytes=4096)) as port:
        client = Client(port)
        client.send(b"POST / HTTP/1.1\r\nX-Endless: ")
        try:
            for _ in range(100):
                client.send(b"c" * 100)
                time.sleep(0.002)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert_error(client.read()[0], 431, "RequestHeaderFieldsTooLarge")


def test_headers_below_limit_are_fine() -> None:
    with running(ServerLimits(max_header_bytes=4096)) as port:
        client = Client(port)
        assert client.one(request("/", extra=f"X-Big: {'a' * 3000}\r\n")).status == 200


def test_slowloris_header_timeout_sends_408_and_closes() -> None:
    with running(ServerLimits(header_timeout=0.3)) as port:
        client = Client(port)
        started = time.monotonic()
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\n")
        for _ in range(5):  # keep trickling: the deadline is not extended by activity
            time.sleep(0.1)
            client.send(b"X: y\r\n")
        response = client.read()[0]
        assert_error(response, 408, "RequestTimeoutException")
        assert client.closed()
        assert time.monotonic() - started < 2.5


def test_silent_new_connection_is_closed_quietly() -> None:
    with running(ServerLimits(header_timeout=0.3)) as port:
        client = Client(port)
        client.sock.settimeout(3)
        assert client.sock.recv(100) == b""


def test_body_timeout_sends_408() -> None:
    with running(ServerLimits(body_timeout=0.3)) as port:
        client = Client(port)
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhalf")
        assert_error(client.read()[0], 408, "RequestTimeoutException")
        assert client.closed()


def test_idle_keepalive_connection_is_closed() -> None:
    with running(ServerLimits(keepalive_timeout=0.3)) as port:
        client = Client(port)
        assert client.one(request()).status == 200
        client.sock.settimeout(3)
        assert client.sock.recv(100) == b""


def test_max_connections_per_worker() -> None:
    with running(ServerLimits(max_connections=2)) as port:
        first, second = Client(port), Client(port)
        assert first.one(request()).status == 200 and second.one(request()).status == 200
        third = Client(port)
        assert_error(third.read()[0], 503, "ServiceUnavailable")
        first.close()
        time.sleep(0.1)
        assert Client(port).one(request()).status == 200


# --- half-close, async handlers, handler failures ---


@pytest.mark.parametrize("path", ["/sync", "/async?ms=50"])
def test_half_closed_client_still_gets_its_answer(path: str) -> None:
    with running() as port:
        client = Client(port)
        client.send(request(path, b"payload"))
        client.sock.shutdown(socket.SHUT_WR)
        response = client.read()[0]
        assert response.status == 200 and response.json()["body"] == "payload"
        assert client.closed()


def test_half_close_after_pipelined_requests() -> None:
    with running() as port:
        client = Client(port)
        client.send(request("/async?ms=30") + request("/two") + request("/async?ms=10"))
        client.sock.shutdown(socket.SHUT_WR)
        responses = client.read(3)
        assert [r.status for r in responses] == [200, 200, 200]
        assert responses[-1].headers["connection"] == "close"
        assert client.closed()


def test_async_handler() -> None:
    with running() as port:
        client = Client(port)
        response = client.one(request("/async?ms=20", b"later"))
        assert response.status == 200 and response.json()["body"] == "later"


@pytest.mark.parametrize("path", ["/boom", "/async?boom=1"])
def test_handler_exception_is_a_bare_500(path: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="openkms.api.http"), running() as port:
        client = Client(port)
        response = client.one(request(path, b"request-body-must-not-be-logged"))
        assert response.status == 500
        assert response.json() == {"__type": "InternalFailure", "message": "Internal server error"}
        assert b"secret" not in response.body and b"Traceback" not in response.body
        assert client.one(request("/still-alive")).status == 200
    failures = [r for r in caplog.records if r.exc_info]
    assert failures and "secret-detail-in-exception" in str(failures[0].exc_info[1])  # type: ignore[index]
    assert "request-body-must-not-be-logged" not in caplog.text


def test_header_injection_in_response_becomes_500() -> None:
    with running() as port:
        client = Client(port)
        response = client.one(request("/inject"))
        assert response.status == 500 and "set-cookie" not in response.headers


# --- TLS and IPv6 ---


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    with running(ssl_context=server_ctx) as port:
        raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        client = Client(port, sock=client_ctx.wrap_socket(raw, server_hostname="localhost"))
        for _ in range(2):
            response = client.one(request("/tls", b"secret"))
            assert response.status == 200 and response.json()["tls"] is True
        client.close()


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _ipv6_available(), reason="no IPv6 loopback")


@needs_ipv6
def test_ipv6_loopback_in_thread() -> None:
    with running(host="::1") as port:
        client = Client(port, host="::1")
        response = client.one(request("/v6"))
        assert response.status == 200 and response.json()["peer"] == "::1"


# --- serve() in a subprocess ---

SERVER_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from openkms.api.http import HttpResponse, ServerLimits
    from openkms.api.server import serve

    host, workers, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3]

    def make_handler():
        pid = str(os.getpid()).encode()

        async def slow():
            await asyncio.sleep(1.0)
            return HttpResponse(200, [], b"slow " + pid)

        def handler(request):
            if request.raw_path == "/slow":
                return slow()
            return HttpResponse(200, [("X-Pid", pid.decode())], pid)

        return handler

    def master_task(stop):
        open(marker + ".started", "w").close()
        stop.wait()
        open(marker + ".stopped", "w").close()

    def on_listening(h, port):
        print(port, flush=True)

    serve(host, 0, make_handler, workers=workers, on_listening=on_listening, master_task=master_task,
          limits=ServerLimits(keepalive_timeout=30))
    """
)


@contextmanager
def serve_process(tmp_path: Path, host: str, workers: int) -> Iterator[tuple[subprocess.Popen[str], int]]:
    script = tmp_path / "server.py"
    script.write_text(SERVER_SCRIPT)
    env = {**os.environ, "PYTHONPATH": SRC}
    marker = str(tmp_path / "master")
    proc = subprocess.Popen(
        [sys.executable, str(script), host, str(workers), marker],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().isdigit(), proc.stderr.read() if proc.stderr else line
        yield proc, int(line)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=TIMEOUT)


def _wait_for(condition: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _get(port: int, path: str = "/", host: str = "127.0.0.1") -> Response:
    for _ in range(50):  # a restarting worker may not be listening yet
        try:
            client = Client(port, host=host)
            response = client.one(request(path, method="GET", extra="Connection: close\r\n"))
            client.close()
            return response
        except (ConnectionError, EOFError):
            time.sleep(0.05)
    raise AssertionError("no answer")


def test_serve_two_workers_and_sigterm_exits_cleanly(tmp_path: Path) -> None:
    with serve_process(tmp_path, "127.0.0.1", 2) as (proc, port):
        pids = {_get(port).body for _ in range(20)}
        assert pids and all(p.isdigit() and int(p) != proc.pid for p in pids)
        assert _wait_for(lambda: (tmp_path / "master.started").exists())
        # a request in flight when SIGTERM arrives still completes
        slow = Client(port)
        slow.send(request("/slow", method="GET"))
        time.sleep(0.2)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        response = slow.read()[0]
        assert response.status == 200 and response.body.startswith(b"slow ")
        assert response.headers["connection"] == "close"
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 8
        assert (tmp_path / "master.stopped").exists()


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(), reason="no /proc")
def test_master_restarts_a_dead_worker(tmp_path: Path) -> None:
    with serve_process(tmp_path, "127.0.0.1", 2) as (proc, port):
        assert _wait_for(lambda: len(_children(proc.pid)) == 2)
        before = _children(proc.pid)
        victim = next(iter(before))
        os.kill(victim, signal.SIGKILL)
        assert _wait_for(lambda: len(_children(proc.pid)) == 2 and victim not in _children(proc.pid))
        assert _get(port).status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


@needs_ipv6
def test_serve_single_worker_on_ipv6_and_sigint(tmp_path: Path) -> None:
    with serve_process(tmp_path, "::1", 1) as (proc, port):
        response = _get(port, host="::1")
        assert response.status == 200 and response.body == str(proc.pid).encode()
        assert _wait_for(lambda: (tmp_path / "master.started").exists())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert (tmp_path / "master.stopped").exists()
