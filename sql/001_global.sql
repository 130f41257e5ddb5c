-- Global tables: shared by every tenant, not under row-level security.
-- Names follow the predecessor's schema (seeds: "Data Model Touchpoints").

CREATE SCHEMA IF NOT EXISTS dagster;  -- Dagster's own run/event storage lives apart from ours

CREATE TABLE tenants (
    tenant_id   text PRIMARY KEY CHECK (tenant_id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Odoo credentials are never stored: secret_ref names where the secret lives (env:VAR).
CREATE TABLE odoo_connections (
    tenant_id   text PRIMARY KEY REFERENCES tenants(tenant_id),
    base_url    text NOT NULL CHECK (base_url ~ '^https?://'),
    db_name     text NOT NULL,
    protocol    text NOT NULL CHECK (protocol IN ('jsonrpc', 'json2')),
    login       text NOT NULL,
    secret_ref  text NOT NULL CHECK (secret_ref ~ '^env:[A-Za-z_][A-Za-z0-9_]*$'),
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ssic_ref (
    code              text PRIMARY KEY,
    level             text NOT NULL CHECK (level IN ('section', 'division', 'group', 'class', 'subclass')),
    title             text NOT NULL,
    parent            text,
    definition        text,
    cross_references  text,
    examples          text,
    search            tsvector GENERATED ALWAYS AS (
        to_tsvector('english', coalesce(title, '') || ' ' || coalesce(definition, '') || ' ' || coalesce(examples, ''))
    ) STORED
);
CREATE INDEX idx_ssic_ref_search ON ssic_ref USING gin (search);

-- ACRA's own column names. One row per UEN: the latest registry state.
CREATE TABLE staging_acra_companies (
    uen                                   text PRIMARY KEY,
    entity_name                           text NOT NULL,
    entity_type_description               text,
    business_constitution_description     text,
    company_type_description              text,
    paf_constitution_description          text,
    entity_status_description             text,
    registration_incorporation_date       date,
    uen_issue_date                        date,
    address_type                          text,
    block                                 text,
    street_name                           text,
    level_no                              text,
    unit_no                               text,
    building_name                         text,
    postal_code                           text,
    other_address_line1                   text,
    other_address_line2                   text,
    account_due_date                      date,
    annual_return_date                    date,
    primary_ssic_code                     text,
    primary_ssic_description              text,
    primary_user_described_activity       text,
    secondary_ssic_code                   text,
    secondary_ssic_description            text,
    secondary_user_described_activity     text,
    no_of_officers                        integer,
    snapshot_date                         date NOT NULL,
    source                                text NOT NULL,
    loaded_at                             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_staging_acra_snapshot ON staging_acra_companies (snapshot_date);
CREATE INDEX idx_staging_acra_ssic ON staging_acra_companies (primary_ssic_code);

-- Quarantine: the raw row as it arrived, with the reason. Nothing is lost.
CREATE TABLE staging_acra_rejects (
    reject_id      bigserial PRIMARY KEY,
    snapshot_date  date NOT NULL,
    source         text NOT NULL,
    row_number     bigint,
    uen            text,
    reason         text NOT NULL,
    raw_text       text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_staging_acra_rejects_snapshot ON staging_acra_rejects (snapshot_date, reason);

-- The barrier tenant stages wait on: one row per registry refresh that completed.
CREATE TABLE registry_refreshes (
    snapshot_date  date PRIMARY KEY,
    staged         bigint NOT NULL DEFAULT 0,
    inserted       bigint NOT NULL DEFAULT 0,
    updated        bigint NOT NULL DEFAULT 0,
    unchanged      bigint NOT NULL DEFAULT 0,
    finished_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE companies (  -- fillfactor leaves room for HOT updates of last_seen
    company_id           bigserial PRIMARY KEY,
    uen                  text NOT NULL UNIQUE,
    name                 text NOT NULL,
    website              text,
    website_domain       text,
    industry_norm        text,
    industry_code        text,
    secondary_ssic_code  text,
    incorporation_year   integer,
    employees_est        integer,
    entity_status        text,
    is_live              boolean NOT NULL DEFAULT true,
    postal_code          text,
    address              text,
    content_hash         bytea NOT NULL,
    first_seen           date NOT NULL,
    last_seen            date NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 85);
CREATE INDEX idx_companies_industry_code ON companies (industry_code) WHERE is_live;
CREATE INDEX idx_companies_secondary_code ON companies (secondary_ssic_code) WHERE is_live;
-- The seeds' name/industry_norm lower() indexes served the predecessor's chat search, which this
-- product does not have; each index costs the nightly million-row upsert, so they are left out.

CREATE TABLE contacts (
    contact_id    bigserial PRIMARY KEY,
    company_id    bigint NOT NULL REFERENCES companies(company_id),
    full_name     text,
    title         text,
    email         text,
    phone         text,
    source        text NOT NULL CHECK (source IN ('crawl', 'extraction', 'lusha', 'tavily')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX uq_contacts_email ON contacts (lower(email)) WHERE email IS NOT NULL;
CREATE INDEX idx_contacts_company ON contacts (company_id);

CREATE TABLE lead_emails (
    email          text PRIMARY KEY CHECK (email = lower(email)),
    company_id     bigint NOT NULL REFERENCES companies(company_id),
    contact_id     bigint REFERENCES contacts(contact_id),
    source         text NOT NULL,
    first_seen     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_lead_emails_company ON lead_emails (company_id);

CREATE TABLE email_verification_cache (
    email          text PRIMARY KEY CHECK (email = lower(email)),
    status         text NOT NULL,
    sub_status     text,
    free_email     boolean,
    did_you_mean   text,
    verified_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_email_verification_cache_verified_at ON email_verification_cache (verified_at);

-- Billable vendor responses by request fingerprint: a re-run never pays twice.
CREATE TABLE vendor_response_cache (
    vendor        text NOT NULL,
    fingerprint   text NOT NULL,
    response      jsonb NOT NULL,
    units         bigint NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (vendor, fingerprint)
);
CREATE INDEX idx_vendor_response_cache_expires ON vendor_response_cache (expires_at);

-- What a company's website showed on a day. Shared: a second tenant reads it for free.
CREATE TABLE company_web_snapshots (
    company_id     bigint NOT NULL REFERENCES companies(company_id),
    crawled_on     date NOT NULL,
    url            text,
    status         text NOT NULL,
    reason         text,
    emails         text[] NOT NULL DEFAULT '{}',
    phones         text[] NOT NULL DEFAULT '{}',
    social_links   text[] NOT NULL DEFAULT '{}',
    pages          jsonb NOT NULL DEFAULT '[]',
    text_chars     integer NOT NULL DEFAULT 0,
    corpus         text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, crawled_on)
);

CREATE TABLE company_extractions (
    company_id     bigint NOT NULL REFERENCES companies(company_id),
    extracted_on   date NOT NULL,
    sources        text[] NOT NULL DEFAULT '{}',
    facts          jsonb,
    summary        text,
    corpus_chars   integer NOT NULL DEFAULT 0,
    tokens         integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, extracted_on)
);
