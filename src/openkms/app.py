"""Composition root: storage, root of trust, keyring, service, audit log, API.

The only module that names concrete backends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from openkms.api.http import Handler, ServerLimits
from openkms.api.protocol import KmsApi
from openkms.api.sealed import SealedApi
from openkms.api.server import ForkCallbacks, WorkerControl
from openkms.api.sigv4 import Credential as SigV4Credential
from openkms.api.sigv4 import SigV4Verifier, VerifiedRequest
from openkms.api.sts import SIGNING_NAME as STS_SIGNING_NAME
from openkms.api.sts import StsService
from openkms.audit.committer import NodeCommitter
from openkms.audit.db_sink import DatabaseSink
from openkms.audit.events import EventBuilder
from openkms.audit.file_sink import FileSink
from openkms.audit.lookup import LookupEvents
from openkms.audit.reader import AuditReader
from openkms.audit.signing import ensure_signing_key, unwrap_signer
from openkms.audit.sink import AuditSink
from openkms.audit.stream import CommitStream
from openkms.audit.writer import AuditWriter, ServiceEvent
from openkms.clock import Clock, SystemClock
from openkms.config import Settings
from openkms.keyring.keyring import Keyring
from openkms.rootoftrust.base import RootOfTrust, RootOfTrustError
from openkms.rootoftrust.control import ControlServer
from openkms.rootoftrust.file import FileRootOfTrust
from openkms.rootoftrust.shamir import PROVIDER as SHAMIR
from openkms.rootoftrust.shamir import ShamirParams, ShamirRootOfTrust
from openkms.rootoftrust.unseal import Unsealer
from openkms.service.context import Caller
from openkms.service.core import Core
from openkms.service.directory import Directory
from openkms.service.generation import ClusterGenerationPoller, LocalGeneration
from openkms.service.kms import KmsService
from openkms.service.root_keys import unwrap_root_key_record
from openkms.storage.base import KeyRecord, RootKeyRecord, Store
from openkms.storage.migrate import upgrade_database
from openkms.storage.sql import SqlStore, create_sql_engine

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
    shares: tuple[str, ...] = ()  # shamir only: the unseal key's shares, shown once and never stored


def open_store(settings: Settings) -> SqlStore:
    return SqlStore(
        settings.database_url,
        sqlite_synchronous=settings.storage.sqlite_synchronous.upper(),
        schema=settings.storage.schema or None,
    )


def root_of_trust(settings: Settings, *, create: bool = False) -> RootOfTrust:
    """The configured root-of-trust provider; ``create`` makes its key (key file, or key in the token)
    when it does not exist yet.  Raises ``RootOfTrustError`` with an operator-facing message."""
    rot = settings.root_of_trust
    if rot.provider == SHAMIR:
        raise RootOfTrustError(
            "root_of_trust.provider is 'shamir' but the stored root key is not protected by shamir shares; "
            "set the provider it names ('openkms operator status'), e.g. after "
            "'openkms operator migrate-root-of-trust'"
        )
    if rot.provider == "pkcs11":
        from openkms.rootoftrust.pkcs11 import Pkcs11Config, Pkcs11RootOfTrust, pin_from_file, pin_value

        pin = pin_from_file(Path(rot.pkcs11_pin_file)) if rot.pkcs11_pin_file else pin_value(rot.pkcs11_pin)
        config = Pkcs11Config(
            rot.pkcs11_module, rot.pkcs11_token_label, rot.pkcs11_key_label, pin, rot.pkcs11_pool_size
        )
        return Pkcs11RootOfTrust(config, create_key=create)
    path = settings.root_key_file
    if create and not path.exists():
        return FileRootOfTrust.create(path)
    return FileRootOfTrust.load(path)


def initialize(
    settings: Settings,
    *,
    account: str = DEFAULT_ACCOUNT,
    shamir: tuple[int, int] | None = None,
    deliver_shares: Callable[[Sequence[str]], None] | None = None,
) -> BootstrapCredential | None:
    """Create the data directory, root key file, database and bootstrap credential. Idempotent: returns
    None when the deployment is already initialized.

    ``shamir=(N, T)`` protects the root key with a new unseal key split into N shares (threshold T)
    instead of the key file; the shares are returned in the credential, once.  ``deliver_shares`` is
    called with them before the root key is stored: if it raises (share files cannot be written),
    nothing is initialized and no share is lost."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    upgrade_database(settings.database_url, schema=settings.storage.schema or None)
    store = open_store(settings)
    try:
        with store.tx() as tx:
            if tx.latest_root_key() is not None:
                return None
        shares: tuple[str, ...] = ()
        root: RootOfTrust
        if shamir is not None:
            root, texts = ShamirRootOfTrust.create(*shamir)
            shares = tuple(texts)
            if deliver_shares is not None:
                deliver_shares(shares)
        elif settings.root_of_trust.provider == SHAMIR:
            raise NotInitializedError(
                f"{settings.data_dir} is not initialized; the shamir root of trust needs "
                f"'openkms init --shamir N/T --data-dir {settings.data_dir}'"
            )
        else:
            root = root_of_trust(settings, create=True)
        root_key = Keyring.generate_root_key()
        with store.tx() as tx:
            tx.insert_root_key(RootKeyRecord(1, root.name, root.wrap_root_key(root_key), SystemClock().now()))
        service = build_service(settings, store=store, root=root)
        prepare_audit(settings, service.core.keyring)
        access_key_id, secret = service.credentials.create(account, user_name="root")
        path = settings.bootstrap_credentials_file
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(
                "# openkms bootstrap admin credential (AWS shared-credentials format)\n"
                f"[openkms]\naws_access_key_id = {access_key_id}\naws_secret_access_key = {secret}\n"
            )
        return BootstrapCredential(account, access_key_id, secret, path, shares)
    finally:
        store.close()


def load_keyring(settings: Settings, store: Store, root: RootOfTrust | None = None) -> Keyring:
    """The root keys unwrapped by ``root`` (default: the configured provider; a shamir deployment needs
    the unsealed root of trust of a running server, so offline commands cannot open it)."""
    with store.tx() as tx:
        latest = tx.latest_root_key()
        if latest is None:
            raise NotInitializedError(
                f"{settings.data_dir} is not initialized; run 'openkms init --data-dir {settings.data_dir}'"
            )
        records = [r for v in range(1, latest.version + 1) if (r := tx.get_root_key(v)) is not None]
    if root is None:
        if latest.provider == SHAMIR:
            raise RootOfTrustError(
                "the root key is protected by shamir shares: this command cannot rebuild it; commands that "
                "take --share-file can (docs/operations.md)"
            )
        root = root_of_trust(settings, create=False)
    rot = root
    root_keys = {r.version: unwrap_root_key_record(rot, r) for r in records}

    def resolve(version: int) -> bytes | None:
        # A root-key version added by a rotation after this process started (see Keyring._resolve).
        with store.read() as tx:
            record = tx.get_root_key(version)
        return None if record is None else unwrap_root_key_record(rot, record)

    return Keyring(root_keys, latest.version, cache_size=settings.kms.material_cache_size, resolver=resolve)


def build_service(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
    audit_reader: AuditReader | None = None,
    root: RootOfTrust | None = None,
    keyring: Keyring | None = None,
) -> KmsService:
    """The service layer; ``keyring`` (e.g. ``Keyring.locked()``) instead of the one ``root`` unwraps."""
    store = store or open_store(settings)
    generation = LocalGeneration(settings.data_dir / "generation")
    core = Core(
        store=store,
        keyring=keyring or load_keyring(settings, store, root),
        directory=Directory(store, generation, settings.kms.partition),
        clock=clock or SystemClock(),
        partition=settings.kms.partition,
    )
    return KmsService(core, key_usage=audit_reader)


def service_access_keys(settings: Settings) -> dict[str, str]:
    """``kms.service_access_keys`` as access key id -> integrated service name."""
    found: dict[str, str] = {}
    for item in settings.kms.service_access_keys:
        access_key_id, _, service = item.partition("=")
        found[access_key_id.strip()] = service.strip()
    return found


def preflight(settings: Settings) -> None:
    """Open the store and unwrap the root keys once, so a misconfigured node fails before serving (a
    shamir deployment starts sealed: only its stored header is checked)."""
    store = open_store(settings)
    try:
        if shamir_params(settings, store) is None:
            load_keyring(settings, store)
    finally:
        store.close()
    tls_context(settings)


# --- shamir: sealed start, unseal, seal (docs/adr/0002-unseal.md) ------------------------------------


def stored_wrapped_root_keys(store: Store) -> list[bytes]:
    """Every stored root-key version's wrapped value, oldest first (what an ``Unsealer`` checks)."""
    with store.read() as tx:
        latest = tx.latest_root_key()
        if latest is None:
            return []
        records = [tx.get_root_key(v) for v in range(1, latest.version + 1)]
    return [r.wrapped for r in records if r is not None]


def shamir_params(settings: Settings, store: Store) -> ShamirParams | None:
    """The split's public parameters when the latest root key is protected by shamir shares."""
    with store.read() as tx:
        latest = tx.latest_root_key()
    if latest is None:
        raise NotInitializedError(
            f"{settings.data_dir} is not initialized; run 'openkms init --data-dir {settings.data_dir}'"
        )
    return ShamirParams.of_wrapped(latest.wrapped) if latest.provider == SHAMIR else None


def make_unsealer(settings: Settings) -> Unsealer | None:
    """The master's seal state for a shamir deployment (None for other providers)."""
    store = open_store(settings)
    try:
        if shamir_params(settings, store) is None:
            return None
    finally:
        store.close()

    def read_wrapped() -> list[bytes]:
        # a short-lived store: the control thread of the master, rarely used
        reader = open_store(settings)
        try:
            return stored_wrapped_root_keys(reader)
        finally:
            reader.close()

    return Unsealer(read_wrapped)


def build_api(
    settings: Settings,
    service: KmsService,
    audit: AuditWriter | CommitStream | None = None,
    audit_reader: AuditReader | None = None,
) -> KmsApi:
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

    via_service = service_access_keys(settings)

    def caller_of(verified: VerifiedRequest) -> Caller:
        c = verified.credential
        return Caller(c.account, c.principal_arn, c.access_key_id, via_service.get(c.access_key_id))

    # CloudTrail's LookupEvents is answered from the audit database at the same endpoint
    extra = (LookupEvents(audit_reader, settings.kms.partition).service(),) if audit_reader else ()
    verifier = SigV4Verifier(
        lookup,
        extra_services=[*(s.signing_name for s in extra), STS_SIGNING_NAME],
        allowed_regions=settings.kms.regions or None,
        max_skew_seconds=settings.kms.max_skew_seconds,
    )

    pid = os.getpid()  # which worker answered: lets operators and tests see connections spread

    def health() -> dict[str, Any]:
        status: dict[str, Any] = {"status": "ok", "sealed": False, "worker": pid}
        if audit is not None:
            status["audit"] = audit.stats()
        return status

    clock = service.core.clock
    return KmsApi(
        service.operations,
        verifier,
        caller_of,
        clock.now,
        ThreadPoolExecutor(max_workers=8, thread_name_prefix="openkms-op"),
        audit=audit,
        health=health,
        extra_services=extra,
        sts=StsService(service.identities.principal),  # GetCallerIdentity at the same endpoint
        principal_id_of=lambda caller: service.core.authorizer.principals.principal(caller).user_id,
    )


# --- audit log ------------------------------------------------------------------------------------------


def open_audit_engine(settings: Settings) -> Engine:
    return create_sql_engine(
        settings.database_url,
        schema=settings.storage.schema or None,
        sqlite_synchronous=settings.storage.sqlite_synchronous.upper(),
        pool_size=2,
    )


def prepare_audit(settings: Settings, keyring: Keyring) -> None:
    """Create the digest signing key and the chain head (``openkms init``; idempotent)."""
    engine = open_audit_engine(settings)
    try:
        ensure_signing_key(engine, keyring, time.time())
        DatabaseSink(engine, None, settings.audit.digest_interval_seconds).ensure_chain(time.time())
    finally:
        engine.dispose()


@dataclass
class AuditParts:
    writer: AuditWriter
    reader: AuditReader | None  # None when the database sink is off
    database: DatabaseSink | None


def open_audit_sinks(
    settings: Settings, keyring: Keyring, engine: Engine
) -> tuple[list[AuditSink], DatabaseSink | None]:
    """The configured sinks (``audit.sinks``) with the digest signer of the key hierarchy."""
    signer = unwrap_signer(ensure_signing_key(engine, keyring, time.time()), keyring)
    interval = settings.audit.digest_interval_seconds
    sinks: list[AuditSink] = []
    database = None
    if "database" in settings.audit.sinks:
        database = DatabaseSink(engine, signer, interval)
        database.ensure_chain(time.time())
        sinks.append(database)
    if "file" in settings.audit.sinks:
        sinks.append(
            FileSink(
                settings.audit_file, signer, interval, settings.audit.file_max_bytes, settings.audit.file_keep
            )
        )
    return sinks, database


def event_builder(settings: Settings) -> EventBuilder:
    region = settings.kms.regions[0] if settings.kms.regions else "us-east-1"
    return EventBuilder(settings.kms.partition, region)


def build_audit(settings: Settings, keyring: Keyring, engine: Engine | None = None) -> AuditParts | None:
    """The audit writer and its sinks for this process (None when ``audit.enabled`` is false)."""
    if not settings.audit.enabled:
        return None
    engine = engine or open_audit_engine(settings)
    sinks, database = open_audit_sinks(settings, keyring, engine)
    writer = AuditWriter(
        sinks,
        event_builder(settings),
        max_batch=settings.audit.max_batch,
        max_pending=settings.audit.max_pending,
        digest_interval=settings.audit.digest_interval_seconds,
        commit_gap=settings.audit.commit_interval_ms / 1000,
    )
    return AuditParts(writer, AuditReader(engine) if database is not None else None, database)


class NodeAudit:
    """The server's audit log: the node committer in the master (``openkms.audit.committer``) and, in each
    forked worker, its end of the channel to it."""

    def __init__(self, settings: Settings, unsealer: Unsealer | None) -> None:
        self._settings = settings
        self._unsealer = unsealer
        self._root: RootOfTrust | None = None
        self._sinks: list[AuditSink] | None = None
        self._engine: Engine | None = None
        self.channel: socket.socket | None = None  # set in a worker
        self.committer = NodeCommitter(
            self._current_sinks,
            digest_interval=settings.audit.digest_interval_seconds,
            commit_gap=settings.audit.commit_interval_ms / 1000,
            max_batch=settings.audit.max_batch,
        )
        self._service_builder = event_builder(settings)
        self._service_lock = threading.Lock()  # the builder's caches are not thread-safe

    def start(self) -> None:
        self.committer.start()

    def before_fork(self) -> ForkCallbacks:
        theirs = self.committer.open_channel()

        def in_child() -> None:
            self.committer.forget_in_child()
            self.channel = theirs

        return ForkCallbacks(child=in_child, parent=theirs.close)

    def hook(self) -> CommitStream:
        """In a worker: the audit hook of its API."""
        if self.channel is None:
            raise RuntimeError("not a worker forked with an audit channel")
        builder = event_builder(self._settings)
        return CommitStream(self.channel, builder, max_pending=self._settings.audit.max_pending)

    def service_event_recorder(self, when: float) -> Callable[[str, KeyRecord], None]:
        """In the master: ``KmsService.run_due_jobs(on_event=...)``; each service event joins the node's
        commit stream and is durable when the call returns (``AuditUnavailable`` otherwise)."""

        def record(name: str, key: KeyRecord) -> None:
            with self._service_lock:
                event = self._service_builder.service_event(
                    name, account=key.account, region=key.region, key_id=key.key_id, when=when
                )
            self.committer.record([event])

        return record

    def _current_sinks(self) -> list[AuditSink] | None:
        """The committer's sinks, opened on first use and again after the seal state changed (shamir);
        None while sealed. Runs on the committer's thread only."""
        root = None
        if self._unsealer is not None:
            root = self._unsealer.root_of_trust()
            if root is None or root is not self._root:
                self._close_sinks()
            if root is None:
                return None
        if self._sinks is None:
            engine = open_audit_engine(self._settings)
            store = open_store(self._settings)
            try:
                keyring = load_keyring(self._settings, store, root)
                self._sinks, _ = open_audit_sinks(self._settings, keyring, engine)
            except BaseException:
                engine.dispose()  # the store may be down: the next commit tries again with a fresh engine
                raise
            finally:
                store.close()
            self._engine, self._root = engine, root
        return self._sinks

    def _close_sinks(self) -> None:
        for sink in self._sinks or ():
            with contextlib.suppress(Exception):
                sink.close()
        if self._engine is not None:
            self._engine.dispose()
        self._sinks, self._engine = None, None

    def close(self) -> None:
        self.committer.close()
        self._close_sinks()


def service_event_recorder(parts: AuditParts | None, when: float) -> Callable[[str, KeyRecord], None] | None:
    """``KmsService.run_due_jobs(on_event=...)`` in one process (``openkms jobs run``): RotateKey /
    DeleteKey service events, written durably by that process's writer."""
    if parts is None:
        return None
    writer = parts.writer

    def record(name: str, key: KeyRecord) -> None:
        writer.record(ServiceEvent(name, key.account, key.region, key.key_id, when))

    return record


def server_limits(settings: Settings) -> ServerLimits:
    s = settings.server
    return ServerLimits(
        max_body_bytes=s.max_body_bytes,
        max_header_bytes=s.max_header_bytes,
        header_timeout=s.header_timeout,
        body_timeout=s.body_timeout,
        keepalive_timeout=s.keepalive_timeout,
    )


def make_handler_factory(
    settings: Settings, unsealer: Unsealer | None = None, node_audit: NodeAudit | None = None
) -> Callable[[], Handler]:
    def make() -> Handler:
        root: RootOfTrust | None = None
        if unsealer is not None:
            # A worker is forked with the master's seal state as it is at that moment; seal and unseal
            # replace every worker (WorkerControl.recycle), so this is decided once per process.
            root = unsealer.root_of_trust()
            if root is None:
                pid = os.getpid()
                return SealedApi(lambda: {"provider": SHAMIR, "worker": pid})
        engine = open_audit_engine(settings) if settings.audit.enabled else None
        reader = AuditReader(engine) if engine is not None and "database" in settings.audit.sinks else None
        service = build_service(settings, audit_reader=reader, root=root)
        if node_audit is not None and node_audit.channel is not None:
            return build_api(settings, service, node_audit.hook(), reader)
        parts = build_audit(settings, service.core.keyring, engine)
        return build_api(settings, service, parts.writer if parts else None, reader)

    return make


def master_loop(
    settings: Settings, unsealer: Unsealer | None = None, node_audit: NodeAudit | None = None
) -> Callable[[threading.Event], None]:
    """The master process's background work.

    * Cache coherence across nodes: poll the database's change counter and bump this node's shared
      counter when another node changed something (workers of this node see their own changes at once).
    * Scheduled deletion and automatic rotation, run by whichever node holds the ``jobs`` lease, so they
      happen once per cluster. Their service events go through the node's audit commit stream
      (``node_audit``, required when the audit log is on), like every worker's records. A sealed node
      (shamir) runs no jobs and holds no keyring; sealing drops the keyring at the loop's next pass.
    """
    if settings.audit.enabled and node_audit is None:
        raise ValueError("the jobs' service events need the node's audit commit stream")
    owner = f"{socket.gethostname()}:{os.getpid()}"

    def run(stop: threading.Event) -> None:
        store = open_store(settings)

        def read_generation() -> int:
            with store.tx() as tx:
                return tx.get_generation()

        poller = ClusterGenerationPoller(read_generation, LocalGeneration(settings.data_dir / "generation"))
        threading.Thread(target=poller.run, args=(stop,), name="openkms-generation", daemon=True).start()
        if not settings.jobs.enabled:
            stop.wait()
            return
        interval = settings.jobs.interval_seconds
        service: KmsService | None = None
        pruner: DatabaseSink | None = None  # retention only: it signs nothing, so it needs no keyring
        root: RootOfTrust | None = None
        while not stop.wait(interval):
            if unsealer is not None and unsealer.root_of_trust() is not root:
                # sealed or unsealed since the last pass: forget everything built on the old state
                if service is not None:
                    service.core.keyring.clear()
                service, root = None, unsealer.root_of_trust()
            if unsealer is not None and root is None:
                continue  # sealed: no root key, no jobs (an unsealed node of the cluster takes the lease)
            try:
                if service is None:
                    service = build_service(settings, store=store, root=root)
                now = service.core.clock.now()
                with service.core.store.tx() as tx:
                    leader = tx.try_acquire_lease("jobs", owner, now, ttl=interval * 3)
                if leader:
                    # every action is recorded before the next one runs; an action whose event cannot be
                    # made durable stops the pass (AuditUnavailable), and the next pass tries again
                    recorder = node_audit.service_event_recorder(now) if node_audit is not None else None
                    done = service.run_due_jobs(now, on_event=recorder)
                    if any(done.values()):
                        log.info("background jobs: %s", done)
                    if pruner is None and settings.audit.enabled and "database" in settings.audit.sinks:
                        pruner = DatabaseSink(open_audit_engine(settings), None, 0.0)
                    prune_audit(settings, pruner, now)
            except Exception:
                log.exception("background jobs failed; retrying in %.0f s", interval)
        if pruner is not None:
            pruner.close()

    return run


def seal_control_task(
    settings: Settings,
    unsealer: Unsealer,
    control_socket: socket.socket,
    workers: WorkerControl,
    master_task: Callable[[threading.Event], None],
) -> Callable[[threading.Event], None]:
    """The master task of a shamir deployment: the operator control socket plus ``master_task``."""

    def on_change() -> bool:
        replaced = workers.recycle()
        if not replaced:
            log.warning("not every worker was replaced in time after a seal state change")
        return replaced

    server = ControlServer(control_socket, unsealer, on_change)

    def run(stop: threading.Event) -> None:
        control = threading.Thread(target=server.serve, args=(stop,), name="openkms-control", daemon=True)
        control.start()
        master_task(stop)
        control.join(2.0)  # it removes the socket file on its way out

    return run


def prune_audit(settings: Settings, database: DatabaseSink | None, now: float) -> int:
    """Retention of the database sink (``audit.retention_days``); run by the jobs leader."""
    days = settings.audit.retention_days
    if database is None or days <= 0:
        return 0
    deleted = database.prune(now - days * 86400.0)
    if deleted:
        log.info("audit retention: deleted %d event(s) older than %g day(s)", deleted, days)
    return deleted


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.server.tls_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.server.tls_cert_file, settings.server.tls_key_file)
    return context
