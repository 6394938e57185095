-- Issue 19, items 5 and 6: invitations (seed 000, "Inviting users") and the
-- audit trail by permission (seed 001, "View audit/access logs": Owner,
-- Admin, Scheduler, Billing and Compliance view it, Viewer does not).
-- Application roles switch with SET LOCAL ROLE inside transactions: a
-- session-level move to an untrusted role would seal the authenticator's
-- trust for the rest of the session (src/identity.rs).
SET search_path = public, test_helpers;
SET client_min_messages = warning;
-- A statement's SQLSTATE, message and hint, or 'ok'.
CREATE FUNCTION pg_temp.try_hint(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    hint text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' (' || nullif(hint, '') || ')', '');
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.try_hint(text) TO PUBLIC;

-- Workspace inv from the fluent template; Otto owns it, Ada administers
-- (manage_users and assign_roles come with users.write), Bill bills, Vera
-- views. Another workspace, inv_other, has a user and entries of its own.
SELECT fluent_create_workspace('inv_other'), fluent_set_workspace('inv_other');
SELECT fluent_create_module('docs', '{read}'), fluent_create_role('reader');
SELECT fluent_create_user('inv_zed'), fluent_grant_role('inv_zed', 'reader');
SELECT fluent_create_workspace('inv'), fluent_set_workspace('inv');
SELECT fluent_apply_template('fluent');
SELECT fluent_create_user('inv_otto'), fluent_grant_role('inv_otto', 'owner');
SELECT fluent_create_user('inv_ada'), fluent_grant_role('inv_ada', 'admin');
SELECT fluent_create_user('inv_bill'), fluent_grant_role('inv_bill', 'billing');
SELECT fluent_create_user('inv_vera'), fluent_grant_role('inv_vera', 'viewer');
CREATE TABLE inv_appointments (id int PRIMARY KEY, owner text, ws text);
INSERT INTO inv_appointments VALUES (1, 'inv_ivy', 'inv'), (2, 'inv_bill', 'inv'), (3, 'inv_otto', 'inv');
GRANT SELECT ON inv_appointments TO web;
SELECT fluent_protect('inv_appointments', 'appointments', 'owner', workspace_column => 'ws');

-- 1. Inviting ---------------------------------------------------------------
-- Ada invites Ivy through the application (a delegated administrator: the
-- seed's "User management (invite/remove users)" is Owner and Admin) and
-- gives her the scheduler role; the invitation is open for 7 days by default.
BEGIN;
SET LOCAL ROLE web;
SELECT act_as('inv_ada');
SELECT fluent_invite_user('inv_ivy', 'Ivy', 'inv_otto') = now() + interval '7 days' AS ivy_invited_for_7_days;
SELECT fluent_grant_role('inv_ivy', 'scheduler');
SELECT fluent_invite_user('inv_neil', valid_for => NULL) IS NULL AS neil_never_expires;
SELECT fluent_grant_role('inv_neil', 'viewer');
-- Bill may not invite.
SELECT act_as('inv_bill');
SELECT pg_temp.try_hint($$SELECT fluent_invite_user('inv_bills_friend')$$) AS bill_invites;
SELECT act_as(NULL);
COMMIT;
-- Arguments: a positive validity; an existing user is not invited again.
SELECT pg_temp.try_hint($$SELECT fluent_invite_user('inv_x', valid_for => interval '0')$$) AS zero_validity;
SELECT pg_temp.try_hint($$SELECT fluent_invite_user('inv_bill')$$) AS inviting_active_user;
SELECT pg_temp.try_hint($$SELECT fluent_invite_user('inv_ivy', 'Ivy Two')$$) AS renewing_with_a_name;
SELECT u.user_key, u.status, u.display_name, m.user_key AS manager, u.invited_until IS NOT NULL AS expires
  FROM fluent.users u LEFT JOIN fluent.users m ON m.user_id = u.manager_id
 WHERE u.user_key IN ('inv_ivy', 'inv_neil') ORDER BY 1;

-- 2. An invited user holding roles cannot act until accepted ---------------
-- Refused as acting user, by a DBA and by the authenticator, with a hint.
SELECT pg_temp.try_hint($$SELECT fluent_set_user('inv_ivy')$$) AS dba_sets_ivy;
BEGIN;
SET LOCAL ROLE auth;
SELECT pg_temp.try_hint($$SELECT fluent_set_user('inv_ivy', true)$$) AS auth_sets_ivy;
SELECT pg_temp.try_hint($$SELECT fluent_test_act_as('inv_ivy', 'web')$$) AS test_act_as_ivy;
COMMIT;
-- Her roles give her nothing ...
SELECT fluent_can('inv_ivy', 'appointments', 'read') AS ivy_can_read, fluent_scope('inv_ivy', 'appointments', 'read') AS ivy_scope;
SELECT scope, source, roles FROM fluent.effective_permissions
 WHERE workspace = 'inv' AND user_key = 'inv_ivy' AND module = 'appointments' AND action = 'read';
SELECT step, fact, subject, scope, detail FROM fluent_explain('inv_ivy', 'appointments', 'read') WHERE fact IN ('user', 'result');
-- ... nor do the policies of a protected table: even with the acting-user
-- setting forced to her name (a superuser can), she reads no row, not even
-- her own, while Bill, acting the same way, reads his.
BEGIN;
SET LOCAL fluent.acting_user = 'inv_ivy';
SET LOCAL ROLE web;
SELECT current_setting('fluent.acting_user') AS forced_user, count(*) AS ivy_rows FROM inv_appointments;
COMMIT;
BEGIN;
SET LOCAL fluent.acting_user = 'inv_bill';
SET LOCAL ROLE web;
SELECT count(*) AS bill_rows FROM inv_appointments;
COMMIT;
-- The access review lists the invitation with the roles waiting for it.
SELECT workspace, user_key, display_name, manager, invited_until IS NOT NULL AS expires, expired, roles
  FROM fluent.invitations WHERE user_key LIKE 'inv\_%' ORDER BY user_key;

-- 3. Who may accept ---------------------------------------------------------
-- Nobody without trust or the right: an application role acting for nobody,
-- or for Bill; a NOINHERIT member of fluent_authenticator; an authenticator
-- that has already chosen the acting user.
BEGIN;
SET LOCAL ROLE web;
SELECT pg_temp.try_hint($$SELECT fluent_accept_invitation('inv_ivy')$$) AS web_accepts;
SELECT act_as('inv_bill');
SELECT pg_temp.try_hint($$SELECT fluent_accept_invitation('inv_ivy')$$) AS bill_accepts;
SELECT act_as(NULL);
COMMIT;
BEGIN;
SET LOCAL ROLE noinh_auth;
SELECT pg_temp.try_hint($$SELECT fluent_accept_invitation('inv_ivy')$$) AS noinherit_authenticator_accepts;
COMMIT;
BEGIN;
SET LOCAL ROLE auth;
SELECT fluent_set_user('inv_bill', true);
SELECT pg_temp.try_hint($$SELECT fluent_accept_invitation('inv_ivy')$$) AS sealed_authenticator_accepts;
ROLLBACK;
-- Calling the implementation with a plain ticket is no way round: only the
-- public function's ticket records that the authenticator could choose.
BEGIN;
SET LOCAL ROLE auth;
SELECT pg_temp.try_hint($$SELECT fluent._do_accept_invitation('inv_ivy', fluent._caller())$$) AS auth_plain_ticket;
COMMIT;
-- Only invited users, and only while the invitation is open.
BEGIN;
SET LOCAL ROLE auth;
SELECT pg_temp.try_hint($$SELECT fluent_accept_invitation('inv_bill')$$) AS accept_active_user;
SELECT pg_temp.try_hint($$SELECT fluent_accept_invitation('inv_nobody')$$) AS accept_unknown_user;
COMMIT;
SELECT fluent_create_user('inv_gus', status => 'ghost'), fluent_create_user('inv_dan', status => 'disabled');
SELECT pg_temp.try_hint($$SELECT fluent_accept_invitation('inv_gus')$$) AS accept_ghost,
       pg_temp.try_hint($$SELECT fluent_accept_invitation('inv_dan')$$) AS accept_disabled;
SELECT fluent_invite_user('inv_eve', valid_for => interval '1 second') IS NOT NULL AS eve_invited;
SELECT fluent_grant_role('inv_eve', 'billing');
SELECT pg_sleep(1.2);
BEGIN;
SET LOCAL ROLE auth;
SELECT regexp_replace(pg_temp.try_hint($$SELECT fluent_accept_invitation('inv_eve')$$), 'expired at [^(]*\(', 'expired at <then> (')
       AS accept_expired;
COMMIT;
SELECT user_key, expired, roles FROM fluent.invitations WHERE user_key LIKE 'inv\_%' ORDER BY user_key;
SELECT pg_temp.try_hint($$SELECT fluent_set_user('inv_eve')$$) AS eve_acts;

-- The authenticator accepts Ivy's invitation, then chooses her, in one
-- transaction; this backend had cached her as barred.
BEGIN;
SET LOCAL ROLE auth;
SELECT fluent_accept_invitation('inv_ivy');
SELECT fluent_set_user('inv_ivy', true);
SET LOCAL ROLE web;
SELECT fluent_current_user(), fluent_scope('appointments', 'read') AS ivy_scope, count(*) AS ivy_rows FROM inv_appointments;
COMMIT;
-- Accepted once: not again.
SELECT pg_temp.try_hint($$SELECT fluent_accept_invitation('inv_ivy')$$) AS accept_twice;
-- Ada (manage_users) accepts Neil's for him; a DBA renews Eve's and accepts it.
BEGIN;
SET LOCAL ROLE web;
SELECT act_as('inv_ada');
SELECT fluent_accept_invitation('inv_neil');
SELECT act_as(NULL);
COMMIT;
BEGIN;
SET LOCAL ROLE dba;
SELECT fluent_invite_user('inv_eve', valid_for => interval '1 day') > now() AS eve_renewed;
SELECT fluent_accept_invitation('inv_eve');
COMMIT;
SELECT user_key, status, invited_until FROM fluent.users WHERE user_key IN ('inv_ivy', 'inv_neil', 'inv_eve') ORDER BY 1;
SELECT count(*) AS open_invitations FROM fluent.invitations WHERE user_key LIKE 'inv\_%';

-- Setting a status ends an invitation; setting invited makes one without an
-- expiry; an expiry belongs to invited users only.
SELECT fluent_invite_user('inv_fay') IS NOT NULL AS fay_invited, fluent_set_user_status('inv_fay', 'active');
SELECT status, invited_until FROM fluent.users WHERE user_key = 'inv_fay';
SELECT fluent_set_user_status('inv_fay', 'invited');
SELECT status, invited_until FROM fluent.users WHERE user_key = 'inv_fay';
BEGIN;
SET LOCAL ROLE dba;
SELECT pg_temp.try_hint($$UPDATE fluent.users SET invited_until = now() + interval '1 day' WHERE user_key = 'inv_bill'$$) AS expiry_on_active;
COMMIT;

-- Every step is in the audit trail, attributed; and each was logged for the
-- caches (fluent.changes), which is how this backend saw Ivy accepted.
SELECT a.db_role, a.acting_user, a.operation, a.before ->> 'status' AS status_before, a.after ->> 'status' AS status_after,
       (a.after ->> 'invited_until') IS NOT NULL AS expiry_after
  FROM fluent.audit_log a
 WHERE a.table_name = 'users' AND coalesce(a.after, a.before) ->> 'user_key' IN ('inv_ivy', 'inv_neil')
 ORDER BY a.audit_id;
SELECT count(*) > 0 AS logged_for_caches FROM fluent.changes c
 WHERE c.kind = 'user' AND c.id = (SELECT user_id FROM fluent.users WHERE user_key = 'inv_ivy');

-- 4. The audit trail by permission -------------------------------------------
-- The fluent template's cells for "View audit/access logs".
SELECT role, scope FROM fluent.permission_matrix
 WHERE workspace = 'inv' AND module = 'audit_log' AND action = 'read' ORDER BY role;
-- Billing reads its workspace's entries through the view, without any
-- privilege on the log itself: catalog changes of inv, and changes to the
-- accounts of inv's users (Ivy's invitation and acceptance); nothing of
-- inv_other (Zed's account, its roles) ...
BEGIN;
SET LOCAL ROLE web;
SELECT act_as('inv_bill');
SELECT pg_temp.try_hint($$SELECT count(*) FROM fluent.audit_log$$) AS web_reads_log;
CREATE TEMP TABLE bill_saw AS SELECT * FROM fluent.workspace_audit_log;
SELECT act_as(NULL);
COMMIT;
SELECT count(*) > 50 AS bill_saw_many,
       count(*) FILTER (WHERE table_name = 'users' AND coalesce(after, before) ->> 'user_key' = 'inv_ivy') AS ivy_account_entries,
       count(*) FILTER (WHERE table_name = 'users' AND coalesce(after, before) ->> 'user_key' = 'inv_zed') AS zed_account_entries
  FROM bill_saw;
-- ... exactly the entries of inv, and of the accounts of its users.
WITH inv AS (SELECT workspace_id FROM fluent.workspaces WHERE name = 'inv'),
expected AS (
    SELECT a.audit_id FROM fluent.audit_log a, inv
     WHERE a.workspace_id = inv.workspace_id
        OR (a.workspace_id IS NULL AND a.table_name = 'users'
            AND (coalesce(a.after, a.before) ->> 'user_id')::bigint IN (SELECT user_id FROM fluent.grants g, inv WHERE g.workspace_id = inv.workspace_id))
)
SELECT (SELECT count(*) FROM (SELECT audit_id FROM bill_saw EXCEPT SELECT audit_id FROM expected) x) AS seen_not_expected,
       (SELECT count(*) FROM (SELECT audit_id FROM expected EXCEPT SELECT audit_id FROM bill_saw) x) AS expected_not_seen;
-- Viewer is refused: the view shows her nothing, as it shows the
-- application role acting for nobody.
BEGIN;
SET LOCAL ROLE web;
SELECT act_as('inv_vera');
SELECT fluent_can('audit_log', 'read') AS vera_can, count(*) AS vera_sees FROM fluent.workspace_audit_log;
SELECT act_as(NULL);
SELECT count(*) AS nobody_sees FROM fluent.workspace_audit_log;
COMMIT;
-- Below scope all (here an override gives Vera own): the changes she made
-- and those about her, and nothing else. A condition of her own, however
-- cheap, runs after the view's filter (security barrier).
SELECT fluent_set_override('inv_vera', 'audit_log', 'read', 'own');
BEGIN;
SET LOCAL ROLE web;
CREATE TEMP TABLE peeked (audit_id bigint);
CREATE FUNCTION pg_temp.peek(id bigint) RETURNS boolean LANGUAGE plpgsql COST 0.0001 AS $$
BEGIN
    INSERT INTO peeked VALUES (id);
    RETURN true;
END $$;
SELECT act_as('inv_vera');
CREATE TEMP TABLE vera_saw AS SELECT * FROM fluent.workspace_audit_log WHERE pg_temp.peek(audit_id);
SELECT act_as(NULL);
COMMIT;
SELECT count(*) > 0 AS vera_sees_some,
       count(*) FILTER (WHERE acting_user IS DISTINCT FROM 'inv_vera'
                          AND (coalesce(after, before) ->> 'user_id')::bigint
                              IS DISTINCT FROM (SELECT user_id FROM fluent.users WHERE user_key = 'inv_vera')) AS not_about_vera,
       (SELECT count(*) FROM peeked) = count(*) AS peeked_only_hers
  FROM vera_saw;
SELECT fluent_clear_override('inv_vera', 'audit_log', 'read');
-- The permission is checked once per query, not per entry: a one-time
-- filter, and one call each of fluent_can and fluent_scope however many
-- entries are read.
BEGIN;
SET LOCAL track_functions = 'all';
SET LOCAL ROLE web;
SELECT act_as('inv_bill');
SELECT count(*) > 50 AS bill_reads_many FROM fluent.workspace_audit_log;
SELECT funcname, calls FROM pg_stat_xact_user_functions WHERE funcname IN ('fluent_can', 'fluent_scope') ORDER BY 1;
CREATE TEMP TABLE plan_lines (line text);
DO $$
DECLARE
    line text;
BEGIN
    FOR line IN EXPLAIN (COSTS OFF) SELECT * FROM fluent.workspace_audit_log LOOP
        INSERT INTO plan_lines VALUES (line);
    END LOOP;
END $$;
SELECT btrim(line) AS gate FROM plan_lines WHERE line LIKE '%fluent_can%' OR line LIKE '%fluent_scope%';
SELECT act_as(NULL);
COMMIT;
-- A workspace without the audit_log module says so.
BEGIN;
SELECT fluent_set_workspace('inv_other', true);
SET LOCAL ROLE web;
SELECT act_as('inv_zed');
SELECT pg_temp.try_hint($$SELECT count(*) FROM fluent.workspace_audit_log$$) AS no_audit_module;
SELECT act_as(NULL);
ROLLBACK;
SELECT fluent_set_workspace('default');
