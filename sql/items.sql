-- Item roles (seeds 002/003): roles held on one item of a protected table,
-- such as a project's manager, editor or viewer, through an assignment
-- table of the application's. DBAs define them per module, like modules and
-- actions; the application writes the assignments, which fluent_protect()
-- (membership_role_column) keeps within the writer's scope and checks
-- against the item role's condition here. The policies that read them are
-- written by fluent._item_rows_sql (sql/rls.sql).

-- Everything below resolves names in pg_catalog and fluent's own schema only
-- (see "Install-time safety" in README.md); the extension schema comes back at the end.
SET LOCAL search_path TO pg_catalog, pg_temp;

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
COMMENT ON FUNCTION @extschema@.fluent_create_item_role(text, text, text[], text, text, text, text) IS
    'Defines an item role of a module: held on one item through an assignment table, it gives the actions named there; optionally it requires a role or a permission of whoever is assigned it';

CREATE FUNCTION @extschema@.fluent_drop_item_role(module text, item_role text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM fluent._require_admin();
    DELETE FROM fluent.item_roles r WHERE r.item_role_id = fluent._item_role_id(module, item_role);
END $$;
COMMENT ON FUNCTION @extschema@.fluent_drop_item_role(text, text) IS
    'Drops an item role: assignments naming it give nothing';

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
        RAISE EXCEPTION 'permission denied to hand over a row of "%"', fluent._table_name_of(TG_RELID)
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
-- parent table and its key column; on Citus, between distributed tables,
-- also the child's and the parent's distribution columns: the trigger runs
-- on the child's shard, and the parent's row is looked up by its
-- distribution value too, on the co-located shard of the same node (Citus
-- runs no query on other nodes from a shard's trigger). SECURITY INVOKER.
CREATE FUNCTION fluent._check_item_parent() RETURNS trigger
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

-- Replaces the item roles' triggers on rel (p's assignment table when
-- on_assignments, else p's table; or one of their partitions or children);
-- with p NULL, removes them. A partition gets them as clones of its parent's.
-- On a Citus table, Citus creates them on every shard, where they run (it
-- asks for citus.enable_unsafe_triggers, on for this function only: the
-- triggers read only the shard's row and, on the same node, the catalog and
-- the co-located shards).
CREATE FUNCTION fluent._install_item_triggers(rel regclass, p fluent.protected_tables, on_assignments boolean)
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

-- What drifted in the item roles' triggers (fluent._item_triggers) on p's
-- table, its assignment table and their partitions and children: missing,
-- disabled, or not as created.
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

-- (standard_conforming_strings pinned: a trigger's condition prints as the
-- recorded one whatever the session's setting.)
CREATE FUNCTION fluent._item_trigger_problems(p fluent.protected_tables)
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

SET LOCAL search_path TO @extschema@, pg_temp;
