"""The ACRA registry: columns, SSIC 2025, row validation, CSV and CKAN API sources, a synthetic registry.

    columns     STAGING_COLUMNS (ACRA's names, staging order) and MAX_LENGTHS
    ssic        SSIC 2025 from the packaged CSV: SsicEntry, load_ssic(), subclass_codes()
    validate    validate_row(raw, known_ssic=...) -> StagingRow | Reject
    csv_source  iter_csv(path) -> (line, raw row); validate_csv(path, known_ssic=...)
    api         fetch_datastore(...): CKAN datastore_search paging with retries
    synth       generate_rows(n, seed=..., malformed_rate=...), write_csv(path, n, ...)

Pure domain code: no orchestration imports.
"""

from __future__ import annotations

from leadgen_core.acra.api import fetch_datastore
from leadgen_core.acra.columns import MAX_LENGTHS, STAGING_COLUMNS
from leadgen_core.acra.csv_source import iter_csv, validate_csv
from leadgen_core.acra.ssic import SsicEntry, load_ssic, ssic_by_code, subclass_codes, subclasses
from leadgen_core.acra.synth import MALFORMED_KINDS, generate_rows, write_csv
from leadgen_core.acra.validate import BAD_SHAPE_KEY, Reject, StagingRow, validate_row

__all__ = [
    "BAD_SHAPE_KEY",
    "MALFORMED_KINDS",
    "MAX_LENGTHS",
    "STAGING_COLUMNS",
    "Reject",
    "SsicEntry",
    "StagingRow",
    "fetch_datastore",
    "generate_rows",
    "iter_csv",
    "load_ssic",
    "ssic_by_code",
    "subclass_codes",
    "subclasses",
    "validate_csv",
    "validate_row",
    "write_csv",
]
