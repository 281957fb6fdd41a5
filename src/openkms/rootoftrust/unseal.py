"""The seal state of one server (its master process): shares collected so far, then the unsealed root
of trust.

Shares live only here, in the master's memory, until the threshold is met; then they are combined, the
result is checked by unwrapping every stored root-key version, and the shares are wiped whatever the
outcome.  Nothing is ever written anywhere.  Answers reveal only "k of T accepted": a share that is
well-formed and of this cluster but wrong is noticed only when the threshold is reached, and then no
one learns which share was wrong (progress starts over).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from openkms.rootoftrust.base import RootOfTrustError
from openkms.rootoftrust.shamir import ShamirParams, ShamirRootOfTrust, Share, ShareError


@dataclass(frozen=True, slots=True)
class UnsealStatus:
    sealed: bool
    threshold: int
    progress: int  # shares accepted towards the threshold (0 when unsealed)
    shares: int
    cluster: str  # the cluster fingerprint (public; also printed in every share)

    def as_dict(self) -> dict[str, object]:
        return {
            "provider": "shamir",
            "sealed": self.sealed,
            "threshold": self.threshold,
            "progress": self.progress,
            "shares": self.shares,
            "cluster": self.cluster,
        }


class UnsealRejected(Exception):
    """A share was not accepted; the message is safe to show the operator."""


class SharesDoNotMatch(UnsealRejected):
    """The threshold was met but the shares do not reconstruct the unseal key (which one is wrong is not
    known, and not said); progress was reset."""


class Unsealer:
    """Thread-safe; ``read_wrapped`` returns the wrapped root keys of every stored version (latest last)."""

    def __init__(self, read_wrapped: Callable[[], Sequence[bytes]]) -> None:
        self._read_wrapped = read_wrapped
        self._lock = threading.Lock()
        self._accepted: list[Share] = []
        self._root: ShamirRootOfTrust | None = None
        self._params: ShamirParams | None = None

    def __repr__(self) -> str:
        return f"Unsealer(sealed={self._root is None}, progress={len(self._accepted)})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("Unsealer holds secrets and cannot be serialised")

    def root_of_trust(self) -> ShamirRootOfTrust | None:
        """The unsealed root of trust, or None while sealed."""
        return self._root

    def params(self) -> ShamirParams:
        """The current split's public parameters, from the latest stored root key."""
        wrapped = self._read_wrapped()
        if not wrapped:
            raise RootOfTrustError("no root key is stored; run 'openkms init --shamir N/T'")
        return ShamirParams.of_wrapped(wrapped[-1])

    def status(self) -> UnsealStatus:
        with self._lock:
            params = self._params or self.params()
            self._params = params
            return self._status(params)

    def _status(self, params: ShamirParams) -> UnsealStatus:
        sealed = self._root is None
        progress = len(self._accepted) if sealed else 0
        return UnsealStatus(sealed, params.threshold, progress, params.shares, params.fingerprint)

    def submit(self, text: str) -> UnsealStatus:
        """Accept one share.  Raises :class:`UnsealRejected` for a malformed, foreign or duplicate share, or
        when the threshold is met but the shares do not reconstruct the unseal key (progress is reset)."""
        try:
            share = Share.decode(text)
        except ShareError as exc:
            raise UnsealRejected(str(exc)) from None
        with self._lock:
            if self._root is not None:
                return self._status(self._root.params)
            wrapped = list(self._read_wrapped())
            if not wrapped:
                raise UnsealRejected("no root key is stored; run 'openkms init --shamir N/T'")
            params = ShamirParams.of_wrapped(wrapped[-1])
            self._params = params
            if share.cluster_id != params.cluster_id or share.threshold != params.threshold:
                raise UnsealRejected(
                    "the share belongs to another openkms cluster (or to an earlier initialization)"
                )
            if any(s.index == share.index for s in self._accepted):
                raise UnsealRejected(f"a share with index {share.index} was already accepted")
            self._accepted.append(share)
            if len(self._accepted) < params.threshold:
                return self._status(params)
            shares, self._accepted = self._accepted, []
            try:
                candidate = ShamirRootOfTrust.from_shares(shares, params)
                for value in wrapped:  # every version must unwrap, not only the latest
                    candidate.unwrap_root_key(value)
            except RootOfTrustError:
                raise SharesDoNotMatch(
                    f"the {params.threshold} shares do not reconstruct this cluster's unseal key "
                    "(at least one is wrong); progress was reset"
                ) from None
            self._root = candidate
            return self._status(params)

    def reset(self) -> None:
        """Forget the shares accepted so far."""
        with self._lock:
            self._accepted = []

    def seal(self) -> None:
        """Forget the unseal key and any shares (the root of trust object becomes garbage)."""
        with self._lock:
            self._accepted = []
            self._root = None
