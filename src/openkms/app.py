"""Composition root: storage, root of trust, keyring, service, API.

The only module that names concrete backends.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from openkms.api.http import Handler, ServerLimits
from openkms.api.protocol import KmsApi
from openkms.api.sigv4 import Credential as SigV4Credential
from openkms.api.sigv4 import SigV4Verifier, VerifiedRequest
from openkms.clock import Clock, SystemClock
from openkms.config import Settings
from openkms.keyring.keyring import Keyring
from openkms.rootoftrust.base import RootOfTrust
from openkms.rootoftrust.file import FileRootOfTrust
from openkms.service.context import Caller
from openkms.service.core import Core
from openkms.service.directory import Directory
from openkms.service.generation import ClusterGenerationPoller, LocalGeneration
from openkms.service.kms import KmsService
from openkms.storage.base import RootKeyRecord, Store
from openkms.storage.migrate import upgrade_database
from openkms.storage.sql import SqlStore

log = logging.getLogger("openkms")

DEFAULT_ACCOUNT = "000000000000"


class NotInitializedError(Exception):
    """The data directory has not been set up with ``openkms init``."""


@dataclass(frozen=True)
class BootstrapCredential:
    account: str
    access_key_id: str
    secret_access_key: str
    path: Path


def open_store(settings: Settings) -> SqlStore:
    return SqlStore(
        settings.database_url,
        sqlite_synchronous=settings.storage.sqlite_synchronous.upper(),
        schema=settings.storage.schema or None,
    )


def _root_of_trust(settings: Settings, *, create: bool) -> RootOfTrust:
    path = settings.root_key_file
    if create and not path.exists():
        return FileRootOfTrust.create(path)
    return FileRootOfTrust.load(path)


def initialize(settings: Settings, *, account: str = DEFAULT_ACCOUNT) -> BootstrapCredential | None:
    """Create the data directory, root key file, database and bootstrap credential. Idempotent: returns
    None when the deployment is already initialized."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    upgrade_database(settings.database_url, schema=settings.storage.schema or None)
    store = open_store(settings)
    try:
        with store.tx() as tx:
            if tx.latest_root_key() is not None:
                return None
        root = _root_of_trust(settings, create=True)
        root_key = Keyring.generate_root_key()
        with store.tx() as tx:
            tx.insert_root_key(RootKeyRecord(1, root.name, root.wrap_root_key(root_key), SystemClock().now()))
        service = build_service(settings, store=store)
        access_key_id, secret = service.credentials.create(account, user_name="root")
        path = settings.bootstrap_credentials_file
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(
                "# openkms bootstrap admin credential (AWS shared-credentials format)\n"
                f"[openkms]\naws_access_key_id = {access_key_id}\naws_secret_access_key = {secret}\n"
            )
        return BootstrapCredential(account, access_key_id, secret, path)
    finally:
        store.close()


def load_keyring(settings: Settings, store: Store) -> Keyring:
    with store.tx() as tx:
        latest = tx.latest_root_key()
        if latest is None:
            raise NotInitializedError(
                f"{settings.data_dir} is not initialized; run 'openkms init --data-dir {settings.data_dir}'"
            )
        records = [r for v in range(1, latest.version + 1) if (r := tx.get_root_key(v)) is not None]
    root = _root_of_trust(settings, create=False)
    root_keys = {r.version: root.unwrap_root_key(r.wrapped) for r in records}
    return Keyring(root_keys, latest.version, cache_size=settings.kms.material_cache_size)


def build_service(
    settings: Settings, *, store: Store | None = None, clock: Clock | None = None
) -> KmsService:
    store = store or open_store(settings)
    generation = LocalGeneration(settings.data_dir / "generation")
    core = Core(
        store=store,
        keyring=load_keyring(settings, store),
        directory=Directory(store, generation),
        clock=clock or SystemClock(),
        partition=settings.kms.partition,
    )
    return KmsService(core)


def preflight(settings: Settings) -> None:
    """Open the store and unwrap the root keys once, so a misconfigured node fails before serving."""
    store = open_store(settings)
    try:
        load_keyring(settings, store)
    finally:
        store.close()
    tls_context(settings)


def build_api(settings: Settings, service: KmsService) -> KmsApi:
    credentials = service.credentials

    def lookup(access_key_id: str) -> SigV4Credential | None:
        found = credentials.lookup(access_key_id)
        if found is None:
            return None
        return SigV4Credential(
            access_key_id=found.access_key_id,
            secret_access_key=found.secret_access_key,
            account=found.account,
            principal_arn=found.principal_arn,
        )

    def caller_of(verified: VerifiedRequest) -> Caller:
        c = verified.credential
        return Caller(c.account, c.principal_arn, c.access_key_id, c.principal_arn.rpartition("/")[2])

    verifier = SigV4Verifier(
        lookup,
        allowed_regions=settings.kms.regions or None,
        max_skew_seconds=settings.kms.max_skew_seconds,
    )
    clock = service.core.clock
    return KmsApi(
        service.operations,
        verifier,
        caller_of,
        clock.now,
        ThreadPoolExecutor(max_workers=8, thread_name_prefix="openkms-op"),
    )


def server_limits(settings: Settings) -> ServerLimits:
    s = settings.server
    return ServerLimits(
        max_body_bytes=s.max_body_bytes,
        max_header_bytes=s.max_header_bytes,
        header_timeout=s.header_timeout,
        body_timeout=s.body_timeout,
        keepalive_timeout=s.keepalive_timeout,
    )


def make_handler_factory(settings: Settings) -> Callable[[], Handler]:
    def make() -> Handler:
        service = build_service(settings)
        return build_api(settings, service)

    return make


def master_loop(settings: Settings) -> Callable[[threading.Event], None]:
    """The master process's background work.

    * Cache coherence across nodes: poll the database's change counter and bump this node's shared
      counter when another node changed something (workers of this node see their own changes at once).
    * Scheduled deletion and automatic rotation, run by whichever node holds the ``jobs`` lease, so they
      happen once per cluster.
    """
    owner = f"{socket.gethostname()}:{os.getpid()}"

    def run(stop: threading.Event) -> None:
        service = build_service(settings)
        store = service.core.store

        def read_generation() -> int:
            with store.tx() as tx:
                return tx.get_generation()

        poller = ClusterGenerationPoller(read_generation, service.core.directory.generation)
        threading.Thread(target=poller.run, args=(stop,), name="openkms-generation", daemon=True).start()
        if not settings.jobs.enabled:
            stop.wait()
            return
        interval = settings.jobs.interval_seconds
        while not stop.wait(interval):
            now = service.core.clock.now()
            try:
                with service.core.store.tx() as tx:
                    leader = tx.try_acquire_lease("jobs", owner, now, ttl=interval * 3)
                if leader:
                    done = service.run_due_jobs(now)
                    if any(done.values()):
                        log.info("background jobs: %s", done)
            except Exception:
                log.exception("background jobs failed; retrying in %.0f s", interval)

    return run


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.server.tls_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.server.tls_cert_file, settings.server.tls_key_file)
    return context
