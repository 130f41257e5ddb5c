"""ACRA registry: columns, SSIC 2025, row validation, the synthetic registry, CSV and CKAN sources.

Real: the packaged SSIC 2025 CSV, validation, CSV files on disk (with genuinely invalid UTF-8
bytes), HTTP over loopback sockets with real timeouts, 429/Retry-After and 5xx answers.
Simulated: the registry rows (leadgen_core.acra.synth) and data.gov.sg (AcraSim, CKAN format).
No mocks: failures are injected through the simulator's FaultConfig.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from leadgen_core.acra import (
    BAD_SHAPE_KEY,
    MALFORMED_KINDS,
    MAX_LENGTHS,
    STAGING_COLUMNS,
    Reject,
    StagingRow,
    fetch_datastore,
    generate_rows,
    iter_csv,
    load_ssic,
    ssic_by_code,
    subclass_codes,
    validate_csv,
    validate_row,
    write_csv,
)
from leadgen_core.acra.api import retry_after_seconds
from leadgen_core.errors import ConfigError, RateLimited, VendorResponseError, VendorUnavailable
from leadgen_core.sandbox.acra import AcraSim
from leadgen_core.sandbox.base import FaultConfig

KNOWN = subclass_codes()
EXPECTED_COLUMNS = (
    "uen",
    "entity_name",
    "entity_type_description",
    "business_constitution_description",
    "company_type_description",
    "paf_constitution_description",
    "entity_status_description",
    "registration_incorporation_date",
    "uen_issue_date",
    "address_type",
    "block",
    "street_name",
    "level_no",
    "unit_no",
    "building_name",
    "postal_code",
    "other_address_line1",
    "other_address_line2",
    "account_due_date",
    "annual_return_date",
    "primary_ssic_code",
    "primary_ssic_description",
    "primary_user_described_activity",
    "secondary_ssic_code",
    "secondary_ssic_description",
    "secondary_user_described_activity",
    "no_of_officers",
)


def good_row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(STAGING_COLUMNS, "na")
    row.update(
        uen="201912345K",
        entity_name="Lion Harbour Logistics Pte. Ltd.",
        entity_type_description="Local Company",
        entity_status_description="Live Company",
        registration_incorporation_date="2019-04-01",
        uen_issue_date="2019-04-01",
        street_name="UBI AVENUE 1",
        postal_code="408933",
        primary_ssic_code="52101",
        primary_ssic_description="GENERAL WAREHOUSING",
        no_of_officers="3",
    )
    row.update(overrides)
    return row


# --- columns and SSIC -----------------------------------------------------------------------


def test_staging_columns_are_acra_names_in_order_with_lengths() -> None:
    assert EXPECTED_COLUMNS == STAGING_COLUMNS
    assert set(MAX_LENGTHS) == set(STAGING_COLUMNS)


def test_ssic_loads_every_level_with_readme_counts() -> None:
    levels = Counter(e.level for e in load_ssic())
    assert levels == {"section": 22, "division": 82, "group": 212, "class": 390, "subclass": 988}
    assert len(KNOWN) == 988
    assert all(len(c) == 5 and c.isdigit() for c in KNOWN)
    entry = ssic_by_code()["62011"]
    assert (entry.level, entry.parent) == ("subclass", "6201")
    assert entry.title.startswith("Development of software")
    assert ssic_by_code()["A"].parent is None
    assert not {"6201", "99999"} & KNOWN
    assert ssic_by_code()["01149"].example_items[0] == "aquarium plant growing"


# --- validate_row ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uen", "expected"),
    [
        ("53123456A", "53123456A"),  # business
        ("201912345K", "201912345K"),  # local company
        ("T08LL1234A", "T08LL1234A"),  # other entity, T = 20xx
        ("S99SS0001Z", "S99SS0001Z"),  # S = 19xx
        ("  t08ll1234a ", "T08LL1234A"),  # trimmed and upper-cased
    ],
)
def test_valid_uen_formats(uen: str, expected: str) -> None:
    result = validate_row(good_row(uen=uen), known_ssic=KNOWN)
    assert isinstance(result, StagingRow)
    assert result.uen == expected


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"uen": "5312345A"}, "bad_uen"),
        ({"uen": "2019123456"}, "bad_uen"),
        ({"uen": "X08LL1234A"}, "bad_uen"),
        ({"uen": "T08L11234A"}, "bad_uen"),
        ({"uen": "na"}, "bad_uen"),
        ({"registration_incorporation_date": "2023-02-30"}, "impossible_date:registration_incorporation_date"),
        ({"uen_issue_date": "2019-13-01"}, "impossible_date:uen_issue_date"),
        ({"account_due_date": "01/04/2019"}, "impossible_date:account_due_date"),
        ({"annual_return_date": "20190401"}, "impossible_date:annual_return_date"),
        ({"annual_return_date": "0019-04-01"}, "impossible_date:annual_return_date"),
        ({"primary_ssic_code": "99999"}, "unknown_ssic:99999"),
        ({"secondary_ssic_code": "6201"}, "unknown_ssic:6201"),
        ({"building_name": "B" * (MAX_LENGTHS["building_name"] + 1)}, "field_too_long:building_name"),
        ({"entity_name": "N" * (MAX_LENGTHS["entity_name"] + 1)}, "field_too_long:entity_name"),
        ({"entity_name": b"CAF\xc9 PTE. LTD."}, "bad_utf8:entity_name"),
        ({"street_name": "ORCHARD \ufffd ROAD"}, "bad_utf8:street_name"),
        ({"building_name": "TOWER \udcff"}, "bad_utf8:building_name"),
        ({"entity_name": "na"}, "missing_name"),
        ({"entity_name": "   "}, "missing_name"),
        ({"entity_name": None}, "missing_name"),
        ({"street_name": "ORCHARD\x00ROAD"}, "control_characters:street_name"),
        ({"entity_name": "ACME\x1a PTE. LTD."}, "control_characters:entity_name"),
        ({"unit_no": "01\x8502"}, "control_characters:unit_no"),
        ({"no_of_officers": "3.5"}, "bad_number:no_of_officers"),
        ({"no_of_officers": "-1"}, "bad_number:no_of_officers"),
        ({BAD_SHAPE_KEY: "26 fields, header has 27"}, "bad_shape"),
    ],
)
def test_each_reject_reason(overrides: dict[str, object], reason: str) -> None:
    result = validate_row(good_row(**overrides), known_ssic=KNOWN)
    assert isinstance(result, Reject)
    assert result.reason == reason
    assert result.uen == (None if reason == "bad_uen" else "201912345K")
    assert json.loads(result.raw_text)["postal_code"] == "408933"  # the whole row is kept


def test_valid_row_is_typed_trimmed_and_na_is_none() -> None:
    raw = good_row(entity_name="  Lion Harbour Logistics Pte. Ltd. ", no_of_officers=" 12", account_due_date="NA")
    raw["_id"] = 17  # CKAN's row id and other extra keys are ignored
    row = validate_row(raw, known_ssic=KNOWN)
    assert isinstance(row, StagingRow)
    assert row.entity_name == "Lion Harbour Logistics Pte. Ltd."
    assert row.registration_incorporation_date == date(2019, 4, 1)
    assert row.no_of_officers == 12
    assert (row.account_due_date, row.block, row.secondary_ssic_code) == (None, None, None)
    assert row.as_tuple() == tuple(getattr(row, c) for c in STAGING_COLUMNS)
    assert row.as_tuple()[STAGING_COLUMNS.index("postal_code")] == "408933"
    assert row == StagingRow(*row.as_tuple())  # type: ignore[arg-type]  # fast-built equals ordinary
    with pytest.raises(AttributeError):
        row.uen = "X"  # type: ignore[misc]


def test_limits_are_inclusive_and_non_str_values_are_accepted() -> None:
    raw = good_row(building_name="B" * MAX_LENGTHS["building_name"], no_of_officers=4, block=b"10")
    del raw["paf_constitution_description"]  # an absent column is None, not an error
    row = validate_row(raw, known_ssic=KNOWN)
    assert isinstance(row, StagingRow)
    assert (row.no_of_officers, row.block, row.paf_constitution_description) == (4, "10", None)


def test_reject_raw_text_preserves_undecodable_bytes() -> None:
    for value in (b"CAF\xc9 PTE. LTD.", "CAF\udcc9 PTE. LTD."):  # bytes, or surrogateescape text
        result = validate_row(good_row(entity_name=value), known_ssic=KNOWN)
        assert isinstance(result, Reject)
        assert json.loads(result.raw_text)["entity_name"] == "CAF\\xc9 PTE. LTD."
        result.raw_text.encode("utf-8")  # storable: no lone surrogates left


# --- synthetic registry ---------------------------------------------------------------------


def test_synth_is_deterministic_and_prefix_stable() -> None:
    first = list(generate_rows(400, seed=11))
    assert first == list(generate_rows(400, seed=11))
    assert first[:150] == list(generate_rows(150, seed=11))
    assert first != list(generate_rows(400, seed=12))


def test_synth_rows_are_realistic_and_valid() -> None:
    rows = list(generate_rows(4000, seed=5, malformed_rate=0.0))
    results = [validate_row(r, known_ssic=KNOWN) for r in rows]
    assert all(isinstance(r, StagingRow) for r in results)
    staged = [r for r in results if isinstance(r, StagingRow)]
    assert len({r.uen for r in staged}) == len(rows)
    assert len({r.entity_name for r in staged}) == len(rows)
    kinds = Counter("T" if r.uen[0] == "T" else len(r.uen) for r in staged)
    assert min(kinds[9], kinds[10], kinds["T"]) > 0
    statuses = Counter(r.entity_status_description for r in staged)
    assert statuses.most_common(1)[0][0] == "Live Company"
    assert {"Live", "Struck Off", "Cancelled", "Ceased Registration"} <= set(statuses)
    titles = {code: e.title.upper() for code, e in ssic_by_code().items()}
    assert all(r.primary_ssic_description == titles[r.primary_ssic_code or ""] for r in staged)
    divisions = Counter((r.primary_ssic_code or "")[:2] for r in staged)
    assert divisions.most_common(1)[0][0] == "46"
    assert {"62", "52", "56"} <= {d for d, _ in divisions.most_common(8)}
    incorporated = [r.registration_incorporation_date for r in staged]
    assert min(d for d in incorporated if d) >= date(1965, 1, 1)
    assert max(d for d in incorporated if d) <= date(2025, 12, 31)
    local = [r for r in staged if r.address_type == "LOCAL"]
    assert local
    assert all(r.postal_code and len(r.postal_code) == 6 and r.postal_code.isdigit() for r in local)
    assert any("PTE. LTD." in r.entity_name for r in staged)
    assert any(r.block is None for r in staged)  # "na" really occurs


def test_synth_malformed_fraction_and_kinds() -> None:
    n, rate = 14000, 0.05
    results = [validate_row(r, known_ssic=KNOWN) for r in generate_rows(n, seed=3, malformed_rate=rate)]
    reasons = Counter(r.reason for r in results if isinstance(r, Reject))
    assert set(reasons) == set(MALFORMED_KINDS)  # every kind occurs and nothing else is rejected
    assert 0.8 * n * rate <= sum(reasons.values()) <= 1.2 * n * rate


# --- CSV ------------------------------------------------------------------------------------


def test_write_csv_writes_header_and_raw_bad_bytes(tmp_path: Path) -> None:
    path = tmp_path / "acra.csv"
    assert write_csv(path, 3000, seed=9, malformed_rate=0.05) == 3000
    data = path.read_bytes()
    assert data.split(b"\r\n", 1)[0].decode() == ",".join(STAGING_COLUMNS)
    assert b"CAF\xc9 " in data
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")


def test_csv_roundtrip_equals_in_memory_validation(tmp_path: Path) -> None:
    path = tmp_path / "acra.csv"
    write_csv(path, 3000, seed=9, malformed_rate=0.05)
    from_file = [result for _line, result in validate_csv(path, known_ssic=KNOWN)]
    in_memory = [validate_row(r, known_ssic=KNOWN) for r in generate_rows(3000, seed=9, malformed_rate=0.05)]
    assert from_file == in_memory
    assert any(isinstance(r, Reject) and r.reason == "bad_utf8:entity_name" for r in from_file)


def test_csv_bad_bytes_lose_only_their_row(tmp_path: Path) -> None:
    header = ",".join(STAGING_COLUMNS).encode()
    good = [str(v).encode() for v in good_row().values()]

    def line(fields: list[bytes]) -> bytes:
        return b",".join(fields) + b"\r\n"

    bad_utf8 = list(good)
    bad_utf8[0], bad_utf8[1] = b"53123456A", b"\xffBROKEN \xe9 NAME"
    second = list(good)
    second[0], second[1] = b"T08LL1234A", b'"MULTI\r\nLINE, NAME LLP"'
    path = tmp_path / "download.csv"
    path.write_bytes(
        b"\xef\xbb\xbf"  # Excel's BOM
        + header + b"\r\n"
        + line(good)
        + line(bad_utf8)
        + b"\r\n"  # a blank line is skipped
        + line(good[:-1])  # one field short
        + line([*good, b"extra"])  # one field too many
        + line(second)
    )  # fmt: skip
    rows = list(iter_csv(path))
    assert [n for n, _ in rows] == [2, 3, 5, 6, 7]
    assert rows[1][1]["entity_name"] == b"\xffBROKEN \xe9 NAME"
    results = [validate_row(raw, known_ssic=KNOWN) for _, raw in rows]
    assert isinstance(results[0], StagingRow)
    assert results[0].uen == "201912345K"
    bad = results[1]
    assert isinstance(bad, Reject)
    assert (bad.reason, bad.uen) == ("bad_utf8:entity_name", "53123456A")
    assert json.loads(bad.raw_text)["entity_name"] == "\\xffBROKEN \\xe9 NAME"
    assert [r.reason for r in results[2:4] if isinstance(r, Reject)] == ["bad_shape", "bad_shape"]
    assert json.loads(results[3].raw_text)["_extra_1"] == "extra"  # type: ignore[union-attr]
    assert isinstance(results[4], StagingRow)
    assert results[4].entity_name == "MULTI\r\nLINE, NAME LLP"


def test_csv_unparseable_record_is_rejected_and_reading_goes_on(tmp_path: Path) -> None:
    good = ",".join(str(v) for v in good_row().values())
    huge = good.replace("UBI AVENUE 1", '"' + "X" * 200_000 + '"')  # beyond the csv module's field limit
    path = tmp_path / "huge.csv"
    path.write_text("\n".join([",".join(STAGING_COLUMNS), good, huge, good.replace("201912345K", "53123456A")]) + "\n")
    results = [(line, validate_row(raw, known_ssic=KNOWN)) for line, raw in iter_csv(path)]
    assert [line for line, _ in results] == [2, 3, 4]
    outcomes = [r.reason if isinstance(r, Reject) else r.uen for _, r in results]
    assert outcomes == ["201912345K", "oversized_record", "53123456A"]


def test_csv_rejects_a_file_that_is_not_acra(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("name,city\nAcme,Singapore\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not an ACRA registry source, missing column"):
        list(iter_csv(path))


# --- CKAN datastore_search against the simulator ---------------------------------------------


def collect(**kwargs: Any) -> list[dict[str, Any]]:
    """Run fetch_datastore to the end with short test backoffs."""
    options: dict[str, Any] = {"page_size": 50, "max_pages": 100, "backoff_s": 0.01, "timeout_s": 5.0, **kwargs}

    async def run() -> list[dict[str, Any]]:
        return [record async for record in fetch_datastore(**options)]

    return asyncio.run(run())


def fetch_all(sim: AcraSim, **kwargs: Any) -> list[dict[str, Any]]:
    return collect(**{"api_url": sim.api_url, "resource_id": sim.resource_id, **kwargs})


def test_api_pages_every_row_exactly_once() -> None:
    progress: list[tuple[int, int]] = []
    # The server caps limit at 40: the client must advance by what it received, not by page_size.
    with AcraSim(rows=237, seed=3, rows_max=40) as sim:
        records = fetch_all(sim, on_page=lambda fetched, total: progress.append((fetched, total)))
        offsets = [int(r.query["offset"][0]) for r in sim.log]
    assert sorted(r["_id"] for r in records) == list(range(1, 238))
    assert len({r["uen"] for r in records}) == 237
    assert offsets == [0, 40, 80, 120, 160, 200]
    assert progress == [(40, 237), (80, 237), (120, 237), (160, 237), (200, 237), (237, 237)]
    staged = [validate_row(r, known_ssic=KNOWN) for r in records]
    assert staged == [validate_row(r, known_ssic=KNOWN) for r in generate_rows(237, seed=3, malformed_rate=0)]


def test_api_stops_at_max_pages_and_filters_with_q() -> None:
    with AcraSim(rows=120, seed=4) as sim:
        assert len(fetch_all(sim, page_size=25, max_pages=2)) == 50
        assert len(sim.log) == 2
        name = sim.records[7]["entity_name"]
        matching = fetch_all(sim, q=name.split()[0] + " " + name.split()[1])
    assert [r["entity_name"] for r in matching] == [name]


def test_api_honours_retry_after_on_429() -> None:
    events: list[tuple[str, float, int]] = []

    async def on_request(request: httpx.Request) -> None:
        events.append(("request", time.monotonic(), 0))

    async def on_response(response: httpx.Response) -> None:
        events.append(("response", time.monotonic(), response.status_code))

    retry_after = 0.3
    with AcraSim(rows=100, seed=2, faults=FaultConfig(rate_limit_per_s=2, retry_after_s=retry_after)) as sim:

        async def run() -> list[dict[str, Any]]:
            hooks: dict[str, list[Callable[..., Any]]] = {"request": [on_request], "response": [on_response]}
            async with httpx.AsyncClient(event_hooks=hooks) as client:
                return [
                    r
                    async for r in fetch_datastore(
                        api_url=sim.api_url,
                        resource_id=sim.resource_id,
                        page_size=25,
                        max_pages=10,
                        http=client,
                        backoff_s=0.001,  # much shorter than Retry-After: a wait proves the header was read
                    )
                ]

        records = asyncio.run(run())
    assert sorted(r["_id"] for r in records) == list(range(1, 101))
    throttled = [i for i, (kind, _t, status) in enumerate(events) if kind == "response" and status == 429]
    assert throttled, "the rate limit never triggered"
    for i in throttled:
        assert events[i + 1][0] == "request"
        assert events[i + 1][1] - events[i][1] >= retry_after - 0.02


def test_api_persistent_429_raises_rate_limited() -> None:
    with AcraSim(rows=100, seed=2, faults=FaultConfig(rate_limit_per_s=1, retry_after_s=0.05)) as sim:
        with pytest.raises(RateLimited) as caught:
            fetch_all(sim, page_size=10, max_attempts=3)
        statuses = [r.status for r in sim.log]
    assert caught.value.vendor == "acra"
    assert caught.value.retry_after == pytest.approx(0.05)
    assert statuses == [200, 429, 429, 429]


def test_api_persistent_5xx_raises_vendor_unavailable_after_bounded_retries() -> None:
    with AcraSim(rows=10, faults=FaultConfig(error_rate=1.0)) as sim:
        with pytest.raises(VendorUnavailable, match="HTTP 503 after 3 attempt"):
            fetch_all(sim, max_attempts=3)
        assert [r.status for r in sim.log] == [503, 503, 503]


def test_api_timeout_and_refused_connection_are_vendor_unavailable() -> None:
    with AcraSim(rows=10, faults=FaultConfig(timeout_rate=1.0, timeout_sleep_s=1.0)) as sim:
        started = time.monotonic()
        with pytest.raises(VendorUnavailable, match="timed out"):
            fetch_all(sim, timeout_s=0.2, max_attempts=2)
        assert time.monotonic() - started < 1.5
    closed = AcraSim(rows=1).start()
    api_url = closed.api_url
    closed.stop()  # its port is free again: connecting is refused
    with pytest.raises(VendorUnavailable, match=r"connection failed \(ConnectError\) after 2 attempt"):
        collect(api_url=api_url, resource_id=closed.resource_id, max_attempts=2)


def test_api_unknown_resource_is_not_retried() -> None:
    with AcraSim(rows=10) as sim:
        with pytest.raises(VendorResponseError, match="Not Found Error"):
            fetch_all(sim, resource_id="d_does_not_exist")
        assert [r.status for r in sim.log] == [404]
        body = sim.log[0]
        assert body.query["resource_id"] == ["d_does_not_exist"]


def test_api_malformed_body_is_retried_then_reported() -> None:
    with AcraSim(rows=10, faults=FaultConfig(malformed_rate=1.0)) as sim:
        with pytest.raises(VendorResponseError):
            fetch_all(sim, max_attempts=2)
        assert len(sim.log) == 2


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("2.5") == 2.5
    assert retry_after_seconds("Wed, 01 Jan 2025 00:00:30 GMT", now=now) == 30.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
