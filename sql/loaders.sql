-- Queries the per-backend cache is filled from (src/loaders.rs), each run
-- through a plan kept for the life of the backend (src/owner.rs).
--
-- They are SQL-standard bodies (BEGIN ATOMIC): names and operators are
-- resolved once, when the extension is created, so the search_path of the
-- session that happens to trigger a cache load cannot redirect them. The
-- loader runs them as the catalog owner; nobody else may execute them
-- (sql/privileges.sql).

-- Everything below resolves names in pg_catalog and fluent's own schema only
-- (see "Install-time safety" in README.md); the extension schema comes back at the end.
SET LOCAL search_path TO pg_catalog, pg_temp;

-- The reporting line, walked through fluent.users.manager_id for every use
-- of it (the loaders below, fluent.reporting_lines, the delegation checks of
-- sql/admin.sql): from each user of p_user_ids, up to the managers above
-- them (p_up) or down to the users below them, each with their key. Each
-- user comes first themselves, at depth 0; depth 1 is their manager or
-- their direct reports, and so on, to at most p_levels levels. With
-- p_levels NULL the walk goes to the end of the line without counting
-- (depth NULL but for the user themselves), and so ends even on a cycle,
-- which fluent._check_tree refuses but a restore without triggers could
-- bring back.
-- Callers pass p_up as a constant: the planner inlines the function and
-- keeps the one join of that direction, on the primary key going up and on
-- users_manager_id_idx going down.
CREATE FUNCTION fluent._reporting_line(p_user_ids bigint[], p_up boolean, p_levels int)
RETURNS TABLE (user_id bigint, line_user_id bigint, line_user_key text, depth int)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    WITH RECURSIVE line (user_id, line_user_id, line_user_key, line_manager_id, depth) AS (
        SELECT u.user_id, u.user_id, u.user_key, u.manager_id, 0 FROM fluent.users u WHERE u.user_id = ANY (p_user_ids)
        UNION
        SELECT l.user_id, u.user_id, u.user_key, u.manager_id, CASE WHEN p_levels IS NOT NULL THEN l.depth + 1 END
          FROM line l
          JOIN fluent.users u ON CASE WHEN p_up THEN u.user_id = l.line_manager_id ELSE u.manager_id = l.line_user_id END
         WHERE p_levels IS NULL OR l.depth < p_levels
    )
    SELECT l.user_id, l.line_user_id, l.line_user_key, l.depth FROM line l;
END;

-- One row per action (or per module without actions, or one row for an empty
-- workspace); `enabled` is the module's own gate, `sign_in_required` whether
-- the workspace has sign-in roles.
CREATE FUNCTION fluent._load_workspace(p_workspace text)
RETURNS TABLE (workspace_id int, sign_in_required boolean, module_id int, module text, parent_id int, enabled boolean,
               action_id int, action text)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT w.workspace_id,
           EXISTS (SELECT 1 FROM fluent.roles r WHERE r.workspace_id = w.workspace_id AND r.grants_sign_in),
           m.module_id, m.name, m.parent_id, m.enabled, a.action_id, a.name
      FROM fluent.workspaces w
      LEFT JOIN fluent.modules m ON m.workspace_id = w.workspace_id
      LEFT JOIN fluent.actions a ON a.module_id = m.module_id
     WHERE w.name = p_workspace
     ORDER BY m.module_id, a.action_id;
END;

-- A workspace's requirements (src/loaders.rs maps them to slots).
CREATE FUNCTION fluent._load_requirements(p_workspace_id int)
RETURNS TABLE (module_id int, action_id int, required_action_id int)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT q.module_id, q.action_id, q.required_action_id FROM fluent.requirements q
     WHERE q.workspace_id = p_workspace_id
     ORDER BY q.action_id NULLS FIRST;
END;

-- The roles p_role_ids of a workspace (NULL: every role) with their explicit
-- permissions, compiled once per workspace and again when they change
-- (src/cache.rs); a role without permissions has one row with a NULL action.
CREATE FUNCTION fluent._load_roles(p_workspace_id int, p_role_ids int[])
RETURNS TABLE (role_id int, grants_sign_in boolean, action_id int, scope text, name text, template text,
               template_role text)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT r.role_id, r.grants_sign_in, p.action_id, p.scope::text, r.name, r.template, r.template_role
      FROM fluent.roles r
      LEFT JOIN fluent.permissions p ON p.role_id = r.role_id
     WHERE r.workspace_id = p_workspace_id AND (p_role_ids IS NULL OR r.role_id = ANY (p_role_ids))
     ORDER BY r.role_id;
END;

-- One user in one workspace: their status, the roles they hold there and
-- their overrides, each by one index lookup; no row for an unknown user.
-- Grants and overrides that expired do not count; expires_at is when the
-- next of those that count expires (NULL: none), after which the cached
-- answer is loaded again (src/cache.rs).
CREATE FUNCTION fluent._load_user(p_workspace_id int, p_user text)
RETURNS TABLE (user_id bigint, status text, role_ids int[], override_actions int[], override_scopes text[],
               override_set_by text[], expires_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT u.user_id, u.status::text, g.roles, o.actions, o.scopes, o.set_by, least(g.expires_at, o.expires_at)
      FROM fluent.users u
      CROSS JOIN LATERAL (
          SELECT coalesce(array_agg(x.role_id ORDER BY x.role_id), '{}') AS roles, min(x.valid_until) AS expires_at
            FROM fluent.grants x
           WHERE x.workspace_id = p_workspace_id AND x.user_id = u.user_id AND fluent._in_force(x.valid_until)) g
      CROSS JOIN LATERAL (
          SELECT array_agg(x.action_id ORDER BY x.action_id) AS actions,
                 array_agg(x.scope::text ORDER BY x.action_id) AS scopes,
                 array_agg(x.set_by::text ORDER BY x.action_id) AS set_by,
                 min(x.valid_until) AS expires_at
            FROM fluent.overrides x
           WHERE x.workspace_id = p_workspace_id AND x.user_id = u.user_id AND fluent._in_force(x.valid_until)) o
     WHERE u.user_key = p_user;
END;

-- Every user holding a role or an override in the workspace, with what
-- _load_user returns for one: fluent_who_can and the reports decide for all
-- of them from one query.
CREATE FUNCTION fluent._load_holdings(p_workspace_id int)
RETURNS TABLE (user_key text, user_id bigint, status text, role_ids int[], override_actions int[],
               override_scopes text[], override_set_by text[], expires_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    WITH g AS (
        SELECT x.user_id, array_agg(x.role_id ORDER BY x.role_id) AS roles, min(x.valid_until) AS expires_at
          FROM fluent.grants x
         WHERE x.workspace_id = p_workspace_id AND fluent._in_force(x.valid_until)
         GROUP BY x.user_id
    ), o AS (
        SELECT x.user_id, array_agg(x.action_id ORDER BY x.action_id) AS actions,
               array_agg(x.scope::text ORDER BY x.action_id) AS scopes,
               array_agg(x.set_by::text ORDER BY x.action_id) AS set_by, min(x.valid_until) AS expires_at
          FROM fluent.overrides x
         WHERE x.workspace_id = p_workspace_id AND fluent._in_force(x.valid_until)
         GROUP BY x.user_id
    )
    SELECT u.user_key, u.user_id, u.status::text, coalesce(g.roles, '{}'), o.actions, o.scopes, o.set_by,
           least(g.expires_at, o.expires_at)
      FROM g FULL JOIN o ON o.user_id = g.user_id
      JOIN fluent.users u ON u.user_id = coalesce(g.user_id, o.user_id)
     ORDER BY u.user_id;
END;

-- The inverse of _load_team for the users keyed p_keys: who reaches them
-- through scope direct or team. Each manager above one (depth 1 is their
-- manager, whom `direct` reaches through; any depth, `team`), and each lead
-- of a team of this workspace they are in (both scopes).
CREATE FUNCTION fluent._load_reachers(p_workspace_id int, p_keys text[])
RETURNS TABLE (user_key text, reached text, relation text, depth int)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT l.line_user_key, t.user_key, 'manager', l.depth
      FROM fluent.users t
     CROSS JOIN LATERAL fluent._reporting_line(ARRAY[t.user_id], true, 64) l
     WHERE t.user_key = ANY (p_keys) AND l.depth > 0
    UNION ALL
    SELECT u.user_key, t.user_key, 'team lead', 1
      FROM fluent.users t
      JOIN fluent.team_members m ON m.user_id = t.user_id AND m.workspace_id = p_workspace_id
      JOIN fluent.team_members l ON l.team_id = m.team_id AND l.is_lead
      JOIN fluent.users u ON u.user_id = l.user_id
     WHERE t.user_key = ANY (p_keys)
     ORDER BY 3, 4, 1;
END;

-- The workspaces: the rows of the reporting views (src/reports.rs).
CREATE FUNCTION fluent._load_workspaces()
RETURNS TABLE (name text)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT w.name FROM fluent.workspaces w ORDER BY w.workspace_id;
END;

-- The users whose rows scope `team` adds: members of the teams the user leads
-- in this workspace, and everyone below the user in the reporting line.
-- With p_direct, one level of the reporting line only (scope `direct`).
CREATE FUNCTION fluent._load_team(p_workspace_id int, p_user_id bigint, p_direct boolean)
RETURNS TABLE (user_key text)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT r.user_key
      FROM (SELECT l.line_user_id AS user_id, l.line_user_key AS user_key
              FROM fluent._reporting_line(ARRAY[p_user_id], false, CASE WHEN p_direct THEN 1 END) l
            UNION
            SELECT u.user_id, u.user_key
              FROM fluent.team_members l
              JOIN fluent.team_members m ON m.team_id = l.team_id
              JOIN fluent.users u ON u.user_id = m.user_id
             WHERE l.user_id = p_user_id AND l.is_lead AND l.workspace_id = p_workspace_id) r
     WHERE r.user_id <> p_user_id
     ORDER BY r.user_key;
END;

-- The teams the user leads in the workspace: besides the reporting line, what
-- the user's team set depends on (src/cache.rs drops it when one changes).
CREATE FUNCTION fluent._load_led_teams(p_workspace_id int, p_user_id bigint)
RETURNS bigint[]
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT coalesce(array_agg(l.team_id::bigint ORDER BY l.team_id), '{}')
      FROM fluent.team_members l
     WHERE l.user_id = p_user_id AND l.is_lead AND l.workspace_id = p_workspace_id;
END;

-- The permissions that give each administrative right, part of the workspace
-- model (src/loaders.rs, read by src/delegation.rs).
CREATE FUNCTION fluent._load_admin_rights(p_workspace text)
RETURNS TABLE (admin_right text, module text, action text)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT ar.admin_right::text, m.name, a.name
      FROM fluent.workspaces w
      JOIN fluent.admin_rights ar ON ar.workspace_id = w.workspace_id
      JOIN fluent.actions a ON a.action_id = ar.action_id
      JOIN fluent.modules m ON m.module_id = a.module_id
     WHERE w.name = p_workspace;
END;

-- What changed that snapshot p_seen did not see (src/cache.rs): the entries
-- of transactions that committed after the reader's previous look, and only
-- those, however long another transaction keeps the xmin back, and the
-- reader's own transaction's, which its snapshots see as it writes them;
-- none for a NULL p_seen (a first look). With the pruning horizon and the snapshot this
-- look reads with (the next one's p_seen). Every look runs it through one
-- generic plan (src/loaders.rs): the snapshot is parsed once, by the
-- sub-selects (InitPlans), not once per entry read. The upper bound drops
-- only entries this look's snapshot cannot see (begun at or after its xmax,
-- other than the reader's own): with two bounds the generic plan estimates a
-- narrow range and reads the index on xid, where one bound would be
-- estimated to keep a third of the log and read all of it.
CREATE FUNCTION fluent._load_changes(p_seen text)
RETURNS TABLE (workspace_id int, kind text, id bigint, pruned_below text, seen text)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT c.workspace_id, c.kind, c.id, h.pruned_below::text, pg_current_snapshot()::text
      FROM fluent.change_horizon h
      LEFT JOIN fluent.changes c ON c.xid BETWEEN (SELECT pg_snapshot_xmin(p_seen::pg_snapshot))
                                      AND (SELECT greatest(pg_snapshot_xmax(pg_current_snapshot()),
                                                           pg_current_xact_id_if_assigned()))
                                AND (NOT pg_visible_in_snapshot(c.xid, (SELECT p_seen::pg_snapshot))
                                     OR c.xid = pg_current_xact_id_if_assigned());
END;

-- How tokens are verified (src/identity.rs).
CREATE FUNCTION fluent._load_token_settings()
RETURNS TABLE (keys text, audiences text[], issuer text, leeway_seconds int, user_claim text, workspace_claim text,
               unknown_subject text, new_user_roles text[])
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT t.keys::text, t.audiences, t.issuer, t.leeway_seconds, t.user_claim, t.workspace_claim, t.unknown_subject,
           t.new_user_roles
      FROM fluent.token_settings t;
END;

-- Appends one entry to the audit trail (src/audit.rs).
CREATE FUNCTION fluent._audit_insert(p_db_role name, p_acting_user text, p_table text, p_operation text,
                                     p_before jsonb, p_after jsonb)
RETURNS void
LANGUAGE sql VOLATILE
BEGIN ATOMIC
    INSERT INTO fluent.audit_log (db_role, acting_user, workspace_id, table_name, operation, before, after)
    VALUES (p_db_role, p_acting_user,
            coalesce(p_after ->> 'workspace_id', p_before ->> 'workspace_id')::int,
            p_table, p_operation, p_before, p_after);
END;

-- A workspace's item roles, one row per action they give, with what they
-- require of their holders (src/loaders.rs maps them to slots).
CREATE FUNCTION fluent._load_item_roles(p_workspace_id int)
RETURNS TABLE (item_role_id int, name text, module text, action_id int, required_role_id int, required_action_id int)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT r.item_role_id, r.name, m.name, a.action_id, r.required_role_id, r.required_action_id
      FROM fluent.item_roles r
      JOIN fluent.modules m ON m.module_id = r.module_id
      LEFT JOIN fluent.item_role_actions a ON a.item_role_id = r.item_role_id
     WHERE r.workspace_id = p_workspace_id
     ORDER BY r.name, r.item_role_id;
END;

-- The teams a user is a member of in a workspace, by name: an assignment
-- naming one of them gives its item role to the user.
CREATE FUNCTION fluent._load_member_teams(p_workspace_id int, p_user_id bigint)
RETURNS TABLE (name text)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT t.name
      FROM fluent.team_members m JOIN fluent.teams t ON t.team_id = m.team_id
     WHERE m.user_id = p_user_id AND m.workspace_id = p_workspace_id
     ORDER BY t.name;
END;

-- The members of the named teams of a workspace (fluent_who_can: the users
-- a team assignment gives an item role to).
CREATE FUNCTION fluent._load_team_members(p_workspace_id int, p_teams text[])
RETURNS TABLE (team text, user_key text)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT t.name, u.user_key
      FROM fluent.teams t
      JOIN fluent.team_members m ON m.team_id = t.team_id
      JOIN fluent.users u ON u.user_id = m.user_id
     WHERE t.workspace_id = p_workspace_id AND t.name = ANY (p_teams)
     ORDER BY t.name, u.user_key;
END;

SET LOCAL search_path TO @extschema@, pg_temp;
