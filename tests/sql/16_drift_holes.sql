-- Drift that fluent.protection_status did not report (issue 18, section 5):
-- each case below left intact = true. The table owner here is the
-- application's schema owner, not a superuser: all it does, it may do.
BEGIN;
SET search_path = public, test_helpers;
SET client_min_messages = warning;
SELECT fluent_create_workspace('drift'), fluent_set_workspace('drift');
SELECT fluent_create_module('staff', '{read,write,delete,read_pay,write_pay}');
-- Clerks read every row, change their own, and see and change no pay but
-- their own (read_pay own, write_pay none); HR does everything.
SELECT fluent_create_role('clerk'), fluent_create_role('hr');
SELECT fluent_set_permission('clerk', 'staff', a, s)
  FROM (VALUES ('read', 'all'), ('write', 'own'), ('read_pay', 'own')) x (a, s);
SELECT fluent_set_permission('hr', 'staff', a, 'all') FROM unnest('{read,write,delete,read_pay,write_pay}'::text[]) a;
SELECT fluent_create_user(u) FROM unnest('{drift_ann,drift_ben,drift_hana}'::text[]) u;
SELECT fluent_grant_role('drift_ann', 'clerk'), fluent_grant_role('drift_ben', 'clerk'), fluent_grant_role('drift_hana', 'hr');
CREATE ROLE staff_owner NOLOGIN;
GRANT CREATE ON SCHEMA public TO staff_owner;
CREATE TABLE staff (id int PRIMARY KEY, owner text, name text, salary numeric);
INSERT INTO staff VALUES (1, 'drift_ann', 'Ann', 100), (2, 'drift_ben', 'Ben', 200), (3, 'drift_hana', 'Hana', 300);
ALTER TABLE staff OWNER TO staff_owner;
SELECT fluent_protect('staff', 'staff', 'owner');
SELECT fluent_protect_columns('staff', '{salary}', 'staff', read_action => 'read_pay', write_action => 'write_pay');
GRANT SELECT ON staff_masked TO app;
GRANT SELECT (id, owner, name), UPDATE ON staff TO app;
CREATE TEMPORARY VIEW staff_problems AS
SELECT relation::text, problem, detail FROM fluent_protection_problems()
 WHERE table_name::text = 'staff' ORDER BY relation::text, problem, detail;
GRANT SELECT ON staff_problems TO dba;
SELECT intact, problems FROM fluent.protection_status WHERE table_name = 'staff'::regclass;
SET ROLE app;
SELECT act_as('drift_ann');
SELECT id, salary FROM staff_masked ORDER BY id;
SELECT try($$UPDATE staff SET salary = 1 WHERE id = 1$$) AS ann_raises_herself;
SELECT act_as(NULL);
RESET ROLE;

-- 1. The column trigger -----------------------------------------------------------
-- Each limited column has one, named by the column's number (salary is
-- column 4). The owner disables it: ann then changes her own pay.
SET ROLE staff_owner;
ALTER TABLE staff DISABLE TRIGGER fluent_column_limits_4;
RESET ROLE;
SELECT * FROM staff_problems;
SET ROLE app;
SELECT act_as('drift_ann');
SELECT try($$UPDATE staff SET salary = 1 WHERE id = 1$$) AS ann_raises_herself;
SELECT act_as(NULL);
RESET ROLE;
UPDATE staff SET salary = 100 WHERE id = 1;
-- Enabled for replica sessions only, or always: not as fluent left it.
SET ROLE staff_owner;
ALTER TABLE staff ENABLE REPLICA TRIGGER fluent_column_limits_4;
RESET ROLE;
SELECT * FROM staff_problems;
SET ROLE staff_owner;
ALTER TABLE staff ENABLE ALWAYS TRIGGER fluent_column_limits_4;
RESET ROLE;
SELECT * FROM staff_problems;
SET ROLE staff_owner;
ALTER TABLE staff ENABLE TRIGGER fluent_column_limits_4;
RESET ROLE;
SELECT count(*) AS problems FROM staff_problems;
-- Dropped, then made again by fluent_protect_columns().
SET ROLE staff_owner;
DROP TRIGGER fluent_column_limits_4 ON staff;
RESET ROLE;
SELECT * FROM staff_problems;
SELECT fluent_protect_columns('staff', '{salary}', 'staff', read_action => 'read_pay', write_action => 'write_pay');
SELECT count(*) AS problems FROM staff_problems;
-- On an inheritance child (and on a partition: see 5).
CREATE TABLE staff_temps () INHERITS (staff);
DROP TRIGGER fluent_column_limits_4 ON staff_temps;
SELECT * FROM staff_problems;
DROP TABLE staff_temps;

-- 2. The masked view --------------------------------------------------------------
-- The owner redefines it without its mask: ann reads everyone's pay.
SET ROLE staff_owner;
CREATE OR REPLACE VIEW staff_masked AS SELECT id, owner, name, salary FROM staff;
RESET ROLE;
SELECT * FROM staff_problems;
SET ROLE app;
SELECT act_as('drift_ann');
SELECT id, salary FROM staff_masked ORDER BY id;
SELECT act_as(NULL);
RESET ROLE;
SELECT fluent_protect_columns('staff', '{salary}', 'staff', read_action => 'read_pay', write_action => 'write_pay');
SELECT count(*) AS problems FROM staff_problems;
-- Its options, or its owner (a superuser's view reads past the policies).
SET ROLE staff_owner;
ALTER VIEW staff_masked RESET (security_barrier);
RESET ROLE;
SELECT * FROM staff_problems;
ALTER VIEW staff_masked SET (security_barrier);
ALTER VIEW staff_masked OWNER TO postgres;
SELECT * FROM staff_problems;
-- A DBA and a reporting tool (app is a fluent_reader) see the same.
SET ROLE dba;
SELECT intact, cardinality(problems) AS problems FROM fluent.protection_status WHERE table_name = 'staff'::regclass;
SET ROLE app;
SELECT intact, cardinality(problems) AS problems FROM fluent.protection_status WHERE table_name = 'staff'::regclass;
RESET ROLE;
ALTER VIEW staff_masked OWNER TO staff_owner;
-- Or drops it.
SAVEPOINT masked_view_dropped;
SET ROLE staff_owner;
DROP VIEW staff_masked;
RESET ROLE;
SELECT problem, detail FROM staff_problems;
ROLLBACK TO SAVEPOINT masked_view_dropped;
SELECT count(*) AS problems FROM staff_problems;

-- 3. Views owned by the table owner -----------------------------------------------
-- Without security_invoker, PostgreSQL checks column privileges as the view's
-- owner: a view naming the limited column (directly or through a whole row)
-- shows it unmasked. The policies still filter its rows by the acting user.
-- A security_invoker view checks the current user's privileges, also under
-- another view. A materialized view stores the rows its refresh saw: here
-- made by the owner acting as HR.
SET ROLE staff_owner;
CREATE VIEW staff_pay AS SELECT id, owner, salary FROM staff;
CREATE VIEW staff_lines AS SELECT id, s::text AS line FROM staff s;
CREATE VIEW staff_pay_invoker WITH (security_invoker) AS SELECT id, salary FROM staff;  -- not reported
CREATE VIEW staff_pay_over_invoker AS SELECT * FROM staff_pay_invoker;                  -- not reported
CREATE VIEW staff_names AS SELECT id, name FROM staff;                                  -- not reported
CREATE VIEW staff_pay_masked AS SELECT id, salary FROM staff_masked;                    -- not reported
SELECT act_as('drift_hana');
CREATE MATERIALIZED VIEW staff_snapshot AS SELECT id, owner, name FROM staff;
SELECT act_as(NULL);
GRANT SELECT ON staff_pay, staff_lines, staff_pay_over_invoker, staff_names, staff_pay_masked, staff_snapshot TO app;
RESET ROLE;
SELECT * FROM staff_problems;
SET ROLE app;
SELECT act_as('drift_ann');
SELECT id, owner, salary FROM staff_pay ORDER BY id;
SELECT try($$SELECT id, salary FROM staff_pay_over_invoker$$) AS over_invoker;
SELECT id, salary FROM staff_pay_masked ORDER BY id;
SELECT act_as(NULL);
SELECT (SELECT count(*) FROM staff_pay) AS pay_rows_for_nobody, (SELECT count(*) FROM staff_snapshot) AS snapshot_rows_for_nobody;
RESET ROLE;
DROP VIEW staff_pay, staff_lines, staff_pay_over_invoker, staff_pay_invoker, staff_names, staff_pay_masked;
DROP MATERIALIZED VIEW staff_snapshot;
SELECT count(*) AS problems FROM staff_problems;

-- 4. A parent outside the protection ----------------------------------------------
-- Queries on a parent apply the parent's policies, not the child's: the
-- owner's unprotected parent reads every row, limited columns too.
CREATE TABLE everyone (id int, owner text, name text, salary numeric);
ALTER TABLE everyone OWNER TO staff_owner;
SET ROLE staff_owner;
ALTER TABLE staff INHERIT everyone;
GRANT SELECT ON everyone TO app;
RESET ROLE;
SELECT * FROM staff_problems;
SET ROLE app;
SELECT act_as(NULL);
SELECT count(*), sum(salary) FROM everyone;
RESET ROLE;
SET ROLE staff_owner;
ALTER TABLE staff NO INHERIT everyone;
RESET ROLE;
SELECT count(*) AS problems FROM staff_problems;
-- The same by ATTACH PARTITION.
CREATE TABLE all_staff (id int, owner text, name text, salary numeric) PARTITION BY RANGE (id);
ALTER TABLE all_staff OWNER TO staff_owner;
SET ROLE staff_owner;
ALTER TABLE all_staff ATTACH PARTITION staff FOR VALUES FROM (1) TO (100);
RESET ROLE;
SELECT * FROM staff_problems;
SET ROLE staff_owner;
ALTER TABLE all_staff DETACH PARTITION staff;
RESET ROLE;
SELECT count(*) AS problems FROM staff_problems;

-- 5. Partitions ------------------------------------------------------------------
-- A grant on a partition's limited column reads it past the masked view; a
-- partition's clone of the column trigger (with the table's name: amount is
-- column 3) can be disabled on its own.
CREATE TABLE payslips (id int, owner text, amount numeric) PARTITION BY RANGE (id);
CREATE TABLE payslips_1 PARTITION OF payslips FOR VALUES FROM (1) TO (100);
CREATE TABLE payslips_2 PARTITION OF payslips FOR VALUES FROM (100) TO (200);
INSERT INTO payslips VALUES (1, 'drift_ann', 10), (2, 'drift_ben', 20), (100, 'drift_hana', 30);
ALTER TABLE payslips OWNER TO staff_owner;
ALTER TABLE payslips_1 OWNER TO staff_owner;
ALTER TABLE payslips_2 OWNER TO staff_owner;
SELECT fluent_protect('payslips', 'staff', 'owner');
SELECT fluent_protect_columns('payslips', '{amount}', 'staff', read_action => 'read_pay', write_action => 'write_pay');
SELECT intact FROM fluent.protection_status WHERE table_name = 'payslips'::regclass;
SET ROLE staff_owner;
GRANT SELECT (id, owner, amount) ON payslips_1 TO app;
ALTER TABLE payslips_2 DISABLE TRIGGER fluent_column_limits_3;
RESET ROLE;
SELECT relation, problem, detail FROM fluent_protection_problems()
 WHERE table_name = 'payslips'::regclass ORDER BY relation::text, problem;
SET ROLE app;
SELECT act_as('drift_ann');
SELECT id, amount FROM payslips_1 ORDER BY id;
SELECT act_as(NULL);
RESET ROLE;

-- 6. Partitions and children of a membership table ------------------------------
-- They carry the membership policies too (on each, naming it as the row
-- written), and fluent_protection_problems() checks them as it checks the
-- membership table: row-level security enabled and forced, the four
-- policies as fluent made them, no permissive policy added. Without these
-- checks, the owner opening a partition left the protection intact while a
-- user assigned herself to a project beyond her reach and read it.
SELECT fluent_create_module('work', '{read,write,delete}');
SELECT fluent_create_role('worker');
SELECT fluent_set_permission('worker', 'work', a, 'own') FROM unnest('{read,write}'::text[]) a;
SELECT fluent_grant_role('drift_ann', 'worker'), fluent_grant_role('drift_ben', 'worker');
CREATE TABLE projects (id int PRIMARY KEY, owner text);
CREATE TABLE assignments (project_id int, user_key text) PARTITION BY LIST (user_key);
CREATE TABLE assignments_ann PARTITION OF assignments FOR VALUES IN ('drift_ann');
CREATE TABLE "assignments Rest" PARTITION OF assignments DEFAULT;   -- a name to quote
CREATE INDEX ON assignments (user_key);
INSERT INTO projects VALUES (1, 'drift_ann'), (2, 'drift_ben');
INSERT INTO assignments VALUES (2, 'drift_ben');
ALTER TABLE projects OWNER TO staff_owner;
ALTER TABLE assignments OWNER TO staff_owner;
ALTER TABLE assignments_ann OWNER TO staff_owner;
ALTER TABLE "assignments Rest" OWNER TO staff_owner;
SELECT fluent_protect('projects', 'work', 'owner', membership_table => 'assignments',
                      membership_row_column => 'project_id', membership_user_column => 'user_key');
CREATE TEMPORARY VIEW project_problems AS
SELECT relation::text, problem, detail FROM fluent_protection_problems()
 WHERE table_name::text = 'projects' ORDER BY relation::text, problem, detail;
-- As fluent made them (the policies on each partition name it, not the
-- membership table): nothing to report.
SELECT intact, problems FROM fluent.protection_status WHERE table_name = 'projects'::regclass;
GRANT SELECT ON projects TO app;
GRANT SELECT, INSERT, UPDATE, DELETE ON assignments, assignments_ann, "assignments Rest" TO app;
SET ROLE app;
SELECT act_as('drift_ann');
SELECT try($$INSERT INTO assignments_ann VALUES (2, 'drift_ann')$$) AS ann_joins_bens_project;
SELECT act_as(NULL);
RESET ROLE;
-- The owner disables row-level security on a partition: ann joins ben's
-- project and reads it.
SAVEPOINT member_partition_opened;
SET ROLE staff_owner;
ALTER TABLE assignments_ann DISABLE ROW LEVEL SECURITY;
RESET ROLE;
SELECT * FROM project_problems;
SET ROLE app;
SELECT act_as('drift_ann');
SELECT try($$INSERT INTO assignments_ann VALUES (2, 'drift_ann')$$) AS ann_joins_bens_project;
SELECT id, owner FROM projects ORDER BY id;
SELECT act_as(NULL);
RESET ROLE;
ROLLBACK TO SAVEPOINT member_partition_opened;
-- Or adds a permissive policy there (OR-ed with fluent's), unforces it,
-- drops one of fluent's policies or changes one.
SAVEPOINT member_partition_changed;
SET ROLE staff_owner;
CREATE POLICY anyone ON "assignments Rest" FOR INSERT WITH CHECK (true);
ALTER TABLE assignments_ann NO FORCE ROW LEVEL SECURITY;
DROP POLICY fluent_member_delete ON assignments_ann;
ALTER POLICY fluent_member_update ON "assignments Rest" USING (true);
RESET ROLE;
SELECT * FROM project_problems;
SET ROLE app;   -- a reporting tool sees them too
SELECT intact, cardinality(problems) AS problems FROM fluent.protection_status WHERE table_name = 'projects'::regclass;
SELECT act_as('drift_ann');
SELECT try($$INSERT INTO "assignments Rest" VALUES (2, 'drift_cy')$$) AS ann_assigns_a_stranger;
SELECT act_as(NULL);
RESET ROLE;
ROLLBACK TO SAVEPOINT member_partition_changed;
SELECT count(*) AS problems FROM project_problems;
SELECT fluent_unprotect('projects');

-- 7. A module named with a backslash: its policies print as recorded
-- whatever the session's standard_conforming_strings, so none reads as changed.
SELECT fluent_create_module('back\slash');
CREATE TABLE slashed (id int PRIMARY KEY, owner text NOT NULL);
SELECT fluent_protect('slashed', 'back\slash', 'owner');
SET LOCAL standard_conforming_strings = off;
SELECT relation::text, problem FROM fluent_protection_problems() WHERE table_name = 'slashed'::regclass;
RESET standard_conforming_strings;
SELECT fluent_unprotect('slashed');

-- 8. The masked view's definition is compared by making fluent's as a
-- temporary view, which a read-only transaction cannot: reported as not checked.
SET transaction_read_only = on;
SELECT * FROM staff_problems;
SELECT fluent_set_workspace('default');
ROLLBACK;
