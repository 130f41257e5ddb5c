-- A tenant's own vendor accounts (bring your own key): which environment variable holds the
-- tenant's key for a vendor, and the account's plan (Lusha plan, OpenAI tier, Tavily key kind).
-- The key itself is never stored: secret_ref names where it lives (env:VAR), under the rule of
-- leadgen_core.secrets, checked when the CLI records it and again when a run reads it. The admin
-- CLI writes rows as the owner (scoped to the tenant); the pipeline only reads them.
CREATE TABLE tenant_vendor_accounts (
    tenant_id   text NOT NULL REFERENCES tenants(tenant_id),
    vendor      text NOT NULL CHECK (vendor IN ('lusha', 'tavily', 'zerobounce', 'openai')),
    secret_ref  text NOT NULL CHECK (secret_ref ~ '^env:[A-Z_][A-Z0-9_]*$'),
    plan        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, vendor),
    CONSTRAINT tenant_vendor_accounts_plan CHECK (
        (vendor = 'lusha' AND plan IN ('free', 'starter', 'pro', 'premium', 'scale'))
        OR (vendor = 'openai' AND plan IN ('1', '2', '3', '4', '5'))
        OR (vendor = 'tavily' AND plan IN ('development', 'production'))
        OR (vendor = 'zerobounce' AND plan IS NULL)
    )
);

ALTER TABLE tenant_vendor_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_vendor_accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_vendor_accounts
    USING (tenant_id = current_setting('request.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('request.tenant_id', true));

-- Read only for the pipeline (the migrator moves this grant to the database's own group).
GRANT SELECT ON tenant_vendor_accounts TO leadgen_rw;
