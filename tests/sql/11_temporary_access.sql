-- Temporary access: grants and overrides with an expiry stop counting at
-- that instant, with no job running, in this backend's cache and in the
-- plans it keeps. Each statement is its own transaction here: permissions
-- are those at the transaction's start, like now().
SET search_path = public, test_helpers;
SET client_min_messages = warning;
SELECT fluent_create_workspace('temp'), fluent_set_workspace('temp');
SELECT fluent_create_module('docs', '{read,write}');
SELECT fluent_create_role('reader'), fluent_set_permission('reader', 'docs', 'read', 'all');
SELECT fluent_create_user('tess'), fluent_create_user('pam'), fluent_grant_role('pam', 'reader');
CREATE TABLE temp_docs (id int PRIMARY KEY, owner text, ws text);
INSERT INTO temp_docs VALUES (1, 'pam', 'temp'), (2, 'pam', 'temp'), (3, 'tess', 'temp');
GRANT SELECT ON temp_docs TO app;
SELECT fluent_protect('temp_docs', 'docs', 'owner', workspace_column => 'ws');
-- A privileged reporting-anchor role: Olive holds it for good, and Ray
-- reports to Cole, who will hold it for a while.
SELECT fluent_create_role('chief'), fluent_alter_role('chief', privileged => true, reporting_anchor => true);
SELECT fluent_create_user('olive'), fluent_grant_role('olive', 'chief');
SELECT fluent_create_user('cole'), fluent_create_user('ray', manager => 'cole'), fluent_grant_role('ray', 'reader');

-- An expiry must lie ahead.
SELECT regexp_replace(try($$SELECT fluent_grant_role('tess', 'reader', until => now() - interval '1 minute')$$),
                      ' at .*, which', ' at <then>, which') AS past_grant;
SELECT regexp_replace(try($$SELECT fluent_set_override('pam', 'docs', 'read', 'none', until => now())$$),
                      ' at .*, which', ' at <then>, which') AS past_override;

-- Tess reads everything for four seconds; Pam is shut out for as long.
SELECT fluent_grant_role('tess', 'reader', until => now() + interval '4 seconds');
SELECT fluent_set_override('pam', 'docs', 'read', 'none', until => now() + interval '4 seconds');
SELECT fluent_grant_role('cole', 'chief', until => now() + interval '4 seconds');
SELECT user_key, valid_until IS NOT NULL AS temporary FROM fluent.role_members WHERE workspace = 'temp' ORDER BY user_key;
SELECT user_key, kind, role, module, action, scope FROM fluent.expiring_access WHERE workspace = 'temp' ORDER BY kind;
SELECT user_key, expired, expires_soon, review_due FROM fluent.access_review WHERE workspace = 'temp' ORDER BY user_key;
-- While Cole's grant counts, he is a privileged user and Ray's reporting
-- anchor; but a temporary grant does not keep the workspace staffed: Olive
-- is the last privileged holder.
SELECT user_key, valid_until IS NOT NULL AS temporary FROM fluent.privileged_users WHERE workspace = 'temp' ORDER BY user_key;
SELECT user_key, manager, reporting_anchor FROM fluent.reporting_lines WHERE workspace = 'temp' AND user_key = 'ray';
BEGIN;
SELECT fluent_revoke_role('olive', 'chief');
ROLLBACK;

SET ROLE app;
SET plan_cache_mode = force_generic_plan;
SELECT act_as('tess');
PREPARE tess_docs AS SELECT count(*) FROM temp_docs;
SELECT fluent_can('docs', 'read') AS tess_can, fluent_scope('docs', 'read') AS tess_scope;
EXECUTE tess_docs;
SELECT act_as('pam');
PREPARE pam_docs AS SELECT count(*) FROM temp_docs;
SELECT fluent_can('docs', 'read') AS pam_can;
EXECUTE pam_docs;
RESET ROLE;

SELECT pg_sleep(4.5);

-- The same backend, whose cache holds both users and whose kept plans folded
-- their answers: both expired.
SET ROLE app;
SELECT act_as('tess');
SELECT fluent_can('docs', 'read') AS tess_can_after, fluent_scope('docs', 'read') AS tess_scope_after;
EXECUTE tess_docs;
SELECT count(*) AS tess_reads_after FROM temp_docs;
SELECT act_as('pam');
SELECT fluent_can('docs', 'read') AS pam_can_after;
EXECUTE pam_docs;
SELECT act_as(NULL);
RESET ROLE;
RESET plan_cache_mode;
DEALLOCATE ALL;

-- The views: an expired grant is no longer held (Tess has no role now), and
-- stays in the access review, marked expired.
SELECT user_key FROM fluent.role_members WHERE workspace = 'temp' ORDER BY user_key;
SELECT user_key FROM fluent.users_without_roles WHERE user_key IN ('tess', 'pam');
SELECT count(*) AS expiring FROM fluent.expiring_access WHERE workspace = 'temp';
SELECT user_key, expired, expires_soon, review_due FROM fluent.access_review WHERE workspace = 'temp' ORDER BY user_key;
SELECT * FROM fluent.effective_permissions WHERE workspace = 'temp' AND module = 'docs' AND action = 'read' ORDER BY user_key;
SELECT fluent_explain('pam', 'docs', 'read');
-- Cole's expired grant no longer makes him privileged or Ray's anchor, and
-- no longer keeps the workspace staffed: Olive is the last holder.
SELECT user_key FROM fluent.privileged_users WHERE workspace = 'temp' ORDER BY user_key;
SELECT user_key, manager, reporting_anchor FROM fluent.reporting_lines WHERE workspace = 'temp' AND user_key = 'ray';
SELECT try($$SELECT fluent_revoke_role('olive', 'chief')$$) AS last_privileged_holder;

-- Granting again without an expiry makes the grant permanent; granting again
-- with one shortens or extends it.
SELECT fluent_grant_role('tess', 'reader');
SELECT fluent_scope('tess', 'docs', 'read') AS tess_regranted;
SELECT fluent_grant_role('tess', 'reader', until => now() + interval '1 day');
SELECT user_key, role, remaining > interval '23 hours' AS about_a_day FROM fluent.expiring_access WHERE workspace = 'temp';

-- Delegated administrators grant temporary access within their powers only
-- (the same checks as any grant): covered by 09_identity; the audit trail
-- records the expiry.
SELECT operation, before->>'valid_until' IS NULL AS was_permanent, after->>'valid_until' IS NOT NULL AS records_expiry
  FROM fluent.audit_log
 WHERE table_name LIKE '%grants' AND after->>'user_id' = (SELECT user_id::text FROM fluent.users WHERE user_key = 'tess')
 ORDER BY audit_id DESC LIMIT 1;

SELECT fluent_unprotect('temp_docs');
DROP TABLE temp_docs;
SELECT fluent_set_workspace('default');
