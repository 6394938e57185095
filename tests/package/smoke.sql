-- A freshly installed package at work: the extension, a template, a
-- protected table, and what one user sees through the application role.
\set ON_ERROR_STOP 1
CREATE EXTENSION fluent;
CREATE ROLE smoke_app NOLOGIN;
SELECT fluent_apply_template('fluent');
SELECT fluent_create_user('bea'), fluent_grant_role('bea', 'billing'),
       fluent_create_user('sam'), fluent_grant_role('sam', 'scheduler');
CREATE TABLE invoices (id int PRIMARY KEY, owner text);
INSERT INTO invoices VALUES (1, 'bea'), (2, 'olivia');
GRANT SELECT ON invoices TO smoke_app;
SELECT fluent_protect('invoices', 'invoices', 'owner', delete_action => 'write');
BEGIN;
SELECT fluent_test_act_as('bea', 'smoke_app');
SELECT 'bea sees ' || count(*) FROM invoices;
SELECT fluent_test_act_as('sam', 'smoke_app');
SELECT 'sam sees ' || count(*) FROM invoices;
ROLLBACK;
SELECT 'version ' || extversion FROM pg_extension WHERE extname = 'fluent';
