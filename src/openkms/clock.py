"""Injectable time source, so background jobs can be driven to a future instant in tests."""

from __future__ import annotations

import time
from typing import Protocol


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
