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

-- The column write check's hint names the column as well as the
-- permission (sql/columns.sql).
CREATE OR REPLACE FUNCTION fluent._check_column_writes() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c jsonb;
    new_row jsonb := to_jsonb(NEW);
    old_row jsonb := CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) END;
    reaches boolean;
BEGIN
    IF NOT row_security_active(TG_RELID) THEN
        RETURN NEW;
    END IF;
    FOR c IN SELECT jsonb_array_elements(TG_ARGV[0]::jsonb) LOOP
        CONTINUE WHEN CASE WHEN TG_OP = 'INSERT' THEN new_row->(c->>'column') = 'null'::jsonb
                           ELSE new_row->(c->>'column') IS NOT DISTINCT FROM old_row->(c->>'column') END;
        -- The row as written, with its own column names, against the reach.
        EXECUTE format('SELECT %s FROM (SELECT ($1).*) AS r', c->>'reaches') INTO reaches USING NEW;
        IF NOT coalesce(reaches, false) THEN
            RAISE EXCEPTION 'permission denied to change column "%" of "%"', c->>'column', TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege',
                      HINT = format('Changing column "%s" takes %s at a scope that reaches the row (fluent_protect_columns).',
                                    c->>'column', c->>'permission');
        END IF;
    END LOOP;
    RETURN NEW;
END $$;

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

-- Issue 18 (drift): fluent_protection_problems() also reports the drift that
-- left a protection "intact" (sql/rls.sql): the column trigger and the
-- masked view (fluent._column_limit_problems, which makes fluent's view as a
-- temporary one to compare: the function is now VOLATILE), materialized
-- views whoever owns them, views of other owners that read limited columns,
-- parents outside the protection, and grants on limited columns of
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
    -- The trigger argument _install_column_limits gives, as pg_trigger stores it.
    args bytea := convert_to(fluent._column_write_checks(p)::text, getdatabaseencoding()) || '\x00'::bytea;
    t record;
    v record;
    expected text;
    failure text;
BEGIN
    FOR relation IN SELECT p.table_name UNION ALL SELECT fluent._descendants(p.table_name) LOOP
        -- BEFORE INSERT OR UPDATE FOR EACH ROW (tgtype bits ROW 1, BEFORE 2,
        -- INSERT 4, UPDATE 16), no WHEN, no column list, fluent's function and argument.
        SELECT tg.tgenabled, tg.tgfoid = 'fluent._check_column_writes'::regproc AND tg.tgtype = 23
                   AND tg.tgqual IS NULL AND tg.tgattr = ''::int2vector AND tg.tgargs = args AS as_created
          INTO t FROM pg_trigger tg WHERE tg.tgrelid = relation AND tg.tgname = 'fluent_column_limits';
        IF NOT FOUND THEN
            problem := 'column trigger missing';
            detail := 'fluent_column_limits was dropped: whoever may update a row changes its limited columns';
            RETURN NEXT;
        ELSIF NOT t.as_created THEN
            problem := 'column trigger changed';
            detail := 'fluent_column_limits is not what fluent_protect_columns() created';
            RETURN NEXT;
        ELSIF t.tgenabled <> 'O' THEN
            problem := CASE t.tgenabled WHEN 'A' THEN 'column trigger changed' ELSE 'column trigger disabled' END;
            detail := CASE t.tgenabled
                WHEN 'D' THEN 'fluent_column_limits is disabled: whoever may update a row changes its limited columns'
                WHEN 'R' THEN 'fluent_column_limits fires in replica sessions only (ENABLE REPLICA): elsewhere whoever may update a row changes its limited columns'
                ELSE 'fluent_column_limits fires ALWAYS, not as fluent_protect_columns() left it (ENABLE TRIGGER puts it back)' END;
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
-- partitions and children and its membership table; any of these inheriting
-- from a table outside the protection (queries on that table read their rows
-- under its policies, not fluent's); limited columns that roles may read on
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
BEGIN
    FOR p IN SELECT * FROM fluent.protected_tables x ORDER BY x.table_name::text LOOP
        table_name := p.table_name;
        FOR relation, expected IN
            SELECT p.table_name, p.policies
            UNION ALL SELECT d, p.policies FROM fluent._descendants(p.table_name) d
            UNION ALL SELECT p.membership_table, p.membership_policies WHERE p.membership_table IS NOT NULL
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
            -- PARTITION) reads and changes them past fluent's.
            FOR c IN
                SELECT i.inhparent::regclass AS parent, pt.module
                  FROM pg_inherits i LEFT JOIN fluent.protected_tables pt ON pt.table_name = i.inhparent
                 WHERE i.inhrelid = relation AND i.inhparent <> p.table_name
                   AND i.inhparent NOT IN (SELECT fluent._descendants(p.table_name))
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
