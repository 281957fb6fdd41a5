"""Run the AWS Encryption SDK clients (aws-encryption-cli, the JS SDK, ``openkms encrypt-file``) against a
test server the way docs/clients.md tells users to: a clean environment plus the documented variables
(AWS_ENDPOINT_URL and credentials), or a profile in a shared config file (endpoint_url, region) and a
shared credentials file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import OPENKMS, TEST_REGION, in_ci

ESDK_CLI = Path(sys.executable).parent / "aws-encryption-cli"
JS_DIR = Path(__file__).resolve().parents[1] / "js"
JS_SCRIPT = JS_DIR / "esdk_interop.mjs"

# The parent waits for exactly one child, so RUSAGE_CHILDREN's peak RSS is that child's alone.
_MEASURE = (
    "import resource, subprocess, sys; "
    "rc = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(rc)"
)


def clean_env(workdir: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any AWS_/OPENKMS_ settings, and no shared files by default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPENKMS_"))}
    env.update(
        AWS_CONFIG_FILE=str(workdir / "no-such-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(workdir / "no-such-credentials"),
        NODE_NO_WARNINGS="1",
    )
    env.update(extra)
    return env


def endpoint_env(url: str, workdir: Path, access_key: str = "test", secret: str = "test") -> dict[str, str]:
    """docs/clients.md, "environment variables"."""
    return clean_env(
        workdir,
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID=access_key,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_DEFAULT_REGION=TEST_REGION,
    )


def profile_env(url: str, workdir: Path, credentials_file: Path, profile: str = "openkms") -> dict[str, str]:
    """docs/clients.md, "a profile": endpoint_url and region in the config file, the bootstrap
    credentials file (whose section is the profile name) as the shared credentials file."""
    config = workdir / "aws-config"
    config.write_text(f"[profile {profile}]\nregion = {TEST_REGION}\nendpoint_url = {url}\n")
    return clean_env(workdir, AWS_CONFIG_FILE=str(config), AWS_SHARED_CREDENTIALS_FILE=str(credentials_file))


def run(
    cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def run_measured(
    cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = 600
) -> tuple[subprocess.CompletedProcess[str], int]:
    """-> (result, peak resident set of the command in KiB); the peak line is removed from stderr."""
    result = run([sys.executable, "-c", _MEASURE, *cmd], env, cwd, timeout)
    *rest, peak = result.stderr.rstrip("\n").split("\n")
    result.stderr = "\n".join(rest)
    return result, int(peak)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (
        f"{result.args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result


def esdk_cli() -> list[str]:
    if not ESDK_CLI.exists():
        pytest.fail(f"aws-encryption-sdk-cli is not installed next to the interpreter ({ESDK_CLI})")
    return [str(ESDK_CLI)]


def openkms() -> list[str]:
    return list(OPENKMS)


def node_or_skip() -> str:
    node = shutil.which("node")
    problem = None
    if node is None:
        problem = "node is not installed"
    elif not (JS_DIR / "node_modules" / "@aws-crypto" / "client-node").is_dir():
        problem = f"run `npm install --prefix {JS_DIR}` (@aws-crypto/client-node is missing)"
    if problem:
        if in_ci():
            pytest.fail(problem)
        pytest.skip(problem)
    assert node is not None
    return node


@dataclass
class JsResult:
    ok: bool
    encryption_context: dict[str, str]
    key_ids: list[str]
    raw: dict[str, object]


def js_esdk(
    mode: str,
    url: str,
    src: Path,
    dst: Path,
    key_arns: list[str],
    workdir: Path,
    context: dict[str, str] | None = None,
) -> JsResult:
    node = node_or_skip()
    args = [node, str(JS_SCRIPT), mode, url, str(src), str(dst), ",".join(key_arns)]
    if context is not None:
        args.append(json.dumps(context))
    env = clean_env(workdir, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION=TEST_REGION)
    result = run(args, env, JS_DIR, timeout=300)
    lines = result.stdout.strip().splitlines()
    assert lines, f"no output (exit {result.returncode}):\n{result.stderr}"
    summary = json.loads(lines[-1])
    return JsResult(
        ok=summary["ok"] is True and result.returncode == 0,
        encryption_context=summary.get("encryptionContext", {}),
        key_ids=summary.get("keyIds", []),
        raw=summary,
    )


def pattern_chunks(total: int, seed: bytes = b"openkms", chunk: int = 1 << 20) -> Iterator[bytes]:
    """Deterministic, incompressible-looking data without holding it all in memory."""
    block = hashlib.shake_256(seed).digest(chunk)
    sent = 0
    while sent < total:
        piece = block[: min(chunk, total - sent)]
        sent += len(piece)
        yield piece


def write_pattern(path: Path, total: int) -> str:
    """Write ``total`` bytes to ``path``; -> their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for piece in pattern_chunks(total):
            out.write(piece)
            digest.update(piece)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while piece := src.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()
