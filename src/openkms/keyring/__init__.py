"""Key hierarchy: the unsealed root key(s), wrapping of key material and secrets, material cache."""

from openkms.keyring.keyring import Keyring, KeyringError

__all__ = ["Keyring", "KeyringError"]
