"""Database access: DSNs, the embedded server, the pool with tenant transactions, migrations."""
