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

CREATE FUNCTION fluent._not_null(value anyelement, what text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF value IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', what USING ERRCODE = 'null_value_not_allowed';
    END IF;
END $$;

CREATE FUNCTION fluent._workspace_id() RETURNS int
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ws text := @extschema@.fluent_current_workspace();
    id int;
BEGIN
    PERFORM fluent._require_admin();
    SELECT workspace_id INTO id FROM fluent.workspaces WHERE name = ws;
    IF id IS NULL THEN
        RAISE EXCEPTION 'fluent workspace "%" does not exist', ws
            USING ERRCODE = 'undefined_object', HINT = 'Create it with fluent_create_workspace() or choose another with fluent_set_workspace().';
    END IF;
    RETURN id;
END $$;

CREATE FUNCTION fluent._user_id(p_user text) RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    id bigint;
BEGIN
    PERFORM fluent._require_admin();
    PERFORM fluent._not_null(p_user, 'user');
    SELECT user_id INTO id FROM fluent.users WHERE user_key = p_user;
    IF id IS NULL THEN
        RAISE EXCEPTION 'fluent user "%" does not exist', p_user
            USING ERRCODE = 'undefined_object', HINT = 'Create the user with fluent_create_user().';
    END IF;
    RETURN id;
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
        RAISE EXCEPTION 'fluent % "%" does not exist in workspace "%"', kind, p_name, @extschema@.fluent_current_workspace()
            USING ERRCODE = 'undefined_object', HINT = format('Create it with fluent_create_%s(); see fluent.%ss.', kind, kind);
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
        RAISE EXCEPTION 'fluent module "%" has no action "%"', p_module, p_action
            USING ERRCODE = 'undefined_object',
                  HINT = format('Its actions are: %s.', (SELECT string_agg(name, ', ' ORDER BY action_id) FROM fluent.actions WHERE module_id = mid));
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
        RAISE EXCEPTION 'fluent workspace "%" does not exist', workspace USING ERRCODE = 'undefined_object';
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

-- Roles and permissions ----------------------------------------------------

CREATE FUNCTION @extschema@.fluent_create_role(role text, description text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM fluent._require_admin();
    INSERT INTO fluent.roles (workspace_id, name, description)
    VALUES (fluent._workspace_id(), fluent._name(role, 'role'), description)
    ON CONFLICT (workspace_id, name) DO NOTHING;
    IF NOT FOUND THEN PERFORM fluent._duplicate('role', role); END IF;
END $$;

CREATE FUNCTION @extschema@.fluent_drop_role(role text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM fluent._require_admin();
    -- Its permissions and grants go with it (ON DELETE CASCADE).
    DELETE FROM fluent.roles WHERE role_id = fluent._role_id(role);
END $$;

CREATE FUNCTION @extschema@.fluent_set_permission(role text, module text, action text, scope text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rid int := fluent._role_id(role);
    aid int := fluent._action_id(module, action);
    s fluent.scope := fluent._scope(scope);
BEGIN
    PERFORM fluent._require_admin();
    INSERT INTO fluent.permissions (workspace_id, role_id, action_id, scope)
    VALUES (fluent._workspace_id(), rid, aid, s)
    ON CONFLICT (role_id, action_id) DO UPDATE SET scope = EXCLUDED.scope
    WHERE permissions.scope IS DISTINCT FROM EXCLUDED.scope;
END $$;

CREATE FUNCTION @extschema@.fluent_clear_permission(role text, module text, action text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM fluent._require_admin();
    -- Without its own setting the action inherits from the parent module again.
    DELETE FROM fluent.permissions WHERE role_id = fluent._role_id(role) AND action_id = fluent._action_id(module, action);
END $$;

-- Users --------------------------------------------------------------------

CREATE FUNCTION @extschema@.fluent_create_user(user_key text, display_name text DEFAULT NULL, manager text DEFAULT NULL,
                                   status text DEFAULT 'active')
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    manager_id bigint := CASE WHEN manager IS NOT NULL THEN fluent._user_id(manager) END;
    s fluent.user_status := fluent._user_status(status);
BEGIN
    PERFORM fluent._require_admin();
    INSERT INTO fluent.users (user_key, display_name, status, manager_id)
    VALUES (fluent._name(user_key, 'user'), display_name, s, manager_id)
    ON CONFLICT ON CONSTRAINT users_user_key_key DO NOTHING;
    IF NOT FOUND THEN PERFORM fluent._duplicate('user', user_key); END IF;
END $$;

CREATE FUNCTION @extschema@.fluent_set_user_status(user_key text, status text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid bigint := fluent._user_id(user_key);
    s fluent.user_status := fluent._user_status(status);
BEGIN
    PERFORM fluent._require_admin();
    UPDATE fluent.users u SET status = s WHERE u.user_id = uid AND u.status IS DISTINCT FROM s;
END $$;

CREATE FUNCTION @extschema@.fluent_set_manager(user_key text, manager text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid bigint := fluent._user_id(user_key);
    mid bigint := CASE WHEN manager IS NOT NULL THEN fluent._user_id(manager) END;
BEGIN
    PERFORM fluent._require_admin();
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

CREATE FUNCTION @extschema@.fluent_drop_user(user_key text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM fluent._require_admin();
    -- Grants and team memberships go with the user; reports lose their manager.
    DELETE FROM fluent.users u WHERE u.user_id = fluent._user_id(fluent_drop_user.user_key);
END $$;

-- Grants -------------------------------------------------------------------

CREATE FUNCTION @extschema@.fluent_grant_role(user_key text, role text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid bigint := fluent._user_id(user_key);
    rid int := fluent._role_id(role);
BEGIN
    PERFORM fluent._require_admin();
    INSERT INTO fluent.grants (workspace_id, user_id, role_id) VALUES (fluent._workspace_id(), uid, rid)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RAISE NOTICE 'fluent user "%" already holds role "%"', user_key, role;
    END IF;
END $$;

CREATE FUNCTION @extschema@.fluent_revoke_role(user_key text, role text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid bigint := fluent._user_id(user_key);
    rid int := fluent._role_id(role);
BEGIN
    PERFORM fluent._require_admin();
    DELETE FROM fluent.grants g WHERE g.user_id = uid AND g.role_id = rid;
    IF NOT FOUND THEN
        RAISE WARNING 'fluent user "%" does not hold role "%"', user_key, role;
    END IF;
END $$;

-- Teams --------------------------------------------------------------------

CREATE FUNCTION @extschema@.fluent_create_team(team text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM fluent._require_admin();
    INSERT INTO fluent.teams (workspace_id, name) VALUES (fluent._workspace_id(), fluent._name(team, 'team'))
    ON CONFLICT (workspace_id, name) DO NOTHING;
    IF NOT FOUND THEN PERFORM fluent._duplicate('team', team); END IF;
END $$;

CREATE FUNCTION @extschema@.fluent_drop_team(team text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM fluent._require_admin();
    DELETE FROM fluent.teams WHERE team_id = fluent._team_id(team);
END $$;

CREATE FUNCTION @extschema@.fluent_add_team_member(team text, user_key text, lead boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tid int := fluent._team_id(team);
    uid bigint := fluent._user_id(user_key);
BEGIN
    PERFORM fluent._require_admin();
    PERFORM fluent._not_null(lead, 'lead');
    INSERT INTO fluent.team_members (workspace_id, team_id, user_id, is_lead)
    VALUES (fluent._workspace_id(), tid, uid, lead)
    ON CONFLICT (team_id, user_id) DO UPDATE SET is_lead = EXCLUDED.is_lead
    WHERE team_members.is_lead IS DISTINCT FROM EXCLUDED.is_lead;
END $$;

CREATE FUNCTION @extschema@.fluent_remove_team_member(team text, user_key text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tid int := fluent._team_id(team);
    uid bigint := fluent._user_id(user_key);
BEGIN
    PERFORM fluent._require_admin();
    DELETE FROM fluent.team_members m WHERE m.team_id = tid AND m.user_id = uid;
    IF NOT FOUND THEN
        RAISE WARNING 'fluent user "%" is not a member of team "%"', user_key, team;
    END IF;
END $$;

CREATE FUNCTION @extschema@.fluent_alter_role(role text, privileged boolean DEFAULT NULL, grants_sign_in boolean DEFAULT NULL,
                                  description text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rid int := fluent._role_id(role);
BEGIN
    PERFORM fluent._require_admin();
    -- NULL leaves a property as it is.
    UPDATE fluent.roles r
       SET privileged = n.privileged, grants_sign_in = n.grants_sign_in, description = n.description
      FROM (SELECT coalesce(fluent_alter_role.privileged, o.privileged) AS privileged,
                   coalesce(fluent_alter_role.grants_sign_in, o.grants_sign_in) AS grants_sign_in,
                   coalesce(fluent_alter_role.description, o.description) AS description
              FROM fluent.roles o WHERE o.role_id = rid) n
     WHERE r.role_id = rid
       AND (r.privileged, r.grants_sign_in, r.description) IS DISTINCT FROM (n.privileged, n.grants_sign_in, n.description);
END $$;

-- Per-user overrides --------------------------------------------------------

CREATE FUNCTION @extschema@.fluent_set_override(user_key text, module text, action text, scope text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid bigint := fluent._user_id(user_key);
    aid int := fluent._action_id(module, action);
    s fluent.scope := fluent._scope(scope);
BEGIN
    PERFORM fluent._require_admin();
    INSERT INTO fluent.overrides (workspace_id, user_id, action_id, scope)
    VALUES (fluent._workspace_id(), uid, aid, s)
    ON CONFLICT (user_id, action_id) DO UPDATE
       SET scope = EXCLUDED.scope, set_at = EXCLUDED.set_at, set_by = EXCLUDED.set_by
     WHERE overrides.scope IS DISTINCT FROM EXCLUDED.scope;
END $$;

CREATE FUNCTION @extschema@.fluent_clear_override(user_key text, module text, action text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid bigint := fluent._user_id(user_key);
    aid int := fluent._action_id(module, action);
BEGIN
    PERFORM fluent._require_admin();
    DELETE FROM fluent.overrides o WHERE o.user_id = uid AND o.action_id = aid;
    IF NOT FOUND THEN
        RAISE WARNING 'fluent user "%" has no override on %.%', user_key, module, action;
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
CREATE FUNCTION @extschema@.fluent_mark_reviewed(user_key text, role text DEFAULT NULL) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid bigint := fluent._user_id(user_key);
    rid int := CASE WHEN role IS NOT NULL THEN fluent._role_id(role) END;
    marked int;
BEGIN
    PERFORM fluent._require_admin();
    UPDATE fluent.grants g SET reviewed_at = now(), reviewed_by = current_user
     WHERE g.user_id = uid AND g.workspace_id = fluent._workspace_id() AND (rid IS NULL OR g.role_id = rid);
    GET DIAGNOSTICS marked = ROW_COUNT;
    IF marked = 0 THEN
        RAISE WARNING 'fluent user "%" holds no % in workspace "%"', user_key,
            CASE WHEN role IS NULL THEN 'role' ELSE format('role "%s"', role) END, @extschema@.fluent_current_workspace();
    END IF;
    RETURN marked;
END $$;

SET LOCAL search_path TO @extschema@, pg_temp;
