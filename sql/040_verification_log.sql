-- Every paid verification, appended by a trigger on the verification cache, so a check can tell
-- whether an address was verified twice within EMAIL_VERIFY_TTL_DAYS (paid twice for nothing).
-- The pipeline never reads or writes the log directly: the trigger and the reader are SECURITY
-- DEFINER functions owned by the migrating role.
CREATE TABLE email_verification_log (
    email        text NOT NULL,
    status       text NOT NULL,
    verified_at  timestamptz NOT NULL
);
CREATE INDEX idx_email_verification_log_email ON email_verification_log (email, verified_at);

CREATE FUNCTION leadgen_log_verification() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.verified_at IS DISTINCT FROM OLD.verified_at THEN
        INSERT INTO email_verification_log (email, status, verified_at) VALUES (NEW.email, NEW.status, NEW.verified_at);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER trg_email_verification_log
AFTER INSERT OR UPDATE OF verified_at ON email_verification_cache
FOR EACH ROW EXECUTE FUNCTION leadgen_log_verification();

-- Per address, the verifications within TTL_DAYS of its latest one.
CREATE FUNCTION leadgen_verifications_within(emails text[], ttl_days integer)
RETURNS TABLE (email text, verifications bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT l.email, count(*)
    FROM email_verification_log l
    JOIN (SELECT email, max(verified_at) AS latest FROM email_verification_log
          WHERE email = ANY(emails) GROUP BY email) m ON m.email = l.email
    WHERE l.verified_at > m.latest - make_interval(days => ttl_days)
    GROUP BY l.email
$$;
