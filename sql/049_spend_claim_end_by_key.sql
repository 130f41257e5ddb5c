-- The claims' end in spend_open (047) and spend_close (048) found by their whole key.
--
-- Both deleted a call's claims with `f.vendor = $1 AND f.token = $2 AND f.fingerprint = ANY($3)`.
-- The pool's sessions plan prepared statements generically (plan_cache_mode=force_generic_plan,
-- leadgen_core/db/pool.py), and PL/pgSQL's statements are prepared statements. How the generic
-- plan of that DELETE searched the primary key (vendor, fingerprint) depended on the table's
-- statistics: in a night, with the claims table analysed while nearly empty, it searched by the
-- vendor alone and filtered the fingerprints, so every claim's end read every index entry of its
-- vendor, the dead ones of the night's ended claims included (auto_explain: "Index Cond: (vendor =
-- $6)", 65 rows for one key; pg_stat_statements, a 10 x 200 night on PostgreSQL 15: 0.200 ms and
-- 28 buffers a call, against 0.015 ms and 4 for spend_open's one-key form). Now each key is
-- deleted by an equality on both columns of the key, which every plan looks up in the primary
-- key; a call ends one key (a batch up to 200). Nothing else changes.

CREATE OR REPLACE FUNCTION spend_open(
    p_tenant text, p_vendor text, p_token uuid, p_run text, p_ttl double precision,
    p_key text, p_source text, p_email text, p_ttl_days integer, p_unknown_hours integer,
    p_day date, p_units bigint, p_cap bigint, p_fingerprint text,
    p_claim_token uuid, p_claim_keys text[]
) RETURNS TABLE (state text, answer jsonb, reservation_id bigint)
LANGUAGE plpgsql VOLATILE SET search_path = public, pg_temp AS $$
DECLARE
    claim_key text;
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
            FOREACH claim_key IN ARRAY coalesce(p_claim_keys, ARRAY[]::text[]) LOOP
                DELETE FROM vendor_inflight f
                WHERE f.vendor = p_vendor AND f.fingerprint = claim_key AND f.token = p_claim_token;
            END LOOP;
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

CREATE OR REPLACE FUNCTION spend_close(
    p_tenant text, p_vendor text, p_reservation bigint, p_day date, p_release bigint,
    p_claim_vendor text, p_claim_token uuid, p_claim_keys text[],
    p_cache_key text, p_cache_value jsonb, p_cache_units bigint, p_cache_days integer,
    p_verifications jsonb
) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = public, pg_temp AS $$
DECLARE
    claim_key text;
BEGIN
    PERFORM leadgen_scope_tenant(p_tenant);  -- sql/047
    IF p_cache_key IS NOT NULL THEN
        INSERT INTO vendor_response_cache (vendor, fingerprint, response, units, expires_at)
        VALUES (p_vendor, p_cache_key, p_cache_value, p_cache_units, now() + make_interval(days => p_cache_days))
        ON CONFLICT (vendor, fingerprint) DO UPDATE SET response = EXCLUDED.response, units = EXCLUDED.units,
            created_at = now(), expires_at = EXCLUDED.expires_at;
    END IF;
    IF p_verifications IS NOT NULL AND jsonb_array_length(p_verifications) > 0 THEN
        INSERT INTO email_verification_cache (email, status, sub_status, free_email, did_you_mean, verified_at)
        SELECT DISTINCT ON (v.row ->> 0)
            v.row ->> 0, v.row ->> 1, v.row ->> 2, (v.row ->> 3)::boolean, v.row ->> 4, now()
        FROM jsonb_array_elements(p_verifications) WITH ORDINALITY AS v(row, n)
        ORDER BY v.row ->> 0, v.n DESC
        ON CONFLICT (email) DO UPDATE SET status = EXCLUDED.status, sub_status = EXCLUDED.sub_status,
            free_email = EXCLUDED.free_email, did_you_mean = EXCLUDED.did_you_mean, verified_at = now();
    END IF;
    IF p_claim_token IS NOT NULL THEN
        FOREACH claim_key IN ARRAY coalesce(p_claim_keys, ARRAY[]::text[]) LOOP
            DELETE FROM vendor_inflight f
            WHERE f.vendor = p_claim_vendor AND f.fingerprint = claim_key AND f.token = p_claim_token;
        END LOOP;
    END IF;
    IF p_release > 0 THEN
        UPDATE vendor_usage u SET units = greatest(u.units - p_release, 0), updated_at = now()
        WHERE u.tenant_id = p_tenant AND u.usage_date = p_day AND u.vendor = p_vendor;
    END IF;
    DELETE FROM spend_reservations s WHERE s.reservation_id = p_reservation;
END
$$;
