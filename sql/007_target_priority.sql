-- Target selection priority, computed once where the candidate set is built.
--
-- daily_targets orders candidates by (no score yet, no contacts, most recently seen). Computing
-- those per candidate at selection time joined every candidate with companies, lead_scores and
-- contacts and sorted them all: p95 1.2-1.8 s over 1M companies (bench.target_selection). With
-- the keys stored on the candidate row and indexed in exactly the selection's ORDER BY, the
-- capped selection walks the index and stops after `cap` rows (p95 well under 200 ms).
ALTER TABLE icp_candidates
    ADD COLUMN has_score    boolean NOT NULL DEFAULT false,
    ADD COLUMN has_contacts boolean NOT NULL DEFAULT false,
    ADD COLUMN last_seen    date;

CREATE INDEX idx_icp_candidates_priority
    ON icp_candidates (tenant_id, run_date, has_score, has_contacts, last_seen DESC, company_id);
