-- Helpers for application test suites (README "Testing your policies"):
-- act as an end user, or as nobody, through the role the application
-- queries as, for the rest of the test's transaction, so that row-level
-- security applies as it does in production. A test runner connected as a
-- superuser would otherwise bypass every policy, and its tests would pass
-- or fail for the wrong reasons.
--
-- The helpers have no SET clause: a function's SET clause undoes, when it
-- returns, every SET LOCAL made inside it, SET LOCAL ROLE included. Their
-- bodies name every object with its schema instead.

SET LOCAL search_path TO pg_catalog, pg_temp;

-- The checks the helpers share: a test runner, and an application role that
-- row-level security applies to. Returns the role's name, quoted.
-- SECURITY DEFINER: it runs as the application role too (after a first
-- call), which may not execute fluent's internal checks; it checks the
-- session user, which no role switch changes.
CREATE FUNCTION fluent._test_role(app_role regrole) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    exempt boolean;
    role_name name;
BEGIN
    IF NOT fluent._session_user_is_dba() THEN
        RAISE EXCEPTION 'fluent test helpers are for test suites run as a superuser or a member of fluent_admin'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Connect the test runner as such a role: the helpers choose the acting user, which only DBAs may do freely.';
    END IF;
    PERFORM fluent._not_null(app_role, 'app_role');
    SELECT r.rolsuper OR r.rolbypassrls, r.rolname INTO exempt, role_name FROM pg_roles r WHERE r.oid = app_role;
    IF exempt THEN
        RAISE EXCEPTION 'role % bypasses row-level security', app_role
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Name the role the application queries as: tests run as a superuser or BYPASSRLS role see every row.';
    END IF;
    RETURN pg_catalog.quote_ident(role_name);
END $$;

-- Act as user_key (NULL: nobody) through app_role until the transaction
-- ends, or until the next call: back to the session's own role, choose the
-- user for this transaction, then SET LOCAL ROLE.
CREATE FUNCTION @extschema@.fluent_test_act_as(user_key text, app_role regrole) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    role_name text := fluent._test_role(app_role);
BEGIN
    EXECUTE 'RESET ROLE';
    IF user_key IS NULL THEN
        PERFORM @extschema@.fluent_reset_user();
    ELSE
        PERFORM @extschema@.fluent_set_user(user_key, true);
    END IF;
    EXECUTE pg_catalog.format('SET LOCAL ROLE %s', role_name);
    RETURN pg_catalog.format('acting as %s through role %s', coalesce(user_key, 'nobody'), role_name);
END $$;
COMMENT ON FUNCTION @extschema@.fluent_test_act_as(text, regrole) IS
    'For application test suites run as a DBA: act as the user (NULL: nobody) through the application role until the transaction ends, so that row-level security applies';

-- Back to the test runner's own role, acting for nobody.
CREATE FUNCTION @extschema@.fluent_test_reset() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'RESET ROLE';
    PERFORM @extschema@.fluent_reset_user();
END $$;
COMMENT ON FUNCTION @extschema@.fluent_test_reset() IS 'For application test suites: back to the test runner''s own role, acting for nobody';

SET LOCAL search_path TO @extschema@, pg_temp;
