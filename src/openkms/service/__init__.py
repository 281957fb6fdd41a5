"""What KMS does: key lifecycle and state machine, cryptographic operations, aliases, tags, rotation.

The service layer is the one place both front doors (the AWS JSON API and, later, the console and the
operator CLI) call, so key-state checks, authorization and audit apply identically to every caller.
"""
