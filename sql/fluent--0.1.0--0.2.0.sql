-- fluent 0.1.0 -> 0.2.0.
--
-- Each version has its own library (fluent-<version>, in $libdir), so that a new
-- build installed beside the old one changes nothing in databases still at
-- the old version: their functions keep calling the library they were
-- created with until this script points them at the new one. (0.1.0's was
-- 'fluent', resolved through dynamic_library_path.) The C functions keep
-- their symbols and SQL signatures, so the update is this one change of
-- each function's library.
SET LOCAL search_path TO pg_catalog, pg_temp;
UPDATE pg_catalog.pg_proc p SET probin = 'fluent-0.2.0'
 WHERE p.probin IN ('fluent', '$libdir/fluent')
   AND p.oid IN (SELECT d.objid FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.deptype = 'e'
                    AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                    AND d.refobjid = (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'fluent'));

-- The reporting line and the module tree are kept by triggers instead of
-- self-referencing foreign keys, about which pg_dump warned on every dump
-- (sql/triggers.sql).
ALTER TABLE fluent.users DROP CONSTRAINT users_manager_id_fkey;
ALTER TABLE fluent.modules DROP CONSTRAINT modules_workspace_id_parent_id_fkey;
DROP TRIGGER reporting_line_is_acyclic_on_insert ON fluent.users;
DROP TRIGGER reporting_line_is_acyclic_on_update ON fluent.users;
DROP TRIGGER module_tree_is_acyclic_on_insert ON fluent.modules;
DROP TRIGGER module_tree_is_acyclic_on_update ON fluent.modules;
DROP FUNCTION fluent._check_acyclic();
COMMENT ON TABLE fluent.invariant_guards IS
    'One row per catalog tree (reporting_line, module_tree): changes to a tree lock its row, so concurrent changes cannot combine into a broken tree';

-- After inserts and updates. Arguments: the guard, the id column, the parent
-- column and the columns a parent must share with its child. SECURITY
-- DEFINER so that writers need no privilege on the guards; as a trigger
-- function it cannot be called any other way.
CREATE FUNCTION fluent._check_tree() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    same text := coalesce((SELECT string_agg(format(' AND t.%1$I = c.%1$I', col), '') FROM unnest(TG_ARGV[3:]) col), '');
    orphan text;
    looped text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM changed) THEN
        RETURN NULL;
    END IF;
    UPDATE fluent.invariant_guards SET changes = changes + 1 WHERE invariant = TG_ARGV[0];
    EXECUTE format('SELECT min(c.%2$I)::text FROM changed c
                     WHERE c.%2$I IS NOT NULL AND NOT EXISTS (SELECT 1 FROM fluent.%3$I t WHERE t.%1$I = c.%2$I%4$s)',
                   TG_ARGV[1], TG_ARGV[2], TG_TABLE_NAME, same)
       INTO orphan;
    IF orphan IS NOT NULL THEN
        RAISE EXCEPTION 'fluent.%.% names % %, which does not exist', TG_TABLE_NAME, TG_ARGV[2],
                        CASE TG_ARGV[0] WHEN 'reporting_line' THEN 'user' ELSE 'module' END, orphan
            USING ERRCODE = 'foreign_key_violation',
                  HINT = CASE TG_ARGV[0] WHEN 'reporting_line' THEN 'A manager must be a fluent user.'
                                         ELSE 'A parent must be a module of the same workspace.' END;
    END IF;
    EXECUTE format(
        'WITH RECURSIVE up (start, node) AS (
             SELECT c.%1$I, c.%2$I FROM changed c WHERE c.%2$I IS NOT NULL
             UNION
             SELECT up.start, t.%2$I FROM up JOIN fluent.%3$I t ON t.%1$I = up.node
              WHERE up.node <> up.start AND t.%2$I IS NOT NULL)
         SELECT min(start)::text FROM up WHERE node = start', TG_ARGV[1], TG_ARGV[2], TG_TABLE_NAME)
       INTO looped;
    IF looped IS NOT NULL THEN
        RAISE EXCEPTION 'fluent.% would have a cycle through % %', TG_TABLE_NAME, TG_ARGV[1], looped
            USING ERRCODE = 'check_violation',
                  HINT = CASE TG_ARGV[0] WHEN 'reporting_line' THEN 'A user cannot report to themselves, directly or through others.'
                                         ELSE 'A module cannot be its own parent, directly or through others.' END;
    END IF;
    RETURN NULL;
END $$;

-- After deletes: the children of what was deleted lose their manager
-- (users) or go too (modules, and theirs in turn). Arguments as above.
CREATE FUNCTION fluent._detach_children() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    same text := coalesce((SELECT string_agg(format(' AND t.%1$I = d.%1$I', col), '') FROM unnest(TG_ARGV[3:]) col), '');
BEGIN
    -- (Deleting submodules fires this again: it ends where nothing was deleted.)
    IF NOT EXISTS (SELECT 1 FROM deleted) THEN
        RETURN NULL;
    END IF;
    UPDATE fluent.invariant_guards SET changes = changes + 1 WHERE invariant = TG_ARGV[0];
    IF TG_ARGV[0] = 'reporting_line' THEN
        EXECUTE format('UPDATE fluent.%3$I t SET %2$I = NULL FROM deleted d WHERE t.%2$I = d.%1$I%4$s',
                       TG_ARGV[1], TG_ARGV[2], TG_TABLE_NAME, same);
    ELSE
        EXECUTE format('DELETE FROM fluent.%3$I t USING deleted d WHERE t.%2$I = d.%1$I%4$s',
                       TG_ARGV[1], TG_ARGV[2], TG_TABLE_NAME, same);
    END IF;
    RETURN NULL;
END $$;

-- (A trigger with transition tables takes one event, hence one per event.)
DO $$
DECLARE
    t record;
    ev text;
BEGIN
    FOR t IN SELECT * FROM (VALUES ('users', 'reporting_line', 'user_id', 'manager_id', '{}'::text[]),
                                   ('modules', 'module_tree', 'module_id', 'parent_id', '{workspace_id}')) v(tbl, guard, id, parent, same)
    LOOP
        FOREACH ev IN ARRAY ARRAY['insert', 'update'] LOOP
            EXECUTE format('CREATE TRIGGER %I AFTER %s ON fluent.%I REFERENCING NEW TABLE AS changed
                            FOR EACH STATEMENT EXECUTE FUNCTION fluent._check_tree(%s)',
                           t.guard || '_is_a_tree_on_' || ev, ev, t.tbl,
                           (SELECT string_agg(quote_literal(a), ', ') FROM unnest(ARRAY[t.guard, t.id, t.parent] || t.same) a));
        END LOOP;
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON fluent.%I REFERENCING OLD TABLE AS deleted
                        FOR EACH STATEMENT EXECUTE FUNCTION fluent._detach_children(%s)',
                       t.guard || '_detaches_children', t.tbl,
                       (SELECT string_agg(quote_literal(a), ', ') FROM unnest(ARRAY[t.guard, t.id, t.parent] || t.same) a));
    END LOOP;
END
$$;

-- fluent_who_can() reads the row it is asked about in Rust (src/rows.rs),
-- running no code of the table's owner: as the catalog owner, a domain CHECK
-- on the key column made its owner a superuser. The catalog part of the
-- lookup stays in SQL.
DROP FUNCTION fluent._row_facts(regclass, text);
-- Where fluent_who_can() finds the row it is asked about, from the catalog
-- alone: the module; the column that identifies the row (the membership row
-- column, else the single-column primary key); the owner, workspace and
-- membership columns; and the tables to read: the table with its
-- partitions and children, and the membership table with its own. The row
-- itself is read by src/rows.rs without running the table owner's code, so
-- each of these must still be a table (a PostgreSQL 15 table owner can turn
-- an empty table into a view, whose functions would run for the caller).
CREATE FUNCTION fluent._row_lookup(tbl regclass)
RETURNS TABLE (module text, key_column name, owner_column name, workspace_column name,
               membership_row_column name, membership_user_column name, relations regclass[], membership_relations regclass[])
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p fluent.protected_tables;
    odd regclass;
BEGIN
    PERFORM fluent._not_null(tbl, 'table');
    SELECT x.* INTO p FROM fluent.protected_tables x WHERE x.table_name = fluent._protected_root(tbl);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table "%" is not protected by fluent', tbl
            USING ERRCODE = 'undefined_object', HINT = 'fluent_who_can answers for tables protected with fluent_protect().';
    END IF;
    key_column := p.row_column;
    IF key_column IS NULL THEN
        SELECT a.attname INTO key_column
          FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = tbl AND i.indisprimary AND i.indnatts = 1;
    END IF;
    IF key_column IS NULL THEN
        RAISE EXCEPTION 'table "%" has no single-column primary key to find the row by', tbl
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Protect it with row_column naming the key column.';
    END IF;
    relations := ARRAY(SELECT tbl UNION ALL SELECT fluent._descendants(tbl));
    IF p.membership_table IS NOT NULL THEN
        membership_relations := ARRAY(SELECT p.membership_table UNION ALL SELECT fluent._descendants(p.membership_table));
    END IF;
    SELECT r INTO odd FROM unnest(relations || membership_relations) r JOIN pg_class c ON c.oid = r
     WHERE c.relkind NOT IN ('r', 'p') LIMIT 1;
    IF odd IS NOT NULL THEN
        RAISE EXCEPTION 'fluent_who_can cannot read "%": it is no longer a table', odd
            USING ERRCODE = 'wrong_object_type', HINT = 'fluent.protection_status shows what changed.';
    END IF;
    module := p.module;
    owner_column := p.owner_column;
    workspace_column := p.workspace_column;
    membership_row_column := p.membership_row_column;
    membership_user_column := p.membership_user_column;
    RETURN NEXT;
END $$;

-- A change to a role widens more than the role's own map: a permission that
-- another one requires (fluent_set_requirement) opens the holders' others.
-- So a delegated administrator's change to a role is also checked holder by
-- holder: what each one may do afterwards, against the snapshot taken here
-- before (user key -> scope map; NULL when the powers checks do not apply).
-- (sql/admin.sql; _do_reset_role is in sql/templates.sql.)
CREATE FUNCTION fluent._holders_scope_maps(delegate text, rid int) RETURNS jsonb
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT CASE WHEN NOT fluent._unbounded(delegate) THEN
               (SELECT coalesce(jsonb_object_agg(u.user_key, fluent._user_scope_map(u.user_key)), '{}')
                  FROM fluent.grants g JOIN fluent.users u ON u.user_id = g.user_id
                 WHERE g.role_id = rid AND fluent._in_force(g.valid_until))
           END;
END;

CREATE FUNCTION fluent._holders_within_powers(delegate text, powers jsonb, before jsonb, rid int, role text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    h record;
BEGIN
    IF before IS NULL THEN
        RETURN;
    END IF;
    FOR h IN SELECT m.key, m.value FROM jsonb_each(fluent._holders_scope_maps(delegate, rid)) m ORDER BY m.key LOOP
        PERFORM fluent._within_powers(delegate, powers, before -> h.key, h.value,
                                      format('"%s" (through role "%s")', h.key, role));
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION fluent._do_set_permission(role text, module text, action text, scope text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_roles');
    rid int := fluent._role_id(role);
    aid int := fluent._action_id(module, action);
    s fluent.scope := fluent._scope(scope);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := fluent._role_scope_map(rid);
    holders jsonb := fluent._holders_scope_maps(delegate, rid);
BEGIN
    PERFORM fluent._may_touch_role(delegate, rid);
    INSERT INTO fluent.permissions (workspace_id, role_id, action_id, scope)
    VALUES (fluent._workspace_id(), rid, aid, s)
    ON CONFLICT (role_id, action_id) DO UPDATE SET scope = EXCLUDED.scope
    WHERE permissions.scope IS DISTINCT FROM EXCLUDED.scope;
    PERFORM fluent._within_powers(delegate, powers, before, fluent._role_scope_map(rid), format('role "%s"', role));
    PERFORM fluent._holders_within_powers(delegate, powers, holders, rid, role);
END $$;

CREATE OR REPLACE FUNCTION fluent._do_clear_permission(role text, module text, action text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_roles');
    rid int := fluent._role_id(role);
    aid int := fluent._action_id(module, action);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := fluent._role_scope_map(rid);
    holders jsonb := fluent._holders_scope_maps(delegate, rid);
BEGIN
    PERFORM fluent._may_touch_role(delegate, rid);
    -- Without its own setting the action inherits from the parent module again.
    DELETE FROM fluent.permissions WHERE role_id = rid AND action_id = aid;
    PERFORM fluent._within_powers(delegate, powers, before, fluent._role_scope_map(rid), format('role "%s"', role));
    PERFORM fluent._holders_within_powers(delegate, powers, holders, rid, role);
END $$;

CREATE OR REPLACE FUNCTION fluent._do_reset_role(role text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_roles');
    rid int := fluent._role_id(role);
    ws int := fluent._workspace_id();
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := fluent._role_scope_map(rid);
    holders jsonb := fluent._holders_scope_maps(delegate, rid);
BEGIN
    PERFORM fluent._may_touch_role(delegate, rid);
    IF (SELECT r.template FROM fluent.roles r WHERE r.role_id = rid) IS NULL THEN
        RAISE EXCEPTION 'fluent role "%" is a custom role and has no template defaults to reset to', role
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only roles created by fluent_apply_template(), and their clones, can be reset.';
    END IF;
    DELETE FROM fluent.permissions p
     WHERE p.role_id = rid
       AND NOT EXISTS (SELECT 1 FROM fluent.template_defaults d
                        WHERE d.role_id = rid AND d.action_id = p.action_id AND d.scope = p.scope);
    INSERT INTO fluent.permissions (workspace_id, role_id, action_id, scope)
    SELECT ws, rid, d.action_id, d.scope FROM fluent.template_defaults d WHERE d.role_id = rid
    ON CONFLICT (role_id, action_id) DO NOTHING;
    PERFORM fluent._within_powers(delegate, powers, before, fluent._role_scope_map(rid), format('role "%s"', role));
    PERFORM fluent._holders_within_powers(delegate, powers, holders, rid, role);
END $$;

-- Test helpers for applications (sql/testing.sql).
CREATE  FUNCTION fluent."_session_user_is_dba"() RETURNS bool /* bool */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_session_user_is_dba_wrapper';

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

-- Back to the test runner's own role, acting for nobody.
CREATE FUNCTION @extschema@.fluent_test_reset() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'RESET ROLE';
    PERFORM @extschema@.fluent_reset_user();
END $$;

-- Issue 18 (deleg): delegated administration within its powers. A
-- temporary override is checked as if cleared; a sign-in flag, the last
-- sign-in role and a clone are checked for what they open; staffing counts
-- only grants without an expiry and keeps a privileged holder of each
-- administrative right; dropping a team is checked member by member; a
-- reporting line reaching another workspace is not extended; another
-- workspace's users look unknown; cascades are attributed to their cause
-- (sql/admin.sql, sql/templates.sql, sql/triggers.sql).

-- Users are shared by all workspaces: whether one has grants, overrides or
-- teams in a workspace other than the current one (`elsewhere`) or in the
-- current one.
CREATE FUNCTION fluent._belongs(uid bigint, elsewhere boolean) RETURNS boolean
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT EXISTS (SELECT 1 FROM fluent.grants g WHERE g.user_id = uid AND (g.workspace_id <> fluent._workspace_id()) = elsewhere)
        OR EXISTS (SELECT 1 FROM fluent.overrides o WHERE o.user_id = uid AND (o.workspace_id <> fluent._workspace_id()) = elsewhere)
        OR EXISTS (SELECT 1 FROM fluent.team_members m WHERE m.user_id = uid AND (m.workspace_id <> fluent._workspace_id()) = elsewhere);
END;

-- The user's id, for a DBA (see _visible_user_id).
CREATE OR REPLACE FUNCTION fluent._user_id(p_user text) RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN fluent._visible_user_id(NULL, p_user);
END $$;

-- Whether a user belongs to other workspaces and not to the current one: a
-- delegated administrator, confined to the current one, is answered about
-- such a user exactly as about an unknown one (here, and in fluent_explain),
-- so that no workspace learns whom another one has, or their status.
CREATE FUNCTION fluent._belongs_elsewhere_only(uid bigint) RETURNS boolean
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT fluent._belongs(uid, true) AND NOT fluent._belongs(uid, false);
END;

-- The id of the user named p_user, the one lookup by key for every
-- administration function: for a delegated administrator (delegate not
-- NULL), a user of other workspaces only is unknown, as
-- _belongs_elsewhere_only says.
CREATE FUNCTION fluent._visible_user_id(delegate text, p_user text) RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    id bigint;
BEGIN
    PERFORM fluent._require_admin();
    PERFORM fluent._not_null(p_user, 'user');
    SELECT u.user_id INTO id FROM fluent.users u
     WHERE u.user_key = p_user AND (delegate IS NULL OR NOT fluent._belongs_elsewhere_only(u.user_id));
    -- One error, raised here for both, so that not even its context tells
    -- a hidden user from an unknown one.
    IF id IS NULL THEN
        PERFORM fluent._raise('unknown_user', ARRAY[p_user]);
    END IF;
    RETURN id;
END $$;

-- A delegated administrator manages only users who belong to no other
-- workspace.
CREATE OR REPLACE FUNCTION fluent._in_my_workspace(delegate text, uid bigint) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF delegate IS NOT NULL AND fluent._belongs(uid, true) THEN
        PERFORM fluent._refuse(format('fluent user "%s" belongs to another workspace too',
                                      (SELECT u.user_key FROM fluent.users u WHERE u.user_id = uid)),
                               'Delegated administrators manage users of their own workspace only; a DBA can make this change.');
    END IF;
END $$;

-- A manager's reporting line is theirs in every workspace: a delegated
-- administrator places users only under managers whose line, up to the top,
-- belongs to no other workspace, whose team scope there they cannot judge.
CREATE FUNCTION fluent._line_in_my_workspace(delegate text, p_manager bigint) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF delegate IS NOT NULL AND p_manager IS NOT NULL AND EXISTS (
        WITH RECURSIVE above AS (
            SELECT u.user_id, u.manager_id FROM fluent.users u WHERE u.user_id = p_manager
            UNION
            SELECT u.user_id, u.manager_id FROM fluent.users u JOIN above a ON u.user_id = a.manager_id
        ) SELECT 1 FROM above a WHERE fluent._belongs(a.user_id, true)) THEN
        PERFORM fluent._refuse(format('the reporting line of fluent user "%s" reaches users of another workspace',
                                      (SELECT u.user_key FROM fluent.users u WHERE u.user_id = p_manager)),
                               'Delegated administrators extend reporting lines of their own workspace only; a DBA can make this change.');
    END IF;
END $$;

-- A change to a role widens more than the role's own map: a permission that
-- another one requires (fluent_set_requirement) opens the holders' others.
-- So a delegated administrator's change to a role is also checked holder by
-- holder: what each one may do afterwards, against the snapshot taken here
-- before (user key -> scope map; NULL when the powers checks do not apply).
-- With rid NULL, everyone with a grant or override in the workspace: a
-- sign-in flag, or the last sign-in role, decides whether any of them acts.
CREATE OR REPLACE FUNCTION fluent._holders_scope_maps(delegate text, rid int) RETURNS jsonb
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT CASE WHEN NOT fluent._unbounded(delegate) THEN
               (SELECT coalesce(jsonb_object_agg(u.user_key, fluent._user_scope_map(u.user_key)), '{}')
                  FROM fluent.users u
                 WHERE EXISTS (SELECT 1 FROM fluent.grants g
                                WHERE g.user_id = u.user_id AND fluent._in_force(g.valid_until)
                                  AND CASE WHEN rid IS NULL THEN g.workspace_id = fluent._workspace_id() ELSE g.role_id = rid END)
                    OR (rid IS NULL AND EXISTS (SELECT 1 FROM fluent.overrides o
                                                 WHERE o.user_id = u.user_id AND o.workspace_id = fluent._workspace_id())))
           END;
END;

-- The workspaces that have an active holder of a privileged role: a change
-- may not take the last one away.
-- (A holder counts if they can act: active, and holding a sign-in role
-- where the workspace has any; and if they will still hold both when
-- temporary access lapses: only grants without an expiry count, or a grant
-- made temporary would empty the workspace later, with no change to refuse.)
CREATE FUNCTION fluent._staff() RETURNS TABLE (workspace_id int, user_key text)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT DISTINCT g.workspace_id, u.user_key
      FROM fluent.grants g JOIN fluent.roles r ON r.role_id = g.role_id JOIN fluent.users u ON u.user_id = g.user_id
     WHERE r.privileged AND u.status = 'active' AND g.valid_until IS NULL
       AND (NOT EXISTS (SELECT 1 FROM fluent.roles s WHERE s.workspace_id = g.workspace_id AND s.grants_sign_in)
            OR EXISTS (SELECT 1 FROM fluent.grants sg JOIN fluent.roles s ON s.role_id = sg.role_id
                        WHERE sg.user_id = g.user_id AND sg.workspace_id = g.workspace_id AND s.grants_sign_in
                          AND sg.valid_until IS NULL));
END;

CREATE OR REPLACE FUNCTION fluent._staffed_workspaces() RETURNS int[]
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT coalesce(array_agg(DISTINCT s.workspace_id), '{}') FROM fluent._staff() s;
END;

-- The administrative rights (all but assign_beyond_own) that some holder
-- counted above holds in the current workspace: a change may not take the
-- last away, or nobody could administer the workspace any more.
CREATE FUNCTION fluent._administered_rights() RETURNS text[]
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT coalesce(array_agg(r.r ORDER BY r.r), '{}')
      FROM unnest(ARRAY['assign_roles', 'manage_roles', 'manage_users']) r(r)
     WHERE EXISTS (SELECT 1 FROM fluent._staff() s
                    WHERE s.workspace_id = fluent._workspace_id() AND fluent._holds_right(s.user_key, r.r));
END;

CREATE OR REPLACE FUNCTION fluent._still_staffed(before int[], force boolean) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    lost text;
BEGIN
    IF force THEN
        RETURN;
    END IF;
    SELECT string_agg(w.name, ', ' ORDER BY w.name) INTO lost
      FROM fluent.workspaces w
     WHERE w.workspace_id = ANY (before) AND NOT w.workspace_id = ANY (fluent._staffed_workspaces());
    IF lost IS NOT NULL THEN
        RAISE EXCEPTION 'this would leave fluent workspace "%" without an active holder of a privileged role', lost
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Grant a privileged role, without an expiry, to another active user first; a DBA may pass force => true.';
    END IF;
END $$;

-- Refuses a change after which no holder counted above holds a right that
-- one held before (`before`, from _administered_rights). `force`: a DBA's
-- force => true, or, where the function has no force, whether the caller is
-- a DBA (delegate NULL).
CREATE FUNCTION fluent._still_administered(before text[], force boolean) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    lost text;
BEGIN
    IF force THEN
        RETURN;
    END IF;
    SELECT string_agg(r, ', ' ORDER BY r) INTO lost FROM unnest(before) r WHERE NOT r = ANY (fluent._administered_rights());
    IF lost IS NOT NULL THEN
        RAISE EXCEPTION 'this would leave fluent workspace "%" without an active holder of a privileged role who holds %',
                        fluent._workspace_name(), CASE WHEN lost LIKE '%,%' THEN 'the rights ' ELSE 'the right ' END || lost
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Give the right (fluent.admin_rights) to another active holder of a privileged role first; a DBA may make this change, with force => true where the function has it.';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION fluent._do_drop_role(role text, force boolean, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_roles');
    rid int := fluent._role_id(role);
    sign_in boolean := (SELECT r.grants_sign_in FROM fluent.roles r WHERE r.role_id = rid);
    staffed int[] := fluent._staffed_workspaces();
    administered text[] := fluent._administered_rights();
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    -- Dropping the last sign-in role lets everyone act.
    holders jsonb := CASE WHEN sign_in THEN fluent._holders_scope_maps(delegate, NULL) END;
BEGIN
    PERFORM fluent._may_force(delegate, force);
    PERFORM fluent._may_touch_role(delegate, rid);
    PERFORM fluent._privileged_only(delegate, sign_in, format('drop sign-in role "%s"', role));
    -- Its permissions and grants go with it (ON DELETE CASCADE).
    DELETE FROM fluent.roles WHERE role_id = rid;
    PERFORM fluent._holders_within_powers(delegate, powers, holders, NULL, role);
    PERFORM fluent._still_staffed(staffed, force);
    PERFORM fluent._still_administered(administered, force);
END $$;

CREATE OR REPLACE FUNCTION fluent._do_set_permission(role text, module text, action text, scope text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_roles');
    rid int := fluent._role_id(role);
    aid int := fluent._action_id(module, action);
    s fluent.scope := fluent._scope(scope);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := fluent._role_scope_map(rid);
    holders jsonb := fluent._holders_scope_maps(delegate, rid);
    administered text[] := CASE WHEN delegate IS NOT NULL THEN fluent._administered_rights() END;
BEGIN
    PERFORM fluent._may_touch_role(delegate, rid);
    INSERT INTO fluent.permissions (workspace_id, role_id, action_id, scope)
    VALUES (fluent._workspace_id(), rid, aid, s)
    ON CONFLICT (role_id, action_id) DO UPDATE SET scope = EXCLUDED.scope
    WHERE permissions.scope IS DISTINCT FROM EXCLUDED.scope;
    PERFORM fluent._within_powers(delegate, powers, before, fluent._role_scope_map(rid), format('role "%s"', role));
    PERFORM fluent._holders_within_powers(delegate, powers, holders, rid, role);
    PERFORM fluent._still_administered(administered, delegate IS NULL);
END $$;

CREATE OR REPLACE FUNCTION fluent._do_clear_permission(role text, module text, action text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_roles');
    rid int := fluent._role_id(role);
    aid int := fluent._action_id(module, action);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := fluent._role_scope_map(rid);
    holders jsonb := fluent._holders_scope_maps(delegate, rid);
    administered text[] := CASE WHEN delegate IS NOT NULL THEN fluent._administered_rights() END;
BEGIN
    PERFORM fluent._may_touch_role(delegate, rid);
    -- Without its own setting the action inherits from the parent module again.
    DELETE FROM fluent.permissions WHERE role_id = rid AND action_id = aid;
    PERFORM fluent._within_powers(delegate, powers, before, fluent._role_scope_map(rid), format('role "%s"', role));
    PERFORM fluent._holders_within_powers(delegate, powers, holders, rid, role);
    PERFORM fluent._still_administered(administered, delegate IS NULL);
END $$;

CREATE OR REPLACE FUNCTION fluent._do_alter_role(role text, privileged boolean, grants_sign_in boolean, description text,
                                      force boolean, reporting_anchor boolean, ticket bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_roles');
    rid int := fluent._role_id(role);
    staffed int[] := fluent._staffed_workspaces();
    administered text[] := fluent._administered_rights();
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    -- A sign-in flag decides who acts: setting it opens the holders' other
    -- roles, unsetting the last one lets everyone act.
    holders jsonb := CASE WHEN _do_alter_role.grants_sign_in <> (SELECT r.grants_sign_in FROM fluent.roles r WHERE r.role_id = rid)
                          THEN fluent._holders_scope_maps(delegate, NULL) END;
BEGIN
    PERFORM fluent._may_force(delegate, force);
    -- Who is privileged and who may sign in decide who can act at all.
    PERFORM fluent._privileged_only(delegate,
        EXISTS (SELECT 1 FROM fluent.roles r WHERE r.role_id = rid
                   AND (r.privileged IS DISTINCT FROM coalesce(_do_alter_role.privileged, r.privileged)
                        OR r.grants_sign_in IS DISTINCT FROM coalesce(_do_alter_role.grants_sign_in, r.grants_sign_in))),
        format('change whether role "%s" is privileged or lets users sign in', role));
    PERFORM fluent._may_touch_role(delegate, rid);
    -- NULL leaves a property as it is.
    UPDATE fluent.roles r
       SET privileged = n.privileged, grants_sign_in = n.grants_sign_in, description = n.description,
           reporting_anchor = n.reporting_anchor
      FROM (SELECT coalesce(_do_alter_role.privileged, o.privileged) AS privileged,
                   coalesce(_do_alter_role.grants_sign_in, o.grants_sign_in) AS grants_sign_in,
                   coalesce(_do_alter_role.description, o.description) AS description,
                   coalesce(_do_alter_role.reporting_anchor, o.reporting_anchor) AS reporting_anchor
              FROM fluent.roles o WHERE o.role_id = rid) n
     WHERE r.role_id = rid
       AND (r.privileged, r.grants_sign_in, r.description, r.reporting_anchor)
           IS DISTINCT FROM (n.privileged, n.grants_sign_in, n.description, n.reporting_anchor);
    PERFORM fluent._holders_within_powers(delegate, powers, holders, NULL, role);
    PERFORM fluent._still_staffed(staffed, force);
    PERFORM fluent._still_administered(administered, force);
END $$;

CREATE OR REPLACE FUNCTION fluent._do_create_user(user_key text, display_name text, manager text, status text, ticket bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_users');
    manager_id bigint := CASE WHEN manager IS NOT NULL THEN fluent._visible_user_id(delegate, manager) END;
    s fluent.user_status := fluent._user_status(status);
BEGIN
    PERFORM fluent._not_my_reach(delegate, manager_id);
    PERFORM fluent._line_in_my_workspace(delegate, manager_id);
    INSERT INTO fluent.users (user_key, display_name, status, manager_id)
    VALUES (fluent._name(user_key, 'user'), display_name, s, manager_id)
    ON CONFLICT ON CONSTRAINT users_user_key_key DO NOTHING;
    IF NOT FOUND THEN PERFORM fluent._duplicate('user', user_key); END IF;
END $$;

CREATE OR REPLACE FUNCTION fluent._do_set_user_status(user_key text, status text, force boolean, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_users');
    uid bigint := fluent._visible_user_id(delegate, user_key);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(user_key) END;
    s fluent.user_status := fluent._user_status(status);
    staffed int[] := fluent._staffed_workspaces();
    administered text[] := fluent._administered_rights();
BEGIN
    PERFORM fluent._may_force(delegate, force);
    PERFORM fluent._not_self(delegate, user_key, 'status');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_user(delegate, uid);
    UPDATE fluent.users u SET status = s WHERE u.user_id = uid AND u.status IS DISTINCT FROM s;
    -- Activating opens what the user holds: no more than the administrator's own.
    IF delegate IS NOT NULL THEN
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key), format('"%s"', user_key));
    END IF;
    PERFORM fluent._still_staffed(staffed, force);
    PERFORM fluent._still_administered(administered, force);
END $$;

CREATE OR REPLACE FUNCTION fluent._do_set_manager(user_key text, manager text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_users');
    uid bigint := fluent._visible_user_id(delegate, user_key);
    mid bigint := CASE WHEN manager IS NOT NULL THEN fluent._visible_user_id(delegate, manager) END;
BEGIN
    PERFORM fluent._not_self(delegate, user_key, 'manager');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_user(delegate, uid);
    PERFORM fluent._not_my_reach(delegate, mid);
    PERFORM fluent._line_in_my_workspace(delegate, mid);
    -- The new manager and everyone above them reach the user.
    PERFORM fluent._reach_within_powers(delegate, CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END,
        ARRAY(WITH RECURSIVE above AS (
                  SELECT u.user_id, u.manager_id FROM fluent.users u WHERE u.user_id = mid
                  UNION
                  SELECT u.user_id, u.manager_id FROM fluent.users u JOIN above a ON u.user_id = a.manager_id
              ) SELECT u.user_key FROM above a JOIN fluent.users u ON u.user_id = a.user_id));
    IF mid IS NOT NULL AND (mid = uid OR EXISTS (
        WITH RECURSIVE above AS (
            SELECT u.manager_id FROM fluent.users u WHERE u.user_id = mid
            UNION
            SELECT u.manager_id FROM fluent.users u JOIN above a ON u.user_id = a.manager_id
        ) SELECT 1 FROM above WHERE above.manager_id = uid)) THEN
        RAISE EXCEPTION 'making "%" the manager of "%" would create a cycle in the reporting line', manager, user_key
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE fluent.users u SET manager_id = mid WHERE u.user_id = uid AND u.manager_id IS DISTINCT FROM mid;
END $$;

CREATE OR REPLACE FUNCTION fluent._do_drop_user(user_key text, force boolean, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_users');
    uid bigint := fluent._visible_user_id(delegate, user_key);
    staffed int[] := fluent._staffed_workspaces();
    administered text[] := fluent._administered_rights();
BEGIN
    PERFORM fluent._may_force(delegate, force);
    PERFORM fluent._not_self(delegate, user_key, 'account');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_user(delegate, uid);
    -- Grants and team memberships go with the user; reports lose their manager.
    DELETE FROM fluent.users u WHERE u.user_id = uid;
    PERFORM fluent._still_staffed(staffed, force);
    PERFORM fluent._still_administered(administered, force);
END $$;

CREATE OR REPLACE FUNCTION fluent._do_grant_role(user_key text, role text, until timestamptz, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'assign_roles');
    uid bigint := fluent._visible_user_id(delegate, user_key);
    rid int := fluent._role_id(role);
    expiry timestamptz := fluent._until(until);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(user_key) END;
    -- Making a privileged grant temporary may leave the workspace without a
    -- holder once it lapses (DBAs may: this function has no force).
    staffed int[] := CASE WHEN delegate IS NOT NULL THEN fluent._staffed_workspaces() END;
    administered text[] := CASE WHEN delegate IS NOT NULL THEN fluent._administered_rights() END;
BEGIN
    PERFORM fluent._not_self(delegate, user_key, 'roles');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_role(delegate, rid);
    PERFORM fluent._may_touch_sign_in(delegate, uid, rid);
    -- Every permission of the role must be within the granter's own, and so
    -- must what the grant opens (a sign-in role opens the user's other roles).
    PERFORM fluent._within_powers(delegate, powers, '{}', fluent._role_scope_map(rid), format('"%s" role "%s", which has', user_key, role));
    -- Granting again sets the expiry the call gives (NULL: none); a grant
    -- that expired counts again from now.
    INSERT INTO fluent.grants AS g (workspace_id, user_id, role_id, valid_until)
    VALUES (fluent._workspace_id(), uid, rid, expiry)
    ON CONFLICT (user_id, role_id) DO UPDATE
       SET valid_until = EXCLUDED.valid_until,
           granted_at = CASE WHEN fluent._in_force(g.valid_until) THEN g.granted_at ELSE EXCLUDED.granted_at END
     WHERE g.valid_until IS DISTINCT FROM EXCLUDED.valid_until;
    IF NOT FOUND THEN
        RAISE NOTICE 'fluent user "%" already holds role "%"', user_key, role;
    END IF;
    IF delegate IS NOT NULL THEN
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key), format('"%s"', user_key));
        PERFORM fluent._still_staffed(staffed, false);
        PERFORM fluent._still_administered(administered, false);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION fluent._do_revoke_role(user_key text, role text, force boolean, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'assign_roles');
    uid bigint := fluent._visible_user_id(delegate, user_key);
    rid int := fluent._role_id(role);
    staffed int[] := fluent._staffed_workspaces();
    administered text[] := fluent._administered_rights();
BEGIN
    PERFORM fluent._may_force(delegate, force);
    PERFORM fluent._not_self(delegate, user_key, 'roles');
    PERFORM fluent._may_touch_role(delegate, rid);
    PERFORM fluent._may_touch_sign_in(delegate, uid, rid);
    DELETE FROM fluent.grants g WHERE g.user_id = uid AND g.role_id = rid;
    IF NOT FOUND THEN
        RAISE WARNING 'fluent user "%" does not hold role "%"', user_key, role;
    END IF;
    PERFORM fluent._still_staffed(staffed, force);
    PERFORM fluent._still_administered(administered, force);
END $$;

CREATE OR REPLACE FUNCTION fluent._do_drop_team(team text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_users');
    tid int := fluent._team_id(team);
    m record;
BEGIN
    -- The same checks as removing each member.
    FOR m IN SELECT u.user_id, u.user_key FROM fluent.team_members tm JOIN fluent.users u ON u.user_id = tm.user_id
              WHERE tm.team_id = tid ORDER BY u.user_key LOOP
        PERFORM fluent._not_self(delegate, m.user_key, 'teams');
        PERFORM fluent._may_touch_user(delegate, m.user_id);
    END LOOP;
    DELETE FROM fluent.teams WHERE team_id = tid;
END $$;

CREATE OR REPLACE FUNCTION fluent._do_add_team_member(team text, user_key text, lead boolean, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_users');
    tid int := fluent._team_id(team);
    uid bigint := fluent._visible_user_id(delegate, user_key);
BEGIN
    PERFORM fluent._not_null(lead, 'lead');
    PERFORM fluent._not_self(delegate, user_key, 'teams');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_user(delegate, uid);
    PERFORM fluent._not_my_team(delegate, tid, team);
    -- The team's leads reach the new member; a new lead reaches the team.
    PERFORM fluent._reach_within_powers(delegate, CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END,
        ARRAY(SELECT u.user_key FROM fluent.team_members m JOIN fluent.users u ON u.user_id = m.user_id
               WHERE m.team_id = tid AND m.is_lead AND m.user_id <> uid
              UNION SELECT user_key WHERE lead));
    INSERT INTO fluent.team_members (workspace_id, team_id, user_id, is_lead)
    VALUES (fluent._workspace_id(), tid, uid, lead)
    ON CONFLICT (team_id, user_id) DO UPDATE SET is_lead = EXCLUDED.is_lead
    WHERE team_members.is_lead IS DISTINCT FROM EXCLUDED.is_lead;
END $$;

CREATE OR REPLACE FUNCTION fluent._do_remove_team_member(team text, user_key text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_users');
    tid int := fluent._team_id(team);
    uid bigint := fluent._visible_user_id(delegate, user_key);
BEGIN
    PERFORM fluent._not_self(delegate, user_key, 'teams');
    PERFORM fluent._may_touch_user(delegate, uid);
    DELETE FROM fluent.team_members m WHERE m.team_id = tid AND m.user_id = uid;
    IF NOT FOUND THEN
        RAISE WARNING 'fluent user "%" is not a member of team "%"', user_key, team;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION fluent._do_set_override(user_key text, module text, action text, scope text, until timestamptz,
                                         ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'assign_roles');
    uid bigint := fluent._visible_user_id(delegate, user_key);
    aid int := fluent._action_id(module, action);
    s fluent.scope := fluent._scope(scope);
    expiry timestamptz := fluent._until(until);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(user_key) END;
    administered text[] := CASE WHEN delegate IS NOT NULL THEN fluent._administered_rights() END;
BEGIN
    PERFORM fluent._not_self(delegate, user_key, 'overrides');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_user(delegate, uid);
    PERFORM fluent._within_powers(delegate, powers, '{}', fluent._override_gives(aid, s), format('"%s"', user_key));
    -- A temporary override is also checked as if it were cleared: when it
    -- lapses, the user has what they would have without it (a DBA's deny
    -- made temporary would open by itself). So the override is cleared
    -- first, the result checked, and the new one written.
    IF delegate IS NOT NULL AND expiry IS NOT NULL THEN
        DELETE FROM fluent.overrides o WHERE o.user_id = uid AND o.action_id = aid;
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key),
                                      format('"%s" (once the override lapses)', user_key));
    END IF;
    INSERT INTO fluent.overrides (workspace_id, user_id, action_id, scope, valid_until)
    VALUES (fluent._workspace_id(), uid, aid, s, expiry)
    ON CONFLICT (user_id, action_id) DO UPDATE
       SET scope = EXCLUDED.scope, set_at = EXCLUDED.set_at, set_by = EXCLUDED.set_by, valid_until = EXCLUDED.valid_until
     WHERE (overrides.scope, overrides.valid_until) IS DISTINCT FROM (EXCLUDED.scope, EXCLUDED.valid_until);
    IF delegate IS NOT NULL THEN
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key), format('"%s"', user_key));
        PERFORM fluent._still_administered(administered, false);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION fluent._do_clear_override(user_key text, module text, action text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'assign_roles');
    uid bigint := fluent._visible_user_id(delegate, user_key);
    aid int := fluent._action_id(module, action);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(user_key) END;
    administered text[] := CASE WHEN delegate IS NOT NULL THEN fluent._administered_rights() END;
BEGIN
    PERFORM fluent._not_self(delegate, user_key, 'overrides');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_user(delegate, uid);
    DELETE FROM fluent.overrides o WHERE o.user_id = uid AND o.action_id = aid;
    IF NOT FOUND THEN
        RAISE WARNING 'fluent user "%" has no override on %.%', user_key, module, action;
    END IF;
    IF delegate IS NOT NULL THEN
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key), format('"%s"', user_key));
        PERFORM fluent._still_administered(administered, false);
    END IF;
END $$;

-- Records that the user's grant of `role` (every grant of theirs in the
-- current workspace when role is NULL) was reviewed and kept; returns how
-- many grants were marked.
CREATE OR REPLACE FUNCTION fluent._do_mark_reviewed(user_key text, role text, ticket bigint) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'assign_roles');
    uid bigint := fluent._visible_user_id(delegate, user_key);
    rid int := CASE WHEN role IS NOT NULL THEN fluent._role_id(role) END;
    marked int;
BEGIN
    PERFORM fluent._not_self(delegate, user_key, 'access review');
    PERFORM fluent._may_touch_user(delegate, uid);
    -- reviewed_by is stamped by the attribution trigger.
    UPDATE fluent.grants g SET reviewed_at = now()
     WHERE g.user_id = uid AND g.workspace_id = fluent._workspace_id() AND (rid IS NULL OR g.role_id = rid);
    GET DIAGNOSTICS marked = ROW_COUNT;
    IF marked = 0 THEN
        RAISE WARNING 'fluent user "%" holds no % in workspace "%"', user_key,
            CASE WHEN role IS NULL THEN 'role' ELSE format('role "%s"', role) END, fluent._workspace_name();
    END IF;
    RETURN marked;
END $$;

-- Restores a role's permissions to its template's defaults.
CREATE OR REPLACE FUNCTION fluent._do_reset_role(role text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_roles');
    rid int := fluent._role_id(role);
    ws int := fluent._workspace_id();
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := fluent._role_scope_map(rid);
    holders jsonb := fluent._holders_scope_maps(delegate, rid);
    administered text[] := CASE WHEN delegate IS NOT NULL THEN fluent._administered_rights() END;
BEGIN
    PERFORM fluent._may_touch_role(delegate, rid);
    IF (SELECT r.template FROM fluent.roles r WHERE r.role_id = rid) IS NULL THEN
        RAISE EXCEPTION 'fluent role "%" is a custom role and has no template defaults to reset to', role
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only roles created by fluent_apply_template(), and their clones, can be reset.';
    END IF;
    DELETE FROM fluent.permissions p
     WHERE p.role_id = rid
       AND NOT EXISTS (SELECT 1 FROM fluent.template_defaults d
                        WHERE d.role_id = rid AND d.action_id = p.action_id AND d.scope = p.scope);
    INSERT INTO fluent.permissions (workspace_id, role_id, action_id, scope)
    SELECT ws, rid, d.action_id, d.scope FROM fluent.template_defaults d WHERE d.role_id = rid
    ON CONFLICT (role_id, action_id) DO NOTHING;
    PERFORM fluent._within_powers(delegate, powers, before, fluent._role_scope_map(rid), format('role "%s"', role));
    PERFORM fluent._holders_within_powers(delegate, powers, holders, rid, role);
    PERFORM fluent._still_administered(administered, delegate IS NULL);
END $$;

-- A new role with the same permissions and flags as `source`. A clone of a
-- template role keeps that template as its baseline: it can be reset, and
-- fluent.role_template_diff shows how it departs from it.
CREATE OR REPLACE FUNCTION fluent._do_clone_role(source text, new_role text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_roles');
    src int := fluent._role_id(source);
    ws int := fluent._workspace_id();
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    new_id int;
BEGIN
    -- The same checks as setting each flag and permission directly: a clone
    -- of a privileged role is privileged, a clone of a sign-in role lets its
    -- holders sign in.
    PERFORM fluent._may_touch_role(delegate, src);
    PERFORM fluent._privileged_only(delegate, (SELECT r.grants_sign_in FROM fluent.roles r WHERE r.role_id = src),
                                    format('create role "%s", which lets users sign in', new_role));
    INSERT INTO fluent.roles (workspace_id, name, description, template, template_role, privileged, grants_sign_in,
                              reporting_anchor)
    SELECT ws, fluent._name(new_role, 'role'), r.description, r.template, r.template_role, r.privileged, r.grants_sign_in,
           r.reporting_anchor
      FROM fluent.roles r WHERE r.role_id = src
    ON CONFLICT (workspace_id, name) DO NOTHING
    RETURNING role_id INTO new_id;
    IF new_id IS NULL THEN PERFORM fluent._duplicate('role', new_role); END IF;
    INSERT INTO fluent.permissions (workspace_id, role_id, action_id, scope)
    SELECT ws, new_id, p.action_id, p.scope FROM fluent.permissions p WHERE p.role_id = src;
    PERFORM fluent._within_powers(delegate, powers, '{}', fluent._role_scope_map(new_id), format('role "%s"', new_role));
END $$;

-- After deletes: the children of what was deleted lose their manager
-- (users) or go too (modules, and theirs in turn). Arguments as above.
-- SECURITY INVOKER: whoever may delete a user or a module may write these
-- rows too, and the audit trail names them (and the end user they act for)
-- for the cascade as for the deletion, not the catalog owner. (Hence writers
-- may update the guards: sql/privileges.sql.)
CREATE OR REPLACE FUNCTION fluent._detach_children() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    same text := coalesce((SELECT string_agg(format(' AND t.%1$I = d.%1$I', col), '') FROM unnest(TG_ARGV[3:]) col), '');
BEGIN
    -- (Deleting submodules fires this again: it ends where nothing was deleted.)
    IF NOT EXISTS (SELECT 1 FROM deleted) THEN
        RETURN NULL;
    END IF;
    UPDATE fluent.invariant_guards SET changes = changes + 1 WHERE invariant = TG_ARGV[0];
    IF TG_ARGV[0] = 'reporting_line' THEN
        EXECUTE format('UPDATE fluent.%3$I t SET %2$I = NULL FROM deleted d WHERE t.%2$I = d.%1$I%4$s',
                       TG_ARGV[1], TG_ARGV[2], TG_TABLE_NAME, same);
    ELSE
        EXECUTE format('DELETE FROM fluent.%3$I t USING deleted d WHERE t.%2$I = d.%1$I%4$s',
                       TG_ARGV[1], TG_ARGV[2], TG_TABLE_NAME, same);
    END IF;
    RETURN NULL;
END $$;

REVOKE ALL ON FUNCTION fluent._belongs(bigint, boolean), fluent._belongs_elsewhere_only(bigint), fluent._visible_user_id(text, text),
    fluent._line_in_my_workspace(text, bigint), fluent._staff(), fluent._administered_rights(),
    fluent._still_administered(text[], boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._belongs(bigint, boolean), fluent._belongs_elsewhere_only(bigint), fluent._visible_user_id(text, text),
    fluent._line_in_my_workspace(text, bigint), fluent._staff(), fluent._administered_rights(),
    fluent._still_administered(text[], boolean) TO fluent_admin;
GRANT UPDATE ON fluent.invariant_guards TO fluent_admin;

-- Issue 18 (kids): partitions and inheritance children that a protection
-- did not cover. An inheritance child of a table with column limits lacked
-- the column-limit trigger (PostgreSQL clones row triggers to partitions
-- only); partitions and children of a membership table had no policies.
-- Membership policies name the table they go on (the membership table or one
-- of its partitions or children) to refer to the row written (sql/rls.sql).
DROP FUNCTION fluent._policy_definitions(fluent.protected_tables);
CREATE FUNCTION fluent._policy_definitions(p fluent.protected_tables, member_rel regclass)
RETURNS TABLE (on_membership boolean, policy name, command text, using_expr text, check_expr text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    workspace_filter text;
    reach jsonb := '{}';
    act text;
    member_in_reach text;
BEGIN
    IF p.workspace_column IS NOT NULL THEN
        workspace_filter := format('%I = ANY (%s)', p.workspace_column,
            fluent._workspace_keys_sql(fluent._key_kind(p.table_name, p.workspace_column, 'workspace column')));
    END IF;
    FOREACH act IN ARRAY ARRAY[p.select_action, p.insert_action, p.update_action, p.delete_action] LOOP
        CONTINUE WHEN reach ? act;
        reach := reach || jsonb_build_object(act,
            concat_ws(' AND ', workspace_filter, fluent._rows_reached_sql(p, p.module, act)));
    END LOOP;
    -- A row written (by the action that governs the command) must land in
    -- reach: with an owner column, owned by a user the action's scope
    -- reaches. Without one, ownership is given by the membership table: a
    -- new row has no membership rows yet, so any scope will do to insert;
    -- an updated row must stay where the update reached it (the USING
    -- predicate again: an uncorrelated ARRAY(SELECT ...), run once per
    -- statement), or a user could move a row out of their reach (with
    -- membership_row_column naming a project, into another project).
    RETURN QUERY VALUES
        (false, 'fluent_select'::name, 'SELECT', reach->>p.select_action, NULL::text),
        (false, 'fluent_insert', 'INSERT', NULL, fluent._write_check_sql(p, workspace_filter, p.insert_action)),
        (false, 'fluent_update', 'UPDATE', reach->>p.update_action,
         CASE WHEN p.owner_column IS NULL THEN reach->>p.update_action
              ELSE fluent._write_check_sql(p, workspace_filter, p.update_action) END),
        (false, 'fluent_delete', 'DELETE', reach->>p.delete_action, NULL);
    IF p.membership_table IS NOT NULL THEN
        -- A membership row may be added, changed or removed only by someone
        -- whose write scope reaches the row it points at. (Membership rows
        -- stay readable: the table's own policies read them.) This is a
        -- write-path check, one primary-key probe per row written. (The
        -- reach reads the whole membership table, partitions and children
        -- included: assignments count wherever they are stored.)
        member_in_reach := format('EXISTS (SELECT 1 FROM %s t WHERE t.%I = %s.%I AND %s)',
            p.table_name, p.row_column, member_rel, p.membership_row_column, reach->>p.update_action);
        RETURN QUERY VALUES
            (true, 'fluent_member_select'::name, 'SELECT', 'true', NULL::text),
            (true, 'fluent_member_insert', 'INSERT', NULL, member_in_reach),
            (true, 'fluent_member_update', 'UPDATE', member_in_reach, member_in_reach),
            (true, 'fluent_member_delete', 'DELETE', member_in_reach, NULL);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION fluent._install_policies(tbl regclass, p fluent.protected_tables, on_membership boolean)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    d record;
BEGIN
    FOR d IN SELECT * FROM fluent._policy_definitions(p, tbl) x WHERE x.on_membership = _install_policies.on_membership LOOP
        EXECUTE format('CREATE POLICY %I ON %s AS PERMISSIVE FOR %s TO PUBLIC%s%s', d.policy, tbl, d.command,
                       ' USING (' || d.using_expr || ')', ' WITH CHECK (' || d.check_expr || ')');
        EXECUTE format('COMMENT ON POLICY %I ON %s IS %L', d.policy, tbl, fluent._policy_comment(p.module));
    END LOOP;
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', tbl);
END $$;

-- The walk up the inheritance tree, shared with _protected_root.
-- tbl and the tables it inherits from at any depth, with their distance
-- from tbl (0 for tbl itself).
CREATE FUNCTION fluent._ancestors(tbl regclass) RETURNS TABLE (relid oid, depth int)
LANGUAGE sql STABLE
BEGIN ATOMIC
    WITH RECURSIVE a (relid, depth) AS (
        SELECT tbl::oid, 0
        UNION
        SELECT i.inhparent, a.depth + 1 FROM pg_inherits i JOIN a ON i.inhrelid = a.relid
    )
    SELECT a.relid, a.depth FROM a;
END;

-- The protected table whose protection covers tbl: tbl itself, or the
-- nearest protected table it inherits from; NULL if none.
CREATE OR REPLACE FUNCTION fluent._protected_root(tbl regclass) RETURNS regclass
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT p.table_name FROM fluent._ancestors(tbl) a JOIN fluent.protected_tables p ON p.table_name::oid = a.relid
     ORDER BY a.depth LIMIT 1;
END;

-- The protected table whose membership rows a table holds (sql/rls.sql).
CREATE FUNCTION fluent._membership_of(tbl regclass) RETURNS regclass
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT p.table_name FROM fluent._ancestors(tbl) a JOIN fluent.protected_tables p ON p.membership_table::oid = a.relid
     ORDER BY a.depth LIMIT 1;
END;

-- fluent_protect gives the membership table's partitions and children the
-- membership policies, and refuses permissive policies on them.
CREATE OR REPLACE FUNCTION @extschema@.fluent_protect(
    tbl regclass,
    module text,
    owner_column name DEFAULT NULL,
    membership_table regclass DEFAULT NULL,
    membership_row_column name DEFAULT NULL,
    membership_user_column name DEFAULT NULL,
    row_column name DEFAULT NULL,
    workspace_column name DEFAULT NULL,
    select_action text DEFAULT 'read',
    insert_action text DEFAULT 'write',
    update_action text DEFAULT 'write',
    delete_action text DEFAULT 'delete'
) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p fluent.protected_tables;
    kind "char";
    was_enabled boolean;
    was_forced boolean;
    owner_kind text;
    member_was_enabled boolean;
    member_was_forced boolean;
    missing text[];
    related regclass;
    child regclass;
BEGIN
    PERFORM fluent._require_admin();
    PERFORM fluent._not_null(tbl, 'table');
    PERFORM fluent._module_id(module);

    SELECT c.relkind, c.relrowsecurity, c.relforcerowsecurity INTO kind, was_enabled, was_forced
      FROM pg_class c WHERE c.oid = tbl;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;
    IF EXISTS (SELECT 1 FROM fluent.protected_tables x WHERE x.table_name = tbl) THEN
        RAISE EXCEPTION 'table "%" is already protected by fluent', tbl
            USING ERRCODE = 'duplicate_object', HINT = 'Call fluent_unprotect() first to change how it is protected.';
    END IF;
    related := fluent._protected_root(tbl);
    IF related IS NOT NULL THEN
        RAISE EXCEPTION 'table "%" is already protected by fluent through "%", which it inherits from', tbl, related
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Partitions and inheritance children share the protection of their parent.';
    END IF;
    SELECT x.table_name INTO related FROM fluent.protected_tables x WHERE x.table_name IN (SELECT fluent._descendants(tbl));
    IF related IS NOT NULL THEN
        RAISE EXCEPTION 'table "%" has a partition or child, "%", that fluent protects on its own', tbl, related
            USING ERRCODE = 'object_in_use', HINT = 'Unprotect it first: fluent protects a table with all its partitions and children.';
    END IF;
    IF owner_column IS NULL AND membership_table IS NULL THEN
        RAISE EXCEPTION 'fluent_protect needs an owner column, a membership table, or both'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Policies fluent created for a protection whose record is gone (a
    -- schema-only restore) are replaced.
    IF fluent._has_orphaned_policies(tbl) THEN
        RAISE NOTICE 'replacing the policies fluent created on "%" earlier, which fluent.protected_tables does not record', tbl;
        PERFORM fluent._remove_policies(tbl, NULL);
        SELECT c.relrowsecurity, c.relforcerowsecurity INTO was_enabled, was_forced FROM pg_class c WHERE c.oid = tbl;
    END IF;
    FOR related IN SELECT tbl UNION ALL SELECT fluent._descendants(tbl)
                   UNION ALL SELECT membership_table WHERE membership_table IS NOT NULL
                   UNION ALL SELECT fluent._descendants(membership_table) WHERE membership_table IS NOT NULL LOOP
        IF EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = related AND polpermissive) THEN
            RAISE EXCEPTION 'table "%" already has permissive row-level security policies', related
                USING ERRCODE = 'object_in_use',
                      HINT = 'Permissive policies are OR-ed with fluent''s and would widen access: drop them or make them AS RESTRICTIVE.';
        END IF;
    END LOOP;

    IF owner_column IS NOT NULL THEN
        owner_kind := fluent._key_kind(tbl, owner_column, 'owner column');
    END IF;
    IF membership_table IS NOT NULL THEN
        IF membership_row_column IS NULL OR membership_user_column IS NULL THEN
            RAISE EXCEPTION 'a membership table needs membership_row_column and membership_user_column'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF membership_table = tbl THEN
            RAISE EXCEPTION 'table "%" cannot be its own membership table', tbl USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF EXISTS (SELECT 1 FROM fluent.protected_tables x WHERE x.membership_table = fluent_protect.membership_table) THEN
            RAISE EXCEPTION 'table "%" is already the membership table of another protected table', membership_table
                USING ERRCODE = 'object_in_use', HINT = 'Give each protected table a membership table of its own.';
        END IF;
        IF row_column IS NULL THEN
            -- The membership rows point at the table's single-column primary key.
            SELECT a.attname INTO row_column
              FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
             WHERE i.indrelid = tbl AND i.indisprimary AND i.indnatts = 1;
            IF row_column IS NULL THEN
                RAISE EXCEPTION 'table "%" has no single-column primary key for membership rows to point at', tbl
                    USING ERRCODE = 'invalid_parameter_value', HINT = 'Name the column with row_column.';
            END IF;
        END IF;
        PERFORM fluent._key_kind(membership_table, membership_user_column, 'membership user column');
        IF (SELECT atttypid FROM pg_attribute WHERE attrelid = tbl AND attname = row_column AND NOT attisdropped)
           IS DISTINCT FROM
           (SELECT atttypid FROM pg_attribute WHERE attrelid = membership_table AND attname = membership_row_column AND NOT attisdropped) THEN
            RAISE EXCEPTION 'column "%" of "%" and column "%" of "%" must exist and have the same type',
                row_column, tbl, membership_row_column, membership_table USING ERRCODE = 'datatype_mismatch';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                        WHERE i.indrelid = membership_table AND a.attname = membership_user_column) THEN
            RAISE NOTICE 'no index on %(%): every query on "%" will scan it', membership_table, membership_user_column, tbl
                USING HINT = format('CREATE INDEX ON %s (%I);', membership_table, membership_user_column);
        END IF;
        SELECT c.relrowsecurity, c.relforcerowsecurity INTO member_was_enabled, member_was_forced
          FROM pg_class c WHERE c.oid = membership_table;
    END IF;
    -- The catalog row, by column name.
    p := jsonb_populate_record(NULL::fluent.protected_tables, jsonb_build_object(
        'table_name', tbl, 'module', module, 'owner_column', owner_column, 'owner_type', owner_kind,
        'membership_table', membership_table, 'membership_row_column', membership_row_column,
        'membership_user_column', membership_user_column, 'row_column', row_column, 'workspace_column', workspace_column,
        'select_action', fluent._name(select_action, 'action'), 'insert_action', fluent._name(insert_action, 'action'),
        'update_action', fluent._name(update_action, 'action'), 'delete_action', fluent._name(delete_action, 'action'),
        'rls_was_enabled', was_enabled, 'rls_was_forced', was_forced,
        'membership_rls_was_enabled', member_was_enabled, 'membership_rls_was_forced', member_was_forced));

    SELECT array_agg(DISTINCT a) INTO missing
      FROM unnest(ARRAY[p.select_action, p.insert_action, p.update_action, p.delete_action]) a
     WHERE NOT EXISTS (SELECT 1 FROM fluent.actions x WHERE x.module_id = fluent._module_id(module) AND x.name = a);
    IF missing IS NOT NULL THEN
        RAISE WARNING 'fluent module "%" has no action %: those commands on "%" will be denied to everyone',
            module, array_to_string(missing, ', '), tbl;
    END IF;

    PERFORM fluent._install_policies(tbl, p, false);
    FOR child IN SELECT fluent._descendants(tbl) LOOP
        PERFORM fluent._install_policies(child, p, false);
    END LOOP;
    IF membership_table IS NOT NULL THEN
        -- Its partitions and children too: the table's policies read them
        -- (through the membership table), so writing one directly must be
        -- kept within reach as well.
        FOR child IN SELECT membership_table UNION ALL SELECT fluent._descendants(membership_table) LOOP
            PERFORM fluent._install_policies(child, p, true);
        END LOOP;
    END IF;
    -- What was created, as fluent_protection_problems() will compare it.
    p := jsonb_populate_record(p, jsonb_build_object(
        'policies', fluent._policies_of(tbl),
        'membership_policies', CASE WHEN membership_table IS NOT NULL THEN fluent._policies_of(membership_table) END));
    INSERT INTO fluent.protected_tables SELECT p.*;
END $$;

-- Partitions and children created or attached later: the column-limit
-- trigger under a table with column limits, the membership policies under a
-- membership table.
-- Whether a command collected for an event trigger creates or attaches a
-- table (src/ddl.rs), in the library this version's functions are in.
DO $$
DECLARE
    library text := (SELECT p.probin FROM pg_proc p WHERE p.oid = 'fluent.rls_all(text, text)'::regprocedure);
BEGIN
    EXECUTE format('CREATE FUNCTION fluent._attaches(command pg_ddl_command) RETURNS boolean STRICT LANGUAGE c AS %L, %L',
                   library, 'fluent_attaches');
END
$$;
REVOKE ALL ON FUNCTION fluent._attaches(pg_ddl_command) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._attaches(pg_ddl_command) TO fluent_admin;

CREATE OR REPLACE FUNCTION fluent._protect_new_children() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel regclass;
    root regclass;
    p fluent.protected_tables;
    rls_enabled boolean;
BEGIN
    FOR rel IN
        SELECT DISTINCT x.relid FROM pg_event_trigger_ddl_commands() c
         CROSS JOIN LATERAL (SELECT c.objid::regclass UNION SELECT fluent._descendants(c.objid::regclass)) x (relid)
         WHERE c.classid = 'pg_class'::regclass AND c.object_type = 'table' AND fluent._attaches(c.command)
    LOOP
        -- As it was before this function: a child of both a protected table
        -- and a membership table (multiple inheritance) gets both.
        SELECT cl.relrowsecurity INTO rls_enabled FROM pg_class cl WHERE cl.oid = rel;
        root := fluent._protected_root(rel);
        IF root IS NOT NULL AND root <> rel THEN
            SELECT * INTO p FROM fluent.protected_tables x WHERE x.table_name = root;
            IF NOT rls_enabled
               AND NOT EXISTS (SELECT 1 FROM pg_policy pl WHERE pl.polrelid = rel AND pl.polname = ANY (fluent._policy_names(false))) THEN
                PERFORM fluent._install_policies(rel, p, false);
            END IF;
            IF p.masked_view IS NOT NULL THEN
                PERFORM fluent._install_column_triggers(rel, p);
            END IF;
        END IF;
        root := fluent._membership_of(rel);
        IF root IS NOT NULL AND NOT rls_enabled
           AND NOT EXISTS (SELECT 1 FROM fluent.protected_tables x WHERE x.membership_table = rel)
           AND NOT EXISTS (SELECT 1 FROM pg_policy pl WHERE pl.polrelid = rel AND pl.polname = ANY (fluent._policy_names(true))) THEN
            SELECT * INTO p FROM fluent.protected_tables x WHERE x.table_name = root;
            PERFORM fluent._install_policies(rel, p, true);
        END IF;
    END LOOP;
END $$;



REVOKE ALL ON FUNCTION fluent._policy_definitions(fluent.protected_tables, regclass), fluent._membership_of(regclass),
    fluent._ancestors(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._policy_definitions(fluent.protected_tables, regclass), fluent._membership_of(regclass),
    fluent._ancestors(regclass) TO fluent_admin;

-- Column limits apply to the foreign-key actions a writer's statement
-- causes too (src/checks.rs).
CREATE  FUNCTION fluent."_column_limits_apply"(
	"rel" oid /* pg_sys :: Oid */
) RETURNS bool /* bool */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_column_limits_apply_wrapper';
REVOKE ALL ON FUNCTION fluent._column_limits_apply(oid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._column_limits_apply(oid) TO PUBLIC;

-- Issue 18 (cols): column writes and membership-only updates told or changed
-- more than the permissions allow.
-- A limited column gets a write trigger of its own, BEFORE INSERT OR UPDATE
-- OF the column, which refuses an update that assigns it without the
-- permission whether or not the value changes (an unchanged value passed:
-- a write oracle), and checks the row as it was as well as as written (a
-- row could be taken over, changed and handed back in one statement)
-- (sql/columns.sql). The argument is now one column's check, so the tables
-- with limits get their triggers again.
CREATE OR REPLACE FUNCTION fluent._check_column_writes() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c jsonb := TG_ARGV[0]::jsonb;
    -- The row against the reach, with its own column names.
    test text := format('SELECT %s FROM (SELECT ($1).*) AS r', c->>'reaches');
    reaches boolean;
BEGIN
    IF NOT fluent._column_limits_apply(TG_RELID) THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' AND to_jsonb(NEW)->(c->>'column') = 'null'::jsonb THEN
        RETURN NEW;
    END IF;
    EXECUTE test INTO reaches USING NEW;
    IF coalesce(reaches, false) AND TG_OP = 'UPDATE' THEN
        EXECUTE test INTO reaches USING OLD;
    END IF;
    IF NOT coalesce(reaches, false) THEN
        RAISE EXCEPTION 'permission denied to change column "%" of "%"', c->>'column', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('Writing column "%s" takes %s at a scope that reaches the row, as it is and as written (fluent_protect_columns).',
                                c->>'column', c->>'permission');
    END IF;
    RETURN NEW;
END $$;

-- Replaces the column write triggers on tbl (p's table) with one per
-- limit of p (none when it has none left). fluent's are told by their
-- function, whatever their names (0.1.0 had one trigger for all columns).
CREATE FUNCTION fluent._install_column_triggers(rel regclass, p fluent.protected_tables) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    trigger_name name;
    c jsonb;
BEGIN
    FOR trigger_name IN SELECT t.tgname FROM pg_trigger t
                         WHERE t.tgrelid = rel AND t.tgfoid = 'fluent._check_column_writes()'::regprocedure
                           AND t.tgparentid = 0 LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trigger_name, rel);
    END LOOP;
    IF (SELECT c.relispartition FROM pg_class c WHERE c.oid = rel) THEN
        RETURN;
    END IF;
    -- Named by column number: a column name may be as long as a trigger's.
    FOR c IN SELECT jsonb_array_elements(fluent._column_write_checks(p)) LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE OF %I ON %s FOR EACH ROW
                        EXECUTE FUNCTION fluent._check_column_writes(%L)',
                       'fluent_column_limits_' || (SELECT a.attnum FROM pg_attribute a
                                                   WHERE a.attrelid = rel AND a.attname = c->>'column'),
                       c->>'column', rel, c);
    END LOOP;
END $$;

REVOKE ALL ON FUNCTION fluent._install_column_triggers(regclass, fluent.protected_tables) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._install_column_triggers(regclass, fluent.protected_tables) TO fluent_admin;

CREATE OR REPLACE FUNCTION fluent._install_column_limits(p fluent.protected_tables, view_name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v regclass;
    rel regclass;
BEGIN
    -- The table first: its partitions then have their clones.
    PERFORM fluent._install_column_triggers(p.table_name, p);
    FOR rel IN SELECT fluent._descendants(p.table_name) LOOP
        PERFORM fluent._install_column_triggers(rel, p);
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM fluent.protected_columns c WHERE c.table_name = p.table_name) THEN
        IF p.masked_view IS NOT NULL THEN
            EXECUTE format('DROP VIEW %s', p.masked_view);
        END IF;
        UPDATE fluent.protected_tables t SET masked_view = NULL WHERE t.table_name = p.table_name;
        RETURN;
    END IF;
    -- OR REPLACE keeps the grants made on the view.
    EXECUTE format('CREATE OR REPLACE VIEW %s WITH (security_barrier) AS %s', view_name, fluent._masked_view_sql(p));
    v := to_regclass(view_name);
    EXECUTE format('ALTER VIEW %s OWNER TO %I', v,
                   (SELECT r.rolname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.oid = p.table_name));
    EXECUTE format('COMMENT ON VIEW %s IS %L', v,
                   format('%s with the columns limited by fluent_protect_columns() masked (NULL) for users without the permission to read them; created by fluent', p.table_name));
    UPDATE fluent.protected_tables t SET masked_view = v WHERE t.table_name = p.table_name;
END $$;

DO $$
DECLARE
    p fluent.protected_tables;
BEGIN
    FOR p IN SELECT * FROM fluent.protected_tables x WHERE x.masked_view IS NOT NULL LOOP
        PERFORM fluent._install_column_triggers(p.table_name, p);
        PERFORM fluent._install_column_triggers(d, p) FROM fluent._descendants(p.table_name) d;
    END LOOP;
END
$$;

-- In a table protected only through a membership table, an updated row must
-- stay within the writer's reach, as the owner column keeps it elsewhere
-- (sql/rls.sql). The update policy of such tables (and their partitions and
-- children) is changed where it is still what fluent_protect() created, and
-- recorded; one that was changed since is left for fluent.protection_status
-- to report.

DO $$
DECLARE
    p fluent.protected_tables;
    rel regclass;
    new_check text;
BEGIN
    FOR p IN SELECT * FROM fluent.protected_tables x WHERE x.owner_column IS NULL LOOP
        CONTINUE WHEN fluent._policies_of(p.table_name) -> 'fluent_update' IS DISTINCT FROM p.policies -> 'fluent_update';
        SELECT d.check_expr INTO new_check FROM fluent._policy_definitions(p, p.table_name) d
         WHERE NOT d.on_membership AND d.policy = 'fluent_update';
        FOR rel IN SELECT p.table_name UNION ALL SELECT fluent._descendants(p.table_name) LOOP
            IF fluent._policies_of(rel) -> 'fluent_update' = p.policies -> 'fluent_update' THEN
                EXECUTE format('ALTER POLICY fluent_update ON %s WITH CHECK (%s)', rel, new_check);
            END IF;
        END LOOP;
        UPDATE fluent.protected_tables x
           SET policies = jsonb_set(x.policies, '{fluent_update}', fluent._policies_of(x.table_name) -> 'fluent_update')
         WHERE x.table_name = p.table_name;
    END LOOP;
END
$$;

-- Issue 18 (drift): fluent_protection_problems() also reports the drift that
-- left a protection "intact" (sql/rls.sql): the column trigger and the
-- masked view (fluent._column_limit_problems, which makes fluent's view as a
-- temporary one to compare: the function is now VOLATILE), materialized
-- views whoever owns them, views of other owners that read limited columns,
-- parents outside the protection, grants on limited columns of partitions
-- and children, and the membership policies of the membership table's
-- partitions and children.
-- What drifted in p's column limits (fluent_protect_columns): the write
-- trigger missing, disabled or changed on the table or on one of its
-- partitions and children; the masked view dropped, given another owner or
-- other options, or redefined. The view's definition is compared with the
-- one fluent_protect_columns() would make now, both as PostgreSQL prints
-- them: that one is made as a temporary view in a subtransaction, which is
-- then rolled back (hence VOLATILE). Where it cannot be made (a read-only
-- transaction), the comparison is reported as not made.
CREATE FUNCTION fluent._column_limit_problems(p fluent.protected_tables)
RETURNS TABLE (relation regclass, problem text, detail text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c jsonb;
    t record;
    v record;
    expected text;
    failure text;
BEGIN
    -- Each limited column has its trigger on the table and on every
    -- partition and child (sql/columns.sql): BEFORE INSERT OR UPDATE OF the
    -- column FOR EACH ROW (tgtype bits ROW 1, BEFORE 2, INSERT 4, UPDATE 16),
    -- no WHEN, fluent's function and the column's check as argument, told
    -- by its column (a partition's clone has its parent's name).
    FOR relation, c IN SELECT r, x FROM (SELECT p.table_name UNION ALL SELECT fluent._descendants(p.table_name)) rel (r)
                        CROSS JOIN jsonb_array_elements(fluent._column_write_checks(p)) x LOOP
        SELECT tg.tgname, tg.tgenabled, tg.tgtype = 23 AND tg.tgqual IS NULL
                   AND tg.tgargs = convert_to(c::text, getdatabaseencoding()) || '\x00'::bytea AS as_created
          INTO t FROM pg_trigger tg JOIN pg_attribute a ON a.attrelid = tg.tgrelid AND a.attname = c->>'column'
         WHERE tg.tgrelid = relation AND tg.tgfoid = 'fluent._check_column_writes()'::regprocedure
           AND tg.tgattr = a.attnum::text::int2vector
         ORDER BY tg.tgenabled = 'O' DESC LIMIT 1;
        IF NOT FOUND THEN
            problem := 'column trigger missing';
            detail := format('column %I has no write trigger: whoever may update a row changes it', c->>'column');
            RETURN NEXT;
        ELSIF NOT t.as_created THEN
            problem := 'column trigger changed';
            detail := format('%I, the write trigger of column %I, is not what fluent_protect_columns() created', t.tgname, c->>'column');
            RETURN NEXT;
        ELSIF t.tgenabled <> 'O' THEN
            problem := CASE t.tgenabled WHEN 'A' THEN 'column trigger changed' ELSE 'column trigger disabled' END;
            detail := format(CASE t.tgenabled
                WHEN 'D' THEN '%I is disabled: whoever may update a row changes column %I'
                WHEN 'R' THEN '%I fires in replica sessions only (ENABLE REPLICA): elsewhere whoever may update a row changes column %I'
                ELSE '%I fires ALWAYS, not as fluent_protect_columns() left it (ENABLE TRIGGER puts it back); it guards column %I' END,
                t.tgname, c->>'column');
            RETURN NEXT;
        END IF;
    END LOOP;

    relation := p.masked_view;
    SELECT c.relowner, c.reloptions, pg_get_viewdef(c.oid) AS definition, o.rolname AS owner_name,
           tc.relowner AS table_owner
      INTO v FROM pg_class c JOIN pg_roles o ON o.oid = c.relowner JOIN pg_class tc ON tc.oid = p.table_name
     WHERE c.oid = p.masked_view AND c.relkind = 'v';
    IF NOT FOUND THEN
        problem := 'masked view missing';
        detail := 'it was dropped';
        RETURN NEXT;
        RETURN;
    END IF;
    IF v.relowner <> v.table_owner THEN
        problem := 'masked view owner changed';
        detail := format('owned by %s, not by the table''s owner: it reads the table with that role''s rights', quote_ident(v.owner_name));
        RETURN NEXT;
    END IF;
    IF v.reloptions IS DISTINCT FROM '{security_barrier=true}'::text[] THEN
        problem := 'masked view options changed';
        detail := format('its options are %s; fluent_protect_columns() makes it with security_barrier alone', coalesce(v.reloptions::text, 'none'));
        RETURN NEXT;
    END IF;
    -- The block always fails, which rolls the temporary view back; expected
    -- is set only if the view could be made.
    BEGIN
        EXECUTE format('CREATE TEMPORARY VIEW fluent_masked_view_check AS %s', fluent._masked_view_sql(p));
        expected := pg_get_viewdef(to_regclass('pg_temp.fluent_masked_view_check'));
        RAISE EXCEPTION 'rolled back';
    EXCEPTION WHEN OTHERS THEN
        IF expected IS NULL THEN
            failure := SQLERRM;
        END IF;
    END;
    IF failure IS NOT NULL THEN
        problem := 'masked view not checked';
        detail := format('its definition could not be compared with fluent''s: %s', failure);
        RETURN NEXT;
    ELSIF v.definition IS DISTINCT FROM expected THEN
        problem := 'masked view changed';
        detail := 'its definition is not what fluent_protect_columns() makes (a mask removed or changed, or a column added to the table since): fluent_protect_columns() makes it again';
        RETURN NEXT;
    END IF;
END $$;

-- What no longer matches what fluent_protect() set up, one row per problem:
-- row-level security disabled or not forced, fluent's policies missing or
-- changed, permissive policies added (they widen access), on the table, its
-- partitions and children, its membership table and that table's partitions
-- and children; any of these inheriting from a table outside the protection
-- (queries on that table read their rows under its policies, not fluent's);
-- limited columns that roles may read on
-- the table or its partitions and children; drift of the column limits
-- (fluent._column_limit_problems); and views that read them past the
-- policies or the column limits: owned by a superuser or a BYPASSRLS role
-- without security_invoker; materialized views, whoever owns them (they
-- store what their last refresh saw); other views without security_invoker
-- that read limited columns (PostgreSQL checks column privileges as the
-- view's owner, while the policies still filter the rows by the acting user).
-- VOLATILE as fluent._column_limit_problems is.
CREATE OR REPLACE FUNCTION @extschema@.fluent_protection_problems()
RETURNS TABLE (table_name regclass, relation regclass, problem text, detail text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p fluent.protected_tables;
    expected jsonb;
    actual jsonb;
    c record;
    k text;
    on_membership boolean;
BEGIN
    FOR p IN SELECT * FROM fluent.protected_tables x ORDER BY x.table_name::text LOOP
        table_name := p.table_name;
        FOR relation, expected, on_membership IN
            SELECT p.table_name, p.policies, false
            UNION ALL SELECT d, p.policies, false FROM fluent._descendants(p.table_name) d
            UNION ALL SELECT p.membership_table, p.membership_policies, true WHERE p.membership_table IS NOT NULL
            -- The membership table's partitions and children (but those
            -- under another protection's membership table, checked there)
            -- carry its policies, where the row written is named by the
            -- partition or child: the recorded text with that name in place
            -- of the membership table's, as PostgreSQL prints it (the
            -- relation's name, quoted as needed, then the column). One named
            -- t or m, as the policies' inner aliases are, is printed with
            -- those renamed (t_1), and reported as changed although it is not.
            UNION ALL
            SELECT d, (SELECT jsonb_object_agg(x.policy, x.def || jsonb_build_object(
                                  'using', replace(x.def->>'using', member_ref, child_ref),
                                  'check', replace(x.def->>'check', member_ref, child_ref)))
                         FROM jsonb_each(p.membership_policies) x (policy, def)), true
              FROM fluent._descendants(p.membership_table) d
             CROSS JOIN LATERAL (
                 SELECT (SELECT quote_ident(cl.relname) FROM pg_class cl WHERE cl.oid = p.membership_table)
                            || '.' || quote_ident(p.membership_row_column),
                        (SELECT quote_ident(cl.relname) FROM pg_class cl WHERE cl.oid = d)
                            || '.' || quote_ident(p.membership_row_column)) r (member_ref, child_ref)
             WHERE p.membership_table IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM fluent.protected_tables o
                                WHERE o.table_name <> p.table_name
                                  AND (o.membership_table = d OR d IN (SELECT fluent._descendants(o.membership_table))))
        LOOP
            SELECT cl.relrowsecurity, cl.relforcerowsecurity INTO c FROM pg_class cl WHERE cl.oid = relation;
            IF NOT c.relrowsecurity THEN
                problem := 'row-level security disabled';
                detail := 'every role with privileges on it sees and changes every row';
                RETURN NEXT;
            END IF;
            IF NOT c.relforcerowsecurity THEN
                problem := 'row-level security not forced';
                detail := 'its owner sees and changes every row';
                RETURN NEXT;
            END IF;
            actual := fluent._policies_of(relation);
            FOR k IN SELECT jsonb_object_keys(expected) LOOP
                IF NOT actual ? k THEN
                    problem := 'policy missing';
                    detail := format('%s was dropped', k);
                    RETURN NEXT;
                ELSIF actual -> k <> expected -> k THEN
                    problem := 'policy changed';
                    detail := format('%s is not what fluent_protect() created', k);
                    RETURN NEXT;
                END IF;
            END LOOP;
            FOR k IN SELECT x FROM jsonb_object_keys(actual) x
                      WHERE NOT expected ? x AND (actual -> x ->> 'permissive')::boolean LOOP
                problem := 'permissive policy added';
                detail := format('%s is OR-ed with fluent''s policies and widens access', k);
                RETURN NEXT;
            END LOOP;
            -- A query reads a child's rows under the policies of the table
            -- it names: a parent outside the protection (INHERIT, ATTACH
            -- PARTITION) reads and changes them past fluent's. (The
            -- membership table's partitions and children have it, or its
            -- partitions and children, as parents.)
            FOR c IN
                SELECT i.inhparent::regclass AS parent, pt.module
                  FROM pg_inherits i LEFT JOIN fluent.protected_tables pt ON pt.table_name = i.inhparent
                 WHERE i.inhrelid = relation AND i.inhparent <> p.table_name
                   AND i.inhparent NOT IN (SELECT fluent._descendants(p.table_name))
                   AND NOT (on_membership AND (i.inhparent = p.membership_table
                                               OR i.inhparent IN (SELECT fluent._descendants(p.membership_table))))
                 ORDER BY 1
            LOOP
                problem := 'parent outside the protection';
                detail := format('it inherits from %s, which %s: queries on %s read and change its rows without these policies; detach it (NO INHERIT or DETACH PARTITION)',
                                 c.parent, coalesce('fluent protects for module ' || c.module, 'fluent does not protect'), c.parent);
                RETURN NEXT;
            END LOOP;
        END LOOP;
        -- Limited columns the table, or one of its partitions and children,
        -- lets roles read directly, past the masked view.
        FOR c IN
            SELECT DISTINCT cl.oid::regclass AS rel, pc.column_name,
                   CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS grantee,
                   cl.oid = p.table_name AS on_table
              FROM fluent.protected_columns pc
              JOIN pg_class cl ON cl.oid = pc.table_name OR cl.oid IN (SELECT fluent._descendants(p.table_name))
              JOIN pg_attribute att ON att.attrelid = cl.oid AND att.attname = pc.column_name
             CROSS JOIN LATERAL (SELECT * FROM aclexplode(cl.relacl) UNION ALL SELECT * FROM aclexplode(att.attacl)) a
              LEFT JOIN pg_roles r ON r.oid = a.grantee
             WHERE pc.table_name = p.table_name AND a.privilege_type = 'SELECT' AND a.grantee <> cl.relowner
             ORDER BY 4 DESC, 1, 2, 3
        LOOP
            relation := c.rel;
            problem := 'limited column readable';
            detail := CASE WHEN c.rel = p.table_name
                THEN format('%s may read column %I of the table itself, unmasked: revoke it and grant the other columns', c.grantee, c.column_name)
                ELSE format('%s may read column %I of this partition or child directly, unmasked: revoke it', c.grantee, c.column_name) END;
            RETURN NEXT;
        END LOOP;
        IF p.masked_view IS NOT NULL THEN
            RETURN QUERY SELECT p.table_name, x.relation, x.problem, x.detail FROM fluent._column_limit_problems(p) x;
        END IF;
        FOR c IN
            WITH RECURSIVE protected_rels (relid) AS (
                SELECT p.table_name::oid UNION ALL SELECT d::oid FROM fluent._descendants(p.table_name) d
            ), readers (viewid) AS (
                SELECT r.ev_class FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                 WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid IN (SELECT relid FROM protected_rels)
                   AND r.ev_class <> d.refobjid
                UNION
                SELECT r.ev_class FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                  JOIN readers ON d.refclassid = 'pg_class'::regclass AND d.refobjid = readers.viewid
                 WHERE r.ev_class <> d.refobjid
            ), views (viewid, relkind, invoker) AS (
                SELECT v.oid, v.relkind, v.relkind = 'v' AND EXISTS (SELECT 1 FROM unnest(v.reloptions) opt
                        WHERE lower(opt) IN ('security_invoker=true', 'security_invoker=on', 'security_invoker=1', 'security_invoker=yes'))
                  FROM readers JOIN pg_class v ON v.oid = readers.viewid
            ), reads (viewid, relid, attnum) AS (
                -- the columns each reader's query names (0: a whole row, or none)
                SELECT r.ev_class, d.refobjid, d.refobjsubid FROM pg_rewrite r JOIN views ON views.viewid = r.ev_class
                  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
                 WHERE d.refobjid <> r.ev_class
            ), limited (relid, attnum) AS (
                -- the limited columns of the table and its partitions and
                -- children (a security_invoker view reads them with the
                -- privileges of the current user, also under another view)
                SELECT a.attrelid, a.attnum FROM pg_attribute a JOIN fluent.protected_columns pc ON pc.column_name = a.attname
                 WHERE pc.table_name = p.table_name AND a.attrelid IN (SELECT relid FROM protected_rels) AND NOT a.attisdropped
            )
            SELECT v.oid::regclass AS viewid, v.relkind, o.rolname, o.rolsuper, o.rolbypassrls, views.invoker,
                   (SELECT string_agg(DISTINCT quote_ident(a.attname), ', ') FROM reads JOIN limited USING (relid, attnum)
                      JOIN pg_attribute a ON a.attrelid = limited.relid AND a.attnum = limited.attnum
                     WHERE reads.viewid = v.oid) AS limited_columns,
                   -- a whole-row reference (a Var with varattno 0) to a relation with limited columns
                   EXISTS (SELECT 1 FROM reads JOIN pg_rewrite r ON r.ev_class = reads.viewid
                            WHERE reads.viewid = v.oid AND reads.relid IN (SELECT relid FROM limited)
                              AND r.ev_action::text LIKE '%:varattno 0 %') AS whole_rows
              FROM views JOIN pg_class v ON v.oid = views.viewid JOIN pg_roles o ON o.oid = v.relowner
             ORDER BY 1
        LOOP
            CONTINUE WHEN c.invoker;
            relation := c.viewid;
            IF c.relkind = 'm' THEN
                problem := 'materialized view bypasses the policies';
                detail := format('owned by %s%s: it stores the rows and columns its last refresh read, whoever was acting then, and shows them to whoever may read it',
                                 quote_ident(c.rolname), CASE WHEN c.rolsuper THEN ', a superuser' WHEN c.rolbypassrls THEN ', a BYPASSRLS role' ELSE '' END);
            ELSIF c.rolsuper OR c.rolbypassrls THEN
                problem := 'view bypasses the policies';
                detail := format('owned by %s, a %s, without security_invoker', quote_ident(c.rolname),
                                 CASE WHEN c.rolsuper THEN 'superuser' ELSE 'BYPASSRLS role' END);
            ELSIF (c.limited_columns IS NOT NULL OR c.whole_rows) AND c.viewid IS DISTINCT FROM p.masked_view THEN
                problem := 'view exposes limited columns';
                detail := format('owned by %s, without security_invoker: whoever may read it reads %s unmasked, with its owner''s column privileges (the policies still filter the rows)',
                                 quote_ident(c.rolname), coalesce('column ' || c.limited_columns, 'whole rows'));
            ELSE
                CONTINUE;
            END IF;
            RETURN NEXT;
        END LOOP;
    END LOOP;
END $$;

REVOKE ALL ON FUNCTION fluent._column_limit_problems(fluent.protected_tables) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._column_limit_problems(fluent.protected_tables) TO fluent_admin;
GRANT EXECUTE ON FUNCTION fluent._column_limit_problems(fluent.protected_tables), fluent._column_write_checks(fluent.protected_tables),
    fluent._masked_view_sql(fluent.protected_tables), fluent._rows_reached_sql(fluent.protected_tables, text, text),
    fluent._reach_sql(text, text, text, text), fluent._key_test_sql(text, text, text, boolean), fluent._user_key_sql(text),
    fluent._reached_keys_sql(text, text, text), fluent._typed_keys_sql(text, text, text), fluent._key_kind(regclass, name, text),
    fluent._unsupported_key_type(regclass, name, regtype, text)
    TO fluent_reader;
COMMENT ON FUNCTION @extschema@.fluent_protection_problems() IS
    'What no longer matches what fluent_protect() and fluent_protect_columns() set up: row-level security disabled or not forced, policies missing, changed or added, parents outside the protection, on protected tables, their partitions and children and membership tables; limited columns readable, the column trigger and the masked view changed; and views that bypass the policies or the column limits';

-- Privileges and comments as sql/privileges.sql sets them.
REVOKE ALL ON FUNCTION fluent._check_tree(), fluent._detach_children(), fluent._session_user_is_dba(),
    fluent._row_lookup(regclass), fluent._holders_scope_maps(text, int),
    fluent._holders_within_powers(text, jsonb, jsonb, int, text),
    fluent._test_role(regrole), @extschema@.fluent_test_act_as(text, regrole), @extschema@.fluent_test_reset() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._session_user_is_dba(), fluent._row_lookup(regclass),
    fluent._holders_scope_maps(text, int), fluent._holders_within_powers(text, jsonb, jsonb, int, text) TO fluent_admin;
GRANT EXECUTE ON FUNCTION fluent._test_role(regrole), @extschema@.fluent_test_act_as(text, regrole),
    @extschema@.fluent_test_reset() TO PUBLIC;
COMMENT ON FUNCTION @extschema@.fluent_test_act_as(text, regrole) IS
    'For application test suites run as a DBA: act as the user (NULL: nobody) through the application role until the transaction ends, so that row-level security applies';
COMMENT ON FUNCTION @extschema@.fluent_test_reset() IS 'For application test suites: back to the test runner''s own role, acting for nobody';

-- Issue 18: the catalog and the SECURITY DEFINER functions belong to a role
-- without superuser powers, as sql/privileges.sql sets them.
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

-- Issue 19: assignable roles. Per role, the roles its holders may grant,
-- revoke, clone, reset and drop as delegated administrators
-- (fluent.assignable_roles, sql/catalog.sql), checked in addition to the
-- escalation rule once a workspace lists any; fluent_set_assignable() and
-- fluent_clear_assignable(); the templates' lists and the fluent template's
-- owner-only modules (sql/admin.sql, sql/templates.sql, sql/triggers.sql,
-- sql/privileges.sql). Workspaces loaded from a template before this version
-- list nothing, so the rule does not hold there until a DBA applies the
-- template again (which adds what is missing: the lists, and the new
-- modules) or lists roles with fluent_set_assignable().
CREATE TABLE fluent.assignable_roles (
    workspace_id       int NOT NULL,
    role_id            int NOT NULL,
    assignable_role_id int NOT NULL,
    PRIMARY KEY (role_id, assignable_role_id),
    FOREIGN KEY (workspace_id, role_id) REFERENCES fluent.roles (workspace_id, role_id) ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, assignable_role_id) REFERENCES fluent.roles (workspace_id, role_id) ON DELETE CASCADE
);
CREATE INDEX assignable_roles_assignable_idx ON fluent.assignable_roles (assignable_role_id);
CREATE INDEX assignable_roles_workspace_idx ON fluent.assignable_roles (workspace_id);
COMMENT ON TABLE fluent.assignable_roles IS
    'Delegated administration: the roles (assignable_role_id) that holders of role_id may grant, revoke, clone, reset and drop; once a workspace lists any, a delegated administrator manages only roles that a role they hold lists';
SELECT pg_catalog.pg_extension_config_dump('fluent.assignable_roles', '');

CREATE TRIGGER audit_change AFTER INSERT OR UPDATE OR DELETE
    ON fluent.assignable_roles FOR EACH ROW EXECUTE FUNCTION fluent.audit_change();
CREATE TRIGGER audit_truncate AFTER TRUNCATE
    ON fluent.assignable_roles FOR EACH STATEMENT EXECUTE FUNCTION fluent.audit_change();

-- Whether the current workspace lists assignable roles.
CREATE FUNCTION fluent._lists_assignable() RETURNS boolean
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT EXISTS (SELECT 1 FROM fluent.assignable_roles a WHERE a.workspace_id = fluent._workspace_id());
END;

-- Whether some role the user actively holds in the current workspace (an
-- active user, a grant in force, as for privileged roles) lists role rid.
CREATE FUNCTION fluent._may_assign(p_user text, rid int) RETURNS boolean
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT EXISTS (SELECT 1 FROM fluent.grants g JOIN fluent.users u ON u.user_id = g.user_id
                     JOIN fluent.assignable_roles a ON a.role_id = g.role_id
                    WHERE u.user_key = p_user AND u.status = 'active' AND a.assignable_role_id = rid
                      AND g.workspace_id = fluent._workspace_id() AND fluent._in_force(g.valid_until));
END;

-- Refuses a delegated administrator `what` on role rid (grant, revoke,
-- clone, ...) unless a role they hold lists it, where the workspace lists
-- assignable roles.
CREATE FUNCTION fluent._assignable_only(delegate text, rid int, what text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF delegate IS NOT NULL AND fluent._lists_assignable() AND NOT fluent._may_assign(delegate, rid) THEN
        PERFORM fluent._refuse(format('fluent user "%s" may not %s role "%s", which no role of theirs may assign', delegate, what,
                                      (SELECT r.name FROM fluent.roles r WHERE r.role_id = rid)),
                               'A delegated administrator manages only the roles that a role they hold lists as assignable (fluent.assignable_roles, set by fluent_set_assignable()).');
    END IF;
END $$;

-- The roles role rid lists, for a check after a change (_assignable_within).
CREATE FUNCTION fluent._assignable_set(rid int) RETURNS int[]
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT coalesce(array_agg(a.assignable_role_id ORDER BY a.assignable_role_id), '{}')
      FROM fluent.assignable_roles a WHERE a.role_id = rid;
END;

-- What a delegated administrator lets a role's holders assign stays within
-- what they may assign themselves: every role rid lists now and did not
-- before (`before`, from _assignable_set) must be one of theirs.
CREATE FUNCTION fluent._assignable_within(delegate text, rid int, before int[]) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    beyond text;
BEGIN
    IF delegate IS NULL OR NOT fluent._lists_assignable() THEN
        RETURN;
    END IF;
    SELECT string_agg(format('"%s"', r.name), ', ' ORDER BY r.name) INTO beyond
      FROM fluent.assignable_roles a JOIN fluent.roles r ON r.role_id = a.assignable_role_id
     WHERE a.role_id = rid AND NOT a.assignable_role_id = ANY (before) AND NOT fluent._may_assign(delegate, r.role_id);
    IF beyond IS NOT NULL THEN
        PERFORM fluent._refuse(format('fluent user "%s" may not let the holders of role "%s" assign %s, which no role of theirs may assign',
                                      delegate, (SELECT r.name FROM fluent.roles r WHERE r.role_id = rid), beyond),
                               'A delegated administrator makes assignable only the roles that a role they hold lists as assignable (fluent.assignable_roles).');
    END IF;
END $$;

-- A delegated administrator does not turn the rule off: a change of theirs
-- that leaves a workspace which listed assignable roles (`listed`, from
-- _lists_assignable) listing none is refused.
CREATE FUNCTION fluent._still_lists_assignable(delegate text, listed boolean) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF delegate IS NOT NULL AND listed AND NOT fluent._lists_assignable() THEN
        PERFORM fluent._refuse(format('fluent user "%s" may not remove the last assignable role of workspace "%s"', delegate,
                                      fluent._workspace_name()),
                               'Without any, delegated administrators could assign every role; a DBA may make this change.');
    END IF;
END $$;

-- A new role (fluent_create_role) is assignable by the roles that assign
-- every role of the workspace that is not privileged (fluent's Owner and
-- Admin, Fluid's User Administrator, cx's Admin), where the workspace lists
-- assignable roles: the general administrators keep administering
-- everything, and a delegated administrator can grant the role they made.
CREATE FUNCTION fluent._assignable_by_general_administrators(new_id int) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    INSERT INTO fluent.assignable_roles (workspace_id, role_id, assignable_role_id)
    SELECT r.workspace_id, r.role_id, new_id
      FROM fluent.roles r
     WHERE r.workspace_id = fluent._workspace_id() AND r.role_id <> new_id
       AND EXISTS (SELECT 1 FROM fluent.assignable_roles a WHERE a.role_id = r.role_id)
       AND NOT EXISTS (SELECT 1 FROM fluent.roles o
                        WHERE o.workspace_id = r.workspace_id AND NOT o.privileged AND o.role_id <> new_id
                          AND NOT EXISTS (SELECT 1 FROM fluent.assignable_roles a
                                           WHERE a.role_id = r.role_id AND a.assignable_role_id = o.role_id))
    ON CONFLICT DO NOTHING;
END;

-- Lets holders of `role` assign `assignable_role` (DBAs; delegated
-- administrators with manage_roles, for roles they may assign themselves,
-- where the workspace lists assignable roles already).
CREATE FUNCTION fluent._do_set_assignable(role text, assignable_role text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_roles');
    rid int := fluent._role_id(role);
    aid int := fluent._role_id(assignable_role);
BEGIN
    IF delegate IS NOT NULL AND NOT fluent._lists_assignable() THEN
        PERFORM fluent._refuse(format('fluent user "%s" may not start listing assignable roles in workspace "%s"', delegate,
                                      fluent._workspace_name()),
                               'The first assignable role of a workspace turns the rule on for every administrator there: a DBA lists it.');
    END IF;
    PERFORM fluent._may_touch_role(delegate, rid);
    PERFORM fluent._may_touch_role(delegate, aid);
    PERFORM fluent._assignable_only(delegate, rid, 'change');
    PERFORM fluent._assignable_only(delegate, aid, 'make assignable');
    INSERT INTO fluent.assignable_roles (workspace_id, role_id, assignable_role_id)
    VALUES (fluent._workspace_id(), rid, aid)
    ON CONFLICT (role_id, assignable_role_id) DO NOTHING;
    IF NOT FOUND THEN
        RAISE NOTICE 'holders of fluent role "%" may already assign role "%"', role, assignable_role;
    END IF;
END $$;

CREATE FUNCTION fluent._do_clear_assignable(role text, assignable_role text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_roles');
    rid int := fluent._role_id(role);
    aid int := fluent._role_id(assignable_role);
    listed boolean := fluent._lists_assignable();
BEGIN
    PERFORM fluent._may_touch_role(delegate, rid);
    PERFORM fluent._may_touch_role(delegate, aid);
    PERFORM fluent._assignable_only(delegate, rid, 'change');
    PERFORM fluent._assignable_only(delegate, aid, 'make unassignable');
    DELETE FROM fluent.assignable_roles a WHERE a.role_id = rid AND a.assignable_role_id = aid;
    IF NOT FOUND THEN
        RAISE WARNING 'holders of fluent role "%" may not assign role "%"', role, assignable_role;
    END IF;
    PERFORM fluent._still_lists_assignable(delegate, listed);
END $$;

CREATE FUNCTION @extschema@.fluent_set_assignable(role text, assignable_role text) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_set_assignable(role, assignable_role, fluent._caller());
END;
CREATE FUNCTION @extschema@.fluent_clear_assignable(role text, assignable_role text) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_clear_assignable(role, assignable_role, fluent._caller());
END;

-- The delegation checks that now also ask whether the role is assignable.
CREATE OR REPLACE FUNCTION fluent._do_create_role(role text, description text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_roles');
    new_id int;
BEGIN
    INSERT INTO fluent.roles (workspace_id, name, description)
    VALUES (fluent._workspace_id(), fluent._name(role, 'role'), description)
    ON CONFLICT (workspace_id, name) DO NOTHING
    RETURNING role_id INTO new_id;
    IF new_id IS NULL THEN PERFORM fluent._duplicate('role', role); END IF;
    PERFORM fluent._assignable_by_general_administrators(new_id);
END $$;

CREATE OR REPLACE FUNCTION fluent._do_drop_role(role text, force boolean, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_roles');
    rid int := fluent._role_id(role);
    sign_in boolean := (SELECT r.grants_sign_in FROM fluent.roles r WHERE r.role_id = rid);
    staffed int[] := fluent._staffed_workspaces();
    administered text[] := fluent._administered_rights();
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    -- Dropping the last sign-in role lets everyone act.
    holders jsonb := CASE WHEN sign_in THEN fluent._holders_scope_maps(delegate, NULL) END;
    listed boolean := fluent._lists_assignable();
BEGIN
    PERFORM fluent._may_force(delegate, force);
    PERFORM fluent._may_touch_role(delegate, rid);
    PERFORM fluent._assignable_only(delegate, rid, 'drop');
    PERFORM fluent._privileged_only(delegate, sign_in, format('drop sign-in role "%s"', role));
    -- Its permissions and grants go with it (ON DELETE CASCADE).
    DELETE FROM fluent.roles WHERE role_id = rid;
    PERFORM fluent._holders_within_powers(delegate, powers, holders, NULL, role);
    PERFORM fluent._still_lists_assignable(delegate, listed);
    PERFORM fluent._still_staffed(staffed, force);
    PERFORM fluent._still_administered(administered, force);
END $$;

CREATE OR REPLACE FUNCTION fluent._do_grant_role(user_key text, role text, until timestamptz, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'assign_roles');
    uid bigint := fluent._visible_user_id(delegate, user_key);
    rid int := fluent._role_id(role);
    expiry timestamptz := fluent._until(until);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(user_key) END;
    -- Making a privileged grant temporary may leave the workspace without a
    -- holder once it lapses (DBAs may: this function has no force).
    staffed int[] := CASE WHEN delegate IS NOT NULL THEN fluent._staffed_workspaces() END;
    administered text[] := CASE WHEN delegate IS NOT NULL THEN fluent._administered_rights() END;
BEGIN
    PERFORM fluent._not_self(delegate, user_key, 'roles');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_role(delegate, rid);
    PERFORM fluent._assignable_only(delegate, rid, 'grant');
    PERFORM fluent._may_touch_sign_in(delegate, uid, rid);
    -- Every permission of the role must be within the granter's own, and so
    -- must what the grant opens (a sign-in role opens the user's other roles).
    PERFORM fluent._within_powers(delegate, powers, '{}', fluent._role_scope_map(rid), format('"%s" role "%s", which has', user_key, role));
    -- Granting again sets the expiry the call gives (NULL: none); a grant
    -- that expired counts again from now.
    INSERT INTO fluent.grants AS g (workspace_id, user_id, role_id, valid_until)
    VALUES (fluent._workspace_id(), uid, rid, expiry)
    ON CONFLICT (user_id, role_id) DO UPDATE
       SET valid_until = EXCLUDED.valid_until,
           granted_at = CASE WHEN fluent._in_force(g.valid_until) THEN g.granted_at ELSE EXCLUDED.granted_at END
     WHERE g.valid_until IS DISTINCT FROM EXCLUDED.valid_until;
    IF NOT FOUND THEN
        RAISE NOTICE 'fluent user "%" already holds role "%"', user_key, role;
    END IF;
    IF delegate IS NOT NULL THEN
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key), format('"%s"', user_key));
        PERFORM fluent._still_staffed(staffed, false);
        PERFORM fluent._still_administered(administered, false);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION fluent._do_revoke_role(user_key text, role text, force boolean, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'assign_roles');
    uid bigint := fluent._visible_user_id(delegate, user_key);
    rid int := fluent._role_id(role);
    staffed int[] := fluent._staffed_workspaces();
    administered text[] := fluent._administered_rights();
BEGIN
    PERFORM fluent._may_force(delegate, force);
    PERFORM fluent._not_self(delegate, user_key, 'roles');
    PERFORM fluent._may_touch_role(delegate, rid);
    PERFORM fluent._assignable_only(delegate, rid, 'revoke');
    PERFORM fluent._may_touch_sign_in(delegate, uid, rid);
    DELETE FROM fluent.grants g WHERE g.user_id = uid AND g.role_id = rid;
    IF NOT FOUND THEN
        RAISE WARNING 'fluent user "%" does not hold role "%"', user_key, role;
    END IF;
    PERFORM fluent._still_staffed(staffed, force);
    PERFORM fluent._still_administered(administered, force);
END $$;

-- Which template roles may assign which (see fluent.assignable_roles).
CREATE TABLE fluent.template_assignable_roles (
    template        text NOT NULL,
    role            text NOT NULL,
    assignable_role text NOT NULL,
    PRIMARY KEY (template, role, assignable_role),
    FOREIGN KEY (template, role) REFERENCES fluent.template_roles,
    FOREIGN KEY (template, assignable_role) REFERENCES fluent.template_roles
);
COMMENT ON TABLE fluent.template_assignable_roles IS
    'The roles a template role''s holders may assign as delegated administrators (see fluent.assignable_roles): what fluent_apply_template() lists and fluent_reset_role() restores';

-- Seed 000: the Owner has everything, the Admin most settings and user
-- management, and "Keep Owner/Admin roles limited": the Owner assigns every
-- role, the Admin every role but Owner, nobody else any. Seed 003: "only
-- users with the User Administrator role can set the roles on a user
-- account"; the timesheet administrator manages "the exempt user group and
-- timesheet admin user group". Seed 004: the Admin has full access.
INSERT INTO fluent.template_assignable_roles (template, role, assignable_role)
SELECT tr.template, a.role, tr.role
  FROM fluent.template_roles tr
  JOIN (VALUES ('fluent', 'owner'), ('fluent', 'admin'), ('fluid', 'user_administrator'), ('cx', 'admin')) a(template, role)
    ON a.template = tr.template
 WHERE NOT (tr.template = 'fluent' AND a.role = 'admin' AND tr.role = 'owner')
UNION ALL
SELECT 'fluid', 'timesheet_administrator', r FROM unnest('{timesheet_exempt,timesheet_administrator}'::text[]) r;

-- Seed 003: managing the two timesheet groups comes with the timesheet
-- settings, and needs neither of them held (no one is exempt to exempt
-- others); the list above keeps it to those two.
INSERT INTO fluent.template_admin_rights (template, admin_right, module, action, note) VALUES
    ('fluid', 'assign_roles',      'timesheet_settings', 'write', 'the timesheet administrator manages the exempt and timesheet administrator groups'),
    ('fluid', 'assign_beyond_own', 'timesheet_settings', 'write', 'exempts others without being exempt; fluent.assignable_roles bounds which roles');

-- Seed 000: what makes the Owner more than the Admin, "including billing +
-- security settings": the workspace's subscription (its plan and billing)
-- and its security settings, the Owner's alone.
INSERT INTO fluent.template_modules (template, module, actions, position) VALUES
    ('fluent', 'subscription',      '{read,write}', 16),
    ('fluent', 'security_settings', '{read,write}', 17);
INSERT INTO fluent.template_permissions (template, role, module, action, scope, note)
SELECT 'fluent', r.role, m.module, a.action, CASE WHEN r.role = 'owner' THEN 'all' ELSE 'none' END::fluent.scope,
       CASE WHEN r.role = 'owner' THEN 'seed 000: the Owner has "everything, including billing + security settings"'
            WHEN r.role = 'admin' THEN 'seed 000: owner-only; the Admin has "most settings"' END
  FROM fluent.template_roles r, fluent.template_modules m, unnest(m.actions) a(action)
 WHERE r.template = 'fluent' AND m.template = 'fluent' AND m.module IN ('subscription', 'security_settings');

-- A template's list resolved in workspace ws: for each role based on the
-- template (clones included), the roles based on the template it may assign.
CREATE FUNCTION fluent._template_assignable(ws int, p_template text)
RETURNS TABLE (role_id int, assignable_role_id int)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT r.role_id, x.role_id
      FROM fluent.template_assignable_roles ta
      JOIN fluent.roles r ON r.workspace_id = ws AND r.template = ta.template AND r.template_role = ta.role
      JOIN fluent.roles x ON x.workspace_id = ws AND x.template = ta.template AND x.template_role = ta.assignable_role
     WHERE ta.template = p_template;
END;

-- Applying a template lists its assignable roles; resetting and cloning a
-- role carry its list.
CREATE OR REPLACE FUNCTION @extschema@.fluent_apply_template(template text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ws int := fluent._workspace_id();
    t text := fluent._template(template);
    m record;
    mid int;
BEGIN
    PERFORM fluent._require_admin();
    FOR m IN SELECT * FROM fluent.template_modules tm WHERE tm.template = t ORDER BY tm.position LOOP
        INSERT INTO fluent.modules (workspace_id, name, parent_id)
        VALUES (ws, m.module, (SELECT module_id FROM fluent.modules WHERE workspace_id = ws AND name = m.parent))
        ON CONFLICT (workspace_id, name) DO NOTHING;
        SELECT module_id INTO mid FROM fluent.modules WHERE workspace_id = ws AND name = m.module;
        INSERT INTO fluent.actions (workspace_id, module_id, name)
        SELECT ws, mid, a FROM unnest(m.actions) WITH ORDINALITY AS x(a, n) ORDER BY n
        ON CONFLICT (module_id, name) DO NOTHING;
    END LOOP;

    -- A role the template already made is found by its template role, even
    -- if renamed since; a custom role holding a template role's name wins.
    INSERT INTO fluent.roles (workspace_id, name, description, template, template_role, privileged, grants_sign_in,
                              reporting_anchor)
    SELECT ws, tr.role, tr.description, t, tr.role, tr.privileged, tr.grants_sign_in, tr.reporting_anchor
      FROM fluent.template_roles tr
     WHERE tr.template = t
       AND NOT EXISTS (SELECT 1 FROM fluent.roles r WHERE r.workspace_id = ws AND r.template = t AND r.template_role = tr.role)
     ORDER BY tr.position
    ON CONFLICT (workspace_id, name) DO NOTHING;
    FOR m IN SELECT r.name FROM fluent.template_roles tr JOIN fluent.roles r ON r.workspace_id = ws AND r.name = tr.role
              WHERE tr.template = t AND r.template IS DISTINCT FROM t ORDER BY tr.position LOOP
        RAISE NOTICE 'fluent role "%" exists and is not from template "%"; left as it is', m.name, t;
    END LOOP;

    INSERT INTO fluent.permissions (workspace_id, role_id, action_id, scope)
    SELECT ws, r.role_id, a.action_id, tp.scope
      FROM fluent.template_permissions tp
      JOIN fluent.roles r ON r.workspace_id = ws AND r.template = t AND r.template_role = tp.role
      JOIN fluent.modules md ON md.workspace_id = ws AND md.name = tp.module
      JOIN fluent.actions a ON a.module_id = md.module_id AND a.name = tp.action
     WHERE tp.template = t
    ON CONFLICT (role_id, action_id) DO NOTHING;

    INSERT INTO fluent.admin_rights (workspace_id, admin_right, action_id)
    SELECT ws, tr.admin_right, a.action_id
      FROM fluent.template_admin_rights tr
      JOIN fluent.modules md ON md.workspace_id = ws AND md.name = tr.module
      JOIN fluent.actions a ON a.module_id = md.module_id AND a.name = tr.action
     WHERE tr.template = t
    ON CONFLICT DO NOTHING;

    INSERT INTO fluent.requirements (workspace_id, module_id, action_id, required_action_id)
    SELECT ws, md.module_id, NULL, a.action_id
      FROM fluent.template_requirements tq
      JOIN fluent.modules md ON md.workspace_id = ws AND md.name = tq.module
      JOIN fluent.modules rm ON rm.workspace_id = ws AND rm.name = tq.required_module
      JOIN fluent.actions a ON a.module_id = rm.module_id AND a.name = tq.required_action
     WHERE tq.template = t
    ON CONFLICT DO NOTHING;

    INSERT INTO fluent.assignable_roles (workspace_id, role_id, assignable_role_id)
    SELECT ws, d.role_id, d.assignable_role_id FROM fluent._template_assignable(ws, t) d
    ON CONFLICT DO NOTHING;

    INSERT INTO fluent.template_applications (workspace_id, template) VALUES (ws, t);
END $$;

CREATE OR REPLACE FUNCTION fluent._do_reset_role(role text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_roles');
    rid int := fluent._role_id(role);
    ws int := fluent._workspace_id();
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := fluent._role_scope_map(rid);
    holders jsonb := fluent._holders_scope_maps(delegate, rid);
    administered text[] := CASE WHEN delegate IS NOT NULL THEN fluent._administered_rights() END;
    assignable int[] := fluent._assignable_set(rid);
    listed boolean := fluent._lists_assignable();
BEGIN
    PERFORM fluent._may_touch_role(delegate, rid);
    PERFORM fluent._assignable_only(delegate, rid, 'reset');
    IF (SELECT r.template FROM fluent.roles r WHERE r.role_id = rid) IS NULL THEN
        RAISE EXCEPTION 'fluent role "%" is a custom role and has no template defaults to reset to', role
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only roles created by fluent_apply_template(), and their clones, can be reset.';
    END IF;
    DELETE FROM fluent.permissions p
     WHERE p.role_id = rid
       AND NOT EXISTS (SELECT 1 FROM fluent.template_defaults d
                        WHERE d.role_id = rid AND d.action_id = p.action_id AND d.scope = p.scope);
    INSERT INTO fluent.permissions (workspace_id, role_id, action_id, scope)
    SELECT ws, rid, d.action_id, d.scope FROM fluent.template_defaults d WHERE d.role_id = rid
    ON CONFLICT (role_id, action_id) DO NOTHING;
    -- The roles it may assign, among those of its template (and their
    -- clones): the template's list. Custom roles it lists stay listed.
    DELETE FROM fluent.assignable_roles a
     USING fluent.roles r, fluent.roles x
     WHERE a.role_id = rid AND r.role_id = rid AND x.role_id = a.assignable_role_id AND x.template = r.template
       AND NOT EXISTS (SELECT 1 FROM fluent._template_assignable(ws, r.template) d
                        WHERE d.role_id = rid AND d.assignable_role_id = a.assignable_role_id);
    INSERT INTO fluent.assignable_roles (workspace_id, role_id, assignable_role_id)
    SELECT ws, d.role_id, d.assignable_role_id
      FROM fluent.roles r, fluent._template_assignable(ws, r.template) d
     WHERE r.role_id = rid AND d.role_id = rid
    ON CONFLICT DO NOTHING;
    PERFORM fluent._assignable_within(delegate, rid, assignable);
    PERFORM fluent._still_lists_assignable(delegate, listed);
    PERFORM fluent._within_powers(delegate, powers, before, fluent._role_scope_map(rid), format('role "%s"', role));
    PERFORM fluent._holders_within_powers(delegate, powers, holders, rid, role);
    PERFORM fluent._still_administered(administered, delegate IS NULL);
END $$;

CREATE OR REPLACE FUNCTION fluent._do_clone_role(source text, new_role text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_roles');
    src int := fluent._role_id(source);
    ws int := fluent._workspace_id();
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    new_id int;
BEGIN
    -- The same checks as setting each flag and permission directly: a clone
    -- of a privileged role is privileged, a clone of a sign-in role lets its
    -- holders sign in.
    PERFORM fluent._may_touch_role(delegate, src);
    PERFORM fluent._assignable_only(delegate, src, 'clone');
    PERFORM fluent._privileged_only(delegate, (SELECT r.grants_sign_in FROM fluent.roles r WHERE r.role_id = src),
                                    format('create role "%s", which lets users sign in', new_role));
    INSERT INTO fluent.roles (workspace_id, name, description, template, template_role, privileged, grants_sign_in,
                              reporting_anchor)
    SELECT ws, fluent._name(new_role, 'role'), r.description, r.template, r.template_role, r.privileged, r.grants_sign_in,
           r.reporting_anchor
      FROM fluent.roles r WHERE r.role_id = src
    ON CONFLICT (workspace_id, name) DO NOTHING
    RETURNING role_id INTO new_id;
    IF new_id IS NULL THEN PERFORM fluent._duplicate('role', new_role); END IF;
    INSERT INTO fluent.permissions (workspace_id, role_id, action_id, scope)
    SELECT ws, new_id, p.action_id, p.scope FROM fluent.permissions p WHERE p.role_id = src;
    -- Its holders may assign what the source's may, and it is assignable
    -- wherever the source is (a role that lists itself lists its clone, and
    -- the clone lists itself).
    INSERT INTO fluent.assignable_roles (workspace_id, role_id, assignable_role_id)
    SELECT ws, new_id, a.assignable_role_id FROM fluent.assignable_roles a WHERE a.role_id = src
    UNION
    SELECT ws, a.role_id, new_id FROM fluent.assignable_roles a WHERE a.assignable_role_id = src
    UNION
    SELECT ws, new_id, new_id FROM fluent.assignable_roles a WHERE a.role_id = src AND a.assignable_role_id = src;
    PERFORM fluent._within_powers(delegate, powers, '{}', fluent._role_scope_map(new_id), format('role "%s"', new_role));
    PERFORM fluent._assignable_within(delegate, new_id, '{}');
END $$;

-- Privileges and ownership as sql/privileges.sql gives them: the public
-- functions and their implementations to everyone (they authorize their
-- caller), the helpers to fluent_admin; the list to fluent_admin to write
-- and fluent_reader to read; what is in schema fluent to the catalog owner.
REVOKE ALL ON FUNCTION @extschema@.fluent_set_assignable(text, text),
    @extschema@.fluent_clear_assignable(text, text),
    fluent._do_set_assignable(text, text, bigint),
    fluent._do_clear_assignable(text, text, bigint),
    fluent._lists_assignable(),
    fluent._may_assign(text, int),
    fluent._assignable_only(text, int, text),
    fluent._assignable_set(int),
    fluent._assignable_within(text, int, int[]),
    fluent._still_lists_assignable(text, boolean),
    fluent._assignable_by_general_administrators(int),
    fluent._template_assignable(int, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.fluent_set_assignable(text, text),
    @extschema@.fluent_clear_assignable(text, text),
    fluent._do_set_assignable(text, text, bigint),
    fluent._do_clear_assignable(text, text, bigint)
    TO PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._lists_assignable(),
    fluent._may_assign(text, int),
    fluent._assignable_only(text, int, text),
    fluent._assignable_set(int),
    fluent._assignable_within(text, int, int[]),
    fluent._still_lists_assignable(text, boolean),
    fluent._assignable_by_general_administrators(int),
    fluent._template_assignable(int, text)
    TO fluent_admin;
REVOKE ALL ON fluent.assignable_roles, fluent.template_assignable_roles FROM PUBLIC;
GRANT SELECT ON fluent.assignable_roles, fluent.template_assignable_roles TO fluent_admin;
GRANT INSERT, UPDATE, DELETE ON fluent.assignable_roles TO fluent_admin;
GRANT SELECT ON fluent.assignable_roles, fluent.template_assignable_roles TO fluent_reader;
ALTER TABLE fluent.assignable_roles OWNER TO fluent_owner;
ALTER TABLE fluent.template_assignable_roles OWNER TO fluent_owner;
ALTER FUNCTION fluent._do_set_assignable(text, text, bigint) OWNER TO fluent_owner;
ALTER FUNCTION fluent._do_clear_assignable(text, text, bigint) OWNER TO fluent_owner;
GRANT EXECUTE ON FUNCTION fluent._lists_assignable(),
    fluent._may_assign(text, int),
    fluent._assignable_only(text, int, text),
    fluent._assignable_set(int),
    fluent._assignable_within(text, int, int[]),
    fluent._still_lists_assignable(text, boolean),
    fluent._assignable_by_general_administrators(int),
    fluent._template_assignable(int, text)
    TO fluent_owner;
COMMENT ON FUNCTION @extschema@.fluent_set_assignable(text, text) IS
    'Delegated administration: lets holders of the role grant, revoke, clone, reset and drop the assignable role (fluent.assignable_roles); the first one turns the rule on in the workspace';
COMMENT ON FUNCTION @extschema@.fluent_clear_assignable(text, text) IS
    'Stops holders of the role assigning the assignable role';

-- Issue 19: item roles (seeds 002/003), roles held on one item of a
-- protected table through an assignment table; children reached through
-- their parent's item roles; conditions on who may be assigned one; the
-- Fluid template's item roles (sql/items.sql, sql/rls.sql, sql/templates.sql).
-- Item roles (seeds 002/003: a user "assigned a role on a project", "editorial
-- rights on certain items", "inclusion in teams or assignment to projects"):
-- roles held on one item, not on the module. Each gives a set of the
-- module's actions on the items where a user (or a team of theirs) holds it,
-- through an assignment table of the application's (fluent_protect's
-- membership_role_column). An item role may require a workspace role or
-- permission of whoever is assigned it ("a person has to have the
-- accountable executive role to be named as an accountable executive").
CREATE TABLE fluent.item_roles (
    item_role_id       int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id       int NOT NULL,
    module_id          int NOT NULL,
    name               text NOT NULL CHECK (name <> '' AND char_length(name) <= 256),
    description        text,
    required_role_id   int,
    required_action_id int,
    UNIQUE (module_id, name),
    UNIQUE (workspace_id, item_role_id),
    FOREIGN KEY (workspace_id, module_id) REFERENCES fluent.modules (workspace_id, module_id) ON DELETE CASCADE,
    -- (No cascade: a role or permission still required cannot go silently.)
    FOREIGN KEY (workspace_id, required_role_id) REFERENCES fluent.roles (workspace_id, role_id),
    FOREIGN KEY (workspace_id, required_action_id) REFERENCES fluent.actions (workspace_id, action_id)
);
CREATE INDEX item_roles_required_role_idx ON fluent.item_roles (required_role_id);
CREATE INDEX item_roles_required_action_idx ON fluent.item_roles (required_action_id);
COMMENT ON TABLE fluent.item_roles IS
    'Roles held on one item of a protected table (through its assignment table), each giving some of the module''s actions there; required_role_id or required_action_id: what an assignee must hold in the workspace';

CREATE TABLE fluent.item_role_actions (
    workspace_id int NOT NULL,
    item_role_id int NOT NULL,
    action_id    int NOT NULL,
    PRIMARY KEY (item_role_id, action_id),
    FOREIGN KEY (workspace_id, item_role_id) REFERENCES fluent.item_roles (workspace_id, item_role_id) ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, action_id) REFERENCES fluent.actions (workspace_id, action_id) ON DELETE CASCADE
);
CREATE INDEX item_role_actions_action_idx ON fluent.item_role_actions (action_id);
COMMENT ON TABLE fluent.item_role_actions IS 'The module actions each item role gives on the items where it is held';
-- The teams a user is in: assignments to a team give its members item roles.
CREATE INDEX team_members_member_idx ON fluent.team_members (user_id, workspace_id);
ALTER TABLE fluent.protected_tables
    ADD COLUMN membership_role_column name,
    ADD COLUMN membership_team_column name,
    ADD COLUMN parent_table regclass,
    ADD COLUMN parent_column name,
    DROP CONSTRAINT protected_tables_check,
    ADD CONSTRAINT protected_tables_check
        CHECK (owner_column IS NOT NULL OR membership_table IS NOT NULL OR parent_table IS NOT NULL);
COMMENT ON COLUMN fluent.protected_tables.membership_role_column IS
    'The membership column naming an item role of the module (fluent.item_roles): the membership table is then an assignment table, whose rows give their item role''s actions on the row they name';
COMMENT ON COLUMN fluent.protected_tables.membership_team_column IS
    'The assignment column naming a team (fluent.teams): every member of the team holds the row''s item role';
COMMENT ON COLUMN fluent.protected_tables.parent_table IS
    'For the rows of a child table (a project''s tasks): the protected table whose item roles apply to them, through parent_column';
DO $$
DECLARE
    t text;
    op text;
BEGIN
    FOREACH t IN ARRAY ARRAY['item_roles', 'item_role_actions'] LOOP
        EXECUTE format('CREATE TRIGGER invalidate_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
                        ON fluent.%I FOR EACH STATEMENT EXECUTE FUNCTION fluent.invalidate_cache()', t);
        FOREACH op IN ARRAY ARRAY['INSERT', 'UPDATE', 'DELETE'] LOOP
            EXECUTE format('CREATE TRIGGER log_changes_%s AFTER %s ON fluent.%I REFERENCING %s
                            FOR EACH STATEMENT EXECUTE FUNCTION fluent._log_changes(%L)',
                           lower(op), op, t,
                           CASE op WHEN 'INSERT' THEN 'NEW TABLE AS new_rows'
                                   WHEN 'UPDATE' THEN 'OLD TABLE AS old_rows NEW TABLE AS new_rows'
                                   ELSE 'OLD TABLE AS old_rows' END, 'workspace');
        END LOOP;
        EXECUTE format('CREATE TRIGGER log_changes_truncate AFTER TRUNCATE
                        ON fluent.%I FOR EACH STATEMENT EXECUTE FUNCTION fluent._log_changes(%L)', t, 'workspace');
        EXECUTE format('CREATE TRIGGER audit_change AFTER INSERT OR UPDATE OR DELETE
                        ON fluent.%I FOR EACH ROW EXECUTE FUNCTION fluent.audit_change()', t);
        EXECUTE format('CREATE TRIGGER audit_truncate AFTER TRUNCATE
                        ON fluent.%I FOR EACH STATEMENT EXECUTE FUNCTION fluent.audit_change()', t);
    END LOOP;
END
$$;

-- A workspace's item roles, one row per action they give, with what they
-- require of their holders (src/loaders.rs maps them to slots).
CREATE FUNCTION fluent._load_item_roles(p_workspace_id int)
RETURNS TABLE (item_role_id int, name text, module text, action_id int, required_role_id int, required_action_id int)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT r.item_role_id, r.name, m.name, a.action_id, r.required_role_id, r.required_action_id
      FROM fluent.item_roles r
      JOIN fluent.modules m ON m.module_id = r.module_id
      LEFT JOIN fluent.item_role_actions a ON a.item_role_id = r.item_role_id
     WHERE r.workspace_id = p_workspace_id
     ORDER BY r.name, r.item_role_id;
END;

-- The teams a user is a member of in a workspace, by name: an assignment
-- naming one of them gives its item role to the user.
CREATE FUNCTION fluent._load_member_teams(p_workspace_id int, p_user_id bigint)
RETURNS TABLE (name text)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT t.name
      FROM fluent.team_members m JOIN fluent.teams t ON t.team_id = m.team_id
     WHERE m.user_id = p_user_id AND m.workspace_id = p_workspace_id
     ORDER BY t.name;
END;

-- The members of the named teams of a workspace (fluent_who_can: the users
-- a team assignment gives an item role to).
CREATE FUNCTION fluent._load_team_members(p_workspace_id int, p_teams text[])
RETURNS TABLE (team text, user_key text)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT t.name, u.user_key
      FROM fluent.teams t
      JOIN fluent.team_members m ON m.team_id = t.team_id
      JOIN fluent.users u ON u.user_id = m.user_id
     WHERE t.workspace_id = p_workspace_id AND t.name = ANY (p_teams)
     ORDER BY t.name, u.user_key;
END;

-- The policy helpers of item roles and their planner support (src/checks.rs, src/plans.rs).
CREATE  FUNCTION fluent."rls_items_support"(
	"request" internal /* Internal */
) RETURNS internal /* Internal */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', 'rls_items_support_wrapper';
CREATE  FUNCTION fluent."rls_item_roles_support"(
	"request" internal /* Internal */
) RETURNS internal /* Internal */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', 'rls_item_roles_support_wrapper';
CREATE  FUNCTION fluent."rls_teams_support"(
	"request" internal /* Internal */
) RETURNS internal /* Internal */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', 'rls_teams_support_wrapper';
CREATE  FUNCTION fluent."rls_assignable_support"(
	"request" internal /* Internal */
) RETURNS internal /* Internal */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', 'rls_assignable_support_wrapper';
CREATE  FUNCTION fluent."rls_items"(
	"module" TEXT, /* & str */
	"action" TEXT, /* & str */
	"item_module" TEXT /* & str */
) RETURNS bool /* bool */
STRICT STABLE PARALLEL SAFE SUPPORT fluent."rls_items_support"
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', 'rls_items_wrapper';
CREATE  FUNCTION fluent."rls_item_roles"(
	"module" TEXT, /* & str */
	"action" TEXT, /* & str */
	"item_module" TEXT /* & str */
) RETURNS TEXT[] /* Vec < String > */
STRICT STABLE PARALLEL SAFE SUPPORT fluent."rls_item_roles_support"
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', 'rls_item_roles_wrapper';
CREATE  FUNCTION fluent."rls_user_teams"() RETURNS TEXT[] /* Vec < String > */
STRICT STABLE PARALLEL SAFE SUPPORT fluent."rls_teams_support"
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', 'rls_user_teams_wrapper';
CREATE  FUNCTION fluent."rls_assignable_item_roles"(
	"module" TEXT, /* & str */
	"update_action" TEXT /* & str */
) RETURNS TEXT[] /* Vec < String > */
STRICT STABLE PARALLEL SAFE SUPPORT fluent."rls_assignable_support"
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', 'rls_assignable_item_roles_wrapper';
CREATE  FUNCTION fluent."_assigned_item_actions"(
	"user_key" TEXT, /* Option < & str > */
	"team" TEXT /* Option < & str > */
) RETURNS TABLE (
	"module" TEXT,  /* String */
	"action" TEXT,  /* String */
	"item_module" TEXT,  /* String */
	"item_role" TEXT  /* String */
)
STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_assigned_item_actions_wrapper';
CREATE  FUNCTION fluent."_open_item_actions"(
	"user_key" TEXT /* & str */
) RETURNS TABLE (
	"module" TEXT,  /* String */
	"action" TEXT,  /* String */
	"item_module" TEXT,  /* String */
	"item_role" TEXT  /* String */
)
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_open_item_actions_wrapper';
CREATE  FUNCTION fluent."_has_rows"(
	"tbl" oid /* pg_sys :: Oid */
) RETURNS bool /* bool */
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_has_rows_wrapper';
-- Which rows of p's table module.action reaches for the acting user by the
-- scope of their permission (the workspace filter aside): those owned by, or
-- assigned through the membership table to, the acting user (own) or the
-- users their scope reaches. An assignment table (membership_role_column)
-- assigns item roles, not ownership: its rows count in _item_rows_sql only.
CREATE FUNCTION fluent._scope_rows_sql(p fluent.protected_tables, module text, act text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    member_kind text;
    own boolean;
    rows_of text[] := '{}';
    assigns boolean := p.membership_table IS NOT NULL AND p.membership_role_column IS NULL;
BEGIN
    IF assigns THEN
        member_kind := fluent._key_kind(p.membership_table, p.membership_user_column, 'membership user column');
    END IF;
    FOREACH own IN ARRAY ARRAY[true, false] LOOP
        rows_of := rows_of || coalesce(nullif(concat_ws(' OR ',
            CASE WHEN p.owner_column IS NOT NULL THEN
                format('%I %s', p.owner_column, fluent._key_test_sql(p.owner_type, module, act, own)) END,
            CASE WHEN assigns THEN
                format('%I = ANY (ARRAY(SELECT m.%I FROM %s m WHERE m.%I %s))',
                       p.row_column, p.membership_row_column, p.membership_table, p.membership_user_column,
                       fluent._key_test_sql(member_kind, module, act, own)) END), ''), 'false');
    END LOOP;
    RETURN fluent._reach_sql(module, act, rows_of[1], rows_of[2]);
END $$;

-- The rows of p's table on which the acting user holds an item role that
-- gives `act`: through p's assignment table (membership_role_column), or,
-- for a child table, through its parent's, by parent_column. The user is
-- named in an assignment by their key or by a team of theirs. The test of
-- the decisions, the item roles and the teams are folded into the plan
-- (src/plans.rs): what remains is an uncorrelated ARRAY(SELECT ...) over the
-- assignment table's user (and team) index, run once per query, compared
-- with the item column, which its index serves. NULL when no item roles
-- apply to the table.
CREATE FUNCTION fluent._item_rows_sql(p fluent.protected_tables, module text, act text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    a fluent.protected_tables := p;
    item_column name := p.row_column;
BEGIN
    IF p.parent_table IS NOT NULL THEN
        SELECT x.* INTO a FROM fluent.protected_tables x WHERE x.table_name = p.parent_table;
        item_column := p.parent_column;
    END IF;
    IF a.membership_role_column IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN format('(fluent.rls_items(%1$L, %2$L, %3$L) AND %4$I = ANY (ARRAY(SELECT m.%5$I FROM %6$s m '
                  'WHERE (m.%7$I %8$s%9$s) AND m.%10$I = ANY (fluent.rls_item_roles(%1$L, %2$L, %3$L)))))',
        module, act, a.module, item_column, a.membership_row_column, a.membership_table, a.membership_user_column,
        fluent._key_test_sql(fluent._key_kind(a.membership_table, a.membership_user_column, 'membership user column'),
                             module, act, true),
        -- (cardinality() of the folded teams is folded too: without teams,
        -- the team test goes, and with it the team index scan.)
        CASE WHEN a.membership_team_column IS NOT NULL
             THEN format(' OR cardinality(fluent.rls_user_teams()) > 0 AND m.%I = ANY (fluent.rls_user_teams())',
                         a.membership_team_column) ELSE '' END,
        a.membership_role_column);
END $$;

-- Which rows of p's table module.action reaches for the acting user (the
-- workspace filter aside): those their scope reaches, and those where they
-- hold an item role that gives the action. Read by the row policies and the
-- column limits.
CREATE OR REPLACE FUNCTION fluent._rows_reached_sql(p fluent.protected_tables, module text, act text) RETURNS text
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT CASE WHEN items IS NULL THEN scope ELSE format('(%s OR %s)', scope, items) END
      FROM (SELECT fluent._scope_rows_sql(p, module, act) AS scope, fluent._item_rows_sql(p, module, act) AS items) r;
END;

DROP FUNCTION fluent._write_check_sql(fluent.protected_tables, text, text);
-- The WITH CHECK of a write governed by `act`: the row written is owned by
-- a user the scope reaches, or is an item (or the child of one) where the
-- writer holds an item role that gives `act`; a table whose rows are tied to
-- users by its membership table only takes some scope (a new row has no
-- assignments yet). A new item (not updating) takes the scope: assignments
-- left by a deleted item with the same key give nothing to its successor.
CREATE FUNCTION fluent._write_check_sql(p fluent.protected_tables, workspace_filter text, act text, updating boolean)
RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    scope text;
    items text;
BEGIN
    IF p.parent_table IS NOT NULL OR updating THEN
        items := fluent._item_rows_sql(p, p.module, act);
    END IF;
    IF p.owner_column IS NOT NULL OR p.parent_table IS NOT NULL THEN
        scope := fluent._reach_sql(p.module, act,
            CASE WHEN p.owner_column IS NULL THEN 'false'
                 ELSE format('%I %s', p.owner_column, fluent._key_test_sql(p.owner_type, p.module, act, true)) END,
            CASE WHEN p.owner_column IS NULL THEN 'false'
                 ELSE format('%I %s', p.owner_column, fluent._key_test_sql(p.owner_type, p.module, act, false)) END);
    ELSE
        scope := format('fluent.rls_any(%L, %L)', p.module, act);
    END IF;
    RETURN concat_ws(' AND ', workspace_filter, CASE WHEN items IS NULL THEN scope ELSE format('(%s OR %s)', scope, items) END);
END $$;

-- The policies that protect a table (on_membership false) and those that
-- keep writes to its membership table within reach (true): name, command,
-- USING and WITH CHECK. member_rel is the table the membership policies go
-- on (the membership table, or one of its partitions or children): their
-- check names it to refer to the row written.
CREATE OR REPLACE FUNCTION fluent._policy_definitions(p fluent.protected_tables, member_rel regclass)
RETURNS TABLE (on_membership boolean, policy name, command text, using_expr text, check_expr text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    workspace_filter text;
    reach jsonb := '{}';
    act text;
    member_in_reach text;
    member_written text;
BEGIN
    IF p.workspace_column IS NOT NULL THEN
        workspace_filter := format('%I = ANY (%s)', p.workspace_column,
            fluent._workspace_keys_sql(fluent._key_kind(p.table_name, p.workspace_column, 'workspace column')));
    END IF;
    FOREACH act IN ARRAY ARRAY[p.select_action, p.insert_action, p.update_action, p.delete_action] LOOP
        CONTINUE WHEN reach ? act;
        reach := reach || jsonb_build_object(act,
            concat_ws(' AND ', workspace_filter, fluent._rows_reached_sql(p, p.module, act)));
    END LOOP;
    -- A row written (by the action that governs the command) must land in
    -- reach: with an owner column, owned by a user the action's scope
    -- reaches. Without one, ownership is given by the membership table: a
    -- new row has no membership rows yet, so any scope will do to insert;
    -- an updated row must stay where the update reached it (the USING
    -- predicate again: an uncorrelated ARRAY(SELECT ...), run once per
    -- statement), or a user could move a row out of their reach (with
    -- membership_row_column naming a project, into another project).
    RETURN QUERY VALUES
        (false, 'fluent_select'::name, 'SELECT', reach->>p.select_action, NULL::text),
        (false, 'fluent_insert', 'INSERT', NULL, fluent._write_check_sql(p, workspace_filter, p.insert_action, false)),
        (false, 'fluent_update', 'UPDATE', reach->>p.update_action,
         CASE WHEN p.owner_column IS NULL THEN reach->>p.update_action
              ELSE fluent._write_check_sql(p, workspace_filter, p.update_action, true) END),
        (false, 'fluent_delete', 'DELETE', reach->>p.delete_action, NULL);
    IF p.membership_table IS NOT NULL THEN
        -- A membership row may be added, changed or removed only by someone
        -- whose write scope reaches the row it points at. (Membership rows
        -- stay readable: the table's own policies read them.) This is a
        -- write-path check, one primary-key probe per row written. (The
        -- reach reads the whole membership table, partitions and children
        -- included: assignments count wherever they are stored.)
        -- By scope only: an item role on the row (an editor's) does not
        -- let its holder assign item roles there, herself included.
        member_in_reach := format('EXISTS (SELECT 1 FROM %s t WHERE t.%I = %s.%I AND %s)',
            p.table_name, p.row_column, member_rel, p.membership_row_column,
            concat_ws(' AND ', workspace_filter, fluent._scope_rows_sql(p, p.module, p.update_action)));
        -- An assignment written names an item role whose every action the
        -- writer's scope gives her on the item (folded into a list).
        member_written := member_in_reach || CASE WHEN p.membership_role_column IS NULL THEN '' ELSE
            format(' AND %I = ANY (fluent.rls_assignable_item_roles(%L, %L))',
                   p.membership_role_column, p.module, p.update_action) END;
        RETURN QUERY VALUES
            (true, 'fluent_member_select'::name, 'SELECT', 'true', NULL::text),
            (true, 'fluent_member_insert', 'INSERT', NULL, member_written),
            (true, 'fluent_member_update', 'UPDATE', member_in_reach, member_written),
            (true, 'fluent_member_delete', 'DELETE', member_in_reach, NULL);
    END IF;
END $$;

DROP FUNCTION @extschema@.fluent_protect(regclass, text, name, regclass, name, name, name, name, text, text, text, text);
CREATE FUNCTION @extschema@.fluent_protect(
    tbl regclass,
    module text,
    owner_column name DEFAULT NULL,
    membership_table regclass DEFAULT NULL,
    membership_row_column name DEFAULT NULL,
    membership_user_column name DEFAULT NULL,
    row_column name DEFAULT NULL,
    workspace_column name DEFAULT NULL,
    select_action text DEFAULT 'read',
    insert_action text DEFAULT 'write',
    update_action text DEFAULT 'write',
    delete_action text DEFAULT 'delete',
    membership_role_column name DEFAULT NULL,
    membership_team_column name DEFAULT NULL,
    parent_table regclass DEFAULT NULL,
    parent_column name DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p fluent.protected_tables;
    parent fluent.protected_tables;
    kind "char";
    was_enabled boolean;
    was_forced boolean;
    owner_kind text;
    member_was_enabled boolean;
    member_was_forced boolean;
    missing text[];
    related regclass;
    child regclass;
BEGIN
    PERFORM fluent._require_admin();
    PERFORM fluent._not_null(tbl, 'table');
    PERFORM fluent._module_id(module);

    SELECT c.relkind, c.relrowsecurity, c.relforcerowsecurity INTO kind, was_enabled, was_forced
      FROM pg_class c WHERE c.oid = tbl;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;
    IF EXISTS (SELECT 1 FROM fluent.protected_tables x WHERE x.table_name = tbl) THEN
        RAISE EXCEPTION 'table "%" is already protected by fluent', tbl
            USING ERRCODE = 'duplicate_object', HINT = 'Call fluent_unprotect() first to change how it is protected.';
    END IF;
    related := fluent._protected_root(tbl);
    IF related IS NOT NULL THEN
        RAISE EXCEPTION 'table "%" is already protected by fluent through "%", which it inherits from', tbl, related
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Partitions and inheritance children share the protection of their parent.';
    END IF;
    SELECT x.table_name INTO related FROM fluent.protected_tables x WHERE x.table_name IN (SELECT fluent._descendants(tbl));
    IF related IS NOT NULL THEN
        RAISE EXCEPTION 'table "%" has a partition or child, "%", that fluent protects on its own', tbl, related
            USING ERRCODE = 'object_in_use', HINT = 'Unprotect it first: fluent protects a table with all its partitions and children.';
    END IF;
    IF owner_column IS NULL AND membership_table IS NULL AND parent_table IS NULL THEN
        RAISE EXCEPTION 'fluent_protect needs an owner column, a membership table or a parent table'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (membership_role_column IS NOT NULL OR membership_team_column IS NOT NULL) AND membership_table IS NULL
       OR membership_team_column IS NOT NULL AND membership_role_column IS NULL THEN
        RAISE EXCEPTION 'a team or role column takes an assignment table'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Name the membership table, and its role column (membership_role_column) with the team column.';
    END IF;
    IF parent_table IS NOT NULL THEN
        -- A child table's rows are reached through their parent's item
        -- roles: one level, the parent's own assignments.
        SELECT x.* INTO parent FROM fluent.protected_tables x WHERE x.table_name = fluent_protect.parent_table;
        IF parent.membership_role_column IS NULL THEN
            RAISE EXCEPTION 'table "%" is not protected with item roles', parent_table
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Protect the parent first, with an assignment table (membership_role_column).';
        END IF;
        IF parent_table = tbl OR membership_table IS NOT NULL OR parent_column IS NULL THEN
            RAISE EXCEPTION 'a child table names another parent table and its parent_column, and has no membership table'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- Its rows are then kept to the workspace as its parent's are: an
        -- assignment gives nothing in another workspace.
        IF parent.workspace_column IS NOT NULL AND workspace_column IS NULL THEN
            RAISE EXCEPTION 'table "%" needs a workspace column, as its parent "%" has one', tbl, parent_table
                USING ERRCODE = 'invalid_parameter_value', HINT = 'Name it with workspace_column.';
        END IF;
        IF (SELECT atttypid FROM pg_attribute WHERE attrelid = tbl AND attname = parent_column AND NOT attisdropped)
           IS DISTINCT FROM
           (SELECT atttypid FROM pg_attribute WHERE attrelid = parent.membership_table
                                                AND attname = parent.membership_row_column AND NOT attisdropped) THEN
            RAISE EXCEPTION 'column "%" of "%" must exist and have the type of "%"''s items (column "%" of "%")',
                parent_column, tbl, parent_table, parent.membership_row_column, parent.membership_table
                USING ERRCODE = 'datatype_mismatch';
        END IF;
    ELSIF parent_column IS NOT NULL THEN
        RAISE EXCEPTION 'parent_column takes a parent table' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Policies fluent created for a protection whose record is gone (a
    -- schema-only restore) are replaced.
    IF fluent._has_orphaned_policies(tbl) THEN
        RAISE NOTICE 'replacing the policies fluent created on "%" earlier, which fluent.protected_tables does not record', tbl;
        PERFORM fluent._remove_policies(tbl, NULL);
        SELECT c.relrowsecurity, c.relforcerowsecurity INTO was_enabled, was_forced FROM pg_class c WHERE c.oid = tbl;
    END IF;
    FOR related IN SELECT tbl UNION ALL SELECT fluent._descendants(tbl)
                   UNION ALL SELECT membership_table WHERE membership_table IS NOT NULL
                   UNION ALL SELECT fluent._descendants(membership_table) WHERE membership_table IS NOT NULL LOOP
        IF EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = related AND polpermissive) THEN
            RAISE EXCEPTION 'table "%" already has permissive row-level security policies', related
                USING ERRCODE = 'object_in_use',
                      HINT = 'Permissive policies are OR-ed with fluent''s and would widen access: drop them or make them AS RESTRICTIVE.';
        END IF;
    END LOOP;

    IF owner_column IS NOT NULL THEN
        owner_kind := fluent._key_kind(tbl, owner_column, 'owner column');
    END IF;
    IF membership_table IS NOT NULL THEN
        IF membership_row_column IS NULL OR membership_user_column IS NULL THEN
            RAISE EXCEPTION 'a membership table needs membership_row_column and membership_user_column'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF membership_table = tbl THEN
            RAISE EXCEPTION 'table "%" cannot be its own membership table', tbl USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF EXISTS (SELECT 1 FROM fluent.protected_tables x WHERE x.membership_table = fluent_protect.membership_table) THEN
            RAISE EXCEPTION 'table "%" is already the membership table of another protected table', membership_table
                USING ERRCODE = 'object_in_use', HINT = 'Give each protected table a membership table of its own.';
        END IF;
        IF row_column IS NULL THEN
            -- The membership rows point at the table's single-column primary key.
            SELECT a.attname INTO row_column
              FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
             WHERE i.indrelid = tbl AND i.indisprimary AND i.indnatts = 1;
            IF row_column IS NULL THEN
                RAISE EXCEPTION 'table "%" has no single-column primary key for membership rows to point at', tbl
                    USING ERRCODE = 'invalid_parameter_value', HINT = 'Name the column with row_column.';
            END IF;
        END IF;
        PERFORM fluent._key_kind(membership_table, membership_user_column, 'membership user column');
        -- Item roles and teams are named by their names.
        IF membership_role_column IS NOT NULL
           AND fluent._key_kind(membership_table, membership_role_column, 'membership role column') <> 'text'
           OR membership_team_column IS NOT NULL
           AND fluent._key_kind(membership_table, membership_team_column, 'membership team column') <> 'text' THEN
            RAISE EXCEPTION 'the role and team columns of "%" must be of type text or varchar', membership_table
                USING ERRCODE = 'datatype_mismatch', HINT = 'They hold item role and team names.';
        END IF;
        IF membership_team_column IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                            WHERE i.indrelid = membership_table AND a.attname = membership_team_column) THEN
            RAISE NOTICE 'no index on %(%): every query on "%" will scan it', membership_table, membership_team_column, tbl
                USING HINT = format('CREATE INDEX ON %s (%I);', membership_table, membership_team_column);
        END IF;
        IF (SELECT atttypid FROM pg_attribute WHERE attrelid = tbl AND attname = row_column AND NOT attisdropped)
           IS DISTINCT FROM
           (SELECT atttypid FROM pg_attribute WHERE attrelid = membership_table AND attname = membership_row_column AND NOT attisdropped) THEN
            RAISE EXCEPTION 'column "%" of "%" and column "%" of "%" must exist and have the same type',
                row_column, tbl, membership_row_column, membership_table USING ERRCODE = 'datatype_mismatch';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                        WHERE i.indrelid = membership_table AND a.attname = membership_user_column) THEN
            RAISE NOTICE 'no index on %(%): every query on "%" will scan it', membership_table, membership_user_column, tbl
                USING HINT = format('CREATE INDEX ON %s (%I);', membership_table, membership_user_column);
        END IF;
        SELECT c.relrowsecurity, c.relforcerowsecurity INTO member_was_enabled, member_was_forced
          FROM pg_class c WHERE c.oid = membership_table;
    END IF;
    -- Item roles name their items by key: the key must be the items', and
    -- an assignment must go with its item (sql/items.sql). A row moved to
    -- another partition is deleted and inserted again, out of reach of the
    -- checks of its update, and a unique key or a foreign key does not span
    -- inheritance children: item tables and child tables stand alone, and
    -- an assignment table's children are its partitions.
    IF (membership_role_column IS NOT NULL OR parent_table IS NOT NULL)
       AND (kind = 'p' OR EXISTS (SELECT 1 FROM fluent._descendants(tbl))) THEN
        RAISE EXCEPTION 'table "%" has partitions or inheritance children, which item roles do not support', tbl
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Protect a table without partitions or children with item roles, or without item roles.';
    END IF;
    IF membership_role_column IS NOT NULL
       AND EXISTS (SELECT 1 FROM fluent._descendants(membership_table) d JOIN pg_class c ON c.oid = d
                    WHERE NOT c.relispartition OR c.relkind NOT IN ('r', 'p')) THEN
        RAISE EXCEPTION 'assignment table "%" has inheritance children, which its foreign key does not cover', membership_table
            USING ERRCODE = 'feature_not_supported', HINT = 'Partition it instead: partitions share its foreign key.';
    END IF;
    IF membership_role_column IS NOT NULL
       AND fluent._key_kind(membership_table, membership_user_column, 'membership user column') <> 'text' THEN
        RAISE EXCEPTION 'the user column of assignment table "%" must be of type text or varchar', membership_table
            USING ERRCODE = 'datatype_mismatch', HINT = 'Assignments name users by their user keys.';
    END IF;
    IF membership_role_column IS NOT NULL
       AND NOT fluent._has_item_foreign_key(membership_table, membership_row_column, tbl, row_column, true) THEN
        RAISE EXCEPTION 'assignment table "%" needs a foreign key to "%" that cascades deletes and moves no row to another item on update',
            membership_table, tbl
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('ALTER TABLE %s ADD FOREIGN KEY (%I) REFERENCES %s (%I) ON DELETE CASCADE;',
                                membership_table, membership_row_column, tbl, row_column);
    END IF;
    IF parent_table IS NOT NULL
       AND NOT fluent._has_item_foreign_key(tbl, parent_column, parent_table, parent.row_column, false) THEN
        RAISE EXCEPTION 'child table "%" needs a foreign key to its parent "%"', tbl, parent_table
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('ALTER TABLE %s ADD FOREIGN KEY (%I) REFERENCES %s (%I);', tbl, parent_column, parent_table, parent.row_column);
    END IF;
    -- The catalog row, by column name.
    p := jsonb_populate_record(NULL::fluent.protected_tables, jsonb_build_object(
        'table_name', tbl, 'module', module, 'owner_column', owner_column, 'owner_type', owner_kind,
        'membership_table', membership_table, 'membership_row_column', membership_row_column,
        'membership_user_column', membership_user_column, 'row_column', row_column, 'workspace_column', workspace_column,
        'select_action', fluent._name(select_action, 'action'), 'insert_action', fluent._name(insert_action, 'action'),
        'update_action', fluent._name(update_action, 'action'), 'delete_action', fluent._name(delete_action, 'action'),
        'rls_was_enabled', was_enabled, 'rls_was_forced', was_forced,
        'membership_rls_was_enabled', member_was_enabled, 'membership_rls_was_forced', member_was_forced,
        'membership_role_column', membership_role_column, 'membership_team_column', membership_team_column,
        'parent_table', parent_table, 'parent_column', parent_column));

    SELECT array_agg(DISTINCT a) INTO missing
      FROM unnest(ARRAY[p.select_action, p.insert_action, p.update_action, p.delete_action]) a
     WHERE NOT EXISTS (SELECT 1 FROM fluent.actions x WHERE x.module_id = fluent._module_id(module) AND x.name = a);
    IF missing IS NOT NULL THEN
        RAISE WARNING 'fluent module "%" has no action %: those commands on "%" will be denied to everyone',
            module, array_to_string(missing, ', '), tbl;
    END IF;

    PERFORM fluent._install_policies(tbl, p, false);
    PERFORM fluent._install_item_triggers(tbl, p, false);
    FOR child IN SELECT fluent._descendants(tbl) LOOP
        PERFORM fluent._install_policies(child, p, false);
        PERFORM fluent._install_item_triggers(child, p, false);
    END LOOP;
    IF membership_table IS NOT NULL THEN
        -- Its partitions and children too: the table's policies read them
        -- (through the membership table), so writing one directly must be
        -- kept within reach as well.
        FOR child IN SELECT membership_table UNION ALL SELECT fluent._descendants(membership_table) LOOP
            PERFORM fluent._install_policies(child, p, true);
            PERFORM fluent._install_item_triggers(child, p, true);
        END LOOP;
    END IF;
    -- What was created, as fluent_protection_problems() will compare it.
    p := jsonb_populate_record(p, jsonb_build_object(
        'policies', fluent._policies_of(tbl),
        'membership_policies', CASE WHEN membership_table IS NOT NULL THEN fluent._policies_of(membership_table) END));
    INSERT INTO fluent.protected_tables SELECT p.*;
END $$;

CREATE OR REPLACE FUNCTION @extschema@.fluent_unprotect(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p fluent.protected_tables;
    root regclass;
BEGIN
    PERFORM fluent._require_admin();
    PERFORM fluent._not_null(tbl, 'table');
    SELECT * INTO p FROM fluent.protected_tables WHERE table_name = tbl;
    IF FOUND THEN
        root := (SELECT x.table_name FROM fluent.protected_tables x WHERE x.parent_table = tbl
                 ORDER BY x.table_name::text LIMIT 1);
        IF root IS NOT NULL THEN
            RAISE EXCEPTION 'table "%" gives its item roles to the rows of "%"', tbl, root
                USING ERRCODE = 'dependent_objects_still_exist', HINT = format('Unprotect %s first.', root);
        END IF;
        FOR root IN SELECT p.membership_table UNION ALL SELECT fluent._descendants(p.membership_table)
                    WHERE p.membership_role_column IS NOT NULL LOOP
            PERFORM fluent._install_item_triggers(root, NULL, true);
        END LOOP;
        FOR root IN SELECT tbl UNION ALL SELECT fluent._descendants(tbl) LOOP
            PERFORM fluent._install_item_triggers(root, NULL, false);
        END LOOP;
        -- Forgotten first, so that the event trigger that protects new
        -- partitions does not protect them again as they are unprotected.
        DELETE FROM fluent.protected_tables WHERE table_name = tbl;
        PERFORM fluent._remove_policies(tbl, p);
        -- Its column limits (deleted with it) go too: the masked view and the trigger.
        IF p.masked_view IS NOT NULL THEN
            PERFORM fluent._install_column_limits(p, NULL);
        END IF;
        RETURN;
    END IF;
    root := fluent._protected_root(tbl);
    IF root IS NOT NULL THEN
        RAISE EXCEPTION 'table "%" is protected by fluent through "%", which it inherits from', tbl, root
            USING ERRCODE = 'object_in_use',
                  HINT = format('Unprotect %s (with all its partitions and children), or detach the table from it first.', root);
    END IF;
    IF NOT fluent._has_orphaned_policies(tbl) THEN
        RAISE EXCEPTION 'table "%" is not protected by fluent', tbl USING ERRCODE = 'undefined_object';
    END IF;
    RAISE NOTICE 'removing the policies fluent created on "%" earlier, which fluent.protected_tables does not record', tbl
        USING HINT = 'This is what a schema-only restore leaves; row-level security is disabled where no policy is left.';
    PERFORM fluent._remove_policies(tbl, NULL);
END $$;

-- A partition or inheritance child created or attached under a protected
-- table gets the table's policies and, where the table has column limits,
-- their trigger (a partition has it already: PostgreSQL clones row triggers
-- to partitions, not to inheritance children). One under a membership table
-- gets the membership policies. SECURITY DEFINER because whoever creates the
-- partition may not read the catalog; as an event trigger function it can
-- be called in no other way. Only commands that create or attach a table
-- count (fluent._attaches): a restore alters the parent (its primary key)
-- before it creates the children's dumped policies and triggers. A table
-- that already has row-level security enabled is given no policies (so that
-- a restore, which enables it before creating the dumped policies, does not
-- collide with them); fluent.protection_status reports one left without
-- fluent's policies.
CREATE OR REPLACE FUNCTION fluent._protect_new_children() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel regclass;
    root regclass;
    p fluent.protected_tables;
    rls_enabled boolean;
BEGIN
    FOR rel IN
        SELECT DISTINCT x.relid FROM pg_event_trigger_ddl_commands() c
         CROSS JOIN LATERAL (SELECT c.objid::regclass UNION SELECT fluent._descendants(c.objid::regclass)) x (relid)
         WHERE c.classid = 'pg_class'::regclass AND c.object_type IN ('table', 'foreign table')
           AND fluent._attaches(c.command)
    LOOP
        -- As it was before this function: a child of both a protected table
        -- and a membership table (multiple inheritance) gets both.
        SELECT cl.relrowsecurity INTO rls_enabled FROM pg_class cl WHERE cl.oid = rel;
        root := fluent._protected_root(rel);
        IF root IS NOT NULL AND root <> rel
           AND (SELECT x.membership_role_column IS NOT NULL OR x.parent_table IS NOT NULL
                  FROM fluent.protected_tables x WHERE x.table_name = root) THEN
            RAISE EXCEPTION 'table "%" is protected with item roles, which do not support partitions or inheritance children', root
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'A row moved between partitions escapes the checks of its update, and keys do not span children.';
        END IF;
        -- An assignment table's children are its partitions (they share its
        -- foreign key), tables (its rows are read as tables), attached empty
        -- (the rows of a table attached full were never checked).
        root := fluent._membership_of(rel);
        IF root IS NOT NULL AND NOT EXISTS (SELECT 1 FROM fluent.protected_tables x WHERE x.membership_table = rel)
           AND (SELECT x.membership_role_column FROM fluent.protected_tables x WHERE x.table_name = root) IS NOT NULL
           AND ((SELECT NOT c.relispartition OR c.relkind NOT IN ('r', 'p') FROM pg_class c WHERE c.oid = rel)
                OR fluent._has_rows(rel)) THEN
            RAISE EXCEPTION 'table "%" cannot join the assignment table of "%"', rel, root
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Its children are partitions that are tables and join it empty: their foreign key and checks cover their rows.';
        END IF;
        -- Other foreign tables get no policies (row-level security is not
        -- theirs): fluent.protection_status reports them.
        CONTINUE WHEN (SELECT c.relkind FROM pg_class c WHERE c.oid = rel) = 'f';
        root := fluent._protected_root(rel);
        IF root IS NOT NULL AND root <> rel THEN
            SELECT * INTO p FROM fluent.protected_tables x WHERE x.table_name = root;
            IF NOT rls_enabled
               AND NOT EXISTS (SELECT 1 FROM pg_policy pl WHERE pl.polrelid = rel AND pl.polname = ANY (fluent._policy_names(false))) THEN
                PERFORM fluent._install_policies(rel, p, false);
            END IF;
            IF p.masked_view IS NOT NULL THEN
                PERFORM fluent._install_column_triggers(rel, p);
            END IF;
            PERFORM fluent._install_item_triggers(rel, p, false);
        END IF;
        root := fluent._membership_of(rel);
        IF root IS NOT NULL AND NOT rls_enabled
           AND NOT EXISTS (SELECT 1 FROM fluent.protected_tables x WHERE x.membership_table = rel)
           AND NOT EXISTS (SELECT 1 FROM pg_policy pl WHERE pl.polrelid = rel AND pl.polname = ANY (fluent._policy_names(true))) THEN
            SELECT * INTO p FROM fluent.protected_tables x WHERE x.table_name = root;
            PERFORM fluent._install_policies(rel, p, true);
            PERFORM fluent._install_item_triggers(rel, p, true);
        END IF;
    END LOOP;
END $$;

-- New foreign-table children too (item tables refuse them).
DROP EVENT TRIGGER fluent_protect_new_children;
CREATE EVENT TRIGGER fluent_protect_new_children ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE FOREIGN TABLE')
    EXECUTE FUNCTION fluent._protect_new_children();

DROP FUNCTION fluent._row_lookup(regclass);
-- Where fluent_who_can() finds the row it is asked about, from the catalog
-- alone: the module; the column that identifies the row (the membership row
-- column, else the single-column primary key); the owner, workspace and
-- membership columns; and the tables to read: the table with its
-- partitions and children, and the membership table with its own. The row
-- itself is read by src/rows.rs without running the table owner's code, so
-- each of these must still be a table (a PostgreSQL 15 table owner can turn
-- an empty table into a view, whose functions would run for the caller).
CREATE FUNCTION fluent._row_lookup(tbl regclass)
RETURNS TABLE (module text, key_column name, owner_column name, workspace_column name,
               membership_row_column name, membership_user_column name, relations regclass[], membership_relations regclass[],
               item_module text, item_column name, assignment_row_column name, assignment_user_column name,
               assignment_team_column name, assignment_role_column name, assignment_relations regclass[])
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p fluent.protected_tables;
    assigned fluent.protected_tables;
    odd regclass;
BEGIN
    PERFORM fluent._not_null(tbl, 'table');
    SELECT x.* INTO p FROM fluent.protected_tables x WHERE x.table_name = fluent._protected_root(tbl);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table "%" is not protected by fluent', tbl
            USING ERRCODE = 'undefined_object', HINT = 'fluent_who_can answers for tables protected with fluent_protect().';
    END IF;
    key_column := p.row_column;
    IF key_column IS NULL THEN
        SELECT a.attname INTO key_column
          FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = tbl AND i.indisprimary AND i.indnatts = 1;
    END IF;
    IF key_column IS NULL THEN
        RAISE EXCEPTION 'table "%" has no single-column primary key to find the row by', tbl
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Protect it with row_column naming the key column.';
    END IF;
    relations := ARRAY(SELECT tbl UNION ALL SELECT fluent._descendants(tbl));
    IF p.membership_table IS NOT NULL AND p.membership_role_column IS NULL THEN
        membership_relations := ARRAY(SELECT p.membership_table UNION ALL SELECT fluent._descendants(p.membership_table));
    END IF;
    -- Item roles: the table's own assignments, or its parent's.
    assigned := p;
    item_column := p.row_column;
    IF p.parent_table IS NOT NULL THEN
        SELECT x.* INTO assigned FROM fluent.protected_tables x WHERE x.table_name = p.parent_table;
        item_column := p.parent_column;
    END IF;
    IF assigned.membership_role_column IS NOT NULL THEN
        item_module := assigned.module;
        assignment_row_column := assigned.membership_row_column;
        assignment_user_column := assigned.membership_user_column;
        assignment_team_column := assigned.membership_team_column;
        assignment_role_column := assigned.membership_role_column;
        assignment_relations := ARRAY(SELECT assigned.membership_table UNION ALL SELECT fluent._descendants(assigned.membership_table));
    ELSE
        item_column := NULL;
    END IF;
    SELECT r INTO odd FROM unnest(relations || membership_relations || assignment_relations) r JOIN pg_class c ON c.oid = r
     WHERE c.relkind NOT IN ('r', 'p') LIMIT 1;
    IF odd IS NOT NULL THEN
        RAISE EXCEPTION 'fluent_who_can cannot read "%": it is no longer a table', odd
            USING ERRCODE = 'wrong_object_type', HINT = 'fluent.protection_status shows what changed.';
    END IF;
    module := p.module;
    owner_column := p.owner_column;
    workspace_column := p.workspace_column;
    IF p.membership_role_column IS NULL THEN
        membership_row_column := p.membership_row_column;
        membership_user_column := p.membership_user_column;
    END IF;
    RETURN NEXT;
END $$;

-- What no longer matches what fluent_protect() set up, one row per problem:
-- row-level security disabled or not forced, fluent's policies missing or
-- changed, permissive policies added (they widen access), on the table, its
-- partitions and children, its membership table and that table's partitions
-- and children; any of these inheriting from a table outside the protection
-- (queries on that table read their rows under its policies, not fluent's);
-- limited columns that roles may read on
-- the table or its partitions and children; drift of the column limits
-- (fluent._column_limit_problems); and views that read them past the
-- policies or the column limits: owned by a superuser or a BYPASSRLS role
-- without security_invoker; materialized views, whoever owns them (they
-- store what their last refresh saw); other views without security_invoker
-- that read limited columns (PostgreSQL checks column privileges as the
-- view's owner, while the policies still filter the rows by the acting user).
-- VOLATILE as fluent._column_limit_problems is.
CREATE OR REPLACE FUNCTION @extschema@.fluent_protection_problems()
RETURNS TABLE (table_name regclass, relation regclass, problem text, detail text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p fluent.protected_tables;
    expected jsonb;
    actual jsonb;
    c record;
    k text;
    on_membership boolean;
BEGIN
    FOR p IN SELECT * FROM fluent.protected_tables x ORDER BY x.table_name::text LOOP
        table_name := p.table_name;
        FOR relation, expected, on_membership IN
            SELECT p.table_name, p.policies, false
            UNION ALL SELECT d, p.policies, false FROM fluent._descendants(p.table_name) d
            UNION ALL SELECT p.membership_table, p.membership_policies, true WHERE p.membership_table IS NOT NULL
            -- The membership table's partitions and children (but those
            -- under another protection's membership table, checked there)
            -- carry its policies, where the row written is named by the
            -- partition or child: the recorded text with that name in place
            -- of the membership table's, as PostgreSQL prints it (the
            -- relation's name, quoted as needed, then the column). One named
            -- t or m, as the policies' inner aliases are, is printed with
            -- those renamed (t_1), and reported as changed although it is not.
            UNION ALL
            SELECT d, (SELECT jsonb_object_agg(x.policy, x.def || jsonb_build_object(
                                  'using', replace(x.def->>'using', member_ref, child_ref),
                                  'check', replace(x.def->>'check', member_ref, child_ref)))
                         FROM jsonb_each(p.membership_policies) x (policy, def)), true
              FROM fluent._descendants(p.membership_table) d
             CROSS JOIN LATERAL (
                 SELECT (SELECT quote_ident(cl.relname) FROM pg_class cl WHERE cl.oid = p.membership_table)
                            || '.' || quote_ident(p.membership_row_column),
                        (SELECT quote_ident(cl.relname) FROM pg_class cl WHERE cl.oid = d)
                            || '.' || quote_ident(p.membership_row_column)) r (member_ref, child_ref)
             WHERE p.membership_table IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM fluent.protected_tables o
                                WHERE o.table_name <> p.table_name
                                  AND (o.membership_table = d OR d IN (SELECT fluent._descendants(o.membership_table))))
        LOOP
            SELECT cl.relrowsecurity, cl.relforcerowsecurity INTO c FROM pg_class cl WHERE cl.oid = relation;
            IF NOT c.relrowsecurity THEN
                problem := 'row-level security disabled';
                detail := 'every role with privileges on it sees and changes every row';
                RETURN NEXT;
            END IF;
            IF NOT c.relforcerowsecurity THEN
                problem := 'row-level security not forced';
                detail := 'its owner sees and changes every row';
                RETURN NEXT;
            END IF;
            actual := fluent._policies_of(relation);
            FOR k IN SELECT jsonb_object_keys(expected) LOOP
                IF NOT actual ? k THEN
                    problem := 'policy missing';
                    detail := format('%s was dropped', k);
                    RETURN NEXT;
                ELSIF actual -> k <> expected -> k THEN
                    problem := 'policy changed';
                    detail := format('%s is not what fluent_protect() created', k);
                    RETURN NEXT;
                END IF;
            END LOOP;
            FOR k IN SELECT x FROM jsonb_object_keys(actual) x
                      WHERE NOT expected ? x AND (actual -> x ->> 'permissive')::boolean LOOP
                problem := 'permissive policy added';
                detail := format('%s is OR-ed with fluent''s policies and widens access', k);
                RETURN NEXT;
            END LOOP;
            -- A query reads a child's rows under the policies of the table
            -- it names: a parent outside the protection (INHERIT, ATTACH
            -- PARTITION) reads and changes them past fluent's. (The
            -- membership table's partitions and children have it, or its
            -- partitions and children, as parents.)
            FOR c IN
                SELECT i.inhparent::regclass AS parent, pt.module
                  FROM pg_inherits i LEFT JOIN fluent.protected_tables pt ON pt.table_name = i.inhparent
                 WHERE i.inhrelid = relation AND i.inhparent <> p.table_name
                   AND i.inhparent NOT IN (SELECT fluent._descendants(p.table_name))
                   AND NOT (on_membership AND (i.inhparent = p.membership_table
                                               OR i.inhparent IN (SELECT fluent._descendants(p.membership_table))))
                 ORDER BY 1
            LOOP
                problem := 'parent outside the protection';
                detail := format('it inherits from %s, which %s: queries on %s read and change its rows without these policies; detach it (NO INHERIT or DETACH PARTITION)',
                                 c.parent, coalesce('fluent protects for module ' || c.module, 'fluent does not protect'), c.parent);
                RETURN NEXT;
            END LOOP;
        END LOOP;
        -- Limited columns the table, or one of its partitions and children,
        -- lets roles read directly, past the masked view.
        FOR c IN
            SELECT DISTINCT cl.oid::regclass AS rel, pc.column_name,
                   CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS grantee,
                   cl.oid = p.table_name AS on_table
              FROM fluent.protected_columns pc
              JOIN pg_class cl ON cl.oid = pc.table_name OR cl.oid IN (SELECT fluent._descendants(p.table_name))
              JOIN pg_attribute att ON att.attrelid = cl.oid AND att.attname = pc.column_name
             CROSS JOIN LATERAL (SELECT * FROM aclexplode(cl.relacl) UNION ALL SELECT * FROM aclexplode(att.attacl)) a
              LEFT JOIN pg_roles r ON r.oid = a.grantee
             WHERE pc.table_name = p.table_name AND a.privilege_type = 'SELECT' AND a.grantee <> cl.relowner
             ORDER BY 4 DESC, 1, 2, 3
        LOOP
            relation := c.rel;
            problem := 'limited column readable';
            detail := CASE WHEN c.rel = p.table_name
                THEN format('%s may read column %I of the table itself, unmasked: revoke it and grant the other columns', c.grantee, c.column_name)
                ELSE format('%s may read column %I of this partition or child directly, unmasked: revoke it', c.grantee, c.column_name) END;
            RETURN NEXT;
        END LOOP;
        IF p.masked_view IS NOT NULL THEN
            RETURN QUERY SELECT p.table_name, x.relation, x.problem, x.detail FROM fluent._column_limit_problems(p) x;
        END IF;
        RETURN QUERY SELECT p.table_name, x.relation, x.problem, x.detail FROM fluent._item_trigger_problems(p) x;
        FOR c IN
            WITH RECURSIVE protected_rels (relid) AS (
                SELECT p.table_name::oid UNION ALL SELECT d::oid FROM fluent._descendants(p.table_name) d
            ), readers (viewid) AS (
                SELECT r.ev_class FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                 WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid IN (SELECT relid FROM protected_rels)
                   AND r.ev_class <> d.refobjid
                UNION
                SELECT r.ev_class FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                  JOIN readers ON d.refclassid = 'pg_class'::regclass AND d.refobjid = readers.viewid
                 WHERE r.ev_class <> d.refobjid
            ), views (viewid, relkind, invoker) AS (
                SELECT v.oid, v.relkind, v.relkind = 'v' AND EXISTS (SELECT 1 FROM unnest(v.reloptions) opt
                        WHERE lower(opt) IN ('security_invoker=true', 'security_invoker=on', 'security_invoker=1', 'security_invoker=yes'))
                  FROM readers JOIN pg_class v ON v.oid = readers.viewid
            ), reads (viewid, relid, attnum) AS (
                -- the columns each reader's query names (0: a whole row, or none)
                SELECT r.ev_class, d.refobjid, d.refobjsubid FROM pg_rewrite r JOIN views ON views.viewid = r.ev_class
                  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
                 WHERE d.refobjid <> r.ev_class
            ), limited (relid, attnum) AS (
                -- the limited columns of the table and its partitions and
                -- children (a security_invoker view reads them with the
                -- privileges of the current user, also under another view)
                SELECT a.attrelid, a.attnum FROM pg_attribute a JOIN fluent.protected_columns pc ON pc.column_name = a.attname
                 WHERE pc.table_name = p.table_name AND a.attrelid IN (SELECT relid FROM protected_rels) AND NOT a.attisdropped
            )
            SELECT v.oid::regclass AS viewid, v.relkind, o.rolname, o.rolsuper, o.rolbypassrls, views.invoker,
                   (SELECT string_agg(DISTINCT quote_ident(a.attname), ', ') FROM reads JOIN limited USING (relid, attnum)
                      JOIN pg_attribute a ON a.attrelid = limited.relid AND a.attnum = limited.attnum
                     WHERE reads.viewid = v.oid) AS limited_columns,
                   -- a whole-row reference (a Var with varattno 0) to a relation with limited columns
                   EXISTS (SELECT 1 FROM reads JOIN pg_rewrite r ON r.ev_class = reads.viewid
                            WHERE reads.viewid = v.oid AND reads.relid IN (SELECT relid FROM limited)
                              AND r.ev_action::text LIKE '%:varattno 0 %') AS whole_rows
              FROM views JOIN pg_class v ON v.oid = views.viewid JOIN pg_roles o ON o.oid = v.relowner
             ORDER BY 1
        LOOP
            CONTINUE WHEN c.invoker;
            relation := c.viewid;
            IF c.relkind = 'm' THEN
                problem := 'materialized view bypasses the policies';
                detail := format('owned by %s%s: it stores the rows and columns its last refresh read, whoever was acting then, and shows them to whoever may read it',
                                 quote_ident(c.rolname), CASE WHEN c.rolsuper THEN ', a superuser' WHEN c.rolbypassrls THEN ', a BYPASSRLS role' ELSE '' END);
            ELSIF c.rolsuper OR c.rolbypassrls THEN
                problem := 'view bypasses the policies';
                detail := format('owned by %s, a %s, without security_invoker', quote_ident(c.rolname),
                                 CASE WHEN c.rolsuper THEN 'superuser' ELSE 'BYPASSRLS role' END);
            ELSIF (c.limited_columns IS NOT NULL OR c.whole_rows) AND c.viewid IS DISTINCT FROM p.masked_view THEN
                problem := 'view exposes limited columns';
                detail := format('owned by %s, without security_invoker: whoever may read it reads %s unmasked, with its owner''s column privileges (the policies still filter the rows)',
                                 quote_ident(c.rolname), coalesce('column ' || c.limited_columns, 'whole rows'));
            ELSE
                CONTINUE;
            END IF;
            RETURN NEXT;
        END LOOP;
    END LOOP;
END $$;

-- The id of an item role of a module of the current workspace.
CREATE FUNCTION fluent._item_role_id(p_module text, p_item_role text) RETURNS int
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    mid int := fluent._module_id(p_module);
    id int;
BEGIN
    PERFORM fluent._not_null(p_item_role, 'item role');
    SELECT r.item_role_id INTO id FROM fluent.item_roles r WHERE r.module_id = mid AND r.name = p_item_role;
    IF id IS NULL THEN
        RAISE EXCEPTION 'fluent module "%" has no item role "%"', p_module, p_item_role
            USING ERRCODE = 'undefined_object',
                  HINT = coalesce('Its item roles: ' || (SELECT string_agg(r.name, ', ' ORDER BY r.name)
                                                          FROM fluent.item_roles r WHERE r.module_id = mid) || '.',
                                  'Define one with fluent_create_item_role().');
    END IF;
    RETURN id;
END $$;

CREATE FUNCTION @extschema@.fluent_create_item_role(module text, item_role text, actions text[],
                                                    required_role text DEFAULT NULL, required_module text DEFAULT NULL,
                                                    required_action text DEFAULT NULL, description text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    mid int := fluent._module_id(module);
    rid int;
    aid int;
    id int;
BEGIN
    PERFORM fluent._require_admin();
    PERFORM fluent._name(item_role, 'item role');
    PERFORM fluent._not_null(actions, 'actions');
    IF cardinality(actions) = 0 THEN
        RAISE EXCEPTION 'fluent item role "%" gives no action', item_role
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Name at least one of the module''s actions.';
    END IF;
    IF required_role IS NOT NULL AND (required_module IS NOT NULL OR required_action IS NOT NULL)
       OR (required_module IS NULL) <> (required_action IS NULL) THEN
        RAISE EXCEPTION 'fluent item role "%" has an invalid condition', item_role
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Require either a role (required_role) or a permission (required_module and required_action).';
    END IF;
    IF required_role IS NOT NULL THEN
        rid := fluent._role_id(required_role);
    ELSIF required_module IS NOT NULL THEN
        aid := fluent._action_id(required_module, required_action);
    END IF;
    INSERT INTO fluent.item_roles (workspace_id, module_id, name, description, required_role_id, required_action_id)
    VALUES (fluent._workspace_id(), mid, item_role, description, rid, aid)
    ON CONFLICT (module_id, name) DO NOTHING
    RETURNING item_roles.item_role_id INTO id;
    IF id IS NULL THEN
        PERFORM fluent._duplicate('item role', item_role);
    END IF;
    INSERT INTO fluent.item_role_actions (workspace_id, item_role_id, action_id)
    SELECT DISTINCT fluent._workspace_id(), id, fluent._action_id(module, a) FROM unnest(actions) a;
END $$;

CREATE FUNCTION @extschema@.fluent_drop_item_role(module text, item_role text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM fluent._require_admin();
    DELETE FROM fluent.item_roles r WHERE r.item_role_id = fluent._item_role_id(module, item_role);
END $$;

-- Refuses an assignment that may not be written: it must name a user or a
-- team (not both) that fluent knows in the current workspace, and an item
-- role of the module there; an item role with a condition is held by users
-- who meet it, never through a team (whose members change). Called by the
-- assignment tables' trigger (src/items.rs) as the catalog owner, after row
-- security let the write through, so that it tells the writer nothing
-- about rows or users she could not write; nobody else may execute it.
CREATE FUNCTION fluent._check_assignment(module text, item_role text, user_key text, team text, tbl regclass)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ws int := fluent._workspace_id();
    r fluent.item_roles;
    required text;
    held boolean;
BEGIN
    IF item_role IS NULL OR (user_key IS NULL) = (team IS NULL) THEN
        RAISE EXCEPTION 'an assignment to "%" must name an item role and either a user or a team', tbl
            USING ERRCODE = 'not_null_violation', HINT = 'Fill the role column and one of the user and team columns.';
    END IF;
    IF user_key IS NOT NULL AND NOT EXISTS (SELECT 1 FROM fluent.users u WHERE u.user_key = _check_assignment.user_key) THEN
        RAISE EXCEPTION 'fluent user "%" does not exist', user_key
            USING ERRCODE = 'undefined_object', HINT = 'Create the user (fluent_create_user, or fluent_invite_user) before assigning them.';
    END IF;
    IF team IS NOT NULL AND NOT EXISTS (SELECT 1 FROM fluent.teams t WHERE t.workspace_id = ws AND t.name = team) THEN
        RAISE EXCEPTION 'fluent team "%" does not exist in workspace "%"', team, fluent._workspace_name()
            USING ERRCODE = 'undefined_object', HINT = 'Create the team (fluent_create_team) before assigning it.';
    END IF;
    SELECT x.* INTO r FROM fluent.item_roles x JOIN fluent.modules m ON m.module_id = x.module_id
     WHERE m.workspace_id = ws AND m.name = module AND x.name = item_role;
    IF NOT FOUND THEN
        PERFORM fluent._item_role_id(module, item_role);   -- raises 42704, naming the module's item roles
    END IF;
    IF r.required_role_id IS NULL AND r.required_action_id IS NULL THEN
        RETURN;
    END IF;
    IF r.required_role_id IS NOT NULL THEN
        required := format('the role "%s"', (SELECT x.name FROM fluent.roles x WHERE x.role_id = r.required_role_id));
        held := EXISTS (SELECT 1 FROM fluent.grants g JOIN fluent.users u ON u.user_id = g.user_id
                         WHERE u.user_key = _check_assignment.user_key AND g.role_id = r.required_role_id
                           AND fluent._in_force(g.valid_until));
    ELSE
        SELECT format('the permission %s.%s', m.name, a.name), fluent._scope_of(user_key, m.name, a.name) <> 'none'
          INTO required, held
          FROM fluent.actions a JOIN fluent.modules m ON m.module_id = a.module_id
         WHERE a.action_id = r.required_action_id;
    END IF;
    IF team IS NOT NULL THEN
        RAISE EXCEPTION 'item role "%" cannot be given to team "%": it requires %', item_role, team, required
            USING ERRCODE = 'check_violation', HINT = 'Assign it to users who hold what it requires, one by one.';
    END IF;
    IF NOT coalesce(held, false) THEN
        RAISE EXCEPTION 'fluent user "%" cannot be assigned item role "%": it requires %', user_key, item_role, required
            USING ERRCODE = 'check_violation', HINT = format('Give "%s" %s first.', user_key, required);
    END IF;
END $$;

-- The audit trail of assignments (seed 001: "audit/access logs"): who gave
-- or took an item role, acting for whom, in the workspace it was written
-- in. Written by the assignment tables' trigger (src/items.rs) as the
-- catalog owner, from the rows as JSON made as the writer; nobody else may
-- execute it.
CREATE FUNCTION fluent._audit_assignment(p_db_role text, p_acting_user text, p_table text, p_operation text,
                                         p_before jsonb, p_after jsonb)
RETURNS void
LANGUAGE sql VOLATILE
BEGIN ATOMIC
    INSERT INTO fluent.audit_log (db_role, acting_user, workspace_id, table_name, operation, before, after)
    SELECT p_db_role, p_acting_user, w.workspace_id, p_table, p_operation, p_before, p_after
      FROM fluent.workspaces w WHERE w.name = fluent._workspace_name();
END;

-- The assignment tables' trigger function, written in Rust (src/items.rs),
-- in this version's library (see sql/triggers.sql).
DO $$
BEGIN
    EXECUTE format('CREATE FUNCTION fluent._check_item_assignment() RETURNS trigger LANGUAGE c AS %L, %L',
                   (SELECT p.probin FROM pg_proc p WHERE p.oid = 'fluent.rls_all(text, text)'::regprocedure),
                   'fluent_check_item_assignment');
END
$$;

-- AFTER INSERT OR UPDATE of an item table or a child table with an owner
-- column: an item role gives the item's data, not the item. Handing a row
-- over (a new owner) takes the scope of the module's update action over the
-- row as it is and as written, and a new row is owned by nobody or by a user
-- the scope of the insert action reaches: otherwise an editor could take a
-- project, and with it the right to assign its item roles, or plant rows in
-- another user's reach. AFTER, without a column list: it sees the row as
-- written, whatever other triggers did. Arguments: the owner column and the
-- tests of the update and insert scopes. SECURITY INVOKER: the reach tests
-- answer for the writer's acting user; where row-level security does not
-- apply to the write (fluent._column_limits_apply), nor does this.
CREATE FUNCTION fluent._check_item_owner() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    test text := format('SELECT %s FROM (SELECT ($1).*) AS r', CASE TG_OP WHEN 'INSERT' THEN TG_ARGV[2] ELSE TG_ARGV[1] END);
    owner_of text := format('SELECT ($1).%I IS NULL', TG_ARGV[0]);
    unowned boolean;
    changed boolean := true;
    reaches boolean := true;
BEGIN
    IF NOT fluent._column_limits_apply(TG_RELID) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        EXECUTE format('SELECT ($1).%1$I IS DISTINCT FROM ($2).%1$I', TG_ARGV[0]) INTO changed USING NEW, OLD;
        IF changed THEN
            EXECUTE test INTO reaches USING OLD;
        END IF;
    ELSE
        EXECUTE owner_of INTO unowned USING NEW;
        changed := NOT unowned;
    END IF;
    IF changed AND coalesce(reaches, false) THEN
        EXECUTE test INTO reaches USING NEW;
    END IF;
    IF changed AND NOT coalesce(reaches, false) THEN
        RAISE EXCEPTION 'permission denied to hand over a row of "%"', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('Column "%s" names the row''s owner: setting it takes the module''s permission at a scope that reaches the row, as it is and as written; item roles do not give it.', TG_ARGV[0]);
    END IF;
    RETURN NULL;
END $$;

-- AFTER INSERT OR UPDATE of a child table: a row is put only under a parent
-- the writer may write (a viewer of a project adds no task to it), whatever
-- else lets her write the row. The parent is locked FOR KEY SHARE, as a
-- foreign key does, which applies its UPDATE policy as the writer (who thus
-- needs UPDATE on the parent table). Arguments: the parent column, the
-- parent table and its key column. SECURITY INVOKER.
CREATE FUNCTION fluent._check_item_parent() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    moved boolean := true;
    found_parent int;
BEGIN
    IF NOT fluent._column_limits_apply(TG_RELID) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        EXECUTE format('SELECT ($1).%1$I IS DISTINCT FROM ($2).%1$I', TG_ARGV[0]) INTO moved USING NEW, OLD;
    END IF;
    IF NOT moved THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT 1 FROM %s p WHERE p.%I = ($1).%I FOR KEY SHARE', TG_ARGV[1], TG_ARGV[2], TG_ARGV[0])
       INTO found_parent USING NEW;
    IF found_parent IS NULL THEN
        RAISE EXCEPTION 'permission denied to put a row of "%" under a row of "%" it may not write', TG_TABLE_NAME, TG_ARGV[1]
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('Column "%s" names a row of %s: the writer must be able to update it.', TG_ARGV[0], TG_ARGV[1]);
    END IF;
    RETURN NULL;
END $$;

-- The item roles' triggers, all AFTER ... FOR EACH ROW, so that they see the
-- row as written (a WHEN condition too): on an assignment table and its
-- partitions and children, fluent._check_item_assignment() (src/items.rs:
-- the check and the audit trail), with the module and the assignment's
-- user, team ('' for none) and role columns as arguments; on an item table,
-- or a child table, with an owner column, fluent._check_item_owner() with
-- the tests of the writer's scopes, for rows inserted with an owner and rows
-- whose owner changes; on a child table, fluent._check_item_parent(), for
-- rows inserted and rows that move. The WHEN conditions keep the triggers
-- from firing (and from being queued) for the writes they do not concern.
CREATE FUNCTION fluent._item_triggers(p fluent.protected_tables)
RETURNS TABLE (on_assignments boolean, name name, events text, per_row boolean, condition text, fn regprocedure,
               args text[], tgtype int2)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT true, x.name, x.events, x.per_row, NULL::text, 'fluent._check_item_assignment()'::regprocedure,
           ARRAY[p.module::text, p.membership_user_column::text, coalesce(p.membership_team_column, '')::text,
                 p.membership_role_column::text],
           x.tgtype
      FROM (VALUES ('fluent_item_role_conditions'::name, 'AFTER INSERT OR UPDATE OR DELETE', true,
                    29::int2),   -- ROW 1, INSERT 4, DELETE 8, UPDATE 16 (AFTER)
                   ('fluent_item_role_truncate'::name, 'AFTER TRUNCATE', false, 32::int2)) x (name, events, per_row, tgtype)
     WHERE p.membership_role_column IS NOT NULL
    UNION ALL
    SELECT false, x.name, x.events, true, x.condition, 'fluent._check_item_owner()'::regprocedure,
           ARRAY[p.owner_column::text, fluent._scope_rows_sql(p, p.module, p.update_action),
                 fluent._scope_rows_sql(p, p.module, p.insert_action)],
           x.tgtype
      FROM (VALUES ('fluent_item_owner'::name, 'AFTER INSERT', format('new.%I IS NOT NULL', p.owner_column), 5::int2),
                   ('fluent_item_handover'::name, 'AFTER UPDATE', format('old.%1$I IS DISTINCT FROM new.%1$I', p.owner_column),
                    17::int2)) x (name, events, condition, tgtype)
     WHERE (p.membership_role_column IS NOT NULL OR p.parent_table IS NOT NULL) AND p.owner_column IS NOT NULL
    UNION ALL
    SELECT false, x.name, x.events, true, x.condition, 'fluent._check_item_parent()'::regprocedure,
           ARRAY[p.parent_column::text, p.parent_table::text,
                 (SELECT r.row_column::text FROM fluent.protected_tables r WHERE r.table_name = p.parent_table)],
           x.tgtype
      FROM (VALUES ('fluent_item_parent'::name, 'AFTER INSERT', NULL::text, 5::int2),
                   ('fluent_item_moved'::name, 'AFTER UPDATE', format('old.%1$I IS DISTINCT FROM new.%1$I', p.parent_column),
                    17::int2)) x (name, events, condition, tgtype)
     WHERE p.parent_table IS NOT NULL;
END;

-- Replaces the item roles' triggers on rel (p's assignment table when
-- on_assignments, else p's table; or one of their partitions or children);
-- with p NULL, removes them. A partition gets them as clones of its parent's.
CREATE FUNCTION fluent._install_item_triggers(rel regclass, p fluent.protected_tables, on_assignments boolean)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    trigger_name name;
    t record;
BEGIN
    FOR trigger_name IN SELECT tg.tgname FROM pg_trigger tg
                         WHERE tg.tgrelid = rel AND tg.tgparentid = 0
                           AND (tg.tgfoid = 'fluent._check_item_assignment()'::regprocedure) = on_assignments
                           AND tg.tgfoid IN ('fluent._check_item_assignment()'::regprocedure,
                                             'fluent._check_item_owner()'::regprocedure,
                                             'fluent._check_item_parent()'::regprocedure) LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trigger_name, rel);
    END LOOP;
    IF p.table_name IS NULL THEN
        RETURN;
    END IF;
    -- (A partition has its parent's row triggers as clones, but no
    -- statement trigger: a TRUNCATE of the partition itself fires its own.)
    FOR t IN SELECT * FROM fluent._item_triggers(p) x
              WHERE x.on_assignments = _install_item_triggers.on_assignments
                AND NOT (x.per_row AND (SELECT c.relispartition FROM pg_class c WHERE c.oid = rel)) LOOP
        EXECUTE format('CREATE TRIGGER %I %s ON %s FOR EACH %s%s EXECUTE FUNCTION %s(%s)', t.name, t.events, rel,
                       CASE WHEN t.per_row THEN 'ROW' ELSE 'STATEMENT' END,
                       ' WHEN (' || t.condition || ')',
                       (SELECT format('%I.%I', n.nspname, f.proname) FROM pg_proc f JOIN pg_namespace n ON n.oid = f.pronamespace
                         WHERE f.oid = t.fn),
                       (SELECT string_agg(quote_literal(a), ', ' ORDER BY k) FROM unnest(t.args) WITH ORDINALITY x (a, k)));
    END LOOP;
END $$;

-- The foreign keys item roles rely on: an assignment table's rows go with
-- their item (ON DELETE CASCADE), so that a new item taking a deleted one's
-- key takes none of its assignments; a child's rows name a parent that
-- exists. Each as (referencing table, its column, referenced table, its
-- column, whether deletes must cascade); fluent_protect() requires them,
-- fluent_protection_problems() reports them gone.
CREATE FUNCTION fluent._item_foreign_keys(p fluent.protected_tables)
RETURNS TABLE (referencing regclass, referencing_column name, referenced regclass, referenced_column name, cascades boolean)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT p.membership_table, p.membership_row_column, p.table_name, p.row_column, true
     WHERE p.membership_role_column IS NOT NULL
    UNION ALL
    SELECT p.table_name, p.parent_column, x.table_name, x.row_column, false
      FROM fluent.protected_tables x WHERE x.table_name = p.parent_table;
END;

-- Whether fk's foreign key is in place.
CREATE FUNCTION fluent._has_item_foreign_key(referencing regclass, referencing_column name, referenced regclass,
                                             referenced_column name, cascades boolean)
RETURNS boolean
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT EXISTS (
        SELECT 1 FROM pg_constraint c
         WHERE c.contype = 'f' AND c.conrelid = referencing AND c.confrelid = referenced
           AND c.conkey = ARRAY[(SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = referencing AND a.attname = referencing_column)]
           AND c.confkey = ARRAY[(SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = referenced AND a.attname = referenced_column)]
           AND (NOT cascades OR c.confdeltype = 'c')
           -- a changed key must not hand the rows to another item
           AND c.confupdtype IN ('a', 'r', 'c'));
END;

-- What drifted in the item roles' triggers (fluent._item_triggers) on p's
-- table, its assignment table and their partitions and children: missing,
-- disabled, or not as created.
CREATE FUNCTION fluent._item_trigger_problems(p fluent.protected_tables)
RETURNS TABLE (relation regclass, problem text, detail text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
    tg record;
BEGIN
    FOR t IN SELECT * FROM fluent._item_triggers(p) LOOP
        FOR relation IN SELECT CASE WHEN t.on_assignments THEN p.membership_table ELSE p.table_name END
                        UNION ALL SELECT fluent._descendants(CASE WHEN t.on_assignments THEN p.membership_table ELSE p.table_name END) LOOP
            SELECT x.tgname, x.tgenabled, x.tgtype = t.tgtype AND x.tgattr::text = ''
                       AND CASE WHEN t.condition IS NULL THEN x.tgqual IS NULL
                                ELSE position(format(' WHEN ((%s)) ', t.condition) IN pg_get_triggerdef(x.oid)) > 0 END
                       AND x.tgargs = (SELECT string_agg(convert_to(a, getdatabaseencoding()) || '\x00'::bytea, ''::bytea ORDER BY k)
                                         FROM unnest(t.args) WITH ORDINALITY y (a, k)) AS as_created
              INTO tg FROM pg_trigger x WHERE x.tgrelid = relation AND x.tgfoid = t.fn AND x.tgtype = t.tgtype
             ORDER BY x.tgenabled = 'O' DESC LIMIT 1;
            IF NOT FOUND THEN
                problem := 'item role trigger missing';
            ELSIF NOT tg.as_created OR tg.tgenabled <> 'O' THEN
                problem := CASE WHEN tg.tgenabled = 'D' THEN 'item role trigger disabled' ELSE 'item role trigger changed' END;
            ELSE
                CONTINUE;
            END IF;
            detail := CASE t.name
                WHEN 'fluent_item_role_conditions' THEN 'assignments are not checked against their item roles and conditions'
                WHEN 'fluent_item_role_truncate' THEN 'a TRUNCATE of the assignments is not in the audit trail'
                WHEN 'fluent_item_owner' THEN 'a row may be created in another user''s reach by whoever holds an item role that writes it'
                WHEN 'fluent_item_handover' THEN 'a row''s owner may be changed by whoever holds an item role that writes it'
                ELSE 'a row may be put under a parent its writer may not update' END;
            RETURN NEXT;
        END LOOP;
    END LOOP;
    FOR relation, detail IN
        SELECT k.referencing, format('no foreign key from %s (%I) to %s (%I)%s', k.referencing, k.referencing_column,
                                     k.referenced, k.referenced_column, CASE WHEN k.cascades THEN ' ON DELETE CASCADE' ELSE '' END)
          FROM fluent._item_foreign_keys(p) k
         WHERE NOT fluent._has_item_foreign_key(k.referencing, k.referencing_column, k.referenced, k.referenced_column, k.cascades)
    LOOP
        problem := 'item foreign key missing';
        RETURN NEXT;
    END LOOP;
END $$;

-- The assignment tables (with their partitions and children, tables only)
-- and their columns: what fluent._assigned_item_actions reads (src/items.rs).
CREATE FUNCTION fluent._load_assignment_tables()
RETURNS TABLE (module text, relations oid[], user_column text, team_column text, role_column text)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT p.module,
           ARRAY(SELECT r.oid FROM pg_class r
                  WHERE r.relkind = 'r'
                    AND (r.oid = p.membership_table OR r.oid IN (SELECT fluent._descendants(p.membership_table)))),
           p.membership_user_column::text, p.membership_team_column::text, p.membership_role_column::text
      FROM fluent.protected_tables p
     WHERE p.membership_role_column IS NOT NULL
     ORDER BY p.table_name::oid;
END;

-- A member added to a team holds the item roles assigned to it, a user
-- activated, created or granted something while not active those assigned
-- to them (fluent._assigned_item_actions reads the application's assignment
-- tables as fluent_who_can reads rows), and a grant or an override may open
-- those an active user holds closed (a sign-in role, a requirement, a
-- condition, a child table's module: the actions open now, beyond
-- p_before). A delegated administrator does these only where she holds, at
-- scope all, every action they give on the items' tables and their
-- children's (`what` says what was refused).
CREATE FUNCTION fluent._item_roles_within_powers(delegate text, what text, p_user_key text, p_team text,
                                                 p_before text[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    beyond text;
BEGIN
    IF delegate IS NULL THEN
        RETURN;
    END IF;
    SELECT string_agg(DISTINCT g.module || '.' || g.action, ', ') INTO beyond
      FROM (SELECT a.module, a.action FROM fluent._assigned_item_actions(p_user_key, p_team) a WHERE p_before IS NULL
            UNION
            SELECT o.module, o.action FROM fluent._open_item_actions(p_user_key) o
             WHERE p_before IS NOT NULL
               AND NOT concat_ws('/', o.module, o.action, o.item_module, o.item_role) = ANY (p_before)) g
     WHERE fluent._scope_of(delegate, g.module, g.action) <> 'all';
    IF beyond IS NOT NULL THEN
        RAISE EXCEPTION 'fluent user "%" may not %', delegate, what
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('The application''s assignments give item roles that this opens: it takes scope all on %s.', beyond);
    END IF;
END $$;

-- The item roles' actions open to an active user now, one string each
-- (module/action/item module/item role): what a grant or an override may
-- open, compared afterwards (p_before above). NULL for a user who is not
-- active: what they are assigned counts whole, as on activation.
CREATE FUNCTION fluent._open_item_role_names(p_user_key text) RETURNS text[]
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT CASE WHEN (SELECT u.status FROM fluent.users u WHERE u.user_key = p_user_key) = 'active'
                THEN (SELECT coalesce(array_agg(concat_ws('/', o.module, o.action, o.item_module, o.item_role)), '{}')
                        FROM fluent._open_item_actions(p_user_key) o) END;
END;

-- The modules of the tables item roles reach: each item table's own, and
-- its child tables' (fluent._assigned_item_actions).
CREATE FUNCTION fluent._load_item_modules()
RETURNS TABLE (item_module text, module text)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT p.module, p.module FROM fluent.protected_tables p WHERE p.membership_role_column IS NOT NULL
    UNION
    SELECT x.module, p.module FROM fluent.protected_tables p JOIN fluent.protected_tables x ON x.table_name = p.parent_table;
END;

CREATE OR REPLACE FUNCTION fluent._do_add_team_member(team text, user_key text, lead boolean, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_users');
    tid int := fluent._team_id(team);
    uid bigint := fluent._visible_user_id(delegate, user_key);
BEGIN
    PERFORM fluent._not_null(lead, 'lead');
    PERFORM fluent._not_self(delegate, user_key, 'teams');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_user(delegate, uid);
    PERFORM fluent._not_my_team(delegate, tid, team);
    -- The team's leads reach the new member; a new lead reaches the team.
    PERFORM fluent._reach_within_powers(delegate, CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END,
        ARRAY(SELECT u.user_key FROM fluent.team_members m JOIN fluent.users u ON u.user_id = m.user_id
               WHERE m.team_id = tid AND m.is_lead AND m.user_id <> uid
              UNION SELECT user_key WHERE lead));
    PERFORM fluent._item_roles_within_powers(delegate, format('add members to team "%s"', team), NULL, team);
    INSERT INTO fluent.team_members (workspace_id, team_id, user_id, is_lead)
    VALUES (fluent._workspace_id(), tid, uid, lead)
    ON CONFLICT (team_id, user_id) DO UPDATE SET is_lead = EXCLUDED.is_lead
    WHERE team_members.is_lead IS DISTINCT FROM EXCLUDED.is_lead;
END $$;

CREATE OR REPLACE FUNCTION fluent._do_create_user(user_key text, display_name text, manager text, status text, ticket bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_users');
    manager_id bigint := CASE WHEN manager IS NOT NULL THEN fluent._visible_user_id(delegate, manager) END;
    s fluent.user_status := fluent._user_status(status);
BEGIN
    PERFORM fluent._not_my_reach(delegate, manager_id);
    PERFORM fluent._line_in_my_workspace(delegate, manager_id);
    INSERT INTO fluent.users (user_key, display_name, status, manager_id)
    VALUES (fluent._name(user_key, 'user'), display_name, s, manager_id)
    ON CONFLICT ON CONSTRAINT users_user_key_key DO NOTHING;
    IF NOT FOUND THEN PERFORM fluent._duplicate('user', user_key); END IF;
    PERFORM fluent._item_roles_within_powers(delegate, format('create "%s"', user_key), user_key, NULL);
END $$;

CREATE OR REPLACE FUNCTION fluent._do_grant_role(user_key text, role text, until timestamptz, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'assign_roles');
    uid bigint := fluent._visible_user_id(delegate, user_key);
    rid int := fluent._role_id(role);
    expiry timestamptz := fluent._until(until);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(user_key) END;
    -- Making a privileged grant temporary may leave the workspace without a
    -- holder once it lapses (DBAs may: this function has no force).
    staffed int[] := CASE WHEN delegate IS NOT NULL THEN fluent._staffed_workspaces() END;
    administered text[] := CASE WHEN delegate IS NOT NULL THEN fluent._administered_rights() END;
    -- The item roles the user holds open before (see fluent._item_roles_within_powers).
    opened text[] := CASE WHEN delegate IS NOT NULL THEN fluent._open_item_role_names(user_key) END;
BEGIN
    PERFORM fluent._not_self(delegate, user_key, 'roles');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_role(delegate, rid);
    PERFORM fluent._assignable_only(delegate, rid, 'grant');
    PERFORM fluent._may_touch_sign_in(delegate, uid, rid);
    -- Every permission of the role must be within the granter's own, and so
    -- must what the grant opens (a sign-in role opens the user's other roles).
    PERFORM fluent._within_powers(delegate, powers, '{}', fluent._role_scope_map(rid), format('"%s" role "%s", which has', user_key, role));
    -- Granting again sets the expiry the call gives (NULL: none); a grant
    -- that expired counts again from now.
    INSERT INTO fluent.grants AS g (workspace_id, user_id, role_id, valid_until)
    VALUES (fluent._workspace_id(), uid, rid, expiry)
    ON CONFLICT (user_id, role_id) DO UPDATE
       SET valid_until = EXCLUDED.valid_until,
           granted_at = CASE WHEN fluent._in_force(g.valid_until) THEN g.granted_at ELSE EXCLUDED.granted_at END
     WHERE g.valid_until IS DISTINCT FROM EXCLUDED.valid_until;
    IF NOT FOUND THEN
        RAISE NOTICE 'fluent user "%" already holds role "%"', user_key, role;
    END IF;
    IF delegate IS NOT NULL THEN
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key), format('"%s"', user_key));
        PERFORM fluent._item_roles_within_powers(delegate, format('grant "%s" role "%s"', user_key, role), user_key, NULL,
                                                 opened);
        PERFORM fluent._still_staffed(staffed, false);
        PERFORM fluent._still_administered(administered, false);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION fluent._do_set_override(user_key text, module text, action text, scope text, until timestamptz,
                                         ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'assign_roles');
    uid bigint := fluent._visible_user_id(delegate, user_key);
    aid int := fluent._action_id(module, action);
    s fluent.scope := fluent._scope(scope);
    expiry timestamptz := fluent._until(until);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(user_key) END;
    administered text[] := CASE WHEN delegate IS NOT NULL THEN fluent._administered_rights() END;
    opened text[] := CASE WHEN delegate IS NOT NULL THEN fluent._open_item_role_names(user_key) END;
BEGIN
    PERFORM fluent._not_self(delegate, user_key, 'overrides');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_user(delegate, uid);
    PERFORM fluent._within_powers(delegate, powers, '{}', fluent._override_gives(aid, s), format('"%s"', user_key));
    -- A temporary override is also checked as if it were cleared: when it
    -- lapses, the user has what they would have without it (a DBA's deny
    -- made temporary would open by itself). So the override is cleared
    -- first, the result checked, and the new one written.
    IF delegate IS NOT NULL AND expiry IS NOT NULL THEN
        DELETE FROM fluent.overrides o WHERE o.user_id = uid AND o.action_id = aid;
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key),
                                      format('"%s" (once the override lapses)', user_key));
        PERFORM fluent._item_roles_within_powers(delegate, format('change the overrides of "%s" (once the override lapses)', user_key),
                                                 user_key, NULL, opened);
    END IF;
    INSERT INTO fluent.overrides (workspace_id, user_id, action_id, scope, valid_until)
    VALUES (fluent._workspace_id(), uid, aid, s, expiry)
    ON CONFLICT (user_id, action_id) DO UPDATE
       SET scope = EXCLUDED.scope, set_at = EXCLUDED.set_at, set_by = EXCLUDED.set_by, valid_until = EXCLUDED.valid_until
     WHERE (overrides.scope, overrides.valid_until) IS DISTINCT FROM (EXCLUDED.scope, EXCLUDED.valid_until);
    IF delegate IS NOT NULL THEN
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key), format('"%s"', user_key));
        PERFORM fluent._item_roles_within_powers(delegate, format('change the overrides of "%s"', user_key), user_key, NULL,
                                                 opened);
        PERFORM fluent._still_administered(administered, false);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION fluent._do_clear_override(user_key text, module text, action text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'assign_roles');
    uid bigint := fluent._visible_user_id(delegate, user_key);
    aid int := fluent._action_id(module, action);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(user_key) END;
    administered text[] := CASE WHEN delegate IS NOT NULL THEN fluent._administered_rights() END;
    opened text[] := CASE WHEN delegate IS NOT NULL THEN fluent._open_item_role_names(user_key) END;
BEGIN
    PERFORM fluent._not_self(delegate, user_key, 'overrides');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_user(delegate, uid);
    DELETE FROM fluent.overrides o WHERE o.user_id = uid AND o.action_id = aid;
    IF NOT FOUND THEN
        RAISE WARNING 'fluent user "%" has no override on %.%', user_key, module, action;
    END IF;
    IF delegate IS NOT NULL THEN
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key), format('"%s"', user_key));
        PERFORM fluent._item_roles_within_powers(delegate, format('change the overrides of "%s"', user_key), user_key, NULL,
                                                 opened);
        PERFORM fluent._still_administered(administered, false);
    END IF;
END $$;

CREATE TABLE fluent.template_item_roles (
    template      text NOT NULL,
    module        text NOT NULL,
    item_role     text NOT NULL,
    actions       text[] NOT NULL,
    required_role text,
    note          text,
    PRIMARY KEY (template, module, item_role),
    FOREIGN KEY (template, module) REFERENCES fluent.template_modules,
    FOREIGN KEY (template, required_role) REFERENCES fluent.template_roles (template, role)
);
COMMENT ON TABLE fluent.template_item_roles IS
    'Item roles a template defines (see fluent.item_roles): held on one item, they give the actions listed there; required_role: what an assignee must hold';
-- Seeds 002/003: "without Project Viewer access a person would need to be
-- assigned a role on a project"; users get "editorial rights on certain
-- items" and see "through inclusion in teams or assignment to projects,
-- meetings, boards"; "a person has to have the accountable executive role to
-- be named as an accountable executive on a project".
INSERT INTO fluent.template_item_roles (template, module, item_role, actions, required_role, note) VALUES
    ('fluid', 'projects', 'manager',               '{read,write,delete}', NULL, 'runs the project'),
    ('fluid', 'projects', 'editor',                '{read,write}',        NULL, 'editorial rights on the project'),
    ('fluid', 'projects', 'viewer',                '{read}',              NULL, 'sees the project'),
    ('fluid', 'projects', 'accountable_executive', '{read,write}',        'accountable_executive',
     'named on the project; only holders of the Accountable Executive role'),
    ('fluid', 'boards',   'member',                '{read,write}',        NULL, 'takes part in the board (a team may be added)'),
    ('fluid', 'meetings', 'participant',           '{read,write}',        NULL, 'takes part in the meeting');

-- Seed 002: the Data Administrator edits and uploads project information
-- and financials.
INSERT INTO fluent.template_permissions (template, role, module, action, scope, note) VALUES
    ('fluid', 'data_administrator', 'projects', 'write', 'all', 'bulk edit and upload of project information (seed 002)'),
    ('fluid', 'data_administrator', 'financials', 'read', 'all', '... and financials'),
    ('fluid', 'data_administrator', 'financials', 'write', 'all', NULL);

-- Loads a template into the current workspace: its modules and actions, its
-- roles, and their permissions. Only what is missing is added, so applying
-- again duplicates nothing, keeps every change made since, and never touches
-- a custom role (fluent_reset_role() restores a role's defaults).
CREATE OR REPLACE FUNCTION @extschema@.fluent_apply_template(template text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ws int := fluent._workspace_id();
    t text := fluent._template(template);
    m record;
    mid int;
BEGIN
    PERFORM fluent._require_admin();
    FOR m IN SELECT * FROM fluent.template_modules tm WHERE tm.template = t ORDER BY tm.position LOOP
        INSERT INTO fluent.modules (workspace_id, name, parent_id)
        VALUES (ws, m.module, (SELECT module_id FROM fluent.modules WHERE workspace_id = ws AND name = m.parent))
        ON CONFLICT (workspace_id, name) DO NOTHING;
        SELECT module_id INTO mid FROM fluent.modules WHERE workspace_id = ws AND name = m.module;
        INSERT INTO fluent.actions (workspace_id, module_id, name)
        SELECT ws, mid, a FROM unnest(m.actions) WITH ORDINALITY AS x(a, n) ORDER BY n
        ON CONFLICT (module_id, name) DO NOTHING;
    END LOOP;

    -- A role the template already made is found by its template role, even
    -- if renamed since; a custom role holding a template role's name wins.
    INSERT INTO fluent.roles (workspace_id, name, description, template, template_role, privileged, grants_sign_in,
                              reporting_anchor)
    SELECT ws, tr.role, tr.description, t, tr.role, tr.privileged, tr.grants_sign_in, tr.reporting_anchor
      FROM fluent.template_roles tr
     WHERE tr.template = t
       AND NOT EXISTS (SELECT 1 FROM fluent.roles r WHERE r.workspace_id = ws AND r.template = t AND r.template_role = tr.role)
     ORDER BY tr.position
    ON CONFLICT (workspace_id, name) DO NOTHING;
    FOR m IN SELECT r.name FROM fluent.template_roles tr JOIN fluent.roles r ON r.workspace_id = ws AND r.name = tr.role
              WHERE tr.template = t AND r.template IS DISTINCT FROM t ORDER BY tr.position LOOP
        RAISE NOTICE 'fluent role "%" exists and is not from template "%"; left as it is', m.name, t;
    END LOOP;

    INSERT INTO fluent.permissions (workspace_id, role_id, action_id, scope)
    SELECT ws, r.role_id, a.action_id, tp.scope
      FROM fluent.template_permissions tp
      JOIN fluent.roles r ON r.workspace_id = ws AND r.template = t AND r.template_role = tp.role
      JOIN fluent.modules md ON md.workspace_id = ws AND md.name = tp.module
      JOIN fluent.actions a ON a.module_id = md.module_id AND a.name = tp.action
     WHERE tp.template = t
    ON CONFLICT (role_id, action_id) DO NOTHING;

    INSERT INTO fluent.admin_rights (workspace_id, admin_right, action_id)
    SELECT ws, tr.admin_right, a.action_id
      FROM fluent.template_admin_rights tr
      JOIN fluent.modules md ON md.workspace_id = ws AND md.name = tr.module
      JOIN fluent.actions a ON a.module_id = md.module_id AND a.name = tr.action
     WHERE tr.template = t
    ON CONFLICT DO NOTHING;

    INSERT INTO fluent.requirements (workspace_id, module_id, action_id, required_action_id)
    SELECT ws, md.module_id, NULL, a.action_id
      FROM fluent.template_requirements tq
      JOIN fluent.modules md ON md.workspace_id = ws AND md.name = tq.module
      JOIN fluent.modules rm ON rm.workspace_id = ws AND rm.name = tq.required_module
      JOIN fluent.actions a ON a.module_id = rm.module_id AND a.name = tq.required_action
     WHERE tq.template = t
    ON CONFLICT DO NOTHING;

    -- Item roles the workspace has already (the template's, or a DBA's of
    -- the same name) are left as they are: their actions and conditions are
    -- not widened behind the assignments that name them.
    FOR m IN SELECT ti.module, ti.item_role FROM fluent.template_item_roles ti
               JOIN fluent.modules md ON md.workspace_id = ws AND md.name = ti.module
               JOIN fluent.item_roles ir ON ir.module_id = md.module_id AND ir.name = ti.item_role
              WHERE ti.template = t
                AND (ARRAY(SELECT a.name FROM fluent.item_role_actions ia JOIN fluent.actions a ON a.action_id = ia.action_id
                            WHERE ia.item_role_id = ir.item_role_id ORDER BY 1)
                     IS DISTINCT FROM ARRAY(SELECT x FROM unnest(ti.actions) x ORDER BY 1)
                     OR ir.required_role_id IS DISTINCT FROM
                        (SELECT r.role_id FROM fluent.roles r
                          WHERE r.workspace_id = ws AND r.template = t AND r.template_role = ti.required_role))
              ORDER BY 1, 2 LOOP
        RAISE NOTICE 'fluent item role "%" of module "%" is not template "%"''s; left as it is', m.item_role, m.module, t;
    END LOOP;
    WITH created AS (
        INSERT INTO fluent.item_roles (workspace_id, module_id, name, description, required_role_id)
        SELECT ws, md.module_id, ti.item_role, ti.note, r.role_id
          FROM fluent.template_item_roles ti
          JOIN fluent.modules md ON md.workspace_id = ws AND md.name = ti.module
          LEFT JOIN fluent.roles r ON r.workspace_id = ws AND r.template = t AND r.template_role = ti.required_role
         WHERE ti.template = t AND (ti.required_role IS NULL OR r.role_id IS NOT NULL)
        ON CONFLICT DO NOTHING
        RETURNING item_roles.item_role_id, item_roles.module_id, item_roles.name
    )
    INSERT INTO fluent.item_role_actions (workspace_id, item_role_id, action_id)
    SELECT ws, c.item_role_id, a.action_id
      FROM created c
      JOIN fluent.modules md ON md.module_id = c.module_id
      JOIN fluent.template_item_roles ti ON ti.template = t AND ti.module = md.name AND ti.item_role = c.name
      JOIN fluent.actions a ON a.module_id = md.module_id AND a.name = ANY (ti.actions);

    INSERT INTO fluent.assignable_roles (workspace_id, role_id, assignable_role_id)
    SELECT ws, d.role_id, d.assignable_role_id FROM fluent._template_assignable(ws, t) d
    ON CONFLICT DO NOTHING;

    INSERT INTO fluent.template_applications (workspace_id, template) VALUES (ws, t);
END $$;

-- The item roles' matrix, beside the roles': what each item role gives
-- on the items where it is held, and what its holders must hold.
CREATE VIEW fluent.item_role_matrix AS
SELECT w.name AS workspace, m.name AS module, r.name AS item_role, a.name AS action,
       q.name AS required_role, rm.name || '.' || ra.name AS required_permission, r.description
  FROM fluent.item_roles r
  JOIN fluent.workspaces w ON w.workspace_id = r.workspace_id
  JOIN fluent.modules m ON m.module_id = r.module_id
  JOIN fluent.item_role_actions ia ON ia.item_role_id = r.item_role_id
  JOIN fluent.actions a ON a.action_id = ia.action_id
  LEFT JOIN fluent.roles q ON q.role_id = r.required_role_id
  LEFT JOIN fluent.actions ra ON ra.action_id = r.required_action_id
  LEFT JOIN fluent.modules rm ON rm.module_id = ra.module_id;
COMMENT ON VIEW fluent.item_role_matrix IS
    'One row per (workspace, module, item role, action it gives on the items where it is held), with the role or permission its holders must hold';
-- Privileges and ownership, as sql/privileges.sql gives them.
REVOKE ALL ON fluent.item_roles, fluent.item_role_actions, fluent.template_item_roles FROM PUBLIC;
REVOKE ALL ON SEQUENCE fluent.item_roles_item_role_id_seq FROM PUBLIC;
GRANT SELECT ON fluent.item_roles, fluent.item_role_actions, fluent.template_item_roles TO fluent_admin;
GRANT INSERT, UPDATE, DELETE ON fluent.item_roles, fluent.item_role_actions TO fluent_admin;
GRANT USAGE ON SEQUENCE fluent.item_roles_item_role_id_seq TO fluent_admin;
REVOKE ALL ON FUNCTION fluent._load_item_roles(int), fluent._load_member_teams(int, bigint), fluent._load_team_members(int, text[]),
    fluent.rls_items_support(internal), fluent.rls_item_roles_support(internal), fluent.rls_teams_support(internal),
    fluent.rls_assignable_support(internal), fluent.rls_items(text, text, text), fluent.rls_item_roles(text, text, text),
    fluent.rls_user_teams(), fluent.rls_assignable_item_roles(text, text), fluent._item_role_id(text, text),
    @extschema@.fluent_create_item_role(text, text, text[], text, text, text, text), @extschema@.fluent_drop_item_role(text, text),
    fluent._check_assignment(text, text, text, text, regclass), fluent._audit_assignment(text, text, text, text, jsonb, jsonb),
    fluent._assigned_item_actions(text, text), fluent._open_item_actions(text), fluent._load_assignment_tables(),
    fluent._load_item_modules(), fluent._has_rows(oid),
    fluent._item_foreign_keys(fluent.protected_tables), fluent._has_item_foreign_key(regclass, name, regclass, name, boolean),
    fluent._check_item_assignment(), fluent._check_item_owner(),
    fluent._check_item_parent(), fluent._item_triggers(fluent.protected_tables),
    fluent._install_item_triggers(regclass, fluent.protected_tables, boolean), fluent._item_trigger_problems(fluent.protected_tables),
    fluent._item_roles_within_powers(text, text, text, text, text[]), fluent._open_item_role_names(text),
    fluent._scope_rows_sql(fluent.protected_tables, text, text), fluent._item_rows_sql(fluent.protected_tables, text, text),
    fluent._write_check_sql(fluent.protected_tables, text, text, boolean),
    @extschema@.fluent_protect(regclass, text, name, regclass, name, name, name, name, text, text, text, text, name, name, regclass, name),
    fluent._row_lookup(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent.rls_items(text, text, text), fluent.rls_item_roles(text, text, text), fluent.rls_user_teams(),
    fluent.rls_assignable_item_roles(text, text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._item_role_id(text, text),
    @extschema@.fluent_create_item_role(text, text, text[], text, text, text, text), @extschema@.fluent_drop_item_role(text, text),
    fluent._item_triggers(fluent.protected_tables), fluent._install_item_triggers(regclass, fluent.protected_tables, boolean),
    fluent._item_trigger_problems(fluent.protected_tables), fluent._item_roles_within_powers(text, text, text, text, text[]),
    fluent._item_foreign_keys(fluent.protected_tables), fluent._has_item_foreign_key(regclass, name, regclass, name, boolean),
    fluent._scope_rows_sql(fluent.protected_tables, text, text), fluent._item_rows_sql(fluent.protected_tables, text, text),
    fluent._write_check_sql(fluent.protected_tables, text, text, boolean),
    @extschema@.fluent_protect(regclass, text, name, regclass, name, name, name, name, text, text, text, text, name, name, regclass, name),
    fluent._row_lookup(regclass) TO fluent_admin;
GRANT EXECUTE ON FUNCTION fluent._check_item_assignment(), fluent._check_item_owner(), fluent._check_item_parent()
    TO fluent_admin;
GRANT SELECT ON fluent.template_item_roles, fluent.item_roles, fluent.item_role_actions TO fluent_reader;
GRANT EXECUTE ON FUNCTION fluent._scope_rows_sql(fluent.protected_tables, text, text),
    fluent._item_rows_sql(fluent.protected_tables, text, text),
    fluent._item_trigger_problems(fluent.protected_tables), fluent._item_triggers(fluent.protected_tables),
    fluent._item_foreign_keys(fluent.protected_tables), fluent._has_item_foreign_key(regclass, name, regclass, name, boolean)
    TO fluent_reader;
ALTER TABLE fluent.item_roles OWNER TO fluent_owner;
ALTER TABLE fluent.item_role_actions OWNER TO fluent_owner;
ALTER TABLE fluent.template_item_roles OWNER TO fluent_owner;
REVOKE ALL ON fluent.item_role_matrix FROM PUBLIC;
GRANT SELECT ON fluent.item_role_matrix TO fluent_admin;
GRANT SELECT ON fluent.item_role_matrix TO fluent_reader;
ALTER VIEW fluent.item_role_matrix OWNER TO fluent_owner;
GRANT EXECUTE ON FUNCTION fluent._load_item_roles(int), fluent._load_member_teams(int, bigint), fluent._load_team_members(int, text[]), fluent.rls_items_support(internal), fluent.rls_item_roles_support(internal), fluent.rls_teams_support(internal), fluent.rls_assignable_support(internal), fluent.rls_items(text, text, text), fluent.rls_item_roles(text, text, text), fluent.rls_user_teams(), fluent.rls_assignable_item_roles(text, text), fluent._item_role_id(text, text), fluent._check_assignment(text, text, text, text, regclass), fluent._audit_assignment(text, text, text, text, jsonb, jsonb), fluent._assigned_item_actions(text, text), fluent._open_item_actions(text), fluent._load_assignment_tables(), fluent._load_item_modules(), fluent._has_rows(oid), fluent._item_foreign_keys(fluent.protected_tables), fluent._has_item_foreign_key(regclass, name, regclass, name, boolean), fluent._check_item_assignment(), fluent._check_item_owner(), fluent._check_item_parent(), fluent._item_triggers(fluent.protected_tables), fluent._install_item_triggers(regclass, fluent.protected_tables, boolean), fluent._item_trigger_problems(fluent.protected_tables), fluent._item_roles_within_powers(text, text, text, text, text[]), fluent._open_item_role_names(text), fluent._scope_rows_sql(fluent.protected_tables, text, text), fluent._item_rows_sql(fluent.protected_tables, text, text), fluent._write_check_sql(fluent.protected_tables, text, text, boolean), fluent._row_lookup(regclass) TO fluent_owner;
-- pg_dump keeps the item roles (sql/catalog.sql).
SELECT pg_catalog.pg_extension_config_dump('fluent.item_roles', '');
SELECT pg_catalog.pg_extension_config_dump('fluent.item_role_actions', '');
SELECT pg_catalog.pg_extension_config_dump('fluent.item_roles_item_role_id_seq', '');
COMMENT ON FUNCTION @extschema@.fluent_protect(regclass, text, name, regclass, name, name, name, name, text, text, text, text,
                                                name, name, regclass, name) IS
    'Enables and forces row-level security on a table so that the module''s actions govern its commands: by default read SELECT, write INSERT and UPDATE, delete DELETE; with an assignment table (membership_role_column) or a parent table, item roles give their actions on the items where they are held';
COMMENT ON FUNCTION @extschema@.fluent_create_item_role(text, text, text[], text, text, text, text) IS
    'Defines an item role of a module: held on one item through an assignment table, it gives the actions named there; optionally it requires a role or a permission of whoever is assigned it';
COMMENT ON FUNCTION @extschema@.fluent_drop_item_role(text, text) IS
    'Drops an item role: assignments naming it give nothing';

-- Issue 19: invitations and the audit view
--
-- Restates sql/catalog.sql (status invited, users.invited_until), the Rust
-- functions that mint and redeem the authenticator's ticket
-- (src/delegation.rs), sql/admin.sql (fluent_set_user_status ends any
-- invitation; fluent_invite_user, fluent_accept_invitation), sql/views.sql
-- (fluent.invitations, fluent.workspace_audit_log) and their privileges,
-- owners and comments as sql/privileges.sql sets them.
--
-- The label is added in this script's transaction, where PostgreSQL refuses
-- to use it as a value (55P04): nothing below does. The constraint and the
-- views compare the status as text, and the PL/pgSQL bodies cast 'invited'
-- only when they run.
ALTER TYPE fluent.user_status ADD VALUE 'invited';
COMMENT ON TYPE fluent.user_status IS
    'active users get what their roles grant; ghost, disabled and invited users can own rows and be assigned but are granted nothing; invited users become active when they accept (fluent_accept_invitation)';
ALTER TABLE fluent.users ADD COLUMN invited_until timestamptz,
    ADD CONSTRAINT users_invited_until_check CHECK (invited_until IS NULL OR status::text = 'invited');
COMMENT ON COLUMN fluent.users.invited_until IS
    'An invited user''s invitation can be accepted (fluent_accept_invitation) until this instant (NULL: no expiry); NULL for every other status';

-- The ticket of fluent_accept_invitation (src/delegation.rs).
CREATE  FUNCTION fluent."_caller_chooses_identity"(
	"ticket" bigint /* Option < i64 > */
) RETURNS bool /* bool */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_caller_chooses_identity_wrapper';
CREATE  FUNCTION fluent."_identity_caller"() RETURNS bigint /* i64 */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_identity_caller_wrapper';

-- A status set by fluent_set_user_status ends any invitation.
CREATE OR REPLACE FUNCTION fluent._do_set_user_status(user_key text, status text, force boolean, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_users');
    uid bigint := fluent._visible_user_id(delegate, user_key);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(user_key) END;
    s fluent.user_status := fluent._user_status(status);
    staffed int[] := fluent._staffed_workspaces();
    administered text[] := fluent._administered_rights();
BEGIN
    PERFORM fluent._may_force(delegate, force);
    PERFORM fluent._not_self(delegate, user_key, 'status');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_user(delegate, uid);
    -- A status set here ends any invitation (setting invited makes one without an expiry).
    UPDATE fluent.users u SET status = s, invited_until = NULL WHERE u.user_id = uid AND u.status IS DISTINCT FROM s;
    -- Activating opens what the user holds: no more than the administrator's own.
    IF delegate IS NOT NULL THEN
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key), format('"%s"', user_key));
    END IF;
    PERFORM fluent._still_staffed(staffed, force);
    PERFORM fluent._still_administered(administered, force);
END $$;

-- Invites a new user (manage_users), or renews the invitation of a user who
-- is invited already (its expiry only). Returns when it expires (NULL: never).
CREATE FUNCTION fluent._do_invite_user(user_key text, display_name text, manager text, valid_for interval, ticket bigint)
RETURNS timestamptz
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_users');
    expiry timestamptz := now() + valid_for;
    existing fluent.users;
    manager_id bigint;
BEGIN
    PERFORM fluent._name(user_key, 'user');
    IF valid_for <= interval '0' THEN
        RAISE EXCEPTION 'a fluent invitation cannot be valid for %', valid_for
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass a positive interval, or NULL for an invitation that does not expire.';
    END IF;
    SELECT * INTO existing FROM fluent.users u WHERE u.user_key = _do_invite_user.user_key FOR UPDATE;
    IF NOT FOUND THEN
        manager_id := CASE WHEN manager IS NOT NULL THEN fluent._visible_user_id(delegate, manager) END;
        PERFORM fluent._not_my_reach(delegate, manager_id);
        PERFORM fluent._line_in_my_workspace(delegate, manager_id);
        INSERT INTO fluent.users (user_key, display_name, status, manager_id, invited_until)
        VALUES (user_key, display_name, 'invited', manager_id, expiry)
        ON CONFLICT ON CONSTRAINT users_user_key_key DO NOTHING;
        IF NOT FOUND THEN PERFORM fluent._duplicate('user', user_key); END IF;
        RETURN expiry;
    END IF;
    -- The user exists: only an invitation is renewed, as the administrator
    -- could manage the user (a user of other workspaces only is unknown).
    PERFORM fluent._visible_user_id(delegate, user_key);
    IF existing.status <> 'invited' THEN
        PERFORM fluent._duplicate('user', user_key);
    END IF;
    IF display_name IS NOT NULL OR manager IS NOT NULL THEN
        RAISE EXCEPTION 'fluent user "%" is invited already: inviting them again renews the invitation only', user_key
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass only the user key and valid_for; fluent_set_manager() changes the manager.';
    END IF;
    PERFORM fluent._in_my_workspace(delegate, existing.user_id);
    PERFORM fluent._may_touch_user(delegate, existing.user_id);
    UPDATE fluent.users u SET invited_until = expiry
     WHERE u.user_id = existing.user_id AND u.invited_until IS DISTINCT FROM expiry;
    RETURN expiry;
END $$;

-- Makes an invited user active while the invitation is open. Who may:
--   - the application's authenticator (a role with the privileges of
--     fluent_authenticator whose identity is not sealed, as for
--     fluent_set_user: the application verified the invitee, e.g. through
--     the invitation link, as it verifies everyone it chooses as acting user);
--   - a DBA;
--   - a delegated administrator holding manage_users, under the rules of
--     fluent_set_user_status (activating opens no more than their own powers).
-- Only users with status invited and an open invitation: an expired one
-- raises 28000, any other status 55000, so nobody activates ghost or
-- disabled users this way. (A DBA or delegated administrator may still
-- activate anyone with fluent_set_user_status.)
CREATE FUNCTION fluent._do_accept_invitation(user_key text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    chooser boolean := fluent._caller_chooses_identity(ticket);
    caller oid := fluent._take_caller(ticket);
    delegate text;
    target fluent.users;
    powers jsonb;
    before jsonb;
BEGIN
    IF NOT (chooser OR fluent._is_dba(caller)) THEN
        delegate := fluent._acting_user();
        IF delegate IS NULL OR NOT fluent._holds_right(delegate, 'manage_users') THEN
            RAISE EXCEPTION 'permission denied to accept fluent invitations' USING ERRCODE = 'insufficient_privilege',
                HINT = 'Invitations are accepted through the application''s authenticator (fluent_authenticator, before it chooses the acting user), by a DBA, or by an acting end user who holds the right manage_users (fluent.admin_rights).';
        END IF;
    END IF;
    SELECT * INTO target FROM fluent.users u WHERE u.user_id = fluent._visible_user_id(delegate, _do_accept_invitation.user_key) FOR UPDATE;
    IF target.status <> 'invited' THEN
        RAISE EXCEPTION 'fluent user "%" has no invitation to accept: they are %', user_key, target.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only invited users accept invitations (fluent_invite_user); fluent_set_user_status() changes other statuses.';
    END IF;
    IF NOT fluent._in_force(target.invited_until) THEN
        RAISE EXCEPTION 'the invitation of fluent user "%" expired at %', user_key, target.invited_until
            USING ERRCODE = 'invalid_authorization_specification',
                  HINT = 'An administrator renews it with fluent_invite_user(user, valid_for => ...).';
    END IF;
    IF delegate IS NOT NULL THEN
        PERFORM fluent._in_my_workspace(delegate, target.user_id);
        PERFORM fluent._may_touch_user(delegate, target.user_id);
        powers := fluent._user_scope_map(delegate);
        before := fluent._user_scope_map(user_key);
    END IF;
    UPDATE fluent.users u SET status = 'active', invited_until = NULL WHERE u.user_id = target.user_id;
    -- Activating opens what the user holds: no more than the administrator's own.
    IF delegate IS NOT NULL THEN
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key), format('"%s"', user_key));
    END IF;
END $$;

CREATE FUNCTION @extschema@.fluent_invite_user(user_key text, display_name text DEFAULT NULL, manager text DEFAULT NULL,
                                               valid_for interval DEFAULT interval '7 days') RETURNS timestamptz
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_invite_user(user_key, display_name, manager, valid_for, fluent._caller());
END;
CREATE FUNCTION @extschema@.fluent_accept_invitation(user_key text) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_accept_invitation(user_key, fluent._identity_caller());
END;

-- Seed 000, "Inviting users", for the access review: every invited user,
-- open or expired, once per workspace where they hold a role (workspace
-- NULL: none yet), with the roles waiting for them. (The status is compared
-- as text: see fluent.users.invited_until.)
CREATE VIEW fluent.invitations AS
SELECT w.name AS workspace, u.user_key, u.display_name, m.user_key AS manager, u.created_at, u.invited_until,
       NOT fluent._in_force(u.invited_until) AS expired,
       coalesce(array_agg(r.name ORDER BY r.name) FILTER (WHERE r.name IS NOT NULL), '{}') AS roles
  FROM fluent.users u
  LEFT JOIN fluent.users m ON m.user_id = u.manager_id
  LEFT JOIN fluent.grants g ON g.user_id = u.user_id
  LEFT JOIN fluent.roles r ON r.role_id = g.role_id
  LEFT JOIN fluent.workspaces w ON w.workspace_id = g.workspace_id
 WHERE u.status::text = 'invited'
 GROUP BY w.name, u.user_id, m.user_key;
COMMENT ON VIEW fluent.invitations IS
    'Invited users (status invited) per workspace where they hold a role (NULL: none yet): when invited, until when the invitation can be accepted (NULL: no expiry), whether it expired, and the roles waiting for them';

-- Seed 001, "View audit/access logs", as an application shows it to its
-- users: the entries of the current workspace, for an acting user who holds
-- audit_log.read there. At scope all, every such entry; at a narrower one
-- (own, direct, team alike), the entries of changes they made as acting
-- user and those about them (a row carrying their user_id: their grants,
-- overrides, team memberships and account). Besides the rows that carry the
-- workspace, it shows the changes to the accounts (fluent.users: creation,
-- status, manager, invitation, acceptance) of users who hold a role, an
-- override or a team membership in the workspace. Owned by the catalog
-- owner, so application roles read it without reading fluent.audit_log; a
-- security barrier, so their own conditions see only what it lets through.
-- The permission is a one-time filter and the scope, workspace and acting
-- user initplans: each is evaluated once per query, not per entry.
CREATE VIEW fluent.workspace_audit_log WITH (security_barrier) AS
SELECT a.audit_id, a.changed_at, a.acting_user, a.db_role, a.table_name, a.operation, a.before, a.after
  FROM fluent.audit_log a
 WHERE @extschema@.fluent_can('audit_log', 'read')
   AND (a.workspace_id = (SELECT w.workspace_id FROM fluent.workspaces w WHERE w.name = @extschema@.fluent_current_workspace())
        OR (a.workspace_id IS NULL AND a.table_name = 'users'
            AND (coalesce(a.after, a.before) ->> 'user_id')::bigint IN (
                SELECT g.user_id FROM fluent.grants g JOIN fluent.workspaces w ON w.workspace_id = g.workspace_id
                 WHERE w.name = @extschema@.fluent_current_workspace()
                UNION ALL
                SELECT o.user_id FROM fluent.overrides o JOIN fluent.workspaces w ON w.workspace_id = o.workspace_id
                 WHERE w.name = @extschema@.fluent_current_workspace()
                UNION ALL
                SELECT m.user_id FROM fluent.team_members m JOIN fluent.workspaces w ON w.workspace_id = m.workspace_id
                 WHERE w.name = @extschema@.fluent_current_workspace())))
   AND ((SELECT @extschema@.fluent_scope('audit_log', 'read')) = 'all'
        OR a.acting_user = (SELECT @extschema@.fluent_current_user())
        OR (coalesce(a.after, a.before) ->> 'user_id')::bigint =
           (SELECT u.user_id FROM fluent.users u WHERE u.user_key = @extschema@.fluent_current_user()));
COMMENT ON VIEW fluent.workspace_audit_log IS
    'The audit trail of the current workspace for the acting user, if they hold audit_log.read: at scope all every entry of the workspace (catalog changes, and account changes of its users), at a narrower scope the changes they made and those about them; readable by every role';

-- Privileges, owners and comments, in the order sql/privileges.sql gives them.
REVOKE ALL ON FUNCTION fluent._do_invite_user(text, text, text, interval, bigint), fluent._do_accept_invitation(text, bigint),
    @extschema@.fluent_invite_user(text, text, text, interval), @extschema@.fluent_accept_invitation(text),
    fluent._identity_caller(), fluent._caller_chooses_identity(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._do_invite_user(text, text, text, interval, bigint), fluent._do_accept_invitation(text, bigint) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.fluent_invite_user(text, text, text, interval), @extschema@.fluent_accept_invitation(text),
    fluent._identity_caller() TO fluent_admin;
REVOKE ALL ON fluent.invitations, fluent.workspace_audit_log FROM PUBLIC;
GRANT SELECT ON fluent.invitations, fluent.workspace_audit_log TO fluent_admin;
ALTER FUNCTION fluent._do_invite_user(text, text, text, interval, bigint) OWNER TO fluent_owner;
ALTER FUNCTION fluent._do_accept_invitation(text, bigint) OWNER TO fluent_owner;
GRANT EXECUTE ON FUNCTION fluent._identity_caller(), fluent._caller_chooses_identity(bigint) TO fluent_owner;
ALTER VIEW fluent.invitations OWNER TO fluent_owner;
ALTER VIEW fluent.workspace_audit_log OWNER TO fluent_owner;
GRANT EXECUTE ON FUNCTION @extschema@.fluent_invite_user(text, text, text, interval), @extschema@.fluent_accept_invitation(text),
    fluent._identity_caller() TO PUBLIC;
GRANT SELECT ON fluent.workspace_audit_log TO PUBLIC;
GRANT SELECT ON fluent.invitations TO fluent_reader;
COMMENT ON FUNCTION @extschema@.fluent_can(text, text, text) IS
    'Whether the user may perform the action on the module (at any scope) in the current workspace; false for NULL, unknown, ghost, disabled and invited users';
COMMENT ON FUNCTION @extschema@.fluent_set_user_status(text, text, boolean) IS 'Sets a user''s status: active, ghost, disabled or invited (without an expiry); ends any invitation';
COMMENT ON FUNCTION @extschema@.fluent_invite_user(text, text, text, interval) IS
    'Creates an invited user (granted nothing and unable to act until they accept), or renews the invitation of one; returns when the invitation expires (NULL: never)';
COMMENT ON FUNCTION @extschema@.fluent_accept_invitation(text) IS
    'Makes an invited user with an open invitation active; for the application''s authenticator (before it chooses the acting user), DBAs and delegated administrators holding manage_users';

-- Issue 19: the invitations' versions of these two functions (above) with
-- the item roles' rule for delegated administrators (sql/admin.sql).
CREATE OR REPLACE FUNCTION fluent._do_set_user_status(user_key text, status text, force boolean, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_users');
    uid bigint := fluent._visible_user_id(delegate, user_key);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(user_key) END;
    s fluent.user_status := fluent._user_status(status);
    staffed int[] := fluent._staffed_workspaces();
    administered text[] := fluent._administered_rights();
BEGIN
    PERFORM fluent._may_force(delegate, force);
    PERFORM fluent._not_self(delegate, user_key, 'status');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_user(delegate, uid);
    -- An invitation accepted opens what the user holds without the checks
    -- of an activation: a delegated administrator invites new users
    -- (fluent_invite_user), and does not turn others into invitees.
    IF delegate IS NOT NULL AND s = 'invited' AND (SELECT u.status FROM fluent.users u WHERE u.user_id = uid) <> 'invited' THEN
        RAISE EXCEPTION 'fluent user "%" may not turn "%" into an invitee', delegate, user_key
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Invite new users with fluent_invite_user(); activate others with status active, within your powers.';
    END IF;
    -- A status set here ends any invitation (setting invited makes one without an expiry).
    UPDATE fluent.users u SET status = s, invited_until = NULL WHERE u.user_id = uid AND u.status IS DISTINCT FROM s;
    -- Activating opens what the user holds: no more than the administrator's own.
    IF delegate IS NOT NULL THEN
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key), format('"%s"', user_key));
        IF s = 'active' THEN
            PERFORM fluent._item_roles_within_powers(delegate, format('activate "%s"', user_key), user_key, NULL);
        END IF;
    END IF;
    PERFORM fluent._still_staffed(staffed, force);
    PERFORM fluent._still_administered(administered, force);
END $$;

-- Makes an invited user active while the invitation is open. Who may:
--   - the application's authenticator (a role with the privileges of
--     fluent_authenticator whose identity is not sealed, as for
--     fluent_set_user: the application verified the invitee, e.g. through
--     the invitation link, as it verifies everyone it chooses as acting user);
--   - a DBA;
--   - a delegated administrator holding manage_users, under the rules of
--     fluent_set_user_status (activating opens no more than their own powers).
-- Only users with status invited and an open invitation: an expired one
-- raises 28000, any other status 55000, so nobody activates ghost or
-- disabled users this way. (A DBA or delegated administrator may still
-- activate anyone with fluent_set_user_status.)
CREATE OR REPLACE FUNCTION fluent._do_accept_invitation(user_key text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    chooser boolean := fluent._caller_chooses_identity(ticket);
    caller oid := fluent._take_caller(ticket);
    delegate text;
    target fluent.users;
    powers jsonb;
    before jsonb;
BEGIN
    IF NOT (chooser OR fluent._is_dba(caller)) THEN
        delegate := fluent._acting_user();
        IF delegate IS NULL OR NOT fluent._holds_right(delegate, 'manage_users') THEN
            RAISE EXCEPTION 'permission denied to accept fluent invitations' USING ERRCODE = 'insufficient_privilege',
                HINT = 'Invitations are accepted through the application''s authenticator (fluent_authenticator, before it chooses the acting user), by a DBA, or by an acting end user who holds the right manage_users (fluent.admin_rights).';
        END IF;
    END IF;
    SELECT * INTO target FROM fluent.users u WHERE u.user_id = fluent._visible_user_id(delegate, _do_accept_invitation.user_key) FOR UPDATE;
    IF target.status <> 'invited' THEN
        RAISE EXCEPTION 'fluent user "%" has no invitation to accept: they are %', user_key, target.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only invited users accept invitations (fluent_invite_user); fluent_set_user_status() changes other statuses.';
    END IF;
    IF NOT fluent._in_force(target.invited_until) THEN
        RAISE EXCEPTION 'the invitation of fluent user "%" expired at %', user_key, target.invited_until
            USING ERRCODE = 'invalid_authorization_specification',
                  HINT = 'An administrator renews it with fluent_invite_user(user, valid_for => ...).';
    END IF;
    IF delegate IS NOT NULL THEN
        PERFORM fluent._in_my_workspace(delegate, target.user_id);
        PERFORM fluent._may_touch_user(delegate, target.user_id);
        powers := fluent._user_scope_map(delegate);
        before := fluent._user_scope_map(user_key);
    END IF;
    UPDATE fluent.users u SET status = 'active', invited_until = NULL WHERE u.user_id = target.user_id;
    -- Activating opens what the user holds: no more than the administrator's own.
    IF delegate IS NOT NULL THEN
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key), format('"%s"', user_key));
        PERFORM fluent._item_roles_within_powers(delegate, format('accept the invitation of "%s"', user_key), user_key, NULL);
    END IF;
END $$;

-- Issue 20: a new role drops nothing: writes to fluent.roles log the role
-- (its holders), or the workspace where a sign-in role is involved.
-- Logs what a write can change in the caches (fluent.changes): the
-- argument says what the table's rows stand for. Security definer: DBAs
-- write the catalog, but only the catalog owner writes the log.
CREATE OR REPLACE FUNCTION fluent._log_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    kind text := TG_ARGV[0];
    rows jsonb := '[]';
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO fluent.changes (workspace_id, kind) VALUES (NULL, 'workspace');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        rows := rows || coalesce((SELECT jsonb_agg(to_jsonb(n)) FROM new_rows n), '[]');
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        rows := rows || coalesce((SELECT jsonb_agg(to_jsonb(o)) FROM old_rows o), '[]');
    END IF;
    -- A role drops its holders (a new role has none); a sign-in role, made,
    -- changed or dropped, decides whether everyone else may act: the
    -- workspace.
    INSERT INTO fluent.changes (workspace_id, kind, id)
    SELECT DISTINCT (r ->> 'workspace_id')::int, k.kind,
           CASE k.kind WHEN 'user' THEN (r ->> 'user_id')::bigint WHEN 'role' THEN (r ->> 'role_id')::bigint END
      FROM jsonb_array_elements(rows) r
     CROSS JOIN LATERAL (SELECT CASE WHEN TG_TABLE_NAME = 'roles' AND (r ->> 'grants_sign_in')::boolean
                                     THEN 'workspace' ELSE kind END) k (kind);
    -- A user's manager is their place in every workspace's reporting line.
    IF TG_TABLE_NAME = 'users' THEN
        INSERT INTO fluent.changes (workspace_id, kind) VALUES (NULL, 'teams');
    END IF;
    -- Entries no backend can still need; those that looked earlier drop all.
    WITH pruned AS (
        DELETE FROM fluent.changes c WHERE c.at < now() - interval '10 minutes' RETURNING c.xid
    )
    UPDATE fluent.change_horizon h SET pruned_below = (SELECT max(xid) FROM pruned)
     WHERE EXISTS (SELECT 1 FROM pruned) AND h.pruned_below < (SELECT max(xid) FROM pruned);
    RETURN NULL;
END $$;

-- Issue 20: every change drops only what it changes. Modules, actions,
-- requirements, administrative rights and item roles log their workspace's
-- model (loaded again, its role sets resolved again, its users kept).
ALTER TABLE fluent.changes DROP CONSTRAINT changes_kind_check;
ALTER TABLE fluent.changes ADD CONSTRAINT changes_kind_check
    CHECK (kind IN ('user', 'role', 'workspace', 'teams', 'model'));
COMMENT ON TABLE fluent.changes IS
    'Which cached users (id = user_id), compiled roles (id = role_id), workspace models (kind model), workspaces and team sets each catalog write can affect; NULL workspace_id: every workspace';

DO $$
DECLARE
    t text;
    kind text;
    op text;
BEGIN
    FOR t, kind IN VALUES ('roles', 'role'), ('modules', 'model'), ('actions', 'model'),
                          ('requirements', 'model'), ('admin_rights', 'model'), ('item_roles', 'model'),
                          ('item_role_actions', 'model')
    LOOP
        FOREACH op IN ARRAY ARRAY['INSERT', 'UPDATE', 'DELETE'] LOOP
            EXECUTE format('DROP TRIGGER log_changes_%s ON fluent.%I', lower(op), t);
            EXECUTE format('CREATE TRIGGER log_changes_%s AFTER %s ON fluent.%I REFERENCING %s
                            FOR EACH STATEMENT EXECUTE FUNCTION fluent._log_changes(%L)',
                           lower(op), op, t,
                           CASE op WHEN 'INSERT' THEN 'NEW TABLE AS new_rows'
                                   WHEN 'UPDATE' THEN 'OLD TABLE AS old_rows NEW TABLE AS new_rows'
                                   ELSE 'OLD TABLE AS old_rows' END, kind);
        END LOOP;
        EXECUTE format('DROP TRIGGER log_changes_truncate ON fluent.%I', t);
        EXECUTE format('CREATE TRIGGER log_changes_truncate AFTER TRUNCATE ON fluent.%I
                        FOR EACH STATEMENT EXECUTE FUNCTION fluent._log_changes(%L)', t, kind);
    END LOOP;
END
$$;

-- Issue 20: this backend's cache, counted (how precisely changes are
-- invalidated shows in how few loads follow them).
CREATE FUNCTION fluent."cache_statistics"() RETURNS TABLE (
	"cached_users" bigint,  /* i64 */
	"user_loads" bigint,  /* i64 */
	"model_loads" bigint  /* i64 */
)
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', 'cache_statistics_wrapper';
COMMENT ON FUNCTION fluent.cache_statistics() IS
             'This backend''s permission cache: the users it holds, and how many users and workspace models it has loaded since it started (each load is one catalog query; a change loads again only what it changes)';
REVOKE ALL ON FUNCTION fluent.cache_statistics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent.cache_statistics() TO fluent_admin, fluent_owner;

-- Issue 20: comments that left out scope direct and the source requirement
-- (restated as sql/privileges.sql, sql/views.sql and sql/catalog.sql now
-- have them).
COMMENT ON FUNCTION @extschema@.fluent_scope(text, text, text) IS
    'The scope (none, own, direct, team, all) the user has on the module''s action in the current workspace';
COMMENT ON FUNCTION @extschema@.fluent_set_permission(text, text, text, text) IS
    'Sets the scope (none, own, direct, team, all) a role has on a module''s action';
COMMENT ON VIEW fluent.effective_permissions IS
    'What each user holding a role or override in a workspace may do: one row per (workspace, user, module, action) with the effective scope and its source (roles, override, module_disabled, requirement, user_status, sign_in or no_role), the roles that give it and any override';
COMMENT ON TABLE fluent.teams IS 'Teams of a workspace; their leads reach the rows of every member at scopes direct and team';

-- Issue 20: a delegated administrator refused a right no permission gives
-- in the workspace is told so (the aggregate over no row made the hint
-- "scope all on  in workspace ..." instead of its fallback).
CREATE OR REPLACE FUNCTION fluent._authorize(ticket bigint, p_right fluent.admin_right) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    caller oid := fluent._take_caller(ticket);
    acting text := fluent._acting_user();
BEGIN
    IF fluent._is_dba(caller) THEN
        RETURN NULL;
    END IF;
    IF acting IS NULL THEN
        RAISE EXCEPTION 'permission denied to administer fluent' USING ERRCODE = 'insufficient_privilege',
            HINT = format('Administration needs a superuser, a member of fluent_admin, or an acting end user who holds the right %s (fluent.admin_rights).', p_right);
    END IF;
    IF NOT fluent._holds_right(acting, p_right::text) THEN
        RAISE EXCEPTION 'fluent user "%" lacks the administrative right %', acting, p_right
            USING ERRCODE = 'insufficient_privilege',
                  HINT = coalesce(
                      (SELECT format('The right %s comes with scope all on %s in workspace "%s".', p_right,
                                     string_agg(m.name || '.' || a.name, ' or ' ORDER BY m.name, a.name),
                                     fluent._workspace_name())
                         FROM fluent.admin_rights ar
                         JOIN fluent.actions a ON a.action_id = ar.action_id
                         JOIN fluent.modules m ON m.module_id = a.module_id
                        WHERE ar.workspace_id = fluent._workspace_id() AND ar.admin_right = p_right
                       HAVING count(*) > 0),
                      format('No permission gives the right %s in this workspace; a DBA sets one with fluent_set_admin_right().', p_right));
    END IF;
    RETURN acting;
END $$;

-- Issue 20: a role that changes is compiled again alone (p_role_ids; NULL:
-- every role of the workspace).
DROP FUNCTION fluent._load_roles(int);
-- The roles p_role_ids of a workspace (NULL: every role) with their explicit
-- permissions, compiled once per workspace and again when they change
-- (src/cache.rs); a role without permissions has one row with a NULL action.
CREATE FUNCTION fluent._load_roles(p_workspace_id int, p_role_ids int[])
RETURNS TABLE (role_id int, grants_sign_in boolean, action_id int, scope text, name text, template text,
               template_role text)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT r.role_id, r.grants_sign_in, p.action_id, p.scope::text, r.name, r.template, r.template_role
      FROM fluent.roles r
      LEFT JOIN fluent.permissions p ON p.role_id = r.role_id
     WHERE r.workspace_id = p_workspace_id AND (p_role_ids IS NULL OR r.role_id = ANY (p_role_ids))
     ORDER BY r.role_id;
END;
REVOKE ALL ON FUNCTION fluent._load_roles(int, int[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._load_roles(int, int[]) TO fluent_owner;

-- Issue 20: a look at the change log reads only what the previous look's
-- snapshot did not see, however long another transaction keeps the xmin back.
DROP FUNCTION fluent._load_changes(text);
-- What changed that snapshot p_seen did not see (src/cache.rs): the entries
-- of transactions that committed after the reader's previous look, and only
-- those, however long another transaction keeps the xmin back, and the
-- reader's own transaction's, which its snapshots see as it writes them;
-- none for a NULL p_seen (a first look). With the pruning horizon and the snapshot this
-- look reads with (the next one's p_seen).
CREATE FUNCTION fluent._load_changes(p_seen text)
RETURNS TABLE (workspace_id int, kind text, id bigint, pruned_below text, seen text)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT c.workspace_id, c.kind, c.id, h.pruned_below::text, pg_current_snapshot()::text
      FROM fluent.change_horizon h
      LEFT JOIN fluent.changes c ON c.xid >= pg_snapshot_xmin(p_seen::pg_snapshot)
                                AND (NOT pg_visible_in_snapshot(c.xid, p_seen::pg_snapshot)
                                     OR c.xid = pg_current_xact_id_if_assigned());
END;
REVOKE ALL ON FUNCTION fluent._load_changes(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._load_changes(text) TO fluent_owner;

-- Issue 20: fluent.effective_permissions at scale. The view joins the
-- holders, each with their profile (workspace, active or not, roles,
-- overrides), to the decisions, made once per profile (src/effective.rs), in
-- place of one set-returning function that built every row; a filter on one
-- user or one module reaches the two functions through a planner hook.
CREATE FUNCTION fluent."_effective_support"(
	"request" internal /* Internal */
) RETURNS internal /* Internal */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_effective_support_wrapper';
CREATE FUNCTION fluent."_effective_holders"(
	"for_user" TEXT /* Option < & str > */
) RETURNS TABLE (
	"profile" INT,  /* i32 */
	"user_key" TEXT,  /* String */
	"user_status" TEXT  /* String */
)
STABLE PARALLEL RESTRICTED SUPPORT fluent."_effective_support"
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_effective_holders_wrapper';
CREATE FUNCTION fluent."_effective_profiles"(
	"for_user" TEXT, /* Option < & str > */
	"for_module" TEXT /* Option < & str > */
) RETURNS TABLE (
	"profile" INT,  /* i32 */
	"workspace" TEXT,  /* String */
	"module" TEXT,  /* String */
	"action" TEXT,  /* String */
	"scope" TEXT,  /* String */
	"source" TEXT,  /* String */
	"roles" TEXT[],  /* :: std :: option :: Option < Vec < String > > */
	"override_scope" TEXT,  /* Option < String > */
	"module_enabled" bool  /* bool */
)
STABLE PARALLEL RESTRICTED SUPPORT fluent."_effective_support"
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_effective_profiles_wrapper';
REVOKE ALL ON FUNCTION fluent._effective_support(internal), fluent._effective_holders(text),
    fluent._effective_profiles(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._effective_holders(text), fluent._effective_profiles(text, text)
    TO fluent_admin, fluent_reader;
GRANT EXECUTE ON FUNCTION fluent._effective_support(internal), fluent._effective_holders(text),
    fluent._effective_profiles(text, text) TO fluent_owner;
CREATE OR REPLACE VIEW fluent.effective_permissions AS
SELECT p.workspace, h.user_key, p.module, p.action, p.scope::fluent.scope AS scope, p.source, p.roles,
       p.override_scope::fluent.scope AS override, p.module_enabled, h.user_status::fluent.user_status AS user_status
  FROM fluent._effective_holders(NULL) h
  JOIN fluent._effective_profiles(NULL, NULL) p ON p.profile = h.profile;
DROP FUNCTION fluent._effective_permissions();
-- Issue 20: the reporting-line walk written once, fluent._reporting_line
-- (sql/loaders.sql), for the loaders, fluent.reporting_lines (whose rows
-- come from a SECURITY DEFINER function, as a function a view calls runs
-- with the reader's rights) and the delegation checks of sql/admin.sql.

-- The reporting line, walked through fluent.users.manager_id for every use
-- of it (the loaders below, fluent.reporting_lines, the delegation checks of
-- sql/admin.sql): from each user of p_user_ids, up to the managers above
-- them (p_up) or down to the users below them, each with their key. Each
-- user comes first themselves, at depth 0; depth 1 is their manager or
-- their direct reports, and so on, to at most p_levels levels. With
-- p_levels NULL the walk goes to the end of the line without counting
-- (depth NULL but for the user themselves), and so ends even on a cycle,
-- which fluent._check_tree refuses but a restore without triggers could
-- bring back.
-- Callers pass p_up as a constant: the planner inlines the function and
-- keeps the one join of that direction, on the primary key going up and on
-- users_manager_id_idx going down.
CREATE FUNCTION fluent._reporting_line(p_user_ids bigint[], p_up boolean, p_levels int)
RETURNS TABLE (user_id bigint, line_user_id bigint, line_user_key text, depth int)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    WITH RECURSIVE line (user_id, line_user_id, line_user_key, line_manager_id, depth) AS (
        SELECT u.user_id, u.user_id, u.user_key, u.manager_id, 0 FROM fluent.users u WHERE u.user_id = ANY (p_user_ids)
        UNION
        SELECT l.user_id, u.user_id, u.user_key, u.manager_id, CASE WHEN p_levels IS NOT NULL THEN l.depth + 1 END
          FROM line l
          JOIN fluent.users u ON CASE WHEN p_up THEN u.user_id = l.line_manager_id ELSE u.manager_id = l.line_user_id END
         WHERE p_levels IS NULL OR l.depth < p_levels
    )
    SELECT l.user_id, l.line_user_id, l.line_user_key, l.depth FROM line l;
END;

-- The inverse of _load_team for the users keyed p_keys: who reaches them
-- through scope direct or team. Each manager above one (depth 1 is their
-- manager, whom `direct` reaches through; any depth, `team`), and each lead
-- of a team of this workspace they are in (both scopes).
CREATE OR REPLACE FUNCTION fluent._load_reachers(p_workspace_id int, p_keys text[])
RETURNS TABLE (user_key text, reached text, relation text, depth int)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT l.line_user_key, t.user_key, 'manager', l.depth
      FROM fluent.users t
     CROSS JOIN LATERAL fluent._reporting_line(ARRAY[t.user_id], true, 64) l
     WHERE t.user_key = ANY (p_keys) AND l.depth > 0
    UNION ALL
    SELECT u.user_key, t.user_key, 'team lead', 1
      FROM fluent.users t
      JOIN fluent.team_members m ON m.user_id = t.user_id AND m.workspace_id = p_workspace_id
      JOIN fluent.team_members l ON l.team_id = m.team_id AND l.is_lead
      JOIN fluent.users u ON u.user_id = l.user_id
     WHERE t.user_key = ANY (p_keys)
     ORDER BY 3, 4, 1;
END;

-- The users whose rows scope `team` adds: members of the teams the user leads
-- in this workspace, and everyone below the user in the reporting line.
-- With p_direct, one level of the reporting line only (scope `direct`).
CREATE OR REPLACE FUNCTION fluent._load_team(p_workspace_id int, p_user_id bigint, p_direct boolean)
RETURNS TABLE (user_key text)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT r.user_key
      FROM (SELECT l.line_user_id AS user_id, l.line_user_key AS user_key
              FROM fluent._reporting_line(ARRAY[p_user_id], false, CASE WHEN p_direct THEN 1 END) l
            UNION
            SELECT u.user_id, u.user_key
              FROM fluent.team_members l
              JOIN fluent.team_members m ON m.team_id = l.team_id
              JOIN fluent.users u ON u.user_id = m.user_id
             WHERE l.user_id = p_user_id AND l.is_lead AND l.workspace_id = p_workspace_id) r
     WHERE r.user_id <> p_user_id
     ORDER BY r.user_key;
END;

-- A delegated administrator never becomes the manager, direct or above, of
-- someone they did not already reach: that would widen their own scope team.
CREATE OR REPLACE FUNCTION fluent._not_my_reach(delegate text, p_manager bigint) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF delegate IS NOT NULL AND p_manager IS NOT NULL AND EXISTS (
        SELECT 1 FROM fluent._reporting_line(ARRAY[p_manager], true, NULL) l WHERE l.line_user_key = delegate) THEN
        PERFORM fluent._refuse(format('fluent user "%s" may not place users in their own reporting line', delegate),
                               'Another administrator, or a DBA, must make this change.');
    END IF;
END $$;

-- A manager's reporting line is theirs in every workspace: a delegated
-- administrator places users only under managers whose line, up to the top,
-- belongs to no other workspace, whose team scope there they cannot judge.
CREATE OR REPLACE FUNCTION fluent._line_in_my_workspace(delegate text, p_manager bigint) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF delegate IS NOT NULL AND p_manager IS NOT NULL AND EXISTS (
        SELECT 1 FROM fluent._reporting_line(ARRAY[p_manager], true, NULL) l WHERE fluent._belongs(l.line_user_id, true)) THEN
        PERFORM fluent._refuse(format('the reporting line of fluent user "%s" reaches users of another workspace',
                                      (SELECT u.user_key FROM fluent.users u WHERE u.user_id = p_manager)),
                               'Delegated administrators extend reporting lines of their own workspace only; a DBA can make this change.');
    END IF;
END $$;

-- Seed 003: each user's reporting line in each workspace where they hold a
-- role: their manager, how many managers are above them, and the nearest
-- active one above who holds a reporting-anchor role there (fluid: the
-- accountable executive), for reports on missing forecasts and timesheets.
-- The walk up the line is fluent._reporting_line (sql/loaders.sql), once
-- for all members. A function a view calls runs with the rights of whoever
-- reads the view, who may not read the catalog: so the rows come from this
-- SECURITY DEFINER function, which runs as the catalog owner and only the
-- view's readers may execute (sql/privileges.sql).
CREATE FUNCTION fluent._reporting_lines()
RETURNS TABLE (workspace text, user_key text, manager text, depth bigint, reporting_anchor text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH members AS (
        SELECT DISTINCT g.workspace_id, g.user_id FROM fluent.grants g WHERE fluent._in_force(g.valid_until)
    ), up AS (
        SELECT l.user_id, l.line_user_id AS above, l.line_user_key AS above_key, l.depth
          FROM (SELECT array_agg(DISTINCT m.user_id) AS ids FROM members m) s
         CROSS JOIN LATERAL fluent._reporting_line(s.ids, true, 64) l
         WHERE l.depth > 0
    ), anchors AS (
        SELECT DISTINCT ON (m.workspace_id, m.user_id) m.workspace_id, m.user_id, up.above_key
          FROM members m
          JOIN up ON up.user_id = m.user_id
          JOIN fluent.users a ON a.user_id = up.above
         WHERE a.status = 'active'
           AND EXISTS (SELECT 1 FROM fluent.grants g JOIN fluent.roles r ON r.role_id = g.role_id
                        WHERE g.user_id = a.user_id AND g.workspace_id = m.workspace_id AND r.reporting_anchor
                          AND fluent._in_force(g.valid_until))
         ORDER BY m.workspace_id, m.user_id, up.depth
    )
    SELECT w.name, u.user_key, mgr.user_key, coalesce(d.depth, 0), x.above_key
      FROM members m
      JOIN fluent.workspaces w ON w.workspace_id = m.workspace_id
      JOIN fluent.users u ON u.user_id = m.user_id
      LEFT JOIN fluent.users mgr ON mgr.user_id = u.manager_id
      LEFT JOIN (SELECT up.user_id, count(*) AS depth FROM up GROUP BY up.user_id) d ON d.user_id = m.user_id
      LEFT JOIN anchors x ON x.workspace_id = m.workspace_id AND x.user_id = m.user_id;
END;

CREATE OR REPLACE VIEW fluent.reporting_lines AS
SELECT r.workspace, r.user_key, r.manager, r.depth, r.reporting_anchor FROM fluent._reporting_lines() r;
REVOKE ALL ON FUNCTION fluent._reporting_line(bigint[], boolean, int), fluent._reporting_lines() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._reporting_line(bigint[], boolean, int), fluent._reporting_lines() TO fluent_admin;
GRANT EXECUTE ON FUNCTION fluent._reporting_lines() TO fluent_reader;
GRANT EXECUTE ON FUNCTION fluent._reporting_line(bigint[], boolean, int) TO fluent_owner;
ALTER FUNCTION fluent._reporting_lines() OWNER TO fluent_owner;

-- Issue 20: each delegable administration function from one declaration:
-- the implementations fluent._<name>(delegate, ...), and fluent._delegable,
-- which replaces the public functions (unchanged) and fluent._do_<name>
-- (which now authorize and run the implementation) and comments them. Only
-- the catalog owner runs the implementations; fluent_invite_user and
-- fluent_accept_invitation lose a redundant EXECUTE grant to fluent_admin.

-- Authorizes the caller of fluent_accept_invitation, as _authorize does the
-- others, from a ticket of fluent._identity_caller(): NULL for the
-- authenticator and for a DBA, else the acting end user, who must hold
-- `p_right`.
CREATE FUNCTION fluent._authorize_acceptance(ticket bigint, p_right fluent.admin_right) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    chooser boolean := fluent._caller_chooses_identity(ticket);
    caller oid := fluent._take_caller(ticket);
    acting text;
BEGIN
    IF chooser OR fluent._is_dba(caller) THEN
        RETURN NULL;
    END IF;
    acting := fluent._acting_user();
    IF acting IS NULL OR NOT fluent._holds_right(acting, p_right::text) THEN
        RAISE EXCEPTION 'permission denied to accept fluent invitations' USING ERRCODE = 'insufficient_privilege',
            HINT = format('Invitations are accepted through the application''s authenticator (fluent_authenticator, before it chooses the acting user), by a DBA, or by an acting end user who holds the right %s (fluent.admin_rights).', p_right);
    END IF;
    RETURN acting;
END $$;

CREATE FUNCTION fluent._create_role(delegate text, role text, description text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    new_id int;
BEGIN
    INSERT INTO fluent.roles (workspace_id, name, description)
    VALUES (fluent._workspace_id(), fluent._name(role, 'role'), description)
    ON CONFLICT (workspace_id, name) DO NOTHING
    RETURNING role_id INTO new_id;
    IF new_id IS NULL THEN PERFORM fluent._duplicate('role', role); END IF;
    PERFORM fluent._assignable_by_general_administrators(new_id);
END $$;

CREATE FUNCTION fluent._drop_role(delegate text, role text, force boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rid int := fluent._role_id(role);
    sign_in boolean := (SELECT r.grants_sign_in FROM fluent.roles r WHERE r.role_id = rid);
    staffed int[] := fluent._staffed_workspaces();
    administered text[] := fluent._administered_rights();
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    -- Dropping the last sign-in role lets everyone act.
    holders jsonb := CASE WHEN sign_in THEN fluent._holders_scope_maps(delegate, NULL) END;
    listed boolean := fluent._lists_assignable();
BEGIN
    PERFORM fluent._may_force(delegate, force);
    PERFORM fluent._may_touch_role(delegate, rid);
    PERFORM fluent._assignable_only(delegate, rid, 'drop');
    PERFORM fluent._privileged_only(delegate, sign_in, format('drop sign-in role "%s"', role));
    -- Its permissions and grants go with it (ON DELETE CASCADE).
    DELETE FROM fluent.roles WHERE role_id = rid;
    PERFORM fluent._holders_within_powers(delegate, powers, holders, NULL, role);
    PERFORM fluent._still_lists_assignable(delegate, listed);
    PERFORM fluent._still_staffed(staffed, force);
    PERFORM fluent._still_administered(administered, force);
END $$;

CREATE FUNCTION fluent._set_permission(delegate text, role text, module text, action text, scope text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rid int := fluent._role_id(role);
    aid int := fluent._action_id(module, action);
    s fluent.scope := fluent._scope(scope);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := fluent._role_scope_map(rid);
    holders jsonb := fluent._holders_scope_maps(delegate, rid);
    administered text[] := CASE WHEN delegate IS NOT NULL THEN fluent._administered_rights() END;
BEGIN
    PERFORM fluent._may_touch_role(delegate, rid);
    INSERT INTO fluent.permissions (workspace_id, role_id, action_id, scope)
    VALUES (fluent._workspace_id(), rid, aid, s)
    ON CONFLICT (role_id, action_id) DO UPDATE SET scope = EXCLUDED.scope
    WHERE permissions.scope IS DISTINCT FROM EXCLUDED.scope;
    PERFORM fluent._within_powers(delegate, powers, before, fluent._role_scope_map(rid), format('role "%s"', role));
    PERFORM fluent._holders_within_powers(delegate, powers, holders, rid, role);
    PERFORM fluent._still_administered(administered, delegate IS NULL);
END $$;

CREATE FUNCTION fluent._clear_permission(delegate text, role text, module text, action text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rid int := fluent._role_id(role);
    aid int := fluent._action_id(module, action);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := fluent._role_scope_map(rid);
    holders jsonb := fluent._holders_scope_maps(delegate, rid);
    administered text[] := CASE WHEN delegate IS NOT NULL THEN fluent._administered_rights() END;
BEGIN
    PERFORM fluent._may_touch_role(delegate, rid);
    -- Without its own setting the action inherits from the parent module again.
    DELETE FROM fluent.permissions WHERE role_id = rid AND action_id = aid;
    PERFORM fluent._within_powers(delegate, powers, before, fluent._role_scope_map(rid), format('role "%s"', role));
    PERFORM fluent._holders_within_powers(delegate, powers, holders, rid, role);
    PERFORM fluent._still_administered(administered, delegate IS NULL);
END $$;

CREATE FUNCTION fluent._alter_role(delegate text, role text, privileged boolean DEFAULT NULL, grants_sign_in boolean DEFAULT NULL,
                                   description text DEFAULT NULL, force boolean DEFAULT false,
                                   reporting_anchor boolean DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rid int := fluent._role_id(role);
    staffed int[] := fluent._staffed_workspaces();
    administered text[] := fluent._administered_rights();
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    -- A sign-in flag decides who acts: setting it opens the holders' other
    -- roles, unsetting the last one lets everyone act.
    holders jsonb := CASE WHEN _alter_role.grants_sign_in <> (SELECT r.grants_sign_in FROM fluent.roles r WHERE r.role_id = rid)
                          THEN fluent._holders_scope_maps(delegate, NULL) END;
BEGIN
    PERFORM fluent._may_force(delegate, force);
    -- Who is privileged and who may sign in decide who can act at all.
    PERFORM fluent._privileged_only(delegate,
        EXISTS (SELECT 1 FROM fluent.roles r WHERE r.role_id = rid
                   AND (r.privileged IS DISTINCT FROM coalesce(_alter_role.privileged, r.privileged)
                        OR r.grants_sign_in IS DISTINCT FROM coalesce(_alter_role.grants_sign_in, r.grants_sign_in))),
        format('change whether role "%s" is privileged or lets users sign in', role));
    PERFORM fluent._may_touch_role(delegate, rid);
    -- NULL leaves a property as it is.
    UPDATE fluent.roles r
       SET privileged = n.privileged, grants_sign_in = n.grants_sign_in, description = n.description,
           reporting_anchor = n.reporting_anchor
      FROM (SELECT coalesce(_alter_role.privileged, o.privileged) AS privileged,
                   coalesce(_alter_role.grants_sign_in, o.grants_sign_in) AS grants_sign_in,
                   coalesce(_alter_role.description, o.description) AS description,
                   coalesce(_alter_role.reporting_anchor, o.reporting_anchor) AS reporting_anchor
              FROM fluent.roles o WHERE o.role_id = rid) n
     WHERE r.role_id = rid
       AND (r.privileged, r.grants_sign_in, r.description, r.reporting_anchor)
           IS DISTINCT FROM (n.privileged, n.grants_sign_in, n.description, n.reporting_anchor);
    PERFORM fluent._holders_within_powers(delegate, powers, holders, NULL, role);
    PERFORM fluent._still_staffed(staffed, force);
    PERFORM fluent._still_administered(administered, force);
END $$;

CREATE FUNCTION fluent._create_user(delegate text, user_key text, display_name text DEFAULT NULL, manager text DEFAULT NULL,
                                    status text DEFAULT 'active') RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    manager_id bigint := CASE WHEN manager IS NOT NULL THEN fluent._visible_user_id(delegate, manager) END;
    s fluent.user_status := fluent._user_status(status);
BEGIN
    PERFORM fluent._not_my_reach(delegate, manager_id);
    PERFORM fluent._line_in_my_workspace(delegate, manager_id);
    INSERT INTO fluent.users (user_key, display_name, status, manager_id)
    VALUES (fluent._name(user_key, 'user'), display_name, s, manager_id)
    ON CONFLICT ON CONSTRAINT users_user_key_key DO NOTHING;
    IF NOT FOUND THEN PERFORM fluent._duplicate('user', user_key); END IF;
    PERFORM fluent._item_roles_within_powers(delegate, format('create "%s"', user_key), user_key, NULL);
END $$;

CREATE FUNCTION fluent._set_user_status(delegate text, user_key text, status text, force boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid bigint := fluent._visible_user_id(delegate, user_key);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(user_key) END;
    s fluent.user_status := fluent._user_status(status);
    staffed int[] := fluent._staffed_workspaces();
    administered text[] := fluent._administered_rights();
BEGIN
    PERFORM fluent._may_force(delegate, force);
    PERFORM fluent._not_self(delegate, user_key, 'status');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_user(delegate, uid);
    -- An invitation accepted opens what the user holds without the checks
    -- of an activation: a delegated administrator invites new users
    -- (fluent_invite_user), and does not turn others into invitees.
    IF delegate IS NOT NULL AND s = 'invited' AND (SELECT u.status FROM fluent.users u WHERE u.user_id = uid) <> 'invited' THEN
        RAISE EXCEPTION 'fluent user "%" may not turn "%" into an invitee', delegate, user_key
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Invite new users with fluent_invite_user(); activate others with status active, within your powers.';
    END IF;
    -- A status set here ends any invitation (setting invited makes one without an expiry).
    UPDATE fluent.users u SET status = s, invited_until = NULL WHERE u.user_id = uid AND u.status IS DISTINCT FROM s;
    -- Activating opens what the user holds: no more than the administrator's own.
    IF delegate IS NOT NULL THEN
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key), format('"%s"', user_key));
        IF s = 'active' THEN
            PERFORM fluent._item_roles_within_powers(delegate, format('activate "%s"', user_key), user_key, NULL);
        END IF;
    END IF;
    PERFORM fluent._still_staffed(staffed, force);
    PERFORM fluent._still_administered(administered, force);
END $$;

CREATE FUNCTION fluent._set_manager(delegate text, user_key text, manager text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid bigint := fluent._visible_user_id(delegate, user_key);
    mid bigint := CASE WHEN manager IS NOT NULL THEN fluent._visible_user_id(delegate, manager) END;
BEGIN
    PERFORM fluent._not_self(delegate, user_key, 'manager');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_user(delegate, uid);
    PERFORM fluent._not_my_reach(delegate, mid);
    PERFORM fluent._line_in_my_workspace(delegate, mid);
    -- The new manager and everyone above them reach the user.
    PERFORM fluent._reach_within_powers(delegate, CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END,
        ARRAY(SELECT l.line_user_key FROM fluent._reporting_line(ARRAY[mid], true, NULL) l));
    IF mid IS NOT NULL AND EXISTS (SELECT 1 FROM fluent._reporting_line(ARRAY[mid], true, NULL) l WHERE l.line_user_id = uid) THEN
        RAISE EXCEPTION 'making "%" the manager of "%" would create a cycle in the reporting line', manager, user_key
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE fluent.users u SET manager_id = mid WHERE u.user_id = uid AND u.manager_id IS DISTINCT FROM mid;
END $$;

CREATE FUNCTION fluent._drop_user(delegate text, user_key text, force boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid bigint := fluent._visible_user_id(delegate, user_key);
    staffed int[] := fluent._staffed_workspaces();
    administered text[] := fluent._administered_rights();
BEGIN
    PERFORM fluent._may_force(delegate, force);
    PERFORM fluent._not_self(delegate, user_key, 'account');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_user(delegate, uid);
    -- Grants and team memberships go with the user; reports lose their manager.
    DELETE FROM fluent.users u WHERE u.user_id = uid;
    PERFORM fluent._still_staffed(staffed, force);
    PERFORM fluent._still_administered(administered, force);
END $$;

CREATE FUNCTION fluent._grant_role(delegate text, user_key text, role text, until timestamptz DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid bigint := fluent._visible_user_id(delegate, user_key);
    rid int := fluent._role_id(role);
    expiry timestamptz := fluent._until(until);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(user_key) END;
    -- Making a privileged grant temporary may leave the workspace without a
    -- holder once it lapses (DBAs may: this function has no force).
    staffed int[] := CASE WHEN delegate IS NOT NULL THEN fluent._staffed_workspaces() END;
    administered text[] := CASE WHEN delegate IS NOT NULL THEN fluent._administered_rights() END;
    -- The item roles the user holds open before (see fluent._item_roles_within_powers).
    opened text[] := CASE WHEN delegate IS NOT NULL THEN fluent._open_item_role_names(user_key) END;
BEGIN
    PERFORM fluent._not_self(delegate, user_key, 'roles');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_role(delegate, rid);
    PERFORM fluent._assignable_only(delegate, rid, 'grant');
    PERFORM fluent._may_touch_sign_in(delegate, uid, rid);
    -- Every permission of the role must be within the granter's own, and so
    -- must what the grant opens (a sign-in role opens the user's other roles).
    PERFORM fluent._within_powers(delegate, powers, '{}', fluent._role_scope_map(rid), format('"%s" role "%s", which has', user_key, role));
    -- Granting again sets the expiry the call gives (NULL: none); a grant
    -- that expired counts again from now.
    INSERT INTO fluent.grants AS g (workspace_id, user_id, role_id, valid_until)
    VALUES (fluent._workspace_id(), uid, rid, expiry)
    ON CONFLICT (user_id, role_id) DO UPDATE
       SET valid_until = EXCLUDED.valid_until,
           granted_at = CASE WHEN fluent._in_force(g.valid_until) THEN g.granted_at ELSE EXCLUDED.granted_at END
     WHERE g.valid_until IS DISTINCT FROM EXCLUDED.valid_until;
    IF NOT FOUND THEN
        RAISE NOTICE 'fluent user "%" already holds role "%"', user_key, role;
    END IF;
    IF delegate IS NOT NULL THEN
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key), format('"%s"', user_key));
        PERFORM fluent._item_roles_within_powers(delegate, format('grant "%s" role "%s"', user_key, role), user_key, NULL,
                                                 opened);
        PERFORM fluent._still_staffed(staffed, false);
        PERFORM fluent._still_administered(administered, false);
    END IF;
END $$;

CREATE FUNCTION fluent._revoke_role(delegate text, user_key text, role text, force boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid bigint := fluent._visible_user_id(delegate, user_key);
    rid int := fluent._role_id(role);
    staffed int[] := fluent._staffed_workspaces();
    administered text[] := fluent._administered_rights();
BEGIN
    PERFORM fluent._may_force(delegate, force);
    PERFORM fluent._not_self(delegate, user_key, 'roles');
    PERFORM fluent._may_touch_role(delegate, rid);
    PERFORM fluent._assignable_only(delegate, rid, 'revoke');
    PERFORM fluent._may_touch_sign_in(delegate, uid, rid);
    DELETE FROM fluent.grants g WHERE g.user_id = uid AND g.role_id = rid;
    IF NOT FOUND THEN
        RAISE WARNING 'fluent user "%" does not hold role "%"', user_key, role;
    END IF;
    PERFORM fluent._still_staffed(staffed, force);
    PERFORM fluent._still_administered(administered, force);
END $$;

CREATE FUNCTION fluent._create_team(delegate text, team text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO fluent.teams (workspace_id, name) VALUES (fluent._workspace_id(), fluent._name(team, 'team'))
    ON CONFLICT (workspace_id, name) DO NOTHING;
    IF NOT FOUND THEN PERFORM fluent._duplicate('team', team); END IF;
END $$;

CREATE FUNCTION fluent._drop_team(delegate text, team text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tid int := fluent._team_id(team);
    m record;
BEGIN
    -- The same checks as removing each member.
    FOR m IN SELECT u.user_id, u.user_key FROM fluent.team_members tm JOIN fluent.users u ON u.user_id = tm.user_id
              WHERE tm.team_id = tid ORDER BY u.user_key LOOP
        PERFORM fluent._not_self(delegate, m.user_key, 'teams');
        PERFORM fluent._may_touch_user(delegate, m.user_id);
    END LOOP;
    DELETE FROM fluent.teams WHERE team_id = tid;
END $$;

CREATE FUNCTION fluent._add_team_member(delegate text, team text, user_key text, lead boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tid int := fluent._team_id(team);
    uid bigint := fluent._visible_user_id(delegate, user_key);
BEGIN
    PERFORM fluent._not_null(lead, 'lead');
    PERFORM fluent._not_self(delegate, user_key, 'teams');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_user(delegate, uid);
    PERFORM fluent._not_my_team(delegate, tid, team);
    -- The team's leads reach the new member; a new lead reaches the team.
    PERFORM fluent._reach_within_powers(delegate, CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END,
        ARRAY(SELECT u.user_key FROM fluent.team_members m JOIN fluent.users u ON u.user_id = m.user_id
               WHERE m.team_id = tid AND m.is_lead AND m.user_id <> uid
              UNION SELECT user_key WHERE lead));
    PERFORM fluent._item_roles_within_powers(delegate, format('add members to team "%s"', team), NULL, team);
    INSERT INTO fluent.team_members (workspace_id, team_id, user_id, is_lead)
    VALUES (fluent._workspace_id(), tid, uid, lead)
    ON CONFLICT (team_id, user_id) DO UPDATE SET is_lead = EXCLUDED.is_lead
    WHERE team_members.is_lead IS DISTINCT FROM EXCLUDED.is_lead;
END $$;

CREATE FUNCTION fluent._remove_team_member(delegate text, team text, user_key text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tid int := fluent._team_id(team);
    uid bigint := fluent._visible_user_id(delegate, user_key);
BEGIN
    PERFORM fluent._not_self(delegate, user_key, 'teams');
    PERFORM fluent._may_touch_user(delegate, uid);
    DELETE FROM fluent.team_members m WHERE m.team_id = tid AND m.user_id = uid;
    IF NOT FOUND THEN
        RAISE WARNING 'fluent user "%" is not a member of team "%"', user_key, team;
    END IF;
END $$;

CREATE FUNCTION fluent._set_override(delegate text, user_key text, module text, action text, scope text,
                                     until timestamptz DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid bigint := fluent._visible_user_id(delegate, user_key);
    aid int := fluent._action_id(module, action);
    s fluent.scope := fluent._scope(scope);
    expiry timestamptz := fluent._until(until);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(user_key) END;
    administered text[] := CASE WHEN delegate IS NOT NULL THEN fluent._administered_rights() END;
    opened text[] := CASE WHEN delegate IS NOT NULL THEN fluent._open_item_role_names(user_key) END;
BEGIN
    PERFORM fluent._not_self(delegate, user_key, 'overrides');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_user(delegate, uid);
    PERFORM fluent._within_powers(delegate, powers, '{}', fluent._override_gives(aid, s), format('"%s"', user_key));
    -- A temporary override is also checked as if it were cleared: when it
    -- lapses, the user has what they would have without it (a DBA's deny
    -- made temporary would open by itself). So the override is cleared
    -- first, the result checked, and the new one written.
    IF delegate IS NOT NULL AND expiry IS NOT NULL THEN
        DELETE FROM fluent.overrides o WHERE o.user_id = uid AND o.action_id = aid;
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key),
                                      format('"%s" (once the override lapses)', user_key));
        PERFORM fluent._item_roles_within_powers(delegate, format('change the overrides of "%s" (once the override lapses)', user_key),
                                                 user_key, NULL, opened);
    END IF;
    INSERT INTO fluent.overrides (workspace_id, user_id, action_id, scope, valid_until)
    VALUES (fluent._workspace_id(), uid, aid, s, expiry)
    ON CONFLICT (user_id, action_id) DO UPDATE
       SET scope = EXCLUDED.scope, set_at = EXCLUDED.set_at, set_by = EXCLUDED.set_by, valid_until = EXCLUDED.valid_until
     WHERE (overrides.scope, overrides.valid_until) IS DISTINCT FROM (EXCLUDED.scope, EXCLUDED.valid_until);
    IF delegate IS NOT NULL THEN
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key), format('"%s"', user_key));
        PERFORM fluent._item_roles_within_powers(delegate, format('change the overrides of "%s"', user_key), user_key, NULL,
                                                 opened);
        PERFORM fluent._still_administered(administered, false);
    END IF;
END $$;

CREATE FUNCTION fluent._clear_override(delegate text, user_key text, module text, action text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid bigint := fluent._visible_user_id(delegate, user_key);
    aid int := fluent._action_id(module, action);
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(user_key) END;
    administered text[] := CASE WHEN delegate IS NOT NULL THEN fluent._administered_rights() END;
    opened text[] := CASE WHEN delegate IS NOT NULL THEN fluent._open_item_role_names(user_key) END;
BEGIN
    PERFORM fluent._not_self(delegate, user_key, 'overrides');
    PERFORM fluent._in_my_workspace(delegate, uid);
    PERFORM fluent._may_touch_user(delegate, uid);
    DELETE FROM fluent.overrides o WHERE o.user_id = uid AND o.action_id = aid;
    IF NOT FOUND THEN
        RAISE WARNING 'fluent user "%" has no override on %.%', user_key, module, action;
    END IF;
    IF delegate IS NOT NULL THEN
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key), format('"%s"', user_key));
        PERFORM fluent._item_roles_within_powers(delegate, format('change the overrides of "%s"', user_key), user_key, NULL,
                                                 opened);
        PERFORM fluent._still_administered(administered, false);
    END IF;
END $$;

-- Records that the user's grant of `role` (every grant of theirs in the
-- current workspace when role is NULL) was reviewed and kept; returns how
-- many grants were marked.
CREATE FUNCTION fluent._mark_reviewed(delegate text, user_key text, role text DEFAULT NULL) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid bigint := fluent._visible_user_id(delegate, user_key);
    rid int := CASE WHEN role IS NOT NULL THEN fluent._role_id(role) END;
    marked int;
BEGIN
    PERFORM fluent._not_self(delegate, user_key, 'access review');
    PERFORM fluent._may_touch_user(delegate, uid);
    -- reviewed_by is stamped by the attribution trigger.
    UPDATE fluent.grants g SET reviewed_at = now()
     WHERE g.user_id = uid AND g.workspace_id = fluent._workspace_id() AND (rid IS NULL OR g.role_id = rid);
    GET DIAGNOSTICS marked = ROW_COUNT;
    IF marked = 0 THEN
        RAISE WARNING 'fluent user "%" holds no % in workspace "%"', user_key,
            CASE WHEN role IS NULL THEN 'role' ELSE format('role "%s"', role) END, fluent._workspace_name();
    END IF;
    RETURN marked;
END $$;

-- Lets holders of `role` assign `assignable_role` (DBAs; delegated
-- administrators with manage_roles, for roles they may assign themselves,
-- where the workspace lists assignable roles already).
CREATE FUNCTION fluent._set_assignable(delegate text, role text, assignable_role text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rid int := fluent._role_id(role);
    aid int := fluent._role_id(assignable_role);
BEGIN
    IF delegate IS NOT NULL AND NOT fluent._lists_assignable() THEN
        PERFORM fluent._refuse(format('fluent user "%s" may not start listing assignable roles in workspace "%s"', delegate,
                                      fluent._workspace_name()),
                               'The first assignable role of a workspace turns the rule on for every administrator there: a DBA lists it.');
    END IF;
    PERFORM fluent._may_touch_role(delegate, rid);
    PERFORM fluent._may_touch_role(delegate, aid);
    PERFORM fluent._assignable_only(delegate, rid, 'change');
    PERFORM fluent._assignable_only(delegate, aid, 'make assignable');
    INSERT INTO fluent.assignable_roles (workspace_id, role_id, assignable_role_id)
    VALUES (fluent._workspace_id(), rid, aid)
    ON CONFLICT (role_id, assignable_role_id) DO NOTHING;
    IF NOT FOUND THEN
        RAISE NOTICE 'holders of fluent role "%" may already assign role "%"', role, assignable_role;
    END IF;
END $$;

CREATE FUNCTION fluent._clear_assignable(delegate text, role text, assignable_role text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rid int := fluent._role_id(role);
    aid int := fluent._role_id(assignable_role);
    listed boolean := fluent._lists_assignable();
BEGIN
    PERFORM fluent._may_touch_role(delegate, rid);
    PERFORM fluent._may_touch_role(delegate, aid);
    PERFORM fluent._assignable_only(delegate, rid, 'change');
    PERFORM fluent._assignable_only(delegate, aid, 'make unassignable');
    DELETE FROM fluent.assignable_roles a WHERE a.role_id = rid AND a.assignable_role_id = aid;
    IF NOT FOUND THEN
        RAISE WARNING 'holders of fluent role "%" may not assign role "%"', role, assignable_role;
    END IF;
    PERFORM fluent._still_lists_assignable(delegate, listed);
END $$;

-- Invites a new user (manage_users), or renews the invitation of a user who
-- is invited already (its expiry only). Returns when it expires (NULL: never).
CREATE FUNCTION fluent._invite_user(delegate text, user_key text, display_name text DEFAULT NULL, manager text DEFAULT NULL,
                                    valid_for interval DEFAULT interval '7 days') RETURNS timestamptz
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    expiry timestamptz := now() + valid_for;
    existing fluent.users;
    manager_id bigint;
BEGIN
    PERFORM fluent._name(user_key, 'user');
    IF valid_for <= interval '0' THEN
        RAISE EXCEPTION 'a fluent invitation cannot be valid for %', valid_for
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass a positive interval, or NULL for an invitation that does not expire.';
    END IF;
    SELECT * INTO existing FROM fluent.users u WHERE u.user_key = _invite_user.user_key FOR UPDATE;
    IF NOT FOUND THEN
        manager_id := CASE WHEN manager IS NOT NULL THEN fluent._visible_user_id(delegate, manager) END;
        PERFORM fluent._not_my_reach(delegate, manager_id);
        PERFORM fluent._line_in_my_workspace(delegate, manager_id);
        INSERT INTO fluent.users (user_key, display_name, status, manager_id, invited_until)
        VALUES (user_key, display_name, 'invited', manager_id, expiry)
        ON CONFLICT ON CONSTRAINT users_user_key_key DO NOTHING;
        IF NOT FOUND THEN PERFORM fluent._duplicate('user', user_key); END IF;
        RETURN expiry;
    END IF;
    -- The user exists: only an invitation is renewed, as the administrator
    -- could manage the user (a user of other workspaces only is unknown).
    PERFORM fluent._visible_user_id(delegate, user_key);
    IF existing.status <> 'invited' THEN
        PERFORM fluent._duplicate('user', user_key);
    END IF;
    IF display_name IS NOT NULL OR manager IS NOT NULL THEN
        RAISE EXCEPTION 'fluent user "%" is invited already: inviting them again renews the invitation only', user_key
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass only the user key and valid_for; fluent_set_manager() changes the manager.';
    END IF;
    PERFORM fluent._in_my_workspace(delegate, existing.user_id);
    PERFORM fluent._may_touch_user(delegate, existing.user_id);
    UPDATE fluent.users u SET invited_until = expiry
     WHERE u.user_id = existing.user_id AND u.invited_until IS DISTINCT FROM expiry;
    RETURN expiry;
END $$;

-- Makes an invited user active while the invitation is open. Who may:
--   - the application's authenticator (a role with the privileges of
--     fluent_authenticator whose identity is not sealed, as for
--     fluent_set_user: the application verified the invitee, e.g. through
--     the invitation link, as it verifies everyone it chooses as acting user);
--   - a DBA;
--   - a delegated administrator holding manage_users, under the rules of
--     fluent_set_user_status (activating opens no more than their own powers).
-- Only users with status invited and an open invitation: an expired one
-- raises 28000, any other status 55000, so nobody activates ghost or
-- disabled users this way. (A DBA or delegated administrator may still
-- activate anyone with fluent_set_user_status.)
CREATE FUNCTION fluent._accept_invitation(delegate text, user_key text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    target fluent.users;
    powers jsonb;
    before jsonb;
BEGIN
    SELECT * INTO target FROM fluent.users u WHERE u.user_id = fluent._visible_user_id(delegate, _accept_invitation.user_key) FOR UPDATE;
    IF target.status <> 'invited' THEN
        RAISE EXCEPTION 'fluent user "%" has no invitation to accept: they are %', user_key, target.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only invited users accept invitations (fluent_invite_user); fluent_set_user_status() changes other statuses.';
    END IF;
    IF NOT fluent._in_force(target.invited_until) THEN
        RAISE EXCEPTION 'the invitation of fluent user "%" expired at %', user_key, target.invited_until
            USING ERRCODE = 'invalid_authorization_specification',
                  HINT = 'An administrator renews it with fluent_invite_user(user, valid_for => ...).';
    END IF;
    IF delegate IS NOT NULL THEN
        PERFORM fluent._in_my_workspace(delegate, target.user_id);
        PERFORM fluent._may_touch_user(delegate, target.user_id);
        powers := fluent._user_scope_map(delegate);
        before := fluent._user_scope_map(user_key);
    END IF;
    UPDATE fluent.users u SET status = 'active', invited_until = NULL WHERE u.user_id = target.user_id;
    -- Activating opens what the user holds: no more than the administrator's own.
    IF delegate IS NOT NULL THEN
        PERFORM fluent._within_powers(delegate, powers, before, fluent._user_scope_map(user_key), format('"%s"', user_key));
        PERFORM fluent._item_roles_within_powers(delegate, format('accept the invitation of "%s"', user_key), user_key, NULL);
    END IF;
END $$;

-- Restores a role's permissions to its template's defaults.
CREATE FUNCTION fluent._reset_role(delegate text, role text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rid int := fluent._role_id(role);
    ws int := fluent._workspace_id();
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := fluent._role_scope_map(rid);
    holders jsonb := fluent._holders_scope_maps(delegate, rid);
    administered text[] := CASE WHEN delegate IS NOT NULL THEN fluent._administered_rights() END;
    assignable int[] := fluent._assignable_set(rid);
    listed boolean := fluent._lists_assignable();
BEGIN
    PERFORM fluent._may_touch_role(delegate, rid);
    PERFORM fluent._assignable_only(delegate, rid, 'reset');
    IF (SELECT r.template FROM fluent.roles r WHERE r.role_id = rid) IS NULL THEN
        RAISE EXCEPTION 'fluent role "%" is a custom role and has no template defaults to reset to', role
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only roles created by fluent_apply_template(), and their clones, can be reset.';
    END IF;
    DELETE FROM fluent.permissions p
     WHERE p.role_id = rid
       AND NOT EXISTS (SELECT 1 FROM fluent.template_defaults d
                        WHERE d.role_id = rid AND d.action_id = p.action_id AND d.scope = p.scope);
    INSERT INTO fluent.permissions (workspace_id, role_id, action_id, scope)
    SELECT ws, rid, d.action_id, d.scope FROM fluent.template_defaults d WHERE d.role_id = rid
    ON CONFLICT (role_id, action_id) DO NOTHING;
    -- The roles it may assign, among those of its template (and their
    -- clones): the template's list. Custom roles it lists stay listed.
    DELETE FROM fluent.assignable_roles a
     USING fluent.roles r, fluent.roles x
     WHERE a.role_id = rid AND r.role_id = rid AND x.role_id = a.assignable_role_id AND x.template = r.template
       AND NOT EXISTS (SELECT 1 FROM fluent._template_assignable(ws, r.template) d
                        WHERE d.role_id = rid AND d.assignable_role_id = a.assignable_role_id);
    INSERT INTO fluent.assignable_roles (workspace_id, role_id, assignable_role_id)
    SELECT ws, d.role_id, d.assignable_role_id
      FROM fluent.roles r, fluent._template_assignable(ws, r.template) d
     WHERE r.role_id = rid AND d.role_id = rid
    ON CONFLICT DO NOTHING;
    PERFORM fluent._assignable_within(delegate, rid, assignable);
    PERFORM fluent._still_lists_assignable(delegate, listed);
    PERFORM fluent._within_powers(delegate, powers, before, fluent._role_scope_map(rid), format('role "%s"', role));
    PERFORM fluent._holders_within_powers(delegate, powers, holders, rid, role);
    PERFORM fluent._still_administered(administered, delegate IS NULL);
END $$;

-- A new role with the same permissions and flags as `source`. A clone of a
-- template role keeps that template as its baseline: it can be reset, and
-- fluent.role_template_diff shows how it departs from it.
CREATE FUNCTION fluent._clone_role(delegate text, source text, new_role text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    src int := fluent._role_id(source);
    ws int := fluent._workspace_id();
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    new_id int;
BEGIN
    -- The same checks as setting each flag and permission directly: a clone
    -- of a privileged role is privileged, a clone of a sign-in role lets its
    -- holders sign in.
    PERFORM fluent._may_touch_role(delegate, src);
    PERFORM fluent._assignable_only(delegate, src, 'clone');
    PERFORM fluent._privileged_only(delegate, (SELECT r.grants_sign_in FROM fluent.roles r WHERE r.role_id = src),
                                    format('create role "%s", which lets users sign in', new_role));
    INSERT INTO fluent.roles (workspace_id, name, description, template, template_role, privileged, grants_sign_in,
                              reporting_anchor)
    SELECT ws, fluent._name(new_role, 'role'), r.description, r.template, r.template_role, r.privileged, r.grants_sign_in,
           r.reporting_anchor
      FROM fluent.roles r WHERE r.role_id = src
    ON CONFLICT (workspace_id, name) DO NOTHING
    RETURNING role_id INTO new_id;
    IF new_id IS NULL THEN PERFORM fluent._duplicate('role', new_role); END IF;
    INSERT INTO fluent.permissions (workspace_id, role_id, action_id, scope)
    SELECT ws, new_id, p.action_id, p.scope FROM fluent.permissions p WHERE p.role_id = src;
    -- Its holders may assign what the source's may, and it is assignable
    -- wherever the source is (a role that lists itself lists its clone, and
    -- the clone lists itself).
    INSERT INTO fluent.assignable_roles (workspace_id, role_id, assignable_role_id)
    SELECT ws, new_id, a.assignable_role_id FROM fluent.assignable_roles a WHERE a.role_id = src
    UNION
    SELECT ws, a.role_id, new_id FROM fluent.assignable_roles a WHERE a.assignable_role_id = src
    UNION
    SELECT ws, new_id, new_id FROM fluent.assignable_roles a WHERE a.role_id = src AND a.assignable_role_id = src;
    PERFORM fluent._within_powers(delegate, powers, '{}', fluent._role_scope_map(new_id), format('role "%s"', new_role));
    PERFORM fluent._assignable_within(delegate, new_id, '{}');
END $$;

-- Declares a delegable administration function: from the implementation
-- fluent._<name>(delegate text, <parameters>), written by hand, it makes
--   - @extschema@.fluent_<name>(<parameters>), with their defaults and
--     `comment`, SECURITY INVOKER: it names its caller with
--     fluent._caller(), or with fluent._identity_caller() where the
--     application's authenticator may call it too (`authenticator`), and
--     passes the ticket on;
--   - fluent._do_<name>(<parameters>, ticket bigint), SECURITY DEFINER:
--     it authorizes that caller for `admin_right` (fluent._authorize, or
--     fluent._authorize_acceptance), then runs the implementation, as the
--     catalog owner, with the end user they act for as `delegate` (NULL: a
--     DBA), and returns what it returns.
-- sql/privileges.sql gives the three their privileges by name, and drops
-- this function at the end of the install: it makes DDL, which nothing
-- after the install needs (an update script makes its own). In an update
-- script the public function and fluent._do_<name> exist already: they
-- are replaced.
CREATE FUNCTION fluent._delegable(name text, admin_right fluent.admin_right, comment text,
                                  authenticator boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    impl oid;
    impl_args text;
    params text;
    typed text;
    types text;
    names text;
    returns text;
    create_do text;
    create_public text;
BEGIN
    SELECT p.oid INTO STRICT impl FROM pg_proc p
     WHERE p.pronamespace = 'fluent'::regnamespace AND p.proname = '_' || name;
    impl_args := pg_get_function_identity_arguments(impl);
    IF impl_args NOT LIKE 'delegate text, %' THEN
        RAISE EXCEPTION 'fluent._%(%) does not take the delegate first', name, impl_args;
    END IF;
    params := substr(pg_get_function_arguments(impl), length('delegate text, ') + 1);
    typed := substr(impl_args, length('delegate text, ') + 1);
    SELECT string_agg(quote_ident(a.name), ', ' ORDER BY a.n), string_agg(format_type(a.type, NULL), ', ' ORDER BY a.n)
      INTO names, types
      FROM pg_proc p, unnest(p.proargnames, p.proargtypes::oid[]) WITH ORDINALITY AS a (name, type, n)
     WHERE p.oid = impl AND a.n > 1;
    returns := format_type((SELECT p.prorettype FROM pg_proc p WHERE p.oid = impl), NULL);
    create_do := CASE WHEN to_regprocedure(format('fluent.%I(%s, bigint)', '_do_' || name, types)) IS NULL
                      THEN 'CREATE' ELSE 'CREATE OR REPLACE' END;
    create_public := CASE WHEN to_regprocedure(format('@extschema@.%I(%s)', 'fluent_' || name, types)) IS NULL
                          THEN 'CREATE' ELSE 'CREATE OR REPLACE' END;
    EXECUTE format($sql$%s FUNCTION fluent.%I(%s, ticket bigint) RETURNS %s
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $body$
BEGIN
    %s fluent.%I(fluent.%I(ticket, %L), %s);
END $body$
$sql$,
        create_do, '_do_' || name, typed, returns,
        CASE WHEN returns = 'void' THEN 'PERFORM' ELSE 'RETURN' END, '_' || name,
        CASE WHEN authenticator THEN '_authorize_acceptance' ELSE '_authorize' END, admin_right, names);
    EXECUTE format($sql$%s FUNCTION @extschema@.%I(%s) RETURNS %s
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent.%I(%s, fluent.%I());
END$sql$,
        create_public, 'fluent_' || name, params, returns,
        '_do_' || name, names, CASE WHEN authenticator THEN '_identity_caller' ELSE '_caller' END);
    EXECUTE format('COMMENT ON FUNCTION @extschema@.%I(%s) IS %L', 'fluent_' || name, types, comment);
END $$;

SELECT fluent._delegable('create_role', 'manage_roles',
    'Creates a custom role in the current workspace');
SELECT fluent._delegable('drop_role', 'manage_roles',
    'Drops a role with its permissions and grants');
SELECT fluent._delegable('set_permission', 'manage_roles',
    'Sets the scope (none, own, direct, team, all) a role has on a module''s action');
SELECT fluent._delegable('clear_permission', 'manage_roles',
    'Removes a role''s setting on an action, which then inherits from the parent module (or is none)');
SELECT fluent._delegable('alter_role', 'manage_roles',
    'Changes a role''s privileged, sign-in and reporting-anchor flags and its description; NULL leaves a property unchanged');
SELECT fluent._delegable('create_user', 'manage_users',
    'Creates an end user, optionally with a manager and a status');
SELECT fluent._delegable('set_user_status', 'manage_users',
    'Sets a user''s status: active, ghost, disabled or invited (without an expiry); ends any invitation');
SELECT fluent._delegable('set_manager', 'manage_users',
    'Sets (or with NULL clears) a user''s manager; refuses cycles');
SELECT fluent._delegable('drop_user', 'manage_users',
    'Drops a user with their grants, overrides and team memberships');
SELECT fluent._delegable('grant_role', 'assign_roles',
    'Grants a role of the current workspace to a user, until an optional expiry (temporary access); granting again sets the expiry');
SELECT fluent._delegable('revoke_role', 'assign_roles',
    'Revokes a role from a user');
SELECT fluent._delegable('create_team', 'manage_users',
    'Creates a team in the current workspace');
SELECT fluent._delegable('drop_team', 'manage_users',
    'Drops a team and its memberships');
SELECT fluent._delegable('add_team_member', 'manage_users',
    'Adds a user to a team, as a lead or not (updates the lead flag of a member)');
SELECT fluent._delegable('remove_team_member', 'manage_users',
    'Removes a user from a team');
SELECT fluent._delegable('set_override', 'assign_roles',
    'Gives one user a scope on one action that replaces what their roles give (wider or narrower; none denies), until an optional expiry');
SELECT fluent._delegable('clear_override', 'assign_roles',
    'Removes a user''s override: their roles decide again');
SELECT fluent._delegable('mark_reviewed', 'assign_roles',
    'Records an access review of a user''s grant of a role (all their grants in the workspace when role is NULL)');
SELECT fluent._delegable('set_assignable', 'manage_roles',
    'Delegated administration: lets holders of the role grant, revoke, clone, reset and drop the assignable role (fluent.assignable_roles); the first one turns the rule on in the workspace');
SELECT fluent._delegable('clear_assignable', 'manage_roles',
    'Stops holders of the role assigning the assignable role');
SELECT fluent._delegable('invite_user', 'manage_users',
    'Creates an invited user (granted nothing and unable to act until they accept), or renews the invitation of one; returns when the invitation expires (NULL: never)');
SELECT fluent._delegable('accept_invitation', 'manage_users',
    'Makes an invited user with an open invitation active; for the application''s authenticator (before it chooses the acting user), DBAs and delegated administrators holding manage_users',
    authenticator => true);
SELECT fluent._delegable('reset_role', 'manage_roles',
    'Restores a template role''s (or its clone''s) permissions to the template''s defaults');
SELECT fluent._delegable('clone_role', 'manage_roles',
    'Creates a role with the permissions and flags of another');
DROP FUNCTION fluent._delegable(text, fluent.admin_right, text, boolean);
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.pronamespace = 'fluent'::regnamespace
                AND (p.proname = '_authorize_acceptance'
                     OR EXISTS (SELECT 1 FROM pg_proc d
                                 WHERE d.pronamespace = 'fluent'::regnamespace AND d.proname = '_do' || p.proname))
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO fluent_owner', f);
    END LOOP;
END
$$;
REVOKE EXECUTE ON FUNCTION @extschema@.fluent_invite_user(text, text, text, interval), @extschema@.fluent_accept_invitation(text)
    FROM fluent_admin;

-- Issue 20: the errors SQL shares with Rust come from src/error.rs's table
-- only: fluent._raise takes a hint for the caller's case, and raises
-- not_admin; fluent._authorize and fluent._check_assignment raise theirs
-- through it (the same messages, SQLSTATEs and hints).
DROP FUNCTION fluent._raise(text, text[]);
-- src/error.rs
CREATE  FUNCTION fluent."_raise"(
	"error" TEXT, /* & str */
	"args" TEXT[], /* Vec < Option < String > > */
	"hint" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS void
VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_raise_wrapper';
REVOKE ALL ON FUNCTION fluent._raise(text, text[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._raise(text, text[], text) TO fluent_admin;
GRANT EXECUTE ON FUNCTION fluent._raise(text, text[], text) TO fluent_owner;

-- Authorizes the caller of a delegable function for `p_right`: NULL for a
-- DBA, else the acting end user they act for.
CREATE OR REPLACE FUNCTION fluent._authorize(ticket bigint, p_right fluent.admin_right) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    caller oid := fluent._take_caller(ticket);
    acting text := fluent._acting_user();
BEGIN
    IF fluent._is_dba(caller) THEN
        RETURN NULL;
    END IF;
    IF acting IS NULL THEN
        PERFORM fluent._raise('not_admin', '{}',
            format('Administration needs a superuser, a member of fluent_admin, or an acting end user who holds the right %s (fluent.admin_rights).', p_right));
    END IF;
    IF NOT fluent._holds_right(acting, p_right::text) THEN
        RAISE EXCEPTION 'fluent user "%" lacks the administrative right %', acting, p_right
            USING ERRCODE = 'insufficient_privilege',
                  HINT = coalesce(
                      (SELECT format('The right %s comes with scope all on %s in workspace "%s".', p_right,
                                     string_agg(m.name || '.' || a.name, ' or ' ORDER BY m.name, a.name),
                                     fluent._workspace_name())
                         FROM fluent.admin_rights ar
                         JOIN fluent.actions a ON a.action_id = ar.action_id
                         JOIN fluent.modules m ON m.module_id = a.module_id
                        WHERE ar.workspace_id = fluent._workspace_id() AND ar.admin_right = p_right
                       HAVING count(*) > 0),
                      format('No permission gives the right %s in this workspace; a DBA sets one with fluent_set_admin_right().', p_right));
    END IF;
    RETURN acting;
END $$;

-- Refuses an assignment that may not be written: it must name a user or a
-- team (not both) that fluent knows in the current workspace, and an item
-- role of the module there; an item role with a condition is held by users
-- who meet it, never through a team (whose members change). Called by the
-- assignment tables' trigger (src/items.rs) as the catalog owner, after row
-- security let the write through, so that it tells the writer nothing
-- about rows or users she could not write; nobody else may execute it.
CREATE OR REPLACE FUNCTION fluent._check_assignment(module text, item_role text, user_key text, team text, tbl regclass)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ws int := fluent._workspace_id();
    r fluent.item_roles;
    required text;
    held boolean;
BEGIN
    IF item_role IS NULL OR (user_key IS NULL) = (team IS NULL) THEN
        RAISE EXCEPTION 'an assignment to "%" must name an item role and either a user or a team', tbl
            USING ERRCODE = 'not_null_violation', HINT = 'Fill the role column and one of the user and team columns.';
    END IF;
    IF user_key IS NOT NULL AND NOT EXISTS (SELECT 1 FROM fluent.users u WHERE u.user_key = _check_assignment.user_key) THEN
        PERFORM fluent._raise('unknown_user', ARRAY[user_key],
                              'Create the user (fluent_create_user, or fluent_invite_user) before assigning them.');
    END IF;
    IF team IS NOT NULL AND NOT EXISTS (SELECT 1 FROM fluent.teams t WHERE t.workspace_id = ws AND t.name = team) THEN
        PERFORM fluent._raise('not_in_workspace', ARRAY['team', team, fluent._workspace_name()],
                              'Create the team (fluent_create_team) before assigning it.');
    END IF;
    SELECT x.* INTO r FROM fluent.item_roles x JOIN fluent.modules m ON m.module_id = x.module_id
     WHERE m.workspace_id = ws AND m.name = module AND x.name = item_role;
    IF NOT FOUND THEN
        PERFORM fluent._item_role_id(module, item_role);   -- raises 42704, naming the module's item roles
    END IF;
    IF r.required_role_id IS NULL AND r.required_action_id IS NULL THEN
        RETURN;
    END IF;
    IF r.required_role_id IS NOT NULL THEN
        required := format('the role "%s"', (SELECT x.name FROM fluent.roles x WHERE x.role_id = r.required_role_id));
        held := EXISTS (SELECT 1 FROM fluent.grants g JOIN fluent.users u ON u.user_id = g.user_id
                         WHERE u.user_key = _check_assignment.user_key AND g.role_id = r.required_role_id
                           AND fluent._in_force(g.valid_until));
    ELSE
        SELECT format('the permission %s.%s', m.name, a.name), fluent._scope_of(user_key, m.name, a.name) <> 'none'
          INTO required, held
          FROM fluent.actions a JOIN fluent.modules m ON m.module_id = a.module_id
         WHERE a.action_id = r.required_action_id;
    END IF;
    IF team IS NOT NULL THEN
        RAISE EXCEPTION 'item role "%" cannot be given to team "%": it requires %', item_role, team, required
            USING ERRCODE = 'check_violation', HINT = 'Assign it to users who hold what it requires, one by one.';
    END IF;
    IF NOT coalesce(held, false) THEN
        RAISE EXCEPTION 'fluent user "%" cannot be assigned item role "%": it requires %', user_key, item_role, required
            USING ERRCODE = 'check_violation', HINT = format('Give "%s" %s first.', user_key, required);
    END IF;
END $$;

-- Issue 20: the single-column primary key of a table, looked up once
-- (fluent._primary_key_column) for fluent_protect and fluent._row_lookup.
-- The column of tbl's single-column primary key (NULL: none), which finds a
-- row where no row_column names another: what membership rows point at
-- (fluent_protect) and what fluent_who_can looks the row up by
-- (fluent._row_lookup).
CREATE FUNCTION fluent._primary_key_column(tbl regclass) RETURNS name
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT a.attname
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = tbl AND i.indisprimary AND i.indnatts = 1;
END;
REVOKE ALL ON FUNCTION fluent._primary_key_column(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._primary_key_column(regclass) TO fluent_admin;
GRANT EXECUTE ON FUNCTION fluent._primary_key_column(regclass) TO fluent_owner;

CREATE OR REPLACE FUNCTION @extschema@.fluent_protect(
    tbl regclass,
    module text,
    owner_column name DEFAULT NULL,
    membership_table regclass DEFAULT NULL,
    membership_row_column name DEFAULT NULL,
    membership_user_column name DEFAULT NULL,
    row_column name DEFAULT NULL,
    workspace_column name DEFAULT NULL,
    select_action text DEFAULT 'read',
    insert_action text DEFAULT 'write',
    update_action text DEFAULT 'write',
    delete_action text DEFAULT 'delete',
    membership_role_column name DEFAULT NULL,
    membership_team_column name DEFAULT NULL,
    parent_table regclass DEFAULT NULL,
    parent_column name DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p fluent.protected_tables;
    parent fluent.protected_tables;
    kind "char";
    was_enabled boolean;
    was_forced boolean;
    owner_kind text;
    member_was_enabled boolean;
    member_was_forced boolean;
    missing text[];
    related regclass;
    child regclass;
BEGIN
    PERFORM fluent._require_admin();
    PERFORM fluent._not_null(tbl, 'table');
    PERFORM fluent._module_id(module);

    SELECT c.relkind, c.relrowsecurity, c.relforcerowsecurity INTO kind, was_enabled, was_forced
      FROM pg_class c WHERE c.oid = tbl;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;
    IF EXISTS (SELECT 1 FROM fluent.protected_tables x WHERE x.table_name = tbl) THEN
        RAISE EXCEPTION 'table "%" is already protected by fluent', tbl
            USING ERRCODE = 'duplicate_object', HINT = 'Call fluent_unprotect() first to change how it is protected.';
    END IF;
    related := fluent._protected_root(tbl);
    IF related IS NOT NULL THEN
        RAISE EXCEPTION 'table "%" is already protected by fluent through "%", which it inherits from', tbl, related
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Partitions and inheritance children share the protection of their parent.';
    END IF;
    SELECT x.table_name INTO related FROM fluent.protected_tables x WHERE x.table_name IN (SELECT fluent._descendants(tbl));
    IF related IS NOT NULL THEN
        RAISE EXCEPTION 'table "%" has a partition or child, "%", that fluent protects on its own', tbl, related
            USING ERRCODE = 'object_in_use', HINT = 'Unprotect it first: fluent protects a table with all its partitions and children.';
    END IF;
    IF owner_column IS NULL AND membership_table IS NULL AND parent_table IS NULL THEN
        RAISE EXCEPTION 'fluent_protect needs an owner column, a membership table or a parent table'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (membership_role_column IS NOT NULL OR membership_team_column IS NOT NULL) AND membership_table IS NULL
       OR membership_team_column IS NOT NULL AND membership_role_column IS NULL THEN
        RAISE EXCEPTION 'a team or role column takes an assignment table'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Name the membership table, and its role column (membership_role_column) with the team column.';
    END IF;
    IF parent_table IS NOT NULL THEN
        -- A child table's rows are reached through their parent's item
        -- roles: one level, the parent's own assignments.
        SELECT x.* INTO parent FROM fluent.protected_tables x WHERE x.table_name = fluent_protect.parent_table;
        IF parent.membership_role_column IS NULL THEN
            RAISE EXCEPTION 'table "%" is not protected with item roles', parent_table
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Protect the parent first, with an assignment table (membership_role_column).';
        END IF;
        IF parent_table = tbl OR membership_table IS NOT NULL OR parent_column IS NULL THEN
            RAISE EXCEPTION 'a child table names another parent table and its parent_column, and has no membership table'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- Its rows are then kept to the workspace as its parent's are: an
        -- assignment gives nothing in another workspace.
        IF parent.workspace_column IS NOT NULL AND workspace_column IS NULL THEN
            RAISE EXCEPTION 'table "%" needs a workspace column, as its parent "%" has one', tbl, parent_table
                USING ERRCODE = 'invalid_parameter_value', HINT = 'Name it with workspace_column.';
        END IF;
        IF (SELECT atttypid FROM pg_attribute WHERE attrelid = tbl AND attname = parent_column AND NOT attisdropped)
           IS DISTINCT FROM
           (SELECT atttypid FROM pg_attribute WHERE attrelid = parent.membership_table
                                                AND attname = parent.membership_row_column AND NOT attisdropped) THEN
            RAISE EXCEPTION 'column "%" of "%" must exist and have the type of "%"''s items (column "%" of "%")',
                parent_column, tbl, parent_table, parent.membership_row_column, parent.membership_table
                USING ERRCODE = 'datatype_mismatch';
        END IF;
    ELSIF parent_column IS NOT NULL THEN
        RAISE EXCEPTION 'parent_column takes a parent table' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Policies fluent created for a protection whose record is gone (a
    -- schema-only restore) are replaced.
    IF fluent._has_orphaned_policies(tbl) THEN
        RAISE NOTICE 'replacing the policies fluent created on "%" earlier, which fluent.protected_tables does not record', tbl;
        PERFORM fluent._remove_policies(tbl, NULL);
        SELECT c.relrowsecurity, c.relforcerowsecurity INTO was_enabled, was_forced FROM pg_class c WHERE c.oid = tbl;
    END IF;
    FOR related IN SELECT tbl UNION ALL SELECT fluent._descendants(tbl)
                   UNION ALL SELECT membership_table WHERE membership_table IS NOT NULL
                   UNION ALL SELECT fluent._descendants(membership_table) WHERE membership_table IS NOT NULL LOOP
        IF EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = related AND polpermissive) THEN
            RAISE EXCEPTION 'table "%" already has permissive row-level security policies', related
                USING ERRCODE = 'object_in_use',
                      HINT = 'Permissive policies are OR-ed with fluent''s and would widen access: drop them or make them AS RESTRICTIVE.';
        END IF;
    END LOOP;

    IF owner_column IS NOT NULL THEN
        owner_kind := fluent._key_kind(tbl, owner_column, 'owner column');
    END IF;
    IF membership_table IS NOT NULL THEN
        IF membership_row_column IS NULL OR membership_user_column IS NULL THEN
            RAISE EXCEPTION 'a membership table needs membership_row_column and membership_user_column'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF membership_table = tbl THEN
            RAISE EXCEPTION 'table "%" cannot be its own membership table', tbl USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF EXISTS (SELECT 1 FROM fluent.protected_tables x WHERE x.membership_table = fluent_protect.membership_table) THEN
            RAISE EXCEPTION 'table "%" is already the membership table of another protected table', membership_table
                USING ERRCODE = 'object_in_use', HINT = 'Give each protected table a membership table of its own.';
        END IF;
        IF row_column IS NULL THEN
            -- The membership rows point at the table's single-column primary key.
            row_column := fluent._primary_key_column(tbl);
            IF row_column IS NULL THEN
                RAISE EXCEPTION 'table "%" has no single-column primary key for membership rows to point at', tbl
                    USING ERRCODE = 'invalid_parameter_value', HINT = 'Name the column with row_column.';
            END IF;
        END IF;
        PERFORM fluent._key_kind(membership_table, membership_user_column, 'membership user column');
        -- Item roles and teams are named by their names.
        IF membership_role_column IS NOT NULL
           AND fluent._key_kind(membership_table, membership_role_column, 'membership role column') <> 'text'
           OR membership_team_column IS NOT NULL
           AND fluent._key_kind(membership_table, membership_team_column, 'membership team column') <> 'text' THEN
            RAISE EXCEPTION 'the role and team columns of "%" must be of type text or varchar', membership_table
                USING ERRCODE = 'datatype_mismatch', HINT = 'They hold item role and team names.';
        END IF;
        IF membership_team_column IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                            WHERE i.indrelid = membership_table AND a.attname = membership_team_column) THEN
            RAISE NOTICE 'no index on %(%): every query on "%" will scan it', membership_table, membership_team_column, tbl
                USING HINT = format('CREATE INDEX ON %s (%I);', membership_table, membership_team_column);
        END IF;
        IF (SELECT atttypid FROM pg_attribute WHERE attrelid = tbl AND attname = row_column AND NOT attisdropped)
           IS DISTINCT FROM
           (SELECT atttypid FROM pg_attribute WHERE attrelid = membership_table AND attname = membership_row_column AND NOT attisdropped) THEN
            RAISE EXCEPTION 'column "%" of "%" and column "%" of "%" must exist and have the same type',
                row_column, tbl, membership_row_column, membership_table USING ERRCODE = 'datatype_mismatch';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                        WHERE i.indrelid = membership_table AND a.attname = membership_user_column) THEN
            RAISE NOTICE 'no index on %(%): every query on "%" will scan it', membership_table, membership_user_column, tbl
                USING HINT = format('CREATE INDEX ON %s (%I);', membership_table, membership_user_column);
        END IF;
        SELECT c.relrowsecurity, c.relforcerowsecurity INTO member_was_enabled, member_was_forced
          FROM pg_class c WHERE c.oid = membership_table;
    END IF;
    -- Item roles name their items by key: the key must be the items', and
    -- an assignment must go with its item (sql/items.sql). A row moved to
    -- another partition is deleted and inserted again, out of reach of the
    -- checks of its update, and a unique key or a foreign key does not span
    -- inheritance children: item tables and child tables stand alone, and
    -- an assignment table's children are its partitions.
    IF (membership_role_column IS NOT NULL OR parent_table IS NOT NULL)
       AND (kind = 'p' OR EXISTS (SELECT 1 FROM fluent._descendants(tbl))) THEN
        RAISE EXCEPTION 'table "%" has partitions or inheritance children, which item roles do not support', tbl
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Protect a table without partitions or children with item roles, or without item roles.';
    END IF;
    IF membership_role_column IS NOT NULL
       AND EXISTS (SELECT 1 FROM fluent._descendants(membership_table) d JOIN pg_class c ON c.oid = d
                    WHERE NOT c.relispartition OR c.relkind NOT IN ('r', 'p')) THEN
        RAISE EXCEPTION 'assignment table "%" has inheritance children, which its foreign key does not cover', membership_table
            USING ERRCODE = 'feature_not_supported', HINT = 'Partition it instead: partitions share its foreign key.';
    END IF;
    IF membership_role_column IS NOT NULL
       AND fluent._key_kind(membership_table, membership_user_column, 'membership user column') <> 'text' THEN
        RAISE EXCEPTION 'the user column of assignment table "%" must be of type text or varchar', membership_table
            USING ERRCODE = 'datatype_mismatch', HINT = 'Assignments name users by their user keys.';
    END IF;
    IF membership_role_column IS NOT NULL
       AND NOT fluent._has_item_foreign_key(membership_table, membership_row_column, tbl, row_column, true) THEN
        RAISE EXCEPTION 'assignment table "%" needs a foreign key to "%" that cascades deletes and moves no row to another item on update',
            membership_table, tbl
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('ALTER TABLE %s ADD FOREIGN KEY (%I) REFERENCES %s (%I) ON DELETE CASCADE;',
                                membership_table, membership_row_column, tbl, row_column);
    END IF;
    IF parent_table IS NOT NULL
       AND NOT fluent._has_item_foreign_key(tbl, parent_column, parent_table, parent.row_column, false) THEN
        RAISE EXCEPTION 'child table "%" needs a foreign key to its parent "%"', tbl, parent_table
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('ALTER TABLE %s ADD FOREIGN KEY (%I) REFERENCES %s (%I);', tbl, parent_column, parent_table, parent.row_column);
    END IF;
    -- The catalog row, by column name.
    p := jsonb_populate_record(NULL::fluent.protected_tables, jsonb_build_object(
        'table_name', tbl, 'module', module, 'owner_column', owner_column, 'owner_type', owner_kind,
        'membership_table', membership_table, 'membership_row_column', membership_row_column,
        'membership_user_column', membership_user_column, 'row_column', row_column, 'workspace_column', workspace_column,
        'select_action', fluent._name(select_action, 'action'), 'insert_action', fluent._name(insert_action, 'action'),
        'update_action', fluent._name(update_action, 'action'), 'delete_action', fluent._name(delete_action, 'action'),
        'rls_was_enabled', was_enabled, 'rls_was_forced', was_forced,
        'membership_rls_was_enabled', member_was_enabled, 'membership_rls_was_forced', member_was_forced,
        'membership_role_column', membership_role_column, 'membership_team_column', membership_team_column,
        'parent_table', parent_table, 'parent_column', parent_column));

    SELECT array_agg(DISTINCT a) INTO missing
      FROM unnest(ARRAY[p.select_action, p.insert_action, p.update_action, p.delete_action]) a
     WHERE NOT EXISTS (SELECT 1 FROM fluent.actions x WHERE x.module_id = fluent._module_id(module) AND x.name = a);
    IF missing IS NOT NULL THEN
        RAISE WARNING 'fluent module "%" has no action %: those commands on "%" will be denied to everyone',
            module, array_to_string(missing, ', '), tbl;
    END IF;

    PERFORM fluent._install_policies(tbl, p, false);
    PERFORM fluent._install_item_triggers(tbl, p, false);
    FOR child IN SELECT fluent._descendants(tbl) LOOP
        PERFORM fluent._install_policies(child, p, false);
        PERFORM fluent._install_item_triggers(child, p, false);
    END LOOP;
    IF membership_table IS NOT NULL THEN
        -- Its partitions and children too: the table's policies read them
        -- (through the membership table), so writing one directly must be
        -- kept within reach as well.
        FOR child IN SELECT membership_table UNION ALL SELECT fluent._descendants(membership_table) LOOP
            PERFORM fluent._install_policies(child, p, true);
            PERFORM fluent._install_item_triggers(child, p, true);
        END LOOP;
    END IF;
    -- What was created, as fluent_protection_problems() will compare it.
    p := jsonb_populate_record(p, jsonb_build_object(
        'policies', fluent._policies_of(tbl),
        'membership_policies', CASE WHEN membership_table IS NOT NULL THEN fluent._policies_of(membership_table) END));
    INSERT INTO fluent.protected_tables SELECT p.*;
END $$;

-- Where fluent_who_can() finds the row it is asked about, from the catalog
-- alone: the module; the column that identifies the row (the membership row
-- column, else the single-column primary key); the owner, workspace and
-- membership columns; and the tables to read: the table with its
-- partitions and children, and the membership table with its own. The row
-- itself is read by src/rows.rs without running the table owner's code, so
-- each of these must still be a table (a PostgreSQL 15 table owner can turn
-- an empty table into a view, whose functions would run for the caller).
CREATE OR REPLACE FUNCTION fluent._row_lookup(tbl regclass)
RETURNS TABLE (module text, key_column name, owner_column name, workspace_column name,
               membership_row_column name, membership_user_column name, relations regclass[], membership_relations regclass[],
               item_module text, item_column name, assignment_row_column name, assignment_user_column name,
               assignment_team_column name, assignment_role_column name, assignment_relations regclass[])
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p fluent.protected_tables;
    assigned fluent.protected_tables;
    odd regclass;
BEGIN
    PERFORM fluent._not_null(tbl, 'table');
    SELECT x.* INTO p FROM fluent.protected_tables x WHERE x.table_name = fluent._protected_root(tbl);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table "%" is not protected by fluent', tbl
            USING ERRCODE = 'undefined_object', HINT = 'fluent_who_can answers for tables protected with fluent_protect().';
    END IF;
    key_column := coalesce(p.row_column, fluent._primary_key_column(tbl));
    IF key_column IS NULL THEN
        RAISE EXCEPTION 'table "%" has no single-column primary key to find the row by', tbl
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Protect it with row_column naming the key column.';
    END IF;
    relations := ARRAY(SELECT tbl UNION ALL SELECT fluent._descendants(tbl));
    IF p.membership_table IS NOT NULL AND p.membership_role_column IS NULL THEN
        membership_relations := ARRAY(SELECT p.membership_table UNION ALL SELECT fluent._descendants(p.membership_table));
    END IF;
    -- Item roles: the table's own assignments, or its parent's.
    assigned := p;
    item_column := p.row_column;
    IF p.parent_table IS NOT NULL THEN
        SELECT x.* INTO assigned FROM fluent.protected_tables x WHERE x.table_name = p.parent_table;
        item_column := p.parent_column;
    END IF;
    IF assigned.membership_role_column IS NOT NULL THEN
        item_module := assigned.module;
        assignment_row_column := assigned.membership_row_column;
        assignment_user_column := assigned.membership_user_column;
        assignment_team_column := assigned.membership_team_column;
        assignment_role_column := assigned.membership_role_column;
        assignment_relations := ARRAY(SELECT assigned.membership_table UNION ALL SELECT fluent._descendants(assigned.membership_table));
    ELSE
        item_column := NULL;
    END IF;
    SELECT r INTO odd FROM unnest(relations || membership_relations || assignment_relations) r JOIN pg_class c ON c.oid = r
     WHERE c.relkind NOT IN ('r', 'p') LIMIT 1;
    IF odd IS NOT NULL THEN
        RAISE EXCEPTION 'fluent_who_can cannot read "%": it is no longer a table', odd
            USING ERRCODE = 'wrong_object_type', HINT = 'fluent.protection_status shows what changed.';
    END IF;
    module := p.module;
    owner_column := p.owner_column;
    workspace_column := p.workspace_column;
    IF p.membership_role_column IS NULL THEN
        membership_row_column := p.membership_row_column;
        membership_user_column := p.membership_user_column;
    END IF;
    RETURN NEXT;
END $$;

-- Issue 20: the horizon is the highest transaction id pruned (its own entries included).
COMMENT ON TABLE fluent.change_horizon IS 'Entries of fluent.changes at or below this transaction id were pruned';
-- Issue 20: the cache's sentinel relation is one no query reads
-- (src/cache.rs, sql/catalog.sql): with fluent.workspaces as sentinel,
-- every change made every backend plan again its kept queries reading it.
CREATE TABLE fluent.cache_sentinel ();
COMMENT ON TABLE fluent.cache_sentinel IS
    'No rows: its relcache invalidation tells every backend that the permission catalog changed';
REVOKE ALL ON fluent.cache_sentinel FROM PUBLIC;
GRANT SELECT ON fluent.cache_sentinel TO fluent_admin;
ALTER TABLE fluent.cache_sentinel OWNER TO fluent_owner;
-- Issue 20: the look at the change log parses the reader's snapshot once per
-- look, not once per entry, through one generic plan.
-- What changed that snapshot p_seen did not see (src/cache.rs): the entries
-- of transactions that committed after the reader's previous look, and only
-- those, however long another transaction keeps the xmin back, and the
-- reader's own transaction's, which its snapshots see as it writes them;
-- none for a NULL p_seen (a first look). With the pruning horizon and the snapshot this
-- look reads with (the next one's p_seen). Every look runs it through one
-- generic plan (src/loaders.rs): the snapshot is parsed once, by the
-- sub-selects (InitPlans), not once per entry read. The upper bound drops
-- only entries this look's snapshot cannot see (begun at or after its xmax,
-- other than the reader's own): with two bounds the generic plan estimates a
-- narrow range and reads the index on xid, where one bound would be
-- estimated to keep a third of the log and read all of it.
CREATE OR REPLACE FUNCTION fluent._load_changes(p_seen text)
RETURNS TABLE (workspace_id int, kind text, id bigint, pruned_below text, seen text)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT c.workspace_id, c.kind, c.id, h.pruned_below::text, pg_current_snapshot()::text
      FROM fluent.change_horizon h
      LEFT JOIN fluent.changes c ON c.xid BETWEEN (SELECT pg_snapshot_xmin(p_seen::pg_snapshot))
                                      AND (SELECT greatest(pg_snapshot_xmax(pg_current_snapshot()),
                                                           pg_current_xact_id_if_assigned()))
                                AND (NOT pg_visible_in_snapshot(c.xid, (SELECT p_seen::pg_snapshot))
                                     OR c.xid = pg_current_xact_id_if_assigned());
END;

-- Issue 21: fluent on a Citus cluster (sql/citus.sql, src/citus.rs): the
-- coordinator's catalog changes reach every worker through fluent.citus_bus.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fluent_replicator') THEN
        CREATE ROLE fluent_replicator NOLOGIN NOINHERIT;
    END IF;
END
$$;
COMMENT ON ROLE fluent_replicator IS 'fluent: on Citus, sends the coordinator''s catalog changes to the workers';
CREATE FUNCTION fluent."_citus_send_rows"("tbl" TEXT, "op" TEXT, "old_rows" jsonb, "new_rows" jsonb) RETURNS void
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_citus_send_rows_wrapper';
CREATE FUNCTION fluent."_citus_bus_active"() RETURNS bool
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_citus_bus_active_wrapper';
CREATE FUNCTION fluent."_citus_applying"() RETURNS bool
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_citus_applying_wrapper';
CREATE FUNCTION fluent."_citus_set_applying"("on" bool) RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_citus_set_applying_wrapper';
CREATE FUNCTION fluent."_citus_node_audit_logs"() RETURNS TABLE (
	"node" TEXT,  /* String */
	"entries" TEXT  /* String */
)
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_citus_node_audit_logs_wrapper';
-- fluent on a Citus cluster: one catalog, written on the coordinator, on
-- every node.
--
-- Each node keeps fluent's catalog in its own local tables (Citus installs
-- the extension on every node), so the caches, the change log and the
-- policies on the shards read it locally, by the node's own snapshots, as
-- on one server. Writes happen on the coordinator only; each statement's
-- rows are sent through fluent.citus_bus, a Citus reference table.
-- Citus writes a reference table on every node's placement within the
-- writing transaction, with two-phase commit: a change reaches every worker
-- when it commits there, and a rolled-back one reaches none. On each
-- worker's placement a BEFORE trigger applies the rows to the local catalog
-- (whose own triggers then log the change and invalidate the caches at the
-- worker's commit) and returns NULL, so the bus keeps nothing.
--
-- fluent_citus_setup() turns it on, from the coordinator: it makes the bus a
-- reference table and sends the whole catalog once. Until then nothing is
-- sent, and on a server without Citus these triggers return at once.


-- The catalog tables the workers need, parents before children: the
-- workspace model and everything the decisions read.
CREATE FUNCTION fluent._citus_tables() RETURNS name[]
LANGUAGE sql IMMUTABLE
RETURN ARRAY['workspaces', 'users', 'modules', 'actions', 'roles', 'permissions', 'grants', 'overrides',
             'teams', 'team_members', 'requirements', 'admin_rights', 'item_roles', 'item_role_actions',
             'assignable_roles']::name[];

-- This node's part: 'coordinator', 'worker', or 'none' without Citus. Citus
-- is looked up in pg_catalog only (nobody but a superuser creates there).
CREATE FUNCTION fluent._citus_node() RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    coordinator boolean;
BEGIN
    IF to_regprocedure('pg_catalog.citus_is_coordinator()') IS NULL THEN
        RETURN 'none';
    END IF;
    EXECUTE 'SELECT pg_catalog.citus_is_coordinator()' INTO coordinator;
    RETURN CASE WHEN coordinator THEN 'coordinator' ELSE 'worker' END;
END $$;

-- The relation a schema-qualified name (as quote_ident writes it) names, or
-- NULL: looked up in the catalog, without the schema's USAGE check that
-- regclass input makes (fluent_owner, and a reporting role, need none on the
-- schemas of the tables they read about).
CREATE FUNCTION fluent._relation_named(qualified text) RETURNS regclass
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp SET citus.override_table_visibility = off
BEGIN ATOMIC
    SELECT c.oid::regclass
      FROM parse_ident(qualified) x, pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid
     WHERE cardinality(x) = 2 AND n.nspname = x[1] AND c.relname = x[2];
END;

-- This node's placements of tbl when tbl is a Citus table (none on a node
-- that holds none); NULL when it is no Citus table. (Citus hides shards from
-- pg_class, and names them in tbl's schema.)
CREATE FUNCTION fluent._local_placements(tbl regclass) RETURNS regclass[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET citus.override_table_visibility = off AS $$
DECLARE
    placements regclass[];
BEGIN
    IF fluent._citus_node() <> 'none' THEN
        EXECUTE 'SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = $1)
                 THEN ARRAY(SELECT r FROM pg_dist_shard s JOIN pg_dist_placement p ON p.shardid = s.shardid,
                                          fluent._relation_named(shard_name(s.logicalrelid, s.shardid, false)) r
                             WHERE s.logicalrelid = $1 AND p.shardstate = 1 AND r IS NOT NULL
                               AND p.groupid = (SELECT groupid FROM pg_dist_local_group)
                             ORDER BY s.shardid) END'
            INTO placements USING tbl;
    END IF;
    RETURN placements;
END $$;

-- The relations names name (schema-qualified), in order, NULL for a name
-- this node has no relation of: the shards a request of fluent_who_can
-- names, from the coordinator's metadata (src/placed_rows.rs).
CREATE FUNCTION fluent._relations_named(names text[]) RETURNS oid[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT ARRAY(SELECT fluent._relation_named(n)::oid FROM unnest(names) WITH ORDINALITY x (n, i) ORDER BY i);
END;

-- The relations a policy reads tbl's rows from on this node
-- (src/placements.rs): this node's placements of tbl when it is a Citus
-- table, tbl itself otherwise; and the type of what it reads of them, for
-- an empty array: its column's, or record for several columns.
CREATE FUNCTION fluent._local_rows_from(tbl regclass, cols name[], OUT relations text[], OUT col_type text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    SELECT CASE WHEN cardinality(cols) = 1 THEN format_type(a.atttypid, a.atttypmod) ELSE 'record' END INTO col_type
      FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = cols[1] AND NOT a.attisdropped;
    relations := coalesce(fluent._local_placements(tbl)::text[], ARRAY[tbl::text]);
END $$;

-- The policies of tbl as fluent._policies_of gives them, with the roles
-- named (role OIDs differ between nodes): what each shard of tbl must carry
-- (fluent._citus_local_shard_problems).
CREATE FUNCTION fluent._policies_named(tbl regclass) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT coalesce(jsonb_object_agg(pol.polname, jsonb_build_object(
               'command', pol.polcmd::text, 'permissive', pol.polpermissive,
               'roles', (SELECT array_agg(CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END ORDER BY 1)
                           FROM unnest(pol.polroles) r),
               'using', pg_get_expr(pol.polqual, pol.polrelid), 'check', pg_get_expr(pol.polwithcheck, pol.polrelid))),
           '{}'::jsonb)
      FROM pg_policy pol WHERE pol.polrelid = tbl;
END;

-- Each placement of the relations rels, with its node (name, port, whether
-- it is this one) and its shard's schema-qualified name, from this node's
-- metadata (src/shard_checks.rs).
CREATE FUNCTION fluent._citus_shards_by_node(rels regclass[], OUT node_name text, OUT node_port integer,
                                             OUT here boolean, OUT shard text, OUT relation regclass)
RETURNS SETOF record
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN QUERY EXECUTE
        'SELECT n.nodename::text, n.nodeport, n.groupid = l.groupid, shard_name(s.logicalrelid, s.shardid, false),
                s.logicalrelid::regclass
           FROM pg_dist_shard s JOIN pg_dist_placement p ON p.shardid = s.shardid
           JOIN pg_dist_node n ON n.groupid = p.groupid, pg_dist_local_group l
          WHERE s.logicalrelid = ANY ($1) AND p.shardstate = 1 AND n.noderole = ''primary'' AND n.isactive
          ORDER BY 1, 2, 4'
        USING rels;
END $$;

-- The relations that inherit from one of parents (directly or not) and are
-- not among known: on a Citus node, tables hung under shards, whose rows
-- queries on the shards read (src/placed_rows.rs refuses them,
-- fluent._citus_local_shard_problems reports them).
CREATE FUNCTION fluent._outside_children(parents oid[], known oid[]) RETURNS SETOF text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp SET citus.override_table_visibility = off
BEGIN ATOMIC
    WITH RECURSIVE below (relid) AS (
        SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = ANY (parents)
        UNION
        SELECT i.inhrelid FROM pg_inherits i JOIN below b ON i.inhparent = b.relid
    )
    SELECT b.relid::regclass::text FROM below b WHERE b.relid <> ALL (known) ORDER BY 1;
END;

-- On a Citus node, what no longer matches on the shards expected names
-- (schema-qualified, from the coordinator's metadata), each with its table,
-- the table's policies as fluent._policies_named gives them on the
-- coordinator and its item roles' triggers (fluent._item_triggers_named): a
-- shard missing, row security disabled or not forced, policies missing or
-- changed, permissive ones added, triggers missing, disabled or changed, a
-- parent or a child that is not one of the shards named. Compared as text:
-- Citus writes a table's policies on its shards as they read on the table
-- (its policies hold no sub-select, so no column is qualified with the
-- table's name). Returns [{relation, shard, problem, detail}]. It reads only
-- PostgreSQL's catalogs, as the caller (fluent_protection_problems on the
-- coordinator asks each node, src/shard_checks.rs), with Citus's hiding of
-- shards from pg_class turned off (it would hide the rows checked).
CREATE FUNCTION fluent._citus_local_shard_problems(expected jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET citus.override_table_visibility = off AS $$
DECLARE
    name text;
    spec jsonb;
    shard regclass;
    flags record;
    actual jsonb;
    k text;
    t jsonb;
    tg record;
    found jsonb := '[]';
    -- The shards named, as this node has them: the parents and children
    -- they may have among themselves. (Not a missing one's NULL: "<> ALL"
    -- with a NULL in the array is never true, and would hide every other.)
    known oid[] := ARRAY(SELECT r FROM jsonb_object_keys(expected) x, fluent._relation_named(x) r WHERE r IS NOT NULL);
BEGIN
    FOR name, spec IN SELECT * FROM jsonb_each(expected) LOOP
        shard := fluent._relation_named(name);
        IF shard IS NULL THEN
            found := found || jsonb_build_object('relation', spec ->> 'relation', 'shard', name,
                'problem', 'shard missing', 'detail', 'the node has no such relation: queries routed to it fail');
            CONTINUE;
        END IF;
        SELECT cl.relrowsecurity, cl.relforcerowsecurity INTO flags FROM pg_class cl WHERE cl.oid = shard;
        IF NOT flags.relrowsecurity THEN
            found := found || jsonb_build_object('relation', spec ->> 'relation', 'shard', name,
                'problem', 'row-level security disabled', 'detail', 'every role with privileges on the shard sees and changes its rows');
        END IF;
        IF NOT flags.relforcerowsecurity THEN
            found := found || jsonb_build_object('relation', spec ->> 'relation', 'shard', name,
                'problem', 'row-level security not forced', 'detail', 'the owner sees and changes the shard''s rows');
        END IF;
        actual := fluent._policies_named(shard);
        FOR k IN SELECT jsonb_object_keys(spec -> 'policies') LOOP
            IF NOT actual ? k THEN
                found := found || jsonb_build_object('relation', spec ->> 'relation', 'shard', name,
                    'problem', 'policy missing', 'detail', format('%s was dropped on the shard', k));
            ELSIF actual -> k <> spec -> 'policies' -> k THEN
                found := found || jsonb_build_object('relation', spec ->> 'relation', 'shard', name,
                    'problem', 'policy changed', 'detail', format('%s on the shard is not the table''s', k));
            END IF;
        END LOOP;
        FOR k IN SELECT x FROM jsonb_object_keys(actual) x
                  WHERE NOT spec -> 'policies' ? x AND (actual -> x ->> 'permissive')::boolean LOOP
            found := found || jsonb_build_object('relation', spec ->> 'relation', 'shard', name,
                'problem', 'permissive policy added', 'detail', format('%s is OR-ed with fluent''s policies on the shard and widens access', k));
        END LOOP;
        -- The item roles' triggers, as Citus created them on the shard.
        FOR t IN SELECT x FROM jsonb_array_elements(coalesce(spec -> 'triggers', '[]')) x LOOP
            SELECT x.tgenabled,
                   x.tgattr::text = ''
                   AND x.tgargs = coalesce((SELECT string_agg(convert_to(y.arg, getdatabaseencoding()) || '\x00'::bytea, ''::bytea ORDER BY y.n)
                                              FROM jsonb_array_elements_text(t -> 'args') WITH ORDINALITY y (arg, n)), ''::bytea)
                   AND CASE WHEN t ->> 'condition' IS NULL THEN x.tgqual IS NULL
                            ELSE position(format(' WHEN ((%s)) ', t ->> 'condition') IN pg_get_triggerdef(x.oid)) > 0 END AS as_created
              INTO tg FROM pg_trigger x
             WHERE x.tgrelid = shard AND x.tgfoid = (t ->> 'fn')::regprocedure AND x.tgtype = (t ->> 'tgtype')::int2
             ORDER BY x.tgenabled = 'O' DESC LIMIT 1;
            -- (No trigger found: tgenabled NULL. FOUND is the list here.)
            IF tg.tgenabled IS NULL OR NOT tg.as_created OR tg.tgenabled <> 'O' THEN
                found := found || jsonb_build_object('relation', spec ->> 'relation', 'shard', name,
                    'problem', CASE WHEN tg.tgenabled IS NULL THEN 'item role trigger missing'
                                    WHEN tg.tgenabled = 'D' THEN 'item role trigger disabled'
                                    ELSE 'item role trigger changed' END,
                    'detail', format('%s on the shard: %s', t ->> 'name', fluent._item_trigger_detail(t ->> 'name')));
            END IF;
        END LOOP;
        -- A query reads a shard's rows under the policies of the table it
        -- names: a parent other than a shard of the protection (INHERIT,
        -- ATTACH PARTITION on the node) reads them past fluent's.
        FOR k IN SELECT i.inhparent::regclass::text FROM pg_inherits i
                  WHERE i.inhrelid = shard AND i.inhparent <> ALL (known)
                  ORDER BY 1 LOOP
            found := found || jsonb_build_object('relation', spec ->> 'relation', 'shard', name,
                'problem', 'parent outside the protection',
                'detail', format('the shard inherits from %s: queries on it read and change the shard''s rows without these policies', k));
        END LOOP;
        -- A child of a shard holds rows that queries on the shard read, kept
        -- past the shard's own row security (a shard swapped for a look-alike
        -- that the real one inherits from).
        FOR k IN SELECT fluent._outside_children(ARRAY[shard], known) LOOP
            found := found || jsonb_build_object('relation', spec ->> 'relation', 'shard', name,
                'problem', 'child outside the protection',
                'detail', format('%s inherits from the shard: queries on the shard read its rows, which it keeps past the shard''s row security', k));
        END LOOP;
    END LOOP;
    RETURN found;
END $$;

-- On the Citus coordinator, the other primary nodes that are active.
CREATE FUNCTION fluent._citus_other_nodes(OUT node_name text, OUT node_port int) RETURNS SETOF record
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF fluent._citus_node() <> 'none' THEN
        RETURN QUERY EXECUTE 'SELECT n.nodename, n.nodeport FROM pg_dist_node n, pg_dist_local_group l
                               WHERE n.noderole = ''primary'' AND n.isactive AND n.groupid <> l.groupid ORDER BY 1, 2';
    END IF;
END $$;

-- The audit rows the other nodes hold (src/node_audit.rs): on Citus, the
-- assignments of item roles on Citus tables, which are recorded on the node
-- that holds them. Read as the caller, who must read fluent.audit_log on
-- every node.
CREATE VIEW fluent.citus_audit_log AS
SELECT n.node, r.*
  FROM fluent._citus_node_audit_logs() n, jsonb_populate_recordset(NULL::fluent.audit_log, n.entries::jsonb) r;
COMMENT ON VIEW fluent.citus_audit_log IS
    'On Citus: the audit logs of the other nodes (assignments of item roles on Citus tables are recorded on the node that holds them), read as the caller';

-- Whether tbl is a Citus table (distributed, reference or Citus local): its
-- rows are in its placements.
CREATE FUNCTION fluent._is_citus_table(tbl regclass) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    found boolean := false;
BEGIN
    IF fluent._citus_node() <> 'none' THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = $1)' INTO found USING tbl;
    END IF;
    RETURN found;
END $$;

-- The column that distributes tbl by hash on Citus; NULL for any other
-- table (a reference table, a plain one, no Citus).
CREATE FUNCTION fluent._citus_distribution_column(tbl regclass) RETURNS name
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col name;
BEGIN
    IF fluent._citus_node() = 'none' THEN
        RETURN NULL;
    END IF;
    EXECUTE 'SELECT column_to_column_name(logicalrelid, partkey) FROM pg_dist_partition
              WHERE logicalrelid = $1 AND partmethod = ''h'''
        INTO col USING tbl;
    RETURN col;
END $$;

-- The column pairs of foreign key constraint fk, each as
-- 'referencing=referenced' (names quoted as identifiers), sorted.
CREATE FUNCTION fluent._foreign_key_pairs(fk oid) RETURNS text[]
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT ARRAY(SELECT format('%I=%I', ra.attname, fa.attname)
                   FROM pg_constraint c CROSS JOIN LATERAL unnest(c.conkey, c.confkey) k (r, f)
                   JOIN pg_attribute ra ON ra.attrelid = c.conrelid AND ra.attnum = k.r
                   JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = k.f
                  WHERE c.oid = fk
                  ORDER BY 1);
END;

-- On Citus, a policy of tbl that reads table other (its membership table)
-- reads it on the node that runs it (src/placements.rs), and so does
-- other's membership policy read tbl: other's rows must be on the same
-- nodes as the rows of tbl they point at (other_col naming tbl's col).
-- Refused unless both are plain tables, both reference tables, or both
-- distributed, co-located, with a validated foreign key from other to tbl
-- that maps other's distribution column to tbl's and other_col to col (so
-- each membership row carries its item's distribution value). The same
-- holds for a child table (other) and its parent (tbl): the child's
-- policies read the parent's assignments, and its trigger the parent's row,
-- on the child's node.
CREATE FUNCTION fluent._citus_check_layout(tbl regclass, other regclass, col name, other_col name)
RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    same boolean;
    keyed boolean;
BEGIN
    IF fluent._citus_node() = 'none' THEN
        RETURN;
    END IF;
    IF other IS NULL THEN
        RETURN;
    END IF;
    EXECUTE 'SELECT (SELECT ROW(partmethod, repmodel, colocationid) FROM pg_dist_partition WHERE logicalrelid = $1)
                    IS NOT DISTINCT FROM
                    (SELECT ROW(partmethod, repmodel, colocationid) FROM pg_dist_partition WHERE logicalrelid = $2)'
        INTO same USING tbl, other;
    keyed := true;
    IF fluent._citus_distribution_column(tbl) IS NOT NULL AND fluent._citus_distribution_column(other) IS NOT NULL THEN
        keyed := EXISTS (SELECT 1 FROM pg_constraint c
                      WHERE c.contype = 'f' AND c.convalidated AND c.conrelid = other AND c.confrelid = tbl
                        AND fluent._foreign_key_pairs(c.oid)
                            @> ARRAY[format('%I=%I', fluent._citus_distribution_column(other), fluent._citus_distribution_column(tbl)),
                                     format('%I=%I', other_col, col)]);
    END IF;
    IF NOT same OR NOT keyed THEN
        PERFORM fluent._raise('citus_layout', ARRAY[tbl::text, other::text]);
    END IF;
END $$;

-- The secret that signs the acting user sent to the workers (src/citus.rs):
-- the same on every node, readable by the catalog owner only.
CREATE TABLE fluent.citus_secret (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    secret    text NOT NULL
);
COMMENT ON TABLE fluent.citus_secret IS
    'On Citus: the key that signs the identity the coordinator sends to the workers; the catalog owner''s only';

-- The bus: one row per catalog statement, in the order the coordinator ran
-- them (op: i insert, u update, d delete, t truncate, s the whole catalog).
CREATE TABLE fluent.citus_bus (
    tbl      name NOT NULL,
    op       "char" NOT NULL CHECK (op IN ('i', 'u', 'd', 't', 's')),
    old_rows jsonb,
    new_rows jsonb
);
-- Citus copies a reference table to a node added later by logical
-- replication (replicate_reference_tables(), the rebalancer), which needs a
-- replica identity; the bus keeps no rows, so a full one costs nothing.
ALTER TABLE fluent.citus_bus REPLICA IDENTITY FULL;
COMMENT ON TABLE fluent.citus_bus IS
    'On Citus: the catalog changes the coordinator sends to every worker, applied there and never kept (see "Running on Citus" in README.md)';

-- The condition that rows t and r of a catalog table have the same key: its
-- primary key, or for requirements its unique (module_id, action_id), where
-- NULLs are not distinct.
CREATE FUNCTION fluent._citus_key_match(rel regclass) RETURNS text
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT coalesce(
        (SELECT string_agg(format('t.%1$I = r.%1$I', a.attname), ' AND ')
           FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
          WHERE i.indrelid = rel AND i.indisprimary),
        (SELECT string_agg(format('t.%1$I IS NOT DISTINCT FROM r.%1$I', a.attname), ' AND ')
           FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
          WHERE i.indrelid = rel AND i.indisunique
            AND i.indexrelid = (SELECT min(x.indexrelid) FROM pg_index x WHERE x.indrelid = rel AND x.indisunique)));
END;

-- Applies one table's rows to this node's catalog, by primary key, with the
-- ids the coordinator gave them.
CREATE FUNCTION fluent._citus_apply_rows(tbl name, op "char", old_rows jsonb, new_rows jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel regclass := format('fluent.%I', tbl)::regclass;
    keys text;
    sets text;
BEGIN
    IF NOT tbl = ANY (fluent._citus_tables()) THEN
        RAISE EXCEPTION 'fluent.citus_bus names "%", which is not a replicated catalog table', tbl
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    keys := fluent._citus_key_match(rel);
    CASE op
    WHEN 'i' THEN
        EXECUTE format('INSERT INTO %s OVERRIDING SYSTEM VALUE SELECT * FROM jsonb_populate_recordset(NULL::%s, $1)',
                       rel, rel) USING new_rows;
    WHEN 'd' THEN
        EXECUTE format('DELETE FROM %s t USING jsonb_populate_recordset(NULL::%s, $1) r WHERE %s', rel, rel, keys)
          USING old_rows;
    WHEN 'u' THEN
        SELECT string_agg(format('%1$I = r.%1$I', a.attname), ', ')
          INTO sets
          FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attidentity = '' AND a.attgenerated = '';
        -- (The coordinator refuses a changed primary key: fluent._citus_send.)
        EXECUTE format('UPDATE %s t SET %s FROM jsonb_populate_recordset(NULL::%s, $1) r WHERE %s', rel, sets, rel, keys)
          USING new_rows;
    WHEN 't' THEN
        EXECUTE format('DELETE FROM %s', rel);
    END CASE;
END $$;

-- The trigger on every placement of the bus: on a worker, applies the row
-- to the local catalog as the catalog owner; keeps nothing anywhere (the
-- coordinator's own placement has nothing to apply). Only the roles allowed
-- to insert into the bus reach it: fluent_replicator, which
-- fluent._citus_send() becomes to send, and superusers. Whoever can log in
-- as fluent_replicator writes the workers' catalogs: keep its credentials
-- for the coordinator.
CREATE FUNCTION fluent._citus_receive() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t name;
BEGIN
    IF fluent._citus_node() <> 'worker' THEN
        RETURN NULL;
    END IF;
    -- The coordinator wrote the rows' literals for standard_conforming_strings
    -- on (the replicator's setting, fluent_citus_setup): read otherwise,
    -- they would not be the rows it sent.
    IF current_setting('standard_conforming_strings') <> 'on' THEN
        PERFORM fluent._raise('citus_apply_settings', ARRAY['standard_conforming_strings']);
    END IF;
    PERFORM fluent._citus_set_applying(true);
    IF NEW.op = 's' THEN
        DELETE FROM fluent.citus_secret;
        INSERT INTO fluent.citus_secret (secret) VALUES (NEW.new_rows ->> '#secret');
        -- The whole catalog: emptied children first, then filled parents first.
        FOREACH t IN ARRAY (SELECT array_agg(x ORDER BY o DESC) FROM unnest(fluent._citus_tables()) WITH ORDINALITY u (x, o)) LOOP
            PERFORM fluent._citus_apply_rows(t, 't', NULL, NULL);
        END LOOP;
        FOREACH t IN ARRAY fluent._citus_tables() LOOP
            PERFORM fluent._citus_apply_rows(t, 'i', NULL, coalesce(NEW.new_rows -> t, '[]'));
        END LOOP;
    ELSE
        PERFORM fluent._citus_apply_rows(NEW.tbl, NEW.op, NEW.old_rows, NEW.new_rows);
    END IF;
    PERFORM fluent._citus_set_applying(false);
    RETURN NULL;
END $$;
CREATE TRIGGER receive BEFORE INSERT ON fluent.citus_bus FOR EACH ROW EXECUTE FUNCTION fluent._citus_receive();

-- On the coordinator, once set up: sends each statement's rows, as
-- fluent_replicator (fluent._citus_send_rows, src/citus.rs). As the catalog
-- owner, whoever writes. A changed primary key is refused: the rows that
-- point at the old one would keep it here and lose it on the workers.
CREATE FUNCTION fluent._citus_send() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    old_rows jsonb;
    new_rows jsonb;
    moved boolean;
BEGIN
    IF fluent._citus_node() <> 'coordinator' OR NOT fluent._citus_bus_active() THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM fluent._citus_send_rows(TG_TABLE_NAME, 't', NULL, NULL);
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        EXECUTE format('SELECT EXISTS (SELECT FROM old_rows r WHERE NOT EXISTS (SELECT FROM new_rows t WHERE %s))',
                       fluent._citus_key_match(format('fluent.%I', TG_TABLE_NAME)::regclass))
           INTO moved;
        IF moved THEN
            RAISE EXCEPTION 'cannot change the primary key of a row of fluent.% on Citus', TG_TABLE_NAME
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Delete the row and insert it again.';
        END IF;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        EXECUTE 'SELECT jsonb_agg(to_jsonb(o)) FROM old_rows o' INTO old_rows;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        EXECUTE 'SELECT jsonb_agg(to_jsonb(n)) FROM new_rows n' INTO new_rows;
    END IF;
    IF old_rows IS NOT NULL OR new_rows IS NOT NULL THEN
        PERFORM fluent._citus_send_rows(TG_TABLE_NAME, lower(left(TG_OP, 1)), old_rows, new_rows);
    END IF;
    RETURN NULL;
END $$;

-- On a worker, the catalog is written by the coordinator's changes only.
-- (Elsewhere, a row goes on as it is.)
CREATE FUNCTION fluent._citus_refuse_on_worker() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT fluent._citus_applying() AND fluent._citus_node() = 'worker' THEN
        PERFORM fluent._raise('on_citus_worker', '{}');
    END IF;
    IF TG_LEVEL = 'ROW' AND TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;

DO $$
DECLARE
    t name;
    op text;
BEGIN
    -- What the workers do not need is not sent, and not written there either:
    -- protections and template applications are made on the coordinator,
    -- and tokens are verified there. For each row written: the event
    -- trigger that forgets dropped tables deletes from protected_tables on
    -- every DROP, which Citus also runs on the workers, and deletes nothing.
    FOREACH t IN ARRAY ARRAY['protected_tables', 'protected_columns', 'template_applications', 'token_settings',
                             'citus_secret']::name[] LOOP
        EXECUTE format('CREATE TRIGGER citus_refuse_on_worker BEFORE INSERT OR UPDATE OR DELETE
                        ON fluent.%I FOR EACH ROW EXECUTE FUNCTION fluent._citus_refuse_on_worker()', t);
        EXECUTE format('CREATE TRIGGER citus_refuse_truncate_on_worker BEFORE TRUNCATE
                        ON fluent.%I FOR EACH STATEMENT EXECUTE FUNCTION fluent._citus_refuse_on_worker()', t);
    END LOOP;
    FOREACH t IN ARRAY fluent._citus_tables() LOOP
        EXECUTE format('CREATE TRIGGER citus_refuse_on_worker BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
                        ON fluent.%I FOR EACH STATEMENT EXECUTE FUNCTION fluent._citus_refuse_on_worker()', t);
        FOREACH op IN ARRAY ARRAY['INSERT', 'UPDATE', 'DELETE'] LOOP
            EXECUTE format('CREATE TRIGGER citus_send_%s AFTER %s ON fluent.%I REFERENCING %s
                            FOR EACH STATEMENT EXECUTE FUNCTION fluent._citus_send()',
                           lower(op), op, t,
                           CASE op WHEN 'INSERT' THEN 'NEW TABLE AS new_rows'
                                   WHEN 'UPDATE' THEN 'OLD TABLE AS old_rows NEW TABLE AS new_rows'
                                   ELSE 'OLD TABLE AS old_rows' END);
        END LOOP;
        EXECUTE format('CREATE TRIGGER citus_send_truncate AFTER TRUNCATE ON fluent.%I
                        FOR EACH STATEMENT EXECUTE FUNCTION fluent._citus_send()', t);
    END LOOP;
END
$$;

-- Raises unless this node's placements of fluent.citus_bus have PostgreSQL's
-- own column types. Citus creates a placement with the types named without
-- a schema (jsonb), resolved by the node's default search path, which its
-- database's owner may set: a domain named jsonb there would run its owner's
-- check on every row the bus takes, the setup's (the whole catalog and the
-- cluster's secret, as the superuser) included.
CREATE FUNCTION fluent._citus_check_bus_types() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET citus.override_table_visibility = off AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_type t ON t.oid = a.atttypid
                WHERE c.relnamespace = 'fluent'::regnamespace AND c.relname LIKE 'citus\_bus%' AND a.attnum > 0
                  AND t.typnamespace <> 'pg_catalog'::regnamespace) THEN
        RAISE EXCEPTION 'a placement of fluent.citus_bus on this node has a column of a type outside pg_catalog'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'The database''s default search path named another type first when Citus created it: drop the placement and copy it again with a safe search path.';
    END IF;
END $$;

-- Runs command on every worker, on a connection of its own that commits on
-- its own (Citus's run_command_on_workers), and raises the first failure.
CREATE FUNCTION fluent._citus_on_workers(command text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    failed text;
BEGIN
    -- (In a DO block that pins the search path first: the workers' sessions
    -- take theirs from the database's defaults, which its owner may set.)
    EXECUTE 'SELECT format(''%s:%s: %s'', nodename, nodeport, result)
               FROM pg_catalog.run_command_on_workers($1) WHERE NOT success LIMIT 1'
        INTO failed
        USING format('DO $do$ BEGIN SET LOCAL search_path TO pg_catalog, pg_temp; EXECUTE %L; END $do$', command);
    IF failed IS NOT NULL THEN
        RAISE EXCEPTION 'fluent_citus_setup() could not run "%" on a worker: %', command, failed
            USING ERRCODE = 'connection_exception';
    END IF;
END $$;

-- Sets fluent up on a Citus cluster, from the coordinator, as a superuser:
-- the role the bus connects to the workers as, the bus as a reference
-- table, and the whole catalog sent to every worker (replacing what each
-- had). Run it again after adding a node. Returns the number of workers.
CREATE FUNCTION @extschema@.fluent_citus_setup() RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t name;
    f regprocedure;
    catalog jsonb := '{}';
    rows jsonb;
    workers int;
    pin text;
    missing boolean;
    distributed boolean;
    replicator_settings text[] := ARRAY['search_path = pg_catalog, pg_temp', 'standard_conforming_strings = on',
                                        'default_transaction_read_only = off', 'statement_timeout = 0',
                                        'lock_timeout = 0', 'idle_in_transaction_session_timeout = 0'];
BEGIN
    IF NOT fluent._current_role_is_superuser() THEN
        PERFORM fluent._raise('citus_setup', ARRAY['superuser']);
    ELSIF fluent._citus_node() = 'none' THEN
        PERFORM fluent._raise('citus_setup', ARRAY['citus']);
    ELSIF fluent._citus_node() = 'worker' THEN
        PERFORM fluent._raise('citus_setup', ARRAY['worker']);
    END IF;
    -- Every statement Citus sends to the workers in this transaction runs
    -- there with a search path nothing can capture: the workers' sessions
    -- take theirs from the database's defaults, which its (non-superuser)
    -- owner may set, and the catalog's rows go out as literals cast to types
    -- named without a schema ('...'::jsonb), whose domains would run their
    -- owner's code as this superuser, the cluster's secret in hand.
    -- (Citus sends a SET LOCAL on when it runs inside a statement, not
    -- directly in a function's body: hence the DO block.)
    PERFORM set_config('citus.propagate_set_commands', 'local', true);
    DO $pin$ BEGIN SET LOCAL search_path TO pg_catalog, pg_temp; END $pin$;
    -- Citus dials the workers as fluent_replicator (made on every node by
    -- the install script): it must log in there. The replicator's sessions
    -- on the workers take no setting from the database's defaults, which
    -- its (non-superuser) owner may choose (and fluent ignores the SETs Citus
    -- replays on them: src/citus.rs): its own come first. Its insert into the
    -- bus names types ('...'::jsonb) that a domain of the same name earlier
    -- in the search_path would capture, running the domain owner's check as
    -- the replicator; its string literals are written for
    -- standard_conforming_strings on (off, a backslash in a catalog value
    -- would turn \" into a bare quote and rewrite the rows); and a read-only
    -- default or a timeout would stop every catalog change, revokes
    -- included.
    -- Once the role is a Citus object (after the first setup), Citus sends
    -- the ALTER ROLEs below to every node in this transaction, a node added
    -- since included. Before, they reach the workers only through
    -- connections of their own, each checked.
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_dist_object WHERE classid = ''pg_authid''::regclass AND objid = $1)'
        INTO distributed USING 'fluent_replicator'::regrole;
    IF NOT distributed THEN
        FOREACH pin IN ARRAY ARRAY['LOGIN'] || ARRAY(SELECT 'SET ' || x FROM unnest(replicator_settings) x) LOOP
            PERFORM fluent._citus_on_workers('ALTER ROLE fluent_replicator ' || pin);
        END LOOP;
    END IF;
    ALTER ROLE fluent_replicator LOGIN;
    FOREACH pin IN ARRAY replicator_settings LOOP
        EXECUTE 'ALTER ROLE fluent_replicator SET ' || pin;
    END LOOP;
    -- Citus's assign_distributed_transaction_id() is PUBLIC: on the
    -- coordinator a session could give its transaction the distributed id of
    -- another's, whose signed identity the workers would then honour
    -- (src/citus.rs). Only Citus's connections to the workers need it: it is
    -- taken back here, and here only.
    SET LOCAL citus.enable_ddl_propagation = off;
    EXECUTE 'REVOKE EXECUTE ON FUNCTION pg_catalog.assign_distributed_transaction_id(integer, bigint, timestamp with time zone) FROM PUBLIC';
    -- Citus's run_command_on_* open connections of their own, as the caller,
    -- to any node, and run any SQL there: a session could claim a
    -- transaction id on a worker that way. They are PUBLIC; taken back on
    -- every node (the workers first: this uses one of them).
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = 'pg_catalog'::regnamespace
           AND p.proname IN ('master_run_on_worker', 'run_command_on_workers', 'run_command_on_all_nodes',
                             'run_command_on_coordinator', 'run_command_on_placements',
                             'run_command_on_colocated_placements', 'run_command_on_shards')
    LOOP
        PERFORM fluent._citus_on_workers(format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f));
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
    RESET citus.enable_ddl_propagation;
    IF NOT fluent._citus_bus_active() THEN
        -- Citus copies a reference table to a node added later as the
        -- table's owner, who must log in there: the bus is the calling
        -- superuser's, not the catalog owner's (who cannot).
        EXECUTE format('ALTER TABLE fluent.citus_bus OWNER TO %I', current_user);
        -- The bus's trigger goes to every placement (Citus copies a
        -- table's triggers to its shards only when told they are safe).
        SET LOCAL citus.enable_unsafe_triggers = on;
        EXECUTE 'SELECT pg_catalog.create_reference_table($1)' USING 'fluent.citus_bus'::regclass;
    END IF;
    -- Every placement of the bus has PostgreSQL's types, before anything is
    -- sent through it.
    PERFORM fluent._citus_check_bus_types();
    PERFORM fluent._citus_on_workers('SELECT fluent._citus_check_bus_types()');
    -- A worker added since the bus was distributed holds no placement of it
    -- until Citus copies the reference tables there: the catalog would not
    -- reach it.
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_dist_node n
                             WHERE n.isactive AND n.noderole = ''primary'' AND n.groupid <> 0
                               AND n.groupid NOT IN (SELECT p.groupid FROM pg_dist_placement p
                                                       JOIN pg_dist_shard s ON s.shardid = p.shardid
                                                      WHERE s.logicalrelid = ''fluent.citus_bus''::regclass))'
        INTO missing;
    IF missing THEN
        PERFORM fluent._raise('citus_setup', ARRAY['placements']);
    END IF;
    -- One consistent copy: no catalog write may commit while it is taken.
    FOREACH t IN ARRAY fluent._citus_tables() LOOP
        EXECUTE format('LOCK TABLE fluent.%I IN SHARE MODE', t);
    END LOOP;
    FOREACH t IN ARRAY fluent._citus_tables() LOOP
        EXECUTE format('SELECT coalesce(jsonb_agg(to_jsonb(r)), ''[]'') FROM fluent.%I r', t) INTO rows;
        catalog := catalog || jsonb_build_object(t, rows);
    END LOOP;
    -- The cluster's secret, made once (gen_random_uuid() draws from the
    -- server's strong random source).
    INSERT INTO fluent.citus_secret (secret)
    VALUES (replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''))
    ON CONFLICT (singleton) DO NOTHING;
    catalog := catalog || jsonb_build_object('#secret', (SELECT c.secret FROM fluent.citus_secret c));
    -- Sent as the calling superuser: Citus refuses a second role on the
    -- placements a transaction wrote (create_reference_table wrote them).
    -- Written as literals for standard_conforming_strings on, which the
    -- workers' replicator sessions read them with (not propagated: a
    -- set_config).
    PERFORM set_config('standard_conforming_strings', 'on', true);
    INSERT INTO fluent.citus_bus (tbl, op, new_rows) VALUES ('*', 's', catalog);
    EXECUTE 'SELECT count(*) FROM pg_catalog.pg_dist_node WHERE groupid <> 0 AND isactive' INTO workers;
    RETURN workers;
END $$;
COMMENT ON FUNCTION @extschema@.fluent_citus_setup() IS
    'On a Citus coordinator, as a superuser: sends the catalog to every worker and from then on every catalog change, in its transaction; run again after adding a node';


REVOKE ALL ON fluent.citus_bus, fluent.citus_secret FROM PUBLIC;
GRANT SELECT ON fluent.citus_bus TO fluent_admin;
GRANT INSERT ON fluent.citus_bus TO fluent_replicator;
ALTER TABLE fluent.citus_bus OWNER TO fluent_owner;
ALTER TABLE fluent.citus_secret OWNER TO fluent_owner;
REVOKE ALL ON FUNCTION fluent._citus_applying(), fluent._citus_tables(), fluent._citus_node(), fluent._citus_bus_active(),
    fluent._citus_key_match(regclass), @extschema@.fluent_citus_setup() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._citus_applying(), fluent._citus_tables(), fluent._citus_node(), fluent._citus_bus_active(),
    fluent._citus_key_match(regclass), @extschema@.fluent_citus_setup() TO fluent_admin;
GRANT EXECUTE ON FUNCTION fluent._citus_node() TO fluent_reader;
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOREACH f IN ARRAY ARRAY['fluent._citus_send_rows(text, text, jsonb, jsonb)', 'fluent._citus_bus_active()',
                             'fluent._citus_applying()', 'fluent._citus_set_applying(boolean)', 'fluent._citus_tables()',
                             'fluent._citus_node()', 'fluent._citus_key_match(regclass)',
                             'fluent._citus_apply_rows(name, "char", jsonb, jsonb)', 'fluent._citus_receive()',
                             'fluent._citus_send()', 'fluent._citus_refuse_on_worker()']::regprocedure[] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        IF (SELECT p.prosecdef FROM pg_proc p WHERE p.oid = f) THEN
            EXECUTE format('ALTER FUNCTION %s OWNER TO fluent_owner', f);
        ELSE
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO fluent_owner', f);
        END IF;
    END LOOP;
END
$$;

-- Issue 21: the team and workspace keys fold to constants (src/plans.rs), so
-- a policy may compare with the bare call, as the policies of Citus tables
-- do: Citus sends no sub-select to the shards.
CREATE FUNCTION fluent."rls_keys_support"("request" internal) RETURNS internal
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', 'rls_keys_support_wrapper';
REVOKE ALL ON FUNCTION fluent.rls_keys_support(internal) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent.rls_keys_support(internal) TO fluent_owner;
ALTER FUNCTION fluent.rls_owner_keys(text, text) SUPPORT fluent.rls_keys_support;
ALTER FUNCTION fluent.rls_owner_ids(text, text) SUPPORT fluent.rls_keys_support;
ALTER FUNCTION fluent.rls_owner_uuids(text, text) SUPPORT fluent.rls_keys_support;
ALTER FUNCTION fluent.rls_workspace_keys() SUPPORT fluent.rls_keys_support;
ALTER FUNCTION fluent.rls_workspace_ids() SUPPORT fluent.rls_keys_support;
ALTER FUNCTION fluent.rls_workspace_uuids() SUPPORT fluent.rls_keys_support;
-- The sub-select calling an rls_* helper in the variant typed for a column
-- kind: rls_owner_keys / _ids / _uuids return text[] / bigint[] / uuid[]. The
-- cast also makes `col = ANY ((SELECT ...)::type)` compare with the array's
-- elements instead of reading the sub-select as a set of rows. The planner
-- folds the helper to the keys either way (src/plans.rs); as a sub-select,
-- an InitPlan, the keys are not estimated one by one however many there are.
-- On a Citus node the call is bare: Citus sends no sub-select to the shards
-- (sql/citus.sql).
CREATE OR REPLACE FUNCTION fluent._typed_keys_sql(helper text, kind text, args text) RETURNS text
LANGUAGE sql STABLE
RETURN CASE WHEN fluent._citus_node() = 'none'
            THEN format('(SELECT fluent.%s_%s(%s))::%s', helper,
                        CASE kind WHEN 'text' THEN 'keys' WHEN 'int' THEN 'ids' ELSE 'uuids' END, args,
                        CASE kind WHEN 'text' THEN 'text[]' WHEN 'int' THEN 'bigint[]' ELSE 'uuid[]' END)
            ELSE format('fluent.%s_%s(%s)', helper,
                        CASE kind WHEN 'text' THEN 'keys' WHEN 'int' THEN 'ids' ELSE 'uuids' END, args) END;


-- Issue 21: membership tables on Citus: the policies read another table
-- through fluent.rls_local_rows, which the planner replaces with a
-- sub-select over the node's own placements (src/placements.rs).
CREATE FUNCTION fluent."_local_rows_sql"("table" oid, "columns" TEXT[], "condition" TEXT) RETURNS TEXT
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_local_rows_sql_wrapper';
CREATE FUNCTION fluent."rls_local_rows_support"("request" internal) RETURNS internal
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', 'rls_local_rows_support_wrapper';
CREATE FUNCTION fluent."rls_local_rows"("sample" anyelement, "tbl" oid, "cols" TEXT[], "condition" TEXT) RETURNS anyarray
STABLE PARALLEL SAFE SUPPORT fluent."rls_local_rows_support"
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', 'rls_local_rows_wrapper';
-- The values of tbl's columns cols (one: its values; two: rows of both) in
-- its rows that meet condition (about alias m), as an array: an
-- uncorrelated ARRAY(SELECT ...), an InitPlan run once per query
-- (src/placements.rs writes it). On a Citus node a call of
-- fluent.rls_local_rows, which the planner replaces with the same
-- sub-select over the node's own placements of tbl: Citus sends no
-- sub-select to the shards, and a shard's query may not read a distributed
-- table.
CREATE FUNCTION fluent._rows_of_sql(tbl regclass, cols name[], condition text) RETURNS text
LANGUAGE sql STABLE
RETURN CASE WHEN fluent._citus_node() = 'none'
            THEN fluent._local_rows_sql(tbl, cols::text[], condition)
            ELSE format('fluent.rls_local_rows(NULL::%s, %L::regclass, %L::text[], %L)',
                        CASE WHEN cardinality(cols) = 1
                             THEN (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                                    WHERE a.attrelid = tbl AND a.attname = cols[1] AND NOT a.attisdropped)
                             ELSE 'record' END,
                        tbl, cols, condition) END;

-- The test that a row of tbl is pointed at by a row of other that meets
-- condition: other's column other_col names tbl's col. On Citus, between
-- distributed tables, their distribution values must match too: a key need
-- not be unique across tenants there (a distributed table's unique keys
-- include its distribution column), and one tenant's membership row must
-- not reach another tenant's item with the same key.
CREATE FUNCTION fluent._pointed_at_sql(tbl regclass, col name, other regclass, other_col name, condition text)
RETURNS text
LANGUAGE sql STABLE
RETURN format('%I = ANY (%s)', col, fluent._rows_of_sql(other, ARRAY[other_col], condition))
    || CASE WHEN fluent._citus_distribution_column(tbl) IS NULL OR fluent._citus_distribution_column(other) IS NULL
            THEN ''
            ELSE format(' AND (%I, %I) = ANY (%s)', fluent._citus_distribution_column(tbl), col,
                        fluent._rows_of_sql(other, ARRAY[fluent._citus_distribution_column(other), other_col], condition)) END;
CREATE OR REPLACE FUNCTION fluent._scope_rows_sql(p fluent.protected_tables, module text, act text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    member_kind text;
    own boolean;
    rows_of text[] := '{}';
    assigns boolean := p.membership_table IS NOT NULL AND p.membership_role_column IS NULL;
BEGIN
    IF assigns THEN
        member_kind := fluent._key_kind(p.membership_table, p.membership_user_column, 'membership user column');
    END IF;
    FOREACH own IN ARRAY ARRAY[true, false] LOOP
        rows_of := rows_of || coalesce(nullif(concat_ws(' OR ',
            CASE WHEN p.owner_column IS NOT NULL THEN
                format('%I %s', p.owner_column, fluent._key_test_sql(p.owner_type, module, act, own)) END,
            CASE WHEN assigns THEN
                fluent._pointed_at_sql(p.table_name, p.row_column, p.membership_table, p.membership_row_column,
                                       format('m.%I %s', p.membership_user_column,
                                              fluent._key_test_sql(member_kind, module, act, own))) END), ''), 'false');
    END LOOP;
    RETURN fluent._reach_sql(module, act, rows_of[1], rows_of[2]);
END $$;
CREATE OR REPLACE FUNCTION fluent._item_rows_sql(p fluent.protected_tables, module text, act text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    a fluent.protected_tables := p;
    item_column name := p.row_column;
BEGIN
    IF p.parent_table IS NOT NULL THEN
        SELECT x.* INTO a FROM fluent.protected_tables x WHERE x.table_name = p.parent_table;
        item_column := p.parent_column;
    END IF;
    IF a.membership_role_column IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN format('(fluent.rls_items(%L, %L, %L) AND %s)', module, act, a.module,
        fluent._pointed_at_sql(p.table_name, item_column, a.membership_table, a.membership_row_column,
            format('(m.%1$I %2$s%3$s) AND m.%4$I = ANY (fluent.rls_item_roles(%5$L, %6$L, %7$L))',
                a.membership_user_column,
                fluent._key_test_sql(fluent._key_kind(a.membership_table, a.membership_user_column, 'membership user column'),
                                     module, act, true),
                -- (cardinality() of the folded teams is folded too: without teams,
                -- the team test goes, and with it the team index scan.)
                CASE WHEN a.membership_team_column IS NOT NULL
                     THEN format(' OR cardinality(fluent.rls_user_teams()) > 0 AND m.%I = ANY (fluent.rls_user_teams())',
                                 a.membership_team_column) ELSE '' END,
                a.membership_role_column, module, act, a.module)));
END $$;
CREATE OR REPLACE FUNCTION fluent._policy_definitions(p fluent.protected_tables, member_rel regclass)
RETURNS TABLE (on_membership boolean, policy name, command text, using_expr text, check_expr text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    workspace_filter text;
    reach jsonb := '{}';
    act text;
    member_in_reach text;
    member_written text;
BEGIN
    IF p.workspace_column IS NOT NULL THEN
        workspace_filter := format('%I = ANY (%s)', p.workspace_column,
            fluent._workspace_keys_sql(fluent._key_kind(p.table_name, p.workspace_column, 'workspace column')));
    END IF;
    FOREACH act IN ARRAY ARRAY[p.select_action, p.insert_action, p.update_action, p.delete_action] LOOP
        CONTINUE WHEN reach ? act;
        reach := reach || jsonb_build_object(act,
            concat_ws(' AND ', workspace_filter, fluent._rows_reached_sql(p, p.module, act)));
    END LOOP;
    -- A row written (by the action that governs the command) must land in
    -- reach: with an owner column, owned by a user the action's scope
    -- reaches. Without one, ownership is given by the membership table: a
    -- new row has no membership rows yet, so any scope will do to insert;
    -- an updated row must stay where the update reached it (the USING
    -- predicate again: an uncorrelated ARRAY(SELECT ...), run once per
    -- statement), or a user could move a row out of their reach (with
    -- membership_row_column naming a project, into another project).
    RETURN QUERY VALUES
        (false, 'fluent_select'::name, 'SELECT', reach->>p.select_action, NULL::text),
        (false, 'fluent_insert', 'INSERT', NULL, fluent._write_check_sql(p, workspace_filter, p.insert_action, false)),
        (false, 'fluent_update', 'UPDATE', reach->>p.update_action,
         CASE WHEN p.owner_column IS NULL THEN reach->>p.update_action
              ELSE fluent._write_check_sql(p, workspace_filter, p.update_action, true) END),
        (false, 'fluent_delete', 'DELETE', reach->>p.delete_action, NULL);
    IF p.membership_table IS NOT NULL THEN
        -- A membership row may be added, changed or removed only by someone
        -- whose write scope reaches the row it points at. (Membership rows
        -- stay readable: the table's own policies read them.) This is a
        -- write-path check, one primary-key probe per row written. (The
        -- reach reads the whole membership table, partitions and children
        -- included: assignments count wherever they are stored.)
        -- By scope only: an item role on the row (an editor's) does not
        -- let its holder assign item roles there, herself included.
        -- On a Citus node the same test is uncorrelated (Citus sends no
        -- sub-select to a shard): the row pointed at is among the rows in
        -- reach, read once per statement from the node's placements.
        member_in_reach := CASE WHEN fluent._citus_node() = 'none'
            THEN format('EXISTS (SELECT 1 FROM %s t WHERE t.%I = %s.%I AND %s)',
                        p.table_name, p.row_column, member_rel, p.membership_row_column,
                        concat_ws(' AND ', workspace_filter, fluent._scope_rows_sql(p, p.module, p.update_action)))
            ELSE fluent._pointed_at_sql(p.membership_table, p.membership_row_column, p.table_name, p.row_column,
                     concat_ws(' AND ', workspace_filter, fluent._scope_rows_sql(p, p.module, p.update_action))) END;
        -- An assignment written names an item role whose every action the
        -- writer's scope gives her on the item (folded into a list).
        member_written := member_in_reach || CASE WHEN p.membership_role_column IS NULL THEN '' ELSE
            format(' AND %I = ANY (fluent.rls_assignable_item_roles(%L, %L))',
                   p.membership_role_column, p.module, p.update_action) END;
        RETURN QUERY VALUES
            (true, 'fluent_member_select'::name, 'SELECT', 'true', NULL::text),
            (true, 'fluent_member_insert', 'INSERT', NULL, member_written),
            (true, 'fluent_member_update', 'UPDATE', member_in_reach, member_written),
            (true, 'fluent_member_delete', 'DELETE', member_in_reach, NULL);
    END IF;
END $$;
CREATE OR REPLACE FUNCTION @extschema@.fluent_protect(
    tbl regclass,
    module text,
    owner_column name DEFAULT NULL,
    membership_table regclass DEFAULT NULL,
    membership_row_column name DEFAULT NULL,
    membership_user_column name DEFAULT NULL,
    row_column name DEFAULT NULL,
    workspace_column name DEFAULT NULL,
    select_action text DEFAULT 'read',
    insert_action text DEFAULT 'write',
    update_action text DEFAULT 'write',
    delete_action text DEFAULT 'delete',
    membership_role_column name DEFAULT NULL,
    membership_team_column name DEFAULT NULL,
    parent_table regclass DEFAULT NULL,
    parent_column name DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p fluent.protected_tables;
    parent fluent.protected_tables;
    kind "char";
    was_enabled boolean;
    was_forced boolean;
    owner_kind text;
    member_was_enabled boolean;
    member_was_forced boolean;
    missing text[];
    related regclass;
    child regclass;
BEGIN
    PERFORM fluent._require_admin();
    PERFORM fluent._not_null(tbl, 'table');
    PERFORM fluent._module_id(module);

    SELECT c.relkind, c.relrowsecurity, c.relforcerowsecurity INTO kind, was_enabled, was_forced
      FROM pg_class c WHERE c.oid = tbl;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;
    IF EXISTS (SELECT 1 FROM fluent.protected_tables x WHERE x.table_name = tbl) THEN
        RAISE EXCEPTION 'table "%" is already protected by fluent', tbl
            USING ERRCODE = 'duplicate_object', HINT = 'Call fluent_unprotect() first to change how it is protected.';
    END IF;
    related := fluent._protected_root(tbl);
    IF related IS NOT NULL THEN
        RAISE EXCEPTION 'table "%" is already protected by fluent through "%", which it inherits from', tbl, related
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Partitions and inheritance children share the protection of their parent.';
    END IF;
    SELECT x.table_name INTO related FROM fluent.protected_tables x WHERE x.table_name IN (SELECT fluent._descendants(tbl));
    IF related IS NOT NULL THEN
        RAISE EXCEPTION 'table "%" has a partition or child, "%", that fluent protects on its own', tbl, related
            USING ERRCODE = 'object_in_use', HINT = 'Unprotect it first: fluent protects a table with all its partitions and children.';
    END IF;
    IF owner_column IS NULL AND membership_table IS NULL AND parent_table IS NULL THEN
        RAISE EXCEPTION 'fluent_protect needs an owner column, a membership table or a parent table'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (membership_role_column IS NOT NULL OR membership_team_column IS NOT NULL) AND membership_table IS NULL
       OR membership_team_column IS NOT NULL AND membership_role_column IS NULL THEN
        RAISE EXCEPTION 'a team or role column takes an assignment table'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Name the membership table, and its role column (membership_role_column) with the team column.';
    END IF;
    IF parent_table IS NOT NULL THEN
        -- A child table's rows are reached through their parent's item
        -- roles: one level, the parent's own assignments.
        SELECT x.* INTO parent FROM fluent.protected_tables x WHERE x.table_name = fluent_protect.parent_table;
        IF parent.membership_role_column IS NULL THEN
            RAISE EXCEPTION 'table "%" is not protected with item roles', parent_table
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Protect the parent first, with an assignment table (membership_role_column).';
        END IF;
        IF parent_table = tbl OR membership_table IS NOT NULL OR parent_column IS NULL THEN
            RAISE EXCEPTION 'a child table names another parent table and its parent_column, and has no membership table'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- Its rows are then kept to the workspace as its parent's are: an
        -- assignment gives nothing in another workspace.
        IF parent.workspace_column IS NOT NULL AND workspace_column IS NULL THEN
            RAISE EXCEPTION 'table "%" needs a workspace column, as its parent "%" has one', tbl, parent_table
                USING ERRCODE = 'invalid_parameter_value', HINT = 'Name it with workspace_column.';
        END IF;
        IF (SELECT atttypid FROM pg_attribute WHERE attrelid = tbl AND attname = parent_column AND NOT attisdropped)
           IS DISTINCT FROM
           (SELECT atttypid FROM pg_attribute WHERE attrelid = parent.membership_table
                                                AND attname = parent.membership_row_column AND NOT attisdropped) THEN
            RAISE EXCEPTION 'column "%" of "%" must exist and have the type of "%"''s items (column "%" of "%")',
                parent_column, tbl, parent_table, parent.membership_row_column, parent.membership_table
                USING ERRCODE = 'datatype_mismatch';
        END IF;
    ELSIF parent_column IS NOT NULL THEN
        RAISE EXCEPTION 'parent_column takes a parent table' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Policies fluent created for a protection whose record is gone (a
    -- schema-only restore) are replaced.
    IF fluent._has_orphaned_policies(tbl) THEN
        RAISE NOTICE 'replacing the policies fluent created on "%" earlier, which fluent.protected_tables does not record', tbl;
        PERFORM fluent._remove_policies(tbl, NULL);
        SELECT c.relrowsecurity, c.relforcerowsecurity INTO was_enabled, was_forced FROM pg_class c WHERE c.oid = tbl;
    END IF;
    FOR related IN SELECT tbl UNION ALL SELECT fluent._descendants(tbl)
                   UNION ALL SELECT membership_table WHERE membership_table IS NOT NULL
                   UNION ALL SELECT fluent._descendants(membership_table) WHERE membership_table IS NOT NULL LOOP
        IF EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = related AND polpermissive) THEN
            RAISE EXCEPTION 'table "%" already has permissive row-level security policies', related
                USING ERRCODE = 'object_in_use',
                      HINT = 'Permissive policies are OR-ed with fluent''s and would widen access: drop them or make them AS RESTRICTIVE.';
        END IF;
    END LOOP;

    IF owner_column IS NOT NULL THEN
        owner_kind := fluent._key_kind(tbl, owner_column, 'owner column');
    END IF;
    IF membership_table IS NOT NULL THEN
        IF membership_row_column IS NULL OR membership_user_column IS NULL THEN
            RAISE EXCEPTION 'a membership table needs membership_row_column and membership_user_column'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF membership_table = tbl THEN
            RAISE EXCEPTION 'table "%" cannot be its own membership table', tbl USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF EXISTS (SELECT 1 FROM fluent.protected_tables x WHERE x.membership_table = fluent_protect.membership_table) THEN
            RAISE EXCEPTION 'table "%" is already the membership table of another protected table', membership_table
                USING ERRCODE = 'object_in_use', HINT = 'Give each protected table a membership table of its own.';
        END IF;
        IF row_column IS NULL THEN
            -- The membership rows point at the table's single-column primary key.
            row_column := fluent._primary_key_column(tbl);
            IF row_column IS NULL THEN
                RAISE EXCEPTION 'table "%" has no single-column primary key for membership rows to point at', tbl
                    USING ERRCODE = 'invalid_parameter_value', HINT = 'Name the column with row_column.';
            END IF;
        END IF;
        PERFORM fluent._key_kind(membership_table, membership_user_column, 'membership user column');
        -- Item roles and teams are named by their names.
        IF membership_role_column IS NOT NULL
           AND fluent._key_kind(membership_table, membership_role_column, 'membership role column') <> 'text'
           OR membership_team_column IS NOT NULL
           AND fluent._key_kind(membership_table, membership_team_column, 'membership team column') <> 'text' THEN
            RAISE EXCEPTION 'the role and team columns of "%" must be of type text or varchar', membership_table
                USING ERRCODE = 'datatype_mismatch', HINT = 'They hold item role and team names.';
        END IF;
        IF membership_team_column IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                            WHERE i.indrelid = membership_table AND a.attname = membership_team_column) THEN
            RAISE NOTICE 'no index on %(%): every query on "%" will scan it', membership_table, membership_team_column, tbl
                USING HINT = format('CREATE INDEX ON %s (%I);', membership_table, membership_team_column);
        END IF;
        IF (SELECT atttypid FROM pg_attribute WHERE attrelid = tbl AND attname = row_column AND NOT attisdropped)
           IS DISTINCT FROM
           (SELECT atttypid FROM pg_attribute WHERE attrelid = membership_table AND attname = membership_row_column AND NOT attisdropped) THEN
            RAISE EXCEPTION 'column "%" of "%" and column "%" of "%" must exist and have the same type',
                row_column, tbl, membership_row_column, membership_table USING ERRCODE = 'datatype_mismatch';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                        WHERE i.indrelid = membership_table AND a.attname = membership_user_column) THEN
            RAISE NOTICE 'no index on %(%): every query on "%" will scan it', membership_table, membership_user_column, tbl
                USING HINT = format('CREATE INDEX ON %s (%I);', membership_table, membership_user_column);
        END IF;
        SELECT c.relrowsecurity, c.relforcerowsecurity INTO member_was_enabled, member_was_forced
          FROM pg_class c WHERE c.oid = membership_table;
    END IF;
    PERFORM fluent._citus_check_layout(tbl, membership_table, row_column, membership_row_column);
    IF parent_table IS NOT NULL THEN
        PERFORM fluent._citus_check_layout(parent_table, tbl, parent.row_column, parent_column);
    END IF;
    -- Citus writes a reference table's rows on every node holding it, where
    -- the item roles' triggers would each check (and lock) and record them.
    IF (membership_role_column IS NOT NULL OR parent_table IS NOT NULL)
       AND fluent._is_citus_table(tbl) AND fluent._citus_distribution_column(tbl) IS NULL THEN
        PERFORM fluent._raise('citus_item_roles', ARRAY[tbl::text]);
    END IF;
    -- Item roles name their items by key: the key must be the items', and
    -- an assignment must go with its item (sql/items.sql). A row moved to
    -- another partition is deleted and inserted again, out of reach of the
    -- checks of its update, and a unique key or a foreign key does not span
    -- inheritance children: item tables and child tables stand alone, and
    -- an assignment table's children are its partitions.
    IF (membership_role_column IS NOT NULL OR parent_table IS NOT NULL)
       AND (kind = 'p' OR EXISTS (SELECT 1 FROM fluent._descendants(tbl))) THEN
        RAISE EXCEPTION 'table "%" has partitions or inheritance children, which item roles do not support', tbl
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Protect a table without partitions or children with item roles, or without item roles.';
    END IF;
    IF membership_role_column IS NOT NULL
       AND EXISTS (SELECT 1 FROM fluent._descendants(membership_table) d JOIN pg_class c ON c.oid = d
                    WHERE NOT c.relispartition OR c.relkind NOT IN ('r', 'p')) THEN
        RAISE EXCEPTION 'assignment table "%" has inheritance children, which its foreign key does not cover', membership_table
            USING ERRCODE = 'feature_not_supported', HINT = 'Partition it instead: partitions share its foreign key.';
    END IF;
    IF membership_role_column IS NOT NULL
       AND fluent._key_kind(membership_table, membership_user_column, 'membership user column') <> 'text' THEN
        RAISE EXCEPTION 'the user column of assignment table "%" must be of type text or varchar', membership_table
            USING ERRCODE = 'datatype_mismatch', HINT = 'Assignments name users by their user keys.';
    END IF;
    IF membership_role_column IS NOT NULL
       AND NOT fluent._has_item_foreign_key(membership_table, membership_row_column, tbl, row_column, true) THEN
        RAISE EXCEPTION 'assignment table "%" needs a foreign key to "%" that cascades deletes and moves no row to another item on update',
            membership_table, tbl
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = (SELECT format('ALTER TABLE %s ADD FOREIGN KEY (%s) REFERENCES %s (%s) ON DELETE CASCADE;',
                                  membership_table, l.referencing_list, tbl, l.referenced_list)
                      FROM fluent._item_key_lists(membership_table, membership_row_column, tbl, row_column) l);
    END IF;
    IF parent_table IS NOT NULL
       AND NOT fluent._has_item_foreign_key(tbl, parent_column, parent_table, parent.row_column, false) THEN
        RAISE EXCEPTION 'child table "%" needs a foreign key to its parent "%"', tbl, parent_table
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = (SELECT format('ALTER TABLE %s ADD FOREIGN KEY (%s) REFERENCES %s (%s);',
                                        tbl, l.referencing_list, parent_table, l.referenced_list)
                            FROM fluent._item_key_lists(tbl, parent_column, parent_table, parent.row_column) l);
    END IF;
    -- The catalog row, by column name.
    p := jsonb_populate_record(NULL::fluent.protected_tables, jsonb_build_object(
        'table_name', tbl, 'module', module, 'owner_column', owner_column, 'owner_type', owner_kind,
        'membership_table', membership_table, 'membership_row_column', membership_row_column,
        'membership_user_column', membership_user_column, 'row_column', row_column, 'workspace_column', workspace_column,
        'select_action', fluent._name(select_action, 'action'), 'insert_action', fluent._name(insert_action, 'action'),
        'update_action', fluent._name(update_action, 'action'), 'delete_action', fluent._name(delete_action, 'action'),
        'rls_was_enabled', was_enabled, 'rls_was_forced', was_forced,
        'membership_rls_was_enabled', member_was_enabled, 'membership_rls_was_forced', member_was_forced,
        'membership_role_column', membership_role_column, 'membership_team_column', membership_team_column,
        'parent_table', parent_table, 'parent_column', parent_column));

    SELECT array_agg(DISTINCT a) INTO missing
      FROM unnest(ARRAY[p.select_action, p.insert_action, p.update_action, p.delete_action]) a
     WHERE NOT EXISTS (SELECT 1 FROM fluent.actions x WHERE x.module_id = fluent._module_id(module) AND x.name = a);
    IF missing IS NOT NULL THEN
        RAISE WARNING 'fluent module "%" has no action %: those commands on "%" will be denied to everyone',
            module, array_to_string(missing, ', '), tbl;
    END IF;

    PERFORM fluent._install_policies(tbl, p, false);
    PERFORM fluent._install_item_triggers(tbl, p, false);
    FOR child IN SELECT fluent._descendants(tbl) LOOP
        PERFORM fluent._install_policies(child, p, false);
        PERFORM fluent._install_item_triggers(child, p, false);
    END LOOP;
    IF membership_table IS NOT NULL THEN
        -- Its partitions and children too: the table's policies read them
        -- (through the membership table), so writing one directly must be
        -- kept within reach as well.
        FOR child IN SELECT membership_table UNION ALL SELECT fluent._descendants(membership_table) LOOP
            PERFORM fluent._install_policies(child, p, true);
            PERFORM fluent._install_item_triggers(child, p, true);
        END LOOP;
    END IF;
    -- What was created, as fluent_protection_problems() will compare it.
    p := jsonb_populate_record(p, jsonb_build_object(
        'policies', fluent._policies_of(tbl),
        'membership_policies', CASE WHEN membership_table IS NOT NULL THEN fluent._policies_of(membership_table) END));
    INSERT INTO fluent.protected_tables SELECT p.*;
END $$;
REVOKE ALL ON FUNCTION fluent.rls_local_rows_support(internal), fluent._rows_of_sql(regclass, name[], text),
    fluent._pointed_at_sql(regclass, name, regclass, name, text), fluent._citus_distribution_column(regclass),
    fluent._local_rows_from(regclass, name[]), fluent._citus_check_layout(regclass, regclass, name, name),
    fluent._local_rows_sql(oid, text[], text), fluent.rls_local_rows(anyelement, oid, text[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent.rls_local_rows(anyelement, oid, text[], text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._rows_of_sql(regclass, name[], text), fluent._pointed_at_sql(regclass, name, regclass, name, text),
    fluent._citus_distribution_column(regclass), fluent._local_rows_from(regclass, name[]),
    fluent._citus_check_layout(regclass, regclass, name, name), fluent._local_rows_sql(oid, text[], text) TO fluent_admin;
GRANT EXECUTE ON FUNCTION fluent._rows_of_sql(regclass, name[], text), fluent._pointed_at_sql(regclass, name, regclass, name, text),
    fluent._citus_distribution_column(regclass), fluent._local_rows_sql(oid, text[], text) TO fluent_reader;
GRANT EXECUTE ON FUNCTION fluent.rls_local_rows_support(internal), fluent._rows_of_sql(regclass, name[], text),
    fluent._pointed_at_sql(regclass, name, regclass, name, text), fluent._citus_distribution_column(regclass),
    fluent._local_rows_from(regclass, name[]), fluent._citus_check_layout(regclass, regclass, name, name),
    fluent._local_rows_sql(oid, text[], text), fluent.rls_local_rows(anyelement, oid, text[], text) TO fluent_owner;

-- Issue 21: fluent_who_can over Citus tables reads the row on the nodes
-- holding the table's placements, by requests the coordinator signs; and
-- fluent_protection_problems asks each node about its shards.
CREATE FUNCTION fluent."_citus_placed_rows"("request" TEXT) RETURNS TEXT
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_citus_placed_rows_wrapper';
CREATE FUNCTION fluent."_citus_shard_problems"("relations" oid[])
RETURNS TABLE ("relation" TEXT, "problem" TEXT, "detail" TEXT)
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_citus_shard_problems_wrapper';
REVOKE ALL ON FUNCTION fluent._local_placements(regclass), fluent._relations_named(text[]),
    fluent._citus_placed_rows(text), fluent._is_citus_table(regclass),
    fluent._relation_named(text), fluent._policies_named(regclass), fluent._citus_local_shard_problems(jsonb),
    fluent._citus_shard_problems(oid[]), fluent._citus_shards_by_node(regclass[]), fluent._citus_on_workers(text),
    fluent._citus_check_bus_types(), fluent._outside_children(oid[], oid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._citus_placed_rows(text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._local_placements(regclass), fluent._relations_named(text[]),
    fluent._is_citus_table(regclass), fluent._relation_named(text),
    fluent._policies_named(regclass), fluent._citus_local_shard_problems(jsonb), fluent._citus_shard_problems(oid[]),
    fluent._citus_shards_by_node(regclass[]), fluent._outside_children(oid[], oid[]) TO fluent_admin;
GRANT EXECUTE ON FUNCTION fluent._is_citus_table(regclass), fluent._policies_named(regclass), fluent._citus_shard_problems(oid[]),
    fluent._citus_local_shard_problems(jsonb), fluent._relation_named(text), fluent._outside_children(oid[], oid[])
    TO fluent_reader;
GRANT EXECUTE ON FUNCTION fluent._local_placements(regclass), fluent._relations_named(text[]),
    fluent._citus_placed_rows(text), fluent._is_citus_table(regclass),
    fluent._relation_named(text), fluent._policies_named(regclass), fluent._citus_local_shard_problems(jsonb),
    fluent._citus_shard_problems(oid[]), fluent._citus_shards_by_node(regclass[]), fluent._citus_on_workers(text),
    fluent._citus_check_bus_types(), fluent._outside_children(oid[], oid[]) TO fluent_owner;
-- pg_read_all_data reads past grants, not past row security.
ALTER TABLE fluent.token_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE fluent.citus_secret ENABLE ROW LEVEL SECURITY;

-- Column limits are refused on Citus tables (sql/columns.sql).
CREATE OR REPLACE FUNCTION @extschema@.fluent_protect_columns(
    tbl regclass,
    columns name[],
    module text,
    read_action text DEFAULT 'read',
    write_action text DEFAULT 'write',
    masked_view text DEFAULT NULL
) RETURNS regclass
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p fluent.protected_tables;
    col name;
    view_name text;
    parts text[];
    owner_is_exempt boolean;
    missing text[];
BEGIN
    PERFORM fluent._require_admin();
    PERFORM fluent._not_null(tbl, 'table');
    PERFORM fluent._not_null(columns, 'columns');
    PERFORM fluent._module_id(module);
    read_action := fluent._name(read_action, 'action');
    write_action := fluent._name(write_action, 'action');
    SELECT x.* INTO p FROM fluent.protected_tables x WHERE x.table_name = tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table "%" is not protected by fluent', tbl
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Protect its rows with fluent_protect() first: column limits apply within the rows a user may see.';
    END IF;
    IF cardinality(columns) = 0 THEN
        RAISE EXCEPTION 'fluent_protect_columns needs at least one column' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH col IN ARRAY columns LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION 'column "%" of relation "%" does not exist', col, tbl USING ERRCODE = 'undefined_column';
        END IF;
    END LOOP;
    -- On Citus the view's shard queries run as the querying role, not as the
    -- view's owner: they could not read the limited columns on the workers.
    IF fluent._is_citus_table(tbl) THEN
        PERFORM fluent._raise('citus_column_limits', ARRAY[tbl::text]);
    END IF;
    -- The view reads the table with its owner's rights: the owner must be
    -- subject to row-level security, or the view would show every row.
    SELECT r.rolsuper OR r.rolbypassrls INTO owner_is_exempt
      FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.oid = tbl;
    IF owner_is_exempt THEN
        RAISE EXCEPTION 'table "%" is owned by a role that bypasses row-level security', tbl
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'The masked view reads the table as its owner: give the table a non-superuser owner without BYPASSRLS (ALTER TABLE ... OWNER TO).';
    END IF;
    SELECT array_agg(DISTINCT a) INTO missing FROM unnest(ARRAY[read_action, write_action]) a
     WHERE NOT EXISTS (SELECT 1 FROM fluent.actions x WHERE x.module_id = fluent._module_id(module) AND x.name = a);
    IF missing IS NOT NULL THEN
        RAISE WARNING 'fluent module "%" has no action %: the columns are limited for everyone', module, array_to_string(missing, ', ');
    END IF;
    -- The view: the one named (in the table's schema unless qualified), the
    -- one made before, or <table>_masked beside the table.
    IF masked_view IS NOT NULL THEN
        parts := parse_ident(masked_view);
        IF cardinality(parts) > 2 THEN
            RAISE EXCEPTION 'improper view name "%"', masked_view USING ERRCODE = 'invalid_name';
        END IF;
        SELECT format('%I.%I', coalesce(parts[cardinality(parts) - 1], n.nspname), parts[cardinality(parts)]) INTO view_name
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
    ELSIF p.masked_view IS NOT NULL THEN
        view_name := p.masked_view::text;
    ELSE
        SELECT format('%I.%I', n.nspname, c.relname || '_masked') INTO view_name
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
    END IF;
    IF p.masked_view IS NOT NULL AND to_regclass(view_name) IS DISTINCT FROM p.masked_view THEN
        RAISE EXCEPTION 'the columns of "%" are masked in view "%" already', tbl, p.masked_view
            USING ERRCODE = 'duplicate_object', HINT = 'Leave masked_view out to add columns to it.';
    END IF;
    IF p.masked_view IS NULL AND to_regclass(view_name) IS NOT NULL THEN
        RAISE EXCEPTION 'relation "%" already exists', view_name
            USING ERRCODE = 'duplicate_table', HINT = 'Name another view with masked_view.';
    END IF;
    INSERT INTO fluent.protected_columns AS x (table_name, column_name, module, read_action, write_action)
    SELECT tbl, c, module, read_action, write_action FROM unnest(columns) c
    ON CONFLICT (table_name, column_name) DO UPDATE
       SET module = EXCLUDED.module, read_action = EXCLUDED.read_action, write_action = EXCLUDED.write_action;
    PERFORM fluent._install_column_limits(p, view_name);
    RETURN to_regclass(view_name);
END $$;
CREATE OR REPLACE FUNCTION @extschema@.fluent_protection_problems()
RETURNS TABLE (table_name regclass, relation regclass, problem text, detail text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p fluent.protected_tables;
    expected jsonb;
    actual jsonb;
    c record;
    k text;
    on_membership boolean;
BEGIN
    FOR p IN SELECT * FROM fluent.protected_tables x ORDER BY x.table_name::text LOOP
        table_name := p.table_name;
        FOR relation, expected, on_membership IN
            SELECT p.table_name, p.policies, false
            UNION ALL SELECT d, p.policies, false FROM fluent._descendants(p.table_name) d
            UNION ALL SELECT p.membership_table, p.membership_policies, true WHERE p.membership_table IS NOT NULL
            -- The membership table's partitions and children (but those
            -- under another protection's membership table, checked there)
            -- carry its policies, where the row written is named by the
            -- partition or child: the recorded text with that name in place
            -- of the membership table's, as PostgreSQL prints it (the
            -- relation's name, quoted as needed, then the column). One named
            -- t or m, as the policies' inner aliases are, is printed with
            -- those renamed (t_1), and reported as changed although it is not.
            UNION ALL
            SELECT d, (SELECT jsonb_object_agg(x.policy, x.def || jsonb_build_object(
                                  'using', replace(x.def->>'using', member_ref, child_ref),
                                  'check', replace(x.def->>'check', member_ref, child_ref)))
                         FROM jsonb_each(p.membership_policies) x (policy, def)), true
              FROM fluent._descendants(p.membership_table) d
             CROSS JOIN LATERAL (
                 SELECT (SELECT quote_ident(cl.relname) FROM pg_class cl WHERE cl.oid = p.membership_table)
                            || '.' || quote_ident(p.membership_row_column),
                        (SELECT quote_ident(cl.relname) FROM pg_class cl WHERE cl.oid = d)
                            || '.' || quote_ident(p.membership_row_column)) r (member_ref, child_ref)
             WHERE p.membership_table IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM fluent.protected_tables o
                                WHERE o.table_name <> p.table_name
                                  AND (o.membership_table = d OR d IN (SELECT fluent._descendants(o.membership_table))))
        LOOP
            SELECT cl.relrowsecurity, cl.relforcerowsecurity INTO c FROM pg_class cl WHERE cl.oid = relation;
            IF NOT c.relrowsecurity THEN
                problem := 'row-level security disabled';
                detail := 'every role with privileges on it sees and changes every row';
                RETURN NEXT;
            END IF;
            IF NOT c.relforcerowsecurity THEN
                problem := 'row-level security not forced';
                detail := 'its owner sees and changes every row';
                RETURN NEXT;
            END IF;
            actual := fluent._policies_of(relation);
            FOR k IN SELECT jsonb_object_keys(expected) LOOP
                IF NOT actual ? k THEN
                    problem := 'policy missing';
                    detail := format('%s was dropped', k);
                    RETURN NEXT;
                ELSIF actual -> k <> expected -> k THEN
                    problem := 'policy changed';
                    detail := format('%s is not what fluent_protect() created', k);
                    RETURN NEXT;
                END IF;
            END LOOP;
            FOR k IN SELECT x FROM jsonb_object_keys(actual) x
                      WHERE NOT expected ? x AND (actual -> x ->> 'permissive')::boolean LOOP
                problem := 'permissive policy added';
                detail := format('%s is OR-ed with fluent''s policies and widens access', k);
                RETURN NEXT;
            END LOOP;
            -- A query reads a child's rows under the policies of the table
            -- it names: a parent outside the protection (INHERIT, ATTACH
            -- PARTITION) reads and changes them past fluent's. (The
            -- membership table's partitions and children have it, or its
            -- partitions and children, as parents.)
            FOR c IN
                SELECT i.inhparent::regclass AS parent, pt.module
                  FROM pg_inherits i LEFT JOIN fluent.protected_tables pt ON pt.table_name = i.inhparent
                 WHERE i.inhrelid = relation AND i.inhparent <> p.table_name
                   AND i.inhparent NOT IN (SELECT fluent._descendants(p.table_name))
                   AND NOT (on_membership AND (i.inhparent = p.membership_table
                                               OR i.inhparent IN (SELECT fluent._descendants(p.membership_table))))
                 ORDER BY 1
            LOOP
                problem := 'parent outside the protection';
                detail := format('it inherits from %s, which %s: queries on %s read and change its rows without these policies; detach it (NO INHERIT or DETACH PARTITION)',
                                 c.parent, coalesce('fluent protects for module ' || c.module, 'fluent does not protect'), c.parent);
                RETURN NEXT;
            END LOOP;
        END LOOP;
        -- Limited columns the table, or one of its partitions and children,
        -- lets roles read directly, past the masked view.
        FOR c IN
            SELECT DISTINCT cl.oid::regclass AS rel, pc.column_name,
                   CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS grantee,
                   cl.oid = p.table_name AS on_table
              FROM fluent.protected_columns pc
              JOIN pg_class cl ON cl.oid = pc.table_name OR cl.oid IN (SELECT fluent._descendants(p.table_name))
              JOIN pg_attribute att ON att.attrelid = cl.oid AND att.attname = pc.column_name
             CROSS JOIN LATERAL (SELECT * FROM aclexplode(cl.relacl) UNION ALL SELECT * FROM aclexplode(att.attacl)) a
              LEFT JOIN pg_roles r ON r.oid = a.grantee
             WHERE pc.table_name = p.table_name AND a.privilege_type = 'SELECT' AND a.grantee <> cl.relowner
             ORDER BY 4 DESC, 1, 2, 3
        LOOP
            relation := c.rel;
            problem := 'limited column readable';
            detail := CASE WHEN c.rel = p.table_name
                THEN format('%s may read column %I of the table itself, unmasked: revoke it and grant the other columns', c.grantee, c.column_name)
                ELSE format('%s may read column %I of this partition or child directly, unmasked: revoke it', c.grantee, c.column_name) END;
            RETURN NEXT;
        END LOOP;
        IF p.masked_view IS NOT NULL THEN
            RETURN QUERY SELECT p.table_name, x.relation, x.problem, x.detail FROM fluent._column_limit_problems(p) x;
        END IF;
        RETURN QUERY SELECT p.table_name, x.relation, x.problem, x.detail FROM fluent._item_trigger_problems(p) x;
        -- On Citus, each node's shards of the table, of its membership
        -- table and of their partitions, against the policies their tables
        -- carry here.
        IF fluent._is_citus_table(p.table_name) THEN
            RETURN QUERY
                SELECT p.table_name, coalesce(x.relation::regclass, p.table_name), x.problem, x.detail
                  FROM fluent._citus_shard_problems(ARRAY(
                           SELECT p.table_name UNION SELECT fluent._descendants(p.table_name)
                           UNION SELECT p.membership_table WHERE p.membership_table IS NOT NULL
                           UNION SELECT fluent._descendants(p.membership_table) WHERE p.membership_table IS NOT NULL)::oid[]) x;
        END IF;
        FOR c IN
            WITH RECURSIVE protected_rels (relid) AS (
                SELECT p.table_name::oid UNION ALL SELECT d::oid FROM fluent._descendants(p.table_name) d
            ), readers (viewid) AS (
                SELECT r.ev_class FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                 WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid IN (SELECT relid FROM protected_rels)
                   AND r.ev_class <> d.refobjid
                UNION
                SELECT r.ev_class FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                  JOIN readers ON d.refclassid = 'pg_class'::regclass AND d.refobjid = readers.viewid
                 WHERE r.ev_class <> d.refobjid
            ), views (viewid, relkind, invoker) AS (
                SELECT v.oid, v.relkind, v.relkind = 'v' AND EXISTS (SELECT 1 FROM unnest(v.reloptions) opt
                        WHERE lower(opt) IN ('security_invoker=true', 'security_invoker=on', 'security_invoker=1', 'security_invoker=yes'))
                  FROM readers JOIN pg_class v ON v.oid = readers.viewid
            ), reads (viewid, relid, attnum) AS (
                -- the columns each reader's query names (0: a whole row, or none)
                SELECT r.ev_class, d.refobjid, d.refobjsubid FROM pg_rewrite r JOIN views ON views.viewid = r.ev_class
                  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
                 WHERE d.refobjid <> r.ev_class
            ), limited (relid, attnum) AS (
                -- the limited columns of the table and its partitions and
                -- children (a security_invoker view reads them with the
                -- privileges of the current user, also under another view)
                SELECT a.attrelid, a.attnum FROM pg_attribute a JOIN fluent.protected_columns pc ON pc.column_name = a.attname
                 WHERE pc.table_name = p.table_name AND a.attrelid IN (SELECT relid FROM protected_rels) AND NOT a.attisdropped
            )
            SELECT v.oid::regclass AS viewid, v.relkind, o.rolname, o.rolsuper, o.rolbypassrls, views.invoker,
                   (SELECT string_agg(DISTINCT quote_ident(a.attname), ', ') FROM reads JOIN limited USING (relid, attnum)
                      JOIN pg_attribute a ON a.attrelid = limited.relid AND a.attnum = limited.attnum
                     WHERE reads.viewid = v.oid) AS limited_columns,
                   -- a whole-row reference (a Var with varattno 0) to a relation with limited columns
                   EXISTS (SELECT 1 FROM reads JOIN pg_rewrite r ON r.ev_class = reads.viewid
                            WHERE reads.viewid = v.oid AND reads.relid IN (SELECT relid FROM limited)
                              AND r.ev_action::text LIKE '%:varattno 0 %') AS whole_rows
              FROM views JOIN pg_class v ON v.oid = views.viewid JOIN pg_roles o ON o.oid = v.relowner
             ORDER BY 1
        LOOP
            CONTINUE WHEN c.invoker;
            relation := c.viewid;
            IF c.relkind = 'm' THEN
                problem := 'materialized view bypasses the policies';
                detail := format('owned by %s%s: it stores the rows and columns its last refresh read, whoever was acting then, and shows them to whoever may read it',
                                 quote_ident(c.rolname), CASE WHEN c.rolsuper THEN ', a superuser' WHEN c.rolbypassrls THEN ', a BYPASSRLS role' ELSE '' END);
            ELSIF c.rolsuper OR c.rolbypassrls THEN
                problem := 'view bypasses the policies';
                detail := format('owned by %s, a %s, without security_invoker', quote_ident(c.rolname),
                                 CASE WHEN c.rolsuper THEN 'superuser' ELSE 'BYPASSRLS role' END);
            ELSIF (c.limited_columns IS NOT NULL OR c.whole_rows) AND c.viewid IS DISTINCT FROM p.masked_view THEN
                problem := 'view exposes limited columns';
                detail := format('owned by %s, without security_invoker: whoever may read it reads %s unmasked, with its owner''s column privileges (the policies still filter the rows)',
                                 quote_ident(c.rolname), coalesce('column ' || c.limited_columns, 'whole rows'));
            ELSE
                CONTINUE;
            END IF;
            RETURN NEXT;
        END LOOP;
    END LOOP;
END $$;

-- Issue 21: item roles on Citus tables: their triggers run on the shards,
-- and a child's parent is looked up by its distribution value too.
CREATE FUNCTION fluent."_table_name_of"("rel" oid) RETURNS TEXT
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_table_name_of_wrapper';
CREATE FUNCTION fluent."_citus_colocated"("parent" oid, "shard" oid) RETURNS bool
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', '_citus_colocated_wrapper';
REVOKE ALL ON FUNCTION fluent._citus_node_audit_logs(), fluent._citus_other_nodes() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._citus_node_audit_logs(), fluent._citus_other_nodes() TO fluent_admin;
GRANT EXECUTE ON FUNCTION fluent._citus_node_audit_logs(), fluent._citus_other_nodes() TO fluent_reader;
GRANT EXECUTE ON FUNCTION fluent._citus_node_audit_logs(), fluent._citus_other_nodes() TO fluent_owner;
GRANT SELECT ON fluent.citus_audit_log TO fluent_admin;
GRANT SELECT ON fluent.citus_audit_log TO fluent_reader;
ALTER VIEW fluent.citus_audit_log OWNER TO fluent_owner;
REVOKE ALL ON FUNCTION fluent._table_name_of(oid), fluent._citus_colocated(oid, oid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._table_name_of(oid), fluent._citus_colocated(oid, oid) TO PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._table_name_of(oid), fluent._citus_colocated(oid, oid) TO fluent_owner;
CREATE OR REPLACE FUNCTION fluent._check_item_owner() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    test text := format('SELECT %s FROM (SELECT ($1).*) AS r', CASE TG_OP WHEN 'INSERT' THEN TG_ARGV[2] ELSE TG_ARGV[1] END);
    owner_of text := format('SELECT ($1).%I IS NULL', TG_ARGV[0]);
    unowned boolean;
    changed boolean := true;
    reaches boolean := true;
BEGIN
    IF NOT fluent._column_limits_apply(TG_RELID) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        EXECUTE format('SELECT ($1).%1$I IS DISTINCT FROM ($2).%1$I', TG_ARGV[0]) INTO changed USING NEW, OLD;
        IF changed THEN
            EXECUTE test INTO reaches USING OLD;
        END IF;
    ELSE
        EXECUTE owner_of INTO unowned USING NEW;
        changed := NOT unowned;
    END IF;
    IF changed AND coalesce(reaches, false) THEN
        EXECUTE test INTO reaches USING NEW;
    END IF;
    IF changed AND NOT coalesce(reaches, false) THEN
        RAISE EXCEPTION 'permission denied to hand over a row of "%"', fluent._table_name_of(TG_RELID)
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('Column "%s" names the row''s owner: setting it takes the module''s permission at a scope that reaches the row, as it is and as written; item roles do not give it.', TG_ARGV[0]);
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION fluent._forget_dropped_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    parent text;
    child regclass;
BEGIN
    SELECT d.object_identity, c.table_name INTO parent, child
      FROM fluent.protected_tables c JOIN pg_event_trigger_dropped_objects() d
        ON d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.objid = c.parent_table::oid
     WHERE NOT EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() e
                        WHERE e.classid = 'pg_class'::regclass AND e.objsubid = 0 AND e.objid = c.table_name::oid)
     ORDER BY c.table_name::text LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'table "%" gives its item roles to the rows of "%"', parent, child
            USING ERRCODE = 'dependent_objects_still_exist', HINT = format('Unprotect %s first, or drop it too.', child);
    END IF;
    DELETE FROM fluent.protected_tables p
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND p.table_name::oid = d.objid;
END $$;
CREATE OR REPLACE FUNCTION fluent._check_item_parent() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    moved boolean := true;
    found_parent int;
BEGIN
    IF NOT fluent._column_limits_apply(TG_RELID) THEN
        RETURN NULL;
    END IF;
    -- On a Citus node the parent is named as on the coordinator: it must be
    -- the distributed table co-located with this shard's, not a table a
    -- table owner put under its name on this node.
    IF TG_NARGS > 3 AND NOT fluent._citus_colocated(TG_ARGV[1]::regclass, TG_RELID) THEN
        RAISE EXCEPTION 'relation "%" on this node is not the Citus table co-located with "%"', TG_ARGV[1],
                        fluent._table_name_of(TG_RELID)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'The parent table was renamed or replaced on this node: give the name back to the distributed table.';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        EXECUTE format('SELECT ($1).%1$I IS DISTINCT FROM ($2).%1$I', TG_ARGV[0]) INTO moved USING NEW, OLD;
    END IF;
    IF NOT moved THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT 1 FROM %s p WHERE p.%I = ($1).%I%s FOR KEY SHARE', TG_ARGV[1], TG_ARGV[2], TG_ARGV[0],
                   CASE WHEN TG_NARGS > 3 THEN format(' AND p.%I = ($1).%I', TG_ARGV[4], TG_ARGV[3]) ELSE '' END)
       INTO found_parent USING NEW;
    IF found_parent IS NULL THEN
        RAISE EXCEPTION 'permission denied to put a row of "%" under a row of "%" it may not write',
                        fluent._table_name_of(TG_RELID), TG_ARGV[1]
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('Column "%s" names a row of %s: the writer must be able to update it.', TG_ARGV[0], TG_ARGV[1]);
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION fluent._item_triggers(p fluent.protected_tables)
RETURNS TABLE (on_assignments boolean, name name, events text, per_row boolean, condition text, fn regprocedure,
               args text[], tgtype int2)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT true, x.name, x.events, x.per_row, NULL::text, 'fluent._check_item_assignment()'::regprocedure,
           ARRAY[p.module::text, p.membership_user_column::text, coalesce(p.membership_team_column, '')::text,
                 p.membership_role_column::text],
           x.tgtype
      FROM (VALUES ('fluent_item_role_conditions'::name, 'AFTER INSERT OR UPDATE OR DELETE', true,
                    29::int2),   -- ROW 1, INSERT 4, DELETE 8, UPDATE 16 (AFTER)
                   ('fluent_item_role_truncate'::name, 'AFTER TRUNCATE', false, 32::int2)) x (name, events, per_row, tgtype)
     WHERE p.membership_role_column IS NOT NULL
    UNION ALL
    SELECT false, x.name, x.events, true, x.condition, 'fluent._check_item_owner()'::regprocedure,
           ARRAY[p.owner_column::text, fluent._scope_rows_sql(p, p.module, p.update_action),
                 fluent._scope_rows_sql(p, p.module, p.insert_action)],
           x.tgtype
      FROM (VALUES ('fluent_item_owner'::name, 'AFTER INSERT', format('new.%I IS NOT NULL', p.owner_column), 5::int2),
                   ('fluent_item_handover'::name, 'AFTER UPDATE', format('old.%1$I IS DISTINCT FROM new.%1$I', p.owner_column),
                    17::int2)) x (name, events, condition, tgtype)
     WHERE (p.membership_role_column IS NOT NULL OR p.parent_table IS NOT NULL) AND p.owner_column IS NOT NULL
    UNION ALL
    SELECT false, x.name, x.events, true, x.condition, 'fluent._check_item_parent()'::regprocedure,
           ARRAY[p.parent_column::text, p.parent_table::text,
                 (SELECT r.row_column::text FROM fluent.protected_tables r WHERE r.table_name = p.parent_table)]
           || CASE WHEN fluent._citus_distribution_column(p.table_name) IS NOT NULL
                    AND fluent._citus_distribution_column(p.parent_table) IS NOT NULL
                   THEN ARRAY[fluent._citus_distribution_column(p.table_name)::text,
                              fluent._citus_distribution_column(p.parent_table)::text] ELSE '{}' END,
           x.tgtype
      FROM (VALUES ('fluent_item_parent'::name, 'AFTER INSERT', NULL::text, 5::int2),
                   ('fluent_item_moved'::name, 'AFTER UPDATE', format('old.%1$I IS DISTINCT FROM new.%1$I', p.parent_column),
                    17::int2)) x (name, events, condition, tgtype)
     WHERE p.parent_table IS NOT NULL;
END;
CREATE OR REPLACE FUNCTION fluent._install_item_triggers(rel regclass, p fluent.protected_tables, on_assignments boolean)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    trigger_name name;
    t record;
    unsafe_triggers text;
BEGIN
    IF fluent._is_citus_table(rel) THEN
        unsafe_triggers := current_setting('citus.enable_unsafe_triggers');
        PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
    END IF;
    FOR trigger_name IN SELECT tg.tgname FROM pg_trigger tg
                         WHERE tg.tgrelid = rel AND tg.tgparentid = 0
                           AND (tg.tgfoid = 'fluent._check_item_assignment()'::regprocedure) = on_assignments
                           AND tg.tgfoid IN ('fluent._check_item_assignment()'::regprocedure,
                                             'fluent._check_item_owner()'::regprocedure,
                                             'fluent._check_item_parent()'::regprocedure) LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trigger_name, rel);
    END LOOP;
    -- (A partition has its parent's row triggers as clones, but no
    -- statement trigger: a TRUNCATE of the partition itself fires its own.)
    FOR t IN SELECT * FROM fluent._item_triggers(p) x
              WHERE p.table_name IS NOT NULL AND x.on_assignments = _install_item_triggers.on_assignments
                AND NOT (x.per_row AND (SELECT c.relispartition FROM pg_class c WHERE c.oid = rel)) LOOP
        EXECUTE format('CREATE TRIGGER %I %s ON %s FOR EACH %s%s EXECUTE FUNCTION %s(%s)', t.name, t.events, rel,
                       CASE WHEN t.per_row THEN 'ROW' ELSE 'STATEMENT' END,
                       ' WHEN (' || t.condition || ')',
                       (SELECT format('%I.%I', n.nspname, f.proname) FROM pg_proc f JOIN pg_namespace n ON n.oid = f.pronamespace
                         WHERE f.oid = t.fn),
                       (SELECT string_agg(quote_literal(a), ', ' ORDER BY k) FROM unnest(t.args) WITH ORDINALITY x (a, k)));
    END LOOP;
    IF unsafe_triggers IS NOT NULL THEN
        PERFORM set_config('citus.enable_unsafe_triggers', unsafe_triggers, true);
    END IF;
END $$;
-- The column pairs of the foreign key item roles rely on from referencing
-- to referenced: the item's key, and on Citus, between distributed tables,
-- their distribution columns first (a distributed table's keys include its
-- distribution column: an item's key is its tenant's and its own).
CREATE FUNCTION fluent._item_key_pairs(referencing regclass, referencing_column name, referenced regclass,
                                       referenced_column name)
RETURNS TABLE (referencing_key name, referenced_key name)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT x.r, x.f
      FROM (VALUES (1, fluent._citus_distribution_column(referencing), fluent._citus_distribution_column(referenced)),
                   (2, referencing_column, referenced_column)) x (k, r, f)
     WHERE x.r IS NOT NULL AND x.f IS NOT NULL
       AND NOT (x.k = 1 AND x.r = referencing_column AND x.f = referenced_column)
     ORDER BY x.k;
END;
CREATE OR REPLACE FUNCTION fluent._has_item_foreign_key(referencing regclass, referencing_column name, referenced regclass,
                                             referenced_column name, cascades boolean)
RETURNS boolean
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT EXISTS (
        SELECT 1 FROM pg_constraint c
         WHERE c.contype = 'f' AND c.conrelid = referencing AND c.confrelid = referenced
           AND fluent._foreign_key_pairs(c.oid)
               = ARRAY(SELECT format('%I=%I', x.referencing_key, x.referenced_key)
                         FROM fluent._item_key_pairs(referencing, referencing_column, referenced, referenced_column) x
                        ORDER BY 1)
           AND (NOT cascades OR c.confdeltype = 'c')
           -- a changed key must not hand the rows to another item
           AND c.confupdtype IN ('a', 'r', 'c'));
END;
-- The columns of that foreign key, each side's as a list.
CREATE FUNCTION fluent._item_key_lists(referencing regclass, referencing_column name, referenced regclass,
                                       referenced_column name, OUT referencing_list text, OUT referenced_list text)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT string_agg(quote_ident(x.referencing_key), ', ' ORDER BY x.k), string_agg(quote_ident(x.referenced_key), ', ' ORDER BY x.k)
      FROM fluent._item_key_pairs(referencing, referencing_column, referenced, referenced_column)
           WITH ORDINALITY x (referencing_key, referenced_key, k);
END;
-- What an item role trigger missing, disabled or changed lets through.
CREATE FUNCTION fluent._item_trigger_detail(trigger_name name) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN CASE trigger_name
    WHEN 'fluent_item_role_conditions' THEN 'assignments are not checked against their item roles and conditions'
    WHEN 'fluent_item_role_truncate' THEN 'a TRUNCATE of the assignments is not in the audit trail'
    WHEN 'fluent_item_owner' THEN 'a row may be created in another user''s reach by whoever holds an item role that writes it'
    WHEN 'fluent_item_handover' THEN 'a row''s owner may be changed by whoever holds an item role that writes it'
    ELSE 'a row may be put under a parent its writer may not update' END;
-- On Citus, the item roles' triggers rel's shards must have, as JSON for
-- their nodes' check (fluent._citus_local_shard_problems): [{name, fn,
-- tgtype, args, condition}], for rel a protected table or an assignment
-- table, or one of their partitions (which have the row triggers as
-- clones). Citus creates the row triggers on every shard; a TRUNCATE runs
-- on the table itself too, on the coordinator, whose statement trigger
-- records it.
CREATE FUNCTION fluent._item_triggers_named(rel regclass) RETURNS jsonb
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT coalesce(jsonb_agg(jsonb_build_object('name', t.name, 'fn', t.fn::text, 'tgtype', t.tgtype,
                                                 'args', to_jsonb(t.args), 'condition', t.condition) ORDER BY t.name), '[]')
      FROM fluent.protected_tables p, fluent._item_triggers(p) t
     WHERE t.per_row
       AND rel IN (SELECT r FROM (VALUES (CASE WHEN t.on_assignments THEN p.membership_table ELSE p.table_name END)) v (r)
                   UNION ALL
                   SELECT d FROM fluent._descendants(CASE WHEN t.on_assignments THEN p.membership_table ELSE p.table_name END) d);
END;
CREATE OR REPLACE FUNCTION fluent._item_trigger_problems(p fluent.protected_tables)
RETURNS TABLE (relation regclass, problem text, detail text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
    tg record;
BEGIN
    FOR t IN SELECT * FROM fluent._item_triggers(p) LOOP
        FOR relation IN SELECT CASE WHEN t.on_assignments THEN p.membership_table ELSE p.table_name END
                        UNION ALL SELECT fluent._descendants(CASE WHEN t.on_assignments THEN p.membership_table ELSE p.table_name END) LOOP
            SELECT x.tgname, x.tgenabled, x.tgtype = t.tgtype AND x.tgattr::text = ''
                       AND CASE WHEN t.condition IS NULL THEN x.tgqual IS NULL
                                ELSE position(format(' WHEN ((%s)) ', t.condition) IN pg_get_triggerdef(x.oid)) > 0 END
                       AND x.tgargs = (SELECT string_agg(convert_to(a, getdatabaseencoding()) || '\x00'::bytea, ''::bytea ORDER BY k)
                                         FROM unnest(t.args) WITH ORDINALITY y (a, k)) AS as_created
              INTO tg FROM pg_trigger x WHERE x.tgrelid = relation AND x.tgfoid = t.fn AND x.tgtype = t.tgtype
             ORDER BY x.tgenabled = 'O' DESC LIMIT 1;
            IF NOT FOUND THEN
                problem := 'item role trigger missing';
            ELSIF NOT tg.as_created OR tg.tgenabled <> 'O' THEN
                problem := CASE WHEN tg.tgenabled = 'D' THEN 'item role trigger disabled' ELSE 'item role trigger changed' END;
            ELSE
                CONTINUE;
            END IF;
            detail := fluent._item_trigger_detail(t.name);
            RETURN NEXT;
        END LOOP;
    END LOOP;
    FOR relation, detail IN
        SELECT k.referencing, format('no foreign key from %s (%s) to %s (%s)%s', k.referencing, l.referencing_list,
                                     k.referenced, l.referenced_list, CASE WHEN k.cascades THEN ' ON DELETE CASCADE' ELSE '' END)
          FROM fluent._item_foreign_keys(p) k,
               fluent._item_key_lists(k.referencing, k.referencing_column, k.referenced, k.referenced_column) l
         WHERE NOT fluent._has_item_foreign_key(k.referencing, k.referencing_column, k.referenced, k.referenced_column, k.cascades)
    LOOP
        problem := 'item foreign key missing';
        RETURN NEXT;
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION
    fluent._item_key_pairs(regclass, name, regclass, name), fluent._item_key_lists(regclass, name, regclass, name),
    fluent._item_trigger_detail(name), fluent._item_triggers_named(regclass), fluent._foreign_key_pairs(oid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    fluent._item_key_pairs(regclass, name, regclass, name), fluent._item_key_lists(regclass, name, regclass, name),
    fluent._item_trigger_detail(name), fluent._item_triggers_named(regclass), fluent._foreign_key_pairs(oid) TO fluent_admin;
GRANT EXECUTE ON FUNCTION
    fluent._item_key_pairs(regclass, name, regclass, name), fluent._item_key_lists(regclass, name, regclass, name),
    fluent._item_trigger_detail(name), fluent._item_triggers_named(regclass), fluent._foreign_key_pairs(oid) TO fluent_reader;
GRANT EXECUTE ON FUNCTION
    fluent._item_key_pairs(regclass, name, regclass, name), fluent._item_key_lists(regclass, name, regclass, name),
    fluent._item_trigger_detail(name), fluent._item_triggers_named(regclass), fluent._foreign_key_pairs(oid) TO fluent_owner;


-- Issue 20: a table with an owner column gets one call per policy,
-- fluent.rls_reaches, which the planner replaces with the test it stands
-- for (src/plans.rs). Tables protected before the update keep the policies
-- they have, which still hold; protecting such a table again gives it the
-- one call.
CREATE FUNCTION fluent."rls_reaches_support"("request" internal) RETURNS internal
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', 'rls_reaches_support_wrapper';
CREATE FUNCTION fluent."rls_reaches"("module" TEXT, "action" TEXT, "owner" anyelement) RETURNS bool
STABLE PARALLEL SAFE SUPPORT fluent."rls_reaches_support"
LANGUAGE c /* Rust */
AS 'fluent-0.2.0', 'rls_reaches_wrapper';
-- Which rows module.action reaches on a table whose rows are tied to users
-- by an owner column alone: one call, which the planner replaces with the
-- test it stands for the acting user (src/plans.rs): nothing, `col =
-- <key>`, `col = ANY (<keys>)` or false. What _reach_sql writes for the
-- same rows makes four calls and a sub-select, which every statement
-- copies into its query before the planner folds them away.
CREATE FUNCTION fluent._owner_reach_sql(module text, action text, col name) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN format('fluent.rls_reaches(%L, %L, %I)', module, action, col);
-- The WITH CHECK of a write governed by `act`: the row written is owned by
-- a user the scope reaches, or is an item (or the child of one) where the
-- writer holds an item role that gives `act`; a table whose rows are tied to
-- users by its membership table only takes some scope (a new row has no
-- assignments yet). A new item (not updating) takes the scope: assignments
-- left by a deleted item with the same key give nothing to its successor.
CREATE OR REPLACE FUNCTION fluent._write_check_sql(p fluent.protected_tables, workspace_filter text, act text, updating boolean)
RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    scope text;
    items text;
BEGIN
    IF p.parent_table IS NOT NULL OR updating THEN
        items := fluent._item_rows_sql(p, p.module, act);
    END IF;
    IF p.owner_column IS NOT NULL THEN
        scope := fluent._owner_reach_sql(p.module, act, p.owner_column);
    ELSIF p.parent_table IS NOT NULL THEN
        scope := fluent._reach_sql(p.module, act, 'false', 'false');
    ELSE
        scope := format('fluent.rls_any(%L, %L)', p.module, act);
    END IF;
    RETURN concat_ws(' AND ', workspace_filter, CASE WHEN items IS NULL THEN scope ELSE format('(%s OR %s)', scope, items) END);
END $$;
-- Which rows of p's table module.action reaches for the acting user by the
-- scope of their permission (the workspace filter aside): those owned by, or
-- assigned through the membership table to, the acting user (own) or the
-- users their scope reaches. An assignment table (membership_role_column)
-- assigns item roles, not ownership: its rows count in _item_rows_sql only.
CREATE OR REPLACE FUNCTION fluent._scope_rows_sql(p fluent.protected_tables, module text, act text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    member_kind text;
    own boolean;
    rows_of text[] := '{}';
    assigns boolean := p.membership_table IS NOT NULL AND p.membership_role_column IS NULL;
BEGIN
    IF NOT assigns AND p.owner_column IS NOT NULL THEN
        RETURN fluent._owner_reach_sql(module, act, p.owner_column);
    END IF;
    IF assigns THEN
        member_kind := fluent._key_kind(p.membership_table, p.membership_user_column, 'membership user column');
    END IF;
    FOREACH own IN ARRAY ARRAY[true, false] LOOP
        rows_of := rows_of || coalesce(nullif(concat_ws(' OR ',
            CASE WHEN p.owner_column IS NOT NULL THEN
                format('%I %s', p.owner_column, fluent._key_test_sql(p.owner_type, module, act, own)) END,
            CASE WHEN assigns THEN
                fluent._pointed_at_sql(p.table_name, p.row_column, p.membership_table, p.membership_row_column,
                                       format('m.%I %s', p.membership_user_column,
                                              fluent._key_test_sql(member_kind, module, act, own))) END), ''), 'false');
    END LOOP;
    RETURN fluent._reach_sql(module, act, rows_of[1], rows_of[2]);
END $$;
REVOKE ALL ON FUNCTION fluent.rls_reaches_support(internal), fluent.rls_reaches(text, text, anyelement),
    fluent._owner_reach_sql(text, text, name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent.rls_reaches(text, text, anyelement) TO PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._owner_reach_sql(text, text, name) TO fluent_admin, fluent_reader;
GRANT EXECUTE ON FUNCTION fluent.rls_reaches_support(internal), fluent.rls_reaches(text, text, anyelement),
    fluent._owner_reach_sql(text, text, name) TO fluent_owner;

-- Issue 20: key columns under a nondeterministic collation are refused; the
-- drift check reads policies and triggers with standard_conforming_strings
-- on, whatever the session's.
-- The kind of key a column holds: text, int or uuid; an error otherwise.
-- A text key column must compare by its bytes: under a nondeterministic
-- collation another user's key (ann in other case, or followed by a
-- zero-width space) would equal the acting user's, and the policies, which
-- compare in the column's collation so that its index serves them, would
-- hand that user's rows over.
CREATE OR REPLACE FUNCTION fluent._key_kind(tbl regclass, col name, what text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    typ regtype;
    coll regcollation;
BEGIN
    SELECT atttypid, attcollation INTO typ, coll FROM pg_attribute
     WHERE attrelid = tbl AND attname = col AND attnum > 0 AND NOT attisdropped;
    IF typ IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation "%" does not exist', col, tbl
            USING ERRCODE = 'undefined_column', HINT = format('It was given as the %s.', what);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_collation c WHERE c.oid = coll AND NOT c.collisdeterministic) THEN
        RAISE EXCEPTION 'column "%" of relation "%" has the nondeterministic collation %, which fluent cannot use for the %', col, tbl, coll, what
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Keys must match byte for byte: give the column a deterministic collation, such as COLLATE "C" or the database''s default.';
    END IF;
    RETURN CASE
        WHEN typ IN ('text'::regtype, 'varchar'::regtype) THEN 'text'
        WHEN typ IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) THEN 'int'
        WHEN typ = 'uuid'::regtype THEN 'uuid'
        ELSE fluent._unsupported_key_type(tbl, col, typ, what)
    END;
END $$;
-- Every policy on a table as PostgreSQL prints it, by name: what
-- fluent_protect() records and fluent_protection_problems() compares. The
-- pinned search_path and standard_conforming_strings keep the printed form
-- stable (a name with a backslash prints as E'...' with the latter off).
CREATE OR REPLACE FUNCTION fluent._policies_of(tbl regclass) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on
BEGIN ATOMIC
    SELECT coalesce(jsonb_object_agg(pol.polname, jsonb_build_object(
               'command', pol.polcmd::text, 'permissive', pol.polpermissive, 'roles', pol.polroles::text,
               'using', pg_get_expr(pol.polqual, pol.polrelid), 'check', pg_get_expr(pol.polwithcheck, pol.polrelid))),
           '{}'::jsonb)
      FROM pg_policy pol WHERE pol.polrelid = tbl;
END;
-- (standard_conforming_strings pinned: a trigger's condition prints as the
-- recorded one whatever the session's setting.)
CREATE OR REPLACE FUNCTION fluent._item_trigger_problems(p fluent.protected_tables)
RETURNS TABLE (relation regclass, problem text, detail text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $$
DECLARE
    t record;
    tg record;
BEGIN
    FOR t IN SELECT * FROM fluent._item_triggers(p) LOOP
        FOR relation IN SELECT CASE WHEN t.on_assignments THEN p.membership_table ELSE p.table_name END
                        UNION ALL SELECT fluent._descendants(CASE WHEN t.on_assignments THEN p.membership_table ELSE p.table_name END) LOOP
            SELECT x.tgname, x.tgenabled, x.tgtype = t.tgtype AND x.tgattr::text = ''
                       AND CASE WHEN t.condition IS NULL THEN x.tgqual IS NULL
                                ELSE position(format(' WHEN ((%s)) ', t.condition) IN pg_get_triggerdef(x.oid)) > 0 END
                       AND x.tgargs = (SELECT string_agg(convert_to(a, getdatabaseencoding()) || decode('00', 'hex'), ''::bytea ORDER BY k)
                                         FROM unnest(t.args) WITH ORDINALITY y (a, k)) AS as_created
              INTO tg FROM pg_trigger x WHERE x.tgrelid = relation AND x.tgfoid = t.fn AND x.tgtype = t.tgtype
             ORDER BY x.tgenabled = 'O' DESC LIMIT 1;
            IF NOT FOUND THEN
                problem := 'item role trigger missing';
            ELSIF NOT tg.as_created OR tg.tgenabled <> 'O' THEN
                problem := CASE WHEN tg.tgenabled = 'D' THEN 'item role trigger disabled' ELSE 'item role trigger changed' END;
            ELSE
                CONTINUE;
            END IF;
            detail := fluent._item_trigger_detail(t.name);
            RETURN NEXT;
        END LOOP;
    END LOOP;
    FOR relation, detail IN
        SELECT k.referencing, format('no foreign key from %s (%s) to %s (%s)%s', k.referencing, l.referencing_list,
                                     k.referenced, l.referenced_list, CASE WHEN k.cascades THEN ' ON DELETE CASCADE' ELSE '' END)
          FROM fluent._item_foreign_keys(p) k,
               fluent._item_key_lists(k.referencing, k.referencing_column, k.referenced, k.referenced_column) l
         WHERE NOT fluent._has_item_foreign_key(k.referencing, k.referencing_column, k.referenced, k.referenced_column, k.cascades)
    LOOP
        problem := 'item foreign key missing';
        RETURN NEXT;
    END LOOP;
END $$;

-- A user's first check reads users, grants and overrides from their indexes
-- alone (src/probes.rs): the indexes by user hold the columns it reads.
ALTER TABLE fluent.users DROP CONSTRAINT users_user_key_key,
    ADD CONSTRAINT users_user_key_key UNIQUE (user_key) INCLUDE (user_id, status);
DROP INDEX fluent.grants_workspace_user_idx;
CREATE INDEX grants_workspace_user_idx ON fluent.grants (workspace_id, user_id) INCLUDE (role_id, valid_until);
DROP INDEX fluent.overrides_workspace_user_idx;
CREATE INDEX overrides_workspace_user_idx ON fluent.overrides (workspace_id, user_id)
    INCLUDE (action_id, scope, set_by, valid_until);

-- A team membership drops the team sets of the team's leads, and a lead's
-- own, not every team set of the workspace (src/cache.rs).
ALTER TABLE fluent.changes DROP CONSTRAINT changes_kind_check;
ALTER TABLE fluent.changes ADD CONSTRAINT changes_kind_check
    CHECK (kind IN ('user', 'role', 'workspace', 'teams', 'lead', 'model'));
COMMENT ON TABLE fluent.changes IS
    'Which cached users (id = user_id), compiled roles (id = role_id), workspace models (kind model), workspaces and team sets (kind teams: of the leads of team id, every one for a NULL id; kind lead: of user id) each catalog write can affect; NULL workspace_id: every workspace';
CREATE OR REPLACE FUNCTION fluent._log_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    kind text := TG_ARGV[0];
    rows jsonb := '[]';
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO fluent.changes (workspace_id, kind) VALUES (NULL, 'workspace');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        rows := rows || coalesce((SELECT jsonb_agg(to_jsonb(n)) FROM new_rows n), '[]');
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        rows := rows || coalesce((SELECT jsonb_agg(to_jsonb(o)) FROM old_rows o), '[]');
    END IF;
    -- A role drops its holders (a new role has none); a sign-in role, made,
    -- changed or dropped, decides whether everyone else may act: the
    -- workspace.
    -- A team's row or membership drops the team sets that hold its members
    -- (of the users who lead it); a lead, made or unmade, their own.
    INSERT INTO fluent.changes (workspace_id, kind, id)
    SELECT DISTINCT (r ->> 'workspace_id')::int, e.kind,
           CASE e.kind WHEN 'user' THEN (r ->> 'user_id')::bigint WHEN 'role' THEN (r ->> 'role_id')::bigint
                       WHEN 'teams' THEN (r ->> 'team_id')::bigint WHEN 'lead' THEN (r ->> 'user_id')::bigint END
      FROM jsonb_array_elements(rows) r
     CROSS JOIN LATERAL (SELECT CASE WHEN TG_TABLE_NAME = 'roles' AND (r ->> 'grants_sign_in')::boolean
                                     THEN 'workspace' ELSE kind END
                         UNION ALL
                         SELECT 'lead' WHERE TG_TABLE_NAME = 'team_members' AND (r ->> 'is_lead')::boolean) e (kind);
    -- A user's manager is their place in every workspace's reporting line.
    IF TG_TABLE_NAME = 'users' THEN
        INSERT INTO fluent.changes (workspace_id, kind) VALUES (NULL, 'teams');
    END IF;
    -- Entries no backend can still need; those that looked earlier drop all.
    WITH pruned AS (
        DELETE FROM fluent.changes c WHERE c.at < now() - interval '10 minutes' RETURNING c.xid
    )
    UPDATE fluent.change_horizon h SET pruned_below = (SELECT max(xid) FROM pruned)
     WHERE EXISTS (SELECT 1 FROM pruned) AND h.pruned_below < (SELECT max(xid) FROM pruned);
    RETURN NULL;
END $$;

CREATE FUNCTION fluent._load_led_teams(p_workspace_id int, p_user_id bigint)
RETURNS bigint[]
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT coalesce(array_agg(l.team_id::bigint ORDER BY l.team_id), '{}')
      FROM fluent.team_members l
     WHERE l.user_id = p_user_id AND l.is_lead AND l.workspace_id = p_workspace_id;
END;
REVOKE ALL ON FUNCTION fluent._load_led_teams(int, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._load_led_teams(int, bigint) TO fluent_owner;
