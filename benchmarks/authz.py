#!/usr/bin/env python3
"""The cost of policy evaluation: microseconds per ``openkms.authz.evaluator.evaluate()`` call.

    .venv/bin/python benchmarks/authz.py [--iterations N] [--rounds R]

Compares the default key policy (one statement delegating to the account) with a realistic key policy of
five statements -- administrators, users limited by encryption-context conditions, a grant-management
statement, a TLS-only Deny, a deletion Deny -- evaluated for an Encrypt by a role session with an identity
policy. Prints the median and best µs per call of each and their ratio. Informational: nothing is gated.
Policies are compiled once (the LRU cache), as in the server; the first call of each is excluded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from openkms.authz.evaluator import evaluate
from openkms.authz.model import AccessRequest, Principal, PrincipalType

ACCOUNT = "111122223333"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/AppServer"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/KeyAdmin"

DEFAULT_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": ROOT},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }
)

REALISTIC_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "KeyAdministrators",
                "Effect": "Allow",
                "Principal": {"AWS": ADMIN},
                "Action": [
                    "kms:Create*",
                    "kms:Describe*",
                    "kms:Enable*",
                    "kms:List*",
                    "kms:Put*",
                    "kms:Update*",
                ],
                "Resource": "*",
            },
            {
                "Sid": "KeyUsersWithContext",
                "Effect": "Allow",
                "Principal": {"AWS": [ROLE, f"arn:aws:iam::{ACCOUNT}:user/batch"]},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"kms:EncryptionContext:app": ["billing", "ledger"]},
                    "StringLike": {"kms:EncryptionContext:tenant": "t-*"},
                    "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["app", "tenant", "request"]},
                },
            },
            {
                "Sid": "GrantsForAwsResources",
                "Effect": "Allow",
                "Principal": {"AWS": ROLE},
                "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                "Resource": "*",
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            },
            {
                "Sid": "TlsOnly",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "kms:*",
                "Resource": "*",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Sid": "NoDeletionOutsideAdmins",
                "Effect": "Deny",
                "Principal": "*",
                "Action": ["kms:ScheduleKeyDeletion", "kms:Disable*"],
                "Resource": "*",
                "Condition": {"ArnNotEquals": {"aws:PrincipalArn": ADMIN}},
            },
        ],
    }
)


def _requests() -> tuple[AccessRequest, AccessRequest]:
    root = Principal(ROOT, ACCOUNT, PrincipalType.ACCOUNT, ACCOUNT, ROOT)
    session = Principal(
        f"arn:aws:sts::{ACCOUNT}:assumed-role/AppServer/i-0abc",
        ACCOUNT,
        PrincipalType.ASSUMED_ROLE,
        "AROAEXAMPLE:i-0abc",
        ROLE,
        identity_policies=(
            json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": "kms:*", "Resource": f"arn:aws:kms:*:{ACCOUNT}:key/*"}
                    ],
                }
            ),
        ),
    )
    keys = {
        "kms:encryptioncontext:app": "ledger",
        "kms:encryptioncontext:tenant": "t-42",
        "kms:encryptioncontext:request": "r-9",
        "kms:encryptioncontextkeys": ["app", "tenant", "request"],
        "kms:calleraccount": ACCOUNT,
        "kms:encryptionalgorithm": "SYMMETRIC_DEFAULT",
        "aws:securetransport": True,
        "aws:sourceip": "10.0.0.5",
    }
    context = {"app": "ledger", "tenant": "t-42", "request": "r-9"}
    default = AccessRequest(
        root, "Encrypt", KEY, ACCOUNT, DEFAULT_POLICY, condition_keys=keys, encryption_context=context
    )
    realistic = AccessRequest(
        session, "Encrypt", KEY, ACCOUNT, REALISTIC_POLICY, condition_keys=keys, encryption_context=context
    )
    return default, realistic


def _measure(request: AccessRequest, iterations: int, rounds: int) -> list[float]:
    assert evaluate(request).allowed, evaluate(request).reason
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(iterations):
            evaluate(request)
        samples.append((time.perf_counter_ns() - start) / iterations / 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    default, realistic = _requests()
    print(f"realistic decision: {evaluate(realistic).reason}")
    results = {}
    for name, request in (("default policy", default), ("5-statement policy", realistic)):
        samples = _measure(request, args.iterations, args.rounds)
        results[name] = samples
        print(
            f"{name:20s} median {statistics.median(samples):6.2f} µs   best {min(samples):6.2f} µs "
            "per evaluate()"
        )
    ratio = statistics.median(results["5-statement policy"]) / statistics.median(results["default policy"])
    print(f"ratio 5-statement / default: {ratio:.2f}x")


if __name__ == "__main__":
    main()
