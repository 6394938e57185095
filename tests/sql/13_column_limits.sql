-- Column-level limits (seed 001's notes) on the fluent template's
-- interpreter directory: "Some workspaces restrict Billing from seeing
-- interpreter personal data"; "Some workspaces allow Schedulers to edit
-- interpreters (basic fields only)".
BEGIN;
SET search_path = public, test_helpers;
SET client_min_messages = warning;
SELECT fluent_create_workspace('directory'), fluent_set_workspace('directory'), fluent_apply_template('fluent');
SELECT fluent_create_user(u) FROM unnest('{dir_olga,dir_sid,dir_bill,dir_cora}'::text[]) u;
SELECT fluent_grant_role('dir_olga', 'owner'), fluent_grant_role('dir_sid', 'scheduler'), fluent_grant_role('dir_bill', 'billing'),
       fluent_grant_role('dir_cora', 'compliance');
-- The directory belongs to the application's schema owner, not a superuser:
-- the masked view reads it with its owner's rights, under the policies.
CREATE ROLE directory_owner NOLOGIN;
CREATE TABLE interpreters (id int PRIMARY KEY, manager text, ws text, name text, languages text,
                           email text, phone varchar(20), home_address text, hourly_rate numeric, notes varchar(200));
CREATE INDEX ON interpreters (manager);
INSERT INTO interpreters VALUES
    (1, 'dir_bill', 'directory', 'Ana', 'es', 'ana@example.org', '555-0101', '1 Main St', 40, 'prefers mornings'),
    (2, 'dir_sid',  'directory', 'Bo',  'fr', 'bo@example.org',  '555-0102', '2 Oak Ave', 45, NULL);
ALTER TABLE interpreters OWNER TO directory_owner;
SELECT fluent_protect('interpreters', 'interpreters', 'manager', workspace_column => 'ws', delete_action => 'write');
-- Personal data takes read_personal to see; everything beyond the basic
-- fields (name, languages) takes write_profile to change.
SELECT fluent_protect_columns('interpreters', '{email,phone,home_address}', 'interpreters',
                              read_action => 'read_personal', write_action => 'write_profile') AS masked_view;
SELECT fluent_protect_columns('interpreters', '{hourly_rate,notes}', 'interpreters', write_action => 'write_profile');
SELECT column_name, module, read_action, write_action FROM fluent.protected_columns ORDER BY column_name;
SELECT masked_view FROM fluent.protected_tables WHERE table_name = 'interpreters'::regclass;
-- The application reads the masked view; on the table it may read and
-- change the basic fields only, and change (not read) the others.
GRANT SELECT ON interpreters_masked TO app;
GRANT SELECT (id, manager, ws, name, languages), INSERT, UPDATE ON interpreters TO app;

SET ROLE app;
-- Compliance sees everything; billing sees its own interpreters with their
-- personal data (the template's default).
SELECT act_as('dir_cora');
SELECT id, name, email, phone, home_address, hourly_rate FROM interpreters_masked ORDER BY id;
SELECT act_as('dir_bill');
SELECT id, name, email, phone, home_address, hourly_rate FROM interpreters_masked ORDER BY id;
-- The table itself keeps the limited columns from the application role.
SELECT try($$SELECT email FROM interpreters$$) AS direct_read;
SELECT act_as(NULL);
RESET ROLE;

-- This workspace restricts Billing from seeing interpreter personal data:
-- the rest of the row stays readable.
SELECT fluent_set_permission('billing', 'interpreters', 'read_personal', 'none');
SET ROLE app;
SELECT act_as('dir_bill');
SELECT id, name, languages, email, phone, home_address, hourly_rate FROM interpreters_masked ORDER BY id;
-- Planned like the hand-written query: the masked columns are NULL
-- constants, those read at scope own a comparison with the user's key, no
-- function is called per row.
EXPLAIN (VERBOSE, COSTS OFF) SELECT name, email, hourly_rate FROM interpreters_masked;
SELECT act_as('dir_cora');
EXPLAIN (VERBOSE, COSTS OFF) SELECT name, email FROM interpreters_masked;

-- Schedulers edit the basic fields of any interpreter, nothing more.
SELECT act_as('dir_sid');
SELECT try($$UPDATE interpreters SET languages = 'es, pt' WHERE id = 1$$) AS sid_basic_field;
SELECT try($$UPDATE interpreters SET hourly_rate = 99 WHERE id = 1$$) AS sid_rate;
SELECT try($$UPDATE interpreters SET email = 'new@example.org', name = 'Ana M.' WHERE id = 1$$) AS sid_email;
SELECT try($$INSERT INTO interpreters (id, manager, ws, name) VALUES (3, 'dir_sid', 'directory', 'Cy')$$) AS sid_adds_basic;
SELECT try($$INSERT INTO interpreters (id, manager, ws, name, phone) VALUES (4, 'dir_sid', 'directory', 'Di', '555')$$) AS sid_adds_phone;
-- The hint names the column and the permission.
SET client_min_messages = notice;
DO $$
DECLARE
    hint text;
BEGIN
    UPDATE interpreters SET notes = 'x' WHERE id = 2;
EXCEPTION WHEN insufficient_privilege THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    RAISE NOTICE '%', hint;
END $$;
SET client_min_messages = warning;
SELECT act_as('dir_cora');
SELECT try($$UPDATE interpreters SET hourly_rate = 50, email = 'ana@new.example.org' WHERE id = 1$$) AS cora_profile;
SELECT id, name, languages, email, hourly_rate FROM interpreters_masked ORDER BY id;
SELECT act_as(NULL);
RESET ROLE;

-- Like the row policies, the limits do not apply to superusers and
-- BYPASSRLS roles (here acting for nobody, whom the trigger would refuse).
UPDATE interpreters SET hourly_rate = 41 WHERE id = 2;
CREATE ROLE directory_bypass BYPASSRLS;
GRANT SELECT, UPDATE ON interpreters TO directory_bypass;
SET ROLE directory_bypass;
UPDATE interpreters SET hourly_rate = 42 WHERE id = 2;
RESET ROLE;
REVOKE ALL ON interpreters FROM directory_bypass;
SELECT hourly_rate AS written_past_the_limits FROM interpreters WHERE id = 2;

-- A role that can read a limited column on the table itself is reported.
SELECT intact, problems FROM fluent.protection_status WHERE table_name = 'interpreters'::regclass;
GRANT SELECT ON interpreters TO web;
SELECT intact, cardinality(problems) AS problems, problems[1] AS first
  FROM fluent.protection_status WHERE table_name = 'interpreters'::regclass;
REVOKE SELECT ON interpreters FROM web;
-- A reporting role (app holds fluent_reader) reads the status too.
SET ROLE app;
SELECT intact FROM fluent.protection_status WHERE table_name = 'interpreters'::regclass;
RESET ROLE;

-- Mistakes are refused, and nothing is half-applied.
CREATE TABLE plain_directory (id int PRIMARY KEY, manager text, email text);
SELECT try($$SELECT fluent_protect_columns('plain_directory', '{email}', 'interpreters')$$) AS unprotected;
SELECT fluent_protect('plain_directory', 'interpreters', 'manager');
SELECT try($$SELECT fluent_protect_columns('plain_directory', '{email}', 'interpreters')$$) AS superuser_owned;
ALTER TABLE plain_directory OWNER TO directory_bypass;
SELECT try($$SELECT fluent_protect_columns('plain_directory', '{email}', 'interpreters')$$) AS bypassrls_owned;
ALTER TABLE plain_directory OWNER TO directory_owner;
SELECT try($$SELECT fluent_protect_columns('plain_directory', '{mail}', 'interpreters')$$) AS unknown_column;
CREATE TABLE plain_directory_masked (x int);
SELECT try($$SELECT fluent_protect_columns('plain_directory', '{email}', 'interpreters')$$) AS name_taken;
SELECT count(*) AS limits_left FROM fluent.protected_columns WHERE table_name = 'plain_directory'::regclass;
SELECT fluent_protect_columns('plain_directory', '{email}', 'interpreters', masked_view => 'directory_view');

-- Removing limits: the view shows the column again, and goes with the last
-- limit, or with the protection.
SELECT fluent_unprotect_columns('interpreters', '{hourly_rate,notes}');
SELECT column_name FROM fluent.protected_columns WHERE table_name = 'interpreters'::regclass ORDER BY 1;
-- A column added later joins the view when the limits are set again; the
-- grants on the view survive.
ALTER TABLE interpreters ADD COLUMN rating int;
SELECT fluent_protect_columns('interpreters', '{email}', 'interpreters',
                              read_action => 'read_personal', write_action => 'write_profile');
SET ROLE app;
SELECT act_as('dir_bill');
SELECT id, email, hourly_rate, rating FROM interpreters_masked ORDER BY id;
SELECT act_as(NULL);
RESET ROLE;
SELECT fluent_unprotect('plain_directory');
SELECT to_regclass('directory_view') AS view_after_unprotect,
       (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'plain_directory'::regclass AND tgname LIKE 'fluent\_column\_limits%') AS triggers_left;
SELECT fluent_unprotect_columns('interpreters');
SELECT to_regclass('interpreters_masked') AS view_after_last_limit;
SELECT fluent_set_workspace('default');
ROLLBACK;
