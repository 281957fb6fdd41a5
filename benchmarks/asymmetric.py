#!/usr/bin/env python3
"""Asymmetric and HMAC benchmark: each KMS operation as a fraction of the raw library primitive.

    .venv/bin/python benchmarks/asymmetric.py [--seconds S] [--http] [--http-seconds S] [--json OUT]

In-process (always): a temporary deployment (SQLite), the service built as a server worker builds it, and
for each operation the service handler (key resolution, state and usage checks, cached key objects,
response shaping; no HTTP, no SigV4) is timed against the bare library call for the same primitive on a
key of the same type, in the same run, alternating the two in short slices so drift hits both alike.
Reported: calls/s of each, and ``service / raw``.

Over HTTP (``--http``): ``openkms server`` with 2 workers and the shared ``kmsbench`` (wrk) harness, for
the two operations kmsbench knows (Sign with ECC_NIST_P256, GenerateMac with HMAC_256), printed next to
the raw single-core library rate. Targets (informational, never change the exit status): ECDSA P-256
Sign >= 5,000/s and GenerateMac >= 8,000/s over HTTP.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa  # noqa: E402

from openkms.app import build_service  # noqa: E402
from openkms.config import load_settings  # noqa: E402
from openkms.service.context import Caller, RequestContext  # noqa: E402

ACCOUNT = "123456789012"
KMSBENCH = REPO.parent / "shared" / "bench" / "kmsbench"
TARGETS = {"Sign ECC_NIST_P256": 5_000, "GenerateMac HMAC_256": 8_000}
MESSAGE = os.urandom(32)


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds`` of wall time (after a short warm-up)."""
    for _ in range(3):
        fn()
    calls, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(10):
            fn()
        calls += 10
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - start)


def paired(
    service_fn: Callable[[], object], raw_fn: Callable[[], object], seconds: float
) -> tuple[float, float]:
    """Alternate service and raw in 4 slices each; return the median rate of each."""
    svc, raw = [], []
    for _ in range(4):
        svc.append(rate(service_fn, seconds / 8))
        raw.append(rate(raw_fn, seconds / 8))
    svc.sort()
    raw.sort()
    return (svc[1] + svc[2]) / 2, (raw[1] + raw[2]) / 2


def context() -> RequestContext:
    caller = Caller(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root", "bench")
    return RequestContext("bench", caller, "us-east-1", "127.0.0.1", "bench", time.time())


def in_process(seconds: float) -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="openkms-asym-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENKMS_")}
    env["OPENKMS_DATA_DIR"] = str(tmp)
    subprocess.run(
        [sys.executable, "-m", "openkms.cli.main", "init"], env=env, check=True, capture_output=True
    )
    settings = load_settings(environ=env)
    service = build_service(settings)
    ctx = context()
    ops = service.operations

    def create(spec: str, usage: str) -> str:
        md = ops["CreateKey"].handler(ctx, {"KeySpec": spec, "KeyUsage": usage})["KeyMetadata"]
        return str(md["KeyId"])

    def call(name: str, params: dict[str, Any]) -> Callable[[], object]:
        handler = ops[name].handler
        return lambda: handler(ctx, params)

    rows: list[dict[str, Any]] = []

    def measure(op: str, spec: str, svc: Callable[[], object], raw: Callable[[], object]) -> None:
        s, r = paired(svc, raw, seconds)
        rows.append({"operation": op, "key_spec": spec, "service_per_s": s, "raw_per_s": r, "ratio": s / r})
        print(
            f"  {op:<13} {spec:<22} service {s:>9,.0f}/s   raw {r:>9,.0f}/s   service/raw {s / r:5.2f}",
            flush=True,
        )

    p256 = ec.generate_private_key(ec.SECP256R1())
    rsa2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed = ed25519.Ed25519PrivateKey.generate()
    dsa = mldsa.MLDSA65PrivateKey.generate()
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
    signers: list[tuple[str, str, Callable[[], bytes], Callable[[bytes], object]]] = [
        (
            "ECC_NIST_P256",
            "ECDSA_SHA_256",
            lambda: p256.sign(MESSAGE, ec.ECDSA(hashes.SHA256())),
            lambda sig: p256.public_key().verify(sig, MESSAGE, ec.ECDSA(hashes.SHA256())),
        ),
        (
            "RSA_2048",
            "RSASSA_PSS_SHA_256",
            lambda: rsa2048.sign(MESSAGE, pss, hashes.SHA256()),
            lambda sig: rsa2048.public_key().verify(sig, MESSAGE, pss, hashes.SHA256()),
        ),
        (
            "ECC_NIST_EDWARDS25519",
            "ED25519_SHA_512",
            lambda: ed.sign(MESSAGE),
            lambda sig: ed.public_key().verify(sig, MESSAGE),
        ),
        (
            "ML_DSA_65",
            "ML_DSA_SHAKE_256",
            lambda: dsa.sign(MESSAGE),
            lambda sig: dsa.public_key().verify(sig, MESSAGE),
        ),
    ]
    print("in-process (service handler vs bare library call, same run):")
    for spec, algorithm, raw_sign, raw_verify in signers:
        key_id = create(spec, "SIGN_VERIFY")
        params = {"KeyId": key_id, "Message": MESSAGE, "SigningAlgorithm": algorithm}
        measure("Sign", spec, call("Sign", params), raw_sign)
        signature = ops["Sign"].handler(ctx, params)["Signature"]
        raw_sig = raw_sign()
        measure(
            "Verify",
            spec,
            call("Verify", {**params, "Signature": signature}),
            lambda s=raw_sig, v=raw_verify: v(s),
        )
    mac_key = create("HMAC_256", "GENERATE_VERIFY_MAC")
    secret = os.urandom(32)
    message64 = os.urandom(64)
    measure(
        "GenerateMac",
        "HMAC_256",
        call("GenerateMac", {"KeyId": mac_key, "Message": message64, "MacAlgorithm": "HMAC_SHA_256"}),
        lambda: hmac.digest(secret, message64, hashlib.sha256),
    )
    pub_key = create("ECC_NIST_P256", "SIGN_VERIFY")
    public = p256.public_key()
    measure(
        "GetPublicKey",
        "ECC_NIST_P256",
        call("GetPublicKey", {"KeyId": pub_key}),
        lambda: public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    return rows


def over_http(seconds: float, raw: dict[str, float]) -> list[dict[str, Any]]:
    if not KMSBENCH.exists():
        print(f"  (skipped: {KMSBENCH} not found)")
        return []
    tmp = Path(tempfile.mkdtemp(prefix="openkms-asym-http-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENKMS_", "AWS_"))}
    env.update(OPENKMS_DATA_DIR=str(tmp), OPENKMS_JOBS_INTERVAL_SECONDS="3600")
    cli = [sys.executable, "-m", "openkms.cli.main"]
    subprocess.run([*cli, "init"], env=env, check=True, capture_output=True)
    subprocess.run(
        [
            *cli,
            "admin",
            "create-access-key",
            "--account",
            ACCOUNT,
            "--user",
            "root",
            "--access-key-id",
            "test",
            "--secret-access-key",
            "test",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [*cli, "server", "--host", "127.0.0.1", "--port", "0", "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    rows: list[dict[str, Any]] = []
    try:
        url = ""
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while not url and time.monotonic() < deadline:
            match = re.search(r"listening on (https?://\S+)", proc.stdout.readline())
            url = match.group(1) if match else ""
        if not url:
            raise RuntimeError("openkms server did not start")
        for op, label in (("Sign", "Sign ECC_NIST_P256"), ("GenerateMac", "GenerateMac HMAC_256")):
            out = tmp / f"{op}.json"
            subprocess.run(
                [
                    sys.executable,
                    str(KMSBENCH),
                    url,
                    "--op",
                    op,
                    "-c",
                    "32",
                    "-d",
                    str(int(seconds)),
                    "--json",
                    str(out),
                ],
                check=False,
                env={**env, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"},
            )
            runs = json.loads(out.read_text()).get("runs", []) if out.exists() else []
            ok = float(runs[-1]["ok_rps"]) if runs else 0.0
            rows.append(
                {
                    "operation": label,
                    "http_ok_per_s": ok,
                    "raw_per_s": raw[label],
                    "ratio": ok / raw[label] if raw[label] else 0.0,
                    "target": TARGETS[label],
                }
            )
            print(
                f"  {label:<22} HTTP {ok:>9,.0f}/s   raw (1 core) {raw[label]:>9,.0f}/s   "
                f"HTTP/raw {ok / raw[label]:5.2f}   target >= {TARGETS[label]:,}/s "
                f"{'met' if ok >= TARGETS[label] else 'NOT met'}"
            )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="in-process seconds per operation pair")
    parser.add_argument("--http", action="store_true", help="also run kmsbench over HTTP (Sign, GenerateMac)")
    parser.add_argument("--http-seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = in_process(args.seconds)
    result: dict[str, Any] = {"in_process": rows}
    if args.http:
        print("over HTTP (openkms server, 2 workers; kmsbench/wrk, 32 connections):")
        raw = {f"{r['operation']} {r['key_spec']}": r["raw_per_s"] for r in rows}
        result["http"] = over_http(args.http_seconds, raw)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
