-- Tenant-owned tables. Every one carries tenant_id and is put under RLS in 003.

CREATE TABLE icp_rules (
    tenant_id       text NOT NULL REFERENCES tenants(tenant_id),
    name            text NOT NULL DEFAULT 'default',
    payload         jsonb NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE icp_candidates (
    tenant_id    text NOT NULL REFERENCES tenants(tenant_id),
    run_date     date NOT NULL,
    company_id   bigint NOT NULL REFERENCES companies(company_id),
    matched_by   text NOT NULL,
    PRIMARY KEY (tenant_id, run_date, company_id)
);

-- The run manifest: what the night selected, in priority order.
CREATE TABLE daily_targets (
    tenant_id    text NOT NULL REFERENCES tenants(tenant_id),
    run_date     date NOT NULL,
    company_id   bigint NOT NULL REFERENCES companies(company_id),
    priority     integer NOT NULL,
    run_id       text,
    selected_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, run_date, company_id)
);

CREATE TABLE company_stage_status (
    tenant_id    text NOT NULL REFERENCES tenants(tenant_id),
    run_date     date NOT NULL,
    company_id   bigint NOT NULL REFERENCES companies(company_id),
    stage        text NOT NULL,
    status       text NOT NULL CHECK (status IN ('done', 'degraded', 'failed', 'skipped')),
    attempts     integer NOT NULL DEFAULT 1,
    reason       text,
    last_error   text,
    detail       jsonb,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, run_date, stage, company_id)
);

CREATE TABLE enrichment_runs (
    tenant_id       text NOT NULL REFERENCES tenants(tenant_id),
    run_date        date NOT NULL,
    dagster_run_id  text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    status          text NOT NULL DEFAULT 'running',
    PRIMARY KEY (tenant_id, run_date, dagster_run_id)
);

CREATE TABLE lead_features (
    tenant_id     text NOT NULL REFERENCES tenants(tenant_id),
    run_date      date NOT NULL,
    company_id    bigint NOT NULL REFERENCES companies(company_id),
    features      jsonb NOT NULL,
    feature_hash  text NOT NULL,
    run_id        text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, run_date, company_id)
);

CREATE TABLE lead_scores (
    tenant_id         text NOT NULL REFERENCES tenants(tenant_id),
    run_date          date NOT NULL,
    company_id        bigint NOT NULL REFERENCES companies(company_id),
    score             double precision NOT NULL CHECK (score BETWEEN 0 AND 1),
    bucket            text NOT NULL CHECK (bucket IN ('high', 'medium', 'low')),
    contributions     jsonb NOT NULL,
    rationale         text NOT NULL,
    rationale_source  text NOT NULL CHECK (rationale_source IN ('llm', 'template', 'cache')),
    run_id            text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, run_date, company_id)
);
CREATE INDEX idx_lead_scores_keyset ON lead_scores (tenant_id, run_date, score DESC, company_id DESC);
CREATE INDEX idx_lead_scores_company ON lead_scores (tenant_id, company_id);

-- The budget ledger. Reservations are one conditional upsert each (leadgen_core.budget).
CREATE TABLE vendor_usage (
    tenant_id    text NOT NULL REFERENCES tenants(tenant_id),
    usage_date   date NOT NULL,
    vendor       text NOT NULL,
    units        bigint NOT NULL DEFAULT 0 CHECK (units >= 0),
    calls        integer NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, usage_date, vendor)
);

-- Per-tenant overrides of the environment's caps ('openai', 'tavily', ..., 'targets').
CREATE TABLE tenant_budgets (
    tenant_id    text NOT NULL REFERENCES tenants(tenant_id),
    vendor       text NOT NULL,
    daily_cap    bigint NOT NULL CHECK (daily_cap >= 0),
    PRIMARY KEY (tenant_id, vendor)
);

CREATE TABLE suppression_emails (
    tenant_id    text NOT NULL REFERENCES tenants(tenant_id),
    value        text NOT NULL CHECK (value = lower(value)),
    kind         text NOT NULL CHECK (kind IN ('email', 'domain')),
    reason       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, value)
);

CREATE TABLE background_jobs (
    job_id          bigserial PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants(tenant_id),
    job_type        text NOT NULL,
    status          text NOT NULL CHECK (status IN ('queued', 'running', 'done', 'error')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    ended_at        timestamptz,
    params          jsonb NOT NULL DEFAULT '{}',
    processed       integer NOT NULL DEFAULT 0,
    total           integer NOT NULL DEFAULT 0,
    error           text,
    attempts        integer NOT NULL DEFAULT 0,
    dagster_run_id  text
);
CREATE INDEX idx_background_jobs_status ON background_jobs (tenant_id, status);

CREATE TABLE run_stage_stats (
    tenant_id       text NOT NULL REFERENCES tenants(tenant_id),
    run_date        date NOT NULL,
    stage           text NOT NULL,
    dagster_run_id  text,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    items           integer NOT NULL DEFAULT 0,
    done            integer NOT NULL DEFAULT 0,
    degraded        integer NOT NULL DEFAULT 0,
    failed          integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, run_date, stage)
);

CREATE TABLE odoo_sync_log (
    log_id       bigserial PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants(tenant_id),
    run_date     date NOT NULL,
    company_id   bigint REFERENCES companies(company_id),
    model        text NOT NULL,
    item_key     text NOT NULL,
    action       text NOT NULL,
    odoo_id      bigint,
    status       text NOT NULL CHECK (status IN ('ok', 'error', 'skipped')),
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_odoo_sync_log_run ON odoo_sync_log (tenant_id, run_date);
