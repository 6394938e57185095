-- Templates: the seed 001 matrix cell by cell for a user holding each role,
-- re-applying, and the fluid and cx templates checked against their seeds.
-- Administration runs as dba (a fluent_admin member, not a superuser);
-- checks run as the application role.
BEGIN;
SET search_path = public, test_helpers;
SET ROLE dba;
SELECT fluent_apply_template('fluent');
SELECT count(*) AS modules FROM fluent.modules m JOIN fluent.workspaces w USING (workspace_id) WHERE w.name = 'default';
SELECT count(*) AS actions, (SELECT count(*) FROM fluent.roles) AS roles, (SELECT count(*) FROM fluent.permissions) AS permissions
  FROM fluent.actions;
-- Re-applying duplicates nothing, keeps customisations and custom roles.
SELECT fluent_create_role('dispatcher_lite');
SELECT fluent_set_permission('dispatcher_lite', 'appointments', 'read', 'own');
SELECT fluent_set_permission('scheduler', 'rates', 'read', 'all');
SELECT fluent_apply_template('fluent');
SELECT count(*) AS actions, (SELECT count(*) FROM fluent.roles) AS roles, (SELECT count(*) FROM fluent.permissions) AS permissions
  FROM fluent.actions;
SELECT role, scope FROM fluent.permission_matrix WHERE module = 'rates' AND action = 'read' AND role IN ('scheduler', 'dispatcher_lite');
SELECT fluent_reset_role('scheduler');
SELECT role, scope FROM fluent.permission_matrix WHERE module = 'rates' AND action = 'read' AND role = 'scheduler';
SELECT try($$SELECT fluent_apply_template('salesforce')$$);
SELECT try($$SELECT fluent_apply_template(NULL)$$);

-- One user per role.
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY '{owner,admin,scheduler,billing,compliance,viewer}'::text[] LOOP
        PERFORM fluent_create_user('f_' || r);
        PERFORM fluent_grant_role('f_' || r, r);
    END LOOP;
END $$;

-- Seed 001, transcribed as published: capability area, module, action and
-- the six cells Owner, Admin, Scheduler, Billing, Compliance, Viewer.
CREATE TEMP TABLE seed_001 (area text, module text, action text, cells text[]);
INSERT INTO seed_001 VALUES
('View appointments & calendar', 'appointments', 'read',   '{✅,✅,✅,⚠️ (view only),⚠️ (view only),✅}'),
('Create appointments',          'appointments', 'create', '{✅,✅,✅,❌,❌,❌}'),
('Edit/cancel appointments',     'appointments', 'write',  '{✅,✅,✅,❌,❌,❌}'),
('Assign interpreters',          'appointments', 'assign', '{✅,✅,✅,❌,❌,❌}'),
('Offer-based scheduling',       'appointments', 'offer',  '{✅,✅,✅,❌,❌,❌}'),
('View interpreter directory',   'interpreters', 'read',   '{✅,✅,✅,⚠️ (limited),✅,✅}'),
('Add/edit interpreter profiles','interpreters', 'write',  '{✅,✅,⚠️ (limited),❌,✅,❌}'),
('Manage credentials & compliance docs', 'credentials', 'write', '{✅,✅,⚠️ (view),❌,✅,❌}'),
('Manage rates & pay settings',  'rates',        'write',  '{✅,✅,❌,⚠️ (view),❌,❌}'),
('View invoices',                'invoices',     'read',   '{✅,✅,❌,✅,❌,⚠️ (view only)}'),
('Create/send invoices',         'invoices',     'write',  '{✅,✅,❌,✅,❌,❌}'),
('Billing rules (minimums/rounding)', 'billing_rules', 'write', '{✅,✅,❌,✅,❌,❌}'),
('Mileage/travel billing rules', 'travel_rules', 'write',  '{✅,✅,❌,✅,❌,❌}'),
('Exports (billing/payroll/reports)', 'exports', 'run',    '{✅,✅,⚠️ (limited),✅,⚠️ (limited),⚠️ (limited)}'),
('Workspace settings (org info, branding)', 'workspace_settings', 'write', '{✅,✅,❌,❌,❌,❌}'),
('Language list management',     'languages',    'write',  '{✅,✅,⚠️ (limited),❌,❌,❌}'),
('Template settings',            'templates',    'write',  '{✅,✅,❌,⚠️ (limited),❌,❌}'),
('User management (invite/remove users)', 'users', 'write', '{✅,✅,❌,❌,❌,❌}'),
('Assign roles / change permissions', 'roles',   'write',  '{✅,✅,❌,❌,❌,❌}'),
('View audit/access logs',       'audit_log',    'read',   '{✅,✅,⚠️ (view only),⚠️ (view only),⚠️ (view only),❌}'),
('Manage integrations',          'integrations', 'write',  '{✅,✅,❌,❌,❌,❌}');

-- The rules of the issue: ✅ all, ❌ none, ⚠️ limited = own; "view" and
-- "view only" = read at all and nothing more, so on a row that is not a
-- read row the row's own action is none and the module's read is all.
CREATE TEMP VIEW seed_001_expected AS
SELECT s.area, c.role, s.module, s.action, c.cell,
       CASE WHEN c.cell = '✅' THEN 'all'
            WHEN c.cell = '❌' THEN 'none'
            -- "(basic fields only)": the other columns take write_profile, below
            WHEN c.cell = '⚠️ (limited)' AND s.module = 'interpreters' AND s.action = 'write' THEN 'all'
            WHEN c.cell = '⚠️ (limited)' THEN 'own'
            WHEN c.cell LIKE '⚠️ (view%' AND s.action = 'read' THEN 'all'
            WHEN c.cell LIKE '⚠️ (view%' THEN 'none' END AS expected
  FROM seed_001 s,
       unnest(s.cells, '{owner,admin,scheduler,billing,compliance,viewer}'::text[]) AS c(cell, role)
UNION ALL
SELECT s.area || ' (implied read)', c.role, s.module, 'read', c.cell,
       CASE WHEN c.cell IN ('✅', '⚠️ (view)') THEN 'all' ELSE 'none' END
  FROM seed_001 s,
       unnest(s.cells, '{owner,admin,scheduler,billing,compliance,viewer}'::text[]) AS c(cell, role)
 WHERE s.module IN ('credentials', 'rates')
UNION ALL
-- Column limits (seed 001's notes): interpreters' personal data is read as
-- the directory is (a workspace that restricts Billing sets it to none);
-- profile fields beyond the basic ones are written only where the cell is ✅.
SELECT s.area || ' (personal data)', c.role, s.module, 'read_personal', c.cell,
       CASE c.cell WHEN '✅' THEN 'all' WHEN '⚠️ (limited)' THEN 'own' ELSE 'none' END
  FROM seed_001 s,
       unnest(s.cells, '{owner,admin,scheduler,billing,compliance,viewer}'::text[]) AS c(cell, role)
 WHERE s.module = 'interpreters' AND s.action = 'read'
UNION ALL
SELECT s.area || ' (profile fields)', c.role, s.module, 'write_profile', c.cell,
       CASE c.cell WHEN '✅' THEN 'all' ELSE 'none' END
  FROM seed_001 s,
       unnest(s.cells, '{owner,admin,scheduler,billing,compliance,viewer}'::text[]) AS c(cell, role)
 WHERE s.module = 'interpreters' AND s.action = 'write';
GRANT SELECT ON seed_001, seed_001_expected TO app;

-- Every cell, checked as the application role with fluent_scope(): no row
-- is a mismatch.
SET ROLE app;
SELECT count(*) AS cells_checked, count(*) FILTER (WHERE fluent_scope('f_' || role, module, action) = expected) AS cells_matching
  FROM seed_001_expected;
SELECT area, role, expected, fluent_scope('f_' || role, module, action) AS actual
  FROM seed_001_expected WHERE fluent_scope('f_' || role, module, action) IS DISTINCT FROM expected;
-- fluent_can agrees for the acting user, as the application sees it.
SELECT act_as('f_billing');
SELECT fluent_can('invoices', 'write') AS billing_invoices, fluent_can('appointments', 'create') AS billing_creates,
       fluent_scope('interpreters', 'read') AS billing_directory, fluent_scope('rates', 'read') AS billing_rates;
SELECT act_as(NULL);
RESET ROLE;
SET ROLE dba;

-- The matrix read back from fluent.permission_matrix, pivoted as in seed 001.
SELECT module, action,
       max(scope::text) FILTER (WHERE role = 'owner') AS owner, max(scope::text) FILTER (WHERE role = 'admin') AS admin,
       max(scope::text) FILTER (WHERE role = 'scheduler') AS scheduler, max(scope::text) FILTER (WHERE role = 'billing') AS billing,
       max(scope::text) FILTER (WHERE role = 'compliance') AS compliance, max(scope::text) FILTER (WHERE role = 'viewer') AS viewer
  FROM fluent.permission_matrix
 WHERE workspace = 'default' AND template = 'fluent'
 GROUP BY module, action ORDER BY min(module), action;
-- The view agrees with seed 001 cell by cell too.
SELECT count(*) AS matrix_mismatches FROM seed_001_expected e
  JOIN fluent.permission_matrix m ON m.role = e.role AND m.module = e.module AND m.action = e.action
 WHERE m.scope::text <> e.expected;
-- Every ⚠️ cell that grants something is documented next to its cell.
SELECT count(*) AS limited_cells, count(tp.note) AS with_note
  FROM seed_001_expected e JOIN fluent.template_permissions tp
    ON tp.template = 'fluent' AND tp.role = e.role AND tp.module = e.module AND tp.action = e.action
 WHERE e.cell LIKE '⚠️%' AND e.expected <> 'none';

-- fluid (seeds 002, 003), in its own workspace ---------------------------------
RESET ROLE;
SELECT fluent_create_workspace('fluid_co');
SELECT fluent_set_workspace('fluid_co');
SET ROLE dba;
SELECT fluent_apply_template('fluid');
SELECT r.name AS role, privileged, grants_sign_in FROM fluent.roles r JOIN fluent.workspaces w USING (workspace_id)
 WHERE w.name = 'fluid_co' AND (privileged OR grants_sign_in) ORDER BY role_id;
DO $$
BEGIN
    -- roles as Yes/No flags: several per user
    PERFORM fluent_create_user('pm');            -- user, project access, financials, budget approval
    PERFORM fluent_create_user('stakeholder');   -- user, project access, project viewer
    PERFORM fluent_create_user('exec');          -- user, accountable executive, team manager
    PERFORM fluent_create_user('analyst', manager => 'exec');
    PERFORM fluent_create_user('intern', manager => 'analyst');
    PERFORM fluent_create_user('tool_admin');    -- user, application administrator
    PERFORM fluent_create_user('no_user_role');  -- project viewer only: cannot sign in
    PERFORM fluent_create_user('ghost_pm');      -- no roles at all: a ghost account
    PERFORM fluent_grant_role('pm', r) FROM unnest('{user,project_access,financials_access,budget_approval,project_submission}'::text[]) r;
    PERFORM fluent_grant_role('stakeholder', r) FROM unnest('{user,project_access,project_viewer}'::text[]) r;
    PERFORM fluent_grant_role('exec', r) FROM unnest('{user,accountable_executive,team_manager,timesheet_exempt}'::text[]) r;
    PERFORM fluent_grant_role('analyst', r) FROM unnest('{user,project_access}'::text[]) r;
    PERFORM fluent_grant_role('intern', 'user');
    PERFORM fluent_grant_role('tool_admin', r) FROM unnest('{user,application_administrator}'::text[]) r;
    PERFORM fluent_grant_role('no_user_role', 'project_viewer');
END $$;

-- Seed 002/003, what each flag gives, as (user, module, action, expected).
CREATE TEMP TABLE fluid_expected (user_key text, module text, action text, expected text);
INSERT INTO fluid_expected VALUES
    ('pm', 'meetings', 'read', 'own'),            -- general access: meetings, boards, teams they take part in
    ('pm', 'projects', 'read', 'own'),            -- project access: only assigned projects
    ('pm', 'projects', 'create', 'all'),          -- project submission
    ('pm', 'financials', 'write', 'own'),         -- financials access on their projects
    ('pm', 'budgets', 'approve', 'own'),          -- budget approval
    ('pm', 'resourcing', 'read', 'none'),         -- no resourcing access
    ('pm', 'user_accounts', 'write', 'none'),
    ('stakeholder', 'projects', 'read', 'all'),   -- project viewer: every project
    ('stakeholder', 'projects', 'write', 'own'),  -- but edits only where assigned
    ('stakeholder', 'projects', 'create', 'none'),-- no submission role
    ('exec', 'executive_reporting', 'read', 'team'), -- accountable executive: the reporting line
    ('exec', 'timesheets', 'approve', 'direct'),  -- team manager: direct reports (seed 003)
    ('exec', 'timesheets', 'exempt', 'own'),      -- timesheet exempt
    ('exec', 'projects', 'read', 'none'),         -- no project access
    ('analyst', 'timesheets', 'approve', 'none'),
    ('analyst', 'timesheets', 'write', 'own'),    -- submits their own timesheets
    ('tool_admin', 'system_settings', 'write', 'all'),
    ('tool_admin', 'projects', 'delete', 'all'),
    ('tool_admin', 'user_accounts', 'write', 'all'),
    ('tool_admin', 'timesheets', 'exempt', 'none'),
    ('no_user_role', 'projects', 'read', 'none'),  -- holds project viewer but cannot sign in
    ('ghost_pm', 'meetings', 'read', 'none');
-- Every administrator role against seed 003.
INSERT INTO fluid_expected
SELECT 'adm_' || role, module, action, 'all' FROM (VALUES
    ('data_administrator', 'data_administration', 'export'),
    ('data_administrator', 'data_administration', 'import'),
    ('data_administrator', 'projects', 'write'),     -- "bulk download, edit and upload of project information
    ('data_administrator', 'financials', 'read'),    --  and financials" (seed 002)
    ('data_administrator', 'financials', 'write'),
    ('financial_administrator', 'financial_administration', 'write'),
    ('financial_administrator', 'financials', 'read'),   -- "portfolio financial data" (seed 002)
    ('financial_administrator', 'financials', 'write'),
    ('project_administrator', 'projects', 'write'),
    ('project_administrator', 'resourcing', 'write'),
    ('timesheet_administrator', 'timesheet_settings', 'write'),
    ('timesheet_administrator', 'timesheets', 'approve'),
    ('user_administrator', 'user_accounts', 'write')) AS t(role, module, action);
INSERT INTO fluid_expected VALUES
    ('adm_user_administrator', 'projects', 'read', 'none'),
    ('adm_timesheet_administrator', 'financials', 'read', 'none'),
    ('adm_data_administrator', 'system_settings', 'write', 'none');
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY '{data_administrator,financial_administrator,project_administrator,timesheet_administrator,user_administrator}'::text[] LOOP
        PERFORM fluent_create_user('adm_' || r);
        PERFORM fluent_grant_role('adm_' || r, 'user');
        PERFORM fluent_grant_role('adm_' || r, r);
    END LOOP;
END $$;
GRANT SELECT ON fluid_expected TO app;
SET ROLE app;
SELECT count(*) AS fluid_checks, count(*) FILTER (WHERE fluent_scope(user_key, module, action) = expected) AS matching
  FROM fluid_expected;
SELECT user_key, module, action, expected, fluent_scope(user_key, module, action) AS actual
  FROM fluid_expected WHERE fluent_scope(user_key, module, action) <> expected;
RESET ROLE;
-- Without the general user role nobody signs in; with it, they do. (As the
-- superuser: this transaction already ran as app, so an authenticator's
-- trust has ended in it, see 09_identity.)
SELECT try($$SELECT fluent_set_user('no_user_role')$$);
SELECT try($$SELECT fluent_set_user('ghost_pm')$$);
SELECT try($$SELECT fluent_set_user('pm')$$);
SELECT fluent_current_user();
SELECT fluent_reset_user();

-- Project viewer versus assigned-only, on a protected table.
CREATE TABLE projects (id int PRIMARY KEY, name text, manager text);
CREATE TABLE project_members (project_id int REFERENCES projects, user_key text);
CREATE INDEX ON project_members (user_key);
INSERT INTO projects VALUES (1, 'Apollo', 'pm'), (2, 'Gemini', 'tool_admin'), (3, 'Mercury', 'tool_admin');
INSERT INTO project_members VALUES (2, 'analyst');
GRANT SELECT, INSERT, UPDATE, DELETE ON projects TO app;
GRANT SELECT ON project_members TO app;
SELECT fluent_protect('projects', 'projects', owner_column => 'manager', membership_table => 'project_members',
                      membership_row_column => 'project_id', membership_user_column => 'user_key', row_column => 'id');
SET ROLE app;
SELECT act_as('pm');
SELECT string_agg(name, ', ' ORDER BY id) AS pm_sees FROM projects;
SELECT act_as('analyst');
SELECT string_agg(name, ', ' ORDER BY id) AS analyst_sees FROM projects;
SELECT act_as('stakeholder');
SELECT string_agg(name, ', ' ORDER BY id) AS stakeholder_sees FROM projects;
UPDATE projects SET name = name || '!' RETURNING id;  -- viewer, not assigned: may read all, edit none
SELECT act_as('exec');
SELECT count(*) AS exec_sees FROM projects;
SELECT act_as(NULL);
RESET ROLE;

-- cx (seed 004) -----------------------------------------------------------------
SELECT fluent_create_workspace('cx_co');
SELECT fluent_set_workspace('cx_co');
SET ROLE dba;
SELECT fluent_apply_template('cx');
SELECT m.name AS module, p.name AS parent FROM fluent.modules m JOIN fluent.workspaces w USING (workspace_id)
  LEFT JOIN fluent.modules p ON p.module_id = m.parent_id WHERE w.name = 'cx_co' ORDER BY m.module_id;
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY '{admin,auditor,team_lead,agent}'::text[] LOOP
        PERFORM fluent_create_user('cx_' || r);
        PERFORM fluent_grant_role('cx_' || r, r);
    END LOOP;
END $$;
-- The seed's statements about each default role, as expected scopes.
CREATE TEMP TABLE cx_expected (role text, module text, action text, expected text, seed text);
INSERT INTO cx_expected
SELECT 'admin', m.name, a.name, 'all', 'full access to all modules, features and configurations'
  FROM fluent.modules m JOIN fluent.actions a USING (module_id) JOIN fluent.workspaces w ON w.workspace_id = m.workspace_id
 WHERE w.name = 'cx_co';
INSERT INTO cx_expected VALUES
    ('auditor', 'interactions', 'read', 'all', 'read interactions'),
    ('auditor', 'interactions', 'write', 'none', 'restricted access'),
    ('auditor', 'analytics', 'read', 'all', 'access analytics reports'),
    ('auditor', 'observability', 'read', 'all', 'access observability reports'),
    ('auditor', 'evaluations', 'write', 'all', 'perform QA evaluations'),
    ('auditor', 'evaluations', 'read', 'all', 'perform QA evaluations'),
    ('auditor', 'routers', 'write', 'none', 'routers/workflows restricted to admins'),
    ('auditor', 'ai_metrics', 'read', 'none', 'restricted access'),
    ('team_lead', 'interactions', 'read', 'team', 'team lead at team scope'),
    ('team_lead', 'evaluations', 'read', 'team', 'team lead at team scope'),
    ('team_lead', 'workflows', 'delete', 'none', 'routers/workflows restricted to admins'),
    ('agent', 'interactions', 'read', 'own', 'resources assigned to them or created by them'),
    ('agent', 'interactions', 'write', 'own', 'resources assigned to them or created by them'),
    ('agent', 'evaluations', 'read', 'own', 'view their own evaluations'),
    ('agent', 'evaluations', 'write', 'none', 'no write access'),
    ('agent', 'user_preferences', 'write', 'own', 'update their own preferences only'),
    ('agent', 'routers', 'write', 'none', 'routers/workflows restricted to admins'),
    ('agent', 'admin', 'read', 'none', 'no administrative modules');
-- No default role but admin deletes anything.
INSERT INTO cx_expected
SELECT r, m.name, 'delete', 'none', 'no delete access'
  FROM unnest('{auditor,team_lead,agent}'::text[]) r, fluent.modules m JOIN fluent.workspaces w USING (workspace_id)
 WHERE w.name = 'cx_co';
GRANT SELECT ON cx_expected TO app;
SET ROLE app;
SELECT count(*) AS cx_checks, count(*) FILTER (WHERE fluent_scope('cx_' || role, module, action) = expected) AS matching
  FROM cx_expected;
SELECT role, module, action, expected, fluent_scope('cx_' || role, module, action) AS actual, seed
  FROM cx_expected WHERE fluent_scope('cx_' || role, module, action) <> expected;
-- Submodules inherit: nothing set on routers, yet admin may delete routers.
RESET ROLE;
SET ROLE dba;
SELECT role, module, action, scope, setting, set_on FROM fluent.permission_matrix
 WHERE workspace = 'cx_co' AND module IN ('routers', 'user_preferences') AND action = 'write' ORDER BY role, module;
RESET ROLE;
ROLLBACK;
