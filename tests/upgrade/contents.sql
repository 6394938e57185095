-- The contents of every table of fluent's catalog, audit log included, row
-- by row in a stable order (the change log, which the cache reads and
-- prunes, aside): what an update must keep. Only the tables and columns the
-- released version had (public.columns_before, recorded by .ci/upgrade
-- before the update): what an update adds starts empty or NULL. The
-- shipped templates (fluent.template_* but the applications) are the
-- version's own data, not the user's: an update may change them.
SELECT format(E'%s\n%s', c.oid::regclass,
              (xpath('/table', query_to_xml(format('SELECT %1$s FROM %2$s t ORDER BY ROW(%1$s)::text COLLATE "C"',
                                                   b.columns, c.oid::regclass),
                                            true, false, '')))[1]::text)
  FROM pg_class c
  JOIN (SELECT relname, string_agg(quote_ident(attname), ', ' ORDER BY attnum) AS columns
          FROM public.columns_before GROUP BY relname) b ON b.relname = c.relname
 WHERE c.relnamespace = 'fluent'::regnamespace AND c.relkind = 'r'
   AND c.relname NOT IN ('changes', 'change_horizon')
   AND (c.relname NOT LIKE 'template\_%' OR c.relname = 'template_applications')
 ORDER BY c.relname COLLATE "C";
