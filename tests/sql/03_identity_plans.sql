-- Identity that cannot be spoofed, statements prepared under one user and
-- run under another, parallel workers, and the shape of generated plans.
BEGIN;
SET search_path = public, test_helpers;
SELECT fluent_create_module('appointments');
SELECT fluent_create_role('scheduler');
SELECT fluent_set_permission('scheduler', 'appointments', 'read', 'own');
SELECT fluent_create_role('viewer');
SELECT fluent_set_permission('viewer', 'appointments', 'read', 'all');
SELECT fluent_create_user('ann');
SELECT fluent_create_user('ben');
SELECT fluent_create_user('vic');
SELECT fluent_grant_role('ann', 'scheduler');
SELECT fluent_grant_role('ben', 'scheduler');
SELECT fluent_grant_role('vic', 'viewer');
CREATE TABLE appointments (id int PRIMARY KEY, owner text, starts_at date);
INSERT INTO appointments SELECT g, (ARRAY['ann','ben','vic'])[1 + g % 3], date '2026-01-01' + g % 300
  FROM generate_series(1, 30000) g;
CREATE INDEX ON appointments (owner);
CREATE TABLE appointment_interpreters (appointment_id int, user_key text);
CREATE INDEX ON appointment_interpreters (user_key);
INSERT INTO appointment_interpreters
  SELECT g, CASE WHEN g % 100 = 2 THEN 'ann' ELSE 'interpreter' || g % 1000 END FROM generate_series(1, 30000) g;
ANALYZE appointments, appointment_interpreters;
GRANT SELECT, UPDATE ON appointments TO app;
GRANT SELECT ON appointment_interpreters TO app;
SELECT fluent_protect('appointments', 'appointments', 'owner', 'appointment_interpreters', 'appointment_id', 'user_key');

-- an untrusted role cannot choose the user: not by function, not by SET
SET ROLE auth;
SELECT fluent_set_user('ann');
SET ROLE app;
SELECT fluent_current_user();
SELECT try($$SELECT fluent_set_user('vic')$$);
SELECT try($$SELECT fluent_set_user('vic', true)$$);
SELECT try($$SET fluent.acting_user = 'vic'$$);
SELECT try($$SELECT set_config('fluent.acting_user', 'vic', false)$$);
SELECT try($$SET fluent.somethingelse = 'x'$$);
SELECT try($$SELECT fluent_set_workspace('default')$$);
SELECT try($$SET ROLE auth$$);
SELECT fluent_current_user(), count(*) FROM appointments;
-- dropping one's identity only narrows access
SELECT fluent_reset_user();
SELECT fluent_current_user(), count(*) FROM appointments;
RESET ROLE;

-- transaction-local identity ends with the (sub)transaction
SAVEPOINT s;
SELECT fluent_set_user('vic', true);
SELECT fluent_current_user();
RELEASE s;
SELECT fluent_set_user('ben');
SAVEPOINT s2;
SELECT fluent_set_user('vic', true);
ROLLBACK TO s2;
SELECT fluent_current_user();

-- a statement prepared as one user, run as another, returns the second user's rows
SET ROLE app;
SELECT act_as('ann');
PREPARE mine AS SELECT owner, count(*) FROM appointments GROUP BY owner ORDER BY owner;
EXECUTE mine;
SELECT act_as('ben');
EXECUTE mine;
SELECT act_as('vic');
EXECUTE mine;
-- the same for a generic plan and for a PL/pgSQL function's cached plan
SET plan_cache_mode = force_generic_plan;
PREPARE generic AS SELECT count(*) FROM appointments WHERE starts_at >= $1;
SELECT act_as('ann');
EXECUTE generic('2026-01-01');
SELECT act_as('vic');
EXECUTE generic('2026-01-01');
RESET plan_cache_mode;
RESET ROLE;
CREATE FUNCTION visible_appointments() RETURNS bigint LANGUAGE plpgsql AS
$$ BEGIN RETURN (SELECT count(*) FROM appointments); END $$;
SET ROLE app;
SELECT act_as('ann'), visible_appointments();
SELECT act_as('ben'), visible_appointments();
SELECT act_as('vic'), visible_appointments();
SELECT act_as('ann'), visible_appointments();

-- parallel workers see the acting user (it travels as a setting)
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
-- (force_parallel_mode, renamed debug_parallel_query in PostgreSQL 16)
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000 THEN 'debug_parallel_query'
                       ELSE 'force_parallel_mode' END, 'on', true) AS parallel_forced;
SELECT act_as('ben');
EXPLAIN (COSTS OFF) SELECT count(*) FROM appointments WHERE starts_at > '2026-01-01';
SELECT count(*) FROM appointments WHERE starts_at > '2026-01-01';
SELECT act_as('vic');
SELECT count(*) FROM appointments WHERE starts_at > '2026-01-01';
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000 THEN 'debug_parallel_query'
                       ELSE 'force_parallel_mode' END, 'off', true) AS parallel_forced;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;

-- plan shapes for vic (scope all on read, none on write): no policy qual on
-- reads, nothing scanned on writes (08_plans has the other scopes)
EXPLAIN (COSTS OFF) SELECT count(*) FROM appointments;
EXPLAIN (COSTS OFF) SELECT * FROM appointments WHERE id = 42;
EXPLAIN (COSTS OFF) UPDATE appointments SET starts_at = starts_at WHERE id = 42;
RESET ROLE;
SELECT count(*) AS correlated_or_in_subselect_policies
  FROM pg_policy WHERE polrelid = 'appointments'::regclass
   AND (pg_get_expr(polqual, polrelid) ~* '(exists|\min\s*\(\s*select)'
        OR pg_get_expr(polwithcheck, polrelid) ~* '(exists|\min\s*\(\s*select)');
ROLLBACK;
