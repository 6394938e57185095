-- Column-level limits on protected tables (fluent_protect_columns).
--
-- Reading: PostgreSQL has no per-row column masking, so, as PostgreSQL
-- Anonymizer's dynamic masking does, the masked path is a view: the table's
-- masked view shows every column, a limited one as
-- `CASE WHEN <reach of module.read_action> THEN col END`. The reach is the
-- predicate the row policies use (fluent._rows_reached_sql), built from the
-- planner-folded helpers, so it folds per query to true (the column as is),
-- false (NULL) or an index-free comparison with the acting user's key: no
-- function is called per row. The view runs with its owner's rights (the
-- table's owner, which FORCEd row-level security subjects to fluent's
-- policies), so the application role needs no privilege on the limited
-- columns of the table itself, and should have none.
--
-- Writing: a BEFORE INSERT OR UPDATE OF <column> row trigger per limited
-- column refuses to write it unless module.write_action reaches the row,
-- whichever path the write takes: an insert of a non-NULL value (the new
-- row), an update that assigns the column (the row as it was and as
-- written). As with PostgreSQL's column privileges, assigning a column takes
-- the permission whatever the value: were an unchanged value let through,
-- success would tell a user who may not read the column that a guessed value
-- is right. Updates that leave the column out do not fire its trigger.
-- Like the policies, the triggers do not apply to roles row-level security
-- does not apply to (superusers, BYPASSRLS roles).

SET LOCAL search_path TO pg_catalog, pg_temp;

-- The masked view's query: every column of the table in order, limited ones
-- masked unless module.read_action reaches the row.
CREATE FUNCTION fluent._masked_view_sql(p fluent.protected_tables) RETURNS text
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT format('SELECT %s FROM %s',
                  string_agg(CASE WHEN c.column_name IS NULL THEN quote_ident(a.attname)
                                  -- The NULL has the column's type and typmod, so
                                  -- the view column has them too.
                                  ELSE format('CASE WHEN %s THEN %I ELSE NULL::%s END AS %I',
                                              fluent._rows_reached_sql(p, c.module, c.read_action), a.attname,
                                              format_type(a.atttypid, a.atttypmod), a.attname)
                             END, ', ' ORDER BY a.attnum),
                  p.table_name)
      FROM pg_attribute a
      LEFT JOIN fluent.protected_columns c ON c.table_name = p.table_name AND c.column_name = a.attname
     WHERE a.attrelid = p.table_name AND a.attnum > 0 AND NOT a.attisdropped;
END;

-- What the write triggers check: for each limited column, the argument of
-- its trigger, with the permission and the test that it reaches the row.
CREATE FUNCTION fluent._column_write_checks(p fluent.protected_tables) RETURNS jsonb
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'column', c.column_name, 'permission', c.module || '.' || c.write_action,
               'reaches', fluent._rows_reached_sql(p, c.module, c.write_action)) ORDER BY c.column_name), '[]')
      FROM fluent.protected_columns c WHERE c.table_name = p.table_name;
END;

-- The write trigger of one limited column; its argument is the column's
-- entry of _column_write_checks(). It fires on every insert, and on the
-- updates that assign the column (UPDATE OF, also through MERGE and ON
-- CONFLICT DO UPDATE), which are refused without the permission even when
-- the value does not change (see above). An update must reach the row
-- before as well as after: otherwise a user could take a row over, change
-- the column and hand the row back in one statement. SECURITY INVOKER: it
-- runs as the writer, whose acting user the reach tests answer for. It
-- applies where row-level security applies to the write, and to the
-- foreign-key actions (ON UPDATE CASCADE, ON DELETE SET NULL, ...) that
-- such a writer's statement causes, which PostgreSQL runs as the table's
-- owner outside its row security (fluent._column_limits_apply).
CREATE FUNCTION fluent._check_column_writes() RETURNS trigger
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

-- Replaces the column write triggers on rel (p's table, or one of its
-- partitions or inheritance children) with one per limit of p (none when it
-- has none left). fluent's are told by their function, whatever their names
-- (0.1.0 had one trigger for all columns). A partition gets its triggers as
-- clones of its parent's (PostgreSQL makes them, also for partitions created
-- or attached later, and drops them with the parent's); an inheritance child
-- gets none that way, yet a write to the table reaches its rows too.
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

-- Creates or replaces the masked view (named view_name) and the write
-- triggers of p's table and its partitions and children from its limits, or
-- removes them when it has none left; records the view.
CREATE FUNCTION fluent._install_column_limits(p fluent.protected_tables, view_name text) RETURNS void
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

CREATE FUNCTION @extschema@.fluent_protect_columns(
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
COMMENT ON FUNCTION @extschema@.fluent_protect_columns(regclass, name[], text, text, text, text) IS
    'Limits columns of a protected table: masked (NULL) in the table''s masked view (returned) without module.read_action, unchangeable without module.write_action, each at a scope that reaches the row';

CREATE FUNCTION @extschema@.fluent_unprotect_columns(tbl regclass, columns name[] DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p fluent.protected_tables;
BEGIN
    PERFORM fluent._require_admin();
    PERFORM fluent._not_null(tbl, 'table');
    SELECT x.* INTO p FROM fluent.protected_tables x WHERE x.table_name = tbl;
    IF NOT FOUND OR p.masked_view IS NULL THEN
        RAISE EXCEPTION 'table "%" has no column limits', tbl USING ERRCODE = 'undefined_object';
    END IF;
    DELETE FROM fluent.protected_columns c
     WHERE c.table_name = tbl AND (columns IS NULL OR c.column_name = ANY (columns));
    PERFORM fluent._install_column_limits(p, p.masked_view::text);
END $$;
COMMENT ON FUNCTION @extschema@.fluent_unprotect_columns(regclass, name[]) IS
    'Removes column limits (those named, or all): the masked view shows the columns again, and goes with the last limit';

SET LOCAL search_path TO @extschema@, pg_temp;
