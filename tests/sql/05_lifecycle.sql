-- Role lifecycle and exceptions: cloning, reset, the template diff, per-user
-- overrides both ways, feature gates and navigation, ghost users, sign-in
-- roles, privileged users and the access review.
BEGIN;
SET search_path = public, test_helpers;
SET ROLE dba;
SELECT fluent_apply_template('fluent');
DO $$
BEGIN
    PERFORM fluent_create_user('sam');   PERFORM fluent_grant_role('sam', 'scheduler');
    PERFORM fluent_create_user('bob');   PERFORM fluent_grant_role('bob', 'billing');
    PERFORM fluent_create_user('vic');   PERFORM fluent_grant_role('vic', 'viewer');
    PERFORM fluent_create_user('olga');  PERFORM fluent_grant_role('olga', 'owner');
    PERFORM fluent_create_user('omar');  PERFORM fluent_grant_role('omar', 'owner');
    PERFORM fluent_create_user('oona');  PERFORM fluent_grant_role('oona', 'owner');
    PERFORM fluent_create_user('ada');   PERFORM fluent_grant_role('ada', 'admin');
    PERFORM fluent_create_user('newbie');                     -- no role yet
    PERFORM fluent_create_user('casper', status => 'ghost');  -- represented, never signs in
END $$;

-- Cloning: same permissions and flags; the clone keeps the template as its
-- baseline, so it can be reset and diffed.
SELECT fluent_clone_role('scheduler', 'senior_scheduler');
SELECT fluent_set_permission('senior_scheduler', 'interpreters', 'write_profile', 'all');
SELECT fluent_set_permission('senior_scheduler', 'rates', 'read', 'all');
SELECT fluent_clear_permission('senior_scheduler', 'exports', 'run');
SELECT (SELECT count(*) FROM fluent.permission_matrix WHERE role = 'scheduler') AS scheduler_cells,
       (SELECT count(*) FROM fluent.permission_matrix WHERE role = 'senior_scheduler') AS clone_cells;
SELECT role, module, action, template_scope, current_scope FROM fluent.role_template_diff ORDER BY role, module, action;
SELECT try($$SELECT fluent_clone_role('scheduler', 'senior_scheduler')$$);
SELECT try($$SELECT fluent_clone_role('nobody', 'x')$$);
SELECT try($$SELECT fluent_clone_role('scheduler', ' padded ')$$);
-- Reset restores the defaults and empties the diff; a custom role has none.
SELECT fluent_reset_role('senior_scheduler');
SELECT count(*) AS differences_left FROM fluent.role_template_diff;
SELECT fluent_create_role('night_desk');
SELECT try($$SELECT fluent_reset_role('night_desk')$$);

-- Overrides: the seeds' "one extra thing" without making someone Admin.
SET ROLE app;
SELECT fluent_scope('sam', 'rates', 'read') AS sam_rates_before, fluent_scope('bob', 'invoices', 'write') AS bob_invoices_before;
RESET ROLE;
SET ROLE dba;
SELECT fluent_set_override('sam', 'rates', 'read', 'all');       -- upward
SELECT fluent_set_override('bob', 'invoices', 'write', 'none');  -- downward: a deny
SELECT fluent_set_override('vic', 'exports', 'run', 'all');      -- limited -> all
SET ROLE app;
SELECT fluent_scope('sam', 'rates', 'read') AS sam_rates, fluent_scope('bob', 'invoices', 'write') AS bob_invoices,
       fluent_scope('bob', 'invoices', 'read') AS bob_invoices_read, fluent_scope('vic', 'exports', 'run') AS vic_exports;
-- an override applies to its user only
SELECT fluent_scope('bob', 'rates', 'read') AS bob_rates, fluent_scope('olga', 'invoices', 'write') AS olga_invoices;
RESET ROLE;
SET ROLE dba;
SELECT try($$SELECT fluent_set_override('sam', 'rates', 'fly', 'all')$$);
SELECT try($$SELECT fluent_set_override('sam', 'rates', 'read', 'most')$$);
SELECT try($$SELECT fluent_set_override('nobody', 'rates', 'read', 'all')$$);
SELECT fluent_set_override('sam', 'rates', 'read', 'own');        -- replaced, not duplicated
SELECT count(*) AS sam_overrides FROM fluent.overrides o JOIN fluent.users u USING (user_id) WHERE u.user_key = 'sam';
SELECT fluent_clear_override('bob', 'invoices', 'write');
SELECT fluent_clear_override('bob', 'invoices', 'write');          -- nothing to clear: a warning
SET ROLE app;
SELECT fluent_scope('sam', 'rates', 'read') AS sam_rates, fluent_scope('bob', 'invoices', 'write') AS bob_invoices;
RESET ROLE;

-- An override on a module reaches its submodules unless they have their own.
SET ROLE dba;
SELECT fluent_create_module('invoice_pdfs', '{read,write}', parent => 'invoices');
SELECT fluent_set_override('bob', 'invoices', 'read', 'none');
SET ROLE app;
SELECT fluent_scope('bob', 'invoices', 'read') AS invoices, fluent_scope('bob', 'invoice_pdfs', 'read') AS pdfs_inherited;
RESET ROLE;
SET ROLE dba;
SELECT fluent_set_override('bob', 'invoice_pdfs', 'read', 'own');
SET ROLE app;
SELECT fluent_scope('bob', 'invoice_pdfs', 'read') AS pdfs_own_override;
RESET ROLE;

-- Overrides govern rows too, through the same policies.
CREATE TABLE rate_cards (id int, owner text);
INSERT INTO rate_cards VALUES (1, 'sam'), (2, 'olga'), (3, 'bob');
GRANT SELECT ON rate_cards TO app;
SELECT fluent_protect('rate_cards', 'rates', owner_column => 'owner');
SET ROLE app;
SELECT act_as('sam');
SELECT string_agg(id::text, ',' ORDER BY id) AS sam_sees_own FROM rate_cards;
SELECT act_as(NULL);
RESET ROLE;
SET ROLE dba;
SELECT fluent_set_override('sam', 'rates', 'read', 'all');
SET ROLE app;
SELECT act_as('sam');
SELECT string_agg(id::text, ',' ORDER BY id) AS sam_sees_all FROM rate_cards;
SELECT act_as(NULL);
RESET ROLE;

-- Feature gates: a disabled module denies everyone everything, overrides
-- included; navigation lists only enabled modules with some access.
SET ROLE app;
SELECT array_agg(m ORDER BY m) AS bob_modules FROM fluent_visible_modules('bob') m;
RESET ROLE;
SET ROLE dba;
SELECT fluent_set_module_enabled('invoices', false);
SELECT fluent_set_module_enabled('rates', false);
SET ROLE app;
SELECT fluent_scope('olga', 'invoices', 'write') AS owner_invoices, fluent_scope('bob', 'invoice_pdfs', 'read') AS submodule,
       fluent_scope('sam', 'rates', 'read') AS override_on_disabled;
SELECT array_agg(m ORDER BY m) AS bob_modules FROM fluent_visible_modules('bob') m;
SELECT act_as('sam');
SELECT count(*) AS rows_of_a_disabled_module FROM rate_cards;
SELECT array_agg(m ORDER BY m) AS my_modules FROM fluent_visible_modules() m;
SELECT act_as(NULL);
SELECT count(*) AS nobody_sees FROM fluent_visible_modules();
SELECT count(*) AS null_user_sees FROM fluent_visible_modules(NULL);
RESET ROLE;
SET ROLE dba;
SELECT fluent_set_module_enabled('invoices', true);
SELECT try($$SELECT fluent_set_module_enabled('invoices', NULL)$$);
SELECT try($$SELECT fluent_set_module_enabled('payroll', false)$$);
SET ROLE app;
SELECT fluent_scope('olga', 'invoices', 'write') AS owner_invoices_again;
RESET ROLE;

-- Ghost accounts: no roles, or status ghost. Reportable, and granted nothing.
SET ROLE dba;
SELECT user_key, status FROM fluent.users_without_roles ORDER BY user_key;
SELECT fluent_grant_role('casper', 'viewer');
SET ROLE app;
SELECT fluent_scope('newbie', 'appointments', 'read') AS newbie, fluent_scope('casper', 'appointments', 'read') AS casper;
RESET ROLE;
SELECT try($$SELECT fluent_set_user('casper')$$);
RESET ROLE;

-- Privileged users: owner/admin-level roles, and how many hold each.
SET ROLE dba;
SELECT role, user_key, holders, holders > 2 AS more_than_two FROM fluent.privileged_users ORDER BY role, user_key;
SELECT fluent_alter_role('compliance', privileged => true);
SELECT count(*) AS privileged_roles FROM fluent.roles WHERE privileged;
SELECT try($$SELECT fluent_alter_role('ghost_role', privileged => true)$$);

-- Access review: grants not reviewed in 90 days; marking them reviewed.
-- (Grant times are set by the server; a superuser backdates them with the
-- catalog triggers off.)
RESET ROLE;
SET session_replication_role = replica;
UPDATE fluent.grants g SET granted_at = now() - interval '120 days'
  FROM fluent.users u WHERE u.user_id = g.user_id AND u.user_key IN ('olga', 'omar', 'sam');
RESET session_replication_role;
SET ROLE dba;
SELECT user_key, role, review_due FROM fluent.access_review WHERE user_key IN ('olga', 'omar', 'sam', 'bob') ORDER BY user_key;
SELECT user_key, role FROM fluent.grants_due_for_review ORDER BY user_key;
SELECT fluent_mark_reviewed('olga', 'owner');
SELECT fluent_mark_reviewed('sam');
SELECT fluent_mark_reviewed('newbie');
SELECT user_key, role FROM fluent.grants_due_for_review ORDER BY user_key;
SELECT user_key, reviewed_by, last_reviewed = reviewed_at AS last_is_review FROM fluent.access_review
 WHERE user_key IN ('olga', 'sam') ORDER BY user_key;

-- Catalog objects are documented.
SELECT c.relname, obj_description(c.oid, 'pg_class') IS NOT NULL AS has_comment
  FROM pg_class c WHERE c.relnamespace = 'fluent'::regnamespace AND c.relkind IN ('r', 'v')
   AND obj_description(c.oid, 'pg_class') IS NULL;
SELECT p.oid::regprocedure AS undocumented_function FROM pg_proc p
 WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'fluent%' AND obj_description(p.oid, 'pg_proc') IS NULL;
RESET ROLE;
ROLLBACK;
