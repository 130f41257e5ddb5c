-- The application role cannot raise its own caps or wipe its own spend.
--
-- Caps (tenant_budgets) are read-only to the pipeline: the admin CLI sets them as the owner
-- (leadgen_core.budget.set_cap). The ledger (vendor_usage) takes inserts and updates of the
-- reservation and release statements only: no DELETE or TRUNCATE, and no UPDATE of the key columns
-- (moving a day's spend to another date or vendor would free the cap as surely as deleting it).

DO $$
DECLARE
    grp text := leadgen_group_role();
BEGIN
    EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON tenant_budgets FROM %I', grp);
    EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON vendor_usage FROM %I', grp);
    EXECUTE format('GRANT UPDATE (units, calls, updated_at) ON vendor_usage TO %I', grp);
END
$$;
