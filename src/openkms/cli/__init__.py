"""Operator commands (``openkms ...``): they work in-process on the data directory and configuration."""
