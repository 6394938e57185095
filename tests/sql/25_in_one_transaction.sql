-- Answers inside one backend, each part in a transaction rolled back
-- afterwards (formerly in-backend #[pg_test]s in Rust): the cache follows
-- changes made earlier in the same transaction, submodules inherit only
-- actions of the same name, team scope reaches led teams and the whole
-- reporting line, an unknown module is an error, and NULL or unknown users
-- get false and none.
SET search_path = public, test_helpers;
CREATE FUNCTION test_helpers.in_one_transaction_setup() RETURNS void
LANGUAGE sql AS $$
SELECT fluent_create_module('invoices', ARRAY['read','write','delete','approve']);
SELECT fluent_create_module('line_items', parent => 'invoices');
SELECT fluent_create_role('billing');
SELECT fluent_set_permission('billing', 'invoices', 'read', 'all');
SELECT fluent_create_user('bea');
$$;
-- the cache follows changes made in the same transaction
BEGIN;
SELECT in_one_transaction_setup();
SELECT fluent_scope('bea', 'invoices', 'read') AS before_grant;
SELECT fluent_grant_role('bea', 'billing');
SELECT fluent_scope('bea', 'invoices', 'read') AS granted_all;
SELECT fluent_set_permission('billing', 'invoices', 'read', 'own');
SELECT fluent_scope('bea', 'invoices', 'read') AS changed_to_own;
SELECT fluent_set_user_status('bea', 'disabled');
SELECT fluent_scope('bea', 'invoices', 'read') AS disabled;
ROLLBACK;
-- submodules inherit only actions of the same name: line_items declares
-- read/write/delete only, so approve is not its action
BEGIN;
SELECT in_one_transaction_setup();
SELECT fluent_grant_role('bea', 'billing');
SELECT fluent_set_permission('billing', 'invoices', 'approve', 'team');
SELECT fluent_scope('bea', 'line_items', 'read') AS inherited_read;
SELECT try($$SELECT fluent_scope('bea', 'line_items', 'approve')$$);
ROLLBACK;
-- team scope reaches led teams and the whole reporting line
BEGIN;
SELECT in_one_transaction_setup();
SELECT fluent_set_permission('billing', 'invoices', 'write', 'team');
SELECT fluent_create_user('mid', manager => 'bea');
SELECT fluent_create_user('low', manager => 'mid');
SELECT fluent_create_user('mate');
SELECT fluent_create_user('outsider');
SELECT fluent_create_team('t');
SELECT fluent_add_team_member('t', 'bea', true);
SELECT fluent_add_team_member('t', 'mate');
SELECT fluent_grant_role('bea', 'billing');
SELECT fluent_set_user('bea', true);
SELECT fluent.rls_owner_keys('invoices', 'write') AS write_reaches;
-- read is `all`: the reached users are the same set, `all` is answered apart
SELECT fluent.rls_all('invoices', 'read') AS read_all;
SELECT fluent.rls_owner_keys('invoices', 'delete') AS delete_reaches;
ROLLBACK;
-- an unknown module is an error
BEGIN;
SELECT in_one_transaction_setup();
SELECT try($$SELECT fluent_scope('bea', 'nowhere', 'read')$$);
ROLLBACK;
-- NULL and unknown users get false and none; no acting user, false
BEGIN;
SELECT in_one_transaction_setup();
SELECT fluent_can(NULL, 'invoices', 'read') AS null_user_can;
SELECT fluent_scope('stranger', 'invoices', 'read') AS stranger_scope;
SELECT fluent_can('invoices', 'read') AS nobody_acting_can;
ROLLBACK;
DROP FUNCTION test_helpers.in_one_transaction_setup();
