-- Reporting views over the catalog.
--
-- The views run with their owner's rights, so a reporting tool needs only
-- SELECT on them (role fluent_reader), not on the catalog. They compute the
-- same rules the per-backend cache applies in Rust (src/scope.rs):
--
--   user not active        -> none
--   sign-in role missing   -> none   (once a workspace has sign-in roles)
--   module disabled        -> none   (itself or a parent module)
--   override               -> its scope, wider or narrower than the roles'
--   roles                  -> the widest scope over the roles held
--   otherwise              -> none
--
-- and an action that a role (or override) does not set takes its setting from
-- the same action of the nearest parent module that has it. The test suite
-- checks the views against fluent_scope() row by row.

-- Everything below resolves names in pg_catalog and fluent's own schema only
-- (see "Install-time safety" in README.md); the extension schema comes back at the end.
SET LOCAL search_path TO pg_catalog, pg_temp;

-- Where each action takes its settings from: itself (depth 0), then the
-- action of the same name on each ancestor module that declares one.
CREATE VIEW fluent.action_lineage AS
WITH RECURSIVE up (action_id, name, module_id, depth) AS (
    SELECT a.action_id, a.name, a.module_id, 0 FROM fluent.actions a
    UNION ALL
    SELECT up.action_id, up.name, m.parent_id, up.depth + 1
      FROM up JOIN fluent.modules m ON m.module_id = up.module_id
     WHERE m.parent_id IS NOT NULL AND up.depth < 64
)
SELECT up.action_id, a.action_id AS source_action_id, up.depth
  FROM up JOIN fluent.actions a ON a.module_id = up.module_id AND a.name = up.name;
COMMENT ON VIEW fluent.action_lineage IS
    'Each action with the actions it inherits settings from: itself at depth 0, then the same action on ancestor modules, nearest first';

-- Whether each module is enabled, taking its ancestors into account.
CREATE VIEW fluent.module_gates AS
WITH RECURSIVE up (module_id, ancestor_id, depth) AS (
    SELECT m.module_id, m.module_id, 0 FROM fluent.modules m
    UNION ALL
    SELECT up.module_id, m.parent_id, up.depth + 1
      FROM up JOIN fluent.modules m ON m.module_id = up.ancestor_id
     WHERE m.parent_id IS NOT NULL AND up.depth < 64
)
SELECT up.module_id, bool_and(m.enabled) AS enabled,
       (array_agg(m.name ORDER BY up.depth) FILTER (WHERE NOT m.enabled))[1] AS disabled_by
  FROM up JOIN fluent.modules m ON m.module_id = up.ancestor_id
 GROUP BY up.module_id;
COMMENT ON VIEW fluent.module_gates IS
    'Whether each module is enabled: a module is disabled when it or any parent module is; disabled_by names the nearest disabled one';

-- The scope each role has on each action of its workspace.
CREATE VIEW fluent.role_scopes AS
WITH explicit AS (
    SELECT DISTINCT ON (p.role_id, l.action_id) p.role_id, l.action_id, p.scope, l.source_action_id
      FROM fluent.action_lineage l JOIN fluent.permissions p ON p.action_id = l.source_action_id
     ORDER BY p.role_id, l.action_id, l.depth
)
SELECT r.workspace_id, r.role_id, a.action_id, coalesce(e.scope, 'none') AS scope, e.source_action_id
  FROM fluent.roles r
  JOIN fluent.actions a ON a.workspace_id = r.workspace_id
  LEFT JOIN explicit e ON e.role_id = r.role_id AND e.action_id = a.action_id;
COMMENT ON VIEW fluent.role_scopes IS
    'The scope of every role on every action of its workspace; source_action_id is the action whose setting applies (NULL: not set, none)';

-- The override that applies to each (user, action), inherited like a role's setting.
CREATE VIEW fluent.override_scopes AS
SELECT DISTINCT ON (o.user_id, l.action_id) o.workspace_id, o.user_id, l.action_id, o.scope, l.source_action_id,
       o.set_at, o.set_by
  FROM fluent.action_lineage l JOIN fluent.overrides o ON o.action_id = l.source_action_id
 ORDER BY o.user_id, l.action_id, l.depth;
COMMENT ON VIEW fluent.override_scopes IS 'The override that applies to each user and action, set on it or on the same action of a parent module';

-- Users and whether they may act in each workspace that has sign-in roles.
CREATE VIEW fluent.sign_in_status AS
SELECT w.workspace_id, u.user_id,
       EXISTS (SELECT 1 FROM fluent.roles r WHERE r.workspace_id = w.workspace_id AND r.grants_sign_in) AS required,
       EXISTS (SELECT 1 FROM fluent.grants g JOIN fluent.roles r ON r.role_id = g.role_id
                WHERE g.user_id = u.user_id AND g.workspace_id = w.workspace_id AND r.grants_sign_in) AS held
  FROM fluent.workspaces w CROSS JOIN fluent.users u;
COMMENT ON VIEW fluent.sign_in_status IS 'Whether a workspace requires a sign-in role, and whether each user holds one there';

CREATE VIEW fluent.permission_matrix AS
SELECT w.name AS workspace, r.name AS role, md.name AS module, a.name AS action, rs.scope,
       CASE WHEN rs.source_action_id IS NULL THEN 'unset'
            WHEN rs.source_action_id = a.action_id THEN 'set'
            ELSE 'inherited' END AS setting,
       sm.name || '.' || sa.name AS set_on,
       g.enabled AS module_enabled, r.template, r.template_role
  FROM fluent.role_scopes rs
  JOIN fluent.roles r ON r.role_id = rs.role_id
  JOIN fluent.workspaces w ON w.workspace_id = rs.workspace_id
  JOIN fluent.actions a ON a.action_id = rs.action_id
  JOIN fluent.modules md ON md.module_id = a.module_id
  JOIN fluent.module_gates g ON g.module_id = md.module_id
  LEFT JOIN fluent.actions sa ON sa.action_id = rs.source_action_id
  LEFT JOIN fluent.modules sm ON sm.module_id = sa.module_id;
COMMENT ON VIEW fluent.permission_matrix IS
    'One row per (workspace, role, module, action) with the role''s scope: set on the action, inherited from a parent module, or unset (none). Pivot it into a matrix of roles by capability';

CREATE VIEW fluent.effective_permissions AS
WITH members AS (
    SELECT g.workspace_id, g.user_id FROM fluent.grants g
    UNION
    SELECT o.workspace_id, o.user_id FROM fluent.overrides o
), held AS (
    SELECT g.workspace_id, g.user_id, rs.action_id, rs.scope, r.name,
           rank() OVER (PARTITION BY g.user_id, rs.action_id ORDER BY rs.scope DESC) AS rank
      FROM fluent.grants g
      JOIN fluent.roles r ON r.role_id = g.role_id
      JOIN fluent.role_scopes rs ON rs.role_id = g.role_id
), by_roles AS (
    SELECT h.user_id, h.action_id, max(h.scope) AS scope,
           array_agg(h.name ORDER BY h.name) FILTER (WHERE h.scope > 'none') AS roles
      FROM held h WHERE h.rank = 1
     GROUP BY h.user_id, h.action_id
), decided AS (
    SELECT mb.workspace_id, mb.user_id, a.action_id, a.module_id, u.status, s.required AS sign_in_required, s.held AS sign_in_held,
           g.enabled, g.disabled_by, o.scope AS override, br.scope AS role_scope, br.roles,
           CASE WHEN u.status <> 'active' THEN 'user_status'
                WHEN s.required AND NOT s.held THEN 'sign_in'
                WHEN NOT g.enabled THEN 'module_disabled'
                WHEN o.scope IS NOT NULL THEN 'override'
                WHEN br.scope > 'none' THEN 'roles'
                ELSE 'no_role' END AS source
      FROM members mb
      JOIN fluent.users u ON u.user_id = mb.user_id
      JOIN fluent.sign_in_status s ON s.workspace_id = mb.workspace_id AND s.user_id = mb.user_id
      JOIN fluent.actions a ON a.workspace_id = mb.workspace_id
      JOIN fluent.module_gates g ON g.module_id = a.module_id
      LEFT JOIN fluent.override_scopes o ON o.user_id = mb.user_id AND o.action_id = a.action_id
      LEFT JOIN by_roles br ON br.user_id = mb.user_id AND br.action_id = a.action_id
)
SELECT w.name AS workspace, u.user_key, md.name AS module, a.name AS action,
       CASE d.source WHEN 'override' THEN d.override WHEN 'roles' THEN d.role_scope ELSE 'none' END::fluent.scope AS scope,
       d.source, d.roles, d.override, d.enabled AS module_enabled, d.status AS user_status
  FROM decided d
  JOIN fluent.workspaces w ON w.workspace_id = d.workspace_id
  JOIN fluent.users u ON u.user_id = d.user_id
  JOIN fluent.actions a ON a.action_id = d.action_id
  JOIN fluent.modules md ON md.module_id = d.module_id;
COMMENT ON VIEW fluent.effective_permissions IS
    'What each user holding a role or override in a workspace may do: one row per (workspace, user, module, action) with the effective scope and its source (roles, override, module_disabled, user_status, sign_in or no_role), the roles that give it and any override';

CREATE VIEW fluent.role_members AS
SELECT w.name AS workspace, r.name AS role, u.user_key, u.display_name, u.status, g.granted_at, g.granted_by
  FROM fluent.grants g
  JOIN fluent.workspaces w ON w.workspace_id = g.workspace_id
  JOIN fluent.roles r ON r.role_id = g.role_id
  JOIN fluent.users u ON u.user_id = g.user_id;
COMMENT ON VIEW fluent.role_members IS 'Who holds which role, in which workspace, since when and granted by whom';

CREATE VIEW fluent.users_without_roles AS
SELECT u.user_key, u.display_name, u.status, m.user_key AS manager, u.created_at
  FROM fluent.users u
  LEFT JOIN fluent.users m ON m.user_id = u.manager_id
 WHERE NOT EXISTS (SELECT 1 FROM fluent.grants g WHERE g.user_id = u.user_id);
COMMENT ON VIEW fluent.users_without_roles IS
    'Ghost accounts: users holding no role in any workspace. They can own rows, be assigned and appear in reports, but may do nothing';

CREATE VIEW fluent.privileged_users AS
SELECT w.name AS workspace, r.name AS role, u.user_key, u.display_name, u.status, g.granted_at,
       count(*) OVER (PARTITION BY g.role_id) AS holders
  FROM fluent.grants g
  JOIN fluent.roles r ON r.role_id = g.role_id AND r.privileged
  JOIN fluent.workspaces w ON w.workspace_id = g.workspace_id
  JOIN fluent.users u ON u.user_id = g.user_id;
COMMENT ON VIEW fluent.privileged_users IS
    'Holders of owner/admin-level roles (roles.privileged), with how many people hold each such role: the seeds advise one or two owners';

CREATE VIEW fluent.access_review AS
SELECT w.name AS workspace, u.user_key, r.name AS role, g.granted_at, g.granted_by, g.reviewed_at, g.reviewed_by,
       coalesce(g.reviewed_at, g.granted_at) AS last_reviewed,
       coalesce(g.reviewed_at, g.granted_at) < now() - interval '90 days' AS review_due
  FROM fluent.grants g
  JOIN fluent.workspaces w ON w.workspace_id = g.workspace_id
  JOIN fluent.roles r ON r.role_id = g.role_id
  JOIN fluent.users u ON u.user_id = g.user_id;
COMMENT ON VIEW fluent.access_review IS
    'Every grant with when it was last reviewed (granting counts as a review; fluent_mark_reviewed records one) and whether a review is due (over 90 days)';

CREATE VIEW fluent.grants_due_for_review AS
SELECT workspace, user_key, role, granted_at, reviewed_at, last_reviewed
  FROM fluent.access_review WHERE review_due;
COMMENT ON VIEW fluent.grants_due_for_review IS 'Grants neither made nor reviewed in the last 90 days: the quarterly role review''s to-do list';

CREATE VIEW fluent.role_template_diff AS
WITH current AS (
    SELECT p.role_id, p.action_id, p.scope FROM fluent.permissions p
      JOIN fluent.roles r ON r.role_id = p.role_id WHERE r.template IS NOT NULL
)
SELECT w.name AS workspace, r.name AS role, r.template, r.template_role, md.name AS module, a.name AS action,
       d.scope AS template_scope, c.scope AS current_scope
  FROM current c FULL JOIN fluent.template_defaults d ON d.role_id = c.role_id AND d.action_id = c.action_id
  JOIN fluent.roles r ON r.role_id = coalesce(c.role_id, d.role_id)
  JOIN fluent.workspaces w ON w.workspace_id = r.workspace_id
  JOIN fluent.actions a ON a.action_id = coalesce(c.action_id, d.action_id)
  JOIN fluent.modules md ON md.module_id = a.module_id
 WHERE c.scope IS DISTINCT FROM d.scope;
COMMENT ON VIEW fluent.role_template_diff IS
    'How roles based on a template differ from its defaults: one row per permission changed, added (template_scope NULL) or cleared (current_scope NULL); fluent_reset_role() removes them';

SET LOCAL search_path TO @extschema@, pg_temp;
