"""Run the real ``aws`` CLI (installed next to the interpreter) against a test server, with only the
documented environment: endpoint URL, credentials, Region; no config or credential files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Protocol

import pytest

from tests.support.servers import TEST_REGION

AWS = Path(sys.executable).parent / "aws"


class AwsRunner(Protocol):
    workdir: Path

    def __call__(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]: ...


def aws_runner(url: str, workdir: Path, access_key: str = "test", secret: str = "test") -> AwsRunner:
    """``run(*args)`` runs ``aws <args>`` in ``workdir`` (so ``fileb://name`` finds files written there)."""
    if not AWS.exists():
        pytest.fail(f"the aws CLI is not installed next to the interpreter ({AWS})")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPENKMS_"))}
    base_env.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID=access_key,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_DEFAULT_REGION=TEST_REGION,
        AWS_CONFIG_FILE=str(workdir / "no-such-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(workdir / "no-such-credentials"),
        AWS_PAGER="",
    )

    def run(*args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(AWS), *args],
            env={**base_env, **env},
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"aws {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    run.workdir = workdir  # type: ignore[attr-defined]
    return run  # type: ignore[return-value]
