-- fluent on a Citus cluster: one catalog, written on the coordinator, on
-- every node.
--
-- Each node keeps fluent's catalog in its own local tables (Citus installs
-- the extension on every node), so the caches, the change log and the
-- policies on the shards read it locally, by the node's own snapshots, as
-- on one server. Writes happen on the coordinator only; each statement's
-- rows are sent through fluent.citus_bus, a Citus reference table.
-- Citus writes a reference table on every node's placement within the
-- writing transaction, with two-phase commit: a change reaches every worker
-- when it commits there, and a rolled-back one reaches none. On each
-- worker's placement a BEFORE trigger applies the rows to the local catalog
-- (whose own triggers then log the change and invalidate the caches at the
-- worker's commit) and returns NULL, so the bus keeps nothing.
--
-- fluent_citus_setup() turns it on, from the coordinator: it makes the bus a
-- reference table and sends the whole catalog once. Until then nothing is
-- sent, and on a server without Citus these triggers return at once.

-- Everything below resolves names in pg_catalog and fluent's own schema only
-- (see "Install-time safety" in README.md); the extension schema comes back at the end.
SET LOCAL search_path TO pg_catalog, pg_temp;

-- The catalog tables the workers need, parents before children: the
-- workspace model and everything the decisions read.
CREATE FUNCTION fluent._citus_tables() RETURNS name[]
LANGUAGE sql IMMUTABLE
RETURN ARRAY['workspaces', 'users', 'modules', 'actions', 'roles', 'permissions', 'grants', 'overrides',
             'teams', 'team_members', 'requirements', 'admin_rights', 'item_roles', 'item_role_actions',
             'assignable_roles']::name[];

-- This node's part: 'coordinator', 'worker', or 'none' without Citus. Citus
-- is looked up in pg_catalog only (nobody but a superuser creates there).
CREATE FUNCTION fluent._citus_node() RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    coordinator boolean;
BEGIN
    IF to_regprocedure('pg_catalog.citus_is_coordinator()') IS NULL THEN
        RETURN 'none';
    END IF;
    EXECUTE 'SELECT pg_catalog.citus_is_coordinator()' INTO coordinator;
    RETURN CASE WHEN coordinator THEN 'coordinator' ELSE 'worker' END;
END $$;

-- The relation a schema-qualified name (as quote_ident writes it) names, or
-- NULL: looked up in the catalog, without the schema's USAGE check that
-- regclass input makes (fluent_owner, and a reporting role, need none on the
-- schemas of the tables they read about).
CREATE FUNCTION fluent._relation_named(qualified text) RETURNS regclass
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp SET citus.override_table_visibility = off
BEGIN ATOMIC
    SELECT c.oid::regclass
      FROM parse_ident(qualified) x, pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid
     WHERE cardinality(x) = 2 AND n.nspname = x[1] AND c.relname = x[2];
END;

-- This node's placements of tbl when tbl is a Citus table (none on a node
-- that holds none); NULL when it is no Citus table. (Citus hides shards from
-- pg_class, and names them in tbl's schema.)
CREATE FUNCTION fluent._local_placements(tbl regclass) RETURNS regclass[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET citus.override_table_visibility = off AS $$
DECLARE
    placements regclass[];
BEGIN
    IF fluent._citus_node() <> 'none' THEN
        EXECUTE 'SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = $1)
                 THEN ARRAY(SELECT r FROM pg_dist_shard s JOIN pg_dist_placement p ON p.shardid = s.shardid,
                                          fluent._relation_named(shard_name(s.logicalrelid, s.shardid, false)) r
                             WHERE s.logicalrelid = $1 AND p.shardstate = 1 AND r IS NOT NULL
                               AND p.groupid = (SELECT groupid FROM pg_dist_local_group)
                             ORDER BY s.shardid) END'
            INTO placements USING tbl;
    END IF;
    RETURN placements;
END $$;

-- The relations names name (schema-qualified), in order, NULL for a name
-- this node has no relation of: the shards a request of fluent_who_can
-- names, from the coordinator's metadata (src/placed_rows.rs).
CREATE FUNCTION fluent._relations_named(names text[]) RETURNS oid[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT ARRAY(SELECT fluent._relation_named(n)::oid FROM unnest(names) WITH ORDINALITY x (n, i) ORDER BY i);
END;

-- The relations a policy reads tbl's rows from on this node
-- (src/placements.rs): this node's placements of tbl when it is a Citus
-- table, tbl itself otherwise; and the type of what it reads of them, for
-- an empty array: its column's, or record for several columns.
CREATE FUNCTION fluent._local_rows_from(tbl regclass, cols name[], OUT relations text[], OUT col_type text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    SELECT CASE WHEN cardinality(cols) = 1 THEN format_type(a.atttypid, a.atttypmod) ELSE 'record' END INTO col_type
      FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = cols[1] AND NOT a.attisdropped;
    relations := coalesce(fluent._local_placements(tbl)::text[], ARRAY[tbl::text]);
END $$;

-- The policies of tbl as fluent._policies_of gives them, with the roles
-- named (role OIDs differ between nodes): what each shard of tbl must carry
-- (fluent._citus_local_shard_problems).
CREATE FUNCTION fluent._policies_named(tbl regclass) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT coalesce(jsonb_object_agg(pol.polname, jsonb_build_object(
               'command', pol.polcmd::text, 'permissive', pol.polpermissive,
               'roles', (SELECT array_agg(CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END ORDER BY 1)
                           FROM unnest(pol.polroles) r),
               'using', pg_get_expr(pol.polqual, pol.polrelid), 'check', pg_get_expr(pol.polwithcheck, pol.polrelid))),
           '{}'::jsonb)
      FROM pg_policy pol WHERE pol.polrelid = tbl;
END;

-- Each placement of the relations rels, with its node (name, port, whether
-- it is this one) and its shard's schema-qualified name, from this node's
-- metadata (src/shard_checks.rs).
CREATE FUNCTION fluent._citus_shards_by_node(rels regclass[], OUT node_name text, OUT node_port integer,
                                             OUT here boolean, OUT shard text, OUT relation regclass)
RETURNS SETOF record
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN QUERY EXECUTE
        'SELECT n.nodename::text, n.nodeport, n.groupid = l.groupid, shard_name(s.logicalrelid, s.shardid, false),
                s.logicalrelid::regclass
           FROM pg_dist_shard s JOIN pg_dist_placement p ON p.shardid = s.shardid
           JOIN pg_dist_node n ON n.groupid = p.groupid, pg_dist_local_group l
          WHERE s.logicalrelid = ANY ($1) AND p.shardstate = 1 AND n.noderole = ''primary'' AND n.isactive
          ORDER BY 1, 2, 4'
        USING rels;
END $$;

-- The relations that inherit from one of parents (directly or not) and are
-- not among known: on a Citus node, tables hung under shards, whose rows
-- queries on the shards read (src/placed_rows.rs refuses them,
-- fluent._citus_local_shard_problems reports them).
CREATE FUNCTION fluent._outside_children(parents oid[], known oid[]) RETURNS SETOF text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp SET citus.override_table_visibility = off
BEGIN ATOMIC
    WITH RECURSIVE below (relid) AS (
        SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = ANY (parents)
        UNION
        SELECT i.inhrelid FROM pg_inherits i JOIN below b ON i.inhparent = b.relid
    )
    SELECT b.relid::regclass::text FROM below b WHERE b.relid <> ALL (known) ORDER BY 1;
END;

-- On a Citus node, what no longer matches on the shards expected names
-- (schema-qualified, from the coordinator's metadata), each with its table,
-- the table's policies as fluent._policies_named gives them on the
-- coordinator and its item roles' triggers (fluent._item_triggers_named): a
-- shard missing, row security disabled or not forced, policies missing or
-- changed, permissive ones added, triggers missing, disabled or changed, a
-- parent or a child that is not one of the shards named. Compared as text:
-- Citus writes a table's policies on its shards as they read on the table
-- (its policies hold no sub-select, so no column is qualified with the
-- table's name). Returns [{relation, shard, problem, detail}]. It reads only
-- PostgreSQL's catalogs, as the caller (fluent_protection_problems on the
-- coordinator asks each node, src/shard_checks.rs), with Citus's hiding of
-- shards from pg_class turned off (it would hide the rows checked).
CREATE FUNCTION fluent._citus_local_shard_problems(expected jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET citus.override_table_visibility = off AS $$
DECLARE
    name text;
    spec jsonb;
    shard regclass;
    flags record;
    actual jsonb;
    k text;
    t jsonb;
    tg record;
    found jsonb := '[]';
    -- The shards named, as this node has them: the parents and children
    -- they may have among themselves. (Not a missing one's NULL: "<> ALL"
    -- with a NULL in the array is never true, and would hide every other.)
    known oid[] := ARRAY(SELECT r FROM jsonb_object_keys(expected) x, fluent._relation_named(x) r WHERE r IS NOT NULL);
BEGIN
    FOR name, spec IN SELECT * FROM jsonb_each(expected) LOOP
        shard := fluent._relation_named(name);
        IF shard IS NULL THEN
            found := found || jsonb_build_object('relation', spec ->> 'relation', 'shard', name,
                'problem', 'shard missing', 'detail', 'the node has no such relation: queries routed to it fail');
            CONTINUE;
        END IF;
        SELECT cl.relrowsecurity, cl.relforcerowsecurity INTO flags FROM pg_class cl WHERE cl.oid = shard;
        IF NOT flags.relrowsecurity THEN
            found := found || jsonb_build_object('relation', spec ->> 'relation', 'shard', name,
                'problem', 'row-level security disabled', 'detail', 'every role with privileges on the shard sees and changes its rows');
        END IF;
        IF NOT flags.relforcerowsecurity THEN
            found := found || jsonb_build_object('relation', spec ->> 'relation', 'shard', name,
                'problem', 'row-level security not forced', 'detail', 'the owner sees and changes the shard''s rows');
        END IF;
        actual := fluent._policies_named(shard);
        FOR k IN SELECT jsonb_object_keys(spec -> 'policies') LOOP
            IF NOT actual ? k THEN
                found := found || jsonb_build_object('relation', spec ->> 'relation', 'shard', name,
                    'problem', 'policy missing', 'detail', format('%s was dropped on the shard', k));
            ELSIF actual -> k <> spec -> 'policies' -> k THEN
                found := found || jsonb_build_object('relation', spec ->> 'relation', 'shard', name,
                    'problem', 'policy changed', 'detail', format('%s on the shard is not the table''s', k));
            END IF;
        END LOOP;
        FOR k IN SELECT x FROM jsonb_object_keys(actual) x
                  WHERE NOT spec -> 'policies' ? x AND (actual -> x ->> 'permissive')::boolean LOOP
            found := found || jsonb_build_object('relation', spec ->> 'relation', 'shard', name,
                'problem', 'permissive policy added', 'detail', format('%s is OR-ed with fluent''s policies on the shard and widens access', k));
        END LOOP;
        -- The item roles' triggers, as Citus created them on the shard.
        FOR t IN SELECT x FROM jsonb_array_elements(coalesce(spec -> 'triggers', '[]')) x LOOP
            SELECT x.tgenabled,
                   x.tgattr::text = ''
                   AND x.tgargs = coalesce((SELECT string_agg(convert_to(y.arg, getdatabaseencoding()) || '\x00'::bytea, ''::bytea ORDER BY y.n)
                                              FROM jsonb_array_elements_text(t -> 'args') WITH ORDINALITY y (arg, n)), ''::bytea)
                   AND CASE WHEN t ->> 'condition' IS NULL THEN x.tgqual IS NULL
                            ELSE position(format(' WHEN ((%s)) ', t ->> 'condition') IN pg_get_triggerdef(x.oid)) > 0 END AS as_created
              INTO tg FROM pg_trigger x
             WHERE x.tgrelid = shard AND x.tgfoid = (t ->> 'fn')::regprocedure AND x.tgtype = (t ->> 'tgtype')::int2
             ORDER BY x.tgenabled = 'O' DESC LIMIT 1;
            -- (No trigger found: tgenabled NULL. FOUND is the list here.)
            IF tg.tgenabled IS NULL OR NOT tg.as_created OR tg.tgenabled <> 'O' THEN
                found := found || jsonb_build_object('relation', spec ->> 'relation', 'shard', name,
                    'problem', CASE WHEN tg.tgenabled IS NULL THEN 'item role trigger missing'
                                    WHEN tg.tgenabled = 'D' THEN 'item role trigger disabled'
                                    ELSE 'item role trigger changed' END,
                    'detail', format('%s on the shard: %s', t ->> 'name', fluent._item_trigger_detail(t ->> 'name')));
            END IF;
        END LOOP;
        -- A query reads a shard's rows under the policies of the table it
        -- names: a parent other than a shard of the protection (INHERIT,
        -- ATTACH PARTITION on the node) reads them past fluent's.
        FOR k IN SELECT i.inhparent::regclass::text FROM pg_inherits i
                  WHERE i.inhrelid = shard AND i.inhparent <> ALL (known)
                  ORDER BY 1 LOOP
            found := found || jsonb_build_object('relation', spec ->> 'relation', 'shard', name,
                'problem', 'parent outside the protection',
                'detail', format('the shard inherits from %s: queries on it read and change the shard''s rows without these policies', k));
        END LOOP;
        -- A child of a shard holds rows that queries on the shard read, kept
        -- past the shard's own row security (a shard swapped for a look-alike
        -- that the real one inherits from).
        FOR k IN SELECT fluent._outside_children(ARRAY[shard], known) LOOP
            found := found || jsonb_build_object('relation', spec ->> 'relation', 'shard', name,
                'problem', 'child outside the protection',
                'detail', format('%s inherits from the shard: queries on the shard read its rows, which it keeps past the shard''s row security', k));
        END LOOP;
    END LOOP;
    RETURN found;
END $$;

-- On the Citus coordinator, the other primary nodes that are active.
CREATE FUNCTION fluent._citus_other_nodes(OUT node_name text, OUT node_port int) RETURNS SETOF record
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF fluent._citus_node() <> 'none' THEN
        RETURN QUERY EXECUTE 'SELECT n.nodename, n.nodeport FROM pg_dist_node n, pg_dist_local_group l
                               WHERE n.noderole = ''primary'' AND n.isactive AND n.groupid <> l.groupid ORDER BY 1, 2';
    END IF;
END $$;

-- The audit rows the other nodes hold (src/node_audit.rs): on Citus, the
-- assignments of item roles on Citus tables, which are recorded on the node
-- that holds them. Read as the caller, who must read fluent.audit_log on
-- every node.
CREATE VIEW fluent.citus_audit_log AS
SELECT n.node, r.*
  FROM fluent._citus_node_audit_logs() n, jsonb_populate_recordset(NULL::fluent.audit_log, n.entries::jsonb) r;
COMMENT ON VIEW fluent.citus_audit_log IS
    'On Citus: the audit logs of the other nodes (assignments of item roles on Citus tables are recorded on the node that holds them), read as the caller';

-- Whether tbl is a Citus table (distributed, reference or Citus local): its
-- rows are in its placements.
CREATE FUNCTION fluent._is_citus_table(tbl regclass) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    found boolean := false;
BEGIN
    IF fluent._citus_node() <> 'none' THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = $1)' INTO found USING tbl;
    END IF;
    RETURN found;
END $$;

-- The column that distributes tbl by hash on Citus; NULL for any other
-- table (a reference table, a plain one, no Citus).
CREATE FUNCTION fluent._citus_distribution_column(tbl regclass) RETURNS name
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col name;
BEGIN
    IF fluent._citus_node() = 'none' THEN
        RETURN NULL;
    END IF;
    EXECUTE 'SELECT column_to_column_name(logicalrelid, partkey) FROM pg_dist_partition
              WHERE logicalrelid = $1 AND partmethod = ''h'''
        INTO col USING tbl;
    RETURN col;
END $$;

-- The column pairs of foreign key constraint fk, each as
-- 'referencing=referenced' (names quoted as identifiers), sorted.
CREATE FUNCTION fluent._foreign_key_pairs(fk oid) RETURNS text[]
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT ARRAY(SELECT format('%I=%I', ra.attname, fa.attname)
                   FROM pg_constraint c CROSS JOIN LATERAL unnest(c.conkey, c.confkey) k (r, f)
                   JOIN pg_attribute ra ON ra.attrelid = c.conrelid AND ra.attnum = k.r
                   JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = k.f
                  WHERE c.oid = fk
                  ORDER BY 1);
END;

-- On Citus, a policy of tbl that reads table other (its membership table)
-- reads it on the node that runs it (src/placements.rs), and so does
-- other's membership policy read tbl: other's rows must be on the same
-- nodes as the rows of tbl they point at (other_col naming tbl's col).
-- Refused unless both are plain tables, both reference tables, or both
-- distributed, co-located, with a validated foreign key from other to tbl
-- that maps other's distribution column to tbl's and other_col to col (so
-- each membership row carries its item's distribution value). The same
-- holds for a child table (other) and its parent (tbl): the child's
-- policies read the parent's assignments, and its trigger the parent's row,
-- on the child's node.
CREATE FUNCTION fluent._citus_check_layout(tbl regclass, other regclass, col name, other_col name)
RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    same boolean;
    keyed boolean;
BEGIN
    IF fluent._citus_node() = 'none' THEN
        RETURN;
    END IF;
    IF other IS NULL THEN
        RETURN;
    END IF;
    EXECUTE 'SELECT (SELECT ROW(partmethod, repmodel, colocationid) FROM pg_dist_partition WHERE logicalrelid = $1)
                    IS NOT DISTINCT FROM
                    (SELECT ROW(partmethod, repmodel, colocationid) FROM pg_dist_partition WHERE logicalrelid = $2)'
        INTO same USING tbl, other;
    keyed := true;
    IF fluent._citus_distribution_column(tbl) IS NOT NULL AND fluent._citus_distribution_column(other) IS NOT NULL THEN
        keyed := EXISTS (SELECT 1 FROM pg_constraint c
                      WHERE c.contype = 'f' AND c.convalidated AND c.conrelid = other AND c.confrelid = tbl
                        AND fluent._foreign_key_pairs(c.oid)
                            @> ARRAY[format('%I=%I', fluent._citus_distribution_column(other), fluent._citus_distribution_column(tbl)),
                                     format('%I=%I', other_col, col)]);
    END IF;
    IF NOT same OR NOT keyed THEN
        PERFORM fluent._raise('citus_layout', ARRAY[tbl::text, other::text]);
    END IF;
END $$;

-- The secret that signs the acting user sent to the workers (src/citus.rs):
-- the same on every node, readable by the catalog owner only.
CREATE TABLE fluent.citus_secret (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    secret    text NOT NULL
);
COMMENT ON TABLE fluent.citus_secret IS
    'On Citus: the key that signs the identity the coordinator sends to the workers; the catalog owner''s only';

-- The bus: one row per catalog statement, in the order the coordinator ran
-- them (op: i insert, u update, d delete, t truncate, s the whole catalog).
CREATE TABLE fluent.citus_bus (
    tbl      name NOT NULL,
    op       "char" NOT NULL CHECK (op IN ('i', 'u', 'd', 't', 's')),
    old_rows jsonb,
    new_rows jsonb
);
-- Citus copies a reference table to a node added later by logical
-- replication (replicate_reference_tables(), the rebalancer), which needs a
-- replica identity; the bus keeps no rows, so a full one costs nothing.
ALTER TABLE fluent.citus_bus REPLICA IDENTITY FULL;
COMMENT ON TABLE fluent.citus_bus IS
    'On Citus: the catalog changes the coordinator sends to every worker, applied there and never kept (see "Running on Citus" in README.md)';

-- The condition that rows t and r of a catalog table have the same key: its
-- primary key, or for requirements its unique (module_id, action_id), where
-- NULLs are not distinct.
CREATE FUNCTION fluent._citus_key_match(rel regclass) RETURNS text
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT coalesce(
        (SELECT string_agg(format('t.%1$I = r.%1$I', a.attname), ' AND ')
           FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
          WHERE i.indrelid = rel AND i.indisprimary),
        (SELECT string_agg(format('t.%1$I IS NOT DISTINCT FROM r.%1$I', a.attname), ' AND ')
           FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
          WHERE i.indrelid = rel AND i.indisunique
            AND i.indexrelid = (SELECT min(x.indexrelid) FROM pg_index x WHERE x.indrelid = rel AND x.indisunique)));
END;

-- Applies one table's rows to this node's catalog, by primary key, with the
-- ids the coordinator gave them.
CREATE FUNCTION fluent._citus_apply_rows(tbl name, op "char", old_rows jsonb, new_rows jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel regclass := format('fluent.%I', tbl)::regclass;
    keys text;
    sets text;
BEGIN
    IF NOT tbl = ANY (fluent._citus_tables()) THEN
        RAISE EXCEPTION 'fluent.citus_bus names "%", which is not a replicated catalog table', tbl
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    keys := fluent._citus_key_match(rel);
    CASE op
    WHEN 'i' THEN
        EXECUTE format('INSERT INTO %s OVERRIDING SYSTEM VALUE SELECT * FROM jsonb_populate_recordset(NULL::%s, $1)',
                       rel, rel) USING new_rows;
    WHEN 'd' THEN
        EXECUTE format('DELETE FROM %s t USING jsonb_populate_recordset(NULL::%s, $1) r WHERE %s', rel, rel, keys)
          USING old_rows;
    WHEN 'u' THEN
        SELECT string_agg(format('%1$I = r.%1$I', a.attname), ', ')
          INTO sets
          FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attidentity = '' AND a.attgenerated = '';
        -- (The coordinator refuses a changed primary key: fluent._citus_send.)
        EXECUTE format('UPDATE %s t SET %s FROM jsonb_populate_recordset(NULL::%s, $1) r WHERE %s', rel, sets, rel, keys)
          USING new_rows;
    WHEN 't' THEN
        EXECUTE format('DELETE FROM %s', rel);
    END CASE;
END $$;

-- The trigger on every placement of the bus: on a worker, applies the row
-- to the local catalog as the catalog owner; keeps nothing anywhere (the
-- coordinator's own placement has nothing to apply). Only the roles allowed
-- to insert into the bus reach it: fluent_replicator, which
-- fluent._citus_send() becomes to send, and superusers. Whoever can log in
-- as fluent_replicator writes the workers' catalogs: keep its credentials
-- for the coordinator.
CREATE FUNCTION fluent._citus_receive() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t name;
BEGIN
    IF fluent._citus_node() <> 'worker' THEN
        RETURN NULL;
    END IF;
    -- The coordinator wrote the rows' literals for standard_conforming_strings
    -- on (the replicator's setting, fluent_citus_setup): read otherwise,
    -- they would not be the rows it sent.
    IF current_setting('standard_conforming_strings') <> 'on' THEN
        PERFORM fluent._raise('citus_apply_settings', ARRAY['standard_conforming_strings']);
    END IF;
    PERFORM fluent._citus_set_applying(true);
    IF NEW.op = 's' THEN
        DELETE FROM fluent.citus_secret;
        INSERT INTO fluent.citus_secret (secret) VALUES (NEW.new_rows ->> '#secret');
        -- The whole catalog: emptied children first, then filled parents first.
        FOREACH t IN ARRAY (SELECT array_agg(x ORDER BY o DESC) FROM unnest(fluent._citus_tables()) WITH ORDINALITY u (x, o)) LOOP
            PERFORM fluent._citus_apply_rows(t, 't', NULL, NULL);
        END LOOP;
        FOREACH t IN ARRAY fluent._citus_tables() LOOP
            PERFORM fluent._citus_apply_rows(t, 'i', NULL, coalesce(NEW.new_rows -> t, '[]'));
        END LOOP;
    ELSE
        PERFORM fluent._citus_apply_rows(NEW.tbl, NEW.op, NEW.old_rows, NEW.new_rows);
    END IF;
    PERFORM fluent._citus_set_applying(false);
    RETURN NULL;
END $$;
CREATE TRIGGER receive BEFORE INSERT ON fluent.citus_bus FOR EACH ROW EXECUTE FUNCTION fluent._citus_receive();

-- On the coordinator, once set up: sends each statement's rows, as
-- fluent_replicator (fluent._citus_send_rows, src/citus.rs). As the catalog
-- owner, whoever writes. A changed primary key is refused: the rows that
-- point at the old one would keep it here and lose it on the workers.
CREATE FUNCTION fluent._citus_send() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    old_rows jsonb;
    new_rows jsonb;
    moved boolean;
BEGIN
    IF fluent._citus_node() <> 'coordinator' OR NOT fluent._citus_bus_active() THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM fluent._citus_send_rows(TG_TABLE_NAME, 't', NULL, NULL);
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        EXECUTE format('SELECT EXISTS (SELECT FROM old_rows r WHERE NOT EXISTS (SELECT FROM new_rows t WHERE %s))',
                       fluent._citus_key_match(format('fluent.%I', TG_TABLE_NAME)::regclass))
           INTO moved;
        IF moved THEN
            RAISE EXCEPTION 'cannot change the primary key of a row of fluent.% on Citus', TG_TABLE_NAME
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Delete the row and insert it again.';
        END IF;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        EXECUTE 'SELECT jsonb_agg(to_jsonb(o)) FROM old_rows o' INTO old_rows;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        EXECUTE 'SELECT jsonb_agg(to_jsonb(n)) FROM new_rows n' INTO new_rows;
    END IF;
    IF old_rows IS NOT NULL OR new_rows IS NOT NULL THEN
        PERFORM fluent._citus_send_rows(TG_TABLE_NAME, lower(left(TG_OP, 1)), old_rows, new_rows);
    END IF;
    RETURN NULL;
END $$;

-- On a worker, the catalog is written by the coordinator's changes only.
-- (Elsewhere, a row goes on as it is.)
CREATE FUNCTION fluent._citus_refuse_on_worker() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT fluent._citus_applying() AND fluent._citus_node() = 'worker' THEN
        PERFORM fluent._raise('on_citus_worker', '{}');
    END IF;
    IF TG_LEVEL = 'ROW' AND TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;

DO $$
DECLARE
    t name;
    op text;
BEGIN
    -- What the workers do not need is not sent, and not written there either:
    -- protections and template applications are made on the coordinator,
    -- and tokens are verified there. For each row written: the event
    -- trigger that forgets dropped tables deletes from protected_tables on
    -- every DROP, which Citus also runs on the workers, and deletes nothing.
    FOREACH t IN ARRAY ARRAY['protected_tables', 'protected_columns', 'template_applications', 'token_settings',
                             'citus_secret']::name[] LOOP
        EXECUTE format('CREATE TRIGGER citus_refuse_on_worker BEFORE INSERT OR UPDATE OR DELETE
                        ON fluent.%I FOR EACH ROW EXECUTE FUNCTION fluent._citus_refuse_on_worker()', t);
        EXECUTE format('CREATE TRIGGER citus_refuse_truncate_on_worker BEFORE TRUNCATE
                        ON fluent.%I FOR EACH STATEMENT EXECUTE FUNCTION fluent._citus_refuse_on_worker()', t);
    END LOOP;
    FOREACH t IN ARRAY fluent._citus_tables() LOOP
        EXECUTE format('CREATE TRIGGER citus_refuse_on_worker BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
                        ON fluent.%I FOR EACH STATEMENT EXECUTE FUNCTION fluent._citus_refuse_on_worker()', t);
        FOREACH op IN ARRAY ARRAY['INSERT', 'UPDATE', 'DELETE'] LOOP
            EXECUTE format('CREATE TRIGGER citus_send_%s AFTER %s ON fluent.%I REFERENCING %s
                            FOR EACH STATEMENT EXECUTE FUNCTION fluent._citus_send()',
                           lower(op), op, t,
                           CASE op WHEN 'INSERT' THEN 'NEW TABLE AS new_rows'
                                   WHEN 'UPDATE' THEN 'OLD TABLE AS old_rows NEW TABLE AS new_rows'
                                   ELSE 'OLD TABLE AS old_rows' END);
        END LOOP;
        EXECUTE format('CREATE TRIGGER citus_send_truncate AFTER TRUNCATE ON fluent.%I
                        FOR EACH STATEMENT EXECUTE FUNCTION fluent._citus_send()', t);
    END LOOP;
END
$$;

-- Raises unless this node's placements of fluent.citus_bus have PostgreSQL's
-- own column types. Citus creates a placement with the types named without
-- a schema (jsonb), resolved by the node's default search path, which its
-- database's owner may set: a domain named jsonb there would run its owner's
-- check on every row the bus takes, the setup's (the whole catalog and the
-- cluster's secret, as the superuser) included.
CREATE FUNCTION fluent._citus_check_bus_types() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET citus.override_table_visibility = off AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_type t ON t.oid = a.atttypid
                WHERE c.relnamespace = 'fluent'::regnamespace AND c.relname LIKE 'citus\_bus%' AND a.attnum > 0
                  AND t.typnamespace <> 'pg_catalog'::regnamespace) THEN
        RAISE EXCEPTION 'a placement of fluent.citus_bus on this node has a column of a type outside pg_catalog'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'The database''s default search path named another type first when Citus created it: drop the placement and copy it again with a safe search path.';
    END IF;
END $$;

-- Runs command on every worker, on a connection of its own that commits on
-- its own (Citus's run_command_on_workers), and raises the first failure.
CREATE FUNCTION fluent._citus_on_workers(command text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    failed text;
BEGIN
    -- (In a DO block that pins the search path first: the workers' sessions
    -- take theirs from the database's defaults, which its owner may set.)
    EXECUTE 'SELECT format(''%s:%s: %s'', nodename, nodeport, result)
               FROM pg_catalog.run_command_on_workers($1) WHERE NOT success LIMIT 1'
        INTO failed
        USING format('DO $do$ BEGIN SET LOCAL search_path TO pg_catalog, pg_temp; EXECUTE %L; END $do$', command);
    IF failed IS NOT NULL THEN
        RAISE EXCEPTION 'fluent_citus_setup() could not run "%" on a worker: %', command, failed
            USING ERRCODE = 'connection_exception';
    END IF;
END $$;

-- Sets fluent up on a Citus cluster, from the coordinator, as a superuser:
-- the role the bus connects to the workers as, the bus as a reference
-- table, and the whole catalog sent to every worker (replacing what each
-- had). Run it again after adding a node. Returns the number of workers.
CREATE FUNCTION @extschema@.fluent_citus_setup() RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t name;
    f regprocedure;
    catalog jsonb := '{}';
    rows jsonb;
    workers int;
    pin text;
    missing boolean;
    distributed boolean;
    replicator_settings text[] := ARRAY['search_path = pg_catalog, pg_temp', 'standard_conforming_strings = on',
                                        'default_transaction_read_only = off', 'statement_timeout = 0',
                                        'lock_timeout = 0', 'idle_in_transaction_session_timeout = 0'];
BEGIN
    IF NOT fluent._current_role_is_superuser() THEN
        PERFORM fluent._raise('citus_setup', ARRAY['superuser']);
    ELSIF fluent._citus_node() = 'none' THEN
        PERFORM fluent._raise('citus_setup', ARRAY['citus']);
    ELSIF fluent._citus_node() = 'worker' THEN
        PERFORM fluent._raise('citus_setup', ARRAY['worker']);
    END IF;
    -- Every statement Citus sends to the workers in this transaction runs
    -- there with a search path nothing can capture: the workers' sessions
    -- take theirs from the database's defaults, which its (non-superuser)
    -- owner may set, and the catalog's rows go out as literals cast to types
    -- named without a schema ('...'::jsonb), whose domains would run their
    -- owner's code as this superuser, the cluster's secret in hand.
    -- (Citus sends a SET LOCAL on when it runs inside a statement, not
    -- directly in a function's body: hence the DO block.)
    PERFORM set_config('citus.propagate_set_commands', 'local', true);
    DO $pin$ BEGIN SET LOCAL search_path TO pg_catalog, pg_temp; END $pin$;
    -- Citus dials the workers as fluent_replicator (made on every node by
    -- the install script): it must log in there. The replicator's sessions
    -- on the workers take no setting from the database's defaults, which
    -- its (non-superuser) owner may choose (and fluent ignores the SETs Citus
    -- replays on them: src/citus.rs): its own come first. Its insert into the
    -- bus names types ('...'::jsonb) that a domain of the same name earlier
    -- in the search_path would capture, running the domain owner's check as
    -- the replicator; its string literals are written for
    -- standard_conforming_strings on (off, a backslash in a catalog value
    -- would turn \" into a bare quote and rewrite the rows); and a read-only
    -- default or a timeout would stop every catalog change, revokes
    -- included.
    -- Once the role is a Citus object (after the first setup), Citus sends
    -- the ALTER ROLEs below to every node in this transaction, a node added
    -- since included. Before, they reach the workers only through
    -- connections of their own, each checked.
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_dist_object WHERE classid = ''pg_authid''::regclass AND objid = $1)'
        INTO distributed USING 'fluent_replicator'::regrole;
    IF NOT distributed THEN
        FOREACH pin IN ARRAY ARRAY['LOGIN'] || ARRAY(SELECT 'SET ' || x FROM unnest(replicator_settings) x) LOOP
            PERFORM fluent._citus_on_workers('ALTER ROLE fluent_replicator ' || pin);
        END LOOP;
    END IF;
    ALTER ROLE fluent_replicator LOGIN;
    FOREACH pin IN ARRAY replicator_settings LOOP
        EXECUTE 'ALTER ROLE fluent_replicator SET ' || pin;
    END LOOP;
    -- Citus's assign_distributed_transaction_id() is PUBLIC: on the
    -- coordinator a session could give its transaction the distributed id of
    -- another's, whose signed identity the workers would then honour
    -- (src/citus.rs). Only Citus's connections to the workers need it: it is
    -- taken back here, and here only.
    SET LOCAL citus.enable_ddl_propagation = off;
    EXECUTE 'REVOKE EXECUTE ON FUNCTION pg_catalog.assign_distributed_transaction_id(integer, bigint, timestamp with time zone) FROM PUBLIC';
    -- Citus's run_command_on_* open connections of their own, as the caller,
    -- to any node, and run any SQL there: a session could claim a
    -- transaction id on a worker that way. They are PUBLIC; taken back on
    -- every node (the workers first: this uses one of them).
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = 'pg_catalog'::regnamespace
           AND p.proname IN ('master_run_on_worker', 'run_command_on_workers', 'run_command_on_all_nodes',
                             'run_command_on_coordinator', 'run_command_on_placements',
                             'run_command_on_colocated_placements', 'run_command_on_shards')
    LOOP
        PERFORM fluent._citus_on_workers(format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f));
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
    RESET citus.enable_ddl_propagation;
    IF NOT fluent._citus_bus_active() THEN
        -- Citus copies a reference table to a node added later as the
        -- table's owner, who must log in there: the bus is the calling
        -- superuser's, not the catalog owner's (who cannot).
        EXECUTE format('ALTER TABLE fluent.citus_bus OWNER TO %I', current_user);
        -- The bus's trigger goes to every placement (Citus copies a
        -- table's triggers to its shards only when told they are safe).
        SET LOCAL citus.enable_unsafe_triggers = on;
        EXECUTE 'SELECT pg_catalog.create_reference_table($1)' USING 'fluent.citus_bus'::regclass;
    END IF;
    -- Every placement of the bus has PostgreSQL's types, before anything is
    -- sent through it.
    PERFORM fluent._citus_check_bus_types();
    PERFORM fluent._citus_on_workers('SELECT fluent._citus_check_bus_types()');
    -- A worker added since the bus was distributed holds no placement of it
    -- until Citus copies the reference tables there: the catalog would not
    -- reach it.
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_dist_node n
                             WHERE n.isactive AND n.noderole = ''primary'' AND n.groupid <> 0
                               AND n.groupid NOT IN (SELECT p.groupid FROM pg_dist_placement p
                                                       JOIN pg_dist_shard s ON s.shardid = p.shardid
                                                      WHERE s.logicalrelid = ''fluent.citus_bus''::regclass))'
        INTO missing;
    IF missing THEN
        PERFORM fluent._raise('citus_setup', ARRAY['placements']);
    END IF;
    -- One consistent copy: no catalog write may commit while it is taken.
    FOREACH t IN ARRAY fluent._citus_tables() LOOP
        EXECUTE format('LOCK TABLE fluent.%I IN SHARE MODE', t);
    END LOOP;
    FOREACH t IN ARRAY fluent._citus_tables() LOOP
        EXECUTE format('SELECT coalesce(jsonb_agg(to_jsonb(r)), ''[]'') FROM fluent.%I r', t) INTO rows;
        catalog := catalog || jsonb_build_object(t, rows);
    END LOOP;
    -- The cluster's secret, made once (gen_random_uuid() draws from the
    -- server's strong random source).
    INSERT INTO fluent.citus_secret (secret)
    VALUES (replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''))
    ON CONFLICT (singleton) DO NOTHING;
    catalog := catalog || jsonb_build_object('#secret', (SELECT c.secret FROM fluent.citus_secret c));
    -- Sent as the calling superuser: Citus refuses a second role on the
    -- placements a transaction wrote (create_reference_table wrote them).
    -- Written as literals for standard_conforming_strings on, which the
    -- workers' replicator sessions read them with (not propagated: a
    -- set_config).
    PERFORM set_config('standard_conforming_strings', 'on', true);
    INSERT INTO fluent.citus_bus (tbl, op, new_rows) VALUES ('*', 's', catalog);
    EXECUTE 'SELECT count(*) FROM pg_catalog.pg_dist_node WHERE groupid <> 0 AND isactive' INTO workers;
    RETURN workers;
END $$;
COMMENT ON FUNCTION @extschema@.fluent_citus_setup() IS
    'On a Citus coordinator, as a superuser: sends the catalog to every worker and from then on every catalog change, in its transaction; run again after adding a node';

SET LOCAL search_path TO @extschema@, pg_catalog, pg_temp;
