-- Reporting views over the catalog.
--
-- The views run with their owner's rights, so a reporting tool needs only
-- SELECT on them (role fluent_reader), not on the catalog. The two that show
-- decisions read them from Rust, where the rule is written once
-- (src/scope.rs); the test suite checks them against fluent_scope() row by
-- row.

-- Everything below resolves names in pg_catalog and fluent's own schema only
-- (see "Install-time safety" in README.md); the extension schema comes back at the end.
SET LOCAL search_path TO pg_catalog, pg_temp;

-- The decisions, from the one place they are made (src/scope.rs): what each
-- role gives on each action (src/reports.rs) ...
CREATE VIEW fluent.permission_matrix AS
SELECT m.workspace, m.role, m.module, m.action, m.scope::fluent.scope AS scope, m.setting, m.set_on, m.module_enabled,
       m.template, m.template_role
  FROM fluent._permission_matrix() m;
COMMENT ON VIEW fluent.permission_matrix IS
    'One row per (workspace, role, module, action) with the role''s scope: set on the action, inherited from a parent module, or unset (none). Pivot it into a matrix of roles by capability';

-- ... and what each user who holds a role or an override may do
-- (src/effective.rs): the holders, each with their profile (workspace,
-- active or not, roles, overrides), joined to the decisions, made once per
-- profile. The join multiplies the rows, so 100,000 users' 15 million are
-- counted without being built; a filter on one user or one module reaches
-- the two functions (through a planner hook), which then compute that
-- user's or module's rows only.
CREATE VIEW fluent.effective_permissions AS
SELECT p.workspace, h.user_key, p.module, p.action, p.scope::fluent.scope AS scope, p.source, p.roles,
       p.override_scope::fluent.scope AS override, p.module_enabled, h.user_status::fluent.user_status AS user_status
  FROM fluent._effective_holders(NULL) h
  JOIN fluent._effective_profiles(NULL, NULL) p ON p.profile = h.profile;
COMMENT ON VIEW fluent.effective_permissions IS
    'What each user holding a role or override in a workspace may do: one row per (workspace, user, module, action) with the effective scope and its source (roles, override, module_disabled, requirement, user_status, sign_in or no_role), the roles that give it and any override';

-- The item roles' matrix, beside the roles': what each item role gives
-- on the items where it is held, and what its holders must hold.
CREATE VIEW fluent.item_role_matrix AS
SELECT w.name AS workspace, m.name AS module, r.name AS item_role, a.name AS action,
       q.name AS required_role, rm.name || '.' || ra.name AS required_permission, r.description
  FROM fluent.item_roles r
  JOIN fluent.workspaces w ON w.workspace_id = r.workspace_id
  JOIN fluent.modules m ON m.module_id = r.module_id
  JOIN fluent.item_role_actions ia ON ia.item_role_id = r.item_role_id
  JOIN fluent.actions a ON a.action_id = ia.action_id
  LEFT JOIN fluent.roles q ON q.role_id = r.required_role_id
  LEFT JOIN fluent.actions ra ON ra.action_id = r.required_action_id
  LEFT JOIN fluent.modules rm ON rm.module_id = ra.module_id;
COMMENT ON VIEW fluent.item_role_matrix IS
    'One row per (workspace, module, item role, action it gives on the items where it is held), with the role or permission its holders must hold';

-- Seed 003: each user's reporting line in each workspace where they hold a
-- role: their manager, how many managers are above them, and the nearest
-- active one above who holds a reporting-anchor role there (fluid: the
-- accountable executive), for reports on missing forecasts and timesheets.
CREATE VIEW fluent.reporting_lines AS
WITH RECURSIVE members AS (
    SELECT DISTINCT g.workspace_id, g.user_id FROM fluent.grants g WHERE fluent._in_force(g.valid_until)
), up (workspace_id, user_id, above, depth) AS (
    SELECT m.workspace_id, m.user_id, u.manager_id, 1
      FROM members m JOIN fluent.users u ON u.user_id = m.user_id
     WHERE u.manager_id IS NOT NULL
    UNION ALL
    SELECT up.workspace_id, up.user_id, u.manager_id, up.depth + 1
      FROM up JOIN fluent.users u ON u.user_id = up.above
     WHERE u.manager_id IS NOT NULL AND up.depth < 64
)
SELECT w.name AS workspace, u.user_key, mgr.user_key AS manager,
       (SELECT count(*) FROM up WHERE up.workspace_id = m.workspace_id AND up.user_id = m.user_id) AS depth,
       (SELECT a.user_key
          FROM up JOIN fluent.users a ON a.user_id = up.above
         WHERE up.workspace_id = m.workspace_id AND up.user_id = m.user_id AND a.status = 'active'
           AND EXISTS (SELECT 1 FROM fluent.grants g JOIN fluent.roles r ON r.role_id = g.role_id
                        WHERE g.user_id = a.user_id AND g.workspace_id = m.workspace_id AND r.reporting_anchor
                          AND fluent._in_force(g.valid_until))
         ORDER BY up.depth LIMIT 1) AS reporting_anchor
  FROM members m
  JOIN fluent.workspaces w ON w.workspace_id = m.workspace_id
  JOIN fluent.users u ON u.user_id = m.user_id
  LEFT JOIN fluent.users mgr ON mgr.user_id = u.manager_id;
COMMENT ON VIEW fluent.reporting_lines IS
    'Each user''s reporting line in each workspace where they hold a role: manager, how many managers above, and the nearest active one above holding a reporting-anchor role (fluid: the accountable executive)';

CREATE VIEW fluent.role_members AS
SELECT w.name AS workspace, r.name AS role, u.user_key, u.display_name, u.status, g.granted_at, g.granted_by,
       g.valid_until
  FROM fluent.grants g
  JOIN fluent.workspaces w ON w.workspace_id = g.workspace_id
  JOIN fluent.roles r ON r.role_id = g.role_id
  JOIN fluent.users u ON u.user_id = g.user_id
 WHERE fluent._in_force(g.valid_until);
COMMENT ON VIEW fluent.role_members IS
    'Who holds which role, in which workspace, since when, granted by whom and until when (valid_until NULL: no expiry); expired grants are not listed';

CREATE VIEW fluent.users_without_roles AS
SELECT u.user_key, u.display_name, u.status, m.user_key AS manager, u.created_at
  FROM fluent.users u
  LEFT JOIN fluent.users m ON m.user_id = u.manager_id
 WHERE NOT EXISTS (SELECT 1 FROM fluent.grants g WHERE g.user_id = u.user_id AND fluent._in_force(g.valid_until));
COMMENT ON VIEW fluent.users_without_roles IS
    'Ghost accounts: users holding no role in any workspace. They can own rows, be assigned and appear in reports, but may do nothing';

CREATE VIEW fluent.privileged_users AS
SELECT w.name AS workspace, r.name AS role, u.user_key, u.display_name, u.status, g.granted_at,
       count(*) OVER (PARTITION BY g.role_id) AS holders, g.valid_until
  FROM fluent.grants g
  JOIN fluent.roles r ON r.role_id = g.role_id AND r.privileged
  JOIN fluent.workspaces w ON w.workspace_id = g.workspace_id
  JOIN fluent.users u ON u.user_id = g.user_id
 WHERE fluent._in_force(g.valid_until);
COMMENT ON VIEW fluent.privileged_users IS
    'Holders of owner/admin-level roles (roles.privileged), with how many people hold each such role: the seeds advise one or two owners';

CREATE VIEW fluent.access_review AS
SELECT w.name AS workspace, u.user_key, r.name AS role, g.granted_at, g.granted_by, g.reviewed_at, g.reviewed_by,
       coalesce(g.reviewed_at, g.granted_at) AS last_reviewed,
       fluent._in_force(g.valid_until) AND coalesce(g.reviewed_at, g.granted_at) < now() - interval '90 days' AS review_due,
       g.valid_until, NOT fluent._in_force(g.valid_until) AS expired,
       coalesce(g.valid_until < now() + interval '14 days', false) AND fluent._in_force(g.valid_until) AS expires_soon
  FROM fluent.grants g
  JOIN fluent.workspaces w ON w.workspace_id = g.workspace_id
  JOIN fluent.roles r ON r.role_id = g.role_id
  JOIN fluent.users u ON u.user_id = g.user_id;
COMMENT ON VIEW fluent.access_review IS
    'Every grant with when it was last reviewed (granting counts as a review; fluent_mark_reviewed records one), whether a review is due (over 90 days), and its expiry: expired grants stay listed (they no longer count), expires_soon within 14 days';

CREATE VIEW fluent.grants_due_for_review AS
SELECT workspace, user_key, role, granted_at, reviewed_at, last_reviewed
  FROM fluent.access_review WHERE review_due;
COMMENT ON VIEW fluent.grants_due_for_review IS 'Grants neither made nor reviewed in the last 90 days: the quarterly role review''s to-do list';

-- Temporary access about to end: grants and overrides that still count and
-- expire within 14 days.
CREATE VIEW fluent.expiring_access AS
SELECT w.name AS workspace, u.user_key, 'grant'::text AS kind, r.name AS role, NULL::text AS module,
       NULL::text AS action, NULL::fluent.scope AS scope, g.valid_until, g.valid_until - now() AS remaining
  FROM fluent.grants g
  JOIN fluent.workspaces w ON w.workspace_id = g.workspace_id
  JOIN fluent.roles r ON r.role_id = g.role_id
  JOIN fluent.users u ON u.user_id = g.user_id
 WHERE fluent._in_force(g.valid_until) AND g.valid_until < now() + interval '14 days'
UNION ALL
SELECT w.name, u.user_key, 'override', NULL, md.name, a.name, o.scope, o.valid_until, o.valid_until - now()
  FROM fluent.overrides o
  JOIN fluent.workspaces w ON w.workspace_id = o.workspace_id
  JOIN fluent.actions a ON a.action_id = o.action_id
  JOIN fluent.modules md ON md.module_id = a.module_id
  JOIN fluent.users u ON u.user_id = o.user_id
 WHERE fluent._in_force(o.valid_until) AND o.valid_until < now() + interval '14 days';
COMMENT ON VIEW fluent.expiring_access IS
    'Temporary access ending within 14 days: grants (role) and overrides (module, action, scope) that still count, with when they expire; the access review''s list of what to extend or let lapse';

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

-- Seed 000, "Inviting users", for the access review: every invited user,
-- open or expired, once per workspace where they hold a role (workspace
-- NULL: none yet), with the roles waiting for them. (The status is compared
-- as text: see fluent.users.invited_until.)
CREATE VIEW fluent.invitations AS
SELECT w.name AS workspace, u.user_key, u.display_name, m.user_key AS manager, u.created_at, u.invited_until,
       NOT fluent._in_force(u.invited_until) AS expired,
       coalesce(array_agg(r.name ORDER BY r.name) FILTER (WHERE r.name IS NOT NULL), '{}') AS roles
  FROM fluent.users u
  LEFT JOIN fluent.users m ON m.user_id = u.manager_id
  LEFT JOIN fluent.grants g ON g.user_id = u.user_id
  LEFT JOIN fluent.roles r ON r.role_id = g.role_id
  LEFT JOIN fluent.workspaces w ON w.workspace_id = g.workspace_id
 WHERE u.status::text = 'invited'
 GROUP BY w.name, u.user_id, m.user_key;
COMMENT ON VIEW fluent.invitations IS
    'Invited users (status invited) per workspace where they hold a role (NULL: none yet): when invited, until when the invitation can be accepted (NULL: no expiry), whether it expired, and the roles waiting for them';

-- Seed 001, "View audit/access logs", as an application shows it to its
-- users: the entries of the current workspace, for an acting user who holds
-- audit_log.read there. At scope all, every such entry; at a narrower one
-- (own, direct, team alike), the entries of changes they made as acting
-- user and those about them (a row carrying their user_id: their grants,
-- overrides, team memberships and account). Besides the rows that carry the
-- workspace, it shows the changes to the accounts (fluent.users: creation,
-- status, manager, invitation, acceptance) of users who hold a role, an
-- override or a team membership in the workspace. Owned by the catalog
-- owner, so application roles read it without reading fluent.audit_log; a
-- security barrier, so their own conditions see only what it lets through.
-- The permission is a one-time filter and the scope, workspace and acting
-- user initplans: each is evaluated once per query, not per entry.
CREATE VIEW fluent.workspace_audit_log WITH (security_barrier) AS
SELECT a.audit_id, a.changed_at, a.acting_user, a.db_role, a.table_name, a.operation, a.before, a.after
  FROM fluent.audit_log a
 WHERE @extschema@.fluent_can('audit_log', 'read')
   AND (a.workspace_id = (SELECT w.workspace_id FROM fluent.workspaces w WHERE w.name = @extschema@.fluent_current_workspace())
        OR (a.workspace_id IS NULL AND a.table_name = 'users'
            AND (coalesce(a.after, a.before) ->> 'user_id')::bigint IN (
                SELECT g.user_id FROM fluent.grants g JOIN fluent.workspaces w ON w.workspace_id = g.workspace_id
                 WHERE w.name = @extschema@.fluent_current_workspace()
                UNION ALL
                SELECT o.user_id FROM fluent.overrides o JOIN fluent.workspaces w ON w.workspace_id = o.workspace_id
                 WHERE w.name = @extschema@.fluent_current_workspace()
                UNION ALL
                SELECT m.user_id FROM fluent.team_members m JOIN fluent.workspaces w ON w.workspace_id = m.workspace_id
                 WHERE w.name = @extschema@.fluent_current_workspace())))
   AND ((SELECT @extschema@.fluent_scope('audit_log', 'read')) = 'all'
        OR a.acting_user = (SELECT @extschema@.fluent_current_user())
        OR (coalesce(a.after, a.before) ->> 'user_id')::bigint =
           (SELECT u.user_id FROM fluent.users u WHERE u.user_key = @extschema@.fluent_current_user()));
COMMENT ON VIEW fluent.workspace_audit_log IS
    'The audit trail of the current workspace for the acting user, if they hold audit_log.read: at scope all every entry of the workspace (catalog changes, and account changes of its users), at a narrower scope the changes they made and those about them; readable by every role';

SET LOCAL search_path TO @extschema@, pg_temp;
