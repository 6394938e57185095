-- Who may do what with fluent itself.
--
-- fluent_admin         DBAs: may write the catalog (through the fluent_*
--                      administration functions), protect tables, and choose
--                      the acting user and workspace.
-- fluent_authenticator the role an application logs in as: may choose the
--                      acting user and workspace, then SET ROLE to an
--                      application role that cannot.
-- Everyone else (application roles): may call the checks and run the
-- policy helpers, and nothing more. The catalog is neither readable nor
-- writable by them.
--
-- Roles are cluster-wide, so they may exist already (fluent installed in
-- another database); they are left in place by DROP EXTENSION.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fluent_admin') THEN
        CREATE ROLE fluent_admin NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fluent_authenticator') THEN
        CREATE ROLE fluent_authenticator NOLOGIN;
    END IF;
END
$$;
COMMENT ON ROLE fluent_admin IS 'fluent: may administer the permission catalog and protect tables';
COMMENT ON ROLE fluent_authenticator IS 'fluent: may choose the acting end user and workspace (fluent_set_user)';

REVOKE ALL ON ALL TABLES IN SCHEMA fluent FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA fluent FROM PUBLIC;
-- Policies on application tables call fluent.rls_* as the querying role.
GRANT USAGE ON SCHEMA fluent TO PUBLIC;

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA fluent TO fluent_admin;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA fluent TO fluent_admin;
GRANT EXECUTE ON FUNCTION fluent.invalidate_cache() TO fluent_admin;

COMMENT ON FUNCTION fluent_can(text, text, text) IS
    'Whether the user may perform the action on the module (at any scope) in the current workspace; false for NULL, unknown, ghost and disabled users';
COMMENT ON FUNCTION fluent_can(text, text) IS 'fluent_can() for the acting user set by fluent_set_user()';
COMMENT ON FUNCTION fluent_scope(text, text, text) IS
    'The scope (none, own, team, all) the user has on the module''s action in the current workspace';
COMMENT ON FUNCTION fluent_scope(text, text) IS 'fluent_scope() for the acting user set by fluent_set_user()';
COMMENT ON FUNCTION fluent_set_user(text, boolean) IS
    'Sets the acting end user for the session, or the transaction when local; only superusers, fluent_authenticator and fluent_admin may';
COMMENT ON FUNCTION fluent_reset_user() IS 'Acts for nobody: every check is denied';
COMMENT ON FUNCTION fluent_current_user() IS 'The acting end user, or NULL';
COMMENT ON FUNCTION fluent_set_workspace(text, boolean) IS
    'Sets the current workspace for the session, or the transaction when local; only superusers, fluent_authenticator and fluent_admin may';
COMMENT ON FUNCTION fluent_current_workspace() IS 'The current workspace';
COMMENT ON FUNCTION fluent_protect(regclass, text, name, regclass, name, name, name, name) IS
    'Enables and forces row-level security on a table so that the module''s read, write and delete permissions govern SELECT, INSERT/UPDATE and DELETE';
COMMENT ON FUNCTION fluent_unprotect(regclass) IS 'Removes fluent''s policies from a table and restores its row-level security settings';
