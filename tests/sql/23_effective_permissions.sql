-- fluent.effective_permissions (issue 20): the holders joined to the
-- decisions of their profiles (src/effective.rs), and a filter on one user
-- or one module passed to the two functions behind it, which then compute
-- that user's or module's rows only. Here: a filtered query gives exactly
-- the full view's rows with the filter, for every user and module of two
-- workspaces made to reach every source (roles, override, module_disabled,
-- requirement, user_status, sign_in, no_role); its plan calls the functions
-- for that user or module; and what is not the view's own join is left as
-- written.
SELECT fluent_create_workspace('eff_a'), fluent_create_workspace('eff_b');
SELECT fluent_set_workspace('eff_a');
SELECT fluent_create_module('eff_docs');
SELECT fluent_create_module('eff_drafts', parent => 'eff_docs');
SELECT fluent_create_module('eff_pay', '{read,approve}');
SELECT fluent_create_module('eff_off');
SELECT fluent_set_module_enabled('eff_off', false);
-- Approving a payment requires reading the documents.
SELECT fluent_set_requirement('eff_pay', 'eff_docs', 'read', 'approve');
SELECT fluent_create_role('eff_reader'), fluent_create_role('eff_writer'), fluent_create_role('eff_payer');
SELECT fluent_set_permission('eff_reader', 'eff_docs', 'read', 'all'),
       fluent_set_permission('eff_reader', 'eff_off', 'read', 'all'),
       fluent_set_permission('eff_writer', 'eff_docs', 'read', 'own'),
       fluent_set_permission('eff_writer', 'eff_docs', 'write', 'team'),
       fluent_set_permission('eff_writer', 'eff_drafts', 'write', 'all'),
       fluent_set_permission('eff_payer', 'eff_pay', 'read', 'direct'),
       fluent_set_permission('eff_payer', 'eff_pay', 'approve', 'all');
SELECT fluent_create_user(u) FROM unnest('{eff_ann,eff_bob,eff_cy,eff_dee,eff_eve,eff_fay}'::text[]) u;
SELECT fluent_invite_user('eff_gus') IS NOT NULL AS invited;
SELECT fluent_grant_role('eff_ann', 'eff_reader'),
       fluent_grant_role('eff_bob', 'eff_reader'), fluent_grant_role('eff_bob', 'eff_writer'),
       fluent_grant_role('eff_cy', 'eff_writer'), fluent_grant_role('eff_dee', 'eff_payer'),
       fluent_grant_role('eff_eve', 'eff_payer'), fluent_grant_role('eff_eve', 'eff_reader'),
       fluent_grant_role('eff_gus', 'eff_reader');
SELECT fluent_set_override('eff_cy', 'eff_docs', 'write', 'none'),
       fluent_set_override('eff_fay', 'eff_drafts', 'read', 'own');
SELECT fluent_set_user_status('eff_dee', 'disabled');
-- eff_b has a sign-in role: eff_ann holds it, eff_bob does not.
SELECT fluent_set_workspace('eff_b');
SELECT fluent_create_module('eff_tasks');
SELECT fluent_create_role('eff_member'), fluent_create_role('eff_doer');
SELECT fluent_alter_role('eff_member', grants_sign_in => true);
SELECT fluent_set_permission('eff_doer', 'eff_tasks', 'write', 'own');
SELECT fluent_grant_role('eff_ann', 'eff_member'), fluent_grant_role('eff_ann', 'eff_doer'),
       fluent_grant_role('eff_bob', 'eff_doer');
SELECT fluent_set_workspace('default');

-- The full view (a LIKE filter is passed to nobody).
CREATE TEMP TABLE eff_all AS SELECT * FROM fluent.effective_permissions WHERE workspace LIKE 'eff\_%';
SELECT workspace, source, count(*) FROM eff_all GROUP BY 1, 2 ORDER BY 1, 2;
GRANT SELECT ON eff_all TO app;

-- The rows of the view filtered by `filter` that the full view filtered
-- alike lacks, and the other way round.
CREATE FUNCTION pg_temp.eff_differences(filter text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM ((SELECT * FROM fluent.effective_permissions WHERE %1$s
                                            EXCEPT ALL SELECT * FROM eff_all WHERE %1$s)
                                           UNION ALL (SELECT * FROM eff_all WHERE %1$s
                                            EXCEPT ALL SELECT * FROM fluent.effective_permissions WHERE %1$s)) d',
                   filter) INTO n;
    RETURN n;
END $$;
-- The calls of the two functions in the plan of `query`, with the rows each
-- returned (per loop, before the view's filter); `all` for a call that is
-- not narrowed and returned what it returns unfiltered.
CREATE FUNCTION pg_temp.eff_calls(query text) RETURNS TABLE (call text, returned text) LANGUAGE plpgsql AS $$
DECLARE
    plan jsonb;
    holders bigint := (SELECT count(*) FROM fluent._effective_holders(NULL));
    profiles bigint := (SELECT count(*) FROM fluent._effective_profiles(NULL, NULL));
BEGIN
    EXECUTE 'EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF, FORMAT JSON) ' || query INTO plan;
    RETURN QUERY
    SELECT c.call, CASE WHEN (c.call, c.n) IN (('fluent._effective_holders(NULL::text)', holders),
                                               ('fluent._effective_profiles(NULL::text, NULL::text)', profiles))
                        THEN 'all' ELSE c.n::text END
      FROM (SELECT n ->> 'Function Call' AS call,
                   round((n ->> 'Actual Rows')::numeric + coalesce((n ->> 'Rows Removed by Filter')::numeric, 0)) AS n
              FROM jsonb_path_query(plan, 'strict $.**') n
             WHERE jsonb_typeof(n) = 'object' AND n ->> 'Node Type' = 'Function Scan') c
     ORDER BY 1;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.eff_differences(text), pg_temp.eff_calls(text) TO app;

-- Every user, every module, and one user on one module: the same rows.
SELECT u AS user_key, (SELECT count(*) FROM eff_all WHERE user_key = u) AS rows,
       pg_temp.eff_differences(format('user_key = %L', u)) AS differences
  FROM unnest('{eff_ann,eff_bob,eff_cy,eff_dee,eff_eve,eff_fay,eff_gus,eff_nobody}'::text[]) u;
SELECT m AS module, (SELECT count(*) FROM eff_all WHERE module = m) AS rows,
       pg_temp.eff_differences(format('module = %L', m)) AS differences
  FROM unnest('{eff_docs,eff_drafts,eff_pay,eff_off,eff_tasks,eff_none}'::text[]) m;
SELECT pg_temp.eff_differences($$user_key = 'eff_eve' AND module = 'eff_pay'$$) AS eve_on_pay,
       pg_temp.eff_differences($$user_key = 'eff_bob' AND workspace = 'eff_b'$$) AS bob_in_b,
       pg_temp.eff_differences($$user_key = 'eff_ann' AND scope >= 'own'$$) AS ann_granted;
SELECT * FROM fluent.effective_permissions WHERE user_key = 'eff_eve' AND module = 'eff_pay' ORDER BY action;

-- The plans: the functions are called for that user or module, and return
-- that user's rows (one per workspace where they hold something) and their
-- profiles' decisions only.
SELECT * FROM pg_temp.eff_calls($$SELECT * FROM fluent.effective_permissions WHERE user_key = 'eff_ann'$$);
SELECT * FROM pg_temp.eff_calls($$SELECT * FROM fluent.effective_permissions WHERE module = 'eff_pay'$$);
SELECT * FROM pg_temp.eff_calls($$SELECT * FROM fluent.effective_permissions
                                   WHERE module = 'eff_drafts' AND 'eff_cy' = user_key$$);
-- A parameter, in a generic plan, is passed as the parameter.
PREPARE eff_one(text) AS SELECT * FROM fluent.effective_permissions WHERE user_key = $1;
SET plan_cache_mode = force_generic_plan;
SELECT * FROM pg_temp.eff_calls($$EXECUTE eff_one('eff_bob')$$);
CREATE TEMP TABLE eff_bob AS EXECUTE eff_one('eff_bob');
SELECT count(*) AS rows, (SELECT count(*) FROM ((TABLE eff_bob EXCEPT ALL SELECT * FROM eff_all WHERE user_key = 'eff_bob')
                                             UNION ALL (SELECT * FROM eff_all WHERE user_key = 'eff_bob' EXCEPT ALL TABLE eff_bob)) d)
       AS differences
  FROM eff_bob;
RESET plan_cache_mode;
DEALLOCATE eff_one;

-- Left as written: an outer reference (per outer row, no constant), a
-- filter that is not an equality, two views in one query (whose holders
-- could not be told apart), and the two functions not joined on the profile
-- (a filter on the holders says nothing about the profiles then).
SELECT * FROM pg_temp.eff_calls($$SELECT u.k, (SELECT count(*) FROM fluent.effective_permissions e WHERE e.user_key = u.k)
                                    FROM (VALUES ('eff_ann'), ('eff_bob')) u (k)$$);
SELECT * FROM pg_temp.eff_calls($$SELECT * FROM fluent.effective_permissions WHERE user_key IN ('eff_ann', 'eff_bob')$$);
SELECT count(*) AS pairs FROM fluent.effective_permissions a JOIN fluent.effective_permissions b USING (workspace, user_key, module, action)
 WHERE a.user_key = 'eff_bob';
SELECT count(*) FILTER (WHERE call LIKE '%NULL::text)') AS calls_for_everyone, count(*) AS calls
  FROM pg_temp.eff_calls($$SELECT * FROM fluent.effective_permissions a JOIN fluent.effective_permissions b
                             USING (workspace, user_key, module, action) WHERE a.user_key = 'eff_bob'$$);
SELECT (SELECT count(*) FROM fluent._effective_holders(NULL) h, fluent._effective_profiles(NULL, NULL) p
         WHERE h.user_key = 'eff_ann')
       = (SELECT count(*) FROM fluent._effective_holders(NULL) WHERE user_key = 'eff_ann')
         * (SELECT count(*) FROM fluent._effective_profiles(NULL, NULL)) AS cross_join_kept;
SELECT * FROM pg_temp.eff_calls($$SELECT * FROM fluent._effective_holders(NULL) h, fluent._effective_profiles(NULL, NULL) p
                                   WHERE h.user_key = 'eff_ann'$$);

-- In a transaction that wrote the catalog (each catalog read then takes a
-- new snapshot), the two functions still read one report: the new grant
-- shows, in the filtered and the whole view alike.
BEGIN;
SELECT fluent_set_workspace('eff_a');
SELECT fluent_grant_role('eff_fay', 'eff_reader');
SELECT count(*) AS rows, count(*) FILTER (WHERE roles @> '{eff_reader}') AS from_reader
  FROM fluent.effective_permissions WHERE user_key = 'eff_fay';
SELECT count(*) AS rows, count(*) FILTER (WHERE roles @> '{eff_reader}') AS from_reader
  FROM fluent.effective_permissions WHERE workspace LIKE 'eff\_a' AND user_key LIKE 'eff\_fay';
ROLLBACK;

-- Who may read it is unchanged: a reporting role, with or without a filter;
-- not a plain role.
SET ROLE app;
SELECT pg_temp.eff_differences($$user_key = 'eff_bob'$$) AS reader_differences;
RESET ROLE;
SET ROLE web;
SELECT test_helpers.try($$SELECT count(*) FROM fluent.effective_permissions WHERE user_key = 'eff_ann'$$) AS web_filtered,
       test_helpers.try($$SELECT count(*) FROM fluent._effective_holders('eff_ann')$$) AS web_holders;
RESET ROLE;
DROP TABLE eff_all, eff_bob;
