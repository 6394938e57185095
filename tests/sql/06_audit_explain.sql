-- The audit trail (same transaction, rollback, tampering), the reporting
-- views against the enforced scopes, and fluent_explain.
BEGIN;
SET search_path = public, test_helpers;
CREATE ROLE report_tool LOGIN;
GRANT fluent_reader TO report_tool;
SET ROLE dba;
SELECT fluent_apply_template('fluent');
DO $$
BEGIN
    PERFORM fluent_create_user('olga');  PERFORM fluent_grant_role('olga', 'owner');
    PERFORM fluent_create_user('bob');   PERFORM fluent_grant_role('bob', 'billing');
    PERFORM fluent_create_user('sam');   PERFORM fluent_grant_role('sam', 'scheduler');
    PERFORM fluent_grant_role('sam', 'viewer');
    PERFORM fluent_create_user('casper', status => 'ghost');
    PERFORM fluent_grant_role('casper', 'viewer');
    PERFORM fluent_create_user('newbie');
END $$;

-- Audit trail ----------------------------------------------------------------
-- Every change is in the log, with the database role and the acting user.
SELECT table_name, operation, count(*) FROM fluent.audit_log GROUP BY 1, 2 ORDER BY 1, 2;
SELECT fluent_set_user('olga');   -- an administrator acting for end user olga
SELECT fluent_grant_role('bob', 'viewer');
SELECT fluent_set_override('bob', 'invoices', 'write', 'own');
SELECT fluent_set_module_enabled('integrations', false);
SELECT db_role, session_role, acting_user, table_name, operation,
       before IS NOT NULL AS has_before, after IS NOT NULL AS has_after,
       coalesce(after, before) ->> 'scope' AS scope, after ->> 'enabled' AS enabled,
       transaction_id = pg_current_xact_id() AS this_transaction
  FROM fluent.audit_log WHERE acting_user = 'olga' ORDER BY audit_id;
-- Updates keep the row before and after.
SELECT fluent_set_override('bob', 'invoices', 'write', 'all');
SELECT before ->> 'scope' AS before, after ->> 'scope' AS after FROM fluent.audit_log
 WHERE table_name = 'overrides' ORDER BY audit_id DESC LIMIT 1;
SELECT fluent_reset_user();
-- A change rolled back leaves no entry.
SELECT count(*) AS entries_before FROM fluent.audit_log \gset
SAVEPOINT undo;
SELECT fluent_revoke_role('bob', 'viewer');
SELECT fluent_drop_user('newbie');
SELECT count(*) - :entries_before AS entries_inside FROM fluent.audit_log;
ROLLBACK TO SAVEPOINT undo;
SELECT count(*) - :entries_before AS entries_after_rollback FROM fluent.audit_log;

-- Nobody but a superuser alters or deletes entries.
SELECT try($$UPDATE fluent.audit_log SET acting_user = 'someone else'$$) AS dba_update;
SELECT try($$DELETE FROM fluent.audit_log$$) AS dba_delete;
SELECT try($$TRUNCATE fluent.audit_log$$) AS dba_truncate;
SELECT try($$INSERT INTO fluent.audit_log (db_role, table_name, operation) VALUES ('x', 'grants', 'INSERT')$$) AS dba_forge;
SELECT try($$ALTER TABLE fluent.grants DISABLE TRIGGER audit_change$$) AS dba_disable_audit;
SELECT try($$ALTER TABLE fluent.audit_log DISABLE TRIGGER append_only$$) AS dba_disable_guard;
SELECT try($$SELECT fluent._audit_insert('x', NULL, 'grants', 'INSERT', NULL, NULL)$$) AS dba_call_writer;
RESET ROLE;
CREATE TABLE public.dba_table (id int);
ALTER TABLE public.dba_table OWNER TO dba;
SET ROLE dba;
SELECT try($$CREATE TRIGGER forge AFTER INSERT ON public.dba_table FOR EACH ROW EXECUTE FUNCTION fluent.audit_change()$$)
    AS dba_borrow_trigger;
RESET ROLE;
SET ROLE web;
SELECT try($$SELECT count(*) FROM fluent.audit_log$$) AS app_read;
SELECT try($$DELETE FROM fluent.audit_log$$) AS app_delete;
SELECT try($$INSERT INTO fluent.grants (workspace_id, user_id, role_id) VALUES (1, 1, 1)$$) AS app_write_catalog;
RESET ROLE;
-- A mistaken grant still does not let anyone but a superuser change entries.
GRANT UPDATE, DELETE ON fluent.audit_log TO dba;
SET ROLE dba;
SELECT try($$UPDATE fluent.audit_log SET acting_user = 'someone else'$$) AS dba_update_with_grant;
SELECT try($$DELETE FROM fluent.audit_log$$) AS dba_delete_with_grant;
RESET ROLE;
REVOKE UPDATE, DELETE ON fluent.audit_log FROM dba;
-- The trigger audits the fluent catalog only, even for a superuser.
CREATE TRIGGER forge AFTER INSERT ON public.dba_table FOR EACH ROW EXECUTE FUNCTION fluent.audit_change();
SELECT try($$INSERT INTO public.dba_table VALUES (1)$$) AS borrowed_trigger;
-- A superuser may prune the log.
SAVEPOINT prune;
DELETE FROM fluent.audit_log WHERE table_name = 'actions';
SELECT count(*) AS actions_entries_left FROM fluent.audit_log WHERE table_name = 'actions';
ROLLBACK TO SAVEPOINT prune;
SELECT count(*) > 0 AS actions_entries_back FROM fluent.audit_log WHERE table_name = 'actions';

-- Reporting views --------------------------------------------------------------
-- A reporting tool reads the views and the log, and changes nothing.
SET ROLE report_tool;
SELECT count(*) > 0 AS reads_matrix FROM fluent.permission_matrix;
SELECT count(*) > 0 AS reads_audit FROM fluent.audit_log;
SELECT try($$SELECT count(*) FROM fluent.grants$$) AS reads_catalog;
SELECT try($$SELECT fluent_grant_role('bob', 'owner')$$) AS grants_roles;
RESET ROLE;
SET ROLE dba;
-- effective_permissions agrees with the enforced scope on every row.
SELECT count(*) AS rows, count(*) FILTER (WHERE scope::text = fluent_scope(user_key, module, action)) AS agreeing
  FROM fluent.effective_permissions WHERE workspace = 'default';
SELECT user_key, module, action, scope, source, roles, override, module_enabled, user_status
  FROM fluent.effective_permissions
 WHERE (user_key, module, action) IN (('bob', 'invoices', 'write'), ('bob', 'invoices', 'read'), ('sam', 'exports', 'run'),
                                      ('sam', 'rates', 'write'), ('casper', 'appointments', 'read'),
                                      ('olga', 'integrations', 'write'))
 ORDER BY user_key, module, action;
SELECT role, user_key, status FROM fluent.role_members WHERE user_key IN ('bob', 'sam') ORDER BY role, user_key;
SELECT user_key FROM fluent.users_without_roles;

-- Explain ----------------------------------------------------------------------
SELECT * FROM fluent_explain('bob', 'invoices', 'write');          -- an override
SELECT * FROM fluent_explain('sam', 'exports', 'run');             -- two roles, the widest wins
SELECT * FROM fluent_explain('bob', 'appointments', 'create');     -- "why can't Bob create appointments?"
SELECT * FROM fluent_explain('olga', 'integrations', 'write');     -- a disabled module
SELECT * FROM fluent_explain('casper', 'appointments', 'read');    -- a ghost
SELECT * FROM fluent_explain('nobody', 'invoices', 'read');        -- an unknown user
SELECT fluent_create_module('invoice_pdfs', '{read}', parent => 'invoices');
SELECT * FROM fluent_explain('bob', 'invoice_pdfs', 'read');       -- inherited from the parent module
SELECT try($$SELECT * FROM fluent_explain('bob', 'payroll', 'read')$$);
SELECT try($$SELECT * FROM fluent_explain(NULL, 'invoices', 'read')$$);
-- Every (user, action) pair: fluent_explain raises if its conclusion ever
-- differs from the enforced scope, so this runs them all.
SELECT count(*) AS explained, count(*) FILTER (WHERE e.scope = fluent_scope(u.user_key, m.name, a.name)) AS agreeing
  FROM fluent.users u, fluent.actions a JOIN fluent.modules m USING (module_id),
       LATERAL (SELECT scope FROM fluent_explain(u.user_key, m.name, a.name) WHERE fact = 'result') e
 WHERE m.workspace_id = 1;
-- Users explain themselves; only administrators and readers explain others.
RESET ROLE;
SET ROLE web;
SELECT act_as('bob');
SELECT fact, subject, scope FROM fluent_explain('bob', 'invoices', 'write') ORDER BY step;
SELECT try($$SELECT * FROM fluent_explain('olga', 'invoices', 'write')$$) AS app_explains_other;
SELECT act_as(NULL);
RESET ROLE;
SET ROLE report_tool;
SELECT count(*) > 0 AS reader_explains_other FROM fluent_explain('olga', 'invoices', 'write');
RESET ROLE;
-- A workspace with sign-in roles: explain shows the missing one.
SELECT fluent_create_workspace('fluid_co');
SELECT fluent_set_workspace('fluid_co');
SET ROLE dba;
SELECT fluent_apply_template('fluid');
SELECT fluent_grant_role('bob', 'project_viewer');
SELECT * FROM fluent_explain('bob', 'projects', 'read');
SELECT user_key, module, action, scope, source FROM fluent.effective_permissions
 WHERE workspace = 'fluid_co' AND user_key = 'bob' AND module = 'projects' AND action = 'read';
RESET ROLE;
ROLLBACK;
