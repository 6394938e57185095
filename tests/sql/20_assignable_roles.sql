-- Assignable roles (issue 19, item 4): per role, the roles its holders may
-- grant, revoke, clone, reset and drop as delegated administrators, on top
-- of the escalation rule. Seeds 000 (fluent: the Owner assigns every
-- role, the Admin every role but Owner, nobody else any) and 003 (Fluid: the
-- User Administrator every role, the Timesheet Administrator only the
-- exempt and timesheet administrator groups).
BEGIN;
SET search_path = public, test_helpers;
SET client_min_messages = warning;
-- Runs a statement and undoes it: 'ok' or the error, so that each attempt
-- below starts from the same catalog.
CREATE FUNCTION pg_temp.attempt(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        EXECUTE sql;
        RAISE EXCEPTION 'undo' USING ERRCODE = 'ZZ001';
    EXCEPTION WHEN SQLSTATE 'ZZ001' THEN
        RETURN 'ok';
    END;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- The hint of the error a statement raises.
CREATE FUNCTION pg_temp.hint(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    h text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || h;
END $$;

-- fluent ------------------------------------------------------------------
SELECT fluent_create_workspace('asg_fluent'), fluent_set_workspace('asg_fluent'), fluent_apply_template('fluent');
-- What the template lists.
SELECT r.name AS role, string_agg(x.name, ', ' ORDER BY x.role_id) AS may_assign
  FROM fluent.assignable_roles a JOIN fluent.roles r ON r.role_id = a.role_id JOIN fluent.roles x ON x.role_id = a.assignable_role_id
 WHERE a.workspace_id = (SELECT workspace_id FROM fluent.workspaces WHERE name = 'asg_fluent')
 GROUP BY r.role_id, r.name ORDER BY r.role_id;
-- What makes the Owner more than the Admin: the subscription and security
-- settings, the Owner's alone.
SELECT fluent_create_user(u) FROM unnest('{af_olga,af_otto,af_ada,af_abe,af_sam,af_vic}'::text[]) u;
SELECT fluent_grant_role('af_olga', 'owner'), fluent_grant_role('af_otto', 'owner'), fluent_grant_role('af_ada', 'admin'),
       fluent_grant_role('af_abe', 'admin'), fluent_grant_role('af_sam', 'scheduler'), fluent_grant_role('af_vic', 'viewer');
SELECT m AS module, a AS action, fluent_scope('af_olga', m, a) AS owner, fluent_scope('af_ada', m, a) AS admin,
       fluent_scope('af_sam', m, a) AS scheduler
  FROM (VALUES ('subscription', 'read'), ('subscription', 'write'), ('security_settings', 'read'), ('security_settings', 'write')) v(m, a);

-- 1. An Admin is refused Owner: granting it, revoking it (which today's
-- escalation rule lets a holder of a privileged role do), cloning,
-- resetting and dropping it. Changing its permissions is not bound by the
-- list (it defines the role, assigns it to nobody).
SET ROLE web;
SELECT act_as('af_ada');
SELECT pg_temp.attempt($$SELECT fluent_grant_role('af_vic', 'owner')$$) AS admin_grants_owner,
       pg_temp.attempt($$SELECT fluent_revoke_role('af_otto', 'owner')$$) AS admin_revokes_owner,
       pg_temp.attempt($$SELECT fluent_clone_role('owner', 'owner2')$$) AS admin_clones_owner;
SELECT pg_temp.attempt($$SELECT fluent_reset_role('owner')$$) AS admin_resets_owner,
       pg_temp.attempt($$SELECT fluent_drop_role('owner')$$) AS admin_drops_owner,
       pg_temp.attempt($$SELECT fluent_alter_role('owner', description => 'x')$$) AS admin_describes_owner;
SELECT pg_temp.hint($$SELECT fluent_revoke_role('af_otto', 'owner')$$) AS hint;
-- ... and may assign every other role, Admin included.
SELECT pg_temp.attempt($$SELECT fluent_grant_role('af_vic', 'scheduler'), fluent_revoke_role('af_vic', 'viewer'),
                                fluent_grant_role('af_vic', 'admin'), fluent_revoke_role('af_abe', 'admin')$$) AS admin_assigns_the_rest,
       pg_temp.attempt($$SELECT fluent_clone_role('scheduler', 'senior_scheduler'), fluent_grant_role('af_vic', 'senior_scheduler')$$) AS admin_clones_and_grants;
-- The Owner may do all of it.
SELECT act_as('af_olga');
SELECT pg_temp.attempt($$SELECT fluent_grant_role('af_vic', 'owner')$$) AS owner_grants_owner,
       pg_temp.attempt($$SELECT fluent_revoke_role('af_otto', 'owner')$$) AS owner_revokes_owner,
       pg_temp.attempt($$SELECT fluent_clone_role('owner', 'owner2')$$) AS owner_clones_owner,
       pg_temp.attempt($$SELECT fluent_reset_role('owner')$$) AS owner_resets_owner;
SELECT act_as(NULL);
RESET ROLE;

-- 2. A user with assign_roles whose roles list nothing assigns nothing,
-- even within the escalation rule: Sam the scheduler, given users.write by
-- an override, may not grant Viewer (whose permissions he all has but
-- invoices.read) nor a scheduler's clone, which he holds.
SELECT fluent_set_override('af_sam', 'users', 'write', 'all'), fluent_set_override('af_sam', 'invoices', 'read', 'all');
SELECT fluent_clone_role('scheduler', 'dispatcher');
SET ROLE web;
SELECT act_as('af_sam');
SELECT pg_temp.attempt($$SELECT fluent_grant_role('af_vic', 'viewer')$$) AS sam_grants_viewer,
       pg_temp.attempt($$SELECT fluent_grant_role('af_vic', 'dispatcher')$$) AS sam_grants_dispatcher,
       pg_temp.attempt($$SELECT fluent_revoke_role('af_vic', 'viewer')$$) AS sam_revokes_viewer;
SELECT act_as(NULL);
RESET ROLE;
-- A DBA lists Viewer for schedulers: then he may.
SELECT fluent_set_assignable('scheduler', 'viewer');
SET ROLE web;
SELECT act_as('af_sam');
SELECT pg_temp.attempt($$SELECT fluent_grant_role('af_vic', 'viewer')$$) AS sam_grants_viewer,
       pg_temp.attempt($$SELECT fluent_revoke_role('af_vic', 'viewer')$$) AS sam_revokes_viewer,
       pg_temp.attempt($$SELECT fluent_grant_role('af_vic', 'billing')$$) AS sam_grants_billing;
SELECT act_as(NULL);
RESET ROLE;
SELECT fluent_clear_assignable('scheduler', 'viewer');

-- 3. Cloning: a clone lists what its source lists, and is assignable
-- wherever its source is (the Admin's clone of Scheduler above); a clone of
-- Owner is assignable by the Owner alone, and lists itself.
SELECT fluent_clone_role('owner', 'co_owner'), fluent_clone_role('admin', 'deputy');
SELECT r.name AS role,
       (SELECT string_agg(x.name, ', ' ORDER BY x.name) FROM fluent.assignable_roles a JOIN fluent.roles x ON x.role_id = a.assignable_role_id
         WHERE a.role_id = r.role_id AND x.name IN ('owner', 'co_owner', 'admin', 'deputy', 'dispatcher')) AS may_assign,
       (SELECT string_agg(x.name, ', ' ORDER BY x.name) FROM fluent.assignable_roles a JOIN fluent.roles x ON x.role_id = a.role_id
         WHERE a.assignable_role_id = r.role_id) AS assignable_by
  FROM fluent.roles r
 WHERE r.workspace_id = (SELECT workspace_id FROM fluent.workspaces WHERE name = 'asg_fluent')
   AND r.name IN ('owner', 'co_owner', 'admin', 'deputy', 'dispatcher') ORDER BY r.role_id;
-- A delegated administrator's clone gives its holders no role to assign
-- that she may not: a clone is checked as if each row were set directly
-- (the Admin holding a deputy clone that lists co_owner).
SELECT fluent_set_assignable('deputy', 'co_owner');
SET ROLE web;
SELECT act_as('af_ada');
SELECT pg_temp.attempt($$SELECT fluent_clone_role('deputy', 'deputy2')$$) AS admin_clones_deputy;
SELECT act_as(NULL);
RESET ROLE;
SELECT fluent_clear_assignable('deputy', 'co_owner');

-- 4. Resetting restores the list among the template's roles and their
-- clones; roles outside the template stay listed.
SELECT fluent_create_role('custom');
SELECT fluent_clear_assignable('admin', 'viewer'), fluent_set_assignable('admin', 'co_owner');
SELECT fluent_reset_role('admin');
SELECT string_agg(x.name, ', ' ORDER BY x.role_id) AS admin_may_assign
  FROM fluent.assignable_roles a JOIN fluent.roles x ON x.role_id = a.assignable_role_id
 WHERE a.role_id = (SELECT role_id FROM fluent.roles r WHERE r.name = 'admin' AND r.workspace_id = a.workspace_id
                       AND a.workspace_id = (SELECT workspace_id FROM fluent.workspaces WHERE name = 'asg_fluent'));
-- The new custom role is assignable by the roles that assign every role
-- that is not privileged: the Owner and the Admin (and their clones).
SELECT string_agg(r.name, ', ' ORDER BY r.role_id) AS custom_assignable_by
  FROM fluent.assignable_roles a JOIN fluent.roles r ON r.role_id = a.role_id
 WHERE a.assignable_role_id = (SELECT role_id FROM fluent.roles WHERE name = 'custom'
                                  AND workspace_id = (SELECT workspace_id FROM fluent.workspaces WHERE name = 'asg_fluent'));
-- A delegated reset lists again what the template lists, within what the
-- resetter may assign: Ada restores Deputy (an Admin clone) to Admin's list.
SELECT fluent_clear_assignable('deputy', x) FROM unnest('{admin,scheduler,billing}'::text[]) x;
SET ROLE web;
SELECT act_as('af_ada');
SELECT pg_temp.attempt($$SELECT fluent_reset_role('deputy')$$) AS admin_resets_deputy;
SELECT act_as(NULL);
RESET ROLE;

-- 5. The list itself: a DBA's, and a delegated administrator's (manage_roles)
-- within what she may assign.
SET ROLE web;
SELECT act_as('af_ada');
SELECT pg_temp.attempt($$SELECT fluent_set_assignable('scheduler', 'viewer')$$) AS admin_lists_viewer,
       pg_temp.attempt($$SELECT fluent_set_assignable('scheduler', 'owner')$$) AS admin_lists_owner,
       pg_temp.attempt($$SELECT fluent_set_assignable('owner', 'viewer')$$) AS admin_changes_owner,
       pg_temp.attempt($$SELECT fluent_clear_assignable('owner', 'admin')$$) AS admin_clears_owners;
SELECT act_as('af_sam');
SELECT pg_temp.attempt($$SELECT fluent_set_assignable('scheduler', 'viewer')$$) AS sam_lists_viewer;
SELECT act_as(NULL);
RESET ROLE;
-- ... audited, like every catalog change.
SELECT fluent_set_assignable('viewer', 'viewer');
SELECT a.operation, a.table_name, a.after ?& '{role_id,assignable_role_id,workspace_id}' AS row_logged
  FROM fluent.audit_log a WHERE a.table_name LIKE '%assignable_roles' ORDER BY a.audit_id DESC LIMIT 1;
SELECT fluent_clear_assignable('viewer', 'viewer');
-- Bad input.
SELECT try($$SELECT fluent_set_assignable('owner', 'nobody')$$) AS unknown_role,
       try($$SELECT fluent_set_assignable(NULL, 'owner')$$) AS null_role;
-- Applying the template again lists only what is missing (what was
-- cleared since), as for permissions.
CREATE TEMP TABLE listed AS
SELECT a.role_id, a.assignable_role_id FROM fluent.assignable_roles a JOIN fluent.workspaces w USING (workspace_id) WHERE w.name = 'asg_fluent';
SELECT fluent_apply_template('fluent');
SELECT r.name AS role, x.name AS listed_again
  FROM fluent.assignable_roles a JOIN fluent.workspaces w USING (workspace_id)
  JOIN fluent.roles r ON r.role_id = a.role_id JOIN fluent.roles x ON x.role_id = a.assignable_role_id
 WHERE w.name = 'asg_fluent' AND (a.role_id, a.assignable_role_id) NOT IN (SELECT * FROM listed) ORDER BY 1, 2;

-- 6. A workspace that lists no assignable role keeps the escalation rule
-- alone (as before), and a delegated administrator neither starts the list
-- nor removes its last row.
SELECT fluent_create_workspace('asg_plain'), fluent_set_workspace('asg_plain');
SELECT fluent_create_module('users', '{write}'), fluent_set_admin_right('assign_roles', 'users', 'write'),
       fluent_set_admin_right('manage_roles', 'users', 'write');
SELECT fluent_create_role('boss'), fluent_set_permission('boss', 'users', 'write', 'all'), fluent_create_role('plain'),
       fluent_create_role('other');
SELECT fluent_create_user('ap_bo'), fluent_grant_role('ap_bo', 'boss'), fluent_create_user('ap_pl');
SET ROLE web;
SELECT act_as('ap_bo');
SELECT pg_temp.attempt($$SELECT fluent_grant_role('ap_pl', 'plain')$$) AS boss_grants_unlisted,
       pg_temp.attempt($$SELECT fluent_set_assignable('boss', 'plain')$$) AS boss_starts_list;
SELECT act_as(NULL);
RESET ROLE;
SELECT fluent_set_assignable('boss', 'plain'), fluent_set_assignable('boss', 'boss');
SET ROLE web;
SELECT act_as('ap_bo');
SELECT pg_temp.attempt($$SELECT fluent_grant_role('ap_pl', 'plain')$$) AS boss_grants_listed,
       pg_temp.attempt($$SELECT fluent_grant_role('ap_pl', 'other')$$) AS boss_grants_unlisted,
       pg_temp.attempt($$SELECT fluent_clear_assignable('boss', 'plain')$$) AS boss_clears_one;
SELECT pg_temp.attempt($$SELECT fluent_clear_assignable('boss', 'plain'), fluent_clear_assignable('boss', 'boss')$$) AS boss_clears_last,
       pg_temp.attempt($$SELECT fluent_drop_role('boss')$$) AS boss_drops_last;
SELECT act_as(NULL);
RESET ROLE;

-- Fluid ---------------------------------------------------------------------
SELECT fluent_create_workspace('asg_fluid'), fluent_set_workspace('asg_fluid'), fluent_apply_template('fluid');
SELECT fluent_create_user(u) FROM unnest('{fl_tess,fl_uma,fl_pat,fl_rex}'::text[]) u;
SELECT fluent_grant_role(u, 'user') FROM unnest('{fl_tess,fl_uma,fl_pat}'::text[]) u;
-- Rex holds every role.
SELECT count(fluent_grant_role('fl_rex', role)) AS rex_roles FROM fluent.template_roles WHERE template = 'fluid';
SELECT fluent_grant_role('fl_tess', 'timesheet_administrator'), fluent_grant_role('fl_uma', 'user_administrator');
-- 7. The Timesheet Administrator manages exactly the two groups: granted and
-- revoked, every other role refused (she may give beyond her own
-- permissions, timesheets.exempt included: the list is what bounds her).
CREATE TEMP TABLE fluid_roles AS SELECT role, position FROM fluent.template_roles WHERE template = 'fluid';
GRANT SELECT ON fluid_roles TO web;
SET ROLE web;
SELECT act_as('fl_tess');
SELECT r.role, pg_temp.attempt(format('SELECT fluent_grant_role(%L, %L)', 'fl_pat', r.role)) AS tess_grants,
       pg_temp.attempt(format('SELECT fluent_revoke_role(%L, %L)', 'fl_rex', r.role)) AS tess_revokes
  FROM fluid_roles r ORDER BY r.position;
-- The User Administrator every role.
SELECT act_as('fl_uma');
SELECT count(*) AS roles, count(*) FILTER (WHERE pg_temp.attempt(format('SELECT fluent_grant_role(%L, %L)', 'fl_pat', r.role)) = 'ok') AS uma_grants
  FROM fluid_roles r;
SELECT act_as(NULL);
RESET ROLE;

-- cx -----------------------------------------------------------------------
SELECT fluent_create_workspace('asg_cx'), fluent_set_workspace('asg_cx'), fluent_apply_template('cx');
SELECT r.name AS role, string_agg(x.name, ', ' ORDER BY x.role_id) AS may_assign
  FROM fluent.assignable_roles a JOIN fluent.roles r ON r.role_id = a.role_id JOIN fluent.roles x ON x.role_id = a.assignable_role_id
 WHERE a.workspace_id = (SELECT workspace_id FROM fluent.workspaces WHERE name = 'asg_cx')
 GROUP BY r.role_id, r.name ORDER BY r.role_id;
ROLLBACK;
