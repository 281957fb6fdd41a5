"""Settings: one TOML file plus ``OPENKMS_*`` environment variables, read once into frozen, typed objects.

Precedence (highest first): explicit overrides (command-line flags), environment, TOML file, defaults.
Environment names are ``OPENKMS_<SECTION>_<FIELD>`` in upper case (``OPENKMS_SERVER_PORT=9000``), plus
``OPENKMS_DATA_DIR`` and ``OPENKMS_CONFIG``. Nothing else in the package reads ``os.environ``.
A bad value fails at start-up with ``ConfigError`` naming the setting; unknown keys are errors too, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8777
DEFAULT_DATA_DIR = "data"


class ConfigError(Exception):
    """A setting is missing, malformed or out of range; the message names it."""


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    workers: int = 1
    tls_cert_file: str = ""
    tls_key_file: str = ""
    max_body_bytes: int = 256 * 1024
    max_header_bytes: int = 16 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 60.0


@dataclass(frozen=True)
class StorageSettings:
    url: str = ""  # empty: sqlite file in the data directory
    sqlite_synchronous: str = "FULL"
    schema: str = ""  # PostgreSQL schema (search_path); empty = default


PKCS11_PIN_ENV = "OPENKMS_ROOT_OF_TRUST_PKCS11_PIN"


@dataclass(frozen=True)
class RootOfTrustSettings:
    provider: str = "file"  # "file", "pkcs11", or "shamir" (made by `openkms init --shamir N/T`)
    key_file: str = ""  # empty: <data_dir>/root.key
    pkcs11_module: str = "/usr/lib/softhsm/libsofthsm2.so"  # Debian's softhsm2 path
    pkcs11_token_label: str = ""
    pkcs11_key_label: str = "openkms-root-key"
    pkcs11_pin_file: str = ""  # the PIN's first line, mode 0600; read again at every reconnection
    pkcs11_pool_size: int = 4
    # Only from the environment variable OPENKMS_ROOT_OF_TRUST_PKCS11_PIN (never a flag or the TOML file,
    # see _check); repr=False keeps it out of logs and tracebacks that print the settings.
    pkcs11_pin: str = field(default="", repr=False)


@dataclass(frozen=True)
class KmsSettings:
    partition: str = "aws"
    regions: tuple[str, ...] = ()  # empty: serve any region named by the SigV4 credential scope
    max_skew_seconds: float = 300.0
    material_cache_size: int = 10000
    # Access keys of self-hosted integrated services, "ACCESS_KEY_ID=service" (e.g. "AKIAS3GATEWAY=s3"):
    # calls signed with them carry kms:ViaService=<service>.<region>.amazonaws.com (docs/authorization.md).
    service_access_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobsSettings:
    enabled: bool = True
    interval_seconds: float = 60.0


@dataclass(frozen=True)
class AuditSettings:
    enabled: bool = True  # false only to measure the audit log's cost (benchmarks/audit.py)
    sinks: tuple[str, ...] = ("database",)  # "database" and/or "file"
    file_path: str = ""  # empty: <data_dir>/audit/audit.jsonl
    file_max_bytes: int = 100 * 1024 * 1024  # rotate the JSON-lines file after this size
    file_keep: int = 0  # rotated files kept (0 = keep all)
    retention_days: float = 0.0  # database events older than this are deleted by the jobs runner (0 = keep)
    digest_interval_seconds: float = 60.0  # how often a signed digest commits to the chain
    max_batch: int = 2048  # events per group commit
    commit_interval_ms: float = 2.0  # at most one commit per interval per process (0: commit at once)
    max_pending: int = 100_000  # queued events per process before new requests fail closed


@dataclass(frozen=True)
class IamSettings:
    seed_file: str = ""  # TOML/YAML seed of accounts, users, roles, policies, access keys (applied at start)


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "INFO"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    server: ServerSettings = field(default_factory=ServerSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    root_of_trust: RootOfTrustSettings = field(default_factory=RootOfTrustSettings)
    kms: KmsSettings = field(default_factory=KmsSettings)
    jobs: JobsSettings = field(default_factory=JobsSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    iam: IamSettings = field(default_factory=IamSettings)

    @property
    def database_url(self) -> str:
        return self.storage.url or f"sqlite:///{(self.data_dir / 'openkms.db').resolve()}"

    @property
    def root_key_file(self) -> Path:
        return (
            Path(self.root_of_trust.key_file) if self.root_of_trust.key_file else self.data_dir / "root.key"
        )

    @property
    def audit_file(self) -> Path:
        return Path(self.audit.file_path) if self.audit.file_path else self.data_dir / "audit" / "audit.jsonl"

    @property
    def bootstrap_credentials_file(self) -> Path:
        return self.data_dir / "bootstrap-credentials"


_SECTIONS: dict[str, type[Any]] = {
    "server": ServerSettings,
    "storage": StorageSettings,
    "root_of_trust": RootOfTrustSettings,
    "kms": KmsSettings,
    "jobs": JobsSettings,
    "logging": LoggingSettings,
    "audit": AuditSettings,
    "iam": IamSettings,
}


def load_settings(
    config_file: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read settings once. ``overrides`` uses dotted names (``"server.port"``, ``"data_dir"``)."""
    env = dict(os.environ if environ is None else environ)
    if config_file is None and env.get("OPENKMS_CONFIG"):
        config_file = Path(env["OPENKMS_CONFIG"])
    raw: dict[str, Any] = {}
    if config_file is not None:
        try:
            raw = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {config_file} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from exc

    values: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    data_dir: Any = raw.pop("data_dir", DEFAULT_DATA_DIR)
    for section, content in raw.items():
        if section not in _SECTIONS or not isinstance(content, dict):
            raise ConfigError(f"unknown setting '{section}' in {config_file}")
        values[section].update(content)

    # SECURITY: the PKCS#11 PIN is accepted from the environment only (OPENKMS_ROOT_OF_TRUST_PKCS11_PIN,
    # read by the loop below); a TOML file or a command-line flag would leave it in a file or process list.
    if "pkcs11_pin" in values["root_of_trust"]:
        raise ConfigError(
            f"setting 'root_of_trust.pkcs11_pin' is not allowed in {config_file}; use "
            f"root_of_trust.pkcs11_pin_file or the {PKCS11_PIN_ENV} environment variable"
        )
    if "OPENKMS_DATA_DIR" in env:
        data_dir = env["OPENKMS_DATA_DIR"]
    for section, cls in _SECTIONS.items():
        for f in dataclasses.fields(cls):
            name = f"OPENKMS_{section}_{f.name}".upper()
            if name in env:
                values[section][f.name] = env[name]

    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        if dotted == "root_of_trust.pkcs11_pin":
            raise ConfigError(
                "the PKCS#11 PIN cannot be given on the command line; use root_of_trust.pkcs11_pin_file "
                f"or the {PKCS11_PIN_ENV} environment variable"
            )
        if dotted == "data_dir":
            data_dir = value
            continue
        section, _, name = dotted.partition(".")
        if section not in _SECTIONS:
            raise ConfigError(f"unknown setting '{dotted}'")
        values[section][name] = value

    sections = {name: _build(name, cls, values[name]) for name, cls in _SECTIONS.items()}
    settings = Settings(data_dir=Path(str(data_dir)), **sections)
    _check(settings)
    return settings


def _build(section: str, cls: type[Any], raw: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in known:
            raise ConfigError(f"unknown setting '{section}.{name}'")
        kwargs[name] = _coerce(f"{section}.{name}", hints[name], value)
    return cls(**kwargs)


def _coerce(name: str, hint: Any, value: Any) -> Any:
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if hint is int:
            if isinstance(value, bool):
                raise ValueError("expected an integer")
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                raise ValueError("expected a string")
            return value
        origin = typing.get_origin(hint)
        if origin is tuple or isinstance(hint, types.GenericAlias):
            if isinstance(value, str):
                items = [v.strip() for v in value.split(",") if v.strip()]
            elif isinstance(value, list):
                items = [str(v) for v in value]
            else:
                raise ValueError("expected a list")
            return tuple(items)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid value for setting '{name}': {value!r} ({exc})") from exc
    raise ConfigError(f"setting '{name}' has an unsupported type")  # pragma: no cover


def _check(s: Settings) -> None:
    def bad(name: str, why: str) -> ConfigError:
        return ConfigError(f"invalid value for setting '{name}': {why}")

    if not 0 <= s.server.port <= 65535:
        raise bad("server.port", "must be between 0 and 65535")
    if not 1 <= s.server.workers <= 64:
        raise bad("server.workers", "must be between 1 and 64")
    if bool(s.server.tls_cert_file) != bool(s.server.tls_key_file):
        raise bad("server.tls_cert_file", "tls_cert_file and tls_key_file must be set together")
    if s.server.max_body_bytes < 16 * 1024:
        raise bad("server.max_body_bytes", "must be at least 16384")
    if s.storage.sqlite_synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise bad("storage.sqlite_synchronous", "must be one of OFF, NORMAL, FULL, EXTRA")
    if s.storage.url and not s.storage.url.startswith(("sqlite:", "postgresql")):
        raise bad("storage.url", "only sqlite:/// and postgresql+psycopg:// URLs are supported")
    if s.root_of_trust.provider not in ("file", "pkcs11", "shamir"):
        raise bad("root_of_trust.provider", "must be 'file', 'pkcs11' or 'shamir'")
    if s.root_of_trust.provider == "pkcs11":
        _check_pkcs11(s.root_of_trust, bad)
    if s.kms.partition not in ("aws", "aws-cn", "aws-us-gov"):
        raise bad("kms.partition", "must be aws, aws-cn or aws-us-gov")
    if not 1 <= s.kms.max_skew_seconds <= 3600:
        raise bad("kms.max_skew_seconds", "must be between 1 and 3600")
    for item in s.kms.service_access_keys:
        access_key_id, sep, service = item.partition("=")
        if not sep or not access_key_id.strip() or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", service.strip()):
            raise bad("kms.service_access_keys", f"{item!r} is not ACCESS_KEY_ID=service (e.g. AKIA...=s3)")
    if s.kms.material_cache_size < 1:
        raise bad("kms.material_cache_size", "must be at least 1")
    if s.jobs.interval_seconds <= 0:
        raise bad("jobs.interval_seconds", "must be positive")
    if not s.audit.sinks or set(s.audit.sinks) - {"database", "file"}:
        raise bad("audit.sinks", "must list 'database' and/or 'file'")
    if s.audit.file_max_bytes < 4096:
        raise bad("audit.file_max_bytes", "must be at least 4096")
    if s.audit.file_keep < 0:
        raise bad("audit.file_keep", "must be 0 (keep all) or more")
    if s.audit.retention_days < 0:
        raise bad("audit.retention_days", "must be 0 (keep) or positive")
    if s.audit.digest_interval_seconds <= 0:
        raise bad("audit.digest_interval_seconds", "must be positive")
    if not 0 <= s.audit.commit_interval_ms <= 1000:
        raise bad("audit.commit_interval_ms", "must be between 0 and 1000")
    if not 1 <= s.audit.max_batch <= 100_000:
        raise bad("audit.max_batch", "must be between 1 and 100000")
    if s.audit.max_pending < s.audit.max_batch:
        raise bad("audit.max_pending", "must be at least audit.max_batch")
    if s.logging.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise bad("logging.level", "must be DEBUG, INFO, WARNING or ERROR")


def _check_pkcs11(r: RootOfTrustSettings, bad: Any) -> None:
    if not r.pkcs11_module:
        raise bad("root_of_trust.pkcs11_module", "must name the PKCS#11 module (.so)")
    if not r.pkcs11_token_label:
        raise bad("root_of_trust.pkcs11_token_label", "must be set when the provider is pkcs11")
    if not r.pkcs11_key_label:
        raise bad("root_of_trust.pkcs11_key_label", "must not be empty")
    if not 1 <= r.pkcs11_pool_size <= 64:
        raise bad("root_of_trust.pkcs11_pool_size", "must be between 1 and 64")
    if bool(r.pkcs11_pin_file) == bool(r.pkcs11_pin):
        raise bad(
            "root_of_trust.pkcs11_pin_file",
            f"set exactly one of pkcs11_pin_file and the {PKCS11_PIN_ENV} environment variable",
        )
