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

CREATE FUNCTION @extschema@.fluent_drop_item_role(module text, item_role text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM fluent._require_admin();
    DELETE FROM fluent.item_roles r WHERE r.item_role_id = fluent._item_role_id(module, item_role);
END $$;

-- Why an assignment may not be written, as (SQLSTATE, message, hint); NULL
-- when it may. It must name a user or a team (not both) and an item role of
-- the module in the current workspace; an item role with a condition is
-- held by users who meet it, never through a team (whose members change).
-- Security definer, to read the catalog; the caller (named by the ticket
-- from fluent._caller()) must be able to write the assignment table, so
-- that it tells nothing to anyone the trigger would not tell.
CREATE FUNCTION fluent._item_assignment_refusal(module text, item_role text, user_key text, team text,
                                                tbl regclass, ticket bigint)
RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    caller oid := fluent._take_caller(ticket);
    p fluent.protected_tables;
    r fluent.item_roles;
    required text;
    held boolean;
BEGIN
    SELECT x.* INTO p FROM fluent.protected_tables x WHERE x.table_name = fluent._membership_of(tbl);
    IF p.membership_role_column IS NULL OR p.module IS DISTINCT FROM module
       OR NOT (has_table_privilege(caller, tbl, 'INSERT') OR has_table_privilege(caller, tbl, 'UPDATE')) THEN
        RAISE EXCEPTION 'permission denied to check assignments to "%"', tbl USING ERRCODE = 'insufficient_privilege',
            HINT = 'fluent checks the assignments written to an assignment table (fluent_protect''s membership_role_column).';
    END IF;
    IF item_role IS NULL OR (user_key IS NULL) = (team IS NULL) THEN
        RETURN ARRAY['23502', format('an assignment to "%s" must name an item role and either a user or a team', tbl),
                     'Fill the role column and one of the user and team columns.'];
    END IF;
    SELECT x.* INTO r FROM fluent.item_roles x JOIN fluent.modules m ON m.module_id = x.module_id
     WHERE m.workspace_id = fluent._workspace_id() AND m.name = module AND x.name = item_role;
    IF NOT FOUND THEN
        RETURN ARRAY['42704', format('fluent module "%s" has no item role "%s"', module, item_role),
                     coalesce('Its item roles: ' || (SELECT string_agg(x.name, ', ' ORDER BY x.name)
                                                      FROM fluent.item_roles x JOIN fluent.modules m ON m.module_id = x.module_id
                                                     WHERE m.workspace_id = fluent._workspace_id() AND m.name = module) || '.',
                              'Define it with fluent_create_item_role().')];
    END IF;
    IF r.required_role_id IS NULL AND r.required_action_id IS NULL THEN
        RETURN NULL;
    END IF;
    IF r.required_role_id IS NOT NULL THEN
        required := format('the role "%s"', (SELECT x.name FROM fluent.roles x WHERE x.role_id = r.required_role_id));
    ELSE
        required := (SELECT format('the permission %s.%s', m.name, a.name)
                       FROM fluent.actions a JOIN fluent.modules m ON m.module_id = a.module_id
                      WHERE a.action_id = r.required_action_id);
    END IF;
    IF team IS NOT NULL THEN
        RETURN ARRAY['23514', format('item role "%s" cannot be given to team "%s": it requires %s', item_role, team, required),
                     'Assign it to users who hold what it requires, one by one.'];
    END IF;
    IF r.required_role_id IS NOT NULL THEN
        held := EXISTS (SELECT 1 FROM fluent.grants g JOIN fluent.users u ON u.user_id = g.user_id
                         WHERE u.user_key = _item_assignment_refusal.user_key AND g.role_id = r.required_role_id
                           AND fluent._in_force(g.valid_until));
    ELSE
        held := (SELECT fluent._scope_of(user_key, m.name, a.name) <> 'none'
                   FROM fluent.actions a JOIN fluent.modules m ON m.module_id = a.module_id
                  WHERE a.action_id = r.required_action_id);
    END IF;
    IF NOT held THEN
        RETURN ARRAY['23514', format('fluent user "%s" cannot be assigned item role "%s": it requires %s', user_key, item_role, required),
                     format('Give "%s" %s first.', user_key, required)];
    END IF;
    RETURN NULL;
END $$;

-- BEFORE INSERT OR UPDATE on an assignment table and its partitions and
-- children: refuses what fluent._item_assignment_refusal refuses.
-- Arguments: the module and the assignment's user, team ('' for none) and
-- role columns, which fluent_protect() checked are text. SECURITY INVOKER:
-- it reads the row as the writer.
CREATE FUNCTION fluent._check_item_assignment() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    assignee text;
    team text;
    item_role text;
    refusal text[];
BEGIN
    EXECUTE format('SELECT ($1).%I::text, %s, ($1).%I::text', TG_ARGV[1],
                   CASE WHEN TG_ARGV[2] = '' THEN 'NULL::text' ELSE format('($1).%I::text', TG_ARGV[2]) END, TG_ARGV[3])
       INTO assignee, team, item_role USING NEW;
    refusal := fluent._item_assignment_refusal(TG_ARGV[0], item_role, assignee, team, TG_RELID, fluent._caller());
    IF refusal IS NOT NULL THEN
        RAISE EXCEPTION '%', refusal[2] USING ERRCODE = refusal[1], HINT = refusal[3];
    END IF;
    RETURN NEW;
END $$;

-- Replaces the assignment check on rel (p's assignment table, or one of its
-- partitions or children); with p NULL, removes it. A partition gets it as
-- a clone of its parent's.
CREATE FUNCTION fluent._install_assignment_check(rel regclass, p fluent.protected_tables) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    trigger_name name;
BEGIN
    FOR trigger_name IN SELECT t.tgname FROM pg_trigger t
                         WHERE t.tgrelid = rel AND t.tgfoid = 'fluent._check_item_assignment()'::regprocedure
                           AND t.tgparentid = 0 LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trigger_name, rel);
    END LOOP;
    IF p.membership_role_column IS NULL OR (SELECT c.relispartition FROM pg_class c WHERE c.oid = rel) THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TRIGGER fluent_item_role_conditions BEFORE INSERT OR UPDATE ON %s FOR EACH ROW
                    EXECUTE FUNCTION fluent._check_item_assignment(%L, %L, %L, %L)',
                   rel, p.module, p.membership_user_column, coalesce(p.membership_team_column, ''), p.membership_role_column);
END $$;

SET LOCAL search_path TO @extschema@, pg_temp;
