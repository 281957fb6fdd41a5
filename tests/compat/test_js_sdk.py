"""The AWS SDK for JavaScript v3 (@aws-sdk/client-kms) against a running server: tests/js/kms_flow.mjs.

The script sits next to tests/js/node_modules so its bare imports resolve; it prints a JSON summary.
Without node or the installed packages the test is skipped locally and fails in CI.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.support.servers import TEST_REGION, ServerProcess, in_ci

JS_DIR = Path(__file__).resolve().parents[1] / "js"
SCRIPT = JS_DIR / "kms_flow.mjs"


def node_or_skip() -> str:
    node = shutil.which("node")
    problem = None
    if node is None:
        problem = "node is not installed"
    elif not (JS_DIR / "node_modules" / "@aws-sdk" / "client-kms").is_dir():
        problem = f"run `npm install --prefix {JS_DIR}` (tests/js/node_modules is missing)"
    if problem:
        if in_ci():
            pytest.fail(problem)
        pytest.skip(problem)
    assert node is not None
    return node


def test_js_sdk_v3_flow(server: ServerProcess, kms, tmp_path: Path) -> None:
    node = node_or_skip()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPENKMS_"))}
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "no-such-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-such-credentials"),
        NODE_NO_WARNINGS="1",
    )
    result = subprocess.run(
        [node, str(SCRIPT), server.url, "test", "test", TEST_REGION],
        cwd=JS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    assert lines, f"no output (exit {result.returncode}):\n{result.stderr}"
    summary = json.loads(lines[-1])
    assert summary["ok"] is True and result.returncode == 0, (summary, result.stderr)
    assert all(summary["checks"].values()) and len(summary["checks"]) >= 14

    errors = summary["errors"]
    assert errors["describe_missing"]["name"] == "NotFoundException"
    assert errors["decrypt_tampered"]["name"] == "InvalidCiphertextException"
    assert errors["wrong_secret"]["name"] == "InvalidSignatureException"
    assert {e["status"] for e in errors.values()} == {400}
    assert {e["fault"] for e in errors.values()} == {"client"}

    # what the JS SDK created and encrypted is usable from boto3
    md = kms.describe_key(KeyId=summary["keyId"])["KeyMetadata"]
    assert md["Description"] == "js sdk v3 compat" and md["KeyState"] == "Enabled"
    shared = summary["shared"]
    blob = base64.b64decode(shared["ciphertext"])
    dec = kms.decrypt(CiphertextBlob=blob, EncryptionContext=shared["context"])
    assert dec["Plaintext"] == base64.b64decode(shared["plaintext"])
    assert dec["KeyId"] == md["Arn"]
