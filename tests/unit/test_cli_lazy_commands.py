"""The ``openkms`` group imports a subcommand's module only when it runs: the client commands
(``encrypt-file`` / ``decrypt-file``) start once per file and must not pay for the operator commands'
imports (server stack, storage), nor for rich when ``--quiet``; every command stays reachable."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# runs the real command line in a fresh interpreter, then reports which modules it imported
PROBE = """
import json, sys
from openkms.cli.main import main
try:
    main(sys.argv[1:], standalone_mode=False)
except Exception as exc:  # a missing input file: the command ran as far as its first check
    print(type(exc).__name__, exc, file=sys.stderr)
print(json.dumps(sorted(sys.modules)))
"""

SERVER_SIDE = ("openkms.cli.commands", "openkms.app", "openkms.config", "sqlalchemy", "rich.table")


def _modules(*args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


@pytest.mark.parametrize("command", ["encrypt-file", "decrypt-file"])
def test_client_commands_import_no_operator_modules(command: str) -> None:
    extra = ["-k", "arn:aws:kms:us-east-1:111122223333:key/x"] if command == "encrypt-file" else []
    modules = _modules(command, "no-such-input.bin", "-q", *extra)
    assert "openkms.cli.files_run" in modules  # the command did run
    assert not modules & set(SERVER_SIDE), modules & set(SERVER_SIDE)
    assert not any(name == "rich" or name.startswith("rich.") for name in modules)


def test_operator_commands_load_when_run() -> None:
    modules = _modules("jobs", "--help")
    assert "openkms.cli.commands" in modules
    assert "openkms.cli.files" not in modules


def test_help_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "openkms.cli.main", "--help"], capture_output=True, text=True, check=True
    )
    listed = {line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line.strip()}
    operator_side = {"admin", "audit", "init", "jobs", "operator", "policy", "server"}
    assert listed == {"encrypt-file", "decrypt-file", *operator_side}


def test_unknown_command_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "openkms.cli.main", "no-such-command"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "No such command 'no-such-command'" in result.stderr
