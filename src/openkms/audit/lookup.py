"""CloudTrail's ``LookupEvents`` answered from the audit database, so ``aws cloudtrail lookup-events``
works against openkms (service ``cloudtrail``, target ``com.amazonaws.cloudtrail.v20131101...``).

A caller sees only events whose ``recipientAccountId`` is its own account, newest first, at most 50 per
page. The request is checked here by hand (the KMS model does not describe CloudTrail); errors use
CloudTrail's codes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from openkms import errors
from openkms.api.protocol import ApiService
from openkms.audit.events import KEY_RESOURCE_TYPE, user_name
from openkms.audit.reader import AuditReader, EventFilter, StoredEvent
from openkms.clock import is_datetime_epoch
from openkms.identifiers import key_arn
from openkms.service.context import RequestContext
from openkms.service.kms import Operation

SIGNING_NAME = "cloudtrail"
TARGET_PREFIX = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
OPERATIONS = frozenset(
    {
        "AddTags", "CreateTrail", "DeleteTrail", "DescribeTrails", "GetEventSelectors", "GetTrailStatus",
        "ListTrails", "LookupEvents", "PutEventSelectors", "RemoveTags", "StartLogging", "StopLogging",
        "UpdateTrail",
    }
)  # fmt: skip
ATTRIBUTE_KEYS = frozenset(
    {
        "EventId",
        "EventName",
        "ReadOnly",
        "Username",
        "ResourceType",
        "ResourceName",
        "EventSource",
        "AccessKeyId",
    }
)
MAX_RESULTS = 50
_MAX_SEQ = 2**63 - 1  # a database BIGINT: a forged token's larger sequence number cannot be bound


def _error(code: str) -> type[errors.KMSError]:
    return type(code, (errors.KMSError,), {"code": code, "status": 400, "__module__": __name__})


InvalidLookupAttributesException = _error("InvalidLookupAttributesException")
InvalidTimeRangeException = _error("InvalidTimeRangeException")
InvalidMaxResultsException = _error("InvalidMaxResultsException")
InvalidNextTokenException = _error("InvalidNextTokenException")
InvalidEventCategoryException = _error("InvalidEventCategoryException")


def validate_request(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """Type checks of the LookupEvents members (SerializationException / CloudTrail errors)."""
    known = {"LookupAttributes", "StartTime", "EndTime", "EventCategory", "MaxResults", "NextToken"}
    out = {k: v for k, v in params.items() if k in known and v is not None}
    attributes = out.get("LookupAttributes", [])
    if not isinstance(attributes, list) or not all(isinstance(a, dict) for a in attributes):
        raise errors.SerializationException("Start of structure or map found where not expected.")
    if len(attributes) > 1:
        raise InvalidLookupAttributesException("You cannot specify more than one lookup attribute.")
    for attribute in attributes:
        key, value = attribute.get("AttributeKey"), attribute.get("AttributeValue")
        if key not in ATTRIBUTE_KEYS or not isinstance(value, str) or not 1 <= len(value) <= 2000:
            raise InvalidLookupAttributesException(
                f"Invalid lookup attribute. AttributeKey must be one of {', '.join(sorted(ATTRIBUTE_KEYS))} "
                "and AttributeValue must be 1 to 2000 characters."
            )
    for name in ("StartTime", "EndTime"):
        if name in out and (isinstance(out[name], bool) or not isinstance(out[name], int | float)):
            raise errors.SerializationException(f"STRING_VALUE can not be converted to a Timestamp ({name})")
        # outside years 1-9999 a time is no date, and the database cannot bind it (a 500, not an answer)
        if name in out and not is_datetime_epoch(out[name]):
            raise errors.SerializationException(f"Value of {name} is not a valid timestamp.")
    if "StartTime" in out and "EndTime" in out and out["StartTime"] > out["EndTime"]:
        raise InvalidTimeRangeException("Start time must be before end time.")
    if "MaxResults" in out:
        value = out["MaxResults"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RESULTS:
            raise InvalidMaxResultsException(f"MaxResults must be between 1 and {MAX_RESULTS}.")
    if "EventCategory" in out and out["EventCategory"] != "insight":
        raise InvalidEventCategoryException("EventCategory must be insight.")
    if "NextToken" in out and not isinstance(out["NextToken"], str):
        raise InvalidNextTokenException("Invalid NextToken.")
    return out


class LookupEvents:
    def __init__(self, reader: AuditReader, partition: str) -> None:
        self._reader = reader
        self._partition = partition

    def service(self) -> ApiService:
        """The CloudTrail service for ``KmsApi(extra_services=...)``."""
        return ApiService(
            SIGNING_NAME,
            TARGET_PREFIX,
            {"LookupEvents": Operation(self.lookup_events, inline=False)},
            OPERATIONS,
            validate_request,
        )

    def lookup_events(self, ctx: RequestContext, p: Mapping[str, Any]) -> dict[str, Any]:
        limit = p.get("MaxResults", MAX_RESULTS)
        if p.get("EventCategory") == "insight":
            return {"Events": []}  # openkms records no Insights events
        f = self._filter(ctx, p)
        # a token is valid only with the parameters (and account) of the call that returned it: a digest
        # of all of them, not a prefix of their JSON (which is the same for every attribute value)
        query = [ctx.caller.account, p.get("LookupAttributes"), p.get("StartTime"), p.get("EndTime")]
        fingerprint = hashlib.sha256(orjson.dumps(query)).hexdigest()[:16]
        before = _read_token(p.get("NextToken"), fingerprint)
        rows = self._reader.query(f, limit=limit + 1, before_seq=before)
        page, more = rows[:limit], len(rows) > limit
        result: dict[str, Any] = {"Events": [_event(row) for row in page]}
        if more:
            result["NextToken"] = _make_token(page[-1].seq, fingerprint)
        return result

    def _filter(self, ctx: RequestContext, p: Mapping[str, Any]) -> EventFilter:
        # INVARIANT: tenants see only their own account's events.
        base: dict[str, Any] = {"account": ctx.caller.account, "start": p.get("StartTime"), "end": None}
        if "EndTime" in p:
            base["end"] = float(p["EndTime"]) + 1e-3  # inclusive end (event times have sub-second parts)
        for attribute in p.get("LookupAttributes", ()):
            key, value = attribute["AttributeKey"], attribute["AttributeValue"]
            if key == "EventId":
                base["event_id"] = value
            elif key == "EventName":
                base["event_name"] = value
            elif key == "EventSource":
                base["event_source"] = value
            elif key == "AccessKeyId":
                base["access_key_id"] = value
            elif key == "ReadOnly":
                base["read_only"] = value.lower() == "true"
            elif key == "Username":
                # the name the events show (a user's name without its path), whoever the caller is
                base["user_name"] = value
            elif key == "ResourceType":
                if value != KEY_RESOURCE_TYPE:
                    base["event_id"] = ""  # no other resource types are recorded: match nothing
                base["any_key"] = True
            elif key == "ResourceName":
                base["key_arn"] = (
                    value
                    if value.startswith("arn:")
                    else key_arn(self._partition, ctx.region, ctx.caller.account, value)
                )
        return EventFilter(**base)


def _event(row: StoredEvent) -> dict[str, Any]:
    out: dict[str, Any] = {
        "EventId": row.event_id,
        "EventName": row.event_name,
        "ReadOnly": "true" if row.read_only else "false",
        "EventTime": row.event_time,
        "EventSource": row.event_source,
        "Resources": [{"ResourceType": KEY_RESOURCE_TYPE, "ResourceName": arn} for arn in row.resources],
        "CloudTrailEvent": row.event,
    }
    identity = row.identity
    if identity.get("accessKeyId"):
        out["AccessKeyId"] = identity["accessKeyId"]
    name = user_name(identity)
    if name:
        out["Username"] = name
    return out


def _make_token(seq: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(f"{seq}:{fingerprint}".encode()).decode("ascii")


def _read_token(token: str | None, fingerprint: str) -> int | None:
    if token is None:
        return None
    try:
        seq, _, bound = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii").partition(":")
        if bound != fingerprint:
            raise ValueError("token of another query")
        # the fingerprint is no secret: a caller can forge a token, so its number is checked too
        before = int(seq)
        if not 1 <= before <= _MAX_SEQ:
            raise ValueError("sequence number out of range")
        return before
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise InvalidNextTokenException("Invalid NextToken.") from exc
