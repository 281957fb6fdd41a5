"""Server-side AWS Signature Version 4 verification (kms-semantics.md §1.5).

``SigV4Verifier.verify`` checks one HTTP request signed with ``AWS4-HMAC-SHA256`` in the
``Authorization`` header and returns the caller's :class:`Credential` plus the region of the
credential scope, or raises the AWS authentication error the SDKs expect.

Compatibility notes (both botocore ``SigV4Auth`` and the Smithy ``SignatureV4`` of the JS SDK v3):

* Canonical URI, non-S3 rules: the path *as received on the wire* (still percent-encoded) has its
  empty and dot segments removed and is then URI-encoded once more with only RFC 3986 unreserved
  characters and ``/`` left alone. So ``/a%20b`` is canonicalised as ``/a%2520b`` exactly as both
  SDKs do for an endpoint URL with that path.
* Canonical query: every ``name=value`` pair is decoded (``+`` is a space) and re-encoded with RFC
  3986 rules, then sorted by name and value. KMS requests normally have no query string.
* Header values: all values of a name in arrival order, each with runs of spaces/tabs collapsed to one
  space and trimmed, joined with ``,``.
* Payload: the SHA-256 of the exact body bytes. ``x-amz-content-sha256``, when present, must equal it;
  ``UNSIGNED-PAYLOAD`` is refused.

Error messages are sent to clients: they never contain the signature, the secret or a session token,
and header values they echo are clipped.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote, unquote_plus

from openkms import errors

if TYPE_CHECKING:
    from _hashlib import HASH

__all__ = [
    "ALGORITHM",
    "MISMATCH_MESSAGE",
    "Credential",
    "SigV4Verifier",
    "VerifiedRequest",
]

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

MISSING_TOKEN_MESSAGE = "Missing Authentication Token"  # noqa: S105 - a message
MISMATCH_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)
INVALID_TOKEN_MESSAGE = "The security token included in the request is invalid."  # noqa: S105 - a message
EXPIRED_TOKEN_MESSAGE = "The security token included in the request is expired"  # noqa: S105 - a message
INVALID_REGION_MESSAGE = "Credential should be scoped to a valid region. "
HOST_NOT_SIGNED_MESSAGE = "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
CONTENT_SHA256_MISMATCH_MESSAGE = (
    "The provided 'x-amz-content-sha256' header does not match what was computed."
)
UNSIGNED_PAYLOAD_MESSAGE = (
    "UNSIGNED-PAYLOAD is not accepted: 'x-amz-content-sha256' must be the SHA-256 of the request body."
)

_SIGNING_KEY_CACHE_SIZE = 1024
_PARSE_CACHE_SIZE = 1024  # scopes, SignedHeaders lists and X-Amz-Date values seen recently
_ECHO_LIMIT = 256
_MONTHS = {
    "Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "Jun": 6,
    "Jul": 7, "Aug": 8, "Sep": 9, "Oct": 10, "Nov": 11, "Dec": 12,
}  # fmt: skip
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_V = TypeVar("_V")
_WS_RUN = re.compile(r"[ \t]+")
_REGION_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class Credential:
    """What the credential store returns for an access key id."""

    access_key_id: str
    secret_access_key: str
    account: str
    principal_arn: str
    session_token: str | None = None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """A successfully authenticated request."""

    credential: Credential
    region: str  # from the credential scope
    signed_at: float  # epoch seconds of X-Amz-Date (or Date)
    service: str = "kms"  # the signing name of the credential scope (one of the verifier's services)


# --------------------------------------------------------------------------------------------------
# helpers


def _clip(value: str) -> str:
    return value if len(value) <= _ECHO_LIMIT else value[:_ECHO_LIMIT] + "..."


def _amz_timestamp(epoch: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))


def _valid_civil(year: int, month: int, day: int, hour: int, minute: int, second: int) -> bool:
    if not (1 <= month <= 12 and 1 <= day <= _DAYS_IN_MONTH[month]):
        return False
    if month == 2 and day == 29 and not calendar.isleap(year):
        return False
    return hour <= 23 and minute <= 59 and second <= 59


def _parse_amz_date(value: str) -> float | None:
    """``YYYYMMDD'T'HHMMSS'Z'`` -> epoch seconds, by slicing (no strptime)."""
    if len(value) != 16 or value[8] != "T" or value[15] != "Z" or not value.isascii():
        return None
    date, clock = value[:8], value[9:15]
    if not (date.isdigit() and clock.isdigit()):
        return None
    year, month, day = int(date[:4]), int(date[4:6]), int(date[6:8])
    hour, minute, second = int(clock[:2]), int(clock[2:4]), int(clock[4:6])
    if not _valid_civil(year, month, day, hour, minute, second):
        return None
    return float(calendar.timegm((year, month, day, hour, minute, second)))


def _parse_http_date(value: str) -> float | None:
    """RFC 7231 IMF-fixdate ``Wed, 01 Jan 2025 12:00:00 GMT``.

    The numeric-zone variant ``... +0000``/``-0000`` (what ``email.utils.formatdate`` and hence botocore
    write when a caller supplies a Date header) is accepted too.
    """
    if len(value) == 29:
        if value[25:] != " GMT":
            return None
    elif len(value) == 31:
        if value[25:] not in (" +0000", " -0000"):
            return None
    else:
        return None
    if not value.isascii() or value[3:5] != ", " or value[7] != " " or value[11] != " " or value[16] != " ":
        return None
    if value[19] != ":" or value[22] != ":":
        return None
    month = _MONTHS.get(value[8:11])
    digits = (value[5:7], value[12:16], value[17:19], value[20:22], value[23:25])
    if month is None or not all(d.isdigit() for d in digits):
        return None
    day, year, hour, minute, second = (int(d) for d in digits)
    if not _valid_civil(year, month, day, hour, minute, second):
        return None
    epoch = calendar.timegm((year, month, day, hour, minute, second))
    if _WEEKDAYS[time.gmtime(epoch).tm_wday] != value[:3]:
        return None
    return float(epoch)


def _trim(value: str) -> str:
    """SigV4 ``Trimall``: collapse runs of spaces/tabs to one space, strip both ends."""
    if "\t" in value or "  " in value:
        value = _WS_RUN.sub(" ", value)
    return value.strip(" ")


@lru_cache(maxsize=1024)
def canonical_uri(raw_path: str) -> str:
    """Canonical URI for non-S3 services, from the path exactly as received (still percent-encoded)."""
    if raw_path == "/" or not raw_path:
        return "/"
    segments: list[str] = []
    for segment in raw_path.split("/"):
        if not segment or segment == ".":
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    normalized = "/".join(segments)
    if raw_path[0] == "/":
        normalized = "/" + normalized
    if segments and raw_path[-1] == "/":
        normalized += "/"
    return quote(normalized, safe="/~")


def canonical_query(query: str) -> str:
    """Canonical query string from the raw query (without ``?``)."""
    if not query:
        return ""
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((quote(unquote_plus(name), safe="-_.~"), quote(unquote_plus(value), safe="-_.~")))
    pairs.sort()
    return "&".join(f"{name}={value}" for name, value in pairs)


def _hmac_states(key: bytes) -> tuple[HASH, HASH]:
    """SHA-256 states pre-fed with ``key ^ ipad`` and ``key ^ opad`` (RFC 2104).

    Copying these is much cheaper than keying a new HMAC for every request (OpenSSL 3 pays a
    per-call algorithm fetch in ``hmac.digest``)."""
    block = key.ljust(64, b"\0")  # signing keys are 32 bytes, below the 64-byte block size
    return (
        hashlib.sha256(bytes(b ^ 0x36 for b in block)),
        hashlib.sha256(bytes(b ^ 0x5C for b in block)),
    )


def derive_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")."""
    key = hmac.digest(("AWS4" + secret).encode("utf-8"), date.encode("ascii"), "sha256")
    key = hmac.digest(key, region.encode("utf-8"), "sha256")
    key = hmac.digest(key, service.encode("utf-8"), "sha256")
    return hmac.digest(key, b"aws4_request", "sha256")


_AUTH_PREFIX = ALGORITHM + " "


def _redacted(credential: str, signed_headers: str) -> str:
    """The Authorization header as echoed in error messages: never the signature."""
    parts = []
    if credential:
        parts.append(f"Credential={_clip(credential)}")
    if signed_headers:
        parts.append(f"SignedHeaders={_clip(signed_headers)}")
    return f"{ALGORITHM} " + ", ".join(parts)


def _parse_authorization(value: str) -> tuple[str, str, str]:
    """-> (Credential, SignedHeaders, Signature). The fast path handles what every SDK sends."""
    if value.startswith(_AUTH_PREFIX):
        parts = value[17:].split(",")
        if len(parts) == 3:
            credential = parts[0].strip(" \t")
            signed_headers = parts[1].strip(" \t")
            signature = parts[2].strip(" \t")
            if (
                credential.startswith("Credential=")
                and signed_headers.startswith("SignedHeaders=")
                and signature.startswith("Signature=")
                and len(credential) > 11
                and len(signed_headers) > 14
                and len(signature) > 10
            ):
                return credential[11:], signed_headers[14:], signature[10:]
    return _parse_authorization_slow(value)


def _parse_authorization_slow(value: str) -> tuple[str, str, str]:
    algorithm, _, rest = value.strip(" \t").partition(" ")
    if algorithm != ALGORITHM:
        raise errors.IncompleteSignatureException(
            f"Unsupported AWS 'algorithm': '{_clip(algorithm)}'. Only '{ALGORITHM}' is supported."
        )
    found: dict[str, str] = {}
    for raw_part in rest.split(","):
        part = raw_part.strip(" \t")
        if not part:
            continue
        name, eq, component = part.partition("=")
        if not eq or name not in ("Credential", "SignedHeaders", "Signature"):
            shown = name if eq else part
            raise errors.IncompleteSignatureException(
                f"Authorization header contains an unexpected component '{_clip(shown)}'. "
                f"Expected '{ALGORITHM} Credential=..., SignedHeaders=..., Signature=...'."
            )
        if name in found:
            raise errors.IncompleteSignatureException(
                f"Authorization header contains the '{name}' parameter more than once."
            )
        found[name] = component
    credential = found.get("Credential", "")
    signed_headers = found.get("SignedHeaders", "")
    signature = found.get("Signature", "")
    missing = [
        f"Authorization header requires '{name}' parameter."
        for name, component in (
            ("Credential", credential),
            ("SignedHeaders", signed_headers),
            ("Signature", signature),
        )
        if not component
    ]
    if missing:
        raise errors.IncompleteSignatureException(
            " ".join(missing) + f" Authorization={_redacted(credential, signed_headers)}"
        )
    return credential, signed_headers, signature


def _all_values(headers: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """Names that occur more than once -> all their values in arrival order."""
    groups: dict[str, list[str]] = {}
    for name, value in headers:
        groups.setdefault(name, []).append(value)
    return {name: group for name, group in groups.items() if len(group) > 1}


def _remember(cache: dict[str, _V], key: str, value: _V) -> None:
    if len(cache) >= _PARSE_CACHE_SIZE:
        cache.clear()
    cache[key] = value


# --------------------------------------------------------------------------------------------------
# verifier


class SigV4Verifier:
    """Verifies SigV4-signed requests against a credential lookup. Thread-safe.

    Everything derived from the request alone (credential scope, SignedHeaders list, X-Amz-Date) is
    validated once and memoised in small bounded dicts, as are the signing keys, so the steady-state
    cost is three SHA-256 computations (body, canonical request, HMAC) plus string building.
    """

    def __init__(
        self,
        lookup: Callable[[str], Credential | None],
        *,
        service: str = "kms",
        extra_services: Collection[str] = (),  # further signing names accepted (e.g. "cloudtrail")
        allowed_regions: Collection[str] | None = None,  # None = any well-formed region
        max_skew_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lookup = lookup
        self._service = service
        self._services = frozenset((service, *extra_services))
        self._allowed_regions = frozenset(allowed_regions) if allowed_regions is not None else None
        self._max_skew = float(max_skew_seconds)
        self._skew_text = f"{self._max_skew / 60:g} min."
        self._clock = clock
        self._service_message = f"Credential should be scoped to correct service: '{service}'. "
        self._keys: dict[tuple[str, str, str, str, str], tuple[HASH, HASH]] = {}
        self._keys_lock = threading.Lock()
        self._scopes: dict[str, tuple[str, str, str, str]] = {}
        self._signed_lists: dict[str, tuple[str, ...]] = {}
        self._dates: dict[str, float] = {}

    # ------------------------------------------------------------------ memoised parsing

    def _signing_states(
        self, access_key_id: str, secret: str, date: str, region: str, service: str
    ) -> tuple[HASH, HASH]:
        cache_key = (access_key_id, secret, date, region, service)
        states = self._keys.get(cache_key)
        if states is None:
            states = _hmac_states(derive_signing_key(secret, date, region, service))
            with self._keys_lock:
                while len(self._keys) >= _SIGNING_KEY_CACHE_SIZE:
                    # dicts keep insertion order: evict the oldest entry
                    del self._keys[next(iter(self._keys))]
                self._keys[cache_key] = states
        return states

    def _scope(self, credential: str) -> tuple[str, str, str, str]:
        """Credential -> (access key id, yyyymmdd, region, service), validated."""
        scope = self._scopes.get(credential)
        if scope is not None:
            return scope
        parts = credential.split("/")
        if len(parts) != 5:
            raise errors.IncompleteSignatureException(
                "Credential must have exactly 5 slash-delimited elements, "
                f"e.g. keyid/date/region/service/term, got '{_clip(credential)}'"
            )
        access_key_id, date, region, service, terminator = parts
        if not access_key_id:
            raise errors.IncompleteSignatureException(
                f"Credential must start with an access key id, got '{_clip(credential)}'"
            )
        if len(date) != 8 or not (date.isascii() and date.isdigit()):
            raise errors.IncompleteSignatureException(
                f"Credential date must be in 'yyyyMMdd' format, got '{_clip(date)}'"
            )
        if service not in self._services:
            raise errors.InvalidSignatureException(self._service_message)
        if terminator != TERMINATOR:
            raise errors.InvalidSignatureException(
                f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
                f"not '{_clip(terminator)}'. "
            )
        if self._allowed_regions is not None:
            if region not in self._allowed_regions:
                raise errors.InvalidSignatureException(INVALID_REGION_MESSAGE)
        elif _REGION_RE.fullmatch(region) is None:
            raise errors.InvalidSignatureException(INVALID_REGION_MESSAGE)
        scope = (access_key_id, date, region, service)
        _remember(self._scopes, credential, scope)
        return scope

    def _signed_list(self, signed_headers: str, credential: str) -> tuple[str, ...]:
        """SignedHeaders -> names; lowercase, sorted, distinct, including host."""
        names = self._signed_lists.get(signed_headers)
        if names is not None:
            return names
        names = tuple(signed_headers.split(";"))
        previous = ""
        for name in names:
            if not name or name <= previous or name != name.lower():
                raise errors.IncompleteSignatureException(
                    "SignedHeaders must be a ';'-separated list of distinct, lowercase, sorted header "
                    f"names, got '{_clip(signed_headers)}'. "
                    f"Authorization={_redacted(credential, signed_headers)}"
                )
            previous = name
        if "host" not in names:
            raise errors.InvalidSignatureException(HOST_NOT_SIGNED_MESSAGE)
        _remember(self._signed_lists, signed_headers, names)
        return names

    def _amz_date(self, value: str) -> float:
        signed_at = self._dates.get(value)
        if signed_at is None:
            signed_at = _parse_amz_date(value)
            if signed_at is None:
                raise errors.IncompleteSignatureException(
                    f"Date must be in ISO-8601 'basic format'. Got '{_clip(value)}'. "
                    "See http://en.wikipedia.org/wiki/ISO_8601"
                )
            _remember(self._dates, value, signed_at)
        return signed_at

    # ------------------------------------------------------------------ verification

    def verify(
        self, method: str, raw_path: str, query: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> VerifiedRequest:
        """headers: (lowercase name, value) in arrival order, duplicates allowed. raw_path is the path
        exactly as received (not decoded), query the raw query string without '?'. Raises the
        authentication errors of ``openkms.errors``; returns on success.

        Header names must already be lowercase (HTTP names are case-insensitive; the HTTP layer
        normalises them)."""
        values = dict(headers)  # the last value of each name; repeated names are handled below
        repeated = _all_values(headers) if len(values) != len(headers) else None

        # -- 1. Authorization header
        authorization = values.get("authorization")
        if authorization is None:
            if "X-Amz-Signature=" in query or "X-Amz-Credential=" in query:
                raise errors.IncompleteSignatureException(
                    "Query-string (presigned) authentication is not supported; "
                    "sign the request with the Authorization header."
                )
            raise errors.MissingAuthenticationTokenException(MISSING_TOKEN_MESSAGE)
        if repeated is not None and "authorization" in repeated:
            raise errors.IncompleteSignatureException(
                "The request contains more than one Authorization header."
            )
        credential_text, signed_headers, signature = _parse_authorization(authorization)

        # -- 2./3. credential scope (service, terminator, region); 6. SignedHeaders incl. host
        access_key_id, scope_date, region, service = self._scope(credential_text)
        signed = self._signed_list(signed_headers, credential_text)

        # -- 4. request time
        amz_date = values.get("x-amz-date")
        if amz_date is not None:
            if repeated is not None and "x-amz-date" in repeated:
                amz_date = ",".join(repeated["x-amz-date"])
            signed_at = self._amz_date(amz_date)
            if "x-amz-date" not in signed:
                raise errors.InvalidSignatureException(
                    "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization."
                )
        else:
            http_date = values.get("date")
            if http_date is None:
                raise errors.IncompleteSignatureException(
                    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
                    f"Authorization={_redacted(credential_text, signed_headers)}"
                )
            if repeated is not None and "date" in repeated:
                http_date = ",".join(repeated["date"])
            parsed = _parse_http_date(http_date)
            if parsed is None:
                raise errors.IncompleteSignatureException(
                    "Date must be in RFC 7231 format, e.g. 'Wed, 01 Jan 2025 12:00:00 GMT'. "
                    f"Got '{_clip(http_date)}'."
                )
            if "date" not in signed:
                raise errors.InvalidSignatureException(
                    "'Date' must be a 'SignedHeader' in the AWS Authorization."
                )
            signed_at = parsed
            amz_date = _amz_timestamp(signed_at)
        if not amz_date.startswith(scope_date):
            raise errors.InvalidSignatureException(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"'{scope_date}' != '{amz_date[:8]}', from '{amz_date}'."
            )
        clock_now = self._clock()
        now = int(clock_now // 1)
        if signed_at < now - self._max_skew:
            raise errors.InvalidSignatureException(
                f"Signature expired: {amz_date} is now earlier than {_amz_timestamp(now - self._max_skew)} "
                f"({_amz_timestamp(now)} - {self._skew_text})"
            )
        if signed_at > now + self._max_skew:
            raise errors.InvalidSignatureException(
                f"Signature not yet current: {amz_date} is still later than "
                f"{_amz_timestamp(now + self._max_skew)} ({_amz_timestamp(now)} + {self._skew_text})"
            )

        # -- canonical header block; every signed header must be present
        try:
            if repeated is None:
                header_block = "".join([f"{name}:{_trim(values[name])}\n" for name in signed])
            else:
                header_block = "".join(
                    [
                        f"{name}:{','.join([_trim(v) for v in repeated[name]])}\n"
                        if name in repeated
                        else f"{name}:{_trim(values[name])}\n"
                        for name in signed
                    ]
                )
        except KeyError as exc:
            raise errors.InvalidSignatureException(
                f"Header '{_clip(str(exc.args[0]))}' is listed in SignedHeaders "
                "but is not present in the request."
            ) from None

        # -- 7. payload hash
        payload_hash = hashlib.sha256(body).hexdigest()
        content_sha256 = values.get("x-amz-content-sha256")
        if content_sha256 is not None:
            if repeated is not None and "x-amz-content-sha256" in repeated:
                content_sha256 = ",".join(repeated["x-amz-content-sha256"])
            if content_sha256 != payload_hash:
                if content_sha256.strip(" \t") == UNSIGNED_PAYLOAD:
                    raise errors.InvalidSignatureException(UNSIGNED_PAYLOAD_MESSAGE)
                raise errors.InvalidSignatureException(CONTENT_SHA256_MISMATCH_MESSAGE)

        # -- 5. identity and session token
        credential = self._lookup(access_key_id)
        if credential is None:
            raise errors.UnrecognizedClientException(INVALID_TOKEN_MESSAGE)
        token = values.get("x-amz-security-token")
        if token is not None and repeated is not None and "x-amz-security-token" in repeated:
            token = ",".join(repeated["x-amz-security-token"])
        if credential.session_token is None:
            if token is not None:
                raise errors.UnrecognizedClientException(INVALID_TOKEN_MESSAGE)
        elif token is None or not hmac.compare_digest(
            token.encode("utf-8", "surrogateescape"), credential.session_token.encode("utf-8")
        ):
            raise errors.UnrecognizedClientException(INVALID_TOKEN_MESSAGE)
        if credential.expires_at is not None and clock_now >= credential.expires_at:
            raise errors.ExpiredTokenException(EXPIRED_TOKEN_MESSAGE)

        # -- 8.-11. canonical request, string to sign, signature
        canonical_request = (
            f"{method}\n{'/' if raw_path == '/' else canonical_uri(raw_path)}\n"
            f"{canonical_query(query) if query else ''}\n{header_block}\n{signed_headers}\n{payload_hash}"
        )
        string_to_sign = (
            f"{ALGORITHM}\n{amz_date}\n{scope_date}/{region}/{service}/{TERMINATOR}\n"
            + hashlib.sha256(canonical_request.encode("utf-8", "surrogateescape")).hexdigest()
        )
        inner_state, outer_state = self._signing_states(
            access_key_id, credential.secret_access_key, scope_date, region, service
        )
        inner = inner_state.copy()
        inner.update(string_to_sign.encode("utf-8"))
        outer = outer_state.copy()
        outer.update(inner.digest())
        expected = outer.hexdigest()
        if len(signature) != 64 or not signature.isascii() or not hmac.compare_digest(expected, signature):
            raise errors.InvalidSignatureException(MISMATCH_MESSAGE)
        return VerifiedRequest(credential, region, signed_at, service)
