-- CRM exports: keyset pagination of a tenant's scores across every date.
--
-- `leadgen export scores` without --date pages by (score DESC, company_id DESC, run_date DESC)
-- and continues after a cursor with a row comparison in that same order; this index turns each
-- page into one range scan instead of a sort of all the tenant's scores. (Paging within one
-- date uses idx_lead_scores_keyset from 002.)
CREATE INDEX idx_lead_scores_export ON lead_scores (tenant_id, score DESC, company_id DESC, run_date DESC);
