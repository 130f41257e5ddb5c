-- The suppression rule's one helper: a domain and every parent domain it sits under.
--
-- A suppressed domain covers its subdomains (suppressing `acme.sg` covers `mail.acme.sg`). The
-- rule (leadgen_core/suppression.py) asks `se.value = ANY(leadgen_domain_suffixes(d))`, which
-- the primary key (tenant_id, value) answers with a few index probes instead of a scan of the
-- tenant's whole list per candidate. 'mail.acme.sg' -> {mail.acme.sg, acme.sg, sg}.
CREATE FUNCTION leadgen_domain_suffixes(domain text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(array_to_string(parts[i:], '.') ORDER BY i), '{}')
    FROM (SELECT string_to_array(lower(domain), '.') AS parts) p,
         generate_subscripts(p.parts, 1) AS i
    WHERE p.parts[i] <> ''
$$;
