-- fluent catalog: the tables that describe who may do what.
--
-- Everything lives in schema `fluent`. Application roles get no privilege on
-- these tables: they are read by the extension's own cache loader (which runs
-- as the catalog owner, see src/catalog.rs) and written by DBAs who hold
-- `fluent_admin` through the fluent_* administration functions.
--
-- Every table that belongs to a workspace carries `workspace_id`, and foreign
-- keys include it, so a grant can never join a role of one tenant to a module
-- of another.

CREATE SCHEMA fluent;
COMMENT ON SCHEMA fluent IS 'fluent: permission catalog, reporting views and internal functions';

CREATE TYPE fluent.scope AS ENUM ('none', 'own', 'team', 'all');
COMMENT ON TYPE fluent.scope IS
    'How many rows an action reaches: none < own (owned or assigned) < team (plus led teams and reporting line) < all (whole workspace)';

CREATE TYPE fluent.user_status AS ENUM ('active', 'ghost', 'disabled');
COMMENT ON TYPE fluent.user_status IS
    'active users get what their roles grant; ghost and disabled users can own rows and be assigned but are granted nothing';

CREATE TABLE fluent.workspaces (
    workspace_id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (name <> ''),
    created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE fluent.workspaces IS 'Tenants. Roles, permissions, grants and teams belong to one workspace; workspace ''default'' always exists';
INSERT INTO fluent.workspaces (name) VALUES ('default');

CREATE TABLE fluent.users (
    user_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_key     text NOT NULL UNIQUE CHECK (user_key <> ''),
    display_name text,
    status       fluent.user_status NOT NULL DEFAULT 'active',
    manager_id   bigint REFERENCES fluent.users ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (manager_id <> user_id)
);
CREATE INDEX users_manager_id_idx ON fluent.users (manager_id);
COMMENT ON TABLE fluent.users IS 'End users of the application, identified by the key the application uses (id, uuid or e-mail); manager_id forms the reporting line';
COMMENT ON COLUMN fluent.users.user_key IS 'The value the application stores in owner and assignment columns, and passes to fluent_set_user()';

CREATE TABLE fluent.modules (
    module_id    int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id int NOT NULL REFERENCES fluent.workspaces ON DELETE CASCADE,
    name         text NOT NULL CHECK (name <> ''),
    parent_id    int,
    UNIQUE (workspace_id, name),
    UNIQUE (workspace_id, module_id),
    FOREIGN KEY (workspace_id, parent_id) REFERENCES fluent.modules (workspace_id, module_id) ON DELETE CASCADE
);
CREATE INDEX modules_parent_idx ON fluent.modules (workspace_id, parent_id);
COMMENT ON TABLE fluent.modules IS 'Areas of the application that permissions are given on; a submodule inherits its parent''s permission for an action unless a role sets it';

CREATE TABLE fluent.actions (
    action_id    int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id int NOT NULL,
    module_id    int NOT NULL,
    name         text NOT NULL CHECK (name <> ''),
    UNIQUE (module_id, name),
    UNIQUE (workspace_id, action_id),
    FOREIGN KEY (workspace_id, module_id) REFERENCES fluent.modules (workspace_id, module_id) ON DELETE CASCADE
);
COMMENT ON TABLE fluent.actions IS 'What can be done in a module: read, write, delete by default; others such as approve or export when declared';

CREATE TABLE fluent.roles (
    role_id      int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id int NOT NULL REFERENCES fluent.workspaces ON DELETE CASCADE,
    name         text NOT NULL CHECK (name <> ''),
    description  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, name),
    UNIQUE (workspace_id, role_id)
);
COMMENT ON TABLE fluent.roles IS 'Application roles (Owner, Admin, Scheduler, ...) of a workspace; not PostgreSQL roles';

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
    PRIMARY KEY (user_id, role_id),
    FOREIGN KEY (workspace_id, role_id) REFERENCES fluent.roles (workspace_id, role_id) ON DELETE CASCADE
);
CREATE INDEX grants_workspace_user_idx ON fluent.grants (workspace_id, user_id);
CREATE INDEX grants_role_idx ON fluent.grants (role_id);
COMMENT ON TABLE fluent.grants IS 'Roles held by users; a user''s scope on an action is the widest over the roles they hold';

CREATE TABLE fluent.teams (
    team_id      int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id int NOT NULL REFERENCES fluent.workspaces ON DELETE CASCADE,
    name         text NOT NULL CHECK (name <> ''),
    UNIQUE (workspace_id, name),
    UNIQUE (workspace_id, team_id)
);
COMMENT ON TABLE fluent.teams IS 'Teams of a workspace; their leads reach the rows of every member at scope team';

CREATE TABLE fluent.team_members (
    workspace_id int NOT NULL,
    team_id      int NOT NULL,
    user_id      bigint NOT NULL REFERENCES fluent.users ON DELETE CASCADE,
    is_lead      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (team_id, user_id),
    FOREIGN KEY (workspace_id, team_id) REFERENCES fluent.teams (workspace_id, team_id) ON DELETE CASCADE
);
CREATE INDEX team_members_user_idx ON fluent.team_members (user_id, workspace_id) WHERE is_lead;
COMMENT ON TABLE fluent.team_members IS 'Members of teams; is_lead marks the members who lead the team';

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
    rls_was_enabled       boolean NOT NULL,
    rls_was_forced        boolean NOT NULL,
    protected_at          timestamptz NOT NULL DEFAULT now(),
    protected_by          name NOT NULL DEFAULT current_user,
    CHECK (owner_column IS NOT NULL OR membership_table IS NOT NULL)
);
COMMENT ON TABLE fluent.protected_tables IS 'Application tables protected by fluent_protect(), with how their rows are tied to users and workspaces';
