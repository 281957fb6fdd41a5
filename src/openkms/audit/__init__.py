"""The audit log: one CloudTrail-shaped record per request, hash-chained, group-committed, verifiable.

Modules: ``fields`` (what a record may contain), ``events`` (records from outcomes), ``writer`` (group
commit, fail closed), ``sink`` / ``db_sink`` / ``file_sink`` (where records go), ``chain`` / ``verify`` /
``verify_io`` (tamper evidence), ``signing`` (the digest key), ``reader`` / ``lookup`` (queries,
CloudTrail LookupEvents).
"""
