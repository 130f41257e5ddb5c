-- The record of a paid call's answer in one statement (leadgen_core/spend/spender.py,
-- `Spender._record`), the counterpart of spend_open (047).
--
-- The record was a tenant transaction sent as one pipeline: BEGIN, the tenant's setting, the cache
-- row, what the answer means (a ZeroBounce answer's verification rows), the claim's end with the
-- release of the reservation's slack and the journal's end, COMMIT and the session's reset: seven
-- statements, each sent and read back by the driver on its own (about 7.4 paid calls a company).
-- Here the same writes run inside one function, called as a statement of its own outside any
-- transaction block: one statement, atomic as any statement, so a crash leaves either all of the
-- record or none of it, as before.
--
-- Order, as before: the cache row and the verification rows, then the claim's rows (claims are
-- locked before ledger rows, as everywhere), then the release of the slack on the ledger, then the
-- journal row. The tenant is set by leadgen_scope_tenant (047), local to the statement's own
-- transaction; the function runs with the caller's rights, so row-level security applies to the
-- ledger and the journal. A caller whose answer cost more than it reserved (P_RELEASE 0; the
-- extra is booked after it, even past the cap) or that records more (a Lusha bulk answer's
-- per-company cache rows, written before it) calls it inside its own tenant transaction.
--
-- P_VERIFICATIONS is a JSON array of [email, status, sub_status, free_email, did_you_mean]
-- (email lower-case), upserted into email_verification_cache (the only writer of that cache: a
-- verification is always a paid answer's record); an address given twice keeps its last row.
CREATE FUNCTION spend_close(
    p_tenant text, p_vendor text, p_reservation bigint, p_day date, p_release bigint,
    p_claim_vendor text, p_claim_token uuid, p_claim_keys text[],
    p_cache_key text, p_cache_value jsonb, p_cache_units bigint, p_cache_days integer,
    p_verifications jsonb
) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = public, pg_temp AS $$
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
        DELETE FROM vendor_inflight f
        WHERE f.vendor = p_claim_vendor AND f.token = p_claim_token AND f.fingerprint = ANY(p_claim_keys);
    END IF;
    IF p_release > 0 THEN
        UPDATE vendor_usage u SET units = greatest(u.units - p_release, 0), updated_at = now()
        WHERE u.tenant_id = p_tenant AND u.usage_date = p_day AND u.vendor = p_vendor;
    END IF;
    DELETE FROM spend_reservations s WHERE s.reservation_id = p_reservation;
END
$$;
