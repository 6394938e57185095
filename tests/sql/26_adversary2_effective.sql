-- Issue 20, adversarial review of fluent.effective_permissions' planner
-- hook (src/effective.rs): it passes a query's filter on one user or one
-- module to the two functions, as the view calls them with NULL. Called
-- directly with a user or a module of their own, they must compute what
-- they were asked: the hook replaced those arguments with the filter's
-- value, so a filter on another user or module returned rows instead of
-- none (the filter and the argument both apply).
SELECT fluent_create_workspace('adv2_eff_ws');
SELECT fluent_set_workspace('adv2_eff_ws');
SELECT fluent_create_module('adv2_eff_a');
SELECT fluent_create_module('adv2_eff_b');
SELECT fluent_create_role('adv2_eff_role');
SELECT fluent_set_permission('adv2_eff_role', 'adv2_eff_a', 'read', 'all');
SELECT fluent_create_user('adv2_eff_u1');
SELECT fluent_create_user('adv2_eff_u2');
SELECT fluent_grant_role('adv2_eff_u1', 'adv2_eff_role');
SELECT fluent_grant_role('adv2_eff_u2', 'adv2_eff_role');
-- The holders of u1 only, filtered on u2: nothing.
SELECT count(*) FROM fluent._effective_holders('adv2_eff_u1') h
  JOIN fluent._effective_profiles('adv2_eff_u1', NULL) p ON p.profile = h.profile
 WHERE h.user_key = 'adv2_eff_u2';
-- The decisions on module a only, filtered on module b: nothing.
SELECT count(*) FROM fluent._effective_profiles(NULL, 'adv2_eff_a') p WHERE p.module = 'adv2_eff_b';
-- The view still narrows (the same rows as without the hook's help).
SELECT e.user_key, e.module, e.action, e.scope FROM fluent.effective_permissions e
 WHERE e.user_key = 'adv2_eff_u2' AND e.module = 'adv2_eff_a' ORDER BY 3;
SELECT fluent_drop_user('adv2_eff_u1');
SELECT fluent_drop_user('adv2_eff_u2');
SELECT fluent_set_workspace('default');
SELECT fluent_drop_workspace('adv2_eff_ws');
