"""The analytic lower bound of a night's wall time, from the calls the simulators actually served.

The model is documented in `bench.nightly` (module docstring). Every request in the simulators'
logs is given a stage (by its kind) and a tenant (by the company it is about: the search query,
the site's host, the company named in the prompt, Lusha's domain or reference id, ZeroBounce's
addresses), so each tenant's use of each stage is known:

    floor(t, s)   = max(busy(t, s) / workers(s), max over vendors of rate_floor(calls(t, s, v)))
    chain(t)      = sum over stages of floor(t, s)
    shared(s, v)  = min over tenants of the stages before s      (the first tenant to reach s)
                  + rate_floor(every tenant's calls of v in s)    (one bucket for everyone)
                  + min over tenants of the stages after s        (the last one still has those)
    bound         = max(max over tenants of chain(t), max over (s, v) of shared(s, v))

With one tenant the bound is chain(t): the sum over stages of max(concurrency floor, rate
floor). A crawl is sequential per site: robots.txt, then pages whose starts are at least the
domain interval (or the site's Crawl-delay) apart, redirect hops back to back (`site_busy_s`).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from leadgen_core.enrich.clients import VENDORS, RateSpec, VendorConfig
from leadgen_core.enrich.verify_stage import PARALLEL_BATCHES
from leadgen_core.enrich.websearch import domain_of, search_query
from leadgen_core.sandbox.base import LoggedRequest
from leadgen_core.sandbox.cluster import SandboxCluster
from leadgen_core.sandbox.naming import company_slug
from leadgen_core.sandbox.openai_sim import charged_tokens
from leadgen_core.sandbox.web import WebSim
from leadgen_core.settings import Settings

STAGES = (
    "icp_candidates", "daily_targets", "crawled_sites", "web_extractions", "contacts", "email_verifications",
    "lead_scores", "odoo_sync",
)  # fmt: skip
ROBOTS_PATH = "/robots.txt"
UNKNOWN = "?"  # the tenant of a request no target explains (counted, left out of the chains)
# request kind -> (stage, rate key); the rate key names an entry of `vendor_rates`
KINDS: dict[str, tuple[str, str | None]] = {
    "web": ("crawled_sites", None),
    "tavily_search": ("crawled_sites", "tavily"),
    "tavily_extract": ("web_extractions", "tavily"),
    "openai_extract": ("web_extractions", "openai"),
    "lusha_prospecting": ("contacts", "lusha"),
    "lusha_enrich": ("contacts", "lusha"),
    "zerobounce_batch": ("email_verifications", "zerobounce"),
    "zerobounce_single": ("email_verifications", None),  # 80,000 per 10 s: never the bound
    "openai_rationale": ("lead_scores", "openai_rationale"),
    "odoo": ("odoo_sync", None),
}


@dataclass(frozen=True)
class Latencies:
    """Mean latency of one request to each simulator, seconds. Under the realistic profile an
    OpenAI answer also takes its output at OUTPUT_TOKENS_PER_S (from the request's own tokens)."""

    web: float
    tavily: float
    lusha: float
    zerobounce: float
    openai: float
    odoo: float = 0.0
    openai_s_per_output_token: float = 0.0
    zerobounce_batch_s_per_address: float = 0.0  # realistic: a batch takes time in proportion to its size

    def of(self, kind: str, request: LoggedRequest | None = None) -> float:
        base = {"web": self.web, "tavily": self.tavily, "openai": self.openai, "lusha": self.lusha,
                "zerobounce": self.zerobounce, "odoo": self.odoo}.get(kind.split("_")[0], 0.0)  # fmt: skip
        if kind.startswith("openai") and request is not None and self.openai_s_per_output_token:
            prompt, _ = charged_tokens(_json(request))
            base += max(0, request.billable_units - prompt) * self.openai_s_per_output_token
        if kind == "zerobounce_batch" and request is not None and self.zerobounce_batch_s_per_address:
            base = len(_json(request).get("email_batch") or []) * self.zerobounce_batch_s_per_address
        return base


@dataclass(frozen=True)
class Limits:
    workers: int  # company workers per tenant (SCHED_COMPANY_CONCURRENCY)
    domain_interval_s: float  # CRAWLER_DOMAIN_INTERVAL_S
    verify_workers: int = PARALLEL_BATCHES  # batches in flight, or ZEROBOUNCE_IN_FLIGHT single validations
    odoo_workers: int = 1  # Odoo requests in flight per database (ODOO_MAX_IN_FLIGHT, the server's workers)

    def stage_workers(self, stage: str) -> int:
        if stage == "email_verifications":
            # the stage sends every address of the night at once, VERIFY_WORKERS in flight, however
            # many companies: min(workers, ...) halved the 64 of the default ZEROBOUNCE_IN_FLIGHT
            return self.verify_workers
        return self.odoo_workers if stage == "odoo_sync" else self.workers


@dataclass(frozen=True)
class Target:
    tenant_id: str
    company_id: int
    name: str
    website_domain: str | None


def vendor_rates(settings: Settings) -> dict[str, RateSpec]:
    """The rates the product's limiters use: <VENDOR>_RPM, else DEFAULT_RATES (the vendors resource
    sets no override); the rationales share OpenAI's bucket and rate."""
    rates = {v: VendorConfig().rate(v, settings) for v in VENDORS}
    rates["openai_rationale"] = rates["openai"]
    return rates


def rate_floor(calls: int, rate: RateSpec) -> float:
    """The least time CALLS take through a bucket of rate.per_s calls a second starting with its burst."""
    return max(0, calls - rate.burst) / rate.per_s


# --- which tenant a request was for -----------------------------------------------------------
def _words(text: str) -> str:
    return " ".join(text.split())


class Attribution:
    """Which tenant a request was for, through the company it names (a query, host, prompt,
    reference id or address). A company two tenants target (secondary SSIC codes can overlap) is
    given to them in turn: the first request of a kind about it to one, the next to the other."""

    def __init__(self, targets: Iterable[Target], emails: Mapping[str, int]) -> None:
        self.tenants: dict[int, list[str]] = defaultdict(list)
        self.by_name: dict[str, int] = {}
        self.by_domain: dict[str, int] = {}
        self.by_slug: dict[str, int] = {}
        self.by_query: dict[str, int] = {}
        for t in targets:
            self.tenants[t.company_id].append(t.tenant_id)
            self.by_name.setdefault(_words(t.name), t.company_id)
            self.by_query.setdefault(search_query(t.name), t.company_id)
            self.by_slug.setdefault(company_slug(t.name), t.company_id)
            if t.website_domain:
                self.by_domain.setdefault(t.website_domain.lower(), t.company_id)
        self.by_email = {e.lower(): c for e, c in emails.items() if c in self.tenants}
        self._turns: Counter[tuple[str, int]] = Counter()

    def _tenant(self, kind: str, company: int | None) -> str:
        if company is None or company not in self.tenants:
            return UNKNOWN
        tenants = sorted(self.tenants[company])
        turn = self._turns[(kind, company)]
        self._turns[(kind, company)] += 1
        return tenants[turn % len(tenants)]

    def company_named(self, name: str) -> int | None:
        name = _words(name)
        if name in self.by_name:
            return self.by_name[name]
        if name.endswith("…"):  # clipped in the rationale prompt
            return next((c for n, c in self.by_name.items() if n.startswith(name[:-1])), None)
        return next((c for n, c in self.by_name.items() if n[:200] == name), None)

    def company_at(self, url: str) -> int | None:
        domain = domain_of(url)
        if domain in self.by_domain:
            return self.by_domain[domain]
        # the simulated directories list a company at /company/<slug>; its own site is <slug>.sandbox.test
        last = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
        return self.by_slug.get(last) or self.by_slug.get(domain.split(".", 1)[0])

    def request(self, sim: str, r: LoggedRequest) -> tuple[str, str]:
        """(kind, tenant) of one logged request."""
        kind, company = self._about(sim, r)
        if kind == "zerobounce_batch":  # one tenant's batch: the tenant of its addresses' companies
            emails = [str(e.get("email_address", "")).lower() for e in _json(r).get("email_batch") or []]
            owners = Counter(self.tenants[c][0] for c in (self.by_email.get(e) for e in emails)
                             if c is not None and len(self.tenants[c]) == 1)  # fmt: skip
            if owners:
                return kind, owners.most_common(1)[0][0]
        return kind, self._tenant(kind, company)

    def _about(self, sim: str, r: LoggedRequest) -> tuple[str, int | None]:
        """(kind, company_id) of one logged request."""
        body = _json(r)
        if sim == "web":
            return "web", self.by_domain.get(domain_of("http://" + r.headers.get("host", "")))
        if sim == "tavily" and r.path == "/search":
            return "tavily_search", self.by_query.get(_words(str(body.get("query", ""))))
        if sim == "tavily":
            urls = [str(u) for u in body.get("urls") or []]
            return "tavily_extract", next((c for c in map(self.company_at, urls) if c is not None), None)
        if sim == "openai":
            user = next((str(m.get("content")) for m in body.get("messages") or [] if m.get("role") == "user"), "")
            if body.get("response_format") is not None:
                return "openai_extract", self.company_named(user.split("\n", 1)[0].removeprefix("Company: "))
            data = user.split("\n", 1)[-1]
            parsed = json.loads(data) if data.startswith("{") else {}
            leads = parsed.get("leads") or [parsed]  # a batch of leads (one tenant's), or a single lead
            return "openai_rationale", self.company_named(str(leads[0].get("company", "")))
        if sim == "lusha" and r.path.endswith("/prospecting"):
            include = body.get("filters", {}).get("companies", {}).get("include", {})
            domains, names = include.get("domains") or [], include.get("names") or []
            found = self.by_domain.get(str(domains[0]).lower()) if domains else None
            return "lusha_prospecting", found if found is not None or not names else self.company_named(str(names[0]))
        if sim == "lusha":
            refs = [str(c.get("clientReferenceId", "")).split(":", 1)[0] for c in body.get("contacts") or []]
            return "lusha_enrich", int(refs[0]) if refs and refs[0].isdigit() else None
        if sim == "zerobounce" and r.path == "/v2/validate":
            email = (r.query.get("email") or [""])[0].lower()
            return "zerobounce_single", self.by_email.get(email)
        if sim == "zerobounce":
            emails = [str(e.get("email_address", "")).lower() for e in body.get("email_batch") or []]
            return "zerobounce_batch", next((self.by_email[e] for e in emails if e in self.by_email), None)
        return "odoo", None


def _json(r: LoggedRequest) -> dict[str, Any]:
    try:
        body = r.json()
    except (ValueError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


# --- how long the requests kept workers busy --------------------------------------------------
def _fetches(requests: Sequence[LoggedRequest]) -> list[int]:
    """Hops of each page fetch: a 3xx answer means the next request belongs to the same fetch."""
    hops: list[int] = []
    following = False
    for r in requests:
        if following:
            hops[-1] += 1
        else:
            hops.append(1)
        following = 300 <= r.status < 400
    return hops


def site_busy_s(web: WebSim, host: str, requests: Sequence[LoggedRequest], *, latency: float, interval: float) -> float:
    """The least time one worker spends crawling HOST, from the requests it made (see the docstring)."""
    spec = web.site(host)
    per_request = latency + (web.slow_delay_s if spec.scenario == "slow" else 0.0)
    spacing = max(interval, web.crawl_delay_s if spec.robots == "delay" else 0.0)
    robots = sum(1 for r in requests if r.path == ROBOTS_PATH)
    pages = _fetches([r for r in requests if r.path != ROBOTS_PATH])
    busy = robots * per_request
    for i, hops in enumerate(pages):
        took = hops * per_request
        busy += took if i == len(pages) - 1 else max(spacing, took)
    return busy


def sim_log(cluster: SandboxCluster, sim: str) -> list[LoggedRequest]:
    """Every request SIM served (ZeroBounce's batches are served by its bulk host)."""
    if sim == "zerobounce":
        return cluster.zerobounce.log + cluster.zerobounce.bulk.log
    return cluster.sims[sim].log


@dataclass
class Use:
    """One tenant's requests in one stage: how many of each kind, and the worker time they took."""

    calls: Counter[str] = field(default_factory=Counter)
    busy_s: float = 0.0


def usage(
    cluster: SandboxCluster, who: Attribution, *, latency: Latencies, limits: Limits
) -> dict[str, dict[str, Use]]:
    """tenant -> stage -> Use, from every simulator's log."""
    use: dict[str, dict[str, Use]] = defaultdict(lambda: {s: Use() for s in STAGES})
    hosts: dict[str, list[LoggedRequest]] = defaultdict(list)
    for r in cluster.web.log:
        hosts[r.headers.get("host", "").lower().split(":")[0].rstrip(".")].append(r)
    for host, requests in hosts.items():
        tenant = who.request("web", requests[0])[1]
        crawl = use[tenant]["crawled_sites"]
        crawl.calls["web"] += len(requests)
        crawl.calls["sites"] += 1
        crawl.busy_s += site_busy_s(cluster.web, host, requests, latency=latency.web,
                                    interval=limits.domain_interval_s)  # fmt: skip
    for sim in ("tavily", "openai", "lusha", "zerobounce", "odoo"):
        for r in sim_log(cluster, sim):
            if sim == "zerobounce" and r.path not in ("/v2/validatebatch", "/v2/validate"):
                continue
            kind, tenant = who.request(sim, r)
            u = use[tenant][KINDS[kind][0]]
            u.calls[kind] += 1
            u.busy_s += latency.of(kind, r)
    return dict(use)


# --- the bound ----------------------------------------------------------------------------------
@dataclass
class StageFloor:
    stage: str
    calls: dict[str, int]
    tenant_floor_s: float  # the largest floor(t, s)
    limited_by: str
    shared_rate_s: float  # every tenant's calls through the stage's busiest bucket


@dataclass
class NightBound:
    bound_s: float
    binding: str  # which term sets the bound
    chains: dict[str, float]
    stages: dict[str, StageFloor]
    unattributed: int
    tenant_stage_floors: dict[str, dict[str, float]] = field(default_factory=dict)  # tenant -> stage -> floor

    def as_dict(self) -> dict[str, object]:
        return {
            "bound_s": round(self.bound_s, 1),
            "binding": self.binding,
            "tenant_chains_s": {t: round(c, 1) for t, c in self.chains.items()},
            "unattributed_requests": self.unattributed,
            "stages": {
                s.stage: {
                    "calls": s.calls,
                    "tenant_floor_s": round(s.tenant_floor_s, 1),
                    "shared_rate_s": round(s.shared_rate_s, 1),
                    "limited_by": s.limited_by,
                }
                for s in self.stages.values()
            },  # fmt: skip
        }


def _by_rate(calls: Mapping[str, int]) -> Counter[str]:
    """Calls per rate key (kinds without a rate limit, such as web pages, left out)."""
    out: Counter[str] = Counter()
    for kind, n in calls.items():
        key = KINDS[kind][1] if kind in KINDS else None
        if key is not None:
            out[key] += n
    return out


def _floor(use: Use, stage: str, *, limits: Limits, rates: Mapping[str, RateSpec]) -> tuple[float, str]:
    concurrency = use.busy_s / limits.stage_workers(stage)
    rate = {key: rate_floor(n, rates[key]) for key, n in _by_rate(use.calls).items()}
    best = max(rate, key=lambda k: rate[k], default=None)
    if best is not None and rate[best] > concurrency:
        return rate[best], f"rate:{best}"
    return concurrency, "concurrency" if concurrency > 0 else "-"


def night_bound(
    use: Mapping[str, Mapping[str, Use]], *, tenants: Sequence[str], limits: Limits, rates: Mapping[str, RateSpec]
) -> NightBound:
    floors = {t: {s: _floor(use[t][s], s, limits=limits, rates=rates) for s in STAGES} for t in tenants if t in use}
    chains = {t: sum(f for f, _ in by_stage.values()) for t, by_stage in floors.items()}
    bound, binding = max(((c, f"tenant chain {t}") for t, c in chains.items()), default=(0.0, "-"))
    stages: dict[str, StageFloor] = {}
    for i, s in enumerate(STAGES):
        total: Counter[str] = Counter()
        for t in use:
            total.update(use[t][s].calls)
        shared = {key: rate_floor(n, rates[key]) for key, n in _by_rate(total).items()}
        worst = max(floors, key=lambda t: floors[t][s][0], default=None)
        stages[s] = StageFloor(s, dict(total), floors[worst][s][0] if worst else 0.0,
                               floors[worst][s][1] if worst else "-", max(shared.values(), default=0.0))  # fmt: skip
        before = min((sum(floors[t][x][0] for x in STAGES[:i]) for t in floors), default=0.0)
        after = min((sum(floors[t][x][0] for x in STAGES[i + 1 :]) for t in floors), default=0.0)
        for key, floor in shared.items():
            if before + floor + after > bound:
                bound, binding = before + floor + after, f"shared {key} bucket in {s}"
    # Odoo calls name no company in a way worth parsing: they have no latency or rate to attribute.
    unattributed = sum(
        n for u in use.get(UNKNOWN, {}).values() for k, n in u.calls.items() if k not in ("odoo", "sites")
    )
    per_tenant = {t: {s: f for s, (f, _) in by_stage.items()} for t, by_stage in floors.items()}
    return NightBound(bound, binding, chains, stages, unattributed, per_tenant)
