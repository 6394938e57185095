-- The administration API: validation, errors with SQLSTATEs, nothing half-done.
BEGIN;
SET search_path = public, test_helpers;
SELECT fluent_create_module('invoices');
SELECT fluent_create_module('line_items', parent => 'invoices');
SELECT fluent_create_module('exports', ARRAY['run']);
SELECT fluent_create_role('billing', 'AR/AP and invoicing');
SELECT fluent_create_user('alice', 'Alice');
-- modules, actions and inheritance as stored
SELECT m.name, p.name AS parent, array_agg(a.name ORDER BY a.action_id) AS actions
  FROM fluent.modules m LEFT JOIN fluent.modules p ON p.module_id = m.parent_id
  JOIN fluent.actions a ON a.module_id = m.module_id
 GROUP BY m.module_id, m.name, p.name ORDER BY m.module_id;
-- mistakes: each one a clear error, nothing changed
SELECT try($$SELECT fluent_create_module('invoices')$$);
SELECT try($$SELECT fluent_create_module('x', ARRAY['read','read'])$$);
SELECT try($$SELECT fluent_create_module('x', ARRAY[]::text[])$$);
SELECT try($$SELECT fluent_create_module('x', parent => 'nope')$$);
SELECT try($$SELECT fluent_create_module(NULL)$$);
SELECT try($$SELECT fluent_create_module(' padded')$$);
SELECT try($$SELECT fluent_set_permission('billing', 'invoices', 'read', 'everything')$$);
SELECT try($$SELECT fluent_set_permission('billing', 'invoices', 'fly', 'all')$$);
SELECT try($$SELECT fluent_set_permission('nobody', 'invoices', 'read', 'all')$$);
SELECT try($$SELECT fluent_set_permission('billing', 'invoicez', 'read', 'all')$$);
SELECT try($$SELECT fluent_create_user('bob', manager => 'nobody')$$);
SELECT try($$SELECT fluent_create_user('alice')$$);
SELECT try($$SELECT fluent_create_user('carol', status => 'sleeping')$$);
SELECT try($$SELECT fluent_grant_role('alice', 'nobody')$$);
SELECT try($$SELECT fluent_grant_role('nobody', 'billing')$$);
SELECT try($$SELECT fluent_add_team_member('ghosts', 'alice')$$);
SELECT try($$SELECT fluent_drop_workspace('default')$$);
SELECT try($$SELECT fluent_set_workspace('mars')$$);
SELECT count(*) AS users, (SELECT count(*) FROM fluent.modules) AS modules FROM fluent.users;
-- reporting line cycles are refused
SELECT fluent_create_user('boss');
SELECT fluent_set_manager('alice', 'boss');
SELECT try($$SELECT fluent_set_manager('boss', 'alice')$$);
SELECT try($$SELECT fluent_set_manager('boss', 'boss')$$);
-- granting twice is a notice, revoking what is not held a warning
SELECT fluent_grant_role('alice', 'billing');
SELECT fluent_grant_role('alice', 'billing');
SELECT fluent_revoke_role('alice', 'billing');
SELECT fluent_revoke_role('alice', 'billing');
-- application roles can neither administer nor read or write the catalog
SET ROLE app;
SELECT try($$SELECT fluent_create_role('hacker')$$);
SELECT try($$SELECT * FROM fluent.grants$$);
SELECT try($$INSERT INTO fluent.grants (workspace_id, user_id, role_id) VALUES (1, 1, 1)$$);
SELECT try($$UPDATE fluent.permissions SET scope = 'all'$$);
SELECT try($$SELECT * FROM fluent._load_user(1, 'alice')$$);
RESET ROLE;
-- a member of fluent_admin administers without being superuser
SET ROLE dba;
SELECT fluent_create_role('viewer');
SELECT fluent_set_permission('viewer', 'invoices', 'read', 'all');
RESET ROLE;
SELECT r.name, m.name AS module, a.name AS action, p.scope
  FROM fluent.permissions p JOIN fluent.roles r USING (role_id)
  JOIN fluent.actions a USING (action_id) JOIN fluent.modules m ON m.module_id = a.module_id;
-- workspaces separate roles and modules
SELECT fluent_create_workspace('acme');
SELECT fluent_set_workspace('acme');
SELECT try($$SELECT fluent_grant_role('alice', 'billing')$$);
SELECT fluent_create_module('invoices', ARRAY['read']);
SELECT fluent_current_workspace(), (SELECT count(*) FROM fluent.modules) AS modules_everywhere;
SELECT fluent_set_workspace('default');
ROLLBACK;
