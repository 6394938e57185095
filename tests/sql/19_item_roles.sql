-- Item roles (seeds 002/003): roles held on one project, board or meeting
-- through the application's assignment table, to a user or to a team; a
-- project's tasks and financials reached through the project; conditions
-- on who may be named; and what an adversary tries with them.
BEGIN;
SET search_path = public, test_helpers;
SET client_min_messages = warning;
SELECT fluent_create_workspace('portfolio'), fluent_set_workspace('portfolio'), fluent_apply_template('fluid');
-- The template's item roles, and what each gives (fluent.item_role_matrix,
-- as a reporting tool reads it).
SET ROLE app;
SELECT module, item_role, string_agg(action, ',' ORDER BY action) AS actions, required_role
  FROM fluent.item_role_matrix WHERE workspace = 'portfolio' GROUP BY 1, 2, 4 ORDER BY 1, 2;
RESET ROLE;

-- pamela manages project 1, edwin edits it, verity views it; the design team
-- (tessa) views project 2 and takes part in board 1; avery is an accountable
-- executive, ottilie is not; finley has financials access and edits project 1;
-- norah has no Project Access; petronella views every project; samson may submit.
SELECT fluent_create_user(u) FROM unnest('{pamela,edwin,verity,tessa,avery,ottilie,finley,norah,petronella,samson,owain}'::text[]) u;
SELECT fluent_grant_role(u, 'user') FROM unnest('{pamela,edwin,verity,tessa,avery,ottilie,finley,norah,petronella,samson,owain}'::text[]) u;
SELECT fluent_grant_role(u, 'project_access') FROM unnest('{pamela,edwin,verity,tessa,avery,ottilie,finley,petronella,samson,owain}'::text[]) u;
SELECT fluent_grant_role('avery', 'accountable_executive'), fluent_grant_role('finley', 'financials_access'),
       fluent_grant_role('petronella', 'project_viewer'), fluent_grant_role('samson', 'project_submission');
SELECT fluent_create_team('design'), fluent_add_team_member('design', 'tessa');

CREATE SCHEMA items19;
SET search_path = items19, public, test_helpers;
CREATE TABLE projects (id int PRIMARY KEY, ws text NOT NULL, owner text, name text);
CREATE TABLE project_roles (project_id int NOT NULL REFERENCES projects ON DELETE CASCADE, user_key text, team text,
                            role text NOT NULL);
CREATE INDEX ON project_roles (user_key);
CREATE INDEX ON project_roles (team);
CREATE TABLE tasks (id int PRIMARY KEY, ws text NOT NULL, project_id int NOT NULL REFERENCES projects ON DELETE CASCADE, owner text,
                    title text);
CREATE INDEX ON tasks (project_id);
CREATE TABLE project_financials (id int PRIMARY KEY, ws text NOT NULL, project_id int NOT NULL REFERENCES projects, amount int);
CREATE INDEX ON project_financials (project_id);
CREATE TABLE boards (id int PRIMARY KEY, ws text NOT NULL, owner text, name text);
CREATE TABLE board_members (board_id int NOT NULL REFERENCES boards ON DELETE CASCADE, user_key text, team text,
                            role text NOT NULL);
CREATE INDEX ON board_members (user_key);
CREATE INDEX ON board_members (team);
INSERT INTO projects VALUES (1, 'portfolio', 'owain', 'Bridge'), (2, 'portfolio', 'owain', 'Tunnel'),
                            (3, 'portfolio', 'owain', 'Dam'), (4, 'elsewhere', 'owain', 'Other');
INSERT INTO tasks SELECT g, 'portfolio', g % 3 + 1, 'owain', 'task ' || g FROM generate_series(1, 9) g;
INSERT INTO project_financials VALUES (1, 'portfolio', 1, 100), (2, 'portfolio', 2, 200);
INSERT INTO boards VALUES (1, 'portfolio', 'owain', 'Roadmap'), (2, 'portfolio', 'owain', 'Hiring');
SELECT fluent_protect('projects', 'projects', 'owner', membership_table => 'project_roles',
                      membership_row_column => 'project_id', membership_user_column => 'user_key',
                      membership_role_column => 'role', membership_team_column => 'team',
                      workspace_column => 'ws', insert_action => 'create');
SELECT fluent_protect('tasks', 'projects', 'owner', parent_table => 'projects', parent_column => 'project_id',
                      workspace_column => 'ws');
SELECT fluent_protect('project_financials', 'financials', parent_table => 'projects', parent_column => 'project_id',
                      workspace_column => 'ws');
SELECT fluent_protect('boards', 'boards', 'owner', membership_table => 'board_members',
                      membership_row_column => 'board_id', membership_user_column => 'user_key',
                      membership_role_column => 'role', membership_team_column => 'team', workspace_column => 'ws');
GRANT USAGE ON SCHEMA items19 TO app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA items19 TO app;
-- Assignments are written by whoever's scope reaches the item, with item
-- roles whose every action that scope gives: owain owns the projects, at
-- scope own on read and write but not delete, so he names editors and
-- viewers, and a DBA names the manager.
INSERT INTO project_roles VALUES (1, 'pamela', NULL, 'manager');
SELECT act_as('owain');
SET ROLE app;
INSERT INTO project_roles VALUES (1, 'edwin', NULL, 'editor'), (1, 'verity', NULL, 'viewer'),
                                 (2, NULL, 'design', 'viewer'), (1, 'finley', NULL, 'editor'), (1, 'norah', NULL, 'viewer');
SELECT try($$INSERT INTO project_roles VALUES (3, 'pamela', NULL, 'manager')$$) AS owner_names_manager;
INSERT INTO board_members VALUES (1, NULL, 'design', 'member');
RESET ROLE;

-- Seed 002: "without Project Viewer access a person would need to be
-- assigned a role on a project": each sees exactly their projects, the
-- tasks under them, and, with Financials Access, their financials.
CREATE FUNCTION pg_temp.sees(u text) RETURNS TABLE (projects text, tasks text, financials text, boards text)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM act_as(u);
    SET LOCAL ROLE app;
    RETURN QUERY SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM projects),
                        (SELECT string_agg(id::text, ',' ORDER BY id) FROM tasks),
                        (SELECT string_agg(id::text, ',' ORDER BY id) FROM project_financials),
                        (SELECT string_agg(id::text, ',' ORDER BY id) FROM boards);
    RESET ROLE;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.sees(text) TO app;
SELECT u, s.* FROM unnest('{pamela,edwin,verity,tessa,finley,norah,petronella,ottilie,owain}'::text[]) u, pg_temp.sees(u) s;

-- Editors and managers change their project and its tasks; viewers only read.
SELECT act_as('edwin');
SET ROLE app;
UPDATE projects SET name = 'Bridge 2' WHERE id IN (1, 2, 3) RETURNING id;
UPDATE tasks SET title = 'edited' WHERE true RETURNING id;
SELECT try($$DELETE FROM projects WHERE id = 1$$) AS editor_deletes, (SELECT count(*) FROM projects) AS still;
-- A task stays under a project the editor edits; a new task too.
SELECT try($$UPDATE tasks SET project_id = 2 WHERE id = 3$$) AS move_to_viewed;
SELECT try($$INSERT INTO tasks VALUES (20, 'portfolio', 2, 'edwin', 'sneaked')$$) AS own_task_in_unseen_project;
INSERT INTO tasks VALUES (21, 'portfolio', 1, 'edwin', 'new') RETURNING id;
-- An item role gives the item's data, not the item: no taking it over,
-- nor its tasks, nor handing out item roles on it.
SELECT try($$UPDATE projects SET owner = 'edwin' WHERE id = 1$$) AS editor_takes_project;
SELECT try($$UPDATE tasks SET owner = 'edwin' WHERE id = 3$$) AS editor_takes_task;
SELECT try($$INSERT INTO project_roles VALUES (1, 'edwin', NULL, 'manager')$$) AS editor_assigns_herself;
SELECT try($$UPDATE project_roles SET role = 'manager' WHERE user_key = 'edwin'$$) AS editor_promotes_herself,
       (SELECT role FROM project_roles WHERE user_key = 'edwin') AS still_editor;
RESET ROLE;
SELECT act_as('verity');
SET ROLE app;
UPDATE projects SET name = 'viewer was here' RETURNING id;
UPDATE tasks SET title = 'viewer was here' RETURNING id;
RESET ROLE;
SELECT act_as('pamela');
SET ROLE app;
DELETE FROM tasks WHERE id = 21 RETURNING id;
RESET ROLE;
-- A team member adds herself as editor through her team? No scope, no write.
SELECT act_as('tessa');
SET ROLE app;
SELECT try($$INSERT INTO project_roles VALUES (2, NULL, 'design', 'editor')$$) AS team_promotes_itself;
RESET ROLE;

-- A viewer adds no task to the project she views, even one of her own; an
-- editor adds none owned by someone else; and another trigger of the
-- table's owner rewriting the owner behind the write is seen: the checks
-- run after it, on the row as written.
SELECT act_as('verity');
SET ROLE app;
SELECT try($$INSERT INTO tasks VALUES (30, 'portfolio', 1, 'verity', 'mine')$$) AS viewer_adds_task;
RESET ROLE;
SELECT act_as('edwin');
SET ROLE app;
SELECT try($$INSERT INTO tasks VALUES (31, 'portfolio', 1, 'owain', 'planted')$$) AS editor_plants_task;
INSERT INTO tasks VALUES (32, 'portfolio', 1, NULL, 'nobody''s') RETURNING id;
RESET ROLE;
CREATE FUNCTION items19.owner_from_name() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN NEW.owner := coalesce(substring(NEW.name FROM '^!(.*)$'), NEW.owner); RETURN NEW; END$$;
CREATE TRIGGER app_touch BEFORE UPDATE ON projects FOR EACH ROW EXECUTE FUNCTION items19.owner_from_name();
SELECT act_as('edwin');
SET ROLE app;
SELECT try($$UPDATE projects SET name = '!edwin' WHERE id = 1$$) AS owner_rewritten_by_a_trigger;
RESET ROLE;
DROP TRIGGER app_touch ON projects;

-- A deleted item takes its assignments along (the foreign key fluent_protect
-- requires): its key, taken again, gives nothing to those assigned before.
DELETE FROM projects WHERE id = 3;
SELECT count(*) AS assignments_left FROM project_roles WHERE project_id = 3;
INSERT INTO projects VALUES (3, 'portfolio', 'owain', 'Dam II');
SELECT u, s.projects FROM unnest('{avery}'::text[]) u, pg_temp.sees(u) s;

-- A delegated User Administrator (manage_users) opens no item roles she
-- does not hold herself: activating a user the application has assigned,
-- or adding a member to a team it has assigned; elsewhere she may.
SELECT fluent_create_user('ursula'), fluent_grant_role('ursula', 'user'), fluent_grant_role('ursula', 'user_administrator');
SELECT fluent_create_user('gustav'), fluent_grant_role('gustav', 'user'), fluent_grant_role('gustav', 'project_access');
INSERT INTO project_roles VALUES (1, 'gustav', NULL, 'editor');
SELECT fluent_set_user_status('gustav', 'disabled');
SELECT fluent_create_team('idle');
-- hugo, assigned editor, lacks Project Access: a grant of it would open his
-- item role, as would an override; a grant that opens none is hers to give.
SELECT fluent_create_user('hugo'), fluent_grant_role('hugo', 'user');
INSERT INTO project_roles VALUES (1, 'hugo', NULL, 'editor');
SELECT act_as('ursula');
SET ROLE app;
SELECT try($$SELECT fluent_set_user_status('gustav', 'active')$$) AS ursula_activates_gustav,
       try($$SELECT fluent_add_team_member('design', 'ottilie')$$) AS ursula_adds_to_design,
       try($$SELECT fluent_add_team_member('idle', 'ottilie')$$) AS ursula_adds_to_idle;
SELECT try($$SELECT fluent_grant_role('hugo', 'project_access')$$) AS ursula_grants_access,
       try($$SELECT fluent_set_override('hugo', 'projects', 'access', 'own')$$) AS ursula_overrides_access,
       try($$SELECT fluent_grant_role('hugo', 'timesheet_exempt')$$) AS ursula_grants_exempt;
-- ... nor by an override that opens them when it lapses, nor by opening a
-- child table's module (edwin edits project 1; Financials Access would open
-- its financials to him), nor by turning a disabled user into an invitee
-- whose invitation the application then accepts.
RESET ROLE;
SELECT fluent_set_override('hugo', 'projects', 'access', 'own'), fluent_set_override('finley', 'projects', 'access', 'none');
SELECT act_as('ursula');
SET ROLE app;
SELECT try($$SELECT fluent_set_override('finley', 'projects', 'access', 'none', now() + interval '1 hour')$$) AS lapsing_deny,
       try($$SELECT fluent_grant_role('edwin', 'financials_access')$$) AS child_module_opened,
       try($$SELECT fluent_set_user_status('gustav', 'invited')$$) AS disabled_made_invitee;
RESET ROLE;
SELECT fluent_clear_override('hugo', 'projects', 'access'), fluent_clear_override('finley', 'projects', 'access');
SELECT act_as(NULL);

-- Seed 002: the Data Administrator's "bulk download, edit and upload of
-- project information and financials" and the Financial Administrator's
-- "portfolio financial data": every project and its financials, without
-- an item role; the Financial Administrator edits no project.
SELECT fluent_create_user(u), fluent_grant_role(u, 'user') FROM unnest('{dara,fiona}'::text[]) u;
SELECT fluent_grant_role('dara', 'data_administrator'), fluent_grant_role('fiona', 'financial_administrator');
SELECT u, s.projects, s.financials FROM unnest('{dara,fiona}'::text[]) u, pg_temp.sees(u) s;
SELECT act_as('dara');
SET ROLE app;
UPDATE projects SET name = name || ' (checked)' WHERE id = 3 RETURNING id;
UPDATE project_financials SET amount = amount + 1 RETURNING id;
RESET ROLE;
SELECT act_as('fiona');
SET ROLE app;
UPDATE projects SET name = 'fiona was here' RETURNING id;
UPDATE project_financials SET amount = amount + 1 RETURNING id;
RESET ROLE;

-- Seed 002: "only users with submission access can create new projects".
SELECT act_as('samson');
SET ROLE app;
INSERT INTO projects VALUES (5, 'portfolio', 'samson', 'Port') RETURNING id;
RESET ROLE;
SELECT act_as('pamela');
SET ROLE app;
SELECT try($$INSERT INTO projects VALUES (6, 'portfolio', 'pamela', 'Canal')$$) AS manager_creates;
RESET ROLE;

-- Seed 002: "a person has to have the accountable executive role to be
-- named as an accountable executive on a project"; never through a team.
SELECT try($$INSERT INTO project_roles VALUES (3, 'ottilie', NULL, 'accountable_executive')$$) AS otto_named;
SELECT try($$INSERT INTO project_roles VALUES (3, NULL, 'design', 'accountable_executive')$$) AS team_named;
INSERT INTO project_roles VALUES (3, 'avery', NULL, 'accountable_executive');
SELECT try($$INSERT INTO project_roles VALUES (3, 'avery', NULL, 'chief')$$) AS unknown_item_role,
       try($$INSERT INTO project_roles VALUES (3, 'ghosted', NULL, 'viewer')$$) AS unknown_user,
       try($$INSERT INTO project_roles VALUES (3, NULL, 'nosuchteam', 'viewer')$$) AS unknown_team,
       try($$INSERT INTO project_roles VALUES (3, 'avery', 'design', 'viewer')$$) AS user_and_team;
SELECT u, s.projects FROM unnest('{avery}'::text[]) u, pg_temp.sees(u) s;
-- ... and holds it only while she holds the role.
SELECT fluent_revoke_role('avery', 'accountable_executive');
SELECT u, s.projects FROM unnest('{avery}'::text[]) u, pg_temp.sees(u) s;
SELECT fluent_grant_role('avery', 'accountable_executive');

-- Gates close item roles too: a disabled module, a missing requirement, a
-- disabled account.
SELECT fluent_set_module_enabled('projects', false);
SELECT u, s.* FROM unnest('{pamela,tessa}'::text[]) u, pg_temp.sees(u) s;
SELECT fluent_set_module_enabled('projects', true);
SELECT fluent_revoke_role('pamela', 'project_access');
SELECT u, s.* FROM unnest('{pamela}'::text[]) u, pg_temp.sees(u) s;
SELECT fluent_grant_role('pamela', 'project_access');
SELECT fluent_set_user_status('edwin', 'disabled');
SELECT try($$SELECT act_as('edwin')$$) AS disabled_acts;
SELECT fluent_set_user_status('edwin', 'active');

-- A team's assignments follow its members.
SELECT fluent_remove_team_member('design', 'tessa');
SELECT u, s.* FROM unnest('{tessa}'::text[]) u, pg_temp.sees(u) s;
SELECT fluent_add_team_member('design', 'tessa');

-- The plans: no per-row call; the user, teams and item roles folded in.
SELECT act_as('tessa');
SET ROLE app;
EXPLAIN (COSTS OFF) SELECT * FROM tasks;
EXPLAIN (COSTS OFF) SELECT * FROM projects WHERE id = 2;
RESET ROLE;

-- Who may edit project 1 and task 1 (a task of project 2), and why.
SELECT * FROM fluent_who_can('projects', '1', 'write') ORDER BY user_key;
SELECT * FROM fluent_who_can('tasks', '1', 'read') ORDER BY user_key;
SELECT * FROM fluent_who_can('project_financials', '1', 'read') ORDER BY user_key;
-- fluent_explain names the item roles, and whether they count.
SELECT fact, subject, detail FROM fluent_explain('edwin', 'projects', 'write') WHERE fact IN ('item roles', 'result');
SELECT fact, subject, detail FROM fluent_explain('norah', 'projects', 'read') WHERE fact IN ('item roles', 'result');

-- The audit trail records assignments given and taken back, with whom the
-- writer acted for, in the workspace they were written in.
SELECT act_as('owain');
SET ROLE app;
DELETE FROM project_roles WHERE user_key = 'norah' RETURNING project_id;
RESET ROLE;
SELECT act_as(NULL);
SELECT operation, db_role, acting_user, coalesce(after, before) ->> 'user_key' AS user_key,
       coalesce(after, before) ->> 'team' AS team, coalesce(after, before) ->> 'role' AS item_role
  FROM fluent.audit_log
 WHERE table_name = 'items19.project_roles'
   AND workspace_id = (SELECT workspace_id FROM fluent.workspaces WHERE name = 'portfolio')
 ORDER BY audit_id;

-- Drift: the assignment check, the owner check and the foreign keys are watched.
ALTER TABLE project_roles DISABLE TRIGGER fluent_item_role_conditions;
DROP TRIGGER fluent_item_owner ON tasks;
ALTER TABLE project_financials DROP CONSTRAINT project_financials_project_id_fkey;
-- (whatever the session's standard_conforming_strings: the checks read
-- triggers with it on)
SET LOCAL standard_conforming_strings = off;
SELECT relation, problem FROM fluent_protection_problems() WHERE problem LIKE 'item %' ORDER BY relation::text, problem;
RESET standard_conforming_strings;
ALTER TABLE project_roles ENABLE TRIGGER fluent_item_role_conditions;

-- Mistakes are refused whole.
SELECT try($$SELECT fluent_create_item_role('projects', 'editor', '{read}')$$) AS duplicate,
       try($$SELECT fluent_create_item_role('projects', 'x', '{}')$$) AS no_action,
       try($$SELECT fluent_create_item_role('projects', 'x', '{fly}')$$) AS unknown_action,
       try($$SELECT fluent_create_item_role('projects', 'x', '{read}', 'user', 'projects', 'read')$$) AS two_conditions;
CREATE TABLE loose (id int PRIMARY KEY, project_id int);
CREATE TABLE loose_members (loose_id int, user_key text, team text, role text);
CREATE TABLE loose_ids (loose_id int, user_id int, role text);
SELECT try($$SELECT fluent_protect('loose', 'boards', membership_table => 'loose_members', membership_row_column => 'loose_id',
                                   membership_user_column => 'user_key', membership_role_column => 'role')$$) AS no_foreign_key,
       try($$SELECT fluent_protect('loose', 'boards', membership_table => 'loose_ids', membership_row_column => 'loose_id',
                                   membership_user_column => 'user_id', membership_role_column => 'role')$$) AS integer_users;
SELECT try($$SELECT fluent_protect('loose', 'boards', membership_table => 'loose_members', membership_row_column => 'loose_id',
                                   membership_user_column => 'user_key', membership_team_column => 'team')$$) AS team_without_role,
       try($$SELECT fluent_unprotect('projects')$$) AS parent_with_children;
SELECT try($$SELECT fluent_protect('loose', 'projects', parent_table => 'projects', parent_column => 'project_id')$$)
       AS child_without_workspace,
       try($$SELECT fluent_protect('loose', 'projects', parent_table => 'boards_missing', parent_column => 'project_id')$$)
       AS unknown_parent;
-- Item tables and their children stand alone: a row moved to another
-- partition would escape its update's checks, and keys do not span
-- inheritance children; an assignment table's children are its partitions
-- (they share its foreign key), and its foreign key keeps a changed key's
-- rows (not SET NULL or SET DEFAULT).
CREATE TABLE parted (id int PRIMARY KEY, ws text NOT NULL) PARTITION BY RANGE (id);
CREATE TABLE parted_roles (parted_id int REFERENCES parted ON DELETE CASCADE, user_key text, role text);
SELECT try($$SELECT fluent_protect('parted', 'projects', membership_table => 'parted_roles', membership_row_column => 'parted_id',
                                   membership_user_column => 'user_key', membership_role_column => 'role',
                                   workspace_column => 'ws')$$) AS partitioned_items;
SELECT try($$CREATE TABLE projects_archive () INHERITS (projects)$$) AS child_of_items,
       try($$CREATE TABLE tasks_archive () INHERITS (tasks)$$) AS child_of_children,
       try($$CREATE TABLE project_roles_more () INHERITS (project_roles)$$) AS child_of_assignments;
CREATE TABLE rekeyed (id int PRIMARY KEY, ws text NOT NULL);
CREATE TABLE rekeyed_roles (rekeyed_id int DEFAULT 1 REFERENCES rekeyed ON DELETE CASCADE ON UPDATE SET DEFAULT,
                            user_key text, role text);
SELECT try($$SELECT fluent_protect('rekeyed', 'projects', membership_table => 'rekeyed_roles', membership_row_column => 'rekeyed_id',
                                   membership_user_column => 'user_key', membership_role_column => 'role',
                                   workspace_column => 'ws')$$) AS key_change_moves_assignments;

-- Foreign tables join neither (row-level security and the checks are not theirs).
CREATE FOREIGN DATA WRAPPER items19_fdw;
CREATE SERVER items19_server FOREIGN DATA WRAPPER items19_fdw;
SELECT try($$CREATE FOREIGN TABLE projects_remote () INHERITS (projects) SERVER items19_server$$) AS foreign_items,
       try($$CREATE FOREIGN TABLE project_roles_remote () INHERITS (project_roles) SERVER items19_server$$) AS foreign_assignments;

-- An assignment table's partitions join it empty: a full table's rows were
-- never checked.
CREATE TABLE ledger (id int PRIMARY KEY, ws text NOT NULL);
CREATE TABLE ledger_roles (ledger_id int NOT NULL REFERENCES ledger ON DELETE CASCADE, user_key text, role text NOT NULL)
    PARTITION BY LIST (role);
CREATE TABLE ledger_viewers PARTITION OF ledger_roles FOR VALUES IN ('viewer');
SELECT fluent_protect('ledger', 'projects', membership_table => 'ledger_roles', membership_row_column => 'ledger_id',
                      membership_user_column => 'user_key', membership_role_column => 'role', workspace_column => 'ws');
INSERT INTO ledger VALUES (1, 'portfolio');
CREATE TABLE ledger_full (LIKE ledger_roles);
INSERT INTO ledger_full VALUES (1, 'nobody-checked', 'manager');
SELECT try($$ALTER TABLE ledger_roles ATTACH PARTITION ledger_full FOR VALUES IN ('manager')$$) AS attach_full;
CREATE TABLE ledger_editors (LIKE ledger_roles);
ALTER TABLE ledger_roles ATTACH PARTITION ledger_editors FOR VALUES IN ('editor');
SELECT relation, problem FROM fluent_protection_problems() WHERE table_name = 'ledger'::regclass ORDER BY 1::text, 2;

-- A TRUNCATE of assignments (which row security does not see) is in the
-- audit trail.
TRUNCATE board_members;
SELECT operation, db_role, table_name FROM fluent.audit_log WHERE table_name = 'items19.board_members' AND operation = 'TRUNCATE';

-- Applying a template leaves an item role the workspace has as it is.
SELECT fluent_create_workspace('mine'), fluent_set_workspace('mine');
SELECT fluent_create_module('projects', '{read,write,delete}');
SELECT fluent_create_item_role('projects', 'manager', '{read}');
SET client_min_messages = notice;
SELECT fluent_apply_template('fluid');
SET client_min_messages = warning;
SELECT item_role, string_agg(action, ',' ORDER BY action) AS actions, required_role
  FROM fluent.item_role_matrix WHERE workspace = 'mine' AND module = 'projects' GROUP BY 1, 3 ORDER BY 1;
ROLLBACK;
