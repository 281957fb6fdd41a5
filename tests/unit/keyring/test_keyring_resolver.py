"""Keyring: root-key versions fetched on demand (added by a rotation while the process runs)."""

from __future__ import annotations

import pytest

from openkms.keyring.keyring import Keyring, KeyringError

V1, V2 = bytes([1]) * 32, bytes([2]) * 32
ARGS = ("123456789012", "key", "a" * 64, "SYMMETRIC_DEFAULT")


def test_unknown_version_is_fetched_and_becomes_current() -> None:
    writer = Keyring({1: V1, 2: V2}, 2)
    ekt, version = writer.wrap_material(*ARGS, b"material")
    assert version == 2
    asked: list[int] = []

    def resolve(v: int) -> bytes | None:
        asked.append(v)
        return {1: V1, 2: V2}.get(v)

    reader = Keyring({1: V1}, 1, resolver=resolve)
    reader.subkey(b"marker")
    assert reader.unwrap_material(*ARGS, ekt, 2) == b"material"
    assert asked == [2] and reader.current_version == 2 and reader.versions == {1, 2}
    assert reader.wrap_material(*ARGS, b"new")[1] == 2  # new values go under the new version
    assert reader.subkey(b"marker") == writer.subkey(b"marker")  # stable across the rotation
    secret, _ = writer.wrap_secret("p", "b", b"s")
    assert reader.unwrap_secret("p", "b", secret, 2) == b"s"
    assert asked == [2]  # fetched once


def test_tokens_after_a_rotation_met_while_running() -> None:
    """A process that met root-key version 2 seals under it, and one that has not yet met it opens a
    token sealed under it through the resolver (grant and import tokens move between workers)."""
    writer = Keyring({1: V1, 2: V2}, 2)
    old_process = Keyring({1: V1}, 1, resolver={1: V1, 2: V2}.get)
    before = old_process.seal_token("grant-token-v1", b"before")
    assert old_process.open_token("grant-token-v1", writer.seal_token("grant-token-v1", b"v2")) == b"v2"
    assert old_process.current_version == 2
    after = old_process.seal_token("grant-token-v1", b"after")  # under version 2 now
    assert after[:4] == (2).to_bytes(4, "big")
    assert writer.open_token("grant-token-v1", after) == b"after"
    assert writer.open_token("grant-token-v1", before) == b"before"  # issued before the rotation
    stale = Keyring({1: V1}, 1, resolver={1: V1}.get)  # version 2 not found: refused, not an error
    with pytest.raises(KeyringError):
        stale.open_token("grant-token-v1", after)


def test_missing_version_and_failing_resolver() -> None:
    reader = Keyring({1: V1}, 1, resolver=lambda v: None)
    with pytest.raises(KeyringError, match="unknown root key version"):
        reader.unwrap_material(*ARGS, b"x" * 40, 3)
    assert reader.current_version == 1

    def broken(v: int) -> bytes | None:
        raise RuntimeError("token gone")

    failing = Keyring({1: V1}, 1, resolver=broken)
    with pytest.raises(RuntimeError):
        failing.unwrap_secret("p", "b", b"x" * 40, 2)
    assert failing.versions == {1}


def test_adopt_latest() -> None:
    reader = Keyring({1: V1}, 1, resolver={2: V2}.get)
    assert reader.adopt_latest(1) is True
    assert reader.adopt_latest(2) is True and reader.current_version == 2
    assert reader.adopt_latest(3) is False and reader.current_version == 2


def test_a_locked_keyring_refuses_everything_that_needs_a_root_key() -> None:
    """Offline commands of a sealed deployment that touch no secret run on a locked keyring: anything
    that would need the root key fails cleanly instead of using a wrong one."""
    locked = Keyring.locked()
    assert locked.versions == frozenset() and "versions=[]" in repr(locked)
    writer = Keyring({1: V1}, 1)
    ekt, _ = writer.wrap_material(*ARGS, b"material")
    secret, _ = writer.wrap_secret("p", "b", b"s")
    token = writer.seal_token("grant-token-v1", b"t")
    for refused in (
        lambda: locked.wrap_material(*ARGS, b"material"),
        lambda: locked.unwrap_material(*ARGS, ekt, 1),
        lambda: locked.wrap_secret("p", "b", b"s"),
        lambda: locked.unwrap_secret("p", "b", secret, 1),
        lambda: locked.seal_token("grant-token-v1", b"t"),
        lambda: locked.open_token("grant-token-v1", token),
        lambda: locked.subkey(b"pagination-markers"),
        locked.identity_key,
    ):
        with pytest.raises(KeyringError):
            refused()
    with pytest.raises(ValueError):  # only the locked form may hold no root key
        Keyring({}, 1)
