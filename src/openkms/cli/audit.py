"""``openkms audit``: verify the log, read it (tail, query, export), export the digest public key."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click
import orjson

from openkms.cli.common import OperatorError, _fail_cleanly, _settings, console, parse_instant
from openkms.cli.shares import share_file_option
from openkms.config import Settings


@click.group()
def audit() -> None:
    """The audit log: verify it, read it, export it."""


# --- keys -------------------------------------------------------------------------------------------------


def _confirmed_keys(ctx: click.Context, settings: Settings, *, strict: bool) -> dict[str, bytes]:
    """Public keys from the database, each confirmed against its wrapped seed through the key hierarchy
    (strict: on a shamir deployment the operator gives shares; otherwise a failure only warns)."""
    from openkms.app import load_keyring, open_audit_engine, open_store
    from openkms.audit.signing import SigningKeyError, stored_keys, unwrap_signer
    from openkms.cli.shares import stored_root

    engine = open_audit_engine(settings)
    try:
        records = stored_keys(engine)
    finally:
        engine.dispose()
    if not records:
        raise OperatorError("no audit signing key exists yet (run 'openkms init' or start the server)")
    try:
        store = open_store(settings)
        try:
            keyring = load_keyring(settings, store, stored_root(ctx, settings, store) if strict else None)
        finally:
            store.close()
        for record in records:
            unwrap_signer(record, keyring)
    except SigningKeyError as exc:
        raise OperatorError(str(exc)) from exc
    except Exception as exc:
        if strict:
            raise
        click.echo(
            f"warning: could not confirm the stored public key ({type(exc).__name__}); "
            "pass --public-key with the key exported by 'openkms audit public-key'",
            err=True,
        )
    return {r.key_id: r.public_key for r in records}


@share_file_option
@audit.command("public-key")
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="Write the PEM to this file.")
@click.pass_context
@_fail_cleanly
def public_key(ctx: click.Context, output: Path | None) -> None:
    """Print the public key (PEM) that verifies the audit log's signed digests."""
    from openkms.crypto.digest_signing import public_key_pem

    keys = _confirmed_keys(ctx, _settings(ctx), strict=True)
    pem = "".join(public_key_pem(raw) for raw in keys.values())
    if output is None:
        click.echo(pem, nl=False)
    else:
        output.write_text(pem, encoding="ascii")
        console.print(f"wrote {output} (key id {', '.join(keys)})")


# --- verify -----------------------------------------------------------------------------------------------


def _pinned_keys(paths: tuple[Path, ...]) -> dict[str, bytes]:
    from openkms.crypto.digest_signing import DigestSignatureError, key_id, load_public_key_pem

    keys: dict[str, bytes] = {}
    for path in paths:
        data = path.read_bytes()
        for block in data.split(b"-----END PUBLIC KEY-----"):
            if b"-----BEGIN PUBLIC KEY-----" not in block:
                continue
            try:
                raw = load_public_key_pem(block.strip() + b"\n-----END PUBLIC KEY-----\n")
            except DigestSignatureError as exc:
                raise OperatorError(f"{path}: {exc}") from exc
            keys[key_id(raw)] = raw
    if not keys:
        raise OperatorError("no Ed25519 public key found in --public-key")
    return keys


_SHOWN_PROBLEMS = 20
_PEM_FILE = click.Path(path_type=Path, exists=True, dir_okay=False)


@audit.command("verify")
@click.option(
    "--file", "files", multiple=True, type=click.Path(path_type=Path, exists=True),
    help="Verify JSON-lines files (the file sink's current file or directory, or an export) instead.",
)  # fmt: skip
@click.option(
    "--public-key", "public_keys", multiple=True, type=_PEM_FILE,
    help="PEM public key(s) to trust (from 'openkms audit public-key'); default: the stored key, confirmed.",
)  # fmt: skip
@click.pass_context
@_fail_cleanly
def verify(ctx: click.Context, files: tuple[Path, ...], public_keys: tuple[Path, ...]) -> None:
    """Check the hash chain and the signed digests; report the first altered, removed, reordered or
    inserted event. Exit status 1 when anything is wrong."""
    from openkms.app import open_audit_engine
    from openkms.audit.file_sink import chain_files
    from openkms.audit.verify_io import verify_database, verify_files

    settings = _settings(ctx)
    keys = _pinned_keys(public_keys) if public_keys else _confirmed_keys(ctx, settings, strict=False)
    targets: list[tuple[str, Any]] = []
    if files:
        for path in files:
            if path.is_dir():
                path = path / settings.audit_file.name
            group = chain_files(path) if path.name == settings.audit_file.name else [path]
            targets.append((str(path), lambda group=group: verify_files(group, keys)))
    else:
        if "database" in settings.audit.sinks:
            engine = open_audit_engine(settings)
            targets.append(("database", lambda: verify_database(engine, keys)))
        if "file" in settings.audit.sinks:
            group = chain_files(settings.audit_file)
            targets.append((str(settings.audit_file), lambda: verify_files(group, keys)))
    failed = False
    for name, run in targets:
        report = run()
        if report.ok:
            span = f"seq {report.first_seq} to {report.last_seq}" if report.events else "no events"
            console.print(
                f"{name}: [green]OK[/green] - {report.events} event(s) ({span}), {report.digests} signed "
                f"digest(s) verified (last covers seq {report.last_digest_seq})"
            )
        else:
            failed = True
            console.print(f"{name}: [red]FAILED[/red] - first problem: {report.first_problem}")
            ranked = sorted(report.problems, key=lambda p: (p.seq is None, p.seq or 0))
            for problem in ranked[:_SHOWN_PROBLEMS]:
                console.print(f"  {problem}")
            if len(ranked) > _SHOWN_PROBLEMS:
                console.print(f"  ... and {len(ranked) - _SHOWN_PROBLEMS} more")
        for note in report.notes:
            console.print(f"  note: {note}")
    if failed:
        sys.exit(1)


# --- reading ----------------------------------------------------------------------------------------------


def _reader(settings: Settings) -> Any:
    from openkms.app import open_audit_engine
    from openkms.audit.reader import AuditReader

    if "database" not in settings.audit.sinks:
        raise OperatorError("the database sink is off (audit.sinks); read the JSON-lines file instead")
    return AuditReader(open_audit_engine(settings))


def _line(event: Any) -> str:
    record = orjson.loads(event.event)
    who = (record.get("userIdentity") or {}).get("arn") or record.get("userIdentity", {}).get(
        "invokedBy", "-"
    )
    keys = ",".join(r["ARN"].rpartition("/")[2] for r in record.get("resources") or ()) or "-"
    error = event.error_code or "ok"
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event.event_time))
    head = f"{event.seq:>8}  {when}  {event.event_name:<32} {error:<28}"
    return f"{head} {who}  keys={keys}  request={event.request_id or '-'}"


def _emit(events: list[Any], as_json: bool) -> None:
    for event in events:
        if as_json:
            click.echo(event.event)
        else:
            click.echo(_line(event))


@audit.command("tail")
@click.option("-n", "--lines", default=20, show_default=True, help="How many recent events to show first.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events as they are committed.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between polls with --follow.")
@click.option("--json", "as_json", is_flag=True, help="Print the CloudTrail records (JSON lines).")
@click.pass_context
@_fail_cleanly
def tail(ctx: click.Context, lines: int, follow: bool, interval: float, as_json: bool) -> None:
    """Show the newest events (oldest first); with --follow, keep going."""
    from openkms.audit.reader import EventFilter

    reader = _reader(_settings(ctx))
    events = list(reversed(reader.query(EventFilter(), limit=max(lines, 0)))) if lines > 0 else []
    _emit(events, as_json)
    last = events[-1].seq if events else reader.max_seq()
    while follow:
        time.sleep(interval)
        new = reader.query(EventFilter(), limit=1000, after_seq=last, newest_first=False)
        _emit(new, as_json)
        if new:
            last = new[-1].seq
        sys.stdout.flush()


@audit.command("query")
@click.option("--start", help="Events at or after this instant (ISO-8601 or epoch seconds).")
@click.option("--end", help="Events before this instant.")
@click.option("--key", help="Events that touched this key (key id or key ARN).")
@click.option("--event-name", help="Operation or service event name, e.g. Encrypt, RotateKey.")
@click.option("--principal", help="Caller: principal ARN, IAM user name, or root.")
@click.option("--error-code", help="Only failures with this error code.")
@click.option("--account", help="Only events of this account (recipientAccountId).")
@click.option("--request-id", help="The event of one request.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@click.option("--page-token", type=int, help="Continue a previous query (printed after a full page).")
@click.option("--json", "as_json", is_flag=True, help="Print the CloudTrail records (JSON lines).")
@click.pass_context
@_fail_cleanly
def query(ctx: click.Context, **options: Any) -> None:
    """Search the audit log, newest first, one page at a time."""
    from openkms.audit.reader import EventFilter

    principal = options["principal"]
    key = options["key"]
    f = EventFilter(
        start=parse_instant(options["start"]) if options["start"] else None,
        end=parse_instant(options["end"]) if options["end"] else None,
        key_arn=key if key and key.startswith("arn:") else None,
        key_id=key if key and not key.startswith("arn:") else None,
        event_name=options["event_name"],
        principal=principal if principal and principal.startswith("arn:") else None,
        user_name=principal if principal and not principal.startswith("arn:") else None,
        error_code=options["error_code"],
        account=options["account"],
        request_id=options["request_id"],
    )
    limit = options["limit"]
    events = _reader(_settings(ctx)).query(f, limit=limit + 1, before_seq=options["page_token"])
    _emit(events[:limit], options["as_json"])
    if len(events) > limit:
        click.echo(f"(more: --page-token {events[limit - 1].seq})", err=True)


@audit.command("export")
@click.option("--start", help="From this instant (ISO-8601 or epoch seconds).")
@click.option("--end", help="Until this instant (exclusive).")
@click.option(
    "--output", type=click.Path(path_type=Path, dir_okay=False), help="File to write (default stdout)."
)
@click.option(
    "--format", "fmt", type=click.Choice(["chain", "cloudtrail"]), default="chain", show_default=True,
    help="chain: records with seq/prev/hash and the signed digests (verifiable with 'audit verify --file'); "
    "cloudtrail: the CloudTrail records only.",
)  # fmt: skip
@click.pass_context
@_fail_cleanly
def export(ctx: click.Context, start: str | None, end: str | None, output: Path | None, fmt: str) -> None:
    """Write events as JSON lines: every event between the first and last one in the time range."""
    reader = _reader(_settings(ctx))
    span = reader.seq_range(parse_instant(start) if start else None, parse_instant(end) if end else None)
    handle: IO[bytes] = output.open("wb") if output is not None else sys.stdout.buffer
    try:
        count = 0
        for line in _export_lines(reader, span, fmt):
            handle.write(line)
            count += line.startswith(b'{"seq"') or fmt == "cloudtrail"
    finally:
        if output is not None:
            handle.close()
    if output is not None:
        console.print(f"exported {count} event(s) to {output}")


def _export_lines(reader: Any, span: tuple[int, int] | None, fmt: str) -> Iterator[bytes]:
    from openkms.audit.chain import GENESIS_HEX, digest_line, event_line, iso_time

    if span is None:
        return
    first, last = span
    if fmt == "cloudtrail":
        for event in reader.iter_events(first, last):
            yield event.event.encode("utf-8") + b"\n"
        return
    header = {
        "chain": "database",
        "firstSeq": first,
        "firstPrev": reader.hash_before(first) or GENESIS_HEX,
        "lastSeq": last,
        "exportedAt": iso_time(time.time()),
    }
    yield orjson.dumps({"export": header}) + b"\n"
    digests: dict[int, list[Any]] = {}
    for d in reader.digests():
        if first <= d.last_seq <= last:
            digests.setdefault(d.last_seq, []).append(d)
    for event in reader.iter_events(first, last):
        body = event.event.encode("utf-8")
        yield event_line(event.seq, bytes.fromhex(event.prev_hash), bytes.fromhex(event.hash), body) + b"\n"
        for d in digests.get(event.seq, ()):
            yield digest_line(d.body.encode("utf-8"), d.signature) + b"\n"
