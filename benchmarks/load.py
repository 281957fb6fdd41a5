#!/usr/bin/env python3
"""Load benchmark: openkms against moto_server, driven by the shared kmsbench harness.

    .venv/bin/python benchmarks/load.py [--duration S] [--rounds N] [--connections C] [--workers W]
                                        [--ops Encrypt,Decrypt,...] [--no-peer] [--json OUT]

What it does, in order:

1. creates a temporary data directory, runs ``openkms init`` and creates the access key ``test``/``test``;
2. starts ``openkms server`` (``--workers W``, port 0, 127.0.0.1 only, background jobs off) and, unless
   ``--no-peer``, ``moto_server`` on a free 127.0.0.1 port, each in its own process group, and waits until
   both answer HTTP;
3. runs ``kmsbench`` (``../shared/bench/kmsbench`` from the repository root) once, in ``--compare`` mode:
   A = moto, B = openkms, so runs alternate moto, openkms, moto, openkms ... per op and every ratio is
   openkms/moto over an adjacent pair of runs;
4. prints one table (ok/s, p50/p99, server CPU per request, ratios, and an informational "targets" column);
5. stops both servers (SIGTERM to each process group, SIGKILL after a grace period), also on Ctrl-C, SIGTERM
   or errors, and removes the data directory.

The exit status is kmsbench's: 0 when every request succeeded, 1 when requests failed, 2 for setup or
harness errors (130 on Ctrl-C). The performance targets never change it. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_KMSBENCH = REPO.parent / "shared" / "bench" / "kmsbench"
DEFAULT_OPS = ("Encrypt", "Decrypt", "GenerateDataKey", "DescribeKey", "CreateKey")
KNOWN_OPS = (*DEFAULT_OPS, "Sign", "GenerateMac", "GenerateRandom")
ACCOUNT = "123456789012"
ACCESS_KEY = SECRET_KEY = "test"
HOST = "127.0.0.1"

# The targets. Informational only: they never change the exit status.
TARGET_ENCRYPT_RPS = 10_000
TARGET_ENCRYPT_P99_MS = 10.0
TARGET_CONNECTIONS = 32
TARGET_VS_MOTO = 50.0
TARGET_CREATEKEY_RPS = 1_000
NOISY_OTHER_CORES = 0.1  # "everything else" above this depresses a run's throughput (kmsbench README)

START_TIMEOUT = 60.0  # seconds for a server to print its port / answer HTTP
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL (openkms drains in-flight requests for 5 s)


class BenchError(Exception):
    """A setup or harness failure (exit status 2)."""


# ------------------------------------------------------------------------------------------ processes ---
@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    url: str = ""
    stopped: bool = field(default=False)

    @property
    def pgid(self) -> int:
        return self.proc.pid  # started with start_new_session=True: the group leader's pid is the pgid


def _group_alive(pgid: int) -> bool:
    """True if some process still belongs to process group ``pgid`` (we never signal an empty group)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid:
            return True
    return False


def stop_group(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> None:
    """SIGTERM the process group led by ``proc`` (ours, from start_new_session), then SIGKILL what is left.

    The leader is signalled while it is still unreaped (its pid, hence the pgid, cannot have been reused),
    and after it is reaped the group is only signalled while members remain in it."""
    pgid = proc.pid
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(pgid):
            return
        time.sleep(0.1)
    if proc.poll() is None or _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _venv_tool(name: str) -> str:
    """The console script ``name`` next to this interpreter (the venv), else from PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise BenchError(f"{name} not found next to {sys.executable} nor on PATH")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _answers_http(port: int) -> bool:
    """Any HTTP response to a KMS-shaped POST counts (openkms answers 4xx without credentials)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request(
            "POST",
            "/",
            body=b"{}",
            headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.ListKeys"},
        )
        conn.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _spawn(name: str, cmd: list[str], env: dict[str, str], log: Path) -> Server:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return Server(name, proc, log)


def _wait_ready(srv: Server, port_from_log: re.Pattern[str] | None, port: int | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            raise BenchError(f"{srv.name} exited with status {srv.proc.returncode}:\n{_tail(srv.log)}")
        if port is None and port_from_log is not None:
            m = port_from_log.search(srv.log.read_text(errors="replace"))
            if m:
                port = int(m.group(1))
        if port is not None and _answers_http(port):
            srv.url = f"http://{HOST}:{port}"
            return
        time.sleep(0.2)
    raise BenchError(f"{srv.name} did not answer within {START_TIMEOUT:.0f} s:\n{_tail(srv.log)}")


def _run_cli(cmd: list[str], env: dict[str, str]) -> None:
    cp = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if cp.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed ({cp.returncode}):\n{cp.stdout[-2000:]}{cp.stderr[-2000:]}")


def start_openkms(
    work: Path, workers: int, pin: str | None, jobs: bool, extra_env: dict[str, str], servers: list[Server]
) -> Server:
    openkms = _venv_tool("openkms")
    data = work / "data"
    # no inherited OPENKMS_* (a stray OPENKMS_CONFIG or OPENKMS_DATA_DIR would change what is measured)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENKMS_")}
    env.update({"COLUMNS": "250", "OPENKMS_LOGGING_LEVEL": "WARNING"})
    if not jobs:
        env["OPENKMS_JOBS_ENABLED"] = "false"
    env.update(extra_env)
    _run_cli([openkms, "--data-dir", str(data), "init", "--account", ACCOUNT], env)
    _run_cli(
        [
            openkms,
            "--data-dir",
            str(data),
            "admin",
            "create-access-key",
            "--account",
            ACCOUNT,
            "--access-key-id",
            ACCESS_KEY,
            "--secret-access-key",
            SECRET_KEY,
        ],
        env,
    )
    cmd = [
        openkms,
        "--data-dir",
        str(data),
        "server",
        "--host",
        HOST,
        "--port",
        "0",
        "--workers",
        str(workers),
    ]
    if pin:
        cmd = ["taskset", "-c", pin, *cmd]
    srv = _spawn("openkms", cmd, env, work / "openkms.log")
    servers.append(srv)
    _wait_ready(srv, re.compile(r"listening on https?://[^\s:/]+:(\d+)"), None)
    return srv


def start_moto(work: Path, pin: str | None, servers: list[Server]) -> Server:
    moto = _venv_tool("moto_server")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    last: BenchError | None = None
    for attempt in range(3):  # the free port can be taken between probe and bind: retry on a fresh one
        port = _free_port()
        cmd = [moto, "-H", HOST, "-p", str(port)]
        if pin:
            cmd = ["taskset", "-c", pin, *cmd]
        srv = _spawn("moto_server", cmd, env, work / f"moto-{attempt}.log")
        servers.append(srv)
        try:
            _wait_ready(srv, None, port)
            return srv
        except BenchError as e:
            last = e
            stop_group(srv.proc)
            srv.stopped = True
    raise last or BenchError("moto_server did not start")


# ------------------------------------------------------------------------------------------- kmsbench ---
def run_kmsbench(args: argparse.Namespace, openkms: Server, moto: Server | None, out_json: Path) -> int:
    kmsbench = Path(args.kmsbench)
    if not kmsbench.exists():
        raise BenchError(f"kmsbench not found at {kmsbench} (use --kmsbench PATH)")
    cmd = [sys.executable, str(kmsbench)]
    if moto is not None:
        cmd += [moto.url, "--compare", openkms.url]
    else:
        cmd += [openkms.url]
    cmd += [
        "--op",
        ",".join(args.ops),
        "-c",
        str(args.connections),
        "-d",
        str(args.duration),
        "--rounds",
        str(args.rounds),
        "--warmup",
        str(args.warmup),
        "--access-key",
        ACCESS_KEY,
        "--secret-key",
        SECRET_KEY,
        "--region",
        "us-east-1",
        "--json",
        str(out_json),
    ]
    if args.wrk_cpus:
        cmd += ["--wrk-cpus", args.wrk_cpus]
    if args.quiet:
        cmd += ["-q"]
    env = {**os.environ, "KMSBENCH_PYTHON": sys.executable}
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.pop(k, None)
    # kmsbench bounds every wrk run itself (d + timeout + 30 s); this is the backstop for the whole run
    per_run = args.duration + 10 + 30 + 15
    runs = len(args.ops) * (1 if moto is None else 2)
    bound = runs * (args.rounds * per_run + (args.warmup + 55 if args.warmup else 0)) + 300
    print("$ " + " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)  # own group: we stop wrk with it
    try:
        return proc.wait(timeout=bound)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"kmsbench did not finish within {bound} s (stopped)") from e
    finally:
        if proc.poll() is None or _group_alive(proc.pid):
            stop_group(proc, grace=3)


# -------------------------------------------------------------------------------------------- report ---
def _med(vals: Sequence[float | None]) -> float | None:
    v = [x for x in vals if x is not None]
    return statistics.median(v) if v else None


def _rng(vals: Sequence[float]) -> str:
    if not vals:
        return "n/a"
    m = statistics.median(vals)
    if len(vals) == 1:
        return f"{m:,.0f}"
    return f"{m:,.0f} [{min(vals):,.0f}-{max(vals):,.0f}]"


def _ms(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def _targets(op: str, rps: float | None, p99: float | None, ratio: float | None, conns: int) -> str:
    notes = []
    if op == "Encrypt" and rps is not None and p99 is not None:
        if conns == TARGET_CONNECTIONS:
            notes.append(f">=10k/s {'met' if rps >= TARGET_ENCRYPT_RPS else 'not met'}")
            notes.append(f"p99<10ms {'met' if p99 < TARGET_ENCRYPT_P99_MS else 'not met'}")
        else:
            notes.append(f"10k/s,p99: n/a (c={conns}, target is c=32)")
    if op == "CreateKey" and rps is not None:
        notes.append(f">=1k/s {'met' if rps >= TARGET_CREATEKEY_RPS else 'not met'}")
    if ratio is not None:
        notes.append(f">=50x moto {'met' if ratio >= TARGET_VS_MOTO else 'not met'}")
    return "; ".join(notes) or "-"


def _table(rows: list[list[str]], headers: list[str]) -> str:
    w = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w[i]) if i in (0, len(w) - 1) else c.rjust(w[i]) for i, c in enumerate(cells)
        ).rstrip()

    line = fmt(headers)
    return "\n".join([line, "-" * len(line), *(fmt(r) for r in rows)])


def summarize(
    data: dict[str, Any], openkms_url: str, moto_url: str | None, ops: Sequence[str], conns: int
) -> tuple[str, list[dict[str, Any]]]:
    def runs(op: str, url: str | None) -> list[dict[str, Any]]:
        rs = [
            r
            for r in data.get("runs", [])
            if r.get("op") == op and r.get("endpoint", "").rstrip("/") == (url or "").rstrip("/")
        ]
        return sorted(rs, key=lambda r: r.get("round", 0))

    rows, summary = [], []
    for op in ops:
        ko, mo = runs(op, openkms_url), runs(op, moto_url) if moto_url else []
        if not ko:
            continue
        k_rps = [r["ok_rps"] for r in ko]
        m_rps = [r["ok_rps"] for r in mo]
        ratios = [k["ok_rps"] / m["ok_rps"] for m, k in zip(mo, ko, strict=False) if m["ok_rps"] > 0]
        cpu_ratios = [
            k["server_us_per_req"] / m["server_us_per_req"]
            for m, k in zip(mo, ko, strict=False)
            if k.get("server_us_per_req") and m.get("server_us_per_req")
        ]
        s = {
            "op": op,
            "openkms_ok_rps": _med(k_rps),
            "openkms_ok_rps_all": k_rps,
            "openkms_p50_ms": _med([r["lat_ms"]["p50"] for r in ko]),
            "openkms_p99_ms": _med([r["lat_ms"]["p99"] for r in ko]),
            "openkms_server_us_per_req": _med([r.get("server_us_per_req") for r in ko]),
            "openkms_wrk_us_per_req": _med([r.get("wrk_us_per_req") for r in ko]),
            "openkms_errors": sum(r["errors"] for r in ko),
            "moto_ok_rps": _med(m_rps),
            "moto_ok_rps_all": m_rps,
            "moto_p50_ms": _med([r["lat_ms"]["p50"] for r in mo]),
            "moto_p99_ms": _med([r["lat_ms"]["p99"] for r in mo]),
            "moto_server_us_per_req": _med([r.get("server_us_per_req") for r in mo]),
            "moto_errors": sum(r["errors"] for r in mo),
            "ratio_ok_rps": _med(ratios),
            "ratio_ok_rps_all": ratios,
            "ratio_server_cpu_per_req": _med(cpu_ratios),
            "everything_else_cores_max": max(r.get("other_cores", 0.0) for r in ko + mo),
        }
        s["targets"] = _targets(op, s["openkms_ok_rps"], s["openkms_p99_ms"], s["ratio_ok_rps"], conns)
        summary.append(s)
        ratio = (
            "n/a"
            if not ratios
            else (
                f"{statistics.median(ratios):.1f}x"
                if len(ratios) == 1
                else f"{statistics.median(ratios):.1f}x [{min(ratios):.1f}-{max(ratios):.1f}]"
            )
        )
        row = [op, _rng(k_rps)]
        if moto_url:
            row += [_rng(m_rps), ratio]
        row += [f"{_ms(s['openkms_p50_ms'])} / {_ms(s['openkms_p99_ms'])}"]
        if moto_url:
            row += [f"{_ms(s['moto_p50_ms'])} / {_ms(s['moto_p99_ms'])}"]
        kc, mc = s["openkms_server_us_per_req"], s["moto_server_us_per_req"]
        row += [f"{kc:,.0f}" if kc is not None else "n/a"]
        if moto_url:
            row += [f"{mc:,.0f}" if mc is not None else "n/a"]
        row += [
            f"{s['everything_else_cores_max']:.2f}",
            f"{s['openkms_errors']}" + (f"/{s['moto_errors']}" if moto_url else ""),
            s["targets"],
        ]
        rows.append(row)
    headers = ["op", "openkms ok/s"]
    if moto_url:
        headers += ["moto ok/s", "openkms/moto"]
    headers += ["openkms p50/p99 ms"]
    if moto_url:
        headers += ["moto p50/p99 ms"]
    headers += ["openkms cpu us/req"]
    if moto_url:
        headers += ["moto cpu us/req"]
    headers += ["else max", "errors" + (" k/m" if moto_url else ""), "targets (informational)"]
    return _table(rows, headers), summary


def machine_notes() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    loadavg = ""
    with contextlib.suppress(OSError), open("/proc/loadavg") as f:
        loadavg = " ".join(f.read().split()[:3])
    versions = {}
    for pkg in ("openkms", "moto", "boto3", "botocore", "cryptography", "uvloop", "httptools", "orjson"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[pkg] = metadata.version(pkg)
    wrk = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        cp = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=5)
        wrk = (cp.stdout or cp.stderr).splitlines()[0].split(" [")[0] if (cp.stdout or cp.stderr) else ""
    return {
        "cpu": model,
        "ncpu": os.cpu_count(),
        "loadavg_before": loadavg,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
        "wrk": wrk,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


# ---------------------------------------------------------------------------------------------- main ---
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/load.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--duration", "-d", type=int, default=5, help="seconds per measured run (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="measured runs per op and server (default 3)")
    p.add_argument("--connections", "-c", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--workers", type=int, default=2, help="openkms worker processes (default 2)")
    p.add_argument(
        "--warmup", type=int, default=2, help="seconds of unmeasured load per op and server (0: none)"
    )
    p.add_argument(
        "--ops",
        default=",".join(DEFAULT_OPS),
        help="comma list of kmsbench ops (default %(default)s; also Sign, GenerateMac, GenerateRandom)",
    )
    p.add_argument("--no-peer", action="store_true", help="benchmark openkms alone (no moto_server)")
    p.add_argument(
        "--placement",
        choices=("auto", "shared", "split"),
        default="auto",
        help="split: servers on CPU 1 (taskset), wrk on CPU 0; shared: nothing pinned; "
        "auto (default): split for 1 worker, shared otherwise (perf-baseline method)",
    )
    p.add_argument(
        "--moto-cpus",
        metavar="CPUS",
        help="pin moto_server to these CPUs (taskset), whatever --placement says; perf-baseline.md measured "
        "moto with 1 (one GIL-bound process, 32 threads: pinned it spends ~2.5x more CPU per request here)",
    )
    p.add_argument("--jobs", action="store_true", help="keep openkms' background jobs on (default off)")
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for openkms (init, admin and server), e.g. OPENKMS_AUDIT_ENABLED=false; "
        "repeatable",
    )
    p.add_argument("--kmsbench", default=str(DEFAULT_KMSBENCH), help="path to kmsbench (default %(default)s)")
    p.add_argument("--json", metavar="OUT", help="write config, machine notes, summary and every run as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="only the final tables")
    a = p.parse_args(argv)
    if not 1 <= a.duration <= 600:
        p.error("--duration must be 1..600 s (kmsbench's pre-signed requests expire)")
    if not 1 <= a.rounds <= 20:
        p.error("--rounds must be 1..20")
    if not 1 <= a.connections <= 1000:
        p.error("--connections must be 1..1000")
    if not 1 <= a.workers <= 64:
        p.error("--workers must be 1..64")
    if not 0 <= a.warmup <= 60:
        p.error("--warmup must be 0..60 s")
    a.ops = [o.strip() for o in a.ops.split(",") if o.strip()]
    bad = [o for o in a.ops if o not in KNOWN_OPS]
    if bad or not a.ops:
        p.error(f"unknown op(s) {bad} (known: {', '.join(KNOWN_OPS)})")
    a.extra_env = {}
    for item in a.server_env:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("OPENKMS_"):
            p.error(f"--server-env wants OPENKMS_NAME=VALUE, got {item!r}")
        a.extra_env[name] = value
    if a.placement == "auto":
        a.placement = "split" if a.workers == 1 else "shared"
    if a.placement == "split" and (os.cpu_count() or 1) < 2:
        p.error("--placement split needs 2 CPUs")
    if a.placement == "split" and not shutil.which("taskset"):
        p.error("--placement split needs taskset (util-linux)")
    a.server_cpus = "1" if a.placement == "split" else None
    a.wrk_cpus = "0" if a.placement == "split" else ""
    return a


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    machine = machine_notes()
    servers: list[Server] = []
    work = Path(tempfile.mkdtemp(prefix="openkms-load-"))
    try:
        with _sigterm_as_interrupt():
            try:
                okms = start_openkms(work, a.workers, a.server_cpus, a.jobs, a.extra_env, servers)
                moto_cpus = a.moto_cpus or a.server_cpus
                moto = None if a.no_peer else start_moto(work, moto_cpus, servers)
                print(
                    f"openkms {okms.url} ({a.workers} worker(s)); moto_server {moto.url if moto else '-'}; "
                    f"placement {a.placement}; moto pinned to {moto_cpus or '-'}; data dir {work}; "
                    f"server env {a.extra_env or '-'}",
                    flush=True,
                )
                raw_json = work / "kmsbench.json"
                rc = run_kmsbench(a, okms, moto, raw_json)
                if not raw_json.exists():
                    print(f"load.py: kmsbench exited {rc} without results", file=sys.stderr)
                    return rc or 2
                data = json.loads(raw_json.read_text())
                text, summary = summarize(data, okms.url, moto.url if moto else None, a.ops, a.connections)
            except BenchError as e:
                print(f"load.py: {e}", file=sys.stderr)
                return 2
            except KeyboardInterrupt:
                print("load.py: interrupted, stopping servers", file=sys.stderr)
                return 130
    finally:
        for srv in reversed(servers):
            if not srv.stopped:
                stop_group(srv.proc)
                srv.stopped = True
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(
        f"openkms ({a.workers} worker(s)) vs {'moto_server' if not a.no_peer else '(no peer)'}: "
        f"c={a.connections}, {a.duration} s x {a.rounds} rounds, placement {a.placement}"
        f"{' (servers on CPU 1, wrk on CPU 0)' if a.placement == 'split' else ' (nothing pinned)'}; "
        f"{machine['ncpu']} CPUs, {machine['cpu']}, load before {machine['loadavg_before']}"
        + (f"; openkms env {a.extra_env}" if a.extra_env else "")
    )
    print(
        "ok/s: median [min-max] over rounds; openkms/moto: median [min-max] of adjacent-pair ratios; "
        "p50/p99 and cpu us/req: medians; 'else max': highest 'everything else' (cores) of any run"
    )
    print(text)
    noisy = [s["op"] for s in summary if s["everything_else_cores_max"] > NOISY_OTHER_CORES]
    if noisy:
        print(
            f"note: 'everything else' above {NOISY_OTHER_CORES} core in some runs of {', '.join(noisy)}: "
            "their ok/s is depressed; rely on ratios and cpu us/req, or rerun"
        )
    print(
        f"targets: Encrypt >= {TARGET_ENCRYPT_RPS:,}/s with p99 < {TARGET_ENCRYPT_P99_MS:.0f} ms at "
        f"c={TARGET_CONNECTIONS}; >= {TARGET_VS_MOTO:.0f}x moto; CreateKey >= {TARGET_CREATEKEY_RPS:,}/s "
        "(informational, never the exit status)"
    )
    if a.json:
        Path(a.json).write_text(
            json.dumps(
                {
                    "argv": sys.argv[1:],
                    "config": {k: v for k, v in vars(a).items() if k != "json"},
                    "machine": machine,
                    "summary": summary,
                    "kmsbench": data,
                },
                indent=1,
                default=str,
            )
        )
        print(f"wrote {a.json}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
