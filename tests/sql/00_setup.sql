-- Installs fluent and the roles every test file uses. Runs once, first.
CREATE EXTENSION fluent;
CREATE ROLE app NOLOGIN;             -- the unprivileged application role
-- The application here also reports on everyone's permissions (the tests
-- compare users side by side) ...
GRANT fluent_reader TO app;
CREATE ROLE web NOLOGIN;             -- ... this one is a plain web role
CREATE ROLE auth LOGIN;              -- the role the application logs in as
GRANT fluent_authenticator TO auth;
GRANT app TO auth;
GRANT web TO auth;
CREATE ROLE noinh_auth LOGIN NOINHERIT;   -- a member of fluent_authenticator without its privileges
GRANT fluent_authenticator TO noinh_auth;
CREATE ROLE dba LOGIN;
GRANT fluent_admin TO dba;
-- Test helper: switch the acting user while the current role is `app`,
-- the way a trusted wrapper would.
CREATE SCHEMA test_helpers;
GRANT USAGE ON SCHEMA test_helpers TO PUBLIC;
CREATE FUNCTION test_helpers.act_as(u text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF u IS NULL THEN PERFORM fluent_reset_user(); ELSE PERFORM fluent_set_user(u); END IF;
    RETURN coalesce('acting as ' || fluent_current_user(), 'acting as nobody');
END $$;
-- Runs a statement and returns its SQLSTATE and message instead of failing.
CREATE FUNCTION test_helpers.try(sql text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT extname, extversion FROM pg_extension WHERE extname = 'fluent';
