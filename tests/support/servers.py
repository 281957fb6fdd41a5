"""Start real openkms server processes for tests (SQLite file or the real PostgreSQL)."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

TEST_ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
TEST_REGION = "us-east-1"
PG_URL = os.environ.get("OPENKMS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
OPENKMS = [sys.executable, "-m", "openkms.cli.main"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def postgres_available() -> bool:
    try:
        with psycopg.connect(PG_URL.replace("+psycopg", ""), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def new_pg_schema() -> str:
    schema = f"openkms_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema


def drop_pg_schema(schema: str) -> None:
    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@dataclass
class Deployment:
    """A data directory plus (optionally) a PostgreSQL schema, with operator CLI access."""

    data_dir: Path
    backend: str = "sqlite"
    schema: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENKMS_", "AWS_"))}
        env["OPENKMS_DATA_DIR"] = str(self.data_dir)
        env["OPENKMS_JOBS_INTERVAL_SECONDS"] = "3600"
        if self.backend == "postgres":
            assert self.schema is not None
            env["OPENKMS_STORAGE_URL"] = PG_URL
            env["OPENKMS_STORAGE_SCHEMA"] = self.schema
        env.update(self.extra_env)
        return env

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(  # no stdin: a shamir offline command must not wait for shares from it
            [*OPENKMS, *args], env=self.env(), capture_output=True, text=True, timeout=120, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"openkms {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def init(self) -> subprocess.CompletedProcess[str]:
        return self.cli("init")

    def add_access_key(self, account: str, access_key_id: str, secret: str, user: str = "root") -> None:
        self.cli(
            "admin",
            "create-access-key",
            "--account",
            account,
            "--user",
            user,
            "--access-key-id",
            access_key_id,
            "--secret-access-key",
            secret,
        )


class ServerProcess:
    """``openkms server`` in a child process; the port comes from its 'listening on' line."""

    def __init__(self, deployment: Deployment, *, workers: int = 1, extra_args: tuple[str, ...] = ()) -> None:
        self.deployment = deployment
        self.proc = subprocess.Popen(
            [*OPENKMS, "server", "--port", "0", "--workers", str(workers), *extra_args],
            env=deployment.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.output: list[str] = []
        self.url = self._wait_listening()
        self._drain = threading.Thread(target=self._read_rest, daemon=True)
        self._drain.start()

    def _wait_listening(self, timeout: float = 60.0) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            match = re.search(r"listening on (https?://\S+)", line)
            if match:
                return match.group(1)
        self.stop()
        raise RuntimeError("openkms server did not start:\n" + "".join(self.output))

    def _read_rest(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    @property
    def log(self) -> str:
        return "".join(self.output)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode
