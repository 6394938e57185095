//! The errors fluent raises, each mapped to its message, SQLSTATE and hint
//! here and nowhere else. The PL/pgSQL administration functions raise the
//! ones they share with Rust (unknown names, NULL arguments) through
//! `fluent._raise(error, args)`, so both speak with one voice.

use std::borrow::Cow;

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FluentError {
    /// A module, role or team name the current workspace does not have.
    NotInWorkspace {
        kind: &'static str,
        name: String,
        workspace: String,
    },
    /// An action the module does not declare (with the ones it does, when known).
    UnknownAction {
        module: String,
        action: String,
        known: Option<String>,
    },
    /// A user key that is not in `fluent.users`.
    UnknownUser { user: String },
    /// A workspace name that is not in `fluent.workspaces`.
    UnknownWorkspace { workspace: String },
    /// A user who may not act (ghost, disabled or invited).
    UserCannotSignIn { user: String, status: String },
    /// A user without a sign-in role in a workspace that has sign-in roles.
    NoSignInRole { user: String, workspace: String },
    /// The caller may not see another user's permissions.
    OthersPermissionsDenied { user: String },
    /// The caller may not list who may act on a row (everyone's permissions).
    WhoCanDenied { table: String },
    /// The audit trigger attached to a table outside the fluent catalog.
    NotCatalogTable { table: String },
    /// A NULL where a value is required.
    NullArgument {
        argument: Cow<'static, str>,
        hint: &'static str,
    },
    /// The calling role is not trusted to choose the acting user or workspace.
    NotTrusted { what: &'static str },
    /// The calling role is a member of a trusted role but does not inherit
    /// its privileges (NOINHERIT).
    TrustedOnlyAfterSetRole { denied: String, role: String },
    /// The calling role may not administer fluent.
    NotAdmin,
    /// The identity was chosen by an authenticator already in this
    /// transaction or session; only a token may change it.
    IdentitySealed { what: &'static str },
    /// `fluent.token_settings.keys` is not set.
    TokensNotConfigured,
    /// `fluent.token_settings.keys` does not hold a usable key set.
    TokenKeysInvalid { reason: String },
    /// A token failed verification.
    TokenRefused { reason: String },
    /// An administration implementation called without a valid caller ticket.
    NoCallerTicket,
    /// Administration attempted on a hot standby.
    OnStandby,
    /// A write to the catalog on a Citus worker: the coordinator's catalog
    /// is the one written (sql/citus.sql).
    OnCitusWorker,
    /// Choosing the acting user on a Citus worker (it is the coordinator's).
    IdentityOnCitusWorker,
    /// `fluent_citus_setup()` where it cannot run.
    CitusSetup { reason: &'static str },
    /// On the Citus coordinator, a propagated `SET LOCAL` sharing its query
    /// string with other statements (src/citus.rs).
    CitusSetBesideStatements,
    /// On the Citus coordinator, a protected Citus table read after the
    /// transaction changed the catalog (src/citus.rs).
    CitusReadAfterChange,
    /// On the Citus coordinator, a propagated `SET LOCAL search_path`.
    CitusSetSearchPath,
    /// On Citus, a protected table whose policies would read another table
    /// that is not on the same nodes as the rows they protect.
    CitusLayout { table: String, other: String },
    /// A Citus worker asked to apply catalog rows with a setting that reads
    /// them otherwise than the coordinator wrote them.
    CitusApplySettings { setting: String },
    /// `fluent.rls_local_rows` asked for another type than its sample's.
    LocalRowsType { expected: String, found: String },
    /// `fluent_who_can` on a Citus table could not read its rows on a node.
    CitusRowsUnread {
        table: String,
        node: String,
        message: String,
    },
    /// `fluent.citus_audit_log` could not read a node's audit log.
    CitusAuditUnread { node: String, message: String },
    /// On a Citus node, a shard that a request of `fluent_who_can` names is
    /// not there.
    CitusShardMissing { shard: String },
    /// `fluent_who_can` on a Citus table this transaction locked exclusively.
    CitusRowsLocked { table: String },
    /// On a Citus node, a table inherits from a shard `fluent_who_can` reads.
    CitusShardChild { child: String },
    /// On a Citus node, a request to read a row that the coordinator did not
    /// sign for this role, or that expired.
    CitusRowRequest,
    /// On Citus, item roles on a reference table.
    CitusItemRoles { table: String },
    /// On Citus, column limits on a Citus table.
    CitusColumnLimits { table: String },
    /// A trigger function called as a plain function.
    NotCalledAsTrigger { function: &'static str },
    /// A `local` setting made outside a transaction block (a warning).
    LocalOutsideTransaction { function: &'static str },
    /// Another version's library is loaded in this backend already.
    OtherVersionLoaded,
    /// `fluent_who_can` found no row with the key (in the caller's workspace).
    WhoCanNoRow {
        table: String,
        column: String,
        key: String,
        workspace: Option<String>,
    },
    /// `fluent_who_can` found several rows with the key.
    WhoCanManyRows {
        table: String,
        rows: i64,
        column: String,
        key: String,
    },
    /// `fluent_who_can` cannot find rows by a key of this type without
    /// running the type owner's code.
    WhoCanKeyType {
        table: String,
        column: String,
        typ: String,
    },
    /// `fluent_who_can` reads heap tables only.
    WhoCanNotHeap { table: String },
    /// The acting user or workspace changed while a statement that folded
    /// the previous one's answers was being planned.
    IdentityChangedWhilePlanning,
    /// A catalog change became visible between the folding of a plan's
    /// answers and its run, and neither snapshot matches the answers
    /// (src/gate.rs, src/planning_snapshot.rs).
    ChangedWhilePlanning,
    /// A plan that folded the acting user's answers (a function's query, a
    /// kept plan) starts under a snapshot that shows a change of them
    /// (src/planning_snapshot.rs).
    ChangedWhileRunning,
}

impl FluentError {
    fn sqlstate(&self) -> PgSqlErrorCode {
        use FluentError::*;
        match self {
            NotInWorkspace { .. }
            | UnknownAction { .. }
            | UnknownUser { .. }
            | UnknownWorkspace { .. } => PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            UserCannotSignIn { .. } | NoSignInRole { .. } => {
                PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION
            }
            OthersPermissionsDenied { .. }
            | WhoCanDenied { .. }
            | IdentitySealed { .. }
            | NoCallerTicket => PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            TokensNotConfigured
            | TokenKeysInvalid { .. }
            | OtherVersionLoaded
            | IdentityChangedWhilePlanning => {
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
            }
            ChangedWhilePlanning | ChangedWhileRunning => {
                PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE
            }
            TokenRefused { .. } => PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            OnStandby => PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            OnCitusWorker
            | IdentityOnCitusWorker
            | CitusSetup { .. }
            | CitusApplySettings { .. } => PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            LocalRowsType { .. } => PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            CitusRowsUnread { .. } | CitusAuditUnread { .. } => {
                PgSqlErrorCode::ERRCODE_CONNECTION_EXCEPTION
            }
            CitusRowRequest => PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            CitusRowsLocked { .. } => PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
            CitusShardMissing { .. } => PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            CitusShardChild { .. } => PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            CitusLayout { .. }
            | CitusItemRoles { .. }
            | CitusColumnLimits { .. }
            | CitusSetBesideStatements
            | CitusSetSearchPath
            | CitusReadAfterChange => PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            NotCatalogTable { .. } => PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            NullArgument { .. } => PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            NotTrusted { .. } | TrustedOnlyAfterSetRole { .. } | NotAdmin => {
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE
            }
            NotCalledAsTrigger { .. } => PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            LocalOutsideTransaction { .. } => PgSqlErrorCode::ERRCODE_NO_ACTIVE_SQL_TRANSACTION,
            WhoCanNoRow { .. } => PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
            WhoCanManyRows { .. } => PgSqlErrorCode::ERRCODE_CARDINALITY_VIOLATION,
            WhoCanKeyType { .. } | WhoCanNotHeap { .. } => {
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED
            }
        }
    }

    pub fn message(&self) -> String {
        use FluentError::*;
        match self {
            NotInWorkspace {
                kind,
                name,
                workspace,
            } => {
                format!("fluent {kind} \"{name}\" does not exist in workspace \"{workspace}\"")
            }
            UnknownAction { module, action, .. } => {
                format!("fluent module \"{module}\" has no action \"{action}\"")
            }
            UnknownUser { user } => format!("fluent user \"{user}\" does not exist"),
            UnknownWorkspace { workspace } => {
                format!("fluent workspace \"{workspace}\" does not exist")
            }
            UserCannotSignIn { user, status } => {
                format!("fluent user \"{user}\" is {status} and cannot act")
            }
            NoSignInRole { user, workspace } => {
                format!("fluent user \"{user}\" holds no sign-in role in workspace \"{workspace}\" and cannot act")
            }
            OthersPermissionsDenied { user } => {
                format!("permission denied to read the permissions of fluent user \"{user}\"")
            }
            WhoCanDenied { table } => {
                format!("permission denied to list who may act on rows of \"{table}\"")
            }
            IdentitySealed { what } => {
                format!("permission denied to change the fluent {what}: the identity was already chosen")
            }
            TokensNotConfigured => {
                "fluent cannot verify tokens: fluent.token_settings has no keys".into()
            }
            TokenKeysInvalid { reason } => {
                format!("the keys in fluent.token_settings are not usable: {reason}")
            }
            TokenRefused { reason } => format!("fluent token refused: {reason}"),
            NoCallerTicket => {
                "permission denied to call a fluent administration implementation directly".into()
            }
            OnStandby => {
                "fluent administration runs on the primary, and this server is a hot standby".into()
            }
            OnCitusWorker => {
                "fluent administration runs on the Citus coordinator, and this node is a worker".into()
            }
            IdentityOnCitusWorker => {
                "the fluent acting user is chosen on the Citus coordinator, and this node is a worker".into()
            }
            CitusSetup { reason } => format!("fluent_citus_setup() cannot run: {reason}"),
            CitusReadAfterChange => "on Citus, a transaction that changed fluent's catalog cannot read the tables fluent protects on the workers".into(),
            CitusSetSearchPath => "on Citus, SET LOCAL search_path cannot be propagated to the workers".into(),
            CitusSetBesideStatements => "on Citus, SET LOCAL, RESET and SET TRANSACTION must be sent alone, not with other statements in one query string".into(),
            CitusLayout { table, other } => format!(
                "on Citus, the policies of \"{table}\" can read \"{other}\" only if both are reference tables or both are distributed, co-located and joined by a foreign key on their distribution columns"
            ),
            CitusApplySettings { setting } => format!(
                "fluent applies the coordinator's catalog changes only with the replicator's {setting}"
            ),
            LocalRowsType { expected, found } => format!(
                "fluent.rls_local_rows: the rows read are of type {found}, not {expected} as the sample says"
            ),
            CitusAuditUnread { node, message } => format!(
                "fluent could not read the audit log of Citus node {node}: {message}"
            ),
            CitusRowsUnread {
                table,
                node,
                message,
            } => format!(
                "fluent_who_can could not read the rows of \"{table}\" on Citus node {node}: {message}"
            ),
            CitusShardMissing { shard } => format!(
                "shard {shard} of a protected table is not on this Citus node"
            ),
            CitusShardChild { child } => format!(
                "{child} inherits from a shard of a protected table on this Citus node"
            ),
            CitusRowsLocked { table } => format!(
                "fluent_who_can cannot read the rows of \"{table}\" on the Citus nodes in a transaction that locked it exclusively"
            ),
            CitusRowRequest => "this request to read a row was not made by fluent_who_can on the coordinator for the current role, or it expired".into(),
            CitusItemRoles { table } => format!(
                "on Citus, item roles need distributed tables, and \"{table}\" is a reference table"
            ),
            CitusColumnLimits { table } => format!(
                "on Citus, fluent does not support column limits on \"{table}\" yet"
            ),
            WhoCanNoRow {
                table,
                column,
                key,
                workspace,
            } => match workspace {
                Some(ws) => format!("table \"{table}\" has no row with {column} = {key} in workspace \"{ws}\""),
                None => format!("table \"{table}\" has no row with {column} = {key}"),
            },
            WhoCanManyRows {
                table,
                rows,
                column,
                key,
            } => format!("table \"{table}\" has {rows} rows with {column} = {key}"),
            WhoCanKeyType { table, column, typ } => format!(
                "fluent_who_can cannot look rows of \"{table}\" up by column \"{column}\" of type {typ}"
            ),
            WhoCanNotHeap { table } => {
                format!("fluent_who_can cannot read \"{table}\": it is not stored in a heap")
            }
            OtherVersionLoaded => {
                "this session has another version of the fluent library loaded".into()
            }
            IdentityChangedWhilePlanning => {
                "the fluent acting user or workspace changed while the statement was planned".into()
            }
            ChangedWhilePlanning => {
                "could not run the statement: a change of permissions became visible while it was planned".into()
            }
            ChangedWhileRunning => {
                "could not run the query: the acting user's permissions changed after it was planned".into()
            }
            NotCatalogTable { table } => {
                format!("fluent.audit_change() audits the fluent catalog only, not \"{table}\"")
            }
            NullArgument { argument, .. } => format!("{argument} must not be NULL"),
            NotTrusted { what } => format!("permission denied to set the fluent {what}"),
            TrustedOnlyAfterSetRole { denied, .. } => denied.clone(),
            NotAdmin => "permission denied to administer fluent".into(),
            NotCalledAsTrigger { function } => {
                format!("{function}() can only be called as a trigger")
            }
            LocalOutsideTransaction { function } => {
                format!("{function}(..., local => true) can only be used in transaction blocks")
            }
        }
    }

    fn hint(&self) -> String {
        use FluentError::*;
        match self {
            NotInWorkspace { kind, .. } => format!(
                "Create it with fluent_create_{kind}(), or check the name and the current workspace (fluent_current_workspace())."
            ),
            UnknownAction { known: Some(known), .. } => format!("Its actions are: {known}."),
            UnknownAction { known: None, .. } => {
                "Actions are declared by fluent_create_module(module, actions); see fluent.actions.".into()
            }
            UnknownUser { .. } => "Create the user with fluent_create_user().".into(),
            UnknownWorkspace { .. } => {
                "Create it with fluent_create_workspace() or choose another with fluent_set_workspace().".into()
            }
            UserCannotSignIn { status, .. } if status == "invited" => {
                "The invitation must be accepted first: fluent_accept_invitation(user), by the application's authenticator, a DBA or a delegated administrator holding manage_users; fluent_invite_user(user) renews an expired one."
                    .into()
            }
            UserCannotSignIn { .. } => "Activate the user with fluent_set_user_status(user, 'active').".into(),
            NoSignInRole { .. } => {
                "Grant one of the workspace's sign-in roles (fluent.roles.grants_sign_in), or set the workspace first."
                    .into()
            }
            OthersPermissionsDenied { .. } => {
                "An acting user may read their own permissions; superusers, fluent_admin and fluent_reader members and the workspace's delegated administrators may read anyone's."
                    .into()
            }
            WhoCanDenied { .. } => {
                "fluent_who_can reads everyone's permissions: superusers, fluent_admin and fluent_reader members and the row's workspace's delegated administrators may call it."
                    .into()
            }
            IdentitySealed { .. } => {
                "A role trusted through fluent_authenticator chooses the identity once per transaction (local => true) or session, before it hands over with SET ROLE; after that only fluent_authenticate(token) changes it. Start a new transaction. A role set by SET ROLE before fluent was loaded in the session, and still set then, counts as a hand-over: call fluent before SET ROLE, or preload it (session_preload_libraries = 'fluent_preload')."
                    .into()
            }
            TokensNotConfigured => {
                "A superuser sets the verification keys as a JSON Web Key Set: UPDATE fluent.token_settings SET keys = '{\"keys\": [...]}'.".into()
            }
            TokenKeysInvalid { .. } => "A superuser must correct fluent.token_settings.keys (a JSON Web Key Set).".into(),
            TokenRefused { .. } => {
                "Sign in again for a fresh token; the server checks the signature, exp, nbf, aud and iss as fluent.token_settings says."
                    .into()
            }
            NoCallerTicket => "Call the public fluent_* function instead.".into(),
            OnStandby => "Connect to the primary; its changes reach the standby's sessions as they are replayed.".into(),
            OnCitusWorker => "Connect to the coordinator; its changes reach every worker when they commit.".into(),
            IdentityOnCitusWorker => "Choose it on the coordinator, with local, inside the transaction: it reaches the workers' connections of that transaction.".into(),
            CitusSetup { .. } => "Run it as a superuser on the coordinator of a Citus cluster, in the database where fluent is installed.".into(),
            CitusReadAfterChange => "The workers see the change when the transaction commits: read in the next transaction.".into(),
            CitusSetSearchPath => "Use set_config('search_path', ..., true) on the coordinator instead: Citus does not send it.".into(),
            CitusSetBesideStatements => "Citus sends the whole query string of a propagated SET to the workers: send each SET as a statement of its own.".into(),
            CitusLayout { table, other } => format!("Distribute \"{other}\" by the column that distributes \"{table}\", with colocate_with => '{table}', and give it a foreign key to \"{table}\" that includes both distribution columns (each row then carries the distribution value of the row it points at); or make both reference tables. Then protect."),
            CitusApplySettings { .. } => "Run fluent_citus_setup() on the coordinator again: it pins the replicator's settings on every node.".into(),
            LocalRowsType { .. } => "Pass a sample of the column's type (NULL::<type>, or NULL::record for several columns).".into(),
            CitusAuditUnread { .. } => "The coordinator reads each node's audit log connecting as the calling role: each node must accept that connection, and the role must read fluent.audit_log there (fluent_reader on every node).".into(),
            CitusRowsUnread { .. } => "fluent_who_can reads a Citus table's rows on the nodes that hold them, connecting as the calling role: each node must accept that connection from the coordinator.".into(),
            CitusRowRequest => "Call fluent_who_can on the coordinator.".into(),
            CitusShardMissing { .. } => "The coordinator's metadata places it on this node (citus_shards): the node lost it or it was renamed.".into(),
            CitusShardChild { .. } => "Its rows are read through the shard past the shard's row security: detach it (NO INHERIT) and move its rows back; fluent.protection_status lists it.".into(),
            CitusRowsLocked { .. } => "The nodes read the rows on connections of their own, which would wait for this transaction's lock (ALTER TABLE, LOCK TABLE): ask in another transaction.".into(),
            CitusItemRoles { .. } => "Citus writes a reference table's rows on every node, where the item roles' triggers would each check and record them: distribute the items, their assignments and their children by tenant, co-located.".into(),
            CitusColumnLimits { .. } => "Citus runs a view's shard queries as the querying role, not as the view's owner, so the masked view could not read the limited columns on the workers: keep such columns in a table that is not distributed.".into(),
            ChangedWhilePlanning => "A change of permissions committed between the statement's planning and its start (one whose commit waited for a synchronous standby, or while a function run by the planner read the catalog): run the statement again.".into(),
            ChangedWhileRunning => "A query whose plan was made before a change of the acting user's permissions (one a function, a DO block or a trigger runs, a prepared statement bound again, or a statement of a transaction that has written) started under a snapshot that shows the change: run the statement again, it sees the change.".into(),
            IdentityChangedWhilePlanning => "A function run while planning (an IMMUTABLE one) called fluent_set_user, fluent_reset_user, fluent_authenticate or fluent_set_workspace: change the identity in a statement of its own.".into(),
            OtherVersionLoaded => "The extension was updated (ALTER EXTENSION fluent UPDATE) while this session used the previous version: reconnect.".into(),
            NotCatalogTable { .. } => "Drop the trigger; fluent installs its audit triggers itself.".into(),
            NullArgument { hint, .. } => (*hint).into(),
            NotTrusted { .. } => {
                "Only superusers and roles that inherit the privileges of fluent_authenticator or fluent_admin may; set it before SET ROLE to the application role."
                    .into()
            }
            TrustedOnlyAfterSetRole { role, .. } => format!(
                "The current role is a member of {role} but does not inherit its privileges (NOINHERIT): SET ROLE {role} first, or ALTER ROLE ... INHERIT."
            ),
            NotAdmin => {
                "Administration needs a superuser or a role that inherits the privileges of fluent_admin (GRANT fluent_admin TO ...).".into()
            }
            NotCalledAsTrigger { .. } => "fluent attaches its triggers to the catalog tables itself.".into(),
            WhoCanNoRow { .. } => String::new(),
            WhoCanManyRows { .. } => "Ask about a column that identifies one row.".into(),
            WhoCanKeyType { .. } => "Rows are found by a key of a base type (such as integer, bigint, text or uuid), a domain over one, or an enum.".into(),
            WhoCanNotHeap { .. } => "fluent_who_can reads tables stored by PostgreSQL's heap access method.".into(),
            LocalOutsideTransaction { .. } => {
                "It lasts until the end of the current transaction, which here is this statement: use BEGIN first, or local => false for the session.".into()
            }
        }
    }

    /// Raises the error in PostgreSQL; the current statement is aborted.
    #[track_caller]
    pub fn report(self) -> ! {
        let mut report = ErrorReport::new(self.sqlstate(), self.message(), "fluent");
        let hint = self.hint();
        if !hint.is_empty() {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }

    /// `report`, with a hint for the caller's case instead of the table's.
    #[track_caller]
    pub fn report_with_hint(self, hint: &str) -> ! {
        ErrorReport::new(self.sqlstate(), self.message(), "fluent")
            .set_hint(hint)
            .report(PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }

    /// Sends the message as a WARNING; the statement goes on.
    #[track_caller]
    pub fn warn(self) {
        ErrorReport::new(self.sqlstate(), self.message(), "fluent")
            .set_hint(self.hint())
            .report(PgLogLevel::WARNING);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_undefined_object() {
        let e = FluentError::UnknownAction {
            module: "invoices".into(),
            action: "fly".into(),
            known: None,
        };
        assert_eq!(e.sqlstate(), PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT);
        assert!(e.message().contains("\"fly\""));
        assert!(e.hint().contains("fluent_create_module"));
    }

    #[test]
    fn untrusted_caller_is_insufficient_privilege() {
        let e = FluentError::NotTrusted { what: "user" };
        assert_eq!(e.sqlstate(), PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE);
    }
}

#[pgrx::pg_schema]
mod fluent {
    use super::FluentError;

    /// Raises one of the errors the PL/pgSQL functions share with Rust, by
    /// name, with its arguments: `unknown_user` (user), `unknown_workspace`
    /// (workspace), `not_in_workspace` (module|role|team, name, workspace),
    /// `unknown_action` (module, action, known actions), `null_argument`
    /// (argument), `not_admin` (none). `hint`, where given, replaces the
    /// table's hint with one for the caller's case.
    #[pgrx::pg_extern(volatile, parallel_safe)]
    fn _raise(error: &str, args: Vec<Option<String>>, hint: pgrx::default!(Option<&str>, "NULL")) {
        let arg = |i: usize| args.get(i).cloned().flatten().unwrap_or_default();
        let error = match error {
            "unknown_user" => FluentError::UnknownUser { user: arg(0) },
            "unknown_workspace" => FluentError::UnknownWorkspace { workspace: arg(0) },
            "not_in_workspace" => FluentError::NotInWorkspace {
                kind: match arg(0).as_str() {
                    "module" => "module",
                    "role" => "role",
                    _ => "team",
                },
                name: arg(1),
                workspace: arg(2),
            },
            "unknown_action" => FluentError::UnknownAction {
                module: arg(0),
                action: arg(1),
                known: args.get(2).cloned().flatten(),
            },
            "null_argument" => FluentError::NullArgument {
                argument: arg(0).into(),
                hint: "",
            },
            "not_admin" => FluentError::NotAdmin,
            "on_citus_worker" => FluentError::OnCitusWorker,
            "citus_setup" => FluentError::CitusSetup {
                reason: match arg(0).as_str() {
                    "superuser" => "only a superuser may set fluent up on Citus",
                    "citus" => "the citus extension is not installed in this database",
                    "placements" => "a worker holds no placement of fluent.citus_bus yet (added since the last setup); run SELECT replicate_reference_tables() first (with 'block_writes' where wal_level is not logical)",
                    _ => "this node is a Citus worker, not the coordinator",
                },
            },
            "citus_item_roles" => FluentError::CitusItemRoles { table: arg(0) },
            "citus_column_limits" => FluentError::CitusColumnLimits { table: arg(0) },
            "citus_apply_settings" => FluentError::CitusApplySettings { setting: arg(0) },
            "citus_layout" => FluentError::CitusLayout {
                table: arg(0),
                other: arg(1),
            },
            other => pgrx::error!("fluent._raise: unknown error {other:?}"),
        };
        match hint {
            Some(hint) => error.report_with_hint(hint),
            None => error.report(),
        }
    }
}
