-- Partitions and inheritance children that a protection did not cover
-- (issue 18): an inheritance child of a table with column limits had the row
-- policies but not the column-limit trigger, so a write through the table
-- changed a limited column of the child's rows unchecked; partitions and
-- children of a membership table had no policies, so a user wrote
-- assignments there that the membership table refuses, and then read rows
-- beyond her reach. Each section asserts what used to behave differently.
BEGIN;
SET search_path = public, test_helpers;
SET client_min_messages = warning;
SET ROLE dba;
SELECT fluent_create_module('kids', '{read,write,delete,write_pay}');
-- kid_staff edits every row but not the pay; kid_own reaches her own rows only.
SELECT fluent_create_role('kid_staff');
SELECT fluent_set_permission('kid_staff', 'kids', 'read', 'all');
SELECT fluent_set_permission('kid_staff', 'kids', 'write', 'all');
SELECT fluent_create_role('kid_own');
SELECT fluent_set_permission('kid_own', 'kids', 'read', 'own');
SELECT fluent_set_permission('kid_own', 'kids', 'write', 'own');
SELECT fluent_set_permission('kid_own', 'kids', 'delete', 'own');
SELECT fluent_create_user('kid_ann'), fluent_create_user('kid_ben'), fluent_create_user('kid_cy');
SELECT fluent_grant_role('kid_ann', 'kid_own'), fluent_grant_role('kid_ben', 'kid_own'),
       fluent_grant_role('kid_cy', 'kid_staff');
RESET ROLE;

-- 1. Column limits on inheritance children -----------------------------------
-- A child existing when fluent_protect_columns runs, one created later
-- (INHERITS) and one adopted later (ALTER TABLE ... INHERIT): each gets the
-- column-limit trigger (one per limited column, named by its column's number
-- in that table: the adopted child has its columns in another order). The
-- table owner is not a superuser (the masked view reads the table as its owner).
CREATE ROLE kids_owner NOLOGIN;
CREATE TABLE staff (id int PRIMARY KEY, owner text, salary int);
CREATE TABLE staff_old () INHERITS (staff);
INSERT INTO staff VALUES (1, 'kid_ben', 100);
INSERT INTO staff_old VALUES (2, 'kid_ben', 200);
ALTER TABLE staff OWNER TO kids_owner;
ALTER TABLE staff_old OWNER TO kids_owner;
SELECT fluent_protect('staff', 'kids', 'owner');
SELECT fluent_protect_columns('staff', '{salary}', 'kids', write_action => 'write_pay');
CREATE TABLE staff_new () INHERITS (staff);
INSERT INTO staff_new VALUES (3, 'kid_ben', 300);
CREATE TABLE staff_adopted (salary int, id int NOT NULL, owner text);
INSERT INTO staff_adopted (id, owner, salary) VALUES (4, 'kid_ben', 400);
ALTER TABLE staff_adopted INHERIT staff;
ALTER TABLE staff_new OWNER TO kids_owner;
ALTER TABLE staff_adopted OWNER TO kids_owner;
SELECT tgrelid::regclass AS relation, tgname, tgenabled,
       (SELECT attname FROM pg_attribute WHERE attrelid = tgrelid AND attnum = tgattr[0]) AS update_of FROM pg_trigger
 WHERE tgfoid = 'fluent._check_column_writes()'::regprocedure ORDER BY tgrelid::regclass::text COLLATE "C";
GRANT SELECT (id, owner), UPDATE ON staff TO app;
GRANT SELECT (id, owner), UPDATE ON staff_new TO app;
SET ROLE app;
SELECT act_as('kid_cy');
-- Through the table, the child's rows were changed without write_pay.
SELECT try($$UPDATE staff SET salary = 1 WHERE id = 1$$) AS table_row;
SELECT try($$UPDATE staff SET salary = 1 WHERE id = 2$$) AS child_existing_before;
SELECT try($$UPDATE staff SET salary = 1 WHERE id = 3$$) AS child_created_later;
SELECT try($$UPDATE staff SET salary = 1 WHERE id = 4$$) AS child_adopted_later;
SELECT try($$UPDATE staff_new SET salary = 1 WHERE id = 3$$) AS child_directly;
-- The other columns stay writable.
SELECT try($$UPDATE staff SET owner = 'kid_ann' WHERE id = 4$$) AS child_owner_column;
SELECT act_as(NULL);
RESET ROLE;
SELECT id, owner, salary FROM staff ORDER BY id;
-- Removing the limits removes the children's triggers too.
SELECT fluent_unprotect_columns('staff');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgfoid = 'fluent._check_column_writes()'::regprocedure;
SELECT fluent_protect_columns('staff', '{salary}', 'kids', write_action => 'write_pay') IS NOT NULL AS limited_again;
SELECT count(*) AS triggers FROM pg_trigger WHERE tgfoid = 'fluent._check_column_writes()'::regprocedure;
SELECT fluent_unprotect('staff');
SELECT count(*) AS triggers_after_unprotect FROM pg_trigger WHERE tgfoid = 'fluent._check_column_writes()'::regprocedure;

-- 2. Column limits on partitions ---------------------------------------------
-- PostgreSQL clones the table's trigger to partitions (with its name), also
-- to those created or attached later; fluent neither duplicates nor forgets them.
CREATE TABLE pay (id int, owner text, salary int) PARTITION BY RANGE (id);
CREATE TABLE pay_1 PARTITION OF pay FOR VALUES FROM (0) TO (10);
INSERT INTO pay VALUES (1, 'kid_ben', 100);
ALTER TABLE pay OWNER TO kids_owner;
ALTER TABLE pay_1 OWNER TO kids_owner;
SELECT fluent_protect('pay', 'kids', 'owner');
SELECT fluent_protect_columns('pay', '{salary}', 'kids', write_action => 'write_pay') IS NOT NULL AS limited;
CREATE TABLE pay_2 PARTITION OF pay FOR VALUES FROM (10) TO (20);
CREATE TABLE pay_3 (id int, owner text, salary int);
ALTER TABLE pay ATTACH PARTITION pay_3 FOR VALUES FROM (20) TO (30);
INSERT INTO pay VALUES (11, 'kid_ben', 110), (21, 'kid_ben', 210);
SELECT tgrelid::regclass AS relation, tgname, tgparentid <> 0 AS cloned FROM pg_trigger
 WHERE tgfoid = 'fluent._check_column_writes()'::regprocedure ORDER BY tgrelid::regclass::text COLLATE "C";
GRANT SELECT (id, owner), UPDATE ON pay TO app;
SET ROLE app;
SELECT act_as('kid_cy');
SELECT try($$UPDATE pay SET salary = 1 WHERE id = 1$$) AS partition_before;
SELECT try($$UPDATE pay SET salary = 1 WHERE id = 11$$) AS partition_created_later;
SELECT try($$UPDATE pay SET salary = 1 WHERE id = 21$$) AS partition_attached_later;
SELECT act_as(NULL);
RESET ROLE;
SELECT fluent_unprotect('pay');
SELECT count(*) AS triggers_after_unprotect FROM pg_trigger WHERE tgfoid = 'fluent._check_column_writes()'::regprocedure;

-- 3. Partitions of a membership table -------------------------------------------
-- A partition existing at fluent_protect time, one created later and one
-- attached later get the membership policies: writes to them stay within
-- the writer's reach, as writes to the membership table do.
CREATE TABLE projects (id int PRIMARY KEY, owner text);
CREATE TABLE members (project_id int, user_key text) PARTITION BY LIST (user_key);
CREATE TABLE members_ben PARTITION OF members FOR VALUES IN ('kid_ben');
CREATE INDEX ON members (user_key);
INSERT INTO projects VALUES (1, 'kid_ann'), (2, 'kid_ben');
INSERT INTO members VALUES (2, 'kid_ben');
SELECT fluent_protect('projects', 'kids', 'owner', membership_table => 'members',
                      membership_row_column => 'project_id', membership_user_column => 'user_key');
CREATE TABLE members_all PARTITION OF members DEFAULT;
CREATE TABLE members_cy (project_id int, user_key text);
ALTER TABLE members ATTACH PARTITION members_cy FOR VALUES IN ('kid_cy');
SELECT c.oid::regclass AS relation, c.relrowsecurity, c.relforcerowsecurity,
       array(SELECT polname FROM pg_policy WHERE polrelid = c.oid ORDER BY 1) AS policies
  FROM pg_class c WHERE c.oid IN ('members'::regclass, 'members_ben'::regclass, 'members_all'::regclass, 'members_cy'::regclass)
 ORDER BY c.relname COLLATE "C";
-- fluent.protection_status finds them as fluent made them.
SELECT intact, problems FROM fluent.protection_status WHERE table_name = 'projects'::regclass;
GRANT SELECT ON projects TO app;
GRANT SELECT, INSERT, UPDATE, DELETE ON members, members_ben, members_all, members_cy TO app;
SET ROLE app;
SELECT act_as('kid_ann');
SELECT try($$INSERT INTO members VALUES (2, 'kid_ann')$$) AS through_membership_table;
SELECT try($$INSERT INTO members_all VALUES (2, 'kid_ann')$$) AS partition_created_later;
SELECT try($$INSERT INTO members_ben VALUES (2, 'kid_ben')$$) AS partition_before;
SELECT try($$INSERT INTO members_cy VALUES (2, 'kid_cy')$$) AS partition_attached_later;
-- Rows she cannot write are neither changed nor removed.
WITH u AS (UPDATE members_ben SET project_id = 1 RETURNING 1) SELECT count(*) AS updated_hidden FROM u;
WITH d AS (DELETE FROM members_ben RETURNING 1) SELECT count(*) AS deleted_hidden FROM d;
-- ann still sees only her project, and her own assignments are hers to write.
SELECT id, owner FROM projects ORDER BY id;
SELECT try($$INSERT INTO members_all VALUES (1, 'kid_ann')$$) AS assign_to_own;
SELECT act_as(NULL);
RESET ROLE;
SELECT project_id, user_key, tableoid::regclass AS stored_in FROM members ORDER BY 1, 2;
-- Unprotecting removes them from every partition.
SELECT fluent_unprotect('projects');
SELECT c.oid::regclass AS relation, c.relrowsecurity, c.relforcerowsecurity,
       (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid) AS policies
  FROM pg_class c WHERE c.oid IN ('members'::regclass, 'members_ben'::regclass, 'members_all'::regclass, 'members_cy'::regclass)
 ORDER BY c.relname COLLATE "C";

-- 4. Inheritance children of a membership table -----------------------------
CREATE TABLE tasks (id int PRIMARY KEY, owner text);
CREATE TABLE task_members (task_id int, user_key text);
CREATE TABLE task_members_old () INHERITS (task_members);
INSERT INTO tasks VALUES (1, 'kid_ann'), (2, 'kid_ben');
INSERT INTO task_members_old VALUES (2, 'kid_ben');
SELECT fluent_protect('tasks', 'kids', 'owner', membership_table => 'task_members',
                      membership_row_column => 'task_id', membership_user_column => 'user_key');
CREATE TABLE task_members_new () INHERITS (task_members);
CREATE TABLE task_members_adopted (task_id int, user_key text);
ALTER TABLE task_members_adopted INHERIT task_members;
SELECT intact, problems FROM fluent.protection_status WHERE table_name = 'tasks'::regclass;
GRANT SELECT ON tasks TO app;
GRANT SELECT, INSERT, DELETE ON task_members, task_members_old, task_members_new, task_members_adopted TO app;
SET ROLE app;
SELECT act_as('kid_ann');
SELECT try($$INSERT INTO task_members VALUES (2, 'kid_ann')$$) AS through_membership_table;
SELECT try($$INSERT INTO task_members_old VALUES (2, 'kid_ann')$$) AS child_before;
SELECT try($$INSERT INTO task_members_new VALUES (2, 'kid_ann')$$) AS child_created_later;
SELECT try($$INSERT INTO task_members_adopted VALUES (2, 'kid_ann')$$) AS child_adopted_later;
SELECT id, owner FROM tasks ORDER BY id;
SELECT act_as(NULL);
RESET ROLE;
SELECT fluent_unprotect('tasks');
SELECT count(*) AS policies_left FROM pg_policy
 WHERE polrelid IN ('task_members'::regclass, 'task_members_old'::regclass, 'task_members_new'::regclass,
                    'task_members_adopted'::regclass);

-- 5. Permissive policies on a membership table's partition ------------------
-- fluent_protect refused them on the table, its partitions and children and
-- its membership table, not on the membership table's partitions (OR-ed
-- with fluent's, they would widen access).
CREATE POLICY anyone ON members_all USING (true);
SELECT try($$SELECT fluent_protect('projects', 'kids', 'owner', membership_table => 'members',
                                   membership_row_column => 'project_id', membership_user_column => 'user_key')$$) AS permissive_on_partition;
SELECT count(*) AS protected FROM fluent.protected_tables WHERE table_name = 'projects'::regclass;
ROLLBACK;
