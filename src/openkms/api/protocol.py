"""One request through the AWS JSON 1.1 protocol (kms-semantics.md section 1; architecture.md section 2).

authenticate (SigV4) -> find the operation -> parse and validate the body against the service model ->
run the service handler (inline, or on a worker thread for operations that wait on the database) ->
JSON response, or ``{"__type", "message"}`` with the error's status. Unexpected exceptions become
KMSInternalException carrying only the request id; the traceback goes to the server log, never to the
client. Request bodies, plaintexts and secrets are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import orjson

from openkms import errors
from openkms.api.http import HttpRequest, HttpResponse
from openkms.api.model import load_service_model
from openkms.api.sigv4 import SigV4Verifier, VerifiedRequest
from openkms.api.validation import parse_body, validate
from openkms.service.context import Caller, RequestContext
from openkms.service.kms import Operation

log = logging.getLogger("openkms.api")

TARGET_PREFIX = "TrentService."
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"


def new_request_id() -> str:
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(type(value).__name__)


def _json_response(status: int, request_id: str, body: bytes) -> HttpResponse:
    return HttpResponse(
        status=status,
        headers=[("Content-Type", JSON_CONTENT_TYPE), ("x-amzn-RequestId", request_id)],
        body=body,
    )


def error_response(error: errors.KMSError, request_id: str) -> HttpResponse:
    body = orjson.dumps({"__type": error.code, "message": error.message})
    return _json_response(error.status, request_id, body)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one request; handed to the audit hook."""

    request_id: str
    operation: str | None
    verified: VerifiedRequest | None
    error: errors.KMSError | None
    started: float


AuditHook = Callable[[Outcome], None]


class KmsApi:
    """The request handler given to the HTTP server."""

    def __init__(
        self,
        operations: dict[str, Operation],
        verifier: SigV4Verifier,
        caller_of: Callable[[VerifiedRequest], Caller],
        clock: Callable[[], float],
        executor: Executor,
        audit: AuditHook | None = None,
        health: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        model = load_service_model()
        self._known = frozenset(model.operations)
        self._operations = operations
        self._verifier = verifier
        self._caller_of = caller_of
        self._clock = clock
        self._executor = executor
        self._audit = audit
        self._health = health or (lambda: {"status": "ok"})

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        request_id = new_request_id()
        started = time.monotonic()
        if request.method == "GET" and request.raw_path in ("/health", "/healthz"):
            return _json_response(200, request_id, orjson.dumps(self._health()))
        operation_name: str | None = None
        verified: VerifiedRequest | None = None
        try:
            if request.method != "POST":
                raise errors.UnknownOperationException(f"{request.method} is not supported; use POST.")
            verified = self._verifier.verify(
                request.method, request.raw_path, request.query, request.headers, request.body
            )
            operation_name = self._operation_name(request)
            operation = self._operations.get(operation_name)
            if operation is None:
                raise errors.UnsupportedOperationException(
                    f"The {operation_name} operation is not supported by this openkms release."
                )
            params = validate(operation_name, parse_body(request.body))
            ctx = RequestContext(
                request_id=request_id,
                caller=self._caller_of(verified),
                region=verified.region,
                source_ip=request.peer,
                user_agent=_header(request, "user-agent"),
                now=self._clock(),
            )
        except errors.KMSError as exc:
            return self._finish(request_id, operation_name, verified, started, error=exc)
        except Exception:
            log.exception("request %s failed before dispatch", request_id)
            return self._finish(request_id, operation_name, verified, started, error=_internal(request_id))
        if operation.inline:
            return self._run(operation, ctx, params, operation_name, verified, started)
        return self._run_in_thread(operation, ctx, params, operation_name, verified, started)

    async def _run_in_thread(
        self,
        operation: Operation,
        ctx: RequestContext,
        params: dict[str, Any],
        name: str,
        verified: VerifiedRequest,
        started: float,
    ) -> HttpResponse:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._run, operation, ctx, params, name, verified, started
        )

    def _run(
        self,
        operation: Operation,
        ctx: RequestContext,
        params: dict[str, Any],
        name: str,
        verified: VerifiedRequest,
        started: float,
    ) -> HttpResponse:
        try:
            result = operation.handler(ctx, params)
            body = orjson.dumps(result, default=_default)
        except errors.KMSError as exc:
            return self._finish(ctx.request_id, name, verified, started, error=exc)
        except Exception:
            log.exception("request %s (%s) failed", ctx.request_id, name)
            return self._finish(ctx.request_id, name, verified, started, error=_internal(ctx.request_id))
        return self._finish(ctx.request_id, name, verified, started, body=body)

    def _finish(
        self,
        request_id: str,
        operation: str | None,
        verified: VerifiedRequest | None,
        started: float,
        *,
        body: bytes = b"",
        error: errors.KMSError | None = None,
    ) -> HttpResponse:
        if self._audit is not None:
            try:
                self._audit(Outcome(request_id, operation, verified, error, started))
            except Exception:
                # Fail closed: a request that cannot be audited does not succeed.
                log.exception("audit of request %s failed", request_id)
                return error_response(_internal(request_id), request_id)
        if error is not None:
            return error_response(error, request_id)
        return _json_response(200, request_id, body)

    def _operation_name(self, request: HttpRequest) -> str:
        target = _header(request, "x-amz-target")
        if not target.startswith(TARGET_PREFIX) or target[len(TARGET_PREFIX) :] not in self._known:
            raise errors.UnknownOperationException(
                f"The operation '{target or '(none)'}' is not a TrentService operation."
                if target
                else "Missing X-Amz-Target header."
            )
        return target[len(TARGET_PREFIX) :]


def _header(request: HttpRequest, name: str) -> str:
    for key, value in request.headers:
        if key == name:
            return value
    return ""


def _internal(request_id: str) -> errors.KMSError:
    return errors.KMSInternalException(f"An internal error occurred (request id {request_id}).")
