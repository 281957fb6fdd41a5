"""Outcomes in, CloudTrail records out (kms-semantics.md section 8).

``EventBuilder.api_event`` turns one request's ``Outcome`` into the record CloudTrail writes for a KMS
call; ``service_event`` writes the records of background actions (RotateKey, DeleteKey).

SECURITY INVARIANT: request and response members reach a record only through the allow-lists of
``fields.py``; the rest of the record is built from the caller's identity, the request context, the error
code and message (client-safe by construction, see ``openkms.errors``) and the key ARNs the request
resolved. Nothing else of the request body or of the result is read here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from openkms.api.protocol import Outcome
from openkms.api.sigv4 import Credential
from openkms.audit.chain import canonical
from openkms.audit.fields import (
    CLOUDTRAIL_REQUEST_MEMBERS,
    READ_ONLY_OPERATIONS,
    REQUEST_MEMBERS,
    request_parameters,
    response_elements,
)
from openkms.audit.sink import PendingEvent
from openkms.identifiers import key_arn

EVENT_VERSION = "1.08"
EVENT_SOURCES = {
    "kms": "kms.amazonaws.com",
    "cloudtrail": "cloudtrail.amazonaws.com",
    "sts": "sts.amazonaws.com",
}
KEY_RESOURCE_TYPE = "AWS::KMS::Key"
UNKNOWN_OPERATION = "UnknownOperation"
AWS_INTERNAL = "AWS Internal"
_USER_AGENT_LIMIT = 1024
_IDENTITY_CACHE_SIZE = 4096


def _uuid4(h: str) -> str:
    """A random (version 4) UUID from 32 random hex digits."""
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


def new_event_id() -> str:
    return _uuid4(os.urandom(16).hex())


def identity(credential: Credential, principal_id: str | None = None) -> dict[str, Any]:
    """CloudTrail ``userIdentity`` of an authenticated caller (``principal_id``: its aws:userid, when
    authorization resolved it)."""
    arn = credential.principal_arn
    out: dict[str, Any]
    if arn.endswith(":root"):
        out = {"type": "Root", "principalId": credential.account}
    elif ":assumed-role/" in arn:
        # arn:aws:sts::A:assumed-role/ROLE/SESSION: the session's issuer is the role (path not known here)
        partition = arn.split(":", 2)[1]
        role_name = arn.split("/")[1]
        out = {
            "type": "AssumedRole",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "arn": f"arn:{partition}:iam::{credential.account}:role/{role_name}",
                    "accountId": credential.account,
                    "userName": role_name,
                }
            },
        }
    else:
        out = {"type": "IAMUser", "userName": arn.rpartition("/")[2]}
    if principal_id is not None and "principalId" not in out:
        out["principalId"] = principal_id
    out.update(arn=arn, accountId=credential.account, accessKeyId=credential.access_key_id)
    return out


def _created_key(result: Mapping[str, Any]) -> str | None:
    """The ARN of a key the call created (CreateKey lists it as a resource: nothing was resolved)."""
    metadata = result.get("KeyMetadata")
    arn = metadata.get("Arn") if isinstance(metadata, Mapping) else None
    return arn if isinstance(arn, str) else None


def user_name(user_identity: dict[str, Any]) -> str | None:
    """LookupEvents' ``Username`` of a record's ``userIdentity``."""
    if user_identity.get("type") == "Root":
        return "root"
    if user_identity.get("type") == "AssumedRole":
        # CloudTrail shows a role session's events under the session name (the ARN's last part)
        arn = user_identity.get("arn")
        if isinstance(arn, str) and ":assumed-role/" in arn:
            return arn.rpartition("/")[2] or None
        return None
    name = user_identity.get("userName")
    return name if isinstance(name, str) else None


class EventBuilder:
    """Builds records. Not thread-safe (small caches): one per writer thread."""

    def __init__(self, partition: str, default_region: str = "us-east-1") -> None:
        self.partition = partition
        self.default_region = default_region
        self._identities: dict[tuple[str, str, str, str | None], dict[str, Any]] = {}
        self._second = -1
        self._second_text = ""
        self._id_prefix = ""
        self._id_mask = 0
        self._id_count = 1 << 48  # forces a new prefix on first use

    def _event_id(self) -> str:
        """A version-4-shaped UUID: 74 random bits per builder (refreshed every 2**48 ids) and a counter
        masked with 48 more random bits, so ids never repeat within a builder and collide across builders
        only with negligible probability. Event ids are names, not secrets."""
        count = self._id_count
        if count >= 1 << 48:
            self._id_prefix = new_event_id()[:24]
            self._id_mask = int.from_bytes(os.urandom(6), "big")
            count = 0
        self._id_count = count + 1
        return f"{self._id_prefix}{count ^ self._id_mask:012x}"

    def _time(self, epoch: float) -> str:
        second = int(epoch)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        return self._second_text

    def _identity(self, credential: Credential, principal_id: str | None) -> dict[str, Any]:
        cache_key = (credential.access_key_id, credential.principal_arn, credential.account, principal_id)
        found = self._identities.get(cache_key)
        if found is None:
            if len(self._identities) >= _IDENTITY_CACHE_SIZE:
                self._identities.clear()
            found = self._identities[cache_key] = identity(credential, principal_id)
        return found  # shared between records, never mutated

    def api_event(self, o: Outcome) -> PendingEvent:
        name = o.operation or UNKNOWN_OPERATION
        ctx = o.context
        touched = ctx.resources if ctx is not None else ()
        created = _created_key(o.result) if o.result is not None and o.error is None else None
        if created is not None:
            touched = [*touched, created]
        resources = tuple(dict.fromkeys(touched))
        verified = o.verified
        account: str | None
        if verified is not None:
            credential = verified.credential
            account = credential.account
            principal_id = ctx.principal_ids[0] if ctx is not None and ctx.principal_ids else o.principal_id
            user_identity = self._identity(credential, principal_id)
            region = verified.region
            table = CLOUDTRAIL_REQUEST_MEMBERS if o.service == "cloudtrail" else REQUEST_MEMBERS
            parameters = request_parameters(name, o.params, table)
            if name == "RetireGrant" and o.params is not None and "GrantToken" in o.params:
                parameters = None  # CloudTrail logs a token-form RetireGrant without its parameters
        else:
            # not authenticated: only what the request claims, and no request members at all
            account = None
            user_identity = {"type": "Unknown"}
            if o.access_key_id:
                user_identity["accessKeyId"] = o.access_key_id
            region, parameters = self.default_region, None
        error = o.error
        event: dict[str, Any] = {
            "eventVersion": EVENT_VERSION,
            "userIdentity": user_identity,
            "eventTime": self._time(o.time),
            "eventSource": EVENT_SOURCES.get(o.service, EVENT_SOURCES["kms"]),
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": o.source_ip,
            "userAgent": o.user_agent[:_USER_AGENT_LIMIT],
            "requestParameters": parameters,
            "responseElements": response_elements(name, o.result, resources) if error is None else None,
            "requestID": o.request_id,
            "eventID": self._event_id(),
            "readOnly": name in READ_ONLY_OPERATIONS,
            "resources": [
                {"accountId": arn.split(":", 5)[4], "type": KEY_RESOURCE_TYPE, "ARN": arn}
                for arn in resources
            ],
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": account,
            "eventCategory": "Management",
        }
        extra: dict[str, Any] = {}
        if error is not None:
            event["errorCode"] = error.code
            event["errorMessage"] = error.message
        elif o.result is not None:
            material = o.result.get("KeyMaterialId")
            if isinstance(material, str):
                extra["keyMaterialId"] = material
        if ctx is not None and ctx.additional_event_data:
            # set by handlers, loggable values only (RetireGrant by token: the grant id)
            extra.update(ctx.additional_event_data)
        if ctx is not None and ctx.decisions:
            # which statement or grant allowed or denied each permission check: names of statements,
            # actions and ARNs only, never request values (service/authorization.py)
            extra["authorizationReason"] = "; ".join(ctx.decisions)
        if extra:
            event["additionalEventData"] = extra
        return PendingEvent(canonical(event), o.time, resources)

    def service_event(
        self, name: str, *, account: str, region: str, key_id: str, when: float
    ) -> PendingEvent:
        """A background action of the service itself (``RotateKey``, ``DeleteKey``)."""
        arn = key_arn(self.partition, region, account, key_id)
        event: dict[str, Any] = {
            "eventVersion": EVENT_VERSION,
            "userIdentity": {"accountId": account, "invokedBy": AWS_INTERNAL},
            "eventTime": self._time(when),
            "eventSource": EVENT_SOURCES["kms"],
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": AWS_INTERNAL,
            "userAgent": AWS_INTERNAL,
            "requestParameters": None,
            "responseElements": None,
            "eventID": self._event_id(),
            "readOnly": False,
            "resources": [{"accountId": account, "type": KEY_RESOURCE_TYPE, "ARN": arn}],
            "eventType": "AwsServiceEvent",
            "managementEvent": True,
            "recipientAccountId": account,
            "eventCategory": "Management",
        }
        if name == "RotateKey":
            event["serviceEventDetails"] = {"keyId": key_id}
        return PendingEvent(canonical(event), when, (arn,))
