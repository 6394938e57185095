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

-- fluent_who_can() confines a delegated administrator's row lookup to their
-- workspace (sql/rls.sql): a row of another one was told apart from a
-- missing one.
DROP FUNCTION fluent._row_facts(regclass, text);
CREATE FUNCTION fluent._row_facts(tbl regclass, row_key text, in_workspace text)
RETURNS TABLE (module text, owner_key text, has_workspace boolean, workspace_key text, assignees text[])
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p fluent.protected_tables;
    key_column name;
    key_type text;
    found_rows int;
    row_value text;
    confined text := '';
BEGIN
    PERFORM fluent._not_null(tbl, 'table');
    PERFORM fluent._not_null(row_key, 'row key');
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
    SELECT format_type(a.atttypid, a.atttypmod) INTO key_type FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = key_column;
    IF in_workspace IS NOT NULL AND p.workspace_column IS NOT NULL THEN
        confined := format(' AND %I::text = $2', p.workspace_column);
    END IF;
    EXECUTE format('SELECT count(*) OVER (), %s::text, %s::text, %I::text FROM %s WHERE %I = $1::%s%s LIMIT 1',
                   coalesce(quote_ident(p.owner_column), 'NULL'), coalesce(quote_ident(p.workspace_column), 'NULL'),
                   key_column, tbl, key_column, key_type, confined)
       INTO found_rows, owner_key, workspace_key, row_value USING row_key, in_workspace;
    IF found_rows IS NULL THEN
        RAISE EXCEPTION 'table "%" has no row with % = %', tbl, key_column,
                        row_key || CASE WHEN confined <> '' THEN format(' in workspace "%s"', in_workspace) ELSE '' END
            USING ERRCODE = 'no_data_found';
    ELSIF found_rows > 1 THEN
        RAISE EXCEPTION 'table "%" has % rows with % = %', tbl, found_rows, key_column, row_key
            USING ERRCODE = 'cardinality_violation', HINT = 'Ask about a column that identifies one row.';
    END IF;
    IF p.membership_table IS NOT NULL THEN
        -- The membership row column has the key column's type (fluent_protect checks).
        EXECUTE format('SELECT coalesce(array_agg(DISTINCT m.%I::text), ''{}'') FROM %s m WHERE m.%I = $1::%s',
                       p.membership_user_column, p.membership_table, p.membership_row_column, key_type)
           INTO assignees USING row_value;
    END IF;
    module := p.module;
    has_workspace := p.workspace_column IS NOT NULL;
    assignees := coalesce(assignees, '{}');
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
    IF NOT row_security_active(TG_RELID) THEN
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
CREATE FUNCTION fluent._install_column_triggers(tbl regclass, p fluent.protected_tables) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    trigger_name name;
    c jsonb;
BEGIN
    FOR trigger_name IN SELECT t.tgname FROM pg_trigger t
                         WHERE t.tgrelid = tbl AND t.tgfoid = 'fluent._check_column_writes()'::regprocedure LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trigger_name, tbl);
    END LOOP;
    -- Named by column number: a column name may be as long as a trigger's.
    FOR c IN SELECT jsonb_array_elements(fluent._column_write_checks(p)) LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE OF %I ON %s FOR EACH ROW
                        EXECUTE FUNCTION fluent._check_column_writes(%L)',
                       'fluent_column_limits_' || (SELECT a.attnum FROM pg_attribute a
                                                    WHERE a.attrelid = tbl AND a.attname = c->>'column'),
                       c->>'column', tbl, c);
    END LOOP;
END $$;

REVOKE ALL ON FUNCTION fluent._install_column_triggers(regclass, fluent.protected_tables) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._install_column_triggers(regclass, fluent.protected_tables) TO fluent_admin;

CREATE OR REPLACE FUNCTION fluent._install_column_limits(p fluent.protected_tables, view_name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v regclass;
BEGIN
    PERFORM fluent._install_column_triggers(p.table_name, p);
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
    END LOOP;
END
$$;

-- In a table protected only through a membership table, an updated row must
-- stay within the writer's reach, as the owner column keeps it elsewhere
-- (sql/rls.sql). The update policy of such tables (and their partitions and
-- children) is changed where it is still what fluent_protect() created, and
-- recorded; one that was changed since is left for fluent.protection_status
-- to report.
CREATE OR REPLACE FUNCTION fluent._policy_definitions(p fluent.protected_tables)
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
        -- write-path check, one primary-key probe per row written.
        member_in_reach := format('EXISTS (SELECT 1 FROM %s t WHERE t.%I = %s.%I AND %s)',
            p.table_name, p.row_column, p.membership_table, p.membership_row_column, reach->>p.update_action);
        RETURN QUERY VALUES
            (true, 'fluent_member_select'::name, 'SELECT', 'true', NULL::text),
            (true, 'fluent_member_insert', 'INSERT', NULL, member_in_reach),
            (true, 'fluent_member_update', 'UPDATE', member_in_reach, member_in_reach),
            (true, 'fluent_member_delete', 'DELETE', member_in_reach, NULL);
    END IF;
END $$;

DO $$
DECLARE
    p fluent.protected_tables;
    rel regclass;
    new_check text;
BEGIN
    FOR p IN SELECT * FROM fluent.protected_tables x WHERE x.owner_column IS NULL LOOP
        CONTINUE WHEN fluent._policies_of(p.table_name) -> 'fluent_update' IS DISTINCT FROM p.policies -> 'fluent_update';
        SELECT d.check_expr INTO new_check FROM fluent._policy_definitions(p) d
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

-- Privileges and comments as sql/privileges.sql sets them.
REVOKE ALL ON FUNCTION fluent._check_tree(), fluent._detach_children(), fluent._session_user_is_dba(),
    fluent._row_facts(regclass, text, text), fluent._holders_scope_maps(text, int),
    fluent._holders_within_powers(text, jsonb, jsonb, int, text),
    fluent._test_role(regrole), @extschema@.fluent_test_act_as(text, regrole), @extschema@.fluent_test_reset() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._session_user_is_dba(), fluent._row_facts(regclass, text, text),
    fluent._holders_scope_maps(text, int), fluent._holders_within_powers(text, jsonb, jsonb, int, text) TO fluent_admin;
GRANT EXECUTE ON FUNCTION fluent._test_role(regrole), @extschema@.fluent_test_act_as(text, regrole),
    @extschema@.fluent_test_reset() TO PUBLIC;
COMMENT ON FUNCTION @extschema@.fluent_test_act_as(text, regrole) IS
    'For application test suites run as a DBA: act as the user (NULL: nobody) through the application role until the transaction ends, so that row-level security applies';
COMMENT ON FUNCTION @extschema@.fluent_test_reset() IS 'For application test suites: back to the test runner''s own role, acting for nobody';
