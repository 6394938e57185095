-- Protection holes that are now closed, one section each: role names
-- compared by OID, EXECUTE not granted to PUBLIC, forged attribution, owner
-- keys that alias, partitions and inheritance children, membership-table
-- writes, drift, orphaned policies, invariants on direct writes, clear
-- errors, and administration inside COPY. Each section asserts what used to
-- behave differently.
BEGIN;
SET search_path = public, test_helpers;
-- Shared fixtures: one module whose role reaches only the user's own rows.
SET ROLE dba;
SELECT fluent_create_module('holes');
SELECT fluent_create_role('own_role');
SELECT fluent_set_permission('own_role', 'holes', 'read', 'own');
SELECT fluent_set_permission('own_role', 'holes', 'write', 'own');
SELECT fluent_set_permission('own_role', 'holes', 'delete', 'own');
SELECT fluent_create_user('pia');
SELECT fluent_create_user('quinn');
SELECT fluent_grant_role('pia', 'own_role');
SELECT fluent_grant_role('quinn', 'own_role');
RESET ROLE;

-- 1. Role names compared by OID -------------------------------------------
-- Roles were looked up by names parsed as identifiers and compared by name:
-- "RtDba" was folded to rtdba (42704 role "rtdba" does not exist), and a
-- role named "Postgres" passed the superuser test as postgres.
CREATE ROLE "Postgres" LOGIN NOSUPERUSER;
CREATE ROLE "RtDba";
GRANT fluent_admin TO "RtDba";
SET ROLE "RtDba";
SELECT fluent_create_user('rt_user');
RESET ROLE;
SELECT user_key FROM fluent.users WHERE user_key = 'rt_user';
GRANT DELETE ON fluent.audit_log TO "Postgres";
SELECT rolname, rolsuper FROM pg_roles WHERE rolname = 'Postgres';
SET ROLE "Postgres";
SELECT try($$DELETE FROM fluent.audit_log$$) AS capital_p_postgres_deletes;
RESET ROLE;
SELECT count(*) > 0 AS audit_log_kept FROM fluent.audit_log;

-- 2. EXECUTE not granted to PUBLIC ------------------------------------------
-- Every function of the extension was executable by PUBLIC; now only the
-- checks, the policy helpers, identity (setting it is refused inside to all
-- but trusted roles) and explaining oneself are.
SELECT p.oid::regprocedure FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'fluent') AND d.deptype = 'e'
   AND d.classid = 'pg_proc'::regclass AND has_function_privilege('public', p.oid, 'EXECUTE')
 ORDER BY p.oid::regprocedure::text COLLATE "C";
SET ROLE app;
SELECT try($$SELECT fluent_grant_role('pia', 'own_role')$$) AS app_grants;
SELECT try($$SELECT fluent_protect('fluent.users', 'holes', 'user_key')$$) AS app_protects;
RESET ROLE;
SET ROLE app;
SELECT try($$SELECT fluent_set_user('pia')$$) AS app_sets_user;
RESET ROLE;

-- 3. Forged attribution -------------------------------------------------------
-- A DBA writing the catalog directly could attribute a grant, an override or
-- a review to someone else, at any date; the server now sets who and when.
SET ROLE dba;
SELECT fluent_create_role('forged_role');
INSERT INTO fluent.grants (workspace_id, user_id, role_id, granted_by, granted_at)
SELECT r.workspace_id, u.user_id, r.role_id, 'postgres', '2000-01-01'
  FROM fluent.users u, fluent.roles r WHERE u.user_key = 'pia' AND r.name = 'forged_role';
SELECT granted_by, granted_at = now() AS granted_now, reviewed_by, reviewed_at
  FROM fluent.grants g JOIN fluent.roles r USING (role_id) WHERE r.name = 'forged_role';
UPDATE fluent.grants SET granted_by = 'postgres', granted_at = '2000-01-01'
 WHERE role_id = (SELECT role_id FROM fluent.roles WHERE name = 'forged_role');
SELECT granted_by, granted_at = now() AS granted_now
  FROM fluent.grants g JOIN fluent.roles r USING (role_id) WHERE r.name = 'forged_role';
UPDATE fluent.grants SET reviewed_at = '2001-01-01', reviewed_by = 'postgres'
 WHERE role_id = (SELECT role_id FROM fluent.roles WHERE name = 'forged_role');
SELECT reviewed_by, reviewed_at = now() AS reviewed_now
  FROM fluent.grants g JOIN fluent.roles r USING (role_id) WHERE r.name = 'forged_role';
INSERT INTO fluent.overrides (workspace_id, user_id, action_id, scope, set_at, set_by)
SELECT a.workspace_id, u.user_id, a.action_id, 'all', '2000-01-01', 'postgres'
  FROM fluent.users u, fluent.actions a JOIN fluent.modules m USING (module_id)
 WHERE u.user_key = 'quinn' AND m.name = 'holes' AND a.name = 'read';
SELECT o.set_by, o.set_at = now() AS set_now
  FROM fluent.overrides o JOIN fluent.users u USING (user_id) WHERE u.user_key = 'quinn';
DELETE FROM fluent.overrides WHERE user_id = (SELECT user_id FROM fluent.users WHERE user_key = 'quinn');
RESET ROLE;

-- 4. Owner keys that alias ----------------------------------------------------
-- A key was cast to the column's type, so '+42' and '042' matched owner 42,
-- and an upper-case or braced uuid matched the uuid: several users owned one
-- row. Only the canonical text of a value matches it now.
SET ROLE dba;
DO $$
DECLARE
    k text;
BEGIN
    FOREACH k IN ARRAY ARRAY['42', '+42', '042', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
                             'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'] LOOP
        PERFORM fluent_create_user(k);
        PERFORM fluent_grant_role(k, 'own_role');
    END LOOP;
END $$;
RESET ROLE;
CREATE TABLE int_owned (id int PRIMARY KEY, owner_id int);
INSERT INTO int_owned VALUES (1, 42), (2, 7);
CREATE TABLE uuid_owned (id int PRIMARY KEY, owner_id uuid);
INSERT INTO uuid_owned VALUES (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), (2, 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12');
GRANT SELECT ON int_owned, uuid_owned TO app;
SELECT fluent_protect('int_owned', 'holes', 'owner_id');
SELECT fluent_protect('uuid_owned', 'holes', 'owner_id');
SET ROLE app;
SELECT act_as('+42');
SELECT * FROM int_owned ORDER BY id;
SELECT act_as('042');
SELECT * FROM int_owned ORDER BY id;
SELECT act_as('42');
SELECT * FROM int_owned ORDER BY id;
SELECT act_as('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11');
SELECT * FROM uuid_owned ORDER BY id;
SELECT act_as('{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}');
SELECT * FROM uuid_owned ORDER BY id;
SELECT act_as('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
SELECT * FROM uuid_owned ORDER BY id;
SELECT act_as(NULL);
RESET ROLE;

-- 5. Partitions and inheritance children -------------------------------------
-- Policies were created on the parent only, so querying a partition or child
-- directly returned every row. Now each one gets them, also those created
-- or attached after the protection.
CREATE TABLE parts (id int, owner text) PARTITION BY RANGE (id);
CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (100);
CREATE TABLE inh_parent (id int, owner text);
SELECT fluent_protect('parts', 'holes', 'owner');
SELECT fluent_protect('inh_parent', 'holes', 'owner');
CREATE TABLE parts_2 PARTITION OF parts FOR VALUES FROM (100) TO (200);
CREATE TABLE parts_3 (id int, owner text);
ALTER TABLE parts ATTACH PARTITION parts_3 FOR VALUES FROM (200) TO (300);
CREATE TABLE inh_child () INHERITS (inh_parent);
INSERT INTO parts VALUES (1, 'pia'), (2, 'quinn'), (101, 'pia'), (102, 'quinn'), (201, 'pia'), (202, 'quinn');
INSERT INTO inh_child VALUES (1, 'pia'), (2, 'quinn');
GRANT SELECT ON parts, parts_1, parts_2, parts_3, inh_parent, inh_child TO app;
SELECT c.oid::regclass AS relation, c.relrowsecurity, c.relforcerowsecurity,
       (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid) AS policies
  FROM pg_class c WHERE c.oid IN ('parts'::regclass, 'parts_1'::regclass, 'parts_2'::regclass, 'parts_3'::regclass,
                                  'inh_parent'::regclass, 'inh_child'::regclass)
 ORDER BY c.relname COLLATE "C";
SET ROLE app;
SELECT act_as('pia');
SELECT 'parts' AS relation, * FROM parts
UNION ALL SELECT 'parts_1', * FROM parts_1
UNION ALL SELECT 'parts_2', * FROM parts_2
UNION ALL SELECT 'parts_3', * FROM parts_3
UNION ALL SELECT 'inh_parent', * FROM inh_parent
UNION ALL SELECT 'inh_child', * FROM inh_child
ORDER BY 1, 2;
SELECT act_as(NULL);
RESET ROLE;
-- a partition shares its parent's protection: it is neither protected nor
-- unprotected on its own
SET ROLE dba;
SELECT try($$SELECT fluent_protect('parts_2', 'holes', 'owner')$$) AS protect_partition;
SELECT try($$SELECT fluent_unprotect('parts_2')$$) AS unprotect_partition;
RESET ROLE;
SELECT fluent_unprotect('parts');
SELECT fluent_unprotect('inh_parent');
SELECT c.oid::regclass AS relation, c.relrowsecurity, c.relforcerowsecurity,
       (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid) AS policies
  FROM pg_class c WHERE c.oid IN ('parts'::regclass, 'parts_1'::regclass, 'parts_2'::regclass, 'parts_3'::regclass,
                                  'inh_parent'::regclass, 'inh_child'::regclass)
 ORDER BY c.relname COLLATE "C";

-- 6. Membership tables ----------------------------------------------------------
-- The membership table had no policies: a user could assign herself to a row
-- she could not see, and then see it. Writes to it now stay within the
-- writer's reach.
CREATE TABLE tickets (id int PRIMARY KEY, owner text);
CREATE TABLE ticket_assignees (ticket_id int REFERENCES tickets, user_key text, PRIMARY KEY (ticket_id, user_key));
CREATE INDEX ON ticket_assignees (user_key);
INSERT INTO tickets VALUES (1, 'pia'), (2, 'quinn');
GRANT SELECT, INSERT ON tickets, ticket_assignees TO app;
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'ticket_assignees'::regclass;
SELECT fluent_protect('tickets', 'holes', 'owner', membership_table => 'ticket_assignees',
                      membership_row_column => 'ticket_id', membership_user_column => 'user_key');
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'ticket_assignees'::regclass;
SET ROLE app;
SELECT act_as('pia');
SELECT try($$INSERT INTO ticket_assignees VALUES (2, 'pia')$$) AS assign_self_to_hidden;
SELECT id, owner FROM tickets ORDER BY id;
SELECT try($$INSERT INTO ticket_assignees VALUES (1, 'quinn')$$) AS assign_to_own;
SELECT act_as('quinn');
SELECT id, owner FROM tickets ORDER BY id;
SELECT act_as(NULL);
RESET ROLE;
SELECT * FROM ticket_assignees ORDER BY 1, 2;
SELECT fluent_unprotect('tickets');
SELECT relrowsecurity, relforcerowsecurity,
       (SELECT count(*) FROM pg_policy WHERE polrelid = 'ticket_assignees'::regclass) AS policies
  FROM pg_class WHERE oid = 'ticket_assignees'::regclass;

-- 7. Drift ------------------------------------------------------------------------
-- Nothing told that a protection had been weakened after fluent_protect():
-- RLS no longer forced, a permissive policy added, a policy dropped, or a
-- view that reads the table as a superuser.
CREATE TABLE drifting (id int, owner text);
SELECT fluent_protect('drifting', 'holes', 'owner');
SELECT table_name, module, intact, problems FROM fluent.protection_status WHERE table_name = 'drifting'::regclass;
ALTER TABLE drifting NO FORCE ROW LEVEL SECURITY;
CREATE POLICY extra ON drifting USING (true);
CREATE POLICY narrower ON drifting AS RESTRICTIVE USING (id > 0);  -- restrictive: narrows, not reported
DROP POLICY fluent_delete ON drifting;
CREATE VIEW drifting_all AS SELECT * FROM drifting;
CREATE VIEW drifting_invoker WITH (security_invoker = true) AS SELECT * FROM drifting;  -- not reported
SELECT relation, problem, detail FROM fluent_protection_problems()
 WHERE table_name = 'drifting'::regclass ORDER BY relation::text, problem;
SELECT intact, array_length(problems, 1) AS problems FROM fluent.protection_status WHERE table_name = 'drifting'::regclass;
SET ROLE dba;
SELECT intact FROM fluent.protection_status WHERE table_name = 'drifting'::regclass;
RESET ROLE;

-- 8. Orphaned policies ----------------------------------------------------------
-- After a schema-only restore the policies are there but fluent.protected_tables
-- has no row: fluent_protect refused the table (its policies are permissive)
-- and fluent_unprotect said it was not protected.
CREATE TABLE restored (id int, owner text);
SELECT fluent_protect('restored', 'holes', 'owner');
SET LOCAL session_replication_role = replica;
DELETE FROM fluent.protected_tables WHERE table_name = 'restored'::regclass;
SET LOCAL session_replication_role = origin;
SELECT fluent_protect('restored', 'holes', 'owner');
SELECT intact, problems FROM fluent.protection_status WHERE table_name = 'restored'::regclass;
SELECT polname FROM pg_policy WHERE polrelid = 'restored'::regclass ORDER BY 1;
SET LOCAL session_replication_role = replica;
DELETE FROM fluent.protected_tables WHERE table_name = 'restored'::regclass;
SET LOCAL session_replication_role = origin;
SELECT fluent_unprotect('restored');
SELECT relrowsecurity, relforcerowsecurity,
       (SELECT count(*) FROM pg_policy WHERE polrelid = 'restored'::regclass) AS policies
  FROM pg_class WHERE oid = 'restored'::regclass;

-- 9. Invariants on direct writes -------------------------------------------------
-- Cycles were refused by the fluent_* functions only; a direct write to the
-- catalog could make a module its own ancestor or a reporting line a loop.
SET ROLE dba;
SELECT fluent_create_module('mod_a');
SELECT fluent_create_module('mod_b');
SELECT try($$UPDATE fluent.modules SET parent_id = module_id WHERE name = 'mod_a'$$) AS own_parent;
SELECT try($$UPDATE fluent.modules SET parent_id = (SELECT module_id FROM fluent.modules WHERE name = 'mod_b') WHERE name = 'mod_a'$$) AS a_under_b;
-- (ids depend on the files run before: masked)
SELECT regexp_replace(try($$UPDATE fluent.modules SET parent_id = (SELECT module_id FROM fluent.modules WHERE name = 'mod_a') WHERE name = 'mod_b'$$),
                      '\d+$', 'N') AS b_under_a;
SELECT fluent_create_user('boss');
SELECT fluent_create_user('worker', manager => 'boss');
SELECT regexp_replace(try($$UPDATE fluent.users SET manager_id = (SELECT user_id FROM fluent.users WHERE user_key = 'worker') WHERE user_key = 'boss'$$),
                      '\d+$', 'N') AS boss_reports_to_worker;
SELECT m.name, p.name AS parent FROM fluent.modules m LEFT JOIN fluent.modules p ON p.module_id = m.parent_id
 WHERE m.name IN ('mod_a', 'mod_b') ORDER BY 1;
SELECT u.user_key, m.user_key AS manager FROM fluent.users u LEFT JOIN fluent.users m ON m.user_id = u.manager_id
 WHERE u.user_key IN ('boss', 'worker') ORDER BY 1;
-- The trees have no self-referencing foreign keys (pg_dump warned about
-- them on every dump); triggers keep every parent real: a manager or parent
-- that does not exist, or a parent module of another workspace, is refused;
-- deleting a manager detaches their reports, deleting a module its submodules.
SELECT try($$UPDATE fluent.users SET manager_id = -1 WHERE user_key = 'worker'$$) AS missing_manager;
SELECT try($$UPDATE fluent.modules SET parent_id = -1 WHERE name = 'mod_b'$$) AS missing_parent;
SELECT fluent_create_workspace('elsewhere'), fluent_set_workspace('elsewhere'), fluent_create_module('mod_x'),
       fluent_set_workspace('default');
SELECT regexp_replace(try($$UPDATE fluent.modules SET parent_id = (SELECT module_id FROM fluent.modules WHERE name = 'mod_x')
                             WHERE name = 'mod_b'$$),
                      'module \d+', 'module N') AS parent_in_another_workspace;
DELETE FROM fluent.users WHERE user_key = 'boss';
SELECT user_key, manager_id FROM fluent.users WHERE user_key = 'worker';
DELETE FROM fluent.modules WHERE name = 'mod_b';
SELECT count(*) AS mod_a_left FROM fluent.modules WHERE name = 'mod_a';
-- (pg_dump warns about those in the tables whose data it dumps.)
SELECT count(*) AS circular_foreign_keys FROM pg_constraint
 WHERE contype = 'f' AND conrelid = confrelid
   AND conrelid = ANY ((SELECT extconfig FROM pg_extension WHERE extname = 'fluent')::oid[]);
RESET ROLE;

-- 10. Clear errors ----------------------------------------------------------------
-- These used to fail with an internal error, a panic message or a misleading one.
SET ROLE auth;
SELECT try($$SELECT fluent_set_user('pia', NULL)$$) AS local_null;
RESET ROLE;
SELECT try($$SELECT fluent.invalidate_cache()$$) AS trigger_called_directly;
SET ROLE dba;
SELECT try($$SELECT fluent_create_user(repeat('x', 300))$$) AS key_too_long;
RESET ROLE;
-- A member of fluent_authenticator that does not inherit its privileges
-- is refused, with a hint to SET ROLE fluent_authenticator first.
CREATE ROLE noinh NOINHERIT;
GRANT fluent_authenticator TO noinh;
SET ROLE noinh;
DO $$
DECLARE
    hint text;
BEGIN
    PERFORM fluent_set_user('pia');
    RAISE NOTICE 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    RAISE NOTICE '%: %', SQLSTATE, SQLERRM;
    RAISE NOTICE 'hint: %', coalesce(nullif(hint, ''), '(none)');
END $$;
RESET ROLE;
-- (That SET ROLE fluent_authenticator then works is in 09_identity, on a
-- connection of its own: this transaction ran as an untrusted role.)

-- 11. Administration inside COPY ---------------------------------------------------
-- A superuser's COPY was taken for a restore by its tag alone, and the
-- administration functions run as their superuser owner: a grant made in
-- COPY (SELECT fluent_grant_role(...)) TO STDOUT was not audited and kept the
-- column default postgres as its granter. Only COPY ... FROM into the catalog
-- is a restore; this grant is audited and attributed to its caller, for a
-- DBA and for a superuser alike.
SET ROLE dba;
SELECT fluent_create_role('copied_role');
SELECT coalesce(max(audit_id), 0) AS last_entry FROM fluent.audit_log \gset
COPY (SELECT fluent_grant_role('pia', 'copied_role')) TO STDOUT;
RESET ROLE;
COPY (SELECT fluent_grant_role('quinn', 'copied_role')) TO STDOUT;
SELECT u.user_key, g.granted_by
  FROM fluent.grants g JOIN fluent.users u USING (user_id) JOIN fluent.roles r USING (role_id)
 WHERE r.name = 'copied_role' ORDER BY 1;
SELECT a.db_role, u.user_key AS grantee, a.operation
  FROM fluent.audit_log a JOIN fluent.users u ON u.user_id = (a.after ->> 'user_id')::bigint
 WHERE audit_id > :last_entry AND table_name = 'grants' ORDER BY audit_id;
-- Nor inside a COPY ... FROM into the catalog: its WHERE clause runs a
-- function for each input row, here while nothing is inserted. Only the
-- rows a superuser's own COPY loads are a restore.
SET ROLE dba;
SELECT fluent_create_role('copied_where_role');
COPY fluent.team_members (is_lead) FROM STDIN WHERE fluent_grant_role('pia', 'copied_where_role')::text = 'x';
t
\.
RESET ROLE;
SELECT u.user_key, g.granted_by,
       (SELECT count(*) FROM fluent.audit_log a
         WHERE a.table_name = 'grants' AND a.db_role = 'dba' AND (a.after ->> 'user_id')::bigint = g.user_id
           AND (a.after ->> 'role_id')::int = g.role_id) AS audit_entries
  FROM fluent.grants g JOIN fluent.users u USING (user_id) JOIN fluent.roles r USING (role_id)
 WHERE r.name = 'copied_where_role';
ROLLBACK;
