-- Row-level security on every table that has a tenant_id column, and the grants of the
-- application group role. The login role (LEADGEN_APP_ROLE) is made a member of
-- leadgen_rw by the migrator; it owns nothing and has no BYPASSRLS.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'leadgen_rw') THEN
        CREATE ROLE leadgen_rw NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;

-- Fail closed: with no tenant set, current_setting(..., true) is NULL or '' and matches nothing.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT c.relname
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
        WHERE n.nspname = 'public' AND c.relkind = 'r'
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t.relname);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t.relname);
        EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON %I', t.relname);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = current_setting(''request.tenant_id'', true)) '
            'WITH CHECK (tenant_id = current_setting(''request.tenant_id'', true))',
            t.relname
        );
    END LOOP;
END
$$;

-- The admin directory tables stay readable and writable by the owner that runs migrations and the
-- admin CLI; FORCE would otherwise hide them from a non-superuser owner on a managed Postgres.
DO $$
BEGIN
    EXECUTE format('CREATE POLICY owner_admin ON tenants TO %I USING (true) WITH CHECK (true)', current_user);
    EXECUTE format('CREATE POLICY owner_admin ON odoo_connections TO %I USING (true) WITH CHECK (true)', current_user);
END
$$;

GRANT USAGE ON SCHEMA public TO leadgen_rw;

-- Reference data: read only.
GRANT SELECT ON ssic_ref TO leadgen_rw;

-- Tenant directory and connections: read only for the pipeline (the CLI writes as owner).
GRANT SELECT ON tenants, odoo_connections TO leadgen_rw;

-- Global pipeline data.
GRANT SELECT, INSERT, UPDATE, DELETE ON staging_acra_companies, staging_acra_rejects, registry_refreshes TO leadgen_rw;
GRANT SELECT, INSERT, UPDATE ON companies, contacts, lead_emails TO leadgen_rw;
GRANT SELECT, INSERT, UPDATE, DELETE ON email_verification_cache, vendor_response_cache,
    company_web_snapshots, company_extractions TO leadgen_rw;

-- Tenant-owned data (RLS decides which rows).
GRANT SELECT, INSERT, UPDATE, DELETE ON icp_rules, icp_candidates, daily_targets, company_stage_status,
    enrichment_runs, lead_features, lead_scores, vendor_usage, tenant_budgets, suppression_emails,
    background_jobs, run_stage_stats, odoo_sync_log TO leadgen_rw;

GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO leadgen_rw;

-- The tenant directory for the pipeline: ids, names and whether the night should run. No secrets.
-- SECURITY DEFINER so the sensor can list tenants without seeing any tenant's rows.
CREATE FUNCTION leadgen_tenant_directory()
RETURNS TABLE (tenant_id text, name text, status text, has_active_connection boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT t.tenant_id, t.name, t.status,
           EXISTS (SELECT 1 FROM odoo_connections oc WHERE oc.tenant_id = t.tenant_id AND oc.active)
    FROM tenants t
    ORDER BY t.tenant_id
$$;
REVOKE ALL ON FUNCTION leadgen_tenant_directory() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION leadgen_tenant_directory() TO leadgen_rw;
