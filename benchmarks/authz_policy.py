#!/usr/bin/env python3
"""The cost of policy evaluation: Encrypt under the default key policy vs a realistic 5-statement policy
with encryption-context conditions, in one run.

    .venv/bin/python benchmarks/authz_policy.py [--duration S] [--rounds N] [--connections C]
                                                [--workers W] [--no-pin] [--json OUT]

1. creates two temporary data directories (``openkms init`` each; access keys ``test``/``test`` for the
   account root and ``app``/``app`` for the IAM user ``app``, the caller measured);
2. starts two ``openkms server`` processes on 127.0.0.1 (background jobs off; same settings, audit on);
   with two or more CPUs and without ``--no-pin`` both servers run on CPU 1 and wrk on CPU 0;
3. creates ``alias/bench`` on each: on A a key with the default policy, on B a key with the policy in
   ``REALISTIC_POLICY`` (root administration, key administrators, key users allowed only with
   ``kms:EncryptionContext:app`` = ``kmsbench``, a Deny for any other context, grants for AWS resources);
4. runs ``kmsbench --compare A B --op Encrypt --key-id alias/bench`` as ``app`` (kmsbench's Encrypt sends
   the context ``{"app": "kmsbench", "req": "<i>"}``), so runs alternate A B A B and every ratio compares
   adjacent runs; prints throughput, p99 and the B/A ratio (target: B >= 90 % of A).

Exit status: kmsbench's (0 when every request succeeded), 2 for setup errors. The target never changes it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audit import (
    ACCOUNT,
    KMSBENCH,
    BenchError,
    _cli,
    _env,
    _mmm,
    _start,
    _stop,
    add_common_arguments,
    compare,
)

TARGET_RATIO = 0.90
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
APP = f"arn:aws:iam::{ACCOUNT}:user/app"
ADMIN = f"arn:aws:iam::{ACCOUNT}:user/admin"
USE = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"]
REALISTIC_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Id": "realistic-5",
    "Statement": [
        {
            "Sid": "Root may administer the policy",
            "Effect": "Allow",
            "Principal": {"AWS": ROOT},
            "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:PutKeyPolicy", "kms:CreateAlias"],
            "Resource": "*",
        },
        {
            "Sid": "Allow access for Key Administrators",
            "Effect": "Allow",
            "Principal": {"AWS": ADMIN},
            "Action": [
                "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
                "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource",
                "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
            ],
            "Resource": "*",
        },
        {
            "Sid": "Allow use of the key by the application",
            "Effect": "Allow",
            "Principal": {"AWS": [APP]},
            "Action": [*USE, "kms:DescribeKey"],
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:EncryptionContext:app": "kmsbench", "kms:CallerAccount": ACCOUNT},
                "ForAllValues:StringLike": {"kms:EncryptionContextKeys": ["app", "req", "tenant*"]},
            },
        },
        {
            "Sid": "Deny use without the application context",
            "Effect": "Deny",
            "Principal": "*",
            "Action": USE,
            "Resource": "*",
            "Condition": {"StringNotEquals": {"kms:EncryptionContext:app": ["kmsbench", "billing"]}},
        },
        {
            "Sid": "Allow attachment of persistent resources",
            "Effect": "Allow",
            "Principal": {"AWS": [APP]},
            "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
            "Resource": "*",
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        },
    ],
}  # fmt: skip


def _create_bench_key(url: str, policy: dict[str, Any] | None) -> str:
    kms = boto3.client(
        "kms",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
    )
    extra: dict[str, Any] = {}
    if policy is not None:
        extra = {"Policy": json.dumps(policy), "BypassPolicyLockoutSafetyCheck": False}
    key_id: str = kms.create_key(**extra)["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/bench", TargetKeyId=key_id)
    return key_id


def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="openkms-authz-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        pin = None if args.no_pin or (os.cpu_count() or 1) < 2 else "1"
        urls, pids = {}, {}
        for name, policy in (("A", None), ("B", REALISTIC_POLICY)):
            env = _env(work / name, True)
            _cli(env, "init")
            for key, user in (("test", "root"), ("app", "app")):
                _cli(env, "admin", "create-access-key", "--account", ACCOUNT, "--user", user,
                     "--access-key-id", key, "--secret-access-key", key)  # fmt: skip
            proc, url = _start(name, env, args.workers, pin, work / f"{name}.log")
            procs.append(proc)
            urls[name], pids[name] = url, proc.pid
            _create_bench_key(url, policy)
        extra = ["--key-id", "alias/bench", "--access-key", "app", "--secret-key", "app"]
        c = compare(args.kmsbench, urls, pids, args, pin, work / "kmsbench.json", extra)
        status, results, runs_a, runs_b = c.status, c.results, c.runs_a, c.runs_b
        ratios, cpu = c.ratios, c.cpu_ratios
        print()
        for label, runs, what in (("A", runs_a, "default policy   "), ("B", runs_b, "5-statement policy")):
            print(
                f"{what} ({label}) Encrypt ok/s : {_mmm([r['ok_rps'] for r in runs])}  "
                f"p99 {_mmm([r['lat_ms']['p99'] for r in runs], '%.1f')} ms"
            )
        met = ratios and statistics.median(ratios) >= TARGET_RATIO
        print(f"B/A ok/s                           : {_mmm(ratios, '%.2f')}  "
              f"(target >= {TARGET_RATIO:.2f}: {'met' if met else 'NOT met'})")  # fmt: skip
        print(f"B/A server CPU per request         : {_mmm(cpu, '%.2f')}")
        if args.json:
            Path(args.json).write_text(
                json.dumps({"kmsbench": results, "ratios": ratios, "cpu_ratios": cpu}, indent=1, default=str)
            )
        return status
    finally:
        for proc in procs:
            _stop(proc)
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser)
    parser.add_argument("--kmsbench", type=Path, default=KMSBENCH, help="the kmsbench script")
    args = parser.parse_args()
    if not args.kmsbench.exists():
        print(f"kmsbench not found at {args.kmsbench}", file=sys.stderr)
        return 2
    try:
        return run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
