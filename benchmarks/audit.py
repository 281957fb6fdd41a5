#!/usr/bin/env python3
"""The cost of the durable audit log: Encrypt with ``audit.enabled = true`` vs ``false``, in one run.

    .venv/bin/python benchmarks/audit.py [--duration S] [--rounds N] [--connections C] [--workers W]
                                         [--no-pin] [--json OUT]

1. creates two temporary data directories (``openkms init`` each, access key ``test``/``test``);
2. starts two ``openkms server`` processes on 127.0.0.1 (background jobs off): A with the audit log off,
   B with the default durable audit log (database sink, group commit, fsync before every response);
   with two or more CPUs and without ``--no-pin`` both servers run on CPU 1 and wrk on CPU 0;
3. runs ``kmsbench --compare A B --op Encrypt`` (``../shared/bench/kmsbench``), so runs alternate
   A B A B and every ratio compares adjacent runs;
4. prints throughput, p99, the B/A ratio (target: B >= 85 % of A), events/s recorded, and B's group-commit
   batch sizes (from its ``/health`` audit statistics), then checks that B's log verifies;
5. stops both servers (their whole process groups) and removes the data directories.

Exit status: kmsbench's (0 when every request succeeded), 2 for setup errors. The target never changes it.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
KMSBENCH = REPO.parent / "shared" / "bench" / "kmsbench"
OPENKMS = [sys.executable, "-m", "openkms.cli.main"]
HOST = "127.0.0.1"
ACCOUNT = "123456789012"
TARGET_RATIO = 0.85
LISTENING = re.compile(r"listening on http://[^:]+:(\d+)")


class BenchError(Exception):
    pass


def _env(data_dir: Path, audit: bool, sinks: str = "database") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENKMS_", "AWS_"))}
    env.update(OPENKMS_DATA_DIR=str(data_dir), OPENKMS_JOBS_ENABLED="false", OPENKMS_AUDIT_SINKS=sinks)
    env["OPENKMS_AUDIT_ENABLED"] = "true" if audit else "false"
    return env


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (the master, its workers): kmsbench counts the CPU of exactly the PIDs
    it is given, and with several workers the master alone does little."""
    parent_of: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent_of[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree = {root}
    grew = True
    while grew:
        kids = {pid for pid, parent in parent_of.items() if parent in tree and pid not in tree}
        tree |= kids
        grew = bool(kids)
    return sorted(tree)


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [*OPENKMS, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode not in (0, 1) or (done.returncode == 1 and args[:2] != ("audit", "verify")):
        raise BenchError(f"openkms {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def _start(
    name: str, env: dict[str, str], workers: int, pin: str | None, log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    cmd = [*OPENKMS, "server", "--host", HOST, "--port", "0", "--workers", str(workers)]
    if pin is not None:
        cmd = ["taskset", "-c", pin, *cmd]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited:\n{log.read_text(errors='replace')[-2000:]}")
        match = LISTENING.search(log.read_text(errors="replace"))
        if match:
            return proc, f"http://{HOST}:{match.group(1)}"
        time.sleep(0.2)
    raise BenchError(f"{name} did not start:\n{log.read_text(errors='replace')[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM our own process group (start_new_session), SIGKILL it if it does not stop."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _health(url: str) -> dict[str, Any]:
    conn = http.client.HTTPConnection(HOST, int(url.rsplit(":", 1)[1]), timeout=5)
    try:
        conn.request("GET", "/health")
        body: dict[str, Any] = json.loads(conn.getresponse().read())
        return body
    finally:
        conn.close()


def _mmm(values: list[float], fmt: str = "%.0f") -> str:
    if not values:
        return "n/a"
    return f"{fmt % statistics.median(values)} [{fmt % min(values)}-{fmt % max(values)}]"


@dataclass
class Comparison:
    status: int  # kmsbench's exit status
    results: dict[str, Any]  # its JSON
    runs_a: list[dict[str, Any]]
    runs_b: list[dict[str, Any]]
    ratios: list[float]  # B/A ok/s of adjacent pairs
    cpu_ratios: list[float]  # B/A server CPU per request


def compare(
    kmsbench: Path,
    urls: dict[str, str],
    pids: dict[str, int],
    args: argparse.Namespace,
    pin: str | None,
    out: Path,
    extra: Sequence[str] = (),
) -> Comparison:
    """``kmsbench --compare A B --op Encrypt`` (runs alternate A B A B); the CPU counted is every process of
    each server (with the audit log on the master commits, and it forks even for one worker)."""
    cmd = [
        str(kmsbench), urls["A"], "--compare", urls["B"], "--op", "Encrypt", *extra,
        "-c", str(args.connections), "-d", str(args.duration), "--rounds", str(args.rounds),
        "--warmup", "1", "--json", str(out),
        *(f"--server-pid={pid}" for pid in process_tree(pids["A"])),
        *(f"--compare-server-pid={pid}" for pid in process_tree(pids["B"])),
    ]  # fmt: skip
    if pin is not None:
        cmd += ["--wrk-cpus", "0"]
    status = subprocess.run(cmd, env=dict(os.environ, KMSBENCH_PYTHON=sys.executable), check=False).returncode
    results = json.loads(out.read_text()) if out.exists() else {"runs": []}
    runs_a = [r for r in results["runs"] if r.get("label") == "A"]
    runs_b = [r for r in results["runs"] if r.get("label") == "B"]
    pairs = list(zip(runs_a, runs_b, strict=False))
    return Comparison(
        status,
        results,
        runs_a,
        runs_b,
        [b["ok_rps"] / a["ok_rps"] for a, b in pairs if a["ok_rps"]],
        [
            b["server_us_per_req"] / a["server_us_per_req"]
            for a, b in pairs
            if a.get("server_us_per_req") and b.get("server_us_per_req")
        ],
    )


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every A/B benchmark here takes."""
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per server (alternating)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin the servers to CPU 1 and wrk to CPU 0"
    )
    parser.add_argument("--json", help="write the results here")


def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="openkms-audit-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        pin = None if args.no_pin or (os.cpu_count() or 1) < 2 else "1"
        urls, pids = {}, {}
        for name, audit in (("A", False), ("B", True)):
            env = _env(work / name, audit, args.sinks)
            env.update(setting.split("=", 1) for setting in args.set)
            _cli(env, "init")
            _cli(
                env,
                "admin",
                "create-access-key",
                "--account",
                ACCOUNT,
                "--access-key-id",
                "test",
                "--secret-access-key",
                "test",
            )
            proc, url = _start(name, env, args.workers, pin, work / f"{name}.log")
            procs.append(proc)
            urls[name], pids[name] = url, proc.pid
        before = _health(urls["B"]).get("audit", {})
        c = compare(KMSBENCH, urls, pids, args, pin, work / "kmsbench.json")
        status, results, runs_a, runs_b = c.status, c.results, c.runs_a, c.runs_b
        ratios, cpu = c.ratios, c.cpu_ratios
        after = _health(urls["B"]).get("audit", {})
        events = after.get("events", 0) - before.get("events", 0)
        batches = after.get("batches", 0) - before.get("batches", 0)
        sizes = {
            k: after["batch_sizes"][k] - before.get("batch_sizes", {}).get(k, 0)
            for k in after.get("batch_sizes", {})
        }
        verify = _cli(_env(work / "B", True, args.sinks), "audit", "verify")
        print()
        print(
            f"audit off (A) Encrypt ok/s : {_mmm([r['ok_rps'] for r in runs_a])}  "
            f"p99 {_mmm([r['lat_ms']['p99'] for r in runs_a], '%.1f')} ms"
        )
        print(
            f"audit on  (B) Encrypt ok/s : {_mmm([r['ok_rps'] for r in runs_b])}  "
            f"p99 {_mmm([r['lat_ms']['p99'] for r in runs_b], '%.1f')} ms"
        )
        print(
            f"B/A ok/s                   : {_mmm(ratios, '%.2f')}  (target >= {TARGET_RATIO:.2f}: "
            f"{'met' if ratios and statistics.median(ratios) >= TARGET_RATIO else 'NOT met'})"
        )
        print(f"B/A server CPU per request : {_mmm(cpu, '%.2f')}")
        print(
            f"events recorded by B       : {events} in {batches} group commits "
            f"(mean {events / batches if batches else 0:.1f} per commit, "
            f"largest {after.get('largest_batch')})"
        )
        print(f"B events/s (one per request): {_mmm([r['ok_rps'] for r in runs_b])}")
        print(f"group-commit batch sizes    : {sizes}")
        print(f"B's log                     : {verify.strip().splitlines()[0] if verify.strip() else 'n/a'}")
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "kmsbench": results,
                        "ratios": ratios,
                        "cpu_ratios": cpu,
                        "events": events,
                        "batches": batches,
                        "batch_sizes": sizes,
                    },
                    indent=1,
                    default=str,
                )
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
    parser.add_argument("--sinks", default="database", help="audit.sinks of B (default: database)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="OPENKMS_NAME=VALUE",
        help="a setting for both servers, e.g. OPENKMS_AUDIT_COMMIT_INTERVAL_MS=0 (repeatable)",
    )
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
