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
    WITH RECURSIVE targets AS (
        SELECT u.user_id, u.user_key FROM fluent.users u WHERE u.user_key = ANY (p_keys)
    ), up (user_id, reached, depth) AS (
        SELECT u.manager_id, t.user_key, 1 FROM targets t JOIN fluent.users u ON u.user_id = t.user_id
         WHERE u.manager_id IS NOT NULL
        UNION
        SELECT u.manager_id, up.reached, up.depth + 1 FROM up JOIN fluent.users u ON u.user_id = up.user_id
         WHERE u.manager_id IS NOT NULL AND up.depth < 64
    )
    SELECT u.user_key, up.reached, 'manager', up.depth FROM up JOIN fluent.users u ON u.user_id = up.user_id
    UNION ALL
    SELECT u.user_key, t.user_key, 'team lead', 1
      FROM targets t
      JOIN fluent.team_members m ON m.user_id = t.user_id AND m.workspace_id = p_workspace_id
      JOIN fluent.team_members l ON l.team_id = m.team_id AND l.is_lead
      JOIN fluent.users u ON u.user_id = l.user_id
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
-- in this workspace, and everyone below the user in the reporting line
-- (scope `direct`: their direct reports only).
-- With p_direct, one level of the reporting line only (scope `direct`).
CREATE FUNCTION fluent._load_team(p_workspace_id int, p_user_id bigint, p_direct boolean)
RETURNS TABLE (user_key text)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    WITH RECURSIVE reports AS (
        SELECT u.user_id FROM fluent.users u WHERE u.manager_id = p_user_id
        UNION
        SELECT u.user_id FROM fluent.users u JOIN reports r ON u.manager_id = r.user_id WHERE NOT p_direct
    ), led AS (
        SELECT m.user_id
          FROM fluent.team_members l
          JOIN fluent.team_members m ON m.team_id = l.team_id
         WHERE l.user_id = p_user_id AND l.is_lead AND l.workspace_id = p_workspace_id
    ), reached AS (
        SELECT user_id FROM reports UNION SELECT user_id FROM led
    )
    SELECT u.user_key
      FROM reached r JOIN fluent.users u ON u.user_id = r.user_id
     WHERE u.user_id <> p_user_id
     ORDER BY u.user_key;
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
-- look reads with (the next one's p_seen).
CREATE FUNCTION fluent._load_changes(p_seen text)
RETURNS TABLE (workspace_id int, kind text, id bigint, pruned_below text, seen text)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT c.workspace_id, c.kind, c.id, h.pruned_below::text, pg_current_snapshot()::text
      FROM fluent.change_horizon h
      LEFT JOIN fluent.changes c ON c.xid >= pg_snapshot_xmin(p_seen::pg_snapshot)
                                AND (NOT pg_visible_in_snapshot(c.xid, p_seen::pg_snapshot)
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
