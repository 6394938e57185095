-- fluent catalog: the tables that describe who may do what.
--
-- Everything lives in schema `fluent`. Application roles get no privilege on
-- these tables: they are read by the extension's own cache loader (which runs
-- as the catalog owner, see src/owner.rs) and written by DBAs who hold
-- `fluent_admin` through the fluent_* administration functions.
--
-- Every table that belongs to a workspace carries `workspace_id`, and foreign
-- keys include it, so a grant can never join a role of one tenant to a module
-- of another.

-- Everything below resolves names in pg_catalog and fluent's own schema only
-- (see "Install-time safety" in README.md); the extension schema comes back at the end.
SET LOCAL search_path TO pg_catalog, pg_temp;

CREATE SCHEMA fluent;
COMMENT ON SCHEMA fluent IS 'fluent: permission catalog, reporting views and internal functions';

CREATE TYPE fluent.scope AS ENUM ('none', 'own', 'direct', 'team', 'all');
COMMENT ON TYPE fluent.scope IS
    'How many rows an action reaches: none < own (owned or assigned) < direct (plus direct reports and members of led teams) < team (plus led teams and the whole reporting line) < all (whole workspace)';

CREATE TYPE fluent.user_status AS ENUM ('active', 'ghost', 'disabled', 'invited');
COMMENT ON TYPE fluent.user_status IS
    'active users get what their roles grant; ghost, disabled and invited users can own rows and be assigned but are granted nothing; invited users become active when they accept (fluent_accept_invitation)';

CREATE TABLE fluent.workspaces (
    workspace_id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (name <> '' AND char_length(name) <= 256),
    created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE fluent.workspaces IS 'Tenants. Roles, permissions, grants and teams belong to one workspace; workspace ''default'' always exists';
INSERT INTO fluent.workspaces (name) VALUES ('default');

CREATE TABLE fluent.users (
    user_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_key     text NOT NULL CHECK (user_key <> '' AND char_length(user_key) <= 256),
    display_name text,
    status       fluent.user_status NOT NULL DEFAULT 'active',
    -- A user, or NULL; a deleted manager's reports get NULL (sql/triggers.sql:
    -- a self-referencing foreign key would make pg_dump warn about circular
    -- foreign keys on every dump, since the extension's data is dumped alone).
    manager_id   bigint,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (manager_id <> user_id),
    -- Seed 000, "Inviting users": when an invitation (status invited) stops
    -- being acceptable; NULL: never. Compared as text: the 0.1.0 -> 0.2.0
    -- update adds the label 'invited' in its own transaction, where
    -- PostgreSQL refuses the new label as a value.
    invited_until timestamptz,
    CONSTRAINT users_invited_until_check CHECK (invited_until IS NULL OR status::text = 'invited'),
    -- The index holds what a user's first check reads (src/probes.rs reads
    -- it as an index-only scan would); so does each index by (workspace_id,
    -- user_id) below.
    CONSTRAINT users_user_key_key UNIQUE (user_key) INCLUDE (user_id, status)
);
CREATE INDEX users_manager_id_idx ON fluent.users (manager_id);
COMMENT ON TABLE fluent.users IS 'End users of the application, identified by the key the application uses (id, uuid or e-mail); manager_id forms the reporting line';
COMMENT ON COLUMN fluent.users.invited_until IS
    'An invited user''s invitation can be accepted (fluent_accept_invitation) until this instant (NULL: no expiry); NULL for every other status';
COMMENT ON COLUMN fluent.users.user_key IS 'The value the application stores in owner and assignment columns, and passes to fluent_set_user()';

CREATE TABLE fluent.modules (
    module_id    int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id int NOT NULL REFERENCES fluent.workspaces ON DELETE CASCADE,
    name         text NOT NULL CHECK (name <> '' AND char_length(name) <= 256),
    parent_id    int,
    enabled      boolean NOT NULL DEFAULT true,
    UNIQUE (workspace_id, name),
    UNIQUE (workspace_id, module_id),
    CHECK (parent_id <> module_id)
    -- parent_id is a module of the same workspace; deleting a module deletes
    -- its submodules (sql/triggers.sql, as for users.manager_id).
);
CREATE INDEX modules_parent_idx ON fluent.modules (workspace_id, parent_id);
COMMENT ON TABLE fluent.modules IS 'Areas of the application that permissions are given on; a submodule inherits its parent''s permission for an action unless a role sets it';
COMMENT ON COLUMN fluent.modules.enabled IS 'Feature gate (fluent_set_module_enabled): a disabled module, and every submodule of it, denies every action to everyone';

CREATE TABLE fluent.actions (
    action_id    int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id int NOT NULL,
    module_id    int NOT NULL,
    name         text NOT NULL CHECK (name <> '' AND char_length(name) <= 256),
    UNIQUE (module_id, name),
    UNIQUE (workspace_id, action_id),
    FOREIGN KEY (workspace_id, module_id) REFERENCES fluent.modules (workspace_id, module_id) ON DELETE CASCADE
);
COMMENT ON TABLE fluent.actions IS 'What can be done in a module: read, write, delete by default; others such as approve or export when declared';

CREATE TABLE fluent.roles (
    role_id      int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id int NOT NULL REFERENCES fluent.workspaces ON DELETE CASCADE,
    name         text NOT NULL CHECK (name <> '' AND char_length(name) <= 256),
    description  text,
    template      text,
    template_role text,
    privileged   boolean NOT NULL DEFAULT false,
    grants_sign_in boolean NOT NULL DEFAULT false,
    reporting_anchor boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, name),
    UNIQUE (workspace_id, role_id),
    CHECK ((template IS NULL) = (template_role IS NULL))
);
COMMENT ON TABLE fluent.roles IS 'Application roles (Owner, Admin, Scheduler, ...) of a workspace; not PostgreSQL roles';
COMMENT ON COLUMN fluent.roles.template IS 'The template the role was created from (fluent_apply_template), NULL for a custom role';
COMMENT ON COLUMN fluent.roles.template_role IS 'The template role whose defaults fluent_reset_role() restores';
COMMENT ON COLUMN fluent.roles.privileged IS 'An owner/admin-level role: its holders are listed in fluent.privileged_users';
COMMENT ON COLUMN fluent.roles.reporting_anchor IS
    'Its holders anchor the reporting line of everyone below them (seed 003: the accountable executive), shown in fluent.reporting_lines';
COMMENT ON COLUMN fluent.roles.grants_sign_in IS 'A sign-in role: once a workspace has one, users must hold one of them to act there (fluent_set_user refuses others)';

CREATE TABLE fluent.permissions (
    workspace_id int NOT NULL,
    role_id      int NOT NULL,
    action_id    int NOT NULL,
    scope        fluent.scope NOT NULL,
    PRIMARY KEY (role_id, action_id),
    FOREIGN KEY (workspace_id, role_id) REFERENCES fluent.roles (workspace_id, role_id) ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, action_id) REFERENCES fluent.actions (workspace_id, action_id) ON DELETE CASCADE
);
CREATE INDEX permissions_action_idx ON fluent.permissions (action_id);
COMMENT ON TABLE fluent.permissions IS 'The scope a role gives on one action of one module; an explicit ''none'' stops inheritance from the parent module';

CREATE TABLE fluent.grants (
    workspace_id int NOT NULL,
    user_id      bigint NOT NULL REFERENCES fluent.users ON DELETE CASCADE,
    role_id      int NOT NULL,
    granted_at   timestamptz NOT NULL DEFAULT now(),
    granted_by   name NOT NULL DEFAULT current_user,
    reviewed_at  timestamptz,
    reviewed_by  name,
    valid_until  timestamptz,
    PRIMARY KEY (user_id, role_id),
    FOREIGN KEY (workspace_id, role_id) REFERENCES fluent.roles (workspace_id, role_id) ON DELETE CASCADE
);
CREATE INDEX grants_workspace_user_idx ON fluent.grants (workspace_id, user_id) INCLUDE (role_id, valid_until);
CREATE INDEX grants_role_idx ON fluent.grants (role_id);
COMMENT ON TABLE fluent.grants IS 'Roles held by users; a user''s scope on an action is the widest over the roles they hold';
COMMENT ON COLUMN fluent.grants.reviewed_at IS 'When the grant was last confirmed in an access review (fluent_mark_reviewed); NULL if never';
COMMENT ON COLUMN fluent.grants.valid_until IS 'Temporary access: the grant stops counting at this instant (NULL: until revoked); the row stays, for the access review';

CREATE TABLE fluent.overrides (
    workspace_id int NOT NULL,
    user_id      bigint NOT NULL REFERENCES fluent.users ON DELETE CASCADE,
    action_id    int NOT NULL,
    scope        fluent.scope NOT NULL,
    set_at       timestamptz NOT NULL DEFAULT now(),
    set_by       name NOT NULL DEFAULT current_user,
    valid_until  timestamptz,
    PRIMARY KEY (user_id, action_id),
    FOREIGN KEY (workspace_id, action_id) REFERENCES fluent.actions (workspace_id, action_id) ON DELETE CASCADE
);
CREATE INDEX overrides_workspace_user_idx ON fluent.overrides (workspace_id, user_id)
    INCLUDE (action_id, scope, set_by, valid_until);
CREATE INDEX overrides_action_idx ON fluent.overrides (action_id);
COMMENT ON TABLE fluent.overrides IS
    'Per-user exceptions: the scope replaces what the user''s roles give on that action (wider or narrower; none denies), and on the same action of submodules without an override of their own';

COMMENT ON COLUMN fluent.overrides.valid_until IS 'Temporary access: the override stops counting at this instant (NULL: until cleared)';

-- Whether a grant or override with this expiry counts now. "Now" is the
-- transaction's start, as for now(): a transaction sees one consistent set of
-- permissions, and the cache (src/cache.rs) compares expiries with the same
-- instant. Inlined where it is used.
CREATE FUNCTION fluent._in_force(valid_until timestamptz) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
RETURN valid_until IS NULL OR valid_until > now();

CREATE TABLE fluent.teams (
    team_id      int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id int NOT NULL REFERENCES fluent.workspaces ON DELETE CASCADE,
    name         text NOT NULL CHECK (name <> '' AND char_length(name) <= 256),
    UNIQUE (workspace_id, name),
    UNIQUE (workspace_id, team_id)
);
COMMENT ON TABLE fluent.teams IS 'Teams of a workspace; their leads reach the rows of every member at scopes direct and team';

CREATE TABLE fluent.team_members (
    workspace_id int NOT NULL,
    team_id      int NOT NULL,
    user_id      bigint NOT NULL REFERENCES fluent.users ON DELETE CASCADE,
    is_lead      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (team_id, user_id),
    FOREIGN KEY (workspace_id, team_id) REFERENCES fluent.teams (workspace_id, team_id) ON DELETE CASCADE
);
CREATE INDEX team_members_user_idx ON fluent.team_members (user_id, workspace_id) WHERE is_lead;
-- The teams a user is in: assignments to a team give its members item roles.
CREATE INDEX team_members_member_idx ON fluent.team_members (user_id, workspace_id);
COMMENT ON TABLE fluent.team_members IS 'Members of teams; is_lead marks the members who lead the team';

-- Access roles that gate a module (seeds 002/003: "Project Access is needed
-- in order for the account to have access to the Fluid Projects module"): a
-- module, or one of its actions, requires another permission; a user who
-- holds it at no scope gets nothing else on the module.
CREATE TABLE fluent.requirements (
    workspace_id       int NOT NULL,
    module_id          int NOT NULL,
    action_id          int,
    required_action_id int NOT NULL,
    UNIQUE NULLS NOT DISTINCT (module_id, action_id),
    FOREIGN KEY (workspace_id, module_id) REFERENCES fluent.modules (workspace_id, module_id) ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, action_id) REFERENCES fluent.actions (workspace_id, action_id) ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, required_action_id) REFERENCES fluent.actions (workspace_id, action_id) ON DELETE CASCADE
);
COMMENT ON TABLE fluent.requirements IS
    'A module (action_id NULL: every action but the required one) or one action that requires another permission: without it at some scope, nothing else there counts';

-- Item roles (seeds 002/003: a user "assigned a role on a project", "editorial
-- rights on certain items", "inclusion in teams or assignment to projects"):
-- roles held on one item, not on the module. Each gives a set of the
-- module's actions on the items where a user (or a team of theirs) holds it,
-- through an assignment table of the application's (fluent_protect's
-- membership_role_column). An item role may require a workspace role or
-- permission of whoever is assigned it ("a person has to have the
-- accountable executive role to be named as an accountable executive").
CREATE TABLE fluent.item_roles (
    item_role_id       int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id       int NOT NULL,
    module_id          int NOT NULL,
    name               text NOT NULL CHECK (name <> '' AND char_length(name) <= 256),
    description        text,
    required_role_id   int,
    required_action_id int,
    UNIQUE (module_id, name),
    UNIQUE (workspace_id, item_role_id),
    FOREIGN KEY (workspace_id, module_id) REFERENCES fluent.modules (workspace_id, module_id) ON DELETE CASCADE,
    -- (No cascade: a role or permission still required cannot go silently.)
    FOREIGN KEY (workspace_id, required_role_id) REFERENCES fluent.roles (workspace_id, role_id),
    FOREIGN KEY (workspace_id, required_action_id) REFERENCES fluent.actions (workspace_id, action_id)
);
CREATE INDEX item_roles_required_role_idx ON fluent.item_roles (required_role_id);
CREATE INDEX item_roles_required_action_idx ON fluent.item_roles (required_action_id);
COMMENT ON TABLE fluent.item_roles IS
    'Roles held on one item of a protected table (through its assignment table), each giving some of the module''s actions there; required_role_id or required_action_id: what an assignee must hold in the workspace';

CREATE TABLE fluent.item_role_actions (
    workspace_id int NOT NULL,
    item_role_id int NOT NULL,
    action_id    int NOT NULL,
    PRIMARY KEY (item_role_id, action_id),
    FOREIGN KEY (workspace_id, item_role_id) REFERENCES fluent.item_roles (workspace_id, item_role_id) ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, action_id) REFERENCES fluent.actions (workspace_id, action_id) ON DELETE CASCADE
);
CREATE INDEX item_role_actions_action_idx ON fluent.item_role_actions (action_id);
COMMENT ON TABLE fluent.item_role_actions IS 'The module actions each item role gives on the items where it is held';

CREATE TYPE fluent.admin_right AS ENUM ('manage_users', 'assign_roles', 'manage_roles', 'assign_beyond_own');
COMMENT ON TYPE fluent.admin_right IS
    'What end users may be delegated: manage_users (create, status, manager, teams), assign_roles (grant, revoke, overrides, reviews), manage_roles (create, clone, reset, alter, drop, permissions), assign_beyond_own (give permissions beyond one''s own)';

CREATE TABLE fluent.admin_rights (
    workspace_id int NOT NULL,
    admin_right  fluent.admin_right NOT NULL,
    action_id    int NOT NULL,
    PRIMARY KEY (workspace_id, admin_right, action_id),
    FOREIGN KEY (workspace_id, action_id) REFERENCES fluent.actions (workspace_id, action_id) ON DELETE CASCADE
);
CREATE INDEX admin_rights_action_idx ON fluent.admin_rights (action_id);
COMMENT ON TABLE fluent.admin_rights IS
    'Delegated administration: an end user who holds the action at scope all holds the right in the workspace, and the administration functions act for them (never beyond their own powers)';

-- What changed, for the per-backend caches (src/cache.rs): each catalog
-- write logs which users, roles, workspace models (modules, actions,
-- requirements, administrative rights, item roles), workspaces or team sets
-- it can affect, in its own transaction; a backend told by an invalidation
-- message that the catalog changed reads the entries of transactions that
-- were still running or started after its last look (by transaction id, so a
-- change that commits late is not skipped) and drops those cache entries only. Entries older
-- than ten minutes are pruned; a backend that looked before the pruning
-- horizon drops everything. Not dumped, not audited: cache bookkeeping.
CREATE TABLE fluent.changes (
    xid          xid8 NOT NULL DEFAULT pg_current_xact_id(),
    at           timestamptz NOT NULL DEFAULT now(),
    workspace_id int,
    kind         text NOT NULL CHECK (kind IN ('user', 'role', 'workspace', 'teams', 'lead', 'model')),
    id           bigint
);
CREATE INDEX changes_xid_idx ON fluent.changes (xid);
CREATE INDEX changes_at_idx ON fluent.changes (at);
COMMENT ON TABLE fluent.changes IS
    'Which cached users (id = user_id), compiled roles (id = role_id), workspace models (kind model), workspaces and team sets (kind teams: of the leads of team id, every one for a NULL id; kind lead: of user id) each catalog write can affect; NULL workspace_id: every workspace';
CREATE TABLE fluent.change_horizon (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    pruned_below xid8 NOT NULL DEFAULT '0'
);
INSERT INTO fluent.change_horizon DEFAULT VALUES;
COMMENT ON TABLE fluent.change_horizon IS 'Entries of fluent.changes at or below this transaction id were pruned';
-- The relation whose relcache invalidation tells every backend that the
-- catalog changed (src/cache.rs). It has no rows and no query reads it, so
-- the message invalidates only the plans that record it on purpose (those
-- that folded the acting user's answers, src/plans.rs): a catalog table as
-- sentinel would make every backend plan again, at each change, each kept
-- query that reads that table.
CREATE TABLE fluent.cache_sentinel ();
COMMENT ON TABLE fluent.cache_sentinel IS
    'No rows: its relcache invalidation tells every backend that the permission catalog changed';

-- How fluent_authenticate verifies tokens (src/identity.rs, src/token.rs).
-- One row. Only superusers may write it (sql/triggers.sql) and nobody else
-- may read it: it holds the HMAC secrets. Not a setting, because settings
-- are readable before the library loads and ALTER DATABASE/ROLE SET values
-- are readable by everyone in pg_db_role_setting. Not dumped: keys are
-- deployment secrets, set again after a restore.
CREATE TABLE fluent.token_settings (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    keys             jsonb CHECK (keys IS NULL OR jsonb_typeof(keys -> 'keys') = 'array'),
    audiences        text[] NOT NULL DEFAULT '{}',
    issuer           text,
    leeway_seconds   int NOT NULL DEFAULT 30 CHECK (leeway_seconds BETWEEN 0 AND 300),
    user_claim       text NOT NULL DEFAULT 'sub' CHECK (user_claim <> ''),
    workspace_claim  text CHECK (workspace_claim <> ''),
    unknown_subject  text NOT NULL DEFAULT 'refuse' CHECK (unknown_subject IN ('refuse', 'create')),
    new_user_roles   text[] NOT NULL DEFAULT '{}'
);
INSERT INTO fluent.token_settings DEFAULT VALUES;
COMMENT ON TABLE fluent.token_settings IS
    'How fluent_authenticate() verifies tokens: keys (a JSON Web Key Set), audiences and issuer (NULL/empty: not checked), leeway for exp and nbf, the claims holding the user and workspace, and what an unknown subject gets (refuse, or create with new_user_roles). Superusers only';

CREATE TABLE fluent.protected_tables (
    table_name            regclass PRIMARY KEY,
    module                text NOT NULL,
    owner_column          name,
    owner_type            text CHECK (owner_type IN ('text', 'int', 'uuid')),
    membership_table      regclass,
    membership_row_column name,
    membership_user_column name,
    row_column            name,
    workspace_column      name,
    select_action         text NOT NULL DEFAULT 'read',
    insert_action         text NOT NULL DEFAULT 'write',
    update_action         text NOT NULL DEFAULT 'write',
    delete_action         text NOT NULL DEFAULT 'delete',
    rls_was_enabled       boolean NOT NULL,
    rls_was_forced        boolean NOT NULL,
    membership_rls_was_enabled boolean,
    membership_rls_was_forced  boolean,
    policies              jsonb NOT NULL DEFAULT '{}',
    membership_policies   jsonb,
    protected_at          timestamptz NOT NULL DEFAULT now(),
    protected_by          name NOT NULL DEFAULT current_user,
    masked_view           regclass,
    membership_role_column name,
    membership_team_column name,
    parent_table          regclass,
    parent_column         name,
    CHECK (owner_column IS NOT NULL OR membership_table IS NOT NULL OR parent_table IS NOT NULL)
);
COMMENT ON TABLE fluent.protected_tables IS
    'Application tables protected by fluent_protect() (with their partitions and inheritance children), with how their rows are tied to users and workspaces';
COMMENT ON COLUMN fluent.protected_tables.insert_action IS
    'The module action that governs INSERT (likewise select_, update_ and delete_action for their commands), e.g. create';
COMMENT ON COLUMN fluent.protected_tables.policies IS
    'The policies fluent_protect() created, as PostgreSQL prints them: what fluent.protection_status compares the table and its children against';
COMMENT ON COLUMN fluent.protected_tables.masked_view IS
    'The view fluent_protect_columns() created, which shows the table with its limited columns masked (NULL) for users without the permission to read them';
COMMENT ON COLUMN fluent.protected_tables.membership_role_column IS
    'The membership column naming an item role of the module (fluent.item_roles): the membership table is then an assignment table, whose rows give their item role''s actions on the row they name';
COMMENT ON COLUMN fluent.protected_tables.membership_team_column IS
    'The assignment column naming a team (fluent.teams): every member of the team holds the row''s item role';
COMMENT ON COLUMN fluent.protected_tables.parent_table IS
    'For the rows of a child table (a project''s tasks): the protected table whose item roles apply to them, through parent_column';
COMMENT ON COLUMN fluent.protected_tables.membership_policies IS
    'The policies fluent_protect() created on the membership table, which keep its writes within the writer''s reach';

-- Column-level limits (seed 001: "Some workspaces restrict Billing from
-- seeing interpreter personal data"; "allow Schedulers to edit interpreters
-- (basic fields only)"): reading the column takes module.read_action,
-- changing it module.write_action, each at a scope that reaches the row.
CREATE TABLE fluent.protected_columns (
    table_name   regclass NOT NULL REFERENCES fluent.protected_tables ON DELETE CASCADE,
    column_name  name NOT NULL,
    module       text NOT NULL,
    read_action  text NOT NULL,
    write_action text NOT NULL,
    PRIMARY KEY (table_name, column_name)
);
COMMENT ON TABLE fluent.protected_columns IS
    'Columns of protected tables limited by fluent_protect_columns(): masked in the table''s masked view without module.read_action, unchangeable without module.write_action (each at a scope reaching the row)';

CREATE TABLE fluent.template_applications (
    application_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id   int NOT NULL REFERENCES fluent.workspaces ON DELETE CASCADE,
    template       text NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now(),
    applied_by     name NOT NULL DEFAULT current_user
);
COMMENT ON TABLE fluent.template_applications IS 'Every fluent_apply_template() call: which template, where, when and by whom';

-- The audit trail. Rows are written by the trigger fluent.audit_change on
-- every catalog table, as the catalog owner: no other role may insert,
-- update or delete them (see sql/privileges.sql and sql/triggers.sql).
CREATE TABLE fluent.audit_log (
    audit_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    changed_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    db_role        name NOT NULL,
    session_role   name NOT NULL DEFAULT session_user,
    acting_user    text,
    workspace_id   int,
    table_name     text NOT NULL,
    operation      text NOT NULL CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')),
    before         jsonb,
    after          jsonb
);
CREATE INDEX audit_log_changed_at_idx ON fluent.audit_log (changed_at);
COMMENT ON TABLE fluent.audit_log IS
    'Every change to the fluent catalog, written in the changing transaction (a rollback leaves no entry); append-only for everyone but superusers';
COMMENT ON COLUMN fluent.audit_log.db_role IS 'The database role that made the change (current_user at the time)';
COMMENT ON COLUMN fluent.audit_log.session_role IS 'The role the session logged in as';
COMMENT ON COLUMN fluent.audit_log.acting_user IS 'The acting end user (fluent_set_user), if one was set';
COMMENT ON COLUMN fluent.audit_log.table_name IS 'The catalog table changed, such as grants, permissions or overrides';
COMMENT ON COLUMN fluent.audit_log.before IS 'The row before the change (UPDATE, DELETE), as JSON';
COMMENT ON COLUMN fluent.audit_log.after IS 'The row after the change (INSERT, UPDATE), as JSON';

-- pg_dump keeps what users put in the catalog; rows created by the
-- extension script itself (the default workspace) are recreated by it.
-- (One call per statement: each call updates the extension's catalog row.)
SELECT pg_catalog.pg_extension_config_dump('fluent.workspaces', 'WHERE name <> ''default''');
DO $$
DECLARE
    t regclass;
    c text;
BEGIN
    FOREACH t IN ARRAY ARRAY['fluent.users', 'fluent.modules', 'fluent.actions', 'fluent.roles', 'fluent.permissions',
                             'fluent.grants', 'fluent.overrides', 'fluent.teams', 'fluent.team_members',
                             'fluent.admin_rights', 'fluent.requirements', 'fluent.protected_tables', 'fluent.protected_columns',
                             'fluent.template_applications', 'fluent.item_roles', 'fluent.item_role_actions',
                             'fluent.audit_log']::regclass[]
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(t, '');
    END LOOP;
    -- ... and the identity sequences, so restored rows keep their ids and new ones do not collide.
    FOR t, c IN SELECT attrelid::regclass, attname FROM pg_catalog.pg_attribute
                 WHERE attidentity <> '' AND attrelid IN (SELECT oid FROM pg_catalog.pg_class
                                                           WHERE relnamespace = 'fluent'::regnamespace)
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence(t::text, c), '');
    END LOOP;
END
$$;

-- Assignable roles (issue 19; seed 000: Owner "everything", Admin "most
-- settings + user management"; seed 003: the timesheet administrator manages
-- "the exempt user group and timesheet admin user group"): per role, the
-- roles its holders may grant, revoke, clone, reset and drop as delegated
-- administrators, in addition to the escalation rule. Like sign-in roles,
-- the rule holds in a workspace once it lists any: there, a role without
-- rows lets its holders assign nothing. DBAs are not bound by it. Read in SQL by the delegation
-- checks (sql/admin.sql), as the catalog owner; no cache holds it.
CREATE TABLE fluent.assignable_roles (
    workspace_id       int NOT NULL,
    role_id            int NOT NULL,
    assignable_role_id int NOT NULL,
    PRIMARY KEY (role_id, assignable_role_id),
    FOREIGN KEY (workspace_id, role_id) REFERENCES fluent.roles (workspace_id, role_id) ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, assignable_role_id) REFERENCES fluent.roles (workspace_id, role_id) ON DELETE CASCADE
);
CREATE INDEX assignable_roles_assignable_idx ON fluent.assignable_roles (assignable_role_id);
CREATE INDEX assignable_roles_workspace_idx ON fluent.assignable_roles (workspace_id);
COMMENT ON TABLE fluent.assignable_roles IS
    'Delegated administration: the roles (assignable_role_id) that holders of role_id may grant, revoke, clone, reset and drop; once a workspace lists any, a delegated administrator manages only roles that a role they hold lists';
SELECT pg_catalog.pg_extension_config_dump('fluent.assignable_roles', '');

SET LOCAL search_path TO @extschema@, pg_temp;
