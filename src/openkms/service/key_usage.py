"""GetKeyLastUsage (kms-semantics.md section 3.5), answered from the audit log.

The service does not know where usage is recorded: ``openkms.app`` hands it a ``KeyUsageSource`` (the
audit database), or none when the audit log is off, in which case no usage is ever reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from openkms.service.context import RequestContext
from openkms.service.core import Core, Params, Result


@dataclass(frozen=True, slots=True)
class KeyUsageRecord:
    """The last successful cryptographic operation with a key."""

    operation: str  # a KeyLastUsageTrackingOperation value
    timestamp: float
    event_id: str  # the audit event (CloudTrailEventId)
    request_id: str  # KmsRequestId


class KeyUsageSource(Protocol):
    def last_usage(self, key_arn: str) -> KeyUsageRecord | None: ...

    def tracking_start(self) -> float | None:
        """When usage tracking began (None: not tracking)."""


class KeyUsage:
    def __init__(self, core: Core, source: KeyUsageSource | None) -> None:
        self.core = core
        self.source = source

    def get_key_last_usage(self, ctx: RequestContext, p: Params) -> Result:
        key = self.core.resolve(ctx, p["KeyId"], allow_alias=False, action="GetKeyLastUsage")
        arn = self.core.arn(key)
        usage = self.source.last_usage(arn) if self.source is not None else None
        started = self.source.tracking_start() if self.source is not None else None
        last: Result = {}
        if usage is not None:
            last = {
                "Operation": usage.operation,
                "Timestamp": usage.timestamp,
                "CloudTrailEventId": usage.event_id,
                "KmsRequestId": usage.request_id,
            }
        # Tracking of a key starts when the log began or when the key was created, whichever is later.
        tracking = max(started, key.created_at) if started is not None else key.created_at
        return {
            "KeyId": arn,
            "KeyLastUsage": last,
            "TrackingStartDate": tracking,
            "KeyCreationDate": key.created_at,
        }
