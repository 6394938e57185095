-- Protecting application tables with row-level security.
--
-- fluent_protect() writes four policies whose predicates never call a
-- function per row: every fluent.rls_* call sits in a scalar sub-select and
-- so runs once per query as an InitPlan; rows are compared with
-- `= ANY(array)`, which an index on the column can serve; assignment tables
-- are read through an uncorrelated ARRAY(SELECT ...) that uses an index on
-- the assignment's user column. The table is FORCEd, so its owner is subject
-- to the policies too (superusers and BYPASSRLS roles never are).

-- The kind of key a column holds: text, int or uuid; an error otherwise.
CREATE FUNCTION fluent._key_kind(tbl regclass, col name, what text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    typ regtype;
BEGIN
    SELECT atttypid INTO typ FROM pg_attribute
     WHERE attrelid = tbl AND attname = col AND attnum > 0 AND NOT attisdropped;
    IF typ IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation "%" does not exist', col, tbl
            USING ERRCODE = 'undefined_column', HINT = format('It was given as the %s.', what);
    END IF;
    RETURN CASE
        WHEN typ IN ('text'::regtype, 'varchar'::regtype) THEN 'text'
        WHEN typ IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) THEN 'int'
        WHEN typ = 'uuid'::regtype THEN 'uuid'
        ELSE fluent._unsupported_key_type(tbl, col, typ, what)
    END;
END $$;

CREATE FUNCTION fluent._unsupported_key_type(tbl regclass, col name, typ regtype, what text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RAISE EXCEPTION 'column "%" of relation "%" has type %, which fluent cannot use as the %', col, tbl, typ, what
        USING ERRCODE = 'datatype_mismatch', HINT = 'Use a column of type text, varchar, smallint, integer, bigint or uuid.';
END $$;

-- The sub-select calling an rls_* helper in the variant typed for a column
-- kind: rls_owner_keys / _ids / _uuids return text[] / bigint[] / uuid[]. The
-- cast also makes `col = ANY ((SELECT ...)::type)` compare with the array's
-- elements instead of reading the sub-select as a set of rows.
CREATE FUNCTION fluent._typed_keys_sql(helper text, kind text, args text) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN format('(SELECT fluent.%s_%s(%s))::%s', helper,
              CASE kind WHEN 'text' THEN 'keys' WHEN 'int' THEN 'ids' ELSE 'uuids' END, args,
              CASE kind WHEN 'text' THEN 'text[]' WHEN 'int' THEN 'bigint[]' ELSE 'uuid[]' END);

-- The keys of the users the acting user reaches with module.action.
CREATE FUNCTION fluent._reached_keys_sql(kind text, module text, action text) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN fluent._typed_keys_sql('rls_owner', kind, format('%L, %L', module, action));

-- The current workspace, as a one-element array.
CREATE FUNCTION fluent._workspace_keys_sql(kind text) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN fluent._typed_keys_sql('rls_workspace', kind, '');

CREATE FUNCTION fluent_protect(
    tbl regclass,
    module text,
    owner_column name DEFAULT NULL,
    membership_table regclass DEFAULT NULL,
    membership_row_column name DEFAULT NULL,
    membership_user_column name DEFAULT NULL,
    row_column name DEFAULT NULL,
    workspace_column name DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    mid int;
    owner_kind text;
    member_kind text;
    workspace_filter text;
    rel record;
    act text;
    missing text[];
    reach jsonb := '{}';
    write_check text;
BEGIN
    PERFORM fluent._require_admin();
    PERFORM fluent._not_null(tbl, 'table');
    mid := fluent._module_id(module);

    SELECT c.relkind, c.relrowsecurity, c.relforcerowsecurity INTO rel FROM pg_class c WHERE c.oid = tbl;
    IF rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;
    IF EXISTS (SELECT 1 FROM fluent.protected_tables p WHERE p.table_name = tbl) THEN
        RAISE EXCEPTION 'table "%" is already protected by fluent', tbl
            USING ERRCODE = 'duplicate_object', HINT = 'Call fluent_unprotect() first to change how it is protected.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = tbl AND polpermissive) THEN
        RAISE EXCEPTION 'table "%" already has permissive row-level security policies', tbl
            USING ERRCODE = 'object_in_use',
                  HINT = 'Permissive policies are OR-ed with fluent''s and would widen access: drop them or make them AS RESTRICTIVE.';
    END IF;
    IF owner_column IS NULL AND membership_table IS NULL THEN
        RAISE EXCEPTION 'fluent_protect needs an owner column, a membership table, or both'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF owner_column IS NOT NULL THEN
        owner_kind := fluent._key_kind(tbl, owner_column, 'owner column');
    END IF;
    IF membership_table IS NOT NULL THEN
        IF membership_row_column IS NULL OR membership_user_column IS NULL THEN
            RAISE EXCEPTION 'a membership table needs membership_row_column and membership_user_column'
                USING ERRCODE = 'invalid_parameter_value';
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
        member_kind := fluent._key_kind(membership_table, membership_user_column, 'membership user column');
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
    END IF;
    IF workspace_column IS NOT NULL THEN
        workspace_filter := format('%I = ANY (%s)', workspace_column,
                                   fluent._workspace_keys_sql(fluent._key_kind(tbl, workspace_column, 'workspace column')));
    END IF;

    SELECT array_agg(a) INTO missing FROM unnest(ARRAY['read', 'write', 'delete']) a
     WHERE NOT EXISTS (SELECT 1 FROM fluent.actions x WHERE x.module_id = mid AND x.name = a);
    IF missing IS NOT NULL THEN
        RAISE WARNING 'fluent module "%" has no action %: those commands on "%" will be denied to everyone',
            module, array_to_string(missing, ', '), tbl;
    END IF;

    -- Which rows an action reaches: all of them at scope all, else the rows
    -- owned by or assigned to the users the scope reaches.
    FOREACH act IN ARRAY ARRAY['read', 'write', 'delete'] LOOP
        reach := reach || jsonb_build_object(act, concat_ws(' AND ', workspace_filter, '(' || concat_ws(' OR ',
            format('(SELECT fluent.rls_all(%L, %L))', module, act),
            CASE WHEN owner_column IS NOT NULL THEN
                format('%I = ANY (%s)', owner_column, fluent._reached_keys_sql(owner_kind, module, act)) END,
            CASE WHEN membership_table IS NOT NULL THEN
                format('%I = ANY (ARRAY(SELECT m.%I FROM %s m WHERE m.%I = ANY (%s)))',
                       row_column, membership_row_column, membership_table, membership_user_column,
                       fluent._reached_keys_sql(member_kind, module, act)) END) || ')'));
    END LOOP;
    -- A row written must land in reach: with an owner column, owned by a
    -- user the write scope reaches; without one, any write scope will do
    -- (ownership is then given by the membership table).
    write_check := concat_ws(' AND ', workspace_filter, CASE
        WHEN owner_column IS NOT NULL THEN
            format('((SELECT fluent.rls_all(%L, ''write'')) OR %I = ANY (%s))', module, owner_column,
                   fluent._reached_keys_sql(owner_kind, module, 'write'))
        ELSE format('(SELECT fluent.rls_any(%L, ''write''))', module) END);

    EXECUTE format('CREATE POLICY fluent_select ON %s AS PERMISSIVE FOR SELECT TO PUBLIC USING (%s)', tbl, reach->>'read');
    EXECUTE format('CREATE POLICY fluent_insert ON %s AS PERMISSIVE FOR INSERT TO PUBLIC WITH CHECK (%s)', tbl, write_check);
    EXECUTE format('CREATE POLICY fluent_update ON %s AS PERMISSIVE FOR UPDATE TO PUBLIC USING (%s) WITH CHECK (%s)',
                   tbl, reach->>'write', write_check);
    EXECUTE format('CREATE POLICY fluent_delete ON %s AS PERMISSIVE FOR DELETE TO PUBLIC USING (%s)', tbl, reach->>'delete');
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', tbl);

    INSERT INTO fluent.protected_tables (table_name, module, owner_column, owner_type, membership_table,
        membership_row_column, membership_user_column, row_column, workspace_column, rls_was_enabled, rls_was_forced)
    VALUES (tbl, module, owner_column, owner_kind, membership_table,
        membership_row_column, membership_user_column, row_column, workspace_column, rel.relrowsecurity, rel.relforcerowsecurity);
END $$;

CREATE FUNCTION fluent_unprotect(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p fluent.protected_tables;
    pol text;
BEGIN
    PERFORM fluent._require_admin();
    PERFORM fluent._not_null(tbl, 'table');
    SELECT * INTO p FROM fluent.protected_tables WHERE table_name = tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table "%" is not protected by fluent', tbl USING ERRCODE = 'undefined_object';
    END IF;
    FOREACH pol IN ARRAY ARRAY['fluent_select', 'fluent_insert', 'fluent_update', 'fluent_delete'] LOOP
        EXECUTE format('DROP POLICY IF EXISTS %I ON %s', pol, tbl);
    END LOOP;
    -- Leave row-level security as it was before fluent_protect().
    IF NOT p.rls_was_enabled THEN EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', tbl); END IF;
    IF NOT p.rls_was_forced THEN EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', tbl); END IF;
    DELETE FROM fluent.protected_tables WHERE table_name = tbl;
END $$;

-- A dropped table is no longer protected. SECURITY DEFINER because whoever
-- drops a table may not write the catalog; it can only be called by the
-- event trigger system (pg_event_trigger_dropped_objects() fails elsewhere).
CREATE FUNCTION fluent._forget_dropped_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM fluent.protected_tables p
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND p.table_name::oid = d.objid;
END $$;
REVOKE ALL ON FUNCTION fluent._forget_dropped_tables() FROM PUBLIC;

CREATE EVENT TRIGGER fluent_forget_dropped_tables ON sql_drop
    EXECUTE FUNCTION fluent._forget_dropped_tables();
