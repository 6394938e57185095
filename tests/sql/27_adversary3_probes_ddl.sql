-- Adversary 3: DDL on fluent's users, grants or overrides after a check in
-- the same transaction. The first load of a user in a transaction keeps
-- index scans on those tables open until it ends (src/probes.rs); the
-- relation references they hold made PostgreSQL refuse a later ALTER
-- TABLE, TRUNCATE, CREATE INDEX, REINDEX or DROP EXTENSION in that
-- transaction ("cannot ... because it is being used by active queries in
-- this session"). A utility statement now closes them first.
SELECT fluent_create_module('adv3d_docs', '{read}');
SELECT fluent_create_role('adv3d_viewer');
SELECT fluent_set_permission('adv3d_viewer', 'adv3d_docs', 'read', 'all');
SELECT fluent_create_user('adv3d_u' || g) FROM generate_series(1, 8) g;
SELECT fluent_grant_role('adv3d_u' || g, 'adv3d_viewer') FROM generate_series(1, 8) g;

BEGIN;
SELECT fluent_can('adv3d_u1', 'adv3d_docs', 'read');
CREATE INDEX adv3d_overrides_scope ON fluent.overrides (scope);
-- Loads again (through the query: the transaction has written).
SELECT fluent_can('adv3d_u2', 'adv3d_docs', 'read');
ROLLBACK;

BEGIN;
SELECT fluent_can('adv3d_u3', 'adv3d_docs', 'read');
SAVEPOINT s;
SELECT fluent_can('adv3d_u4', 'adv3d_docs', 'read');
TRUNCATE fluent.users CASCADE;
SELECT fluent_can('adv3d_u5', 'adv3d_docs', 'read') AS after_truncate;
ROLLBACK TO s;
SELECT fluent_can('adv3d_u5', 'adv3d_docs', 'read') AS rolled_back;
REINDEX INDEX fluent.grants_workspace_user_idx;
SELECT fluent_can('adv3d_u6', 'adv3d_docs', 'read') AS after_reindex;
COMMIT;

-- Fetching from a cursor keeps the scans open (no DDL between).
BEGIN;
DECLARE c CURSOR FOR SELECT g, fluent_can('adv3d_u' || g, 'adv3d_docs', 'read') FROM generate_series(7, 8) g;
FETCH 1 FROM c;
FETCH 1 FROM c;
COMMIT;

SELECT fluent_drop_user('adv3d_u' || g, force => true) FROM generate_series(1, 8) g;
SELECT fluent_drop_role('adv3d_viewer', force => true);
SELECT fluent_drop_module('adv3d_docs');
