-- Charges the product cannot know: a billable request that timed out may or may not have been
-- charged by the vendor. It is never re-sent blindly; its estimate is kept here, apart from the
-- certain `units`, so `leadgen budget show` can show it and the cap still counts it.
ALTER TABLE vendor_usage
    ADD COLUMN uncertain_units bigint NOT NULL DEFAULT 0 CHECK (uncertain_units >= 0);

-- The pipeline moves a reservation to the new column (011 grants UPDATE column by column).
DO $$
BEGIN
    EXECUTE format('GRANT UPDATE (uncertain_units) ON vendor_usage TO %I', leadgen_group_role());
END
$$;
