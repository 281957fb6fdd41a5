"""Root-of-trust plug point: wraps and unwraps the service root key, and nothing else.

Implementations: :class:`~openkms.rootoftrust.file.FileRootOfTrust` (a key-encryption key in a local
file) and :class:`~openkms.rootoftrust.pkcs11.Pkcs11RootOfTrust` (a non-extractable key in a PKCS#11
token).  Shamir plugs in behind the same :class:`~openkms.rootoftrust.base.RootOfTrust` protocol.  All
pass ``tests/integration/test_root_of_trust_conformance.py``.
"""

from openkms.rootoftrust.base import RootOfTrust, RootOfTrustError

__all__ = ["RootOfTrust", "RootOfTrustError"]
