-- The delegable administration functions are made while the install script
-- runs, one declaration each (fluent._delegable, sql/admin.sql), where
-- pgspot cannot read them (.ci/pgspot): what was made is checked here. For
-- each implementation fluent._<name>(delegate, ...): the public function
-- fluent_<name> runs as its caller and is documented, the SECURITY DEFINER
-- fluent._do_<name> pins its search_path and the caller role, each takes
-- the implementation's parameters, and only the catalog owner runs the
-- implementation.
SET search_path = public;
SELECT substr(i.proname, 2) AS name,
       substring(d.prosrc FROM 'fluent\._authorize\w*\(ticket, ''(\w+)''\)') AS admin_right,
       pg_get_function_identity_arguments(w.oid) = substr(pg_get_function_identity_arguments(i.oid), length('delegate text, ') + 1)
           AND pg_get_function_identity_arguments(d.oid) = pg_get_function_identity_arguments(w.oid) || ', ticket bigint'
           AS same_parameters,
       NOT w.prosecdef AND w.proconfig IS NULL AND obj_description(w.oid, 'pg_proc') IS NOT NULL
           AND has_function_privilege('public', w.oid, 'EXECUTE') AS public_function,
       d.prosecdef AND d.proconfig = '{"search_path=pg_catalog, pg_temp",fluent.caller_role=}'
           AND d.proowner = 'fluent_owner'::regrole AND has_function_privilege('public', d.oid, 'EXECUTE') AS definer,
       NOT i.prosecdef AND i.proconfig = '{"search_path=pg_catalog, pg_temp"}'
           AND NOT has_function_privilege('public', i.oid, 'EXECUTE')
           AND NOT has_function_privilege('fluent_admin', i.oid, 'EXECUTE') AS owner_only
  FROM pg_proc d
  JOIN pg_proc i ON i.pronamespace = 'fluent'::regnamespace AND i.proname = substr(d.proname, length('_do') + 1)
  LEFT JOIN pg_proc w ON w.pronamespace = 'public'::regnamespace AND w.proname = 'fluent' || i.proname
 WHERE d.pronamespace = 'fluent'::regnamespace AND d.proname LIKE '\_do\_%'
 ORDER BY 1;
-- Every SECURITY DEFINER function of the extension pins its search_path.
SELECT p.oid::regprocedure AS definer_without_search_path FROM pg_proc p JOIN pg_depend x ON x.objid = p.oid
 WHERE x.classid = 'pg_proc'::regclass AND x.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'fluent')
   AND x.deptype = 'e' AND p.prosecdef AND NOT p.proconfig @> '{"search_path=pg_catalog, pg_temp"}';
-- What made them does not outlive the install.
SELECT to_regproc('fluent._delegable') AS declaration_function;
