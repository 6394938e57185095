-- Issue 20, adversarial review of the commit gate (src/gate.rs): a role
-- with no privilege at all must not be able to hold the gate closed.
--
-- Any role can lock any relation OID, existing or not: nextval() takes
-- RowExclusiveLock on the OID before it checks anything, and keeps it for
-- the whole transaction even when a savepoint rolls its error back. The
-- gate was a relation lock on the OID of schema fluent, so that lock made
-- every committing catalog change wait for ShareLock at its commit, and
-- every statement of every session behind that writer: the whole database
-- stopped until the unprivileged transaction ended.
--
-- Two sessions are needed: this one holds the locks, and another one,
-- started with COPY TO PROGRAM (psql from this server's BINDIR, over its
-- socket), commits a grant with a lock_timeout. On the old code its commit
-- waited for this transaction and failed; now it does not wait at all.
CREATE ROLE adv2_nobody NOLOGIN;
SELECT fluent_create_role('adv2_gate_role');
SELECT fluent_create_user('adv2_gate_user');

BEGIN;
SET LOCAL ROLE adv2_nobody;
-- The OIDs an attacker would lock: the old tag's (schema fluent) and the
-- relation of the new tag (pg_database, which PostgreSQL locks with no
-- database in the tag).
DO $$
BEGIN
    PERFORM nextval('fluent'::regnamespace::oid::regclass);
EXCEPTION WHEN OTHERS THEN NULL;
END $$;
DO $$
BEGIN
    PERFORM nextval('pg_catalog.pg_database'::regclass);
EXCEPTION WHEN OTHERS THEN NULL;
END $$;
SELECT l.mode, l.relation = 'fluent'::regnamespace::oid AS on_schema_fluent, l.database = 0 AS no_database
  FROM pg_locks l
 WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation'
   AND l.relation IN ('fluent'::regnamespace::oid, 'pg_catalog.pg_database'::regclass)
 ORDER BY 2;
RESET ROLE;
DO $$
DECLARE
    psql text := (SELECT c.setting FROM pg_catalog.pg_config c WHERE c.name = 'BINDIR') || '/psql';
    sql text := 'SET lock_timeout = ''10s''; SELECT fluent_grant_role(''adv2_gate_user'', ''adv2_gate_role'')';
BEGIN
    EXECUTE format('COPY (SELECT 1) TO PROGRAM %L',
                   format('cat >/dev/null; %s -X -q -h %s -p %s -U %s -d %s -c "%s" >/dev/null 2>&1 || true',
                          psql, split_part(current_setting('unix_socket_directories'), ',', 1),
                          current_setting('port'), current_user, current_database(), sql));
END $$;
-- The other session's grant committed (READ COMMITTED: this statement sees it).
SELECT r.name AS granted
  FROM fluent.grants g JOIN fluent.users u ON u.user_id = g.user_id JOIN fluent.roles r ON r.role_id = g.role_id
 WHERE u.user_key = 'adv2_gate_user';
COMMIT;

SELECT fluent_revoke_role('adv2_gate_user', 'adv2_gate_role');
SELECT fluent_drop_user('adv2_gate_user');
SELECT fluent_drop_role('adv2_gate_role');
DROP ROLE adv2_nobody;
