-- Token buckets shared by every process: a vendor limit measured in units other than requests
-- (OpenAI's tokens per minute). `level` is what the bucket held at `updated_at`; it refills at the
-- caller's rate up to the caller's capacity, and goes negative when callers book ahead (each then
-- waits until the refill covers its share), so one statement books a reservation under the row lock.
CREATE TABLE rate_limit_token_buckets (
    bucket      text PRIMARY KEY,
    level       double precision NOT NULL,
    updated_at  timestamptz NOT NULL
);
GRANT SELECT, INSERT, UPDATE ON rate_limit_token_buckets TO leadgen_rw;
