-- Every member object of the fluent extension with its definition, one line
-- each, in a stable order: what an upgraded installation and a fresh install
-- of the same version must agree on (.ci/upgrade diffs the two).
WITH members AS (
    SELECT d.classid, d.objid
      FROM pg_depend d
     WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
       AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'fluent')
), described AS (
    -- functions: the whole definition, privileges and comment
    SELECT pg_describe_object(m.classid, m.objid, 0) AS object,
           concat_ws(E'\n', pg_get_functiondef(p.oid), 'acl: ' || p.proacl::text,
                     'comment: ' || obj_description(p.oid, 'pg_proc')) AS definition
      FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
    UNION ALL
    -- tables, views, sequences: kind, options, privileges, comment, and for
    -- tables their columns, constraints, indexes, triggers and policies
    SELECT pg_describe_object(m.classid, m.objid, 0),
           concat_ws(E'\n', 'kind: ' || c.relkind::text, 'options: ' || c.reloptions::text, 'acl: ' || c.relacl::text,
                     'rls: ' || c.relrowsecurity || '/' || c.relforcerowsecurity,
                     'comment: ' || obj_description(c.oid, 'pg_class'),
                     CASE WHEN c.relkind = 'v' THEN 'view: ' || pg_get_viewdef(c.oid) END,
                     (SELECT string_agg(format('column %s %s%s%s%s%s', a.attname, format_type(a.atttypid, a.atttypmod),
                                               CASE WHEN a.attnotnull THEN ' not null' END,
                                               ' default ' || pg_get_expr(ad.adbin, ad.adrelid),
                                               CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text END,
                                               ' comment ' || col_description(c.oid, a.attnum)), E'\n' ORDER BY a.attnum)
                        FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                       WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
                     (SELECT string_agg(format('constraint %s %s', co.conname, pg_get_constraintdef(co.oid)), E'\n' ORDER BY co.conname)
                        FROM pg_constraint co WHERE co.conrelid = c.oid),
                     (SELECT string_agg('index ' || pg_get_indexdef(i.indexrelid), E'\n' ORDER BY i.indexrelid::regclass::text COLLATE "C")
                        FROM pg_index i WHERE i.indrelid = c.oid),
                     (SELECT string_agg('trigger ' || pg_get_triggerdef(t.oid), E'\n' ORDER BY t.tgname)
                        FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal),
                     (SELECT string_agg(format('policy %s %s %s %s', pol.polname, pol.polcmd::text,
                                               pg_get_expr(pol.polqual, pol.polrelid), pg_get_expr(pol.polwithcheck, pol.polrelid)),
                                        E'\n' ORDER BY pol.polname)
                        FROM pg_policy pol WHERE pol.polrelid = c.oid),
                     CASE WHEN c.relkind = 'S' THEN (SELECT format('sequence %s %s %s %s', s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqcycle)
                                                       FROM pg_sequence s WHERE s.seqrelid = c.oid) END)
      FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
    UNION ALL
    -- types: enum labels in order, or the type's form
    SELECT pg_describe_object(m.classid, m.objid, 0),
           concat_ws(E'\n', 'type: ' || t.typtype::text,
                     (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid),
                     'comment: ' || obj_description(t.oid, 'pg_type'))
      FROM members m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
    UNION ALL
    SELECT pg_describe_object(m.classid, m.objid, 0),
           format('on %s call %s tags %s enabled %s', e.evtevent, e.evtfoid::regprocedure, e.evttags, e.evtenabled::text)
      FROM members m JOIN pg_event_trigger e ON m.classid = 'pg_event_trigger'::regclass AND e.oid = m.objid
    UNION ALL
    SELECT pg_describe_object(m.classid, m.objid, 0),
           concat_ws(E'\n', 'acl: ' || n.nspacl::text, 'comment: ' || obj_description(n.oid, 'pg_namespace'))
      FROM members m JOIN pg_namespace n ON m.classid = 'pg_namespace'::regclass AND n.oid = m.objid
    UNION ALL
    -- which tables pg_dump keeps the contents of, and with which filter
    SELECT 'extension fluent',
           (SELECT string_agg(format('dumps %s %s', c::regclass, f), E'\n' ORDER BY c::regclass::text)
              FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x (c, f) WHERE e.extname = 'fluent')
    UNION ALL
    -- anything else is listed by name, so that it cannot go unnoticed
    SELECT pg_describe_object(m.classid, m.objid, 0), 'class ' || m.classid::regclass
      FROM members m
     WHERE m.classid NOT IN ('pg_proc'::regclass, 'pg_class'::regclass, 'pg_type'::regclass,
                             'pg_event_trigger'::regclass, 'pg_namespace'::regclass)
)
SELECT object || E'\n' || coalesce(definition, '') || E'\n' FROM described ORDER BY object COLLATE "C", definition COLLATE "C";
