-- Row-level protection: each scope for SELECT, INSERT, UPDATE and DELETE,
-- several roles at once, submodules, teams and a three-level reporting line,
-- assignment through a membership table, ghost and disabled users, integer
-- and uuid owners, a workspace column, and the shape of the plans.
BEGIN;
SET search_path = public, test_helpers;
SELECT fluent_create_module('interactions');
SELECT fluent_create_module('evaluations', parent => 'interactions');
-- cx-style roles, Read / Write / Delete at Disabled / Own / Team / All
SELECT fluent_create_role('agent');
SELECT fluent_set_permission('agent', 'interactions', 'read', 'own');
SELECT fluent_set_permission('agent', 'interactions', 'write', 'own');
SELECT fluent_create_role('team_lead');
SELECT fluent_set_permission('team_lead', 'interactions', 'read', 'team');
SELECT fluent_set_permission('team_lead', 'interactions', 'write', 'team');
SELECT fluent_set_permission('team_lead', 'evaluations', 'read', 'own');
SELECT fluent_create_role('auditor');
SELECT fluent_set_permission('auditor', 'interactions', 'read', 'all');
SELECT fluent_create_role('admin');
SELECT fluent_set_permission('admin', 'interactions', 'read', 'all');
SELECT fluent_set_permission('admin', 'interactions', 'write', 'all');
SELECT fluent_set_permission('admin', 'interactions', 'delete', 'all');
-- people: a three-level reporting line vp > manager > lead > (ann, ben); team east led by lead
SELECT fluent_create_user('vp');
SELECT fluent_create_user('manager', manager => 'vp');
SELECT fluent_create_user('lead', manager => 'manager');
SELECT fluent_create_user('ann', manager => 'lead');
SELECT fluent_create_user('ben');
SELECT fluent_create_user('cid');
SELECT fluent_create_user('ghost', status => 'ghost');
SELECT fluent_create_user('gone');
SELECT fluent_create_team('east');
SELECT fluent_add_team_member('east', 'lead', lead => true);
SELECT fluent_add_team_member('east', 'ben');
SELECT fluent_grant_role('vp', 'team_lead');
SELECT fluent_grant_role('manager', 'auditor');
SELECT fluent_grant_role('lead', 'team_lead');
SELECT fluent_grant_role('ann', 'agent');
SELECT fluent_grant_role('ben', 'agent');
SELECT fluent_grant_role('cid', 'admin');
SELECT fluent_grant_role('ghost', 'admin');
SELECT fluent_grant_role('gone', 'admin');
SELECT fluent_set_user_status('gone', 'disabled');

CREATE TABLE interactions (id int PRIMARY KEY, owner text, note text);
INSERT INTO interactions SELECT g, (ARRAY['vp','manager','lead','ann','ben','cid','ghost'])[1 + g % 7], 'n' || g
  FROM generate_series(1, 70) g;
CREATE INDEX ON interactions (owner);
GRANT SELECT, INSERT, UPDATE, DELETE ON interactions TO app;
SELECT fluent_protect('interactions', 'interactions', 'owner');
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'interactions'::regclass;
SELECT polname, polcmd FROM pg_policy WHERE polrelid = 'interactions'::regclass ORDER BY polname;

-- SELECT, user by user: who sees whose rows
SET ROLE app;
SELECT act_as('ann'), fluent_scope('interactions', 'read');
SELECT owner, count(*) FROM interactions GROUP BY owner ORDER BY owner;
SELECT act_as('lead'), fluent_scope('interactions', 'read');
SELECT owner, count(*) FROM interactions GROUP BY owner ORDER BY owner;
SELECT act_as('vp'), fluent_scope('interactions', 'read');
SELECT owner, count(*) FROM interactions GROUP BY owner ORDER BY owner;
SELECT act_as('manager'), fluent_scope('interactions', 'read');
SELECT count(*) FROM interactions;
SELECT act_as('cid'), fluent_scope('interactions', 'read');
SELECT count(*) FROM interactions;
SELECT act_as(NULL);
SELECT count(*) FROM interactions;
-- ghost and disabled users hold admin but are granted nothing
SELECT fluent_scope('ghost', 'interactions', 'read'), fluent_scope('gone', 'interactions', 'read'),
       fluent_can('ghost', 'interactions', 'read'), fluent_can('gone', 'interactions', 'delete');
SELECT try($$SELECT act_as('gone')$$);
SELECT try($$SELECT act_as('ghost')$$);
SELECT try($$SELECT act_as('stranger')$$);

-- INSERT: own scope writes only its own rows, team scope its team's, all anyone's
SELECT act_as('ann');
SELECT try($$INSERT INTO interactions VALUES (1001, 'ann', 'mine')$$);
SELECT try($$INSERT INTO interactions VALUES (1002, 'ben', 'for ben')$$);
SELECT try($$INSERT INTO interactions VALUES (1003, NULL, 'nobody''s')$$);
SELECT act_as('lead');
SELECT try($$INSERT INTO interactions VALUES (1004, 'ben', 'for my team')$$);
SELECT try($$INSERT INTO interactions VALUES (1005, 'cid', 'outside the team')$$);
SELECT act_as('manager');  -- read all, no write
SELECT try($$INSERT INTO interactions VALUES (1006, 'manager', 'auditor writes')$$);
SELECT act_as('cid');
SELECT try($$INSERT INTO interactions VALUES (1007, 'vp', 'admin writes for anyone')$$);

-- UPDATE: only rows in write reach, and never out of it
SELECT act_as('ann');
UPDATE interactions SET note = 'edited' WHERE owner = 'ann';
UPDATE interactions SET note = 'edited' WHERE owner = 'ben';
SELECT try($$UPDATE interactions SET owner = 'ben' WHERE id = 1001$$);
SELECT act_as('lead');
UPDATE interactions SET note = 'lead edit' WHERE owner IN ('ann', 'ben', 'cid');
SELECT act_as('manager');
UPDATE interactions SET note = 'auditor edit';

-- DELETE: only the admin has delete
SELECT act_as('ann');
DELETE FROM interactions WHERE owner = 'ann';
SELECT act_as('cid');
DELETE FROM interactions WHERE id = 1007;
RESET ROLE;
SELECT owner, note, count(*) FROM interactions WHERE note NOT LIKE 'n%' GROUP BY 1, 2 ORDER BY 1, 2;

-- the table owner is subject to the policies too (FORCE ROW LEVEL SECURITY)
CREATE ROLE table_owner;
GRANT table_owner TO dba;
CREATE TABLE owned (id int PRIMARY KEY, owner text);
ALTER TABLE owned OWNER TO table_owner;
INSERT INTO owned VALUES (1, 'ann'), (2, 'ben');
SELECT fluent_protect('owned', 'interactions', 'owner');
SET ROLE table_owner;
SELECT act_as('ann');
SELECT * FROM owned;
RESET ROLE;

-- several roles at once: the widest wins, per action
SELECT fluent_grant_role('ann', 'auditor');
SET ROLE app;
SELECT act_as('ann'), fluent_scope('interactions', 'read') AS read, fluent_scope('interactions', 'write') AS write;
SELECT count(*) FROM interactions;
RESET ROLE;
SELECT fluent_revoke_role('ann', 'auditor');

-- a rolled-back grant has no effect
SAVEPOINT before_grant;
SELECT fluent_grant_role('ann', 'admin');
SELECT fluent_scope('ann', 'interactions', 'delete');
ROLLBACK TO before_grant;
SELECT fluent_scope('ann', 'interactions', 'delete');

-- submodules inherit their parent's permission unless set themselves
SELECT fluent_scope('ann', 'evaluations', 'read') AS ann_inherits,
       fluent_scope('lead', 'evaluations', 'read') AS lead_sets_own,
       fluent_scope('cid', 'evaluations', 'delete') AS cid_inherits;
SELECT fluent_set_permission('admin', 'evaluations', 'delete', 'none');
SELECT fluent_scope('cid', 'evaluations', 'delete') AS cid_explicit_none;
SELECT fluent_clear_permission('admin', 'evaluations', 'delete');
SELECT fluent_scope('cid', 'evaluations', 'delete') AS cid_inherits_again;

-- assignment through a membership table, beside or instead of an owner column
CREATE TABLE tickets (id int PRIMARY KEY, subject text);
CREATE TABLE ticket_assignees (ticket_id int REFERENCES tickets, user_key text, PRIMARY KEY (ticket_id, user_key));
CREATE INDEX ON ticket_assignees (user_key);
INSERT INTO tickets SELECT g, 't' || g FROM generate_series(1, 10) g;
INSERT INTO ticket_assignees VALUES (1, 'ann'), (2, 'ann'), (2, 'ben'), (3, 'ben'), (4, 'cid');
GRANT SELECT, INSERT ON tickets TO app;
GRANT SELECT ON ticket_assignees TO app;
SELECT fluent_protect('tickets', 'interactions', membership_table => 'ticket_assignees',
                      membership_row_column => 'ticket_id', membership_user_column => 'user_key');
SET ROLE app;
SELECT act_as('ann');
SELECT id FROM tickets ORDER BY id;
SELECT act_as('lead');  -- team scope: tickets assigned to ann and ben too
SELECT id FROM tickets ORDER BY id;
SELECT act_as('manager');
SELECT count(*) FROM tickets;
SELECT act_as('ann');
SELECT try($$INSERT INTO tickets VALUES (11, 'new')$$);
SELECT act_as('manager');
SELECT try($$INSERT INTO tickets VALUES (12, 'auditor cannot write')$$);
RESET ROLE;

-- integer and uuid owner columns, and a workspace column for a shared table
SELECT fluent_create_user('101');
SELECT fluent_create_user('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
SELECT fluent_grant_role('101', 'agent');
SELECT fluent_grant_role('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'agent');
CREATE TABLE by_int (id int, owner_id int, workspace text);
INSERT INTO by_int VALUES (1, 101, 'default'), (2, 102, 'default'), (3, 101, 'acme');
CREATE TABLE by_uuid (id int, owner_id uuid);
INSERT INTO by_uuid VALUES (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), (2, gen_random_uuid());
GRANT SELECT ON by_int, by_uuid TO app;
SELECT fluent_protect('by_int', 'interactions', 'owner_id', workspace_column => 'workspace');
SELECT fluent_protect('by_uuid', 'interactions', 'owner_id');
SET ROLE app;
SELECT act_as('101');
SELECT * FROM by_int;
SELECT act_as('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
SELECT id FROM by_uuid;
SELECT act_as('ann');  -- a key that is not an integer matches no integer owner
SELECT count(*) FROM by_int;
RESET ROLE;

-- protection mistakes are clear errors and change nothing
SELECT try($$SELECT fluent_protect('interactions', 'interactions', 'owner')$$);
SELECT try($$SELECT fluent_protect('nope', 'interactions', 'owner')$$);
CREATE TABLE plain (id int, owner text, amount numeric);
SELECT try($$SELECT fluent_protect('plain', 'interactions', 'missing')$$);
SELECT try($$SELECT fluent_protect('plain', 'interactions', 'amount')$$);
SELECT try($$SELECT fluent_protect('plain', 'nomodule', 'owner')$$);
SELECT try($$SELECT fluent_protect('plain', 'interactions')$$);
CREATE POLICY open_all ON plain USING (true);
SELECT try($$SELECT fluent_protect('plain', 'interactions', 'owner')$$);
SELECT relrowsecurity, (SELECT count(*) FROM pg_policy WHERE polrelid = 'plain'::regclass) AS policies,
       (SELECT count(*) FROM fluent.protected_tables WHERE table_name = 'plain'::regclass) AS registered
  FROM pg_class WHERE oid = 'plain'::regclass;

-- unprotect restores the table as it was; dropping a table forgets it
SELECT fluent_unprotect('by_uuid');
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'by_uuid'::regclass;
SELECT try($$SELECT fluent_unprotect('by_uuid')$$);
DROP TABLE by_int;
SELECT table_name FROM fluent.protected_tables ORDER BY table_name::text;
ROLLBACK;
