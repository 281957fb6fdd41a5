"""Injectable time source, so background jobs can be driven to a future instant in tests."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

_EPOCH_MIN = datetime.min.replace(tzinfo=UTC).timestamp()
_EPOCH_END = datetime.max.replace(tzinfo=UTC).timestamp()  # 9999-12-31T23:59:59.999999Z, rounded up


def is_datetime_epoch(seconds: float) -> bool:
    """Whether ``seconds`` since the epoch is an instant of years 1-9999: what a datetime (and so the
    audit record's dates, key-material expiry and the databases' timestamp binding) can hold."""
    return _EPOCH_MIN <= seconds < _EPOCH_END


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""


class SystemClock:
    def now(self) -> float:
        return time.time()


class FixedClock:
    """A clock stopped at one instant (``openkms jobs run --at``, tests)."""

    def __init__(self, at: float) -> None:
        self._at = at

    def now(self) -> float:
        return self._at
