"""``openkms`` command line: server, init, admin, jobs, audit, operator, policy; encrypt-file, decrypt-file.

The group imports a subcommand's module only when that subcommand runs (or ``--help`` lists them). The
client commands (``encrypt-file`` / ``decrypt-file``, SigV4 over HTTP like any AWS client) start once per
file, and importing the operator commands with them (server stack, storage, rich tables) cost ~0.1 s of CPU
per file for nothing (benchmarks/envelope.py, docs/performance.md).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

# name -> (module, attribute); everything else is an operator command in openkms.cli.commands
CLIENT_COMMANDS = {
    "encrypt-file": ("openkms.cli.files", "encrypt_file"),
    "decrypt-file": ("openkms.cli.files", "decrypt_file"),
}


def _operator_commands() -> click.Group:
    from openkms.cli.commands import commands

    return commands


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*CLIENT_COMMANDS, *_operator_commands().list_commands(ctx)])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in CLIENT_COMMANDS:
            module, attribute = CLIENT_COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command)
            return command
        return _operator_commands().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup)
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data directory (default ./data).")
@click.option(
    "--config", type=click.Path(path_type=Path, exists=True, dir_okay=False), help="TOML config file."
)
@click.version_option(package_name="openkms")
def main(data_dir: Path | None, config: Path | None) -> None:
    """openkms: a self-hosted key management service that speaks the AWS KMS API."""


if __name__ == "__main__":  # pragma: no cover
    main()
