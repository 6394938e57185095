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
-- missing one. And it runs no code of the table's owner as the catalog
-- owner: a domain CHECK on the key column made its owner a superuser.
DROP FUNCTION fluent._row_facts(regclass, text);
-- An expression giving column col as text by its type's output function
-- (format's %s), NULL for NULL: unlike a cast to text, which the owner of
-- the column's type may have defined with a function of their own.
CREATE FUNCTION fluent._as_text_sql(col name) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN CASE WHEN col IS NOT NULL THEN format('(CASE WHEN %1$I IS NOT NULL THEN pg_catalog.format(''%%s'', %1$I) END)', col) END;

-- The type in which fluent_who_can() looks a row up by a column of tbl:
-- the column's type with its domains stripped. fluent reads the row as the
-- catalog owner, so the lookup must run no code that the table's owner
-- controls: a domain's CHECK (run when a value is coerced to the domain), or
-- the input function of a composite, range or array type (which runs its
-- columns' or elements' domain checks). The base types left are those whose
-- input and equality are built into PostgreSQL or an extension installed by a
-- superuser (base types need C functions) and enums.
CREATE FUNCTION fluent._lookup_type(tbl regclass, col name) RETURNS regtype
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    base regtype;
    kind "char";
    category "char";
BEGIN
    WITH RECURSIVE chain (typ, depth) AS (
        SELECT a.atttypid, 0 FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = col AND NOT a.attisdropped
        UNION ALL
        SELECT t.typbasetype, c.depth + 1 FROM chain c JOIN pg_type t ON t.oid = c.typ WHERE t.typtype = 'd'
    )
    SELECT c.typ, t.typtype, t.typcategory INTO base, kind, category
      FROM chain c JOIN pg_type t ON t.oid = c.typ ORDER BY c.depth DESC LIMIT 1;
    IF base IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation "%" does not exist', col, tbl USING ERRCODE = 'undefined_column';
    END IF;
    IF kind NOT IN ('b', 'e') OR category = 'A' THEN
        RAISE EXCEPTION 'fluent_who_can cannot look rows of "%" up by column "%" of type %', tbl, col, base
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Rows are found by a key of a base type (such as integer, bigint, text or uuid), a domain over one, or an enum.';
    END IF;
    RETURN base;
END $$;

-- The row of a protected table that fluent_who_can() asks about (by the
-- membership row column, else the single-column primary key): the module,
-- its owner, its workspace (has_workspace: whether the table has a workspace
-- column) and the users assigned to it through the membership table, as
-- text keys. The row is read past the policies: fluent_who_can() checks its
-- caller and runs this as the catalog owner. So the table owner's code must
-- not run here: the key is compared in its base type (fluent._lookup_type),
-- and values are turned into text by their types' output functions
-- (format's %s) rather than by casts, which the owner of a type may define.
-- For a caller confined to one workspace (a delegated administrator),
-- in_workspace names it and only rows of that workspace are looked at, so
-- that neither "no row" nor a count tells anything about the others.
CREATE FUNCTION fluent._row_facts(tbl regclass, row_key text, in_workspace text)
RETURNS TABLE (module text, owner_key text, has_workspace boolean, workspace_key text, assignees text[])
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p fluent.protected_tables;
    key_column name;
    key_type regtype;
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
    key_type := fluent._lookup_type(tbl, key_column);
    IF in_workspace IS NOT NULL AND p.workspace_column IS NOT NULL THEN
        confined := format(' AND %s = $2', fluent._as_text_sql(p.workspace_column));
    END IF;
    EXECUTE format('SELECT count(*) OVER (), %s, %s, %s FROM %s WHERE %I = $1::%s%s LIMIT 1',
                   coalesce(fluent._as_text_sql(p.owner_column), 'NULL'), coalesce(fluent._as_text_sql(p.workspace_column), 'NULL'),
                   fluent._as_text_sql(key_column), tbl, key_column, key_type, confined)
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
        EXECUTE format('SELECT coalesce(array_agg(DISTINCT %s), ''{}'') FROM %s m WHERE m.%I = $1::%s AND m.%I IS NOT NULL',
                       fluent._as_text_sql(p.membership_user_column), p.membership_table, p.membership_row_column,
                       fluent._lookup_type(p.membership_table, p.membership_row_column), p.membership_user_column)
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

-- Privileges and comments as sql/privileges.sql sets them.
REVOKE ALL ON FUNCTION fluent._check_tree(), fluent._detach_children(), fluent._session_user_is_dba(),
    fluent._row_facts(regclass, text, text), fluent._as_text_sql(name), fluent._lookup_type(regclass, name), fluent._holders_scope_maps(text, int),
    fluent._holders_within_powers(text, jsonb, jsonb, int, text),
    fluent._test_role(regrole), @extschema@.fluent_test_act_as(text, regrole), @extschema@.fluent_test_reset() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fluent._session_user_is_dba(), fluent._row_facts(regclass, text, text),
    fluent._as_text_sql(name), fluent._lookup_type(regclass, name),
    fluent._holders_scope_maps(text, int), fluent._holders_within_powers(text, jsonb, jsonb, int, text) TO fluent_admin;
GRANT EXECUTE ON FUNCTION fluent._test_role(regrole), @extschema@.fluent_test_act_as(text, regrole),
    @extschema@.fluent_test_reset() TO PUBLIC;
COMMENT ON FUNCTION @extschema@.fluent_test_act_as(text, regrole) IS
    'For application test suites run as a DBA: act as the user (NULL: nobody) through the application role until the transaction ends, so that row-level security applies';
COMMENT ON FUNCTION @extschema@.fluent_test_reset() IS 'For application test suites: back to the test runner''s own role, acting for nobody';
