#!/usr/bin/env python3
"""The HSM is not on the hot path: Encrypt with the pkcs11 root of trust vs the file provider, in one run.

    .venv/bin/python benchmarks/rootoftrust.py [--duration S] [--rounds N] [--connections C] [--workers W]
                                               [--no-pin] [--json OUT]

1. creates a SoftHSM2 configuration with one token in a temporary directory (``softhsm2-util``);
2. initializes two data directories: A with the file provider, B with pkcs11 on that token;
3. starts both servers on 127.0.0.1 (background jobs off; with two or more CPUs and without ``--no-pin``
   both run on CPU 1 and wrk on CPU 0) and runs ``kmsbench --compare A B --op Encrypt``, so runs
   alternate A B A B and every ratio compares adjacent runs;
4. prints throughput, p99 and the B/A ratio (target: B >= 90 % of A);
5. stops both servers (their process groups) and removes the temporary directory.

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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audit import ACCOUNT, KMSBENCH, OPENKMS, BenchError, _mmm, _start, _stop, add_common_arguments, compare

TARGET_RATIO = 0.90
PIN = "24681357"


def _env(data_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENKMS_", "AWS_"))}
    env.update(OPENKMS_DATA_DIR=str(data_dir), OPENKMS_JOBS_ENABLED="false", **extra)
    return env


def _run(cmd: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def _softhsm(work: Path) -> dict[str, str]:
    if shutil.which("softhsm2-util") is None:
        raise BenchError("softhsm2 is not installed (apt-get install softhsm2)")
    tokens = work / "tokens"
    tokens.mkdir()
    conf = work / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = dict(os.environ, SOFTHSM2_CONF=str(conf))
    _run(["softhsm2-util", "--init-token", "--free", "--label", "bench", "--pin", PIN, "--so-pin", PIN], env)
    return {
        "SOFTHSM2_CONF": str(conf),
        "OPENKMS_ROOT_OF_TRUST_PROVIDER": "pkcs11",
        "OPENKMS_ROOT_OF_TRUST_PKCS11_TOKEN_LABEL": "bench",
        "OPENKMS_ROOT_OF_TRUST_PKCS11_PIN": PIN,
    }


def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="openkms-rot-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        pin = None if args.no_pin or (os.cpu_count() or 1) < 2 else "1"
        providers = {"A": {}, "B": _softhsm(work)}
        urls, pids = {}, {}
        for name, extra in providers.items():
            env = _env(work / name, extra)
            _run([*OPENKMS, "init"], env)
            _run(
                [
                    *OPENKMS,
                    "admin",
                    "create-access-key",
                    "--account",
                    ACCOUNT,
                    "--access-key-id",
                    "test",
                    "--secret-access-key",
                    "test",
                ],
                env,
            )
            proc, url = _start(name, env, args.workers, pin, work / f"{name}.log")
            procs.append(proc)
            urls[name], pids[name] = url, proc.pid
        c = compare(KMSBENCH, urls, pids, args, pin, work / "kmsbench.json")
        status, results, runs_a, runs_b, ratios = c.status, c.results, c.runs_a, c.runs_b, c.ratios
        print()
        for label, runs in (("file   (A)", runs_a), ("pkcs11 (B)", runs_b)):
            print(
                f"{label} Encrypt ok/s : {_mmm([r['ok_rps'] for r in runs])}  "
                f"p99 {_mmm([r['lat_ms']['p99'] for r in runs], '%.1f')} ms"
            )
        met = ratios and statistics.median(ratios) >= TARGET_RATIO
        print(
            f"B/A ok/s                : {_mmm(ratios, '%.2f')}  (target >= {TARGET_RATIO:.2f}: "
            f"{'met' if met else 'NOT met'})"
        )
        if args.json:
            Path(args.json).write_text(json.dumps({"kmsbench": results, "ratios": ratios}, indent=1))
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
    args = parser.parse_args()
    if not KMSBENCH.exists():
        print(f"kmsbench not found at {KMSBENCH}", file=sys.stderr)
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
