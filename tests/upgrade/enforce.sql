-- What the protected tables let each user do, as the application role:
-- rows read, and the masked column. The same before and after an update.
\set ON_ERROR_STOP 1
CREATE OR REPLACE FUNCTION pg_temp.seen(u text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    PERFORM fluent_set_user(u, true);
    EXECUTE 'SET LOCAL ROLE upgrade_app';
    SELECT format('%s: appointments %s, invoices %s, interpreters %s', u,
                  (SELECT string_agg(id::text, ',' ORDER BY id) FROM appointments),
                  (SELECT string_agg(id::text, ',' ORDER BY id) FROM invoices),
                  (SELECT string_agg(format('%s=%s', id, coalesce(email, 'masked')), ',' ORDER BY id) FROM interpreters_masked))
      INTO result;
    EXECUTE 'RESET ROLE';
    RETURN result;
END $$;
BEGIN;
SELECT pg_temp.seen(u) FROM unnest('{olivia,sam,bea,vic,leo,ann,ian}'::text[]) u;
COMMIT;
