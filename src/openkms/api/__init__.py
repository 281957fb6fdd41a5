"""The AWS JSON 1.1 edge: HTTP, SigV4, the operation table, request/response shapes. No SQL, no hazmat."""
