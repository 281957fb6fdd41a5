"""Cryptographic primitives of openkms: the only package that imports ``cryptography.hazmat``.

Modules:

* :mod:`openkms.crypto.context` -- canonical encoding of an encryption context (the AAD suffix).
* :mod:`openkms.crypto.symmetric` -- the versioned symmetric ciphertext blob (seal / open).
* :mod:`openkms.crypto.wrap` -- generic authenticated wrapping, sub-key derivation, HMAC helpers.
* :mod:`openkms.crypto.errors` -- the exceptions raised by the above.

This package imports nothing else from ``openkms``; callers translate its exceptions into API errors.
"""
