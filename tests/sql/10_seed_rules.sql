-- The seeds' rules beyond one action per command.
BEGIN;
SET search_path = public, test_helpers;
SET client_min_messages = warning;

-- Commands mapped to actions (seed 001: "Create appointments" is not "Edit/
-- cancel appointments"): fluent_protect takes the action that governs each
-- command; here INSERT is create, and DELETE (cancel) is write.
SELECT fluent_create_module('bookings', '{read,create,write}');
SELECT fluent_create_role('booker'), fluent_set_permission('booker', 'bookings', 'read', 'all'),
       fluent_set_permission('booker', 'bookings', 'create', 'all');
SELECT fluent_create_role('editor'), fluent_set_permission('editor', 'bookings', 'read', 'all'),
       fluent_set_permission('editor', 'bookings', 'write', 'all');
SELECT fluent_create_user('bea'), fluent_grant_role('bea', 'booker'), fluent_create_user('ed'), fluent_grant_role('ed', 'editor');
CREATE TABLE bookings (id int PRIMARY KEY, owner text, client text);
INSERT INTO bookings VALUES (1, 'bea', 'first');
GRANT SELECT, INSERT, UPDATE, DELETE ON bookings TO app;
SET client_min_messages = notice;
SELECT fluent_protect('bookings', 'bookings', 'owner', insert_action => 'create', delete_action => 'write');
SET client_min_messages = warning;
SELECT select_action, insert_action, update_action, delete_action FROM fluent.protected_tables WHERE table_name = 'bookings'::regclass;
SELECT polname, pg_get_expr(polwithcheck, polrelid) LIKE '%''create''%' AS checks_create
  FROM pg_policy WHERE polrelid = 'bookings'::regclass AND polname = 'fluent_insert';
SET ROLE app;
SELECT act_as('bea');
SELECT try($$INSERT INTO bookings VALUES (2, 'bea', 'booked by bea')$$) AS booker_inserts;
SELECT try($$UPDATE bookings SET client = 'changed' WHERE id = 1$$) AS booker_updates;
SELECT client AS after_booker_update FROM bookings WHERE id = 1;
SELECT act_as('ed');
SELECT try($$INSERT INTO bookings VALUES (3, 'ed', 'booked by ed')$$) AS editor_inserts;
SELECT try($$UPDATE bookings SET client = 'edited' WHERE id = 1$$) AS editor_updates;
SELECT client AS after_editor_update FROM bookings WHERE id = 1;
SELECT try($$DELETE FROM bookings WHERE id = 2$$) AS editor_cancels;
SELECT count(*) AS bookings_left FROM bookings;
SELECT act_as(NULL);
RESET ROLE;
-- An action the module does not have is named in a warning, and denies.
SET client_min_messages = notice;
CREATE TABLE bookings2 (id int PRIMARY KEY, owner text);
SELECT fluent_protect('bookings2', 'bookings', 'owner', insert_action => 'make');
SET client_min_messages = warning;
CREATE TABLE bookings3 (id int PRIMARY KEY, owner text);
SELECT try($$SELECT fluent_protect('bookings3', 'bookings', 'owner', insert_action => NULL)$$) AS null_action;

-- Reporting lines (seed 003): the accountable executive is the nearest one
-- above in the reporting line.
SELECT fluent_create_workspace('lines'), fluent_set_workspace('lines'), fluent_apply_template('fluid');
SELECT fluent_create_user('exec'), fluent_create_user('mgr', manager => 'exec'), fluent_create_user('res', manager => 'mgr'),
       fluent_create_user('solo');
SELECT fluent_grant_role(u, 'user') FROM unnest('{exec,mgr,res,solo}'::text[]) u;
SELECT fluent_grant_role('exec', 'accountable_executive');
SELECT user_key, manager, depth, reporting_anchor FROM fluent.reporting_lines WHERE workspace = 'lines' ORDER BY user_key;
-- A DBA designates another anchor role.
SELECT fluent_alter_role('team_manager', reporting_anchor => true), fluent_grant_role('mgr', 'team_manager');
SELECT user_key, reporting_anchor FROM fluent.reporting_lines WHERE workspace = 'lines' ORDER BY user_key;

-- Access roles gate modules (seeds 002/003): Project Viewer reads every
-- project, but without Project Access the Projects module is closed.
SELECT fluent_create_user('vera'), fluent_grant_role('vera', 'user'), fluent_grant_role('vera', 'project_viewer');
SELECT fluent_scope('vera', 'projects', 'read') AS viewer_alone;
SELECT source, scope FROM fluent.effective_permissions
 WHERE workspace = 'lines' AND user_key = 'vera' AND module = 'projects' AND action = 'read';
SELECT step, fact, subject, scope, detail FROM fluent_explain('vera', 'projects', 'read') WHERE fact IN ('requirement', 'result');
SELECT fluent_grant_role('vera', 'project_access');
SELECT fluent_scope('vera', 'projects', 'read') AS with_project_access, fluent_scope('vera', 'financials', 'read') AS financials;
-- The sections open with it too; a DBA can gate any module.
SELECT fluent_clear_requirement('financials');
SELECT fluent_set_requirement('financials', 'projects', 'access', action => 'write');
SELECT module, action, required FROM (
    SELECT m.name AS module, a.name AS action, rm.name || '.' || ra.name AS required
      FROM fluent.requirements q JOIN fluent.modules m ON m.module_id = q.module_id
      LEFT JOIN fluent.actions a ON a.action_id = q.action_id
      JOIN fluent.actions ra ON ra.action_id = q.required_action_id JOIN fluent.modules rm ON rm.module_id = ra.module_id
     WHERE q.workspace_id = (SELECT workspace_id FROM fluent.workspaces WHERE name = 'lines')) x
 ORDER BY 1, 2;

-- Direct reports (seed 003): team managers manage and approve their direct
-- reports' timesheets; accountable executives report on the whole line.
SELECT fluent_grant_role('exec', 'team_manager');
CREATE TABLE timesheets (id int PRIMARY KEY, owner text, ws text);
CREATE TABLE forecasts (id int PRIMARY KEY, owner text, ws text);
INSERT INTO timesheets VALUES (1, 'exec', 'lines'), (2, 'mgr', 'lines'), (3, 'res', 'lines'), (4, 'solo', 'lines');
INSERT INTO forecasts SELECT * FROM timesheets;
GRANT SELECT ON timesheets, forecasts TO app;
SELECT fluent_protect('timesheets', 'timesheets', 'owner', workspace_column => 'ws'),
       fluent_protect('forecasts', 'executive_reporting', 'owner', workspace_column => 'ws');
SET ROLE app;
SELECT act_as('exec');
SELECT fluent_scope('timesheets', 'approve') AS approves, fluent_scope('executive_reporting', 'read') AS reports;
SELECT string_agg(owner, ', ' ORDER BY id) AS timesheets_exec_reads FROM timesheets;
SELECT string_agg(owner, ', ' ORDER BY id) AS forecasts_exec_reads FROM forecasts;
-- Compiled like team: the keys in one InitPlan, no per-row function call.
EXPLAIN (COSTS OFF) SELECT * FROM timesheets;
SELECT act_as(NULL);
RESET ROLE;
SELECT fluent_set_workspace('default');
ROLLBACK;
