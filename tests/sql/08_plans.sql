-- The plan of a protected query is the plan of the hand-written query for
-- the acting user: scope all has no policy qual, own and team an index
-- condition on the owner column (OR-ed with the membership lookup), none
-- reads nothing. For text, integer and uuid owners, a membership table and a
-- workspace column. Writes still keep rows within reach.
BEGIN;
SET search_path = public, test_helpers;
SELECT fluent_create_module('notes');
SELECT fluent_create_role('own_notes'), fluent_create_role('team_notes'), fluent_create_role('all_notes');
SELECT fluent_set_permission('own_notes', 'notes', a, 'own') FROM unnest('{read,write,delete}'::text[]) a;
SELECT fluent_set_permission('team_notes', 'notes', a, 'team') FROM unnest('{read,write,delete}'::text[]) a;
SELECT fluent_set_permission('all_notes', 'notes', a, 'all') FROM unnest('{read,write,delete}'::text[]) a;
-- text keys u0..u199; uuid keys for the uuid table; integer keys 1..200
SELECT count(fluent_create_user('u' || g)) FROM generate_series(0, 199) g;
SELECT count(fluent_create_user(g::text)) FROM generate_series(1, 200) g;
SELECT count(fluent_create_user(md5(g::text)::uuid::text)) FROM generate_series(1, 3) g;
SELECT fluent_grant_role(u, 'own_notes') FROM unnest(ARRAY['u1', '1', md5('1')::uuid::text]) u;
SELECT fluent_grant_role('u2', 'team_notes'), fluent_grant_role('u3', 'all_notes');
SELECT fluent_create_team('desk'), fluent_add_team_member('desk', 'u2', true),
       fluent_add_team_member('desk', 'u4'), fluent_add_team_member('desk', 'u5');
-- u9 holds nothing: scope none

CREATE TABLE notes (id int PRIMARY KEY, owner text NOT NULL, body text);
INSERT INTO notes SELECT g, 'u' || g % 200, md5(g::text) FROM generate_series(1, 20000) g;
CREATE INDEX ON notes (owner);
CREATE INDEX ON notes (body text_pattern_ops);
-- the same rows, unprotected: what a developer would query by hand
CREATE TABLE notes_by_hand AS SELECT * FROM notes;
ALTER TABLE notes_by_hand ADD PRIMARY KEY (id);
CREATE INDEX ON notes_by_hand (owner);
CREATE TABLE notes_by_id (id int PRIMARY KEY, owner int NOT NULL, body text);
INSERT INTO notes_by_id SELECT g, 1 + g % 200, md5(g::text) FROM generate_series(1, 20000) g;
CREATE INDEX ON notes_by_id (owner);
CREATE TABLE notes_by_uuid (id int PRIMARY KEY, owner uuid NOT NULL, body text);
INSERT INTO notes_by_uuid SELECT g, md5((1 + g % 200)::text)::uuid, md5(g::text) FROM generate_series(1, 20000) g;
CREATE INDEX ON notes_by_uuid (owner);
-- rows also reach the users assigned to them
CREATE TABLE shared_notes (id int PRIMARY KEY, owner text NOT NULL, body text);
INSERT INTO shared_notes SELECT g, 'u' || g % 200, md5(g::text) FROM generate_series(1, 20000) g;
CREATE INDEX ON shared_notes (owner);
CREATE TABLE note_readers (note_id int NOT NULL, user_key text NOT NULL);
INSERT INTO note_readers SELECT g, 'u' || (g * 7) % 200 FROM generate_series(1, 20000, 3) g;
CREATE INDEX ON note_readers (user_key);
-- rows in several workspaces
CREATE TABLE tenant_notes (id int PRIMARY KEY, workspace text NOT NULL, owner text NOT NULL, body text);
INSERT INTO tenant_notes SELECT g, CASE WHEN g % 4 = 0 THEN 'default' ELSE 'other' || g % 4 END, 'u' || g % 200, md5(g::text)
  FROM generate_series(1, 20000) g;
CREATE INDEX ON tenant_notes (owner);
CREATE INDEX ON tenant_notes (workspace);
ANALYZE notes, notes_by_hand, notes_by_id, notes_by_uuid, shared_notes, note_readers, tenant_notes;
GRANT SELECT, INSERT, UPDATE, DELETE ON notes, notes_by_id, notes_by_uuid, shared_notes, tenant_notes TO app;
GRANT SELECT ON note_readers, notes_by_hand TO app;
SELECT fluent_protect('notes', 'notes', 'owner');
-- A plan's nodes and row estimates, without costs, conditions and InitPlans.
CREATE FUNCTION pg_temp.plan_shape(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    line text;
    shape text[] := '{}';
BEGIN
    FOR line IN EXECUTE 'EXPLAIN ' || query LOOP
        CONTINUE WHEN line ~ '(InitPlan|->  Result|Cond:|Filter:|Key:)';
        shape := shape || regexp_replace(line, 'cost=\S+ | width=\d+', '', 'g');
    END LOOP;
    RETURN array_to_string(shape, E'\n');
END $$;
SELECT fluent_protect('notes_by_id', 'notes', 'owner');
SELECT fluent_protect('notes_by_uuid', 'notes', 'owner');
SELECT fluent_protect('shared_notes', 'notes', 'owner', 'note_readers', 'note_id', 'user_key');
SELECT fluent_protect('tenant_notes', 'notes', 'owner', workspace_column => 'workspace');
SET ROLE app;

-- scope own: the owner index, nothing else
SELECT act_as('u1');
EXPLAIN (COSTS OFF) SELECT count(*) FROM notes;
SELECT count(*) FROM notes;
EXPLAIN (COSTS OFF) SELECT id FROM notes ORDER BY id DESC LIMIT 5;
SELECT id FROM notes ORDER BY id DESC LIMIT 5;
-- the same plans as by hand, row estimates included
SELECT pg_temp.plan_shape('SELECT count(*) FROM notes')
       = replace(pg_temp.plan_shape($$SELECT count(*) FROM notes_by_hand WHERE owner = 'u1'$$), '_by_hand', '')
       AS count_planned_as_by_hand,
       pg_temp.plan_shape('SELECT * FROM notes ORDER BY id DESC LIMIT 50')
       = replace(pg_temp.plan_shape($$SELECT * FROM notes_by_hand WHERE owner = 'u1' ORDER BY id DESC LIMIT 50$$), '_by_hand', '')
       AS page_planned_as_by_hand;
SELECT act_as('1');
EXPLAIN (COSTS OFF) SELECT count(*) FROM notes_by_id;
SELECT count(*), min(owner), max(owner) FROM notes_by_id;
SELECT act_as(md5('1')::uuid::text);
EXPLAIN (COSTS OFF) SELECT count(*) FROM notes_by_uuid;
SELECT count(*), min(owner::text) = md5('1')::uuid::text AS own_rows_only FROM notes_by_uuid;

-- scope team: the lead and the members, through the same index
SELECT act_as('u2');
EXPLAIN (COSTS OFF) SELECT count(*) FROM notes;
SELECT owner, count(*) FROM notes GROUP BY owner ORDER BY owner;

-- scope all: no policy qual at all, so a non-leakproof LIKE uses its index
SELECT act_as('u3');
EXPLAIN (COSTS OFF) SELECT count(*) FROM notes;
EXPLAIN (COSTS OFF) SELECT count(*) FROM notes WHERE body LIKE 'abc%';
SELECT count(*) FROM notes WHERE body LIKE 'abc%';

-- scope none: nothing is read, whatever else the query asks
SELECT act_as('u9');
EXPLAIN (COSTS OFF) SELECT count(*) FROM notes;
EXPLAIN (COSTS OFF) SELECT count(*) FROM notes WHERE body LIKE 'abc%';
EXPLAIN (COSTS OFF) SELECT * FROM notes n JOIN notes_by_id i USING (id) WHERE n.owner = 'u1';
SELECT count(*) FROM notes WHERE body LIKE 'abc%';
-- a cursor keeps the identity it was opened with (as with SET ROLE)
SELECT act_as('u3');
DECLARE opened_as_u3 CURSOR FOR SELECT DISTINCT owner FROM notes WHERE owner IN ('u1', 'u7') ORDER BY owner;
SELECT act_as('u9');
FETCH ALL FROM opened_as_u3;
CLOSE opened_as_u3;
SELECT act_as(NULL);
EXPLAIN (COSTS OFF) SELECT count(*) FROM notes WHERE id < 100;
SELECT count(*) FROM notes WHERE id < 100;

-- a membership table: owned rows OR assigned rows, two index scans OR-ed
SELECT act_as('u1');
EXPLAIN (COSTS OFF) SELECT count(*) FROM shared_notes;
SELECT count(*) FILTER (WHERE owner = 'u1') AS owned,
       count(*) FILTER (WHERE owner <> 'u1') AS assigned FROM shared_notes;
SELECT act_as('u3');
EXPLAIN (COSTS OFF) SELECT count(*) FROM shared_notes;

-- a workspace column: scope all keeps the workspace filter only
SELECT act_as('u3');
EXPLAIN (COSTS OFF) SELECT count(*) FROM tenant_notes;
SELECT workspace, count(*) FROM tenant_notes GROUP BY workspace;
SELECT act_as('u1');
EXPLAIN (COSTS OFF) SELECT count(*) FROM tenant_notes;
SELECT workspace, owner, count(*) FROM tenant_notes GROUP BY workspace, owner;

-- nothing the planner keeps calls fluent per row
SELECT act_as('u2');
EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM shared_notes WHERE body LIKE 'a%';

-- writes keep rows in reach, whatever the plan
SELECT act_as('u1');
INSERT INTO notes VALUES (100001, 'u1', 'mine') RETURNING id, owner;
SELECT try($$INSERT INTO notes VALUES (100002, 'u7', 'not mine')$$);
UPDATE notes SET body = 'edited' WHERE id IN (1, 2, 201) RETURNING id, owner, body;
SELECT try($$UPDATE notes SET owner = 'u7' WHERE id = 201$$);
DELETE FROM notes WHERE id IN (100001, 2) RETURNING id;
SELECT act_as('u9');
SELECT try($$INSERT INTO notes VALUES (100003, 'u9', 'nothing')$$);
UPDATE notes SET body = 'x' RETURNING id;
SELECT act_as('u3');
UPDATE notes SET body = 'any' WHERE id IN (2, 3) RETURNING id, owner;
SELECT act_as('u2');
INSERT INTO notes VALUES (100004, 'u4', 'for a member') RETURNING id, owner;
SELECT try($$INSERT INTO notes VALUES (100005, 'u6', 'outside the team')$$);

-- the table owner under FORCE gets the same plans
RESET ROLE;
CREATE ROLE notes_owner;
ALTER TABLE notes OWNER TO notes_owner;
SET ROLE notes_owner;
SELECT act_as('u1');
EXPLAIN (COSTS OFF) SELECT count(*) FROM notes;
SELECT count(*) FROM notes;
RESET ROLE;

-- a table with an owner column: one call per policy, which the planner
-- replaces with the test it stands for (above)
SELECT polname, pg_get_expr(polqual, polrelid) AS using_expr, pg_get_expr(polwithcheck, polrelid) AS check_expr
  FROM pg_policy WHERE polrelid = 'notes_by_id'::regclass ORDER BY polname;
-- where no plan is made (a CHECK constraint), the call itself runs, with
-- the same answers: text, integer and NULL owners
CREATE TEMP TABLE reach_probe (
    owner text, reached boolean, n int, n_reached boolean,
    CHECK (fluent.rls_reaches('notes', 'read', owner) IS NOT DISTINCT FROM reached),
    CHECK (fluent.rls_reaches('notes', 'read', n) IS NOT DISTINCT FROM n_reached));
GRANT INSERT ON reach_probe TO app;
SET ROLE app;
SELECT act_as('u2');
INSERT INTO reach_probe VALUES ('u4', true, NULL, NULL), ('u6', false, 4, false), ('u2', true, NULL, NULL);
SELECT try($$INSERT INTO reach_probe VALUES ('u6', true, NULL, NULL)$$);
SELECT act_as('1');
INSERT INTO reach_probe VALUES ('u1', false, 1, true), (NULL, NULL, 2, false);
SELECT try($$INSERT INTO reach_probe VALUES (NULL, NULL, 2, true)$$);
-- a NULL owner: reached at scope all, not at none, NULL otherwise (above)
SELECT act_as('u3');
INSERT INTO reach_probe VALUES ('anyone', true, 7, true), (NULL, true, NULL, true);
SELECT act_as('u9');
INSERT INTO reach_probe VALUES ('u9', false, 9, false), (NULL, false, NULL, false);
RESET ROLE;
-- a team of more than 100 users: the keys come from one sub-select (an
-- InitPlan), estimated as one, not as an array estimated key by key
SELECT count(fluent_add_team_member('desk', 'u' || g)) FROM generate_series(10, 130) g;
SET ROLE app;
SELECT act_as('u2');
EXPLAIN (COSTS OFF) SELECT count(*) FROM notes;
SELECT count(DISTINCT owner) FROM notes;
RESET ROLE;
ROLLBACK;
