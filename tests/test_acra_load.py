"""ACRA files that must not damage the registry: a header short of the upsert's columns, an
oversized field hiding rows, the same UEN twice.

Real: the CSV parser on files written to a temporary directory, the loader, the `leadgen acra
load` command (click's runner), and the session Postgres (staging, rejects, companies). Nothing
is simulated.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from leadgen_core.acra import STAGING_COLUMNS, Reject, StagingRow, iter_csv, subclass_codes, validate_row
from leadgen_core.acra.columns import UPSERT_COLUMNS
from leadgen_core.acra.csv_source import RAW_HEAD_CHARS
from leadgen_core.errors import ConfigError
from leadgen_core.registry import load as registry_load
from leadgen_core.registry.upsert import _UPSERT_TEMPLATE
from leadgen_dagster.cli import main

KNOWN = subclass_codes()


def row_values(uen: str, name: str, ssic: str = "52101") -> list[str]:
    values = dict.fromkeys(STAGING_COLUMNS, "na")
    values.update(
        uen=uen,
        entity_name=name,
        entity_status_description="Live Company",
        registration_incorporation_date="2019-04-01",
        street_name="UBI AVENUE 1",
        postal_code="408933",
        primary_ssic_code=ssic,
        primary_ssic_description="GENERAL WAREHOUSING",
    )
    return list(values.values())


def write(path: Path, rows: list[list[str]], header: tuple[str, ...] = STAGING_COLUMNS) -> Path:
    path.write_text("\n".join(",".join(r) for r in [list(header), *rows]) + "\n", encoding="utf-8")
    return path


def q(dsn: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


# --- 12: a header short of a column the upsert reads ----------------------------------------


def test_upsert_columns_are_every_staging_column_the_upsert_reads() -> None:
    read = set(re.findall(r"\bs\.([a-z_0-9]+)", _UPSERT_TEMPLATE))
    assert read == set(UPSERT_COLUMNS)


def test_header_without_upsert_columns_is_refused_naming_them(tmp_path: Path) -> None:
    header = tuple(c for c in STAGING_COLUMNS if c not in ("primary_ssic_code", "entity_status_description"))
    path = tmp_path / "short.csv"
    path.write_text(",".join(header) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        list(iter_csv(path))
    message = str(caught.value)
    assert "\n" not in message
    assert "entity_status_description, primary_ssic_code" in message


def test_two_column_csv_stages_nothing_and_leaves_companies_whole(clean_db, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LEADGEN_DATABASE_URL", clean_db.owner_dsn)
    runner = CliRunner()
    full = write(tmp_path / "full.csv", [row_values("201912345K", "Lion Harbour Pte. Ltd.")])
    assert runner.invoke(main, ["acra", "load", str(full), "--date", "2026-03-02"]).exit_code == 0
    before = q(clean_db.owner_dsn, "SELECT industry_code, incorporation_year, entity_status FROM companies")
    assert before == [("52101", 2019, "Live Company")]

    two = tmp_path / "two.csv"
    two.write_text("uen,entity_name\n201912345K,Lion Harbour Pte. Ltd.\n53000001A,New Co\n", encoding="utf-8")
    out = runner.invoke(main, ["acra", "load", str(two), "--date", "2026-03-03"])
    assert out.exit_code == 2
    lines = out.output.strip().splitlines()
    assert len(lines) == 1
    for column in ("primary_ssic_code", "registration_incorporation_date", "entity_status_description"):
        assert column in lines[0]
    assert q(clean_db.owner_dsn, "SELECT count(*) FROM staging_acra_companies WHERE snapshot_date = '2026-03-03'") == [
        (0,)
    ]
    assert q(clean_db.owner_dsn, "SELECT industry_code, incorporation_year, entity_status FROM companies") == before


def test_datastore_records_without_upsert_columns_stage_nothing(clean_db) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    from collections.abc import AsyncIterator
    from contextlib import contextmanager
    from datetime import date

    async def records() -> AsyncIterator[dict[str, object]]:
        yield {"uen": "201912345K", "entity_name": "Lion Harbour Pte. Ltd."}

    @contextmanager
    def conn():  # type: ignore[no-untyped-def]
        with psycopg.connect(clean_db.owner_dsn) as c, c.transaction():
            yield c

    with pytest.raises(ConfigError, match="primary_ssic_code"):
        asyncio.run(registry_load.load_records(records(), conn=conn, snapshot_date=date(2026, 3, 2), source="t"))
    assert q(clean_db.owner_dsn, "SELECT count(*) FROM staging_acra_companies") == [(0,)]


# --- 13: an oversized field ------------------------------------------------------------------


def test_oversized_field_is_one_reject_and_its_embedded_lines_never_become_rows(tmp_path: Path) -> None:
    embedded = ",".join(row_values("53999999Z", "Smuggled In Pte. Ltd."))
    huge = row_values("201912346K", "Too Long Pte. Ltd.")
    huge[STAGING_COLUMNS.index("street_name")] = '"' + "X" * 140_000 + "\n" + embedded + "\n" + "Y" * 500 + '"'
    path = write(
        tmp_path / "huge.csv",
        [row_values("201912345K", "Before Pte. Ltd."), huge, row_values("53123456A", "After Pte. Ltd.")],
    )
    results = [(line, validate_row(raw, known_ssic=KNOWN)) for line, raw in iter_csv(path)]
    outcomes = [r.reason if isinstance(r, Reject) else r.uen for _, r in results]
    assert outcomes == ["201912345K", "oversized_record", "53123456A"]
    assert [line for line, _ in results] == [2, 3, 6]  # the huge record spans lines 3 to 5
    reject = results[1][1]
    assert isinstance(reject, Reject)
    kept = json.loads(reject.raw_text)
    assert kept["raw_head"].startswith("201912346K,Too Long Pte. Ltd.")
    assert len(kept["raw_head"]) == RAW_HEAD_CHARS
    assert int(kept["record_chars"]) > 140_000
    assert len(reject.raw_text) < 3 * RAW_HEAD_CHARS


def test_a_line_longer_than_the_record_limit_is_read_in_bounded_chunks(tmp_path: Path) -> None:
    # An unquoted 600,000-character field on one line: rejected whole, the next row loads.
    huge = row_values("201912346K", "Z" * 600_000)
    path = write(tmp_path / "line.csv", [huge, row_values("53123456A", "After Pte. Ltd.")])
    results = [validate_row(raw, known_ssic=KNOWN) for _, raw in iter_csv(path)]
    assert [r.reason if isinstance(r, Reject) else r.uen for r in results] == ["oversized_record", "53123456A"]
    assert isinstance(results[1], StagingRow)


# --- 14: duplicate UENs in one file ----------------------------------------------------------


def test_duplicate_uen_keeps_the_first_row_and_quarantines_the_rest(clean_db, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LEADGEN_DATABASE_URL", clean_db.owner_dsn)
    monkeypatch.setattr(registry_load, "BATCH_ROWS", 2)  # the duplicates straddle two batches
    path = write(
        tmp_path / "dups.csv",
        [
            row_values("201912345K", "First Name Pte. Ltd."),
            row_values("53123456A", "Other Pte. Ltd."),
            row_values("201912345K", "Second Name Pte. Ltd."),
            row_values("201912345K", "Third Name Pte. Ltd."),
        ],
    )
    out = CliRunner().invoke(main, ["acra", "load", str(path), "--date", "2026-03-02"])
    assert out.exit_code == 0, out.output
    assert q(clean_db.owner_dsn, "SELECT uen, entity_name FROM staging_acra_companies ORDER BY uen") == [
        ("201912345K", "First Name Pte. Ltd."),
        ("53123456A", "Other Pte. Ltd."),
    ]
    rejects = q(clean_db.owner_dsn, "SELECT row_number, uen, reason, raw_text FROM staging_acra_rejects ORDER BY 1")
    assert [(n, u, r) for n, u, r, _ in rejects] == [
        (4, "201912345K", "duplicate_uen"),
        (5, "201912345K", "duplicate_uen"),
    ]
    assert [json.loads(raw)["entity_name"] for *_, raw in rejects] == ["Second Name Pte. Ltd.", "Third Name Pte. Ltd."]
    assert q(clean_db.owner_dsn, "SELECT name FROM companies WHERE uen = '201912345K'") == [("First Name Pte. Ltd.",)]


# --- 15: the default snapshot date is today in Singapore -------------------------------------


@pytest.fixture
def far_from_singapore(monkeypatch):  # type: ignore[no-untyped-def]
    """A host time zone whose calendar day differs from Singapore's right now (whatever the hour)."""
    import time
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from leadgen_core.clock import today_sg

    zone = next(z for z in ("Etc/GMT+12", "Etc/GMT-14") if datetime.now(ZoneInfo(z)).date() != today_sg())
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    yield zone
    monkeypatch.undo()
    time.tzset()


def test_acra_load_defaults_to_todays_singapore_date(clean_db, tmp_path: Path, monkeypatch, far_from_singapore) -> None:  # type: ignore[no-untyped-def]
    from datetime import date

    from leadgen_core.clock import today_sg

    assert date.today() != today_sg()  # the host's day is not Singapore's
    monkeypatch.setenv("LEADGEN_DATABASE_URL", clean_db.owner_dsn)
    path = write(tmp_path / "today.csv", [row_values("201912345K", "Lion Harbour Pte. Ltd.")])
    out = CliRunner().invoke(main, ["acra", "load", str(path)])
    assert out.exit_code == 0, out.output
    assert q(clean_db.owner_dsn, "SELECT snapshot_date FROM staging_acra_companies") == [(today_sg(),)]
    assert q(clean_db.owner_dsn, "SELECT last_seen FROM companies") == [(today_sg(),)]


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xef\xbb\xbf"])
def test_an_empty_file_is_refused_not_loaded_as_no_companies(tmp_path: Path, content: bytes) -> None:
    from leadgen_core.acra.csv_source import iter_csv
    from leadgen_core.errors import ConfigError

    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="no ACRA header"):
        list(iter_csv(path))


@pytest.mark.parametrize(
    "first",
    [
        ",".join(["c"] * 1_000_000),  # a header of a million columns: 2 MB, not "empty"
        "uen,entity_name," + "x" * 300_000,  # one enormous header field
    ],
)
def test_an_unreadable_first_record_is_refused_by_what_it_is(tmp_path: Path, first: str) -> None:
    path = tmp_path / "huge_header.csv"
    path.write_text(first + "\n" + ",".join(UPSERT_COLUMNS) + "\n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"no ACRA header: the first record is unreadable \(over 262,144 characters\)"
    ):
        list(iter_csv(path))


def test_an_endless_source_without_a_line_end_is_refused_not_read_forever() -> None:
    """/dev/zero: every read returns more, and no line ever ends. The header's bound stops it."""
    with pytest.raises(ConfigError, match="the first record is unreadable"):
        list(iter_csv("/dev/zero"))
