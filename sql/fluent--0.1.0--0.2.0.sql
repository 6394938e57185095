-- fluent 0.1.0 -> 0.2.0.
--
-- Each version has its own library (fluent-<version>, in $libdir), so that a new
-- build installed beside the old one changes nothing in databases still at
-- the old version: their functions keep calling the library they were
-- created with until this script points them at the new one. (0.1.0's was
-- 'fluent', resolved through dynamic_library_path.) The C functions keep
-- their symbols and SQL signatures, so the update is this one change of
-- each function's library.
SET LOCAL search_path TO pg_catalog, pg_temp;
UPDATE pg_catalog.pg_proc p SET probin = 'fluent-0.2.0'
 WHERE p.probin IN ('fluent', '$libdir/fluent')
   AND p.oid IN (SELECT d.objid FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.deptype = 'e'
                    AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                    AND d.refobjid = (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'fluent'));
