"""Every simulator on loopback at once, and the environment that points the product at them.

`SandboxCluster` starts the website simulator first (Tavily's answers name sites on its port),
then Tavily, Lusha, ZeroBounce, OpenAI, Odoo and the ACRA datastore, each with its own
`FaultConfig`. `env()` is what `leadgen sandbox up` prints and `leadgen dev` exports; the keys in
it are the simulators' own dummy keys, never real ones.

    with SandboxCluster(faults={"tavily": FaultConfig(error_rate=0.2)}) as cluster:
        os.environ.update(cluster.env())

In tests, `sandbox_cluster` is a generator usable directly as a fixture:
`cluster = pytest.fixture(sandbox_cluster, scope="module", name="cluster")`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from types import TracebackType

from leadgen_core.sandbox.acra import REALISTIC_PREPARE_S as ACRA_POLL_S
from leadgen_core.sandbox.acra import AcraSim
from leadgen_core.sandbox.base import FaultConfig, SimServer
from leadgen_core.sandbox.lusha import LushaSim
from leadgen_core.sandbox.odoo import OdooSim
from leadgen_core.sandbox.openai_sim import OpenAISim
from leadgen_core.sandbox.profile import DEMO, SandboxProfile
from leadgen_core.sandbox.tavily import TavilySim
from leadgen_core.sandbox.web import CRAWL_DELAY_S, SLOW_DELAY_S, WebSim
from leadgen_core.sandbox.zerobounce import ZeroBounceSim

# The clients' sandbox fallbacks (leadgen_core.enrich.clients) use the same dummy keys.
from leadgen_core.sandbox_contract import LUSHA_KEY as LUSHA_KEY
from leadgen_core.sandbox_contract import ODOO_KEY as ODOO_KEY
from leadgen_core.sandbox_contract import OPENAI_KEY as OPENAI_KEY
from leadgen_core.sandbox_contract import TAVILY_KEY as TAVILY_KEY
from leadgen_core.sandbox_contract import ZEROBOUNCE_KEY as ZEROBOUNCE_KEY
from leadgen_core.vendors.limits import lusha_plan, tavily_key_kind

# The demo tenants log in as these users (leadgen_dagster.cli.demo), both with ODOO_SANDBOX_KEY.
ODOO_LOGINS = ("admin", "leadgen-bot")
ODOO_DB = "sandbox"
DEFAULT_REGISTRY_ROWS = 20_000
SIM_NAMES = ("web", "tavily", "lusha", "zerobounce", "openai", "odoo", "acra")


class SandboxCluster:
    """The whole sandbox: start/stop together, per-simulator faults, one environment."""

    def __init__(
        self,
        *,
        faults: Mapping[str, FaultConfig] | None = None,
        registry_rows: int = DEFAULT_REGISTRY_ROWS,
        web_seed: int = 7,
        registry_seed: int = 7,
        web_slow_delay_s: float = SLOW_DELAY_S,
        web_crawl_delay_s: float = CRAWL_DELAY_S,
        profile: SandboxProfile = DEMO,
        lusha_plan_name: str | None = None,
        tavily_key_kind_name: str | None = None,
    ) -> None:
        unknown = set(faults or {}) - set(SIM_NAMES)
        if unknown:
            raise ValueError(f"unknown simulators {sorted(unknown)}; expected some of {list(SIM_NAMES)}")
        f = dict(faults or {})
        self.profile = profile
        self.web = WebSim(
            seed=web_seed,
            faults=f.get("web"),
            slow_delay_s=web_slow_delay_s,
            crawl_delay_s=web_crawl_delay_s,
            profile=profile,
        )
        # the plan and key kind the realistic profile enforces: LUSHA_PLAN, TAVILY_KEY_KIND by default
        self.lusha_plan = lusha_plan(lusha_plan_name or os.environ.get("LUSHA_PLAN"))
        self.tavily_key_kind = tavily_key_kind(tavily_key_kind_name or os.environ.get("TAVILY_KEY_KIND"))
        self.lusha = LushaSim(api_key=LUSHA_KEY, faults=f.get("lusha"), profile=profile, plan=self.lusha_plan)
        self.zerobounce = ZeroBounceSim(api_key=ZEROBOUNCE_KEY, faults=f.get("zerobounce"), profile=profile)
        self.openai = OpenAISim(api_key=OPENAI_KEY, faults=f.get("openai"), profile=profile)
        self.odoo = OdooSim(
            db=ODOO_DB, users=dict.fromkeys(ODOO_LOGINS, ODOO_KEY), faults=f.get("odoo"), profile=profile
        )
        self.acra = AcraSim(rows=registry_rows, seed=registry_seed, faults=f.get("acra"), profile=profile)
        self._tavily_faults = f.get("tavily")
        self._tavily: TavilySim | None = None
        self._started: list[SimServer] = []

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> SandboxCluster:
        try:
            self._start(self.web)
            # Tavily needs the web port to name sites, so it is built once the web sim listens.
            self._tavily = TavilySim(
                api_key=TAVILY_KEY,
                faults=self._tavily_faults,
                web_port=self.web.port,
                profile=self.profile,
                key_kind=self.tavily_key_kind,
            )
            for sim in (self._tavily, self.lusha, self.zerobounce, self.openai, self.odoo, self.acra):
                self._start(sim)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, sim: SimServer) -> None:
        sim.start()
        self._started.append(sim)

    def stop(self) -> None:
        while self._started:
            self._started.pop().stop()

    def __enter__(self) -> SandboxCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- access ---------------------------------------------------------------------------
    @property
    def tavily(self) -> TavilySim:
        if self._tavily is None:
            raise RuntimeError("the sandbox cluster is not started")
        return self._tavily

    @property
    def sims(self) -> dict[str, SimServer]:
        return {
            "web": self.web, "tavily": self.tavily, "lusha": self.lusha, "zerobounce": self.zerobounce,
            "openai": self.openai, "odoo": self.odoo, "acra": self.acra,
        }  # fmt: skip

    def set_faults(self, name: str, faults: FaultConfig) -> None:
        """Change how one simulator misbehaves from its next request on."""
        self.sims[name].faults = faults

    def clear_faults(self) -> None:
        for sim in self.sims.values():
            sim.faults = FaultConfig()

    def reset_logs(self) -> None:
        for sim in self.sims.values():
            sim.reset_log()

    def billable_units(self) -> dict[str, int]:
        """Units each paid vendor's simulator has billed since the last reset."""
        return {name: self.sims[name].billable_units for name in ("tavily", "lusha", "zerobounce", "openai")}

    def env(self) -> dict[str, str]:
        """The variables that point the product at this sandbox."""
        return {
            "TAVILY_BASE_URL": self.tavily.base_url,
            "TAVILY_API_KEY": TAVILY_KEY,
            "LUSHA_BASE_URL": self.lusha.base_url,
            "LUSHA_API_KEY": LUSHA_KEY,
            "ZEROBOUNCE_BASE_URL": self.zerobounce.base_url,
            "ZEROBOUNCE_BULK_BASE_URL": self.zerobounce.bulk_base_url,
            "ZEROBOUNCE_API_KEY": ZEROBOUNCE_KEY,
            "OPENAI_BASE_URL": f"{self.openai.base_url}/v1",
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_TIER": str(self.openai.tier),  # the product's limiter sizes its buckets like the simulator
            "LEADGEN_SANDBOX_WEB_PORT": str(self.web.port),
            "ACRA_API_URL": self.acra.api_url,
            "ACRA_RESOURCE_IDS": self.acra.resource_id,
            "ACRA_DOWNLOAD_URL": self.acra.base_url,
            # The sandbox prepares a download in (scaled) seconds; poll at the same pace.
            "ACRA_DOWNLOAD_POLL_S": repr(self.profile.latency(ACRA_POLL_S) if self.profile.realistic else 0.0),
            "ODOO_SANDBOX_URL": self.odoo.base_url,
            "ODOO_SANDBOX_KEY": ODOO_KEY,
            "LUSHA_PLAN": self.lusha_plan.value,
            "TAVILY_KEY_KIND": self.tavily_key_kind,
            **self.profile.env(),
        }


def sandbox_cluster(
    *,
    faults: Mapping[str, FaultConfig] | None = None,
    registry_rows: int = 1_000,
    web_slow_delay_s: float = SLOW_DELAY_S,
    web_crawl_delay_s: float = CRAWL_DELAY_S,
    profile: SandboxProfile = DEMO,
) -> Iterator[SandboxCluster]:
    """A running cluster for as long as the generator is suspended (a pytest fixture, say).

    Every parameter has a default, so pytest asks for no fixtures when it wraps this function.
    """
    with SandboxCluster(
        faults=faults,
        registry_rows=registry_rows,
        web_slow_delay_s=web_slow_delay_s,
        web_crawl_delay_s=web_crawl_delay_s,
        profile=profile,
    ) as cluster:
        yield cluster
