-- What an installation holds when it is updated: the three templates in
-- their workspaces, users with managers, grants (one temporary), overrides,
-- teams, reviews, a gate, a clone, protected tables with an owner column, a
-- membership table, a workspace column and column limits, and the audit
-- history all of this wrote. Uses only what the oldest released version has.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'upgrade_app') THEN CREATE ROLE upgrade_app NOLOGIN; END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'upgrade_owner') THEN CREATE ROLE upgrade_owner NOLOGIN; END IF;
END $$;
GRANT fluent_reader TO upgrade_app;

SELECT fluent_apply_template('fluent');
SELECT fluent_create_workspace('pmo'), fluent_set_workspace('pmo'), fluent_apply_template('fluid');
SELECT fluent_create_user(u) FROM unnest('{pat,quinn,rae}'::text[]) u;
SELECT fluent_set_manager('rae', 'quinn');
SELECT fluent_grant_role(u, 'user') FROM unnest('{pat,quinn,rae}'::text[]) u;
SELECT fluent_grant_role('pat', 'user_administrator'), fluent_grant_role('quinn', 'team_manager'),
       fluent_grant_role('rae', 'project_access');
SELECT fluent_create_workspace('desk'), fluent_set_workspace('desk'), fluent_apply_template('cx');
SELECT fluent_create_user('dana'), fluent_grant_role('dana', 'agent');
SELECT fluent_set_workspace('default');

SELECT fluent_create_user('olivia', 'Olivia'), fluent_create_user('sam', 'Sam'), fluent_create_user('bea', 'Bea'),
       fluent_create_user('vic', 'Vic'), fluent_create_user('leo', 'Leo'), fluent_create_user('ann', 'Ann', manager => 'leo'),
       fluent_create_user('gus', status => 'ghost');
SELECT fluent_grant_role('olivia', 'owner'), fluent_grant_role('sam', 'scheduler'), fluent_grant_role('bea', 'billing'),
       fluent_grant_role('vic', 'viewer'), fluent_grant_role('ann', 'scheduler');
SELECT fluent_grant_role('leo', 'compliance', until => '2100-01-01 00:00:00+00');
SELECT fluent_set_override('vic', 'exports', 'run', 'all'), fluent_set_override('bea', 'invoices', 'write', 'own');
SELECT fluent_create_team('desk'), fluent_add_team_member('desk', 'leo', true), fluent_add_team_member('desk', 'ann');
SELECT fluent_clone_role('scheduler', 'senior_scheduler'),
       fluent_set_permission('senior_scheduler', 'interpreters', 'write_profile', 'all');
SELECT fluent_set_module_enabled('integrations', false);
SELECT fluent_mark_reviewed('sam');
-- An interpreter reads only the appointments they own or are assigned to.
SELECT fluent_create_role('interpreter'), fluent_set_permission('interpreter', 'appointments', 'read', 'own');
SELECT fluent_create_user('ian'), fluent_grant_role('ian', 'interpreter');

CREATE TABLE appointments (id int PRIMARY KEY, owner text, client text);
CREATE TABLE appointment_interpreters (appointment_id int, interpreter text);
CREATE INDEX ON appointment_interpreters (interpreter);
CREATE TABLE invoices (id int PRIMARY KEY, owner text, ws text, amount numeric);
CREATE TABLE interpreters (id int PRIMARY KEY, manager text, name text, email text, hourly_rate numeric);
INSERT INTO appointments SELECT g, (ARRAY['sam','ann','olivia'])[1 + g % 3], 'client ' || g FROM generate_series(1, 9) g;
INSERT INTO appointment_interpreters VALUES (1, 'ann'), (2, 'vic'), (3, 'ian'), (5, 'ian');
INSERT INTO invoices VALUES (1, 'bea', 'default', 10), (2, 'olivia', 'default', 20), (3, 'bea', 'pmo', 30);
INSERT INTO interpreters VALUES (1, 'bea', 'Ana', 'ana@example.org', 40), (2, 'sam', 'Bo', 'bo@example.org', 45);
ALTER TABLE interpreters OWNER TO upgrade_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON appointments, invoices TO upgrade_app;
GRANT SELECT ON appointment_interpreters TO upgrade_app;
SELECT fluent_protect('appointments', 'appointments', 'owner', 'appointment_interpreters', 'appointment_id', 'interpreter',
                      insert_action => 'create', delete_action => 'write');
SELECT fluent_protect('invoices', 'invoices', 'owner', workspace_column => 'ws', delete_action => 'write');
SELECT fluent_protect('interpreters', 'interpreters', 'manager', delete_action => 'write');
SELECT fluent_protect_columns('interpreters', '{email}', 'interpreters', read_action => 'read_personal',
                              write_action => 'write_profile');
SELECT fluent_set_permission('billing', 'interpreters', 'read_personal', 'none');
GRANT SELECT ON interpreters_masked TO upgrade_app;
