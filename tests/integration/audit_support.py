"""Helpers of the audit tests: deployments with a fast digest interval, reading every recorded event."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from botocore.config import Config
from tests.conftest import make_deployment
from tests.support.servers import TEST_ACCOUNT, TEST_REGION, Deployment, ServerProcess, drop_pg_schema

from openkms.app import open_audit_engine
from openkms.audit.file_sink import chain_files
from openkms.audit.reader import AuditReader
from openkms.config import load_settings

AUDIT_ENV = {
    "OPENKMS_AUDIT_DIGEST_INTERVAL_SECONDS": "1",
    "OPENKMS_AUDIT_SINKS": "database,file",
}


def audit_deployment(tmp: Path, backend: str, **env: str) -> Deployment:
    dep = make_deployment(tmp, backend)
    dep.extra_env.update(AUDIT_ENV)
    dep.extra_env.update(env)
    return dep


def client(url: str, access_key: str, secret: str, service: str = "kms", *, validate: bool = True) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=TEST_REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, parameter_validation=validate),
    )


def reader_of(dep: Deployment) -> AuditReader:
    return AuditReader(open_audit_engine(load_settings(environ=dep.env())))


def db_events(dep: Deployment) -> list[dict[str, Any]]:
    """Every record of the database sink, in chain order."""
    reader = reader_of(dep)
    head = reader.head()
    if head is None:
        return []
    return [e.record for e in reader.iter_events(head.first_seq, head.seq)]


def file_events(dep: Deployment) -> list[dict[str, Any]]:
    out = []
    for path in chain_files(load_settings(environ=dep.env()).audit_file):
        for line in path.read_bytes().splitlines():
            record = orjson.loads(line)
            if "seq" in record:
                out.append(record["event"])
    return out


def by_request(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        found.setdefault(event.get("requestID", ""), []).append(event)
    return found


def raw_log_bytes(dep: Deployment) -> bytes:
    """Everything the audit log stored, as bytes: database blocks, digests, and the JSON-lines files."""
    reader = reader_of(dep)
    parts = [b.events.encode() for b in reader.blocks()]
    parts += [d.body.encode() for d in reader.digests()]
    for path in chain_files(load_settings(environ=dep.env()).audit_file):
        parts.append(path.read_bytes())
    return b"\n".join(parts)


def secret_credential(dep: Deployment) -> tuple[str, str]:
    """A credential whose secret is long and random, so a scan for it is meaningful."""
    access_key = "AKIAAUDIT" + secrets.token_hex(6).upper()
    secret = secrets.token_urlsafe(30)
    dep.add_access_key(TEST_ACCOUNT, access_key, secret, user="auditor")
    return access_key, secret


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def audited(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    dep = audit_deployment(tmp_path_factory.mktemp(f"audit-{request.param}"), request.param)
    yield dep
    if dep.schema:
        drop_pg_schema(dep.schema)


@pytest.fixture(scope="module")
def audited_server(audited: Deployment) -> Iterator[ServerProcess]:
    proc = ServerProcess(audited)
    yield proc
    proc.stop()
