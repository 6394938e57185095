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
END
$$;
COMMENT ON ROLE fluent_admin IS 'fluent: may administer the permission catalog and protect tables';
COMMENT ON ROLE fluent_authenticator IS 'fluent: may choose the acting end user and workspace (fluent_set_user)';
COMMENT ON ROLE fluent_reader IS 'fluent: may read the reporting views and the audit log';

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
GRANT INSERT, UPDATE, DELETE ON fluent.workspaces, fluent.users, fluent.modules, fluent.actions, fluent.roles,
    fluent.permissions, fluent.grants, fluent.overrides, fluent.teams, fluent.team_members, fluent.admin_rights,
    fluent.requirements, fluent.item_roles, fluent.item_role_actions,
    fluent.protected_tables, fluent.protected_columns, fluent.template_applications TO fluent_admin;
-- Deleting a user or module locks its tree's guard as the deleting role
-- (fluent._detach_children, so that the cascade is attributed to it).
GRANT UPDATE ON fluent.invariant_guards TO fluent_admin;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA fluent TO fluent_admin;
REVOKE ALL ON SEQUENCE fluent.audit_log_audit_id_seq FROM fluent_admin;

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
        -- The delegable administration functions (sql/admin.sql) authorize
        -- their caller themselves: a DBA, or an end user holding the right.
        ELSIF fname IN ('fluent_can', 'fluent_scope', 'fluent_visible_modules', 'fluent_current_user',
                     'fluent_current_workspace', 'fluent_reset_user', 'fluent_explain',
                     'fluent_set_user', 'fluent_set_workspace', 'fluent_authenticate', 'fluent_verified_user',
                     'fluent_who_can', '_who_can', 'fluent_test_act_as', 'fluent_test_reset', '_test_role',
                     '_current_role_is_superuser', '_restoring', '_caller', '_column_limits_apply',
                     'fluent_create_role', 'fluent_drop_role', 'fluent_set_permission', 'fluent_clear_permission',
                     'fluent_alter_role', 'fluent_clone_role', 'fluent_reset_role', 'fluent_create_user',
                     'fluent_set_user_status', 'fluent_set_manager', 'fluent_drop_user', 'fluent_grant_role',
                     'fluent_revoke_role', 'fluent_create_team', 'fluent_drop_team', 'fluent_add_team_member',
                     'fluent_remove_team_member', 'fluent_set_override', 'fluent_clear_override', 'fluent_mark_reviewed',
                     'fluent_set_assignable', 'fluent_clear_assignable')
           OR fname LIKE 'rls\_%' OR fname LIKE '\_do\_%' THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f);
        -- What only the catalog owner runs: loads, audit writes, template loading, and the delegation checks the _do_*
        -- implementations make as the owner.
        ELSIF fname NOT LIKE '\_load\_%' AND fname NOT IN ('_audit_insert', '_template_matrix',
                     '_take_caller', '_authorize', '_scope_of', '_holds_right', '_create_token_user',
                     '_check_assignment', '_audit_assignment', '_assigned_item_actions', '_open_item_actions',
                     '_open_item_role_names', '_has_rows') THEN
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
    fluent._reach_sql(text, text, text, text), fluent._key_test_sql(text, text, text, boolean), fluent._user_key_sql(text),
    fluent._reached_keys_sql(text, text, text), fluent._typed_keys_sql(text, text, text), fluent._key_kind(regclass, name, text),
    fluent._unsupported_key_type(regclass, name, regtype, text)
    TO fluent_reader;

GRANT SELECT ON fluent.admin_rights TO fluent_reader;
-- Assignable roles (issue 19): catalog data like the rights, and shipped
-- with the templates.
GRANT INSERT, UPDATE, DELETE ON fluent.assignable_roles TO fluent_admin;
GRANT SELECT ON fluent.assignable_roles, fluent.template_assignable_roles TO fluent_reader;
COMMENT ON FUNCTION @extschema@.fluent_set_assignable(text, text) IS
    'Delegated administration: lets holders of the role grant, revoke, clone, reset and drop the assignable role (fluent.assignable_roles); the first one turns the rule on in the workspace';
COMMENT ON FUNCTION @extschema@.fluent_clear_assignable(text, text) IS
    'Stops holders of the role assigning the assignable role';
GRANT SELECT ON fluent.reporting_lines TO fluent_reader;
GRANT SELECT ON fluent.permission_matrix, fluent.item_role_matrix, fluent.effective_permissions, fluent.role_members, fluent.users_without_roles,
    fluent.privileged_users, fluent.access_review, fluent.grants_due_for_review, fluent.expiring_access, fluent.role_template_diff,
    fluent.audit_log, fluent.protection_status, fluent.templates, fluent.template_modules, fluent.template_roles, fluent.template_permissions,
    fluent.template_item_roles, fluent.item_roles, fluent.item_role_actions
    TO fluent_reader;

COMMENT ON FUNCTION @extschema@.fluent_can(text, text, text) IS
    'Whether the user may perform the action on the module (at any scope) in the current workspace; false for NULL, unknown, ghost, disabled and invited users';
COMMENT ON FUNCTION @extschema@.fluent_can(text, text) IS 'fluent_can() for the acting user set by fluent_set_user()';
COMMENT ON FUNCTION @extschema@.fluent_scope(text, text, text) IS
    'The scope (none, own, direct, team, all) the user has on the module''s action in the current workspace';
COMMENT ON FUNCTION @extschema@.fluent_scope(text, text) IS 'fluent_scope() for the acting user set by fluent_set_user()';
COMMENT ON FUNCTION @extschema@.fluent_set_user(text, boolean) IS
    'Sets the acting end user for the session, or the transaction when local; superusers and fluent_admin at will, fluent_authenticator once per transaction or session';
COMMENT ON FUNCTION @extschema@.fluent_authenticate(text, boolean) IS
    'Verifies a JSON Web Token (fluent.token_settings) and makes its subject the acting user for the transaction, or the session when local is false; any role may call it';
COMMENT ON FUNCTION @extschema@.fluent_verified_user() IS
    'The acting user when a token verified by fluent_authenticate() chose them, else NULL (an auth.uid() for policies)';
COMMENT ON FUNCTION @extschema@.fluent_set_requirement(text, text, text, text) IS
    'Makes a module (or one action of it) require another permission: without it at some scope, nothing else there counts for a user';
COMMENT ON FUNCTION @extschema@.fluent_clear_requirement(text, text) IS 'Removes a module''s (or action''s) requirement';
COMMENT ON FUNCTION @extschema@.fluent_set_admin_right(text, text, text) IS
    'Delegated administration: users holding the module action at scope all get the right (manage_users, assign_roles, manage_roles, assign_beyond_own) in the workspace';
COMMENT ON FUNCTION @extschema@.fluent_clear_admin_right(text, text, text) IS 'Stops the module action giving the administrative right';
COMMENT ON FUNCTION @extschema@.fluent_reset_user() IS 'Acts for nobody: every check is denied';
COMMENT ON FUNCTION @extschema@.fluent_current_user() IS 'The acting end user, or NULL';
COMMENT ON FUNCTION @extschema@.fluent_set_workspace(text, boolean) IS
    'Sets the current workspace for the session, or the transaction when local; only superusers, fluent_authenticator and fluent_admin may';
COMMENT ON FUNCTION @extschema@.fluent_current_workspace() IS 'The current workspace';
COMMENT ON FUNCTION @extschema@.fluent_protect(regclass, text, name, regclass, name, name, name, name, text, text, text, text,
                                                name, name, regclass, name) IS
    'Enables and forces row-level security on a table so that the module''s actions govern its commands: by default read SELECT, write INSERT and UPDATE, delete DELETE; with an assignment table (membership_role_column) or a parent table, item roles give their actions on the items where they are held';
COMMENT ON FUNCTION @extschema@.fluent_create_item_role(text, text, text[], text, text, text, text) IS
    'Defines an item role of a module: held on one item through an assignment table, it gives the actions named there; optionally it requires a role or a permission of whoever is assigned it';
COMMENT ON FUNCTION @extschema@.fluent_drop_item_role(text, text) IS
    'Drops an item role: assignments naming it give nothing';
COMMENT ON FUNCTION @extschema@.fluent_unprotect(regclass) IS
    'Removes fluent''s policies from a table, its partitions and children and its membership table, and restores their row-level security settings; also removes fluent''s policies left without a catalog row (a schema-only restore)';
COMMENT ON FUNCTION @extschema@.fluent_protection_problems() IS
    'What no longer matches what fluent_protect() and fluent_protect_columns() set up: row-level security disabled or not forced, policies missing, changed or added, parents outside the protection, on protected tables, their partitions and children and membership tables; limited columns readable, the column trigger and the masked view changed; and views that bypass the policies or the column limits';
COMMENT ON FUNCTION @extschema@.fluent_visible_modules(text) IS
    'The enabled modules on which the user has some access in the current workspace: what navigation should show';
COMMENT ON FUNCTION @extschema@.fluent_visible_modules() IS 'fluent_visible_modules() for the acting user';
COMMENT ON FUNCTION @extschema@.fluent_explain(text, text, text) IS
    'Why the user has the scope they have on the module''s action: one row per deciding fact, then the result; anyone may explain themselves, fluent_admin and fluent_reader anyone';
COMMENT ON FUNCTION @extschema@.fluent_apply_template(text) IS
    'Loads a template (fluent, fluid, cx) into the current workspace, adding only what is missing; never removes or changes existing roles';
COMMENT ON FUNCTION @extschema@.fluent_reset_role(text) IS 'Restores a template role''s (or its clone''s) permissions to the template''s defaults';
COMMENT ON FUNCTION @extschema@.fluent_clone_role(text, text) IS 'Creates a role with the permissions and flags of another';
COMMENT ON FUNCTION @extschema@.fluent_alter_role(text, boolean, boolean, text, boolean, boolean) IS
    'Changes a role''s privileged, sign-in and reporting-anchor flags and its description; NULL leaves a property unchanged';
COMMENT ON FUNCTION @extschema@.fluent_set_override(text, text, text, text, timestamptz) IS
    'Gives one user a scope on one action that replaces what their roles give (wider or narrower; none denies), until an optional expiry';
COMMENT ON FUNCTION @extschema@.fluent_clear_override(text, text, text) IS 'Removes a user''s override: their roles decide again';
COMMENT ON FUNCTION @extschema@.fluent_set_module_enabled(text, boolean) IS
    'Feature gate: a disabled module (and its submodules) denies every action to everyone in the workspace';
COMMENT ON FUNCTION @extschema@.fluent_mark_reviewed(text, text) IS
    'Records an access review of a user''s grant of a role (all their grants in the workspace when role is NULL)';
COMMENT ON FUNCTION @extschema@.fluent_create_workspace(text) IS 'Creates a workspace (tenant)';
COMMENT ON FUNCTION @extschema@.fluent_drop_workspace(text) IS 'Drops a workspace with its modules, roles, grants, overrides and teams; not ''default''';
COMMENT ON FUNCTION @extschema@.fluent_create_module(text, text[], text) IS
    'Creates a module of the current workspace with its actions (default read, write, delete), optionally under a parent module';
COMMENT ON FUNCTION @extschema@.fluent_drop_module(text) IS 'Drops a module with its submodules, actions, permissions and overrides';
COMMENT ON FUNCTION @extschema@.fluent_create_role(text, text) IS 'Creates a custom role in the current workspace';
COMMENT ON FUNCTION @extschema@.fluent_drop_role(text, boolean) IS 'Drops a role with its permissions and grants';
COMMENT ON FUNCTION @extschema@.fluent_set_permission(text, text, text, text) IS
    'Sets the scope (none, own, direct, team, all) a role has on a module''s action';
COMMENT ON FUNCTION @extschema@.fluent_clear_permission(text, text, text) IS
    'Removes a role''s setting on an action, which then inherits from the parent module (or is none)';
COMMENT ON FUNCTION @extschema@.fluent_create_user(text, text, text, text) IS 'Creates an end user, optionally with a manager and a status';
COMMENT ON FUNCTION @extschema@.fluent_set_user_status(text, text, boolean) IS 'Sets a user''s status: active, ghost, disabled or invited (without an expiry); ends any invitation';
COMMENT ON FUNCTION @extschema@.fluent_set_manager(text, text) IS 'Sets (or with NULL clears) a user''s manager; refuses cycles';
COMMENT ON FUNCTION @extschema@.fluent_drop_user(text, boolean) IS 'Drops a user with their grants, overrides and team memberships';
COMMENT ON FUNCTION @extschema@.fluent_protect_columns(regclass, name[], text, text, text, text) IS
    'Limits columns of a protected table: masked (NULL) in the table''s masked view (returned) without module.read_action, unchangeable without module.write_action, each at a scope that reaches the row';
COMMENT ON FUNCTION @extschema@.fluent_unprotect_columns(regclass, name[]) IS
    'Removes column limits (those named, or all): the masked view shows the columns again, and goes with the last limit';
COMMENT ON FUNCTION @extschema@.fluent_test_act_as(text, regrole) IS
    'For application test suites run as a DBA: act as the user (NULL: nobody) through the application role until the transaction ends, so that row-level security applies';
COMMENT ON FUNCTION @extschema@.fluent_test_reset() IS 'For application test suites: back to the test runner''s own role, acting for nobody';
COMMENT ON FUNCTION @extschema@.fluent_who_can(regclass, text, text) IS
    'Who may perform a module action (default read) on one row of a protected table, and why: scope, source, roles, and how the scope reaches the row (all, owner, assignee, team lead, manager); for those who may read everyone''s permissions';
COMMENT ON FUNCTION @extschema@.fluent_grant_role(text, text, timestamptz) IS
    'Grants a role of the current workspace to a user, until an optional expiry (temporary access); granting again sets the expiry';
COMMENT ON FUNCTION @extschema@.fluent_revoke_role(text, text, boolean) IS 'Revokes a role from a user';
COMMENT ON FUNCTION @extschema@.fluent_create_team(text) IS 'Creates a team in the current workspace';
COMMENT ON FUNCTION @extschema@.fluent_drop_team(text) IS 'Drops a team and its memberships';
COMMENT ON FUNCTION @extschema@.fluent_add_team_member(text, text, boolean) IS 'Adds a user to a team, as a lead or not (updates the lead flag of a member)';
COMMENT ON FUNCTION @extschema@.fluent_remove_team_member(text, text) IS 'Removes a user from a team';

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
GRANT EXECUTE ON FUNCTION @extschema@.fluent_invite_user(text, text, text, interval), @extschema@.fluent_accept_invitation(text),
    fluent._identity_caller() TO PUBLIC;
REVOKE EXECUTE ON FUNCTION fluent._caller_chooses_identity(bigint) FROM fluent_admin;
-- Every role may read the audit view: it shows only what the acting user may read.
GRANT SELECT ON fluent.workspace_audit_log TO PUBLIC;
GRANT SELECT ON fluent.invitations TO fluent_reader;
COMMENT ON FUNCTION @extschema@.fluent_invite_user(text, text, text, interval) IS
    'Creates an invited user (granted nothing and unable to act until they accept), or renews the invitation of one; returns when the invitation expires (NULL: never)';
COMMENT ON FUNCTION @extschema@.fluent_accept_invitation(text) IS
    'Makes an invited user with an open invitation active; for the application''s authenticator (before it chooses the acting user), DBAs and delegated administrators holding manage_users';

SET LOCAL search_path TO @extschema@, pg_temp;
