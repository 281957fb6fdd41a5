"""Shared fixtures: real server processes on SQLite and on PostgreSQL, boto3 clients for them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tests.support.servers import (
    OTHER_ACCOUNT,
    TEST_ACCOUNT,
    TEST_REGION,
    Deployment,
    ServerProcess,
    drop_pg_schema,
    in_ci,
    new_pg_schema,
    postgres_available,
)

BACKENDS = ["sqlite", "postgres"]


def require_postgres() -> None:
    if not postgres_available():
        if in_ci():
            pytest.fail("PostgreSQL on 127.0.0.1:5432 is required in CI")
        pytest.skip("PostgreSQL on 127.0.0.1:5432 is not reachable")


def make_deployment(tmp: Path, backend: str) -> Deployment:
    schema = None
    if backend == "postgres":
        require_postgres()
        schema = new_pg_schema()
    deployment = Deployment(tmp / "data", backend=backend, schema=schema)
    deployment.init()
    deployment.add_access_key(TEST_ACCOUNT, "test", "test")
    deployment.add_access_key(OTHER_ACCOUNT, "other", "othersecret")
    return deployment


@pytest.fixture(scope="module", params=BACKENDS)
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    dep = make_deployment(tmp_path_factory.mktemp(request.param), request.param)
    yield dep
    if dep.schema:
        drop_pg_schema(dep.schema)


@pytest.fixture(scope="module")
def server(deployment: Deployment) -> Iterator[ServerProcess]:
    proc = ServerProcess(deployment)
    yield proc
    proc.stop()


def client(  # type: ignore[no-untyped-def]
    url: str,
    access_key: str = "test",
    secret: str = "test",
    region: str = TEST_REGION,
    service: str = "kms",
    *,
    validate: bool = True,
):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, parameter_validation=validate),
    )


@pytest.fixture(scope="module")
def kms(server: ServerProcess):  # type: ignore[no-untyped-def]
    return client(server.url)


@pytest.fixture(scope="module")
def kms_nv(server: ServerProcess):  # type: ignore[no-untyped-def]
    """A client that skips botocore's own parameter checks, so the server's checks are what is tested."""
    return client(server.url, validate=False)


@pytest.fixture(scope="module")
def other_kms(server: ServerProcess):  # type: ignore[no-untyped-def]
    return client(server.url, "other", "othersecret")
