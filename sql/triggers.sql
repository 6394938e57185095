-- Triggers on the catalog tables.
--
-- invalidate_cache: every change to what decides a permission invalidates
-- every backend's permission cache when it commits (src/cache.rs).
-- Statement-level, so a bulk load sends one message, and TRUNCATE is covered.
--
-- audit_change: every change to the catalog is written to fluent.audit_log
-- in the same transaction (src/audit.rs), one entry per row.
--
-- stamp_attribution, *_is_a_tree_*, append_only: invariants that hold for
-- direct writes to the catalog too, not only for the fluent_* functions.

-- Everything below resolves names in pg_catalog and fluent's own schema only
-- (see "Install-time safety" in README.md); the extension schema comes back at the end.
SET LOCAL search_path TO pg_catalog, pg_temp;

-- The two trigger functions written in Rust (src/trigger.rs), in the library
-- this version's functions are in: each version has its own
-- ($libdir/fluent-<version>, see "Upgrade" in README.md), whose path pgrx
-- writes into the functions it declares, such as fluent.rls_all.
DO $$
DECLARE
    library text := (SELECT p.probin FROM pg_proc p WHERE p.oid = 'fluent.rls_all(text, text)'::regprocedure);
BEGIN
    EXECUTE format('CREATE FUNCTION fluent.invalidate_cache() RETURNS trigger LANGUAGE c AS %L, %L',
                   library, 'fluent_invalidate_cache');
    EXECUTE format('CREATE FUNCTION fluent.audit_change() RETURNS trigger LANGUAGE c AS %L, %L',
                   library, 'fluent_audit_change');
END
$$;

-- Logs what a write can change in the caches (fluent.changes): the
-- argument says what the table's rows stand for. Security definer: DBAs
-- write the catalog, but only the catalog owner writes the log.
CREATE FUNCTION fluent._log_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    kind text := TG_ARGV[0];
    rows jsonb := '[]';
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO fluent.changes (workspace_id, kind) VALUES (NULL, 'workspace');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        rows := rows || coalesce((SELECT jsonb_agg(to_jsonb(n)) FROM new_rows n), '[]');
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        rows := rows || coalesce((SELECT jsonb_agg(to_jsonb(o)) FROM old_rows o), '[]');
    END IF;
    -- A role drops its holders (a new role has none); a sign-in role, made,
    -- changed or dropped, decides whether everyone else may act: the
    -- workspace.
    -- A team's row or membership drops the team sets that hold its members
    -- (of the users who lead it); a lead, made or unmade, their own.
    INSERT INTO fluent.changes (workspace_id, kind, id)
    SELECT DISTINCT (r ->> 'workspace_id')::int, e.kind,
           CASE e.kind WHEN 'user' THEN (r ->> 'user_id')::bigint WHEN 'role' THEN (r ->> 'role_id')::bigint
                       WHEN 'teams' THEN (r ->> 'team_id')::bigint WHEN 'lead' THEN (r ->> 'user_id')::bigint END
      FROM jsonb_array_elements(rows) r
     CROSS JOIN LATERAL (SELECT CASE WHEN TG_TABLE_NAME = 'roles' AND (r ->> 'grants_sign_in')::boolean
                                     THEN 'workspace' ELSE kind END
                         UNION ALL
                         SELECT 'lead' WHERE TG_TABLE_NAME = 'team_members' AND (r ->> 'is_lead')::boolean) e (kind);
    -- A user's manager is their place in every workspace's reporting line.
    IF TG_TABLE_NAME = 'users' THEN
        INSERT INTO fluent.changes (workspace_id, kind) VALUES (NULL, 'teams');
    END IF;
    -- Entries no backend can still need; those that looked earlier drop all.
    WITH pruned AS (
        DELETE FROM fluent.changes c WHERE c.at < now() - interval '10 minutes' RETURNING c.xid
    )
    UPDATE fluent.change_horizon h SET pruned_below = (SELECT max(xid) FROM pruned)
     WHERE EXISTS (SELECT 1 FROM pruned) AND h.pruned_below < (SELECT max(xid) FROM pruned);
    RETURN NULL;
END $$;

DO $$
DECLARE
    t text;
    kind text;
    op text;
BEGIN
    FOR t, kind IN VALUES ('workspaces', 'workspace'), ('users', 'user'), ('modules', 'model'),
                          ('actions', 'model'), ('roles', 'role'), ('permissions', 'role'),
                          ('grants', 'user'), ('overrides', 'user'), ('teams', 'teams'), ('team_members', 'teams'),
                          ('requirements', 'model'), ('admin_rights', 'model'),
                          ('item_roles', 'model'), ('item_role_actions', 'model')
    LOOP
        EXECUTE format('CREATE TRIGGER invalidate_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
                        ON fluent.%I FOR EACH STATEMENT EXECUTE FUNCTION fluent.invalidate_cache()', t);
        -- (Transition tables take one trigger per event.)
        FOREACH op IN ARRAY ARRAY['INSERT', 'UPDATE', 'DELETE'] LOOP
            EXECUTE format('CREATE TRIGGER log_changes_%s AFTER %s ON fluent.%I REFERENCING %s
                            FOR EACH STATEMENT EXECUTE FUNCTION fluent._log_changes(%L)',
                           lower(op), op, t,
                           CASE op WHEN 'INSERT' THEN 'NEW TABLE AS new_rows'
                                   WHEN 'UPDATE' THEN 'OLD TABLE AS old_rows NEW TABLE AS new_rows'
                                   ELSE 'OLD TABLE AS old_rows' END, kind);
        END LOOP;
        EXECUTE format('CREATE TRIGGER log_changes_truncate AFTER TRUNCATE ON fluent.%I
                        FOR EACH STATEMENT EXECUTE FUNCTION fluent._log_changes(%L)', t, kind);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['workspaces', 'users', 'modules', 'actions', 'roles', 'permissions', 'grants',
                             'overrides', 'teams', 'team_members', 'admin_rights', 'requirements',
                             'protected_tables', 'protected_columns', 'template_applications',
                             'item_roles', 'item_role_actions']
    LOOP
        EXECUTE format('CREATE TRIGGER audit_change AFTER INSERT OR UPDATE OR DELETE
                        ON fluent.%I FOR EACH ROW EXECUTE FUNCTION fluent.audit_change()', t);
        EXECUTE format('CREATE TRIGGER audit_truncate AFTER TRUNCATE
                        ON fluent.%I FOR EACH STATEMENT EXECUTE FUNCTION fluent.audit_change()', t);
    END LOOP;
END
$$;

-- Who made a grant, an override, a review, a protection or a template
-- application, and when, is set here, never taken from the writer: a DBA
-- writing the catalog directly cannot attribute a change to someone else.
-- The role is the caller of the administration function (fluent._actor_role,
-- src/delegation.rs), not the catalog owner it runs as.
-- Restored rows (a superuser's COPY, see src/audit.rs) keep what they had.
CREATE FUNCTION fluent._stamp_attribution() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF fluent._restoring() THEN
        RETURN NEW;
    END IF;
    CASE TG_TABLE_NAME
    WHEN 'grants' THEN
        IF TG_OP = 'INSERT' THEN
            NEW.granted_at := now(); NEW.granted_by := fluent._actor_role();
            NEW.reviewed_at := NULL; NEW.reviewed_by := NULL;
        ELSE
            NEW.granted_at := OLD.granted_at; NEW.granted_by := OLD.granted_by;
            IF NEW.reviewed_at IS NULL THEN
                NEW.reviewed_by := NULL;
            ELSIF NEW.reviewed_at IS DISTINCT FROM OLD.reviewed_at THEN
                NEW.reviewed_at := now(); NEW.reviewed_by := fluent._actor_role();
            ELSE
                NEW.reviewed_by := OLD.reviewed_by;
            END IF;
        END IF;
    WHEN 'overrides' THEN
        NEW.set_at := now(); NEW.set_by := fluent._actor_role();
    WHEN 'protected_tables' THEN
        IF TG_OP = 'INSERT' THEN
            NEW.protected_at := now(); NEW.protected_by := fluent._actor_role();
        ELSE
            NEW.protected_at := OLD.protected_at; NEW.protected_by := OLD.protected_by;
        END IF;
    WHEN 'template_applications' THEN
        IF TG_OP = 'INSERT' THEN
            NEW.applied_at := now(); NEW.applied_by := fluent._actor_role();
        ELSE
            NEW.applied_at := OLD.applied_at; NEW.applied_by := OLD.applied_by;
        END IF;
    END CASE;
    RETURN NEW;
END $$;
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['grants', 'overrides', 'protected_tables', 'template_applications'] LOOP
        EXECUTE format('CREATE TRIGGER stamp_attribution BEFORE INSERT OR UPDATE
                        ON fluent.%I FOR EACH ROW EXECUTE FUNCTION fluent._stamp_attribution()', t);
    END LOOP;
END
$$;

-- The reporting line (users.manager_id) and the module tree
-- (modules.parent_id) stay trees, whoever writes them: every parent exists
-- (in the same workspace, for modules), there is no cycle, and deleting a
-- parent detaches (users) or deletes (modules) its children. These are
-- triggers, not self-referencing foreign keys, so that pg_dump, which dumps
-- the extension's data on its own, has no circular foreign keys to warn
-- about. Concurrent changes to one tree, deletions included, are serialized
-- on its row of fluent.invariant_guards: a later writer waits until the
-- earlier one ends, then sees its change (READ COMMITTED) or fails with
-- 40001 (REPEATABLE READ, SERIALIZABLE), so two changes that are each
-- valid alone cannot both commit and break the tree.
CREATE TABLE fluent.invariant_guards (
    invariant text PRIMARY KEY,
    changes   bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE fluent.invariant_guards IS
    'One row per catalog tree (reporting_line, module_tree): changes to a tree lock its row, so concurrent changes cannot combine into a broken tree';
INSERT INTO fluent.invariant_guards (invariant) VALUES ('reporting_line'), ('module_tree');

-- After inserts and updates. Arguments: the guard, the id column, the parent
-- column and the columns a parent must share with its child. SECURITY
-- DEFINER so that writers need no privilege on the guards; as a trigger
-- function it cannot be called any other way.
CREATE FUNCTION fluent._check_tree() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    same text := coalesce((SELECT string_agg(format(' AND t.%1$I = c.%1$I', col), '') FROM unnest(TG_ARGV[3:]) col), '');
    orphan text;
    looped text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM changed) THEN
        RETURN NULL;
    END IF;
    UPDATE fluent.invariant_guards SET changes = changes + 1 WHERE invariant = TG_ARGV[0];
    EXECUTE format('SELECT min(c.%2$I)::text FROM changed c
                     WHERE c.%2$I IS NOT NULL AND NOT EXISTS (SELECT 1 FROM fluent.%3$I t WHERE t.%1$I = c.%2$I%4$s)',
                   TG_ARGV[1], TG_ARGV[2], TG_TABLE_NAME, same)
       INTO orphan;
    IF orphan IS NOT NULL THEN
        RAISE EXCEPTION 'fluent.%.% names % %, which does not exist', TG_TABLE_NAME, TG_ARGV[2],
                        CASE TG_ARGV[0] WHEN 'reporting_line' THEN 'user' ELSE 'module' END, orphan
            USING ERRCODE = 'foreign_key_violation',
                  HINT = CASE TG_ARGV[0] WHEN 'reporting_line' THEN 'A manager must be a fluent user.'
                                         ELSE 'A parent must be a module of the same workspace.' END;
    END IF;
    EXECUTE format(
        'WITH RECURSIVE up (start, node) AS (
             SELECT c.%1$I, c.%2$I FROM changed c WHERE c.%2$I IS NOT NULL
             UNION
             SELECT up.start, t.%2$I FROM up JOIN fluent.%3$I t ON t.%1$I = up.node
              WHERE up.node <> up.start AND t.%2$I IS NOT NULL)
         SELECT min(start)::text FROM up WHERE node = start', TG_ARGV[1], TG_ARGV[2], TG_TABLE_NAME)
       INTO looped;
    IF looped IS NOT NULL THEN
        RAISE EXCEPTION 'fluent.% would have a cycle through % %', TG_TABLE_NAME, TG_ARGV[1], looped
            USING ERRCODE = 'check_violation',
                  HINT = CASE TG_ARGV[0] WHEN 'reporting_line' THEN 'A user cannot report to themselves, directly or through others.'
                                         ELSE 'A module cannot be its own parent, directly or through others.' END;
    END IF;
    RETURN NULL;
END $$;

-- After deletes: the children of what was deleted lose their manager
-- (users) or go too (modules, and theirs in turn). Arguments as above.
-- SECURITY INVOKER: whoever may delete a user or a module may write these
-- rows too, and the audit trail names them (and the end user they act for)
-- for the cascade as for the deletion, not the catalog owner. (Hence writers
-- may update the guards: sql/privileges.sql.)
CREATE FUNCTION fluent._detach_children() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    same text := coalesce((SELECT string_agg(format(' AND t.%1$I = d.%1$I', col), '') FROM unnest(TG_ARGV[3:]) col), '');
BEGIN
    -- (Deleting submodules fires this again: it ends where nothing was deleted.)
    IF NOT EXISTS (SELECT 1 FROM deleted) THEN
        RETURN NULL;
    END IF;
    UPDATE fluent.invariant_guards SET changes = changes + 1 WHERE invariant = TG_ARGV[0];
    IF TG_ARGV[0] = 'reporting_line' THEN
        EXECUTE format('UPDATE fluent.%3$I t SET %2$I = NULL FROM deleted d WHERE t.%2$I = d.%1$I%4$s',
                       TG_ARGV[1], TG_ARGV[2], TG_TABLE_NAME, same);
    ELSE
        EXECUTE format('DELETE FROM fluent.%3$I t USING deleted d WHERE t.%2$I = d.%1$I%4$s',
                       TG_ARGV[1], TG_ARGV[2], TG_TABLE_NAME, same);
    END IF;
    RETURN NULL;
END $$;

-- (A trigger with transition tables takes one event, hence one per event.)
DO $$
DECLARE
    t record;
    ev text;
BEGIN
    FOR t IN SELECT * FROM (VALUES ('users', 'reporting_line', 'user_id', 'manager_id', '{}'::text[]),
                                   ('modules', 'module_tree', 'module_id', 'parent_id', '{workspace_id}')) v(tbl, guard, id, parent, same)
    LOOP
        FOREACH ev IN ARRAY ARRAY['insert', 'update'] LOOP
            EXECUTE format('CREATE TRIGGER %I AFTER %s ON fluent.%I REFERENCING NEW TABLE AS changed
                            FOR EACH STATEMENT EXECUTE FUNCTION fluent._check_tree(%s)',
                           t.guard || '_is_a_tree_on_' || ev, ev, t.tbl,
                           (SELECT string_agg(quote_literal(a), ', ') FROM unnest(ARRAY[t.guard, t.id, t.parent] || t.same) a));
        END LOOP;
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON fluent.%I REFERENCING OLD TABLE AS deleted
                        FOR EACH STATEMENT EXECUTE FUNCTION fluent._detach_children(%s)',
                       t.guard || '_detaches_children', t.tbl,
                       (SELECT string_agg(quote_literal(a), ', ') FROM unnest(ARRAY[t.guard, t.id, t.parent] || t.same) a));
    END LOOP;
END
$$;

-- The audit log is append-only. Privileges already keep every role but the
-- owner from changing it; this also refuses a role that was granted UPDATE,
-- DELETE or TRUNCATE by mistake. The superuser test compares role OIDs.
CREATE FUNCTION fluent._audit_log_is_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT fluent._current_role_is_superuser() THEN
        RAISE EXCEPTION 'fluent.audit_log is append-only: entries cannot be changed or removed'
            USING ERRCODE = 'insufficient_privilege', HINT = 'Only a superuser may prune the audit trail.';
    END IF;
    IF TG_OP = 'UPDATE' THEN RETURN NEW; END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON fluent.audit_log
    FOR EACH ROW EXECUTE FUNCTION fluent._audit_log_is_append_only();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON fluent.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION fluent._audit_log_is_append_only();

-- The token settings hold secrets: superusers only, whoever was granted what.
CREATE FUNCTION fluent._token_settings_are_superuser_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT fluent._current_role_is_superuser() THEN
        RAISE EXCEPTION 'only superusers may change fluent.token_settings'
            USING ERRCODE = 'insufficient_privilege', HINT = 'The verification keys and rules are the server''s, not the application''s.';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER superuser_only BEFORE INSERT OR UPDATE OR DELETE ON fluent.token_settings
    FOR EACH ROW EXECUTE FUNCTION fluent._token_settings_are_superuser_only();
CREATE TRIGGER superuser_only_truncate BEFORE TRUNCATE ON fluent.token_settings
    FOR EACH STATEMENT EXECUTE FUNCTION fluent._token_settings_are_superuser_only();

-- fluent.assignable_roles (issue 19) is audited like the rest of the
-- catalog. It sends no invalidation and logs no change: no cache reads it.
CREATE TRIGGER audit_change AFTER INSERT OR UPDATE OR DELETE
    ON fluent.assignable_roles FOR EACH ROW EXECUTE FUNCTION fluent.audit_change();
CREATE TRIGGER audit_truncate AFTER TRUNCATE
    ON fluent.assignable_roles FOR EACH STATEMENT EXECUTE FUNCTION fluent.audit_change();

SET LOCAL search_path TO @extschema@, pg_temp;
