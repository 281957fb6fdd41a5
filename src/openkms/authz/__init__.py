"""Pure authorization decisions: policy documents, conditions, grants (kms-semantics.md section 6)."""
