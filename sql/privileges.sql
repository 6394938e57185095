-- Who may do what with fluent itself.
--
-- fluent_admin         DBAs: may write the catalog (through the fluent_*
--                      administration functions), protect tables, and choose
--                      the acting user and workspace.
-- fluent_authenticator the role an application logs in as: may choose the
--                      acting user and workspace, then SET ROLE to an
--                      application role that cannot.
-- fluent_reader        reporting tools and auditors: may read the reporting
--                      views, the templates and the audit log, and explain
--                      anyone's permissions; may change nothing.
-- Everyone else (application roles): may call the checks and run the
-- policy helpers, and nothing more. The catalog is neither readable nor
-- writable by them.
-- fluent_owner         owns the catalog and the SECURITY DEFINER functions:
--                      what fluent runs elevated runs as this role, which
--                      cannot log in, is no superuser, does not bypass
--                      row-level security and is a member of nothing (see
--                      the end of this file).
--
-- Roles are cluster-wide, so they may exist already (fluent installed in
-- another database); they are left in place by DROP EXTENSION.

-- Everything below resolves names in pg_catalog and fluent's own schema only
-- (see "Install-time safety" in README.md); the extension schema comes back at the end.
SET LOCAL search_path TO pg_catalog, pg_temp;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fluent_admin') THEN
        CREATE ROLE fluent_admin NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fluent_authenticator') THEN
        CREATE ROLE fluent_authenticator NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fluent_reader') THEN
        CREATE ROLE fluent_reader NOLOGIN;
    END IF;
    -- On Citus, the role the coordinator's catalog changes reach the
    -- workers as (sql/citus.sql); it logs in only once fluent_citus_setup()
    -- says so, and may do nothing but send them.
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fluent_replicator') THEN
        CREATE ROLE fluent_replicator NOLOGIN NOINHERIT;
    END IF;
END
$$;
COMMENT ON ROLE fluent_admin IS 'fluent: may administer the permission catalog and protect tables';
COMMENT ON ROLE fluent_authenticator IS 'fluent: may choose the acting end user and workspace (fluent_set_user)';
COMMENT ON ROLE fluent_reader IS 'fluent: may read the reporting views and the audit log';
COMMENT ON ROLE fluent_replicator IS 'fluent: on Citus, sends the coordinator''s catalog changes to the workers';

REVOKE ALL ON ALL TABLES IN SCHEMA fluent FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA fluent FROM PUBLIC;
-- Policies on application tables call fluent.rls_* as the querying role.
GRANT USAGE ON SCHEMA fluent TO PUBLIC;

-- Everything in the schema is readable by administrators; the catalog is
-- writable by them. The audit log and the shipped templates are not: the
-- log is written only by the audit trigger, as the catalog owner.
GRANT SELECT ON ALL TABLES IN SCHEMA fluent TO fluent_admin;
-- ... except the token settings, which hold secrets (superusers only).
REVOKE ALL ON fluent.token_settings FROM fluent_admin;
-- ... and the key that signs the identity sent to Citus workers.
REVOKE ALL ON fluent.citus_secret FROM fluent_admin;
-- Both also have row security, with no policy: pg_read_all_data (a backup
-- or analytics role) reads every table past its grants, but not past row
-- security. Their owner, the catalog owner, and superusers still read them.
ALTER TABLE fluent.token_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE fluent.citus_secret ENABLE ROW LEVEL SECURITY;
GRANT INSERT, UPDATE, DELETE ON fluent.workspaces, fluent.users, fluent.modules, fluent.actions, fluent.roles,
    fluent.permissions, fluent.grants, fluent.overrides, fluent.teams, fluent.team_members, fluent.admin_rights,
    fluent.requirements, fluent.item_roles, fluent.item_role_actions,
    fluent.protected_tables, fluent.protected_columns, fluent.template_applications TO fluent_admin;
-- Deleting a user or module locks its tree's guard as the deleting role
-- (fluent._detach_children, so that the cascade is attributed to it).
GRANT UPDATE ON fluent.invariant_guards TO fluent_admin;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA fluent TO fluent_admin;
REVOKE ALL ON SEQUENCE fluent.audit_log_audit_id_seq FROM fluent_admin;

-- The declarations of the delegable administration functions are made
-- (sql/admin.sql): what made them goes.
DROP FUNCTION fluent._delegable(text, fluent.admin_right, text, boolean);

-- Functions are executable only by the roles that may use them (PostgreSQL
-- grants EXECUTE to PUBLIC by default). Trigger and planner support
-- functions need none. Everyone: the checks, the policy
-- helpers (policies call them as the querying role), reading one's identity,
-- explaining oneself, two trigger helpers, and choosing the acting user and
-- workspace (refused inside to all but trusted roles). fluent_admin:
-- administration and protection, with the internal helpers those call as
-- their caller. Nobody else: what the catalog owner alone runs (cache loads,
-- audit writes, event triggers, template loading).
DO $$
DECLARE
    f regprocedure;
    fname text;
    rettype regtype;
    ext oid := (SELECT oid FROM pg_extension WHERE extname = 'fluent');
BEGIN
    FOR f, fname, rettype IN
        SELECT p.oid::regprocedure, p.proname, p.prorettype FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
         WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_extension'::regclass
           AND d.refobjid = ext AND d.deptype = 'e'
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        -- Trigger functions need no EXECUTE: PostgreSQL checks it only when
        -- a trigger is created.
        IF rettype IN ('trigger'::regtype, 'event_trigger'::regtype) THEN
            CONTINUE;
        -- Nor do planner support functions (they return internal): the
        -- planner calls them without a privilege check.
        ELSIF rettype = 'internal'::regtype THEN
            CONTINUE;
        -- fluent_set_user and fluent_set_workspace decide who is trusted
        -- themselves (src/identity.rs), with a hint for the NOINHERIT member
        -- of a trusted role, which an EXECUTE grant to that role would not reach.
        -- The delegable administration functions (sql/admin.sql: fluent_<name>
        -- and fluent._do_<name>, declared by fluent._delegable) authorize
        -- their caller themselves: a DBA, or an end user holding the right.
        ELSIF fname IN ('fluent_can', 'fluent_scope', 'fluent_visible_modules', 'fluent_current_user',
                     'fluent_current_workspace', 'fluent_reset_user', 'fluent_explain',
                     'fluent_set_user', 'fluent_set_workspace', 'fluent_authenticate', 'fluent_verified_user',
                     'fluent_who_can', '_who_can', '_citus_placed_rows', 'fluent_test_act_as', 'fluent_test_reset', '_test_role',
                     '_current_role_is_superuser', '_restoring', '_caller', '_column_limits_apply', '_table_name_of', '_citus_colocated')
           OR fname LIKE 'rls\_%' OR fname LIKE '\_do\_%'
           OR (fname LIKE 'fluent\_%' AND EXISTS (SELECT 1 FROM pg_proc d
                                                  WHERE d.pronamespace = 'fluent'::regnamespace
                                                    AND d.proname = '_do_' || substr(fname, length('fluent_') + 1))) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f);
        -- What only the catalog owner runs: loads, audit writes, template loading, the delegation checks the _do_*
        -- functions make as the owner, and the implementations they run (fluent._<name>).
        ELSIF fname NOT LIKE '\_load\_%' AND fname NOT IN ('_audit_insert', '_template_matrix',
                     '_take_caller', '_authorize', '_authorize_acceptance', '_scope_of', '_holds_right', '_create_token_user',
                     '_check_assignment', '_audit_assignment', '_assigned_item_actions', '_open_item_actions',
                     '_open_item_role_names', '_has_rows', '_citus_set_applying', '_citus_apply_rows', '_citus_send_rows',
                     '_citus_on_workers', '_citus_check_bus_types')
           AND NOT EXISTS (SELECT 1 FROM pg_proc d WHERE d.pronamespace = 'fluent'::regnamespace AND d.proname = '_do' || fname) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO fluent_admin', f);
        END IF;
    END LOOP;
END
$$;
-- fluent_protect() attaches the item roles' triggers as the DBA calling it
-- (CREATE TRIGGER takes EXECUTE on the function).
GRANT EXECUTE ON FUNCTION fluent._check_item_assignment(), fluent._check_item_owner(), fluent._check_item_parent()
    TO fluent_admin;
-- Reporting tools and auditors check protections too.
GRANT SELECT ON fluent.protected_tables, fluent.protected_columns TO fluent_reader;
GRANT EXECUTE ON FUNCTION @extschema@.fluent_protection_problems(), fluent._descendants(regclass), fluent._policies_of(regclass),
    fluent._permission_matrix(), fluent._effective_holders(text), fluent._effective_profiles(text, text)
    TO fluent_reader;
-- ... and their column limits, against what fluent_protect_columns() makes.
GRANT EXECUTE ON FUNCTION fluent._column_limit_problems(fluent.protected_tables), fluent._column_write_checks(fluent.protected_tables),
    fluent._masked_view_sql(fluent.protected_tables), fluent._rows_reached_sql(fluent.protected_tables, text, text),
    fluent._scope_rows_sql(fluent.protected_tables, text, text), fluent._item_rows_sql(fluent.protected_tables, text, text),
    fluent._item_trigger_problems(fluent.protected_tables), fluent._item_triggers(fluent.protected_tables),
    fluent._item_foreign_keys(fluent.protected_tables),
    fluent._has_item_foreign_key(regclass, name, regclass, name, boolean),
    fluent._item_key_pairs(regclass, name, regclass, name), fluent._item_key_lists(regclass, name, regclass, name),
    fluent._item_trigger_detail(name), fluent._item_triggers_named(regclass), fluent._foreign_key_pairs(oid),
    fluent._reach_sql(text, text, text, text), fluent._owner_reach_sql(text, text, name), fluent._key_test_sql(text, text, text, boolean), fluent._user_key_sql(text),
    fluent._reached_keys_sql(text, text, text), fluent._typed_keys_sql(text, text, text), fluent._key_kind(regclass, name, text),
    fluent._unsupported_key_type(regclass, name, regtype, text), fluent._citus_node(), fluent._rows_of_sql(regclass, name[], text),
    fluent._pointed_at_sql(regclass, name, regclass, name, text), fluent._citus_distribution_column(regclass),
    fluent._is_citus_table(regclass), fluent._policies_named(regclass), fluent._citus_shard_problems(oid[]),
    fluent._citus_local_shard_problems(jsonb), fluent._relation_named(text), fluent._outside_children(oid[], oid[]),
    fluent._local_rows_sql(oid, text[], text)
    TO fluent_reader;

-- On Citus, fluent_replicator sends the catalog changes (sql/citus.sql):
-- the bus is the one table it may write, on every node (Citus gives the
-- bus's placements the table's privileges when it places them).
GRANT INSERT ON fluent.citus_bus TO fluent_replicator;
GRANT SELECT ON fluent.admin_rights TO fluent_reader;
-- Assignable roles (issue 19): catalog data like the rights, and shipped
-- with the templates.
GRANT INSERT, UPDATE, DELETE ON fluent.assignable_roles TO fluent_admin;
GRANT SELECT ON fluent.assignable_roles, fluent.template_assignable_roles TO fluent_reader;
GRANT SELECT ON fluent.reporting_lines TO fluent_reader;
-- ... whose rows come from a function (sql/views.sql).
GRANT EXECUTE ON FUNCTION fluent._reporting_lines() TO fluent_reader;
GRANT SELECT ON fluent.permission_matrix, fluent.item_role_matrix, fluent.effective_permissions, fluent.role_members, fluent.users_without_roles,
    fluent.privileged_users, fluent.access_review, fluent.grants_due_for_review, fluent.expiring_access, fluent.role_template_diff,
    fluent.audit_log, fluent.protection_status, fluent.templates, fluent.template_modules, fluent.template_roles, fluent.template_permissions,
    fluent.template_item_roles, fluent.item_roles, fluent.item_role_actions, fluent.citus_audit_log
    TO fluent_reader;
-- ... which reads the other Citus nodes' audit logs as the caller.
GRANT EXECUTE ON FUNCTION fluent._citus_node_audit_logs(), fluent._citus_other_nodes() TO fluent_reader;

-- The comments of the checks src/checks.rs defines (every other function's
-- is next to its definition).
COMMENT ON FUNCTION @extschema@.fluent_can(text, text, text) IS
    'Whether the user may perform the action on the module (at any scope) in the current workspace; false for NULL, unknown, ghost, disabled and invited users';
COMMENT ON FUNCTION @extschema@.fluent_can(text, text) IS 'fluent_can() for the acting user set by fluent_set_user()';
COMMENT ON FUNCTION @extschema@.fluent_scope(text, text, text) IS
    'The scope (none, own, direct, team, all) the user has on the module''s action in the current workspace';
COMMENT ON FUNCTION @extschema@.fluent_scope(text, text) IS 'fluent_scope() for the acting user set by fluent_set_user()';
COMMENT ON FUNCTION @extschema@.fluent_visible_modules(text) IS
    'The enabled modules on which the user has some access in the current workspace: what navigation should show';
COMMENT ON FUNCTION @extschema@.fluent_visible_modules() IS 'fluent_visible_modules() for the acting user';

-- The catalog owner. What fluent runs elevated (its cache loads, audit
-- writes and delegated administration, src/owner.rs and the SECURITY
-- DEFINER functions) runs as fluent_owner, which holds exactly this: the
-- catalog's tables, sequences and views, its SECURITY DEFINER functions,
-- EXECUTE on fluent's other functions, and SET on fluent.caller_role (which
-- the administration implementations reset through their SET clause). One
-- thing stays with the installing superuser, because it needs its powers:
-- the event trigger function that gives new partitions and children their
-- policies and column triggers (fluent._protect_new_children: creating
-- those on another role's table takes its owner or a superuser; it only
-- creates them). An existing fluent_owner with more than that (a role of
-- that name made by someone else) is refused: it would own the catalog.
DO $$
DECLARE
    ext oid := (SELECT oid FROM pg_extension WHERE extname = 'fluent');
    obj record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fluent_owner') THEN
        CREATE ROLE fluent_owner NOLOGIN NOINHERIT;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = 'fluent_owner'
                 AND (r.rolsuper OR r.rolbypassrls OR r.rolcanlogin OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication))
       OR EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid IN (m.roleid, m.member)
                   WHERE r.rolname = 'fluent_owner') THEN
        RAISE EXCEPTION 'role "fluent_owner" exists with more than fluent gives it'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'fluent makes fluent_owner the owner of its catalog: it must not log in, be a superuser, bypass row-level security, create roles or databases, replicate, have members or be a member of another role.',
                  HINT = 'Drop that role, or take those powers and memberships away, and try again.';
    END IF;
    COMMENT ON ROLE fluent_owner IS 'fluent: owns the permission catalog; what fluent runs elevated runs as this role';
    GRANT SET ON PARAMETER fluent.caller_role TO fluent_owner;
    FOR obj IN
        SELECT c.oid::regclass AS rel, c.relkind FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext
           AND d.deptype = 'e' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
           AND c.relnamespace = 'fluent'::regnamespace
         ORDER BY c.relkind = 'S'   -- a table takes its own sequences along
    LOOP
        CONTINUE WHEN (SELECT c.relowner FROM pg_class c WHERE c.oid = obj.rel) = 'fluent_owner'::regrole;
        EXECUTE format('ALTER %s %s OWNER TO fluent_owner',
                       CASE obj.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
                       obj.rel);
    END LOOP;
    FOR obj IN
        SELECT p.oid::regprocedure AS f, p.prosecdef FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
         WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext
           AND d.deptype = 'e' AND p.pronamespace = 'fluent'::regnamespace
    LOOP
        IF obj.prosecdef AND obj.f <> 'fluent._protect_new_children()'::regprocedure THEN
            EXECUTE format('ALTER FUNCTION %s OWNER TO fluent_owner', obj.f);
        ELSE
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO fluent_owner', obj.f);
        END IF;
    END LOOP;
END
$$;

-- An owner may redefine what it owns: a trigger, a rule, a default or a
-- check on a catalog table, or a SET clause or SECURITY INVOKER on a
-- SECURITY DEFINER function, would run its code as the superuser who next
-- writes the catalog or calls the function. fluent_owner's code only reads
-- and writes rows, so every DDL command by fluent_owner, or by a role with
-- its privileges (only a CREATEROLE role can grant it), is refused; the
-- install and update scripts and restores run as superusers.
CREATE FUNCTION fluent._catalog_owner_changes_nothing() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT fluent._current_role_is_superuser()
       AND pg_has_role(current_user::regrole::oid,
                       (SELECT c.relowner FROM pg_class c WHERE c.oid = 'fluent.workspaces'::regclass), 'USAGE') THEN
        RAISE EXCEPTION 'permission denied for % as fluent''s catalog owner', tg_tag
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'fluent_owner owns fluent''s catalog and changes rows only; object definitions change through fluent''s install and update scripts.';
    END IF;
END $$;
REVOKE ALL ON FUNCTION fluent._catalog_owner_changes_nothing() FROM PUBLIC;
CREATE EVENT TRIGGER fluent_catalog_owner_changes_nothing ON ddl_command_start
    EXECUTE FUNCTION fluent._catalog_owner_changes_nothing();

-- Issue 19: invitations and the audit view. Inviting and accepting are
-- delegable (fluent_accept_invitation also lets the application's
-- authenticator accept, src/delegation.rs); the ticket that says so is
-- redeemed by the catalog owner only, like _take_caller.
GRANT EXECUTE ON FUNCTION fluent._identity_caller() TO PUBLIC;
REVOKE EXECUTE ON FUNCTION fluent._caller_chooses_identity(bigint) FROM fluent_admin;
-- Every role may read the audit view: it shows only what the acting user may read.
GRANT SELECT ON fluent.workspace_audit_log TO PUBLIC;
GRANT SELECT ON fluent.invitations TO fluent_reader;

SET LOCAL search_path TO @extschema@, pg_temp;
