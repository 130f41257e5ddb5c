-- Shared rate limits: a vendor's limit holds across concurrent runs (separate processes).
-- Each caller books the next free slot; next_slot_at is the earliest time the following call may go.
CREATE TABLE rate_limit_buckets (
    bucket        text PRIMARY KEY,
    next_slot_at  timestamptz NOT NULL
);
GRANT SELECT, INSERT, UPDATE ON rate_limit_buckets TO leadgen_rw;
