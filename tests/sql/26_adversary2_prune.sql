-- Issue 20, adversarial review of the change log (src/cache.rs,
-- src/loaders.rs): a change whose entry was pruned must not be missed.
--
-- The horizon holds the highest transaction id pruned. A backend that
-- looked while that transaction was running (the oldest running, so its
-- snapshot's xmin) needed its entries, but took the log for complete
-- (horizon <= xmin) and kept the revoked role cached for good. A
-- transaction that started over ten minutes before it commits has its
-- entries pruned by the next catalog write; here its entry is backdated.
--
-- This session is the backend that checks; the revoking transaction T and
-- the later write W are other sessions (psql through COPY TO PROGRAM). T
-- waits on an advisory lock this session holds until it has looked.
SELECT fluent_create_module('adv2_prune_mod');
SELECT fluent_create_role('adv2_prune_role');
SELECT fluent_set_permission('adv2_prune_role', 'adv2_prune_mod', 'read', 'all');
SELECT fluent_create_user('adv2_prune_user');
SELECT fluent_create_user('adv2_prune_other');
SELECT fluent_grant_role('adv2_prune_user', 'adv2_prune_role');
CREATE FUNCTION pg_temp.adv2_psql(sql text, background boolean) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    psql text := (SELECT c.setting FROM pg_catalog.pg_config c WHERE c.name = 'BINDIR') || '/psql';
BEGIN
    EXECUTE format('COPY (SELECT 1) TO PROGRAM %L',
                   format('cat >/dev/null; %s -X -q -h %s -p %s -U %s -d %s -c "%s" </dev/null >/dev/null 2>&1 %s',
                          psql, split_part(current_setting('unix_socket_directories'), ',', 1),
                          current_setting('port'), current_user, current_database(), sql,
                          CASE WHEN background THEN '&' ELSE '|| true' END));
END $$;
SELECT fluent_can('adv2_prune_user', 'adv2_prune_mod', 'read') AS before_revoke;
SELECT pg_advisory_lock(20260426);
-- T: revokes, then waits for this session before it commits.
SELECT pg_temp.adv2_psql('BEGIN; SELECT fluent_revoke_role(''adv2_prune_user'', ''adv2_prune_role''); '
                         'SELECT pg_advisory_lock(20260426); COMMIT;', true);
DO $$
BEGIN
    WHILE NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND NOT l.granted
                        AND l.objid = 20260426) LOOP
        PERFORM pg_sleep(0.01);
    END LOOP;
END $$;
-- Looks while T runs (its snapshot's xmin is T): T's revoke is not seen yet.
SELECT fluent_can('adv2_prune_user', 'adv2_prune_mod', 'read') AS while_t_runs;
SELECT fluent_can('adv2_prune_user', 'adv2_prune_mod', 'read') AS while_t_runs;
SELECT pg_advisory_unlock(20260426);
DO $$
BEGIN
    WHILE EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.objid = 20260426) LOOP
        PERFORM pg_sleep(0.01);
    END LOOP;
END $$;
-- T started over ten minutes ago.
UPDATE fluent.changes c SET at = c.at - interval '1 hour'
 WHERE c.xid = (SELECT max(x.xid) FROM fluent.changes x WHERE x.kind = 'user'
                   AND x.id = (SELECT u.user_id FROM fluent.users u WHERE u.user_key = 'adv2_prune_user'));
-- W: another catalog write prunes T's entry.
SELECT pg_temp.adv2_psql('SELECT fluent_grant_role(''adv2_prune_other'', ''adv2_prune_role'')', false);
SELECT count(*) AS t_entries_left FROM fluent.changes c
 WHERE c.kind = 'user' AND c.id = (SELECT u.user_id FROM fluent.users u WHERE u.user_key = 'adv2_prune_user');
SELECT fluent_can('adv2_prune_user', 'adv2_prune_mod', 'read') AS after_revoke;
SELECT fluent_can('adv2_prune_user', 'adv2_prune_mod', 'read') AS after_revoke;
SELECT fluent_can('adv2_prune_other', 'adv2_prune_mod', 'read') AS other_granted;

SELECT fluent_revoke_role('adv2_prune_other', 'adv2_prune_role');
SELECT fluent_drop_user('adv2_prune_user');
SELECT fluent_drop_user('adv2_prune_other');
SELECT fluent_drop_role('adv2_prune_role');
SELECT fluent_drop_module('adv2_prune_mod');
