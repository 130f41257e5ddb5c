"""The ACRA registry through data.gov.sg's download API, within its documented quotas.

Real: the ACRA simulator on loopback (realistic profile: keyless 5 calls a minute, per-10-second
limits by key tier, a download that takes time to prepare), the download client, the CSV parser
and loader of `leadgen acra load`, Postgres (staging and quarantine), and Dagster executing
`acra_staging`. Simulated: the registry itself (synthetic rows) and the vendor's clock, which the
time scale speeds up.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import psycopg
import pytest

from leadgen_core.acra.download import DownloadOptions, download_csv
from leadgen_core.errors import VendorAuthError, VendorUnavailable
from leadgen_core.sandbox.acra import DATASTORE_PATH, AcraSim
from leadgen_core.sandbox.profile import ProfileName, SandboxProfile
from leadgen_dagster.assets.registry import acra_staging
from tests.dagster_helpers import resources

ROWS = 1500
SCALE = 20.0  # the vendor's 10 s window becomes 0.5 s, its minute 3 s, its 5 s preparation 0.25 s
REALISTIC = SandboxProfile(name=ProfileName.REALISTIC, time_scale=SCALE)
KEY = "sandbox-acra-prod-key"


def _get(sim: AcraSim, path: str, *, key: str | None = None, **params: Any) -> int:
    headers = {"x-api-key": key} if key else {}
    return httpx.get(f"{sim.base_url}{path}", params=params, headers=headers, timeout=5).status_code


def test_realistic_quota_is_five_keyless_calls_a_minute_and_more_with_a_key() -> None:
    profile = SandboxProfile(name=ProfileName.REALISTIC)  # unscaled: a test run stays inside one window
    with AcraSim(rows=10, profile=profile, api_keys={KEY: "prod"}) as sim:
        search = {"resource_id": sim.resource_id, "limit": 5}
        # keyless: datastore_search allows 4 per 10 s
        assert [_get(sim, DATASTORE_PATH, **search) for _ in range(5)] == [200, 200, 200, 200, 429]
        # ... and 5 API calls a minute over every endpoint: the 4 above + 1 download call, then 429
        initiate = sim.download_path("initiate-download")
        assert [_get(sim, initiate), _get(sim, initiate)] == [201, 429]
        refused = [r for r in sim.log if r.status == 429][-1]
        assert refused.path == initiate  # refused by the minute quota, not the download's 2 per 10 s
        # a prod key gets 20 datastore calls per 10 s
        assert [_get(sim, DATASTORE_PATH, key=KEY, **search) for _ in range(21)] == [200] * 20 + [429]
        assert _get(sim, DATASTORE_PATH, key="not-a-key", **search) == 401


def _staged_counts(dsn: str) -> tuple[int, int]:
    with psycopg.connect(dsn) as conn:
        staged = conn.execute("SELECT count(*) FROM staging_acra_companies").fetchone()
        rejected = conn.execute("SELECT count(*) FROM staging_acra_rejects").fetchone()
    assert staged is not None and rejected is not None
    return int(staged[0]), int(rejected[0])


@pytest.mark.parametrize("api_key", [None, KEY])
def test_a_full_refresh_takes_at_most_ten_requests_per_dataset(clean_db, monkeypatch, api_key) -> None:  # type: ignore[no-untyped-def]
    with (
        AcraSim(rows=ROWS, malformed_rate=0.03, profile=REALISTIC, api_keys={KEY: "prod"}) as sim,
        dg.instance_for_test() as instance,
    ):
        monkeypatch.setenv("ACRA_DOWNLOAD_URL", sim.base_url)
        monkeypatch.setenv("ACRA_RESOURCE_IDS", sim.resource_id)
        # 6 s unscaled: the 2-per-10-s download quota allows it, and the 5 s preparation is over by then
        monkeypatch.setenv("ACRA_DOWNLOAD_POLL_S", "0.3")
        if api_key:
            monkeypatch.setenv("ACRA_API_KEY", api_key)
        else:
            monkeypatch.delenv("ACRA_API_KEY", raising=False)
        result = dg.materialize([acra_staging], resources=resources(clean_db.app_dsn), instance=instance)
        assert result.success
        log = sim.dataset_requests()
    paths = [r.path.rsplit("/", 1)[-1] for r in log]
    assert len(log) <= 10, paths
    assert paths[0] == "initiate-download" and paths[-1].endswith(".csv") and "poll-download" in paths
    assert not any(r.path == DATASTORE_PATH for r in log)  # no paging
    assert all(r.status != 429 for r in log)  # within the quota
    api_calls = [r for r in log if not r.path.endswith(".csv")]
    assert all(r.headers.get("x-api-key") == api_key for r in api_calls)
    assert "x-api-key" not in log[-1].headers  # never sent to the file's object store
    meta = result.asset_materializations_for_node("acra_staging")[0].metadata
    staged, rejected = _staged_counts(clean_db.owner_dsn)
    assert meta["rows_seen"].value == ROWS and meta["rows_rejected"].value == rejected > 0
    assert staged + rejected == ROWS
    # the CSV path's own reasons: an undecodable byte arrives as bytes, as in `leadgen acra load`
    assert "bad_utf8" in meta["reject_reasons"].value
    assert KEY not in str(meta) and KEY not in str(result.all_events)


def test_an_unready_download_gives_up_after_max_polls(tmp_path: Path) -> None:
    with AcraSim(rows=5, prepare_s=30.0) as sim:
        options = DownloadOptions(base_url=sim.base_url, poll_interval_s=0.05, max_polls=3, backoff_s=0.01)
        with pytest.raises(VendorUnavailable, match="not ready after 3 polls"):
            asyncio.run(download_csv(sim.resource_id, tmp_path / "x.csv", options=options))
        assert len(sim.dataset_requests()) == 4  # initiate + 3 polls, nothing more


def test_a_rejected_key_is_a_clear_error_without_the_key(tmp_path: Path) -> None:
    with AcraSim(rows=5) as sim:
        options = DownloadOptions(base_url=sim.base_url, api_key="wrong-secret-value", poll_interval_s=0)
        with pytest.raises(VendorAuthError) as info:
            asyncio.run(download_csv(sim.resource_id, tmp_path / "x.csv", options=options))
    assert "ACRA_API_KEY" in str(info.value) and "wrong-secret-value" not in str(info.value)
