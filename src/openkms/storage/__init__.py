"""Storage plug point: one ``Store`` protocol (``base.py``) and one SQL implementation
(``sql.py``) for SQLite and PostgreSQL."""
