-- Charges the product cannot know: a billable request that timed out may or may not have been
-- charged by the vendor. It is never re-sent blindly; its estimate is kept here, apart from the
-- certain `units`, so `leadgen budget show` can show it and the cap still counts it.
ALTER TABLE vendor_usage
    ADD COLUMN uncertain_units bigint NOT NULL DEFAULT 0 CHECK (uncertain_units >= 0);
