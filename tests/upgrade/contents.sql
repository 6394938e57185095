-- The contents of every table of fluent's catalog, audit log included, row
-- by row in a stable order (the change log, which the cache reads and
-- prunes, aside): what an update must keep.
SELECT format(E'%s\n%s', c.oid::regclass,
              (xpath('/table', query_to_xml(format('SELECT * FROM %s t ORDER BY t::text COLLATE "C"', c.oid::regclass),
                                            true, false, '')))[1]::text)
  FROM pg_class c
 WHERE c.relnamespace = 'fluent'::regnamespace AND c.relkind = 'r'
   AND c.relname NOT IN ('changes', 'change_horizon')
 ORDER BY c.relname COLLATE "C";
