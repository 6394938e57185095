-- Issue 20, item 7: README claims that had no test, each asserted as the
-- README words it (quoted at the head of its section). The cross-session
-- ones are in pgrx-tests: fluent.token_settings not dumped (backup.rs),
-- RESET ALL by the application role (identity.rs).
BEGIN;
SET search_path = public, test_helpers;
SET client_min_messages = warning;
-- A statement's SQLSTATE, message and hint, or 'ok'.
CREATE FUNCTION pg_temp.try_hint(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    hint text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' (' || nullif(hint, '') || ')', '');
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.try_hint(text) TO PUBLIC;
-- Row-level security and the count of fluent's policies on each relation.
CREATE FUNCTION pg_temp.rls(rels regclass[]) RETURNS TABLE (relation regclass, enabled boolean, forced boolean, policies bigint)
LANGUAGE sql AS $$
    SELECT c.oid::regclass, c.relrowsecurity, c.relforcerowsecurity,
           (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)
      FROM pg_class c WHERE c.oid = ANY (rels) ORDER BY c.relname COLLATE "C"
$$;

-- Workspace claims: ann and bob read and write their own documents, the
-- boss does everything to all of them.
SELECT fluent_create_workspace('claims'), fluent_set_workspace('claims');
SELECT fluent_create_module('claims_docs');
SELECT fluent_create_role('claims_clerk'), fluent_set_permission('claims_clerk', 'claims_docs', 'read', 'own'),
       fluent_set_permission('claims_clerk', 'claims_docs', 'write', 'own');
SELECT fluent_create_role('claims_chief');
SELECT fluent_set_permission('claims_chief', 'claims_docs', a, 'all') FROM unnest('{read,write,delete}'::text[]) a;
SELECT fluent_create_user(u) FROM unnest('{claims_ann,claims_bob,claims_boss}'::text[]) u;
SELECT fluent_grant_role('claims_ann', 'claims_clerk'), fluent_grant_role('claims_bob', 'claims_clerk'),
       fluent_grant_role('claims_boss', 'claims_chief');

-- 1. "fluent_protect ... tells you when the membership table has no index
-- on its user column." -------------------------------------------------------
SET client_min_messages = notice;
CREATE TABLE claims_files (id int PRIMARY KEY, owner text);
CREATE TABLE claims_file_members (file_id int, user_key text);
SELECT fluent_protect('claims_files', 'claims_docs', 'owner', membership_table => 'claims_file_members',
                      membership_row_column => 'file_id', membership_user_column => 'user_key');
SELECT fluent_unprotect('claims_files');
-- with the index: nothing to tell
CREATE INDEX ON claims_file_members (user_key);
SELECT fluent_protect('claims_files', 'claims_docs', 'owner', membership_table => 'claims_file_members',
                      membership_row_column => 'file_id', membership_user_column => 'user_key');
SET client_min_messages = warning;

-- 2. "A partition created ... or attached (ATTACH PARTITION, INHERIT) later
-- gets them too, from an event trigger, unless it already has row-level
-- security enabled (...; fluent.protection_status reports such a table if
-- it lacks fluent's policies)"; "A partition or child that had row-level
-- security enabled before it was attached is not given fluent's policies
-- automatically (see above); the status view reports it." -----------------
CREATE TABLE claims_parts (id int, owner text) PARTITION BY RANGE (id);
CREATE TABLE claims_kids (id int, owner text);
SELECT fluent_protect('claims_parts', 'claims_docs', 'owner');
SELECT fluent_protect('claims_kids', 'claims_docs', 'owner');
CREATE TABLE claims_parts_plain (id int, owner text);
CREATE TABLE claims_parts_secured (id int, owner text);
ALTER TABLE claims_parts_secured ENABLE ROW LEVEL SECURITY;
ALTER TABLE claims_parts ATTACH PARTITION claims_parts_plain FOR VALUES FROM (0) TO (100);
ALTER TABLE claims_parts ATTACH PARTITION claims_parts_secured FOR VALUES FROM (100) TO (200);
CREATE TABLE claims_kids_secured (id int, owner text);
ALTER TABLE claims_kids_secured ENABLE ROW LEVEL SECURITY;
ALTER TABLE claims_kids_secured INHERIT claims_kids;
SELECT * FROM pg_temp.rls('{claims_parts,claims_parts_plain,claims_parts_secured,claims_kids,claims_kids_secured}');
SELECT table_name, relation, problem FROM fluent_protection_problems()
 WHERE table_name IN ('claims_parts'::regclass, 'claims_kids'::regclass) ORDER BY table_name::text, relation::text, problem;
SELECT table_name, intact, (SELECT array_agg(x ORDER BY x) FROM unnest(problems) x) AS problems FROM fluent.protection_status
 WHERE table_name IN ('claims_parts'::regclass, 'claims_kids'::regclass) ORDER BY table_name::text;
-- a restore's own policies are then created, and the status is intact again
DO $$
DECLARE
    pol record;
BEGIN
    FOR pol IN SELECT p.polname, p.polcmd, pg_get_expr(p.polqual, p.polrelid) AS qual,
                      pg_get_expr(p.polwithcheck, p.polrelid) AS checks,
                      p.polpermissive, obj_description(p.oid, 'pg_policy') AS note
                 FROM pg_policy p WHERE p.polrelid = 'claims_parts_plain'::regclass LOOP
        EXECUTE format('CREATE POLICY %I ON claims_parts_secured AS %s FOR %s TO PUBLIC %s %s', pol.polname,
                       CASE WHEN pol.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                       CASE pol.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                                       WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                       coalesce('USING (' || pol.qual || ')', ''), coalesce('WITH CHECK (' || pol.checks || ')', ''));
        EXECUTE format('COMMENT ON POLICY %I ON claims_parts_secured IS %L', pol.polname, pol.note);
    END LOOP;
END $$;
ALTER TABLE claims_parts_secured FORCE ROW LEVEL SECURITY;
ALTER TABLE claims_kids_secured NO INHERIT claims_kids;
SELECT table_name, intact FROM fluent.protection_status
 WHERE table_name IN ('claims_parts'::regclass, 'claims_kids'::regclass) ORDER BY table_name::text;

-- 3. "... or attached (ATTACH PARTITION, INHERIT) later gets them too":
-- ALTER TABLE ... INHERIT. ----------------------------------------------------
CREATE TABLE claims_kids_adopted (id int, owner text);
INSERT INTO claims_kids_adopted VALUES (1, 'claims_ann'), (2, 'claims_bob');
ALTER TABLE claims_kids_adopted INHERIT claims_kids;
SELECT * FROM pg_temp.rls('{claims_kids_adopted}');
GRANT SELECT ON claims_kids, claims_kids_adopted TO app;
SET ROLE app;
SELECT act_as('claims_ann');
SELECT 'claims_kids_adopted' AS queried, * FROM claims_kids_adopted
UNION ALL SELECT 'claims_kids', * FROM claims_kids ORDER BY 1, 2;
SELECT act_as(NULL);
RESET ROLE;
SELECT table_name, intact FROM fluent.protection_status WHERE table_name = 'claims_kids'::regclass;

-- 4. fluent.protection_status reports "materialized views over them,
-- whoever owns them (a materialized view stores what the session that
-- refreshed it saw)". ---------------------------------------------------------
CREATE ROLE claims_analyst NOLOGIN;
CREATE TABLE claims_ledger (id int PRIMARY KEY, owner text);
INSERT INTO claims_ledger VALUES (1, 'claims_ann'), (2, 'claims_bob');
SELECT fluent_protect('claims_ledger', 'claims_docs', 'owner');
GRANT SELECT ON claims_ledger TO claims_analyst, app;
GRANT CREATE ON SCHEMA public TO claims_analyst;
SELECT table_name, intact FROM fluent.protection_status WHERE table_name = 'claims_ledger'::regclass;
-- one by a superuser (every row), one by another role refreshed while ann acted
CREATE MATERIALIZED VIEW claims_ledger_all AS SELECT id, owner FROM claims_ledger;
SET ROLE claims_analyst;
SELECT act_as('claims_ann');
CREATE MATERIALIZED VIEW claims_ledger_ann AS SELECT id, owner FROM claims_ledger;
SELECT act_as(NULL);
RESET ROLE;
SELECT (SELECT count(*) FROM claims_ledger_all) AS superuser_snapshot_rows,
       (SELECT count(*) FROM claims_ledger_ann) AS analyst_snapshot_rows;
SELECT relation, problem, detail FROM fluent_protection_problems() WHERE table_name = 'claims_ledger'::regclass ORDER BY relation::text;
SELECT table_name, intact, problems FROM fluent.protection_status WHERE table_name = 'claims_ledger'::regclass;
DROP MATERIALIZED VIEW claims_ledger_all, claims_ledger_ann;
SELECT table_name, intact FROM fluent.protection_status WHERE table_name = 'claims_ledger'::regclass;

-- 5. fluent_apply_template "never touches a custom role (a custom role that
-- already has a template role's name is left alone, with a NOTICE)". ------------
SELECT fluent_create_workspace('claims_tpl'), fluent_set_workspace('claims_tpl');
SELECT fluent_create_module('appointments', '{read}');
SELECT fluent_create_role('viewer', 'our own viewer'), fluent_set_permission('viewer', 'appointments', 'read', 'own');
SET client_min_messages = notice;
SELECT fluent_apply_template('fluent');
SET client_min_messages = warning;
SELECT name, description, template, template_role, privileged, grants_sign_in FROM fluent.roles
 WHERE workspace_id = (SELECT workspace_id FROM fluent.workspaces WHERE name = 'claims_tpl') AND name IN ('viewer', 'scheduler')
 ORDER BY name;
SELECT role, module, action, scope, setting FROM fluent.permission_matrix
 WHERE workspace = 'claims_tpl' AND role = 'viewer' AND setting <> 'unset' ORDER BY module, action;
SELECT count(*) AS viewer_lists_assignable FROM fluent.assignable_roles ar JOIN fluent.roles r ON r.role_id = ar.role_id
 WHERE r.workspace_id = (SELECT workspace_id FROM fluent.workspaces WHERE name = 'claims_tpl') AND r.name = 'viewer';
SELECT count(*) AS viewer_in_template_diff FROM fluent.role_template_diff WHERE workspace = 'claims_tpl' AND role = 'viewer';
-- applying it again: the same NOTICE, still left alone
SET client_min_messages = notice;
SELECT fluent_apply_template('fluent');
SET client_min_messages = warning;
SELECT count(*) AS viewer_settings FROM fluent.permission_matrix
 WHERE workspace = 'claims_tpl' AND role = 'viewer' AND setting <> 'unset';
SELECT fluent_set_workspace('claims');

-- 6. fluent_who_can: "P0002, 21000 | fluent_who_can given a key no row has,
-- or several rows have". --------------------------------------------------------
-- A primary key does not span inheritance children: row 1 is in both.
CREATE TABLE claims_cases (id int PRIMARY KEY, owner text);
CREATE TABLE claims_cases_old () INHERITS (claims_cases);
INSERT INTO claims_cases VALUES (1, 'claims_ann'), (2, 'claims_bob');
INSERT INTO claims_cases_old VALUES (1, 'claims_bob');
SELECT fluent_protect('claims_cases', 'claims_docs', 'owner');
SELECT pg_temp.try_hint($$SELECT * FROM fluent_who_can('claims_cases', '1')$$) AS two_rows;
SELECT pg_temp.try_hint($$SELECT * FROM fluent_who_can('claims_cases', '3')$$) AS no_row;
SELECT user_key, scope, reach FROM fluent_who_can('claims_cases', '2') ORDER BY user_key;

-- 7. "an action the module lacks is named in a warning and denies that
-- command to everyone" (the boss holds all on every action the module has).
CREATE TABLE claims_notes (id int PRIMARY KEY, owner text);
INSERT INTO claims_notes VALUES (1, 'claims_boss'), (2, 'claims_ann');
GRANT SELECT, INSERT, UPDATE, DELETE ON claims_notes TO app;
SELECT fluent_protect('claims_notes', 'claims_docs', 'owner', insert_action => 'create', delete_action => 'purge');
SET ROLE app;
SELECT act_as('claims_boss');
SELECT count(*) AS boss_reads FROM claims_notes;
SELECT try($$INSERT INTO claims_notes VALUES (3, 'claims_boss')$$) AS boss_inserts;
WITH changed AS (UPDATE claims_notes SET owner = owner RETURNING id) SELECT count(*) AS boss_updates FROM changed;
WITH gone AS (DELETE FROM claims_notes RETURNING id) SELECT count(*) AS boss_deletes FROM gone;
SELECT act_as(NULL);
RESET ROLE;
SELECT count(*) AS rows_left FROM claims_notes;

-- 8. "a module (or one action of it) may require another permission
-- (fluent_set_requirement(module, required_module, required_action, action
-- DEFAULT NULL) ...): a user who holds it at no scope gets none there,
-- whatever else they hold; fluent_explain shows the missing requirement and
-- effective_permissions the source requirement". One action of it: -------------
SELECT fluent_create_module('claims_keys', '{hold}');
SELECT fluent_create_role('claims_keyholder'), fluent_set_permission('claims_keyholder', 'claims_keys', 'hold', 'own');
CREATE TABLE claims_vault (id int PRIMARY KEY, owner text);
INSERT INTO claims_vault VALUES (1, 'claims_ann'), (2, 'claims_bob');
GRANT SELECT, INSERT, UPDATE, DELETE ON claims_vault TO app;
SELECT fluent_protect('claims_vault', 'claims_docs', 'owner');
SELECT fluent_set_requirement('claims_docs', 'claims_keys', 'hold', action => 'write');
-- whatever else they hold: roles at all, and an override at all
SELECT fluent_set_override('claims_boss', 'claims_docs', 'write', 'all');
SELECT a AS action, fluent_scope('claims_boss', 'claims_docs', a) AS boss
  FROM unnest('{read,write,delete}'::text[]) a;
SELECT step, fact, subject, scope, detail FROM fluent_explain('claims_boss', 'claims_docs', 'write')
 WHERE fact IN ('requirement', 'result');
SELECT action, scope, source FROM fluent.effective_permissions
 WHERE workspace = 'claims' AND user_key = 'claims_boss' AND module = 'claims_docs' ORDER BY action;
SET ROLE app;
SELECT act_as('claims_boss');
SELECT count(*) AS boss_reads FROM claims_vault;
SELECT try($$INSERT INTO claims_vault VALUES (3, 'claims_boss')$$) AS boss_inserts;
WITH changed AS (UPDATE claims_vault SET owner = owner RETURNING id) SELECT count(*) AS boss_updates FROM changed;
SELECT act_as(NULL);
RESET ROLE;
-- holding the requirement at any scope lifts it
SELECT fluent_grant_role('claims_boss', 'claims_keyholder');
SELECT fluent_scope('claims_boss', 'claims_docs', 'write') AS boss_write_with_key;
SET ROLE app;
SELECT act_as('claims_boss');
WITH changed AS (UPDATE claims_vault SET owner = owner RETURNING id) SELECT count(*) AS boss_updates_with_key FROM changed;
SELECT act_as(NULL);
RESET ROLE;
SELECT fluent_clear_requirement('claims_docs', 'write'), fluent_clear_override('claims_boss', 'claims_docs', 'write'),
       fluent_revoke_role('claims_boss', 'claims_keyholder');

-- 9. "42703, 42804, 42809 | fluent_protect given a missing column, a column
-- of an unusable type, or something that is not a table". ------------------------
CREATE VIEW claims_doc_view AS SELECT 1 AS id, 'claims_ann'::text AS owner;
CREATE MATERIALIZED VIEW claims_doc_snapshot AS SELECT 1 AS id, 'claims_ann'::text AS owner;
CREATE SEQUENCE claims_doc_seq;
CREATE TYPE claims_doc_type AS (id int, owner text);
CREATE TABLE claims_papers (id int PRIMARY KEY, owner text);
CREATE TABLE claims_paper_readers (paper_id int REFERENCES claims_papers, user_key text);
CREATE VIEW claims_paper_readers_view AS SELECT * FROM claims_paper_readers;
SELECT rel, try(format('SELECT fluent_protect(%L, ''claims_docs'', ''owner'')', rel)) AS protect
  FROM unnest('{claims_doc_view,claims_doc_snapshot,claims_doc_seq,claims_doc_type}'::text[]) rel;
SELECT try($$SELECT fluent_protect('claims_papers', 'claims_docs', membership_table => 'claims_paper_readers_view',
                                   membership_row_column => 'paper_id', membership_user_column => 'user_key')$$) AS membership_view;
SELECT count(*) AS protected FROM fluent.protected_tables WHERE table_name::text LIKE 'claims_paper%' OR table_name::text LIKE 'claims_doc_%';

-- 10. Drops that succeed. ------------------------------------------------------
-- fluent_drop_module: "Drops a module with its submodules, actions,
-- permissions and overrides" (its COMMENT); "A module the current workspace
-- does not have denies every row."
SELECT fluent_create_module('claims_reports'), fluent_create_module('claims_reports_sub', parent => 'claims_reports');
SELECT fluent_create_role('claims_reporter'), fluent_set_permission('claims_reporter', 'claims_reports', 'read', 'all'),
       fluent_set_permission('claims_reporter', 'claims_reports_sub', 'read', 'own');
SELECT fluent_create_user('claims_rita'), fluent_grant_role('claims_rita', 'claims_reporter'),
       fluent_set_override('claims_rita', 'claims_reports_sub', 'write', 'all');
CREATE TABLE claims_report_rows (id int PRIMARY KEY, owner text);
INSERT INTO claims_report_rows VALUES (1, 'claims_rita'), (2, 'claims_ann');
GRANT SELECT ON claims_report_rows TO app;
SELECT fluent_protect('claims_report_rows', 'claims_reports', 'owner');
CREATE TEMP TABLE claims_dropped AS
SELECT module_id, (SELECT array_agg(action_id) FROM fluent.actions a WHERE a.module_id = m.module_id) AS actions
  FROM fluent.modules m WHERE m.name IN ('claims_reports', 'claims_reports_sub');
SELECT (SELECT count(*) FROM claims_dropped) AS modules,
       (SELECT count(*) FROM fluent.actions WHERE module_id IN (SELECT module_id FROM claims_dropped)) AS actions,
       (SELECT count(*) FROM fluent.permissions WHERE action_id IN (SELECT unnest(actions) FROM claims_dropped)) AS permissions,
       (SELECT count(*) FROM fluent.overrides WHERE action_id IN (SELECT unnest(actions) FROM claims_dropped)) AS overrides;
SET ROLE app;
SELECT act_as('claims_rita');
SELECT count(*) AS rita_reads_before FROM claims_report_rows;
RESET ROLE;
SET ROLE dba;
SELECT fluent_drop_module('claims_reports');
RESET ROLE;
SELECT (SELECT count(*) FROM fluent.modules WHERE module_id IN (SELECT module_id FROM claims_dropped)) AS modules,
       (SELECT count(*) FROM fluent.actions WHERE module_id IN (SELECT module_id FROM claims_dropped)) AS actions,
       (SELECT count(*) FROM fluent.permissions WHERE action_id IN (SELECT unnest(actions) FROM claims_dropped)) AS permissions,
       (SELECT count(*) FROM fluent.overrides WHERE action_id IN (SELECT unnest(actions) FROM claims_dropped)) AS overrides;
SELECT try($$SELECT fluent_can('claims_rita', 'claims_reports_sub', 'read')$$) AS submodule_after;
SET ROLE app;
SELECT act_as('claims_rita');
SELECT count(*) AS rita_reads_after FROM claims_report_rows;
SELECT act_as(NULL);
RESET ROLE;
-- audited, the submodule too, as the role that dropped them
SELECT table_name, operation, db_role, before ->> 'name' AS module FROM fluent.audit_log
 WHERE transaction_id = pg_current_xact_id() AND operation = 'DELETE' AND table_name = 'modules'
 ORDER BY audit_id;

-- fluent_drop_team: "Drops a team and its memberships" (its COMMENT): its
-- lead no longer reaches its members' rows.
SELECT fluent_create_role('claims_lead'), fluent_set_permission('claims_lead', 'claims_docs', 'read', 'direct');
SELECT fluent_create_user('claims_lee'), fluent_grant_role('claims_lee', 'claims_lead');
SELECT fluent_create_team('claims_squad'), fluent_add_team_member('claims_squad', 'claims_lee', true),
       fluent_add_team_member('claims_squad', 'claims_ann');
CREATE TEMP TABLE claims_team AS SELECT team_id FROM fluent.teams WHERE name = 'claims_squad';
SET ROLE app;
SELECT act_as('claims_lee');
SELECT string_agg(owner, ',' ORDER BY id) AS lee_reads_before FROM claims_ledger;
RESET ROLE;
SET ROLE dba;
SELECT fluent_drop_team('claims_squad');
RESET ROLE;
SELECT (SELECT count(*) FROM fluent.teams WHERE team_id IN (SELECT team_id FROM claims_team)) AS teams,
       (SELECT count(*) FROM fluent.team_members WHERE team_id IN (SELECT team_id FROM claims_team)) AS members;
SET ROLE app;
SELECT act_as('claims_lee');
SELECT count(*) AS lee_reads_after FROM claims_ledger;
SELECT act_as(NULL);
RESET ROLE;

-- fluent_drop_role: "Drops a role with its permissions and grants" (its
-- COMMENT): its holder keeps only what other roles give.
CREATE TEMP TABLE claims_role AS SELECT role_id FROM fluent.roles WHERE name = 'claims_chief';
SELECT (SELECT count(*) FROM fluent.permissions WHERE role_id IN (SELECT role_id FROM claims_role)) AS permissions,
       (SELECT count(*) FROM fluent.grants WHERE role_id IN (SELECT role_id FROM claims_role)) AS grants;
SET ROLE dba;
SELECT fluent_drop_role('claims_chief');
RESET ROLE;
SELECT (SELECT count(*) FROM fluent.roles WHERE role_id IN (SELECT role_id FROM claims_role)) AS roles,
       (SELECT count(*) FROM fluent.permissions WHERE role_id IN (SELECT role_id FROM claims_role)) AS permissions,
       (SELECT count(*) FROM fluent.grants WHERE role_id IN (SELECT role_id FROM claims_role)) AS grants;
SELECT fluent_scope('claims_boss', 'claims_docs', 'read') AS boss_read, fluent_scope('claims_boss', 'claims_docs', 'write') AS boss_write;
SELECT count(*) AS boss_still_a_user FROM fluent.users WHERE user_key = 'claims_boss';
SET ROLE app;
SELECT act_as('claims_boss');
SELECT count(*) AS boss_reads_after FROM claims_ledger;
SELECT act_as(NULL);
RESET ROLE;

-- fluent_clear_admin_right: "Stops the module action giving the
-- administrative right" (its COMMENT); a delegated administrator without
-- it is refused "with 42501 and a hint naming the missing right".
SELECT fluent_create_module('claims_people', '{write}');
SELECT fluent_create_role('claims_hr'), fluent_set_permission('claims_hr', 'claims_people', 'write', 'all');
SELECT fluent_create_user('claims_hana'), fluent_grant_role('claims_hana', 'claims_hr');
SELECT fluent_set_admin_right('manage_users', 'claims_people', 'write');
SET ROLE app;
SELECT act_as('claims_hana');
SELECT pg_temp.try_hint($$SELECT fluent_create_user('claims_new1')$$) AS hana_with_right;
RESET ROLE;
SET ROLE dba;
SELECT fluent_clear_admin_right('manage_users', 'claims_people', 'write');
RESET ROLE;
SELECT count(*) AS rights_left FROM fluent.admin_rights ar JOIN fluent.workspaces w USING (workspace_id) WHERE w.name = 'claims';
SET ROLE app;
SELECT act_as('claims_hana');
SELECT pg_temp.try_hint($$SELECT fluent_create_user('claims_new2')$$) AS hana_without_right;
SELECT act_as(NULL);
RESET ROLE;
SELECT user_key FROM fluent.users WHERE user_key LIKE 'claims_new%' ORDER BY 1;

-- fluent_drop_workspace: "Drops a workspace with its modules, roles,
-- grants, overrides and teams; not 'default'" (its COMMENT); users belong
-- to no workspace and stay.
SELECT fluent_create_workspace('claims_gone'), fluent_set_workspace('claims_gone');
SELECT fluent_create_module('claims_gone_docs');
SELECT fluent_create_role('claims_gone_role'), fluent_set_permission('claims_gone_role', 'claims_gone_docs', 'read', 'all');
SELECT fluent_create_user('claims_gus'), fluent_grant_role('claims_gus', 'claims_gone_role'),
       fluent_set_override('claims_gus', 'claims_gone_docs', 'write', 'own');
SELECT fluent_create_team('claims_gone_team'), fluent_add_team_member('claims_gone_team', 'claims_gus');
CREATE TEMP TABLE claims_ws AS SELECT workspace_id FROM fluent.workspaces WHERE name = 'claims_gone';
CREATE TEMP VIEW claims_ws_rows AS
SELECT (SELECT count(*) FROM fluent.workspaces WHERE workspace_id = ws.workspace_id) AS workspaces,
       (SELECT count(*) FROM fluent.modules WHERE workspace_id = ws.workspace_id) AS modules,
       (SELECT count(*) FROM fluent.actions WHERE workspace_id = ws.workspace_id) AS actions,
       (SELECT count(*) FROM fluent.roles WHERE workspace_id = ws.workspace_id) AS roles,
       (SELECT count(*) FROM fluent.permissions WHERE workspace_id = ws.workspace_id) AS permissions,
       (SELECT count(*) FROM fluent.grants WHERE workspace_id = ws.workspace_id) AS grants,
       (SELECT count(*) FROM fluent.overrides WHERE workspace_id = ws.workspace_id) AS overrides,
       (SELECT count(*) FROM fluent.teams WHERE workspace_id = ws.workspace_id) AS teams,
       (SELECT count(*) FROM fluent.team_members WHERE workspace_id = ws.workspace_id) AS team_members
  FROM claims_ws ws;
SELECT * FROM claims_ws_rows;
SELECT fluent_set_workspace('claims');
SET ROLE dba;
SELECT fluent_drop_workspace('claims_gone');
SELECT try($$SELECT fluent_drop_workspace('default')$$) AS drop_default;
RESET ROLE;
SELECT * FROM claims_ws_rows;
SELECT try($$SELECT fluent_set_workspace('claims_gone')$$) AS set_dropped;
SELECT user_key, status FROM fluent.users WHERE user_key = 'claims_gus';

-- 11. The comments say what the README's SQL API says: "fluent_scope(...)
-- → text -- none | own | direct | team | all". --------------------------------
SELECT obj_description('fluent_scope(text, text, text)'::regprocedure, 'pg_proc') AS fluent_scope,
       obj_description('fluent_set_permission(text, text, text, text)'::regprocedure, 'pg_proc') AS fluent_set_permission;
SELECT e.enumlabel AS scope_named_in_both FROM pg_enum e WHERE e.enumtypid = 'fluent.scope'::regtype
   AND obj_description('fluent_scope(text, text, text)'::regprocedure, 'pg_proc') LIKE '%' || e.enumlabel || '%'
   AND obj_description('fluent_set_permission(text, text, text, text)'::regprocedure, 'pg_proc') LIKE '%' || e.enumlabel || '%'
 ORDER BY e.enumsortorder;
ROLLBACK;
