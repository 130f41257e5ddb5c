-- Fair sharing of the shared rate buckets (issue 9 §2: each waiting tenant gets an equal share).
--
-- Until now a bucket was one "next free slot" moving one interval per booking, first come first
-- served: a tenant with ten times the requests in flight held ten times the upcoming slots. Now
-- every booked slot is a row carrying its tenant, and one function books a slot in one round trip:
--
--   * slots of one bucket are at least one interval apart (the vendor's pace, as before);
--   * with K tenants active on the bucket (a slot within the last ACTIVE_S seconds or ahead), a
--     tenant's own slots are at least K intervals apart, so it holds at most 1/K of the upcoming
--     slots; the rest stay free for the others. A lone tenant (K = 1) has the full rate;
--   * the slot is the earliest time from now (less the burst window) that satisfies both, so a
--     slot nobody takes is not lost: the next booker, of any tenant, gets it;
--   * a caller that gives its slot up deletes its row while the slot is still ahead, and the gap
--     goes to the next booker (the give-back of 004's design).
-- The bucket's row in rate_limit_buckets is the lock that serialises bookings (and its
-- next_slot_at still tells when the bucket's last booked slot ends). Slots further back than the
-- active window (or the burst window) are deleted by the bookings themselves.
CREATE TABLE rate_limit_slots (
    slot_id  bigserial PRIMARY KEY,
    bucket   text NOT NULL,
    tenant   text NOT NULL DEFAULT '',
    at       double precision NOT NULL  -- the slot's time, epoch seconds
);
CREATE INDEX idx_rate_limit_slots_at ON rate_limit_slots (bucket, at);
CREATE INDEX idx_rate_limit_slots_tenant ON rate_limit_slots (bucket, tenant, at);
GRANT SELECT, INSERT, DELETE ON rate_limit_slots TO leadgen_rw;
GRANT USAGE ON SEQUENCE rate_limit_slots_slot_id_seq TO leadgen_rw;

-- Book the earliest fair slot of P_BUCKET for P_TENANT; the slot's id and the seconds until it.
CREATE FUNCTION rate_limit_book_fair(
    p_bucket text, p_tenant text, p_interval double precision, p_burst_window double precision,
    p_active_s double precision
) RETURNS TABLE (slot_id bigint, wait_s double precision)
LANGUAGE plpgsql VOLATILE SET search_path = public, pg_temp AS $$
DECLARE
    now_s   double precision;
    lo      double precision;
    k       integer;
    gap     double precision := p_interval * 0.999999;  -- float slack: s + interval is allowed
    own_gap double precision;
    pick    double precision;
    new_id  bigint;
BEGIN
    -- the bucket's row locks the bucket: bookings of one bucket run one at a time
    INSERT INTO rate_limit_buckets AS b (bucket, next_slot_at) VALUES (p_bucket, clock_timestamp())
    ON CONFLICT (bucket) DO UPDATE SET next_slot_at = b.next_slot_at;
    now_s := extract(epoch FROM clock_timestamp());  -- after the lock: the time this booking is made
    lo := now_s - p_burst_window;
    DELETE FROM rate_limit_slots s
    WHERE s.bucket = p_bucket AND s.at < now_s - greatest(p_active_s, p_burst_window) - p_interval;
    SELECT 1 + count(DISTINCT s.tenant) INTO k FROM rate_limit_slots s
    WHERE s.bucket = p_bucket AND s.at > now_s - p_active_s AND s.tenant <> p_tenant;
    own_gap := k * p_interval * 0.999999;
    -- The earliest feasible time from LO is LO itself or the end of a forbidden stretch: one
    -- interval after any slot, or K intervals after one of the tenant's own.
    SELECT c.at INTO pick FROM (
        SELECT lo AS at
        UNION ALL
        SELECT s.at + p_interval FROM rate_limit_slots s WHERE s.bucket = p_bucket AND s.at + p_interval >= lo
        UNION ALL
        SELECT s.at + k * p_interval FROM rate_limit_slots s
        WHERE k > 1 AND s.bucket = p_bucket AND s.tenant = p_tenant AND s.at + k * p_interval >= lo
    ) c
    WHERE NOT EXISTS (
        SELECT 1 FROM rate_limit_slots s WHERE s.bucket = p_bucket AND s.at > c.at - gap AND s.at < c.at + gap
    ) AND (k = 1 OR NOT EXISTS (
        SELECT 1 FROM rate_limit_slots s
        WHERE s.bucket = p_bucket AND s.tenant = p_tenant AND s.at > c.at - own_gap AND s.at < c.at + own_gap
    ))
    ORDER BY c.at
    LIMIT 1;
    INSERT INTO rate_limit_slots (bucket, tenant, at) VALUES (p_bucket, p_tenant, pick)
    RETURNING rate_limit_slots.slot_id INTO new_id;
    UPDATE rate_limit_buckets b SET next_slot_at = greatest(b.next_slot_at, to_timestamp(pick + p_interval))
    WHERE b.bucket = p_bucket;
    slot_id := new_id;
    wait_s := pick - now_s;
    RETURN NEXT;
END
$$;
