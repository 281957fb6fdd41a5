"""Root-of-trust plug point: wraps and unwraps the service root key, and nothing else.

Implementations: :class:`~openkms.rootoftrust.file.FileRootOfTrust` (a key-encryption key in a local
file).  Shamir and PKCS#11 implementations plug in behind the same
:class:`~openkms.rootoftrust.base.RootOfTrust` protocol.
"""

from openkms.rootoftrust.base import RootOfTrust, RootOfTrustError

__all__ = ["RootOfTrust", "RootOfTrustError"]
