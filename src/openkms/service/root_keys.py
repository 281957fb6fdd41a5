"""Operator work on the root key: rotation (a new version, every stored secret re-wrapped under it) and
migration of the root key to another root-of-trust provider.

Both run while servers keep serving:

* Rotation adds root-key version N+1, then re-wraps materials, access-key secrets and audit signing
  keys batch by batch with compare-and-set updates, bumping the cluster generation after each batch.
  Old versions stay readable throughout (they are never deleted), and a running server that meets a
  value wrapped under N+1 fetches that version through its root of trust and makes it current
  (``Keyring._resolve``), so its own new writes move to N+1 and the re-wrap converges.
* Migration re-wraps each root-key version (not the data: the root keys do not change) under the new
  provider in one transaction, after checking that the new provider unwraps what it wrapped.  Running
  servers keep their root keys in memory; restart them with the new configuration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from openkms.audit.signing import PURPOSE as SIGNING_KEY_PURPOSE
from openkms.keyring.keyring import Keyring
from openkms.rootoftrust.base import RootOfTrust, RootOfTrustError
from openkms.service.core import Core
from openkms.service.credentials import _PURPOSE as ACCESS_KEY_PURPOSE
from openkms.storage.base import RootKeyRecord, Store

_BATCH = 200


@dataclass
class RewrapReport:
    version: int  # the root-key version everything was re-wrapped under
    materials: int = 0
    access_keys: int = 0
    signing_keys: int = 0
    remaining: dict[int, int] = field(default_factory=dict)  # older version -> secrets still under it

    @property
    def done(self) -> bool:
        return not self.remaining


def unwrap_root_key_record(root: RootOfTrust, record: RootKeyRecord) -> bytes:
    """Unwrap one stored root-key version, naming a provider mismatch clearly."""
    if record.provider != root.name:
        raise RootOfTrustError(
            f"root key version {record.version} is protected by the '{record.provider}' provider but "
            f"root_of_trust.provider is '{root.name}'; set the provider back, or finish "
            "'openkms operator migrate-root-of-trust'"
        )
    return root.unwrap_root_key(record.wrapped)


def add_root_key_version(store: Store, keyring: Keyring, root: RootOfTrust, now: float) -> int:
    """Generate a root key, store it wrapped as the next version and make it current in ``keyring``."""
    new_key = Keyring.generate_root_key()
    wrapped = root.wrap_root_key(new_key)
    with store.tx() as tx:
        latest = tx.latest_root_key()
        version = 1 if latest is None else latest.version + 1
        tx.insert_root_key(RootKeyRecord(version, root.name, wrapped, now))
    if not keyring.adopt_latest(version):  # through the resolver: proves the stored value unwraps
        raise RootOfTrustError(f"root key version {version} was stored but cannot be unwrapped")
    return version


def rewrap_all(core: Core, *, passes: int = 5, pause: float = 1.0) -> RewrapReport:
    """Re-wrap every stored secret that is under an older root-key version than the current one.

    Repeats up to ``passes`` times (pausing in between) because servers that have not yet met the new
    version may still write under the old one; ``report.remaining`` lists what is left.
    """
    keyring = core.keyring
    report = RewrapReport(keyring.current_version)
    for attempt in range(passes):
        while _rewrap_batch(core, report):
            pass
        report.remaining = _older(core.store, report.version)
        if report.done or attempt == passes - 1:
            break
        time.sleep(pause)
    return report


def _older(store: Store, version: int) -> dict[int, int]:
    with store.read() as tx:
        counts = tx.count_wrapped_by_root_key()
    return {v: n for v, n in sorted(counts.items()) if v < version and n}


def _rewrap_batch(core: Core, report: RewrapReport) -> bool:
    keyring, target = core.keyring, report.version
    changed = 0
    with core.changing() as tx:  # commit, then every node drops its cached records
        for material, key_spec in tx.materials_to_rewrap(target, _BATCH):
            assert material.ekt is not None
            secret = keyring.unwrap_material(
                material.account,
                material.key_id,
                material.material_id,
                key_spec,
                material.ekt,
                material.root_key_version,
            )
            ekt, version = keyring.wrap_material(
                material.account, material.key_id, material.material_id, key_spec, secret
            )
            if version == target and tx.rewrap_material(material, ekt, version):
                report.materials += 1
                changed += 1
        for record in tx.access_keys_to_rewrap(target, _BATCH):
            secret = keyring.unwrap_secret(
                ACCESS_KEY_PURPOSE, record.access_key_id, record.wrapped_secret, record.root_key_version
            )
            wrapped, version = keyring.wrap_secret(ACCESS_KEY_PURPOSE, record.access_key_id, secret)
            if version == target and tx.rewrap_access_key(record, wrapped, version):
                report.access_keys += 1
                changed += 1
        for key_id, old_wrapped, old_version in tx.signing_keys_to_rewrap(target, _BATCH):
            seed = keyring.unwrap_secret(SIGNING_KEY_PURPOSE, key_id, old_wrapped, old_version)
            wrapped, version = keyring.wrap_secret(SIGNING_KEY_PURPOSE, key_id, seed)
            swapped = tx.rewrap_signing_key(key_id, old_wrapped, old_version, wrapped, version)
            if version == target and swapped:
                report.signing_keys += 1
                changed += 1
    return changed > 0


def migrate_root_of_trust(store: Store, source: RootOfTrust, target: RootOfTrust) -> list[int]:
    """Re-wrap every root-key version under ``target``; return the versions moved.

    Atomic: one transaction, committed only after ``target`` has unwrapped each new value back to the
    same root key.  Versions already held by ``target`` (a re-run after a failure) are left alone.
    """
    moved: list[int] = []
    with store.tx() as tx:
        for record in tx.list_root_keys():
            if record.provider == target.name and record.provider != source.name:
                target.unwrap_root_key(record.wrapped)  # already migrated: must still unwrap
                continue
            root_key = unwrap_root_key_record(source, record)
            wrapped = target.wrap_root_key(root_key)
            if target.unwrap_root_key(wrapped) != root_key:
                raise RootOfTrustError(f"the '{target.name}' provider did not return the root key it wrapped")
            tx.replace_root_key(replace(record, provider=target.name, wrapped=wrapped), record.provider)
            moved.append(record.version)
    return moved
