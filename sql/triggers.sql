-- Every change to the catalog invalidates every backend's permission cache
-- when it commits (src/cache.rs). Statement-level, so a bulk load sends one
-- message, and TRUNCATE is covered too.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['workspaces', 'users', 'modules', 'actions', 'roles',
                             'permissions', 'grants', 'teams', 'team_members']
    LOOP
        EXECUTE format('CREATE TRIGGER invalidate_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
                        ON fluent.%I FOR EACH STATEMENT EXECUTE FUNCTION fluent.invalidate_cache()', t);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION fluent.invalidate_cache() FROM PUBLIC;
