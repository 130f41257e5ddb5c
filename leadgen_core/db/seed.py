"""Reference data loaded by the migrator: the SSIC 2025 classification into ssic_ref."""

from __future__ import annotations

import csv
import io
from importlib import resources

import psycopg

SSIC_RESOURCE = "ssic2025.csv"
SSIC_COLUMNS = ("code", "level", "title", "parent", "definition", "cross_references", "examples")


def seed_reference_data(conn: psycopg.Connection) -> int:
    """Load ssic_ref when it is empty; return the rows loaded (0 when already there)."""
    with conn.transaction():
        row = conn.execute("SELECT count(*) FROM ssic_ref").fetchone()
        if row and row[0]:
            return 0
        text = resources.files("leadgen_core.data").joinpath(SSIC_RESOURCE).read_text(encoding="utf-8")
        rows = list(csv.DictReader(io.StringIO(text)))
        with conn.cursor().copy(
            "COPY ssic_ref (code, level, title, parent, definition, cross_references, examples) FROM STDIN"
        ) as copy:
            for r in rows:
                copy.write_row([r.get(c) or None for c in SSIC_COLUMNS])
        return len(rows)
