-- Identity that cannot be handed back, others' permissions, and delegated
-- administration without escalation, seeded from the three templates.
-- (Tokens, PostgREST and PgBouncer are tested over real connections in
-- pgrx-tests/tests/identity.rs and pooling.rs.)
SET search_path = public, test_helpers;
SELECT fluent_create_user(u) FROM unnest(ARRAY['ann', 'carol']) u;
SELECT fluent_create_workspace('other');

-- 1. The seal. `auth` logs in trusted through fluent_authenticator (not a
-- superuser), chooses ann for the transaction and drops to `web`. SQL run
-- as web then hands itself back to auth and tries to become carol.
\c - auth
SET search_path = public, test_helpers;
BEGIN;
SELECT fluent_set_user('ann', true);
SET LOCAL ROLE web;
RESET ROLE;
SELECT current_user, try($$SELECT fluent_set_user('carol', true)$$) AS after_reset_role;
SELECT try($$SELECT fluent_set_user('carol', false)$$) AS session_form;
SELECT try($$SELECT set_config('fluent.acting_user', 'carol', true)$$) AS set_config;
SELECT try($$SET fluent.acting_user = 'carol'$$) AS set_guc;
SELECT try($$SELECT fluent_set_workspace('other', true)$$) AS other_workspace;
SELECT try($$SET SESSION AUTHORIZATION postgres$$) AS session_authorization;
SELECT try($$SELECT fluent_set_user('ann', true)$$) AS same_user_again;
-- Anyone may drop the identity (it only narrows); choosing again stays sealed.
SELECT fluent_reset_user();
SELECT try($$SELECT fluent_set_user('carol', true)$$) AS after_reset_user;
SELECT fluent_current_user();
ROLLBACK;
-- The next transaction chooses again.
BEGIN;
SELECT fluent_set_user('carol', true), fluent_current_user();
COMMIT;
-- Trust ends when the session moves to the application role, even if
-- nothing (or only the workspace) was chosen before.
BEGIN;
SELECT fluent_set_workspace('other', true);
SET LOCAL ROLE web;
RESET ROLE;
SELECT try($$SELECT fluent_set_user('carol', true)$$) AS workspace_only_then_web;
ROLLBACK;
BEGIN;
SELECT set_config('role', 'web', true);
SELECT set_config('role', 'none', true);
SELECT try($$SELECT fluent_set_user('carol', true)$$) AS set_config_role;
ROLLBACK;
-- The session form seals the connection for good.
SELECT fluent_set_user('ann');
SET ROLE web;
RESET ROLE;
SELECT try($$SELECT fluent_set_user('carol')$$) AS session_sealed;
BEGIN;
SELECT try($$SELECT fluent_set_user('carol', true)$$) AS next_transaction_too;
COMMIT;
SELECT fluent_current_user();
-- A member that does not inherit fluent_authenticator's privileges is told
-- to SET ROLE first, and then may.
\c - noinh_auth
SET search_path = public, test_helpers;
SELECT try($$SELECT fluent_set_user('ann')$$) AS noinherit_member;
SET ROLE fluent_authenticator;
SELECT try($$SELECT fluent_set_user('ann')$$) AS after_set_role, fluent_current_user();
\c - postgres
SET search_path = public, test_helpers;
-- A superuser (and fluent_admin) switches freely, many times in one transaction.
BEGIN;
SELECT fluent_set_user('ann', true), fluent_set_user('carol', true), fluent_set_user('ann', true), fluent_current_user();
COMMIT;
\c - dba
BEGIN;
SELECT fluent_set_user('ann', true), fluent_set_user('carol', true), fluent_current_user();
COMMIT;
\c - postgres
SET search_path = public, test_helpers;

-- 2. Delegated administration. Three workspaces from the three templates.
SELECT fluent_create_workspace('acme');
SELECT fluent_set_workspace('acme'), fluent_apply_template('fluent');
SELECT fluent_create_user(u) FROM unnest(ARRAY['olga', 'adam', 'sam', 'pat', 'val']) u;
SELECT fluent_grant_role('olga', 'owner'), fluent_grant_role('adam', 'admin'), fluent_grant_role('sam', 'scheduler'),
       fluent_grant_role('val', 'viewer');
SELECT fluent_create_workspace('pmo');
SELECT fluent_set_workspace('pmo'), fluent_apply_template('fluid');
SELECT fluent_create_user(u) FROM unnest(ARRAY['ulla', 'pete', 'aria']) u;
SELECT fluent_grant_role('ulla', 'user'), fluent_grant_role('ulla', 'user_administrator'),
       fluent_grant_role('pete', 'user'), fluent_grant_role('aria', 'user'), fluent_grant_role('aria', 'application_administrator');
SELECT fluent_create_workspace('support');
SELECT fluent_set_workspace('support'), fluent_apply_template('cx');
SELECT fluent_create_user(u) FROM unnest(ARRAY['ada', 'tina']) u;
SELECT fluent_grant_role('ada', 'admin'), fluent_grant_role('tina', 'team_lead');

-- Which permission gives which right, as the templates set it.
SELECT w.name AS workspace, ar.admin_right, m.name || '.' || a.name AS given_by
  FROM fluent.admin_rights ar JOIN fluent.workspaces w USING (workspace_id)
  JOIN fluent.actions a USING (action_id) JOIN fluent.modules m ON m.module_id = a.module_id
 ORDER BY 1, 2, 3;

-- fluent (seeds 000/001): Owner and Admin manage users and roles.
SELECT fluent_set_workspace('acme');
SET ROLE web;
SELECT act_as('pat');
SELECT try($$SELECT fluent_grant_role('pat', 'admin')$$) AS pat_grants_himself_admin;
SELECT try($$SELECT fluent_grant_role('val', 'scheduler')$$) AS pat_grants;
SELECT act_as('adam');
SELECT try($$SELECT fluent_grant_role('pat', 'scheduler')$$) AS adam_grants_scheduler;
SELECT try($$SELECT fluent_grant_role('adam', 'owner')$$) AS adam_grants_himself;
-- An Admin may not assign Owner (fluent.assignable_roles, issue 19).
SELECT try($$SELECT fluent_grant_role('pat', 'owner')$$) AS adam_grants_owner;
SELECT try($$SELECT fluent_set_override('pat', 'invoices', 'read', 'all')$$) AS adam_override_within;
SELECT try($$SELECT fluent_set_override('adam', 'invoices', 'read', 'all')$$) AS adam_overrides_himself;
SELECT try($$SELECT fluent_create_role('night_shift')$$) AS adam_creates_role,
       try($$SELECT fluent_set_permission('night_shift', 'appointments', 'read', 'all')$$) AS adam_sets_permission;
SELECT try($$SELECT fluent_clone_role('owner', 'owner_copy')$$) AS adam_clones_owner;
SELECT try($$SELECT fluent_create_user('newbie', manager => 'sam')$$) AS adam_creates_user;
SELECT try($$SELECT fluent_set_manager('sam', 'adam')$$) AS adam_becomes_manager;
SELECT try($$SELECT fluent_set_user_status('ulla', 'disabled')$$) AS adam_disables_other_workspace_user;
SELECT try($$SELECT fluent_set_user_status('adam', 'disabled')$$) AS adam_disables_himself;
SELECT try($$SELECT fluent_revoke_role('sam', 'scheduler', force => true)$$) AS adam_forces;
SELECT try($$SELECT fluent_protect('fluent.users', 'users', 'user_key')$$) AS adam_protects;
SELECT try($$SELECT fluent_set_module_enabled('invoices', false)$$) AS adam_gates,
       try($$SELECT fluent_set_admin_right('assign_beyond_own', 'users', 'write')$$) AS adam_sets_rights,
       try($$SELECT fluent_apply_template('cx')$$) AS adam_applies_template;
SELECT try($$SELECT fluent._do_grant_role('pat', 'owner', NULL, 42)$$) AS forged_ticket;
-- A delegated administrator reads others' permissions; a plain user does not.
SELECT fluent_scope('olga', 'invoices', 'write') AS adam_reads_olga;
SELECT act_as('sam');
SELECT try($$SELECT fluent_scope('olga', 'invoices', 'write')$$) AS sam_reads_olga,
       try($$SELECT fluent_can('olga', 'invoices', 'write')$$) AS sam_can_olga,
       try($$SELECT fluent_visible_modules('olga')$$) AS sam_modules_olga,
       try($$SELECT fluent_explain('olga', 'invoices', 'write')$$) AS sam_explains_olga;
SELECT fluent_scope('sam', 'invoices', 'write') AS sam_reads_sam, fluent_scope('invoices', 'write') AS sam_acting;
SELECT act_as(NULL);
SELECT try($$SELECT fluent_can('olga', 'invoices', 'write')$$) AS nobody_reads_olga,
       try($$SELECT fluent_grant_role('pat', 'viewer')$$) AS nobody_grants;
RESET ROLE;
-- A user administrator who holds less than Admin gives no more than they hold.
SELECT fluent_create_role('user_admin'), fluent_set_permission('user_admin', 'users', 'write', 'all'),
       fluent_set_permission('user_admin', 'appointments', 'read', 'all'), fluent_grant_role('val', 'user_admin');
-- (Billing is assignable by user_admin, so that the escalation rule decides.)
SELECT fluent_set_assignable('user_admin', r) FROM unnest('{billing,scheduler,viewer}'::text[]) r;
SET ROLE web;
SELECT act_as('val');
SELECT try($$SELECT fluent_grant_role('pat', 'billing')$$) AS val_grants_billing;
SELECT try($$SELECT fluent_set_override('newbie', 'appointments', 'read', 'all')$$) AS val_override_within,
       try($$SELECT fluent_set_override('newbie', 'invoices', 'write', 'own')$$) AS val_override_beyond;
SELECT try($$SELECT fluent_grant_role('pat', 'admin')$$) AS val_grants_privileged;
SELECT act_as(NULL);
RESET ROLE;
-- Administrators without a privileged role: a help desk (users.write) and a
-- role manager (roles.write).
SELECT fluent_create_role('helpdesk'), fluent_set_permission('helpdesk', 'users', 'write', 'all'),
       fluent_set_permission('helpdesk', 'appointments', 'read', 'all'),
       fluent_create_role('role_manager'), fluent_set_permission('role_manager', 'roles', 'write', 'all');
SELECT fluent_create_user('hd'), fluent_grant_role('hd', 'helpdesk'), fluent_create_user('rm'), fluent_grant_role('rm', 'role_manager');
SET ROLE web;
SELECT act_as('hd');
-- An override is checked for what it gives, not for what the user can use
-- today: parked on a disabled user, it would open when they are activated.
SELECT try($$SELECT fluent_create_user('sock', status => 'disabled')$$) AS hd_creates_disabled,
       try($$SELECT fluent_set_override('sock', 'invoices', 'write', 'all')$$) AS hd_parks_override;
-- The holders of privileged roles are for holders of privileged roles.
SELECT try($$SELECT fluent_set_user_status('adam', 'disabled')$$) AS hd_disables_admin,
       try($$SELECT fluent_drop_user('adam')$$) AS hd_drops_admin,
       try($$SELECT fluent_set_override('olga', 'users', 'write', 'none')$$) AS hd_strips_owner;
-- A user of another workspace is managed there.
SELECT try($$SELECT fluent_grant_role('ulla', 'scheduler')$$) AS hd_grants_other_workspace_user;
SELECT act_as('rm');
-- Who may sign in decides who can act at all.
SELECT try($$SELECT fluent_alter_role('viewer', grants_sign_in => true)$$) AS rm_adds_sign_in_role,
       try($$SELECT fluent_alter_role('scheduler', description => 'Books appointments')$$) AS rm_describes_role;
SELECT act_as(NULL);
RESET ROLE;
-- A permission that another one requires opens the holders' others: a role
-- manager who holds vault.access (own) but reads no vault may not give it to
-- the vault readers, whose vault.read (all) it would open.
SELECT fluent_create_module('vault', '{read,access}'), fluent_set_requirement('vault', 'vault', 'access');
SELECT fluent_create_role('vault_reader'), fluent_set_permission('vault_reader', 'vault', 'read', 'all'),
       fluent_create_role('vault_door'), fluent_set_permission('vault_door', 'vault', 'access', 'own');
SELECT fluent_create_user('vault_user'), fluent_grant_role('vault_user', 'vault_reader'), fluent_grant_role('rm', 'vault_door');
SET ROLE web;
SELECT act_as('rm');
SELECT try($$SELECT fluent_set_permission('vault_reader', 'vault', 'access', 'own')$$) AS rm_opens_vault_readers,
       try($$SELECT fluent_set_permission('vault_reader', 'vault', 'read', 'own')$$) AS rm_narrows_vault_readers;
SELECT act_as(NULL);
RESET ROLE;
SELECT fluent_scope('vault_user', 'vault', 'read') AS vault_user_reads;
-- A workspace with a sign-in role: granting or revoking it decides whether a
-- user can act at all; teams and reporting lines decide whom scope team reaches.
SELECT fluent_create_workspace('desk');
SELECT fluent_set_workspace('desk');
SELECT fluent_create_module('users', '{write}'), fluent_create_module('tickets', '{read,write}');
SELECT fluent_set_admin_right('manage_users', 'users', 'write'), fluent_set_admin_right('assign_roles', 'users', 'write');
SELECT fluent_create_role('member'), fluent_alter_role('member', grants_sign_in => true),
       fluent_create_role('boss'), fluent_alter_role('boss', privileged => true),
       fluent_set_permission('boss', 'users', 'write', 'all'), fluent_set_permission('boss', 'tickets', 'read', 'all'),
       fluent_create_role('helper'), fluent_set_permission('helper', 'users', 'write', 'all'),
       fluent_set_permission('helper', 'tickets', 'read', 'own'),
       fluent_create_role('lead'), fluent_set_permission('lead', 'tickets', 'read', 'team');
SELECT fluent_create_user(u) FROM unnest(ARRAY['bo', 'barred', 'helen', 'tl', 'x1']) u;
SELECT fluent_grant_role('bo', 'boss'), fluent_grant_role('bo', 'member'), fluent_grant_role('barred', 'boss'),
       fluent_grant_role('helen', 'helper'), fluent_grant_role('helen', 'member'), fluent_grant_role('tl', 'lead'),
       fluent_grant_role('tl', 'member'), fluent_grant_role('x1', 'member');
SELECT fluent_create_team('t1'), fluent_add_team_member('t1', 'x1');
SET ROLE web;
SELECT act_as('helen');
SELECT try($$SELECT fluent_grant_role('barred', 'member')$$) AS helen_opens_a_boss,
       try($$SELECT fluent_revoke_role('bo', 'member')$$) AS helen_locks_out_a_boss,
       try($$SELECT fluent_mark_reviewed('bo')$$) AS helen_reviews_a_boss;
SELECT try($$SELECT fluent_add_team_member('t1', 'tl', true)$$) AS helen_makes_a_lead,
       try($$SELECT fluent_set_manager('x1', 'tl')$$) AS helen_gives_a_manager,
       try($$SELECT fluent_add_team_member('t1', 'helen_not_here')$$) AS unknown_member;
SELECT act_as(NULL);
RESET ROLE;
SELECT fluent_set_workspace('acme');
-- The verified user is known to this backend only: never computed in a parallel worker.
SELECT proparallel FROM pg_proc WHERE proname = 'fluent_verified_user';
-- The audit trail names the end user and the role that called.
SELECT a.db_role, a.acting_user, a.table_name, a.operation, count(*)
  FROM fluent.audit_log a
 WHERE a.acting_user = 'adam' GROUP BY 1, 2, 3, 4 ORDER BY 3, 4;
SELECT u.user_key, r.name, g.granted_by FROM fluent.grants g JOIN fluent.users u USING (user_id) JOIN fluent.roles r USING (role_id)
 WHERE u.user_key IN ('pat', 'newbie') ORDER BY 1, 2;

-- fluid (seeds 002/003): only User Administrators set roles, every role,
-- without holding them; roles themselves are the Application Administrator's.
SELECT fluent_set_workspace('pmo');
SET ROLE web;
SELECT act_as('ulla');
SELECT try($$SELECT fluent_grant_role('pete', 'project_administrator')$$) AS ulla_grants_project_admin;
SELECT try($$SELECT fluent_grant_role('pete', 'project_viewer')$$) AS ulla_grants_viewer;
SELECT try($$SELECT fluent_grant_role('ulla', 'financial_administrator')$$) AS ulla_grants_herself;
SELECT try($$SELECT fluent_set_permission('user', 'projects', 'read', 'all')$$) AS ulla_changes_role;
SELECT act_as('pete');
SELECT try($$SELECT fluent_grant_role('pete', 'project_viewer')$$) AS pete_grants;
SELECT act_as('aria');
SELECT try($$SELECT fluent_set_permission('project_viewer', 'benefits', 'read', 'all')$$) AS aria_changes_role;
SELECT act_as(NULL);
RESET ROLE;
SELECT u.user_key, string_agg(r.name, ', ' ORDER BY r.name) AS roles
  FROM fluent.grants g JOIN fluent.users u USING (user_id) JOIN fluent.roles r USING (role_id)
 WHERE g.workspace_id = (SELECT workspace_id FROM fluent.workspaces WHERE name = 'pmo') GROUP BY 1 ORDER BY 1;

-- cx (seed 004): Admin administers; a Team Lead does not.
SELECT fluent_set_workspace('support');
SET ROLE web;
SELECT act_as('tina');
SELECT try($$SELECT fluent_grant_role('tina', 'admin')$$) AS tina_grants_herself;
SELECT try($$SELECT fluent_create_user('tom')$$) AS tina_creates_user;
SELECT act_as('ada');
SELECT try($$SELECT fluent_create_user('tom')$$) AS ada_creates_user,
       try($$SELECT fluent_grant_role('tom', 'agent')$$) AS ada_grants_agent;
-- The last active holder of a privileged role keeps it, whoever asks.
SELECT try($$SELECT fluent_revoke_role('ada', 'admin')$$) AS ada_revokes_herself;
SELECT act_as(NULL);
RESET ROLE;
SET ROLE dba;
SELECT try($$SELECT fluent_revoke_role('ada', 'admin')$$) AS last_admin_revoke;
SELECT try($$SELECT fluent_set_user_status('ada', 'disabled')$$) AS last_admin_disable;
SELECT try($$SELECT fluent_drop_user('ada')$$) AS last_admin_drop;
SELECT try($$SELECT fluent_drop_role('admin')$$) AS last_admin_role_drop;
SELECT try($$SELECT fluent_alter_role('admin', privileged => false)$$) AS last_admin_unprivileged;
-- With a second admin, the first may go; a DBA may also force.
SELECT fluent_grant_role('tom', 'admin');
SELECT try($$SELECT fluent_revoke_role('ada', 'admin')$$) AS revoke_with_second_admin;
SELECT try($$SELECT fluent_revoke_role('tom', 'admin')$$) AS revoke_last_again;
SELECT try($$SELECT fluent_revoke_role('tom', 'admin', force => true)$$) AS forced;
SELECT count(*) AS admins_left FROM fluent.privileged_users WHERE workspace = 'support';
RESET ROLE;
SELECT fluent_set_workspace('default');
