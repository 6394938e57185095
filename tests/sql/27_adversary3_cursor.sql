-- Adversary 3: a cursor's snapshot older than the cache's last look.
-- A cursor declared before another backend revokes a grant, fetched after
-- later statements of this session applied the revoke, loads the user
-- through its own (older) snapshot. The cursor may answer as of its
-- snapshot, but the entry it loads must not be kept as current: the old
-- cache stamped it as loaded after the revoke and answered 't' for that
-- user in every later transaction of the backend, until the user's next
-- change (src/cache.rs, load_through_snapshot).
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT fluent_create_module('adv3_docs', '{read}');
SELECT fluent_create_role('adv3_viewer');
SELECT fluent_set_permission('adv3_viewer', 'adv3_docs', 'read', 'all');
SELECT fluent_create_user('adv3_u1'), fluent_create_user('adv3_u2');
SELECT fluent_grant_role('adv3_u1', 'adv3_viewer'), fluent_grant_role('adv3_u2', 'adv3_viewer');
CREATE ROLE adv3_reader IN ROLE fluent_reader;
-- Another backend, as the administrator.
SELECT dblink_connect('adv3_other',
       format('host=%s port=%s dbname=%s user=%s',
              split_part(current_setting('unix_socket_directories'), ',', 1),
              current_setting('port'), current_database(), current_user));

SET ROLE adv3_reader;
SELECT fluent_can('adv3_u2', 'adv3_docs', 'read');
SELECT fluent_can('adv3_u2', 'adv3_docs', 'read');
BEGIN;
DECLARE c CURSOR FOR SELECT fluent_can('adv3_u1', 'adv3_docs', 'read');
RESET ROLE;
SELECT dblink_exec('adv3_other', $$DO 'BEGIN PERFORM fluent_revoke_role(''adv3_u1'', ''adv3_viewer''); END'$$);
SET ROLE adv3_reader;
-- Two statements: the first applies the revoke, the second looks again.
SELECT fluent_can('adv3_u2', 'adv3_docs', 'read');
SELECT fluent_can('adv3_u2', 'adv3_docs', 'read');
-- As of the cursor's snapshot: granted.
FETCH c;
-- After it, the revoke holds: in this transaction, and in the next.
SELECT fluent_can('adv3_u1', 'adv3_docs', 'read') AS u1_same_transaction;
COMMIT;
SELECT fluent_can('adv3_u1', 'adv3_docs', 'read') AS u1_next_transaction;
SELECT fluent_scope('adv3_u1', 'adv3_docs', 'read') AS u1_scope;

RESET ROLE;
SELECT dblink_disconnect('adv3_other');
DROP ROLE adv3_reader;
SELECT fluent_drop_user('adv3_u1', force => true), fluent_drop_user('adv3_u2', force => true);
SELECT fluent_drop_role('adv3_viewer', force => true);
SELECT fluent_drop_module('adv3_docs');
DROP EXTENSION dblink;
