"""Fail closed and crash safety of the audit log, under load (bounded, loopback only).

* The audit store refuses writes mid-load (a trigger rejecting inserts into ``audit_blocks`` on SQLite and
  PostgreSQL; an immutable JSON-lines file): requests fail with KMSInternalException, no request succeeds
  without its record, and service resumes by itself when the store recovers.
* ``kill -9`` of the whole server under load: after a restart, every response a client received has its
  record, and ``openkms audit verify`` passes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
from sqlalchemy import text
from tests.integration.audit_support import (
    audited,
    by_request,
    client,
    db_events,
    file_events,
    secret_credential,
)
from tests.support.servers import Deployment, ServerProcess

from openkms.app import open_audit_engine
from openkms.config import load_settings

__all__ = ["audited"]

Outcome = tuple[str, str]  # (request id, "ok" or the error code)


class Load:
    """A few client threads calling Encrypt in a loop, recording what each response said."""

    def __init__(self, url: str, cred: tuple[str, str], key_id: str, threads: int = 4) -> None:
        self.results: list[Outcome] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(client(url, *cred), key_id), daemon=True)
            for _ in range(threads)
        ]

    def _run(self, kms: Any, key_id: str) -> None:
        while not self._stop.is_set():
            try:
                response = kms.encrypt(KeyId=key_id, Plaintext=b"load")
                outcome = (response["ResponseMetadata"]["RequestId"], "ok")
            except ClientError as exc:
                outcome = (
                    exc.response["ResponseMetadata"].get("RequestId", ""),
                    exc.response["Error"]["Code"],
                )
            except (ConnectionClosedError, EndpointConnectionError, ReadTimeoutError):
                time.sleep(0.05)  # no response: nothing was promised to this client
                continue
            with self._lock:
                self.results.append(outcome)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def count(self) -> int:
        with self._lock:
            return len(self.results)

    def wait_for(self, predicate: Callable[[list[Outcome]], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate(list(self.results)):
                    return
            time.sleep(0.05)
        raise AssertionError("the load did not reach the expected state")


def trigger_sql(dialect: str, on: bool) -> list[str]:
    if dialect == "sqlite":
        if on:
            return [
                "CREATE TRIGGER audit_fault BEFORE INSERT ON audit_blocks "
                "BEGIN SELECT RAISE(ABORT, 'audit store unavailable (test fault)'); END"
            ]
        return ["DROP TRIGGER audit_fault"]
    if on:
        return [
            "CREATE FUNCTION audit_fault() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit store unavailable (test fault)'; END $$",
            "CREATE TRIGGER audit_fault BEFORE INSERT ON audit_blocks "
            "FOR EACH ROW EXECUTE FUNCTION audit_fault()",
        ]
    return ["DROP TRIGGER audit_fault ON audit_blocks", "DROP FUNCTION audit_fault()"]


def set_fault(dep: Deployment, on: bool) -> None:
    engine = open_audit_engine(load_settings(environ=dep.env()))
    try:
        with engine.begin() as conn:
            for statement in trigger_sql(engine.dialect.name, on):
                conn.execute(text(statement))
    finally:
        engine.dispose()


def check_no_unaudited_success(dep: Deployment, results: list[Outcome], events: list[dict[str, Any]]) -> None:
    recorded = by_request(events)
    successes = [rid for rid, code in results if code == "ok"]
    assert successes
    for rid in successes:
        assert len(recorded.get(rid, [])) == 1, f"request {rid} succeeded without exactly one record"


@pytest.fixture
def server_of(audited: Deployment) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(**kw: Any) -> ServerProcess:
        proc = ServerProcess(audited, **kw)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def test_store_unwritable_fails_closed_then_recovers(
    audited: Deployment, server_of: Callable[..., ServerProcess]
) -> None:
    audited.extra_env["OPENKMS_AUDIT_SINKS"] = "database"
    server = server_of()
    cred = secret_credential(audited)
    key_id = client(server.url, *cred).create_key()["KeyMetadata"]["KeyId"]
    with Load(server.url, cred, key_id) as load:
        load.wait_for(lambda r: sum(code == "ok" for _, code in r) >= 20)
        set_fault(audited, True)
        try:
            before = load.count()
            load.wait_for(lambda r: sum(code == "KMSInternalException" for _, code in r[before:]) >= 20)
        finally:
            set_fault(audited, False)
        recovered = load.count()
        load.wait_for(lambda r: sum(code == "ok" for _, code in r[recovered:]) >= 20)
    failed = [rid for rid, code in load.results if code == "KMSInternalException"]
    assert set(code for _, code in load.results) <= {"ok", "KMSInternalException"}
    events = db_events(audited)
    check_no_unaudited_success(audited, load.results, events)
    recorded = by_request(events)
    assert not [rid for rid in failed if rid in recorded]  # failed closed: their batches left no trace
    assert "audit store unavailable" in server.log and "recovered" in server.log
    assert "database: OK" in audited.cli("audit", "verify").stdout


def test_read_only_log_file_fails_closed_then_recovers(
    audited: Deployment, server_of: Callable[..., ServerProcess]
) -> None:
    # Runs on both backends (the key store differs, the file sink does not): CI must not skip.
    audited.extra_env["OPENKMS_AUDIT_SINKS"] = "file"
    path = load_settings(environ=audited.env()).audit_file
    server = server_of()
    cred = secret_credential(audited)
    key_id = client(server.url, *cred).create_key()["KeyMetadata"]["KeyId"]

    def immutable(on: bool) -> bool:
        result = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True, check=False)
        return result.returncode == 0

    with Load(server.url, cred, key_id) as load:
        load.wait_for(lambda r: sum(code == "ok" for _, code in r) >= 20)
        if not immutable(True):
            pytest.skip("chattr +i is not available (needs root on a filesystem with the immutable flag)")
        try:
            before = load.count()
            load.wait_for(lambda r: sum(code == "KMSInternalException" for _, code in r[before:]) >= 20)
        finally:
            immutable(False)
        recovered = load.count()
        load.wait_for(lambda r: sum(code == "ok" for _, code in r[recovered:]) >= 20)
    check_no_unaudited_success(audited, load.results, file_events(audited))
    failed = {rid for rid, code in load.results if code == "KMSInternalException"}
    assert failed and not failed & set(by_request(file_events(audited)))
    assert ": OK" in audited.cli("audit", "verify", "--file", str(path)).stdout


def test_kill_9_under_load_loses_no_answered_event(
    audited: Deployment, server_of: Callable[..., ServerProcess]
) -> None:
    audited.extra_env["OPENKMS_AUDIT_SINKS"] = "database,file"
    server = server_of(workers=2)
    cred = secret_credential(audited)
    key_id = client(server.url, *cred).create_key()["KeyMetadata"]["KeyId"]
    with Load(server.url, cred, key_id, threads=6) as load:
        load.wait_for(lambda r: len(r) >= 200)
        os.killpg(server.proc.pid, signal.SIGKILL)  # the master and every worker, mid-request
        server.proc.wait(10)
        time.sleep(0.3)
    answered = list(load.results)
    restarted = server_of(workers=2)
    client(restarted.url, *cred).list_keys()  # serving again, and the chains continue after the crash
    check_no_unaudited_success(audited, answered, db_events(audited))
    check_no_unaudited_success(audited, answered, file_events(audited))
    result = audited.cli("audit", "verify")
    assert result.stdout.count(": OK") == 2, result.stdout


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_stop_answering_when_the_master_and_its_audit_committer_die(
    audited: Deployment, server_of: Callable[..., ServerProcess]
) -> None:
    server = server_of(workers=2)
    cred = secret_credential(audited)
    key_id = client(server.url, *cred).create_key()["KeyMetadata"]["KeyId"]
    workers = _children(server.proc.pid)
    assert len(workers) == 2
    with Load(server.url, cred, key_id) as load:
        load.wait_for(lambda r: sum(code == "ok" for _, code in r) >= 20)
        os.kill(server.proc.pid, signal.SIGKILL)  # the master only: its workers are orphaned mid-load
        server.proc.wait(10)
        killed_at = load.count()
        deadline = time.monotonic() + 15
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert not [pid for pid in workers if _running(pid)], "orphaned workers kept serving"
    # the workers answered at most the requests already in flight, never an unaudited success
    check_no_unaudited_success(audited, load.results[: killed_at + 6], db_events(audited))
    later = [code for _, code in load.results[killed_at + 6 :]]
    assert "ok" not in later
