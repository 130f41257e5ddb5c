-- The opening of a paid call in one statement (leadgen_core/spend/spender.py, `Spender._begin`).
--
-- Until now the opening was a tenant transaction of four round trips: BEGIN with the tenant's
-- setting, the claim of the call's single-flight key with the reservation and its journal row
-- (one statement), a second read of where the answer would be (an answer recorded while the claim
-- waited on its owner's row is only seen by a later statement), then COMMIT with the session's
-- reset. About 7.7 paid calls a company open this way. Here the same steps run inside one
-- function called as a statement of its own, outside any transaction block: one round trip.
--
-- Each statement of a PL/pgSQL function takes a new snapshot (READ COMMITTED), so the read after
-- the claim still sees what committed while the claim waited. The steps run in a new order that
-- needs no undo: the claim, then the read, then (only when nothing answered and the key was
-- claimed) the reservation and its journal row. A call that finds its answer, or whose
-- reservation the cap refuses, deletes the claim it made here (or the claim its caller brought,
-- for a refused reservation) and reserves nothing. Claims are locked before ledger rows, as
-- everywhere.
--
-- The tenant is set by leadgen_scope_tenant (set_config(..., true)): local to the statement's own
-- transaction, so nothing stays on the session. The function runs with the caller's rights (not SECURITY
-- DEFINER): row-level security applies to the ledger and the journal as in any tenant transaction.
--
-- P_SOURCE names where the answer is read: 'cache' (vendor_response_cache by P_VENDOR and P_KEY),
-- 'verification' (email_verification_cache by P_EMAIL, fresh within P_TTL_DAYS, an `unknown`
-- within P_UNKNOWN_HOURS, as the verification stage's FRESH_SQL), or NULL (a call without a
-- flight: nothing is claimed or read). STATE is 'hit' (ANSWER), 'busy' (another call holds the
-- key), 'refused' (the cap) or 'held' (RESERVATION_ID).
-- Scope the current transaction to P_TENANT, as `Database.tenant_transaction` does: a well-formed
-- tenant id (the pool's TENANT_ID_RE) set with set_config(..., true), so it ends with the
-- transaction. For functions called as a statement of their own (spend_open, spend_close).
CREATE FUNCTION leadgen_scope_tenant(p_tenant text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = public, pg_temp AS $$
BEGIN
    IF p_tenant IS NULL OR p_tenant !~ '^[a-z0-9][a-z0-9-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid tenant id %', p_tenant;
    END IF;
    PERFORM set_config('request.tenant_id', p_tenant, true);
END
$$;

CREATE FUNCTION spend_open(
    p_tenant text, p_vendor text, p_token uuid, p_run text, p_ttl double precision,
    p_key text, p_source text, p_email text, p_ttl_days integer, p_unknown_hours integer,
    p_day date, p_units bigint, p_cap bigint, p_fingerprint text,
    p_claim_token uuid, p_claim_keys text[]
) RETURNS TABLE (state text, answer jsonb, reservation_id bigint)
LANGUAGE plpgsql VOLATILE SET search_path = public, pg_temp AS $$
DECLARE
    claimed boolean := false;
    found_answer jsonb;
    reserved bigint;
BEGIN
    PERFORM leadgen_scope_tenant(p_tenant);
    IF p_key IS NOT NULL THEN
        INSERT INTO vendor_inflight AS f (vendor, fingerprint, token, owner_tenant, run_id, expires_at)
        VALUES (p_vendor, p_key, p_token, p_tenant, p_run, now() + make_interval(secs => p_ttl))
        ON CONFLICT (vendor, fingerprint) DO UPDATE
            SET token = EXCLUDED.token, owner_tenant = EXCLUDED.owner_tenant, run_id = EXCLUDED.run_id,
                claimed_at = now(), expires_at = EXCLUDED.expires_at
            WHERE f.expires_at <= now()
        RETURNING true INTO claimed;
        claimed := coalesce(claimed, false);
        -- a new snapshot: an answer recorded while the claim waited on its owner's row is seen
        IF p_source = 'cache' THEN
            SELECT c.response INTO found_answer FROM vendor_response_cache c
            WHERE c.vendor = p_vendor AND c.fingerprint = p_key AND c.expires_at > now();
        ELSIF p_source = 'verification' THEN
            SELECT to_jsonb(v.status) INTO found_answer FROM email_verification_cache v
            WHERE v.email = p_email AND v.verified_at > now() - make_interval(days => p_ttl_days)
              AND (v.status <> 'unknown' OR v.verified_at > now() - make_interval(hours => p_unknown_hours));
        ELSE
            RAISE EXCEPTION 'spend_open: unknown answer source %', p_source;
        END IF;
        IF found_answer IS NOT NULL THEN
            IF claimed THEN
                DELETE FROM vendor_inflight f WHERE f.vendor = p_vendor AND f.fingerprint = p_key AND f.token = p_token;
            END IF;
            RETURN QUERY SELECT 'hit'::text, found_answer, NULL::bigint;
            RETURN;
        END IF;
        IF NOT claimed THEN
            RETURN QUERY SELECT 'busy'::text, NULL::jsonb, NULL::bigint;
            RETURN;
        END IF;
    END IF;
    INSERT INTO vendor_usage AS u (tenant_id, usage_date, vendor, units, calls)
    SELECT p_tenant, p_day, p_vendor, p_units, 1
    WHERE p_units <= p_cap
    ON CONFLICT (tenant_id, usage_date, vendor) DO UPDATE
        SET units = u.units + EXCLUDED.units, calls = u.calls + 1, updated_at = now()
        WHERE u.units + u.uncertain_units + EXCLUDED.units <= p_cap
    RETURNING u.units INTO reserved;
    IF reserved IS NULL THEN
        IF claimed THEN
            DELETE FROM vendor_inflight f WHERE f.vendor = p_vendor AND f.fingerprint = p_key AND f.token = p_token;
        ELSIF p_claim_token IS NOT NULL THEN  -- nothing will be paid: the waiters may claim them
            DELETE FROM vendor_inflight f
            WHERE f.vendor = p_vendor AND f.token = p_claim_token AND f.fingerprint = ANY(p_claim_keys);
        END IF;
        RETURN QUERY SELECT 'refused'::text, NULL::jsonb, NULL::bigint;
        RETURN;
    END IF;
    RETURN QUERY
    INSERT INTO spend_reservations AS s (tenant_id, usage_date, vendor, units, run_id, fingerprint)
    VALUES (p_tenant, p_day, p_vendor, p_units, p_run, p_fingerprint)
    RETURNING 'held'::text, NULL::jsonb, s.reservation_id;
END
$$;
