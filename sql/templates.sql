-- Templates: the products of the seed pages, ready to load into a workspace
-- with fluent_apply_template(). The definitions are data shipped with the
-- extension (not dumped, recreated by CREATE EXTENSION); what a workspace
-- does with them afterwards is ordinary catalog data.
--
-- Each template lists its modules (parents before submodules), its roles,
-- and the scope each role has on each module action. Choices the seed pages
-- leave open are written next to the cell they concern, in `note`, and
-- summarised in the README.

-- Everything below resolves names in pg_catalog and fluent's own schema only
-- (see "Install-time safety" in README.md); the extension schema comes back at the end.
SET LOCAL search_path TO pg_catalog, pg_temp;

CREATE TABLE fluent.templates (
    name        text PRIMARY KEY,
    description text NOT NULL
);
COMMENT ON TABLE fluent.templates IS 'Role templates shipped with fluent (fluent_apply_template)';

CREATE TABLE fluent.template_modules (
    template text NOT NULL REFERENCES fluent.templates,
    module   text NOT NULL,
    parent   text,
    actions  text[] NOT NULL,
    position int NOT NULL,
    PRIMARY KEY (template, module),
    FOREIGN KEY (template, parent) REFERENCES fluent.template_modules (template, module)
);
COMMENT ON TABLE fluent.template_modules IS 'The modules and actions a template creates';

CREATE TABLE fluent.template_roles (
    template       text NOT NULL REFERENCES fluent.templates,
    role           text NOT NULL,
    description    text NOT NULL,
    privileged     boolean NOT NULL DEFAULT false,
    grants_sign_in boolean NOT NULL DEFAULT false,
    reporting_anchor boolean NOT NULL DEFAULT false,
    position       int NOT NULL,
    PRIMARY KEY (template, role)
);
COMMENT ON TABLE fluent.template_roles IS 'The roles a template creates';

CREATE TABLE fluent.template_permissions (
    template text NOT NULL,
    role     text NOT NULL,
    module   text NOT NULL,
    action   text NOT NULL,
    scope    fluent.scope NOT NULL,
    note     text,
    PRIMARY KEY (template, role, module, action),
    FOREIGN KEY (template, role) REFERENCES fluent.template_roles,
    FOREIGN KEY (template, module) REFERENCES fluent.template_modules
);
COMMENT ON TABLE fluent.template_permissions IS
    'The default scope of each template role on each module action: what fluent_reset_role() restores; a cell not listed is inherited from the parent module (or none)';
COMMENT ON COLUMN fluent.template_permissions.note IS 'Why the cell has this scope where the seed page leaves a choice';

CREATE TABLE fluent.template_admin_rights (
    template    text NOT NULL,
    admin_right fluent.admin_right NOT NULL,
    module      text NOT NULL,
    action      text NOT NULL,
    note        text,
    PRIMARY KEY (template, admin_right, module, action),
    FOREIGN KEY (template, module) REFERENCES fluent.template_modules
);
COMMENT ON TABLE fluent.template_admin_rights IS
    'Which permission gives which administrative right in a workspace loaded from the template (see fluent.admin_rights)';

CREATE TABLE fluent.template_requirements (
    template        text NOT NULL,
    module          text NOT NULL,
    required_module text NOT NULL,
    required_action text NOT NULL,
    PRIMARY KEY (template, module),
    FOREIGN KEY (template, module) REFERENCES fluent.template_modules
);
COMMENT ON TABLE fluent.template_requirements IS 'Modules a template gates behind another permission (see fluent.requirements)';

CREATE TABLE fluent.template_item_roles (
    template      text NOT NULL,
    module        text NOT NULL,
    item_role     text NOT NULL,
    actions       text[] NOT NULL,
    required_role text,
    note          text,
    PRIMARY KEY (template, module, item_role),
    FOREIGN KEY (template, module) REFERENCES fluent.template_modules,
    FOREIGN KEY (template, required_role) REFERENCES fluent.template_roles (template, role)
);
COMMENT ON TABLE fluent.template_item_roles IS
    'Item roles a template defines (see fluent.item_roles): held on one item, they give the actions listed there; required_role: what an assignee must hold';

-- A template's permission matrix, one row per module action and one column
-- per role, as in the seed pages; NULL leaves the cell unset (inherited).
CREATE FUNCTION fluent._template_matrix(p_template text, p_roles text[], p_rows text[][])
RETURNS void LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO fluent.template_permissions (template, role, module, action, scope)
    SELECT p_template, p_roles[c], p_rows[r][1], p_rows[r][2], p_rows[r][c + 2]::fluent.scope
      FROM generate_subscripts(p_rows, 1) AS r, generate_subscripts(p_roles, 1) AS c
     WHERE p_rows[r][c + 2] IS NOT NULL;
$$;

-- fluent (seeds 000 and 001) ---------------------------------------------

INSERT INTO fluent.templates VALUES
    ('fluent', 'Interpreting agency scheduling: the six roles and 21 capability areas of the Fluent permission matrix');

INSERT INTO fluent.template_modules (template, module, actions, position) VALUES
    ('fluent', 'appointments',       '{read,create,write,assign,offer}', 1),
    ('fluent', 'interpreters',       '{read,write,read_personal,write_profile}', 2),
    ('fluent', 'credentials',        '{read,write}', 3),
    ('fluent', 'rates',              '{read,write}', 4),
    ('fluent', 'invoices',           '{read,write}', 5),
    ('fluent', 'billing_rules',      '{write}', 6),
    ('fluent', 'travel_rules',       '{write}', 7),
    ('fluent', 'exports',            '{run}', 8),
    ('fluent', 'workspace_settings', '{write}', 9),
    ('fluent', 'languages',          '{write}', 10),
    ('fluent', 'templates',          '{write}', 11),
    ('fluent', 'users',              '{write}', 12),
    ('fluent', 'roles',              '{write}', 13),
    ('fluent', 'audit_log',          '{read}', 14),
    ('fluent', 'integrations',       '{write}', 15);

INSERT INTO fluent.template_roles (template, role, description, privileged, position) VALUES
    ('fluent', 'owner',      'Company/workspace owners: everything, including billing and security settings (1-2 people)', true, 1),
    ('fluent', 'admin',      'Ops leaders and system administrators: most settings and user management', true, 2),
    ('fluent', 'scheduler',  'Schedulers/dispatchers: appointments and the interpreter directory', false, 3),
    ('fluent', 'billing',    'AR/AP: invoices, rates, billing rules and exports', false, 4),
    ('fluent', 'compliance', 'Compliance/credentialing: interpreter profiles, credentials and compliance documents', false, 5),
    ('fluent', 'viewer',     'Read-only stakeholders: schedules, reports and status', false, 6);

-- Seed 001, row by row. ✅ = all, ❌ = none, "⚠️ view"/"view only" = read at
-- all, "⚠️ limited" = the action at own, except "Add/edit interpreter
-- profiles" for schedulers: basic fields only, write at all without
-- write_profile, which the profile columns take (fluent_protect_columns). The rows credentials.read and
-- rates.read are not in the matrix: "view" on "Manage credentials" and
-- "Manage rates" implies them, and managing (✅) implies reading.
SELECT fluent._template_matrix('fluent', '{owner,admin,scheduler,billing,compliance,viewer}', ARRAY[
    --  module                action     owner  admin  sched   billing compl   viewer
    ARRAY['appointments',       'read',   'all', 'all', 'all',  'all',  'all',  'all'],
    ARRAY['appointments',       'create', 'all', 'all', 'all',  'none', 'none', 'none'],
    ARRAY['appointments',       'write',  'all', 'all', 'all',  'none', 'none', 'none'],
    ARRAY['appointments',       'assign', 'all', 'all', 'all',  'none', 'none', 'none'],
    ARRAY['appointments',       'offer',  'all', 'all', 'all',  'none', 'none', 'none'],
    ARRAY['interpreters',       'read',   'all', 'all', 'all',  'own',  'all',  'all'],
    ARRAY['interpreters',       'write',  'all', 'all', 'all',  'none', 'all',  'none'],
    ARRAY['interpreters',       'read_personal', 'all', 'all', 'all', 'own', 'all', 'all'],
    ARRAY['interpreters',       'write_profile', 'all', 'all', 'none', 'none', 'all', 'none'],
    ARRAY['credentials',        'read',   'all', 'all', 'all',  'none', 'all',  'none'],
    ARRAY['credentials',        'write',  'all', 'all', 'none', 'none', 'all',  'none'],
    ARRAY['rates',              'read',   'all', 'all', 'none', 'all',  'none', 'none'],
    ARRAY['rates',              'write',  'all', 'all', 'none', 'none', 'none', 'none'],
    ARRAY['invoices',           'read',   'all', 'all', 'none', 'all',  'none', 'all'],
    ARRAY['invoices',           'write',  'all', 'all', 'none', 'all',  'none', 'none'],
    ARRAY['billing_rules',      'write',  'all', 'all', 'none', 'all',  'none', 'none'],
    ARRAY['travel_rules',       'write',  'all', 'all', 'none', 'all',  'none', 'none'],
    ARRAY['exports',            'run',    'all', 'all', 'own',  'all',  'own',  'own'],
    ARRAY['workspace_settings', 'write',  'all', 'all', 'none', 'none', 'none', 'none'],
    ARRAY['languages',          'write',  'all', 'all', 'own',  'none', 'none', 'none'],
    ARRAY['templates',          'write',  'all', 'all', 'none', 'own',  'none', 'none'],
    ARRAY['users',              'write',  'all', 'all', 'none', 'none', 'none', 'none'],
    ARRAY['roles',              'write',  'all', 'all', 'none', 'none', 'none', 'none'],
    ARRAY['audit_log',          'read',   'all', 'all', 'all',  'all',  'all',  'none'],
    ARRAY['integrations',       'write',  'all', 'all', 'none', 'none', 'none', 'none']]);

UPDATE fluent.template_permissions p SET note = n.note
  FROM (VALUES
    ('billing',    'appointments', 'read',  '⚠️ (view only): read at all'),
    ('compliance', 'appointments', 'read',  '⚠️ (view only): read at all'),
    ('billing',    'interpreters', 'read',  '⚠️ (limited): own, e.g. interpreters on their own invoices, not the whole directory'),
    ('scheduler',  'interpreters', 'write', '⚠️ (limited): basic fields only; the profile columns take interpreters.write_profile (fluent_protect_columns)'),
    ('scheduler',  'interpreters', 'write_profile', '⚠️ (limited) on "Add/edit interpreter profiles": basic fields only'),
    ('billing',    'interpreters', 'read_personal', 'as the directory (own); "some workspaces restrict Billing from seeing interpreter personal data": set none, and fluent_protect_columns masks it'),
    ('scheduler',  'credentials',  'read',  '⚠️ (view) on "Manage credentials": read at all, no write'),
    ('owner',      'credentials',  'read',  'not a matrix row: managing credentials (✅) implies reading them'),
    ('admin',      'credentials',  'read',  'not a matrix row: managing credentials (✅) implies reading them'),
    ('compliance', 'credentials',  'read',  'not a matrix row: managing credentials (✅) implies reading them'),
    ('billing',    'rates',        'read',  '⚠️ (view) on "Manage rates": read at all, no write'),
    ('owner',      'rates',        'read',  'not a matrix row: managing rates (✅) implies reading them'),
    ('admin',      'rates',        'read',  'not a matrix row: managing rates (✅) implies reading them'),
    ('viewer',     'invoices',     'read',  '⚠️ (view only): read at all'),
    ('scheduler',  'exports',      'run',   '⚠️ (limited): own, exports of their own data'),
    ('compliance', 'exports',      'run',   '⚠️ (limited): own, exports of their own data'),
    ('viewer',     'exports',      'run',   '⚠️ (limited): own, exports of their own data'),
    ('scheduler',  'languages',    'write', '⚠️ (limited): own, languages they added'),
    ('billing',    'templates',    'write', '⚠️ (limited): own, templates they created'),
    ('scheduler',  'audit_log',    'read',  '⚠️ (view only): read at all'),
    ('billing',    'audit_log',    'read',  '⚠️ (view only): read at all'),
    ('compliance', 'audit_log',    'read',  '⚠️ (view only): read at all')
  ) AS n(role, module, action, note)
 WHERE p.template = 'fluent' AND (p.role, p.module, p.action) = (n.role, n.module, n.action);

-- fluid (seeds 002 and 003) ----------------------------------------------
-- Roles are flags: a user holds several and gets the widest of them. Access
-- roles give `own` (items allocated or assigned to the user, through the
-- table's owner or assignment column); permission and administrator roles
-- give `all`. The user role is the sign-in role: without it nobody acts.

INSERT INTO fluent.templates VALUES
    ('fluid', 'Project portfolio management: Fluid''s security roles as flags a user holds several of at once');

INSERT INTO fluent.template_modules (template, module, actions, position) VALUES
    ('fluid', 'meetings',                 '{read,write}', 1),
    ('fluid', 'boards',                   '{read,write}', 2),
    ('fluid', 'teams',                    '{read,write}', 3),
    ('fluid', 'projects',                 '{read,create,write,delete,access}', 4),
    ('fluid', 'financials',               '{read,write}', 5),
    ('fluid', 'budgets',                  '{approve}', 6),
    ('fluid', 'resourcing',               '{read,write}', 7),
    ('fluid', 'benefits',                 '{read,write}', 8),
    ('fluid', 'timesheets',               '{read,write,approve,exempt}', 9),
    ('fluid', 'executive_reporting',      '{read}', 10),
    ('fluid', 'user_accounts',            '{read,write}', 11),
    ('fluid', 'data_administration',      '{export,import}', 12),
    ('fluid', 'financial_administration', '{write}', 13),
    ('fluid', 'timesheet_settings',       '{write}', 14),
    ('fluid', 'system_settings',          '{write}', 15);

INSERT INTO fluent.template_roles (template, role, description, privileged, grants_sign_in, position) VALUES
    ('fluid', 'user',                      'General access: may sign in; meetings, boards and teams they take part in', false, true, 1),
    ('fluid', 'project_access',            'The Projects module: projects they are assigned to', false, false, 2),
    ('fluid', 'project_viewer',            'Read access to every project', false, false, 3),
    ('fluid', 'project_submission',        'May create projects and programs', false, false, 4),
    ('fluid', 'financials_access',         'Financials of their projects, and financial reporting', false, false, 5),
    ('fluid', 'budget_approval',           'May approve the budgets of their projects', false, false, 6),
    ('fluid', 'accountable_executive',     'Reporting over their whole reporting line', false, false, 7),
    ('fluid', 'resourcing_access',         'Resourcing (community) of their projects', false, false, 8),
    ('fluid', 'benefits_access',           'Benefits and ongoing costs of their projects', false, false, 9),
    ('fluid', 'team_manager',              'Manages and approves the timesheets of their reports', false, false, 10),
    ('fluid', 'timesheet_exempt',          'Need not submit timesheets', false, false, 11),
    ('fluid', 'application_administrator', 'Full administrator of the whole instance', true, false, 12),
    ('fluid', 'data_administrator',        'Bulk download, edit and upload of project information', true, false, 13),
    ('fluid', 'financial_administrator',   'Financial configuration and the financials of every project', true, false, 14),
    ('fluid', 'project_administrator',     'Full control over every project', true, false, 15),
    ('fluid', 'timesheet_administrator',   'Timesheet settings and every timesheet', true, false, 16),
    ('fluid', 'user_administrator',        'Creates and manages user accounts and their roles', true, false, 17);

INSERT INTO fluent.template_permissions (template, role, module, action, scope, note)
SELECT 'fluid', role, module, action, scope::fluent.scope, note FROM (VALUES
    ('user', 'meetings', 'read', 'own', 'meetings they take part in'),
    ('user', 'meetings', 'write', 'own', NULL),
    ('user', 'boards', 'read', 'own', 'boards they take part in'),
    ('user', 'boards', 'write', 'own', NULL),
    ('user', 'teams', 'read', 'own', 'teams they belong to'),
    ('user', 'teams', 'write', 'own', NULL),
    ('user', 'timesheets', 'read', 'own', 'their own timesheets'),
    ('user', 'timesheets', 'write', 'own', NULL),
    ('project_access', 'projects', 'access', 'all', 'opens the Projects module and its sections (seed 002)'),
    ('project_access', 'projects', 'read', 'own', 'only projects they are assigned to'),
    ('project_access', 'projects', 'write', 'own', 'editorial rights come with the assignment'),
    ('project_viewer', 'projects', 'read', 'all', 'every project, assigned or not'),
    ('project_submission', 'projects', 'create', 'all', NULL),
    ('financials_access', 'financials', 'read', 'own', 'financials of their projects'),
    ('financials_access', 'financials', 'write', 'own', NULL),
    ('budget_approval', 'budgets', 'approve', 'own', 'budgets of their projects'),
    ('accountable_executive', 'executive_reporting', 'read', 'team', 'team scope reaches their whole reporting line'),
    ('resourcing_access', 'resourcing', 'read', 'own', NULL),
    ('resourcing_access', 'resourcing', 'write', 'own', NULL),
    ('benefits_access', 'benefits', 'read', 'own', NULL),
    ('benefits_access', 'benefits', 'write', 'own', NULL),
    ('team_manager', 'timesheets', 'read', 'direct', 'their direct reports and the members of teams they lead (seed 003)'),
    ('team_manager', 'timesheets', 'approve', 'direct', NULL),
    ('timesheet_exempt', 'timesheets', 'exempt', 'own', 'a flag the application checks with fluent_can()'),
    ('data_administrator', 'data_administration', 'export', 'all', NULL),
    ('data_administrator', 'data_administration', 'import', 'all', NULL),
    ('data_administrator', 'projects', 'read', 'all', 'bulk download covers every project'),
    ('data_administrator', 'projects', 'write', 'all', 'bulk edit and upload of project information (seed 002)'),
    ('data_administrator', 'projects', 'access', 'all', NULL),
    ('data_administrator', 'financials', 'read', 'all', '... and financials'),
    ('data_administrator', 'financials', 'write', 'all', NULL),
    ('financial_administrator', 'financial_administration', 'write', 'all', NULL),
    ('financial_administrator', 'financials', 'read', 'all', NULL),
    ('financial_administrator', 'projects', 'access', 'all', 'the financials of every project'),
    ('financial_administrator', 'financials', 'write', 'all', NULL),
    ('project_administrator', 'projects', 'access', 'all', NULL),
    ('project_administrator', 'projects', 'read', 'all', NULL),
    ('project_administrator', 'projects', 'create', 'all', NULL),
    ('project_administrator', 'projects', 'write', 'all', NULL),
    ('project_administrator', 'projects', 'delete', 'all', NULL),
    ('project_administrator', 'financials', 'read', 'all', 'adjusts financial parameters'),
    ('project_administrator', 'financials', 'write', 'all', NULL),
    ('project_administrator', 'resourcing', 'read', 'all', 'allocates resources'),
    ('project_administrator', 'resourcing', 'write', 'all', NULL),
    ('project_administrator', 'benefits', 'read', 'all', NULL),
    ('project_administrator', 'benefits', 'write', 'all', NULL),
    ('timesheet_administrator', 'timesheet_settings', 'write', 'all', NULL),
    ('timesheet_administrator', 'timesheets', 'read', 'all', NULL),
    ('timesheet_administrator', 'timesheets', 'write', 'all', NULL),
    ('timesheet_administrator', 'timesheets', 'approve', 'all', NULL),
    ('user_administrator', 'user_accounts', 'read', 'all', NULL),
    ('user_administrator', 'user_accounts', 'write', 'all', 'only user administrators set roles on accounts')
) AS t(role, module, action, scope, note);

-- The application administrator administers everything.
INSERT INTO fluent.template_permissions (template, role, module, action, scope, note)
SELECT 'fluid', 'application_administrator', m.module, a.action, 'all', NULL
  FROM fluent.template_modules m, unnest(m.actions) AS a(action)
 WHERE m.template = 'fluid' AND a.action <> 'exempt';
INSERT INTO fluent.template_permissions (template, role, module, action, scope, note) VALUES
    ('fluid', 'application_administrator', 'timesheets', 'exempt', 'none', 'exemption is its own flag (timesheet_exempt)');

-- Seed 003: accountable executives are found through the reporting line.
UPDATE fluent.template_roles SET reporting_anchor = true WHERE template = 'fluid' AND role = 'accountable_executive';

-- cx (seed 004) -------------------------------------------------------------
-- Read / Write / Delete per module at Disabled (none) / Own / All, Team Lead
-- at team. Submodules inherit their module's setting unless a role sets them.

INSERT INTO fluent.templates VALUES
    ('cx', 'Customer-experience platform: Read/Write/Delete per module and submodule for Admin, Auditor, Team Lead and Agent');

INSERT INTO fluent.template_modules (template, module, parent, actions, position) VALUES
    ('cx', 'admin',            NULL, '{read,write,delete}', 1),
    ('cx', 'user_preferences', 'admin', '{read,write,delete}', 2),
    ('cx', 'routers',          'admin', '{read,write,delete}', 3),
    ('cx', 'workflows',        'admin', '{read,write,delete}', 4),
    ('cx', 'integrations',     NULL, '{read,write,delete}', 5),
    ('cx', 'interactions',     NULL, '{read,write,delete}', 6),
    ('cx', 'analytics',        NULL, '{read,write,delete}', 7),
    ('cx', 'ai_metrics',       NULL, '{read,write,delete}', 8),
    ('cx', 'ai_process',       NULL, '{read,write,delete}', 9),
    ('cx', 'ai_tagging',       NULL, '{read,write,delete}', 10),
    ('cx', 'ai_transcription', NULL, '{read,write,delete}', 11),
    ('cx', 'quality',          NULL, '{read,write,delete}', 12),
    ('cx', 'evaluations',      'quality', '{read,write,delete}', 13),
    ('cx', 'observability',    NULL, '{read,write,delete}', 14),
    ('cx', 'knowledge_base',   NULL, '{read,write,delete}', 15);

INSERT INTO fluent.template_roles (template, role, description, privileged, position) VALUES
    ('cx', 'admin',     'Full access to every module, feature and configuration', true, 1),
    ('cx', 'auditor',   'Compliance and QA review: reads interactions, analytics and observability, performs evaluations', false, 2),
    ('cx', 'team_lead', 'Like an agent, over the interactions and evaluations of their team', false, 3),
    ('cx', 'agent',     'Only what is assigned to them or created by them', false, 4);

SELECT fluent._template_matrix('cx', '{admin,auditor,team_lead,agent}', ARRAY[
    --  module              action    admin  auditor team_lead agent
    ARRAY['admin',            'read',   'all', 'none', 'none', 'none'],
    ARRAY['admin',            'write',  'all', 'none', 'none', 'none'],
    ARRAY['admin',            'delete', 'all', 'none', 'none', 'none'],
    ARRAY['user_preferences', 'read',   NULL,  'own',  'own',  'own'],
    ARRAY['user_preferences', 'write',  NULL,  'own',  'own',  'own'],
    ARRAY['integrations',     'read',   'all', 'none', 'none', 'none'],
    ARRAY['integrations',     'write',  'all', 'none', 'none', 'none'],
    ARRAY['integrations',     'delete', 'all', 'none', 'none', 'none'],
    ARRAY['interactions',     'read',   'all', 'all',  'team', 'own'],
    ARRAY['interactions',     'write',  'all', 'none', 'team', 'own'],
    ARRAY['interactions',     'delete', 'all', 'none', 'none', 'none'],
    ARRAY['analytics',        'read',   'all', 'all',  'team', 'none'],
    ARRAY['analytics',        'write',  'all', 'none', 'none', 'none'],
    ARRAY['analytics',        'delete', 'all', 'none', 'none', 'none'],
    ARRAY['ai_metrics',       'read',   'all', 'none', 'none', 'none'],
    ARRAY['ai_metrics',       'write',  'all', 'none', 'none', 'none'],
    ARRAY['ai_metrics',       'delete', 'all', 'none', 'none', 'none'],
    ARRAY['ai_process',       'read',   'all', 'none', 'none', 'none'],
    ARRAY['ai_process',       'write',  'all', 'none', 'none', 'none'],
    ARRAY['ai_process',       'delete', 'all', 'none', 'none', 'none'],
    ARRAY['ai_tagging',       'read',   'all', 'none', 'none', 'none'],
    ARRAY['ai_tagging',       'write',  'all', 'none', 'none', 'none'],
    ARRAY['ai_tagging',       'delete', 'all', 'none', 'none', 'none'],
    ARRAY['ai_transcription', 'read',   'all', 'none', 'none', 'none'],
    ARRAY['ai_transcription', 'write',  'all', 'none', 'none', 'none'],
    ARRAY['ai_transcription', 'delete', 'all', 'none', 'none', 'none'],
    ARRAY['quality',          'read',   'all', 'all',  'none', 'none'],
    ARRAY['quality',          'write',  'all', 'none', 'none', 'none'],
    ARRAY['quality',          'delete', 'all', 'none', 'none', 'none'],
    ARRAY['evaluations',      'read',   NULL,  NULL,   'team', 'own'],
    ARRAY['evaluations',      'write',  NULL,  'all',  NULL,   NULL],
    ARRAY['observability',    'read',   'all', 'all',  'none', 'none'],
    ARRAY['observability',    'write',  'all', 'none', 'none', 'none'],
    ARRAY['observability',    'delete', 'all', 'none', 'none', 'none'],
    ARRAY['knowledge_base',   'read',   'all', 'none', 'none', 'none'],
    ARRAY['knowledge_base',   'write',  'all', 'none', 'none', 'none'],
    ARRAY['knowledge_base',   'delete', 'all', 'none', 'none', 'none']]);

UPDATE fluent.template_permissions p SET note = n.note
  FROM (VALUES
    ('auditor',   'evaluations',      'write', '"perform QA evaluations"; reads them through quality.read'),
    ('agent',     'evaluations',      'read',  '"view their own evaluations"'),
    ('agent',     'user_preferences', 'write', '"agents can update their own preferences only"'),
    ('agent',     'interactions',     'read',  'assigned to them or created by them'),
    ('team_lead', 'interactions',     'read',  'the seed''s Team Lead is "coming soon": team scope over the teams they lead'),
    ('auditor',   'user_preferences', 'read',  'everyone keeps their own preferences')
  ) AS n(role, module, action, note)
 WHERE p.template = 'cx' AND (p.role, p.module, p.action) = (n.role, n.module, n.action);

DROP FUNCTION fluent._template_matrix(text, text[], text[]);

-- Applying templates ------------------------------------------------------

-- Seeds 002/003: Project Access opens the Projects module, and the project
-- sections (financials, resourcing, benefits) with it; Project Viewer alone
-- reads nothing.
INSERT INTO fluent.template_requirements (template, module, required_module, required_action)
SELECT 'fluid', m, 'projects', 'access' FROM unnest('{projects,financials,resourcing,benefits}'::text[]) m;

-- Seeds 002/003: "without Project Viewer access a person would need to be
-- assigned a role on a project"; users get "editorial rights on certain
-- items" and see "through inclusion in teams or assignment to projects,
-- meetings, boards"; "a person has to have the accountable executive role to
-- be named as an accountable executive on a project".
INSERT INTO fluent.template_item_roles (template, module, item_role, actions, required_role, note) VALUES
    ('fluid', 'projects', 'manager',               '{read,write,delete}', NULL, 'runs the project'),
    ('fluid', 'projects', 'editor',                '{read,write}',        NULL, 'editorial rights on the project'),
    ('fluid', 'projects', 'viewer',                '{read}',              NULL, 'sees the project'),
    ('fluid', 'projects', 'accountable_executive', '{read,write}',        'accountable_executive',
     'named on the project; only holders of the Accountable Executive role'),
    ('fluid', 'boards',   'member',                '{read,write}',        NULL, 'takes part in the board (a team may be added)'),
    ('fluid', 'meetings', 'participant',           '{read,write}',        NULL, 'takes part in the meeting');

-- Delegated administration (seeds 000/001: Owner and Admin manage users,
-- assign roles and change permissions, the users and roles rows of the
-- matrix; seed 003: only User Administrators set the roles on an account,
-- without holding those roles themselves; seed 004: Admin).
INSERT INTO fluent.template_admin_rights (template, admin_right, module, action, note) VALUES
    ('fluent', 'manage_users',      'users',               'write', NULL),
    ('fluent', 'assign_roles',      'users',               'write', 'assigning roles is part of managing users'),
    ('fluent', 'manage_roles',      'roles',               'write', NULL),
    ('fluid',  'manage_users',      'user_accounts',       'write', NULL),
    ('fluid',  'assign_roles',      'user_accounts',       'write', NULL),
    ('fluid',  'assign_beyond_own', 'user_accounts',       'write', 'user administrators set every role on an account without holding it'),
    ('fluid',  'manage_roles',      'system_settings',     'write', 'the application administrator configures the instance'),
    ('cx',     'manage_users',      'admin',               'write', NULL),
    ('cx',     'assign_roles',      'admin',               'write', NULL),
    ('cx',     'manage_roles',      'admin',               'write', NULL);

CREATE FUNCTION fluent._template(p_template text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM fluent._not_null(p_template, 'template');
    IF NOT EXISTS (SELECT 1 FROM fluent.templates WHERE name = p_template) THEN
        RAISE EXCEPTION 'fluent template "%" does not exist', p_template
            USING ERRCODE = 'undefined_object',
                  HINT = format('Templates: %s.', (SELECT string_agg(name, ', ' ORDER BY name) FROM fluent.templates));
    END IF;
    RETURN p_template;
END $$;

-- Loads a template into the current workspace: its modules and actions, its
-- roles, and their permissions. Only what is missing is added, so applying
-- again duplicates nothing, keeps every change made since, and never touches
-- a custom role (fluent_reset_role() restores a role's defaults).
CREATE FUNCTION @extschema@.fluent_apply_template(template text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ws int := fluent._workspace_id();
    t text := fluent._template(template);
    m record;
    mid int;
BEGIN
    PERFORM fluent._require_admin();
    FOR m IN SELECT * FROM fluent.template_modules tm WHERE tm.template = t ORDER BY tm.position LOOP
        INSERT INTO fluent.modules (workspace_id, name, parent_id)
        VALUES (ws, m.module, (SELECT module_id FROM fluent.modules WHERE workspace_id = ws AND name = m.parent))
        ON CONFLICT (workspace_id, name) DO NOTHING;
        SELECT module_id INTO mid FROM fluent.modules WHERE workspace_id = ws AND name = m.module;
        INSERT INTO fluent.actions (workspace_id, module_id, name)
        SELECT ws, mid, a FROM unnest(m.actions) WITH ORDINALITY AS x(a, n) ORDER BY n
        ON CONFLICT (module_id, name) DO NOTHING;
    END LOOP;

    -- A role the template already made is found by its template role, even
    -- if renamed since; a custom role holding a template role's name wins.
    INSERT INTO fluent.roles (workspace_id, name, description, template, template_role, privileged, grants_sign_in,
                              reporting_anchor)
    SELECT ws, tr.role, tr.description, t, tr.role, tr.privileged, tr.grants_sign_in, tr.reporting_anchor
      FROM fluent.template_roles tr
     WHERE tr.template = t
       AND NOT EXISTS (SELECT 1 FROM fluent.roles r WHERE r.workspace_id = ws AND r.template = t AND r.template_role = tr.role)
     ORDER BY tr.position
    ON CONFLICT (workspace_id, name) DO NOTHING;
    FOR m IN SELECT r.name FROM fluent.template_roles tr JOIN fluent.roles r ON r.workspace_id = ws AND r.name = tr.role
              WHERE tr.template = t AND r.template IS DISTINCT FROM t ORDER BY tr.position LOOP
        RAISE NOTICE 'fluent role "%" exists and is not from template "%"; left as it is', m.name, t;
    END LOOP;

    INSERT INTO fluent.permissions (workspace_id, role_id, action_id, scope)
    SELECT ws, r.role_id, a.action_id, tp.scope
      FROM fluent.template_permissions tp
      JOIN fluent.roles r ON r.workspace_id = ws AND r.template = t AND r.template_role = tp.role
      JOIN fluent.modules md ON md.workspace_id = ws AND md.name = tp.module
      JOIN fluent.actions a ON a.module_id = md.module_id AND a.name = tp.action
     WHERE tp.template = t
    ON CONFLICT (role_id, action_id) DO NOTHING;

    INSERT INTO fluent.admin_rights (workspace_id, admin_right, action_id)
    SELECT ws, tr.admin_right, a.action_id
      FROM fluent.template_admin_rights tr
      JOIN fluent.modules md ON md.workspace_id = ws AND md.name = tr.module
      JOIN fluent.actions a ON a.module_id = md.module_id AND a.name = tr.action
     WHERE tr.template = t
    ON CONFLICT DO NOTHING;

    INSERT INTO fluent.requirements (workspace_id, module_id, action_id, required_action_id)
    SELECT ws, md.module_id, NULL, a.action_id
      FROM fluent.template_requirements tq
      JOIN fluent.modules md ON md.workspace_id = ws AND md.name = tq.module
      JOIN fluent.modules rm ON rm.workspace_id = ws AND rm.name = tq.required_module
      JOIN fluent.actions a ON a.module_id = rm.module_id AND a.name = tq.required_action
     WHERE tq.template = t
    ON CONFLICT DO NOTHING;

    -- Item roles the workspace has already (the template's, or a DBA's of
    -- the same name) are left as they are: their actions and conditions are
    -- not widened behind the assignments that name them.
    FOR m IN SELECT ti.module, ti.item_role FROM fluent.template_item_roles ti
               JOIN fluent.modules md ON md.workspace_id = ws AND md.name = ti.module
               JOIN fluent.item_roles ir ON ir.module_id = md.module_id AND ir.name = ti.item_role
              WHERE ti.template = t
                AND (ARRAY(SELECT a.name FROM fluent.item_role_actions ia JOIN fluent.actions a ON a.action_id = ia.action_id
                            WHERE ia.item_role_id = ir.item_role_id ORDER BY 1)
                     IS DISTINCT FROM ARRAY(SELECT x FROM unnest(ti.actions) x ORDER BY 1)
                     OR ir.required_role_id IS DISTINCT FROM
                        (SELECT r.role_id FROM fluent.roles r
                          WHERE r.workspace_id = ws AND r.template = t AND r.template_role = ti.required_role))
              ORDER BY 1, 2 LOOP
        RAISE NOTICE 'fluent item role "%" of module "%" is not template "%"''s; left as it is', m.item_role, m.module, t;
    END LOOP;
    WITH created AS (
        INSERT INTO fluent.item_roles (workspace_id, module_id, name, description, required_role_id)
        SELECT ws, md.module_id, ti.item_role, ti.note, r.role_id
          FROM fluent.template_item_roles ti
          JOIN fluent.modules md ON md.workspace_id = ws AND md.name = ti.module
          LEFT JOIN fluent.roles r ON r.workspace_id = ws AND r.template = t AND r.template_role = ti.required_role
         WHERE ti.template = t AND (ti.required_role IS NULL OR r.role_id IS NOT NULL)
        ON CONFLICT DO NOTHING
        RETURNING item_roles.item_role_id, item_roles.module_id, item_roles.name
    )
    INSERT INTO fluent.item_role_actions (workspace_id, item_role_id, action_id)
    SELECT ws, c.item_role_id, a.action_id
      FROM created c
      JOIN fluent.modules md ON md.module_id = c.module_id
      JOIN fluent.template_item_roles ti ON ti.template = t AND ti.module = md.name AND ti.item_role = c.name
      JOIN fluent.actions a ON a.module_id = md.module_id AND a.name = ANY (ti.actions);

    INSERT INTO fluent.assignable_roles (workspace_id, role_id, assignable_role_id)
    SELECT ws, d.role_id, d.assignable_role_id FROM fluent._template_assignable(ws, t) d
    ON CONFLICT DO NOTHING;

    INSERT INTO fluent.template_applications (workspace_id, template) VALUES (ws, t);
END $$;
COMMENT ON FUNCTION @extschema@.fluent_apply_template(text) IS
    'Loads a template (fluent, fluid, cx) into the current workspace, adding only what is missing; never removes or changes existing roles';

-- The default permissions of every role based on a template, resolved to
-- the actions of the role's workspace.
CREATE VIEW fluent.template_defaults AS
SELECT r.role_id, a.action_id, tp.scope
  FROM fluent.roles r
  JOIN fluent.template_permissions tp ON tp.template = r.template AND tp.role = r.template_role
  JOIN fluent.modules md ON md.workspace_id = r.workspace_id AND md.name = tp.module
  JOIN fluent.actions a ON a.module_id = md.module_id AND a.name = tp.action;
COMMENT ON VIEW fluent.template_defaults IS
    'The template default of each role based on a template, per action of its workspace: what fluent_reset_role() restores';

-- Restores a role's permissions to its template's defaults.
CREATE FUNCTION fluent._reset_role(delegate text, role text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rid int := fluent._role_id(role);
    ws int := fluent._workspace_id();
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    before jsonb := fluent._role_scope_map(rid);
    holders jsonb := fluent._holders_scope_maps(delegate, rid);
    administered text[] := CASE WHEN delegate IS NOT NULL THEN fluent._administered_rights() END;
    assignable int[] := fluent._assignable_set(rid);
    listed boolean := fluent._lists_assignable();
BEGIN
    PERFORM fluent._may_touch_role(delegate, rid);
    PERFORM fluent._assignable_only(delegate, rid, 'reset');
    IF (SELECT r.template FROM fluent.roles r WHERE r.role_id = rid) IS NULL THEN
        RAISE EXCEPTION 'fluent role "%" is a custom role and has no template defaults to reset to', role
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only roles created by fluent_apply_template(), and their clones, can be reset.';
    END IF;
    DELETE FROM fluent.permissions p
     WHERE p.role_id = rid
       AND NOT EXISTS (SELECT 1 FROM fluent.template_defaults d
                        WHERE d.role_id = rid AND d.action_id = p.action_id AND d.scope = p.scope);
    INSERT INTO fluent.permissions (workspace_id, role_id, action_id, scope)
    SELECT ws, rid, d.action_id, d.scope FROM fluent.template_defaults d WHERE d.role_id = rid
    ON CONFLICT (role_id, action_id) DO NOTHING;
    -- The roles it may assign, among those of its template (and their
    -- clones): the template's list. Custom roles it lists stay listed.
    DELETE FROM fluent.assignable_roles a
     USING fluent.roles r, fluent.roles x
     WHERE a.role_id = rid AND r.role_id = rid AND x.role_id = a.assignable_role_id AND x.template = r.template
       AND NOT EXISTS (SELECT 1 FROM fluent._template_assignable(ws, r.template) d
                        WHERE d.role_id = rid AND d.assignable_role_id = a.assignable_role_id);
    INSERT INTO fluent.assignable_roles (workspace_id, role_id, assignable_role_id)
    SELECT ws, d.role_id, d.assignable_role_id
      FROM fluent.roles r, fluent._template_assignable(ws, r.template) d
     WHERE r.role_id = rid AND d.role_id = rid
    ON CONFLICT DO NOTHING;
    PERFORM fluent._assignable_within(delegate, rid, assignable);
    PERFORM fluent._still_lists_assignable(delegate, listed);
    PERFORM fluent._within_powers(delegate, powers, before, fluent._role_scope_map(rid), format('role "%s"', role));
    PERFORM fluent._holders_within_powers(delegate, powers, holders, rid, role);
    PERFORM fluent._still_administered(administered, delegate IS NULL);
END $$;
SELECT fluent._delegable('reset_role', 'manage_roles',
    'Restores a template role''s (or its clone''s) permissions to the template''s defaults');

-- A new role with the same permissions and flags as `source`. A clone of a
-- template role keeps that template as its baseline: it can be reset, and
-- fluent.role_template_diff shows how it departs from it.
CREATE FUNCTION fluent._clone_role(delegate text, source text, new_role text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    src int := fluent._role_id(source);
    ws int := fluent._workspace_id();
    powers jsonb := CASE WHEN delegate IS NOT NULL THEN fluent._user_scope_map(delegate) END;
    new_id int;
BEGIN
    -- The same checks as setting each flag and permission directly: a clone
    -- of a privileged role is privileged, a clone of a sign-in role lets its
    -- holders sign in.
    PERFORM fluent._may_touch_role(delegate, src);
    PERFORM fluent._assignable_only(delegate, src, 'clone');
    PERFORM fluent._privileged_only(delegate, (SELECT r.grants_sign_in FROM fluent.roles r WHERE r.role_id = src),
                                    format('create role "%s", which lets users sign in', new_role));
    INSERT INTO fluent.roles (workspace_id, name, description, template, template_role, privileged, grants_sign_in,
                              reporting_anchor)
    SELECT ws, fluent._name(new_role, 'role'), r.description, r.template, r.template_role, r.privileged, r.grants_sign_in,
           r.reporting_anchor
      FROM fluent.roles r WHERE r.role_id = src
    ON CONFLICT (workspace_id, name) DO NOTHING
    RETURNING role_id INTO new_id;
    IF new_id IS NULL THEN PERFORM fluent._duplicate('role', new_role); END IF;
    INSERT INTO fluent.permissions (workspace_id, role_id, action_id, scope)
    SELECT ws, new_id, p.action_id, p.scope FROM fluent.permissions p WHERE p.role_id = src;
    -- Its holders may assign what the source's may, and it is assignable
    -- wherever the source is (a role that lists itself lists its clone, and
    -- the clone lists itself).
    INSERT INTO fluent.assignable_roles (workspace_id, role_id, assignable_role_id)
    SELECT ws, new_id, a.assignable_role_id FROM fluent.assignable_roles a WHERE a.role_id = src
    UNION
    SELECT ws, a.role_id, new_id FROM fluent.assignable_roles a WHERE a.assignable_role_id = src
    UNION
    SELECT ws, new_id, new_id FROM fluent.assignable_roles a WHERE a.role_id = src AND a.assignable_role_id = src;
    PERFORM fluent._within_powers(delegate, powers, '{}', fluent._role_scope_map(new_id), format('role "%s"', new_role));
    PERFORM fluent._assignable_within(delegate, new_id, '{}');
END $$;
SELECT fluent._delegable('clone_role', 'manage_roles',
    'Creates a role with the permissions and flags of another');

-- Assignable roles (issue 19) ----------------------------------------------

-- Which template roles may assign which (see fluent.assignable_roles).
CREATE TABLE fluent.template_assignable_roles (
    template        text NOT NULL,
    role            text NOT NULL,
    assignable_role text NOT NULL,
    PRIMARY KEY (template, role, assignable_role),
    FOREIGN KEY (template, role) REFERENCES fluent.template_roles,
    FOREIGN KEY (template, assignable_role) REFERENCES fluent.template_roles
);
COMMENT ON TABLE fluent.template_assignable_roles IS
    'The roles a template role''s holders may assign as delegated administrators (see fluent.assignable_roles): what fluent_apply_template() lists and fluent_reset_role() restores';

-- Seed 000: the Owner has everything, the Admin most settings and user
-- management, and "Keep Owner/Admin roles limited": the Owner assigns every
-- role, the Admin every role but Owner, nobody else any. Seed 003: "only
-- users with the User Administrator role can set the roles on a user
-- account"; the timesheet administrator manages "the exempt user group and
-- timesheet admin user group". Seed 004: the Admin has full access.
INSERT INTO fluent.template_assignable_roles (template, role, assignable_role)
SELECT tr.template, a.role, tr.role
  FROM fluent.template_roles tr
  JOIN (VALUES ('fluent', 'owner'), ('fluent', 'admin'), ('fluid', 'user_administrator'), ('cx', 'admin')) a(template, role)
    ON a.template = tr.template
 WHERE NOT (tr.template = 'fluent' AND a.role = 'admin' AND tr.role = 'owner')
UNION ALL
SELECT 'fluid', 'timesheet_administrator', r FROM unnest('{timesheet_exempt,timesheet_administrator}'::text[]) r;

-- Seed 003: managing the two timesheet groups comes with the timesheet
-- settings, and needs neither of them held (no one is exempt to exempt
-- others); the list above keeps it to those two.
INSERT INTO fluent.template_admin_rights (template, admin_right, module, action, note) VALUES
    ('fluid', 'assign_roles',      'timesheet_settings', 'write', 'the timesheet administrator manages the exempt and timesheet administrator groups'),
    ('fluid', 'assign_beyond_own', 'timesheet_settings', 'write', 'exempts others without being exempt; fluent.assignable_roles bounds which roles');

-- Seed 000: what makes the Owner more than the Admin, "including billing +
-- security settings": the workspace's subscription (its plan and billing)
-- and its security settings, the Owner's alone.
INSERT INTO fluent.template_modules (template, module, actions, position) VALUES
    ('fluent', 'subscription',      '{read,write}', 16),
    ('fluent', 'security_settings', '{read,write}', 17);
INSERT INTO fluent.template_permissions (template, role, module, action, scope, note)
SELECT 'fluent', r.role, m.module, a.action, CASE WHEN r.role = 'owner' THEN 'all' ELSE 'none' END::fluent.scope,
       CASE WHEN r.role = 'owner' THEN 'seed 000: the Owner has "everything, including billing + security settings"'
            WHEN r.role = 'admin' THEN 'seed 000: owner-only; the Admin has "most settings"' END
  FROM fluent.template_roles r, fluent.template_modules m, unnest(m.actions) a(action)
 WHERE r.template = 'fluent' AND m.template = 'fluent' AND m.module IN ('subscription', 'security_settings');

-- A template's list resolved in workspace ws: for each role based on the
-- template (clones included), the roles based on the template it may assign.
CREATE FUNCTION fluent._template_assignable(ws int, p_template text)
RETURNS TABLE (role_id int, assignable_role_id int)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT r.role_id, x.role_id
      FROM fluent.template_assignable_roles ta
      JOIN fluent.roles r ON r.workspace_id = ws AND r.template = ta.template AND r.template_role = ta.role
      JOIN fluent.roles x ON x.workspace_id = ws AND x.template = ta.template AND x.template_role = ta.assignable_role
     WHERE ta.template = p_template;
END;

SET LOCAL search_path TO @extschema@, pg_temp;
