-- Triggers on the catalog tables.
--
-- invalidate_cache: every change to what decides a permission invalidates
-- every backend's permission cache when it commits (src/cache.rs).
-- Statement-level, so a bulk load sends one message, and TRUNCATE is covered.
--
-- audit_change: every change to the catalog is written to fluent.audit_log
-- in the same transaction (src/audit.rs), one entry per row.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['workspaces', 'users', 'modules', 'actions', 'roles',
                             'permissions', 'grants', 'overrides', 'teams', 'team_members']
    LOOP
        EXECUTE format('CREATE TRIGGER invalidate_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
                        ON fluent.%I FOR EACH STATEMENT EXECUTE FUNCTION fluent.invalidate_cache()', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['workspaces', 'users', 'modules', 'actions', 'roles', 'permissions', 'grants',
                             'overrides', 'teams', 'team_members', 'protected_tables', 'template_applications']
    LOOP
        EXECUTE format('CREATE TRIGGER audit_change AFTER INSERT OR UPDATE OR DELETE
                        ON fluent.%I FOR EACH ROW EXECUTE FUNCTION fluent.audit_change()', t);
        EXECUTE format('CREATE TRIGGER audit_truncate AFTER TRUNCATE
                        ON fluent.%I FOR EACH STATEMENT EXECUTE FUNCTION fluent.audit_change()', t);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION fluent.invalidate_cache(), fluent.audit_change() FROM PUBLIC;

-- The audit log is append-only. Privileges already keep every role but the
-- owner from changing it; this also refuses a role that was granted UPDATE,
-- DELETE or TRUNCATE by mistake.
CREATE FUNCTION fluent._audit_log_is_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE oid = current_user::regrole) THEN
        RAISE EXCEPTION 'fluent.audit_log is append-only: entries cannot be changed or removed'
            USING ERRCODE = 'insufficient_privilege', HINT = 'Only a superuser may prune the audit trail.';
    END IF;
    IF TG_OP = 'UPDATE' THEN RETURN NEW; END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON fluent.audit_log
    FOR EACH ROW EXECUTE FUNCTION fluent._audit_log_is_append_only();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON fluent.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION fluent._audit_log_is_append_only();
