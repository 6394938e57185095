-- Administration: the functions DBAs call to describe who may do what.
--
-- They run with the caller's privileges (SECURITY INVOKER): the caller must
-- be a superuser or have the privileges of fluent_admin, which may write the
-- catalog tables; application roles may not. Each function validates all of
-- its input before writing, so a mistake raises a clear error and changes
-- nothing. Functions act on the current workspace (fluent_set_workspace).

-- Everything below resolves names in pg_catalog and fluent's own schema only
-- (see "Install-time safety" in README.md); the extension schema comes back at the end.
SET LOCAL search_path TO pg_catalog, pg_temp;

-- fluent._require_admin() (src/identity.rs) refuses every role but superusers
-- and those that inherit fluent_admin's privileges, comparing role OIDs.

-- Errors shared with Rust are raised from its table (src/error.rs) by name.
CREATE FUNCTION fluent._not_null(value anyelement, what text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF value IS NULL THEN
        PERFORM fluent._raise('null_argument', ARRAY[what]);
    END IF;
END $$;

CREATE FUNCTION fluent._workspace_id() RETURNS int
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ws text := fluent._workspace_name();
    id int;
BEGIN
    PERFORM fluent._require_admin();
    SELECT workspace_id INTO id FROM fluent.workspaces WHERE name = ws;
    IF id IS NULL THEN
        PERFORM fluent._raise('unknown_workspace', ARRAY[ws]);
    END IF;
    RETURN id;
END $$;

-- The user's id, for a DBA (see _visible_user_id).
CREATE FUNCTION fluent._user_id(p_user text) RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN fluent._visible_user_id(NULL, p_user);
END $$;

-- The id of a role, module or team of the current workspace, by name.
CREATE FUNCTION fluent._named_id(kind text, p_name text) RETURNS int
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    id int;
BEGIN
    PERFORM fluent._not_null(p_name, kind);
    EXECUTE format('SELECT %I FROM fluent.%I WHERE workspace_id = $1 AND name = $2', kind || '_id', kind || 's')
       INTO id USING fluent._workspace_id(), p_name;
    IF id IS NULL THEN
        PERFORM fluent._raise('not_in_workspace', ARRAY[kind, p_name, fluent._workspace_name()]);
    END IF;
    RETURN id;
END $$;

CREATE FUNCTION fluent._role_id(p_role text) RETURNS int
LANGUAGE sql STABLE RETURN fluent._named_id('role', p_role);

CREATE FUNCTION fluent._module_id(p_module text) RETURNS int
LANGUAGE sql STABLE RETURN fluent._named_id('module', p_module);

CREATE FUNCTION fluent._team_id(p_team text) RETURNS int
LANGUAGE sql STABLE RETURN fluent._named_id('team', p_team);

CREATE FUNCTION fluent._action_id(p_module text, p_action text) RETURNS int
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    mid int := fluent._module_id(p_module);
    id int;
BEGIN
    PERFORM fluent._not_null(p_action, 'action');
    SELECT action_id INTO id FROM fluent.actions WHERE module_id = mid AND name = p_action;
    IF id IS NULL THEN
        PERFORM fluent._raise('unknown_action', ARRAY[p_module, p_action,
            (SELECT string_agg(name, ', ' ORDER BY action_id) FROM fluent.actions WHERE module_id = mid)]);
    END IF;
    RETURN id;
END $$;

CREATE FUNCTION fluent._parse_enum(value text, what text, allowed text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF value IS NULL OR NOT value = ANY (allowed) THEN
        RAISE EXCEPTION 'invalid fluent %: %', what, coalesce(quote_literal(value), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = format('Use one of: %s.', array_to_string(allowed, ', '));
    END IF;
    RETURN value;
END $$;

CREATE FUNCTION fluent._scope(value text) RETURNS fluent.scope
LANGUAGE sql IMMUTABLE
RETURN fluent._parse_enum(value, 'scope', enum_range(NULL::fluent.scope)::text[])::fluent.scope;

CREATE FUNCTION fluent._user_status(value text) RETURNS fluent.user_status
LANGUAGE sql IMMUTABLE
RETURN fluent._parse_enum(value, 'user status', enum_range(NULL::fluent.user_status)::text[])::fluent.user_status;

-- The expiry of temporary access: NULL (none) or an instant still to come.
CREATE FUNCTION fluent._until(value timestamptz) RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT fluent._in_force(value) THEN
        RAISE EXCEPTION 'fluent access cannot expire at %, which is not in the future', value
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass a later instant, or NULL for access that does not expire.';
    END IF;
    RETURN value;
END $$;

CREATE FUNCTION fluent._name(value text, what text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM fluent._not_null(value, what);
    IF value = '' OR value <> btrim(value) THEN
        RAISE EXCEPTION 'invalid fluent % name: %', what, quote_literal(value)
            USING ERRCODE = 'invalid_name', HINT = 'Names are non-empty and have no surrounding spaces.';
    END IF;
    -- Keys and names are indexed: a btree entry must fit in a third of a page.
    IF char_length(value) > 256 THEN
        RAISE EXCEPTION 'fluent % name is too long: % characters', what, char_length(value)
            USING ERRCODE = 'string_data_right_truncation', HINT = 'Names and user keys have at most 256 characters.';
    END IF;
    RETURN value;
END $$;

CREATE FUNCTION fluent._duplicate(what text, name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'fluent % "%" already exists', what, name USING ERRCODE = 'duplicate_object';
END $$;

-- Workspaces ---------------------------------------------------------------

CREATE FUNCTION @extschema@.fluent_create_workspace(workspace text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM fluent._require_admin();
    INSERT INTO fluent.workspaces (name) VALUES (fluent._name(workspace, 'workspace'))
    ON CONFLICT (name) DO NOTHING;
    IF NOT FOUND THEN PERFORM fluent._duplicate('workspace', workspace); END IF;
END $$;

CREATE FUNCTION @extschema@.fluent_drop_workspace(workspace text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM fluent._require_admin();
    PERFORM fluent._not_null(workspace, 'workspace');
    IF workspace = 'default' THEN
        RAISE EXCEPTION 'the default fluent workspace cannot be dropped' USING ERRCODE = 'object_in_use';
    END IF;
    DELETE FROM fluent.workspaces w WHERE w.name = workspace;
    IF NOT FOUND THEN
        PERFORM fluent._raise('unknown_workspace', ARRAY[workspace]);
    END IF;
END $$;

-- Modules and actions ------------------------------------------------------

CREATE FUNCTION @extschema@.fluent_create_module(module text, actions text[] DEFAULT '{read,write,delete}', parent text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ws int := fluent._workspace_id();
    parent_id int := CASE WHEN parent IS NOT NULL THEN fluent._module_id(parent) END;
    new_id int;
    a text;
BEGIN
    PERFORM fluent._require_admin();
    PERFORM fluent._name(module, 'module');
    IF actions IS NULL OR cardinality(actions) = 0 THEN
        RAISE EXCEPTION 'a fluent module needs at least one action' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'The default is ''{read,write,delete}''.';
    END IF;
    FOREACH a IN ARRAY actions LOOP
        PERFORM fluent._name(a, 'action');
    END LOOP;
    IF (SELECT count(DISTINCT x) FROM unnest(actions) x) <> cardinality(actions) THEN
        RAISE EXCEPTION 'fluent module "%" lists an action twice', module USING ERRCODE = 'duplicate_object';
    END IF;
    INSERT INTO fluent.modules (workspace_id, name, parent_id) VALUES (ws, module, parent_id)
    ON CONFLICT (workspace_id, name) DO NOTHING
    RETURNING module_id INTO new_id;
    IF new_id IS NULL THEN PERFORM fluent._duplicate('module', module); END IF;
    INSERT INTO fluent.actions (workspace_id, module_id, name)
    SELECT ws, new_id, x FROM unnest(actions) WITH ORDINALITY AS t(x, n) ORDER BY n;
END $$;

CREATE FUNCTION @extschema@.fluent_drop_module(module text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM fluent._require_admin();
    -- Submodules, actions and permissions go with it (ON DELETE CASCADE).
    DELETE FROM fluent.modules WHERE module_id = fluent._module_id(module);
END $$;

-- Delegated administration -------------------------------------------------
--
-- Users, grants, overrides, teams and roles may also be administered by the
-- application's own administrators: end users who hold a right of
-- fluent.admin_rights in the workspace. Each of these functions is a
-- SECURITY INVOKER wrapper, which names its caller with fluent._caller(),
-- around a SECURITY DEFINER implementation (fluent._do_*), which runs as the
-- catalog owner and first authorizes that caller (src/delegation.rs):
--
--   superuser or fluent_admin   a DBA: everything, as before
--   anyone else                 acts for the acting end user, who must hold
--                               the right, and never beyond their powers:
--     - nobody changes their own grants, overrides, status, manager or teams;
--     - permissions, overrides and roles given reach no further than the
--       administrator's own scope on each action (unless assign_beyond_own);
--     - privileged roles are granted, revoked, altered and dropped only by
--       holders of a privileged role;
--     - users who belong to other workspaces are managed there.
--   everyone                    a workspace keeps an active holder of a
--                               privileged role (a DBA may say force).

-- Authorizes the caller of a delegable function for `p_right`: NULL for a
-- DBA, else the acting end user they act for.
CREATE FUNCTION fluent._authorize(ticket bigint, p_right fluent.admin_right) RETURNS text
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

CREATE FUNCTION fluent._refuse(message text, hint text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION '%', message USING ERRCODE = 'insufficient_privilege', HINT = hint;
END $$;

-- Nobody administers themselves.
CREATE FUNCTION fluent._not_self(delegate text, p_user text, what text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF delegate = p_user THEN
        PERFORM fluent._refuse(format('fluent user "%s" may not change their own %s', delegate, what),
                               'Another administrator, or a DBA, must make this change.');
    END IF;
END $$;

-- Whether the user actively holds a privileged role in the current workspace.
CREATE FUNCTION fluent._holds_privileged(p_user text) RETURNS boolean
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT EXISTS (SELECT 1 FROM fluent.grants g JOIN fluent.roles r ON r.role_id = g.role_id
                     JOIN fluent.users u ON u.user_id = g.user_id
                    WHERE u.user_key = p_user AND u.status = 'active' AND r.privileged
                      AND g.workspace_id = fluent._workspace_id() AND fluent._in_force(g.valid_until));
END;

-- What only holders of a privileged role may do: refused to a delegated
-- administrator who holds none when `applies`.
CREATE FUNCTION fluent._privileged_only(delegate text, applies boolean, what text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF delegate IS NOT NULL AND applies AND NOT fluent._holds_privileged(delegate) THEN
        PERFORM fluent._refuse(format('fluent user "%s" may not %s', delegate, what),
                               'Only holders of a privileged role (fluent.roles.privileged) may.');
    END IF;
END $$;

-- A privileged role is granted, revoked, altered or dropped, and its
-- holders managed (status, account, overrides, manager), only by a holder of
-- a privileged role.
CREATE FUNCTION fluent._may_touch_role(delegate text, rid int) RETURNS void
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT fluent._privileged_only(delegate, r.privileged, format('change who holds privileged role "%s"', r.name))
      FROM fluent.roles r WHERE r.role_id = rid;
END;

CREATE FUNCTION fluent._may_touch_user(delegate text, uid bigint) RETURNS void
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT fluent._privileged_only(delegate,
               EXISTS (SELECT 1 FROM fluent.grants g JOIN fluent.roles r ON r.role_id = g.role_id
                        WHERE g.user_id = uid AND r.privileged),
               format('manage "%s", who holds a privileged role', u.user_key))
      FROM fluent.users u WHERE u.user_id = uid;
END;

-- Granting or revoking a sign-in role decides whether the user can act at
-- all: like disabling them, for privileged holders it is privileged business.
CREATE FUNCTION fluent._may_touch_sign_in(delegate text, uid bigint, rid int) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (SELECT r.grants_sign_in FROM fluent.roles r WHERE r.role_id = rid) THEN
        PERFORM fluent._may_touch_user(delegate, uid);
    END IF;
END $$;

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
CREATE FUNCTION fluent._in_my_workspace(delegate text, uid bigint) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF delegate IS NOT NULL AND fluent._belongs(uid, true) THEN
        PERFORM fluent._refuse(format('fluent user "%s" belongs to another workspace too',
                                      (SELECT u.user_key FROM fluent.users u WHERE u.user_id = uid)),
                               'Delegated administrators manage users of their own workspace only; a DBA can make this change.');
    END IF;
END $$;

-- A delegated administrator never becomes the manager, direct or above, of
-- someone they did not already reach: that would widen their own scope team.
CREATE FUNCTION fluent._not_my_reach(delegate text, p_manager bigint) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF delegate IS NOT NULL AND p_manager IS NOT NULL AND EXISTS (
        WITH RECURSIVE above AS (
            SELECT u.user_id, u.manager_id FROM fluent.users u WHERE u.user_id = p_manager
            UNION
            SELECT u.user_id, u.manager_id FROM fluent.users u JOIN above a ON u.user_id = a.manager_id
        ) SELECT 1 FROM above a JOIN fluent.users d ON d.user_id = a.user_id WHERE d.user_key = delegate) THEN
        PERFORM fluent._refuse(format('fluent user "%s" may not place users in their own reporting line', delegate),
                               'Another administrator, or a DBA, must make this change.');
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

-- The scope of every action of the current workspace, for a user (through
-- the permission cache) or for a role: snapshots taken before a change.
CREATE FUNCTION fluent._user_scope_map(p_user text) RETURNS jsonb
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT coalesce(jsonb_object_agg(a.action_id::text, fluent._scope_of(p_user, m.name, a.name)), '{}')
      FROM fluent.actions a JOIN fluent.modules m ON m.module_id = a.module_id
     WHERE a.workspace_id = fluent._workspace_id();
END;

CREATE FUNCTION fluent._role_scope_map(rid int) RETURNS jsonb
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT coalesce(jsonb_object_agg(rs.action_id::text, rs.scope), '{}') FROM fluent._role_scopes(rid) rs;
END;

-- Whether the powers checks below do not apply: to DBAs (no delegate), and
-- to administrators who may give beyond their own powers.
CREATE FUNCTION fluent._unbounded(delegate text) RETURNS boolean
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT delegate IS NULL OR fluent._holds_right(delegate, 'assign_beyond_own');
END;

-- The escalation rule: whatever a change widened (`before` -> `after`, both
-- maps of action to scope) must stay within the delegated administrator's
-- own scope, taken before the change (`powers`), unless they hold
-- assign_beyond_own. `what` names the role or user changed.
CREATE FUNCTION fluent._within_powers(delegate text, powers jsonb, before jsonb, after jsonb, what text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    beyond text;
BEGIN
    IF fluent._unbounded(delegate) THEN
        RETURN;
    END IF;
    WITH beyond_rows AS (
        SELECT format('%s.%s at scope %s (theirs: %s)', m.name, a.name, n.value, coalesce(powers ->> n.key, 'none')) AS item,
               row_number() OVER (ORDER BY m.name, a.name) AS pos
          FROM jsonb_each_text(after) n
          JOIN fluent.actions a ON a.action_id = n.key::int
          JOIN fluent.modules m ON m.module_id = a.module_id
         WHERE n.value::fluent.scope > coalesce((before ->> n.key)::fluent.scope, 'none')
           AND n.value::fluent.scope > coalesce((powers ->> n.key)::fluent.scope, 'none')
    )
    SELECT string_agg(item, ', ' ORDER BY pos) FILTER (WHERE pos <= 3)
           || CASE WHEN count(*) > 3 THEN format(' and %s more', count(*) - 3) ELSE '' END
      INTO beyond
      FROM beyond_rows;
    IF beyond IS NOT NULL THEN
        PERFORM fluent._refuse(format('fluent user "%s" may not give %s %s, beyond their own permissions', delegate, what, beyond),
                               'A delegated administrator gives no more than they hold, unless the workspace gives them the right assign_beyond_own.');
    END IF;
END $$;

-- A change to a role widens more than the role's own map: a permission that
-- another one requires (fluent_set_requirement) opens the holders' others.
-- So a delegated administrator's change to a role is also checked holder by
-- holder: what each one may do afterwards, against the snapshot taken here
-- before (user key -> scope map; NULL when the powers checks do not apply).
-- With rid NULL, everyone with a grant or override in the workspace: a
-- sign-in flag, or the last sign-in role, decides whether any of them acts.
CREATE FUNCTION fluent._holders_scope_maps(delegate text, rid int) RETURNS jsonb
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

-- Teams and reporting lines decide whom scope team reaches: a delegated
-- administrator changes them only where each user whose reach grows
-- (`widened`) has scope team on nothing the administrator lacks scope all on.
CREATE FUNCTION fluent._reach_within_powers(delegate text, powers jsonb, widened text[]) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    beyond text;
BEGIN
    IF fluent._unbounded(delegate) THEN
        RETURN;
    END IF;
    SELECT format('"%s" reaches (scope %s on %s.%s; theirs: %s)', x.u, fluent._scope_of(x.u, m.name, a.name), m.name, a.name,
                  coalesce(powers ->> a.action_id::text, 'none'))
      INTO beyond
      FROM unnest(widened) x(u)
     CROSS JOIN fluent.actions a
      JOIN fluent.modules m ON m.module_id = a.module_id
     WHERE a.workspace_id = fluent._workspace_id()
       AND coalesce((powers ->> a.action_id::text)::fluent.scope, 'none') < 'all'
       AND fluent._scope_of(x.u, m.name, a.name) IN ('direct', 'team')
     ORDER BY x.u, m.name, a.name
     LIMIT 1;
    IF beyond IS NOT NULL THEN
        PERFORM fluent._refuse(format('fluent user "%s" may not widen whom %s', delegate, beyond),
                               'Teams and reporting lines decide what scope team reaches: a delegated administrator changes them only where they have scope all themselves.');
    END IF;
END $$;

-- What an override gives: its scope on the action and on the same action of
-- every submodule that inherits it, whether or not the user can act yet (a
-- disabled user, a closed gate).
CREATE FUNCTION fluent._override_gives(aid int, s fluent.scope) RETURNS jsonb
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT coalesce(jsonb_object_agg(a::text, s), '{}') FROM fluent._inheriting_actions(aid) a;
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

CREATE FUNCTION fluent._staffed_workspaces() RETURNS int[]
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

CREATE FUNCTION fluent._may_force(delegate text, force boolean) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM fluent._not_null(force, 'force');
    IF force AND delegate IS NOT NULL THEN
        PERFORM fluent._refuse('only DBAs may force fluent administration functions',
                               'force => true is for superusers and fluent_admin members.');
    END IF;
END $$;

CREATE FUNCTION fluent._still_staffed(before int[], force boolean) RETURNS void
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

-- Which permission gives which right (DBAs only).
CREATE FUNCTION @extschema@.fluent_set_admin_right(admin_right text, module text, action text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r fluent.admin_right := fluent._parse_enum(admin_right, 'administrative right',
                                               enum_range(NULL::fluent.admin_right)::text[])::fluent.admin_right;
    aid int := fluent._action_id(module, action);
BEGIN
    PERFORM fluent._require_admin();
    INSERT INTO fluent.admin_rights (workspace_id, admin_right, action_id) VALUES (fluent._workspace_id(), r, aid)
    ON CONFLICT DO NOTHING;
END $$;

CREATE FUNCTION @extschema@.fluent_clear_admin_right(admin_right text, module text, action text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r fluent.admin_right := fluent._parse_enum(admin_right, 'administrative right',
                                               enum_range(NULL::fluent.admin_right)::text[])::fluent.admin_right;
    aid int := fluent._action_id(module, action);
BEGIN
    PERFORM fluent._require_admin();
    DELETE FROM fluent.admin_rights ar WHERE ar.workspace_id = fluent._workspace_id() AND ar.admin_right = r AND ar.action_id = aid;
    IF NOT FOUND THEN
        RAISE WARNING 'fluent right % is not given by %.%', r, module, action;
    END IF;
END $$;

-- Requirements (DBAs only, like modules) -----------------------------------

CREATE FUNCTION @extschema@.fluent_set_requirement(module text, required_module text, required_action text,
                                                   action text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    mid int := fluent._module_id(module);
    aid int := CASE WHEN fluent_set_requirement.action IS NOT NULL
                    THEN fluent._action_id(module, fluent_set_requirement.action) END;
    rid int := fluent._action_id(required_module, required_action);
BEGIN
    PERFORM fluent._require_admin();
    INSERT INTO fluent.requirements (workspace_id, module_id, action_id, required_action_id)
    VALUES (fluent._workspace_id(), mid, aid, rid)
    ON CONFLICT (module_id, action_id) DO UPDATE SET required_action_id = EXCLUDED.required_action_id
    WHERE requirements.required_action_id IS DISTINCT FROM EXCLUDED.required_action_id;
END $$;

CREATE FUNCTION @extschema@.fluent_clear_requirement(module text, action text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    mid int := fluent._module_id(module);
    aid int := CASE WHEN fluent_clear_requirement.action IS NOT NULL
                    THEN fluent._action_id(module, fluent_clear_requirement.action) END;
BEGIN
    PERFORM fluent._require_admin();
    DELETE FROM fluent.requirements q WHERE q.module_id = mid AND q.action_id IS NOT DISTINCT FROM aid;
    IF NOT FOUND THEN
        RAISE WARNING 'fluent module "%" has no such requirement', module;
    END IF;
END $$;

-- Roles and permissions ----------------------------------------------------

CREATE FUNCTION fluent._do_create_role(role text, description text, ticket bigint) RETURNS void
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

CREATE FUNCTION fluent._do_drop_role(role text, force boolean, ticket bigint) RETURNS void
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

CREATE FUNCTION fluent._do_set_permission(role text, module text, action text, scope text, ticket bigint) RETURNS void
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

CREATE FUNCTION fluent._do_clear_permission(role text, module text, action text, ticket bigint) RETURNS void
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

CREATE FUNCTION fluent._do_alter_role(role text, privileged boolean, grants_sign_in boolean, description text,
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

-- Users --------------------------------------------------------------------

CREATE FUNCTION fluent._do_create_user(user_key text, display_name text, manager text, status text, ticket bigint)
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

CREATE FUNCTION fluent._do_set_user_status(user_key text, status text, force boolean, ticket bigint) RETURNS void
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

CREATE FUNCTION fluent._do_set_manager(user_key text, manager text, ticket bigint) RETURNS void
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

CREATE FUNCTION fluent._do_drop_user(user_key text, force boolean, ticket bigint) RETURNS void
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

-- Grants -------------------------------------------------------------------

CREATE FUNCTION fluent._do_grant_role(user_key text, role text, until timestamptz, ticket bigint) RETURNS void
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

CREATE FUNCTION fluent._do_revoke_role(user_key text, role text, force boolean, ticket bigint) RETURNS void
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

-- Teams --------------------------------------------------------------------

CREATE FUNCTION fluent._do_create_team(team text, ticket bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    delegate text := fluent._authorize(ticket, 'manage_users');
BEGIN
    INSERT INTO fluent.teams (workspace_id, name) VALUES (fluent._workspace_id(), fluent._name(team, 'team'))
    ON CONFLICT (workspace_id, name) DO NOTHING;
    IF NOT FOUND THEN PERFORM fluent._duplicate('team', team); END IF;
END $$;

CREATE FUNCTION fluent._do_drop_team(team text, ticket bigint) RETURNS void
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

-- A delegated administrator changes no team they belong to: leading one
-- reaches its members, so adding to it widens their own scope team.
CREATE FUNCTION fluent._not_my_team(delegate text, tid int, team text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF delegate IS NOT NULL AND EXISTS (SELECT 1 FROM fluent.team_members m JOIN fluent.users u ON u.user_id = m.user_id
                                         WHERE m.team_id = tid AND u.user_key = delegate) THEN
        PERFORM fluent._refuse(format('fluent user "%s" may not change the members of their own team "%s"', delegate, team),
                               'Another administrator, or a DBA, must make this change.');
    END IF;
END $$;

CREATE FUNCTION fluent._do_add_team_member(team text, user_key text, lead boolean, ticket bigint) RETURNS void
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

CREATE FUNCTION fluent._do_remove_team_member(team text, user_key text, ticket bigint) RETURNS void
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

-- Per-user overrides --------------------------------------------------------

CREATE FUNCTION fluent._do_set_override(user_key text, module text, action text, scope text, until timestamptz,
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

CREATE FUNCTION fluent._do_clear_override(user_key text, module text, action text, ticket bigint) RETURNS void
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

-- Feature gates ---------------------------------------------------------------

CREATE FUNCTION @extschema@.fluent_set_module_enabled(module text, enabled boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    mid int := fluent._module_id(module);
BEGIN
    PERFORM fluent._require_admin();
    PERFORM fluent._not_null(enabled, 'enabled');
    UPDATE fluent.modules m SET enabled = fluent_set_module_enabled.enabled
     WHERE m.module_id = mid AND m.enabled IS DISTINCT FROM fluent_set_module_enabled.enabled;
END $$;

-- Access review ---------------------------------------------------------------

-- Records that the user's grant of `role` (every grant of theirs in the
-- current workspace when role is NULL) was reviewed and kept; returns how
-- many grants were marked.
CREATE FUNCTION fluent._do_mark_reviewed(user_key text, role text, ticket bigint) RETURNS int
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

-- The public functions: each names its caller for the implementation.
CREATE FUNCTION @extschema@.fluent_create_role(role text, description text DEFAULT NULL) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_create_role(role, description, fluent._caller());
END;
CREATE FUNCTION @extschema@.fluent_drop_role(role text, force boolean DEFAULT false) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_drop_role(role, force, fluent._caller());
END;
CREATE FUNCTION @extschema@.fluent_set_permission(role text, module text, action text, scope text) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_set_permission(role, module, action, scope, fluent._caller());
END;
CREATE FUNCTION @extschema@.fluent_clear_permission(role text, module text, action text) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_clear_permission(role, module, action, fluent._caller());
END;
CREATE FUNCTION @extschema@.fluent_alter_role(role text, privileged boolean DEFAULT NULL, grants_sign_in boolean DEFAULT NULL,
                                              description text DEFAULT NULL, force boolean DEFAULT false,
                                              reporting_anchor boolean DEFAULT NULL) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_alter_role(role, privileged, grants_sign_in, description, force, reporting_anchor, fluent._caller());
END;
CREATE FUNCTION @extschema@.fluent_create_user(user_key text, display_name text DEFAULT NULL, manager text DEFAULT NULL,
                                               status text DEFAULT 'active') RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_create_user(user_key, display_name, manager, status, fluent._caller());
END;
CREATE FUNCTION @extschema@.fluent_set_user_status(user_key text, status text, force boolean DEFAULT false) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_set_user_status(user_key, status, force, fluent._caller());
END;
CREATE FUNCTION @extschema@.fluent_set_manager(user_key text, manager text) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_set_manager(user_key, manager, fluent._caller());
END;
CREATE FUNCTION @extschema@.fluent_drop_user(user_key text, force boolean DEFAULT false) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_drop_user(user_key, force, fluent._caller());
END;
CREATE FUNCTION @extschema@.fluent_grant_role(user_key text, role text, until timestamptz DEFAULT NULL) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_grant_role(user_key, role, until, fluent._caller());
END;
CREATE FUNCTION @extschema@.fluent_revoke_role(user_key text, role text, force boolean DEFAULT false) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_revoke_role(user_key, role, force, fluent._caller());
END;
CREATE FUNCTION @extschema@.fluent_create_team(team text) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_create_team(team, fluent._caller());
END;
CREATE FUNCTION @extschema@.fluent_drop_team(team text) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_drop_team(team, fluent._caller());
END;
CREATE FUNCTION @extschema@.fluent_add_team_member(team text, user_key text, lead boolean DEFAULT false) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_add_team_member(team, user_key, lead, fluent._caller());
END;
CREATE FUNCTION @extschema@.fluent_remove_team_member(team text, user_key text) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_remove_team_member(team, user_key, fluent._caller());
END;
CREATE FUNCTION @extschema@.fluent_set_override(user_key text, module text, action text, scope text,
                                               until timestamptz DEFAULT NULL) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_set_override(user_key, module, action, scope, until, fluent._caller());
END;
CREATE FUNCTION @extschema@.fluent_clear_override(user_key text, module text, action text) RETURNS void
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_clear_override(user_key, module, action, fluent._caller());
END;
CREATE FUNCTION @extschema@.fluent_mark_reviewed(user_key text, role text DEFAULT NULL) RETURNS int
LANGUAGE sql
BEGIN ATOMIC
    SELECT fluent._do_mark_reviewed(user_key, role, fluent._caller());
END;

-- A user created from a verified token (fluent.unknown_subject = create,
-- src/identity.rs): active, holding the configured roles of the workspace.
-- Run by the cache loader as the catalog owner; `caller` is the role that
-- presented the token, for the audit trail.
CREATE FUNCTION fluent._create_token_user(p_user text, p_workspace text, p_roles text[], caller text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET fluent.caller_role = '' AS $$
DECLARE
    ws int := (SELECT w.workspace_id FROM fluent.workspaces w WHERE w.name = p_workspace);
    uid bigint;
    missing text;
BEGIN
    PERFORM set_config('fluent.caller_role', caller, true);
    SELECT string_agg(x, ', ') INTO missing FROM unnest(p_roles) x
     WHERE NOT EXISTS (SELECT 1 FROM fluent.roles r WHERE r.workspace_id = ws AND r.name = x);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'fluent.token_settings.new_user_roles names roles that workspace "%" does not have: %', p_workspace, missing
            USING ERRCODE = 'undefined_object', HINT = 'A superuser corrects fluent.token_settings.new_user_roles.';
    END IF;
    INSERT INTO fluent.users (user_key, status) VALUES (fluent._name(p_user, 'user'), 'active')
    ON CONFLICT ON CONSTRAINT users_user_key_key DO NOTHING
    RETURNING user_id INTO uid;
    IF uid IS NOT NULL THEN
        INSERT INTO fluent.grants (workspace_id, user_id, role_id)
        SELECT ws, uid, r.role_id FROM fluent.roles r WHERE r.workspace_id = ws AND r.name = ANY (p_roles);
    END IF;
END $$;

-- Assignable roles (issue 19) -----------------------------------------------
--
-- Who may hand out which role: per role, the roles its holders may grant,
-- revoke, clone, reset and drop (fluent.assignable_roles), checked for
-- delegated administrators in addition to the escalation rule above.
-- Changing a role's permissions and flags is not bound by it: Fluid's
-- application administrator defines roles and assigns none (seed 003).
-- Like sign-in roles, the rule holds in a workspace once it lists any
-- assignable role (the templates list theirs): a workspace configured
-- without it keeps the escalation rule alone, and a DBA turns it on by
-- listing the first. Where it holds, a role without rows lets its holders
-- assign nothing.

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

-- Invitations ----------------------------------------------------------------
--
-- Seed 000, "Inviting users": an invited user (status invited) is created
-- before they first sign in, so that roles, item roles, teams and a manager
-- can be given to them; like ghost and disabled users they are granted
-- nothing and cannot be made the acting user (src/cache.rs) until they
-- accept. An invitation may expire (users.invited_until); an expired one is
-- renewed by inviting again, never accepted.

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
        PERFORM fluent._item_roles_within_powers(delegate, format('accept the invitation of "%s"', user_key), user_key, NULL);
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

SET LOCAL search_path TO @extschema@, pg_temp;
