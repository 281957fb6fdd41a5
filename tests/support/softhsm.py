"""SoftHSM2 tokens for tests: each ``SoftHsm`` is its own token directory and SOFTHSM2_CONF file.

In CI (``CI=true``) a missing softhsm2 fails the test instead of skipping it (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import in_ci

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
USER_PIN = "87654321"
SO_PIN = "12345678"


def require_softhsm() -> None:
    if shutil.which("softhsm2-util") is None or not Path(MODULE).exists():
        if in_ci():
            pytest.fail("softhsm2 (softhsm2-util and libsofthsm2.so) is required in CI")
        pytest.skip("softhsm2 is not installed (apt-get install softhsm2)")


@dataclass
class SoftHsm:
    """A SoftHSM2 configuration with its own token directory under ``root``."""

    root: Path

    def __post_init__(self) -> None:
        require_softhsm()
        self.tokens.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            f"directories.tokendir = {self.tokens}\nobjectstore.backend = file\nlog.level = ERROR\n",
            encoding="utf-8",
        )

    @property
    def tokens(self) -> Path:
        return self.root / "tokens"

    @property
    def conf(self) -> Path:
        return self.root / "softhsm2.conf"

    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf)}

    def init_token(self, label: str, pin: str = USER_PIN) -> None:
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", SO_PIN],
            env={**os.environ, **self.env()},
            check=True,
            capture_output=True,
            timeout=60,
        )

    def remove_tokens(self) -> Path:
        """Simulate pulling the token out: move the token directory away; returns where it went."""
        away = self.root / "tokens.removed"
        self.tokens.rename(away)
        return away

    def restore_tokens(self) -> None:
        (self.root / "tokens.removed").rename(self.tokens)

    def write_pin_file(self, path: Path, pin: str = USER_PIN) -> Path:
        path.write_text(pin + "\n", encoding="utf-8")
        path.chmod(0o600)
        return path

    def change_pin(self, label: str, old: str, new: str) -> None:
        """C_SetPIN on the token, from a separate process (as another administrator would)."""
        import sys

        code = (
            "import pkcs11, sys\n"
            f"lib = pkcs11.lib({MODULE!r})\n"
            f"s = lib.get_token(token_label={label!r}).open(rw=True, user_pin={old!r})\n"
            f"s.set_pin({old!r}, {new!r})\n"
        )
        subprocess.run([sys.executable, "-c", code], env={**os.environ, **self.env()}, check=True, timeout=60)
