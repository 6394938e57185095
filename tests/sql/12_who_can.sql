-- "Who can see invoice 3?" (fluent_who_can): every user who may act on one
-- row, and why, computed from the catalog without impersonating anyone.
BEGIN;
SET search_path = public, test_helpers;
SET client_min_messages = warning;
SELECT fluent_create_workspace('agency'), fluent_set_workspace('agency'), fluent_apply_template('fluent');
SELECT fluent_create_module('cases', '{read,write}');
SELECT fluent_create_role('case_worker'), fluent_set_permission('case_worker', 'cases', 'read', 'own');
SELECT fluent_create_role('case_lead'), fluent_set_permission('case_lead', 'cases', 'read', 'direct');
SELECT fluent_create_role('case_head'), fluent_set_permission('case_head', 'cases', 'read', 'team');
-- olivia owns the agency; bea bills; hal heads, mia manages carl and dot,
-- who work cases; tia leads a team with eve in it; vic views, with an
-- override that shuts him out of invoices; gus is disabled.
SELECT fluent_create_user(u) FROM unnest('{olivia,bea,hal,mia,carl,dot,tia,eve,vic,gus}'::text[]) u;
SELECT fluent_set_manager('mia', 'hal'), fluent_set_manager('carl', 'mia'), fluent_set_manager('dot', 'mia');
SELECT fluent_grant_role('olivia', 'owner'), fluent_grant_role('bea', 'billing'), fluent_grant_role('vic', 'viewer'),
       fluent_grant_role('gus', 'billing');
SELECT fluent_grant_role(u, 'case_worker') FROM unnest('{carl,dot,eve}'::text[]) u;
SELECT fluent_grant_role('mia', 'case_lead'), fluent_grant_role('hal', 'case_head'), fluent_grant_role('tia', 'case_lead');
SELECT fluent_create_team('intake'), fluent_add_team_member('intake', 'tia', true), fluent_add_team_member('intake', 'eve');
SELECT fluent_set_override('vic', 'invoices', 'read', 'none');
SELECT fluent_set_user_status('gus', 'disabled');

CREATE TABLE agency_invoices (id int PRIMARY KEY, owner text, ws text);
INSERT INTO agency_invoices VALUES (3, 'bea', 'agency');
SELECT fluent_protect('agency_invoices', 'invoices', 'owner', workspace_column => 'ws');
CREATE TABLE agency_cases (id bigint PRIMARY KEY, owner text, ws text);
CREATE TABLE agency_case_workers (case_id bigint, worker text);
CREATE INDEX ON agency_case_workers (worker);
INSERT INTO agency_cases VALUES (7, 'carl', 'agency'), (8, 'nobody', 'agency');
INSERT INTO agency_case_workers VALUES (7, 'eve'), (8, 'dot');
SELECT fluent_protect('agency_cases', 'cases', 'owner', membership_table => 'agency_case_workers',
                      membership_row_column => 'case_id', membership_user_column => 'worker', workspace_column => 'ws');
GRANT SELECT ON agency_invoices, agency_cases, agency_case_workers TO app, web;

-- Invoice 3: everyone whose scope is all (through roles), and its owner.
SELECT * FROM fluent_who_can('agency_invoices', '3') ORDER BY user_key;
SELECT user_key FROM fluent_who_can('agency_invoices', '3', 'write') ORDER BY user_key;
-- Case 7 (carl's, eve assigned): carl owns it, eve is assigned, mia is his
-- manager (direct), hal above her (team), tia leads eve's team.
SELECT * FROM fluent_who_can('agency_cases', '7') ORDER BY user_key;
-- Case 8 (an unknown owner, dot assigned): dot, mia through dot, hal.
SELECT user_key, reach, through FROM fluent_who_can('agency_cases', '8') ORDER BY user_key;

-- It agrees with what the policies let each of them read (gus, disabled,
-- can neither act nor appear).
CREATE FUNCTION pg_temp.readers_of(tbl regclass, id int) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    u text;
    seen text[] := '{}';
    n int;
BEGIN
    FOR u IN SELECT unnest('{bea,carl,dot,eve,hal,mia,olivia,tia,vic}'::text[]) LOOP
        PERFORM act_as(u);
        EXECUTE format('SELECT count(*) FROM %s WHERE id = $1', tbl) INTO n USING id;
        IF n > 0 THEN seen := seen || u; END IF;
    END LOOP;
    PERFORM act_as(NULL);
    RETURN seen;
END $$;
SET ROLE app;
SELECT pg_temp.readers_of('agency_cases', 7) AS reads_case_7, pg_temp.readers_of('agency_cases', 8) AS reads_case_8,
       pg_temp.readers_of('agency_invoices', 3) AS reads_invoice_3;
RESET ROLE;

-- Errors: unprotected tables, missing rows, unknown actions, NULLs.
CREATE TABLE agency_plain (id int PRIMARY KEY);
SELECT try($$SELECT * FROM fluent_who_can('agency_plain', '1')$$) AS unprotected;
SELECT try($$SELECT * FROM fluent_who_can('agency_invoices', '99')$$) AS missing_row;
SELECT try($$SELECT * FROM fluent_who_can('agency_invoices', 'x')$$) AS bad_key;
SELECT try($$SELECT * FROM fluent_who_can('agency_invoices', '3', 'fly')$$) AS unknown_action;
SELECT try($$SELECT * FROM fluent_who_can('agency_invoices', NULL)$$) AS null_key;

-- Only for those who may read everyone's permissions: not the plain web
-- role acting as anyone, even the row's owner; the reporting role app may.
SET ROLE web;
SELECT act_as('bea');
SELECT try($$SELECT * FROM fluent_who_can('agency_invoices', '3')$$) AS web_as_owner;
SELECT act_as('olivia');
SELECT count(*) AS delegated_admin_sees FROM fluent_who_can('agency_invoices', '3');
-- A delegated administrator looks only in their workspace: invoice 50 of
-- another workspace is as missing as invoice 99 (it used to be refused with
-- 42501 instead, which told that it exists).
RESET ROLE;
INSERT INTO agency_invoices VALUES (50, 'bea', 'elsewhere');
SET ROLE web;
SELECT try($$SELECT * FROM fluent_who_can('agency_invoices', '50')$$) AS other_workspace,
       try($$SELECT * FROM fluent_who_can('agency_invoices', '99')$$) AS missing;
SELECT act_as(NULL);
RESET ROLE;
SET ROLE app;
SELECT count(*) AS reader_sees FROM fluent_who_can('agency_invoices', '3');
SELECT count(*) AS reader_sees_other_workspace FROM fluent_who_can('agency_invoices', '50');
RESET ROLE;
SELECT fluent_set_workspace('default');
ROLLBACK;
