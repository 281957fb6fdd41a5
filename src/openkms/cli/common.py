"""Helpers shared by the command groups: settings, clean operator errors, console output."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console

from openkms.config import ConfigError, Settings, load_settings

console = Console(highlight=False, soft_wrap=True)


class OperatorError(click.ClickException):
    """A start-up or operator failure with a message for the operator (no traceback)."""


def _fail_cleanly(func: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        from openkms.app import NotInitializedError
        from openkms.rootoftrust.base import RootOfTrustError

        try:
            func(*args, **kwargs)
        except (ConfigError, NotInitializedError, RootOfTrustError) as exc:
            raise OperatorError(str(exc)) from exc
        except SQLAlchemyError as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise OperatorError(f"the database could not be used: {first_line}") from exc

    return wrapper


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    root = ctx.find_root().params
    merged = {"data_dir": root.get("data_dir"), **overrides}
    try:
        return load_settings(root.get("config"), overrides=merged)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def parse_instant(text: str) -> float:
    """An ISO-8601 instant (``2025-01-01T12:00:00Z``; no zone means UTC) or epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        instant = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO-8601 instant: {text}") from exc
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=dt.UTC)
    return instant.timestamp()
