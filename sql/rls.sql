-- Protecting application tables with row-level security.
--
-- fluent_protect() writes four policies whose predicates never call a
-- function per row: the tests of the acting user's reach (fluent.rls_all,
-- rls_own, rls_users, rls_any) and the user's own key (rls_user_key) are
-- folded to constants when the query is planned (src/plans.rs); the keys a
-- team scope reaches are fetched by a scalar sub-select, once per query as an
-- InitPlan; rows are compared with `= key` or `= ANY(keys)`, which an index
-- on the column serves;
-- assignment tables are read through an uncorrelated ARRAY(SELECT ...) that
-- uses an index on the assignment's user column. The table is FORCEd, so its
-- owner is subject to the policies too (superusers and BYPASSRLS roles never
-- are).
--
-- A protection covers the table's partitions and inheritance children, also
-- those created or attached later (an event trigger), and the membership
-- table, whose writes are kept within the writer's reach. What
-- fluent_protect() created is recorded, so fluent_protection_problems() can
-- tell what no longer matches.

-- Everything below resolves names in pg_catalog and fluent's own schema only
-- (see "Install-time safety" in README.md); the extension schema comes back at the end.
SET LOCAL search_path TO pg_catalog, pg_temp;

-- The kind of key a column holds: text, int or uuid; an error otherwise.
-- A text key column must compare by its bytes: under a nondeterministic
-- collation another user's key (ann in other case, or followed by a
-- zero-width space) would equal the acting user's, and the policies, which
-- compare in the column's collation so that its index serves them, would
-- hand that user's rows over.
CREATE FUNCTION fluent._key_kind(tbl regclass, col name, what text) RETURNS text
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

CREATE FUNCTION fluent._unsupported_key_type(tbl regclass, col name, typ regtype, what text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'column "%" of relation "%" has type %, which fluent cannot use as the %', col, tbl, typ, what
        USING ERRCODE = 'datatype_mismatch', HINT = 'Use a column of type text, varchar, smallint, integer, bigint or uuid.';
END $$;

-- The sub-select calling an rls_* helper in the variant typed for a column
-- kind: rls_owner_keys / _ids / _uuids return text[] / bigint[] / uuid[]. The
-- cast also makes `col = ANY ((SELECT ...)::type)` compare with the array's
-- elements instead of reading the sub-select as a set of rows. The planner
-- folds the helper to the keys either way (src/plans.rs); as a sub-select,
-- an InitPlan, the keys are not estimated one by one however many there are.
-- On a Citus node the call is bare: Citus sends no sub-select to the shards
-- (sql/citus.sql).
CREATE FUNCTION fluent._typed_keys_sql(helper text, kind text, args text) RETURNS text
LANGUAGE sql STABLE
RETURN CASE WHEN fluent._citus_node() = 'none'
            THEN format('(SELECT fluent.%s_%s(%s))::%s', helper,
                        CASE kind WHEN 'text' THEN 'keys' WHEN 'int' THEN 'ids' ELSE 'uuids' END, args,
                        CASE kind WHEN 'text' THEN 'text[]' WHEN 'int' THEN 'bigint[]' ELSE 'uuid[]' END)
            ELSE format('fluent.%s_%s(%s)', helper,
                        CASE kind WHEN 'text' THEN 'keys' WHEN 'int' THEN 'ids' ELSE 'uuids' END, args) END;

-- The keys of the users the acting user reaches with module.action.
CREATE FUNCTION fluent._reached_keys_sql(kind text, module text, action text) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN fluent._typed_keys_sql('rls_owner', kind, format('%L, %L', module, action));

-- The acting user's key, typed for a column kind. A bare call: the planner
-- replaces it with the key (src/plans.rs), so `col = <key>` is planned and
-- estimated like `col = 'ann'` written by hand.
CREATE FUNCTION fluent._user_key_sql(kind text) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN format('fluent.rls_user_%s()', CASE kind WHEN 'text' THEN 'key' WHEN 'int' THEN 'id' ELSE 'uuid' END);

-- The test that a key column holds the acting user's own key (own: `= <key>`)
-- or one of the keys their scope reaches on module.action (`= ANY (<keys>)`).
CREATE FUNCTION fluent._key_test_sql(kind text, module text, action text, own boolean) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN CASE WHEN own THEN '= ' || fluent._user_key_sql(kind)
            ELSE format('= ANY (%s)', fluent._reached_keys_sql(kind, module, action)) END;

-- Which rows module.action reaches: every row, the rows own_rows picks when
-- the acting user reaches only their own, the rows users_rows picks when
-- they reach other users' too, or none. The tests of the reach are called
-- bare, not in sub-selects: the planner replaces them with the acting
-- user's answer (src/plans.rs), so the predicate folds to nothing, to false,
-- or to one branch, which the indexes on the key columns serve.
CREATE FUNCTION fluent._reach_sql(module text, action text, own_rows text, users_rows text) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN format('(fluent.rls_all(%1$L, %2$L) OR (fluent.rls_own(%1$L, %2$L) AND (%3$s)) OR (fluent.rls_users(%1$L, %2$L) AND (%4$s)))',
              module, action, own_rows, users_rows);

-- Which rows module.action reaches on a table whose rows are tied to users
-- by an owner column alone: one call, which the planner replaces with the
-- test it stands for the acting user (src/plans.rs): nothing, `col =
-- <key>`, `col = ANY (<keys>)` or false. What _reach_sql writes for the
-- same rows makes four calls and a sub-select, which every statement
-- copies into its query before the planner folds them away.
CREATE FUNCTION fluent._owner_reach_sql(module text, action text, col name) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN format('fluent.rls_reaches(%L, %L, %I)', module, action, col);

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

-- The current workspace, as a one-element array.
CREATE FUNCTION fluent._workspace_keys_sql(kind text) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN fluent._typed_keys_sql('rls_workspace', kind, '');

-- The names of fluent's policies on a protected table (and its partitions and
-- children), or on its membership table.
CREATE FUNCTION fluent._policy_names(on_membership boolean) RETURNS name[]
LANGUAGE sql IMMUTABLE
RETURN CASE WHEN on_membership
            THEN '{fluent_member_select,fluent_member_insert,fluent_member_update,fluent_member_delete}'::name[]
            ELSE '{fluent_select,fluent_insert,fluent_update,fluent_delete}'::name[] END;

-- What fluent_protect() writes in a policy's comment: how fluent recognizes
-- its own policies when their catalog row is gone (a schema-only restore).
CREATE FUNCTION fluent._policy_comment(module text) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN 'created by fluent_protect() for module ' || module;

-- The tables that inherit from tbl at any depth (partitions, partitions of
-- partitions, inheritance children), without tbl itself.
CREATE FUNCTION fluent._descendants(tbl regclass) RETURNS SETOF regclass
LANGUAGE sql STABLE
BEGIN ATOMIC
    WITH RECURSIVE d (relid) AS (
        SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = tbl
        UNION
        SELECT i.inhrelid FROM pg_inherits i JOIN d ON i.inhparent = d.relid
    )
    SELECT d.relid::regclass FROM d;
END;

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
CREATE FUNCTION fluent._protected_root(tbl regclass) RETURNS regclass
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT p.table_name FROM fluent._ancestors(tbl) a JOIN fluent.protected_tables p ON p.table_name::oid = a.relid
     ORDER BY a.depth LIMIT 1;
END;

-- The protected table whose membership rows tbl holds: the one whose
-- membership table is tbl, or the nearest table tbl inherits from (a
-- partition or child of a membership table); NULL if none.
CREATE FUNCTION fluent._membership_of(tbl regclass) RETURNS regclass
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT p.table_name FROM fluent._ancestors(tbl) a JOIN fluent.protected_tables p ON p.membership_table::oid = a.relid
     ORDER BY a.depth LIMIT 1;
END;

-- Every policy on a table as PostgreSQL prints it, by name: what
-- fluent_protect() records and fluent_protection_problems() compares. The
-- pinned search_path and standard_conforming_strings keep the printed form
-- stable (a name with a backslash prints as E'...' with the latter off).
CREATE FUNCTION fluent._policies_of(tbl regclass) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on
BEGIN ATOMIC
    SELECT coalesce(jsonb_object_agg(pol.polname, jsonb_build_object(
               'command', pol.polcmd::text, 'permissive', pol.polpermissive, 'roles', pol.polroles::text,
               'using', pg_get_expr(pol.polqual, pol.polrelid), 'check', pg_get_expr(pol.polwithcheck, pol.polrelid))),
           '{}'::jsonb)
      FROM pg_policy pol WHERE pol.polrelid = tbl;
END;

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
CREATE FUNCTION fluent._scope_rows_sql(p fluent.protected_tables, module text, act text) RETURNS text
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

-- Which rows of p's table module.action reaches for the acting user (the
-- workspace filter aside): those their scope reaches, and those where they
-- hold an item role that gives the action. Read by the row policies and the
-- column limits.
CREATE FUNCTION fluent._rows_reached_sql(p fluent.protected_tables, module text, act text) RETURNS text
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT CASE WHEN items IS NULL THEN scope ELSE format('(%s OR %s)', scope, items) END
      FROM (SELECT fluent._scope_rows_sql(p, module, act) AS scope, fluent._item_rows_sql(p, module, act) AS items) r;
END;

-- The policies that protect a table (on_membership false) and those that
-- keep writes to its membership table within reach (true): name, command,
-- USING and WITH CHECK. member_rel is the table the membership policies go
-- on (the membership table, or one of its partitions or children): their
-- check names it to refer to the row written.
CREATE FUNCTION fluent._policy_definitions(p fluent.protected_tables, member_rel regclass)
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

-- Creates fluent's policies for p on tbl (the protected table, one of its
-- partitions or children, or with on_membership its membership table or
-- one of that table's partitions or children) and enables and forces
-- row-level security there.
CREATE FUNCTION fluent._install_policies(tbl regclass, p fluent.protected_tables, on_membership boolean)
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

-- Drops fluent's policies from tbl and its partitions and children, and from
-- the membership table and its partitions and children, and puts row-level
-- security back as it was: as recorded in p, or (p NULL, no record, and
-- partitions and children, which are not recorded) disabled where no policy
-- is left.
CREATE FUNCTION fluent._remove_policies(tbl regclass, p fluent.protected_tables) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel regclass;
    pol name;
    touched regclass[] := ARRAY[tbl];
    was_enabled boolean;
    was_forced boolean;
BEGIN
    FOR rel, pol IN
        SELECT pl.polrelid::regclass, pl.polname FROM pg_policy pl
         WHERE pl.polname = ANY (fluent._policy_names(false))
           AND (pl.polrelid = tbl OR pl.polrelid IN (SELECT fluent._descendants(tbl)))
        UNION ALL
        -- fluent's membership policies are on the tables where some of them
        -- refer to tbl
        SELECT pl.polrelid::regclass, pl.polname FROM pg_policy pl
         WHERE pl.polname = ANY (fluent._policy_names(true))
           AND pl.polrelid IN (SELECT m.polrelid FROM pg_policy m JOIN pg_depend d
                                   ON d.classid = 'pg_policy'::regclass AND d.objid = m.oid
                                WHERE m.polname = ANY (fluent._policy_names(true))
                                  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = tbl)
    LOOP
        EXECUTE format('DROP POLICY %I ON %s', pol, rel);
        touched := touched || rel;
    END LOOP;
    FOR rel IN SELECT DISTINCT r FROM unnest(touched) r LOOP
        IF rel = p.table_name THEN
            was_enabled := p.rls_was_enabled;
            was_forced := p.rls_was_forced;
        ELSIF rel = p.membership_table THEN
            was_enabled := p.membership_rls_was_enabled;
            was_forced := p.membership_rls_was_forced;
        ELSE
            -- Not recorded (a partition or child, or no record at all):
            -- enabled only where other policies remain.
            was_enabled := EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = rel);
            was_forced := was_enabled AND (SELECT relforcerowsecurity FROM pg_class WHERE oid = rel);
        END IF;
        IF NOT was_enabled THEN EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', rel); END IF;
        IF NOT was_forced THEN EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', rel); END IF;
    END LOOP;
END $$;

-- Whether tbl carries policies that fluent_protect() created (by name and
-- comment) although fluent.protected_tables has no row for it.
CREATE FUNCTION fluent._has_orphaned_policies(tbl regclass) RETURNS boolean
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT EXISTS (SELECT 1 FROM pg_policy pl
                    WHERE pl.polrelid = tbl AND pl.polname = ANY (fluent._policy_names(false))
                      AND obj_description(pl.oid, 'pg_policy') LIKE 'created by fluent\_protect()%')
       AND NOT EXISTS (SELECT 1 FROM fluent.protected_tables p WHERE p.table_name = tbl);
END;

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
COMMENT ON FUNCTION @extschema@.fluent_protect(regclass, text, name, regclass, name, name, name, name, text, text, text, text,
                                                name, name, regclass, name) IS
    'Enables and forces row-level security on a table so that the module''s actions govern its commands: by default read SELECT, write INSERT and UPDATE, delete DELETE; with an assignment table (membership_role_column) or a parent table, item roles give their actions on the items where they are held';

CREATE FUNCTION @extschema@.fluent_unprotect(tbl regclass) RETURNS void
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
COMMENT ON FUNCTION @extschema@.fluent_unprotect(regclass) IS
    'Removes fluent''s policies from a table, its partitions and children and its membership table, and restores their row-level security settings; also removes fluent''s policies left without a catalog row (a schema-only restore)';

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
CREATE FUNCTION @extschema@.fluent_protection_problems()
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
COMMENT ON FUNCTION @extschema@.fluent_protection_problems() IS
    'What no longer matches what fluent_protect() and fluent_protect_columns() set up: row-level security disabled or not forced, policies missing, changed or added, parents outside the protection, on protected tables, their partitions and children and membership tables; limited columns readable, the column trigger and the masked view changed; and views that bypass the policies or the column limits';

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

-- "Who can see invoice 3?": each user who may perform module.action on the
-- row of tbl keyed row_key, and why (src/who_can.rs): their scope, whether
-- roles (named) or an override give it, and how it reaches the row: all,
-- owner, assignee (through the membership table), team lead or manager
-- (through the owner or assignee named in `through`).
CREATE FUNCTION @extschema@.fluent_who_can(tbl regclass, row_key text, action text DEFAULT 'read')
RETURNS TABLE (user_key text, scope text, source text, roles text[], reach text, through text)
LANGUAGE sql STABLE PARALLEL RESTRICTED
BEGIN ATOMIC
    SELECT * FROM fluent._who_can(tbl, row_key, action);
END;
COMMENT ON FUNCTION @extschema@.fluent_who_can(regclass, text, text) IS
    'Who may perform a module action (default read) on one row of a protected table, and why: scope, source, roles, and how the scope reaches the row (all, owner, assignee, team lead, manager); for those who may read everyone''s permissions';

CREATE VIEW fluent.protection_status AS
SELECT p.table_name, p.module, count(x.problem) = 0 AS intact,
       coalesce(array_agg(format('%s: %s (%s)', x.relation, x.problem, x.detail) ORDER BY x.relation::text, x.problem)
                FILTER (WHERE x.problem IS NOT NULL), '{}') AS problems
  FROM fluent.protected_tables p
  LEFT JOIN @extschema@.fluent_protection_problems() x ON x.table_name = p.table_name
 GROUP BY p.table_name, p.module;
COMMENT ON VIEW fluent.protection_status IS
    'Each protected table and whether its protection is intact; problems lists what no longer matches what fluent_protect() set up (see fluent_protection_problems())';

-- A dropped table is no longer protected. A table whose item roles a child
-- table still uses is dropped only with it, as fluent_unprotect refuses to
-- unprotect it: the child's parent check would otherwise name whatever table
-- takes the name next. SECURITY DEFINER because whoever drops a table may not
-- write the catalog; it can only be called by the event trigger system
-- (pg_event_trigger_dropped_objects() fails elsewhere).
CREATE FUNCTION fluent._forget_dropped_tables() RETURNS event_trigger
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

CREATE EVENT TRIGGER fluent_forget_dropped_tables ON sql_drop
    EXECUTE FUNCTION fluent._forget_dropped_tables();

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
CREATE FUNCTION fluent._protect_new_children() RETURNS event_trigger
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

CREATE EVENT TRIGGER fluent_protect_new_children ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE FOREIGN TABLE')
    EXECUTE FUNCTION fluent._protect_new_children();

SET LOCAL search_path TO @extschema@, pg_temp;
