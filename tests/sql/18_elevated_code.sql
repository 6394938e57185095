-- No code that a table's owner controls runs with fluent's elevated
-- identity (issue 18, item 1). fluent_who_can reads the row as the catalog
-- owner, past the policies: a domain CHECK on the key column, a cast from
-- the owner's type to text, or the input function of a composite key ran
-- there as the installing superuser, and the table's owner made themselves
-- a superuser with it. Every caller that may ask (superuser, DBA,
-- fluent_reader, a delegated administrator through the application) asks
-- here; the owner's code records every run.
BEGIN;
SET search_path = public, test_helpers;
SET client_min_messages = warning;
SELECT fluent_create_workspace('elev'), fluent_set_workspace('elev'), fluent_apply_template('fluent');
SELECT fluent_create_user(u) FROM unnest('{elev_olivia,elev_bea}'::text[]) u;
SELECT fluent_grant_role('elev_olivia', 'owner'), fluent_grant_role('elev_bea', 'billing');

CREATE ROLE elev_owner NOLOGIN;
GRANT CREATE ON SCHEMA public TO elev_owner;
SET ROLE elev_owner;
-- The owner's code: records who ran it, and tries to make its owner a
-- superuser whenever a superuser runs it.
CREATE TABLE owner_code_runs (who name, super boolean);
GRANT INSERT ON owner_code_runs TO PUBLIC;
CREATE FUNCTION owner_code() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.owner_code_runs SELECT current_user, rolsuper FROM pg_roles WHERE oid = current_user::regrole;
    IF (SELECT rolsuper FROM pg_roles WHERE oid = current_user::regrole) THEN
        EXECUTE 'ALTER ROLE elev_owner SUPERUSER';
    END IF;
    RETURN true;
END $$;
CREATE FUNCTION owner_check(v int) RETURNS boolean LANGUAGE sql AS 'SELECT public.owner_code()';
CREATE DOMAIN elev_id AS int CHECK (owner_check(VALUE));
CREATE TYPE elev_kind AS ENUM ('alpha', 'beta');
CREATE FUNCTION elev_kind_text(elev_kind) RETURNS text LANGUAGE sql AS 'SELECT public.owner_code()::text';
CREATE CAST (elev_kind AS text) WITH FUNCTION elev_kind_text(elev_kind);
CREATE TYPE elev_pair AS (a elev_id, b int);
-- The reproduction of the issue: a key column retyped to the owner's domain
-- after the table was protected.
CREATE TABLE elev_docs (id int PRIMARY KEY, owner text, ws text);
INSERT INTO elev_docs VALUES (1, 'elev_bea', 'elev');
-- A key of the owner's enum, which the owner cast to text.
CREATE TABLE elev_kinds (kind elev_kind PRIMARY KEY, owner text, ws text);
INSERT INTO elev_kinds VALUES ('alpha', 'elev_bea', 'elev');
-- A domain key from the start, with a membership table keyed by it.
CREATE TABLE elev_cases (id elev_id PRIMARY KEY, owner text, ws text);
CREATE TABLE elev_case_workers (case_id elev_id, worker text);
INSERT INTO elev_cases VALUES (7, 'elev_bea', 'elev');
INSERT INTO elev_case_workers VALUES (7, 'elev_olivia');
-- A composite key, whose input runs its columns' domain checks.
CREATE TABLE elev_pairs (id elev_pair PRIMARY KEY, owner text, ws text);
RESET ROLE;
SELECT fluent_protect('elev_docs', 'invoices', 'owner', workspace_column => 'ws');
SELECT fluent_protect('elev_kinds', 'invoices', 'owner', workspace_column => 'ws');
SELECT fluent_protect('elev_cases', 'invoices', 'owner', 'elev_case_workers', 'case_id', 'worker', workspace_column => 'ws');
SELECT fluent_protect('elev_pairs', 'invoices', 'owner', workspace_column => 'ws');
SET ROLE elev_owner;
ALTER TABLE elev_docs ALTER COLUMN id TYPE elev_id;
-- A cast from text to the owner's enum, which a lookup by a text key would
-- use (found by an adversarial review of the first fix).
CREATE FUNCTION elev_kind_from_text(text) RETURNS elev_kind LANGUAGE sql
    AS 'SELECT CASE WHEN public.owner_code() THEN $1::varchar::public.elev_kind END';
CREATE CAST (text AS elev_kind) WITH FUNCTION elev_kind_from_text(text);
-- An IMMUTABLE function in a partial index's predicate, which PostgreSQL
-- folds when whoever plans a query on the table loads the index.
CREATE FUNCTION owner_immutable() RETURNS boolean LANGUAGE plpgsql IMMUTABLE
    AS 'BEGIN RETURN public.owner_code(); END';
CREATE INDEX ON elev_docs (owner) WHERE owner_immutable();
CREATE INDEX ON elev_kinds (owner) WHERE owner_immutable();
CREATE INDEX ON elev_case_workers (worker) WHERE owner_immutable();
RESET ROLE;
-- A protected table its owner empties of fluent's policies and turns into
-- a view of their functions (PostgreSQL 15 allows it; later versions
-- refuse): fluent_who_can reads tables only.
CREATE TABLE elev_turned (id int, owner text);
CREATE TABLE elev_turned_members (doc int, usr text);
ALTER TABLE elev_turned OWNER TO elev_owner;
ALTER TABLE elev_turned_members OWNER TO elev_owner;
SELECT fluent_protect('elev_turned', 'invoices', 'owner', 'elev_turned_members', 'doc', 'usr', row_column => 'id',
                      delete_action => 'write');
SET ROLE elev_owner;
DO $$
BEGIN
    EXECUTE 'DROP POLICY fluent_select ON elev_turned; DROP POLICY fluent_insert ON elev_turned;
             DROP POLICY fluent_update ON elev_turned; DROP POLICY fluent_delete ON elev_turned;
             ALTER TABLE elev_turned NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY';
    EXECUTE 'CREATE RULE "_RETURN" AS ON SELECT TO elev_turned
             DO INSTEAD SELECT 1 AS id, public.owner_code()::text AS owner';
EXCEPTION WHEN OTHERS THEN
    NULL;
END $$;
RESET ROLE;
TRUNCATE owner_code_runs;

SELECT string_agg(user_key || ':' || reach, ',' ORDER BY user_key) AS superuser_docs FROM fluent_who_can('elev_docs', '1');
SELECT string_agg(user_key || ':' || reach, ',' ORDER BY user_key) AS superuser_kinds FROM fluent_who_can('elev_kinds', 'alpha');
SELECT string_agg(user_key || ':' || reach, ',' ORDER BY user_key) AS superuser_cases FROM fluent_who_can('elev_cases', '7');
SET ROLE dba;
SELECT string_agg(user_key || ':' || reach, ',' ORDER BY user_key) AS dba_docs FROM fluent_who_can('elev_docs', '1');
SELECT string_agg(user_key || ':' || reach, ',' ORDER BY user_key) AS dba_kinds FROM fluent_who_can('elev_kinds', 'alpha');
SELECT string_agg(user_key || ':' || reach, ',' ORDER BY user_key) AS dba_cases FROM fluent_who_can('elev_cases', '7');
RESET ROLE;
SET ROLE app;   -- a fluent_reader
SELECT string_agg(user_key || ':' || reach, ',' ORDER BY user_key) AS reader_docs FROM fluent_who_can('elev_docs', '1');
SELECT string_agg(user_key || ':' || reach, ',' ORDER BY user_key) AS reader_kinds FROM fluent_who_can('elev_kinds', 'alpha');
SELECT string_agg(user_key || ':' || reach, ',' ORDER BY user_key) AS reader_cases FROM fluent_who_can('elev_cases', '7');
RESET ROLE;
SET ROLE web;   -- the application, for a delegated administrator
SELECT act_as('elev_olivia');
SELECT string_agg(user_key || ':' || reach, ',' ORDER BY user_key) AS delegated_docs FROM fluent_who_can('elev_docs', '1');
SELECT string_agg(user_key || ':' || reach, ',' ORDER BY user_key) AS delegated_kinds FROM fluent_who_can('elev_kinds', 'alpha');
SELECT string_agg(user_key || ':' || reach, ',' ORDER BY user_key) AS delegated_cases FROM fluent_who_can('elev_cases', '7');
DO $$
BEGIN
    PERFORM fluent_who_can('elev_turned', '1');
EXCEPTION WHEN OTHERS THEN
    NULL;
END $$;
SELECT act_as(NULL);
RESET ROLE;
-- The owner's code never ran, and its owner is no superuser.
SELECT count(*) AS owner_code_runs FROM owner_code_runs;
SELECT rolsuper AS owner_became_superuser FROM pg_roles WHERE rolname = 'elev_owner';
-- A key whose type's input would run the owner's code is refused, with
-- nothing run.
SELECT try($$SELECT * FROM fluent_who_can('elev_pairs', '(1,2)')$$) AS composite_key;
SELECT count(*) AS owner_code_runs FROM owner_code_runs;
-- The owner's code still runs where PostgreSQL runs it, as its caller.
SET ROLE elev_owner;
SELECT 5::elev_id AS owner_coerces;
RESET ROLE;
SELECT who, super FROM owner_code_runs;
SELECT fluent_set_workspace('default');
ROLLBACK;
