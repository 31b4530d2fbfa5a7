"""Time-series store: one narrow interface, a SQL backend (SQLite / PostgreSQL)."""
