-- The application group role belongs to this database, not to the whole server.
--
-- Until now every deployment granted its tables to one server-wide group, leadgen_rw, so the app
-- role of a second deployment on the same server read (and updated) the first one's tenants. The
-- grants move to a group of this database only: `leadgen_rw_<database>` (derived once, here, from
-- the database name; a deployment may name it with the session setting leadgen.group_role, which
-- the migrator sets from LEADGEN_GROUP_ROLE), and the database no longer lets PUBLIC connect.
-- `leadgen_group_role()` answers the name; `leadgen_move_shared_grants()` moves whatever a
-- migration still grants to leadgen_rw (the name later files keep using) onto that group, and the
-- migrator calls it after every run.

DO $$
DECLARE
    db  text := current_database();
    clean text := regexp_replace(lower(current_database()), '[^a-z0-9_]+', '_', 'g');
    grp text := nullif(current_setting('leadgen.group_role', true), '');
    owner_of text;
BEGIN
    IF grp IS NULL THEN
        IF clean = db AND length(clean) <= 52 THEN
            grp := 'leadgen_rw_' || clean;
        ELSE  -- a long or unusual name: keep it readable and unique
            grp := 'leadgen_rw_' || left(clean, 40) || '_' || left(md5(db), 8);
        END IF;
    END IF;
    IF grp !~ '^[a-z_][a-z0-9_]{0,62}$' OR grp = 'leadgen_rw' THEN
        RAISE EXCEPTION 'LEADGEN_GROUP_ROLE % is not a valid per-database role name', grp;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = grp) THEN
        -- Another database's group with this name would join the two deployments again.
        owner_of := shobj_description((SELECT oid FROM pg_roles WHERE rolname = grp), 'pg_authid');
        IF owner_of IS DISTINCT FROM 'leadgen application group of database ' || db THEN
            RAISE EXCEPTION 'role % already exists and is not the leadgen group of database %', grp, db;
        END IF;
    ELSE
        EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE', grp);
        EXECUTE format('COMMENT ON ROLE %I IS %L', grp, 'leadgen application group of database ' || db);
    END IF;
    EXECUTE format(
        'CREATE FUNCTION leadgen_group_role() RETURNS text LANGUAGE sql IMMUTABLE AS %L',
        format('SELECT %L::text', grp)
    );
END
$$;

-- Move every privilege leadgen_rw holds in this database (tables, sequences, functions, the
-- schema) onto this database's group, then take them from leadgen_rw.
CREATE FUNCTION leadgen_move_shared_grants() RETURNS integer
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    grp text := leadgen_group_role();
    shared oid := (SELECT oid FROM pg_roles WHERE rolname = 'leadgen_rw');
    r record;
    moved integer := 0;
BEGIN
    IF shared IS NULL THEN
        RETURN 0;
    END IF;
    FOR r IN
        SELECT c.relname, c.relkind, a.privilege_type
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        CROSS JOIN LATERAL aclexplode(c.relacl) a
        WHERE n.nspname = 'public' AND a.grantee = shared
    LOOP
        IF r.relkind = 'S' THEN
            EXECUTE format('GRANT %s ON SEQUENCE %I TO %I', r.privilege_type, r.relname, grp);
            EXECUTE format('REVOKE %s ON SEQUENCE %I FROM leadgen_rw', r.privilege_type, r.relname);
        ELSE
            EXECUTE format('GRANT %s ON TABLE %I TO %I', r.privilege_type, r.relname, grp);
            EXECUTE format('REVOKE %s ON TABLE %I FROM leadgen_rw', r.privilege_type, r.relname);
        END IF;
        moved := moved + 1;
    END LOOP;
    FOR r IN
        SELECT p.oid::regprocedure AS fn
        FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace
        CROSS JOIN LATERAL aclexplode(p.proacl) a
        WHERE n.nspname = 'public' AND a.grantee = shared
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', r.fn, grp);
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM leadgen_rw', r.fn);
        moved := moved + 1;
    END LOOP;
    IF has_schema_privilege(shared, 'public', 'USAGE')
       AND EXISTS (SELECT 1 FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
                   WHERE n.nspname = 'public' AND a.grantee = shared) THEN
        EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', grp);
        REVOKE USAGE ON SCHEMA public FROM leadgen_rw;
        moved := moved + 1;
    END IF;
    RETURN moved;
END
$$;
REVOKE ALL ON FUNCTION leadgen_move_shared_grants() FROM PUBLIC;

SELECT leadgen_move_shared_grants();

-- Only this database's group (and the owner) may connect; PUBLIC could, by default.
DO $$
BEGIN
    EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', current_database(), leadgen_group_role());
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', current_database(), current_user);
END
$$;
