-- The README's "Testing your policies": an application team's pgTAP test of
-- its invoices policies, run the way such suites run (pg_prove, or psql) by a
-- superuser. fluent_test_act_as makes each assertion run as the application
-- role for one end user, so the policies apply.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT plan(9);

-- The application's schema and roles, as its migrations would make them.
CREATE ROLE invoices_app NOLOGIN;
SELECT fluent_apply_template('fluent');
SELECT fluent_create_user('bea'), fluent_grant_role('bea', 'billing');
SELECT fluent_create_user('sam'), fluent_grant_role('sam', 'scheduler');
SELECT fluent_create_user('olivia'), fluent_grant_role('olivia', 'owner');
CREATE TABLE invoices (id int PRIMARY KEY, owner text NOT NULL, amount numeric);
INSERT INTO invoices VALUES (1, 'bea', 120), (2, 'olivia', 80);
GRANT SELECT, INSERT, UPDATE, DELETE ON invoices TO invoices_app;
SELECT fluent_protect('invoices', 'invoices', 'owner', delete_action => 'write');

-- Billing reads and writes every invoice (seed 001).
SELECT fluent_test_act_as('bea', 'invoices_app');
SELECT results_eq('SELECT id FROM invoices ORDER BY id', ARRAY[1, 2], 'billing reads every invoice');
SELECT lives_ok($$INSERT INTO invoices VALUES (3, 'bea', 10)$$, 'billing creates invoices');
-- Schedulers see no invoice, and cannot create one.
SELECT fluent_test_act_as('sam', 'invoices_app');
SELECT is_empty('SELECT * FROM invoices', 'a scheduler sees no invoice');
SELECT throws_ok($$INSERT INTO invoices VALUES (4, 'sam', 10)$$, '42501', NULL, 'a scheduler cannot create an invoice');
-- Nobody acting: nothing.
SELECT fluent_test_act_as(NULL, 'invoices_app');
SELECT is_empty('SELECT * FROM invoices', 'nobody acting sees nothing');
-- The checks themselves, for a navigation test.
SELECT fluent_test_reset();
SELECT is(fluent_scope('sam', 'invoices', 'read'), 'none', 'scheduler: invoices.read none');
SELECT ok(fluent_can('olivia', 'invoices', 'write'), 'owner writes invoices');
-- The helper refuses a role that bypasses row-level security: such a test
-- would pass for the wrong reason.
SELECT throws_ok($$SELECT fluent_test_act_as('sam', 'postgres')$$, '22023', NULL, 'a superuser role is refused');
-- After the reset, the runner is itself again and sees every row.
SELECT is((SELECT count(*) FROM invoices), 3::bigint, 'the runner sees every row again');

SELECT * FROM finish();
ROLLBACK;
