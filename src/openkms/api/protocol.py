"""One request through the AWS JSON 1.1 protocol (kms-semantics.md section 1; architecture.md section 2).

authenticate (SigV4) -> find the operation -> parse and validate the body against the service model ->
run the service handler (inline, or on a worker thread for operations that wait on the database) ->
audit -> JSON response, or ``{"__type", "message"}`` with the error's status. Unexpected exceptions
become KMSInternalException carrying only the request id; the traceback goes to the server log, never
to the client. Request bodies, plaintexts and secrets are never logged.

Audit (architecture.md section 2, step 6): every request that reaches ``__call__`` (except the health
check) produces exactly one ``Outcome`` handed to the ``AuditHook``: allowed, denied, invalid or not
authenticated. The response is released only when the hook says the record is durable; if the hook
raises or its future fails, the answer is KMSInternalException and the handler's result is dropped
(fail closed). Besides KMS (``TrentService``), other AWS JSON services can be answered at the same
endpoint (``ApiService``: CloudTrail's LookupEvents), each scoped by its SigV4 signing name. A form POST
without ``X-Amz-Target`` is STS's query protocol (``api/sts.py``: GetCallerIdentity), answered in XML.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from openkms import errors
from openkms.api.http import HttpRequest, HttpResponse
from openkms.api.sigv4 import SigV4Verifier, VerifiedRequest
from openkms.api.sts import SIGNING_NAME as STS_SIGNING_NAME
from openkms.api.sts import StsService, check_action, is_query_request, parse_form
from openkms.api.sts import error_response as sts_error_response
from openkms.api.validation import operation_names, parse_body, validate
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
class ApiService:
    """One AWS JSON 1.1 service answered at this endpoint."""

    signing_name: str  # the SigV4 credential scope's service ("kms", "cloudtrail")
    target_prefix: str  # X-Amz-Target prefix including the dot ("TrentService.")
    operations: Mapping[str, Operation]  # what this build implements
    known: frozenset[str]  # every operation of the service's model (others: UnknownOperationException)
    validate: Callable[[str, dict[str, Any]], dict[str, Any]]


@dataclass(slots=True)
class Outcome:
    """What happened to one request; handed to the audit hook (not frozen only because a frozen
    dataclass costs several microseconds more per request; nobody changes it).

    ``params`` and ``result`` may hold plaintexts, blobs and other secrets: an audit hook must copy only
    allow-listed members out of them (``openkms.audit.fields``) and must not keep the outcome.
    """

    request_id: str
    operation: str | None  # the addressed operation, if the target names one of the service's model
    verified: VerifiedRequest | None  # None: authentication failed (or was not reached)
    error: errors.KMSError | None  # what the client was answered; None: success
    started: float  # monotonic
    time: float = 0.0  # wall clock (the service clock) when the request arrived
    source_ip: str = ""
    user_agent: str = ""
    service: str = "kms"  # signing name of the addressed service
    params: Mapping[str, Any] | None = None  # validated request members (None if validation failed)
    result: Mapping[str, Any] | None = None  # the handler's result (success only)
    context: RequestContext | None = None  # caller and resources touched (``RequestContext.resources``)
    access_key_id: str | None = None  # named by the Authorization header when authentication failed
    principal_id: str | None = None  # the caller's aws:userid when no authorization check recorded it


class AuditHook(Protocol):
    """Records one outcome, then releases ``response``: returns it once the record is durable, or a
    future of the running event loop that resolves to it when the record is durable and to
    ``internal_error_response(outcome.request_id)`` if it cannot be written. Raising means "not recorded".
    Called on the event loop's thread."""

    def __call__(
        self, outcome: Outcome, response: HttpResponse
    ) -> HttpResponse | asyncio.Future[HttpResponse]: ...


_Response = HttpResponse | Awaitable[HttpResponse]


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
        extra_services: Sequence[ApiService] = (),
        sts: StsService | None = None,
        principal_id_of: Callable[[Caller], str] | None = None,
    ) -> None:
        self._sts = sts
        self._principal_id_of = principal_id_of
        kms = ApiService("kms", TARGET_PREFIX, operations, frozenset(operation_names()), validate)
        self._services = (kms, *extra_services)
        self._verifier = verifier
        self._caller_of = caller_of
        self._clock = clock
        self._executor = executor
        self._audit = audit
        self._health = health or (lambda: {"status": "ok"})

    def __call__(self, request: HttpRequest) -> _Response:
        request_id = new_request_id()
        started = time.monotonic()
        if request.method == "GET" and request.raw_path in ("/health", "/healthz"):
            return _json_response(200, request_id, orjson.dumps(self._health()))
        now = self._clock()
        route: tuple[ApiService, str] | None = None
        verified: VerifiedRequest | None = None
        params: dict[str, Any] | None = None
        target = _header(request, "x-amz-target")
        if not target and self._sts is not None and is_query_request(request):
            return self._query(self._sts, request, request_id, started, now)  # STS, never KMS
        try:
            if request.method != "POST":
                raise errors.UnknownOperationException(f"{request.method} is not supported; use POST.")
            route = self._route(target)
            verified = self._verifier.verify(
                request.method, request.raw_path, request.query, request.headers, request.body
            )
            if route is None:
                raise _unknown_target(target)
            service, name = route
            if verified.service != service.signing_name:
                raise errors.InvalidSignatureException(
                    f"Credential should be scoped to correct service: '{service.signing_name}'. "
                )
            operation = service.operations.get(name)
            if operation is None:
                raise errors.UnsupportedOperationException(
                    f"The {name} operation is not supported by this openkms release."
                )
            params = service.validate(name, parse_body(request.body))
            ctx = RequestContext(
                request_id=request_id,
                caller=self._caller_of(verified),
                region=verified.region,
                source_ip=request.peer,
                user_agent=_header(request, "user-agent"),
                now=now,
                params=params,
                secure=request.tls,
            )
        except errors.KMSError as exc:
            error = exc
        except Exception:
            log.exception("request %s failed before dispatch", request_id)
            error = _internal(request_id)
        else:
            if operation.runs_inline(ctx.region):
                return self._run(route, operation, ctx, params, verified, started)
            return self._run_in_thread(route, operation, ctx, params, verified, started)
        outcome = Outcome(
            request_id,
            route[1] if route is not None else None,
            verified,
            error,
            started,
            now,
            request.peer,
            _header(request, "user-agent"),
            route[0].signing_name if route is not None else "kms",
            params,
            access_key_id=_access_key_hint(request) if verified is None else None,
        )
        return self._finish(outcome, error_response(error, request_id))

    def _query(
        self, sts: StsService, request: HttpRequest, request_id: str, started: float, now: float
    ) -> _Response:
        """A query-protocol (STS) request: GetCallerIdentity; errors in STS's XML form. Audited."""
        verified: VerifiedRequest | None = None
        action: str | None = None
        ctx: RequestContext | None = None
        error: errors.KMSError | None = None
        user_agent = _header(request, "user-agent")
        try:
            if request.method != "POST":
                raise errors.UnknownOperationException(f"{request.method} is not supported; use POST.")
            form = parse_form(request)
            verified = self._verifier.verify(
                request.method, request.raw_path, request.query, request.headers, request.body
            )
            if verified.service != STS_SIGNING_NAME:
                raise errors.InvalidSignatureException(
                    f"Credential should be scoped to correct service: '{STS_SIGNING_NAME}'. "
                )
            action = check_action(form)
            ctx = RequestContext(
                request_id, self._caller_of(verified), verified.region, request.peer, user_agent, now
            )
            response = sts.get_caller_identity(ctx.caller, request_id)
        except errors.KMSError as exc:
            error = exc
            response = sts_error_response(exc, request_id)
        except Exception:
            log.exception("request %s failed", request_id)
            error = _internal(request_id)
            response = sts_error_response(error, request_id)
        outcome = Outcome(
            request_id, action, verified, error, started, now, request.peer, user_agent, STS_SIGNING_NAME,
            None, None, ctx, access_key_id=_access_key_hint(request) if verified is None else None,
        )  # fmt: skip
        return self._finish(outcome, response)

    def _execute(
        self, operation: Operation, ctx: RequestContext, params: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, HttpResponse, errors.KMSError | None]:
        try:
            result = operation.handler(ctx, params)
            body = orjson.dumps(result, default=_default)
        except errors.KMSError as exc:
            return None, error_response(exc, ctx.request_id), exc
        except Exception:
            log.exception("request %s failed", ctx.request_id)
            error = _internal(ctx.request_id)
            return None, error_response(error, ctx.request_id), error
        return result, _json_response(200, ctx.request_id, body), None

    def _run(
        self,
        route: tuple[ApiService, str],
        operation: Operation,
        ctx: RequestContext,
        params: dict[str, Any],
        verified: VerifiedRequest,
        started: float,
    ) -> _Response:
        result, response, error = self._execute(operation, ctx, params)
        service, name = route
        outcome = Outcome(
            ctx.request_id, name, verified, error, started, ctx.now, ctx.source_ip, ctx.user_agent,
            service.signing_name, params, result, ctx,
        )  # fmt: skip
        return self._finish(outcome, response)

    async def _run_in_thread(
        self,
        route: tuple[ApiService, str],
        operation: Operation,
        ctx: RequestContext,
        params: dict[str, Any],
        verified: VerifiedRequest,
        started: float,
    ) -> HttpResponse:
        loop = asyncio.get_running_loop()
        result, response, error = await loop.run_in_executor(
            self._executor, self._execute, operation, ctx, params
        )
        service, name = route
        outcome = Outcome(
            ctx.request_id, name, verified, error, started, ctx.now, ctx.source_ip, ctx.user_agent,
            service.signing_name, params, result, ctx,
        )  # fmt: skip
        # the audit hook is always called on the event loop's thread
        answer = self._finish(outcome, response)
        return answer if isinstance(answer, HttpResponse) else await answer

    def rejected(self, request: HttpRequest, error: errors.KMSError) -> None:
        """Record a request the HTTP layer refused before its body was read (an oversized body): not
        authenticated (the signature covers the body), so only what it claims. Best effort: the client
        gets the refusal whatever happens here, and no operation ran."""
        target = _header(request, "x-amz-target")
        route = self._route(target) if request.method == "POST" else None
        outcome = Outcome(
            new_request_id(),
            route[1] if route is not None else None,
            None,
            error,
            time.monotonic(),
            self._clock(),
            request.peer,
            _header(request, "user-agent"),
            route[0].signing_name if route is not None else "kms",
            None,
            access_key_id=_access_key_hint(request),
        )
        self._finish(outcome, error_response(error, outcome.request_id))

    def _finish(self, outcome: Outcome, response: HttpResponse) -> _Response:
        """Release ``response`` once the audit record of ``outcome`` is durable (fail closed)."""
        audit = self._audit
        if audit is None:
            return response
        ctx = outcome.context
        if outcome.verified is not None and (ctx is None or not ctx.principal_ids):
            outcome.principal_id = self._principal_id(outcome.verified, ctx)
        try:
            return audit(outcome, response)
        except Exception:
            # Fail closed: a request that cannot be audited does not succeed.
            log.exception("audit of request %s failed", outcome.request_id)
            return internal_error_response(outcome.request_id)

    def _principal_id(self, verified: VerifiedRequest, ctx: RequestContext | None) -> str | None:
        """CloudTrail names the caller's aws:userid in every authenticated record; authorization already
        looked it up for most requests, this covers those refused before (validation, unknown key) and
        STS. Best effort: a record without it is still a record."""
        if self._principal_id_of is None:
            return None
        try:
            return self._principal_id_of(ctx.caller if ctx is not None else self._caller_of(verified))
        except Exception:
            log.warning("no aws:userid for the audit record of a request", exc_info=True)
            return None

    def _route(self, target: str) -> tuple[ApiService, str] | None:
        for service in self._services:
            if target.startswith(service.target_prefix):
                name = target[len(service.target_prefix) :]
                return (service, name) if name in service.known else None
        return None


def internal_error_response(request_id: str) -> HttpResponse:
    """The answer of a request that failed inside the server (including an audit record that could not
    be written): KMSInternalException with the request id only."""
    return error_response(_internal(request_id), request_id)


def _unknown_target(target: str) -> errors.KMSError:
    return errors.UnknownOperationException(
        f"The operation '{_clip(target)}' is not a TrentService operation."
        if target
        else "Missing X-Amz-Target header."
    )


def _clip(value: str, limit: int = 128) -> str:
    return value if len(value) <= limit else value[:limit] + "..."


def _access_key_hint(request: HttpRequest) -> str | None:
    """The access key id an unauthenticated request claims (never the signature): for the audit event."""
    authorization = _header(request, "authorization")
    mark = authorization.find("Credential=")
    if mark < 0:
        return None
    key = authorization[mark + 11 :].split("/", 1)[0]
    return key[:128] if key.isalnum() else None


def _header(request: HttpRequest, name: str) -> str:
    for key, value in request.headers:
        if key == name:
            return value
    return ""


def _internal(request_id: str) -> errors.KMSError:
    return errors.KMSInternalException(f"An internal error occurred (request id {request_id}).")
